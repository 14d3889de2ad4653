//! The only place with SQL. One code path (sqlx `Any`) for SQLite, MySQL/MariaDB and PostgreSQL.
//!
//! Invariants:
//! - Statements are written once with `?` placeholders and ANSI double-quoted identifiers
//!   (`"group"`, `"key"`); `Db::sql` rewrites placeholders for PostgreSQL, and MySQL sessions run
//!   with `ANSI_QUOTES` so the same text works on all three.
//! - Integers are `BIGINT` (decoded as `i64`), booleans are stored as 0/1 `BIGINT`, times are unix
//!   seconds: the only types `Any` carries on every backend.
//! - Quota moves are single conditional statements (`... WHERE quota >= ?`), never a read followed
//!   by a write in Rust.

pub mod abilities;
pub mod channels;
pub mod dialect;
pub mod ledger;
pub mod log_rollups;
pub mod logs;
pub mod oneapi;
pub mod options;
pub mod redemptions;
pub mod tokens;
pub mod users;
pub mod verifications;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection, Executor, Row};

pub use dialect::Backend;

use crate::config::Config;

/// A database handle: the pool and which backend it talks to.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    sql_cache: Arc<dialect::SqlCache>,
    /// Statements prepared through [`Db::sql`]: a cheap counter that lets tests prove a path runs
    /// no SQL (the relay's warm path).
    statements: Arc<std::sync::atomic::AtomicU64>,
}

pub type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// Current unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// How many connections the server accepts from ordinary clients (`max_connections`, less
/// PostgreSQL's slots reserved for superusers and, since PostgreSQL 16, for `pg_use_reserved_connections`),
/// when it says.
async fn server_connection_limit(conn: &mut sqlx::AnyConnection, backend: Backend) -> Option<i64> {
    let sql = match backend {
        Backend::Postgres => {
            "SELECT CAST(current_setting('max_connections') AS BIGINT) \
             - CAST(current_setting('superuser_reserved_connections') AS BIGINT) \
             - COALESCE(CAST(current_setting('reserved_connections', true) AS BIGINT), 0)"
        }
        Backend::MySql => "SELECT CAST(@@max_connections AS SIGNED)",
        Backend::Sqlite => return None,
    };
    sqlx::query_scalar::<_, i64>(sql).fetch_one(conn).await.ok()
}

/// The pool's size: `SQL_MAX_OPEN_CONNS` (One API's default is 1,000), but never above what the
/// server accepts. A pool allowed more than that, meeting a burst of cache misses (every cached
/// token expiring at once), kept asking for connections the server refused ("too many clients
/// already", after forking a backend for each): a benchmark's 512 clients went from thousands of
/// requests a second to 386, with a p99 of 1.8 s (docs/benchmarks.md, session 22). Within the
/// limit, a burst waits for a pooled connection instead.
pub fn pool_size(configured: u32, server_limit: Option<i64>) -> u32 {
    match server_limit {
        Some(limit) if limit >= 1 && i64::from(configured) > limit => {
            tracing::warn!(
                configured,
                server_limit = limit,
                "SQL_MAX_OPEN_CONNS is above the connections the database server accepts; the \
                 pool keeps to the server's limit (with several nodes or pools on one server, \
                 give each a share)"
            );
            limit as u32
        }
        _ => configured.max(1),
    }
}

/// Pool settings taken from the configuration.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_open: u32,
    pub max_idle: u32,
    pub max_lifetime: Duration,
    pub sqlite_busy_timeout: Duration,
}

impl PoolSettings {
    pub fn from_config(cfg: &Config) -> Self {
        PoolSettings {
            max_open: cfg.sql_max_open_conns,
            max_idle: cfg.sql_max_idle_conns,
            max_lifetime: cfg.sql_conn_max_lifetime,
            sqlite_busy_timeout: cfg.sqlite_busy_timeout,
        }
    }
}

impl Db {
    /// Opens the main database named by `SQL_DSN` (or SQLite at `SQLITE_PATH`).
    pub async fn connect_main(cfg: &Config) -> anyhow::Result<Db> {
        let url = match &cfg.sql_dsn {
            Some(dsn) => dialect::normalize_dsn(dsn.expose_secret())?,
            None => dialect::sqlite_url(&cfg.sqlite_path),
        };
        Db::connect(&url, &PoolSettings::from_config(cfg)).await
    }

    /// Opens the log database (`LOG_SQL_DSN`), or returns `None` when logs share the main one.
    pub async fn connect_logs(cfg: &Config) -> anyhow::Result<Option<Db>> {
        match &cfg.log_sql_dsn {
            None => Ok(None),
            Some(dsn) => {
                let url = dialect::normalize_dsn(dsn.expose_secret())?;
                Ok(Some(
                    Db::connect(&url, &PoolSettings::from_config(cfg)).await?,
                ))
            }
        }
    }

