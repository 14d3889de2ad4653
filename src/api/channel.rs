//! Channels (admin): CRUD with abilities rebuilt in the same transaction, the model catalogue,
//! tests and balances. Keys are never returned and never logged.

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{Query, ok, ok_empty, page, q_str};
use crate::auth::{AdminSession, UserSession};
use crate::channel::catalog;
use crate::error::{ApiError, ApiResult, AppError};
use crate::state::AppState;
use crate::store::channels::{self, Channel};
use crate::store::logs;

fn bad(msg: impl Into<String>) -> ApiError {
    AppError::bad_request(msg).into()
}

/// The channel without its key.
pub fn channel_view(c: &Channel) -> Value {
    json!({
        "id": c.id,
        "type": c.r#type,
        "key": "",
        "status": c.status,
        "name": c.name,
        "weight": c.weight,
        "created_time": c.created_time,
        "test_time": c.test_time,
        "response_time": c.response_time,
        "base_url": c.base_url,
        "other": c.other,
        "balance": c.balance,
        "balance_updated_time": c.balance_updated_time,
        "models": c.models,
        "group": c.group,
        "used_quota": c.used_quota,
        "model_mapping": c.model_mapping,
        "priority": c.priority,
        "config": c.config,
        "system_prompt": c.system_prompt,
    })
}

