//! Logs (in `state.log_db`): lists, searches, stats and clean-up.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::api::{Query, ok, page, q_i64, q_str};
use crate::auth::{AdminSession, UserSession};
use crate::error::{ApiResult, AppError};
use crate::state::AppState;
use crate::store::logs::{self, Log, LogFilter};

/// A log row as One API returns it; `hide_id` blanks the id (the user's own views).
pub fn log_view(l: &Log, hide_id: bool) -> serde_json::Value {
    json!({
        "id": if hide_id { 0 } else { l.id },
        "user_id": l.user_id,
        "created_at": l.created_at,
        "type": l.r#type,
        "content": l.content,
        "username": l.username,
        "token_name": l.token_name,
        "model_name": l.model_name,
        "quota": l.quota,
        "prompt_tokens": l.prompt_tokens,
        "completion_tokens": l.completion_tokens,
        "channel": l.channel_id,
        "request_id": l.request_id,
        "elapsed_time": l.elapsed_time,
        "is_stream": l.is_stream,
        "system_prompt_reset": l.system_prompt_reset,
    })
}

fn filter(q: &Query) -> LogFilter {
    LogFilter {
        user_id: None,
        r#type: q_i64(q, "type"),
        start_timestamp: q_i64(q, "start_timestamp"),
        end_timestamp: q_i64(q, "end_timestamp"),
        username: q_str(q, "username").to_string(),
        token_name: q_str(q, "token_name").to_string(),
        model_name: q_str(q, "model_name").to_string(),
        channel: q_i64(q, "channel"),
    }
}

fn views(rows: &[Log], hide_id: bool) -> Vec<serde_json::Value> {
    rows.iter().map(|l| log_view(l, hide_id)).collect()
}

/// `GET /api/log/?p=&type=&start_timestamp=&end_timestamp=&username=&token_name=&model_name=&channel=`
pub async fn list(
    state: web::Data<AppState>,
    _: AdminSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let rows = logs::list(&state.log_db, &filter(&q), page(&q)).await?;
    Ok(ok(views(&rows, false)))
}

/// `GET /api/log/self?...` — own logs (filters as above except username and channel).
pub async fn list_self(
    state: web::Data<AppState>,
    s: UserSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let f = LogFilter {
        user_id: Some(s.user.id),
        username: String::new(),
        channel: 0,
        ..filter(&q)
    };
    let rows = logs::list(&state.log_db, &f, page(&q)).await?;
    Ok(ok(views(&rows, true)))
}

/// `GET /api/log/search?keyword=` — type equals or content starts with the keyword.
pub async fn search(
    state: web::Data<AppState>,
    _: AdminSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let rows = logs::search(&state.log_db, None, q_str(&q, "keyword"), true).await?;
    Ok(ok(views(&rows, false)))
}

/// `GET /api/log/self/search?keyword=` — own logs whose type equals the keyword.
pub async fn search_self(
    state: web::Data<AppState>,
    s: UserSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let rows = logs::search(&state.log_db, Some(s.user.id), q_str(&q, "keyword"), false).await?;
    Ok(ok(views(&rows, true)))
}

/// `GET /api/log/stat?...` → `{quota}`
pub async fn stat(
    state: web::Data<AppState>,
    _: AdminSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let quota = logs::sum_consume_quota(&state.log_db, &filter(&q)).await?;
    Ok(ok(json!({ "quota": quota })))
}

/// `GET /api/log/self/stat?...` → `{quota}` over the caller's consume logs.
pub async fn self_stat(
    state: web::Data<AppState>,
    s: UserSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let f = LogFilter {
        user_id: Some(s.user.id),
        username: String::new(),
        ..filter(&q)
    };
    let quota = logs::sum_consume_quota(&state.log_db, &f).await?;
    Ok(ok(json!({ "quota": quota })))
}

/// `DELETE /api/log/?target_timestamp=` → rows deleted.
pub async fn delete_old(
    state: web::Data<AppState>,
    _: AdminSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let ts = q_i64(&q, "target_timestamp");
    if ts == 0 {
        return Err(AppError::bad_request("target timestamp is required").into());
    }
    Ok(ok(logs::delete_before(&state.log_db, ts).await?))
}
