//! Prometheus metrics at `/metrics` (outside the dashboard's auth; guarded by `METRICS_TOKEN`
//! when set). Counters and histograms go through the `metrics` facade; gauges that describe state
//! (database pool, channels by status) are read at scrape time, so they cost nothing per request.
//!
//! Names: `tollgate_http_requests_total{family,route,status}`,
//! `tollgate_http_request_duration_seconds{family}`, `tollgate_relay_requests_total{model,channel,status}`,
//! `tollgate_relay_latency_seconds{model}`, `tollgate_relay_ttfb_seconds{model}`,
//! `tollgate_upstream_errors_total{channel,status}`, `tollgate_tokens_total{model,kind}`,
//! `tollgate_quota_consumed_total{model}`, `tollgate_cache_requests_total{cache,result}`,
//! `tollgate_db_pool_connections{db,state}`, `tollgate_channels{status}`.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use sqlx::Row;

use crate::state::AppState;
use crate::store::Db;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once (several apps in one test process share it).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0,
                ])
                .ok()?;
            match builder.install_recorder() {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!("metrics recorder not installed: {e}");
                    None
                }
            }
        })
        .as_ref()
}

fn family(path: &str) -> &'static str {
    if path.starts_with("/v1") || path.starts_with("/dashboard") || path.starts_with("/v1beta") {
        "relay"
    } else if path.starts_with("/api") {
        "api"
    } else if path == "/metrics" {
        "metrics"
    } else {
        "web"
    }
}

/// Middleware: request count and latency by route family, route template and status.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let fam = family(req.path());
    let res = next.call(req).await?;
    // The route template (not the raw path) keeps label cardinality bounded.
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = res.status().as_u16().to_string();
    metrics::counter!("tollgate_http_requests_total", "family" => fam, "route" => route, "status" => status)
        .increment(1);
    metrics::histogram!("tollgate_http_request_duration_seconds", "family" => fam)
        .record(started.elapsed().as_secs_f64());
    Ok(res)
}

fn pool_gauges(name: &'static str, db: &Db) {
    let size = db.pool.size() as f64;
    let idle = db.pool.num_idle() as f64;
    metrics::gauge!("tollgate_db_pool_connections", "db" => name, "state" => "idle").set(idle);
    metrics::gauge!("tollgate_db_pool_connections", "db" => name, "state" => "in_use")
        .set(size - idle);
    metrics::gauge!("tollgate_db_pool_connections", "db" => name, "state" => "max")
        .set(f64::from(db.pool.options().get_max_connections()));
}

async fn channel_gauges(db: &Db) -> Result<(), sqlx::Error> {
    let sql = crate::store::dialect::as_i64(db.backend, "COUNT(*)");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT status, {sql} FROM channels GROUP BY status"
    )))
    .fetch_all(&db.pool)
    .await?;
    let mut by = [0f64; 4];
    for r in rows {
        let status: i64 = r.try_get(0)?;
        let n: i64 = r.try_get(1)?;
        if let Some(slot) = by.get_mut(status.clamp(0, 3) as usize) {
            *slot += n as f64;
        }
    }
    for (i, label) in ["unknown", "enabled", "manually_disabled", "auto_disabled"]
        .iter()
        .enumerate()
    {
        metrics::gauge!("tollgate_channels", "status" => *label).set(by[i]);
    }
    Ok(())
}

/// `GET /metrics`
pub async fn scrape(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(token) = &state.cfg.metrics_token {
        let given = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v));
        if given != Some(token.expose_secret()) {
            return HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .body("metrics need Authorization: Bearer <METRICS_TOKEN>\n");
        }
    }
    let Some(handle) = handle() else {
        return HttpResponse::ServiceUnavailable().body("metrics recorder unavailable\n");
    };
    pool_gauges("main", &state.db);
    pool_gauges("logs", &state.log_db);
    if let Err(e) = channel_gauges(&state.db).await {
        tracing::warn!("channel gauges: {e}");
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render())
}
