//! The built-in rules: from one snapshot of the agent's state ([`Inputs`]),
//! the conditions that hold now. One function (or, for a rule that needs
//! memory between evaluations, one small struct) per rule, in a file per
//! subject; [`Rules::evaluate`] calls each in a fixed order, so the
//! conditions, and the events of one evaluation, come in a stable order.

mod kubernetes;
mod pods;
mod proc_scan;
mod rates;
mod scheduler;
mod strategy;

use crate::strategy::ClusterStatus;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::config::{AlertsConfig, Severity};
use super::Condition;
use crate::metrics::Rates;
use crate::pod_figures::Figures;
use crate::podmeta::KubeStatus;
use crate::sched::Mode;

pub use kubernetes::KUBERNETES_DISCONNECTED;
pub use pods::PRIORITY_POD_WAIT;
pub use proc_scan::PROC_SCAN_FAILING;
pub use rates::{FAILED_DISPATCHES, SCHED_CONGESTED};
pub use scheduler::{SCHEDULER_DETACHED, SCHEDULER_RESTARTED};
pub use strategy::STRATEGY_NO_PIDS;

/// One configured strategy and how many PIDs it covers now.
#[derive(Debug, Clone)]
pub struct StrategyPids {
    pub index: usize,
    /// What it targets, in words (`selectors nf=upf`).
    pub target: String,
    pub pids: usize,
}

/// A pod with a process under a priority strategy, and its last figures.
#[derive(Debug, Clone)]
pub struct PriorityPod {
    pub uid: String,
    /// Empty when unknown (no Kubernetes metadata).
    pub name: String,
    pub namespace: String,
    pub figures: Option<Figures>,
}

/// What the rules look at, read once per evaluation.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub now: DateTime<Utc>,
    pub mode: Mode,
    pub attached: bool,
    /// The scheduler was attached at least once (before that the agent is
    /// still starting, and it exits if attaching fails).
    pub was_attached: bool,
    pub restarts: u64,
    pub last_exit: Option<String>,
    /// Rates of this agent's scheduler over its last sample interval.
    pub scheduler_rates: Option<Rates>,
    /// The newest report of each external reporter.
    pub external: Vec<crate::external::Report>,
    pub strategies: Vec<StrategyPids>,
    pub priority_pods: Vec<PriorityPod>,
    pub kube: KubeStatus,
    pub proc_scan: crate::pods::ScanHealth,
    /// The watch of cluster strategies.
    pub cluster: ClusterStatus,
}

/// The rules with their thresholds and memory.
pub struct Rules {
    config: AlertsConfig,
    restarts: scheduler::Restarts,
    external: rates::ExternalRates,
}

fn labels<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The rules `config` enables and their severities, in evaluation order.
pub fn enabled(config: &AlertsConfig) -> Vec<(&'static str, Severity)> {
    let c = config;
    [
        (
            SCHEDULER_DETACHED,
            c.scheduler_detached.enabled,
            c.scheduler_detached.severity,
        ),
        (
            SCHEDULER_RESTARTED,
            c.scheduler_restarted.enabled,
            c.scheduler_restarted.severity,
        ),
        (
            SCHED_CONGESTED,
            c.sched_congested.enabled,
            c.sched_congested.severity,
        ),
        (
            FAILED_DISPATCHES,
            c.failed_dispatches.enabled,
            c.failed_dispatches.severity,
        ),
        (
            STRATEGY_NO_PIDS,
            c.strategy_no_pids.enabled,
            c.strategy_no_pids.severity,
        ),
        (
            PRIORITY_POD_WAIT,
            c.priority_pod_wait.enabled,
            c.priority_pod_wait.severity,
        ),
        (
            KUBERNETES_DISCONNECTED,
            c.kubernetes_disconnected.enabled,
            c.kubernetes_disconnected.severity,
        ),
        (
            PROC_SCAN_FAILING,
            c.proc_scan_failing.enabled,
            c.proc_scan_failing.severity,
        ),
    ]
    .into_iter()
    .filter(|(_, enabled, _)| *enabled)
    .map(|(name, _, severity)| (name, severity))
    .collect()
}

impl Rules {
    pub fn new(config: AlertsConfig) -> Self {
        Self {
            config,
            restarts: scheduler::Restarts::default(),
            external: rates::ExternalRates::default(),
        }
    }

    pub fn config(&self) -> &AlertsConfig {
        &self.config
    }

