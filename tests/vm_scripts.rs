//! The VM scripts' first-hour failures: `make run` when the API's host port is
//! taken, and a qemu that refuses its options. Both must say what is wrong at
//! once, not after a kernel download or three boot attempts. No qemu runs here
//! (a stand-in prints qemu's error); the real boots are in scripts/vm-test.sh.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

#[path = "fixtures/temp.rs"]
mod temp;

use temp::TempDir;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn script(rel: &str) -> Command {
    Command::new(Path::new(ROOT).join(rel))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn run_sh_refuses_a_taken_port_before_anything_else() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().unwrap().port();
    let out = script("scripts/vm/run.sh")
        .env("BIN", "/bin/true")
        .env("SCX_PILOT_PORT", port.to_string())
        // Reached only past the check: a kernel.sh run would fail on this.
        .env("KERNEL_DIR", "/nonexistent")
        .output()
        .expect("run scripts/vm/run.sh");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port} is already in use")),
        "stderr: {err}"
    );
    assert!(err.contains("SCX_PILOT_PORT="), "names the way out: {err}");
    assert!(!err.contains("booting"), "stopped before the boot: {err}");
}

#[test]
fn boot_sh_names_a_qemu_error_and_does_not_retry_it() {
    let dir = TempDir::new("vm_scripts");
    let kernel = dir.join("kernel");
    std::fs::create_dir(&kernel).unwrap();
    for f in ["vmlinuz", "config"] {
        std::fs::write(kernel.join(f), "").unwrap();
    }
    std::fs::write(kernel.join("version"), "9.9.9-stand-in\n").unwrap();
    std::fs::write(dir.join("initrd"), "").unwrap();
    let calls = dir.join("calls");
    let qemu = dir.join("qemu-stand-in");
    std::fs::write(
        &qemu,
        format!(
            "#!/bin/sh\necho x >> '{}'\n\
             echo \"qemu-stand-in: -netdev user,id=n0,hostfwd=tcp:127.0.0.1:1-:8080: \
             Could not set up host forwarding rule 'tcp:127.0.0.1:1-:8080'\" >&2\nexit 1\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = script("scripts/vm/boot.sh")
        .arg(dir.join("initrd"))
        .env("KERNEL_DIR", &kernel)
        .env("VM_QEMU", &qemu)
        .env("VM_HOSTFWD", "tcp:127.0.0.1:1-:8080")
        .env("VM_LOG", dir.join("console.log"))
        .env("VM_BOOT_RETRIES", "2")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run scripts/vm/boot.sh");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "stderr: {err}");
    let attempts = std::fs::read_to_string(&calls)
        .unwrap_or_default()
        .lines()
        .count();
    assert_eq!(attempts, 1, "qemu started once, not retried: {err}");
    assert!(err.contains("qemu did not start: -netdev"), "stderr: {err}");
    assert!(err.contains("is in use"), "says the port is taken: {err}");
}
