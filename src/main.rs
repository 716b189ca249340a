use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use scx_pilot::cli::Opts;
use scx_pilot::metrics::MetricsStore;
use scx_pilot::sched::{Mode, StatusCell};
use scx_pilot::{agent, logging};

fn run(opts: Opts) -> anyhow::Result<()> {
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = shutdown.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("installing the SIGINT/SIGTERM handler")?;

    let metrics = MetricsStore::new(opts.history_capacity());
    let status = StatusCell::new(Mode::Kernel);
    let (_strategies_tx, strategies_rx) = crossbeam_channel::bounded(16);

    agent::run_scheduler(
        &opts.sched_config(),
        &shutdown,
        &strategies_rx,
        &metrics,
        &status,
        opts.static_strategies(),
    )
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    logging::init(opts.verbose);
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scx_pilot: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
