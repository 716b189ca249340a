#!/bin/sh
# smoke-guest.sh - runs INSIDE the VM (busybox sh) as /guest-test.sh. Checks that the
# sched_ext kernel, the mounts, the tools and the network are usable. Exit 0 = all good.
failures=0
ok() { echo "smoke: ok   $*"; }
bad() {
	echo "smoke: FAIL $*"
	failures=$((failures + 1))
}

echo "smoke: uname -r: $(uname -r)"
state=$(cat /sys/kernel/sched_ext/state 2>&1)
echo "smoke: /sys/kernel/sched_ext/state: $state"
if [ "$state" = disabled ]; then
	ok "sched_ext state is disabled (no scheduler attached)"
else
	bad "sched_ext state is '$state', expected 'disabled'"
fi

n=$(nproc)
echo "smoke: nproc: $n"
if [ "$n" -ge 1 ] 2>/dev/null; then ok "nproc=$n"; else bad "nproc=$n"; fi

if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
	ok "cgroup2 mounted, controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
else
	bad "/sys/fs/cgroup/cgroup.controllers missing"
fi
cfg=/boot/config-$(uname -r)
if grep -q '^CONFIG_SCHED_CLASS_EXT=y' "$cfg" 2>/dev/null; then ok "$cfg present"; else bad "$cfg missing or without sched_ext"; fi
if [ -e /sys/kernel/btf/vmlinux ]; then ok "/sys/kernel/btf/vmlinux present"; else bad "no /sys/kernel/btf/vmlinux"; fi
if grep -q ' /sys/fs/bpf bpf ' /proc/mounts; then ok "bpffs mounted"; else bad "bpffs not mounted"; fi

echo "smoke: stress-ng --cpu 2 --timeout 3s --metrics-brief"
if stress-ng --cpu 2 --timeout 3s --metrics-brief; then ok "stress-ng"; else bad "stress-ng exited $?"; fi

# cyclictest 2.4 has no -n (clock_nanosleep is the default) and exits 0 even on a bad
# option, so check its summary line instead of its exit code.
echo "smoke: cyclictest -t1 -i 1000 -l 500 -q -m"
out=$(cyclictest -t1 -i 1000 -l 500 -q -m 2>&1)
rc=$?
echo "$out"
if [ $rc -eq 0 ] && echo "$out" | grep -q 'T: 0 .*C: *500 .*Avg: *[0-9]'; then
	ok "cyclictest"
else
	bad "cyclictest (rc=$rc, no 'T: 0 ... C: 500 ... Avg:' summary)"
fi

echo "smoke: ip addr"
ip addr
if ip addr show dev eth0 2>/dev/null | grep -q 'inet 10\.0\.2\.15/24' &&
	ip addr show dev eth0 | grep -q 'state UP\|LOWER_UP' &&
	ip route | grep -q '^default via 10\.0\.2\.2'; then
	ok "eth0 10.0.2.15/24 up, default route via 10.0.2.2"
else
	bad "eth0 not configured"
fi
if ip addr show dev lo | grep -q 'inet 127\.0\.0\.1'; then ok "lo up"; else bad "lo not up"; fi

if [ "$failures" -eq 0 ]; then
	echo "smoke: PASS"
	exit 0
fi
echo "smoke: $failures check(s) failed"
exit 1
