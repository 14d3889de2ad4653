//! Logs benchmark (issue 8): a `logs` table of millions of rows (default 10 million: ~1,000 users,
//! 10,000 named tokens, 50 models, 90 days, 97% consume logs), generated inside the database
//! (a recursive CTE on SQLite, `generate_series` on PostgreSQL), then the real Tollgate started
//! in-process on it and the dashboard's log queries timed over HTTP (p50 and max over
//! `--reps` calls after one warm-up call).
//!
//!     cargo bench --bench logs -- [--rows N] [--reps N] [--postgres URL] [--no-sqlite] [--fresh]
//!
//! The generated databases are kept (`target/bench-logs/` for SQLite, database
//! `tollgate_bench_logs_<rows>` next to the `--postgres` URL's) and reused by the next run with
//! the same `--rows`; `--fresh` regenerates. `scripts/bench-logs` wraps this; the measured
//! figures are in docs/benchmarks.md.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use tollgate::config::Config;
use tollgate::startup::{Application, prepare_databases};
use tollgate::store::{Backend, Db, PoolSettings};

const USERS: i64 = 1_000;
const TOKENS_PER_USER: i64 = 10;
const MODELS: i64 = 50;
const DAYS: i64 = 90;
/// Rows per generating statement (progress is printed after each).
const CHUNK: i64 = 1_000_000;
const BENCH_USER: &str = "benchuser";
const BENCH_PASSWORD: &str = "bench-password-1";

#[derive(Debug, Clone)]
struct Args {
    rows: i64,
    reps: usize,
    postgres: Option<String>,
    sqlite: bool,
    fresh: bool,
}

fn args() -> Args {
    let mut a = Args {
        rows: 10_000_000,
        reps: 15,
        postgres: std::env::var("BENCH_POSTGRES_URL").ok(),
        sqlite: true,
        fresh: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--rows" => a.rows = it.next().and_then(|n| n.parse().ok()).unwrap_or(a.rows),
            "--reps" => a.reps = it.next().and_then(|n| n.parse().ok()).unwrap_or(a.reps),
            "--postgres" => a.postgres = it.next(),
            "--no-sqlite" => a.sqlite = false,
            "--fresh" => a.fresh = true,
            // `cargo bench` passes `--bench`.
            _ => {}
        }
    }
    a
}

/// The token names of a user: ten realistic names, made unique with the user id.
const TOKEN_NAMES: [&str; 10] = [
    "default", "prod", "dev", "ci", "laptop", "server", "chatbot", "team", "test", "backup",
];

/// The SELECT that produces rows `i` in `[lo, hi)`; `series` is the row source for the backend.
/// Every column derives from `i` by integer hashing, so both backends hold the same data.
fn row_select(backend: Backend, lo: i64, hi: i64, rows: i64, t0: i64) -> String {
    let span = DAYS * 86_400;
    let (series, name_of, model_of, req_of) = match backend {
        Backend::Postgres => (
            format!("generate_series({lo}::bigint, {hi}::bigint - 1) AS s(i)"),
            format!("(ARRAY['{}'])[k + 1] || '-' || u", TOKEN_NAMES.join("','")),
            "'model-' || lpad(m::text, 2, '0')".to_string(),
            "'2026' || lpad(i::text, 16, '0')".to_string(),
        ),
        _ => (
            format!(
                "(WITH RECURSIVE s(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM s WHERE i < {hi} - 1) SELECT i FROM s) AS s"
            ),
            {
                let mut c = String::from("CASE k");
                for (n, name) in TOKEN_NAMES.iter().enumerate() {
                    let _ = write!(c, " WHEN {n} THEN '{name}'");
                }
                c.push_str(" END || '-' || u");
                c
            },
            "printf('model-%02d', m)".to_string(),
            "printf('2026%016d', i)".to_string(),
        ),
    };
    // u: user 2..=1001 (user 2 is the bench user, created through the API); k: one of the user's
    // ten tokens; m: model; t: 97% consume (2), then top-up (1), manage (3), system (4).
    format!(
        "SELECT u, {t0} + (i * {span}) / {rows}, t, \
           CASE WHEN t = 2 THEN 'model ratio 1.00, group ratio 1.00, completion ratio 2.00' \
                ELSE 'admin note ' || i END, \
           CASE WHEN u = 2 THEN '{BENCH_USER}' ELSE 'user' || u END, \
           CASE WHEN t = 2 THEN {name_of} ELSE '' END, \
           CASE WHEN t = 2 THEN (u - 2) * {TOKENS_PER_USER} + k + 1 ELSE 0 END, \
           CASE WHEN t = 2 THEN {model_of} ELSE '' END, \
           (i * 31) % 5000 + 1, \
           CASE WHEN t = 2 THEN (i * 17) % 2000 + 1 ELSE 0 END, \
           CASE WHEN t = 2 THEN (i * 13) % 1000 + 1 ELSE 0 END, \
           CASE WHEN t = 2 THEN i % 20 + 1 ELSE 0 END, \
           {req_of}, i % 3000, i % 2, 0 \
         FROM (SELECT i, \
                 (i * 2654435761) % 1000003 % {USERS} + 2 AS u, \
                 (i * 40503) % 65521 % {TOKENS_PER_USER} AS k, \
                 (i * 48271) % 2147483647 % {MODELS} AS m, \
                 CASE i % 100 WHEN 0 THEN 1 WHEN 1 THEN 3 WHEN 2 THEN 4 ELSE 2 END AS t \
               FROM {series}) AS g"
    )
}