    /// The conditions that hold at `inp.now`.
    pub fn evaluate(&mut self, inp: &Inputs) -> Vec<Condition> {
        let c = &self.config;
        let mut out = Vec::new();
        out.extend(scheduler::detached(&c.scheduler_detached, inp));
        out.extend(self.restarts.evaluate(&c.scheduler_restarted, inp));
        out.extend(rates::of_scheduler(c, inp));
        out.extend(self.external.evaluate(c, inp));
        out.extend(strategy::no_pids(&c.strategy_no_pids, inp));
        out.extend(pods::priority_pod_wait(&c.priority_pod_wait, inp));
        out.extend(kubernetes::disconnected(
            &c.kubernetes_disconnected,
            &inp.kube,
            &inp.cluster,
        ));
        out.extend(proc_scan::failing(&c.proc_scan_failing, &inp.proc_scan));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::book::AlertBook;
    use crate::alerts::EventKind;
    use crate::metrics::BssData;
    use crate::podmeta::MetaSource;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn ext(received_at: DateTime<Utc>, data: BssData) -> crate::external::Report {
        crate::external::Report {
            reporter: crate::external::Reporter::of(&data, None),
            received_at,
            data,
        }
    }

    fn inputs(now: i64) -> Inputs {
        Inputs {
            now: at(now),
            mode: Mode::Kernel,
            attached: true,
            was_attached: true,
            restarts: 0,
            last_exit: None,
            scheduler_rates: None,
            external: vec![],
            strategies: vec![],
            priority_pods: vec![],
            kube: KubeStatus::default(),
            proc_scan: Default::default(),
            cluster: ClusterStatus::default(),
        }
    }

    fn names(c: &[Condition]) -> Vec<&'static str> {
        c.iter().map(|c| c.name).collect()
    }

    #[test]
    fn detached_and_restarted() {
        let mut r = Rules::new(AlertsConfig::default());
        assert!(r.evaluate(&inputs(0)).is_empty());
        // Not attached yet at start: the agent is starting.
        let starting = Inputs {
            attached: false,
            was_attached: false,
            ..inputs(0)
        };
        assert!(r.evaluate(&starting).is_empty());
        let detached = Inputs {
            attached: false,
            last_exit: Some("error".into()),
            ..inputs(1)
        };
        assert_eq!(names(&r.evaluate(&detached)), [SCHEDULER_DETACHED]);
        // api-only: there is no scheduler to miss.
        let api_only = Inputs {
            mode: Mode::ApiOnly,
            ..detached.clone()
        };
        assert!(r.evaluate(&api_only).is_empty());
        // A restart holds for hold_secs (600 by default).
        let restarted = Inputs {
            restarts: 1,
            ..inputs(10)
        };
        assert_eq!(names(&r.evaluate(&restarted)), [SCHEDULER_RESTARTED]);
        let later = Inputs {
            restarts: 1,
            ..inputs(609)
        };
        assert_eq!(names(&r.evaluate(&later)), [SCHEDULER_RESTARTED]);
        let much_later = Inputs {
            restarts: 1,
            ..inputs(611)
        };
        assert!(r.evaluate(&much_later).is_empty());
    }

    #[test]
    fn rate_thresholds_for_the_scheduler_and_external_reporters() {
        let mut cfg = AlertsConfig::default();
        cfg.failed_dispatches.max_per_s = 5.0;
        let mut r = Rules::new(cfg);
        let rates = |failed: f64| Rates {
            failed_dispatches_per_s: failed,
            ..Rates::default()
        };
        let i = Inputs {
            scheduler_rates: Some(rates(5.0)),
            ..inputs(0)
        };
        assert!(
            r.evaluate(&i).is_empty(),
            "at the threshold is not above it"
        );
        let i = Inputs {
            scheduler_rates: Some(rates(5.5)),
            ..inputs(0)
        };
        let c = r.evaluate(&i);
        assert_eq!(names(&c), [FAILED_DISPATCHES]);
        assert_eq!(c[0].labels["source"], "scheduler");
        assert_eq!(c[0].value, Some(5.5));

        // External: the rate between two reports 2 s apart.
        let report = |congested: u64| BssData {
            usersched_pid: 77,
            nr_sched_congested: congested,
            ..BssData::default()
        };
        let i = Inputs {
            external: vec![ext(at(0), report(0))],
            ..inputs(0)
        };
        assert!(r.evaluate(&i).is_empty());
        let i = Inputs {
            external: vec![ext(at(2), report(1000))],
            ..inputs(2)
        };
        let c = r.evaluate(&i);
        assert_eq!(names(&c), [SCHED_CONGESTED]);
        assert_eq!(c[0].value, Some(500.0));
        assert_eq!(c[0].labels["usersched_pid"], "77");
        // Holds until the next report...
        let i = Inputs {
            external: vec![ext(at(2), report(1000))],
            ..inputs(30)
        };
        assert_eq!(r.evaluate(&i).len(), 1);
        // ...which shows no growth.
        let i = Inputs {
            external: vec![ext(at(31), report(1000))],
            ..inputs(31)
        };
        assert!(r.evaluate(&i).is_empty());
        // A stale reporter says nothing.
        let i = Inputs {
            external: vec![ext(at(32), report(5000))],
            ..inputs(32)
        };
        assert_eq!(r.evaluate(&i).len(), 1);
        let i = Inputs {
            external: vec![ext(at(32), report(5000))],
            ..inputs(32 + rates::EXTERNAL_STALE_SECS + 1)
        };
        assert!(r.evaluate(&i).is_empty());
    }

