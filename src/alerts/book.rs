//! The alert book: which conditions are pending, which alerts fire, and the
//! bounded ring of resolved ones. Pure state, fed one evaluation at a time
//! with the conditions that hold now, so the fire/resolve logic is tested
//! without threads or clocks.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};

use super::{Alert, AlertState, Condition, Event, EventKind};

struct Pending {
    since: DateTime<Utc>,
}

/// Pending conditions, firing alerts and recently resolved ones.
pub struct AlertBook {
    pending: HashMap<String, Pending>,
    firing: BTreeMap<String, Alert>,
    recent: VecDeque<Alert>,
    recent_max: usize,
    /// Alerts fired since start, by rule name.
    pub fired_total: BTreeMap<&'static str, u64>,
}

impl AlertBook {
    pub fn new(recent_max: usize) -> Self {
        Self {
            pending: HashMap::new(),
            firing: BTreeMap::new(),
            recent: VecDeque::new(),
            recent_max: recent_max.max(1),
            fired_total: BTreeMap::new(),
        }
    }

    /// One evaluation: `holding` are the conditions true at `now`. A condition
    /// fires once it has held for its `for_secs`; a firing alert whose
    /// condition no longer holds resolves. Returns what fired and resolved.
    pub fn update(&mut self, now: DateTime<Utc>, holding: Vec<Condition>) -> Vec<Event> {
        let mut events = Vec::new();
        let mut seen = std::collections::HashSet::with_capacity(holding.len());
        for c in holding {
            let key = c.key();
            seen.insert(key.clone());
            if let Some(a) = self.firing.get_mut(&key) {
                // Still firing: keep the message current (the value moves).
                a.message = c.message;
                a.value = c.value;
                continue;
            }
            let since = self
                .pending
                .entry(key.clone())
                .or_insert(Pending { since: now })
                .since;
            let held = (now - since).num_milliseconds().max(0) as u64;
            if held < c.for_secs.saturating_mul(1000) {
                continue;
            }
            self.pending.remove(&key);
            let alert = Alert {
                name: c.name,
                severity: c.severity,
                state: AlertState::Firing,
                since,
                fired_at: now,
                resolved_at: None,
                message: c.message,
                labels: c.labels,
                value: c.value,
            };
            *self.fired_total.entry(c.name).or_default() += 1;
            events.push(Event {
                kind: EventKind::Firing,
                alert: alert.clone(),
            });
            self.firing.insert(key, alert);
        }
        self.pending.retain(|k, _| seen.contains(k));
        let gone: Vec<String> = self
            .firing
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            let Some(mut alert) = self.firing.remove(&key) else {
                continue;
            };
            alert.state = AlertState::Resolved;
            alert.resolved_at = Some(now);
            if self.recent.len() >= self.recent_max {
                self.recent.pop_front();
            }
            self.recent.push_back(alert.clone());
            events.push(Event {
                kind: EventKind::Resolved,
                alert,
            });
        }
        events
    }

    /// Firing alerts, oldest first.
    pub fn active(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self.firing.values().cloned().collect();
        v.sort_by(|a, b| a.fired_at.cmp(&b.fired_at).then(a.name.cmp(b.name)));
        v
    }

    /// Resolved alerts, most recently resolved first.
    pub fn recent(&self) -> Vec<Alert> {
        self.recent.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Severity;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn cond(name: &'static str, pod: &str, for_secs: u64) -> Condition {
        Condition {
            name,
            severity: Severity::Warning,
            labels: [("pod".to_string(), pod.to_string())].into(),
            message: format!("{name} on {pod}"),
            for_secs,
            value: Some(1.0),
        }
    }

    #[test]
    fn fires_after_its_duration_and_resolves_when_the_condition_ends() {
        let mut b = AlertBook::new(10);
        assert!(b.update(at(0), vec![cond("r", "a", 5)]).is_empty());
        assert!(b.update(at(4), vec![cond("r", "a", 5)]).is_empty());
        assert!(b.active().is_empty());
        let ev = b.update(at(5), vec![cond("r", "a", 5)]);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, EventKind::Firing);
        assert_eq!(ev[0].alert.since, at(0));
        assert_eq!(ev[0].alert.fired_at, at(5));
        assert_eq!(b.active().len(), 1);
        // Still holding: no new event.
        assert!(b.update(at(6), vec![cond("r", "a", 5)]).is_empty());
        let ev = b.update(at(7), vec![]);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, EventKind::Resolved);
        assert_eq!(ev[0].alert.resolved_at, Some(at(7)));
        assert!(b.active().is_empty());
        assert_eq!(b.recent().len(), 1);
        assert_eq!(b.recent()[0].state, AlertState::Resolved);
        assert_eq!(b.fired_total["r"], 1);
    }

    #[test]
    fn an_interrupted_condition_starts_its_duration_again() {
        let mut b = AlertBook::new(10);
        b.update(at(0), vec![cond("r", "a", 5)]);
        b.update(at(4), vec![]);
        assert!(b.update(at(6), vec![cond("r", "a", 5)]).is_empty());
        assert!(b.update(at(10), vec![cond("r", "a", 5)]).is_empty());
        assert_eq!(b.update(at(11), vec![cond("r", "a", 5)]).len(), 1);
    }

    #[test]
    fn labels_make_separate_alerts_and_recent_is_bounded() {
        let mut b = AlertBook::new(2);
        let ev = b.update(at(0), vec![cond("r", "a", 0), cond("r", "b", 0)]);
        assert_eq!(ev.len(), 2);
        assert_eq!(b.active().len(), 2);
        b.update(at(1), vec![cond("r", "b", 0)]);
        assert_eq!(b.active().len(), 1);
        for i in 0..3 {
            b.update(at(2 + 2 * i), vec![cond("r", "c", 0)]);
            b.update(at(3 + 2 * i), vec![]);
        }
        let recent = b.recent();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].resolved_at, Some(at(7)));
        assert_eq!(b.fired_total["r"], 5);
    }
}
