#!/usr/bin/env python3
"""Evaluate a guest console log from guest-sched.sh.

Prints every CHECK the guest made, computes latency percentiles from the
cyclictest histograms (HIST-BEGIN/HIST-END blocks), adds the host-side checks
that compare them, prints the measured RESULT figures, and exits 1 when any
check failed (0 otherwise).
Usage: report.py GUEST_LOG [--json OUT] [--single-threaded-tcg]
"""
import json
import re
import sys

# How far the plain probe's p50 may trail EEVDF's (see the check).
PLAIN_VS_EEVDF_P50 = 3
# How far the plain probe's p95 in user mode may trail EEVDF's p99 (see the check).
USER_P95_VS_EEVDF_P99 = 1.0
# How far the priority probe's percentile may trail the plain one's where both
# take the same path at that percentile (see the checks): the emulator's noise.
# 1.25 failed a clean clone of 495b1bd at p90 (292 against 231 us, 1.26x) whose
# scheduler code had passed at 1.05x (247 against 236) that day; a priority
# task that waited for a slice end again would be several times over 1.5.
PRIO_VS_PLAIN = 1.5


def parse(lines):
    checks, results, hists, cur = [], {}, {}, None
    for line in lines:
        line = line.rstrip("\r\n")
        m = re.match(r"^CHECK (ok|FAIL) ([^:]+): (.*)$", line)
        if m:
            checks.append((m.group(1) == "ok", m.group(2), m.group(3)))
            continue
        m = re.match(r"^RESULT (\w+)=(\S*)$", line)
        if m:
            results[m.group(1)] = m.group(2)
            continue
        m = re.match(r"^HIST-(BEGIN|END) (\S+)$", line)
        if m:
            cur = hists.setdefault(m.group(2), {"buckets": {}, "overflows": 0}) if m.group(1) == "BEGIN" else None
            continue
        if cur is not None:
            m = re.match(r"^(\d+)\s+(\d+)$", line)
            if m:
                # int() with base 10: cyclictest pads with zeros, which are not octal.
                k = int(m.group(1), 10)
                cur["buckets"][k] = cur["buckets"].get(k, 0) + int(m.group(2), 10)
                continue
            m = re.match(r"^# Histogram Overflows:\s+(\d+)", line)
            if m:
                cur["overflows"] += int(m.group(1), 10)
    return checks, results, hists


