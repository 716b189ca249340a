# Sourced by guest-sched.sh (same shell, same helpers) while no agent runs:
# cluster strategies end to end. The stub Kubernetes API server
# (examples/kube_stub, in the guest on 127.0.0.1:6443) serves two pods on this
# node with the same labels, in namespaces 5g and lab; each is a kubelet-style
# cgroup with a CPU hog in it. A SchedulingStrategy created in 5g through the
# stub (as kubectl would) must reach the agent (--kubeconfig), cover the 5g
# hog only, and put it on the priority path in the BPF scheduler (strategy
# hits and priority dispatches move, which they do not before); the agent's
# status entry for this node must reach the stub; deleting the resource must
# take the strategy out again (the hits stop). The times from the create and
# delete requests to the applied set are RESULT figures (polled: an upper
# bound, within one poll of curl and jq); the hogs are stopped (SIGSTOP) then,
# so that the figure is the agent's, not the emulated CPUs' contention.
# Environment: KUBE_STUB (path of the kube_stub binary in the guest).

KUBE_STUB=${KUBE_STUB:?KUBE_STUB must name the kube_stub binary}
KAPI=http://127.0.0.1:6443
KUBE_DIR=/tmp/kube
CL_NODE=vm
CL_STRATEGY=/apis/scx-pilot.io/v1alpha1/namespaces/5g/schedulingstrategies
CL_SPEC='{"priority":true,"executionTime":"20ms","podSelector":{"matchLabels":{"nf":"upf"}}}'

kube() { # METHOD PATH [JSON]: a request to the stub, as kubectl makes it
	if [ $# -ge 3 ]; then
		curl -s -m 5 -X "$1" -H 'Content-Type: application/json' --data "$3" "$KAPI$2"
	else
		curl -s -m 5 -X "$1" "$KAPI$2"
	fi
}
# Guest uptime in ms (/proc/uptime has 10 ms steps; no fork).
uptime_ms() {
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}0"
}
wait_until() { # SECONDS COMMAND...: run COMMAND every 0.1 s until it succeeds; status 1 after SECONDS
	until_ms=$(($(uptime_ms) + $1 * 1000))
	shift
	until "$@"; do
		[ "$(uptime_ms)" -lt "$until_ms" ] || return 1
		sleep 0.1
	done
}
poll() { # SECONDS COMMAND...: as wait_until, back to back (for the timed waits)
	until_ms=$(($(uptime_ms) + $1 * 1000))
	shift
	until "$@"; do
		[ "$(uptime_ms)" -lt "$until_ms" ] || return 1
	done
}
cl_cgroup() { # UID CONTAINER_ID: a burstable pod's container cgroup, created
	cg=/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice
	cg=$cg/kubepods-burstable-pod$(echo "$1" | tr - _).slice/cri-containerd-$2.scope
	mkdir -p "$cg" && echo "$cg"
}
cl_pod() { # UID NAME: the Pod object on this node
	printf '{"metadata":{"name":"%s","uid":"%s","labels":{"nf":"upf"}},"spec":{"nodeName":"%s","containers":[{"name":"main","image":"registry.example/upf:1"}]},"status":{"phase":"Running"}}' \
		"$2" "$1" "$CL_NODE"
}
cl_hog() { # CGROUP: start a CPU hog in it; its pid in $hog
	sh -c 'while :; do :; done' &
	hog=$!
	echo "$hog" >"$1/cgroup.procs"
}
hogs_run() { kill -"$1" $upf_hog $lab_hog $spare_hogs; } # CONT | STOP
covered_slice() { # PID: its slice in the applied set (empty: not covered)
	api /api/v1/scheduling/strategies | jq -r --argjson p "$1" '.scheduling[] | select(.pid == $p) | .execution_time'
}
slice_is() { [ "$(covered_slice "$1")" = "$2" ]; }
watch_ok() {
	[ "$(api /health | jq -c '.components.cluster_strategies | [.status, .connected]')" = '["ok",true]' ]
}
pod_has() { # NAMESPACE PID: the agent puts PID in that namespace's pod
	api /api/v1/pods/pids | jq -e --arg ns "$1" --argjson p "$2" 'any(.pods[]; .namespace == $ns and any(.processes[]; .pid == $p))' >/dev/null 2>&1
}
status_applied() { # PID: this node's status entry at the stub covers PID, condition Applied=True
	kube GET "$CL_STRATEGY/upf" | jq -e --argjson p "$1" --arg node "$CL_NODE" \
		'any(.status.nodes[]?; .node == $node and .pids == [$p] and .conditions[0].status == "True")' >/dev/null 2>&1
}
hits() { echo "$(metric policy.nr_strategy_hits) $(metric policy.nr_prio_dispatches)"; }

