//! `priority_pod_wait`: a pod with a process under a priority strategy waits
//! on run queues longer than the thresholds allow.

use super::{labels, Inputs, PriorityPod};
use crate::alerts::config::PodWaitRule;
use crate::alerts::Condition;

pub const PRIORITY_POD_WAIT: &str = "priority_pod_wait";

/// One condition per priority pod above a threshold.
pub fn priority_pod_wait(rule: &PodWaitRule, inp: &Inputs) -> Vec<Condition> {
    if !rule.enabled {
        return Vec::new();
    }
    inp.priority_pods
        .iter()
        .filter_map(|p| pod_wait(rule, p))
        .collect()
}

/// The pod's wait against the thresholds; the wait per timeslice is checked
/// first, since it says how long one wakeup waits.
fn pod_wait(rule: &PodWaitRule, p: &PriorityPod) -> Option<Condition> {
    let f = p.figures.as_ref()?;
    let per_slice = f
        .avg_wait_us_per_timeslice
        .zip(rule.max_avg_wait_us_per_timeslice)
        .filter(|(v, max)| v > max);
    let per_s = rule
        .max_wait_ms_per_s
        .filter(|max| f.runqueue_wait_ms_per_s > *max);
    let (value, what) = if let Some((v, max)) = per_slice {
        (v, format!("{v:.0} µs per timeslice (threshold {max} µs)"))
    } else {
        let max = per_s?;
        (
            f.runqueue_wait_ms_per_s,
            format!(
                "{:.1} ms per second (threshold {max} ms/s)",
                f.runqueue_wait_ms_per_s
            ),
        )
    };
    let pod = if p.name.is_empty() {
        format!("pod {}", p.uid)
    } else {
        format!("pod {}/{}", p.namespace, p.name)
    };
    Some(Condition {
        name: PRIORITY_POD_WAIT,
        severity: rule.severity,
        labels: labels([
            ("namespace", p.namespace.clone()),
            ("pod", p.name.clone()),
            ("pod_uid", p.uid.clone()),
        ]),
        message: format!("{pod}, under a priority strategy, waits on run queues {what}"),
        for_secs: rule.for_secs,
        value: Some(value),
    })
}
