#!/usr/bin/env bash
# kernel.sh - print (stdout, one line) the path of a cached directory holding a Debian
# kernel with CONFIG_SCHED_CLASS_EXT=y: vmlinuz, config, version, and (when virtio-net
# or another needed driver is a module) modules/*.ko plus modules.load.
#
# Usage: kernel.sh [--refresh | --list | --help]
#   (no args)   print the cached kernel dir; download the newest suitable kernel if none is cached
#   --refresh   update the package lists and make sure the newest suitable kernel is cached
#   --list      update the package lists and print the usable kernel releases, newest first
#
# Environment:
#   SCX_PILOT_CACHE            cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/scx_pilot)
#   SCX_PILOT_KERNEL_VERSION   pin a kernel ABI, e.g. 7.2.12+deb13 (or 7.2.12+deb13-cloud-amd64)
#   SCX_PILOT_KERNEL_FLAVOUR   Debian kernel flavour (default cloud-amd64)
#   SCX_PILOT_KERNEL_SUITE     Debian suite to search (default trixie-backports)
#   SCX_PILOT_DEBIAN_MIRROR    mirror URL (default http://deb.debian.org/debian)
#   SCX_PILOT_APT_KEYRING      OpenPGP keyring for Signed-By (default: see "Keyring" below)
#   SCX_PILOT_HOST_KEYRING     trusted host keyring (default /usr/share/keyrings/debian-archive-keyring.gpg)
#   SCX_PILOT_FORCE_KEYRING_BOOTSTRAP=1   always bootstrap the keyring (to test that path)
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
while (($#)); do
	case $1 in
	--refresh) mode=refresh ;;
	--list) mode=list ;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
	shift
done

