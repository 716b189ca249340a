//! Whether a posted (or saved) set may be accepted: one check per rule, the
//! first problem found is reported with the strategy's index and field.

use std::path::Path;

use regex::Regex;

use super::model::{
    compile_regex, regex_limit, LabelSelector, Strategy, StrategyRequest, StrategySet,
    MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN, MAX_REGEX_LEN, MAX_SELECTORS, MAX_SLICE_NS,
    MAX_STRATEGIES, MIN_SLICE_NS, SET_REGEX_BUDGET_BYTES,
};

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
    /// Check the processes the PIDs name now: they must be neither kernel
    /// threads nor scx_pilot (a POST); a PID without a process is accepted
    /// with a warning (the client may have seen it exit just before posting;
    /// the strategy then covers nothing). A saved set is loaded without:
    /// its processes may be gone and their PIDs reused, and the rest of the set
    /// must not be lost for that (resolution skips such PIDs).
    pub check_processes: bool,
}

type Check<T = ()> = Result<T, ValidationError>;

fn err(index: usize, field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        index,
        field: field.into(),
        message: message.into(),
    }
}

/// Check every strategy of a request; the first problem found is returned and
/// nothing is to be changed. An accepted request comes back as a set with its
/// regexes compiled.
pub fn validate(req: &StrategyRequest, ctx: &ValidationContext) -> Check<StrategySet> {
    check_count(req.strategies.len())?;
    let mut warnings = Vec::new();
    let strategies: Vec<Strategy> = req
        .strategies
        .iter()
        .enumerate()
        .map(|(i, s)| lenient(i, s, &mut warnings))
        .collect();
    let limit = regex_limit(
        strategies
            .iter()
            .filter(|s| s.command_regex.is_some())
            .count(),
    );
    let regexes = strategies
        .iter()
        .enumerate()
        .map(|(i, s)| check_strategy(i, s, ctx, limit, &mut warnings))
        .collect::<Check<Vec<_>>>()?;
    let mut set = StrategySet::compiled(strategies, regexes);
    set.warnings = warnings;
    Ok(set)
}

/// What real clients send that has one sensible meaning: `selectors: []`
/// (Gthulhu's web UI sends it beside `pid` or `command_regex`) is no
/// selectors, and a slice below the floor is raised to it (Gthulhu's default
/// configuration asks for 20 us). Each change is reported.
fn lenient(i: usize, s: &Strategy, warnings: &mut Vec<String>) -> Strategy {
    let mut s = s.clone();
    if s.selectors.as_ref().is_some_and(Vec::is_empty) {
        s.selectors = None;
    }
    match s.execution_time {
        0 => warnings.push(format!(
            "strategies[{i}].execution_time: 0 means the scheduler's default slice"
        )),
        ns if ns < MIN_SLICE_NS => {
            warnings.push(format!(
                "strategies[{i}].execution_time: {ns} ns raised to {MIN_SLICE_NS} ns, the shortest slice the scheduler honours"
            ));
            s.execution_time = MIN_SLICE_NS;
        }
        _ => {}
    }
    s
}

fn check_count(count: usize) -> Check {
    if count > MAX_STRATEGIES {
        return Err(err(
            MAX_STRATEGIES,
            "",
            format!("too many strategies ({count}); at most {MAX_STRATEGIES}"),
        ));
    }
    Ok(())
}

/// One strategy's checks, in the order their errors are reported; returns its
/// compiled regex.
fn check_strategy(
    i: usize,
    s: &Strategy,
    ctx: &ValidationContext,
    regex_limit: usize,
    warnings: &mut Vec<String>,
) -> Check<Option<Regex>> {
    check_slice(i, s.execution_time)?;
    check_targets(i, s)?;
    if let Some(pid) = s.pid {
        check_pid(i, pid)?;
        if ctx.check_processes {
            if let Some(warning) = check_process(i, pid, ctx)? {
                warnings.push(warning);
            }
        }
    }
    let regex = s
        .command_regex
        .as_deref()
        .map(|re| check_regex(i, re, regex_limit))
        .transpose()?;
    if let Some(selectors) = &s.selectors {
        check_selectors(i, selectors)?;
    }
    Ok(regex)
}

