//! The management API under `/api`: One API's routes, methods and `{success, message, data}`
//! envelope. Handlers are thin: extract, call one domain function, wrap.

pub mod misc;
pub mod user;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::json;

/// `{"success":true,"message":"","data":...}`
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "success": true, "message": "", "data": data }))
}

/// `{"success":true,"message":""}` with no data.
pub fn ok_empty() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "success": true, "message": "" }))
}

/// The route table of `/api` (the only place its paths appear).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/status", web::get().to(misc::status))
        .route("/notice", web::get().to(misc::notice))
        .route("/about", web::get().to(misc::about))
        .route("/home_page_content", web::get().to(misc::home_page_content))
        .route("/user/login", web::post().to(user::login))
        .route("/user/logout", web::get().to(user::logout))
        .route("/user/self", web::get().to(user::get_self));
}
