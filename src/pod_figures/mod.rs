//! Per-pod and per-strategy scheduling figures from the kernel's own
//! accounting.
//!
//! A reading round reads, for every process in a pod (from the shared `/proc`
//! scan, [`crate::pods::ScanCache`]) and every PID a strategy resolves to:
//! - `/proc/PID/stat`: start time (with the PID it names one process, so a
//!   reused PID never yields a delta against another process), `utime + stime`
//!   (clock ticks, includes exited threads) and the thread count;
//! - `/proc/PID/task/TID/schedstat` for each thread: ns on CPU, ns waiting on
//!   a run queue, timeslices. `/proc/PID/schedstat` covers the main thread
//!   only, so the threads are summed; a single-threaded process costs one
//!   read of `/proc/PID/schedstat` instead of a directory listing. At most
//!   [`MAX_THREADS_PER_PROCESS`](crate::pods::schedstat::MAX_THREADS_PER_PROCESS) threads are read per process (the others are
//!   not counted; `threads_capped` says how many processes hit the cap).
//!
//! Figures need two readings: the previous cumulative reading is kept per PID
//! (and per thread), and a round's figures are the deltas over the wall time
//! between the two rounds. Thread deltas are taken per TID, so a thread that
//! exits between rounds loses only its last partial interval instead of
//! making the sum go backwards; a thread that appeared since the previous
//! round counts whole (it started within the interval). A process seen for the
//! first time contributes from its second round on.
//!
//! A sampler thread ([`Sampler`], `--stats-interval-ms`, default 1000, 0
//! disables) runs the rounds and keeps a bounded history per pod
//! ([`HISTORY_POINTS`] points, at most [`MAX_PODS`] pods); the HTTP handlers
//! and `/metrics` only read what the last round stored.

mod delta;
mod sampler;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use crate::mailbox::{Notify, Wake};
use crate::podmeta::PodDirectory;
use crate::pods::schedstat::{read_process, ProcReading};
use crate::pods::ProcSnapshot;
use crate::timefmt::rfc3339_ms;

pub use delta::{clock_ticks, delta, figures, Delta, Figures};
pub use sampler::Sampler;

/// History points kept per pod.
pub const HISTORY_POINTS: usize = 300;
/// Pods tracked (sorted by UID; the rest are counted in `pods_dropped`).
pub const MAX_PODS: usize = 2_000;
/// PIDs read per round (pod processes first, then strategy PIDs).
pub const MAX_PIDS_PER_ROUND: usize = 20_000;

/// One point of a pod's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryPoint {
    /// End of the interval (RFC3339, ms).
    pub timestamp: String,
    /// Length of the interval in ms.
    pub interval_ms: f64,
    #[serde(flatten)]
    pub figures: Figures,
}

/// What the stats endpoints know of one pod.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PodStats {
    pub uid: String,
    /// From Kubernetes or `--pods-file`; empty when unknown.
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// Processes in the pod at the last round.
    pub processes: usize,
    /// Threads read at the last round.
    pub threads: usize,
    /// Figures of the last interval (null until two rounds saw the pod).
    pub cpu_usage: Option<f64>,
    pub cpu_usage_utime_stime: Option<f64>,
    pub runqueue_wait_ms_per_s: Option<f64>,
    pub avg_wait_us_per_timeslice: Option<f64>,
    pub timeslices_per_s: Option<f64>,
    /// Oldest first; at most the requested number of points.
    pub history: Vec<HistoryPoint>,
}

/// How the figures are sampled, and what the last round cost.
#[derive(Debug, Clone, Serialize, ToSchema, Default)]
pub struct SamplingInfo {
    /// false with `--stats-interval-ms 0` (or before the sampler started).
    pub enabled: bool,
    pub interval_ms: u64,
    /// Rounds since start.
    pub rounds: u64,
    /// When the last round ended (RFC3339, ms).
    pub last_round_at: Option<String>,
    /// Wall time of the last round, ms (reading /proc, not the shared scan).
    pub last_round_ms: f64,
    /// Wall time of the shared /proc scan the last round used (0 when reused), ms.
    pub last_scan_ms: f64,
    pub pids_read: usize,
    pub threads_read: usize,
    /// Processes with more threads than are read per process.
    pub threads_capped: usize,
    /// Pods not tracked because of the pod limit.
    pub pods_dropped: usize,
    pub history_points: usize,
}

