//! The ledger: reservations (pre-consume) and their settlement, exactly once.
//!
//! Where balances move depends on the deployment (docs/multi-node.md):
//! - **Database** (no Redis, `MEMORY_CACHE_ENABLED` off): a reservation is one transaction of
//!   conditional `UPDATE`s; settlements go through the writer task below.
//! - **Memory** (no Redis, `MEMORY_CACHE_ENABLED=true`, one node): balances live in this process
//!   ([`MemoryBalances`], loaded from the database on first use), so the hot path runs no SQL;
//!   settled movements reach the database through the writer.
//! - **Redis** (`REDIS_CONN_STRING`): balances live in Redis and move through Lua scripts; a
//!   settlement appends its movement to a Redis stream in the same script, and every node writes
//!   the streams back to the database, each entry exactly once (a cursor committed with it).
//!   Holds of a node that died are given back once its heartbeat expires.
//!
//! Invariants, in every mode:
//! - [`Ledger::reserve`] is atomic against every other reservation: nothing can overdraw, whatever
//!   the concurrency or the number of nodes.
//! - A [`Reservation`] is settled or refunded exactly once: `settle`/`refund` consume it, and its
//!   `Drop` refunds whatever was not settled (a cancelled handler, a panic).
//! - The database writer applies movements in batches, each in one transaction with its consume
//!   logs (multi-row `INSERT`s of up to 64 logs) and their rollup rows; on SQLite that means one
//!   writer, so "database is locked" cannot drop a write; a failed batch is retried, never
//!   dropped. [`Ledger::flush`] waits until everything settled so far is in
//!   the database (shutdown, tests).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::cache::memory::MemoryBalances;
use crate::cache::redis::{Payload, QuotaStore, Reserve, SHARDS, Settle};
use crate::error::{AppError, V1Error};
use crate::store::Db;
use crate::store::ledger::{self as store_ledger, Movement, ReserveError};
use crate::store::logs::{self, Log};

/// Where balances live.
#[derive(Clone, Debug)]
pub enum Balances {
    Database,
    Memory(Arc<MemoryBalances>),
    Redis(Arc<QuotaStore>),
}

impl Balances {
    pub fn name(&self) -> &'static str {
        match self {
            Balances::Database => "database",
            Balances::Memory(_) => "memory",
            Balances::Redis(_) => "redis",
        }
    }
}

/// The ledger could not be reached (the request is refused; nothing was taken).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("quota store unavailable: {0}")]
    Redis(anyhow::Error),
}

impl From<LedgerError> for AppError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Db(e) => e.into(),
            LedgerError::Redis(e) => {
                tracing::error!(error = %e, "quota store (Redis) unavailable");
                AppError::Unavailable("quota service is unavailable, try again shortly".into())
            }
        }
    }
}

impl From<LedgerError> for V1Error {
    fn from(e: LedgerError) -> Self {
        V1Error(e.into())
    }
}

enum Op {
    Move(Box<Movement>),
    Flush(oneshot::Sender<()>),
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Op")
    }
}

