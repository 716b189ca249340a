//! The VM scripts' first hour: `make run` when the API's host port is taken, a
//! qemu that refuses its options, and `make run` stopped from its console or by
//! a signal. The first two must say what is wrong at once, not after a kernel
//! download or three boot attempts; a stop from the console is what `make run`
//! tells the user to do, not an error; a signal must not leave a VM running
//! that holds the port. No qemu runs here (a stand-in plays it); the real boots are in
//! scripts/vm-test.sh.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// The file in which the stand-in qemu of `boot_sh` records each start (a line).
fn starts_file(dir: &TempDir) -> std::path::PathBuf {
    dir.join("starts")
}

/// How many times boot.sh started the stand-in qemu.
fn qemu_starts(dir: &TempDir) -> usize {
    std::fs::read_to_string(starts_file(dir))
        .unwrap_or_default()
        .lines()
        .count()
}

/// boot.sh with a stand-in kernel directory and initramfs in `dir`, and `qemu`
/// (a shell script body, run after the start is recorded) as its qemu.
fn boot_sh(dir: &TempDir, qemu: &str) -> Command {
    let kernel = dir.join("kernel");
    std::fs::create_dir(&kernel).unwrap();
    for f in ["vmlinuz", "config"] {
        std::fs::write(kernel.join(f), "").unwrap();
    }
    std::fs::write(kernel.join("version"), "9.9.9-stand-in\n").unwrap();
    std::fs::write(dir.join("initrd"), "").unwrap();
    let stand_in = dir.join("qemu-stand-in");
    let starts = starts_file(dir);
    std::fs::write(
        &stand_in,
        format!("#!/bin/sh\necho x >> '{}'\n{qemu}", starts.display()),
    )
    .unwrap();
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = script("scripts/vm/boot.sh");
    cmd.arg(dir.join("initrd"))
        .env("KERNEL_DIR", &kernel)
        .env("VM_QEMU", &stand_in)
        .env("VM_LOG", dir.join("console.log"))
        // Its private files (mktemp) in the test's directory, where a test can see them.
        .env("TMPDIR", dir.path())
        .stdin(Stdio::null());
    cmd
}

#[test]
fn boot_sh_names_a_qemu_error_and_does_not_retry_it() {
    let dir = TempDir::new("vm_scripts");
    let qemu = "echo \"qemu-stand-in: -netdev user,id=n0,hostfwd=tcp:127.0.0.1:1-:8080: \
                Could not set up host forwarding rule 'tcp:127.0.0.1:1-:8080'\" >&2\nexit 1\n";
    let out = boot_sh(&dir, qemu)
        .env("VM_HOSTFWD", "tcp:127.0.0.1:1-:8080")
        .env("VM_BOOT_RETRIES", "2")
        .output()
        .expect("run scripts/vm/boot.sh");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "stderr: {err}");
    assert_eq!(
        qemu_starts(&dir),
        1,
        "qemu started once, not retried: {err}"
    );
    assert!(err.contains("qemu did not start: -netdev"), "stderr: {err}");
    assert!(err.contains("is in use"), "says the port is taken: {err}");
}

