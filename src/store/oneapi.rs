//! Reading a One API database (SQLite, MySQL or PostgreSQL, any recent One API version) and
//! writing its rows into Tollgate's tables with their ids kept, for `tollgate import-one-api`.
//!
//! Rows are copied generically, table by table, through a column spec: every source column is
//! read through an expression that tolerates One API's NULLs and integer widths, columns an older
//! One API lacks read as defaults, and inserts skip rows whose id or unique key already exists,
//! so running the import twice changes nothing.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Db, dialect};

/// How a column is read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Bool,
    Float,
    Str,
    /// A string whose empty value is stored as NULL (unique columns: access_token, aff_code).
    OptStr,
}

/// One table to copy: its name, whether it is paged by `id`, and its columns.
#[derive(Debug)]
pub struct TableSpec {
    pub name: &'static str,
    pub paged_by_id: bool,
    pub columns: &'static [(&'static str, Kind)],
}

use Kind::*;

pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "users",
        paged_by_id: true,
        columns: &[
            ("id", Int),
            ("username", Str),
            ("password", Str),
            ("display_name", Str),
            ("role", Int),
            ("status", Int),
            ("email", Str),
            ("github_id", Str),
            ("wechat_id", Str),
            ("lark_id", Str),
            ("oidc_id", Str),
            ("access_token", OptStr),
            ("quota", Int),
            ("used_quota", Int),
            ("request_count", Int),
            ("group", Str),
            ("aff_code", OptStr),
            ("inviter_id", Int),
        ],
    },
    TableSpec {
        name: "tokens",
        paged_by_id: true,
        columns: &[
            ("id", Int),
            ("user_id", Int),
            ("key", Str),
            ("status", Int),
            ("name", Str),
            ("created_time", Int),
            ("accessed_time", Int),
            ("expired_time", Int),
            ("remain_quota", Int),
            ("unlimited_quota", Bool),
            ("used_quota", Int),
            ("models", Str),
            ("subnet", Str),
        ],
    },
    TableSpec {
        name: "channels",
        paged_by_id: true,
        columns: &[
            ("id", Int),
            ("type", Int),
            ("key", Str),
            ("status", Int),
            ("name", Str),
            ("weight", Int),
            ("created_time", Int),
            ("test_time", Int),
            ("response_time", Int),
            ("base_url", Str),
            ("other", Str),
            ("balance", Float),
            ("balance_updated_time", Int),
            ("models", Str),
            ("group", Str),
            ("used_quota", Int),
            ("model_mapping", Str),
            ("priority", Int),
            ("config", Str),
            ("system_prompt", Str),
        ],
    },
    TableSpec {
        name: "redemptions",
        paged_by_id: true,
        columns: &[
            ("id", Int),
            ("user_id", Int),
            ("key", Str),
            ("status", Int),
            ("name", Str),
            ("quota", Int),
            ("created_time", Int),
            ("redeemed_time", Int),
        ],
    },
    TableSpec {
        name: "options",
        paged_by_id: false,
        columns: &[("key", Str), ("value", Str)],
    },
    TableSpec {
        name: "logs",
        paged_by_id: true,
        columns: &[
            ("id", Int),
            ("user_id", Int),
            ("created_at", Int),
            ("type", Int),
            ("content", Str),
            ("username", Str),
            ("token_name", Str),
            ("model_name", Str),
            ("quota", Int),
            ("prompt_tokens", Int),
            ("completion_tokens", Int),
            ("channel_id", Int),
            ("request_id", Str),
            ("elapsed_time", Int),
            ("is_stream", Bool),
            ("system_prompt_reset", Bool),
        ],
    },
];

/// A value in transit.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
    Null,
}

/// The expression that reads one column from the source, or its default when the source's One
/// API version lacks it.
fn select_expr(backend: Backend, col: &str, kind: Kind, present: bool) -> String {
    let int = match backend {
        Backend::Sqlite => "INTEGER",
        Backend::MySql => "SIGNED",
        Backend::Postgres => "BIGINT",
    };
    if !present {
        return match kind {
            Int | Bool => format!("CAST(0 AS {int})"),
            Float => "0.0".into(),
            Str | OptStr => "''".into(),
        };
    }
    let q = format!("\"{col}\"");
    match kind {
        Int => format!("CAST(COALESCE({q}, 0) AS {int})"),
        Bool => format!("CAST((CASE WHEN {q} THEN 1 ELSE 0 END) AS {int})"),
        Float => match backend {
            Backend::Sqlite => format!("CAST(COALESCE({q}, 0) AS REAL)"),
            Backend::MySql => format!("CAST(COALESCE({q}, 0) AS DOUBLE)"),
            Backend::Postgres => format!("CAST(COALESCE({q}, 0) AS DOUBLE PRECISION)"),
        },
        Str | OptStr => match backend {
            Backend::Postgres => format!("COALESCE(CAST({q} AS TEXT), '')"),
            Backend::MySql => format!("COALESCE(CAST({q} AS CHAR), '')"),
            Backend::Sqlite => format!("COALESCE(CAST({q} AS TEXT), '')"),
        },
    }
}

