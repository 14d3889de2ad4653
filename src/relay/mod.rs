//! The `/v1` relay: OpenAI-compatible endpoints in front of upstream channels.
//!
//! Layout: `auth` (the `TokenAuth` extractor), `route` (routing table, selection,
//! auto-disable), `forward` (the one place with I/O: send, retry, stream, meter, settle),
//! `openai` (the pass-through adaptor), `sse`, `types`, `handlers` (models, dashboard billing),
//! `exchange` (providers whose exchange is more than one HTTP call: access tokens, WebSocket,
//! polling).
//! Adaptors are pure and synchronous; other wire formats plug in through [`Adaptor`] and
//! [`adaptor_for`].

pub mod aiproxy;
pub mod anthropic;
pub mod auth;
pub mod azure;
pub mod baidu;
pub mod bedrock;
pub mod coze;
pub mod deepl;
pub mod exchange;
pub mod forward;
pub mod front;
pub mod gemini;
pub mod handlers;
pub mod openai;
pub mod palm;
pub mod proxy;
pub mod replicate;
pub mod route;
pub mod sse;
pub mod tencent;
pub mod types;
pub mod upstream;
pub mod vertex;
pub mod xunfei;
pub mod zhipu;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::web;
use arc_swap::ArcSwap;
use serde_json::Value;

use crate::billing::ledger::{Balances, Ledger};
use crate::billing::ratio::Ratios;
use crate::cache::redis::{QuotaStore, RedisPool, RedisTarget};
use crate::cache::rows::RowCache;
use crate::config::Config;
use crate::options::Options;
use crate::state::AppState;
use crate::store::Db;
use crate::store::tokens::Token;
use crate::store::users::User;

use self::types::{RelayMode, Usage};

/// Where and how to send one upstream request (headers besides `Content-Type`/`Accept`).
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// What an adaptor knows about one upstream call. Built by `forward` per attempt.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    pub channel_type: i64,
    /// The channel's base URL (empty = the type's default).
    pub base_url: &'a str,
    pub key: &'a str,
    /// The channel's `config.api_version` (or legacy `other`), when set.
    pub api_version: Option<&'a str>,
    /// The channel's `config.user_id` (Cloudflare account id), when set.
    pub user_id: Option<&'a str>,
    /// The client path (`/v1/...`, query included).
    pub path: &'a str,
    pub mode: RelayMode,
    /// The upstream model (after the channel's model mapping).
    pub model: &'a str,
    pub stream: bool,
    /// Prompt tokens counted locally (for providers that report none, e.g. Gemini embeddings).
    pub prompt_tokens: i64,
    /// `GEMINI_VERSION` and `GEMINI_SAFETY_SETTING`.
    pub gemini_version: &'a str,
    pub gemini_safety: &'a str,
    /// The client's `anthropic-version` / `anthropic-beta` headers, forwarded to Anthropic.
    pub anthropic_version: Option<&'a str>,
    pub anthropic_beta: Option<&'a str>,
    /// The client's request in OpenAI's format (`None` for multipart bodies).
    pub request: Option<&'a Value>,
    /// The channel's `config` JSON (AWS credentials and region, ...).
    pub config: Option<&'a Value>,
}

/// Turns one provider's stream, event by event, into OpenAI `chat.completion.chunk`s.
/// Pure and synchronous; `forward` splits the bytes into events and does the I/O.
pub trait StreamTranslator: Send {
    /// One upstream SSE event (`event:` name, possibly empty, and its `data:`): OpenAI chunks
    /// to send, or an OpenAI error object the upstream reported mid-stream.
    fn on_event(&mut self, event: &str, data: &str) -> Result<Vec<Value>, Value>;
    /// The upstream ended: the last chunks (the usage chunk, billed once).
    fn finish(&mut self) -> Vec<Value>;
}

/// Wraps a translator whose chunks carry `usage`: the usage is taken off them and sent once, in
/// a usage-only chunk at the end (as OpenAI does; the relay drops it when the client did not ask
/// for it).
pub struct HoldUsage<T> {
    pub inner: T,
    pub model: String,
    pub usage: Option<Value>,
}

impl<T: StreamTranslator> HoldUsage<T> {
    pub fn new(inner: T, model: &str) -> Self {
        HoldUsage {
            inner,
            model: model.to_string(),
            usage: None,
        }
    }

