//! The Kubernetes pod watcher of the real binary against a stub API server
//! (real HTTP list/watch on 127.0.0.1, see fixtures/kube_stub.rs) with the
//! real kube client: a kubeconfig points the agent at the stub; pods are real
//! cgroups on this host with a process in them. Checked through the agent's
//! HTTP API: the node's field selector, /health, pod names in
//! /api/v1/pods/pids, a selector strategy following ADDED / MODIFIED /
//! DELETED, the last pods kept while the API server fails, recovery, and a
//! 410 Gone answered by a re-list. Needs root (cgroups).

#[path = "fixtures/agent.rs"]
mod agent;
#[path = "fixtures/kube_stub.rs"]
mod kube_stub;

use std::path::Path;
use std::time::{Duration, Instant};

use agent::{hierarchies, ids, kubelet_path, wait_for, Agent, PodCgroup, TempDir};
use kube_stub::{pod, StubApi};
use serde_json::{json, Value};

const NODE: &str = "node-a";
const SLICE_NS: u64 = 20_000_000;

fn covered(a: &Agent) -> Vec<(u64, u64)> {
    a.get("/api/v1/scheduling/strategies")["scheduling"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["pid"].as_u64().unwrap(),
                r["execution_time"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn has(a: &Agent, pid: u32) -> bool {
    covered(a)
        .iter()
        .any(|&(p, e)| p == pid as u64 && e == SLICE_NS)
}

/// Poll the strategies tightly until `want` holds; the time since `since`
/// (when the stub made the watch event available). Panics after 5 s.
fn latency(a: &Agent, since: Instant, what: &str, want: impl Fn(&Agent) -> bool) -> Duration {
    let deadline = since + Duration::from_secs(5);
    loop {
        if want(a) {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not visible within 5 s: {:?}\n{}",
            covered(a),
            a.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The pod watcher's requests (the cluster strategies' watcher has its own).
fn pod_requests(stub: &StubApi) -> Vec<kube_stub::Request> {
    stub.requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/pods")
        .collect()
}

fn kube(a: &Agent) -> Value {
    a.get("/health")["components"]["kubernetes"].clone()
}

/// The pod entry of `uid` in /api/v1/pods/pids.
fn pod_entry(a: &Agent, uid: &str) -> Value {
    let body = a.get("/api/v1/pods/pids");
    body["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pod_uid"] == uid)
        .cloned()
        .unwrap_or_else(|| panic!("pod {uid} not in {body}"))
}

fn wait_kube(a: &Agent, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_for(Duration::from_secs(15), || {
        let k = kube(a);
        f(&k).then_some(k)
    })
    .unwrap_or_else(|| {
        panic!(
            "{what}: /health kubernetes is {}\n{}",
            kube(a),
            a.stderr_text()
        )
    })
}

#[test]
fn pods_from_a_watched_api_server_drive_selectors_and_survive_failures() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root (cgroups)");
    let h = hierarchies()
        .into_iter()
        .next()
        .expect("a cgroup hierarchy");

    // The target pod, and a static pod whose cgroup carries its config hash.
    let (uid, cid) = ids(91);
    let mut cg = PodCgroup::create(&h, "kube", &kubelet_path(&h, &uid, &cid));
    let pid = cg.spawn(Path::new("sleep"), &["120"]);
    let (mirror_uid, cid2) = ids(92);
    let hash: String = cid2[..32].to_string();
    let mut static_cg = PodCgroup::create(&h, "kubestatic", &kubelet_path(&h, &hash, &cid2));
    let static_pid = static_cg.spawn(Path::new("sleep"), &["120"]);

    let stub = StubApi::start();
    let mut etcd = pod(
        &mirror_uid,
        "etcd-node-a",
        "kube-system",
        NODE,
        &[("tier", "control-plane")],
    );
    etcd["metadata"]["annotations"] = json!({ "kubernetes.io/config.hash": hash });
    stub.add(etcd);
    // Another node's pod, labelled like the target: only a field selector
    // keeps it out.
    let (other_uid, _) = ids(93);
    stub.add(pod(&other_uid, "upf-9", "5g", "node-b", &[("nf", "upf")]));

    let state = TempDir::new("kube_watch");
    let kubeconfig = stub.write_kubeconfig(state.path());
    let t_start = Instant::now();
    let a = Agent::start(
        state.path(),
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--node-name",
            NODE,
            "--pods-cache-ms",
            "0",
        ],
    );

    // Connected, with this node's pod only.
    let k = wait_kube(&a, "first list", |k| k["status"] == "ok");
    eprintln!(
        "first list done {:?} after the agent started",
        t_start.elapsed()
    );
    assert_eq!(k["connected"], true, "{k}");
    assert_eq!(k["source"], "kubernetes", "{k}");
    assert_eq!(k["node_name"], NODE, "{k}");
    assert_eq!(
        k["endpoint"].as_str().unwrap().trim_end_matches('/'),
        stub.url(),
        "{k}"
    );
    assert_eq!(k["pods"], 1, "only node-a's pods: {k}");
    assert_eq!(k["failures"], 0, "{k}");
    assert!(k["last_sync_at"].is_string(), "{k}");
    let reqs = pod_requests(&stub);
    assert!(reqs.iter().any(|r| !r.is_watch()), "no list: {reqs:?}");
    for r in &reqs {
        assert_eq!(
            r.query.get("fieldSelector").map(String::as_str),
            Some("spec.nodeName=node-a"),
            "{r:?}"
        );
        assert_eq!(r.authorization, "Bearer stub-token", "{r:?}");
    }
    // The static pod is named through its config hash.
    let e = pod_entry(&a, &hash);
    assert_eq!(
        (&e["pod_name"], &e["namespace"]),
        (&json!("etcd-node-a"), &json!("kube-system"))
    );
    assert!(
        e["processes"].to_string().contains(&static_pid.to_string()),
        "{e}"
    );
    // The target pod's process is seen, but the pod is not known yet.
    assert_eq!(pod_entry(&a, &uid)["pod_name"], "");

    let (code, body) = a.post(
        "/api/v1/scheduling/strategies",
        &json!({"strategies": [
            {"priority": true, "execution_time": SLICE_NS, "selectors": [{"key": "nf", "value": "upf"}]},
        ]}),
    );
    assert_eq!(code, 200, "{body}");
    assert!(!has(&a, pid), "not in a known pod yet: {:?}", covered(&a));

    // ADDED: the selector resolves to the pod's process.
    let t = stub.add(pod(&uid, "upf-0", "5g", NODE, &[("nf", "upf")]));
    let added = latency(&a, t, "ADDED", |a| has(a, pid));
    eprintln!("watch event -> strategy visible: ADDED {added:?}");
    let e = pod_entry(&a, &uid);
    assert_eq!(
        (&e["pod_name"], &e["namespace"]),
        (&json!("upf-0"), &json!("5g"))
    );
    assert_eq!(kube(&a)["pods"], 2);
    let w = pod_requests(&stub)
        .into_iter()
        .rfind(|r| r.is_watch())
        .unwrap();
    assert!(w.query.contains_key("resourceVersion"), "{w:?}");

    // MODIFIED labels: out of the selector, then back in.
    let t = stub.relabel(&uid, &[("nf", "smf")]);
    let modified = latency(&a, t, "MODIFIED out", |a| !has(a, pid));
    eprintln!("watch event -> strategy visible: MODIFIED (out) {modified:?}");
    let t = stub.relabel(&uid, &[("nf", "upf"), ("tier", "data")]);
    let back = latency(&a, t, "MODIFIED in", |a| has(a, pid));
    eprintln!("watch event -> strategy visible: MODIFIED (in) {back:?}");

    // DELETED: the pod and its resolution are gone.
    let t = stub.delete(&uid);
    let deleted = latency(&a, t, "DELETED", |a| !has(a, pid));
    eprintln!("watch event -> strategy visible: DELETED {deleted:?}");
    assert_eq!(pod_entry(&a, &uid)["pod_name"], "");
    assert_eq!(kube(&a)["pods"], 1);
    let t = stub.add(pod(&uid, "upf-0", "5g", NODE, &[("nf", "upf")]));
    latency(&a, t, "ADDED again", |a| has(a, pid));
    let synced = kube(&a)["last_sync_at"].clone();

    // The API server fails (500 to everything, the watch dropped): the error
    // shows, the last pods are still served.
    let before = stub.requests().len();
    stub.fail(Some(500));
    stub.drop_watches();
    let k = wait_kube(&a, "failure", |k| k["status"] == "error");
    assert_eq!(k["connected"], false, "{k}");
    assert!(
        k["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{k}"
    );
    assert!(k["failures"].as_u64().unwrap() >= 1, "{k}");
    assert_eq!(k["pods"], 2, "{k}");
    eprintln!("while failing: {k}");
    // A few retries later, still serving the last pods.
    wait_kube(&a, "retries", |k| k["failures"].as_u64().unwrap() >= 2);
    assert!(has(&a, pid), "the last pods must stay: {:?}", covered(&a));
    assert_eq!(pod_entry(&a, &uid)["pod_name"], "upf-0");
    assert!(
        a.get("/health")["status"] == "healthy",
        "the agent stays healthy"
    );
    assert!(stub.requests().len() >= before + 2, "retried");
    assert!(k["last_error"].as_str().unwrap().contains("500"), "{k}");
    // A change made meanwhile arrives with the re-list after recovery.
    stub.relabel(&uid, &[("nf", "smf")]);

    // Recovery: "ok" again with a newer sync time, and the missed change.
    let t = Instant::now();
    stub.fail(None);
    let k = wait_kube(&a, "recovery", |k| k["status"] == "ok");
    eprintln!("recovered {:?} after the stub did", t.elapsed());
    assert_eq!(k["connected"], true, "{k}");
    assert_eq!(k["failures"], 0, "{k}");
    assert!(k["last_error"].is_null(), "{k}");
    assert!(
        k["last_sync_at"].as_str() > synced.as_str(),
        "{k} vs {synced}"
    );
    wait_for(Duration::from_secs(3), || (!has(&a, pid)).then_some(()))
        .unwrap_or_else(|| panic!("the change made during the outage: {:?}", covered(&a)));

    // 410 Gone: a change the open watch does not deliver, the history
    // compacted past it, the watch ended; the agent's new watch from its old
    // resourceVersion gets 410 and it lists again (routine: still "ok").
    let lists = pod_requests(&stub).iter().filter(|r| !r.is_watch()).count();
    let synced = kube(&a)["last_sync_at"].clone();
    stub.pause_watches(true);
    let t = stub.relabel(&uid, &[("nf", "upf")]);
    stub.compact();
    stub.end_watches();
    stub.pause_watches(false);
    latency(&a, t, "after 410", |a| has(a, pid));
    let k = kube(&a);
    assert_eq!(
        (&k["status"], &k["failures"]),
        (&json!("ok"), &json!(0)),
        "{k}"
    );
    assert!(
        k["last_sync_at"].as_str() > synced.as_str(),
        "re-listed: {k}"
    );
    assert!(pod_requests(&stub).iter().filter(|r| !r.is_watch()).count() > lists);
    assert!(
        stub.requests().iter().any(|r| r.is_watch()
            && r.query.get("allowWatchBookmarks").map(String::as_str) == Some("true")),
        "bookmarks asked for"
    );

    // The agent stops promptly on SIGTERM with the watcher running.
    let t = Instant::now();
    unsafe { libc::kill(a.child.id() as i32, libc::SIGTERM) };
    let mut a = a;
    let status = wait_for(Duration::from_secs(10), || a.child.try_wait().unwrap())
        .unwrap_or_else(|| panic!("no exit 10 s after SIGTERM\n{}", a.stderr_text()));
    eprintln!("stopped {:?} after SIGTERM ({status})", t.elapsed());
    assert!(status.success(), "{status}\n{}", a.stderr_text());
    drop(cg);
    drop(static_cg);
}

/// Lists that work and watches that fail (RBAC without `watch`, a proxy that
/// cuts long requests): each watcher lists again with a growing backoff, not
/// about once a second (the backoff was reset at every complete list).
#[test]
fn watches_that_keep_failing_back_off_between_lists() {
    let stub = StubApi::start();
    stub.fail_watches(Some(500));
    let state = TempDir::new("kube_backoff");
    let kubeconfig = stub.write_kubeconfig(state.path());
    let _a = Agent::start(
        state.path(),
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--node-name",
            NODE,
        ],
    );
    // Backoffs of at least 0.8, 1.6, 3.2 and 6.4 s: at most four lists of
    // each resource in ten seconds; reset at each list, seven or more.
    std::thread::sleep(Duration::from_secs(10));
    for path in ["/api/v1/pods", kube_stub::STRATEGIES_PATH] {
        let requests: Vec<_> = stub
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect();
        let lists = requests.iter().filter(|r| !r.is_watch()).count();
        let watches = requests.len() - lists;
        assert!(
            watches >= 2,
            "{path}: the watch was tried again ({watches})"
        );
        assert!(
            (2..=5).contains(&lists),
            "{path}: {lists} lists in 10 s with every watch failing"
        );
    }
}
