//! Where a request comes from: the peer address, unless the peer is a trusted proxy
//! (`TRUSTED_PROXIES`); then the rightmost `X-Forwarded-For` entry that is not itself a trusted
//! proxy, as gin's `ClientIP` (One API) does. Entries left of that are whatever the client wrote.
//! Several `X-Forwarded-For` lines count as one list in their order (gin reads the first line
//! only, which a proxy adding a line of its own leaves to the client). Without a usable
//! `X-Forwarded-For`, `X-Real-IP` is read the same way (gin's default `RemoteIPHeaders`).
//! One rule for the rate limits and for tokens' subnet restrictions.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use actix_web::http::header::{HeaderMap, HeaderName};
use ipnet::IpNet;

// Built once: parsing a custom header name from a `&str` allocates it on every lookup.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Parses `1.2.3.4`, `10.0.0.0/8` or the IPv6 forms; `None` for anything else.
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Whether `ip` is in `net`; an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, what a dual-stack
/// listener reports for an IPv4 peer) counts as its IPv4 address.
fn contains(net: &IpNet, ip: IpAddr) -> bool {
    net.contains(&ip) || net.contains(&ip.to_canonical())
}

/// Whether `ip` is inside one of the comma-separated networks (a token's `subnet`); entries that
/// do not parse match nothing.
pub fn in_subnets(ip: IpAddr, subnets: &str) -> bool {
    subnets
        .split(',')
        .filter_map(parse_net)
        .any(|n| contains(&n, ip))
}

/// The parsed `TRUSTED_PROXIES`, shared by every worker.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Entries that do not parse are skipped.
    pub fn new(list: &[String]) -> Self {
        TrustedProxies(list.iter().filter_map(|s| parse_net(s)).collect())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| contains(n, ip))
    }

    /// The client address of a request from `peer` with `headers` (see the module docs).
    pub fn of_request(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.ip();
        if !self.trusts(peer) {
            return Some(peer);
        }
        [X_FORWARDED_FOR, X_REAL_IP]
            .into_iter()
            .find_map(|name| self.forwarded(headers, name))
            .or(Some(peer))
    }

    /// The client address `name` carries: its rightmost entry that is not a trusted proxy, or
    /// its leftmost when all are; `None` when the header is missing or an entry is not an
    /// address (gin's `validateHeader`). Several header lines are one list in their order (RFC
    /// 9110, 5.3): a proxy that adds a line of its own rather than appending to the client's
    /// puts the real hop last. A value that is not text counts as an entry that is not an address.
    fn forwarded(&self, headers: &HeaderMap, name: HeaderName) -> Option<IpAddr> {
        let mut hops = headers
            .get_all(name)
            .rev()
            .flat_map(|v| v.to_str().unwrap_or("?").rsplit(','))
            .peekable();
        while let Some(hop) = hops.next() {
            let ip = hop.trim().parse::<IpAddr>().ok()?;
            if hops.peek().is_none() || !self.trusts(ip) {
                return Some(ip);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    /// The client address seen by `proxies` from `peer` with these `X-Forwarded-For` lines.
    fn seen(proxies: &TrustedProxies, peer: &str, lines: &[&[u8]]) -> Option<IpAddr> {
        use actix_web::http::header::HeaderValue;
        let mut headers = HeaderMap::new();
        for l in lines {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_bytes(l).unwrap());
        }
        let peer = SocketAddr::new(peer.parse().unwrap(), 40_000);
        proxies.of_request(Some(peer), &headers)
    }

    #[test]
    fn trusts_only_listed_proxies_and_takes_the_rightmost_untrusted_hop() {
        let none = TrustedProxies::default();
        assert_eq!(seen(&none, "9.9.9.9", &[b"1.1.1.1"]), ip("9.9.9.9"));
        let l = TrustedProxies::new(&["10.0.0.0/8".into(), "::1".into(), "junk".into()]);
        assert_eq!(seen(&l, "10.1.2.3", &[b"1.1.1.1"]), ip("1.1.1.1"));
        // A spoofed first entry is skipped: 1.1.1.1 is what the proxy saw.
        let chain: &[u8] = b"6.6.6.6, 1.1.1.1, 10.0.0.9";
        assert_eq!(seen(&l, "10.1.2.3", &[chain]), ip("1.1.1.1"));
        // The same list over several header lines, the proxies' last.
        let lines: &[&[u8]] = &[b"6.6.6.6", b"1.1.1.1", b"10.0.0.9"];
        assert_eq!(seen(&l, "10.1.2.3", lines), ip("1.1.1.1"));
        assert_eq!(seen(&l, "::1", &[]), ip("::1"));
        assert_eq!(seen(&l, "10.1.2.3", &[b"garbage"]), ip("10.1.2.3"));
        assert_eq!(seen(&l, "10.1.2.3", &[b"1.1.1.1, garbage"]), ip("10.1.2.3"));
        // Every hop trusted: the leftmost, as gin.
        assert_eq!(
            seen(&l, "10.1.2.3", &[b"10.0.0.7, 10.0.0.9"]),
            ip("10.0.0.7")
        );
        assert_eq!(seen(&l, "10.1.2.3", &[b"6.6.6.6", b"\xff"]), ip("10.1.2.3"));
        assert_eq!(l.of_request(None, &HeaderMap::new()), None);
        // A dual-stack listener reports an IPv4 proxy as ::ffff:10.1.2.3.
        assert_eq!(seen(&l, "::ffff:10.1.2.3", &[b"1.1.1.1"]), ip("1.1.1.1"));
    }

    #[test]
    fn x_real_ip_counts_when_x_forwarded_for_does_not() {
        use actix_web::http::header::HeaderValue;
        let l = TrustedProxies::new(&["10.0.0.0/8".into()]);
        let peer = |s: &str| Some(SocketAddr::new(s.parse().unwrap(), 40_000));
        let mut headers = HeaderMap::new();
        headers.insert(X_REAL_IP, HeaderValue::from_static("1.1.1.1"));
        assert_eq!(l.of_request(peer("10.1.2.3"), &headers), ip("1.1.1.1"));
        // Only from a trusted peer.
        assert_eq!(l.of_request(peer("9.9.9.9"), &headers), ip("9.9.9.9"));
        // X-Forwarded-For first; an unusable one falls back to X-Real-IP.
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("2.2.2.2"));
        assert_eq!(l.of_request(peer("10.1.2.3"), &headers), ip("2.2.2.2"));
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("garbage"));
        assert_eq!(l.of_request(peer("10.1.2.3"), &headers), ip("1.1.1.1"));
    }

    #[test]
    fn subnets_take_addresses_networks_and_mapped_addresses() {
        let v4 = "192.168.1.7".parse().unwrap();
        assert!(in_subnets(v4, "10.0.0.0/8, 192.168.0.0/16"));
        assert!(in_subnets(v4, "192.168.1.7"));
        assert!(in_subnets(v4, "192.168.1.9/24"));
        assert!(!in_subnets(v4, "192.168.2.0/24,"));
        assert!(!in_subnets(v4, "192.168.0.0/33, junk, "));
        assert!(in_subnets(
            "::ffff:192.168.1.7".parse().unwrap(),
            "192.168.0.0/16"
        ));
        assert!(in_subnets("2001:db8::1".parse().unwrap(), "2001:db8::/32"));
        assert!(!in_subnets("2001:db9::1".parse().unwrap(), "2001:db8::/32"));
        assert!(in_subnets("::1".parse().unwrap(), "::1/128"));
        assert!(in_subnets(v4, "0.0.0.0/0"));
    }
}
