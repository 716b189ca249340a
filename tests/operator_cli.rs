//! The operator's first hour, through the real binary: `--api-only` as a
//! normal user (state in the user's own directory), scheduler mode without
//! root (one line, nothing written), errors that name their path, the
//! commands' `--help`, durations with units, the probes, and a browser
//! opening the listen URL.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[path = "fixtures/agent.rs"]
mod agent;

use agent::{Agent, TempDir, BIN};

/// The user the non-root runs are made as (nobody on Debian).
const USER: u32 = 65534;

/// A copy of the binary that `USER` can run whatever the checkout's
/// permissions (a clone under /root is not traversable by other users), in a
/// directory of its own that goes when the caller drops it: once the command
/// has started (spawn returns after the exec), the copy is no longer needed.
fn user_bin() -> (TempDir, PathBuf) {
    let dir = TempDir::new("user_bin");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("scx_pilot");
    std::fs::copy(BIN, &path).unwrap();
    (dir, path)
}

/// A fresh directory owned by `USER`.
fn user_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    std::os::unix::fs::chown(dir.path(), Some(USER), Some(USER)).unwrap();
    dir
}

/// The agent run as `USER` with only HOME (and `env`) in its environment.
/// Keep the returned directory until the command has started.
fn as_user(home: &Path, env: &[(&str, &Path)]) -> (Command, TempDir) {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root (to run the binary as another user)"
    );
    let (bin_dir, bin) = user_bin();
    let mut cmd = Command::new(bin);
    cmd.env_clear().env("HOME", home).uid(USER).gid(USER);
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd, bin_dir)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Everything under `dir`, relative.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            found.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            }
        }
    }
    found
}

#[test]
fn api_only_starts_as_a_normal_user_with_state_in_its_home() {
    let home = user_dir("home");
    let state = home.join(".local/state/scx_pilot");
    let (mut cmd, _bin) = as_user(home.path(), &[]);
    cmd.args(["--api-only", "--listen", "127.0.0.1:0"]);
    let mut a = Agent::spawn(cmd, &state);
    // The token (and the JWT key pair) are the user's, in its state dir.
    let token = std::fs::metadata(state.join("token")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&token), USER);
    assert_eq!(token.permissions().mode() & 0o777, 0o600);
    assert!(state.join("jwt_private.pem").is_file());
    // The log points a browser at the dashboard.
    let dashboard = format!("dashboard: {}/dashboard", a.base);
    let log = a.stderr_once(&dashboard);
    assert!(log.contains(&format!("{}/token", state.display())), "{log}");
    assert!(log.contains(&dashboard), "{log}");
    assert_eq!(a.get("/livez")["status"], "alive");
    assert_eq!(a.get("/readyz")["status"], "ready");
    assert_eq!(a.terminate(), Some(0), "{}", a.stderr_text());

    // $XDG_STATE_HOME wins over HOME.
    let xdg = user_dir("xdg");
    let state = xdg.join("scx_pilot");
    let (mut cmd, _bin) = as_user(home.path(), &[("XDG_STATE_HOME", xdg.path())]);
    cmd.args(["--api-only", "--listen", "127.0.0.1:0", "--jwt", "off"]);
    let mut a = Agent::spawn(cmd, &state);
    assert!(state.join("token").is_file(), "{}", a.stderr_text());
    assert_eq!(a.terminate(), Some(0));
}

