//! The answers `top` reads besides the ones the operator commands share
//! ([`crate::client::replies`]): per-pod figures and firing alerts. Only the
//! fields shown, each with a default, so a field the agent leaves out reads
//! as empty instead of failing the refresh.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The last interval's figures only: `top` draws no history.
pub const POD_STATS_PATH: &str = "/api/v1/pods/stats?points=0";
pub const ALERTS_PATH: &str = "/api/v1/alerts";

/// `GET /api/v1/pods/stats`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PodStatsReply {
    pub pods: Vec<PodFigures>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PodFigures {
    pub uid: String,
    /// CPUs used over the last interval; none until two rounds saw the pod.
    pub cpu_usage: Option<f64>,
    pub runqueue_wait_ms_per_s: Option<f64>,
}

/// `GET /api/v1/alerts`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AlertsReply {
    pub data: AlertsData,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AlertsData {
    /// Firing, oldest first.
    pub active: Vec<FiringAlert>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FiringAlert {
    pub name: String,
    pub severity: String,
    /// Since when the condition holds (RFC3339).
    pub since: Option<String>,
    pub message: String,
    pub labels: BTreeMap<String, String>,
}
