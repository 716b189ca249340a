//! `proc_scan_failing`: the `/proc` scans behind strategy resolution fail
//! (out of file descriptors or memory), so new processes are not picked up:
//! the last good resolution stays applied until a scan succeeds.

use super::labels;
use crate::alerts::config::ForRule;
use crate::alerts::Condition;
use crate::pods::ScanHealth;

pub const PROC_SCAN_FAILING: &str = "proc_scan_failing";

pub fn failing(rule: &ForRule, scan: &ScanHealth) -> Option<Condition> {
    if !(rule.enabled && scan.failing) {
        return None;
    }
    Some(Condition {
        name: PROC_SCAN_FAILING,
        severity: rule.severity,
        labels: labels([]),
        message: format!(
            "the /proc scan fails ({} failures since start; last error: {}); \
             strategies keep their last resolution",
            scan.failures_total,
            scan.last_error.as_deref().unwrap_or("none")
        ),
        for_secs: rule.for_secs,
        value: None,
    })
}
