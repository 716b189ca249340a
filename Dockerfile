# syntax=docker/dockerfile:1
# scx_pilot image: `make image` runs `docker build -t IMAGE .` with IMAGE the
# reference k8s/daemonset.yaml runs (README, "Kubernetes"). Two stages: a Debian 12 build with clang-19 for the BPF
# part, and a slim runtime with only the libraries the binary links (libelf,
# zlib). Run it with the privileges in k8s/daemonset.yaml (hostPID, CAP_BPF,
# CAP_PERFMON, CAP_SYS_ADMIN, CAP_SYS_RESOURCE) on a kernel with sched_ext.

FROM rust:1.91-bookworm AS build
# clang-19: scx_cargo refuses clang older than 18 (.cargo/config.toml names it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       clang-19=1:19.* llvm-19=1:19.* libelf-dev=0.188-* zlib1g-dev=1:1.2.* pkg-config=1.8.* \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
    && install -m 0755 target/release/scx_pilot /scx_pilot

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libelf1=0.188-* zlib1g=1:1.2.* \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /scx_pilot /usr/local/bin/scx_pilot
# Runs as root on purpose: loading and attaching a sched_ext scheduler needs
# CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN, which the pod grants (and bounds) to
# its root user; a non-root user would need ambient capabilities instead.
EXPOSE 8080
# The write token and saved strategies live here (a hostPath in the DaemonSet).
VOLUME ["/var/lib/scx_pilot"]
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/scx_pilot"]
CMD ["--listen", "0.0.0.0:8080"]
