//! Checks before loading, so a missing kernel feature or privilege is reported
//! as one clear sentence instead of a libbpf error dump.

use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PreflightError {
    #[error(
        "this kernel ({0}) has no sched_ext (CONFIG_SCHED_CLASS_EXT): boot a kernel that has it, \
         run `make run` to try scx_pilot in a VM, or start with --api-only"
    )]
    NoSchedExt(String),
    #[error(
        "loading a BPF scheduler needs root (CAP_SYS_ADMIN and CAP_BPF): run `sudo scx_pilot`, \
         or start with --api-only"
    )]
    NotPrivileged,
    #[error(
        "another sched_ext scheduler ({0}) is already running: stop it first \
         (e.g. `systemctl stop scx` or kill it), then start scx_pilot"
    )]
    OtherScheduler(String),
}

const SCHED_EXT: &str = "/sys/kernel/sched_ext";

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// CAP_SYS_ADMIN in the effective set (bit 21 of CapEff).
pub(crate) fn has_cap_sys_admin() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 21) != 0)
}

/// The sched_ext state file's content, e.g. "enabled" or "disabled".
pub fn sched_ext_state() -> Option<String> {
    std::fs::read_to_string(Path::new(SCHED_EXT).join("state"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The ops name of the running root scheduler, if any.
pub fn running_ops_name() -> Option<String> {
    std::fs::read_to_string(Path::new(SCHED_EXT).join("root/ops"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

pub fn check() -> Result<(), PreflightError> {
    if !Path::new(SCHED_EXT).is_dir() {
        return Err(PreflightError::NoSchedExt(kernel_release()));
    }
    if !has_cap_sys_admin() {
        return Err(PreflightError::NotPrivileged);
    }
    if sched_ext_state().as_deref() == Some("enabled") {
        return Err(PreflightError::OtherScheduler(
            running_ops_name().unwrap_or_else(|| "unknown".into()),
        ));
    }
    Ok(())
}
