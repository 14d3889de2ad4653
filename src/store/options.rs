//! The `options` table: runtime-editable settings as key/value strings (One API's option keys).

use sqlx::Row;

use super::{Backend, Db};

/// Every stored option row.
pub async fn load_all(db: &Db) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query(r#"SELECT "key", value FROM options"#)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Inserts or replaces one option.
pub async fn upsert(db: &Db, key: &str, value: &str) -> Result<(), sqlx::Error> {
    let sql = match db.backend {
        Backend::MySql => {
            r#"INSERT INTO options ("key", value) VALUES (?, ?)
               ON DUPLICATE KEY UPDATE value = VALUES(value)"#
        }
        _ => {
            r#"INSERT INTO options ("key", value) VALUES (?, ?)
               ON CONFLICT ("key") DO UPDATE SET value = excluded.value"#
        }
    };
    sqlx::query(db.sql(sql))
        .bind(key.to_string())
        .bind(value.to_string())
        .execute(&db.pool)
        .await?;
    Ok(())
}
