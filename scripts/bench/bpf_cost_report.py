"""Report of the BPF cost benchmark (scripts/bench-bpf-cost.sh): the console
log of guest-bpf-cost.sh made into a Markdown table per case, one row per BPF
program: calls, mean ns per call and milliseconds in all, busiest first, with
the probe's wakeups and latency. Usage: bpf_cost_report.py LOG KERNEL LOAD."""
import re
import sys

import sched_figures


def parse(lines):
    """{case: {"programs": {name: (calls, run_time_ns)}, "wakeups": n}} in log order."""
    cases = {}
    for line in lines:
        line = line.rstrip("\r\n")
        m = re.match(r"^COST (\S+) (\S+) (\d+) (\d+)$", line)
        if m:
            case = cases.setdefault(m.group(1), {"programs": {}, "wakeups": None})
            case["programs"][m.group(2)] = (int(m.group(3)), int(m.group(4)))
            continue
        m = re.match(r"^WAKEUPS (\S+) (\d+)$", line)
        if m:
            cases.setdefault(m.group(1), {"programs": {}, "wakeups": None})["wakeups"] = int(m.group(2))
    return cases


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
        h = hists.get(name, {}).get("_hist")
        lat = ""
        if h:
            lat = f", probe p50 {sched_figures.pct(h, 0.5)} us, p99 {sched_figures.pct(h, 0.99)} us"
        out += [f"## {name}: {case['wakeups']} probe wakeups{lat}", "",
                "| program | calls | ns per call | ms in all |", "|---|---:|---:|---:|"]
        total_ns = 0
        for prog, (calls, ns) in sorted(case["programs"].items(), key=lambda kv: -kv[1][1]):
            total_ns += ns
            out.append(f"| {prog} | {calls} | {ns // calls if calls else 0} | {ns / 1e6:.1f} |")
        out += [f"| all | | | {total_ns / 1e6:.1f} |", ""]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: bpf_cost_report.py LOG KERNEL LOAD")
    with open(sys.argv[1], errors="replace") as f:
        sys.stdout.write(report(f, sys.argv[2], sys.argv[3]))
