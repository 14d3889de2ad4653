//! Prometheus metrics at `/metrics` (outside the dashboard's auth; guarded by `METRICS_TOKEN`
//! when set). Counters and histograms go through the `metrics` facade; gauges that describe state
//! (database pool, channels by status) are read at scrape time, so they cost nothing per request.
//!
//! Names: `tollgate_http_requests_total{family,route,status}`,
//! `tollgate_http_request_duration_seconds{family}`, `tollgate_relay_requests_total{model,channel,status}`,
//! `tollgate_relay_latency_seconds{model}`, `tollgate_relay_ttfb_seconds{model}`,
//! `tollgate_upstream_errors_total{channel,status}`, `tollgate_tokens_total{model,kind}`,
//! `tollgate_quota_consumed_total{model}`, `tollgate_cache_requests_total{cache,result}`,
//! `tollgate_db_pool_connections{db,state}`, `tollgate_channels{status}` (docs/metrics.md).
//!
//! How the relay metrics are taken, so that `relay/` only carries one-line calls:
//! - [`relay_route`] stores the model and channel of a relay request in its extensions; [`track`]
//!   reads them when the response leaves the handler (`relay_requests_total`, with the status the
//!   client got) and, for a 2xx answer, wraps the body to time the first chunk handed to the
//!   client (TTFB) and the end of the body (latency), streams included.
//! - [`upstream_error`] counts each failed upstream attempt, with how it failed below HTTP (a
//!   timeout or a connection failure) when it did.
//! - [`settled`] counts tokens and quota when a request is billed.
//! - Label cardinality is bounded: a `model` label is a model the routing table knows (routed or
//!   a mapping target), else `other`; `channel` is a channel id; `status` an HTTP status or
//!   `connect`/`timeout`.

use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use bytes::Bytes;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rustc_hash::FxHashMap;
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
                Ok(h) => {
                    describe();
                    Some(h)
                }
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

/// Middleware: request count and latency by route family, route template and status; for relay
/// calls (see [`relay_route`]) also the relay request count, TTFB and latency by model.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let fam = family(req.path());
    let res = next.call(req).await?;
    let status = res.status().as_u16();
    HTTP.with_borrow_mut(|memo| {
        let (requests, duration) = memo.entry((fam, status)).or_insert_with(|| {
            // Handles taken before the recorder is installed would stay no-ops.
            handle();
            let duration = metrics::histogram!("tollgate_http_request_duration_seconds", "family" => fam);
            (FxHashMap::default(), duration)
        });
        if requests.len() >= MAX_MEMO {
            requests.clear();
        }
        // Memoised by the raw path: the route template (the label, which keeps its cardinality
        // bounded) is found by matching the path against the routes again, with a new String.
        // Long paths are not kept, so the memo's size stays bounded whatever clients send.
        let path = res.request().path();
        match requests.get(path) {
            Some(c) => c.increment(1),
            None => {
                let route = res
                    .request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_string());
                let c = metrics::counter!("tollgate_http_requests_total", "family" => fam, "route" => route, "status" => status.to_string());
                c.increment(1);
                if path.len() <= MAX_MEMO_PATH {
                    requests.insert(path.to_string(), c);
                }
            }
        }
        duration.record(started.elapsed().as_secs_f64());
    });
    let relay = res.request().extensions().get::<RelayLabels>().cloned();
    let Some(relay) = relay else {
        return Ok(res.map_into_left_body::<Timed>());
    };
    relay.model.requests(relay.channel, status).increment(1);
    if !res.status().is_success() {
        return Ok(res.map_into_left_body::<Timed>());
    }
    Ok(res.map_body(|_, body| {
        EitherBody::right(Timed {
            inner: body.boxed(),
            started,
            model: relay.model,
            first: false,
            done: false,
        })
    }))
}

/// The labels of a relay request, stored in its extensions by [`relay_route`].
#[derive(Debug, Clone)]
struct RelayLabels {
    model: Arc<ModelMetrics>,
    /// Formatted only when its counter is first taken.
    channel: Option<i64>,
}

/// Past this many memoised handles, a memo starts over (label values are bounded already; this
/// only bounds the memo itself).
const MAX_MEMO: usize = 4096;

/// Longest raw path [`track`] memoises (4,096 of them: at most 1 MB per family and status).
const MAX_MEMO_PATH: usize = 256;

