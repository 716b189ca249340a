//! Pod metadata (name, namespace, labels) by pod UID, published as a
//! lock-free snapshot with the state of its source for `/health`. Whatever
//! feeds it (the Kubernetes watcher, a pods file) writes here; the resolver,
//! the per-pod figures and the API read it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::mailbox::{Notify, Wake};

/// What is known about one pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodMeta {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// `kubernetes.io/config.hash`, for static pods.
    pub config_hash: Option<String>,
}

/// Pods by UID (and static pods by config hash).
#[derive(Debug, Clone, Default)]
pub struct PodDirectory {
    by_uid: HashMap<String, Arc<PodMeta>>,
    by_hash: HashMap<String, Arc<PodMeta>>,
}

impl PodDirectory {
    pub fn from_pods(pods: impl IntoIterator<Item = PodMeta>) -> Self {
        let mut dir = Self::default();
        for p in pods {
            let p = Arc::new(p);
            if let Some(h) = &p.config_hash {
                dir.by_hash.insert(h.to_ascii_lowercase(), p.clone());
            }
            dir.by_uid.insert(p.uid.to_ascii_lowercase(), p);
        }
        dir
    }

    /// The pod whose UID (as found in a cgroup) is `uid`; a static pod's
    /// cgroup carries its config hash, which is matched too.
    pub fn get(&self, uid: &str) -> Option<&PodMeta> {
        self.by_uid
            .get(uid)
            .or_else(|| self.by_hash.get(uid))
            .map(|p| p.as_ref())
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

/// Where pod metadata comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MetaSource {
    /// Nothing: selectors match nothing.
    None,
    /// `--pods-file`.
    PodsFile,
    /// The Kubernetes API.
    Kubernetes,
}

/// The state of the metadata source, for `/health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KubeStatus {
    /// "not configured", "connecting", "ok", "error" (serving the last known
    /// pods while retrying) or, for `--pods-file`, "file".
    #[schema(example = "ok")]
    pub status: &'static str,
    pub connected: bool,
    pub source: MetaSource,
    /// The node whose pods are watched.
    pub node_name: Option<String>,
    /// The API server or the pods file.
    pub endpoint: Option<String>,
    /// Pods known now.
    pub pods: usize,
    /// When the pod list was last complete (initial list or re-list).
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The last error, kept until the next success.
    pub last_error: Option<String>,
    /// Connection attempts that failed since the last success.
    pub failures: u64,
}

impl Default for KubeStatus {
    fn default() -> Self {
        Self {
            status: "not configured",
            connected: false,
            source: MetaSource::None,
            node_name: None,
            endpoint: None,
            pods: 0,
            last_sync_at: None,
            last_error: None,
            failures: 0,
        }
    }
}

/// The current pod directory and status, shared by the API, the resolver and
/// whatever feeds it (the Kubernetes watcher or the pods file).
pub struct PodMetaHandle {
    dir: ArcSwap<Option<Arc<PodDirectory>>>,
    status: Mutex<KubeStatus>,
    notify: Notify,
}

impl Default for PodMetaHandle {
    fn default() -> Self {
        Self {
            dir: ArcSwap::from_pointee(None),
            status: Mutex::new(KubeStatus::default()),
            notify: Notify::default(),
        }
    }
}

impl PodMetaHandle {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The pods known now; None when there is no metadata source (or it has
    /// not delivered a first list yet).
    pub fn directory(&self) -> Option<Arc<PodDirectory>> {
        self.dir.load().as_ref().clone()
    }

    pub fn status(&self) -> KubeStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn update_status(&self, f: impl FnOnce(&mut KubeStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Who to wake when the pods change (the resolver).
    pub fn set_notify(&self, wake: Wake) {
        self.notify.set(wake);
    }

    /// Publish a new directory and wake the resolver.
    pub fn publish(&self, dir: PodDirectory) {
        let n = dir.len();
        self.dir.store(Arc::new(Some(Arc::new(dir))));
        self.update_status(|s| s.pods = n);
        self.notify.post();
    }
}
