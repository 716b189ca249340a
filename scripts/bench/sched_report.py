#!/usr/bin/env python3
"""Turn guest-bench.sh's console log into bench results.

Usage: sched_report.py GUEST_LOG OUT_PREFIX [--kernel VERSION]
Writes OUT_PREFIX.json, OUT_PREFIX.md (table with ratios to EEVDF) and
OUT_PREFIX.svg (latency percentiles per contender, log scale).
"""
import datetime
import json
import math
import re
import sys

ORDER = ["eevdf", "eevdf-nice-20", "scx_bpfland", "scx_rustland", "scx_pilot", "scx_pilot-prio"]


def parse(path):
    data, cur = {}, None
    cpus = None
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\r\n")
            m = re.match(r"^bench: kernel \S+, (\d+) vCPUs", line)
            if m:
                cpus = int(m.group(1))
            m = re.match(r"^BENCH (\S+) (\w+)=(\S*)$", line)
            if m:
                try:
                    data.setdefault(m.group(1), {})[m.group(2)] = float(m.group(3))
                except ValueError:
                    pass
                continue
            m = re.match(r"^HIST-(BEGIN|END) (\S+)$", line)
            if m:
                cur = data.setdefault(m.group(2), {}).setdefault("_hist", {"b": {}, "over": 0, "max": None}) \
                    if m.group(1) == "BEGIN" else None
                continue
            if cur is None:
                continue
            m = re.match(r"^(\d+)\s+(\d+)$", line)
            if m:
                k = int(m.group(1), 10)
                cur["b"][k] = cur["b"].get(k, 0) + int(m.group(2), 10)
            m = re.match(r"^# Histogram Overflows:\s+(\d+)", line)
            if m:
                cur["over"] += int(m.group(1), 10)
            m = re.match(r"^# Max Latencies:\s+(\d+)", line)
            if m:
                cur["max"] = int(m.group(1), 10)
    return data, cpus


def pct(h, q):
    items = sorted(h["b"].items())
    total = sum(n for _, n in items) + h["over"]
    if not total:
        return None
    seen = 0
    for us, n in items:
        seen += n
        if seen >= q * total:
            return us
    return 30000  # beyond the histogram (30 ms)


def main():
    log, prefix = sys.argv[1], sys.argv[2]
    kernel = sys.argv[sys.argv.index("--kernel") + 1] if "--kernel" in sys.argv else "unknown"
    data, cpus = parse(log)
    rows = []
    for name in ORDER + sorted(set(data) - set(ORDER)):
        d = data.get(name)
        if not d or "_hist" not in d:
            continue
        h = d["_hist"]
        rows.append({
            "contender": name,
            "p50_us": pct(h, 0.5), "p90_us": pct(h, 0.9), "p99_us": pct(h, 0.99), "max_us": h["max"],
            "samples": sum(h["b"].values()) + h["over"],
            "hog_bogo_ops": d.get("hog_bogo_ops"), "hackbench_s": d.get("hackbench_s"),
            "_hist": h,
        })
    base = next((r for r in rows if r["contender"] == "eevdf"), None)

    def ratio(r, key, invert=False):
        if not base or not base.get(key) or r.get(key) is None:
            return None
        return round((base[key] / r[key]) if invert else (r[key] / base[key]), 3)

    for r in rows:
        r["p99_vs_eevdf"] = ratio(r, "p99_us")
        r["throughput_vs_eevdf"] = ratio(r, "hog_bogo_ops")
        r["hackbench_speed_vs_eevdf"] = ratio(r, "hackbench_s", invert=True)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "kernel": kernel, "vcpus": cpus,
            "note": "qemu TCG (software emulation) on a 2-core host: absolute times are inflated; compare ratios within this run"}
    with open(prefix + ".json", "w") as f:
        json.dump({"meta": meta, "results": [{k: v for k, v in r.items() if k != "_hist"} for r in rows]}, f, indent=2)

    lines = [f"Scheduler benchmark, {meta['date']}, kernel {kernel}, {cpus} vCPUs ({meta['note']}).", "",
             "| contender | probe p50 us | p90 us | p99 us | max us | p99 vs EEVDF | hog bogo ops | throughput vs EEVDF | hackbench s | hackbench speed vs EEVDF |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| {contender} | {p50_us} | {p90_us} | {p99_us} | {max_us} | {p99_vs_eevdf} | {hog_bogo_ops} | {throughput_vs_eevdf} | {hackbench_s} | {hackbench_speed_vs_eevdf} |".format(**r))
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    # SVG: one row per contender, markers at p50/p90/p99/max on a log time axis.
    w, rowh, left, right = 760, 34, 150, 20
    hgt = 60 + rowh * len(rows)
    lo, hi = math.log10(50), math.log10(40000)
    x = lambda us: left + (math.log10(max(us, 50)) - lo) / (hi - lo) * (w - left - right)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{hgt}" font-family="sans-serif" font-size="12">',
           f'<text x="10" y="18">Probe wakeup latency under CPU hogs (log scale; {cpus} vCPUs, emulated)</text>']
    for t in (100, 300, 1000, 3000, 10000, 30000):
        svg.append(f'<line x1="{x(t):.1f}" y1="28" x2="{x(t):.1f}" y2="{hgt - 20}" stroke="#ddd"/>'
                   f'<text x="{x(t):.1f}" y="{hgt - 6}" text-anchor="middle">{t // 1000 if t >= 1000 else t}{"ms" if t >= 1000 else "us"}</text>')
    colors = {"p50": "#2a7", "p90": "#e90", "p99": "#d33", "max": "#555"}
    for i, r in enumerate(rows):
        y = 44 + i * rowh
        svg.append(f'<text x="10" y="{y + 4}">{r["contender"]}</text>')
        pts = [(k, r[f"{k}_us"]) for k in ("p50", "p90", "p99", "max") if r.get(f"{k}_us")]
        if pts:
            svg.append(f'<line x1="{x(pts[0][1]):.1f}" y1="{y}" x2="{x(pts[-1][1]):.1f}" y2="{y}" stroke="#999"/>')
        for k, v in pts:
            svg.append(f'<circle cx="{x(v):.1f}" cy="{y}" r="5" fill="{colors[k]}"><title>{k} {v} us</title></circle>')
    svg.append(f'<text x="{w - 250}" y="18">' + " ".join(
        f'<tspan fill="{c}">● {k}</tspan>' for k, c in colors.items()) + "</text></svg>")
    with open(prefix + ".svg", "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
