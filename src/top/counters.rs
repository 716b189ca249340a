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

/// One counter as top shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Row {
    /// The JSON field name.
    pub name: &'static str,
    pub value: u64,
    /// Monotonic (shown with a rate).
    pub counter: bool,
    /// The field of the agent's rates with this counter's rate, if it has one.
    pub agent_rate: Option<&'static str>,
}

/// The counters of `reading` that top shows, in the order of the counter
/// table. A counter missing from the reading reads 0.
pub(super) fn counter_rows(reading: &Reading) -> Vec<Row> {
    fn row<T>(d: &counters::Def<T>, values: Option<&CounterValues>) -> Option<Row> {
        Some(Row {
            name: d.name,
            value: values?.get(d.name).copied().unwrap_or(0),
            counter: d.is_counter(),
            agent_rate: d.rate,
        })
    }
    let got_work = |p: &&CounterValues| p.get(USER_DISPATCH_WORK).copied().unwrap_or(0) > 0;
    let user_dispatch = reading.policy.filter(got_work);
    let bss = counters::BSS
        .iter()
        .filter(|d| !matches!(d.kind, Kind::Id | Kind::Timestamp))
        .filter_map(|d| row(d, Some(reading.data)));
    let policy = counters::POLICY.iter().filter_map(|d| {
        let values = match d.modes {
            Modes::Every => reading.policy,
            Modes::UserDispatch => user_dispatch,
        };
        row(d, values)
    });
    bss.chain(policy).collect()
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
        let names = |policy| -> Vec<&str> {
            counter_rows(&reading(policy))
                .iter()
                .map(|r| r.name)
                .collect()
        };
        // Counted from the table, so a new counter does not break the test.
        let shown_bss = counters::BSS
            .iter()
            .filter(|d| !matches!(d.kind, Kind::Id | Kind::Timestamp))
            .count();
        let every = counters::POLICY
            .iter()
            .filter(|d| d.modes == Modes::Every)
            .count();
        assert_eq!(shown_bss, 10, "the BssData fields top shows");
        assert_eq!(names(None).len(), shown_bss, "external: BssData only");
        assert!(!names(Some(&idle)).contains(&"nr_user_fallbacks"));
        assert_eq!(names(Some(&idle)).len(), shown_bss + every);
        assert!(every < counters::POLICY.len());
        let rows = counter_rows(&reading(Some(&busy)));
        assert_eq!(rows.len(), shown_bss + counters::POLICY.len());
        let tuple = |r: &Row| (r.name, r.value, r.counter);
        assert_eq!(tuple(&rows[0]), ("nr_queued", 3, false));
        assert_eq!(
            tuple(rows.last().unwrap()),
            ("nr_user_outstanding", 2, false)
        );
    }
}
