#!/usr/bin/env bash
# The systemd notify protocol against a real sched_ext kernel: boots the VM
# (scripts/vm/) with the release binary at the unit's ExecStart path, the unit
# and its flags file, and examples/notify_listen as NOTIFY_SOCKET; runs
# scripts/vm/guest-notify.sh. Exit status 0 when every check passed.
# Environment: BIN (default target/release/scx_pilot), LISTENER (default
# target/release/examples/notify_listen), VM_LOG, and boot.sh's VM_* variables.
set -euo pipefail
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
PROG=vm-notify-test.sh
# shellcheck source=vm/common.sh
source "$root/scripts/vm/common.sh"
BIN=${BIN:-$root/target/release/scx_pilot}
LISTENER=${LISTENER:-$root/target/release/examples/notify_listen}
[[ -x $BIN ]] || { echo "vm-notify-test.sh: $BIN not built (run: cargo build --release)" >&2; exit 1; }
if [[ ! -x $LISTENER ]]; then
	(cd "$root" && cargo build --release --locked --example notify_listen)
fi

export KERNEL_DIR=${KERNEL_DIR:-$("$root/scripts/vm/kernel.sh")}
work=$(mktemp -d /tmp/scx_pilot-vmnotify.XXXXXX)
trap 'rm -rf "$work"' EXIT
export VM_LOG=${VM_LOG:-$work/guest.log}

echo "vm-notify-test.sh: kernel $(<"$KERNEL_DIR/version"), agent $BIN"
"$root/scripts/vm/initramfs.sh" "$work/initramfs.cpio.gz" "$root/scripts/vm/guest-notify.sh" \
	"$BIN:/usr/local/bin/scx_pilot" "$LISTENER:/usr/local/bin/notify_listen" \
	"$root/systemd/scx_pilot.service:/etc/systemd/system/scx_pilot.service" \
	"$root/systemd/scx_pilot.default:/etc/default/scx_pilot"
set +e
for attempt in 1 2; do
	: >"$VM_LOG"
	# Correctness only: single-threaded TCG avoids the text-patching race.
	VM_ACCEL=${VM_ACCEL:-tcg,thread=single} VM_TIMEOUT=${VM_TIMEOUT:-300} \
		"$root/scripts/vm/boot.sh" "$work/initramfs.cpio.gz" >/dev/null
	rc=$?
	if ((attempt == 1)) && int3_race "$rc" "$VM_LOG"; then
		echo "vm-notify-test.sh: emulator text-patching race (Oops: int3); once more" >&2
		continue
	fi
	break
done
set -e
grep -a '^CHECK ' "$VM_LOG" || true
if ((rc != 0)); then
	echo "vm-notify-test.sh: FAILED (guest exit $rc); guest log:" >&2
	cat "$VM_LOG" >&2
	exit 1
fi
echo "vm-notify-test.sh: passed"