const INSERT_COLUMNS: &str = "INSERT INTO logs (user_id, created_at, type, content, username, \
    token_name, token_id, model_name, quota, prompt_tokens, completion_tokens, channel_id, \
    request_id, elapsed_time, is_stream, system_prompt_reset) ";

async fn exec(db: &Db, sql: &str) -> anyhow::Result<u64> {
    Ok(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&db.pool)
        .await?
        .rows_affected())
}

async fn count_logs(db: &Db) -> anyhow::Result<i64> {
    let row = sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM logs")
        .fetch_one(&db.pool)
        .await?;
    Ok(sqlx::Row::try_get(&row, 0)?)
}

/// The `CREATE INDEX` statements of `logs` (to drop them while loading and rebuild after).
async fn log_indexes(db: &Db) -> anyhow::Result<Vec<(String, String)>> {
    let sql = match db.backend {
        Backend::Postgres => {
            "SELECT indexname::text, indexdef::text FROM pg_indexes WHERE tablename = 'logs' \
             AND indexname NOT LIKE '%pkey'"
        }
        _ => {
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'logs' \
              AND sql IS NOT NULL"
        }
    };
    let rows = sqlx::query(sql).fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| Ok((sqlx::Row::try_get(r, 0)?, sqlx::Row::try_get(r, 1)?)))
        .collect()
}

