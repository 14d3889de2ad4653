//! The databases and Redis over their unix sockets, in the forms One API's drivers accept:
//! `user@unix(/path/mysqld.sock)/db` (Go's MySQL driver), `postgres://...?host=/socket/dir`, and
//! go-redis's `unix://[user:password@]/path/redis.sock?db=N`. Each test asks the server which
//! kind of connection it has, so a silent fall back to TCP fails it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::json;
use sqlx::Row;

use crate::helpers::{
    Backend, TestApp, TestDatabase, mysql_admin_url, postgres_admin_url, redis_get, redis_url,
    start_on,
};
use crate::mock_upstream::{MockUpstream, Reply, chat_completion};
use crate::relay_helpers::*;

/// A Redis of the test's own that listens on a unix socket only (`--port 0`).
struct SocketRedis {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl SocketRedis {
    async fn start() -> SocketRedis {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package) starts");
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(socket.exists(), "redis-server made no socket");
        SocketRedis {
            child,
            socket,
            _dir: dir,
        }
    }

    async fn get(&self, key: &str) -> Option<String> {
        redis_get(&format!("unix://{}", self.socket.display()), key).await
    }
}

impl Drop for SocketRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn admin_value(url: &str, sql: &str) -> String {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get::<String, _>(0)
}

/// One relayed request, billed through `app`: the user's balance and its consume log.
async fn relay_is_billed(app: &TestApp) -> (i64, i64) {
    let up = MockUpstream::start(|_| Reply::json(200, chat_completion("hi", 10, 20))).await;
    channel(app, &up.url, "gpt-3.5-turbo").await;
    let uid = user(app, 1_000_000, "default", 1).await;
    let (_, key) = token(app, uid, None).await;
    let body = json!({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        post(app, &key, "/v1/chat/completions", &body)
            .await
            .status(),
        200
    );
    settled(app).await;
    eventually(|| async { logged_quota(app, uid).await > 0 }).await;
    let charged = logged_quota(app, uid).await;
    eventually(|| async { user_row(app, uid).await.quota == 1_000_000 - charged }).await;
    (uid, charged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_and_redis_over_unix_sockets() {
    if !Backend::MySql.enabled() || redis_url().is_none() {
        eprintln!("skipped: needs mysql in TEST_DATABASES and TEST_REDIS_URL");
        return;
    }
    let redis = SocketRedis::start().await;
    let database = TestDatabase::create(Backend::MySql).await;
    let mysql_socket = admin_value(&mysql_admin_url(), "SELECT @@socket").await;
    assert!(Path::new(&mysql_socket).exists(), "{mysql_socket}");
    let dsn = format!(
        "root@unix({mysql_socket})/{}?parseTime=true",
        database.name()
    );
    let prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    let app = start_on(
        database,
        &[
            ("SQL_DSN", &dsn),
            (
                "REDIS_CONN_STRING",
                &format!("unix://{}?db=0", redis.socket.display()),
            ),
            ("REDIS_KEY_PREFIX", &prefix),
        ],
    )
    .await;

    // MySQL reports a socket client's host without a port ("localhost"; "localhost:<port>"
    // over TCP).
    let host: String =
        sqlx::query("SELECT host FROM information_schema.processlist WHERE id = CONNECTION_ID()")
            .fetch_one(&app.db().pool)
            .await
            .unwrap()
            .get(0);
    assert_eq!(host, "localhost");

    let (uid, charged) = relay_is_billed(&app).await;
    assert!(charged > 0);
    // The balance the request was reserved from lives in the socket-only Redis.
    let tollgate::billing::ledger::Balances::Redis(q) = app.state.relay.ledger.balances() else {
        panic!("balances are not in Redis");
    };
    assert_eq!(
        redis.get(&q.user_key(uid)).await,
        Some((1_000_000 - charged).to_string())
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_its_unix_socket() {
    if !Backend::Postgres.enabled() {
        eprintln!("skipped: postgres not in TEST_DATABASES");
        return;
    }
    let database = TestDatabase::create(Backend::Postgres).await;
    let dirs = admin_value(&postgres_admin_url(), "SHOW unix_socket_directories").await;
    let dir = dirs.split(',').next().unwrap().trim().to_string();
    let dsn = format!(
        "postgres://postgres@localhost/{}?host={dir}",
        database.name()
    );
    let app = start_on(database, &[("SQL_DSN", &dsn)]).await;

    // No client address: a unix-socket connection.
    let addr: Option<String> = sqlx::query("SELECT CAST(inet_client_addr() AS TEXT)")
        .fetch_one(&app.db().pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(addr, None);

    relay_is_billed(&app).await;
    app.finish().await;
}
