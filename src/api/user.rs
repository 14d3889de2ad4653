//! Accounts: login, logout, self.

use actix_session::Session;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::api::{Query, log_quota, ok, ok_empty, page, q_i64, q_str, write_log};
use crate::auth::password::{self, Verified};
use crate::auth::{AdminSession, UserSession, keys, session};
use crate::error::{ApiResult, AppError};
use crate::state::AppState;
use crate::store::users::{self, STATUS_ENABLED, User};
use crate::store::{abilities, logs, redemptions, tokens, verifications};

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

// ---------------------------------------------------------------------------------------------
// Registration and the caller's own account

const MSG_NO_SMTP: &str = "服务器未配置 SMTP，无法发送邮件";

/// Checks username, password and display name lengths (One API's rules).
pub fn validate_account(
    username: &str,
    password: Option<&str>,
    display_name: &str,
) -> Result<(), String> {
    let n = username.chars().count();
    if n == 0 || n > 12 {
        return Err("用户名长度必须在 1 到 12 个字符之间".into());
    }
    if username
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err("用户名不能包含空白或控制字符".into());
    }
    if let Some(p) = password {
        let n = p.chars().count();
        if !(8..=20).contains(&n) {
            return Err("密码长度必须在 8 到 20 个字符之间".into());
        }
    }
    if display_name.chars().count() > 20 {
        return Err("显示名称不能超过 20 个字符".into());
    }
    Ok(())
}

fn bad(msg: impl Into<String>) -> crate::error::ApiError {
    AppError::bad_request(msg).into()
}

#[derive(Deserialize)]
pub struct RegisterBody {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    verification_code: String,
    #[serde(default)]
    aff_code: String,
}

/// `POST /api/user/register`
pub async fn register(
    state: web::Data<AppState>,
    body: web::Json<RegisterBody>,
) -> ApiResult<HttpResponse> {
    let o = state.options.load();
    if !o.bool("RegisterEnabled") {
        return Err(bad("管理员关闭了新用户注册"));
    }
    if !o.bool("PasswordRegisterEnabled") {
        return Err(bad(
            "管理员关闭了通过密码进行注册，请使用第三方账户验证的形式进行注册",
        ));
    }
    let b = body.into_inner();
    validate_account(&b.username, Some(&b.password), &b.display_name).map_err(bad)?;
    if b.email.chars().count() > 50 {
        return Err(bad("邮箱地址过长"));
    }
    if users::username_taken(&state.db, &b.username, 0).await? {
        return Err(bad("用户名已存在"));
    }
    if o.bool("EmailVerificationEnabled") {
        if b.email.is_empty() || b.verification_code.is_empty() {
            return Err(bad("管理员开启了邮箱验证，请输入邮箱地址和验证码"));
        }
        if !crate::mail::configured(&o) {
            return Err(bad(MSG_NO_SMTP));
        }
        let valid = verifications::take(
            &state.db,
            verifications::PURPOSE_REGISTER,
            &b.email,
            &b.verification_code,
        )
        .await?;
        if !valid {
            return Err(bad("验证码错误或已过期"));
        }
    }
    let inviter = if b.aff_code.is_empty() {
        None
    } else {
        users::get_by_aff_code(&state.db, &b.aff_code).await?
    };
    let for_new = o.i64("QuotaForNewUser").max(0);
    let for_invitee = if inviter.is_some() {
        o.i64("QuotaForInvitee").max(0)
    } else {
        0
    };
    let hash = password::hash(&b.password).await?;
    let display_name = if b.display_name.is_empty() {
        b.username.clone()
    } else {
        b.display_name
    };
    let new = users::NewUser {
        username: b.username.clone(),
        password_hash: hash,
        display_name,
        role: users::ROLE_COMMON,
        email: b.email,
        access_token: None,
        quota: for_new + for_invitee,
        group: "default".into(),
        aff_code: Some(keys::aff_code()),
        inviter_id: inviter.as_ref().map(|u| u.id).unwrap_or(0),
    };
    let mut tx = state.db.pool.begin().await?;
    let id = users::insert(&state.db, &mut *tx, &new).await?;
    tokens::insert(
        &state.db,
        &mut *tx,
        &tokens::NewToken {
            user_id: id,
            key: keys::token_key(),
            name: "default".into(),
            expired_time: -1,
            remain_quota: 0,
            unlimited_quota: true,
            ..Default::default()
        },
    )
    .await?;
    if let Some(inv) = &inviter {
        let q = o.i64("QuotaForInviter").max(0);
        if q > 0 {
            users::add_quota(&state.db, &mut *tx, inv.id, q).await?;
        }
    }
    tx.commit().await?;
    if let Some(inv) = &inviter {
        state
            .relay
            .ledger
            .credit(inv.id, None, o.i64("QuotaForInviter").max(0));
    }
    if for_new > 0 {
        let msg = format!("新用户注册赠送 {}", log_quota(&o, for_new));
        write_log(&state, id, &b.username, logs::TYPE_SYSTEM, msg, 0).await;
    }
    if for_invitee > 0 {
        let msg = format!("使用邀请码赠送 {}", log_quota(&o, for_invitee));
        write_log(&state, id, &b.username, logs::TYPE_SYSTEM, msg, 0).await;
    }
    if let Some(inv) = &inviter {
        let q = o.i64("QuotaForInviter").max(0);
        if q > 0 {
            let msg = format!("邀请用户赠送 {}", log_quota(&o, q));
            write_log(&state, inv.id, &inv.username, logs::TYPE_SYSTEM, msg, 0).await;
        }
    }
    Ok(ok_empty())
}

