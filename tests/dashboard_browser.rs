//! `GET /dashboard` in a real browser: headless Chromium (Debian `chromium`,
//! driven by playwright-core from npm) loads the page from the real agent,
//! waits for live data, sees the charts grow as new reports arrive, posts a
//! strategy from the page's editor (refused without the token, saved with it)
//! and checks that the API's answer changed. Screenshots (laptop and phone
//! width) are kept in target/dashboard-test/ as artifacts.
//!
//! chromium comes from `scripts/deps.sh vm`; playwright-core (1.65.1, no
//! browser download) is installed into target/tmp/npm when missing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_scx_pilot");
const PLAYWRIGHT: &str = "playwright-core@1.65.1";

struct Agent {
    child: Child,
    base: String,
    state_dir: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// The agent with write tokens on (the default), in its own state dir.
fn start_agent() -> Agent {
    let state_dir =
        std::env::temp_dir().join(format!("scx_pilot_dash_state_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    let mut child = Command::new(BIN)
        .args(["--api-only", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&state_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start scx_pilot");
    let (tx, rx) = std::sync::mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("HTTP API listening on http://").nth(1) {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the agent logs its address");
    Agent {
        child,
        base: format!("http://{addr}"),
        state_dir,
    }
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
