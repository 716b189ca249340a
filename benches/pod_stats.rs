//! Cost of one pod-stats reading round on a busy node.
//!
//! - `stats_round_5000`: one round of [`PodFigures::round`] against a scan of
//!   the real `/proc` with at least 5,000 live processes, 500 of them in
//!   kubelet-style pod cgroups (the same set-up as `benches/pods.rs`: as root
//!   the bench creates them under `<cgroup2>/kubepods.slice/scx_pilot_stats_bench.slice`),
//!   plus 1,000 strategy PIDs outside pods: each round reads `/proc/PID/stat`
//!   and the schedstat of every thread of 1,500 processes.
//! - `stats_round_with_scan_5000`: the same with the `/proc` scan it needs
//!   (which the agent shares with the resolver).
//!
//! Run: `sudo cargo bench --bench pod_stats`.

#[path = "common/busy.rs"]
mod busy;

use std::path::Path;

use busy::Busy;

use criterion::Criterion;
use scx_pilot::pod_figures::PodFigures;
use scx_pilot::pods::scan_all;

fn bench_round(c: &mut Criterion) {
    let busy = Busy::start("scx_pilot_stats_bench.slice");
    let proc_root = Path::new("/proc");
    let snap = scan_all(proc_root).expect("scanning /proc");
    let in_pods = snap.processes.iter().filter(|p| p.pod.is_some()).count();
    let extra: Vec<u32> = snap
        .processes
        .iter()
        .filter(|p| p.pod.is_none() && !p.kernel_thread)
        .map(|p| p.pid)
        .take(1000)
        .collect();
    eprintln!(
        "pod_stats bench: {} processes, {in_pods} in pods, {} strategy PIDs outside pods",
        snap.processes.len(),
        extra.len()
    );
    let store = PodFigures::default();
    store.round(proc_root, &snap, &extra);
    store.round(proc_root, &snap, &extra);
    let info = store.info();
    eprintln!(
        "pod_stats bench: a round reads {} PIDs and {} threads in {:.2} ms; {} pods tracked",
        info.pids_read,
        info.threads_read,
        info.last_round_ms,
        store.pods(None, 0).len()
    );
    c.bench_function("stats_round_5000", |b| {
        b.iter(|| store.round(proc_root, &snap, &extra))
    });
    c.bench_function("stats_round_with_scan_5000", |b| {
        b.iter(|| {
            let snap = scan_all(proc_root).expect("scanning /proc");
            store.round(proc_root, &snap, &extra)
        })
    });
    drop(busy);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_round(&mut c);
    c.final_summary();
}
