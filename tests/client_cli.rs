//! `scx_pilot status`, `scx_pilot strategies get`, `scx_pilot strategies set -f`
//! against the real agent (`--api-only`, token in a temporary state dir).

use std::process::{Command, Output, Stdio};

#[path = "fixtures/agent.rs"]
mod agent;

use agent::{Agent, BIN};

/// The agent with write tokens on (the default), in its own state dir.
fn start() -> Agent {
    Agent::start_temp("client", &[])
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn status_get_and_set_against_a_running_agent() {
    let agent = start();

    let out = agent.client(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = text(&out);
    assert!(
        s.contains("status     healthy") && s.contains("api-only"),
        "{s}"
    );

    let out = agent.client(&["status", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["health"]["status"], "healthy");

    // A live PID gets resolved.
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let file = agent.state_dir.join("set.json");
    std::fs::write(
        &file,
        format!(
            r#"{{"strategies": [{{"priority": true, "execution_time": 2000000, "pid": {}}}]}}"#,
            sleeper.id()
        ),
    )
    .unwrap();
    let out = agent.client(&["strategies", "set", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Scheduling strategies saved successfully (1 strategies"),
        "{}",
        text(&out)
    );

    let out = agent.client(&["strategies", "get"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = text(&out);
    assert!(s.starts_with("1 strategies, updated "), "{s}");
    assert!(s.contains(&sleeper.id().to_string()), "{s}");

    let out = agent.client(&["strategies", "get", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["strategies"][0]["pid"], sleeper.id());

    // A bare list from stdin is the whole set: here, the empty one.
    let mut child = Command::new(BIN)
        .args([
            "strategies",
            "set",
            "-f",
            "-",
            "--url",
            &agent.base,
            "--state-dir",
        ])
        .arg(&agent.state_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"[]").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = agent.client(&["strategies", "get"]);
    assert!(text(&out).starts_with("0 strategies"), "{}", text(&out));
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[test]
fn errors_exit_non_zero_with_one_line() {
    let agent = start();
    let dir = agent.state_dir.clone();

    // The agent's error message comes through.
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"strategies": [{"execution_time": 2000000000, "pid": 4242}]}"#,
    )
    .unwrap();
    let out = agent.client(&["strategies", "set", "-f", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HTTP 400") && err.contains("execution_time"),
        "{err}"
    );

    // A wrong token is refused by the agent.
    let wrong = dir.join("wrong-token");
    std::fs::write(&wrong, "ffffffffffffffffffffffffffffffff\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let good = dir.join("good.json");
    std::fs::write(&good, r#"{"strategies": []}"#).unwrap();
    let out = agent.client(&[
        "strategies",
        "set",
        "-f",
        good.to_str().unwrap(),
        "--token-file",
        wrong.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 401"));

    // A missing token file, a missing input file, not JSON.
    let out = agent.client(&[
        "strategies",
        "set",
        "-f",
        good.to_str().unwrap(),
        "--token-file",
        "/nonexistent/token",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/token"));
    let out = agent.client(&["strategies", "set", "-f", "/nonexistent.json"]);
    assert!(!out.status.success());
    std::fs::write(&bad, "not json").unwrap();
    let out = agent.client(&["strategies", "set", "-f", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not JSON"));

    // Nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args(["status", "--url", &format!("http://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("scx_pilot: error: "), "{err}");

    // The agent's own flag-only invocation is untouched.
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--listen"));
}
