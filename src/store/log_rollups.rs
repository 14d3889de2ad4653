//! The `log_rollups` table: sums of consume logs (type 2) per time bucket, so that the stat
//! routes add up a few thousand rollup rows instead of millions of logs (issue 8).
//!
//! Three grains, told apart by the `grain` column ([`Grain`]):
//! - [`Grain::Hours`]: per UTC hour, every consume log (`model_name = ''`, `channel_id = 0`);
//! - [`Grain::ModelHours`]: per UTC hour, model and channel;
//! - [`Grain::ModelDays`]: per UTC day, model and channel.
//!
//! Invariants (what keeps a rollup answer identical to the raw `SUM` over `logs`):
//! - Every consume log is counted once in each grain, in the same transaction that inserts it
//!   ([`super::logs::insert_many`]); rollups only ever move by deltas (`col = col + ?`), so
//!   concurrent writers (several nodes writing back Redis streams) commute, and each statement's
//!   keys are unique and sorted (no self-conflict, one lock order).
//! - Deleting logs subtracts exactly the rows deleted (taken from the `DELETE ... RETURNING`, or
//!   locked with `SELECT ... FOR UPDATE` on MySQL) in the same transaction
//!   ([`super::logs::delete_before_batch`]); rows whose count reaches zero are removed.
//! - Logs that reach the table any other way (the One API import, benchmark generators) are
//!   followed by [`rebuild`]; the migration that created the table backfilled it.
//! - Filters the rollup does not keep (user, username, token) are answered from `logs`; so are
//!   the partial hours at the edges of a time window ([`split`]).

use std::collections::BTreeMap;

use sqlx::Row;

use super::logs::{Log, TYPE_CONSUME};
use super::{Backend, Db, Tx, dialect};

/// One rollup grain: which bucket length and which dimensions its rows keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grain {
    /// Per UTC hour, all consume logs.
    Hours = 1,
    /// Per UTC hour, model and channel.
    ModelHours = 2,
    /// Per UTC day, model and channel.
    ModelDays = 3,
}

impl Grain {
    pub const ALL: [Grain; 3] = [Grain::Hours, Grain::ModelHours, Grain::ModelDays];

    /// The value of the `grain` column.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// The bucket length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Grain::Hours | Grain::ModelHours => 3_600,
            Grain::ModelDays => 86_400,
        }
    }

    /// Whether rows keep the model and channel.
    pub fn by_model(self) -> bool {
        self != Grain::Hours
    }
}

/// The key of one rollup row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub grain: Grain,
    pub bucket: i64,
    pub model_name: String,
    pub channel_id: i64,
}

/// The sums of one rollup row (or a delta to add to it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub quota: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub request_count: i64,
}

/// The rollup deltas of a set of logs, ordered by key; `sign` is 1 for inserted logs and -1
/// for deleted ones. Logs other than consume logs count nothing.
pub fn deltas<'a>(logs: impl IntoIterator<Item = &'a Log>, sign: i64) -> BTreeMap<Key, Sums> {
    let mut out = BTreeMap::new();
    for l in logs {
        add(&mut out, l, sign);
    }
    out
}

/// Adds one log's contribution (when it is a consume log) to `out`.
pub fn add(out: &mut BTreeMap<Key, Sums>, l: &Log, sign: i64) {
    if l.r#type != TYPE_CONSUME {
        return;
    }
    for g in Grain::ALL {
        let k = Key {
            grain: g,
            bucket: l.created_at - l.created_at.rem_euclid(g.seconds()),
            model_name: if g.by_model() {
                l.model_name.clone()
            } else {
                String::new()
            },
            channel_id: if g.by_model() { l.channel_id } else { 0 },
        };
        let s = out.entry(k).or_default();
        s.quota += sign * l.quota;
        s.prompt_tokens += sign * l.prompt_tokens;
        s.completion_tokens += sign * l.completion_tokens;
        s.request_count += sign;
    }
}

