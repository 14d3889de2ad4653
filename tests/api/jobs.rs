//! Background jobs (master only): channel tests with automatic disable/enable, balance updates,
//! log retention; their timers run on a master and not on a slave.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tollgate::config::{Config, NodeType};
use tollgate::jobs::{balance, channel_test, log_retention};
use tollgate::startup::prepare_databases;
use tollgate::state::AppState;
use tollgate::store::channels::{
    self, Channel, STATUS_AUTO_DISABLED, STATUS_ENABLED, STATUS_MANUALLY_DISABLED,
};
use tollgate::store::{Db, logs, now};

use crate::db_test;
use crate::helpers::{Backend, TestDatabase, serve, spawn_app, test_env};
use crate::mock_upstream::{MockUpstream, Received, Reply, chat_completion};

db_test!(
    channel_test_job_disables_and_reenables,
    manual_test_all_applies_the_same_rules,
    balance_job_updates_enabled_channels,
    log_retention_deletes_only_old_rows,
    timers_run_on_master_not_on_slave
);

const DAY: i64 = 24 * 60 * 60;

/// An OpenAI-compatible upstream: `sk-good` answers, `sk-flaky` answers while `healthy` is set
/// (401 invalid key otherwise), `sk-busy` gets a 500; balances for DeepSeek-style channels.
async fn upstream(healthy: Arc<AtomicBool>) -> MockUpstream {
    MockUpstream::start(move |r: &Received| {
        let key = r.header("authorization").unwrap_or("").to_string();
        if r.path.starts_with("/user/balance") {
            return if key == "Bearer sk-good" {
                Reply::json(
                    200,
                    json!({"is_available": true,
                           "balance_infos": [{"currency": "USD", "total_balance": "12.50"}]}),
                )
            } else {
                Reply::json(500, json!({"error": {"message": "down"}}))
            };
        }
        let ok =
            key == "Bearer sk-good" || (key == "Bearer sk-flaky" && healthy.load(Ordering::SeqCst));
        if ok {
            Reply::json(200, chat_completion("pong", 1, 1))
        } else if key == "Bearer sk-busy" {
            Reply::json(
                500,
                json!({"error": {"message": "overloaded", "type": "server_error"}}),
            )
        } else {
            Reply::json(
                401,
                json!({"error": {"message": "Incorrect API key provided",
                                 "type": "invalid_request_error", "code": "invalid_api_key"}}),
            )
        }
    })
    .await
}

/// Adds a channel (with its abilities) and returns its id.
async fn add_channel(db: &Db, ty: i64, key: &str, status: i64, model: &str, base: &str) -> i64 {
    // Unique, and without the key: logs must never show a key.
    let name = format!("ch-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    channels::insert_many(
        db,
        &[Channel {
            r#type: ty,
            key: key.into(),
            status,
            name: name.clone(),
            models: model.into(),
            group: "default".into(),
            base_url: base.into(),
            ..Default::default()
        }],
    )
    .await
    .unwrap();
    channels::all(db)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == name)
        .expect("channel")
        .id
}

async fn channel(db: &Db, id: i64) -> Channel {
    channels::get_by_id(db, id).await.unwrap().expect("channel")
}

async fn ability_enabled(db: &Db, id: i64) -> bool {
    let all = tollgate::store::abilities::all(db).await.unwrap();
    let mine: Vec<_> = all.iter().filter(|a| a.channel_id == id).collect();
    assert!(!mine.is_empty());
    mine.iter().all(|a| a.enabled)
}

fn routed(state: &AppState, model: &str) -> Option<i64> {
    state
        .relay
        .routing
        .load()
        .select("default", model, &HashSet::new())
        .map(|c| c.id)
}

