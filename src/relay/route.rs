//! The routing table (channels + abilities in memory, behind `ArcSwap`), channel selection,
//! automatic disabling and the success-rate monitor.
//!
//! Invariants:
//! - Readers never lock: a request loads the current table; rebuilds swap a new one in.
//! - Selection: group -> model -> the highest priority tier among the channels not yet tried ->
//!   weighted random inside it (weight 0 counts as 1). Retries exclude channels already tried,
//!   so they reach lower tiers once a tier is exhausted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use rand::RngExt;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::store::{Db, abilities, channels};

/// A channel as the relay needs it.
#[derive(Debug, Clone, Default)]
pub struct Channel {
    pub id: i64,
    pub r#type: i64,
    pub key: String,
    pub status: i64,
    pub name: String,
    pub base_url: String,
    pub model_mapping: HashMap<String, String>,
    pub system_prompt: Option<String>,
    pub priority: i64,
    pub weight: i64,
    pub config: String,
    /// `config.api_version`, else the legacy `other` column (Azure, Gemini).
    pub api_version: Option<String>,
    /// `config.user_id` (Cloudflare's account id, Coze's user).
    pub user_id: Option<String>,
    /// The parsed `config` JSON (`Null` when empty or invalid).
    pub settings: serde_json::Value,
}

impl Channel {
    /// The upstream model name for a requested model (channel `model_mapping`).
    pub fn map_model<'a>(&'a self, model: &'a str) -> &'a str {
        match self.model_mapping.get(model) {
            Some(m) if !m.is_empty() => m,
            _ => model,
        }
    }
}

/// A channel row as the relay sees it (model mapping parsed, config fields read).
pub fn from_row(c: &channels::Channel) -> Channel {
    let model_mapping = if c.model_mapping.trim().is_empty() {
        HashMap::new()
    } else {
        serde_json::from_str::<HashMap<String, String>>(&c.model_mapping).unwrap_or_else(|e| {
            tracing::warn!(channel_id = c.id, error = %e, "ignoring invalid model_mapping");
            HashMap::new()
        })
    };
    Channel {
        id: c.id,
        r#type: c.r#type,
        key: c.key.clone(),
        status: c.status,
        name: c.name.clone(),
        base_url: c.base_url.clone(),
        model_mapping,
        system_prompt: Some(c.system_prompt.clone()).filter(|s| !s.is_empty()),
        priority: c.priority,
        weight: c.weight,
        config: c.config.clone(),
        api_version: config_field(&c.config, "api_version")
            .or_else(|| Some(c.other.trim().to_string()).filter(|s| !s.is_empty())),
        user_id: config_field(&c.config, "user_id"),
        settings: serde_json::from_str(&c.config).unwrap_or_default(),
    }
}

