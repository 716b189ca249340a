# Sourced by guest-sched.sh (same shell, same helpers) after the kernel-mode
# checks: scx_pilot with --dispatch user. The same load and strategy checks, the
# per-mode counters, a 30 s stress run, the dispatcher-stall fallback, and the
# figures against kernel mode (RESULT lines and HIST blocks; report.py compares).

umetric() { metric "$1"; }
# Not api(): /health answers 503 while the dispatcher is bypassed.
dispatcher() { curl -s -m 5 "$API/health" | jq -r ".components.scheduler.dispatcher.$1"; }
spin_hogs() { # N: start N shell CPU hogs, their pids in $spun
	spun=""
	for _ in $(seq "$1"); do
		sh -c 'while :; do :; done' &
		spun="$spun $!"
	done
}

say "user dispatch mode"
start_agent --dispatch user --dispatcher-test-hooks --pods-file /tmp/pods.json
# mlockall() before the attach faults in the whole agent under emulation: 15-35 s.
wait_state enabled "$ATTACH_WAIT_TENTHS"
check user-attach $? "sched_ext state is '$(state)' with --dispatch user"
wait_api
health=$(api /health | jq -r '.status + " " + .mode')
[ "$health" = "healthy user" ]
check user-health $? "/health says '$health'"
tid=$(dispatcher tid)
upid=$(umetric data.usersched_pid)
[ "$upid" = "$tid" ] && [ "$tid" != "$agent_pid" ] && [ -d "/proc/$agent_pid/task/$tid" ]
check user-usersched-pid $? "usersched_pid=$upid is the dispatcher thread $tid of agent $agent_pid"

# --- the same load as in kernel mode: user dispatches and the BPF fast path both count
sleep 600 &
pod_sleeper=$!
echo "$pod_sleeper" >"$pod_cg/cgroup.procs"
spin_hogs $((cpus * 3))
hogs=$spun
sleep 1
ud1=$(umetric data.nr_user_dispatches)
kd1=$(umetric data.nr_kernel_dispatches)
max_sched=0
for _ in 1 2 3 4 5 6 7 8 9 10; do
	sleep 0.2
	s=$(umetric data.nr_queued)
	[ "$s" -gt "$max_sched" ] && max_sched=$s
done
ud2=$(umetric data.nr_user_dispatches)
kd2=$(umetric data.nr_kernel_dispatches)
[ "$ud2" -gt "$ud1" ] && [ "$kd2" -gt "$kd1" ]
check user-dispatches-grow $? "nr_user_dispatches $ud1 -> $ud2, nr_kernel_dispatches $kd1 -> $kd2 (max nr_queued $max_sched)"

# Priority probe rounds as in kernel mode: in user mode the plain probe's
# wakeups round-trip through the dispatcher, the priority one's stay in BPF.
post_failed=""
hits0=$(umetric policy.nr_strategy_hits)
for round in 1 2; do
	probe_round user-probe-plain false
	probe_round user-probe-prio true
done
[ -z "$post_failed" ]
check user-strategy-post $? "every strategy POST succeeded ${post_failed}"
hits1=$(umetric policy.nr_strategy_hits)
[ "$hits1" -gt "$hits0" ]
check user-strategy-hits $? "nr_strategy_hits $hits0 -> $hits1 while the probe ran"
post_strategies '{"strategies":[]}' >/dev/null

# --- the dispatcher stops answering (test hook): BPF falls back, nothing stalls
fb0=$(dispatcher fallbacks)
kill -USR1 "$agent_pid"
set -- $hogs
first_hog=$1
set -- $(schedstat "$first_hog")
run0=$1
sleep 3
fb_active=$(dispatcher fallback_active)
fb1=$(dispatcher fallbacks)
recovered=$(dispatcher recovered)
code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "$API/health")
set -- $(schedstat "$first_hog")
run1=$1
[ "$fb_active" = true ] && [ "$fb1" -gt "$fb0" ] && [ "$code" = 503 ] && [ "$(state)" = enabled ] && [ "$run1" -gt "$run0" ]
check user-stall-fallback $? "dispatcher paused 3 s: fallback_active=$fb_active, fallbacks $fb0 -> $fb1, tasks taken back $recovered, /health HTTP $code, state $(state), a hog ran $(((run1 - run0) / 1000000)) ms"
kill -USR1 "$agent_pid"
sleep 1.5
ud1=$(umetric data.nr_user_dispatches)
sleep 1
ud2=$(umetric data.nr_user_dispatches)
fb_active=$(dispatcher fallback_active)
[ "$fb_active" = false ] && [ "$ud2" -gt "$ud1" ] && [ "$(api /health | jq -r .status)" = healthy ]
check user-stall-resume $? "after resuming: fallback_active=$fb_active, nr_user_dispatches $ud1 -> $ud2"
kill $hogs $pod_sleeper
wait $hogs $pod_sleeper 2>/dev/null

