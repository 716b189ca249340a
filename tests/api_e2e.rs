//! End to end: the real binary in `--api-only` mode on a free port, driven by a
//! real HTTP client (ureq) and by the original server's documented curl
//! commands (curl and jq are required: `scripts/deps.sh test` installs them).

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "fixtures/agent.rs"]
mod agent;
#[path = "fixtures/samples.rs"]
mod samples;
#[path = "fixtures/tools.rs"]
mod tools;

use agent::{Agent, TempDir};

/// The agent under test, writes open without a token, as the documented curl
/// commands make them (tests/auth_e2e.rs covers the token).
fn start(extra: &[&str]) -> Agent {
    let mut args = vec!["--auth", "none"];
    args.extend_from_slice(extra);
    Agent::start_temp("e2e", &args)
}

/// One request: status, Allow header, JSON body.
fn request(
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, Option<String>, Value) {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(10));
    if let Some(ct) = content_type {
        req = req.set("Content-Type", ct);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let allow = resp.header("Allow").map(str::to_string);
    let ct = resp.header("Content-Type").unwrap_or("").to_string();
    let text = resp.into_string().unwrap();
    assert!(
        ct.starts_with("application/json"),
        "{method} {url}: content-type {ct:?}: {text}"
    );
    let value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {url}: {e}: {text}"));
    (status, allow, value)
}

