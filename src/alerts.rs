//! Alerts: built-in rules evaluated on the agent's own state once
//! per sample interval, with thresholds from `--alerts-file`.
//!
//! - [`config`]: the file format, defaults and validation;
//! - [`rules`]: the conditions that hold for one snapshot of the state;
//! - [`book`]: pending → firing → resolved, and the ring of recent alerts;
//! - [`runner`]: the `alerts` thread that reads the state, logs each fire and
//!   resolve, publishes the result for the API and `/metrics`, and hands the
//!   events to the webhook;
//! - [`webhook`]: delivery of the events as JSON on a thread of its own with
//!   a bounded queue, so a slow or dead receiver never holds anything else.
//!
//! Readers (`GET /api/v1/alerts`, `/metrics`) only load the published
//! snapshot ([`AlertsHandle`]); they never wait for an evaluation.

pub(crate) mod book;
pub mod config;
pub(crate) mod rules;
pub(crate) mod runner;
pub(crate) mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

pub use config::{AlertsConfig, Severity};
pub use runner::Runner;
pub use webhook::{Webhook, WebhookStats};

/// Whether an alert fires now or has resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::timefmt::rfc3339(*t))
}

fn rfc3339_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// One alert, firing or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Alert {
    /// The rule: scheduler_detached, scheduler_restarted, sched_congested,
    /// failed_dispatches, strategy_no_pids, priority_pod_wait or
    /// kubernetes_disconnected.
    #[schema(value_type = String, example = "strategy_no_pids")]
    pub name: &'static str,
    pub severity: Severity,
    pub state: AlertState,
    /// Since when the condition holds (RFC3339, UTC); it fired `for_secs` later.
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, example = "2026-11-26T18:30:00Z")]
    pub since: DateTime<Utc>,
    /// When it fired (RFC3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String)]
    pub fired_at: DateTime<Utc>,
    /// When it resolved (RFC3339, UTC); null while firing.
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>)]
    pub resolved_at: Option<DateTime<Utc>>,
    /// What is wrong, in words (updated while firing).
    pub message: String,
    /// What it is about: strategy_index/target, namespace/pod/pod_uid,
    /// source/usersched_pid, endpoint.
    pub labels: BTreeMap<String, String>,
    /// The measured value that crossed the threshold, when there is one.
    pub value: Option<f64>,
}

/// A rule's condition holding at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub name: &'static str,
    pub severity: Severity,
    pub labels: BTreeMap<String, String>,
    pub message: String,
    /// How long it must hold before the alert fires.
    pub for_secs: u64,
    pub value: Option<f64>,
}

impl Condition {
    /// The identity of the alert: the rule and its labels.
    pub fn key(&self) -> String {
        let mut k = self.name.to_string();
        for (l, v) in &self.labels {
            k.push('\u{1f}');
            k.push_str(l);
            k.push('=');
            k.push_str(v);
        }
        k
    }
}

/// An alert fired or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Firing,
    Resolved,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub alert: Alert,
}

/// What the last evaluation found, for the API and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// Firing alerts, oldest first.
    pub active: Vec<Alert>,
    /// Resolved alerts, most recent first.
    pub recent: Vec<Alert>,
    /// Alerts fired since start, by rule.
    pub fired_total: BTreeMap<&'static str, u64>,
    pub evaluated_at: Option<DateTime<Utc>>,
    pub evaluations: u64,
    /// (namespace, pod) of named pods under a priority strategy, for `/metrics`.
    pub priority_pods: Vec<(String, String)>,
}

/// The shared, lock-free view of the alerts.
pub struct AlertsHandle {
    published: ArcSwap<Published>,
    /// Enabled rules and their severities, in a fixed order.
    pub rules: Vec<(&'static str, Severity)>,
    pub webhook: Arc<WebhookStats>,
}

impl AlertsHandle {
    pub fn new(config: &AlertsConfig) -> Arc<Self> {
        let rules = rules::enabled(config);
        Arc::new(Self {
            published: ArcSwap::from_pointee(Published::default()),
            rules,
            webhook: Arc::new(WebhookStats::default()),
        })
    }

    pub fn get(&self) -> Arc<Published> {
        self.published.load_full()
    }

    pub fn publish(&self, p: Published) {
        self.published.store(Arc::new(p));
    }
}

/// The alerts machinery of a running agent: the evaluator thread and the
/// webhook thread when there is one.
pub struct Running {
    runner: Runner,
    webhook: Option<Webhook>,
}

impl Running {
    /// Start evaluating `config`'s rules on `state` every `interval`;
    /// `webhook` (started already, so a bad URL fails before the API binds)
    /// receives the events.
    pub fn start(
        state: Arc<crate::state::AgentState>,
        config: AlertsConfig,
        interval: std::time::Duration,
        webhook: Option<Webhook>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        let queue = webhook.as_ref().map(Webhook::queue);
        let runner = Runner::spawn(state, rules::Rules::new(config), interval, queue)
            .context("starting the alerts thread")?;
        Ok(Self { runner, webhook })
    }

    pub fn stop(self) {
        self.runner.stop();
        if let Some(w) = self.webhook {
            w.stop();
        }
    }
}

impl Default for AlertsHandle {
    fn default() -> Self {
        Arc::into_inner(Self::new(&AlertsConfig::default())).expect("a fresh Arc has one owner")
    }
}
