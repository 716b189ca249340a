//! The alerts file (`--alerts-file PATH`): thresholds of the built-in rules.
//!
//! JSON (serde is already here, so no new parser), every field optional with
//! the defaults below, unknown keys refused (a typo would otherwise silently
//! keep a default), values range-checked at start. Errors name the field:
//! `priority_pod_wait.for_secs: must be within 0..=604800 (got 999999999)`.
//!
//! ```json
//! {
//!   "scheduler_detached":      {"enabled": true, "for_secs": 0,  "severity": "critical"},
//!   "scheduler_restarted":     {"enabled": true, "hold_secs": 600, "severity": "warning"},
//!   "sched_congested":         {"enabled": true, "max_per_s": 100, "for_secs": 10, "severity": "warning"},
//!   "failed_dispatches":       {"enabled": true, "max_per_s": 10,  "for_secs": 10, "severity": "warning"},
//!   "strategy_no_pids":        {"enabled": true, "for_secs": 60, "severity": "warning"},
//!   "priority_pod_wait":       {"enabled": true, "max_avg_wait_us_per_timeslice": 5000,
//!                               "max_wait_ms_per_s": 250, "for_secs": 10, "severity": "warning"},
//!   "kubernetes_disconnected": {"enabled": true, "for_secs": 60, "severity": "warning"},
//!   "proc_scan_failing": {"enabled": true, "for_secs": 60, "severity": "warning"},
//!   "recent_max": 100
//! }
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest `for_secs` / `hold_secs`: a week. Longer is almost surely a unit mistake.
pub const MAX_DURATION_SECS: u64 = 7 * 24 * 3600;
/// Most resolved alerts kept for `GET /api/v1/alerts`.
pub const MAX_RECENT: usize = 10_000;

/// How bad an alert is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A rule that fires when its condition has held for `for_secs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ForRule {
    pub enabled: bool,
    /// How long the condition must hold before the alert fires (0: at once).
    pub for_secs: u64,
    pub severity: Severity,
}

/// `scheduler_restarted`: fires when the kernel restarted the scheduler, and
/// resolves once `hold_secs` passed without another restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RestartRule {
    pub enabled: bool,
    pub hold_secs: u64,
    pub severity: Severity,
}

/// A counter's per-second rate above `max_per_s` for `for_secs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RateRule {
    pub enabled: bool,
    /// Fires when the rate is above this (per second).
    pub max_per_s: f64,
    pub for_secs: u64,
    pub severity: Severity,
}

/// `priority_pod_wait`: a pod with a process under a priority strategy waits
/// on run queues too long. Either threshold (null disables it) fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PodWaitRule {
    pub enabled: bool,
    /// Average run-queue wait per timeslice, µs.
    pub max_avg_wait_us_per_timeslice: Option<f64>,
    /// Run-queue wait summed over the pod's threads, ms per second.
    pub max_wait_ms_per_s: Option<f64>,
    pub for_secs: u64,
    pub severity: Severity,
}

/// Every threshold of the built-in rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub scheduler_detached: ForRule,
    pub scheduler_restarted: RestartRule,
    pub sched_congested: RateRule,
    pub failed_dispatches: RateRule,
    pub strategy_no_pids: ForRule,
    pub priority_pod_wait: PodWaitRule,
    pub kubernetes_disconnected: ForRule,
    pub proc_scan_failing: ForRule,
    /// Resolved alerts kept in `recent` (oldest dropped first).
    pub recent_max: usize,
}

impl Default for ForRule {
    fn default() -> Self {
        Self {
            enabled: true,
            for_secs: 60,
            severity: Severity::Warning,
        }
    }
}

impl Default for RestartRule {
    fn default() -> Self {
        Self {
            enabled: true,
            hold_secs: 600,
            severity: Severity::Warning,
        }
    }
}

impl Default for RateRule {
    fn default() -> Self {
        Self {
            enabled: true,
            max_per_s: 10.0,
            for_secs: 10,
            severity: Severity::Warning,
        }
    }
}

impl Default for PodWaitRule {
    fn default() -> Self {
        Self {
            enabled: true,
            max_avg_wait_us_per_timeslice: Some(5000.0),
            max_wait_ms_per_s: Some(250.0),
            for_secs: 10,
            severity: Severity::Warning,
        }
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            // A detached scheduler means every task is back on the default
            // scheduler: no strategy applies any more.
            scheduler_detached: ForRule {
                for_secs: 0,
                severity: Severity::Critical,
                ..ForRule::default()
            },
            scheduler_restarted: RestartRule::default(),
            // Congestion is routine for a user-space dispatcher under load;
            // failed insertions are not.
            sched_congested: RateRule {
                max_per_s: 100.0,
                ..RateRule::default()
            },
            failed_dispatches: RateRule::default(),
            strategy_no_pids: ForRule::default(),
            priority_pod_wait: PodWaitRule::default(),
            kubernetes_disconnected: ForRule::default(),
            proc_scan_failing: ForRule::default(),
            recent_max: 100,
        }
    }
}

