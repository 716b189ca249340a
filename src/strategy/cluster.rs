//! Cluster strategies: `SchedulingStrategy` resources as this agent applies
//! them, and how they combine with the locally posted set.
//!
//! Precedence: the local set (posted to this agent's API, or `--strategy`
//! flags) resolves first, with its own rules; cluster strategies then cover
//! only the PIDs no local strategy took. Among cluster strategies, one with a
//! `commandRegex` beats one with a pod selector only, and among equals the
//! first by `namespace/name` wins. A node's operator can thus always
//! override the cluster for a process, and the cluster never needs to know
//! what was posted locally. A cluster strategy only ever matches pods of its
//! own namespace.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use kube::core::{Selector, SelectorExt};
use regex::Regex;
use serde::Serialize;
use utoipa::ToSchema;

use super::model::{compile_regex, regex_limit, PidStrategy, MAX_SLICE_NS, MIN_SLICE_NS};
use super::resolve::{ResolveInput, Resolved};
use crate::kube::crd::{NodeSelector, PodSelector, SchedulingStrategy, SelectorOperator};

/// One resource as this agent holds it.
#[derive(Debug, Clone)]
pub struct ClusterStrategy {
    pub namespace: String,
    pub name: String,
    /// The resource's metadata.generation.
    pub generation: Option<i64>,
    pub priority: bool,
    /// The slice as written (e.g. "20ms").
    pub execution_time: String,
    pub slice_ns: u64,
    pub pod_selector: PodSelector,
    pub command_regex: Option<String>,
    pub node_selector: Option<NodeSelector>,
    regex: Option<Regex>,
    /// `pod_selector`, ready to match (built once, matched for every pod).
    selector: Selector,
    /// Why it cannot be applied; it then covers nothing.
    pub invalid: Option<String>,
}

impl ClusterStrategy {
    /// The resource as a strategy; a spec the agent cannot apply (a regex that
    /// does not compile, say, which the schema cannot tell) is kept with the
    /// reason, so that its status says so.
    pub fn from_resource(r: &SchedulingStrategy) -> Self {
        let spec = &r.spec;
        let mut invalid = None;
        let slice_ns = parse_execution_time(&spec.execution_time).unwrap_or_else(|e| {
            invalid = Some(e);
            0
        });
        // Each resource is compiled alone, within one regex's share of a set's
        // budget (the CRD bounds the regex length).
        let regex = match spec
            .command_regex
            .as_deref()
            .map(|re| compile_regex(re, regex_limit(1)))
        {
            Some(Ok(re)) => Some(re),
            Some(Err(e)) => {
                invalid.get_or_insert(format!("commandRegex does not compile: {e}"));
                None
            }
            None => None,
        };
        if let Err(e) = check_selector(&spec.pod_selector) {
            invalid.get_or_insert(e);
        }
        Self {
            namespace: r.metadata.namespace.clone().unwrap_or_default(),
            name: r.metadata.name.clone().unwrap_or_default(),
            generation: r.metadata.generation,
            priority: spec.priority,
            execution_time: spec.execution_time.clone(),
            slice_ns,
            pod_selector: spec.pod_selector.clone(),
            command_regex: spec.command_regex.clone(),
            node_selector: spec.node_selector.clone(),
            regex,
            selector: Selector::from(&spec.pod_selector),
            invalid,
        }
    }

    /// `namespace/name`, as `GET .../strategies/config` shows it.
    pub fn source(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether `node` is one the strategy is for.
    pub fn selects_node(&self, node: &str) -> bool {
        self.node_selector
            .as_ref()
            .is_none_or(|s| s.node_names.iter().any(|n| n == node))
    }

    /// The spec as written, for telling changes apart where the stub or an
    /// old API server gives no generation.
    fn spec_key(&self) -> String {
        format!(
            "{} {} {:?} {:?} {:?}",
            self.priority,
            self.execution_time,
            self.pod_selector,
            self.command_regex,
            self.node_selector
        )
    }

    fn specificity(&self) -> u8 {
        if self.command_regex.is_some() {
            2
        } else {
            1
        }
    }
}

/// A slice with its unit (`ns`, `us`, `ms`, `s`) in nanoseconds, within the
/// bounds of every strategy.
pub fn parse_execution_time(s: &str) -> Result<u64, String> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    let scale: u64 = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => {
            return Err(format!(
                "executionTime {s:?}: the unit must be ns, us, ms or s"
            ))
        }
    };
    // Written as the CRD's pattern allows: no sign, no leading zero.
    let plain = digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    let ns = Some(digits)
        .filter(|_| plain)
        .and_then(|d| d.parse::<u64>().ok())
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("executionTime {s:?} is not a whole number with a unit"))?;
    if !(MIN_SLICE_NS..=MAX_SLICE_NS).contains(&ns) {
        return Err(format!(
            "executionTime {s:?} is out of range 50us..1s ({MIN_SLICE_NS}..={MAX_SLICE_NS} ns)"
        ));
    }
    Ok(ns)
}

