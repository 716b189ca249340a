#!/usr/bin/env bash
# vm-matrix.sh - run the scheduler checks on several sched_ext kernels, one VM at a time,
# and report per kernel.
#
# Usage: vm-matrix.sh [--quick] KERNEL...
#   KERNEL   a scripts/vm/kernel.sh VERSION: newest, oldest, a series (6.19), a release
#            (7.2.12 or 7.2.12+deb13); downloaded (and, without a packaged config, checked
#            by booting it) on first use
#   --quick  the short check (scripts/vm/guest-attach.sh: load, attach, counters, a strategy,
#            forced ejection with its exit dump, SIGTERM, SIGKILL; 1-2 min a kernel) instead of
#            the full one (scripts/vm-test.sh: everything guest-sched.sh measures; 8-15 min)
#
# Environment: BIN (agent binary, default target/release/scx_pilot), the VM_* variables of
# scripts/vm/boot.sh and the SCX_PILOT_* variables of scripts/vm/kernel.sh.
# Output: a summary line per kernel; each kernel's console log (and, for the full check,
# vm-test.log and, when it passed, report.json) in target/vm-matrix/<release>/. Exit status: 0 when every kernel passed.
set -euo pipefail
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
PROG=vm-matrix.sh
# shellcheck source=vm/common.sh
source "$root/scripts/vm/common.sh"
say() { echo "vm-matrix.sh: $*" >&2; }
quick=0
[[ ${1:-} == --quick ]] && quick=1 && shift
[[ ${1:-} == -h || ${1:-} == --help ]] && { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0; }
(($#)) || set -- newest
BIN=${BIN:-$root/target/release/scx_pilot}
[[ -x $BIN ]] || { say "$BIN not built (run: cargo build --release)"; exit 1; }
out=$root/target/vm-matrix
work=$(mktemp -d /tmp/scx_pilot-vmmatrix.XXXXXX)
trap 'rm -rf "$work"' EXIT

# quick_check KERNEL_DIR LOG: the attach smoke on one kernel; the guest's exit code.
quick_check() {
	local rc
	KERNEL_DIR=$1 "$root/scripts/vm/initramfs.sh" "$work/attach.cpio.gz" "$root/scripts/vm/guest-attach.sh" \
		"$BIN" /usr/bin/jq /usr/bin/curl
	for attempt in 1 2; do
		rc=0
		KERNEL_DIR=$1 VM_LOG=$2 VM_APPEND="AGENT=$BIN ${VM_APPEND:-}" VM_TIMEOUT=${VM_TIMEOUT:-600} \
			"$root/scripts/vm/boot.sh" "$work/attach.cpio.gz" >/dev/null || rc=$?
		# The emulator's text-patching race (see scripts/vm/README.md): once more, and say so.
		if ((attempt == 1)) && int3_race "$rc" "$2"; then
			say "the guest hit the emulator's text-patching race (Oops: int3); booting again"
			continue
		fi
		break
	done
	grep -a '^CHECK ' "$2" | tr -d '\r' >&2 || true
	return "$rc"
}

summary=()
failed=0
for k in "$@"; do
	t0=$SECONDS
	if ! kdir=$("$root/scripts/vm/kernel.sh" "$k"); then
		summary+=("$(printf '%-12s %-28s FAIL  kernel.sh could not provide it' "$k" -)")
		failed=1
		continue
	fi
	rel=$(<"$kdir/version")
	mkdir -p "$out/$rel"
	rm -f -- "$out/$rel/vm-test.log" "$out/$rel/report.json"
	say "=== $k: kernel $rel (config: $(cat "$kdir/config-source" 2>/dev/null || echo packaged))"
	rc=0
	if ((quick)); then
		kind=quick
		quick_check "$kdir" "$out/$rel/console.log" || rc=$?
	else
		kind=full
		KERNEL_DIR=$kdir VM_LOG=$out/$rel/console.log BIN=$BIN "$root/scripts/vm-test.sh" 2>&1 |
			tee "$out/$rel/vm-test.log" || rc=$?
		[[ -f $root/target/vm-test/report.json ]] && ((rc == 0)) && cp "$root/target/vm-test/report.json" "$out/$rel/"
	fi
	checks=$(grep -ac '^CHECK ok' "$out/$rel/console.log" || true)
	# The full check's host-side checks (latency comparisons) are named in its "FAILED:" line.
	bad=$( (grep -a '^CHECK FAIL' "$out/$rel/console.log" | tr -d '\r' | sed 's/^CHECK FAIL \([^:]*\):.*/\1/'
		sed -n 's/^vm-test: FAILED: //p' "$out/$rel/vm-test.log" 2>/dev/null | tr -d ' ' | tr , '\n') | sort -u | paste -sd, || true)
	if ((rc == 0)); then verdict=pass; else verdict=FAIL failed=1; fi
	summary+=("$(printf '%-12s %-28s %-5s %-5s %3d checks ok%s, %ds' "$k" "$rel" "$kind" "$verdict" "$checks" \
		"${bad:+, failed: $bad}" $((SECONDS - t0)))")
done
say "summary (logs in target/vm-matrix/<release>/):"
printf '  %s\n' "${summary[@]}" >&2
exit "$failed"
