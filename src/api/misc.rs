//! Public informational routes: status, notice, about, home page content.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::api::ok;
use crate::state::AppState;

pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    let o = state.options.load();
    let server_address = match o.get("ServerAddress") {
        "" => format!("http://localhost:{}", state.cfg.port),
        s => s.to_string(),
    };
    ok(json!({
        "version": crate::VERSION,
        "start_time": state.start_time,
        "email_verification": o.bool("EmailVerificationEnabled"),
        "github_oauth": o.bool("GitHubOAuthEnabled"),
        "github_client_id": o.get("GitHubClientId"),
        "lark_client_id": o.get("LarkClientId"),
        "system_name": o.get("SystemName"),
        "logo": o.get("Logo"),
        "footer_html": o.get("Footer"),
        "wechat_qrcode": o.get("WeChatAccountQRCodeImageURL"),
        "wechat_login": o.bool("WeChatAuthEnabled"),
        "server_address": server_address,
        "turnstile_check": o.bool("TurnstileCheckEnabled"),
        "turnstile_site_key": o.get("TurnstileSiteKey"),
        "top_up_link": o.get("TopUpLink"),
        "chat_link": o.get("ChatLink"),
        "quota_per_unit": o.quota_per_unit(),
        "display_in_currency": o.bool("DisplayInCurrencyEnabled"),
        "oidc": o.bool("OidcEnabled"),
        "oidc_client_id": o.get("OidcClientId"),
        "oidc_well_known": o.get("OidcWellKnown"),
        "oidc_authorization_endpoint": o.get("OidcAuthorizationEndpoint"),
        "oidc_token_endpoint": o.get("OidcTokenEndpoint"),
        "oidc_userinfo_endpoint": o.get("OidcUserinfoEndpoint"),
        "register_enabled": o.bool("RegisterEnabled"),
        "password_login_enabled": o.bool("PasswordLoginEnabled"),
        "password_register_enabled": o.bool("PasswordRegisterEnabled"),
    }))
}

pub async fn notice(state: web::Data<AppState>) -> HttpResponse {
    ok(state.options.load().get("Notice"))
}

pub async fn about(state: web::Data<AppState>) -> HttpResponse {
    ok(state.options.load().get("About"))
}

pub async fn home_page_content(state: web::Data<AppState>) -> HttpResponse {
    ok(state.options.load().get("HomePageContent"))
}
