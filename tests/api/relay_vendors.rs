//! Providers with their own small formats, through the running relay: DeepL (38) and Coze (34).

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, spawn_app};
use crate::mock_upstream::{MockUpstream, Reply};
use crate::relay_anthropic::{fixture, sse_events};
use crate::relay_helpers::*;

db_test!(
    deepl_translates_the_last_message,
    coze_chat_and_stream_are_counted_locally
);

async fn deepl_translates_the_last_message(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let answer = fixture("deepl/response.json");
    let up = MockUpstream::start(move |_| Reply::json(200, serde_json::from_str(&answer).unwrap()))
        .await;
    channel_with(&app, &up.url, "deepl-de", |c| {
        c.r#type = 38;
        c.key = "deepl-key:fx".into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let body =
        json!({"model": "deepl-de", "messages": [{"role": "user", "content": "Hello, world!"}]});
    let res = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "Hallo, Welt!");
    let r = &up.requests()[0];
    assert_eq!(r.path, "/v2/translate");
    assert_eq!(
        r.header("authorization"),
        Some("DeepL-Auth-Key deepl-key:fx")
    );
    assert_eq!(
        r.json(),
        json!({"text": ["Hello, world!"], "target_lang": "DE"})
    );
    settled(&app).await;
    // Billed by characters (13) with the default ratio of unknown models (30): 390.
    let logs = consume_logs(&app, uid).await;
    assert_eq!((logs[0].prompt_tokens, logs[0].completion_tokens), (13, 0));
    assert_eq!(logs[0].quota, 390);
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 390);

    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let res = post(&app, &key, "/v1/chat/completions", &stream).await;
    assert_eq!(res.status(), 400);
    app.finish().await;
}

async fn coze_chat_and_stream_are_counted_locally(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let answer = fixture("coze/response.json");
    let events = sse_events("coze/stream.sse");
    let up = MockUpstream::start(move |r| {
        if r.json()["stream"] == true {
            Reply::sse(&events)
        } else {
            Reply::json(200, serde_json::from_str(&answer).unwrap())
        }
    })
    .await;
    channel_with(&app, &up.url, "bot-7342", |c| {
        c.r#type = 34;
        c.key = "pat_coze".into();
        c.config = r#"{"user_id":"u-9"}"#.into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let body = json!({"model": "bot-7342", "messages": [{"role": "user", "content": "Weather?"}]});
    let res = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "The weather is sunny."
    );
    let r = &up.requests()[0];
    assert_eq!(r.path, "/open_api/v2/chat");
    assert_eq!(r.header("authorization"), Some("Bearer pat_coze"));
    let sent = r.json();
    assert_eq!(
        (sent["bot_id"].as_str(), sent["user"].as_str()),
        (Some("7342"), Some("u-9"))
    );
    assert_eq!(sent["query"], "Weather?");

    let mut s = body.clone();
    s["stream"] = json!(true);
    let res = post(&app, &key, "/v1/chat/completions", &s).await;
    let text = res.text().await.unwrap();
    let said: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(said, "The weather is sunny.");
    assert!(text.ends_with("data: [DONE]\n\n"));
    settled(&app).await;
    // No usage from Coze: both sides counted locally, priced with the default ratio 30.
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 2);
    for l in &logs {
        assert!(l.prompt_tokens > 0 && l.completion_tokens > 0);
        assert_eq!(l.quota, 30 * (l.prompt_tokens + l.completion_tokens));
    }
    assert_eq!(
        user_row(&app, uid).await.quota,
        1_000_000 - logs.iter().map(|l| l.quota).sum::<i64>()
    );
    app.finish().await;
}

db_test!(bedrock_claude_is_signed_and_translated);

