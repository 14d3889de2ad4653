//! OpenAI requests served by an Anthropic channel (type 14): the Messages API request the
//! provider requires, answers and stream events translated back, usage billed, errors mapped.

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, spawn_app};
use crate::mock_upstream::{MockUpstream, Reply};
use crate::relay_helpers::*;

db_test!(
    chat_is_translated_to_messages_and_billed,
    stream_events_become_openai_chunks_and_are_billed_once,
    provider_errors_keep_status_and_disable_the_channel,
    image_urls_go_through_the_guarded_fetcher,
);

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The fixture's SSE split into its events (one write each).
pub fn sse_events(name: &str) -> Vec<String> {
    fixture(name)
        .split_inclusive("\n\n")
        .map(String::from)
        .collect()
}

const MODEL: &str = "claude-3-5-sonnet-20241022";

async fn anthropic_channel(app: &crate::helpers::TestApp, url: &str) -> i64 {
    channel_with(app, url, MODEL, |c| {
        c.r#type = 14;
        c.key = "sk-ant-upstream".into();
    })
    .await
}

fn chat(stream: bool) -> Value {
    json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Weather in SF?"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
        "stream": stream,
    })
}

async fn chat_is_translated_to_messages_and_billed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let body = fixture("anthropic/response_tool_use.json");
    let up =
        MockUpstream::start(move |_| Reply::json(200, serde_json::from_str(&body).unwrap())).await;
    let cid = anthropic_channel(&app, &up.url).await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (tid, key) = token(&app, uid, Some(500_000)).await;

    let res = post(&app, &key, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "I'll check the weather."
    );
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    let call = &out["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(out["usage"]["prompt_tokens"], 572);

    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some("sk-ant-upstream"));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert!(r.header("authorization").is_none());
    let sent = r.json();
    assert_eq!(sent["model"], MODEL);
    assert_eq!(sent["system"], "Be terse.");
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["messages"][0]["role"], "user");
    assert_eq!(sent["messages"][0]["content"][0]["text"], "Weather in SF?");
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_ne!(sent["stream"], true);

    settled(&app).await;
    // claude-3-5-sonnet: ratio 1.5, completion ratio 5; prompt 472 + 100 cache read = 572,
    // completion 89: ceil(1.5 * (572 + 89 * 5)) = ceil(1525.5) = 1526.
    let q = 1526;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - q);
    assert_eq!(token_row(&app, tid).await.remain_quota, 500_000 - q);
    assert_eq!(channel_row(&app, cid).await.used_quota, q);
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 1);
    assert_eq!(
        (
            logs[0].quota,
            logs[0].prompt_tokens,
            logs[0].completion_tokens
        ),
        (q, 572, 89)
    );
    app.finish().await;
}

async fn stream_events_become_openai_chunks_and_are_billed_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let events = sse_events("anthropic/stream_text_and_tool.sse");
    let up = MockUpstream::start(move |_| Reply::sse(&events)).await;
    anthropic_channel(&app, &up.url).await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;

    let mut body = chat(true);
    body["stream_options"] = json!({"include_usage": true});
    let res = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = res.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Okay, let me check.");
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, r#"{"location": "San Francisco, CA"}"#);
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    let usage: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
    assert_eq!(usage.len(), 1, "usage is reported once");
    assert_eq!(usage[0]["usage"]["prompt_tokens"], 472);
    assert_eq!(usage[0]["usage"]["completion_tokens"], 89);
    assert_eq!(up.requests()[0].json()["stream"], true);

    settled(&app).await;
    // ceil(1.5 * (472 + 89 * 5)) = ceil(1375.5) = 1376
    let q = 1376;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - q);
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 1);
    assert_eq!((logs[0].quota, logs[0].completion_tokens), (q, 89));
    assert!(logs[0].is_stream);

    // Without include_usage the client gets no usage chunk, and is billed the same.
    let res = post(&app, &key, "/v1/chat/completions", &chat(true)).await;
    let text = res.text().await.unwrap();
    assert!(!text.contains("\"usage\""), "{text}");
    settled(&app).await;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 2 * q);
    app.finish().await;
}

async fn provider_errors_keep_status_and_disable_the_channel(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let err = fixture("anthropic/error_auth.json");
    let up =
        MockUpstream::start(move |_| Reply::json(401, serde_json::from_str(&err).unwrap())).await;
    let cid = anthropic_channel(&app, &up.url).await;
    set_option(&app, "AutomaticDisableChannelEnabled", "true").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;

    let res = post(&app, &key, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid x-api-key")
    );
    assert!(!body.to_string().contains("sk-ant-upstream"));
    settled(&app).await;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000, "refunded");
    assert_eq!(channel_row(&app, cid).await.status, 3, "auto-disabled");

    // Bad input is an OpenAI error, not a panic.
    let res = post(
        &app,
        &key,
        "/v1/chat/completions",
        &json!({"model": MODEL, "messages": "x"}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"]["message"].is_string());
    app.finish().await;
}

async fn image_urls_go_through_the_guarded_fetcher(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|_| Reply::json(200, json!({}))).await;
    anthropic_channel(&app, &up.url).await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    // An image on an internal address (here the mock itself, on loopback) is refused before
    // anything is sent upstream, and the reservation is returned.
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": format!("{}/cat.png", up.url)}}
    ]}]});
    let res = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("private"),
        "{err}"
    );
    assert_eq!(up.count(), 0);
    settled(&app).await;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000);

    // Inline data URIs go to Anthropic as base64 image blocks.
    let up2 = MockUpstream::start(|_| {
        Reply::json(
            200,
            json!({"id": "m", "type": "message", "role": "assistant", "model": MODEL,
            "content": [{"type": "text", "text": "a cat"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 5, "output_tokens": 2}}),
        )
    })
    .await;
    let uid2 = user(&app, 1_000_000, "default", 1).await;
    let (_, key2) = token(&app, uid2, None).await;
    channel_with(&app, &up2.url, "claude-3-haiku-20240307", |c| c.r#type = 14).await;
    let body = json!({"model": "claude-3-haiku-20240307", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    ]}]});
    let res = post(&app, &key2, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let sent = up2.requests()[0].json();
    assert_eq!(
        sent["messages"][0]["content"][0]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
    );
    app.finish().await;
}