#[test]
fn scheduler_mode_without_root_says_so_in_one_line_and_writes_nothing() {
    let home = user_dir("home");
    let (mut cmd, _bin) = as_user(home.path(), &[]);
    let out = cmd.args(["--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("scx_pilot: error: "), "{err}");
    assert!(err.contains("needs root"), "{err}");
    assert!(err.contains("sudo") && err.contains("--api-only"), "{err}");
    assert_eq!(tree(home.path()), Vec::<PathBuf>::new());
}

#[test]
fn an_unwritable_state_dir_is_named_with_the_flag_to_pass() {
    // A home the user cannot write (root's, mode 0755).
    let home = TempDir::new("home");
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (mut cmd, _bin) = as_user(home.path(), &[]);
    cmd.args(["--api-only", "--listen", "127.0.0.1:0", "--jwt", "off"]);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let last = err.lines().last().unwrap();
    let dir = home.join(".local/state/scx_pilot");
    assert!(last.contains(&dir.display().to_string()), "{err}");
    assert!(last.contains("Permission denied"), "{err}");
    assert!(last.contains("--state-dir"), "{err}");

    // A state dir of another user (an earlier sudo run) is refused by name.
    let root_state = TempDir::new("root_state");
    std::fs::set_permissions(root_state.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let (mut cmd, _bin) = as_user(home.path(), &[]);
    cmd.arg("--state-dir")
        .arg(root_state.path())
        .args(["--api-only", "--listen", "127.0.0.1:0"]);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.lines()
            .last()
            .unwrap()
            .contains(&root_state.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn every_command_has_its_own_help() {
    let help = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let top = help(&["--help"]);
    for word in ["status", "strategies", "top", "crd"] {
        assert!(
            top.lines()
                .any(|l| l.trim_start().starts_with(&format!("{word} "))),
            "{word} not listed:\n{top}"
        );
    }
    for heading in [
        "Scheduler:",
        "API:",
        "Security:",
        "Kubernetes:",
        "Alerts:",
        "Observability:",
    ] {
        assert!(top.lines().any(|l| l == heading), "{heading}\n{top}");
    }
    // Each flag under its own heading, e.g. --listen under API.
    let section = |text: &str, heading: &str| -> String {
        text.split(&format!("\n{heading}\n"))
            .nth(1)
            .unwrap()
            .split("\n\n\n")
            .next()
            .unwrap()
            .to_string()
    };
    assert!(section(&top, "API:").contains("--listen"), "{top}");
    assert!(section(&top, "Scheduler:").contains("--slice-us <DURATION>"));
    for (args, usage, flag) in [
        (
            &["status", "--help"][..],
            "Usage: scx_pilot status",
            "--timeout",
        ),
        (
            &["strategies", "--help"],
            "Usage: scx_pilot strategies",
            "get",
        ),
        (
            &["strategies", "set", "--help"],
            "Usage: scx_pilot strategies set",
            "--file",
        ),
        (&["top", "--help"], "Usage: scx_pilot top", "--once"),
        (&["crd", "--help"], "Usage: scx_pilot crd", "--help"),
        (&["help", "status"], "Usage: scx_pilot status", "--url"),
    ] {
        let text = help(args);
        assert!(text.contains(usage), "{args:?}:\n{text}");
        assert!(text.contains(flag), "{args:?}:\n{text}");
    }
    // Agent flags are not a command's.
    let out = Command::new(BIN)
        .args(["status", "--slice-us", "5ms"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn durations_with_units_reach_the_agent() {
    let a = Agent::start_temp("durations", &["--sample-interval-ms", "2s"]);
    assert_eq!(
        a.get("/health")["components"]["sampler"]["interval_ms"],
        2000
    );
    drop(a);
    let dir = TempDir::new("durations_bad");
    let out = agent::command(dir.path())
        .args(["--api-only", "--sample-interval-ms", "1500us"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("not a whole number of milliseconds"), "{err}");
}

#[test]
fn a_browser_opening_the_listen_url_gets_the_dashboard() {
    let a = Agent::start_temp("browser", &[]);
    let http = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(10))
        .build();
    let browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let resp = http
        .get(&a.url("/"))
        .set("Accept", browser_accept)
        .call()
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.header("Location"), Some("/dashboard"));
    // JSON clients, curl (*/*) and clients without Accept get the index.
    for accept in [Some("application/json"), Some("*/*"), None] {
        let mut req = http.get(&a.url("/"));
        if let Some(accept) = accept {
            req = req.set("Accept", accept);
        }
        let resp = req.call().unwrap();
        assert_eq!(resp.status(), 200, "{accept:?}");
        let index: serde_json::Value = resp.into_json().unwrap();
        assert_eq!(index["name"], "scx_pilot", "{accept:?}");
    }
    // Following the redirect lands on the page.
    let page = ureq::get(&a.url("/"))
        .set("Accept", browser_accept)
        .call()
        .unwrap();
    assert_eq!(page.get_url(), a.url("/dashboard"));
    assert!(page.content_type().starts_with("text/html"));
}
