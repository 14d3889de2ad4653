//! The Gemini front door, `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent`: `x-goog-api-key`, `?key=` or Bearer auth; translated for OpenAI
//! channels, passed through untouched to Gemini channels; billed; errors in Gemini's shape.

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, TestApp, spawn_app};
use crate::mock_upstream::{MockUpstream, Reply, chat_completion, chat_stream};
use crate::relay_anthropic::{fixture, sse_events};
use crate::relay_helpers::*;

db_test!(
    generate_content_on_an_openai_channel,
    stream_generate_content_on_an_openai_channel,
    generate_content_passes_through_to_gemini,
    gemini_front_errors,
);

async fn send(app: &TestApp, key: &str, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("x-goog-api-key", format!("sk-{key}"))
        .json(body)
        .timeout(std::time::Duration::from_secs(20))
        .send()
        .await
        .unwrap()
}

fn request() -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": "Be terse."}]},
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": 100, "temperature": 0.5},
    })
}

async fn generate_content_on_an_openai_channel(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|_| Reply::json(200, chat_completion("hello", 10, 20))).await;
    channel(&app, &up.url, "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let res = send(
        &app,
        &key,
        "/v1beta/models/gpt-3.5-turbo:generateContent",
        &request(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["candidates"][0]["content"]["parts"][0]["text"], "hello");
    assert_eq!(out["candidates"][0]["content"]["role"], "model");
    assert_eq!(out["candidates"][0]["finishReason"], "STOP");
    assert_eq!(out["usageMetadata"]["promptTokenCount"], 10);
    assert_eq!(out["usageMetadata"]["candidatesTokenCount"], 20);
    let sent = up.requests()[0].json();
    assert_eq!(sent["model"], "gpt-3.5-turbo");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be terse."})
    );
    assert_eq!(sent["max_tokens"], 100);
    settled(&app).await;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 18);
    assert_eq!(logged_quota(&app, uid).await, 18);
    app.finish().await;
}

async fn stream_generate_content_on_an_openai_channel(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up =
        MockUpstream::start(|_| Reply::sse(&chat_stream(&["Hel", "lo"], Some((5, 2)), true))).await;
    channel(&app, &up.url, "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    // Google's `?key=` style.
    let res = app
        .client
        .post(app.url(&format!(
            "/v1beta/models/gpt-3.5-turbo:streamGenerateContent?alt=sse&key=sk-{key}"
        )))
        .json(&request())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let said: String = events
        .iter()
        .filter_map(|e| e["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(said, "Hello");
    let last = events.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 7);
    assert!(!text.contains("[DONE]"));
    settled(&app).await;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 3);
    app.finish().await;
}

async fn generate_content_passes_through_to_gemini(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let answer = fixture("gemini/response_function_call.json");
    let events = sse_events("gemini/stream_text.sse");
    let up = MockUpstream::start(move |r| {
        if r.path.contains("stream") {
            Reply::sse(&events)
        } else {
            Reply::json(200, serde_json::from_str(&answer).unwrap())
        }
    })
    .await;
    channel_with(&app, &up.url, "gemini-2.0-flash", |c| {
        c.r#type = 24;
        c.key = "AIza-upstream".into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let res = send(
        &app,
        &key,
        "/v1beta/models/gemini-2.0-flash:generateContent",
        &request(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    let expected: Value =
        serde_json::from_str(&fixture("gemini/response_function_call.json")).unwrap();
    assert_eq!(out, expected);
    let r = &up.requests()[0];
    assert_eq!(r.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(r.header("x-goog-api-key"), Some("AIza-upstream"));
    assert_eq!(r.json(), request(), "the request passes untouched");

    let res = send(
        &app,
        &key,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        &request(),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), fixture("gemini/stream_text.sse"));
    assert_eq!(
        up.requests()[1].path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    settled(&app).await;
    // 4 (see relay_gemini) + 12 (the stream's last usageMetadata)
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 4 - 12);
    app.finish().await;
}

async fn gemini_front_errors(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|_| Reply::json(200, chat_completion("x", 1, 1))).await;
    channel(&app, &up.url, "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let path = "/v1beta/models/gpt-3.5-turbo:generateContent";
    let res = send(&app, "nope", path, &request()).await;
    assert_eq!(res.status(), 401);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["status"], "UNAUTHENTICATED", "{b}");
    assert_eq!(b["error"]["code"], 401);
    let res = send(&app, &key, path, &json!({"contents": "x"})).await;
    assert_eq!(res.status(), 400);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["status"], "INVALID_ARGUMENT", "{b}");
    let res = send(
        &app,
        &key,
        "/v1beta/models/gpt-3.5-turbo:predict",
        &request(),
    )
    .await;
    assert_eq!(res.status(), 404);
    assert_eq!(up.count(), 0);
    app.finish().await;
}
