//! The one place with I/O on the relay path: read the body, pick a channel, reserve quota, send
//! upstream, retry, stream, meter and settle. Providers that need more than one upstream call
//! per attempt (access tokens, a WebSocket, polling) do those steps in `super::exchange`.
//!
//! Invariants:
//! - The body is read once (bounded by `RELAY_MAX_BODY_MB`) and forwarded unchanged unless the
//!   model mapping, the channel's system prompt or `include_usage` require re-serialising it.
//! - Quota is reserved before the first upstream call and the [`Reservation`] is settled or
//!   refunded exactly once: refund on upstream failure, charge on success, and for a stream the
//!   [`RelayStream`]'s `Drop` bills what was delivered when the client goes away.
//! - Retries (connect errors, timeouts, 429, 5xx) go to channels not yet tried and happen only
//!   before any byte reached the client, never for a pinned channel.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};

use super::auth::TokenAuth;
use super::route::{self, Channel};
use super::sse::{SseDecoder, SseProcessor};
use super::types::{RelayMode, RequestMeta, Usage, multipart_field};
use super::upstream::{ByteStream, Error};
use super::{Ctx, StreamTranslator, adaptor_for_model, reload_routing};
use crate::adaptors::bedrock::EventStreamDecoder;
use crate::adaptors::image_fetch::{self, FetchPolicy};
use crate::adaptors::{anthropic_inbound, gemini_inbound};
use crate::billing::ledger::{Reservation, Settled};
use crate::billing::quota::{self, Price};
use crate::error::{AppError, V1Error, V1Result};
use crate::state::AppState;
use crate::store::ledger::{Movement, ReserveError};
use crate::store::logs::{self, Log};
use crate::tokenizer;

type Data = web::Data<AppState>;

/// `POST /v1/chat/completions`
pub async fn chat_completions(
    req: HttpRequest,
    body: web::Payload,
    auth: TokenAuth,
    state: Data,
) -> V1Result<HttpResponse> {
    relay(req, body, auth, state, RelayMode::ChatCompletions).await
}
/// `POST /v1/completions`
pub async fn completions(
    req: HttpRequest,
    body: web::Payload,
    auth: TokenAuth,
    state: Data,
) -> V1Result<HttpResponse> {
    relay(req, body, auth, state, RelayMode::Completions).await
}
/// `POST /v1/embeddings`, `/v1/engines/{model}/embeddings`
pub async fn embeddings(
    req: HttpRequest,
    body: web::Payload,
    auth: TokenAuth,
    state: Data,
) -> V1Result<HttpResponse> {
    relay(req, body, auth, state, RelayMode::Embeddings).await
}
/// `POST /v1/moderations`
pub async fn moderations(
    req: HttpRequest,
    body: web::Payload,
    auth: TokenAuth,
    state: Data,
) -> V1Result<HttpResponse> {
    relay(req, body, auth, state, RelayMode::Moderations).await
}
/// `POST /v1/images/generations`
pub async fn images_generations(
    req: HttpRequest,
    body: web::Payload,
    auth: TokenAuth,
    state: Data,
) -> V1Result<HttpResponse> {
    relay(req, body, auth, state, RelayMode::ImagesGenerations).await
}
/// `POST /v1/audio/speech`
pub async fn audio_speech(
    req: HttpRequest,
    body: web::Payload,
    auth: TokenAuth,
    state: Data,
) -> V1Result<HttpResponse> {
    relay(req, body, auth, state, RelayMode::AudioSpeech).await
}
/// `POST /v1/audio/transcriptions`
pub async fn audio_transcriptions(
    req: HttpRequest,
    body: web::Payload,
    auth: TokenAuth,
    state: Data,
) -> V1Result<HttpResponse> {
    relay(req, body, auth, state, RelayMode::AudioTranscription).await
}
/// `POST /v1/audio/translations`
pub async fn audio_translations(
    req: HttpRequest,
    body: web::Payload,
    auth: TokenAuth,
    state: Data,
) -> V1Result<HttpResponse> {
    relay(req, body, auth, state, RelayMode::AudioTranslation).await
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, AppError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => AppError::PayloadTooLarge,
            other => AppError::bad_request(format!("invalid request body: {other}")),
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// How a request is priced.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Tokens: prompt counted locally, completion from usage or counted.
    Text,
    /// A price known up front (images, speech), charged on success.
    Fixed(i64),
    /// Whisper: the transcribed text's tokens times the ratio.
    Transcription,
}

/// Everything needed to bill one request once it is done.
struct Billing {
    reservation: Reservation,
    plan: Plan,
    price: Price,
    prompt_tokens: i64,
    model: String,
    channel_id: i64,
    is_stream: bool,
    started: Instant,
    request_id: String,
    user_id: i64,
    username: String,
    token_name: String,
    token_id: i64,
    system_prompt_reset: bool,
    log_enabled: bool,
}

impl Billing {
    /// Prompt and completion tokens of a text answer: the upstream's usage (repaired as One
    /// API does), else the local prompt count and the completion text counted.
    fn counts(&self, usage: Option<Usage>, completion_text: &str) -> (i64, i64) {
        match usage {
            Some(u) => {
                let u = u.repaired(self.prompt_tokens);
                (u.prompt_tokens, u.completion_tokens)
            }
            None => (
                self.prompt_tokens,
                tokenizer::count_text(&self.model, completion_text),
            ),
        }
    }

    /// Settles with the usage delivered (also from `Drop`, so no awaits here except the
    /// writer queue).
    fn settle(self, usage: Option<Usage>, completion_text: &str) -> Settled {
        let (prompt, completion, charged) = match self.plan {
            Plan::Text => {
                let (p, c) = self.counts(usage, completion_text);
                (p, c, quota::text_quota(&self.price, p, c))
            }
            Plan::Fixed(q) => (0, 0, q),
            Plan::Transcription => {
                let t = tokenizer::count_text("whisper-1", completion_text);
                let q = quota::text_quota(
                    &Price {
                        completion_ratio: 1.0,
                        ..self.price
                    },
                    t,
                    0,
                );
                (q, 0, q)
            }
        };
        crate::metrics::settled(&self.model, prompt, completion, charged);
        // `self` is consumed: its strings move into the log rather than being copied.
        let log = self.log_enabled.then(|| Log {
            user_id: self.user_id,
            created_at: crate::store::now(),
            r#type: logs::TYPE_CONSUME,
            content: self.price.describe(),
            username: self.username,
            token_name: self.token_name,
            token_id: self.token_id,
            model_name: self.model,
            quota: charged,
            prompt_tokens: prompt,
            completion_tokens: completion,
            channel_id: self.channel_id,
            request_id: self.request_id,
            elapsed_time: self.started.elapsed().as_millis() as i64,
            is_stream: self.is_stream,
            system_prompt_reset: self.system_prompt_reset,
            ..Default::default()
        });
        self.reservation.settle(self.channel_id, charged, log)
    }
}

