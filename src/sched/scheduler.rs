//! Loading, attaching, running and detaching scx_pilot's sched_ext scheduler.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use libbpf_rs::{Link, MapHandle, OpenObject};
use scx_utils::{scx_ops_attach, scx_ops_load, scx_ops_open, uei_exited, uei_read};

use super::bpf_skel::{BpfSkel, BpfSkelBuilder};
use super::strategy_map::StrategyMapWriter;
use super::user_dispatch::Dispatcher;
use super::user_policy::Policy;
use super::{bss, preflight, DispatcherStatus, StatusCell};
use crate::mailbox::Mailbox;
use crate::metrics::MetricsStore;
use crate::strategy::DesiredStrategies;

/// Scheduler settings fixed at load time.
#[derive(Debug, Clone)]
pub struct SchedConfig {
    pub slice_us: u64,
    pub starvation_ms: u64,
    pub sample_interval: Duration,
    /// --dispatch user: normal tasks are decided by the dispatcher thread.
    pub user_dispatch: bool,
    pub user_stall_ms: u64,
    pub user_queue_depth: u64,
    /// Bytes of the kernel's debug dump kept at an error exit (0: the
    /// kernel's default).
    pub exit_dump_len: u32,
    /// --dispatcher-test-hooks: BPF honours the forced-exit flag.
    pub test_hooks: bool,
}

/// Why [`Scheduler::run`] returned.
#[derive(Debug)]
pub enum RunExit {
    /// SIGINT/SIGTERM: the agent is stopping.
    Shutdown,
    /// The kernel unloaded the scheduler; `restart` says whether it asked to be reloaded.
    Exited { reason: String, restart: bool },
}

/// Everything the run loop talks to outside the scheduler.
pub struct Channels<'a> {
    pub shutdown: &'a AtomicBool,
    pub strategies: &'a Mailbox<DesiredStrategies>,
    pub metrics: &'a MetricsStore,
    pub status: &'a StatusCell,
    /// The last desired strategy set, kept by the caller across restarts.
    pub desired: &'a mut DesiredStrategies,
}

/// How often the run loop looks for an exit the kernel decided (an ejection)
/// when no sample is due: the node runs on the kernel's scheduler from that
/// moment, so only the report and the re-attach wait for it. A stop closes the
/// strategy mailbox and is seen at once; each look is a wake-up of the agent.
const EXIT_POLL: Duration = Duration::from_millis(500);

pub struct Scheduler<'obj> {
    skel: BpfSkel<'obj>,
    struct_ops: Option<Link>,
    /// Declared after struct_ops on purpose: nothing may wait on the
    /// dispatcher once it stops, so Drop detaches the scheduler first.
    dispatcher: Option<Dispatcher>,
    writer: StrategyMapWriter,
    /// Entries the last write of the strategy set could not make: tried
    /// again at every round of the run loop until none are left.
    unwritten: usize,
    /// The highest generation given so far: one is never given twice, since a
    /// task remembers its lookup for one generation.
    strategies_gen_last: u64,
    config: SchedConfig,
}

fn online_cpus() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    n.max(1) as u64
}

impl<'obj> Scheduler<'obj> {
    pub fn init(
        config: &SchedConfig,
        open_object: &'obj mut MaybeUninit<OpenObject>,
    ) -> Result<Self> {
        preflight::check()?;

        let builder = BpfSkelBuilder::default();
        let mut skel = scx_ops_open!(
            builder,
            open_object,
            pilot_ops,
            None::<libbpf_rs::libbpf_sys::bpf_object_open_opts>
        )
        .context("opening the BPF scheduler")?;
        skel.struct_ops.pilot_ops_mut().exit_dump_len = config.exit_dump_len;

        let rodata = skel
            .maps
            .rodata_data
            .as_mut()
            .context("BPF object has no .rodata")?;
        rodata.slice_ns = config.slice_us * 1000;
        rodata.starvation_ns = config.starvation_ms * 1_000_000;
        rodata.user_dispatch = config.user_dispatch;
        rodata.user_stall_ns = config.user_stall_ms * 1_000_000;
        rodata.user_queue_depth = config.user_queue_depth;
        rodata.test_hooks = config.test_hooks;
        let bss = skel
            .maps
            .bss_data
            .as_mut()
            .context("BPF object has no .bss")?;
        bss.usersched_pid = std::process::id();
        bss.nr_online_cpus = online_cpus();

        let mut skel = scx_ops_load!(skel, pilot_ops, uei).context("loading the BPF scheduler")?;
        // The dispatcher must run, and BPF must know its thread id, before the
        // first task is queued for it.
        let dispatcher = if config.user_dispatch {
            let handle = |map| MapHandle::try_from(map).context("duplicating a ring map fd");
            let dispatcher = Dispatcher::start(
                handle(&skel.maps.queued)?,
                handle(&skel.maps.dispatched)?,
                Policy::new(online_cpus(), config.slice_us * 1000),
            )?;
            skel.maps
                .bss_data
                .as_mut()
                .context("BPF object has no .bss")?
                .usersched_pid = dispatcher.tid();
            Some(dispatcher)
        } else {
            None
        };
        let struct_ops = scx_ops_attach!(skel, pilot_ops).context("attaching the BPF scheduler")?;

        Ok(Self {
            skel,
            struct_ops: Some(struct_ops),
            dispatcher,
            writer: StrategyMapWriter::new(),
            unwritten: 0,
            strategies_gen_last: 0,
            config: config.clone(),
        })
    }

