//! Redis as One API configures it: `REDIS_CONN_STRING` as a `redis://` URL (standalone), or a
//! comma-separated `host:port` list with `REDIS_PASSWORD`, which is a Sentinel group when
//! `REDIS_MASTER_NAME` is set and a Cluster otherwise.
//!
//! Quota keys share a hash tag per user (`{u<id>}`), so a user's and a token's balance sit in the
//! same cluster slot and one script moves both atomically.

use deadpool_redis::redis::{self, Script};
use secrecy::ExposeSecret;

use crate::config::Config;

/// How to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    Standalone(String),
    Sentinel {
        nodes: Vec<String>,
        master: String,
        password: Option<String>,
    },
    Cluster {
        nodes: Vec<String>,
    },
}

impl RedisTarget {
    /// Reads `REDIS_CONN_STRING`, `REDIS_PASSWORD` and `REDIS_MASTER_NAME`.
    pub fn from_config(cfg: &Config) -> anyhow::Result<Option<RedisTarget>> {
        let Some(conn) = &cfg.redis_conn_string else {
            return Ok(None);
        };
        let conn = conn.expose_secret().trim();
        let password = cfg
            .redis_password
            .as_ref()
            .map(|p| p.expose_secret().to_string());
        let with_auth = |node: &str| -> String {
            let node = node.trim();
            if node.contains("://") {
                return node.to_string();
            }
            match &password {
                Some(p) => format!(
                    "redis://:{}@{node}",
                    percent_encoding::utf8_percent_encode(p, percent_encoding::NON_ALPHANUMERIC)
                ),
                None => format!("redis://{node}"),
            }
        };
        let parts: Vec<&str> = conn.split(',').filter(|s| !s.trim().is_empty()).collect();
        if let Some(master) = &cfg.redis_master_name {
            return Ok(Some(RedisTarget::Sentinel {
                nodes: parts.iter().map(|n| with_auth(n)).collect(),
                master: master.clone(),
                password,
            }));
        }
        if parts.len() > 1 {
            return Ok(Some(RedisTarget::Cluster {
                nodes: parts.iter().map(|n| with_auth(n)).collect(),
            }));
        }
        if !conn.starts_with("redis://") && !conn.starts_with("rediss://") {
            anyhow::bail!(
                "REDIS_CONN_STRING must be a redis:// URL (or a host:port list with REDIS_MASTER_NAME)"
            );
        }
        Ok(Some(RedisTarget::Standalone(conn.to_string())))
    }
}

/// A pool for any of the three modes.
#[derive(Clone)]
pub enum RedisPool {
    Standalone(deadpool_redis::Pool),
    Sentinel(deadpool_redis::sentinel::Pool),
    Cluster(deadpool_redis::cluster::Pool),
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisPool")
    }
}

/// Runs `$body` with `$conn` bound to a pooled connection of whichever mode.
macro_rules! with_conn {
    ($pool:expr, $conn:ident => $body:expr) => {
        match $pool {
            RedisPool::Standalone(p) => {
                let mut $conn = p.get().await.map_err(|e| anyhow::anyhow!("redis: {e}"))?;
                $body
            }
            RedisPool::Sentinel(p) => {
                let mut $conn = p.get().await.map_err(|e| anyhow::anyhow!("redis: {e}"))?;
                $body
            }
            RedisPool::Cluster(p) => {
                let mut $conn = p.get().await.map_err(|e| anyhow::anyhow!("redis: {e}"))?;
                $body
            }
        }
    };
}

impl RedisPool {
    pub fn connect(target: &RedisTarget) -> anyhow::Result<RedisPool> {
        Ok(match target {
            RedisTarget::Standalone(url) => RedisPool::Standalone(
                deadpool_redis::Config::from_url(url)
                    .create_pool(Some(deadpool_redis::Runtime::Tokio1))?,
            ),
            RedisTarget::Sentinel {
                nodes,
                master,
                password,
            } => {
                let mut cfg = deadpool_redis::sentinel::Config::from_urls(
                    nodes.clone(),
                    master.clone(),
                    deadpool_redis::sentinel::SentinelServerType::Master,
                );
                if let Some(p) = password {
                    cfg.node_connection_info =
                        Some(deadpool_redis::sentinel::SentinelNodeConnectionInfo {
                            tls_mode: None,
                            redis_connection_info: Some(deadpool_redis::RedisConnectionInfo {
                                password: Some(p.clone()),
                                ..Default::default()
                            }),
                        });
                }
                RedisPool::Sentinel(cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1))?)
            }
            RedisTarget::Cluster { nodes } => RedisPool::Cluster(
                deadpool_redis::cluster::Config::from_urls(nodes.clone())
                    .create_pool(Some(deadpool_redis::Runtime::Tokio1))?,
            ),
        })
    }

    /// `PING`, within the caller's timeout.
    pub async fn ping(&self) -> anyhow::Result<()> {
        with_conn!(self, c => {
            let pong: String = redis::cmd("PING").query_async(&mut c).await?;
            anyhow::ensure!(pong == "PONG", "unexpected PING answer");
            Ok(())
        })
    }
}

