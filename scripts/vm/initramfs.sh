#!/usr/bin/env bash
# initramfs.sh - build a gzip'd newc initramfs that boots busybox, sets up the guest and
# runs one test script, then powers the VM off.
#
# Usage: initramfs.sh OUT.cpio.gz GUEST_SCRIPT [FILE...]
#   GUEST_SCRIPT  copied to /guest-test.sh and run as `/bin/sh /guest-test.sh "$@"`, where
#                 "$@" are the kernel command-line words after `--` (see boot.sh VM_APPEND).
#                 It may source /guest-lib.sh (scripts/vm/guest-lib.sh, in every image).
#   FILE          a host file or directory to include at the same path in the guest, or
#                 SRC:DEST to put it at DEST. Dynamic ELF files (also inside directories)
#                 get their `ldd` libraries and the dynamic loader added.
#
# Environment:
#   KERNEL_DIR     kernel directory from kernel.sh (default: run kernel.sh). Its config goes to
#                  /boot/config-$(uname -r) in the guest; its modules/*.ko are insmod'ed in
#                  modules.load order.
#   VM_GUEST_TOOLS host tools always included when present (default:
#                  "stress-ng cyclictest hackbench chrt taskset nice bpftool"; "" for none)
#   BUSYBOX        busybox binary (default: /bin/busybox, from busybox-static)
#
# The guest /init mounts proc, sysfs, devtmpfs, devpts, cgroup2 (/sys/fs/cgroup), debugfs,
# tracefs and bpffs (/sys/fs/bpf), brings up lo and eth0 (10.0.2.15/24 via 10.0.2.2, qemu
# user networking), prints "VM-GUEST-START uptime=<s>", runs the guest script, prints
# "VM-TEST-EXIT=<rc>" on the console and powers off. Kernel command-line words of the form
# NAME=value (no dot in NAME) become environment variables of the guest script.
set -euo pipefail
PROG=initramfs.sh
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

case ${1:-} in -h | --help)
	usage
	exit 0
	;;
