//! The dispatcher thread of `--dispatch user`: it reads the tasks BPF queues
//! for it, orders them with [`Policy`] and sends the decisions back.
//!
//! Every task this thread decides for waits until it answers, so it must never
//! wait on any of them. How each way it could is ruled out:
//! - Its own CPU time: BPF recognises its thread id (`usersched_pid`) and runs
//!   it on the in-kernel priority path; it never waits for a decision.
//! - Locks: its loop shares nothing with the HTTP, Kubernetes or sampler
//!   threads but atomics (stop flag, counters). It does not log in the loop
//!   (the logger takes a lock on stderr).
//! - Allocation (glibc's arena locks can be held by a preempted thread): the
//!   inbox is allocated once with room for more tasks than BPF can have in our
//!   hands; libbpf reads and writes the rings in their mmapped memory; the
//!   ordering sorts in place. Nothing in the loop allocates.
//! - Page faults (a fault can wait for I/O that a waiting task must do): the
//!   process's memory is locked with mlockall(MCL_CURRENT | MCL_FUTURE) before
//!   the scheduler is attached.
//! - Anything missed above (a bug, SIGSTOP, the test hook): BPF takes its tasks
//!   back after `--user-stall-ms` and dispatches directly, counted in
//!   nr_user_fallbacks, far sooner than the sched_ext watchdog would act; a
//!   single task held that long while the thread answers is taken back too
//!   (nr_user_aged).
//!
//! A record read from the ring is never dropped: libbpf counts a record as
//! consumed even when the callback refuses it, so a record the inbox cannot
//! hold is answered at once with a neutral decision (its own vtime and slice,
//! any CPU) instead.

use std::cell::{RefCell, RefMut};
use std::mem::size_of;
use std::os::fd::AsFd;
use std::ptr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::{
    libbpf_sys, AsRawLibbpf, MapHandle, RingBuffer, RingBufferBuilder, UserRingBuffer,
};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::bpf_intf::{dispatched_task, pilot_consts_MAX_USER_TASKS, queued_task};
use super::user_policy::{heartbeat, Policy};

/// How often an idle dispatcher tells BPF it is alive. Well under the
/// default --user-stall-ms, so an idle dispatcher is never taken for a
/// stalled one.
const HEARTBEAT: Duration = Duration::from_millis(100);
/// How long to wait before retrying when the decision ring is full (BPF
/// drains it whenever a CPU looks for work).
const RING_FULL_WAIT: Duration = Duration::from_micros(200);

/// Set by the test hook (SIGUSR1 with --dispatcher-test-hooks): the
/// dispatcher stops answering, as a hung one would.
static PAUSED: AtomicBool = AtomicBool::new(false);

/// Environment variable that picks a faulty dispatcher under the test hooks,
/// so a VM test can drive the paths a correct one never takes.
pub const TEST_MODE_ENV: &str = "SCX_PILOT_DISPATCHER_TEST";

/// What the test hooks make the dispatcher do wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestMode {
    None,
    /// Reads at most one task per round into the inbox but asks libbpf for
    /// more: every other record overflows.
    TinyInbox,
    /// Forgets every tenth task it reads while still answering the rest, as
    /// a buggy policy would: BPF must take them back by age.
    Forget,
}

static TEST_MODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

fn test_mode() -> TestMode {
    match TEST_MODE.load(Ordering::Relaxed) {
        1 => TestMode::TinyInbox,
        2 => TestMode::Forget,
        _ => TestMode::None,
    }
}

extern "C" fn toggle_pause(_: libc::c_int) {
    PAUSED.fetch_xor(true, Ordering::Relaxed);
}

