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
            $( $(#[$attr:meta])* $field:ident: $ty:ty { $($def:tt)* } ),* $(,)?
        }
    )*) => {
        Sample {
            $($group: crate::counters::$Name {
                $($field: unsafe { std::ptr::read_volatile(&$src.$field) },)*
            },)*
            timestamp: Utc::now(),
        }
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