/// Above the ceiling is refused: raising a slice is harmless, cutting one
/// the client asked to be long would not be what it asked for.
fn check_slice(i: usize, slice_ns: u64) -> Check {
    if slice_ns > MAX_SLICE_NS {
        return Err(err(
            i,
            "execution_time",
            format!("{slice_ns} ns is out of range {MIN_SLICE_NS}..={MAX_SLICE_NS} ns (0: the default slice)"),
        ));
    }
    Ok(())
}

/// A strategy targets something, and a `pid` alone.
fn check_targets(i: usize, s: &Strategy) -> Check {
    match (s.pid, &s.selectors, &s.command_regex) {
        (None, None, None) => Err(err(
            i,
            "pid",
            "a strategy must target something: give a pid, selectors or a command_regex",
        )),
        (Some(_), Some(_), _) => Err(err(
            i,
            "selectors",
            "give either a pid or selectors, not both",
        )),
        (Some(_), _, Some(_)) => Err(err(
            i,
            "command_regex",
            "give either a pid or a command_regex, not both",
        )),
        _ => Ok(()),
    }
}

fn check_pid(i: usize, pid: u32) -> Check {
    if pid <= 1 {
        return Err(err(i, "pid", format!("PID {pid} cannot carry a strategy")));
    }
    Ok(())
}

/// The process the PID names now may carry a strategy; a PID without a
/// process gives a warning.
fn check_process(i: usize, pid: u32, ctx: &ValidationContext) -> Check<Option<String>> {
    if pid == ctx.agent_pid {
        return Err(err(
            i,
            "pid",
            format!("PID {pid} is scx_pilot itself and cannot carry a strategy"),
        ));
    }
    if !ctx.proc_root.join(pid.to_string()).exists() {
        return Ok(Some(format!(
            "strategies[{i}].pid: no process with PID {pid}: accepted, it covers nothing (a later process with this PID is not covered either)"
        )));
    }
    if crate::pods::is_kernel_thread(ctx.proc_root, pid) {
        return Err(err(
            i,
            "pid",
            format!("PID {pid} is a kernel thread and cannot carry a strategy"),
        ));
    }
    Ok(None)
}

fn check_regex(i: usize, re: &str, limit: usize) -> Check<Regex> {
    if re.is_empty() || re.len() > MAX_REGEX_LEN {
        return Err(err(
            i,
            "command_regex",
            format!("must be 1..={MAX_REGEX_LEN} bytes long"),
        ));
    }
    compile_regex(re, limit).map_err(|e| {
        if let regex::Error::CompiledTooBig(_) = e {
            return err(
                i,
                "command_regex",
                format!(
                    "compiles to more than its share of memory ({} KiB; the regexes of one set \
                     may take {} MiB together): simplify it or post fewer regexes",
                    limit >> 10,
                    SET_REGEX_BUDGET_BYTES >> 20
                ),
            );
        }
        // The regex error spans several lines; keep the message on one.
        let msg = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        err(
            i,
            "command_regex",
            format!("is not a valid regular expression: {msg}"),
        )
    })
}

fn check_selectors(i: usize, selectors: &[LabelSelector]) -> Check {
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
    selectors
        .iter()
        .enumerate()
        .try_for_each(|(j, sel)| check_selector(i, j, sel))
}

