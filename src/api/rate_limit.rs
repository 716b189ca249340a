//! The per-client write rate limit: token buckets, bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Token buckets per client address, for accepted and for rejected writes
/// apart: a flood of refused writes from many addresses fills only the
/// rejected table, so it can never lock out a client that was never refused.
#[derive(Default)]
pub(super) struct Buckets {
    accepted: BucketTable,
    rejected: BucketTable,
}

/// One table of buckets, bounded.
#[derive(Default)]
struct BucketTable {
    map: HashMap<IpAddr, (f64, Instant)>,
}

/// Most clients tracked per table before idle ones are forgotten.
const MAX_TRACKED_CLIENTS: usize = 4096;

impl Buckets {
    /// Take one token of `ip`'s accepted or rejected bucket; `Err(wait)` when empty.
    pub(super) fn take(
        &mut self,
        (ip, accepted): (IpAddr, bool),
        rate: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        if accepted {
            // A full table of clients with valid credentials makes room by
            // forgetting the one seen longest ago.
            self.accepted.take(ip, rate, now, true)
        } else {
            self.rejected.take(ip, rate, now, false)
        }
    }
}

impl BucketTable {
    fn take(&mut self, ip: IpAddr, rate: u32, now: Instant, evict: bool) -> Result<(), Duration> {
        let rate = f64::from(rate.max(1));
        if self.map.len() >= MAX_TRACKED_CLIENTS && !self.map.contains_key(&ip) {
            // Forget clients whose bucket has refilled: they lose nothing.
            self.map.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < rate
            });
            if self.map.len() >= MAX_TRACKED_CLIENTS {
                if !evict {
                    return Err(Duration::from_secs(1));
                }
                let oldest = self
                    .map
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.map.remove(&k);
                }
            }
        }
        let (tokens, at) = self.map.entry(ip).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_and_separate_clients() {
        let mut b = Buckets::default();
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let c: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            b.take((a, true), 3, t0).unwrap();
        }
        let wait = b.take((a, true), 3, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(334), "{wait:?}");
        b.take((c, true), 3, t0).unwrap();
        b.take((a, false), 3, t0).unwrap();
        b.take((a, true), 3, t0 + Duration::from_millis(340))
            .unwrap();
    }

    #[test]
    fn refused_writes_from_many_addresses_never_lock_out_a_new_client() {
        let mut b = Buckets::default();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED_CLIENTS as u32 + 100) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x7f00_0000 + i + 2));
            let _ = b.take((ip, false), 1, t0);
            let _ = b.take((ip, false), 1, t0);
        }
        let operator: IpAddr = "127.0.0.1".parse().unwrap();
        b.take((operator, true), 1, t0).unwrap();
        // Even a full table of accepted clients makes room for a new one.
        for i in 0..(MAX_TRACKED_CLIENTS as u32) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            b.take((ip, true), 1, t0).unwrap();
        }
        let newcomer: IpAddr = "192.168.1.1".parse().unwrap();
        b.take((newcomer, true), 1, t0).unwrap();
    }
}
