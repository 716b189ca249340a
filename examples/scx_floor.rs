//! The floor of sched_ext for `make bench-sched` (`bpf/floor.bpf.c`): attaches
//! a scheduler that does nothing but give every waking task its CPU at once,
//! and keeps it attached until the process is killed (SIGINT or SIGTERM end
//! it; the kernel detaches the scheduler when the link's last descriptor
//! closes, so the machine goes back to its default scheduler) or the kernel
//! ejects it. What the probe waits under it is what any sched_ext scheduler
//! pays before its own policy.
//!
//! Usage: scx_floor (as root, on a kernel with sched_ext)

use std::mem::MaybeUninit;
use std::time::Duration;

use anyhow::{Context, Result};
use scx_utils::{scx_ops_attach, scx_ops_load, scx_ops_open, uei_exited, uei_read};

mod floor_skel {
    #![allow(
        clippy::all,
        non_camel_case_types,
        non_snake_case,
        non_upper_case_globals
    )]
    include!(concat!(env!("OUT_DIR"), "/floor_skel.rs"));
}

fn main() -> Result<()> {
    // A background job of a non-interactive shell starts with SIGINT ignored
    // (as the bench's guest script starts contenders): the default action,
    // which ends the process and so detaches the scheduler, is what we want.
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: resetting a disposition to the default has no preconditions.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let mut open_object = MaybeUninit::uninit();
    let builder = floor_skel::FloorSkelBuilder::default();
    let mut skel = scx_ops_open!(
        builder,
        &mut open_object,
        floor_ops,
        None::<libbpf_rs::libbpf_sys::bpf_object_open_opts>
    )
    .context("opening the floor scheduler")?;
    let mut skel = scx_ops_load!(skel, floor_ops, uei).context("loading the floor scheduler")?;
    let _link = scx_ops_attach!(skel, floor_ops).context("attaching the floor scheduler")?;
    eprintln!("scx_floor: attached; kill this process to detach");
    while !uei_exited!(&skel, uei) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The kernel's reason, and an error exit for an ejection.
    uei_read!(&skel, uei).report()
}
