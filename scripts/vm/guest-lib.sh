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
wait_state() { # WANT [TENTHS, default 200]: until sched_ext is in state WANT
	n=0
	while [ "$(state)" != "$1" ] && [ $n -lt "${2:-200}" ]; do
		sleep 0.1
		n=$((n + 1))
	done
	[ "$(state)" = "$1" ]
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

# Message passing: 160 tasks trading on sockets. Prints the seconds it took.
hackbench_s() { hackbench -g 4 -l 100 2>&1 | awk '/^Time:/ { print $2 }'; }

# The cpu stressor's bogo ops in stress-ng --metrics-brief output (stdin).
bogo_ops_of() {
	awk '{ for (i = 1; i < NF; i++) if ($i == "cpu" && $(i + 1) ~ /^[0-9]+$/) { print $(i + 1); exit } }'
}
