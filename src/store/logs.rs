//! The `logs` table (possibly in its own database, `LOG_SQL_DSN`): top-ups, consumption,
//! management and system events.

use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

use super::{Db, get_bool};

pub const TYPE_TOPUP: i64 = 1;
pub const TYPE_CONSUME: i64 = 2;
pub const TYPE_MANAGE: i64 = 3;
pub const TYPE_SYSTEM: i64 = 4;
pub const TYPE_TEST: i64 = 5;

/// One row of `logs`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    pub id: i64,
    pub user_id: i64,
    pub created_at: i64,
    pub r#type: i64,
    pub content: String,
    pub username: String,
    pub token_name: String,
    pub token_id: i64,
    pub model_name: String,
    pub quota: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub channel_id: i64,
    pub request_id: String,
    pub elapsed_time: i64,
    pub is_stream: bool,
    pub system_prompt_reset: bool,
}

pub const COLUMNS: &str = r#"id, user_id, created_at, type, content, username, token_name,
 token_id, model_name, quota, prompt_tokens, completion_tokens, channel_id, request_id,
 elapsed_time, is_stream, system_prompt_reset"#;

pub fn from_row(r: &AnyRow) -> Result<Log, sqlx::Error> {
    Ok(Log {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        created_at: r.try_get("created_at")?,
        r#type: r.try_get("type")?,
        content: r.try_get("content")?,
        username: r.try_get("username")?,
        token_name: r.try_get("token_name")?,
        token_id: r.try_get("token_id")?,
        model_name: r.try_get("model_name")?,
        quota: r.try_get("quota")?,
        prompt_tokens: r.try_get("prompt_tokens")?,
        completion_tokens: r.try_get("completion_tokens")?,
        channel_id: r.try_get("channel_id")?,
        request_id: r.try_get("request_id")?,
        elapsed_time: r.try_get("elapsed_time")?,
        is_stream: get_bool(r, "is_stream")?,
        system_prompt_reset: get_bool(r, "system_prompt_reset")?,
    })
}

/// Inserts one log row (its `id` is ignored).
pub async fn insert<'c>(
    db: &Db,
    exec: impl Executor<'c, Database = sqlx::Any>,
    l: &Log,
) -> Result<(), sqlx::Error> {
    sqlx::query(db.sql(
        r#"INSERT INTO logs (user_id, created_at, type, content, username, token_name, token_id,
            model_name, quota, prompt_tokens, completion_tokens, channel_id, request_id,
            elapsed_time, is_stream, system_prompt_reset)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"#,
    ))
    .bind(l.user_id)
    .bind(l.created_at)
    .bind(l.r#type)
    .bind(l.content.clone())
    .bind(l.username.clone())
    .bind(l.token_name.clone())
    .bind(l.token_id)
    .bind(l.model_name.clone())
    .bind(l.quota)
    .bind(l.prompt_tokens)
    .bind(l.completion_tokens)
    .bind(l.channel_id)
    .bind(l.request_id.clone())
    .bind(l.elapsed_time)
    .bind(i64::from(l.is_stream))
    .bind(i64::from(l.system_prompt_reset))
    .execute(exec)
    .await?;
    Ok(())
}
