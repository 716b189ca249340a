# shellcheck shell=bash
# Shared helpers for scripts/vm/*.sh. Source it; do not execute it.
# The sourcing script must set PROG (its own name, used as the message prefix).

VM_SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# Repository root, resolved from this file's location (scripts/vm/ -> ../..).
VM_REPO_ROOT=$(cd -- "$VM_SCRIPT_DIR/../.." && pwd -P)
# Cache root shared by the VM scripts (kernel downloads, private apt state).
VM_CACHE_ROOT=${SCX_PILOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scx_pilot}
export VM_SCRIPT_DIR VM_REPO_ROOT VM_CACHE_ROOT

log() { printf '%s: %s\n' "${PROG:-vm}" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "${PROG:-vm}" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "${PROG:-vm}" "$*" >&2
	exit 1
}

# int3_race BOOT_RC LOG: the guest died of multi-threaded TCG's text-patching
# race (attach and detach flip static keys; boot.sh exits 125 and the kernel
# says "Oops: int3"): the emulator's fault, not the tested code's, so callers
# boot again.
int3_race() { (($1 == 125)) && grep -qa 'Oops: int3' "$2"; }

# boot_retrying PROG LOG INITRD: boot.sh INITRD with its console in LOG (the
# caller's VM_* environment applies), booted again up to twice when the
# emulator's int3 race kills it. Returns the last boot's exit status.
boot_retrying() {
	local prog=$1 log=$2 initrd=$3 attempt=1 rc
	while :; do
		: >"$log"
		VM_LOG=$log "$VM_SCRIPT_DIR/boot.sh" "$initrd" >/dev/null && return 0
		rc=$?
		if ((attempt < 3)) && int3_race "$rc" "$log"; then
			echo "$prog: the boot hit the emulator's text-patching race (Oops: int3); booting again" >&2
			((++attempt))
			continue
		fi
		return "$rc"
	done
}

# resolve_kernel_dir: echo KERNEL_DIR if set (and valid), else run kernel.sh.
resolve_kernel_dir() {
	local dir=${KERNEL_DIR:-}
	if [[ -z $dir ]]; then
		dir=$("$VM_SCRIPT_DIR/kernel.sh") || die "kernel.sh failed"
	fi
	[[ -f $dir/vmlinuz && -f $dir/config && -f $dir/version ]] ||
		die "KERNEL_DIR=$dir does not hold vmlinuz, config and version (run scripts/vm/kernel.sh)"
	printf '%s\n' "$dir"
}

# bench_result NAME REPORT LOG LOAD: the report of a one-boot benchmark
# (scripts/bench/REPORT on the guest's LOG, with the kernel and the host LOAD)
# into bench/results/NAME-<stamp>.md, printed. Reads BIN, BASE and ROUNDS: an
# A/B (BASE set) is about a build under work, so it is NAME-<stamp>-ab.md with
# a line naming both builds, and does not replace NAME-latest.md.
bench_result() {
	local name=$1 report=$2 guest_log=$3 load=$4 results=$VM_REPO_ROOT/bench/results out
	out=$results/$name-$(date -u +%Y%m%dT%H%M%SZ)${BASE:+-ab}.md
	mkdir -p "$results"
	python3 "$VM_REPO_ROOT/scripts/bench/$report" "$guest_log" "$(<"$KERNEL_DIR/version")" "$load" >"$out"
	if [[ -n ${BASE:-} ]]; then
		printf '\nBuilds: this one `%s` (sha256 %.12s), base `%s` (sha256 %.12s), %s rounds.\n' \
			"$BIN" "$(sha256sum <"$BIN")" "$BASE" "$(sha256sum <"$BASE")" "$ROUNDS" >>"$out"
	else
		cp "$out" "$results/$name-latest.md"
	fi
	cat "$out"
	log "wrote $out"
}
