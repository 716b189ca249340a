//! Where the agent keeps its state when `--state-dir` is not given: the
//! system directory as root (systemd's StateDirectory=, the DaemonSet's
//! hostPath), else the user's own state directory (XDG base directory
//! specification), so `--api-only` starts for any user without a flag.

use std::path::PathBuf;

/// The state directory of a system-wide (root) agent.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/scx_pilot";

/// The state directory for this user: [`SYSTEM_STATE_DIR`] as root, else
/// `$XDG_STATE_HOME/scx_pilot`, else `$HOME/.local/state/scx_pilot`; with
/// neither set, the system directory (whose error then names it).
pub fn default_state_dir() -> PathBuf {
    // SAFETY: geteuid has no memory effects and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let env_dir = |name| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if root {
        return PathBuf::from(SYSTEM_STATE_DIR);
    }
    if let Some(state_home) = env_dir("XDG_STATE_HOME") {
        return state_home.join("scx_pilot");
    }
    match env_dir("HOME") {
        Some(home) => home.join(".local/state/scx_pilot"),
        None => PathBuf::from(SYSTEM_STATE_DIR),
    }
}
