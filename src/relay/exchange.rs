//! Upstream exchanges that are more than one HTTP call, for the providers that need them; the
//! rest of the relay stays in [`super::forward`], which calls [`prepare`] once per attempt.
//!
//! - Baidu v1 (15): an OAuth access token (client credentials from `client_id|client_secret`)
//!   added as `?access_token=`.
//! - Vertex AI (42): a service-account JWT exchanged at the account's `token_uri` for an access
//!   token, sent as `Authorization: Bearer`.
//! - Xunfei Spark (18): a WebSocket: the request frame out, answer frames in (a stream of them
//!   becomes SSE `data:` lines for the adaptor's stream translator; a whole answer, a JSON
//!   array of frames for `convert_response`).
//! - Replicate (46): a prediction created (`Prefer: wait`), then polled at `urls.get` until it
//!   ends; a stream reads `urls.stream`; an image prediction's output becomes OpenAI's image
//!   answer (URLs, or the images fetched for `b64_json`).
//!
//! Access tokens are cached per credentials (so per channel) until shortly before they expire.
//! Errors keep the provider's status so retry and auto-disable decide as for any upstream.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use super::openai::base_of;
pub(crate) use super::upstream::ByteStream;
use super::upstream::quiet;
use super::{Ctx, UpstreamRequest, adaptor_for};
use crate::adaptors::{baidu, replicate, vertex, xunfei};
use crate::state::AppState;

/// What an exchange produced, in the shapes `forward` handles for plain HTTP.
pub(crate) enum Exchanged {
    /// A whole 2xx answer in the provider's format (for the adaptor's `convert_response`).
    Full(Bytes),
    /// A stream in SSE (for the adaptor's stream translator), its first chunk already here.
    Stream { first: Bytes, rest: ByteStream },
}

/// A failed exchange: the status and OpenAI error object for the client, and whether another
/// channel may be tried.
#[derive(Debug)]
pub(crate) struct ExchangeError {
    pub status: u16,
    pub body: Value,
    pub retryable: bool,
}

/// What `forward` does next.
pub(crate) enum Next {
    /// Send this request as for any channel.
    Send(Box<reqwest::RequestBuilder>),
    /// The exchange is done.
    Done(Result<Exchanged, ExchangeError>),
}

/// Whether a channel type has its own steps here (every other type is sent as is, without
/// calling [`prepare`]).
pub(crate) fn applies(channel_type: i64) -> bool {
    matches!(channel_type, 15 | 18 | 42 | 46)
}

/// The provider's own steps before (or instead of) the plain HTTP call `rb` (built from `up`
/// with `body`), for the types [`applies`] names.
pub(crate) async fn prepare(
    state: &AppState,
    ctx: &Ctx<'_>,
    up: &UpstreamRequest,
    body: &Bytes,
    rb: reqwest::RequestBuilder,
) -> Next {
    match ctx.channel_type {
        15 => match baidu_token(state, ctx).await {
            Ok(token) => rebuild(state, rb, |req| {
                req.url_mut()
                    .query_pairs_mut()
                    .append_pair("access_token", &token);
                Ok(())
            }),
            Err(e) => Next::Done(Err(e)),
        },
        42 => match google_token(state, ctx).await {
            Ok(token) => rebuild(state, rb, |req| {
                let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| transport("invalid access token".into()))?;
                v.set_sensitive(true);
                req.headers_mut().insert(reqwest::header::AUTHORIZATION, v);
                Ok(())
            }),
            Err(e) => Next::Done(Err(e)),
        },
        18 => Next::Done(xunfei_exchange(state, ctx, up, body).await),
        46 => Next::Done(replicate_exchange(state, ctx, rb).await),
        _ => Next::Send(Box::new(rb)),
    }
}

fn rebuild(
    state: &AppState,
    rb: reqwest::RequestBuilder,
    edit: impl FnOnce(&mut reqwest::Request) -> Result<(), ExchangeError>,
) -> Next {
    let mut req = match rb.build() {
        Ok(r) => r,
        Err(e) => return Next::Done(Err(transport(format!("invalid request: {e}")))),
    };
    if let Err(e) = edit(&mut req) {
        return Next::Done(Err(e));
    }
    Next::Send(Box::new(reqwest::RequestBuilder::from_parts(
        state.http.clone(),
        req,
    )))
}

