//! Scheduling strategies: the model users post, its validation, its
//! resolution to the `pid -> strategy` set the scheduler applies, the
//! persistence of the accepted set, and the thread that keeps it resolved.
//!
//! Targets (a strategy needs at least one):
//! - `pid`: that process (the BPF side covers all its threads through the tgid
//!   lookup) while it exists; it cannot be combined with the other targets;
//! - `command_regex`: every process whose command (`comm`, at most 15 bytes)
//!   matches (unanchored; write `^...$` for a whole-name match);
//! - `selectors`: every process in a pod whose labels match all selectors
//!   (exact key=value, AND);
//! - `command_regex` + `selectors`: processes in matching pods whose command
//!   also matches.
//!
//! Precedence when several strategies match one PID: the most specific kind
//! wins, `pid` > `command_regex` (with or without selectors) > `selectors` only;
//! among strategies of the same kind, the first one in the posted list wins.
//! PID 1, kernel threads and scx_pilot itself are never targeted.
//!
//! Cluster strategies (`SchedulingStrategy` resources, see [`cluster`])
//! cover only the PIDs this set leaves.
//!
//! Data flows one way: a posted set is validated ([`validate`]), then
//! [`replace`] resolves, saves, stores it in the agent's state and sends it to
//! the scheduler; the [`resolver`] thread re-resolves the stored set as
//! processes and pods come and go.

mod apply;
pub mod cluster;
mod cluster_handle;
mod model;
mod resolve;
pub mod resolver;
mod state;
mod store;
mod validate;

pub use apply::{replace, ReplaceError, Replaced, SetSize};
pub use cluster_handle::{ClusterHandle, ClusterStatus};
pub use model::{
    from_static, DesiredStrategies, LabelSelector, PidStrategy, PriorityWire, ResolvedStrategy,
    Strategy, StrategyRequest, StrategySet, MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN, MAX_REGEX_LEN,
    MAX_SELECTORS, MAX_SLICE_NS, MAX_STRATEGIES, MIN_SLICE_NS,
};
pub use resolve::{resolve, ResolveInput, Resolved, StrategyResolution};
pub use state::StrategyState;
pub use store::{Saved, StateStore, STATE_FILE};
pub use validate::{validate, ValidationContext, ValidationError};
#[cfg(test)]
mod testing;
