//! `strategy_no_pids`: a configured strategy that covers no process, most
//! likely a target that is misspelt or not running.

use super::{labels, Inputs};
use crate::alerts::config::ForRule;
use crate::alerts::Condition;

pub const STRATEGY_NO_PIDS: &str = "strategy_no_pids";

/// One condition per strategy that resolves to no PID.
pub fn no_pids(rule: &ForRule, inp: &Inputs) -> Vec<Condition> {
    if !rule.enabled {
        return Vec::new();
    }
    inp.strategies
        .iter()
        .filter(|s| s.pids == 0)
        .map(|s| Condition {
            name: STRATEGY_NO_PIDS,
            severity: rule.severity,
            labels: labels([
                ("strategy_index", s.index.to_string()),
                ("target", s.target.clone()),
            ]),
            message: format!("strategy {} ({}) resolves to no PID", s.index, s.target),
            for_secs: rule.for_secs,
            value: Some(0.0),
        })
        .collect()
}
