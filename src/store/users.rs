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

/// One row of `users`. `password` holds an argon2 (or imported bcrypt) hash. Serialised only
/// for the relay's shared cache, never with the password hash or the access token.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    #[serde(skip)]
    pub password: String,
    pub display_name: String,
    pub role: i64,
    pub status: i64,
    pub email: String,
    pub github_id: String,
    pub wechat_id: String,
    pub lark_id: String,
    pub oidc_id: String,
    #[serde(skip)]
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

/// Fetches at most one user with a statement bound to a single string.
async fn one_by_str(db: &Db, sql: &'static str, arg: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query(sql)
        .bind(arg.to_string())
        .fetch_optional(&db.pool)
        .await?
        .map(|r| from_row(&r))
        .transpose()
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
    if let Some(u) = one_by_str(db, sql, name).await? {
        return Ok(Some(u));
    }
    if !name.contains('@') {
        return Ok(None);
    }
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM users WHERE email = ? AND status <> 3 ORDER BY id LIMIT 1"
    ));
    one_by_str(db, sql, name).await
}

pub async fn get_by_access_token(db: &Db, token: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM users WHERE access_token = ? AND status <> 3"
    ));
    one_by_str(db, sql, token).await
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

fn collect(rows: Vec<AnyRow>) -> Result<Vec<User>, sqlx::Error> {
    rows.iter().map(from_row).collect()
}

/// A page of live users. `order` is one of `quota`, `used_quota`, `request_count`, else id.
pub async fn list(db: &Db, page: i64, order: &str) -> Result<Vec<User>, sqlx::Error> {
    let order_by = match order {
        "quota" => "quota DESC",
        "used_quota" => "used_quota DESC",
        "request_count" => "request_count DESC",
        _ => "id DESC",
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM users WHERE status <> 3 ORDER BY {order_by} LIMIT 10 OFFSET ?"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(super::dialect::dynamic(
        db.backend, sql,
    )))
    .bind(page * super::PAGE_SIZE)
    .fetch_all(&db.pool)
    .await?;
    collect(rows)
}

/// Live users whose id equals `kw` or whose username, email or display name starts with it.
pub async fn search(db: &Db, kw: &str) -> Result<Vec<User>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM users WHERE status <> 3 AND (id = ? OR username LIKE ? ESCAPE '!' \
         OR email LIKE ? ESCAPE '!' OR display_name LIKE ? ESCAPE '!') ORDER BY id DESC LIMIT 100"
    ));
    let pat = super::like_prefix(kw);
    let rows = sqlx::query(sql)
        .bind(kw.trim().parse::<i64>().unwrap_or(-1))
        .bind(pat.clone())
        .bind(pat.clone())
        .bind(pat)
        .fetch_all(&db.pool)
        .await?;
    collect(rows)
}

pub async fn get_by_username(db: &Db, name: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM users WHERE username = ?"
    ));
    one_by_str(db, sql, name).await
}

pub async fn get_by_aff_code(db: &Db, code: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM users WHERE aff_code = ? AND status <> 3"
    ));
    one_by_str(db, sql, code).await
}

/// Whether a username is taken (by any row, deleted ones included: the index is unique).
pub async fn username_taken(db: &Db, name: &str, except_id: i64) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(db.sql("SELECT COUNT(*) FROM users WHERE username = ? AND id <> ?"))
        .bind(name.to_string())
        .bind(except_id)
        .fetch_one(&db.pool)
        .await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}

/// The editable profile fields. `password_hash` None keeps the password; a change of password
/// bumps `session_version` (logs the user out everywhere).
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub username: String,
    pub display_name: String,
    pub password_hash: Option<String>,
}

pub async fn update_profile(db: &Db, id: i64, u: &ProfileUpdate) -> Result<(), sqlx::Error> {
    match &u.password_hash {
        Some(h) => {
            sqlx::query(db.sql(
                "UPDATE users SET username = ?, display_name = ?, password = ?, \
                 session_version = session_version + 1 WHERE id = ?",
            ))
            .bind(u.username.clone())
            .bind(u.display_name.clone())
            .bind(h.clone())
            .bind(id)
            .execute(&db.pool)
            .await?;
        }
        None => {
            sqlx::query(db.sql("UPDATE users SET username = ?, display_name = ? WHERE id = ?"))
                .bind(u.username.clone())
                .bind(u.display_name.clone())
                .bind(id)
                .execute(&db.pool)
                .await?;
        }
    }
    Ok(())
}

/// Admin edit: profile, group, and the quota moved by `quota_delta` (a delta, not a value, so
/// that settlements applied since the admin's read are kept).
pub async fn admin_update<'c>(
    db: &Db,
    exec: impl Executor<'c, Database = sqlx::Any>,
    id: i64,
    u: &ProfileUpdate,
    quota_delta: i64,
    group: &str,
) -> Result<(), sqlx::Error> {
    let bump = i64::from(u.password_hash.is_some());
    sqlx::query(db.sql(
        r#"UPDATE users SET username = ?, display_name = ?, password = COALESCE(?, password),
           quota = quota + ?, "group" = ?, session_version = session_version + ? WHERE id = ?"#,
    ))
    .bind(u.username.clone())
    .bind(u.display_name.clone())
    .bind(u.password_hash.clone())
    .bind(quota_delta)
    .bind(group.to_string())
    .bind(bump)
    .bind(id)
    .execute(exec)
    .await?;
    Ok(())
}

/// Sets status (and bumps the session version unless enabling).
pub async fn set_status(db: &Db, id: i64, status: i64) -> Result<bool, sqlx::Error> {
    let bump = i64::from(status != STATUS_ENABLED);
    let res = sqlx::query(
        db.sql("UPDATE users SET status = ?, session_version = session_version + ? WHERE id = ?"),
    )
    .bind(status)
    .bind(bump)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Soft delete: status 3, username freed by a suffix so it can be registered again, sessions
/// ended, access token dropped.
pub async fn soft_delete(db: &Db, id: i64) -> Result<bool, sqlx::Error> {
    let res = sqlx::query(db.sql(
        "UPDATE users SET status = 3, access_token = NULL, \
         session_version = session_version + 1 WHERE id = ? AND status <> 3",
    ))
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Sets the role; a lower role ends the user's sessions.
pub async fn set_role(db: &Db, id: i64, role: i64, bump: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        db.sql("UPDATE users SET role = ?, session_version = session_version + ? WHERE id = ?"),
    )
    .bind(role)
    .bind(i64::from(bump))
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

pub async fn set_access_token(db: &Db, id: i64, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query(db.sql("UPDATE users SET access_token = ? WHERE id = ?"))
        .bind(token.to_string())
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn set_aff_code(db: &Db, id: i64, code: &str) -> Result<(), sqlx::Error> {
    sqlx::query(db.sql("UPDATE users SET aff_code = ? WHERE id = ?"))
        .bind(code.to_string())
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// A live user by email.
pub async fn get_by_email(db: &Db, email: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM users WHERE email = ? AND status <> 3 ORDER BY id LIMIT 1"
    ));
    one_by_str(db, sql, email).await
}
