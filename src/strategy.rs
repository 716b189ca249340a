//! Scheduling strategies as the user posts them (the seed's model), their
//! validation, and their resolution to the `pid -> strategy` set the scheduler
//! applies.
//!
//! Resolution rules (first version, issue 3):
//! - a strategy with a `pid` covers that PID while the process exists; the BPF
//!   side also covers its threads through the tgid lookup;
//! - a strategy with `selectors` is accepted and stored, but resolves to no PID
//!   until pod labels are known (Kubernetes integration);
//! - when two strategies name the same PID, the first one in the posted list wins.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cli::{MAX_SLICE_NS, MIN_SLICE_NS};
use crate::sched::{DesiredStrategies, PidStrategy};

/// Most strategies one request may carry.
pub const MAX_STRATEGIES: usize = 256;
/// Most label selectors one strategy may carry.
pub const MAX_SELECTORS: usize = 16;
/// Longest label key (Kubernetes: 253-byte prefix, '/', 63-byte name).
pub const MAX_LABEL_KEY_LEN: usize = 317;
/// Longest label value (Kubernetes).
pub const MAX_LABEL_VALUE_LEN: usize = 63;

/// A pod label that must match exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelSelector {
    /// Label key to match.
    #[schema(example = "nf")]
    pub key: String,
    /// Expected value of the label.
    #[schema(example = "upf")]
    pub value: String,
}

/// One strategy as posted (the seed's SchedulingStrategy). It targets either
/// one `pid` or the pods whose labels match every selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    /// Whether tasks under this strategy are dispatched ahead of normal tasks
    /// (and may preempt them). Defaults to false.
    #[serde(default)]
    pub priority: bool,
    /// Time slice in nanoseconds, within 50000..=1000000000.
    #[schema(minimum = 50000, maximum = 1000000000, example = 20000000)]
    pub execution_time: u64,
    /// A specific PID (a process: all its threads are covered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 2, example = 717720)]
    pub pid: Option<u32>,
    /// Pod label selectors, all of which must match (AND).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selectors: Option<Vec<LabelSelector>>,
}

/// The body of `POST /api/v1/scheduling/strategies`: the whole new set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyRequest {
    pub strategies: Vec<Strategy>,
}

/// One resolved entry in the seed's GET shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct ResolvedStrategy {
    pub priority: bool,
    pub execution_time: u64,
    pub pid: u32,
}

/// Why a request was refused: the strategy index, the field and what is wrong.
/// An empty `field` means the strategy as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub index: usize,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "strategies[{}]", self.index)?;
        if !self.field.is_empty() {
            write!(f, ".{}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ValidationError {}

/// What validation needs to know about the host.
pub struct ValidationContext<'a> {
    /// scx_pilot's own PID: it must never carry a strategy.
    pub agent_pid: u32,
    /// Where /proc is (used to refuse kernel threads).
    pub proc_root: &'a Path,
}

/// PF_KTHREAD from include/linux/sched.h: the task is a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;

/// Whether `pid` is a live kernel thread (false when it does not exist).
fn is_kernel_thread(proc_root: &Path, pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) else {
        return false;
    };
    // Fields after the command (which may hold spaces and parentheses):
    // state ppid pgrp session tty_nr tpgid flags ...
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return false;
    };
    rest.split_whitespace()
        .nth(6)
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

fn err(index: usize, field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        index,
        field: field.into(),
        message: message.into(),
    }
}