/// Checks an address for the verification and reset routes (shape and domain whitelist).
pub fn check_email(o: &crate::options::Options, email: &str) -> Result<(), String> {
    let valid = email.len() <= 50
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
    if !valid {
        return Err("无效的邮箱地址".into());
    }
    if o.bool("EmailDomainRestrictionEnabled") {
        let allowed = o
            .get("EmailDomainWhitelist")
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .any(|d| email.ends_with(&format!("@{d}")));
        if !allowed {
            return Err("管理员启用了邮箱域名白名单，您的邮箱地址的域名不在白名单中".into());
        }
    }
    Ok(())
}

fn random_hex(n: usize) -> String {
    let mut s = keys::redemption_key();
    s.truncate(n);
    s
}

/// `GET /api/verification?email=` — mails a 6-character code valid for 10 minutes.
pub async fn send_verification(state: web::Data<AppState>, q: Query) -> ApiResult<HttpResponse> {
    let o = state.options.load();
    if !crate::mail::configured(&o) {
        return Err(bad(MSG_NO_SMTP));
    }
    let email = q_str(&q, "email").trim().to_string();
    check_email(&o, &email).map_err(bad)?;
    if users::get_by_email(&state.db, &email).await?.is_some() {
        return Err(bad("邮箱地址已被占用"));
    }
    let code = random_hex(6);
    verifications::put(
        &state.db,
        verifications::PURPOSE_REGISTER,
        &email,
        &code,
        600,
    )
    .await?;
    let name = o.get("SystemName");
    let html = format!(
        "<p>您好，你正在进行{name}邮箱验证。</p><p>您的验证码为: <strong>{code}</strong></p>\
         <p>验证码 10 分钟内有效，如果不是本人操作，请忽略。</p>"
    );
    crate::mail::send(&o, &email, &format!("{name}邮箱验证邮件"), html)
        .await
        .map_err(bad)?;
    Ok(ok_empty())
}

/// `GET /api/reset_password?email=` — mails a reset link valid for 10 minutes.
pub async fn reset_password(state: web::Data<AppState>, q: Query) -> ApiResult<HttpResponse> {
    let o = state.options.load();
    if !crate::mail::configured(&o) {
        return Err(bad(MSG_NO_SMTP));
    }
    let email = q_str(&q, "email").trim().to_string();
    check_email(&o, &email).map_err(bad)?;
    if users::get_by_email(&state.db, &email).await?.is_none() {
        return Err(bad("该邮箱地址未注册"));
    }
    let token = keys::redemption_key();
    verifications::put(&state.db, verifications::PURPOSE_RESET, &email, &token, 600).await?;
    let name = o.get("SystemName");
    let base = match o.get("ServerAddress") {
        "" => format!("http://localhost:{}", state.cfg.port),
        s => s.trim_end_matches('/').to_string(),
    };
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let link = format!("{base}/user/reset?email={}&token={token}", enc(&email));
    let html = format!(
        "<p>您好，你正在进行{name}密码重置。</p>\
         <p>点击 <a href='{link}'>此处</a> 进行密码重置。</p>\
         <p>如果链接无法点击，请尝试复制以下链接到浏览器中打开：<br>{link}</p>\
         <p>重置链接 10 分钟内有效，如果不是本人操作，请忽略。</p>"
    );
    crate::mail::send(&o, &email, &format!("{name}密码重置"), html)
        .await
        .map_err(bad)?;
    Ok(ok_empty())
}