fn check_selector(sel: &PodSelector) -> Result<(), String> {
    for e in &sel.match_expressions {
        let needs_values = matches!(e.operator, SelectorOperator::In | SelectorOperator::NotIn);
        if needs_values == e.values.is_empty() {
            return Err(format!(
                "podSelector: {:?} {:?} {}",
                e.key,
                e.operator,
                if needs_values {
                    "needs values"
                } else {
                    "takes no values"
                }
            ));
        }
    }
    Ok(())
}

/// The cluster strategies this node applies, sorted by `namespace/name`.
#[derive(Debug, Clone, Default)]
pub struct ClusterSet {
    pub strategies: Vec<ClusterStrategy>,
}

impl ClusterSet {
    pub fn new(mut strategies: Vec<ClusterStrategy>) -> Self {
        strategies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Self { strategies }
    }

    pub fn is_empty(&self) -> bool {
        self.strategies.is_empty()
    }

    /// Whether both sets hold the same resources at the same generations
    /// (a status update does not change what applies).
    pub fn same_specs(&self, other: &ClusterSet) -> bool {
        let key = |s: &ClusterStrategy| (s.source(), s.generation, s.spec_key());
        self.strategies.len() == other.strategies.len()
            && self
                .strategies
                .iter()
                .zip(&other.strategies)
                .all(|(a, b)| key(a) == key(b))
    }
}

/// How one cluster strategy resolved on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ClusterResolution {
    /// `namespace/name`.
    pub source: String,
    /// The resource's metadata.generation this is about.
    #[serde(skip)]
    pub generation: Option<i64>,
    /// PIDs it covers (sorted).
    pub pids: Vec<u32>,
    /// Pods whose processes it covers.
    pub matched_pods: usize,
    /// Why it covers nothing (or less than it matches), or cannot apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Give the PIDs the local set left to the cluster strategies (see the module
/// documentation for the order), and record what each one covers.
pub fn resolve_into(set: &ClusterSet, input: &ResolveInput, resolved: &mut Resolved) {
    let mut out: Vec<ClusterResolution> = set
        .strategies
        .iter()
        .map(|s| ClusterResolution {
            source: s.source(),
            generation: s.generation,
            note: s.invalid.clone(),
            ..Default::default()
        })
        .collect();
    let by_pod = processes_by_pod(input);
    let mut order: Vec<usize> = (0..set.strategies.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(set.strategies[i].specificity()));
    let mut added = false;
    for i in order {
        let s = &set.strategies[i];
        if s.invalid.is_some() {
            continue;
        }
        let (Some(by_pod), Some(pods)) = (&by_pod, input.pods) else {
            out[i].note = Some(
                "pod labels or processes are not available yet (no pod list or no scan)".into(),
            );
            continue;
        };
        let value = PidStrategy {
            slice_ns: s.slice_ns,
            priority: s.priority,
        };
        let mut matched_pods = HashSet::new();
        let mut shadowed = 0usize;
        for (uid, procs) in by_pod {
            let Some(meta) = pods.get(uid) else { continue };
            if meta.namespace != s.namespace || !s.selector.matches(&meta.labels) {
                continue;
            }
            for &(pid, command) in procs {
                if s.regex.as_ref().is_some_and(|re| !re.is_match(command)) {
                    continue;
                }
                matched_pods.insert(uid);
                match resolved.desired.entry(pid) {
                    Entry::Occupied(_) => shadowed += 1,
                    Entry::Vacant(slot) => {
                        slot.insert(value);
                        out[i].pids.push(pid);
                        added = true;
                    }
                }
            }
        }
        let r = &mut out[i];
        r.pids.sort_unstable();
        r.matched_pods = matched_pods.len();
        r.note = if shadowed > 0 {
            Some(format!(
                "{shadowed} matching PIDs are covered by a local strategy or a more specific \
                 or earlier cluster strategy"
            ))
        } else if matched_pods.is_empty() {
            Some(format!(
                "no process of a matching pod in namespace {} on this node",
                s.namespace
            ))
        } else {
            None
        };
    }
    if added {
        resolved.list = super::resolve::listing(&resolved.desired);
    }
    resolved.cluster = out;
}