fn upstream(status: u16, body: Value) -> ExchangeError {
    ExchangeError {
        status,
        body,
        retryable: status == 429 || status >= 500,
    }
}

fn transport(msg: String) -> ExchangeError {
    ExchangeError {
        status: 500,
        body: json!({"message": msg, "type": "one_api_error", "param": "", "code": "do_request_failed"}),
        retryable: true,
    }
}

fn config_error(msg: String) -> ExchangeError {
    ExchangeError {
        status: 500,
        body: json!({"message": msg, "type": "one_api_error", "param": "", "code": "invalid_channel_config"}),
        retryable: true,
    }
}

// --- Access tokens ---------------------------------------------------------------------------

/// Access tokens by a digest of the credentials they were issued for, each with the instant
/// after which it is fetched again.
type TokenCache = moka::sync::Cache<String, Arc<(String, Instant)>>;

static TOKENS: LazyLock<TokenCache> = LazyLock::new(|| {
    moka::sync::Cache::builder()
        .max_capacity(10_000)
        // A safety net: tokens are refreshed at least daily whatever their lifetime.
        .time_to_live(Duration::from_secs(24 * 3600))
        .build()
});

const TOKEN_TIMEOUT: Duration = Duration::from_secs(15);

fn token_key(kind: &str, secret: &str) -> String {
    use sha2::Digest;
    format!(
        "{kind}:{}",
        hex::encode(&sha2::Sha256::digest(secret.as_bytes())[..16])
    )
}

fn cached_token(key: &str) -> Option<String> {
    TOKENS
        .get(key)
        .filter(|t| t.1 > Instant::now())
        .map(|t| t.0.clone())
}

/// Keeps a token until a tenth of its lifetime (at most an hour) before it expires.
fn keep_token(key: String, token: &str, expires_in: u64) {
    let margin = (expires_in / 10).min(3600);
    let until = Instant::now() + Duration::from_secs(expires_in.saturating_sub(margin));
    TOKENS.insert(key, Arc::new((token.to_string(), until)));
}

/// A token endpoint's failure: its own 5xx/429 stay retryable; any other refusal means bad
/// credentials (401, so auto-disable can act).
fn token_failure(status: u16, e: Value) -> ExchangeError {
    if status == 429 || status >= 500 {
        upstream(status, e)
    } else {
        upstream(401, e)
    }
}

/// Reads a token endpoint's answer: `(access_token, expires_in)` or an OpenAI error object.
type ParseToken = fn(&[u8]) -> Result<(String, u64), Value>;

async fn fetch_token(
    rb: reqwest::RequestBuilder,
    parse: ParseToken,
) -> Result<(String, u64), ExchangeError> {
    let resp = rb
        .timeout(TOKEN_TIMEOUT)
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| transport(format!("access token request failed: {}", quiet(&e))))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport(format!("access token request failed: {}", quiet(&e))))?;
    parse(&body).map_err(|e| token_failure(status, e))
}

fn baidu_cache_key(ctx: &Ctx) -> String {
    token_key(
        "baidu",
        &format!("{}\n{}", base_of(15, ctx.base_url), ctx.key.trim()),
    )
}

/// Drops the cached Baidu token of this channel (Baidu said it is invalid or expired).
pub(crate) fn forget_baidu_token(ctx: &Ctx) {
    TOKENS.invalidate(&baidu_cache_key(ctx));
}

/// Baidu's access token for the key `client_id|client_secret`, from `{base}/oauth/2.0/token`.
async fn baidu_token(state: &AppState, ctx: &Ctx<'_>) -> Result<String, ExchangeError> {
    let key = baidu_cache_key(ctx);
    if let Some(t) = cached_token(&key) {
        return Ok(t);
    }
    let url = baidu::token_url(base_of(15, ctx.base_url), ctx.key).ok_or_else(|| {
        upstream(
            401,
            json!({"message": "the Baidu key must be client_id|client_secret",
                "type": "authentication_error", "param": "", "code": "invalid_api_key"}),
        )
    })?;
    let (token, expires_in) = fetch_token(state.http.post(url), baidu::parse_token).await?;
    // Baidu's tokens live 30 days; an hour at most here, so a token Baidu stops accepting on a
    // path that cannot drop it (an error answer to a stream) is not used for long.
    keep_token(key, &token, expires_in.min(3600));
    Ok(token)
}

