//! Continuous resolution of the accepted strategy set to PIDs.
//!
//! A thread re-resolves the set when it is woken (pod metadata changed) and on
//! a periodic rescan of `/proc`, and hands the scheduler thread the new
//! `pid -> strategy` set when it differs from the last one (the scheduler
//! applies it to the BPF map as a diff). A new process in a matching pod is
//! thus covered within one interval plus one scan; an exited PID leaves the
//! set just as fast.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::model::{from_static, StrategyRequest, StrategySet};
use super::resolve::{resolve, ResolveInput, Resolved};
use super::store::StateStore;
use super::validate::{validate, ValidationContext};
use crate::kube::PodsFile;
use crate::mailbox::{Mailbox, Wake};
use crate::state::AgentState;

/// Resolve the set stored in `state` now, from a scan no older than
/// `max_scan_age`, and store (and send) the result unless the set was
/// replaced meanwhile. Returns whether the desired set changed.
pub fn resolve_once(state: &AgentState, max_scan_age: Duration) -> bool {
    let (set, generation) = {
        let cur = state.lock_strategies();
        (cur.set.clone(), cur.generation)
    };
    let cluster = state.cluster.set();
    let snapshot = if set.needs_scan() || !cluster.is_empty() {
        match state.pods.get_within(max_scan_age) {
            Ok(s) => Some(s),
            Err(e) => {
                // Without a complete scan there is no telling which processes
                // are gone: keep the last resolution and retry next round.
                // Logged when a run of failures starts and then every 60th
                // time: /health and the alert carry the rest.
                if state.pods.health().consecutive_failures % 60 == 1 {
                    log::warn!(
                        "resolver: scanning {}: {e}; keeping the last resolution",
                        state.proc_root.display()
                    );
                }
                return false;
            }
        }
    } else {
        None
    };
    let dir = state.pod_meta.directory();
    let input = ResolveInput {
        proc_root: &state.proc_root,
        snapshot: snapshot.as_deref(),
        pods: dir.as_deref(),
        agent_pid: state.agent_pid,
    };
    let mut resolved = resolve(&set, &input);
    super::cluster::resolve_into(&cluster, &input, &mut resolved);
    store_resolved(state, generation, resolved)
}

fn store_resolved(state: &AgentState, generation: u64, resolved: Resolved) -> bool {
    let mut cur = state.lock_strategies();
    if cur.generation != generation {
        // A POST replaced the set while this one was being resolved; it
        // resolved its own set already.
        return false;
    }
    let changed = cur.resolved.desired != resolved.desired;
    if changed {
        log::debug!(
            "resolver: {} -> {} PIDs",
            cur.resolved.desired.len(),
            resolved.desired.len()
        );
        state.send_desired(resolved.desired.clone());
    }
    cur.resolved = resolved;
    cur.resolved_at = Utc::now();
    changed
}

/// The resolver thread.
pub struct Resolver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    wake: Wake,
}

impl Resolver {
    /// Start resolving `state`'s set every `interval` and whenever `wake`
    /// (also posted to by pod metadata and cluster set changes) is posted to. A pods file, if given, is
    /// re-read on each round when it changed.
    pub fn spawn(
        state: Arc<AgentState>,
        interval: Duration,
        wake: Wake,
        mut pods_file: Option<PodsFile>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let wake_rx = wake.clone();
        let thread = std::thread::Builder::new()
            .name("resolver".into())
            .spawn(move || {
                let mut next = Instant::now() + interval;
                while !flag.load(Ordering::Relaxed) {
                    let woken = wake_rx.take_until(next).is_some();
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Some(f) = pods_file.as_mut() {
                        f.poll(&state.pod_meta);
                    }
                    // On a pod event, the processes are likely the same as a
                    // moment ago; on the periodic round, look at /proc anew
                    // (sharing a scan the pods API made within half an interval).
                    let max_age = if woken { interval } else { interval / 2 };
                    resolve_once(&state, max_age);
                    if !woken {
                        next = Instant::now() + interval;
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
            wake,
        })
    }

    /// Stop and join the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.post(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What `main` needs to start continuous resolution.
pub struct Startup {
    pub pod_meta: Arc<crate::podmeta::PodMetaHandle>,
    pub wake: Wake,
    pub pods_file: Option<PodsFile>,
    pub store: StateStore,
    /// The set to start with: `--strategy` flags, else the saved set.
    pub initial: StrategySet,
    /// The Kubernetes watcher, when configured.
    pub kube: Option<crate::kube::KubeWatcher>,
}

/// Open the state directory, load the saved set, and start the pod metadata
/// source (`--pods-file`, or the Kubernetes API when configured). A state
/// directory another user could change is an error: the agent must not start.
pub fn prepare(opts: &crate::cli::Opts) -> anyhow::Result<Startup> {
    let pod_meta = crate::podmeta::PodMetaHandle::new();
    let wake = Mailbox::shared();
    pod_meta.set_notify(wake.clone());

    let store = match StateStore::open(&opts.state_dir) {
        Ok(s) => s,
        Err(e @ crate::secure_fs::TrustError::Io { .. }) => {
            log::error!(
                "state directory {}: {e}; POSTs of strategies fail until it can be written \
                 (each one tries again)",
                opts.state_dir.display()
            );
            StateStore::unopened(&opts.state_dir)
        }
        Err(e) => anyhow::bail!("refusing the state directory: {e}"),
    };
    let statics = from_static(&opts.static_strategies());
    let initial = if !statics.is_empty() {
        log::info!(
            "strategies: starting with the {} --strategy flags (not the saved set)",
            statics.len()
        );
        StrategySet::pinned(statics, &opts.proc_root)
    } else {
        load_saved(&store, &opts.proc_root)
    };

    let (pods_file, kube) = crate::kube::start(&opts.kube_config(), &pod_meta);
    Ok(Startup {
        pod_meta,
        wake,
        pods_file,
        store,
        initial,
        kube,
    })
}

/// The saved set, if any and if it still validates. A file that cannot be
/// used is moved aside, so the next POST does not overwrite the only copy.
fn load_saved(store: &StateStore, proc_root: &std::path::Path) -> StrategySet {
    let saved = match store.load() {
        Ok(None) => return Default::default(),
        Ok(Some(saved)) => saved,
        Err(e) => {
            reject_saved(store, &format!("{e:#}"));
            return Default::default();
        }
    };
    let req = StrategyRequest {
        strategies: saved.strategies,
    };
    // Processes of saved PID strategies may be gone: they stay in the set
    // (resolving to nothing) rather than costing the whole set.
    let ctx = ValidationContext {
        agent_pid: std::process::id(),
        proc_root,
        check_processes: false,
    };
    match validate(&req, &ctx) {
        Ok(set) => {
            log::info!(
                "strategies: loaded {} from {}",
                req.strategies.len(),
                store.path().display()
            );
            set.with_start_ticks(saved.pid_start_ticks)
        }
        Err(e) => {
            reject_saved(
                store,
                &format!(
                    "the saved set in {} is not valid now ({e})",
                    store.path().display()
                ),
            );
            Default::default()
        }
    }
}

/// Start without the saved set, keeping the file for a person to look at.
fn reject_saved(store: &StateStore, why: &str) {
    match store.set_aside() {
        Ok(aside) => log::error!(
            "strategies: {why}; starting with none; the file is kept as {}",
            aside.display()
        ),
        Err(e) => log::error!(
            "strategies: {why}; starting with none; moving the file aside failed ({e}): \
             the next POST of strategies replaces it"
        ),
    }
}
