//! `kubernetes_disconnected`: the pod metadata comes from the Kubernetes API
//! and the watcher cannot reach it, so pod labels may be out of date.

use super::labels;
use crate::alerts::config::ForRule;
use crate::alerts::Condition;
use crate::podmeta::{KubeStatus, MetaSource};

pub const KUBERNETES_DISCONNECTED: &str = "kubernetes_disconnected";

pub fn disconnected(rule: &ForRule, kube: &KubeStatus) -> Option<Condition> {
    let holds = kube.source == MetaSource::Kubernetes && !kube.connected;
    if !(rule.enabled && holds) {
        return None;
    }
    let endpoint = kube.endpoint.clone().unwrap_or_default();
    Some(Condition {
        name: KUBERNETES_DISCONNECTED,
        severity: rule.severity,
        labels: labels([("endpoint", endpoint.clone())]),
        message: format!(
            "not connected to the Kubernetes API {} ({}, {} failed attempts; last \
             error: {}); pod labels are the last known ones",
            if endpoint.is_empty() {
                "(none)"
            } else {
                &endpoint
            },
            kube.status,
            kube.failures,
            kube.last_error.as_deref().unwrap_or("none")
        ),
        for_secs: rule.for_secs,
        value: None,
    })
}
