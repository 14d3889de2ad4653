//! The `abilities` table: (group, model, channel) triples derived from each channel, which the
//! routing table is built from. Always rewritten together with the channel they derive from.

use sqlx::Row;

use super::Tx;
use super::channels::Channel;
use super::{Db, get_bool};

/// One row of `abilities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ability {
    pub group: String,
    pub model: String,
    pub channel_id: i64,
    pub enabled: bool,
    pub priority: i64,
    pub weight: i64,
}

/// The abilities a channel yields: its groups x its models (trimmed, de-duplicated).
pub fn for_channel(c: &Channel) -> Vec<Ability> {
    let split = |s: &str| {
        let mut v: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let models = split(&c.models);
    let mut out = Vec::new();
    for g in split(&c.group) {
        for m in &models {
            out.push(Ability {
                group: g.clone(),
                model: m.clone(),
                channel_id: c.id,
                enabled: c.status == super::channels::STATUS_ENABLED,
                priority: c.priority,
                weight: c.weight,
            });
        }
    }
    out
}

/// Replaces a channel's abilities inside the caller's transaction.
pub async fn replace_for_channel(db: &Db, tx: &mut Tx<'_>, c: &Channel) -> Result<(), sqlx::Error> {
    sqlx::query(db.sql("DELETE FROM abilities WHERE channel_id = ?"))
        .bind(c.id)
        .execute(&mut **tx)
        .await?;
    for a in for_channel(c) {
        sqlx::query(db.sql(
            r#"INSERT INTO abilities ("group", model, channel_id, enabled, priority, weight)
               VALUES (?, ?, ?, ?, ?, ?)"#,
        ))
        .bind(a.group)
        .bind(a.model)
        .bind(a.channel_id)
        .bind(i64::from(a.enabled))
        .bind(a.priority)
        .bind(a.weight)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// All abilities.
pub async fn all(db: &Db) -> Result<Vec<Ability>, sqlx::Error> {
    let rows = sqlx::query(
        r#"SELECT "group", model, channel_id, enabled, priority, weight FROM abilities"#,
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Ability {
                group: r.try_get("group")?,
                model: r.try_get("model")?,
                channel_id: r.try_get("channel_id")?,
                enabled: get_bool(r, "enabled")?,
                priority: r.try_get("priority")?,
                weight: r.try_get("weight")?,
            })
        })
        .collect()
}

/// Distinct models of enabled abilities in a group.
pub async fn models_for_group(db: &Db, group: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(db.sql(
        r#"SELECT DISTINCT model FROM abilities WHERE "group" = ? AND enabled = 1 ORDER BY model"#,
    ))
    .bind(group.to_string())
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(|r| r.try_get::<String, _>(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abilities_are_groups_times_models() {
        let c = Channel {
            id: 7,
            status: 1,
            models: "gpt-4, gpt-3.5-turbo,,gpt-4".into(),
            group: "default,vip".into(),
            priority: 3,
            ..Default::default()
        };
        let a = for_channel(&c);
        assert_eq!(a.len(), 4);
        assert!(
            a.iter()
                .all(|x| x.enabled && x.priority == 3 && x.channel_id == 7)
        );
        assert!(
            a.iter()
                .any(|x| x.group == "vip" && x.model == "gpt-3.5-turbo")
        );
    }
}
