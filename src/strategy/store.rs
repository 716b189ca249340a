//! Keeping the accepted set across restarts: one JSON file under the state
//! directory, replaced atomically.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::{Strategy, StrategySet};
use crate::secure_fs::{self, TrustError};

/// A start time no process has: the recorded one is from an earlier boot.
const EARLIER_BOOT: u64 = u64::MAX;

/// The file under the state directory that holds the accepted set.
pub const STATE_FILE: &str = "strategies.json";

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    saved_at: DateTime<Utc>,
    strategies: Vec<Strategy>,
    /// The boot the start times below belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    boot_id: Option<String>,
    /// PID -> start time of the process each `pid` strategy was accepted for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pid_start_ticks: BTreeMap<u32, u64>,
}

/// A set as loaded from the state file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Saved {
    pub strategies: Vec<Strategy>,
    /// As saved when the file is from this boot; after a reboot every saved
    /// PID names a process that is gone, so none of them matches.
    pub pid_start_ticks: HashMap<u32, u64>,
}

/// Where the accepted set is kept across restarts.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    boot_id: Option<String>,
}

impl StateStore {
    /// A store in `dir`, created (mode 0700) when missing. A directory that
    /// another user could change, or a symlink, is refused; temporary files a
    /// killed agent left behind are removed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, TrustError> {
        let store = Self::unopened(dir);
        secure_fs::ensure_dir(&store.dir)?;
        let stale = secure_fs::remove_stale_temps(&store.dir, STATE_FILE);
        if stale > 0 {
            log::info!(
                "removed {stale} temporary file(s) an earlier run left in {}",
                store.dir.display()
            );
        }
        Ok(store)
    }

    /// A store in `dir` that [`StateStore::open`] could not prepare (a mount
    /// not there yet, a read-only file system): each save tries again, so a
    /// POST fails while the directory cannot be written and saves once it can.
    pub fn unopened(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            boot_id: crate::pods::boot_id(Path::new("/proc")),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The saved set, None when nothing was saved yet.
    pub fn load(&self) -> anyhow::Result<Option<Saved>> {
        use anyhow::Context;
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            // No file, or no directory for it to be in (it could not be made).
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let file: StateFile = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", path.display()))?;
        anyhow::ensure!(
            file.version == 1,
            "{}: unknown version {}",
            path.display(),
            file.version
        );
        let same_boot = file.boot_id.is_some() && file.boot_id == self.boot_id;
        let pid_start_ticks = file
            .strategies
            .iter()
            .filter_map(|s| s.pid)
            .filter_map(|pid| {
                let saved = file.pid_start_ticks.get(&pid).copied();
                match (same_boot, saved) {
                    (true, saved) => Some((pid, saved?)),
                    // Saved before start times were kept: trust the PID only
                    // within the boot, and there is no telling which boot.
                    (false, None) if file.boot_id.is_none() => None,
                    (false, _) => Some((pid, EARLIER_BOOT)),
                }
            })
            .collect();
        Ok(Some(Saved {
            strategies: file.strategies,
            pid_start_ticks,
        }))
    }

    /// Move the state file aside (see [`secure_fs::set_aside`]), for a file
    /// that cannot be loaded: the next save must not overwrite the only copy.
    pub fn set_aside(&self) -> std::io::Result<PathBuf> {
        secure_fs::set_aside(&self.dir, STATE_FILE)
    }

    /// Write the set atomically ([`secure_fs::replace_atomically`]): a crash
    /// at any point leaves either the old or the new set, never a torn file.
    /// The directory is checked (created when missing) first, every time: it
    /// may not have been there at start, or may have been changed since.
    pub fn save(&self, set: &StrategySet) -> std::io::Result<()> {
        secure_fs::ensure_dir(&self.dir).map_err(std::io::Error::other)?;
        let body = serde_json::to_vec_pretty(&StateFile {
            version: 1,
            saved_at: Utc::now(),
            strategies: set.strategies.clone(),
            boot_id: self.boot_id.clone(),
            pid_start_ticks: set.pid_start_ticks.iter().map(|(&p, &t)| (p, t)).collect(),
        })
        .map_err(std::io::Error::other)?;
        let mut body = body;
        body.push(b'\n');
        secure_fs::replace_atomically(&self.dir, STATE_FILE, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::testing::pid_strategy;
    use crate::strategy::{resolve, ResolveInput};

    fn into_set(saved: Saved) -> StrategySet {
        StrategySet::new(saved.strategies).with_start_ticks(saved.pid_start_ticks)
    }

    #[test]
    fn state_store_round_trip_is_atomic() {
        let dir = std::env::temp_dir().join(format!("scx_pilot_state_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = StateStore::open(dir.join("nested")).unwrap();
        assert_eq!(store.load().unwrap(), None);
        let mut s = pid_strategy(1000, 1_000_000);
        s.command_regex = None;
        let mut r = pid_strategy(1, 2_000_000);
        r.pid = None;
        r.command_regex = Some("^a".into());
        let loaded = |store: &StateStore| store.load().unwrap().map(|l| l.strategies);
        store
            .save(&StrategySet::new(vec![s.clone(), r.clone()]))
            .unwrap();
        assert_eq!(loaded(&store), Some(vec![s.clone(), r]));
        store.save(&StrategySet::new(vec![s.clone()])).unwrap();
        assert_eq!(loaded(&store), Some(vec![s]));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![STATE_FILE.to_string()]);
        std::fs::write(store.path(), "{").unwrap();
        assert!(store.load().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn saved_start_times_hold_within_a_boot_only() {
        let dir = std::env::temp_dir().join(format!("scx_pilot_boot_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = StateStore::open(&dir).unwrap();
        let me = std::process::id();
        let set = StrategySet::pinned(vec![pid_strategy(me, 1_000_000)], Path::new("/proc"));
        let mine = *set.pid_start_ticks.get(&me).expect("our start time");
        store.save(&set).unwrap();
        let same = store.load().unwrap().unwrap();
        assert_eq!(same.pid_start_ticks.get(&me), Some(&mine));
        let input = ResolveInput {
            proc_root: Path::new("/proc"),
            snapshot: None,
            pods: None,
            agent_pid: 1,
        };
        assert!(resolve(&into_set(same), &input).desired.contains_key(&me));
        // The same file seen after a reboot: the PID names nobody now.
        let text = std::fs::read_to_string(store.path()).unwrap();
        let boot = store.boot_id.clone().expect("this host's boot id");
        std::fs::write(
            store.path(),
            text.replace(&boot, "00000000-0000-4000-8000-000000000000"),
        )
        .unwrap();
        let other = store.load().unwrap().unwrap();
        assert_eq!(other.strategies, set.strategies);
        let r = resolve(&into_set(other), &input);
        assert!(r.desired.is_empty(), "{:?}", r.desired);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
