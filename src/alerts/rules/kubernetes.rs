//! `kubernetes_disconnected`: the pod metadata or the cluster strategies come
//! from the Kubernetes API and a watcher cannot reach it, so pod labels or
//! cluster strategies may be out of date (the last known ones stay applied).

use super::labels;
use crate::alerts::config::ForRule;
use crate::alerts::Condition;
use crate::podmeta::{KubeStatus, MetaSource};
use crate::strategy::ClusterStatus;

pub const KUBERNETES_DISCONNECTED: &str = "kubernetes_disconnected";

pub fn disconnected(
    rule: &ForRule,
    kube: &KubeStatus,
    cluster: &ClusterStatus,
) -> Option<Condition> {
    let pods = kube.source == MetaSource::Kubernetes && !kube.connected;
    if !(rule.enabled && (pods || cluster.disconnected())) {
        return None;
    }
    let endpoint = kube.endpoint.clone().unwrap_or_default();
    let mut parts = Vec::new();
    if pods {
        parts.push(format!(
            "pods: {}, {} failed attempts, last error: {}; pod labels are the last known ones",
            kube.status,
            kube.failures,
            kube.last_error.as_deref().unwrap_or("none")
        ));
    }
    if cluster.disconnected() {
        parts.push(format!(
            "cluster strategies: {}, {} failed attempts, last error: {}; the {} cluster \
             strategies last known stay applied",
            cluster.status,
            cluster.failures,
            cluster.last_error.as_deref().unwrap_or("none"),
            cluster.strategies
        ));
    }
    Some(Condition {
        name: KUBERNETES_DISCONNECTED,
        severity: rule.severity,
        labels: labels([("endpoint", endpoint.clone())]),
        message: format!(
            "not connected to the Kubernetes API {} ({})",
            if endpoint.is_empty() {
                "(none)"
            } else {
                &endpoint
            },
            parts.join("; ")
        ),
        for_secs: rule.for_secs,
        value: None,
    })
}