#[derive(Debug, Default)]
struct PodTrack {
    processes: usize,
    /// The pod's processes at the last round (for the priority-pod alert).
    pids: Vec<u32>,
    threads: usize,
    last: Option<Figures>,
    /// Everything measured since the pod was first seen (monotonic while the
    /// pod exists), for Prometheus counters.
    totals: Delta,
    history: VecDeque<HistoryPoint>,
}

/// A named pod's figures for `/metrics`: the last interval's rates, and the
/// totals since the agent first saw the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedPodFigures {
    pub namespace: String,
    pub pod: String,
    /// None until two rounds saw the pod.
    pub last: Option<Figures>,
    pub totals: Delta,
}

#[derive(Default)]
struct Inner {
    prev: HashMap<u32, ProcReading>,
    prev_at: Option<Instant>,
    pods: BTreeMap<String, PodTrack>,
    /// Per-PID deltas of the last interval, and its length.
    last_deltas: HashMap<u32, Delta>,
    last_interval: Duration,
    info: SamplingInfo,
}

/// The figures, shared by the sampler and the readers.
#[derive(Default)]
pub struct PodFigures {
    inner: Mutex<Inner>,
    /// The sampler's wake-up: a new strategy set ends its wait (an idle
    /// back-off may be long).
    sampler: Notify,
}

/// The process-wide store (one agent per process).

#[derive(Debug, Clone, Copy)]
pub struct PidsFigures {
    /// PIDs that had a delta in the last interval.
    pub measured: usize,
    /// None before two rounds.
    pub figures: Option<Figures>,
}

impl PodFigures {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Who to wake when the strategy set changes (the sampler thread).
    pub fn set_notify(&self, wake: Wake) {
        self.sampler.set(wake);
    }

    /// The strategy set changed: the sampler reads its PIDs now.
    pub fn strategies_changed(&self) {
        self.sampler.post();
    }

    pub fn set_interval(&self, interval: Duration) {
        let mut g = self.lock();
        g.info.enabled = !interval.is_zero();
        g.info.interval_ms = interval.as_millis() as u64;
        g.info.history_points = HISTORY_POINTS;
    }

    pub fn info(&self) -> SamplingInfo {
        self.lock().info.clone()
    }

    /// One reading round: every process in a pod of `snap`, then `extra_pids`
    /// (strategy PIDs), read and compared with the previous round.
    pub fn round(&self, proc_root: &Path, snap: &ProcSnapshot, extra_pids: &[u32]) {
        let started = Instant::now();
        // Pods, sorted by UID, bounded.
        let mut pod_pids: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for p in &snap.processes {
            if let Some(pod) = &p.pod {
                pod_pids.entry(&pod.pod_uid).or_default().push(p.pid);
            }
        }
        let pods_dropped = pod_pids.len().saturating_sub(MAX_PODS);
        // Pod processes first, then strategy PIDs not in a pod, up to the bound.
        let mut pids: Vec<u32> = Vec::new();
        for v in pod_pids.values().take(MAX_PODS) {
            pids.extend_from_slice(v);
        }
        let mut seen: std::collections::HashSet<u32> = pids.iter().copied().collect();
        for &p in extra_pids {
            if seen.insert(p) {
                pids.push(p);
            }
        }
        pids.truncate(MAX_PIDS_PER_ROUND);

        let mut buf = String::with_capacity(512);
        let mut readings: HashMap<u32, ProcReading> = HashMap::with_capacity(pids.len());
        for &pid in &pids {
            if let Some(r) = read_process(proc_root, pid, &mut buf) {
                readings.insert(pid, r);
            }
        }
        let now = Instant::now();
        let now_utc = Utc::now();

        let mut g = self.lock();
        let wall = g.prev_at.map(|t| now.duration_since(t));
        let mut deltas = HashMap::with_capacity(readings.len());
        if wall.is_some() {
            for (pid, cur) in &readings {
                if let Some(d) = g.prev.get(pid).and_then(|prev| delta(prev, cur)) {
                    deltas.insert(*pid, d);
                }
            }
        }
        let ticks = clock_ticks();
        let mut pods = std::mem::take(&mut g.pods);
        pods.retain(|uid, _| pod_pids.contains_key(uid.as_str()));
        for (uid, list) in pod_pids.iter().take(MAX_PODS) {
            let track = pods.entry(uid.to_string()).or_default();
            track.processes = list.len();
            track.pids.clone_from(list);
            track.threads = list
                .iter()
                .filter_map(|p| readings.get(p))
                .map(|r| r.threads.len())
                .sum();
            track.last = None;
            let Some(wall) = wall else { continue };
            let mut sum = Delta::default();
            let mut any = false;
            for p in list {
                if let Some(d) = deltas.get(p) {
                    sum.add(d);
                    any = true;
                }
            }
            if !any {
                continue;
            }
            let f = figures(&sum, wall, ticks);
            track.last = Some(f);
            track.totals.add(&sum);
            if track.history.len() >= HISTORY_POINTS {
                track.history.pop_front();
            }
            track.history.push_back(HistoryPoint {
                timestamp: rfc3339_ms(now_utc),
                interval_ms: wall.as_secs_f64() * 1e3,
                figures: f,
            });
        }
        g.pods = pods;
        g.info.rounds += 1;
        g.info.last_round_at = Some(rfc3339_ms(now_utc));
        g.info.last_round_ms = started.elapsed().as_secs_f64() * 1e3;
        g.info.pids_read = readings.len();
        g.info.threads_read = readings.values().map(|r| r.threads.len()).sum();
        g.info.threads_capped = readings.values().filter(|r| r.capped).count();
        g.info.pods_dropped = pods_dropped;
        g.info.history_points = HISTORY_POINTS;
        g.last_deltas = deltas;
        g.last_interval = wall.unwrap_or_default();
        g.prev = readings;
        g.prev_at = Some(now);
    }

