"""Tests of the BPF cost benchmark's report on a synthesized guest log in
guest-bpf-cost.sh's format. Run: python3 -m unittest discover -s scripts/bench."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpf_cost_report  # noqa: E402

LOG = """noise before
COST kernel-prio pilot_enqueue 1000 12000000
COST kernel-prio pilot_dispatch 500 20000000
WAKEUPS kernel-prio 900
HIST-BEGIN kernel-prio
000100 000450
000300 000450
# Histogram Overflows: 00000
HIST-END kernel-prio
COST user-plain pilot_enqueue 10 1000
WAKEUPS user-plain 5
bpf-cost: done
""".splitlines(keepends=True)


class ReportTest(unittest.TestCase):
    def test_parse_reads_every_case_and_program(self):
        cases = bpf_cost_report.parse(LOG)
        self.assertEqual(list(cases), ["kernel-prio", "user-plain"])
        self.assertEqual(cases["kernel-prio"]["programs"]["pilot_dispatch"], [(500, 20000000)])
        self.assertEqual(cases["kernel-prio"]["wakeups"], 900)

    def test_report_gives_mean_per_call_busiest_first_and_latency(self):
        text = bpf_cost_report.report(LOG, "7.3.4", "0.10 0.20 0.30")
        prio = text.split("## kernel-prio")[1].split("## user-plain")[0]
        self.assertIn("900 probe wakeups, probe p50 100 us, p99 300 us", prio)
        self.assertLess(prio.index("pilot_dispatch"), prio.index("pilot_enqueue"))
        self.assertIn("| pilot_dispatch | 500 | 40000 | 20.0 |", prio)
        self.assertIn("| pilot_enqueue | 1000 | 12000 | 12.0 |", prio)
        self.assertIn("| all | | | 32.0 |", prio)

    def test_rounds_and_a_base_build_side_by_side(self):
        log = [
            "COST kernel-plain pilot_enqueue 100 500000\n", "WAKEUPS kernel-plain 50\n",
            "COST base/kernel-plain pilot_enqueue 100 1000000\n",
            "COST base/kernel-plain pilot_dispatch 10 100000\n", "WAKEUPS base/kernel-plain 40\n",
            "COST kernel-plain pilot_enqueue 300 900000\n", "WAKEUPS kernel-plain 60\n",
        ]
        cases = bpf_cost_report.parse(log)
        self.assertEqual(cases["kernel-plain"]["programs"]["pilot_enqueue"], [(100, 500000), (300, 900000)])
        self.assertEqual(cases["kernel-plain"]["wakeups"], 110)
        text = bpf_cost_report.report(log, "7.3.4", "0 0 0")
        self.assertNotIn("## base/", text)
        self.assertIn("## kernel-plain: 110 probe wakeups; base: 40 probe wakeups", text)
        # 1.4 ms over 400 calls = 3500 ns (rounds 5000 and 3000) against 10000 ns.
        self.assertIn("| pilot_enqueue | 400 | 3500 (5000 / 3000) | 10000 | 0.35x | 1.4 | 1.0 |", text)
        self.assertIn("| pilot_dispatch | 0 | - | 10000 | - | 0.0 | 0.1 |", text)
        self.assertIn("| all | | | | | 1.4 | 1.1 |", text)

    def test_report_says_so_when_nothing_ran(self):
        text = bpf_cost_report.report(["VM-TEST-EXIT=1\n"], "7.3.4", "0 0 0")
        self.assertIn("did not run", text)


if __name__ == "__main__":
    unittest.main()
