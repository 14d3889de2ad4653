//! Per-IP rate limits, in process (`governor`, GCRA): `GLOBAL_API_RATE_LIMIT` per 180 s on
//! `/api`, `GLOBAL_WEB_RATE_LIMIT` per 180 s on the dashboard pages, `CRITICAL_RATE_LIMIT` per
//! 1200 s on login, registration, password reset, verification and OAuth. 0 disables a limit.
//! `/v1` is never limited here (as One API). Exceeding a limit answers 429
//! `{success:false,message}`.
//!
//! Limits are kept per client address ([`crate::client_ip`]).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;

use crate::client_ip::TrustedProxies;
use crate::config::Config;

type Limiter = Arc<DefaultKeyedRateLimiter<IpAddr>>;

/// The three limiters and the trusted proxies, shared by every worker.
#[derive(Clone)]
pub struct RateLimits {
    api: Option<Limiter>,
    web: Option<Limiter>,
    critical: Option<Limiter>,
    trusted: TrustedProxies,
}

fn limiter(n: u32, window: Duration) -> Option<Limiter> {
    let burst = NonZeroU32::new(n)?;
    let quota = Quota::with_period(window / n)?.allow_burst(burst);
    Some(Arc::new(RateLimiter::keyed(quota)))
}

impl RateLimits {
    /// The limits of `cfg`, keyed by the client address as `trusted` finds it.
    pub fn new(cfg: &Config, trusted: TrustedProxies) -> Self {
        let window = Duration::from_secs(180);
        RateLimits {
            api: limiter(cfg.global_api_rate_limit, window),
            web: limiter(cfg.global_web_rate_limit, window),
            critical: limiter(cfg.critical_rate_limit, Duration::from_secs(1200)),
            trusted,
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
    let ip = limits.trusted.of_request(req.peer_addr(), req.headers());
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
