//! Failed-authentication limiting (`[auth.rate_limit]`): a token bucket per client
//! address, checked before any verification so a token-guessing flood reaches
//! neither the cache nor reana-server; and the client address itself, taken from
//! `X-Forwarded-For` only when the peer is a trusted proxy.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use http::{HeaderMap, HeaderName};
use ipnet::{IpNet, Ipv6Net};

use crate::config::RateLimitConfig;
use crate::proxy::raw::Fields;

/// The client's address: the TCP peer, or, when the peer is in one of the `trusted`
/// networks, the right-most `X-Forwarded-For` entry that is not itself a trusted
/// proxy. Entries may carry a port (`1.2.3.4:5`, `[::1]:5`); an entry that is not an
/// address ends the walk (the last trusted hop is the answer). IPv4-mapped IPv6
/// addresses are reported as IPv4.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    client_addr_of(peer, Fields::Map(headers), trusted)
}

/// [`client_addr`] of any request's fields.
pub(crate) fn client_addr_of(peer: IpAddr, fields: Fields<'_>, trusted: &[IpNet]) -> IpAddr {
    let mut current = peer.to_canonical();
    if !is_trusted(current, trusted) {
        return current;
    }
    static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    let entries: Vec<&str> = fields
        .values(&X_FORWARDED_FOR)
        // Visible ASCII only, as `HeaderValue::to_str` takes it.
        .filter(|v| v.iter().all(|&b| (b' '..0x7f).contains(&b) || b == b'\t'))
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    for entry in entries.into_iter().rev() {
        let Some(addr) = parse_entry(entry) else {
            return current;
        };
        current = addr.to_canonical();
        if !is_trusted(current, trusted) {
            return current;
        }
    }
    current
}

/// An `X-Forwarded-For` entry: an address, optionally with a port.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// Whether `addr` lies in one of the `trusted` networks (IPv4 networks hold IPv4
/// addresses only: peers are compared in their canonical form).
fn is_trusted(addr: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&addr))
}

/// The bucket key: IPv6 clients are grouped by /64 (one host usually owns one).
fn bucket_key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Net::new_assert(v6, 64).network()),
        v4 => v4,
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets of failed authentications per client address, at most
/// `max_clients` of them (the oldest is forgotten first).
pub struct FailureLimiter {
    burst: f64,
    per_second: f64,
    max_clients: usize,
    buckets: DashMap<IpAddr, Bucket>,
    /// Insertion order; every insertion or removal of `buckets` happens under it.
    order: Mutex<VecDeque<IpAddr>>,
    /// Whether any address is tracked, written under `order`: the check of every
    /// request reads this flag and, while no client has failed, neither locks a
    /// shard of `buckets` nor reads the clock.
    any: AtomicBool,
}

impl FailureLimiter {
    /// A limiter for `cfg`.
    pub fn new(cfg: &RateLimitConfig) -> Self {
        FailureLimiter {
            burst: f64::from(cfg.burst),
            per_second: cfg.per_second,
            max_clients: cfg.max_clients,
            buckets: DashMap::new(),
            order: Mutex::new(VecDeque::new()),
            any: AtomicBool::new(false),
        }
    }

    /// `Err(retry after)` when `addr` has used up its failures.
    pub fn check(&self, addr: IpAddr) -> Result<(), Duration> {
        if !self.any.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.check_at(addr, Instant::now())
    }

    /// Counts one failed authentication from `addr`.
    pub fn record_failure(&self, addr: IpAddr) {
        self.record_at(addr, Instant::now());
    }

    /// Number of client addresses tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    fn refill(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }

    fn check_at(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(bucket) = self.buckets.get(&bucket_key(addr)).map(|b| *b) else {
            return Ok(());
        };
        let tokens = self.refill(bucket, now);
        if tokens >= 1.0 {
            Ok(())
        } else {
            // A tiny accepted `per_second` makes this wait longer than a Duration
            // holds: then it is "forever", never a panic.
            let wait = (1.0 - tokens) / self.per_second;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
        }
    }

