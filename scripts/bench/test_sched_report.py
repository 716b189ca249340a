"""Tests of the scheduler benchmark's report scripts on synthesized guest logs
in guest-bench.sh's format. Run: python3 -m unittest discover -s scripts/bench
(tests/bench_report.rs does, under cargo test)."""
import json
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sched_figures  # noqa: E402
import sched_history  # noqa: E402
import sched_targets  # noqa: E402


def hist_block(name, buckets, over=0, max_us=None):
    """A HIST block as guest-bench.sh prints it: cyclictest's zero-padded
    "bucket count" lines, then the overflow and max lines."""
    lines = [f"HIST-BEGIN {name}"]
    lines += [f"{us:06d} {n:06d}" for us, n in sorted(buckets.items())]
    lines += [f"# Histogram Overflows: {over:05d}",
              f"# Max Latencies: {max_us if max_us is not None else max(buckets):05d}", f"HIST-END {name}"]
    return lines


def spread(p50, p99, n=1000):
    """Buckets whose p50 is p50, p90 halfway to p99, and p99 is p99 (n samples)."""
    return {p50: n * 60 // 100, (p50 + p99) // 2: n * 35 // 100, p99: n * 4 // 100, p99 * 2: n // 100}


# contender: (p50 us, p99 us, hog bogo ops, hackbench s); the floor has no load.
GOOD = {
    "floor": (120, 900, None, None),
    "eevdf": (950, 20000, 200, 3.0),
    "eevdf-nice-20": (290, 8000, 160, 5.0),
    "scx_floor": (700, 4000, 150, 4.0),
    "scx_bpfland": (5500, 25000, 200, 6.0),
    "scx_rustland": (6900, 28000, 260, 1.8),
    "scx_pilot": (800, 15000, 198, 2.9),
    "scx_pilot-prio": (250, 1700, 300, 2.0),
    "scx_pilot-user": (900, 19000, 210, 3.1),
}
# The same with the probe unpinned (no hackbench in those runs).
UNPINNED = {
    "eevdf-unpinned": (900, 18000, 205, None),
    "eevdf-nice-20-unpinned": (300, 5000, 170, None),
    "scx_pilot-unpinned": (850, 16000, 199, None),
    "scx_pilot-prio-unpinned": (260, 2000, 290, None),
}


def rows_of(figures):
    """The result rows of one boot whose contenders have these figures."""
    data, _ = sched_figures.parse(guest_log(figures).splitlines())
    return sched_figures.with_ratios(sched_figures.rows_from(data))


def guest_log(figures):
    lines = ["bench: kernel 7.3.4+deb13-cloud-amd64, 2 vCPUs, 6 hogs, probe 6s"]
    for name, (p50, p99, ops, hb) in figures.items():
        if ops is not None:
            lines.append(f"BENCH {name} hog_bogo_ops={ops}")
        lines += hist_block(name, spread(p50, p99))
        if hb is not None:
            lines.append(f"BENCH {name} hackbench_s={hb}")
    lines.append("bench: done")
    return "\n".join(lines) + "\n"


def read(path):
    with open(path) as f:
        return f.read()


def run(script, *args):
    return subprocess.run([sys.executable, os.path.join(HERE, script), *args], check=True,
                          capture_output=True, text=True).stdout


class Figures(unittest.TestCase):
    def test_parse_percentiles_and_ratios(self):
        data, cpus = sched_figures.parse(guest_log(GOOD).splitlines())
        self.assertEqual(cpus, 2)
        rows = {r["contender"]: r for r in sched_figures.with_ratios(sched_figures.rows_from(data))}
        self.assertEqual(list(rows)[:2], ["floor", "eevdf"])
        self.assertEqual(rows["eevdf"]["p50_us"], 950)
        self.assertEqual(rows["eevdf"]["p90_us"], 10475)
        self.assertEqual(rows["eevdf"]["p99_us"], 20000)
        self.assertEqual(rows["eevdf"]["max_us"], 40000)
        self.assertAlmostEqual(rows["eevdf"]["p99_vs_floor"], 20000 / 900, places=3)
        self.assertAlmostEqual(rows["scx_pilot"]["p50_vs_eevdf"], 800 / 950, places=3)
        self.assertAlmostEqual(rows["scx_pilot"]["hackbench_time_vs_eevdf"], 2.9 / 3.0, places=3)
        self.assertAlmostEqual(rows["scx_pilot"]["throughput_vs_eevdf"], 0.99, places=3)
        self.assertIsNone(rows["floor"]["hackbench_s"])
        self.assertIsNone(rows["floor"]["throughput_vs_eevdf"])

    def test_overflows_count_as_beyond_the_histogram(self):
        data, _ = sched_figures.parse(hist_block("x", {100: 50}, over=50, max_us=45000))
        row = sched_figures.rows_from(data)[0]
        self.assertEqual(row["p50_us"], 100)
        self.assertEqual(row["p99_us"], sched_figures.HIST_LIMIT_US)
        self.assertEqual(row["samples"], 100)

    def test_rounds_of_a_contender_are_pooled(self):
        lines = (["BENCH x hog_bogo_ops=100"] + hist_block("x", {100: 90, 900: 10}, max_us=950) +
                 ["BENCH x hackbench_s=2.0", "BENCH x hog_bogo_ops=300"] +
                 hist_block("x", {200: 100}, max_us=400) + ["BENCH x hackbench_s=4.0"])
        data, _ = sched_figures.parse(lines)
        row = sched_figures.rows_from(data)[0]
        # 200 samples: 90 at 100 us, 100 at 200 us, 10 at 900 us.
        self.assertEqual(row["samples"], 200)
        self.assertEqual((row["p50_us"], row["p90_us"], row["p99_us"]), (200, 200, 900))
        self.assertEqual(row["max_us"], 950)
        self.assertEqual((row["hog_bogo_ops"], row["hackbench_s"]), (200, 3.0))

    def test_unpinned_rows_compare_with_unpinned_eevdf(self):
        data, _ = sched_figures.parse(guest_log(dict(GOOD, **UNPINNED)).splitlines())
        rows = {r["contender"]: r for r in sched_figures.with_ratios(sched_figures.rows_from(data))}
        self.assertEqual(list(rows)[:5], ["floor", "eevdf", "eevdf-unpinned", "eevdf-nice-20",
                                          "eevdf-nice-20-unpinned"])
        self.assertAlmostEqual(rows["scx_pilot-unpinned"]["p50_vs_eevdf"], 850 / 900, places=3)
        self.assertAlmostEqual(rows["scx_pilot-unpinned"]["throughput_vs_eevdf"], 199 / 205, places=3)
        self.assertAlmostEqual(rows["scx_pilot"]["p50_vs_eevdf"], 800 / 950, places=3)
        self.assertAlmostEqual(rows["scx_pilot-prio-unpinned"]["p99_vs_floor"], 2000 / 900, places=3)
        self.assertIsNone(rows["scx_pilot-unpinned"]["hackbench_time_vs_eevdf"])

    def test_median_over_boots(self):
        boots = [[{"contender": "eevdf", "p50_us": v, "hackbench_s": None}] for v in (900, 100, 500)]
        self.assertEqual(sched_figures.median_rows(boots)[0]["p50_us"], 500)
        self.assertIsNone(sched_figures.median_rows(boots)[0]["hackbench_s"])


class Targets(unittest.TestCase):
    def verdicts(self, figures):
        data, _ = sched_figures.parse(guest_log(figures).splitlines())
        rows = sched_figures.with_ratios(sched_figures.rows_from(data))
        return {c.target: c.status for c in sched_targets.evaluate(rows)}

    def test_all_hold(self):
        v = self.verdicts(GOOD)
        self.assertEqual(set(v.values()), {"PASS"}, v)
        self.assertEqual(len(v), 12)

    def test_misses_are_named(self):
        bad = dict(GOOD, **{"scx_pilot": (7500, 8000, 180, 3.5), "scx_pilot-prio": (250, 9000, 300, 2.0)})
        v = self.verdicts(bad)
        for target in ("scx_pilot probe p50 <= EEVDF's", "scx_pilot hackbench time <= EEVDF's",
                       "scx_pilot hog throughput >= 0.95x EEVDF's", "scx_pilot-prio probe p99 <= 0.3x EEVDF's",
                       "scx_pilot-prio probe p99 <= 2x floor's", "scx_pilot latencies below scx_bpfland's",
                       "scx_pilot-prio probe p99 < eevdf-nice-20's"):
            self.assertEqual(v[target], "MISS", target)
        self.assertEqual(v["scx_pilot probe p99 <= EEVDF's"], "PASS")

    def test_floor_context_gives_ratios_to_scx_floor(self):
        data, _ = sched_figures.parse(guest_log(GOOD).splitlines())
        rows = sched_figures.with_ratios(sched_figures.rows_from(data))
        context = " ".join(sched_targets.floor_context(rows))
        # 700/950 p50 vs EEVDF, 4000/8000 p99 vs nice -20, 800/700, 1700/4000.
        for part in ("scx_floor p50 0.74x EEVDF's", "p99 0.50x eevdf-nice-20's",
                     "scx_pilot p50 1.14x scx_floor's", "scx_pilot-prio p99 0.42x scx_floor's"):
            self.assertIn(part, context)
        without = [r for r in rows if r["contender"] != "scx_floor"]
        self.assertEqual(sched_targets.floor_context(without), [])
        self.assertNotIn("sched_ext's own floor", "\n".join(sched_targets.table(without)))

    def test_unpinned_targets_are_reported_apart(self):
        data, _ = sched_figures.parse(guest_log(dict(GOOD, **UNPINNED)).splitlines())
        rows = sched_figures.with_ratios(sched_figures.rows_from(data))
        self.assertEqual(len(sched_targets.evaluate(rows)), 12)
        v = {c.target: c.status for c in sched_targets.evaluate_unpinned(rows)}
        self.assertEqual(set(v.values()), {"PASS"}, v)
        self.assertEqual(len(v), 4)
        md = "\n".join(sched_targets.table(rows))
        self.assertIn("12 of 12 targets hold.", md)
        self.assertIn("4 of 4 hold unpinned.", md)
        # A miss of the unpinned probe is named there, and the pinned verdicts do not move.
        bad = dict(GOOD, **dict(UNPINNED, **{"scx_pilot-prio-unpinned": (260, 6000, 290, None)}))
        data, _ = sched_figures.parse(guest_log(bad).splitlines())
        rows = sched_figures.with_ratios(sched_figures.rows_from(data))
        v = {c.target: c.status for c in sched_targets.evaluate_unpinned(rows)}
        self.assertEqual(v["scx_pilot-prio-unpinned probe p99 < eevdf-nice-20-unpinned's"], "MISS")
        self.assertEqual(v["scx_pilot-prio-unpinned probe p99 <= 0.3x eevdf-unpinned's"], "MISS")
        self.assertEqual(v["scx_pilot-unpinned probe p50 <= eevdf-unpinned's"], "PASS")
        self.assertIn("2 of 4 hold unpinned.", "\n".join(sched_targets.table(rows)))
        # Without unpinned runs (older logs) there is no such section.
        data, _ = sched_figures.parse(guest_log(GOOD).splitlines())
        rows = sched_figures.with_ratios(sched_figures.rows_from(data))
        self.assertEqual(sched_targets.evaluate_unpinned(rows), [])
        self.assertNotIn("unpinned", "\n".join(sched_targets.table(rows)))

    def test_per_boot_verdicts(self):
        """A summary's targets show each boot's verdict: here the plain probe's
        p50 misses in boot 2 only, and the peer comparison on one figure."""
        slow = dict(GOOD, **{"scx_pilot": (1000, 15000, 198, 2.9), "scx_bpfland": (900, 25000, 200, 6.0)})
        boots = [rows_of(GOOD), rows_of(slow), rows_of(GOOD)]
        md = "\n".join(sched_targets.table(sched_figures.median_rows(boots), boots))
        self.assertIn("| scx_pilot probe p50 <= EEVDF's | PASS | 800 <= 950 (0.84x) | "
                      "PASS 0.84x / MISS 1.05x / PASS 0.84x (2 of 3) |", md)
        self.assertIn("| scx_pilot latencies below scx_bpfland's | PASS | below on p50_us, p90_us, p99_us, "
                      "max_us | PASS / MISS p50_us / PASS (2 of 3) |", md)
        self.assertIn("12 of 12 targets hold. Per boot: 12, 10, 12.", md)
        # One boot's report has neither the column nor the per-boot count.
        single = "\n".join(sched_targets.table(boots[0]))
        self.assertNotIn("per boot", single)
        self.assertNotIn("Per boot", single)

    def test_per_boot_unpinned_and_unmeasured(self):
        """The unpinned table's column is of the unpinned targets; a boot that
        did not measure a contender is n/a there and not counted as a boot."""
        full = rows_of(dict(GOOD, **UNPINNED))
        worse = rows_of(dict(GOOD, **dict(UNPINNED, **{"scx_pilot-prio-unpinned": (260, 6000, 290, None)})))
        no_user = rows_of(dict({k: f for k, f in GOOD.items() if k != "scx_pilot-user"}, **UNPINNED))
        boots = [full, worse, no_user]
        md = "\n".join(sched_targets.table(sched_figures.median_rows(boots), boots))
        self.assertIn("| scx_pilot-prio-unpinned probe p99 < eevdf-nice-20-unpinned's | PASS | 2000 < 5000 (0.40x) | "
                      "PASS 0.40x / MISS 1.20x / PASS 0.40x (2 of 3) |", md)
        self.assertIn("| scx_pilot-user probe p99 <= EEVDF's | PASS | 19000 <= 20000 (0.95x) | "
                      "PASS 0.95x / PASS 0.95x / n/a (2 of 2) |", md)
        self.assertIn("4 of 4 hold unpinned. Per boot: 4, 2, 4.", md)

    def test_history_counts_boots_per_run(self):
        slow = rows_of(dict(GOOD, **{"scx_pilot": (1000, 15000, 198, 2.9)}))
        no_user = rows_of({k: f for k, f in GOOD.items() if k != "scx_pilot-user"})
        runs = [[rows_of(GOOD), slow, rows_of(GOOD)], [slow, no_user]]
        counts = dict(sched_history.tally(runs))
        self.assertEqual(counts["scx_pilot probe p50 <= EEVDF's"], [(2, 3), (1, 2)])
        self.assertEqual(counts["scx_pilot probe p99 <= EEVDF's"], [(3, 3), (2, 2)])
        # A boot without the contender is not a boot of that target.
        self.assertEqual(counts["scx_pilot-user probe p99 <= EEVDF's"], [(3, 3), (1, 1)])
        md = "\n".join(sched_history.table(["a", "b"], runs))
        self.assertIn("| scx_pilot probe p50 <= EEVDF's | 2 of 3 | 1 of 2 | 3 of 5 |", md)
        self.assertEqual(sched_history.run_name("x/sched-20261206T095835Z-summary.json"), "20261206T095835Z")

    def test_missing_contender_is_not_applicable(self):
        v = self.verdicts({k: f for k, f in GOOD.items() if k not in ("scx_rustland", "scx_pilot-user")})
        self.assertEqual(v["scx_pilot-user probe p99 <= EEVDF's"], "n/a")
        self.assertEqual(v["scx_pilot latencies below scx_rustland's"], "n/a")
        self.assertEqual(v["scx_pilot latencies below scx_bpfland's"], "PASS")


class Scripts(unittest.TestCase):
    def test_boots_and_summary(self):
        with tempfile.TemporaryDirectory() as d:
            boots = []
            for i, (scale, load) in enumerate(((1.0, "0.10 0.20 0.30"), (3.0, "0.90 0.50 0.40"), (1.2, ""))):
                figs = {k: (p50, int(p99 * scale), ops, hb) for k, (p50, p99, ops, hb) in GOOD.items()}
                log = os.path.join(d, f"b{i}.log")
                with open(log, "w") as f:
                    f.write(guest_log(figs))
                prefix = os.path.join(d, f"sched-x-boot{i + 1}")
                out = run("sched_report.py", log, prefix, "--kernel", "7.3.4", "--boot", str(i + 1),
                          "--host-load", load, "--high-load", "0.5", "--qemu-threads", "pinned")
                self.assertIn("| scx_pilot-user |", out)
                self.assertIn("qemu's threads: pinned.", out)
                boots.append(prefix + ".json")
            self.assertIn("Warning: host 1-min load 0.9 > 0.5", read(boots[1][:-5] + ".md"))
            summary = os.path.join(d, "sched-x-summary")
            out = run("sched_summary.py", summary, *boots)
            doc = json.loads(read(summary + ".json"))
            rows = {r["contender"]: r for r in doc["results"]}
            self.assertEqual(rows["eevdf"]["p99_us"], 24000)  # median of 20000, 60000, 24000
            self.assertEqual(rows["floor"]["p99_us"], 1080)
            self.assertAlmostEqual(rows["eevdf"]["p99_vs_floor"], 24000 / 1080, places=3)
            self.assertEqual([b["boot"] for b in doc["boots"]], [1, 2, 3])
            self.assertEqual(doc["meta"]["host_load"], [[0.1, 0.2, 0.3], [0.9, 0.5, 0.4], None])
            md = read(summary + ".md")
            self.assertIn("median of 3 boots", md)
            self.assertIn("qemu's threads: pinned.", md)
            self.assertEqual(doc["meta"]["qemu_threads"], "pinned")
            self.assertIn("boot 2: host 1-min load 0.9", md)
            self.assertIn("| scx_pilot-prio probe p99 <= 2x floor's | PASS |", md)
            self.assertIn("| eevdf | 950 / 950 / 950 | 20000 / 60000 / 24000 |", md)
            self.assertEqual(out.strip().splitlines()[0], md.strip().splitlines()[0])
            svg = ET.parse(summary + ".svg").getroot()
            text = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
            for want in ("floor p99", "hackbench time vs EEVDF", "hog throughput vs EEVDF", "scx_pilot-user"):
                self.assertIn(want, text)
            self.assertIn("12 of 12 targets hold. Per boot: 12, 12, 12.", run("sched_targets.py", summary + ".json"))
            self.assertIn("| per boot |", md)
            hist = run("sched_history.py", summary + ".json", summary + ".json")
            self.assertIn("| scx_pilot probe p50 <= EEVDF's | 3 of 3 | 3 of 3 | 6 of 6 |", hist)
            bad = subprocess.run([sys.executable, os.path.join(HERE, "sched_history.py"), boots[0]],
                                 capture_output=True, text=True)
            self.assertNotEqual(bad.returncode, 0)
            self.assertIn("not a summary of several boots", bad.stderr)


if __name__ == "__main__":
    unittest.main()
