#!/usr/bin/env python3
"""Issue 20's targets checked against benchmark rows (normally the median of
three boots): PASS, MISS, or n/a when a contender or figure is missing. A
benchmark verdict, not a test: the exit code is 0 either way.

Usage: sched_targets.py RESULTS.json  (a per-boot or summary JSON; a summary's
targets also show each boot's verdict)
"""
import json
import re
import sys

import sched_figures

PLAIN, PRIO, USER = "scx_pilot", "scx_pilot-prio", "scx_pilot-user"
# sched_ext's own floor (bpf/floor.bpf.c): every wakeup preempts, nothing else.
SCX_FLOOR = "scx_floor"
PEERS = ["scx_bpfland", "scx_rustland"]
PEER_FIGURES = ["p50_us", "p90_us", "p99_us", "max_us"]
THROUGHPUT_MIN = 0.95
PRIO_P99_VS_EEVDF_MAX = 0.3
PRIO_P99_VS_FLOOR_MAX = 2.0


def _cmp(rows, a, ka, op, b, kb, factor=1.0):
    """(status, detail) for rows[a][ka] OP factor * rows[b][kb]."""
    va, vb = rows.get(a, {}).get(ka), rows.get(b, {}).get(kb)
    if va is None or vb is None:
        return "n/a", f"{a} {ka}={va}, {b} {kb}={vb}"
    limit = factor * vb
    ok = {"<=": va <= limit, ">=": va >= limit, "<": va < limit}[op]
    scale = "" if factor == 1.0 else f"{factor:g}x "
    return ("PASS" if ok else "MISS"), f"{va:g} {op} {scale}{vb:g} ({va / vb:.2f}x)" if vb else f"{va:g} vs 0"


def _below_peer(rows, ours, peer):
    if ours not in rows or peer not in rows:
        return "n/a", f"{ours if ours not in rows else peer} not measured"
    worse = [k for k in PEER_FIGURES
             if rows[ours].get(k) is None or rows[peer].get(k) is None or rows[ours][k] >= rows[peer][k]]
    if worse:
        return "MISS", "not below on " + ", ".join(f"{k} ({rows[ours].get(k)} vs {rows[peer].get(k)})" for k in worse)
    return "PASS", "below on " + ", ".join(PEER_FIGURES)


def _latency_targets(rows, u=""):
    """Issue 20's latency targets against EEVDF, keyed p50, p99, prio and
    prio_nice, for the probe as the issue runs it (u="") or unpinned
    (u=sched_figures.UNPINNED: every contender's *-unpinned row)."""
    eevdf, nice, plain, prio = sched_figures.EEVDF + u, "eevdf-nice-20" + u, PLAIN + u, PRIO + u
    label = eevdf if u else "EEVDF"
    return {
        "p50": (f"{plain} probe p50 <= {label}'s", *_cmp(rows, plain, "p50_us", "<=", eevdf, "p50_us")),
        "p99": (f"{plain} probe p99 <= {label}'s", *_cmp(rows, plain, "p99_us", "<=", eevdf, "p99_us")),
        "prio": (f"{prio} probe p99 <= {PRIO_P99_VS_EEVDF_MAX}x {label}'s",
                 *_cmp(rows, prio, "p99_us", "<=", eevdf, "p99_us", PRIO_P99_VS_EEVDF_MAX)),
        "prio_nice": (f"{prio} probe p99 < {nice}'s", *_cmp(rows, prio, "p99_us", "<", nice, "p99_us")),
    }


def evaluate(result_rows):
    """[(target, status, detail)] for the issue's targets."""
    rows = {r["contender"]: r for r in result_rows}
    lat = _latency_targets(rows)
    out = [
        lat["p50"],
        lat["p99"],
        ("scx_pilot hackbench time <= EEVDF's", *_cmp(rows, PLAIN, "hackbench_s", "<=", "eevdf", "hackbench_s")),
        (f"scx_pilot hog throughput >= {THROUGHPUT_MIN}x EEVDF's",
         *_cmp(rows, PLAIN, "hog_bogo_ops", ">=", "eevdf", "hog_bogo_ops", THROUGHPUT_MIN)),
        ("scx_pilot-user probe p99 <= EEVDF's", *_cmp(rows, USER, "p99_us", "<=", "eevdf", "p99_us")),
        lat["prio"],
        (f"scx_pilot-prio probe p99 <= {PRIO_P99_VS_FLOOR_MAX:g}x floor's",
         *_cmp(rows, PRIO, "p99_us", "<=", "floor", "p99_us", PRIO_P99_VS_FLOOR_MAX)),
    ]
    for ours in (PLAIN, PRIO):
        for peer in PEERS:
            out.append((f"{ours} latencies below {peer}'s", *_below_peer(rows, ours, peer)))
    out.append(lat["prio_nice"])
    return out


