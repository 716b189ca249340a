//! End to end: the real binary in `--api-only` mode on a free port, driven by a
//! real HTTP client (ureq) and by the seed document's own curl commands.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_scx_pilot");

/// The agent under test; killed on drop if still running.
struct Agent {
    child: Child,
    base: String,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Its own --state-dir, so the host's /var/lib/scx_pilot is never touched.
    state_dir: std::path::PathBuf,
}

impl Agent {
    fn start(extra: &[&str]) -> Agent {
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let state_dir = std::env::temp_dir().join(format!(
            "scx_pilot_e2e_{}_{}",
            std::process::id(),
            RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut child = Command::new(BIN)
            // Writes without a token, as the seed's curl commands make them
            // (tests/auth_e2e.rs covers the token).
            .args(["--api-only", "--listen", "127.0.0.1:0", "--auth", "none"])
            .arg("--state-dir")
            .arg(&state_dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start scx_pilot");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("HTTP API listening on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("no listening line; stderr: {:?}", stderr.lock().unwrap());
            }
        };
        Agent {
            child,
            base: format!("http://{addr}"),
            stderr,
            state_dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn port(&self) -> &str {
        self.base.rsplit(':').next().unwrap()
    }

    /// SIGTERM, then wait (bounded) for the exit code.
    fn terminate(&mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own child's PID.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0);
        self.terminate_wait()
    }

    /// Wait (bounded) for the exit code after a signal.
    fn terminate_wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "no exit within 15 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
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

/// The seed document's curl commands, verbatim except for the port.
const SEED_CURL_POST_METRICS: &str = r#"curl -X POST http://localhost:8080/api/v1/metrics \
  -H "Content-Type: application/json" \
  -d '{
    "usersched_pid": 1234,
    "nr_queued": 10,
    "nr_scheduled": 5,
    "nr_running": 2,
    "nr_online_cpus": 8,
    "nr_user_dispatches": 100,
    "nr_kernel_dispatches": 50,
    "nr_cancel_dispatches": 2,
    "nr_bounce_dispatches": 1,
    "nr_failed_dispatches": 0,
    "nr_sched_congested": 3
  }'"#;
const SEED_CURL_HEALTH: &str = "curl http://localhost:8080/health";
const SEED_CURL_PODS: &str = "curl -X GET http://localhost:8080/api/v1/pods/pids";
const SEED_CURL_PODS_JQ: &str = "curl -s -X GET http://localhost:8080/api/v1/pods/pids | jq '.'";
const SEED_CURL_PODS_JQ_COUNT: &str = "curl -s -X GET http://localhost:8080/api/v1/pods/pids | jq '.pods[] | {pod_uid: .pod_uid, process_count: (.processes | length)}'";
const SEED_CURL_GET_STRATEGIES: &str =
    "curl -X GET http://localhost:8080/api/v1/scheduling/strategies";
const SEED_CURL_POST_STRATEGIES: &str = r#"curl -X POST http://localhost:8080/api/v1/scheduling/strategies \
  -H "Content-Type: application/json" \
  -d '{
    "strategies": [
      {
        "priority": true,
        "execution_time": 20000000,
        "selectors": [
          {
            "key": "nf",
            "value": "upf"
          }
        ]
      },
      {
        "priority": false,
        "execution_time": 10000000,
        "pid": 717720
      }
    ]
  }'"#;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run_seed(agent: &Agent, cmd: &str) -> String {
    let cmd = cmd.replace("localhost:8080", &format!("127.0.0.1:{}", agent.port()));
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
fn seed_curl_examples_against_the_real_binary() {
    if !have("curl") {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let mut agent = Agent::start(&[]);

    let v = json_of(&run_seed(&agent, SEED_CURL_POST_METRICS));
    assert_eq!(v["success"], json!(true), "{v}");
    assert_eq!(v["message"], json!("Metrics received successfully"));
    assert!(is_rfc3339_utc(&v["timestamp"]), "{v}");

    let v = json_of(&run_seed(&agent, SEED_CURL_HEALTH));
    assert_eq!(v["status"], json!("healthy"), "{v}");
    assert_eq!(v["service"], json!("BSS Metrics API Server"));
    assert!(is_rfc3339_utc(&v["timestamp"]));
    assert_eq!(v["mode"], json!("api-only"));

    let v = json_of(&run_seed(&agent, SEED_CURL_PODS));
    assert_eq!(v["success"], json!(true), "{v}");
    assert_eq!(
        v["message"],
        json!("Pod-PID mappings retrieved successfully")
    );
    assert!(v["pods"].is_array(), "pods must be a list, never null: {v}");
    if have("jq") {
        let v = json_of(&run_seed(&agent, SEED_CURL_PODS_JQ));
        assert!(v["pods"].is_array());
        // One {pod_uid, process_count} object per pod; none on a host without pods.
        let out = run_seed(&agent, SEED_CURL_PODS_JQ_COUNT);
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
    }

    // The seed's request, for a process that exists here.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let seed_post = SEED_CURL_POST_STRATEGIES.replace("717720", &sleeper.id().to_string());
    let v = json_of(&run_seed(&agent, &seed_post));
    assert_eq!(v["success"], json!(true), "{v}");
    assert_eq!(
        v["message"],
        json!("Scheduling strategies saved successfully")
    );
    assert!(is_rfc3339_utc(&v["timestamp"]));

    let v = json_of(&run_seed(&agent, SEED_CURL_GET_STRATEGIES));
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
    let mut agent = Agent::start(&["--max-body-bytes", "2048", "-v"]);

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
    assert_eq!(allow.as_deref(), Some("GET, POST"));
    let (s, _, v) = request(
        "POST",
        &agent.url("/api/v1/scheduling/strategies"),
        Some("application/json"),
        Some(br#"{"strategies":[{"execution_time":1,"pid":4242}]}"#),
    );
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
    let mut agent = Agent::start(&[]);
    for _ in 0..20 {
        let (status, _, _) = request("GET", &agent.url("/api/v1/metrics"), None, None);
        assert_eq!(status, 200);
    }
    let started = Instant::now();
    assert_eq!(agent.terminate(), Some(0), "{}", agent.stderr_text());
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(agent.stderr_text().contains("stopped"));
    // The port is released.
    let port: u16 = agent.port().parse().unwrap();
    TcpListener::bind(("127.0.0.1", port)).expect("port released after exit");
}

#[test]
fn port_in_use_is_one_clear_line_and_nonzero_exit() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["--api-only", "--listen", &addr, "--auth", "none"])
        .arg("--state-dir")
        .arg(std::env::temp_dir().join(format!("scx_pilot_e2e_port_{}", std::process::id())))
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
    let mut agent = Agent::start(&[]);
    let addr = agent.base.trim_start_matches("http://").to_string();
    let body = br#"{"usersched_pid": 4321, "nr_queued": 1, "nr_scheduled": 0, "nr_running": 1, "nr_online_cpus": 2, "nr_user_dispatches": 0, "nr_kernel_dispatches": 9, "nr_cancel_dispatches": 0, "nr_bounce_dispatches": 0, "nr_failed_dispatches": 0, "nr_sched_congested": 0}"#;
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
    // SAFETY: kill(2) on our own child's PID.
    assert_eq!(
        unsafe { libc::kill(agent.child.id() as i32, libc::SIGTERM) },
        0
    );
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

    let code = agent.terminate_wait();
    assert_eq!(code, Some(0), "{}", agent.stderr_text());
}
