//! Testing every channel, as One API's batch test (`testChannels`) does, with its automatic
//! status changes:
//! - an enabled channel whose test fails with an error One API treats as fatal (401, invalid key,
//!   no quota, ... — [`is_fatal_upstream_error`]) or that answers slower than the option
//!   `ChannelDisableThreshold` (seconds; 0 = never) is disabled (status 3) when
//!   `AutomaticDisableChannelEnabled` is true;
//! - a channel disabled automatically (status 3) whose test succeeds is enabled again when
//!   `AutomaticEnableChannelEnabled` is true. Unlike One API, a channel an admin disabled
//!   (status 2) is never re-enabled.
//!
//! Each test is `crate::api::channel::run_test`, the code behind `GET /api/channel/test/:id`.
//! The routing table is rebuilt after every status change, so a change is used at once.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::api::channel::{TestOutcome, run_test};
use crate::relay::route::is_fatal_upstream_error;
use crate::state::AppState;
use crate::store::channels::{self, STATUS_AUTO_DISABLED, STATUS_ENABLED};

static RUNNING: AtomicBool = AtomicBool::new(false);

/// Held while a batch test runs: the manual one (`GET /api/channel/test`) and the periodic one
/// never run at the same time. Released on drop, also when a test panics.
#[derive(Debug)]
pub struct Running(());

impl Running {
    /// `None` when a batch test is already running.
    pub fn acquire() -> Option<Running> {
        (!RUNNING.swap(true, Ordering::SeqCst)).then_some(Running(()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::SeqCst);
    }
}

/// What one batch test did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestReport {
    pub tested: usize,
    pub passed: usize,
    /// Channels disabled by this run.
    pub disabled: Vec<i64>,
    /// Channels enabled again by this run.
    pub enabled: Vec<i64>,
}

/// The automatic status change a test result calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Keep,
    Disable(String),
    Enable,
}

/// The options that govern automatic status changes, read once per batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub auto_disable: bool,
    pub auto_enable: bool,
    /// `ChannelDisableThreshold` in milliseconds; 0 = no latency limit.
    pub threshold_ms: i64,
}

impl Policy {
    pub fn from_options(opts: &crate::options::Options) -> Policy {
        Policy {
            auto_disable: opts.bool("AutomaticDisableChannelEnabled"),
            auto_enable: opts.bool("AutomaticEnableChannelEnabled"),
            threshold_ms: (opts.f64("ChannelDisableThreshold") * 1000.0).max(0.0) as i64,
        }
    }

    /// One API's rules (`controller/channel-test.go testChannels`, `monitor/manage.go`).
    pub fn decide(&self, status: i64, t: &TestOutcome) -> Decision {
        match status {
            STATUS_ENABLED if self.auto_disable => {
                if !t.success && t.status != 0 && is_fatal_upstream_error(t.status, &t.error) {
                    Decision::Disable(t.message.clone())
                } else if self.threshold_ms > 0 && t.elapsed_ms > self.threshold_ms {
                    Decision::Disable(format!(
                        "响应时间 {:.2}s 超过阈值 {:.2}s",
                        t.elapsed_ms as f64 / 1000.0,
                        self.threshold_ms as f64 / 1000.0
                    ))
                } else {
                    Decision::Keep
                }
            }
            STATUS_AUTO_DISABLED if self.auto_enable && t.success => Decision::Enable,
            _ => Decision::Keep,
        }
    }
}

/// Tests every channel (or only the disabled ones), one after another with `POLLING_INTERVAL`
/// between them, and applies the automatic status changes. Errors only when the channels cannot
/// be read or a status cannot be written.
pub async fn test_all_channels(
    state: &AppState,
    only_disabled: bool,
) -> Result<TestReport, sqlx::Error> {
    let policy = Policy::from_options(&state.options.load());
    let mut report = TestReport::default();
    for c in channels::all(&state.db).await? {
        if only_disabled && c.status == STATUS_ENABLED {
            continue;
        }
        if report.tested > 0 {
            tokio::time::sleep(state.cfg.polling_interval).await;
        }
        let outcome = run_test(state, &c, "").await;
        report.tested += 1;
        report.passed += usize::from(outcome.success);
        let changed = match policy.decide(c.status, &outcome) {
            Decision::Keep => false,
            Decision::Disable(reason) => {
                tracing::warn!(channel_id = c.id, channel = %c.name, %reason,
                    "channel test: disabling channel automatically");
                crate::store::ledger::auto_disable_channel(&state.db, c.id).await?;
                report.disabled.push(c.id);
                true
            }
            Decision::Enable => {
                let enabled = channels::auto_enable(&state.db, c.id).await?;
                if enabled {
                    tracing::info!(channel_id = c.id, channel = %c.name,
                        "channel test: channel passed, enabled again");
                    report.enabled.push(c.id);
                }
                enabled
            }
        };
        if changed && let Err(e) = crate::relay::reload_routing(state).await {
            tracing::error!(error = %e, "channel test: cannot rebuild the routing table");
        }
    }
    Ok(report)
}

