//! The `SchedulingStrategy` custom resource: a strategy kept in the
//! Kubernetes API, applied by every node's agent to the pods of its own
//! namespace. The CRD (`scx_pilot crd`, `k8s/crd.yaml`) is generated from
//! these types, so the schema the API server enforces and the type the agent
//! reads cannot drift apart.

use std::collections::BTreeMap;

use kube::core::{Expression, Selector};
use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of the resource.
pub const GROUP: &str = "scx-pilot.io";
/// Most nodes one resource's status lists (`maxItems` of `status.nodes`):
/// beyond it the API server refuses a node's entry, which that agent counts
/// in /health as a failed status patch.
pub const MAX_STATUS_NODES: usize = 1000;
/// Most PIDs one node lists in the status (the count is always exact).
pub const MAX_STATUS_PIDS: usize = 32;

/// A slice with its unit, from 50us to 1s: a whole number of `ns`, `us`,
/// `ms` or `s`. The pattern spells the range out so that the API server
/// refuses an out-of-range slice before any agent sees it.
pub const EXECUTION_TIME_PATTERN: &str = "^(([5-9][0-9]{4}|[1-9][0-9]{5,8}|1000000000)ns\
|([5-9][0-9]|[1-9][0-9]{2,5}|1000000)us|([1-9][0-9]{0,2}|1000)ms|1s)$";

/// What a cluster strategy asks for: the same as a locally posted strategy,
/// with the slice written with a unit and a standard Kubernetes pod
/// selector. It applies only to pods in the resource's own namespace.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "scx-pilot.io",
    version = "v1alpha1",
    kind = "SchedulingStrategy",
    plural = "schedulingstrategies",
    singular = "schedulingstrategy",
    shortname = "schedstrat",
    namespaced,
    status = "SchedulingStrategyStatus",
    doc = "A scheduling strategy that every scx_pilot agent applies to the matching pods of this namespace on its node",
    printcolumn = r#"{"name":"Priority","type":"boolean","jsonPath":".spec.priority"}"#,
    printcolumn = r#"{"name":"Slice","type":"string","jsonPath":".spec.executionTime"}"#,
    printcolumn = r#"{"name":"Nodes","type":"string","jsonPath":".status.nodes[*].node",
        "description":"The nodes that report applying it"}"#,
    printcolumn = r#"{"name":"Matched-Pods","type":"string","jsonPath":".status.nodes[*].matchedPods",
        "description":"Pods matched on each of those nodes, in the same order"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingStrategySpec {
    /// Dispatch the matched tasks ahead of normal tasks (they may preempt them).
    #[serde(default)]
    pub priority: bool,
    /// Time slice with its unit, 50us..1s: e.g. "20ms", "500us", "1s".
    #[schemars(regex(pattern = EXECUTION_TIME_PATTERN), length(max = 13))]
    pub execution_time: String,
    /// The pods (of this namespace) whose processes it covers; an empty
    /// selector matches every pod of the namespace.
    pub pod_selector: PodSelector,
    /// A regular expression (Rust regex syntax, unanchored) the command name
    /// (comm, at most 15 bytes) must match too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub command_regex: Option<String>,
    /// Only the nodes it names apply it, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<NodeSelector>,
}

/// A standard label selector, bounded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSelector {
    /// Labels that must all have these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16), inner(length(max = 63)))]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements that must all hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub match_expressions: Vec<SelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectorRequirement {
    #[schemars(length(min = 1, max = 317))]
    pub key: String,
    pub operator: SelectorOperator,
    /// Non-empty for In and NotIn, empty for Exists and DoesNotExist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 63)))]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// The selector as kube-core evaluates it. Built from our typed operator
/// rather than through kube's `TryFrom<LabelSelector>`, which accepts what the
/// Kubernetes API refuses (`In` with no values, `Exists` with values): that
/// check stays with the strategy's validation, which says what is wrong.
impl From<&PodSelector> for Selector {
    fn from(sel: &PodSelector) -> Self {
        let mut selector: Selector = sel.match_labels.clone().into_iter().collect();
        selector.extend(sel.match_expressions.iter().map(|e| {
            let key = e.key.clone();
            let values = || e.values.iter().cloned().collect();
            match e.operator {
                SelectorOperator::In => Expression::In(key, values()),
                SelectorOperator::NotIn => Expression::NotIn(key, values()),
                SelectorOperator::Exists => Expression::Exists(key),
                SelectorOperator::DoesNotExist => Expression::DoesNotExist(key),
            }
        }));
        selector
    }
}

/// Which nodes apply the strategy (all when unset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    /// Node names; a node not listed ignores the strategy.
    #[schemars(length(min = 1, max = 256), inner(length(min = 1, max = 253)))]
    pub node_names: Vec<String>,
}

/// What the nodes applied. Each agent writes only its own entry of `nodes`
/// (server-side apply, one field manager per node), so no field has several
/// writers and no total is kept: the printer columns list the entries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingStrategyStatus {
    /// One entry per node, keyed by node name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = MAX_STATUS_NODES),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["node"])
    )]
    pub nodes: Vec<NodeStatus>,
}

/// What one node applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    #[schemars(length(min = 1, max = 253))]
    pub node: String,
    /// Pods of the namespace on this node the strategy covers processes of.
    pub matched_pods: u32,
    /// PIDs it covers on this node.
    pub pid_count: u32,
    /// The first PIDs it covers (at most 32).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_STATUS_PIDS))]
    pub pids: Vec<u32>,
    /// When this node last applied it (RFC 3339).
    #[schemars(length(max = 64))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_time: Option<String>,
    /// The resource's metadata.generation this entry is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Applied`: True, or False with the reason it cannot apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub conditions: Vec<NodeCondition>,
}

/// A condition of one node's entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeCondition {
    #[schemars(length(max = 64))]
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    #[schemars(length(max = 8))]
    pub status: String,
    #[schemars(length(max = 64))]
    pub reason: String,
    #[schemars(length(max = 1024))]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub last_transition_time: Option<String>,
}

/// The CRD as YAML: what `scx_pilot crd` prints and `k8s/crd.yaml` holds.
pub fn crd_yaml() -> anyhow::Result<String> {
    let yaml = serde_saphyr::to_string(&SchedulingStrategy::crd())?;
    Ok(format!(
        "# Generated by `scx_pilot crd`; do not edit (a test keeps it equal).\n{yaml}"
    ))
}