/// One upstream failure, kept to decide on retry and to answer the client.
struct Failure {
    error: AppError,
    retryable: bool,
    /// How the call failed below HTTP (`timeout`, `connect`), for the error metric.
    transport: Option<&'static str>,
}

fn upstream_failure(status: u16, err: Value) -> Failure {
    Failure {
        retryable: status == 429 || status >= 500,
        error: AppError::Upstream { status, body: err },
        transport: None,
    }
}

fn transport_failure(msg: String, code: &str) -> Failure {
    Failure {
        retryable: true,
        error: AppError::Upstream {
            status: 500,
            body: json!({"message": msg, "type": "one_api_error", "param": "", "code": code}),
        },
        transport: None,
    }
}

/// An upstream call's error while `what` (the message keeps no URL, which may carry a key).
fn upstream_error(e: &Error, what: &str, code: &str) -> Failure {
    Failure {
        transport: Some(if e.is_timeout() { "timeout" } else { "connect" }),
        ..transport_failure(format!("{what}: {e}"), code)
    }
}

/// `v` as JSON bytes, written into a buffer of `size_hint` bytes (about the client's body):
/// `to_vec` doubles its buffer as it goes, so a 16 KB body sat in 32 KB for as long as the
/// upstream took to answer (heaptrack, 16 KB prompts: half of what Tollgate held over the proxy).
pub(crate) fn json_body(v: &Value, size_hint: usize) -> Bytes {
    let mut out = Vec::with_capacity(size_hint);
    match serde_json::to_writer(&mut out, v) {
        Ok(()) => Bytes::from(out),
        Err(_) => Bytes::new(),
    }
}

/// The OpenAI body for a channel when something must change (model mapping, the channel's
/// system prompt, `include_usage`): `Some((json, system_prompt_reset))`, else `None`.
fn edited_json(
    meta: &RequestMeta,
    json: Option<&Value>,
    channel: &Channel,
    mode: RelayMode,
    force_usage: bool,
) -> Option<(Value, bool)> {
    let json = json?;
    let mapped = channel.map_model(&meta.model);
    // A model named only in the path (`/v1/engines/{model}/embeddings`) goes into the body.
    let remap = mapped != meta.model || json.get("model").is_none();
    let system = mode == RelayMode::ChatCompletions && channel.system_prompt.is_some();
    let usage = meta.stream && force_usage && !meta.include_usage && mode.is_streamable();
    if !remap && !system && !usage {
        return None;
    }
    let mut v = json.clone();
    if remap {
        v["model"] = Value::String(mapped.to_string());
    }
    let mut reset = false;
    if system
        && let Some(prompt) = &channel.system_prompt
        && let Some(msgs) = v.get_mut("messages").and_then(Value::as_array_mut)
    {
        let sys = json!({"role": "system", "content": prompt});
        if msgs
            .first()
            .and_then(|m| m.get("role"))
            .and_then(Value::as_str)
            == Some("system")
        {
            msgs[0] = sys;
        } else {
            msgs.insert(0, sys);
        }
        reset = true;
    }
    if usage {
        v["stream_options"] = json!({"include_usage": true});
    }
    Some((v, reset))
}

/// The request body for an OpenAI-format channel: the original bytes unless something must
/// change.
fn body_for(
    meta: &RequestMeta,
    json: Option<&Value>,
    raw: &Bytes,
    channel: &Channel,
    mode: RelayMode,
    force_usage: bool,
    size_hint: usize,
) -> (Bytes, bool) {
    match edited_json(meta, json, channel, mode, force_usage) {
        None => (raw.clone(), false),
        Some((v, reset)) => (json_body(&v, size_hint), reset),
    }
}

/// The request body for a channel whose upstream has its own format: the OpenAI body (edited as
/// for any channel), its `image_url`s fetched through the guarded fetcher when the provider needs
/// them inline, then translated by the adaptor. `Err` is the client's fault (400).
async fn translated_body(
    state: &AppState,
    meta: &RequestMeta,
    channel: &Channel,
    mode: RelayMode,
    adaptor: &dyn super::Adaptor,
    ctx: &Ctx<'_>,
    size_hint: usize,
) -> Result<(Bytes, bool), AppError> {
    let (mut v, reset) = match edited_json(meta, ctx.request, channel, mode, false) {
        Some(e) => e,
        None => (
            ctx.request.cloned().ok_or_else(|| {
                AppError::bad_request("this endpoint is not supported by the channel")
            })?,
            false,
        ),
    };
    if adaptor.inline_images() && mode == RelayMode::ChatCompletions {
        let policy = FetchPolicy {
            timeout: state.cfg.user_content_request_timeout,
            proxy: state.cfg.user_content_request_proxy.clone(),
            ..Default::default()
        };
        image_fetch::inline_images(&mut v, &policy)
            .await
            .map_err(|e| AppError::bad_request(format!("image_url: {e}")))?;
    }
    let out = adaptor
        .convert_request(ctx, v)
        .map_err(AppError::bad_request)?;
    Ok((json_body(&out, size_hint), reset))
}

impl RelayMode {
    fn is_streamable(self) -> bool {
        matches!(self, RelayMode::ChatCompletions | RelayMode::Completions)
    }
}

/// Parses the request body and finds the model (also for a body a front door built).
pub(crate) fn parse_request(
    req: &HttpRequest,
    mode: RelayMode,
    raw: &Bytes,
) -> Result<RequestMeta, AppError> {
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut meta = if mode.is_multipart() || ct.starts_with("multipart/form-data") {
        RequestMeta {
            model: multipart_field(raw, ct, "model").unwrap_or_default(),
            ..Default::default()
        }
    } else {
        let v: Value = serde_json::from_slice(raw)
            .map_err(|e| AppError::bad_request(format!("invalid request body: {e}")))?;
        if !v.is_object() {
            return Err(AppError::bad_request(
                "invalid request body: expected a JSON object",
            ));
        }
        RequestMeta::from_json(v)
    };
    if meta.model.is_empty() {
        if let Some(m) = req.match_info().get("model") {
            meta.model = m.to_string();
        } else if let Some(m) = mode.default_model() {
            meta.model = m.to_string();
        }
    }
    if meta.model.is_empty() {
        return Err(AppError::bad_request("model is required"));
    }
    if let Some(m) = meta.max_tokens
        && !(0..=i64::from(i32::MAX / 2)).contains(&m)
    {
        return Err(AppError::bad_request("max_tokens is invalid"));
    }
    if let Some(json) = &meta.json {
        let has = |k: &str| json.get(k).is_some_and(|v| !v.is_null());
        match mode {
            RelayMode::ChatCompletions
                if json
                    .get("messages")
                    .and_then(Value::as_array)
                    .is_none_or(|m| m.is_empty()) =>
            {
                return Err(AppError::bad_request("field messages is required"));
            }
            RelayMode::Completions if !has("prompt") => {
                return Err(AppError::bad_request("field prompt is required"));
            }
            RelayMode::Moderations | RelayMode::Embeddings if !has("input") => {
                return Err(AppError::bad_request("field input is required"));
            }
            _ => {}
        }
    }
    if !mode.is_streamable() {
        meta.stream = false;
    }
    Ok(meta)
}

