//! A busy node for the benchmarks: thousands of live sleeping processes, some
//! of them in kubelet-style pod cgroups on the real kernel. Included by the
//! benches with `#[path = "common/busy.rs"] mod busy;`.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// Live processes a busy node has.
pub const LIVE_PROCESSES: usize = 5_000;
/// Of which run in pods (one process each).
pub const PODS: usize = 500;

/// Sleeping processes, some of them in pod cgroups; all gone on drop (and,
/// through PDEATHSIG, if the bench dies).
pub struct Busy {
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

pub fn pod_uid(i: usize) -> String {
    format!("{i:08x}-0000-4000-8000-{i:012x}")
}

impl Busy {
    /// Start sleeping processes until `LIVE_PROCESSES` live; as root, the
    /// first `PODS` go into pod cgroups under `<cgroup2>/kubepods.slice/<slice>`.
    pub fn start(slice: &str) -> Self {
        // The cgroup v2 hierarchy (hybrid hosts mount it at unified/), and
        // kubelet's layout in it (systemd driver), which pod discovery knows.
        let cgroup_root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .iter()
            .map(Path::new)
            .find(|p| p.join("cgroup.procs").exists())
            .map(|p| p.join("kubepods.slice").join(slice))
            .filter(|p| std::fs::create_dir_all(p).is_ok());
        if cgroup_root.is_none() {
            eprintln!("bench: cannot create cgroups (not root?): no process is in a pod");
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
            "bench: started {} sleeping processes in {:.1} s; {} processes live",
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
