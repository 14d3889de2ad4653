//! The `channels` table: upstream providers with their credential, models and routing weight.

use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

use super::{Db, now};

pub const STATUS_ENABLED: i64 = 1;
pub const STATUS_MANUALLY_DISABLED: i64 = 2;
pub const STATUS_AUTO_DISABLED: i64 = 3;

/// One row of `channels`. `key` is the upstream credential and must never reach a list response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Channel {
    pub id: i64,
    pub r#type: i64,
    pub key: String,
    pub status: i64,
    pub name: String,
    pub weight: i64,
    pub created_time: i64,
    pub test_time: i64,
    pub response_time: i64,
    pub base_url: String,
    pub other: String,
    pub balance: f64,
    pub balance_updated_time: i64,
    pub models: String,
    pub group: String,
    pub used_quota: i64,
    pub model_mapping: String,
    pub priority: i64,
    pub config: String,
    pub system_prompt: String,
}

pub const COLUMNS: &str = r#"id, type, "key", status, name, weight, created_time, test_time,
 response_time, base_url, other, balance, balance_updated_time, models, "group", used_quota,
 model_mapping, priority, config, system_prompt"#;

pub fn from_row(r: &AnyRow) -> Result<Channel, sqlx::Error> {
    Ok(Channel {
        id: r.try_get("id")?,
        r#type: r.try_get("type")?,
        key: r.try_get("key")?,
        status: r.try_get("status")?,
        name: r.try_get("name")?,
        weight: r.try_get("weight")?,
        created_time: r.try_get("created_time")?,
        test_time: r.try_get("test_time")?,
        response_time: r.try_get("response_time")?,
        base_url: r.try_get("base_url")?,
        other: r.try_get("other")?,
        balance: r.try_get("balance")?,
        balance_updated_time: r.try_get("balance_updated_time")?,
        models: r.try_get("models")?,
        group: r.try_get("group")?,
        used_quota: r.try_get("used_quota")?,
        model_mapping: r.try_get("model_mapping")?,
        priority: r.try_get("priority")?,
        config: r.try_get("config")?,
        system_prompt: r.try_get("system_prompt")?,
    })
}

/// Inserts a channel (its `id` and counters are ignored) and returns the new id.
pub async fn insert<'c>(
    db: &Db,
    exec: impl Executor<'c, Database = sqlx::Any>,
    c: &Channel,
) -> Result<i64, sqlx::Error> {
    db.insert_id(
        exec,
        r#"INSERT INTO channels (type, "key", status, name, weight, created_time, test_time,
            response_time, base_url, other, balance, balance_updated_time, models, "group",
            used_quota, model_mapping, priority, config, system_prompt)
           VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?, ?, 0, 0, ?, ?, 0, ?, ?, ?, ?)"#,
        |q| {
            q.bind(c.r#type)
                .bind(c.key.clone())
                .bind(c.status)
                .bind(c.name.clone())
                .bind(c.weight)
                .bind(now())
                .bind(c.base_url.clone())
                .bind(c.other.clone())
                .bind(c.models.clone())
                .bind(c.group.clone())
                .bind(c.model_mapping.clone())
                .bind(c.priority)
                .bind(c.config.clone())
                .bind(c.system_prompt.clone())
        },
    )
    .await
}

pub async fn get_by_id(db: &Db, id: i64) -> Result<Option<Channel>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM channels WHERE id = ?"
    ));
    sqlx::query(sql)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// All channels, for building the routing table.
pub async fn all(db: &Db) -> Result<Vec<Channel>, sqlx::Error> {
    let sql = const_format::concatcp!("SELECT ", COLUMNS, " FROM channels ORDER BY id");
    sqlx::query(sql)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

fn collect(rows: Vec<AnyRow>) -> Result<Vec<Channel>, sqlx::Error> {
    rows.iter().map(from_row).collect()
}

pub async fn list(db: &Db, page: i64) -> Result<Vec<Channel>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM channels ORDER BY id DESC LIMIT 10 OFFSET ?"
    ));
    let rows = sqlx::query(sql)
        .bind(page * super::PAGE_SIZE)
        .fetch_all(&db.pool)
        .await?;
    collect(rows)
}

