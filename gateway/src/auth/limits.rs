//! Bounds on what anonymous clients can make the gateway keep: login starts
//! per client address (token buckets, `server.login_rate`) and pending
//! logins per instance (`server.max_pending_logins`).

use policy::Reason;
use policy::ratelimit::{Bucket, Rate, client_key};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Client addresses tracked at once. Past this, idle buckets are forgotten;
/// if every one is busy, new addresses go untracked and only the
/// per-instance cap holds them (a flood from that many addresses is the cap's job).
const MAX_TRACKED: usize = 65_536;
/// Pending logins are counted in slices of this length over the login TTL.
const SLICE: Duration = Duration::from_secs(30);

pub struct LoginLimits {
    rate: Rate,
    max_pending: usize,
    epoch: Instant,
    buckets: Mutex<Buckets>,
    pending: Mutex<Window>,
}

#[derive(Default)]
struct Buckets {
    map: HashMap<IpAddr, Bucket>,
    /// When idle buckets were last forgotten: at most once a second, so a
    /// flood from many addresses does not make every request walk the table.
    swept_at: f64,
}

/// Login starts per time slice over the last login TTL: an upper bound of
/// the records this instance has pending (a callback on another instance
/// may have consumed some), needing no store round trip.
struct Window {
    slices: Vec<(u64, usize)>,
    span: u64,
}

impl Window {
    fn count(&mut self, slice: u64) -> usize {
        let span = self.span;
        self.slices.retain(|(s, _)| slice < s + span);
        self.slices.iter().map(|(_, n)| n).sum()
    }

    fn add(&mut self, slice: u64) {
        match self.slices.last_mut() {
            Some((s, n)) if *s == slice => *n += 1,
            _ => self.slices.push((slice, 1)),
        }
    }
}

impl LoginLimits {
    pub fn new(rate: Rate, max_pending: usize, login_ttl: Duration) -> Self {
        LoginLimits {
            rate,
            max_pending,
            epoch: Instant::now(),
            buckets: Mutex::new(Buckets::default()),
            pending: Mutex::new(Window {
                slices: Vec::new(),
                span: login_ttl.as_secs().div_ceil(SLICE.as_secs()) + 1,
            }),
        }
    }

    /// Admits one login start from `client`, or says why not.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<(), Reason> {
        let elapsed = self.epoch.elapsed();
        if let Some(ip) = client {
            let now = elapsed.as_secs_f64();
            let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            let b = &mut *guard;
            let key = client_key(ip);
            if !b.map.contains_key(&key) && b.map.len() >= MAX_TRACKED && now - b.swept_at >= 1.0 {
                let rate = self.rate;
                b.map.retain(|_, bucket| !bucket.is_idle(rate, now));
                b.swept_at = now;
            }
            if b.map.contains_key(&key) || b.map.len() < MAX_TRACKED {
                let bucket = b.map.entry(key).or_insert_with(|| Bucket::full(self.rate, now));
                if !bucket.take(self.rate, now) {
                    return Err(Reason::LoginRateLimited);
                }
            }
        }
        let slice = elapsed.as_secs() / SLICE.as_secs();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.count(slice) >= self.max_pending {
            return Err(Reason::TooManyPendingLogins);
        }
        pending.add(slice);
        Ok(())
    }

    pub fn tracked_clients(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn one_address_is_limited_others_are_not() {
        let l = LoginLimits::new(Rate::parse_per("1/h", 5).unwrap(), 1000, Duration::from_secs(600));
        let admitted = (0..50).filter(|_| l.admit(ip("6.6.6.6")).is_ok()).count();
        assert_eq!(admitted, 5);
        assert_eq!(l.admit(ip("6.6.6.6")), Err(Reason::LoginRateLimited));
        assert!(l.admit(ip("1.2.3.4")).is_ok());
        // Same IPv6 /64: same bucket.
        let admitted = (0..50)
            .map(|i| format!("2001:db8::{i:x}"))
            .filter(|a| l.admit(ip(a)).is_ok())
            .count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn instance_cap_holds_whatever_the_addresses() {
        let l = LoginLimits::new(Rate::parse_per("10/s", 50).unwrap(), 100, Duration::from_secs(600));
        let admitted = (0..1000u32)
            .filter(|i| l.admit(Some(IpAddr::from(i.to_be_bytes()))).is_ok())
            .count();
        assert_eq!(admitted, 100);
        assert_eq!(l.admit(ip("9.9.9.9")), Err(Reason::TooManyPendingLogins));
    }

    #[test]
    fn tracked_addresses_are_bounded() {
        let l = LoginLimits::new(
            Rate::parse_per("1000/s", 1).unwrap(),
            usize::MAX,
            Duration::from_secs(600),
        );
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let _ = l.admit(Some(IpAddr::from(((i + 1) << 8).to_be_bytes())));
        }
        assert!(l.tracked_clients() <= MAX_TRACKED);
    }
}
