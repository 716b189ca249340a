//! Cumulative per-thread scheduling counters of one process, read from
//! `/proc/PID/stat` and `/proc/PID/task/TID/schedstat` (the kernel's own
//! accounting, valid under any scheduler class).

use std::io::Read;
use std::path::Path;

/// Threads read per process.
pub const MAX_THREADS_PER_PROCESS: usize = 512;

/// One thread's cumulative schedstat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThreadReading {
    pub tid: u32,
    /// ns on a CPU.
    pub run_ns: u64,
    /// ns waiting on a run queue.
    pub wait_ns: u64,
    /// Timeslices run.
    pub slices: u64,
}

/// One process's cumulative counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcReading {
    pub start_ticks: u64,
    /// utime + stime in clock ticks.
    pub cpu_ticks: u64,
    /// Sorted by TID.
    pub threads: Vec<ThreadReading>,
    /// Some threads were not read ([`MAX_THREADS_PER_PROCESS`]).
    pub capped: bool,
}

/// `run_ns wait_ns slices` of a schedstat file.
pub fn parse_schedstat(s: &str) -> Option<(u64, u64, u64)> {
    let mut it = s.split_ascii_whitespace().map(|v| v.parse::<u64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// `(start_ticks, utime + stime, num_threads)` of a `/proc/PID/stat` line.
pub fn parse_stat_times(stat: &str) -> Option<(u64, u64, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    // After the command, state is field 3: utime 14, stime 15, num_threads 20, starttime 22.
    let f: Vec<&str> = rest.split_ascii_whitespace().take(20).collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((n(19)?, n(11)? + n(12)?, n(17)?))
}

fn read_into(path: &Path, buf: &mut String) -> bool {
    buf.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .is_ok()
}

/// Read one process (None when it is gone or unreadable).
pub fn read_process(proc_root: &Path, pid: u32, buf: &mut String) -> Option<ProcReading> {
    let mut path = proc_root.join(pid.to_string());
    path.push("stat");
    if !read_into(&path, buf) {
        return None;
    }
    let (start_ticks, cpu_ticks, nthreads) = parse_stat_times(buf)?;
    path.pop();
    let mut r = ProcReading {
        start_ticks,
        cpu_ticks,
        threads: Vec::with_capacity(nthreads.min(MAX_THREADS_PER_PROCESS as u64) as usize),
        capped: false,
    };
    if nthreads <= 1 {
        // The main thread is the only one: its schedstat is the process's.
        path.push("schedstat");
        if read_into(&path, buf) {
            if let Some((run_ns, wait_ns, slices)) = parse_schedstat(buf) {
                r.threads.push(ThreadReading {
                    tid: pid,
                    run_ns,
                    wait_ns,
                    slices,
                });
            }
        }
        return Some(r);
    }
    path.push("task");
    let Ok(dir) = std::fs::read_dir(&path) else {
        return Some(r);
    };
    for entry in dir {
        let Ok(entry) = entry else { continue };
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if r.threads.len() >= MAX_THREADS_PER_PROCESS {
            r.capped = true;
            break;
        }
        path.push(entry.file_name());
        path.push("schedstat");
        if read_into(&path, buf) {
            if let Some((run_ns, wait_ns, slices)) = parse_schedstat(buf) {
                r.threads.push(ThreadReading {
                    tid,
                    run_ns,
                    wait_ns,
                    slices,
                });
            }
        }
        path.pop();
        path.pop();
    }
    r.threads.sort_unstable_by_key(|t| t.tid);
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_files() {
        assert_eq!(
            parse_schedstat("123456 7890 42\n"),
            Some((123456, 7890, 42))
        );
        assert_eq!(parse_schedstat("1 2\n"), None);
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime cutime cstime prio nice threads itreal start
        let stat = "42 (a) b (c)) R 1 42 42 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 3 0 98765 1000";
        assert_eq!(parse_stat_times(stat), Some((98765, 300, 3)));
        assert_eq!(parse_stat_times("42 (x) R 1"), None);
    }

    #[test]
    fn reads_this_process_with_its_threads() {
        let proc_root = Path::new("/proc");
        let me = std::process::id();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        let mut buf = String::new();
        let r = read_process(proc_root, me, &mut buf).unwrap();
        assert!(r.threads.len() >= 2, "{r:?}");
        assert!(r.threads.windows(2).all(|w| w[0].tid < w[1].tid));
        assert_eq!(Some(r.start_ticks), crate::pods::start_ticks(proc_root, me));
        drop(tx);
        h.join().unwrap();
        assert!(read_process(proc_root, u32::MAX - 1, &mut buf).is_none());
    }
}
