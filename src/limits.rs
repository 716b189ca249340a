//! Process resource limits the agent raises at start.
//!
//! The open-file limit bounds how many connections the API can hold while it
//! still opens `/proc` files for its scans: systemd's default soft limit
//! (1024) is easily reached by idle connections, so the agent raises its soft
//! limit to the hard one and sizes the server's connection cap from what it
//! got. The locked-memory limit is raised as the sched_ext schedulers do, so
//! BPF maps and ring buffers load on kernels that still charge them to it.

/// File descriptors kept back from the connection cap for `/proc` scans,
/// BPF objects, log files and the state directory.
pub const RESERVED_FDS: u64 = 256;

/// Raise the soft open-file limit to the hard limit; returns the soft limit
/// in force afterwards.
pub fn raise_nofile() -> u64 {
    use rlimit::Resource;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            let soft = Resource::NOFILE.get().map(|(s, _)| s).unwrap_or(1024);
            log::warn!("cannot raise the open-file limit (soft {soft}): {e}");
            soft
        }
    }
}

/// Connections each of `workers` HTTP workers may hold, so that all of them
/// together leave [`RESERVED_FDS`] descriptors of `nofile` free.
pub fn connections_per_worker(nofile: u64, workers: usize) -> usize {
    let budget = nofile.saturating_sub(RESERVED_FDS);
    let per_worker = budget / workers.max(1) as u64;
    per_worker.clamp(16, 25_000) as usize
}

/// Lift the locked-memory limit for BPF (a no-op where the kernel charges
/// BPF memory to the cgroup instead). Failure is logged: loading may still work.
pub fn raise_memlock() {
    use rlimit::{Resource, INFINITY};
    if let Err(e) = Resource::MEMLOCK.set(INFINITY, INFINITY) {
        log::debug!("cannot lift RLIMIT_MEMLOCK: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_reserved_descriptors() {
        assert_eq!(connections_per_worker(1024, 2), (1024 - 256) / 2);
        assert_eq!(connections_per_worker(100, 2), 16);
        assert_eq!(connections_per_worker(1 << 20, 2), 25_000);
    }
}
