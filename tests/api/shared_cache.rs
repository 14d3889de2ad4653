//! With Redis, tokens (by key) and users live in a cache the nodes share, with a TTL: filled on a
//! read, dropped at once on a change, never holding a key, a password hash or an access token.

use serde_json::json;
use sha2::Digest;

use crate::db_test;
use crate::helpers::{Backend, LedgerMode, redis_url, spawn_app_mode};
use crate::mock_upstream::{MockUpstream, Reply, chat_completion};
use crate::relay_helpers::*;

db_test!(tokens_and_users_are_shared_through_redis);

async fn redis_get(key: &str) -> Option<String> {
    crate::helpers::redis_get(&redis_url()?, key).await
}

async fn tokens_and_users_are_shared_through_redis(backend: Backend) {
    let Some(app) = spawn_app_mode(backend, LedgerMode::Redis, &[]).await else {
        return;
    };
    let prefix = app.state.cfg.redis_key_prefix.clone();
    let up = MockUpstream::start(|_| Reply::json(200, chat_completion("hi", 3, 4))).await;
    channel(&app, &up.url, "gpt-4").await;
    let uid = user(&app, 1_000_000, "default", 1).await;
    let (tid, key) = token(&app, uid, None).await;
    let bare = key.trim_start_matches("sk-");
    let digest = hex::encode(&sha2::Sha256::digest(bare.as_bytes())[..16]);
    let token_entry = format!("{prefix}{{c:t:{digest}}}:row");
    let user_entry = format!("{prefix}{{c:u:{uid}}}:row");
    assert_eq!(redis_get(&token_entry).await, None);

    let body = json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        post(&app, &key, "/v1/chat/completions", &body)
            .await
            .status(),
        200
    );
    let cached = redis_get(&token_entry)
        .await
        .expect("token cached in Redis");
    let row: serde_json::Value = serde_json::from_str(&cached).unwrap();
    assert_eq!(row["id"], tid);
    let cached_user = redis_get(&user_entry).await.expect("user cached in Redis");
    let u: serde_json::Value = serde_json::from_str(&cached_user).unwrap();
    assert_eq!(u["id"], uid);
    assert!(
        u.get("password").is_none() && u.get("access_token").is_none(),
        "{u}"
    );
    // The key itself never appears in Redis key names.
    assert!(!token_entry.contains(bare));

    // A change drops the shared copy at once; the next read takes the database's row.
    assert!(
        tollgate::store::tokens::delete(app.db(), tid, uid)
            .await
            .unwrap()
    );
    app.state.relay.invalidate_token(bare);
    eventually(|| async { redis_get(&token_entry).await.is_none() }).await;
    assert_eq!(
        post(&app, &key, "/v1/chat/completions", &body)
            .await
            .status(),
        401
    );
    app.finish().await;
}
