#!/usr/bin/env bash
# Installs what building and testing scx_pilot needs, when it is missing.
#   scripts/deps.sh build   - the BPF/Rust build toolchain
#   scripts/deps.sh vm      - plus what the sched_ext VM tests need
#   scripts/deps.sh bench   - plus the benchmark tools
set -euo pipefail

want=(clang-19 llvm-19 libelf-dev zlib1g-dev pkg-config linux-libc-dev make)
case "${1:-build}" in
  build) ;;
  vm) want+=(qemu-system-x86 busybox-static cpio stress-ng rt-tests jq curl ca-certificates openssl prometheus chromium) ;;
  bench) want+=(qemu-system-x86 busybox-static cpio stress-ng rt-tests jq curl ca-certificates wrk libseccomp-dev) ;;
  *) echo "deps.sh: unknown set '$1' (build, vm, bench)" >&2; exit 2 ;;
esac

# The dashboard test drives Chromium through playwright-core from npm. Ask for
# Debian's node and npm only when no npm is on PATH (a NodeSource nodejs
# bundles npm and conflicts with Debian's npm package).
if [[ ${1:-build} != build ]] && ! command -v npm >/dev/null 2>&1; then
  want+=(nodejs npm)
fi

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
  echo "deps.sh: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "deps.sh: cargo not found: install Rust 1.91 or newer (https://rustup.rs), then rerun" >&2
  exit 1
fi
