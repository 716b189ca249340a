//! What one refresh of `scx_pilot top` shows, as printed with `--json`.

use serde::Serialize;

/// One counter with its value and per-second rate (when known).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CounterRow {
    pub name: &'static str,
    pub value: u64,
    /// Per second, over the agent's last sample interval or between two polls.
    pub rate_per_s: Option<f64>,
    /// Monotonic counter (true) or instantaneous gauge (false).
    pub counter: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StrategyRow {
    /// "pid 1234", "selectors nf=upf", "command /REGEX/", or "?" for none of them.
    pub target: String,
    pub priority: bool,
    pub execution_time_ns: u64,
    /// PIDs it covers now.
    pub pids: usize,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PodRow {
    /// Namespace/name when known, else the pod UID.
    pub pod: String,
    pub containers: usize,
    pub processes: usize,
    /// Of those, processes with a resolved strategy.
    pub with_strategy: usize,
    /// CPUs used over the agent's last stats interval; none until it has
    /// read the pod twice (or with `--stats-interval-ms 0`).
    pub cpu_usage: Option<f64>,
    /// Run-queue wait of the pod's threads, ms per second, same interval.
    pub runqueue_wait_ms_per_s: Option<f64>,
}

/// One firing alert.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    pub name: String,
    pub severity: String,
    /// Seconds since its condition began to hold; none when the agent gave no time.
    pub for_s: Option<u64>,
    /// What it is about: its labels as `key=value`, space-separated.
    pub about: String,
    pub message: String,
}

/// Everything one refresh shows.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub url: String,
    pub timestamp: String,
    pub health: String,
    pub mode: String,
    pub attached: bool,
    pub ops_name: Option<String>,
    pub restarts: u64,
    pub last_exit: Option<String>,
    /// "scheduler" (the agent's own), "external" (newest POSTed report) or "none".
    pub source: String,
    /// When the counters were read or received.
    pub counters_at: Option<String>,
    pub counters: Vec<CounterRow>,
    pub strategies_configured: usize,
    pub resolved_pids: usize,
    pub strategies: Vec<StrategyRow>,
    pub pods_total: usize,
    pub pod_processes: usize,
    pub pods: Vec<PodRow>,
    /// Alerts firing, before the rows were cut.
    pub alerts_firing: usize,
    /// Oldest first.
    pub alerts: Vec<AlertRow>,
    /// Problems the agent reports (from /health) or met while polling.
    pub problems: Vec<String>,
}
