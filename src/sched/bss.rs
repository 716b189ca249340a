//! Reading the scheduler's .bss counters straight from the mmapped skeleton.

use chrono::Utc;

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

/// A field's value: read from the .bss, or, for a timestamp the BPF program
/// does not keep, the sample's own time in ns.
macro_rules! field_value {
    (Timestamp, $src:ident, $field:ident, $at:ident) => {
        $at.timestamp_nanos_opt().map_or(0, |ns| ns.max(0) as u64)
    };
    ($kind:ident, $src:ident, $field:ident, $at:ident) => {
        unsafe { std::ptr::read_volatile(&$src.$field) }
    };
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
