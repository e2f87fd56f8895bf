//! Token buckets for anonymous work (login starts): pure arithmetic on a
//! state the caller keeps, time passed in, so the rule is testable without
//! clocks.

use std::net::IpAddr;

/// `per_sec` tokens refill each second, up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: u32,
}

impl Rate {
    /// Parses `"10/s"`, `"600/m"`, `"3600/h"`.
    pub fn parse_per(s: &str, burst: u32) -> Result<Rate, String> {
        let (n, unit) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a rate like 10/s"))?;
        let n: f64 = n
            .trim()
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite() && *n > 0.0)
            .ok_or_else(|| format!("{s:?}: the count must be a positive number"))?;
        let secs = match unit.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => return Err(format!("{s:?}: unit must be s, m or h, not {u:?}")),
        };
        if burst == 0 {
            return Err("burst must be at least 1".into());
        }
        Ok(Rate {
            per_sec: n / secs,
            burst,
        })
    }
}

/// One key's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    /// Seconds (any monotonic origin) of the last update.
    at: f64,
}

impl Bucket {
    pub fn full(rate: Rate, now: f64) -> Bucket {
        Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, rate: Rate, now: f64) -> bool {
        let elapsed = (now - self.at).max(0.0);
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(f64::from(rate.burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// A bucket that would be full by `now` carries no information: it can
    /// be forgotten (keeps the table bounded by recent clients).
    pub fn is_idle(&self, rate: Rate, now: f64) -> bool {
        self.tokens + (now - self.at).max(0.0) * rate.per_sec >= f64::from(rate.burst)
    }
}

/// The key a client is limited under: its address, or its /64 for IPv6
/// (one subscriber usually holds a whole /64, so per-address limits would
/// not limit anyone).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the right-most `X-Forwarded-For` entry that is not itself trusted (the
/// left part of the list is whatever the client chose to write).
pub fn client_ip(peer: IpAddr, xff: Option<&str>, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let mut last = peer;
    for entry in xff.unwrap_or("").rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if trusted(ip) => last = ip,
            Ok(ip) => return ip,
            Err(_) => return last,
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let rate = Rate::parse_per("10/s", 50).unwrap();
        let mut b = Bucket::full(rate, 0.0);
        let allowed = (0..100).filter(|_| b.take(rate, 0.0)).count();
        assert_eq!(allowed, 50);
        // One second later: ten more.
        let allowed = (0..100).filter(|_| b.take(rate, 1.0)).count();
        assert_eq!(allowed, 10);
        assert!(!b.is_idle(rate, 1.0));
        assert!(b.is_idle(rate, 6.0));
        // A clock that goes backwards never mints tokens.
        assert!(!b.take(rate, 0.5));
    }

    #[test]
    fn rates_parse() {
        assert_eq!(Rate::parse_per("600/m", 5).unwrap().per_sec, 10.0);
        assert_eq!(Rate::parse_per(" 1 / h", 1).unwrap().per_sec, 1.0 / 3600.0);
        for bad in ["10", "x/s", "0/s", "-1/s", "10/d", "NaN/s", "inf/s"] {
            assert!(Rate::parse_per(bad, 1).is_err(), "{bad}");
        }
        assert!(Rate::parse_per("1/s", 0).is_err());
    }

    #[test]
    fn client_ip_from_trusted_chain_only() {
        let t = |ip: IpAddr| ip.to_string().starts_with("10.");
        let p = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_ip(p("6.6.6.6"), Some("1.2.3.4"), t), p("6.6.6.6"));
        assert_eq!(client_ip(p("10.0.0.1"), Some("1.2.3.4"), t), p("1.2.3.4"));
        assert_eq!(
            client_ip(p("10.0.0.1"), Some("9.9.9.9, 1.2.3.4, 10.0.0.2"), t),
            p("1.2.3.4")
        );
        assert_eq!(client_ip(p("10.0.0.1"), None, t), p("10.0.0.1"));
        assert_eq!(client_ip(p("10.0.0.1"), Some("garbage, 10.0.0.3"), t), p("10.0.0.3"));
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let a = client_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = client_key("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = client_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            client_key("::ffff:1.2.3.4".parse().unwrap()),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }
}
