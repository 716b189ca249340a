#!/bin/sh
# Runs inside the sched_ext VM (busybox sh): the systemd notify protocol of
# scx_pilot.service, without systemd. Runs the unit's own ExecStart= line (from
# /etc/systemd/system/scx_pilot.service, flags from its EnvironmentFile
# /etc/default/scx_pilot) with NOTIFY_SOCKET pointing at notify_listen
# (examples/notify_listen.rs), then checks that READY=1 arrives only once
# /sys/kernel/sched_ext/state is "enabled" and the HTTP port answers, and that
# SIGTERM brings STOPPING=1, a clean exit and a detached scheduler.
# Prints "CHECK ok|FAIL <name>: <detail>"; exit status = number of failures.
set -u
UNIT=/etc/systemd/system/scx_pilot.service
SOCK=/run/scx_pilot-notify.sock
# shellcheck source=scripts/vm/guest-lib.sh
. /guest-lib.sh
echo "guest: kernel $(uname -r), sched_ext $(state)"

# What systemd would do: the condition, StateDirectory=, EnvironmentFile=.
cond=$(sed -n 's/^ConditionPathIsDirectory=//p' "$UNIT")
[ -d "$cond" ]
check condition $? "ConditionPathIsDirectory=$cond holds here"
mkdir -p /var/lib && mkdir -m 0700 /var/lib/scx_pilot
# shellcheck disable=SC1091
. /etc/default/scx_pilot
exec_start=$(sed -n 's/^ExecStart=//p' "$UNIT")
echo "guest: ExecStart=$exec_start (SCX_PILOT_OPTS=$SCX_PILOT_OPTS)"
listen=$(echo "$SCX_PILOT_OPTS" | sed -n 's/.*--listen[= ]\([^ ]*\).*/\1/p')
listen=${listen:-127.0.0.1:8080}

notify_listen "$SOCK" "$listen" 120 >/tmp/notify.log 2>&1 &
listener=$!
n=0
while [ ! -S "$SOCK" ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done

NOTIFY_SOCKET=$SOCK
export NOTIFY_SOCKET
# systemd splits $SCX_PILOT_OPTS on whitespace, as the shell does unquoted;
# exec: $! is then the agent itself, as systemd's main PID is.
eval "exec $exec_start" >/tmp/agent.log 2>&1 &
agent=$!
unset NOTIFY_SOCKET

n=0
while ! grep -q '^NOTIFY READY=1' /tmp/notify.log && [ $n -lt 600 ] && kill -0 "$agent" 2>/dev/null; do
	sleep 0.1
	n=$((n + 1))
done
grep -q '^NOTIFY READY=1' /tmp/notify.log
check ready-sent $? "READY=1 after $((n / 10)).$((n % 10)) s"
at_ready=$(grep '^AT-READY' /tmp/notify.log)
case "$at_ready" in *" state=enabled "*) r=0 ;; *) r=1 ;; esac
check ready-after-attach $r "at READY: $at_ready"
case "$at_ready" in *" http=HTTP/1.1 "*) r=0 ;; *) r=1 ;; esac
check ready-after-bind $r "at READY the API answers: ${at_ready#* http=}"
grep '^NOTIFY STATUS=scheduler attached' /tmp/notify.log >/dev/null
check ready-status $? "$(grep '^NOTIFY STATUS=' /tmp/notify.log | head -1)"
[ "$(grep -c '^NOTIFY READY=1' /tmp/notify.log)" = 1 ]
check ready-once $? "READY=1 sent $(grep -c '^NOTIFY READY=1' /tmp/notify.log) time(s)"
# The token systemd's StateDirectory= would hold.
[ "$(stat -c %a /var/lib/scx_pilot/token 2>/dev/null)" = 600 ]
check token-created $? "token mode $(stat -c %a /var/lib/scx_pilot/token 2>/dev/null)"

kill -TERM "$agent"
wait "$agent"
rc=$?
check sigterm-exit $rc "agent exit code after SIGTERM: $rc"
n=0
while ! grep -q '^NOTIFY STOPPING=1' /tmp/notify.log && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
grep -q '^NOTIFY STOPPING=1' /tmp/notify.log
check stopping-sent $? "STOPPING=1 on SIGTERM"
n=0
while [ "$(state)" != disabled ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
[ "$(state)" = disabled ]
check detached $? "state after exit: $(state)"
wait "$listener"

echo "guest: notify log:"
sed 's/^/  /' /tmp/notify.log
echo "guest: agent log:"
sed 's/^/  /' /tmp/agent.log
echo "guest: $fails check(s) failed"
exit "$fails"