/// Vertex AI's access token: the service account's signed JWT exchanged at its `token_uri`.
async fn google_token(state: &AppState, ctx: &Ctx<'_>) -> Result<String, ExchangeError> {
    let s = vertex::Settings::from_channel(ctx.config, ctx.key).map_err(config_error)?;
    let a = &s.account;
    let key = token_key(
        "google",
        &format!("{}\n{}\n{}", a.token_uri, a.client_email, a.private_key),
    );
    if let Some(t) = cached_token(&key) {
        return Ok(t);
    }
    let jwt = vertex::jwt_assertion(a, crate::store::now()).map_err(config_error)?;
    let rb = state
        .http
        .post(&a.token_uri)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(vertex::token_request_body(&jwt));
    let (token, expires_in) = fetch_token(rb, vertex::parse_token).await?;
    keep_token(key, &token, expires_in);
    Ok(token)
}

// --- Streams ---------------------------------------------------------------------------------

/// Waits for the first non-empty chunk (within `RELAY_FIRST_TOKEN_TIMEOUT`, when set).
async fn first_chunk(state: &AppState, rest: &mut ByteStream) -> Result<Bytes, ExchangeError> {
    let first = async {
        loop {
            match rest.next().await {
                Some(Ok(b)) if b.is_empty() => continue,
                Some(Ok(b)) => return Ok(b),
                Some(Err(e)) => return Err(transport(format!("stream failed: {e}"))),
                None => return Ok(Bytes::new()),
            }
        }
    };
    match state.cfg.relay_first_token_timeout {
        Some(t) => tokio::time::timeout(t, first)
            .await
            .map_err(|_| transport("first token timed out".into()))?,
        None => first.await,
    }
}

/// How long a whole non-stream exchange may take (`RELAY_TIMEOUT`, else 10 minutes).
fn overall(state: &AppState) -> Duration {
    state.cfg.relay_timeout.unwrap_or(Duration::from_secs(600))
}

// --- Replicate -------------------------------------------------------------------------------

async fn read_json(
    ctx: &Ctx<'_>,
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<(Value, Bytes), ExchangeError> {
    let resp = resp.map_err(|e| transport(format!("do request failed: {}", quiet(&e))))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport(format!("reading response failed: {}", quiet(&e))))?;
    if !(200..300).contains(&status) {
        return Err(upstream(
            status,
            adaptor_for(ctx.channel_type).map_error(status, &body),
        ));
    }
    let v = serde_json::from_slice(&body).map_err(|_| {
        upstream(
            502,
            json!({"message": "invalid upstream response", "type": "upstream_error",
                "param": "", "code": "bad_response"}),
        )
    })?;
    Ok((v, body))
}

fn replicate_missing(what: &str) -> ExchangeError {
    upstream(
        502,
        json!({"message": format!("the prediction has no {what}"), "type": "upstream_error",
            "param": "", "code": "bad_response"}),
    )
}