/// Checks the fields a channel must satisfy before it is stored.
pub fn validate_channel(c: &Channel) -> Result<(), String> {
    if catalog::get(c.r#type).is_none() {
        return Err(format!("未知的渠道类型：{}", c.r#type));
    }
    if !matches!(c.status, 1..=3) {
        return Err("无效的渠道状态".into());
    }
    if !c.model_mapping.trim().is_empty() {
        let v: Value = serde_json::from_str(&c.model_mapping)
            .map_err(|_| "模型重定向必须是合法的 JSON 对象".to_string())?;
        match v.as_object() {
            Some(m) if m.values().all(Value::is_string) => {}
            _ => return Err("模型重定向必须是字符串到字符串的 JSON 对象".into()),
        }
    }
    if !c.config.trim().is_empty() {
        let v: Value = serde_json::from_str(&c.config)
            .map_err(|_| "config 必须是合法的 JSON 对象".to_string())?;
        if !v.is_object() {
            return Err("config 必须是 JSON 对象".into());
        }
    }
    if c.group.split(',').all(|g| g.trim().is_empty()) {
        return Err("渠道至少需要一个分组".into());
    }
    Ok(())
}

#[derive(Deserialize, Default)]
pub struct ChannelBody {
    #[serde(default)]
    id: i64,
    r#type: Option<i64>,
    key: Option<String>,
    status: Option<i64>,
    name: Option<String>,
    weight: Option<i64>,
    base_url: Option<String>,
    other: Option<String>,
    models: Option<String>,
    group: Option<String>,
    model_mapping: Option<String>,
    priority: Option<i64>,
    config: Option<String>,
    system_prompt: Option<String>,
}

impl ChannelBody {
    /// `base` overlaid with the fields present in the body (an empty key keeps the old key).
    fn merge(self, base: Channel) -> Channel {
        Channel {
            r#type: self.r#type.unwrap_or(base.r#type),
            key: self
                .key
                .filter(|k| !k.trim().is_empty())
                .unwrap_or(base.key),
            status: self.status.unwrap_or(base.status),
            name: self.name.unwrap_or(base.name),
            weight: self.weight.unwrap_or(base.weight),
            base_url: self.base_url.unwrap_or(base.base_url),
            other: self.other.unwrap_or(base.other),
            models: self.models.unwrap_or(base.models),
            group: self.group.unwrap_or(base.group),
            model_mapping: self.model_mapping.unwrap_or(base.model_mapping),
            priority: self.priority.unwrap_or(base.priority),
            config: self.config.unwrap_or(base.config),
            system_prompt: self.system_prompt.unwrap_or(base.system_prompt),
            ..base
        }
    }
}

/// `GET /api/channel/?p=`
pub async fn list(
    state: web::Data<AppState>,
    _: AdminSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let rows = channels::list(&state.db, page(&q)).await?;
    Ok(ok(rows.iter().map(channel_view).collect::<Vec<_>>()))
}

/// `GET /api/channel/search?keyword=`
pub async fn search(
    state: web::Data<AppState>,
    _: AdminSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let rows = channels::search(&state.db, q_str(&q, "keyword")).await?;
    Ok(ok(rows.iter().map(channel_view).collect::<Vec<_>>()))
}

async fn find(state: &AppState, id: i64) -> ApiResult<Channel> {
    channels::get_by_id(&state.db, id)
        .await?
        .ok_or_else(|| bad("渠道不存在"))
}

/// `GET /api/channel/:id`
pub async fn get(
    state: web::Data<AppState>,
    _: AdminSession,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(ok(channel_view(&find(&state, id.into_inner()).await?)))
}

/// Rebuilds the relay's routing table after a channel write, so the change is used at once.
/// A failure is logged: the periodic sync rebuilds it again within `SYNC_FREQUENCY`.
async fn channels_changed(state: &AppState) {
    if let Err(e) = crate::relay::reload_routing(state).await {
        tracing::error!("rebuilding the routing table after a channel change: {e}");
    }
}

/// `POST /api/channel/` — one channel per non-empty line of `key`.
pub async fn create(
    state: web::Data<AppState>,
    _: AdminSession,
    body: web::Json<ChannelBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let keys: Vec<String> = b
        .key
        .clone()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(String::from)
        .collect();
    if keys.is_empty() {
        return Err(bad("渠道密钥不能为空"));
    }
    if keys.len() > 1000 {
        return Err(bad("一次最多添加 1000 个渠道"));
    }
    let base = Channel {
        status: channels::STATUS_ENABLED,
        group: "default".into(),
        ..Default::default()
    };
    let template = ChannelBody { key: None, ..b }.merge(base);
    validate_channel(&template).map_err(bad)?;
    let many = keys.len() > 1;
    let batch: Vec<Channel> = keys
        .into_iter()
        .enumerate()
        .map(|(i, key)| Channel {
            key,
            name: if many {
                format!("{} {}", template.name, i + 1)
            } else {
                template.name.clone()
            },
            ..template.clone()
        })
        .collect();
    channels::insert_many(&state.db, &batch).await?;
    channels_changed(&state).await;
    Ok(ok_empty())
}

/// `PUT /api/channel/` — partial update (`{id, status}` enables/disables).
pub async fn update(
    state: web::Data<AppState>,
    _: AdminSession,
    body: web::Json<ChannelBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let cur = find(&state, b.id).await?;
    let next = b.merge(cur);
    validate_channel(&next).map_err(bad)?;
    channels::update(&state.db, &next).await?;
    channels_changed(&state).await;
    Ok(ok(channel_view(&find(&state, next.id).await?)))
}

/// `DELETE /api/channel/:id`
pub async fn delete(
    state: web::Data<AppState>,
    _: AdminSession,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    if !channels::delete(&state.db, id.into_inner()).await? {
        return Err(bad("渠道不存在"));
    }
    channels_changed(&state).await;
    Ok(ok_empty())
}

/// `DELETE /api/channel/disabled` → how many were deleted.
pub async fn delete_disabled(
    state: web::Data<AppState>,
    _: AdminSession,
) -> ApiResult<HttpResponse> {
    let deleted = channels::delete_disabled(&state.db).await?;
    channels_changed(&state).await;
    Ok(ok(deleted))
}

fn model_object(id: &str, owner: &str) -> Value {
    json!({
        "id": id,
        "object": "model",
        "created": 1626777600,
        "owned_by": owner,
        "root": id,
        "parent": null,
    })
}

/// `GET /api/channel/models` — not enveloped, as One API.
pub async fn models(_: AdminSession) -> HttpResponse {
    let data: Vec<Value> = catalog::all_models()
        .into_iter()
        .map(|(m, owner)| model_object(m, owner))
        .collect();
    HttpResponse::Ok().json(json!({ "object": "list", "data": data }))
}

/// `GET /api/models` — channel type id → model names.
pub async fn models_by_type(_: UserSession) -> HttpResponse {
    let map: BTreeMap<String, Vec<&str>> = catalog::TYPES
        .iter()
        .map(|t| (t.id.to_string(), t.models.to_vec()))
        .collect();
    ok(map)
}

fn base_url(c: &Channel) -> String {
    let base = if c.base_url.trim().is_empty() {
        catalog::get(c.r#type).map(|t| t.base_url).unwrap_or("")
    } else {
        c.base_url.trim()
    };
    base.trim_end_matches('/').to_string()
}

/// `GET /api/channel/fetch_models/:id` — the model ids the upstream lists at `/v1/models`, for
/// the dashboard's "fetch from upstream" (OpenAI-compatible types).
pub async fn fetch_models(
    state: web::Data<AppState>,
    _: AdminSession,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let c = find(&state, id.into_inner()).await?;
    let kind = catalog::get(c.r#type).ok_or_else(|| bad("未知的渠道类型"))?;
    if !kind.openai_compatible {
        return Err(bad(format!(
            "渠道类型 {} 不支持从上游获取模型列表（not supported yet）",
            kind.name
        )));
    }
    let base = base_url(&c);
    if base.is_empty() {
        return Err(bad("渠道未设置 Base URL"));
    }
    let res = state
        .http
        .get(format!("{base}/v1/models"))
        .bearer_auth(c.key.trim())
        .timeout(std::time::Duration::from_secs(15))
        .send()
        .await
        .map_err(|e| bad(format!("请求上游失败：{}", e.without_url())))?;
    let status = res.status().as_u16();
    let body: Value = res
        .json()
        .await
        .map_err(|_| bad(format!("上游返回了无法解析的内容（状态码 {status}）")))?;
    if status != 200 {
        let msg = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("upstream error");
        return Err(bad(format!("上游返回错误（状态码 {status}）：{msg}")));
    }
    let mut ids: Vec<String> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("id").and_then(Value::as_str).map(String::from))
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ok(ids))
}

/// Why a probe failed: the message, and the upstream's HTTP status and `error` object when it
/// answered (0 and null otherwise), from which auto-disable decides.
type ProbeError = (String, u16, Value);

fn local_error(msg: impl Into<String>) -> ProbeError {
    (msg.into(), 0, Value::Null)
}

/// Sends a minimal chat request through the channel's adaptor, translated, signed and sent as a
/// relay call would be (unbilled, as One API's test); Ok(reply).
async fn probe(state: &AppState, c: &Channel, model: &str) -> Result<String, ProbeError> {
    use crate::relay::types::RelayMode;
    use crate::relay::{Ctx, adaptor_for_model, route};

    catalog::get(c.r#type).ok_or_else(|| local_error("未知的渠道类型"))?;
    let channel = route::from_row(c);
    let mapped = channel.map_model(model).to_string();
    // Bedrock derives its URL from the region; every other type needs a base URL.
    if c.r#type != 33 && crate::relay::openai::base_of(c.r#type, &c.base_url).is_empty() {
        return Err(local_error("渠道未设置 Base URL"));
    }
    let request = json!({
        "model": mapped,
        "messages": [{ "role": "user", "content": state.cfg.test_prompt }],
        "max_tokens": 1,
        "stream": false,
    });
    let adaptor = adaptor_for_model(c.r#type, &mapped);
    let ctx = Ctx {
        channel_type: c.r#type,
        base_url: &channel.base_url,
        key: channel.key.trim(),
        api_version: channel.api_version.as_deref(),
        user_id: channel.user_id.as_deref(),
        path: "/v1/chat/completions",
        mode: RelayMode::ChatCompletions,
        model: &mapped,
        stream: false,
        prompt_tokens: 0,
        gemini_version: &state.cfg.gemini_version,
        gemini_safety: &state.cfg.gemini_safety_setting,
        anthropic_version: None,
        anthropic_beta: None,
        request: Some(&request),
        config: Some(&channel.settings).filter(|v| !v.is_null()),
    };
    let body = if adaptor.is_openai() {
        request.clone()
    } else {
        adaptor
            .convert_request(&ctx, request.clone())
            .map_err(|e| local_error(format!("无法转换测试请求：{e}")))?
    };
    let body = bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let mut up = adaptor.build_request(&ctx);
    let mut rb = crate::relay::forward::upstream_call(
        state,
        adaptor,
        &ctx,
        &mut up,
        &body,
        "application/json",
    )
    .timeout(std::time::Duration::from_secs(60));
    // Providers with their own steps (access tokens, a WebSocket, polling) go through them, as
    // a relay call does.
    if crate::relay::exchange::applies(c.r#type) {
        use crate::relay::exchange::{Exchanged, Next, prepare};
        match prepare(state, &ctx, &up, &body, rb).await {
            Next::Send(next) => rb = *next,
            Next::Done(Ok(Exchanged::Full(bytes))) => {
                return answer_of(adaptor, &ctx, reqwest::StatusCode::OK, &bytes);
            }
            Next::Done(Ok(Exchanged::Stream { .. })) => {
                return Err(local_error("上游返回了流式响应"));
            }
            Next::Done(Err(e)) => {
                let msg = message_of(&e.body);
                return Err((format!("HTTP {}: {msg}", e.status), e.status, e.body));
            }
        }
    }
    // Sent by the relay's client, so that a test sees what a relay call would.
    let res = state
        .upstream()
        .send(rb)
        .await
        .map_err(|e| local_error(format!("请求失败：{e}")))?;
    let status = res.status;
    let bytes = res
        .bytes()
        .await
        .map_err(|e| local_error(format!("读取响应失败：{e}")))?;
    answer_of(adaptor, &ctx, status, &bytes)
}

/// The `message` of an OpenAI error object.
fn message_of(error: &Value) -> String {
    error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("未知错误")
        .to_string()
}

/// The probe's reply from the upstream's answer (status and body), or why it failed.
fn answer_of(
    adaptor: &dyn crate::relay::Adaptor,
    ctx: &crate::relay::Ctx<'_>,
    status: reqwest::StatusCode,
    bytes: &[u8],
) -> Result<String, ProbeError> {
    // An error status is kept even when its body is not JSON: a bare 401 still disables.
    if !status.is_success() {
        let error = adaptor.map_error(status.as_u16(), bytes);
        let msg = message_of(&error);
        return Err((format!("HTTP {status}: {msg}"), status.as_u16(), error));
    }
    let v: Value = if adaptor.is_openai() {
        serde_json::from_slice(bytes)
            .map_err(|_| local_error(format!("上游返回了无法解析的响应（HTTP {status}）")))?
    } else {
        // An error inside a 2xx answer (Tencent, Coze, PaLM...) counts as the relay's 502.
        adaptor.convert_response(ctx, bytes).map_err(|e| {
            let msg = message_of(&e);
            (format!("HTTP 502: {msg}"), 502, e)
        })?
    };
    match v["choices"][0]["message"]["content"].as_str() {
        Some(s) => Ok(s.to_string()),
        None => Err(local_error("上游响应中没有 choices[0].message.content")),
    }
}

/// The model a test uses: the requested one when the channel has it, else its first model.
fn test_model(c: &Channel, requested: &str) -> String {
    let models: Vec<&str> = c
        .models
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    let want = if requested.is_empty() {
        "gpt-3.5-turbo"
    } else {
        requested
    };
    if models.contains(&want) || models.is_empty() {
        want.to_string()
    } else {
        models[0].to_string()
    }
}

/// The result of one channel test.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub success: bool,
    /// The reply, or why the test failed.
    pub message: String,
    /// How long the test took, also when it failed.
    pub elapsed_ms: i64,
    /// The upstream's HTTP status when it answered with an error; 0 otherwise.
    pub status: u16,
    /// The upstream's `error` object when it answered with one; null otherwise.
    pub error: Value,
}

/// Tests one channel as `GET /api/channel/test/:id` does: records the response time (on success)
/// and a test log. Changes no status: the batch test (`crate::jobs::channel_test`) decides that.
pub async fn run_test(state: &AppState, c: &Channel, requested: &str) -> TestOutcome {
    let model = test_model(c, requested);
    let started = Instant::now();
    let result = probe(state, c, &model).await;
    let elapsed = started.elapsed().as_millis() as i64;
    let (success, message, ms, status, error) = match result {
        Ok(reply) => (true, reply, elapsed, 0, Value::Null),
        Err((e, status, error)) => (false, e, 0, status, error),
    };
    if success && let Err(e) = channels::set_test_result(&state.db, c.id, ms).await {
        tracing::warn!(error = %e, channel = c.id, "cannot record a channel test");
    }
    let content = if success {
        format!("渠道 {} 测试成功，响应：{}", c.name, message)
    } else {
        format!("渠道 {} 测试失败，错误：{}", c.name, message)
    };
    let row = logs::Log {
        created_at: crate::store::now(),
        r#type: logs::TYPE_TEST,
        content,
        model_name: model,
        channel_id: c.id,
        elapsed_time: ms,
        ..Default::default()
    };
    if let Err(e) = logs::insert(&state.log_db, &row).await {
        tracing::warn!(error = %e, "cannot write a test log");
    }
    TestOutcome {
        success,
        message,
        elapsed_ms: elapsed,
        status,
        error,
    }
}

/// `GET /api/channel/test/:id?model=` → `{success, message, time, modelName}`.
pub async fn test(
    state: web::Data<AppState>,
    _: AdminSession,
    id: web::Path<i64>,
    q: Query,
) -> ApiResult<HttpResponse> {
    let c = find(&state, id.into_inner()).await?;
    let requested = q_str(&q, "model").to_string();
    let t = run_test(&state, &c, &requested).await;
    let time = if t.success {
        t.elapsed_ms as f64 / 1000.0
    } else {
        0.0
    };
    Ok(HttpResponse::Ok().json(json!({
        "success": t.success,
        "message": t.message,
        "time": time,
        "modelName": requested,
    })))
}

/// `GET /api/channel/test[?scope=all|disabled]` — tests in the background, one run at a time
/// (shared with the periodic test), disabling and re-enabling channels as the options say.
pub async fn test_all(
    state: web::Data<AppState>,
    _: AdminSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let Some(running) = crate::jobs::channel_test::Running::acquire() else {
        return Err(bad("测试已在运行中"));
    };
    let only_disabled = q_str(&q, "scope") == "disabled";
    let state = state.get_ref().clone();
    tokio::spawn(async move {
        let _running = running;
        if let Err(e) = crate::jobs::channel_test::test_all_channels(&state, only_disabled).await {
            tracing::warn!(error = %e, "channel test failed");
        }
    });
    Ok(ok_empty())
}

async fn get_json(state: &AppState, url: String, key: &str) -> Result<Value, String> {
    let res = state
        .http
        .get(url)
        .bearer_auth(key.trim())
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("请求失败：{}", e.without_url()))?;
    let status = res.status();
    if !status.is_success() {
        return Err(format!("上游返回 HTTP {status}"));
    }
    res.json()
        .await
        .map_err(|_| "上游返回了无法解析的响应".to_string())
}

/// Whether `fetch_balance` knows the balance API of this channel type.
pub fn has_balance_api(channel_type: i64) -> bool {
    matches!(channel_type, 1 | 8 | 20 | 36 | 44)
}

/// Queries a channel's provider for its balance (USD or the provider's unit).
pub async fn fetch_balance(state: &AppState, c: &Channel) -> Result<f64, String> {
    let base = base_url(c);
    let num = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    match c.r#type {
        1 | 8 => {
            let sub = get_json(
                state,
                format!("{base}/v1/dashboard/billing/subscription"),
                &c.key,
            )
            .await?;
            let hard = num(&sub["hard_limit_usd"]).ok_or("无法解析订阅额度")?;
            let now = crate::store::now();
            let today = crate::api::user::utc_day(now);
            let start = format!("{}-01", &today[..7]);
            let usage = get_json(
                state,
                format!("{base}/v1/dashboard/billing/usage?start_date={start}&end_date={today}"),
                &c.key,
            )
            .await?;
            let used = num(&usage["total_usage"]).unwrap_or(0.0);
            Ok(hard - used / 100.0)
        }
        36 => {
            let v = get_json(state, format!("{base}/user/balance"), &c.key).await?;
            let infos = v["balance_infos"].as_array().ok_or("无法解析余额")?;
            let usd = infos
                .iter()
                .find(|i| i["currency"] == "USD")
                .or(infos.first());
            usd.and_then(|i| num(&i["total_balance"]))
                .ok_or_else(|| "无法解析余额".into())
        }
        20 => {
            let v = get_json(state, format!("{base}/v1/credits"), &c.key).await?;
            let total = num(&v["data"]["total_credits"]).ok_or("无法解析余额")?;
            Ok(total - num(&v["data"]["total_usage"]).unwrap_or(0.0))
        }
        44 => {
            let v = get_json(state, format!("{base}/v1/user/info"), &c.key).await?;
            num(&v["data"]["totalBalance"]).ok_or_else(|| "无法解析余额".into())
        }
        _ => Err("尚未实现".into()),
    }
}

