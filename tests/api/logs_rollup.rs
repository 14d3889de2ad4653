//! The consume-log rollup (`store::log_rollups`): stats served from it equal the raw sums over
//! `logs` on random logs, windows (partial hours and days) and filters, after deletions, and
//! under concurrent writers; the rollup always equals a rebuild from the logs.

use sqlx::Row;
use tollgate::store::logs::{self, Log, LogFilter};
use tollgate::store::{Db, log_rollups};

use crate::db_test;
use crate::helpers::{Backend, spawn_app};

db_test!(
    rollup_stats_equal_raw_sums,
    rollup_survives_concurrent_writers,
    batches_of_every_size_leave_no_cached_plans
);

/// splitmix64: a small deterministic generator (the seed is printed to replay a failure).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: i64) -> i64 {
        (self.next() % n as u64) as i64
    }
}

/// A day boundary, so that windows cross hour and day edges at known places.
const BASE: i64 = 1_700_006_400;
const SPAN: i64 = 3 * 86_400;
const MODELS: [&str; 4] = ["gpt-4o", "gpt-4o-mini", "claude-3", "m4"];

fn random_log(r: &mut Rng) -> Log {
    let user = r.below(3) + 1;
    let kind = if r.below(10) == 0 {
        1 + r.below(4) // top-up, consume, manage, system
    } else {
        logs::TYPE_CONSUME
    };
    Log {
        user_id: user,
        username: format!("u{user}"),
        created_at: random_time(r),
        r#type: kind,
        content: "x".into(),
        token_name: format!("t{}", r.below(3)),
        model_name: MODELS[r.below(4) as usize].into(),
        quota: r.below(1_000),
        prompt_tokens: r.below(50),
        completion_tokens: r.below(50),
        channel_id: r.below(3) + 1,
        ..Default::default()
    }
}

/// A time in the span, a third of them on the second before, at or after an hour's edge (where
/// an off-by-one between the rollup and the raw edges would show).
fn random_time(r: &mut Rng) -> i64 {
    let t = BASE + r.below(SPAN);
    match r.below(3) {
        0 => t - t.rem_euclid(3_600) + r.below(3) - 1,
        _ => t,
    }
}

/// A random bound: open, on an hour or day edge, or anywhere (a partial hour).
fn random_bound(r: &mut Rng) -> i64 {
    let t = BASE - 3_600 + r.below(SPAN + 7_200);
    match r.below(5) {
        0 => 0,
        1 => t - t.rem_euclid(3_600),
        2 => t - t.rem_euclid(86_400) - 1,
        _ => t,
    }
}

fn random_filter(r: &mut Rng) -> LogFilter {
    let mut f = LogFilter {
        r#type: r.below(4),
        start_timestamp: random_bound(r),
        end_timestamp: random_bound(r),
        ..Default::default()
    };
    match r.below(7) {
        0 | 1 => {}
        2 => f.model_name = MODELS[r.below(4) as usize].into(),
        3 => f.channel = r.below(4) + 1,
        4 => {
            f.model_name = MODELS[r.below(4) as usize].into();
            f.channel = r.below(3) + 1;
        }
        5 => f.username = format!("u{}", r.below(3) + 1),
        _ => f.token_name = format!("t{}", r.below(3)),
    }
    f
}

/// Every rollup row, in key order.
async fn rollup_rows(db: &Db) -> Vec<(i64, i64, String, i64, i64, i64, i64, i64)> {
    sqlx::query(
        "SELECT grain, bucket, model_name, channel_id, quota, prompt_tokens, completion_tokens, \
         request_count FROM log_rollups ORDER BY grain, bucket, model_name, channel_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
            r.get(7),
        )
    })
    .collect()
}

/// The rollup as maintained equals the rollup recomputed from the logs.
async fn assert_rollup_exact(db: &Db, seed: u64, when: &str) {
    let kept = rollup_rows(db).await;
    log_rollups::rebuild(db).await.unwrap();
    assert_eq!(kept, rollup_rows(db).await, "seed {seed}: {when}");
}

async fn compare_stats(db: &Db, r: &mut Rng, seed: u64, n: usize) {
    for _ in 0..n {
        let f = random_filter(r);
        let fast = logs::sum_consume_quota(db, &f).await.unwrap();
        let raw = logs::sum_consume_quota_raw(db, &f).await.unwrap();
        assert_eq!(fast, raw, "seed {seed}: {f:?}");
    }
}

