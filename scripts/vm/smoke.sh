#!/usr/bin/env bash
# smoke.sh - end-to-end check of the VM machinery: fetch the sched_ext kernel (kernel.sh),
# build an initramfs with smoke-guest.sh (initramfs.sh), boot it (boot.sh).
# Exits with the guest's result. Environment: as for kernel.sh, initramfs.sh and boot.sh.
set -euo pipefail
PROG=smoke.sh
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

t0=$(date +%s.%N)
KERNEL_DIR=$(resolve_kernel_dir)
export KERNEL_DIR
t1=$(date +%s.%N)
initrd=$(mktemp "${TMPDIR:-/tmp}/scx_pilot-smoke.XXXXXX.cpio.gz")
trap 'rm -f -- "$initrd"' EXIT
"$VM_SCRIPT_DIR/initramfs.sh" "$initrd" "$VM_SCRIPT_DIR/smoke-guest.sh"
t2=$(date +%s.%N)
rc=0
"$VM_SCRIPT_DIR/boot.sh" "$initrd" || rc=$?
t3=$(date +%s.%N)
log "$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN {
	printf "kernel %.1fs, initramfs %.1fs, boot+test %.1fs", b - a, c - b, d - c }')"
if ((rc == 0)); then log "PASS"; else log "FAIL (exit $rc)"; fi
exit "$rc"
