//! Pod -> PID discovery from `/proc/*/cgroup`, `/proc/PID/stat` and pod
//! metadata.
//!
//! Cgroup layouts recognised (v1 and v2, every line of the file is tried):
//! - cgroupfs driver: `/kubepods/<qos>/pod<uid>/<container-id>`, and guaranteed
//!   pods without the QoS segment (`/kubepods/pod<uid>/...`);
//! - systemd driver: `kubepods-<qos>-pod<uid_with_underscores>.slice`, guaranteed
//!   `kubepods-pod<uid_...>.slice`, and kind's `kubelet.slice/kubelet-kubepods-...`;
//! - containers: containerd `cri-containerd-<64hex>.scope` and the old
//!   `<pod-slice>:cri-containerd:<64hex>` form, CRI-O `crio-<64hex>[.scope]`
//!   (its `crio-conmon-` monitor is not a container process and is skipped),
//!   Docker / cri-dockerd `docker-<64hex>.scope` and plain `<64hex>`;
//! - cgroup-namespaced paths (`0::/../../kubepods-...`): `..` segments are skipped;
//! - static pods, whose cgroup carries the 32-hex config hash instead of a UUID.
//!
//! Pod UIDs are reported with dashes. A process in the pod's own cgroup (no
//! container segment) is reported with an empty container ID. Processes that
//! exit while being read are skipped; processes outside pods are kept in the
//! snapshot (command-regex strategies need them) but not listed as pods.

pub mod schedstat;

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use crate::podmeta::PodDirectory;

/// A process running in a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PodProcess {
    pub pid: u32,
    /// Command name (`/proc/PID/comm`, at most 15 bytes).
    pub command: String,
    /// Parent PID.
    pub ppid: u32,
    /// Its container's ID (64 hex digits), empty in the pod's own cgroup.
    pub container_id: String,
}

/// One pod with the processes of all its containers (PodInfo of the BSS
/// Metrics API: one entry per pod, as its example shows `pause` and `loki`
/// under one pod).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PodInfo {
    /// Name of the pod (from Kubernetes or `--pods-file`; empty when unknown).
    pub pod_name: String,
    /// Namespace of the pod (from Kubernetes or `--pods-file`; empty when unknown).
    pub namespace: String,
    /// Pod UID with dashes (a static pod's 32-hex config hash as found in its cgroup).
    pub pod_uid: String,
    /// The container of its first process (lowest PID: the sandbox's `pause`
    /// as a rule), as the original reported one per pod; each process names
    /// its own.
    pub container_id: String,
    /// Sorted by PID.
    pub processes: Vec<PodProcess>,
}

