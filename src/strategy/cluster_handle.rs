//! The cluster strategies this agent holds now, and the state of the watch
//! that delivers them, for `/health` and the alerts.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::cluster::ClusterSet;
use crate::mailbox::{Notify, Wake};

/// The state of the `SchedulingStrategy` watch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClusterStatus {
    /// "not configured" (no Kubernetes API), "not installed" (no CRD in the
    /// cluster), "connecting", "ok" or "error" (the last known cluster
    /// strategies stay applied while retrying).
    #[schema(example = "ok")]
    pub status: &'static str,
    pub connected: bool,
    /// Cluster strategies this node applies now (known ones while disconnected).
    pub strategies: usize,
    /// Of those, the ones that cannot apply (see their status condition).
    pub invalid: usize,
    /// When the list of resources was last complete.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The last watch error, kept until the next complete list.
    pub last_error: Option<String>,
    /// Watch attempts that failed since the last complete list.
    pub failures: u64,
    /// Status patches sent, and those that failed.
    pub status_patches: u64,
    pub status_patch_errors: u64,
    pub last_status_error: Option<String>,
}

impl Default for ClusterStatus {
    fn default() -> Self {
        Self {
            status: "not configured",
            connected: false,
            strategies: 0,
            invalid: 0,
            last_sync_at: None,
            last_error: None,
            failures: 0,
            status_patches: 0,
            status_patch_errors: 0,
            last_status_error: None,
        }
    }
}

impl ClusterStatus {
    /// The watch was configured and cannot reach the API server now.
    pub fn disconnected(&self) -> bool {
        matches!(self.status, "connecting" | "error")
    }
}

/// The cluster set, shared by the watcher (writer) and the resolver.
#[derive(Default)]
pub struct ClusterHandle {
    set: ArcSwap<ClusterSet>,
    status: Mutex<ClusterStatus>,
    notify: Notify,
}

impl ClusterHandle {
    pub fn set(&self) -> Arc<ClusterSet> {
        self.set.load_full()
    }

    pub fn status(&self) -> ClusterStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn update_status(&self, f: impl FnOnce(&mut ClusterStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Who to wake when the set changes (the resolver).
    pub fn set_notify(&self, wake: Wake) {
        self.notify.set(wake);
    }

    /// Replace the set and wake the resolver.
    pub fn publish(&self, set: ClusterSet) {
        let (n, invalid) = (
            set.strategies.len(),
            set.strategies
                .iter()
                .filter(|s| s.invalid.is_some())
                .count(),
        );
        self.set.store(Arc::new(set));
        self.update_status(|s| {
            s.strategies = n;
            s.invalid = invalid;
        });
        self.notify.post();
    }
}
