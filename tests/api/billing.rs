//! Billing invariants: no overdraw under concurrency, every success billed exactly once,
//! failures refunded, and user quota + sum(consume logs) = quota before + top-ups.

use std::sync::Arc;

use serde_json::{Value, json};
use tollgate::store::logs::{self, LogFilter};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, LedgerMode, spawn_app_mode};
use crate::ledger_test;
use crate::mock_upstream::chat_completion;
use crate::relay_helpers::*;

ledger_test!(
    concurrent_requests_never_overdraw,
    ledger_balances_with_top_ups_and_failures,
    batched_writer_still_bills_everything,
    a_cost_above_the_estimate_never_overdraws,
);

/// Without `max_tokens` the estimate assumes `PreConsumedQuota` completion tokens at ratio 1, so a
/// long answer costs far more than was reserved. The excess is taken only as far as the user's and
/// the token's balances go: nothing below zero, and the log says what was really charged.
async fn a_cost_above_the_estimate_never_overdraws(backend: Backend, mode: LedgerMode) {
    let Some(app) = spawn_app_mode(backend, mode, &[]).await else {
        return;
    };
    let mock = MockServer::start().await;
    // Actual cost: ceil(15 * (8 + 1000 * 2)) = 30120; the reservation is about 15 * (8 + 500).
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("x", 8, 1000)))
        .mount(&mock)
        .await;
    channel(&app, &mock.uri(), "gpt-4").await;
    let no_max = json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]});

    // The user's wallet is the limit.
    let uid = user(&app, 10_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let res = post(&app, &k, "/v1/chat/completions", &no_max).await;
    assert_eq!(res.status(), 200);
    settled(&app).await;
    let after = user_row(&app, uid).await;
    assert_eq!(after.quota, 0, "charged up to the balance, not below");
    assert_eq!(logged_quota(&app, uid).await, 10_000);
    assert_eq!(after.used_quota, 10_000);

    // A limited token is the limit: the user keeps the rest.
    let uid = user(&app, 100_000, "default", 1).await;
    let (tid, k) = token(&app, uid, Some(12_000)).await;
    let res = post(&app, &k, "/v1/chat/completions", &no_max).await;
    assert_eq!(res.status(), 200);
    settled(&app).await;
    let tok = token_row(&app, tid).await;
    assert_eq!(tok.remain_quota, 0);
    assert_eq!(tok.used_quota, 12_000);
    assert_eq!(user_row(&app, uid).await.quota, 100_000 - 12_000);
    assert_eq!(logged_quota(&app, uid).await, 12_000);

    // Enough room: the full price is charged.
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    post(&app, &k, "/v1/chat/completions", &no_max).await;
    settled(&app).await;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 30_120);
    assert_eq!(logged_quota(&app, uid).await, 30_120);
    app.finish().await;
}

fn body() -> Value {
    // prompt 8 tokens; estimate with max_tokens 92: ceil(15 * (8 + 92)) = 1500
    json!({"model": "gpt-4", "max_tokens": 92, "messages": [{"role": "user", "content": "hi"}]})
}

async fn concurrent_requests_never_overdraw(backend: Backend, mode: LedgerMode) {
    let Some(app) = spawn_app_mode(backend, mode, &[]).await else {
        return;
    };
    let mock = MockServer::start().await;
    // Each success costs 15 * (10 + 20 * 2) = 750.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("x", 10, 20)))
        .mount(&mock)
        .await;
    channel(&app, &mock.uri(), "gpt-4").await;
    // Covers exactly 20 reservations of 1500.
    let start = 20 * 1500;
    let uid = user(&app, start, "default", 1).await;
    let (tid, k) = token(&app, uid, Some(1_000_000)).await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let app = app.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            let res = post(&app, &k, "/v1/chat/completions", &body()).await;
            let status = res.status().as_u16();
            let b: Value = res.json().await.unwrap_or(Value::Null);
            (status, b)
        }));
    }
    let mut ok = 0i64;
    for t in tasks {
        let (status, b) = t.await.unwrap();
        match status {
            200 => ok += 1,
            403 => assert_eq!(b["error"]["code"], "insufficient_user_quota", "{b}"),
            other => panic!("unexpected status {other}: {b}"),
        }
    }
    let app = Arc::into_inner(app).unwrap();
    settled(&app).await;
    assert!(
        ok >= 20,
        "at least the 20 covered requests succeed, got {ok}"
    );
    let u = user_row(&app, uid).await;
    assert!(u.quota >= 0, "overdraw: {}", u.quota);
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len() as i64, ok, "every success billed exactly once");
    assert!(logs.iter().all(|l| l.quota == 750));
    assert_eq!(u.quota, start - 750 * ok);
    assert_eq!(u.used_quota, 750 * ok);
    assert_eq!(u.request_count, ok);
    let t = token_row(&app, tid).await;
    assert_eq!(t.remain_quota, 1_000_000 - 750 * ok);
    let mut ids: Vec<&str> = logs.iter().map(|l| l.request_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as i64, ok, "one log per request id");
    app.finish().await;
}

