"""Figures of the scheduler benchmark: guest-bench.sh's console log parsed
into one row per contender (probe latency percentiles, hog throughput,
hackbench time), the ratios to the floor and to EEVDF, and the median of
several boots."""
import re
import statistics

FLOOR, EEVDF = "floor", "eevdf"
# The suffix of a contender whose probe ran unpinned (guest-bench.sh): its
# ratios to EEVDF are to EEVDF's unpinned probe.
UNPINNED = "-unpinned"
ORDER = [FLOOR, EEVDF, EEVDF + UNPINNED, "eevdf-nice-20", "eevdf-nice-20" + UNPINNED, "scx_floor",
         "scx_bpfland", "scx_rustland", "scx_pilot", "scx_pilot" + UNPINNED, "scx_pilot-prio",
         "scx_pilot-prio" + UNPINNED, "scx_pilot-user"]
LATENCY_KEYS = ["p50_us", "p90_us", "p99_us", "max_us"]
# Raw figures of a row; everything else in a row is derived from these.
FIGURE_KEYS = LATENCY_KEYS + ["samples", "hog_bogo_ops", "hackbench_s"]
# cyclictest -h 30000: samples beyond the histogram count as this.
HIST_LIMIT_US = 30000


def parse(lines):
    """Per-contender BENCH values and probe histograms, and the vCPU count.
    A contender measured in several rounds has one histogram (the rounds'
    samples pooled, the largest max) and each BENCH value the median of its
    rounds'."""
    data, rounds, cur, cpus = {}, {}, None, None
    for line in lines:
        line = line.rstrip("\r\n")
        m = re.match(r"^bench: kernel \S+, (\d+) vCPUs", line)
        if m:
            cpus = int(m.group(1))
        m = re.match(r"^BENCH (\S+) (\w+)=(\S*)$", line)
        if m:
            try:
                rounds.setdefault((m.group(1), m.group(2)), []).append(float(m.group(3)))
            except ValueError:
                pass
            continue
        m = re.match(r"^HIST-(BEGIN|END) (\S+)$", line)
        if m:
            cur = None
            if m.group(1) == "BEGIN":
                cur = data.setdefault(m.group(2), {}).setdefault("_hist", {"b": {}, "over": 0, "max": None,
                                                                           "rounds": 0})
                cur["rounds"] += 1
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
            cur["max"] = max(cur["max"] or 0, int(m.group(1), 10))
    for (name, key), vals in rounds.items():
        data.setdefault(name, {})[key] = round(statistics.median(vals), 3)
    return data, cpus


def pct(hist, q):
    """The q-quantile of a histogram in microseconds (None when empty)."""
    items = sorted(hist["b"].items())
    total = sum(n for _, n in items) + hist["over"]
    if not total:
        return None
    seen = 0
    for us, n in items:
        seen += n
        if seen >= q * total:
            return us
    return HIST_LIMIT_US


def rounds_of(data):
    """How many rounds the boot ran: the most histograms of one contender."""
    return max((d["_hist"]["rounds"] for d in data.values() if "_hist" in d), default=0)


def ordered(names):
    return [n for n in ORDER if n in names] + sorted(set(names) - set(ORDER))


def rows_from(data):
    """One row of raw figures per contender that has a probe histogram."""
    rows = []
    for name in ordered(data):
        d = data[name]
        if "_hist" not in d:
            continue
        h = d["_hist"]
        rows.append({
            "contender": name,
            "p50_us": pct(h, 0.5), "p90_us": pct(h, 0.9), "p99_us": pct(h, 0.99), "max_us": h["max"],
            "samples": sum(h["b"].values()) + h["over"],
            "hog_bogo_ops": d.get("hog_bogo_ops"), "hackbench_s": d.get("hackbench_s"),
        })
    return rows


def _ratio(num, den):
    if num is None or not den:
        return None
    return round(num / den, 3)


def eevdf_of(name):
    """The EEVDF row a contender is compared with: the unpinned one for an
    unpinned probe."""
    return EEVDF + UNPINNED if name.endswith(UNPINNED) else EEVDF


def with_ratios(rows):
    """Rows with ratios added: latency to the floor and to EEVDF (lower is
    better), hackbench time to EEVDF (lower is better), hog throughput to
    EEVDF (higher is better); EEVDF with the probe pinned or not as the row's
    (eevdf_of())."""
    by = {r["contender"]: r for r in rows}
    floor = by.get(FLOOR, {})
    out = []
    for r in rows:
        base = by.get(eevdf_of(r["contender"]), {})
        r = {k: r.get(k) for k in ["contender"] + FIGURE_KEYS}
        for k in ("p50", "p99"):
            r[f"{k}_vs_floor"] = _ratio(r[f"{k}_us"], floor.get(f"{k}_us"))
            r[f"{k}_vs_eevdf"] = _ratio(r[f"{k}_us"], base.get(f"{k}_us"))
        r["hackbench_time_vs_eevdf"] = _ratio(r["hackbench_s"], base.get("hackbench_s"))
        r["throughput_vs_eevdf"] = _ratio(r["hog_bogo_ops"], base.get("hog_bogo_ops"))
        out.append(r)
    return out


def median_rows(boots):
    """Per contender, the median over boots of each raw figure (boots where
    the contender or figure is missing do not count)."""
    names = ordered({r["contender"] for rows in boots for r in rows})
    out = []
    for name in names:
        row = {"contender": name, "boots": 0}
        for k in FIGURE_KEYS:
            vals = [r[k] for rows in boots for r in rows if r["contender"] == name and r.get(k) is not None]
            row[k] = round(statistics.median(vals), 3) if vals else None
        row["boots"] = sum(1 for rows in boots if any(r["contender"] == name for r in rows))
        out.append(row)
    return out
