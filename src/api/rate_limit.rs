//! Per-IP rate limits, in process (`governor`, GCRA): `GLOBAL_API_RATE_LIMIT` per 180 s on
//! `/api`, `GLOBAL_WEB_RATE_LIMIT` per 180 s on the dashboard pages, `CRITICAL_RATE_LIMIT` per
//! 1200 s on login, registration, password reset, verification and OAuth. 0 disables a limit.
//! `/v1` is never limited here (as One API). Exceeding a limit answers 429
//! `{success:false,message}`.
//!
//! The client IP is the peer address, unless the peer is listed in `TRUSTED_PROXIES`; then it is
//! the rightmost `X-Forwarded-For` entry that is not itself a trusted proxy.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderName;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;

use crate::config::Config;

/// Built once: parsing a custom header name from a `&str` allocates it on every lookup.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

type Limiter = Arc<DefaultKeyedRateLimiter<IpAddr>>;

/// The three limiters and the trusted proxies, shared by every worker.
#[derive(Clone)]
pub struct RateLimits {
    api: Option<Limiter>,
    web: Option<Limiter>,
    critical: Option<Limiter>,
    trusted: Arc<Vec<(IpAddr, u8)>>,
}

fn limiter(n: u32, window: Duration) -> Option<Limiter> {
    let burst = NonZeroU32::new(n)?;
    let quota = Quota::with_period(window / n)?.allow_burst(burst);
    Some(Arc::new(RateLimiter::keyed(quota)))
}

/// Parses `1.2.3.4` or `10.0.0.0/8` (IPv4 or IPv6).
fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = a.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        Some(p) => p.trim().parse::<u8>().ok().filter(|n| *n <= max)?,
        None => max,
    };
    Some((ip, prefix))
}

fn in_net(ip: IpAddr, (net, prefix): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

impl RateLimits {
    pub fn from_config(cfg: &Config) -> Self {
        let window = Duration::from_secs(180);
        RateLimits {
            api: limiter(cfg.global_api_rate_limit, window),
            web: limiter(cfg.global_web_rate_limit, window),
            critical: limiter(cfg.critical_rate_limit, Duration::from_secs(1200)),
            trusted: Arc::new(
                cfg.trusted_proxies
                    .iter()
                    .filter_map(|s| parse_net(s))
                    .collect(),
            ),
        }
    }

    /// Forgets idle addresses once a minute so the key maps stay bounded; the task ends when
    /// the limiters are dropped. Call from within a Tokio runtime.
    pub fn spawn_cleanup(&self) {
        let weak: Vec<std::sync::Weak<DefaultKeyedRateLimiter<IpAddr>>> =
            [&self.api, &self.web, &self.critical]
                .into_iter()
                .flatten()
                .map(Arc::downgrade)
                .collect();
        if weak.is_empty() {
            return;
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let live: Vec<_> = weak.iter().filter_map(std::sync::Weak::upgrade).collect();
                if live.is_empty() {
                    break;
                }
                for l in live {
                    l.retain_recent();
                    l.shrink_to_fit();
                }
            }
        });
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| in_net(ip, *n))
    }

    /// The client address of a request (see the module docs).
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let Some(xff) = forwarded_for else {
            return Some(peer);
        };
        let mut last = peer;
        for hop in xff.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if self.is_trusted(ip) => last = ip,
                Ok(ip) => return Some(ip),
                Err(_) => break,
            }
        }
        Some(last)
    }
}

fn is_critical(path: &str) -> bool {
    matches!(
        path,
        "/api/user/login"
            | "/api/user/register"
            | "/api/user/reset"
            | "/api/reset_password"
            | "/api/verification"
    ) || path.starts_with("/api/oauth/")
}

/// The middleware (installed once, around every route).
pub async fn limit<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    // The relay is not IP-limited (as in One API): skip the work below on its hot path.
    let relay = req.path().starts_with("/v1") || req.path().starts_with("/dashboard");
    let limits = req.app_data::<web::Data<RateLimits>>().cloned();
    let Some(limits) = limits.filter(|_| !relay) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let path = req.path().to_string();
    let peer = req.peer_addr().map(|a| a.ip());
    let xff = req
        .headers()
        .get(X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ip = limits.client_ip(peer, xff.as_deref());
    let mut checks: Vec<&Limiter> = Vec::new();
    if path.starts_with("/api/") || path == "/api" {
        checks.extend(limits.api.as_ref());
        if is_critical(&path) {
            checks.extend(limits.critical.as_ref());
        }
    } else {
        checks.extend(limits.web.as_ref());
    }
    if let Some(ip) = ip {
        for l in checks {
            if l.check_key(&ip).is_err() {
                let res = HttpResponse::TooManyRequests()
                    .insert_header(("Retry-After", "60"))
                    .json(json!({ "success": false, "message": "请求过于频繁，请稍后再试" }));
                return Ok(req.into_response(res).map_into_right_body());
            }
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(trusted: &[&str]) -> RateLimits {
        RateLimits {
            api: None,
            web: None,
            critical: None,
            trusted: Arc::new(trusted.iter().filter_map(|s| parse_net(s)).collect()),
        }
    }

    #[test]
    fn client_ip_trusts_only_listed_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        let none = limits(&[]);
        assert_eq!(
            none.client_ip(ip("9.9.9.9"), Some("1.1.1.1")),
            ip("9.9.9.9")
        );
        let l = limits(&["10.0.0.0/8", "::1"]);
        assert_eq!(l.client_ip(ip("10.1.2.3"), Some("1.1.1.1")), ip("1.1.1.1"));
        // A client cannot spoof by prepending: the rightmost untrusted hop counts.
        assert_eq!(
            l.client_ip(ip("10.1.2.3"), Some("6.6.6.6, 1.1.1.1, 10.0.0.9")),
            ip("1.1.1.1")
        );
        assert_eq!(l.client_ip(ip("::1"), None), ip("::1"));
        assert_eq!(l.client_ip(ip("10.1.2.3"), Some("garbage")), ip("10.1.2.3"));
    }

    #[test]
    fn nets() {
        assert!(in_net(
            "10.9.9.9".parse().unwrap(),
            parse_net("10.0.0.0/8").unwrap()
        ));
        assert!(!in_net(
            "11.0.0.1".parse().unwrap(),
            parse_net("10.0.0.0/8").unwrap()
        ));
        assert!(in_net(
            "1.2.3.4".parse().unwrap(),
            parse_net("0.0.0.0/0").unwrap()
        ));
        assert!(parse_net("10.0.0.0/40").is_none());
    }
}
