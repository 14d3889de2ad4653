//! The management API and the relay together: what an operator changes in the dashboard takes
//! effect on the next relay request, not after a cache TTL or a sync period.

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, spawn_app};
use crate::mock_upstream::{MockUpstream, Reply, chat_completion};
use crate::relay_helpers::{post, token, user};

db_test!(
    dashboard_changes_take_effect_at_once,
    expired_and_exhausted_tokens_are_marked,
    fetch_models_lists_the_upstream_models,
);

/// The dashboard's "fetch from upstream": the channel's key goes upstream, never back out.
async fn fetch_models_lists_the_upstream_models(backend: Backend) {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("authorization", "Bearer sk-secret-upstream"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "list",
            "data": [{"id": "gpt-4o"}, {"id": "gpt-3.5-turbo"}, {"id": "gpt-4o"}]})),
        )
        .mount(&upstream)
        .await;
    let cid = crate::relay_helpers::channel_with(&app, &upstream.uri(), "gpt-4o", |c| {
        c.key = "sk-secret-upstream".into();
    })
    .await;
    app.login_root().await;
    let res = app.get(&format!("/api/channel/fetch_models/{cid}")).await;
    let text = res.text().await.unwrap();
    assert!(!text.contains("sk-secret-upstream"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["data"], json!(["gpt-3.5-turbo", "gpt-4o"]), "{body}");
    // Unknown channel and common users are refused.
    let body: Value = app
        .get("/api/channel/fetch_models/99999")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["success"], false);
    app.get("/api/user/logout").await;
    let res = app.get(&format!("/api/channel/fetch_models/{cid}")).await;
    assert_eq!(res.status(), 401);
    app.finish().await;
}

/// Expired and exhausted tokens are refused and their status is stored (3, 4), so the dashboard
/// shows why; a token topped up again works.
async fn expired_and_exhausted_tokens_are_marked(backend: Backend) {
    use crate::relay_helpers::{channel, token_row, token_with};
    use tollgate::store::tokens;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let upstream = MockUpstream::start(|_| Reply::json(200, chat_completion("ok", 5, 3))).await;
    channel(&app, &upstream.url, "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let past = tollgate::store::now() - 60;
    let (expired_id, expired) = token_with(&app, uid, None, |t| t.expired_time = past).await;
    let res = post(&app, &expired, "/v1/chat/completions", &chat()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        token_row(&app, expired_id).await.status,
        tokens::STATUS_EXPIRED
    );

    let (empty_id, empty) = token(&app, uid, Some(0)).await;
    let res = post(&app, &empty, "/v1/chat/completions", &chat()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        token_row(&app, empty_id).await.status,
        tokens::STATUS_EXHAUSTED
    );

    // Topped up and re-enabled (as the token edit route does): it works again at once.
    sqlx::query(
        app.db()
            .sql("UPDATE tokens SET remain_quota = 10000, status = 1 WHERE id = ?"),
    )
    .bind(empty_id)
    .execute(&app.db().pool)
    .await
    .unwrap();
    app.state.relay.invalidate_token(&empty);
    let res = post(&app, &empty, "/v1/chat/completions", &chat()).await;
    assert_eq!(res.status(), 200);
    app.finish().await;
}

fn chat() -> Value {
    json!({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]})
}

async fn dashboard_changes_take_effect_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let upstream = MockUpstream::start(|_| Reply::json(200, chat_completion("ok", 5, 3))).await;
    app.login_root().await;

    // A channel created through /api is routed to at once.
    let res: Value = app
        .post_json(
            "/api/channel/",
            &json!({"type": 1, "name": "mock", "key": "sk-upstream", "base_url": upstream.url,
                    "models": "gpt-3.5-turbo", "group": "default"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(res["success"], true, "{res}");
    let created: Value = app
        .post_json(
            "/api/token/",
            &json!({"name": "mine", "unlimited_quota": true, "expired_time": -1}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["success"], true, "{created}");
    let (token_id, key) = (
        created["data"]["id"].as_i64().unwrap(),
        created["data"]["key"].as_str().unwrap().to_string(),
    );
    let res = post(&app, &key, "/v1/chat/completions", &chat()).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // Disabling the token in the dashboard refuses the very next call.
    let res: Value = app
        .client
        .put(app.url("/api/token/?status_only=1"))
        .json(&json!({"id": token_id, "status": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["success"], true, "{res}");
    let res = post(&app, &key, "/v1/chat/completions", &chat()).await;
    assert_eq!(res.status(), 401);

    // Disabling a user refuses their tokens at once.
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, ukey) = token(&app, uid, None).await;
    let res = post(&app, &ukey, "/v1/chat/completions", &chat()).await;
    assert_eq!(res.status(), 200);
    let name = tollgate::store::users::get_by_id(app.db(), uid)
        .await
        .unwrap()
        .unwrap()
        .username;
    let res: Value = app
        .post_json(
            "/api/user/manage",
            &json!({"username": name, "action": "disable"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(res["success"], true, "{res}");
    let res = post(&app, &ukey, "/v1/chat/completions", &chat()).await;
    assert_eq!(res.status(), 403);

    // Deleting the channel leaves no channel for the model.
    let list: Value = app.get("/api/channel/").await.json().await.unwrap();
    let cid = list["data"][0]["id"].as_i64().unwrap();
    let res: Value = app
        .client
        .delete(app.url(&format!("/api/channel/{cid}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["success"], true);
    let (_, rkey) = token(&app, 1, None).await;
    let res = post(&app, &rkey, "/v1/chat/completions", &chat()).await;
    assert_eq!(res.status(), 503);
    app.finish().await;
}