/// Rows per upsert statement (8 bind values each: well under every backend's limit).
const UPSERT_ROWS: usize = 64;

/// Adds `deltas` to the rollup inside `tx` (multi-row upserts in key order). When some delta is
/// negative (deleted logs), rows left with no request are removed.
pub async fn apply(
    db: &Db,
    tx: &mut Tx<'_>,
    deltas: &BTreeMap<Key, Sums>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<_> = deltas
        .iter()
        .filter(|(_, s)| **s != Sums::default())
        .collect();
    for chunk in super::pow2_chunks(&rows, UPSERT_ROWS) {
        let sql = db.multi_row("upsert log_rollups", chunk.len(), || {
            let mut sql = format!(
                "INSERT INTO log_rollups (grain, bucket, model_name, channel_id, quota, \
                 prompt_tokens, completion_tokens, request_count) VALUES {}",
                super::value_rows(chunk.len(), 8)
            );
            sql.push_str(match db.backend {
                Backend::MySql => {
                    " ON DUPLICATE KEY UPDATE quota = quota + VALUES(quota), \
                     prompt_tokens = prompt_tokens + VALUES(prompt_tokens), \
                     completion_tokens = completion_tokens + VALUES(completion_tokens), \
                     request_count = request_count + VALUES(request_count)"
                }
                _ => {
                    " ON CONFLICT (grain, bucket, model_name, channel_id) DO UPDATE SET \
                     quota = log_rollups.quota + excluded.quota, \
                     prompt_tokens = log_rollups.prompt_tokens + excluded.prompt_tokens, \
                     completion_tokens = log_rollups.completion_tokens + excluded.completion_tokens, \
                     request_count = log_rollups.request_count + excluded.request_count"
                }
            });
            sql
        });
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (k, s) in chunk {
            q = q
                .bind(k.grain.code())
                .bind(k.bucket)
                .bind(k.model_name.clone())
                .bind(k.channel_id)
                .bind(s.quota)
                .bind(s.prompt_tokens)
                .bind(s.completion_tokens)
                .bind(s.request_count);
        }
        q.execute(&mut **tx).await?;
    }
    let mut emptied: Vec<(i64, i64)> = rows
        .iter()
        .filter(|(_, s)| s.request_count < 0)
        .map(|(k, _)| (k.grain.code(), k.bucket))
        .collect();
    emptied.dedup();
    for (grain, bucket) in emptied {
        sqlx::query(
            db.sql("DELETE FROM log_rollups WHERE grain = ? AND bucket = ? AND request_count <= 0"),
        )
        .bind(grain)
        .bind(bucket)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// How a window `[start, end]` (inclusive unix seconds, `None` = open) splits for a grain of
/// `grain` seconds: whole buckets `[whole.0, whole.1)`, and the partial buckets before and after
/// them (inclusive ranges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub whole: (Option<i64>, Option<i64>),
    pub head: Option<(i64, i64)>,
    pub tail: Option<(i64, i64)>,
}

/// Splits a window for buckets of `grain` seconds; `None` when it holds no whole bucket.
pub fn plan(start: Option<i64>, end: Option<i64>, grain: i64) -> Option<Plan> {
    // First whole bucket's start, and the end (exclusive) of the last whole bucket.
    let a = start.map(|s| s + (grain - s.rem_euclid(grain)) % grain);
    let b = end.map(|e| (e + 1) - (e + 1).rem_euclid(grain));
    if let (Some(a), Some(b)) = (a, b)
        && a >= b
    {
        return None;
    }
    Some(Plan {
        whole: (a, b),
        head: match (start, a) {
            (Some(s), Some(a)) if s < a => Some((s, a - 1)),
            _ => None,
        },
        tail: match (b, end) {
            (Some(b), Some(e)) if b <= e => Some((b, e)),
            _ => None,
        },
    })
}

/// A window cut into rollup ranges and raw ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// Bucket ranges `[from, to)` to read from the rollup of each grain.
    pub rollup: Vec<(Grain, Option<i64>, Option<i64>)>,
    /// Inclusive `created_at` ranges to read from `logs` (each shorter than the finest grain).
    pub raw: Vec<(Option<i64>, Option<i64>)>,
}

