//! Which counters `scx_pilot top` shows, in which order, and where each is read.

use crate::client::replies::{CounterValues, MetricsReply, RateValues};
use crate::counters::{self, Kind, Modes};

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

/// The counter that tells the user dispatcher got work: the user-dispatch
/// counters are shown from then on.
const USER_DISPATCH_WORK: &str = "nr_user_enqueues";

/// The counters of `reading` that top shows, in the order of the counter
/// table: (JSON field name, value, monotonic?). A counter missing from the
/// reading reads 0.
pub(super) fn counter_rows(reading: &Reading) -> Vec<(&'static str, u64, bool)> {
    let value = |values: &CounterValues, name: &str| values.get(name).copied().unwrap_or(0);
    let user_dispatch = reading.policy.filter(|p| value(p, USER_DISPATCH_WORK) > 0);
    let bss = counters::BSS
        .iter()
        .filter(|d| d.kind != Kind::Id)
        .map(|d| (d.name, d.is_counter(), Some(reading.data)));
    let policy = counters::POLICY.iter().map(|d| {
        let values = match d.modes {
            Modes::Every => reading.policy,
            Modes::UserDispatch => user_dispatch,
        };
        (d.name, d.is_counter(), values)
    });
    bss.chain(policy)
        .filter_map(|(name, counter, values)| Some((name, value(values?, name), counter)))
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