/// A field with a value out of its range.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field}: {message}")]
pub struct InvalidField {
    pub field: String,
    pub message: String,
}

fn duration(field: &str, v: u64) -> Result<(), InvalidField> {
    if v > MAX_DURATION_SECS {
        return Err(InvalidField {
            field: field.into(),
            message: format!("must be within 0..={MAX_DURATION_SECS} (got {v})"),
        });
    }
    Ok(())
}

fn threshold(field: &str, v: f64) -> Result<(), InvalidField> {
    if !v.is_finite() || v < 0.0 {
        return Err(InvalidField {
            field: field.into(),
            message: format!("must be a finite number >= 0 (got {v})"),
        });
    }
    Ok(())
}

impl AlertsConfig {
    /// Range checks serde cannot express.
    pub fn validate(&self) -> Result<(), InvalidField> {
        duration(
            "scheduler_detached.for_secs",
            self.scheduler_detached.for_secs,
        )?;
        duration(
            "scheduler_restarted.hold_secs",
            self.scheduler_restarted.hold_secs,
        )?;
        for (name, r) in [
            ("sched_congested", &self.sched_congested),
            ("failed_dispatches", &self.failed_dispatches),
        ] {
            threshold(&format!("{name}.max_per_s"), r.max_per_s)?;
            duration(&format!("{name}.for_secs"), r.for_secs)?;
        }
        duration("strategy_no_pids.for_secs", self.strategy_no_pids.for_secs)?;
        let w = &self.priority_pod_wait;
        if let Some(v) = w.max_avg_wait_us_per_timeslice {
            threshold("priority_pod_wait.max_avg_wait_us_per_timeslice", v)?;
        }
        if let Some(v) = w.max_wait_ms_per_s {
            threshold("priority_pod_wait.max_wait_ms_per_s", v)?;
        }
        duration("priority_pod_wait.for_secs", w.for_secs)?;
        duration(
            "kubernetes_disconnected.for_secs",
            self.kubernetes_disconnected.for_secs,
        )?;
        duration(
            "proc_scan_failing.for_secs",
            self.proc_scan_failing.for_secs,
        )?;
        if !(1..=MAX_RECENT).contains(&self.recent_max) {
            return Err(InvalidField {
                field: "recent_max".into(),
                message: format!("must be within 1..={MAX_RECENT} (got {})", self.recent_max),
            });
        }
        Ok(())
    }

    /// Parse and validate the text of an alerts file. Errors start with the
    /// path of the offending field (`priority_pod_wait.for_secs: ...`).
    pub fn parse(text: &str) -> Result<Self, InvalidField> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let config: AlertsConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            InvalidField {
                // "." is serde_path_to_error's name for the top level.
                field: if path == "." {
                    "(top level)".into()
                } else {
                    path
                },
                message: inner.to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }
}

/// The file at `path`, or the defaults when there is none.
pub fn load(path: Option<&Path>) -> anyhow::Result<AlertsConfig> {
    use anyhow::Context;
    let Some(path) = path else {
        return Ok(AlertsConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the alerts file {}", path.display()))?;
    AlertsConfig::parse(&text).with_context(|| format!("alerts file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(AlertsConfig::parse("{}").unwrap(), AlertsConfig::default());
        let c = AlertsConfig::parse(r#"{"strategy_no_pids": {"for_secs": 1}}"#).unwrap();
        assert_eq!(c.strategy_no_pids.for_secs, 1);
        assert!(c.strategy_no_pids.enabled);
        assert_eq!(c.strategy_no_pids.severity, Severity::Warning);
        assert_eq!(c.scheduler_detached.severity, Severity::Critical);
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            AlertsConfig::parse(r#"{"priority_pod_wait": {"for_secs": 999999999}}"#).unwrap_err();
        assert_eq!(e.field, "priority_pod_wait.for_secs");
        let e = AlertsConfig::parse(r#"{"strategy_no_pids": {"for_sec": 1}}"#).unwrap_err();
        assert_eq!(e.field, "strategy_no_pids.for_sec");
        assert!(e.message.contains("unknown field `for_sec`"), "{e}");
        let e = AlertsConfig::parse(r#"{"strategy_no_pid": {}}"#).unwrap_err();
        assert_eq!(e.field, "strategy_no_pid");
        assert!(e.message.contains("unknown field `strategy_no_pid`"), "{e}");
        let e = AlertsConfig::parse(r#"{"sched_congested": {"max_per_s": -1}}"#).unwrap_err();
        assert_eq!(e.field, "sched_congested.max_per_s");
        let e = AlertsConfig::parse(r#"{"sched_congested": {"severity": "page"}}"#).unwrap_err();
        assert_eq!(e.field, "sched_congested.severity");
        let e = AlertsConfig::parse(r#"{"recent_max": 0}"#).unwrap_err();
        assert_eq!(e.field, "recent_max");
        let e = AlertsConfig::parse(r#"{"failed_dispatches": {"for_secs": "10"}}"#).unwrap_err();
        assert_eq!(e.field, "failed_dispatches.for_secs");
        assert!(AlertsConfig::parse("[").is_err());
    }
}
