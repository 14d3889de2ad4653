//! Streaming: pass-through, usage from the upstream or counted, the usage chunk stripped when the
//! client did not ask, mid-stream drops, client disconnects, first-token timeout.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, spawn_app, spawn_app_with};
use crate::mock_upstream::{MockUpstream, Reply, chat_stream};
use crate::relay_helpers::*;

db_test!(
    stream_with_upstream_usage_strips_the_usage_chunk,
    stream_keeps_usage_chunk_when_asked,
    stream_without_usage_is_counted_with_tiktoken,
    mid_stream_drop_bills_what_was_delivered,
    client_disconnect_cancels_and_bills_delivered,
    slow_first_token_is_retried_elsewhere,
    enforce_include_usage_asks_every_channel,
    connect_errors_and_timeouts_are_retried,
    idle_upstream_stream_is_cut_and_billed,
);

fn stream_body(include_usage: bool) -> Value {
    let mut b = json!({"model": "gpt-3.5-turbo", "stream": true, "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}]});
    if include_usage {
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

async fn read_all(res: reqwest::Response) -> String {
    String::from_utf8(res.bytes().await.unwrap().to_vec()).unwrap()
}

async fn stream_with_upstream_usage_strips_the_usage_chunk(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up =
        MockUpstream::start(|_| Reply::sse(&chat_stream(&["Hel", "lo"], Some((9, 2)), true))).await;
    channel(&app, &up.url, "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let res = post(&app, &k, "/v1/chat/completions", &stream_body(false)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let text = read_all(res).await;
    assert!(
        text.contains("\"Hel\"") && text.contains("\"lo\""),
        "{text}"
    );
    assert!(
        !text.contains("usage"),
        "usage chunk must be stripped: {text}"
    );
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(text.matches("[DONE]").count(), 1);
    // The relay asked for the usage upstream (OpenAI channel).
    let sent = up.requests()[0].json();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    settled(&app).await;
    // ceil(0.25 * (9 + 2 * 3)) = ceil(3.75) = 4
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 4);
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 1);
    assert!(logs[0].is_stream);
    assert_eq!((logs[0].prompt_tokens, logs[0].completion_tokens), (9, 2));
    app.finish().await;
}

async fn stream_keeps_usage_chunk_when_asked(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Cumulative usage in every chunk: billed once, from the last.
    let events = vec![
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10}}\n\n".to_string(),
        "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n".to_string(),
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n".to_string(),
    ];
    let up = MockUpstream::start(move |_| Reply::sse(&events)).await;
    channel(&app, &up.url, "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let text = read_all(post(&app, &k, "/v1/chat/completions", &stream_body(true)).await).await;
    assert_eq!(text.matches("usage").count(), 3, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "DONE appended: {text}");
    settled(&app).await;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 4);
    app.finish().await;
}

async fn stream_without_usage_is_counted_with_tiktoken(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up =
        MockUpstream::start(|_| Reply::sse(&chat_stream(&["Hello", " world", "!"], None, true)))
            .await;
    // A custom channel: include_usage is not forced upstream.
    channel_with(&app, &up.url, "gpt-4", |c| c.r#type = 8).await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let mut body = stream_body(false);
    body["model"] = json!("gpt-4");
    let text = read_all(post(&app, &k, "/v1/chat/completions", &body).await).await;
    assert!(text.contains("world"));
    assert!(
        up.requests()[0].json().get("stream_options").is_none(),
        "body forwarded unchanged"
    );
    settled(&app).await;
    // prompt: 8 tokens; completion: "Hello world!" = 3 tokens (cl100k); gpt-4 ratio 15, completion 2
    assert_eq!(tollgate::tokenizer::count_text("gpt-4", "Hello world!"), 3);
    // 15 * (8 + 3 * 2) = 210
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 210);
    let logs = consume_logs(&app, uid).await;
    assert_eq!((logs[0].prompt_tokens, logs[0].completion_tokens), (8, 3));
    app.finish().await;
}

async fn mid_stream_drop_bills_what_was_delivered(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|_| {
        let mut r = Reply::sse(&chat_stream(&["Hello", " world"], None, false));
        r.drop_at_end = true;
        r
    })
    .await;
    channel_with(&app, &up.url, "gpt-4", |c| c.r#type = 8).await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let mut body = stream_body(false);
    body["model"] = json!("gpt-4");
    let res = post(&app, &k, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let mut s = res.bytes_stream();
    let mut text = String::new();
    while let Ok(Some(Ok(b))) = tokio::time::timeout(Duration::from_secs(10), s.next()).await {
        text.push_str(&String::from_utf8_lossy(&b));
    }
    assert!(text.contains("world"));
    settled(&app).await;
    eventually(|| async { !consume_logs(&app, uid).await.is_empty() }).await;
    // "Hello world" = 2 tokens: 15 * (8 + 2 * 2) = 180
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 180);
    app.finish().await;
}

async fn client_disconnect_cancels_and_bills_delivered(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let pieces: Vec<&str> = std::iter::once("Hello")
        .chain(std::iter::repeat_n(" world", 60))
        .collect();
    let events = chat_stream(&pieces, None, true);
    let up = MockUpstream::start(move |_| {
        let mut r = Reply::sse(&events);
        for p in r.parts.iter_mut().skip(2) {
            p.0 = Duration::from_millis(50);
        }
        r
    })
    .await;
    channel_with(&app, &up.url, "gpt-4", |c| c.r#type = 8).await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let mut body = stream_body(false);
    body["model"] = json!("gpt-4");
    let res = post(&app, &k, "/v1/chat/completions", &body).await;
    let mut s = res.bytes_stream();
    let mut text = String::new();
    while !text.contains("world") {
        let b = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&b));
    }
    drop(s);
    // The relay notices at its next writes, cancels the upstream and bills what it passed on.
    eventually(|| async {
        settled(&app).await;
        !consume_logs(&app, uid).await.is_empty()
    })
    .await;
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 1);
    let c = logs[0].completion_tokens;
    assert!((2..30).contains(&c), "billed {c} of 61 completion tokens");
    // gpt-4: 15 * (8 + c * 2)
    assert_eq!(logs[0].quota, 15 * (8 + 2 * c));
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - logs[0].quota);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        up.completed.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "upstream cancelled"
    );
    app.finish().await;
}

