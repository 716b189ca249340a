#!/bin/sh
# Runs inside the sched_ext VM (busybox sh): where one wakeup's time goes. For
# each contender in turn, CPU hogs and the 1 ms probe pinned to CPU 0 (as in
# guest-bench.sh); 2 s into the probe, TRACE_S seconds of CPU 0's scheduler
# events are recorded with ftrace: the probe's timer expiring, sched_waking and
# sched_wakeup (between them the kernel's enqueue, ops.enqueue under
# sched_ext), sched_switch (after the preempted task's ops.stopping and
# ops.enqueue and the probe's ops.running) and the probe's return from
# clock_nanosleep. Tracing costs every event alike: compare the segments of
# contenders with each other, not with make bench-sched's figures.
# Contenders: eevdf, eevdf-nice-20, scx_floor, scx_pilot, scx_pilot-prio (a
# priority strategy for the probe), ROUNDS times, every other round reversed.
# Prints "PROBE <contender> <tid>" (the probe's measuring thread), then the
# events between "TRACE-BEGIN <contender>" and "TRACE-END <contender>", and
# the probe's histogram (HIST-BEGIN/HIST-END), per contender and round.
# With BASE (a second scx_pilot build in the guest) its runs, base/scx_pilot and
# base/scx_pilot-prio, are in each round beside ours.
# Environment: AGENT (scx_pilot in the guest), FLOOR (scx_floor in the guest),
# BASE (optional), TRACE_S (seconds traced per run, default 1), ROUNDS (default 2).
set -u
export HOME=/tmp
AGENT=${AGENT:?}
FLOOR=${FLOOR:?}
BASE=${BASE:-}
TRACE_S=${TRACE_S:-1}
ROUNDS=${ROUNDS:-2}
DURATION=$((TRACE_S + 4))
API=http://127.0.0.1:8080
# shellcheck source=scripts/vm/guest-lib.sh
. /guest-lib.sh
hogs_n=$(($(nproc) * 3))
T=/sys/kernel/tracing
events="timer/hrtimer_expire_entry sched/sched_waking sched/sched_wakeup sched/sched_switch
syscalls/sys_exit_clock_nanosleep"
for e in $events; do
	[ -e "$T/events/$e/enable" ] || { echo "wakeup: no trace event $e in this kernel"; exit 1; }
done
echo 0 >"$T/tracing_on"
echo 1 >"$T/tracing_cpumask" # CPU 0, where cyclictest pins the probe
echo 20000 >"$T/buffer_size_kb"
for e in $events; do echo 1 >"$T/events/$e/enable"; done

trace_probe() { # NAME STRATEGY PREFIX...
	name=$1 strategy=$2
	shift 2
	stress-ng --cpu "$hogs_n" --cpu-method matrixprod -t "$((DURATION + 2))" >/dev/null 2>&1 &
	hogs=$!
	sleep 1
	"$@" sh -c "$(probe_script "$DURATION")" >/tmp/probe.out 2>&1 &
	probe=$!
	[ "$strategy" = 1 ] && post_priority "$probe"
	sleep 3 # the probe_script's own second, then two of the probe
	# The measuring thread is the one cyclictest starts last.
	tid=$(ls /proc/"$probe"/task 2>/dev/null | sort -n | tail -n 1)
	echo "PROBE $name ${tid:-none}"
	echo >"$T/trace"
	echo 1 >"$T/tracing_on"
	sleep "$TRACE_S"
	echo 0 >"$T/tracing_on"
	echo "TRACE-BEGIN $name"
	grep -v '^#' "$T/trace"
	echo "TRACE-END $name"
	wait "$probe"
	wait "$hogs"
	print_hist "$name" /tmp/probe.out
}

run_contender() { # NAME
	case $1 in
	eevdf) trace_probe eevdf 0 ;;
	eevdf-nice-20) trace_probe eevdf-nice-20 0 nice -n -20 ;;
	scx_floor)
		start_sched "$FLOOR" && trace_probe scx_floor 0
		stop_sched ;;
	scx_pilot | scx_pilot-prio | base/scx_pilot | base/scx_pilot-prio)
		strategy=0 binary=$AGENT
		case $1 in *-prio) strategy=1 ;; esac
		case $1 in base/*) binary=$BASE ;; esac
		start_sched "$binary" --auth none --sample-interval-ms 1000 && trace_probe "$1" "$strategy"
		stop_sched ;;
	esac
}

contenders="eevdf eevdf-nice-20 scx_floor scx_pilot scx_pilot-prio"
[ -z "$BASE" ] || contenders="$contenders base/scx_pilot base/scx_pilot-prio"
reversed=""
for c in $contenders; do reversed="$c $reversed"; done
echo "wakeup: kernel $(uname -r), $(nproc) vCPUs, $hogs_n hogs, ${TRACE_S}s traced per run, $ROUNDS rounds"
round=1
while [ "$round" -le "$ROUNDS" ]; do
	order=$contenders
	[ $((round % 2)) -eq 0 ] && order=$reversed
	for c in $order; do run_contender "$c"; done
	round=$((round + 1))
done
echo "wakeup: done"
