//! `/metrics`: Prometheus text, parsed with a Prometheus parser; guarded by METRICS_TOKEN.

use crate::db_test;
use crate::helpers::{Backend, spawn_app, spawn_app_with};

db_test!(
    metrics_are_scraped_and_guarded,
    routes_are_labelled_by_template
);

async fn metrics_are_scraped_and_guarded(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("METRICS_TOKEN", "scrape-secret")]).await else {
        return;
    };
    app.get("/api/status").await;
    app.get("/api/no/such").await;

    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 401);
    let res = reqwest::Client::new()
        .get(app.url("/metrics"))
        .header("Authorization", "Bearer wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let res = reqwest::Client::new()
        .get(app.url("/metrics"))
        .header("Authorization", "Bearer scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    fn find<'a>(
        scrape: &'a prometheus_parse::Scrape,
        name: &'a str,
    ) -> impl Iterator<Item = &'a prometheus_parse::Sample> {
        scrape.samples.iter().filter(move |s| s.metric == name)
    }

    let status_hits: Vec<_> = find(&scrape, "tollgate_http_requests_total")
        .filter(|s| s.labels.get("route") == Some("/api/status"))
        .collect();
    assert!(!status_hits.is_empty(), "{text}");
    assert!(
        status_hits
            .iter()
            .all(|s| s.labels.get("family") == Some("api"))
    );
    assert!(
        find(&scrape, "tollgate_http_requests_total")
            .any(|s| s.labels.get("status") == Some("404")),
        "{text}"
    );
    assert!(
        find(&scrape, "tollgate_db_pool_connections")
            .any(|s| s.labels.get("db") == Some("main") && s.labels.get("state") == Some("max")),
        "{text}"
    );
    assert!(
        find(&scrape, "tollgate_channels").any(|s| s.labels.get("status") == Some("enabled")),
        "{text}"
    );
    assert!(
        text.contains("tollgate_http_request_duration_seconds_bucket"),
        "{text}"
    );
    app.finish().await;
}

