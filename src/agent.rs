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
