//! The systemd service: the unit passes `systemd-analyze verify`, the notify
//! protocol (READY only once the API answers, STOPPING on SIGTERM), journal
//! priority prefixes, and scripts/install.sh (idempotent, DESTDIR).
//!
//! The VM test (scripts/vm-notify-test.sh) checks READY against a really
//! attached scheduler; here the agent runs `--api-only`.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[path = "fixtures/agent.rs"]
mod agent;
#[path = "fixtures/tools.rs"]
mod tools;

use agent::{TempDir, BIN};

fn unit() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("systemd/scx_pilot.service")).unwrap()
}

/// Values of `key=` in the unit, in order.
fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    tools::require("systemd-analyze", "systemd");
    let dir = TempDir::new("deploy");
    // verify checks that ExecStart's binary exists: point it at the one built.
    let path = dir.join("scx_pilot.service");
    std::fs::write(&path, unit().replace("/usr/local/bin/scx_pilot", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify complained:\n{stderr}"
    );
}

#[test]
fn unit_has_what_the_issue_asks_for() {
    let u = unit();
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "StateDirectory=scx_pilot",
        "EnvironmentFile=-/etc/default/scx_pilot",
        "ConditionPathIsDirectory=/sys/kernel/sched_ext",
        "LimitMEMLOCK=infinity",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(u.lines().any(|l| l == line), "missing {line}");
    }
    let caps = values(&u, "CapabilityBoundingSet").join(" ");
    for cap in [
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_SYS_ADMIN",
        "CAP_SYS_RESOURCE",
    ] {
        assert!(caps.split(' ').any(|c| c == cap), "{cap} not in {caps}");
    }
    let filter = values(&u, "SystemCallFilter").join(" ");
    assert!(filter.split(' ').any(|s| s == "bpf"), "{filter}");
    assert!(
        !filter.contains('~'),
        "a deny list could drop bpf again: {filter}"
    );
    // The agent reads every process's /proc entry.
    assert!(!u.contains("ProtectProc=invisible") && !u.contains("ProcSubset=pid"));
    // ExecStart runs the installed binary with the flags file's options.
    assert_eq!(
        values(&u, "ExecStart"),
        ["/usr/local/bin/scx_pilot $SCX_PILOT_OPTS"]
    );
}

#[test]
fn default_flags_file_parses() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("systemd/scx_pilot.default")).unwrap();
    let opts = text
        .lines()
        .find_map(|l| l.strip_prefix("SCX_PILOT_OPTS="))
        .expect("SCX_PILOT_OPTS= line")
        .trim_matches('"')
        .to_string();
    // The flags as systemd splits them, with --help: clap rejects unknown ones.
    let out = Command::new(BIN)
        .args(opts.split_whitespace())
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{opts}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Receive one datagram within `timeout`.
fn recv(sock: &UnixDatagram, timeout: Duration) -> Option<String> {
    sock.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    sock.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn notify_ready_only_when_the_api_answers_and_stopping_on_sigterm() {
    let dir = TempDir::new("deploy");
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = agent::command(&dir.join("state"))
        .args(["--api-only", "--auth", "none", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let ready = recv(&sock, Duration::from_secs(20)).expect("no READY within 20 s");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        ready.lines().any(|l| l.starts_with("STATUS=api-only")),
        "{ready:?}"
    );
    // At READY the API already answers.
    let health = ureq::get(&format!("http://127.0.0.1:{port}/health"))
        .timeout(Duration::from_secs(5))
        .call();
    assert!(health.is_ok(), "READY before the API answered: {health:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // Nothing else until a signal.
    assert_eq!(recv(&sock, Duration::from_millis(300)), None);

    // SAFETY: kill(2) on our own child's PID.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let stopping = recv(&sock, Duration::from_secs(10)).expect("no STOPPING after SIGTERM");
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn log_lines_carry_syslog_priorities_when_stderr_is_the_journal() {
    let dir = TempDir::new("deploy");
    let log_path = dir.join("stderr");
    let file = std::fs::File::create(&log_path).unwrap();
    let meta = file.metadata().unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    // --auth none (a warning) and a port in use (an error) give one line of
    // each priority, then exit.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = agent::command(&dir.join("state"))
        .args(["--api-only", "--auth", "none", "--listen"])
        .arg(taken.local_addr().unwrap().to_string())
        .env("JOURNAL_STREAM", &stream)
        .stdout(Stdio::null())
        .stderr(file)
        .status()
        .unwrap();
    assert!(!out.success());
    let mut text = String::new();
    std::fs::File::open(&log_path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(!text.is_empty());
    for line in text.lines() {
        assert!(
            line.starts_with("<3>") || line.starts_with("<4>") || line.starts_with("<6>"),
            "line without a priority: {line:?}\n{text}"
        );
        assert!(
            !line.contains("[INFO]") && !line.contains("[WARN]"),
            "{line}"
        );
    }
    assert!(text.contains("<4>--auth none"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("<3>scx_pilot: error: cannot listen")),
        "{text}"
    );

    // Without JOURNAL_STREAM the plain format stays.
    let out = agent::command(&dir.join("state"))
        .args(["--api-only", "--auth", "none", "--listen"])
        .arg(taken.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("[WARN] --auth none"), "{text}");
    assert!(!text.contains("<4>"), "{text}");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn install_script_is_idempotent_and_keeps_the_flags_file() {
    let dir = TempDir::new("deploy");
    let dest = dir.join("root");
    let run = || {
        let out = Command::new("sh")
            .arg(Path::new(ROOT).join("scripts/install.sh"))
            .arg(BIN)
            .env("DESTDIR", &dest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run();
    let bin = dest.join("usr/local/bin/scx_pilot");
    let unit = dest.join("etc/systemd/system/scx_pilot.service");
    let flags = dest.join("etc/default/scx_pilot");
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(mode(&unit), 0o644);
    assert_eq!(mode(&flags), 0o644);
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(BIN).unwrap());
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), super_unit());
    // The operator's flags survive a second run; nothing else changes.
    std::fs::write(&flags, "SCX_PILOT_OPTS=\"--listen 0.0.0.0:9000\"\n").unwrap();
    let second = run();
    assert!(second.contains("keeping"), "{second}");
    assert_eq!(
        std::fs::read_to_string(&flags).unwrap(),
        "SCX_PILOT_OPTS=\"--listen 0.0.0.0:9000\"\n"
    );
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), super_unit());
    // No temporary files left behind.
    for d in ["usr/local/bin", "etc/systemd/system"] {
        for e in std::fs::read_dir(dest.join(d)).unwrap() {
            let name = e.unwrap().file_name();
            assert!(
                !name.to_string_lossy().starts_with('.'),
                "{name:?} left in {d}"
            );
        }
    }
}

/// The unit as installed with the default PREFIX: unchanged.
fn super_unit() -> String {
    unit()
}
