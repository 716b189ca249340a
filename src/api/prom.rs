//! `GET /metrics`: the agent's state in the Prometheus exposition format,
//! rendered with the official `prometheus-client` crate.
//!
//! Two encodings from one registry, chosen by the `Accept` header: OpenMetrics
//! 1.0 when the client asks for it (a Prometheus server does), the classic
//! Prometheus text format 0.0.4 otherwise (curl, `promtool check metrics`).
//!
//! What is exported, and why so:
//! - The scheduler's `BssData` counters: the monotonic ones as counters
//!   (`scx_pilot_*_total`), the instantaneous ones as gauges, with a `source`
//!   label: `scheduler` (this agent's BPF scheduler, read from its .bss) or
//!   `external` (the newest `POST /api/v1/metrics` report, the seed's way).
//!   `usersched_pid` is not exported: a PID is not a measurement and as a label
//!   it would make a new series on every restart.
//! - scx_pilot's policy counters, the scheduler state (attached, restarts, an
//!   info metric with mode and ops name, another with the last exit reason),
//!   strategies (configured by target kind, resolved PIDs by priority, PIDs in
//!   the BPF map), pods seen, Kubernetes connection, HTTP requests by route,
//!   method and status, and build info.
//! - No label carries a PID, a pod UID or a raw request path: every label has a
//!   small fixed set of values, so the series count does not grow with the node.
//!
//! Snapshot metrics are encoded from a [`Snapshot`] taken at scrape time (a
//! `Collector`); only the HTTP counters live in the registry between scrapes.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, text, DescriptorEncoder, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{ApiState, ENDPOINTS};
use crate::metrics::{BssData, PolicyCounters};
use crate::pods::PodInfo;
use crate::sched::Mode;

/// `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Which text encoding to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    PrometheusText,
}

impl Format {
    /// OpenMetrics when the `Accept` header lists it with a non-zero quality,
    /// the Prometheus text format otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants = accept.is_some_and(|a| {
            a.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or("");
                let q_zero = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !q_zero
            })
        });
        if wants {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::PrometheusText => TEXT_CONTENT_TYPE,
        }
    }
}

/// Labels of one HTTP request: the route pattern (from [`ENDPOINTS`], or
/// `unmatched`), the method (one of the few the API knows, or `other`) and
/// the status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

/// The index in [`ENDPOINTS`] of the first route with this pattern.
pub fn route_index(pattern: &str) -> Option<usize> {
    ENDPOINTS.iter().position(|e| e.path == pattern)
}

/// The metrics that live between scrapes (HTTP requests) and the registry
/// they are encoded from.
pub struct PromMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    /// Per route (index into [`ENDPOINTS`], then one for `unmatched`): the
    /// family members most requests update, looked up once. A family lookup
    /// hashes the labels under the family's lock; the polled `GET` answers
    /// then cost two of those per request where a handle costs an atomic add.
    handles: Box<[RouteHandles]>,
}

/// Handles into the families for one route, made on first use (so a series
/// still appears only once a request has been counted in it). The families
/// are never cleared, so a handle stays the series the registry encodes.
#[derive(Default)]
struct RouteHandles {
    get_ok: OnceLock<Counter>,
    duration: OnceLock<Histogram>,
}

impl Default for PromMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PromMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromMetrics").finish_non_exhaustive()
    }
}