/// Prompt tokens counted locally (One API's rules per mode).
async fn prompt_tokens(mode: RelayMode, meta: &RequestMeta, size: usize) -> i64 {
    let Some(json) = &meta.json else { return 0 };
    match mode {
        RelayMode::ChatCompletions => {
            let msgs = json.get("messages").and_then(Value::as_array);
            let msgs = msgs.map_or(&[][..], Vec::as_slice);
            // Small prompts are counted in place; only large ones are copied to the blocking pool.
            if size < tokenizer::BLOCKING_THRESHOLD {
                tokenizer::count_messages(&meta.model, msgs)
            } else {
                tokenizer::count_messages_async(meta.model.clone(), msgs.to_vec(), size).await
            }
        }
        RelayMode::Completions => json
            .get("prompt")
            .map(|p| tokenizer::count_input(&meta.model, p))
            .unwrap_or(0),
        RelayMode::Moderations | RelayMode::Embeddings => json
            .get("input")
            .map(|p| tokenizer::count_input(&meta.model, p))
            .unwrap_or(0),
        _ => 0,
    }
}

/// Validation and the up-front price of image and speech requests.
fn plan_for(mode: RelayMode, meta: &RequestMeta, ratio: f64) -> Result<Plan, AppError> {
    let json = meta.json.as_ref();
    let s = |k: &str| {
        json.and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match mode {
        RelayMode::ImagesGenerations => {
            if s("prompt").is_empty() {
                return Err(AppError::bad_request("prompt is required"));
            }
            let size = Some(s("size"))
                .filter(|x| !x.is_empty())
                .unwrap_or_else(|| "1024x1024".into());
            let n = json
                .and_then(|v| v.get("n"))
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let max_n = if meta.model == "dall-e-3" { 1 } else { 10 };
            if !(1..=max_n).contains(&n) {
                return Err(AppError::bad_request("n is not within range"));
            }
            let size_ratio = quota::image_size_ratio(&meta.model, &size, &s("quality"))
                .ok_or_else(|| AppError::bad_request("size is not supported"))?;
            Ok(Plan::Fixed(quota::image_quota(ratio, size_ratio, n)))
        }
        RelayMode::AudioSpeech => {
            let input = s("input");
            if input.chars().count() > 4096 {
                return Err(AppError::bad_request(
                    "text is too long (max 4096 characters)",
                ));
            }
            Ok(Plan::Fixed(quota::speech_quota(ratio, input.len())))
        }
        RelayMode::AudioTranscription | RelayMode::AudioTranslation => Ok(Plan::Transcription),
        _ => Ok(Plan::Text),
    }
}

fn pick_channel(
    state: &AppState,
    auth: &TokenAuth,
    model: &str,
    tried: &HashSet<i64>,
) -> Result<Arc<Channel>, AppError> {
    let table = state.relay.routing.load();
    if let Some(id) = auth.pinned {
        let c = table
            .channels
            .get(&id)
            .ok_or_else(|| AppError::bad_request("无效的渠道 Id"))?;
        if c.status != crate::store::channels::STATUS_ENABLED {
            return Err(AppError::forbidden("该渠道已被禁用"));
        }
        return Ok(c.clone());
    }
    table
        .select(&auth.user.group, model, tried)
        .ok_or_else(|| AppError::NoAvailableChannel {
            group: auth.user.group.clone(),
            model: model.to_string(),
        })
}

/// The format the client speaks (the answer is given in it).
pub(crate) enum Front {
    /// OpenAI's `/v1/...`.
    OpenAi,
    /// Anthropic's `POST /v1/messages`; `native` is the client's request, passed through
    /// untouched (but for the model mapping) to Anthropic channels.
    Anthropic { native: Value },
    /// Gemini's `POST /v1beta/models/{model}:generateContent` (or `:streamGenerateContent`);
    /// `native` is passed through untouched to Gemini channels (the model goes in the URL).
    Gemini { native: Value },
    /// Gemini's `:embedContent` (`batch` false) or `:batchEmbedContents`; `native` is passed
    /// through to Gemini channels (the mapped model in the URL and in each request).
    GeminiEmbed { native: Value, batch: bool },
}

impl Front {
    /// The client's own request when this channel type speaks the client's format.
    fn native_for(&self, channel_type: i64) -> Option<&Value> {
        match self {
            Front::Anthropic { native } if channel_type == 14 => Some(native),
            Front::Gemini { native } if channel_type == 24 => Some(native),
            Front::GeminiEmbed { native, .. } if channel_type == 24 => Some(native),
            _ => None,
        }
    }
}

/// The client's native request for a channel of the same format: the model mapped (Anthropic;
/// Gemini's is in the URL), the channel's system prompt forced.
fn native_body(
    front: &Front,
    native: &Value,
    channel: &Channel,
    model: &str,
    size_hint: usize,
) -> (Bytes, bool) {
    let mut v = native.clone();
    if let Front::GeminiEmbed { batch, .. } = front {
        if *batch {
            for r in v
                .get_mut("requests")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                r["model"] = Value::String(format!("models/{model}"));
            }
        }
        return (json_body(&v, size_hint), false);
    }
    let gemini = matches!(front, Front::Gemini { .. });
    if !gemini {
        v["model"] = Value::String(model.to_string());
    }
    let reset = match &channel.system_prompt {
        Some(p) if gemini => {
            v["systemInstruction"] = json!({"parts": [{"text": p}]});
            true
        }
        Some(p) => {
            v["system"] = Value::String(p.clone());
            true
        }
        None => false,
    };
    (json_body(&v, size_hint), reset)
}

