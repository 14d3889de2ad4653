//! Logs: filters, paging, own views, search, stats, clean-up.

use serde_json::json;
use tollgate::store::logs::{Log, insert};

use crate::db_test;
use crate::helpers::{Backend, spawn_app};

db_test!(log_routes_filter_and_scope);

async fn log_routes_filter_and_scope(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (uid, name, user) = app.user_with_role(1).await;
    let root = app.root().await;
    let db = &app.state.log_db;
    for i in 0..12 {
        let l = Log {
            user_id: uid,
            username: name.clone(),
            created_at: 1_000 + i,
            r#type: 2,
            content: format!("consume {i}"),
            token_name: if i % 2 == 0 {
                "even".into()
            } else {
                "odd".into()
            },
            model_name: "gpt-4".into(),
            quota: 10,
            channel_id: 7,
            ..Default::default()
        };
        insert(db, &l).await.unwrap();
    }
    let other = Log {
        user_id: 1,
        username: "root".into(),
        created_at: 5_000,
        r#type: 3,
        content: "manage note".into(),
        ..Default::default()
    };
    insert(db, &other).await.unwrap();

    let all = root.get("/api/log/").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 10);
    assert_eq!(all["data"][0]["content"], "manage note");
    assert_eq!(
        root.get("/api/log/?p=1").await["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let f = root.get("/api/log/?type=2&token_name=even&channel=7").await;
    assert_eq!(f["data"].as_array().unwrap().len(), 6);
    assert_eq!(f["data"][0]["channel"], 7);
    let f = root
        .get(&format!(
            "/api/log/?username={name}&start_timestamp=1005&end_timestamp=1007"
        ))
        .await;
    assert_eq!(f["data"].as_array().unwrap().len(), 3);
    let f = root.get("/api/log/?model_name=%25").await;
    assert_eq!(f["data"].as_array().unwrap().len(), 0);

    let mine = user.get("/api/log/self").await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 10);
    assert!(
        mine["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["id"] == 0)
    );
    assert!(!mine.to_string().contains("manage note"));
    assert_eq!(user.get("/api/log/").await["success"], false);

    assert_eq!(
        root.get("/api/log/search?keyword=manage").await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        root.get("/api/log/search?keyword=2").await["data"]
            .as_array()
            .unwrap()
            .len(),
        12
    );
    assert_eq!(
        root.get("/api/log/search?keyword=%25").await["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        user.get("/api/log/self/search?keyword=3").await["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        user.get("/api/log/self/search?keyword=2").await["data"]
            .as_array()
            .unwrap()
            .len(),
        12
    );

    assert_eq!(
        root.get("/api/log/stat").await["data"],
        json!({"quota": 120})
    );
    assert_eq!(
        root.get("/api/log/stat?token_name=odd").await["data"]["quota"],
        60
    );
    assert_eq!(
        user.get("/api/log/self/stat?type=3").await["data"]["quota"],
        120
    );
    assert_eq!(
        user.get("/api/log/self/stat?start_timestamp=1010").await["data"]["quota"],
        20
    );

    assert_eq!(root.delete("/api/log/").await["success"], false);
    let r = root.delete("/api/log/?target_timestamp=1006").await;
    assert_eq!(r["data"], 6, "{r}");
    assert_eq!(
        user.delete("/api/log/?target_timestamp=9999").await["success"],
        false
    );
    assert_eq!(root.get("/api/log/stat").await["data"]["quota"], 60);
    app.finish().await;
}
