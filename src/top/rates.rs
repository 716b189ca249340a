//! Per-second rates of the counters top shows: the agent's own when it
//! computes one, else between two polls.

use std::time::Instant;

use super::counters::{counter_rows, Reading};
use super::snapshot::CounterRow;

/// The previous new reading, for rates between polls.
#[derive(Default)]
pub(super) struct Previous {
    /// The reading's own timestamp, and when a poll first saw it.
    at: Option<(String, Instant)>,
    values: Vec<(&'static str, u64)>,
}

impl Previous {
    /// The rows of `reading` with their rates; a new reading (a new
    /// timestamp) becomes the previous one.
    pub fn rows(&mut self, reading: &Reading, now: Instant) -> Vec<CounterRow> {
        let elapsed_s = self.seconds_since(reading.at, now);
        let rows: Vec<CounterRow> = counter_rows(reading)
            .into_iter()
            .map(|r| CounterRow {
                name: r.name,
                value: r.value,
                rate_per_s: r
                    .counter
                    .then(|| {
                        agent_rate(reading, r.agent_rate)
                            .or_else(|| self.rate(r.name, r.value, elapsed_s))
                    })
                    .flatten(),
                counter: r.counter,
            })
            .collect();
        self.remember(reading.at, &rows, now);
        rows
    }

    /// Seconds since the previous reading was seen; none for the same reading.
    fn seconds_since(&self, at: Option<&str>, now: Instant) -> Option<f64> {
        self.at
            .as_ref()
            .filter(|(t, _)| Some(t.as_str()) != at)
            .map(|(_, seen)| now.duration_since(*seen).as_secs_f64())
    }

    fn rate(&self, name: &str, value: u64, elapsed_s: Option<f64>) -> Option<f64> {
        let (_, before) = self.values.iter().find(|(n, _)| *n == name)?;
        let dt_s = elapsed_s?;
        (dt_s > 0.0).then(|| value.saturating_sub(*before) as f64 / dt_s)
    }

    fn remember(&mut self, at: Option<&str>, rows: &[CounterRow], now: Instant) {
        let Some(at) = at else { return };
        if self.at.as_ref().is_some_and(|(t, _)| t == at) {
            return;
        }
        self.at = Some((at.to_string(), now));
        self.values = rows.iter().map(|c| (c.name, c.value)).collect();
    }
}

/// The agent's own rate in its rates field `field`, when it computes one.
fn agent_rate(reading: &Reading, field: Option<&str>) -> Option<f64> {
    reading.rates?.get(field?).copied()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::client::replies::{CounterValues, RateValues};

    fn kernel(n: u64) -> CounterValues {
        [("nr_kernel_dispatches".to_string(), n)].into()
    }

    fn rate_of(rows: &[CounterRow], name: &str) -> Option<f64> {
        rows.iter().find(|r| r.name == name).unwrap().rate_per_s
    }

    #[test]
    fn rates_between_new_readings_unless_the_agent_has_one() {
        let t0 = Instant::now();
        let mut prev = Previous::default();
        let (a, b) = (kernel(100), kernel(300));
        let reading = |at, data| Reading {
            source: "external",
            at: Some(at),
            data,
            policy: None,
            rates: None,
        };
        let rows = prev.rows(&reading("t1", &a), t0);
        assert_eq!(rate_of(&rows, "nr_kernel_dispatches"), None);
        assert_eq!(rate_of(&rows, "nr_queued"), None, "a gauge has no rate");
        // The same reading again: no rate, and it stays the previous one.
        let t1 = t0 + Duration::from_secs(1);
        let rows = prev.rows(&reading("t1", &a), t1);
        assert_eq!(rate_of(&rows, "nr_kernel_dispatches"), None);
        let t2 = t0 + Duration::from_secs(2);
        let rows = prev.rows(&reading("t2", &b), t2);
        assert_eq!(rate_of(&rows, "nr_kernel_dispatches"), Some(100.0));

        let rates: RateValues = [("kernel_dispatches_per_s".to_string(), 7.5)].into();
        let own = Reading {
            rates: Some(&rates),
            ..reading("t3", &b)
        };
        let rows = prev.rows(&own, t2 + Duration::from_secs(1));
        assert_eq!(rate_of(&rows, "nr_kernel_dispatches"), Some(7.5));
    }
}
