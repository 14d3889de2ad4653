//! Accounts: login, logout, self.

use actix_session::Session;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::api::{ok, ok_empty};
use crate::auth::password::{self, Verified};
use crate::auth::{UserSession, session};
use crate::error::{ApiResult, AppError};
use crate::state::AppState;
use crate::store::users::{self, STATUS_ENABLED, User};

#[derive(Deserialize)]
pub struct LoginBody {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// The user as the dashboard sees it: secrets blanked, One API's field names.
pub fn user_view(u: &User) -> serde_json::Value {
    json!({
        "id": u.id,
        "username": u.username,
        "password": "",
        "display_name": u.display_name,
        "role": u.role,
        "status": u.status,
        "email": u.email,
        "github_id": u.github_id,
        "wechat_id": u.wechat_id,
        "lark_id": u.lark_id,
        "oidc_id": u.oidc_id,
        "verification_code": "",
        "access_token": "",
        "quota": u.quota,
        "used_quota": u.used_quota,
        "request_count": u.request_count,
        "group": u.group,
        "aff_code": u.aff_code.clone().unwrap_or_default(),
        "inviter_id": u.inviter_id,
    })
}

const BAD_LOGIN: &str = "用户名或密码错误，或用户已被封禁";

/// `POST /api/user/login {username, password}`
pub async fn login(
    state: web::Data<AppState>,
    session: Session,
    body: web::Json<LoginBody>,
) -> ApiResult<HttpResponse> {
    if !state.options.load().bool("PasswordLoginEnabled") {
        return Err(AppError::bad_request("管理员关闭了密码登录").into());
    }
    let body = body.into_inner();
    if body.username.is_empty() || body.password.is_empty() {
        return Err(AppError::bad_request("无效的参数").into());
    }
    let user = users::get_for_login(&state.db, &body.username).await?;
    let Some(user) = user.filter(|u| u.status == STATUS_ENABLED) else {
        return Err(AppError::bad_request(BAD_LOGIN).into());
    };
    match password::verify(&body.password, &user.password).await {
        Verified::No => return Err(AppError::bad_request(BAD_LOGIN).into()),
        Verified::Yes => {}
        Verified::YesRehash => {
            let hash = password::hash(&body.password).await?;
            users::set_password_hash(&state.db, user.id, &hash).await?;
        }
    }
    session::sign_in(&session, &user)?;
    Ok(ok(json!({
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "status": user.status,
    })))
}

/// `GET /api/user/logout`
pub async fn logout(session: Session) -> HttpResponse {
    session.purge();
    ok_empty()
}

/// `GET /api/user/self`
pub async fn get_self(s: UserSession) -> HttpResponse {
    ok(user_view(&s.user))
}
