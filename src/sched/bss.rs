//! Reading the scheduler's .bss counters straight from the mmapped skeleton.

use std::sync::OnceLock;

use chrono::Utc;

use super::bpf_intf::pilot_consts_MAX_CPUS;
use super::bpf_skel::types::bss;
use crate::counters::{counter_table, BssData, Kind, PolicyCounters, Sample, BSS, POLICY};

/// Most passes [`sample`] makes over the counters looking for two that agree.
/// A pass takes about 100 ns, so settling costs little even when it fails.
const SETTLE_READS: usize = 4;

/// Each field is a naturally aligned integer that BPF updates atomically, so a
/// volatile read of each one is never torn; the set is read in one pass with no
/// lock, and [`sample`] repeats the pass until two agree. The
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
    // Not kept as one number (every context switch would bump a cache line
    // all CPUs share): BPF marks each CPU busy while a task of ours runs there.
    (Gauge, $src:ident, nr_running, $at:ident) => {
        $src.cpu_ctxs[..possible_cpus()]
            .iter()
            // As a byte: the skeleton has a C bool as MaybeUninit<bool>.
            .map(|cpu| unsafe {
                std::ptr::read_volatile(std::ptr::from_ref(&cpu.busy).cast::<u8>())
            })
            .map(|busy| u64::from(busy != 0))
            .sum::<u64>()
    };
    ($kind:ident, $src:ident, $field:ident, $at:ident) => {
        unsafe { std::ptr::read_volatile(&$src.$field) }
    };
}

/// The per-CPU counter sets (and CPU states) that BPF can write: one per
/// possible CPU (an offline CPU keeps its counts, so the sums never go back).
fn possible_cpus() -> usize {
    const MAX_CPUS: usize = pilot_consts_MAX_CPUS as usize;
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| {
        libbpf_rs::num_possible_cpus()
            .unwrap_or(MAX_CPUS)
            .clamp(1, MAX_CPUS)
    })
}

/// A timestamped sample of the counters, read again until two reads agree
/// (at most [`SETTLE_READS`]). Counters that move together, such as the
/// user-dispatch books (enqueues = dispatches + recovered + withdrawn +
/// outstanding), are then seen at one instant, not torn by the tasks that
/// passed while the reading thread was preempted halfway; on a busy machine the
/// last read is as good as any.
pub fn sample(src: &bss) -> Sample {
    let mut last = read_once(src);
    for _ in 1..SETTLE_READS {
        let next = read_once(src);
        if same_counts(&last, &next) {
            return next;
        }
        last = next;
    }
    last
}

fn read_once(src: &bss) -> Sample {
    counter_table!(read_volatile, src)
}

/// Equal in every field the BPF program keeps (timestamps are the reader's).
fn same_counts(a: &Sample, b: &Sample) -> bool {
    BSS.iter()
        .filter(|d| d.kind != Kind::Timestamp)
        .all(|d| (d.get)(&a.bss) == (d.get)(&b.bss))
        && POLICY
            .iter()
            .filter(|d| d.kind != Kind::Timestamp)
            .all(|d| (d.get)(&a.policy) == (d.get)(&b.policy))
}

/// The counters without the time.
pub fn read_bss(src: &bss) -> (BssData, PolicyCounters) {
    let Sample { bss, policy, .. } = sample(src);
    (bss, policy)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn sample(at_s: i64, enqueues: u64) -> Sample {
        let timestamp = Utc.timestamp_opt(at_s, 0).unwrap();
        Sample {
            timestamp,
            bss: BssData {
                usersched_last_run_at: timestamp.timestamp_nanos_opt().unwrap() as u64,
                ..Default::default()
            },
            policy: PolicyCounters {
                nr_user_enqueues: enqueues,
                ..Default::default()
            },
        }
    }

    #[test]
    fn reads_agree_when_only_the_time_moved() {
        assert!(same_counts(&sample(1, 5), &sample(2, 5)));
        assert!(!same_counts(&sample(1, 5), &sample(1, 6)));
    }
}
