//! Which counters `scx_pilot top` shows, in which order, and where each is read.

use crate::client::replies::{CounterValues, MetricsReply, RateValues};

/// The counters of one reading: the agent's own scheduler when it has a
/// sample, else the newest external report.
pub(super) struct Reading<'a> {
    /// "scheduler" or "external".
    pub source: &'static str,
    /// When the counters were read or received.
    pub at: Option<&'a str>,
    pub data: &'a CounterValues,
    /// Only the agent's own scheduler has policy counters and rates.
    pub policy: Option<&'a CounterValues>,
    pub rates: Option<&'a RateValues>,
}

impl<'a> Reading<'a> {
    pub fn newest(metrics: &'a MetricsReply) -> Option<Self> {
        if let Some(m) = &metrics.metrics {
            return Some(Self {
                source: "scheduler",
                at: m.timestamp.as_deref(),
                data: &m.data,
                policy: Some(&m.policy),
                rates: m.rates.as_ref(),
            });
        }
        metrics.external.first().map(|ext| Self {
            source: "external",
            at: ext.received_at.as_deref(),
            data: &ext.data,
            policy: None,
            rates: None,
        })
    }
}

/// Where a counter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// The BssData every scheduler has, scx_pilot's own or an external one.
    Bss,
    /// scx_pilot's own policy.
    Policy,
    /// scx_pilot's user dispatch policy (--dispatch user), shown once the
    /// dispatcher got work.
    UserDispatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Monotonic: shown with a rate.
    Counter,
    /// Instantaneous.
    Gauge,
}

/// The counter that tells the user dispatcher got work.
const USER_DISPATCH_WORK: &str = "nr_user_enqueues";

/// The counters shown, in display order, by their JSON field name.
const SHOWN: &[(&str, Group, Kind)] = &[
    ("nr_queued", Group::Bss, Kind::Gauge),
    ("nr_scheduled", Group::Bss, Kind::Gauge),
    ("nr_running", Group::Bss, Kind::Gauge),
    ("nr_online_cpus", Group::Bss, Kind::Gauge),
    ("nr_user_dispatches", Group::Bss, Kind::Counter),
    ("nr_kernel_dispatches", Group::Bss, Kind::Counter),
    ("nr_cancel_dispatches", Group::Bss, Kind::Counter),
    ("nr_bounce_dispatches", Group::Bss, Kind::Counter),
    ("nr_failed_dispatches", Group::Bss, Kind::Counter),
    ("nr_sched_congested", Group::Bss, Kind::Counter),
    ("nr_direct_dispatches", Group::Policy, Kind::Counter),
    ("nr_prio_dispatches", Group::Policy, Kind::Counter),
    ("nr_preemptions", Group::Policy, Kind::Counter),
    ("nr_starvation_guards", Group::Policy, Kind::Counter),
    ("nr_strategy_hits", Group::Policy, Kind::Counter),
    (USER_DISPATCH_WORK, Group::UserDispatch, Kind::Counter),
    ("nr_user_fallbacks", Group::UserDispatch, Kind::Counter),
    ("nr_user_recovered", Group::UserDispatch, Kind::Counter),
    ("nr_user_withdrawn", Group::UserDispatch, Kind::Counter),
    ("nr_user_outstanding", Group::UserDispatch, Kind::Gauge),
];

/// The counters of `reading` that top shows, in display order:
/// (JSON field name, value, monotonic?). A counter missing from the reading
/// reads 0.
pub(super) fn counter_rows(reading: &Reading) -> Vec<(&'static str, u64, bool)> {
    let value = |values: &CounterValues, name: &str| values.get(name).copied().unwrap_or(0);
    let user_dispatch = reading.policy.filter(|p| value(p, USER_DISPATCH_WORK) > 0);
    SHOWN
        .iter()
        .filter_map(|&(name, group, kind)| {
            let values = match group {
                Group::Bss => Some(reading.data),
                Group::Policy => reading.policy,
                Group::UserDispatch => user_dispatch,
            }?;
            Some((name, value(values, name), kind == Kind::Counter))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, u64)]) -> CounterValues {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn user_dispatch_counters_appear_once_the_dispatcher_got_work() {
        let data = values(&[("nr_queued", 3)]);
        let idle = values(&[("nr_strategy_hits", 5)]);
        let busy = values(&[(USER_DISPATCH_WORK, 1), ("nr_user_outstanding", 2)]);
        let reading = |policy| Reading {
            source: "scheduler",
            at: None,
            data: &data,
            policy,
            rates: None,
        };
        let names =
            |policy| -> Vec<&str> { counter_rows(&reading(policy)).iter().map(|r| r.0).collect() };
        assert_eq!(names(None).len(), 10, "external: BssData only");
        assert!(!names(Some(&idle)).contains(&"nr_user_fallbacks"));
        assert_eq!(names(Some(&idle)).len(), 15);
        let rows = counter_rows(&reading(Some(&busy)));
        assert_eq!(rows.len(), 20);
        assert_eq!(rows[0], ("nr_queued", 3, false));
        assert_eq!(rows[19], ("nr_user_outstanding", 2, false));
    }
}
