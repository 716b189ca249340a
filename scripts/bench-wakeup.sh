#!/usr/bin/env bash
# Wakeup-path trace (`make bench-wakeup`): boots the sched_ext VM once and, for
# EEVDF, EEVDF nice -20, scx_floor, scx_pilot and scx_pilot with a priority
# strategy, traces CPU 0's scheduler events while the pinned 1 ms probe wakes
# among CPU hogs (scripts/vm/guest-wakeup.sh). Each of the probe's wakeups is
# cut into segments (timer, enqueue, switch in, return) whose medians say
# which part of the path a scheduler adds to: what make bench-sched's
# latencies and make bench-bpf's per-program costs do not say. Writes
# bench/results/wakeup-<stamp>.md and wakeup-latest.md.
# Environment: BIN (default target/release/scx_pilot), BASE (a second build, e.g.
# main's, traced in the same boot as base/scx_pilot and base/scx_pilot-prio: a
# change to the wakeup path is judged against it; writes wakeup-<stamp>-ab.md,
# not wakeup-latest.md), FLOOR (the scx_floor binary, default
# examples/scx_floor beside BIN), ROUNDS (default 2), TRACE_S (seconds traced
# per run, default 1), VM_* of boot.sh (VM_PIN defaults to 1, as in
# bench-sched.sh).
set -euo pipefail
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
PROG=bench-wakeup.sh
# shellcheck source=vm/common.sh
source "$root/scripts/vm/common.sh"
BIN=${BIN:-$root/target/release/scx_pilot}
[[ -x $BIN ]] || { echo "$PROG: $BIN not built (run: make build)" >&2; exit 1; }
FLOOR=${FLOOR:-$(dirname -- "$BIN")/examples/scx_floor}
[[ -x $FLOOR ]] || { echo "$PROG: $FLOOR not built (run: cargo build --release --example scx_floor)" >&2; exit 1; }
BASE=${BASE:-}
[[ -z $BASE || -x $BASE ]] || { echo "$PROG: BASE=$BASE is not an executable" >&2; exit 1; }
ROUNDS=${ROUNDS:-2}
TRACE_S=${TRACE_S:-1}
for n in ROUNDS TRACE_S; do
	[[ ${!n} =~ ^[1-9][0-9]*$ ]] || { echo "$PROG: $n=${!n} is not a positive number" >&2; exit 1; }
done

# The host's load before the boot, not the boot's own.
load=$(cut -d' ' -f1-3 /proc/loadavg)
files=("$BIN" "$FLOOR:/peers/scx_floor" /usr/bin/curl /usr/bin/jq)
[[ -z $BASE ]] || files+=("$BASE:/base/scx_pilot")
export KERNEL_DIR=${KERNEL_DIR:-$("$root/scripts/vm/kernel.sh")}
work=$(mktemp -d /tmp/scx_pilot-wakeup.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$root/scripts/vm/initramfs.sh" "$work/initramfs.cpio.gz" "$root/scripts/vm/guest-wakeup.sh" \
	"${files[@]}" >&2
log=$work/guest.log
if ! VM_APPEND="AGENT=$BIN FLOOR=/peers/scx_floor ${BASE:+BASE=/base/scx_pilot }ROUNDS=$ROUNDS TRACE_S=$TRACE_S ${VM_APPEND:-}" \
	VM_PIN=${VM_PIN:-1} VM_TIMEOUT=${VM_TIMEOUT:-$((300 + ROUNDS * (TRACE_S + 30) * 7))} \
	boot_retrying "$PROG" "$log" "$work/initramfs.cpio.gz"; then
	echo "$PROG: the boot failed; the end of its log follows" >&2
	tail -n 40 "$log" >&2
	exit 1
fi

bench_result wakeup wakeup_report.py "$log" "$load"
