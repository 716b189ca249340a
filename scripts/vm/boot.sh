#!/usr/bin/env bash
# boot.sh - boot the sched_ext kernel with an initramfs from initramfs.sh under qemu (TCG),
# tee the serial console to a log, and exit with the guest script's exit code.
#
# Usage: boot.sh INITRAMFS [extra qemu args...]
#
# Environment:
#   KERNEL_DIR   kernel directory from kernel.sh (default: run kernel.sh)
#   VM_CPUS      vCPUs (default 2)            VM_MEM     memory in MiB (default 1024)
#   VM_TIMEOUT   seconds before qemu is killed, per boot attempt (default 600)
#   VM_LOG       console log file (default /tmp/scx_pilot-vm.log; truncated at start). Give
#                concurrent runs different files: the exit code is parsed from a private copy,
#                but a shared VM_LOG interleaves their consoles.
#   VM_HOSTFWD   qemu user-net hostfwd rule(s), e.g. tcp:127.0.0.1:9090-:9090
#                (several: "tcp::8080-:80,hostfwd=tcp::2222-:22")
#   VM_APPEND    extra kernel command line. NAME=value words become environment variables
#                of the guest script; words after " -- " become its arguments (split on
#                spaces, no quoting).
#   VM_ACCEL     qemu accelerator (default tcg = multi-threaded TCG, one host thread per
#                vCPU; nested KVM crashes the guest here). "tcg,thread=single" avoids the
#                MTTCG text-patching race (see below) but runs all vCPUs on one host thread,
#                round-robin, which distorts latency measurements.
#   VM_QEMU      qemu binary (default qemu-system-x86_64)
#   VM_BOOT_TIMEOUT    seconds until the guest script must have started (default 180)
#   VM_BOOT_RETRIES    extra boot attempts when the VM dies or hangs BEFORE the guest
#                script started (default 2); failures after it started, and qemu's own
#                start-up errors (a VM_HOSTFWD port in use), are never retried
#   VM_RESTART_ON_INT3 1 also retries (within VM_BOOT_RETRIES) a VM whose guest hit the
#                int3 race below AFTER its script started, when the script can simply start
#                again (`make run`); 0 (default): a test's checks already ran, so it fails.
#   VM_POWEROFF_GRACE  seconds qemu may take to exit after VM-TEST-EXIT before it is
#                killed (default 20); the guest's exit code still counts then
#   VM_RT_TIMERS 1 (default) runs qemu's main-loop thread at host SCHED_FIFO 1; 0 leaves
#                it at normal priority. Under TCG that thread fires the guest's timers: when
#                both vCPU threads spin on a 2-core host it waits for a host CPU, and every
#                timer wakeup in a busy guest came 1-4 ms late (p99), for EEVDF and every
#                sched_ext scheduler alike, a delay no real machine has. Needs root
#                (CAP_SYS_NICE); without it boot.sh says so and goes on.
#   VM_PIN       1 pins qemu's threads to host CPUs once the vCPUs exist: vCPU i to the
#                i-th host CPU boot.sh may use, the main-loop thread (the guest's timers)
#                and qemu's other threads to a spare one when there is one, else to the
#                last vCPU's. 0 (default) leaves placement to the host. On a 2-core host the
#                main-loop thread wakes thousands of times a second and preempts whichever
#                vCPU shares its CPU: a 1 ms probe on that vCPU woke about 20 us later at
#                the median (171 vs 194 us, scx_floor, one boot), and the host's choice
#                flipped between a boot's contenders. Pinned, guest CPU 0 (where
#                cyclictest pins its probe) never shares with it; the benches pin.
#   VM_PLACEMENT_FILE  when set, boot.sh writes there one line on where qemu's threads ran
#                ("pinned (VM_PIN=1): vCPU 0 on host CPU 0, ..." or "placed by the host ..."),
#                which the bench reports quote: what happened, not what was asked for.
#
# Known issue: under multi-threaded TCG, x86 kernel text patching (static keys flipped by
# e.g. sched_ext enable/disable or sysctls) sometimes crashes the guest with
# "Oops: int3". Seen in ~1 of 25 boots and within ~30 s of toggling a static key in a
# loop. The kernel runs with oops=panic so this ends the VM; boot.sh names the cause.
#
# Exit status: the guest script's exit code from the "VM-TEST-EXIT=<rc>" console line;
# 0 when it was stopped from the console (Ctrl-A x); 124 when the VM timed out; 125 when
# the VM stopped without that line (kernel panic, crash of /init, qemu error); 128+n on
# signal n (SIGTERM, SIGINT, SIGHUP), which stops qemu too. In both failure cases the
# last 60 log lines go to stderr.
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
BOOT_TMO=${VM_BOOT_TIMEOUT:-180}
RETRIES=${VM_BOOT_RETRIES:-2}
RESTART_INT3=${VM_RESTART_ON_INT3:-0}
[[ $RESTART_INT3 == [01] ]] || die "VM_RESTART_ON_INT3 must be 0 or 1"
GRACE=${VM_POWEROFF_GRACE:-20}
RT_TIMERS=${VM_RT_TIMERS:-1}
[[ $RT_TIMERS == [01] ]] || die "VM_RT_TIMERS must be 0 or 1"
PIN=${VM_PIN:-0}
[[ $PIN == [01] ]] || die "VM_PIN must be 0 or 1"
PLACEMENT=${VM_PLACEMENT_FILE:-}
placement() { [[ -z $PLACEMENT ]] || printf '%s\n' "$*" >"$PLACEMENT"; }
for v in CPUS MEM TMO BOOT_TMO RETRIES GRACE; do
	[[ ${!v} =~ ^[0-9]+$ ]] ||
		die "VM_CPUS, VM_MEM, VM_TIMEOUT, VM_BOOT_TIMEOUT, VM_BOOT_RETRIES, VM_POWEROFF_GRACE must be integers"
