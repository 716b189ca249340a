//! systemd integration: the notify protocol (`Type=notify`: READY once the
//! scheduler is attached and the HTTP listener is bound, STOPPING on shutdown)
//! and log lines with syslog priority prefixes when stderr is the journal.
//!
//! Both are no-ops outside systemd: without `NOTIFY_SOCKET` nothing is sent,
//! without a matching `JOURNAL_STREAM` logs keep their `[LEVEL]` tags.

use std::io::Write;
use std::os::unix::fs::MetadataExt;

use log::{Level, LevelFilter, Log, Metadata, Record};
use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    // Keep NOTIFY_SOCKET set: STOPPING comes later from the same process.
    if let Err(e) = sd_notify::notify(false, states) {
        log::warn!("systemd notify: {e}");
    }
}

/// Tell the service manager the agent is up, with a one-line status.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tell the service manager the agent is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Whether stderr is connected to the journal: `JOURNAL_STREAM` (set by
/// systemd as `DEVICE:INODE`) names the file stderr is.
pub fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // /proc/self/fd/2 follows to the socket or file stderr is.
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The syslog priority of a log level, as journald reads it from `<N>`.
pub fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Logs to stderr as `<N>message`: journald stores N as the priority and
/// adds its own timestamp.
struct JournalLogger {
    level: LevelFilter,
}

impl Log for JournalLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prio = syslog_priority(record.level());
        let text = record.args().to_string();
        let mut err = std::io::stderr().lock();
        // One record per line: a multi-line message keeps its priority on each.
        for line in text.lines() {
            let _ = writeln!(err, "<{prio}>{line}");
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Install the journal logger at `level`; false when a logger is already set.
pub fn init_journal_logger(level: LevelFilter) -> bool {
    if log::set_boxed_logger(Box::new(JournalLogger { level })).is_err() {
        return false;
    }
    log::set_max_level(level);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities() {
        assert_eq!(syslog_priority(Level::Error), 3);
        assert_eq!(syslog_priority(Level::Warn), 4);
        assert_eq!(syslog_priority(Level::Info), 6);
        assert_eq!(syslog_priority(Level::Trace), 7);
    }

    #[test]
    fn no_journal_without_a_matching_stream() {
        // Whatever stderr is in the test runner, inode 0 is never it.
        std::env::set_var("JOURNAL_STREAM", "0:0");
        assert!(!stderr_is_journal());
        std::env::remove_var("JOURNAL_STREAM");
        assert!(!stderr_is_journal());
    }
}
