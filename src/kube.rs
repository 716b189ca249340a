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

/// Where the service account of a pod is mounted.
const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How long [`KubeWatcher::stop`] waits for the watcher thread.
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Where the Kubernetes client configuration was found.
enum ConfigSource {
    /// A kubeconfig (already read and merged), and where it came from.
    Kubeconfig(Box<::kube::config::Kubeconfig>, String),
    /// The pod's service account (`KUBERNETES_SERVICE_HOST` and the token).
    InCluster,
}

impl ConfigSource {
    fn describe(&self) -> String {
        match self {
            Self::Kubeconfig(_, from) => format!("kubeconfig {from}"),
            Self::InCluster => "in-cluster service account".into(),
        }
    }
}

/// Find the configuration: `--in-cluster`; else `--kubeconfig`; else
/// `$KUBECONFIG` (a list of files, merged as kubectl does); else
/// `~/.kube/config` when it exists; else the in-cluster service account when
/// the pod has one (`KUBERNETES_SERVICE_HOST` set and the token mounted), as
/// the `--kubeconfig` help promises: a DaemonSet works without `--in-cluster`.
/// Ok(None): no configuration at all.
fn discover(opts: &crate::cli::Opts) -> anyhow::Result<Option<ConfigSource>> {
    use ::kube::config::Kubeconfig;
    if opts.in_cluster {
        return Ok(Some(ConfigSource::InCluster));
    }
    if let Some(path) = &opts.kubeconfig {
        let kc = Kubeconfig::read_from(path)
            .map_err(|e| anyhow::anyhow!("--kubeconfig {}: {e}", path.display()))?;
        return Ok(Some(ConfigSource::Kubeconfig(
            Box::new(kc),
            path.display().to_string(),
        )));
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let from = format!("$KUBECONFIG={}", list.to_string_lossy());
        return match Kubeconfig::from_env() {
            Ok(Some(kc)) => Ok(Some(ConfigSource::Kubeconfig(Box::new(kc), from))),
            Ok(None) => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{from}: {e}")),
        };
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        let path = Path::new(&home).join(".kube/config");
        if path.exists() {
            let kc = Kubeconfig::read_from(&path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            return Ok(Some(ConfigSource::Kubeconfig(
                Box::new(kc),
                path.display().to_string(),
            )));
        }
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && Path::new(SERVICE_ACCOUNT_TOKEN).exists()
    {
        return Ok(Some(ConfigSource::InCluster));
    }
    Ok(None)
}

/// The host name (this node's name when `--node-name`/`NODE_NAME` is unset,
/// as kubelet's default).
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the name is NUL-terminated
    // when it fits, and the last byte is kept 0.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// The pod object's metadata as kept here.
fn pod_meta(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<PodMeta> {
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
fn describe(e: &::kube::runtime::watcher::Error) -> String {
    use ::kube::runtime::watcher::Error as W;
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

/// The thread that watches this node's pods.
///
/// A `watcher` (list, then watch from the list's resourceVersion, with
/// `fieldSelector=spec.nodeName=<node>` and metadata-only requests) runs on a
/// current-thread tokio runtime of its own, so neither the HTTP server's
/// runtime nor the scheduler thread is involved. Every change of a pod's name,
/// namespace, labels or config hash publishes a new [`PodDirectory`] (which
/// wakes the resolver). On an error the last pods stay published, `/health`
/// shows the error, and after a backoff (0.8 s doubling to 30 s) a new list
/// and watch start; a complete list makes the status "ok" again.
pub struct KubeWatcher {
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: crossbeam_channel::Receiver<()>,
}

impl KubeWatcher {
    /// Start watching when a Kubernetes config is found; None (said once in
    /// the log) when there is none, or when it cannot be used (then /health
    /// says why).
    pub fn start(opts: &crate::cli::Opts, handle: Arc<PodMetaHandle>) -> Option<Self> {
        let source = match discover(opts) {
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
        let node = match opts.node_name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match hostname() {
                Some(h) => {
                    log::info!(
                        "kubernetes: no --node-name (or NODE_NAME); watching the pods of node \
                         {h:?}, the host name"
                    );
                    h
                }
                None => {
                    Self::unusable(
                        &handle,
                        "no --node-name (or NODE_NAME) and no host name".into(),
                    );
                    return None;
                }
            },
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
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let what = source.describe();
        let config = rt.block_on(async {
            match source {
                ConfigSource::Kubeconfig(kc, _) => ::kube::Config::from_custom_kubeconfig(
                    *kc,
                    &::kube::config::KubeConfigOptions::default(),
                )
                .await
                .map_err(anyhow::Error::from),
                ConfigSource::InCluster => ::kube::Config::incluster().map_err(anyhow::Error::from),
            }
        });
        let config = config.map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        let endpoint = config.cluster_url.to_string();
        // The client's request buffer is a task of this runtime.
        let client = {
            let _guard = rt.enter();
            ::kube::Client::try_from(config).map_err(|e| anyhow::anyhow!("{what}: {e}"))?
        };
        log::info!("kubernetes: watching the pods of node {node:?} at {endpoint} ({what})");
        handle.update_status(|s| s.endpoint = Some(endpoint));

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("kube-watch".into())
            .spawn(move || {
                rt.block_on(async {
                    let run = std::pin::pin!(watch_pods(client, node, handle));
                    futures_util::future::select(run, stop_rx).await;
                });
                // Nothing may hold the agent's shutdown (a DNS lookup in the
                // blocking pool, say).
                rt.shutdown_background();
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            thread: Some(thread),
            stop: Some(stop_tx),
            done: done_rx,
        })
    }

    /// Stop watching; returns within [`STOP_TIMEOUT`] (the thread is left to
    /// end on its own if it does not finish in time).
    pub fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.done.recv_timeout(STOP_TIMEOUT) {
            Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                log::warn!(
                    "kubernetes: the watcher did not stop within {STOP_TIMEOUT:?}; leaving it"
                );
            }
        }
    }
}

/// List and watch this node's pods until the runtime stops; never returns.
async fn watch_pods(client: ::kube::Client, node: String, handle: Arc<PodMetaHandle>) {
    use ::kube::core::PartialObjectMeta;
    use ::kube::runtime::utils::Backoff;
    use ::kube::runtime::watcher::{self, DefaultBackoff, Event};
    use futures_util::StreamExt;
    use k8s_openapi::api::core::v1::Pod;

    // Metadata-only requests: name, namespace, labels and annotations are all
    // that is needed, and much less than whole pods.
    let api: ::kube::Api<PartialObjectMeta<Pod>> = ::kube::Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut backoff = DefaultBackoff::default();
    let mut pods: HashMap<String, PodMeta> = HashMap::new();
    let publish = |pods: &HashMap<String, PodMeta>| {
        handle.publish(PodDirectory::from_pods(pods.values().cloned()));
    };
    loop {
        // A new watcher starts with a complete list: after an error the
        // status turns "ok" only once the pods are known to be current.
        let mut stream = std::pin::pin!(watcher::watcher(api.clone(), config.clone()));
        let mut listing: Option<HashMap<String, PodMeta>> = None;
        let error = loop {
            let event = match stream.next().await {
                Some(Ok(ev)) => ev,
                // 410 Gone: the resourceVersion is too old (compacted). The
                // watcher lists again by itself; routine, not a failure.
                Some(Err(watcher::Error::WatchError(s))) if s.code == 410 => {
                    log::debug!("kubernetes: watch expired ({}); listing again", s.message);
                    continue;
                }
                // The same answered to the watch request itself: start over.
                Some(Err(watcher::Error::WatchStartFailed(::kube::Error::Api(s))))
                    if s.code == 410 =>
                {
                    log::debug!("kubernetes: watch expired ({}); listing again", s.message);
                    break None;
                }
                Some(Err(e)) => break Some(describe(&e)),
                None => break Some("the watch stream ended".to_string()),
            };
            match event {
                Event::Init => listing = Some(HashMap::new()),
                Event::InitApply(obj) => {
                    if let (Some(l), Some(p)) = (listing.as_mut(), pod_meta(&obj.metadata)) {
                        l.insert(p.uid.clone(), p);
                    }
                }
                Event::InitDone => {
                    if let Some(l) = listing.take() {
                        pods = l;
                    }
                    let prev = handle.status();
                    if prev.status != "ok" {
                        if prev.failures > 0 {
                            log::info!(
                                "kubernetes: listed {} pods of node {node:?} again after {} failures",
                                pods.len(),
                                prev.failures
                            );
                        } else {
                            log::info!("kubernetes: listed {} pods of node {node:?}", pods.len());
                        }
                    }
                    handle.update_status(|s| {
                        s.status = "ok";
                        s.connected = true;
                        s.last_sync_at = Some(Utc::now());
                        s.last_error = None;
                        s.failures = 0;
                    });
                    backoff.reset();
                    publish(&pods);
                }
                Event::Apply(obj) => {
                    if let Some(p) = pod_meta(&obj.metadata) {
                        if pods.get(&p.uid) != Some(&p) {
                            log::debug!("kubernetes: pod {}/{} changed", p.namespace, p.name);
                            pods.insert(p.uid.clone(), p);
                            publish(&pods);
                        }
                    }
                }
                Event::Delete(obj) => {
                    if let Some(p) = pod_meta(&obj.metadata) {
                        if pods.remove(&p.uid).is_some() {
                            log::debug!("kubernetes: pod {}/{} deleted", p.namespace, p.name);
                            publish(&pods);
                        }
                    }
                }
            }
        };
        let Some(error) = error else {
            // Not at full speed should a server answer 410 again and again.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
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
        let delay = backoff.next().unwrap_or(std::time::Duration::from_secs(30));
        tokio::time::sleep(delay).await;
    }
}