    /// Connects to a database URL (`sqlite://`, `mysql://`, `postgres://`).
    pub async fn connect(url: &str, settings: &PoolSettings) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        // One direct attempt first: a wrong address or password fails at once with its cause,
        // instead of the pool retrying until its acquire timeout.
        let mut probe =
            tokio::time::timeout(Duration::from_secs(15), sqlx::AnyConnection::connect(url))
                .await
                .map_err(|_| anyhow::anyhow!("timed out"))
                .and_then(|r| r.map_err(anyhow::Error::from))
                .with_context(|| format!("cannot connect to the {} database", backend.name()))?;
        let server_limit = server_connection_limit(&mut probe, backend).await;
        let _ = probe.close().await;
        let mut opts = AnyPoolOptions::new()
            .max_lifetime(settings.max_lifetime)
            .idle_timeout(Duration::from_secs(600))
            .acquire_timeout(Duration::from_secs(30));
        let max_open = match backend {
            // SQLite allows one writer at a time; a small pool avoids lock storms.
            Backend::Sqlite => settings.max_open.clamp(1, 8),
            _ => pool_size(settings.max_open, server_limit),
        };
        opts = opts
            .max_connections(max_open)
            .min_connections(settings.max_idle.min(max_open).min(2));
        let busy_ms = settings.sqlite_busy_timeout.as_millis() as u64;
        // A read-only SQLite file (an import source) cannot switch its journal mode.
        let sqlite_pragmas = if url.contains("mode=ro") {
            format!("PRAGMA busy_timeout = {busy_ms};")
        } else {
            // temp_store: the writer's multi-row INSERTs inside a transaction keep a statement
            // journal, which spilled to a temporary file: a pwrite per page, 4.6% of the
            // process's CPU under load (docs/benchmarks-history.md, session 7).
            format!(
                "PRAGMA busy_timeout = {busy_ms}; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                 PRAGMA temp_store = MEMORY;"
            )
        };
        let opts = opts.after_connect(move |conn, _meta| {
            let sqlite_pragmas = sqlite_pragmas.clone();
            Box::pin(async move {
                match backend {
                    Backend::Sqlite => {
                        conn.execute(sqlx::AssertSqlSafe(sqlite_pragmas)).await?;
                    }
                    Backend::MySql => {
                        conn.execute(
                            "SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES'), \
                             time_zone = '+00:00'",
                        )
                        .await?;
                    }
                    Backend::Postgres => {}
                }
                Ok(())
            })
        });
        let pool = opts
            .connect(url)
            .await
            .with_context(|| format!("cannot connect to the {} database", backend.name()))?;
        Ok(Db {
            pool,
            backend,
            sql_cache: Arc::new(dialect::SqlCache::default()),
            statements: Arc::default(),
        })
    }

    /// The statement text for this backend (placeholders rewritten for PostgreSQL, cached).
    pub fn sql(&self, sql: &'static str) -> &'static str {
        self.statements
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.sql_cache.get(self.backend, sql)
    }

    /// A multi-row statement's text for `rows` rows (a power of two), built once per `name`
    /// and row count: see [`dialect::SqlCache::multi_row`].
    pub fn multi_row(
        &self,
        name: &'static str,
        rows: usize,
        build: impl FnOnce() -> String,
    ) -> &'static str {
        self.sql_cache.multi_row(self.backend, name, rows, build)
    }

    /// How many statements went through [`Db::sql`] so far.
    pub fn statements(&self) -> u64 {
        self.statements.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Applies this backend's migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Backend::MySql => sqlx::migrate!("migrations/mysql"),
            Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        migrator
            .run(&self.pool)
            .await
            .with_context(|| format!("migrating the {} database", self.backend.name()))?;
        Ok(())
    }

    /// Runs an INSERT and returns the new row's id on every backend.
    pub async fn insert_id<'q>(
        &self,
        exec: impl Executor<'q, Database = sqlx::Any>,
        sql: &'static str,
        bind: impl FnOnce(
            sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
        ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<i64, sqlx::Error> {
        match self.backend {
            // SQLite's insert id does not cross `Any`; both SQLite and PostgreSQL have RETURNING.
            Backend::Postgres | Backend::Sqlite => {
                let sql = self.sql_cache.get_returning_id(self.backend, sql);
                let row = bind(sqlx::query(sql)).fetch_one(exec).await?;
                row.try_get::<i64, _>(0)
            }
            _ => {
                let res = bind(sqlx::query(self.sql(sql))).execute(exec).await?;
                res.last_insert_id()
                    .ok_or_else(|| sqlx::Error::Protocol("no insert id returned".into()))
            }
        }
    }

    /// Table name -> sorted column names, for the schema contract test.
    pub async fn schema(&self) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let rows: Vec<AnyRow> =
            match self.backend {
                Backend::Sqlite => {
                    sqlx::query(
                        "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
                     AND m.name NOT LIKE '_sqlx%'",
                    )
                    .fetch_all(&self.pool)
                    .await?
                }
                Backend::MySql => {
                    sqlx::query(
                        "SELECT CAST(table_name AS CHAR), CAST(column_name AS CHAR) \
                     FROM information_schema.columns \
                     WHERE table_schema = DATABASE() AND table_name NOT LIKE '\\_sqlx%'",
                    )
                    .fetch_all(&self.pool)
                    .await?
                }
                Backend::Postgres => sqlx::query(
                    "SELECT table_name::text, column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name NOT LIKE '\\_sqlx%'",
                )
                .fetch_all(&self.pool)
                .await?,
            };
        for row in rows {
            let table: String = row.try_get(0)?;
            let column: String = row.try_get(1)?;
            out.entry(table.to_lowercase())
                .or_default()
                .push(column.to_lowercase());
        }
        for cols in out.values_mut() {
            cols.sort();
        }
        Ok(out)
    }
}

