//! The dashboard. Until the frontend is embedded, `/` explains how to build it.

use actix_web::HttpResponse;

pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .body(
            "<!doctype html><title>Tollgate</title><h1>Tollgate</h1>\
             <p>The dashboard is not built into this binary. Build it with \
             <code>npm --prefix frontend ci &amp;&amp; npm --prefix frontend run build</code> \
             and rebuild tollgate. The APIs are served under <code>/api</code> and \
             <code>/v1</code>.</p>",
        )
}
