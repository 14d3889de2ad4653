//! The few things that differ between SQLite, MySQL and PostgreSQL: how a DSN is written,
//! placeholders, and insert-returning-id. Everything else is one SQL text.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{Context, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    MySql,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> anyhow::Result<Backend> {
        let scheme = url.split(':').next().unwrap_or_default();
        Ok(match scheme {
            "sqlite" => Backend::Sqlite,
            "mysql" | "mariadb" => Backend::MySql,
            "postgres" | "postgresql" => Backend::Postgres,
            other => bail!("unsupported database scheme {other:?}"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::MySql => "MySQL",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// The SQLite URL for a file path (created when missing).
pub fn sqlite_url(path: &str) -> String {
    if path.starts_with("sqlite:") {
        return path.to_string();
    }
    format!("sqlite://{path}?mode=rwc")
}

/// Turns a `SQL_DSN` as One API accepts it into a URL sqlx understands:
/// `postgres://...`/`postgresql://...` and `mysql://...` pass through; Go's MySQL form
/// `user:pass@tcp(host:port)/db?params` is rewritten; a bare path or `sqlite:` URL means SQLite.
pub fn normalize_dsn(dsn: &str) -> anyhow::Result<String> {
    let dsn = dsn.trim();
    if dsn.starts_with("postgres://")
        || dsn.starts_with("postgresql://")
        || dsn.starts_with("mysql://")
        || dsn.starts_with("mariadb://")
        || dsn.starts_with("sqlite:")
    {
        return Ok(dsn.replacen("mariadb://", "mysql://", 1));
    }
    if dsn.contains('@') || dsn.contains("tcp(") {
        return go_mysql_dsn(dsn);
    }
    if dsn.ends_with(".db") || dsn.ends_with(".sqlite") {
        return Ok(sqlite_url(dsn));
    }
    bail!(
        "SQL_DSN is neither a postgres://, mysql:// URL nor a MySQL DSN like user:pass@tcp(host:3306)/db"
    )
}

/// `user:pass@tcp(host:port)/db?param=value` -> `mysql://user:pass@host:port/db`, and
/// `user:pass@unix(/path/mysqld.sock)/db` -> `mysql://user:pass@localhost/db?socket=/path/...`.
/// Go driver parameters (`charset`, `parseTime`, `loc`) have no meaning for sqlx and are dropped.
fn go_mysql_dsn(dsn: &str) -> anyhow::Result<String> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let (creds, rest) = dsn.rsplit_once('@').context("MySQL DSN has no '@'")?;
    let (user, pass) = match creds.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (creds, None),
    };
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let (host, socket, db_part) = if let Some(r) = rest.strip_prefix("unix(") {
        // A socket path holds slashes: the address ends at its closing parenthesis.
        let (path, after) = r
            .split_once(')')
            .context("MySQL DSN: unix( has no closing parenthesis")?;
        if path.is_empty() {
            bail!("MySQL DSN: unix() names no socket");
        }
        let db_part = after.strip_prefix('/').unwrap_or(after);
        ("localhost".to_string(), Some(path), db_part)
    } else {
        let (addr, db_part) = rest.split_once('/').unwrap_or((rest, ""));
        let host = if let Some(inner) = addr.strip_prefix("tcp(").and_then(|a| a.strip_suffix(')'))
        {
            inner.to_string()
        } else if addr.is_empty() {
            "127.0.0.1:3306".to_string()
        } else {
            addr.to_string()
        };
        (host, None, db_part)
    };
    let db = db_part.split('?').next().unwrap_or_default();
    if db.is_empty() {
        bail!("MySQL DSN names no database (…/dbname)");
    }
    let auth = match pass {
        Some(p) => format!("{}:{}", enc(user), enc(p)),
        None => enc(user),
    };
    Ok(match socket {
        Some(path) => format!("mysql://{auth}@{host}/{db}?socket={}", enc(path)),
        None => format!("mysql://{auth}@{host}/{db}"),
    })
}

/// Rewrites `?` placeholders to `$1, $2, ...` (PostgreSQL). Statements never contain a literal
/// question mark inside quotes.
pub fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut in_str = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                in_str = !in_str;
                out.push(c);
            }
            '?' if !in_str => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// Rewritten statements, leaked once per distinct static statement (a bounded set), so callers
