use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use anyhow::Context;
use clap::Parser;
use crossbeam_channel::{select, Receiver};

use scx_pilot::api::{self, ApiState};
use scx_pilot::cli::{Cli, Command, Dispatch, Opts};
use scx_pilot::client::{self, ClientCommand};
use scx_pilot::metrics::MetricsStore;
use scx_pilot::sched::{Mode, StatusCell};
use scx_pilot::state::AgentState;
use scx_pilot::strategy::resolver;
use scx_pilot::{agent, alerts, logging, notify};

/// Why the agent stops.
enum StopCause {
    Signal,
    SchedulerEnded,
}

/// The parts of a running agent, stopped in reverse order of their start.
struct Running {
    server: api::ApiServer,
    resolver: resolver::Resolver,
    alerts: alerts::Running,
    pod_figures: Option<scx_pilot::pod_figures::Sampler>,
    kube: Option<scx_pilot::kube::KubeWatcher>,
    cluster_strategies: Option<scx_pilot::kube::StrategyWatcher>,
    /// The scheduler's status (attached or not), for READY=1.
    status: StatusCell,
    scheduler: Option<agent::SchedulerThread>,
}

/// Start the HTTP API and (unless --api-only) the scheduler thread; on
/// SIGINT/SIGTERM stop the HTTP server first (no new connections, in-flight
/// requests finish), then let the scheduler detach.
fn run(opts: Opts) -> anyhow::Result<()> {
    let signal_rx = install_signal_handler()?;
    let running = start(&opts)?;
    let cause = wait(&opts, &running, &signal_rx);
    notify::stopping();
    match cause {
        StopCause::Signal => log::info!("stopping: HTTP server first, then the scheduler"),
        StopCause::SchedulerEnded => log::warn!("the scheduler stopped; stopping the HTTP server"),
    }
    running.stop()?;
    log::info!("stopped");
    Ok(())
}

/// A signal this soon after the first is the same request delivered twice:
/// `timeout` and some supervisors signal the process and then its process
/// group, which holds the process too. A person's second Ctrl-C comes later.
const DUPLICATE_SIGNAL_WINDOW: Duration = Duration::from_millis(500);

/// The one owner of SIGINT/SIGTERM (actix's own handling is disabled). A
/// second signal while stopping exits at once; the kernel then detaches the
/// scheduler as the process's BPF links close.
fn install_signal_handler() -> anyhow::Result<Receiver<()>> {
    let (signal_tx, signal_rx) = crossbeam_channel::bounded::<()>(1);
    let mut first: Option<Instant> = None;
    // ctrlc runs this on one thread of its own, one signal after the other.
    ctrlc::set_handler(move || match first {
        None => {
            first = Some(Instant::now());
            let _ = signal_tx.try_send(());
        }
        Some(at) if at.elapsed() < DUPLICATE_SIGNAL_WINDOW => {}
        Some(_) => {
            eprintln!("scx_pilot: second signal while stopping, exiting now");
            std::process::exit(1);
        }
    })
    .context("installing the SIGINT/SIGTERM handler")?;
    Ok(signal_rx)
}

fn mode(opts: &Opts) -> Mode {
    if opts.api_only {
        Mode::ApiOnly
    } else if opts.dispatch == Dispatch::User {
        Mode::User
    } else {
        Mode::Kernel
    }
}

