#!/usr/bin/env bash
# Scheduler benchmark (`make bench-sched`): boots the sched_ext VM BOOTS times
# back to back; in each boot, first the floor (the 1 ms latency probe alone on
# the idle guest, EEVDF), then for each contender in turn CPU hogs plus the probe
# and a hackbench run (scripts/vm/guest-bench.sh). Contenders: EEVDF, EEVDF with
# the probe at nice -20, scx_floor (examples/scx_floor.rs: a sched_ext scheduler
# that only lets every wakeup preempt, so what sched_ext itself costs a wakeup),
# scx_bpfland and scx_rustland (built from crates.io at pinned versions and
# cached), scx_pilot without a strategy, scx_pilot with a priority strategy for
# the probe, scx_pilot --dispatch user without a strategy. EEVDF, EEVDF nice
# -20 and scx_pilot with and without the strategy also run the probe unpinned
# (*-unpinned rows, no hackbench): cyclictest pins its thread to CPU 0, so
# the pinned probe never takes the scheduler's CPU choice at wakeup.
# Writes to bench/results/ per boot sched-<stamp>-boot<N>.{md,json,svg,log} and
# over all boots sched-<stamp>-summary.{md,json,svg}: the median of each figure,
# a per-boot table, the host load before each boot and issue 20's targets as
# PASS/MISS; sched-latest.* are copies of the summary (its plot shows the
# medians). The VM is software-emulated and its tails swing from boot to boot:
# compare medians on a quiet host.
# Environment: BOOTS (default 3), LOAD_SETTLE_S (most seconds to wait before
# each boot for the host's 1-min load to fall to 0.5, default 150), DURATION
# (seconds per latency run, default 6), ROUNDS (times each contender runs in a
# boot, alternately in reverse order, pooled; default 2), HACKBENCH_RUNS
# (hackbench runs per contender and round, all of a boot pooled into one
# median; default 5: single runs spread by up to 15%), NO_PEERS=1 to skip
# building the peer schedulers, PEER_VERSION (default 1.1.4), FLOOR (the
# scx_floor binary, default examples/scx_floor beside BIN), VM_* of boot.sh
# (VM_PIN defaults to 1 here: each vCPU on its own host CPU, qemu's timer
# thread away from guest CPU 0, where the probe is pinned, so every contender
# is measured with the same placement; VM_PIN=0 leaves it to the host).
set -euo pipefail
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
PROG=bench-sched.sh
# shellcheck source=vm/common.sh
source "$root/scripts/vm/common.sh"
BIN=${BIN:-$root/target/release/scx_pilot}
PEER_VERSION=${PEER_VERSION:-1.1.4}
cache=${SCX_PILOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scx_pilot}
peers_root=$cache/peers-$PEER_VERSION
BOOTS=${BOOTS:-3}
ROUNDS=${ROUNDS:-2}
HACKBENCH_RUNS=${HACKBENCH_RUNS:-5}
for n in BOOTS ROUNDS HACKBENCH_RUNS; do
	[[ ${!n} =~ ^[1-9][0-9]*$ ]] || { echo "bench-sched.sh: $n=${!n} is not a positive number" >&2; exit 1; }
done
LOAD_SETTLE_S=${LOAD_SETTLE_S:-150}
[[ -x $BIN ]] || { echo "bench-sched.sh: $BIN not built (run: make build)" >&2; exit 1; }

# sched_ext's own floor (bpf/floor.bpf.c), a contender beside the peers.
FLOOR=${FLOOR:-$(dirname -- "$BIN")/examples/scx_floor}
[[ -x $FLOOR ]] || { echo "bench-sched.sh: $FLOOR not built (run: cargo build --release --example scx_floor)" >&2; exit 1; }
files=("$BIN" /usr/bin/curl /usr/bin/jq "$FLOOR:/peers/scx_floor")
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
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$root/bench/results
kernel=$(<"$KERNEL_DIR/version")
boot_jsons=()
high_load=0.5 # host 1-min load above which the figures are known to swing
PIN=${VM_PIN:-1}
high() { awk -v l="${1:-$(cut -d' ' -f1 /proc/loadavg)}" -v h="$high_load" 'BEGIN { exit !(l > h) }'; }
for ((i = 1; i <= BOOTS; i++)); do
	# Load from other work on the host steals the vCPUs' host threads and
	# inflates the tails; record it and say so. A build just before, or the
	# previous boot's own qemu, takes about two minutes to fade from the 1-min
	# average: wait for that (up to LOAD_SETTLE_S), so what is left is somebody
	# else's.
	for ((waited = 0; waited < LOAD_SETTLE_S; waited += 5)); do high || break; sleep 5; done
	read -r load1 load5 load15 _ </proc/loadavg
	if high "$load1"; then
		echo "bench-sched.sh: WARNING: host 1-min load $load1 > $high_load before boot $i of $BOOTS: figures will swing" >&2
	fi
	echo "bench-sched.sh: boot $i of $BOOTS (host load $load1 $load5 $load15)" >&2
	log=$work/guest-$i.log
	out=$results/sched-$stamp-boot$i
	# A boot the emulator's int3 race kills is booted again (up to three
	# times): without that, three of the nine runs of 2026-12-03 lost a boot.
	placed=$work/placement-$i
	if ! VM_APPEND="AGENT=$BIN PEERS=/peers DURATION=${DURATION:-6} ROUNDS=$ROUNDS HACKBENCH_RUNS=$HACKBENCH_RUNS ${VM_APPEND:-}" \
		VM_PIN=$PIN VM_PLACEMENT_FILE=$placed VM_TIMEOUT=${VM_TIMEOUT:-1800} boot_retrying "$PROG" "$log" "$work/initramfs.cpio.gz"; then
		echo "bench-sched.sh: boot $i failed (its log: $out.log); the summary leaves it out" >&2
		cp "$log" "$out.log" 2>/dev/null || true
		continue
	fi
	python3 "$root/scripts/bench/sched_report.py" "$log" "$out" --kernel "$kernel" --boot "$i" \
		--host-load "$load1 $load5 $load15" --high-load "$high_load" --qemu-threads "$(cat -- "$placed" 2>/dev/null || echo "not recorded (VM_PIN=$PIN)")" >/dev/null
	cp "$log" "$out.log"
	boot_jsons+=("$out.json")
done
((${#boot_jsons[@]})) || { echo "bench-sched.sh: no boot produced results" >&2; exit 1; }
summary=$results/sched-$stamp-summary
python3 "$root/scripts/bench/sched_summary.py" "$summary" "${boot_jsons[@]}"
for ext in md json svg; do cp "$summary.$ext" "$results/sched-latest.$ext"; done
echo "bench-sched.sh: results in bench/results/sched-$stamp-summary.{md,json,svg} (median of ${#boot_jsons[@]} boots;" \
	"sched-latest.* are copies), per boot sched-$stamp-boot<N>.*"
