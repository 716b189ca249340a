#!/usr/bin/env bash
# BPF cost benchmark (`make bench-bpf`): boots the sched_ext VM once and
# measures what each of scx_pilot's BPF programs costs per call among CPU hogs
# with a 1 ms periodic probe (scripts/vm/guest-bpf-cost.sh): kernel mode with a
# priority strategy for the probe, kernel mode without, --dispatch user. Under
# the emulator every call costs far more than on hardware, and the programs on
# a wakeup's path add up to a visible share of its latency: this is the figure
# to watch when the hot paths change. Writes bench/results/bpf-cost-<stamp>.md
# (and bpf-cost-latest.md; bpf-cost-<stamp>-ab.md with BASE): per case and
# program the calls, the mean ns per call and the milliseconds in all, plus
# the probe's wakeups and p50/p99.
# Environment: BIN (default target/release/scx_pilot), BASE (a second build,
# e.g. main's, measured in the same boot, round by round beside BIN, with its
# figures and the ratio in the tables: a change to a hot path is judged
# against it, not against another boot's figures, which swing by a fifth),
# ROUNDS (default 1, 3 with BASE), DURATION (seconds per case, default 6),
# VM_* of boot.sh (VM_PIN defaults to 1, as in bench-sched.sh). Needs bpftool
# on the host (scripts/deps.sh bench installs it); it is copied into the guest.
set -euo pipefail
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
PROG=bench-bpf-cost.sh
# shellcheck source=vm/common.sh
source "$root/scripts/vm/common.sh"
BIN=${BIN:-$root/target/release/scx_pilot}
[[ -x $BIN ]] || { echo "$PROG: $BIN not built (run: make build)" >&2; exit 1; }
BASE=${BASE:-}
[[ -z $BASE || -x $BASE ]] || { echo "$PROG: BASE=$BASE is not an executable" >&2; exit 1; }
ROUNDS=${ROUNDS:-$([[ -n $BASE ]] && echo 3 || echo 1)}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "$PROG: ROUNDS=$ROUNDS is not a positive number" >&2; exit 1; }
bpftool=$(command -v bpftool || echo /usr/sbin/bpftool)
[[ -x $bpftool ]] || { echo "$PROG: bpftool not found (run: scripts/deps.sh bench)" >&2; exit 1; }
files=("$BIN" /usr/bin/curl /usr/bin/jq "$bpftool:/usr/sbin/bpftool")
[[ -z $BASE ]] || files+=("$BASE:/base/scx_pilot")

# The host's load before the boot, not the boot's own.
load=$(cut -d' ' -f1-3 /proc/loadavg)
export KERNEL_DIR=${KERNEL_DIR:-$("$root/scripts/vm/kernel.sh")}
work=$(mktemp -d /tmp/scx_pilot-bpf-cost.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$root/scripts/vm/initramfs.sh" "$work/initramfs.cpio.gz" "$root/scripts/vm/guest-bpf-cost.sh" "${files[@]}" >&2
log=$work/guest.log
if ! VM_APPEND="AGENT=$BIN ${BASE:+BASE=/base/scx_pilot }ROUNDS=$ROUNDS DURATION=${DURATION:-6} ${VM_APPEND:-}" \
	VM_PIN=${VM_PIN:-1} VM_TIMEOUT=${VM_TIMEOUT:-$((600 + ROUNDS * 300))} \
	boot_retrying "$PROG" "$log" "$work/initramfs.cpio.gz"; then
	echo "$PROG: the boot failed; the end of its log follows" >&2
	tail -n 40 "$log" >&2
	exit 1
fi

bench_result bpf-cost bpf_cost_report.py "$log" "$load"
