//! Continuous resolution in the real binary: selector and command_regex
//! strategies follow processes as they start and exit, and pods as their
//! labels change, without any new POST. Pods are real cgroups on this host;
//! labels come from a --pods-file. Needs root.

#[path = "fixtures/agent.rs"]
mod agent;

use std::path::Path;
use std::time::{Duration, Instant};

use agent::{hierarchies, ids, kubelet_path, wait_for, write_pods_file, Agent, PodCgroup, TempDir};
use serde_json::{json, Value};

fn covered(a: &Agent) -> Vec<(u64, u64, bool)> {
    a.get("/api/v1/scheduling/strategies")["scheduling"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["pid"].as_u64().unwrap(),
                r["execution_time"].as_u64().unwrap(),
                r["priority"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn has(a: &Agent, pid: u32, ns: u64) -> bool {
    covered(a)
        .iter()
        .any(|&(p, e, _)| p == pid as u64 && e == ns)
}

#[test]
fn selector_and_regex_strategies_follow_processes_and_labels() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root (cgroups)");
    let h = hierarchies()
        .into_iter()
        .next()
        .expect("a cgroup hierarchy");
    let (uid, cid) = ids(77);
    let mut pod = PodCgroup::create(&h, "cont", &kubelet_path(&h, &uid, &cid));
    let first = pod.spawn(Path::new("sleep"), &["60"]);

    let state = TempDir::new("continuous");
    let file = state.path().join("pods.json");
    write_pods_file(&file, &[(&uid, "upf-0", "5g", &[("nf", "upf")])]);
    // A uniquely named command for the regex strategy (comm is the file name).
    let exe = state.path().join("pilotrx");
    std::fs::copy("/bin/sleep", &exe).unwrap();

    let a = Agent::start(
        state.path(),
        // The default --rescan-interval-ms (1000) must meet the 2 s target.
        &["--pods-file", file.to_str().unwrap()],
    );
    let (code, body) = a.post(
        "/api/v1/scheduling/strategies",
        &json!({"strategies": [
            {"priority": true, "execution_time": 20_000_000, "selectors": [{"key": "nf", "value": "upf"}]},
            {"priority": false, "execution_time": 7_000_000, "command_regex": "^pilotrx$"},
        ]}),
    );
    assert_eq!(code, 200, "{body}");
    // Resolved at POST time already.
    assert!(has(&a, first, 20_000_000), "{:?}", covered(&a));
    let config = a.get("/api/v1/scheduling/strategies/config");
    assert_eq!(config["selectors_supported"], true);
    assert_eq!(
        config["strategies"][0]["resolution"]["pids"],
        json!([first])
    );

    // A new process in the matching pod is covered within 2 s.
    let t = Instant::now();
    let second = pod.spawn(Path::new("sleep"), &["60"]);
    wait_for(Duration::from_secs(2), || {
        has(&a, second, 20_000_000).then_some(())
    })
    .unwrap_or_else(|| panic!("pid {second} not covered within 2 s: {:?}", covered(&a)));
    eprintln!("new pod process covered after {:?}", t.elapsed());

    // A new process matching the regex (outside any pod) too; and inside the
    // pod, the more specific regex strategy wins over the selector.
    let t = Instant::now();
    let mut rx = std::process::Command::new(&exe).arg("60").spawn().unwrap();
    let rx_pid = rx.id();
    let in_pod = pod.spawn(&exe, &["60"]);
    wait_for(Duration::from_secs(2), || {
        (has(&a, rx_pid, 7_000_000) && has(&a, in_pod, 7_000_000)).then_some(())
    })
    .unwrap_or_else(|| panic!("regex PIDs not covered within 2 s: {:?}", covered(&a)));
    eprintln!("new regex processes covered after {:?}", t.elapsed());

    // An exited PID leaves the set.
    let t = Instant::now();
    pod.kill(first);
    let _ = rx.kill();
    let _ = rx.wait();
    wait_for(Duration::from_secs(2), || {
        let c = covered(&a);
        (!c.iter()
            .any(|r| r.0 == first as u64 || r.0 == rx_pid as u64))
        .then_some(())
    })
    .unwrap_or_else(|| panic!("exited PIDs still covered after 2 s: {:?}", covered(&a)));
    eprintln!("exited processes left after {:?}", t.elapsed());

    // A label change takes the pod out of the selector (not out of the regex).
    let t = Instant::now();
    write_pods_file(&file, &[(&uid, "upf-0", "5g", &[("nf", "smf")])]);
    wait_for(Duration::from_secs(3), || {
        (!has(&a, second, 20_000_000)).then_some(())
    })
    .unwrap_or_else(|| panic!("label change not applied: {:?}", covered(&a)));
    assert!(has(&a, in_pod, 7_000_000));
    eprintln!("label change applied after {:?}", t.elapsed());
    let config: Value = a.get("/api/v1/scheduling/strategies/config");
    assert!(
        config["strategies"][0]["resolution"]["note"]
            .as_str()
            .unwrap()
            .contains("labels"),
        "{config}"
    );
}
