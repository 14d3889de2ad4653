//! Quota moves made by the relay: reserve (pre-consume), settle and refund, plus the channel
//! status change made by auto-disable.
//!
//! Invariants:
//! - A reservation is one transaction of conditional `UPDATE ... WHERE quota >= ?` statements
//!   whose `rows_affected` is checked; a failed token step rolls the user step back. Nothing is
//!   ever read and then written from Rust, so concurrent requests cannot overdraw.
//! - Settlements are applied by the ledger writer (`billing::ledger`) in batches, each batch in one
//!   transaction together with its consume logs when the logs share the main database.

use super::logs::Log;
use super::{Db, Tx, now};

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveError {
    /// The user's wallet does not cover the amount (or the user is gone).
    User,
    /// The token's own cap does not cover the amount (or the token is gone).
    Token,
}

/// Takes `amount` from the user's quota and, unless `unlimited`, from the token's remaining
/// quota, atomically. `amount <= 0` reserves nothing.
pub async fn reserve(
    db: &Db,
    user_id: i64,
    token_id: i64,
    unlimited: bool,
    amount: i64,
) -> Result<Result<(), ReserveError>, sqlx::Error> {
    if amount <= 0 {
        return Ok(Ok(()));
    }
    let mut tx = db.pool.begin().await?;
    let res = sqlx::query(db.sql("UPDATE users SET quota = quota - ? WHERE id = ? AND quota >= ?"))
        .bind(amount)
        .bind(user_id)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
    if res.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(Err(ReserveError::User));
    }
    if !unlimited {
        let res = sqlx::query(db.sql(
            "UPDATE tokens SET remain_quota = remain_quota - ?, used_quota = used_quota + ?, \
             accessed_time = ? WHERE id = ? AND remain_quota >= ?",
        ))
        .bind(amount)
        .bind(amount)
        .bind(now())
        .bind(token_id)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(Err(ReserveError::Token));
        }
    }
    tx.commit().await?;
    Ok(Ok(()))
}

/// One quota movement to persist. `reserved` was taken by [`reserve`]; `charged` is the final
/// price. `settled == false` means a full refund (no request counted, no log).
///
/// `external` movements were reserved and charged in memory or Redis, never in the database:
/// `charged` is final (already capped by the balances) and is taken from the database's balances
/// as it is.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Movement {
    pub user_id: i64,
    pub token_id: i64,
    pub unlimited: bool,
    pub channel_id: i64,
    pub reserved: i64,
    pub charged: i64,
    /// Whether the request succeeded (counted, logged); false = full refund of `reserved`.
    pub settled: bool,
    /// The consume log to write with it (when settled and `LogConsumeEnabled`).
    pub log: Option<Log>,
    #[serde(default)]
    pub external: bool,
}

/// The first byte of a movement in its compact form ([`Movement::encode`]): a later layout gets
/// another, so that a node never misreads an entry that a newer node wrote.
const COMPACT_V1: u8 = 1;

impl Movement {
    /// The movement as the Redis stream carries it: [`COMPACT_V1`], then postcard (varints, no
    /// field names). Its JSON form cost the write-back 7% of a request's instructions to write
    /// and read back.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_extend(self, vec![COMPACT_V1])
    }

    /// Reads [`Movement::encode`]'s form.
    pub fn decode(bytes: &[u8]) -> anyhow::Result<Movement> {
        match bytes.split_first() {
            Some((&COMPACT_V1, rest)) => Ok(postcard::from_bytes(rest)?),
            Some((v, _)) => anyhow::bail!("movement in format {v}, written by a newer Tollgate"),
            None => anyhow::bail!("empty movement"),
        }
    }
}

