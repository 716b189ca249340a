//! The thread that lists and watches this node's pods on the Kubernetes API
//! and publishes their metadata.

use std::sync::Arc;
use std::time::Duration;

use ::kube::core::PartialObjectMeta;
use ::kube::runtime::reflector::{self, ObjectRef};
use ::kube::runtime::watcher::{self, DefaultBackoff, Event};
use chrono::Utc;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::config::{self, ConfigSource};
use super::watch_thread::WatchThread;
use super::{KubeConfig, CONFIG_HASH_ANNOTATION};
use crate::podmeta::{MetaSource, PodDirectory, PodMeta, PodMetaHandle};

/// The delay before a new list after the server answered 410 Gone, so that a
/// server answering it again and again is not polled at full speed.
const RELIST_AFTER_GONE: Duration = Duration::from_millis(200);

/// What the watch keeps of a pod: its metadata only (name, namespace, labels
/// and annotations are all that is needed, and much less than whole pods).
type PodObject = PartialObjectMeta<Pod>;

/// The thread that watches this node's pods.
///
/// A `watcher` (list, then watch from the list's resourceVersion, with
/// `fieldSelector=spec.nodeName=<node>` and metadata-only requests) runs in a
/// [`WatchThread`]. Every change of a pod's name,
/// namespace, labels or config hash publishes a new [`PodDirectory`] (which
/// wakes the resolver). On an error the last pods stay published, `/health`
/// shows the error, and after a backoff (0.8 s doubling to 30 s) a new list
/// and watch start; a complete list makes the status "ok" again. The backoff
/// falls back to 0.8 s only after two minutes without an error, not at a
/// complete list: when lists work and watches fail (RBAC without `watch`, a
/// proxy that cuts long requests), every node would list all its pods about
/// once a second.
pub struct KubeWatcher {
    watch: WatchThread,
}

impl KubeWatcher {
    /// Start watching when a Kubernetes config is found; None (said once in
    /// the log) when there is none, or when it cannot be used (then /health
    /// says why).
    pub fn start(config: &KubeConfig, handle: Arc<PodMetaHandle>) -> Option<Self> {
        let source = match config::discover(config) {
            Ok(Some(s)) => s,
            Ok(None) => {
                log::info!("kubernetes: no configuration; pod label selectors match nothing");
                handle.update_status(|s| s.status = "not configured");
                return None;
            }
            Err(e) => {
                Self::unusable(&handle, format!("{e:#}"));
                return None;
            }
        };
        let Some(node) = config::node_name(config) else {
            Self::unusable(
                &handle,
                "no --node-name (or NODE_NAME) and no host name".into(),
            );
            return None;
        };
        handle.update_status(|s| {
            s.source = MetaSource::Kubernetes;
            s.status = "connecting";
            s.node_name = Some(node.clone());
        });
        match Self::spawn(source, node, handle.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                Self::unusable(&handle, format!("{e:#}"));
                None
            }
        }
    }

    /// A configuration that cannot be used: said in the log and in /health,
    /// never retried (it needs an operator).
    fn unusable(handle: &PodMetaHandle, msg: String) {
        log::error!("kubernetes: {msg}; pod label selectors match nothing");
        handle.update_status(|s| {
            s.source = MetaSource::Kubernetes;
            s.status = "error";
            s.connected = false;
            s.last_error = Some(msg);
            s.failures += 1;
        });
    }

    fn spawn(
        source: ConfigSource,
        node: String,
        handle: Arc<PodMetaHandle>,
    ) -> anyhow::Result<Self> {
        let what = source.describe();
        let publish_to = handle.clone();
        let watch_node = node.clone();
        let (watch, endpoint) =
            WatchThread::spawn("kubernetes", "kube-watch", source, move |client| {
                watch_pods(client, watch_node, publish_to)
            })?;
        log::info!("kubernetes: watching the pods of node {node:?} at {endpoint} ({what})");
        handle.update_status(|s| s.endpoint = Some(endpoint));
        Ok(Self { watch })
    }

    /// Stop watching; returns within a bound (see [`WatchThread::stop`]).
    pub fn stop(self) {
        self.watch.stop();
    }
}

