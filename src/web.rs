//! The dashboard: the React build embedded in the binary (rust-embed), served for every path
//! that is not `/api` or `/v1`. Hashed assets are cached for a year, `index.html` never, and
//! unknown paths fall back to `index.html` (client-side routing). On a slave with
//! `FRONTEND_BASE_URL`, pages redirect there instead, as in One API. When the binary was built
//! without the dashboard, `/` says how to build it.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::RustEmbed;

use crate::config::NodeType;
use crate::state::AppState;

#[derive(RustEmbed)]
#[folder = "$TOLLGATE_WEB_DIR"]
struct Assets;

/// Whether this binary carries a built dashboard.
pub fn has_dashboard() -> bool {
    Assets::get("index.html").is_some()
}

fn file_response(path: &str, file: rust_embed::EmbeddedFile) -> HttpResponse {
    let mime = file.metadata.mimetype().to_string();
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else if path == "index.html" {
        "no-cache"
    } else {
        "public, max-age=604800"
    };
    HttpResponse::Ok()
        .content_type(mime)
        .insert_header((header::CACHE_CONTROL, cache))
        .body(file.data.into_owned())
}

pub async fn index(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if state.cfg.node_type == NodeType::Slave
        && let Some(base) = &state.cfg.frontend_base_url
    {
        let target = format!(
            "{base}{}",
            req.uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        return HttpResponse::MovedPermanently()
            .insert_header((header::LOCATION, target))
            .finish();
    }
    let path = req.path().trim_start_matches('/');
    if !path.is_empty()
        && let Some(file) = Assets::get(path)
    {
        return file_response(path, file);
    }
    // Missing asset files are a real 404; anything else is a client-side route.
    if path.starts_with("assets/") {
        return HttpResponse::NotFound().finish();
    }
    match Assets::get("index.html") {
        Some(file) => file_response("index.html", file),
        None => not_built(),
    }
}

fn not_built() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(
            "<!doctype html><meta charset=utf-8><title>Tollgate</title><h1>Tollgate</h1>\
             <p>This binary was built without the dashboard. Build it with \
             <code>npm --prefix frontend ci &amp;&amp; npm --prefix frontend run build</code> \
             and then rebuild tollgate (<code>scripts/run</code> does both). \
             The APIs are served under <code>/api</code> and <code>/v1</code>.</p>",
        )
}
