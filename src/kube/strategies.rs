//! The thread that lists and watches `SchedulingStrategy` resources (every
//! namespace), publishes the ones for this node to the resolver, and reports
//! what this node applied into their status.

use std::sync::Arc;
use std::time::Duration;

use ::kube::runtime::reflector;
use ::kube::runtime::watcher::{self, DefaultBackoff, Event};
use chrono::Utc;
use futures_util::StreamExt;

use super::config::{self, ConfigSource};
use super::crd::SchedulingStrategy;
use super::strategy_status::report_status;
use super::watch_thread::WatchThread;
use super::KubeConfig;
use crate::state::AgentState;
use crate::strategy::cluster::{ClusterSet, ClusterStrategy};

/// The delay before a new list after 410 Gone.
const RELIST_AFTER_GONE: Duration = Duration::from_millis(200);
/// How often a cluster without the CRD is asked again.
const CRD_RECHECK: Duration = Duration::from_secs(60);
/// The `last_error` while the CRD is not installed.
const NOT_INSTALLED: &str = "the SchedulingStrategy CRD is not installed (HTTP 404)";

/// The watch of cluster strategies, in a [`WatchThread`] (as the pod
/// watcher). On an error the last known strategies stay applied,
/// `/health` and the `kubernetes_disconnected` alert say so, and after a
/// backoff a new list and watch start.
pub struct StrategyWatcher {
    watch: WatchThread,
}

impl StrategyWatcher {
    /// Start when a Kubernetes configuration is found (the pod watcher
    /// reports a missing or unusable one); None otherwise.
    pub fn start(config: &KubeConfig, state: Arc<AgentState>) -> Option<Self> {
        if config.pods_file.is_some() {
            return None;
        }
        let source = config::discover(config).ok().flatten()?;
        let node = config::node_name(config)?;
        state.cluster.update_status(|s| s.status = "connecting");
        match Self::spawn(source, node, state.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                log::error!("cluster strategies: {e:#}; none are applied");
                state.cluster.update_status(|s| {
                    s.status = "error";
                    s.last_error = Some(format!("{e:#}"));
                });
                None
            }
        }
    }

    fn spawn(source: ConfigSource, node: String, state: Arc<AgentState>) -> anyhow::Result<Self> {
        let watch_node = node.clone();
        let (watch, _) = WatchThread::spawn(
            "cluster strategies",
            "kube-strategies",
            source,
            move |client| {
                futures_util::future::join(
                    watch_strategies(client.clone(), watch_node.clone(), state.clone()),
                    report_status(client, watch_node, state),
                )
            },
        )?;
        log::info!("cluster strategies: watching SchedulingStrategy resources for node {node:?}");
        Ok(Self { watch })
    }

    /// Stop watching; returns within a bound (see [`WatchThread::stop`]).
    pub fn stop(self) {
        self.watch.stop();
    }
}

/// List and watch the resources until the runtime stops. As in the pod
/// watcher, an error ends the stream and a new one starts with a list after
/// a backoff, so that a complete list says when the set is current again.
async fn watch_strategies(client: ::kube::Client, node: String, state: Arc<AgentState>) {
    let api: ::kube::Api<SchedulingStrategy> = ::kube::Api::all(client);
    let mut backoff = DefaultBackoff::default();
    let (store, mut writer) = reflector::store::<SchedulingStrategy>();
    let mut listed = false;
    loop {
        let mut stream = std::pin::pin!(watcher::watcher(api.clone(), watcher::Config::default()));
        let error = loop {
            let event = match stream.next().await {
                Some(Ok(ev)) => ev,
                Some(Err(watcher::Error::WatchError(s))) if s.code == 410 => continue,
                Some(Err(watcher::Error::WatchStartFailed(::kube::Error::Api(s))))
                    if s.code == 410 =>
                {
                    break None;
                }
                // The CRD is not installed: not an outage; look again later.
                Some(Err(watcher::Error::InitialListFailed(::kube::Error::Api(s))))
                    if s.code == 404 =>
                {
                    break Some(NOT_INSTALLED.to_string());
                }
                Some(Err(e)) => break Some(e.to_string()),
                None => break Some("the watch stream ended".to_string()),
            };
            let event = event.modify(|o| o.metadata.managed_fields = None);
            writer.apply_watcher_event(&event);
            match &event {
                Event::InitDone => {
                    listed = true;
                    state.cluster.update_status(|s| {
                        s.status = "ok";
                        s.connected = true;
                        s.last_sync_at = Some(Utc::now());
                        s.last_error = None;
                        s.failures = 0;
                    });
                }
                Event::Apply(o) | Event::Delete(o) => log::debug!(
                    "cluster strategies: {}/{} changed",
                    o.metadata.namespace.as_deref().unwrap_or_default(),
                    o.metadata.name.as_deref().unwrap_or_default()
                ),
                Event::Init | Event::InitApply(_) => continue,
            }
            // A status update of ours also comes back as an event: publish
            // only when what applies changed.
            if listed {
                publish(&store, &node, &state);
            }
        };
        let Some(error) = error else {
            tokio::time::sleep(RELIST_AFTER_GONE).await;
            continue;
        };
        let known = state.cluster.set().strategies.len();
        let repeated = state.cluster.status().last_error.as_deref() == Some(error.as_str());
        if error == NOT_INSTALLED {
            if !repeated {
                log::info!(
                    "cluster strategies: the SchedulingStrategy CRD is not installed \
                     (k8s/crd.yaml); looking again every {CRD_RECHECK:?}"
                );
            }
            state.cluster.update_status(|s| {
                s.status = "not installed";
                s.connected = true;
                s.last_error = Some(error);
            });
            tokio::time::sleep(CRD_RECHECK).await;
            continue;
        }
        if !repeated {
            log::warn!("cluster strategies: {error}; keeping the {known} known ones applied");
        }
        state.cluster.update_status(|s| {
            s.status = "error";
            s.connected = false;
            s.last_error = Some(error);
            s.failures += 1;
        });
        tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(30))).await;
    }
}

/// Publish the resources meant for `node` when they differ from the set
/// applied now.
fn publish(store: &reflector::Store<SchedulingStrategy>, node: &str, state: &AgentState) {
    let set = ClusterSet::new(
        store
            .state()
            .iter()
            .map(|r| ClusterStrategy::from_resource(r))
            .filter(|s| s.selects_node(node))
            .collect(),
    );
    if !set.same_specs(&state.cluster.set()) {
        log::info!(
            "cluster strategies: {} apply on this node",
            set.strategies.len()
        );
        state.cluster.publish(set);
    }
}
