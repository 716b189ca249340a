//! `scheduler_detached` and `scheduler_restarted`: the state of scx_pilot's
//! own scheduler as the kernel reports it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Inputs;
use crate::alerts::config::{ForRule, RestartRule};
use crate::alerts::Condition;

pub const SCHEDULER_DETACHED: &str = "scheduler_detached";
pub const SCHEDULER_RESTARTED: &str = "scheduler_restarted";

/// `scheduler_detached`: the scheduler was attached once and is not now.
/// Only in a mode that runs the scheduler: without one there is nothing to
/// miss, and before the first attach the agent is still starting.
pub fn detached(rule: &ForRule, inp: &Inputs) -> Option<Condition> {
    let holds = inp.mode.runs_scheduler() && !inp.attached && inp.was_attached;
    (rule.enabled && holds).then(|| Condition {
        name: SCHEDULER_DETACHED,
        severity: rule.severity,
        labels: BTreeMap::new(),
        message: format!(
            "the scx_pilot scheduler is not attached; every task runs on the \
             kernel's default scheduler and no strategy applies (last exit: {})",
            inp.last_exit.as_deref().unwrap_or("unknown")
        ),
        for_secs: rule.for_secs,
        value: None,
    })
}

/// `scheduler_restarted`. The state only counts restarts since start, so the
/// rule remembers the count it saw last to notice a new one, and when that
/// was, to hold the alert for `hold_secs` after it.
#[derive(Debug, Default)]
pub struct Restarts {
    seen: Option<u64>,
    last_at: Option<DateTime<Utc>>,
}

impl Restarts {
    pub fn evaluate(&mut self, rule: &RestartRule, inp: &Inputs) -> Option<Condition> {
        if self.seen.is_some_and(|seen| inp.restarts > seen) {
            self.last_at = Some(inp.now);
        }
        self.seen = Some(inp.restarts);
        let last = self.last_at?;
        let holds = (inp.now - last).num_seconds() < rule.hold_secs as i64;
        (rule.enabled && holds).then(|| Condition {
            name: SCHEDULER_RESTARTED,
            severity: rule.severity,
            labels: BTreeMap::new(),
            message: format!(
                "the kernel restarted the scheduler ({} restarts since start, last at \
                 {}; exit: {})",
                inp.restarts,
                crate::timefmt::rfc3339(last),
                inp.last_exit.as_deref().unwrap_or("unknown")
            ),
            for_secs: 0,
            value: Some(inp.restarts as f64),
        })
    }
}
