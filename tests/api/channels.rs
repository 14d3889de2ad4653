//! Channels: CRUD without keys in responses, abilities, catalogue, test and balance.

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::db_test;
use crate::helpers::{Backend, spawn_app};

db_test!(
    channel_crud_and_abilities,
    channel_validation,
    channel_catalogue,
    channel_test_and_balance
);

async fn abilities_of(app: &crate::helpers::TestApp) -> Vec<(String, String, i64, bool)> {
    let mut v: Vec<_> = tollgate::store::abilities::all(app.db())
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.group, a.model, a.channel_id, a.enabled))
        .collect();
    v.sort();
    v
}

async fn channel_crud_and_abilities(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, _, admin) = app.user_with_role(10).await;
    let r = admin
        .post(
            "/api/channel/",
            &json!({"type": 1, "key": "sk-one\n\n sk-two \n", "name": "pair",
                    "models": "gpt-4,gpt-3.5-turbo", "group": "default,vip", "priority": 2,
                    "model_mapping": "{\"gpt-4\":\"gpt-4o\"}"}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    let list = admin.get("/api/channel/").await;
    let rows = list["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let text = list.to_string();
    assert!(!text.contains("sk-one") && !text.contains("sk-two"));
    assert!(rows.iter().all(|c| c["key"] == ""));
    assert_eq!(abilities_of(&app).await.len(), 8);
    let id = rows[0]["id"].as_i64().unwrap();
    let got = admin.get(&format!("/api/channel/{id}")).await;
    assert_eq!(got["data"]["key"], "");
    assert_eq!(got["data"]["priority"], 2);
    let found = admin.get("/api/channel/search?keyword=pai").await;
    assert_eq!(found["data"].as_array().unwrap().len(), 2);
    assert!(!found.to_string().contains("sk-"));
    let none = admin.get("/api/channel/search?keyword=_").await;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);

    // Partial update: only status; key and models kept; abilities disabled.
    let r = admin
        .put("/api/channel/", &json!({"id": id, "status": 2}))
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["data"]["key"], "");
    let stored = tollgate::store::channels::get_by_id(app.db(), id)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.key.starts_with("sk-"));
    assert_eq!(stored.models, "gpt-4,gpt-3.5-turbo");
    let ab = abilities_of(&app).await;
    assert_eq!(ab.iter().filter(|a| a.2 == id && !a.3).count(), 4);
    // Models change rebuilds abilities; empty key keeps the old key.
    let r = admin
        .put(
            "/api/channel/",
            &json!({"id": id, "status": 1, "models": "m1", "group": "default", "key": ""}),
        )
        .await;
    assert_eq!(r["success"], true);
    let ab = abilities_of(&app).await;
    assert_eq!(ab.iter().filter(|a| a.2 == id).count(), 1);
    assert_eq!(
        tollgate::store::channels::get_by_id(app.db(), id)
            .await
            .unwrap()
            .unwrap()
            .key,
        stored.key
    );
    // Delete disabled, then delete by id.
    let other = rows[1]["id"].as_i64().unwrap();
    admin
        .put("/api/channel/", &json!({"id": other, "status": 3}))
        .await;
    let r = admin.delete("/api/channel/disabled").await;
    assert_eq!(r["data"], 1, "{r}");
    assert!(abilities_of(&app).await.iter().all(|a| a.2 != other));
    assert_eq!(
        admin.delete(&format!("/api/channel/{id}")).await["success"],
        true
    );
    assert!(abilities_of(&app).await.is_empty());
    assert_eq!(
        admin.delete(&format!("/api/channel/{id}")).await["success"],
        false
    );
    assert_eq!(admin.get("/api/channel/424242").await["success"], false);
    app.finish().await;
}