/// Requests to one route with different ids count under the route's template, never under the
/// raw path (the per-worker memo is keyed by path).
async fn routes_are_labelled_by_template(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Read as text: prometheus_parse drops samples whose label values hold braces.
    let count = |text: &str| -> f64 {
        assert!(
            !text.contains("route=\"/api/token/98765"),
            "a raw path became a label: {text}"
        );
        text.lines()
            .filter(|l| l.starts_with("tollgate_http_requests_total{"))
            .filter(|l| l.contains("route=\"/api/token/{id}\"") && l.contains("status=\"401\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = count(&app.get("/metrics").await.text().await.unwrap());
    // The long path is past what the memo keeps: counted all the same.
    let long = format!("98765{}", "0".repeat(300));
    for id in ["987651", "987652", "987651", &long, &long] {
        let res = app.get(&format!("/api/token/{id}")).await;
        assert_eq!(res.status(), 401);
    }
    let after = count(&app.get("/metrics").await.text().await.unwrap());
    assert!(after - before >= 5.0, "{before} -> {after}");
    app.finish().await;
}

// ---- relay metrics ----------------------------------------------------------------------------
//
// Every test app in this process shares one recorder, so each case reads a counter before and
// after, on labels only this test uses: a unique model name, and channel ids moved to a random
// range (ids restart at 1 in every test database).

use std::time::Duration;

use serde_json::json;

use crate::mock_upstream::{MockUpstream, Reply, chat_completion, chat_stream};
use crate::relay_helpers::{channel_with, consume_logs, post, set_option, settled, token, user};

/// A parsed `/metrics` scrape.
struct Metrics(prometheus_parse::Scrape);

impl Metrics {
    async fn scrape(app: &crate::helpers::TestApp) -> Metrics {
        let res = app.get("/metrics").await;
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Metrics(prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text"))
    }

    /// The value of a counter (or a histogram's `_count`/`_sum`) with these labels; 0 when absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                other => panic!("{name} is not a scalar: {other:?}"),
            })
            .sum()
    }
}

fn unique_model(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A channel serving `model` with a random id of its own (see the note above).
async fn channel_for(
    app: &crate::helpers::TestApp,
    base_url: &str,
    model: &str,
    priority: i64,
) -> i64 {
    let id = channel_with(app, base_url, model, |c| c.priority = priority).await;
    let new_id = 1_000_000 + (uuid::Uuid::new_v4().as_u128() % 1_000_000_000) as i64;
    let db = app.db();
    for sql in [
        "UPDATE channels SET id = ? WHERE id = ?",
        "UPDATE abilities SET channel_id = ? WHERE channel_id = ?",
    ] {
        sqlx::query(db.sql(sql))
            .bind(new_id)
            .bind(id)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    tollgate::relay::reload_routing(&app.state).await.unwrap();
    new_id
}

fn chat(model: &str, stream: bool) -> serde_json::Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

db_test!(relay_calls_are_counted_timed_and_billed);

async fn relay_calls_are_counted_timed_and_billed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let upstream = MockUpstream::start(|r| {
        if r.json()["stream"] == true {
            let mut reply = Reply::sse(&chat_stream(&["Hel", "lo"], Some((5, 7)), true));
            // A slow tail: TTFB must not wait for it, latency must.
            reply.parts.last_mut().unwrap().0 = Duration::from_millis(300);
            reply
        } else {
            Reply::json(200, chat_completion("hello", 10, 20))
        }
    })
    .await;
    let plain = unique_model("plain");
    let streamed = unique_model("stream");
    let ch = channel_for(&app, &upstream.url, &format!("{plain},{streamed}"), 0).await;
    let uid = user(&app, 10_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let chs = ch.to_string();
    let before = Metrics::scrape(&app).await;

    let res = post(&app, &key, "/v1/chat/completions", &chat(&plain, false)).await;
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();
    let res = post(&app, &key, "/v1/chat/completions", &chat(&streamed, true)).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("[DONE]"), "{body}");
    settled(&app).await;
    // The stream's latency is recorded when its body ends, just after the client read it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = Metrics::scrape(&app).await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);

    for model in [plain.as_str(), streamed.as_str()] {
        let labels = [
            ("model", model),
            ("channel", chs.as_str()),
            ("status", "200"),
        ];
        assert_eq!(
            delta("tollgate_relay_requests_total", &labels),
            1.0,
            "{model}"
        );
        for h in [
            "tollgate_relay_latency_seconds_count",
            "tollgate_relay_ttfb_seconds_count",
        ] {
            assert_eq!(delta(h, &[("model", model)]), 1.0, "{h} {model}");
        }
    }
    let tokens = |model: &str, kind: &str| {
        delta("tollgate_tokens_total", &[("model", model), ("kind", kind)])
    };
    assert_eq!(tokens(&plain, "prompt"), 10.0);
    assert_eq!(tokens(&plain, "completion"), 20.0);
    assert_eq!(tokens(&streamed, "prompt"), 5.0);
    assert_eq!(tokens(&streamed, "completion"), 7.0);
    // Quota as billed in the consume logs.
    let logs = consume_logs(&app, uid).await;
    assert_eq!(logs.len(), 2);
    for l in &logs {
        assert!(l.quota > 0);
        assert_eq!(
            delta(
                "tollgate_quota_consumed_total",
                &[("model", l.model_name.as_str())]
            ),
            l.quota as f64,
            "{}",
            l.model_name
        );
    }
    // TTFB is the first chunk, latency the end of the body (after the 300 ms tail).
    let ttfb = delta("tollgate_relay_ttfb_seconds_sum", &[("model", &streamed)]);
    let latency = delta(
        "tollgate_relay_latency_seconds_sum",
        &[("model", &streamed)],
    );
    assert!(latency >= 0.3, "latency {latency}");
    assert!(ttfb < latency - 0.2, "ttfb {ttfb} latency {latency}");
    // No upstream error on this channel.
    assert_eq!(
        delta(
            "tollgate_upstream_errors_total",
            &[("channel", chs.as_str())]
        ),
        0.0
    );
    app.finish().await;
}

db_test!(failed_upstream_attempts_are_counted_by_channel_and_kind);

/// One call tries four channels: a closed port (connect), a slow one (timeout), one answering
/// 529, and a good one; each failed attempt is counted once, the call once with the channel that
/// answered.
async fn failed_upstream_attempts_are_counted_by_channel_and_kind(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("RELAY_TIMEOUT", "1")]).await else {
        return;
    };
    set_option(&app, "RetryTimes", "3").await;
    let model = unique_model("retry");
    let (_held, closed) = crate::helpers::refusing_url();
    let slow = MockUpstream::start(|_| {
        let mut r = Reply::json(200, chat_completion("late", 1, 1));
        r.parts[0].0 = Duration::from_secs(3);
        r
    })
    .await;
    let overloaded = MockUpstream::start(|_| {
        Reply::json(
            529,
            json!({"error": {"message": "overloaded", "type": "server_error"}}),
        )
    })
    .await;
    let good = MockUpstream::start(|_| Reply::json(200, chat_completion("ok", 3, 4))).await;
    let c_closed = channel_for(&app, &closed, &model, 40).await.to_string();
    let c_slow = channel_for(&app, &slow.url, &model, 30).await.to_string();
    let c_529 = channel_for(&app, &overloaded.url, &model, 20)
        .await
        .to_string();
    let c_good = channel_for(&app, &good.url, &model, 10).await.to_string();
    let uid = user(&app, 10_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;
    let before = Metrics::scrape(&app).await;

    let res = post(&app, &key, "/v1/chat/completions", &chat(&model, false)).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    settled(&app).await;
    let after = Metrics::scrape(&app).await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let errors = |ch: &str, status: &str| {
        delta(
            "tollgate_upstream_errors_total",
            &[("channel", ch), ("status", status)],
        )
    };
    assert_eq!(errors(&c_closed, "connect"), 1.0);
    assert_eq!(errors(&c_slow, "timeout"), 1.0);
    assert_eq!(errors(&c_529, "529"), 1.0);
    for ch in [&c_closed, &c_slow, &c_529, &c_good] {
        let all = delta(
            "tollgate_upstream_errors_total",
            &[("channel", ch.as_str())],
        );
        assert_eq!(all, if ch == &c_good { 0.0 } else { 1.0 }, "channel {ch}");
    }
    let calls = |ch: &str, status: &str| {
        delta(
            "tollgate_relay_requests_total",
            &[
                ("model", model.as_str()),
                ("channel", ch),
                ("status", status),
            ],
        )
    };
    assert_eq!(calls(&c_good, "200"), 1.0);
    assert_eq!(
        delta(
            "tollgate_relay_requests_total",
            &[("model", model.as_str())]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "tollgate_tokens_total",
            &[("model", model.as_str()), ("kind", "completion")]
        ),
        4.0
    );

    // With no retry left the client gets the last upstream status, counted as such.
    set_option(&app, "RetryTimes", "0").await;
    let only_529 = unique_model("fail");
    let c_fail = channel_for(&app, &overloaded.url, &only_529, 0)
        .await
        .to_string();
    let res = post(&app, &key, "/v1/chat/completions", &chat(&only_529, false)).await;
    let status = res.status().as_u16().to_string();
    assert_ne!(status, "200");
    let after2 = Metrics::scrape(&app).await;
    let calls = after2.get(
        "tollgate_relay_requests_total",
        &[
            ("model", only_529.as_str()),
            ("channel", c_fail.as_str()),
            ("status", status.as_str()),
        ],
    );
    assert_eq!(calls, 1.0);
    assert_eq!(
        after2.get(
            "tollgate_upstream_errors_total",
            &[("channel", c_fail.as_str()), ("status", "529")]
        ),
        1.0
    );
    // Failed calls are not timed.
    assert_eq!(
        after2.get(
            "tollgate_relay_latency_seconds_count",
            &[("model", only_529.as_str())]
        ),
        0.0
    );
    app.finish().await;
}

db_test!(unknown_models_and_caches);

/// A model no channel serves is labelled `other`; the token and user caches count a miss on the
/// first call and a hit on the next.
async fn unknown_models_and_caches(backend: Backend) {
    // The token and user caches exist with MEMORY_CACHE_ENABLED (or Redis), as in One API.
    let Some(app) = spawn_app_with(backend, &[("MEMORY_CACHE_ENABLED", "true")]).await else {
        return;
    };
    let upstream = MockUpstream::start(|_| Reply::json(200, chat_completion("hi", 1, 1))).await;
    let model = unique_model("known");
    channel_for(&app, &upstream.url, &model, 0).await;
    let uid = user(&app, 10_000_000, "default", 1).await;
    let (_, key) = token(&app, uid, None).await;

    let m0 = Metrics::scrape(&app).await;
    let res = post(&app, &key, "/v1/chat/completions", &chat(&model, false)).await;
    assert_eq!(res.status(), 200);
    let m1 = Metrics::scrape(&app).await;
    let res = post(&app, &key, "/v1/chat/completions", &chat(&model, false)).await;
    assert_eq!(res.status(), 200);
    let m2 = Metrics::scrape(&app).await;
    let cache = |m: &Metrics, cache: &str, result: &str| {
        m.get(
            "tollgate_cache_requests_total",
            &[("cache", cache), ("result", result)],
        )
    };
    // Other tests share these counters: they can only have moved further.
    for c in ["token", "user"] {
        assert!(
            cache(&m1, c, "miss") >= cache(&m0, c, "miss") + 1.0,
            "{c} miss"
        );
        assert!(
            cache(&m2, c, "hit") >= cache(&m1, c, "hit") + 1.0,
            "{c} hit"
        );
    }

    let stranger = unique_model("unrouted");
    let res = post(&app, &key, "/v1/chat/completions", &chat(&stranger, false)).await;
    assert_eq!(res.status(), 503);
    let m3 = Metrics::scrape(&app).await;
    assert!(
        m3.0.samples
            .iter()
            .all(|s| s.labels.get("model") != Some(stranger.as_str())),
        "an unknown model became a label"
    );
    assert!(
        m3.get(
            "tollgate_relay_requests_total",
            &[("model", "other"), ("channel", "none"), ("status", "503")]
        ) >= 1.0
    );
    app.finish().await;
}
