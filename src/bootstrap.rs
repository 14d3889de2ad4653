//! First-start work done by the master node: the `root` account and the tokens named by
//! `INITIAL_ROOT_TOKEN` / `INITIAL_ROOT_ACCESS_TOKEN`. Running it again creates nothing twice.

use secrecy::ExposeSecret;

use crate::auth::{keys, password};
use crate::config::Config;
use crate::store::tokens::NewToken;
use crate::store::users::{NewUser, ROLE_ROOT};
use crate::store::{self, Db};

/// Root's starting quota, as One API.
pub const ROOT_QUOTA: i64 = 500_000_000_000_000;

/// Creates `root` / `123456` when there is no user yet, and the initial root token when set and
/// missing.
pub async fn ensure_root(db: &Db, cfg: &Config) -> anyhow::Result<()> {
    let mut tx = db.pool.begin().await?;
    let existing: i64 = {
        use sqlx::Row;
        sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?
    };
    let root_id = if existing == 0 {
        let access_token = cfg
            .initial_root_access_token
            .as_ref()
            .map(|s| s.expose_secret().to_string())
            .unwrap_or_else(keys::access_token);
        let id = store::users::insert(
            db,
            &mut *tx,
            &NewUser {
                username: "root".into(),
                password_hash: password::hash("123456").await?,
                display_name: "Root User".into(),
                role: ROLE_ROOT,
                access_token: Some(access_token),
                quota: ROOT_QUOTA,
                group: "default".into(),
                aff_code: Some(keys::aff_code()),
                ..Default::default()
            },
        )
        .await?;
        tracing::warn!(
            "created the root account with the default password 123456: change it at once"
        );
        Some(id)
    } else {
        None
    };
    tx.commit().await?;

    if let Some(key) = &cfg.initial_root_token {
        let key = key.expose_secret();
        let key = key.strip_prefix("sk-").unwrap_or(key);
        if store::tokens::get_by_key(db, key).await?.is_none() {
            let root_id = match root_id {
                Some(id) => id,
                None => first_root_id(db).await?,
            };
            store::tokens::insert(
                db,
                &db.pool,
                &NewToken {
                    user_id: root_id,
                    key: key.to_string(),
                    name: "Initial Root Token".into(),
                    expired_time: -1,
                    remain_quota: ROOT_QUOTA,
                    unlimited_quota: true,
                    ..Default::default()
                },
            )
            .await?;
            tracing::info!("created the initial root token");
        }
    }
    Ok(())
}

async fn first_root_id(db: &Db) -> anyhow::Result<i64> {
    use sqlx::Row;
    let row = sqlx::query(db.sql("SELECT id FROM users WHERE role >= ? ORDER BY id LIMIT 1"))
        .bind(ROLE_ROOT)
        .fetch_one(&db.pool)
        .await?;
    Ok(row.try_get(0)?)
}
