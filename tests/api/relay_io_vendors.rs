//! Providers whose exchange is more than one HTTP call, through the running relay against mock
//! upstreams: Baidu v1 (15, OAuth access token), Vertex AI (42, service-account JWT), Xunfei
//! Spark (18, WebSocket) and Replicate (46, predictions polled or streamed).

use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tollgate::billing::quota::{Price, text_quota};

use crate::db_test;
use crate::helpers::{Backend, TestApp, spawn_app};
use crate::mock_upstream::{MockUpstream, Reply};
use crate::relay_anthropic::{fixture, sse_events};
use crate::relay_helpers::*;

db_test!(
    refused_credentials_are_401s_that_disable_the_channel,
    baidu_v1_uses_a_cached_access_token,
    vertex_ai_signs_a_jwt_and_serves_gemini_and_claude,
    xunfei_spark_over_websocket,
    replicate_predictions_are_polled_and_streamed
);

/// One API's formula with the app's ratios (group `default`).
fn expected_quota(app: &TestApp, model: &str, channel_type: i64, p: i64, c: i64) -> i64 {
    let opts = app.state.options.load();
    let r = app.state.relay.ratios(&opts);
    let price = Price {
        model_ratio: r.model_ratio(model, channel_type),
        completion_ratio: r.completion_ratio(model, channel_type),
        group_ratio: r.group_ratio("default"),
    };
    text_quota(&price, p, c)
}

/// The text of an OpenAI SSE answer, and whether a usage chunk was in it.
fn streamed(text: &str) -> (String, bool) {
    let mut said = String::new();
    let mut usage = false;
    for d in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let Ok(c) = serde_json::from_str::<Value>(d) else {
            continue;
        };
        if let Some(t) = c["choices"][0]["delta"]["content"].as_str() {
            said.push_str(t);
        }
        usage |= c.get("usage").is_some_and(|u| !u.is_null());
    }
    (said, usage)
}

fn query(path: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(&format!("http://x{path}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

async fn baidu_v1_uses_a_cached_access_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let answer: Value = serde_json::from_str(&fixture("baidu/response.json")).unwrap();
    let error: Value = serde_json::from_str(&fixture("baidu/error.json")).unwrap();
    let embedding: Value = serde_json::from_str(&fixture("baidu/embedding.json")).unwrap();
    let events = sse_events("baidu/stream.sse");
    let up = MockUpstream::start(move |r| {
        if r.path.starts_with("/oauth/2.0/token") {
            Reply::json(
                200,
                json!({"refresh_token": "25.r", "expires_in": 2_592_000,
                    "scope": "public", "access_token": "24.tok", "session_key": "x"}),
            )
        } else if r.path.contains("/embeddings/") {
            Reply::json(200, embedding.clone())
        } else if r.path.contains("/chat/completions_pro") {
            Reply::json(200, error.clone())
        } else if r.json()["stream"] == true {
            Reply::sse(&events)
        } else {
            Reply::json(200, answer.clone())
        }
    })
    .await;
    let client_id = format!("cid-{}", uuid::Uuid::new_v4().simple());
    let key = format!("{client_id}|c-secret");
    channel_with(
        &app,
        &up.url,
        "ERNIE-3.5-8K,ERNIE-4.0-8K,Embedding-V1",
        |c| {
            c.r#type = 15;
            c.key = key.clone();
        },
    )
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, tk) = token(&app, uid, None).await;
    let body = json!({"model": "ERNIE-3.5-8K", "temperature": 0.3, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}]});
    let res = post(&app, &tk, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "你好！有什么可以帮你的？"
    );
    assert_eq!(out["usage"]["total_tokens"], 10);
    let reqs = up.requests();
    assert_eq!(reqs[0].method, "POST");
    let q = query(&reqs[0].path);
    assert!(reqs[0].path.starts_with("/oauth/2.0/token?"));
    assert_eq!(
        (
            q["grant_type"].as_str(),
            q["client_id"].as_str(),
            q["client_secret"].as_str()
        ),
        ("client_credentials", client_id.as_str(), "c-secret")
    );
    assert_eq!(
        reqs[1].path,
        "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/completions?access_token=24.tok"
    );
    assert_eq!(
        reqs[1].json(),
        json!({"messages": [{"role": "user", "content": "你好"}], "system": "Be brief.",
            "temperature": 0.3})
    );

    // A stream, with the token from the cache.
    let mut s = body.clone();
    s["stream"] = json!(true);
    let res = post(&app, &tk, "/v1/chat/completions", &s).await;
    assert_eq!(res.status(), 200);
    let (said, usage) = streamed(&res.text().await.unwrap());
    assert_eq!(said, "你好！有什么可以帮你的？");
    assert!(!usage, "the client did not ask for usage");
    // Embeddings.
    let res = post(
        &app,
        &tk,
        "/v1/embeddings",
        &json!({"model": "Embedding-V1", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["data"].as_array().unwrap().len(), 2);
    let tokens = |up: &MockUpstream| {
        up.requests()
            .iter()
            .filter(|r| r.path.starts_with("/oauth/"))
            .count()
    };
    assert_eq!(tokens(&up), 1, "the access token is cached");
    assert!(up.requests().iter().any(|r| r.path
        == "/rpc/2.0/ai_custom/v1/wenxinworkshop/embeddings/embedding-v1?access_token=24.tok"
        && r.json() == json!({"input": ["a", "b"]})));

    // An error inside an HTTP 200 answer is an error (refunded); "token invalid" drops the
    // cached token, so the next call fetches a new one.
    settled(&app).await;
    let before = user_row(&app, uid).await.quota;
    let res = post(
        &app,
        &tk,
        "/v1/chat/completions",
        &json!({"model": "ERNIE-4.0-8K", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(res.status(), 502);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "110");
    settled(&app).await;
    assert_eq!(user_row(&app, uid).await.quota, before, "refunded");
    let res = post(&app, &tk, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        tokens(&up),
        2,
        "a new token after Baidu refused the old one"
    );

    settled(&app).await;
    let logs = consume_logs(&app, uid).await;
    let got: Vec<_> = logs
        .iter()
        .map(|l| (l.model_name.as_str(), l.prompt_tokens, l.completion_tokens))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ERNIE-3.5-8K", 2, 8),
            ("ERNIE-3.5-8K", 2, 8),
            ("Embedding-V1", 4, 0),
            ("ERNIE-3.5-8K", 2, 8)
        ]
    );
    let mut total = 0;
    for l in &logs {
        let q = expected_quota(
            &app,
            &l.model_name,
            15,
            l.prompt_tokens,
            l.completion_tokens,
        );
        assert_eq!(l.quota, q, "{}", l.model_name);
        total += q;
    }
    assert!(total > 0);
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - total);
    app.finish().await;
}

