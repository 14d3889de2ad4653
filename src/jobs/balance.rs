//! Updating the balance of every channel, as `GET /api/channel/update_balance` does: enabled
//! channels whose provider has a balance API (`crate::api::channel::has_balance_api`), one after
//! another with `POLLING_INTERVAL` between them. One API documents `CHANNEL_UPDATE_FREQUENCY`
//! but never implemented it; here it runs this every that many minutes.

use crate::api::channel::{fetch_balance, has_balance_api};
use crate::state::AppState;
use crate::store::channels::{self, STATUS_ENABLED};

/// What one update did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalanceReport {
    /// Channels whose balance was written.
    pub updated: Vec<i64>,
    /// Channels whose provider could not be asked or answered something unusable.
    pub failed: Vec<i64>,
}

/// Updates every enabled channel that has a balance API. A provider's failure is logged and
/// leaves that channel's balance as it was; only a database error ends the run.
pub async fn update_all_balances(state: &AppState) -> Result<BalanceReport, sqlx::Error> {
    let mut report = BalanceReport::default();
    let todo = channels::all(&state.db)
        .await?
        .into_iter()
        .filter(|c| c.status == STATUS_ENABLED && has_balance_api(c.r#type));
    for (i, c) in todo.enumerate() {
        if i > 0 {
            tokio::time::sleep(state.cfg.polling_interval).await;
        }
        match fetch_balance(state, &c).await {
            Ok(b) => {
                channels::set_balance(&state.db, c.id, b).await?;
                report.updated.push(c.id);
            }
            Err(msg) => {
                tracing::info!(channel = c.id, %msg, "balance not updated");
                report.failed.push(c.id);
            }
        }
    }
    Ok(report)
}
