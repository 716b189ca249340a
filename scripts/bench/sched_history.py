#!/usr/bin/env python3
"""Issue 20's targets over several runs of the scheduler benchmark: for each
target, in how many boots of each run it held, and in how many of all. One
run's medians move across a target's line from run to run of one build; the
count over every boot says which targets a build meets and which it misses.
A benchmark record, not a test: the exit code is 0 either way.

Usage: sched_history.py SUMMARY.json...  (sched_summary.py's JSONs, oldest first)
"""
import json
import os
import sys

import sched_targets


def run_name(path):
    """sched-<stamp>-summary.json -> <stamp>."""
    name = os.path.basename(path)
    name = name.removesuffix(".json").removesuffix("-summary")
    return name.removeprefix("sched-")


def tally(runs):
    """[(target, [(held, boots that measured it) per run])] in evaluate()'s
    order; runs is a list of each run's per-boot result rows."""
    checks = [[sched_targets.evaluate(rows) for rows in boots] for boots in runs]
    order = list(dict.fromkeys(c.target for run in checks for boot in run for c in boot))
    return [(t, [sched_targets.held(sched_targets.by_target(run, t)) for run in checks]) for t in order]


def table(names, runs):
    rows = tally(runs)
    lines = ["| target | " + " | ".join(names) + " | all boots |", "|---|" + "---|" * (len(names) + 1)]
    for target, per_run in rows:
        held, boots = sum(h for h, _ in per_run), sum(b for _, b in per_run)
        lines.append(f"| {target} | " + " | ".join(f"{h} of {b}" for h, b in per_run) + f" | {held} of {boots} |")
    return lines


def main():
    paths = sys.argv[1:]
    if not paths:
        sys.exit("usage: sched_history.py SUMMARY.json...")
    runs = []
    for p in paths:
        with open(p) as f:
            runs.append(sched_targets.boots_of(json.load(f), p))
    print("\n".join(["Boots in which each of issue 20's targets held, per run:", ""] +
                    table([run_name(p) for p in paths], runs)))


if __name__ == "__main__":
    main()
