//! Loading the scheduler's object with its maps only: no struct_ops, no
//! programs. The .bss and the strategy map are then real kernel objects even on
//! a kernel without sched_ext, which is how the host tests and benchmarks
//! exercise the reader and the writer.

use std::mem::MaybeUninit;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::OpenObject;

use super::bpf_skel::{BpfSkel, BpfSkelBuilder};

pub fn load(open_object: &mut MaybeUninit<OpenObject>) -> Result<BpfSkel<'_>> {
    let mut skel = BpfSkelBuilder::default()
        .open(open_object)
        .context("opening the BPF object")?;
    skel.maps
        .pilot_ops
        .set_autocreate(false)
        .context("disabling struct_ops creation")?;
    for mut prog in skel.open_object_mut().progs_mut() {
        prog.set_autoload(false);
    }
    skel.load()
        .context("loading the BPF maps (needs root or CAP_BPF)")
}