    fn take_usage(&mut self, chunks: &mut [Value]) {
        for c in chunks {
            if let Some(u) = c.as_object_mut().and_then(|o| o.remove("usage"))
                && !u.is_null()
            {
                self.usage = Some(u);
            }
        }
    }
}

impl<T: StreamTranslator> StreamTranslator for HoldUsage<T> {
    fn on_event(&mut self, event: &str, data: &str) -> Result<Vec<Value>, Value> {
        let mut chunks = self.inner.on_event(event, data)?;
        self.take_usage(&mut chunks);
        Ok(chunks)
    }

    fn finish(&mut self) -> Vec<Value> {
        let mut out = self.inner.finish();
        self.take_usage(&mut out);
        if let Some(u) = self.usage.take() {
            out.push(serde_json::json!({
                "object": "chat.completion.chunk", "model": self.model, "choices": [], "usage": u,
            }));
        }
        out
    }
}

/// A wire format. Pure and synchronous: JSON in, JSON out; `forward` does the I/O.
pub trait Adaptor: Sync + std::fmt::Debug {
    /// URL and auth headers for one call.
    fn build_request(&self, ctx: &Ctx) -> UpstreamRequest;
    /// Whether the upstream honours `stream_options.include_usage`.
    fn supports_include_usage(&self, channel_type: i64) -> bool;
    /// Whether the upstream speaks OpenAI's format (the body and answer pass unchanged).
    fn is_openai(&self) -> bool {
        true
    }
    /// Whether `image_url`s given by http(s) URL must be fetched and inlined first.
    fn inline_images(&self) -> bool {
        false
    }
    /// The upstream body for an OpenAI-format request (only called when not [`is_openai`]);
    /// `Err` is a client error (400).
    ///
    /// [`is_openai`]: Adaptor::is_openai
    fn convert_request(&self, _ctx: &Ctx, body: Value) -> Result<Value, String> {
        Ok(body)
    }
    /// A 2xx non-stream answer as OpenAI JSON (only called when not `is_openai`); `Err` is an
    /// OpenAI error object.
    fn convert_response(&self, _ctx: &Ctx, body: &[u8]) -> Result<Value, Value> {
        serde_json::from_slice(body).map_err(|_| {
            serde_json::json!({"message": "invalid upstream response", "type": "upstream_error",
                "param": "", "code": "bad_response"})
        })
    }
    /// Headers that depend on the final URL and body (request signing, e.g. AWS SigV4).
    fn sign(&self, _ctx: &Ctx, _url: &str, _body: &[u8]) -> Vec<(String, String)> {
        vec![]
    }
    /// Whether stream answers use AWS's binary event stream rather than SSE.
    fn event_stream(&self) -> bool {
        false
    }
    /// Whether the upstream cannot stream (PaLM): a stream request gets one JSON answer, handed
    /// whole to the stream translator as a single event when it ends.
    fn whole_answer_stream(&self) -> bool {
        false
    }
    /// The translator for a stream answer; `None` = the upstream already sends OpenAI chunks.
    fn stream_translator(&self, _ctx: &Ctx) -> Option<Box<dyn StreamTranslator>> {
        None
    }
    /// Usage from a non-stream (OpenAI-format) response.
    fn parse_usage(&self, body: &Value) -> Option<Usage> {
        body.get("usage").and_then(Usage::from_json)
    }
    /// The generated text of a non-stream response (for counting when usage is missing).
    fn completion_text(&self, body: &Value) -> String {
        openai::completion_text(body)
    }
    /// The error object (OpenAI shape) for an upstream error response.
    fn map_error(&self, status: u16, body: &[u8]) -> Value;
}

/// The adaptor for a channel type. Every type not handled by another adaptor speaks OpenAI's
/// format (One API's rule).
pub fn adaptor_for(channel_type: i64) -> &'static dyn Adaptor {
    match channel_type {
        3 => &azure::Azure,
        11 => &palm::Palm,
        14 => &anthropic::Anthropic,
        15 => &baidu::Baidu,
        18 => &xunfei::Xunfei,
        21 => &aiproxy::AiProxyLibrary,
        23 => &tencent::Tencent,
        24 => &gemini::Gemini,
        33 => &bedrock::Bedrock,
        34 => &coze::Coze,
        38 => &deepl::DeepL,
        42 => &vertex::Vertex,
        46 => &replicate::Replicate,
        _ => &openai::OpenAi,
    }
}

