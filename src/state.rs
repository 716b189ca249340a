//! The agent's shared state: what every reader (HTTP handlers, Prometheus,
//! alerts, the resolver and the pod-figures sampler) sees. Sources write it,
//! readers take snapshots; nothing here knows about HTTP.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::alerts::AlertsHandle;
use crate::external::ExternalReports;
use crate::mailbox::Mailbox;
use crate::metrics::MetricsStore;
use crate::pod_figures::PodFigures;
use crate::podmeta::PodMetaHandle;
use crate::pods::ScanCache;
use crate::sched::StatusCell;
use crate::strategy::{
    ClusterHandle, DesiredStrategies, PriorityWire, StateStore, StrategySet, StrategyState,
};

/// Everything the agent knows, shared by its threads.
pub struct AgentState {
    pub metrics: Arc<MetricsStore>,
    pub status: StatusCell,
    /// BssData posted by external schedulers.
    pub external: ExternalReports,
    strategies: Mutex<StrategyState>,
    /// Serializes strategy writers (save, then swap, then send) without
    /// making readers wait for the disk.
    strategy_writes: Mutex<()>,
    to_scheduler: Option<Arc<Mailbox<DesiredStrategies>>>,
    pub proc_root: PathBuf,
    /// The shared `/proc` scan (pods API, resolver, pod figures).
    pub pods: Arc<ScanCache>,
    /// Pod names, namespaces and labels (Kubernetes or `--pods-file`).
    pub pod_meta: Arc<PodMetaHandle>,
    /// Per-pod and per-PID scheduling figures from schedstat.
    pub pod_figures: PodFigures,
    /// Where accepted strategy sets are saved (None: not persisted).
    pub state_store: Option<StateStore>,
    pub agent_pid: u32,
    pub sample_interval: Duration,
    pub history_seconds: u64,
    pub started_at: DateTime<Utc>,
    /// What the alerts thread last published (nothing without one).
    pub alerts: Arc<AlertsHandle>,
    /// How the strategies list writes `priority` (`--priority-wire`).
    pub priority_wire: PriorityWire,
    /// The `SchedulingStrategy` resources this node applies.
    pub cluster: Arc<ClusterHandle>,
}

impl AgentState {
    /// State with defaults: `/proc`, this process's PID, 1 s samples, one hour
    /// of history, no strategies and no scheduler to send them to.
    pub fn new(metrics: Arc<MetricsStore>, status: StatusCell) -> Self {
        let proc_root = PathBuf::from("/proc");
        Self {
            metrics,
            status,
            external: ExternalReports::default(),
            strategies: Mutex::new(StrategyState::new(Vec::new(), &proc_root)),
            strategy_writes: Mutex::new(()),
            to_scheduler: None,
            pods: Arc::new(ScanCache::new(&proc_root, Duration::ZERO)),
            pod_meta: PodMetaHandle::new(),
            pod_figures: PodFigures::default(),
            state_store: None,
            proc_root,
            agent_pid: std::process::id(),
            sample_interval: Duration::from_secs(1),
            history_seconds: 3600,
            started_at: Utc::now(),
            alerts: Arc::new(AlertsHandle::default()),
            priority_wire: PriorityWire::default(),
            cluster: Arc::new(ClusterHandle::default()),
        }
    }

    pub fn with_priority_wire(mut self, wire: PriorityWire) -> Self {
        self.priority_wire = wire;
        self
    }

    /// Publish alerts here (the handle the alerts thread writes).
    pub fn with_alerts(mut self, alerts: Arc<AlertsHandle>) -> Self {
        self.alerts = alerts;
        self
    }

    /// Post accepted strategy sets to the scheduler thread's mailbox.
    pub fn with_scheduler_mailbox(mut self, mailbox: Arc<Mailbox<DesiredStrategies>>) -> Self {
        self.to_scheduler = Some(mailbox);
        self
    }

    pub fn with_proc_root(mut self, proc_root: impl Into<PathBuf>) -> Self {
        self.proc_root = proc_root.into();
        self.pods = Arc::new(ScanCache::new(&self.proc_root, self.pods.ttl()));
        let set = self.strategies_snapshot().set;
        self.strategies = Mutex::new(StrategyState::new(set, &self.proc_root));
        self
    }

    /// Reuse a `/proc` scan for the pods API while it is younger than `ttl`.
    pub fn with_pods_cache(mut self, ttl: Duration) -> Self {
        self.pods = Arc::new(ScanCache::new(&self.proc_root, ttl));
        self
    }

    /// Pod metadata from this source (Kubernetes or `--pods-file`).
    pub fn with_pod_meta(mut self, pod_meta: Arc<PodMetaHandle>) -> Self {
        self.pod_meta = pod_meta;
        self
    }

    /// Save every accepted strategy set here.
    pub fn with_state_store(mut self, store: StateStore) -> Self {
        self.state_store = Some(store);
        self
    }

    pub fn with_sampling(mut self, interval: Duration, history_seconds: u64) -> Self {
        self.sample_interval = interval;
        self.history_seconds = history_seconds.max(1);
        self
    }

    /// Start with these strategies (e.g. from `--strategy` flags).
    pub fn with_strategies(self, set: impl Into<StrategySet>) -> Self {
        *self.lock_strategies() = StrategyState::new(set, &self.proc_root);
        self
    }

    /// Whether strategy sets go to a scheduler (false in `--api-only` mode).
    pub fn has_scheduler(&self) -> bool {
        self.to_scheduler.is_some()
    }

    /// The strategies as posted and as last resolved. Held briefly: never
    /// across I/O.
    pub fn lock_strategies(&self) -> MutexGuard<'_, StrategyState> {
        self.strategies.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Held by a writer of a new strategy set from saving it to handing it
    /// to the scheduler.
    pub fn lock_strategy_writes(&self) -> MutexGuard<'_, ()> {
        self.strategy_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn strategies_snapshot(&self) -> StrategyState {
        self.lock_strategies().clone()
    }

    /// The `pid -> strategy` set currently accepted.
    pub fn desired(&self) -> DesiredStrategies {
        self.lock_strategies().resolved.desired.clone()
    }

    /// Hand a new set to the scheduler thread, if any (only the newest set
    /// matters, so it replaces one the thread has not taken yet), and wake the
    /// pod-stats sampler for its PIDs.
    pub fn send_desired(&self, desired: DesiredStrategies) {
        if let Some(mailbox) = &self.to_scheduler {
            mailbox.post(desired);
        }
        self.pod_figures.strategies_changed();
    }
}
