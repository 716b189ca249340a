//! Cost of one pod-stats reading round (issue 9) on a busy node.
//!
//! - `stats_round_5000`: one round of [`StatsStore::round`] against a scan of
//!   the real `/proc` with at least 5,000 live processes, 500 of them in
//!   kubelet-style pod cgroups (the same set-up as `benches/pods.rs`: as root
//!   the bench creates them under `<cgroup2>/kubepods.slice/scx_pilot_stats_bench.slice`),
//!   plus 1,000 strategy PIDs outside pods: each round reads `/proc/PID/stat`
//!   and the schedstat of every thread of 1,500 processes.
//! - `stats_round_with_scan_5000`: the same with the `/proc` scan it needs
//!   (which the agent shares with the resolver).
//!
//! Run: `sudo cargo bench --bench pod_stats`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use criterion::Criterion;
use scx_pilot::pods::scan_all;
use scx_pilot::stats::StatsStore;

const LIVE_PROCESSES: usize = 5_000;
const PODS: usize = 500;

/// Sleeping processes, some of them in pod cgroups; all gone on drop (and,
/// through PDEATHSIG, if the bench dies).
struct Busy {
    children: Vec<Child>,
    cgroup_root: Option<PathBuf>,
}

fn live_processes() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|s| s.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0)
}

fn pod_uid(i: usize) -> String {
    format!("{i:08x}-0000-4000-8000-{i:012x}")
}

impl Busy {
    fn start() -> Self {
        // The cgroup v2 hierarchy (hybrid hosts mount it at unified/), and
        // kubelet's layout in it (systemd driver), which pod discovery knows.
        let cgroup_root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .iter()
            .map(Path::new)
            .find(|p| p.join("cgroup.procs").exists())
            .map(|p| p.join("kubepods.slice/scx_pilot_stats_bench.slice"))
            .filter(|p| std::fs::create_dir_all(p).is_ok());
        if cgroup_root.is_none() {
            eprintln!("pod_stats bench: cannot create cgroups (not root?): no process is in a pod");
        }
        let missing = LIVE_PROCESSES.saturating_sub(live_processes());
        let started = Instant::now();
        let mut children = Vec::with_capacity(missing);
        for i in 0..missing {
            let mut cmd = Command::new("sleep");
            cmd.arg("3600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe and touches no memory of ours.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = cmd.spawn().expect("starting sleep");
            if let (Some(root), true) = (&cgroup_root, i < PODS) {
                let dir = pod_cgroup(root, i);
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(dir.join("cgroup.procs"), child.id().to_string());
            }
            children.push(child);
        }
        eprintln!(
            "pod_stats bench: started {} sleeping processes in {:.1} s; {} processes live",
            children.len(),
            started.elapsed().as_secs_f64(),
            live_processes()
        );
        Self {
            children,
            cgroup_root,
        }
    }
}

fn pod_cgroup(root: &Path, i: usize) -> PathBuf {
    root.join(format!(
        "kubepods-burstable-pod{}.slice",
        pod_uid(i).replace('-', "_")
    ))
    .join(format!("cri-containerd-{i:064x}.scope"))
}

impl Drop for Busy {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
        if let Some(root) = &self.cgroup_root {
            for i in 0..PODS {
                let dir = pod_cgroup(root, i);
                let _ = std::fs::remove_dir(&dir);
                if let Some(pod) = dir.parent() {
                    let _ = std::fs::remove_dir(pod);
                }
            }
            let _ = std::fs::remove_dir(root);
            if let Some(kubepods) = root.parent() {
                let _ = std::fs::remove_dir(kubepods);
            }
        }
    }
}

fn bench_round(c: &mut Criterion) {
    let busy = Busy::start();
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
    let store = StatsStore::default();
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
