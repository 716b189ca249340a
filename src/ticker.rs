//! The background loops (alert evaluation, pod statistics): a named thread
//! with a stop flag, ticks at a fixed rate that skip ahead rather than burst
//! after a late one, and a wait in short sleeps so that the stop flag is seen
//! promptly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A named thread running `body(stop flag)`; [`Worker::stop`] sets the flag
/// and joins the thread.
pub struct Worker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Worker {
    pub fn spawn(
        name: &str,
        body: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(flag))?;
        Ok(Self { stop, thread })
    }

    /// Set the stop flag and wait for the thread to end.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// The longest single sleep: how long a stop may wait for the loop.
const SLEEP_STEP: Duration = Duration::from_millis(100);

/// Move `next` on by `step` (when that is already past, to `step` from now:
/// late ticks are not caught up one after another), then sleep until it in
/// steps of at most 100 ms. Returns early once `stop` is set, or when
/// `wake_early()` is true (asked before each sleep, after the stop flag);
/// then the next step counts from now.
pub fn wait_next(
    next: &mut Instant,
    step: Duration,
    stop: &AtomicBool,
    wake_early: impl Fn() -> bool,
) {
    *next += step;
    let now = Instant::now();
    if *next < now {
        *next = now + step;
    }
    while !stop.load(Ordering::Relaxed) {
        let left = next.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if wake_early() {
            // The schedule restarts from this wake, not from the tick it
            // replaces (which may be a long back-off away).
            *next = Instant::now();
            break;
        }
        std::thread::sleep(left.min(SLEEP_STEP));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_until_the_next_tick() {
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        let mut next = start;
        wait_next(&mut next, Duration::from_millis(150), &stop, || false);
        assert_eq!(next, start + Duration::from_millis(150));
        assert!(Instant::now() >= next);
    }

    #[test]
    fn an_early_wake_counts_the_next_step_from_now() {
        let stop = AtomicBool::new(false);
        let mut next = Instant::now();
        wait_next(&mut next, Duration::from_secs(10), &stop, || true);
        assert!(next <= Instant::now());
    }

    #[test]
    fn a_late_tick_restarts_from_now() {
        let stop = AtomicBool::new(true);
        let before = Instant::now();
        let mut next = before - Duration::from_secs(10);
        wait_next(&mut next, Duration::from_secs(1), &stop, || false);
        assert!(next >= before + Duration::from_secs(1), "{next:?}");
    }

    #[test]
    fn stop_and_wake_early_end_the_wait() {
        for (stop, wake) in [(true, false), (false, true)] {
            let start = Instant::now();
            let mut next = start;
            let flag = AtomicBool::new(stop);
            wait_next(&mut next, Duration::from_secs(60), &flag, || wake);
            assert!(start.elapsed() < Duration::from_secs(5), "{stop} {wake}");
        }
    }
}
