//! The sources of pod metadata: the Kubernetes API (a watch over this node's
//! pods) or a `--pods-file`; both publish into a [`PodMetaHandle`]. With the
//! API, cluster strategies (`SchedulingStrategy` resources) come from it too.

mod config;
pub mod crd;
mod pods_file;
mod strategies;
mod strategy_status;
mod watch_thread;
mod watcher;

use std::path::PathBuf;
use std::sync::Arc;

pub use pods_file::PodsFile;
pub use strategies::StrategyWatcher;
pub use strategy_status::field_manager;
pub use watcher::KubeWatcher;

use crate::podmeta::PodMetaHandle;

/// The annotation kubelet puts on static pods (and their mirror pods): the
/// hash that names the static pod's cgroup instead of the API object's UID.
const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";

/// Where pod metadata comes from, as configured on the command line.
#[derive(Debug, Clone, Default)]
pub struct KubeConfig {
    /// Read pods from this file instead of the Kubernetes API.
    pub pods_file: Option<PathBuf>,
    /// A kubeconfig to use instead of the usual search.
    pub kubeconfig: Option<PathBuf>,
    /// Use the pod's service account.
    pub in_cluster: bool,
    /// The node whose pods are watched (else the host name).
    pub node_name: Option<String>,
}

/// Start the configured source: the pods file (read once now; poll it to
/// follow changes) or, without one, the Kubernetes watcher when a cluster
/// configuration is found.
pub fn start(
    config: &KubeConfig,
    handle: &Arc<PodMetaHandle>,
) -> (Option<PodsFile>, Option<KubeWatcher>) {
    match &config.pods_file {
        Some(path) => (Some(PodsFile::open(path, handle)), None),
        None => (None, KubeWatcher::start(config, handle.clone())),
    }
}
