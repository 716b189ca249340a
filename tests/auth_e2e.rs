//! Who may write, end to end: the real binary (`--api-only`) with its token
//! file, `--auth none`, and the write log, driven over real HTTP.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

#[path = "fixtures/agent.rs"]
mod agent;
#[path = "fixtures/samples.rs"]
mod samples;

use agent::{Agent, TempDir};

/// A report of its own (usersched_pid 4321), to find in the write log.
fn metrics() -> String {
    samples::metrics_of(4321).to_string()
}

/// POST `body` to `agent`, with `token` as the bearer when given: status and
/// body text.
fn post(agent: &Agent, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let mut req = ureq::post(&agent.url(path))
        .timeout(Duration::from_secs(10))
        .set("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.send_string(body) {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap()),
        Err(e) => panic!("POST {path}: {e}"),
    }
}

/// SIGTERM, wait for the exit: the agent's whole log.
fn stop(agent: &mut Agent) -> String {
    assert!(agent.terminate().is_some(), "no exit after SIGTERM");
    agent.stderr_text()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn first_start_creates_a_0600_token_that_writes_need_and_logs_never_show() {
    let dir = TempDir::new("auth_token");
    let state_dir = dir.join("state");
    let mut agent = Agent::start(&state_dir, &[]);
    let token_path = state_dir.join("token");
    assert_eq!(mode(&token_path), 0o600);
    assert_eq!(mode(&state_dir), 0o700);
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(token.len(), 64, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));

    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = sleeper.id().to_string();
    let strategies = format!(
        r#"{{"strategies": [{{"priority": true, "execution_time": 2000000, "pid": {pid}}}]}}"#
    );
    let strategies = strategies.as_str();
    let (s, body) = post(&agent, "/api/v1/scheduling/strategies", strategies, None);
    assert_eq!(s, 401, "{body}");
    assert!(body.contains(r#""success":false"#), "{body}");
    let (s, _) = post(
        &agent,
        "/api/v1/scheduling/strategies",
        strategies,
        Some("0123456789abcdef-wrong"),
    );
    assert_eq!(s, 401);
    let (s, body) = post(
        &agent,
        "/api/v1/scheduling/strategies",
        strategies,
        Some(&token),
    );
    assert_eq!(s, 200, "{body}");
    let (s, _) = post(&agent, "/api/v1/metrics", &metrics(), Some(&token));
    assert_eq!(s, 200);
    let (s, _) = post(&agent, "/api/v1/metrics", "{bad", Some(&token));
    assert_eq!(s, 400);
    // Reads stay open.
    let r = ureq::get(&format!(
        "{}/api/v1/scheduling/strategies/config",
        agent.base
    ))
    .call()
    .unwrap();
    assert!(r.into_string().unwrap().contains(&pid));

    let log = stop(&mut agent);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(!log.contains(&token), "the token is in the log:\n{log}");
    assert!(
        log.contains(&format!(
            "writes need the bearer token in {}",
            token_path.display()
        )),
        "{log}"
    );
    // Every write is logged with the client address and the outcome.
    let writes: Vec<&str> = log.lines().filter(|l| l.contains("write ")).collect();
    let rejected = writes
        .iter()
        .filter(|l| {
            l.contains("write rejected: POST /api/v1/scheduling/strategies from 127.0.0.1:")
                && l.contains(" 401 ")
        })
        .count();
    assert_eq!(rejected, 2, "{log}");
    assert!(
        writes.iter().any(|l| l
            .contains("write accepted: POST /api/v1/scheduling/strategies from 127.0.0.1:")
            && l.contains("strategies replaced")
            && l.contains(&pid)),
        "{log}"
    );
    assert!(
        writes.iter().any(
            |l| l.contains("write accepted: POST /api/v1/metrics from 127.0.0.1:")
                && l.contains("usersched_pid 4321")
        ),
        "{log}"
    );
    assert!(
        writes.iter().any(
            |l| l.contains("write refused: POST /api/v1/metrics from 127.0.0.1:")
                && l.contains(" 400 ")
                && l.contains("nothing changed")
        ),
        "{log}"
    );

    // A restart keeps the token.
    let mut again = Agent::start(&state_dir, &[]);
    let (s, _) = post(&again, "/api/v1/metrics", &metrics(), Some(&token));
    assert_eq!(s, 200);
    stop(&mut again);
    assert_eq!(std::fs::read_to_string(&token_path).unwrap().trim(), token);
}

#[test]
fn a_token_file_others_can_read_is_refused() {
    let dir = TempDir::new("auth_token_file");
    let state = dir.join("state");
    let file = dir.join("token");
    std::fs::write(&file, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = agent::command(&state)
        .args(["--api-only", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600") && err.contains("0644"), "{err}");
    assert!(!err.contains("0123456789abcdef0123"), "{err}");

    // The same file at 0600 is used as it is.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut agent = Agent::start(&state, &["--token-file", file.to_str().unwrap()]);
    let (s, _) = post(
        &agent,
        "/api/v1/metrics",
        &metrics(),
        Some("0123456789abcdef0123456789abcdef"),
    );
    assert_eq!(s, 200);
    stop(&mut agent);

    // Too short a token is refused.
    std::fs::write(&file, "short\n").unwrap();
    let out = agent::command(&state)
        .args(["--api-only", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shorter than 16"));
}

#[test]
fn auth_none_is_explicit_and_warns_louder_off_loopback() {
    let dir = TempDir::new("auth_none");
    let state = dir.join("state");
    let mut agent = Agent::start(&state, &["--auth", "none"]);
    let (s, _) = post(&agent, "/api/v1/metrics", &metrics(), None);
    assert_eq!(s, 200);
    let log = stop(&mut agent);
    assert!(log.contains("--auth none: anyone who can reach"), "{log}");
    assert!(!log.contains("non-loopback"), "{log}");
    assert!(!state.join("token").exists(), "--auth none made a token");

    let mut agent = Agent::start_temp_on("0.0.0.0:0", "auth_any", &["--auth", "none"]);
    let log = stop(&mut agent);
    assert!(
        log.contains("writes are open on a non-loopback address"),
        "{log}"
    );
}

#[test]
fn wrong_host_is_refused_over_real_http() {
    use std::io::{Read, Write};
    let mut agent = Agent::start_temp("auth_host", &["--auth", "none"]);
    let addr = agent.addr().to_string();
    let metrics = metrics();
    let send = |host: &str| {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            c,
            "POST /api/v1/metrics HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{metrics}",
            metrics.len()
        )
        .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    };
    let out = send("rebound.attacker.example:8080");
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    let out = send(&addr);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let log = stop(&mut agent);
    assert!(
        log.contains("write rejected: POST /api/v1/metrics from 127.0.0.1:")
            && log.contains(" 403 "),
        "{log}"
    );
}

#[test]
fn write_rate_limit_answers_429_over_real_http() {
    let mut agent = Agent::start_temp("auth_rate", &["--auth", "none", "--write-rate-limit", "2"]);
    let codes: Vec<u16> = (0..4)
        .map(|_| post(&agent, "/api/v1/metrics", &metrics(), None).0)
        .collect();
    assert_eq!(&codes[..2], &[200, 200], "{codes:?}");
    assert!(codes[2..].contains(&429), "{codes:?}");
    let log = stop(&mut agent);
    assert!(
        log.lines()
            .any(|l| l.contains("write rejected") && l.contains(" 429 ")),
        "{log}"
    );
}

/// A disk that fills while the token file is written (here a file size limit
/// of 8 bytes): the start fails, and leaves no partial token file behind that
/// would stop every later start ("shorter than 16 characters").
#[test]
fn a_token_file_is_whole_or_absent_after_a_failed_write() {
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new("token_full");
    let state = dir.join("state");
    let mut cmd = agent::command(&state);
    cmd.args(["--api-only", "--listen", "127.0.0.1:0", "--jwt", "off"]);
    // SAFETY: setrlimit and signal are async-signal-safe; nothing else runs here.
    unsafe {
        cmd.pre_exec(|| {
            // write(2) past the limit fails with EFBIG instead of killing.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            rlimit::Resource::FSIZE.set(8, 8)?;
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started with no room for its token: {err}"
    );
    assert!(err.contains("token file"), "{err}");
    assert!(
        !state.join("token").exists(),
        "a partial token file was left"
    );

    let mut agent = Agent::start(&state, &["--jwt", "off"]);
    let token = std::fs::read_to_string(state.join("token")).unwrap();
    assert!(token.trim().len() >= 16, "{token:?}");
    let (s, _) = post(&agent, "/api/v1/metrics", &metrics(), Some(token.trim()));
    assert_eq!(s, 200);
    stop(&mut agent);
}