impl PodInfo {
    /// How many containers its processes run in.
    pub fn containers(&self) -> usize {
        let mut ids: Vec<&str> = self
            .processes
            .iter()
            .map(|p| p.container_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

/// Pod UID and container ID found in a cgroup path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodRef {
    pub pod_uid: String,
    pub container_id: String,
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A static pod's cgroup holds the config hash (32 hex digits) as its UID.
fn is_config_hash(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// The pod UID in one path segment such as `pod<uid>` or
/// `kubepods-burstable-pod<uid_with_underscores>.slice`.
fn segment_pod_uid(seg: &str) -> Option<String> {
    let seg = seg.strip_suffix(".slice").unwrap_or(seg);
    let rest = match seg.strip_prefix("pod") {
        Some(r) => r,
        None => {
            // Only kubelet's own slices: `kubepods-...-pod<uid>` (kind: `kubelet-kubepods-...`).
            if !(seg.starts_with("kubepods-") || seg.starts_with("kubelet-kubepods-")) {
                return None;
            }
            &seg[seg.rfind("-pod")? + 4..]
        }
    };
    let uid = rest.replace('_', "-");
    (is_uuid(&uid) || is_config_hash(&uid)).then_some(uid)
}

/// The container ID in the segment after the pod's: the trailing 64 hex digits
/// of `cri-containerd-<id>.scope`, `docker-<id>.scope`, `crio-<id>.scope`,
/// `...:cri-containerd:<id>` or a plain `<id>`.
fn segment_container_id(seg: &str) -> Option<String> {
    let seg = seg.strip_suffix(".scope").unwrap_or(seg);
    if seg.starts_with("crio-conmon-") {
        return None;
    }
    let start = seg.len().checked_sub(64)?;
    let id = seg.get(start..)?;
    let before = &seg[..start];
    let known_prefix = matches!(
        before,
        "" | "cri-containerd-" | "docker-" | "crio-" | "cri-o-"
    );
    (known_prefix && id.bytes().all(|c| c.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// The pod in one cgroup path (the part after `hierarchy:controllers:`).
fn parse_path(path: &str) -> Option<PodRef> {
    let mut segs = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "..")
        // The ':cri-containerd:' form joins pod and container in one segment.
        .flat_map(|s| {
            let (a, b) = match s.split_once(":cri-containerd:") {
                Some((pod, id)) => (pod, Some(id)),
                None => (s, None),
            };
            std::iter::once(a).chain(b)
        });
    while let Some(seg) = segs.next() {
        if let Some(pod_uid) = segment_pod_uid(seg) {
            let container_id = match segs.next() {
                // A conmon or other helper cgroup: not a container process.
                Some(next) => segment_container_id(next)?,
                None => String::new(),
            };
            return Some(PodRef {
                pod_uid,
                container_id,
            });
        }
    }
    None
}

/// Find the pod (and container) in the contents of a `/proc/PID/cgroup` file:
/// the first line (v1 controller or v2 unified) whose path names a pod.
pub fn parse_cgroup(contents: &str) -> Option<PodRef> {
    contents
        .lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .find_map(parse_path)
}

/// PF_KTHREAD from include/linux/sched.h: the task is a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;

fn read_stat(proc_root: &Path, pid: u32) -> Option<String> {
    std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()
}

/// What names a process, from one read of `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcIdentity {
    pub kernel_thread: bool,
    /// When it started, in clock ticks after boot (field 22). With the PID it
    /// names one process for the whole boot, so a strategy posted for a
    /// process is not inherited by a later one that reuses its PID.
    pub start_ticks: Option<u64>,
}

/// The identity of `pid`, None when it has no (readable) stat.
pub fn identity(proc_root: &Path, pid: u32) -> Option<ProcIdentity> {
    let stat = read_stat(proc_root, pid)?;
    let kernel_thread = parse_stat(&stat).is_some_and(|(_, _, k)| k);
    // After the command: state is field 3, starttime field 22.
    let start_ticks = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_ascii_whitespace().nth(19)?.parse().ok());
    Some(ProcIdentity {
        kernel_thread,
        start_ticks,
    })
}

/// Whether `pid` is a kernel thread (false when it does not exist).
pub fn is_kernel_thread(proc_root: &Path, pid: u32) -> bool {
    identity(proc_root, pid).is_some_and(|i| i.kernel_thread)
}

/// When `pid` started (see [`ProcIdentity::start_ticks`]).
pub fn start_ticks(proc_root: &Path, pid: u32) -> Option<u64> {
    identity(proc_root, pid)?.start_ticks
}

/// This boot's ID (`sys/kernel/random/boot_id` under the proc root).
pub fn boot_id(proc_root: &Path) -> Option<String> {
    std::fs::read_to_string(proc_root.join("sys/kernel/random/boot_id"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Command, ppid and kernel-thread flag from `/proc/PID/stat`:
/// "pid (comm) state ppid pgrp session tty_nr tpgid flags ...", where comm may
/// hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(String, u32, bool)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let mut rest = stat.get(close + 1..)?.split_ascii_whitespace();
    let ppid = rest.nth(1)?.parse().ok()?;
    let flags: u64 = rest.nth(4)?.parse().ok()?;
    Some((comm, ppid, flags & PF_KTHREAD != 0))
}

/// One process seen in a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    /// Command name (comm).
    pub command: String,
    pub kernel_thread: bool,
    /// The pod and container it runs in, if any.
    pub pod: Option<PodRef>,
}

/// Every process of one `/proc` scan, sorted by PID.
#[derive(Debug, Clone)]
pub struct ProcSnapshot {
    pub taken_at: Instant,
    pub processes: Vec<ProcInfo>,
    /// How long the scan took.
    pub scan_time: Duration,
}

impl ProcSnapshot {
    /// An empty snapshot (nothing scanned yet).
    pub fn empty() -> Self {
        Self {
            taken_at: Instant::now(),
            processes: Vec::new(),
            scan_time: Duration::ZERO,
        }
    }

    /// Processes grouped by pod, sorted by pod UID and PID; names and
    /// namespaces filled from `dir` when it knows the pod.
    pub fn pods(&self, dir: Option<&PodDirectory>) -> Vec<PodInfo> {
        let mut groups: BTreeMap<&str, Vec<PodProcess>> = BTreeMap::new();
        // The snapshot is sorted by PID, so each pod's processes are too.
        for p in &self.processes {
            if let Some(pod) = &p.pod {
                groups.entry(&pod.pod_uid).or_default().push(PodProcess {
                    pid: p.pid,
                    command: p.command.clone(),
                    ppid: p.ppid,
                    container_id: pod.container_id.clone(),
                });
            }
        }
        groups
            .into_iter()
            .map(|(pod_uid, processes)| {
                let meta = dir.and_then(|d| d.get(pod_uid));
                PodInfo {
                    pod_name: meta.map(|m| m.name.clone()).unwrap_or_default(),
                    namespace: meta.map(|m| m.namespace.clone()).unwrap_or_default(),
                    pod_uid: pod_uid.to_string(),
                    container_id: processes[0].container_id.clone(),
                    processes,
                }
            })
            .collect()
    }
}

fn read_into(path: &Path, buf: &mut String) -> io::Result<()> {
    buf.clear();
    std::fs::File::open(path)?.read_to_string(buf)?;
    Ok(())
}

/// Whether a read error of a `/proc/PID` file means the process is not there
/// for us: it exited, or `/proc` hides it from this user (hidepid), which
/// stays so from scan to scan. Anything else (out of file descriptors or
/// memory) is a failed read.
fn exited(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ESRCH | libc::EACCES | libc::EPERM)
    )
}

/// `read_into`, with a process that exited read as None and any other
/// failure an error naming the path: a scan that could not read a live
/// process is incomplete, and an incomplete scan must not pass for one
/// where the process is gone.
fn read_live(path: &Path, buf: &mut String) -> io::Result<Option<()>> {
    match read_into(path, buf) {
        Ok(()) => Ok(Some(())),
        Err(e) if exited(&e) => Ok(None),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("reading {}: {e}", path.display()),
        )),
    }
}

/// Scan `proc_root` for every process (not thread). Processes that exit
/// during the scan are skipped; any other failure (listing `proc_root`, or
/// reading a live process, e.g. out of file descriptors) is an error: the
/// snapshot is every process or none.
pub fn scan_all(proc_root: &Path) -> io::Result<ProcSnapshot> {
    let start = Instant::now();
    let mut processes = Vec::new();
    let mut path = PathBuf::from(proc_root);
    let mut buf = String::with_capacity(1024);
    for entry in std::fs::read_dir(proc_root)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        path.push(&name);
        path.push("stat");
        let stat = read_live(&path, &mut buf)?.and_then(|_| parse_stat(&buf));
        path.pop();
        let Some((command, ppid, kernel_thread)) = stat else {
            path.pop();
            continue;
        };
        // Kernel threads live in the root cgroup: no need to read it.
        let pod = if kernel_thread {
            None
        } else {
            path.push("cgroup");
            let pod = read_live(&path, &mut buf)?.and_then(|_| parse_cgroup(&buf));
            path.pop();
            pod
        };
        path.pop();
        processes.push(ProcInfo {
            pid,
            ppid,
            command,
            kernel_thread,
            pod,
        });
    }
    processes.sort_unstable_by_key(|p| p.pid);
    Ok(ProcSnapshot {
        taken_at: Instant::now(),
        processes,
        scan_time: start.elapsed(),
    })
}