/// Cuts `[start, end]` over `grains`, coarsest first: the whole buckets of the first grain, the
/// edges' whole buckets of the next, and so on; what is left goes to `logs`.
pub fn split(start: Option<i64>, end: Option<i64>, grains: &[Grain]) -> Split {
    fn go(start: Option<i64>, end: Option<i64>, grains: &[Grain], out: &mut Split) {
        let Some((g, finer)) = grains.split_first() else {
            out.raw.push((start, end));
            return;
        };
        match plan(start, end, g.seconds()) {
            None => go(start, end, finer, out),
            Some(p) => {
                out.rollup.push((*g, p.whole.0, p.whole.1));
                for (s, e) in [p.head, p.tail].into_iter().flatten() {
                    go(Some(s), Some(e), finer, out);
                }
            }
        }
    }
    let mut out = Split::default();
    go(start, end, grains, &mut out);
    out
}

/// Sum of quota in the rollup of `grain` over buckets in `[from, to)`, for a model and channel
/// when given (only grains that keep them may be asked so).
pub async fn sum_quota(
    db: &Db,
    grain: Grain,
    (from, to): (Option<i64>, Option<i64>),
    model_name: &str,
    channel_id: i64,
) -> Result<i64, sqlx::Error> {
    let mut sql = format!(
        "SELECT {} FROM log_rollups WHERE grain = ?",
        dialect::as_i64(db.backend, "COALESCE(SUM(quota), 0)")
    );
    let mut ints = vec![grain.code()];
    if let Some(f) = from {
        sql.push_str(" AND bucket >= ?");
        ints.push(f);
    }
    if let Some(t) = to {
        sql.push_str(" AND bucket < ?");
        ints.push(t);
    }
    if channel_id != 0 {
        sql.push_str(" AND channel_id = ?");
        ints.push(channel_id);
    }
    if !model_name.is_empty() {
        sql.push_str(" AND model_name = ?");
    }
    let sql = dialect::dynamic(db.backend, sql);
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for i in ints {
        q = q.bind(i);
    }
    if !model_name.is_empty() {
        q = q.bind(model_name.to_string());
    }
    q.fetch_one(&db.pool).await?.try_get(0)
}