/// Applies movements to users, tokens and channels inside `tx`, and returns what each one really
/// charged. Deltas are added with `col = col + ?`, so the order of movements does not matter.
///
/// A price above the reservation (a long answer to a request without `max_tokens`) takes the
/// excess with conditional updates, only as far as the user's and the token's balances go: no
/// balance ever goes below zero, and the returned charge is what the consume log must record.
pub async fn apply(db: &Db, tx: &mut Tx<'_>, moves: &[Movement]) -> Result<Vec<i64>, sqlx::Error> {
    let ts = now();
    let mut charges = Vec::with_capacity(moves.len());
    // The additive deltas of the batch, summed per row: one statement per user, token and channel
    // rather than three or four per movement (each statement is a round trip to the database
    // thread, which was the writer's cost under load). They are written before any conditional
    // step, which must see the balances as they are.
    let mut sums = Sums::default();
    for m in moves {
        let wanted = if m.settled { m.charged } else { 0 };
        let (charged, back) = if m.external {
            // The balances moved elsewhere: the database takes the final charge as it is.
            (m.charged, -m.charged)
        } else if wanted > m.reserved {
            sums.write(db, tx, ts).await?;
            let token = (!m.unlimited).then_some(m.token_id);
            let took = take_excess(db, tx, m.user_id, token, wanted - m.reserved).await?;
            (m.reserved + took, 0)
        } else {
            (wanted, m.reserved - wanted)
        };
        charges.push(charged);
        let count = i64::from(m.settled);
        if back != 0 || charged != 0 || count != 0 {
            let u = sums.users.entry(m.user_id).or_default();
            u.0 += back;
            u.1 += charged;
            u.2 += count;
        }
        if !m.unlimited && m.external && charged != 0 {
            let t = sums.tokens.entry(m.token_id).or_default();
            t.0 -= charged;
            t.1 += charged;
        } else if !m.unlimited && back != 0 {
            let t = sums.tokens.entry(m.token_id).or_default();
            t.0 += back;
            t.1 -= back;
        } else if m.settled {
            sums.tokens.entry(m.token_id).or_default();
        }
        if charged != 0 && m.channel_id > 0 {
            *sums.channels.entry(m.channel_id).or_default() += charged;
        }
    }
    sums.write(db, tx, ts).await?;
    Ok(charges)
}

/// Rows (users or tokens) updated by one statement. Each `CASE` is evaluated branch by branch for
/// every row, so its cost grows with the square of this: 64 keeps it small.
const ROWS_PER_STATEMENT: usize = 64;

/// Pending additive deltas: users (quota, used_quota, request_count), tokens (remain_quota,
/// used_quota; accessed_time is set), channels (used_quota). Ordered maps keep the lock order
/// the same in every transaction.
#[derive(Default)]
struct Sums {
    users: std::collections::BTreeMap<i64, (i64, i64, i64)>,
    tokens: std::collections::BTreeMap<i64, (i64, i64)>,
    channels: std::collections::BTreeMap<i64, i64>,
}

