//! Several real `tollgate` processes — a master and a slave — on one PostgreSQL or MySQL database
//! and one Redis: changes made on one node hold on the other at once, quota is exact across
//! nodes under load, a node killed with SIGKILL loses no billed request, and a Redis outage gives
//! clear 503s and heals by itself (docs/multi-node.md).
//!
//! Runs for each of `postgres` and `mysql` listed in `TEST_DATABASES`, and only with
//! `TEST_REDIS_URL` set (`.ci/run` sets both).

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{Connection, Row};
use tokio::io::AsyncWriteExt;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");
const ROOT_TOKEN: &str = "sk-nodesroottoken0000000000000000000000000000000";
const ACCESS: &str = "nodes-test-access-token-000000000000";

#[path = "support/ports.rs"]
mod ports;
use ports::free_port;

/// Whether the node answers `GET /api/status` with 200.
fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Backend {
    Postgres,
    MySql,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }
    fn admin_url(self) -> String {
        match self {
            Backend::Postgres => std::env::var("TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
            Backend::MySql => std::env::var("TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into()),
        }
    }
}

/// A database and a Redis key prefix shared by the nodes of one test.
struct Cluster {
    backend: Backend,
    name: String,
    dsn: String,
    redis_url: String,
    prefix: String,
    mock: MockServer,
}

impl Cluster {
    /// `None` (test skipped) unless the backend and Redis are configured.
    async fn new(backend: Backend) -> Option<Cluster> {
        let dbs = std::env::var("TEST_DATABASES").unwrap_or_default();
        let Some(redis_url) = std::env::var("TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("skipped: TEST_REDIS_URL not set");
            return None;
        };
        if !dbs.split(',').any(|d| d.trim() == backend.name()) {
            eprintln!("skipped: {} not in TEST_DATABASES", backend.name());
            return None;
        }
        sqlx::any::install_default_drivers();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = backend.admin_url();
        let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').unwrap().0;
        let mock = MockServer::start().await;
        // Every answer costs ceil(15 * (10 + 20 * 2)) = 750 on gpt-4.
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({
                        "id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                        "model": "gpt-4",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "hi"}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
                    }))
                    .set_delay(Duration::from_millis(5)),
            )
            .mount(&mock)
            .await;
        Some(Cluster {
            backend,
            dsn: format!("{base}/{name}"),
            name,
            redis_url,
            prefix: format!("n{}:", uuid::Uuid::new_v4().simple()),
            mock,
        })
    }

    fn node(&self, slave: bool, redis: &str) -> Node {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(BIN)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("SQL_DSN", &self.dsn)
            .env("SQL_MAX_OPEN_CONNS", "10")
            .env("REDIS_CONN_STRING", redis)
            .env("REDIS_KEY_PREFIX", &self.prefix)
            .env("SESSION_SECRET", "nodes-test-secret")
            .env("NODE_TYPE", if slave { "slave" } else { "master" })
            .env("SYNC_FREQUENCY", "600")
            .env("INITIAL_ROOT_TOKEN", ROOT_TOKEN)
            .env("INITIAL_ROOT_ACCESS_TOKEN", ACCESS)
            .env("GLOBAL_API_RATE_LIMIT", "1000000")
            .env("GLOBAL_WEB_RATE_LIMIT", "1000000")
            .env("CRITICAL_RATE_LIMIT", "1000000")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let node = Node {
            port,
            child,
            _dir: dir,
        };
        // Ready when it answers (the port is bound before the server runs).
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(port) {
            assert!(Instant::now() < deadline, "node on {port} did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        node
    }

    async fn db(&self) -> sqlx::AnyConnection {
        sqlx::AnyConnection::connect(&self.dsn).await.unwrap()
    }

    async fn scalar(&self, sql: &str) -> i64 {
        let mut c = self.db().await;
        let sql = if self.backend == Backend::MySql {
            format!("SELECT CAST(({sql}) AS SIGNED)")
        } else {
            format!("SELECT CAST(({sql}) AS BIGINT)")
        };
        let v: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut c)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        let _ = c.close().await;
        v
    }

    async fn redis(&self, cmd: &[&str]) -> redis::Value {
        let client = redis::Client::open(self.redis_url.as_str()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let mut command = redis::cmd(cmd[0]);
        for a in &cmd[1..] {
            command.arg(*a);
        }
        command.query_async(&mut c).await.unwrap()
    }

    async fn redis_balance(&self, key: &str) -> Option<i64> {
        match self.redis(&["GET", key]).await {
            redis::Value::BulkString(b) => String::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// Nothing waits in Redis: every stream written back and every hold settled or released.
    async fn drained(&self) -> bool {
        for shard in 0..8 {
            let stream = format!("{}{{q{shard}}}:moves", self.prefix);
            let holds = format!("{}{{q{shard}}}:holds", self.prefix);
            if self.redis(&["XLEN", &stream]).await != redis::Value::Int(0) {
                return false;
            }
            if self.redis(&["HLEN", &holds]).await != redis::Value::Int(0) {
                return false;
            }
        }
        true
    }

    async fn finish(self) {
        let mut conn = sqlx::AnyConnection::connect(&self.backend.admin_url())
            .await
            .unwrap();
        let force = if self.backend == Backend::Postgres {
            " WITH (FORCE)"
        } else {
            ""
        };
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {}{force}",
            self.name
        )))
        .execute(&mut conn)
        .await;
    }
}

