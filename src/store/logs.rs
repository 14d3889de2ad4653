//! The `logs` table (possibly in its own database, `LOG_SQL_DSN`): top-ups, consumption,
//! management and system events.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, Tx, get_bool, log_rollups};

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

/// Most rows per multi-row `INSERT` (16 bind values each). Larger statements cost more per row
/// through sqlx's `Any` driver on PostgreSQL: the Redis write-back took 550-850 ms per 2,000
/// logs with runs of 256 and 150 ms with runs of 64, and fell behind the relay under load.
const INSERT_ROWS: usize = 64;

/// Inserts log rows (their `id`s are ignored) inside `tx`, in multi-row `INSERT`s of
/// power-of-two sizes up to [`INSERT_ROWS`] (see [`super::pow2_chunks`]), and adds the consume
/// logs among them to the rollup in the same transaction (`store::log_rollups`): committed
/// together or not at all.
pub async fn insert_many(db: &Db, tx: &mut Tx<'_>, logs: Vec<Log>) -> Result<(), sqlx::Error> {
    let deltas = log_rollups::deltas(&logs, 1);
    insert_rows(db, tx, logs).await?;
    if !deltas.is_empty() {
        log_rollups::apply(db, tx, &deltas).await?;
    }
    Ok(())
}

/// Inserts one log row (its `id` is ignored); a consume log in its own transaction with its
/// rollup rows.
pub async fn insert(db: &Db, l: &Log) -> Result<(), sqlx::Error> {
    if l.r#type != TYPE_CONSUME {
        let mut conn = db.pool.acquire().await?;
        return insert_rows(db, &mut conn, vec![l.clone()]).await;
    }
    let mut tx = db.pool.begin().await?;
    insert_many(db, &mut tx, vec![l.clone()]).await?;
    tx.commit().await
}

