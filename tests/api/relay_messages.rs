//! The Anthropic front door, `POST /v1/messages`: `x-api-key` or Bearer auth, translated for
//! OpenAI-format channels (answers and events in Anthropic's format), passed through untouched to
//! Anthropic channels, billed like any chat call, errors in Anthropic's shape.

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, TestApp, spawn_app};
use crate::mock_upstream::{MockUpstream, Reply, chat_completion, chat_stream};
use crate::relay_anthropic::{fixture, sse_events};
use crate::relay_helpers::*;

db_test!(
    messages_on_an_openai_channel,
    messages_stream_on_an_openai_channel,
    messages_pass_through_to_anthropic,
    messages_errors_use_anthropic_shape,
    count_tokens_is_local_and_free,
);

async fn count_tokens_is_local_and_free(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|_| Reply::json(200, chat_completion("x", 1, 1))).await;
    channel(&app, &up.url, "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let res = app
        .client
        .post(app.url("/v1/messages/count_tokens"))
        .header("x-api-key", format!("sk-{key}"))
        .json(&request("gpt-3.5-turbo", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.unwrap();
    let n = b["input_tokens"].as_i64().unwrap();
    assert!(n > 3 && n < 30, "{b}");
    let res = app
        .client
        .post(app.url("/v1/messages/count_tokens"))
        .header("x-api-key", "sk-nope")
        .json(&request("gpt-3.5-turbo", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(up.count(), 0);
    settled(&app).await;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000);
    app.finish().await;
}

async fn send(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/messages"))
        .header("x-api-key", format!("sk-{key}"))
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "output-128k-2025-02-19")
        .json(body)
        .timeout(std::time::Duration::from_secs(20))
        .send()
        .await
        .unwrap()
}

fn request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 100,
        "system": "Be terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "stream": stream,
    })
}

async fn messages_on_an_openai_channel(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|_| Reply::json(200, chat_completion("hello", 10, 20))).await;
    channel(&app, &up.url, "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;

    let res = send(&app, &key, &request("gpt-3.5-turbo", false)).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["type"], "message");
    assert_eq!(out["role"], "assistant");
    assert_eq!(out["model"], "gpt-3.5-turbo");
    assert_eq!(out["content"][0], json!({"type": "text", "text": "hello"}));
    assert_eq!(out["stop_reason"], "end_turn");
    assert_eq!(out["usage"]["input_tokens"], 10);
    assert_eq!(out["usage"]["output_tokens"], 20);
    let r = &up.requests()[0];
    assert_eq!(r.path, "/v1/chat/completions");
    let sent = r.json();
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be terse."})
    );
    assert_eq!(
        sent["messages"][1],
        json!({"role": "user", "content": "hi"})
    );
    assert_eq!(sent["max_tokens"], 100);

    // Bearer works too.
    let res = post(&app, &key, "/v1/messages", &request("gpt-3.5-turbo", false)).await;
    assert_eq!(res.status(), 200);
    settled(&app).await;
    // Billed as the chat call it is: ceil(0.25 * (10 + 20 * 3)) = 18, twice.
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 36);
    assert_eq!(logged_quota(&app, uid).await, 36);
    app.finish().await;
}

async fn messages_stream_on_an_openai_channel(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up =
        MockUpstream::start(|_| Reply::sse(&chat_stream(&["Hel", "lo"], Some((5, 2)), true))).await;
    channel(&app, &up.url, "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;

    let res = send(&app, &key, &request("gpt-3.5-turbo", true)).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        events,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{text}"
    );
    assert!(!text.contains("[DONE]"));
    let datas: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let said: String = datas
        .iter()
        .filter_map(|d| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(said, "Hello");
    let delta = datas.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(delta["usage"]["output_tokens"], 2);
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    // The upstream was asked for usage.
    assert_eq!(
        up.requests()[0].json()["stream_options"]["include_usage"],
        true
    );
    settled(&app).await;
    // ceil(0.25 * (5 + 2 * 3)) = 3
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 3);
    let logs = consume_logs(&app, uid).await;
    assert_eq!((logs[0].quota, logs[0].prompt_tokens), (3, 5));
    assert!(logs[0].is_stream);
    app.finish().await;
}

async fn messages_pass_through_to_anthropic(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let model = "claude-3-5-sonnet-20241022";
    let answer = fixture("anthropic/response_tool_use.json");
    let events = sse_events("anthropic/stream_text_and_tool.sse");
    let up = MockUpstream::start(move |r| {
        if r.json()["stream"] == true {
            Reply::sse(&events)
        } else {
            Reply::json(200, serde_json::from_str(&answer).unwrap())
        }
    })
    .await;
    channel_with(&app, &up.url, model, |c| {
        c.r#type = 14;
        c.key = "sk-ant-upstream".into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;

    let mut req = request(model, false);
    req["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let res = send(&app, &key, &req).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    let expected: Value =
        serde_json::from_str(&fixture("anthropic/response_tool_use.json")).unwrap();
    assert_eq!(out, expected, "the answer passes untouched");
    let r = &up.requests()[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some("sk-ant-upstream"));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("anthropic-beta"), Some("output-128k-2025-02-19"));
    assert_eq!(r.json(), req, "the request passes untouched");

    let res = send(&app, &key, &request(model, true)).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert_eq!(text, fixture("anthropic/stream_text_and_tool.sse"));
    settled(&app).await;
    // 1526 (non-stream, see relay_anthropic) + 1376 (stream)
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 1526 - 1376);
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 2);
    assert_eq!((logs[1].quota, logs[1].completion_tokens), (1376, 89));
    app.finish().await;
}

async fn messages_errors_use_anthropic_shape(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|_| Reply::json(200, chat_completion("x", 1, 1))).await;
    channel(&app, &up.url, "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let check = |status: u16, kind: &'static str| {
        move |res: reqwest::Response| async move {
            assert_eq!(res.status(), status);
            let b: Value = res.json().await.unwrap();
            assert_eq!(b["type"], "error", "{b}");
            assert_eq!(b["error"]["type"], kind, "{b}");
            assert!(b["error"]["message"].is_string());
        }
    };
    check(401, "authentication_error")(send(&app, "nope", &request("gpt-3.5-turbo", false)).await)
        .await;
    let res = app
        .client
        .post(app.url("/v1/messages"))
        .header("x-api-key", format!("sk-{key}"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    check(400, "invalid_request_error")(res).await;
    let mut no_max = request("gpt-3.5-turbo", false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    check(400, "invalid_request_error")(send(&app, &key, &no_max).await).await;
    check(400, "invalid_request_error")(
        send(
            &app,
            &key,
            &json!({"model": "gpt-3.5-turbo", "max_tokens": 5, "messages": []}),
        )
        .await,
    )
    .await;
    let res = send(&app, &key, &request("no-such-model", false)).await;
    assert!(res.status().as_u16() >= 400);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["type"], "error");
    assert_eq!(up.count(), 0);
    app.finish().await;
}