thread_local! {
    /// `http_requests_total` by family, status and route, and the family's duration histogram,
    /// per worker thread: building a labelled key and finding it in the registry on every
    /// request was 2% of a relayed request's instructions.
    #[allow(clippy::type_complexity)]
    static HTTP: std::cell::RefCell<FxHashMap<(&'static str, u16), (FxHashMap<String, metrics::Counter>, metrics::Histogram)>> =
        Default::default();
}

/// A model's label and its metric handles, registered once: building the labelled keys on every
/// relay request (five of them per model) was a per-request cost in the profile.
#[derive(Debug)]
struct ModelMetrics {
    label: String,
    prompt_tokens: metrics::Counter,
    completion_tokens: metrics::Counter,
    quota: metrics::Counter,
    ttfb: metrics::Histogram,
    latency: metrics::Histogram,
    /// `relay_requests_total` by channel and status, taken on first use.
    requests: Mutex<FxHashMap<(Option<i64>, u16), metrics::Counter>>,
}

impl ModelMetrics {
    fn new(label: &str) -> Self {
        // Handles taken before the recorder is installed would stay no-ops.
        handle();
        let m = || ("model", label.to_string());
        ModelMetrics {
            label: label.to_string(),
            prompt_tokens: metrics::counter!(
                "tollgate_tokens_total",
                &[m(), ("kind", "prompt".into())]
            ),
            completion_tokens: metrics::counter!(
                "tollgate_tokens_total",
                &[m(), ("kind", "completion".into())]
            ),
            quota: metrics::counter!("tollgate_quota_consumed_total", &[m()]),
            ttfb: metrics::histogram!("tollgate_relay_ttfb_seconds", &[m()]),
            latency: metrics::histogram!("tollgate_relay_latency_seconds", &[m()]),
            requests: Mutex::default(),
        }
    }

    /// The `relay_requests_total` handle for `channel` and `status`.
    fn requests(&self, channel: Option<i64>, status: u16) -> metrics::Counter {
        let mut memo = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = memo.get(&(channel, status)) {
            return c.clone();
        }
        if memo.len() >= MAX_MEMO {
            memo.clear();
        }
        let channel_label = channel.map_or_else(|| "none".to_string(), |c| c.to_string());
        let c = metrics::counter!("tollgate_relay_requests_total", "model" => self.label.clone(), "channel" => channel_label, "status" => status.to_string());
        memo.insert((channel, status), c.clone());
        c
    }
}

/// Most distinct models ever labelled; past it, new ones are `other` (a guard, not a policy).
const MAX_MODELS: usize = 2000;

/// Models seen in the routing table, so that settlement (which has no routing table at hand)
/// labels the same models.
static KNOWN_MODELS: LazyLock<RwLock<FxHashMap<String, Arc<ModelMetrics>>>> =
    LazyLock::new(Default::default);

/// Every model the routing table does not know.
static OTHER: LazyLock<Arc<ModelMetrics>> = LazyLock::new(|| Arc::new(ModelMetrics::new("other")));

/// `model`'s metrics if the routing table knows it (and remembers it), else `other`'s.
fn model_metrics(table: &crate::relay::route::RoutingTable, model: &str) -> Arc<ModelMetrics> {
    if let Some(m) = known(model) {
        return m;
    }
    if !table.knows_model(model) {
        return OTHER.clone();
    }
    if let Ok(mut map) = KNOWN_MODELS.write()
        && map.len() < MAX_MODELS
    {
        return map
            .entry(model.to_string())
            .or_insert_with(|| Arc::new(ModelMetrics::new(model)))
            .clone();
    }
    OTHER.clone()
}

fn known(model: &str) -> Option<Arc<ModelMetrics>> {
    KNOWN_MODELS.read().ok()?.get(model).cloned()
}

/// Relay: the model (as billed, after the channel's mapping) and channel of this request, read
/// by [`track`] when the response goes out. Call once the model is known (`channel` `None`) and
/// again on every upstream attempt; the last call wins.
pub fn relay_route(req: &HttpRequest, state: &AppState, model: &str, channel: Option<i64>) {
    let labels = RelayLabels {
        model: model_metrics(&state.relay.routing.load(), model),
        channel,
    };
    req.extensions_mut().insert(labels);
}

/// Relay: one failed upstream attempt on `channel` (retried or not):
/// `tollgate_upstream_errors_total{channel,status}` with the upstream's HTTP status, or
/// `connect`/`timeout` when no HTTP answer came.
/// `transport` is how the call failed below HTTP, when it did (`timeout`, `connect`).
pub fn upstream_error(
    channel: i64,
    error: &crate::error::AppError,
    transport: Option<&'static str>,
) {
    let status = match error {
        crate::error::AppError::Upstream { status, body } => {
            let code = body.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let ours = body.get("type").and_then(|t| t.as_str()) == Some("one_api_error");
            let message = body.get("message").and_then(|m| m.as_str()).unwrap_or("");
            match code {
                "first_token_timeout" if ours => "timeout".to_string(),
                "do_request_failed" | "read_response_failed" if ours => {
                    if message.contains("timed out") {
                        "timeout".to_string()
                    } else {
                        transport.unwrap_or("connect").to_string()
                    }
                }
                _ => status.to_string(),
            }
        }
        _ => "other".to_string(),
    };
    metrics::counter!("tollgate_upstream_errors_total", "channel" => channel.to_string(), "status" => status)
        .increment(1);
}

/// Relay: a billed request: `tollgate_tokens_total{model,kind}` and
/// `tollgate_quota_consumed_total{model}`.
pub fn settled(model: &str, prompt_tokens: i64, completion_tokens: i64, quota: i64) {
    let m = known(model).unwrap_or_else(|| OTHER.clone());
    m.prompt_tokens.increment(prompt_tokens.max(0) as u64);
    m.completion_tokens
        .increment(completion_tokens.max(0) as u64);
    m.quota.increment(quota.max(0) as u64);
}

/// Relay auth: counts a read of an in-process cache (`token` or `user`) and passes it through.
pub fn cached<T>(cache: &'static str, value: Option<T>) -> Option<T> {
    static HANDLES: LazyLock<Mutex<FxHashMap<(&'static str, bool), metrics::Counter>>> =
        LazyLock::new(|| {
            // Handles taken before the recorder is installed would stay no-ops.
            handle();
            Mutex::default()
        });
    let hit = value.is_some();
    HANDLES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((cache, hit))
        .or_insert_with(|| {
            let result = if hit { "hit" } else { "miss" };
            metrics::counter!("tollgate_cache_requests_total", "cache" => cache, "result" => result)
        })
        .increment(1);
    value
}

/// A relay response body that records TTFB at its first non-empty chunk and latency at its end
/// (or when dropped early: the client went away).
struct Timed {
    inner: BoxBody,
    started: Instant,
    model: Arc<ModelMetrics>,
    first: bool,
    done: bool,
}

impl Timed {
    fn first_byte(&mut self) {
        if !self.first {
            self.first = true;
            self.model.ttfb.record(self.started.elapsed().as_secs_f64());
        }
    }

    fn end(&mut self) {
        if !self.done {
            self.done = true;
            self.first_byte();
            self.model
                .latency
                .record(self.started.elapsed().as_secs_f64());
        }
    }
}

impl MessageBody for Timed {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(b))) if !b.is_empty() => this.first_byte(),
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.end(),
            _ => {}
        }
        polled
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        self.end();
    }
}

/// HELP lines for the scrape.
fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        "tollgate_relay_requests_total",
        "Relay calls by model, last channel tried and status returned to the client"
    );
    describe_histogram!(
        "tollgate_relay_latency_seconds",
        metrics::Unit::Seconds,
        "Successful relay calls: request received to last byte handed to the client"
    );
    describe_histogram!(
        "tollgate_relay_ttfb_seconds",
        metrics::Unit::Seconds,
        "Successful relay calls: request received to first byte handed to the client"
    );
    describe_counter!(
        "tollgate_upstream_errors_total",
        "Failed upstream attempts (retried or not) by channel and HTTP status, connect or timeout"
    );
    describe_counter!(
        "tollgate_tokens_total",
        "Tokens billed, by model and kind (prompt, completion)"
    );
    describe_counter!(
        "tollgate_quota_consumed_total",
        "Quota charged at settlement, by model (500000 = $1)"
    );
    describe_counter!(
        "tollgate_cache_requests_total",
        "Relay auth reads of the in-process token and user caches, by result"
    );
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