    #[test]
    fn strategy_without_pids_fires_after_its_duration_and_resolves() {
        let mut cfg = AlertsConfig::default();
        cfg.strategy_no_pids.for_secs = 3;
        let mut r = Rules::new(cfg);
        let mut book = AlertBook::new(10);
        let with = |pids: usize, now: i64| Inputs {
            strategies: vec![
                StrategyPids {
                    index: 0,
                    target: "selectors nf=upf".into(),
                    pids,
                },
                StrategyPids {
                    index: 1,
                    target: "pid 42".into(),
                    pids: 1,
                },
            ],
            ..inputs(now)
        };
        for now in 0..3 {
            let c = r.evaluate(&with(0, now));
            assert!(book.update(at(now), c).is_empty());
        }
        let ev = book.update(at(3), r.evaluate(&with(0, 3)));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].alert.name, STRATEGY_NO_PIDS);
        assert_eq!(ev[0].alert.labels["strategy_index"], "0");
        assert_eq!(ev[0].alert.labels["target"], "selectors nf=upf");
        let ev = book.update(at(4), r.evaluate(&with(2, 4)));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, EventKind::Resolved);
    }

    #[test]
    fn priority_pod_wait_thresholds() {
        let mut cfg = AlertsConfig::default();
        cfg.priority_pod_wait.max_avg_wait_us_per_timeslice = Some(1000.0);
        cfg.priority_pod_wait.max_wait_ms_per_s = None;
        let mut r = Rules::new(cfg);
        let pod = |avg: Option<f64>, per_s: f64| Inputs {
            priority_pods: vec![PriorityPod {
                uid: "u1".into(),
                name: "upf-0".into(),
                namespace: "5g".into(),
                figures: Some(Figures {
                    cpu_usage: 0.5,
                    cpu_usage_utime_stime: 0.5,
                    runqueue_wait_ms_per_s: per_s,
                    avg_wait_us_per_timeslice: avg,
                    timeslices_per_s: 100.0,
                }),
            }],
            ..inputs(0)
        };
        assert!(r.evaluate(&pod(Some(900.0), 900.0)).is_empty());
        assert!(r.evaluate(&pod(None, 900.0)).is_empty());
        let c = r.evaluate(&pod(Some(1500.0), 1.0));
        assert_eq!(names(&c), [PRIORITY_POD_WAIT]);
        assert_eq!(c[0].labels["namespace"], "5g");
        assert_eq!(c[0].labels["pod"], "upf-0");
        assert!(c[0].message.contains("5g/upf-0"), "{}", c[0].message);
    }

    #[test]
    fn kubernetes_disconnected_only_when_it_is_the_source() {
        let mut r = Rules::new(AlertsConfig::default());
        assert!(r.evaluate(&inputs(0)).is_empty());
        let mut kube = KubeStatus {
            source: MetaSource::Kubernetes,
            status: "error",
            connected: false,
            endpoint: Some("https://10.0.0.1:6443/".into()),
            last_error: Some("listing pods: HTTP 500".into()),
            failures: 3,
            ..KubeStatus::default()
        };
        let i = Inputs {
            kube: kube.clone(),
            ..inputs(0)
        };
        let c = r.evaluate(&i);
        assert_eq!(names(&c), [KUBERNETES_DISCONNECTED]);
        assert!(c[0].message.contains("HTTP 500"));
        kube.connected = true;
        kube.status = "ok";
        let i = Inputs { kube, ..inputs(1) };
        assert!(r.evaluate(&i).is_empty());
        // The pods are current, the cluster strategies' watch is not.
        let cluster = ClusterStatus {
            status: "error",
            strategies: 2,
            last_error: Some("HTTP 503".into()),
            ..ClusterStatus::default()
        };
        let i = Inputs {
            cluster,
            ..inputs(2)
        };
        let c = r.evaluate(&i);
        assert_eq!(names(&c), [KUBERNETES_DISCONNECTED]);
        assert!(
            c[0].message.contains("2 cluster strategies"),
            "{}",
            c[0].message
        );
    }
}
