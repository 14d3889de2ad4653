//! The /v1 relay against an OpenAI-format mock upstream: endpoints, errors, retries, pinning,
//! auto-disable. Expected quotas are computed by hand in each test.

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::db_test;
use crate::helpers::{Backend, spawn_app, spawn_app_with};
use crate::mock_upstream::{MockUpstream, Reply, chat_completion};
use crate::relay_helpers::*;

db_test!(
    chat_is_passed_through_and_billed_exactly,
    token_errors_use_one_api_messages,
    quota_refusals_and_no_channel,
    retries_go_to_another_channel_on_5xx_and_429_not_400,
    each_attempt_sends_its_channel_s_own_body,
    pinning_is_for_admins_only,
    auto_disable_on_invalid_key,
    other_endpoints_are_billed,
    models_and_dashboard,
    not_implemented_routes,
    model_mapping_and_system_prompt_apply_before_sending_and_pricing,
    metric_monitor_disables_a_failing_channel,
    relay_proxy_carries_upstream_calls,
    subnet_follows_x_forwarded_for_from_a_trusted_proxy,
);

/// A token's subnet is checked against the rightmost `X-Forwarded-For` address that is not a
/// trusted proxy when the peer is one (`TRUSTED_PROXIES`), and against the peer itself otherwise.
async fn subnet_follows_x_forwarded_for_from_a_trusted_proxy(backend: Backend) {
    let up = MockUpstream::start(|_| Reply::json(200, chat_completion("hi", 5, 2))).await;
    let Some(app) = spawn_app_with(backend, &[("TRUSTED_PROXIES", "127.0.0.1/32")]).await else {
        return;
    };
    channel(&app, &up.url, "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, office) = token_with(&app, uid, None, |t| t.subnet = "10.0.0.0/8".into()).await;
    let (_, local) = token_with(&app, uid, None, |t| t.subnet = "127.0.0.0/8".into()).await;
    // The status of a chat request with `key` and these headers (a name may repeat: one line each).
    let send = async |key: &str, headers: &[(&str, &str)]| {
        let mut rb = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(format!("sk-{key}"))
            .json(&chat_body());
        for (name, value) in headers {
            rb = rb.header(*name, *value);
        }
        rb.send().await.unwrap().status().as_u16()
    };
    const XFF: &str = "X-Forwarded-For";
    assert_eq!(send(&office, &[(XFF, "10.1.2.3, 127.0.0.1")]).await, 200);
    assert_eq!(send(&local, &[(XFF, "10.1.2.3")]).await, 403);
    // The proxy appends the address it saw: entries left of it are whatever the client wrote,
    // so a spoofed first entry must not pass the subnet check (as gin's ClientIP).
    assert_eq!(send(&office, &[(XFF, "10.9.9.9, 8.8.8.8")]).await, 403);
    // A proxy that adds a header line of its own (HAProxy's `option forwardfor`) instead of
    // appending to the client's: the lines are one list, the proxy's line last.
    let two_lines = [(XFF, "10.9.9.9"), (XFF, "8.8.8.8")];
    assert_eq!(send(&office, &two_lines).await, 403);
    // A proxy that sets only X-Real-IP (a common nginx setup): gin's ClientIP reads it when
    // X-Forwarded-For is absent, and so does Tollgate, from a trusted peer only.
    assert_eq!(send(&office, &[("X-Real-IP", "10.1.2.3")]).await, 200);
    assert_eq!(send(&local, &[("X-Real-IP", "10.1.2.3")]).await, 403);
    assert_eq!(send(&office, &[]).await, 403);
    assert_eq!(send(&local, &[]).await, 200);
    app.finish().await;
}

/// `RELAY_PROXY`: upstream calls go through the proxy. The channel's host does not resolve, so
/// only a proxied call can succeed; the mock, acting as the proxy, sees the absolute URL.
async fn relay_proxy_carries_upstream_calls(backend: Backend) {
    let proxy = MockUpstream::start(|_| Reply::json(200, chat_completion("via proxy", 5, 2))).await;
    let Some(app) = spawn_app_with(backend, &[("RELAY_PROXY", proxy.url.as_str())]).await else {
        return;
    };
    channel(&app, "http://upstream.invalid", "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let res = post(&app, &key, "/v1/chat/completions", &chat_body()).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let seen = proxy.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "http://upstream.invalid/v1/chat/completions");
    app.finish().await;
}

fn chat_body() -> Value {
    json!({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100})
}

async fn chat_is_passed_through_and_billed_exactly(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("hello", 10, 20)))
        .mount(&mock)
        .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (tid, key) = token(&app, uid, Some(500_000)).await;
    let cid = channel(&app, &mock.uri(), "gpt-3.5-turbo").await;

    let res = post(&app, &key, "/v1/chat/completions", &chat_body()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "hello");
    // The body went upstream unchanged, with the channel's key.
    let reqs = mock.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        serde_json::from_slice::<Value>(&reqs[0].body).unwrap(),
        chat_body()
    );
    let key_hdr = reqs[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(key_hdr.starts_with("Bearer upstream-key-"), "{key_hdr}");

    settled(&app).await;
    // gpt-3.5-turbo: ratio 0.25, completion ratio 3: ceil(0.25 * (10 + 20*3)) = ceil(17.5) = 18
    let u = user_row(&app, uid).await;
    assert_eq!(u.quota, 1_000_000 - 18);
    assert_eq!(u.used_quota, 18);
    assert_eq!(u.request_count, 1);
    let t = token_row(&app, tid).await;
    assert_eq!(t.remain_quota, 500_000 - 18);
    assert_eq!(t.used_quota, 18);
    assert_eq!(channel_row(&app, cid).await.used_quota, 18);
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 1);
    let l = &logs[0];
    assert_eq!(
        (l.quota, l.prompt_tokens, l.completion_tokens),
        (18, 10, 20)
    );
    assert_eq!(l.model_name, "gpt-3.5-turbo");
    assert_eq!(l.channel_id, cid);
    assert_eq!(l.token_id, tid);
    assert_eq!(l.token_name, "test-token");
    assert!(!l.is_stream);
    assert!(!l.request_id.is_empty());
    assert!(l.content.contains("0.25"), "{}", l.content);
    assert!(!l.username.is_empty());
    app.finish().await;
}

