//! `tollgate import-one-api --from <DSN or SQLite path> [--merge]`: copies a One API database
//! (users with their bcrypt hashes, tokens with their keys, channels, redemption codes, options and
//! logs) into Tollgate's, keeping ids so that clients, sessions' ids and logs line up. Abilities
//! are rebuilt from the channels (One API's can hold stale rows of deleted channels).
//!
//! Safe to repeat: rows whose id or unique key already exists are skipped, so a second run from
//! the same source changes nothing. A target that holds anything but the untouched bootstrap root
//! is refused unless `--merge` (or unless it was filled by an earlier import from this source).

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha512};

use crate::store::oneapi::{self, TABLES, Value};
use crate::store::{self, Db, PoolSettings, dialect};

/// Option key recording which source filled this database.
pub const MARKER: &str = "OneApiImportSource";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: &'static str,
    pub read: u64,
    pub inserted: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub tables: Vec<TableReport>,
    pub abilities: u64,
}

impl ImportReport {
    pub fn inserted(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|t| t.table == table)
            .map(|t| t.inserted)
            .unwrap_or(0)
    }

    /// A plain-text table for the terminal.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<12} {:>10} {:>10} {:>10}\n",
            "table", "read", "imported", "skipped"
        );
        for t in &self.tables {
            out.push_str(&format!(
                "{:<12} {:>10} {:>10} {:>10}\n",
                t.table,
                t.read,
                t.inserted,
                t.read - t.inserted
            ));
        }
        out.push_str(&format!("{:<12} {:>10}\n", "abilities", self.abilities));
        out
    }
}

/// The sqlx URL of a One API `SQL_DSN`, or of a One API SQLite file path (opened read-only).
pub fn source_url(from: &str) -> anyhow::Result<String> {
    let from = from.trim();
    if std::path::Path::new(from).is_file() {
        return Ok(format!("sqlite://{from}?mode=ro"));
    }
    if !from.contains("://") && !from.contains('@') {
        bail!("{from}: no such file (give One API's SQLite file or its SQL_DSN)");
    }
    dialect::normalize_dsn(from)
}

fn fingerprint(url: &str) -> String {
    hex::encode(&Sha512::digest(url.as_bytes())[..8])
}

/// Whether `db` holds only what a first start creates (root and its initial token).
async fn is_fresh(db: &Db, log_db: &Db) -> anyhow::Result<bool> {
    for t in ["channels", "redemptions"] {
        if oneapi::count(db, t).await? > 0 {
            return Ok(false);
        }
    }
    if oneapi::count(log_db, "logs").await? > 0 {
        return Ok(false);
    }
    let users = crate::store::users::count(db).await?;
    if users == 0 {
        return Ok(true);
    }
    if users > 1 {
        return Ok(false);
    }
    let root = crate::store::users::get_for_login(db, "root").await?;
    Ok(root.is_some_and(|r| r.id == 1 && r.used_quota == 0 && r.request_count == 0))
}

/// Copies the One API database at `from` into `db` (and `log_db` for logs).
pub async fn run(
    from: &str,
    db: &Db,
    log_db: &Db,
    merge: bool,
    show_progress: bool,
) -> anyhow::Result<ImportReport> {
    let url = source_url(from)?;
    let settings = PoolSettings {
        max_open: 2,
        max_idle: 1,
        max_lifetime: std::time::Duration::from_secs(600),
        sqlite_busy_timeout: std::time::Duration::from_secs(5),
    };
    let source = Db::connect(&url, &settings)
        .await
        .context("opening the One API database")?;
    let schema = oneapi::source_schema(&source).await?;
    if !schema.contains_key("users") || !schema.contains_key("tokens") {
        bail!("the source has no users and tokens tables: is it a One API database?");
    }
    let mark = fingerprint(&url);
    let previous = store::options::load_all(db)
        .await?
        .into_iter()
        .find(|(k, _)| k == MARKER)
        .map(|(_, v)| v);
    if previous.as_deref() != Some(mark.as_str()) {
        if is_fresh(db, log_db).await? {
            oneapi::remove_bootstrap_root(db).await?;
        } else if !merge {
            bail!(
                "the target database is not empty (it has users, channels, codes or logs of its \
                 own); import into a fresh database, or pass --merge to add the One API rows \
                 whose ids and keys are not taken yet"
            );
        }
    }

    let mut report = ImportReport::default();
    for spec in TABLES {
        let Some(present) = schema.get(spec.name) else {
            report.tables.push(TableReport {
                table: spec.name,
                read: 0,
                inserted: 0,
            });
            continue;
        };
        let target = if spec.name == "logs" { log_db } else { db };
        let total = oneapi::count(&source, spec.name).await?.max(0) as u64;
        let bar = if show_progress && total > 10_000 {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template("{msg:<10} {wide_bar} {pos}/{len} ({eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_message(spec.name);
            Some(b)
        } else {
            None
        };
        let (mut read, mut inserted, mut after) = (0u64, 0u64, 0i64);
        let page = if spec.name == "logs" { 5000 } else { 1000 };
        loop {
            let rows = oneapi::read_rows(&source, spec, present, after, page).await?;
            if rows.is_empty() {
                break;
            }
            read += rows.len() as u64;
            inserted += oneapi::insert_rows(target, spec, &rows).await?;
            if let Some(b) = &bar {
                b.set_position(read);
            }
            if !spec.paged_by_id || (rows.len() as i64) < page {
                break;
            }
            after = match rows.last().and_then(|r| r.first()) {
                Some(Value::Int(id)) => *id,
                _ => break,
            };
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        if spec.paged_by_id {
            oneapi::fix_sequence(target, spec.name).await?;
        }
        report.tables.push(TableReport {
            table: spec.name,
            read,
            inserted,
        });
    }

    // The imported logs went around the ledger writer: recompute their rollup.
    if report
        .tables
        .iter()
        .any(|t| t.table == "logs" && t.inserted > 0)
    {
        store::log_rollups::rebuild(log_db).await?;
    }

    // Abilities follow from the channels.
    for channel in store::channels::all(db).await? {
        let mut tx = db.pool.begin().await?;
        store::abilities::replace_for_channel(db, &mut tx, &channel).await?;
        tx.commit().await?;
        report.abilities += store::abilities::for_channel(&channel).len() as u64;
    }
    store::options::upsert(db, MARKER, &mark).await?;
    source.pool.close().await;
    Ok(report)
}