async fn rollup_stats_equal_raw_sums(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let db = app.state.log_db.clone();
    let seed = uuid::Uuid::new_v4().as_u64_pair().0;
    eprintln!("rollup test seed {seed}");
    let mut r = Rng(seed);
    // Batches of random sizes, one transaction each (some above a multi-row INSERT's 500 rows).
    for size in [1, 7, 600, 250, 3, 1_100] {
        let batch: Vec<Log> = (0..size).map(|_| random_log(&mut r)).collect();
        let mut tx = db.pool.begin().await.unwrap();
        logs::insert_many(&db, &mut tx, batch).await.unwrap();
        tx.commit().await.unwrap();
    }
    let count: i64 = sqlx::query("SELECT COUNT(*) FROM logs")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1 + 7 + 600 + 250 + 3 + 1_100);
    assert_rollup_exact(&db, seed, "after inserts").await;
    compare_stats(&db, &mut r, seed, 150).await;

    // The route answers the same.
    let root = app.root().await;
    let all = logs::sum_consume_quota_raw(&db, &LogFilter::default())
        .await
        .unwrap();
    assert!(all > 0);
    assert_eq!(root.get("/api/log/stat").await["data"]["quota"], all);

    // Deletions inside an hour: small batches (retention), then the route's delete.
    let cut = BASE + 86_400 + 1_234;
    let mut deleted = 0;
    loop {
        let n = logs::delete_before_batch(&db, cut, 97).await.unwrap();
        deleted += n;
        if n < 97 {
            break;
        }
    }
    assert!(deleted > 0);
    assert_rollup_exact(&db, seed, "after batched deletes").await;
    compare_stats(&db, &mut r, seed, 75).await;
    let cut = BASE + 2 * 86_400 + 5_000;
    let res = root
        .delete(&format!("/api/log/?target_timestamp={cut}"))
        .await;
    assert!(res["data"].as_i64().unwrap() > 0, "{res}");
    assert_rollup_exact(&db, seed, "after the route's delete").await;
    compare_stats(&db, &mut r, seed, 75).await;
    app.finish().await;
}

async fn rollup_survives_concurrent_writers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let db = app.state.log_db.clone();
    let seed = uuid::Uuid::new_v4().as_u64_pair().0;
    eprintln!("concurrent rollup test seed {seed}");
    // Four writers (as several nodes writing back Redis streams) hitting the same rollup rows;
    // a failed transaction (a deadlock, SQLite busy) is retried whole, as the ledger writer does.
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = Rng(seed ^ (w + 1));
            for _ in 0..10 {
                let batch: Vec<Log> = (0..40).map(|_| random_log(&mut r)).collect();
                let mut attempt = 0;
                loop {
                    let res = async {
                        let mut tx = db.pool.begin().await?;
                        logs::insert_many(&db, &mut tx, batch.clone()).await?;
                        tx.commit().await
                    }
                    .await;
                    match res {
                        Ok(()) => break,
                        Err(e) => {
                            attempt += 1;
                            assert!(attempt < 50, "writer {w}: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let count: i64 = sqlx::query("SELECT COUNT(*) FROM logs")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 4 * 10 * 40);
    assert_rollup_exact(&db, seed, "after concurrent writers").await;
    let mut r = Rng(seed);
    compare_stats(&db, &mut r, seed, 50).await;
    app.finish().await;
}

/// The writer's multi-row statements differ in text with their row count. Kept in a connection's
/// statement cache, every count seen became a prepared plan held for the connection's life: under
/// load the process grew by hundreds of MB. Runs now have power-of-two sizes. sqlx's `Any`
/// driver does not report its cache size, so PostgreSQL's `pg_prepared_statements` (this
/// session's named statements) shows it there (regression: 60 more statements after these 30
/// batches).
async fn batches_of_every_size_leave_no_cached_plans(backend: Backend) {
    use sqlx::Acquire;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let db = app.state.log_db.clone();
    let mut r = Rng(7);
    let mut conn = db.pool.acquire().await.unwrap();
    let prepared = async |conn: &mut sqlx::AnyConnection| -> i64 {
        sqlx::query("SELECT COUNT(*) FROM pg_prepared_statements")
            .fetch_one(conn)
            .await
            .unwrap()
            .get(0)
    };
    let before = match backend {
        Backend::Postgres => prepared(&mut conn).await,
        _ => 0,
    };
    for size in 1..=30 {
        let batch: Vec<Log> = (0..size).map(|_| random_log(&mut r)).collect();
        let mut tx = conn.begin().await.unwrap();
        logs::insert_many(&db, &mut tx, batch).await.unwrap();
        tx.commit().await.unwrap();
    }
    if backend == Backend::Postgres {
        let after = prepared(&mut conn).await;
        // Runs of 1..16 logs (5 shapes) and of 1..64 rollup rows (7 shapes), and the count.
        assert!(
            after <= before + 13,
            "{after} prepared statements after 30 batch sizes (were {before})"
        );
    }
    drop(conn);
    assert_rollup_exact(&db, 7, "after batches of every size").await;
    app.finish().await;
}