fn check_selector(i: usize, j: usize, sel: &LabelSelector) -> Check {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::strategy::testing::{ctx, pid_strategy};

    #[test]
    fn validation_names_index_and_field() {
        let req = StrategyRequest {
            strategies: vec![
                pid_strategy(std::process::id(), 1_000_000),
                pid_strategy(std::process::id(), 2_000_000_000),
            ],
        };
        let e = validate(&req, &ctx()).unwrap_err();
        assert_eq!(e.index, 1);
        assert_eq!(e.field, "execution_time");
        assert_eq!(
            e.to_string(),
            "strategies[1].execution_time: 2000000000 ns is out of range 50000..=1000000000 ns (0: the default slice)"
        );
    }

    #[test]
    fn validation_bounds_are_inclusive() {
        for ns in [MIN_SLICE_NS, MAX_SLICE_NS] {
            let req = StrategyRequest {
                strategies: vec![pid_strategy(std::process::id(), ns)],
            };
            assert!(validate(&req, &ctx()).is_ok());
        }
        let req = StrategyRequest {
            strategies: vec![pid_strategy(std::process::id(), MAX_SLICE_NS + 1)],
        };
        assert!(validate(&req, &ctx()).is_err());
    }

    #[test]
    fn short_slices_are_raised_and_reported() {
        let req = StrategyRequest {
            strategies: vec![
                pid_strategy(std::process::id(), MIN_SLICE_NS - 1),
                pid_strategy(std::process::id(), 0),
                pid_strategy(std::process::id(), 20_000),
            ],
        };
        let set = validate(&req, &ctx()).unwrap();
        let slices: Vec<u64> = set.strategies.iter().map(|s| s.execution_time).collect();
        assert_eq!(slices, [MIN_SLICE_NS, 0, MIN_SLICE_NS]);
        assert_eq!(set.warnings.len(), 3, "{:?}", set.warnings);
        assert!(set.warnings[0]
            .starts_with("strategies[0].execution_time: 49999 ns raised to 50000 ns"));
        assert!(set.warnings[1].contains("default slice"));
    }

    #[test]
    fn accepts_pids_without_a_process_with_a_warning_only_when_checking() {
        let req = StrategyRequest {
            strategies: vec![pid_strategy(u32::MAX - 1, 1_000_000)],
        };
        let set = validate(&req, &ctx()).unwrap();
        assert_eq!(set.warnings.len(), 1);
        assert!(
            set.warnings[0].starts_with("strategies[0].pid: no process with PID"),
            "{:?}",
            set.warnings
        );
        let saved = ValidationContext {
            check_processes: false,
            ..ctx()
        };
        assert!(validate(&req, &saved).unwrap().warnings.is_empty());
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
        if crate::pods::is_kernel_thread(Path::new("/proc"), 2) {
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
        // `selectors: []` is no selectors: still no target.
        s.selectors = Some(vec![]);
        let e = validate(
            &StrategyRequest {
                strategies: vec![s.clone()],
            },
            &ctx(),
        )
        .unwrap_err();
        assert!(e.message.contains("must target something"));
        // Beside a pid it is dropped.
        s.pid = Some(std::process::id());
        let set = validate(
            &StrategyRequest {
                strategies: vec![s.clone()],
            },
            &ctx(),
        )
        .unwrap();
        assert_eq!(set.strategies[0].selectors, None);
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
    fn regex_validation() {
        let mut s = pid_strategy(1000, 1_000_000);
        s.pid = None;
        s.command_regex = Some("(unclosed".into());
        let e = validate(
            &StrategyRequest {
                strategies: vec![pid_strategy(std::process::id(), 1_000_000), s.clone()],
            },
            &ctx(),
        )
        .unwrap_err();
        assert_eq!((e.index, e.field.as_str()), (1, "command_regex"));
        assert!(!e.message.contains('\n'));
        s.command_regex = Some("^nginx$".into());
        assert!(validate(
            &StrategyRequest {
                strategies: vec![s.clone()]
            },
            &ctx()
        )
        .is_ok());
        s.pid = Some(1000);
        let e = validate(
            &StrategyRequest {
                strategies: vec![s],
            },
            &ctx(),
        )
        .unwrap_err();
        assert!(e.message.contains("not both"), "{e}");
    }
}