    /// Write `desired` to the BPF map. What the kernel refuses (a full map,
    /// or room not yet free: a deleted entry is freed only after an RCU grace
    /// period) is written at a later round of the run loop; a failure is
    /// logged when it starts or its size changes, not at every retry.
    fn apply(&mut self, desired: &DesiredStrategies, status: &StatusCell) {
        // BPF looks a task up only while the generation says the map may
        // hold an entry: raised before any is written.
        if !desired.is_empty() && self.strategies_gen() == 0 {
            self.publish_strategies_gen(true);
        }
        let result = self.writer.apply(&self.skel.maps.strategies, desired);
        // Whatever keys the pass added or removed, BPF looks up again, after
        // the writes: a task that missed an entry before it was written must
        // not keep remembering that miss. An update keeps every key, so what
        // a task remembers stays true.
        let keys_changed = match &result {
            Ok(stats) => stats.keys_changed(),
            Err(_) => true,
        };
        let unwritten = match result {
            Ok(stats) => {
                if stats != Default::default() {
                    log::debug!("strategy map: {stats:?}");
                }
                stats.failed
            }
            Err(e) => {
                if self.unwritten == 0 {
                    log::warn!("strategy map: {e:#}; trying again");
                }
                desired.len().max(1)
            }
        };
        if unwritten > 0 && unwritten != self.unwritten {
            log::warn!("strategy map: {unwritten} entries could not be written yet; trying again");
        } else if unwritten == 0 && self.unwritten > 0 {
            log::info!("strategy map: every entry is written now");
        }
        self.unwritten = unwritten;
        let n = self.writer.applied().len();
        if n == 0 && unwritten == 0 {
            self.publish_strategies_gen(false);
        } else if keys_changed {
            self.publish_strategies_gen(true);
        }
        status.update(|s| s.strategy_pids = n);
    }

    /// Tell BPF the strategy map may hold entries (a new generation) or is
    /// empty (0).
    fn publish_strategies_gen(&mut self, may_hold: bool) {
        let gen = if may_hold {
            self.strategies_gen_last += 1;
            self.strategies_gen_last
        } else {
            0
        };
        if let Some(bss) = self.skel.maps.bss_data.as_deref_mut() {
            // SAFETY: a naturally aligned u64 in the mmapped .bss, which BPF
            // only reads: a volatile store is never torn.
            unsafe { std::ptr::write_volatile(&mut bss.strategies_gen, gen) };
        }
    }

    /// The generation BPF reads now (0: the map is empty).
    fn strategies_gen(&self) -> u64 {
        self.skel.maps.bss_data.as_deref().map_or(0, |bss| {
            // SAFETY: a naturally aligned u64 in the mmapped .bss that only
            // this thread writes.
            unsafe { std::ptr::read_volatile(&bss.strategies_gen) }
        })
    }

    /// Write the set kept across restarts (`ch.desired`) again.
    fn apply_kept(&mut self, ch: &mut Channels) {
        let desired = std::mem::take(ch.desired);
        self.apply(&desired, ch.status);
        *ch.desired = desired;
    }

    fn sample(&self, ch: &Channels) {
        let Some(bss) = self.skel.maps.bss_data.as_deref() else {
            return;
        };
        let sample = bss::sample(bss);
        log::trace!("sample: {:?}", sample.bss);
        ch.metrics.push(sample);
        let dispatcher = self.dispatcher.as_ref().map(|d| {
            let stats = d.stats();
            let p = &sample.policy;
            DispatcherStatus {
                tid: d.tid(),
                decisions: stats.decisions.load(Ordering::Relaxed),
                fallbacks: p.nr_user_fallbacks,
                recovered: p.nr_user_recovered,
                fallback_active: bss.user_fallback_active != 0,
                outstanding: p.nr_user_outstanding,
                paused: stats.paused.load(Ordering::Relaxed),
                overflows: stats.overflows.load(Ordering::Relaxed),
                aged: p.nr_user_aged,
            }
        });
        if let Some(d) = &dispatcher {
            let was_active = ch
                .status
                .get()
                .dispatcher
                .as_ref()
                .is_some_and(|d| d.fallback_active);
            if d.fallback_active && !was_active {
                log::warn!(
                    "the dispatcher thread holds tasks without answering: BPF dispatches directly (fallback {}, {} tasks taken back so far)",
                    d.fallbacks,
                    d.recovered
                );
            } else if was_active && !d.fallback_active {
                log::info!("the dispatcher thread answers again: user dispatch resumed");
            }
        }
        ch.status.update(|s| {
            s.last_sample_at = Some(sample.timestamp);
            s.dispatcher = dispatcher.clone();
        });
    }