async fn vertex_ai_signs_a_jwt_and_serves_gemini_and_claude(backend: Backend) {
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let claude: Value = serde_json::from_str(&fixture("anthropic/response_tool_use.json")).unwrap();
    let claude_events = sse_events("anthropic/stream_text_and_tool.sse");
    let gemini: Value =
        serde_json::from_str(&fixture("gemini/response_function_call.json")).unwrap();
    let gemini_events = sse_events("gemini/stream_text.sse");
    let up = MockUpstream::start(move |r| {
        if r.path == "/token" {
            Reply::json(
                200,
                json!({"access_token": "ya29.test-token", "expires_in": 3599, "token_type": "Bearer"}),
            )
        } else if r.path.ends_with(":rawPredict") {
            Reply::json(200, claude.clone())
        } else if r.path.ends_with(":streamRawPredict") {
            Reply::sse(&claude_events)
        } else if r.path.ends_with(":generateContent") {
            Reply::json(200, gemini.clone())
        } else {
            Reply::sse(&gemini_events)
        }
    })
    .await;
    // A real service-account file names its token endpoint: here, the mock.
    let mut sa: Value = serde_json::from_str(&fixture("vertex/service_account.json")).unwrap();
    sa["token_uri"] = json!(format!("{}/token", up.url));
    sa["client_email"] = json!(format!(
        "t{}@tollgate-test.iam.gserviceaccount.com",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    let config = json!({"region": "us-central1", "vertex_ai_project_id": "proj-t",
        "vertex_ai_adc": sa.to_string()});
    let claude_model = "claude-3-5-haiku@20241022";
    let gemini_model = "gemini-1.5-flash";
    channel_with(
        &app,
        &up.url,
        &format!("{claude_model},{gemini_model}"),
        |c| {
            c.r#type = 42;
            c.key = "unused".into();
            c.config = config.to_string();
        },
    )
    .await;
    let uid = user(&app, 10_000_000, "default", 1).await;
    let (_, tk) = token(&app, uid, None).await;
    let ask = |model: &str, stream: bool| {
        json!({"model": model, "max_tokens": 300, "stream": stream, "messages": [
            {"role": "system", "content": "Be terse."}, {"role": "user", "content": "Weather in SF?"}]})
    };
    let res = post(&app, &tk, "/v1/chat/completions", &ask(claude_model, false)).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "I'll check the weather."
    );
    let reqs = up.requests();
    // The token request: a JWT signed with the account's key, verified with its public half.
    let t = &reqs[0];
    assert_eq!((t.method.as_str(), t.path.as_str()), ("POST", "/token"));
    assert_eq!(
        t.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&t.body).into_owned().collect();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let parts: Vec<&str> = form["assertion"].split('.').collect();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], sa["client_email"]);
    assert_eq!(claims["aud"], json!(format!("{}/token", up.url)));
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    let pem = fixture("vertex/public_key.pem");
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let public = STANDARD.decode(der).unwrap();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
        .expect("the JWT verifies with the service account's public key");
    // The Claude call: Anthropic's publisher, Bearer token, no model, Vertex's version.
    let c = &reqs[1];
    assert_eq!(
        c.path,
        format!(
            "/v1/projects/proj-t/locations/us-central1/publishers/anthropic/models/{claude_model}:rawPredict"
        )
    );
    assert_eq!(c.header("authorization"), Some("Bearer ya29.test-token"));
    let sent = c.json();
    assert_eq!(sent["anthropic_version"], "vertex-2023-10-16");
    assert!(sent.get("model").is_none());
    assert_eq!(sent["system"], "Be terse.");
    assert_eq!(sent["max_tokens"], 300);

    let res = post(&app, &tk, "/v1/chat/completions", &ask(claude_model, true)).await;
    assert_eq!(res.status(), 200);
    let (said, _) = streamed(&res.text().await.unwrap());
    assert_eq!(said, "Okay, let me check.");
    let res = post(&app, &tk, "/v1/chat/completions", &ask(gemini_model, false)).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "Let me look that up."
    );
    let res = post(&app, &tk, "/v1/chat/completions", &ask(gemini_model, true)).await;
    assert_eq!(res.status(), 200);
    let (said, _) = streamed(&res.text().await.unwrap());
    assert!(!said.is_empty());
    let reqs = up.requests();
    assert_eq!(
        reqs.iter().filter(|r| r.path == "/token").count(),
        1,
        "the access token is cached"
    );
    let paths: Vec<&str> = reqs[2..].iter().map(|r| r.path.as_str()).collect();
    let g = "/v1/projects/proj-t/locations/us-central1/publishers";
    assert_eq!(
        paths,
        vec![
            format!("{g}/anthropic/models/{claude_model}:streamRawPredict"),
            format!("{g}/google/models/{gemini_model}:generateContent"),
            format!("{g}/google/models/{gemini_model}:streamGenerateContent?alt=sse"),
        ]
    );
    assert!(
        reqs[2..]
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer ya29.test-token"))
    );
    assert_eq!(reqs[2].json()["stream"], true);
    assert!(reqs[3].json()["contents"].is_array());

    settled(&app).await;
    let logs = consume_logs(&app, uid).await;
    let got: Vec<_> = logs
        .iter()
        .map(|l| (l.prompt_tokens, l.completion_tokens))
        .collect();
    assert_eq!(got, vec![(572, 89), (472, 89), (10, 20), (101, 40)]);
    let mut total = 0;
    for l in &logs {
        let q = expected_quota(
            &app,
            &l.model_name,
            42,
            l.prompt_tokens,
            l.completion_tokens,
        );
        assert_eq!(l.quota, q, "{}", l.model_name);
        total += q;
    }
    assert_eq!(user_row(&app, uid).await.quota, 10_000_000 - total);
    app.finish().await;
}

