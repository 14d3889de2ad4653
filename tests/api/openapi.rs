//! `/api/openapi.json` describes exactly the routes the server registers, and each of them is
//! really routed (answers anything but the unknown-route 404).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{Backend, spawn_app};

/// (method, path) pairs registered by `.route("PATH", web::METHOD()...)` in a function's body.
fn registered(file: &str, function: &str, prefix: &str) -> BTreeSet<(String, String)> {
    let src = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let start = src
        .find(&format!("fn {function}("))
        .unwrap_or_else(|| panic!("{file}: no fn {function}"));
    let body = &src[start..];
    let end = body[1..]
        .find("\nfn ")
        .or_else(|| body[1..].find("\npub fn "))
        .unwrap_or(body.len() - 1);
    let body = &body[..end + 1];
    let compact: String = body.split_whitespace().collect::<Vec<_>>().join("");
    let mut out = BTreeSet::new();
    for piece in compact
        .split(".route(")
        .skip(1)
        .chain(compact.split("cfg.route(").skip(1))
    {
        let Some(rest) = piece.strip_prefix('"') else {
            continue;
        };
        let Some((path, after)) = rest.split_once('"') else {
            continue;
        };
        let Some(method) = after
            .strip_prefix(",web::")
            .and_then(|m| m.split('(').next())
        else {
            continue;
        };
        if method == "route" || method == "method" {
            // Any-method routes (the 501 "not implemented" family) and CORS preflight catch-alls.
            continue;
        }
        out.insert((method.to_string(), format!("{prefix}{path}")));
    }
    out
}

#[test]
fn openapi_matches_the_registered_routes() {
    let mut routes = registered("src/api/mod.rs", "configure", "/api");
    routes.extend(registered("src/relay/mod.rs", "configure", "/v1"));
    routes.extend(registered("src/relay/mod.rs", "configure_dashboard", ""));
    routes.extend(registered("src/relay/mod.rs", "configure_native", ""));
    routes.extend(registered("src/startup.rs", "configure", ""));
    assert!(routes.len() > 60, "{routes:?}");
    let documented: BTreeSet<(String, String)> = tollgate::openapi::ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI table: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not registered: {unrouted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_is_served_and_every_route_answers() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["title"], "Tollgate");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum::<usize>(),
        tollgate::openapi::ROUTES.len()
    );
    assert!(doc["paths"]["/api/user/{id}"]["get"]["parameters"][0]["name"] == "id");
    assert!(doc["components"]["securitySchemes"]["token"].is_object());
    let client = reqwest::Client::new();
    for r in tollgate::openapi::ROUTES {
        let path = r.path.replace("{id}", "1").replace("{model}", "gpt-4");
        let url = app.url(&path);
        let req = match r.method {
            "post" => client.post(&url).json(&serde_json::json!({})),
            "put" => client.put(&url).json(&serde_json::json!({})),
            "delete" => client.delete(&url),
            _ => client.get(&url),
        };
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap_or_default();
        assert!(
            !(status == 404 && body.contains("Invalid URL")),
            "{} {} is not routed",
            r.method,
            r.path
        );
    }
    app.finish().await;
}
