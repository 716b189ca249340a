# scx_pilot: `make run` runs the agent, `make test` runs every test.
# Both install what they need (apt packages, the VM kernel) when it is missing.

SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/scx_pilot
# Extra agent flags for `make run`, e.g. make run ARGS="--slice-us 3000 -v"
ARGS ?=
# Kernels for `make test-vm`: scripts/vm/kernel.sh versions, e.g. KERNELS="oldest newest" or "6.19 7.2".
KERNELS ?= newest

# Root is needed to load BPF; re-run the target under sudo when not root.
ifneq ($(shell id -u),0)
AS_ROOT := sudo -E env "PATH=$(PATH)"
else
AS_ROOT :=
endif

.PHONY: all build install deps run test test-host test-vm bench bench-sched bench-bpf bench-wakeup bench-api clean fmt lint image

all: build

deps:
	@scripts/deps.sh build

# Installs the binary, the systemd unit and /etc/default/scx_pilot (idempotent;
# DESTDIR and PREFIX are honoured).
install: build
	$(AS_ROOT) scripts/install.sh target/release/scx_pilot

build: deps
	$(CARGO) build --release --locked

# On a kernel with sched_ext: run the agent here. Otherwise boot the sched_ext
# VM with the agent inside and forward its API to localhost:8080 (exec: run.sh
# is make's own child, so a make that is killed stops the VM; see run.sh).
run: build
	@if [ -d /sys/kernel/sched_ext ]; then \
		echo "make run: sched_ext found, starting $(BIN) (Ctrl-C stops it)"; \
		$(AS_ROOT) $(BIN) $(ARGS); \
	else \
		echo "make run: this kernel ($$(uname -r)) has no sched_ext; running scx_pilot in a VM with a kernel that has it"; \
		scripts/deps.sh vm && exec scripts/vm/run.sh $(ARGS); \
	fi

test:
	@scripts/deps.sh vm
	$(CARGO) build --release --locked --bins --example kube_stub
	$(AS_ROOT) $(CARGO) test --release --locked
	$(AS_ROOT) scripts/vm-test.sh
	$(AS_ROOT) scripts/vm-matrix.sh --quick oldest
	$(AS_ROOT) scripts/vm-notify-test.sh
	@echo "make test: all tests passed"

test-host:
	@scripts/deps.sh test
	$(AS_ROOT) $(CARGO) test --release --locked

test-vm:
	@scripts/deps.sh vm
	$(CARGO) build --release --locked --bins --example notify_listen --example kube_stub
	$(AS_ROOT) scripts/vm-matrix.sh $(KERNELS)
	$(AS_ROOT) scripts/vm-notify-test.sh

bench:
	@scripts/deps.sh bench
	$(AS_ROOT) $(CARGO) bench --locked --bench sched_maps --bench prom --bench pods

# Scheduler benchmark in the sched_ext VM against EEVDF and the peer schedulers
# (builds scx_bpfland/scx_rustland once from crates.io), BOOTS boots (default 3)
# and their median; results in bench/results/.
bench-sched: build
	@scripts/deps.sh bench
	$(CARGO) build --release --locked --example scx_floor
	$(AS_ROOT) scripts/bench-sched.sh

# What each BPF program costs per call in the sched_ext VM (one boot, ~2 min);
# results in bench/results/bpf-cost-*.md. BASE=<another scx_pilot build>
# measures it beside this build in the same boot (three rounds, ~6 min).
bench-bpf: build
	@scripts/deps.sh bench
	$(AS_ROOT) scripts/bench-bpf-cost.sh

# Where a wakeup's time goes: CPU 0's scheduler events traced in the sched_ext
# VM for EEVDF, scx_floor and scx_pilot (one boot, ~2 min); the probe's wakeups
# cut into segments in bench/results/wakeup-*.md.
bench-wakeup: build
	@scripts/deps.sh bench
	$(CARGO) build --release --locked --example scx_floor
	$(AS_ROOT) scripts/bench-wakeup.sh

bench-api: build
	@scripts/deps.sh bench
	scripts/bench-api.sh

# The container image the DaemonSet runs, tagged with the reference the
# manifest names (so the manifest is the one place it is written). Loading it
# into a cluster's nodes: README, "Kubernetes".
IMAGE ?= $(shell sed -n 's/^ *image: *//p' k8s/daemonset.yaml)
DOCKER ?= docker
image:
	$(DOCKER) build -t $(IMAGE) .

fmt:
	$(CARGO) fmt

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

clean:
	$(CARGO) clean
