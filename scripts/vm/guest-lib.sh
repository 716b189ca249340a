# shellcheck shell=sh
# guest-lib.sh - the shell functions and workloads the guest scripts share
# (busybox sh). initramfs.sh puts it at /guest-lib.sh in every image; a guest
# script sources it first.

fails=0
check() { # NAME STATUS(0=ok) DETAIL: one "CHECK ok|FAIL" line; failures counted in $fails
	if [ "$2" -eq 0 ]; then
		echo "CHECK ok $1: $3"
	else
		echo "CHECK FAIL $1: $3"
		fails=$((fails + 1))
	fi
}

state() { cat /sys/kernel/sched_ext/state 2>/dev/null || echo missing; }
is_count() { case $1 in '' | *[!0-9]*) return 1 ;; esac } # a counter read that gave a number
wait_state() { # WANT [TENTHS, default 200]: until sched_ext is in state WANT
	n=0
	while [ "$(state)" != "$1" ] && [ $n -lt "${2:-200}" ]; do
		sleep 0.1
		n=$((n + 1))
	done
	[ "$(state)" = "$1" ]
}

# A scheduler for a measurement: started in the background, its output in
# /tmp/sched.log (shown when it does not attach), one second to settle. It has
# ATTACH_WAIT_TENTHS to attach: scx_pilot --dispatch user locks its memory
# first, which under emulation took 15-35 s. One that does not is killed, so
# that it cannot attach later and run the measurements of the contenders after
# it (a user-mode agent that attached after 20 s had done so in a bench boot).
ATTACH_WAIT_TENTHS=600
sched_pid=""
start_sched() { # BINARY ARGS...
	"$@" >/tmp/sched.log 2>&1 &
	sched_pid=$!
	if ! wait_state enabled "$ATTACH_WAIT_TENTHS"; then
		echo "$1 did not attach"
		sed 's/^/sched: /' /tmp/sched.log
		kill -KILL "$sched_pid" 2>/dev/null
		wait "$sched_pid" 2>/dev/null
		sched_pid=""
		wait_state disabled || echo "scheduler still $(state) after the kill"
		return 1
	fi
	sleep 1
}
stop_sched() {
	[ -n "$sched_pid" ] || return 0
	kill -INT "$sched_pid" 2>/dev/null
	wait "$sched_pid" 2>/dev/null
	sched_pid=""
	wait_state disabled || echo "scheduler still $(state) after stop"
}

# cyclictest's output options for every latency probe: quiet, memory locked, a
# histogram in 1 us buckets up to 30 ms.
HIST_OPTS="-q -m -h 30000"
print_hist() { # NAME FILE: a cyclictest histogram, as report.py and scripts/bench read it
	echo "HIST-BEGIN $1"
	grep -v '^#' "$2" | grep -v ' 000000$'
	grep '^# Histogram Overflows' "$2"
	grep '^# Max Latencies' "$2"
	echo "HIST-END $1"
}

# The latency probe as a sh -c script: cyclictest waking every 1 ms for SECONDS.
# It starts a second late so that a strategy posted for its pid is in place
# when cyclictest starts (exec keeps the pid).
probe_script() { echo "sleep 1; exec cyclictest -t1 -i 1000 -D $1 $HIST_OPTS"; }
# unpin_probe PID: cyclictest pins its measuring thread to one CPU (thread N
# to CPU N, when it starts); most latency-sensitive tasks are not pinned, and
# only a task that may run elsewhere takes the scheduler's CPU choice at
# wakeup (ops.select_cpu under sched_ext, select_task_rq under EEVDF). Lets the
# probe PID's measuring thread run on every CPU, 50 ms after it appears (after
# it has pinned itself), and checks its affinity 50 ms later. Prints the
# thread's Cpus_allowed_list; fails when there was no such thread within 5 s.
unpin_probe() {
	all=0-$(($(nproc) - 1))
	n=0
	while [ $n -lt 500 ]; do
		for t in /proc/"$1"/task/*; do
			tid=${t##*/}
			[ "$tid" = "$1" ] && continue
			sleep 0.05
			taskset -p -c "$all" "$tid" >/dev/null 2>&1 || return 1
			sleep 0.05
			allowed=$(awk '/^Cpus_allowed_list/ { print $2 }' "$t/status" 2>/dev/null)
			echo "unpin_probe: pid $1 thread $tid Cpus_allowed_list $allowed"
			[ "$allowed" = "$all" ]
			return
		done
		sleep 0.01
		n=$((n + 1))
	done
	return 1
}
post_priority() { # PID: a priority strategy (5 ms slice) for PID, to the agent at $API
	curl -s -m 5 -H 'Content-Type: application/json' -H "Authorization: Bearer ${TOKEN:-}" \
		--data "{\"strategies\":[{\"priority\":true,\"execution_time\":5000000,\"pid\":$1}]}" \
		"$API/api/v1/scheduling/strategies" >/dev/null
}

# Message passing: 160 tasks trading on sockets. Prints the seconds it took.
hackbench_s() { hackbench -g 4 -l 100 2>&1 | awk '/^Time:/ { print $2 }'; }

# The cpu stressor's bogo ops in stress-ng --metrics-brief output (stdin).
bogo_ops_of() {
	awk '{ for (i = 1; i < NF; i++) if ($i == "cpu" && $(i + 1) ~ /^[0-9]+$/) { print $(i + 1); exit } }'
}
