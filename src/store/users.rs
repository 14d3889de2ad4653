//! The `users` table: accounts, their wallet (`quota`) and counters.

use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

use super::{Db, now};

pub const ROLE_COMMON: i64 = 1;
pub const ROLE_ADMIN: i64 = 10;
pub const ROLE_ROOT: i64 = 100;

pub const STATUS_ENABLED: i64 = 1;
pub const STATUS_DISABLED: i64 = 2;
pub const STATUS_DELETED: i64 = 3;

/// One row of `users`. `password` holds an argon2 (or imported bcrypt) hash.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password: String,
    pub display_name: String,
    pub role: i64,
    pub status: i64,
    pub email: String,
    pub github_id: String,
    pub wechat_id: String,
    pub lark_id: String,
    pub oidc_id: String,
    pub access_token: Option<String>,
    pub quota: i64,
    pub used_quota: i64,
    pub request_count: i64,
    pub group: String,
    pub aff_code: Option<String>,
    pub inviter_id: i64,
    pub session_version: i64,
    pub created_time: i64,
}

/// Column list for `SELECT`, in `from_row` order.
pub const COLUMNS: &str = r#"id, username, password, display_name, role, status, email, github_id,
 wechat_id, lark_id, oidc_id, access_token, quota, used_quota, request_count, "group", aff_code,
 inviter_id, session_version, created_time"#;

pub fn from_row(r: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        password: r.try_get("password")?,
        display_name: r.try_get("display_name")?,
        role: r.try_get("role")?,
        status: r.try_get("status")?,
        email: r.try_get("email")?,
        github_id: r.try_get("github_id")?,
        wechat_id: r.try_get("wechat_id")?,
        lark_id: r.try_get("lark_id")?,
        oidc_id: r.try_get("oidc_id")?,
        access_token: r.try_get("access_token")?,
        quota: r.try_get("quota")?,
        used_quota: r.try_get("used_quota")?,
        request_count: r.try_get("request_count")?,
        group: r.try_get("group")?,
        aff_code: r.try_get("aff_code")?,
        inviter_id: r.try_get("inviter_id")?,
        session_version: r.try_get("session_version")?,
        created_time: r.try_get("created_time")?,
    })
}

/// Fields of a new account. The password must already be hashed.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub display_name: String,
    pub role: i64,
    pub email: String,
    pub access_token: Option<String>,
    pub quota: i64,
    pub group: String,
    pub aff_code: Option<String>,
    pub inviter_id: i64,
}

/// Inserts a user and returns its id.
pub async fn insert<'c>(
    db: &Db,
    exec: impl Executor<'c, Database = sqlx::Any>,
    u: &NewUser,
) -> Result<i64, sqlx::Error> {
    let group = if u.group.is_empty() {
        "default".to_string()
    } else {
        u.group.clone()
    };
    db.insert_id(
        exec,
        r#"INSERT INTO users (username, password, display_name, role, status, email, access_token,
            quota, "group", aff_code, inviter_id, created_time)
           VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)"#,
        |q| {
            q.bind(u.username.clone())
                .bind(u.password_hash.clone())
                .bind(u.display_name.clone())
                .bind(u.role)
                .bind(u.email.clone())
                .bind(u.access_token.clone())
                .bind(u.quota)
                .bind(group)
                .bind(u.aff_code.clone())
                .bind(u.inviter_id)
                .bind(now())
        },
    )
    .await
}

pub async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) FROM users")
        .fetch_one(&db.pool)
        .await?
        .try_get(0)
}

pub async fn get_by_id(db: &Db, id: i64) -> Result<Option<User>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM users WHERE id = ?"
    ));
    sqlx::query(sql)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// Looks a live (not deleted) user up by username, or by email when no username matches.
pub async fn get_for_login(db: &Db, name: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM users WHERE username = ? AND status <> 3"
    ));
    if let Some(r) = sqlx::query(sql)
        .bind(name.to_string())
        .fetch_optional(&db.pool)
        .await?
    {
        return from_row(&r).map(Some);
    }
    if !name.contains('@') {
        return Ok(None);
    }
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM users WHERE email = ? AND status <> 3 ORDER BY id LIMIT 1"
    ));
    sqlx::query(sql)
        .bind(name.to_string())
        .fetch_optional(&db.pool)
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

pub async fn get_by_access_token(db: &Db, token: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM users WHERE access_token = ? AND status <> 3"
    ));
    sqlx::query(sql)
        .bind(token.to_string())
        .fetch_optional(&db.pool)
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// Replaces the stored password hash (used to upgrade bcrypt hashes to argon2 at login).
pub async fn set_password_hash(db: &Db, id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query(db.sql("UPDATE users SET password = ? WHERE id = ?"))
        .bind(hash.to_string())
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Adds `delta` (may be negative) to a user's quota.
pub async fn add_quota<'c>(
    db: &Db,
    exec: impl Executor<'c, Database = sqlx::Any>,
    id: i64,
    delta: i64,
) -> Result<bool, sqlx::Error> {
    let res = sqlx::query(db.sql("UPDATE users SET quota = quota + ? WHERE id = ?"))
        .bind(delta)
        .bind(id)
        .execute(exec)
        .await?;
    Ok(res.rows_affected() == 1)
}