    fn record_at(&self, addr: IpAddr, now: Instant) {
        let key = bucket_key(addr);
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let mut inserted = false;
        {
            let mut bucket = self.buckets.entry(key).or_insert_with(|| {
                inserted = true;
                Bucket {
                    tokens: self.burst,
                    updated: now,
                }
            });
            let tokens = self.refill(*bucket, now);
            *bucket = Bucket {
                tokens: (tokens - 1.0).max(0.0),
                updated: now,
            };
        }
        if inserted {
            order.push_back(key);
            while self.buckets.len() > self.max_clients {
                match order.pop_front() {
                    Some(old) => {
                        self.buckets.remove(&old);
                    }
                    None => break,
                }
            }
            self.any.store(!order.is_empty(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("network")
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn client_addr_believes_trusted_proxies_only() {
        let trusted = [net("10.0.0.0/8"), net("fd00::/8")];
        let h = xff(&["198.51.100.7, 203.0.113.9", "10.1.2.3"]);
        // An untrusted peer: its X-Forwarded-For is ignored.
        assert_eq!(client_addr(ip("192.0.2.1"), &h, &trusted), ip("192.0.2.1"));
        // A trusted peer: right-most entry that is not a trusted proxy.
        assert_eq!(client_addr(ip("10.9.9.9"), &h, &trusted), ip("203.0.113.9"));
        assert_eq!(client_addr(ip("10.9.9.9"), &h, &[]), ip("10.9.9.9"));
        // Ports, IPv6 and IPv4-mapped forms.
        let h = xff(&["[2001:db8::1]:4711, 198.51.100.7:80"]);
        assert_eq!(client_addr(ip("fd00::1"), &h, &trusted), ip("198.51.100.7"));
        assert_eq!(
            client_addr(ip("::ffff:10.0.0.1"), &h, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_addr(ip("::ffff:192.0.2.1"), &h, &trusted),
            ip("192.0.2.1")
        );
        // Garbage stops the walk at the last trusted hop; all-trusted gives the first.
        let h = xff(&["203.0.113.9, unknown, 10.0.0.5"]);
        assert_eq!(client_addr(ip("10.9.9.9"), &h, &trusted), ip("10.0.0.5"));
        let h = xff(&["10.0.0.4, 10.0.0.5"]);
        assert_eq!(client_addr(ip("10.9.9.9"), &h, &trusted), ip("10.0.0.4"));
        assert_eq!(
            client_addr(ip("10.9.9.9"), &xff(&[]), &trusted),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn networks() {
        let trusted = |addr: &str, nets: &[&str]| {
            let nets: Vec<IpNet> = nets.iter().map(|n| net(n)).collect();
            is_trusted(ip(addr), &nets)
        };
        assert!(trusted("10.1.2.3", &["10.0.0.0/8"]));
        assert!(!trusted("11.1.2.3", &["10.0.0.0/8"]));
        assert!(trusted("1.2.3.4", &["0.0.0.0/0"]));
        assert!(trusted("1.2.3.4", &["1.2.3.4/32"]));
        assert!(!trusted("1.2.3.5", &["1.2.3.4/32"]));
        assert!(trusted("10.9.9.9", &["192.0.2.0/24", "10.0.0.0/8"]));
        assert!(trusted("2001:db8::1", &["2001:db8::/32"]));
        assert!(!trusted("2001:db9::1", &["2001:db8::/32"]));
        assert!(!trusted("10.0.0.1", &["::/0"]));
        assert!(!trusted("10.0.0.1", &[]));
        assert_eq!(bucket_key(ip("2001:db8::1:2:3:4")), ip("2001:db8::"));
        assert_eq!(bucket_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    fn limiter(burst: u32, per_second: f64, max_clients: usize) -> FailureLimiter {
        FailureLimiter::new(&RateLimitConfig {
            burst,
            per_second,
            max_clients,
        })
    }

    #[test]
    fn any_accepted_rate_gives_a_wait_and_never_panics() {
        let (a, t0) = (ip("192.0.2.1"), Instant::now());
        for per_second in [f64::MIN_POSITIVE, 1e-300, 1e-9, 1.0, 1e300, f64::MAX] {
            let l = limiter(1, per_second, 16);
            l.record_at(a, t0);
            l.record_at(a, t0);
            let _ = l.check_at(a, t0);
            let _ = l.check_at(a, t0 + Duration::from_secs(86_400 * 365));
        }
        // A wait longer than a Duration holds is "forever".
        let l = limiter(1, f64::MIN_POSITIVE, 16);
        l.record_at(a, t0);
        assert_eq!(l.check_at(a, t0), Err(Duration::MAX));
    }

    #[test]
    fn burst_then_rate() {
        let l = limiter(3, 2.0, 16);
        let (a, b, t0) = (ip("192.0.2.1"), ip("192.0.2.2"), Instant::now());
        for _ in 0..3 {
            assert_eq!(l.check_at(a, t0), Ok(()));
            l.record_at(a, t0);
        }
        let retry = l.check_at(a, t0).expect_err("limited");
        assert!(retry > Duration::from_millis(400) && retry <= Duration::from_millis(500));
        assert_eq!(l.check_at(b, t0), Ok(()));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(l.check_at(a, t1), Ok(()));
        l.record_at(a, t1);
        assert!(l.check_at(a, t1).is_err());
        // Refills up to the burst, not beyond.
        let later = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.check_at(a, later), Ok(()));
            l.record_at(a, later);
        }
        assert!(l.check_at(a, later).is_err());
    }

    #[test]
    fn the_check_sees_failures_recorded_through_the_public_calls() {
        let l = limiter(1, 0.001, 16);
        let a = ip("192.0.2.1");
        assert_eq!(l.check(a), Ok(()), "nobody has failed yet");
        l.record_failure(a);
        assert!(l.check(a).is_err(), "the failure counts");
        assert_eq!(l.check(ip("192.0.2.2")), Ok(()), "others are not limited");
    }

    #[test]
    fn ipv6_hosts_share_their_64() {
        let l = limiter(1, 0.001, 16);
        let t0 = Instant::now();
        l.record_at(ip("2001:db8::1"), t0);
        assert!(l.check_at(ip("2001:db8::ffff:1"), t0).is_err());
        assert!(l.check_at(ip("2001:db8:0:1::1"), t0).is_ok());
    }

    #[test]
    fn tracked_clients_are_bounded() {
        let l = limiter(1, 0.001, 16);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            l.record_at(IpAddr::from(i.to_be_bytes()), t0);
            assert!(l.tracked() <= 16);
        }
        // The newest are remembered, the oldest forgotten.
        assert!(l.check_at(IpAddr::from(999u32.to_be_bytes()), t0).is_err());
        assert!(l.check_at(IpAddr::from(0u32.to_be_bytes()), t0).is_ok());
        assert_eq!(l.order.lock().map(|o| o.len()).unwrap_or(0), 16);
    }
}
