//! The ledger writer when a `COMMIT` reaches the database but its answer does not (the
//! connection dropped in between): the writer sees an error and retries, and the retry must not
//! bill or log the batch a second time. Needs a network database (PostgreSQL, MySQL).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::helpers::{Backend, LedgerMode, TestDatabase, spawn_app, start_on};
use crate::relay_helpers::*;

macro_rules! lost_commit_test {
    ($($name:ident: $backend:ident, $mode:ident, $logs_apart:expr;)+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            a_batch_whose_commit_answer_is_lost_applies_once(
                Backend::$backend,
                LedgerMode::$mode,
                $logs_apart,
            )
            .await
        }
    )+};
}

lost_commit_test! {
    postgres_database: Postgres, Database, false;
    postgres_memory: Postgres, Memory, false;
    postgres_logs_apart: Postgres, Database, true;
    postgres_redis_logs_apart: Postgres, Redis, true;
    mysql_database: MySql, Database, false;
    mysql_memory: MySql, Memory, false;
    mysql_logs_apart: MySql, Database, true;
    mysql_redis_logs_apart: MySql, Redis, true;
}

crate::db_test!(writer_cursors_of_long_gone_processes_are_pruned);

/// One test on PostgreSQL and one on MySQL (the [`Cutter`] needs a network database), with the
/// ledger in Redis, for an `async fn name(backend: Backend)`.
macro_rules! redis_outage_test {
    ($($name:ident),+) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_redis() {
                super::$name(Backend::Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql_redis() {
                super::$name(Backend::MySql).await
            }
        }
    )+};
}

redis_outage_test!(
    consume_logs_survive_a_log_database_outage,
    quota_moves_pass_a_long_log_database_outage
);

