//! The ledger: reservations (pre-consume) and their settlement, exactly once.
//!
//! Invariants:
//! - [`Ledger::reserve`] is synchronous with the request and atomic in the database, so nothing
//!   can overdraw whatever the concurrency.
//! - A [`Reservation`] is settled or refunded exactly once: `settle`/`refund` consume it, and its
//!   `Drop` refunds whatever was not settled (a cancelled handler, a panic).
//! - Settlements go through ONE writer task (an mpsc queue) that applies them in batches, each in
//!   one transaction with its consume logs. On SQLite this means one writer, so "database is
//!   locked" cannot drop a write; a failed batch is retried, never dropped. [`Ledger::flush`]
//!   waits until everything queued so far is written (used at shutdown and by tests).

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::Db;
use crate::store::ledger::{self as store_ledger, Movement, ReserveError};
use crate::store::logs::{self, Log};

enum Op {
    Move(Box<Movement>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the ledger writer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Ledger {
    tx: mpsc::UnboundedSender<Op>,
    db: Db,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Op")
    }
}

impl Ledger {
    /// Starts the writer task. `log_db` is `None` when logs share the main database (then logs
    /// and quota moves commit together). `batch` delays writes to batch them
    /// (`BATCH_UPDATE_ENABLED` / `BATCH_UPDATE_INTERVAL`).
    pub fn start(db: Db, log_db: Option<Db>, batch: Option<Duration>) -> Ledger {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(db.clone(), log_db, batch, rx));
        Ledger { tx, db }
    }

    /// Reserves `amount` from the user and (unless unlimited) the token.
    pub async fn reserve(
        &self,
        base: Movement,
        amount: i64,
    ) -> Result<Result<Reservation, ReserveError>, sqlx::Error> {
        let amount = amount.max(0);
        match store_ledger::reserve(
            &self.db,
            base.user_id,
            base.token_id,
            base.unlimited,
            amount,
        )
        .await?
        {
            Ok(()) => Ok(Ok(Reservation {
                ledger: self.clone(),
                movement: Some(Movement {
                    reserved: amount,
                    ..base
                }),
            })),
            Err(e) => Ok(Err(e)),
        }
    }

    fn send(&self, m: Movement) {
        if self.tx.send(Op::Move(Box::new(m))).is_err() {
            tracing::error!("ledger writer is gone; a quota movement could not be queued");
        }
    }

    /// Waits until every movement queued before this call is committed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Quota held for one request. Settle or refund it; dropping it refunds.
#[derive(Debug)]
pub struct Reservation {
    ledger: Ledger,
    movement: Option<Movement>,
}

impl Reservation {
    /// The amount held.
    pub fn reserved(&self) -> i64 {
        self.movement.as_ref().map(|m| m.reserved).unwrap_or(0)
    }

    /// Charges `charged` for the request on `channel_id` (refunding or charging the
    /// difference) and writes `log`.
    pub fn settle(mut self, channel_id: i64, charged: i64, log: Option<Log>) {
        if let Some(mut m) = self.movement.take() {
            m.channel_id = channel_id;
            m.charged = charged.max(0);
            m.settled = true;
            m.log = log;
            self.ledger.send(m);
        }
    }

    /// Gives everything back (the upstream failed).
    pub fn refund(mut self) {
        self.refund_inner();
    }

    fn refund_inner(&mut self) {
        if let Some(mut m) = self.movement.take() {
            m.settled = false;
            m.charged = 0;
            m.log = None;
            if m.reserved > 0 {
                self.ledger.send(m);
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.refund_inner();
    }
}

async fn writer(
    db: Db,
    log_db: Option<Db>,
    batch: Option<Duration>,
    mut rx: mpsc::UnboundedReceiver<Op>,
) {
    while let Some(first) = rx.recv().await {
        let mut moves = Vec::new();
        let mut flushes = Vec::new();
        let push = |op: Op, moves: &mut Vec<Movement>, flushes: &mut Vec<_>| match op {
            Op::Move(m) => moves.push(*m),
            Op::Flush(f) => flushes.push(f),
        };
        push(first, &mut moves, &mut flushes);
        if let Some(interval) = batch
            && flushes.is_empty()
        {
            let deadline = tokio::time::Instant::now() + interval;
            while let Ok(Some(op)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                let is_flush = matches!(op, Op::Flush(_));
                push(op, &mut moves, &mut flushes);
                if is_flush {
                    break;
                }
            }
        }
        while let Ok(op) = rx.try_recv() {
            push(op, &mut moves, &mut flushes);
        }
        if !moves.is_empty() {
            let mut attempt = 0u32;
            let mut moves_done = false;
            loop {
                match write_batch(&db, log_db.as_ref(), &mut moves, &mut moves_done).await {
                    Ok(()) => break,
                    Err(e) => {
                        attempt += 1;
                        tracing::error!(error = %e, attempt, n = moves.len(), "ledger batch failed, retrying");
                        if attempt >= 50 {
                            tracing::error!(?moves, "ledger batch abandoned after 50 attempts");
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(20))))
                            .await;
                    }
                }
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}

/// Writes one batch. With a separate log database the quota moves commit first and
/// `moves_done` records it, so a retry only rewrites the logs (never bills twice). Each log records
/// what was really charged, which is less than the price when a balance ran out.
async fn write_batch(
    db: &Db,
    log_db: Option<&Db>,
    moves: &mut [Movement],
    moves_done: &mut bool,
) -> Result<(), sqlx::Error> {
    if let (Some(ldb), true) = (log_db, *moves_done) {
        return write_logs(ldb, moves).await;
    }
    let mut tx = db.pool.begin().await?;
    let charges = store_ledger::apply(db, &mut tx, moves).await?;
    match log_db {
        None => {
            for (m, charged) in moves.iter().zip(&charges) {
                if let Some(l) = charged_log(m, *charged) {
                    logs::insert(db, &mut *tx, &l).await?;
                }
            }
            tx.commit().await?;
        }
        Some(ldb) => {
            tx.commit().await?;
            *moves_done = true;
            for (m, charged) in moves.iter_mut().zip(&charges) {
                m.log = charged_log(m, *charged);
            }
            write_logs(ldb, moves).await?;
        }
    }
    Ok(())
}

/// The movement's consume log with the quota really charged.
fn charged_log(m: &Movement, charged: i64) -> Option<Log> {
    let mut l = m.log.clone()?;
    if l.quota != charged {
        l.content = format!(
            "{} (balance exhausted: charged {charged} of {})",
            l.content, l.quota
        );
        l.quota = charged;
    }
    Some(l)
}

async fn write_logs(ldb: &Db, moves: &[Movement]) -> Result<(), sqlx::Error> {
    let logs: Vec<&Log> = moves.iter().filter_map(|m| m.log.as_ref()).collect();
    if logs.is_empty() {
        return Ok(());
    }
    let mut ltx = ldb.pool.begin().await?;
    for l in &logs {
        logs::insert(ldb, &mut *ltx, l).await?;
    }
    ltx.commit().await
}
