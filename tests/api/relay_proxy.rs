//! `ANY /v1/oneapi/proxy/{channel}/{path}` (channel type 43, "Proxy"): admin tokens only (One API
//! let any token use any channel this way, unbilled: weakness #3), the channel's key instead of
//! the client's, the answer verbatim, and a system log of every call.

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, spawn_app};
use crate::mock_upstream::{MockUpstream, Reply};
use crate::relay_helpers::*;

db_test!(proxy_is_for_admins_forwards_verbatim_and_is_logged);

async fn proxy_is_for_admins_forwards_verbatim_and_is_logged(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|r| {
        let mut reply = Reply::json(
            207,
            json!({"method": r.method, "path": r.path, "auth": r.header("authorization")}),
        );
        reply.content_type = "application/vnd.example+json".into();
        reply
    })
    .await;
    let ch = channel_with(&app, &format!("{}/base/", up.url), "any", |c| {
        c.r#type = 43;
        c.key = "sk-upstream-secret".into();
    })
    .await;
    let off = channel_with(&app, &up.url, "any", |c| {
        c.r#type = 43;
        c.status = 2;
    })
    .await;
    let admin = user(&app, 1_000, "default", 10).await;
    let (_, admin_key) = token(&app, admin, None).await;
    let plain = user(&app, 1_000, "default", 1).await;
    let (_, plain_key) = token(&app, plain, None).await;

    let res = app
        .client
        .put(app.url(&format!("/v1/oneapi/proxy/{ch}/v1/files/f-1?purpose=x")))
        .bearer_auth(format!("sk-{admin_key}"))
        .header("x-custom", "kept")
        .body("raw body")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 207);
    assert_eq!(
        res.headers()["content-type"],
        "application/vnd.example+json"
    );
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["method"], "PUT");
    assert_eq!(b["path"], "/base/v1/files/f-1?purpose=x");
    assert_eq!(b["auth"], "Bearer sk-upstream-secret");
    let sent = &up.requests()[0];
    assert_eq!(sent.header("x-custom"), Some("kept"));
    assert_eq!(sent.body, b"raw body");

    // Not for ordinary users, nor through a disabled or unknown channel; nothing reaches upstream.
    let res = post(
        &app,
        &plain_key,
        &format!("/v1/oneapi/proxy/{ch}/v1/x"),
        &json!({}),
    )
    .await;
    assert_eq!(res.status(), 403);
    assert!(res.json::<Value>().await.unwrap()["error"]["message"].is_string());
    let res = post(
        &app,
        &admin_key,
        &format!("/v1/oneapi/proxy/{off}/v1/x"),
        &json!({}),
    )
    .await;
    assert_eq!(res.status(), 403);
    let res = post(&app, &admin_key, "/v1/oneapi/proxy/abc/v1/x", &json!({})).await;
    assert_eq!(res.status(), 400);
    let res = app
        .client
        .post(app.url(&format!("/v1/oneapi/proxy/{ch}/v1/x")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(up.requests().len(), 1);

    // Logged, unbilled, and the channel key is in no log.
    let root = app.root().await;
    let logs = root.get("/api/log/?type=4").await;
    let rows = logs["data"].as_array().unwrap();
    let row = rows
        .iter()
        .find(|l| l["content"].as_str().unwrap().contains("/v1/files/f-1"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert_eq!(row["channel"], ch);
    assert!(row["content"].as_str().unwrap().contains("207"), "{row}");
    assert!(!logs.to_string().contains("sk-upstream-secret"));
    settled(&app).await;
    assert!(consume_logs(&app, admin).await.is_empty());
    app.finish().await;
}
