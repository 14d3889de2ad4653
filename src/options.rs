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

/// Whether an option holds a secret and must never be returned by `GET /api/option/`.
pub fn is_secret(key: &str) -> bool {
    key.ends_with("Token") || key.ends_with("Secret") || key.ends_with("SecretKey")
}

/// Options whose value is a JSON object of non-negative numbers.
const RATIO_KEYS: &[&str] = &["ModelRatio", "CompletionRatio", "GroupRatio"];

fn check_ratio_json(key: &str, value: &str) -> Result<(), String> {
    let parsed: serde_json::Value =
        serde_json::from_str(value).map_err(|e| format!("{key} 不是合法的 JSON：{e}"))?;
    let obj = parsed
        .as_object()
        .ok_or_else(|| format!("{key} 必须是 JSON 对象"))?;
    for (k, v) in obj {
        match v.as_f64() {
            Some(n) if n >= 0.0 && n.is_finite() => {}
            _ => return Err(format!("{key} 中 {k} 的值必须是非负数")),
        }
    }
    Ok(())
}

/// Checks a new option value against its key's type and One API's guards. `current` is the
/// snapshot the change would apply to.
pub fn validate(current: &Options, key: &str, value: &str) -> Result<(), String> {
    let defaults = defaults();
    let Some(default) = defaults.get(key) else {
        return Err(format!("未知的配置项：{key}"));
    };
    if RATIO_KEYS.contains(&key) {
        return check_ratio_json(key, value);
    }
    if default == "true" || default == "false" {
        if value != "true" && value != "false" {
            return Err(format!("{key} 的值必须是 true 或 false"));
        }
    } else if !default.is_empty() && default.parse::<f64>().is_ok() {
        match value.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => {}
            _ => return Err(format!("{key} 的值必须是非负数字")),
        }
        if default.parse::<i64>().is_ok() && value.trim().parse::<i64>().is_err() {
            return Err(format!("{key} 的值必须是整数"));
        }
    }
    let enabling = value == "true";
    let missing = |k: &str| current.get(k).trim().is_empty();
    match key {
        "Theme" if !matches!(value, "default" | "berry" | "air") => Err("无效的主题".to_string()),
        "GitHubOAuthEnabled" if enabling && missing("GitHubClientId") => Err(
            "无法启用 GitHub OAuth，请先填入 GitHub Client Id 以及 GitHub Client Secret！".into(),
        ),
        "OidcEnabled" if enabling && missing("OidcClientId") => {
            Err("无法启用 OIDC 登录，请先填入 OIDC Client Id 以及 OIDC Client Secret！".into())
        }
        "EmailDomainRestrictionEnabled" if enabling && missing("EmailDomainWhitelist") => {
            Err("无法启用邮箱域名限制，请先填入限制的邮箱域名！".into())
        }
        "WeChatAuthEnabled" if enabling && missing("WeChatServerAddress") => {
            Err("无法启用微信登录，请先填入微信登录相关配置信息！".into())
        }
        "TurnstileCheckEnabled" if enabling && missing("TurnstileSiteKey") => {
            Err("无法启用 Turnstile 校验，请先填入 Turnstile 校验相关配置信息！".into())
        }
        "EmailVerificationEnabled" if enabling && missing("SMTPServer") => {
            Err("无法启用邮箱验证，请先填入 SMTP 相关配置信息！".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod validate_tests {
    use super::*;

    #[test]
    fn secrets_are_recognised() {
        for k in [
            "SMTPToken",
            "GitHubClientSecret",
            "TurnstileSecretKey",
            "WeChatServerToken",
        ] {
            assert!(is_secret(k), "{k}");
        }
        for k in ["TurnstileSiteKey", "GitHubClientId", "ModelRatio"] {
            assert!(!is_secret(k), "{k}");
        }
    }

    #[test]
    fn values_are_checked_by_type() {
        let o = Options::with_rows([]);
        assert!(validate(&o, "ModelRatio", r#"{"gpt-4": 15, "x": 0.5}"#).is_ok());
        assert!(validate(&o, "ModelRatio", r#"{"gpt-4": -1}"#).is_err());
        assert!(validate(&o, "ModelRatio", r#"{"gpt-4": "a"}"#).is_err());
        assert!(validate(&o, "GroupRatio", "[1]").is_err());
        assert!(validate(&o, "GroupRatio", "{bad").is_err());
        assert!(validate(&o, "QuotaPerUnit", "500000").is_ok());
        assert!(validate(&o, "QuotaPerUnit", "abc").is_err());
        assert!(validate(&o, "RetryTimes", "1.5").is_err());
        assert!(validate(&o, "RegisterEnabled", "yes").is_err());
        assert!(validate(&o, "RegisterEnabled", "false").is_ok());
        assert!(validate(&o, "NoSuchKey", "1").is_err());
        assert!(validate(&o, "Notice", "anything").is_ok());
        assert!(validate(&o, "GitHubOAuthEnabled", "true").is_err());
        let o = o.with("GitHubClientId", "abc");
        assert!(validate(&o, "GitHubOAuthEnabled", "true").is_ok());
        assert!(validate(&o, "Theme", "dark").is_err());
    }
}