fn duration_histogram() -> Histogram {
    // 100 us .. 2.5 s: a cached JSON answer takes tens of microseconds, a
    // /proc scan milliseconds, a slow client seconds.
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

impl PromMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations =
            Family::<RouteLabels, Histogram>::new_with_constructor(duration_histogram as fn() -> _);
        registry.register(
            "scx_pilot_http_requests",
            "HTTP requests answered, by route pattern, method and status code",
            requests.clone(),
        );
        registry.register_with_unit(
            "scx_pilot_http_request_duration",
            "Time to answer an HTTP request, by route pattern",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register(
            "scx_pilot_build",
            "Build information of this scx_pilot binary",
            Info::new([
                ("version", env!("CARGO_PKG_VERSION")),
                (
                    "profile",
                    if cfg!(debug_assertions) {
                        "debug"
                    } else {
                        "release"
                    },
                ),
            ]),
        );
        Self {
            registry,
            requests,
            durations,
            handles: (0..=ENDPOINTS.len()).map(|_| Default::default()).collect(),
        }
    }

    /// Count one answered request. `pattern` is the matched route pattern
    /// (None for unknown paths); raw paths never become labels.
    pub fn observe(&self, pattern: Option<&str>, method: &str, status: u16, elapsed: Duration) {
        let route = pattern.and_then(route_index);
        self.observe_route(route, method, status, elapsed);
    }

    /// [`Self::observe`] with the route as an index into [`ENDPOINTS`] (see
    /// [`route_index`]); None for unknown paths.
    pub fn observe_route(
        &self,
        route: Option<usize>,
        method: &str,
        status: u16,
        elapsed: Duration,
    ) {
        let handles = &self.handles[route.unwrap_or(ENDPOINTS.len())];
        let route = route.map_or("unmatched", |i| ENDPOINTS[i].path);
        let method = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
            .into_iter()
            .find(|m| *m == method)
            .unwrap_or("other");
        let labels = RequestLabels {
            route,
            method,
            status,
        };
        if method == "GET" && status == 200 {
            handles
                .get_ok
                .get_or_init(|| self.requests.get_or_create(&labels).clone())
                .inc();
        } else {
            self.requests.get_or_create(&labels).inc();
        }
        handles
            .duration
            .get_or_init(|| self.durations.get_or_create(&RouteLabels { route }).clone())
            .observe(elapsed.as_secs_f64());
    }

    /// The whole exposition: the registry's metrics, then the snapshot's.
    pub fn render(&self, snapshot: &Snapshot, format: Format) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let mut scrape = Registry::default();
        scrape.register_collector(Box::new(snapshot.clone()));
        let result = match format {
            Format::OpenMetrics => text::encode_registry(&mut out, &self.registry)
                .and_then(|()| text::encode_registry(&mut out, &scrape))
                .and_then(|()| text::encode_eof(&mut out)),
            Format::PrometheusText => prometheus_text::encode(&mut out, &self.registry)
                .and_then(|()| prometheus_text::encode(&mut out, &scrape)),
        };
        // Writing to a String cannot fail; an encoder error would be a bug in
        // a metric name, which tests catch.
        if let Err(e) = result {
            let _ = writeln!(out, "# encoding error: {e}");
        }
        out
    }
}

/// Pod counts from one scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodCounts {
    pub pods: usize,
    pub containers: usize,
    pub processes: usize,
}

impl PodCounts {
    pub fn of(pods: &[PodInfo]) -> Self {
        let mut uids: Vec<&str> = pods.iter().map(|p| p.pod_uid.as_str()).collect();
        uids.sort_unstable();
        uids.dedup();
        Self {
            pods: uids.len(),
            containers: pods.len(),
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
    pub pod_stats: Vec<(String, String, crate::pod_figures::Figures)>,
    /// PIDs each configured strategy resolves to, in posted order.
    pub strategy_pids: Vec<usize>,
    /// The Kubernetes API is the pod metadata source.
    pub kubernetes_configured: bool,
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
            strategy_pids,
            alerts: AlertsSnapshot::collect(&state.alerts),
            start_time: unix_seconds(state.started_at),
            pod_stats: state
                .pod_figures
                .named_pod_figures(state.pod_meta.directory().as_deref()),
        }
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Kernel => "kernel",
        Mode::User => "user",
        Mode::ApiOnly => "api-only",
    }
}

type Fmt = Result<(), std::fmt::Error>;

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Fmt {
    let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: N,
) -> Fmt {
    let m = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

/// A metric with one label, one series per `(label value, value)`.
fn labelled<N: Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    label: &'static str,
    series: &[(&str, N)],
) -> Fmt
where
    ConstCounter<N>: EncodeMetric,
    ConstGauge<N>: EncodeMetric,
{
    if series.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (value, v) in series {
        let labels = [(label, *value)];
        let fam = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*v).encode(fam)?,
            _ => ConstGauge::new(*v).encode(fam)?,
        }
    }
    Ok(())
}

fn info(enc: &mut DescriptorEncoder, name: &str, help: &str, labels: &[(&str, &str)]) -> Fmt {
    let m = enc.encode_descriptor(name, help, None, MetricType::Info)?;
    Info::new(labels.to_vec()).encode(m)
}

