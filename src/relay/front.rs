//! Native front doors beyond One API: Anthropic's `POST /v1/messages` (Claude Code, the
//! `anthropic` SDKs) and Gemini's `POST /v1beta/models/{model}:generateContent` /
//! `:streamGenerateContent` / `:countTokens` / `:embedContent` / `:batchEmbedContents` (the
//! `google-genai` SDKs). The request is authorised like any `/v1`
//! call (`x-api-key`, `x-goog-api-key`, `?key=` on `/v1beta`, or Bearer), turned into OpenAI's
//! format for routing, pricing and channels of other formats, and passed through untouched to
//! channels of the same format. Answers and errors use the front door's shapes.

use actix_web::http::header::HeaderName;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde_json::Value;

use super::auth::TokenAuth;
use super::forward::{self, Front};
use super::types::RelayMode;
use crate::adaptors::{anthropic_inbound, gemini_inbound};
use crate::error::{AppError, V1Error};
use crate::state::AppState;

/// The key of a native client when it sent no `Authorization`: Anthropic's `x-api-key`, Google's
/// `x-goog-api-key`, or Google's `?key=` (only on Google's `/v1beta` paths, so that keys do not
/// end up in the query strings of other routes).
pub fn native_key(req: &HttpRequest) -> Option<String> {
    // Names built once: parsing a custom name from a `&str` allocates it on every lookup.
    const NATIVE: [HeaderName; 2] = [
        HeaderName::from_static("x-api-key"),
        HeaderName::from_static("x-goog-api-key"),
    ];
    for h in &NATIVE {
        if let Some(v) = req.headers().get(h).and_then(|v| v.to_str().ok()) {
            return Some(format!("Bearer {}", v.trim()));
        }
    }
    if req.path().starts_with("/v1beta/") {
        return url::form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(k, _)| k == "key")
            .map(|(_, v)| format!("Bearer {v}"));
    }
    None
}

/// An error in Anthropic's shape, with the status the OpenAI renderer would use.
fn anthropic_error(e: V1Error) -> HttpResponse {
    let status = e.status_code();
    let body = e.body();
    let msg = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("error");
    HttpResponse::build(status).json(anthropic_inbound::error_body(status.as_u16(), msg))
}

/// `POST /v1/messages`
pub async fn messages(
    req: HttpRequest,
    payload: web::Payload,
    auth: Result<TokenAuth, V1Error>,
    state: web::Data<AppState>,
) -> HttpResponse {
    match messages_inner(req, payload, auth, state).await {
        Ok(r) => r,
        Err(e) => anthropic_error(e),
    }
}

