//! Settings read once at start from the environment (and `.env`), with One API's variable names,
//! defaults and meanings. A value that does not parse stops the start with a message naming the
//! variable. Tests build `Config` from a map (`Config::from_lookup`) and never touch the process
//! environment.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

/// A configuration value that could not be used, naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for environment variable {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    Master,
    Slave,
}

/// Every setting Tollgate reads from the environment. See `.env.example` for the meaning of each.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub host: String,
    pub log_dir: Option<PathBuf>,
    pub only_one_log_file: bool,
    pub debug: bool,
    pub workers: Option<usize>,

    pub sql_dsn: Option<SecretString>,
    pub log_sql_dsn: Option<SecretString>,
    pub sqlite_path: String,
    pub sqlite_busy_timeout: Duration,
    pub sql_max_idle_conns: u32,
    pub sql_max_open_conns: u32,
    pub sql_conn_max_lifetime: Duration,

    pub redis_conn_string: Option<SecretString>,
    pub redis_password: Option<SecretString>,
    pub redis_master_name: Option<String>,
    /// Prefix of every Redis key and channel (several deployments can share one Redis).
    pub redis_key_prefix: String,
    pub session_secret: Option<SecretString>,
    pub sync_frequency: Duration,
    pub node_type: NodeType,
    pub memory_cache_enabled: bool,
    pub batch_update_enabled: bool,
    pub batch_update_interval: Duration,
    pub frontend_base_url: Option<String>,

    pub channel_test_frequency: Option<Duration>,
    pub channel_update_frequency: Option<Duration>,
    pub polling_interval: Duration,
    /// Days of logs to keep (`LOG_RETENTION_DAYS`, a Tollgate addition); 0 keeps them forever.
    pub log_retention_days: u32,

    pub global_api_rate_limit: u32,
    pub global_web_rate_limit: u32,
    pub critical_rate_limit: u32,

    pub relay_timeout: Option<Duration>,
    pub relay_first_token_timeout: Option<Duration>,
    pub relay_idle_timeout: Option<Duration>,
    pub relay_proxy: Option<String>,
    pub relay_max_body: usize,
    pub enforce_include_usage: bool,
    pub enable_metric: bool,
    pub metric_queue_size: usize,
    pub metric_success_rate_threshold: f64,
    pub gemini_safety_setting: String,
    pub gemini_version: String,
    pub test_prompt: String,
    pub user_content_request_timeout: Duration,
    pub user_content_request_proxy: Option<String>,

    pub initial_root_token: Option<SecretString>,
    pub initial_root_access_token: Option<SecretString>,
    pub metrics_token: Option<SecretString>,
    pub trusted_proxies: Vec<String>,
}

/// Reads variables through a lookup function so that tests can supply a map.
struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl Reader<'_> {
    fn raw(&self, var: &'static str) -> Option<String> {
        (self.get)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn parse<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| ConfigError {
                var,
                reason: format!("{v:?} is not valid ({e})"),
            }),
        }
    }

    fn opt<T: FromStr>(&self, var: &'static str) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.raw(var)
            .map(|v| {
                v.parse().map_err(|e: T::Err| ConfigError {
                    var,
                    reason: format!("{v:?} is not valid ({e})"),
                })
            })
            .transpose()
    }

    fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(var).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ConfigError {
                    var,
                    reason: format!("{v:?} is not a boolean (use true or false)"),
                }),
            },
        }
    }

    fn secs(&self, var: &'static str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.parse(var, default)?))
    }

    fn secret(&self, var: &'static str) -> Option<SecretString> {
        self.raw(var).map(SecretString::from)
    }

    fn url(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        match self.raw(var) {
            None => Ok(None),
            Some(v) => url::Url::parse(&v)
                .map(|_| Some(v.trim_end_matches('/').to_string()))
                .map_err(|e| ConfigError {
                    var,
                    reason: format!("{v:?} is not a URL ({e})"),
                }),
        }
    }
}

