//! The management API under `/api`: One API's routes, methods and `{success, message, data}`
//! envelope. Handlers are thin: extract, call one domain function, wrap.

pub mod channel;
pub mod group;
pub mod log;
pub mod misc;
pub mod option;
pub mod rate_limit;
pub mod redemption;
pub mod token;
pub mod user;

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use crate::options::Options;
use crate::state::AppState;
use crate::store::logs::{self, Log};

/// `{"success":true,"message":"","data":...}`
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "success": true, "message": "", "data": data }))
}

/// `{"success":true,"message":""}` with no data.
pub fn ok_empty() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "success": true, "message": "" }))
}

/// Query parameters, read leniently as One API does (a bad number counts as absent).
pub type Query = web::Query<HashMap<String, String>>;

/// A string query parameter ("" when absent).
pub fn q_str<'a>(q: &'a Query, name: &str) -> &'a str {
    q.get(name).map(String::as_str).unwrap_or("")
}

/// An integer query parameter (0 when absent or not a number).
pub fn q_i64(q: &Query, name: &str) -> i64 {
    q_str(q, name).trim().parse().unwrap_or(0)
}

/// The 0-based page `p` (negative counts as 0, capped to keep offsets sane).
pub fn page(q: &Query) -> i64 {
    q_i64(q, "p").clamp(0, 1_000_000)
}

/// A quota as One API writes it in log texts.
pub fn log_quota(o: &Options, quota: i64) -> String {
    if o.bool("DisplayInCurrencyEnabled") {
        format!("＄{:.6} 额度", quota as f64 / o.quota_per_unit())
    } else {
        format!("{quota} 点额度")
    }
}

/// Writes a log row to the log database; a failure is logged, never shown to the caller.
pub async fn write_log(
    state: &AppState,
    user_id: i64,
    username: &str,
    kind: i64,
    content: String,
    quota: i64,
) {
    let row = Log {
        user_id,
        username: username.to_string(),
        created_at: crate::store::now(),
        r#type: kind,
        content,
        quota,
        ..Default::default()
    };
    if let Err(e) = logs::insert(&state.log_db, &row).await {
        tracing::warn!(error = %e, "cannot write a log row");
    }
}

/// The route table of `/api` (the only place its paths appear).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/status", web::get().to(misc::status))
        .route("/notice", web::get().to(misc::notice))
        .route("/about", web::get().to(misc::about))
        .route("/home_page_content", web::get().to(misc::home_page_content))
        .route("/models", web::get().to(channel::models_by_type))
        .route("/group/", web::get().to(group::list))
        .route("/topup", web::post().to(user::admin_topup))
        .route("/reset_password", web::get().to(user::reset_password))
        .route("/user/reset", web::post().to(user::reset_password_confirm))
        .route("/verification", web::get().to(user::send_verification))
        // Accounts
        .route("/user/register", web::post().to(user::register))
        .route("/user/login", web::post().to(user::login))
        .route("/user/logout", web::get().to(user::logout))
        .route("/user/self", web::get().to(user::get_self))
        .route("/user/self", web::put().to(user::update_self))
        .route("/user/self", web::delete().to(user::delete_self))
        .route("/user/token", web::get().to(user::generate_access_token))
        .route("/user/aff", web::get().to(user::get_aff_code))
        .route("/user/dashboard", web::get().to(user::dashboard))
        .route(
            "/user/available_models",
            web::get().to(user::available_models),
        )
        .route("/user/topup", web::post().to(user::redeem))
        // Users admin
        .route("/user/", web::get().to(user::list))
        .route("/user/search", web::get().to(user::search))
        .route("/user/manage", web::post().to(user::manage))
        .route("/user/", web::post().to(user::create))
        .route("/user/", web::put().to(user::update))
        .route("/user/{id}", web::get().to(user::get))
        .route("/user/{id}", web::delete().to(user::delete))
        // Options
        .route("/option/", web::get().to(option::list))
        .route("/option/", web::put().to(option::update))
        // Channels
        .route("/channel/", web::get().to(channel::list))
        .route("/channel/search", web::get().to(channel::search))
        .route("/channel/models", web::get().to(channel::models))
        .route("/channel/test", web::get().to(channel::test_all))
        .route("/channel/test/{id}", web::get().to(channel::test))
        .route(
            "/channel/fetch_models/{id}",
            web::get().to(channel::fetch_models),
        )
        .route(
            "/channel/update_balance",
            web::get().to(channel::update_all_balances),
        )
        .route(
            "/channel/update_balance/{id}",
            web::get().to(channel::update_balance),
        )
        .route(
            "/channel/disabled",
            web::delete().to(channel::delete_disabled),
        )
        .route("/channel/", web::post().to(channel::create))
        .route("/channel/", web::put().to(channel::update))
        .route("/channel/{id}", web::get().to(channel::get))
        .route("/channel/{id}", web::delete().to(channel::delete))
        // Tokens
        .route("/token/", web::get().to(token::list))
        .route("/token/search", web::get().to(token::search))
        .route("/token/", web::post().to(token::create))
        .route("/token/", web::put().to(token::update))
        .route("/token/{id}", web::get().to(token::get))
        .route("/token/{id}", web::delete().to(token::delete))
        // Redemption codes
        .route("/redemption/", web::get().to(redemption::list))
        .route("/redemption/search", web::get().to(redemption::search))
        .route("/redemption/", web::post().to(redemption::create))
        .route("/redemption/", web::put().to(redemption::update))
        .route("/redemption/{id}", web::get().to(redemption::get))
        .route("/redemption/{id}", web::delete().to(redemption::delete))
        // Logs
        .route("/log/", web::get().to(log::list))
        .route("/log/", web::delete().to(log::delete_old))
        .route("/log/stat", web::get().to(log::stat))
        .route("/log/self/stat", web::get().to(log::self_stat))
        .route("/log/search", web::get().to(log::search))
        .route("/log/self", web::get().to(log::list_self))
        .route("/log/self/search", web::get().to(log::search_self));
}