/// The multi-row `INSERT`s of [`insert_many`], without the rollup. The rows' text moves into the
/// statement's arguments rather than being copied (five strings a consume log).
async fn insert_rows(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    logs: Vec<Log>,
) -> Result<(), sqlx::Error> {
    let sizes: Vec<usize> = super::pow2_chunks(&logs, INSERT_ROWS)
        .map(<[Log]>::len)
        .collect();
    let mut rows = logs.into_iter();
    for n in sizes {
        let sql = db.multi_row("insert logs", n, || {
            format!(
                "INSERT INTO logs (user_id, created_at, type, content, username, token_name, \
                 token_id, model_name, quota, prompt_tokens, completion_tokens, channel_id, \
                 request_id, elapsed_time, is_stream, system_prompt_reset) VALUES {}",
                super::value_rows(n, 16)
            )
        });
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for l in rows.by_ref().take(n) {
            q = q
                .bind(l.user_id)
                .bind(l.created_at)
                .bind(l.r#type)
                .bind(l.content)
                .bind(l.username)
                .bind(l.token_name)
                .bind(l.token_id)
                .bind(l.model_name)
                .bind(l.quota)
                .bind(l.prompt_tokens)
                .bind(l.completion_tokens)
                .bind(l.channel_id)
                .bind(l.request_id)
                .bind(l.elapsed_time)
                .bind(i64::from(l.is_stream))
                .bind(i64::from(l.system_prompt_reset));
        }
        q.execute(&mut *conn).await?;
    }
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
    fn where_clause(&self, db: &Db, args: &mut Vec<Arg>) -> String {
        let bound = |t: i64| (t != 0).then_some(t);
        self.where_window(
            db,
            args,
            bound(self.start_timestamp),
            bound(self.end_timestamp),
            false,
        )
    }

    /// The filter's conditions with the time window `[from, to]` (inclusive, `None` = open) in
    /// place of its own timestamps. `time_driven` (a window shorter than an hour) keeps SQLite on
    /// the `(type, created_at, quota)` index rather than a name's index, which may hold a large
    /// share of the table.
    fn where_window(
        &self,
        db: &Db,
        args: &mut Vec<Arg>,
        from: Option<i64>,
        to: Option<i64>,
        time_driven: bool,
    ) -> String {
        // `+col` (the same value) keeps SQLite, which has no statistics, off that column's
        // indexes; PostgreSQL and MySQL choose from their statistics.
        let plus = |col: &str, off: bool| {
            if off && db.backend == super::Backend::Sqlite {
                format!("+{col}")
            } else {
                col.to_string()
            }
        };
        let mut w = vec!["1 = 1".to_string()];
        if let Some(u) = self.user_id {
            w.push("user_id = ?".into());
            args.push(Arg::I(u));
        }
        if self.r#type != 0 {
            // With a name or channel filter, `+type` keeps SQLite off the `type` indexes: 97% of
            // the rows are consume logs, while the name's index narrows to a few hundred
            // (measured in benches/logs).
            let by_name = !self.username.is_empty()
                || !self.token_name.is_empty()
                || !self.model_name.is_empty()
                || self.channel != 0;
            w.push(format!("{} = ?", plus("type", by_name && !time_driven)));
            args.push(Arg::I(self.r#type));
        }
        if let Some(from) = from {
            w.push("created_at >= ?".into());
            args.push(Arg::I(from));
        }
        if let Some(to) = to {
            w.push("created_at <= ?".into());
            args.push(Arg::I(to));
        }
        for (col, v) in [
            ("username", &self.username),
            ("token_name", &self.token_name),
            ("model_name", &self.model_name),
        ] {
            if !v.is_empty() {
                w.push(format!("{} = ?", plus(col, time_driven)));
                args.push(Arg::S(v.clone()));
            }
        }
        if self.channel != 0 {
            w.push(format!("{} = ?", plus("channel_id", time_driven)));
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
    let w = f.where_clause(db, &mut args);
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
///
/// Filters the rollup keeps (none, model, channel) are answered from it: the window's whole
/// buckets from `log_rollups` (hours without a model or channel filter; days, then the edges'
/// hours, with one), and the partial hours at its edges from `logs`. Other filters (user,
/// username, token) are selective and indexed, and read `logs` only. Either way the result
/// equals [`sum_consume_quota_raw`] (`tests/api/logs_rollup.rs` compares them on random data).
pub async fn sum_consume_quota(db: &Db, f: &LogFilter) -> Result<i64, sqlx::Error> {
    use log_rollups::Grain;
    let by_user = f.user_id.is_some() || !f.username.is_empty() || !f.token_name.is_empty();
    if by_user {
        return sum_consume_quota_raw(db, f).await;
    }
    let grains: &[Grain] = if f.model_name.is_empty() && f.channel == 0 {
        &[Grain::Hours]
    } else {
        &[Grain::ModelDays, Grain::ModelHours]
    };
    let bound = |t: i64| (t != 0).then_some(t);
    let split = log_rollups::split(bound(f.start_timestamp), bound(f.end_timestamp), grains);
    let mut total = 0;
    for (grain, from, to) in split.rollup {
        total += log_rollups::sum_quota(db, grain, (from, to), &f.model_name, f.channel).await?;
    }
    // The raw pieces are shorter than two hours: read them through the time index.
    for (from, to) in split.raw {
        total += raw_sum(db, f, from, to, true).await?;
    }
    Ok(total)
}

/// [`sum_consume_quota`] read from `logs` alone (the reference the rollup must match).
pub async fn sum_consume_quota_raw(db: &Db, f: &LogFilter) -> Result<i64, sqlx::Error> {
    let bound = |t: i64| (t != 0).then_some(t);
    raw_sum(
        db,
        f,
        bound(f.start_timestamp),
        bound(f.end_timestamp),
        false,
    )
    .await
}

/// Sum of `quota` over the consume logs matching `f` with `created_at` in `[from, to]`;
/// `time_driven` when the window is short (see [`LogFilter::where_window`]).
async fn raw_sum(
    db: &Db,
    f: &LogFilter,
    from: Option<i64>,
    to: Option<i64>,
    time_driven: bool,
) -> Result<i64, sqlx::Error> {
    let f = LogFilter {
        r#type: TYPE_CONSUME,
        ..f.clone()
    };
    let mut args = Vec::new();
    let w = f.where_window(db, &mut args, from, to, time_driven);
    let sum = int_cast(db, "COALESCE(SUM(quota), 0)");
    let sql = format!("SELECT {sum} FROM logs WHERE {w}");
    let rows = fetch(db, sql, args).await?;
    rows.first()
        .map(|r| r.try_get::<i64, _>(0))
        .unwrap_or(Ok(0))
}

/// Rows per batch of [`delete_before`].
const DELETE_BATCH: i64 = 10_000;

/// Deletes logs older than `ts`; returns how many. Batches of [`delete_before_batch`], each
/// keeping the rollup exact.
pub async fn delete_before(db: &Db, ts: i64) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let n = delete_before_batch(db, ts, DELETE_BATCH).await?;
        total += n;
        if n < DELETE_BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Deletes at most `limit` of the oldest logs older than `ts`; returns how many. Retention calls
/// it in a loop, so that purging a large table never holds its locks for long.
///
/// The consume logs deleted are subtracted from the rollup in the same transaction, exactly the
/// rows deleted: PostgreSQL and SQLite return them from the `DELETE`; MySQL, which has no
/// `DELETE ... RETURNING`, locks them first (`SELECT ... FOR UPDATE`) and deletes them by id.
pub async fn delete_before_batch(db: &Db, ts: i64, limit: i64) -> Result<u64, sqlx::Error> {
    const COLS: &str =
        "type, created_at, model_name, channel_id, quota, prompt_tokens, completion_tokens";
    let mut tx = db.pool.begin().await?;
    let (rows, deleted) = match db.backend {
        super::Backend::MySql => {
            // MySQL refuses `LIMIT` inside an `IN (subquery)`.
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id, {COLS} FROM logs WHERE created_at < ? ORDER BY created_at LIMIT ? \
                 FOR UPDATE"
            )))
            .bind(ts)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            let ids = rows
                .iter()
                .map(|r| r.try_get::<i64, _>("id"))
                .collect::<Result<Vec<_>, _>>()?;
            let mut deleted = 0;
            for chunk in super::pow2_chunks(&ids, 1024) {
                let marks = super::marks(chunk.len());
                let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM logs WHERE id IN ({marks})"
                )));
                for id in chunk {
                    q = q.bind(*id);
                }
                deleted += q.execute(&mut *tx).await?.rows_affected();
            }
            (rows, deleted)
        }
        _ => {
            // SQLite (as built by sqlx) and PostgreSQL have no `DELETE ... LIMIT`.
            let sql = super::dialect::dynamic(
                db.backend,
                format!(
                    "DELETE FROM logs WHERE id IN \
                     (SELECT id FROM logs WHERE created_at < ? ORDER BY created_at LIMIT ?) \
                     RETURNING {COLS}"
                ),
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ts)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            let n = rows.len() as u64;
            (rows, n)
        }
    };
    let mut deltas = std::collections::BTreeMap::new();
    for r in &rows {
        let l = Log {
            r#type: r.try_get("type")?,
            created_at: r.try_get("created_at")?,
            model_name: r.try_get("model_name")?,
            channel_id: r.try_get("channel_id")?,
            quota: r.try_get("quota")?,
            prompt_tokens: r.try_get("prompt_tokens")?,
            completion_tokens: r.try_get("completion_tokens")?,
            ..Default::default()
        };
        log_rollups::add(&mut deltas, &l, -1);
    }
    if !deltas.is_empty() {
        log_rollups::apply(db, &mut tx, &deltas).await?;
    }
    tx.commit().await?;
    Ok(deleted)
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