impl Config {
    /// Reads the process environment (after `.env` has been loaded by the caller).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Builds the settings from a map, for tests.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| map.get(k).cloned())
    }

    /// Builds the settings from `(name, value)` pairs, for tests (the last of a repeated name
    /// wins, as in a map).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| {
            pairs
                .iter()
                .rev()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    }

    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let r = Reader { get };
        let node_type = match r.raw("NODE_TYPE").as_deref() {
            None | Some("master") => NodeType::Master,
            Some("slave") => NodeType::Slave,
            Some(other) => {
                return Err(ConfigError {
                    var: "NODE_TYPE",
                    reason: format!("{other:?} is neither master nor slave"),
                });
            }
        };
        let max_lifetime = match r.raw("SQL_CONN_MAX_LIFETIME") {
            Some(_) => r.secs("SQL_CONN_MAX_LIFETIME", 60)?,
            None => r.secs("SQL_MAX_LIFETIME", 60)?,
        };
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        let threshold: f64 = r.parse("METRIC_SUCCESS_RATE_THRESHOLD", 0.8)?;
        if !(0.0..=1.0).contains(&threshold) {
            return Err(ConfigError {
                var: "METRIC_SUCCESS_RATE_THRESHOLD",
                reason: format!("{threshold} is not between 0 and 1"),
            });
        }
        let cfg = Config {
            port: r.parse("PORT", 3000)?,
            host: r.raw("HOST").unwrap_or_else(|| "0.0.0.0".into()),
            log_dir: r.raw("LOG_DIR").map(PathBuf::from),
            only_one_log_file: r.bool("ONLY_ONE_LOG_FILE", false)?,
            debug: r.bool("DEBUG", false)?,
            workers: r.opt("WORKERS")?,
            sql_dsn: r.secret("SQL_DSN"),
            log_sql_dsn: r.secret("LOG_SQL_DSN"),
            sqlite_path: r.raw("SQLITE_PATH").unwrap_or_else(|| "tollgate.db".into()),
            sqlite_busy_timeout: Duration::from_millis(r.parse("SQLITE_BUSY_TIMEOUT", 3000)?),
            sql_max_idle_conns: r.parse("SQL_MAX_IDLE_CONNS", 100)?,
            sql_max_open_conns: r.parse("SQL_MAX_OPEN_CONNS", 1000)?,
            sql_conn_max_lifetime: max_lifetime,
            redis_conn_string: r.secret("REDIS_CONN_STRING"),
            redis_password: r.secret("REDIS_PASSWORD"),
            redis_master_name: r.raw("REDIS_MASTER_NAME"),
            redis_key_prefix: r
                .raw("REDIS_KEY_PREFIX")
                .unwrap_or_else(|| "tollgate:".into()),
            session_secret: r.secret("SESSION_SECRET"),
            sync_frequency: r.secs("SYNC_FREQUENCY", 600)?,
            node_type,
            memory_cache_enabled: r.bool("MEMORY_CACHE_ENABLED", false)?,
            batch_update_enabled: r.bool("BATCH_UPDATE_ENABLED", false)?,
            batch_update_interval: r.secs("BATCH_UPDATE_INTERVAL", 5)?,
            frontend_base_url: r.url("FRONTEND_BASE_URL")?,
            channel_test_frequency: r
                .opt::<u64>("CHANNEL_TEST_FREQUENCY")?
                .filter(|m| *m > 0)
                .map(|m| Duration::from_secs(m * 60)),
            channel_update_frequency: r
                .opt::<u64>("CHANNEL_UPDATE_FREQUENCY")?
                .filter(|m| *m > 0)
                .map(|m| Duration::from_secs(m * 60)),
            polling_interval: r.secs("POLLING_INTERVAL", 0)?,
            log_retention_days: r.parse("LOG_RETENTION_DAYS", 0)?,
            global_api_rate_limit: r.parse("GLOBAL_API_RATE_LIMIT", 480)?,
            global_web_rate_limit: r.parse("GLOBAL_WEB_RATE_LIMIT", 240)?,
            critical_rate_limit: r.parse("CRITICAL_RATE_LIMIT", 20)?,
            relay_timeout: nonzero(r.secs("RELAY_TIMEOUT", 0)?),
            relay_first_token_timeout: nonzero(r.secs("RELAY_FIRST_TOKEN_TIMEOUT", 0)?),
            relay_idle_timeout: nonzero(r.secs("RELAY_IDLE_TIMEOUT", 300)?),
            relay_proxy: r.url("RELAY_PROXY")?,
            relay_max_body: r.parse::<usize>("RELAY_MAX_BODY_MB", 32)? * 1024 * 1024,
            enforce_include_usage: r.bool("ENFORCE_INCLUDE_USAGE", false)?,
            enable_metric: r.bool("ENABLE_METRIC", false)?,
            metric_queue_size: r.parse("METRIC_QUEUE_SIZE", 10)?,
            metric_success_rate_threshold: threshold,
            gemini_safety_setting: r
                .raw("GEMINI_SAFETY_SETTING")
                .unwrap_or_else(|| "BLOCK_NONE".into()),
            gemini_version: r.raw("GEMINI_VERSION").unwrap_or_else(|| "v1".into()),
            test_prompt: r.raw("TEST_PROMPT").unwrap_or_else(|| {
                "Output only your specific model name with no additional text.".into()
            }),
            user_content_request_timeout: r.secs("USER_CONTENT_REQUEST_TIMEOUT", 30)?,
            user_content_request_proxy: r.url("USER_CONTENT_REQUEST_PROXY")?,
            initial_root_token: r.secret("INITIAL_ROOT_TOKEN"),
            initial_root_access_token: r.secret("INITIAL_ROOT_ACCESS_TOKEN"),
            metrics_token: r.secret("METRICS_TOKEN"),
            trusted_proxies: r
                .raw("TRUSTED_PROXIES")
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
        };
        if cfg.sql_max_open_conns == 0 {
            return Err(ConfigError {
                var: "SQL_MAX_OPEN_CONNS",
                reason: "must be at least 1".into(),
            });
        }
        Ok(cfg)
    }

    /// Redis is used only when both `REDIS_CONN_STRING` and `SYNC_FREQUENCY` are meaningful, as in
    /// One API (where an unset `SYNC_FREQUENCY` disables Redis); we keep the simpler rule that a
    /// connection string enables it.
    pub fn redis_enabled(&self) -> bool {
        self.redis_conn_string.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_one_api() {
        let c = Config::from_pairs(&[]).expect("defaults");
        assert_eq!(c.port, 3000);
        assert_eq!(c.sqlite_path, "tollgate.db");
        assert_eq!(c.sqlite_busy_timeout, Duration::from_millis(3000));
        assert_eq!(c.sync_frequency, Duration::from_secs(600));
        assert_eq!(c.node_type, NodeType::Master);
        assert_eq!(c.global_api_rate_limit, 480);
        assert_eq!(c.global_web_rate_limit, 240);
        assert_eq!(c.batch_update_interval, Duration::from_secs(5));
        assert_eq!(c.relay_timeout, None);
        assert_eq!(c.log_retention_days, 0);
        assert_eq!(c.channel_test_frequency, None);
        assert_eq!(c.channel_update_frequency, None);
        assert_eq!(c.gemini_version, "v1");
        assert!(c.sql_dsn.is_none());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, val) in [
            ("PORT", "eighty"),
            ("SYNC_FREQUENCY", "-3"),
            ("MEMORY_CACHE_ENABLED", "maybe"),
            ("NODE_TYPE", "leader"),
            ("FRONTEND_BASE_URL", "not a url"),
            ("METRIC_SUCCESS_RATE_THRESHOLD", "2"),
            ("SQL_MAX_OPEN_CONNS", "0"),
            ("LOG_RETENTION_DAYS", "-1"),
        ] {
            let err = Config::from_pairs(&[(var, val)]).expect_err(var);
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn values_are_read() {
        let c = Config::from_pairs(&[
            ("PORT", "8080"),
            ("NODE_TYPE", "slave"),
            ("CHANNEL_TEST_FREQUENCY", "2"),
            ("SQL_MAX_LIFETIME", "30"),
            ("BATCH_UPDATE_ENABLED", "true"),
            ("CHANNEL_UPDATE_FREQUENCY", "30"),
            ("LOG_RETENTION_DAYS", "90"),
        ])
        .expect("config");
        assert_eq!(c.port, 8080);
        assert_eq!(c.node_type, NodeType::Slave);
        assert_eq!(c.channel_test_frequency, Some(Duration::from_secs(120)));
        assert_eq!(c.sql_conn_max_lifetime, Duration::from_secs(30));
        assert!(c.batch_update_enabled);
        assert_eq!(c.channel_update_frequency, Some(Duration::from_secs(1800)));
        assert_eq!(c.log_retention_days, 90);
    }
}
