//! `sched_congested` and `failed_dispatches`: per-second rates of two BPF
//! counters, for this agent's scheduler and for each external reporter.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::{labels, Inputs};
use crate::alerts::config::{AlertsConfig, RateRule};
use crate::alerts::Condition;
use crate::external::Reporter;
use crate::metrics::BssData;

pub const SCHED_CONGESTED: &str = "sched_congested";
pub const FAILED_DISPATCHES: &str = "failed_dispatches";

/// An external reporter's rate holds until its next report, but no longer
/// than this: a reporter that stopped reporting says nothing about now.
pub const EXTERNAL_STALE_SECS: i64 = 300;

/// The two counters' rates of one source.
#[derive(Debug, Clone, Copy)]
struct SourceRates {
    sched_congested_per_s: f64,
    failed_dispatches_per_s: f64,
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

/// Both rate rules for one source, congestion first.
fn source_conditions(
    c: &AlertsConfig,
    rates: SourceRates,
    source: BTreeMap<String, String>,
    whose: &str,
) -> impl Iterator<Item = Condition> {
    let congested = rate_condition(
        SCHED_CONGESTED,
        &c.sched_congested,
        "nr_sched_congested",
        rates.sched_congested_per_s,
        source.clone(),
        whose,
    );
    let failed = rate_condition(
        FAILED_DISPATCHES,
        &c.failed_dispatches,
        "nr_failed_dispatches",
        rates.failed_dispatches_per_s,
        source,
        whose,
    );
    congested.into_iter().chain(failed)
}

/// The rates of this agent's scheduler over its last sample interval.
pub fn of_scheduler(c: &AlertsConfig, inp: &Inputs) -> Vec<Condition> {
    let Some(rates) = &inp.scheduler_rates else {
        return Vec::new();
    };
    let rates = SourceRates {
        sched_congested_per_s: rates.sched_congested_per_s,
        failed_dispatches_per_s: rates.failed_dispatches_per_s,
    };
    let source = labels([("source", "scheduler".to_string())]);
    source_conditions(c, rates, source, "this agent's scheduler").collect()
}

/// The shortest gap between two reports that a rate is taken over.
pub const MIN_RATE_GAP_NS: i64 = 100_000_000;

struct ExternalTrack {
    last_at: DateTime<Utc>,
    last: BssData,
    /// The rates between the last two reports.
    rates: Option<SourceRates>,
}

/// The rates of external reporters. A report carries counter totals only, so
/// each reporter's last report is kept to take the rate between two.
#[derive(Default)]
pub struct ExternalRates {
    by_reporter: HashMap<Reporter, ExternalTrack>,
}

impl ExternalRates {
    pub fn evaluate(&mut self, c: &AlertsConfig, inp: &Inputs) -> Vec<Condition> {
        // Reporters that are gone take their memory with them.
        self.by_reporter
            .retain(|who, _| inp.external.iter().any(|r| r.reporter == *who));
        let mut out = Vec::new();
        for report in &inp.external {
            let t = self.track(report.reporter, report.received_at, &report.data);
            if (inp.now - t.last_at).num_seconds() > EXTERNAL_STALE_SECS {
                continue;
            }
            let Some(rates) = t.rates else {
                continue;
            };
            // A reporter without usersched_pid is named by its address.
            let (key, name) = match report.reporter {
                Reporter::Pid(pid) => ("usersched_pid", pid.to_string()),
                Reporter::Address(ip) => (
                    "reporter_address",
                    ip.map_or_else(|| "unknown".into(), |ip| ip.to_string()),
                ),
            };
            let source = labels([("source", "external".to_string()), (key, name.clone())]);
            let whose = format!("external scheduler {name}");
            out.extend(source_conditions(c, rates, source, &whose));
        }
        out
    }

    /// Take in a reporter's newest report (`data`, received `at`); a report
    /// seen already changes nothing.
    fn track(&mut self, who: Reporter, at: DateTime<Utc>, data: &BssData) -> &ExternalTrack {
        let t = self.by_reporter.entry(who).or_insert(ExternalTrack {
            last_at: at,
            last: *data,
            rates: None,
        });
        let gap_ns = (at - t.last_at).num_nanoseconds().unwrap_or(i64::MAX);
        // Reports closer than this keep the older baseline: a rate over a few
        // microseconds is noise, and over zero it is infinite.
        if gap_ns >= MIN_RATE_GAP_NS {
            let secs = gap_ns as f64 / 1e9;
            // A counter that went backwards (a restarted reporter) counts from zero.
            let rate = |a: u64, b: u64| (if b >= a { b - a } else { b }) as f64 / secs;
            t.rates = Some(SourceRates {
                sched_congested_per_s: rate(t.last.nr_sched_congested, data.nr_sched_congested),
                failed_dispatches_per_s: rate(
                    t.last.nr_failed_dispatches,
                    data.nr_failed_dispatches,
                ),
            });
            t.last_at = at;
            t.last = *data;
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(failed: u64) -> BssData {
        BssData {
            usersched_pid: 9,
            nr_failed_dispatches: failed,
            ..Default::default()
        }
    }

    #[test]
    fn reports_close_together_give_finite_rates() {
        let mut r = ExternalRates::default();
        let t0 = Utc::now();
        r.track(Reporter::Pid(9), t0, &report(0));
        // 300 µs later: too close to take a rate over; the baseline stays.
        let t1 = t0 + chrono::Duration::microseconds(300);
        assert!(r.track(Reporter::Pid(9), t1, &report(5)).rates.is_none());
        // 1 s after the baseline: 10 failures over 1 s.
        let t2 = t0 + chrono::Duration::seconds(1);
        let rates = r
            .track(Reporter::Pid(9), t2, &report(10))
            .rates
            .expect("a rate over 1 s");
        assert!(rates.failed_dispatches_per_s.is_finite());
        assert!((rates.failed_dispatches_per_s - 10.0).abs() < 1e-9);
    }
}