done

mkdir -p -- "$(dirname -- "$LOG")"
if ((PIN)); then
	placement "placed by the host (VM_PIN=1, but the VM ended before its vCPU threads were pinned)"
else
	placement "placed by the host (VM_PIN=0)"
fi
: >"$LOG"
# The result is parsed from a private capture: VM_LOG may be shared with concurrent runs
# (another boot.sh truncating it). VM_LOG is written in append mode for the same reason.
CAP=$(mktemp "${TMPDIR:-/tmp}/scx_pilot-vm-console.XXXXXX")
PIDF=$CAP.pid KILLED=$CAP.killed
wd='' qpid=''
# Removed by cleanup() or, when boot.sh was killed outright, by the watchdog (which
# cleanup() kills, so it cannot call cleanup()).
remove_private_files() { rm -f -- "$CAP" "$PIDF" "$KILLED"; }
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	if [[ -n $wd ]]; then kill "$wd" 2>/dev/null || true; fi
	remove_private_files
}
trap cleanup EXIT
# stop_vm SIGNAL NUMBER: boot.sh (or `make run`, which execs it) was told to stop: stop
# qemu with it, rather than leave a VM running that holds its VM_HOSTFWD ports.
# shellcheck disable=SC2317 # invoked by the signal traps
stop_vm() {
	trap '' TERM INT HUP
	if [[ -n $qpid ]]; then
		# timeout relays the signal to qemu, and kills it 10 s later if it is still there.
		kill -TERM "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
		log "stopped by SIG$1; the VM was shut down"
	fi
	exit $((128 + $2))
}
trap 'stop_vm TERM 15' TERM
trap 'stop_vm INT 2' INT
trap 'stop_vm HUP 1' HUP

# allowed_cpus: the host CPUs this process may run on, one per line (its affinity list
# "0-1,4" expanded), so that pinning stays inside a cpuset.
allowed_cpus() {
	local part
	for part in $(awk '/^Cpus_allowed_list/ { gsub(",", " ", $2); print $2 }' /proc/self/status); do
		if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
	done
}

