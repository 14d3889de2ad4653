//! Tokens: own only, validation, status rules.

use serde_json::json;

use crate::db_test;
use crate::helpers::{Backend, spawn_app};

db_test!(token_crud_and_ownership, token_validation_and_status_rules);

async fn token_crud_and_ownership(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (uid, _, alice) = app.user_with_role(1).await;
    let (_, _, bob) = app.user_with_role(1).await;
    let r = alice
        .post(
            "/api/token/",
            &json!({"name": "work", "remain_quota": 100, "expired_time": -1,
                    "unlimited_quota": false, "models": "gpt-4", "subnet": "10.0.0.0/8"}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    let t = &r["data"];
    let id = t["id"].as_i64().unwrap();
    assert_eq!(t["key"].as_str().unwrap().len(), 48);
    assert!(!t["key"].as_str().unwrap().starts_with("sk-"));
    assert_eq!(t["user_id"], uid);
    assert_eq!(t["models"], "gpt-4");

    assert_eq!(
        alice.get(&format!("/api/token/{id}")).await["data"]["name"],
        "work"
    );
    assert_eq!(
        alice.get("/api/token/search?keyword=wo").await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        alice.get("/api/token/search?keyword=%25").await["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        alice.get("/api/token/?p=0").await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        alice.get("/api/token/?p=1").await["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // Bob sees nothing of Alice's.
    assert_eq!(bob.get(&format!("/api/token/{id}")).await["success"], false);
    assert_eq!(
        bob.get("/api/token/").await["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let r = bob
        .put("/api/token/", &json!({"id": id, "name": "stolen"}))
        .await;
    assert_eq!(r["success"], false);
    assert_eq!(
        bob.delete(&format!("/api/token/{id}")).await["success"],
        false
    );

    let r = alice
        .put(
            "/api/token/",
            &json!({"id": id, "name": "renamed", "remain_quota": 5, "expired_time": -1}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["data"]["name"], "renamed");
    assert_eq!(r["data"]["remain_quota"], 5);
    let r = alice
        .put(
            "/api/token/?status_only=1",
            &json!({"id": id, "status": 2, "name": "ignored"}),
        )
        .await;
    assert_eq!(r["data"]["status"], 2);
    assert_eq!(r["data"]["name"], "renamed");
    assert_eq!(
        alice.delete(&format!("/api/token/{id}")).await["success"],
        true
    );
    assert_eq!(
        alice.get(&format!("/api/token/{id}")).await["success"],
        false
    );
    app.finish().await;
}

async fn token_validation_and_status_rules(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, _, s) = app.user_with_role(1).await;
    for body in [
        json!({"name": "x".repeat(31)}),
        json!({"name": "neg", "remain_quota": -1}),
        json!({"name": "net", "subnet": "10.0.0.0/99"}),
        json!({"name": "net", "subnet": "not-an-ip"}),
        json!({"name": 7}),
    ] {
        let r = s.post("/api/token/", &body).await;
        assert_eq!(r["success"], false, "{body}: {r}");
    }
    assert_eq!(
        s.get("/api/token/").await["data"].as_array().unwrap().len(),
        0
    );

    // Expired: cannot be enabled.
    let r = s
        .post(
            "/api/token/",
            &json!({"name": "old", "expired_time": 1000, "remain_quota": 10}),
        )
        .await;
    let id = r["data"]["id"].as_i64().unwrap();
    tollgate::store::tokens::update(
        app.db(),
        id,
        r["data"]["user_id"].as_i64().unwrap(),
        &tollgate::store::tokens::TokenUpdate {
            name: "old".into(),
            status: 3,
            expired_time: 1000,
            remain_quota: 10,
            ..Default::default()
        },
        0,
    )
    .await
    .unwrap();
    let r = s
        .put("/api/token/?status_only=1", &json!({"id": id, "status": 1}))
        .await;
    assert_eq!(r["success"], false);
    assert!(r["message"].as_str().unwrap().contains("令牌已过期"));
    // Exhausted: cannot be enabled unless unlimited.
    let r = s
        .post("/api/token/", &json!({"name": "empty", "remain_quota": 0}))
        .await;
    let id = r["data"]["id"].as_i64().unwrap();
    let r = s
        .put("/api/token/?status_only=1", &json!({"id": id, "status": 2}))
        .await;
    assert_eq!(r["success"], true);
    let r = s
        .put("/api/token/?status_only=1", &json!({"id": id, "status": 1}))
        .await;
    assert!(r["message"].as_str().unwrap().contains("额度已用尽"), "{r}");
    let r = s
        .put(
            "/api/token/",
            &json!({"id": id, "status": 1, "unlimited_quota": true, "expired_time": -1}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["data"]["status"], 1);
    app.finish().await;
}

db_test!(token_partial_update_keeps_expiry);

async fn token_partial_update_keeps_expiry(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, _, s) = app.user_with_role(1).await;
    let later = tollgate::store::now() + 86_400;
    let r = s
        .post(
            "/api/token/",
            &json!({"name": "t", "expired_time": later, "remain_quota": 3}),
        )
        .await;
    let id = r["data"]["id"].as_i64().unwrap();
    let r = s.put("/api/token/", &json!({"id": id, "name": "t2"})).await;
    assert_eq!(r["data"]["expired_time"], later, "{r}");
    assert_eq!(r["data"]["remain_quota"], 3);
    assert_eq!(r["data"]["name"], "t2");
    let r = s.post("/api/token/", &json!({"name": "n"})).await;
    assert_eq!(r["data"]["expired_time"], -1);
    app.finish().await;
}
