//! Pod discovery and strategy resolution on a busy node.
//!
//! - `scan_proc_5000`: one full walk of the real `/proc` with at least 5,000
//!   live processes (the bench starts `sleep` processes up to that count; as
//!   root, 500 of them run in kubelet-style pod cgroups it creates under
//!   `/sys/fs/cgroup/scx_pilot_bench.slice`). Target: under 100 ms.
//! - `resolve_100x500`: 100 strategies (selectors, command regexes, PIDs)
//!   resolved against 500 pods of 4 processes plus 3,000 other processes.
//!   Target: under 10 ms.
//!
//! Run: `sudo cargo bench --bench pods` (part of `make bench`).

#[path = "common/busy.rs"]
mod busy;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use busy::{pod_uid, Busy, PODS};

use criterion::Criterion;
use scx_pilot::podmeta::{PodDirectory, PodMeta};
use scx_pilot::pods::{scan_all, PodRef, ProcInfo, ProcSnapshot};
use scx_pilot::strategy::{resolve, LabelSelector, ResolveInput, Strategy, StrategySet};

fn bench_scan(c: &mut Criterion) {
    let busy = Busy::start("scx_pilot_bench.slice");
    let snap = scan_all(Path::new("/proc")).expect("scanning /proc");
    let in_pods = snap.processes.iter().filter(|p| p.pod.is_some()).count();
    eprintln!(
        "pods bench: a scan sees {} processes, {in_pods} of them in pods",
        snap.processes.len()
    );
    c.bench_function("scan_proc_5000", |b| {
        b.iter(|| scan_all(Path::new("/proc")).expect("scanning /proc"))
    });
    drop(busy);
}

/// 500 pods (labels app=app-<i % 50>, tier=<i % 5>) of 4 processes each, and
/// 3,000 processes outside pods.
fn synthetic_node() -> (ProcSnapshot, PodDirectory) {
    let mut processes = Vec::new();
    let mut pid = 1000u32;
    for i in 0..PODS {
        for j in 0..4 {
            processes.push(ProcInfo {
                pid,
                ppid: 1,
                command: format!("worker-{}", (i + j) % 20),
                kernel_thread: false,
                pod: Some(PodRef {
                    pod_uid: pod_uid(i),
                    container_id: format!("{i:064x}"),
                }),
            });
            pid += 1;
        }
    }
    for k in 0..3000 {
        processes.push(ProcInfo {
            pid,
            ppid: 1,
            command: format!("daemon-{}", k % 40),
            kernel_thread: false,
            pod: None,
        });
        pid += 1;
    }
    let pods = (0..PODS).map(|i| PodMeta {
        uid: pod_uid(i),
        name: format!("pod-{i}"),
        namespace: "default".into(),
        labels: BTreeMap::from([
            ("app".to_string(), format!("app-{}", i % 50)),
            ("tier".to_string(), format!("{}", i % 5)),
        ]),
        config_hash: None,
    });
    let snapshot = ProcSnapshot {
        taken_at: Instant::now(),
        processes,
        scan_time: Default::default(),
    };
    (snapshot, PodDirectory::from_pods(pods))
}

/// 60 selector strategies, 30 command regexes (half of them also with
/// selectors), 10 PIDs.
fn strategies() -> Vec<Strategy> {
    (0..100)
        .map(|i| {
            let sel = |app: usize| {
                Some(vec![
                    LabelSelector {
                        key: "app".into(),
                        value: format!("app-{app}"),
                    },
                    LabelSelector {
                        key: "tier".into(),
                        value: format!("{}", app % 5),
                    },
                ])
            };
            match i {
                0..60 => Strategy {
                    priority: i % 2 == 0,
                    execution_time: 1_000_000,
                    pid: None,
                    selectors: sel(i % 50),
                    command_regex: None,
                },
                60..90 => Strategy {
                    priority: true,
                    execution_time: 2_000_000,
                    pid: None,
                    selectors: if i % 2 == 0 { sel(i % 50) } else { None },
                    command_regex: Some(format!("^(worker|daemon)-{}$", i % 20)),
                },
                _ => Strategy {
                    priority: false,
                    execution_time: 500_000,
                    pid: Some(std::process::id() + i as u32),
                    selectors: None,
                    command_regex: None,
                },
            }
        })
        .collect()
}

fn bench_resolve(c: &mut Criterion) {
    let (snapshot, dir) = synthetic_node();
    let set = StrategySet::new(strategies());
    let input = ResolveInput {
        proc_root: Path::new("/proc"),
        snapshot: Some(&snapshot),
        pods: Some(&dir),
        agent_pid: std::process::id(),
    };
    let resolved = resolve(&set, &input);
    eprintln!(
        "pods bench: 100 strategies resolve to {} PIDs",
        resolved.desired.len()
    );
    assert!(
        !resolved.desired.is_empty(),
        "the synthetic strategies must match something"
    );
    c.bench_function("resolve_100x500", |b| b.iter(|| resolve(&set, &input)));
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_resolve(&mut c);
    bench_scan(&mut c);
    c.final_summary();
}
