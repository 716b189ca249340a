#!/bin/sh
# Runs inside the sched_ext VM (busybox sh): the scheduler benchmark. For each
# contender in turn, in this one boot: CPU hogs that oversubscribe the vCPUs
# plus a 1 ms periodic latency probe (cyclictest), then hackbench (three runs). First
# the floor: the same probe on the idle guest under EEVDF (no hogs, no
# hackbench), the best latency this guest and host can give.
# Prints "BENCH <contender> <key>=<value>" lines and the probe's histogram
# between "HIST-BEGIN <contender>" and "HIST-END <contender>".
# Environment: AGENT (scx_pilot in the guest), PEERS (dir with scx_bpfland,
# scx_rustland; optional), DURATION (seconds of each latency run, default 6).
set -u
export HOME=/tmp
AGENT=${AGENT:?}
PEERS=${PEERS:-/peers}
DURATION=${DURATION:-6}
API=http://127.0.0.1:8080
cpus=$(nproc)
hogs_n=$((cpus * 3))
sched_pid=""
# shellcheck source=scripts/vm/guest-lib.sh
. /guest-lib.sh

start_sched() { # BINARY ARGS...
	"$@" >/tmp/sched.log 2>&1 &
	sched_pid=$!
	if ! wait_state enabled; then
		echo "bench: $1 did not attach"
		sed 's/^/sched: /' /tmp/sched.log
		return 1
	fi
	sleep 1
}
stop_sched() {
	[ -n "$sched_pid" ] || return 0
	kill -INT "$sched_pid" 2>/dev/null
	wait "$sched_pid" 2>/dev/null
	sched_pid=""
	wait_state disabled || echo "bench: scheduler still $(state) after stop"
}

# The latency probe of the floor and every contender.
probe_cmd=$(probe_script "$DURATION")

# CPU hogs for the probe's duration (stress-ng matrixprod, counting bogo ops),
# then the probe. PREFIX runs the probe (e.g. nice -n -20); STRATEGY=1 posts a
# priority strategy for the probe's pid before it starts.
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
	wait "$probe"
	wait "$hogs"
	ops=$(bogo_ops_of </tmp/hogs.out)
	echo "BENCH $name hog_bogo_ops=${ops:-0}"
	print_hist "$name" /tmp/probe.out
	# hackbench: many short-lived chatty tasks; lower time is better. The
	# median of three runs: one run swings 1.5-3.3 s under EEVDF in one boot.
	hb=$(for _ in 1 2 3; do hackbench_s; done |
		sort -n | sed -n 2p)
	echo "BENCH $name hackbench_s=${hb:-0}"
}

echo "bench: kernel $(uname -r), $cpus vCPUs, $hogs_n hogs, probe ${DURATION}s"
# The floor: no hogs, nothing else running, EEVDF.
sh -c "$probe_cmd" >/tmp/probe.out 2>&1
print_hist floor /tmp/probe.out
run_latency eevdf 0
run_latency eevdf-nice-20 0 nice -n -20

for peer in scx_bpfland scx_rustland; do
	if [ -x "$PEERS/$peer" ]; then
		start_sched "$PEERS/$peer" && run_latency "$peer" 0
		stop_sched
	else
		echo "bench: $peer not in the image, skipped"
	fi
done

if start_sched "$AGENT" --auth none --sample-interval-ms 1000; then
	run_latency scx_pilot 0
	run_latency scx_pilot-prio 1
	stop_sched
fi
if start_sched "$AGENT" --auth none --sample-interval-ms 1000 --dispatch user; then
	run_latency scx_pilot-user 0
	stop_sched
fi
echo "bench: done"