/// Start every part: bad configuration (alerts file, webhook URL, TLS files,
/// token) fails before anything runs, and the API binds before the scheduler
/// loads, so a port in use fails fast.
fn start(opts: &Opts) -> anyhow::Result<Running> {
    opts.preflight()?;
    let nofile = scx_pilot::limits::raise_nofile();
    if !opts.api_only {
        scx_pilot::limits::raise_memlock();
    }
    if opts.dispatcher_test_hooks {
        scx_pilot::sched::user_dispatch::install_test_hook()?;
    }
    let metrics = MetricsStore::new(opts.history_capacity()?);
    let status = StatusCell::new(mode(opts));
    let to_scheduler = scx_pilot::mailbox::Mailbox::shared();

    let alerts_config = alerts::config::load(opts.alerts_file.as_deref())?;
    let alerts_handle = alerts::AlertsHandle::new(&alerts_config);
    let webhook = opts
        .webhook_config()
        .map(|c| alerts::Webhook::spawn(c, alerts_handle.webhook.clone()))
        .transpose()?;

    let startup = resolver::prepare(opts)?;
    let mut state = AgentState::new(metrics.clone(), status.clone())
        .with_proc_root(&opts.proc_root)
        .with_pods_cache(opts.pods_cache())
        .with_pod_meta(startup.pod_meta.clone())
        .with_sampling(opts.sample_interval(), opts.history_seconds)
        .with_priority_wire(opts.priority_wire)
        .with_alerts(alerts_handle)
        .with_state_store(startup.store.clone())
        .with_strategies(startup.initial.clone());
    if !opts.api_only {
        state = state.with_scheduler_mailbox(to_scheduler.clone());
    }
    let desired = state.desired();
    state.cluster.set_notify(startup.wake.clone());
    let state = Arc::new(state);
    let cluster_strategies =
        scx_pilot::kube::StrategyWatcher::start(&opts.kube_config(), state.clone());

    let server = api::start(
        web::Data::new(ApiState::new(state.clone())),
        api_config(opts, nofile)?,
    )?;
    let pod_figures = scx_pilot::pod_figures::Sampler::spawn(state.clone(), opts.stats_interval())
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
    let scheme = if opts.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    for addr in server.addrs() {
        log::info!("HTTP API listening on {scheme}://{addr}");
    }
    if let Some(addr) = server.addrs().first() {
        log::info!(
            "dashboard: {scheme}://{}{}",
            browsable(*addr),
            api::DASHBOARD_PATH
        );
    }
    let mut running = Running {
        server,
        resolver,
        alerts,
        pod_figures,
        kube: startup.kube,
        cluster_strategies,
        status: status.clone(),
        scheduler: None,
    };
    if opts.api_only {
        log::info!("api-only mode: no scheduler is loaded");
    } else {
        match agent::SchedulerThread::spawn(
            opts.sched_config(),
            to_scheduler,
            metrics,
            status,
            desired,
        ) {
            Ok(thread) => running.scheduler = Some(thread),
            Err(e) => {
                let _ = running.stop();
                return Err(e);
            }
        }
    }
    Ok(running)
}

/// `addr` as a browser can open it: a wildcard listen address becomes
/// loopback (the dashboard is served there too).
fn browsable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// The HTTP server's configuration: listen address, TLS, who may write, and
/// a connection cap that leaves descriptors for the rest of the agent.
fn api_config(opts: &Opts, nofile: u64) -> anyhow::Result<api::ApiConfig> {
    let mut config = opts.api_config();
    config.max_connections_per_worker =
        scx_pilot::limits::connections_per_worker(nofile, config.workers);
    if let (Some(cert), Some(key)) = (&opts.tls_cert, &opts.tls_key) {
        config.tls = Some(Arc::new(scx_pilot::tls::server_config(cert, key)?));
    }
    config.writes = Arc::new(api::auth::WriteGuard::new(opts.write_policy()?));
    Ok(config)
}

/// Wait for a signal or the scheduler's end. READY=1 (Type=notify) goes out
/// once the listener is bound and, unless api-only, the scheduler is attached:
/// a unit ordered after this one starts with both in place.
fn wait(opts: &Opts, running: &Running, signal_rx: &Receiver<()>) -> StopCause {
    let never = crossbeam_channel::never();
    let done_rx = running.scheduler.as_ref().map_or(&never, |s| &s.done);
    let api_addrs: Vec<String> = running
        .server
        .addrs()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let status = &running.status;
    let mut ready = false;
    let poll = crossbeam_channel::tick(Duration::from_millis(20));
    let no_poll = crossbeam_channel::never();
    loop {
        if !ready && (opts.api_only || status.get().attached) {
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
            recv(signal_rx) -> _ => return StopCause::Signal,
            recv(done_rx) -> _ => return StopCause::SchedulerEnded,
            recv(poll) -> _ => {}
        }
    }
}

impl Running {
    fn stop(self) -> anyhow::Result<()> {
        let api_result = self.server.stop();
        self.resolver.stop();
        self.alerts.stop();
        if let Some(p) = self.pod_figures {
            p.stop();
        }
        if let Some(kube) = self.kube {
            kube.stop();
        }
        if let Some(w) = self.cluster_strategies {
            w.stop();
        }
        if let Some(s) = self.scheduler {
            s.stop()?;
        }
        api_result
    }
}

/// A command's outcome as an exit code, its error on one line after `who`.
fn report(who: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{who}: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = match cli.command {
        None => cli.agent,
        Some(Command::Crd) => {
            let yaml = scx_pilot::kube::crd::crd_yaml().map(|yaml| print!("{yaml}"));
            return report("scx_pilot crd", yaml);
        }
        // top parses its own flags again (they are the ones just checked),
        // from the words after `top`.
        Some(Command::Top(_)) => {
            return report(
                "scx_pilot top",
                scx_pilot::top::main(std::env::args_os().skip(1)),
            )
        }
        Some(Command::Status(args)) => {
            return report("scx_pilot", client::run(&args, ClientCommand::Status))
        }
        Some(Command::Strategies(s)) => {
            let command = ClientCommand::Strategies(&s.command);
            return report("scx_pilot", client::run(&s.client, command));
        }
    };
    logging::init(opts.verbose);
    let prio = if notify::stderr_is_journal() {
        "<3>"
    } else {
        ""
    };
    report(&format!("{prio}scx_pilot"), run(opts))
}