/// Lets SIGUSR1 pause and resume the dispatcher, to test the BPF fallback.
pub fn install_test_hook() -> Result<()> {
    let handler = toggle_pause as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only flips an atomic, which is async-signal-safe.
    if unsafe { libc::signal(libc::SIGUSR1, handler) } == libc::SIG_ERR {
        bail!("installing the SIGUSR1 test hook failed");
    }
    let handler = force_exit as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: as above.
    if unsafe { libc::signal(libc::SIGUSR2, handler) } == libc::SIG_ERR {
        bail!("installing the SIGUSR2 test hook failed");
    }
    let mode = match std::env::var(TEST_MODE_ENV).as_deref() {
        Ok("tiny-inbox") => 1,
        Ok("forget") => 2,
        Ok("") | Err(_) => 0,
        Ok(other) => bail!("{TEST_MODE_ENV}={other}: expected tiny-inbox or forget"),
    };
    TEST_MODE.store(mode, Ordering::Relaxed);
    log::warn!(
        "test hooks on: SIGUSR1 pauses and resumes the dispatcher thread, \
         SIGUSR2 forces a scheduler error exit; dispatcher test mode {:?}",
        test_mode()
    );
    Ok(())
}

/// Set by SIGUSR2 under the test hooks; taken by the scheduler's run loop.
static FORCE_EXIT: AtomicBool = AtomicBool::new(false);

extern "C" fn force_exit(_: libc::c_int) {
    FORCE_EXIT.store(true, Ordering::Relaxed);
}

/// Whether the test hook asked for a forced exit since the last call.
pub fn take_forced_exit() -> bool {
    FORCE_EXIT.swap(false, Ordering::Relaxed)
}

/// What the dispatcher did, for /health.
#[derive(Debug, Default)]
pub struct DispatcherStats {
    /// Decisions sent to BPF.
    pub decisions: AtomicU64,
    /// True while the test hook holds the thread.
    pub paused: AtomicBool,
    /// Records the inbox could not hold, answered at once.
    pub overflows: AtomicU64,
}

/// Tasks read from the queued ring, waiting to be decided.
struct Inbox {
    tasks: Vec<queued_task>,
    /// Room the consume call may fill; records beyond it overflow.
    room: usize,
    /// Records answered from the callback since the last round.
    overflows: u64,
}

/// Sends one decision; false when the ring is full.
///
/// The one place this file goes around libbpf-rs: its
/// `UserRingBuffer::reserve` builds an error value on the heap when the ring
/// is full, a path this thread takes under load, and the dispatcher must not
/// allocate (see the module doc). libbpf's own reserve only returns NULL.
fn send_decision(ring: &UserRingBuffer, d: &dispatched_task) -> bool {
    let ring = ring.as_libbpf_object().as_ptr();
    // SAFETY: the ring is valid while `ring` is borrowed; the reserved sample
    // has room for one record and is submitted before anything else touches
    // the ring (only this thread produces).
    unsafe {
        let sample =
            libbpf_sys::user_ring_buffer__reserve(ring, size_of::<dispatched_task>() as u32);
        if sample.is_null() {
            return false;
        }
        ptr::write_unaligned(sample.cast::<dispatched_task>(), *d);
        libbpf_sys::user_ring_buffer__submit(ring, sample);
    }
    true
}

/// The callback for one queued_task record.
fn on_queued(inbox: &mut Inbox, decisions: &UserRingBuffer, data: &[u8]) -> i32 {
    if data.len() < size_of::<queued_task>() {
        // Not ours to read; BPF takes the task back by age.
        return 0;
    }
    // SAFETY: the record holds at least one queued_task (checked above), any
    // bit pattern is a valid one, and the read does not need alignment.
    let t = unsafe { ptr::read_unaligned(data.as_ptr().cast::<queued_task>()) };
    if inbox.tasks.len() < inbox.room {
        inbox.tasks.push(t);
        return 0;
    }
    // Full: answer now. If the decision ring is full too, BPF takes the task
    // back once it has waited --user-stall-ms.
    let d = dispatched_task {
        seq: t.seq,
        vtime: t.vtime,
        slice_ns: t.slice_ns,
        nr_pending: inbox.tasks.len() as u64,
        pid: t.pid,
        cpu: -1,
    };
    if send_decision(decisions, &d) {
        inbox.overflows += 1;
    }
    0
}

/// Both rings, owned by the dispatcher thread.
struct Rings {
    // Fields drop in order: the rings before the maps they were opened on.
    queued: RingBuffer<'static>,
    decisions: Rc<UserRingBuffer>,
    /// Shared with the queued ring's callback, which libbpf-rs keeps for the
    /// ring's lifetime; borrowed by this thread only outside consume calls.
    inbox: Rc<RefCell<Inbox>>,
    queued_map: MapHandle,
    _decisions_map: MapHandle,
}

