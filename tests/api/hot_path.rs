//! The relay's warm path runs no SQL: with the token, user and balances cached (memory or Redis
//! ledger), a request is authorised, routed, reserved and settled without a statement; the
//! database sees the movements only when the writer writes them.

use serde_json::json;

use crate::helpers::{Backend, LedgerMode, spawn_app_mode};
use crate::ledger_test;
use crate::mock_upstream::{MockUpstream, Reply, chat_completion, chat_stream};
use crate::relay_helpers::*;

ledger_test!(warm_relay_path_runs_no_sql);

async fn warm_relay_path_runs_no_sql(backend: Backend, mode: LedgerMode) {
    // Batches every hour: the writer stays idle until the flush below.
    let Some(app) = spawn_app_mode(
        backend,
        mode,
        &[
            ("BATCH_UPDATE_ENABLED", "true"),
            ("BATCH_UPDATE_INTERVAL", "3600"),
        ],
    )
    .await
    else {
        return;
    };
    let json_up = MockUpstream::start(|_| Reply::json(200, chat_completion("hello", 10, 20))).await;
    let sse_up =
        MockUpstream::start(|_| Reply::sse(&chat_stream(&["He", "llo"], Some((10, 20)), true)))
            .await;
    channel(&app, &json_up.url, "gpt-4").await;
    channel(&app, &sse_up.url, "gpt-3.5-turbo").await;
    let uid = user(&app, 10_000_000, "default", 1).await;
    let (tid, key) = token(&app, uid, Some(5_000_000)).await;
    let chat = json!({"model": "gpt-4", "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}]});
    let stream = json!({"model": "gpt-3.5-turbo", "stream": true, "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}]});

    // Cold: loads the token, the user and the balances.
    assert_eq!(
        post(&app, &key, "/v1/chat/completions", &chat)
            .await
            .status(),
        200
    );
    let res = post(&app, &key, "/v1/chat/completions", &stream).await;
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();

    let before = (app.db().statements(), app.state.log_db.statements());
    for _ in 0..10 {
        let res = post(&app, &key, "/v1/chat/completions", &chat).await;
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap();
        let res = post(&app, &key, "/v1/chat/completions", &stream).await;
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap();
        assert!(body.contains("[DONE]"), "{body}");
    }
    let after = (app.db().statements(), app.state.log_db.statements());
    if mode == LedgerMode::Database {
        // Without a cache One API reads the token on every request and reserves in SQL; so do we.
        assert!(after.0 >= before.0 + 20 * 2, "{before:?} -> {after:?}");
    } else {
        assert_eq!(after, before, "SQL statements ran on the warm relay path");
    }

    // The writer persists all 22 requests on flush, each at its price.
    settled(&app).await;
    let u = user_row(&app, uid).await;
    assert_eq!(u.request_count, 22);
    let logged = logged_quota(&app, uid).await;
    assert_eq!(consume_logs(&app, uid).await.len(), 22);
    assert_eq!(u.quota, 10_000_000 - logged);
    assert_eq!(token_row(&app, tid).await.remain_quota, 5_000_000 - logged);
    app.finish().await;
}
