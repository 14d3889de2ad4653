//! The relay's non-forwarding handlers: model lists, One API's dashboard billing endpoints, and
//! the routes One API does not implement.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::auth::{TokenAuth, allowed_models};
use crate::error::{AppError, V1Result};
use crate::state::AppState;
use crate::store::{tokens, users};

const CREATED: i64 = 1_626_777_600;

fn model_object(id: &str, known: bool) -> Value {
    if known {
        json!({
            "id": id, "object": "model", "created": CREATED, "owned_by": owner(id),
            "permission": [{
                "id": "modelperm-LwHkVFn8AcMItP432fKKDIKJ", "object": "model_permission",
                "created": CREATED, "allow_create_engine": true, "allow_sampling": true,
                "allow_logprobs": true, "allow_search_indices": false, "allow_view": true,
                "allow_fine_tuning": false, "organization": "*", "group": null,
                "is_blocking": false,
            }],
            "root": id, "parent": null,
        })
    } else {
        json!({
            "id": id, "object": "model", "created": CREATED, "owned_by": "custom",
            "permission": null, "root": id, "parent": null,
        })
    }
}

fn owner(id: &str) -> &'static str {
    if id.starts_with("claude") {
        "anthropic"
    } else if id.starts_with("gemini") || id.starts_with("PaLM") || id == "aqa" {
        "google"
    } else if id.starts_with("deepseek") {
        "deepseek"
    } else {
        "openai"
    }
}

/// `GET /v1/models`: the models of the user's group, intersected with the token's allow-list.
pub async fn list_models(auth: TokenAuth, state: web::Data<AppState>) -> V1Result<HttpResponse> {
    let table = state.relay.routing.load();
    let mut models = table.group_models(&auth.user.group);
    if let Some(allow) = allowed_models(&auth.token) {
        models.retain(|m| allow.contains(m));
    }
    let ratios = state.relay.ratios(&state.options.load());
    let data: Vec<Value> = models
        .iter()
        .map(|m| model_object(m, ratios.knows(m)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"object": "list", "data": data})))
}

/// `GET /v1/models/{model}`: a model of the user's set, or One API's 200 `model_not_found`.
pub async fn retrieve_model(
    auth: TokenAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> V1Result<HttpResponse> {
    let model = path.into_inner();
    let table = state.relay.routing.load();
    let mut models = table.group_models(&auth.user.group);
    if let Some(allow) = allowed_models(&auth.token) {
        models.retain(|m| allow.contains(m));
    }
    let ratios = state.relay.ratios(&state.options.load());
    if models.contains(&model) || ratios.knows(&model) {
        return Ok(HttpResponse::Ok().json(model_object(&model, ratios.knows(&model))));
    }
    Ok(HttpResponse::Ok().json(json!({"error": {
        "message": format!("The model '{model}' does not exist"),
        "type": "invalid_request_error", "param": "model", "code": "model_not_found",
    }})))
}

/// Current token and user rows (fresh from the database: these endpoints show balances).
async fn fresh(
    state: &AppState,
    auth: &TokenAuth,
) -> Result<(tokens::Token, users::User), AppError> {
    let token = tokens::get_by_id(&state.db, auth.token.id)
        .await?
        .ok_or_else(|| AppError::Unauthorized("无效的令牌".into()))?;
    let user = users::get_by_id(&state.db, auth.user.id)
        .await?
        .ok_or_else(|| AppError::forbidden("用户已被封禁"))?;
    Ok((token, user))
}

/// `GET /dashboard/billing/subscription`
pub async fn subscription(auth: TokenAuth, state: web::Data<AppState>) -> V1Result<HttpResponse> {
    state.relay.flush().await;
    let (token, user) = fresh(&state, &auth).await?;
    let opts = state.options.load();
    let mut amount = if opts.bool("DisplayTokenStatEnabled") {
        if token.unlimited_quota {
            100_000_000.0
        } else {
            (token.remain_quota + token.used_quota) as f64
        }
    } else {
        user.quota as f64
    };
    if opts.bool("DisplayInCurrencyEnabled") && amount != 100_000_000.0 {
        amount /= opts.quota_per_unit();
    }
    let until = if token.expired_time == -1 {
        0
    } else {
        token.expired_time
    };
    Ok(HttpResponse::Ok().json(json!({
        "object": "billing_subscription",
        "has_payment_method": true,
        "soft_limit_usd": amount,
        "hard_limit_usd": amount,
        "system_hard_limit_usd": amount,
        "access_until": until,
    })))
}

/// `GET /dashboard/billing/usage` (in cents).
pub async fn usage(auth: TokenAuth, state: web::Data<AppState>) -> V1Result<HttpResponse> {
    state.relay.flush().await;
    let (token, user) = fresh(&state, &auth).await?;
    let opts = state.options.load();
    let used = if opts.bool("DisplayTokenStatEnabled") {
        token.used_quota
    } else {
        user.used_quota
    };
    Ok(HttpResponse::Ok().json(json!({
        "object": "list",
        "total_usage": used as f64 / opts.quota_per_unit() * 100.0,
    })))
}

/// One API's `RelayNotImplemented`.
pub async fn not_implemented(_auth: TokenAuth) -> V1Result<HttpResponse> {
    Err(AppError::NotImplemented {
        message: "API not implemented".into(),
    }
    .into())
}

/// CORS for the relay as One API: any origin (echoed, with credentials), any header, the usual
/// methods. Browser chat front-ends call `/v1` directly.
/// Preflight requests (`OPTIONS`) are answered here, before routing: a catch-all `OPTIONS` route
/// ahead of the others made every relay request match its pattern first.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let origin = req.headers().get("origin").cloned();
    let mut res = if req.method() == actix_web::http::Method::OPTIONS {
        let res = preflight_response(req.request());
        req.into_response(res).map_into_right_body()
    } else {
        next.call(req).await?.map_into_left_body()
    };
    if let Some(origin) = origin {
        let h = res.headers_mut();
        h.insert(
            HeaderName::from_static("access-control-allow-origin"),
            origin,
        );
        h.insert(
            HeaderName::from_static("access-control-allow-credentials"),
            HeaderValue::from_static("true"),
        );
        h.insert(
            HeaderName::from_static("access-control-allow-methods"),
            HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
        );
        h.insert(
            HeaderName::from_static("access-control-allow-headers"),
            HeaderValue::from_static("*"),
        );
        h.insert(
            HeaderName::from_static("access-control-max-age"),
            HeaderValue::from_static("43200"),
        );
    }
    Ok(res)
}

/// Answers CORS preflight requests (`OPTIONS`) without authentication.
pub async fn preflight(req: HttpRequest) -> HttpResponse {
    preflight_response(&req)
}

fn preflight_response(req: &HttpRequest) -> HttpResponse {
    let mut res = HttpResponse::NoContent();
    if let Some(h) = req.headers().get("access-control-request-headers") {
        res.insert_header(("Access-Control-Allow-Headers", h.clone()));
    }
    res.finish()
}
