//! OpenAI requests served by a Gemini channel (type 24): `generateContent`,
//! `streamGenerateContent?alt=sse` and `batchEmbedContents` with `x-goog-api-key`, safety
//! settings, system instruction and tools; usage billed (once for streams).

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, spawn_app, spawn_app_with};
use crate::mock_upstream::{MockUpstream, Reply};
use crate::relay_anthropic::{fixture, sse_events};
use crate::relay_helpers::*;

db_test!(
    chat_goes_to_generate_content_and_is_billed,
    stream_is_translated_and_usage_billed_once,
    embeddings_use_batch_embed_contents,
    errors_are_mapped,
);

const MODEL: &str = "gemini-2.0-flash";

async fn gemini_channel(app: &crate::helpers::TestApp, url: &str, models: &str) -> i64 {
    channel_with(app, url, models, |c| {
        c.r#type = 24;
        c.key = "AIza-upstream".into();
    })
    .await
}

fn chat(stream: bool) -> Value {
    json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
        "max_tokens": 50,
        "stream": stream,
    })
}

async fn chat_goes_to_generate_content_and_is_billed(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("GEMINI_SAFETY_SETTING", "BLOCK_ONLY_HIGH")]).await
    else {
        return;
    };
    let body = fixture("gemini/response_function_call.json");
    let up =
        MockUpstream::start(move |_| Reply::json(200, serde_json::from_str(&body).unwrap())).await;
    let cid = gemini_channel(&app, &up.url, MODEL).await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (tid, key) = token(&app, uid, Some(500_000)).await;

    let res = post(&app, &key, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], MODEL);
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "Let me look that up."
    );
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    let call = &out["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(out["usage"]["total_tokens"], 30);

    let r = &up.requests()[0];
    assert_eq!(r.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(r.header("x-goog-api-key"), Some("AIza-upstream"));
    assert!(r.header("authorization").is_none());
    let sent = r.json();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(sent["contents"][0]["role"], "user");
    assert_eq!(sent["contents"][0]["parts"][0]["text"], "Weather in Paris?");
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 50);
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    let safety = sent["safetySettings"].as_array().unwrap();
    assert!(!safety.is_empty());
    assert!(safety.iter().all(|s| s["threshold"] == "BLOCK_ONLY_HIGH"));

    settled(&app).await;
    // gemini-2.0-flash: ratio 0.05, completion ratio 3: ceil(0.05 * (10 + 20 * 3)) = 4
    let q = 4;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - q);
    assert_eq!(token_row(&app, tid).await.remain_quota, 500_000 - q);
    assert_eq!(channel_row(&app, cid).await.used_quota, q);
    let logs = consume_logs(&app, uid).await;
    assert_eq!(
        (
            logs[0].quota,
            logs[0].prompt_tokens,
            logs[0].completion_tokens
        ),
        (q, 10, 20)
    );
    app.finish().await;
}

async fn stream_is_translated_and_usage_billed_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let events = sse_events("gemini/stream_text.sse");
    let up = MockUpstream::start(move |_| Reply::sse(&events)).await;
    gemini_channel(&app, &up.url, MODEL).await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;

    let mut body = chat(true);
    body["stream_options"] = json!({"include_usage": true});
    let res = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello!");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    let usage: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["usage"]["completion_tokens"], 40);
    let r = &up.requests()[0];
    assert_eq!(
        r.path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );

    settled(&app).await;
    // The last usageMetadata only: ceil(0.05 * (101 + 40 * 3)) = ceil(11.05) = 12
    let q = 12;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - q);
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 1);
    assert_eq!(
        (
            logs[0].quota,
            logs[0].prompt_tokens,
            logs[0].completion_tokens
        ),
        (q, 101, 40)
    );
    app.finish().await;
}

async fn embeddings_use_batch_embed_contents(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|_| {
        Reply::json(
            200,
            json!({"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}),
        )
    })
    .await;
    gemini_channel(&app, &up.url, "text-embedding-004").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let res = post(
        &app,
        &key,
        "/v1/embeddings",
        &json!({"model": "text-embedding-004", "input": ["hello", "world"]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["object"], "list");
    assert_eq!(out["data"][1]["embedding"], json!([0.3, 0.4]));
    assert_eq!(out["data"][1]["index"], 1);
    let r = &up.requests()[0];
    assert_eq!(
        r.path,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    assert_eq!(r.header("x-goog-api-key"), Some("AIza-upstream"));
    let sent = r.json();
    assert_eq!(sent["requests"][0]["model"], "models/text-embedding-004");
    assert_eq!(sent["requests"][1]["content"]["parts"][0]["text"], "world");
    settled(&app).await;
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 1);
    // Gemini reports no usage for embeddings: the input is counted locally (ratio 0: free).
    assert!(logs[0].prompt_tokens > 0);
    assert_eq!(logs[0].quota, 0);
    app.finish().await;
}

async fn errors_are_mapped(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let err = fixture("gemini/error_bad_key.json");
    let up =
        MockUpstream::start(move |_| Reply::json(400, serde_json::from_str(&err).unwrap())).await;
    let cid = gemini_channel(&app, &up.url, MODEL).await;
    set_option(&app, "AutomaticDisableChannelEnabled", "true").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let res = post(&app, &key, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key not valid")
    );
    assert_eq!(body["error"]["code"], "INVALID_ARGUMENT");
    settled(&app).await;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000);
    // "API key not valid" is one of One API's fatal messages.
    assert_eq!(channel_row(&app, cid).await.status, 3);
    // An endpoint Gemini channels do not serve: a 400 in OpenAI's shape, refunded.
    let res = post(
        &app,
        &key,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "hi"}),
    )
    .await;
    assert!(res.status().is_client_error() || res.status().as_u16() == 503);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"]["message"].is_string());
    app.finish().await;
}