async fn channel_test_job_disables_and_reenables(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (state, db) = (&app.state, app.db());
    let healthy = Arc::new(AtomicBool::new(false));
    let up = upstream(healthy.clone()).await;
    let flaky = add_channel(db, 8, "sk-flaky", STATUS_ENABLED, "ma", &up.url).await;
    let recovered = add_channel(db, 8, "sk-good", STATUS_AUTO_DISABLED, "mb", &up.url).await;
    let manual = add_channel(db, 8, "sk-good", STATUS_MANUALLY_DISABLED, "mc", &up.url).await;
    let busy = add_channel(db, 8, "sk-busy", STATUS_ENABLED, "md", &up.url).await;
    tollgate::relay::reload_routing(state).await.unwrap();
    assert_eq!(routed(state, "ma"), Some(flaky));
    assert_eq!(routed(state, "mb"), None);

    // Options off (One API's defaults): every channel is tested, no status changes.
    let r = channel_test::test_all_channels(state, false).await.unwrap();
    assert_eq!((r.tested, r.passed), (4, 2), "{r:?}");
    assert!(r.disabled.is_empty() && r.enabled.is_empty(), "{r:?}");
    assert_eq!(channel(db, flaky).await.status, STATUS_ENABLED);
    assert_eq!(channel(db, recovered).await.status, STATUS_AUTO_DISABLED);

    state
        .options
        .set(db, "AutomaticDisableChannelEnabled", "true")
        .await
        .unwrap();
    state
        .options
        .set(db, "AutomaticEnableChannelEnabled", "true")
        .await
        .unwrap();
    let r = channel_test::test_all_channels(state, false).await.unwrap();
    assert_eq!(r.disabled, vec![flaky], "{r:?}");
    assert_eq!(r.enabled, vec![recovered], "{r:?}");
    assert_eq!(channel(db, flaky).await.status, STATUS_AUTO_DISABLED);
    assert!(!ability_enabled(db, flaky).await);
    assert_eq!(channel(db, recovered).await.status, STATUS_ENABLED);
    assert!(ability_enabled(db, recovered).await);
    // An admin's disable stands; a transient error (500) does not disable.
    assert_eq!(channel(db, manual).await.status, STATUS_MANUALLY_DISABLED);
    assert_eq!(channel(db, busy).await.status, STATUS_ENABLED);
    // The routing table was rebuilt.
    assert_eq!(routed(state, "ma"), None);
    assert_eq!(routed(state, "mb"), Some(recovered));

    // The failing channel recovers: only the disabled ones are tested, and it comes back.
    healthy.store(true, Ordering::SeqCst);
    let r = channel_test::test_all_channels(state, true).await.unwrap();
    assert_eq!(r.tested, 2, "{r:?}"); // flaky (3) and manual (2)
    assert_eq!(r.enabled, vec![flaky], "{r:?}");
    assert_eq!(channel(db, flaky).await.status, STATUS_ENABLED);
    assert!(ability_enabled(db, flaky).await);
    assert_eq!(routed(state, "ma"), Some(flaky));
    assert_eq!(channel(db, manual).await.status, STATUS_MANUALLY_DISABLED);

    // Each test wrote a test log, and no log carries a key.
    let tests = logs::list(
        &state.log_db,
        &logs::LogFilter {
            r#type: logs::TYPE_TEST,
            ..Default::default()
        },
        0,
    )
    .await
    .unwrap();
    assert!(!tests.is_empty());
    assert!(tests.iter().all(|l| !l.content.contains("sk-")));
    app.finish().await;
}

