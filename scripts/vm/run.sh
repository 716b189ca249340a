#!/usr/bin/env bash
# `make run` on a kernel without sched_ext: boots the sched_ext VM with the agent
# inside and forwards its HTTP API to http://127.0.0.1:${SCX_PILOT_PORT:-8080} on
# this host. Arguments go to the agent. Ctrl-A x stops the VM, as does a signal to
# this script or the death of whatever started it (make).
set -euo pipefail
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)
BIN=${BIN:-$root/target/release/scx_pilot}
PORT=${SCX_PILOT_PORT:-8080}
HOST=127.0.0.1 # where the API is forwarded to on this host
[[ -x $BIN ]] || { echo "run.sh: $BIN not built (run: make build)" >&2; exit 1; }
# Something already answers there (an agent, another `make run`): say so before the
# kernel and the boot, rather than as qemu's hostfwd error after them.
if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
	echo "run.sh: $HOST:$PORT is already in use (another scx_pilot or make run?);" \
		"stop it, or forward the API to another port: SCX_PILOT_PORT=8081 make run" >&2
	exit 1
fi
export KERNEL_DIR=${KERNEL_DIR:-$("$root/scripts/vm/kernel.sh")}
# One image per port, rebuilt each run and left in the build directory: boot.sh
# replaces this shell (exec, so a signal reaches it and it stops qemu), so no trap
# here could remove a temporary file, and a 20 MB one was left in /tmp every run.
initrd_dir=${CARGO_TARGET_DIR:-$root/target}/vm-run
mkdir -p -- "$initrd_dir"
initrd=$initrd_dir/initrd-$PORT.cpio.gz
"$root/scripts/vm/initramfs.sh" "$initrd" "$root/scripts/vm/guest-run.sh" "$BIN" >&2
cat >&2 <<MSG
run.sh: booting $(<"$KERNEL_DIR/version") under qemu (software emulation, so everything is slower)
run.sh: the API will answer on http://$HOST:$PORT  e.g.  curl -s $HOST:$PORT/api/v1/metrics
run.sh: press Ctrl-A then x to stop the VM
MSG
# --pdeathsig: `make` does not pass a SIGTERM on to its recipe; when whatever started
# this dies, boot.sh gets a hangup and stops the VM, which would otherwise keep running
# and hold the port (a hangup, so that `nohup` still keeps a VM running on purpose).
# VM_RESTART_ON_INT3: the emulator's text-patching race (boot.sh) hit about one start in
# 25, as the scheduler attaches; the agent here just starts again in a fresh VM.
VM_APPEND="AGENT=$BIN -- $*" VM_HOSTFWD="tcp:$HOST:$PORT-:8080" VM_TIMEOUT=${VM_TIMEOUT:-86400} \
	VM_RESTART_ON_INT3=${VM_RESTART_ON_INT3:-1} \
	exec setpriv --pdeathsig HUP "$root/scripts/vm/boot.sh" "$initrd"
