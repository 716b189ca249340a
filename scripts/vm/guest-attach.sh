#!/bin/sh
# Runs inside the VM (busybox sh): the short scheduler check for a second kernel
# (scripts/vm-matrix.sh --quick). Does the BPF program load and attach on this
# kernel, do its counters move, do strategies reach it, does it leave cleanly
# (SIGTERM, SIGKILL) and does a forced ejection bring the kernel's exit dump to the
# log and /health? Latency and fairness are measured by guest-sched.sh, not here.
# Prints "CHECK ok|FAIL <name>: <detail>"; exit 0 when every check passed.
# Environment: AGENT (path of the scx_pilot binary in the guest).
set -u
AGENT=${AGENT:?AGENT must name the scx_pilot binary}
export HOME=/tmp # jq 1.6 crashes when HOME is unset
API=http://127.0.0.1:8080
TOKEN_FILE=/var/lib/scx_pilot/token
# shellcheck source=scripts/vm/guest-lib.sh
. /guest-lib.sh

wait_for() { # TENTHS COMMAND...: poll until COMMAND succeeds
	n=$1
	shift
	until "$@"; do
		[ "$n" -le 0 ] && return 1
		sleep 0.1
		n=$((n - 1))
	done
}
state_is() { [ "$(state)" = "$1" ]; }
api() { curl -sf -m 5 "$API$1"; }
api_up() { api /health >/dev/null 2>&1; }
start_agent() {
	"$AGENT" --sample-interval-ms 200 "$@" >>/tmp/agent.log 2>&1 &
	agent_pid=$!
	wait_for 150 state_is enabled
}
stop_agent() { # SIGNAL; sets rc to the agent's exit code
	kill -"$1" "$agent_pid" 2>/dev/null
	wait "$agent_pid"
	rc=$?
}

echo "guest: kernel $(uname -r), $(nproc) vCPUs, sched_ext $(state)"

start_agent --dispatcher-test-hooks
check attach $? "sched_ext state '$(state)' after start"
ops=$(cat /sys/kernel/sched_ext/root/ops 2>/dev/null)
case "$ops" in scx_pilot*) r=0 ;; *) r=1 ;; esac
check ops-name $r "root/ops is '$ops'"
wait_for 100 api_up
health=$(api /health | jq -r '.status + " " + .mode')
[ "$health" = "healthy kernel" ]
check health $? "/health says '$health'"

# Counters move with more runnable tasks than vCPUs.
hogs=""
for _ in $(seq $(($(nproc) * 2))); do
	sh -c 'while :; do :; done' &
	hogs="$hogs $!"
done
sleep 1
kd1=$(api /api/v1/metrics | jq -r '.metrics.data.nr_kernel_dispatches')
sleep 1
kd2=$(api /api/v1/metrics | jq -r '.metrics.data.nr_kernel_dispatches')
[ "$kd2" -gt "$kd1" ] 2>/dev/null
check kernel-dispatches-grow $? "nr_kernel_dispatches $kd1 -> $kd2 under load"

# A strategy reaches the scheduler's map (it is listed resolved to the pid).
hog=${hogs##* }
curl -s -m 5 -o /dev/null -H 'Content-Type: application/json' -H "Authorization: Bearer $(cat "$TOKEN_FILE")" \
	--data "{\"strategies\":[{\"priority\":true,\"execution_time\":5000000,\"pid\":$hog}]}" \
	"$API/api/v1/scheduling/strategies"
listed=$(api /api/v1/scheduling/strategies | jq -c '.scheduling')
echo "$listed" | jq -e --argjson p "$hog" 'any(.[]; .pid == $p and .priority == true)' >/dev/null
check strategy $? "GET strategies after the POST: $listed"
# shellcheck disable=SC2086 # one word per pid
kill $hogs
wait $hogs 2>/dev/null

# A forced ejection (SIGUSR2 with --dispatcher-test-hooks): the kernel's exit dump
# reaches the log and /health, and the agent attaches again.
kill -USR2 "$agent_pid"
wait_for 100 state_is disabled
check eject-detached $? "state after the forced error: $(state)"
# /health answers 503 while the scheduler is detached: no -f here.
health_dump_len() { curl -s -m 5 "$API/health" | jq -r '.components.scheduler.last_exit_dump // "" | length'; }
dump_seen() { [ "$(health_dump_len)" -gt 0 ] 2>/dev/null; }
wait_for 50 dump_seen
dump_len=$(health_dump_len)
[ "${dump_len:-0}" -gt 0 ] && grep -q "scheduler exit dump" /tmp/agent.log
check eject-dump $? "last_exit_dump in /health: $dump_len bytes; dump in the agent log: $(grep -c 'scheduler exit dump' /tmp/agent.log)"
wait_for 150 state_is enabled
check eject-reattach $? "state after the ejection: $(state)"

stop_agent TERM
check sigterm-exit "$rc" "agent exit code after SIGTERM: $rc"
wait_for 50 state_is disabled
check sigterm-disabled $? "state after SIGTERM: $(state)"

start_agent
check restart-attach $? "state after a second start: $(state)"
stop_agent KILL
wait_for 100 state_is disabled
check sigkill-disabled $? "state after SIGKILL: $(state)"

if [ "$fails" -gt 0 ]; then
	echo "guest: agent log follows"
	sed 's/^/agent: /' /tmp/agent.log
fi
echo "guest: $fails check(s) failed"
exit $((fails > 0))