/// `GET /api/channel/test` (test all, in the background) runs the same batch test.
async fn manual_test_all_applies_the_same_rules(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let db = app.db();
    let up = upstream(Arc::new(AtomicBool::new(false))).await;
    let failing = add_channel(db, 8, "sk-flaky", STATUS_ENABLED, "ma", &up.url).await;
    let recovered = add_channel(db, 8, "sk-good", STATUS_AUTO_DISABLED, "mb", &up.url).await;
    for key in [
        "AutomaticDisableChannelEnabled",
        "AutomaticEnableChannelEnabled",
    ] {
        app.state.options.set(db, key, "true").await.unwrap();
    }
    let root = app.root().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    // One batch test at a time per process: another test's may be running for a moment.
    loop {
        let r = root.get("/api/channel/test").await;
        if r["success"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Statuses are written first, then the routing table is rebuilt: wait for both.
    loop {
        let (f, r) = (channel(db, failing).await, channel(db, recovered).await);
        let routes = (routed(&app.state, "ma"), routed(&app.state, "mb"));
        if f.status == STATUS_AUTO_DISABLED
            && r.status == STATUS_ENABLED
            && routes == (None, Some(recovered))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "statuses {} {}, routes {routes:?}",
            f.status,
            r.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.finish().await;
}

async fn balance_job_updates_enabled_channels(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let db = app.db();
    let up = upstream(Arc::new(AtomicBool::new(true))).await;
    let deep = add_channel(db, 36, "sk-good", STATUS_ENABLED, "m", &up.url).await;
    let down = add_channel(db, 36, "sk-down", STATUS_ENABLED, "m", &up.url).await;
    let off = add_channel(db, 36, "sk-good", STATUS_MANUALLY_DISABLED, "m", &up.url).await;
    let claude = add_channel(db, 14, "sk-good", STATUS_ENABLED, "m", &up.url).await;

    let r = balance::update_all_balances(&app.state).await.unwrap();
    assert_eq!(r.updated, vec![deep], "{r:?}");
    assert_eq!(r.failed, vec![down], "{r:?}");
    let c = channel(db, deep).await;
    assert_eq!(c.balance, 12.5);
    assert!(c.balance_updated_time > 0);
    for id in [down, off, claude] {
        let c = channel(db, id).await;
        assert_eq!(
            (c.balance, c.balance_updated_time),
            (0.0, 0),
            "channel {id}"
        );
    }
    // The HTTP route runs the same code.
    let root = app.root().await;
    assert_eq!(
        root.get("/api/channel/update_balance").await["success"],
        true
    );
    app.finish().await;
}

/// Inserts a log row at `created_at`.
async fn add_log(db: &Db, created_at: i64, content: &str) {
    let row = logs::Log {
        created_at,
        r#type: logs::TYPE_SYSTEM,
        content: content.into(),
        ..Default::default()
    };
    logs::insert(db, &row).await.unwrap();
}

/// Every log's `created_at`, oldest first.
async fn log_times(db: &Db) -> Vec<i64> {
    sqlx::query("SELECT created_at FROM logs ORDER BY created_at")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| sqlx::Row::try_get::<i64, _>(r, 0).unwrap())
        .collect()
}

/// How many logs are older than 30 days.
async fn old_logs(db: &Db) -> usize {
    let cutoff = now() - 30 * DAY;
    log_times(db).await.iter().filter(|t| **t < cutoff).count()
}

async fn log_retention_deletes_only_old_rows(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let db = &app.state.log_db;
    let t = now();
    for i in 0..10 {
        add_log(db, t - 40 * DAY - i, "old").await;
    }
    for age in [31 * DAY, 30 * DAY + 60] {
        add_log(db, t - age, "old").await;
    }
    let kept = [t - 30 * DAY + 3600, t - DAY, t];
    for at in kept {
        add_log(db, at, "recent").await;
    }

    // Unset (0): nothing is deleted.
    assert_eq!(log_retention::purge_old_logs(&app.state).await.unwrap(), 0);
    assert_eq!(log_times(db).await.len(), 15);
    // The ten 40-day-old rows, in batches of 3: three full batches and a short one.
    let deleted = log_retention::purge_before(db, t - 35 * DAY, 3, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(deleted, 10);
    // With LOG_RETENTION_DAYS=30: the two remaining old rows go, the recent ones stay.
    let mut state = app.state.clone();
    let mut cfg = (*state.cfg).clone();
    cfg.log_retention_days = 30;
    state.cfg = Arc::new(cfg);
    assert_eq!(log_retention::purge_old_logs(&state).await.unwrap(), 2);
    assert_eq!(log_times(db).await, kept.to_vec());
    assert_eq!(log_retention::purge_old_logs(&state).await.unwrap(), 0);
    app.finish().await;
}

/// A server started on `database` with `extra` settings and the job periods shortened to one
/// second (the variables count minutes, as in One API); returns its state and handle.
async fn start_node(
    database: &TestDatabase,
    extra: &[(&str, &str)],
) -> (AppState, actix_web::dev::ServerHandle) {
    let mut cfg = Config::from_map(&test_env(database, extra)).expect("config");
    assert_eq!(cfg.channel_test_frequency, Some(Duration::from_secs(60)));
    assert_eq!(cfg.channel_update_frequency, Some(Duration::from_secs(60)));
    cfg.channel_test_frequency = Some(Duration::from_secs(1));
    cfg.channel_update_frequency = Some(Duration::from_secs(1));
    let (state, handle, _) = serve(cfg).await;
    (state, handle)
}

/// A database migrated with root created, holding one failing channel (auto-disable on), one
/// DeepSeek channel without a balance yet, and a 40-day-old log.
async fn seeded_database(backend: Backend, up: &MockUpstream) -> (TestDatabase, i64, i64) {
    let database = TestDatabase::create(backend).await;
    let cfg = Config::from_map(&test_env(&database, &[])).expect("config");
    let (db, log_db) = prepare_databases(&cfg).await.expect("databases");
    let failing = add_channel(&db, 8, "sk-bad", STATUS_ENABLED, "m", &up.url).await;
    let deep = add_channel(&db, 36, "sk-good", STATUS_ENABLED, "m", &up.url).await;
    tollgate::store::options::upsert(&db, "AutomaticDisableChannelEnabled", "true")
        .await
        .unwrap();
    add_log(&log_db, now() - 40 * DAY, "old").await;
    db.pool.close().await;
    (database, failing, deep)
}

async fn timers_run_on_master_not_on_slave(backend: Backend) {
    if !backend.enabled() {
        return;
    }
    let master_up = upstream(Arc::new(AtomicBool::new(false))).await;
    let slave_up = upstream(Arc::new(AtomicBool::new(false))).await;
    let (master_db, m_failing, m_deep) = seeded_database(backend, &master_up).await;
    let (slave_db, s_failing, s_deep) = seeded_database(backend, &slave_up).await;
    let jobs = [
        ("CHANNEL_TEST_FREQUENCY", "1"),
        ("CHANNEL_UPDATE_FREQUENCY", "1"),
        ("LOG_RETENTION_DAYS", "30"),
    ];
    let started = Instant::now();
    let (master, master_handle) = start_node(&master_db, &jobs).await;
    let slave_env: Vec<_> = jobs
        .iter()
        .copied()
        .chain([("NODE_TYPE", "slave")])
        .collect();
    let (slave, slave_handle) = start_node(&slave_db, &slave_env).await;
    assert_eq!(master.cfg.node_type, NodeType::Master);
    assert_eq!(slave.cfg.node_type, NodeType::Slave);

    // The master's timers: the failing channel is disabled, the balance written, the old log
    // deleted (retention also runs at start).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let failing = channel(&master.db, m_failing).await;
        let deep = channel(&master.db, m_deep).await;
        let logs_left = old_logs(&master.log_db).await;
        if failing.status == STATUS_AUTO_DISABLED
            && deep.balance == 12.5
            && logs_left == 0
            && routed(&master, "m") == Some(m_deep)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "master jobs did not run: status {}, balance {}, logs {logs_left}",
            failing.status,
            deep.balance
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The slave, up for at least three periods, ran none of them.
    let waited = started.elapsed();
    if waited < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_secs(3) - waited).await;
    }
    assert_eq!(slave_up.count(), 0, "a slave called the upstream");
    assert_eq!(channel(&slave.db, s_failing).await.status, STATUS_ENABLED);
    assert_eq!(channel(&slave.db, s_deep).await.balance_updated_time, 0);
    assert_eq!(old_logs(&slave.log_db).await, 1);

    for (handle, state, database) in [
        (master_handle, master, master_db),
        (slave_handle, slave, slave_db),
    ] {
        handle.stop(true).await;
        state.db.pool.close().await;
        database.drop_database().await;
    }
}