async fn token_errors_use_one_api_messages(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mock = MockServer::start().await;
    channel(&app, &mock.uri(), "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;

    let check = |res: reqwest::Response, status: u16, needle: &'static str| async move {
        assert_eq!(res.status(), status);
        let b: Value = res.json().await.unwrap();
        let msg = b["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(needle), "{msg}");
        b
    };
    // No key / unknown key: 401.
    let res = app
        .client
        .post(app.url("/v1/chat/completions"))
        .json(&chat_body())
        .send()
        .await
        .unwrap();
    check(res, 401, "未提供令牌").await;
    check(
        post(&app, "nope", "/v1/chat/completions", &chat_body()).await,
        401,
        "无效的令牌",
    )
    .await;
    // Disabled, expired, exhausted tokens: 401 as One API.
    let (_, k) = token_with(&app, uid, None, |_| {}).await;
    sqlx::query(
        app.db()
            .sql(r#"UPDATE tokens SET status = 2 WHERE "key" = ?"#),
    )
    .bind(k.clone())
    .execute(&app.db().pool)
    .await
    .unwrap();
    check(
        post(&app, &k, "/v1/chat/completions", &chat_body()).await,
        401,
        "该令牌状态不可用",
    )
    .await;
    let (_, k) = token_with(&app, uid, None, |t| t.expired_time = 1000).await;
    check(
        post(&app, &k, "/v1/chat/completions", &chat_body()).await,
        401,
        "该令牌已过期",
    )
    .await;
    let (_, k) = token(&app, uid, Some(0)).await;
    check(
        post(&app, &k, "/v1/chat/completions", &chat_body()).await,
        401,
        "额度已用尽",
    )
    .await;
    // Model allow-list and subnet: 403.
    let (_, k) = token_with(&app, uid, None, |t| t.models = "gpt-4".into()).await;
    check(
        post(&app, &k, "/v1/chat/completions", &chat_body()).await,
        403,
        "该令牌无权使用模型：gpt-3.5-turbo",
    )
    .await;
    let (_, k) = token_with(&app, uid, None, |t| t.subnet = "10.0.0.0/8".into()).await;
    check(
        post(&app, &k, "/v1/chat/completions", &chat_body()).await,
        403,
        "该令牌只能在指定网段使用",
    )
    .await;
    let (_, k) = token_with(&app, uid, None, |t| t.subnet = "127.0.0.0/8".into()).await;
    assert_ne!(
        post(&app, &k, "/v1/chat/completions", &chat_body())
            .await
            .status(),
        403
    );
    // Disabled user: 403.
    let banned = user(&app, 1_000_000, "default", 1).await;
    sqlx::query(app.db().sql("UPDATE users SET status = 2 WHERE id = ?"))
        .bind(banned)
        .execute(&app.db().pool)
        .await
        .unwrap();
    let (_, k) = token(&app, banned, None).await;
    let b = check(
        post(&app, &k, "/v1/chat/completions", &chat_body()).await,
        403,
        "用户已被封禁",
    )
    .await;
    assert_eq!(b["error"]["type"], "one_api_error");
    app.finish().await;
}

async fn quota_refusals_and_no_channel(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("x", 1, 1)))
        .mount(&mock)
        .await;
    channel(&app, &mock.uri(), "gpt-3.5-turbo").await;
    // Estimate: ceil(0.25 * (8 + 100)) = 27 (8 prompt tokens for one "hi" message).
    let poor = user(&app, 26, "default", 1).await;
    let (_, k) = token(&app, poor, None).await;
    let res = post(&app, &k, "/v1/chat/completions", &chat_body()).await;
    assert_eq!(res.status(), 403);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["code"], "insufficient_user_quota");
    assert_eq!(user_row(&app, poor).await.quota, 26);

    let rich = user(&app, 1_000_000, "default", 1).await;
    let (tid, k) = token(&app, rich, Some(26)).await;
    let res = post(&app, &k, "/v1/chat/completions", &chat_body()).await;
    assert_eq!(res.status(), 403);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["code"], "pre_consume_token_quota_failed");
    // The failed token step rolled the user step back.
    assert_eq!(user_row(&app, rich).await.quota, 1_000_000);
    assert_eq!(token_row(&app, tid).await.remain_quota, 26);

    // Exactly enough: 27 reserved, 1 prompt + 1 completion charged: ceil(0.25 * (1 + 3)) = 1.
    let exact = user(&app, 27, "default", 1).await;
    let (_, k) = token(&app, exact, None).await;
    assert_eq!(
        post(&app, &k, "/v1/chat/completions", &chat_body())
            .await
            .status(),
        200
    );
    settled(&app).await;
    assert_eq!(user_row(&app, exact).await.quota, 26);

    // No channel for the model: 503 with One API's message.
    let res = post(
        &app,
        &k,
        "/v1/chat/completions",
        &json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(res.status(), 503);
    let b: Value = res.json().await.unwrap();
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("当前分组 default 下对于模型 gpt-4 无可用渠道")
    );
    // Nothing was reserved for it.
    settled(&app).await;
    assert_eq!(user_row(&app, exact).await.quota, 26);
    app.finish().await;
}

