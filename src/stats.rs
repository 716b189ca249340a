//! Per-pod and per-strategy scheduling figures from the kernel's own
//! accounting (issue 9).
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
//!   [`MAX_THREADS_PER_PROCESS`] threads are read per process (the others are
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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use crate::podmeta::PodDirectory;
use crate::pods::ProcSnapshot;
use crate::ticker;

/// History points kept per pod.
pub const HISTORY_POINTS: usize = 300;
/// Pods tracked (sorted by UID; the rest are counted in `pods_dropped`).
pub const MAX_PODS: usize = 2_000;
/// Threads read per process.
pub const MAX_THREADS_PER_PROCESS: usize = 512;
/// PIDs read per round (pod processes first, then strategy PIDs).
pub const MAX_PIDS_PER_ROUND: usize = 20_000;

/// One thread's cumulative schedstat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThreadReading {
    pub tid: u32,
    /// ns on a CPU.
    pub run_ns: u64,
    /// ns waiting on a run queue.
    pub wait_ns: u64,
    /// Timeslices run.
    pub slices: u64,
}

/// One process's cumulative counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcReading {
    pub start_ticks: u64,
    /// utime + stime in clock ticks.
    pub cpu_ticks: u64,
    /// Sorted by TID.
    pub threads: Vec<ThreadReading>,
    /// Some threads were not read ([`MAX_THREADS_PER_PROCESS`]).
    pub capped: bool,
}

/// What happened between two readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delta {
    pub run_ns: u64,
    pub wait_ns: u64,
    pub slices: u64,
    pub cpu_ticks: u64,
}

impl Delta {
    pub fn add(&mut self, o: &Delta) {
        self.run_ns += o.run_ns;
        self.wait_ns += o.wait_ns;
        self.slices += o.slices;
        self.cpu_ticks += o.cpu_ticks;
    }
}

/// The change from `prev` to `cur` of one process, None when they are not
/// the same process (start times differ: the PID was reused).
pub fn delta(prev: &ProcReading, cur: &ProcReading) -> Option<Delta> {
    if prev.start_ticks != cur.start_ticks {
        return None;
    }
    let mut d = Delta {
        cpu_ticks: cur.cpu_ticks.saturating_sub(prev.cpu_ticks),
        ..Delta::default()
    };
    for t in &cur.threads {
        match prev.threads.binary_search_by_key(&t.tid, |p| p.tid) {
            Ok(i) => {
                let p = &prev.threads[i];
                d.run_ns += t.run_ns.saturating_sub(p.run_ns);
                d.wait_ns += t.wait_ns.saturating_sub(p.wait_ns);
                d.slices += t.slices.saturating_sub(p.slices);
            }
            // A thread started since the previous reading: all of it is new.
            // Unless that reading skipped threads (capped): then it may be an
            // old thread seen for the first time, which counts from the next round.
            Err(_) if !prev.capped => {
                d.run_ns += t.run_ns;
                d.wait_ns += t.wait_ns;
                d.slices += t.slices;
            }
            Err(_) => {}
        }
    }
    Some(d)
}

/// Rates over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Figures {
    /// CPU time used, as a fraction of one CPU (schedstat run time; 2.0 = two CPUs busy).
    pub cpu_usage: f64,
    /// The same from utime + stime (clock-tick granularity; includes exited threads).
    pub cpu_usage_utime_stime: f64,
    /// Time spent waiting on a run queue, in ms per second of wall time (summed over threads).
    pub runqueue_wait_ms_per_s: f64,
    /// Average run-queue wait per timeslice in µs; null when no timeslice ran.
    pub avg_wait_us_per_timeslice: Option<f64>,
    /// Timeslices run per second (summed over threads).
    pub timeslices_per_s: f64,
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 when unknown).
pub fn clock_ticks() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        // SAFETY: sysconf has no memory effects.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as u64
        } else {
            100
        }
    })
}

/// Rates of `d` over `wall` (`ticks_per_s` converts utime + stime).
pub fn figures(d: &Delta, wall: Duration, ticks_per_s: u64) -> Figures {
    let s = wall.as_secs_f64().max(1e-9);
    Figures {
        cpu_usage: d.run_ns as f64 / 1e9 / s,
        cpu_usage_utime_stime: d.cpu_ticks as f64 / ticks_per_s.max(1) as f64 / s,
        runqueue_wait_ms_per_s: d.wait_ns as f64 / 1e6 / s,
        avg_wait_us_per_timeslice: (d.slices > 0).then(|| d.wait_ns as f64 / 1e3 / d.slices as f64),
        timeslices_per_s: d.slices as f64 / s,
    }
}

