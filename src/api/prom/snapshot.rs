//! What a scrape reports besides the HTTP counters, read from the agent's
//! state at scrape time.

use crate::api::ApiState;
use crate::metrics::{BssData, PolicyCounters};
use crate::pods::PodInfo;
use crate::sched::Mode;

/// Pod counts from one scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodCounts {
    pub pods: usize,
    pub containers: usize,
    pub processes: usize,
}

impl PodCounts {
    pub fn of(pods: &[PodInfo]) -> Self {
        Self {
            pods: pods.len(),
            containers: pods.iter().map(PodInfo::containers).sum(),
            processes: pods.iter().map(|p| p.processes.len()).sum(),
        }
    }
}

/// Everything `/metrics` reports besides the HTTP counters, read from the
/// agent's lock-free snapshots (and one short lock of the strategy set).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub mode: Mode,
    pub attached: bool,
    pub ops_name: Option<String>,
    pub restarts: u64,
    pub last_exit: Option<String>,
    /// Sample time (Unix seconds), counters and policy counters of this agent's scheduler.
    pub scheduler: Option<(f64, BssData, PolicyCounters)>,
    /// The newest external report.
    pub external: Option<BssData>,
    pub external_reporters: usize,
    /// Configured strategies by target kind.
    pub strategies_by_target: Vec<(&'static str, usize)>,
    /// Resolved PIDs with and without priority.
    pub resolved_priority: usize,
    pub resolved_normal: usize,
    /// PIDs in the BPF strategy map.
    pub map_pids: usize,
    /// None when the pod scan failed.
    pub pods: Option<PodCounts>,
    pub kubernetes_connected: bool,
    pub start_time: f64,
    /// Per-pod figures of the last stats round: (namespace, pod name,
    /// figures), named pods only (no UID or PID label).
    pub pod_stats: Vec<crate::pod_figures::NamedPodFigures>,
    /// PIDs each configured strategy resolves to, in posted order.
    pub strategy_pids: Vec<usize>,
    /// The Kubernetes API is the pod metadata source.
    pub kubernetes_configured: bool,
    /// `/proc` scans that failed since start, and whether the last one did.
    pub proc_scan: crate::pods::ScanHealth,
    pub alerts: AlertsSnapshot,
}

/// The alerts' part of `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct AlertsSnapshot {
    /// Per enabled rule: name, severity, firing now, fired since start.
    pub rules: Vec<(&'static str, &'static str, bool, u64)>,
    /// Firing pod-level alerts of named pods: rule, severity, namespace, pod.
    pub pods: Vec<(&'static str, &'static str, String, String)>,
    /// (namespace, pod) of named pods under a priority strategy.
    pub priority_pods: Vec<(String, String)>,
    /// Webhook counters when one is configured.
    pub webhook: Option<crate::alerts::webhook::WebhookStatsView>,
}

impl AlertsSnapshot {
    pub fn collect(handle: &crate::alerts::AlertsHandle) -> Self {
        let p = handle.get();
        let rules = handle
            .rules
            .iter()
            .map(|(name, sev)| {
                (
                    *name,
                    sev.as_str(),
                    p.active.iter().any(|a| a.name == *name),
                    p.fired_total.get(name).copied().unwrap_or(0),
                )
            })
            .collect();
        let pods = p
            .active
            .iter()
            .filter_map(|a| {
                let ns = a.labels.get("namespace")?;
                let pod = a.labels.get("pod").filter(|p| !p.is_empty())?;
                Some((a.name, a.severity.as_str(), ns.clone(), pod.clone()))
            })
            .collect();
        let webhook = handle.webhook.view();
        Self {
            rules,
            pods,
            priority_pods: p.priority_pods.clone(),
            webhook: webhook.configured.then_some(webhook),
        }
    }
}

/// The per-pod figures of the last stats round, of named pods only.
fn named_pod_figures(state: &ApiState) -> Vec<crate::pod_figures::NamedPodFigures> {
    state
        .pod_figures
        .named_pod_figures(state.pod_meta.directory().as_deref())
}

fn unix_seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

impl Snapshot {
    /// Read the agent's state. `pods` is the latest pod scan (None if it failed).
    pub fn collect(state: &ApiState, pods: Option<&[PodInfo]>) -> Snapshot {
        let status = state.status.get();
        let scheduler = state.metrics.latest().map(|l| {
            (
                unix_seconds(l.sample.timestamp),
                l.sample.bss,
                l.sample.policy,
            )
        });
        let external_list = state.external.list();
        let (strategies_by_target, resolved_priority, resolved_normal, strategy_pids) = {
            let current = state.lock_strategies();
            let strategy_pids = (0..current.strategies.len())
                .map(|i| {
                    current
                        .resolved
                        .per_strategy
                        .get(i)
                        .map_or(0, |r| r.pids.len())
                })
                .collect::<Vec<_>>();
            let (mut pid, mut regex, mut selectors, mut other) = (0, 0, 0, 0);
            for s in &current.strategies {
                match (&s.pid, &s.command_regex, &s.selectors) {
                    (Some(_), _, _) => pid += 1,
                    (None, Some(_), _) => regex += 1,
                    (None, None, Some(_)) => selectors += 1,
                    (None, None, None) => other += 1,
                }
            }
            let prio = current
                .resolved
                .desired
                .values()
                .filter(|s| s.priority)
                .count();
            (
                vec![
                    ("pid", pid),
                    ("command_regex", regex),
                    ("selectors", selectors),
                    ("other", other),
                ],
                prio,
                current.resolved.desired.len() - prio,
                strategy_pids,
            )
        };
        let kube = state.pod_meta.status();
        Snapshot {
            mode: status.mode,
            attached: status.attached,
            ops_name: status.ops_name.clone(),
            restarts: status.restarts,
            last_exit: status.last_exit.clone(),
            scheduler,
            external: external_list.first().map(|(_, d)| *d),
            external_reporters: external_list.len(),
            strategies_by_target,
            resolved_priority,
            resolved_normal,
            map_pids: status.strategy_pids,
            pods: pods.map(PodCounts::of),
            kubernetes_connected: kube.connected,
            kubernetes_configured: kube.source == crate::podmeta::MetaSource::Kubernetes,
            proc_scan: state.pods.health(),
            strategy_pids,
            alerts: AlertsSnapshot::collect(&state.alerts),
            start_time: unix_seconds(state.started_at),
            pod_stats: named_pod_figures(state),
        }
    }
}

#[cfg(test)]
impl Snapshot {
    /// A snapshot with nothing in it, for tests to fill in what they check.
    pub(crate) fn empty(mode: crate::sched::Mode) -> Self {
        Self {
            mode,
            attached: false,
            ops_name: None,
            restarts: 0,
            last_exit: None,
            scheduler: None,
            external: None,
            external_reporters: 0,
            strategies_by_target: vec![],
            resolved_priority: 0,
            resolved_normal: 0,
            map_pids: 0,
            pods: None,
            kubernetes_connected: false,
            start_time: 0.0,
            pod_stats: vec![],
            strategy_pids: vec![],
            kubernetes_configured: false,
            proc_scan: Default::default(),
            alerts: AlertsSnapshot::default(),
        }
    }
}
