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
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
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

/// A bind value for dynamically built statements.
enum Arg {
    I(i64),
    S(String),
}

/// Filters of the log list and stat routes; empty/zero fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub user_id: Option<i64>,
    pub r#type: i64,
    pub start_timestamp: i64,
    pub end_timestamp: i64,
    pub username: String,
    pub token_name: String,
    pub model_name: String,
    pub channel: i64,
}

impl LogFilter {
    fn where_clause(&self, args: &mut Vec<Arg>) -> String {
        let mut w = vec!["1 = 1".to_string()];
        if let Some(u) = self.user_id {
            w.push("user_id = ?".into());
            args.push(Arg::I(u));
        }
        if self.r#type != 0 {
            // With a name or channel filter, `+type` (the same value) keeps SQLite, which has no
            // statistics, off the `type` indexes: 97% of the rows are consume logs, while the
            // name's index narrows to a few hundred (measured in benches/logs).
            let by_name = !self.username.is_empty()
                || !self.token_name.is_empty()
                || !self.model_name.is_empty()
                || self.channel != 0;
            w.push(if by_name { "+type = ?" } else { "type = ?" }.into());
            args.push(Arg::I(self.r#type));
        }
        if self.start_timestamp != 0 {
            w.push("created_at >= ?".into());
            args.push(Arg::I(self.start_timestamp));
        }
        if self.end_timestamp != 0 {
            w.push("created_at <= ?".into());
            args.push(Arg::I(self.end_timestamp));
        }
        for (col, v) in [
            ("username", &self.username),
            ("token_name", &self.token_name),
            ("model_name", &self.model_name),
        ] {
            if !v.is_empty() {
                w.push(format!("{col} = ?"));
                args.push(Arg::S(v.clone()));
            }
        }
        if self.channel != 0 {
            w.push("channel_id = ?".into());
            args.push(Arg::I(self.channel));
        }
        w.join(" AND ")
    }
}

async fn fetch(db: &Db, sql: String, args: Vec<Arg>) -> Result<Vec<AnyRow>, sqlx::Error> {
    let sql = super::dialect::dynamic(db.backend, sql);
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for a in args {
        q = match a {
            Arg::I(i) => q.bind(i),
            Arg::S(s) => q.bind(s),
        };
    }
    q.fetch_all(&db.pool).await
}

/// `CAST(expr AS <64-bit int>)` for this backend (sums are DECIMAL/NUMERIC otherwise).
fn int_cast(db: &Db, expr: &str) -> String {
    match db.backend {
        super::Backend::MySql => format!("CAST({expr} AS SIGNED)"),
        _ => format!("CAST({expr} AS BIGINT)"),
    }
}

/// A page of logs, newest first.
///
/// The page's ids are found first and only those ten rows are read: when a filter's index does
/// not give the `id` order (a type or time window), the database sorts ids taken from the index
/// instead of whole rows (SQLite, 10 million rows, type filter: 760 ms -> 70 ms). The extra
/// derived table is for MySQL, which refuses `LIMIT` directly inside `IN (...)`.
pub async fn list(db: &Db, f: &LogFilter, page: i64) -> Result<Vec<Log>, sqlx::Error> {
    let mut args = Vec::new();
    let w = f.where_clause(&mut args);
    args.push(Arg::I(page * super::PAGE_SIZE));
    let sql = format!(
        "SELECT {COLUMNS} FROM logs WHERE id IN (SELECT id FROM (SELECT id FROM logs WHERE {w} \
         ORDER BY id DESC LIMIT 10 OFFSET ?) AS page) ORDER BY id DESC"
    );
    fetch(db, sql, args).await?.iter().map(from_row).collect()
}

/// The 100 newest logs matching a keyword: `type = kw` or (when `content` is true) content
/// starting with it.
pub async fn search(
    db: &Db,
    user_id: Option<i64>,
    kw: &str,
    content: bool,
) -> Result<Vec<Log>, sqlx::Error> {
    let mut args = Vec::new();
    let mut w = String::from("(type = ?");
    args.push(Arg::I(kw.trim().parse::<i64>().unwrap_or(-1)));
    if content {
        w.push_str(" OR content LIKE ? ESCAPE '!'");
        args.push(Arg::S(super::like_prefix(kw)));
    }
    w.push(')');
    if let Some(u) = user_id {
        w.push_str(" AND user_id = ?");
        args.push(Arg::I(u));
    }
    let sql = format!("SELECT {COLUMNS} FROM logs WHERE {w} ORDER BY id DESC LIMIT 100");
    fetch(db, sql, args).await?.iter().map(from_row).collect()
}

/// Sum of `quota` over consume logs matching the filter (its `type` is ignored).
pub async fn sum_consume_quota(db: &Db, f: &LogFilter) -> Result<i64, sqlx::Error> {
    let f = LogFilter {
        r#type: TYPE_CONSUME,
        ..f.clone()
    };
    let mut args = Vec::new();
    let w = f.where_clause(&mut args);
    let sum = int_cast(db, "COALESCE(SUM(quota), 0)");
    let sql = format!("SELECT {sum} FROM logs WHERE {w}");
    let rows = fetch(db, sql, args).await?;
    rows.first()
        .map(|r| r.try_get::<i64, _>(0))
        .unwrap_or(Ok(0))
}

/// Deletes logs older than `ts`; returns how many.
pub async fn delete_before(db: &Db, ts: i64) -> Result<u64, sqlx::Error> {
    let res = sqlx::query(db.sql("DELETE FROM logs WHERE created_at < ?"))
        .bind(ts)
        .execute(&db.pool)
        .await?;
    Ok(res.rows_affected())
}

/// Deletes at most `limit` of the oldest logs older than `ts`; returns how many. Retention calls
/// it in a loop, so that purging a large table never holds its locks for long.
pub async fn delete_before_batch(db: &Db, ts: i64, limit: i64) -> Result<u64, sqlx::Error> {
    // MySQL refuses `LIMIT` inside an `IN (subquery)`; SQLite (as built by sqlx) and PostgreSQL
    // have no `DELETE ... LIMIT`.
    let sql = match db.backend {
        super::Backend::MySql => {
            "DELETE FROM logs WHERE created_at < ? ORDER BY created_at LIMIT ?"
        }
        _ => {
            "DELETE FROM logs WHERE id IN \
             (SELECT id FROM logs WHERE created_at < ? ORDER BY created_at LIMIT ?)"
        }
    };
    let res = sqlx::query(db.sql(sql))
        .bind(ts)
        .bind(limit)
        .execute(&db.pool)
        .await?;
    Ok(res.rows_affected())
}

/// One row of the user dashboard: consumption per UTC day and model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyStat {
    pub day_start: i64,
    pub model_name: String,
    pub request_count: i64,
    pub quota: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

pub async fn daily_stats(
    db: &Db,
    user_id: i64,
    start: i64,
    end: i64,
) -> Result<Vec<DailyStat>, sqlx::Error> {
    let day = "created_at - (created_at % 86400)";
    let sql = format!(
        "SELECT {day} AS day_start, model_name, COUNT(*) AS request_count, {q}, {p}, {c} \
         FROM logs WHERE user_id = ? AND type = 2 AND created_at >= ? AND created_at <= ? \
         GROUP BY {day}, model_name ORDER BY day_start, model_name",
        q = int_cast(db, "COALESCE(SUM(quota), 0)"),
        p = int_cast(db, "COALESCE(SUM(prompt_tokens), 0)"),
        c = int_cast(db, "COALESCE(SUM(completion_tokens), 0)"),
    );
    let rows = fetch(db, sql, vec![Arg::I(user_id), Arg::I(start), Arg::I(end)]).await?;
    rows.iter()
        .map(|r| {
            Ok(DailyStat {
                day_start: r.try_get(0)?,
                model_name: r.try_get(1)?,
                request_count: r.try_get(2)?,
                quota: r.try_get(3)?,
                prompt_tokens: r.try_get(4)?,
                completion_tokens: r.try_get(5)?,
            })
        })
        .collect()
}
