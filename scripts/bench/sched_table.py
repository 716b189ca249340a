"""Markdown tables of the scheduler benchmark's rows."""

COLUMNS = [
    ("contender", "contender"),
    ("p50_us", "probe p50 us"), ("p90_us", "p90 us"), ("p99_us", "p99 us"), ("max_us", "max us"),
    ("p50_vs_floor", "p50 vs floor"), ("p99_vs_floor", "p99 vs floor"),
    ("p50_vs_eevdf", "p50 vs EEVDF"), ("p99_vs_eevdf", "p99 vs EEVDF"),
    ("hog_bogo_ops", "hog bogo ops"), ("throughput_vs_eevdf", "throughput vs EEVDF"),
    ("hackbench_s", "hackbench s"), ("hackbench_time_vs_eevdf", "hackbench time vs EEVDF"),
]


def cell(key, v):
    if v is None:
        return "-"
    if key.endswith(("_vs_floor", "_vs_eevdf")):
        return f"{v:.2f}x"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def table(rows, columns=COLUMNS):
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(cell(k, r.get(k)) for k, _ in columns) + " |")
    return lines
