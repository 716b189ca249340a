//! Alerts through the real binary (`--api-only` on the host):
//! - `--alerts-file` is checked at start: a bad file stops the agent with a
//!   message naming the field, a good one is used;
//! - a strategy whose command_regex matches no process fires
//!   `strategy_no_pids` after the file's 1 s, and resolves once a process
//!   with that name runs; both events reach a webhook receiver (a plain
//!   TcpListener here) as JSON, and the API and `/metrics` show them;
//! - an external scheduler's `nr_sched_congested` rate fires and resolves;
//! - `kubernetes_disconnected` fires while a stub Kubernetes API server
//!   (fixtures/kube_stub.rs, real list/watch) fails, and resolves after it
//!   recovers;
//! - a webhook that accepts and never answers, and one that refuses
//!   connections, do not hold the API, the evaluation or the shutdown, and
//!   failed attempts are counted.

#[path = "fixtures/agent.rs"]
mod agent;
#[path = "fixtures/kube_stub.rs"]
mod kube_stub;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent::{wait_for, Agent, TempDir};
use serde_json::{json, Value};

/// Run the agent with `args` until it exits (killed after 20 s: then it
/// accepted what it should have refused). Returns (exit code, stderr).
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let state = TempDir::new("alerts_exit");
    let mut child = agent::command(state.path())
        .args(["--api-only", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (code, stderr)
}

/// Write the rules `rules` (an `--alerts-file`'s JSON) to `dir/alerts.json`
/// and start an agent (temporary state directory `tag`) with that file and
/// `extra` arguments.
fn start_with_rules(dir: &TempDir, tag: &str, rules: &str, extra: &[&str]) -> Agent {
    let file = dir.path().join("alerts.json");
    std::fs::write(&file, rules).unwrap();
    let mut args = vec!["--alerts-file", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    Agent::start_temp(tag, &args)
}

/// The agent's Prometheus text (`GET /metrics`).
fn metrics_text(agent: &Agent) -> String {
    ureq::get(&agent.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

#[test]
fn alerts_file_is_checked_at_start() {
    let dir = TempDir::new("alerts_file");
    let cases = [
        (
            r#"{"strategy_no_pids": {"for_secs": 99999999}}"#,
            "strategy_no_pids.for_secs: must be within 0..=604800",
        ),
        (
            r#"{"priority_pod_wait": {"max_wait_ms": 10}}"#,
            "priority_pod_wait.max_wait_ms: unknown field `max_wait_ms`",
        ),
        (
            r#"{"sched_congested": {"max_per_s": -5}}"#,
            "sched_congested.max_per_s: must be a finite number >= 0",
        ),
        (
            r#"{"kubernetes_disconnected": {"severity": "page"}}"#,
            "kubernetes_disconnected.severity: unknown variant `page`",
        ),
        (
            r#"{"recent_max": 0}"#,
            "recent_max: must be within 1..=10000",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.json"));
        std::fs::write(&path, text).unwrap();
        let (code, stderr) = run_to_exit(&["--alerts-file", path.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{text}: exit {code:?}, stderr {stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains(path.to_str().unwrap()),
            "{text}: stderr lacks {expected:?} and the path:\n{stderr}"
        );
    }
    let (code, stderr) = run_to_exit(&["--alerts-file", "/nonexistent/alerts.json"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("/nonexistent/alerts.json"), "{stderr}");
    let (code, stderr) = run_to_exit(&["--alert-webhook", "ftp://example.com/"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("http:// or https://"), "{stderr}");

    // A good file (with every rule named) is accepted and served.
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        json!({
            "scheduler_detached": {"for_secs": 0, "severity": "critical"},
            "scheduler_restarted": {"hold_secs": 60},
            "sched_congested": {"max_per_s": 50, "for_secs": 0},
            "failed_dispatches": {"enabled": false},
            "strategy_no_pids": {"for_secs": 30, "severity": "info"},
            "priority_pod_wait": {"max_avg_wait_us_per_timeslice": null, "max_wait_ms_per_s": 100},
            "kubernetes_disconnected": {"for_secs": 5},
            "recent_max": 10
        })
        .to_string(),
    )
    .unwrap();
    let agent = Agent::start_temp("alerts_good", &["--alerts-file", good.to_str().unwrap()]);
    let body = agent.get("/api/v1/alerts");
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["data"]["active"], json!([]));
    assert_eq!(body["data"]["recent"], json!([]));
    // The disabled rule has no series; the others carry the file's severities.
    let metrics = metrics_text(&agent);
    assert!(
        !metrics.contains("alert=\"failed_dispatches\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("scx_pilot_alert_firing{alert=\"strategy_no_pids\",severity=\"info\"} 0"),
        "{metrics}"
    );
}

/// A webhook receiver: answers 200 to every POST and hands over the bodies.
fn receiver() -> (String, crossbeam_channel::Receiver<Value>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts-hook", l.local_addr().unwrap());
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut request_line = String::new();
                    if r.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0;
                    let mut content_type = String::new();
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                        if let Some(v) = lower.strip_prefix("content-type:") {
                            content_type = v.trim().to_string();
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    assert!(
                        request_line.starts_with("POST /alerts-hook "),
                        "{request_line}"
                    );
                    assert_eq!(content_type, "application/json");
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                    let _ = tx.send(serde_json::from_slice(&body).unwrap());
                }
            });
        }
    });
    (url, rx)
}

fn rfc3339(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("{v}")))
        .unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// The next webhook event for `name`, skipping others.
fn next_event(rx: &crossbeam_channel::Receiver<Value>, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no webhook event for {name}"));
        if ev["alert"]["name"] == name {
            return ev;
        }
    }
}

#[test]
fn strategy_without_pids_fires_and_resolves_through_the_webhook() {
    let (url, events) = receiver();
    let dir = TempDir::new("alerts_hook");
    let agent = start_with_rules(
        &dir,
        "alerts_hook",
        r#"{"strategy_no_pids": {"for_secs": 1}}"#,
        &[
            "--alert-webhook",
            &url,
            "--sample-interval-ms",
            "200",
            "--rescan-interval-ms",
            "200",
        ],
    );
    // A name no process has yet (comm is the executable's file name).
    let name = format!("alrt{}", std::process::id() % 100_000);
    let (code, body) = agent.post(
        "/api/v1/scheduling/strategies",
        &json!({"strategies": [{"priority": true, "execution_time": 20000000,
                                "command_regex": format!("^{name}$")}]}),
    );
    assert_eq!(code, 200, "{body}");
    let posted = chrono::Utc::now();

    let fired = next_event(&events, "strategy_no_pids");
    assert_eq!(fired["event"], "firing", "{fired}");
    let a = &fired["alert"];
    assert_eq!(a["state"], "firing");
    assert_eq!(a["severity"], "warning");
    assert_eq!(a["labels"]["strategy_index"], "0");
    assert_eq!(a["labels"]["target"], format!("command_regex ^{name}$"));
    assert!(
        a["message"]
            .as_str()
            .unwrap()
            .contains("resolves to no PID"),
        "{a}"
    );
    assert_eq!(a["resolved_at"], Value::Null);
    assert_eq!(fired["agent"]["service"], "scx_pilot");
    rfc3339(&fired["timestamp"]);
    let since = rfc3339(&a["since"]);
    let fired_at = rfc3339(&a["fired_at"]);
    // It held for the file's 1 s before firing (second-resolution timestamps).
    assert!(fired_at.timestamp() - since.timestamp() >= 1, "{a}");
    assert!(since.timestamp() >= posted.timestamp() - 1, "{a}");

    let body = agent.get("/api/v1/alerts");
    let active = body["data"]["active"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{body}");
    assert_eq!(active[0]["name"], "strategy_no_pids");
    let metrics = metrics_text(&agent);
    assert!(
        metrics
            .contains("scx_pilot_alert_firing{alert=\"strategy_no_pids\",severity=\"warning\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "scx_pilot_alerts_fired_total{alert=\"strategy_no_pids\",severity=\"warning\"} 1"
    ));
    assert!(metrics.contains("scx_pilot_strategy_pids{index=\"0\"} 0"));

    // A process of that name: the strategy covers it, the alert resolves.
    let exe = dir.path().join(&name);
    std::fs::copy("/bin/sleep", &exe).unwrap();
    let mut child = Command::new(&exe).arg("60").spawn().unwrap();
    let resolved = next_event(&events, "strategy_no_pids");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(resolved["event"], "resolved", "{resolved}");
    let r = &resolved["alert"];
    assert_eq!(r["state"], "resolved");
    assert_eq!(r["since"], a["since"]);
    assert!(rfc3339(&r["resolved_at"]) >= fired_at, "{r}");

    // The webhook's receiver has the event before the agent has read the
    // receiver's answer and counted the delivery: wait for the count.
    let body = wait_for(Duration::from_secs(10), || {
        let body = agent.get("/api/v1/alerts");
        (body["data"]["webhook"]["delivered"] == 2).then_some(body)
    })
    .unwrap_or_else(|| agent.get("/api/v1/alerts"));
    assert_eq!(body["data"]["active"], json!([]), "{body}");
    let recent = body["data"]["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 1, "{body}");
    assert_eq!(recent[0]["name"], "strategy_no_pids");
    assert_eq!(recent[0]["state"], "resolved");
    assert_eq!(body["data"]["webhook"]["delivered"], 2, "{body}");
    assert_eq!(body["data"]["webhook"]["failed"], 0);
    let log = agent.stderr_text();
    assert!(log.contains("alert firing: strategy_no_pids"), "{log}");
    assert!(log.contains("alert resolved: strategy_no_pids"), "{log}");
}

fn report(congested: u64) -> Value {
    json!({"usersched_pid": 4242, "nr_queued": 1, "nr_scheduled": 0, "nr_running": 1,
           "nr_online_cpus": 2, "nr_user_dispatches": 10, "nr_kernel_dispatches": 10,
           "nr_cancel_dispatches": 0, "nr_bounce_dispatches": 0,
           "nr_failed_dispatches": 0, "nr_sched_congested": congested})
}

/// Wait until the agent evaluated its rules after now.
fn evaluated_after(agent: &Agent, t: chrono::DateTime<chrono::Utc>) {
    wait_for(Duration::from_secs(20), || {
        let body = agent.get("/api/v1/alerts");
        let at = body["data"]["evaluated_at"].as_str()?;
        (chrono::DateTime::parse_from_rfc3339(at).ok()? > t).then_some(())
    })
    .expect("the rules were evaluated");
}

#[test]
fn external_congestion_rate_fires_and_resolves() {
    let dir = TempDir::new("alerts_ext");
    let agent = start_with_rules(
        &dir,
        "alerts_ext",
        r#"{"sched_congested": {"max_per_s": 10, "for_secs": 0}}"#,
        &["--sample-interval-ms", "200"],
    );
    let firing = |agent: &Agent| -> Vec<Value> {
        agent.get("/api/v1/alerts")["data"]["active"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert_eq!(agent.post("/api/v1/metrics", &report(0)).0, 200);
    evaluated_after(&agent, chrono::Utc::now());
    // 100,000 more within a few seconds: far above 10/s.
    assert_eq!(agent.post("/api/v1/metrics", &report(100_000)).0, 200);
    let active = wait_for(Duration::from_secs(20), || {
        let a = firing(&agent);
        (!a.is_empty()).then_some(a)
    })
    .expect("sched_congested fired");
    assert_eq!(active[0]["name"], "sched_congested");
    assert_eq!(active[0]["labels"]["source"], "external");
    assert_eq!(active[0]["labels"]["usersched_pid"], "4242");
    assert!(active[0]["value"].as_f64().unwrap() > 10.0, "{active:?}");
    // No growth since: the rate is 0 and the alert resolves.
    assert_eq!(agent.post("/api/v1/metrics", &report(100_000)).0, 200);
    wait_for(Duration::from_secs(20), || {
        firing(&agent).is_empty().then_some(())
    })
    .expect("sched_congested resolved");
    let recent = agent.get("/api/v1/alerts")["data"]["recent"].clone();
    assert_eq!(recent[0]["name"], "sched_congested", "{recent}");
}

/// A receiver that accepts connections and never answers (holding them).
fn silent_receiver() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in l.incoming() {
            held.push(conn);
        }
    });
    url
}

/// A URL nothing listens on (connections refused).
fn refusing_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    drop(l);
    url
}

#[test]
fn a_dead_webhook_never_holds_the_agent() {
    let dir = TempDir::new("alerts_dead");
    // The silent receiver keeps each attempt for the longest timeout (60 s):
    // an agent that waited for it would not answer within the clients' 10 s.
    for (kind, url, timeout_ms) in [
        ("silent", silent_receiver(), "60000"),
        ("refused", refusing_url(), "1000"),
    ] {
        let mut agent = start_with_rules(
            &dir,
            "alerts_dead",
            r#"{"strategy_no_pids": {"for_secs": 0}}"#,
            &[
                "--alert-webhook",
                &url,
                "--alert-webhook-timeout-ms",
                timeout_ms,
                "--alert-webhook-retries",
                "10",
                "--sample-interval-ms",
                "200",
            ],
        );
        // Two strategies that cover nothing: two events queue up behind the
        // first delivery attempt.
        let (code, body) = agent.post(
            "/api/v1/scheduling/strategies",
            &json!({"strategies": [
                {"execution_time": 20000000, "command_regex": "^nothing-has-this$"},
                {"execution_time": 20000000, "selectors": [{"key": "no", "value": "pod"}]},
            ]}),
        );
        assert_eq!(code, 200, "{body}");
        let active = wait_for(Duration::from_secs(20), || {
            let b = agent.get("/api/v1/alerts");
            let a = b["data"]["active"].as_array()?.clone();
            (a.len() == 2).then_some(a)
        })
        .unwrap_or_else(|| panic!("{kind}: both alerts fired"));
        assert!(active.iter().all(|a| a["name"] == "strategy_no_pids"));

        // While delivery hangs or retries, the API answers and the rules keep
        // being evaluated.
        let client = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        let get = |path: &str| -> Value {
            client
                .get(&agent.url(path))
                .call()
                .unwrap_or_else(|e| panic!("{kind}: GET {path}: {e}"))
                .into_json()
                .unwrap()
        };
        let first = agent.get("/api/v1/alerts")["data"]["evaluations"]
            .as_u64()
            .unwrap();
        for _ in 0..20 {
            assert_eq!(get("/health")["status"], "healthy");
            let a = get("/api/v1/alerts");
            assert_eq!(a["data"]["active"].as_array().unwrap().len(), 2);
            std::thread::sleep(Duration::from_millis(100));
        }
        let later = agent.get("/api/v1/alerts")["data"]["evaluations"]
            .as_u64()
            .unwrap();
        assert!(later > first, "{kind}: evaluations stopped at {first}");

        let hook = agent.get("/api/v1/alerts")["data"]["webhook"].clone();
        assert_eq!(hook["configured"], true);
        assert_eq!(hook["delivered"], 0, "{kind}: {hook}");
        if kind == "refused" {
            // Refused attempts are counted as they are retried.
            let hook = wait_for(Duration::from_secs(20), || {
                let h = agent.get("/api/v1/alerts")["data"]["webhook"].clone();
                (h["attempt_failures"].as_u64()? >= 3).then_some(h)
            })
            .unwrap_or_else(|| panic!("refused attempts counted"));
            assert_eq!(hook["delivered"], 0);
            let metrics = client
                .get(&agent.url("/metrics"))
                .call()
                .unwrap()
                .into_string()
                .unwrap();
            let failures: u64 = metrics
                .lines()
                .find_map(|l| l.strip_prefix("scx_pilot_alert_webhook_attempt_failures_total "))
                .unwrap_or_else(|| panic!("no attempt failures series:\n{metrics}"))
                .trim()
                .parse()
                .unwrap();
            assert!(failures >= 3, "{failures}");
        } else {
            // The first event is still in its (hung) attempt, the second waits.
            assert_eq!(hook["attempt_failures"], 0, "{hook}");
            assert!(hook["queued"].as_u64().unwrap() >= 1, "{hook}");
        }
        // Stopping does not wait for the receiver either.
        assert_eq!(
            agent.terminate(),
            Some(0),
            "{kind}: {}",
            agent.stderr_text()
        );
    }
}

#[test]
fn kubernetes_disconnected_fires_and_resolves() {
    let stub = kube_stub::StubApi::start();
    let dir = TempDir::new("alerts_kube");
    let kubeconfig = stub.write_kubeconfig(dir.path());
    let agent = start_with_rules(
        &dir,
        "alerts_kube",
        r#"{"kubernetes_disconnected": {"for_secs": 1}}"#,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--node-name",
            "node-a",
            "--sample-interval-ms",
            "200",
        ],
    );
    let kube_status = |a: &Agent| a.get("/health")["components"]["kubernetes"]["status"].clone();
    wait_for(Duration::from_secs(20), || {
        (kube_status(&agent) == "ok").then_some(())
    })
    .expect("connected to the stub");
    evaluated_after(&agent, chrono::Utc::now());
    let alerts = |a: &Agent| a.get("/api/v1/alerts")["data"].clone();
    assert_eq!(alerts(&agent)["active"], json!([]));

    stub.fail(Some(500));
    stub.drop_watches();
    let active = wait_for(Duration::from_secs(20), || {
        let a = alerts(&agent)["active"].as_array()?.clone();
        (!a.is_empty()).then_some(a)
    })
    .unwrap_or_else(|| panic!("kubernetes_disconnected did not fire"));
    assert_eq!(active[0]["name"], "kubernetes_disconnected", "{active:?}");
    assert!(
        active[0]["labels"]["endpoint"]
            .as_str()
            .unwrap()
            .starts_with(&stub.url()),
        "{active:?}"
    );
    assert!(
        active[0]["message"].as_str().unwrap().contains("500"),
        "{active:?}"
    );
    let metrics = metrics_text(&agent);
    assert!(metrics.contains(
        "scx_pilot_alert_firing{alert=\"kubernetes_disconnected\",severity=\"warning\"} 1"
    ));
    assert!(metrics.contains("scx_pilot_kubernetes_configured 1"));

    stub.fail(None);
    wait_for(Duration::from_secs(30), || {
        alerts(&agent)["active"]
            .as_array()?
            .is_empty()
            .then_some(())
    })
    .unwrap_or_else(|| panic!("kubernetes_disconnected did not resolve"));
    let recent = alerts(&agent)["recent"].clone();
    assert_eq!(recent[0]["name"], "kubernetes_disconnected", "{recent}");
    assert_eq!(recent[0]["state"], "resolved");
    assert_eq!(kube_status(&agent), "ok");
}