const SPARK_SECRET: &str = "spark-secret";

/// A Spark mock: checks the signature (401 when wrong, as Xunfei), records each connection's request URI and first frame, then answers with
/// `frames` (or an error frame when the question is "bad").
struct SparkMock {
    url: String,
    received: Arc<Mutex<Vec<(String, Value)>>>,
}

async fn spark_mock(frames: Vec<Value>) -> SparkMock {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let rec = received.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let rec = rec.clone();
            let frames = frames.clone();
            tokio::spawn(async move {
                let uri = Arc::new(Mutex::new(String::new()));
                let u = uri.clone();
                // tungstenite's callback signature, not ours.
                #[allow(clippy::result_large_err)]
                let cb = move |req: &Request, resp: Response| {
                    let uri = req.uri().to_string();
                    *u.lock().unwrap() = uri.clone();
                    // Xunfei's check: the signature over host, date and request line.
                    let q = query(&uri);
                    let auth = STANDARD
                        .decode(q.get("authorization").cloned().unwrap_or_default())
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let sig = tollgate::adaptors::xunfei::signature(
                        SPARK_SECRET,
                        q.get("host").map(String::as_str).unwrap_or(""),
                        q.get("date").map(String::as_str).unwrap_or(""),
                        req.uri().path(),
                    );
                    if !auth.contains(&format!("signature=\"{sig}\"")) {
                        let mut e = ErrorResponse::new(Some(
                            r#"{"message":"HMAC signature does not match"}"#.to_string(),
                        ));
                        *e.status_mut() =
                            tokio_tungstenite::tungstenite::http::StatusCode::UNAUTHORIZED;
                        return Err(e);
                    }
                    Ok::<_, ErrorResponse>(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(sock, cb).await else {
                    return;
                };
                let Some(Ok(Message::Text(t))) = ws.next().await else {
                    return;
                };
                let frame: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                let bad = frame["payload"]["message"]["text"][0]["content"] == "bad";
                rec.lock()
                    .unwrap()
                    .push((uri.lock().unwrap().clone(), frame));
                let answer = if bad {
                    vec![
                        json!({"header": {"code": 10013, "message": "input content is unsafe",
                        "sid": "x", "status": 2}}),
                    ]
                } else {
                    frames
                };
                for f in answer {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    if ws.send(Message::Text(f.to_string().into())).await.is_err() {
                        return;
                    }
                }
                let _ = ws.close(None).await;
            });
        }
    });
    SparkMock { url, received }
}

