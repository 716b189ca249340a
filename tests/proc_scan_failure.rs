//! A `/proc` scan that cannot read a live process (here: its `stat` is not a
//! readable file, as when the agent runs out of file descriptors) never
//! shrinks a strategy's resolution: the agent keeps the last good one, says so
//! in /health, /metrics and the alerts, and resolves anew once scans succeed.
//! A process that really exits still leaves the resolution.

#[path = "fixtures/agent.rs"]
mod agent;

use std::path::Path;
use std::time::Duration;

use agent::{wait_for, Agent, TempDir};
use serde_json::{json, Value};

fn add_process(root: &Path, pid: u32, comm: &str) {
    let d = root.join(pid.to_string());
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("stat"), format!("{pid} ({comm}) S 1 1 1 0 -1 0")).unwrap();
    std::fs::write(d.join("cgroup"), "0::/system.slice/worker.service\n").unwrap();
}

fn resolved_pids(a: &Agent) -> Vec<u64> {
    let body = a.get("/api/v1/scheduling/strategies");
    let mut pids: Vec<u64> = body["scheduling"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|s| s["pid"].as_u64().unwrap())
        .collect();
    pids.sort_unstable();
    pids
}

fn scan_health(a: &Agent) -> Value {
    a.get("/health")["components"]["proc_scan"].clone()
}

#[test]
fn a_failed_scan_keeps_the_last_resolution() {
    let proc_dir = TempDir::new("scanfail-proc");
    let root = proc_dir.path();
    add_process(root, 101, "worker");
    add_process(root, 102, "worker");
    add_process(root, 200, "other");
    let alerts = TempDir::new("scanfail-alerts");
    let alerts_file = alerts.join("alerts.json");
    std::fs::write(
        &alerts_file,
        json!({"proc_scan_failing": {"for_secs": 0}}).to_string(),
    )
    .unwrap();
    let root_arg = root.display().to_string();
    let alerts_arg = alerts_file.display().to_string();
    let a = Agent::start_temp(
        "scanfail",
        &[
            "--auth",
            "none",
            "--proc-root",
            &root_arg,
            "--rescan-interval-ms",
            "100",
            "--pods-cache-ms",
            "0",
            "--alerts-file",
            &alerts_arg,
            "--sample-interval-ms",
            "200",
        ],
    );
    let (code, body) = a.post(
        "/api/v1/scheduling/strategies",
        &json!({"strategies": [{"priority": true, "execution_time": 2_000_000, "command_regex": "^worker$"}]}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(resolved_pids(&a), [101, 102]);
    assert_eq!(scan_health(&a)["failures_total"], 0);

    // PID 101 becomes unreadable (EISDIR where its stat should be).
    let stat = root.join("101/stat");
    std::fs::remove_file(&stat).unwrap();
    std::fs::create_dir(&stat).unwrap();
    let failing = wait_for(Duration::from_secs(10), || {
        let h = scan_health(&a);
        (h["failing"] == true && h["failures_total"].as_u64() >= Some(3)).then_some(h)
    })
    .expect("the scan failures are reported in /health");
    assert!(
        failing["last_error"].as_str().unwrap().contains("101/stat"),
        "{failing}"
    );
    // Many rounds later: the resolution is the last good one.
    assert_eq!(resolved_pids(&a), [101, 102]);
    let metrics = ureq::get(&a.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("scx_pilot_proc_scan_failing 1"),
        "{metrics}"
    );
    let alert = wait_for(Duration::from_secs(10), || {
        let alerts = a.get("/api/v1/alerts");
        alerts["data"]["active"]
            .as_array()?
            .iter()
            .find(|x| x["name"] == "proc_scan_failing")
            .cloned()
    })
    .expect("proc_scan_failing fires");
    assert!(alert["message"]
        .as_str()
        .unwrap()
        .contains("last resolution"));

    // Readable again, and PID 102 exits: the resolution follows.
    std::fs::remove_dir(&stat).unwrap();
    std::fs::write(&stat, "101 (worker) S 1 1 1 0 -1 0").unwrap();
    std::fs::remove_dir_all(root.join("102")).unwrap();
    wait_for(Duration::from_secs(10), || {
        (resolved_pids(&a) == [101]).then_some(())
    })
    .expect("resolved anew once the scan succeeds");
    assert_eq!(scan_health(&a)["failing"], false);
}
