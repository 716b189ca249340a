#!/usr/bin/env bash
# kernel.sh - print (stdout, one line) the path of a cached directory holding a Debian
# kernel with sched_ext: vmlinuz, config, version, and (when virtio-net or another needed
# driver is a module) modules/*.ko plus modules.load.
#
# Usage: kernel.sh [--refresh | --list | --help] [VERSION]
#   (no args)   print the cached kernel dir; download the newest suitable kernel if none is cached
#   --refresh   update the package lists and make sure the selected kernel is the newest match
#   --list      update the package lists and print every kernel release of the suites, newest
#               first: suite, where its config comes from, and what is known of its sched_ext
#   VERSION     newest (default), oldest, a series or release prefix (6.19, 7.2.12), an ABI
#               (7.2.12+deb13) or a full release (7.2.12+deb13-cloud-amd64): the newest
#               matching kernel that has sched_ext (oldest: the oldest kernel that has it)
#
# Environment:
#   SCX_PILOT_CACHE            cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/scx_pilot)
#   SCX_PILOT_KERNEL_VERSION   VERSION when no argument is given
#   SCX_PILOT_KERNEL_FLAVOUR   Debian kernel flavour (default cloud-amd64)
#   SCX_PILOT_KERNEL_SUITE     Debian suites to search, space-separated (default
#                              "trixie-backports trixie"); the first one names the keyring
#   SCX_PILOT_DEBIAN_MIRROR    mirror URL (default http://deb.debian.org/debian)
#   SCX_PILOT_APT_KEYRING      OpenPGP keyring for Signed-By (default: see "Keyring" below)
#   SCX_PILOT_HOST_KEYRING     trusted host keyring (default /usr/share/keyrings/debian-archive-keyring.gpg)
#   SCX_PILOT_FORCE_KEYRING_BOOTSTRAP=1   always bootstrap the keyring (to test that path)
#
# Packages: a kernel comes either as one linux-image-<release> (vmlinuz, /boot/config-*,
# modules; 6.12 to 6.18 here) or split into linux-binary- (vmlinuz), linux-base- (config)
# and linux-modules-<release>. When the config is in the archive, CONFIG_SCHED_CLASS_EXT=y
# and the other needed options are checked before the big download. When it is gone (the
# archive keeps only linux-binary- of some releases), the kernel is booted once under qemu
# and kept only if /sys/kernel/sched_ext, BTF, bpffs and cgroup2 are there; its `config`
# then holds only the options seen at that boot (libbpf reads it for __kconfig externs:
# scx's headers read CONFIG_PREEMPT_RCU) and, without linux-modules-, the guest has no
# eth0 (lo only). Kernels found unusable are
# remembered in $SCX_PILOT_CACHE/kernel/.unusable/ and not downloaded again.
#
# Keyring: the suite is verified against the host's Debian archive keyring when it holds
# the suite's release key (true on Debian 12 with debian-archive-keyring 2023.3+deb12u2).
# Otherwise debian-archive-keyring is fetched from the base suite (e.g. trixie), which
# apt verifies with the host keyring, and cached in $SCX_PILOT_CACHE/apt/keyring/.
#
# Host apt state is never touched: the script uses its own sources file, lists, cache and
# an empty dpkg status file under $SCX_PILOT_CACHE/apt/.
set -euo pipefail
PROG=kernel.sh
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

mode='get'
SEL=${SCX_PILOT_KERNEL_VERSION:-}
while (($#)); do
	case $1 in
	--refresh) mode=refresh ;;
	--list) mode=list ;;
	-h | --help)
		usage
		exit 0
		;;
	-*) die "unknown argument: $1 (see --help)" ;;
	*) SEL=$1 ;;
	esac
	shift
done

