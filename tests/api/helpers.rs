//! Test support: a real Tollgate on port 0 against a fresh database per test.
//!
//! Backends come from `TEST_DATABASES` (comma list of sqlite, postgres, mysql; default sqlite).
//! PostgreSQL and MySQL admin URLs come from `TEST_POSTGRES_URL` and `TEST_MYSQL_URL`; each test
//! creates its own database `t_<uuid>` there and drops it in `finish()`.
#![allow(dead_code)] // shared by every test module; not each uses every helper

use std::collections::HashMap;

use serde_json::{Value, json};
use sqlx::Connection;
use tollgate::config::Config;
use tollgate::startup::{Application, prepare_databases};
use tollgate::state::AppState;
use tollgate::store::Db;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }

    pub fn enabled(self) -> bool {
        let list = std::env::var("TEST_DATABASES").unwrap_or_else(|_| "sqlite".into());
        list.split(',').any(|b| b.trim() == self.name())
    }
}

/// Generates one test per backend for an `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! db_test {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                super::$name($crate::helpers::Backend::MySql).await
            }
        }
    )+};
}

/// Where the quota ledger keeps balances (docs/multi-node.md): the same tests run in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerMode {
    Database,
    Memory,
    Redis,
}

impl LedgerMode {
    /// The settings that select the mode, or `None` when it cannot run here (Redis tests need
    /// `TEST_REDIS_URL`). Each Redis app gets its own key prefix.
    pub fn env(self) -> Option<Vec<(String, String)>> {
        Some(match self {
            LedgerMode::Database => vec![],
            LedgerMode::Memory => vec![("MEMORY_CACHE_ENABLED".into(), "true".into())],
            LedgerMode::Redis => {
                let Some(url) = redis_url() else {
                    eprintln!("skipped: TEST_REDIS_URL not set");
                    return None;
                };
                vec![
                    ("REDIS_CONN_STRING".into(), url),
                    (
                        "REDIS_KEY_PREFIX".into(),
                        format!("t{}:", uuid::Uuid::new_v4().simple()),
                    ),
                ]
            }
        })
    }
}

/// A local address that refuses connections, and the socket that keeps it so: bound, never
/// listening. A listener bound and dropped frees its port for the next test that binds one, and a
/// test that took it for a closed port then reached another test's upstream (seen once in a full
/// run: the "refused" channel answered). Keep the socket until the test ends.
pub fn refusing_url() -> (socket2::Socket, String) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    s.bind(&any.into()).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    (s, format!("http://{addr}"))
}

pub fn redis_url() -> Option<String> {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// `GET key` on the Redis at `url`.
pub async fn redis_get(url: &str, key: &str) -> Option<String> {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap()
}

/// Generates one test per backend and ledger mode for an
/// `async fn name(backend: Backend, mode: LedgerMode)`.
#[macro_export]
macro_rules! ledger_test {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use $crate::helpers::{Backend, LedgerMode};
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name(Backend::Sqlite, LedgerMode::Database).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name(Backend::Postgres, LedgerMode::Database).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() { super::$name(Backend::MySql, LedgerMode::Database).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_memory() { super::$name(Backend::Sqlite, LedgerMode::Memory).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_memory() { super::$name(Backend::Postgres, LedgerMode::Memory).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql_memory() { super::$name(Backend::MySql, LedgerMode::Memory).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_redis() { super::$name(Backend::Sqlite, LedgerMode::Redis).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_redis() { super::$name(Backend::Postgres, LedgerMode::Redis).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql_redis() { super::$name(Backend::MySql, LedgerMode::Redis).await }
        }
    )+};
}

pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn mysql_admin_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

fn replace_db(url: &str, name: &str) -> String {
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
    format!("{base}/{name}")
}

/// A fresh, empty database for one test.
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> TestDatabase {
        sqlx::any::install_default_drivers();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("tollgate.db");
                TestDatabase {
                    backend,
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    name,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres | Backend::MySql => {
                let admin = if backend == Backend::Postgres {
                    postgres_admin_url()
                } else {
                    mysql_admin_url()
                };
                let mut conn = sqlx::AnyConnection::connect(&admin)
                    .await
                    .expect("connect to the admin database");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let _ = conn.close().await;
                TestDatabase {
                    backend,
                    url: replace_db(&admin, &name),
                    name,
                    _dir: None,
                }
            }
        }
    }

    /// The database's name on PostgreSQL and MySQL.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn drop_database(&self) {
        let admin = match self.backend {
            Backend::Sqlite => return,
            Backend::Postgres => postgres_admin_url(),
            Backend::MySql => mysql_admin_url(),
        };
        if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
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
            let _ = conn.close().await;
        }
    }
}

/// A running Tollgate.
pub struct TestApp {
    pub addr: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub state: AppState,
    pub database: TestDatabase,
    handle: actix_web::dev::ServerHandle,
}

/// Settings every test app gets; `extra` overrides them.
pub fn test_env(database: &TestDatabase, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("SQL_DSN", database.url.as_str()),
        ("SQL_MAX_OPEN_CONNS", "5"),
        ("SESSION_SECRET", "test-session-secret"),
        ("WORKERS", "1"),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        // Tests sign in often from one address; rate-limit tests lower these.
        ("GLOBAL_API_RATE_LIMIT", "100000"),
        ("CRITICAL_RATE_LIMIT", "100000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

pub fn cookie_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .build()
        .expect("client")
}

/// Starts Tollgate on a fresh database, or `None` when the backend is not enabled.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, &[]).await
}

pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
    if !backend.enabled() {
        eprintln!("skipped: backend {} not in TEST_DATABASES", backend.name());
        return None;
    }
    let database = TestDatabase::create(backend).await;
    Some(start_on(database, extra).await)
}

