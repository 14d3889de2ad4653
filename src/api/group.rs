//! Groups: the keys of the `GroupRatio` option.

use actix_web::{HttpResponse, web};

use crate::api::ok;
use crate::auth::AdminSession;
use crate::state::AppState;

/// Group names from a `GroupRatio` JSON object (sorted; empty on bad JSON).
pub fn group_names(group_ratio: &str) -> Vec<String> {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(group_ratio)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// `GET /api/group/`
pub async fn list(_: AdminSession, state: web::Data<AppState>) -> HttpResponse {
    ok(group_names(state.options.load().get("GroupRatio")))
}
