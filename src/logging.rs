//! Log setup: the agent's own messages, and the BPF library's (forwarded by `sched`), through `log`.

use simplelog::{ColorChoice, ConfigBuilder, LevelFilter, TermLogger, TerminalMode};

pub fn init(verbose: u8) {
    let level = match verbose {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let config = ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .build();
    // Under systemd with stderr in the journal, `<N>` priority prefixes
    // replace the `[LEVEL]` tags so `journalctl -p warning` works.
    if !(crate::notify::stderr_is_journal() && crate::notify::init_journal_logger(level)) {
        let _ = TermLogger::init(level, config, TerminalMode::Stderr, ColorChoice::Never);
    }

    crate::sched::forward_bpf_logs();
}