# --- sched_yield() stays in BPF: spinning waits yield many times a
# millisecond, and each yield through the dispatcher used to wake it, which
# preempted the task on its CPU (a 1 ms probe waited 2-6 ms behind such storms)
y0=$(umetric policy.nr_yields)
ue0=$(umetric policy.nr_user_enqueues)
stress-ng --yield 1 -t 2 >/dev/null 2>&1
sleep 0.5
y1=$(umetric policy.nr_yields)
ue1=$(umetric policy.nr_user_enqueues)
dy=$((y1 - y0)) due=$((ue1 - ue0))
[ "$dy" -ge 1000 ] && [ $((due * 10)) -lt "$dy" ] && [ "$(state)" = enabled ]
check user-yield-in-bpf $? "2 s of stress-ng --yield: nr_yields +$dy, nr_user_enqueues +$due (under a tenth: yields do not go to the dispatcher), state $(state)"

# --- throughput in user mode (kernel mode's pilot_bogo_ops are from the same boot)
user_ops=$(bogo_ops 5)
echo "RESULT user_bogo_ops=${user_ops:-0}"
user_ops2=$(bogo_ops 5)
echo "RESULT user_bogo_ops_2=${user_ops2:-0}"
# Sync wakers are not preempted by the decision for the task they woke, nor by
# the dispatcher that makes it (before: 2.7-8x EEVDF's time; now 1.1-1.5x).
check_hackbench user user-hackbench-vs-eevdf
stop_agent TERM
check user-sigterm $rc "exit code $rc after SIGTERM"
wait_state disabled 50
check user-sigterm-disabled $? "state after SIGTERM: $(state)"

# --- stress: a dispatcher queue depth of 2 far smaller than the runnable load, a fork
# storm, pinned tasks and affinity flips, for 30 s. No watchdog ejection; the
# counters add up.
start_agent --dispatch user --user-queue-depth 2
wait_state enabled 150
wait_api
restarts0=$(api /health | jq -r '.components.scheduler.restarts')
spin_hogs $((cpus * 8))
hogs=$spun
pinned=""
for _ in 1 2 3 4; do
	taskset -c 0 sh -c 'while :; do :; done' &
	pinned="$pinned $!"
done
stress-ng --fork 2 -t 30 >/dev/null 2>&1 &
forker=$!
(
	end=$(($(date +%s) + 30))
	while [ "$(date +%s)" -lt "$end" ]; do
		for p in $pinned; do taskset -p 2 "$p" >/dev/null 2>&1; done
		sleep 0.05
		for p in $pinned; do taskset -p 1 "$p" >/dev/null 2>&1; done
		sleep 0.05
	done
) &
flipper=$!
sleep 30
wait $forker $flipper 2>/dev/null
alive=$(kill -0 "$agent_pid" 2>/dev/null && echo yes || echo no)
st=$(state)
# The check is about the scheduler, not how fast the API answers while the
# storm's tasks drain (it once took more than curl's 5 s): ask for up to 20 s.
n=0
until restarts1=$(api /health | jq -r '.components.scheduler.restarts') && [ -n "$restarts1" ] || [ $n -ge 4 ]; do
	n=$((n + 1))