struct Node {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn api(
    c: &reqwest::Client,
    node: &Node,
    m: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let res = c
        .request(m, node.url(path))
        .header("Authorization", ACCESS)
        .json(&body)
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["success"], true, "{path}: {v}");
    v
}

async fn chat(
    c: &reqwest::Client,
    node: &Node,
    key: &str,
) -> Result<(u16, String), reqwest::Error> {
    let res = c
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-4", "max_tokens": 92,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await?;
    let status = res.status().as_u16();
    let id = res
        .headers()
        .get("x-oneapi-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = res.bytes().await?;
    if status != 200 {
        eprintln!("{status}: {}", String::from_utf8_lossy(&body));
    }
    Ok((status, id))
}

async fn eventually<F, Fut>(what: &str, within: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn add_channel(c: &reqwest::Client, node: &Node, base: &str) -> i64 {
    api(
        c,
        node,
        reqwest::Method::POST,
        "/api/channel/",
        json!({"type": 1, "name": "mock", "key": "sk-upstream", "base_url": base,
               "models": "gpt-4", "group": "default"}),
    )
    .await;
    let list = api(
        c,
        node,
        reqwest::Method::GET,
        "/api/channel/?p=0",
        json!({}),
    )
    .await;
    list["data"][0]["id"].as_i64().unwrap()
}

async fn add_token(c: &reqwest::Client, node: &Node, remain: Option<i64>) -> (i64, String) {
    let v = api(
        c,
        node,
        reqwest::Method::POST,
        "/api/token/",
        json!({"name": "load", "remain_quota": remain.unwrap_or(0),
               "unlimited_quota": remain.is_none(), "expired_time": -1}),
    )
    .await;
    (
        v["data"]["id"].as_i64().unwrap(),
        format!("sk-{}", v["data"]["key"].as_str().unwrap()),
    )
}

async fn changes_hold_on_every_node(backend: Backend) {
    let Some(cl) = Cluster::new(backend).await else {
        return;
    };
    let master = cl.node(false, &cl.redis_url);
    let slave = cl.node(true, &cl.redis_url);
    let c = client();
    let channel = add_channel(&c, &master, &cl.mock.uri()).await;

    // A token created on the master works on the slave within a second.
    let (tid, key) = add_token(&c, &master, None).await;
    let t0 = Instant::now();
    eventually(
        "token usable on the slave",
        Duration::from_secs(1),
        || async { matches!(chat(&c, &slave, &key).await, Ok((200, _))) },
    )
    .await;
    eprintln!("token usable on the slave after {:?}", t0.elapsed());
    // Both nodes now hold the token in their caches (TTL 60 s here).
    assert_eq!(chat(&c, &master, &key).await.unwrap().0, 200);

    // Disabled on the master: refused on the slave at once, not after the cache TTL.
    api(
        &c,
        &master,
        reqwest::Method::PUT,
        "/api/token/?status_only=1",
        json!({"id": tid, "status": 2}),
    )
    .await;
    eventually(
        "token refused on the slave",
        Duration::from_secs(1),
        || async { matches!(chat(&c, &slave, &key).await, Ok((401, _))) },
    )
    .await;

    // A channel disabled on the slave stops being used by the master.
    api(
        &c,
        &slave,
        reqwest::Method::PUT,
        "/api/token/?status_only=1",
        json!({"id": tid, "status": 1}),
    )
    .await;
    eventually(
        "token usable again on the master",
        Duration::from_secs(1),
        || async { matches!(chat(&c, &master, &key).await, Ok((200, _))) },
    )
    .await;
    api(
        &c,
        &slave,
        reqwest::Method::PUT,
        "/api/channel/",
        json!({"id": channel, "status": 2}),
    )
    .await;
    eventually(
        "channel unused by the master",
        Duration::from_secs(1),
        || async { matches!(chat(&c, &master, &key).await, Ok((503, _))) },
    )
    .await;
    // Re-enabled on the master: the slave routes to it again.
    api(
        &c,
        &master,
        reqwest::Method::PUT,
        "/api/channel/",
        json!({"id": channel, "status": 1}),
    )
    .await;
    eventually(
        "channel back on the slave",
        Duration::from_secs(1),
        || async { matches!(chat(&c, &slave, &key).await, Ok((200, _))) },
    )
    .await;

    // One SESSION_SECRET: signed in on the master, signed in on the slave.
    api(
        &c,
        &master,
        reqwest::Method::POST,
        "/api/user/",
        json!({"username": "alice", "password": "alice-pass-1", "display_name": "Alice"}),
    )
    .await;
    let alice = reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .build()
        .unwrap();
    let login: Value = alice
        .post(master.url("/api/user/login"))
        .json(&json!({"username": "alice", "password": "alice-pass-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(login["success"], true, "{login}");
    let me = |node: &Node| {
        let (alice, url) = (alice.clone(), node.url("/api/user/self"));
        async move {
            let v: Value = alice.get(url).send().await.unwrap().json().await.unwrap();
            v["success"] == true
        }
    };
    assert!(me(&slave).await, "the master's session works on the slave");
    let t: Value = alice
        .post(slave.url("/api/token/"))
        .json(&json!({"name": "a", "unlimited_quota": true, "expired_time": -1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alice_key = format!("sk-{}", t["data"]["key"].as_str().unwrap());
    // The master caches Alice (her wallet is empty: refused for quota, not for her status).
    let banned = |node: &Node| {
        let (c, url, key) = (
            c.clone(),
            node.url("/v1/chat/completions"),
            alice_key.clone(),
        );
        async move {
            let res = c
                .post(url)
                .bearer_auth(key)
                .json(&json!({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}))
                .send()
                .await
                .unwrap();
            res.text().await.unwrap().contains("用户已被封禁")
        }
    };
    assert!(!banned(&master).await);
    // Banned on the slave: refused by the master's relay and signed out there at once.
    api(
        &c,
        &slave,
        reqwest::Method::POST,
        "/api/user/manage",
        json!({"username": "alice", "action": "disable"}),
    )
    .await;
    eventually(
        "ban holds on the master",
        Duration::from_secs(1),
        || async { banned(&master).await && !me(&master).await },
    )
    .await;
    drop((master, slave));
    cl.finish().await;
}

/// 500 requests spread over both nodes against a token that covers far fewer; the slave is
/// killed with SIGKILL mid-load and restarted. Afterwards nothing is overdrawn, the database and
/// Redis agree, and every request a client saw succeed is in the consume logs exactly once.
async fn quota_is_exact_across_nodes(backend: Backend) {
    let Some(cl) = Cluster::new(backend).await else {
        return;
    };
    let master = cl.node(false, &cl.redis_url);
    let mut slave = cl.node(true, &cl.redis_url);
    let c = client();
    add_channel(&c, &master, &cl.mock.uri()).await;
    // Each request reserves ceil(15 * (8 + 92)) = 1500 and costs 750: 150 fit at most.
    let initial = 150 * 750;
    let (tid, key) = add_token(&c, &master, Some(initial)).await;
    let root_before = cl.scalar("SELECT quota FROM users WHERE id = 1").await;

    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let killed = Arc::new(AtomicBool::new(false));
    let mut ok_ids = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    for round in 0..2 {
        // Round 0: 200 requests, the slave killed after its first 60; round 1: 300 more on the
        // master and the restarted slave.
        let n = if round == 0 { 200 } else { 300 };
        let ports = (master.port, slave.port);
        let mut tasks = Vec::new();
        for i in 0..n {
            let c = c.clone();
            let key = key.clone();
            let permit = sem.clone().acquire_owned().await.unwrap();
            let port = if i % 2 == 0 { ports.0 } else { ports.1 };
            if round == 0 && i == 120 && !killed.swap(true, Ordering::SeqCst) {
                slave.kill();
            }
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                let node_url = format!("http://127.0.0.1:{port}/v1/chat/completions");
                let res = c
                    .post(node_url)
                    .bearer_auth(&key)
                    .json(&json!({"model": "gpt-4", "max_tokens": 92,
                                  "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await;
                match res {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let id = r
                            .headers()
                            .get("x-oneapi-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        match r.bytes().await {
                            Ok(_) => (status, id),
                            Err(_) => (0, String::new()),
                        }
                    }
                    Err(_) => (0, String::new()),
                }
            }));
        }
        for t in tasks {
            let (status, id) = t.await.unwrap();
            *statuses.entry(status).or_insert(0) += 1;
            if status == 200 {
                ok_ids.push(id);
            }
        }
        if round == 0 {
            slave = cl.node(true, &cl.redis_url);
        }
    }
    eprintln!("statuses: {statuses:?}");
    assert!(
        statuses.get(&200).copied().unwrap_or(0) >= 50,
        "{statuses:?}"
    );
    for s in statuses.keys() {
        assert!(
            [0, 200, 403].contains(s),
            "only successes, refusals for quota, and connections cut by the kill: {statuses:?}"
        );
    }

    // The killed node's holds are released once its heartbeat expires; the streams drain.
    eventually("Redis drained", Duration::from_secs(30), || cl.drained()).await;
    let token_key = format!("{}{{q1}}:t:{tid}", cl.prefix);
    let user_key = format!("{}{{q1}}:u:1", cl.prefix);
    let logged = cl
        .scalar(&format!(
            "SELECT COALESCE(SUM(quota), 0) FROM logs WHERE type = 2 AND token_id = {tid}"
        ))
        .await;
    let count = cl
        .scalar(&format!(
            "SELECT COUNT(*) FROM logs WHERE type = 2 AND token_id = {tid}"
        ))
        .await;
    let db_remain = cl
        .scalar(&format!("SELECT remain_quota FROM tokens WHERE id = {tid}"))
        .await;
    let db_root = cl.scalar("SELECT quota FROM users WHERE id = 1").await;
    assert!(db_remain >= 0, "overdrawn: {db_remain}");
    assert_eq!(
        db_remain,
        initial - logged,
        "database = initial - consume logs"
    );
    assert_eq!(
        cl.redis_balance(&token_key).await,
        Some(db_remain),
        "Redis = database"
    );
    assert_eq!(db_root, root_before - logged);
    assert_eq!(cl.redis_balance(&user_key).await, Some(db_root));
    assert_eq!(logged, 750 * count, "every log at the price");
    // Every success a client saw is billed, exactly once.
    let mut conn = cl.db().await;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT request_id FROM logs WHERE type = 2 AND token_id = {tid}"
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let logged_ids: Vec<String> = rows.iter().map(|r| r.try_get(0).unwrap()).collect();
    let unique: HashSet<&String> = logged_ids.iter().collect();
    assert_eq!(unique.len(), logged_ids.len(), "a request billed twice");
    for id in &ok_ids {
        assert!(
            unique.contains(id),
            "a success the client saw is not billed: {id}"
        );
    }
    let _ = conn.close().await;
    drop((master, slave));
    cl.finish().await;
}

/// A TCP relay to Redis that can stop forwarding (and drop what it gets) and resume.
async fn redis_proxy(target: String, serving: Arc<AtomicBool>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let serving = serving.clone();
            let target = target.clone();
            tokio::spawn(async move {
                if !serving.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown().await;
                    return;
                }
                let Ok(mut out) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let (mut ri, mut wi) = inbound.split();
                let (mut ro, mut wo) = out.split();
                let a = async {
                    let mut buf = vec![0u8; 16384];
                    loop {
                        let n = match tokio::io::AsyncReadExt::read(&mut ri, &mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if !serving.load(Ordering::SeqCst) {
                            return; // drop the connection mid-traffic
                        }
                        if wo.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let b = async {
                    let _ = tokio::io::copy(&mut ro, &mut wi).await;
                };
                tokio::select! { _ = a => {}, _ = b => {} }
            });
        }
    });
    port
}

async fn redis_outage_gives_503_and_heals(backend: Backend) {
    let Some(cl) = Cluster::new(backend).await else {
        return;
    };
    let serving = Arc::new(AtomicBool::new(true));
    let target = cl
        .redis_url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let port = redis_proxy(target, serving.clone()).await;
    let node = cl.node(false, &format!("redis://127.0.0.1:{port}"));
    let c = client();
    add_channel(&c, &node, &cl.mock.uri()).await;
    let initial = 1_000_000;
    let (tid, key) = add_token(&c, &node, Some(initial)).await;
    for _ in 0..5 {
        assert_eq!(chat(&c, &node, &key).await.unwrap().0, 200);
    }
    // Redis goes away: a clear 503 in OpenAI's format, quickly, and no panic.
    serving.store(false, Ordering::SeqCst);
    let mut saw_503 = false;
    for _ in 0..5 {
        let t = Instant::now();
        let res = c
            .post(node.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": "gpt-4", "max_tokens": 92,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(10));
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert!(status == 503 || status == 200, "{status} {body}");
        if status == 503 {
            assert!(
                body["error"]["message"].as_str().unwrap().contains("quota"),
                "{body}"
            );
            saw_503 = true;
        }
    }
    assert!(saw_503);
    // Redis is back: the node heals by itself and the ledger is exact.
    serving.store(true, Ordering::SeqCst);
    eventually("node heals", Duration::from_secs(20), || async {
        matches!(chat(&c, &node, &key).await, Ok((200, _)))
    })
    .await;
    eventually("Redis drained", Duration::from_secs(20), || cl.drained()).await;
    let logged = cl
        .scalar(&format!(
            "SELECT COALESCE(SUM(quota), 0) FROM logs WHERE type = 2 AND token_id = {tid}"
        ))
        .await;
    let db_remain = cl
        .scalar(&format!("SELECT remain_quota FROM tokens WHERE id = {tid}"))
        .await;
    assert_eq!(db_remain, initial - logged);
    let token_key = format!("{}{{q1}}:t:{tid}", cl.prefix);
    assert_eq!(cl.redis_balance(&token_key).await, Some(db_remain));
    drop(node);
    cl.finish().await;
}

macro_rules! per_backend {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() { super::$name(super::Backend::Postgres).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mysql() { super::$name(super::Backend::MySql).await }
        }
    )+};
}

per_backend!(
    changes_hold_on_every_node,
    quota_is_exact_across_nodes,
    redis_outage_gives_503_and_heals
);