    /// One line describing how the scheduler left the kernel, from its exit info.
    fn exit_reason(&self) -> String {
        let Some(data) = self.skel.maps.data_data.as_deref() else {
            return "unknown".into();
        };
        let (reason, msg) = (c_chars(&data.uei.reason), c_chars(&data.uei.msg));
        match (reason.is_empty(), msg.is_empty()) {
            (true, _) => "unknown".into(),
            (false, true) => reason,
            (false, false) => format!("{reason} ({msg})"),
        }
    }

    fn exited(&self) -> bool {
        uei_exited!(&self.skel, uei)
    }

    /// Serve until shutdown or until the kernel unloads the scheduler: sample
    /// the counters every interval and apply strategy sets as they arrive.
    pub fn run(&mut self, ch: &mut Channels) -> Result<RunExit> {
        let ops_name = preflight::running_ops_name();
        ch.status.update(|s| {
            s.attached = true;
            s.ops_name = ops_name.clone();
            s.attached_at = Some(Utc::now());
        });
        log::info!(
            "scheduler attached as {} (slice {} us)",
            ops_name.as_deref().unwrap_or("scx_pilot"),
            self.config.slice_us
        );
        self.apply_kept(ch);
        self.sample(ch);

        let tick = self.config.sample_interval.min(EXIT_POLL);
        let mut next_sample = Instant::now() + self.config.sample_interval;
        while !ch.shutdown.load(Ordering::Relaxed) && !self.exited() {
            let wait = next_sample
                .saturating_duration_since(Instant::now())
                .min(tick);
            match ch.strategies.take_timeout(wait) {
                Some(desired) => {
                    self.apply(&desired, ch.status);
                    *ch.desired = desired;
                }
                // A round without a new set: what the kernel refused before.
                None if self.unwritten > 0 => self.apply_kept(ch),
                None if wait.is_zero() => std::thread::sleep(Duration::from_millis(1)),
                None => {}
            }
            if super::user_dispatch::take_forced_exit() {
                if let Some(bss) = self.skel.maps.bss_data.as_deref_mut() {
                    log::warn!("test hook: forcing a scheduler error exit");
                    bss.test_force_error = 1;
                }
            }
            if Instant::now() >= next_sample {
                self.sample(ch);
                next_sample += self.config.sample_interval;
                if next_sample < Instant::now() {
                    next_sample = Instant::now() + self.config.sample_interval;
                }
            }
        }

        if !self.exited() {
            return Ok(RunExit::Shutdown);
        }
        self.sample(ch);
        let uei = uei_read!(&self.skel, uei);
        let restart = uei.should_restart();
        let reason = self.exit_reason();
        let dump = exit_dump();
        if let Some(dump) = &dump {
            // The kernel's account of what the scheduler was doing: the
            // first thing to read when it was ejected.
            log::warn!("scheduler exit dump ({} bytes):", dump.len());
            for line in dump.lines() {
                log::warn!("  {line}");
            }
        }
        ch.status.update(|s| {
            s.attached = false;
            s.last_exit = Some(reason.clone());
            s.last_exit_dump = dump.clone();
        });
        Ok(RunExit::Exited { reason, restart })
    }
}

/// The kernel's debug dump of the last exit, if it wrote one: the dump area
/// libbpf mapped for the scheduler (sized at load by scx_utils).
fn exit_dump() -> Option<String> {
    let ptr = scx_utils::UEI_DUMP_PTR_MUTEX.lock().ok()?.ptr;
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the pointer is the mmapped dump map of the loaded skeleton,
    // NUL-terminated by the kernel (zero-filled when no dump was written).
    let dump = unsafe { std::ffi::CStr::from_ptr(ptr) };
    let dump = dump.to_string_lossy().trim_end().to_string();
    (!dump.is_empty()).then_some(dump)
}

/// A NUL-terminated C char array from the BPF side as a String.
fn c_chars(chars: &[std::os::raw::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Drop for Scheduler<'_> {
    fn drop(&mut self) {
        // Dropping the struct_ops link detaches the scheduler; the kernel then
        // moves every task back to its default scheduler.
        if let Some(link) = self.struct_ops.take() {
            drop(link);
            log::info!("scheduler detached");
        }
        drop(self.dispatcher.take());
    }
}