# pin_threads PID: VM_PIN's placement. Returns 1 until qemu has named all its vCPU threads
# ("CPU <i>/TCG", from -name debug-threads=on); prints what it did.
pin_threads() {
	local pid=$1 host other t comm cpu vcpus=0 said='' failed=0
	mapfile -t host < <(allowed_cpus)
	if ((${#host[@]} < CPUS)); then
		warn "VM_PIN: ${#host[@]} host CPUs for $CPUS vCPUs, left unpinned"
		placement "placed by the host (VM_PIN=1, but ${#host[@]} host CPUs for $CPUS vCPUs)"
		return 0
	fi
	# A spare host CPU for qemu's other threads, else the last vCPU's.
	other=${host[${#host[@]} > CPUS ? CPUS : CPUS - 1]}
	for t in /proc/"$pid"/task/*; do
		comm=$(cat -- "$t/comm" 2>/dev/null) || continue
		[[ $comm =~ ^CPU\ ([0-9]+)/ ]] && ((++vcpus))
	done
	((vcpus == CPUS)) || return 1
	for t in /proc/"$pid"/task/*; do
		comm=$(cat -- "$t/comm" 2>/dev/null) || continue
		if [[ $comm =~ ^CPU\ ([0-9]+)/ ]]; then
			cpu=${host[BASH_REMATCH[1]]}
			said+="vCPU ${BASH_REMATCH[1]} on host CPU $cpu, "
		else
			cpu=$other
		fi
		if ! taskset -p -c "$cpu" "${t##*/}" >/dev/null 2>&1; then
			warn "VM_PIN: could not pin thread ${t##*/} ($comm)"
			((++failed))
		fi
	done
	said="pinned (VM_PIN=1): ${said}qemu's other threads on host CPU $other"
	((failed)) && said+=" ($failed threads could not be pinned)"
	log "qemu's threads $said"
	placement "$said"
}

# watchdog: kills qemu when the guest script has not started within BOOT_TMO seconds
# (writes "boot" to $KILLED), or when qemu has not exited GRACE seconds after the guest
# printed VM-TEST-EXIT (writes "poweroff").
watchdog() {
	set +e
	local pid='' t=0 started=0 done_at=0 pinned=$((!PIN))
	while sleep 1; do
		((t++))
		# boot.sh was killed outright (no cleanup ran); qemu goes with it (see timeout_cmd),
		# and its private files with this watchdog.
		if ! kill -0 "$$" 2>/dev/null; then
			remove_private_files
			return 0
		fi
		if [[ -z $pid ]]; then
			pid=$(cat -- "$PIDF" 2>/dev/null)
			[[ -n $pid ]] || continue
			# The main thread's id is the pid; chrt -p changes that thread only.
			if [[ $RT_TIMERS == 1 ]] && ! chrt -f -p 1 "$pid" 2>/dev/null; then
				warn "could not raise qemu's main-loop thread to SCHED_FIFO (not root?): guest timer wakeups under load come late"
			fi
		fi
		kill -0 "$pid" 2>/dev/null || return 0
		if ((!pinned)) && pin_threads "$pid"; then pinned=1; fi
		if ((!started)) && grep -qa 'VM-GUEST-START' "$CAP"; then started=1; fi
		if ((!started && t > BOOT_TMO)); then
			echo boot >"$KILLED"
			kill "$pid"
			return 0
		fi
		if ((started && !done_at)) && grep -qa 'VM-TEST-EXIT=' "$CAP"; then done_at=$t; fi
		if ((done_at && t - done_at > GRACE)); then
			echo poweroff >"$KILLED"
			kill "$pid"
			return 0
		fi
	done
}

APPEND="console=ttyS0 panic=-1 oops=panic quiet loglevel=4 ${VM_APPEND:-}"
qemu_cmd=("$QEMU" -accel "$ACCEL" -cpu max -smp "$CPUS" -m "$MEM"
	-nographic -no-reboot
	-kernel "$KDIR/vmlinuz" -initrd "$INITRD" -append "$APPEND"
	-netdev "user,id=n0${VM_HOSTFWD:+,hostfwd=$VM_HOSTFWD}" -device "virtio-net-pci,netdev=n0,romfile=")
# --pdeathsig: should this shell die without stop_vm (SIGKILL), timeout is told to stop
# qemu all the same.
timeout_cmd=(setpriv --pdeathsig TERM timeout -k 10)
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
# Thread names ("CPU 0/TCG") tell VM_PIN the vCPU threads.
((PIN)) && qemu_cmd+=(-name scx_pilot-vm,debug-threads=on)
qemu_cmd+=(-pidfile "$PIDF" "$@")

# diagnose CONSOLE_TEXT: one line naming a known failure signature, if any.
diagnose() {
	if grep -qa 'Oops: int3' <<<"$1"; then
		echo "guest kernel 'Oops: int3': the multi-threaded TCG text-patching race (static key flip), not necessarily a bug in the tested code; re-run, or use VM_ACCEL=tcg,thread=single"
	elif grep -qa 'Could not set up host forwarding rule' <<<"$1"; then
		echo "a host port of VM_HOSTFWD (${VM_HOSTFWD:-}) is in use: stop what listens there, or forward another port"
	elif grep -qaE 'Kernel panic|Oops:|BUG:' <<<"$1"; then
		echo "guest kernel oops/panic: $(grep -aE 'Kernel panic|Oops:|BUG:' <<<"$1" | head -n1 | sed 's/^\[[ 0-9.]*\] //')"
	fi
}

attempt=0
while :; do
	((++attempt))
	: >"$CAP"
	rm -f -- "$PIDF" "$KILLED"
	msg="kernel $(<"$KDIR/version"), $CPUS vCPUs, ${MEM} MiB, accel $ACCEL, timeout ${TMO}s, log $LOG"
	((attempt == 1)) || msg+=" (attempt $attempt)"
	log "$msg"
	start=$(date +%s.%N)
	watchdog &
	wd=$!
	# qemu runs in the background and this shell waits for it: a signal interrupts
	# `wait` and runs stop_vm at once, where bash would defer it until a foreground
	# qemu exited by itself. The explicit <&3 keeps the terminal as qemu's stdin.
	exec 4> >(tee -a -- "$CAP" "$LOG")
	teepid=$!
	"${timeout_cmd[@]}" "$TMO" "${qemu_cmd[@]}" <&3 >&4 2>&1 &
	qpid=$!
	set +e
	wait "$qpid"
	qrc=$?
	set -e
	qpid=''
	exec 4>&-
	wait "$teepid" || true
	kill "$wd" 2>/dev/null || true
	wait "$wd" 2>/dev/null || true
	wd=''
	end=$(date +%s.%N)
	wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
	killed=$(cat -- "$KILLED" 2>/dev/null || true)
	clean=$(tr -d '\r' <"$CAP")
	started=0
	grep -qa 'VM-GUEST-START' <<<"$clean" && started=1
	diag=$(diagnose "$clean")
	# Ctrl-A x on the console (interactive, -serial mon:stdio): qemu says so and exits 0.
	# The user stopped the VM, as `make run` tells them to: not a failure, no retry.
	quit=0
	((qrc == 0)) && grep -qa 'QEMU: Terminated$' <<<"$clean" && quit=1

	# qemu refusing its own command line or options (a host port of VM_HOSTFWD in
	# use, a missing file) fails the same way on every attempt: no retry.
	qemu_err=''
	if ((!started && qrc == 1)); then
		qemu_err=$(grep -aE "^$(basename -- "$QEMU"): " <<<"$clean" | grep -av ': warning: ' | head -n1 || true)
	fi
	if ((started && RESTART_INT3 && !quit && attempt <= RETRIES)) &&
		grep -qa 'Oops: int3' <<<"$clean" && ! grep -qa 'VM-TEST-EXIT=' <<<"$clean"; then
		warn "the guest kernel hit the emulator's text-patching race ('Oops: int3') after ${wall}s; starting the VM again (attempt $((attempt + 1)))"
		continue
	fi
	if ((!started && !quit && attempt <= RETRIES)) && [[ -z $qemu_err ]]; then
		if [[ $killed == boot ]]; then
			why="the guest script did not start within ${BOOT_TMO}s (VM_BOOT_TIMEOUT)"
		elif ((qrc == 124 || qrc == 137)); then
			why="timed out after ${TMO}s before the guest script started"
		else
			why="the VM stopped before the guest script started (qemu exit $qrc)"
		fi
		warn "boot attempt $attempt failed: $why${diag:+; $diag}; retrying"
		tail -n 15 <<<"$clean" | sed 's/^/  | /' >&2
		continue
	fi
	break
done

rc_line=$(grep -aoE 'VM-TEST-EXIT=[0-9]+' <<<"$clean" | tail -n1 || true)
gstart=$(sed -nE 's/.*VM-GUEST-START uptime=([0-9.]+).*/\1/p' <<<"$clean" | tail -n1)
gend=$(sed -nE 's/.*VM-GUEST-END uptime=([0-9.]+).*/\1/p' <<<"$clean" | tail -n1)

if ((started)) && [[ -n $rc_line ]]; then
	rc=${rc_line#VM-TEST-EXIT=}
	timing="VM wall time ${wall}s"
	if [[ -n $gstart && -n $gend ]]; then
		timing+=$(awk -v s="$gstart" -v e="$gend" -v w="$wall" 'BEGIN {
			printf ", guest script started at guest uptime %.2fs, ran %.1fs, qemu start+boot+poweroff %.1fs",
				s, e - s, w - (e - s) }')
	fi
	if [[ $killed == poweroff ]]; then
		warn "the guest did not power off within ${GRACE}s after VM-TEST-EXIT; qemu was killed"
	elif ((qrc == 124 || qrc == 137)); then
		warn "the guest did not power off; qemu was killed by the ${TMO}s timeout"
	fi
	[[ -z $diag ]] || warn "$diag"
	log "guest exit code $rc ($timing)"
	exit "$rc"
fi

if ((quit)); then
	log "the VM was stopped from its console (Ctrl-A x) after ${wall}s"
	exit 0
fi
if [[ $killed == boot ]]; then
	log "error: the guest script did not start within ${BOOT_TMO}s (VM_BOOT_TIMEOUT), $attempt attempt(s)"
	why=124
elif ((qrc == 124 || qrc == 137)); then
	log "error: VM timed out after ${TMO}s (VM_TIMEOUT) without a VM-TEST-EXIT line"
	why=124
elif [[ -n $qemu_err ]]; then
	log "error: qemu did not start: ${qemu_err#*: }${diag:+; $diag}"
	why=125
elif [[ -n $diag ]]; then
	log "error: $diag (qemu exit $qrc, ${wall}s) before VM-TEST-EXIT"
	why=125
else
	log "error: VM stopped without a VM-TEST-EXIT line (qemu exit $qrc, ${wall}s): guest crash or qemu error"
	why=125
fi
log "last 60 console lines (full log: $LOG):"
tail -n 60 <<<"$clean" >&2
exit "$why"
