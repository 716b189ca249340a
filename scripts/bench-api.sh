#!/usr/bin/env bash
# API benchmark (issues 3 and 8): GET /api/v1/metrics and GET /api/v1/pods/pids
# of the release binary (--api-only; the pods from a generated proc root of
# PODS pods) against a minimal actix-web handler returning a fixed JSON body of
# the same size (examples/api_baseline.rs, one instance per body), same machine,
# same run, wrk -t2 -c64 -d10s. Then the agent's idle CPU over 30 s from
# /proc/PID/stat (utime+stime).
#
# Targets (metrics): agent >= 80% of the baseline's requests/s, p99 < 5 ms; idle
# < 2% of one CPU. Runs alternate baseline/agent ROUNDS times (default 2) to
# even out drift; figures are per run and averaged.
#
# Environment: AGENT_PORT (18480), BASE_PORT (18481), PODS_PORT (18482), PODS
# (100), ROUNDS (2), DURATION (10s), IDLE_SECONDS (30).
set -euo pipefail
cd "$(dirname "$0")/.."

AGENT_PORT=${AGENT_PORT:-18480}
BASE_PORT=${BASE_PORT:-18481}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10s}
IDLE_SECONDS=${IDLE_SECONDS:-30}
PODS=${PODS:-100}
PODS_PORT=${PODS_PORT:-18482}

if ! command -v wrk >/dev/null; then
    echo "bench-api: installing wrk" >&2
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

cargo build --release --bin scx_pilot --example api_baseline >&2

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

wait_http() {
    for _ in $(seq 100); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "bench-api: $1 did not answer" >&2
    exit 1
}

# A node with pods for GET /api/v1/pods/pids: a proc root of PODS pods with 4
# processes each (kubelet systemd-driver cgroups, containerd), as /proc has them.
mkdir -p "$tmp/proc"
pid=1000
for p in $(seq "$PODS"); do
    uid=$(printf '%08x_0000_4000_8000_%012x' "$p" "$p")
    cid=$(printf '%064x' "$p")
    for _ in 1 2 3 4; do
        pid=$((pid + 1))
        mkdir -p "$tmp/proc/$pid"
        echo "$pid (worker) S 1000 $pid $pid 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0" >"$tmp/proc/$pid/stat"
        echo "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod$uid.slice/cri-containerd-$cid.scope" >"$tmp/proc/$pid/cgroup"
    done
done

# Its own state directory, and no token: the benchmark posts a report below.
target/release/scx_pilot --api-only --listen "127.0.0.1:$AGENT_PORT" --api-workers 2 \
    --state-dir "$tmp/state" --auth none --proc-root "$tmp/proc" 2>"$tmp/agent.log" &
agent_pid=$!
pids+=("$agent_pid")
wait_http "http://127.0.0.1:$AGENT_PORT/health"

# A realistic body: in --api-only mode GET /api/v1/metrics shows what external
# schedulers reported, so post the seed's example report first.
curl -sf -X POST "http://127.0.0.1:$AGENT_PORT/api/v1/metrics" \
    -H 'Content-Type: application/json' \
    -d '{"usersched_pid": 1234, "nr_queued": 10, "nr_scheduled": 5, "nr_running": 2,
         "nr_online_cpus": 8, "nr_user_dispatches": 100, "nr_kernel_dispatches": 50,
         "nr_cancel_dispatches": 2, "nr_bounce_dispatches": 1, "nr_failed_dispatches": 0,
         "nr_sched_congested": 3}' >/dev/null
curl -sf "http://127.0.0.1:$AGENT_PORT/api/v1/metrics" >"$tmp/body.json"
body_bytes=$(wc -c <"$tmp/body.json")

target/release/examples/api_baseline --listen "127.0.0.1:$BASE_PORT" --workers 2 \
    --body-file "$tmp/body.json" 2>"$tmp/base.log" &
pids+=("$!")
wait_http "http://127.0.0.1:$BASE_PORT/api/v1/metrics"

base_len=$(curl -sf "http://127.0.0.1:$BASE_PORT/api/v1/metrics" | wc -c)
echo "metrics body: $body_bytes bytes (agent), $base_len bytes (baseline)"