fn is_rfc3339_utc(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

/// A documented `curl -X POST` of `body` (a multi-line JSON text) to `path`.
fn curl_post(path: &str, body: &str) -> String {
    format!(
        "curl -X POST http://localhost:8080{path} \\\n  -H \"Content-Type: application/json\" \\\n  -d '{body}'"
    )
}

/// The original server's documented curl commands, verbatim except for the
/// port (and the posted PID, which must be a live process here).
const CURL_HEALTH: &str = "curl http://localhost:8080/health";
const CURL_PODS: &str = "curl -X GET http://localhost:8080/api/v1/pods/pids";
const CURL_PODS_JQ: &str = "curl -s -X GET http://localhost:8080/api/v1/pods/pids | jq '.'";
const CURL_PODS_JQ_COUNT: &str = "curl -s -X GET http://localhost:8080/api/v1/pods/pids | jq '.pods[] | {pod_uid: .pod_uid, process_count: (.processes | length)}'";
const CURL_GET_STRATEGIES: &str = "curl -X GET http://localhost:8080/api/v1/scheduling/strategies";

/// Run a documented command against `agent`: its stdout.
fn run_curl(agent: &Agent, cmd: &str) -> String {
    let cmd = cmd.replace("localhost:8080", agent.addr());
    let out = Command::new("bash")
        .args(["-c", &format!("set -o pipefail; {cmd}")])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{cmd}: {:?}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn documented_curl_examples_against_the_real_binary() {
    tools::require("curl", "curl");
    tools::require("jq", "jq");
    let mut agent = start(&[]);

    let v = json_of(&run_curl(
        &agent,
        &curl_post("/api/v1/metrics", samples::METRICS),
    ));
    assert_eq!(v["success"], json!(true), "{v}");
    assert_eq!(v["message"], json!("Metrics received successfully"));
    assert!(is_rfc3339_utc(&v["timestamp"]), "{v}");

    let v = json_of(&run_curl(&agent, CURL_HEALTH));
    assert_eq!(v["status"], json!("healthy"), "{v}");
    assert_eq!(v["service"], json!("BSS Metrics API Server"));
    assert!(is_rfc3339_utc(&v["timestamp"]));
    assert_eq!(v["mode"], json!("api-only"));

    let v = json_of(&run_curl(&agent, CURL_PODS));
    assert_eq!(v["success"], json!(true), "{v}");
    assert_eq!(
        v["message"],
        json!("Pod-PID mappings retrieved successfully")
    );
    assert!(v["pods"].is_array(), "pods must be a list, never null: {v}");
    let v = json_of(&run_curl(&agent, CURL_PODS_JQ));
    assert!(v["pods"].is_array());
    // One {pod_uid, process_count} object per pod; none on a host without pods.
    let out = run_curl(&agent, CURL_PODS_JQ_COUNT);
    let n = serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .map(|o| {
            let o = o.unwrap();
            assert!(
                o["pod_uid"].is_string() && o["process_count"].is_u64(),
                "{o}"
            );
        })
        .count();
    assert_eq!(n, v["pods"].as_array().unwrap().len());

    // The documented request, for a process that exists here.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let post = curl_post(
        "/api/v1/scheduling/strategies",
        &samples::strategies_for(sleeper.id()),
    );
    let v = json_of(&run_curl(&agent, &post));
    assert_eq!(v["success"], json!(true), "{v}");
    assert_eq!(
        v["message"],
        json!("Scheduling strategies saved successfully")
    );
    assert!(is_rfc3339_utc(&v["timestamp"]));

    let v = json_of(&run_curl(&agent, CURL_GET_STRATEGIES));
    assert_eq!(v["success"], json!(true), "{v}");
    assert_eq!(
        v["message"],
        json!("Scheduling strategies retrieved successfully")
    );
    assert!(is_rfc3339_utc(&v["timestamp"]));
    // The PID resolves; selectors need pod labels, so they match nothing here.
    assert_eq!(
        v["scheduling"],
        json!([{"priority": false, "execution_time": 10_000_000, "pid": sleeper.id()}])
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    // The posted metrics show up as external.
    let (status, _, v) = request("GET", &agent.url("/api/v1/metrics"), None, None);
    assert_eq!(status, 200);
    assert_eq!(v["external"][0]["data"]["usersched_pid"], json!(1234));
    assert_eq!(v["external"][0]["source"], json!("external"));

    assert_eq!(agent.terminate(), Some(0), "{}", agent.stderr_text());
}

#[test]
fn real_client_every_endpoint_and_error_class() {
    let mut agent = start(&["--max-body-bytes", "2048", "-v"]);

    for (path, key) in [
        ("/", "endpoints"),
        ("/health", "components"),
        ("/api/v1/metrics", "external"),
        ("/api/v1/metrics/history?seconds=60", "samples"),
        ("/api/v1/pods/pids", "pods"),
        ("/api/v1/scheduling/strategies", "scheduling"),
        ("/api/v1/scheduling/strategies/config", "strategies"),
        ("/api/v1/openapi.json", "paths"),
    ] {
        let (status, _, v) = request("GET", &agent.url(path), None, None);
        assert_eq!(status, 200, "{path}: {v}");
        assert!(!v[key].is_null(), "{path} lacks {key}: {v}");
    }

    // A live PID gets resolved: use this test process's child, a sleeper.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let body = json!({"strategies": [{"priority": true, "execution_time": 2_000_000, "pid": sleeper.id()}]});
    let (status, _, v) = request(
        "POST",
        &agent.url("/api/v1/scheduling/strategies"),
        Some("application/json"),
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{v}");
    let (_, _, v) = request(
        "GET",
        &agent.url("/api/v1/scheduling/strategies"),
        None,
        None,
    );
    assert_eq!(
        v["scheduling"],
        json!([{"priority": true, "execution_time": 2_000_000, "pid": sleeper.id()}])
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    let metrics = "/api/v1/metrics";
    let err = |status: u16, v: &Value, want: u16, needle: &str| {
        assert_eq!(status, want, "{v}");
        assert_eq!(v["success"], json!(false));
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{v} lacks {needle}"
        );
    };
    let (s, _, v) = request(
        "POST",
        &agent.url(metrics),
        Some("application/json"),
        Some(b"{bad"),
    );
    err(s, &v, 400, "Invalid JSON format: ");
    let (s, _, v) = request("POST", &agent.url(metrics), Some("text/plain"), Some(b"{}"));
    err(s, &v, 415, "Content-Type must be application/json");
    let big = vec![b' '; 4096];
    let (s, _, v) = request(
        "POST",
        &agent.url(metrics),
        Some("application/json"),
        Some(&big),
    );
    err(s, &v, 413, "2048 bytes");
    let (s, _, v) = request("GET", &agent.url("/api/v1/nothing"), None, None);
    err(s, &v, 404, "/api/v1/nothing");
    let (s, allow, v) = request(
        "DELETE",
        &agent.url("/api/v1/scheduling/strategies"),
        None,
        None,
    );
    err(s, &v, 405, "DELETE");
    assert_eq!(allow.as_deref(), Some("GET, POST, OPTIONS"));
    let (s, _, v) = request(
        "POST",
        &agent.url("/api/v1/scheduling/strategies"),
        Some("application/json"),
        Some(br#"{"strategies":[{"execution_time":2000000000,"pid":4242}]}"#),
    );
    // Over the ceiling (a slice below the floor is raised, not refused).
    err(s, &v, 400, "strategies[0].execution_time");

    // Requests are logged with method, path, status and duration.
    assert_eq!(agent.terminate(), Some(0));
    let log = agent.stderr_text();
    assert!(
        log.lines()
            .any(|l| l.contains("DELETE /api/v1/scheduling/strategies 405 ") && l.ends_with("ms")),
        "{log}"
    );
    assert!(log.lines().any(|l| l.contains("GET /health 200 ")), "{log}");
}

#[test]
fn sigterm_after_traffic_exits_zero() {
    let mut agent = start(&[]);
    for _ in 0..20 {
        let (status, _, _) = request("GET", &agent.url("/api/v1/metrics"), None, None);
        assert_eq!(status, 200);
    }
    let started = Instant::now();
    assert_eq!(agent.terminate(), Some(0), "{}", agent.stderr_text());
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(agent.stderr_text().contains("stopped"));
    // The port is released.
    TcpListener::bind(("127.0.0.1", agent.port())).expect("port released after exit");
}

/// `timeout 60 scx_pilot` signals the process and then its process group,
/// which holds it too: one stop asked for twice at once is still a clean stop.
#[test]
fn a_signal_delivered_twice_at_once_is_one_clean_stop() {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new("api_e2e_twice");
    // A process group of its own, as timeout makes one, so that signalling the
    // group does not reach this test.
    let mut agent = Agent::start_with("127.0.0.1:0", &dir.join("state"), &[], |cmd| {
        cmd.process_group(0);
    });
    // A request in flight (its body half sent) keeps the agent stopping while
    // the second signal comes: without one it is gone within milliseconds.
    let addr = agent.addr().to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /api/v1/metrics HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    )
    .unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let pid = agent.child.id() as i32;
    // What timeout does: the child, then the group, a moment apart.
    // SAFETY: kill(2) on our own child and the process group it leads.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(unsafe { libc::kill(-pid, libc::SIGTERM) }, 0);
    drop(conn);
    assert_eq!(agent.wait_exit(), Some(0), "{}", agent.stderr_text());
    let log = agent.stderr_text();
    assert!(!log.contains("second signal"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn port_in_use_is_one_clear_line_and_nonzero_exit() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let state = TempDir::new("e2e_port");
    let out = agent::command(state.path())
        .args(["--api-only", "--listen", &addr, "--auth", "none"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!("cannot listen on {addr}")) && errors[0].contains("in use"),
        "{stderr}"
    );
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    use std::io::{Read, Write};
    let mut agent = start(&[]);
    let addr = agent.addr().to_string();
    let body = samples::metrics_of(4321).to_string();
    let body = body.as_bytes();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "POST /api/v1/metrics HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    conn.write_all(first).unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // SIGTERM while the request is half sent.
    agent.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    // New connections are refused (or not served) once stopping...
    let refused = std::net::TcpStream::connect(&addr)
        .and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(2)))?;
            c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")?;
            let mut buf = [0u8; 16];
            let n = c.read(&mut buf)?;
            Ok(n)
        })
        .map_or(true, |n| n == 0);
    assert!(refused, "a new connection was served after SIGTERM");
    // ...but the request in flight completes.
    conn.write_all(rest).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("Metrics received successfully"),
        "{response}"
    );

    let code = agent.wait_exit();
    assert_eq!(code, Some(0), "{}", agent.stderr_text());
}