/// Outcome of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    Ok,
    /// A balance is not in Redis: load it from the database (`load_balance`) and retry.
    Missing,
    UserShort,
    TokenShort,
}

const RESERVE: &str = r#"
-- KEYS[1] user balance, KEYS[2] token balance (absent: unlimited token); ARGV[1] amount.
local amount = tonumber(ARGV[1])
local u = redis.call('GET', KEYS[1])
if not u then return 0 end
local t = nil
if #KEYS > 1 then
  t = redis.call('GET', KEYS[2])
  if not t then return 0 end
end
if tonumber(u) < amount then return 2 end
if t and tonumber(t) < amount then return 3 end
redis.call('DECRBY', KEYS[1], amount)
if t then redis.call('DECRBY', KEYS[2], amount) end
return 1
"#;

const ADJUST: &str = r#"
-- KEYS[1] user balance, KEYS[2] token balance (optional); ARGV[1] delta: > 0 charges more,
-- < 0 refunds. A charge is capped by what is left, so no balance goes below zero.
-- Returns {applied delta, 1} or {0, 0} when a balance is missing.
local d = tonumber(ARGV[1])
local u = redis.call('GET', KEYS[1])
if not u then return {0, 0} end
local t = nil
if #KEYS > 1 then
  t = redis.call('GET', KEYS[2])
  if not t then return {0, 0} end
end
if d > 0 then
  local room = tonumber(u)
  if t and tonumber(t) < room then room = tonumber(t) end
  if room < 0 then room = 0 end
  if d > room then d = room end
end
if d ~= 0 then
  redis.call('DECRBY', KEYS[1], d)
  if t then redis.call('DECRBY', KEYS[2], d) end
end
return {d, 1}
"#;

/// Atomic quota balances in Redis.
#[derive(Debug, Clone)]
pub struct QuotaStore {
    pool: RedisPool,
    prefix: String,
    reserve: Script,
    adjust: Script,
}

impl QuotaStore {
    pub fn new(pool: RedisPool, prefix: &str) -> Self {
        QuotaStore {
            pool,
            prefix: prefix.to_string(),
            reserve: Script::new(RESERVE),
            adjust: Script::new(ADJUST),
        }
    }

    pub fn user_key(&self, user_id: i64) -> String {
        format!("{}quota:{{u{user_id}}}:user", self.prefix)
    }

    pub fn token_key(&self, user_id: i64, token_id: i64) -> String {
        format!("{}quota:{{u{user_id}}}:token:{token_id}", self.prefix)
    }

    fn keys(&self, user_id: i64, token: Option<i64>) -> Vec<String> {
        let mut k = vec![self.user_key(user_id)];
        if let Some(t) = token {
            k.push(self.token_key(user_id, t));
        }
        k
    }

    /// Seeds a balance read from the database, unless another node already did (`SET NX`).
    pub async fn load_balance(&self, key: &str, value: i64) -> anyhow::Result<()> {
        with_conn!(&self.pool, c => {
            let _: Option<String> = redis::cmd("SET").arg(key).arg(value).arg("NX").query_async(&mut c).await?;
            Ok(())
        })
    }

    /// Drops balances (after the database has them, or in tests).
    pub async fn forget(&self, keys: &[String]) -> anyhow::Result<()> {
        with_conn!(&self.pool, c => {
            for k in keys {
                let _: i64 = redis::cmd("DEL").arg(k).query_async(&mut c).await?;
            }
            Ok(())
        })
    }

    pub async fn balance(&self, key: &str) -> anyhow::Result<Option<i64>> {
        with_conn!(&self.pool, c => {
            Ok(redis::cmd("GET").arg(key).query_async(&mut c).await?)
        })
    }

    /// Takes `amount` from the user and (for a limited token, `token = Some(id)`) the token.
    pub async fn reserve(
        &self,
        user_id: i64,
        token: Option<i64>,
        amount: i64,
    ) -> anyhow::Result<Reserve> {
        let keys = self.keys(user_id, token);
        let code: i64 = with_conn!(&self.pool, c => {
            let mut inv = self.reserve.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            inv.arg(amount).invoke_async(&mut c).await?
        });
        Ok(match code {
            1 => Reserve::Ok,
            2 => Reserve::UserShort,
            3 => Reserve::TokenShort,
            _ => Reserve::Missing,
        })
    }

