# shellcheck shell=sh
# Sourced by guest-sched.sh (busybox sh, agent stopped): the scheduling policy's
# guarantees, each measured against EEVDF in this boot where a comparison says
# more than a number: cgroup cpu.weight shares, the per-CPU starvation bound
# under pinned priority load, and slices as configured for a lone CPU hog.
# Uses check/start_agent/stop_agent/wait_state/post_strategies/metric/hist
# from guest-sched.sh.

hog() { sh -c 'while :; do :; done'; }
cg=/sys/fs/cgroup
echo +cpu >"$cg/cgroup.subtree_control" 2>/dev/null

# CPU time in µs a cgroup used so far.
cg_usage() { awk '$1 == "usage_usec" { print $2 }' "$cg/$1/cpu.stat"; }

# Two cgroups with cpu.weight 100 and 400, one hog of each pinned to each vCPU
# (unpinned hogs drift even under EEVDF), and with PRIO=1 a third cgroup's hog
# on vCPU 0 with a priority strategy. Prints B/A of the CPU time over 12 s.
weight_ratio() { # PRIO(0|1)
	mkdir -p "$cg/wa" "$cg/wb" "$cg/wc"
	echo 100 >"$cg/wa/cpu.weight"
	echo 400 >"$cg/wb/cpu.weight"
	pids=""
	for c in 0 1; do
		for g in wa wb; do
			taskset -c "$c" sh -c 'while :; do :; done' &
			echo $! >"$cg/$g/cgroup.procs"
			pids="$pids $!"
		done
	done
	if [ "$1" = 1 ]; then
		taskset -c 0 sh -c 'while :; do :; done' &
		echo $! >"$cg/wc/cgroup.procs"
		pids="$pids $!"
		post_strategies "{\"strategies\":[{\"priority\":true,\"execution_time\":5000000,\"pid\":$!}]}" >/dev/null
	fi
	sleep 1
	a0=$(cg_usage wa) b0=$(cg_usage wb)
	sleep 12
	a1=$(cg_usage wa) b1=$(cg_usage wb)
	kill $pids
	wait $pids 2>/dev/null
	[ "$1" = 1 ] && post_strategies '{"strategies":[]}' >/dev/null
	rmdir "$cg/wa" "$cg/wb" "$cg/wc" 2>/dev/null
	awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) 'BEGIN { printf "%.2f\n", (a > 0 ? b / a : 0) }'
}

eevdf_ratio=$(weight_ratio 0)
echo "RESULT cgroup_weight_ratio_eevdf=$eevdf_ratio"

# Longest stretch (ms) a task got no CPU, from "uptime run_ns" samples.
longest_gap_ms() { # FILE
	awk 'NR == 1 { last_t = $1; last_r = $2; next }
	     $2 != last_r { gap = $1 - last_t; if (gap > max) max = gap; last_t = $1; last_r = $2 }
	     END { printf "%d\n", max * 1000 }' "$1"
}

start_agent
wait_state enabled 150
check policy-attach $? "state after start: $(state)"
wait_api

# --- cgroup weights: B/A with EEVDF's beside it, alone and beside a priority task.
pilot_ratio=$(weight_ratio 0)
prio_ratio=$(weight_ratio 1)
echo "RESULT cgroup_weight_ratio_pilot=$pilot_ratio"
echo "RESULT cgroup_weight_ratio_pilot_prio=$prio_ratio"
# Pod weights must hold about as well as under EEVDF (same boot): at least 0.75x
# its ratio, alone and beside a priority hog (before cgroup support: 1.0).
awk -v p="$pilot_ratio" -v e="$eevdf_ratio" 'BEGIN { exit !(p >= 0.75 * e) }'
check cgroup-weight $? "cpu.weight 400 vs 100, B/A CPU time: scx_pilot $pilot_ratio, EEVDF $eevdf_ratio (need >= 0.75x)"
awk -v p="$prio_ratio" -v e="$eevdf_ratio" 'BEGIN { exit !(p >= 0.75 * e) }'
check cgroup-weight-prio $? "the same beside a priority hog of a third cgroup: B/A $prio_ratio, EEVDF $eevdf_ratio (need >= 0.75x)"

