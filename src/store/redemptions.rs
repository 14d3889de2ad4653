//! The `redemptions` table: one-time codes that credit quota to the user who redeems them.

use sqlx::Row;
use sqlx::any::AnyRow;

pub const STATUS_ENABLED: i64 = 1;
pub const STATUS_DISABLED: i64 = 2;
pub const STATUS_USED: i64 = 3;

/// One row of `redemptions`. `user_id` is the admin who created it, `used_user_id` who redeemed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Redemption {
    pub id: i64,
    pub user_id: i64,
    pub key: String,
    pub status: i64,
    pub name: String,
    pub quota: i64,
    pub created_time: i64,
    pub redeemed_time: i64,
    pub used_user_id: i64,
}

pub const COLUMNS: &str =
    r#"id, user_id, "key", status, name, quota, created_time, redeemed_time, used_user_id"#;

pub fn from_row(r: &AnyRow) -> Result<Redemption, sqlx::Error> {
    Ok(Redemption {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        key: r.try_get("key")?,
        status: r.try_get("status")?,
        name: r.try_get("name")?,
        quota: r.try_get("quota")?,
        created_time: r.try_get("created_time")?,
        redeemed_time: r.try_get("redeemed_time")?,
        used_user_id: r.try_get("used_user_id")?,
    })
}
