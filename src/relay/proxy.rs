//! One API's proxy relay, `ANY /v1/oneapi/proxy/{channel}/{path}`: the request is forwarded to
//! `{channel base URL}/{path}` with the channel's key, and the answer comes back as it is.
//!
//! One API serves it to any token, unbilled and unlogged (weakness #3). Here it is for admin
//! tokens only (the rule of `sk-KEY-CHANNEL` pinning), the channel must be enabled, and every call
//! is logged (a system log naming the token, channel, method, path and status). It is not
//! billed: what an arbitrary upstream path costs is unknown, which is why only admins may use it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::TryStreamExt;

use super::auth::TokenAuth;
use crate::error::{AppError, V1Result};
use crate::state::AppState;
use crate::store::{channels, logs, users};

/// Client headers never forwarded: the client's credentials (replaced by the channel key), the
/// hop-by-hop ones and those reqwest sets itself.
const DROPPED: &[&str] = &[
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "cookie",
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "accept-encoding",
];

/// The upstream URL: the channel's base URL, the path after the channel id, the query.
pub fn target_url(base_url: &str, tail: &str, query: &str) -> String {
    let mut url = format!(
        "{}/{}",
        base_url.trim().trim_end_matches('/'),
        tail.trim_start_matches('/')
    );
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    url
}

pub async fn proxy(
    req: HttpRequest,
    auth: TokenAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> V1Result<HttpResponse> {
    if auth.user.role < users::ROLE_ADMIN {
        return Err(AppError::forbidden("普通用户不支持使用代理渠道").into());
    }
    let (id, tail) = path.into_inner();
    let channel = id
        .parse::<i64>()
        .ok()
        .and_then(|id| state.relay.routing.load().channels.get(&id).cloned())
        .ok_or_else(|| AppError::bad_request("无效的渠道 Id"))?;
    if channel.status != channels::STATUS_ENABLED {
        return Err(AppError::forbidden("该渠道已被禁用").into());
    }
    if channel.base_url.trim().is_empty() {
        return Err(AppError::bad_request("渠道未设置 Base URL").into());
    }
    let url = target_url(&channel.base_url, &tail, req.query_string());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| AppError::bad_request("invalid method"))?;
    let mut rb = state.http.request(method, &url);
    for (name, value) in req.headers() {
        if !DROPPED.contains(&name.as_str()) {
            rb = rb.header(name.as_str(), value.as_bytes());
        }
    }
    rb = rb.bearer_auth(channel.key.trim()).body(body);
    if let Some(t) = state.cfg.relay_timeout {
        rb = rb.timeout(t);
    }
    let outcome = rb.send().await;
    let status = outcome.as_ref().map_or(0, |r| r.status().as_u16());
    let content = format!(
        "代理渠道 #{} {}：{} /{} → {}",
        channel.id,
        channel.name,
        req.method(),
        tail,
        if status == 0 {
            "failed".to_string()
        } else {
            status.to_string()
        }
    );
    let row = logs::Log {
        user_id: auth.user.id,
        username: auth.user.username.clone(),
        created_at: crate::store::now(),
        r#type: logs::TYPE_SYSTEM,
        content,
        token_name: auth.token.name.clone(),
        token_id: auth.token.id,
        channel_id: channel.id,
        ..Default::default()
    };
    if let Err(e) = logs::insert(&state.log_db, &row).await {
        tracing::warn!(error = %e, "cannot write a proxy log");
    }
    let res = outcome.map_err(|e| AppError::Upstream {
        status: 502,
        body: serde_json::json!({
            "message": format!("proxy request failed: {}", e.without_url()),
            "type": "one_api_error", "param": "", "code": "do_request_failed",
        }),
    })?;
    let mut out = HttpResponse::build(
        StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
    );
    for (name, value) in res.headers() {
        if !DROPPED.contains(&name.as_str()) {
            out.insert_header((name.as_str(), value.as_bytes()));
        }
    }
    Ok(out.streaming(res.bytes_stream().map_err(std::io::Error::other)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls() {
        assert_eq!(
            target_url("https://up.example/", "/v1/files", ""),
            "https://up.example/v1/files"
        );
        assert_eq!(
            target_url(" https://up.example/base ", "x/y", "a=1&b=2"),
            "https://up.example/base/x/y?a=1&b=2"
        );
    }
}
