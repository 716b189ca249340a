//! The built-in rules: from one snapshot of the agent's state ([`Inputs`]),
//! the conditions that hold now. The few rules that need memory (restarts,
//! external reporters' rates) keep it in [`Rules`].

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::config::{AlertsConfig, RateRule};
use super::Condition;
use crate::metrics::{BssData, Rates};
use crate::podmeta::{KubeStatus, MetaSource};
use crate::sched::Mode;
use crate::stats::Figures;

pub const SCHEDULER_DETACHED: &str = "scheduler_detached";
pub const SCHEDULER_RESTARTED: &str = "scheduler_restarted";
pub const SCHED_CONGESTED: &str = "sched_congested";
pub const FAILED_DISPATCHES: &str = "failed_dispatches";
pub const STRATEGY_NO_PIDS: &str = "strategy_no_pids";
pub const PRIORITY_POD_WAIT: &str = "priority_pod_wait";
pub const KUBERNETES_DISCONNECTED: &str = "kubernetes_disconnected";

/// An external reporter's rate holds until its next report, but no longer
/// than this: a reporter that stopped reporting says nothing about now.
pub const EXTERNAL_STALE_SECS: i64 = 300;

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
    pub external: Vec<(DateTime<Utc>, BssData)>,
    pub strategies: Vec<StrategyPids>,
    pub priority_pods: Vec<PriorityPod>,
    pub kube: KubeStatus,
}

struct ExternalTrack {
    last_at: DateTime<Utc>,
    last: BssData,
    /// (congested/s, failed/s) between the last two reports.
    rates: Option<(f64, f64)>,
}

/// The rules with their thresholds and memory.
pub struct Rules {
    config: AlertsConfig,
    seen_restarts: Option<u64>,
    last_restart_at: Option<DateTime<Utc>>,
    external: HashMap<u32, ExternalTrack>,
}

fn labels<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn rate_condition(
    name: &'static str,
    rule: &RateRule,
    counter: &str,
    rate: f64,
    source: BTreeMap<String, String>,
    whose: &str,
) -> Option<Condition> {
    (rule.enabled && rate > rule.max_per_s).then(|| Condition {
        name,
        severity: rule.severity,
        labels: source,
        message: format!(
            "{counter} rises {rate:.1}/s on {whose} (threshold {}/s)",
            rule.max_per_s
        ),
        for_secs: rule.for_secs,
        value: Some(rate),
    })
}

impl Rules {
    pub fn new(config: AlertsConfig) -> Self {
        Self {
            config,
            seen_restarts: None,
            last_restart_at: None,
            external: HashMap::new(),
        }
    }

    pub fn config(&self) -> &AlertsConfig {
        &self.config
    }

