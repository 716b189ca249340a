//! The scheduler benchmarks' report scripts (scripts/bench/*.py) turn guest
//! logs into per-boot tables, the median summary over boots, the plot, the
//! issue-20 PASS/MISS table, the BPF cost table and the wakeup segments. Their
//! Python unittest runs here, on synthesized logs in the guest scripts'
//! formats, so `cargo test` fails when it does.

#[path = "fixtures/tools.rs"]
mod tools;

use std::path::Path;
use std::process::Command;

#[test]
fn sched_report_scripts_pass_their_unittest() {
    let python = tools::require("python3", "python3");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench");
    let out = Command::new(python)
        .args(["-m", "unittest", "discover", "-v", "-s"])
        .arg(&dir)
        .current_dir(&dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run python3 -m unittest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python unittest failed:\n{stderr}");
    // discover finds nothing when the tests moved: that must not pass.
    assert!(
        stderr.contains("Ran ") && !stderr.contains("Ran 0 tests"),
        "no tests ran:\n{stderr}"
    );
}