/// Polls `done` every 50 ms for up to `secs` seconds.
fn within(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// Whether `pid` is a live process (not gone, not a zombie awaiting its parent).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Starts boot.sh with a stand-in qemu that would run for five minutes, sends
/// boot.sh `signal`, and returns boot.sh's exit code and stderr once it and the
/// stand-in are gone; panics when either outlives the signal.
fn stop_boot_sh(signal: &str) -> (Option<i32>, String) {
    let dir = TempDir::new("vm_scripts");
    let qemu_pid = dir.join("qemu.pid");
    // A VM that would run for five minutes; exec keeps the pid the script wrote.
    let qemu = format!("echo $$ > '{}'\nexec sleep 300\n", qemu_pid.display());
    let mut boot = boot_sh(&dir, &qemu)
        .env("VM_TIMEOUT", "300")
        .env("VM_RT_TIMERS", "0")
        .stdout(Stdio::null())
        // A file, not a pipe: what boot.sh leaves behind must not hang this test.
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .expect("start scripts/vm/boot.sh");
    let mut pid = String::new();
    assert!(
        within(20, || {
            pid = std::fs::read_to_string(&qemu_pid)
                .unwrap_or_default()
                .trim()
                .to_owned();
            !pid.is_empty()
        }),
        "the stand-in qemu never started"
    );
    assert!(alive(&pid));

    let status = Command::new("kill")
        .args([signal, &boot.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exited = None;
    let stopped = within(20, || {
        exited = boot.try_wait().unwrap();
        exited.is_some()
    });
    if !stopped {
        let _ = boot.kill();
    }
    let qemu_gone = within(15, || !alive(&pid));
    if !qemu_gone {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    }
    let _ = boot.wait();
    let err = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    assert!(stopped, "boot.sh kept running after {signal}: {err}");
    assert!(qemu_gone, "qemu (pid {pid}) outlived boot.sh: {err}");
    // Its console capture and qemu's pid file go with it, even after SIGKILL.
    let mut left = Vec::new();
    let cleaned = within(10, || {
        left = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("scx_pilot-vm-console."))
            .collect();
        left.is_empty()
    });
    assert!(cleaned, "boot.sh left {left:?} after {signal}: {err}");
    (exited.and_then(|s| s.code()), err)
}

/// What `timeout 60 make run` sends, and what run.sh passes on when make dies.
#[test]
fn boot_sh_stops_qemu_when_it_is_stopped() {
    let (code, err) = stop_boot_sh("-TERM");
    assert_eq!(code, Some(143), "stderr: {err}");
    assert!(
        err.contains("stopped by SIGTERM"),
        "says why it stopped: {err}"
    );
}

/// A boot.sh that cannot clean up (SIGKILL, the OOM killer) still takes qemu with it.
#[test]
fn qemu_does_not_outlive_a_killed_boot_sh() {
    let (code, err) = stop_boot_sh("-KILL");
    assert_eq!(code, None, "killed by the signal: {err}");
}

#[test]
fn a_stop_from_the_console_is_not_an_error() {
    let dir = TempDir::new("vm_scripts");
    // What qemu prints on the console for Ctrl-A x, before the guest script ran.
    let qemu = "echo 'Booting the kernel'\nprintf 'QEMU: Terminated\\n\\r'\nexit 0\n";
    let out = boot_sh(&dir, qemu)
        .env("VM_BOOT_RETRIES", "2")
        .output()
        .expect("run scripts/vm/boot.sh");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    assert!(err.contains("stopped from its console"), "stderr: {err}");
    assert!(!err.contains("error"), "stderr: {err}");
    assert_eq!(qemu_starts(&dir), 1, "not booted again: {err}");
}

/// A stand-in qemu whose first boot starts the guest script and then hits the
/// int3 race; the next boots run the script to its end. Returns boot.sh's exit
/// code, stderr and how many times qemu started.
fn int3_after_start(restart: &str) -> (Option<i32>, String, usize) {
    let dir = TempDir::new("vm_scripts");
    let qemu = format!(
        "echo 'VM-GUEST-START uptime=1.00'\n\
         if [ \"$(wc -l < '{starts}')\" -eq 1 ]; then\n\
         echo '[    9.54] Oops: int3: 0000 [#1] SMP NOPTI'\n\
         echo '[    9.56] Kernel panic - not syncing: Fatal exception in interrupt'\n\
         exit 0\nfi\n\
         echo 'VM-TEST-EXIT=0'\nexit 0\n",
        starts = starts_file(&dir).display()
    );
    let out = boot_sh(&dir, &qemu)
        .env("VM_BOOT_RETRIES", "2")
        .env("VM_RESTART_ON_INT3", restart)
        .output()
        .expect("run scripts/vm/boot.sh");
    (out.status.code(), stderr(&out), qemu_starts(&dir))
}

/// `make run` sets VM_RESTART_ON_INT3: the agent starts again in a fresh VM.
#[test]
fn make_run_restarts_a_vm_the_int3_race_stopped() {
    let (code, err, starts) = int3_after_start("1");
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(starts, 2, "stderr: {err}");
    assert!(err.contains("starting the VM again"), "stderr: {err}");
}

/// A test's checks already ran once: the race fails it, named, with no second run.
#[test]
fn a_test_vm_the_int3_race_stopped_fails() {
    let (code, err, starts) = int3_after_start("0");
    assert_eq!(code, Some(125), "stderr: {err}");
    assert_eq!(starts, 1, "stderr: {err}");
    assert!(err.contains("Oops: int3"), "names the race: {err}");
}