async fn ledger_balances_with_top_ups_and_failures(backend: Backend, mode: LedgerMode) {
    let Some(app) = spawn_app_mode(backend, mode, &[]).await else {
        return;
    };
    let good = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("x", 3, 7)))
        .mount(&good)
        .await;
    let bad = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
        .mount(&bad)
        .await;
    channel(&app, &good.uri(), "gpt-4").await;
    channel(&app, &bad.uri(), "broken").await;
    let before = 100_000;
    let uid = user(&app, before, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let mut top_ups = 0;
    for i in 0..6 {
        let res = post(&app, &k, "/v1/chat/completions", &body()).await;
        assert_eq!(res.status(), 200);
        let res = post(
            &app,
            &k,
            "/v1/chat/completions",
            &json!({"model":"broken","messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
        let status = res.status();
        let b: Value = res.json().await.unwrap();
        assert_eq!(status, 502, "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("bad response status code 502")
        );
        if i % 2 == 0 {
            // As the top-up handlers do: the database, then the live balances.
            tollgate::store::users::add_quota(app.db(), &app.db().pool, uid, 1000)
                .await
                .unwrap();
            app.state.relay.ledger.credit(uid, None, 1000);
            top_ups += 1000;
        }
    }
    settled(&app).await;
    let u = user_row(&app, uid).await;
    // Each success: 15 * (3 + 7 * 2) = 255.
    assert_eq!(logged_quota(&app, uid).await, 6 * 255);
    assert_eq!(u.quota + logged_quota(&app, uid).await, before + top_ups);
    assert_eq!(u.request_count, 6);
    app.finish().await;
}

async fn batched_writer_still_bills_everything(backend: Backend, mode: LedgerMode) {
    let Some(app) = spawn_app_mode(
        backend,
        mode,
        &[
            ("BATCH_UPDATE_ENABLED", "true"),
            ("BATCH_UPDATE_INTERVAL", "1"),
        ],
    )
    .await
    else {
        return;
    };
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("x", 10, 20)))
        .mount(&mock)
        .await;
    channel(&app, &mock.uri(), "gpt-4").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    for _ in 0..5 {
        post_ok(&app, &k, "/v1/chat/completions", &body()).await;
    }
    // Several limited tokens in one batch (the writer updates them in one statement).
    let mut limited = Vec::new();
    for n in 1..=3i64 {
        let (tid, key) = token(&app, uid, Some(100_000)).await;
        for _ in 0..n {
            post_ok(&app, &key, "/v1/chat/completions", &body()).await;
        }
        limited.push((tid, n));
    }
    // Several users in one batch (the writer updates them in one statement too).
    let mut others = Vec::new();
    for n in 1..=3i64 {
        let other = user(&app, 500_000, "default", 1).await;
        let (_, key) = token(&app, other, None).await;
        for _ in 0..n {
            post_ok(&app, &key, "/v1/chat/completions", &body()).await;
        }
        others.push((other, n));
    }
    settled(&app).await;
    for (other, n) in others {
        let u = user_row(&app, other).await;
        assert_eq!(u.quota, 500_000 - n * 750, "user {other}");
        assert_eq!(u.used_quota, n * 750, "user {other}");
        assert_eq!(u.request_count, n, "user {other}");
    }
    for (tid, n) in limited {
        let t = token_row(&app, tid).await;
        assert_eq!(t.remain_quota, 100_000 - n * 750, "token {tid}");
        assert_eq!(t.used_quota, n * 750, "token {tid}");
        assert!(t.accessed_time > 0);
    }
    let u = user_row(&app, uid).await;
    assert_eq!(u.quota, 1_000_000 - 11 * 750);
    assert_eq!(logged_quota(&app, uid).await, 11 * 750);
    // The writer added the batch's consume logs to the rollup that serves the stat.
    let db = &app.state.log_db;
    for f in [
        LogFilter::default(),
        LogFilter {
            model_name: "gpt-4".into(),
            ..Default::default()
        },
    ] {
        let stat = logs::sum_consume_quota(db, &f).await.unwrap();
        assert_eq!(stat, logs::sum_consume_quota_raw(db, &f).await.unwrap());
        assert!(stat >= 5 * 750);
    }
    app.finish().await;
}

crate::db_test!(a_settlement_outlives_the_worker_that_made_it);

/// actix workers run their own runtimes and stop with the server. A settlement made on one just
/// before it stops must still reach Redis and the database, and `flush` (graceful shutdown) must
/// not wait forever for it. Before the fix the step was spawned on the worker's runtime: it died
/// with it, and shutdown hung (seen in the benchmark).
async fn a_settlement_outlives_the_worker_that_made_it(backend: Backend) {
    let Some(app) = spawn_app_mode(backend, LedgerMode::Redis, &[]).await else {
        return;
    };
    let (uid, tid, base) = ledger_payer(&app).await;
    let ledger = app.state.relay.ledger.clone();
    let held = ledger.reserve(base, 100).await.unwrap().unwrap();
    std::thread::spawn(move || {
        let worker = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        worker.block_on(async move {
            let _ = held.settle(0, 60, None);
        });
        // The worker's runtime ends here, as when the server stops.
    })
    .join()
    .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(15), ledger.flush())
        .await
        .expect("flush waits forever for a settlement lost with its worker");
    assert_eq!(user_row(&app, uid).await.quota, 10_000 - 60);
    assert_eq!(token_row(&app, tid).await.remain_quota, 5_000 - 60);
    app.finish().await;
}

