use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::web;
use anyhow::{anyhow, Context};
use clap::Parser;
use crossbeam_channel::select;

use scx_pilot::api::{self, ApiState};
use scx_pilot::cli::{Dispatch, Opts};
use scx_pilot::metrics::MetricsStore;
use scx_pilot::sched::{Mode, StatusCell};
use scx_pilot::state::AgentState;
use scx_pilot::strategy::resolver;
use scx_pilot::{agent, alerts, logging, notify};

/// Start the HTTP API and (unless --api-only) the scheduler thread; on
/// SIGINT/SIGTERM stop the HTTP server first (no new connections, in-flight
/// requests finish), then let the scheduler detach.
fn run(opts: Opts) -> anyhow::Result<()> {
    // The one owner of SIGINT/SIGTERM (actix's own handling is disabled). A
    // second signal while stopping exits at once; the kernel then detaches the
    // scheduler as the process's BPF links close.
    let (signal_tx, signal_rx) = crossbeam_channel::bounded::<()>(1);
    let signalled = Arc::new(AtomicBool::new(false));
    let flag = signalled.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("scx_pilot: second signal while stopping, exiting now");
            std::process::exit(1);
        }
        let _ = signal_tx.try_send(());
    })
    .context("installing the SIGINT/SIGTERM handler")?;

    let mode = if opts.api_only {
        Mode::ApiOnly
    } else if opts.dispatch == Dispatch::User {
        Mode::User
    } else {
        Mode::Kernel
    };
    if opts.dispatcher_test_hooks {
        scx_pilot::sched::user_dispatch::install_test_hook()?;
    }
    let metrics = MetricsStore::new(opts.history_capacity());
    let status = StatusCell::new(mode);
    let (strategies_tx, strategies_rx) = crossbeam_channel::bounded(16);

    // A bad alerts file or webhook URL stops the agent before anything runs.
    let alerts_config = alerts::config::load(opts.alerts_file.as_deref())?;
    let alerts_handle = alerts::AlertsHandle::new(&alerts_config);
    let webhook = opts
        .webhook_config()
        .map(|c| alerts::Webhook::spawn(c, alerts_handle.webhook.clone()))
        .transpose()?;

    let startup = resolver::prepare(&opts);
    let mut state = AgentState::new(metrics.clone(), status.clone())
        .with_proc_root(&opts.proc_root)
        .with_pods_cache(opts.pods_cache())
        .with_pod_meta(startup.pod_meta.clone())
        .with_sampling(opts.sample_interval(), opts.history_seconds)
        .with_alerts(alerts_handle);
    if let Some(store) = &startup.store {
        state = state.with_state_store(store.clone());
    }
    let mut state = state.with_strategies(startup.initial.clone());
    if !opts.api_only {
        state = state.with_scheduler_channel(strategies_tx, strategies_rx.clone());
    }
    let desired = state.desired();

    let mut api_config = opts.api_config();
    if let (Some(cert), Some(key)) = (&opts.tls_cert, &opts.tls_key) {
        api_config.tls = Some(Arc::new(scx_pilot::tls::server_config(cert, key)?));
    }
    let scheme = if api_config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    api_config.writes = Arc::new(api::auth::WriteGuard::new(opts.write_policy()?));

    // Bind before loading the scheduler: a port in use fails fast.
    let state = Arc::new(state);
    let server = api::start(web::Data::new(ApiState::new(state.clone())), api_config)?;
    let stats = scx_pilot::pod_figures::Sampler::spawn(state.clone(), opts.stats_interval())
        .context("starting the pod stats thread")?;
    let alerts = alerts::Running::start(
        state.clone(),
        alerts_config,
        opts.sample_interval(),
        webhook,
    )?;
    let resolver = resolver::Resolver::spawn(
        state,
        opts.rescan_interval(),
        startup.wake,
        startup.pods_file,
    )
    .context("starting the resolver thread")?;
    for addr in server.addrs() {
        log::info!("HTTP API listening on {scheme}://{addr}");
    }

    // For READY=1 to systemd once the scheduler is attached.
    let attached = status.clone();
    let api_addrs: Vec<String> = server.addrs().iter().map(|a| a.to_string()).collect();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
    let sched_stop = Arc::new(AtomicBool::new(false));
    let scheduler = if opts.api_only {
        log::info!("api-only mode: no scheduler is loaded");
        None
    } else {
        let config = opts.sched_config();
        let stop = sched_stop.clone();
        let spawned = std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || {
                let result = agent::run_scheduler(
                    &config,
                    &stop,
                    &strategies_rx,
                    &metrics,
                    &status,
                    desired,
                );
                let _ = done_tx.send(());
                result
            });
        match spawned {
            Ok(thread) => Some(thread),
            Err(e) => {
                let _ = server.stop();
                return Err(e).context("starting the scheduler thread");
            }
        }
    };
    let never = crossbeam_channel::never();
    let done_rx = if scheduler.is_some() {
        &done_rx
    } else {
        &never
    };

    // READY=1 (Type=notify) once the listener is bound and, unless api-only,
    // the scheduler is attached: a unit ordered after this one starts with
    // both in place.
    let mut ready = false;
    let poll = crossbeam_channel::tick(std::time::Duration::from_millis(20));
    let no_poll = crossbeam_channel::never();
    loop {
        if !ready && (opts.api_only || attached.get().attached) {
            ready = true;
            let what = if opts.api_only {
                "api-only (no scheduler)"
            } else {
                "scheduler attached"
            };
            notify::ready(&format!("{what}; API on {}", api_addrs.join(", ")));
        }
        let poll = if ready { &no_poll } else { &poll };
        select! {
            recv(signal_rx) -> _ => {
                log::info!("stopping: HTTP server first, then the scheduler");
                break;
            }
            recv(done_rx) -> _ => {
                log::warn!("the scheduler stopped; stopping the HTTP server");
                break;
            }
            recv(poll) -> _ => {}
        }
    }
    notify::stopping();

    let api_result = server.stop();
    resolver.stop();
    alerts.stop();
    if let Some(stats) = stats {
        stats.stop();
    }
    if let Some(kube) = startup.kube {
        kube.stop();
    }
    sched_stop.store(true, Ordering::Relaxed);
    let sched_result = match scheduler {
        Some(thread) => thread
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the scheduler thread panicked"))),
        None => Ok(()),
    };
    sched_result?;
    api_result?;
    log::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    // `scx_pilot top ...`: the terminal monitor, a client of a running agent.
    if std::env::args_os().nth(1).is_some_and(|a| a == "top") {
        return match scx_pilot::top::main(std::env::args_os().skip(1)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("scx_pilot top: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // `scx_pilot status`, `scx_pilot strategies get|set -f FILE`: operator
    // commands against a running agent. Any other first word is the agent's.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| scx_pilot::client::COMMANDS.iter().any(|c| a == *c))
    {
        return match scx_pilot::client::main(std::env::args_os()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("scx_pilot: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = Opts::parse();
    logging::init(opts.verbose);
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let prio = if notify::stderr_is_journal() {
                "<3>"
            } else {
                ""
            };
            eprintln!("{prio}scx_pilot: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