esac
(($# >= 2)) || {
	usage >&2
	die "need OUT.cpio.gz and GUEST_SCRIPT"
}
OUT=$1 GUEST=$2
shift 2
[[ -f $GUEST && -r $GUEST ]] || die "guest script $GUEST is not a readable file"
for tool in cpio gzip ldd find; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

KDIR=$(resolve_kernel_dir)
KREL=$(<"$KDIR/version")
BUSYBOX=${BUSYBOX:-/bin/busybox}
[[ -x $BUSYBOX ]] || die "$BUSYBOX not found (apt-get install busybox-static)"

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/scx_pilot-initramfs.XXXXXX")
trap 'rm -rf -- "$STAGE"' EXIT

# Merged-/usr layout, like the host: /bin /sbin /lib /lib64 are links into /usr.
mkdir -p "$STAGE"/usr/{bin,sbin,lib,lib64} "$STAGE"/{dev,proc,sys,run,tmp,root,boot,etc,mnt,var/tmp}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$STAGE/$d"; done
chmod 1777 "$STAGE/tmp" "$STAGE/var/tmp"

declare -A LIBS=()
# add_libs FILE: remember the shared libraries (and loader) FILE needs.
add_libs() {
	local out line lib
	# ldd fails for static or non-ELF files: nothing to add then.
	out=$(LC_ALL=C ldd -- "$1" 2>/dev/null) || return 0
	while IFS= read -r line; do
		case $line in
		*"=> not found"*) die "$1: shared library not found on the host: ${line%% =>*}" ;;
		*"=> /"*)
			lib=${line#*=> }
			lib=${lib%% (*}
			;;
		[[:space:]]/*)
			lib=${line#"${line%%[![:space:]]*}"}
			lib=${lib%% (*}
			;;
		*) continue ;;
		esac
		LIBS[$lib]=1
	done <<<"$out"
}

# install_path SRC DEST: copy SRC (file or directory, symlinks dereferenced) to DEST in the guest.
install_path() {
	local src=$1 dest=$2 f
	[[ -e $src ]] || die "$src does not exist"
	[[ $dest == /* ]] || die "guest path $dest must be absolute"
	mkdir -p "$STAGE$(dirname -- "$dest")"
	if [[ -d $src ]]; then
		rm -rf -- "${STAGE:?}$dest"
		cp -rL -- "$src" "$STAGE$dest"
		while IFS= read -r -d '' f; do
			add_libs "$f"
		done < <(find "$src" -type f -perm -u+x -print0)
	else
		cp -L --remove-destination -- "$src" "$STAGE$dest"
		add_libs "$src"
	fi
}

# busybox and its applets (symlinks created here, so no `busybox --install` at boot).
install_path "$BUSYBOX" /usr/bin/busybox
chmod 755 "$STAGE/usr/bin/busybox"
while IFS= read -r applet; do
	[[ -n $applet && ! -e $STAGE/$applet && ! -L $STAGE/$applet ]] || continue
	mkdir -p "$STAGE/$(dirname -- "$applet")"
	ln -s /usr/bin/busybox "$STAGE/$applet"
done < <("$BUSYBOX" --list-full)
[[ -L $STAGE/usr/bin/sh || -L $STAGE/bin/sh ]] || die "$BUSYBOX --list-full did not provide sh"

# Default tools (real binaries replace busybox applets of the same name).
read -r -a tools <<<"${VM_GUEST_TOOLS-stress-ng cyclictest hackbench chrt taskset nice bpftool}"
for t in "${tools[@]}"; do
	if p=$(command -v -- "$t" 2>/dev/null) && [[ $p == /* ]]; then
		install_path "$p" "$p"
	fi
done

# User-requested files.
for arg in "$@"; do
	src=${arg%%:*} dest=${arg#*:}
	[[ $arg == *:* ]] || dest=$src
	[[ $src == /* ]] || src=$PWD/$src
	[[ $dest == /* ]] || dest=/$dest
	install_path "$src" "$dest"
done

# Shared libraries and the loader, at the paths ldd reported.
for lib in "${!LIBS[@]}"; do
	[[ -e $STAGE$lib ]] && continue
	mkdir -p "$STAGE$(dirname -- "$lib")"
	cp -L -- "$lib" "$STAGE$lib"
done

# Kernel config (libbpf reads /boot/config-$(uname -r) for __kconfig externs) and modules.
mkdir -p "$STAGE/etc/vm"
cp -- "$KDIR/config" "$STAGE/etc/vm/kernel-config"
cp -- "$KDIR/config" "$STAGE/boot/config-$KREL"
printf '%s\n' "$KREL" >"$STAGE/etc/vm/kernel-release"
if [[ -f $KDIR/modules.load ]]; then
	mkdir -p "$STAGE/lib/modules/$KREL"
	while IFS= read -r m; do
		[[ -n $m ]] || continue
		[[ -f $KDIR/modules/$m.ko ]] || die "$KDIR/modules/$m.ko missing (re-run kernel.sh after removing $KDIR)"
		cp -- "$KDIR/modules/$m.ko" "$STAGE/lib/modules/$KREL/"
	done <"$KDIR/modules.load"
	cp -- "$KDIR/modules.load" "$STAGE/lib/modules/$KREL/modules.load"
fi

# Minimal /etc.
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$STAGE/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$STAGE/etc/group"
printf '127.0.0.1 localhost\n10.0.2.15 vm\n10.0.2.2 host\n' >"$STAGE/etc/hosts"
printf 'vm\n' >"$STAGE/etc/hostname"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$STAGE/etc/nsswitch.conf"

install -m 0755 -- "$GUEST" "$STAGE/guest-test.sh"
install -m 0644 -- "$(dirname -- "${BASH_SOURCE[0]}")/guest-lib.sh" "$STAGE/guest-lib.sh"

cat >"$STAGE/init" <<'INIT'
#!/bin/sh
# /init generated by scripts/vm/initramfs.sh. Runs /guest-test.sh, then powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
say() { echo "init: $*"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || say "devtmpfs mount failed"
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup || say "cgroup2 mount failed"
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf || say "bpffs mount failed"
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd

rel=$(uname -r)
[ -e "/boot/config-$rel" ] || cp /etc/vm/kernel-config "/boot/config-$rel"
[ "$rel" = "$(cat /etc/vm/kernel-release)" ] ||
	say "warning: running kernel $rel, initramfs built for $(cat /etc/vm/kernel-release)"
if [ -f "/lib/modules/$rel/modules.load" ]; then
	while read -r m; do
		[ -n "$m" ] && { insmod "/lib/modules/$rel/$m.ko" || say "insmod $m failed"; }
	done <"/lib/modules/$rel/modules.load"
fi

hostname vm
ip link set lo up
if ip link show eth0 >/dev/null 2>&1; then
	ip link set eth0 up
	ip addr add 10.0.2.15/24 dev eth0
	ip route add default via 10.0.2.2
	echo "nameserver 10.0.2.3" >/etc/resolv.conf
else
	say "no eth0"
fi

cd /
echo "VM-GUEST-START uptime=$(cut -d' ' -f1 /proc/uptime)"
/bin/sh /guest-test.sh "$@"
rc=$?
echo "VM-GUEST-END uptime=$(cut -d' ' -f1 /proc/uptime)"
echo
echo "VM-TEST-EXIT=$rc"
# Let the UART drain before the power goes: busybox stty applies settings with
# tcsetattr(TCSADRAIN), which waits until the serial port has sent its buffer.
timeout 5 stty -F /dev/console -echoprt 2>/dev/null || sleep 1
poweroff -f
# Not reached unless poweroff failed; exiting init panics, and qemu -no-reboot stops.
exit "$rc"
INIT
chmod 755 "$STAGE/init"

OUT_DIR=$(dirname -- "$OUT")
mkdir -p "$OUT_DIR"
tmp_out=$(mktemp "$OUT_DIR/.initramfs.XXXXXX")
if ! (cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$tmp_out"; then
	rm -f -- "$tmp_out"
	die "cpio/gzip failed"
fi
chmod 644 "$tmp_out"
mv -f -- "$tmp_out" "$OUT"
log "wrote $OUT ($(du -h -- "$OUT" | cut -f1), kernel $KREL, ${#LIBS[@]} shared libraries)"