async fn slow_first_token_is_retried_elsewhere(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("RELAY_FIRST_TOKEN_TIMEOUT", "1")]).await else {
        return;
    };
    set_option(&app, "RetryTimes", "1").await;
    let slow = MockUpstream::start(|_| {
        let mut r = Reply::sse(&chat_stream(&["late"], Some((9, 1)), true));
        r.parts[0].0 = Duration::from_secs(5);
        r
    })
    .await;
    let fast =
        MockUpstream::start(|_| Reply::sse(&chat_stream(&["fast"], Some((9, 1)), true))).await;
    channel_with(&app, &slow.url, "gpt-3.5-turbo", |c| c.priority = 10).await;
    let fast_id = channel_with(&app, &fast.url, "gpt-3.5-turbo", |c| c.priority = 0).await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let text = read_all(post(&app, &k, "/v1/chat/completions", &stream_body(false)).await).await;
    assert!(text.contains("fast") && !text.contains("late"), "{text}");
    settled(&app).await;
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].channel_id, fast_id);
    // ceil(0.25 * (9 + 3)) = 3
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 3);
    app.finish().await;
}

async fn enforce_include_usage_asks_every_channel(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("ENFORCE_INCLUDE_USAGE", "true")]).await else {
        return;
    };
    let up = MockUpstream::start(|_| Reply::sse(&chat_stream(&["a"], Some((9, 1)), true))).await;
    channel_with(&app, &up.url, "gpt-3.5-turbo", |c| c.r#type = 50).await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let text = read_all(post(&app, &k, "/v1/chat/completions", &stream_body(false)).await).await;
    assert!(!text.contains("usage"));
    let r = &up.requests()[0];
    // Type 50 (OpenAI-compatible): base + path minus /v1.
    assert_eq!(r.path, "/chat/completions");
    assert_eq!(r.json()["stream_options"]["include_usage"], true);
    settled(&app).await;
    // ceil(0.25 * (9 + 3)) = 3
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 3);
    app.finish().await;
}

async fn connect_errors_and_timeouts_are_retried(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("RELAY_TIMEOUT", "1")]).await else {
        return;
    };
    set_option(&app, "RetryTimes", "2").await;
    // A closed port (connect refused), then a channel slower than RELAY_TIMEOUT, then a good one.
    let (_held, closed) = crate::helpers::refusing_url();
    let slow = MockUpstream::start(|_| {
        let mut r = Reply::json(200, crate::mock_upstream::chat_completion("late", 1, 1));
        r.parts[0].0 = Duration::from_secs(5);
        r
    })
    .await;
    let good = MockUpstream::start(|_| {
        Reply::json(200, crate::mock_upstream::chat_completion("ok", 10, 10))
    })
    .await;
    channel_with(&app, &closed, "gpt-3.5-turbo", |c| c.priority = 20).await;
    channel_with(&app, &slow.url, "gpt-3.5-turbo", |c| c.priority = 10).await;
    let good_id = channel_with(&app, &good.url, "gpt-3.5-turbo", |c| c.priority = 0).await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let mut body = stream_body(false);
    body["stream"] = json!(false);
    let res = post(&app, &k, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["choices"][0]["message"]["content"], "ok");
    assert_eq!(slow.count(), 1);
    settled(&app).await;
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].channel_id, good_id);
    // ceil(0.25 * (10 + 30)) = 10
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 10);
    app.finish().await;
}

async fn idle_upstream_stream_is_cut_and_billed(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("RELAY_IDLE_TIMEOUT", "1")]).await else {
        return;
    };
    let up = MockUpstream::start(|_| {
        let mut r = Reply::sse(&chat_stream(&["Hello", " world", " later"], None, true));
        r.parts[2].0 = Duration::from_secs(6);
        r
    })
    .await;
    channel_with(&app, &up.url, "gpt-4", |c| c.r#type = 8).await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let mut body = stream_body(false);
    body["model"] = json!("gpt-4");
    let started = std::time::Instant::now();
    let text = read_all(post(&app, &k, "/v1/chat/completions", &body).await).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut by the idle timeout"
    );
    assert!(text.contains("world") && !text.contains("later"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    settled(&app).await;
    // "Hello world" = 2 tokens: 15 * (8 + 2 * 2) = 180
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 180);
    app.finish().await;
}
