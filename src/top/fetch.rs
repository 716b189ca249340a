//! One refresh: read the agent's answers and turn them into a [`Snapshot`].

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use anyhow::Result;

use super::counters::Reading;
use super::rates::Previous;
use super::replies::{AlertsReply, FiringAlert, PodStatsReply, ALERTS_PATH, POD_STATS_PATH};
use super::snapshot::{AlertRow, PodRow, Snapshot, StrategyRow};
use crate::client::http::{ApiClient, METRICS_PATH, PODS_PATH, STRATEGY_CONFIG_PATH};
use crate::client::replies::{
    ConfiguredStrategy, HealthReply, MetricsReply, PodContainer, PodsReply, StrategyConfigReply,
};

/// A refresh of the agent at `client`, with `rows` strategies and pods at most.
pub(super) fn fetch(client: &ApiClient, rows: usize, prev: &mut Previous) -> Result<Snapshot> {
    let answers = Answers::read(client)?;
    let reading = Reading::newest(&answers.metrics);
    let counters = reading
        .as_ref()
        .map_or_else(Vec::new, |r| prev.rows(r, Instant::now()));
    let resolved = resolved_pids(&answers.config);
    let (strategies, strategies_configured) = strategy_rows(&answers.config, rows);
    let pods = PodTable::new(&answers.pods, &answers.pod_stats, &resolved, rows);
    let now = chrono::Utc::now();
    let mut alerts: Vec<AlertRow> = answers
        .alerts
        .data
        .active
        .iter()
        .map(|a| alert_row(a, now))
        .collect();
    let alerts_firing = alerts.len();
    alerts.truncate(rows);
    let sched = &answers.health.components.scheduler;
    Ok(Snapshot {
        url: client.base_url().to_string(),
        timestamp: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        health: or_unknown(&answers.health.status),
        mode: or_unknown(&answers.metrics.mode),
        attached: sched.attached,
        ops_name: sched.ops_name.clone(),
        restarts: sched.restarts,
        last_exit: sched.last_exit.clone(),
        source: reading.as_ref().map_or("none", |r| r.source).into(),
        counters_at: reading.as_ref().and_then(|r| r.at).map(str::to_string),
        counters,
        strategies_configured,
        resolved_pids: resolved.len(),
        strategies,
        pods_total: pods.total,
        pod_processes: pods.processes,
        pods: pods.rows,
        alerts_firing,
        alerts,
        problems: answers.problems,
    })
}

fn or_unknown(word: &Option<String>) -> String {
    word.clone().unwrap_or_else(|| "unknown".into())
}

/// What one refresh reads from the agent.
struct Answers {
    metrics: MetricsReply,
    health: HealthReply,
    config: StrategyConfigReply,
    pods: PodsReply,
    pod_stats: PodStatsReply,
    alerts: AlertsReply,
    /// Answers that could not be read, then what /health reports.
    problems: Vec<String>,
}

impl Answers {
    /// Without the metrics there is nothing to show; any other answer that
    /// cannot be read shows as empty, with the reason among the problems.
    fn read(client: &ApiClient) -> Result<Self> {
        let metrics = client.get(METRICS_PATH)?;
        let mut problems = Vec::new();
        let health: HealthReply = or_problem(client.health(), &mut problems);
        let config = or_problem(client.get(STRATEGY_CONFIG_PATH), &mut problems);
        let pods = or_problem(client.get(PODS_PATH), &mut problems);
        let pod_stats = or_problem(client.get(POD_STATS_PATH), &mut problems);
        let alerts = or_problem(client.get(ALERTS_PATH), &mut problems);
        problems.extend(health.problems.iter().cloned());
        Ok(Self {
            metrics,
            health,
            config,
            pods,
            pod_stats,
            alerts,
            problems,
        })
    }
}

fn or_problem<T: Default>(answer: Result<T>, problems: &mut Vec<String>) -> T {
    answer.unwrap_or_else(|e| {
        problems.push(format!("{e:#}"));
        T::default()
    })
}

/// Every PID some strategy covers now.
fn resolved_pids(config: &StrategyConfigReply) -> HashSet<u64> {
    config
        .strategies
        .iter()
        .flat_map(|s| s.resolution.pids.iter().copied())
        .collect()
}