FLAVOUR=${SCX_PILOT_KERNEL_FLAVOUR:-cloud-amd64}
SUITES=${SCX_PILOT_KERNEL_SUITE:-trixie-backports trixie}
MIRROR=${SCX_PILOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SEL=${SEL%-"$FLAVOUR"}
SEL=${SEL:-newest}
KCACHE=$VM_CACHE_ROOT/kernel
UNUSABLE=$KCACHE/.unusable
ALIAS=$KCACHE/.alias
APTROOT=$VM_CACHE_ROOT/apt
read -r FIRST_SUITE _ <<<"$SUITES"
CODENAME=${FIRST_SUITE%%-*} # trixie-backports -> trixie
DEFAULT_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# Config options that must be built in (=y).
REQUIRED_Y=(SCHED_CLASS_EXT BPF_SYSCALL DEBUG_INFO_BTF SERIAL_8250 SERIAL_8250_CONSOLE
	DEVTMPFS CGROUPS BLK_DEV_INITRD RD_GZIP INET)
# Config options that may be =y or =m (then the module is shipped in the cache): OPTION:module.
LOADABLE=(VIRTIO:virtio VIRTIO_PCI:virtio_pci VIRTIO_NET:virtio_net UNIX:unix)
# Reported for information only.
INFO=(BPF_JIT EXT_GROUP_SCHED FAIR_GROUP_SCHED DEBUG_FS FTRACE BPF_EVENTS HZ PREEMPT_DYNAMIC
	PREEMPT_LAZY PREEMPT NO_HZ_FULL SCHED_SMT SCHED_MC MODULE_SIG_FORCE)

for tool in apt-get apt-cache dpkg-deb; do
	command -v "$tool" >/dev/null || die "$tool not found (this script needs a Debian-like host)"
done

# cfg_val CONFIG_FILE OPTION: print y, m, a value, or "n" when unset.
cfg_val() {
	local v
	v=$(sed -n "s/^CONFIG_$2=//p" "$1" | head -n1)
	printf '%s\n' "${v:-n}"
}

# abi_matches ABI: ABI (e.g. 6.19.14+deb13) is selected by $SEL (6.19, 6.19.14, 6.19.14+deb13).
abi_matches() {
	case $SEL in
	newest | oldest) return 0 ;;
	esac
	[[ $1 == "$SEL" || $1 == "$SEL".* || $1 == "$SEL"+* ]]
}

cached_dir() {
	local d best=
	case $SEL in
	newest | oldest)
		[[ -f $ALIAS/$SEL ]] && d=$KCACHE/$(<"$ALIAS/$SEL") && [[ -f $d/.complete ]] && best=$d
		;;
	*)
		best=$(for d in "$KCACHE"/*-"$FLAVOUR"; do
			[[ -f $d/.complete ]] || continue
			abi=${d##*/}
			abi_matches "${abi%-"$FLAVOUR"}" && printf '%s\n' "$d"
		done | sort -V | tail -n1)
		;;
	esac
	[[ -n $best ]] && printf '%s\n' "$best"
}
# Fast path: no network when a complete download is cached.
if [[ $mode == get ]] && d=$(cached_dir); then
	printf '%s\n' "$d"
	exit 0
fi

mkdir -p "$KCACHE" "$APTROOT"
if command -v flock >/dev/null; then
	exec 9>"$KCACHE/.lock"
	if ! flock -n 9; then
		log "waiting for another kernel.sh (lock $KCACHE/.lock)"
		flock 9
	fi
	if [[ $mode == get ]] && d=$(cached_dir); then
		printf '%s\n' "$d"
		exit 0
	fi
fi

