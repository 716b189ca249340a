//! Writing the desired `pid -> strategy` set into the BPF strategy map as a diff.

use std::collections::HashMap;

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, MapFlags};
use serde::Serialize;

use super::bpf_intf;
use crate::strategy::{DesiredStrategies, PidStrategy};

/// What one [`StrategyMapWriter::apply`] pass changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApplyStats {
    pub inserted: usize,
    pub updated: usize,
    pub deleted: usize,
    /// Entries the kernel refused (map full, PID gone mid-apply); retried next pass.
    pub failed: usize,
}

impl ApplyStats {
    /// Whether the pass added or removed a key: what BPF remembers per task
    /// (which key holds its strategy, or that none does) may be stale then.
    pub fn keys_changed(&self) -> bool {
        self.inserted + self.deleted > 0
    }
}

/// A strategy entry as the kernel holds it, hit counter included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MapEntry {
    pub pid: u32,
    pub strategy: PidStrategy,
    pub nr_hits: u64,
}

fn encode(s: &PidStrategy) -> [u8; std::mem::size_of::<bpf_intf::strategy>()] {
    let value = bpf_intf::strategy {
        slice_ns: s.slice_ns,
        nr_hits: 0,
        flags: if s.priority {
            bpf_intf::pilot_consts_STRATEGY_F_PRIORITY
        } else {
            0
        },
        __pad: 0,
    };
    // SAFETY: `strategy` is repr(C), 24 bytes, with no implicit padding (the
    // layout is asserted by bindgen), so every byte is initialised.
    unsafe { std::mem::transmute(value) }
}

fn decode(bytes: &[u8]) -> Option<(PidStrategy, u64)> {
    if bytes.len() != std::mem::size_of::<bpf_intf::strategy>() {
        return None;
    }
    // SAFETY: length checked; any bit pattern is a valid `strategy`.
    let v: bpf_intf::strategy = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    Some((
        PidStrategy {
            slice_ns: v.slice_ns,
            priority: v.flags & bpf_intf::pilot_consts_STRATEGY_F_PRIORITY != 0,
        },
        v.nr_hits,
    ))
}

/// Keeps a mirror of what it wrote so a pass touches only entries that changed:
/// unchanged entries keep their BPF hit counters and cost no syscall.
#[derive(Debug, Default)]
pub struct StrategyMapWriter {
    applied: HashMap<u32, PidStrategy>,
}

impl StrategyMapWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// What the writer believes is in the map.
    pub fn applied(&self) -> &HashMap<u32, PidStrategy> {
        &self.applied
    }

    /// Make the map hold exactly `desired`: one batched update for new and
    /// changed entries, one batched delete for gone ones. When a batch call
    /// fails part way, the rest is done entry by entry so the mirror stays exact.
    pub fn apply(&mut self, map: &dyn MapCore, desired: &DesiredStrategies) -> Result<ApplyStats> {
        let mut stats = ApplyStats::default();

        let mut keys = Vec::new();
        let mut values = Vec::new();
        let mut upserts = Vec::new();
        for (&pid, strategy) in desired {
            match self.applied.get(&pid) {
                Some(old) if old == strategy => continue,
                Some(_) => stats.updated += 1,
                None => stats.inserted += 1,
            }
            keys.extend_from_slice(&pid.to_ne_bytes());
            values.extend_from_slice(&encode(strategy));
            upserts.push((pid, *strategy));
        }
        if !upserts.is_empty() {
            let batch = map.update_batch(
                &keys,
                &values,
                upserts.len() as u32,
                MapFlags::ANY,
                MapFlags::ANY,
            );
            if batch.is_ok() {
                self.applied.extend(upserts);
            } else {
                for (pid, strategy) in upserts {
                    match map.update(&pid.to_ne_bytes(), &encode(&strategy), MapFlags::ANY) {
                        Ok(()) => {
                            self.applied.insert(pid, strategy);
                        }
                        Err(e) => {
                            stats.failed += 1;
                            log::debug!("strategy map: update of pid {pid} failed: {e}");
                        }
                    }
                }
            }
        }

        let gone: Vec<u32> = self
            .applied
            .keys()
            .filter(|pid| !desired.contains_key(pid))
            .copied()
            .collect();
        if !gone.is_empty() {
            let keys: Vec<u8> = gone.iter().flat_map(|pid| pid.to_ne_bytes()).collect();
            let batch = map.delete_batch(&keys, gone.len() as u32, MapFlags::ANY, MapFlags::ANY);
            for pid in &gone {
                // After a failed batch (one key already missing stops it), delete
                // one by one; a key that is already gone counts as deleted.
                if batch.is_err() {
                    if let Err(e) = map.delete(&pid.to_ne_bytes()) {
                        if e.kind() != libbpf_rs::ErrorKind::NotFound {
                            stats.failed += 1;
                            log::debug!("strategy map: delete of pid {pid} failed: {e}");
                            continue;
                        }
                    }
                }
                self.applied.remove(pid);
                stats.deleted += 1;
            }
        }
        Ok(stats)
    }
}

/// Every entry of the map as the kernel has it, sorted by PID.
pub fn read_map(map: &dyn MapCore) -> Result<Vec<MapEntry>> {
    let mut entries = Vec::new();
    for key in map.keys() {
        let Ok(pid_bytes) = <[u8; 4]>::try_from(key.as_slice()) else {
            continue;
        };
        let value = map
            .lookup(&key, MapFlags::ANY)
            .context("reading the strategy map")?;
        // An entry deleted between keys() and lookup() is simply skipped.
        if let Some((strategy, nr_hits)) = value.as_deref().and_then(decode) {
            entries.push(MapEntry {
                pid: u32::from_ne_bytes(pid_bytes),
                strategy,
                nr_hits,
            });
        }
    }
    entries.sort_by_key(|e| e.pid);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        for s in [
            PidStrategy {
                slice_ns: 20_000_000,
                priority: true,
            },
            PidStrategy {
                slice_ns: 50_000,
                priority: false,
            },
        ] {
            assert_eq!(decode(&encode(&s)), Some((s, 0)));
        }
        assert_eq!(decode(&[0u8; 3]), None);
    }
}