/// The `rows` strategies covering most PIDs, and how many are configured.
fn strategy_rows(config: &StrategyConfigReply, rows: usize) -> (Vec<StrategyRow>, usize) {
    let mut list: Vec<StrategyRow> = config.strategies.iter().map(strategy_row).collect();
    list.sort_by_key(|s| Reverse(s.pids));
    let configured = list.len();
    list.truncate(rows);
    (list, configured)
}

fn strategy_row(s: &ConfiguredStrategy) -> StrategyRow {
    StrategyRow {
        target: target(s),
        priority: s.priority,
        execution_time_ns: s.execution_time_ns,
        pids: s.resolution.pids.len(),
        note: s.resolution.note.clone(),
    }
}

/// What a strategy matches, in the precedence order the agent resolves it.
fn target(s: &ConfiguredStrategy) -> String {
    if let Some(pid) = s.pid {
        format!("pid {pid}")
    } else if let Some(selectors) = &s.selectors {
        let labels: Vec<String> = selectors
            .iter()
            .map(|l| format!("{}={}", l.key, l.value))
            .collect();
        format!("selectors {}", labels.join(","))
    } else if let Some(re) = &s.command_regex {
        format!("command /{re}/")
    } else {
        "?".to_string()
    }
}

/// One firing alert as shown, `now` giving its age.
fn alert_row(a: &FiringAlert, now: chrono::DateTime<chrono::Utc>) -> AlertRow {
    let for_s = a
        .since
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (now - t.to_utc()).num_seconds().max(0) as u64);
    let about: Vec<String> = a
        .labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    AlertRow {
        name: a.name.clone(),
        severity: a.severity.clone(),
        for_s,
        about: about.join(" "),
        message: a.message.clone(),
    }
}

/// The pods shown: the API's one entry per container grouped by pod, those
/// with most strategy-covered processes first, then the busiest.
struct PodTable {
    rows: Vec<PodRow>,
    /// Pods, before the rows were cut.
    total: usize,
    /// Processes in all pods.
    processes: usize,
}

impl PodTable {
    fn new(pods: &PodsReply, stats: &PodStatsReply, resolved: &HashSet<u64>, rows: usize) -> Self {
        let figures: HashMap<&str, (Option<f64>, Option<f64>)> = stats
            .pods
            .iter()
            .map(|p| (p.uid.as_str(), (p.cpu_usage, p.runqueue_wait_ms_per_s)))
            .collect();
        let mut by_pod: Vec<PodRow> = Vec::new();
        for c in &pods.pods {
            let f = figures.get(c.pod_uid.as_str()).copied().unwrap_or_default();
            add_container(&mut by_pod, c, f, resolved);
        }
        // Unmeasured pods sort below idle ones.
        let cpu = |p: &PodRow| p.cpu_usage.unwrap_or(-1.0);
        by_pod.sort_by(|a, b| {
            b.with_strategy
                .cmp(&a.with_strategy)
                .then(cpu(b).total_cmp(&cpu(a)))
                .then(b.processes.cmp(&a.processes))
                .then(a.pod.cmp(&b.pod))
        });
        let total = by_pod.len();
        by_pod.truncate(rows);
        Self {
            rows: by_pod,
            total,
            processes: pods.pods.iter().map(|c| c.processes.len()).sum(),
        }
    }
}

/// `figures`: the pod's CPU and run-queue wait (per pod, not per container).
fn add_container(
    by_pod: &mut Vec<PodRow>,
    c: &PodContainer,
    figures: (Option<f64>, Option<f64>),
    resolved: &HashSet<u64>,
) {
    let label = pod_label(c);
    let processes = c.processes.len();
    let with_strategy = c
        .processes
        .iter()
        .filter(|p| resolved.contains(&p.pid))
        .count();
    match by_pod.iter_mut().find(|p| p.pod == label) {
        Some(p) => {
            p.containers += 1;
            p.processes += processes;
            p.with_strategy += with_strategy;
        }
        None => by_pod.push(PodRow {
            pod: label,
            containers: 1,
            processes,
            with_strategy,
            cpu_usage: figures.0,
            runqueue_wait_ms_per_s: figures.1,
        }),
    }
}

/// Namespace/name when known, else the pod UID.
fn pod_label(c: &PodContainer) -> String {
    match (c.namespace.as_str(), c.pod_name.as_str()) {
        (_, "") => c.pod_uid.clone(),
        ("", name) => name.to_string(),
        (ns, name) => format!("{ns}/{name}"),
    }
}
