//! The latest counter sample with its rates, and a bounded history of
//! samples. The sampler writes here; the HTTP layer only reads.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use serde::Serialize;

// The counter types are defined by the counter table; readers of samples
// find them here, next to the store that keeps them.
pub use crate::counters::{BssData, PolicyCounters, Rates, Sample};

/// The latest sample with its rates, swapped in atomically so readers never wait.
#[derive(Debug, Clone, Serialize)]
pub struct Latest {
    pub sample: Sample,
    pub rates: Option<Rates>,
}

/// The most memory the sample history may take, whatever the flags say.
pub const MAX_HISTORY_BYTES: usize = 64 << 20;
/// The most samples the history keeps ([`MAX_HISTORY_BYTES`] of them).
pub const MAX_HISTORY_SAMPLES: usize = MAX_HISTORY_BYTES / std::mem::size_of::<Sample>();

/// Latest sample (lock-free for readers) and a bounded ring of recent ones.
pub struct MetricsStore {
    latest: ArcSwapOption<Latest>,
    history: Mutex<VecDeque<Sample>>,
    capacity: usize,
}

impl MetricsStore {
    /// A store keeping at most `capacity` samples of history (at least one,
    /// at most [`MAX_HISTORY_SAMPLES`]).
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            latest: ArcSwapOption::empty(),
            history: Mutex::new(VecDeque::with_capacity(capacity.clamp(1, 4096))),
            capacity: capacity.clamp(1, MAX_HISTORY_SAMPLES),
        })
    }

    pub fn push(&self, sample: Sample) {
        let rates = self
            .latest
            .load()
            .as_ref()
            .and_then(|prev| Rates::between(&prev.sample, &sample));
        self.latest.store(Some(Arc::new(Latest { sample, rates })));
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if history.len() == self.capacity {
            history.pop_front();
        }
        history.push_back(sample);
    }

    pub fn latest(&self) -> Option<Arc<Latest>> {
        self.latest.load_full()
    }

    /// The latest sample without taking a reference count: for readers that
    /// only compare it with one they keep, on every request (an `Arc` clone
    /// is an atomic on a cache line every HTTP worker then writes).
    pub fn latest_guard(&self) -> arc_swap::Guard<Option<Arc<Latest>>> {
        self.latest.load()
    }

    /// Samples no older than `seconds` before the newest one, oldest first.
    /// Only the asked-for window is copied while the sampler waits (samples
    /// are in time order, so its start is found by bisection).
    pub fn history(&self, seconds: u64) -> Vec<Sample> {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let Some(newest) = history.back() else {
            return Vec::new();
        };
        let cutoff = newest.timestamp
            - chrono::Duration::seconds(seconds.min(i64::MAX as u64 / 1000) as i64);
        let start = history.partition_point(|s| s.timestamp < cutoff);
        history.range(start..).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn sample(ms: i64, kernel: u64) -> Sample {
        Sample {
            timestamp: DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap(),
            bss: BssData {
                nr_kernel_dispatches: kernel,
                ..Default::default()
            },
            policy: PolicyCounters::default(),
        }
    }

    #[test]
    fn history_is_bounded_and_windowed() {
        let store = MetricsStore::new(3);
        assert!(store.latest().is_none());
        for i in 0..5 {
            store.push(sample(i * 1000, i as u64));
        }
        let all = store.history(3600);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].bss.nr_kernel_dispatches, 2);
        assert_eq!(store.history(1).len(), 2);
        let latest = store.latest().unwrap();
        assert_eq!(latest.sample.bss.nr_kernel_dispatches, 4);
        assert_eq!(latest.rates.unwrap().kernel_dispatches_per_s, 1.0);
    }
}