curl -sf "http://127.0.0.1:$AGENT_PORT/api/v1/pods/pids" >"$tmp/pods.json"
target/release/examples/api_baseline --listen "127.0.0.1:$PODS_PORT" --workers 2 \
    --body-file "$tmp/pods.json" 2>"$tmp/base-pods.log" &
pids+=("$!")
wait_http "http://127.0.0.1:$PODS_PORT/api/v1/pods/pids"
echo "pods body: $(wc -c <"$tmp/pods.json") bytes ($PODS pods of 4 processes; the agent serves a scan cached for --pods-cache-ms)"

# wrk's latency lines are like "99%    1.23ms" (us, ms or s).
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n = n * 1000
        printf "%.3f", n
    }'
}

run_wrk() { # name url
    local out
    out=$(wrk -t2 -c64 -d"$DURATION" --latency "$2")
    local rps p99
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    local errors
    errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    [ -n "$errors" ] && echo "  $1: $errors" >&2
    echo "$1 $rps $p99"
}

# Warm everything up, then alternate.
wrk -t2 -c64 -d2s "http://127.0.0.1:$BASE_PORT/api/v1/metrics" >/dev/null
wrk -t2 -c64 -d2s "http://127.0.0.1:$AGENT_PORT/api/v1/metrics" >/dev/null
wrk -t2 -c64 -d2s "http://127.0.0.1:$PODS_PORT/api/v1/pods/pids" >/dev/null
wrk -t2 -c64 -d2s "http://127.0.0.1:$AGENT_PORT/api/v1/pods/pids" >/dev/null
: >"$tmp/results"
for r in $(seq "$ROUNDS"); do
    run_wrk baseline "http://127.0.0.1:$BASE_PORT/api/v1/metrics" | tee -a "$tmp/results"
    run_wrk agent "http://127.0.0.1:$AGENT_PORT/api/v1/metrics" | tee -a "$tmp/results"
    run_wrk pods-baseline "http://127.0.0.1:$PODS_PORT/api/v1/pods/pids" | tee -a "$tmp/results"
    run_wrk pods-agent "http://127.0.0.1:$AGENT_PORT/api/v1/pods/pids" | tee -a "$tmp/results"
done
awk '
    { rps[$1] += $2; n[$1]++; sp[$1] += $3; if ($3 > p99[$1]) p99[$1] = $3 }
    function report(what, base, agent, target,   b, a) {
        b = rps[base] / n[base]; a = rps[agent] / n[agent]
        printf "%s baseline: %.0f req/s (mean of %d runs), p99 mean %.3f ms, worst %.3f ms\n", what, b, n[base], sp[base] / n[base], p99[base]
        printf "%s agent:    %.0f req/s (mean of %d runs), p99 mean %.3f ms, worst %.3f ms\n", what, a, n[agent], sp[agent] / n[agent], p99[agent]
        printf "%s ratio agent/baseline: %.1f%%%s; agent p99 mean %.3f ms\n", what, 100 * a / b, target, sp[agent] / n[agent]
    }
    END {
        report("GET /api/v1/metrics", "baseline", "agent", " (target >= 80%, p99 < 5 ms)")
        report("GET /api/v1/pods/pids", "pods-baseline", "pods-agent", "")
    }' "$tmp/results"

# Idle CPU of the agent: utime+stime from /proc/PID/stat (fields 14 and 15,
# counted after the command, which may hold spaces), every second.
ticks() { sed 's/.*) //' "/proc/$agent_pid/stat" | awk '{print $12 + $13}'; }
hz=$(getconf CLK_TCK)
sleep 2
start=$(ticks)
max=0
prev=$start
for _ in $(seq "$IDLE_SECONDS"); do
    sleep 1
    now=$(ticks)
    d=$((now - prev))
    [ "$d" -gt "$max" ] && max=$d
    prev=$now
done
used=$((prev - start))
awk -v t="$used" -v hz="$hz" -v s="$IDLE_SECONDS" -v m="$max" 'BEGIN {
    printf "idle CPU over %d s (api-only, no sampler): %d ticks of 1/%d s = %.3f%% of one CPU (max %d ticks in one second; target < 2%%)\n", s, t, hz, 100 * t / hz / s, m
}'
