//! Pod metadata (name, namespace, labels) by pod UID: from the Kubernetes API
//! (a reflector over this node's pods) or from a `--pods-file`, published as
//! a lock-free snapshot with the connection status for `/health`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The annotation kubelet puts on static pods (and their mirror pods): the
/// hash that names the static pod's cgroup instead of the API object's UID.
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";

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
    notify: Mutex<Option<Sender<()>>>,
}

impl Default for PodMetaHandle {
    fn default() -> Self {
        Self {
            dir: ArcSwap::from_pointee(None),
            status: Mutex::new(KubeStatus::default()),
            notify: Mutex::new(None),
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
    pub fn set_notify(&self, tx: Sender<()>) {
        *self.notify.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    }

    /// Publish a new directory and wake the resolver.
    pub fn publish(&self, dir: PodDirectory) {
        let n = dir.len();
        self.dir.store(Arc::new(Some(Arc::new(dir))));
        self.update_status(|s| s.pods = n);
        if let Some(tx) = self
            .notify
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = tx.try_send(());
        }
    }
}

// ---------------------------------------------------------------- pods file

/// One pod of a `--pods-file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePod {
    uid: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    config_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FilePods {
    pods: Vec<FilePod>,
}

/// `kubectl get pods -o json`: only the metadata is read.
#[derive(Debug, Deserialize)]
struct KubectlList {
    items: Vec<KubectlItem>,
}

#[derive(Debug, Deserialize)]
struct KubectlItem {
    metadata: KubectlMeta,
}

#[derive(Debug, Deserialize)]
struct KubectlMeta {
    uid: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Parse a pods file: either `{"pods": [{"uid", "name", "namespace",
/// "labels": {..}, "config_hash"?}]}` or the output of `kubectl get pods -o json`.
pub fn parse_pods_file(text: &str) -> anyhow::Result<PodDirectory> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    let pods: Vec<PodMeta> = if value.get("items").is_some() {
        let list: KubectlList = serde_json::from_value(value)?;
        list.items
            .into_iter()
            .map(|i| PodMeta {
                config_hash: i.metadata.annotations.get(CONFIG_HASH_ANNOTATION).cloned(),
                uid: i.metadata.uid,
                name: i.metadata.name,
                namespace: i.metadata.namespace,
                labels: i.metadata.labels,
            })
            .collect()
    } else {
        let file: FilePods = serde_json::from_value(value)?;
        file.pods
            .into_iter()
            .map(|p| PodMeta {
                uid: p.uid,
                name: p.name,
                namespace: p.namespace,
                labels: p.labels,
                config_hash: p.config_hash,
            })
            .collect()
    };
    Ok(PodDirectory::from_pods(pods))
}

/// A `--pods-file`, re-read when its modification time changes.
pub struct PodsFile {
    path: PathBuf,
    mtime: Option<SystemTime>,
}

impl PodsFile {
    /// Load `path` into `handle` once; call [`PodsFile::poll`] to follow changes.
    pub fn open(path: &Path, handle: &PodMetaHandle) -> Self {
        handle.update_status(|s| {
            s.source = MetaSource::PodsFile;
            s.endpoint = Some(path.display().to_string());
            s.status = "file";
        });
        let mut f = Self {
            path: path.to_path_buf(),
            mtime: None,
        };
        f.poll(handle);
        f
    }

    /// Re-read the file if it changed; on an error keep the last good data.
    pub fn poll(&mut self, handle: &PodMetaHandle) {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime.is_some() && mtime == self.mtime {
            return;
        }
        let result = std::fs::read_to_string(&self.path)
            .map_err(anyhow::Error::from)
            .and_then(|t| parse_pods_file(&t));
        match result {
            Ok(dir) => {
                self.mtime = mtime;
                log::info!("pods file {}: {} pods", self.path.display(), dir.len());
                handle.update_status(|s| {
                    s.connected = true;
                    s.last_error = None;
                    s.last_sync_at = Some(Utc::now());
                });
                handle.publish(dir);
            }
            Err(e) => {
                let msg = format!("{}: {e:#}", self.path.display());
                let first = handle.status().last_error.as_deref() != Some(msg.as_str());
                if first {
                    log::warn!("pods file: {msg} (keeping the last good data)");
                }
                self.mtime = mtime;
                handle.update_status(|s| {
                    s.connected = false;
                    s.last_error = Some(msg);
                    s.failures += 1;
                });
            }
        }
    }
}

// ---------------------------------------------------------------- Kubernetes

/// The thread that watches this node's pods.
pub struct KubeWatcher {
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl KubeWatcher {
    /// Start watching when a Kubernetes config is found; None (said once in
    /// the log) when there is none.
    pub fn start(_opts: &crate::cli::Opts, handle: Arc<PodMetaHandle>) -> Option<Self> {
        log::info!("kubernetes: no configuration; pod label selectors match nothing");
        handle.update_status(|s| s.status = "not configured");
        None
    }

    pub fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
