//! Accounts and users admin: registration, self routes, roles, manage, no token leaks.

use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, spawn_app, uname};

db_test!(
    register_rewards_and_default_token,
    register_validates_and_respects_switches,
    self_routes_work,
    role_boundaries_hold,
    lists_never_leak_access_tokens,
    admin_update_is_limited_and_logged,
    manage_actions_and_forced_logout,
    admin_topup_and_delete,
    dashboard_and_available_models,
);

async fn set_option(root: &crate::helpers::Sess, key: &str, value: Value) {
    let r = root
        .put("/api/option/", &json!({"key": key, "value": value}))
        .await;
    assert_eq!(r["success"], true, "{key}: {r}");
}

async fn quota_of(app: &crate::helpers::TestApp, name: &str) -> i64 {
    tollgate::store::users::get_by_username(app.db(), name)
        .await
        .unwrap()
        .unwrap()
        .quota
}

async fn register_rewards_and_default_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let root = app.root().await;
    set_option(&root, "QuotaForNewUser", json!(100)).await;
    set_option(&root, "QuotaForInviter", json!("50")).await;
    set_option(&root, "QuotaForInvitee", json!(30)).await;

    let a = uname("inv");
    let anon = app.anon();
    let r = anon
        .post(
            "/api/user/register",
            &json!({"username": a, "password": "password123"}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    let sa = app.session(&a, "password123").await;
    let aff = sa.get("/api/user/aff").await;
    let code = aff["data"].as_str().unwrap().to_string();
    assert!(!code.is_empty());
    assert_eq!(sa.get("/api/user/aff").await["data"], code.as_str());

    let b = uname("new");
    let r = anon
        .post(
            "/api/user/register",
            &json!({"username": b, "password": "password123", "aff_code": code}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(quota_of(&app, &a).await, 150);
    assert_eq!(quota_of(&app, &b).await, 130);

    let sb = app.session(&b, "password123").await;
    let toks = sb.get("/api/token/").await;
    assert_eq!(toks["data"].as_array().unwrap().len(), 1, "{toks}");
    assert_eq!(toks["data"][0]["name"], "default");
    assert_eq!(toks["data"][0]["unlimited_quota"], true);
    assert_eq!(toks["data"][0]["expired_time"], -1);
    assert_eq!(toks["data"][0]["key"].as_str().unwrap().len(), 48);

    let logs = sb.get("/api/log/self?type=4").await;
    assert_eq!(logs["data"].as_array().unwrap().len(), 2, "{logs}");
    let logs = sa.get("/api/log/self?type=4").await;
    assert_eq!(logs["data"].as_array().unwrap().len(), 2, "{logs}");
    app.finish().await;
}

async fn register_validates_and_respects_switches(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let anon = app.anon();
    for body in [
        json!({"username": "abcdefghijklmn", "password": "password123"}),
        json!({"username": "shortpw", "password": "1234567"}),
        json!({"username": "", "password": "password123"}),
        json!({"username": "longpw", "password": "x".repeat(21)}),
        json!({"password": "password123"}),
        json!({"username": 5, "password": "password123"}),
    ] {
        let r = anon.post("/api/user/register", &body).await;
        assert_eq!(r["success"], false, "{body} -> {r}");
        assert!(!r["message"].as_str().unwrap().is_empty());
    }
    let n = uname("dup");
    let ok = json!({"username": n, "password": "password123"});
    assert_eq!(anon.post("/api/user/register", &ok).await["success"], true);
    let again = anon.post("/api/user/register", &ok).await;
    assert_eq!(again["success"], false);
    assert_eq!(tollgate::store::users::count(app.db()).await.unwrap(), 2);

    let root = app.root().await;
    set_option(&root, "RegisterEnabled", json!(false)).await;
    let r = anon
        .post(
            "/api/user/register",
            &json!({"username": uname("x"), "password": "password123"}),
        )
        .await;
    assert_eq!(r["success"], false);
    assert_eq!(r["message"], "管理员关闭了新用户注册");
    assert_eq!(tollgate::store::users::count(app.db()).await.unwrap(), 2);
    app.finish().await;
}

async fn self_routes_work(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_id, name, s) = app.user_with_role(1).await;
    let me = s.get("/api/user/self").await;
    assert_eq!(me["data"]["username"], name.as_str());
    assert_eq!(me["data"]["access_token"], "");

    // Access token: returned once, then usable as Authorization.
    let tok = s.get("/api/user/token").await["data"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(tok.len(), 32);
    let res = app
        .client
        .get(app.url("/api/user/self"))
        .header("Authorization", &tok)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["username"], name.as_str());

    // Update: display name and password; the old password stops working.
    let r = s
        .put(
            "/api/user/self",
            &json!({"username": name, "display_name": "Nice", "password": "newpassword1"}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        s.get("/api/user/self").await["data"]["display_name"],
        "Nice"
    );
    let bad = app
        .anon()
        .post(
            "/api/user/login",
            &json!({"username": name, "password": "password123"}),
        )
        .await;
    assert_eq!(bad["success"], false);
    let s = app.session(&name, "newpassword1").await;
    let r = s
        .put(
            "/api/user/self",
            &json!({"username": name, "password": "short"}),
        )
        .await;
    assert_eq!(r["success"], false);

    // Root cannot delete itself; a user can.
    let root = app.root().await;
    assert_eq!(root.delete("/api/user/self").await["success"], false);
    assert_eq!(s.delete("/api/user/self").await["success"], true);
    let gone = app
        .anon()
        .post(
            "/api/user/login",
            &json!({"username": name, "password": "newpassword1"}),
        )
        .await;
    assert_eq!(gone["success"], false);
    app.finish().await;
}

async fn role_boundaries_hold(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, _, user) = app.user_with_role(1).await;
    let (admin_id, admin_name, admin) = app.user_with_role(10).await;
    let (other_admin_id, other_admin, _) = app.user_with_role(10).await;
    let (common_id, common_name, _) = app.user_with_role(1).await;

    for path in [
        "/api/user/",
        "/api/user/search?keyword=a",
        "/api/channel/",
        "/api/redemption/",
        "/api/log/",
        "/api/log/stat",
        "/api/group/",
        "/api/option/",
        "/api/channel/models",
    ] {
        let r = user.get(path).await;
        assert_eq!(r["success"], false, "common user reached {path}: {r}");
    }
    assert_eq!(
        user.get(&format!("/api/user/{common_id}")).await["success"],
        false
    );
    // Admins: no options, no root, no peers.
    assert_eq!(admin.get("/api/option/").await["success"], false);
    let r = admin
        .put("/api/option/", &json!({"key": "Notice", "value": "x"}))
        .await;
    assert_eq!(r["success"], false);
    assert_eq!(admin.get("/api/user/1").await["success"], false);
    assert_eq!(
        admin.get(&format!("/api/user/{other_admin_id}")).await["success"],
        false
    );
    assert_eq!(
        admin.get(&format!("/api/user/{admin_id}")).await["success"],
        true
    );
    assert_eq!(
        admin.get(&format!("/api/user/{common_id}")).await["success"],
        true
    );
    for (target, action) in [
        ("root", "disable"),
        ("root", "delete"),
        (other_admin.as_str(), "demote"),
        (other_admin.as_str(), "disable"),
        (common_name.as_str(), "promote"),
    ] {
        let r = admin
            .post(
                "/api/user/manage",
                &json!({"username": target, "action": action}),
            )
            .await;
        assert_eq!(r["success"], false, "{action} {target}: {r}");
    }
    let r = admin
        .put(
            "/api/user/",
            &json!({"id": 1, "quota": 1, "username": "root"}),
        )
        .await;
    assert_eq!(r["success"], false);
    let r = admin
        .put("/api/user/", &json!({"id": other_admin_id, "quota": 5}))
        .await;
    assert_eq!(r["success"], false);
    assert_eq!(admin.delete("/api/user/1").await["success"], false);
    // An admin cannot create an admin.
    let r = admin
        .post(
            "/api/user/",
            &json!({"username": uname("x"), "password": "password123", "role": 10}),
        )
        .await;
    assert_eq!(r["success"], false);
    let root_row = tollgate::store::users::get_by_id(app.db(), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(root_row.status, 1);
    assert_eq!(root_row.role, 100);
    let _ = admin_name;
    app.finish().await;
}

async fn lists_never_leak_access_tokens(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let root = app.root().await;
    let root_token = root.get("/api/user/token").await["data"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, name, user) = app.user_with_role(1).await;
    let user_token = user.get("/api/user/token").await["data"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, _, admin) = app.user_with_role(10).await;
    for s in [&root, &admin] {
        for path in [
            "/api/user/".to_string(),
            "/api/user/?order=quota".to_string(),
            format!("/api/user/search?keyword={}", &name[..3]),
            "/api/user/search?keyword=root".to_string(),
            "/api/user/1".to_string(),
        ] {
            let r = s.get(&path).await;
            let text = r.to_string();
            assert!(!text.contains(&root_token), "{path} leaks root's token");
            assert!(!text.contains(&user_token), "{path} leaks a token");
        }
    }
    let list = root.get("/api/user/").await;
    assert!(list["data"].as_array().unwrap().len() >= 3);
    // Search with metacharacters: bound and escaped, so it matches nothing.
    for kw in ["%25' OR 1=1 --", "%25", "_", "'"] {
        let r = root.get(&format!("/api/user/search?keyword={kw}")).await;
        assert_eq!(r["success"], true, "{kw}: {r}");
        assert_eq!(r["data"].as_array().unwrap().len(), 0, "{kw}: {r}");
    }
    let r = root
        .get(&format!("/api/user/search?keyword={}", &name[..4]))
        .await;
    assert!(!r["data"].as_array().unwrap().is_empty());
    app.finish().await;
}

async fn admin_update_is_limited_and_logged(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let root = app.root().await;
    let (id, name, _) = app.user_with_role(1).await;
    let before = tollgate::store::users::get_by_id(app.db(), id)
        .await
        .unwrap()
        .unwrap();
    // Mass assignment: role, status, access_token, used_quota are ignored.
    let r = root
        .put(
            "/api/user/",
            &json!({"id": id, "username": name, "display_name": "D", "quota": 777,
                    "group": "vip", "role": 100, "status": 2, "access_token": "x",
                    "used_quota": 9, "password": ""}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    let after = tollgate::store::users::get_by_id(app.db(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.quota, 777);
    assert_eq!(after.group, "vip");
    assert_eq!(after.display_name, "D");
    assert_eq!(after.role, 1);
    assert_eq!(after.status, 1);
    assert_eq!(after.access_token, before.access_token);
    assert_eq!(after.used_quota, 0);
    assert_eq!(after.password, before.password);
    // Quota to 0 is allowed; negative is refused and changes nothing.
    let r = root.put("/api/user/", &json!({"id": id, "quota": 0})).await;
    assert_eq!(r["success"], true, "{r}");
    let r = root
        .put("/api/user/", &json!({"id": id, "quota": -5}))
        .await;
    assert_eq!(r["success"], false);
    let r = root
        .put("/api/user/", &json!({"id": id, "quota": "lots"}))
        .await;
    assert_eq!(r["success"], false);
    let r = root
        .put("/api/user/", &json!({"id": 999999, "quota": 1}))
        .await;
    assert_eq!(r["success"], false);
    assert_eq!(
        tollgate::store::users::get_by_id(app.db(), id)
            .await
            .unwrap()
            .unwrap()
            .quota,
        0
    );
    let logs = root.get(&format!("/api/log/?type=3&username={name}")).await;
    assert_eq!(logs["data"].as_array().unwrap().len(), 2, "{logs}");
    app.finish().await;
}

async fn manage_actions_and_forced_logout(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let root = app.root().await;
    let (id, name, user) = app.user_with_role(1).await;
    let manage = |action: &'static str| {
        let name = name.clone();
        let root = &root;
        async move {
            root.post(
                "/api/user/manage",
                &json!({"username": name, "action": action}),
            )
            .await
        }
    };
    let r = manage("promote").await;
    assert_eq!(r["data"]["role"], 10, "{r}");
    assert_eq!(user.get("/api/user/").await["success"], true);
    assert_eq!(manage("promote").await["success"], false);
    let r = manage("demote").await;
    assert_eq!(r["data"]["role"], 1);
    // Demotion ends the session.
    assert_eq!(user.get("/api/user/self").await["success"], false);
    let user = app.session(&name, "password123").await;
    let r = manage("disable").await;
    assert_eq!(r["data"]["status"], 2);
    assert_eq!(user.get("/api/user/self").await["success"], false);
    assert_eq!(
        app.anon()
            .post(
                "/api/user/login",
                &json!({"username": name, "password": "password123"})
            )
            .await["success"],
        false
    );
    assert_eq!(manage("enable").await["data"]["status"], 1);
    assert_eq!(manage("explode").await["success"], false);
    let r = root
        .post(
            "/api/user/manage",
            &json!({"username": "nobody-here", "action": "disable"}),
        )
        .await;
    assert_eq!(r["success"], false);
    assert_eq!(manage("delete").await["success"], true);
    let row = tollgate::store::users::get_by_id(app.db(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, 3);
    app.finish().await;
}

async fn admin_topup_and_delete(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, _, admin) = app.user_with_role(10).await;
    let (id, name, _) = app.user_with_role(1).await;
    let r = admin
        .post(
            "/api/topup",
            &json!({"user_id": id, "quota": -1, "remark": "x"}),
        )
        .await;
    assert_eq!(r["message"], "quota 不能为负数！");
    let r = admin
        .post(
            "/api/topup",
            &json!({"user_id": id, "quota": 500, "remark": "gift"}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(quota_of(&app, &name).await, 500);
    let logs = admin
        .get(&format!("/api/log/?type=1&username={name}"))
        .await;
    assert_eq!(logs["data"][0]["content"], "gift");
    assert_eq!(logs["data"][0]["quota"], 500);
    let r = admin
        .post("/api/topup", &json!({"user_id": 424242, "quota": 5}))
        .await;
    assert_eq!(r["success"], false);

    let r = admin.delete(&format!("/api/user/{id}")).await;
    assert_eq!(r["success"], true, "{r}");
    let r = admin.delete(&format!("/api/user/{id}")).await;
    assert_eq!(r["success"], false);
    let r = admin.delete("/api/user/999999").await;
    assert_eq!(r["success"], false);
    app.finish().await;
}

async fn dashboard_and_available_models(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let root = app.root().await;
    let (id, name, user) = app.user_with_role(1).await;
    let now = tollgate::store::now();
    for (model, quota, ago) in [
        ("m1", 10, 0),
        ("m1", 5, 0),
        ("m2", 7, 0),
        ("m1", 99, 30 * 86400),
    ] {
        let l = tollgate::store::logs::Log {
            user_id: id,
            username: name.clone(),
            created_at: now - ago,
            r#type: 2,
            model_name: model.into(),
            quota,
            prompt_tokens: 1,
            completion_tokens: 2,
            ..Default::default()
        };
        tollgate::store::logs::insert(&app.state.log_db, &l)
            .await
            .unwrap();
    }
    let d = user.get("/api/user/dashboard").await;
    let rows = d["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{d}");
    let m1 = rows.iter().find(|r| r["ModelName"] == "m1").unwrap();
    assert_eq!(m1["RequestCount"], 2);
    assert_eq!(m1["Quota"], 15);
    assert_eq!(m1["PromptTokens"], 2);
    assert_eq!(m1["CompletionTokens"], 4);
    assert_eq!(m1["Day"].as_str().unwrap().len(), 10);
    let d = user
        .get(&format!(
            "/api/user/dashboard?start_timestamp={}&end_timestamp={}",
            now - 40 * 86400,
            now
        ))
        .await;
    assert_eq!(d["data"].as_array().unwrap().len(), 3, "{d}");

    let r = root
        .post(
            "/api/channel/",
            &json!({"type": 1, "key": "sk-a", "name": "c", "models": "gpt-x,gpt-y", "group": "default"}),
        )
        .await;
    assert_eq!(r["success"], true, "{r}");
    let r = root
        .post(
            "/api/channel/",
            &json!({"type": 1, "key": "sk-b", "name": "v", "models": "vip-only", "group": "vip"}),
        )
        .await;
    assert_eq!(r["success"], true);
    let m = user.get("/api/user/available_models").await;
    assert_eq!(m["data"], json!(["gpt-x", "gpt-y"]));
    app.finish().await;
}