/// `GET /api/channel/update_balance/:id` → `{success, message, balance}`.
pub async fn update_balance(
    state: web::Data<AppState>,
    _: AdminSession,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let c = find(&state, id.into_inner()).await?;
    match fetch_balance(&state, &c).await {
        Ok(balance) => {
            channels::set_balance(&state.db, c.id, balance).await?;
            Ok(HttpResponse::Ok()
                .json(json!({ "success": true, "message": "", "balance": balance })))
        }
        Err(msg) => {
            Ok(HttpResponse::Ok().json(json!({ "success": false, "message": msg, "balance": 0 })))
        }
    }
}

/// `GET /api/channel/update_balance` — updates every enabled channel with a balance API.
pub async fn update_all_balances(
    state: web::Data<AppState>,
    _: AdminSession,
) -> ApiResult<HttpResponse> {
    crate::jobs::balance::update_all_balances(&state).await?;
    Ok(ok_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_rules() {
        let ok = Channel {
            r#type: 1,
            status: 1,
            group: "default".into(),
            ..Default::default()
        };
        assert!(validate_channel(&ok).is_ok());
        let with = |f: fn(&mut Channel)| {
            let mut c = ok.clone();
            f(&mut c);
            validate_channel(&c)
        };
        assert!(with(|c| c.r#type = 999).is_err());
        assert!(with(|c| c.model_mapping = "[1]".into()).is_err());
        assert!(with(|c| c.model_mapping = r#"{"a":1}"#.into()).is_err());
        assert!(with(|c| c.model_mapping = r#"{"a":"b"}"#.into()).is_ok());
        assert!(with(|c| c.config = "nope".into()).is_err());
        assert!(with(|c| c.group = " , ".into()).is_err());
        assert!(with(|c| c.status = 9).is_err());
    }

    #[test]
    fn test_model_choice() {
        let c = Channel {
            models: "a, b".into(),
            ..Default::default()
        };
        assert_eq!(test_model(&c, "b"), "b");
        assert_eq!(test_model(&c, "zz"), "a");
    }
}
