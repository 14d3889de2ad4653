//! The `redemptions` table: one-time codes that credit quota to the user who redeems them.

use sqlx::Row;
use sqlx::any::AnyRow;

pub const STATUS_ENABLED: i64 = 1;
pub const STATUS_DISABLED: i64 = 2;
pub const STATUS_USED: i64 = 3;

/// One row of `redemptions`. `user_id` is the admin who created it, `used_user_id` who redeemed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Redemption {
    pub id: i64,
    pub user_id: i64,
    pub key: String,
    pub status: i64,
    pub name: String,
    pub quota: i64,
    pub created_time: i64,
    pub redeemed_time: i64,
    pub used_user_id: i64,
}

pub const COLUMNS: &str =
    r#"id, user_id, "key", status, name, quota, created_time, redeemed_time, used_user_id"#;

pub fn from_row(r: &AnyRow) -> Result<Redemption, sqlx::Error> {
    Ok(Redemption {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        key: r.try_get("key")?,
        status: r.try_get("status")?,
        name: r.try_get("name")?,
        quota: r.try_get("quota")?,
        created_time: r.try_get("created_time")?,
        redeemed_time: r.try_get("redeemed_time")?,
        used_user_id: r.try_get("used_user_id")?,
    })
}

use super::{Db, Tx, now};

fn collect(rows: Vec<AnyRow>) -> Result<Vec<Redemption>, sqlx::Error> {
    rows.iter().map(from_row).collect()
}

/// Inserts `keys.len()` codes in one transaction.
pub async fn insert_many(
    db: &Db,
    creator: i64,
    name: &str,
    quota: i64,
    keys: &[String],
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    let ts = now();
    for k in keys {
        sqlx::query(db.sql(
            r#"INSERT INTO redemptions (user_id, "key", status, name, quota, created_time,
               redeemed_time, used_user_id) VALUES (?, ?, 1, ?, ?, ?, 0, 0)"#,
        ))
        .bind(creator)
        .bind(k.clone())
        .bind(name.to_string())
        .bind(quota)
        .bind(ts)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

pub async fn list(db: &Db, page: i64) -> Result<Vec<Redemption>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM redemptions ORDER BY id DESC LIMIT 10 OFFSET ?"
    ));
    let rows = sqlx::query(sql)
        .bind(page * super::PAGE_SIZE)
        .fetch_all(&db.pool)
        .await?;
    collect(rows)
}

pub async fn search(db: &Db, kw: &str) -> Result<Vec<Redemption>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM redemptions WHERE id = ? OR name LIKE ? ESCAPE '!' ORDER BY id DESC LIMIT 100"
    ));
    let rows = sqlx::query(sql)
        .bind(kw.trim().parse::<i64>().unwrap_or(-1))
        .bind(super::like_prefix(kw))
        .fetch_all(&db.pool)
        .await?;
    collect(rows)
}

pub async fn get_by_id(db: &Db, id: i64) -> Result<Option<Redemption>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM redemptions WHERE id = ?"
    ));
    sqlx::query(sql)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

pub async fn update(
    db: &Db,
    id: i64,
    name: &str,
    quota: i64,
    status: i64,
) -> Result<bool, sqlx::Error> {
    let res =
        sqlx::query(db.sql("UPDATE redemptions SET name = ?, quota = ?, status = ? WHERE id = ?"))
            .bind(name.to_string())
            .bind(quota)
            .bind(status)
            .bind(id)
            .execute(&db.pool)
            .await?;
    Ok(res.rows_affected() == 1)
}

pub async fn delete(db: &Db, id: i64) -> Result<bool, sqlx::Error> {
    let res = sqlx::query(db.sql("DELETE FROM redemptions WHERE id = ?"))
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(res.rows_affected() == 1)
}

/// Outcome of claiming a code.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Claimed; the code's quota.
    Claimed(i64),
    NotFound,
    AlreadyUsed,
}

/// Claims a code for `user_id` inside `tx` with one conditional UPDATE (only one concurrent
/// caller can flip status 1 -> 3), then credits the user in the same transaction.
pub async fn claim(
    db: &Db,
    tx: &mut Tx<'_>,
    key: &str,
    user_id: i64,
) -> Result<Claim, sqlx::Error> {
    let res = sqlx::query(db.sql(
        r#"UPDATE redemptions SET status = 3, redeemed_time = ?, used_user_id = ?
           WHERE "key" = ? AND status = 1"#,
    ))
    .bind(now())
    .bind(user_id)
    .bind(key.to_string())
    .execute(&mut **tx)
    .await?;
    if res.rows_affected() != 1 {
        let exists = sqlx::query(db.sql(r#"SELECT COUNT(*) FROM redemptions WHERE "key" = ?"#))
            .bind(key.to_string())
            .fetch_one(&mut **tx)
            .await?
            .try_get::<i64, _>(0)?;
        return Ok(if exists > 0 {
            Claim::AlreadyUsed
        } else {
            Claim::NotFound
        });
    }
    let quota: i64 = sqlx::query(db.sql(r#"SELECT quota FROM redemptions WHERE "key" = ?"#))
        .bind(key.to_string())
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    super::users::add_quota(db, &mut **tx, user_id, quota).await?;
    Ok(Claim::Claimed(quota))
}
