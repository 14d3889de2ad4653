//! Azure (type 3) and the OpenAI-compatible family's URL rules, through the running relay.

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, spawn_app};
use crate::mock_upstream::{MockUpstream, Reply, chat_completion, chat_stream};
use crate::relay_helpers::*;

db_test!(
    azure_deployment_url_and_api_key,
    compatible_vendors_use_their_paths
);

async fn azure_deployment_url_and_api_key(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|r| {
        if r.json()["stream"] == true {
            Reply::sse(&chat_stream(&["a", "b"], Some((5, 2)), true))
        } else {
            Reply::json(200, chat_completion("hello", 10, 20))
        }
    })
    .await;
    let cid = channel_with(&app, &up.url, "gpt-3.5-turbo", |c| {
        c.r#type = 3;
        c.key = "azure-key".into();
        c.config = r#"{"api_version":"2024-02-15-preview"}"#.into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let body = json!({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]});
    let res = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "hello");
    let r = &up.requests()[0];
    assert_eq!(
        r.path,
        "/openai/deployments/gpt-35-turbo/chat/completions?api-version=2024-02-15-preview"
    );
    assert_eq!(r.header("api-key"), Some("azure-key"));
    assert!(r.header("authorization").is_none());
    assert_eq!(r.json(), body, "the body passes unchanged");

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let res = post(&app, &key, "/v1/chat/completions", &sbody).await;
    let text = res.text().await.unwrap();
    assert!(text.contains("\"content\":\"a\""), "{text}");
    assert!(!text.contains("\"usage\""), "{text}");

    settled(&app).await;
    // 18 (as for OpenAI: ceil(0.25 * (10 + 20 * 3))) + stream ceil(0.25 * (5 + 2 * 3)) = 3
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 18 - 3);
    assert_eq!(channel_row(&app, cid).await.used_quota, 21);

    // The legacy `other` column still carries the version (One API's old channels).
    let up2 = MockUpstream::start(|_| Reply::json(200, chat_completion("x", 1, 1))).await;
    channel_with(&app, &up2.url, "gpt-4o", |c| {
        c.r#type = 3;
        c.other = "2023-05-15".into();
    })
    .await;
    let res = post(
        &app,
        &key,
        "/v1/chat/completions",
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        up2.requests()[0].path,
        "/openai/deployments/gpt-4o/chat/completions?api-version=2023-05-15"
    );
    app.finish().await;
}

async fn compatible_vendors_use_their_paths(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|_| Reply::json(200, chat_completion("ok", 1, 1))).await;
    let cases: &[(i64, &str, &str, &str)] = &[
        (16, "glm-4-flash", "", "/api/paas/v4/chat/completions"),
        (40, "doubao-pro-32k", "", "/api/v3/chat/completions"),
        (49, "qwen-plus", "", "/compatible-mode/v1/chat/completions"),
        (
            37,
            "@cf/meta/llama-3.1-8b-instruct",
            r#"{"user_id":"acc123"}"#,
            "/client/v4/accounts/acc123/ai/v1/chat/completions",
        ),
        (47, "ernie-4.0-8k", "", "/v2/chat/completions"),
        (30, "llama3", "", "/v1/chat/completions"),
    ];
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    for (i, (ty, model, config, path)) in cases.iter().enumerate() {
        channel_with(&app, &up.url, model, |c| {
            c.r#type = *ty;
            c.config = config.to_string();
        })
        .await;
        let res = post(
            &app,
            &key,
            "/v1/chat/completions",
            &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(res.status(), 200, "type {ty}");
        let r = &up.requests()[i];
        assert_eq!(r.path, *path, "type {ty}");
        assert!(
            r.header("authorization")
                .unwrap()
                .starts_with("Bearer upstream-key-")
        );
    }
    app.finish().await;
}
