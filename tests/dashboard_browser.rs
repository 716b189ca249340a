//! `GET /dashboard` in a real browser: headless Chromium (Debian `chromium`,
//! driven by playwright-core from npm) loads the page from the real agent,
//! waits for live data, sees the charts grow as new reports arrive, posts a
//! strategy from the page's editor (refused without the token, saved with it)
//! and checks that the API's answer changed; the alerts, pod stats and
//! strategy stats panels show a firing alert, a pod (a sleeping process in a
//! pod-like cgroup named by a --pods-file, so this test needs root) and both
//! strategies with figures. The history charts draw a line per pod and per
//! strategy, each with its own dash pattern, number and legend name; a page
//! opened later draws the pod history the agent kept. The aria-live status
//! line names the mode and the firing alerts, and says when the agent is
//! unreachable (requests aborted by the browser). Both colour schemes are
//! emulated (`prefers-color-scheme`). Screenshots (light, dark and phone
//! width) are kept in target/dashboard-test/ as artifacts.
//!
//! chromium (apt) and playwright-core (npm, no browser download) come from
//! `scripts/deps.sh test`; without them the test fails and says so.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[path = "fixtures/agent.rs"]
mod agent;
#[path = "fixtures/tools.rs"]
mod tools;

use agent::{hierarchies, ids, kubelet_path, write_pods_file, Agent, PodCgroup, TempDir};

/// The agent with write tokens on (the default), in its own state dir, with
/// pod names from `pods_file` and strategy_no_pids firing at once.
fn start_agent(pods_file: &Path, alerts_file: &Path) -> Agent {
    Agent::start_temp(
        "dash",
        &[
            "--pods-file",
            pods_file.to_str().unwrap(),
            "--alerts-file",
            alerts_file.to_str().unwrap(),
        ],
    )
}

/// A directory for the browser script, beside playwright-core from
/// scripts/deps.sh (ES modules resolve packages from the script's directory).
fn script_dir() -> std::path::PathBuf {
    let modules = tools::require_cached("npm/node_modules");
    tools::require_cached("npm/node_modules/playwright-core/package.json");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard_browser");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("node_modules");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&modules, &link)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
    dir
}

#[test]
fn dashboard_shows_live_data_and_posts_strategies_in_chromium() {
    let chromium = tools::require("chromium", "chromium");
    let node = tools::require("node", "nodejs");
    let script = script_dir().join("browser.mjs");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard/browser.mjs"),
        &script,
    )
    .unwrap();
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("dashboard-test");
    std::fs::create_dir_all(&out_dir).unwrap();

    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test creates a pod cgroup and must run as root (make test does)"
    );
    let files = TempDir::new("dash_files");
    let h = hierarchies()
        .into_iter()
        .next()
        .expect("a cgroup hierarchy");
    let (uid, cid) = ids(91);
    let mut pod = PodCgroup::create(&h, "dash", &kubelet_path(&h, &uid, &cid));
    pod.spawn(Path::new("/bin/sleep"), &["600"]);
    let pods_file = files.path().join("pods.json");
    write_pods_file(
        &pods_file,
        &[(&uid, "dash-pod", "demo", &[("app", "dash")])],
    );
    let alerts_file = files.path().join("alerts.json");
    std::fs::write(&alerts_file, r#"{"strategy_no_pids": {"for_secs": 0}}"#).unwrap();
    let agent = start_agent(&pods_file, &alerts_file);
    let token = std::fs::read_to_string(agent.state_dir.join("token"))
        .expect("the agent wrote its token file")
        .trim()
        .to_string();
    // A live process to target: this test.
    let pid = std::process::id().to_string();
    let out = Command::new(&node)
        .arg(&script)
        .env("CHROMIUM", &chromium)
        .args([&agent.base, &token])
        .arg(&out_dir)
        .arg(&pid)
        .arg("demo/dash-pod")
        .output()
        .expect("run node (Node.js 18+)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    eprintln!("dashboard: {result} (screenshots in {})", out_dir.display());
    let bytes = result["first_load_with_first_poll_bytes"].as_u64().unwrap();
    assert!(
        bytes > 1000 && bytes < 300 * 1024,
        "first load {bytes} bytes"
    );
    assert!(out_dir.join("dashboard.png").exists());
    assert!(out_dir.join("dashboard-dark.png").exists());
    assert!(out_dir.join("dashboard-phone.png").exists());
}
