//! What a strategy is: the posted model, its limits, the compiled set, and the
//! `pid -> strategy` form the scheduler applies.

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Bounds of a strategy's slice: below 50 us a task spends more time switching
/// than running; above 1 s it could hold a CPU longer than anyone would want.
/// A posted slice below the floor is raised to it; 0 stands for the
/// scheduler's default slice (`--slice-us`), as Gthulhu's clients mean it.
pub const MIN_SLICE_NS: u64 = 50_000;
pub const MAX_SLICE_NS: u64 = 1_000_000_000;

/// Most strategies one request may carry.
pub const MAX_STRATEGIES: usize = 256;
/// Most label selectors one strategy may carry.
pub const MAX_SELECTORS: usize = 16;
/// Longest label key (Kubernetes: 253-byte prefix, '/', 63-byte name).
pub const MAX_LABEL_KEY_LEN: usize = 317;
/// Longest label value (Kubernetes).
pub const MAX_LABEL_VALUE_LEN: usize = 63;
/// Longest `command_regex`, in bytes.
pub const MAX_REGEX_LEN: usize = 256;
/// Most memory one compiled `command_regex` may take.
const REGEX_SIZE_LIMIT_BYTES: usize = 256 * 1024;
/// Most memory the compiled regexes of one set may take together (program
/// and lazy-DFA cache each): a set of many heavy regexes is refused instead
/// of costing the agent hundreds of megabytes.
pub const SET_REGEX_BUDGET_BYTES: usize = 8 << 20;

/// What each of `count` regexes of one set may take ([`SET_REGEX_BUDGET_BYTES`]
/// shared, at most [`REGEX_SIZE_LIMIT_BYTES`] each).
pub(super) fn regex_limit(count: usize) -> usize {
    (SET_REGEX_BUDGET_BYTES / 2 / count.max(1)).min(REGEX_SIZE_LIMIT_BYTES)
}

/// What the scheduler applies to one PID (or to every thread of a process when
/// the PID is a tgid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PidStrategy {
    pub slice_ns: u64,
    pub priority: bool,
}

/// The full `pid -> strategy` set the scheduler is to apply.
pub type DesiredStrategies = HashMap<u32, PidStrategy>;

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

/// One strategy as posted. It targets one `pid`, or the processes whose
/// command matches `command_regex` and/or that run in pods whose labels match
/// every selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    /// Whether tasks under this strategy are dispatched ahead of normal tasks
    /// (and may preempt them). Defaults to false. A bool, or 0/1 as newer
    /// Gthulhu clients send it.
    #[serde(default, deserialize_with = "bool_or_0_1")]
    #[schema(value_type = bool)]
    pub priority: bool,
    /// Time slice in nanoseconds, at most 1000000000; 0 means the
    /// scheduler's default slice, and 1..50000 is raised to 50000 (the answer
    /// and `GET .../strategies/config` report it).
    #[schema(minimum = 50000, maximum = 1000000000, example = 20000000)]
    pub execution_time: u64,
    /// A specific PID (a process: all its threads are covered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 2, example = 717720)]
    pub pid: Option<u32>,
    /// Pod label selectors, all of which must match (AND).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selectors: Option<Vec<LabelSelector>>,
    /// A regular expression (Rust `regex` syntax, unanchored) matched against
    /// each process's command name (`comm`, at most 15 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "^upf")]
    pub command_regex: Option<String>,
}

impl Strategy {
    /// The precedence class: 3 for `pid`, 2 for `command_regex`, 1 for selectors only.
    pub fn specificity(&self) -> u8 {
        if self.pid.is_some() {
            3
        } else if self.command_regex.is_some() {
            2
        } else {
            1
        }
    }

    pub(super) fn pid_strategy(&self) -> PidStrategy {
        PidStrategy {
            slice_ns: self.execution_time,
            priority: self.priority,
        }
    }
}

/// `priority` as posted: a bool, or the int 0/1 Gthulhu plugin releases
/// since 2026-02 use.
fn bool_or_0_1<'de, D: serde::Deserializer<'de>>(de: D) -> Result<bool, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a bool or the integer 0 or 1")
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<bool, E> {
            match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::invalid_value(serde::de::Unexpected::Unsigned(v), &self)),
            }
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<bool, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
            }
        }
    }
    de.deserialize_any(Visitor)
}