async fn xunfei_spark_over_websocket(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let frames: Vec<Value> = fixture("xunfei/frames.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mock = spark_mock(frames).await;
    channel_with(&app, &mock.url, "Spark-Max", |c| {
        c.r#type = 18;
        c.key = "app-42|spark-secret|spark-key".into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, tk) = token(&app, uid, None).await;
    let body = json!({"model": "Spark-Max", "temperature": 0.5, "max_tokens": 100,
        "messages": [{"role": "user", "content": "你好"}]});
    let res = post(&app, &tk, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "你好！我是讯飞星火。"
    );
    assert_eq!(out["usage"]["total_tokens"], 12);
    let (uri, frame) = mock.received.lock().unwrap()[0].clone();
    assert_eq!(
        frame,
        json!({"header": {"app_id": "app-42"}, "parameter": {"chat": {"domain": "generalv3.5",
            "temperature": 0.5, "max_tokens": 100}},
            "payload": {"message": {"text": [{"role": "user", "content": "你好"}]}}})
    );
    // The signature: HMAC-SHA256 over host, date and the request line, under the APISecret.
    let (path, _) = uri.split_once('?').unwrap();
    assert_eq!(path, "/v3.5/chat");
    let q = query(&uri);
    assert_eq!(q["host"], mock.url.trim_start_matches("ws://"));
    let auth = String::from_utf8(STANDARD.decode(&q["authorization"]).unwrap()).unwrap();
    let sig = tollgate::adaptors::xunfei::signature("spark-secret", &q["host"], &q["date"], path);
    assert_eq!(
        auth,
        format!(
            r#"api_key="spark-key", algorithm="hmac-sha256", headers="host date request-line", signature="{sig}""#
        )
    );
    assert!(q["date"].ends_with(" GMT"));

    let mut s = body.clone();
    s["stream"] = json!(true);
    s["stream_options"] = json!({"include_usage": true});
    let res = post(&app, &tk, "/v1/chat/completions", &s).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let (said, usage) = streamed(&text);
    assert_eq!(said, "你好！我是讯飞星火。");
    assert!(usage, "asked for usage: {text}");
    assert!(text.ends_with("data: [DONE]\n\n"));

    // An error frame answers with its status (content moderation: 400), refunded.
    let mut bad = body.clone();
    bad["messages"] = json!([{"role": "user", "content": "bad"}]);
    let res = post(&app, &tk, "/v1/chat/completions", &bad).await;
    assert_eq!(res.status(), 400);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["code"], "10013");

    settled(&app).await;
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 2);
    let q = expected_quota(&app, "Spark-Max", 18, 3, 9);
    for l in &logs {
        assert_eq!((l.prompt_tokens, l.completion_tokens, l.quota), (3, 9, q));
    }
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 2 * q);
    app.finish().await;
}

