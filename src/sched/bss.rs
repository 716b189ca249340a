//! Reading the scheduler's .bss counters straight from the mmapped skeleton.

use chrono::Utc;

use super::bpf_skel::types::bss;
use crate::metrics::{BssData, PolicyCounters, Sample};

/// Each field is a naturally aligned integer that BPF updates atomically, so a
/// volatile read of each one is never torn; the set is read in one pass with no
/// lock, which is as consistent as counters updated on many CPUs can be.
macro_rules! read_fields {
    ($src:expr, $ty:ident { $($field:ident),* $(,)? }) => {
        $ty { $($field: unsafe { std::ptr::read_volatile(&$src.$field) }),* }
    };
}

pub fn read_bss(src: &bss) -> (BssData, PolicyCounters) {
    let data = read_fields!(
        src,
        BssData {
            usersched_pid,
            nr_queued,
            nr_scheduled,
            nr_running,
            nr_online_cpus,
            nr_user_dispatches,
            nr_kernel_dispatches,
            nr_cancel_dispatches,
            nr_bounce_dispatches,
            nr_failed_dispatches,
            nr_sched_congested,
        }
    );
    let policy = read_fields!(
        src,
        PolicyCounters {
            nr_direct_dispatches,
            nr_prio_dispatches,
            nr_preemptions,
            nr_starvation_guards,
            nr_strategy_hits,
            nr_user_enqueues,
            nr_user_fallbacks,
            nr_user_recovered,
            nr_user_withdrawn,
            nr_user_outstanding,
        }
    );
    (data, policy)
}

/// A timestamped sample of the counters.
pub fn sample(src: &bss) -> Sample {
    let (bss, policy) = read_bss(src);
    Sample {
        timestamp: Utc::now(),
        bss,
        policy,
    }
}