async fn relay(
    req: HttpRequest,
    payload: web::Payload,
    auth: TokenAuth,
    state: Data,
    mode: RelayMode,
) -> V1Result<HttpResponse> {
    let state: &AppState = state.get_ref();
    let raw = read_body(payload, state.cfg.relay_max_body).await?;
    let meta = parse_request(&req, mode, &raw)?;
    let path = if req.match_info().get("model").is_some() {
        "/v1/embeddings".to_string()
    } else {
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(req.path())
            .to_string()
    };
    run(&req, auth, state, mode, raw, meta, path, Front::OpenAi).await
}

/// Reads a front door's body (bounded like `/v1`).
pub(crate) async fn read_front_body(
    state: &AppState,
    payload: web::Payload,
) -> Result<Bytes, AppError> {
    read_body(payload, state.cfg.relay_max_body).await
}

/// Validates an OpenAI chat body built by a front door (same rules as `/v1/chat/completions`).
pub(crate) fn parse_chat(req: &HttpRequest, body: &Bytes) -> Result<RequestMeta, AppError> {
    parse_request(req, RelayMode::ChatCompletions, body)
}

/// The HTTP call of one attempt: `up`'s URL and headers, the adaptor's signature over the final
/// URL and body (added to `up.headers`), the body. The relay and the channel test both send this.
pub(crate) fn upstream_call(
    state: &AppState,
    adaptor: &dyn super::Adaptor,
    ctx: &Ctx<'_>,
    up: &mut super::UpstreamRequest,
    body: &Bytes,
    content_type: &str,
) -> reqwest::RequestBuilder {
    up.headers.extend(adaptor.sign(ctx, &up.url, body));
    // Only builds the request: it is sent with `AppState::upstream` (`Upstream::send`).
    let client = &state.http;
    let mut rb = match parsed_url(&up.url) {
        Some(url) => client.post(url),
        None => client.post(&up.url),
    }
    .header(reqwest::header::CONTENT_TYPE, content_type)
    .body(body.clone());
    for (k, v) in &up.headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    rb
}

/// `url` parsed, from a per-thread memo: a channel sends to a handful of URLs, and parsing one
/// (host normalisation included) was a per-request cost in the profile. `None` when it does not
/// parse (reqwest reports that).
fn parsed_url(url: &str) -> Option<reqwest::Url> {
    const MAX: usize = 256;
    thread_local! {
        static URLS: std::cell::RefCell<HashMap<String, reqwest::Url>> = Default::default();
    }
    URLS.with_borrow_mut(|memo| {
        if let Some(u) = memo.get(url) {
            return Some(u.clone());
        }
        let u = reqwest::Url::parse(url).ok()?;
        if memo.len() >= MAX {
            memo.clear();
        }
        memo.insert(url.to_string(), u.clone());
        Some(u)
    })
}

