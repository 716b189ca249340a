#!/bin/sh
# Runs inside the sched_ext VM (busybox sh): what each of scx_pilot's BPF
# programs costs per call while CPU hogs oversubscribe the vCPUs and a 1 ms
# periodic probe wakes among them. One agent per case: kernel mode with a
# priority strategy for the probe, kernel mode without, --dispatch user
# without. The kernel counts each program's calls and run time
# (kernel.bpf_stats_enabled) from the probe's start to its end, one second of
# hogs alone included; bpftool reads them.
# With BASE (a second scx_pilot build in the guest) each case runs for both,
# ROUNDS times, every other round the base first, and the base's cases are
# named base/<case>: two builds compared within one boot, where per-call
# costs swing by a fifth from boot to boot.
# Prints "COST <case> <program> <calls> <run_time_ns>", "WAKEUPS <case> <n>"
# (the probe's wakeups) and the probe's histogram between HIST-BEGIN/HIST-END,
# once per case and round.
# Environment: AGENT (scx_pilot in the guest), BASE (optional), DURATION
# (seconds, default 6), ROUNDS (default 1).
set -u
export HOME=/tmp
AGENT=${AGENT:?}
BASE=${BASE:-}
DURATION=${DURATION:-6}
ROUNDS=${ROUNDS:-1}
API=http://127.0.0.1:8080
# shellcheck source=scripts/vm/guest-lib.sh
. /guest-lib.sh
hogs_n=$(($(nproc) * 3))
command -v bpftool >/dev/null || { echo "bpf-cost: no bpftool in the guest"; exit 1; }

run_case() { # NAME STRATEGY(0|1) BINARY AGENT-ARGS...
	name=$1 strategy=$2 binary=$3
	shift 3
	start_sched "$binary" --auth none --sample-interval-ms 1000 "$@" || return 1
	stress-ng --cpu "$hogs_n" --cpu-method matrixprod -t "$((DURATION + 4))" >/dev/null 2>&1 &
	hogs=$!
	sleep 1
	sysctl -q -w kernel.bpf_stats_enabled=1
	sh -c "$(probe_script "$DURATION")" >/tmp/probe.out 2>&1 &
	probe=$!
	[ "$strategy" = 1 ] && post_priority "$probe"
	wait "$probe"
	sysctl -q -w kernel.bpf_stats_enabled=0
	bpftool -j prog show | jq -r --arg c "$name" \
		'.[] | select(.name | startswith("pilot_")) | select((.run_cnt // 0) > 0) |
		 "COST \($c) \(.name) \(.run_cnt) \(.run_time_ns)"'
	echo "WAKEUPS $name $(grep -v '^#' /tmp/probe.out | awk '{ n += $2 } END { print n + 0 }')"
	print_hist "$name" /tmp/probe.out
	wait "$hogs"
	stop_sched
}

run_cases() { # PREFIX BINARY
	run_case "${1}kernel-prio" 1 "$2"
	run_case "${1}kernel-plain" 0 "$2"
	run_case "${1}user-plain" 0 "$2" --dispatch user
}

echo "bpf-cost: kernel $(uname -r), $(nproc) vCPUs, $hogs_n hogs, probe ${DURATION}s, $ROUNDS rounds" \
	"${BASE:+(and the base build $BASE)}"
round=1
while [ "$round" -le "$ROUNDS" ]; do
	if [ -n "$BASE" ] && [ $((round % 2)) -eq 0 ]; then
		run_cases base/ "$BASE"
		run_cases "" "$AGENT"
	else
		run_cases "" "$AGENT"
		[ -z "$BASE" ] || run_cases base/ "$BASE"
	fi
	round=$((round + 1))
done
echo "bpf-cost: done"