#[derive(Deserialize)]
pub struct ResetBody {
    #[serde(default)]
    email: String,
    #[serde(default)]
    token: String,
    /// Tollgate extension: the new password; when absent a random one is mailed.
    #[serde(default)]
    password: String,
}

/// `POST /api/user/reset {email, token[, password]}` — the new password is never returned.
pub async fn reset_password_confirm(
    state: web::Data<AppState>,
    body: web::Json<ResetBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let o = state.options.load();
    if b.email.is_empty() || b.token.is_empty() {
        return Err(bad("无效的参数"));
    }
    if !b.password.is_empty() {
        validate_account("x", Some(&b.password), "").map_err(bad)?;
    } else if !crate::mail::configured(&o) {
        return Err(bad(MSG_NO_SMTP));
    }
    let user = users::get_by_email(&state.db, &b.email)
        .await?
        .ok_or_else(|| bad("重置链接非法或已过期"))?;
    if !verifications::take(&state.db, verifications::PURPOSE_RESET, &b.email, &b.token).await? {
        return Err(bad("重置链接非法或已过期"));
    }
    let (new_password, mail_it) = if b.password.is_empty() {
        let mut p = keys::aff_code();
        p.push_str(&keys::aff_code()[..4]);
        (p, true)
    } else {
        (b.password, false)
    };
    let hash = password::hash(&new_password).await?;
    users::update_profile(
        &state.db,
        user.id,
        &users::ProfileUpdate {
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            password_hash: Some(hash),
        },
    )
    .await?;
    if mail_it {
        let name = o.get("SystemName");
        let html = format!(
            "<p>您的 {name} 账户 {} 的新密码为：<strong>{new_password}</strong></p><p>请登录后尽快修改密码。</p>",
            user.username
        );
        crate::mail::send(&o, &b.email, &format!("{name}新密码"), html)
            .await
            .map_err(bad)?;
    }
    Ok(ok_empty())
}

#[derive(Deserialize)]
pub struct SelfBody {
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    password: String,
}

/// `PUT /api/user/self {username, display_name, password?}`
pub async fn update_self(
    state: web::Data<AppState>,
    s: UserSession,
    session: Session,
    body: web::Json<SelfBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let pw = (!b.password.is_empty()).then_some(b.password.as_str());
    validate_account(&b.username, pw, &b.display_name).map_err(bad)?;
    if users::username_taken(&state.db, &b.username, s.user.id).await? {
        return Err(bad("用户名已存在"));
    }
    let password_hash = match pw {
        Some(p) => Some(password::hash(p).await?),
        None => None,
    };
    let changed_password = password_hash.is_some();
    users::update_profile(
        &state.db,
        s.user.id,
        &users::ProfileUpdate {
            username: b.username,
            display_name: b.display_name,
            password_hash,
        },
    )
    .await?;
    if changed_password {
        // Other sessions end; this one continues under the new version.
        if let Some(u) = users::get_by_id(&state.db, s.user.id).await? {
            session::sign_in(&session, &u)?;
        }
    }
    Ok(ok_empty())
}

/// `DELETE /api/user/self`
pub async fn delete_self(
    state: web::Data<AppState>,
    s: UserSession,
    session: Session,
) -> ApiResult<HttpResponse> {
    if s.user.role >= users::ROLE_ROOT {
        return Err(bad("不能删除超级管理员账户"));
    }
    users::soft_delete(&state.db, s.user.id).await?;
    state.relay.invalidate_user(s.user.id);
    session.purge();
    Ok(ok_empty())
}

/// `GET /api/user/token` — a new access token, returned once.
pub async fn generate_access_token(
    state: web::Data<AppState>,
    s: UserSession,
) -> ApiResult<HttpResponse> {
    let token = keys::access_token();
    users::set_access_token(&state.db, s.user.id, &token).await?;
    Ok(ok(token))
}

