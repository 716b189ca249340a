//! The accepted set as the agent holds it: what was posted, what it resolved
//! to, and when.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::model::{Strategy, StrategySet};
use super::resolve::{resolve, ResolveInput, Resolved};

/// The accepted strategy set and what it resolved to.
#[derive(Debug, Clone)]
pub struct StrategyState {
    pub strategies: Vec<Strategy>,
    pub set: StrategySet,
    pub resolved: Resolved,
    /// When the set was last replaced (or loaded).
    pub updated_at: DateTime<Utc>,
    /// When it was last resolved.
    pub resolved_at: DateTime<Utc>,
    /// Bumped on every replacement, so a resolution computed from an older set
    /// is never stored over a newer one.
    pub generation: u64,
}

impl StrategyState {
    /// A set resolved against `proc_root` (a fresh scan when it needs one), without pod labels.
    pub fn new(set: impl Into<StrategySet>, proc_root: &Path) -> Self {
        let set = set.into();
        let snapshot = if set.needs_scan() {
            crate::pods::scan_all(proc_root).ok()
        } else {
            None
        };
        let resolved = resolve(
            &set,
            &ResolveInput {
                proc_root,
                snapshot: snapshot.as_ref(),
                pods: None,
                agent_pid: std::process::id(),
            },
        );
        Self::with_resolved(set, resolved, 0)
    }

    pub fn with_resolved(set: StrategySet, resolved: Resolved, generation: u64) -> Self {
        let now = Utc::now();
        Self {
            strategies: set.strategies.clone(),
            set,
            resolved,
            updated_at: now,
            resolved_at: now,
            generation,
        }
    }
}