async fn replicate_exchange(
    state: &AppState,
    ctx: &Ctx<'_>,
    rb: reqwest::RequestBuilder,
) -> Result<Exchanged, ExchangeError> {
    let (mut pred, mut body) = read_json(ctx, rb.send().await).await?;
    if ctx.stream {
        let url = replicate::stream_url(&pred).ok_or_else(|| replicate_missing("stream URL"))?;
        let resp = state
            .http
            .get(url)
            .bearer_auth(ctx.key)
            .header("Accept", "text/event-stream")
            .header("Cache-Control", "no-store")
            .send()
            .await
            .map_err(|e| transport(format!("do request failed: {}", quiet(&e))))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let b = resp.bytes().await.unwrap_or_default();
            return Err(upstream(
                status,
                adaptor_for(ctx.channel_type).map_error(status, &b),
            ));
        }
        let mut rest = super::upstream::reqwest_stream(resp);
        let first = first_chunk(state, &mut rest).await?;
        return Ok(Exchanged::Stream { first, rest });
    }
    let deadline = Instant::now() + overall(state);
    let mut wait = Duration::from_millis(250);
    while !replicate::is_done(&pred) {
        if Instant::now() + wait > deadline {
            return Err(transport("the prediction did not finish in time".into()));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(3));
        let url = replicate::get_url(&pred).ok_or_else(|| replicate_missing("get URL"))?;
        let resp = state
            .http
            .get(url)
            .bearer_auth(ctx.key)
            .timeout(TOKEN_TIMEOUT)
            .send()
            .await;
        (pred, body) = read_json(ctx, resp).await?;
    }
    if replicate::status(&pred) != "succeeded" {
        return Err(upstream(500, replicate::failure(&pred)));
    }
    if ctx.mode == super::types::RelayMode::ImagesGenerations {
        return replicate_images(state, ctx, &pred).await;
    }
    Ok(Exchanged::Full(body))
}

/// The largest image fetched for a `b64_json` answer.
const MAX_IMAGE: usize = 20 << 20;

/// A finished image prediction as OpenAI's image answer: the output URLs, or (for
/// `response_format: b64_json`) the images fetched and encoded.
async fn replicate_images(
    state: &AppState,
    ctx: &Ctx<'_>,
    pred: &Value,
) -> Result<Exchanged, ExchangeError> {
    use base64::Engine;
    let outputs = replicate::image_outputs(pred).map_err(|e| upstream(500, e))?;
    let b64 = ctx
        .request
        .and_then(|r| r.get("response_format"))
        .and_then(Value::as_str)
        == Some("b64_json");
    let mut items = Vec::with_capacity(outputs.len());
    for out in outputs {
        if !b64 {
            items.push(json!({"url": out}));
            continue;
        }
        if let Some((_, data)) = out.split_once(";base64,") {
            items.push(json!({"b64_json": data}));
            continue;
        }
        let resp = state
            .http
            .get(&out)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| transport(format!("fetching the image failed: {}", quiet(&e))))?;
        if !resp.status().is_success() {
            return Err(transport(format!(
                "fetching the image failed: status {}",
                resp.status().as_u16()
            )));
        }
        let mut bytes = Vec::new();
        let mut parts = resp.bytes_stream();
        while let Some(part) = parts.next().await {
            let part =
                part.map_err(|e| transport(format!("fetching the image failed: {}", quiet(&e))))?;
            if bytes.len() + part.len() > MAX_IMAGE {
                return Err(transport("the image is too large".into()));
            }
            bytes.extend_from_slice(&part);
        }
        items.push(json!({"b64_json": base64::engine::general_purpose::STANDARD.encode(&bytes)}));
    }
    let answer = replicate::image_response(items, crate::store::now());
    Ok(Exchanged::Full(Bytes::from(
        serde_json::to_vec(&answer).unwrap_or_default(),
    )))
}

// --- Xunfei (WebSocket) ----------------------------------------------------------------------

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next answer frame; `None` when the socket closed.
async fn next_frame(ws: &mut Socket, idle: Duration) -> Result<Option<Value>, String> {
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let msg = match tokio::time::timeout(idle, ws.next()).await {
            Err(_) => return Err("no answer frame in time".into()),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(format!("websocket read failed: {e}")),
            Ok(Some(Ok(m))) => m,
        };
        let data: &[u8] = match &msg {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => &b[..],
            Message::Close(_) => return Ok(None),
            _ => continue,
        };
        return serde_json::from_slice(data)
            .map(Some)
            .map_err(|_| "invalid answer frame".to_string());
    }
}

fn sse_data(frame: &Value) -> Bytes {
    Bytes::from(format!("data: {frame}\n\n"))
}

