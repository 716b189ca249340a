//! Writing a [`Snapshot`] as metric families: the scheduler's counters (from
//! the counter table), its state, strategies, pods, per-pod figures and alerts.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{AlertsSnapshot, Snapshot};
use crate::counters::{self, Kind, Modes};
use crate::metrics::BssData;
use crate::pod_figures::NamedPodFigures;
use crate::sched::Mode;

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Kernel => "kernel",
        Mode::User => "user",
        Mode::ApiOnly => "api-only",
    }
}

type Fmt = Result<(), std::fmt::Error>;

fn metric_type(kind: Kind) -> MetricType {
    match kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge | Kind::Id | Kind::Timestamp => MetricType::Gauge,
    }
}

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

/// Per-pod scheduling figures with namespace and pod labels: counters in base
/// units (what `rate()` wants, as node_exporter's schedstat collector has
/// them), and the agent's own per-interval gauges, which the built-in alert
/// rules evaluate and `k8s/prometheus-rules.yaml` mirrors.
fn pod_figures(enc: &mut DescriptorEncoder, pods: &[NamedPodFigures]) -> Fmt {
    if pods.is_empty() {
        return Ok(());
    }
    type Total = fn(&crate::pod_figures::Delta) -> f64;
    const TOTALS: &[(&str, &str, Option<&Unit>, Total)] = &[
        (
            "scx_pilot_pod_cpu",
            "CPU time used by the pod's threads since the agent first saw the pod (schedstat)",
            Some(&Unit::Seconds),
            |d| d.run_ns as f64 / 1e9,
        ),
        (
            "scx_pilot_pod_runqueue_wait",
            "Time the pod's threads waited on a run queue since the agent first saw the pod (schedstat)",
            Some(&Unit::Seconds),
            |d| d.wait_ns as f64 / 1e9,
        ),
        (
            "scx_pilot_pod_timeslices",
            "Timeslices the pod's threads ran since the agent first saw the pod (schedstat)",
            None,
            |d| d.slices as f64,
        ),
    ];
    for (name, help, unit, get) in TOTALS {
        let mut m = enc.encode_descriptor(name, help, *unit, MetricType::Counter)?;
        for p in pods {
            let labels = [("namespace", p.namespace.as_str()), ("pod", p.pod.as_str())];
            ConstCounter::new(get(&p.totals)).encode(m.encode_family(&labels)?)?;
        }
    }
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
    for (name, help, get) in FIGURES {
        let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for p in pods {
            if let Some(v) = p.last.as_ref().and_then(get) {
                let labels = [("namespace", p.namespace.as_str()), ("pod", p.pod.as_str())];
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

/// Every family of the snapshot, in exposition order.
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
        // Counters first, then gauges: the order the families were always written in.
        for kind in [Kind::Counter, Kind::Gauge] {
            for def in counters::BSS.iter().filter(|d| d.kind == kind) {
                let Some(name) = def.prom else { continue };
                let series: Vec<(&str, u64)> =
                    sources.iter().map(|(s, d)| (*s, (def.get)(d))).collect();
                labelled(e, name, def.prom_help, metric_type(kind), "source", &series)?;
            }
        }
        // Moments, in seconds; a source that did not report one has no series.
        for def in counters::BSS.iter().filter(|d| d.kind == Kind::Timestamp) {
            let Some(name) = def.prom else { continue };
            let series: Vec<(&str, f64)> = sources
                .iter()
                .map(|(s, d)| (*s, (def.get)(d)))
                .filter(|(_, ns)| *ns > 0)
                .map(|(s, ns)| (s, ns as f64 / 1e9))
                .collect();
            labelled(e, name, def.prom_help, MetricType::Gauge, "source", &series)?;
        }
        gauge(
            e,
            "scx_pilot_external_reporters",
            "External schedulers whose latest POST /api/v1/metrics report is kept (source=\"external\" series show the newest)",
            None,
            self.external_reporters as i64,
        )?;
        if let Some((at, _, policy)) = &self.scheduler {
            for def in counters::POLICY {
                let Some(name) = def.prom else { continue };
                let v = (def.get)(policy);
                match def.kind {
                    Kind::Counter => counter(e, name, def.prom_help, v)?,
                    // A counter of one dispatch mode stays exported (at 0) in
                    // the other, so rate() needs no mode guard; a gauge only
                    // means something in its mode.
                    Kind::Gauge if def.modes == Modes::UserDispatch && self.mode != Mode::User => {}
                    Kind::Gauge | Kind::Id | Kind::Timestamp => {
                        gauge(e, name, def.prom_help, None, v as i64)?
                    }
                }
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
        counter(
            e,
            "scx_pilot_proc_scan_failures",
            "/proc scans that failed (out of file descriptors, memory); the last good strategy resolution is kept",
            self.proc_scan.failures_total,
        )?;
        gauge(
            e,
            "scx_pilot_proc_scan_failing",
            "1 when the last /proc scan failed",
            None,
            self.proc_scan.failing as i64,
        )?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::prom::{Format, PromMetrics};
    use crate::metrics::PolicyCounters;

    fn snapshot(mode: Mode) -> Snapshot {
        let bss = BssData {
            nr_queued: 4,
            nr_kernel_dispatches: 9,
            ..Default::default()
        };
        let policy = PolicyCounters {
            nr_strategy_hits: 5,
            nr_user_outstanding: 2,
            ..Default::default()
        };
        Snapshot {
            attached: true,
            scheduler: Some((1.5, bss, policy)),
            external: Some(bss),
            external_reporters: 1,
            ..Snapshot::empty(mode)
        }
    }

    #[test]
    fn last_run_is_a_gauge_in_seconds() {
        let mut snap = snapshot(Mode::Kernel);
        snap.external = Some(BssData {
            usersched_last_run_at: 1_750_000_000_500_000_000,
            ..Default::default()
        });
        let out = PromMetrics::new().render(&snap, Format::PrometheusText);
        assert!(out.contains("# TYPE scx_pilot_usersched_last_run_timestamp_seconds gauge"));
        assert!(
            out.contains(
                "\nscx_pilot_usersched_last_run_timestamp_seconds{source=\"external\"} 1750000000.5\n"
            ),
            "{out}"
        );
        assert!(!out.contains("usersched_last_run_timestamp_seconds{source=\"scheduler\"}"));
    }

    /// The series names are a contract with dashboards and alert rules.
    #[test]
    fn counter_series_keep_their_names() {
        let out = PromMetrics::new().render(&snapshot(Mode::Kernel), Format::PrometheusText);
        for source in ["scheduler", "external"] {
            for name in [
                "user_dispatches_total",
                "kernel_dispatches_total",
                "cancel_dispatches_total",
                "bounce_dispatches_total",
                "failed_dispatches_total",
                "sched_congested_total",
                "queued_tasks",
                "scheduled_tasks",
                "running_tasks",
                "online_cpus",
            ] {
                let series = format!("\nscx_pilot_{name}{{source=\"{source}\"}} ");
                assert!(out.contains(&series), "{series} missing:\n{out}");
            }
        }
        assert!(out.contains("\nscx_pilot_kernel_dispatches_total{source=\"scheduler\"} 9\n"));
        assert!(out.contains("\nscx_pilot_queued_tasks{source=\"external\"} 4\n"));
        assert!(out.contains("# TYPE scx_pilot_queued_tasks gauge"));
        assert!(!out.contains("usersched_pid"));
        // A source without usersched_last_run_at has no series of it.
        assert!(!out.contains("usersched_last_run"));
        for name in [
            "direct_dispatches",
            "prio_dispatches",
            "preemptions",
            "starvation_guards",
            "strategy_hits",
            "user_enqueues",
            "user_fallbacks",
            "user_recovered",
            "user_withdrawn",
        ] {
            let series = format!("\nscx_pilot_{name}_total ");
            assert!(out.contains(&series), "{series} missing:\n{out}");
        }
        assert!(out.contains("\nscx_pilot_strategy_hits_total 5\n"));
        // The dispatcher's backlog only in user dispatch mode.
        assert!(!out.contains("scx_pilot_user_outstanding"));
        let user = PromMetrics::new().render(&snapshot(Mode::User), Format::PrometheusText);
        assert!(user.contains("\nscx_pilot_user_outstanding 2\n"));
        assert!(user.contains("# TYPE scx_pilot_user_outstanding gauge"));
    }
}