/// Per-pod scheduling figures, one gauge per figure with namespace and pod labels.
fn pod_figures(
    enc: &mut DescriptorEncoder,
    pods: &[(String, String, crate::pod_figures::Figures)],
) -> Fmt {
    type Get = fn(&crate::pod_figures::Figures) -> Option<f64>;
    const FIGURES: &[(&str, &str, Get)] = &[
        (
            "scx_pilot_pod_cpu_usage_ratio",
            "CPU time used by the pod's threads over the last stats interval, in CPUs (schedstat)",
            |f| Some(f.cpu_usage),
        ),
        (
            "scx_pilot_pod_runqueue_wait_seconds_per_second",
            "Time the pod's threads waited on a run queue per second of wall time (schedstat)",
            |f| Some(f.runqueue_wait_ms_per_s / 1e3),
        ),
        (
            "scx_pilot_pod_timeslices_per_second",
            "Timeslices the pod's threads ran per second (schedstat)",
            |f| Some(f.timeslices_per_s),
        ),
        (
            "scx_pilot_pod_runqueue_wait_per_timeslice_seconds",
            "Average run-queue wait per timeslice of the pod's threads over the last stats interval",
            |f| f.avg_wait_us_per_timeslice.map(|us| us / 1e6),
        ),
    ];
    if pods.is_empty() {
        return Ok(());
    }
    for (name, help, get) in FIGURES {
        let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (ns, pod, f) in pods {
            if let Some(v) = get(f) {
                let labels = [("namespace", ns.as_str()), ("pod", pod.as_str())];
                ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
            }
        }
    }
    Ok(())
}

/// The alerts: per rule firing (0/1) and fired since start; per firing
/// pod-level alert of a named pod (namespace and pod labels, never a PID or
/// UID); pods under a priority strategy; webhook delivery counters.
fn alert_series(enc: &mut DescriptorEncoder, a: &AlertsSnapshot) -> Fmt {
    if !a.rules.is_empty() {
        let mut m = enc.encode_descriptor(
            "scx_pilot_alert_firing",
            "1 while an alert of this built-in rule fires (GET /api/v1/alerts has the details)",
            None,
            MetricType::Gauge,
        )?;
        for (name, sev, firing, _) in &a.rules {
            let labels = [("alert", *name), ("severity", *sev)];
            ConstGauge::new(*firing as i64).encode(m.encode_family(&labels)?)?;
        }
        let mut m = enc.encode_descriptor(
            "scx_pilot_alerts_fired",
            "Alerts of this built-in rule fired since the agent started",
            None,
            MetricType::Counter,
        )?;
        for (name, sev, _, fired) in &a.rules {
            let labels = [("alert", *name), ("severity", *sev)];
            ConstCounter::new(*fired).encode(m.encode_family(&labels)?)?;
        }
    }
    if !a.pods.is_empty() {
        let mut m = enc.encode_descriptor(
            "scx_pilot_pod_alert_firing",
            "1 for each firing pod-level alert, by rule and pod",
            None,
            MetricType::Gauge,
        )?;
        for (name, sev, ns, pod) in &a.pods {
            let labels = [
                ("alert", *name),
                ("severity", *sev),
                ("namespace", ns.as_str()),
                ("pod", pod.as_str()),
            ];
            ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
        }
    }
    if !a.priority_pods.is_empty() {
        let mut m = enc.encode_descriptor(
            "scx_pilot_pod_priority",
            "1 for each pod with a process under a priority strategy",
            None,
            MetricType::Gauge,
        )?;
        for (ns, pod) in &a.priority_pods {
            let labels = [("namespace", ns.as_str()), ("pod", pod.as_str())];
            ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
        }
    }
    if let Some(w) = &a.webhook {
        labelled(
            enc,
            "scx_pilot_alert_webhook_events",
            "Alert events by webhook delivery result: delivered, failed (every attempt failed or refused), dropped (queue full)",
            MetricType::Counter,
            "result",
            &[
                ("delivered", w.delivered),
                ("failed", w.failed),
                ("dropped", w.dropped),
            ],
        )?;
        counter(
            enc,
            "scx_pilot_alert_webhook_attempt_failures",
            "Single webhook delivery attempts that failed (each retry counts)",
            w.attempt_failures,
        )?;
    }
    Ok(())
}

