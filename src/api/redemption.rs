//! Redemption codes (admin). Redeeming is `POST /api/user/topup` (see `user::redeem`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::api::{Query, ok, ok_empty, page, q_str};
use crate::auth::{AdminSession, keys};
use crate::error::{ApiError, ApiResult, AppError};
use crate::state::AppState;
use crate::store::redemptions::{self, Redemption};

fn bad(msg: impl Into<String>) -> ApiError {
    AppError::bad_request(msg).into()
}

pub fn redemption_view(r: &Redemption) -> serde_json::Value {
    json!({
        "id": r.id,
        "user_id": r.user_id,
        "key": r.key,
        "status": r.status,
        "name": r.name,
        "quota": r.quota,
        "created_time": r.created_time,
        "redeemed_time": r.redeemed_time,
        "used_user_id": r.used_user_id,
    })
}

/// One API's rules for a batch of codes.
pub fn validate_batch(name: &str, count: i64, quota: i64) -> Result<(), String> {
    let n = name.chars().count();
    if n == 0 || n > 20 {
        return Err("兑换码名称长度必须在1-20之间".into());
    }
    if count <= 0 {
        return Err("兑换码个数必须大于0".into());
    }
    if count > 100 {
        return Err("一次兑换码批量生成的个数不能大于 100".into());
    }
    if quota <= 0 {
        return Err("兑换码额度必须大于0".into());
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct RedemptionBody {
    #[serde(default)]
    id: i64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    count: i64,
    #[serde(default)]
    quota: Option<i64>,
    #[serde(default)]
    status: Option<i64>,
}

/// `GET /api/redemption/?p=`
pub async fn list(
    state: web::Data<AppState>,
    _: AdminSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let rows = redemptions::list(&state.db, page(&q)).await?;
    Ok(ok(rows.iter().map(redemption_view).collect::<Vec<_>>()))
}

/// `GET /api/redemption/search?keyword=`
pub async fn search(
    state: web::Data<AppState>,
    _: AdminSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let rows = redemptions::search(&state.db, q_str(&q, "keyword")).await?;
    Ok(ok(rows.iter().map(redemption_view).collect::<Vec<_>>()))
}

async fn find(state: &AppState, id: i64) -> ApiResult<Redemption> {
    redemptions::get_by_id(&state.db, id)
        .await?
        .ok_or_else(|| bad("兑换码不存在"))
}

/// `GET /api/redemption/:id`
pub async fn get(
    state: web::Data<AppState>,
    _: AdminSession,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(ok(redemption_view(&find(&state, id.into_inner()).await?)))
}

/// `POST /api/redemption/ {name, count, quota}` → the new keys.
pub async fn create(
    state: web::Data<AppState>,
    a: AdminSession,
    body: web::Json<RedemptionBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let name = b.name.unwrap_or_default();
    let quota = b.quota.unwrap_or(0);
    validate_batch(&name, b.count, quota).map_err(bad)?;
    let keys: Vec<String> = (0..b.count).map(|_| keys::redemption_key()).collect();
    redemptions::insert_many(&state.db, a.user.id, &name, quota, &keys).await?;
    Ok(ok(keys))
}

/// `PUT /api/redemption/[?status_only=1]`
pub async fn update(
    state: web::Data<AppState>,
    _: AdminSession,
    q: Query,
    body: web::Json<RedemptionBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let cur = find(&state, b.id).await?;
    let status = b.status.unwrap_or(cur.status);
    if !matches!(status, 1..=3) {
        return Err(bad("无效的状态"));
    }
    let (name, quota) = if q_str(&q, "status_only").is_empty() {
        let name = b.name.unwrap_or(cur.name.clone());
        let quota = b.quota.unwrap_or(cur.quota);
        validate_batch(&name, 1, quota).map_err(bad)?;
        (name, quota)
    } else {
        (cur.name.clone(), cur.quota)
    };
    redemptions::update(&state.db, cur.id, &name, quota, status).await?;
    Ok(ok(redemption_view(&find(&state, cur.id).await?)))
}

/// `DELETE /api/redemption/:id`
pub async fn delete(
    state: web::Data<AppState>,
    _: AdminSession,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    if !redemptions::delete(&state.db, id.into_inner()).await? {
        return Err(bad("兑换码不存在"));
    }
    Ok(ok_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn batch_rules() {
        use super::validate_batch as v;
        assert!(v("gift", 1, 100).is_ok());
        assert!(v("", 1, 100).is_err());
        assert!(v(&"n".repeat(21), 1, 100).is_err());
        assert!(v("gift", 0, 100).is_err());
        assert!(v("gift", 101, 100).is_err());
        assert!(v("gift", 1, 0).is_err());
        assert!(v("gift", 1, -5).is_err());
    }
}