/// `run_ns wait_ns slices` of a schedstat file.
pub fn parse_schedstat(s: &str) -> Option<(u64, u64, u64)> {
    let mut it = s.split_ascii_whitespace().map(|v| v.parse::<u64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// `(start_ticks, utime + stime, num_threads)` of a `/proc/PID/stat` line.
pub fn parse_stat_times(stat: &str) -> Option<(u64, u64, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    // After the command, state is field 3: utime 14, stime 15, num_threads 20, starttime 22.
    let f: Vec<&str> = rest.split_ascii_whitespace().take(20).collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((n(19)?, n(11)? + n(12)?, n(17)?))
}

fn read_into(path: &Path, buf: &mut String) -> bool {
    buf.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .is_ok()
}

/// Read one process (None when it is gone or unreadable).
pub fn read_process(proc_root: &Path, pid: u32, buf: &mut String) -> Option<ProcReading> {
    let mut path = proc_root.join(pid.to_string());
    path.push("stat");
    if !read_into(&path, buf) {
        return None;
    }
    let (start_ticks, cpu_ticks, nthreads) = parse_stat_times(buf)?;
    path.pop();
    let mut r = ProcReading {
        start_ticks,
        cpu_ticks,
        threads: Vec::with_capacity(nthreads.min(MAX_THREADS_PER_PROCESS as u64) as usize),
        capped: false,
    };
    if nthreads <= 1 {
        // The main thread is the only one: its schedstat is the process's.
        path.push("schedstat");
        if read_into(&path, buf) {
            if let Some((run_ns, wait_ns, slices)) = parse_schedstat(buf) {
                r.threads.push(ThreadReading {
                    tid: pid,
                    run_ns,
                    wait_ns,
                    slices,
                });
            }
        }
        return Some(r);
    }
    path.push("task");
    let Ok(dir) = std::fs::read_dir(&path) else {
        return Some(r);
    };
    for entry in dir {
        let Ok(entry) = entry else { continue };
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if r.threads.len() >= MAX_THREADS_PER_PROCESS {
            r.capped = true;
            break;
        }
        path.push(entry.file_name());
        path.push("schedstat");
        if read_into(&path, buf) {
            if let Some((run_ns, wait_ns, slices)) = parse_schedstat(buf) {
                r.threads.push(ThreadReading {
                    tid,
                    run_ns,
                    wait_ns,
                    slices,
                });
            }
        }
        path.pop();
        path.pop();
    }
    r.threads.sort_unstable_by_key(|t| t.tid);
    Some(r)
}

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
    history: VecDeque<HistoryPoint>,
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
pub struct StatsStore {
    inner: Mutex<Inner>,
}

/// The process-wide store (one agent per process).
pub fn global() -> &'static StatsStore {
    static STORE: OnceLock<StatsStore> = OnceLock::new();
    STORE.get_or_init(StatsStore::default)
}

/// The figures of a set of PIDs over the last interval.
#[derive(Debug, Clone, Copy)]
pub struct PidsFigures {
    /// PIDs that had a delta in the last interval.
    pub measured: usize,
    /// None before two rounds.
    pub figures: Option<Figures>,
}

impl StatsStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
            if track.history.len() >= HISTORY_POINTS {
                track.history.pop_front();
            }
            track.history.push_back(HistoryPoint {
                timestamp: crate::api::rfc3339_ms(now_utc),
                interval_ms: wall.as_secs_f64() * 1e3,
                figures: f,
            });
        }
        g.pods = pods;
        g.info.rounds += 1;
        g.info.last_round_at = Some(crate::api::rfc3339_ms(now_utc));
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

    /// `(namespace, pod, figures)` of every named pod with figures, for `/metrics`.
    pub fn named_pod_figures(&self, dir: Option<&PodDirectory>) -> Vec<(String, String, Figures)> {
        let Some(dir) = dir else { return Vec::new() };
        let g = self.lock();
        g.pods
            .iter()
            .filter_map(|(uid, t)| {
                let meta = dir.get(uid)?;
                Some((meta.namespace.clone(), meta.name.clone(), t.last?))
            })
            .collect()
    }
}

/// Idle rounds (no pod process, no strategy PID) repeat this many intervals apart.
const IDLE_BACKOFF: u32 = 10;
/// The longest gap between idle rounds.
const MAX_IDLE_INTERVAL: Duration = Duration::from_secs(30);

fn has_strategy_pids(state: &crate::api::ApiState) -> bool {
    !state
        .strategies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .resolved
        .desired
        .is_empty()
}

/// The sampler thread: one round every interval.
pub struct Sampler(ticker::Worker);

