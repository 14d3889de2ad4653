//! `AppState`: what every handler shares (configuration, databases, options, HTTP client).

use std::sync::Arc;

use crate::config::Config;
use crate::options::OptionStore;
use crate::store::Db;

#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub db: Db,
    /// The database holding `logs` (`LOG_SQL_DSN`, or the main one).
    pub log_db: Db,
    pub options: OptionStore,
    /// The one pooled client for upstream calls.
    pub http: reqwest::Client,
    pub start_time: i64,
    /// The relay's routing table, caches and quota ledger.
    pub relay: crate::relay::RelayState,
}