done
echo "RESULT user_stress_health_tries=$((n + 1))"
[ "$st" = enabled ] && [ "$alive" = yes ] && [ "$restarts1" = "$restarts0" ]
check user-stress-attached $? "after 30 s of $((cpus * 8)) hogs, 4 pinned hogs with affinity flips and a fork storm: state $st, agent alive $alive, restarts $restarts0 -> $restarts1"
# How often a task preempted in an RCU read section went first (a figure: it
# depends on where preemptions land; the check above is what it protects).
echo "RESULT user_stress_rcu_boosts=$(metric policy.nr_rcu_boosts)"
congested=$(umetric data.nr_sched_congested)
[ "$congested" -gt 0 ]
check user-congested $? "nr_sched_congested=$congested with a queue depth of 2"
kill $hogs $pinned
wait $hogs $pinned 2>/dev/null
sleep 1
# Quiet now: every task sent to the dispatcher was dispatched, taken back,
# withdrawn or is still in its hands, and each enqueue got at most one decision.
# A sample in which a task is between two counters is off by it, so: five
# reads, and the books must balance exactly in one of them and never be off by
# more than the vCPUs (tasks in flight).
books() { # NAME: sets books_ok and books_detail
	books_ok=1 worst=0 exact=0
	for _ in 1 2 3 4 5; do
		api /api/v1/metrics >/tmp/user-metrics.json
		c() { jq -r ".metrics.$1" /tmp/user-metrics.json; }
		enq=$(c policy.nr_user_enqueues)
		ud=$(c data.nr_user_dispatches)
		rec=$(c policy.nr_user_recovered)
		wd=$(c policy.nr_user_withdrawn)
		out=$(c policy.nr_user_outstanding)
		cancel=$(c data.nr_cancel_dispatches)
		bounce=$(c data.nr_bounce_dispatches)
		failed=$(c data.nr_failed_dispatches)
		diff=$((enq - ud - rec - wd - out))
		[ "$diff" = 0 ] && exact=$((exact + 1))
		[ "${diff#-}" -gt "$worst" ] && worst=${diff#-}
		sleep 0.2
	done
	[ "$enq" -gt 0 ] && [ "$exact" -gt 0 ] && [ "$worst" -le "$cpus" ] &&
		[ $((ud + cancel)) -le $((enq + cpus)) ] && [ "$bounce" -le "$ud" ] && [ "$failed" = 0 ]
	books_ok=$?
	books_detail="$1: enqueues $enq = dispatches $ud + recovered $rec + withdrawn $wd + outstanding $out (exact in $exact of 5 reads, worst off by $worst); cancels $cancel; bounces $bounce; failed $failed"
}
books stress
check user-counters-consistent $books_ok "$books_detail"
echo "RESULT user_stress_bounces=$bounce"
echo "RESULT user_stress_cancels=$cancel"
echo "RESULT user_stress_congested=$congested"
stop_agent TERM
check user-stress-sigterm $rc "exit code $rc after SIGTERM"
wait_state disabled 50
check user-stress-disabled $? "state after SIGTERM: $(state)"

# --- faulty dispatchers (test modes): a tiny inbox makes records overflow, which
# must be answered, never dropped; a dispatcher that forgets every tenth task
# while answering the rest must have them taken back by age. 15 s each under
# load; the scheduler stays attached and the books balance.
faulty_run() { # MODE
	export SCX_PILOT_DISPATCHER_TEST="$1"
	start_agent --dispatch user --user-stall-ms 200 --dispatcher-test-hooks
	unset SCX_PILOT_DISPATCHER_TEST
	wait_state enabled 150
	wait_api
	spin_hogs $((cpus * 4))
	fhogs=$spun
	stress-ng --fork 1 -t 15 >/dev/null 2>&1
	overflows=$(dispatcher overflows)
	aged=$(dispatcher aged)
	kill $fhogs
	wait $fhogs 2>/dev/null
	sleep 1
	books "$1"
	[ "$(state)" = enabled ] && kill -0 "$agent_pid"
	attached=$?
}
faulty_run tiny-inbox
[ "$attached" = 0 ] && [ "$overflows" -gt 0 ] && [ "$books_ok" = 0 ]
check user-overflow-answered $? "tiny inbox: $overflows records answered at once, state $(state); $books_detail"
stop_agent TERM
faulty_run forget
[ "$attached" = 0 ] && [ "$aged" -gt 0 ] && [ "$books_ok" = 0 ]
check user-aged-takeback $? "forgetful dispatcher: $aged tasks taken back by age, state $(state); $books_detail"
stop_agent TERM
