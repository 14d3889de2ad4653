//! One error type for the whole application, rendered in the protocol of the route family that
//! answers: `V1Error` gives OpenAI's `{"error":{"message","type","param","code"}}` under `/v1`,
//! `ApiError` gives One API's `{"success":false,"message":...}` under `/api`.
//!
//! `Internal` never shows its cause to a client: the full chain is logged once, with the request
//! id, and the client sees a generic message carrying that id.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::telemetry::current_request_id;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    InsufficientQuota { message: String, code: &'static str },
    #[error("too many requests")]
    RateLimited,
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("no channel available for model {model} in group {group}")]
    NoAvailableChannel { group: String, model: String },
    /// An upstream answered with an error. `body` is the OpenAI-shaped error object to show.
    #[error("upstream error {status}")]
    Upstream {
        status: u16,
        body: serde_json::Value,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("{message}")]
    NotImplemented { message: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        AppError::BadRequest(msg.into())
    }
    pub fn forbidden(msg: impl Into<String>) -> Self {
        AppError::Forbidden(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        AppError::NotFound(msg.into())
    }

    /// Stable machine code for clients (OpenAI's `code` field). Pinned by a test.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "invalid_request",
            AppError::Unauthorized(_) => "invalid_api_key",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::InsufficientQuota { code, .. } => code,
            AppError::RateLimited => "rate_limit_exceeded",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::NoAvailableChannel { .. } => "model_not_available",
            AppError::Upstream { .. } => "bad_response_status_code",
            AppError::Unavailable(_) => "service_unavailable",
            AppError::NotImplemented { .. } => "api_not_implemented",
            AppError::Internal(_) => "internal_error",
        }
    }

    /// OpenAI's `type` field.
    fn kind(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) | AppError::NotFound(_) | AppError::PayloadTooLarge => {
                "invalid_request_error"
            }
            AppError::Upstream { .. } => "upstream_error",
            _ => "one_api_error",
        }
    }

    /// HTTP status under `/v1`, as One API answers.
    pub fn v1_status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::InsufficientQuota { .. } => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::NoAvailableChannel { .. } | AppError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Upstream { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            AppError::NotImplemented { .. } => StatusCode::NOT_IMPLEMENTED,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// HTTP status under `/api`. One API answers business errors with 200 and `success:false`;
    /// clients read `success`, so we keep that and use real statuses only where One API does
    /// (401, 429) or where nothing was routed (404, 413) or the server failed (500, 503).
    pub fn api_status(&self) -> StatusCode {
        match self {
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        }
    }

    /// The message a client may see. Internal causes are replaced and logged.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "internal server error".to_string()
            }
            AppError::NoAvailableChannel { group, model } => {
                format!("当前分组 {group} 下对于模型 {model} 无可用渠道")
            }
            other => other.to_string(),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => AppError::NotFound("record not found".into()),
            sqlx::Error::PoolTimedOut => {
                AppError::Unavailable("database is busy, try again".into())
            }
            other => AppError::Internal(other.into()),
        }
    }
}

fn with_request_id(msg: String) -> String {
    match current_request_id() {
        Some(id) => format!("{msg} (request id: {id})"),
        None => msg,
    }
}

/// Renders an `AppError` as OpenAI's error object (for `/v1`).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct V1Error(#[from] pub AppError);

impl V1Error {
    /// The error object clients see, also used by the relay to answer after a failed stream.
    pub fn body(&self) -> serde_json::Value {
        let e = &self.0;
        if let AppError::Upstream { body, status } = e {
            let mut obj = body.clone();
            if let Some(m) = obj.get("message").and_then(|m| m.as_str()) {
                obj["message"] = json!(with_request_id(m.to_string()));
            } else {
                obj["message"] = json!(with_request_id(format!(
                    "bad response status code {status}"
                )));
            }
            return json!({ "error": obj });
        }
        let param = match e {
            AppError::NoAvailableChannel { .. } => "model",
            _ => "",
        };
        json!({
            "error": {
                "message": with_request_id(e.public_message()),
                "type": e.kind(),
                "param": param,
                "code": e.code(),
            }
        })
    }
}

impl ResponseError for V1Error {
    fn status_code(&self) -> StatusCode {
        self.0.v1_status()
    }
    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if let AppError::RateLimited = self.0 {
            res.insert_header(("Retry-After", "60"));
        }
        res.json(self.body())
    }
}

impl From<sqlx::Error> for V1Error {
    fn from(e: sqlx::Error) -> Self {
        V1Error(e.into())
    }
}

/// Renders an `AppError` as One API's envelope (for `/api`).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(#[from] pub AppError);

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.api_status()
    }
    fn error_response(&self) -> HttpResponse {
        let mut msg = self.0.public_message();
        if let AppError::Internal(_) = self.0 {
            msg = with_request_id(msg);
        }
        HttpResponse::build(self.status_code()).json(json!({ "success": false, "message": msg }))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError(e.into())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError(AppError::Internal(e))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
pub type V1Result<T> = Result<T, V1Error>;

/// Maps actix's own extractor errors (bad JSON, oversized body, bad query) into our error.
pub fn from_payload_error(err: &impl std::fmt::Display, too_large: bool) -> AppError {
    if too_large {
        AppError::PayloadTooLarge
    } else {
        AppError::BadRequest(format!("invalid request: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_stable() {
        let cases: Vec<(AppError, &str, u16, u16)> = vec![
            (AppError::bad_request("x"), "invalid_request", 400, 200),
            (
                AppError::Unauthorized("x".into()),
                "invalid_api_key",
                401,
                401,
            ),
            (AppError::forbidden("x"), "forbidden", 403, 200),
            (AppError::not_found("x"), "not_found", 404, 200),
            (
                AppError::InsufficientQuota {
                    message: "x".into(),
                    code: "insufficient_user_quota",
                },
                "insufficient_user_quota",
                403,
                200,
            ),
            (AppError::RateLimited, "rate_limit_exceeded", 429, 429),
            (AppError::PayloadTooLarge, "payload_too_large", 413, 413),
            (
                AppError::NoAvailableChannel {
                    group: "default".into(),
                    model: "m".into(),
                },
                "model_not_available",
                503,
                200,
            ),
            (
                AppError::Internal(anyhow::anyhow!("secret cause")),
                "internal_error",
                500,
                500,
            ),
        ];
        for (err, code, v1, api) in cases {
            assert_eq!(err.code(), code);
            assert_eq!(err.v1_status().as_u16(), v1, "{code}");
            assert_eq!(err.api_status().as_u16(), api, "{code}");
        }
    }

    #[test]
    fn internal_cause_is_hidden() {
        let e = V1Error(AppError::Internal(anyhow::anyhow!("password=hunter2")));
        let body = e.body().to_string();
        assert!(!body.contains("hunter2"));
        assert!(body.contains("internal server error"));
    }

    #[test]
    fn v1_shape() {
        let body = V1Error(AppError::Unauthorized("无效的令牌".into())).body();
        assert_eq!(body["error"]["type"], "one_api_error");
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["param"], "");
        assert_eq!(body["error"]["message"], "无效的令牌");
    }
}
