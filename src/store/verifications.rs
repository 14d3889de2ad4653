//! The `verification_codes` table: single-use email codes (registration, password reset) with
//! an expiry, shared by every node.

use super::{Db, now};

pub const PURPOSE_REGISTER: &str = "v";
pub const PURPOSE_RESET: &str = "r";

/// Stores a code for (purpose, email), replacing earlier ones, valid for `ttl_secs`.
pub async fn put(
    db: &Db,
    purpose: &str,
    email: &str,
    code: &str,
    ttl_secs: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        db.sql(
            "DELETE FROM verification_codes WHERE (purpose = ? AND email = ?) OR expires_at < ?",
        ),
    )
    .bind(purpose.to_string())
    .bind(email.to_string())
    .bind(now())
    .execute(&mut *tx)
    .await?;
    sqlx::query(db.sql(
        "INSERT INTO verification_codes (purpose, email, code, expires_at) VALUES (?, ?, ?, ?)",
    ))
    .bind(purpose.to_string())
    .bind(email.to_string())
    .bind(code.to_string())
    .bind(now() + ttl_secs)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Consumes a matching, unexpired code (one statement: a code works once).
pub async fn take(db: &Db, purpose: &str, email: &str, code: &str) -> Result<bool, sqlx::Error> {
    let res = sqlx::query(db.sql(
        "DELETE FROM verification_codes WHERE purpose = ? AND email = ? AND code = ? \
         AND expires_at >= ?",
    ))
    .bind(purpose.to_string())
    .bind(email.to_string())
    .bind(code.to_string())
    .bind(now())
    .execute(&db.pool)
    .await?;
    Ok(res.rows_affected() >= 1)
}
