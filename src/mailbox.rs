//! A one-slot mailbox between threads: posting replaces a value not yet taken
//! (the readers here want only the newest strategy set, or one wake-up however
//! many were asked for), and a reader waits for it asleep in the kernel.
//!
//! Not a crossbeam channel for these waits: its receive spins and then calls
//! `sched_yield()` four times before it blocks, so the agent's periodic waits
//! (the scheduler loop, the resolver) yielded about 90 times a second when
//! idle (184 in 2 s in the VM), each yield a trip through the scheduler with
//! whatever task waited on that CPU. A condition variable sleeps on a futex.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Mailbox<T> {
    slot: Mutex<Slot<T>>,
    posted: Condvar,
}

#[derive(Debug)]
struct Slot<T> {
    value: Option<T>,
    /// Waits return at once: the reader is being stopped.
    closed: bool,
}

/// A wake-up for a thread that also wakes on its own schedule (the resolver).
pub type Wake = Arc<Mailbox<()>>;

/// Where a source wakes its reader thread when its data changes: empty until
/// the reader starts and registers its [`Wake`].
#[derive(Debug, Default)]
pub struct Notify(Mutex<Option<Wake>>);

impl Notify {
    pub fn set(&self, wake: Wake) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(wake);
    }

    /// Wake the reader, if one registered.
    pub fn post(&self) {
        if let Some(wake) = self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            wake.post(());
        }
    }
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Self {
            slot: Mutex::new(Slot {
                value: None,
                closed: false,
            }),
            posted: Condvar::new(),
        }
    }
}

impl<T> Mailbox<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// A mailbox shared by the posting and the reading threads.
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::new())
    }

    // A thread that panicked holding the lock left a value or none: either is
    // a valid state of the slot.
    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Put `value` in the box, replacing one not yet taken, and wake a reader.
    pub fn post(&self, value: T) {
        self.lock().value = Some(value);
        self.posted.notify_one();
    }

    /// From now on no wait waits: a reader that is asked to stop returns
    /// from its wait at once (and a value still in the box is still taken).
    pub fn close(&self) {
        self.lock().closed = true;
        self.posted.notify_all();
    }

    /// The value in the box, if any, without waiting.
    pub fn take(&self) -> Option<T> {
        self.lock().value.take()
    }

    /// The value posted before `deadline`, or `None` once it has passed or
    /// the box is closed.
    pub fn take_until(&self, deadline: Instant) -> Option<T> {
        let mut slot = self.lock();
        loop {
            if let Some(value) = slot.value.take() {
                return Some(value);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || slot.closed {
                return None;
            }
            slot = self
                .posted
                .wait_timeout(slot, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The value posted within `wait`, or `None`.
    pub fn take_timeout(&self, wait: Duration) -> Option<T> {
        self.take_until(Instant::now() + wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_replaces_the_value_not_yet_taken() {
        let m = Mailbox::new();
        assert_eq!(m.take(), None);
        m.post(1);
        m.post(2);
        assert_eq!(m.take(), Some(2));
        assert_eq!(m.take(), None);
    }

    #[test]
    fn a_waiting_reader_gets_a_value_posted_from_another_thread() {
        let m = Mailbox::shared();
        let poster = {
            let m = m.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                m.post("set");
            })
        };
        // Far longer than the post takes: returns as soon as it is posted.
        assert_eq!(m.take_timeout(Duration::from_secs(30)), Some("set"));
        poster.join().unwrap();
    }

    #[test]
    fn an_empty_box_times_out_after_the_wait_and_not_before() {
        let m: Mailbox<()> = Mailbox::new();
        let start = Instant::now();
        assert_eq!(m.take_timeout(Duration::from_millis(30)), None);
        assert!(start.elapsed() >= Duration::from_millis(30));
        // A deadline already past does not wait.
        assert_eq!(m.take_until(start), None);
    }

    #[test]
    fn closing_ends_a_wait_in_another_thread_and_every_wait_after() {
        let m: Arc<Mailbox<u8>> = Mailbox::shared();
        let closer = {
            let m = m.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                m.close();
            })
        };
        let start = Instant::now();
        assert_eq!(m.take_timeout(Duration::from_secs(30)), None);
        assert!(start.elapsed() < Duration::from_secs(10));
        closer.join().unwrap();
        assert_eq!(m.take_timeout(Duration::from_secs(30)), None);
        assert!(start.elapsed() < Duration::from_secs(10));
        m.post(3);
        assert_eq!(m.take_timeout(Duration::from_secs(30)), Some(3));
    }

    #[test]
    fn a_notify_reaches_the_reader_that_registered() {
        let notify = Notify::default();
        notify.post(); // no reader yet: nothing to wake, nothing kept
        let wake: Wake = Mailbox::shared();
        notify.set(wake.clone());
        assert_eq!(wake.take(), None);
        notify.post();
        assert_eq!(wake.take(), Some(()));
    }

    #[test]
    fn a_value_posted_before_the_wait_is_taken_at_once() {
        let m = Mailbox::new();
        m.post(7u8);
        assert_eq!(m.take_until(Instant::now()), Some(7));
    }
}