/// get `&'static str` without allocating per query.
#[derive(Debug, Default)]
pub struct SqlCache {
    pg: Mutex<HashMap<&'static str, &'static str>>,
    returning: Mutex<HashMap<&'static str, &'static str>>,
    multi_row: Mutex<HashMap<(&'static str, usize), &'static str>>,
}

impl SqlCache {
    pub fn get(&self, backend: Backend, sql: &'static str) -> &'static str {
        if backend != Backend::Postgres || !sql.contains('?') {
            return sql;
        }
        let mut map = self.pg.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(sql)
            .or_insert_with(|| Box::leak(to_postgres(sql).into_boxed_str()))
    }

    /// The multi-row statement `name` for `rows` rows: built by `build` and rewritten for the
    /// backend once. Callers send power-of-two row counts (`pow2_chunks`), so the set is bounded;
    /// building and rewriting a 64-row statement on every write-back batch was 2% of a relayed
    /// request's instructions on PostgreSQL.
    pub fn multi_row(
        &self,
        backend: Backend,
        name: &'static str,
        rows: usize,
        build: impl FnOnce() -> String,
    ) -> &'static str {
        let mut map = self.multi_row.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((name, rows))
            .or_insert_with(|| Box::leak(dynamic(backend, build()).into_boxed_str()))
    }

    pub fn get_returning_id(&self, backend: Backend, sql: &'static str) -> &'static str {
        let mut map = self.returning.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(sql).or_insert_with(|| {
            let base = match backend {
                Backend::Postgres => to_postgres(sql),
                _ => sql.to_string(),
            };
            Box::leak(format!("{base} RETURNING id").into_boxed_str())
        })
    }
}

/// An integer expression as `BIGINT` on every backend. Aggregates need it: `SUM` yields NUMERIC on
/// PostgreSQL and DECIMAL on MySQL, which `Any` cannot decode.
pub fn as_i64(backend: Backend, expr: &str) -> String {
    match backend {
        Backend::MySql => format!("CAST({expr} AS SIGNED)"),
        Backend::Postgres => format!("CAST({expr} AS BIGINT)"),
        Backend::Sqlite => format!("CAST({expr} AS INTEGER)"),
    }
}

/// Rewrites a statement built at run time (dynamic filters) for the backend.
pub fn dynamic(backend: Backend, sql: String) -> String {
    match backend {
        Backend::Postgres => to_postgres(&sql),
        _ => sql,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_statements_are_built_once_per_row_count() {
        let cache = SqlCache::default();
        let mut built = 0;
        let mut get = |rows: usize| {
            cache.multi_row(Backend::Postgres, "t", rows, || {
                built += 1;
                format!("INSERT INTO t (a) VALUES {}", vec!["(?)"; rows].join(", "))
            })
        };
        let two = get(2);
        assert_eq!(two, "INSERT INTO t (a) VALUES ($1), ($2)");
        assert!(std::ptr::eq(two, get(2)));
        assert_eq!(get(1), "INSERT INTO t (a) VALUES ($1)");
        assert_eq!(built, 2);
        assert_eq!(
            SqlCache::default().multi_row(Backend::Sqlite, "t", 1, || "VALUES (?)".into()),
            "VALUES (?)"
        );
    }

    #[test]
    fn go_mysql_dsns_are_rewritten() {
        assert_eq!(
            normalize_dsn("root:123456@tcp(localhost:3306)/oneapi").unwrap(),
            "mysql://root:123456@localhost:3306/oneapi"
        );
        assert_eq!(
            normalize_dsn("root@tcp(127.0.0.1:3306)/test?charset=utf8mb4&parseTime=True").unwrap(),
            "mysql://root@127.0.0.1:3306/test"
        );
        assert_eq!(
            normalize_dsn("u:p@ss/w@tcp(db:3306)/x").unwrap(),
            "mysql://u:p%40ss%2Fw@db:3306/x"
        );
        assert!(normalize_dsn("root@tcp(db:3306)/").is_err());
        // Over the server's unix socket, as Go's driver writes it.
        assert_eq!(
            normalize_dsn("root:p@ss@unix(/run/mysqld/mysqld.sock)/oneapi?parseTime=true").unwrap(),
            "mysql://root:p%40ss@localhost/oneapi?socket=%2Frun%2Fmysqld%2Fmysqld%2Esock"
        );
        assert!(normalize_dsn("root@unix()/oneapi").is_err());
        assert!(normalize_dsn("root@unix(/run/mysqld.sock/oneapi").is_err());
        assert!(normalize_dsn("root@unix(/run/mysqld.sock)/").is_err());
        assert!(normalize_dsn("nonsense").is_err());
    }

    #[test]
    fn urls_pass_through() {
        for u in [
            "postgres://u@h/db",
            "postgresql://u@h/db",
            "mysql://root@h:3306/db",
        ] {
            assert_eq!(normalize_dsn(u).unwrap(), u);
        }
        assert_eq!(
            Backend::from_url("postgresql://x").unwrap(),
            Backend::Postgres
        );
        assert_eq!(Backend::from_url("sqlite://a.db").unwrap(), Backend::Sqlite);
    }

    #[test]
    fn placeholders() {
        assert_eq!(
            to_postgres("SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2"
        );
        let cache = SqlCache::default();
        let a = cache.get(Backend::Postgres, "SELECT ? ");
        let b = cache.get(Backend::Postgres, "SELECT ? ");
        assert!(std::ptr::eq(a, b));
        assert_eq!(cache.get(Backend::MySql, "SELECT ?"), "SELECT ?");
    }
}