/// Which tables and columns the source has.
pub async fn source_schema(db: &Db) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    db.schema().await
}

/// Reads up to `limit` rows with `id > after` (or every row of an unpaged table).
pub async fn read_rows(
    db: &Db,
    spec: &TableSpec,
    present: &[String],
    after: i64,
    limit: i64,
) -> Result<Vec<Vec<Value>>, sqlx::Error> {
    let exprs: Vec<String> = spec
        .columns
        .iter()
        .map(|(c, k)| select_expr(db.backend, c, *k, present.iter().any(|p| p == c)))
        .collect();
    let mut sql = format!("SELECT {} FROM \"{}\"", exprs.join(", "), spec.name);
    if spec.paged_by_id {
        sql.push_str(" WHERE \"id\" > ? ORDER BY \"id\" LIMIT ?");
    }
    let sql = dialect::dynamic(db.backend, sql);
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    if spec.paged_by_id {
        q = q.bind(after).bind(limit);
    }
    let rows: Vec<AnyRow> = q.fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| {
            spec.columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| {
                    Ok(match kind {
                        Int | Bool => Value::Int(r.try_get(i)?),
                        Float => Value::Float(r.try_get(i)?),
                        Str => Value::Str(r.try_get(i)?),
                        OptStr => {
                            let s: String = r.try_get(i)?;
                            if s.is_empty() {
                                Value::Null
                            } else {
                                Value::Str(s)
                            }
                        }
                    })
                })
                .collect()
        })
        .collect()
}

/// Inserts rows into Tollgate's table, skipping any whose id or unique key exists.
/// Returns how many were inserted.
pub async fn insert_rows(
    db: &Db,
    spec: &TableSpec,
    rows: &[Vec<Value>],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let cols: Vec<String> = spec
        .columns
        .iter()
        .map(|(c, _)| format!("\"{c}\""))
        .collect();
    let mut tx = db.pool.begin().await?;
    let mut inserted = 0;
    // A few hundred rows per statement keeps every backend under its bind-parameter limit; runs
    // of power-of-two sizes keep the cached plans few (`super::pow2_chunks`).
    for chunk in super::pow2_chunks(rows, 256) {
        let values = super::value_rows(chunk.len(), cols.len());
        let sql = match db.backend {
            Backend::Sqlite => format!(
                "INSERT OR IGNORE INTO \"{}\" ({}) VALUES {values}",
                spec.name,
                cols.join(", ")
            ),
            Backend::MySql => format!(
                "INSERT IGNORE INTO \"{}\" ({}) VALUES {values}",
                spec.name,
                cols.join(", ")
            ),
            Backend::Postgres => format!(
                "INSERT INTO \"{}\" ({}) VALUES {values} ON CONFLICT DO NOTHING",
                spec.name,
                cols.join(", ")
            ),
        };
        let sql = dialect::dynamic(db.backend, sql);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            for v in row {
                q = match v {
                    Value::Int(i) => q.bind(*i),
                    Value::Float(f) => q.bind(*f),
                    Value::Str(s) => q.bind(s.clone()),
                    Value::Null => q.bind(None::<String>),
                };
            }
        }
        inserted += q.execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    Ok(inserted)
}

/// After inserting explicit ids, moves PostgreSQL's identity sequence past them.
pub async fn fix_sequence(db: &Db, table: &str) -> Result<(), sqlx::Error> {
    if db.backend != Backend::Postgres {
        return Ok(());
    }
    let sql = format!(
        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
         GREATEST((SELECT COALESCE(MAX(id), 0) FROM \"{table}\"), 1))"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(&db.pool)
        .await?;
    Ok(())
}

/// Row count of a table.
pub async fn count(db: &Db, table: &str) -> Result<i64, sqlx::Error> {
    let sql = format!("SELECT COUNT(*) FROM \"{table}\"");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(&db.pool)
        .await?
        .try_get(0)
}

/// Removes the untouched bootstrap root (and its initial token) from a fresh target, so that the
/// imported users keep their ids.
pub async fn remove_bootstrap_root(db: &Db) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM tokens").execute(&mut *tx).await?;
    sqlx::query("DELETE FROM users").execute(&mut *tx).await?;
    tx.commit().await
}