    /// Charges (`delta > 0`, capped at what is left) or refunds (`delta < 0`). Returns the delta
    /// applied, or `None` when a balance is missing (the caller applies it to the database).
    pub async fn adjust(
        &self,
        user_id: i64,
        token: Option<i64>,
        delta: i64,
    ) -> anyhow::Result<Option<i64>> {
        let keys = self.keys(user_id, token);
        let (applied, ok): (i64, i64) = with_conn!(&self.pool, c => {
            let mut inv = self.adjust.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            inv.arg(delta).invoke_async(&mut c).await?
        });
        Ok((ok == 1).then_some(applied))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&map).unwrap()
    }

    #[test]
    fn targets_follow_one_api() {
        assert_eq!(RedisTarget::from_config(&cfg(&[])).unwrap(), None);
        assert_eq!(
            RedisTarget::from_config(&cfg(&[("REDIS_CONN_STRING", "redis://127.0.0.1:6379/2")]))
                .unwrap(),
            Some(RedisTarget::Standalone("redis://127.0.0.1:6379/2".into()))
        );
        let s = RedisTarget::from_config(&cfg(&[
            ("REDIS_CONN_STRING", "10.0.0.1:26379,10.0.0.2:26379"),
            ("REDIS_MASTER_NAME", "mymaster"),
            ("REDIS_PASSWORD", "p@ss"),
        ]))
        .unwrap()
        .unwrap();
        match s {
            RedisTarget::Sentinel {
                nodes,
                master,
                password,
            } => {
                assert_eq!(
                    nodes,
                    [
                        "redis://:p%40ss@10.0.0.1:26379",
                        "redis://:p%40ss@10.0.0.2:26379"
                    ]
                );
                assert_eq!(master, "mymaster");
                assert_eq!(password.as_deref(), Some("p@ss"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            RedisTarget::from_config(&cfg(&[("REDIS_CONN_STRING", "a:7000,b:7001,c:7002")])).unwrap(),
            Some(RedisTarget::Cluster { nodes }) if nodes.len() == 3
        ));
        assert!(
            RedisTarget::from_config(&cfg(&[("REDIS_CONN_STRING", "localhost:6379")])).is_err()
        );
    }

    fn redis_url() -> Option<String> {
        std::env::var("TEST_REDIS_URL").ok()
    }

    #[tokio::test]
    async fn quota_scripts_never_overdraw() {
        let Some(url) = redis_url() else {
            eprintln!("skipped: TEST_REDIS_URL not set");
            return;
        };
        let pool = RedisPool::connect(&RedisTarget::Standalone(url)).unwrap();
        pool.ping().await.unwrap();
        let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        let q = QuotaStore::new(pool, &prefix);
        // Nothing loaded yet.
        assert_eq!(q.reserve(1, Some(5), 10).await.unwrap(), Reserve::Missing);
        q.load_balance(&q.user_key(1), 100).await.unwrap();
        q.load_balance(&q.token_key(1, 5), 30).await.unwrap();
        // A second load does not overwrite a live balance.
        q.load_balance(&q.user_key(1), 999).await.unwrap();
        assert_eq!(q.balance(&q.user_key(1)).await.unwrap(), Some(100));

        assert_eq!(q.reserve(1, Some(5), 20).await.unwrap(), Reserve::Ok);
        assert_eq!(
            q.reserve(1, Some(5), 20).await.unwrap(),
            Reserve::TokenShort
        );
        assert_eq!(q.reserve(1, None, 100).await.unwrap(), Reserve::UserShort);
        // Settle: charge 15 more than reserved -> capped by the token's 10 left.
        assert_eq!(q.adjust(1, Some(5), 15).await.unwrap(), Some(10));
        assert_eq!(q.balance(&q.token_key(1, 5)).await.unwrap(), Some(0));
        assert_eq!(q.balance(&q.user_key(1)).await.unwrap(), Some(70));
        // Refund.
        assert_eq!(q.adjust(1, Some(5), -5).await.unwrap(), Some(-5));
        assert_eq!(q.balance(&q.user_key(1)).await.unwrap(), Some(75));
        // Missing balance: nothing applied, the caller falls back to the database.
        assert_eq!(q.adjust(2, None, -5).await.unwrap(), None);
        assert_eq!(q.balance(&q.user_key(2)).await.unwrap(), None);

        // 200 concurrent reservations of 7 against 100: exactly 14 succeed, none overdraw.
        q.load_balance(&q.user_key(3), 100).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let q = q.clone();
            tasks.push(tokio::spawn(
                async move { q.reserve(3, None, 7).await.unwrap() },
            ));
        }
        let mut ok = 0;
        for t in tasks {
            if t.await.unwrap() == Reserve::Ok {
                ok += 1;
            }
        }
        assert_eq!(ok, 14);
        assert_eq!(q.balance(&q.user_key(3)).await.unwrap(), Some(2));
        q.forget(&[q.user_key(1), q.token_key(1, 5), q.user_key(3)])
            .await
            .unwrap();
    }
}
