//! Redemption codes: admin CRUD, validation, and atomic redemption.

use serde_json::json;

use crate::db_test;
use crate::helpers::{Backend, spawn_app};

db_test!(
    redemption_crud_and_validation,
    redeem_is_atomic_under_concurrency
);

async fn redemption_crud_and_validation(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, _, admin) = app.user_with_role(10).await;
    let (_, _, user) = app.user_with_role(1).await;
    assert_eq!(user.get("/api/redemption/").await["success"], false);
    for body in [
        json!({"name": "", "count": 1, "quota": 10}),
        json!({"name": "x".repeat(21), "count": 1, "quota": 10}),
        json!({"name": "ok", "count": 0, "quota": 10}),
        json!({"name": "ok", "count": 1000000, "quota": 10}),
        json!({"name": "ok", "count": 1, "quota": -10}),
        json!({"name": "ok", "count": "3", "quota": 10}),
        json!({"name": "ok"}),
    ] {
        let r = admin.post("/api/redemption/", &body).await;
        assert_eq!(r["success"], false, "{body}: {r}");
    }
    assert_eq!(
        admin.get("/api/redemption/").await["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let r = admin
        .post(
            "/api/redemption/",
            &json!({"name": "gift", "count": 12, "quota": 100}),
        )
        .await;
    let keys = r["data"].as_array().unwrap();
    assert_eq!(keys.len(), 12);
    assert_eq!(keys[0].as_str().unwrap().len(), 32);
    assert_eq!(
        admin.get("/api/redemption/?p=0").await["data"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    assert_eq!(
        admin.get("/api/redemption/?p=1").await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let found = admin.get("/api/redemption/search?keyword=gi").await;
    assert_eq!(found["data"].as_array().unwrap().len(), 12);
    let none = admin
        .get("/api/redemption/search?keyword=%25' OR 1=1 --")
        .await;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);
    let id = found["data"][0]["id"].as_i64().unwrap();
    let r = admin
        .put(
            "/api/redemption/",
            &json!({"id": id, "name": "renamed", "quota": 5}),
        )
        .await;
    assert_eq!(r["data"]["name"], "renamed");
    assert_eq!(r["data"]["quota"], 5);
    let r = admin
        .put(
            "/api/redemption/?status_only=1",
            &json!({"id": id, "status": 2, "quota": 999}),
        )
        .await;
    assert_eq!(r["data"]["status"], 2);
    assert_eq!(r["data"]["quota"], 5);
    assert_eq!(
        admin.get(&format!("/api/redemption/{id}")).await["data"]["id"],
        id
    );
    assert_eq!(
        admin.delete(&format!("/api/redemption/{id}")).await["success"],
        true
    );
    assert_eq!(
        admin.get(&format!("/api/redemption/{id}")).await["success"],
        false
    );
    assert_eq!(
        admin.delete("/api/redemption/999999").await["success"],
        false
    );

    // Redeem errors.
    let r = user.post("/api/user/topup", &json!({"key": "nope"})).await;
    assert_eq!(r["message"], "兑换失败，无效的兑换码");
    let r = user.post("/api/user/topup", &json!({})).await;
    assert_eq!(r["success"], false);
    app.finish().await;
}

async fn redeem_is_atomic_under_concurrency(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let root = app.root().await;
    let r = root
        .post(
            "/api/redemption/",
            &json!({"name": "race", "count": 1, "quota": 1234}),
        )
        .await;
    let key = r["data"][0].as_str().unwrap().to_string();
    let (uid, name, user) = app.user_with_role(1).await;
    let mut handles = Vec::new();
    for _ in 0..50 {
        let client = user.client.clone();
        let url = app.url("/api/user/topup");
        let key = key.clone();
        handles.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .json(&json!({"key": key}))
                .send()
                .await
                .unwrap();
            res.json::<serde_json::Value>().await.unwrap()
        }));
    }
    let mut wins = 0;
    for h in handles {
        let body = h.await.unwrap();
        if body["success"] == true {
            assert_eq!(body["data"], 1234);
            wins += 1;
        } else {
            assert_eq!(body["message"], "兑换失败，该兑换码已被使用", "{body}");
        }
    }
    assert_eq!(wins, 1);
    let u = tollgate::store::users::get_by_id(app.db(), uid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.quota, 1234);
    let logs = root.get(&format!("/api/log/?type=1&username={name}")).await;
    assert_eq!(logs["data"].as_array().unwrap().len(), 1, "{logs}");
    let red = root.get("/api/redemption/").await;
    assert_eq!(red["data"][0]["status"], 3);
    assert_eq!(red["data"][0]["used_user_id"], uid);
    app.finish().await;
}
