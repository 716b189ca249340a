#!/usr/bin/env python3
"""Turn one boot's guest-bench.sh console log into bench results.

Usage: sched_report.py GUEST_LOG OUT_PREFIX [--kernel VERSION] [--host-load "1 5 15" --high-load L]
                       [--qemu-threads TEXT]
Writes OUT_PREFIX.json, OUT_PREFIX.md (table with ratios to the floor and to
EEVDF, and issue 20's targets for this boot) and OUT_PREFIX.svg (latency
percentiles per contender beside hackbench time and hog throughput).
"""
import argparse
import datetime
import json

import sched_figures
import sched_plot
import sched_table
import sched_targets

NOTE = ("qemu TCG (software emulation) on a 2-core host: absolute times are inflated; "
        "compare ratios within one boot or medians over boots")


def load_warning(meta):
    """A warning when the host's 1-min load before the boot was above the
    caller's threshold (meta's host_load and high_load)."""
    load, high = meta.get("host_load"), meta.get("high_load")
    if load and high is not None and load[0] > high:
        return f"host 1-min load {load[0]:g} > {high:g} before this boot: figures swing"
    return None


def threads_text(meta):
    """The sentence on qemu's thread placement for a report's header ("" when not recorded)."""
    return f" qemu's threads: {meta['qemu_threads']}." if meta.get("qemu_threads") else ""


def write(prefix, meta, rows, header, targets_title="Issue 20 targets in this boot:", more=None, tail=(),
          boots=None):
    """OUT.json ({meta, results} and `more`), OUT.md (header, table, targets,
    with each of `boots`' verdicts when given, tail lines) and OUT.svg; returns
    the markdown lines."""
    with open(prefix + ".json", "w") as f:
        json.dump({"meta": meta, "results": rows, **(more or {})}, f, indent=2)
    lines = header + [""] + sched_table.table(rows) + ["", targets_title, ""] + sched_targets.table(rows, boots) + list(tail)
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(prefix + ".svg", "w") as f:
        f.write(sched_plot.svg(rows, header[0]))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("prefix")
    ap.add_argument("--kernel", default="unknown")
    ap.add_argument("--host-load", default="", help="/proc/loadavg's first three fields before the boot")
    ap.add_argument("--boot", type=int, help="this boot's number in a series")
    ap.add_argument("--high-load", type=float, help="warn when the 1-min host load was above this")
    ap.add_argument("--qemu-threads", help="how qemu's threads were placed on the host's CPUs (boot.sh's VM_PIN)")
    a = ap.parse_args()
    with open(a.log, errors="replace") as f:
        data, cpus = sched_figures.parse(f)
    rows = sched_figures.with_ratios(sched_figures.rows_from(data))
    load = [float(v) for v in a.host_load.split()[:3]]
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "kernel": a.kernel, "vcpus": cpus, "boot": a.boot, "host_load": load or None,
            "high_load": a.high_load, "rounds": sched_figures.rounds_of(data), "note": NOTE,
            "qemu_threads": a.qemu_threads}
    which = f"boot {a.boot}" if a.boot else "one boot"
    header = [f"Scheduler benchmark, {which}, {meta['date']}, kernel {a.kernel}, {cpus} vCPUs, "
              f"{meta['rounds']} rounds pooled",
              "", f"{NOTE}. Host load (1/5/15 min) before the boot: {a.host_load or 'not recorded'}."
              + threads_text(meta)]
    warn = load_warning(meta)
    if warn:
        header.append(f"**Warning: {warn}.**")
    print("\n".join(write(a.prefix, meta, rows, header)))


if __name__ == "__main__":
    main()
