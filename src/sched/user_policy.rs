//! The user-space dispatch policy (`--dispatch user`): a weighted deadline per
//! task, a slice that shrinks when many tasks wait, and a CPU only where the
//! task can run on a single one. Pure functions over the records BPF sends, so
//! the policy is tested without a kernel.

use super::bpf_intf::{
    dispatched_task, pilot_consts_MIN_SLICE_NS, pilot_consts_QUEUED_F_STRATEGY,
    pilot_consts_SLICE_MIN_DIVISOR, queued_task,
};

const QUEUED_F_STRATEGY: u32 = pilot_consts_QUEUED_F_STRATEGY;

const MIN_SLICE_NS: u64 = pilot_consts_MIN_SLICE_NS as u64;
const SLICE_MIN_DIVISOR: u64 = pilot_consts_SLICE_MIN_DIVISOR as u64;

/// What the dispatcher knows of the machine and the configuration.
#[derive(Debug, Default, Clone, Copy)]
pub struct Policy {
    pub nr_cpus: u64,
    /// The configured default slice (`--slice-us`): the longest burst a
    /// deadline counts and the slice shared among waiting tasks, as in BPF's
    /// kernel mode. Not the slice BPF granted at the enqueue, which BPF has
    /// already shrunk by the tasks in its shared queue: capping bursts there
    /// gave CPU hogs deadlines up to a slice earlier than kernel mode does, so
    /// a waking task could no longer preempt them.
    pub slice_ns: u64,
}

impl Policy {
    pub fn new(nr_cpus: u64, slice_ns: u64) -> Self {
        Self {
            nr_cpus: nr_cpus.max(1),
            slice_ns: slice_ns.max(1),
        }
    }

    /// The deadline of `t`: its weighted virtual time (BPF already keeps it
    /// within one slice of its CPU's clock, so a sleeper cannot bank time),
    /// pushed back by the CPU time it used since it last woke (scaled by its
    /// weight), so tasks that wake, run briefly and sleep again go ahead of
    /// CPU hogs.
    pub fn deadline(&self, t: &queued_task) -> u64 {
        let weight = u64::from(t.weight.max(1));
        let burst = t.exec_runtime_ns.min(self.slice_ns);
        t.vtime.saturating_add(burst.saturating_mul(100) / weight)
    }

    /// The slice of `t` when `nr_waiting` tasks wait for a CPU: a strategy's
    /// slice is kept as given; the default one is shared so that every waiting
    /// task runs within about one default slice.
    pub fn slice_ns(&self, t: &queued_task, nr_waiting: usize) -> u64 {
        if t.flags & QUEUED_F_STRATEGY != 0 {
            return t.slice_ns;
        }
        let waiting = (nr_waiting as u64).max(self.nr_cpus);
        (self.slice_ns * self.nr_cpus / waiting).max(self.slice_min_ns())
    }

    /// Shortest default slice when many tasks wait: the same floor as BPF's
    /// `slice_min()` (`--slice-us` / 8, at least 250 us, at most `--slice-us`),
    /// so both dispatch modes switch equally often under load.
    fn slice_min_ns(&self) -> u64 {
        (self.slice_ns / SLICE_MIN_DIVISOR)
            .max(MIN_SLICE_NS)
            .min(self.slice_ns)
    }

    /// A pinned task goes to its CPU's local queue (if its affinity changed
    /// meanwhile, BPF bounces it); any other one to the shared queue, where
    /// the first CPU that frees up takes it.
    pub fn cpu(t: &queued_task) -> i32 {
        if t.nr_cpus_allowed == 1 {
            t.cpu
        } else {
            -1
        }
    }

    /// Orders `tasks` by deadline in place (no allocation).
    pub fn order(&self, tasks: &mut [queued_task]) {
        tasks.sort_unstable_by_key(|t| (self.deadline(t), t.seq));
    }

    /// The decision for `t`, `nr_pending` tasks still held after it.
    pub fn decide(&self, t: &queued_task, nr_waiting: usize, nr_pending: usize) -> dispatched_task {
        dispatched_task {
            seq: t.seq,
            vtime: self.deadline(t),
            slice_ns: self.slice_ns(t, nr_waiting),
            nr_pending: nr_pending as u64,
            pid: t.pid,
            cpu: Self::cpu(t),
        }
    }
}