/// List and watch this node's pods until the runtime stops; never returns.
///
/// The pods live in a kube-runtime reflector store, which also holds a
/// re-list back until it is complete. The watcher stream is not wrapped in
/// kube-runtime's `StreamBackoff`, though: after an error that stream
/// resumes the watch from its last resourceVersion, so no complete list
/// would ever tell that the pods are current again, and `/health` needs that
/// moment to turn "ok". So an error ends the stream and, after the same
/// [`DefaultBackoff`], a new watcher starts with a list.
async fn watch_pods(client: ::kube::Client, node: String, handle: Arc<PodMetaHandle>) {
    let api: ::kube::Api<PodObject> = ::kube::Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut backoff = DefaultBackoff::default();
    let (pods, mut writer) = reflector::store::<PodObject>();
    let publish = || {
        let dir =
            PodDirectory::from_pods(pods.state().iter().filter_map(|o| pod_meta(&o.metadata)));
        handle.publish(dir);
    };
    loop {
        let mut stream = std::pin::pin!(watcher::watcher(api.clone(), config.clone()));
        let error = loop {
            let event = match stream.next().await {
                Some(Ok(ev)) => ev,
                // 410 Gone: the resourceVersion is too old (compacted). The
                // watcher lists again by itself; routine, not a failure.
                Some(Err(watcher::Error::WatchError(s))) if s.code == 410 => {
                    log::debug!("kubernetes: watch expired ({}); listing again", s.message);
                    continue;
                }
                // The same answered to the watch request itself: the watcher
                // would retry that resourceVersion forever, so start over.
                Some(Err(watcher::Error::WatchStartFailed(::kube::Error::Api(s))))
                    if s.code == 410 =>
                {
                    log::debug!("kubernetes: watch expired ({}); listing again", s.message);
                    break None;
                }
                Some(Err(e)) => break Some(describe(&e)),
                None => break Some("the watch stream ended".to_string()),
            };
            // Managed fields are most of a pod's metadata and never read.
            let event = event.modify(|o| o.metadata.managed_fields = None);
            let changed = changes_pods(&pods, &event);
            writer.apply_watcher_event(&event);
            if matches!(event, Event::InitDone) {
                listed(&handle, &node, pods.len());
            }
            if changed {
                publish();
            }
        };
        let Some(error) = error else {
            tokio::time::sleep(RELIST_AFTER_GONE).await;
            continue;
        };
        let prev = handle.status();
        if prev.last_error.as_deref() != Some(error.as_str()) {
            log::warn!(
                "kubernetes: {error}; keeping the {} pods known, retrying",
                pods.len()
            );
        } else {
            log::debug!("kubernetes: {error} (again)");
        }
        handle.update_status(|s| {
            s.status = "error";
            s.connected = false;
            s.last_error = Some(error);
            s.failures += 1;
        });
        let delay = backoff.next().unwrap_or(Duration::from_secs(30));
        tokio::time::sleep(delay).await;
    }
}

/// Whether applying `event` to `pods` changes what is published: a complete
/// list, or a pod whose name, namespace, labels or config hash are new (not
/// every update of a pod's status, which also reaches a metadata watch).
fn changes_pods(pods: &reflector::Store<PodObject>, event: &Event<PodObject>) -> bool {
    match event {
        Event::Init | Event::InitApply(_) => false,
        Event::InitDone => true,
        Event::Apply(obj) => {
            let known = pods.get(&ObjectRef::from_obj(obj));
            let now = pod_meta(&obj.metadata);
            let changed = known.and_then(|k| pod_meta(&k.metadata)) != now;
            if let (true, Some(p)) = (changed, &now) {
                log::debug!("kubernetes: pod {}/{} changed", p.namespace, p.name);
            }
            changed
        }
        Event::Delete(obj) => {
            let known = pods.get(&ObjectRef::from_obj(obj)).is_some();
            if known {
                log::debug!(
                    "kubernetes: pod {}/{} deleted",
                    obj.metadata.namespace.as_deref().unwrap_or_default(),
                    obj.metadata.name.as_deref().unwrap_or_default()
                );
            }
            known
        }
    }
}

