//! Resolving a set to live PIDs: each strategy's candidates first, then one
//! owner per PID in precedence order (see the module documentation of
//! [`crate::strategy`] for the rules).

use std::cell::OnceCell;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use regex::Regex;
use serde::Serialize;
use utoipa::ToSchema;

use super::model::{
    DesiredStrategies, LabelSelector, ResolvedStrategy, StrategySet, NO_PROCESS_START_TICKS,
};
use crate::podmeta::PodDirectory;
use crate::pods::{ProcInfo, ProcSnapshot};

/// How one stored strategy resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StrategyResolution {
    /// PIDs this strategy covers now (sorted).
    pub pids: Vec<u32>,
    /// Why it covers nothing (or less than it matches), when that is the case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The result of resolving a whole set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// What the scheduler is to apply.
    pub desired: DesiredStrategies,
    /// The same set as `GET /api/v1/scheduling/strategies` lists it, sorted by PID.
    pub list: Vec<ResolvedStrategy>,
    /// One entry per stored strategy, in posted order.
    pub per_strategy: Vec<StrategyResolution>,
    /// One entry per cluster strategy, in `namespace/name` order.
    pub cluster: Vec<super::cluster::ClusterResolution>,
}

/// What resolution looks at.
pub struct ResolveInput<'a> {
    /// For `pid` strategies: the process must exist under it now.
    pub proc_root: &'a Path,
    /// Every process, for `command_regex` and `selectors` (None: not scanned).
    pub snapshot: Option<&'a ProcSnapshot>,
    /// Pod metadata (labels), for `selectors` (None: not available).
    pub pods: Option<&'a PodDirectory>,
    /// Never targeted.
    pub agent_pid: u32,
}

/// A strategy's candidate PIDs (never empty), or why it has none.
type Candidates = Result<Vec<u32>, String>;

/// Resolve a set to live PIDs.
pub fn resolve(set: &StrategySet, input: &ResolveInput) -> Resolved {
    let index = OnceCell::new();
    let candidates: Vec<Candidates> = (0..set.strategies.len())
        .map(|i| match set.strategies[i].pid {
            Some(pid) => pid_candidate(set, pid, input).map(|pid| vec![pid]),
            None => scan_candidates(set, i, input, &index),
        })
        .collect();
    let (desired, per_strategy) = assign(set, candidates);
    Resolved {
        list: listing(&desired),
        desired,
        per_strategy,
        cluster: Vec::new(),
    }
}

/// A `pid` strategy covers its PID while the process it was posted for has it
/// and may carry a strategy.
fn pid_candidate(set: &StrategySet, pid: u32, input: &ResolveInput) -> Result<u32, String> {
    let posted_for_none = set.pid_start_ticks.get(&pid) == Some(&NO_PROCESS_START_TICKS);
    if !input.proc_root.join(pid.to_string()).exists() {
        return Err(if posted_for_none {
            format!("no process with PID {pid} (none had it when the strategy was posted)")
        } else {
            format!("no process with PID {pid}")
        });
    }
    if posted_for_none {
        return Err(format!(
            "PID {pid} had no process when the strategy was posted; the process that has it now is not covered"
        ));
    }
    // One read of /proc/PID/stat for both checks.
    let id = crate::pods::identity(input.proc_root, pid);
    if pid == input.agent_pid || id.is_some_and(|id| id.kernel_thread) {
        return Err(format!(
            "PID {pid} is now scx_pilot or a kernel thread, which never carry a strategy"
        ));
    }
    let reused = set.pid_start_ticks.get(&pid).is_some_and(|&want| {
        id.and_then(|id| id.start_ticks)
            .is_some_and(|now| now != want)
    });
    if reused {
        return Err(format!(
            "PID {pid} now belongs to another process (the one the strategy was posted for exited)"
        ));
    }
    Ok(pid)
}

