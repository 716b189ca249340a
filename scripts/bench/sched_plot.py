"""SVG plot of the scheduler benchmark, one row per contender: probe latency
percentiles on a log axis (the floor's p50 and p99 as reference lines), and
beside them hackbench time and hog throughput as bars relative to EEVDF."""
import math
from html import escape

# Shape and colour per percentile, so the markers read without colour too.
MARKERS = [("p50", "circle", "#1b9e77"), ("p90", "square", "#d95f02"),
           ("p99", "triangle", "#7570b3"), ("max", "cross", "#444")]
LABEL_W, LAT_X0, LAT_W, NOTE_W = 130, 140, 430, 110
BAR_W, GAP = 170, 30
TOP, ROW_H, BOTTOM = 92, 30, 40
BAR_MAX = 2.0  # bars are cut at 2x EEVDF (value printed beside)


def _marker(shape, x, y, color, tip):
    t = f"<title>{escape(tip)}</title>"
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}">{t}</circle>'
    if shape == "square":
        return f'<rect x="{x - 4.5:.1f}" y="{y - 4.5:.1f}" width="9" height="9" fill="{color}">{t}</rect>'
    if shape == "triangle":
        return (f'<polygon points="{x:.1f},{y - 6:.1f} {x - 5.5:.1f},{y + 4.5:.1f} {x + 5.5:.1f},{y + 4.5:.1f}" '
                f'fill="{color}">{t}</polygon>')
    return (f'<path d="M{x - 4.5:.1f},{y - 4.5:.1f} L{x + 4.5:.1f},{y + 4.5:.1f} M{x - 4.5:.1f},{y + 4.5:.1f} '
            f'L{x + 4.5:.1f},{y - 4.5:.1f}" stroke="{color}" stroke-width="2.5">{t}</path>')


def _us(v):
    return f"{v / 1000:.3g} ms" if v >= 1000 else f"{v:.0f} us"


def _bars(svg, rows, x0, y_of, key, title, hint):
    """Horizontal bars of rows[key] (a ratio to EEVDF), a reference line at 1."""
    bx = lambda r: x0 + min(r, BAR_MAX) / BAR_MAX * BAR_W
    svg.append(f'<text x="{x0}" y="{TOP - 30}" font-weight="bold">{title}</text>'
               f'<text x="{x0}" y="{TOP - 16}" fill="#555">{hint}</text>')
    bottom = y_of(len(rows)) - ROW_H / 2
    for t in (0.5, 1.0, 1.5, 2.0):
        dash = "" if t == 1.0 else ' stroke-dasharray="2,3"'
        svg.append(f'<line x1="{bx(t):.1f}" y1="{TOP - 8}" x2="{bx(t):.1f}" y2="{bottom}" '
                   f'stroke="{"#333" if t == 1.0 else "#ccc"}"{dash}/>'
                   f'<text x="{bx(t):.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">{t:g}x</text>')
    svg.append(f'<text x="{bx(1.0):.1f}" y="{bottom + 28}" text-anchor="middle" fill="#333">EEVDF</text>')
    for i, r in enumerate(rows):
        y, v = y_of(i), r.get(key)
        if v is None:
            what = "idle guest" if r["contender"] == "floor" else "not measured"
            svg.append(f'<text x="{x0 + 4}" y="{y + 4}" fill="#888">{what}</text>')
            continue
        svg.append(f'<rect x="{x0}" y="{y - 7}" width="{bx(v) - x0:.1f}" height="14" fill="#9bb8d3">'
                   f'<title>{escape(r["contender"])} {v:.2f}x EEVDF</title></rect>'
                   f'<text x="{bx(v) + 4:.1f}" y="{y + 4}">{v:.2f}x{" &#8594;" if v > BAR_MAX else ""}</text>')