/// PIDs (and commands) that may carry a strategy, by the UID of their pod;
/// None without a scan.
fn processes_by_pod<'a>(input: &ResolveInput<'a>) -> Option<HashMap<&'a str, Vec<(u32, &'a str)>>> {
    let snapshot = input.snapshot?;
    let mut by_pod: HashMap<&str, Vec<(u32, &str)>> = HashMap::new();
    for p in &snapshot.processes {
        if p.kernel_thread || p.pid <= 1 || p.pid == input.agent_pid {
            continue;
        }
        if let Some(pod) = &p.pod {
            by_pod
                .entry(pod.pod_uid.as_str())
                .or_default()
                .push((p.pid, p.command.as_str()));
        }
    }
    Some(by_pod)
}

/// A cluster strategy as `GET .../strategies/config` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClusterStrategyView {
    /// `namespace/name` of the SchedulingStrategy resource.
    pub source: String,
    pub priority: bool,
    /// As written in the resource, e.g. "20ms".
    pub execution_time: String,
    pub slice_ns: u64,
    #[schema(value_type = Object)]
    pub pod_selector: PodSelector,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_regex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub node_selector: Option<NodeSelector>,
    /// Why it cannot be applied (it covers nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

impl From<&ClusterStrategy> for ClusterStrategyView {
    fn from(s: &ClusterStrategy) -> Self {
        Self {
            source: s.source(),
            priority: s.priority,
            execution_time: s.execution_time.clone(),
            slice_ns: s.slice_ns,
            pod_selector: s.pod_selector.clone(),
            command_regex: s.command_regex.clone(),
            node_selector: s.node_selector.clone(),
            invalid: s.invalid.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::kube::crd::{SelectorRequirement, EXECUTION_TIME_PATTERN};

    #[test]
    fn execution_time_units_and_bounds() {
        assert_eq!(parse_execution_time("20ms"), Ok(20_000_000));
        assert_eq!(parse_execution_time("50us"), Ok(50_000));
        assert_eq!(parse_execution_time("1s"), Ok(1_000_000_000));
        assert_eq!(parse_execution_time("75000ns"), Ok(75_000));
        for bad in ["49us", "2s", "1001ms", "20", "20m", "ms", "-5ms", "1.5ms"] {
            assert!(parse_execution_time(bad).is_err(), "{bad}");
        }
    }

    /// The CRD's pattern and the agent's parser accept exactly the same slices.
    #[test]
    fn the_schema_pattern_agrees_with_the_parser() {
        let re = Regex::new(EXECUTION_TIME_PATTERN).unwrap();
        let mut samples: Vec<String> = Vec::new();
        for n in [
            0u64, 1, 5, 9, 10, 49, 50, 51, 99, 100, 999, 1000, 1001, 49_999, 50_000,
        ]
        .into_iter()
        .chain([
            999_999,
            1_000_000,
            1_000_001,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
        ]) {
            for unit in ["ns", "us", "ms", "s"] {
                samples.push(format!("{n}{unit}"));
            }
        }
        samples.extend(["01ms".into(), "020ms".into(), "1 ms".into()]);
        for s in samples {
            assert_eq!(re.is_match(&s), parse_execution_time(&s).is_ok(), "{s}");
        }
    }

    #[test]
    fn selectors_follow_kubernetes_semantics() {
        let labels: BTreeMap<String, String> = [("nf".to_string(), "upf".to_string())]
            .into_iter()
            .collect();
        let req = |key: &str, operator, values: &[&str]| SelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let sel = |e: Vec<SelectorRequirement>| PodSelector {
            match_labels: BTreeMap::new(),
            match_expressions: e,
        };
        let selector_matches = |sel: &PodSelector, labels: &BTreeMap<String, String>| {
            Selector::from(sel).matches(labels)
        };
        use SelectorOperator::*;
        assert!(selector_matches(&PodSelector::default(), &labels));
        assert!(selector_matches(
            &sel(vec![req("nf", In, &["upf", "smf"])]),
            &labels
        ));
        assert!(!selector_matches(
            &sel(vec![req("nf", NotIn, &["upf"])]),
            &labels
        ));
        assert!(selector_matches(
            &sel(vec![req("x", NotIn, &["upf"])]),
            &labels
        ));
        assert!(selector_matches(
            &sel(vec![req("nf", Exists, &[])]),
            &labels
        ));
        assert!(!selector_matches(
            &sel(vec![req("nf", DoesNotExist, &[])]),
            &labels
        ));
        let labelled = |k: &str, v: &str, e| PodSelector {
            match_labels: [(k.to_string(), v.to_string())].into(),
            match_expressions: e,
        };
        assert!(selector_matches(
            &labelled("nf", "upf", vec![req("x", DoesNotExist, &[])]),
            &labels
        ));
        assert!(!selector_matches(&labelled("nf", "smf", vec![]), &labels));
        assert!(!selector_matches(
            &labelled("nf", "upf", vec![req("nf", NotIn, &["upf"])]),
            &labels
        ));
        assert!(check_selector(&sel(vec![req("nf", In, &[])])).is_err());
        assert!(check_selector(&sel(vec![req("nf", Exists, &["a"])])).is_err());
    }

    fn resource(ns: &str, name: &str, spec: serde_json::Value) -> ClusterStrategy {
        let r: SchedulingStrategy = serde_json::from_value(serde_json::json!({
            "apiVersion": "scx-pilot.io/v1alpha1",
            "kind": "SchedulingStrategy",
            "metadata": {"name": name, "namespace": ns, "generation": 1},
            "spec": spec,
        }))
        .unwrap();
        ClusterStrategy::from_resource(&r)
    }

    #[test]
    fn the_local_set_first_then_regex_then_namespace_order() {
        use crate::podmeta::{PodDirectory, PodMeta};
        use crate::pods::{PodRef, ProcInfo, ProcSnapshot};
        let proc = |pid, command: &str, pod: &str| ProcInfo {
            pid,
            ppid: 1,
            command: command.into(),
            kernel_thread: false,
            pod: Some(PodRef {
                pod_uid: pod.into(),
                container_id: "c".into(),
            }),
        };
        let mut snapshot = ProcSnapshot::empty();
        snapshot.processes = vec![
            proc(10, "upf", "uid-a"),
            proc(11, "helper", "uid-a"),
            proc(12, "upf", "uid-b"),
            proc(13, "upf", "uid-a"),
        ];
        let meta = |uid: &str, ns: &str| PodMeta {
            uid: uid.into(),
            name: "upf-0".into(),
            namespace: ns.into(),
            labels: [("nf".to_string(), "upf".to_string())]
                .into_iter()
                .collect(),
            config_hash: None,
        };
        let pods = PodDirectory::from_pods([meta("uid-a", "5g"), meta("uid-b", "lab")]);
        let sel = serde_json::json!({"matchLabels": {"nf": "upf"}});
        let set = ClusterSet::new(vec![
            resource(
                "5g",
                "b-all",
                serde_json::json!({"executionTime": "1ms", "podSelector": sel}),
            ),
            resource(
                "5g",
                "a-all",
                serde_json::json!({"executionTime": "2ms", "podSelector": sel}),
            ),
            resource(
                "5g",
                "z-regex",
                serde_json::json!({"executionTime": "3ms", "podSelector": sel, "commandRegex": "^upf$"}),
            ),
            resource(
                "5g",
                "bad",
                serde_json::json!({"executionTime": "2s", "podSelector": {}}),
            ),
        ]);
        // A local strategy holds PID 13.
        let mut resolved = Resolved::default();
        resolved.desired.insert(
            13,
            PidStrategy {
                slice_ns: 9_000_000,
                priority: false,
            },
        );
        let input = ResolveInput {
            proc_root: std::path::Path::new("/proc"),
            snapshot: Some(&snapshot),
            pods: Some(&pods),
            agent_pid: 1,
        };
        resolve_into(&set, &input, &mut resolved);
        let slice = |pid: u32| resolved.desired.get(&pid).map(|s| s.slice_ns);
        assert_eq!(slice(13), Some(9_000_000), "the local set wins");
        assert_eq!(
            slice(10),
            Some(3_000_000),
            "commandRegex beats selector-only"
        );
        assert_eq!(
            slice(11),
            Some(2_000_000),
            "then the first by namespace/name"
        );
        assert_eq!(slice(12), None, "another namespace's pod");
        let by = |name: &str| {
            resolved
                .cluster
                .iter()
                .find(|r| r.source == format!("5g/{name}"))
                .unwrap()
                .clone()
        };
        assert_eq!(by("z-regex").pids, [10]);
        assert!(by("z-regex").note.unwrap().contains("local strategy"));
        assert_eq!(by("a-all").pids, [11]);
        assert!(by("b-all").pids.is_empty());
        assert!(by("bad").note.unwrap().contains("out of range"));
        assert_eq!(resolved.list.len(), 3);
    }
}
