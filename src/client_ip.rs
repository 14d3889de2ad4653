//! Where a request comes from: the peer address, unless the peer is a trusted proxy
//! (`TRUSTED_PROXIES`); then the rightmost `X-Forwarded-For` entry that is not itself a trusted
//! proxy, as gin's `ClientIP` (One API) does. Entries left of that are whatever the client wrote.
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

    /// The client address of a request from `peer` with `headers`.
    pub fn of_request(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let xff = headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok());
        self.client_ip(peer.map(|a| a.ip()), xff)
    }

    /// The client address of a request from `peer` carrying `forwarded_for` (see the module docs).
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let Some(xff) = forwarded_for else {
            return Some(peer);
        };
        let mut last = peer;
        for hop in xff.rsplit(',') {
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

    #[test]
    fn trusts_only_listed_proxies_and_takes_the_rightmost_untrusted_hop() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("9.9.9.9"), Some("1.1.1.1")),
            ip("9.9.9.9")
        );
        let l = TrustedProxies::new(&["10.0.0.0/8".into(), "::1".into(), "junk".into()]);
        assert_eq!(l.client_ip(ip("10.1.2.3"), Some("1.1.1.1")), ip("1.1.1.1"));
        // A spoofed first entry is skipped: 1.1.1.1 is what the proxy saw.
        assert_eq!(
            l.client_ip(ip("10.1.2.3"), Some("6.6.6.6, 1.1.1.1, 10.0.0.9")),
            ip("1.1.1.1")
        );
        assert_eq!(l.client_ip(ip("::1"), None), ip("::1"));
        assert_eq!(l.client_ip(ip("10.1.2.3"), Some("garbage")), ip("10.1.2.3"));
        assert_eq!(l.client_ip(None, Some("1.1.1.1")), None);
        // A dual-stack listener reports an IPv4 proxy as ::ffff:10.1.2.3.
        assert_eq!(
            l.client_ip(ip("::ffff:10.1.2.3"), Some("1.1.1.1")),
            ip("1.1.1.1")
        );
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
