//! Reading the scheduler's .bss counters straight from the mmapped skeleton.

use std::sync::OnceLock;

use chrono::Utc;

use super::bpf_intf::pilot_consts_MAX_CPUS;
use super::bpf_skel::types::bss;
use crate::counters::{counter_table, BssData, PolicyCounters, Sample};

/// Each field is a naturally aligned integer that BPF updates atomically, so a
/// volatile read of each one is never torn; the set is read in one pass with no
/// lock, which is as consistent as counters updated on many CPUs can be. The
/// fields come from the counter table, so the skeleton must have each of them.
macro_rules! read_volatile {
    ([$src:ident] $(
        $(#[$group_attr:meta])*
        $group:ident: $Name:ident in $LIST:ident {
            $( $(#[$attr:meta])* $field:ident: $ty:ty { kind: $kind:ident, $($def:tt)* } ),* $(,)?
        }
    )*) => {{
        let timestamp = Utc::now();
        Sample {
            $($group: crate::counters::$Name {
                $($field: field_value!($kind, $src, $field, timestamp),)*
            },)*
            timestamp,
        }
    }};
}

/// A field's value: read from the .bss (a counter is kept per CPU, so the
/// sum of the CPUs), or, for a timestamp the BPF program does not keep, the
/// sample's own time in ns.
macro_rules! field_value {
    (Timestamp, $src:ident, $field:ident, $at:ident) => {
        $at.timestamp_nanos_opt().map_or(0, |ns| ns.max(0) as u64)
    };
    (Counter, $src:ident, $field:ident, $at:ident) => {
        $src.pcpu_counters[..possible_cpus()]
            .iter()
            .map(|cpu| unsafe { std::ptr::read_volatile(&cpu.$field) })
            .fold(0u64, u64::wrapping_add)
    };
    ($kind:ident, $src:ident, $field:ident, $at:ident) => {
        unsafe { std::ptr::read_volatile(&$src.$field) }
    };
}

/// The per-CPU counter sets that BPF can write: one per possible CPU (an
/// offline CPU keeps its counts, so the sums never go back).
fn possible_cpus() -> usize {
    const MAX_CPUS: usize = pilot_consts_MAX_CPUS as usize;
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| {
        libbpf_rs::num_possible_cpus()
            .unwrap_or(MAX_CPUS)
            .clamp(1, MAX_CPUS)
    })
}

/// A timestamped sample of the counters.
pub fn sample(src: &bss) -> Sample {
    counter_table!(read_volatile, src)
}

/// The counters without the time.
pub fn read_bss(src: &bss) -> (BssData, PolicyCounters) {
    let Sample { bss, policy, .. } = sample(src);
    (bss, policy)
}