/// A heartbeat record: tells BPF the dispatcher is alive.
pub fn heartbeat(nr_pending: usize) -> dispatched_task {
    dispatched_task {
        seq: 0,
        vtime: 0,
        slice_ns: 0,
        nr_pending: nr_pending as u64,
        pid: 0,
        cpu: -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(pid: u32, vtime: u64, runtime: u64) -> queued_task {
        queued_task {
            seq: u64::from(pid),
            vtime,
            exec_runtime_ns: runtime,
            slice_ns: 5_000_000,
            pid,
            cpu: 1,
            weight: 100,
            nr_cpus_allowed: 4,
            flags: 0,
            __pad: 0,
        }
    }

    #[test]
    fn short_bursts_go_first_at_equal_vtime() {
        let p = Policy::new(2, 5_000_000);
        let mut tasks = [task(1, 1000, 4_000_000), task(2, 1000, 10_000)];
        p.order(&mut tasks);
        assert_eq!(tasks[0].pid, 2);
    }

    #[test]
    fn heavier_weight_pays_less_for_its_burst() {
        let p = Policy::new(2, 5_000_000);
        let light = task(1, 0, 2_000_000);
        let heavy = queued_task {
            weight: 1000,
            ..task(2, 0, 2_000_000)
        };
        assert!(p.deadline(&heavy) < p.deadline(&light));
    }

    #[test]
    fn burst_is_capped_at_one_slice() {
        let p = Policy::new(2, 5_000_000);
        let hog = task(1, 1000, 60_000_000);
        assert_eq!(p.deadline(&hog), 1000 + 5_000_000);
    }

    #[test]
    fn bursts_and_slices_follow_the_configured_slice_not_the_granted_one() {
        // BPF sends the slice it granted, already shrunk by its own queue: a
        // hog must not get a shorter burst (an earlier deadline) from that.
        let p = Policy::new(2, 5_000_000);
        let hog = queued_task {
            slice_ns: 1_000_000,
            ..task(1, 1000, 60_000_000)
        };
        assert_eq!(p.deadline(&hog), 1000 + 5_000_000);
        assert_eq!(p.slice_ns(&hog, 2), 5_000_000);
        assert_eq!(p.slice_ns(&hog, 4), 2_500_000);
    }

    #[test]
    fn default_slice_shrinks_with_waiters_but_strategy_slice_does_not() {
        let p = Policy::new(2, 5_000_000);
        let t = task(1, 0, 0);
        assert_eq!(p.slice_ns(&t, 1), 5_000_000);
        assert_eq!(p.slice_ns(&t, 4), 2_500_000);
        assert_eq!(p.slice_ns(&t, 1000), 625_000, "--slice-us / 8");
        let s = queued_task {
            flags: QUEUED_F_STRATEGY,
            slice_ns: 20_000_000,
            ..t
        };
        assert_eq!(p.slice_ns(&s, 1000), 20_000_000);
    }

    #[test]
    fn slice_floor_is_an_eighth_of_the_slice_but_at_least_250us_and_at_most_the_slice() {
        let floor = |slice_ns| Policy::new(2, slice_ns).slice_min_ns();
        assert_eq!(floor(20_000_000), 2_500_000);
        assert_eq!(floor(1_000_000), 250_000);
        assert_eq!(floor(100_000), 100_000);
    }

    #[test]
    fn only_pinned_tasks_get_a_cpu() {
        let t = task(1, 0, 0);
        assert_eq!(Policy::cpu(&t), -1);
        let pinned = queued_task {
            nr_cpus_allowed: 1,
            ..t
        };
        assert_eq!(Policy::cpu(&pinned), 1);
    }

    #[test]
    fn decisions_carry_the_deadline_and_the_seq() {
        let p = Policy::new(2, 5_000_000);
        let d = p.decide(&task(7, 50_000_000, 0), 1, 3);
        assert_eq!((d.pid, d.seq, d.nr_pending), (7, 7, 3));
        assert_eq!(d.vtime, 50_000_000);
        assert_eq!(heartbeat(2).pid, 0);
    }
}
