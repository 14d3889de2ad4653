//! Where a request comes from: the peer address, unless the peer is a trusted proxy
//! (`TRUSTED_PROXIES`); then the rightmost `X-Forwarded-For` entry that is not itself a trusted
//! proxy, as gin's `ClientIP` (One API) does. Entries left of that are whatever the client wrote.
//! Several `X-Forwarded-For` lines count as one list in their order (gin reads the first line
//! only, which a proxy adding a line of its own leaves to the client).
//! One rule for the rate limits and for tokens' subnet restrictions.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use actix_web::http::header::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// Built once: parsing a custom header name from a `&str` allocates it on every lookup.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

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
        // Several header lines are one list in their order (RFC 9110, 5.3): a proxy that adds a
        // line of its own rather than appending to the client's puts the real hop last. A value
        // that is not text stops the walk like any entry that is not an address.
        let hops = headers
            .get_all(X_FORWARDED_FOR)
            .rev()
            .flat_map(|v| v.to_str().unwrap_or("?").rsplit(','));
        let mut last = peer;
        for hop in hops {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if self.trusts(ip) => last = ip,
                Ok(ip) => return Some(ip),
                Err(_) => break,
            }
        }
        Some(last)
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
        assert_eq!(seen(&l, "10.1.2.3", &[b"6.6.6.6", b"\xff"]), ip("10.1.2.3"));
        assert_eq!(l.of_request(None, &HeaderMap::new()), None);
        // A dual-stack listener reports an IPv4 proxy as ::ffff:10.1.2.3.
        assert_eq!(seen(&l, "::ffff:10.1.2.3", &[b"1.1.1.1"]), ip("1.1.1.1"));
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