async fn channel_validation(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let root = app.root().await;
    for body in [
        json!({"type": 1, "key": "", "models": "a"}),
        json!({"type": 9999, "key": "k", "models": "a"}),
        json!({"type": 1, "key": "k", "model_mapping": "not json"}),
        json!({"type": 1, "key": "k", "model_mapping": "{\"a\": 1}"}),
        json!({"type": 1, "key": "k", "config": "[1,2]"}),
        json!({"type": "one", "key": "k"}),
    ] {
        let r = root.post("/api/channel/", &body).await;
        assert_eq!(r["success"], false, "{body}: {r}");
    }
    assert!(
        tollgate::store::channels::all(app.db())
            .await
            .unwrap()
            .is_empty()
    );
    let r = root
        .post(
            "/api/channel/",
            &json!({"type": 1, "key": "k", "models": "a", "name": "v"}),
        )
        .await;
    assert_eq!(r["success"], true);
    let id = tollgate::store::channels::all(app.db()).await.unwrap()[0].id;
    let r = root
        .put(
            "/api/channel/",
            &json!({"id": id, "model_mapping": "{\"a\": [1]}"}),
        )
        .await;
    assert_eq!(r["success"], false);
    let c = tollgate::store::channels::get_by_id(app.db(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.model_mapping, "");
    app.finish().await;
}

async fn channel_catalogue(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let root = app.root().await;
    let m = root.get("/api/channel/models").await;
    assert_eq!(m["object"], "list");
    assert!(
        m["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == "gpt-4o")
    );
    let (_, _, user) = app.user_with_role(1).await;
    let by_type = user.get("/api/models").await;
    assert_eq!(by_type["success"], true);
    let claude: &Value = &by_type["data"]["14"];
    assert!(
        claude
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x.as_str().unwrap().starts_with("claude"))
    );
    assert!(
        by_type["data"]["36"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "deepseek-chat")
    );
    let groups = root.get("/api/group/").await;
    assert_eq!(groups["data"], json!(["default", "svip", "vip"]));
    app.finish().await;
}

async fn channel_test_and_balance(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-upstream"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        })))
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/user/balance"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "is_available": true,
            "balance_infos": [{"currency": "USD", "total_balance": "12.50"}]
        })))
        .mount(&upstream)
        .await;
    let root = app.root().await;
    for (ty, name) in [(8, "custom"), (36, "deep"), (14, "claude")] {
        let r = root
            .post(
                "/api/channel/",
                &json!({"type": ty, "key": "sk-upstream", "name": name, "models": "m",
                        "base_url": upstream.uri()}),
            )
            .await;
        assert_eq!(r["success"], true, "{r}");
    }
    let all = tollgate::store::channels::all(app.db()).await.unwrap();
    let (custom, deep, claude) = (all[0].id, all[1].id, all[2].id);
    let r = root
        .get(&format!("/api/channel/test/{custom}?model=m"))
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["message"], "hi");
    assert!(r["time"].as_f64().is_some());
    let c = tollgate::store::channels::get_by_id(app.db(), custom)
        .await
        .unwrap()
        .unwrap();
    assert!(c.test_time > 0);
    // Anthropic channels are tested through their adaptor: `/v1/messages`, which this mock
    // does not serve (see channel_test_adaptors.rs for the full case).
    let r = root.get(&format!("/api/channel/test/{claude}")).await;
    assert_eq!(r["success"], false);
    assert!(
        r["message"].as_str().unwrap().starts_with("HTTP 404"),
        "{r}"
    );
    let logs = root.get("/api/log/?type=5").await;
    assert_eq!(logs["data"].as_array().unwrap().len(), 2, "{logs}");
    assert!(!logs.to_string().contains("sk-upstream"));

    let r = root
        .get(&format!("/api/channel/update_balance/{deep}"))
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["balance"], 12.5);
    let r = root
        .get(&format!("/api/channel/update_balance/{claude}"))
        .await;
    assert_eq!(r["success"], false);
    assert!(r["message"].as_str().unwrap().contains("尚未实现"));
    assert_eq!(
        root.get("/api/channel/update_balance").await["success"],
        true
    );
    app.finish().await;
}