/// The scanned processes a `command_regex` and/or `selectors` strategy matches.
fn scan_candidates<'a>(
    set: &StrategySet,
    i: usize,
    input: &ResolveInput<'a>,
    index: &OnceCell<ProcessIndex<'a>>,
) -> Candidates {
    let s = &set.strategies[i];
    let Some(snapshot) = input.snapshot else {
        return Err("processes have not been scanned yet".into());
    };
    let re = set.regexes[i].as_ref();
    if s.command_regex.is_some() && re.is_none() {
        return Err("command_regex does not compile".into());
    }
    let selectors = s.selectors.as_deref();
    let labelled = match (selectors, input.pods) {
        (Some(_), None) => {
            return Err(
                "label selectors match no PID: pod labels are not available \
                 (no Kubernetes API and no --pods-file)"
                    .into(),
            )
        }
        (Some(sel), Some(pods)) => Some((sel, pods)),
        (None, _) => None,
    };
    let index = index.get_or_init(|| ProcessIndex::new(snapshot, input.agent_pid));
    let pids: Vec<u32> = match labelled {
        // Only processes of pods whose labels match: one label check per pod.
        Some((sel, pods)) => {
            let mut command = CommandMatcher::new(re);
            index
                .by_pod
                .iter()
                .filter(|(uid, _)| pods.get(uid).is_some_and(|m| labels_match(sel, &m.labels)))
                .flat_map(|(_, procs)| procs.iter())
                .filter(|p| command.matches(&p.command))
                .map(|p| p.pid)
                .collect()
        }
        // Commands repeat (many workers, one name): one regex match per name.
        None => index
            .by_command
            .iter()
            .filter(|(command, _)| re.is_none_or(|re| re.is_match(command)))
            .flat_map(|(_, pids)| pids.iter().copied())
            .collect(),
    };
    if pids.is_empty() {
        return Err(no_match_note(re.is_some(), selectors.is_some()).into());
    }
    Ok(pids)
}

fn no_match_note(has_regex: bool, has_selectors: bool) -> &'static str {
    match (has_regex, has_selectors) {
        (true, true) => "no process in a pod with matching labels has a matching command",
        (true, false) => "no process has a matching command",
        _ => "no process runs in a pod with matching labels",
    }
}

fn labels_match(selectors: &[LabelSelector], labels: &BTreeMap<String, String>) -> bool {
    selectors
        .iter()
        .all(|sel| labels.get(&sel.key) == Some(&sel.value))
}

/// A strategy's regex against the commands of matching pods' processes;
/// commands repeat (many workers, one name), so each is matched once.
struct CommandMatcher<'r, 'a> {
    re: Option<&'r Regex>,
    seen: HashMap<&'a str, bool>,
}

impl<'r, 'a> CommandMatcher<'r, 'a> {
    fn new(re: Option<&'r Regex>) -> Self {
        Self {
            re,
            seen: HashMap::new(),
        }
    }

    fn matches(&mut self, command: &'a str) -> bool {
        let Some(re) = self.re else {
            return true;
        };
        *self
            .seen
            .entry(command)
            .or_insert_with(|| re.is_match(command))
    }
}

/// The processes a strategy may cover, by command and (those in pods) by pod
/// UID, built once per resolution.
struct ProcessIndex<'a> {
    by_command: HashMap<&'a str, Vec<u32>>,
    by_pod: HashMap<&'a str, Vec<&'a ProcInfo>>,
}

impl<'a> ProcessIndex<'a> {
    fn new(snapshot: &'a ProcSnapshot, agent_pid: u32) -> Self {
        let mut by_command: HashMap<&str, Vec<u32>> = HashMap::new();
        let mut by_pod: HashMap<&str, Vec<&ProcInfo>> = HashMap::new();
        let eligible = snapshot
            .processes
            .iter()
            .filter(|p| !p.kernel_thread && p.pid > 1 && p.pid != agent_pid);
        for p in eligible {
            by_command
                .entry(p.command.as_str())
                .or_default()
                .push(p.pid);
            if let Some(pod) = &p.pod {
                by_pod.entry(pod.pod_uid.as_str()).or_default().push(p);
            }
        }
        Self { by_command, by_pod }
    }
}

/// Give each candidate PID to the first strategy of the highest precedence
/// class that matches it; notes say what each strategy lost and why.
fn assign(
    set: &StrategySet,
    candidates: Vec<Candidates>,
) -> (DesiredStrategies, Vec<StrategyResolution>) {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    // Stable: among equals, posted order is kept (first wins).
    order.sort_by_key(|&i| std::cmp::Reverse(set.strategies[i].specificity()));
    let mut desired = DesiredStrategies::new();
    let mut per_strategy: Vec<StrategyResolution> = candidates
        .iter()
        .map(|c| StrategyResolution {
            pids: Vec::new(),
            note: c.as_ref().err().cloned(),
        })
        .collect();
    for i in order {
        let Ok(pids) = &candidates[i] else {
            continue;
        };
        let value = set.strategies[i].pid_strategy();
        let won = &mut per_strategy[i];
        let mut shadowed = 0usize;
        for &pid in pids {
            match desired.entry(pid) {
                Entry::Occupied(_) => shadowed += 1,
                Entry::Vacant(slot) => {
                    slot.insert(value);
                    won.pids.push(pid);
                }
            }
        }
        if shadowed > 0 {
            won.note = Some(if set.strategies[i].pid.is_some() {
                format!("PID {} is already covered by an earlier strategy", pids[0])
            } else {
                format!(
                    "{shadowed} matching PIDs are covered by a more specific or earlier strategy"
                )
            });
        }
        won.pids.sort_unstable();
    }
    (desired, per_strategy)
}