async fn bedrock_claude_is_signed_and_translated(backend: Backend) {
    use tollgate::adaptors::bedrock;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let answer = fixture("anthropic/response_tool_use.json");
    let frames: Vec<u8> = fixture("anthropic/stream_text_and_tool.sse")
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .flat_map(bedrock::encode_chunk)
        .collect();
    let up = MockUpstream::start(move |r| {
        if r.path.ends_with("/invoke-with-response-stream") {
            Reply {
                status: 200,
                content_type: "application/vnd.amazon.eventstream".into(),
                parts: frames
                    .chunks(37)
                    .map(|c| (std::time::Duration::from_millis(1), c.to_vec()))
                    .collect(),
                drop_at_end: false,
            }
        } else {
            Reply::json(200, serde_json::from_str(&answer).unwrap())
        }
    })
    .await;
    let model = "claude-3-5-sonnet-20241022";
    channel_with(&app, &up.url, model, |c| {
        c.r#type = 33;
        c.key = String::new();
        c.config = r#"{"ak":"AKIDTEST","sk":"secret-test","region":"eu-west-3"}"#.into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let body = json!({"model": model, "max_tokens": 300,
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Weather in SF?"}]});
    let res = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "I'll check the weather."
    );
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");

    let r = &up.requests()[0];
    assert_eq!(
        r.path,
        "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"
    );
    let sent = r.json();
    assert_eq!(sent["anthropic_version"], "bedrock-2023-05-31");
    assert!(sent.get("model").is_none() && sent.get("stream").is_none());
    assert_eq!(sent["system"], "Be terse.");
    assert_eq!(sent["max_tokens"], 300);
    // The signature is SigV4 over what was actually sent.
    let date = r.header("x-amz-date").unwrap();
    let expected = bedrock::sign(&bedrock::SignInput {
        access_key: "AKIDTEST",
        secret_key: "secret-test",
        region: "eu-west-3",
        service: "bedrock",
        host: r.header("host").unwrap(),
        path: &r.path,
        body: &r.body,
        amz_date: date,
    });
    let auth = r.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/"),
        "{auth}"
    );
    assert!(auth.contains("/eu-west-3/bedrock/aws4_request"));
    assert_eq!(
        auth,
        expected
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1
    );
    assert!(!auth.contains("secret-test"));

    let mut s = body.clone();
    s["stream"] = json!(true);
    let res = post(&app, &key, "/v1/chat/completions", &s).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let said: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(said, "Okay, let me check.");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(
        up.requests()[1]
            .path
            .ends_with("/invoke-with-response-stream")
    );
    settled(&app).await;
    // As Anthropic's: 1526 (non-stream) + 1376 (stream).
    let logs = consume_logs(&app, uid).await;
    assert_eq!(
        logs.iter().map(|l| l.quota).collect::<Vec<_>>(),
        vec![1526, 1376]
    );
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 1526 - 1376);
    app.finish().await;
}

db_test!(tencent_hunyuan_is_signed_and_translated);

async fn tencent_hunyuan_is_signed_and_translated(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let answer = fixture("tencent/response.json");
    let events = sse_events("tencent/stream.sse");
    let error = fixture("tencent/error.json");
    let up = MockUpstream::start(move |r| {
        if r.json()["Model"] == "hunyuan-pro" {
            Reply::json(200, serde_json::from_str(&error).unwrap())
        } else if r.json()["Stream"] == true {
            Reply::sse(&events)
        } else {
            Reply::json(200, serde_json::from_str(&answer).unwrap())
        }
    })
    .await;
    channel_with(&app, &up.url, "hunyuan-lite,hunyuan-pro", |c| {
        c.r#type = 23;
        c.key = "1250000000|AKIDtest|tc-secret".into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let body = json!({"model": "hunyuan-lite", "messages": [{"role": "user", "content": "你好"}]});
    let res = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "你好！");
    let r = &up.requests()[0];
    assert_eq!(r.path, "/");
    assert_eq!(r.header("x-tc-action"), Some("ChatCompletions"));
    assert_eq!(r.header("x-tc-version"), Some("2023-09-01"));
    assert_eq!(
        r.json(),
        json!({"Model": "hunyuan-lite", "Messages": [{"Role": "user", "Content": "你好"}], "Stream": false})
    );
    let ts: i64 = r.header("x-tc-timestamp").unwrap().parse().unwrap();
    let date = chrono_free_date(ts);
    let expected = tollgate::adaptors::tencent::sign(
        "AKIDtest",
        "tc-secret",
        r.header("host").unwrap(),
        "ChatCompletions",
        &r.body,
        ts,
        &date,
    );
    let auth = r.header("authorization").unwrap();
    assert_eq!(
        auth,
        expected
            .iter()
            .find(|(k, _)| k == "Authorization")
            .unwrap()
            .1
    );
    assert!(auth.starts_with("TC3-HMAC-SHA256 Credential=AKIDtest/"));

    let mut s = body.clone();
    s["stream"] = json!(true);
    let text = post(&app, &key, "/v1/chat/completions", &s)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("好！"), "{text}");
    assert!(!text.contains("\"usage\""), "{text}");

    // Errors inside an HTTP 200 answer are errors, refunded.
    let res = post(
        &app,
        &key,
        "/v1/chat/completions",
        &json!({"model": "hunyuan-pro", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(res.status(), 502);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["code"], "AuthFailure.SignatureFailure");
    settled(&app).await;
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 2);
    // hunyuan-lite's ratio is not in the table (30), completion ratio 1: 30 * (3 + 4) = 210.
    assert!(
        logs.iter()
            .all(|l| (l.prompt_tokens, l.completion_tokens) == (3, 4))
    );
    assert!(
        logs.iter().all(|l| l.quota == 210),
        "{:?}",
        logs.iter().map(|l| l.quota).collect::<Vec<_>>()
    );
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 420);
    app.finish().await;
}

fn chrono_free_date(ts: i64) -> String {
    let d = tollgate::relay::bedrock::amz_date(ts);
    format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8])
}
