fn builder() -> scx_cargo::BpfBuilder {
    scx_cargo::BpfBuilder::new()
        .expect("BPF build environment (clang-19, libelf) is missing; run `make deps`")
}

fn main() {
    builder()
        .enable_intf("bpf/intf.h", "bpf_intf.rs")
        .enable_skel("bpf/main.bpf.c", "bpf")
        .build()
        .expect("building the BPF scheduler failed");
    // The floor contender of `make bench-sched` (examples/scx_floor.rs).
    builder()
        .enable_skel("bpf/floor.bpf.c", "floor")
        .build()
        .expect("building the floor scheduler failed");
    println!("cargo:rerun-if-changed=bpf/intf.h");
    println!("cargo:rerun-if-changed=bpf/main.bpf.c");
    println!("cargo:rerun-if-changed=bpf/floor.bpf.c");
}
