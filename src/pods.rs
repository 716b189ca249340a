//! Pod -> PID discovery from `/proc/*/cgroup` (first, simple version).
//!
//! Recognises the common kubelet layouts: cgroupfs (`/kubepods/<qos>/pod<uid>/<id>`)
//! and systemd (`kubepods-<qos>-pod<uid_with_underscores>.slice/<runtime>-<id>.scope`),
//! cgroup v1 and v2. Pod names and namespaces are left empty, as in the seed,
//! until the Kubernetes integration fills them.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::Serialize;
use utoipa::ToSchema;

/// A process running in a pod's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PodProcess {
    pub pid: u32,
    /// Command name (`/proc/PID/comm`).
    pub command: String,
    /// Parent PID.
    pub ppid: u32,
}

/// One container of a pod with its processes (the seed's PodInfo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PodInfo {
    /// Name of the pod (empty until Kubernetes metadata is available).
    pub pod_name: String,
    /// Namespace of the pod (empty until Kubernetes metadata is available).
    pub namespace: String,
    /// Pod UID, with dashes.
    pub pod_uid: String,
    /// Container ID (64 hex digits), empty for processes in the pod's own cgroup.
    pub container_id: String,
    pub processes: Vec<PodProcess>,
}

/// Pod UID and container ID found in a cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub pod_uid: String,
    pub container_id: String,
}

fn is_uid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The pod UID in one path segment such as `pod<uid>` or
/// `kubepods-burstable-pod<uid_with_underscores>.slice`.
fn segment_pod_uid(seg: &str) -> Option<String> {
    let seg = seg.strip_suffix(".slice").unwrap_or(seg);
    let rest = match seg.strip_prefix("pod") {
        Some(r) => r,
        None => &seg[seg.rfind("-pod")? + 4..],
    };
    let uid = rest.replace('_', "-");
    is_uid(&uid).then_some(uid)
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
    let clean_boundary = before.is_empty() || before.ends_with(['-', ':']);
    (clean_boundary && id.bytes().all(|c| c.is_ascii_hexdigit())).then(|| id.to_string())
}

/// Find the pod (and container) in the contents of a `/proc/PID/cgroup` file.
pub fn parse_cgroup(contents: &str) -> Option<PodRef> {
    for line in contents.lines() {
        let path = line.splitn(3, ':').nth(2)?;
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        // The ':cri-containerd:' form joins pod and container in one segment.
        let segs: Vec<&str> = segs
            .iter()
            .flat_map(|s| match s.split_once(":cri-containerd:") {
                Some((pod, id)) => vec![pod, id],
                None => vec![*s],
            })
            .collect();
        for (i, seg) in segs.iter().enumerate() {
            if let Some(pod_uid) = segment_pod_uid(seg) {
                let container_id = match segs.get(i + 1) {
                    // None for a conmon or other helper cgroup: not a container process.
                    Some(next) => segment_container_id(next)?,
                    None => String::new(),
                };
                return Some(PodRef {
                    pod_uid,
                    container_id,
                });
            }
        }
    }
    None
}

fn read_ppid(stat: &str) -> Option<u32> {
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Scan `proc_root` for processes in pods, grouped by pod and container and
/// sorted. Processes that exit during the scan are skipped.
pub fn scan(proc_root: &Path) -> io::Result<Vec<PodInfo>> {
    let mut groups: BTreeMap<(String, String), Vec<PodProcess>> = BTreeMap::new();
    for entry in std::fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        let Ok(cgroup) = std::fs::read_to_string(dir.join("cgroup")) else {
            continue;
        };
        let Some(pod) = parse_cgroup(&cgroup) else {
            continue;
        };
        let command = std::fs::read_to_string(dir.join("comm"))
            .map(|c| c.trim_end_matches('\n').to_string())
            .unwrap_or_default();
        let Some(ppid) = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| read_ppid(&s))
        else {
            continue;
        };
        groups
            .entry((pod.pod_uid, pod.container_id))
            .or_default()
            .push(PodProcess { pid, command, ppid });
    }
    Ok(groups
        .into_iter()
        .map(|((pod_uid, container_id), mut processes)| {
            processes.sort_by_key(|p| p.pid);
            PodInfo {
                pod_name: String::new(),
                namespace: String::new(),
                pod_uid,
                container_id,
                processes,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "65979e01-4cb1-4d08-9dba-45530253ff00";
    const CID: &str = "5148a146ffbbe8672f11494843d54b8769d2eccc677c02027fc09aba192e3c67";

    #[test]
    fn parses_common_layouts() {
        let uid_us = UID.replace('-', "_");
        let cases = [
            format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_us}.slice/cri-containerd-{CID}.scope\n"),
            format!("0::/kubepods/besteffort/pod{UID}/{CID}\n"),
            format!("12:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}\n1:name=systemd:/x\n"),
            format!("0::/kubepods.slice/kubepods-pod{uid_us}.slice/docker-{CID}.scope\n"),
            format!("0::/system.slice/containerd.service/kubepods-burstable-pod{uid_us}.slice:cri-containerd:{CID}\n"),
            format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_us}.slice/crio-{CID}.scope\n"),
        ];
        for c in &cases {
            assert_eq!(
                parse_cgroup(c),
                Some(PodRef {
                    pod_uid: UID.into(),
                    container_id: CID.into()
                }),
                "{c}"
            );
        }
    }

    #[test]
    fn skips_non_pods_and_conmon() {
        let uid_us = UID.replace('-', "_");
        assert_eq!(
            parse_cgroup("0::/user.slice/user-0.slice/session-1.scope\n"),
            None
        );
        assert_eq!(parse_cgroup("0::/\n"), None);
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
    fn ppid_with_odd_command() {
        assert_eq!(read_ppid("42 (a) b (c)) S 7 42 42 0"), Some(7));
    }

    #[test]
    fn scans_a_fake_proc_root() {
        let root = std::env::temp_dir().join(format!("scx_pilot_pods_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let add = |pid: u32, comm: &str, ppid: u32, cgroup: &str| {
            let d = root.join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(d.join("stat"), format!("{pid} ({comm}) S {ppid} 1 1 0")).unwrap();
            std::fs::write(d.join("cgroup"), cgroup).unwrap();
        };
        add(20, "loki", 10, &format!("0::/kubepods/pod{UID}/{CID}\n"));
        add(11, "pause", 10, &format!("0::/kubepods/pod{UID}/{CID}\n"));
        add(30, "bash", 1, "0::/user.slice\n");
        std::fs::create_dir_all(root.join("self")).unwrap();
        let pods = scan(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].pod_uid, UID);
        assert_eq!(pods[0].container_id, CID);
        let pids: Vec<u32> = pods[0].processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![11, 20]);
        assert_eq!(pods[0].processes[1].command, "loki");
        assert_eq!(pods[0].processes[1].ppid, 10);
    }
}