impl Rings {
    fn new(queued_map: MapHandle, decisions_map: MapHandle) -> Result<Self> {
        let inbox = Rc::new(RefCell::new(Inbox {
            tasks: Vec::with_capacity(pilot_consts_MAX_USER_TASKS as usize),
            room: 0,
            overflows: 0,
        }));
        let decisions =
            Rc::new(UserRingBuffer::new(&decisions_map).context("opening the decision ring")?);
        let mut builder = RingBufferBuilder::new();
        {
            let (inbox, decisions) = (inbox.clone(), decisions.clone());
            builder
                .add(&queued_map, move |data: &[u8]| {
                    on_queued(&mut inbox.borrow_mut(), &decisions, data)
                })
                .context("opening the queued-task ring")?;
        }
        let queued = builder.build().context("opening the queued-task ring")?;
        Ok(Self {
            queued,
            decisions,
            inbox,
            queued_map,
            _decisions_map: decisions_map,
        })
    }

    fn inbox(&self) -> RefMut<'_, Vec<queued_task>> {
        RefMut::map(self.inbox.borrow_mut(), |i| &mut i.tasks)
    }

    /// Reads queued tasks into the inbox, no more than it has room for;
    /// returns how many records overflowed and were answered at once.
    fn consume(&mut self) -> u64 {
        let tiny = test_mode() == TestMode::TinyInbox;
        let want = {
            let mut inbox = self.inbox.borrow_mut();
            let free = inbox.tasks.capacity() - inbox.tasks.len();
            let (room, want) = if tiny {
                (inbox.tasks.len() + free.min(1), free.min(8))
            } else {
                (inbox.tasks.capacity(), free)
            };
            inbox.room = room;
            inbox.overflows = 0;
            want
        };
        if want == 0 {
            return 0;
        }
        // The borrow above has ended: the callback borrows the inbox now.
        self.queued.consume_raw_n(want);
        self.inbox.borrow().overflows
    }

    /// Waits until BPF queues a task or `timeout` passes. Polls the map
    /// itself rather than consuming (`RingBuffer::poll` would read every
    /// record, past the inbox's room).
    fn wait(&self, timeout: Duration) {
        let mut fds = [PollFd::new(self.queued_map.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        // An error (EINTR from a test-hook signal) only ends the wait early.
        let _ = poll(&mut fds, timeout);
    }

    /// Sends one decision; false when the ring is full.
    fn send(&self, d: &dispatched_task) -> bool {
        send_decision(&self.decisions, d)
    }
}

/// The running dispatcher thread.
pub struct Dispatcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    tid: u32,
    stats: Arc<DispatcherStats>,
}

impl Dispatcher {
    /// Locks the process's memory and starts the thread on the two ring maps.
    pub fn start(queued: MapHandle, decisions: MapHandle, policy: Policy) -> Result<Self> {
        // SAFETY: no preconditions; failure is reported, not fatal to memory.
        if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
            return Err(std::io::Error::last_os_error())
                .context("locking the agent's memory for the dispatcher (mlockall)");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(DispatcherStats::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("dispatcher".into())
                .spawn(move || {
                    let rings = match Rings::new(queued, decisions) {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    // SAFETY: gettid has no preconditions.
                    let tid = unsafe { libc::gettid() } as u32;
                    let _ = tx.send(Ok(tid));
                    run(rings, policy, &stop, &stats);
                })
                .context("starting the dispatcher thread")?
        };
        let tid = rx
            .recv()
            .map_err(|_| anyhow!("the dispatcher thread ended during start"))??;
        log::info!("user dispatch: dispatcher thread {tid} started, memory locked");
        Ok(Self {
            stop,
            thread: Some(thread),
            tid,
            stats,
        })
    }

    /// The thread id BPF must recognise as the dispatcher.
    pub fn tid(&self) -> u32 {
        self.tid
    }

    pub fn stats(&self) -> &DispatcherStats {
        &self.stats
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the dispatcher thread panicked");
            }
        }
        // SAFETY: no preconditions.
        unsafe { libc::munlockall() };
    }
}