    /// Every tracked pod with at most `points` history points, metadata from `dir`.
    pub fn pods(&self, dir: Option<&PodDirectory>, points: usize) -> Vec<PodStats> {
        let g = self.lock();
        g.pods
            .iter()
            .map(|(uid, t)| {
                let meta = dir.and_then(|d| d.get(uid));
                let skip = t.history.len().saturating_sub(points);
                PodStats {
                    uid: uid.clone(),
                    name: meta.map(|m| m.name.clone()).unwrap_or_default(),
                    namespace: meta.map(|m| m.namespace.clone()).unwrap_or_default(),
                    labels: meta.map(|m| m.labels.clone()).unwrap_or_default(),
                    processes: t.processes,
                    threads: t.threads,
                    cpu_usage: t.last.map(|f| f.cpu_usage),
                    cpu_usage_utime_stime: t.last.map(|f| f.cpu_usage_utime_stime),
                    runqueue_wait_ms_per_s: t.last.map(|f| f.runqueue_wait_ms_per_s),
                    avg_wait_us_per_timeslice: t.last.and_then(|f| f.avg_wait_us_per_timeslice),
                    timeslices_per_s: t.last.map(|f| f.timeslices_per_s),
                    history: t.history.iter().skip(skip).cloned().collect(),
                }
            })
            .collect()
    }

    /// The last interval's figures summed over `pids`.
    pub fn pids_figures(&self, pids: &[u32]) -> PidsFigures {
        let g = self.lock();
        if g.last_interval.is_zero() {
            return PidsFigures {
                measured: 0,
                figures: None,
            };
        }
        let mut sum = Delta::default();
        let mut measured = 0;
        for p in pids {
            if let Some(d) = g.last_deltas.get(p) {
                sum.add(d);
                measured += 1;
            }
        }
        PidsFigures {
            measured,
            figures: Some(figures(&sum, g.last_interval, clock_ticks())),
        }
    }

    /// Tracked pods with a process in `pids`: UID and last figures (None
    /// until two rounds saw the pod).
    pub fn pods_with_any(
        &self,
        pids: &std::collections::HashSet<u32>,
    ) -> Vec<(String, Option<Figures>)> {
        let g = self.lock();
        g.pods
            .iter()
            .filter(|(_, t)| t.pids.iter().any(|p| pids.contains(p)))
            .map(|(uid, t)| (uid.clone(), t.last))
            .collect()
    }

    /// Every named pod's figures, for `/metrics`.
    pub fn named_pod_figures(&self, dir: Option<&PodDirectory>) -> Vec<NamedPodFigures> {
        let Some(dir) = dir else { return Vec::new() };
        let g = self.lock();
        g.pods
            .iter()
            .filter_map(|(uid, t)| {
                let meta = dir.get(uid)?;
                Some(NamedPodFigures {
                    namespace: meta.namespace.clone(),
                    pod: meta.name.clone(),
                    last: t.last,
                    totals: t.totals,
                })
            })
            .collect()
    }
}