/// Fills `logs` with `rows` generated rows (the table must be empty), indexes rebuilt after.
async fn generate(db: &Db, rows: i64, t0: i64) -> anyhow::Result<()> {
    let started = Instant::now();
    let indexes = log_indexes(db).await?;
    for (name, _) in &indexes {
        exec(db, &format!("DROP INDEX {name}")).await?;
    }
    if db.backend == Backend::Sqlite {
        exec(db, "PRAGMA synchronous = OFF").await?;
    }
    let mut lo = 0;
    while lo < rows {
        let hi = (lo + CHUNK).min(rows);
        let sql = format!(
            "{INSERT_COLUMNS}{}",
            row_select(db.backend, lo, hi, rows, t0)
        );
        exec(db, &sql).await?;
        lo = hi;
        eprintln!(
            "  {lo} / {rows} rows ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    for (name, def) in &indexes {
        let t = Instant::now();
        exec(db, def).await?;
        eprintln!("  index {name} ({:.0} s)", t.elapsed().as_secs_f64());
    }
    // The rows went around the ledger writer: compute their rollup as the migration's backfill
    // does for an upgraded database.
    let t = Instant::now();
    tollgate::store::log_rollups::rebuild(db).await?;
    eprintln!("  log rollup rebuilt ({:.0} s)", t.elapsed().as_secs_f64());
    if db.backend == Backend::Postgres {
        // What autovacuum does soon after a bulk load: statistics and the visibility map
        // (index-only scans).
        exec(db, "VACUUM ANALYZE logs").await?;
        exec(db, "VACUUM ANALYZE log_rollups").await?;
    }
    eprintln!(
        "  generated {rows} rows in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A running in-process Tollgate and two signed-in clients.
struct Running {
    root: reqwest::Client,
    user: reqwest::Client,
    base: String,
    handle: actix_web::dev::ServerHandle,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("client")
}

async fn login(c: &reqwest::Client, base: &str, user: &str, password: &str) -> anyhow::Result<()> {
    let r: Value = c
        .post(format!("{base}/api/user/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(r["success"] == true, "login {user}: {r}");
    Ok(())
}

async fn start(sql_dsn: &str) -> anyhow::Result<Running> {
    let env: HashMap<String, String> = [
        ("SQL_DSN", sql_dsn),
        ("SESSION_SECRET", "bench-logs"),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("GLOBAL_API_RATE_LIMIT", "1000000"),
        ("CRITICAL_RATE_LIMIT", "1000000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cfg = Config::from_map(&env)?;
    let (db, log_db) = prepare_databases(&cfg).await?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let app = Application::build_with(cfg, db, log_db, listener).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = app.into_server();
    let handle = server.handle();
    tokio::spawn(server);
    let root = client();
    login(&root, &base, "root", "123456").await?;
    // The bench user (id 2: the first user after root) owns a thousandth of the logs.
    let r: Value = root
        .post(format!("{base}/api/user/"))
        .json(&json!({"username": BENCH_USER, "password": BENCH_PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    if r["success"] != true && !r.to_string().contains("exist") && !r.to_string().contains("已") {
        anyhow::bail!("creating the bench user: {r}");
    }
    let user = client();
    login(&user, &base, BENCH_USER, BENCH_PASSWORD).await?;
    Ok(Running {
        root,
        user,
        base,
        handle,
    })
}

struct Timing {
    name: String,
    p50: f64,
    max: f64,
    summary: String,
}

async fn time_call(
    c: &reqwest::Client,
    base: &str,
    name: &str,
    path: &str,
    reps: usize,
) -> anyhow::Result<Timing> {
    let mut ms = Vec::with_capacity(reps);
    let mut summary = String::new();
    for i in 0..=reps {
        let t = Instant::now();
        let res = c.get(format!("{base}{path}")).send().await?;
        let body: Value = res.json().await?;
        let elapsed = t.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(body["success"] == true, "{path}: {body}");
        if i == 0 {
            // Warm-up, not counted.
            summary = match &body["data"] {
                Value::Array(a) => format!("{} rows", a.len()),
                Value::Object(o) if o.contains_key("quota") => format!("quota {}", o["quota"]),
                other => other.to_string().chars().take(30).collect(),
            };
            continue;
        }
        ms.push(elapsed);
    }
    ms.sort_by(f64::total_cmp);
    Ok(Timing {
        name: name.to_string(),
        p50: ms[ms.len() / 2],
        max: ms[ms.len() - 1],
        summary,
    })
}

async fn measure(run: &Running, reps: usize, now: i64) -> anyhow::Result<Vec<Timing>> {
    let day = now - 86_400;
    let week = now - 7 * 86_400;
    let month = now - 30 * 86_400;
    // User 501's token "prod-501" and one model: about 20 rows of 10 million.
    let (tok, model) = ("prod-501", "model-07");
    let admin: Vec<(&str, String)> = vec![
        ("admin list, page 1", "/api/log/?p=0".into()),
        ("admin list, page 100", "/api/log/?p=99".into()),
        (
            "admin list, type 1 (top-ups)",
            "/api/log/?p=0&type=1".into(),
        ),
        (
            "admin search token + model",
            format!("/api/log/?p=0&token_name={tok}&model_name={model}"),
        ),
        (
            "admin search token",
            format!("/api/log/?p=0&token_name={tok}"),
        ),
        (
            "admin search model",
            format!("/api/log/?p=0&model_name={model}"),
        ),
        (
            "admin search username",
            "/api/log/?p=0&username=user501".into(),
        ),
        (
            "admin list, last 24 h",
            format!("/api/log/?p=0&start_timestamp={day}&end_timestamp={now}"),
        ),
        ("admin stat, all time", "/api/log/stat?type=0".into()),
        (
            "admin stat, last 24 h",
            format!("/api/log/stat?start_timestamp={day}&end_timestamp={now}"),
        ),
        (
            "admin stat, last 7 days",
            format!("/api/log/stat?start_timestamp={week}&end_timestamp={now}"),
        ),
        (
            "admin stat, token + model",
            format!("/api/log/stat?token_name={tok}&model_name={model}"),
        ),
        (
            "admin stat, model",
            format!("/api/log/stat?model_name={model}"),
        ),
        (
            "admin stat, model, last 7 days",
            format!("/api/log/stat?model_name={model}&start_timestamp={week}&end_timestamp={now}"),
        ),
        ("admin stat, channel", "/api/log/stat?channel=7".into()),
        (
            "admin stat, username",
            "/api/log/stat?username=user501".into(),
        ),
        ("admin keyword search", "/api/log/search?keyword=1".into()),
    ];
    let own: Vec<(&str, String)> = vec![
        ("own list, page 1", "/api/log/self?p=0".into()),
        (
            "own list, token filter",
            "/api/log/self?p=0&token_name=prod-2".into(),
        ),
        (
            "own list, model filter",
            format!("/api/log/self?p=0&model_name={model}"),
        ),
        ("own stat, all time", "/api/log/self/stat".into()),
        (
            "own stat, last 7 days",
            format!("/api/log/self/stat?start_timestamp={week}&end_timestamp={now}"),
        ),
        ("dashboard, 7 days (default)", "/api/user/dashboard".into()),
        (
            "dashboard, 30 days",
            format!("/api/user/dashboard?start_timestamp={month}&end_timestamp={now}"),
        ),
    ];
    let mut out = Vec::new();
    for (name, path) in admin {
        out.push(time_call(&run.root, &run.base, name, &path, reps).await?);
        eprintln!("  {name}: p50 {:.1} ms", out.last().map_or(0.0, |t| t.p50));
    }
    for (name, path) in own {
        out.push(time_call(&run.user, &run.base, name, &path, reps).await?);
        eprintln!("  {name}: p50 {:.1} ms", out.last().map_or(0.0, |t| t.p50));
    }
    Ok(out)
}

fn pg_url_for(admin: &str, name: &str) -> String {
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    format!("{base}/{name}")
}

/// Makes sure the database at `url` holds exactly `rows` generated logs; returns whether it
/// generated them now.
async fn prepare(url: &str, rows: i64, t0: i64) -> anyhow::Result<bool> {
    let settings = PoolSettings {
        max_open: 1,
        max_idle: 1,
        max_lifetime: Duration::from_secs(3600),
        sqlite_busy_timeout: Duration::from_secs(30),
    };
    let db = Db::connect(url, &settings).await?;
    db.migrate().await?;
    let have = count_logs(&db).await?;
    if have == rows {
        eprintln!("  reusing {rows} generated rows");
        return Ok(false);
    }
    if have != 0 {
        exec(&db, "DELETE FROM logs").await?;
    }
    generate(&db, rows, t0).await?;
    db.pool.close().await;
    Ok(true)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    sqlx::any::install_default_drivers();
    let a = args();
    let now = tollgate::store::now();
    // Generated data ends about now, so that "last 24 h" windows hold a day of logs.
    let t0 = now - DAYS * 86_400;
    let mut results: Vec<(String, Vec<Timing>, bool)> = Vec::new();

    if a.sqlite {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-logs");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("logs-{}.db", a.rows));
        if a.fresh {
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
            }
        }
        let url = format!("sqlite://{}?mode=rwc", path.display());
        eprintln!("SQLite {}:", path.display());
        let generated = prepare(&url, a.rows, t0).await?;
        let run = start(&url).await?;
        let t = measure(&run, a.reps, now).await?;
        run.handle.stop(true).await;
        results.push(("SQLite".into(), t, generated));
    }
    if let Some(admin) = &a.postgres {
        let name = format!("tollgate_bench_logs_{}", a.rows);
        let mut conn = sqlx::AnyConnection::connect(admin).await?;
        if a.fresh {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
        }
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        let url = pg_url_for(admin, &name);
        eprintln!("PostgreSQL {name}:");
        let generated = prepare(&url, a.rows, t0).await?;
        let run = start(&url).await?;
        let t = measure(&run, a.reps, now).await?;
        run.handle.stop(true).await;
        results.push(("PostgreSQL".into(), t, generated));
    }

    println!(
        "\nLogs benchmark: {} rows, {} users, {} tokens, {} models, {} days; p50/max over {} calls\n",
        a.rows,
        USERS,
        USERS * TOKENS_PER_USER,
        MODELS,
        DAYS,
        a.reps
    );
    let mut header = String::from("| query |");
    let mut rule = String::from("|---|");
    for (b, _, _) in &results {
        let _ = write!(header, " {b} p50 ms | {b} max ms | {b} result |");
        rule.push_str("---|---|---|");
    }
    println!("{header}\n{rule}");
    if let Some((_, first, _)) = results.first() {
        for (i, t) in first.iter().enumerate() {
            let mut line = format!("| {} |", t.name);
            for (_, ts, _) in &results {
                let x = &ts[i];
                let flag = if x.p50 >= 100.0 { " ⚠" } else { "" };
                let _ = write!(line, " {:.1}{flag} | {:.1} | {} |", x.p50, x.max, x.summary);
            }
            println!("{line}");
        }
    }
    Ok(())
}