async fn replicate_predictions_are_polled_and_streamed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let base: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let b = base.clone();
    let succeeded: Value = serde_json::from_str(&fixture("replicate/succeeded.json")).unwrap();
    let failed: Value = serde_json::from_str(&fixture("replicate/failed.json")).unwrap();
    let events = sse_events("replicate/stream.sse");
    let up = MockUpstream::start(move |r| {
        let base = b.get().cloned().unwrap_or_default();
        let started = json!({"id": "p1", "status": "starting", "output": null,
            "urls": {"get": format!("{base}/v1/predictions/p1"),
                "stream": format!("{base}/stream/p1"),
                "cancel": format!("{base}/v1/predictions/p1/cancel")}});
        match (r.method.as_str(), r.path.as_str()) {
            ("POST", p) if p.contains("/broken/") => Reply::json(201, failed.clone()),
            ("POST", p) if p.contains("/flux-schnell/") => Reply::json(
                201,
                json!({"id": "img1", "status": "succeeded",
                    "output": [format!("{base}/files/out.webp")],
                    "urls": {"get": format!("{base}/v1/predictions/img1")}}),
            ),
            ("POST", _) => Reply::json(201, started),
            ("GET", "/v1/predictions/p1") => Reply::json(200, succeeded.clone()),
            ("GET", "/stream/p1") => Reply::sse(&events),
            ("GET", "/files/out.webp") => Reply {
                status: 200,
                content_type: "image/webp".into(),
                parts: vec![(std::time::Duration::ZERO, b"RIFF-fake-webp".to_vec())],
                drop_at_end: false,
            },
            _ => Reply::json(
                404,
                json!({"title": "Not found", "detail": "no", "status": 404}),
            ),
        }
    })
    .await;
    base.set(up.url.clone()).unwrap();
    let model = "meta/meta-llama-3-8b-instruct";
    let flux = "black-forest-labs/flux-schnell";
    channel_with(&app, &up.url, &format!("{model},acme/broken,{flux}"), |c| {
        c.r#type = 46;
        c.key = "r8_test".into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, tk) = token(&app, uid, None).await;
    let body = json!({"model": model, "max_tokens": 64, "messages": [
        {"role": "system", "content": "Be funny."}, {"role": "user", "content": "Tell me a joke"}]});
    let res = post(&app, &tk, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "Why did the chicken cross?"
    );
    let reqs = up.requests();
    let p = &reqs[0];
    assert_eq!(p.path, format!("/v1/models/{model}/predictions"));
    assert_eq!(p.header("authorization"), Some("Bearer r8_test"));
    assert_eq!(p.header("prefer"), Some("wait"));
    assert_eq!(
        p.json(),
        json!({"input": {"prompt": "user: Tell me a joke\n", "system_prompt": "Be funny.",
            "max_tokens": 64, "temperature": 1.0, "top_p": 1.0, "presence_penalty": 0.0,
            "frequency_penalty": 0.0}})
    );
    // Not done within the wait: polled at urls.get.
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].path.as_str()),
        ("GET", "/v1/predictions/p1")
    );
    assert_eq!(reqs[1].header("authorization"), Some("Bearer r8_test"));

    let mut s = body.clone();
    s["stream"] = json!(true);
    let res = post(&app, &tk, "/v1/chat/completions", &s).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let (said, _) = streamed(&text);
    assert_eq!(said, "Why did the chicken cross?");
    assert!(text.contains("\"finish_reason\":\"stop\""));
    let reqs = up.requests();
    assert_eq!(reqs[2].json()["stream"], true);
    assert_eq!(reqs[2].header("prefer"), None);
    assert_eq!(
        (reqs[3].path.as_str(), reqs[3].header("accept")),
        ("/stream/p1", Some("text/event-stream"))
    );

    // A failed prediction is an error, refunded.
    settled(&app).await;
    let before = user_row(&app, uid).await.quota;
    let mut broken = body.clone();
    broken["model"] = json!("acme/broken");
    let res = post(&app, &tk, "/v1/chat/completions", &broken).await;
    assert_eq!(res.status(), 500);
    let e: Value = res.json().await.unwrap();
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("CUDA out of memory"), "{msg}");
    settled(&app).await;

    // Image models through /v1/images/generations: URLs, or the images fetched for b64_json.
    let res = post(
        &app,
        &tk,
        "/v1/images/generations",
        &json!({"model": flux, "prompt": "a lighthouse", "size": "1792x1024"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let img: Value = res.json().await.unwrap();
    assert_eq!(
        img["data"][0]["url"],
        json!(format!("{}/files/out.webp", up.url))
    );
    let sent = up
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/flux-schnell/"))
        .unwrap();
    assert_eq!(
        sent.json(),
        json!({"input": {"prompt": "a lighthouse", "aspect_ratio": "16:9"}})
    );
    assert_eq!(sent.header("prefer"), Some("wait"));
    let res = post(
        &app,
        &tk,
        "/v1/images/generations",
        &json!({"model": flux, "prompt": "a lighthouse", "response_format": "b64_json"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let img: Value = res.json().await.unwrap();
    assert_eq!(
        img["data"][0]["b64_json"],
        STANDARD.encode(b"RIFF-fake-webp")
    );
    settled(&app).await;
    let logs = consume_logs(&app, uid).await;
    let images: Vec<_> = logs.iter().filter(|l| l.model_name == flux).collect();
    let opts = app.state.options.load();
    let r = app.state.relay.ratios(&opts);
    let each = tollgate::billing::quota::image_quota(
        r.model_ratio(flux, 46) * r.group_ratio("default"),
        1.0,
        1,
    );
    assert_eq!(images.len(), 2);
    assert!(images.iter().all(|l| l.quota == each), "{each}");
    let image_total = 2 * each;
    let logs: Vec<_> = logs.into_iter().filter(|l| l.model_name != flux).collect();
    assert_eq!(logs.len(), 2);
    // Non-stream: Replicate's token counts; stream: counted locally.
    assert_eq!((logs[0].prompt_tokens, logs[0].completion_tokens), (12, 7));
    let counted = tollgate::tokenizer::count_text(model, "Why did the chicken cross?");
    assert!(logs[1].prompt_tokens > 0);
    assert_eq!(logs[1].completion_tokens, counted);
    let mut total = 0;
    for l in &logs {
        let q = expected_quota(&app, model, 46, l.prompt_tokens, l.completion_tokens);
        assert_eq!(l.quota, q);
        total += q;
    }
    assert_eq!(
        user_row(&app, uid).await.quota,
        1_000_000 - total - image_total
    );
    assert_eq!(before, 1_000_000 - total, "the failure was refunded");
    app.finish().await;
}

async fn refused_credentials_are_401s_that_disable_the_channel(backend: Backend) {
    use tollgate::store::channels::{STATUS_AUTO_DISABLED, STATUS_ENABLED};
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    set_option(&app, "AutomaticDisableChannelEnabled", "true").await;
    // Baidu: the token endpoint refuses the client credentials.
    let up = MockUpstream::start(|r| {
        if r.path.starts_with("/oauth/2.0/token") {
            Reply::json(
                401,
                json!({"error": "invalid_client", "error_description": "unknown client id"}),
            )
        } else {
            Reply::json(
                500,
                json!({"error_code": 1, "error_msg": "must not be called"}),
            )
        }
    })
    .await;
    let baidu = channel_with(&app, &up.url, "ERNIE-Speed-8K", |c| {
        c.r#type = 15;
        c.key = format!("bad-{}|secret", uuid::Uuid::new_v4().simple());
    })
    .await;
    // Xunfei: a wrong APISecret; the mock rejects the handshake as Xunfei does.
    let mock = spark_mock(vec![]).await;
    let spark = channel_with(&app, &mock.url, "Spark-Lite", |c| {
        c.r#type = 18;
        c.key = "app-1|wrong-secret|spark-key".into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, tk) = token(&app, uid, None).await;
    for (model, channel, code) in [
        ("ERNIE-Speed-8K", baidu, "invalid_client"),
        ("Spark-Lite", spark, ""),
    ] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        let res = post(&app, &tk, "/v1/chat/completions", &body).await;
        assert_eq!(res.status(), 401, "{model}");
        let e: Value = res.json().await.unwrap();
        if !code.is_empty() {
            assert_eq!(e["error"]["code"], code);
        }
        let msg = e["error"]["message"].as_str().unwrap_or("");
        assert!(!msg.contains("secret"), "{msg}");
        eventually(|| {
            let app = &app;
            async move { channel_row(app, channel).await.status == STATUS_AUTO_DISABLED }
        })
        .await;
    }
    assert!(
        up.requests().iter().all(|r| r.path.starts_with("/oauth/")),
        "no chat call without a token"
    );
    assert!(mock.received.lock().unwrap().is_empty());
    settled(&app).await;
    assert!(consume_logs(&app, uid).await.is_empty());
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000, "refunded");
    assert_ne!(STATUS_ENABLED, STATUS_AUTO_DISABLED);
    app.finish().await;
}
