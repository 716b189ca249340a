//! What changed between two readings of a process, and the rates over the
//! interval that the stats endpoints, `/metrics` and the alerts show.

use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::pods::schedstat::ProcReading;

/// What happened between two readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delta {
    pub run_ns: u64,
    pub wait_ns: u64,
    pub slices: u64,
    pub cpu_ticks: u64,
}

impl Delta {
    pub fn add(&mut self, o: &Delta) {
        self.run_ns += o.run_ns;
        self.wait_ns += o.wait_ns;
        self.slices += o.slices;
        self.cpu_ticks += o.cpu_ticks;
    }
}

/// The change from `prev` to `cur` of one process, None when they are not
/// the same process (start times differ: the PID was reused).
pub fn delta(prev: &ProcReading, cur: &ProcReading) -> Option<Delta> {
    if prev.start_ticks != cur.start_ticks {
        return None;
    }
    let mut d = Delta {
        cpu_ticks: cur.cpu_ticks.saturating_sub(prev.cpu_ticks),
        ..Delta::default()
    };
    for t in &cur.threads {
        match prev.threads.binary_search_by_key(&t.tid, |p| p.tid) {
            Ok(i) => {
                let p = &prev.threads[i];
                d.run_ns += t.run_ns.saturating_sub(p.run_ns);
                d.wait_ns += t.wait_ns.saturating_sub(p.wait_ns);
                d.slices += t.slices.saturating_sub(p.slices);
            }
            // A thread started since the previous reading: all of it is new.
            // Unless that reading skipped threads (capped): then it may be an
            // old thread seen for the first time, which counts from the next round.
            Err(_) if !prev.capped => {
                d.run_ns += t.run_ns;
                d.wait_ns += t.wait_ns;
                d.slices += t.slices;
            }
            Err(_) => {}
        }
    }
    Some(d)
}

/// Rates over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Figures {
    /// CPU time used, as a fraction of one CPU (schedstat run time; 2.0 = two CPUs busy).
    pub cpu_usage: f64,
    /// The same from utime + stime (clock-tick granularity; includes exited threads).
    pub cpu_usage_utime_stime: f64,
    /// Time spent waiting on a run queue, in ms per second of wall time (summed over threads).
    pub runqueue_wait_ms_per_s: f64,
    /// Average run-queue wait per timeslice in µs; null when no timeslice ran.
    pub avg_wait_us_per_timeslice: Option<f64>,
    /// Timeslices run per second (summed over threads).
    pub timeslices_per_s: f64,
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 when unknown).
pub fn clock_ticks() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        // SAFETY: sysconf has no memory effects.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as u64
        } else {
            100
        }
    })
}

/// Rates of `d` over `wall` (`ticks_per_s` converts utime + stime).
pub fn figures(d: &Delta, wall: Duration, ticks_per_s: u64) -> Figures {
    let s = wall.as_secs_f64().max(1e-9);
    Figures {
        cpu_usage: d.run_ns as f64 / 1e9 / s,
        cpu_usage_utime_stime: d.cpu_ticks as f64 / ticks_per_s.max(1) as f64 / s,
        runqueue_wait_ms_per_s: d.wait_ns as f64 / 1e6 / s,
        avg_wait_us_per_timeslice: (d.slices > 0).then(|| d.wait_ns as f64 / 1e3 / d.slices as f64),
        timeslices_per_s: d.slices as f64 / s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::schedstat::ThreadReading;

    fn t(tid: u32, run_ns: u64, wait_ns: u64, slices: u64) -> ThreadReading {
        ThreadReading {
            tid,
            run_ns,
            wait_ns,
            slices,
        }
    }

    #[test]
    fn delta_math_on_fixed_inputs() {
        let prev = ProcReading {
            start_ticks: 500,
            cpu_ticks: 100,
            threads: vec![t(10, 1_000_000_000, 10_000_000, 100), t(11, 500, 500, 5)],
            capped: false,
        };
        // Thread 10 ran 0.5 s more, waited 20 ms more over 50 slices; thread
        // 11 exited; thread 12 is new (counts whole).
        let cur = ProcReading {
            start_ticks: 500,
            cpu_ticks: 160,
            threads: vec![
                t(10, 1_500_000_000, 30_000_000, 150),
                t(12, 250_000_000, 10_000_000, 50),
            ],
            capped: false,
        };
        let d = delta(&prev, &cur).unwrap();
        assert_eq!(
            d,
            Delta {
                run_ns: 750_000_000,
                wait_ns: 30_000_000,
                slices: 100,
                cpu_ticks: 60,
            }
        );
        let f = figures(&d, Duration::from_millis(500), 100);
        assert!((f.cpu_usage - 1.5).abs() < 1e-9);
        assert!((f.cpu_usage_utime_stime - 1.2).abs() < 1e-9);
        assert!((f.runqueue_wait_ms_per_s - 60.0).abs() < 1e-9);
        assert!((f.avg_wait_us_per_timeslice.unwrap() - 300.0).abs() < 1e-9);
        assert!((f.timeslices_per_s - 200.0).abs() < 1e-9);

        // A reused PID (other start time) gives no delta.
        let other = ProcReading {
            start_ticks: 501,
            ..cur.clone()
        };
        assert_eq!(delta(&prev, &other), None);
        // Counters never go backwards into huge numbers.
        let back = ProcReading {
            start_ticks: 500,
            cpu_ticks: 50,
            threads: vec![t(10, 1, 1, 1)],
            capped: false,
        };
        assert_eq!(delta(&prev, &back), Some(Delta::default()));
        // After a capped reading, unseen threads are not counted whole.
        let capped = ProcReading {
            capped: true,
            ..prev.clone()
        };
        assert_eq!(delta(&capped, &cur).unwrap().run_ns, 500_000_000);
        // No timeslice: no average wait.
        let idle = figures(&Delta::default(), Duration::from_secs(1), 100);
        assert_eq!(idle.avg_wait_us_per_timeslice, None);
        assert_eq!(idle.cpu_usage, 0.0);
    }
}
