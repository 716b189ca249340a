//! The state directory is trusted only when nobody else can change it: the
//! real binary refuses to start on a directory others may write, a symlinked
//! or foreign token file; it never follows a symlink planted where a
//! temporary file goes; and a SIGKILL in the middle of strategy POSTs leaves
//! the old or the new set and no temporary files.

#[path = "fixtures/agent.rs"]
mod agent;

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

use agent::{command, Agent, TempDir};
use serde_json::{json, Value};

/// Run the agent on `state`, expecting it to refuse to start.
fn refused(state: &TempDir) -> Output {
    let out = command(state.path())
        .args(["--api-only", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run scx_pilot");
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a refusal; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find(|l| l.contains("error:"))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"))
        .to_string()
}

#[test]
fn a_state_dir_others_can_write_is_refused() {
    let state = TempDir::new("trust-0777");
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let line = error_line(&refused(&state));
    assert!(line.contains(&state.path().display().to_string()), "{line}");
    assert!(line.contains("chmod 700"), "{line}");
    // Nothing was created in it.
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}

#[test]
fn a_symlinked_or_foreign_token_file_is_refused() {
    let state = TempDir::new("trust-token");
    let secret_dir = TempDir::new("trust-secret");
    let secret = secret_dir.join("root-secret");
    let secret_text = "root-secret-0123456789abcdef";
    std::fs::write(&secret, secret_text).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let token = state.join("token");
    std::os::unix::fs::symlink(&secret, &token).unwrap();
    let out = refused(&state);
    let line = error_line(&out);
    assert!(line.contains("symlink"), "{line}");
    assert!(line.contains(&token.display().to_string()), "{line}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(secret_text));

    // A regular token file owned by another user.
    std::fs::remove_file(&token).unwrap();
    std::fs::write(&token, "someone-elses-token-0123456789").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&token, Some(65534), Some(65534)).unwrap();
    let line = error_line(&refused(&state));
    assert!(line.contains("owned by uid 65534"), "{line}");
}

fn set(regex: &str) -> Value {
    json!({"strategies": [
        {"priority": true, "execution_time": 2_000_000, "command_regex": regex},
    ]})
}

fn temp_files(state: &TempDir) -> Vec<String> {
    std::fs::read_dir(state.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect()
}

#[test]
fn a_symlink_planted_at_the_temp_path_is_not_followed() {
    let state = TempDir::new("trust-temp");
    let victim_dir = TempDir::new("trust-victim");
    let victim = victim_dir.join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let a = Agent::start(state.path(), &["--auth", "none"]);
    // Where earlier versions wrote their temporary file.
    let planted = state.join(format!(".strategies.json.tmp-{}", a.child.id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let (code, body) = a.post("/api/v1/scheduling/strategies", &set("^planted$"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    drop(a);
    // The next start removes what looks like a leftover temporary file.
    let b = Agent::start(state.path(), &["--auth", "none"]);
    assert!(temp_files(&state).is_empty(), "{:?}", temp_files(&state));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let config = b.get("/api/v1/scheduling/strategies/config");
    assert_eq!(config["strategies"][0]["command_regex"], "^planted$");
}

#[test]
fn sigkill_during_posts_leaves_the_old_or_the_new_set() {
    let state = TempDir::new("trust-kill");
    for round in 0..3u64 {
        let mut a = Agent::start(state.path(), &["--auth", "none"]);
        let base = a.base.clone();
        let poster = std::thread::spawn(move || {
            let mut posted = Vec::new();
            for i in 0.. {
                let regex = format!("^round{round}-set{i}$");
                let r = ureq::post(&format!("{base}/api/v1/scheduling/strategies"))
                    .timeout(Duration::from_secs(5))
                    .set("Content-Type", "application/json")
                    .send_string(&set(&regex).to_string());
                if r.is_err() {
                    // The agent is gone (killed mid-request).
                    posted.push(regex);
                    return posted;
                }
                posted.push(regex);
            }
            posted
        });
        std::thread::sleep(Duration::from_millis(300 + 170 * round));
        a.kill();
        let posted = poster.join().unwrap();
        assert!(posted.len() >= 2, "the poster made too few requests");

        let b = Agent::start(state.path(), &["--auth", "none"]);
        let config = b.get("/api/v1/scheduling/strategies/config");
        let kept = config["strategies"][0]["command_regex"]
            .as_str()
            .unwrap_or_else(|| panic!("no set after the restart: {config}"))
            .to_string();
        // The last two posted sets are the only ones that may have been in
        // flight when the agent died.
        let tail = &posted[posted.len().saturating_sub(2)..];
        assert!(tail.contains(&kept), "kept {kept}, last posted {tail:?}");
        assert!(temp_files(&state).is_empty(), "{:?}", temp_files(&state));
    }
}
