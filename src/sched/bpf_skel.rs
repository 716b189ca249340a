//! The libbpf-cargo skeleton of `bpf/main.bpf.c`.
#![allow(clippy::all)]
include!(concat!(env!("OUT_DIR"), "/bpf_skel.rs"));