say "cluster strategies: a SchedulingStrategy through the stub Kubernetes API server"
mkdir -p "$KUBE_DIR"
"$KUBE_STUB" 127.0.0.1:6443 "$KUBE_DIR" >/tmp/kube_stub.log 2>&1 &
stub_pid=$!
wait_until 30 grep -q 'listening on' /tmp/kube_stub.log
upf_cg=$(cl_cgroup 7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f "$(printf 'cd%.0s' $(seq 32))")
lab_cg=$(cl_cgroup 8d2f3e4a-5b6c-4d7e-9f80-a1b2c3d4e5f6 "$(printf 'ef%.0s' $(seq 32))")
kube POST /api/v1/namespaces/5g/pods "$(cl_pod 7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f upf-0)" >/dev/null
kube POST /api/v1/namespaces/lab/pods "$(cl_pod 8d2f3e4a-5b6c-4d7e-9f80-a1b2c3d4e5f6 upf-0)" >/dev/null
say "cluster: stub up ($(cat /tmp/kube_stub.log)), two pods served; starting the agent"

start_agent --kubeconfig "$KUBE_DIR/kubeconfig" --node-name "$CL_NODE" --pods-cache-ms 0
wait_state enabled 150
wait_api
wait_until 60 watch_ok
# The hogs start now, not before: the agent starts faster without them. They
# run only in the measured windows (hog_window); every API call is made while
# they are stopped, as under them one curl can take longer than its timeout.
# More runnable hogs than vCPUs, so the pod's hog is enqueued again and again.
cl_hog "$upf_cg"
upf_hog=$hog
cl_hog "$lab_cg"
lab_hog=$hog
spare_hogs=""
for _ in $(seq "$cpus"); do
	sh -c 'while :; do :; done' &
	spare_hogs="$spare_hogs $!"
done
hogs_run STOP
wait_until 60 pod_has 5g "$upf_hog" && wait_until 30 pod_has lab "$lab_hog"
r=$?
watch=$(api /health | jq -c '.components.cluster_strategies | {status, connected}')
pods=$(api /api/v1/pods/pids | jq -c '[.pods[] | select(.namespace == "5g" or .namespace == "lab") | {namespace, pod_name, pids: [.processes[].pid]}]')
[ $r -eq 0 ] && [ "$watch" = '{"status":"ok","connected":true}' ]
check cluster-watch $? "state $(state); cluster_strategies $watch; pods from the stub with their hogs: $pods"

# hog_window SECONDS: the counters before, the hogs running for SECONDS, the
# counters after (a sample taken after the stop) in $h_before $p_before $h_after $p_after.
hog_window() {
	set -- "$1" $(hits)
	h_before=$2 p_before=$3
	hogs_run CONT
	sleep "$1"
	hogs_run STOP
	sleep 0.5
	set -- $(hits)
	h_after=$1 p_after=$2
}
counted() { is_count "$h_before" && is_count "$p_before" && is_count "$h_after" && is_count "$p_after"; }

