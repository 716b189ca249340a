//! `scx_pilot top` against the real binary serving in `--api-only` mode:
//! `--once` (text and JSON) matches the JSON API, `--json` streams snapshots
//! with rates and stops on SIGINT, and the live view in a real pseudo-terminal
//! (util-linux `script`) draws on the alternate screen and quits on `q`.
//! With two pods (real processes in pod-like cgroups named by a --pods-file,
//! so that test needs root) and two firing alerts, `top --rows 1` shows each
//! pod's CPU and run-queue wait as the agent measured them (a busy pod near
//! one CPU, an idle one near zero), the firing alerts, and "+1 more" under
//! each cut list; the last full screen is kept in target/top-test/top.txt.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "fixtures/agent.rs"]
mod agent;
#[path = "fixtures/samples.rs"]
mod samples;
#[path = "fixtures/tools.rs"]
mod tools;

use agent::{
    hierarchies, ids, kubelet_path, wait_for, write_pods_file, Agent, PodCgroup, TempDir, BIN,
};

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
    let cmd = format!("{BIN} top --url {} --interval-ms 200", agent.base);
    let (mut child, seen) = in_pty(&cmd);
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

/// `command` in a real pseudo-terminal (util-linux `script`, which forwards
/// our stdin to it), and everything it has drawn so far.
fn in_pty(command: &str) -> (std::process::Child, Arc<Mutex<Vec<u8>>>) {
    let script = tools::require("script", "util-linux");
    let mut child = Command::new(script)
        .args(["-qfec", command, "/dev/null"])
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
    (child, seen)
}

/// The complete screens drawn so far (each starts by clearing the screen; the
/// last one may still be arriving, so it is left out), as plain text: every
/// `ESC[row;1H` starts that row.
fn screens(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let frames: Vec<&str> = text.split("\x1b[2J").skip(1).collect();
    let complete = frames.len().saturating_sub(1);
    frames[..complete]
        .iter()
        .map(|frame| {
            let mut rows: Vec<String> = Vec::new();
            for part in frame.split("\x1b[").skip(1) {
                let Some((pos, rest)) = part.split_once('H') else {
                    continue;
                };
                let Some(row) = pos.split(';').next().and_then(|r| r.parse::<usize>().ok()) else {
                    continue;
                };
                // A move with no text (the next screen's first move ends this one).
                if rest.is_empty() {
                    continue;
                }
                if rows.len() < row {
                    rows.resize(row, String::new());
                }
                rows[row - 1] = rest.to_string();
            }
            rows.join("\n")
        })
        .collect()
}

