#!/usr/bin/env python3
"""Summary of several boots of the scheduler benchmark: per contender the
median over boots of each figure (ratios are ratios of these medians), issue
20's targets checked on the medians, a per-boot table and the host load
before each boot.

Usage: sched_summary.py OUT_PREFIX BOOT.json...  (sched_report.py's JSONs)
Writes OUT_PREFIX.json, OUT_PREFIX.md and OUT_PREFIX.svg (the medians).
"""
import json
import os
import sys

import sched_figures
import sched_report

# Figures shown per boot in the summary's per-boot table.
PER_BOOT = [("p50_us", "p50 us"), ("p99_us", "p99 us"), ("hackbench_s", "hackbench s"),
            ("hog_bogo_ops", "hog bogo ops")]


def label(boots, i):
    """Boot i's number in the series (failed boots leave gaps)."""
    return boots[i]["meta"].get("boot") or i + 1


def per_boot_table(boots):
    head = " / ".join(f"b{label(boots, i)}" for i in range(len(boots)))
    lines = ["| contender | " + " | ".join(f"{h} ({head})" for _, h in PER_BOOT) + " |",
             "|" + "---|" * (len(PER_BOOT) + 1)]
    names = sched_figures.ordered({r["contender"] for b in boots for r in b["results"]})
    for name in names:
        cells = []
        for k, _ in PER_BOOT:
            vals = []
            for b in boots:
                r = next((r for r in b["results"] if r["contender"] == name), {})
                vals.append("-" if r.get(k) is None else sched_report.sched_table.cell(k, r[k]))
            cells.append(" / ".join(vals))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main():
    prefix, paths = sys.argv[1], sys.argv[2:]
    if not paths:
        sys.exit("usage: sched_summary.py OUT_PREFIX BOOT.json...")
    boots = []
    for p in paths:
        with open(p) as f:
            boots.append(json.load(f))
    rows = sched_figures.with_ratios(sched_figures.median_rows([b["results"] for b in boots]))
    first = boots[0]["meta"]
    loads = [b["meta"].get("host_load") for b in boots]
    warnings = [f"boot {label(boots, i)}: {w}" for i, b in enumerate(boots)
                if (w := sched_report.load_warning(b["meta"]))]
    rounds = first.get("rounds") or 1
    meta = {"date": first["date"], "kernel": first["kernel"], "vcpus": first["vcpus"], "boots": len(boots),
            "rounds": rounds,
            "host_load": loads, "note": first["note"] + "; figures are medians over boots, ratios of medians",
            "qemu_threads": first.get("qemu_threads")}
    per_boot = [{"boot": label(boots, i), "file": os.path.basename(p), "host_load": b["meta"].get("host_load"),
                 "results": b["results"]} for i, (p, b) in enumerate(zip(paths, boots))]
    load_text = "; ".join(f"boot {label(boots, i)}: " + (" ".join(f"{v:g}" for v in l) if l else "not recorded")
                          for i, l in enumerate(loads))
    header = [f"Scheduler benchmark, median of {len(boots)} boots, {meta['date']}, kernel {meta['kernel']}, "
              f"{meta['vcpus']} vCPUs", "",
              f"{first['note']}. In each boot every contender ran {rounds} round(s), every other one in reverse "
              "order, pooled into one histogram (and the median of each other figure); each figure here is the "
              "median over the boots; each ratio is the ratio of two medians.",
              f"Host load (1/5/15 min) before each boot: {load_text}." + sched_report.threads_text(first)]
    header += [f"**Warning: {w}.**" for w in warnings]
    tail = ["", "Per boot:", ""] + per_boot_table(boots) + [
        "", "Boots: " + ", ".join(os.path.basename(p) for p in paths)]
    lines = sched_report.write(prefix, meta, rows, header, "Issue 20 targets on the medians (per boot: each "
                               "boot's verdict and ratio, and in how many boots the target held):",
                               {"boots": per_boot}, tail, [b["results"] for b in boots])
    print("\n".join(lines))

if __name__ == "__main__":
    main()
