#!/usr/bin/env python3
"""Evaluate a guest console log from guest-sched.sh.

Prints every CHECK the guest made, computes latency percentiles from the
cyclictest histograms (HIST-BEGIN/HIST-END blocks), adds the host-side checks
that compare them, prints the measured RESULT figures, and exits 1 when any
check failed (0 otherwise).
Usage: report.py GUEST_LOG [--json OUT]
"""
import json
import re
import sys


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
    for name, h in sorted(hists.items()):
        for q in (0.5, 0.9, 0.99):
            figures[f"{name}_p{int(q * 100)}_us"] = percentile(h, q)
        figures[f"{name}_samples"] = sum(h["buckets"].values()) + h["overflows"]

    plain, prio = hists.get("probe-plain"), hists.get("probe-prio")
    if plain and prio:
        p_plain, p_prio = percentile(plain, 0.99), percentile(prio, 0.99)
        # The emulating host's own scheduling noise (its vCPU threads share two
        # cores with whatever else runs) lands on both kinds of rounds alike,
        # since they alternate, and it dominates the last percent. So: p99 must
        # be lower, and p90 at most half, for the effect to count as clear. The
        # stricter targets against EEVDF and the peers are benchmarks, not tests.
        ok = p_plain is not None and p_prio is not None and p_prio < p_plain
        checks.append((ok, "priority-latency-p99",
                       f"probe p99 with a priority strategy {p_prio} us vs without {p_plain} us (need lower)"))
        n_plain, n_prio = percentile(plain, 0.9), percentile(prio, 0.9)
        ok = n_plain is not None and n_prio is not None and n_prio * 2 <= n_plain
        checks.append((ok, "priority-latency-p90",
                       f"probe p90 with a priority strategy {n_prio} us vs without {n_plain} us (need <= 0.5x)"))
        m_plain, m_prio = percentile(plain, 0.5), percentile(prio, 0.5)
        ok = m_plain is not None and m_prio is not None and m_prio < m_plain
        checks.append((ok, "priority-latency-p50",
                       f"probe p50 with a priority strategy {m_prio} us vs without {m_plain} us (need lower)"))
        for name, h in (("probe-plain", plain), ("probe-prio", prio)):
            n = figures[f"{name}_samples"]
            checks.append((n >= 2000, f"{name}-samples", f"{n} wakeups measured"))
    else:
        checks.append((False, "priority-latency", "cyclictest histograms missing from the guest log"))

    # User dispatch mode: the priority probe stays on the BPF path there, so it
    # must beat the plain one as clearly as in kernel mode (p99 lower). How the
    # plain probe's wakeups compare with kernel mode is a figure, not a check.
    uplain, uprio = hists.get("user-probe-plain"), hists.get("user-probe-prio")
    if uplain and uprio:
        u_plain, u_prio = percentile(uplain, 0.99), percentile(uprio, 0.99)
        ok = u_plain is not None and u_prio is not None and u_prio < u_plain
        checks.append((ok, "user-priority-latency-p99",
                       f"user mode: probe p99 with a priority strategy {u_prio} us vs without {u_plain} us (need lower)"))
        k_plain = percentile(plain, 0.99) if plain else None
        if k_plain and u_plain is not None:
            figures["user_vs_kernel_wakeup_p99"] = round(u_plain / k_plain, 3)
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
    print("vm-test: measured (software-emulated VM; compare ratios only)")
    for k, v in sorted(figures.items()):
        print(f"  {k} = {v}")
    if "--json" in sys.argv:
        out = sys.argv[sys.argv.index("--json") + 1]
        with open(out, "w") as f:
            json.dump({"checks": [{"ok": o, "name": n, "detail": d} for o, n, d in checks],
                       "figures": figures}, f, indent=2, default=str)
    failed = [n for ok, n, _ in checks if not ok]
    if not checks or failed:
        print(f"vm-test: FAILED: {', '.join(failed) or 'no checks ran'}")
        return 1
    print(f"vm-test: all {len(checks)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