# --- per-CPU starvation bound: three priority hogs and one normal hog pinned to
# vCPU 1, normal load on vCPU 0, for 50 s (the watchdog's 30 s timeout is
# checked every 15 s). The pinned normal task's longest stretch without CPU
# must stay within --starvation-ms (100) plus a slice, measured by a sampler
# that is itself a normal task on an emulated vCPU: 500 ms allowed.
body=""
prio_pids=""
for _ in 1 2 3; do
	taskset -c 1 sh -c 'while :; do :; done' &
	prio_pids="$prio_pids $!"
	body="$body${body:+,}{\"priority\":true,\"execution_time\":5000000,\"pid\":$!}"
done
post_strategies "{\"strategies\":[$body]}" >/dev/null
taskset -c 1 sh -c 'while :; do :; done' &
victim=$!
load=""
for _ in 1 2; do
	taskset -c 0 sh -c 'while :; do :; done' &
	load="$load $!"
done
restarts0=$(api /health | jq -r '.components.scheduler.restarts')
guards0=$(metric policy.nr_starvation_guards)
taskset -c 0 sh -c "end=\$((\$(cut -d. -f1 /proc/uptime) + 50))
	while :; do
		read up _ </proc/uptime
		read run _ </proc/$victim/schedstat
		echo \"\$up \$run\"
		[ \"\${up%.*}\" -ge \"\$end\" ] && break
		sleep 0.01
	done" >/tmp/victim.samples
gap=$(longest_gap_ms /tmp/victim.samples)
guards1=$(metric policy.nr_starvation_guards)
echo "RESULT pinned_victim_longest_gap_ms=$gap"
[ "$(state)" = enabled ] && [ "$(api /health | jq -r '.components.scheduler.restarts')" = "$restarts0" ]
check pinned-starvation-attached $? "after 50 s of 3 priority hogs + 1 normal hog on vCPU 1: state $(state), guards $guards0 -> $guards1"
[ "$gap" -gt 0 ] && [ "$gap" -le 500 ]
check pinned-starvation-bound $? "the pinned normal hog's longest stretch without CPU: $gap ms (bound 500 ms; $(wc -l </tmp/victim.samples) samples)"
kill $prio_pids $victim $load
wait $prio_pids $victim $load 2>/dev/null
post_strategies '{"strategies":[]}' >/dev/null

# --- slices as configured: a task waking every 50 ms beside a lone hog on the
# same vCPU waits about one slice of the hog at most (2 ms, ended at the next
# 4 ms tick; bound 10 ms), and after a 1 ms strategy for the hog at most 6 ms; the
# strategy reaches the running hog, which never enqueues again, within a slice.
taskset -c 1 sh -c 'while :; do :; done' &
lone=$!
sleep 1
hist slice-default -t1 -a 1 -i 50000 -l 100
hits0=$(metric policy.nr_strategy_hits)
post_strategies "{\"strategies\":[{\"priority\":false,\"execution_time\":1000000,\"pid\":$lone}]}" >/dev/null
sleep 1
hits1=$(metric policy.nr_strategy_hits)
hist slice-strategy -t1 -a 1 -i 50000 -l 100
# --- what only a priority strategy buys: a normal waker does not preempt a
# task within its strategy's slice (20 ms here), a priority one does.
long="{\"priority\":false,\"execution_time\":20000000,\"pid\":$lone}"
post_strategies "{\"strategies\":[$long]}" >/dev/null
sleep 1
hist long-slice-plain -t1 -a 1 -i 50000 -l 100
hist_prio long-slice-prio "$long" -t1 -a 1 -i 50000 -l 100
kill $lone
wait $lone 2>/dev/null
post_strategies '{"strategies":[]}' >/dev/null
[ "$hits1" -gt $((hits0 + 100)) ]
check strategy-reaches-running-task $? "strategy hits of a lone running hog in the second after the POST: $hits0 -> $hits1 (1 ms slices: need > 100)"
stop_agent TERM
check policy-sigterm $rc "exit code $rc"