/// The dispatcher loop. No allocation, no lock, no logging: see the module doc.
fn run(mut rings: Rings, policy: Policy, stop: &AtomicBool, stats: &DispatcherStats) {
    let mut last_sent = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if PAUSED.load(Ordering::Relaxed) {
            stats.paused.store(true, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        stats.paused.store(false, Ordering::Relaxed);

        let overflows = rings.consume();
        if overflows > 0 {
            stats.overflows.fetch_add(overflows, Ordering::Relaxed);
            stats.decisions.fetch_add(overflows, Ordering::Relaxed);
        }
        if test_mode() == TestMode::Forget {
            forget_some(&mut rings.inbox());
        }
        if rings.inbox().is_empty() {
            if last_sent.elapsed() >= HEARTBEAT && rings.send(&heartbeat(0)) {
                last_sent = Instant::now();
            }
            rings.wait(HEARTBEAT);
            continue;
        }

        let sent = decide_round(&mut rings, &policy);
        if sent > 0 {
            stats.decisions.fetch_add(sent as u64, Ordering::Relaxed);
            last_sent = Instant::now();
        }
        if !rings.inbox().is_empty() {
            std::thread::sleep(RING_FULL_WAIT);
        }
    }
}

/// The Forget test mode: drops every tenth task read, undecided.
fn forget_some(tasks: &mut Vec<queued_task>) {
    tasks.retain(|t| t.seq % 10 != 0);
}

/// Orders the inbox and sends as many decisions as the ring takes; the rest
/// stay in the inbox (nr_scheduled) for the next round.
fn decide_round(rings: &mut Rings, policy: &Policy) -> usize {
    let mut tasks = std::mem::take(&mut *rings.inbox());
    policy.order(&mut tasks);
    let n = tasks.len();
    let mut sent = 0;
    for (i, t) in tasks.iter().enumerate() {
        let d = policy.decide(t, n - i, n - i - 1);
        if !rings.send(&d) {
            break;
        }
        sent += 1;
    }
    tasks.drain(..sent);
    *rings.inbox() = tasks;
    sent
}

#[cfg(test)]
mod tests {
    //! The rings against the real kernel maps, loaded maps-only (root): no BPF
    //! program runs, so nothing is queued and nothing drains the decisions.

    use std::mem::MaybeUninit;

    use super::*;
    use crate::sched::bpf_intf::pilot_consts_USER_RING_BYTES;
    use crate::sched::maps_only;

    fn with_rings(f: impl FnOnce(Rings)) {
        // SAFETY: no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "loads BPF maps: run as root");
        let mut open_object = MaybeUninit::uninit();
        let skel = maps_only::load(&mut open_object).expect("maps-only load");
        let queued = MapHandle::try_from(&skel.maps.queued).unwrap();
        let decisions = MapHandle::try_from(&skel.maps.dispatched).unwrap();
        f(Rings::new(queued, decisions).expect("opening the rings"));
    }

    #[test]
    fn an_empty_queue_reads_nothing_and_the_wait_times_out() {
        with_rings(|mut rings| {
            assert_eq!(rings.consume(), 0);
            assert!(rings.inbox().is_empty());
            let start = Instant::now();
            rings.wait(Duration::from_millis(50));
            assert!(start.elapsed() >= Duration::from_millis(40));
        });
    }

    #[test]
    fn decisions_fill_the_ring_then_send_says_full() {
        with_rings(|rings| {
            let record = (size_of::<dispatched_task>() + 8).next_multiple_of(8);
            let capacity = pilot_consts_USER_RING_BYTES as usize / record;
            let sent = (0..capacity + 10)
                .take_while(|_| rings.send(&heartbeat(0)))
                .count();
            assert_eq!(sent, capacity);
            assert!(!rings.send(&heartbeat(0)));
        });
    }

    #[test]
    fn swapped_maps_are_refused() {
        // SAFETY: no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "loads BPF maps: run as root");
        let mut open_object = MaybeUninit::uninit();
        let skel = maps_only::load(&mut open_object).expect("maps-only load");
        let queued = MapHandle::try_from(&skel.maps.queued).unwrap();
        let decisions = MapHandle::try_from(&skel.maps.dispatched).unwrap();
        let err = Rings::new(decisions, queued)
            .err()
            .expect("wrong map types");
        assert!(format!("{err:#}").contains("decision ring"), "{err:#}");
    }
}