pub async fn search(db: &Db, kw: &str) -> Result<Vec<Channel>, sqlx::Error> {
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM channels WHERE id = ? OR name LIKE ? ESCAPE '!' ORDER BY id DESC LIMIT 100"
    ));
    let rows = sqlx::query(sql)
        .bind(kw.trim().parse::<i64>().unwrap_or(-1))
        .bind(super::like_prefix(kw))
        .fetch_all(&db.pool)
        .await?;
    collect(rows)
}

/// Inserts channels and their abilities in one transaction.
pub async fn insert_many(db: &Db, channels: &[Channel]) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    for c in channels {
        let id = insert(db, &mut *tx, c).await?;
        let c = Channel { id, ..c.clone() };
        super::abilities::replace_for_channel(db, &mut tx, &c).await?;
    }
    tx.commit().await
}

/// Writes every editable field of `c` (the caller merged it with the stored row) and rebuilds
/// its abilities, in one transaction.
pub async fn update(db: &Db, c: &Channel) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    sqlx::query(db.sql(
        r#"UPDATE channels SET type = ?, "key" = ?, status = ?, name = ?, weight = ?,
           base_url = ?, other = ?, models = ?, "group" = ?, model_mapping = ?, priority = ?,
           config = ?, system_prompt = ? WHERE id = ?"#,
    ))
    .bind(c.r#type)
    .bind(c.key.clone())
    .bind(c.status)
    .bind(c.name.clone())
    .bind(c.weight)
    .bind(c.base_url.clone())
    .bind(c.other.clone())
    .bind(c.models.clone())
    .bind(c.group.clone())
    .bind(c.model_mapping.clone())
    .bind(c.priority)
    .bind(c.config.clone())
    .bind(c.system_prompt.clone())
    .bind(c.id)
    .execute(&mut *tx)
    .await?;
    super::abilities::replace_for_channel(db, &mut tx, c).await?;
    tx.commit().await
}

/// Deletes a channel and its abilities.
pub async fn delete(db: &Db, id: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    sqlx::query(db.sql("DELETE FROM abilities WHERE channel_id = ?"))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let res = sqlx::query(db.sql("DELETE FROM channels WHERE id = ?"))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(res.rows_affected() == 1)
}

/// Deletes every disabled channel (status 2 or 3) with its abilities; returns how many.
pub async fn delete_disabled(db: &Db) -> Result<u64, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "DELETE FROM abilities WHERE channel_id IN (SELECT id FROM channels WHERE status IN (2, 3))",
    )
    .execute(&mut *tx)
    .await?;
    let res = sqlx::query("DELETE FROM channels WHERE status IN (2, 3)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(res.rows_affected())
}

pub async fn set_test_result(db: &Db, id: i64, response_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query(db.sql("UPDATE channels SET response_time = ?, test_time = ? WHERE id = ?"))
        .bind(response_ms)
        .bind(now())
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn set_balance(db: &Db, id: i64, balance: f64) -> Result<(), sqlx::Error> {
    sqlx::query(db.sql("UPDATE channels SET balance = ?, balance_updated_time = ? WHERE id = ?"))
        .bind(balance)
        .bind(now())
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Re-enables a channel that was disabled automatically (status 3) and its abilities, in one
/// transaction; a channel in any other status is left alone. Returns whether it changed.
pub async fn auto_enable(db: &Db, id: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    let res = sqlx::query(db.sql("UPDATE channels SET status = ? WHERE id = ? AND status = ?"))
        .bind(STATUS_ENABLED)
        .bind(id)
        .bind(STATUS_AUTO_DISABLED)
        .execute(&mut *tx)
        .await?;
    if res.rows_affected() == 1 {
        sqlx::query(db.sql("UPDATE abilities SET enabled = ? WHERE channel_id = ?"))
            .bind(1_i64)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(res.rows_affected() == 1)
}
