//! Relay test setup straight through the store (no dependency on the /api management routes):
//! users, tokens, channels with their abilities, and readers for quotas and consume logs.
#![allow(dead_code)]

use serde_json::Value;
use tollgate::store::{abilities, channels, logs, tokens, users};

use crate::helpers::TestApp;

/// A user with 10,000 quota and a token of theirs limited to 5,000, for tests that drive the
/// ledger directly: `(user id, token id, the movement base that bills them)`.
pub async fn ledger_payer(app: &TestApp) -> (i64, i64, tollgate::store::ledger::Movement) {
    let uid = user(app, 10_000, "default", 1).await;
    let (tid, _) = token(app, uid, Some(5_000)).await;
    let base = tollgate::store::ledger::Movement {
        user_id: uid,
        token_id: tid,
        ..Default::default()
    };
    (uid, tid, base)
}

/// Creates a user with `quota` in `group` with `role`; returns its id.
pub async fn user(app: &TestApp, quota: i64, group: &str, role: i64) -> i64 {
    let name = format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    users::insert(
        app.db(),
        &app.db().pool,
        &users::NewUser {
            username: name,
            password_hash: "x".into(),
            display_name: "t".into(),
            role,
            quota,
            group: group.into(),
            ..Default::default()
        },
    )
    .await
    .expect("insert user")
}

/// A token of `user_id`; `remain = None` makes it unlimited. Returns the key (without `sk-`).
pub async fn token_with(
    app: &TestApp,
    user_id: i64,
    remain: Option<i64>,
    f: impl FnOnce(&mut tokens::NewToken),
) -> (i64, String) {
    let key = uuid::Uuid::new_v4().simple().to_string();
    let mut t = tokens::NewToken {
        user_id,
        key: key.clone(),
        name: "test-token".into(),
        expired_time: -1,
        remain_quota: remain.unwrap_or(0),
        unlimited_quota: remain.is_none(),
        ..Default::default()
    };
    f(&mut t);
    let id = tokens::insert(app.db(), &app.db().pool, &t)
        .await
        .expect("insert token");
    (id, key)
}

pub async fn token(app: &TestApp, user_id: i64, remain: Option<i64>) -> (i64, String) {
    token_with(app, user_id, remain, |_| {}).await
}

/// A channel of `type` at `base_url` serving `models` to `group`; reloads routing.
pub async fn channel_with(
    app: &TestApp,
    base_url: &str,
    models: &str,
    f: impl FnOnce(&mut channels::Channel),
) -> i64 {
    let mut c = channels::Channel {
        r#type: 1,
        key: format!("upstream-key-{}", uuid::Uuid::new_v4().simple()),
        status: 1,
        name: "mock".into(),
        base_url: base_url.into(),
        models: models.into(),
        group: "default".into(),
        ..Default::default()
    };
    f(&mut c);
    let db = app.db();
    let mut tx = db.pool.begin().await.unwrap();
    let id = channels::insert(db, &mut *tx, &c)
        .await
        .expect("insert channel");
    c.id = id;
    abilities::replace_for_channel(db, &mut tx, &c)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    tollgate::relay::reload_routing(&app.state).await.unwrap();
    id
}

pub async fn channel(app: &TestApp, base_url: &str, models: &str) -> i64 {
    channel_with(app, base_url, models, |_| {}).await
}

/// Sets an option (store + snapshot).
pub async fn set_option(app: &TestApp, key: &str, value: &str) {
    app.state.options.set(app.db(), key, value).await.unwrap();
}

/// POSTs JSON to a relay path with `Authorization: Bearer sk-<key>`.
pub async fn post(app: &TestApp, key: &str, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(format!("sk-{key}"))
        .json(body)
        .timeout(std::time::Duration::from_secs(20))
        .send()
        .await
        .expect("relay POST")
}

/// [`post`] that must answer 200; a failure shows the error body, which names the cause.
pub async fn post_ok(app: &TestApp, key: &str, path: &str, body: &Value) -> Value {
    let res = post(app, key, path, body).await;
    let status = res.status();
    let text = res.text().await.expect("relay body");
    assert_eq!(status, 200, "POST {path}: {text}");
    serde_json::from_str(&text).expect("relay JSON")
}

pub async fn get(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(format!("sk-{key}"))
        .timeout(std::time::Duration::from_secs(20))
        .send()
        .await
        .expect("relay GET")
}

/// Waits until queued settlements are written.
pub async fn settled(app: &TestApp) {
    app.state.relay.flush().await;
}

pub async fn user_row(app: &TestApp, id: i64) -> users::User {
    users::get_by_id(app.db(), id).await.unwrap().unwrap()
}

pub async fn token_row(app: &TestApp, id: i64) -> tokens::Token {
    tokens::get_by_id(app.db(), id).await.unwrap().unwrap()
}

pub async fn channel_row(app: &TestApp, id: i64) -> channels::Channel {
    channels::get_by_id(app.db(), id).await.unwrap().unwrap()
}

/// The consume logs of a user, oldest first.
pub async fn consume_logs(app: &TestApp, user_id: i64) -> Vec<logs::Log> {
    let db = &app.state.log_db;
    let sql = db.sql(const_format::concatcp!(
        "SELECT ",
        logs::COLUMNS,
        " FROM logs WHERE user_id = ? AND type = 2 ORDER BY id"
    ));
    sqlx::query(sql)
        .bind(user_id)
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| logs::from_row(r).unwrap())
        .collect()
}

/// Sum of consume-log quota for a user.
pub async fn logged_quota(app: &TestApp, user_id: i64) -> i64 {
    consume_logs(app, user_id)
        .await
        .iter()
        .map(|l| l.quota)
        .sum()
}

/// Polls `f` until it is true or 10 s pass.
pub async fn eventually<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("condition not reached in time");
}
