//! Which Host header names a write may carry: the listen address, `localhost`
//! on loopback, this machine's name beyond it, and configured names. A web
//! page whose DNS name was rebound to this node carries its own name, so it
//! cannot write through a browser.

use std::net::IpAddr;

/// Names a write's Host header may carry.
#[derive(Debug, Clone)]
pub struct HostCheck {
    /// The address the server listens on.
    pub listen: IpAddr,
    /// Extra names (lowercase, no port), e.g. from `--allowed-host`.
    pub names: Vec<String>,
}

impl HostCheck {
    /// The check for a server on `listen`: its own address; `localhost` when it
    /// listens on loopback or every address; this machine's host name when it
    /// listens beyond loopback; plus `names`.
    pub fn for_listen(listen: IpAddr, names: &[String]) -> Self {
        let mut all: Vec<String> = names.iter().map(|n| normalize(n)).collect();
        if listen.is_loopback() || listen.is_unspecified() {
            all.push("localhost".into());
        }
        if !listen.is_loopback() {
            if let Some(h) = crate::host_name::get() {
                all.push(normalize(&h));
            }
        }
        all.sort();
        all.dedup();
        all.retain(|n| !n.is_empty());
        Self { listen, names: all }
    }

    /// Whether a write with this Host header value may go on. A request
    /// without a Host header is not from a browser (browsers always send one)
    /// and passes.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true;
        };
        let name = strip_port(host.trim());
        if let Ok(ip) = name.parse::<IpAddr>() {
            // An IP literal cannot be rebound: only its own address matters.
            return self.listen.is_unspecified()
                || ip == self.listen
                || (ip.is_loopback() && self.listen.is_loopback());
        }
        let name = normalize(name);
        self.names.contains(&name)
    }
}

fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The host part of a Host header value: `[v6]:port`, `v4:port`, `name:port`.
pub(super) fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_check() {
        let lo = HostCheck::for_listen("127.0.0.1".parse().unwrap(), &["Node-1.Example.".into()]);
        for ok in [
            None,
            Some("127.0.0.1:8080"),
            Some("127.0.0.2"),
            Some("localhost:8080"),
            Some("LOCALHOST"),
            Some("node-1.example:80"),
            Some("[::1]:8080"),
        ] {
            assert!(lo.allows(ok), "{ok:?} refused");
        }
        for bad in [
            Some("evil.example:8080"),
            Some("10.0.0.1:8080"),
            Some(""),
            Some("localhost.evil.example"),
        ] {
            assert!(!lo.allows(bad), "{bad:?} allowed");
        }
        let any = HostCheck::for_listen("0.0.0.0".parse().unwrap(), &[]);
        assert!(any.allows(Some("10.1.2.3:8080")));
        assert!(any.allows(Some("localhost")));
        assert!(!any.allows(Some("rebound.example")));
        let one = HostCheck::for_listen("10.0.0.5".parse().unwrap(), &[]);
        assert!(one.allows(Some("10.0.0.5:8080")));
        assert!(!one.allows(Some("10.0.0.6:8080")));
        assert!(!one.allows(Some("localhost:8080")));
    }
}
