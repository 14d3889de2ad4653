//! Options: root only, secrets hidden, values validated.

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, spawn_app};

db_test!(options_hide_secrets_and_validate);

async fn stored(app: &crate::helpers::TestApp, key: &str) -> Option<String> {
    tollgate::store::options::load_all(app.db())
        .await
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

async fn options_hide_secrets_and_validate(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let root = app.root().await;
    for (k, v) in [
        ("TurnstileSecretKey", json!("turnstile-secret")),
        ("SMTPToken", json!("smtp-secret")),
        ("GitHubClientSecret", json!("gh-secret")),
        ("Notice", json!("hello")),
        ("RetryTimes", json!(3)),
        ("LogConsumeEnabled", json!(false)),
        ("ModelRatio", json!("{\"gpt-4\": 15}")),
    ] {
        let r = root
            .put("/api/option/", &json!({"key": k, "value": v}))
            .await;
        assert_eq!(r["success"], true, "{k}: {r}");
    }
    let list = root.get("/api/option/").await;
    let text = list.to_string();
    for secret in [
        "turnstile-secret",
        "smtp-secret",
        "gh-secret",
        "TurnstileSecretKey",
        "SMTPToken",
    ] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
    let find = |k: &str| -> Value {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["key"] == k)
            .map(|o| o["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(find("RetryTimes"), "3");
    assert_eq!(find("LogConsumeEnabled"), "false");
    assert_eq!(find("TurnstileSiteKey"), "");
    assert_eq!(
        app.get("/api/notice").await.json::<Value>().await.unwrap()["data"],
        "hello"
    );

    for (k, v) in [
        ("ModelRatio", json!("{bad json")),
        ("ModelRatio", json!("{\"gpt-4\": -1}")),
        ("GroupRatio", json!("[1,2]")),
        ("CompletionRatio", json!("{\"a\": \"b\"}")),
        ("QuotaPerUnit", json!("lots")),
        ("RetryTimes", json!(-2)),
        ("RegisterEnabled", json!("maybe")),
        ("GitHubOAuthEnabled", json!(true)),
        ("NoSuchOption", json!("1")),
        ("Notice", json!({"a": 1})),
    ] {
        let r = root
            .put("/api/option/", &json!({"key": k, "value": v}))
            .await;
        assert_eq!(r["success"], false, "{k}={v}: {r}");
        assert!(!r["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        stored(&app, "ModelRatio").await.as_deref(),
        Some("{\"gpt-4\": 15}")
    );
    assert_eq!(stored(&app, "GroupRatio").await, None);
    assert_eq!(stored(&app, "NoSuchOption").await, None);
    assert_eq!(app.state.options.load().get("RetryTimes"), "3");
    assert_eq!(app.state.options.load().get("GitHubOAuthEnabled"), "false");
    app.finish().await;
}