def evaluate_unpinned(result_rows):
    """The latency targets again with the probe unpinned (guest-bench.sh's
    *-unpinned rows), beside the issue's: cyclictest pins its thread to one
    CPU, so the issue's probe never takes the scheduler's CPU choice at
    wakeup; most latency-sensitive tasks do. [] when none was measured."""
    rows = {r["contender"]: r for r in result_rows}
    if not any(name.endswith(sched_figures.UNPINNED) for name in rows):
        return []
    return list(_latency_targets(rows, sched_figures.UNPINNED).values())


def _ratio(rows, a, b, key):
    va, vb = rows.get(a, {}).get(key), rows.get(b, {}).get(key)
    return f"{va / vb:.2f}x" if va is not None and vb else "n/a"


def floor_context(result_rows):
    """The latency targets beside what sched_ext itself costs a wakeup (not
    targets: a sched_ext scheduler cannot go below its floor)."""
    rows = {r["contender"]: r for r in result_rows}
    if SCX_FLOOR not in rows:
        return []
    return [
        f"Beside sched_ext's own floor ({SCX_FLOOR}: every wakeup preempts, no policy; not a target): "
        f"{SCX_FLOOR} p50 {_ratio(rows, SCX_FLOOR, 'eevdf', 'p50_us')} EEVDF's, "
        f"p99 {_ratio(rows, SCX_FLOOR, 'eevdf-nice-20', 'p99_us')} eevdf-nice-20's; "
        f"{PLAIN} p50 {_ratio(rows, PLAIN, SCX_FLOOR, 'p50_us')} {SCX_FLOOR}'s, "
        f"{PRIO} p99 {_ratio(rows, PRIO, SCX_FLOOR, 'p99_us')} {SCX_FLOOR}'s."
    ]


# The ratio _cmp() ends a detail with, e.g. "(1.08x)".
RATIO = re.compile(r"\(([0-9.]+x)\)$")
# The figures _below_peer() names in a miss, e.g. "max_us (10456 vs 10249)".
PEER_MISS = re.compile(r"(\w+_us) \(")


def _boot_cell(boot_checks, i):
    """Target i's verdict and ratio in each boot, and in how many boots it held:
    a miss of the medians that held in two boots of three is noise, one that
    held in none is not."""
    parts = []
    for checks in boot_checks:
        if i >= len(checks):
            parts.append("n/a")
            continue
        _, status, detail = checks[i]
        m = RATIO.search(detail)
        # A peer comparison names the figures that were not below instead.
        worse = " ".join(PEER_MISS.findall(detail)) if status == "MISS" else ""
        parts.append(f"{status} {m.group(1)}" if m else f"{status} {worse}".strip())
    held = sum(1 for checks in boot_checks if i < len(checks) and checks[i][1] == "PASS")
    return " / ".join(parts) + f" ({held} of {len(boot_checks)})"


def _section(checks, boot_checks, held_line):
    """A targets table (with a per-boot column when boot_checks is given) and
    the line that counts what held."""
    per_boot = boot_checks is not None
    lines = ["| target | verdict | figures |" + (" per boot |" if per_boot else ""),
             "|---|---|---|" + ("---|" if per_boot else "")]
    lines += [f"| {t} | {s} | {d} |" + (f" {_boot_cell(boot_checks, i)} |" if per_boot else "")
              for i, (t, s, d) in enumerate(checks)]
    passed = sum(1 for _, s, _ in checks if s == "PASS")
    line = held_line(passed, len(checks))
    if per_boot:
        line += " Per boot: " + ", ".join(str(sum(1 for _, s, _ in c if s == "PASS")) for c in boot_checks) + "."
    return lines + ["", line]


def table(result_rows, boots=None):
    """The targets on result_rows (a summary's medians); with boots (each boot's
    rows), each target's verdict in every boot beside it."""
    boot_checks = [evaluate(b) for b in boots] if boots else None
    lines = _section(evaluate(result_rows), boot_checks, lambda n, m: f"{n} of {m} targets hold.")
    unpinned = evaluate_unpinned(result_rows)
    if unpinned:
        lines += ["", "The latency targets with the probe unpinned (not the issue's probe: cyclictest pins it "
                  "to one CPU, so only these runs take the CPU choice at wakeup):", ""]
        lines += _section(unpinned, [evaluate_unpinned(b) for b in boots] if boots else None,
                          lambda n, m: f"{n} of {m} hold unpinned.")
    context = floor_context(result_rows)
    return lines + ([""] + context if context else [])


def main():
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    boots = [b["results"] for b in doc.get("boots", [])]
    print("\n".join(table(doc["results"], boots or None)))


if __name__ == "__main__":
    main()