async fn messages_inner(
    req: HttpRequest,
    payload: web::Payload,
    auth: Result<TokenAuth, V1Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, V1Error> {
    let auth = auth?;
    let state: &AppState = state.get_ref();
    let raw = forward::read_front_body(state, payload).await?;
    let native: Value = serde_json::from_slice(&raw)
        .map_err(|e| AppError::bad_request(format!("invalid request body: {e}")))?;
    if !native.is_object() {
        return Err(AppError::bad_request("invalid request body: expected a JSON object").into());
    }
    if native.get("max_tokens").and_then(Value::as_i64).is_none() {
        return Err(AppError::bad_request("max_tokens: Field required").into());
    }
    let openai =
        anthropic_inbound::from_messages_request(&native).map_err(AppError::bad_request)?;
    let body = forward::json_body(&openai, raw.len() + 64);
    // Only `native` (in `Front`) and `body` go on: the rest is not held while the upstream
    // answers.
    drop((openai, raw));
    let meta = forward::parse_chat(&req, &body)?;
    forward::run(
        &req,
        auth,
        state,
        RelayMode::ChatCompletions,
        body,
        meta,
        "/v1/chat/completions".to_string(),
        Front::Anthropic { native },
    )
    .await
}

/// An error in Gemini's shape.
fn gemini_error(e: V1Error) -> HttpResponse {
    let status = e.status_code();
    let body = e.body();
    let msg = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("error");
    HttpResponse::build(status).json(gemini_inbound::error_body(status.as_u16(), msg))
}

/// `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`, `:countTokens`
/// (counted locally, `{"totalTokens": n}`, nothing sent or billed), `:embedContent` and
/// `:batchEmbedContents` (the relay's embeddings call, billed as embeddings).
pub async fn gemini_generate(
    req: HttpRequest,
    target: web::Path<String>,
    payload: web::Payload,
    auth: Result<TokenAuth, V1Error>,
    state: web::Data<AppState>,
) -> HttpResponse {
    match gemini_inner(req, target.into_inner(), payload, auth, state).await {
        Ok(r) => r,
        Err(e) => gemini_error(e),
    }
}

async fn gemini_inner(
    req: HttpRequest,
    target: String,
    payload: web::Payload,
    auth: Result<TokenAuth, V1Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, V1Error> {
    let Some((model, method)) = target.rsplit_once(':') else {
        return Err(AppError::NotFound(format!("unknown method: {target}")).into());
    };
    let model = model.to_string();
    if !matches!(
        method,
        "generateContent"
            | "streamGenerateContent"
            | "countTokens"
            | "embedContent"
            | "batchEmbedContents"
    ) {
        return Err(AppError::NotFound(format!("unknown method: {target}")).into());
    }
    let auth = auth?;
    let state: &AppState = state.get_ref();
    let raw = forward::read_front_body(state, payload).await?;
    let native: Value = serde_json::from_slice(&raw)
        .map_err(|e| AppError::bad_request(format!("invalid request body: {e}")))?;
    if !native.is_object() {
        return Err(AppError::bad_request("invalid request body: expected a JSON object").into());
    }
    let (openai, mode, path, front) = match method {
        "countTokens" => {
            let openai = gemini_inbound::from_count_tokens_request(&native, &model)
                .map_err(AppError::bad_request)?;
            auth.check_model(&model)?;
            let msgs = openai
                .get("messages")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let n = crate::tokenizer::count_messages_async(model, msgs, raw.len()).await;
            return Ok(HttpResponse::Ok().json(serde_json::json!({ "totalTokens": n })));
        }
        "embedContent" | "batchEmbedContents" => {
            let batch = method == "batchEmbedContents";
            let openai = gemini_inbound::from_embed_request(&native, &model, batch)
                .map_err(AppError::bad_request)?;
            let front = Front::GeminiEmbed { native, batch };
            (openai, RelayMode::Embeddings, "/v1/embeddings", front)
        }
        _ => {
            let stream = method == "streamGenerateContent";
            let openai = gemini_inbound::from_generate_request(&native, &model, stream)
                .map_err(AppError::bad_request)?;
            let front = Front::Gemini { native };
            (
                openai,
                RelayMode::ChatCompletions,
                "/v1/chat/completions",
                front,
            )
        }
    };
    let body = forward::json_body(&openai, raw.len() + 64);
    drop((openai, raw));
    let meta = forward::parse_request(&req, mode, &body)?;
    forward::run(&req, auth, state, mode, body, meta, path.to_string(), front).await
}

/// `POST /v1/messages/count_tokens` (Claude Code asks before sending): the prompt tokens the
/// relay would count for this request, as `{"input_tokens": n}`. Nothing is sent or billed.
pub async fn count_tokens(
    payload: web::Payload,
    auth: Result<TokenAuth, V1Error>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let inner = async {
        let auth = auth?;
        let raw = forward::read_front_body(&state, payload).await?;
        let native: Value = serde_json::from_slice(&raw)
            .map_err(|e| AppError::bad_request(format!("invalid request body: {e}")))?;
        let openai =
            anthropic_inbound::from_messages_request(&native).map_err(AppError::bad_request)?;
        let model = openai
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        auth.check_model(&model)?;
        let msgs = openai
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let n = crate::tokenizer::count_messages_async(model, msgs, raw.len()).await;
        Ok::<_, V1Error>(HttpResponse::Ok().json(serde_json::json!({ "input_tokens": n })))
    };
    match inner.await {
        Ok(r) => r,
        Err(e) => anthropic_error(e),
    }
}
