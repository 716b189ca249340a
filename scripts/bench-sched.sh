#!/usr/bin/env bash
# Scheduler benchmark (`make bench-sched`): boots the sched_ext VM once and runs,
# for each contender in turn, CPU hogs plus a 1 ms latency probe and a hackbench
# run (scripts/vm/guest-bench.sh). Contenders: EEVDF, EEVDF with the probe at
# nice -20, scx_bpfland and scx_rustland (built from crates.io at pinned versions
# and cached), scx_pilot without a strategy, scx_pilot with a priority strategy
# for the probe. Writes a markdown and a JSON table and an SVG plot of the latency
# distributions to bench/results/. The VM is software-emulated: compare ratios
# within one run only.
# Environment: DURATION (seconds per latency run, default 6), NO_PEERS=1 to skip
# building the peer schedulers, PEER_VERSION (default 1.1.4), VM_* of boot.sh.
set -euo pipefail
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
BIN=${BIN:-$root/target/release/scx_pilot}
PEER_VERSION=${PEER_VERSION:-1.1.4}
cache=${SCX_PILOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scx_pilot}
peers_root=$cache/peers-$PEER_VERSION
[[ -x $BIN ]] || { echo "bench-sched.sh: $BIN not built (run: make build)" >&2; exit 1; }

files=("$BIN" /usr/bin/curl /usr/bin/jq)
if [[ ${NO_PEERS:-0} != 1 ]]; then
	for peer in scx_bpfland scx_rustland; do
		if [[ ! -x $peers_root/bin/$peer ]]; then
			echo "bench-sched.sh: building $peer $PEER_VERSION from crates.io (once; cached in $peers_root)" >&2
			BPF_CLANG=${BPF_CLANG:-clang-19} cargo install --locked --quiet --root "$peers_root" "$peer@$PEER_VERSION"
		fi
		files+=("$peers_root/bin/$peer:/peers/$peer")
	done
fi

export KERNEL_DIR=${KERNEL_DIR:-$("$root/scripts/vm/kernel.sh")}
work=$(mktemp -d /tmp/scx_pilot-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$root/scripts/vm/initramfs.sh" "$work/initramfs.cpio.gz" "$root/scripts/vm/guest-bench.sh" "${files[@]}" >&2
log=$work/guest.log
VM_LOG=$log VM_APPEND="AGENT=$BIN PEERS=/peers DURATION=${DURATION:-6} ${VM_APPEND:-}" \
	VM_TIMEOUT=${VM_TIMEOUT:-1800} "$root/scripts/vm/boot.sh" "$work/initramfs.cpio.gz" >/dev/null
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$root/bench/results/sched-$stamp
python3 "$root/scripts/bench/sched_report.py" "$log" "$out" --kernel "$(<"$KERNEL_DIR/version")"
cp "$log" "$out.log"
for ext in md json svg; do cp "$out.$ext" "$root/bench/results/sched-latest.$ext"; done
echo "bench-sched.sh: results in bench/results/sched-$stamp.{md,json,svg} (and sched-latest.*)"
