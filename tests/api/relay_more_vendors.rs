//! More providers with their own formats, through the running relay against a mock upstream:
//! PaLM (11), AIProxyLibrary (21), Zhipu v3 (16, `chatglm_*`), Bedrock Llama (33), Hunyuan
//! embeddings (23), Coze v3 (34). Each checks the provider's required headers and body fields,
//! non-stream and stream, and that the quota moved and the consume log equal the formula.

use base64::Engine;
use serde_json::{Value, json};
use tollgate::billing::quota::{Price, text_quota};

use crate::db_test;
use crate::helpers::{Backend, TestApp, spawn_app};
use crate::mock_upstream::{MockUpstream, Reply};
use crate::relay_anthropic::{fixture, sse_events};
use crate::relay_helpers::*;

db_test!(
    palm_chat_and_whole_answer_stream,
    aiproxy_library_with_documents,
    zhipu_v3_chatglm_is_signed_with_a_jwt,
    bedrock_llama_is_signed_and_translated,
    tencent_hunyuan_embeddings,
    coze_v3_chat_and_stream,
);

/// The streamed text (OpenAI chunks) and whether any chunk carried usage.
fn streamed(text: &str) -> (String, bool) {
    let mut said = String::new();
    let mut usage = false;
    for d in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if d == "[DONE]" {
            continue;
        }
        let c: Value = serde_json::from_str(d).unwrap();
        if let Some(t) = c["choices"][0]["delta"]["content"].as_str() {
            said.push_str(t);
        }
        usage |= c.get("usage").is_some_and(|u| !u.is_null());
    }
    (said, usage)
}

fn price(model_ratio: f64, completion_ratio: f64) -> Price {
    Price {
        model_ratio,
        completion_ratio,
        group_ratio: 1.0,
    }
}

/// Both logs priced by the formula from their own token counts, and the user charged their sum.
async fn billed_by_formula(app: &TestApp, uid: i64, p: Price, n: usize) -> Vec<(i64, i64)> {
    settled(app).await;
    let logs = consume_logs(app, uid).await;
    assert_eq!(logs.len(), n);
    for l in &logs {
        assert!(l.prompt_tokens > 0, "{l:?}");
        assert_eq!(
            l.quota,
            text_quota(&p, l.prompt_tokens, l.completion_tokens),
            "{l:?}"
        );
    }
    assert_eq!(
        user_row(app, uid).await.quota,
        1_000_000 - logs.iter().map(|l| l.quota).sum::<i64>()
    );
    logs.iter()
        .map(|l| (l.prompt_tokens, l.completion_tokens))
        .collect()
}

