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
    /// The pooled client for upstream calls off the relay's hot path (providers' access tokens
    /// and polling, jobs, the proxy type); it also builds the requests that the relay and the
    /// channel test send with [`AppState::upstream`].
    pub http: reqwest::Client,
    /// Tells this state's per-thread upstream clients from another's (tests run many apps).
    pub http_id: u64,
    pub start_time: i64,
    /// The parsed `TRUSTED_PROXIES` (see [`crate::client_ip`]).
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// The relay's routing table, caches and quota ledger.
    pub relay: crate::relay::RelayState,
}

impl AppState {
    /// The relay's upstream client of the current thread, built on first use. A client's
    /// connections are driven by tasks on the runtime that opened them, so a pool shared by
    /// actix's workers (one runtime each) woke the other worker's thread for every write and
    /// read of half the requests. One pool per worker keeps a relay request on its thread.
    pub fn upstream(&self) -> crate::relay::upstream::Upstream {
        use crate::relay::upstream::Upstream;
        thread_local! {
            static CLIENTS: std::cell::RefCell<Vec<(u64, Upstream)>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        CLIENTS.with_borrow_mut(|clients| {
            if let Some((_, c)) = clients.iter().find(|(id, _)| *id == self.http_id) {
                return c.clone();
            }
            let c = Upstream::new(&self.cfg).unwrap_or_else(|e| {
                tracing::error!(error = %e, "upstream client failed to build; using reqwest's");
                Upstream::reqwest(self.http.clone(), &self.cfg)
            });
            clients.push((self.http_id, c.clone()));
            c
        })
    }

    /// A fresh id for [`AppState::http_id`].
    pub fn next_http_id() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}
