//! `/metrics`: Prometheus text, parsed with a Prometheus parser; guarded by METRICS_TOKEN.

use crate::db_test;
use crate::helpers::{Backend, spawn_app_with};

db_test!(metrics_are_scraped_and_guarded);

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