#[test]
fn pods_with_figures_alerts_and_how_many_more_in_json_and_the_terminal() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test creates pod cgroups and must run as root (make test does)"
    );
    let yes = tools::require("yes", "coreutils");
    let h = hierarchies()
        .into_iter()
        .next()
        .expect("a cgroup hierarchy");
    let (uid_a, cid_a) = ids(71);
    let (uid_b, cid_b) = ids(72);
    let mut busy_pod = PodCgroup::create(&h, "top_busy", &kubelet_path(&h, &uid_a, &cid_a));
    let mut idle_pod = PodCgroup::create(&h, "top_idle", &kubelet_path(&h, &uid_b, &cid_b));
    busy_pod.spawn(Path::new("/bin/sleep"), &["600"]);
    // Near one CPU until killed below.
    let spinner = busy_pod.spawn(&yes, &[]);
    idle_pod.spawn(Path::new("/bin/sleep"), &["600"]);
    let files = TempDir::new("top_files");
    let pods_file = files.path().join("pods.json");
    write_pods_file(
        &pods_file,
        &[
            (&uid_a, "top-busy", "demo", &[("app", "busy")]),
            (&uid_b, "top-idle", "demo", &[("app", "idle")]),
        ],
    );
    let alerts_file = files.path().join("alerts.json");
    std::fs::write(&alerts_file, r#"{"strategy_no_pids": {"for_secs": 0}}"#).unwrap();
    let agent = Agent::start_temp(
        "top_pods",
        &[
            "--auth",
            "none",
            "--pods-file",
            pods_file.to_str().unwrap(),
            "--alerts-file",
            alerts_file.to_str().unwrap(),
        ],
    );
    report(&agent, 77);
    // Two strategies that match no pod: two strategy_no_pids alerts.
    post(
        &agent,
        "/api/v1/scheduling/strategies",
        json!({"strategies": [
            {"priority": true, "execution_time": 20000000, "selectors": [{"key": "no", "value": "such-pod-a"}]},
            {"priority": true, "execution_time": 20000000, "selectors": [{"key": "no", "value": "such-pod-b"}]}
        ]}),
    );
    let cpu_of = |stats: &Value, name: &str| {
        stats["pods"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == json!(name))?["cpu_usage"]
            .as_f64()
    };
    wait_for(Duration::from_secs(20), || {
        let stats = agent.get("/api/v1/pods/stats?points=0");
        let busy = cpu_of(&stats, "top-busy")?;
        cpu_of(&stats, "top-idle")?;
        let firing = agent.get("/api/v1/alerts")["data"]["active"]
            .as_array()?
            .len();
        (busy > 0.3 && firing == 2).then_some(())
    })
    .expect("the agent measures both pods (the busy one near a CPU) and fires two alerts");

    // On a loaded machine one of top's reads may time out (3 s); top then
    // shows it among the problems, and a second try reads everything.
    let snap = wait_for(Duration::from_secs(20), || {
        let out = top(&["--url", &agent.base, "--once", "--json", "--rows", "1"]);
        assert!(out.status.success(), "{out:?}");
        let snap: Value = serde_json::from_slice(&out.stdout).unwrap();
        let problems = snap["problems"].as_array().unwrap();
        if !problems.is_empty() {
            eprintln!("top read with problems, again: {problems:?}");
        }
        problems.is_empty().then_some(snap)
    })
    .expect("a snapshot read without problems");
    busy_pod.kill(spinner);
    assert_eq!(snap["pods_total"], json!(2), "{snap}");
    assert_eq!(snap["pods"].as_array().unwrap().len(), 1, "{snap}");
    // The busiest pod first, with the agent's figures.
    let pod = &snap["pods"][0];
    assert_eq!(pod["pod"], json!("demo/top-busy"), "{snap}");
    let cpu = pod["cpu_usage"]
        .as_f64()
        .unwrap_or_else(|| panic!("no CPU figure: {snap}"));
    assert!(cpu > 0.3 && cpu < 1.5, "{snap}");
    assert!(pod["runqueue_wait_ms_per_s"].as_f64().is_some(), "{snap}");
    assert_eq!(snap["alerts_firing"], json!(2), "{snap}");
    let alerts = snap["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{snap}");
    assert_eq!(alerts[0]["name"], json!("strategy_no_pids"), "{snap}");
    assert!(
        alerts[0]["about"]
            .as_str()
            .unwrap()
            .contains("strategy_index="),
        "{snap}"
    );

    let cmd = format!("{BIN} top --url {} --interval-ms 200 --rows 1", agent.base);
    let (mut child, seen) = in_pty(&cmd);
    // A screen with everything asked for: the pod row's CPU and wait
    // figures, both alerts counted, one shown, and "+1 more" under the
    // alerts, the strategies and the pods.
    let figures =
        regex::Regex::new(r"^\s+1\s+\d+\s+0\s+\d+\.\d\d\s+\d+\.\d\s+demo/top-(busy|idle)$")
            .unwrap();
    let full = |screen: &String| {
        screen.contains("ALERTS  2 firing")
            && screen
                .lines()
                .any(|l| l.contains("warning") && l.contains("strategy_no_pids"))
            && screen.lines().filter(|l| *l == "  +1 more").count() == 3
            && screen.lines().any(|l| figures.is_match(l))
    };
    let screen = wait_for(Duration::from_secs(15), || {
        screens(&seen.lock().unwrap()).into_iter().rev().find(full)
    });
    child.stdin.as_mut().unwrap().write_all(b"q").unwrap();
    child.stdin.as_mut().unwrap().flush().unwrap();
    let all = screens(&seen.lock().unwrap());
    let screen = screen.unwrap_or_else(|| {
        let _ = child.kill();
        panic!(
            "no screen with pod figures, alerts and +1 more; the last:\n{}",
            all.last().map_or("", |s| s.as_str())
        )
    });
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("top-test");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("top.txt"), &screen).unwrap();
    eprintln!(
        "top screen ({}):\n{screen}",
        out_dir.join("top.txt").display()
    );
    let status = wait_for(Duration::from_secs(5), || child.try_wait().unwrap());
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("top did not quit on q")
    });
    assert!(status.success(), "{status:?}");
}