/// The relay proper, for any front door: pick, reserve, send (retrying), answer, settle.
/// `raw`/`meta` are the OpenAI-format request; `path` its `/v1/...` path.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    req: &HttpRequest,
    auth: TokenAuth,
    state: &AppState,
    mode: RelayMode,
    mut raw: Bytes,
    mut meta: RequestMeta,
    path: String,
    front: Front,
) -> V1Result<HttpResponse> {
    let started = Instant::now();
    // The request's span (telemetry::request_context) declares these: a span of the relay's own
    // per request cost 1.5% of a relayed request's instructions.
    let span = tracing::Span::current();
    span.record("token_id", auth.token.id);
    span.record("model", meta.model.as_str());
    crate::metrics::relay_route(req, state, &meta.model, None);
    auth.check_model(&meta.model)?;
    let opts = state.options.load();
    let ratios = state.relay.ratios(&opts);
    let mut tried = HashSet::new();
    let mut channel = pick_channel(state, &auth, &meta.model, &tried)?;
    let price_for = |c: &Channel| {
        let m = c.map_model(&meta.model);
        Price {
            model_ratio: ratios.model_ratio(m, c.r#type),
            completion_ratio: ratios.completion_ratio(m, c.r#type),
            group_ratio: ratios.group_ratio(&auth.user.group),
        }
    };
    let mut price = price_for(&channel);
    let plan = plan_for(mode, &meta, price.ratio())?;
    let prompt = prompt_tokens(mode, &meta, raw.len()).await;
    let pre_consumed = opts.i64("PreConsumedQuota");
    let estimate = match plan {
        Plan::Text => quota::pre_consume_estimate(&price, prompt, meta.max_tokens, pre_consumed),
        Plan::Fixed(q) => q,
        Plan::Transcription => quota::pre_consume_estimate(&price, 0, None, pre_consumed),
    };
    let base = Movement {
        user_id: auth.user.id,
        token_id: auth.token.id,
        unlimited: auth.token.unlimited_quota,
        ..Default::default()
    };
    let reservation = match state.relay.ledger.reserve(base, estimate).await? {
        Ok(r) => r,
        Err(ReserveError::User) => {
            return Err(AppError::InsufficientQuota {
                message: "user quota is not enough".into(),
                code: "insufficient_user_quota",
            }
            .into());
        }
        Err(ReserveError::Token) => {
            return Err(AppError::InsufficientQuota {
                message: "令牌额度不足".into(),
                code: "pre_consume_token_quota_failed",
            }
            .into());
        }
    };
    let request_id = crate::telemetry::current_request_id()
        .map(|r| r.0.to_string())
        .unwrap_or_default();
    let retries = if auth.pinned.is_some() {
        0
    } else {
        opts.i64("RetryTimes").max(0)
    };
    let auto_disable = opts.bool("AutomaticDisableChannelEnabled");
    let log_enabled = opts.bool("LogConsumeEnabled");
    // Names built once: parsing a custom name from a `&str` allocates it on every lookup.
    const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
    const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");
    const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
    let header_text = |name: HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let content_type =
        header_text(header::CONTENT_TYPE).unwrap_or_else(|| "application/json".into());
    let accept = header_text(header::ACCEPT);
    let anthropic_version = header_text(ANTHROPIC_VERSION);
    let anthropic_beta = header_text(ANTHROPIC_BETA);
    // The parsed body is not held while the upstream answers when the channel needs only the
    // bytes sent (an OpenAI channel): a long conversation's `Value` is as large as its text, and
    // the wait for a first token can be seconds. A retry parses `raw` again.
    let has_json = meta.json.is_some();
    let raw_len = raw.len();
    let mut parsed = meta.json.take();
    let mut attempt = 0;
    loop {
        if parsed.is_none() && has_json {
            parsed = serde_json::from_slice(&raw).ok();
        }
        span.record("channel_id", channel.id);
        crate::metrics::relay_route(req, state, channel.map_model(&meta.model), Some(channel.id));
        let adaptor = adaptor_for_model(channel.r#type, channel.map_model(&meta.model));
        let force_usage =
            state.cfg.enforce_include_usage || adaptor.supports_include_usage(channel.r#type);
        let mapped = channel.map_model(&meta.model).to_string();
        let native = front.native_for(channel.r#type);
        let translated = native.is_some() || !adaptor.is_openai();
        // Adaptors that translate (and the exchanges) read the request again after the answer;
        // they keep it in `ctx`. For the others it goes before the wait (`json`, dropped below).
        let keep = translated || super::exchange::applies(channel.r#type);
        let (kept, json) = if keep {
            (parsed.take(), None)
        } else {
            (None, parsed.take())
        };
        let ctx = Ctx {
            channel_type: channel.r#type,
            base_url: &channel.base_url,
            key: &channel.key,
            api_version: channel.api_version.as_deref(),
            user_id: channel.user_id.as_deref(),
            path: &path,
            mode,
            model: &mapped,
            stream: meta.stream,
            prompt_tokens: prompt,
            gemini_version: &state.cfg.gemini_version,
            gemini_safety: &state.cfg.gemini_safety_setting,
            anthropic_version: anthropic_version.as_deref(),
            anthropic_beta: anthropic_beta.as_deref(),
            request: kept.as_ref(),
            config: Some(&channel.settings).filter(|v| !v.is_null()),
        };
        // The body sent is about the client's, plus the channel's system prompt.
        let hint = raw_len + channel.system_prompt.as_ref().map_or(0, String::len) + 64;
        let prepared = match native {
            Some(n) => Ok(native_body(&front, n, &channel, &mapped, hint)),
            None if adaptor.is_openai() => Ok(body_for(
                &meta,
                json.as_ref().or(kept.as_ref()),
                &raw,
                &channel,
                mode,
                force_usage,
                hint,
            )),
            None => translated_body(state, &meta, &channel, mode, adaptor, &ctx, hint).await,
        };
        drop(json);
        let (body, system_prompt_reset) = match prepared {
            Ok(b) => b,
            Err(e) => {
                reservation.refund();
                return Err(V1Error(e));
            }
        };
        let mut up = adaptor.build_request(&ctx);
        if native.is_some() && matches!(front, Front::GeminiEmbed { batch: false, .. }) {
            up.url = up.url.replace(":batchEmbedContents", ":embedContent");
        }
        let body_type = if translated {
            "application/json"
        } else {
            content_type.as_str()
        };
        let mut rb = upstream_call(state, adaptor, &ctx, &mut up, &body, body_type);
        match (&accept, meta.stream) {
            (Some(a), _) if !translated => rb = rb.header(reqwest::header::ACCEPT, a.as_str()),
            (_, true) if adaptor.event_stream() => {}
            (_, true) => rb = rb.header(reqwest::header::ACCEPT, "text/event-stream"),
            _ => {}
        }
        if !meta.stream
            && let Some(t) = state.cfg.relay_timeout
        {
            rb = rb.timeout(t);
        }
        // While the upstream answers, the request's bytes live only in the request being sent
        // (freed once written), and in `raw` while a retry may still need it.
        if attempt >= retries {
            raw = Bytes::new();
        }
        // Providers with their own steps (access tokens, WebSocket, polling): `exchange`. Its
        // future is boxed: inline (a WebSocket handshake among its states) it made every relay
        // request's future, held per open request, 12 KB larger.
        let outcome = if super::exchange::applies(channel.r#type) {
            let next = Box::pin(super::exchange::prepare(state, &ctx, &up, &body, rb)).await;
            drop(body);
            match next {
                super::exchange::Next::Send(rb) => send(state, *rb, &meta, adaptor, mode).await,
                super::exchange::Next::Done(r) => exchanged(r),
            }
        } else {
            drop(body);
            send(state, rb, &meta, adaptor, mode).await
        };
        let billing = |reservation, is_stream| Billing {
            reservation,
            plan,
            price,
            prompt_tokens: prompt,
            model: mapped.clone(),
            channel_id: channel.id,
            is_stream,
            started,
            request_id: request_id.clone(),
            user_id: auth.user.id,
            username: auth.user.username.clone(),
            token_name: auth.token.name.clone(),
            token_id: auth.token.id,
            system_prompt_reset,
            log_enabled,
        };
        match outcome {
            Ok(Sent::Full {
                status,
                content_type,
                body,
            }) => {
                record_success(state, channel.id);
                let mut client_body = body.clone();
                let mut client_type = content_type;
                let mut openai: Option<Value> = None;
                let text_mode = !matches!(
                    mode,
                    RelayMode::AudioTranscription
                        | RelayMode::AudioTranslation
                        | RelayMode::AudioSpeech
                        | RelayMode::ImagesGenerations
                );
                // An OpenAI answer to an OpenAI client is billed from its usage alone; the
                // whole body is parsed only when usage is missing (to count the text).
                let passed = text_mode && !translated;
                let passed_usage = (passed && matches!(front, Front::OpenAi))
                    .then(|| super::openai::usage_of(&body))
                    .flatten();
                if passed && passed_usage.is_none() {
                    openai = serde_json::from_slice::<Value>(&body).ok();
                } else if text_mode && translated {
                    match adaptor.convert_response(&ctx, &body) {
                        Ok(v) => {
                            if native.is_none() {
                                client_body =
                                    Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
                                client_type = "application/json".into();
                            }
                            openai = Some(v);
                        }
                        Err(e) => {
                            reservation.refund();
                            return Err(V1Error(AppError::Upstream {
                                status: 502,
                                body: e,
                            }));
                        }
                    }
                }
                let (usage, text) = match (&openai, mode) {
                    (_, RelayMode::AudioTranscription | RelayMode::AudioTranslation) => {
                        (None, transcription_text(&body))
                    }
                    _ if passed_usage.is_some() => (passed_usage, String::new()),
                    // The text is only counted when the upstream reports no usage.
                    (Some(v), _) => match adaptor.parse_usage(v) {
                        Some(u) => (Some(u), String::new()),
                        None => (None, adaptor.completion_text(v)),
                    },
                    (None, _) => (None, String::new()),
                };
                let billing = billing(reservation, false);
                let (p, c) = billing.counts(usage, &text);
                // Recorded before the client sees the answer (see `Settled`).
                billing.settle(usage, &text).wait().await;
                if native.is_none() && !matches!(front, Front::OpenAi) {
                    let v = openai.unwrap_or_default();
                    let u = crate::adaptors::Usage {
                        prompt_tokens: p,
                        completion_tokens: c,
                        cache_read_tokens: v
                            .pointer("/usage/prompt_tokens_details/cached_tokens")
                            .and_then(Value::as_i64)
                            .unwrap_or(0),
                        cache_creation_tokens: 0,
                    };
                    let out = match front {
                        Front::Gemini { .. } => {
                            gemini_inbound::to_generate_response(&v, &meta.model, &u)
                        }
                        Front::GeminiEmbed { batch, .. } => {
                            gemini_inbound::to_embed_response(&v, batch)
                        }
                        _ => {
                            let mut out = anthropic_inbound::to_messages_response(&v, &u);
                            out["model"] = Value::String(meta.model.clone());
                            out
                        }
                    };
                    client_body = Bytes::from(serde_json::to_vec(&out).unwrap_or_default());
                    client_type = "application/json".into();
                }
                let mut res = HttpResponse::build(
                    actix_web::http::StatusCode::from_u16(status)
                        .unwrap_or(actix_web::http::StatusCode::OK),
                );
                res.content_type(client_type);
                return Ok(res.body(client_body));
            }
            Ok(Sent::Stream { first, rest }) => {
                record_success(state, channel.id);
                let decoder = if translated {
                    adaptor.stream_translator(&ctx).map(|t| {
                        let d = if adaptor.event_stream() {
                            Decoder::Aws(EventStreamDecoder::default())
                        } else if adaptor.whole_answer_stream() {
                            Decoder::Whole(Vec::new())
                        } else {
                            Decoder::Sse(SseDecoder::default())
                        };
                        (d, t)
                    })
                } else {
                    None
                };
                let out = match (&front, native) {
                    (Front::OpenAi, _) => Out::OpenAi,
                    (_, Some(_)) => Out::Raw,
                    (Front::Anthropic { .. }, None) => {
                        Out::Anthropic(anthropic_inbound::StreamToAnthropic::new(&meta.model))
                    }
                    (Front::Gemini { .. } | Front::GeminiEmbed { .. }, None) => {
                        Out::Gemini(gemini_inbound::StreamToGemini::new(&meta.model))
                    }
                };
                let stream = RelayStream {
                    upstream: rest,
                    first: Some(first),
                    decoder,
                    proc: SseProcessor::new(!meta.include_usage),
                    out,
                    billing: Some(billing(reservation, true)),
                    ended: false,
                    gathered: BytesMut::new(),
                    yielding: None,
                    sent: false,
                };
                return Ok(HttpResponse::Ok()
                    .content_type("text/event-stream")
                    .insert_header((header::CACHE_CONTROL, "no-cache"))
                    .insert_header((X_ACCEL_BUFFERING, "no"))
                    .streaming(stream));
            }
            Err(failure) => {
                tracing::warn!(channel_id = channel.id, attempt, error = %failure.error, "upstream call failed");
                crate::metrics::upstream_error(channel.id, &failure.error, failure.transport);
                handle_failure(state, &channel, &failure, auto_disable).await;
                tried.insert(channel.id);
                if failure.retryable && attempt < retries {
                    attempt += 1;
                    if let Ok(c) = pick_channel(state, &auth, &meta.model, &tried) {
                        channel = c;
                        price = price_for(&channel);
                        continue;
                    }
                }
                reservation.refund();
                let mut error = failure.error;
                if let AppError::Upstream { status: 429, body } = &mut error {
                    body["message"] = json!("当前分组上游负载已饱和，请稍后再试");
                }
                return Err(V1Error(error));
            }
        }
    }
}

fn transcription_text(body: &Bytes) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => v
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

fn record_success(state: &AppState, channel_id: i64) {
    if state.cfg.enable_metric {
        state.relay.monitor.record(
            channel_id,
            true,
            state.cfg.metric_queue_size,
            state.cfg.metric_success_rate_threshold,
        );
    }
}

/// Auto-disable on fatal upstream errors (option on), or by success rate (`ENABLE_METRIC`).
async fn handle_failure(
    state: &AppState,
    channel: &Channel,
    failure: &Failure,
    auto_disable: bool,
) {
    let (status, body) = match &failure.error {
        AppError::Upstream { status, body } => (*status, body.clone()),
        _ => (0, Value::Null),
    };
    let fatal = auto_disable && status != 0 && route::is_fatal_upstream_error(status, &body);
    let by_metric = state.cfg.enable_metric
        && state.relay.monitor.record(
            channel.id,
            false,
            state.cfg.metric_queue_size,
            state.cfg.metric_success_rate_threshold,
        );
    if fatal || by_metric {
        let reason = body
            .get("message")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string();
        tracing::warn!(
            channel_id = channel.id,
            channel = %channel.name,
            status,
            reason = %reason,
            by_metric,
            "disabling channel automatically"
        );
        if let Err(e) = crate::store::ledger::auto_disable_channel(&state.db, channel.id).await {
            tracing::error!(error = %e, "could not disable channel");
        } else if let Err(e) = reload_routing(state).await {
            tracing::error!(error = %e, "could not reload routing");
        }
    }
}

enum Sent {
    Full {
        status: u16,
        content_type: String,
        body: Bytes,
    },
    Stream {
        first: Bytes,
        rest: ByteStream,
    },
}

/// Sends one upstream request; a 2xx answer comes back as a full body or, for streams, with the
/// first chunk already received (so a slow first token can still be retried elsewhere).
async fn send(
    state: &AppState,
    rb: reqwest::RequestBuilder,
    meta: &RequestMeta,
    adaptor: &dyn super::Adaptor,
    mode: RelayMode,
) -> Result<Sent, Failure> {
    let upstream = state.upstream();
    let fut = upstream.send(rb);
    let resp = match (meta.stream, state.cfg.relay_timeout) {
        (true, Some(t)) => tokio::time::timeout(t, fut)
            .await
            .map_err(|_| transport_failure("upstream timed out".into(), "do_request_failed"))?,
        _ => fut.await,
    }
    .map_err(|e| upstream_error(&e, "do request failed", "do_request_failed"))?;
    let status = resp.status.as_u16();
    let content_type = resp
        .content_type()
        .unwrap_or("application/json")
        .to_string();
    if !(200..300).contains(&status) {
        let body = resp.bytes().await.unwrap_or_default();
        return Err(upstream_failure(status, adaptor.map_error(status, &body)));
    }
    if meta.stream && mode.is_streamable() {
        if content_type.starts_with("application/json") && !adaptor.whole_answer_stream() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(upstream_failure(500, adaptor.map_error(500, &body)));
        }
        let mut rest = resp.into_stream();
        let first = async {
            match rest.next().await {
                Some(Ok(b)) => Ok(b),
                Some(Err(e)) => Err(upstream_error(&e, "stream failed", "do_request_failed")),
                None => Ok(Bytes::new()),
            }
        };
        let first = match state.cfg.relay_first_token_timeout {
            Some(t) => tokio::time::timeout(t, first).await.map_err(|_| {
                transport_failure("first token timed out".into(), "first_token_timeout")
            })??,
            None => first.await?,
        };
        return Ok(Sent::Stream { first, rest });
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| upstream_error(&e, "reading response failed", "read_response_failed"))?;
    Ok(Sent::Full {
        status,
        content_type,
        body,
    })
}

/// An [`super::exchange`] result as what `send` returns.
fn exchanged(
    r: Result<super::exchange::Exchanged, super::exchange::ExchangeError>,
) -> Result<Sent, Failure> {
    match r {
        Ok(super::exchange::Exchanged::Full(body)) => Ok(Sent::Full {
            status: 200,
            content_type: "application/json".into(),
            body,
        }),
        Ok(super::exchange::Exchanged::Stream { first, rest }) => Ok(Sent::Stream { first, rest }),
        Err(e) => Err(Failure {
            retryable: e.retryable,
            error: AppError::Upstream {
                status: e.status,
                body: e.body,
            },
            transport: None,
        }),
    }
}

/// What the client receives of a stream.
enum Out {
    /// OpenAI chunks (passed through or translated), metered by the [`SseProcessor`].
    OpenAi,
    /// The upstream's bytes untouched (a native front door on a channel of the same format);
    /// the OpenAI translation is only used for metering.
    Raw,
    /// Anthropic's events, from the OpenAI chunks.
    Anthropic(anthropic_inbound::StreamToAnthropic),
    /// Gemini's events, from the OpenAI chunks.
    Gemini(gemini_inbound::StreamToGemini),
}

/// The client-facing stream: upstream chunks passed through (or translated event by event) as
/// they arrive, metered on the way; settles when the upstream ends, and on drop (client gone)
/// bills what was delivered.
struct RelayStream {
    upstream: ByteStream,
    first: Option<Bytes>,
    /// The provider's SSE decoder and translator to OpenAI chunks (`None`: already OpenAI).
    decoder: Option<(Decoder, Box<dyn StreamTranslator>)>,
    proc: SseProcessor,
    out: Out,
    billing: Option<Billing>,
    ended: bool,
    /// Output of events hyper has already read, gathered into one write (see `poll_next`).
    gathered: BytesMut,
    /// A yield to hyper's connection task in progress.
    yielding: Option<Pin<Box<dyn Future<Output = ()>>>>,
    /// Whether anything went to the client yet (the first output is never held back).
    sent: bool,
}

/// Most bytes gathered into one write: bounds how long an event waits for those after it.
const GATHER_MAX: usize = 16 * 1024;

/// Splits a provider's stream into events.
enum Decoder {
    Sse(SseDecoder),
    /// AWS's binary event stream (Bedrock).
    Aws(EventStreamDecoder),
    /// A whole JSON answer (an upstream that does not stream), one event at the end.
    Whole(Vec<u8>),
}

impl Decoder {
    fn feed(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        match self {
            Decoder::Sse(d) => d.feed(chunk),
            Decoder::Aws(d) => d.feed(chunk),
            Decoder::Whole(buf) => {
                buf.extend_from_slice(chunk);
                vec![]
            }
        }
    }

    fn finish(&mut self) -> Vec<(String, String)> {
        match self {
            Decoder::Sse(d) => d.finish(),
            Decoder::Aws(_) => vec![],
            Decoder::Whole(buf) => vec![(
                String::new(),
                String::from_utf8_lossy(&std::mem::take(buf)).into_owned(),
            )],
        }
    }
}

fn openai_sse(chunks: Vec<Value>, buf: &mut BytesMut) {
    for c in chunks {
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(c.to_string().as_bytes());
        buf.extend_from_slice(b"\n\n");
    }
}

fn translate_events(
    events: Vec<(String, String)>,
    tr: &mut Box<dyn StreamTranslator>,
    buf: &mut BytesMut,
) {
    for (name, data) in events {
        match tr.on_event(&name, &data) {
            Ok(chunks) => openai_sse(chunks, buf),
            Err(e) => openai_sse(vec![json!({ "error": e })], buf),
        }
    }
}

/// The chunks of complete OpenAI SSE lines.
fn openai_chunks(openai: &[u8]) -> impl Iterator<Item = Value> + '_ {
    openai.split(|b| *b == b'\n').filter_map(|line| {
        let data = line.strip_prefix(b"data:")?;
        let data = data.strip_prefix(b" ").unwrap_or(data);
        serde_json::from_slice::<Value>(data).ok()
    })
}

/// OpenAI SSE lines (complete) as Gemini events.
fn to_gemini(enc: &mut gemini_inbound::StreamToGemini, openai: &[u8]) -> Bytes {
    let mut out = String::new();
    for chunk in openai_chunks(openai) {
        if let Some(e) = chunk.get("error") {
            let msg = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error");
            out.push_str(&gemini_inbound::sse_event(&gemini_inbound::error_body(
                500, msg,
            )));
            continue;
        }
        for ev in enc.on_chunk(&chunk) {
            out.push_str(&gemini_inbound::sse_event(&ev));
        }
    }
    Bytes::from(out)
}

/// OpenAI SSE lines (complete) as Anthropic events.
fn to_anthropic(enc: &mut anthropic_inbound::StreamToAnthropic, openai: &[u8]) -> Bytes {
    let mut out = String::new();
    for chunk in openai_chunks(openai) {
        if let Some(e) = chunk.get("error") {
            let msg = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error");
            out.push_str(&anthropic_inbound::sse_event(
                "error",
                &anthropic_inbound::error_body(500, msg),
            ));
            continue;
        }
        for (name, ev) in enc.on_chunk(&chunk) {
            out.push_str(&anthropic_inbound::sse_event(name, &ev));
        }
    }
    Bytes::from(out)
}

impl RelayStream {
    fn settle(&mut self) {
        if let Some(b) = self.billing.take() {
            let usage = self.proc.usage;
            let _ = b.settle(usage, &self.proc.text);
        }
    }

    /// One upstream chunk: metered, and what the client gets of it.
    fn process(&mut self, chunk: &[u8]) -> Bytes {
        let openai = match &mut self.decoder {
            Some((sse, tr)) => {
                let mut buf = BytesMut::new();
                translate_events(sse.feed(chunk), tr, &mut buf);
                self.proc.feed(&buf)
            }
            None => self.proc.feed(chunk),
        };
        match &mut self.out {
            Out::OpenAi => openai,
            Out::Raw => Bytes::copy_from_slice(chunk),
            Out::Anthropic(enc) => to_anthropic(enc, &openai),
            Out::Gemini(enc) => to_gemini(enc, &openai),
        }
    }

    /// Sends what was gathered.
    fn emit(&mut self) -> Poll<Option<Result<Bytes, actix_web::Error>>> {
        self.sent = true;
        Poll::Ready(Some(Ok(self.gathered.split().freeze())))
    }

    /// The upstream ended (or broke): the tail for the client; settles.
    fn end(&mut self) -> Bytes {
        let mut buf = BytesMut::new();
        if let Some((sse, tr)) = &mut self.decoder {
            translate_events(sse.finish(), tr, &mut buf);
            openai_sse(tr.finish(), &mut buf);
        }
        let mut openai = BytesMut::from(&self.proc.feed(&buf)[..]);
        openai.extend_from_slice(&self.proc.finish());
        let (p, c) = self
            .billing
            .as_ref()
            .map(|b| b.counts(self.proc.usage, &self.proc.text))
            .unwrap_or_default();
        let u = crate::adaptors::Usage {
            prompt_tokens: p,
            completion_tokens: c,
            ..Default::default()
        };
        let tail = match &mut self.out {
            Out::OpenAi => openai.freeze(),
            Out::Raw => Bytes::new(),
            Out::Anthropic(enc) => {
                let mut out = BytesMut::from(&to_anthropic(enc, &openai)[..]);
                for (name, ev) in enc.finish(&u) {
                    out.extend_from_slice(anthropic_inbound::sse_event(name, &ev).as_bytes());
                }
                out.freeze()
            }
            Out::Gemini(enc) => {
                let mut out = BytesMut::from(&to_gemini(enc, &openai)[..]);
                for ev in enc.finish(&u) {
                    out.extend_from_slice(gemini_inbound::sse_event(&ev).as_bytes());
                }
                out.freeze()
            }
        };
        self.settle();
        tail
    }
}

impl Stream for RelayStream {
    type Item = Result<Bytes, actix_web::Error>;

    /// The first output goes out at once (the first byte). After it, events hyper has already
    /// read are gathered into one write: hyper hands a body over one HTTP chunk per turn of its
    /// connection task, so without a yield to that task each event cost a write of its own (20
    /// system calls for a stream whose 20 events arrived in one read). An event waits at most
    /// one scheduler turn with nothing after it, and never behind more than [`GATHER_MAX`].
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(first) = this.first.take() {
            let out = this.process(&first);
            if !out.is_empty() {
                this.sent = true;
                return Poll::Ready(Some(Ok(out)));
            }
        }
        let mut after_yield = false;
        loop {
            if let Some(y) = this.yielding.as_mut() {
                if y.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.yielding = None;
                after_yield = true;
            }
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Pending if this.gathered.is_empty() => return Poll::Pending,
                Poll::Pending if after_yield || !this.sent => return this.emit(),
                Poll::Pending => {
                    this.yielding = Some(Box::pin(tokio::task::yield_now()));
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    let out = this.process(&chunk);
                    this.gathered.extend_from_slice(&out);
                    if this.gathered.len() >= GATHER_MAX || !this.sent {
                        return this.emit();
                    }
                    after_yield = false;
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(error = %e, "upstream stream broke; billing what was delivered");
                    this.ended = true;
                    let tail = this.end();
                    this.gathered.extend_from_slice(&tail);
                    return this.emit();
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    let tail = this.end();
                    this.gathered.extend_from_slice(&tail);
                    if this.gathered.is_empty() {
                        return Poll::Ready(None);
                    }
                    return this.emit();
                }
            }
        }
    }
}

impl Drop for RelayStream {
    fn drop(&mut self) {
        // The client went away: the upstream call is cancelled with `upstream`; bill what was
        // delivered.
        self.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events the upstream connection has already read reach the client in one write, not one
    /// write each; the first goes out alone, at once.
    #[tokio::test]
    async fn events_already_read_go_out_together() {
        let events: Vec<Bytes> = (0..20)
            .map(|i| {
                Bytes::from(format!(
                    "data: {{\"choices\":[{{\"delta\":{{\"content\":\"t{i}\"}}}}]}}\n\n"
                ))
            })
            .collect();
        // Like hyper's body channel: one frame at a time, handed over by another task.
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let rest = events[1..].to_vec();
        tokio::spawn(async move {
            for e in rest {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
        });
        let upstream: ByteStream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|b| (Ok(b), rx))
        }));
        let mut stream = RelayStream {
            upstream,
            first: Some(events[0].clone()),
            decoder: None,
            proc: SseProcessor::new(false),
            out: Out::OpenAi,
            billing: None,
            ended: false,
            gathered: BytesMut::new(),
            yielding: None,
            sent: false,
        };
        let mut writes = Vec::new();
        while let Some(w) = stream.next().await {
            writes.push(w.unwrap());
        }
        assert_eq!(writes[0], events[0]);
        assert_eq!(
            writes.concat(),
            [events.concat(), b"data: [DONE]\n\n".to_vec()].concat()
        );
        assert_eq!(writes.len(), 2, "one write per event or so: {writes:?}");
    }

    #[test]
    fn json_bodies_are_the_same_whatever_the_size_hint() {
        let v = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
        let expected = serde_json::to_vec(&v).unwrap();
        for hint in [0, 16, expected.len(), 1 << 20] {
            assert_eq!(json_body(&v, hint), expected, "hint {hint}");
        }
    }

    #[test]
    fn parsed_urls_are_remembered_and_bad_ones_passed_on() {
        let url = "https://api.example.com/v1/chat/completions?api-version=1";
        let first = parsed_url(url).unwrap();
        assert_eq!(first.as_str(), url);
        assert_eq!(parsed_url(url).unwrap(), first);
        assert!(parsed_url("not a url").is_none());
        // The memo is bounded: past its size it starts over and still answers.
        for i in 0..300 {
            let u = format!("http://h{i}.example/v1");
            assert_eq!(
                parsed_url(&u).unwrap().host_str(),
                Some(&*format!("h{i}.example"))
            );
        }
        assert_eq!(parsed_url(url).unwrap(), first);
    }

    /// The size of the future an async handler returns.
    fn future_size<A, B, C, D, F: Future>(_: fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Each request in flight holds its handler's future. The Redis pools' checkout and the
    /// exchange (a WebSocket handshake) were inlined into it, 16 KB per request: 9,000 streams
    /// opened at once peaked at 530 MB with them, 405 MB with both boxed.
    #[test]
    fn relay_futures_stay_small() {
        for (name, size) in [
            ("chat_completions", future_size(chat_completions)),
            ("embeddings", future_size(embeddings)),
            ("messages", future_size(super::super::front::messages)),
        ] {
            assert!(size <= 8 * 1024, "{name}: {size} bytes");
        }
    }
}
