//! Cluster strategies (`SchedulingStrategy` resources) through the real
//! binary against the stub API server (fixtures/kube_stub.rs: real HTTP
//! list/watch, server-side apply of status entries merged by node): pods are
//! real cgroups on this host with a process in them. Checked through the
//! agent's HTTP API and the statuses the stub stored: create / change /
//! delete reach the resolved set (the latency from the watch event is
//! printed), pods of another namespace are never matched, a resource whose
//! regex does not compile gets a condition and changes nothing else, a local
//! strategy wins over a cluster one, an API outage keeps the last set (and
//! /health and the alert say so), and two agents on two nodes keep their own
//! status entries. Needs root (cgroups).

#[path = "fixtures/agent.rs"]
mod agent;
#[path = "fixtures/kube_stub.rs"]
mod kube_stub;

use std::path::Path;
use std::time::{Duration, Instant};

use agent::{hierarchies, ids, kubelet_path, wait_for, Agent, PodCgroup, TempDir};
use kube_stub::{pod, StubApi};
use serde_json::{json, Value};

/// The PIDs covered now with their slices.
fn covered(a: &Agent) -> Vec<(u32, u64)> {
    a.get("/api/v1/scheduling/strategies")["scheduling"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["pid"].as_u64().unwrap() as u32,
                r["execution_time"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn slice_of(a: &Agent, pid: u32) -> Option<u64> {
    covered(a).iter().find(|(p, _)| *p == pid).map(|(_, s)| *s)
}

/// Poll until `want` holds; the time since `since` (when the stub made the
/// watch event available). Panics after 10 s.
fn latency(a: &Agent, since: Instant, what: &str, want: impl Fn(&Agent) -> bool) -> Duration {
    let deadline = since + Duration::from_secs(10);
    loop {
        if want(a) {
            let l = since.elapsed();
            println!("cluster strategies: {what}: {l:?} from the watch event to the resolved set");
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not visible within 10 s: {:?}\n{}",
            covered(a),
            a.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn cluster_health(a: &Agent) -> Value {
    a.get("/health")["components"]["cluster_strategies"].clone()
}

fn wait_health(a: &Agent, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_for(Duration::from_secs(20), || {
        let h = cluster_health(a);
        f(&h).then_some(h)
    })
    .unwrap_or_else(|| {
        panic!(
            "{what}: /health cluster_strategies is {}\n{}",
            cluster_health(a),
            a.stderr_text()
        )
    })
}

/// The status entry of `node` the stub stores for `ns/name`, once `f` holds.
fn wait_entry(
    stub: &StubApi,
    ns: &str,
    name: &str,
    node: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(Duration::from_secs(10), || {
        let obj = stub.strategy(ns, name)?;
        let e = obj["status"]["nodes"]
            .as_array()?
            .iter()
            .find(|e| e["node"] == node)?
            .clone();
        f(&e).then_some(e)
    })
    .unwrap_or_else(|| {
        panic!(
            "{ns}/{name}: no matching status entry of {node}: {:?}",
            stub.strategy(ns, name).map(|o| o["status"].clone())
        )
    })
}

fn spec(slice: &str) -> Value {
    json!({"priority": true, "executionTime": slice, "podSelector": {"matchLabels": {"nf": "upf"}}})
}

fn start_agent(stub: &StubApi, state: &TempDir, node: &str, extra: &[&str]) -> Agent {
    let kubeconfig = stub.write_kubeconfig(state.path());
    let mut args = vec![
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--node-name",
        node,
        "--pods-cache-ms",
        "0",
    ];
    args.extend_from_slice(extra);
    Agent::start(state.path(), &args)
}

#[test]
fn cluster_strategies_follow_their_resources_in_their_own_namespace() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root (cgroups)");
    let h = hierarchies()
        .into_iter()
        .next()
        .expect("a cgroup hierarchy");
    // The same labels in two namespaces on this node.
    let (uid, cid) = ids(181);
    let mut cg = PodCgroup::create(&h, "crd-a", &kubelet_path(&h, &uid, &cid));
    let pid = cg.spawn(Path::new("sleep"), &["120"]);
    let (other_uid, other_cid) = ids(182);
    let mut other_cg = PodCgroup::create(&h, "crd-b", &kubelet_path(&h, &other_uid, &other_cid));
    let other_pid = other_cg.spawn(Path::new("sleep"), &["120"]);

    let stub = StubApi::start();
    stub.add(pod(&uid, "upf-0", "5g", "node-a", &[("nf", "upf")]));
    stub.add(pod(&other_uid, "upf-0", "lab", "node-a", &[("nf", "upf")]));
    let dir = TempDir::new("crd_main");
    let rules = dir.path().join("alerts.json");
    std::fs::write(&rules, r#"{"kubernetes_disconnected": {"for_secs": 0}}"#).unwrap();
    let state = TempDir::new("crd_state");
    let a = start_agent(
        &stub,
        &state,
        "node-a",
        &["--alerts-file", rules.to_str().unwrap()],
    );
    wait_health(&a, "connected", |h| {
        h["status"] == "ok" && h["connected"] == true
    });
    assert!(covered(&a).is_empty());

    // Created: the pod of its namespace only.
    let t = stub.add_strategy("5g", "upf", spec("20ms"));
    latency(&a, t, "created", |a| slice_of(a, pid) == Some(20_000_000));
    assert_eq!(slice_of(&a, other_pid), None, "another namespace's pod");
    let config = a.get("/api/v1/scheduling/strategies/config");
    let entry = config["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "5g/upf")
        .unwrap_or_else(|| panic!("{config}"))
        .clone();
    assert_eq!(entry["resolution"]["pids"], json!([pid]), "{entry}");
    assert_eq!(entry["slice_ns"], 20_000_000);

    // This node's status entry, by server-side apply with its own manager.
    let e = wait_entry(&stub, "5g", "upf", "node-a", |e| e["pidCount"] == 1);
    assert_eq!(e["matchedPods"], 1);
    assert_eq!(e["pids"], json!([pid]));
    assert!(e["lastAppliedTime"].is_string(), "{e}");
    // --api-only: nothing takes effect, and the condition says why.
    assert_eq!(e["conditions"][0]["type"], "Applied");
    assert_eq!(e["conditions"][0]["status"], "False");
    assert_eq!(e["conditions"][0]["reason"], "NoScheduler");
    let p = stub.status_patches().into_iter().next().unwrap();
    assert_eq!(p.field_manager, "scx-pilot-node-node-a");
    assert!(p.force, "a node's entry is its own: applied with force");
    assert!(p.content_type.contains("apply-patch"), "{}", p.content_type);

    // Changed, while the API server fails the first status update: it is
    // retried, and the node's entry is never removed meanwhile (it was: the
    // removal patch of the same round went through).
    stub.fail_patches(1);
    let t = stub.update_strategy("5g", "upf", spec("5ms"));
    latency(&a, t, "changed", |a| slice_of(a, pid) == Some(5_000_000));
    wait_entry(&stub, "5g", "upf", "node-a", |e| {
        e["observedGeneration"] == 2
    });
    let removals: Vec<_> = stub
        .status_patches()
        .into_iter()
        .filter(|p| p.name == "upf" && p.body["status"]["nodes"] == json!([]))
        .collect();
    assert!(removals.is_empty(), "entry removed: {removals:?}");

    // A regex that does not compile: a condition, nothing else changes.
    let patches_before = stub.status_patches().len();
    stub.add_strategy(
        "5g",
        "bad",
        json!({"executionTime": "1ms", "podSelector": {}, "commandRegex": "(unclosed"}),
    );
    let e = wait_entry(&stub, "5g", "bad", "node-a", |e| {
        e["conditions"][0]["reason"] == "InvalidSpec"
    });
    assert_eq!(e["conditions"][0]["status"], "False");
    assert!(
        e["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("commandRegex"),
        "{e}"
    );
    assert_eq!(covered(&a), [(pid, 5_000_000)]);
    assert_eq!(
        wait_health(&a, "one invalid", |h| h["invalid"] == 1)["strategies"],
        2
    );
    assert!(
        stub.status_patches()[patches_before..]
            .iter()
            .all(|p| p.name == "bad"),
        "the good resource's entry did not change"
    );

    // A message that quotes a long multi-byte regex is cut on a character
    // boundary (cutting inside one panicked the status reporter, and every
    // later status update of every node was lost with it).
    let wide = format!("({}", "\u{1F600}".repeat(255));
    stub.add_strategy(
        "5g",
        "wide",
        json!({"executionTime": "1ms", "podSelector": {}, "commandRegex": wide}),
    );
    let e = wait_entry(&stub, "5g", "wide", "node-a", |e| {
        e["conditions"][0]["reason"] == "InvalidSpec"
    });
    let message = e["conditions"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("commandRegex does not compile") && message.len() <= 1024,
        "{message}"
    );
    stub.delete_strategy("5g", "wide");
    wait_health(&a, "wide deleted", |h| h["strategies"] == 2);

    // A local strategy wins over the cluster for its PID, and gives it back.
    let (code, body) = a.post(
        "/api/v1/scheduling/strategies",
        &json!({"strategies": [{"priority": false, "execution_time": 3_000_000, "pid": pid}]}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(slice_of(&a, pid), Some(3_000_000));
    let config = a.get("/api/v1/scheduling/strategies/config");
    assert_eq!(config["strategies"][0]["source"], "api");
    let e = wait_entry(&stub, "5g", "upf", "node-a", |e| e["pidCount"] == 0);
    assert!(e["conditions"][0]["message"].as_str().is_some(), "{e}");
    let (code, _) = a.post("/api/v1/scheduling/strategies", &json!({"strategies": []}));
    assert_eq!(code, 200);
    assert_eq!(slice_of(&a, pid), Some(5_000_000));

    // The API server fails: the last cluster set stays, /health and the
    // alert say so.
    stub.fail(Some(500));
    stub.drop_watches();
    wait_health(&a, "disconnected", |h| {
        h["status"] == "error" && h["connected"] == false
    });
    // The pod watcher may notice the outage first: the alert fires with its
    // part, and its message gains the cluster part when that watcher fails too.
    let mut last = None;
    let alert = wait_for(Duration::from_secs(10), || {
        last = a.get("/api/v1/alerts")["data"]["active"]
            .as_array()?
            .iter()
            .find(|x| x["name"] == "kubernetes_disconnected")
            .cloned();
        last.clone().filter(|x| {
            x["message"]
                .as_str()
                .is_some_and(|m| m.contains("2 cluster strategies last known stay applied"))
        })
    });
    assert!(
        alert.is_some(),
        "kubernetes_disconnected fires and says the cluster strategies stay applied; last seen: {last:?}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(covered(&a), [(pid, 5_000_000)], "kept through the outage");

    // Back: a deletion reaches the set.
    stub.fail(None);
    wait_health(&a, "reconnected", |h| h["status"] == "ok");
    let t = stub.delete_strategy("5g", "upf");
    latency(&a, t, "deleted", |a| slice_of(a, pid).is_none());
    assert!(covered(&a).is_empty());
    cg.kill(pid);
    other_cg.kill(other_pid);
}

#[test]
fn two_nodes_keep_their_own_status_entries() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root (cgroups)");
    let h = hierarchies()
        .into_iter()
        .next()
        .expect("a cgroup hierarchy");
    let (uid_a, cid_a) = ids(183);
    let mut cg_a = PodCgroup::create(&h, "crd-na", &kubelet_path(&h, &uid_a, &cid_a));
    let pid_a = cg_a.spawn(Path::new("sleep"), &["120"]);
    let (uid_b, cid_b) = ids(184);
    let mut cg_b = PodCgroup::create(&h, "crd-nb", &kubelet_path(&h, &uid_b, &cid_b));
    let pid_b = cg_b.spawn(Path::new("sleep"), &["120"]);

    let stub = StubApi::start();
    stub.add(pod(&uid_a, "upf-a", "5g", "node-a", &[("nf", "upf")]));
    stub.add(pod(&uid_b, "upf-b", "5g", "node-b", &[("nf", "upf")]));
    stub.add_strategy("5g", "upf", spec("20ms"));
    let (sa, sb) = (TempDir::new("crd_node_a"), TempDir::new("crd_node_b"));
    let a = start_agent(&stub, &sa, "node-a", &[]);
    let b = start_agent(&stub, &sb, "node-b", &[]);

    // Each agent covers the pod of its node (they share this host's /proc).
    let t = Instant::now();
    latency(&a, t, "node-a", |a| covered(a) == [(pid_a, 20_000_000)]);
    latency(&b, t, "node-b", |b| covered(b) == [(pid_b, 20_000_000)]);
    let ea = wait_entry(&stub, "5g", "upf", "node-a", |e| {
        e["pids"] == json!([pid_a])
    });
    let eb = wait_entry(&stub, "5g", "upf", "node-b", |e| {
        e["pids"] == json!([pid_b])
    });
    assert_eq!(
        (ea["matchedPods"].clone(), eb["matchedPods"].clone()),
        (json!(1), json!(1))
    );

    // Every patch carries its sender's entry only, under its own manager.
    let patches = stub.status_patches();
    for p in &patches {
        let nodes = p.body["status"]["nodes"].as_array().unwrap();
        for e in nodes {
            assert_eq!(
                p.field_manager,
                format!("scx-pilot-node-{}", e["node"].as_str().unwrap()),
                "{:?}",
                p.body
            );
        }
    }
    let managers: std::collections::BTreeSet<_> =
        patches.iter().map(|p| p.field_manager.as_str()).collect();
    assert_eq!(managers.len(), 2, "{managers:?}");

    // A change on one node leaves the other's entry alone.
    cg_b.kill(pid_b);
    wait_entry(&stub, "5g", "upf", "node-b", |e| e["pidCount"] == 0);
    let status = stub.strategy("5g", "upf").unwrap()["status"].clone();
    let entries = status["nodes"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{status}");
    assert_eq!(
        entries.iter().find(|e| e["node"] == "node-a").unwrap()["pids"],
        json!([pid_a])
    );
    drop((a, b));
    cg_a.kill(pid_a);
}

#[test]
fn a_cluster_without_the_crd_is_not_an_outage() {
    let stub = StubApi::start();
    stub.without_crd(true);
    let dir = TempDir::new("crd_absent");
    let rules = dir.path().join("alerts.json");
    std::fs::write(&rules, r#"{"kubernetes_disconnected": {"for_secs": 0}}"#).unwrap();
    let state = TempDir::new("crd_absent_state");
    let a = start_agent(
        &stub,
        &state,
        "node-a",
        &["--alerts-file", rules.to_str().unwrap()],
    );
    let h = wait_health(&a, "not installed", |h| h["status"] == "not installed");
    assert_eq!(h["failures"], 0, "{h}");
    assert_eq!(a.get("/health")["status"], "healthy");
    std::thread::sleep(Duration::from_millis(1500));
    let active = a.get("/api/v1/alerts")["data"]["active"].clone();
    assert_eq!(active, json!([]), "{}", a.stderr_text());
    assert!(
        a.stderr_text().contains("CRD is not installed"),
        "{}",
        a.stderr_text()
    );
}
