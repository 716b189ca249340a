#!/usr/bin/env bash
# boot.sh - boot the sched_ext kernel with an initramfs from initramfs.sh under qemu (TCG),
# tee the serial console to a log, and exit with the guest script's exit code.
#
# Usage: boot.sh INITRAMFS [extra qemu args...]
#
# Environment:
#   KERNEL_DIR   kernel directory from kernel.sh (default: run kernel.sh)
#   VM_CPUS      vCPUs (default 2)            VM_MEM     memory in MiB (default 1024)
#   VM_TIMEOUT   seconds before qemu is killed (default 600)
#   VM_LOG       console log file (default /tmp/scx_pilot-vm.log; truncated at start)
#   VM_HOSTFWD   qemu user-net hostfwd rule(s), e.g. tcp:127.0.0.1:9090-:9090
#                (several: "tcp::8080-:80,hostfwd=tcp::2222-:22")
#   VM_APPEND    extra kernel command line. NAME=value words become environment variables
#                of the guest script; words after " -- " become its arguments.
#   VM_ACCEL     qemu accelerator (default tcg; nested KVM crashes the guest here)
#   VM_QEMU      qemu binary (default qemu-system-x86_64)
#
# Exit status: the guest script's exit code from the "VM-TEST-EXIT=<rc>" console line;
# 124 when the VM timed out; 125 when the VM stopped without that line (kernel panic,
# crash of /init, qemu error). In both failure cases the last 60 log lines go to stderr.
set -euo pipefail
PROG=boot.sh
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

case ${1:-} in -h | --help)
	usage
	exit 0
	;;
esac
(($# >= 1)) || {
	usage >&2
	die "need INITRAMFS"
}
INITRD=$1
shift
[[ -f $INITRD ]] || die "initramfs $INITRD not found"

KDIR=$(resolve_kernel_dir)
QEMU=${VM_QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null || die "$QEMU not found (apt-get install qemu-system-x86)"
CPUS=${VM_CPUS:-2}
MEM=${VM_MEM:-1024}
TMO=${VM_TIMEOUT:-600}
LOG=${VM_LOG:-/tmp/scx_pilot-vm.log}
ACCEL=${VM_ACCEL:-tcg}
[[ $CPUS =~ ^[0-9]+$ && $MEM =~ ^[0-9]+$ && $TMO =~ ^[0-9]+$ ]] ||
	die "VM_CPUS, VM_MEM and VM_TIMEOUT must be integers"

mkdir -p -- "$(dirname -- "$LOG")"
: >"$LOG"

APPEND="console=ttyS0 panic=-1 quiet loglevel=4 ${VM_APPEND:-}"
qemu_cmd=("$QEMU" -accel "$ACCEL" -cpu max -smp "$CPUS" -m "$MEM"
	-nographic -no-reboot
	-kernel "$KDIR/vmlinuz" -initrd "$INITRD" -append "$APPEND"
	-netdev "user,id=n0${VM_HOSTFWD:+,hostfwd=$VM_HOSTFWD}" -device "virtio-net-pci,netdev=n0")
timeout_cmd=(timeout -k 10)
if [[ -t 0 ]]; then
	# Interactive: console and monitor multiplexed on the terminal (Ctrl-A x quits).
	# --foreground keeps qemu in the terminal's process group so it can read the tty.
	qemu_cmd+=(-serial mon:stdio)
	timeout_cmd+=(--foreground)
	exec 3<&0
else
	# No terminal (CI): no monitor, stdin from /dev/null.
	qemu_cmd+=(-serial stdio -monitor none)
	exec 3</dev/null
fi
qemu_cmd+=("$@")

log "kernel $(<"$KDIR/version"), $CPUS vCPUs, ${MEM} MiB, accel $ACCEL, timeout ${TMO}s, log $LOG"
start=$(date +%s.%N)
set +e
"${timeout_cmd[@]}" "$TMO" "${qemu_cmd[@]}" <&3 2>&1 | tee -- "$LOG"
statuses=("${PIPESTATUS[@]}")
set -e
exec 3<&-
end=$(date +%s.%N)
qrc=${statuses[0]}
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')

clean=$(tr -d '\r' <"$LOG")
rc_line=$(grep -aoE 'VM-TEST-EXIT=[0-9]+' <<<"$clean" | tail -n1 || true)
gstart=$(sed -nE 's/.*VM-GUEST-START uptime=([0-9.]+).*/\1/p' <<<"$clean" | tail -n1)
gend=$(sed -nE 's/.*VM-GUEST-END uptime=([0-9.]+).*/\1/p' <<<"$clean" | tail -n1)

if [[ -n $rc_line ]]; then
	rc=${rc_line#VM-TEST-EXIT=}
	timing="VM wall time ${wall}s"
	if [[ -n $gstart && -n $gend ]]; then
		timing+=$(awk -v s="$gstart" -v e="$gend" -v w="$wall" 'BEGIN {
			printf ", guest script started at guest uptime %.2fs, ran %.1fs, qemu start+boot+poweroff %.1fs",
				s, e - s, w - (e - s) }')
	fi
	log "guest exit code $rc ($timing)"
	exit "$rc"
fi

if ((qrc == 124 || qrc == 137)); then
	log "error: VM timed out after ${TMO}s (VM_TIMEOUT) without a VM-TEST-EXIT line"
	why=124
elif grep -qa 'Kernel panic' <<<"$clean"; then
	log "error: guest kernel panicked (qemu exit $qrc) before VM-TEST-EXIT"
	why=125
else
	log "error: VM stopped without a VM-TEST-EXIT line (qemu exit $qrc, ${wall}s): guest crash or qemu error"
	why=125
fi
log "last 60 lines of $LOG:"
tail -n 60 <<<"$clean" >&2
exit "$why"