def svg(rows, title):
    """The plot as SVG text; rows carry p50_us..max_us and the *_vs_eevdf ratios."""
    lat = [r[f"{k}_us"] for r in rows for k, _, _ in MARKERS if r.get(f"{k}_us")]
    lo = math.log10(min([20] + [v / 1.5 for v in lat]))
    hi = math.log10(max([100000] + [v * 1.2 for v in lat]))
    x = lambda us: LAT_X0 + (math.log10(max(us, 10 ** lo)) - lo) / (hi - lo) * LAT_W
    y_of = lambda i: TOP + ROW_H / 2 + i * ROW_H
    bars_x = LAT_X0 + LAT_W + NOTE_W + GAP
    w = bars_x + 2 * (BAR_W + 60) + GAP
    h = TOP + ROW_H * len(rows) + BOTTOM
    bottom = y_of(len(rows)) - ROW_H / 2
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
           f'font-size="12">', f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="10" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
           f'<text x="{LAT_X0}" y="{TOP - 30}" font-weight="bold">Probe wakeup latency (log scale)</text>']
    out += [f'<rect x="4" y="{y_of(i) - ROW_H / 2:.1f}" width="{w - 8}" height="{ROW_H}" fill="#f4f4f4"/>'
            for i in range(1, len(rows), 2)]
    legend_x = LAT_X0
    for k, shape, color in MARKERS:
        out.append(_marker(shape, legend_x + 5, TOP - 20, color, k))
        out.append(f'<text x="{legend_x + 14}" y="{TOP - 16}">{k}</text>')
        legend_x += 52
    decade = math.floor(lo)
    while decade <= hi:
        for m in (1, 3):
            t = m * 10 ** decade
            if lo <= math.log10(t) <= hi:
                out.append(f'<line x1="{x(t):.1f}" y1="{TOP - 8}" x2="{x(t):.1f}" y2="{bottom}" stroke="#e4e4e4"/>'
                           f'<text x="{x(t):.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">'
                           f'{_us(t)}</text>')
        decade += 1
    floor = next((r for r in rows if r["contender"] == "floor"), None)
    for k, dash in (("p50", "6,3"), ("p99", "2,2")):
        v = floor and floor.get(f"{k}_us")
        if v:
            out.append(f'<line x1="{x(v):.1f}" y1="{TOP - 8}" x2="{x(v):.1f}" y2="{bottom}" stroke="#1a1a1a" '
                       f'stroke-dasharray="{dash}"/><text x="{x(v):.1f}" y="{bottom + 28}" text-anchor="middle">'
                       f'floor {k}</text>')
    out.append(f'<text x="{LAT_X0 + LAT_W + 8}" y="{TOP - 16}" fill="#555">p50 / p99</text>')
    for i, r in enumerate(rows):
        y = y_of(i)
        out.append(f'<text x="10" y="{y + 4}">{escape(r["contender"])}</text>')
        pts = [(k, s, c, r[f"{k}_us"]) for k, s, c in MARKERS if r.get(f"{k}_us")]
        if pts:
            out.append(f'<line x1="{x(pts[0][3]):.1f}" y1="{y}" x2="{x(pts[-1][3]):.1f}" y2="{y}" stroke="#aaa"/>')
        # Larger percentiles first, so p50 stays on top where markers overlap.
        out += [_marker(s, x(v), y, c, f"{r['contender']} {k} {_us(v)}") for k, s, c, v in reversed(pts)]
        if r.get("p50_us") and r.get("p99_us"):
            out.append(f'<text x="{LAT_X0 + LAT_W + 8}" y="{y + 4}">{_us(r["p50_us"])} / {_us(r["p99_us"])}</text>')
    _bars(out, rows, bars_x, y_of, "hackbench_time_vs_eevdf", "hackbench time vs EEVDF", "shorter is better")
    _bars(out, rows, bars_x + BAR_W + 60 + GAP, y_of, "throughput_vs_eevdf", "hog throughput vs EEVDF",
          "longer is better")
    out.append("</svg>")
    return "\n".join(out) + "\n"
