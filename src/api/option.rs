//! Options (root only).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ok, ok_empty};
use crate::auth::RootSession;
use crate::error::{ApiResult, AppError};
use crate::options::{is_secret, validate};
use crate::state::AppState;

/// `GET /api/option/` → `[{key, value}]` without secrets.
pub async fn list(state: web::Data<AppState>, _: RootSession) -> HttpResponse {
    let o = state.options.load();
    let data: Vec<Value> = o
        .iter()
        .filter(|(k, _)| !is_secret(k))
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect();
    ok(data)
}

#[derive(Deserialize)]
pub struct OptionBody {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Value,
}

/// `PUT /api/option/ {key, value}` — value may be a string, bool or number; stored as a string.
pub async fn update(
    state: web::Data<AppState>,
    _: RootSession,
    body: web::Json<OptionBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let value = match b.value {
        Value::String(s) => s,
        Value::Bool(x) => x.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        _ => return Err(AppError::bad_request("配置项的值必须是字符串、布尔值或数字").into()),
    };
    validate(&state.options.load(), &b.key, &value).map_err(AppError::bad_request)?;
    state.options.set(&state.db, &b.key, &value).await?;
    state.relay.publish("options".into());
    Ok(ok_empty())
}
