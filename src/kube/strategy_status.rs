//! Reporting what this node applied into each `SchedulingStrategy`'s status:
//! one entry of `status.nodes`, keyed by node name, written by server-side
//! apply with a field manager of this node's own, so that nodes never
//! overwrite each other's entries (the API server merges the list by key).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ::kube::api::{Patch, PatchParams};
use chrono::Utc;
use serde_json::json;

use super::crd::{NodeCondition, NodeStatus, SchedulingStrategy, MAX_STATUS_PIDS};
use crate::state::AgentState;
use crate::strategy::cluster::{ClusterResolution, ClusterStrategy};
use crate::timefmt::rfc3339;

/// How often the resolved set is compared with what was reported.
const REPORT_INTERVAL: Duration = Duration::from_millis(500);
/// The longest field manager the API server takes.
const MAX_FIELD_MANAGER_LEN: usize = 128;
/// The condition type of a node's entry.
const APPLIED: &str = "Applied";

/// The longest condition message written (bytes).
const MAX_MESSAGE_LEN: usize = 1024;

/// The field manager of `node`'s entries.
pub fn field_manager(node: &str) -> String {
    let mut m = format!("scx-pilot-node-{node}");
    truncate_on_char(&mut m, MAX_FIELD_MANAGER_LEN);
    m
}

/// `s` cut to at most `max` bytes, on a character boundary: a message quotes
/// what users wrote (a regex, a label key), and `String::truncate` panics
/// inside a multi-byte character.
fn truncate_on_char(s: &mut String, max: usize) {
    if s.len() > max {
        let end = (0..=max)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.truncate(end);
    }
}

/// What was last reported for one resource.
struct Reported {
    namespace: String,
    name: String,
    entry: NodeStatus,
}

/// Report every change of what this node applies, until the runtime stops.
/// A failed patch is retried at the next round.
pub(super) async fn report_status(client: ::kube::Client, node: String, state: Arc<AgentState>) {
    let params = PatchParams::apply(&field_manager(&node)).force();
    let mut reported: BTreeMap<String, Reported> = BTreeMap::new();
    let mut tick = tokio::time::interval(REPORT_INTERVAL);
    loop {
        tick.tick().await;
        let set = state.cluster.set();
        let resolved = state.lock_strategies().resolved.cluster.clone();
        let blocked = scheduler_problem(&state);
        let applied_here: BTreeSet<String> = set.strategies.iter().map(|s| s.source()).collect();
        let mut current = BTreeMap::new();
        for s in &set.strategies {
            let Some(r) = resolved
                .iter()
                .find(|r| r.source == s.source() && r.generation == s.generation)
            else {
                // Not resolved yet at this generation: the entry stays as it is.
                continue;
            };
            let mut entry = entry(&node, s, r, blocked.as_ref());
            let prev = reported.get(&s.source()).map(|p| &p.entry);
            if prev.is_some_and(|p| same(p, &entry)) {
                current.insert(s.source(), reported.remove(&s.source()).unwrap());
                continue;
            }
            keep_transition_time(&mut entry, prev);
            let body = apply_body(&s.name, &s.namespace, Some(&entry));
            if patch(&client, &params, &s.namespace, &s.name, body, &state).await {
                current.insert(
                    s.source(),
                    Reported {
                        namespace: s.namespace.clone(),
                        name: s.name.clone(),
                        entry,
                    },
                );
            }
        }
        // Resources no longer applied here (deleted, or for other nodes now):
        // drop this node's entry; a deleted resource answers 404, which is fine.
        // One still applied here whose update failed or waits for resolution
        // keeps its entry until the update goes through.
        for (source, gone) in std::mem::take(&mut reported) {
            if current.contains_key(&source) {
                continue;
            }
            if !no_longer_applied(&source, &applied_here) {
                current.insert(source, gone);
                continue;
            }
            let body = apply_body(&gone.name, &gone.namespace, None);
            if !patch(&client, &params, &gone.namespace, &gone.name, body, &state).await {
                current.insert(source, gone);
            }
        }
        reported = current;
    }
}

/// Whether this node's entry for the resource `source` is to be removed: only
/// when the resource is no longer applied here, never because this round did
/// not update it.
fn no_longer_applied(source: &str, applied_here: &BTreeSet<String>) -> bool {
    !applied_here.contains(source)
}

/// Why nothing this node applies takes effect, if so.
fn scheduler_problem(state: &AgentState) -> Option<(&'static str, String)> {
    let st = state.status.get();
    if !state.has_scheduler() {
        return Some((
            "NoScheduler",
            "this agent runs without a scheduler (--api-only)".into(),
        ));
    }
    if !st.attached {
        let why = st
            .last_exit
            .clone()
            .unwrap_or_else(|| "not attached yet".into());
        return Some(("SchedExtNotAttached", format!("sched_ext scheduler: {why}")));
    }
    None
}