/// How `GET /api/v1/scheduling/strategies` writes `priority`: Gthulhu
/// clients of 2025 (scheduler 2025-08, plugin up to 2025-12) decode a bool;
/// plugin releases since 2026-01-24 (2026-02 on, and Gthulhu main built on
/// them) decode an int and fail on a bool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PriorityWire {
    /// `true`/`false` (the original contract).
    #[default]
    Bool,
    /// `1`/`0`.
    Int,
}

/// The body of `POST /api/v1/scheduling/strategies`: the whole new set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyRequest {
    pub strategies: Vec<Strategy>,
}

/// One resolved entry, as `GET /api/v1/scheduling/strategies` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct ResolvedStrategy {
    pub priority: bool,
    pub execution_time: u64,
    pub pid: u32,
}

/// Compile `re` within `limit` bytes of program and `limit` of lazy-DFA cache.
pub(super) fn compile_regex(re: &str, limit: usize) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(re)
        .size_limit(limit)
        .dfa_size_limit(limit)
        .build()
}

/// A set with its regexes compiled once.
#[derive(Debug, Clone, Default)]
pub struct StrategySet {
    pub strategies: Vec<Strategy>,
    /// One per strategy: its compiled `command_regex`, if it has one that compiles.
    pub(super) regexes: Vec<Option<Regex>>,
    /// Start time (clock ticks after boot) of the process each `pid` strategy
    /// was accepted for: a later process that reuses the PID does not match.
    /// A PID without an entry matches whatever process has it (sets from
    /// before start times were recorded, or proc roots without them).
    pub pid_start_ticks: HashMap<u32, u64>,
    /// What validation adjusted or could not check, one line per finding
    /// (`strategies[i].field: ...`); kept with the set for
    /// `GET .../strategies/config`, not saved.
    pub warnings: Vec<String>,
}

/// The start time recorded for a `pid` strategy whose PID had no process when
/// it was accepted: no process has it, so a later one with the PID never matches.
pub const NO_PROCESS_START_TICKS: u64 = u64::MAX;

impl From<Vec<Strategy>> for StrategySet {
    fn from(strategies: Vec<Strategy>) -> Self {
        Self::new(strategies)
    }
}

impl StrategySet {
    /// Compile the set's regexes; strategies whose regex does not compile
    /// (only possible for sets that skipped validation) match nothing.
    pub fn new(strategies: Vec<Strategy>) -> Self {
        let limit = regex_limit(
            strategies
                .iter()
                .filter(|s| s.command_regex.is_some())
                .count(),
        );
        let regexes = strategies
            .iter()
            .map(|s| {
                s.command_regex
                    .as_deref()
                    .and_then(|r| compile_regex(r, limit).ok())
            })
            .collect();
        Self::compiled(strategies, regexes)
    }

    /// A set whose regexes were compiled already (one per strategy).
    pub(super) fn compiled(strategies: Vec<Strategy>, regexes: Vec<Option<Regex>>) -> Self {
        debug_assert_eq!(strategies.len(), regexes.len());
        Self {
            strategies,
            regexes,
            pid_start_ticks: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    /// The set, each `pid` strategy tied to the process that has the PID now.
    pub fn pinned(strategies: Vec<Strategy>, proc_root: &Path) -> Self {
        Self::new(strategies).pin(proc_root)
    }

    /// Tie each `pid` strategy to the process that has the PID now (or, when
    /// none has it, to no process).
    pub fn pin(mut self, proc_root: &Path) -> Self {
        self.pid_start_ticks = self
            .strategies
            .iter()
            .filter_map(|s| s.pid)
            .filter_map(|pid| {
                if !proc_root.join(pid.to_string()).exists() {
                    return Some((pid, NO_PROCESS_START_TICKS));
                }
                Some((pid, crate::pods::start_ticks(proc_root, pid)?))
            })
            .collect();
        self
    }

    /// The set with start times as saved (see [`super::StateStore::load`]).
    pub fn with_start_ticks(mut self, ticks: HashMap<u32, u64>) -> Self {
        self.pid_start_ticks = ticks;
        self
    }

    /// Whether resolving needs a process scan (regexes or selectors).
    pub fn needs_scan(&self) -> bool {
        self.strategies.iter().any(|s| s.pid.is_none())
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
            command_regex: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_rejected() {
        let e = serde_json::from_str::<StrategyRequest>(
            r#"{"strategies":[{"priority":true,"execution_time":1000000,"pid":5,"prio":1}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `prio`"), "{e}");
    }
}
