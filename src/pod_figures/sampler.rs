//! The thread that runs a reading round every interval.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pods::ProcSnapshot;
use crate::state::AgentState;
use crate::ticker;

/// Idle rounds (no pod process, no strategy PID) repeat this many intervals apart.
const IDLE_BACKOFF: u32 = 10;
/// The longest gap between idle rounds.
const MAX_IDLE_INTERVAL: Duration = Duration::from_secs(30);

/// The sampler thread: one round every interval.
pub struct Sampler(ticker::Worker);

impl Sampler {
    /// Start reading every `interval` (nothing when it is zero); rounds that
    /// find no pod process and no strategy PID back off to
    /// `IDLE_BACKOFF` intervals (at most `MAX_IDLE_INTERVAL`).
    pub fn spawn(state: Arc<AgentState>, interval: Duration) -> std::io::Result<Option<Self>> {
        state.pod_figures.set_interval(interval);
        if interval.is_zero() {
            log::info!("pod stats sampling disabled (--stats-interval-ms 0)");
            return Ok(None);
        }
        let worker = ticker::Worker::spawn("pod-stats", move |flag, wake| {
            state.pod_figures.set_notify(wake.clone());
            let proc_root = state.proc_root.clone();
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
                    let s = state.lock_strategies();
                    s.resolved.desired.keys().copied().collect()
                };
                state.pod_figures.round(&proc_root, &snap, &extra);
                state.pod_figures.lock().info.last_scan_ms = scan_ms;
                // A node without pods and strategies (bare metal) has
                // nothing to measure: look again less often, so the /proc
                // walk does not cost a busy host CPU every interval.
                let idle = extra.is_empty() && !snap.processes.iter().any(|p| p.pod.is_some());
                let step = if idle {
                    (interval * IDLE_BACKOFF).clamp(interval, MAX_IDLE_INTERVAL)
                } else {
                    interval
                };
                // A new strategy set ends the wait (and an idle back-off) at once.
                ticker::wait_next(&mut next, step, &flag, &wake);
            }
        })?;
        Ok(Some(Self(worker)))
    }

    /// Stop and join the thread.
    pub fn stop(self) {
        self.0.stop();
    }
}
