//! Pod discovery against the real kernel: pod-like cgroups are created on this
//! host (cgroup v2 and a v1 hierarchy where mounted), a sleeping process is
//! moved into each, and both the scanner and the real binary's API must report
//! it with the right pod UID (with dashes) and container ID. Needs root.

#[path = "fixtures/agent.rs"]
mod agent;

use std::path::Path;

use agent::{hierarchies, ids, kubelet_path, write_pods_file, Agent, PodCgroup, TempDir};

#[test]
fn real_pod_cgroups_are_found_by_the_scanner_and_the_api() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test creates cgroups and must run as root (make test does)"
    );
    let hs = hierarchies();
    assert!(!hs.is_empty(), "no cgroup hierarchy mounted");
    let mut pods = Vec::new();
    for (i, h) in hs.iter().enumerate() {
        let (uid, cid) = ids(i as u32 + 10);
        let mut cg = PodCgroup::create(h, &format!("scan{i}"), &kubelet_path(h, &uid, &cid));
        let pid = cg.spawn(Path::new("sleep"), &["60"]);
        pods.push((h.clone(), uid, cid, pid, cg));
    }

    // The scanner.
    let snap = scx_pilot::pods::scan_all(Path::new("/proc")).unwrap();
    for (h, uid, cid, pid, _) in &pods {
        let p = snap
            .processes
            .iter()
            .find(|p| p.pid == *pid)
            .unwrap_or_else(|| panic!("{h:?}: pid {pid} not scanned"));
        let pod = p
            .pod
            .as_ref()
            .unwrap_or_else(|| panic!("{h:?}: no pod for {pid}"));
        assert_eq!((&pod.pod_uid, &pod.container_id), (uid, cid), "{h:?}");
        assert_eq!(p.command, "sleep");
        assert_eq!(p.ppid, std::process::id());
    }

    // The API of the real binary, with names from a pods file.
    let state = TempDir::new("pods_cgroup");
    let file = state.path().join("pods.json");
    let meta: Vec<(String, String)> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| (p.1.clone(), format!("web-{i}")))
        .collect();
    let entries: Vec<agent::FilePod> = meta
        .iter()
        .map(|(uid, name)| (uid.as_str(), name.as_str(), "shop", &[][..]))
        .collect();
    write_pods_file(&file, &entries);
    let agent = Agent::start(
        state.path(),
        &[
            "--pods-cache-ms",
            "0",
            "--pods-file",
            file.to_str().unwrap(),
        ],
    );
    let body = agent.get("/api/v1/pods/pids");
    assert_eq!(body["success"], true);
    for (i, (h, uid, cid, pid, _)) in pods.iter().enumerate() {
        let entry = body["pods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pod_uid"] == uid.as_str())
            .unwrap_or_else(|| panic!("{h:?}: pod {uid} missing from {body}"));
        assert_eq!(entry["container_id"], cid.as_str());
        assert_eq!(entry["pod_name"], format!("web-{i}"));
        assert_eq!(entry["namespace"], "shop");
        let procs = entry["processes"].as_array().unwrap();
        assert_eq!(procs.len(), 1, "{entry}");
        assert_eq!(procs[0]["pid"], *pid);
        assert_eq!(procs[0]["command"], "sleep");
        assert_eq!(procs[0]["ppid"], std::process::id());
    }
    drop(agent);
    // Cleanup happens in PodCgroup's drop; check that it did.
    let dirs: Vec<_> = pods.iter().map(|p| p.4.leaf.clone()).collect();
    drop(pods);
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}