hog_window 1
sources=$(api /api/v1/scheduling/strategies/config | jq -c '[.strategies[].source]')
counted && [ "$h_after" = "$h_before" ] && [ "$p_after" = "$p_before" ] && [ "$sources" = "[]" ]
check cluster-baseline $? "before the resource: strategies $sources; the hogs running for 1 s: nr_strategy_hits $h_before -> $h_after, nr_prio_dispatches $p_before -> $p_after"
poll_t0=$(uptime_ms)
covered_slice "$upf_hog" >/dev/null
poll_ms=$(($(uptime_ms) - poll_t0))

# --- created: the 5g pod's hog only, in the BPF map
t_req=$(uptime_ms)
created=$(kube POST "$CL_STRATEGY" "{\"apiVersion\":\"scx-pilot.io/v1alpha1\",\"kind\":\"SchedulingStrategy\",\"metadata\":{\"name\":\"upf\"},\"spec\":$CL_SPEC}" |
	jq -r '.metadata.resourceVersion // empty')
poll 60 slice_is "$upf_hog" 20000000
r=$?
create_ms=$(($(uptime_ms) - t_req))
echo "RESULT cluster_create_to_applied_ms=$create_ms"
lab=$(covered_slice "$lab_hog")
[ $r -eq 0 ] && [ -n "$created" ] && [ -z "$lab" ]
check cluster-applied $? "5g/upf created (resourceVersion ${created:-none}): pid $upf_hog of pod 5g/upf-0 in the applied set with a 20 ms slice: $([ $r -eq 0 ] && echo yes || echo no), ${create_ms} ms after the create request (one poll of curl and jq: ${poll_ms} ms); pid $lab_hog of lab/upf-0 covered: ${lab:-no}"
config=$(api /api/v1/scheduling/strategies/config)
entry=$(echo "$config" | jq -c '.strategies[] | select(.source == "5g/upf") | {source, pids: .resolution.pids}')
echo "$config" | jq -e --argjson p "$upf_hog" '.applied_to_scheduler == true and any(.strategies[]; .source == "5g/upf" and .resolution.pids == [$p])' >/dev/null
check cluster-config-source $? "GET strategies/config: $entry, applied_to_scheduler $(echo "$config" | jq .applied_to_scheduler)"

hog_window 2
counted && [ "$h_after" -gt "$h_before" ] && [ "$p_after" -gt "$p_before" ]
check cluster-priority-path $? "the hogs running for 2 s, the pod's under the cluster strategy: nr_strategy_hits $h_before -> $h_after, nr_prio_dispatches $p_before -> $p_after"

# --- this node's status entry, applied by the agent, as the stub stores it
wait_until 30 status_applied "$upf_hog"
r=$?
status=$(kube GET "$CL_STRATEGY/upf" | jq -c '.status.nodes')
patches=$(api /health | jq -c '.components.cluster_strategies | {status_patches, status_patch_errors}')
check cluster-status-patch $r "status.nodes at the stub: $status; agent: $patches"

# --- deleted: out of the applied set and out of the BPF map
t_req=$(uptime_ms)
kube DELETE "$CL_STRATEGY/upf" >/dev/null
poll 60 slice_is "$upf_hog" ""
r=$?
delete_ms=$(($(uptime_ms) - t_req))
echo "RESULT cluster_delete_to_removed_ms=$delete_ms"
sources=$(api /api/v1/scheduling/strategies/config | jq -c '[.strategies[].source]')
hog_window 1.5
[ $r -eq 0 ] && [ "$sources" = "[]" ] && counted && [ "$h_after" = "$h_before" ]
check cluster-deleted $? "5g/upf deleted: pid $upf_hog out of the applied set: $([ $r -eq 0 ] && echo yes || echo no), ${delete_ms} ms after the delete request; strategies now $sources; the hogs running for 1.5 s: nr_strategy_hits $h_before -> $h_after"

stop_agent TERM
check cluster-sigterm $rc "exit code $rc"
kill $upf_hog $lab_hog $spare_hogs $stub_pid
hogs_run CONT
wait $upf_hog $lab_hog $spare_hogs $stub_pid 2>/dev/null
sed 's/^/kube_stub: /' /tmp/kube_stub.log