/// The relay lets go of the parsed body while an OpenAI channel answers and parses it again for
/// a retry: each attempt still gets the whole request with its own channel's edits, whether the
/// channel before it passed the body on (OpenAI) or translated it (Anthropic).
async fn each_attempt_sends_its_channel_s_own_body(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    set_option(&app, "RetryTimes", "2").await;
    let failing = async || {
        let m = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(500)
                    .set_body_json(json!({"error":{"message":"boom","type":"server_error"}})),
            )
            .mount(&m)
            .await;
        m
    };
    let (openai_bad, anthropic_bad) = (failing().await, failing().await);
    let good = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok", 10, 10)))
        .mount(&good)
        .await;
    channel_with(&app, &openai_bad.uri(), "gpt-3.5-turbo", |c| {
        c.priority = 20;
        c.model_mapping = r#"{"gpt-3.5-turbo":"first-model"}"#.into();
    })
    .await;
    channel_with(&app, &anthropic_bad.uri(), "gpt-3.5-turbo", |c| {
        c.priority = 10;
        c.r#type = 14;
        c.model_mapping = r#"{"gpt-3.5-turbo":"claude-3-haiku-20240307"}"#.into();
    })
    .await;
    channel_with(&app, &good.uri(), "gpt-3.5-turbo", |c| {
        c.model_mapping = r#"{"gpt-3.5-turbo":"third-model"}"#.into();
        c.system_prompt = "be brief".into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let mut body = chat_body();
    body["temperature"] = json!(0.5);
    let res = post(&app, &k, "/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 200);
    let sent = async |m: &MockServer| -> Value {
        let reqs = m.received_requests().await.unwrap();
        assert_eq!(reqs.len(), 1);
        serde_json::from_slice(&reqs[0].body).unwrap()
    };
    let first = sent(&openai_bad).await;
    assert_eq!(first["model"], "first-model");
    assert_eq!(first["messages"], body["messages"]);
    assert_eq!(first["temperature"], 0.5);
    // Anthropic's Messages format, from the request parsed again.
    let second = sent(&anthropic_bad).await;
    assert_eq!(second["model"], "claude-3-haiku-20240307");
    assert_eq!(second["messages"][0]["role"], "user");
    assert_eq!(second["temperature"], 0.5);
    let third = sent(&good).await;
    assert_eq!(third["model"], "third-model");
    assert_eq!(
        third["messages"][0],
        json!({"role":"system","content":"be brief"})
    );
    assert_eq!(third["messages"][1], body["messages"][0]);
    assert_eq!(third["temperature"], 0.5);
    settled(&app).await;
    assert_eq!(consume_logs(&app, uid).await.len(), 1, "billed once");
    app.finish().await;
}

async fn retries_go_to_another_channel_on_5xx_and_429_not_400(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    set_option(&app, "RetryTimes", "2").await;
    let bad = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error":{"message":"boom","type":"server_error"}})),
        )
        .mount(&bad)
        .await;
    let busy = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(json!({"error":{"message":"slow down"}})),
        )
        .mount(&busy)
        .await;
    let good = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("ok", 10, 10)))
        .mount(&good)
        .await;
    channel_with(&app, &bad.uri(), "gpt-3.5-turbo", |c| c.priority = 20).await;
    channel_with(&app, &busy.uri(), "gpt-3.5-turbo", |c| c.priority = 10).await;
    let good_id = channel_with(&app, &good.uri(), "gpt-3.5-turbo", |c| c.priority = 0).await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let res = post(&app, &k, "/v1/chat/completions", &chat_body()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(bad.received_requests().await.unwrap().len(), 1);
    assert_eq!(busy.received_requests().await.unwrap().len(), 1);
    settled(&app).await;
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 1, "billed once");
    assert_eq!(logs[0].channel_id, good_id);
    // ceil(0.25 * (10 + 30)) = 10
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 10);

    // A 400 is not retried and is passed back; the reservation is refunded.
    let app2_bad = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error":{"message":"bad input","type":"invalid_request_error","code":"x"}}),
        ))
        .mount(&app2_bad)
        .await;
    channel_with(&app, &app2_bad.uri(), "m400", |c| c.priority = 5).await;
    let other = MockServer::start().await;
    channel_with(&app, &other.uri(), "m400", |c| c.priority = 0).await;
    let res = post(
        &app,
        &k,
        "/v1/chat/completions",
        &json!({"model":"m400","messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let b: Value = res.json().await.unwrap();
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("bad input")
    );
    assert!(other.received_requests().await.unwrap().is_empty());
    settled(&app).await;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 10);

    // All channels fail with 429: the client sees One API's saturation message.
    let res = post(
        &app,
        &k,
        "/v1/chat/completions",
        &json!({"model":"m429","messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(res.status(), 503);
    let busy2 = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error":{"message":"slow"}})))
        .mount(&busy2)
        .await;
    channel(&app, &busy2.uri(), "m429").await;
    let res = post(
        &app,
        &k,
        "/v1/chat/completions",
        &json!({"model":"m429","messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(res.status(), 429);
    let b: Value = res.json().await.unwrap();
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("当前分组上游负载已饱和")
    );
    settled(&app).await;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 10);
    app.finish().await;
}

async fn pinning_is_for_admins_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let a = MockServer::start().await;
    let b = MockServer::start().await;
    for m in [&a, &b] {
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("x", 1, 1)))
            .mount(m)
            .await;
    }
    channel_with(&app, &a.uri(), "gpt-3.5-turbo", |c| c.priority = 10).await;
    let low = channel_with(&app, &b.uri(), "gpt-3.5-turbo", |c| c.priority = 0).await;
    let admin = user(&app, 1_000_000, "default", 10).await;
    let (_, k) = token(&app, admin, None).await;
    let res = post(
        &app,
        &format!("{k}-{low}"),
        "/v1/chat/completions",
        &chat_body(),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(b.received_requests().await.unwrap().len(), 1);
    assert!(a.received_requests().await.unwrap().is_empty());

    let common = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, common, None).await;
    let res = post(
        &app,
        &format!("{k}-{low}"),
        "/v1/chat/completions",
        &chat_body(),
    )
    .await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("普通用户不支持指定渠道")
    );
    app.finish().await;
}