/// The last scan, reused while younger than `ttl`, so dashboards polling every
/// second and the resolver share one `/proc` walk.
pub struct ScanCache {
    proc_root: PathBuf,
    ttl: Duration,
    last: Mutex<Option<Arc<ProcSnapshot>>>,
    health: Mutex<ScanHealth>,
}

/// How the `/proc` scans have gone: failures are counted and the last one
/// kept, for `/health`, Prometheus and the alerts.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ScanHealth {
    /// Scans that failed since start (the last good resolution was kept).
    pub failures_total: u64,
    /// The last failure (RFC3339) and its error; null when none.
    pub last_failure_at: Option<String>,
    pub last_error: Option<String>,
    /// The last scan failed (the next one is retried at the next round).
    pub failing: bool,
    /// Failures in a row up to now (0 when the last scan succeeded).
    pub consecutive_failures: u64,
}

impl ScanCache {
    pub fn new(proc_root: impl Into<PathBuf>, ttl: Duration) -> Self {
        Self {
            proc_root: proc_root.into(),
            ttl,
            last: Mutex::new(None),
            health: Mutex::default(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A snapshot no older than the cache's time to live.
    pub fn get(&self) -> io::Result<Arc<ProcSnapshot>> {
        self.get_within(self.ttl)
    }

    /// A snapshot no older than `max_age` (zero: always a new scan).
    pub fn get_within(&self, max_age: Duration) -> io::Result<Arc<ProcSnapshot>> {
        // Held across the scan: concurrent callers wait for one walk instead of
        // each doing their own.
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = last.as_ref() {
            if !max_age.is_zero() && s.taken_at.elapsed() < max_age {
                return Ok(s.clone());
            }
        }
        let scanned = scan_all(&self.proc_root);
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.failing = scanned.is_err();
        let fresh = match scanned {
            Ok(s) => {
                health.consecutive_failures = 0;
                Arc::new(s)
            }
            Err(e) => {
                health.failures_total += 1;
                health.consecutive_failures += 1;
                health.last_failure_at = Some(crate::timefmt::now());
                health.last_error = Some(e.to_string());
                return Err(e);
            }
        };
        *last = Some(fresh.clone());
        Ok(fresh)
    }

    pub fn health(&self) -> ScanHealth {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "65979e01-4cb1-4d08-9dba-45530253ff00";
    const CID: &str = "5148a146ffbbe8672f11494843d54b8769d2eccc677c02027fc09aba192e3c67";

    #[test]
    fn skips_non_pods_and_conmon() {
        let uid_us = UID.replace('-', "_");
        assert_eq!(
            parse_cgroup("0::/user.slice/user-0.slice/session-1.scope\n"),
            None
        );
        assert_eq!(parse_cgroup("0::/\n"), None);
        assert_eq!(parse_cgroup("garbage\n0::/\n"), None);
        assert_eq!(
            parse_cgroup(&format!(
                "0::/kubepods.slice/kubepods-pod{uid_us}.slice/crio-conmon-{CID}.scope\n"
            )),
            None
        );
        assert_eq!(
            parse_cgroup(&format!("0::/kubepods/pod{UID}\n")),
            Some(PodRef {
                pod_uid: UID.into(),
                container_id: String::new()
            })
        );
    }

    #[test]
    fn stat_with_odd_command() {
        assert_eq!(
            parse_stat("42 (a) b (c)) S 7 42 42 0 -1 4194560 1"),
            Some(("a) b (c)".into(), 7, false))
        );
        assert_eq!(
            parse_stat("2 (kthreadd) S 0 0 0 0 -1 2129984 0"),
            Some(("kthreadd".into(), 0, true))
        );
        assert_eq!(parse_stat("2 (kthreadd) S 0"), None);
    }

    #[test]
    fn start_ticks_name_this_process() {
        let me = std::process::id();
        let proc_root = Path::new("/proc");
        let mine = start_ticks(proc_root, me).expect("our own start time");
        assert_eq!(start_ticks(proc_root, me), Some(mine));
        // init started before us.
        assert!(start_ticks(proc_root, 1).expect("init's start time") <= mine);
        assert_eq!(start_ticks(proc_root, u32::MAX), None);
        assert!(boot_id(proc_root).is_some_and(|b| b.len() == 36));
        assert!(!is_kernel_thread(proc_root, me));
    }

    #[test]
    fn scans_a_fake_proc_root() {
        let root = std::env::temp_dir().join(format!("scx_pilot_pods_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let add = |pid: u32, comm: &str, ppid: u32, cgroup: &str| {
            let d = root.join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("stat"),
                format!("{pid} ({comm}) S {ppid} 1 1 0 -1 4194560 0"),
            )
            .unwrap();
            std::fs::write(d.join("cgroup"), cgroup).unwrap();
        };
        add(20, "loki", 10, &format!("0::/kubepods/pod{UID}/{CID}\n"));
        add(11, "pause", 10, &format!("0::/kubepods/pod{UID}/{CID}\n"));
        add(30, "bash", 1, "0::/user.slice\n");
        // Exited between listing and reading: no stat.
        std::fs::create_dir_all(root.join("40")).unwrap();
        std::fs::create_dir_all(root.join("self")).unwrap();
        let all = scan_all(&root).unwrap();
        let pods = all.pods(None);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(all.processes.len(), 3);
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].pod_uid, UID);
        assert_eq!(pods[0].container_id, CID);
        let pids: Vec<u32> = pods[0].processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![11, 20]);
        assert_eq!(pods[0].processes[1].command, "loki");
        assert_eq!(pods[0].processes[1].ppid, 10);
    }

    #[test]
    fn cache_reuses_young_scans() {
        let cache = ScanCache::new("/proc", Duration::from_secs(60));
        let a = cache.get().unwrap();
        let b = cache.get().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache.get_within(Duration::ZERO).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(a.processes.iter().any(|p| p.pid == std::process::id()));
    }
}