WORK=$(mktemp -d "$KCACHE/.work.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT

APT_OPTS=()
# setup_apt NAME SUITES KEYRING: private apt state in $APTROOT/NAME; sets APT_OPTS.
setup_apt() {
	local d=$APTROOT/$1
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/empty.d"
	: >"$d/status"
	cat >"$d/$1.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $2
Components: main
Architectures: amd64
Signed-By: $3
EOF
	APT_OPTS=(-q
		-o "Dir::Etc::sourcelist=$d/$1.sources"
		-o Dir::Etc::sourceparts=/dev/null
		-o "Dir::Etc::preferences=$d/empty.d/none"
		-o "Dir::Etc::preferencesparts=$d/empty.d"
		-o "Dir::State::Lists=$d/lists"
		-o "Dir::State::status=$d/status"
		-o "Dir::State::extended_states=$d/extended_states"
		-o "Dir::Cache=$d/cache"
		-o "Dir::Cache::pkgcache=$d/cache/pkgcache.bin" -o "Dir::Cache::srcpkgcache=$d/cache/srcpkgcache.bin"
		-o Acquire::Languages=none
		-o APT::Get::AllowUnauthenticated=false)
	# As root, apt would drop to user _apt, which cannot write into $HOME/.cache.
	if ((EUID == 0)); then APT_OPTS+=(-o APT::Sandbox::User=root); fi
}

apt_update() {
	local out
	if ! out=$(apt-get "${APT_OPTS[@]}" update 2>&1); then
		printf '%s\n' "$out" >&2
		return 1
	fi
	# apt-get update exits 0 on some fetch failures; refuse warnings about signatures.
	if grep -qE '^(W|E): .*(GPG|signature|not signed|NO_PUBKEY|Failed to fetch)' <<<"$out"; then
		printf '%s\n' "$out" >&2
		return 1
	fi
}

# fetch_extract PKG DIR: apt-get download PKG and extract it into DIR.
fetch_extract() {
	local dl=$WORK/dl.$1
	mkdir -p "$dl" "$2"
	(cd "$dl" && apt-get "${APT_OPTS[@]}" download "$1" >&2) || die "apt-get download $1 failed"
	local deb
	for deb in "$dl"/*.deb; do
		[[ -f $deb ]] || die "apt-get download $1 produced no .deb"
		dpkg-deb -x "$deb" "$2"
	done
	rm -rf -- "$dl"
}

keyring_has_codename() { # KEYRING CODENAME: binary OpenPGP user IDs are plain text
	grep -qaE "Debian Archive Automatic Signing Key \([0-9]+/$2\)" "$1"
}

# bootstrap_keyring: fetch debian-archive-keyring from the base suite ($CODENAME) with
# apt verifying it against the host keyring, and print the path of its keyring. Debian
# signs each Release file with the current and the previous release's archive keys, so a
# host keyring one release behind still verifies $CODENAME.
bootstrap_keyring() {
	local boot=$APTROOT/keyring/debian-archive-keyring.gpg x=$WORK/keyring k
	log "fetching debian-archive-keyring from $CODENAME (verified with $HOST_KEYRING)"
	setup_apt "keyring-$CODENAME" "$CODENAME" "$HOST_KEYRING"
	apt_update || die "apt-get update for $CODENAME with $HOST_KEYRING failed; cannot bootstrap a keyring" \
		"(install a newer debian-archive-keyring, or set SCX_PILOT_APT_KEYRING)"
	fetch_extract debian-archive-keyring "$x"
	k=$x/usr/share/keyrings/debian-archive-keyring.gpg
	[[ -f $k ]] || die "debian-archive-keyring from $CODENAME has no $k"
	keyring_has_codename "$k" "$CODENAME" || warn "debian-archive-keyring from $CODENAME has no $CODENAME key"
	mkdir -p "${boot%/*}"
	cp -- "$k" "$boot.tmp"
	mv -f -- "$boot.tmp" "$boot"
	log "bootstrapped keyring $boot ($(apt-cache "${APT_OPTS[@]}" policy debian-archive-keyring |
		sed -nE 's/^  Candidate: (.*)$/\1/p'))"
	printf '%s\n' "$boot"
}

# Keyring for Signed-By. The host keyring is used when it has the $CODENAME archive key
# (Debian 12's debian-archive-keyring 2023.3+deb12u2 has the 13/trixie keys); otherwise a
# keyring bootstrapped earlier; otherwise the host keyring is tried anyway and, when apt
# rejects the signatures, a keyring is bootstrapped (see bootstrap_keyring).
HOST_KEYRING=${SCX_PILOT_HOST_KEYRING:-$DEFAULT_KEYRING}
BOOT_KEYRING=$APTROOT/keyring/debian-archive-keyring.gpg
may_bootstrap=0
if [[ -n ${SCX_PILOT_APT_KEYRING:-} ]]; then
	KEYRING=$SCX_PILOT_APT_KEYRING
	[[ -r $KEYRING ]] || die "SCX_PILOT_APT_KEYRING=$KEYRING is not readable"
elif [[ ${SCX_PILOT_FORCE_KEYRING_BOOTSTRAP:-0} == 1 ]]; then # for testing the bootstrap
	KEYRING=$(bootstrap_keyring)
else
	[[ -r $HOST_KEYRING ]] || die "$HOST_KEYRING missing: apt-get install debian-archive-keyring"
	if keyring_has_codename "$HOST_KEYRING" "$CODENAME"; then
		KEYRING=$HOST_KEYRING
	elif [[ -r $BOOT_KEYRING ]] && keyring_has_codename "$BOOT_KEYRING" "$CODENAME"; then
		KEYRING=$BOOT_KEYRING
	else
		log "$HOST_KEYRING has no $CODENAME archive key; trying it anyway (Release files are also signed with the previous release's key)"
		KEYRING=$HOST_KEYRING may_bootstrap=1
	fi
fi
setup_apt "${SUITES// /+}" "$SUITES" "$KEYRING"
log "apt-get update ($SUITES, $MIRROR, Signed-By $KEYRING)"
if ! apt_update; then
	((may_bootstrap)) || die "apt-get update for $SUITES failed"
	KEYRING=$(bootstrap_keyring)
	setup_apt "${SUITES// /+}" "$SUITES" "$KEYRING"
	log "apt-get update ($SUITES, $MIRROR, Signed-By $KEYRING)"
	apt_update || die "apt-get update for $SUITES failed with the bootstrapped keyring"
fi

# The linux-* packages of the suites (one apt-cache call: each call reads all package lists).
declare -A AVAIL=() SUITE_OF=()
while read -r p; do AVAIL[$p]=1; done < <(apt-cache "${APT_OPTS[@]}" pkgnames linux-)
has_pkg() { [[ -n ${AVAIL[$1]:-} ]]; } # NAME: the suites have a package NAME
# Kernel ABIs (e.g. 7.3.4+deb13) with a linux-binary- or a full linux-image-<abi>-<flavour>.
mapfile -t ABIS < <(printf '%s\n' "${!AVAIL[@]}" |
	sed -nE "s/^linux-(binary|image)-([0-9][^-[:space:]]*)-${FLAVOUR}\$/\\2/p" | sort -uVr)
((${#ABIS[@]})) || die "no linux-binary-*-$FLAVOUR or linux-image-*-$FLAVOUR packages in $SUITES"

# config_source REL: the package holding REL's config, or "none".
config_source() {
	if has_pkg "linux-binary-$1"; then
		if has_pkg "linux-base-$1"; then echo "linux-base-$1"; else echo none; fi
	else
		echo "linux-image-$1"
	fi
}

# pkg_suite PKG: the suite PKG comes from (after load_suites for it).
pkg_suite() { printf '%s\n' "${SUITE_OF[$1]:-?}"; }
load_suites() { # PKG...: one apt-cache madison call for all
	local p s
	while read -r p s; do SUITE_OF[$p]=$s; done < <(apt-cache "${APT_OPTS[@]}" madison "$@" 2>/dev/null |
		awk -F'|' '{ gsub(/ /, "", $1); split($3, a, " "); sub(/\/.*/, "", a[2]); print $1, a[2] }')
}