FLAVOUR=${SCX_PILOT_KERNEL_FLAVOUR:-cloud-amd64}
SUITE=${SCX_PILOT_KERNEL_SUITE:-trixie-backports}
MIRROR=${SCX_PILOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PIN=${SCX_PILOT_KERNEL_VERSION:-}
PIN=${PIN%-"$FLAVOUR"}
KCACHE=$VM_CACHE_ROOT/kernel
APTROOT=$VM_CACHE_ROOT/apt
CODENAME=${SUITE%%-*} # trixie-backports -> trixie
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

cached_dir() {
	local d best=
	if [[ -n $PIN ]]; then
		d=$KCACHE/$PIN-$FLAVOUR
		[[ -f $d/.complete ]] && best=$d
	else
		best=$(for d in "$KCACHE"/*-"$FLAVOUR"; do
			[[ -f $d/.complete ]] && printf '%s\n' "$d"
		done | sort -V | tail -n1)
	fi
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
# setup_apt NAME SUITE KEYRING: private apt state in $APTROOT/NAME; sets APT_OPTS.
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
		-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
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

# has_pkg NAME: the private apt config has an installable candidate for NAME.
has_pkg() {
	local out
	out=$(apt-cache "${APT_OPTS[@]}" policy "$1" 2>/dev/null) || return 1
	grep -qE '^  Candidate: [^(]' <<<"$out"
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
setup_apt "$SUITE" "$SUITE" "$KEYRING"
log "apt-get update ($SUITE, $MIRROR, Signed-By $KEYRING)"
if ! apt_update; then
	((may_bootstrap)) || die "apt-get update for $SUITE failed"
	KEYRING=$(bootstrap_keyring)
	setup_apt "$SUITE" "$SUITE" "$KEYRING"
	log "apt-get update ($SUITE, $MIRROR, Signed-By $KEYRING)"
	apt_update || die "apt-get update for $SUITE failed with the bootstrapped keyring"
fi

# Kernel ABIs (e.g. 7.3.4+deb13) with a signed linux-binary-<abi>-<flavour>, newest first.
mapfile -t ABIS < <(apt-cache "${APT_OPTS[@]}" pkgnames linux-binary- |
	sed -nE "s/^linux-binary-([0-9][^-[:space:]]*)-${FLAVOUR}\$/\\1/p" | sort -Vr)
((${#ABIS[@]})) || die "no linux-binary-*-$FLAVOUR packages in $SUITE"

if [[ $mode == list ]]; then
	for abi in "${ABIS[@]}"; do
		if has_pkg "linux-base-$abi-$FLAVOUR"; then
			printf '%s\n' "$abi-$FLAVOUR"
		else
			log "$abi-$FLAVOUR: no linux-base package (config) in the suite; unusable"
		fi
	done
	exit 0
fi

if [[ -n $PIN ]]; then
	[[ " ${ABIS[*]} " == *" $PIN "* ]] ||
		die "linux-binary-$PIN-$FLAVOUR is not in $SUITE (available: ${ABIS[*]})"
	ABIS=("$PIN")
fi

# Find the newest ABI whose config (in linux-base-<rel>) has CONFIG_SCHED_CLASS_EXT=y.
REL='' CONFIG=''
for abi in "${ABIS[@]}"; do
	rel=$abi-$FLAVOUR
	if [[ -f $KCACHE/$rel/.complete ]]; then
		REL=$rel
		break
	fi
	if ! has_pkg "linux-base-$rel"; then
		log "$rel: no linux-base-$rel (the config) in $SUITE; skipping"
		continue
	fi
	x=$WORK/base-$rel
	fetch_extract "linux-base-$rel" "$x"
	cfg=
	for c in "$x/usr/lib/modules/$rel/config" "$x/lib/modules/$rel/config" "$x/boot/config-$rel"; do
		[[ -f $c ]] && cfg=$c && break
	done
	if [[ -z $cfg ]]; then
		log "$rel: linux-base-$rel holds no config file; skipping"
		continue
	fi
	if [[ $(cfg_val "$cfg" SCHED_CLASS_EXT) != y ]]; then
		log "$rel: CONFIG_SCHED_CLASS_EXT is not y; trying an older kernel"
		continue
	fi
	REL=$rel CONFIG=$cfg
	break
done
[[ -n $REL ]] || die "no kernel in $SUITE (${ABIS[*]}) has CONFIG_SCHED_CLASS_EXT=y"

DEST=$KCACHE/$REL
if [[ -f $DEST/.complete ]]; then
	log "$REL already cached"
	printf '%s\n' "$DEST"
	exit 0
fi
[[ -e $DEST ]] && log "removing incomplete $DEST" && rm -rf -- "$DEST"

# Check the config before downloading the big packages.
missing=()
for o in "${REQUIRED_Y[@]}"; do
	[[ $(cfg_val "$CONFIG" "$o") == y ]] || missing+=("CONFIG_$o=$(cfg_val "$CONFIG" "$o")")
done
((${#missing[@]} == 0)) || die "$REL: needed built-in options are not =y: ${missing[*]}"
want_mods=() as_modules=()
for e in "${LOADABLE[@]}"; do
	o=${e%%:*} v=$(cfg_val "$CONFIG" "${e%%:*}")
	case $v in
	y) ;;
	m)
		as_modules+=("CONFIG_$o=m")
		want_mods+=("${e#*:}")
		;;
	*) die "$REL: CONFIG_$o=$v (need y or m)" ;;
	esac
done

log "$REL: downloading linux-binary-$REL"
fetch_extract "linux-binary-$REL" "$WORK/bin"
VMLINUZ=
for c in "$WORK/bin/usr/lib/modules/$REL/vmlinuz" "$WORK/bin/lib/modules/$REL/vmlinuz" "$WORK/bin/boot/vmlinuz-$REL"; do
	[[ -f $c ]] && VMLINUZ=$c && break
done
[[ -n $VMLINUZ ]] || die "linux-binary-$REL holds no vmlinuz"

mkdir -p "$DEST"
cp -- "$VMLINUZ" "$DEST/vmlinuz"
cp -- "$CONFIG" "$DEST/config"
printf '%s\n' "$REL" >"$DEST/version"
apt-cache "${APT_OPTS[@]}" policy "linux-binary-$REL" |
	sed -nE 's/^  Candidate: (.*)$/\1/p' >"$DEST/package-version"

# Needed drivers that are modules: ship them (decompressed) with their dependencies.
if ((${#want_mods[@]})); then
	log "$REL: modules needed for ${as_modules[*]}: downloading linux-modules-$REL"
	fetch_extract "linux-modules-$REL" "$WORK/mod"
	moddir=
	for c in "$WORK/mod/usr/lib/modules/$REL" "$WORK/mod/lib/modules/$REL"; do
		[[ -d $c/kernel ]] && moddir=$c && break
	done
	[[ -n $moddir ]] || die "linux-modules-$REL has no modules/$REL/kernel directory"
	declare -A MODPATH=()
	while IFS= read -r -d '' f; do
		n=${f##*/}
		n=${n%%.ko*}
		MODPATH[${n//-/_}]=$f
	done < <(find "$moddir/kernel" -name '*.ko*' -print0)
	mkdir -p "$DEST/modules"
	declare -A SEEN=()
	ORDER=()
	add_module() { # depth-first: dependencies before the module
		local name=${1//-/_} f dep deps
		[[ -n ${SEEN[$name]:-} ]] && return 0
		SEEN[$name]=1
		f=${MODPATH[$name]:-}
		[[ -n $f ]] || die "module $name not found in linux-modules-$REL"
		case $f in
		*.ko.xz) xz -dc -- "$f" >"$DEST/modules/$name.ko" ;;
		*.ko.zst) zstd -qdc -- "$f" >"$DEST/modules/$name.ko" ;;
		*.ko.gz) gzip -dc -- "$f" >"$DEST/modules/$name.ko" ;;
		*.ko) cp -- "$f" "$DEST/modules/$name.ko" ;;
		*) die "unknown module file type: $f" ;;
		esac
		deps=$(tr '\0' '\n' <"$DEST/modules/$name.ko" | sed -n 's/^depends=//p' | head -n1)
		local IFS=,
		for dep in $deps; do
			[[ -n $dep ]] && add_module "$dep"
		done
		ORDER+=("$name")
	}
	for m in "${want_mods[@]}"; do add_module "$m"; done
	printf '%s\n' "${ORDER[@]}" >"$DEST/modules.load"
	log "$REL: shipped modules (load order): ${ORDER[*]}"
fi

# Human-readable report of what was checked.
{
	printf 'kernel %s (package %s) from %s %s\n' "$REL" "$(cat "$DEST/package-version")" "$MIRROR" "$SUITE"
	for o in "${REQUIRED_Y[@]}"; do printf 'required  CONFIG_%s=%s\n' "$o" "$(cfg_val "$CONFIG" "$o")"; done
	for e in "${LOADABLE[@]}"; do printf 'loadable  CONFIG_%s=%s\n' "${e%%:*}" "$(cfg_val "$CONFIG" "${e%%:*}")"; done
	for o in "${INFO[@]}"; do printf 'info      CONFIG_%s=%s\n' "$o" "$(cfg_val "$CONFIG" "$o")"; done
	if [[ -f $DEST/modules.load ]]; then printf 'modules   %s\n' "$(tr '\n' ' ' <"$DEST/modules.load")"; fi
} >"$DEST/config-report"
log "$REL: config OK (sched_ext, BPF, BTF, ttyS0 console, devtmpfs, cgroups built in);" \
	"as modules: ${as_modules[*]:-none}"

touch "$DEST/.complete"
printf '%s\n' "$DEST"