/// This node's entry for one resource.
fn entry(
    node: &str,
    s: &ClusterStrategy,
    r: &ClusterResolution,
    blocked: Option<&(&'static str, String)>,
) -> NodeStatus {
    let (status, reason, message) = match (&s.invalid, blocked) {
        (Some(why), _) => ("False", "InvalidSpec", why.clone()),
        (None, Some((reason, why))) => ("False", *reason, why.clone()),
        (None, None) => match &r.note {
            Some(note) if r.pids.is_empty() => ("True", "NoMatchingProcesses", note.clone()),
            Some(note) => ("True", "Applied", note.clone()),
            None => ("True", "Applied", format!("{} PIDs", r.pids.len())),
        },
    };
    let mut message = message;
    truncate_on_char(&mut message, MAX_MESSAGE_LEN);
    let now = rfc3339(Utc::now());
    NodeStatus {
        node: node.to_string(),
        matched_pods: r.matched_pods as u32,
        pid_count: r.pids.len() as u32,
        pids: r.pids.iter().take(MAX_STATUS_PIDS).copied().collect(),
        last_applied_time: Some(now.clone()),
        observed_generation: s.generation,
        conditions: vec![NodeCondition {
            type_: APPLIED.into(),
            status: status.into(),
            reason: reason.into(),
            message,
            last_transition_time: Some(now),
        }],
    }
}

/// Equal but for the times.
fn same(a: &NodeStatus, b: &NodeStatus) -> bool {
    let strip = |e: &NodeStatus| {
        let mut e = e.clone();
        e.last_applied_time = None;
        for c in &mut e.conditions {
            c.last_transition_time = None;
        }
        e
    };
    strip(a) == strip(b)
}

/// A condition whose status did not change keeps its transition time.
fn keep_transition_time(entry: &mut NodeStatus, prev: Option<&NodeStatus>) {
    let Some(prev) = prev else { return };
    for c in &mut entry.conditions {
        if let Some(p) = prev
            .conditions
            .iter()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
        {
            c.last_transition_time = p.last_transition_time.clone();
        }
    }
}

/// The server-side apply body: this node's entry only (none: remove it).
fn apply_body(name: &str, namespace: &str, entry: Option<&NodeStatus>) -> serde_json::Value {
    json!({
        "apiVersion": format!("{}/v1alpha1", super::crd::GROUP),
        "kind": "SchedulingStrategy",
        "metadata": {"name": name, "namespace": namespace},
        "status": {"nodes": entry.into_iter().collect::<Vec<_>>()},
    })
}

/// Send one status patch; false (counted, logged once per distinct error)
/// when it failed.
async fn patch(
    client: &::kube::Client,
    params: &PatchParams,
    namespace: &str,
    name: &str,
    body: serde_json::Value,
    state: &AgentState,
) -> bool {
    let api: ::kube::Api<SchedulingStrategy> = ::kube::Api::namespaced(client.clone(), namespace);
    match api.patch_status(name, params, &Patch::Apply(body)).await {
        Ok(_) => {
            state.cluster.update_status(|s| s.status_patches += 1);
            true
        }
        Err(::kube::Error::Api(s)) if s.code == 404 => true,
        Err(e) => {
            let msg = format!("status of {namespace}/{name}: {e}");
            let prev = state.cluster.status().last_status_error;
            if prev.as_deref() != Some(msg.as_str()) {
                log::warn!("cluster strategies: {msg}; retrying");
            }
            state.cluster.update_status(|s| {
                s.status_patch_errors += 1;
                s.last_status_error = Some(msg);
            });
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        // 33 bytes, then four-byte characters: byte 1024 falls inside one.
        let mut m = format!(
            "commandRegex does not compile: (({}",
            "\u{1F600}".repeat(300)
        );
        truncate_on_char(&mut m, MAX_MESSAGE_LEN);
        assert_eq!(m.len(), 33 + 4 * 247);
        assert!(m.ends_with('\u{1F600}'));
        let mut short = "ok".to_string();
        truncate_on_char(&mut short, MAX_MESSAGE_LEN);
        assert_eq!(short, "ok");
        let manager = field_manager(&"\u{e9}".repeat(200));
        assert!(manager.len() <= MAX_FIELD_MANAGER_LEN);
    }

    #[test]
    fn only_a_resource_no_longer_applied_loses_its_entry() {
        let applied: BTreeSet<String> = ["5g/upf".to_string()].into();
        assert!(!no_longer_applied("5g/upf", &applied));
        assert!(no_longer_applied("5g/gone", &applied));
    }
}
