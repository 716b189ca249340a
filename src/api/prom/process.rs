//! The agent's own process figures under the names every Prometheus client
//! library exports (`process_*`), read from `/proc/self` at each scrape.

use std::fmt::Result as Fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// What one read of `/proc/self` found.
#[derive(Debug, Default, PartialEq)]
struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    open_fds: i64,
    max_fds: i64,
    start_time_seconds: f64,
}

fn page_size() -> i64 {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as i64
    } else {
        4096
    }
}

/// Boot time (Unix seconds) from `/proc/stat`'s `btime` line.
fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// User plus system CPU time of all the agent's threads: one system call,
/// where `/proc/self/stat` would be a file to open and parse at every scrape.
fn cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
        (u.user_time().num_microseconds() + u.system_time().num_microseconds()) as f64 / 1e6
    })
}

/// When the agent started (Unix seconds): it never changes, so `/proc/stat`
/// (long: a line per CPU and interrupt counts) and `/proc/self/stat` are
/// read once, not at every scrape.
fn start_time_seconds() -> f64 {
    static START: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        let ticks = crate::pod_figures::clock_ticks() as f64;
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let (start_ticks, _, _) =
            crate::pods::schedstat::parse_stat_times(&stat).unwrap_or_default();
        let btime = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s))
            .unwrap_or(0.0);
        btime + start_ticks as f64 / ticks
    })
}

fn read() -> ProcessFigures {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut pages = statm
        .split_ascii_whitespace()
        .map(|v| v.parse::<i64>().unwrap_or(0));
    let (size, resident) = (pages.next().unwrap_or(0), pages.next().unwrap_or(0));
    ProcessFigures {
        cpu_seconds: cpu_seconds(),
        resident_bytes: resident * page_size(),
        virtual_bytes: size * page_size(),
        open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64),
        max_fds: rlimit::Resource::NOFILE
            .get()
            .map_or(0, |(soft, _)| soft.min(i64::MAX as u64) as i64),
        start_time_seconds: start_time_seconds(),
    }
}

/// Registered once; reads `/proc/self` when scraped.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Fmt {
        let p = read();
        let m = enc.encode_descriptor(
            "process_cpu",
            "User and system CPU time spent by the agent",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        ConstCounter::new(p.cpu_seconds).encode(m)?;
        let gauges: [(&str, &str, Option<&Unit>, i64); 4] = [
            (
                "process_resident_memory",
                "Resident memory of the agent",
                Some(&Unit::Bytes),
                p.resident_bytes,
            ),
            (
                "process_virtual_memory",
                "Virtual memory of the agent",
                Some(&Unit::Bytes),
                p.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                None,
                p.open_fds,
            ),
            (
                "process_max_fds",
                "Open file descriptor limit (soft)",
                None,
                p.max_fds,
            ),
        ];
        for (name, help, unit, v) in gauges {
            let m = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
            ConstGauge::new(v).encode(m)?;
        }
        let m = enc.encode_descriptor(
            "process_start_time",
            "When the agent started (Unix time)",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        ConstGauge::new(p.start_time_seconds).encode(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
        let p = read();
        assert!(p.cpu_seconds > 0.0, "{p:?}");
        assert!(p.resident_bytes > 0, "{p:?}");
        assert!(p.open_fds >= 3, "{p:?}");
        assert!(p.max_fds >= p.open_fds, "{p:?}");
        let now = chrono::Utc::now().timestamp() as f64;
        assert!(
            p.start_time_seconds > now - 3600.0 && p.start_time_seconds <= now + 1.0,
            "{p:?}"
        );
    }
}