crate::db_test!(an_unanswered_reservation_does_not_keep_its_hold);

/// A reply from Redis slower than the client's bound (4 s): the reserve script ran, the node saw
/// a timeout and answered 503. The hold it left must be released, or the quota stays taken with
/// nothing to settle it (seen as a rare quota mismatch in the billing tests under heavy load).
async fn an_unanswered_reservation_does_not_keep_its_hold(backend: Backend) {
    use std::sync::atomic::Ordering;
    let Some(SlowRedis {
        app,
        slow,
        uid,
        base,
        ledger,
        q,
        ..
    }) = slow_redis_app(backend).await
    else {
        return;
    };
    // Loads the balances into Redis.
    ledger
        .reserve(base.clone(), 100)
        .await
        .unwrap()
        .unwrap()
        .refund();
    ledger.flush().await;
    // A read that times out counts as "not yet": the release the ledger sends after the
    // timeout can itself be held by the relay (it may leave before `slow` is cleared), and a
    // read on the same connection then waits behind both held replies.
    let balance = || async { q.balance(&q.user_key(uid)).await.ok().flatten() };
    assert_eq!(balance().await, Some(10_000));
    slow.store(true, Ordering::SeqCst);
    assert!(
        ledger.reserve(base, 100).await.is_err(),
        "the reply came in time"
    );
    slow.store(false, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while balance().await != Some(10_000) {
        assert!(
            std::time::Instant::now() < deadline,
            "the hold of the unanswered reservation is kept: {:?}",
            balance().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    app.finish().await;
}

crate::db_test!(a_settlement_retried_after_a_lost_answer_charges_once);

/// The settle script ran but its answer came after the client's bound (4 s): the ledger retries
/// the step. The retry must return the first charge, not find the hold gone and charge the whole
/// price again (and stream the movement twice).
async fn a_settlement_retried_after_a_lost_answer_charges_once(backend: Backend) {
    let Some(r) = slow_redis_app(backend).await else {
        return;
    };
    let (uid, q) = (r.uid, &r.q);
    let held = r
        .ledger
        .reserve(r.base.clone(), 100)
        .await
        .unwrap()
        .unwrap();
    let settled = r.losing_the_first_answer(|| held.settle(0, 60, None)).await;
    settled.wait().await;
    r.flushed("the settlement never completed").await;
    assert_eq!(
        q.balance(&q.user_key(uid)).await.unwrap(),
        Some(10_000 - 60),
        "charged twice in Redis"
    );
    assert_eq!(user_row(&r.app, uid).await.quota, 10_000 - 60);
    assert_eq!(token_row(&r.app, r.tid).await.remain_quota, 5_000 - 60);
    // The receipt is dropped once the answer is in.
    let shard = tollgate::cache::redis::QuotaStore::shard_of(uid);
    assert!(q.holds(shard).await.unwrap().is_empty());
    r.app.finish().await;
}

crate::db_test!(a_credit_retried_after_a_lost_answer_applies_once);

/// A top-up's credit script ran but its answer came after the client's bound (4 s): the ledger
/// retries the step, and the retry must not credit the balance in Redis a second time.
async fn a_credit_retried_after_a_lost_answer_applies_once(backend: Backend) {
    let Some(r) = slow_redis_app(backend).await else {
        return;
    };
    let (uid, tid, q) = (r.uid, r.tid, &r.q);
    // Loads the balances into Redis.
    r.ledger
        .reserve(r.base.clone(), 100)
        .await
        .unwrap()
        .unwrap()
        .refund();
    r.ledger.flush().await;
    r.losing_the_first_answer(|| r.ledger.credit(uid, Some(tid), 500))
        .await;
    r.flushed("the credit never completed").await;
    assert_eq!(
        q.balance(&q.token_key(uid, tid)).await.unwrap(),
        Some(5_000 + 500),
        "credited twice in Redis"
    );
    r.app.finish().await;
}

/// An app in the Redis ledger mode with a user of 10,000, its ledger and Redis store, and a
/// movement of that user's on an unlimited token. `None` without a test Redis.
struct RedisPayer {
    app: crate::helpers::TestApp,
    uid: i64,
    ledger: tollgate::billing::ledger::Ledger,
    q: Arc<tollgate::cache::redis::QuotaStore>,
    base: tollgate::store::ledger::Movement,
}

async fn redis_payer(backend: Backend) -> Option<RedisPayer> {
    let app = spawn_app_mode(backend, LedgerMode::Redis, &[]).await?;
    let uid = user(&app, 10_000, "default", 1).await;
    Some(RedisPayer {
        ledger: app.state.relay.ledger.clone(),
        q: app.state.relay.redis.clone().expect("redis mode"),
        base: tollgate::store::ledger::Movement {
            user_id: uid,
            unlimited: true,
            ..Default::default()
        },
        uid,
        app,
    })
}

crate::db_test!(a_dead_nodes_receipts_are_dropped_not_refunded);

/// A node that died after settling leaves receipts, not holds: the reaper drops them and gives
/// nothing back a second time.
async fn a_dead_nodes_receipts_are_dropped_not_refunded(backend: Backend) {
    let Some(RedisPayer {
        app,
        uid,
        ledger,
        q,
        base,
    }) = redis_payer(backend).await
    else {
        return;
    };
    // Loads the user's balance into Redis.
    ledger.reserve(base, 10).await.unwrap().unwrap().refund();
    ledger.flush().await;
    let balance = || async { q.balance(&q.user_key(uid)).await.unwrap() };
    // A node that never beats its heartbeat holds 10, then gives it back (a refund: nothing
    // charged, no movement streamed).
    assert_eq!(
        q.reserve(uid, None, 10, "gone:1", &format!("gone {uid} - 10"))
            .await
            .unwrap(),
        tollgate::cache::redis::Reserve::Ok
    );
    assert_eq!(
        q.settle(tollgate::cache::redis::Settle {
            node: "gone".into(),
            user_id: uid,
            token: None,
            hold_id: "gone:1".into(),
            reserved: 10,
            price: 0,
            counted: false,
            payload: Default::default(),
        })
        .await
        .unwrap(),
        Some(0)
    );
    assert_eq!(balance().await, Some(10_000));
    let released = tollgate::billing::ledger::release_dead_holds(&ledger, &q)
        .await
        .unwrap();
    assert_eq!(released, 0, "a receipt was released as a hold");
    assert_eq!(balance().await, Some(10_000), "refunded twice");
    let shard = tollgate::cache::redis::QuotaStore::shard_of(uid);
    assert!(q.holds(shard).await.unwrap().is_empty());
    app.finish().await;
}

crate::db_test!(movements_written_as_json_by_an_older_node_are_written_back);

/// Nodes write movements to the Redis stream in a compact binary form; nodes before it wrote
/// JSON (the `m` field). A stream left by an older node, during a rolling upgrade, must still
/// reach the database exactly once, beside the compact entries.
async fn movements_written_as_json_by_an_older_node_are_written_back(backend: Backend) {
    let Some(RedisPayer {
        app,
        uid,
        ledger,
        q,
        base,
    }) = redis_payer(backend).await
    else {
        return;
    };
    // A compact entry, through the ledger: 30 charged.
    ledger
        .reserve(base.clone(), 50)
        .await
        .unwrap()
        .unwrap()
        .settle(0, 30, None)
        .wait()
        .await;
    // A JSON entry, as an older node's settle script appended it: 70 charged, with its log.
    let old = tollgate::store::ledger::Movement {
        settled: true,
        charged: 70,
        log: Some(tollgate::store::logs::Log {
            user_id: uid,
            r#type: 2,
            quota: 70,
            model_name: "from-an-older-node".into(),
            created_at: 1_700_000_000,
            ..Default::default()
        }),
        ..base
    };
    let key = q
        .stream_key(tollgate::cache::redis::QuotaStore::shard_of(uid))
        .to_string();
    let client = redis::Client::open(crate::helpers::redis_url().unwrap()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("m")
        .arg(serde_json::to_string(&old).unwrap())
        .arg("c")
        .arg(70)
        .query_async(&mut c)
        .await
        .unwrap();
    ledger.flush().await;
    let u = user_row(&app, uid).await;
    assert_eq!(u.used_quota, 100, "both entries, once each");
    assert_eq!(u.quota, 10_000 - 100);
    assert_eq!(u.request_count, 2);
    assert_eq!(logged_quota(&app, uid).await, 70);
    let len: i64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(len, 0, "written back entries stay in the stream");
    app.finish().await;
}

/// An app in the Redis ledger mode whose Redis is reached through [`slow_replies_proxy`], with a
/// user (10,000) and a limited token (5,000). `None` without a test Redis.
struct SlowRedis {
    app: crate::helpers::TestApp,
    slow: Arc<std::sync::atomic::AtomicBool>,
    uid: i64,
    tid: i64,
    base: tollgate::store::ledger::Movement,
    ledger: tollgate::billing::ledger::Ledger,
    q: Arc<tollgate::cache::redis::QuotaStore>,
}

impl SlowRedis {
    /// Runs `act` while Redis's replies are held back (5 s, past the 4 s bound), and lets them
    /// through again a second later: only the first attempt's answer is lost, not the retry's.
    async fn losing_the_first_answer<T>(&self, act: impl FnOnce() -> T) -> T {
        use std::sync::atomic::Ordering;
        self.slow.store(true, Ordering::SeqCst);
        let out = act();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        self.slow.store(false, Ordering::SeqCst);
        out
    }

    /// Waits for the ledger's retried steps to land (`what` if they do not within 20 s).
    async fn flushed(&self, what: &str) {
        tokio::time::timeout(std::time::Duration::from_secs(20), self.ledger.flush())
            .await
            .expect(what);
    }
}

async fn slow_redis_app(backend: Backend) -> Option<SlowRedis> {
    let redis = crate::helpers::redis_url()?;
    let slow = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = slow_replies_proxy(
        redis.trim_start_matches("redis://").to_string(),
        slow.clone(),
    )
    .await;
    let conn = format!("redis://127.0.0.1:{port}");
    let app = spawn_app_mode(
        backend,
        LedgerMode::Redis,
        &[("REDIS_CONN_STRING", conn.as_str())],
    )
    .await?;
    let (uid, tid, base) = ledger_payer(&app).await;
    let ledger = app.state.relay.ledger.clone();
    let q = app.state.relay.redis.clone().expect("redis mode");
    Some(SlowRedis {
        app,
        slow,
        uid,
        tid,
        base,
        ledger,
        q,
    })
}

/// A TCP relay to Redis that, while `slow` is set, holds for 5 s the reply to each script call
/// (`EVALSHA`/`EVAL`; the call itself reaches Redis at once). Other replies (the pool's health
/// checks) pass at once.
async fn slow_replies_proxy(target: String, slow: Arc<std::sync::atomic::AtomicBool>) -> u16 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let (slow, target) = (slow.clone(), target.clone());
            tokio::spawn(async move {
                let Ok(mut out) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let held = AtomicUsize::new(0);
                let (mut ri, mut wi) = inbound.split();
                let (mut ro, mut wo) = out.split();
                let replies = async {
                    let mut buf = vec![0u8; 16384];
                    while let Ok(n) = ro.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        if held.load(Ordering::SeqCst) > 0 {
                            held.fetch_sub(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        }
                        if wi.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let commands = async {
                    let mut buf = vec![0u8; 16384];
                    while let Ok(n) = ri.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let script = buf[..n].windows(4).any(|w| w.eq_ignore_ascii_case(b"EVAL"));
                        if script && slow.load(Ordering::SeqCst) {
                            held.fetch_add(1, Ordering::SeqCst);
                        }
                        if wo.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! { _ = replies => {}, _ = commands => {} }
            });
        }
    });
    port
}