def percentile(hist, q):
    """Latency (us) at quantile q; overflows count as beyond the last bucket."""
    buckets = sorted(hist["buckets"].items())
    total = sum(n for _, n in buckets) + hist["overflows"]
    if total == 0:
        return None
    need, seen = q * total, 0
    for us, n in buckets:
        seen += n
        if seen >= need:
            return us
    return float("inf")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], errors="replace") as f:
        checks, results, hists = parse(f)

    figures = {k: v for k, v in results.items()}
    single_threaded = "--single-threaded-tcg" in sys.argv
    unchecked = []  # (name, why): checks this kind of run cannot make
    for name, h in sorted(hists.items()):
        for q in (0.5, 0.9, 0.99):
            figures[f"{name}_p{int(q * 100)}_us"] = percentile(h, q)
        figures[f"{name}_samples"] = sum(h["buckets"].values()) + h["overflows"]

    def at_most(check, a_name, b_name, q, factor, what, q_b=None):
        """Check that histogram a_name's percentile q is at most factor x b_name's
        percentile q_b (q when not given)."""
        q_b = q if q_b is None else q_b
        a = percentile(hists[a_name], q) if a_name in hists else None
        b = percentile(hists[b_name], q_b) if b_name in hists else None
        ok = a is not None and b is not None and a <= factor * b
        checks.append((ok, check, f"probe p{int(q * 100)} {what.format(a=a, b=b)} (need <= {factor}x)"))

    def prio_vs_plain(prefix, q, factor):
        """Check that the priority probe's percentile q is at most factor x the plain one's."""
        mode = "in user mode " if prefix else ""
        at_most(f"{prefix}priority-latency-p{int(q * 100)}", f"{prefix}probe-prio",
                f"{prefix}probe-plain", q, factor,
                mode + "with a priority strategy {a} us vs without {b} us")

    # The emulating host's own scheduling noise (its vCPU threads share two
    # cores with whatever else runs) lands on both kinds of rounds alike,
    # since they alternate. Plain wakers preempt hogs too (EEVDF-style), so
    # beside plain hogs the priority probe takes the same path as the plain
    # one: p50 and p90 must be no worse (PRIO_VS_PLAIN), and p99, which is the
    # emulator's own tail for both (1.0-4.1 ms per round either way, one
    # boot, eight rounds each), is a figure. What only a priority strategy
    # buys is the long-slice check below.
    if "probe-plain" in hists and "probe-prio" in hists:
        for q in (0.5, 0.9):
            prio_vs_plain("", q, PRIO_VS_PLAIN)
        for name in ("probe-plain", "probe-prio"):
            n = figures[f"{name}_samples"]
            checks.append((n >= 2000, f"{name}-samples", f"{n} wakeups measured"))
    else:
        checks.append((False, "priority-latency", "cyclictest histograms missing from the guest log"))
    # The EEVDF rounds run before attach and after SIGTERM, not between the
    # agent's rounds, so host load that changes in between moves their tails:
    # the priority probe's lead over EEVDF is a figure here, a target of
    # `make bench-sched` (all contenders back to back, medians of three boots).
    for q in ("p50", "p90", "p99"):
        a, b = figures.get(f"probe-prio_{q}_us"), figures.get(f"probe-eevdf_{q}_us")
        if a is not None and b and a != float("inf") and b != float("inf"):
            figures[f"priority_vs_eevdf_{q}"] = round(a / b, 3)

    # The default policy's regression guard: the plain probe wakes within 3x of
    # EEVDF's p50 beside the same hogs (EEVDF rounds before and after, this boot).
    # Under TCG the p50 of either scheduler lands in one of two modes about 2x
    # apart from round to round (6.16.3, one boot: EEVDF 161-308 us, scx_pilot
    # 162-309 us), so 2x failed on noise; the regression it guards against (a
    # waking task queued behind a hog's whole slice) was 25x.
    if "probe-plain" in hists and "probe-eevdf" in hists:
        a, b = percentile(hists["probe-plain"], 0.5), percentile(hists["probe-eevdf"], 0.5)
        ok = a is not None and b is not None and a <= PLAIN_VS_EEVDF_P50 * max(b, 50)
        checks.append((ok, "plain-latency-vs-eevdf",
                       f"probe p50 without a strategy {a} us vs EEVDF {b} us (need <= {PLAIN_VS_EEVDF_P50}x)"))
    else:
        checks.append((False, "plain-latency-vs-eevdf", "probe-plain or probe-eevdf histogram missing"))

    # Slices as configured: a 50 ms waker beside a lone hog on its vCPU waits
    # for no stretched 20 ms slice (2 ms, ended at the next 4 ms tick; bound 10 ms), and
    # beside a hog with a 1 ms strategy at most 6 ms: once the strategy's slice
    # is used up the waker preempts it without waiting for the tick.
    for name, bound in (("slice-default", 10000), ("slice-strategy", 6000)):
        h = hists.get(name)
        p90 = percentile(h, 0.9) if h else None
        checks.append((p90 is not None and p90 <= bound, f"{name}-wait",
                       f"50 ms waker beside a lone hog: p90 {p90} us (need <= {bound} us)"))

    # A normal waker waits out a task's strategy slice (20 ms); a priority
    # waker preempts it at once. A regression in the priority path shows here
    # as a wait of a slice, not as emulator noise (its tail: 1-4 ms): so the
    # p95 as well, which catches priority wakeups that, about one in ten,
    # waited behind a resumed hog for the rest of its slice. Not the p99: of
    # 100 wakeups that is the second longest, and in one slow boot (p50 513
    # us, 2.5x the usual) three of them took 12-18 ms. The emulator stalls
    # that long with no hog at all: the same priority waker on an idle vCPU 1
    # had 0-2 wakeups over 5 ms per 400 (two over 25 ms in 1,200), beside the
    # hog 0-1 (one boot, three rounds each).
    plain, prio = hists.get("long-slice-plain"), hists.get("long-slice-prio")
    a = percentile(prio, 0.9) if prio else None
    b = percentile(plain, 0.9) if plain else None
    a95 = percentile(prio, 0.95) if prio else None
    checks.append((a is not None and b is not None and 4 * a <= b and a95 <= 10000,
                   "priority-preempts-strategy-slice",
                   f"50 ms waker beside a hog on a 20 ms strategy slice: p90 {a} us with a priority strategy, "
                   f"{b} us without (need <= 1/4); p95 {a95} us with it (need <= 10000 us, half the slice)"))

    # User dispatch mode: the priority probe stays on the BPF path there, so at
    # p50 it must beat the plain one, whose wakeups round-trip through the
    # dispatcher. Not by much any more: the dispatcher preempts for a plain
    # waker rather than wait for a slice end, so above the median both wait
    # for the same things, and at p90 they tied (315 against 313 us in a clean
    # clone of 2026-12-05, which failed a 1.0x bound there): p90 must be no
    # worse, as in kernel mode. Two rounds each, not three, so p99 rests on 20
    # wakeups and an overloaded emulating host pushes both past the histogram
    # (30 ms): p50 and p90 are the checks. How the plain probe's wakeups
    # compare with kernel mode is a figure (target: within 2x), not a check.
    if "user-probe-plain" in hists and "user-probe-prio" in hists:
        prio_vs_plain("user-", 0.5, 1.0)
        prio_vs_plain("user-", 0.9, PRIO_VS_PLAIN)
        # Issue 20's bar for user mode, coarsely: no more than one in twenty
        # of the plain probe's wakeups waits as long as EEVDF's worst one in a
        # hundred (its p99, 1.6-2 ms here, stays a hog's slice), so the
        # plain probe's p95 at most USER_P95_VS_EEVDF_P99 x EEVDF's p99. A
        # dispatcher whose decisions wait for slice ends puts most wakeups
        # behind a hog for up to a tick (4 ms) and fails it. Not EEVDF's p90
        # or p95: on a fast host fewer than a tenth of EEVDF's wakeups wait
        # behind a hog, and its p90 swung from 204 to 861 us between two
        # clean clones of one day. Not our p99, which the bench judges over
        # three boots: user mode has phases in which a run of wakeups waits
        # one tick each (4.6-4.8 ms; the base build of 2026-12-06 too), and
        # one such phase of 45 wakeups in a 1,000-wakeup round put the p99 of
        # a clean clone of 2026-12-06 at 4,728 us against EEVDF's 2,041 (p95
        # 871 us) while every other figure was as usual.
        # Not in single-threaded TCG (vm-test.sh's last resort against the
        # emulator's text-patching race): there both vCPUs take turns on one
        # host thread, and each decision, made by the dispatcher on the other
        # vCPU, waits for that vCPU's turn (8.7 against EEVDF's 5.1 ms in the
        # one such run, where every other check passed).
        if single_threaded:
            unchecked.append(("user-latency-vs-eevdf", "single-threaded TCG: the user-mode probe's "
                              "tail depends on both vCPUs running at once (figures below)"))
        else:
            at_most("user-latency-vs-eevdf", "user-probe-plain", "probe-eevdf", 0.95,
                    USER_P95_VS_EEVDF_P99, "in user mode without a strategy {a} us vs EEVDF's p99 {b} us",
                    q_b=0.99)
        for q in ("p50", "p90", "p99"):
            u, k = figures[f"user-probe-plain_{q}_us"], figures.get(f"probe-plain_{q}_us")
            if u is not None and k and u != float("inf") and k != float("inf"):
                figures[f"user_vs_kernel_wakeup_{q}"] = round(u / k, 3)
    else:
        checks.append((False, "user-priority-latency", "user-mode cyclictest histograms missing from the guest log"))

    def total(prefix):
        try:
            return sum(float(v) for k, v in results.items() if k.startswith(prefix))
        except ValueError:
            return 0.0

    e, p = total("eevdf_bogo_ops"), total("pilot_bogo_ops")
    if e > 0:
        figures["throughput_vs_eevdf"] = round(p / e, 3)
    u = total("user_bogo_ops")
    if p > 0:
        figures["throughput_user_vs_kernel"] = round(u / p, 3)

    print("vm-test: checks")
    for ok, name, detail in checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    for name, why in unchecked:
        print(f"  [not checked] {name}: {why}")
    print("vm-test: measured (software-emulated VM; compare ratios only)")
    for k, v in sorted(figures.items()):
        print(f"  {k} = {v}")
    if "--json" in sys.argv:
        out = sys.argv[sys.argv.index("--json") + 1]
        with open(out, "w") as f:
            json.dump({"checks": [{"ok": o, "name": n, "detail": d} for o, n, d in checks],
                       "not_checked": [{"name": n, "why": w} for n, w in unchecked],
                       "figures": figures}, f, indent=2, default=str)
    failed = [n for ok, n, _ in checks if not ok]
    if not checks or failed:
        print(f"vm-test: FAILED: {', '.join(failed) or 'no checks ran'}")
        return 1
    print(f"vm-test: all {len(checks)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