if [[ $mode == list ]]; then
	mapfile -t pkgs < <(for abi in "${ABIS[@]}"; do
		if has_pkg "linux-binary-$abi-$FLAVOUR"; then echo "linux-binary-$abi-$FLAVOUR"; else echo "linux-image-$abi-$FLAVOUR"; fi
	done)
	load_suites "${pkgs[@]}"
	printf '%-28s %-17s %-44s %s\n' RELEASE SUITE CONFIG SCHED_EXT
	for abi in "${ABIS[@]}"; do
		rel=$abi-$FLAVOUR
		src=$(config_source "$rel")
		if has_pkg "linux-binary-$rel"; then pkg=linux-binary-$rel; else pkg=linux-image-$rel; fi
		if [[ -f $KCACHE/$rel/.complete ]]; then
			known='yes (cached)'
			[[ -f $KCACHE/$rel/runtime-check ]] && known='yes (checked at boot; cached)'
		elif [[ -f $UNUSABLE/$rel ]]; then
			known="no: $(<"$UNUSABLE/$rel")"
		elif [[ $src == none ]]; then
			known='unchecked (config gone from the archive: checked by booting it)'
		else
			known=unchecked
		fi
		printf '%-28s %-17s %-44s %s\n' "$rel" "$(pkg_suite "$pkg")" "$src" "$known"
	done
	exit 0
fi

