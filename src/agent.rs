//! The scheduler thread: load, run, and reload when the kernel asks, until shutdown.

use std::mem::MaybeUninit;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use crossbeam_channel::Receiver;

use crate::metrics::MetricsStore;
use crate::sched::{Channels, RunExit, SchedConfig, Scheduler, StatusCell};
use crate::strategy::DesiredStrategies;

pub fn run_scheduler(
    config: &SchedConfig,
    shutdown: &AtomicBool,
    strategies: &Receiver<DesiredStrategies>,
    metrics: &MetricsStore,
    status: &StatusCell,
    mut desired: DesiredStrategies,
) -> Result<()> {
    let mut open_object = MaybeUninit::uninit();
    loop {
        let mut sched = Scheduler::init(config, &mut open_object)?;
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
                anyhow::bail!("the kernel unloaded the scheduler: {reason}");
            }
        }
    }
}

/// The scheduler thread, as the rest of the agent sees it: a signal when it
/// ends on its own, and a stop that waits for the detach.
pub struct SchedulerThread {
    thread: std::thread::JoinHandle<Result<()>>,
    stop: std::sync::Arc<AtomicBool>,
    /// Receives once when the thread ends (a kernel unload, an error).
    pub done: Receiver<()>,
}

impl SchedulerThread {
    /// Load and run the scheduler on its own thread until [`Self::stop`].
    pub fn spawn(
        config: SchedConfig,
        strategies: Receiver<DesiredStrategies>,
        metrics: std::sync::Arc<MetricsStore>,
        status: StatusCell,
        desired: DesiredStrategies,
    ) -> Result<Self> {
        use anyhow::Context;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (done_tx, done) = crossbeam_channel::bounded::<()>(1);
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || {
                let result = run_scheduler(&config, &flag, &strategies, &metrics, &status, desired);
                let _ = done_tx.send(());
                result
            })
            .context("starting the scheduler thread")?;
        Ok(Self { thread, stop, done })
    }

    /// Ask the scheduler to detach and wait for it.
    pub fn stop(self) -> Result<()> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the scheduler thread panicked")))
    }
}
