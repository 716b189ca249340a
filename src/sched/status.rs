//! What the rest of the agent may know about the scheduler, published lock-free.

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// How the agent runs the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// scx_pilot's BPF scheduler decides everything in the kernel.
    Kernel,
    /// Normal tasks are decided by the agent's dispatcher thread (--dispatch user).
    User,
    /// No scheduler loaded: only the HTTP API runs.
    ApiOnly,
}

impl Mode {
    /// Whether this mode loads scx_pilot's own scheduler.
    pub fn runs_scheduler(self) -> bool {
        self != Mode::ApiOnly
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SchedulerStatus {
    pub mode: Mode,
    pub attached: bool,
    /// The kernel's name for the attached ops (as in /sys/kernel/sched_ext/root/ops).
    pub ops_name: Option<String>,
    pub attached_at: Option<DateTime<Utc>>,
    /// Restarts the kernel asked for since the agent started.
    pub restarts: u64,
    /// Times the kernel ejected the scheduler without asking for a restart
    /// (the agent attached it again after a backoff).
    pub reattaches: u64,
    /// Why the scheduler last left the kernel, if it did.
    pub last_exit: Option<String>,
    /// The kernel's debug dump of that exit, when it wrote one.
    pub last_exit_dump: Option<String>,
    pub last_sample_at: Option<DateTime<Utc>>,
    /// What the scheduler honours of cgroup CPU controls while it runs.
    pub cgroup_cpu: CgroupCpu,
    /// PIDs currently in the BPF strategy map.
    pub strategy_pids: usize,
    /// The dispatcher of --dispatch user; None in the other modes.
    pub dispatcher: Option<DispatcherStatus>,
}

/// The cgroup CPU controls scx_pilot's scheduler honours. Stated in /health
/// so an operator sees, on the node, that pod CPU limits are not enforced.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CgroupCpu {
    /// `cpu.weight` (pod CPU requests, systemd CPUWeight=): honoured, down
    /// the hierarchy and shared among a cgroup's runnable tasks.
    pub weights_honoured: bool,
    /// `cpu.max` (pod CPU limits, systemd CPUQuota=): not enforced while
    /// scx_pilot's scheduler runs; they apply again under the kernel's own.
    pub limits_enforced: bool,
}

impl Default for CgroupCpu {
    fn default() -> Self {
        Self {
            weights_honoured: true,
            limits_enforced: false,
        }
    }
}

/// The user-space dispatcher as /health shows it.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct DispatcherStatus {
    /// Thread id BPF recognises as the dispatcher (usersched_pid).
    pub tid: u32,
    /// Decisions it sent.
    pub decisions: u64,
    /// Times BPF bypassed it because it held tasks without answering.
    pub fallbacks: u64,
    /// Tasks BPF took back from it.
    pub recovered: u64,
    /// True while BPF dispatches without it.
    pub fallback_active: bool,
    /// Tasks in its hands at the last sample.
    pub outstanding: u64,
    /// True while the test hook holds it.
    pub paused: bool,
    /// Records its inbox could not hold, answered at once with a neutral
    /// decision (never dropped).
    pub overflows: u64,
    /// Of the tasks taken back, those it held --user-stall-ms while answering.
    pub aged: u64,
}

impl SchedulerStatus {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            attached: false,
            ops_name: None,
            attached_at: None,
            restarts: 0,
            reattaches: 0,
            last_exit: None,
            last_exit_dump: None,
            last_sample_at: None,
            cgroup_cpu: CgroupCpu::default(),
            strategy_pids: 0,
            dispatcher: None,
        }
    }
}

/// Shared, copy-on-write scheduler status: writers replace, readers never wait.
#[derive(Clone)]
pub struct StatusCell(Arc<ArcSwap<SchedulerStatus>>);

impl StatusCell {
    pub fn new(mode: Mode) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(SchedulerStatus::new(mode))))
    }

    pub fn get(&self) -> Arc<SchedulerStatus> {
        self.0.load_full()
    }

    pub fn update(&self, f: impl Fn(&mut SchedulerStatus)) {
        self.0.rcu(|cur| {
            let mut next = SchedulerStatus::clone(cur);
            f(&mut next);
            next
        });
    }
}