# Candidates in the order they are tried.
CANDS=()
for abi in "${ABIS[@]}"; do abi_matches "$abi" && CANDS+=("$abi-$FLAVOUR"); done
((${#CANDS[@]})) || die "no kernel matches '$SEL' in $SUITES (available: ${ABIS[*]})"
if [[ $SEL == oldest ]]; then mapfile -t CANDS < <(printf '%s\n' "${CANDS[@]}" | sort -V); fi

# unusable REL REASON: remember that REL cannot be used (the packages of a release never change).
unusable() {
	mkdir -p "$UNUSABLE"
	printf '%s\n' "$2" >"$UNUSABLE/$1"
	log "$1: unusable: $2"
}

# runtime_check DIR: boot the kernel in DIR once and check sched_ext there. Returns 0 when
# usable, 1 when the kernel lacks something (DIR/runtime-check says what); dies when the VM
# did not give an answer (that is not the kernel's fault and is not remembered).
runtime_check() {
	local dir=$1 guest=$WORK/check-guest.sh initrd=$WORK/check.cpio.gz rc=0
	cat >"$guest" <<'GUEST'
#!/bin/sh
# Written by kernel.sh: what a kernel without a packaged config offers scx_pilot.
yes_no() { if "$@"; then echo yes; else echo no; fi; }
echo "KCHECK release=$(uname -r)"
echo "KCHECK sched_ext=$(cat /sys/kernel/sched_ext/state 2>/dev/null || echo missing)"
echo "KCHECK btf=$(yes_no test -e /sys/kernel/btf/vmlinux)"
echo "KCHECK bpffs=$(yes_no grep -q ' /sys/fs/bpf bpf ' /proc/mounts)"
echo "KCHECK cgroup2=$(yes_no test -f /sys/fs/cgroup/cgroup.controllers)"
echo "KCHECK eth0=$(yes_no ip link show eth0)"
# rcu_bootup_announce() names the RCU flavour: CONFIG_PREEMPT_RCU, read by scx's is_migration_disabled().
if dmesg | grep -q 'Preemptible hierarchical RCU'; then echo "KCHECK preempt_rcu=yes"; else echo "KCHECK preempt_rcu=no"; fi
[ "$(cat /sys/kernel/sched_ext/state 2>/dev/null)" = disabled ] && [ -e /sys/kernel/btf/vmlinux ] &&
	grep -q ' /sys/fs/bpf bpf ' /proc/mounts && [ -f /sys/fs/cgroup/cgroup.controllers ] || exit 3
GUEST
	log "$(<"$dir/version"): no config in the archive; booting it once to check sched_ext"
	KERNEL_DIR=$dir VM_GUEST_TOOLS='' "$VM_SCRIPT_DIR/initramfs.sh" "$initrd" "$guest" >&2
	KERNEL_DIR=$dir VM_LOG=$WORK/check.log VM_TIMEOUT=${VM_TIMEOUT:-300} VM_APPEND='' \
		"$VM_SCRIPT_DIR/boot.sh" "$initrd" >/dev/null || rc=$?
	grep -a '^KCHECK ' "$WORK/check.log" | tr -d '\r' | sed 's/^KCHECK //' >"$dir/runtime-check" || true
	log "$(<"$dir/version"): at boot: $(tr '\n' ' ' <"$dir/runtime-check")"
	case $rc in
	0) return 0 ;;
	3) return 1 ;;
	*) die "$(<"$dir/version"): the check VM gave no answer (boot.sh exit $rc); see $WORK/check.log" ;;
	esac
}

# ship_modules MODDIR DEST MODULE...: copy the modules (decompressed) with their
# dependencies into DEST/modules and write DEST/modules.load in load order.
ship_modules() {
	local moddir=$1 dest=$2 f n m
	shift 2
	declare -gA MODPATH=() SEEN=()
	ORDER=()
	while IFS= read -r -d '' f; do
		n=${f##*/}
		n=${n%%.ko*}
		MODPATH[${n//-/_}]=$f
	done < <(find "$moddir/kernel" -name '*.ko*' -print0)
	mkdir -p "$dest/modules"
	for m; do add_module "$m" "$dest"; done
	printf '%s\n' "${ORDER[@]}" >"$dest/modules.load"
}
add_module() { # NAME DEST, depth-first: dependencies before the module
	local name=${1//-/_} dest=$2 f dep deps
	[[ -n ${SEEN[$name]:-} ]] && return 0
	SEEN[$name]=1
	f=${MODPATH[$name]:-}
	[[ -n $f ]] || die "module $name not found in the modules package"
	case $f in
	*.ko.xz) xz -dc -- "$f" >"$dest/modules/$name.ko" ;;
	*.ko.zst) zstd -qdc -- "$f" >"$dest/modules/$name.ko" ;;
	*.ko.gz) gzip -dc -- "$f" >"$dest/modules/$name.ko" ;;
	*.ko) cp -- "$f" "$dest/modules/$name.ko" ;;
	*) die "unknown module file type: $f" ;;
	esac
	deps=$(tr '\0' '\n' <"$dest/modules/$name.ko" | sed -n 's/^depends=//p' | head -n1)
	local IFS=,
	for dep in $deps; do
		[[ -n $dep ]] && add_module "$dep" "$dest"
	done
	ORDER+=("$name")
}

