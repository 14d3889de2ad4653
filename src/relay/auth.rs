//! `TokenAuth`: the relay's typed extractor. Parses `Bearer sk-KEY[-CHANNEL]`, loads the token
//! and its user from the in-process cache (no SQL on a hit), and applies One API's checks and
//! messages: status, expiry, remaining quota, subnet, user status, channel pinning.
//! The model allow-list is checked by [`TokenAuth::check_model`] once the body is read.

use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use crate::client_ip;
use crate::error::{AppError, V1Error};
use crate::state::AppState;
use crate::store::tokens::{self, Token};
use crate::store::users::{self, User};

/// An authorised relay caller.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    pub token: Arc<Token>,
    pub user: Arc<User>,
    /// The channel pinned with `sk-KEY-CHANNEL` (admin tokens only).
    pub pinned: Option<i64>,
}

impl TokenAuth {
    /// One API: a token with an allow-list may only use the listed models.
    pub fn check_model(&self, model: &str) -> Result<(), AppError> {
        if allowed_models(&self.token).is_some_and(|list| !list.iter().any(|m| m == model)) {
            return Err(AppError::forbidden(format!("该令牌无权使用模型：{model}")));
        }
        Ok(())
    }
}

/// The token's allow-list, `None` when it may use every model.
pub fn allowed_models(token: &Token) -> Option<Vec<String>> {
    let list: Vec<String> = token
        .models
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(String::from)
        .collect();
    if list.is_empty() { None } else { Some(list) }
}

/// Splits a bearer value into the token key and the optional pinned channel part.
pub fn parse_key(header: &str) -> (String, Option<String>) {
    let k = header.trim();
    let k = k
        .strip_prefix("Bearer ")
        .or_else(|| k.strip_prefix("bearer "))
        .unwrap_or(k);
    let k = k.trim();
    let k = k.strip_prefix("sk-").unwrap_or(k);
    let mut parts = k.splitn(2, '-');
    let key = parts.next().unwrap_or("").to_string();
    let pin = parts.next().map(String::from);
    (key, pin)
}

async fn authorise(req: HttpRequest) -> Result<TokenAuth, AppError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no app state")))?
        .clone();
    // The native clients' headers are only looked at when `Authorization` is missing.
    let native;
    let header = match req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(h) => h,
        None => {
            native = super::front::native_key(&req);
            native.as_deref().unwrap_or("")
        }
    };
    let (key, pin) = parse_key(header);
    if key.is_empty() {
        return Err(AppError::Unauthorized("未提供令牌".into()));
    }
    let relay = &state.relay;
    let token = relay
        .load_token(&state.db, &key)
        .await
        .map_err(|_| AppError::Unauthorized("令牌验证失败".into()))?
        .ok_or_else(|| AppError::Unauthorized("无效的令牌".into()))?;
    match token.status {
        tokens::STATUS_ENABLED => {}
        tokens::STATUS_EXHAUSTED => {
            return Err(AppError::Unauthorized(format!(
                "令牌 {}（#{}）额度已用尽",
                token.name, token.id
            )));
        }
        tokens::STATUS_EXPIRED => return Err(AppError::Unauthorized("该令牌已过期".into())),
        _ => return Err(AppError::Unauthorized("该令牌状态不可用".into())),
    }
    if token.expired_time != -1 && token.expired_time < crate::store::now() {
        // Expired tokens show as such in the dashboard (One API only did this without Redis).
        if tokens::mark_expired(&state.db, token.id)
            .await
            .unwrap_or(false)
        {
            relay.invalidate_token(&key);
        }
        return Err(AppError::Unauthorized("该令牌已过期".into()));
    }
    let token = if !token.unlimited_quota && token.remain_quota <= 0 {
        // The cached row may be behind a refund or an edit: ask the database before refusing.
        let ticket = relay.tokens.ticket();
        let fresh = tokens::get_by_key(&state.db, &key)
            .await?
            .ok_or_else(|| AppError::Unauthorized("无效的令牌".into()))?;
        if fresh.status != tokens::STATUS_ENABLED {
            return Err(AppError::Unauthorized("该令牌状态不可用".into()));
        }
        if fresh.remain_quota <= 0 {
            if tokens::mark_exhausted(&state.db, fresh.id)
                .await
                .unwrap_or(false)
            {
                relay.invalidate_token(&key);
            }
            return Err(AppError::Unauthorized("该令牌额度已用尽".into()));
        }
        let fresh = Arc::new(fresh);
        relay.tokens.store(key.clone(), fresh.clone(), ticket);
        fresh
    } else {
        token
    };
    if !token.subnet.trim().is_empty() {
        let ip = state
            .trusted_proxies
            .of_request(req.peer_addr(), req.headers());
        if !ip.is_some_and(|ip| client_ip::in_subnets(ip, &token.subnet)) {
            return Err(AppError::forbidden(format!(
                "该令牌只能在指定网段使用：{}，当前 ip：{}",
                token.subnet,
                ip.map(|i| i.to_string()).unwrap_or_default()
            )));
        }
    }
    let user = relay
        .load_user(&state.db, token.user_id)
        .await?
        .ok_or_else(|| AppError::forbidden("用户已被封禁"))?;
    if user.status != users::STATUS_ENABLED {
        return Err(AppError::forbidden("用户已被封禁"));
    }
    let pinned = match pin {
        None => None,
        Some(p) => {
            if user.role < users::ROLE_ADMIN {
                return Err(AppError::forbidden("普通用户不支持指定渠道"));
            }
            Some(
                p.parse::<i64>()
                    .map_err(|_| AppError::bad_request("无效的渠道 Id"))?,
            )
        }
    };
    Ok(TokenAuth {
        token,
        user,
        pinned,
    })
}

impl FromRequest for TokenAuth {
    type Error = V1Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authorise(req).await.map_err(V1Error) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(parse_key("Bearer sk-abc"), ("abc".into(), None));
        assert_eq!(parse_key("Bearer abc"), ("abc".into(), None));
        assert_eq!(
            parse_key("Bearer sk-abc-12"),
            ("abc".into(), Some("12".into()))
        );
        assert_eq!(parse_key(""), ("".into(), None));
    }
}
