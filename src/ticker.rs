//! The background loops (alert evaluation, pod statistics): a named thread
//! with a stop flag, ticks at a fixed rate that skip ahead rather than burst
//! after a late one, and a wait that sleeps until the tick in one go, ended
//! early by a post to the worker's wake-up (its stop, or news such as a new
//! strategy set). Not short sleeps that look at a flag: an idle agent woke 30
//! times a second that way, and on a busy node each wake-up is a pass through
//! the scheduler and a task it delays.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::mailbox::{Mailbox, Wake};

/// A named thread running `body(stop flag, wake-up)`; [`Worker::stop`] sets
/// the flag, posts to the wake-up and joins the thread.
pub struct Worker {
    stop: Arc<AtomicBool>,
    wake: Wake,
    thread: JoinHandle<()>,
}

impl Worker {
    pub fn spawn(
        name: &str,
        body: impl FnOnce(Arc<AtomicBool>, Wake) + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Mailbox::shared();
        let (flag, woken) = (stop.clone(), wake.clone());
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(flag, woken))?;
        Ok(Self { stop, wake, thread })
    }

    /// Set the stop flag, end the thread's wait and wait for the thread to end.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.post(());
        let _ = self.thread.join();
    }
}

/// Move `next` on by `step` (when that is already past, to `step` from now:
/// late ticks are not caught up one after another), then sleep until it.
/// Returns early once `stop` is set or `wake` is posted to; after a post (not
/// a stop) the next step counts from now.
pub fn wait_next(next: &mut Instant, step: Duration, stop: &AtomicBool, wake: &Mailbox<()>) {
    *next += step;
    let now = Instant::now();
    if *next < now {
        *next = now + step;
    }
    if stop.load(Ordering::Relaxed) {
        return;
    }
    if wake.take_until(*next).is_some() && !stop.load(Ordering::Relaxed) {
        // The schedule restarts from this wake, not from the tick it
        // replaces (which may be a long back-off away).
        *next = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_until_the_next_tick() {
        let (stop, wake) = (AtomicBool::new(false), Mailbox::new());
        let start = Instant::now();
        let mut next = start;
        wait_next(&mut next, Duration::from_millis(150), &stop, &wake);
        assert_eq!(next, start + Duration::from_millis(150));
        assert!(Instant::now() >= next);
    }

    #[test]
    fn a_wake_counts_the_next_step_from_now() {
        let (stop, wake) = (AtomicBool::new(false), Mailbox::new());
        wake.post(());
        let mut next = Instant::now();
        wait_next(&mut next, Duration::from_secs(10), &stop, &wake);
        assert!(next <= Instant::now());
    }

    #[test]
    fn a_late_tick_restarts_from_now() {
        let (stop, wake) = (AtomicBool::new(true), Mailbox::new());
        let before = Instant::now();
        let mut next = before - Duration::from_secs(10);
        wait_next(&mut next, Duration::from_secs(1), &stop, &wake);
        assert!(next >= before + Duration::from_secs(1), "{next:?}");
    }

    #[test]
    fn stop_and_a_wake_end_the_wait() {
        for (stop, wake) in [(true, false), (false, true)] {
            let start = Instant::now();
            let mut next = start;
            let (flag, mailbox) = (AtomicBool::new(stop), Mailbox::new());
            if wake {
                mailbox.post(());
            }
            wait_next(&mut next, Duration::from_secs(60), &flag, &mailbox);
            assert!(start.elapsed() < Duration::from_secs(5), "{stop} {wake}");
        }
    }

    #[test]
    fn stopping_a_worker_ends_its_wait_at_once() {
        let worker = Worker::spawn("ticker-test", |stop, wake| {
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                wait_next(&mut next, Duration::from_secs(60), &stop, &wake);
            }
        })
        .unwrap();
        let start = Instant::now();
        worker.stop();
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