# first_file CANDIDATE...: print the first that exists.
first_file() {
	local c
	for c; do [[ -f $c ]] && printf '%s\n' "$c" && return 0; done
	return 1
}

# prepare REL: make $KCACHE/REL complete. Returns 1 (and remembers why) when REL lacks sched_ext
# or another needed option.
prepare() {
	local rel=$1 x=$WORK/$1 src cfg='' vmlinuz moddir='' o e v dest=$KCACHE/$1
	local missing=() want_mods=() as_modules=()
	[[ -f $dest/.complete ]] && return 0
	if [[ -f $UNUSABLE/$rel ]]; then
		log "$rel: skipped, found unusable before: $(<"$UNUSABLE/$rel")"
		return 1
	fi
	src=$(config_source "$rel")
	case $src in
	linux-image-*)
		log "$rel: downloading $src (vmlinuz, config and modules in one package)"
		fetch_extract "$src" "$x"
		cfg=$(first_file "$x/boot/config-$rel") || die "$src holds no /boot/config-$rel"
		;;
	linux-base-*)
		fetch_extract "$src" "$x"
		cfg=$(first_file "$x/usr/lib/modules/$rel/config" "$x/lib/modules/$rel/config" "$x/boot/config-$rel") ||
			die "$src holds no config file"
		;;
	esac
	if [[ -n $cfg ]]; then
		if [[ $(cfg_val "$cfg" SCHED_CLASS_EXT) != y ]]; then
			unusable "$rel" "CONFIG_SCHED_CLASS_EXT=$(cfg_val "$cfg" SCHED_CLASS_EXT) in $src"
			return 1
		fi
		for o in "${REQUIRED_Y[@]}"; do
			[[ $(cfg_val "$cfg" "$o") == y ]] || missing+=("CONFIG_$o=$(cfg_val "$cfg" "$o")")
		done
		for e in "${LOADABLE[@]}"; do
			o=${e%%:*} v=$(cfg_val "$cfg" "${e%%:*}")
			case $v in
			y) ;;
			m) as_modules+=("CONFIG_$o=m") want_mods+=("${e#*:}") ;;
			*) missing+=("CONFIG_$o=$v") ;;
			esac
		done
		if ((${#missing[@]})); then
			unusable "$rel" "needed options not built in (or as modules): ${missing[*]}"
			return 1
		fi
	fi

	if [[ $src != linux-image-* ]]; then
		log "$rel: downloading linux-binary-$rel"
		fetch_extract "linux-binary-$rel" "$x"
	fi
	vmlinuz=$(first_file "$x/usr/lib/modules/$rel/vmlinuz" "$x/lib/modules/$rel/vmlinuz" "$x/boot/vmlinuz-$rel") ||
		die "no vmlinuz for $rel in its packages"

	[[ -e $dest ]] && log "removing incomplete $dest" && rm -rf -- "$dest"
	mkdir -p "$dest"
	cp -- "$vmlinuz" "$dest/vmlinuz"
	printf '%s\n' "$rel" >"$dest/version"
	apt-cache "${APT_OPTS[@]}" policy "${src/#none/linux-binary-$rel}" |
		sed -nE 's/^  Candidate: (.*)$/\1/p' >"$dest/package-version"
	if [[ -n $cfg ]]; then
		cp -- "$cfg" "$dest/config"
		printf '%s\n' "$src" >"$dest/config-source"
	else
		printf '# %s: no config package in the archive; sched_ext is checked at boot (runtime-check).\n' \
			"$rel" >"$dest/config"
		printf '%s\n' "none: checked at boot" >"$dest/config-source"
		# Unknown which drivers are modules: ship those the modules package has, if it exists.
		if has_pkg "linux-modules-$rel"; then
			for e in "${LOADABLE[@]}"; do want_mods+=("${e#*:}"); done
		else
			log "$rel: no linux-modules-$rel in the archive either: the guest will have no eth0 (lo only)"
		fi
	fi

	# Needed drivers that are modules: ship them (decompressed) with their dependencies.
	if ((${#want_mods[@]})); then
		if [[ $src != linux-image-* ]]; then
			log "$rel: modules needed for ${as_modules[*]:-the guest network}: downloading linux-modules-$rel"
			fetch_extract "linux-modules-$rel" "$x"
		fi
		moddir=$(for c in "$x/usr/lib/modules/$rel" "$x/lib/modules/$rel"; do
			[[ -d $c/kernel ]] && printf '%s\n' "$c" && break
		done) || true
		[[ -n $moddir ]] || die "no modules/$rel/kernel directory in the packages of $rel"
		if [[ -z $cfg ]]; then # keep only the drivers that are modules in this kernel
			local have=()
			for m in "${want_mods[@]}"; do
				[[ -n $(find "$moddir/kernel" -name "$m.ko*" -print -quit) ]] && have+=("$m")
			done
			want_mods=("${have[@]}")
		fi
		if ((${#want_mods[@]})); then
			ship_modules "$moddir" "$dest" "${want_mods[@]}"
			log "$rel: shipped modules (load order): ${ORDER[*]}"
		fi
	fi

	if [[ -z $cfg ]]; then
		if ! runtime_check "$dest"; then
			unusable "$rel" "at boot: $(tr '\n' ' ' <"$dest/runtime-check")"
			rm -rf -- "$dest"
			return 1
		fi
		# The config libbpf reads in the guest: only what the boot showed. A CONFIG_ value
		# missing here reads as unset for a __weak __kconfig extern, and fails a strong one.
		{
			printf '# %s: no config package in the archive; these options were seen at boot (runtime-check).\n' "$rel"
			printf 'CONFIG_%s=y\n' SCHED_CLASS_EXT DEBUG_INFO_BTF BPF_SYSCALL CGROUPS
			if grep -qx 'preempt_rcu=yes' "$dest/runtime-check"; then
				echo CONFIG_PREEMPT_RCU=y
			else
				echo '# CONFIG_PREEMPT_RCU is not set'
			fi
		} >"$dest/config"
	fi

	# Human-readable report of what was checked.
	load_suites "${src/#none/linux-binary-$rel}"
	{
		printf 'kernel %s (package %s) from %s %s\n' "$rel" "$(cat "$dest/package-version")" "$MIRROR" \
			"$(pkg_suite "${src/#none/linux-binary-$rel}")"
		printf 'config    %s\n' "$(<"$dest/config-source")"
		if [[ -n $cfg ]]; then
			for o in "${REQUIRED_Y[@]}"; do printf 'required  CONFIG_%s=%s\n' "$o" "$(cfg_val "$cfg" "$o")"; done
			for e in "${LOADABLE[@]}"; do printf 'loadable  CONFIG_%s=%s\n' "${e%%:*}" "$(cfg_val "$cfg" "${e%%:*}")"; done
			for o in "${INFO[@]}"; do printf 'info      CONFIG_%s=%s\n' "$o" "$(cfg_val "$cfg" "$o")"; done
		else
			sed 's/^/at boot   /' "$dest/runtime-check"
		fi
		if [[ -f $dest/modules.load ]]; then printf 'modules   %s\n' "$(tr '\n' ' ' <"$dest/modules.load")"; fi
	} >"$dest/config-report"
	if [[ -n $cfg ]]; then
		log "$rel: config OK (sched_ext, BPF, BTF, ttyS0 console, devtmpfs, cgroups built in);" \
			"as modules: ${as_modules[*]:-none}"
	fi
	touch "$dest/.complete"
	rm -rf -- "$x"
}

REL=''
for rel in "${CANDS[@]}"; do
	if prepare "$rel"; then
		REL=$rel
		break
	fi
done
[[ -n $REL ]] || die "no kernel matching '$SEL' in $SUITES has sched_ext (tried: ${CANDS[*]})"
case $SEL in
newest | oldest)
	mkdir -p "$ALIAS"
	printf '%s\n' "$REL" >"$ALIAS/$SEL.tmp"
	mv -f -- "$ALIAS/$SEL.tmp" "$ALIAS/$SEL"
	;;
esac
log "$REL: $(head -n1 "$KCACHE/$REL/config-report")"
printf '%s\n' "$KCACHE/$REL"