/// `GET /api/user/aff`
pub async fn get_aff_code(state: web::Data<AppState>, s: UserSession) -> ApiResult<HttpResponse> {
    if let Some(code) = s.user.aff_code.filter(|c| !c.is_empty()) {
        return Ok(ok(code));
    }
    let code = keys::aff_code();
    users::set_aff_code(&state.db, s.user.id, &code).await?;
    Ok(ok(code))
}

/// `YYYY-MM-DD` of a unix time (UTC).
pub fn utc_day(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `GET /api/user/dashboard[?start_timestamp=&end_timestamp=]` — own consumption per day and
/// model, the last 7 UTC days by default.
pub async fn dashboard(
    state: web::Data<AppState>,
    s: UserSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let now = crate::store::now();
    let today = now - now.rem_euclid(86_400);
    let start = match q_i64(&q, "start_timestamp") {
        0 => today - 6 * 86_400,
        t => t,
    };
    let end = match q_i64(&q, "end_timestamp") {
        0 => today + 86_400 - 1,
        t => t,
    };
    let rows = logs::daily_stats(&state.log_db, s.user.id, start, end).await?;
    let data: Vec<_> = rows
        .into_iter()
        .map(|r| {
            json!({
                "Day": utc_day(r.day_start),
                "ModelName": r.model_name,
                "RequestCount": r.request_count,
                "Quota": r.quota,
                "PromptTokens": r.prompt_tokens,
                "CompletionTokens": r.completion_tokens,
            })
        })
        .collect();
    Ok(ok(data))
}

/// `GET /api/user/available_models`
pub async fn available_models(
    state: web::Data<AppState>,
    s: UserSession,
) -> ApiResult<HttpResponse> {
    Ok(ok(
        abilities::models_for_group(&state.db, &s.user.group).await?
    ))
}

#[derive(Deserialize)]
pub struct RedeemBody {
    #[serde(default)]
    key: String,
}

/// `POST /api/user/topup {key}` — redeems a code: claim, credit and log in one transaction.
pub async fn redeem(
    state: web::Data<AppState>,
    s: UserSession,
    body: web::Json<RedeemBody>,
) -> ApiResult<HttpResponse> {
    let key = body.into_inner().key.trim().to_string();
    if key.is_empty() {
        return Err(bad("请输入兑换码"));
    }
    let o = state.options.load();
    let same_db = state.cfg.log_sql_dsn.is_none();
    let mut tx = state.db.pool.begin().await?;
    let quota = match redemptions::claim(&state.db, &mut tx, &key, s.user.id).await? {
        redemptions::Claim::Claimed(q) => q,
        redemptions::Claim::NotFound => return Err(bad("兑换失败，无效的兑换码")),
        redemptions::Claim::AlreadyUsed => return Err(bad("兑换失败，该兑换码已被使用")),
    };
    let log = logs::Log {
        user_id: s.user.id,
        username: s.user.username.clone(),
        created_at: crate::store::now(),
        r#type: logs::TYPE_TOPUP,
        content: format!("通过兑换码充值 {}", log_quota(&o, quota)),
        quota,
        ..Default::default()
    };
    if same_db {
        logs::insert_many(&state.db, &mut tx, vec![log]).await?;
        tx.commit().await?;
    } else {
        tx.commit().await?;
        if let Err(e) = logs::insert(&state.log_db, &log).await {
            tracing::warn!(error = %e, "cannot write the top-up log");
        }
    }
    state.relay.ledger.credit(s.user.id, None, quota);
    Ok(ok(quota))
}

// ---------------------------------------------------------------------------------------------
// Users admin

/// Whether `caller` may manage `target`: root manages everyone (itself included; the actions
/// that would disable, delete or demote root are refused separately), admins only lower roles.
fn may_manage(caller: &User, target: &User) -> bool {
    caller.role >= users::ROLE_ROOT || (caller.id != target.id && target.role < caller.role)
}

async fn live_user(state: &AppState, id: i64) -> ApiResult<User> {
    users::get_by_id(&state.db, id)
        .await?
        .filter(|u| u.status != users::STATUS_DELETED)
        .ok_or_else(|| bad("用户不存在"))
}

/// `GET /api/user/?p=&order=`
pub async fn list(
    state: web::Data<AppState>,
    _: AdminSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let rows = users::list(&state.db, page(&q), q_str(&q, "order")).await?;
    Ok(ok(rows.iter().map(user_view).collect::<Vec<_>>()))
}

/// `GET /api/user/search?keyword=`
pub async fn search(
    state: web::Data<AppState>,
    _: AdminSession,
    q: Query,
) -> ApiResult<HttpResponse> {
    let rows = users::search(&state.db, q_str(&q, "keyword")).await?;
    Ok(ok(rows.iter().map(user_view).collect::<Vec<_>>()))
}

/// `GET /api/user/:id`
pub async fn get(
    state: web::Data<AppState>,
    a: AdminSession,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let target = live_user(&state, id.into_inner()).await?;
    if target.id != a.user.id && !may_manage(&a.user, &target) {
        return Err(bad("无权获取同级或更高等级用户的信息"));
    }
    Ok(ok(user_view(&target)))
}

#[derive(Deserialize)]
pub struct CreateBody {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: Option<i64>,
}

/// `POST /api/user/ {username, password, display_name?, role?}` — creates a common user.
pub async fn create(
    state: web::Data<AppState>,
    a: AdminSession,
    body: web::Json<CreateBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    validate_account(&b.username, Some(&b.password), &b.display_name).map_err(bad)?;
    if b.role.unwrap_or(users::ROLE_COMMON) >= a.user.role {
        return Err(bad("无法创建权限大于等于自己的用户"));
    }
    if users::username_taken(&state.db, &b.username, 0).await? {
        return Err(bad("用户名已存在"));
    }
    let hash = password::hash(&b.password).await?;
    let display_name = if b.display_name.is_empty() {
        b.username.clone()
    } else {
        b.display_name
    };
    users::insert(
        &state.db,
        &state.db.pool,
        &users::NewUser {
            username: b.username,
            password_hash: hash,
            display_name,
            role: users::ROLE_COMMON,
            aff_code: Some(keys::aff_code()),
            group: "default".into(),
            ..Default::default()
        },
    )
    .await?;
    Ok(ok_empty())
}

#[derive(Deserialize)]
pub struct UpdateBody {
    id: i64,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    password: String,
    #[serde(default)]
    quota: Option<i64>,
    #[serde(default)]
    group: Option<String>,
}

/// `PUT /api/user/` — only username, display name, password (when non-empty), quota and group.
pub async fn update(
    state: web::Data<AppState>,
    a: AdminSession,
    body: web::Json<UpdateBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let target = live_user(&state, b.id).await?;
    if !may_manage(&a.user, &target) {
        return Err(bad("无权更新同权限等级或更高权限等级的用户信息"));
    }
    let username = b.username.unwrap_or(target.username.clone());
    let display_name = b.display_name.unwrap_or(target.display_name.clone());
    let pw = (!b.password.is_empty()).then_some(b.password.as_str());
    validate_account(&username, pw, &display_name).map_err(bad)?;
    let quota = b.quota.unwrap_or(target.quota);
    if quota < 0 {
        return Err(bad("额度不能为负数"));
    }
    let group = b.group.unwrap_or(target.group.clone());
    if group.trim().is_empty() || group.chars().count() > 64 {
        return Err(bad("无效的分组"));
    }
    if users::username_taken(&state.db, &username, target.id).await? {
        return Err(bad("用户名已存在"));
    }
    let password_hash = match pw {
        Some(p) => Some(password::hash(p).await?),
        None => None,
    };
    let upd = users::ProfileUpdate {
        username,
        display_name,
        password_hash,
    };
    // The edit moves the quota by the difference, so that requests settled meanwhile still count.
    let delta = quota - target.quota;
    users::admin_update(&state.db, &state.db.pool, target.id, &upd, delta, &group).await?;
    state.relay.ledger.credit(target.id, None, delta);
    state.relay.invalidate_user(target.id);
    if quota != target.quota {
        let o = state.options.load();
        let msg = format!(
            "管理员将用户额度从 {}修改为 {}",
            log_quota(&o, target.quota),
            log_quota(&o, quota)
        );
        write_log(&state, target.id, &upd.username, logs::TYPE_MANAGE, msg, 0).await;
    }
    let fresh = live_user(&state, target.id).await?;
    Ok(ok(user_view(&fresh)))
}

#[derive(Deserialize)]
pub struct ManageBody {
    #[serde(default)]
    username: String,
    #[serde(default)]
    action: String,
}

/// `POST /api/user/manage {username, action}` — disable, enable, delete, promote, demote.
pub async fn manage(
    state: web::Data<AppState>,
    a: AdminSession,
    body: web::Json<ManageBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let target = users::get_by_username(&state.db, &b.username)
        .await?
        .filter(|u| u.status != users::STATUS_DELETED)
        .ok_or_else(|| bad("用户不存在"))?;
    if !may_manage(&a.user, &target) {
        return Err(bad("无权更新同权限等级或更高权限等级的用户信息"));
    }
    let db = &state.db;
    match b.action.as_str() {
        "disable" => {
            if target.role >= users::ROLE_ROOT {
                return Err(bad("无法禁用超级管理员用户"));
            }
            users::set_status(db, target.id, users::STATUS_DISABLED).await?;
        }
        "enable" => {
            users::set_status(db, target.id, users::STATUS_ENABLED).await?;
        }
        "delete" => {
            if target.role >= users::ROLE_ROOT {
                return Err(bad("无法删除超级管理员用户"));
            }
            users::soft_delete(db, target.id).await?;
        }
        "promote" => {
            if a.user.role < users::ROLE_ROOT {
                return Err(bad("普通管理员用户无法提升其他用户为管理员"));
            }
            if target.role >= users::ROLE_ADMIN {
                return Err(bad("该用户已经是管理员"));
            }
            users::set_role(db, target.id, users::ROLE_ADMIN, false).await?;
        }
        "demote" => {
            if target.role >= users::ROLE_ROOT {
                return Err(bad("无法降级超级管理员用户"));
            }
            if target.role == users::ROLE_COMMON {
                return Err(bad("该用户已经是普通用户"));
            }
            users::set_role(db, target.id, users::ROLE_COMMON, true).await?;
        }
        _ => return Err(bad("无效的参数")),
    }
    state.relay.invalidate_user(target.id);
    let after = users::get_by_id(db, target.id).await?.unwrap_or(target);
    Ok(ok(json!({ "role": after.role, "status": after.status })))
}

/// `DELETE /api/user/:id` — soft delete, with the same guards as `manage`.
pub async fn delete(
    state: web::Data<AppState>,
    a: AdminSession,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let target = live_user(&state, id.into_inner()).await?;
    if !may_manage(&a.user, &target) {
        return Err(bad("无权删除同权限等级或更高权限等级的用户"));
    }
    if target.role >= users::ROLE_ROOT {
        return Err(bad("无法删除超级管理员用户"));
    }
    users::soft_delete(&state.db, target.id).await?;
    state.relay.invalidate_user(target.id);
    Ok(ok_empty())
}

#[derive(Deserialize)]
pub struct TopupBody {
    user_id: i64,
    quota: i64,
    #[serde(default)]
    remark: String,
}

/// `POST /api/topup {user_id, quota, remark}` — admin top-up with a top-up log.
pub async fn admin_topup(
    state: web::Data<AppState>,
    _: AdminSession,
    body: web::Json<TopupBody>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    if b.quota < 0 {
        return Err(bad("quota 不能为负数！"));
    }
    let target = live_user(&state, b.user_id).await?;
    users::add_quota(&state.db, &state.db.pool, target.id, b.quota).await?;
    state.relay.ledger.credit(target.id, None, b.quota);
    let o = state.options.load();
    let content = if b.remark.is_empty() {
        format!("通过 API 充值 {}", log_quota(&o, b.quota))
    } else {
        b.remark
    };
    write_log(
        &state,
        target.id,
        &target.username,
        logs::TYPE_TOPUP,
        content,
        b.quota,
    )
    .await;
    Ok(ok_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_rules() {
        assert!(validate_account("alice", Some("12345678"), "").is_ok());
        assert!(validate_account("", Some("12345678"), "").is_err());
        assert!(validate_account("abcdefghijklm", Some("12345678"), "").is_err());
        assert!(validate_account("alice", Some("1234567"), "").is_err());
        assert!(validate_account("alice", Some(&"x".repeat(21)), "").is_err());
        assert!(validate_account("alice", None, &"d".repeat(21)).is_err());
        assert!(validate_account("a b", None, "").is_err());
    }

    #[test]
    fn days() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(1_700_000_000), "2023-11-14");
        assert_eq!(utc_day(951_782_400), "2000-02-29");
    }
}