/// A complete list arrived: the pods are current, the source is "ok".
fn listed(handle: &PodMetaHandle, node: &str, pods: usize) {
    let prev = handle.status();
    if prev.status != "ok" {
        if prev.failures > 0 {
            log::info!(
                "kubernetes: listed {pods} pods of node {node:?} again after {} failures",
                prev.failures
            );
        } else {
            log::info!("kubernetes: listed {pods} pods of node {node:?}");
        }
    }
    handle.update_status(|s| {
        s.status = "ok";
        s.connected = true;
        s.last_sync_at = Some(Utc::now());
        s.last_error = None;
        s.failures = 0;
    });
}

/// The pod object's metadata as kept here.
fn pod_meta(m: &ObjectMeta) -> Option<PodMeta> {
    let uid = m.uid.clone().filter(|u| !u.is_empty())?;
    Some(PodMeta {
        uid,
        name: m.name.clone().unwrap_or_default(),
        namespace: m.namespace.clone().unwrap_or_default(),
        labels: m.labels.clone().unwrap_or_default(),
        config_hash: m
            .annotations
            .as_ref()
            .and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned()),
    })
}

/// A watcher error in one line, for the log and /health: what was being
/// done, then the API server's status (code, reason, message) or the
/// connection error with its causes.
fn describe(e: &watcher::Error) -> String {
    use watcher::Error as W;
    fn client(e: &::kube::Error) -> String {
        if let ::kube::Error::Api(s) = e {
            return format!("HTTP {} {}: {}", s.code, s.reason, s.message);
        }
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(cause) = src {
            let c = cause.to_string();
            if !msg.contains(&c) {
                msg = format!("{msg}: {c}");
            }
            src = cause.source();
        }
        msg
    }
    match e {
        W::InitialListFailed(e) => format!("listing pods: {}", client(e)),
        W::WatchStartFailed(e) => format!("starting the watch: {}", client(e)),
        W::WatchFailed(e) => format!("watching: {}", client(e)),
        W::WatchError(s) => format!("watch: HTTP {} {}: {}", s.code, s.reason, s.message),
        W::NoResourceVersion => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str, version: &str, labels: &[(&str, &str)]) -> PodObject {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("5g".into()),
                uid: Some(uid.into()),
                resource_version: Some(version.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            _phantom: Default::default(),
        }
    }

    /// Feeds `events` to a store; returns which of them would publish.
    fn publishes(events: Vec<Event<PodObject>>) -> Vec<bool> {
        let (pods, mut writer) = reflector::store::<PodObject>();
        events
            .into_iter()
            .map(|ev| {
                let changed = changes_pods(&pods, &ev);
                writer.apply_watcher_event(&ev);
                changed
            })
            .collect()
    }

    #[test]
    fn only_metadata_changes_publish() {
        let upf = |v, nf| pod("upf-0", "u1", v, &[("nf", nf)]);
        let got = publishes(vec![
            Event::Init,
            Event::InitApply(upf("1", "upf")),
            Event::InitDone,
            // A status update: a new resourceVersion, the same metadata.
            Event::Apply(upf("2", "upf")),
            Event::Apply(upf("3", "smf")),
            Event::Apply(pod("smf-0", "u2", "4", &[])),
            Event::Delete(upf("5", "smf")),
            Event::Delete(upf("6", "smf")),
        ]);
        assert_eq!(
            got,
            [false, false, true, false, true, true, true, false],
            "Init, InitApply, InitDone, status, relabel, add, delete, delete again"
        );
    }

    #[test]
    fn a_relist_replaces_the_pods_only_when_complete() {
        let (pods, mut writer) = reflector::store::<PodObject>();
        for ev in [
            Event::Init,
            Event::InitApply(pod("a", "u1", "1", &[])),
            Event::InitDone,
            Event::Init,
            Event::InitApply(pod("b", "u2", "2", &[])),
        ] {
            writer.apply_watcher_event(&ev);
        }
        let names = |pods: &reflector::Store<PodObject>| -> Vec<String> {
            pods.state()
                .iter()
                .filter_map(|o| o.metadata.name.clone())
                .collect()
        };
        assert_eq!(names(&pods), ["a"], "the last complete list until the next");
        writer.apply_watcher_event(&Event::InitDone);
        assert_eq!(names(&pods), ["b"]);
    }
}
