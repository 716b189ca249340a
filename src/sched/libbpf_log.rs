//! libbpf's own messages, forwarded to `log`.

use libbpf_rs::PrintLevel;

/// Route libbpf's messages through `log`. Its chatter is detail for
/// debugging: the agent reports failures itself in one line, with libbpf's
/// lines available under -v.
pub fn forward_bpf_logs() {
    libbpf_rs::set_print(Some((PrintLevel::Debug, |level, msg| {
        let msg = msg.trim_end();
        match level {
            PrintLevel::Warn => log::debug!("libbpf: {msg}"),
            _ => log::trace!("libbpf: {msg}"),
        }
    })));
}
