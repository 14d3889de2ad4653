//! Rate limits: 429 with One API's envelope; 0 disables; `/v1` is not limited.

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, spawn_app_with};

db_test!(api_and_critical_limits_answer_429);

async fn api_and_critical_limits_answer_429(backend: Backend) {
    let Some(app) = spawn_app_with(
        backend,
        &[
            ("GLOBAL_API_RATE_LIMIT", "5"),
            ("CRITICAL_RATE_LIMIT", "2"),
            ("GLOBAL_WEB_RATE_LIMIT", "0"),
        ],
    )
    .await
    else {
        return;
    };
    // Critical: 2 logins, then 429 (each also counts against the API limit).
    for _ in 0..2 {
        let r = app
            .post_json(
                "/api/user/login",
                &json!({"username": "root", "password": "wrong"}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let r = app
        .post_json(
            "/api/user/login",
            &json!({"username": "root", "password": "123456"}),
        )
        .await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert!(!body["message"].as_str().unwrap().is_empty());
    // API: 5 in total from this address, the 3 above included.
    assert_eq!(app.get("/api/status").await.status(), 200);
    assert_eq!(app.get("/api/status").await.status(), 200);
    assert_eq!(app.get("/api/status").await.status(), 429);
    // Web limit 0 = off; /v1 is never limited here.
    for _ in 0..10 {
        assert_eq!(app.get("/").await.status(), 200);
        assert_ne!(app.get("/v1/models").await.status(), 429);
    }
    app.finish().await;
}

db_test!(web_limit_applies_to_pages_only);

async fn web_limit_applies_to_pages_only(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("GLOBAL_WEB_RATE_LIMIT", "2")]).await else {
        return;
    };
    assert_eq!(app.get("/").await.status(), 200);
    assert_eq!(app.get("/login").await.status(), 200);
    let r = app.get("/").await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], false);
    // The API has its own budget.
    assert_eq!(app.get("/api/status").await.status(), 200);
    app.finish().await;
}
