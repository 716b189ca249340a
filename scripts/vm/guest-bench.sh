#!/bin/sh
# Runs inside the sched_ext VM (busybox sh): the scheduler benchmark. For each
# contender in turn, in this one boot: CPU hogs that oversubscribe the vCPUs
# plus a 1 ms periodic latency probe (cyclictest), then hackbench (HACKBENCH_RUNS runs).
# EEVDF, EEVDF nice -20 and scx_pilot (with and without the strategy) run the
# probe a second time unpinned (NAME-unpinned, no hackbench): cyclictest pins
# its thread to CPU 0, so the pinned probe never takes the CPU-choice path.
# The floor: the same probe on the idle guest under EEVDF (no hogs, no
# hackbench), the best latency this guest and host can give.
# All of it ROUNDS times, every other round in reverse order: the host drifts
# during a boot, and a contender always measured last would carry the drift.
# The report pools a contender's rounds (one histogram, the median of each
# figure).
# Prints "BENCH <contender> <key>=<value>" lines and the probe's histogram
# between "HIST-BEGIN <contender>" and "HIST-END <contender>".
# Environment: AGENT (scx_pilot in the guest), PEERS (dir with scx_floor, scx_bpfland,
# scx_rustland; optional), DURATION (seconds of each latency run, default 6),
# ROUNDS (default 2), HACKBENCH_RUNS (per contender and round, default 5).
set -u
export HOME=/tmp
AGENT=${AGENT:?}
PEERS=${PEERS:-/peers}
DURATION=${DURATION:-6}
ROUNDS=${ROUNDS:-2}
HACKBENCH_RUNS=${HACKBENCH_RUNS:-5}
API=http://127.0.0.1:8080
cpus=$(nproc)
hogs_n=$((cpus * 3))
# shellcheck source=scripts/vm/guest-lib.sh
. /guest-lib.sh

# The latency probe of the floor and every contender.
probe_cmd=$(probe_script "$DURATION")

# CPU hogs for the probe's duration (stress-ng matrixprod, counting bogo ops),
# then the probe. PREFIX runs the probe (e.g. nice -n -20); STRATEGY=1 posts a
# priority strategy for the probe's pid before it starts. A NAME ending in
# -unpinned lets the probe's thread run on every CPU (unpin_probe) and skips
# hackbench, which the probe's pinning does not change.
run_latency() { # NAME STRATEGY PREFIX...
	name=$1 strategy=$2
	shift 2
	stress-ng --cpu "$hogs_n" --cpu-method matrixprod -t "$((DURATION + 3))" --metrics-brief \
		>/tmp/hogs.out 2>&1 &
	hogs=$!
	sleep 1
	# exec keeps the pid: a strategy posted now is in place when cyclictest starts.
	"$@" sh -c "$probe_cmd" >/tmp/probe.out 2>&1 &
	probe=$!
	[ "$strategy" = 1 ] && post_priority "$probe"
	pinned=1
	case $name in *-unpinned)
		unpin_probe "$probe" && pinned=0 ;;
	esac
	wait "$probe"
	wait "$hogs"
	ops=$(bogo_ops_of </tmp/hogs.out)
	echo "BENCH $name hog_bogo_ops=${ops:-0}"
	case $name in *-unpinned)
		# A probe that stayed pinned would pass off pinned figures as unpinned ones.
		if [ "$pinned" = 1 ]; then
			echo "bench: $name: the probe's thread could not be unpinned; no figures"
		else
			print_hist "$name" /tmp/probe.out
		fi
		return ;;
	esac
	print_hist "$name" /tmp/probe.out
	# hackbench: many short-lived chatty tasks; lower time is better. One
	# line per run, which the report pools with the boot's other rounds (the
	# median of ROUNDS x HACKBENCH_RUNS runs): runs of one contender in one
	# boot spread by 15%, more than the contenders differ.
	i=0
	while [ "$i" -lt "$HACKBENCH_RUNS" ]; do
		hb=$(hackbench_s)
		echo "BENCH $name hackbench_s=${hb:-0}"
		i=$((i + 1))
	done
}

# One contender (a scheduler may serve two: scx_pilot with and without the
# priority strategy share one attach, in the order $strategies gives).
run_contender() { # NAME
	case $1 in
	floor) # no hogs, nothing else running, EEVDF
		sh -c "$probe_cmd" >/tmp/probe.out 2>&1
		print_hist floor /tmp/probe.out ;;
	eevdf | eevdf-unpinned) run_latency "$1" 0 ;;
	eevdf-nice-20 | eevdf-nice-20-unpinned) run_latency "$1" 0 nice -n -20 ;;
	scx_floor | scx_bpfland | scx_rustland)
		if [ -x "$PEERS/$1" ]; then
			start_sched "$PEERS/$1" && run_latency "$1" 0
			stop_sched
		else
			echo "bench: $1 not in the image, skipped"
		fi ;;
	scx_pilot) # with and without the strategy, probe pinned and not, in the round's order
		if start_sched "$AGENT" --auth none --sample-interval-ms 1000; then
			for strategy in $strategies; do
				for pin in $pins; do
					name=scx_pilot
					[ "$strategy" = 1 ] && name=$name-prio
					[ "$pin" = 0 ] && name=$name-unpinned
					run_latency "$name" "$strategy"
				done
			done
			stop_sched
		fi ;;
	scx_pilot-user)
		if start_sched "$AGENT" --auth none --sample-interval-ms 1000 --dispatch user; then
			run_latency scx_pilot-user 0
			stop_sched
		fi ;;
	esac
}

contenders="floor eevdf eevdf-unpinned eevdf-nice-20 eevdf-nice-20-unpinned scx_floor scx_bpfland
scx_rustland scx_pilot scx_pilot-user"
reversed=""
for c in $contenders; do reversed="$c $reversed"; done
echo "bench: kernel $(uname -r), $cpus vCPUs, $hogs_n hogs, probe ${DURATION}s, $ROUNDS rounds"
round=1
while [ "$round" -le "$ROUNDS" ]; do
	order=$contenders strategies="0 1" pins="1 0"
	[ $((round % 2)) -eq 0 ] && order=$reversed strategies="1 0" pins="0 1"
	echo "bench: round $round of $ROUNDS:" $order
	for c in $order; do run_contender "$c"; done
	round=$((round + 1))
done
echo "bench: done"
