"""wakeup_report.py on synthesized guest-wakeup.sh logs (run by `cargo test`)."""
import unittest

import wakeup_report as wr

HOG = "   stress-ng-cpu-200     [000] d.h..     {ts}: {ev}: {body}"
PROBE = "      cyclictest-{tid}     [000] .....     {ts}: sys_clock_nanosleep -> 0x0"


def wakeup(t0_us, tid, enqueue=10, switch_in=8, ret=16, waited=False, timer=2, fn="hrtimer_wakeup"):
    """Trace lines of one timer wakeup of @tid starting at @t0_us."""

    def ts(us):
        return f"{us / 1e6:.6f}"

    t = t0_us
    lines = [HOG.format(ts=ts(t), ev="hrtimer_expire_entry", body=f"hrtimer=0000 function={fn} now=1")]
    t += timer
    lines.append(HOG.format(ts=ts(t), ev="sched_waking", body=f"comm=cyclictest pid={tid} prio=120 target_cpu=000"))
    t += enqueue
    lines.append(HOG.format(ts=ts(t), ev="sched_wakeup", body=f"comm=cyclictest pid={tid} prio=120 target_cpu=000"))
    if waited:
        t += 100
        lines.append(HOG.format(ts=ts(t), ev="sched_switch",
                                body="prev_comm=stress-ng-cpu prev_pid=200 prev_prio=120 prev_state=R ==> "
                                     "next_comm=stress-ng-cpu next_pid=201 next_prio=120"))
    t += switch_in
    lines.append(HOG.format(ts=ts(t), ev="sched_switch",
                            body="prev_comm=stress-ng-cpu prev_pid=200 prev_prio=120 prev_state=R ==> "
                                 f"next_comm=cyclictest next_pid={tid} next_prio=120"))
    t += ret
    lines.append(PROBE.format(tid=tid, ts=ts(t)))
    return lines


def run(name, tid, body):
    return [f"PROBE {name} {tid}", f"TRACE-BEGIN {name}", *body, f"TRACE-END {name}"]


class WakeupReport(unittest.TestCase):
    def summary(self, lines):
        return wr.summarize(wr.parse_log(lines))

    def test_segments_of_each_wakeup(self):
        log = run("eevdf", "140", wakeup(1_000_000, "140") + wakeup(1_001_000, "140", enqueue=12, ret=30))
        segs, n, waited = self.summary(log)["eevdf"]
        self.assertEqual((n, waited), (2, 0))
        self.assertEqual(sorted(segs["enqueue (waking -> wakeup)"]), [10, 12])
        self.assertEqual(segs["switch in (wakeup -> switch)"], [8, 8])
        self.assertEqual(sorted(segs["return (switch -> syscall exit)"]), [16, 30])
        self.assertEqual(sorted(segs["total (timer -> syscall exit)"]), [36, 52])
        self.assertEqual(segs["timer -> waking"], [2, 2])

    def test_rounds_pool_and_contenders_stay_apart(self):
        log = (run("scx_pilot", "300", wakeup(5_000_000, "300", enqueue=15))
               + run("scx_floor", "400", wakeup(6_000_000, "400", enqueue=11))
               + run("scx_pilot", "301", wakeup(7_000_000, "301", enqueue=17)))
        s = self.summary(log)
        self.assertEqual(sorted(s["scx_pilot"][0]["enqueue (waking -> wakeup)"]), [15, 17])
        self.assertEqual(s["scx_floor"][0]["enqueue (waking -> wakeup)"], [11])

    def test_waited_wakeups_are_counted_not_cut(self):
        log = run("scx_pilot", "300", wakeup(1_000_000, "300") + wakeup(1_001_000, "300", waited=True))
        segs, n, waited = self.summary(log)["scx_pilot"]
        self.assertEqual((n, waited), (2, 1))
        self.assertEqual(len(segs["total (timer -> syscall exit)"]), 1)

    def test_other_threads_and_other_wakers_are_ignored(self):
        # cyclictest's main thread (pid 299) wakes too, and a wakeup not by the
        # probe's timer (another hrtimer callback) has no timer segment to cut.
        log = run("scx_pilot", "300",
                  wakeup(1_000_000, "299") + wakeup(1_001_000, "300", fn="tick_nohz_handler")
                  + wakeup(1_002_000, "300"))
        segs, n, _ = self.summary(log)["scx_pilot"]
        self.assertEqual(n, 1)

    def test_a_run_without_the_probe_thread_gives_no_wakeups(self):
        log = run("eevdf", "none", wakeup(1_000_000, "140"))
        self.assertEqual(self.summary(log)["eevdf"][1], 0)

    def test_report_table(self):
        log = run("eevdf", "140", wakeup(1_000_000, "140")) + run("scx_pilot", "300", [])
        text = wr.report(self.summary(log), "7.3.4", "0.5 0.6 0.7")
        self.assertIn("kernel 7.3.4, host load 0.5 0.6 0.7", text)
        self.assertIn("| segment | eevdf | scx_pilot |", text)
        self.assertIn("| wakeups | 1 | 0 |", text)
        self.assertIn("| enqueue (waking -> wakeup) | 10 / 10 / 10.0 | - |", text)
        self.assertIn("| total (timer -> syscall exit) | 36 / 36 / 36.0 | - |", text)

    def test_trimmed_mean_drops_a_tenth_at_each_end(self):
        values = [1000] + [10] * 8 + [12] * 10 + [0]
        # sorted: 0, 10 x 8, 12 x 10, 1000; two cut at each end
        self.assertAlmostEqual(wr.trimmed_mean(values), (10 * 7 + 12 * 9) / 16)
        self.assertEqual(wr.trimmed_mean([7]), 7)
        self.assertEqual(wr.cell([5, 5, 5]), "5 / 5 / 5.0")


if __name__ == "__main__":
    unittest.main()