/// Reads a 0/1 column as a bool.
pub(crate) fn get_bool(row: &AnyRow, col: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

/// One API's fixed page size.
pub const PAGE_SIZE: i64 = 10;

/// `?, ?, ?`: `n` bind placeholders, for `IN (...)` lists.
pub fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `(?, ?), (?, ?)`: `rows` tuples of `cols` placeholders, for multi-row `VALUES`.
pub fn value_rows(rows: usize, cols: usize) -> String {
    let one = format!("({})", marks(cols));
    vec![one.as_str(); rows].join(", ")
}

/// Splits `items` into runs whose lengths are powers of two no larger than `max` (largest
/// first), for multi-row statements whose text depends on the row count. The connection's
/// statement cache then holds a few plans per statement (not one per count seen, which grew to
/// tens of MB under load), and a batch reuses them instead of parsing thousands of parameters.
pub fn pow2_chunks<T>(mut items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let max = max.max(1);
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let n = items.len().min(max);
        let run = 1usize << n.ilog2();
        let (head, rest) = items.split_at(run);
        items = rest;
        Some(head)
    })
}

/// A `LIKE` pattern matching values that start with `kw`, with `%`, `_` and the escape character
/// escaped. Use with `LIKE ? ESCAPE '!'` (a portable escape character on every backend).
pub fn like_prefix(kw: &str) -> String {
    let mut out = String::with_capacity(kw.len() + 1);
    for c in kw.chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod chunk_tests {
    use super::pow2_chunks;

    #[test]
    fn runs_are_powers_of_two_that_cover_the_input() {
        for n in 0..300usize {
            let items: Vec<usize> = (0..n).collect();
            let runs: Vec<&[usize]> = pow2_chunks(&items, 64).collect();
            assert_eq!(runs.concat(), items, "n={n}");
            assert!(
                runs.iter()
                    .all(|r| r.len().is_power_of_two() && r.len() <= 64)
            );
        }
        let lens: Vec<usize> = pow2_chunks(&[0u8; 300], 128).map(<[u8]>::len).collect();
        assert_eq!(lens, [128, 128, 32, 8, 4]);
    }

    #[test]
    fn placeholder_lists() {
        assert_eq!(super::marks(3), "?, ?, ?");
        assert_eq!(super::value_rows(2, 3), "(?, ?, ?), (?, ?, ?)");
    }
}

#[cfg(test)]
mod like_tests {
    #[test]
    fn like_escapes_metacharacters() {
        assert_eq!(super::like_prefix("a%b_c!"), "a!%b!_c!!%");
        assert_eq!(super::like_prefix("%' OR 1=1 --"), "!%' OR 1=1 --%");
    }
}

#[cfg(test)]
mod pool_tests {
    use super::pool_size;

    #[test]
    fn the_pool_never_exceeds_the_server() {
        assert_eq!(pool_size(1000, Some(97)), 97);
        assert_eq!(pool_size(50, Some(97)), 50);
        assert_eq!(pool_size(97, Some(97)), 97);
        // SQLite, or a server that would not say.
        assert_eq!(pool_size(1000, None), 1000);
        assert_eq!(pool_size(1000, Some(0)), 1000);
    }
}