/// Starts Tollgate with its ledger in `mode`, or `None` when the backend or mode is not enabled.
pub async fn spawn_app_mode(
    backend: Backend,
    mode: LedgerMode,
    extra: &[(&str, &str)],
) -> Option<TestApp> {
    let mode_env = mode.env()?;
    let mut all: Vec<(&str, &str)> = mode_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    all.extend_from_slice(extra);
    spawn_app_with(backend, &all).await
}

/// Sends the server's warnings and errors to the test's captured output, so that a failing test
/// shows why the server answered as it did (libtest hands the capture on to the threads a test
/// starts, the server's workers included).
fn capture_server_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new("tollgate=warn"))
            .try_init();
    });
}

/// Starts Tollgate on an existing test database (e.g. to restart on the same data).
pub async fn start_on(database: TestDatabase, extra: &[(&str, &str)]) -> TestApp {
    let cfg = Config::from_map(&test_env(&database, extra)).expect("test config");
    let (state, handle, port) = serve(cfg).await;
    TestApp {
        addr: format!("http://127.0.0.1:{port}"),
        port,
        client: cookie_client(),
        state,
        database,
        handle,
    }
}

/// Migrates `cfg`'s databases and serves a node on a free port in the background: its state,
/// its server's handle and its port.
pub async fn serve(cfg: Config) -> (AppState, actix_web::dev::ServerHandle, u16) {
    capture_server_logs();
    let (db, log_db) = prepare_databases(&cfg).await.expect("prepare databases");
    let listener = tollgate::startup::bind_listener("127.0.0.1", 0).expect("bind");
    let app = Application::build_with(cfg, db, log_db, listener)
        .await
        .expect("build app");
    let port = app.port();
    let state = app.state().clone();
    let server = app.into_server();
    let handle = server.handle();
    tokio::spawn(server);
    (state, handle, port)
}

impl TestApp {
    pub fn db(&self) -> &Db {
        &self.state.db
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.addr, path)
    }

    /// Stops the server and returns the database, to start again on the same data.
    pub async fn stop(self) -> TestDatabase {
        self.handle.stop(true).await;
        self.state.db.pool.close().await;
        self.database
    }

    /// Stops the server and drops the test database.
    pub async fn finish(self) {
        let database = self.stop().await;
        database.drop_database().await;
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    /// Signs this app's client in; panics unless it succeeds.
    pub async fn login(&self, username: &str, password: &str) -> Value {
        let res = self
            .post_json(
                "/api/user/login",
                &json!({"username": username, "password": password}),
            )
            .await;
        let body: Value = res.json().await.expect("login json");
        assert_eq!(body["success"], true, "login failed: {body}");
        body
    }

    pub async fn login_root(&self) -> Value {
        self.login("root", "123456").await
    }
}

/// A signed-in client of a test app (its own cookie jar).
pub struct Sess {
    pub base: String,
    pub client: reqwest::Client,
}

impl Sess {
    async fn send(&self, req: reqwest::RequestBuilder) -> Value {
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        serde_json::from_str(&text)
            .unwrap_or_else(|_| json!({"_status": status.as_u16(), "_text": text}))
    }
    pub async fn get(&self, path: &str) -> Value {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Value {
        self.send(self.client.post(format!("{}{path}", self.base)).json(body))
            .await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Value {
        self.send(self.client.put(format!("{}{path}", self.base)).json(body))
            .await
    }
    pub async fn delete(&self, path: &str) -> Value {
        self.send(self.client.delete(format!("{}{path}", self.base)))
            .await
    }
}

/// A unique short username (≤ 12 chars).
pub fn uname(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{}{}", &prefix[..prefix.len().min(4)], &id[..8])
}

impl TestApp {
    /// A fresh client signed in as `username`.
    pub async fn session(&self, username: &str, password: &str) -> Sess {
        let s = Sess {
            base: self.addr.clone(),
            client: cookie_client(),
        };
        let body = s
            .post(
                "/api/user/login",
                &json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(body["success"], true, "login {username} failed: {body}");
        s
    }

    pub async fn root(&self) -> Sess {
        self.session("root", "123456").await
    }

    /// An anonymous client.
    pub fn anon(&self) -> Sess {
        Sess {
            base: self.addr.clone(),
            client: cookie_client(),
        }
    }

    /// Creates a user (as root) with `role` 1 or 10 and returns (id, signed-in session).
    pub async fn user_with_role(&self, role: i64) -> (i64, String, Sess) {
        let root = self.root().await;
        let name = uname(if role >= 10 { "adm" } else { "usr" });
        let r = root
            .post(
                "/api/user/",
                &json!({"username": name, "password": "password123"}),
            )
            .await;
        assert_eq!(r["success"], true, "{r}");
        if role >= 10 {
            let r = root
                .post(
                    "/api/user/manage",
                    &json!({"username": name, "action": "promote"}),
                )
                .await;
            assert_eq!(r["success"], true, "{r}");
        }
        let id = self.user_id(&name).await;
        let s = self.session(&name, "password123").await;
        (id, name, s)
    }

    pub async fn user_id(&self, username: &str) -> i64 {
        tollgate::store::users::get_by_username(self.db(), username)
            .await
            .unwrap()
            .expect("user")
            .id
    }
}