/// The desired set as listed by PID.
pub(super) fn listing(desired: &DesiredStrategies) -> Vec<ResolvedStrategy> {
    let mut list: Vec<ResolvedStrategy> = desired
        .iter()
        .map(|(&pid, s)| ResolvedStrategy {
            priority: s.priority,
            execution_time: s.slice_ns,
            pid,
        })
        .collect();
    list.sort_by_key(|r| r.pid);
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::testing::pid_strategy;
    use crate::strategy::{PidStrategy, Strategy, StrategyState};

    #[test]
    fn resolves_live_pids_first_wins() {
        // A child: the test process itself counts as the agent.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = child.id();
        let mut second = pid_strategy(me, 2_000_000);
        second.priority = true;
        let sel = Strategy {
            priority: true,
            execution_time: 1_000_000,
            pid: None,
            selectors: Some(vec![LabelSelector {
                key: "nf".into(),
                value: "upf".into(),
            }]),
            command_regex: None,
        };
        let strategies = vec![
            pid_strategy(me, 1_000_000),
            second,
            pid_strategy(u32::MAX - 1, 1_000_000),
            sel,
        ];
        let r = StrategyState::new(strategies, Path::new("/proc")).resolved;
        assert_eq!(r.desired.len(), 1);
        assert_eq!(
            r.desired[&me],
            PidStrategy {
                slice_ns: 1_000_000,
                priority: false
            }
        );
        assert_eq!(
            r.list,
            vec![ResolvedStrategy {
                priority: false,
                execution_time: 1_000_000,
                pid: me
            }]
        );
        assert_eq!(r.per_strategy[0].pids, vec![me]);
        assert!(r.per_strategy[1].note.as_ref().unwrap().contains("earlier"));
        assert!(r.per_strategy[2]
            .note
            .as_ref()
            .unwrap()
            .contains("no process"));
        assert!(r.per_strategy[3].note.as_ref().unwrap().contains("labels"));
        let _ = child.kill();
        let _ = child.wait();
    }

    fn snapshot(procs: &[(u32, &str, Option<&str>)]) -> ProcSnapshot {
        let mut s = ProcSnapshot::empty();
        s.processes = procs
            .iter()
            .map(|&(pid, command, pod)| crate::pods::ProcInfo {
                pid,
                ppid: 1,
                command: command.into(),
                kernel_thread: command.starts_with("kworker"),
                pod: pod.map(|uid| crate::pods::PodRef {
                    pod_uid: uid.into(),
                    container_id: String::new(),
                }),
            })
            .collect();
        s
    }

    fn sel(k: &str, v: &str) -> Option<Vec<LabelSelector>> {
        Some(vec![LabelSelector {
            key: k.into(),
            value: v.into(),
        }])
    }

    #[test]
    fn precedence_pid_then_regex_then_selectors_first_wins_among_equals() {
        let me = std::process::id();
        // `me` is a live PID (pid strategies need /proc/PID); the others are fake.
        let snap = snapshot(&[
            (me, "upf", Some("pod-a")),
            (1001, "upf", Some("pod-a")),
            (1002, "sidecar", Some("pod-a")),
            (1003, "upf", None),
            (1004, "kworker/0:1", None),
            (1, "upf", None),
        ]);
        let dir = crate::podmeta::PodDirectory::from_pods([crate::podmeta::PodMeta {
            uid: "pod-a".into(),
            name: "upf-0".into(),
            namespace: "5g".into(),
            labels: [("nf".to_string(), "upf".to_string())].into(),
            config_hash: None,
        }]);
        let mk = |ns: u64, pid, selectors, re: Option<&str>| Strategy {
            priority: false,
            execution_time: ns,
            pid,
            selectors,
            command_regex: re.map(String::from),
        };
        let set = StrategySet::new(vec![
            mk(1_000_000, None, sel("nf", "upf"), None), // 0: selectors
            mk(2_000_000, None, None, Some("^upf$")),    // 1: regex
            mk(3_000_000, None, sel("nf", "upf"), Some("car")), // 2: regex + selectors
            mk(4_000_000, Some(me), None, None),         // 3: pid
            mk(5_000_000, None, None, Some("^up")),      // 4: regex, later
            mk(6_000_000, None, sel("nf", "upf"), None), // 5: selectors, later
        ]);
        let r = resolve(
            &set,
            &ResolveInput {
                proc_root: Path::new("/proc"),
                snapshot: Some(&snap),
                pods: Some(&dir),
                agent_pid: 4242,
            },
        );
        let ns = |pid: u32| r.desired[&pid].slice_ns;
        assert_eq!(ns(me), 4_000_000, "pid beats everything");
        assert_eq!(
            ns(1001),
            2_000_000,
            "regex beats selectors; first regex wins"
        );
        assert_eq!(
            ns(1003),
            2_000_000,
            "regex alone covers processes outside pods"
        );
        assert_eq!(ns(1002), 3_000_000, "regex+selectors beats selectors-only");
        assert!(
            !r.desired.contains_key(&1004),
            "kernel threads are never targeted"
        );
        assert!(!r.desired.contains_key(&1), "PID 1 is never targeted");
        assert_eq!(r.desired.len(), 4);
        assert_eq!(r.per_strategy[0].pids, Vec::<u32>::new());
        assert!(r.per_strategy[0]
            .note
            .as_ref()
            .unwrap()
            .contains("more specific"));
        assert_eq!(r.per_strategy[1].pids, vec![1001, 1003]);
        assert_eq!(r.per_strategy[2].pids, vec![1002]);
        assert_eq!(r.per_strategy[3].pids, vec![me]);
        assert!(r.per_strategy[4].pids.is_empty());
        assert!(r.per_strategy[5].pids.is_empty());
        // Without labels, selectors match nothing and say why.
        let r = resolve(
            &set,
            &ResolveInput {
                proc_root: Path::new("/proc"),
                snapshot: Some(&snap),
                pods: None,
                agent_pid: 4242,
            },
        );
        assert!(r.per_strategy[0]
            .note
            .as_ref()
            .unwrap()
            .contains("--pods-file"));
        assert_eq!(r.desired[&1001].slice_ns, 2_000_000);
    }

    /// A fake proc root with one process whose start time is `ticks`.
    fn fake_proc(root: &Path, pid: u32, ticks: u64) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("stat"),
            format!("{pid} (worker) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {ticks} 0 0\n"),
        )
        .unwrap();
    }

    #[test]
    fn a_reused_pid_does_not_inherit_the_strategy() {
        let root = std::env::temp_dir().join(format!("scx_pilot_reuse_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        fake_proc(&root, 4000, 777);
        let set = StrategySet::pinned(vec![pid_strategy(4000, 1_000_000)], &root);
        assert_eq!(set.pid_start_ticks.get(&4000), Some(&777));
        let input = ResolveInput {
            proc_root: &root,
            snapshot: None,
            pods: None,
            agent_pid: 1,
        };
        assert!(resolve(&set, &input).desired.contains_key(&4000));
        // The process exits and a new one gets its PID.
        fake_proc(&root, 4000, 900);
        let r = resolve(&set, &input);
        assert!(r.desired.is_empty());
        let note = r.per_strategy[0].note.as_deref().unwrap();
        assert!(note.contains("another process"), "{note}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_pid_posted_without_a_process_covers_no_later_process() {
        let root = std::env::temp_dir().join(format!("scx_pilot_gone_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let set = StrategySet::pinned(vec![pid_strategy(4001, 1_000_000)], &root);
        assert_eq!(
            set.pid_start_ticks.get(&4001),
            Some(&NO_PROCESS_START_TICKS)
        );
        let input = ResolveInput {
            proc_root: &root,
            snapshot: None,
            pods: None,
            agent_pid: 1,
        };
        let r = resolve(&set, &input);
        assert!(r.desired.is_empty());
        assert!(r.per_strategy[0]
            .note
            .as_deref()
            .unwrap()
            .contains("no process with PID 4001"));
        // A process gets the PID later: still not covered.
        fake_proc(&root, 4001, 900);
        let r = resolve(&set, &input);
        assert!(r.desired.is_empty());
        let note = r.per_strategy[0].note.as_deref().unwrap();
        assert!(
            note.contains("had no process when the strategy was posted"),
            "{note}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
