//! The `alerts` thread: once per sample interval it reads the agent's state
//! (lock-free snapshots and two short locks), evaluates the rules, logs what
//! fired and resolved, publishes the result and queues webhook events.
//!
//! It runs beside the scheduler thread rather than inside it, so a rule (or a
//! log write) never delays a sample or a strategy update, and the same rules
//! run in `--api-only` mode (external reports, strategies, pods, Kubernetes).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::book::AlertBook;
use super::rules::{Inputs, PriorityPod, Rules, StrategyPids};
use super::webhook::WebhookQueue;
use super::{Event, EventKind, Published};
use crate::state::AgentState;
use crate::strategy::Strategy;
use crate::ticker;

/// What a strategy targets, in words, for labels and messages.
pub fn describe_target(s: &Strategy) -> String {
    let mut parts = Vec::new();
    if let Some(pid) = s.pid {
        parts.push(format!("pid {pid}"));
    }
    if let Some(re) = &s.command_regex {
        parts.push(format!("command_regex {re}"));
    }
    if let Some(sel) = &s.selectors {
        let sel: Vec<String> = sel
            .iter()
            .map(|l| format!("{}={}", l.key, l.value))
            .collect();
        parts.push(format!("selectors {}", sel.join(",")));
    }
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(" + ")
    }
}

/// One snapshot of everything the rules look at.
pub fn gather(state: &AgentState) -> Inputs {
    let st = state.status.get();
    let (strategies, priority_pids) = {
        let s = state.lock_strategies();
        let list: Vec<StrategyPids> = s
            .strategies
            .iter()
            .enumerate()
            .map(|(index, strategy)| StrategyPids {
                index,
                target: describe_target(strategy),
                pids: s
                    .resolved
                    .per_strategy
                    .get(index)
                    .map_or(0, |r| r.pids.len()),
            })
            .collect();
        let prio: HashSet<u32> = s
            .resolved
            .desired
            .iter()
            .filter(|(_, p)| p.priority)
            .map(|(pid, _)| *pid)
            .collect();
        (list, prio)
    };
    let dir = state.pod_meta.directory();
    let priority_pods = if priority_pids.is_empty() {
        Vec::new()
    } else {
        state
            .pod_figures
            .pods_with_any(&priority_pids)
            .into_iter()
            .map(|(uid, figures)| {
                let meta = dir.as_deref().and_then(|d| d.get(&uid));
                PriorityPod {
                    name: meta.map(|m| m.name.clone()).unwrap_or_default(),
                    namespace: meta.map(|m| m.namespace.clone()).unwrap_or_default(),
                    uid,
                    figures,
                }
            })
            .collect()
    };
    Inputs {
        now: Utc::now(),
        mode: st.mode,
        attached: st.attached,
        was_attached: st.attached_at.is_some(),
        restarts: st.restarts,
        last_exit: st.last_exit.clone(),
        scheduler_rates: if st.mode.runs_scheduler() {
            state.metrics.latest().and_then(|l| l.rates)
        } else {
            None
        },
        external: state.external.reports(),
        strategies,
        priority_pods,
        kube: state.pod_meta.status(),
        proc_scan: state.pods.health(),
        cluster: state.cluster.status(),
    }
}

/// The webhook document of one event.
pub fn event_document(e: &Event, host: &str) -> String {
    serde_json::json!({
        "event": e.kind,
        "alert": e.alert,
        "agent": {
            "service": "scx_pilot",
            "version": env!("CARGO_PKG_VERSION"),
            "host": host,
        },
        "timestamp": crate::timefmt::rfc3339(Utc::now()),
    })
    .to_string()
}

fn log_event(e: &Event) {
    let a = &e.alert;
    let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    match e.kind {
        EventKind::Firing => log::warn!(
            "alert firing: {} [{}] {} {{{}}}",
            a.name,
            a.severity.as_str(),
            a.message,
            labels.join(", ")
        ),
        EventKind::Resolved => log::info!(
            "alert resolved: {} [{}] {{{}}} (fired at {})",
            a.name,
            a.severity.as_str(),
            labels.join(", "),
            crate::timefmt::rfc3339(a.fired_at)
        ),
    }
}

/// The evaluator thread.
pub struct Runner(ticker::Worker);

impl Runner {
    /// Evaluate `rules` on `state` every `interval` (the sample interval),
    /// publishing into `state.alerts` and queueing events on `webhook`.
    pub fn spawn(
        state: Arc<AgentState>,
        mut rules: Rules,
        interval: Duration,
        webhook: Option<WebhookQueue>,
    ) -> std::io::Result<Self> {
        let worker = ticker::Worker::spawn("alerts", move |flag, wake| {
            let mut book = AlertBook::new(rules.config().recent_max);
            let host = crate::host_name::get().unwrap_or_default();
            let mut evaluations = 0u64;
            let mut next = Instant::now();
            loop {
                // One more evaluation after stop() is asked: an agent
                // that stops because the kernel unloaded its scheduler
                // still reports scheduler_detached (and the webhook gets
                // a last chance to send it).
                let last = flag.load(Ordering::Relaxed);
                let inputs = gather(&state);
                let conditions = rules.evaluate(&inputs);
                let events = book.update(inputs.now, conditions);
                evaluations += 1;
                for e in &events {
                    log_event(e);
                    if let Some(q) = &webhook {
                        q.push(event_document(e, &host));
                    }
                }
                state.alerts.publish(Published {
                    active: book.active(),
                    recent: book.recent(),
                    fired_total: book.fired_total.clone(),
                    evaluated_at: Some(inputs.now),
                    evaluations,
                    priority_pods: inputs
                        .priority_pods
                        .iter()
                        .filter(|p| !p.name.is_empty())
                        .map(|p| (p.namespace.clone(), p.name.clone()))
                        .collect(),
                });
                if last {
                    break;
                }
                ticker::wait_next(&mut next, interval, &flag, &wake);
            }
        })?;
        Ok(Self(worker))
    }

    pub fn stop(self) {
        self.0.stop();
    }
}
