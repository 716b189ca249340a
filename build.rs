fn main() {
    scx_cargo::BpfBuilder::new()
        .expect("BPF build environment (clang-19, libelf) is missing; run `make deps`")
        .enable_intf("bpf/intf.h", "bpf_intf.rs")
        .enable_skel("bpf/main.bpf.c", "bpf")
        .build()
        .expect("building the BPF scheduler failed");
    println!("cargo:rerun-if-changed=bpf/intf.h");
    println!("cargo:rerun-if-changed=bpf/main.bpf.c");
}