impl Sums {
    async fn write(&mut self, db: &Db, tx: &mut Tx<'_>, ts: i64) -> Result<(), sqlx::Error> {
        // Users and tokens are many per batch (one per distinct user and key that made a
        // request): a few statements for all of them, not one each.
        let users: Vec<(i64, [i64; 3])> = std::mem::take(&mut self.users)
            .into_iter()
            .map(|(id, (quota, used, count))| (id, [quota, used, count]))
            .collect();
        add_by_id(
            db,
            tx,
            "move users",
            "users",
            ["quota", "used_quota", "request_count"],
            &users,
            None,
        )
        .await?;
        let tokens = std::mem::take(&mut self.tokens);
        let (touched, moved): (Vec<_>, Vec<_>) = tokens
            .into_iter()
            .map(|(id, (remain, used))| (id, [remain, used]))
            .partition(|(_, d)| *d == [0, 0]);
        // Tokens used at no charge only have their access time set.
        let touched: Vec<(i64, [i64; 0])> = touched.into_iter().map(|(id, _)| (id, [])).collect();
        add_by_id(db, tx, "touch tokens", "tokens", [], &touched, Some(ts)).await?;
        add_by_id(
            db,
            tx,
            "move tokens",
            "tokens",
            ["remain_quota", "used_quota"],
            &moved,
            Some(ts),
        )
        .await?;
        for (id, used) in std::mem::take(&mut self.channels) {
            sqlx::query(db.sql("UPDATE channels SET used_quota = used_quota + ? WHERE id = ?"))
                .bind(used)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// Adds each row's deltas to `columns` of `table`, [`ROWS_PER_STATEMENT`] rows per statement
/// (`col = col + CASE id WHEN ? THEN ? ... END`), and sets `accessed_time` when given.
async fn add_by_id<const N: usize>(
    db: &Db,
    tx: &mut Tx<'_>,
    name: &'static str,
    table: &str,
    columns: [&str; N],
    rows: &[(i64, [i64; N])],
    accessed: Option<i64>,
) -> Result<(), sqlx::Error> {
    for chunk in super::pow2_chunks(rows, ROWS_PER_STATEMENT) {
        let sql = db.multi_row(name, chunk.len(), || {
            let cases = vec!["WHEN ? THEN ?"; chunk.len()].join(" ");
            let mut sets: Vec<String> = columns
                .iter()
                .map(|c| format!("{c} = {c} + CASE id {cases} END"))
                .collect();
            if accessed.is_some() {
                sets.push("accessed_time = ?".into());
            }
            format!(
                "UPDATE {table} SET {} WHERE id IN ({})",
                sets.join(", "),
                super::marks(chunk.len())
            )
        });
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in 0..N {
            for (id, d) in chunk {
                q = q.bind(*id).bind(d[c]);
            }
        }
        if let Some(ts) = accessed {
            q = q.bind(ts);
        }
        for (id, _) in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Takes up to `want` from the user's quota and (for a limited token) the token's remaining quota,
/// never below zero. Each step is a conditional update; when `want` cannot be covered, what is
/// left is taken instead. Returns the amount taken.
async fn take_excess(
    db: &Db,
    tx: &mut Tx<'_>,
    user_id: i64,
    token_id: Option<i64>,
    mut want: i64,
) -> Result<i64, sqlx::Error> {
    use sqlx::Row;
    // A few rounds cover concurrent reservations changing the balance between the read and the
    // conditional update; past them the excess is forgiven rather than overdrawn.
    for _ in 0..4 {
        if want <= 0 {
            return Ok(0);
        }
        let user =
            sqlx::query(db.sql("UPDATE users SET quota = quota - ? WHERE id = ? AND quota >= ?"))
                .bind(want)
                .bind(user_id)
                .bind(want)
                .execute(&mut **tx)
                .await?;
        if user.rows_affected() == 1 {
            let Some(t) = token_id else {
                return Ok(want);
            };
            let token = sqlx::query(db.sql(
                "UPDATE tokens SET remain_quota = remain_quota - ?, used_quota = used_quota + ? \
                 WHERE id = ? AND remain_quota >= ?",
            ))
            .bind(want)
            .bind(want)
            .bind(t)
            .bind(want)
            .execute(&mut **tx)
            .await?;
            if token.rows_affected() == 1 {
                return Ok(want);
            }
            sqlx::query(db.sql("UPDATE users SET quota = quota + ? WHERE id = ?"))
                .bind(want)
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
        }
        let mut room: i64 = sqlx::query(db.sql("SELECT quota FROM users WHERE id = ?"))
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0);
        if let Some(t) = token_id {
            let left: i64 = sqlx::query(db.sql("SELECT remain_quota FROM tokens WHERE id = ?"))
                .bind(t)
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(0);
            room = room.min(left);
        }
        want = want.min(room.max(0));
    }
    Ok(0)
}

/// Deletes the cursors whose name starts with `prefix` and whose position is below `ms` (the
/// ledger writers of processes long gone: each process names its own). Returns how many.
pub async fn prune_cursors(db: &Db, prefix: &str, ms: i64) -> Result<u64, sqlx::Error> {
    let res = sqlx::query(db.sql("DELETE FROM ledger_cursors WHERE name LIKE ? AND ms < ?"))
        .bind(format!("{prefix}%"))
        .bind(ms)
        .execute(&db.pool)
        .await?;
    Ok(res.rows_affected())
}

/// The write-back position of a Redis ledger stream, `(0, 0)` before the first batch.
pub async fn cursor(db: &Db, tx: &mut Tx<'_>, name: &str) -> Result<(i64, i64), sqlx::Error> {
    use sqlx::Row;
    let row = sqlx::query(db.sql("SELECT ms, seq FROM ledger_cursors WHERE name = ?"))
        .bind(name.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(r) => Ok((r.try_get(0)?, r.try_get(1)?)),
        None => {
            sqlx::query(db.sql("INSERT INTO ledger_cursors (name, ms, seq) VALUES (?, 0, 0)"))
                .bind(name.to_string())
                .execute(&mut **tx)
                .await?;
            Ok((0, 0))
        }
    }
}

/// Moves a stream's write-back position from `from` to `to`; false when another node moved it
/// first (the caller rolls back: those movements are in the database already).
pub async fn advance_cursor(
    db: &Db,
    tx: &mut Tx<'_>,
    name: &str,
    from: (i64, i64),
    to: (i64, i64),
) -> Result<bool, sqlx::Error> {
    let res = sqlx::query(
        db.sql("UPDATE ledger_cursors SET ms = ?, seq = ? WHERE name = ? AND ms = ? AND seq = ?"),
    )
    .bind(to.0)
    .bind(to.1)
    .bind(name.to_string())
    .bind(from.0)
    .bind(from.1)
    .execute(&mut **tx)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// A user's quota and (when asked) a token's remaining quota, to seed in-memory or Redis
/// balances. `None` when the row is gone.
pub async fn balances(
    db: &Db,
    user_id: i64,
    token_id: Option<i64>,
) -> Result<(Option<i64>, Option<i64>), sqlx::Error> {
    use sqlx::Row;
    let user = sqlx::query(db.sql("SELECT quota FROM users WHERE id = ?"))
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.try_get::<i64, _>(0))
        .transpose()?;
    let token = match token_id {
        Some(t) => sqlx::query(db.sql("SELECT remain_quota FROM tokens WHERE id = ?"))
            .bind(t)
            .fetch_optional(&db.pool)
            .await?
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?,
        None => None,
    };
    Ok((user, token))
}

/// Marks a channel auto-disabled (status 3) and its abilities disabled, in one transaction.
pub async fn auto_disable_channel(db: &Db, channel_id: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    sqlx::query(db.sql("UPDATE channels SET status = 3 WHERE id = ? AND status = 1"))
        .bind(channel_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(db.sql("UPDATE abilities SET enabled = 0 WHERE channel_id = ?"))
        .bind(channel_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_movements_read_back_as_written() {
        let full = Movement {
            user_id: 7,
            token_id: -3,
            unlimited: true,
            channel_id: 1 << 40,
            reserved: i64::MAX,
            charged: i64::MIN,
            settled: true,
            log: Some(Log {
                user_id: 7,
                created_at: 1_700_000_000,
                r#type: 2,
                content: "模型倍率 15.00，分组倍率 1.00 \"quoted\"".into(),
                username: "alice".into(),
                token_name: "".into(),
                token_id: 3,
                model_name: "gpt-4o".into(),
                quota: 1234,
                prompt_tokens: 12,
                completion_tokens: 9,
                channel_id: 1,
                request_id: "2026120107000000000001".into(),
                elapsed_time: 85,
                is_stream: true,
                system_prompt_reset: false,
                ..Log::default()
            }),
            external: false,
        };
        for m in [full, Movement::default()] {
            let bytes = m.encode().unwrap();
            let back = Movement::decode(&bytes).unwrap();
            assert_eq!(format!("{back:?}"), format!("{m:?}"));
            // Smaller than the JSON it replaces.
            assert!(bytes.len() < serde_json::to_vec(&m).unwrap().len() / 2);
        }
    }

    #[test]
    fn unknown_or_broken_movements_are_refused() {
        let mut bytes = Movement::default().encode().unwrap();
        assert!(Movement::decode(&[]).is_err());
        assert!(Movement::decode(&bytes[..bytes.len() - 1]).is_err());
        bytes[0] = 2;
        let err = Movement::decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("newer Tollgate"), "{err}");
    }
}
