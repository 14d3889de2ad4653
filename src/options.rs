//! Runtime-editable options (One API's `options` table): defaults overlaid with stored rows,
//! published as an immutable snapshot behind `ArcSwap` so that readers never lock. A change is
//! written to the store first and then swapped in.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::store::{self, Db};

/// One API's option keys with their defaults (reference §9).
pub fn defaults() -> BTreeMap<String, String> {
    let pairs: &[(&str, &str)] = &[
        ("PasswordLoginEnabled", "true"),
        ("PasswordRegisterEnabled", "true"),
        ("EmailVerificationEnabled", "false"),
        ("GitHubOAuthEnabled", "false"),
        ("OidcEnabled", "false"),
        ("WeChatAuthEnabled", "false"),
        ("TurnstileCheckEnabled", "false"),
        ("RegisterEnabled", "true"),
        ("AutomaticDisableChannelEnabled", "false"),
        ("AutomaticEnableChannelEnabled", "false"),
        ("ApproximateTokenEnabled", "false"),
        ("LogConsumeEnabled", "true"),
        ("DisplayInCurrencyEnabled", "true"),
        ("DisplayTokenStatEnabled", "true"),
        ("ChannelDisableThreshold", "5"),
        ("EmailDomainRestrictionEnabled", "false"),
        (
            "EmailDomainWhitelist",
            "gmail.com,163.com,126.com,qq.com,outlook.com,hotmail.com,icloud.com,yahoo.com,foxmail.com",
        ),
        ("SMTPServer", ""),
        ("SMTPPort", "587"),
        ("SMTPAccount", ""),
        ("SMTPFrom", ""),
        ("SMTPToken", ""),
        ("Notice", ""),
        ("About", ""),
        ("HomePageContent", ""),
        ("Footer", ""),
        ("Logo", ""),
        ("SystemName", "Tollgate"),
        ("ServerAddress", ""),
        ("GitHubClientId", ""),
        ("GitHubClientSecret", ""),
        ("LarkClientId", ""),
        ("LarkClientSecret", ""),
        ("OidcClientId", ""),
        ("OidcClientSecret", ""),
        ("OidcWellKnown", ""),
        ("OidcAuthorizationEndpoint", ""),
        ("OidcTokenEndpoint", ""),
        ("OidcUserinfoEndpoint", ""),
        ("WeChatServerAddress", ""),
        ("WeChatServerToken", ""),
        ("WeChatAccountQRCodeImageURL", ""),
        ("MessagePusherAddress", ""),
        ("MessagePusherToken", ""),
        ("TurnstileSiteKey", ""),
        ("TurnstileSecretKey", ""),
        ("QuotaForNewUser", "0"),
        ("QuotaForInviter", "0"),
        ("QuotaForInvitee", "0"),
        ("QuotaRemindThreshold", "1000"),
        ("PreConsumedQuota", "500"),
        ("TopUpLink", ""),
        ("ChatLink", ""),
        ("QuotaPerUnit", "500000"),
        ("RetryTimes", "0"),
        ("Theme", "default"),
        ("GroupRatio", r#"{"default":1,"vip":1,"svip":1}"#),
        ("ModelRatio", "{}"),
        ("CompletionRatio", "{}"),
    ];
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An immutable view of every option.
#[derive(Debug, Clone, Default)]
pub struct Options {
    map: BTreeMap<String, String>,
}

impl Options {
    pub fn from_map(map: BTreeMap<String, String>) -> Self {
        Options { map }
    }

    /// Defaults overlaid with `rows`.
    pub fn with_rows(rows: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut map = defaults();
        map.extend(rows);
        Options { map }
    }

    pub fn get(&self, key: &str) -> &str {
        self.map.get(key).map(String::as_str).unwrap_or("")
    }

    /// One API's rule: only the string "true" is true.
    pub fn bool(&self, key: &str) -> bool {
        self.get(key) == "true"
    }

    pub fn i64(&self, key: &str) -> i64 {
        self.get(key).trim().parse().unwrap_or(0)
    }

    pub fn f64(&self, key: &str) -> f64 {
        self.get(key).trim().parse().unwrap_or(0.0)
    }

    pub fn quota_per_unit(&self) -> f64 {
        let q = self.f64("QuotaPerUnit");
        if q > 0.0 { q } else { 500_000.0 }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.map.iter()
    }

    pub fn with(&self, key: &str, value: &str) -> Options {
        let mut map = self.map.clone();
        map.insert(key.to_string(), value.to_string());
        Options { map }
    }
}

/// The shared, swappable snapshot.
#[derive(Debug, Clone)]
pub struct OptionStore {
    current: Arc<ArcSwap<Options>>,
}

impl OptionStore {
    pub fn new(opts: Options) -> Self {
        OptionStore {
            current: Arc::new(ArcSwap::from_pointee(opts)),
        }
    }

    pub fn load(&self) -> Arc<Options> {
        self.current.load_full()
    }

    /// Re-reads every option from the store.
    pub async fn reload(&self, db: &Db) -> Result<(), sqlx::Error> {
        let rows = store::options::load_all(db).await?;
        self.current.store(Arc::new(Options::with_rows(rows)));
        Ok(())
    }

    /// Writes one option and publishes it.
    pub async fn set(&self, db: &Db, key: &str, value: &str) -> Result<(), sqlx::Error> {
        store::options::upsert(db, key, value).await?;
        self.current.rcu(|cur| Arc::new(cur.with(key, value)));
        Ok(())
    }
}