/// A non-empty string field of a channel's `config` JSON.
fn config_field(config: &str, key: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(config)
        .ok()?
        .get(key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// An immutable snapshot of channels and abilities.
#[derive(Debug, Default)]
pub struct RoutingTable {
    /// Every channel, enabled or not (pinning must tell "disabled" from "unknown").
    pub channels: FxHashMap<i64, Arc<Channel>>,
    /// group -> model -> candidate channel ids sorted by priority, highest first. Fx-hashed, as
    /// `channels` and `models` are: every request looks its group and model up, and only the
    /// operator's channels put keys in.
    routes: FxHashMap<String, FxHashMap<String, Vec<Arc<Channel>>>>,
    /// Every routed model and every model-mapping target (see [`RoutingTable::knows_model`]).
    models: FxHashSet<String>,
}

impl RoutingTable {
    /// Builds the table from channel and ability rows.
    pub fn build(rows: &[channels::Channel], abilities: &[abilities::Ability]) -> Self {
        let channels: FxHashMap<i64, Arc<Channel>> =
            rows.iter().map(|c| (c.id, Arc::new(from_row(c)))).collect();
        let mut routes: FxHashMap<String, FxHashMap<String, Vec<Arc<Channel>>>> =
            FxHashMap::default();
        for a in abilities.iter().filter(|a| a.enabled) {
            let Some(c) = channels.get(&a.channel_id) else {
                continue;
            };
            if c.status != channels::STATUS_ENABLED {
                continue;
            }
            routes
                .entry(a.group.clone())
                .or_default()
                .entry(a.model.clone())
                .or_default()
                .push(c.clone());
        }
        for models in routes.values_mut() {
            for list in models.values_mut() {
                list.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
                list.dedup_by_key(|c| c.id);
            }
        }
        let models = routes
            .values()
            .flat_map(|m| m.keys().cloned())
            .chain(
                channels
                    .values()
                    .flat_map(|c| c.model_mapping.values().cloned()),
            )
            .collect();
        RoutingTable {
            channels,
            routes,
            models,
        }
    }

    /// Picks a channel for `model` in `group`, skipping `exclude`.
    pub fn select(&self, group: &str, model: &str, exclude: &HashSet<i64>) -> Option<Arc<Channel>> {
        let list = self.routes.get(group)?.get(model)?;
        let mut candidates = list.iter().filter(|c| !exclude.contains(&c.id));
        let first = candidates.next()?;
        let tier: Vec<&Arc<Channel>> = std::iter::once(first)
            .chain(candidates.take_while(|c| c.priority == first.priority))
            .collect();
        let total: i64 = tier.iter().map(|c| c.weight.max(1)).sum();
        let mut pick = rand::rng().random_range(0..total.max(1));
        for c in &tier {
            pick -= c.weight.max(1);
            if pick < 0 {
                return Some((*c).clone());
            }
        }
        Some(first.clone())
    }

    /// The models a group may use (sorted).
    pub fn group_models(&self, group: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .routes
            .get(group)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Whether some group routes `model` or some channel maps a model to it (keeps metric
    /// labels to configured model names).
    pub fn knows_model(&self, model: &str) -> bool {
        self.models.contains(model)
    }
}

/// Loads a fresh table from the database.
pub async fn load(db: &Db) -> Result<RoutingTable, sqlx::Error> {
    let rows = channels::all(db).await?;
    let abilities = abilities::all(db).await?;
    Ok(RoutingTable::build(&rows, &abilities))
}

/// One API's `ShouldDisableChannel`, with the over-broad `credit`/`balance` substrings narrowed
/// (weakness #12).
pub fn is_fatal_upstream_error(status: u16, err: &serde_json::Value) -> bool {
    if status == 401 {
        return true;
    }
    let kind = err.get("type").and_then(|v| v.as_str()).unwrap_or("");
    if matches!(
        kind,
        "insufficient_quota" | "authentication_error" | "permission_error" | "forbidden"
    ) {
        return true;
    }
    let code = err.get("code").and_then(|v| v.as_str()).unwrap_or("");
    if matches!(code, "invalid_api_key" | "account_deactivated") {
        return true;
    }
    let msg = err
        .get("message")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_lowercase();
    [
        "your access was terminated",
        "violation of our policies",
        "your credit balance is too low",
        "organization has been disabled",
        "insufficient credit",
        "insufficient balance",
        "permission denied",
        "organization has been restricted",
        "api key not valid",
        "api key expired",
        "已欠费",
    ]
    .iter()
    .any(|p| msg.contains(p))
}

/// Per-channel ring of recent outcomes (`ENABLE_METRIC`).
#[derive(Debug, Default)]
pub struct Monitor {
    rings: Mutex<HashMap<i64, VecDeque<bool>>>,
}

impl Monitor {
    /// Records an outcome; returns true when the channel should be disabled (a failure with a
    /// full ring whose success rate is below `threshold`); the ring is then reset.
    pub fn record(&self, channel_id: i64, ok: bool, size: usize, threshold: f64) -> bool {
        let Ok(mut rings) = self.rings.lock() else {
            return false;
        };
        let ring = rings.entry(channel_id).or_default();
        ring.push_back(ok);
        while ring.len() > size.max(1) {
            ring.pop_front();
        }
        if ok || ring.len() < size.max(1) {
            return false;
        }
        let rate = ring.iter().filter(|x| **x).count() as f64 / ring.len() as f64;
        if rate < threshold {
            ring.clear();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(id: i64, priority: i64, weight: i64, status: i64) -> channels::Channel {
        channels::Channel {
            id,
            status,
            priority,
            weight,
            models: "m".into(),
            group: "default".into(),
            ..Default::default()
        }
    }

    #[test]
    fn highest_tier_then_lower_on_retry() {
        let rows = vec![
            ch(1, 10, 0, 1),
            ch(2, 10, 0, 1),
            ch(3, 0, 0, 1),
            ch(4, 20, 0, 2),
        ];
        let ab: Vec<_> = rows.iter().flat_map(abilities::for_channel).collect();
        let t = RoutingTable::build(&rows, &ab);
        let mut seen = HashSet::new();
        for _ in 0..200 {
            seen.insert(t.select("default", "m", &HashSet::new()).unwrap().id);
        }
        assert_eq!(seen, HashSet::from([1, 2]));
        let ex = HashSet::from([1, 2]);
        assert_eq!(t.select("default", "m", &ex).unwrap().id, 3);
        let ex = HashSet::from([1, 2, 3]);
        assert!(t.select("default", "m", &ex).is_none());
        assert!(t.select("vip", "m", &HashSet::new()).is_none());
        assert!(t.channels.contains_key(&4));
    }

    #[test]
    fn weights_bias_selection() {
        let rows = vec![ch(1, 0, 99, 1), ch(2, 0, 1, 1)];
        let ab: Vec<_> = rows.iter().flat_map(abilities::for_channel).collect();
        let t = RoutingTable::build(&rows, &ab);
        let ones = (0..1000)
            .filter(|_| t.select("default", "m", &HashSet::new()).unwrap().id == 1)
            .count();
        assert!(ones > 900, "{ones}");
    }

    #[test]
    fn fatal_errors() {
        use serde_json::json;
        assert!(is_fatal_upstream_error(401, &json!({})));
        assert!(is_fatal_upstream_error(
            400,
            &json!({"code":"invalid_api_key"})
        ));
        assert!(is_fatal_upstream_error(
            429,
            &json!({"type":"insufficient_quota"})
        ));
        assert!(!is_fatal_upstream_error(
            500,
            &json!({"message":"credit card form"})
        ));
        assert!(!is_fatal_upstream_error(
            429,
            &json!({"message":"rate limited"})
        ));
    }

    #[test]
    fn monitor_disables_below_threshold() {
        let m = Monitor::default();
        for _ in 0..7 {
            assert!(!m.record(1, true, 10, 0.8));
        }
        assert!(!m.record(1, false, 10, 0.8));
        assert!(!m.record(1, false, 10, 0.8));
        assert!(m.record(1, false, 10, 0.8));
    }
}
