//! Log retention (`LOG_RETENTION_DAYS`, a Tollgate addition; One API only offers the manual
//! `DELETE /api/log/?target_timestamp=`): once a day, delete logs older than that many days.
//!
//! Deletion goes in batches of [`BATCH`] rows, oldest first, each its own statement, with a
//! short pause between them: a purge of millions of rows never holds the table's locks (or
//! SQLite's single writer) for longer than one batch, so billing writes interleave with it.

use std::time::Duration;

use crate::state::AppState;
use crate::store::{Db, logs, now};

/// Rows per `DELETE` statement.
pub const BATCH: i64 = 5_000;

/// The pause between two batches.
pub const PAUSE: Duration = Duration::from_millis(50);

/// Deletes the logs older than `LOG_RETENTION_DAYS` days (none when it is 0); returns how many.
pub async fn purge_old_logs(state: &AppState) -> Result<u64, sqlx::Error> {
    let days = i64::from(state.cfg.log_retention_days);
    if days == 0 {
        return Ok(0);
    }
    let cutoff = now() - days * 24 * 60 * 60;
    let deleted = purge_before(&state.log_db, cutoff, BATCH, PAUSE).await?;
    tracing::info!(deleted, cutoff, "log retention: old logs deleted");
    Ok(deleted)
}

/// Deletes logs with `created_at < cutoff`, `batch` rows per statement, pausing `pause` between
/// statements; returns how many.
pub async fn purge_before(
    db: &Db,
    cutoff: i64,
    batch: i64,
    pause: Duration,
) -> Result<u64, sqlx::Error> {
    let batch = batch.max(1);
    let mut total = 0;
    loop {
        let n = logs::delete_before_batch(db, cutoff, batch).await?;
        total += n;
        if n < batch as u64 {
            return Ok(total);
        }
        tokio::time::sleep(pause).await;
    }
}
