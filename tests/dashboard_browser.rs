//! `GET /dashboard` in a real browser: headless Chromium (Debian `chromium`,
//! driven by playwright-core from npm) loads the page from the real agent,
//! waits for live data, sees the charts grow as new reports arrive, posts a
//! strategy from the page's editor (refused without the token, saved with it)
//! and checks that the API's answer changed; the alerts, pod stats and
//! strategy stats panels show a firing alert, a pod (a sleeping process in a
//! pod-like cgroup named by a --pods-file, so this test needs root) and both
//! strategies with figures. Screenshots (laptop and phone width) are kept in
//! target/dashboard-test/ as artifacts.
//!
//! chromium comes from `scripts/deps.sh vm`; playwright-core (1.65.1, no
//! browser download) is installed into target/tmp/npm when missing.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[path = "fixtures/agent.rs"]
mod agent;

use agent::{hierarchies, ids, kubelet_path, write_pods_file, Agent, PodCgroup, TempDir};

const PLAYWRIGHT: &str = "playwright-core@1.65.1";

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

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?}: {status}");
}

/// chromium (apt, through scripts/deps.sh) and playwright-core (npm, into
/// `dir`), installed when missing.
fn ensure_browser(dir: &Path) {
    if !Path::new("/usr/bin/chromium").exists() {
        let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/deps.sh");
        run(Command::new("bash").arg(deps).arg("vm"));
    }
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "no /usr/bin/chromium after scripts/deps.sh vm"
    );
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        std::fs::create_dir_all(dir).unwrap();
        run(Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(dir)
            .arg(PLAYWRIGHT)
            // playwright-core downloads no browser; say so anyway.
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"));
    }
}

#[test]
fn dashboard_shows_live_data_and_posts_strategies_in_chromium() {
    let npm_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("npm");
    ensure_browser(&npm_dir);
    // The script must sit beside node_modules for ES module resolution.
    let script = npm_dir.join("dashboard_browser.mjs");
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
    let out = Command::new("node")
        .arg(&script)
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
    assert!(out_dir.join("dashboard-phone.png").exists());
}