/// Check every strategy of a request; the first problem found is returned and
/// nothing is to be changed.
pub fn validate(req: &StrategyRequest, ctx: &ValidationContext) -> Result<(), ValidationError> {
    if req.strategies.len() > MAX_STRATEGIES {
        return Err(err(
            MAX_STRATEGIES,
            "",
            format!(
                "too many strategies ({}); at most {MAX_STRATEGIES}",
                req.strategies.len()
            ),
        ));
    }
    for (i, s) in req.strategies.iter().enumerate() {
        if !(MIN_SLICE_NS..=MAX_SLICE_NS).contains(&s.execution_time) {
            return Err(err(
                i,
                "execution_time",
                format!(
                    "{} ns is out of range {MIN_SLICE_NS}..={MAX_SLICE_NS} ns",
                    s.execution_time
                ),
            ));
        }
        match (s.pid, &s.selectors) {
            (None, None) => {
                return Err(err(
                    i,
                    "pid",
                    "a strategy must target something: give a pid or selectors",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(err(
                    i,
                    "selectors",
                    "give either a pid or selectors, not both",
                ))
            }
            _ => {}
        }
        if let Some(pid) = s.pid {
            if pid <= 1 {
                return Err(err(i, "pid", format!("PID {pid} cannot carry a strategy")));
            }
            if pid == ctx.agent_pid {
                return Err(err(
                    i,
                    "pid",
                    format!("PID {pid} is scx_pilot itself and cannot carry a strategy"),
                ));
            }
            if is_kernel_thread(ctx.proc_root, pid) {
                return Err(err(
                    i,
                    "pid",
                    format!("PID {pid} is a kernel thread and cannot carry a strategy"),
                ));
            }
        }
        if let Some(selectors) = &s.selectors {
            if selectors.is_empty() {
                return Err(err(i, "selectors", "must hold at least one selector"));
            }
            if selectors.len() > MAX_SELECTORS {
                return Err(err(
                    i,
                    "selectors",
                    format!(
                        "too many selectors ({}); at most {MAX_SELECTORS}",
                        selectors.len()
                    ),
                ));
            }
            for (j, sel) in selectors.iter().enumerate() {
                if sel.key.is_empty() || sel.key.len() > MAX_LABEL_KEY_LEN {
                    return Err(err(
                        i,
                        format!("selectors[{j}].key"),
                        format!("must be 1..={MAX_LABEL_KEY_LEN} bytes long"),
                    ));
                }
                if sel.value.len() > MAX_LABEL_VALUE_LEN {
                    return Err(err(
                        i,
                        format!("selectors[{j}].value"),
                        format!("must be at most {MAX_LABEL_VALUE_LEN} bytes long"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// How one stored strategy resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StrategyResolution {
    /// PIDs this strategy covers now.
    pub pids: Vec<u32>,
    /// Why it covers nothing, when it covers nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The result of resolving a whole set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// What the scheduler is to apply.
    pub desired: DesiredStrategies,
    /// The same set in the seed's GET shape, sorted by PID.
    pub list: Vec<ResolvedStrategy>,
    /// One entry per stored strategy, in posted order.
    pub per_strategy: Vec<StrategyResolution>,
}

/// Resolve strategies to live PIDs under `proc_root`.
pub fn resolve(strategies: &[Strategy], proc_root: &Path) -> Resolved {
    let mut desired: HashMap<u32, PidStrategy> = HashMap::new();
    let mut per_strategy = Vec::with_capacity(strategies.len());
    for s in strategies {
        let resolution = match (s.pid, &s.selectors) {
            (Some(pid), _) => {
                if !proc_root.join(pid.to_string()).exists() {
                    StrategyResolution {
                        pids: vec![],
                        note: Some(format!("no process with PID {pid}")),
                    }
                } else {
                    match desired.entry(pid) {
                        Entry::Occupied(_) => StrategyResolution {
                            pids: vec![],
                            note: Some(format!(
                                "PID {pid} is already covered by an earlier strategy"
                            )),
                        },
                        Entry::Vacant(slot) => {
                            slot.insert(PidStrategy {
                                slice_ns: s.execution_time,
                                priority: s.priority,
                            });
                            StrategyResolution {
                                pids: vec![pid],
                                note: None,
                            }
                        }
                    }
                }
            }
            (None, Some(_)) => StrategyResolution {
                pids: vec![],
                note: Some(
                    "label selectors match no PID yet: pod labels are not available \
                     (Kubernetes integration is not configured)"
                        .into(),
                ),
            },
            (None, None) => StrategyResolution {
                pids: vec![],
                note: Some("targets nothing".into()),
            },
        };
        per_strategy.push(resolution);
    }
    let mut list: Vec<ResolvedStrategy> = desired
        .iter()
        .map(|(&pid, s)| ResolvedStrategy {
            priority: s.priority,
            execution_time: s.slice_ns,
            pid,
        })
        .collect();
    list.sort_by_key(|r| r.pid);
    Resolved {
        desired,
        list,
        per_strategy,
    }
}

/// The accepted strategy set and what it resolved to.
#[derive(Debug, Clone)]
pub struct StrategyState {
    pub strategies: Vec<Strategy>,
    pub resolved: Resolved,
    pub updated_at: DateTime<Utc>,
}

impl StrategyState {
    pub fn new(strategies: Vec<Strategy>, proc_root: &Path) -> Self {
        let resolved = resolve(&strategies, proc_root);
        Self {
            strategies,
            resolved,
            updated_at: Utc::now(),
        }
    }
}

/// Strategies from `--strategy PID:SLICE_NS[:prio]` flags, in the posted model.
pub fn from_static(desired: &DesiredStrategies) -> Vec<Strategy> {
    let mut pids: Vec<_> = desired.iter().collect();
    pids.sort_by_key(|(pid, _)| **pid);
    pids.into_iter()
        .map(|(&pid, s)| Strategy {
            priority: s.priority,
            execution_time: s.slice_ns,
            pid: Some(pid),
            selectors: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ValidationContext<'static> {
        ValidationContext {
            agent_pid: 4242,
            proc_root: Path::new("/proc"),
        }
    }

    fn pid_strategy(pid: u32, ns: u64) -> Strategy {
        Strategy {
            priority: false,
            execution_time: ns,
            pid: Some(pid),
            selectors: None,
        }
    }

    #[test]
    fn validation_names_index_and_field() {
        let req = StrategyRequest {
            strategies: vec![pid_strategy(1000, 1_000_000), pid_strategy(1000, 10)],
        };
        let e = validate(&req, &ctx()).unwrap_err();
        assert_eq!(e.index, 1);
        assert_eq!(e.field, "execution_time");
        assert_eq!(
            e.to_string(),
            "strategies[1].execution_time: 10 ns is out of range 50000..=1000000000 ns"
        );
    }

    #[test]
    fn validation_bounds_are_inclusive() {
        for ns in [MIN_SLICE_NS, MAX_SLICE_NS] {
            let req = StrategyRequest {
                strategies: vec![pid_strategy(1000, ns)],
            };
            assert!(validate(&req, &ctx()).is_ok());
        }
        for ns in [MIN_SLICE_NS - 1, MAX_SLICE_NS + 1] {
            let req = StrategyRequest {
                strategies: vec![pid_strategy(1000, ns)],
            };
            assert!(validate(&req, &ctx()).is_err());
        }
    }

    #[test]
    fn refuses_special_pids() {
        for pid in [0, 1, 4242] {
            let req = StrategyRequest {
                strategies: vec![pid_strategy(pid, 1_000_000)],
            };
            let e = validate(&req, &ctx()).unwrap_err();
            assert_eq!((e.index, e.field.as_str()), (0, "pid"), "{pid}");
        }
        // kthreadd is PID 2 on Linux and a kernel thread.
        if is_kernel_thread(Path::new("/proc"), 2) {
            let req = StrategyRequest {
                strategies: vec![pid_strategy(2, 1_000_000)],
            };
            assert!(validate(&req, &ctx())
                .unwrap_err()
                .message
                .contains("kernel thread"));
        }
    }

    #[test]
    fn refuses_empty_and_double_targets() {
        let mut s = pid_strategy(1000, 1_000_000);
        s.pid = None;
        let e = validate(
            &StrategyRequest {
                strategies: vec![s.clone()],
            },
            &ctx(),
        )
        .unwrap_err();
        assert!(e.message.contains("must target something"));
        s.selectors = Some(vec![]);
        let e = validate(
            &StrategyRequest {
                strategies: vec![s.clone()],
            },
            &ctx(),
        )
        .unwrap_err();
        assert_eq!(e.field, "selectors");
        s.pid = Some(1000);
        s.selectors = Some(vec![LabelSelector {
            key: "a".into(),
            value: "b".into(),
        }]);
        let e = validate(
            &StrategyRequest {
                strategies: vec![s],
            },
            &ctx(),
        )
        .unwrap_err();
        assert!(e.message.contains("not both"));
    }

    #[test]
    fn resolves_live_pids_first_wins() {
        let me = std::process::id();
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
        };
        let strategies = vec![
            pid_strategy(me, 1_000_000),
            second,
            pid_strategy(u32::MAX - 1, 1_000_000),
            sel,
        ];
        let r = resolve(&strategies, Path::new("/proc"));
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
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = serde_json::from_str::<StrategyRequest>(
            r#"{"strategies":[{"priority":true,"execution_time":1000000,"pid":5,"prio":1}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `prio`"), "{e}");
    }
}