async fn xunfei_exchange(
    state: &AppState,
    ctx: &Ctx<'_>,
    up: &UpstreamRequest,
    body: &Bytes,
) -> Result<Exchanged, ExchangeError> {
    use tokio_tungstenite::tungstenite::{Error as WsError, Message};
    if xunfei::split_key(ctx.key).is_none() {
        return Err(upstream(
            401,
            json!({"message": "the Xunfei key must be APPID|APISecret|APIKey",
                "type": "authentication_error", "param": "", "code": "invalid_api_key"}),
        ));
    }
    if up.url.is_empty() {
        return Err(config_error("invalid Xunfei base URL".into()));
    }
    // `wss://` builds its rustls config from the process's provider (ring).
    crate::startup::install_crypto_provider();
    let connect = tokio_tungstenite::connect_async(up.url.as_str());
    let mut ws = match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Err(_) => return Err(transport("websocket handshake timed out".into())),
        Ok(Err(WsError::Http(resp))) => {
            let status = resp.status().as_u16();
            let b = resp.body().clone().unwrap_or_default();
            return Err(upstream(
                status,
                adaptor_for(ctx.channel_type).map_error(status, &b),
            ));
        }
        Ok(Err(e)) => return Err(transport(format!("websocket connect failed: {e}"))),
        Ok(Ok((ws, _))) => ws,
    };
    let frame = String::from_utf8_lossy(body).into_owned();
    ws.send(Message::Text(frame.into()))
        .await
        .map_err(|e| transport(format!("websocket send failed: {e}")))?;
    let idle = state
        .cfg
        .relay_idle_timeout
        .unwrap_or(Duration::from_secs(300));
    let first_wait = match (ctx.stream, state.cfg.relay_first_token_timeout) {
        (true, Some(t)) => t.min(idle),
        _ => idle,
    };
    let first = match next_frame(&mut ws, first_wait).await {
        Ok(Some(f)) => f,
        Ok(None) => return Err(transport("the socket closed without an answer".into())),
        Err(e) => return Err(transport(e)),
    };
    if let Some((status, e)) = xunfei::frame_error(&first) {
        return Err(upstream(status, e));
    }
    if !ctx.stream {
        let collect = async {
            let mut frames = vec![first];
            while !frames.last().is_some_and(xunfei::is_last) {
                match next_frame(&mut ws, idle).await {
                    Ok(Some(f)) => {
                        if let Some((status, e)) = xunfei::frame_error(&f) {
                            return Err(upstream(status, e));
                        }
                        frames.push(f);
                    }
                    Ok(None) => break,
                    Err(e) => return Err(transport(e)),
                }
            }
            let _ = ws.close(None).await;
            Ok(frames)
        };
        let frames = tokio::time::timeout(overall(state), collect)
            .await
            .map_err(|_| transport("upstream timed out".into()))??;
        return Ok(Exchanged::Full(Bytes::from(
            serde_json::to_vec(&frames).unwrap_or_default(),
        )));
    }
    let first_bytes = sse_data(&first);
    let state0 = (!xunfei::is_last(&first)).then_some(ws);
    let rest = futures_util::stream::unfold(state0, move |ws| async move {
        let mut ws = ws?;
        match next_frame(&mut ws, idle).await {
            Ok(Some(f)) => {
                let end = xunfei::is_last(&f) || xunfei::frame_error(&f).is_some();
                let out = sse_data(&f);
                if end {
                    let _ = ws.close(None).await;
                }
                Some((Ok::<_, super::upstream::Error>(out), (!end).then_some(ws)))
            }
            Ok(None) => None,
            Err(e) => Some((
                Ok(sse_data(
                    &json!({"header": {"code": -1, "message": e, "status": 2}}),
                )),
                None,
            )),
        }
    });
    Ok(Exchanged::Stream {
        first: first_bytes,
        rest: Box::pin(rest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_kept_until_shortly_before_expiry() {
        let key = token_key("test", &uuid::Uuid::new_v4().to_string());
        assert_eq!(cached_token(&key), None);
        keep_token(key.clone(), "t1", 3600);
        assert_eq!(cached_token(&key).as_deref(), Some("t1"));
        // Expiring within the margin: fetched again.
        keep_token(key.clone(), "t2", 0);
        assert_eq!(cached_token(&key), None);
        assert_eq!(
            token_failure(400, json!({})).status,
            401,
            "a refused credential is an authentication failure"
        );
        assert!(token_failure(503, json!({})).retryable);
    }
}
