#!/usr/bin/env python3
"""Issue 20's targets checked against benchmark rows (normally the median of
three boots): PASS, MISS, or n/a when a contender or figure is missing. A
benchmark verdict, not a test: the exit code is 0 either way.

Usage: sched_targets.py RESULTS.json  (a per-boot or summary JSON; a summary's
targets also show each boot's verdict)
"""
import json
import sys
from typing import NamedTuple

import sched_figures

PLAIN, PRIO, USER = "scx_pilot", "scx_pilot-prio", "scx_pilot-user"
# sched_ext's own floor (bpf/floor.bpf.c): every wakeup preempts, nothing else.
SCX_FLOOR = "scx_floor"
PEERS = ["scx_bpfland", "scx_rustland"]
PEER_FIGURES = ["p50_us", "p90_us", "p99_us", "max_us"]
THROUGHPUT_MIN = 0.95
PRIO_P99_VS_EEVDF_MAX = 0.3
PRIO_P99_VS_FLOOR_MAX = 2.0


NA = "n/a"


class Check(NamedTuple):
    """One target's verdict: PASS, MISS or n/a; the figures; and their short
    form for a per-boot cell (the ratio, or the figures a peer was not beaten on)."""
    target: str
    status: str
    detail: str
    brief: str = ""


def _cmp(target, rows, a, ka, op, b, kb, factor=1.0):
    """The Check of rows[a][ka] OP factor * rows[b][kb]."""
    va, vb = rows.get(a, {}).get(ka), rows.get(b, {}).get(kb)
    if va is None or vb is None:
        return Check(target, NA, f"{a} {ka}={va}, {b} {kb}={vb}")
    limit = factor * vb
    ok = {"<=": va <= limit, ">=": va >= limit, "<": va < limit}[op]
    scale = "" if factor == 1.0 else f"{factor:g}x "
    status = "PASS" if ok else "MISS"
    if not vb:
        return Check(target, status, f"{va:g} vs 0")
    ratio = f"{va / vb:.2f}x"
    return Check(target, status, f"{va:g} {op} {scale}{vb:g} ({ratio})", ratio)


def _below_peer(rows, ours, peer):
    target = f"{ours} latencies below {peer}'s"
    if ours not in rows or peer not in rows:
        return Check(target, NA, f"{ours if ours not in rows else peer} not measured")
    worse = [k for k in PEER_FIGURES
             if rows[ours].get(k) is None or rows[peer].get(k) is None or rows[ours][k] >= rows[peer][k]]
    if worse:
        return Check(target, "MISS", "not below on " +
                     ", ".join(f"{k} ({rows[ours].get(k)} vs {rows[peer].get(k)})" for k in worse), " ".join(worse))
    return Check(target, "PASS", "below on " + ", ".join(PEER_FIGURES))


def _latency_targets(rows, u=""):
    """Issue 20's latency targets against EEVDF, keyed p50, p99, prio and
    prio_nice, for the probe as the issue runs it (u="") or unpinned
    (u=sched_figures.UNPINNED: every contender's *-unpinned row)."""
    eevdf, nice, plain, prio = sched_figures.EEVDF + u, "eevdf-nice-20" + u, PLAIN + u, PRIO + u
    label = eevdf if u else "EEVDF"
    return {
        "p50": _cmp(f"{plain} probe p50 <= {label}'s", rows, plain, "p50_us", "<=", eevdf, "p50_us"),
        "p99": _cmp(f"{plain} probe p99 <= {label}'s", rows, plain, "p99_us", "<=", eevdf, "p99_us"),
        "prio": _cmp(f"{prio} probe p99 <= {PRIO_P99_VS_EEVDF_MAX}x {label}'s",
                     rows, prio, "p99_us", "<=", eevdf, "p99_us", PRIO_P99_VS_EEVDF_MAX),
        "prio_nice": _cmp(f"{prio} probe p99 < {nice}'s", rows, prio, "p99_us", "<", nice, "p99_us"),
    }


def evaluate(result_rows):
    """[Check] for the issue's targets."""
    rows = {r["contender"]: r for r in result_rows}
    lat = _latency_targets(rows)
    out = [
        lat["p50"],
        lat["p99"],
        _cmp("scx_pilot hackbench time <= EEVDF's", rows, PLAIN, "hackbench_s", "<=", "eevdf", "hackbench_s"),
        _cmp(f"scx_pilot hog throughput >= {THROUGHPUT_MIN}x EEVDF's",
             rows, PLAIN, "hog_bogo_ops", ">=", "eevdf", "hog_bogo_ops", THROUGHPUT_MIN),
        _cmp("scx_pilot-user probe p99 <= EEVDF's", rows, USER, "p99_us", "<=", "eevdf", "p99_us"),
        lat["prio"],
        _cmp(f"scx_pilot-prio probe p99 <= {PRIO_P99_VS_FLOOR_MAX:g}x floor's",
             rows, PRIO, "p99_us", "<=", "floor", "p99_us", PRIO_P99_VS_FLOOR_MAX),
    ]
    for ours in (PLAIN, PRIO):
        for peer in PEERS:
            out.append(_below_peer(rows, ours, peer))
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


def held(checks):
    """(boots in which the checks of one target held, boots that measured it):
    a boot without the contenders (n/a) is neither."""
    measured = [c for c in checks if c.status != NA]
    return sum(c.status == "PASS" for c in measured), len(measured)


def by_target(boot_checks, target):
    """Each boot's Check of @target (n/a where the boot did not measure it)."""
    return [next((c for c in checks if c.target == target), Check(target, NA, "not measured"))
            for checks in boot_checks]


def _boot_cell(checks):
    """One target's verdict and short figures in each boot, and in how many
    boots it held: a miss of the medians that held in two boots of three is
    noise, one that held in none is not."""
    parts = " / ".join(f"{c.status} {c.brief}".strip() for c in checks)
    h, n = held(checks)
    return f"{parts} ({h} of {n})"


def _section(checks, boot_checks, held_line):
    """A targets table (with a per-boot column when boot_checks is given) and
    the line that counts what held."""
    per_boot = boot_checks is not None
    lines = ["| target | verdict | figures |" + (" per boot |" if per_boot else ""),
             "|---|---|---|" + ("---|" if per_boot else "")]
    lines += [f"| {c.target} | {c.status} | {c.detail} |" +
              (f" {_boot_cell(by_target(boot_checks, c.target))} |" if per_boot else "")
              for c in checks]
    line = held_line(held(checks)[0], len(checks))
    if per_boot:
        line += " Per boot: " + ", ".join(str(held(c)[0]) for c in boot_checks) + "."
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


def boots_of(doc, path):
    """Each boot's result rows in a summary JSON (sched_summary.py's)."""
    if not doc.get("boots"):
        raise SystemExit(f"{path}: not a summary of several boots (no \"boots\"; a boot's own JSON?)")
    return [b["results"] for b in doc["boots"]]


def main():
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    boots = boots_of(doc, sys.argv[1]) if "boots" in doc else None
    print("\n".join(table(doc["results"], boots)))


if __name__ == "__main__":
    main()