/// The adaptor for a channel type and the upstream model: as [`adaptor_for`], except that Zhipu's
/// `chatglm_*` models use its v3 API (other Zhipu models, v4, speak OpenAI's format).
pub fn adaptor_for_model(channel_type: i64, model: &str) -> &'static dyn Adaptor {
    match channel_type {
        16 if crate::adaptors::zhipu::is_v3(model) => &zhipu::ZhipuV3,
        _ => adaptor_for(channel_type),
    }
}

/// Relay state shared by all workers.
#[derive(Clone)]
pub struct RelayState {
    /// The routing table, swapped on rebuild.
    pub routing: Arc<ArcSwap<route::RoutingTable>>,
    /// Orders overlapping rebuilds of `routing` (see [`reload_routing`]).
    routing_reloads: Arc<ReloadOrder>,
    /// Token rows by key (short TTL).
    pub tokens: Arc<RowCache<String, Token>>,
    /// User rows by id (short TTL).
    pub users: Arc<RowCache<i64, User>>,
    /// The quota ledger and its writer.
    pub ledger: Ledger,
    /// Redis, when configured: quota balances, and cache events to and from the other nodes.
    pub redis: Option<Arc<QuotaStore>>,
    redis_target: Option<RedisTarget>,
    /// How long cached tokens and users live (here and in Redis).
    cache_ttl: Duration,
    /// The main runtime: cache events outlive the actix worker that raised them.
    rt: tokio::runtime::Handle,
    /// Success-rate monitor (`ENABLE_METRIC`).
    pub monitor: Arc<route::Monitor>,
    /// Ratios parsed from the options snapshot they were built for (held, so compared by
    /// identity without address reuse).
    ratios: Arc<ArcSwap<(Arc<Options>, Arc<Ratios>)>>,
}

impl RelayState {
    /// Builds the relay state: loads the routing table, connects Redis when configured and starts
    /// the ledger. Balances live in Redis with `REDIS_CONN_STRING`, in this process with
    /// `MEMORY_CACHE_ENABLED=true`, else in the database (docs/multi-node.md).
    pub async fn new(cfg: &Config, db: &Db, log_db: &Db) -> anyhow::Result<RelayState> {
        let table = route::load(db).await?;
        let separate_logs = cfg.log_sql_dsn.is_some().then(|| log_db.clone());
        let batch = cfg
            .batch_update_enabled
            .then_some(cfg.batch_update_interval);
        let redis_target = RedisTarget::from_config(cfg)?;
        let redis = match &redis_target {
            Some(t) => {
                let pool = RedisPool::connect(t)?;
                if let Err(e) = pool.ping().await {
                    // Start anyway: requests get a clear 503 until Redis answers.
                    tracing::error!(error = %e, "Redis does not answer yet");
                }
                Some(Arc::new(QuotaStore::new(pool, &cfg.redis_key_prefix)))
            }
            None => None,
        };
        let balances = match &redis {
            Some(q) => Balances::Redis(q.clone()),
            None if cfg.memory_cache_enabled => Balances::Memory(Default::default()),
            None => Balances::Database,
        };
        // Without Redis or the memory cache, One API reads tokens and users from the database on
        // every request; so do we (a capacity of 0 caches nothing).
        let capacity = if matches!(balances, Balances::Database) {
            0
        } else {
            100_000
        };
        // Invalidation is immediate on this node and, with Redis, on the others; the TTL is the
        // safety net when an event is missed.
        let ttl = cfg
            .sync_frequency
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        tracing::info!(balances = balances.name(), "quota ledger");
        crate::tokenizer::warm_up();
        Ok(RelayState {
            routing: Arc::new(ArcSwap::from_pointee(table)),
            routing_reloads: Arc::default(),
            tokens: Arc::new(RowCache::new(capacity, ttl)),
            users: Arc::new(RowCache::new(capacity, ttl)),
            ledger: Ledger::start(db.clone(), separate_logs, batch, balances),
            redis,
            redis_target,
            cache_ttl: ttl,
            rt: tokio::runtime::Handle::current(),
            monitor: Arc::new(route::Monitor::default()),
            ratios: Arc::new(ArcSwap::from_pointee((
                Arc::new(Options::default()),
                Arc::new(Ratios::from_options(&Options::default())),
            ))),
        })
    }

