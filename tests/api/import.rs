//! `tollgate import-one-api`: fixture databases built with One API's own schema (SQLite and
//! MySQL) are copied into each of our backends; a second run changes nothing; a non-empty target
//! is refused without `--merge`; imported users sign in with their One API passwords.

use serde_json::{Value as Json, json};
use sqlx::{Connection, Row};
use tollgate::import;
use tollgate::store::{Db, PoolSettings};

use crate::db_test;
use crate::helpers::{Backend, TestDatabase, start_on};

const LOGS: usize = 6_200;

fn go_bcrypt(password: &str) -> String {
    // One API (Go) writes `$2a$` hashes.
    bcrypt::hash_with_result(password, 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoA)
}

fn settings() -> PoolSettings {
    PoolSettings {
        max_open: 3,
        max_idle: 1,
        max_lifetime: std::time::Duration::from_secs(60),
        sqlite_busy_timeout: std::time::Duration::from_secs(5),
    }
}

/// Builds a One API database of the given backend; returns it and the `--from` argument.
async fn one_api_fixture(backend: Backend) -> (TestDatabase, String) {
    let database = TestDatabase::create(backend).await;
    let schema = match backend {
        Backend::MySql => include_str!("../fixtures/one-api/mysql.sql"),
        _ => include_str!("../fixtures/one-api/sqlite.sql"),
    };
    let data = include_str!("../fixtures/one-api/data.sql")
        .replace("$ROOT_HASH", &go_bcrypt("123456"))
        .replace("$ALICE_HASH", &go_bcrypt("alicepass1"))
        .replace("$BOB_HASH", &go_bcrypt("bobpass12"));
    let mut conn = sqlx::AnyConnection::connect(&database.url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(schema.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(data))
        .execute(&mut conn)
        .await
        .unwrap();
    // Logs, inserted in chunks.
    for chunk in (1..=LOGS).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "({i}, 2, {}, 2, 'ratio 15', 'alice', 'alice-main', 'gpt-4', {}, 10, 20, 3, 'req{i}', 120, {})",
                    1_700_000_000 + i,
                    i % 50,
                    i % 2
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO `logs` (`id`,`user_id`,`created_at`,`type`,`content`,`username`,`token_name`,\
             `model_name`,`quota`,`prompt_tokens`,`completion_tokens`,`channel_id`,`request_id`,\
             `elapsed_time`,`is_stream`) VALUES {}",
            values.join(",")
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let _ = conn.close().await;
    let from = match backend {
        Backend::Sqlite => database
            .url
            .trim_start_matches("sqlite://")
            .trim_end_matches("?mode=rwc")
            .to_string(),
        _ => database.url.clone(),
    };
    (database, from)
}

async fn fresh_target(backend: Backend) -> (TestDatabase, Db) {
    let database = TestDatabase::create(backend).await;
    let db = Db::connect(&database.url, &settings()).await.unwrap();
    db.migrate().await.unwrap();
    (database, db)
}

async fn import_and_check(source: Backend, target: Backend) {
    if !source.enabled() || !target.enabled() {
        return;
    }
    let (source_db, from) = one_api_fixture(source).await;
    let (target_db, db) = fresh_target(target).await;
    // A fresh target as a first start leaves it: the bootstrap root only.
    let cfg = tollgate::config::Config::from_map(&Default::default()).unwrap();
    tollgate::bootstrap::ensure_root(&db, &cfg).await.unwrap();

    let report = import::run(&from, &db, &db, false, false).await.unwrap();
    assert_eq!(report.inserted("users"), 4, "{}", report.render());
    assert_eq!(report.inserted("tokens"), 3);
    assert_eq!(report.inserted("channels"), 2);
    assert_eq!(report.inserted("redemptions"), 2);
    assert_eq!(report.inserted("options"), 3);
    assert_eq!(report.inserted("logs"), LOGS as u64);
    // 2 models x 2 groups for channel 3, 1 for channel 7; the stale ability of channel 99 is gone.
    assert_eq!(report.abilities, 5);

    let alice = tollgate::store::users::get_for_login(&db, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((alice.id, alice.quota, alice.used_quota), (2, 1000, 250));
    assert_eq!(alice.group, "vip");
    assert!(alice.password.starts_with("$2a$"));
    assert_eq!(
        alice.access_token.as_deref(),
        Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    );
    let bob = tollgate::store::users::get_by_id(&db, 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((bob.role, bob.access_token, bob.aff_code), (10, None, None));
    let token = tollgate::store::tokens::get_by_key(
        &db,
        "AliceKey0123456789abcdefABCDEF0123456789abcdefAB",
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!((token.id, token.user_id, token.remain_quota), (2, 2, 5000));
    assert!(!token.unlimited_quota);
    assert_eq!((token.models.as_str(), token.subnet.as_str()), ("", ""));
    let root_token = tollgate::store::tokens::get_by_id(&db, 1)
        .await
        .unwrap()
        .unwrap();
    assert!(root_token.unlimited_quota);
    let ch = tollgate::store::channels::get_by_id(&db, 7)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ch.r#type, ch.priority, ch.weight, ch.status),
        (14, 10, 5, 2)
    );
    assert_eq!(
        ch.model_mapping,
        r#"{"claude-3-haiku":"claude-3-haiku-20240307"}"#
    );
    assert_eq!((ch.balance, ch.system_prompt.as_str()), (12.5, "Be brief."));
    let ch3 = tollgate::store::channels::get_by_id(&db, 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ch3.priority, ch3.base_url.as_str(), ch3.used_quota),
        (0, "", 777)
    );
    let sum = tollgate::store::dialect::as_i64(db.backend, "COALESCE(SUM(quota), 0)");
    let log_sum: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {sum} FROM logs")))
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get(0);
    let expected: i64 = (1..=LOGS as i64).map(|i| i % 50).sum();
    assert_eq!(log_sum, expected);

    // A second run changes nothing.
    let again = import::run(&from, &db, &db, false, false).await.unwrap();
    for t in &again.tables {
        assert_eq!(t.inserted, 0, "{}", again.render());
    }
    assert_eq!(tollgate::store::users::count(&db).await.unwrap(), 4);

    // New rows get ids after the imported ones (sequences moved on).
    let new_id = tollgate::store::users::insert(
        &db,
        &db.pool,
        &tollgate::store::users::NewUser {
            username: "carol".into(),
            password_hash: "x".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(new_id > 4, "{new_id}");

    // Imported users sign in with their One API passwords.
    db.pool.close().await;
    let app = start_on(target_db, &[]).await;
    app.login("alice", "alicepass1").await;
    let me: Json = app.get("/api/user/self").await.json().await.unwrap();
    assert_eq!(me["data"]["quota"], 1000);
    let res = app
        .post_json(
            "/api/user/login",
            &json!({"username": "bob", "password": "wrong"}),
        )
        .await;
    let body: Json = res.json().await.unwrap();
    assert_eq!(body["success"], false);
    app.finish().await;
    source_db.drop_database().await;
}

async fn refuses_non_empty_target_without_merge(target: Backend) {
    if !target.enabled() {
        return;
    }
    let (source_db, from) = one_api_fixture(Backend::Sqlite).await;
    let (target_db, db) = fresh_target(target).await;
    let cfg = tollgate::config::Config::from_map(&Default::default()).unwrap();
    tollgate::bootstrap::ensure_root(&db, &cfg).await.unwrap();
    // Tollgate's own data: a channel.
    tollgate::store::channels::insert(
        &db,
        &db.pool,
        &tollgate::store::channels::Channel {
            name: "mine".into(),
            status: 1,
            models: "m".into(),
            group: "default".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let err = import::run(&from, &db, &db, false, false)
        .await
        .expect_err("must refuse");
    assert!(err.to_string().contains("--merge"), "{err}");
    assert_eq!(tollgate::store::users::count(&db).await.unwrap(), 1);

    // With --merge: our root keeps id 1 (One API's root is skipped), the rest comes in.
    let report = import::run(&from, &db, &db, true, false).await.unwrap();
    assert_eq!(report.inserted("users"), 3, "{}", report.render());
    assert_eq!(
        report.inserted("channels"),
        2,
        "ids 3 and 7 do not clash with ours"
    );
    let root = tollgate::store::users::get_by_id(&db, 1)
        .await
        .unwrap()
        .unwrap();
    assert!(root.password.starts_with("$argon2"));
    db.pool.close().await;
    target_db.drop_database().await;
    source_db.drop_database().await;
}

async fn from_sqlite(target: Backend) {
    import_and_check(Backend::Sqlite, target).await
}

async fn from_mysql(target: Backend) {
    import_and_check(Backend::MySql, target).await
}

db_test!(
    from_sqlite,
    from_mysql,
    refuses_non_empty_target_without_merge
);
