//! Where the Kubernetes client configuration and this node's name come from.

use std::path::Path;

use anyhow::anyhow;

use super::KubeConfig;

/// Where the service account of a pod is mounted.
const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Where the Kubernetes client configuration was found.
pub(super) enum ConfigSource {
    /// A kubeconfig (already read and merged), and where it came from.
    Kubeconfig(Box<::kube::config::Kubeconfig>, String),
    /// The pod's service account (`KUBERNETES_SERVICE_HOST` and the token).
    InCluster,
}

impl ConfigSource {
    pub(super) fn describe(&self) -> String {
        match self {
            Self::Kubeconfig(_, from) => format!("kubeconfig {from}"),
            Self::InCluster => "in-cluster service account".into(),
        }
    }

    /// The client configuration (API server URL, credentials, TLS); async
    /// because a kubeconfig may name a credential plugin to run.
    pub(super) async fn client_config(self) -> anyhow::Result<::kube::Config> {
        let what = self.describe();
        let config = match self {
            Self::Kubeconfig(kc, _) => ::kube::Config::from_custom_kubeconfig(
                *kc,
                &::kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(anyhow::Error::from),
            Self::InCluster => ::kube::Config::incluster().map_err(anyhow::Error::from),
        };
        config.map_err(|e| anyhow!("{what}: {e}"))
    }
}

/// Find the configuration: `--in-cluster`; else `--kubeconfig`; else
/// `$KUBECONFIG` (a list of files, merged as kubectl does); else
/// `~/.kube/config` when it exists; else the in-cluster service account when
/// the pod has one (`KUBERNETES_SERVICE_HOST` set and the token mounted), as
/// the `--kubeconfig` help promises: a DaemonSet works without `--in-cluster`.
/// Ok(None): no configuration at all.
pub(super) fn discover(config: &KubeConfig) -> anyhow::Result<Option<ConfigSource>> {
    use ::kube::config::Kubeconfig;
    if config.in_cluster {
        return Ok(Some(ConfigSource::InCluster));
    }
    if let Some(path) = &config.kubeconfig {
        let kc = Kubeconfig::read_from(path)
            .map_err(|e| anyhow!("--kubeconfig {}: {e}", path.display()))?;
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
            Err(e) => Err(anyhow!("{from}: {e}")),
        };
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        let path = Path::new(&home).join(".kube/config");
        if path.exists() {
            let kc =
                Kubeconfig::read_from(&path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
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

/// The node whose pods are watched: `--node-name` (or `NODE_NAME`), else the
/// host name as kubelet's default; None when there is neither.
pub(super) fn node_name(config: &KubeConfig) -> Option<String> {
    match config.node_name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => Some(n.to_string()),
        _ => {
            let h = kubelet_node_name(&crate::host_name::get()?);
            log::info!(
                "kubernetes: no --node-name (or NODE_NAME); watching the pods of node \
                 {h:?}, the host name"
            );
            Some(h)
        }
    }
}

/// The node name kubelet registers without `--hostname-override`: the host
/// name in lower case (a host called `Worker-1` is node `worker-1`, and a
/// field selector with the host name as written matches none of its pods).
fn kubelet_node_name(host: &str) -> String {
    host.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_node_name_is_the_host_name_as_kubelet_registers_it() {
        assert_eq!(super::kubelet_node_name("Worker-1"), "worker-1");
        assert_eq!(super::kubelet_node_name(" node-a\n"), "node-a");
    }
}