    /// The ratio tables for an options snapshot, parsed once per snapshot.
    pub fn ratios(&self, opts: &Arc<Options>) -> Arc<Ratios> {
        let cur = self.ratios.load();
        if Arc::ptr_eq(&cur.0, opts) {
            return cur.1.clone();
        }
        let r = Arc::new(Ratios::from_options(opts));
        self.ratios.store(Arc::new((opts.clone(), r.clone())));
        r
    }

    /// A token by key: this node's cache, then (with Redis) the copy the nodes share, then the
    /// database. Redis trouble falls back to the database: it is only a cache here.
    pub async fn load_token(&self, db: &Db, key: &str) -> Result<Option<Arc<Token>>, sqlx::Error> {
        if let Some(t) = crate::metrics::cached("token", self.tokens.get(key)) {
            return Ok(Some(t));
        }
        let id = shared_id(key);
        let ticket = self.tokens.ticket();
        let row = self
            .shared_load("t", &id, || crate::store::tokens::get_by_key(db, key))
            .await?;
        let row = row.map(Arc::new);
        if let Some(t) = &row {
            self.tokens.store(key.to_string(), t.clone(), ticket);
        }
        Ok(row)
    }

    /// A user by id, like [`RelayState::load_token`].
    pub async fn load_user(&self, db: &Db, id: i64) -> Result<Option<Arc<User>>, sqlx::Error> {
        if let Some(u) = crate::metrics::cached("user", self.users.get(&id)) {
            return Ok(Some(u));
        }
        let ticket = self.users.ticket();
        let row = self
            .shared_load("u", &id.to_string(), || {
                crate::store::users::get_by_id(db, id)
            })
            .await?;
        let row = row.map(Arc::new);
        if let Some(u) = &row {
            self.users.store(u.id, u.clone(), ticket);
        }
        Ok(row)
    }

