//! `scx_pilot top` against the real binary serving in `--api-only` mode:
//! `--once` (text and JSON) matches the JSON API, `--json` streams snapshots
//! with rates and stops on SIGINT, and the live view in a real pseudo-terminal
//! (util-linux `script`) draws on the alternate screen and quits on `q`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "fixtures/agent.rs"]
mod agent;
#[path = "fixtures/samples.rs"]
mod samples;

use agent::{Agent, BIN};

/// The agent under test: writes without a token (tests/auth_* cover the
/// token), its own state dir.
fn start() -> Agent {
    Agent::start_temp("top", &["--auth", "none"])
}

fn post(agent: &Agent, path: &str, body: Value) {
    let (status, v) = agent.post(path, &body);
    assert_eq!(status, 200, "POST {path}: {v}");
}

/// Post the documented report with `nr_kernel_dispatches` set to `kernel`.
fn report(agent: &Agent, kernel: u64) {
    let mut body = samples::metrics();
    body["nr_kernel_dispatches"] = json!(kernel);
    post(agent, "/api/v1/metrics", body);
}

fn top(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("top")
        .args(args)
        .output()
        .expect("run scx_pilot top")
}

fn counter<'a>(snap: &'a Value, name: &str) -> &'a Value {
    snap["counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == json!(name))
        .unwrap_or_else(|| panic!("no {name} in {snap}"))
}

#[test]
fn once_prints_what_the_api_says_in_text_and_json() {
    let agent = start();
    report(&agent, 4242);
    let me = std::process::id();
    post(
        &agent,
        "/api/v1/scheduling/strategies",
        json!({"strategies": [{"priority": true, "execution_time": 20000000, "pid": me}]}),
    );

    let out = top(&["--url", &agent.base, "--once", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let snap: Value = serde_json::from_slice(&out.stdout).unwrap();
    let api: Value = ureq::get(&format!("{}/api/v1/metrics", agent.base))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(snap["mode"], json!("api-only"));
    assert_eq!(snap["source"], json!("external"));
    assert_eq!(
        counter(&snap, "nr_kernel_dispatches")["value"],
        api["external"][0]["data"]["nr_kernel_dispatches"]
    );
    assert_eq!(counter(&snap, "nr_queued")["counter"], json!(false));
    assert_eq!(snap["strategies_configured"], json!(1));
    assert_eq!(snap["resolved_pids"], json!(1));
    assert_eq!(snap["strategies"][0]["target"], json!(format!("pid {me}")));
    assert_eq!(snap["strategies"][0]["priority"], json!(true));

    let out = top(&["--url", &agent.base, "--once"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("COUNTERS (external"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("kernel_dispatches") && l.contains("4242")),
        "{text}"
    );
    assert!(text.contains(&format!("pid {me}")), "{text}");
    assert!(text.contains("1 configured, 1 PIDs resolved"), "{text}");
}

#[test]
fn once_fails_clearly_without_an_agent() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = top(&["--url", &format!("http://127.0.0.1:{port}"), "--once"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scx_pilot top: error"), "{err}");
}

#[test]
fn json_stream_has_rates_and_stops_on_sigint() {
    let agent = start();
    report(&agent, 1000);
    let mut child = Command::new(BIN)
        .args([
            "top",
            "--url",
            &agent.base,
            "--json",
            "--interval-ms",
            "200",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap());
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        counter(&first, "nr_kernel_dispatches")["value"],
        json!(1000)
    );
    std::thread::sleep(Duration::from_millis(500));
    report(&agent, 3000);
    // A later snapshot sees the new value with a positive rate between polls.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snap = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let c = counter(&snap, "nr_kernel_dispatches");
        if c["value"] == json!(3000) {
            let rate = c["rate_per_s"].as_f64().expect("a rate after two readings");
            assert!(rate > 0.0 && rate < 2000.0 / 0.4, "{rate}");
            break;
        }
        assert!(Instant::now() < deadline, "no snapshot with the new report");
    }
    // SAFETY: kill(2) on our own child's PID.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn live_view_in_a_terminal_quits_on_q() {
    let agent = start();
    report(&agent, 77);
    // util-linux `script` runs the command in a real pseudo-terminal and
    // forwards our stdin to it.
    let cmd = format!("{BIN} top --url {} --interval-ms 200", agent.base);
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script");
    let seen = Arc::new(Mutex::new(Vec::<u8>::new()));
    let buf = seen.clone();
    let mut stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !text().contains("kernel_dispatches") {
        assert!(Instant::now() < deadline, "no live view: {:?}", text());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Refreshes keep coming: the header's agent URL is drawn more than once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while text().matches("COUNTERS").count() < 2 {
        assert!(Instant::now() < deadline, "no refresh: {:?}", text());
        std::thread::sleep(Duration::from_millis(50));
    }
    child.stdin.as_mut().unwrap().write_all(b"q").unwrap();
    child.stdin.as_mut().unwrap().flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("top did not quit on q: {:?}", text());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?} {:?}", text());
    let out = text();
    // Entered and left the alternate screen (the terminal is restored).
    assert!(out.contains("\x1b[?1049h"), "{out:?}");
    assert!(out.contains("\x1b[?1049l"), "{out:?}");
    assert!(out.contains("COUNTERS (external"), "{out:?}");
}
