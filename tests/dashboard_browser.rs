//! `GET /dashboard` in a real browser: headless Chromium (Debian `chromium`,
//! driven by playwright-core from npm) loads the page from the real agent,
//! waits for live data, sees the charts grow as new reports arrive, posts a
//! strategy from the page's editor (refused without the token, saved with it)
//! and checks that the API's answer changed. Screenshots (laptop and phone
//! width) are kept in target/dashboard-test/ as artifacts.
//!
//! chromium comes from `scripts/deps.sh vm`; playwright-core (1.65.1, no
//! browser download) is installed into target/tmp/npm when missing.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[path = "fixtures/agent.rs"]
mod agent;

use agent::Agent;

const PLAYWRIGHT: &str = "playwright-core@1.65.1";

/// The agent with write tokens on (the default), in its own state dir.
fn start_agent() -> Agent {
    Agent::start_temp("dash", &[])
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

    let agent = start_agent();
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