/// One pass of the periodic test (every `CHANNEL_TEST_FREQUENCY`): all channels, skipped when a
/// manual batch test is running.
pub async fn run_periodic(state: &AppState) -> Result<(), sqlx::Error> {
    let Some(_running) = Running::acquire() else {
        tracing::info!("periodic channel test skipped: a batch test is running");
        return Ok(());
    };
    let r = test_all_channels(state, false).await?;
    tracing::info!(
        tested = r.tested,
        passed = r.passed,
        disabled = r.disabled.len(),
        enabled = r.enabled.len(),
        "periodic channel test done"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn outcome(success: bool, status: u16, error: Value, elapsed_ms: i64) -> TestOutcome {
        TestOutcome {
            success,
            message: if success { "ok".into() } else { "boom".into() },
            elapsed_ms,
            status,
            error,
        }
    }

    const ON: Policy = Policy {
        auto_disable: true,
        auto_enable: true,
        threshold_ms: 5000,
    };

    #[test]
    fn fatal_errors_disable_enabled_channels_only_when_allowed() {
        let unauthorized = outcome(false, 401, json!({"message": "bad key"}), 10);
        assert_eq!(
            ON.decide(STATUS_ENABLED, &unauthorized),
            Decision::Disable("boom".into())
        );
        let off = Policy {
            auto_disable: false,
            ..ON
        };
        assert_eq!(off.decide(STATUS_ENABLED, &unauthorized), Decision::Keep);
        // Already disabled: nothing to do.
        assert_eq!(
            ON.decide(STATUS_AUTO_DISABLED, &unauthorized),
            Decision::Keep
        );
        let no_quota = outcome(false, 429, json!({"type": "insufficient_quota"}), 10);
        assert!(matches!(
            ON.decide(STATUS_ENABLED, &no_quota),
            Decision::Disable(_)
        ));
    }

    #[test]
    fn transient_errors_keep_the_channel() {
        for t in [
            outcome(false, 500, json!({"message": "overloaded"}), 10),
            outcome(false, 429, json!({"message": "rate limited"}), 10),
            // Not reached (connection refused, unsupported type): status 0.
            outcome(false, 0, Value::Null, 10),
        ] {
            assert_eq!(ON.decide(STATUS_ENABLED, &t), Decision::Keep, "{t:?}");
        }
    }

    #[test]
    fn slow_channels_are_disabled_unless_the_threshold_is_zero() {
        let slow = outcome(true, 0, Value::Null, 6000);
        assert!(matches!(
            ON.decide(STATUS_ENABLED, &slow),
            Decision::Disable(m) if m.contains("6.00s")
        ));
        let no_limit = Policy {
            threshold_ms: 0,
            ..ON
        };
        assert_eq!(no_limit.decide(STATUS_ENABLED, &slow), Decision::Keep);
    }

    #[test]
    fn only_auto_disabled_channels_that_pass_are_enabled() {
        let ok = outcome(true, 0, Value::Null, 10);
        assert_eq!(ON.decide(STATUS_AUTO_DISABLED, &ok), Decision::Enable);
        assert_eq!(
            ON.decide(channels::STATUS_MANUALLY_DISABLED, &ok),
            Decision::Keep
        );
        let failed = outcome(false, 500, Value::Null, 10);
        assert_eq!(ON.decide(STATUS_AUTO_DISABLED, &failed), Decision::Keep);
        let off = Policy {
            auto_enable: false,
            ..ON
        };
        assert_eq!(off.decide(STATUS_AUTO_DISABLED, &ok), Decision::Keep);
    }

    #[test]
    fn policy_reads_the_options() {
        let opts = crate::options::Options::from_map(crate::options::defaults());
        let p = Policy::from_options(&opts);
        assert_eq!(
            p,
            Policy {
                auto_disable: false,
                auto_enable: false,
                threshold_ms: 5000,
            }
        );
        let opts = opts
            .with("AutomaticDisableChannelEnabled", "true")
            .with("AutomaticEnableChannelEnabled", "true")
            .with("ChannelDisableThreshold", "1.5");
        let p = Policy::from_options(&opts);
        assert!(p.auto_disable && p.auto_enable);
        assert_eq!(p.threshold_ms, 1500);
    }
}
