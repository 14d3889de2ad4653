//! The skeleton: status, login, root bootstrap, error formats, schema contract.

use serde_json::{Value, json};
use sqlx::Row;

use crate::db_test;
use crate::helpers::{Backend, TestDatabase, spawn_app, spawn_app_with, start_on};

db_test!(
    status_has_one_api_shape,
    root_logs_in_and_gets_a_session,
    restart_creates_nothing_twice,
    errors_use_each_family_format,
    bcrypt_password_is_upgraded_at_login,
);

async fn status_has_one_api_shape(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let res = app.get("/api/status").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-oneapi-request-id"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["version"], tollgate::VERSION);
    assert!(body["data"]["start_time"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(body["data"]["quota_per_unit"], 500000.0);
    assert_eq!(body["data"]["display_in_currency"], true);
    app.finish().await;
}

async fn root_logs_in_and_gets_a_session(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Not signed in yet.
    let res = app.get("/api/user/self").await;
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], false);

    let res = app
        .post_json(
            "/api/user/login",
            &json!({"username": "root", "password": "123456"}),
        )
        .await;
    let cookie = res
        .headers()
        .get("set-cookie")
        .expect("session cookie")
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("session="), "{cookie}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["username"], "root");
    assert_eq!(body["data"]["role"], 100);

    let body: Value = app.get("/api/user/self").await.json().await.unwrap();
    assert_eq!(body["data"]["username"], "root");
    assert_eq!(body["data"]["quota"], 500_000_000_000_000i64);
    assert_eq!(body["data"]["access_token"], "");
    assert_eq!(body["data"]["password"], "");

    // Wrong password: refused, and the stored hash is argon2.
    let body: Value = app
        .post_json(
            "/api/user/login",
            &json!({"username": "root", "password": "1234567"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["success"], false);
    let hash: String = sqlx::query("SELECT password FROM users WHERE username = 'root'")
        .fetch_one(&app.db().pool)
        .await
        .unwrap()
        .get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    // Logout ends the session.
    app.get("/api/user/logout").await;
    assert_eq!(app.get("/api/user/self").await.status(), 401);
    app.finish().await;
}

async fn restart_creates_nothing_twice(backend: Backend) {
    let extra = [
        ("INITIAL_ROOT_TOKEN", "sk-initialroottoken0123456789"),
        (
            "INITIAL_ROOT_ACCESS_TOKEN",
            "rootaccesstoken0123456789abcdef",
        ),
    ];
    let Some(app) = spawn_app_with(backend, &extra).await else {
        return;
    };
    let database = app.stop().await;
    let app = start_on(database, &extra).await;
    let count = |sql: &'static str| {
        let pool = app.db().pool.clone();
        async move {
            sqlx::query(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
                .get::<i64, _>(0)
        }
    };
    assert_eq!(count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(count("SELECT COUNT(*) FROM tokens").await, 1);
    let row = sqlx::query(r#"SELECT "key", unlimited_quota, name FROM tokens"#)
        .fetch_one(&app.db().pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), "initialroottoken0123456789");
    assert_eq!(row.get::<i64, _>(1), 1);
    assert_eq!(row.get::<String, _>(2), "Initial Root Token");
    // The access token works on /api as `Authorization: <token>`.
    let res = reqwest::Client::new()
        .get(app.url("/api/user/self"))
        .header("Authorization", "rootaccesstoken0123456789abcdef")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["username"], "root");
    app.finish().await;
}

async fn errors_use_each_family_format(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Unknown routes.
    let res = app.get("/v1/no/such/route").await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(
        body["error"]["message"],
        "Invalid URL (GET /v1/no/such/route)"
    );
    let res = app.get("/api/no/such/route").await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], false);
    // Malformed JSON.
    let res = app
        .client
        .post(app.url("/api/user/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("invalid request")
    );
    // Oversized body.
    let big = "x".repeat(3 * 1024 * 1024);
    let res = app
        .client
        .post(app.url("/api/user/login"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"username":"{big}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], false);
    // The dashboard fallback answers everything else.
    assert_eq!(app.get("/some/page").await.status(), 200);
    app.finish().await;
}

async fn bcrypt_password_is_upgraded_at_login(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let hash = bcrypt::hash("oneapi-pass", 4).unwrap();
    sqlx::query(app.db().sql(
        r#"INSERT INTO users (username, password, display_name, role, status, email, access_token,
            quota, "group", aff_code, inviter_id, created_time)
           VALUES ('imported', ?, 'x', 1, 1, '', NULL, 0, 'default', NULL, 0, 0)"#,
    ))
    .bind(hash)
    .execute(&app.db().pool)
    .await
    .unwrap();
    app.login("imported", "oneapi-pass").await;
    let stored: String = sqlx::query("SELECT password FROM users WHERE username = 'imported'")
        .fetch_one(&app.db().pool)
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    app.get("/api/user/logout").await;
    app.login("imported", "oneapi-pass").await;
    app.finish().await;
}

/// One API's default pool (SQL_MAX_OPEN_CONNS=1000) is kept to what the server accepts: a pool
/// allowed more kept opening connections the server refused under a burst of cache misses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_keeps_to_the_servers_connection_limit() {
    use sqlx::Row;
    use tollgate::store::{Db, PoolSettings};
    let settings = PoolSettings {
        max_open: 1000,
        max_idle: 1,
        max_lifetime: std::time::Duration::from_secs(60),
        sqlite_busy_timeout: std::time::Duration::from_secs(3),
    };
    for (backend, sql) in [
        (
            Backend::Postgres,
            "SELECT CAST(current_setting('max_connections') AS BIGINT)",
        ),
        (Backend::MySql, "SELECT CAST(@@max_connections AS SIGNED)"),
    ] {
        if !backend.enabled() {
            continue;
        }
        let database = TestDatabase::create(backend).await;
        let db = Db::connect(&database.url, &settings).await.unwrap();
        let server: i64 = sqlx::query(sql).fetch_one(&db.pool).await.unwrap().get(0);
        assert!(server < 1000, "{backend:?}: the server allows {server}");
        let pool = i64::from(db.pool.options().get_max_connections());
        assert!(
            (1..=server).contains(&pool),
            "{backend:?}: a pool of {pool} on a server of {server}"
        );
        db.pool.close().await;
        database.drop_database().await;
    }
}

/// The three backends end with the same tables and columns after migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_contract_across_backends() {
    use tollgate::store::{Db, PoolSettings};
    let settings = PoolSettings {
        max_open: 2,
        max_idle: 1,
        max_lifetime: std::time::Duration::from_secs(60),
        sqlite_busy_timeout: std::time::Duration::from_secs(3),
    };
    let mut schemas = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
        if !backend.enabled() {
            continue;
        }
        let database = TestDatabase::create(backend).await;
        let db = Db::connect(&database.url, &settings).await.unwrap();
        db.migrate().await.unwrap();
        // Migrating twice is a no-op.
        db.migrate().await.unwrap();
        schemas.push((backend, db.schema().await.unwrap()));
        db.pool.close().await;
        database.drop_database().await;
    }
    let (first, reference) = &schemas[0];
    for table in [
        "users",
        "tokens",
        "channels",
        "abilities",
        "redemptions",
        "logs",
        "options",
    ] {
        assert!(reference.contains_key(table), "{first:?} lacks {table}");
    }
    for (backend, schema) in &schemas[1..] {
        assert_eq!(schema, reference, "{backend:?} differs from {first:?}");
    }
}