/// BssData counters (monotonic) and gauges (instantaneous), in exposition order.
/// A metric read from a field: name, help, getter.
type Field<T> = (&'static str, &'static str, fn(&T) -> u64);

const BSS_COUNTERS: &[Field<BssData>] = &[
    (
        "scx_pilot_user_dispatches",
        "Dispatches decided in user space (BssData nr_user_dispatches)",
        |d| d.nr_user_dispatches,
    ),
    (
        "scx_pilot_kernel_dispatches",
        "Dispatches decided in BPF (BssData nr_kernel_dispatches)",
        |d| d.nr_kernel_dispatches,
    ),
    (
        "scx_pilot_cancel_dispatches",
        "Cancelled dispatches (BssData nr_cancel_dispatches)",
        |d| d.nr_cancel_dispatches,
    ),
    (
        "scx_pilot_bounce_dispatches",
        "Bounced dispatches (BssData nr_bounce_dispatches)",
        |d| d.nr_bounce_dispatches,
    ),
    (
        "scx_pilot_failed_dispatches",
        "Failed dispatches (BssData nr_failed_dispatches)",
        |d| d.nr_failed_dispatches,
    ),
    (
        "scx_pilot_sched_congested",
        "Times the scheduler was congested (BssData nr_sched_congested)",
        |d| d.nr_sched_congested,
    ),
];

const BSS_GAUGES: &[Field<BssData>] = &[
    (
        "scx_pilot_queued_tasks",
        "Tasks waiting in the scheduler (BssData nr_queued)",
        |d| d.nr_queued,
    ),
    (
        "scx_pilot_scheduled_tasks",
        "Tasks held by a user-space dispatcher (BssData nr_scheduled)",
        |d| d.nr_scheduled,
    ),
    (
        "scx_pilot_running_tasks",
        "Tasks running on a CPU under the scheduler (BssData nr_running)",
        |d| d.nr_running,
    ),
    (
        "scx_pilot_online_cpus",
        "Online CPUs (BssData nr_online_cpus)",
        |d| d.nr_online_cpus,
    ),
];

