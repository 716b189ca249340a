#!/usr/bin/env python3
"""Where a wakeup's time goes: the probe's wakeups in a guest-wakeup.sh log,
cut into segments by ftrace events on its CPU, per contender (rounds pooled).

Segments of one wakeup of the probe's measuring thread:
  timer -> waking     hrtimer_expire_entry of its timer to sched_waking
  enqueue             sched_waking to sched_wakeup: the kernel's enqueue
                      (ops.enqueue under sched_ext)
  switch in           sched_wakeup to the sched_switch to the probe: the
                      preempted task's put (ops.stopping, its ops.enqueue) and
                      the probe's pick (ops.running)
  return              that sched_switch to the probe's return from
                      clock_nanosleep: the context switch and the way out
  total               timer to return
A wakeup that another task's switch-in came between (the probe waited for a
CPU) is counted as waited and left out of the segments, which describe the
path of a wakeup that preempts at once.

Usage: wakeup_report.py LOG KERNEL "LOAD1 LOAD5 LOAD15" > wakeup-<stamp>.md
"""
import re
import sys
from collections import defaultdict

SEGMENTS = (
    ("timer -> waking", "exp", "waking"),
    ("enqueue (waking -> wakeup)", "waking", "wakeup"),
    ("switch in (wakeup -> switch)", "wakeup", "switch"),
    ("return (switch -> syscall exit)", "switch", "exit"),
    ("total (timer -> syscall exit)", "exp", "exit"),
)
QUANTILES = (0.5, 0.9)

EVENT = re.compile(
    r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S+\s+"
    r"(?P<ts>\d+\.\d+): (?P<ev>\w+)(?::| ->)\s?(?P<body>.*)$"
)


def quantile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def trimmed_mean(values):
    """The mean of the middle 80 %: the timestamps are whole microseconds, and
    an A/B within a boot needs a tenth; the tails swing with the host."""
    s = sorted(values)
    cut = len(s) // 10
    mid = s[cut:len(s) - cut] or s
    return sum(mid) / len(mid)


def cell(values):
    if not values:
        return "-"
    return " / ".join([str(quantile(values, q)) for q in QUANTILES] + [f"{trimmed_mean(values):.1f}"])


def parse_log(lines):
    """{contender: [(probe tid, [(ts_us, event, body, pid)])]} in log order."""
    runs = defaultdict(list)
    tids = {}
    cur = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        words = line.split()
        if len(words) == 3 and words[0] == "PROBE":
            tids[words[1]] = words[2]
        elif len(words) == 2 and words[0] == "TRACE-BEGIN":
            cur = (words[1], [])
        elif len(words) == 2 and words[0] == "TRACE-END" and cur:
            runs[cur[0]].append((tids.get(cur[0]), cur[1]))
            cur = None
        elif cur is not None:
            m = EVENT.match(line)
            if m:
                ts_us = round(float(m["ts"]) * 1e6)
                cur[1].append((ts_us, m["ev"], m["body"], m["pid"]))
    return runs


def wakeups(tid, events):
    """Each wakeup of thread @tid by its timer: (times by mark, waited)."""
    out = []
    last_exp = None  # the timer that expired last, if nothing came since
    w = None
    for ts, ev, body, pid in events:
        if ev == "hrtimer_expire_entry":
            last_exp = ts if "function=hrtimer_wakeup" in body else None
            continue
        if ev == "sched_waking" and f" pid={tid} " in f" {body} ":
            w = {"exp": last_exp, "waking": ts} if last_exp is not None else None
            waited = False
        elif w is None:
            pass
        elif ev == "sched_wakeup" and f" pid={tid} " in f" {body} ":
            w["wakeup"] = ts
        elif ev == "sched_switch" and "wakeup" in w and "switch" not in w:
            if f"next_pid={tid} " in body + " ":
                w["switch"] = ts
            else:
                waited = True
        elif ev == "sys_clock_nanosleep" and pid == tid and "switch" in w:
            w["exit"] = ts
            out.append((w, waited))
            w = None
        last_exp = None
    return out


def summarize(runs):
    """{contender: (segment values {name: [us]}, wakeups, waited)}."""
    out = {}
    for name, rs in runs.items():
        segs = defaultdict(list)
        n = waited_n = 0
        for tid, events in rs:
            if not tid or tid == "none":
                continue
            for w, waited in wakeups(tid, events):
                n += 1
                if waited:
                    waited_n += 1
                    continue
                for seg, a, b in SEGMENTS:
                    segs[seg].append(w[b] - w[a])
        out[name] = (segs, n, waited_n)
    return out


def report(summary, kernel, load):
    names = list(summary)
    rows = [
        ["wakeups"] + [str(summary[c][1]) for c in names],
        ["waited"] + [str(summary[c][2]) for c in names],
    ]
    for seg, _, _ in SEGMENTS:
        row = [seg]
        row += [cell(summary[c][0].get(seg)) for c in names]
        rows.append(row)
    quantiles = " / ".join(f"p{int(q * 100)}" for q in QUANTILES) + " / the mean of the middle 80 %"
    text = [
        f"# Where a wakeup's time goes, kernel {kernel}, host load {load}",
        "",
        "The 1 ms probe pinned to CPU 0 among CPU hogs in the emulated VM, its wakeups cut into",
        f"segments by ftrace events on CPU 0: {quantiles}, in us (rounds pooled;",
        "tracing inflates every event alike, so compare contenders with each other, not with",
        "`make bench-sched`).",
        "*waited*: wakeups after which another task ran first; they are left out of the",
        "segments. Rerun: `make bench-wakeup`.",
        "",
        "| segment | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    text += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(text) + "\n"


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    with open(argv[1], errors="replace") as f:
        runs = parse_log(f)
    if not runs:
        sys.exit(f"{argv[1]}: no traced runs (TRACE-BEGIN/TRACE-END) in the log")
    sys.stdout.write(report(summarize(runs), argv[2], argv[3]))


if __name__ == "__main__":
    main(sys.argv)
