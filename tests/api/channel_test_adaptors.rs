//! `GET /api/channel/test/:id` for channel types with their own formats: the test request goes
//! through the type's adaptor (translated, signed, sent), unbilled; success records the response
//! time, an upstream error is reported as `{"success": false, "message": ...}`.

use std::time::Duration;

use serde_json::Value;

use crate::db_test;
use crate::helpers::{Backend, spawn_app};
use crate::mock_upstream::{MockUpstream, Reply};
use crate::relay_anthropic::fixture;
use crate::relay_helpers::*;

db_test!(anthropic_and_gemini_channels_are_tested_natively);

/// A JSON reply after a short delay (so the recorded response time is measurable).
fn slow_json(status: u16, body: Value) -> Reply {
    let mut r = Reply::json(status, body);
    r.parts[0].0 = Duration::from_millis(30);
    r
}

async fn anthropic_and_gemini_channels_are_tested_natively(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let claude_ok = fixture("anthropic/response_tool_use.json");
    let claude_err = fixture("anthropic/error_auth.json");
    let gemini_ok = fixture("gemini/response_function_call.json");
    let gemini_err = fixture("gemini/error_bad_key.json");
    let up = MockUpstream::start(move |r| {
        let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        match (
            r.path.as_str(),
            r.header("x-api-key"),
            r.header("x-goog-api-key"),
        ) {
            ("/v1/messages", Some("sk-ant-good"), _) => slow_json(200, parse(&claude_ok)),
            ("/v1/messages", _, _) => Reply::json(401, parse(&claude_err)),
            (p, _, Some("AIza-good")) if p.ends_with(":generateContent") => {
                slow_json(200, parse(&gemini_ok))
            }
            _ => Reply::json(400, parse(&gemini_err)),
        }
    })
    .await;
    let claude = "claude-3-5-sonnet-20241022";
    let mk = |ty: i64, key: &'static str, model: &'static str| {
        let app = &app;
        let url = up.url.clone();
        async move {
            channel_with(app, &url, model, |c| {
                c.r#type = ty;
                c.key = key.into();
            })
            .await
        }
    };
    let good_claude = mk(14, "sk-ant-good", claude).await;
    let bad_claude = mk(14, "sk-ant-bad", claude).await;
    let good_gemini = mk(24, "AIza-good", "gemini-2.0-flash").await;
    let bad_gemini = mk(24, "AIza-bad", "gemini-2.0-flash").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let root = app.root().await;

    for id in [good_claude, good_gemini] {
        let r = root.get(&format!("/api/channel/test/{id}")).await;
        assert_eq!(r["success"], true, "{r}");
        assert!(r["time"].as_f64().unwrap() >= 0.03, "{r}");
        let c = channel_row(&app, id).await;
        assert!(c.test_time > 0 && c.response_time >= 30, "{c:?}");
    }
    let r = root.get(&format!("/api/channel/test/{good_claude}")).await;
    assert_eq!(r["message"], "I'll check the weather.");
    let r = root.get(&format!("/api/channel/test/{good_gemini}")).await;
    assert_eq!(r["message"], "Let me look that up.");

    let r = root.get(&format!("/api/channel/test/{bad_claude}")).await;
    assert_eq!(r["success"], false, "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("invalid x-api-key"),
        "{r}"
    );
    let r = root.get(&format!("/api/channel/test/{bad_gemini}")).await;
    assert_eq!(r["success"], false, "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("API key not valid"),
        "{r}"
    );
    for id in [bad_claude, bad_gemini] {
        assert_eq!(channel_row(&app, id).await.test_time, 0);
    }

    // Sent as a relay call would be: Anthropic's body and headers, Gemini's body and key header.
    let reqs = up.requests();
    let to_claude = reqs.iter().find(|r| r.path == "/v1/messages").unwrap();
    assert_eq!(to_claude.header("anthropic-version"), Some("2023-06-01"));
    let sent = to_claude.json();
    assert_eq!(sent["model"], claude);
    assert_eq!(sent["messages"][0]["role"], "user");
    let to_gemini = reqs
        .iter()
        .find(|r| r.path.ends_with(":generateContent"))
        .unwrap();
    assert_eq!(
        to_gemini.path,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert!(to_gemini.json()["contents"][0]["parts"][0]["text"].is_string());
    assert!(to_gemini.path.find("key=").is_none());

    // Unbilled: no consume log, nobody charged.
    settled(&app).await;
    assert!(consume_logs(&app, uid).await.is_empty());
    let logs = root.get("/api/log/?type=5").await;
    assert_eq!(logs["data"].as_array().unwrap().len(), 6, "{logs}");
    assert!(!logs.to_string().contains("sk-ant-good"));
    app.finish().await;
}

db_test!(batch_test_disables_and_enables_native_channels);

/// The periodic job's batch test (`jobs::channel_test`) goes through the adaptors too: an
/// Anthropic channel whose key is refused (401) is disabled, an automatically disabled Gemini
/// channel that answers again is enabled.
async fn batch_test_disables_and_enables_native_channels(backend: Backend) {
    use tollgate::store::channels::{self, STATUS_AUTO_DISABLED, STATUS_ENABLED};
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let claude_err = fixture("anthropic/error_auth.json");
    let gemini_ok = fixture("gemini/response_function_call.json");
    let up = MockUpstream::start(move |r| {
        if r.path == "/v1/messages" {
            Reply::json(401, serde_json::from_str(&claude_err).unwrap())
        } else {
            Reply::json(200, serde_json::from_str(&gemini_ok).unwrap())
        }
    })
    .await;
    let claude = channel_with(&app, &up.url, "claude-3-5-sonnet-20241022", |c| {
        c.r#type = 14;
        c.key = "sk-ant-revoked".into();
    })
    .await;
    let gemini = channel_with(&app, &up.url, "gemini-2.0-flash", |c| {
        c.r#type = 24;
        c.key = "AIza-good".into();
        c.status = STATUS_AUTO_DISABLED;
    })
    .await;
    for key in [
        "AutomaticDisableChannelEnabled",
        "AutomaticEnableChannelEnabled",
    ] {
        set_option(&app, key, "true").await;
    }
    let report = tollgate::jobs::channel_test::test_all_channels(&app.state, false)
        .await
        .unwrap();
    assert_eq!((report.tested, report.passed), (2, 1), "{report:?}");
    assert_eq!(report.disabled, vec![claude]);
    assert_eq!(report.enabled, vec![gemini]);
    let row = |id| {
        let db = app.db();
        async move { channels::get_by_id(db, id).await.unwrap().unwrap().status }
    };
    assert_eq!(row(claude).await, STATUS_AUTO_DISABLED);
    assert_eq!(row(gemini).await, STATUS_ENABLED);
    app.finish().await;
}

db_test!(a_baidu_v1_channel_is_tested_through_its_token_exchange);

/// Types with their own steps (here Baidu v1's OAuth access token) are tested through them, as a
/// relay call is: without the token the chat endpoint refuses.
async fn a_baidu_v1_channel_is_tested_through_its_token_exchange(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let answer: Value = serde_json::from_str(&fixture("baidu/response.json")).unwrap();
    let up = MockUpstream::start(move |r| {
        if r.path.starts_with("/oauth/2.0/token") {
            if r.path.contains("client_secret=good") {
                Reply::json(200, serde_json::json!({"access_token": "24.tok", "expires_in": 3600}))
            } else {
                Reply::json(
                    401,
                    serde_json::json!({"error": "invalid_client", "error_description": "unknown client id"}),
                )
            }
        } else if r.path.contains("access_token=24.tok") {
            slow_json(200, answer.clone())
        } else {
            Reply::json(200, serde_json::json!({"error_code": 110, "error_msg": "Access token invalid"}))
        }
    })
    .await;
    let mk = |secret: &'static str| {
        let app = &app;
        let url = up.url.clone();
        async move {
            let key = format!("cid-{}|{secret}", uuid::Uuid::new_v4().simple());
            channel_with(app, &url, "ERNIE-3.5-8K", |c| {
                c.r#type = 15;
                c.key = key;
            })
            .await
        }
    };
    let good = mk("good").await;
    let bad = mk("bad").await;
    let root = app.root().await;
    let r = root.get(&format!("/api/channel/test/{good}")).await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["message"], "你好！有什么可以帮你的？", "{r}");
    assert!(channel_row(&app, good).await.response_time >= 30);
    let r = root.get(&format!("/api/channel/test/{bad}")).await;
    assert_eq!(r["success"], false, "{r}");
    assert!(
        r["message"].as_str().unwrap().starts_with("HTTP 401"),
        "{r}"
    );
    let reqs = up.requests();
    assert!(
        reqs.iter().any(|r| r
            .path
            .contains("/wenxinworkshop/chat/completions?access_token=24.tok")),
        "{:?}",
        reqs.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    app.finish().await;
}