const POLICY_COUNTERS: &[Field<PolicyCounters>] = &[
    (
        "scx_pilot_direct_dispatches",
        "Waking tasks put straight on an idle CPU",
        |p| p.nr_direct_dispatches,
    ),
    (
        "scx_pilot_prio_dispatches",
        "Enqueues of tasks with a priority strategy",
        |p| p.nr_prio_dispatches,
    ),
    (
        "scx_pilot_preemptions",
        "Priority tasks that preempted a CPU running a normal task",
        |p| p.nr_preemptions,
    ),
    (
        "scx_pilot_starvation_guards",
        "Times normal tasks were served first to prevent starvation",
        |p| p.nr_starvation_guards,
    ),
    (
        "scx_pilot_strategy_hits",
        "Enqueues decided by a strategy",
        |p| p.nr_strategy_hits,
    ),
    (
        "scx_pilot_user_enqueues",
        "Tasks sent to the user-space dispatcher (--dispatch user)",
        |p| p.nr_user_enqueues,
    ),
    (
        "scx_pilot_user_fallbacks",
        "Times BPF bypassed a user-space dispatcher that stopped answering",
        |p| p.nr_user_fallbacks,
    ),
    (
        "scx_pilot_user_recovered",
        "Tasks BPF took back from a stalled user-space dispatcher",
        |p| p.nr_user_recovered,
    ),
    (
        "scx_pilot_user_withdrawn",
        "Tasks dequeued while the user-space dispatcher held them",
        |p| p.nr_user_withdrawn,
    ),
];

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Fmt {
        let e = &mut enc;
        // BssData, by source.
        let mut sources: Vec<(&str, &BssData)> = Vec::with_capacity(2);
        if let Some((_, bss, _)) = &self.scheduler {
            sources.push(("scheduler", bss));
        }
        if let Some(bss) = &self.external {
            sources.push(("external", bss));
        }
        for (name, help, get) in BSS_COUNTERS {
            let series: Vec<(&str, u64)> = sources.iter().map(|(s, d)| (*s, get(d))).collect();
            labelled(e, name, help, MetricType::Counter, "source", &series)?;
        }
        for (name, help, get) in BSS_GAUGES {
            let series: Vec<(&str, u64)> = sources.iter().map(|(s, d)| (*s, get(d))).collect();
            labelled(e, name, help, MetricType::Gauge, "source", &series)?;
        }
        gauge(
            e,
            "scx_pilot_external_reporters",
            "External schedulers whose latest POST /api/v1/metrics report is kept (source=\"external\" series show the newest)",
            None,
            self.external_reporters as i64,
        )?;
        if let Some((at, _, policy)) = &self.scheduler {
            for (name, help, get) in POLICY_COUNTERS {
                counter(e, name, help, get(policy))?;
            }
            if self.mode == Mode::User {
                gauge(
                    e,
                    "scx_pilot_user_outstanding",
                    "Tasks in the user-space dispatcher's hands",
                    None,
                    policy.nr_user_outstanding as i64,
                )?;
            }
            gauge(
                e,
                "scx_pilot_last_sample_timestamp",
                "When the scheduler's counters were last read (Unix time)",
                Some(&Unit::Seconds),
                *at,
            )?;
        }

        // Scheduler state.
        gauge(
            e,
            "scx_pilot_scheduler_attached",
            "1 when scx_pilot's scheduler is attached to the kernel",
            None,
            self.attached as i64,
        )?;
        let mut labels = vec![("mode", mode_name(self.mode))];
        if let Some(ops) = &self.ops_name {
            labels.push(("ops_name", ops.as_str()));
        }
        info(
            e,
            "scx_pilot_scheduler",
            "How the agent runs the scheduler (mode: kernel, user or api-only) and the kernel's name for its ops",
            &labels,
        )?;
        counter(
            e,
            "scx_pilot_scheduler_restarts",
            "Scheduler reloads the kernel asked for since the agent started",
            self.restarts,
        )?;
        if let Some(reason) = &self.last_exit {
            info(
                e,
                "scx_pilot_scheduler_last_exit",
                "Why the scheduler last left the kernel",
                &[("reason", reason.as_str())],
            )?;
        }

        // Strategies.
        labelled(
            e,
            "scx_pilot_strategies",
            "Scheduling strategies configured, by what they target",
            MetricType::Gauge,
            "target",
            &self.strategies_by_target,
        )?;
        labelled(
            e,
            "scx_pilot_strategy_resolved_pids",
            "PIDs the configured strategies resolve to now, with and without priority",
            MetricType::Gauge,
            "priority",
            &[
                ("true", self.resolved_priority),
                ("false", self.resolved_normal),
            ],
        )?;
        let by_index: Vec<(String, usize)> = self
            .strategy_pids
            .iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), *n))
            .collect();
        let by_index: Vec<(&str, usize)> = by_index.iter().map(|(i, n)| (i.as_str(), *n)).collect();
        labelled(
            e,
            "scx_pilot_strategy_pids",
            "PIDs each configured strategy resolves to now, by its index in the posted set",
            MetricType::Gauge,
            "index",
            &by_index,
        )?;
        gauge(
            e,
            "scx_pilot_strategy_map_pids",
            "PIDs in the scheduler's BPF strategy map (0 without a scheduler)",
            None,
            self.map_pids as i64,
        )?;

        // Pods and Kubernetes.
        gauge(
            e,
            "scx_pilot_pod_scan_success",
            "1 when the last scan of /proc for pods succeeded",
            None,
            self.pods.is_some() as i64,
        )?;
        if let Some(p) = &self.pods {
            gauge(
                e,
                "scx_pilot_pods",
                "Pods with processes on this node",
                None,
                p.pods as i64,
            )?;
            gauge(
                e,
                "scx_pilot_pod_containers",
                "Pod containers with processes on this node",
                None,
                p.containers as i64,
            )?;
            gauge(
                e,
                "scx_pilot_pod_processes",
                "Processes in pods on this node",
                None,
                p.processes as i64,
            )?;
        }
        pod_figures(e, &self.pod_stats)?;
        gauge(
            e,
            "scx_pilot_kubernetes_configured",
            "1 when the agent takes pod metadata from the Kubernetes API",
            None,
            self.kubernetes_configured as i64,
        )?;
        gauge(
            e,
            "scx_pilot_kubernetes_connected",
            "1 when the agent is connected to the Kubernetes API",
            None,
            self.kubernetes_connected as i64,
        )?;
        alert_series(e, &self.alerts)?;
        gauge(
            e,
            "scx_pilot_start_time",
            "When the agent started (Unix time)",
            Some(&Unit::Seconds),
            self.start_time,
        )?;
        Ok(())
    }
}

