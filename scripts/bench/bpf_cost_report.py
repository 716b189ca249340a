"""Report of the BPF cost benchmark (scripts/bench-bpf-cost.sh): the console
log of guest-bpf-cost.sh made into a Markdown table per case, one row per BPF
program: calls, mean ns per call (and per round when the case ran several
times) and milliseconds in all, busiest first, with the probe's wakeups and
latency. Cases named BASE_PREFIX + case are a second build measured in the
same boot (BASE=): they get their own columns beside the case's, and a ratio.
Usage: bpf_cost_report.py LOG KERNEL LOAD."""
import re
import sys

import sched_figures

# guest-bpf-cost.sh's prefix for the cases of the BASE build.
BASE_PREFIX = "base/"


def parse(lines):
    """{case: {"programs": {name: [(calls, run_time_ns) per round]}, "wakeups": n}}
    in log order; a case that ran in several rounds has one entry per round
    and the sum of its wakeups."""
    cases = {}
    for line in lines:
        line = line.rstrip("\r\n")
        m = re.match(r"^COST (\S+) (\S+) (\d+) (\d+)$", line)
        if m:
            case = cases.setdefault(m.group(1), {"programs": {}, "wakeups": None})
            case["programs"].setdefault(m.group(2), []).append((int(m.group(3)), int(m.group(4))))
            continue
        m = re.match(r"^WAKEUPS (\S+) (\d+)$", line)
        if m:
            case = cases.setdefault(m.group(1), {"programs": {}, "wakeups": None})
            case["wakeups"] = (case["wakeups"] or 0) + int(m.group(2))
    return cases


def _per_call(rounds):
    calls, ns = sum(c for c, _ in rounds), sum(n for _, n in rounds)
    return ns // calls if calls else 0


def _cell(rounds):
    """Mean ns per call over the rounds, and each round's when there are several."""
    if not rounds:
        return "-"
    text = str(_per_call(rounds))
    if len(rounds) > 1:
        text += " (" + " / ".join(str(_per_call([r])) for r in rounds) + ")"
    return text


def _latency(hists, name):
    h = hists.get(name, {}).get("_hist")
    if not h:
        return ""
    return f"probe p50 {sched_figures.pct(h, 0.5)} us, p99 {sched_figures.pct(h, 0.99)} us"


def report(lines, kernel, load):
    lines = list(lines)
    cases = parse(lines)
    hists, _ = sched_figures.parse(lines)
    out = [f"# BPF cost per call, kernel {kernel}, host load {load}", "",
           "Mean run time of each scx_pilot BPF program per call (kernel.bpf_stats_enabled), in the",
           "emulated VM among CPU hogs with a 1 ms probe. Rerun: `make bench-bpf`.", ""]
    if not cases:
        out.append("No COST lines in the guest log: the benchmark did not run.")
        return "\n".join(out) + "\n"
    for name, case in cases.items():
        if name.startswith(BASE_PREFIX):
            continue
        base = cases.get(BASE_PREFIX + name)
        lat = _latency(hists, name)
        head = f"## {name}: {case['wakeups']} probe wakeups" + (f", {lat}" if lat else "")
        if base:
            blat = _latency(hists, BASE_PREFIX + name)
            head += f"; base: {base['wakeups']} probe wakeups" + (f", {blat}" if blat else "")
        out += [head, ""]
        if base:
            out += ["| program | calls | ns per call | base ns per call | vs base | ms in all | base ms in all |",
                    "|---|---:|---:|---:|---:|---:|---:|"]
        else:
            out += ["| program | calls | ns per call | ms in all |", "|---|---:|---:|---:|"]
        total_ns = base_total_ns = 0
        progs = set(case["programs"]) | set(base["programs"] if base else ())
        busiest = sorted(progs, key=lambda p: -sum(n for _, n in case["programs"].get(p, [])))
        for prog in busiest:
            rounds = case["programs"].get(prog, [])
            calls, ns = sum(c for c, _ in rounds), sum(n for _, n in rounds)
            total_ns += ns
            if not base:
                out.append(f"| {prog} | {calls} | {_cell(rounds)} | {ns / 1e6:.1f} |")
                continue
            brounds = base["programs"].get(prog, [])
            bns = sum(n for _, n in brounds)
            base_total_ns += bns
            ratio = f"{_per_call(rounds) / _per_call(brounds):.2f}x" if rounds and _per_call(brounds) else "-"
            out.append(f"| {prog} | {calls} | {_cell(rounds)} | {_cell(brounds)} | {ratio} | "
                       f"{ns / 1e6:.1f} | {bns / 1e6:.1f} |")
        if base:
            out += [f"| all | | | | | {total_ns / 1e6:.1f} | {base_total_ns / 1e6:.1f} |", ""]
        else:
            out += [f"| all | | | {total_ns / 1e6:.1f} |", ""]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: bpf_cost_report.py LOG KERNEL LOAD")
    with open(sys.argv[1], errors="replace") as f:
        sys.stdout.write(report(f, sys.argv[2], sys.argv[3]))
