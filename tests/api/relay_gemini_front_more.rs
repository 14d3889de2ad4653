//! The Gemini front door's `:countTokens` (counted locally, free), `:embedContent` and
//! `:batchEmbedContents` (the relay's embeddings call, billed as embeddings; passed through
//! untouched to Gemini channels), with Gemini-shaped errors.

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, TestApp, spawn_app};
use crate::mock_upstream::{MockUpstream, Reply};
use crate::relay_helpers::*;

db_test!(
    count_tokens_is_local_and_free,
    embed_content_on_an_openai_channel,
    embeddings_pass_through_to_gemini,
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

async fn count_tokens_is_local_and_free(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|_| Reply::json(500, json!({}))).await;
    channel(&app, &up.url, "gemini-2.0-flash").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let path = "/v1beta/models/gemini-2.0-flash:countTokens";
    let body =
        json!({"contents": [{"role": "user", "parts": [{"text": "How many tokens is this?"}]}]});
    let res = send(&app, &key, path, &body).await;
    assert_eq!(res.status(), 200);
    let n = res.json::<Value>().await.unwrap()["totalTokens"]
        .as_i64()
        .unwrap();
    assert!(n > 5, "{n}");
    // The wrapped form counts the same.
    let wrapped = json!({"generateContentRequest": body});
    let res = send(&app, &key, path, &wrapped).await;
    assert_eq!(res.json::<Value>().await.unwrap()["totalTokens"], n);
    // Gemini-shaped errors: a bad body, and a model the token may not use.
    let res = send(&app, &key, path, &json!({"contents": 1})).await;
    assert_eq!(res.status(), 400);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["status"], "INVALID_ARGUMENT", "{e}");
    assert_eq!(up.count(), 0);
    settled(&app).await;
    assert!(consume_logs(&app, uid).await.is_empty());
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000);
    app.finish().await;
}

async fn embed_content_on_an_openai_channel(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|r| {
        let n = r.json()["input"].as_array().map(Vec::len).unwrap_or(1);
        Reply::json(
            200,
            json!({"object": "list", "model": "text-embedding-3-small",
                "data": (0..n).map(|i| json!({"object": "embedding", "index": i, "embedding": [i as f64, 0.5]})).collect::<Vec<_>>(),
                "usage": {"prompt_tokens": 1000 * n, "total_tokens": 1000 * n}}),
        )
    })
    .await;
    channel(&app, &up.url, "text-embedding-3-small").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let res = send(
        &app,
        &key,
        "/v1beta/models/text-embedding-3-small:embedContent",
        &json!({"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 2}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out, json!({"embedding": {"values": [0.0, 0.5]}}));
    let r = &up.requests()[0];
    assert_eq!(r.path, "/v1/embeddings");
    assert_eq!(
        r.json(),
        json!({"model": "text-embedding-3-small", "input": "hello", "dimensions": 2})
    );
    let res = send(
        &app,
        &key,
        "/v1beta/models/text-embedding-3-small:batchEmbedContents",
        &json!({"requests": [
            {"model": "models/text-embedding-3-small", "content": {"parts": [{"text": "a"}]}},
            {"model": "models/text-embedding-3-small", "content": {"parts": [{"text": "b"}]}}]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["embeddings"][1]["values"], json!([1.0, 0.5]));
    assert_eq!(up.requests()[1].json()["input"], json!(["a", "b"]));
    // Billed as embeddings with the upstream's usage: text-embedding-3-small's ratio 0.01,
    // 1000 and 2000 tokens -> 10 + 20.
    settled(&app).await;
    let logs = consume_logs(&app, uid).await;
    assert_eq!(
        logs.iter()
            .map(|l| (l.prompt_tokens, l.quota))
            .collect::<Vec<_>>(),
        vec![(1000, 10), (2000, 20)]
    );
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 30);
    app.finish().await;
}

async fn embeddings_pass_through_to_gemini(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let up = MockUpstream::start(|r| {
        if r.json()["content"]["parts"][0]["text"] == "bad" {
            Reply::json(
                400,
                json!({"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}),
            )
        } else if r.path.ends_with(":embedContent") {
            Reply::json(200, json!({"embedding": {"values": [0.1, 0.2, 0.3]}}))
        } else {
            Reply::json(
                200,
                json!({"embeddings": [{"values": [0.1]}, {"values": [0.2]}]}),
            )
        }
    })
    .await;
    channel_with(&app, &up.url, "gemini-embedding-001,my-embed", |c| {
        c.r#type = 24;
        c.key = "AIza-gem".into();
        c.model_mapping = r#"{"my-embed":"gemini-embedding-001"}"#.into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let one =
        json!({"content": {"parts": [{"text": "hello world"}]}, "taskType": "RETRIEVAL_QUERY"});
    let res = send(
        &app,
        &key,
        "/v1beta/models/gemini-embedding-001:embedContent",
        &one,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"embedding": {"values": [0.1, 0.2, 0.3]}})
    );
    let r = &up.requests()[0];
    assert_eq!(r.path, "/v1beta/models/gemini-embedding-001:embedContent");
    assert_eq!(r.header("x-goog-api-key"), Some("AIza-gem"));
    assert_eq!(r.json(), one, "passed through untouched");

    // Batch, with the model mapped in the URL and in each request.
    let batch = json!({"requests": [
        {"model": "models/my-embed", "content": {"parts": [{"text": "a"}]}},
        {"model": "models/my-embed", "content": {"parts": [{"text": "b"}]}}]});
    let res = send(
        &app,
        &key,
        "/v1beta/models/my-embed:batchEmbedContents",
        &batch,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"embeddings": [{"values": [0.1]}, {"values": [0.2]}]})
    );
    let r = &up.requests()[1];
    assert_eq!(
        r.path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(
        r.json()["requests"][1],
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}})
    );

    // An upstream error comes back in Gemini's shape, refunded.
    let res = send(
        &app,
        &key,
        "/v1beta/models/gemini-embedding-001:embedContent",
        &json!({"content": {"parts": [{"text": "bad"}]}}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["status"], "INVALID_ARGUMENT", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key not valid")
    );
    // Gemini reports no usage for embeddings: the input is counted locally, priced with the
    // mapped model's ratio (not in the table: 30).
    settled(&app).await;
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 2);
    assert!(
        logs.iter()
            .all(|l| l.prompt_tokens > 0 && l.quota == 30 * l.prompt_tokens)
    );
    assert_eq!(
        user_row(&app, uid).await.quota,
        1_000_000 - logs.iter().map(|l| l.quota).sum::<i64>()
    );
    app.finish().await;
}
