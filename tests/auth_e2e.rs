//! Who may write, end to end: the real binary (`--api-only`) with its token
//! file, `--auth none`, and the write log, driven over real HTTP.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_scx_pilot");

const METRICS: &str = r#"{"usersched_pid": 4321, "nr_queued": 1, "nr_scheduled": 0, "nr_running": 1, "nr_online_cpus": 2, "nr_user_dispatches": 0, "nr_kernel_dispatches": 9, "nr_cancel_dispatches": 0, "nr_bounce_dispatches": 0, "nr_failed_dispatches": 0, "nr_sched_congested": 0}"#;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "scx_pilot-auth-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Agent {
    child: Child,
    base: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(args: &[&str]) -> Agent {
        let mut child = Command::new(BIN)
            .args(["--api-only"])
            .args(args)
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
        }
    }

    fn post(&self, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
        let mut req = ureq::post(&format!("{}{path}", self.base))
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

    fn stop(&mut self) -> String {
        // SAFETY: kill(2) on our own child's PID.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) },
            0
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let the reader thread take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn first_start_creates_a_0600_token_that_writes_need_and_logs_never_show() {
    let dir = TempDir::new();
    let state_dir = dir.0.join("state");
    let state = state_dir.to_str().unwrap();
    let mut agent = Agent::start(&["--listen", "127.0.0.1:0", "--state-dir", state]);
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
    let (s, body) = agent.post("/api/v1/scheduling/strategies", strategies, None);
    assert_eq!(s, 401, "{body}");
    assert!(body.contains(r#""success":false"#), "{body}");
    let (s, _) = agent.post(
        "/api/v1/scheduling/strategies",
        strategies,
        Some("0123456789abcdef-wrong"),
    );
    assert_eq!(s, 401);
    let (s, body) = agent.post("/api/v1/scheduling/strategies", strategies, Some(&token));
    assert_eq!(s, 200, "{body}");
    let (s, _) = agent.post("/api/v1/metrics", METRICS, Some(&token));
    assert_eq!(s, 200);
    let (s, _) = agent.post("/api/v1/metrics", "{bad", Some(&token));
    assert_eq!(s, 400);
    // Reads stay open.
    let r = ureq::get(&format!(
        "{}/api/v1/scheduling/strategies/config",
        agent.base
    ))
    .call()
    .unwrap();
    assert!(r.into_string().unwrap().contains(&pid));

    let log = agent.stop();
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
    let mut again = Agent::start(&["--listen", "127.0.0.1:0", "--state-dir", state]);
    let (s, _) = again.post("/api/v1/metrics", METRICS, Some(&token));
    assert_eq!(s, 200);
    again.stop();
    assert_eq!(std::fs::read_to_string(&token_path).unwrap().trim(), token);
}

#[test]
fn a_token_file_others_can_read_is_refused() {
    let dir = TempDir::new();
    let file = dir.0.join("token");
    std::fs::write(&file, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(BIN)
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
    let mut agent = Agent::start(&[
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        file.to_str().unwrap(),
    ]);
    let (s, _) = agent.post(
        "/api/v1/metrics",
        METRICS,
        Some("0123456789abcdef0123456789abcdef"),
    );
    assert_eq!(s, 200);
    agent.stop();

    // Too short a token is refused.
    std::fs::write(&file, "short\n").unwrap();
    let out = Command::new(BIN)
        .args(["--api-only", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shorter than 16"));
}

#[test]
fn auth_none_is_explicit_and_warns_louder_off_loopback() {
    let dir = TempDir::new();
    let state = dir.0.join("state");
    let mut agent = Agent::start(&[
        "--listen",
        "127.0.0.1:0",
        "--auth",
        "none",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let (s, _) = agent.post("/api/v1/metrics", METRICS, None);
    assert_eq!(s, 200);
    let log = agent.stop();
    assert!(log.contains("--auth none: anyone who can reach"), "{log}");
    assert!(!log.contains("non-loopback"), "{log}");
    assert!(!state.join("token").exists(), "--auth none made a token");

    let mut agent = Agent::start(&["--listen", "0.0.0.0:0", "--auth", "none"]);
    let log = agent.stop();
    assert!(
        log.contains("writes are open on a non-loopback address"),
        "{log}"
    );
}

#[test]
fn wrong_host_is_refused_over_real_http() {
    use std::io::{Read, Write};
    let mut agent = Agent::start(&["--listen", "127.0.0.1:0", "--auth", "none"]);
    let addr = agent.base.trim_start_matches("http://").to_string();
    let send = |host: &str| {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            c,
            "POST /api/v1/metrics HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{METRICS}",
            METRICS.len()
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
    let log = agent.stop();
    assert!(
        log.contains("write rejected: POST /api/v1/metrics from 127.0.0.1:")
            && log.contains(" 403 "),
        "{log}"
    );
}

#[test]
fn write_rate_limit_answers_429_over_real_http() {
    let mut agent = Agent::start(&[
        "--listen",
        "127.0.0.1:0",
        "--auth",
        "none",
        "--write-rate-limit",
        "2",
    ]);
    let codes: Vec<u16> = (0..4)
        .map(|_| agent.post("/api/v1/metrics", METRICS, None).0)
        .collect();
    assert_eq!(&codes[..2], &[200, 200], "{codes:?}");
    assert!(codes[2..].contains(&429), "{codes:?}");
    let log = agent.stop();
    assert!(
        log.lines()
            .any(|l| l.contains("write rejected") && l.contains(" 429 ")),
        "{log}"
    );
}