async fn auto_disable_on_invalid_key(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    set_option(&app, "AutomaticDisableChannelEnabled", "true").await;
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", "Bearer dead"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}})))
        .mount(&mock)
        .await;
    let cid = channel_with(&app, &mock.uri(), "gpt-3.5-turbo", |c| {
        c.key = "dead".into()
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let res = post(&app, &k, "/v1/chat/completions", &chat_body()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(channel_row(&app, cid).await.status, 3);
    let res = post(&app, &k, "/v1/chat/completions", &chat_body()).await;
    assert_eq!(res.status(), 503);
    settled(&app).await;
    assert_eq!(
        user_row(&app, uid).await.quota,
        1_000_000,
        "failures are refunded"
    );
    assert!(consume_logs(&app, uid).await.is_empty());

    // Without the option the channel stays enabled.
    set_option(&app, "AutomaticDisableChannelEnabled", "false").await;
    let cid2 = channel_with(&app, &mock.uri(), "m2", |c| c.key = "dead".into()).await;
    let res = post(
        &app,
        &k,
        "/v1/chat/completions",
        &json!({"model":"m2","messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(channel_row(&app, cid2).await.status, 1);
    app.finish().await;
}

async fn other_endpoints_are_billed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mock = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],"model":"text-embedding-ada-002","usage":{"prompt_tokens":1000,"total_tokens":1000}})))
        .mount(&mock).await;
    Mock::given(method("POST")).and(path("/v1/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id":"c","object":"text_completion","choices":[{"text":"yes","index":0}],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}})))
        .mount(&mock).await;
    Mock::given(method("POST"))
        .and(path("/v1/moderations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id":"m","model":"text-moderation-stable","results":[{"flagged":false}]}),
        ))
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"created":1,"data":[{"url":"http://x/1.png"}]})),
        )
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "audio/mpeg")
                .set_body_bytes(b"ID3audio".to_vec()),
        )
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/audio/transcriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"text":"hello world"})))
        .mount(&mock)
        .await;
    channel(
        &app,
        &mock.uri(),
        "text-embedding-ada-002,davinci-002,text-moderation-stable,dall-e-3,tts-1,whisper-1",
    )
    .await;
    let uid = user(&app, 10_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    let mut expected = 0;

    // embeddings: 0.05 * 1000 = 50
    let res = post(
        &app,
        &k,
        "/v1/embeddings",
        &json!({"model":"text-embedding-ada-002","input":"hello"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    expected += 50;
    // the engines alias takes the model from the path
    let res = post(
        &app,
        &k,
        "/v1/engines/text-embedding-ada-002/embeddings",
        &json!({"input":"hello"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    expected += 50;
    // completions: davinci-002 ratio 1, completion 1: 4 + 2 = 6
    let res = post(
        &app,
        &k,
        "/v1/completions",
        &json!({"model":"davinci-002","prompt":"say yes"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    expected += 6;
    // moderations without usage: tokens of the input ("hello world" = 2) * 0.1 -> ceil(0.2) = 1
    let res = post(&app, &k, "/v1/moderations", &json!({"input":"hello world"})).await;
    assert_eq!(res.status(), 200);
    expected += 1;
    // images: dall-e-3 ratio 20 * size 1 * 1000 = 20000
    let res = post(
        &app,
        &k,
        "/v1/images/generations",
        &json!({"model":"dall-e-3","prompt":"a cat"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    expected += 20_000;
    let res = post(
        &app,
        &k,
        "/v1/images/generations",
        &json!({"model":"dall-e-3","prompt":"a cat","size":"3x3"}),
    )
    .await;
    assert_eq!(res.status(), 400);
    // speech: tts-1 ratio 7.5 * 10 bytes = 75
    let res = post(
        &app,
        &k,
        "/v1/audio/speech",
        &json!({"model":"tts-1","input":"0123456789","voice":"alloy"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "audio/mpeg");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"ID3audio");
    expected += 75;
    // transcription (multipart passed through): whisper-1 ratio 15 * 2 tokens = 30
    let form = reqwest::multipart::Form::new()
        .text("model", "whisper-1")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"RIFFxxxx".to_vec()).file_name("a.wav"),
        );
    let res = app
        .client
        .post(app.url("/v1/audio/transcriptions"))
        .bearer_auth(format!("sk-{k}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sent = mock.received_requests().await.unwrap();
    let up = sent
        .iter()
        .find(|r| r.url.path() == "/v1/audio/transcriptions")
        .unwrap();
    assert!(String::from_utf8_lossy(&up.body).contains("RIFFxxxx"));
    expected += 30;

    settled(&app).await;
    let u = user_row(&app, uid).await;
    assert_eq!(u.quota, 10_000_000 - expected);
    assert_eq!(logged_quota(&app, uid).await, expected);
    assert_eq!(u.request_count, 7);
    app.finish().await;
}

async fn models_and_dashboard(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    channel(&app, "http://127.0.0.1:9", "gpt-4,gpt-3.5-turbo,my-model").await;
    channel_with(&app, "http://127.0.0.1:9", "vip-only", |c| {
        c.group = "vip".into()
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, Some(250_000)).await;
    let b: Value = get(&app, &k, "/v1/models").await.json().await.unwrap();
    let ids: Vec<&str> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["gpt-3.5-turbo", "gpt-4", "my-model"]);
    assert_eq!(b["data"][2]["owned_by"], "custom");
    let (_, k2) = token_with(&app, uid, None, |t| t.models = "gpt-4".into()).await;
    let b: Value = get(&app, &k2, "/v1/models").await.json().await.unwrap();
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    let b: Value = get(&app, &k, "/v1/models/gpt-4")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["id"], "gpt-4");
    let res = get(&app, &k, "/v1/models/nope").await;
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["code"], "model_not_found");

    // CORS as One API: preflight without a key, origin echoed on answers.
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/chat/completions"))
        .header("Origin", "https://chat.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://chat.example"
    );
    let res = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(format!("sk-{k}"))
        .header("Origin", "https://chat.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://chat.example"
    );

    // 250000 quota = $0.5
    for p in [
        "/dashboard/billing/subscription",
        "/v1/dashboard/billing/subscription",
    ] {
        let b: Value = get(&app, &k, p).await.json().await.unwrap();
        assert_eq!(b["object"], "billing_subscription");
        assert_eq!(b["hard_limit_usd"], 0.5);
    }
    let b: Value = get(&app, &k, "/dashboard/billing/usage")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["total_usage"], 0.0);
    app.finish().await;
}

async fn not_implemented_routes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    for p in ["/v1/images/edits", "/v1/files", "/v1/assistants"] {
        let res = post(&app, &k, p, &json!({})).await;
        assert_eq!(res.status(), 501, "{p}");
        let b: Value = res.json().await.unwrap();
        assert_eq!(b["error"]["code"], "api_not_implemented");
    }
    // One API's request validation: 400 before anything is reserved.
    for (p, b) in [
        (
            "/v1/chat/completions",
            json!({"model":"gpt-4","messages":[]}),
        ),
        ("/v1/completions", json!({"model":"gpt-4"})),
        ("/v1/embeddings", json!({"model":"text-embedding-ada-002"})),
        (
            "/v1/chat/completions",
            json!({"messages":[{"role":"user","content":"hi"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model":"gpt-4","max_tokens":-1,"messages":[{"role":"user","content":"hi"}]}),
        ),
    ] {
        let res = post(&app, &k, p, &b).await;
        assert_eq!(res.status(), 400, "{p} {b}");
    }
    let res = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(format!("sk-{k}"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["type"], "invalid_request_error");
    // Oversized body: 413 in OpenAI's shape.
    let big = "x".repeat(2 * 1024 * 1024);
    let app2 = crate::helpers::start_on(
        crate::helpers::TestDatabase::create(backend).await,
        &[("RELAY_MAX_BODY_MB", "1")],
    )
    .await;
    let uid2 = user(&app2, 1_000_000, "default", 1).await;
    let (_, k2) = token(&app2, uid2, None).await;
    let res = post(
        &app2,
        &k2,
        "/v1/chat/completions",
        &json!({"model":"gpt-4","messages":[{"role":"user","content":big}]}),
    )
    .await;
    assert_eq!(res.status(), 413);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["code"], "payload_too_large");
    app2.finish().await;
    app.finish().await;
}

async fn model_mapping_and_system_prompt_apply_before_sending_and_pricing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("x", 10, 10)))
        .mount(&mock)
        .await;
    let cid = channel_with(&app, &mock.uri(), "gpt-3.5-turbo", |c| {
        c.model_mapping = r#"{"gpt-3.5-turbo":"gpt-4"}"#.into();
        c.system_prompt = "be brief".into();
    })
    .await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    assert_eq!(
        post(&app, &k, "/v1/chat/completions", &chat_body())
            .await
            .status(),
        200
    );
    let sent: Value =
        serde_json::from_slice(&mock.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent["model"], "gpt-4");
    assert_eq!(
        sent["messages"][0],
        json!({"role":"system","content":"be brief"})
    );
    assert_eq!(sent["messages"][1]["content"], "hi");
    settled(&app).await;
    let logs = consume_logs(&app, uid).await;
    // Priced as gpt-4: 15 * (10 + 10 * 2) = 450
    assert_eq!(logs[0].quota, 450);
    assert_eq!(logs[0].model_name, "gpt-4");
    assert_eq!(logs[0].channel_id, cid);
    assert!(logs[0].system_prompt_reset);
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000 - 450);

    // GroupRatio applies: vip at 0.5 -> ceil(0.5 * 450) = 225
    set_option(&app, "GroupRatio", r#"{"default":1,"vip":0.5}"#).await;
    channel_with(&app, &mock.uri(), "gpt-4", |c| c.group = "vip".into()).await;
    let vip = user(&app, 1_000_000, "vip", 1).await;
    let (_, k) = token(&app, vip, None).await;
    let mut b = chat_body();
    b["model"] = json!("gpt-4");
    assert_eq!(
        post(&app, &k, "/v1/chat/completions", &b).await.status(),
        200
    );
    settled(&app).await;
    assert_eq!(user_row(&app, vip).await.quota, 1_000_000 - 225);
    app.finish().await;
}

async fn metric_monitor_disables_a_failing_channel(backend: Backend) {
    let Some(app) = spawn_app_with(
        backend,
        &[
            ("ENABLE_METRIC", "true"),
            ("METRIC_QUEUE_SIZE", "4"),
            ("METRIC_SUCCESS_RATE_THRESHOLD", "0.8"),
        ],
    )
    .await
    else {
        return;
    };
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(json!({"error":{"message":"overloaded"}})),
        )
        .mount(&mock)
        .await;
    let cid = channel(&app, &mock.uri(), "gpt-3.5-turbo").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (_, k) = token(&app, uid, None).await;
    for _ in 0..4 {
        assert_eq!(
            post(&app, &k, "/v1/chat/completions", &chat_body())
                .await
                .status(),
            503
        );
    }
    assert_eq!(channel_row(&app, cid).await.status, 3);
    let res = post(&app, &k, "/v1/chat/completions", &chat_body()).await;
    let b: Value = res.json().await.unwrap();
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("无可用渠道"),
        "{b}"
    );
    // User-side refusals never count against a channel.
    settled(&app).await;
    assert_eq!(user_row(&app, uid).await.quota, 1_000_000);
    app.finish().await;
}