/// Settlements still running against Redis, so that `flush` can wait for them.
#[derive(Debug, Default)]
struct InFlight {
    n: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    fn start(&self) {
        self.n.fetch_add(1, Ordering::SeqCst);
    }
    fn done(&self) {
        if self.n.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }
    async fn wait(&self) {
        loop {
            let idle = self.idle.notified();
            if self.n.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Handle to the ledger. Cheap to clone: one `Arc` (each reservation holds a clone, and the
/// handles inside were eleven reference counts to touch per request).
#[derive(Clone, Debug)]
pub struct Ledger(Arc<LedgerInner>);

#[derive(Debug)]
pub struct LedgerInner {
    tx: mpsc::UnboundedSender<Op>,
    db: Db,
    log_db: Option<Db>,
    balances: Balances,
    /// This process's id in Redis holds (a restarted node gets a new one).
    node: Arc<str>,
    seq: Arc<AtomicU64>,
    in_flight: Arc<InFlight>,
    /// Wakes the Redis write-back soon after a settlement (unless batching).
    wake: Arc<Notify>,
    /// Settled holds whose receipts Redis may drop (the answer arrived), per shard.
    receipts: Arc<Receipts>,
    /// Wakes the database writer out of its batching wait when a flush is queued.
    flush_queued: Arc<Notify>,
    batching: bool,
    /// The runtime the ledger was started on. Redis steps run there, not on the actix worker
    /// that settled: a worker's runtime stops with the server, and its tasks with it.
    rt: tokio::runtime::Handle,
}

impl std::ops::Deref for Ledger {
    type Target = LedgerInner;
    fn deref(&self) -> &LedgerInner {
        &self.0
    }
}

/// How often a node proves it is alive, and how long until its holds are given back.
const HEARTBEAT: Duration = Duration::from_secs(2);
const HEARTBEAT_TTL: u64 = 6;

impl Ledger {
    /// Starts the database writer (and, with Redis, the write-back, heartbeat and reaper tasks).
    /// `log_db` is `None` when logs share the main database (then logs and quota moves commit
    /// together). `batch` delays writes to batch them (`BATCH_UPDATE_ENABLED` /
    /// `BATCH_UPDATE_INTERVAL`).
    pub fn start(
        db: Db,
        log_db: Option<Db>,
        batch: Option<Duration>,
        balances: Balances,
    ) -> Ledger {
        let (tx, rx) = mpsc::unbounded_channel();
        let flush_queued = Arc::new(Notify::new());
        let node: Arc<str> = Arc::from(uuid::Uuid::new_v4().simple().to_string());
        tokio::spawn(writer(
            db.clone(),
            log_db.clone(),
            batch,
            rx,
            flush_queued.clone(),
            format!("writer:{node}"),
        ));
        let ledger = Ledger(Arc::new(LedgerInner {
            tx,
            db,
            log_db,
            balances,
            node,
            seq: Arc::new(AtomicU64::new(0)),
            in_flight: Arc::new(InFlight::default()),
            wake: Arc::new(Notify::new()),
            receipts: Arc::new(Receipts::default()),
            flush_queued,
            batching: batch.is_some(),
            rt: tokio::runtime::Handle::current(),
        }));
        if let Balances::Redis(q) = &ledger.balances {
            let every = batch.unwrap_or(Duration::from_millis(100));
            tokio::spawn(write_back_loop(ledger.clone(), q.clone(), every));
            tokio::spawn(heartbeat_loop(ledger.clone(), q.clone()));
        }
        ledger
    }

    pub fn balances(&self) -> &Balances {
        &self.balances
    }

    /// Reserves `amount` from the user and (unless unlimited) the token.
    pub async fn reserve(
        &self,
        base: Movement,
        amount: i64,
    ) -> Result<Result<Reservation, ReserveError>, LedgerError> {
        let amount = amount.max(0);
        let token = (!base.unlimited).then_some(base.token_id);
        let mut hold = None;
        match &self.balances {
            Balances::Database => {
                if let Err(e) = store_ledger::reserve(
                    &self.db,
                    base.user_id,
                    base.token_id,
                    base.unlimited,
                    amount,
                )
                .await?
                {
                    return Ok(Err(e));
                }
            }
            Balances::Memory(m) => {
                let mut loaded = false;
                loop {
                    match m.reserve(base.user_id, token, amount) {
                        Reserve::Ok => break,
                        Reserve::UserShort => return Ok(Err(ReserveError::User)),
                        Reserve::TokenShort => return Ok(Err(ReserveError::Token)),
                        Reserve::Missing if loaded => return Ok(Err(ReserveError::User)),
                        Reserve::Missing => {
                            if let Err(e) = self.load_memory(m, base.user_id, token).await? {
                                return Ok(Err(e));
                            }
                            loaded = true;
                        }
                    }
                }
            }
            Balances::Redis(q) => {
                let id = format!("{}:{}", self.node, self.seq.fetch_add(1, Ordering::Relaxed));
                let value = format!(
                    "{} {} {} {amount}",
                    self.node,
                    base.user_id,
                    token.map_or("-".to_string(), |t| t.to_string())
                );
                let mut loaded = false;
                loop {
                    let r = match q.reserve(base.user_id, token, amount, &id, &value).await {
                        Ok(r) => r,
                        Err(e) => {
                            self.release_unanswered(q, base.user_id, token, &id, amount);
                            return Err(LedgerError::Redis(e));
                        }
                    };
                    match r {
                        Reserve::Ok => break,
                        Reserve::UserShort => return Ok(Err(ReserveError::User)),
                        Reserve::TokenShort => return Ok(Err(ReserveError::Token)),
                        Reserve::Missing if loaded => return Ok(Err(ReserveError::User)),
                        Reserve::Missing => {
                            if let Err(e) = load_redis(&self.db, q, base.user_id, token).await? {
                                return Ok(Err(e));
                            }
                            loaded = true;
                        }
                    }
                }
                hold = Some(id);
            }
        }
        Ok(Ok(Reservation {
            ledger: self.clone(),
            hold,
            movement: Some(Movement {
                reserved: amount,
                ..base
            }),
        }))
    }

    async fn load_memory(
        &self,
        m: &MemoryBalances,
        user_id: i64,
        token: Option<i64>,
    ) -> Result<Result<(), ReserveError>, LedgerError> {
        for _ in 0..10 {
            let version = m.version(user_id);
            let (u, t) = store_ledger::balances(&self.db, user_id, token).await?;
            let Some(u) = u else {
                return Ok(Err(ReserveError::User));
            };
            let mut ok = m.load(user_id, None, u, version);
            if let Some(tid) = token {
                let Some(t) = t else {
                    return Ok(Err(ReserveError::Token));
                };
                ok &= m.load(user_id, Some(tid), t, version);
            }
            if ok {
                return Ok(Ok(()));
            }
        }
        Ok(Err(ReserveError::User))
    }

    /// Applies a quota change already committed to the database (a top-up, a redeemed code, an
    /// admin edit of a user's quota or a token's remaining quota) to the live balances.
    pub fn credit(&self, user_id: i64, token: Option<i64>, delta: i64) {
        match &self.balances {
            Balances::Database => {}
            Balances::Memory(m) => m.credit(user_id, token, delta),
            Balances::Redis(q) => {
                let q = q.clone();
                // One id for every attempt: a retry after a lost answer applies nothing again.
                let id: Arc<str> = Arc::from(format!(
                    "{}:{}",
                    self.node,
                    self.seq.fetch_add(1, Ordering::Relaxed)
                ));
                let _ = self.spawn_retrying("credit", false, move || {
                    let (q, id) = (q.clone(), id.clone());
                    async move { q.credit(&id, user_id, token, delta).await }
                });
            }
        }
    }

    /// A reserve script whose answer never came (a timeout under load) may still have run and
    /// left a hold that nobody would settle: release it now and twice more later (the script may
    /// still be queued). Releasing is idempotent, and a hold that was never made is a no-op.
    fn release_unanswered(
        &self,
        q: &Arc<QuotaStore>,
        user_id: i64,
        token: Option<i64>,
        id: &str,
        amount: i64,
    ) {
        let (q, id) = (q.clone(), id.to_string());
        self.rt.spawn(async move {
            for delay in [0, 5, 30] {
                tokio::time::sleep(Duration::from_secs(delay)).await;
                match q.release(user_id, token, &id, amount).await {
                    Ok(true) => {
                        tracing::warn!(hold = %id, "released the hold of an unanswered reservation");
                        return;
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, hold = %id, "cannot release a hold yet"),
                }
            }
        });
    }

    /// Runs a Redis step until it succeeds (Redis may be restarting); `flush` waits for it.
    /// `here`: run it on the calling thread's runtime when that thread has its own Redis
    /// connection (an HTTP worker settling a request), else on the ledger's runtime.
    fn spawn_retrying<F, Fut>(&self, what: &'static str, here: bool, step: F) -> Settled
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.in_flight.start();
        let (done, settled) = oneshot::channel();
        let local =
            here && matches!(&self.balances, Balances::Redis(q) if q.pool().attached_here());
        let job = Retrying {
            what,
            step: Some(Arc::new(move || Box::pin(step()) as StepFuture)),
            in_flight: self.in_flight.clone(),
            done: Some(done),
            rt: local.then(|| self.rt.clone()),
        };
        if local {
            tokio::spawn(job.run());
        } else {
            self.rt.spawn(job.run());
        }
        Settled(Some(settled))
    }

    fn send(&self, m: Movement) {
        if self.tx.send(Op::Move(Box::new(m))).is_err() {
            tracing::error!("ledger writer is gone; a quota movement could not be queued");
        }
    }

    /// Waits until every movement settled before this call is committed to the database.
    pub async fn flush(&self) {
        if let Balances::Redis(q) = &self.balances {
            self.in_flight.wait().await;
            if let Err(e) = self.receipts.forget(q).await {
                tracing::warn!(error = %e, "cannot drop settled holds' receipts yet");
            }
            let mut attempt = 0;
            while let Err(e) = write_back(self, q).await {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "ledger write-back failed during flush");
                if attempt >= 20 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Flush(tx)).is_ok() {
            self.flush_queued.notify_one();
            let _ = rx.await;
        }
    }

    /// Applies one settlement to the live balances and queues or streams its movement.
    fn finish(&self, hold: Option<String>, m: Movement) -> Settled {
        let token = (!m.unlimited).then_some(m.token_id);
        let price = if m.settled { m.charged } else { 0 };
        match &self.balances {
            Balances::Database => {
                self.send(m);
                Settled(None)
            }
            Balances::Memory(mem) => {
                let charged = mem
                    .settle(m.user_id, token, m.reserved, price)
                    .unwrap_or_else(|| price.min(m.reserved));
                if m.settled || charged != 0 {
                    self.send(Movement {
                        charged,
                        external: true,
                        ..m
                    });
                }
                Settled(None)
            }
            Balances::Redis(q) => {
                let q = q.clone();
                let db = self.db.clone();
                let (node, receipts) = (self.node.clone(), self.receipts.clone());
                let hold = hold.unwrap_or_default();
                let payload = match m.encode() {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot encode a quota movement");
                        return Settled(None);
                    }
                };
                let op = Settle {
                    node,
                    user_id: m.user_id,
                    token,
                    hold_id: Arc::from(hold),
                    reserved: m.reserved,
                    price,
                    counted: m.settled,
                    payload: Arc::from(payload),
                };
                let settled = self.spawn_retrying("settle", true, move || {
                    let (q, db, op) = (q.clone(), db.clone(), op.clone());
                    let receipts = receipts.clone();
                    async move {
                        loop {
                            // Idempotent: a retry after a lost answer gets the first charge.
                            let r = q.settle(op.clone()).await?;
                            if r.is_some() {
                                receipts.add(op.user_id, &op.hold_id);
                                return Ok(());
                            }
                            // The balances vanished (Redis restarted): reload and settle again; the
                            // hold went with them, so the whole price is taken from the new balance.
                            load_redis(&db, &q, op.user_id, op.token)
                                .await
                                .map_err(|e| anyhow::anyhow!("{e}"))?
                                .ok();
                        }
                    }
                });
                if !self.batching {
                    self.wake.notify_one();
                }
                settled
            }
        }
    }
}

type StepFuture = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>;

/// A Redis step retried until it succeeds ([`Ledger::spawn_retrying`]). One running on an HTTP
/// worker's runtime (`rt` set) moves to the ledger's runtime if that worker stops first (the
/// server shutting down drops its tasks): a settlement is never dropped with it. Settling again
/// after a lost answer is safe (the hold's receipt returns the first charge).
struct Retrying {
    what: &'static str,
    /// `None` once it succeeded.
    step: Option<Arc<dyn Fn() -> StepFuture + Send + Sync>>,
    in_flight: Arc<InFlight>,
    done: Option<oneshot::Sender<()>>,
    /// Where to move an unfinished step when dropped; `None` once moved.
    rt: Option<tokio::runtime::Handle>,
}

impl Retrying {
    async fn run(mut self) {
        if let Some(step) = self.step.clone() {
            let mut attempt = 0u32;
            while let Err(e) = step().await {
                attempt += 1;
                tracing::error!(error = %e, attempt, what = self.what, "quota store step failed, retrying");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt.min(25)))).await;
            }
        }
        self.step = None;
        self.in_flight.done();
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

impl Drop for Retrying {
    fn drop(&mut self) {
        if let (Some(step), Some(rt)) = (self.step.take(), self.rt.take()) {
            let moved = Retrying {
                what: self.what,
                step: Some(step),
                in_flight: self.in_flight.clone(),
                done: self.done.take(),
                rt: None,
            };
            rt.spawn(moved.run());
        }
    }
}

/// Holds settled in Redis whose answer this node has, per shard: their receipts can go (see
/// [`QuotaStore::settle`]). Dropped in one `HDEL` per shard by the write-back.
#[derive(Debug)]
struct Receipts(Vec<std::sync::Mutex<Vec<String>>>);

impl Default for Receipts {
    fn default() -> Self {
        Receipts((0..SHARDS).map(|_| Default::default()).collect())
    }
}

impl Receipts {
    fn shard(&self, shard: i64) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.0[shard as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, user_id: i64, hold: &str) {
        self.shard(QuotaStore::shard_of(user_id))
            .push(hold.to_string());
    }

    async fn forget(&self, q: &QuotaStore) -> anyhow::Result<()> {
        for shard in 0..SHARDS {
            let ids = std::mem::take(&mut *self.shard(shard));
            if let Err(e) = q.forget(shard, &ids).await {
                // Kept for the next round (a receipt left over costs Redis memory, not money).
                self.shard(shard).extend(ids);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// A settlement on its way. With Redis, [`Settled::wait`] returns once the charge and its
/// movement are in Redis (or after a short bound, while Redis is unreachable); otherwise at once.
#[derive(Debug)]
pub struct Settled(Option<oneshot::Receiver<()>>);

impl Settled {
    pub async fn wait(self) {
        if let Some(rx) = self.0 {
            let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
        }
    }
}

/// Seeds a user's (and token's) Redis balances from the database.
async fn load_redis(
    db: &Db,
    q: &QuotaStore,
    user_id: i64,
    token: Option<i64>,
) -> Result<Result<(), ReserveError>, LedgerError> {
    let redis = LedgerError::Redis;
    for _ in 0..10 {
        let version = q.version(user_id).await.map_err(redis)?;
        let (u, t) = store_ledger::balances(db, user_id, token).await?;
        let Some(u) = u else {
            return Ok(Err(ReserveError::User));
        };
        let mut ok = q.load(user_id, None, u, &version).await.map_err(redis)?;
        if let Some(tid) = token {
            let Some(t) = t else {
                return Ok(Err(ReserveError::Token));
            };
            ok &= q
                .load(user_id, Some(tid), t, &version)
                .await
                .map_err(redis)?;
        }
        if ok {
            return Ok(Ok(()));
        }
    }
    Ok(Err(ReserveError::User))
}

/// Quota held for one request. Settle or refund it; dropping it refunds.
#[derive(Debug)]
pub struct Reservation {
    ledger: Ledger,
    hold: Option<String>,
    movement: Option<Movement>,
}

impl Reservation {
    /// The amount held.
    pub fn reserved(&self) -> i64 {
        self.movement.as_ref().map(|m| m.reserved).unwrap_or(0)
    }

    /// Charges `charged` for the request on `channel_id` (refunding or charging the
    /// difference) and writes `log`. The returned [`Settled`] may be awaited before answering the
    /// client, so that a node dying right after the answer still has the charge recorded.
    pub fn settle(mut self, channel_id: i64, charged: i64, log: Option<Log>) -> Settled {
        match self.movement.take() {
            Some(mut m) => {
                m.channel_id = channel_id;
                m.charged = charged.max(0);
                m.settled = true;
                m.log = log;
                self.ledger.finish(self.hold.take(), m)
            }
            None => Settled(None),
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
                let _ = self.ledger.finish(self.hold.take(), m);
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.refund_inner();
    }
}

/// Writes every Redis stream back to the database until they are empty.
async fn write_back(ledger: &Ledger, q: &QuotaStore) -> anyhow::Result<usize> {
    const BATCH: usize = 2000;
    let db = &ledger.db;
    let mut written = 0;
    let mut failed = None;
    for shard in 0..SHARDS {
        // Where the next read starts; and whether the log database failed this round, after
        // which the round goes on with the quota moves only and trims nothing.
        let mut after = None;
        let mut logs_down = false;
        loop {
            let entries = q.read_stream(shard, after, BATCH).await?;
            let Some(last) = entries.last().map(|e| e.id) else {
                break;
            };
            let name = q.stream_key(shard);
            let mut moves = entries
                .iter()
                .map(|e| {
                    let mut m = match &e.payload {
                        Payload::Compact(b) => Movement::decode(b)?,
                        Payload::Json(j) => serde_json::from_slice(j)?,
                    };
                    m.charged = e.charged;
                    m.external = true;
                    Ok(m)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut tx = db.pool.begin().await?;
            let from = store_ledger::cursor(db, &mut tx, name).await?;
            // Entries come in id order: those up to the cursor are in the database already.
            let done = entries.partition_point(|e| e.id <= from);
            let fresh = &mut moves[done..];
            if !fresh.is_empty() {
                let charges = store_ledger::apply(db, &mut tx, fresh).await?;
                for (m, c) in fresh.iter_mut().zip(&charges) {
                    charge_log(&mut m.log, *c);
                }
                if ledger.log_db.is_none() {
                    // Taken, not copied: a round that fails reads its entries from Redis again.
                    let rows: Vec<Log> = fresh.iter_mut().filter_map(|m| m.log.take()).collect();
                    logs::insert_many(db, &mut tx, rows).await?;
                }
                if !store_ledger::advance_cursor(db, &mut tx, name, from, last).await? {
                    // Another node wrote these first.
                    tx.rollback().await?;
                    continue;
                }
            }
            tx.commit().await?;
            written += moves.len() - done;
            if let (Some(ldb), false) = (&ledger.log_db, logs_down) {
                // Logs in their own database follow the quota moves, from the entries still in
                // the stream: those whose moves are committed but whose logs are not (a log
                // database that was down, a node that stopped in between) too. The stream keeps
                // them until their logs are in.
                for m in &mut moves[..done] {
                    charge_log(&mut m.log, m.charged);
                }
                if moves.iter().any(|m| m.log.is_some()) {
                    let logs_cursor = format!("logs:{name}");
                    let rows_after = |at: (i64, i64)| {
                        let start = entries.partition_point(|e| e.id <= at);
                        moves[start..]
                            .iter()
                            .filter_map(|m| m.log.clone())
                            .collect()
                    };
                    if let Err(e) = write_logs(ldb, &logs_cursor, last, rows_after).await {
                        tracing::error!(error = %e, shard, "consume logs not written yet; kept in Redis");
                        failed = Some(e);
                        // The main database's balances keep up meanwhile.
                        logs_down = true;
                    }
                }
            }
            if logs_down {
                // Nothing is trimmed: entries whose moves are in need no second read.
                after = Some(last.max(from));
            } else {
                q.trim_stream(shard, last).await?;
                after = Some(last);
            }
            if entries.len() < BATCH {
                break;
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(written),
    }
}

async fn write_back_loop(ledger: Ledger, q: Arc<QuotaStore>, every: Duration) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = ledger.wake.notified() => {
                // Let a burst of settlements land before writing them together.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if let Err(e) = ledger.receipts.forget(&q).await {
            tracing::warn!(error = %e, "cannot drop settled holds' receipts yet");
        }
        if let Err(e) = write_back(&ledger, &q).await {
            tracing::warn!(error = %e, "ledger write-back failed, will retry");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Keeps this node's heartbeat alive and gives back the holds of nodes whose heartbeat expired
/// (they died mid-request: their reservations will never be settled).
async fn heartbeat_loop(ledger: Ledger, q: Arc<QuotaStore>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        if let Err(e) = q.heartbeat(&ledger.node, HEARTBEAT_TTL).await {
            tracing::warn!(error = %e, "cannot refresh the node heartbeat in Redis");
            continue;
        }
        n += 1;
        if n.is_multiple_of(2)
            && let Err(e) = release_dead_holds(&ledger, &q).await
        {
            tracing::warn!(error = %e, "cannot release the holds of dead nodes");
        }
    }
}

/// Gives back every hold whose node's heartbeat is gone. Returns how many.
pub async fn release_dead_holds(ledger: &Ledger, q: &QuotaStore) -> anyhow::Result<usize> {
    let mut released = 0;
    let mut alive = std::collections::HashMap::new();
    for shard in 0..SHARDS {
        for (id, value) in q.holds(shard).await? {
            let mut parts = value.split(' ');
            let Some(node) = parts.next() else { continue };
            if node == &*ledger.node {
                continue;
            }
            let live = match alive.get(node) {
                Some(l) => *l,
                None => {
                    let l = q.node_alive(node).await?;
                    alive.insert(node.to_string(), l);
                    l
                }
            };
            if live {
                continue;
            }
            let Some(user) = parts.next() else { continue };
            if user == "=" {
                // The receipt of a hold the dead node settled: nothing to give back.
                q.forget(shard, &[id]).await?;
                continue;
            }
            let (Some(token), Some(amount)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(user), Ok(amount)) = (user.parse::<i64>(), amount.parse::<i64>()) else {
                continue;
            };
            let token = token.parse::<i64>().ok();
            if q.release(user, token, &id, amount).await? {
                tracing::info!(node, user, amount, "released the hold of a dead node");
                released += 1;
            }
        }
    }
    Ok(released)
}

/// Least time between two commits of the writer when not batching. Every commit rewrites the
/// pages it touches (user, token, channel, log and rollup rows) and hands each statement to the
/// database's thread: at thousands of settlements a second, one commit per few settlements took a
/// third of the process's CPU. Reservations are taken before the writer is involved (in memory,
/// in Redis, or by SQL in the database mode), so this only delays when a log becomes visible and,
/// in the database mode, when the unused part of a reservation is given back.
const COMMIT_GAP: Duration = Duration::from_millis(50);

async fn writer(
    db: Db,
    log_db: Option<Db>,
    batch: Option<Duration>,
    mut rx: mpsc::UnboundedReceiver<Op>,
    flush_queued: Arc<Notify>,
    cursor: String,
) {
    let mut last_commit: Option<tokio::time::Instant> = None;
    // Batches are numbered (started, 1), (started, 2), ... on this process's cursor row.
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut seq = 0;
    let logs_cursor = format!("logs:{cursor}");
    prune_writer_cursors(&db, log_db.as_ref(), started).await;
    while let Some(first) = rx.recv().await {
        let mut moves = Vec::new();
        let mut flushes = Vec::new();
        let push = |op: Op, moves: &mut Vec<Movement>, flushes: &mut Vec<_>| match op {
            Op::Move(m) => moves.push(*m),
            Op::Flush(f) => flushes.push(f),
        };
        push(first, &mut moves, &mut flushes);
        // Batching waits its interval; otherwise commits are spaced by COMMIT_GAP, so a lone
        // settlement is written at once while a busy node writes one larger batch per gap.
        let deadline = match (batch, last_commit) {
            (Some(interval), _) => Some(tokio::time::Instant::now() + interval),
            (None, Some(t)) if t.elapsed() < COMMIT_GAP => Some(t + COMMIT_GAP),
            (None, _) => None,
        };
        if let Some(deadline) = deadline
            && flushes.is_empty()
        {
            // Sleep through it rather than wake for every settlement queued meanwhile (each
            // wake is a context switch on the settling thread); a flush cuts it short.
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = flush_queued.notified() => {}
            }
        }
        while let Ok(op) = rx.try_recv() {
            push(op, &mut moves, &mut flushes);
        }
        if !moves.is_empty() {
            last_commit = Some(tokio::time::Instant::now());
            seq += 1;
            let mut batch = Batch {
                cursor: &cursor,
                logs_cursor: &logs_cursor,
                started,
                seq,
                charges: None,
                moves_done: false,
            };
            let mut attempt = 0u32;
            loop {
                match write_batch(&db, log_db.as_ref(), &mut moves, &mut batch).await {
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

/// How long the cursor row of a process that stopped stays: a writer's row only matters between a
/// commit whose answer was lost and its retry.
const WRITER_CURSOR_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

/// Drops the cursor rows of writers that started more than [`WRITER_CURSOR_TTL_MS`] ago (one row
/// per process start; a node still running that long gets a fresh row at its next batch).
async fn prune_writer_cursors(db: &Db, log_db: Option<&Db>, started: i64) {
    let before = started - WRITER_CURSOR_TTL_MS;
    for (db, prefix) in [(Some(db), "writer:"), (log_db, "logs:writer:")] {
        if let Some(db) = db
            && let Err(e) = store_ledger::prune_cursors(db, prefix, before).await
        {
            tracing::warn!(error = %e, "cannot prune old ledger writer cursors");
        }
    }
}

/// One batch of the writer and how far its attempts got.
///
/// A commit whose answer is lost (the connection dropped after the database committed) looks like
/// a failure, so every batch moves the writer's cursor row (`ledger_cursors`, named after this
/// process) to its sequence number in the same transaction: an attempt that finds the cursor
/// there already knows the earlier one committed, and applies nothing again.
struct Batch<'a> {
    cursor: &'a str,
    /// The cursor's row in the log database (logs kept apart).
    logs_cursor: &'a str,
    started: i64,
    seq: i64,
    /// What each movement was charged, from the attempt that applied them (its commit may have
    /// lost its answer; the logs still need the figures).
    charges: Option<Vec<i64>>,
    /// The quota moves are committed (known for certain).
    moves_done: bool,
}

/// Writes one batch. With a separate log database the quota moves commit first and
/// `batch.moves_done` records it, so a retry only rewrites the logs (never bills twice). Each log
/// records what was really charged, which is less than the price when a balance ran out.
async fn write_batch(
    db: &Db,
    log_db: Option<&Db>,
    moves: &mut [Movement],
    batch: &mut Batch<'_>,
) -> Result<(), sqlx::Error> {
    let to = (batch.started, batch.seq);
    if !batch.moves_done {
        let mut tx = db.pool.begin().await?;
        let from = store_ledger::cursor(db, &mut tx, batch.cursor).await?;
        if from >= to {
            // An earlier attempt committed; only its answer was lost.
            tx.rollback().await?;
        } else {
            let charges = store_ledger::apply(db, &mut tx, moves).await?;
            if log_db.is_none() {
                // Copies: a batch that fails is retried from these movements as they are.
                let rows: Vec<Log> = moves
                    .iter()
                    .zip(&charges)
                    .filter_map(|(m, charged)| {
                        let mut log = m.log.clone();
                        charge_log(&mut log, *charged);
                        log
                    })
                    .collect();
                logs::insert_many(db, &mut tx, rows).await?;
            }
            store_ledger::advance_cursor(db, &mut tx, batch.cursor, from, to).await?;
            batch.charges = Some(charges);
            tx.commit().await?;
        }
        batch.moves_done = true;
        if let (Some(_), Some(charges)) = (log_db, &batch.charges) {
            for (m, charged) in moves.iter_mut().zip(charges) {
                charge_log(&mut m.log, *charged);
            }
        }
    }
    match log_db {
        Some(ldb) if moves.iter().any(|m| m.log.is_some()) => {
            let rows = |_| moves.iter().filter_map(|m| m.log.clone()).collect();
            write_logs(ldb, batch.logs_cursor, to, rows).await
        }
        _ => Ok(()),
    }
}

/// Makes a movement's consume log record the quota really charged, which is less than the
/// price when a balance ran out.
fn charge_log(log: &mut Option<Log>, charged: i64) {
    if let Some(l) = log
        && l.quota != charged
    {
        l.content = format!(
            "{} (balance exhausted: charged {charged} of {})",
            l.content, l.quota
        );
        l.quota = charged;
    }
}

/// Writes consume logs to the log database, once: its cursor row `cursor` moves to `to` with
/// them. `rows_after` gives the logs of what comes after a cursor position: an attempt whose
/// answer was lost, or another node, may have written some or all of them already.
async fn write_logs(
    ldb: &Db,
    cursor: &str,
    to: (i64, i64),
    rows_after: impl Fn((i64, i64)) -> Vec<Log>,
) -> Result<(), sqlx::Error> {
    loop {
        let mut ltx = ldb.pool.begin().await?;
        let from = store_ledger::cursor(ldb, &mut ltx, cursor).await?;
        if from >= to {
            return ltx.rollback().await;
        }
        let rows = rows_after(from);
        if !rows.is_empty() {
            logs::insert_many(ldb, &mut ltx, rows).await?;
        }
        if store_ledger::advance_cursor(ldb, &mut ltx, cursor, from, to).await? {
            return ltx.commit().await;
        }
        // Another node moved the cursor since the read: write what it left.
        ltx.rollback().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A settlement running on an HTTP worker's runtime when that runtime stops (shutdown) is
    /// finished on the ledger's runtime, not dropped with the worker.
    #[test]
    fn a_step_cut_off_by_its_worker_stopping_finishes_on_the_ledger_runtime() {
        let ledger_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let in_flight = Arc::new(InFlight::default());
        in_flight.start();
        let (done, settled) = oneshot::channel();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        // The first attempt never answers (the worker stops during it); the moved one succeeds.
        let step = move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n == 0 {
                    std::future::pending::<()>().await;
                }
                Ok(())
            }) as StepFuture
        };
        let worker = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        worker.block_on(async {
            tokio::spawn(
                Retrying {
                    what: "test",
                    step: Some(Arc::new(step)),
                    in_flight: in_flight.clone(),
                    done: Some(done),
                    rt: Some(ledger_rt.handle().clone()),
                }
                .run(),
            );
            tokio::task::yield_now().await;
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        drop(worker);
        ledger_rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), settled)
                .await
                .expect("the moved step finished")
                .expect("its completion was reported");
            tokio::time::timeout(Duration::from_secs(5), in_flight.wait())
                .await
                .expect("flush no longer waits for it");
        });
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