async fn palm_chat_and_whole_answer_stream(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let answer = fixture("palm/response.json");
    let up = MockUpstream::start(move |_| Reply::json(200, serde_json::from_str(&answer).unwrap()))
        .await;
    channel_with(&app, &up.url, "PaLM-2", |c| {
        c.r#type = 11;
        c.key = "AIza-palm".into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let body = json!({"model": "PaLM-2", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a color"}]});
    let res = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "Blue.");
    let r = &up.requests()[0];
    assert_eq!(r.path, "/v1beta2/models/chat-bison-001:generateMessage");
    assert_eq!(r.header("x-goog-api-key"), Some("AIza-palm"));
    assert_eq!(
        r.json()["prompt"],
        json!({"context": "Be brief.", "messages": [{"author": "0", "content": "Name a color"}]})
    );

    // PaLM does not stream: the whole answer comes back as one chunk.
    let mut s = body.clone();
    s["stream"] = json!(true);
    let res = post(&app, &key, "/v1/chat/completions", &s).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert_eq!(streamed(&text), ("Blue.".to_string(), false));
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(up.requests()[1].path, r.path);
    // No usage from PaLM: counted locally; PaLM-2's ratio is 1, completion 1.
    let counts = billed_by_formula(&app, uid, price(1.0, 1.0), 2).await;
    assert!(counts.iter().all(|(_, c)| *c > 0));
    app.finish().await;
}

async fn aiproxy_library_with_documents(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let answer = fixture("aiproxy/response.json");
    let events = sse_events("aiproxy/stream.sse");
    let up = MockUpstream::start(move |r| {
        if r.json()["stream"] == true {
            Reply::sse(&events)
        } else {
            Reply::json(200, serde_json::from_str(&answer).unwrap())
        }
    })
    .await;
    channel_with(&app, &up.url, "kb-model", |c| {
        c.r#type = 21;
        c.key = "aiproxy-key".into();
        c.config = r#"{"library_id":"lib-1"}"#.into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let body = json!({"model": "kb-model", "messages": [
        {"role": "user", "content": "hello"}, {"role": "user", "content": "How do I reset?"}]});
    let res = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    let content = out["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("Hold the button for 5 seconds."));
    assert!(content.contains("1. [Manual](https://example.com/manual)"));
    let r = &up.requests()[0];
    assert_eq!(r.path, "/api/library/ask");
    assert_eq!(r.header("authorization"), Some("Bearer aiproxy-key"));
    assert_eq!(
        r.json(),
        json!({"model": "kb-model", "query": "How do I reset?", "library_id": "lib-1", "stream": false})
    );

    let mut s = body.clone();
    s["stream"] = json!(true);
    let text = post(&app, &key, "/v1/chat/completions", &s)
        .await
        .text()
        .await
        .unwrap();
    let (said, usage) = streamed(&text);
    assert!(said.starts_with("Hold the button."), "{said}");
    assert!(said.contains("参考文档"), "{said}");
    assert!(!usage);
    assert!(text.ends_with("data: [DONE]\n\n"));
    // Unknown model: ratio 30, completion 1; both sides counted locally.
    billed_by_formula(&app, uid, price(30.0, 1.0), 2).await;
    app.finish().await;
}

async fn zhipu_v3_chatglm_is_signed_with_a_jwt(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let answer = fixture("zhipu/response.json");
    let events = sse_events("zhipu/stream.sse");
    let up = MockUpstream::start(move |r| {
        if r.path.ends_with("/sse-invoke") {
            Reply::sse(&events)
        } else if r.path.starts_with("/api/paas/v4/") {
            Reply::json(200, crate::mock_upstream::chat_completion("v4", 3, 4))
        } else {
            Reply::json(200, serde_json::from_str(&answer).unwrap())
        }
    })
    .await;
    channel_with(&app, &up.url, "chatglm_turbo,glm-4", |c| {
        c.r#type = 16;
        c.key = "myid.mysecret".into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let body = json!({"model": "chatglm_turbo", "temperature": 1.7,
        "messages": [{"role": "user", "content": "你好"}]});
    let res = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "你好！有什么可以帮你？"
    );
    let r = &up.requests()[0];
    assert_eq!(r.path, "/api/paas/v3/model-api/chatglm_turbo/invoke");
    assert_eq!(
        r.json(),
        json!({"prompt": [{"role": "user", "content": "你好"}], "temperature": 1.0})
    );
    let jwt = r.header("authorization").unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["api_key"], "myid");
    let ts = claims["timestamp"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - ts, 86_400_000);
    assert!(ts > 1_600_000_000_000, "milliseconds: {ts}");
    let sig = tollgate::adaptors::bedrock::hmac(
        b"mysecret",
        format!("{}.{}", parts[0], parts[1]).as_bytes(),
    );
    assert_eq!(b64.decode(parts[2]).unwrap(), sig);

    let mut s = body.clone();
    s["stream"] = json!(true);
    let text = post(&app, &key, "/v1/chat/completions", &s)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        streamed(&text),
        ("你好！有什么可以帮你？".to_string(), false)
    );
    assert_eq!(
        up.requests()[1].path,
        "/api/paas/v3/model-api/chatglm_turbo/sse-invoke"
    );
    // Zhipu's usage (6 + 8) both times, chatglm_turbo's ratio 0.3572: ceil(5.0008) = 6.
    let counts = billed_by_formula(&app, uid, price(0.3572, 1.0), 2).await;
    assert_eq!(counts, vec![(6, 8), (6, 8)]);
    assert!(consume_logs(&app, uid).await.iter().all(|l| l.quota == 6));

    // glm-* keeps the v4 API (OpenAI's format, Bearer key).
    let res = post(
        &app,
        &key,
        "/v1/chat/completions",
        &json!({"model": "glm-4", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let r = &up.requests()[2];
    assert_eq!(r.path, "/api/paas/v4/chat/completions");
    assert_eq!(r.header("authorization"), Some("Bearer myid.mysecret"));
    app.finish().await;
}

async fn bedrock_llama_is_signed_and_translated(backend: Backend) {
    use tollgate::adaptors::bedrock;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let answer = fixture("bedrock/llama_response.json");
    let frames: Vec<u8> = fixture("bedrock/llama_stream.jsonl")
        .lines()
        .flat_map(bedrock::encode_chunk)
        .collect();
    let up = MockUpstream::start(move |r| {
        if r.path.ends_with("/invoke-with-response-stream") {
            Reply {
                status: 200,
                content_type: "application/vnd.amazon.eventstream".into(),
                parts: frames
                    .chunks(29)
                    .map(|c| (std::time::Duration::from_millis(1), c.to_vec()))
                    .collect(),
                drop_at_end: false,
            }
        } else {
            Reply::json(200, serde_json::from_str(&answer).unwrap())
        }
    })
    .await;
    let model = "llama3-8b-8192";
    channel_with(&app, &up.url, model, |c| {
        c.r#type = 33;
        c.key = "AKIDLLAMA|llama-secret|us-west-2".into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let body = json!({"model": model, "max_tokens": 64, "top_p": 0.9,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]});
    let res = post(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "Hello there!");
    assert_eq!(out["usage"]["prompt_tokens"], 20);
    let r = &up.requests()[0];
    assert_eq!(r.path, "/model/meta.llama3-8b-instruct-v1%3A0/invoke");
    let sent = r.json();
    assert_eq!(
        sent["prompt"],
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    );
    assert_eq!(
        (sent["max_gen_len"].as_i64(), sent["top_p"].as_f64()),
        (Some(64), Some(0.9))
    );
    assert!(sent.get("messages").is_none() && sent.get("anthropic_version").is_none());
    let expected = bedrock::sign(&bedrock::SignInput {
        access_key: "AKIDLLAMA",
        secret_key: "llama-secret",
        region: "us-west-2",
        service: "bedrock",
        host: r.header("host").unwrap(),
        path: &r.path,
        body: &r.body,
        amz_date: r.header("x-amz-date").unwrap(),
    });
    assert_eq!(
        r.header("authorization").unwrap(),
        expected
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1
    );

    let mut s = body.clone();
    s["stream"] = json!(true);
    let text = post(&app, &key, "/v1/chat/completions", &s)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(streamed(&text), ("Hello there!".to_string(), false));
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(
        up.requests()[1]
            .path
            .ends_with("/invoke-with-response-stream")
    );
    // Bedrock's Llama 3 price (One API's `llama3-8b-8192(33)`): 0.15, completion 2:
    // ceil(0.15 * (20 + 4 * 2)) = 5, both times.
    let counts = billed_by_formula(&app, uid, price(0.0003 / 0.002, 2.0), 2).await;
    assert_eq!(counts, vec![(20, 4), (20, 4)]);
    assert!(consume_logs(&app, uid).await.iter().all(|l| l.quota == 5));
    app.finish().await;
}

async fn tencent_hunyuan_embeddings(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let answer = fixture("tencent/embedding.json");
    let up = MockUpstream::start(move |_| Reply::json(200, serde_json::from_str(&answer).unwrap()))
        .await;
    channel_with(&app, &up.url, "hunyuan-embedding", |c| {
        c.r#type = 23;
        c.key = "1250000000|AKIDtest|tc-secret".into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let res = post(
        &app,
        &key,
        "/v1/embeddings",
        &json!({"model": "hunyuan-embedding", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["object"], "list");
    assert_eq!(out["data"][1]["embedding"], json!([0.3, 0.4]));
    assert_eq!(out["usage"]["prompt_tokens"], 4);
    let r = &up.requests()[0];
    assert_eq!(r.path, "/");
    assert_eq!(r.header("x-tc-action"), Some("GetEmbedding"));
    assert_eq!(r.header("x-tc-version"), Some("2023-09-01"));
    assert_eq!(r.json(), json!({"InputList": ["a", "b"]}));
    let ts: i64 = r.header("x-tc-timestamp").unwrap().parse().unwrap();
    let d = tollgate::relay::bedrock::amz_date(ts);
    let expected = tollgate::adaptors::tencent::sign(
        "AKIDtest",
        "tc-secret",
        r.header("host").unwrap(),
        "GetEmbedding",
        &r.body,
        ts,
        &format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8]),
    );
    assert_eq!(
        r.header("authorization").unwrap(),
        expected
            .iter()
            .find(|(k, _)| k == "Authorization")
            .unwrap()
            .1
    );
    // Hunyuan's usage (4 prompt tokens), hunyuan-embedding has no ratio (30): 120.
    settled(&app).await;
    let logs = consume_logs(&app, uid).await;
    assert_eq!((logs[0].prompt_tokens, logs[0].quota), (4, 120));
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 120);
    app.finish().await;
}

async fn coze_v3_chat_and_stream(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let events = sse_events("coze/v3_stream.sse");
    let up = MockUpstream::start(move |r| {
        if r.json()["bot_id"] == "404" {
            Reply::json(200, json!({"code": 4200, "msg": "bot not found"}))
        } else {
            Reply::sse(&events)
        }
    })
    .await;
    channel_with(&app, &up.url, "bot-7342,bot-404", |c| {
        c.r#type = 34;
        c.key = "pat_coze".into();
        c.config = r#"{"user_id":"u-9","api_version":"v3"}"#.into();
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
    assert_eq!(out["usage"]["total_tokens"], 36);
    let r = &up.requests()[0];
    assert_eq!(r.path, "/v3/chat");
    assert_eq!(r.header("authorization"), Some("Bearer pat_coze"));
    let sent = r.json();
    assert_eq!(
        (sent["bot_id"].as_str(), sent["user_id"].as_str()),
        (Some("7342"), Some("u-9"))
    );
    assert_eq!(sent["stream"], true);
    assert_eq!(
        sent["additional_messages"],
        json!([{"role": "user", "content": "Weather?", "content_type": "text"}])
    );

    let mut s = body.clone();
    s["stream"] = json!(true);
    let text = post(&app, &key, "/v1/chat/completions", &s)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        streamed(&text),
        ("The weather is sunny.".to_string(), false)
    );
    assert!(text.ends_with("data: [DONE]\n\n"));

    // An error answer (JSON inside HTTP 200) is an error, refunded.
    let res = post(
        &app,
        &key,
        "/v1/chat/completions",
        &json!({"model": "bot-404", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(res.status(), 502);
    let e: Value = res.json().await.unwrap();
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("bot not found"), "{msg}");
    // Coze's usage (30 + 6) both times, unknown model ratio 30: 1080.
    let counts = billed_by_formula(&app, uid, price(30.0, 1.0), 2).await;
    assert_eq!(counts, vec![(30, 6), (30, 6)]);
    assert!(
        consume_logs(&app, uid)
            .await
            .iter()
            .all(|l| l.quota == 1080)
    );
    app.finish().await;
}

db_test!(upstream_errors_keep_the_providers_status_and_are_refunded);

/// Errors from each new provider come back in OpenAI's shape with the provider's status (errors
/// inside an HTTP 200 answer as 502), and nothing is charged.
async fn upstream_errors_keep_the_providers_status_and_are_refunded(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let palm_err = fixture("palm/error.json");
    let up = MockUpstream::start(move |r| {
        if r.path.contains(":generateMessage") {
            Reply::json(400, serde_json::from_str(&palm_err).unwrap())
        } else if r.path.starts_with("/api/paas/v3/") {
            Reply::json(
                401,
                json!({"code": 1002, "msg": "Authorization Token非法", "success": false}),
            )
        } else if r.path == "/api/library/ask" {
            Reply::json(
                200,
                json!({"success": false, "message": "library not found", "error_code": 404}),
            )
        } else {
            Reply::json(
                403,
                json!({"message": "The security token included in the request is invalid."}),
            )
        }
    })
    .await;
    let setups: [(i64, &str, &str); 4] = [
        (11, "PaLM-2", "AIza-x"),
        (16, "chatglm_std", "id.secret"),
        (21, "kb", "k"),
        (33, "llama3-70b-8192", "AK|SK|us-east-1"),
    ];
    for (ty, model, key) in setups {
        channel_with(&app, &up.url, model, |c| {
            c.r#type = ty;
            c.key = key.into();
        })
        .await;
    }
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let cases = [
        ("PaLM-2", 400, "API key not valid"),
        ("chatglm_std", 401, "Authorization Token非法"),
        ("kb", 502, "library not found"),
        ("llama3-70b-8192", 403, "security token"),
    ];
    for (model, status, msg) in cases {
        for stream in [false, true] {
            let body = json!({"model": model, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]});
            let res = post(&app, &key, "/v1/chat/completions", &body).await;
            let got = res.status().as_u16();
            let text = res.text().await.unwrap();
            // A JSON answer (HTTP 200) to a stream request is the relay's 500, as for any type.
            let status = if stream && status == 502 { 500 } else { status };
            assert_eq!(got, status, "{model} stream={stream}: {text}");
            let e: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert!(
                e["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(msg)),
                "{model} stream={stream}: {text}"
            );
        }
    }
    settled(&app).await;
    assert!(consume_logs(&app, uid).await.is_empty());
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000);
    app.finish().await;
}