/// Each process's writer keeps a cursor row; a process starting deletes those of writers that
/// started more than 30 days ago, and keeps the others.
async fn writer_cursors_of_long_gone_processes_are_pruned(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let db = app.db().clone();
    let now_ms = tollgate::store::now() * 1000;
    for (name, ms) in [
        ("writer:gone", now_ms - 31 * 24 * 3600 * 1000),
        ("writer:recent", now_ms - 24 * 3600 * 1000),
        ("stream:old", 1),
    ] {
        sqlx::query(db.sql("INSERT INTO ledger_cursors (name, ms, seq) VALUES (?, ?, 1)"))
            .bind(name)
            .bind(ms)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let app = start_on(app.stop().await, &[]).await;
    let db = app.db().clone();
    // The writer prunes as it starts, on its own task.
    let mut names = Vec::new();
    for _ in 0..100 {
        names = sqlx::query_scalar::<_, String>(
            db.sql("SELECT name FROM ledger_cursors ORDER BY name"),
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        if !names.iter().any(|n| n == "writer:gone") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!names.iter().any(|n| n == "writer:gone"), "{names:?}");
    for kept in ["stream:old", "writer:recent"] {
        assert!(names.iter().any(|n| n == kept), "{kept} pruned: {names:?}");
    }
    app.finish().await;
}

/// Settles one reservation while the database behind the writer (the main one, or the log
/// database when `logs_apart`) loses the answer to the commit that writes its consume log.
async fn a_batch_whose_commit_answer_is_lost_applies_once(
    backend: Backend,
    mode: LedgerMode,
    logs_apart: bool,
) {
    let Some(mut t) = Settling::behind_cutter(backend, mode, logs_apart, "lost commit").await
    else {
        return;
    };
    t.cutter.armed.store(true, Ordering::SeqCst);
    t.settle().await;
    tokio::time::timeout(std::time::Duration::from_secs(30), t.ledger.flush())
        .await
        .expect("the batch was never written");
    assert_eq!(
        t.cutter.cut.load(Ordering::SeqCst),
        1,
        "the commit's answer should have been lost once"
    );
    t.charged_and_logged_once("logged twice").await;
}

/// With Redis and the logs in their own database: the log database is unreachable for 6 s
/// while a request settles. The quota moves reach the main database; the consume log stays in
/// the Redis stream until the log database is back, and is written then, once. (Until session
/// 13 a write-back round retried the logs 20 times in 4 s, then trimmed the stream: the log was
/// lost.)
async fn consume_logs_survive_a_log_database_outage(backend: Backend) {
    let content = "while the log database was down";
    let Some(mut t) = Settling::behind_cutter(backend, LedgerMode::Redis, true, content).await
    else {
        return;
    };
    t.cutter.down.store(true, Ordering::SeqCst);
    t.settle().await;
    // The quota moves reach the main database while the log database is down.
    let quota = t.user_quota_reaching(10_000 - 60, 5).await;
    assert_eq!(
        quota,
        10_000 - 60,
        "the quota moves never reached the database"
    );
    // Past a round's retries (4 s), then the log database comes back.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    t.cutter.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(std::time::Duration::from_secs(30), t.ledger.flush())
        .await
        .expect("the write-back never caught up");
    t.charged_and_logged_once("the consume log was lost (or written twice)")
        .await;
}

/// The log database down while a shard's stream grows past one write-back batch (2,000
/// entries): the quota moves of all of them reach the main database meanwhile, and each consume
/// log is written once when the log database is back. (Until session 14 the shard's write-back
/// stopped at its first batch for as long as the log database was down: the main database's
/// balances lagged behind Redis's.)
async fn quota_moves_pass_a_long_log_database_outage(backend: Backend) {
    const MORE: i64 = 2_100;
    let Some(mut t) =
        Settling::behind_cutter(backend, LedgerMode::Redis, true, "a long outage").await
    else {
        return;
    };
    t.cutter.down.store(true, Ordering::SeqCst);
    t.settle().await;
    for _ in 0..MORE {
        let held = t.ledger.reserve(t.base.clone(), 1).await.unwrap().unwrap();
        let log = tollgate::store::logs::Log {
            quota: 1,
            ..t.log.clone()
        };
        held.settle(0, 1, Some(log)).wait().await;
    }
    let want = 10_000 - 60 - MORE;
    let quota = t.user_quota_reaching(want, 30).await;
    assert_eq!(quota, want, "the quota moves stopped behind the logs");
    t.cutter.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(std::time::Duration::from_secs(60), t.ledger.flush())
        .await
        .expect("the write-back never caught up");
    let found = consume_logs(&t.app, t.uid).await;
    assert_eq!(found.len() as i64, MORE + 1, "a log lost or written twice");
    assert_eq!(found.iter().map(|l| l.quota).sum::<i64>(), 60 + MORE);
    assert_eq!(user_row(&t.app, t.uid).await.quota, want);
    assert_eq!(
        token_row(&t.app, t.tid).await.remain_quota,
        5_000 - 60 - MORE
    );
    t.finish().await;
}

/// An app whose ledger runs in a mode, with a [`Cutter`] in front of its main database or (logs
/// apart) of a log database of its own, and a payer (10,000; a token of 5,000) holding a
/// reservation of 100 that is to settle at 60 with a consume log.
struct Settling {
    app: crate::helpers::TestApp,
    log_database: Option<TestDatabase>,
    cutter: Cutter,
    uid: i64,
    tid: i64,
    ledger: tollgate::billing::ledger::Ledger,
    /// The payer's movement, for more reservations.
    base: tollgate::store::ledger::Movement,
    /// Taken by [`Settling::settle`].
    held: Option<tollgate::billing::ledger::Reservation>,
    log: tollgate::store::logs::Log,
}

impl Settling {
    /// `None` (skipped) when the backend or the mode is not configured for the tests.
    async fn behind_cutter(
        backend: Backend,
        mode: LedgerMode,
        logs_apart: bool,
        content: &str,
    ) -> Option<Settling> {
        if !backend.enabled() {
            eprintln!("skipped: backend {} not in TEST_DATABASES", backend.name());
            return None;
        }
        let mode_env = mode.env()?;
        let database = TestDatabase::create(backend).await;
        let log_database = if logs_apart {
            Some(TestDatabase::create(backend).await)
        } else {
            None
        };
        let cutter = Cutter::default();
        let behind = log_database.as_ref().unwrap_or(&database);
        let proxied = cutter.proxy_for(&behind.url).await;
        let mut extra: Vec<(&str, &str)> = mode_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        extra.push((
            if logs_apart { "LOG_SQL_DSN" } else { "SQL_DSN" },
            proxied.as_str(),
        ));
        let app = start_on(database, &extra).await;
        let (uid, tid, base) = ledger_payer(&app).await;
        let ledger = app.state.relay.ledger.clone();
        let held = ledger.reserve(base.clone(), 100).await.unwrap().unwrap();
        let log = tollgate::store::logs::Log {
            user_id: uid,
            r#type: 2,
            token_id: tid,
            model_name: "gpt-4o".into(),
            quota: 60,
            content: content.into(),
            ..Default::default()
        };
        Some(Settling {
            app,
            log_database,
            cutter,
            uid,
            tid,
            ledger,
            base,
            held: Some(held),
            log,
        })
    }

    /// Settles the reservation at 60 with its consume log.
    async fn settle(&mut self) {
        let held = self.held.take().expect("settled once");
        held.settle(0, 60, Some(self.log.clone())).wait().await;
    }

    /// Checks that the user and the token were charged 60 once and that one consume log of 60
    /// is there (`logs` when not), then stops the app.
    async fn charged_and_logged_once(self, logs: &str) {
        assert_eq!(
            user_row(&self.app, self.uid).await.quota,
            10_000 - 60,
            "charged twice"
        );
        assert_eq!(
            token_row(&self.app, self.tid).await.remain_quota,
            5_000 - 60
        );
        let found = consume_logs(&self.app, self.uid).await;
        assert_eq!(
            found.iter().map(|l| l.quota).collect::<Vec<_>>(),
            [60],
            "{logs}"
        );
        self.finish().await;
    }

    /// The payer's quota in the main database once it is `want`, or as it is after `secs`.
    async fn user_quota_reaching(&self, want: i64, secs: u64) -> i64 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let quota = user_row(&self.app, self.uid).await.quota;
            if quota == want || std::time::Instant::now() >= deadline {
                return quota;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stops the app and drops its databases.
    async fn finish(self) {
        self.app.finish().await;
        if let Some(l) = self.log_database {
            l.drop_database().await;
        }
    }
}

/// A TCP relay to a database. While `down`, it cuts every connection (the database is
/// unreachable). Once `armed`, the first `COMMIT` sent on a connection that inserted
/// consume logs reaches the database, and the connection is cut when the answer comes back
/// (counted in `cut`): the commit happened, the client sees a broken connection.
#[derive(Default)]
struct Cutter {
    armed: Arc<AtomicBool>,
    cut: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl Cutter {
    /// Starts the relay to the host of `url` and returns `url` pointed at it.
    async fn proxy_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once('@').expect("a user@host URL");
        let (target, path) = rest.split_once('/').expect("a database in the URL");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (armed, cut, target) = (self.armed.clone(), self.cut.clone(), target.to_string());
        let down = self.down.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if down.load(Ordering::SeqCst) {
                    continue;
                }
                let down = down.clone();
                tokio::spawn(relay(
                    inbound,
                    target.clone(),
                    armed.clone(),
                    cut.clone(),
                    down,
                ));
            }
        });
        // In clear text, so that the relay can see the statements.
        let plain = if scheme.starts_with("postgres") {
            "?sslmode=disable"
        } else {
            "?ssl-mode=disabled"
        };
        format!("{scheme}@127.0.0.1:{port}/{path}{plain}")
    }
}

async fn relay(
    mut inbound: tokio::net::TcpStream,
    target: String,
    armed: Arc<AtomicBool>,
    cut: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut out) = tokio::net::TcpStream::connect(&target).await else {
        return;
    };
    let lose = AtomicBool::new(false);
    let (mut ri, mut wi) = inbound.split();
    let (mut ro, mut wo) = out.split();
    let answers = async {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = ro.read(&mut buf).await {
            if n == 0 {
                return;
            }
            if lose.load(Ordering::SeqCst) {
                cut.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if wi.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let queries = async {
        let mut buf = vec![0u8; 65536];
        let mut logged = false;
        while let Ok(n) = ri.read(&mut buf).await {
            if n == 0 || down.load(Ordering::SeqCst) {
                return;
            }
            let sent = &buf[..n];
            logged |= contains(sent, b"INSERT INTO logs");
            if contains(sent, b"COMMIT") {
                if logged && armed.swap(false, Ordering::SeqCst) {
                    lose.store(true, Ordering::SeqCst);
                }
                logged = false;
            }
            if wo.write_all(sent).await.is_err() {
                return;
            }
        }
    };
    // Either side ending drops both sockets: the cut.
    tokio::select! { _ = answers => {}, _ = queries => {} }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