    /// Reads a row from the shared Redis cache, or from the database and stores it there (unless
    /// it was invalidated meanwhile: a versioned put).
    async fn shared_load<T, F, Fut>(
        &self,
        kind: &str,
        id: &str,
        read: F,
    ) -> Result<Option<T>, sqlx::Error>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, sqlx::Error>>,
    {
        let Some(q) = &self.redis else {
            return read().await;
        };
        match q.cache_get(kind, id).await {
            Ok(Some(json)) => {
                if let Ok(row) = serde_json::from_str(&json) {
                    return Ok(Some(row));
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "shared cache unavailable, reading the database"),
        }
        let version = q.cache_version(kind, id).await.ok();
        let row = read().await?;
        if let (Some(r), Some(v)) = (&row, version)
            && let Ok(json) = serde_json::to_string(r)
            && let Err(e) = q
                .cache_put(kind, id, &json, &v, self.cache_ttl.as_secs())
                .await
        {
            tracing::warn!(error = %e, "cannot fill the shared cache");
        }
        Ok(row)
    }

    /// Forgets a cached token (call after editing or deleting it), on every node.
    pub fn invalidate_token(&self, key: &str) {
        self.tokens.invalidate(key);
        self.invalidate_shared("t", shared_id(key), format!("token:{key}"));
    }

    /// Forgets a cached user (call after editing, banning or deleting them), on every node.
    pub fn invalidate_user(&self, id: i64) {
        self.users.invalidate(&id);
        self.invalidate_shared("u", id.to_string(), format!("user:{id}"));
    }

    /// Drops the shared copy, then tells every node to drop its own.
    fn invalidate_shared(&self, kind: &'static str, id: String, event: String) {
        self.announce(Some((kind, id)), event);
    }

    /// Tells the other nodes (with Redis) that something changed.
    pub fn publish(&self, event: String) {
        self.announce(None, event);
    }

    /// With Redis: drops a shared cache entry (when given), then publishes `event`.
    fn announce(&self, drop: Option<(&'static str, String)>, event: String) {
        let Some(q) = self.redis.clone() else {
            return;
        };
        self.rt.spawn(async move {
            if let Some((kind, id)) = drop
                && let Err(e) = q.cache_drop(kind, &id).await
            {
                tracing::warn!(error = %e, "cannot drop a shared cache entry");
            }
            if let Err(e) = q.publish(&event).await {
                tracing::warn!(error = %e, "cannot publish a cache event; other nodes catch up at the next sync");
            }
        });
    }

    /// Waits until every queued settlement is written (shutdown, tests).
    pub async fn flush(&self) {
        self.ledger.flush().await;
    }
}

/// The shared-cache id of a token: a digest, so that keys never appear in Redis key names.
fn shared_id(key: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(key.as_bytes())[..16])
}

/// Rebuilds the routing table from the `channels` and `abilities` tables and swaps it in, here
/// and (with Redis) on every other node.
///
/// **Call this after every channel or ability change** (create, update, delete, status change,
/// balance-driven disable): requests route from this in-memory table only. It also runs every
/// `SYNC_FREQUENCY` seconds (see [`spawn_sync`]) and after the relay's own auto-disable.
/// Token and user edits should call [`RelayState::invalidate_token`] / `invalidate_user`.
pub async fn reload_routing(state: &AppState) -> Result<(), sqlx::Error> {
    reload_routing_here(state).await?;
    state.relay.publish("routing".into());
    Ok(())
}

async fn reload_routing_here(state: &AppState) -> Result<(), sqlx::Error> {
    let order = &state.relay.routing_reloads;
    let ticket = order.start();
    let table = route::load(&state.db).await?;
    order.finish(ticket, || state.relay.routing.store(Arc::new(table)));
    Ok(())
}

/// Orders reloads that overlap (the periodic sync, the sync when the event subscription starts,
/// other nodes' events, this node's own changes): a reload that started reading the database
/// before another must not replace the table that one stored. Without it, a start-up sync that
/// read `channels` just before a channel was added finished after the reload that added it, and
/// the new channel vanished until the next event (requests got "no available channel").
#[derive(Debug, Default)]
struct ReloadOrder {
    started: AtomicU64,
    stored: std::sync::Mutex<u64>,
}

impl ReloadOrder {
    /// A ticket, taken before reading the database.
    fn start(&self) -> u64 {
        self.started.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Runs `store` unless a reload that started later has stored already. True when it ran.
    fn finish(&self, ticket: u64, store: impl FnOnce()) -> bool {
        let mut stored = self.stored.lock().unwrap_or_else(|e| e.into_inner());
        if ticket <= *stored {
            return false;
        }
        *stored = ticket;
        store();
        true
    }
}

/// Reloads what every node keeps in memory: the routing table and the options.
async fn sync_all(state: &AppState) {
    if let Err(e) = reload_routing_here(state).await {
        tracing::warn!(error = %e, "routing table reload failed");
    }
    if let Err(e) = state.options.reload(&state.db).await {
        tracing::warn!(error = %e, "options reload failed");
    }
}

/// Applies one cache event from another node.
async fn apply_event(state: &AppState, event: &str) {
    match event.split_once(':') {
        Some(("token", key)) => state.relay.tokens.invalidate(key),
        Some(("user", id)) => {
            if let Ok(id) = id.parse::<i64>() {
                state.relay.users.invalidate(&id);
            }
        }
        _ => match event {
            "routing" => {
                if let Err(e) = reload_routing_here(state).await {
                    tracing::warn!(error = %e, "routing table reload failed");
                }
            }
            "options" => {
                if let Err(e) = state.options.reload(&state.db).await {
                    tracing::warn!(error = %e, "options reload failed");
                }
            }
            _ => tracing::debug!(event, "unknown cache event"),
        },
    }
}

/// Starts the periodic reload of routing and options (every `SYNC_FREQUENCY`, One API's safety
/// net) and, with Redis, the listener for other nodes' changes.
pub fn spawn_sync(state: AppState) {
    let every = state.cfg.sync_frequency.max(Duration::from_secs(1));
    let s = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            sync_all(&s).await;
        }
    });
    if let (Some(q), Some(target)) = (state.relay.redis.clone(), state.relay.redis_target.clone()) {
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let channel = q.events_channel();
            loop {
                match crate::cache::redis::subscribe(&target, &channel).await {
                    Ok(ps) => {
                        // Changes made before the subscription (while starting, or while
                        // disconnected) sent events this node never saw: start afresh.
                        state.relay.tokens.invalidate_all();
                        state.relay.users.invalidate_all();
                        sync_all(&state).await;
                        let mut messages = ps.into_on_message();
                        while let Some(msg) = messages.next().await {
                            if let Ok(event) = msg.get_payload::<String>() {
                                apply_event(&state, &event).await;
                            }
                        }
                        tracing::warn!("cache event subscription ended; reconnecting");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot subscribe to cache events");
                        if !matches!(target, RedisTarget::Standalone(_)) {
                            return;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// The `/v1` relay routes (mounted inside the `/v1` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/chat/completions",
        web::post().to(forward::chat_completions),
    )
    .route("/completions", web::post().to(forward::completions))
    .route("/messages", web::post().to(front::messages))
    .route(
        "/messages/count_tokens",
        web::post().to(front::count_tokens),
    )
    .route("/embeddings", web::post().to(forward::embeddings))
    .route(
        "/engines/{model}/embeddings",
        web::post().to(forward::embeddings),
    )
    .route("/moderations", web::post().to(forward::moderations))
    .route(
        "/images/generations",
        web::post().to(forward::images_generations),
    )
    .route("/audio/speech", web::post().to(forward::audio_speech))
    .route(
        "/audio/transcriptions",
        web::post().to(forward::audio_transcriptions),
    )
    .route(
        "/audio/translations",
        web::post().to(forward::audio_translations),
    )
    .route("/models", web::get().to(handlers::list_models))
    .route("/models/{model}", web::get().to(handlers::retrieve_model))
    .route(
        "/dashboard/billing/subscription",
        web::get().to(handlers::subscription),
    )
    .route("/dashboard/billing/usage", web::get().to(handlers::usage))
    .service(
        web::resource("/oneapi/proxy/{channel}/{tail:.*}")
            .app_data(web::PayloadConfig::new(32 * 1024 * 1024))
            .route(web::route().to(proxy::proxy)),
    )
    .route("/edits", web::post().to(handlers::not_implemented))
    .route("/images/edits", web::post().to(handlers::not_implemented))
    .route(
        "/images/variations",
        web::post().to(handlers::not_implemented),
    )
    .route("/files", web::route().to(handlers::not_implemented))
    .route(
        "/files/{tail:.*}",
        web::route().to(handlers::not_implemented),
    )
    .route(
        "/fine_tuning/{tail:.*}",
        web::route().to(handlers::not_implemented),
    )
    .route(
        "/fine-tunes{tail:.*}",
        web::route().to(handlers::not_implemented),
    )
    .route(
        "/models/{model}",
        web::delete().to(handlers::not_implemented),
    )
    .route(
        "/assistants{tail:.*}",
        web::route().to(handlers::not_implemented),
    )
    .route(
        "/threads{tail:.*}",
        web::route().to(handlers::not_implemented),
    );
}

/// Native front doors mounted at the root: Gemini's `/v1beta/models/{model}:{method}`.
pub fn configure_native(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1beta/models/{target}",
        web::post().to(front::gemini_generate),
    );
}

/// One API's `/dashboard/billing/*` routes (mounted at the root).
pub fn configure_dashboard(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/dashboard/{tail:.*}",
        web::method(actix_web::http::Method::OPTIONS).to(handlers::preflight),
    )
    .route(
        "/dashboard/billing/subscription",
        web::get().to(handlers::subscription),
    )
    .route("/dashboard/billing/usage", web::get().to(handlers::usage));
}

#[cfg(test)]
mod tests {
    use super::ReloadOrder;

    #[test]
    fn a_reload_that_started_earlier_never_replaces_a_later_one() {
        let order = ReloadOrder::default();
        let mut table = "start";
        let (early, late) = (order.start(), order.start());
        // The later reload finishes first; the earlier one's older read is dropped.
        assert!(order.finish(late, || table = "late"));
        assert!(!order.finish(early, || table = "early"));
        assert_eq!(table, "late");
        // In order, each one stores.
        let next = order.start();
        assert!(order.finish(next, || table = "next"));
        assert_eq!(table, "next");
    }
}
