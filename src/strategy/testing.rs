//! Helpers the strategy tests share.

use std::path::Path;

use super::{Strategy, ValidationContext};

pub(super) fn ctx() -> ValidationContext<'static> {
    ValidationContext {
        agent_pid: 4242,
        proc_root: Path::new("/proc"),
        check_processes: true,
    }
}

pub(super) fn pid_strategy(pid: u32, ns: u64) -> Strategy {
    Strategy {
        priority: false,
        execution_time: ns,
        pid: Some(pid),
        selectors: None,
        command_regex: None,
    }
}
