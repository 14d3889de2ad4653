//! Background work that only the master node runs (`NODE_TYPE=master`): periodic channel tests
//! (`CHANNEL_TEST_FREQUENCY`), balance updates (`CHANNEL_UPDATE_FREQUENCY`) and log retention
//! (`LOG_RETENTION_DAYS`).
//!
//! Invariants:
//! - Each job's work is a plain async function ([`channel_test::test_all_channels`],
//!   [`balance::update_all_balances`], [`log_retention::purge_old_logs`]) that tests call
//!   directly; [`spawn`] only puts them on timers.
//! - A pass runs in its own task: an error is logged, a panic is logged, and the timer carries on.
//!   Passes of one job never overlap (the next tick waits for the pass to end).
//! - The timers are plain Tokio tasks that hold nothing the server needs: they end when the
//!   runtime shuts down after the server has stopped (`main` returns), or at their next tick
//!   once the database pool has been closed. They never keep the process alive.

pub mod balance;
pub mod channel_test;
pub mod log_retention;

use std::future::Future;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::state::AppState;

/// Log retention runs once a day.
pub const LOG_RETENTION_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

/// Starts the timers of the jobs the configuration enables. Call once, on the master only.
pub fn spawn(state: AppState) {
    let cfg = state.cfg.clone();
    if let Some(every) = cfg.channel_test_frequency {
        tracing::info!(
            every_secs = every.as_secs(),
            "periodic channel test enabled"
        );
        spawn_periodic(
            "channel test",
            every,
            false,
            state.clone(),
            |s| async move { channel_test::run_periodic(&s).await },
        );
    }
    if let Some(every) = cfg.channel_update_frequency {
        tracing::info!(
            every_secs = every.as_secs(),
            "periodic balance update enabled"
        );
        spawn_periodic(
            "balance update",
            every,
            false,
            state.clone(),
            |s| async move { balance::update_all_balances(&s).await.map(|_| ()) },
        );
    }
    if cfg.log_retention_days > 0 {
        tracing::info!(days = cfg.log_retention_days, "log retention enabled");
        // Also at start: a node restarted more often than daily would otherwise never purge.
        spawn_periodic(
            "log retention",
            LOG_RETENTION_PERIOD,
            true,
            state,
            |s| async move { log_retention::purge_old_logs(&s).await.map(|_| ()) },
        );
    }
}

/// Runs `job` every `every` (first after one period, as One API, unless `at_start`), each pass in
/// its own task so that a panic is contained.
fn spawn_periodic<F, Fut, E>(
    name: &'static str,
    every: Duration,
    at_start: bool,
    state: AppState,
    job: F,
) where
    F: Fn(AppState) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        if !at_start {
            // The first tick of an interval completes at once.
            tick.tick().await;
        }
        loop {
            tick.tick().await;
            if state.db.pool.is_closed() || state.log_db.pool.is_closed() {
                tracing::debug!(job = name, "database closed: stopping");
                return;
            }
            match tokio::spawn(job(state.clone())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(job = name, error = %e, "background job failed"),
                Err(e) if e.is_panic() => {
                    tracing::error!(job = name, "background job panicked")
                }
                // Cancelled: the runtime is shutting down.
                Err(_) => return,
            }
        }
    });
}