impl Sampler {
    /// Start sampling `state` into [`global`] every `interval` (None when zero).
    /// Start reading every `interval` (nothing when it is zero); rounds that
    /// find no pod process and no strategy PID back off to
    /// `IDLE_BACKOFF` intervals (at most `MAX_IDLE_INTERVAL`).
    pub fn spawn(
        state: actix_web::web::Data<crate::api::ApiState>,
        interval: Duration,
    ) -> std::io::Result<Option<Self>> {
        global().set_interval(interval);
        if interval.is_zero() {
            log::info!("pod stats sampling disabled (--stats-interval-ms 0)");
            return Ok(None);
        }
        let worker = ticker::Worker::spawn("pod-stats", move |flag| {
            let proc_root: PathBuf = state.proc_root.clone();
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                // Share a scan the resolver or the pods API made within
                // half an interval.
                let t = Instant::now();
                let snap = match state.pods.get_within(interval / 2) {
                    Ok(s) => s,
                    Err(e) => {
                        log::warn!("pod stats: scanning {}: {e}", proc_root.display());
                        Arc::new(ProcSnapshot::empty())
                    }
                };
                let scan_ms = if snap.taken_at >= t {
                    snap.scan_time.as_secs_f64() * 1e3
                } else {
                    0.0
                };
                let extra: Vec<u32> = {
                    let s = state.strategies.lock().unwrap_or_else(|e| e.into_inner());
                    s.resolved.desired.keys().copied().collect()
                };
                global().round(&proc_root, &snap, &extra);
                global().lock().info.last_scan_ms = scan_ms;
                // A node without pods and strategies (bare metal) has
                // nothing to measure: look again less often, so the /proc
                // walk does not cost a busy host CPU every interval.
                let idle = extra.is_empty() && !snap.processes.iter().any(|p| p.pod.is_some());
                let step = if idle {
                    (interval * IDLE_BACKOFF).clamp(interval, MAX_IDLE_INTERVAL)
                } else {
                    interval
                };
                // Sleep in short steps so stop() returns quickly, and a
                // new strategy set ends an idle back-off at once.
                ticker::wait_next(&mut next, step, &flag, || idle && has_strategy_pids(&state));
            }
        })?;
        Ok(Some(Self(worker)))
    }

    /// Stop and join the thread.
    pub fn stop(self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tid: u32, run_ns: u64, wait_ns: u64, slices: u64) -> ThreadReading {
        ThreadReading {
            tid,
            run_ns,
            wait_ns,
            slices,
        }
    }

    #[test]
    fn parses_kernel_files() {
        assert_eq!(
            parse_schedstat("123456 7890 42\n"),
            Some((123456, 7890, 42))
        );
        assert_eq!(parse_schedstat("1 2\n"), None);
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime cutime cstime prio nice threads itreal start
        let stat = "42 (a) b (c)) R 1 42 42 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 3 0 98765 1000";
        assert_eq!(parse_stat_times(stat), Some((98765, 300, 3)));
        assert_eq!(parse_stat_times("42 (x) R 1"), None);
    }

    #[test]
    fn delta_math_on_fixed_inputs() {
        let prev = ProcReading {
            start_ticks: 500,
            cpu_ticks: 100,
            threads: vec![t(10, 1_000_000_000, 10_000_000, 100), t(11, 500, 500, 5)],
            capped: false,
        };
        // Thread 10 ran 0.5 s more, waited 20 ms more over 50 slices; thread
        // 11 exited; thread 12 is new (counts whole).
        let cur = ProcReading {
            start_ticks: 500,
            cpu_ticks: 160,
            threads: vec![
                t(10, 1_500_000_000, 30_000_000, 150),
                t(12, 250_000_000, 10_000_000, 50),
            ],
            capped: false,
        };
        let d = delta(&prev, &cur).unwrap();
        assert_eq!(
            d,
            Delta {
                run_ns: 750_000_000,
                wait_ns: 30_000_000,
                slices: 100,
                cpu_ticks: 60,
            }
        );
        let f = figures(&d, Duration::from_millis(500), 100);
        assert!((f.cpu_usage - 1.5).abs() < 1e-9);
        assert!((f.cpu_usage_utime_stime - 1.2).abs() < 1e-9);
        assert!((f.runqueue_wait_ms_per_s - 60.0).abs() < 1e-9);
        assert!((f.avg_wait_us_per_timeslice.unwrap() - 300.0).abs() < 1e-9);
        assert!((f.timeslices_per_s - 200.0).abs() < 1e-9);

        // A reused PID (other start time) gives no delta.
        let other = ProcReading {
            start_ticks: 501,
            ..cur.clone()
        };
        assert_eq!(delta(&prev, &other), None);
        // Counters never go backwards into huge numbers.
        let back = ProcReading {
            start_ticks: 500,
            cpu_ticks: 50,
            threads: vec![t(10, 1, 1, 1)],
            capped: false,
        };
        assert_eq!(delta(&prev, &back), Some(Delta::default()));
        // After a capped reading, unseen threads are not counted whole.
        let capped = ProcReading {
            capped: true,
            ..prev.clone()
        };
        assert_eq!(delta(&capped, &cur).unwrap().run_ns, 500_000_000);
        // No timeslice: no average wait.
        let idle = figures(&Delta::default(), Duration::from_secs(1), 100);
        assert_eq!(idle.avg_wait_us_per_timeslice, None);
        assert_eq!(idle.cpu_usage, 0.0);
    }

    #[test]
    fn reads_this_process_with_its_threads() {
        let proc_root = Path::new("/proc");
        let me = std::process::id();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        let mut buf = String::new();
        let r = read_process(proc_root, me, &mut buf).unwrap();
        assert!(r.threads.len() >= 2, "{r:?}");
        assert!(r.threads.windows(2).all(|w| w[0].tid < w[1].tid));
        assert_eq!(Some(r.start_ticks), crate::pods::start_ticks(proc_root, me));
        drop(tx);
        h.join().unwrap();
        assert!(read_process(proc_root, u32::MAX - 1, &mut buf).is_none());
    }
}
