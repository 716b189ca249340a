//! Accepting a validated set: resolve it against a fresh scan, save it, store
//! it in the agent's state and hand it to the scheduler, in that order;
//! nothing changes when it cannot be saved.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::model::StrategySet;
use super::resolve::{resolve, ResolveInput, Resolved};
use super::state::StrategyState;
use crate::state::AgentState;

/// Why a validated set was not accepted; the current set stays.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    /// The set needs the processes, and `/proc` could not be scanned.
    #[error("scanning processes")]
    PodScan(#[source] std::io::Error),
    /// The state file could not be written.
    #[error("saving the strategy set to {}", path.display())]
    Save {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How big a set is: its strategies and the PIDs they resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetSize {
    pub strategies: usize,
    pub pids: usize,
}

/// What a replacement changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaced {
    pub before: SetSize,
    pub after: SetSize,
    /// When the new set was accepted.
    pub updated_at: DateTime<Utc>,
}

/// Make `set` (validated, processes checked) the agent's set: each `pid`
/// strategy is tied to the process that has the PID now.
pub fn replace(state: &AgentState, set: StrategySet) -> Result<Replaced, ReplaceError> {
    let set = set.pin(&state.proc_root);
    let resolved = resolve_now(state, &set)?;
    // Writers go one at a time, so the file and the scheduler see sets in
    // the order they are stored; readers only wait for the swap below, never
    // for the disk.
    let _writer = state.lock_strategy_writes();
    if let Some(store) = &state.state_store {
        store.save(&set).map_err(|source| ReplaceError::Save {
            path: store.path(),
            source,
        })?;
    }
    let mut current = state.lock_strategies();
    let before = size(&current);
    let next = StrategyState::with_resolved(set, resolved, current.generation + 1);
    state.send_desired(next.resolved.desired.clone());
    let replaced = Replaced {
        before,
        after: size(&next),
        updated_at: next.updated_at,
    };
    let old = std::mem::replace(&mut *current, next);
    drop(current);
    drop(old);
    return_freed_memory();
    Ok(replaced)
}

/// Resolve against the processes as they are now: the poster expects the
/// processes it sees.
fn resolve_now(state: &AgentState, set: &StrategySet) -> Result<Resolved, ReplaceError> {
    let cluster = state.cluster.set();
    let snapshot = if set.needs_scan() || !cluster.is_empty() {
        Some(
            state
                .pods
                .get_within(Duration::ZERO)
                .map_err(ReplaceError::PodScan)?,
        )
    } else {
        None
    };
    let dir = state.pod_meta.directory();
    let input = ResolveInput {
        proc_root: &state.proc_root,
        snapshot: snapshot.as_deref(),
        pods: dir.as_deref(),
        agent_pid: state.agent_pid,
    };
    let mut resolved = resolve(set, &input);
    super::cluster::resolve_into(&cluster, &input, &mut resolved);
    Ok(resolved)
}

fn size(s: &StrategyState) -> SetSize {
    SetSize {
        strategies: s.strategies.len(),
        pids: s.resolved.desired.len(),
    }
}

/// Hand the memory of a replaced set (compiled regexes above all) back to the
/// system instead of keeping it in the allocator's free lists.
fn return_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory; no pointer is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}
