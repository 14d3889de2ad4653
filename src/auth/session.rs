//! Management-API authentication as typed extractors. A handler that takes `AdminSession` cannot
//! be reached by a common user.
//!
//! A caller is identified by the session cookie (signed with `SESSION_SECRET`, carrying only the
//! user id and a session version) or by `Authorization: <access token>`. Role and status are
//! re-read from the store on every request, so a ban or a demotion takes effect at once, and
//! bumping `session_version` logs a user out everywhere.

use actix_session::{Session, SessionExt};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;

use crate::error::{ApiError, AppError};
use crate::state::AppState;
use crate::store::users::{self, ROLE_ADMIN, ROLE_ROOT, STATUS_ENABLED, User};

/// Session keys.
pub const KEY_ID: &str = "id";
pub const KEY_VERSION: &str = "version";

/// Any signed-in, enabled user.
#[derive(Debug, Clone)]
pub struct UserSession {
    pub user: User,
}

/// A signed-in admin (role >= 10).
#[derive(Debug, Clone)]
pub struct AdminSession {
    pub user: User,
}

/// The root user (role >= 100).
#[derive(Debug, Clone)]
pub struct RootSession {
    pub user: User,
}

/// Stores the signed-in user in the session cookie.
pub fn sign_in(session: &Session, user: &User) -> Result<(), AppError> {
    session.renew();
    session
        .insert(KEY_ID, user.id)
        .and_then(|_| session.insert(KEY_VERSION, user.session_version))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("session: {e}")))
}

async fn authenticate(
    state: Option<web::Data<AppState>>,
    session: Session,
    authorization: Option<String>,
) -> Result<User, AppError> {
    let state =
        state.ok_or_else(|| AppError::Internal(anyhow::anyhow!("application state missing")))?;
    let db = &state.db;
    let session_id = session.get::<i64>(KEY_ID).ok().flatten();
    let user = if let Some(id) = session_id {
        let version = session.get::<i64>(KEY_VERSION).ok().flatten().unwrap_or(0);
        match users::get_by_id(db, id).await? {
            Some(u) if u.session_version == version => u,
            _ => {
                session.purge();
                return Err(AppError::Unauthorized("会话已失效，请重新登录".into()));
            }
        }
    } else if let Some(raw) = authorization {
        let token = raw.strip_prefix("Bearer ").unwrap_or(&raw).trim();
        if token.is_empty() {
            return Err(not_signed_in());
        }
        users::get_by_access_token(db, token)
            .await?
            .ok_or_else(|| AppError::forbidden("无权进行此操作，access token 无效"))?
    } else {
        return Err(not_signed_in());
    };
    if user.status != STATUS_ENABLED {
        session.purge();
        return Err(AppError::forbidden("用户已被封禁"));
    }
    Ok(user)
}

fn not_signed_in() -> AppError {
    AppError::Unauthorized("无权进行此操作，未登录且未提供 access token".into())
}

fn extract(req: &HttpRequest) -> LocalBoxFuture<'static, Result<User, AppError>> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let session = req.get_session();
    let authorization = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Box::pin(authenticate(state, session, authorization))
}

fn require(user: User, min_role: i64) -> Result<User, ApiError> {
    if user.role >= min_role {
        Ok(user)
    } else {
        Err(AppError::forbidden("无权进行此操作，权限不足").into())
    }
}

impl FromRequest for UserSession {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let fut = extract(req);
        Box::pin(async move { Ok(UserSession { user: fut.await? }) })
    }
}

impl FromRequest for AdminSession {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let fut = extract(req);
        Box::pin(async move {
            Ok(AdminSession {
                user: require(fut.await?, ROLE_ADMIN)?,
            })
        })
    }
}

impl FromRequest for RootSession {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let fut = extract(req);
        Box::pin(async move {
            Ok(RootSession {
                user: require(fut.await?, ROLE_ROOT)?,
            })
        })
    }
}