/// The pods for `/metrics`, from the shared scan cache (the same `/proc`
/// walk that `GET /api/v1/pods/pids` and the resolver use).
async fn scan_pods(state: &web::Data<ApiState>) -> Option<Vec<PodInfo>> {
    let st = state.clone();
    web::block(move || {
        st.pods
            .get()
            .map(|snap| snap.pods(st.pod_meta.directory().as_deref()))
    })
    .await
    .ok()
    .and_then(Result::ok)
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    responses(
        (status = 200, description = "Prometheus exposition: OpenMetrics 1.0 when the Accept header asks for application/openmetrics-text, the Prometheus text format 0.0.4 otherwise",
            content_type = "text/plain", body = String),
        (status = 405, description = "Wrong method", body = super::error::ErrorBody),
    )
)]
pub async fn get_prometheus(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    let format = Format::negotiate(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let pods = scan_pods(&state).await;
    let snapshot = Snapshot::collect(&state, pods.as_deref());
    HttpResponse::Ok()
        .content_type(format.content_type())
        .body(state.prom.render(&snapshot, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_accept() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0, text/plain")),
            Format::PrometheusText
        );
    }

    #[test]
    fn routes_and_methods_are_bounded() {
        let m = PromMetrics::new();
        m.observe(
            Some("/api/v1/metrics"),
            "GET",
            200,
            Duration::from_micros(50),
        );
        m.observe(None, "GET", 404, Duration::from_micros(50));
        m.observe(Some("/x/{id}"), "BREW", 405, Duration::from_micros(50));
        let snap = Snapshot {
            mode: Mode::ApiOnly,
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
            strategy_pids: vec![0, 3],
            kubernetes_configured: false,
            alerts: AlertsSnapshot {
                rules: vec![("strategy_no_pids", "warning", true, 2)],
                pods: vec![("priority_pod_wait", "warning", "5g".into(), "upf-0".into())],
                priority_pods: vec![("5g".into(), "upf-0".into())],
                webhook: None,
            },
        };
        let out = m.render(&snap, Format::PrometheusText);
        assert!(out.contains(
            "scx_pilot_http_requests_total{route=\"/api/v1/metrics\",method=\"GET\",status=\"200\"} 1"
        ));
        assert!(out.contains(
            "scx_pilot_http_requests_total{route=\"unmatched\",method=\"other\",status=\"405\"} 1"
        ));
        assert!(!out.contains("/x/"));
        assert!(out
            .contains("scx_pilot_alert_firing{alert=\"strategy_no_pids\",severity=\"warning\"} 1"));
        assert!(out.contains(
            "scx_pilot_alerts_fired_total{alert=\"strategy_no_pids\",severity=\"warning\"} 2"
        ));
        assert!(out.contains(
            "scx_pilot_pod_alert_firing{alert=\"priority_pod_wait\",severity=\"warning\",namespace=\"5g\",pod=\"upf-0\"} 1"
        ));
        assert!(out.contains("scx_pilot_strategy_pids{index=\"1\"} 3"));
        assert!(out.contains("scx_pilot_pod_priority{namespace=\"5g\",pod=\"upf-0\"} 1"));
        assert!(!out.contains("scx_pilot_alert_webhook"));
        // The cached handles count into the series the families encode.
        m.observe(
            Some("/api/v1/metrics"),
            "GET",
            200,
            Duration::from_millis(2),
        );
        m.observe(
            Some("/api/v1/metrics"),
            "POST",
            200,
            Duration::from_micros(50),
        );
        let out = m.render(&snap, Format::PrometheusText);
        assert!(out.contains(
            "scx_pilot_http_requests_total{route=\"/api/v1/metrics\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(out.contains(
            "scx_pilot_http_requests_total{route=\"/api/v1/metrics\",method=\"POST\",status=\"200\"} 1"
        ));
        assert!(out.contains(
            "scx_pilot_http_request_duration_seconds_count{route=\"/api/v1/metrics\"} 3"
        ));
        let om = m.render(&snap, Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("# TYPE scx_pilot_build info"));
    }
}