    /// The conditions that hold at `inp.now`.
    pub fn evaluate(&mut self, inp: &Inputs) -> Vec<Condition> {
        let c = &self.config;
        let mut out = Vec::new();

        // Scheduler state (scx_pilot's own scheduler only).
        if inp.mode.runs_scheduler() {
            let r = &c.scheduler_detached;
            if r.enabled && !inp.attached && inp.was_attached {
                out.push(Condition {
                    name: SCHEDULER_DETACHED,
                    severity: r.severity,
                    labels: BTreeMap::new(),
                    message: format!(
                        "the scx_pilot scheduler is not attached; every task runs on the \
                         kernel's default scheduler and no strategy applies (last exit: {})",
                        inp.last_exit.as_deref().unwrap_or("unknown")
                    ),
                    for_secs: r.for_secs,
                    value: None,
                });
            }
        }
        if let Some(seen) = self.seen_restarts {
            if inp.restarts > seen {
                self.last_restart_at = Some(inp.now);
            }
        }
        self.seen_restarts = Some(inp.restarts);
        let r = &c.scheduler_restarted;
        if let Some(last) = self.last_restart_at {
            if r.enabled && (inp.now - last).num_seconds() < r.hold_secs as i64 {
                out.push(Condition {
                    name: SCHEDULER_RESTARTED,
                    severity: r.severity,
                    labels: BTreeMap::new(),
                    message: format!(
                        "the kernel restarted the scheduler ({} restarts since start, last at \
                         {}; exit: {})",
                        inp.restarts,
                        crate::api::rfc3339(last),
                        inp.last_exit.as_deref().unwrap_or("unknown")
                    ),
                    for_secs: 0,
                    value: Some(inp.restarts as f64),
                });
            }
        }

        // Counter rates: this agent's scheduler...
        if let Some(rates) = &inp.scheduler_rates {
            let source = || labels([("source", "scheduler".to_string())]);
            out.extend(rate_condition(
                SCHED_CONGESTED,
                &c.sched_congested,
                "nr_sched_congested",
                rates.sched_congested_per_s,
                source(),
                "this agent's scheduler",
            ));
            out.extend(rate_condition(
                FAILED_DISPATCHES,
                &c.failed_dispatches,
                "nr_failed_dispatches",
                rates.failed_dispatches_per_s,
                source(),
                "this agent's scheduler",
            ));
        }
        // ...and each external reporter, between its last two reports.
        self.external
            .retain(|pid, _| inp.external.iter().any(|(_, d)| d.usersched_pid == *pid));
        for (at, data) in &inp.external {
            let pid = data.usersched_pid;
            match self.external.get_mut(&pid) {
                None => {
                    self.external.insert(
                        pid,
                        ExternalTrack {
                            last_at: *at,
                            last: *data,
                            rates: None,
                        },
                    );
                }
                Some(t) if *at > t.last_at => {
                    let secs = (*at - t.last_at).num_milliseconds() as f64 / 1e3;
                    // A counter that went backwards (a restarted reporter) counts from zero.
                    let rate = |a: u64, b: u64| (if b >= a { b - a } else { b }) as f64 / secs;
                    t.rates = Some((
                        rate(t.last.nr_sched_congested, data.nr_sched_congested),
                        rate(t.last.nr_failed_dispatches, data.nr_failed_dispatches),
                    ));
                    t.last_at = *at;
                    t.last = *data;
                }
                Some(_) => {}
            }
            let Some(t) = self.external.get(&pid) else {
                continue;
            };
            if (inp.now - t.last_at).num_seconds() > EXTERNAL_STALE_SECS {
                continue;
            }
            if let Some((congested, failed)) = t.rates {
                let source = || {
                    labels([
                        ("source", "external".to_string()),
                        ("usersched_pid", pid.to_string()),
                    ])
                };
                let whose = format!("external scheduler {pid}");
                out.extend(rate_condition(
                    SCHED_CONGESTED,
                    &c.sched_congested,
                    "nr_sched_congested",
                    congested,
                    source(),
                    &whose,
                ));
                out.extend(rate_condition(
                    FAILED_DISPATCHES,
                    &c.failed_dispatches,
                    "nr_failed_dispatches",
                    failed,
                    source(),
                    &whose,
                ));
            }
        }

        // Strategies that cover nothing.
        let r = &c.strategy_no_pids;
        if r.enabled {
            for s in inp.strategies.iter().filter(|s| s.pids == 0) {
                out.push(Condition {
                    name: STRATEGY_NO_PIDS,
                    severity: r.severity,
                    labels: labels([
                        ("strategy_index", s.index.to_string()),
                        ("target", s.target.clone()),
                    ]),
                    message: format!("strategy {} ({}) resolves to no PID", s.index, s.target),
                    for_secs: r.for_secs,
                    value: Some(0.0),
                });
            }
        }

        // Priority pods waiting on run queues.
        let r = &c.priority_pod_wait;
        if r.enabled {
            for p in &inp.priority_pods {
                let Some(f) = &p.figures else { continue };
                let per_slice = f
                    .avg_wait_us_per_timeslice
                    .zip(r.max_avg_wait_us_per_timeslice)
                    .filter(|(v, max)| v > max);
                let per_s = r
                    .max_wait_ms_per_s
                    .filter(|max| f.runqueue_wait_ms_per_s > *max);
                let what = if let Some((v, max)) = per_slice {
                    Some((v, format!("{:.0} µs per timeslice (threshold {max} µs)", v)))
                } else {
                    per_s.map(|max| {
                        (
                            f.runqueue_wait_ms_per_s,
                            format!(
                                "{:.1} ms per second (threshold {max} ms/s)",
                                f.runqueue_wait_ms_per_s
                            ),
                        )
                    })
                };
                let Some((value, what)) = what else { continue };
                let pod = if p.name.is_empty() {
                    format!("pod {}", p.uid)
                } else {
                    format!("pod {}/{}", p.namespace, p.name)
                };
                out.push(Condition {
                    name: PRIORITY_POD_WAIT,
                    severity: r.severity,
                    labels: labels([
                        ("namespace", p.namespace.clone()),
                        ("pod", p.name.clone()),
                        ("pod_uid", p.uid.clone()),
                    ]),
                    message: format!(
                        "{pod}, under a priority strategy, waits on run queues {what}"
                    ),
                    for_secs: r.for_secs,
                    value: Some(value),
                });
            }
        }

        // The Kubernetes watcher.
        let r = &c.kubernetes_disconnected;
        if r.enabled && inp.kube.source == MetaSource::Kubernetes && !inp.kube.connected {
            let endpoint = inp.kube.endpoint.clone().unwrap_or_default();
            out.push(Condition {
                name: KUBERNETES_DISCONNECTED,
                severity: r.severity,
                labels: labels([("endpoint", endpoint.clone())]),
                message: format!(
                    "not connected to the Kubernetes API {} ({}, {} failed attempts; last \
                     error: {}); pod labels are the last known ones",
                    if endpoint.is_empty() {
                        "(none)"
                    } else {
                        &endpoint
                    },
                    inp.kube.status,
                    inp.kube.failures,
                    inp.kube.last_error.as_deref().unwrap_or("none")
                ),
                for_secs: r.for_secs,
                value: None,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::book::AlertBook;
    use crate::alerts::EventKind;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
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
            external: vec![(at(0), report(0))],
            ..inputs(0)
        };
        assert!(r.evaluate(&i).is_empty());
        let i = Inputs {
            external: vec![(at(2), report(1000))],
            ..inputs(2)
        };
        let c = r.evaluate(&i);
        assert_eq!(names(&c), [SCHED_CONGESTED]);
        assert_eq!(c[0].value, Some(500.0));
        assert_eq!(c[0].labels["usersched_pid"], "77");
        // Holds until the next report...
        let i = Inputs {
            external: vec![(at(2), report(1000))],
            ..inputs(30)
        };
        assert_eq!(r.evaluate(&i).len(), 1);
        // ...which shows no growth.
        let i = Inputs {
            external: vec![(at(31), report(1000))],
            ..inputs(31)
        };
        assert!(r.evaluate(&i).is_empty());
        // A stale reporter says nothing.
        let i = Inputs {
            external: vec![(at(32), report(5000))],
            ..inputs(32)
        };
        assert_eq!(r.evaluate(&i).len(), 1);
        let i = Inputs {
            external: vec![(at(32), report(5000))],
            ..inputs(32 + EXTERNAL_STALE_SECS + 1)
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
    }
}
