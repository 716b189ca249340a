//! The agent's answers as its clients read them: only the fields a client
//! uses, each with a default, so a field the agent leaves out reads as empty
//! instead of failing the whole answer.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Counter values by their JSON field name (`nr_queued`, ...).
pub type CounterValues = BTreeMap<String, u64>;

/// Per-second rates by their JSON field name (`kernel_dispatches_per_s`, ...).
pub type RateValues = BTreeMap<String, f64>;

/// The body of an error answer.
#[derive(Debug, Deserialize)]
pub struct ErrorReply {
    pub error: String,
}

/// `GET /api/v1/metrics`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MetricsReply {
    /// "kernel", "user" or "api-only".
    pub mode: Option<String>,
    /// The agent's own scheduler; none until its first sample.
    pub metrics: Option<SchedulerReading>,
    /// The newest report of each external scheduler, most recent first.
    pub external: Vec<ExternalReading>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SchedulerReading {
    pub timestamp: Option<String>,
    pub data: CounterValues,
    pub policy: CounterValues,
    /// Over the agent's last sample interval; none after its first sample.
    pub rates: Option<RateValues>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExternalReading {
    pub received_at: Option<String>,
    pub data: CounterValues,
}

/// `GET /health` (200 healthy, 503 unhealthy: the same shape).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HealthReply {
    /// "healthy" or "unhealthy".
    pub status: Option<String>,
    /// Why the agent is unhealthy.
    pub problems: Vec<String>,
    pub components: HealthComponents,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HealthComponents {
    pub scheduler: SchedulerHealth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SchedulerHealth {
    pub attached: bool,
    pub ops_name: Option<String>,
    pub restarts: u64,
    pub last_exit: Option<String>,
}

/// `GET /api/v1/scheduling/strategies/config`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StrategyConfigReply {
    /// As posted, in order.
    pub strategies: Vec<ConfiguredStrategy>,
}

/// A posted strategy with what it resolved to.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConfiguredStrategy {
    pub priority: bool,
    /// The time slice in nanoseconds.
    #[serde(rename = "execution_time")]
    pub execution_time_ns: u64,
    pub pid: Option<u64>,
    pub selectors: Option<Vec<LabelSelector>>,
    pub command_regex: Option<String>,
    pub resolution: Resolution,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LabelSelector {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Resolution {
    /// PIDs the strategy covers now.
    pub pids: Vec<u64>,
    /// Why it covers nothing (or less than it matches).
    pub note: Option<String>,
}

/// `GET /api/v1/pods/pids`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PodsReply {
    /// One entry per pod container with processes.
    pub pods: Vec<PodContainer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PodContainer {
    pub pod_uid: String,
    /// Empty when unknown.
    pub pod_name: String,
    /// Empty when unknown.
    pub namespace: String,
    pub processes: Vec<PodProcess>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PodProcess {
    pub pid: u64,
}