/// Recomputes the whole rollup from `logs` in one transaction (after logs were written around
/// the writer: the One API import, generated benchmark data).
pub async fn rebuild(db: &Db) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM log_rollups")
        .execute(&mut *tx)
        .await?;
    for g in Grain::ALL {
        let (code, secs) = (g.code(), g.seconds());
        let (dims, group) = if g.by_model() {
            ("model_name, channel_id", ", model_name, channel_id")
        } else {
            ("'', 0", "")
        };
        let sql = format!(
            "INSERT INTO log_rollups (grain, bucket, model_name, channel_id, quota, \
             prompt_tokens, completion_tokens, request_count) \
             SELECT {code}, created_at - created_at % {secs}, {dims}, SUM(quota), \
             SUM(prompt_tokens), SUM(completion_tokens), COUNT(*) FROM logs WHERE type = 2 \
             GROUP BY created_at - created_at % {secs}{group}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600;
    const DAY: i64 = 86_400;

    #[test]
    fn plans_split_whole_buckets_from_edges() {
        // Unbounded: everything from the rollup.
        assert_eq!(
            plan(None, None, HOUR),
            Some(Plan {
                whole: (None, None),
                head: None,
                tail: None
            })
        );
        // Aligned on both sides: no edge.
        assert_eq!(
            plan(Some(7_200), Some(10_799), HOUR),
            Some(Plan {
                whole: (Some(7_200), Some(10_800)),
                head: None,
                tail: None
            })
        );
        // Partial hours on both sides.
        assert_eq!(
            plan(Some(7_201), Some(18_000), HOUR),
            Some(Plan {
                whole: (Some(10_800), Some(18_000)),
                head: Some((7_201, 10_799)),
                tail: Some((18_000, 18_000))
            })
        );
        // Inside one hour: the logs only.
        assert_eq!(plan(Some(7_201), Some(10_000), HOUR), None);
        assert_eq!(plan(Some(7_201), Some(7_100), HOUR), None);
        // One side open.
        assert_eq!(
            plan(None, Some(100), HOUR),
            Some(Plan {
                whole: (None, Some(0)),
                head: None,
                tail: Some((0, 100))
            })
        );
        assert_eq!(
            plan(Some(-5), None, DAY),
            Some(Plan {
                whole: (Some(0), None),
                head: Some((-5, -1)),
                tail: None
            })
        );
    }

    #[test]
    fn splits_use_days_then_hours_then_logs() {
        let g = [Grain::ModelDays, Grain::ModelHours];
        // From 10:30 on day 1 to 02:15 on day 4.
        let (s, e) = (DAY + 10 * HOUR + 1_800, 4 * DAY + 2 * HOUR + 900);
        assert_eq!(
            split(Some(s), Some(e), &g),
            Split {
                rollup: vec![
                    (Grain::ModelDays, Some(2 * DAY), Some(4 * DAY)),
                    (Grain::ModelHours, Some(DAY + 11 * HOUR), Some(2 * DAY)),
                    (Grain::ModelHours, Some(4 * DAY), Some(4 * DAY + 2 * HOUR)),
                ],
                raw: vec![
                    (Some(s), Some(DAY + 11 * HOUR - 1)),
                    (Some(4 * DAY + 2 * HOUR), Some(e)),
                ],
            }
        );
        // Less than a day: hours only; less than an hour: logs only.
        let within = split(Some(DAY + 60), Some(DAY + 3 * HOUR), &g);
        assert_eq!(
            within.rollup,
            vec![(Grain::ModelHours, Some(DAY + HOUR), Some(DAY + 3 * HOUR))]
        );
        assert_eq!(
            split(Some(60), Some(70), &g).raw,
            vec![(Some(60), Some(70))]
        );
        assert_eq!(
            split(None, None, &[Grain::Hours]).rollup,
            vec![(Grain::Hours, None, None)]
        );
    }

    #[test]
    fn deltas_count_consume_logs_in_every_grain() {
        let l = |t: i64, ts: i64, m: &str, q: i64| Log {
            r#type: t,
            created_at: ts,
            model_name: m.into(),
            channel_id: 3,
            quota: q,
            prompt_tokens: 1,
            completion_tokens: 2,
            ..Default::default()
        };
        let logs = [
            l(2, 3_599, "a", 5),
            l(2, 3_600, "a", 7),
            l(1, 3_600, "", 100),
            l(2, 90_000, "b", 1),
        ];
        let d = deltas(&logs, 1);
        let hour = |b: i64| Key {
            grain: Grain::Hours,
            bucket: b,
            model_name: String::new(),
            channel_id: 0,
        };
        assert_eq!(d[&hour(0)].quota, 5);
        assert_eq!(d[&hour(3_600)].request_count, 1);
        let day_a = Key {
            grain: Grain::ModelDays,
            bucket: 0,
            model_name: "a".into(),
            channel_id: 3,
        };
        assert_eq!(
            d[&day_a],
            Sums {
                quota: 12,
                prompt_tokens: 2,
                completion_tokens: 4,
                request_count: 2
            }
        );
        // 3 hours of totals, 3 (hour, model) rows, 2 (day, model) rows.
        assert_eq!(d.len(), 8);
        assert_eq!(deltas(&logs, -1)[&day_a].quota, -12);
    }
}
