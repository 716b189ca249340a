//! Metrics that external schedulers report over the API (`POST
//! /api/v1/metrics`): the latest report of each reporter, bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::metrics::BssData;

/// Most external reporters (distinct `usersched_pid`s) kept; the one that
/// reported least recently is dropped first.
pub const MAX_EXTERNAL_REPORTERS: usize = 64;

/// Latest BssData reported by each external scheduler.
#[derive(Default)]
pub struct ExternalReports {
    reports: Mutex<HashMap<u32, (DateTime<Utc>, BssData)>>,
    /// Bumped on every insert, so readers can tell whether the list changed.
    version: AtomicU64,
}

impl ExternalReports {
    pub fn insert(&self, at: DateTime<Utc>, data: BssData) {
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        self.version.fetch_add(1, Ordering::Release);
        if !reports.contains_key(&data.usersched_pid) && reports.len() >= MAX_EXTERNAL_REPORTERS {
            if let Some(oldest) = reports
                .iter()
                .min_by_key(|(pid, (t, _))| (*t, **pid))
                .map(|(pid, _)| *pid)
            {
                reports.remove(&oldest);
            }
        }
        reports.insert(data.usersched_pid, (at, data));
    }

    /// Store `data` as its reporter's latest unless a newer report is kept
    /// (batches may carry older reports). Returns whether it was stored.
    pub fn insert_if_newer(&self, at: DateTime<Utc>, data: BssData) -> bool {
        let newer = self
            .reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&data.usersched_pid)
            .is_none_or(|(kept, _)| *kept <= at);
        if newer {
            self.insert(at, data);
        }
        newer
    }

    /// Every report, most recent first.
    pub fn list(&self) -> Vec<(DateTime<Utc>, BssData)> {
        let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<_> = reports.values().copied().collect();
        list.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(a.1.usersched_pid.cmp(&b.1.usersched_pid))
        });
        list
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.reports.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
