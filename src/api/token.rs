//! Tokens: the caller's own `sk-` keys.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::api::{Query, ok, ok_empty, page, q_str};
use crate::auth::{UserSession, keys};
use crate::error::{ApiError, ApiResult, AppError};
use crate::state::AppState;
use crate::store::now;
use crate::store::tokens::{self, Token};

fn bad(msg: impl Into<String>) -> ApiError {
    AppError::bad_request(msg).into()
}

/// The token as One API returns it (key without `sk-`; the UI adds it).
pub fn token_view(t: &Token) -> serde_json::Value {
    json!({
        "id": t.id,
        "user_id": t.user_id,
        "key": t.key,
        "status": t.status,
        "name": t.name,
        "created_time": t.created_time,
        "accessed_time": t.accessed_time,
        "expired_time": t.expired_time,
        "remain_quota": t.remain_quota,
        "unlimited_quota": t.unlimited_quota,
        "used_quota": t.used_quota,
        "models": t.models,
        "subnet": t.subnet,
    })
}

/// Checks a comma-separated list of IPs and CIDRs (empty = no restriction).
pub fn validate_subnets(list: &str) -> Result<(), String> {
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if crate::client_ip::parse_net(part).is_none() {
            return Err(format!("无效的网段：{part}"));
        }
    }
    Ok(())
}

/// Checks name length and quota of a token body.
pub fn validate_token(name: &str, remain_quota: i64, subnet: &str) -> Result<(), String> {
    if name.chars().count() > 30 {
        return Err("令牌名称过长".into());
    }
    if remain_quota < 0 {
        return Err("额度不能为负数".into());
    }
    validate_subnets(subnet)
}

#[derive(Deserialize)]
pub struct TokenBody {
    #[serde(default)]
    id: i64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<i64>,
    #[serde(default)]
    expired_time: Option<i64>,
    #[serde(default)]
    remain_quota: Option<i64>,
    #[serde(default)]
    unlimited_quota: Option<bool>,
    #[serde(default)]
    models: Option<String>,
    #[serde(default)]
    subnet: Option<String>,
}

/// `GET /api/token/?p=&order=`
pub async fn list(state: web::Data<AppState>, s: UserSession, q: Query) -> ApiResult<HttpResponse> {
    let rows = tokens::list_by_user(&state.db, s.user.id, page(&q), q_str(&q, "order")).await?;
    Ok(ok(rows.iter().map(token_view).collect::<Vec<_>>()))
}

/// `GET /api/token/search?keyword=`
pub async fn search(
    state: web::Data<AppState>,
    s: UserSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let rows = tokens::search_by_user(&state.db, s.user.id, q_str(&q, "keyword")).await?;
    Ok(ok(rows.iter().map(token_view).collect::<Vec<_>>()))
}

async fn own(state: &AppState, s: &UserSession, id: i64) -> ApiResult<Token> {
    tokens::get_by_id(&state.db, id)
        .await?
        .filter(|t| t.user_id == s.user.id)
        .ok_or_else(|| bad("令牌不存在"))
}

/// `GET /api/token/:id`
pub async fn get(
    state: web::Data<AppState>,
    s: UserSession,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(ok(token_view(&own(&state, &s, id.into_inner()).await?)))
}

/// `POST /api/token/`
pub async fn create(
    state: web::Data<AppState>,
    s: UserSession,
    body: web::Json<TokenBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let name = b.name.unwrap_or_default();
    let remain = b.remain_quota.unwrap_or(0);
    let subnet = b.subnet.unwrap_or_default();
    validate_token(&name, remain, &subnet).map_err(bad)?;
    let id = tokens::insert(
        &state.db,
        &state.db.pool,
        &tokens::NewToken {
            user_id: s.user.id,
            key: keys::token_key(),
            name,
            expired_time: b.expired_time.unwrap_or(-1),
            remain_quota: remain,
            unlimited_quota: b.unlimited_quota.unwrap_or(false),
            models: b.models.unwrap_or_default(),
            subnet,
        },
    )
    .await?;
    let t = own(&state, &s, id).await?;
    Ok(ok(token_view(&t)))
}

/// `PUT /api/token/[?status_only=1]`
pub async fn update(
    state: web::Data<AppState>,
    s: UserSession,
    q: Query,
    body: web::Json<TokenBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let cur = own(&state, &s, b.id).await?;
    let status_only = !q_str(&q, "status_only").is_empty();
    let mut u = tokens::TokenUpdate {
        name: cur.name.clone(),
        status: b.status.unwrap_or(cur.status),
        expired_time: cur.expired_time,
        remain_quota: cur.remain_quota,
        unlimited_quota: cur.unlimited_quota,
        models: cur.models.clone(),
        subnet: cur.subnet.clone(),
    };
    if !status_only {
        u.name = b.name.unwrap_or(u.name);
        u.expired_time = b.expired_time.unwrap_or(u.expired_time);
        u.remain_quota = b.remain_quota.unwrap_or(u.remain_quota);
        u.unlimited_quota = b.unlimited_quota.unwrap_or(u.unlimited_quota);
        u.models = b.models.unwrap_or(u.models);
        u.subnet = b.subnet.unwrap_or(u.subnet);
        validate_token(&u.name, u.remain_quota, &u.subnet).map_err(bad)?;
    }
    if !matches!(u.status, 1..=4) {
        return Err(bad("无效的令牌状态"));
    }
    if u.status == tokens::STATUS_ENABLED {
        if u.expired_time != -1 && u.expired_time <= now() {
            return Err(bad(
                "令牌已过期，无法启用，请先修改令牌过期时间，或者设置为永不过期",
            ));
        }
        if !u.unlimited_quota && u.remain_quota <= 0 {
            return Err(bad(
                "令牌可用额度已用尽，无法启用，请先修改令牌剩余额度，或者设置为无限额度",
            ));
        }
    }
    let delta = u.remain_quota - cur.remain_quota;
    tokens::update(&state.db, cur.id, s.user.id, &u, delta).await?;
    state.relay.ledger.credit(s.user.id, Some(cur.id), delta);
    // The relay caches tokens by key: drop this one so the change holds at once.
    state.relay.invalidate_token(&cur.key);
    Ok(ok(token_view(&own(&state, &s, cur.id).await?)))
}

/// `DELETE /api/token/:id`
pub async fn delete(
    state: web::Data<AppState>,
    s: UserSession,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let key = tokens::get_by_id(&state.db, id)
        .await?
        .filter(|t| t.user_id == s.user.id)
        .map(|t| t.key);
    if !tokens::delete(&state.db, id, s.user.id).await? {
        return Err(bad("令牌不存在"));
    }
    if let Some(key) = key {
        state.relay.invalidate_token(&key);
    }
    Ok(ok_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        assert!(validate_subnets("").is_ok());
        assert!(validate_subnets("10.0.0.0/8, 192.168.1.1,::1/128").is_ok());
        assert!(validate_subnets("10.0.0.0/33").is_err());
        assert!(validate_subnets("nonsense").is_err());
        assert!(validate_subnets("1.2.3.4/x").is_err());
        assert!(validate_token(&"n".repeat(31), 0, "").is_err());
        assert!(validate_token("ok", -1, "").is_err());
    }
}
