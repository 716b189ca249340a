//! Scheduler counters as the user's `BssData`, per-second rates, and a bounded
//! history of samples. The sampler writes here; the HTTP layer only reads.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The user's BssData: field names and types are the public contract.
/// Meanings in scx_pilot's kernel dispatch mode are in the README.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BssData {
    /// PID of the user-space scheduler (scx_pilot itself for its own scheduler).
    #[schema(example = 1234)]
    pub usersched_pid: u32,
    /// Tasks waiting in the scheduler's queues.
    pub nr_queued: u64,
    /// Tasks held by a user-space dispatcher (0 in kernel mode).
    pub nr_scheduled: u64,
    /// Tasks running on a CPU under this scheduler.
    pub nr_running: u64,
    /// Online CPUs.
    pub nr_online_cpus: u64,
    /// Dispatches decided in user space (0 in kernel mode).
    pub nr_user_dispatches: u64,
    /// Dispatches decided in BPF.
    pub nr_kernel_dispatches: u64,
    /// Tasks taken back before they were dispatched.
    pub nr_cancel_dispatches: u64,
    /// Dispatches bounced to another CPU (0 in kernel mode).
    pub nr_bounce_dispatches: u64,
    /// Queue insertions the kernel refused.
    pub nr_failed_dispatches: u64,
    /// Scheduler congestion occurrences (0 in kernel mode).
    pub nr_sched_congested: u64,
}

/// Counters of scx_pilot's own policy, beyond the user's BssData.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyCounters {
    /// Waking tasks put straight on an idle CPU from select_cpu.
    pub nr_direct_dispatches: u64,
    /// Enqueues of tasks with a priority strategy.
    pub nr_prio_dispatches: u64,
    /// Priority tasks that preempted (or kicked) a CPU running a normal task.
    pub nr_preemptions: u64,
    /// Times the shared queue was served ahead of the priority queue to prevent starvation.
    pub nr_starvation_guards: u64,
    /// Enqueues decided by any strategy.
    pub nr_strategy_hits: u64,
    /// User dispatch mode: tasks sent to the dispatcher thread.
    #[serde(default)]
    pub nr_user_enqueues: u64,
    /// User dispatch mode: times BPF bypassed a dispatcher that held tasks
    /// without answering for --user-stall-ms.
    #[serde(default)]
    pub nr_user_fallbacks: u64,
    /// User dispatch mode: tasks BPF took back from a stalled dispatcher.
    #[serde(default)]
    pub nr_user_recovered: u64,
    /// User dispatch mode: tasks dequeued (affinity, priority change) while
    /// the dispatcher held them.
    #[serde(default)]
    pub nr_user_withdrawn: u64,
    /// User dispatch mode: tasks in the dispatcher's hands at this sample.
    #[serde(default)]
    pub nr_user_outstanding: u64,
}

/// One reading of the scheduler's counters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub timestamp: DateTime<Utc>,
    pub bss: BssData,
    pub policy: PolicyCounters,
}

/// Per-second rates of the monotonic counters between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Rates {
    pub interval_s: f64,
    pub user_dispatches_per_s: f64,
    pub kernel_dispatches_per_s: f64,
    pub cancel_dispatches_per_s: f64,
    pub bounce_dispatches_per_s: f64,
    pub failed_dispatches_per_s: f64,
    pub sched_congested_per_s: f64,
    pub preemptions_per_s: f64,
    pub strategy_hits_per_s: f64,
}

impl Rates {
    /// Rates from `prev` to `cur`; None when time did not advance. A counter
    /// that went backwards (the scheduler restarted) counts from zero.
    pub fn between(prev: &Sample, cur: &Sample) -> Option<Rates> {
        let interval_s = (cur.timestamp - prev.timestamp).num_microseconds()? as f64 / 1e6;
        if interval_s <= 0.0 {
            return None;
        }
        let rate = |a: u64, b: u64| {
            let delta = if b >= a { b - a } else { b };
            delta as f64 / interval_s
        };
        let (p, c) = (&prev.bss, &cur.bss);
        Some(Rates {
            interval_s,
            user_dispatches_per_s: rate(p.nr_user_dispatches, c.nr_user_dispatches),
            kernel_dispatches_per_s: rate(p.nr_kernel_dispatches, c.nr_kernel_dispatches),
            cancel_dispatches_per_s: rate(p.nr_cancel_dispatches, c.nr_cancel_dispatches),
            bounce_dispatches_per_s: rate(p.nr_bounce_dispatches, c.nr_bounce_dispatches),
            failed_dispatches_per_s: rate(p.nr_failed_dispatches, c.nr_failed_dispatches),
            sched_congested_per_s: rate(p.nr_sched_congested, c.nr_sched_congested),
            preemptions_per_s: rate(prev.policy.nr_preemptions, cur.policy.nr_preemptions),
            strategy_hits_per_s: rate(prev.policy.nr_strategy_hits, cur.policy.nr_strategy_hits),
        })
    }
}

/// The latest sample with its rates, swapped in atomically so readers never wait.
#[derive(Debug, Clone, Serialize)]
pub struct Latest {
    pub sample: Sample,
    pub rates: Option<Rates>,
}

/// Latest sample (lock-free for readers) and a bounded ring of recent ones.
pub struct MetricsStore {
    latest: ArcSwapOption<Latest>,
    history: Mutex<VecDeque<Sample>>,
    capacity: usize,
}

impl MetricsStore {
    /// A store keeping at most `capacity` samples of history (at least one).
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            latest: ArcSwapOption::empty(),
            history: Mutex::new(VecDeque::with_capacity(capacity.clamp(1, 4096))),
            capacity: capacity.max(1),
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
    pub fn history(&self, seconds: u64) -> Vec<Sample> {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let Some(newest) = history.back() else {
            return Vec::new();
        };
        let cutoff =
            newest.timestamp - chrono::Duration::seconds(seconds.min(i64::MAX as u64) as i64);
        history
            .iter()
            .filter(|s| s.timestamp >= cutoff)
            .copied()
            .collect()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn rates_are_per_second() {
        let r = Rates::between(&sample(0, 100), &sample(500, 600)).unwrap();
        assert_eq!(r.interval_s, 0.5);
        assert_eq!(r.kernel_dispatches_per_s, 1000.0);
    }

    #[test]
    fn counter_reset_counts_from_zero() {
        let r = Rates::between(&sample(0, 1000), &sample(1000, 30)).unwrap();
        assert_eq!(r.kernel_dispatches_per_s, 30.0);
    }

    #[test]
    fn no_rate_without_elapsed_time() {
        assert!(Rates::between(&sample(0, 1), &sample(0, 2)).is_none());
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
