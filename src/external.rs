//! Metrics that external schedulers report over the API (`POST
//! /api/v1/metrics`): the latest report of each reporter, bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::metrics::BssData;

/// Most external reporters kept; the one that reported least recently is
/// dropped first.
pub const MAX_EXTERNAL_REPORTERS: usize = 64;

/// Who a report comes from: its `usersched_pid` when it carries one (not 0),
/// else the address of the client that sent it. Gthulhu's scheduler sends no
/// `usersched_pid`; one such reporter per host is the deployment it has (a
/// DaemonSet), and the peer address needs no trust in anything the client
/// says (a forwarded-for header could be made up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reporter {
    Pid(u32),
    /// None when the connection has no peer address (tests, Unix sockets).
    Address(Option<IpAddr>),
}

impl Reporter {
    pub fn of(data: &BssData, peer: Option<IpAddr>) -> Self {
        match data.usersched_pid {
            0 => Reporter::Address(peer),
            pid => Reporter::Pid(pid),
        }
    }
}

impl std::fmt::Display for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reporter::Pid(pid) => write!(f, "usersched_pid {pid}"),
            Reporter::Address(Some(ip)) => write!(f, "address {ip}"),
            Reporter::Address(None) => f.write_str("address unknown"),
        }
    }
}

/// One kept report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub reporter: Reporter,
    pub received_at: DateTime<Utc>,
    pub data: BssData,
}

/// Latest BssData reported by each external scheduler.
#[derive(Default)]
pub struct ExternalReports {
    reports: Mutex<HashMap<Reporter, (DateTime<Utc>, BssData)>>,
    /// Bumped on every insert, so readers can tell whether the list changed.
    version: AtomicU64,
}

impl ExternalReports {
    pub fn insert(&self, reporter: Reporter, at: DateTime<Utc>, data: BssData) {
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        self.version.fetch_add(1, Ordering::Release);
        if !reports.contains_key(&reporter) && reports.len() >= MAX_EXTERNAL_REPORTERS {
            if let Some(oldest) = reports
                .iter()
                .min_by_key(|(who, (t, _))| (*t, **who))
                .map(|(who, _)| *who)
            {
                reports.remove(&oldest);
            }
        }
        reports.insert(reporter, (at, data));
    }

    /// Store `data` as its reporter's latest unless a newer report is kept
    /// (batches may carry older reports). Returns whether it was stored.
    pub fn insert_if_newer(&self, reporter: Reporter, at: DateTime<Utc>, data: BssData) -> bool {
        let newer = self
            .reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&reporter)
            .is_none_or(|(kept, _)| *kept <= at);
        if newer {
            self.insert(reporter, at, data);
        }
        newer
    }

    /// Every report with its reporter, most recent first.
    pub fn reports(&self) -> Vec<Report> {
        let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<Report> = reports
            .iter()
            .map(|(&reporter, &(received_at, data))| Report {
                reporter,
                received_at,
                data,
            })
            .collect();
        list.sort_by(|a, b| {
            b.received_at
                .cmp(&a.received_at)
                .then(a.reporter.cmp(&b.reporter))
        });
        list
    }

    /// Every report, most recent first.
    pub fn list(&self) -> Vec<(DateTime<Utc>, BssData)> {
        self.reports()
            .into_iter()
            .map(|r| (r.received_at, r.data))
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reporters_without_a_pid_are_kept_apart_by_address() {
        let ext = ExternalReports::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let data = |pid, q| BssData {
            usersched_pid: pid,
            nr_queued: q,
            ..Default::default()
        };
        for (pid, peer, q) in [(0, a, 1), (0, b, 2), (0, a, 3), (7, a, 4)] {
            let d = data(pid, q);
            ext.insert(Reporter::of(&d, Some(peer)), Utc::now(), d);
        }
        let mut got: Vec<_> = ext
            .reports()
            .iter()
            .map(|r| (r.reporter.to_string(), r.data.nr_queued))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("address 10.0.0.1".to_string(), 3),
                ("address 10.0.0.2".to_string(), 2),
                ("usersched_pid 7".to_string(), 4),
            ]
        );
    }
}
