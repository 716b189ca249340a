//! The scheduler thread: load, run, and reload when the kernel asks, until shutdown.

use std::mem::MaybeUninit;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;
use crossbeam_channel::Receiver;

use crate::mailbox::Mailbox;
use crate::metrics::MetricsStore;
use crate::sched::{Channels, RunExit, SchedConfig, Scheduler, StatusCell};
use crate::strategy::DesiredStrategies;

/// Longest wait between attempts to attach again after an ejection.
const MAX_REATTACH_BACKOFF: Duration = Duration::from_secs(60);

/// Load and run the scheduler until shutdown. When the kernel asks for a
/// restart, it is loaded again at once. When the kernel ejects it without
/// asking (an error, a stall the watchdog caught, SysRq-S), the agent stays
/// up: the node runs on the kernel's default scheduler meanwhile, `/health`
/// and the `scheduler_detached` alert say so, and attaching is retried after
/// 1 s, then twice as long each time up to a minute. Only a failure to attach
/// the very first time ends the agent (the kernel or the flags cannot work).
pub fn run_scheduler(
    config: &SchedConfig,
    shutdown: &AtomicBool,
    strategies: &Mailbox<DesiredStrategies>,
    metrics: &MetricsStore,
    status: &StatusCell,
    mut desired: DesiredStrategies,
) -> Result<()> {
    let mut open_object = MaybeUninit::uninit();
    let mut attached_once = false;
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut sched = match Scheduler::init(config, &mut open_object) {
            Ok(s) => s,
            Err(e) if attached_once => {
                log::error!("attaching the scheduler again failed: {e:#}");
                if !wait(shutdown, backoff) {
                    return Ok(());
                }
                backoff = (backoff * 2).min(MAX_REATTACH_BACKOFF);
                continue;
            }
            Err(e) => return Err(e),
        };
        attached_once = true;
        let exit = sched.run(&mut Channels {
            shutdown,
            strategies,
            metrics,
            status,
            desired: &mut desired,
        })?;
        drop(sched);
        match exit {
            RunExit::Shutdown => return Ok(()),
            RunExit::Exited {
                reason,
                restart: true,
            } => {
                log::warn!("scheduler exited ({reason}); the kernel asked for a restart");
                status.update(|s| s.restarts += 1);
            }
            RunExit::Exited {
                reason,
                restart: false,
            } => {
                log::error!(
                    "the kernel unloaded the scheduler: {reason}; the node runs on the default \
                     scheduler; attaching again in {} s",
                    backoff.as_secs()
                );
                status.update(|s| s.reattaches += 1);
                if !wait(shutdown, backoff) {
                    return Ok(());
                }
                backoff = (backoff * 2).min(MAX_REATTACH_BACKOFF);
            }
        }
    }
}

/// Sleep `d` in short steps; false when shutdown was asked meanwhile.
fn wait(shutdown: &AtomicBool, d: Duration) -> bool {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        if shutdown.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !shutdown.load(std::sync::atomic::Ordering::Relaxed)
}

/// The scheduler thread, as the rest of the agent sees it: a signal when it
/// ends on its own, and a stop that waits for the detach.
pub struct SchedulerThread {
    thread: std::thread::JoinHandle<Result<()>>,
    stop: std::sync::Arc<AtomicBool>,
    /// Closed by [`Self::stop`], so the run loop's wait ends at once.
    strategies: std::sync::Arc<Mailbox<DesiredStrategies>>,
    /// Receives once when the thread ends (a kernel unload, an error).
    pub done: Receiver<()>,
}

impl SchedulerThread {
    /// Load and run the scheduler on its own thread until [`Self::stop`].
    pub fn spawn(
        config: SchedConfig,
        strategies: std::sync::Arc<Mailbox<DesiredStrategies>>,
        metrics: std::sync::Arc<MetricsStore>,
        status: StatusCell,
        desired: DesiredStrategies,
    ) -> Result<Self> {
        use anyhow::Context;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (done_tx, done) = crossbeam_channel::bounded::<()>(1);
        let (flag, mailbox) = (stop.clone(), strategies.clone());
        let thread = std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || {
                let result = run_scheduler(&config, &flag, &mailbox, &metrics, &status, desired);
                let _ = done_tx.send(());
                result
            })
            .context("starting the scheduler thread")?;
        Ok(Self {
            thread,
            stop,
            strategies,
            done,
        })
    }

    /// Ask the scheduler to detach and wait for it.
    pub fn stop(self) -> Result<()> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.strategies.close();
        self.thread
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the scheduler thread panicked")))
    }
}
