//! Redis as One API configures it: `REDIS_CONN_STRING` as a `redis://` URL (standalone), or a
//! comma-separated `host:port` list with `REDIS_PASSWORD`, which is a Sentinel group when
//! `REDIS_MASTER_NAME` is set and a Cluster otherwise.
//!
//! Quota keys share a hash tag per shard (`{q<n>}`, the user id modulo [`SHARDS`]), so a user's
//! and a token's balance, the shard's holds and its stream sit in one Cluster slot, and one
//! script run moves them atomically.

use std::sync::{Arc, Mutex};

use deadpool_redis::redis::{self, Script};
use secrecy::ExposeSecret;
use thread_local::ThreadLocal;
use tokio::sync::oneshot;

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
        if let Some(rest) = ["unix://", "redis+unix://"]
            .iter()
            .find_map(|s| conn.strip_prefix(s))
        {
            return Ok(Some(RedisTarget::Standalone(unix_url(rest)?)));
        }
        if !conn.starts_with("redis://") && !conn.starts_with("rediss://") {
            anyhow::bail!(
                "REDIS_CONN_STRING must be a redis://, rediss:// or unix:// URL (or a host:port list with REDIS_MASTER_NAME)"
            );
        }
        Ok(Some(RedisTarget::Standalone(conn.to_string())))
    }
}

/// go-redis's socket form, `unix://[user:password@]/path/redis.sock[?db=N]` (the part after the
/// scheme), as redis-rs reads it: `unix:///path/redis.sock?db=N&user=..&pass=..`. Go's URL parser
/// takes credentials before an empty host; the `url` crate refuses them, hence by hand.
fn unix_url(rest: &str) -> anyhow::Result<String> {
    use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (creds, path) = match rest.rsplit_once('@') {
        Some((c, p)) => (Some(c), p),
        None => (None, rest),
    };
    if !path.starts_with('/') || path.len() < 2 {
        anyhow::bail!("REDIS_CONN_STRING: a unix:// URL needs the socket's absolute path");
    }
    let mut params = Vec::new();
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        if k == "db" {
            v.parse::<i64>()
                .map_err(|_| anyhow::anyhow!("REDIS_CONN_STRING: db={v} is not a number"))?;
            params.push(format!("db={v}"));
        }
    }
    let enc = |s: &str| -> anyhow::Result<String> {
        let s = percent_decode_str(s).decode_utf8()?;
        Ok(utf8_percent_encode(&s, NON_ALPHANUMERIC).to_string())
    };
    if let Some(c) = creds {
        let (user, pass) = c.split_once(':').unwrap_or((c, ""));
        if !user.is_empty() {
            params.push(format!("user={}", enc(user)?));
        }
        if !pass.is_empty() {
            params.push(format!("pass={}", enc(pass)?));
        }
    }
    // Go's parser decodes the path; the `url` crate decodes it again in `to_file_path`.
    const PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'#')
        .add(b'?')
        .add(b'%');
    let path = percent_decode_str(path).decode_utf8()?;
    let path = utf8_percent_encode(&path, PATH);
    Ok(match params.is_empty() {
        true => format!("unix://{path}"),
        false => format!("unix://{path}?{}", params.join("&")),
    })
}

/// Connections for any of the three modes.
#[derive(Clone)]
pub enum RedisPool {
    /// Multiplexed connections that reconnect by themselves: commands are pipelined on them.
    /// (A pool checks a connection out per command, and deadpool-redis recycles each with an
    /// `UNWATCH` + `PING` round trip: two of the three commands Redis served per relay request
    /// were those.)
    Standalone(Standalone),
    Sentinel(deadpool_redis::sentinel::Pool),
    Cluster(deadpool_redis::cluster::Pool),
}

/// A standalone Redis: one connection shared by background tasks, and one per HTTP worker
/// thread that asked for it ([`RedisPool::attach_here`]).
#[derive(Clone)]
pub struct Standalone {
    id: u64,
    client: redis::Client,
    shared: redis::aio::ConnectionManager,
}

thread_local! {
    /// This thread's own connections, by [`Standalone::id`]. A connection's I/O task runs on the
    /// runtime that first used it: the shared one's on the main runtime, so a relay request on an
    /// HTTP worker handed every command to another thread and waited to be woken back, which cost
    /// more CPU than the command itself.
    static LOCAL: std::cell::RefCell<Vec<(u64, redis::aio::ConnectionManager)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl Standalone {
    /// This thread's connection if it has one, else the shared one.
    pub(crate) fn conn(&self) -> redis::aio::ConnectionManager {
        LOCAL
            .with_borrow(|l| {
                l.iter()
                    .find(|(id, _)| *id == self.id)
                    .map(|(_, c)| c.clone())
            })
            .unwrap_or_else(|| self.shared.clone())
    }
}

fn manager_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(2)
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisPool")
    }
}

/// How long one Redis call may take, connection included: a Redis that stops answering turns
/// into an error (a 503 on the relay), never a hung request.
pub const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// Runs `$body` with `$conn` bound to a connection of whichever mode (the shared one, or one
/// checked out of the pool), within [`REDIS_TIMEOUT`]; `?` inside `$body` turns Redis errors
/// into `anyhow` errors.
macro_rules! with_conn {
    ($pool:expr, $conn:ident => $body:expr) => {
        tokio::time::timeout($crate::cache::redis::REDIS_TIMEOUT, async {
            match $pool {
                RedisPool::Standalone(s) => {
                    let mut $conn = s.conn();
                    Ok::<_, anyhow::Error>($body)
                }
                // The pools' checkout futures are boxed: inline they made every method's
                // future (and every relay request's, which awaits them) about 10 KB larger.
                RedisPool::Sentinel(p) => {
                    let mut $conn = Box::pin(p.get())
                        .await
                        .map_err(|e| anyhow::anyhow!("redis: {e}"))?;
                    Ok::<_, anyhow::Error>($body)
                }
                RedisPool::Cluster(p) => {
                    let mut $conn = Box::pin(p.get())
                        .await
                        .map_err(|e| anyhow::anyhow!("redis: {e}"))?;
                    Ok::<_, anyhow::Error>($body)
                }
            }
        })
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "redis: no answer within {:?}",
                $crate::cache::redis::REDIS_TIMEOUT
            )
        })??
    };
}

fn pool_config() -> deadpool_redis::PoolConfig {
    let t = Some(REDIS_TIMEOUT);
    deadpool_redis::PoolConfig {
        max_size: 64,
        timeouts: deadpool_redis::Timeouts {
            wait: t,
            create: t,
            recycle: t,
        },
        ..Default::default()
    }
}

impl RedisPool {
    pub fn connect(target: &RedisTarget) -> anyhow::Result<RedisPool> {
        Ok(match target {
            RedisTarget::Standalone(url) => {
                static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let client = redis::Client::open(url.as_str())?;
                RedisPool::Standalone(Standalone {
                    id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    shared: redis::aio::ConnectionManager::new_lazy_with_config(
                        client.clone(),
                        manager_config(),
                    )?,
                    client,
                })
            }
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
                cfg.pool = Some(pool_config());
                RedisPool::Sentinel(cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1))?)
            }
            RedisTarget::Cluster { nodes } => {
                let mut cfg = deadpool_redis::cluster::Config::from_urls(nodes.clone());
                cfg.pool = Some(pool_config());
                RedisPool::Cluster(cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1))?)
            }
        })
    }

    /// Gives the calling thread its own connection to a standalone Redis, connected on first
    /// use, for as long as the thread lives. Called by each HTTP worker thread as it starts
    /// (inside its runtime, which runs the connection's I/O). Sentinel and Cluster keep their
    /// pools.
    pub fn attach_here(&self) {
        let RedisPool::Standalone(s) = self else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() || self.attached_here() {
            return;
        }
        match redis::aio::ConnectionManager::new_lazy_with_config(
            s.client.clone(),
            manager_config(),
        ) {
            Ok(c) => LOCAL.with_borrow_mut(|l| l.push((s.id, c))),
            Err(e) => tracing::warn!(error = %e, "no Redis connection of this worker's own"),
        }
    }

    /// Whether the calling thread has its own connection ([`RedisPool::attach_here`]).
    pub fn attached_here(&self) -> bool {
        match self {
            RedisPool::Standalone(s) => LOCAL.with_borrow(|l| l.iter().any(|(id, _)| *id == s.id)),
            _ => false,
        }
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
    /// A balance is not in Redis: load it from the database ([`QuotaStore::load`]) and retry.
    Missing,
    UserShort,
    TokenShort,
}

/// How many stream shards the ledger uses. Each shard is one hash tag, so every key a script
/// touches (a user's balances, the shard's holds and its stream) sits in one Cluster slot.
pub const SHARDS: i64 = 8;

const QUOTA: &str = r#"
-- Reservations and settlements of one shard, each applied on its own, in order.
-- KEYS: holds, stream, then per call: user balance, token balance (the user's again for an
-- unlimited token).
-- ARGV, 8 per call: 'r' or 's', limited (0/1), then
--   reserve: amount, hold id, hold value, ttl (0: leave the balances' expiry as it is), -, -
--   settle: hold id, reserved, price, counted (0/1), movement JSON, node id
-- Returns one integer per call (see each function).

-- Takes the amount from the user and the token, and records the hold. 1: done; 0: a balance is
-- missing (load it and call again); 2: the user's balance is short; 3: the token's.
local function reserve(uk, tk, amount, hold, value, ttl)
  amount = tonumber(amount)
  local u = redis.call('GET', uk)
  if not u then return 0 end
  local t = nil
  if tk then
    t = redis.call('GET', tk)
    if not t then return 0 end
  end
  if tonumber(u) < amount then return 2 end
  if t and tonumber(t) < amount then return 3 end
  if amount > 0 then
    redis.call('DECRBY', uk, amount)
    if t then redis.call('DECRBY', tk, amount) end
    redis.call('HSET', KEYS[1], hold, value)
  end
  if ttl ~= '0' then
    redis.call('EXPIRE', uk, ttl)
    if t then redis.call('EXPIRE', tk, ttl) end
  end
  return 1
end

-- Releases the hold, charges the price (an excess over the hold only as far as the balances go),
-- and appends the movement with what was charged to the shard's stream, all at once. The hold's
-- entry becomes a receipt ("<node> = <charged>") until the node has the answer and forgets it
-- (QuotaStore::forget): a settle retried after a lost answer returns the first charge and moves
-- nothing again. Returns the charge, or -1 when a balance is missing (load it and call again).
local function settle(uk, tk, hold, reserved, price, counted, payload, node)
  local h = redis.call('HGET', KEYS[1], hold)
  local done = h and string.match(h, ' = (%-?%d+)$')
  if done then return tonumber(done) end
  local u = redis.call('GET', uk)
  local t = nil
  if tk then
    t = redis.call('GET', tk)
    if not t then return -1 end
  end
  if not u then return -1 end
  reserved = tonumber(reserved)
  -- No hold (given back after its node was taken for dead, or lost with Redis): charge it all.
  if not h then reserved = 0 end
  local delta = tonumber(price) - reserved
  if delta > 0 then
    local room = tonumber(u)
    if t and tonumber(t) < room then room = tonumber(t) end
    if room < 0 then room = 0 end
    if delta > room then delta = room end
  end
  if delta ~= 0 then
    redis.call('DECRBY', uk, delta)
    if t then redis.call('DECRBY', tk, delta) end
  end
  local charged = reserved + delta
  if counted == '1' or charged ~= 0 then
    redis.call('XADD', KEYS[2], '*', 'b', payload, 'c', charged)
  end
  redis.call('HSET', KEYS[1], hold, node .. ' = ' .. charged)
  return charged
end

local out = {}
for i = 0, (#KEYS - 2) / 2 - 1 do
  local uk, a = KEYS[3 + 2 * i], 8 * i
  local tk = nil
  if ARGV[a + 2] == '1' then tk = KEYS[4 + 2 * i] end
  if ARGV[a + 1] == 'r' then
    out[i + 1] = reserve(uk, tk, ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6])
  else
    out[i + 1] = settle(uk, tk, ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6],
      ARGV[a + 7], ARGV[a + 8])
  end
end
return out
"#;

const RELEASE: &str = r#"
-- KEYS: user balance, holds, [token balance]. ARGV: hold id, amount.
-- Gives a hold back (its node died). Returns 1 when this call released it; a settled hold's
-- receipt is only forgotten.
local h = redis.call('HGET', KEYS[2], ARGV[1])
if not h then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if string.find(h, ' = ', 1, true) then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], ARGV[2]) end
if #KEYS > 2 and redis.call('EXISTS', KEYS[3]) == 1 then redis.call('INCRBY', KEYS[3], ARGV[2]) end
return 1
"#;

const LOAD: &str = r#"
-- KEYS: balance, version. ARGV: value read from the database, version read before it, ttl.
-- Seeds a balance unless a change committed since the read (the version moved) or another node
-- seeded it already.
local v = redis.call('GET', KEYS[2]) or '0'
if v ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3])
return 1
"#;

const CREDIT: &str = r#"
-- KEYS: version, marker, [balance...]. ARGV: delta (a change already committed to the
-- database), marker ttl. Applies it once: the marker (the credit's id) turns a retry after a
-- lost answer into a no-op. Returns 0 for such a retry.
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 172800)
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBY', KEYS[i], ARGV[1]) end
end
return 1
"#;

const CACHE_PUT: &str = r#"
-- KEYS: entry, version. ARGV: value, version read before the database, ttl.
-- Stores a row read from the database unless it changed since (the version moved).
local v = redis.call('GET', KEYS[2]) or '0'
if v ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"#;

const CACHE_DROP: &str = r#"
-- KEYS: entry, version. Forgets a row and makes concurrent readers' puts fail.
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 172800)
redis.call('DEL', KEYS[1])
return 1
"#;

/// How often a node pushes a balance's expiry back to a day from now, at most: an active user's
/// balance then never comes near its expiry (nor do the movements waiting in the stream), and
/// most reservations skip their two `EXPIRE`s, a quarter of the script's cost in Redis (4.1 µs a
/// call with them, 3.05 without, measured alone).
const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Receipts dropped per `HDEL`, and holds read per `HSCAN` (see [`QuotaStore::forget`]).
const FORGET_CHUNK: usize = 500;

/// Calls (reservations and settlements) sent in one script run at most: the script holds Redis
/// for its whole run (about 10 µs per call), and every other client waits behind it.
const CALL_BATCH: usize = 32;

/// One settlement for [`QuotaStore::settle`].
#[derive(Debug, Clone)]
pub struct Settle {
    /// The node that settles (written into the hold's receipt).
    pub node: Arc<str>,
    pub user_id: i64,
    /// The token's balance, for a limited token.
    pub token: Option<i64>,
    pub hold_id: Arc<str>,
    pub reserved: i64,
    pub price: i64,
    /// Whether the request counts (it is logged even at price 0).
    pub counted: bool,
    /// The movement as the write-back reads it from the stream, in its compact form (the
    /// entry's `b` field).
    pub payload: Arc<[u8]>,
}

/// One call of the `QUOTA` script.
#[derive(Debug)]
enum Call {
    Reserve {
        user_id: i64,
        token: Option<i64>,
        amount: i64,
        hold_id: String,
        hold_value: String,
        ttl: u64,
    },
    Settle(Settle),
}

impl Call {
    fn user(&self) -> (i64, Option<i64>) {
        match self {
            Call::Reserve { user_id, token, .. } => (*user_id, *token),
            Call::Settle(s) => (s.user_id, s.token),
        }
    }
}

type Answer = oneshot::Sender<Result<i64, String>>;

/// One thread's calls waiting for their shard's next script run.
type CallQueues = [CallQueue; SHARDS as usize];

#[derive(Debug, Default)]
struct CallQueue {
    calls: Vec<(Call, Answer)>,
    /// Whether a task is sending this queue's calls (it takes the ones that arrive).
    sending: bool,
}

/// Clears a shard's queue if its sending task ends before the queue is empty.
struct SendingGuard<'a> {
    queues: &'a Mutex<CallQueues>,
    shard: usize,
    armed: bool,
}

impl Drop for SendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut q = lock(self.queues);
            q[self.shard].calls.clear();
            q[self.shard].sending = false;
        }
    }
}

/// The queues hold no invariant a panic could break halfway, so a poisoned lock is used as is.
fn lock(q: &Mutex<CallQueues>) -> std::sync::MutexGuard<'_, CallQueues> {
    q.lock().unwrap_or_else(|e| e.into_inner())
}

/// One movement read back from a shard's stream.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    /// The stream id as `(ms, seq)`.
    pub id: (i64, i64),
    pub payload: Payload,
    pub charged: i64,
}

/// A stream entry's movement, in the form its node wrote it.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// The `b` field: `Movement::encode`'s compact form (since session 17).
    Compact(Vec<u8>),
    /// The `m` field: JSON, as nodes of earlier versions wrote it, still read so that a stream
    /// written before an upgrade is written back after it.
    Json(Vec<u8>),
}

/// Atomic quota balances in Redis, the holds of in-flight requests and the per-shard streams of
/// settled movements waiting to be written back to the database.
#[derive(Debug, Clone)]
pub struct QuotaStore {
    pool: RedisPool,
    prefix: String,
    /// Each shard's hash tag (`<prefix>{q<n>}`) and its holds and stream keys, built once:
    /// formatting keys per call was 5% of a relayed request's instructions.
    tags: Vec<String>,
    holds: Vec<String>,
    streams: Vec<String>,
    ttl: u64,
    /// The balances (user, token) whose expiry this node pushed back within [`REFRESH_EVERY`].
    refreshed: moka::sync::Cache<(i64, Option<i64>), ()>,
    quota: Script,
    /// Each thread's reservations and settlements waiting for their shard's next script run
    /// ([`QuotaStore::call`]).
    calls: Arc<ThreadLocal<Arc<Mutex<CallQueues>>>>,
    /// Runs of the `QUOTA` script.
    #[cfg(test)]
    runs: Arc<std::sync::atomic::AtomicUsize>,
    release: Script,
    load: Script,
    credit: Script,
    cache_put: Script,
    cache_drop: Script,
}

impl QuotaStore {
    pub fn new(pool: RedisPool, prefix: &str) -> Self {
        let tags: Vec<String> = (0..SHARDS).map(|n| format!("{prefix}{{q{n}}}")).collect();
        QuotaStore {
            pool,
            prefix: prefix.to_string(),
            holds: tags.iter().map(|t| format!("{t}:holds")).collect(),
            streams: tags.iter().map(|t| format!("{t}:moves")).collect(),
            tags,
            ttl: 86_400,
            refreshed: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(REFRESH_EVERY)
                .build(),
            quota: Script::new(QUOTA),
            calls: Arc::default(),
            #[cfg(test)]
            runs: Arc::default(),
            release: Script::new(RELEASE),
            load: Script::new(LOAD),
            credit: Script::new(CREDIT),
            cache_put: Script::new(CACHE_PUT),
            cache_drop: Script::new(CACHE_DROP),
        }
    }

    pub fn pool(&self) -> &RedisPool {
        &self.pool
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<shard's tag><kind><id>`.
    fn key(&self, shard: i64, kind: &str, id: i64) -> String {
        let tag = &self.tags[shard as usize];
        let mut id_text = itoa::Buffer::new();
        let id_text = id_text.format(id);
        let mut k = String::with_capacity(tag.len() + kind.len() + id_text.len());
        k.push_str(tag);
        k.push_str(kind);
        k.push_str(id_text);
        k
    }

    pub fn shard_of(user_id: i64) -> i64 {
        user_id.rem_euclid(SHARDS)
    }

    pub fn user_key(&self, user_id: i64) -> String {
        self.key(Self::shard_of(user_id), ":u:", user_id)
    }

    pub fn token_key(&self, user_id: i64, token_id: i64) -> String {
        self.key(Self::shard_of(user_id), ":t:", token_id)
    }

    fn version_key(&self, user_id: i64) -> String {
        self.key(Self::shard_of(user_id), ":v:", user_id)
    }

    fn holds_key_of(&self, shard: i64) -> &str {
        &self.holds[shard as usize]
    }

    pub fn stream_key(&self, shard: i64) -> &str {
        &self.streams[shard as usize]
    }

    /// The user's balance version, read before reading the database for [`QuotaStore::load`].
    pub async fn version(&self, user_id: i64) -> anyhow::Result<String> {
        let key = self.version_key(user_id);
        let v: Option<String> =
            with_conn!(&self.pool, c => redis::cmd("GET").arg(&key).query_async(&mut c).await?);
        Ok(v.unwrap_or_else(|| "0".into()))
    }

    /// Seeds a user's (`token = None`) or token's balance read from the database after
    /// [`QuotaStore::version`] returned `version`. False when a change raced the read (read again).
    pub async fn load(
        &self,
        user_id: i64,
        token: Option<i64>,
        value: i64,
        version: &str,
    ) -> anyhow::Result<bool> {
        let key = match token {
            Some(t) => self.token_key(user_id, t),
            None => self.user_key(user_id),
        };
        let vkey = self.version_key(user_id);
        let ok: i64 = with_conn!(&self.pool, c => {
            self.load.key(&key).key(&vkey).arg(value).arg(version).arg(self.ttl)
                .invoke_async(&mut c).await?
        });
        Ok(ok == 1)
    }

    /// Applies a change already committed to the database (a top-up, a redeemed code, an admin
    /// edit) to the live balances, if they are loaded, and moves the user's version so that a
    /// concurrent load retries.
    ///
    /// `id` names this credit: calling again with the same id (a retry after a lost answer)
    /// applies nothing, for a day.
    pub async fn credit(
        &self,
        id: &str,
        user_id: i64,
        token: Option<i64>,
        delta: i64,
    ) -> anyhow::Result<()> {
        let mut inv = self.credit.prepare_invoke();
        let tag = &self.tags[Self::shard_of(user_id) as usize];
        inv.key(self.version_key(user_id))
            .key(format!("{tag}:c:{id}"));
        match token {
            Some(t) => inv.key(self.token_key(user_id, t)),
            None => inv.key(self.user_key(user_id)),
        };
        inv.arg(delta).arg(86_400);
        let _: i64 = with_conn!(&self.pool, c => inv.invoke_async(&mut c).await?);
        Ok(())
    }

    pub async fn balance(&self, key: &str) -> anyhow::Result<Option<i64>> {
        with_conn!(&self.pool, c => {
            Ok(redis::cmd("GET").arg(key).query_async(&mut c).await?)
        })
    }

    /// Takes `amount` from the user and (for a limited token, `token = Some(id)`) the token, and
    /// records the hold as `hold_id` => `hold_value` until it is settled or released.
    pub async fn reserve(
        self: &Arc<Self>,
        user_id: i64,
        token: Option<i64>,
        amount: i64,
        hold_id: &str,
        hold_value: &str,
    ) -> anyhow::Result<Reserve> {
        let refresh = !self.refreshed.contains_key(&(user_id, token));
        let code = self
            .call(Call::Reserve {
                user_id,
                token,
                amount,
                hold_id: hold_id.to_string(),
                hold_value: hold_value.to_string(),
                ttl: if refresh { self.ttl } else { 0 },
            })
            .await?;
        if refresh && code == 1 {
            self.refreshed.insert((user_id, token), ());
        }
        Ok(match code {
            1 => Reserve::Ok,
            2 => Reserve::UserShort,
            3 => Reserve::TokenShort,
            _ => Reserve::Missing,
        })
    }

    /// Settles a hold: returns what was charged, or `None` when a balance is missing. The hold
    /// stays as a receipt of the charge (a retry returns it) until [`QuotaStore::forget`].
    pub async fn settle(self: &Arc<Self>, op: Settle) -> anyhow::Result<Option<i64>> {
        let charged = self.call(Call::Settle(op)).await?;
        Ok((charged >= 0).then_some(charged))
    }

    /// Runs one reservation or settlement in the `QUOTA` script. Calls made on one thread for
    /// one shard while that queue's previous run is on its way go out together in its next run
    /// ([`CALL_BATCH`] at most): running a script at all cost Redis more than the commands
    /// inside it, and each run cost the node a command and a reply to parse.
    async fn call(self: &Arc<Self>, call: Call) -> anyhow::Result<i64> {
        let shard = Self::shard_of(call.user().0) as usize;
        let queues = self.calls.get_or_default().clone();
        let (done, answer) = oneshot::channel();
        let start = {
            let mut q = lock(&queues);
            q[shard].calls.push((call, done));
            !std::mem::replace(&mut q[shard].sending, true)
        };
        if start {
            tokio::spawn(self.clone().send_calls(queues, shard));
        }
        // The bound counts from here, not from the run that takes the call: behind a Redis that
        // stopped answering, a queue of calls would otherwise wait for one timeout per run.
        tokio::time::timeout(REDIS_TIMEOUT, answer)
            .await
            .map_err(|_| anyhow::anyhow!("redis: no answer within {REDIS_TIMEOUT:?}"))?
            .map_err(|_| anyhow::anyhow!("redis: the quota call was dropped"))?
            .map_err(anyhow::Error::msg)
    }

    /// Sends one thread's queued calls for `shard` until none is left.
    async fn send_calls(self: Arc<Self>, queues: Arc<Mutex<CallQueues>>, shard: usize) {
        // Whatever ends this task (a runtime shutting down), its queue must not stay marked as
        // served: the waiting calls fail, and their retries start a new task.
        let mut guard = SendingGuard {
            queues: &queues,
            shard,
            armed: true,
        };
        loop {
            // Calls made in this turn of the thread's scheduler join the run.
            tokio::task::yield_now().await;
            let batch: Vec<_> = {
                let mut q = lock(&queues);
                let s = &mut q[shard];
                if s.calls.is_empty() {
                    s.sending = false;
                    guard.armed = false;
                    return;
                }
                let n = s.calls.len().min(CALL_BATCH);
                // A call whose caller gave up waiting is not sent: it failed, so it must not run.
                s.calls
                    .drain(..n)
                    .filter(|(_, done)| !done.is_closed())
                    .collect()
            };
            if batch.is_empty() {
                continue;
            }
            // `EVALSHA` built as one command, keys first: redis-rs's `ScriptInvocation` keeps
            // each key and argument in a buffer of its own (18 allocations a request) before
            // copying them all into the command.
            let keys = 2 + 2 * batch.len();
            let mut cmd = redis::Cmd::with_capacity(3 + keys + 8 * batch.len(), 128 * batch.len());
            cmd.arg("EVALSHA")
                .arg(self.quota.get_hash())
                .arg(keys)
                .arg(self.holds_key_of(shard as i64))
                .arg(self.stream_key(shard as i64));
            for (call, _) in &batch {
                let (user_id, token) = call.user();
                let user = self.user_key(user_id);
                match token {
                    Some(t) => cmd.arg(&user).arg(self.token_key(user_id, t)),
                    None => cmd.arg(&user).arg(&user),
                };
            }
            for (call, _) in &batch {
                let limited = if call.user().1.is_some() { "1" } else { "0" };
                match call {
                    Call::Reserve {
                        amount,
                        hold_id,
                        hold_value,
                        ttl,
                        ..
                    } => cmd
                        .arg("r")
                        .arg(limited)
                        .arg(amount)
                        .arg(hold_id)
                        .arg(hold_value)
                        .arg(ttl)
                        .arg("")
                        .arg(""),
                    Call::Settle(op) => cmd
                        .arg("s")
                        .arg(limited)
                        .arg(&*op.hold_id)
                        .arg(op.reserved)
                        .arg(op.price)
                        .arg(if op.counted { "1" } else { "0" })
                        .arg(&*op.payload)
                        .arg(&*op.node),
                };
            }
            #[cfg(test)]
            self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let sent: anyhow::Result<Vec<i64>> = async {
                Ok(with_conn!(&self.pool, c => {
                    match cmd.query_async(&mut c).await {
                        // Redis lost its scripts (a restart, `SCRIPT FLUSH`): load it and
                        // send again, as `ScriptInvocation` does.
                        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                            self.quota.load_async(&mut c).await?;
                            cmd.query_async(&mut c).await?
                        }
                        sent => sent?,
                    }
                }))
            }
            .await;
            let answers = match sent {
                Ok(answers) if answers.len() == batch.len() => {
                    answers.into_iter().map(Ok).collect()
                }
                Ok(answers) => {
                    let e = format!("redis: {} answers for {} calls", answers.len(), batch.len());
                    vec![Err(e); batch.len()]
                }
                Err(e) => vec![Err(e.to_string()); batch.len()],
            };
            for ((_, done), answer) in batch.into_iter().zip(answers) {
                let _ = done.send(answer);
            }
        }
    }

    /// Drops the receipts of settled holds whose answers arrived (see [`QuotaStore::settle`]),
    /// [`FORGET_CHUNK`] per command: under load a write-back round has thousands, and one `HDEL`
    /// of 9,000 fields held Redis (and every reservation behind it) for 2.5 ms.
    pub async fn forget(&self, shard: i64, hold_ids: &[String]) -> anyhow::Result<()> {
        let key = self.holds_key_of(shard);
        for ids in hold_ids.chunks(FORGET_CHUNK) {
            with_conn!(&self.pool, c => {
                let _: i64 = redis::cmd("HDEL").arg(key).arg(ids).query_async(&mut c).await?;
                Ok::<_, anyhow::Error>(())
            })?;
        }
        Ok(())
    }

    /// Every hold of a shard: `(hold id, hold value)`; a settled one's value is a receipt,
    /// `"<node> = <charged>"`. Read with `HSCAN` (an id may come twice): under load the hash has
    /// thousands of entries, and one `HGETALL` of them held Redis for about a millisecond.
    pub async fn holds(&self, shard: i64) -> anyhow::Result<Vec<(String, String)>> {
        let key = self.holds_key_of(shard);
        let mut all = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<(String, String)>) = with_conn!(&self.pool, c => {
                redis::cmd("HSCAN")
                    .arg(key)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(FORGET_CHUNK)
                    .query_async(&mut c)
                    .await?
            });
            all.extend(page);
            if next == 0 {
                return Ok(all);
            }
            cursor = next;
        }
    }

    /// Gives a hold back (its node is gone). True when this call released it.
    pub async fn release(
        &self,
        user_id: i64,
        token: Option<i64>,
        hold_id: &str,
        amount: i64,
    ) -> anyhow::Result<bool> {
        let mut inv = self.release.prepare_invoke();
        inv.key(self.user_key(user_id))
            .key(self.holds_key_of(Self::shard_of(user_id)));
        if let Some(t) = token {
            inv.key(self.token_key(user_id, t));
        }
        let n: i64 =
            with_conn!(&self.pool, c => inv.arg(hold_id).arg(amount).invoke_async(&mut c).await?);
        Ok(n == 1)
    }

    /// Up to `count` movements of a shard's stream, oldest first: from its start, or after the
    /// entry `after`.
    pub async fn read_stream(
        &self,
        shard: i64,
        after: Option<(i64, i64)>,
        count: usize,
    ) -> anyhow::Result<Vec<StreamEntry>> {
        let key = self.stream_key(shard);
        // The next possible id after `after` (an exclusive "(id" needs Redis 6.2).
        let start = after.map_or("-".to_string(), |(ms, seq)| format!("{ms}-{}", seq + 1));
        let raw: Vec<(String, Vec<Vec<u8>>)> = with_conn!(&self.pool, c => {
            redis::cmd("XRANGE").arg(key).arg(&start).arg("+").arg("COUNT").arg(count)
                .query_async(&mut c).await?
        });
        raw.into_iter()
            .map(|(id, fields)| {
                let (ms, seq) = id
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                    .ok_or_else(|| anyhow::anyhow!("bad stream id {id}"))?;
                let mut payload = Payload::Json(Vec::new());
                let mut charged = 0;
                let mut fields = fields.into_iter();
                while let (Some(name), Some(v)) = (fields.next(), fields.next()) {
                    match &name[..] {
                        b"b" => payload = Payload::Compact(v),
                        b"m" => payload = Payload::Json(v),
                        b"c" => charged = std::str::from_utf8(&v)?.parse()?,
                        _ => {}
                    }
                }
                Ok(StreamEntry {
                    id: (ms, seq),
                    payload,
                    charged,
                })
            })
            .collect()
    }

    /// Drops a shard's movements up to and including `id` (they are in the database).
    pub async fn trim_stream(&self, shard: i64, id: (i64, i64)) -> anyhow::Result<()> {
        let key = self.stream_key(shard);
        // MINID keeps ids >= its argument: the next possible id after `id`.
        let next = format!("{}-{}", id.0, id.1 + 1);
        with_conn!(&self.pool, c => {
            let _: i64 = redis::cmd("XTRIM").arg(key).arg("MINID").arg(next).query_async(&mut c).await?;
            Ok(())
        })
    }

    /// Marks this node alive for `ttl_secs`.
    pub async fn heartbeat(&self, node: &str, ttl_secs: u64) -> anyhow::Result<()> {
        let key = format!("{}node:{node}", self.prefix);
        with_conn!(&self.pool, c => {
            let _: () = redis::cmd("SET").arg(&key).arg(1).arg("EX").arg(ttl_secs).query_async(&mut c).await?;
            Ok(())
        })
    }

    pub async fn node_alive(&self, node: &str) -> anyhow::Result<bool> {
        let key = format!("{}node:{node}", self.prefix);
        with_conn!(&self.pool, c => {
            let n: i64 = redis::cmd("EXISTS").arg(&key).query_async(&mut c).await?;
            Ok(n == 1)
        })
    }

    /// Publishes a cache event to every node.
    pub async fn publish(&self, event: &str) -> anyhow::Result<()> {
        let channel = format!("{}events", self.prefix);
        with_conn!(&self.pool, c => {
            let _: i64 = redis::cmd("PUBLISH").arg(&channel).arg(event).query_async(&mut c).await?;
            Ok(())
        })
    }

    fn cache_keys(&self, kind: &str, id: &str) -> (String, String) {
        let tag = format!("{}{{c:{kind}:{id}}}", self.prefix);
        (format!("{tag}:row"), format!("{tag}:v"))
    }

    /// A cached row (tokens and users shared by the nodes), as JSON.
    pub async fn cache_get(&self, kind: &str, id: &str) -> anyhow::Result<Option<String>> {
        let (key, _) = self.cache_keys(kind, id);
        with_conn!(&self.pool, c => {
            Ok(redis::cmd("GET").arg(&key).query_async(&mut c).await?)
        })
    }

    /// The entry's version, read before reading the database for [`QuotaStore::cache_put`].
    pub async fn cache_version(&self, kind: &str, id: &str) -> anyhow::Result<String> {
        let (_, vkey) = self.cache_keys(kind, id);
        let v: Option<String> =
            with_conn!(&self.pool, c => redis::cmd("GET").arg(&vkey).query_async(&mut c).await?);
        Ok(v.unwrap_or_else(|| "0".into()))
    }

    /// Stores a row read after [`QuotaStore::cache_version`] returned `version`; false when it
    /// was invalidated meanwhile.
    pub async fn cache_put(
        &self,
        kind: &str,
        id: &str,
        value: &str,
        version: &str,
        ttl_secs: u64,
    ) -> anyhow::Result<bool> {
        let (key, vkey) = self.cache_keys(kind, id);
        let ok: i64 = with_conn!(&self.pool, c => {
            self.cache_put.key(&key).key(&vkey).arg(value).arg(version).arg(ttl_secs.max(1))
                .invoke_async(&mut c).await?
        });
        Ok(ok == 1)
    }

    /// Forgets a row on every node's next read.
    pub async fn cache_drop(&self, kind: &str, id: &str) -> anyhow::Result<()> {
        let (key, vkey) = self.cache_keys(kind, id);
        let _: i64 = with_conn!(&self.pool, c => {
            self.cache_drop.key(&key).key(&vkey).invoke_async(&mut c).await?
        });
        Ok(())
    }

    pub fn events_channel(&self) -> String {
        format!("{}events", self.prefix)
    }
}
/// A pub/sub connection subscribed to `channel`. Standalone Redis only: with Sentinel or
/// Cluster, nodes rely on the periodic `SYNC_FREQUENCY` reload (docs/multi-node.md).
pub async fn subscribe(target: &RedisTarget, channel: &str) -> anyhow::Result<redis::aio::PubSub> {
    let RedisTarget::Standalone(url) = target else {
        anyhow::bail!("cache events over pub/sub need a standalone REDIS_CONN_STRING");
    };
    let client = redis::Client::open(url.as_str())?;
    let mut ps = tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| anyhow::anyhow!("redis: no answer within {REDIS_TIMEOUT:?}"))??;
    ps.subscribe(channel).await?;
    Ok(ps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs).unwrap()
    }

    /// Nodes of two versions share one Redis during a rolling upgrade: the key layout must not
    /// change with how the keys are built.
    #[tokio::test]
    async fn keys_keep_their_layout() {
        // Lazy: never connects here.
        let target = RedisTarget::Standalone("redis://127.0.0.1:1".into());
        let pool = RedisPool::connect(&target).unwrap();
        let q = QuotaStore::new(pool, "tg:");
        assert_eq!(q.user_key(42), "tg:{q2}:u:42");
        assert_eq!(q.user_key(-3), "tg:{q5}:u:-3");
        assert_eq!(q.token_key(42, 9001), "tg:{q2}:t:9001");
        assert_eq!(q.version_key(7), "tg:{q7}:v:7");
        assert_eq!(q.holds_key_of(0), "tg:{q0}:holds");
        assert_eq!(q.stream_key(7), "tg:{q7}:moves");
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

    /// go-redis's `unix://[user:password@]/path?db=N`, turned into what redis-rs reads.
    #[test]
    fn unix_socket_urls_follow_go_redis() {
        let standalone =
            |conn: &str| match RedisTarget::from_config(&cfg(&[("REDIS_CONN_STRING", conn)])) {
                Ok(Some(RedisTarget::Standalone(url))) => Ok(url),
                Ok(other) => panic!("{other:?}"),
                Err(e) => Err(e.to_string()),
            };
        assert_eq!(
            standalone("unix:///run/redis/redis.sock").unwrap(),
            "unix:///run/redis/redis.sock"
        );
        let url = standalone("unix://app:p%40ss:w@/run/my redis/redis.sock?db=3").unwrap();
        assert_eq!(
            url,
            "unix:///run/my%20redis/redis.sock?db=3&user=app&pass=p%40ss%3Aw"
        );
        let info = redis::IntoConnectionInfo::into_connection_info(url.as_str()).unwrap();
        assert_eq!(
            info.addr(),
            &redis::ConnectionAddr::Unix("/run/my redis/redis.sock".into())
        );
        let settings = info.redis_settings();
        assert_eq!(settings.db(), 3);
        assert_eq!(settings.username(), Some("app"));
        assert_eq!(settings.password(), Some("p@ss:w"));
        assert_eq!(
            standalone("redis+unix://:secret@/tmp/r.sock").unwrap(),
            "unix:///tmp/r.sock?pass=secret"
        );
        for bad in ["unix://", "unix://relative.sock", "unix:///tmp/r.sock?db=x"] {
            let e = standalone(bad).unwrap_err();
            assert!(e.contains("REDIS_CONN_STRING"), "{bad}: {e}");
        }
    }

    fn redis_url() -> Option<String> {
        std::env::var("TEST_REDIS_URL").ok()
    }

    async fn client_id_of(pool: &RedisPool) -> anyhow::Result<i64> {
        Ok(with_conn!(pool, c => {
            redis::cmd("CLIENT").arg("ID").query_async(&mut c).await?
        }))
    }

    /// An HTTP worker's thread talks to Redis on its own connection; other threads share one.
    #[test]
    fn an_attached_thread_has_a_connection_of_its_own() {
        let Some(url) = redis_url() else { return };
        let main = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pool = {
            let _rt = main.enter();
            RedisPool::connect(&RedisTarget::Standalone(url)).unwrap()
        };
        pool.attach_here(); // outside a runtime: nothing to run its I/O, so not attached
        assert!(!pool.attached_here());
        let client_id = |pool: RedisPool, attach: bool| {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if attach {
                        pool.attach_here();
                        pool.attach_here(); // idempotent
                    }
                    assert_eq!(pool.attached_here(), attach);
                    let mut ids = Vec::new();
                    for _ in 0..2 {
                        ids.push(client_id_of(&pool).await.unwrap());
                    }
                    assert_eq!(ids[0], ids[1], "one connection per thread, reused");
                    ids[0]
                })
            })
            .join()
            .unwrap()
        };
        let shared = client_id(pool.clone(), false);
        let worker_a = client_id(pool.clone(), true);
        let worker_b = client_id(pool.clone(), true);
        assert_ne!(worker_a, shared);
        assert_ne!(worker_b, shared);
        assert_ne!(worker_a, worker_b);
        assert!(!pool.attached_here(), "attached to those threads only");
    }

    #[tokio::test]
    async fn quota_scripts_never_overdraw() {
        let Some(q) = test_store().await else { return };
        // Nothing loaded yet.
        assert_eq!(
            q.reserve(1, Some(5), 10, "h0", "n 1 5 10").await.unwrap(),
            Reserve::Missing
        );
        let v = q.version(1).await.unwrap();
        assert!(q.load(1, None, 100, &v).await.unwrap());
        assert!(q.load(1, Some(5), 30, &v).await.unwrap());
        // A second load does not overwrite a live balance.
        assert!(q.load(1, None, 999, &v).await.unwrap());
        assert_eq!(q.balance(&q.user_key(1)).await.unwrap(), Some(100));

        assert_eq!(
            q.reserve(1, Some(5), 20, "h1", "n 1 5 20").await.unwrap(),
            Reserve::Ok
        );
        assert_eq!(
            q.holds(1).await.unwrap(),
            [("h1".into(), "n 1 5 20".into())]
        );
        assert_eq!(
            q.reserve(1, Some(5), 20, "h2", "n 1 5 20").await.unwrap(),
            Reserve::TokenShort
        );
        assert_eq!(
            q.reserve(1, None, 100, "h3", "n 1 - 100").await.unwrap(),
            Reserve::UserShort
        );
        // Settle at 35 against 20 held: the excess is capped by the token's 10 left.
        let charged = q.settle(op(1, Some(5), "h1", 20, 35, true)).await.unwrap();
        assert_eq!(charged, Some(30));
        assert_eq!(q.balance(&q.token_key(1, 5)).await.unwrap(), Some(0));
        assert_eq!(q.balance(&q.user_key(1)).await.unwrap(), Some(70));
        // The hold is now a receipt: settling it again (a retry after a lost answer) returns the
        // first charge and moves nothing, and a dead node's release gives nothing back.
        assert_eq!(q.holds(1).await.unwrap(), [("h1".into(), "n = 30".into())]);
        assert_eq!(
            q.settle(op(1, Some(5), "h1", 20, 35, true)).await.unwrap(),
            Some(30)
        );
        assert_eq!(q.balance(&q.user_key(1)).await.unwrap(), Some(70));
        assert_eq!(q.balance(&q.token_key(1, 5)).await.unwrap(), Some(0));
        assert!(!q.release(1, Some(5), "h1", 20).await.unwrap());
        assert_eq!(q.balance(&q.user_key(1)).await.unwrap(), Some(70));
        assert!(q.holds(1).await.unwrap().is_empty());
        let moves = q.read_stream(1, None, 10).await.unwrap();
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].charged, 30);
        assert!(
            q.read_stream(1, Some(moves[0].id), 10)
                .await
                .unwrap()
                .is_empty()
        );
        q.trim_stream(1, moves[0].id).await.unwrap();
        assert!(q.read_stream(1, None, 10).await.unwrap().is_empty());

        // A committed change moves a live balance, and makes a racing load retry.
        q.credit("test:1", 1, None, 5).await.unwrap();
        assert_eq!(q.balance(&q.user_key(1)).await.unwrap(), Some(75));
        // The same credit again (a retry after a lost answer) applies nothing.
        q.credit("test:1", 1, None, 5).await.unwrap();
        assert_eq!(q.balance(&q.user_key(1)).await.unwrap(), Some(75));
        let v9 = q.version(9).await.unwrap();
        q.credit("test:2", 9, None, 50).await.unwrap();
        assert!(!q.load(9, None, 0, &v9).await.unwrap());
        assert_eq!(q.balance(&q.user_key(9)).await.unwrap(), None);

        // A hold released (its node died) is given back once.
        assert_eq!(
            q.reserve(1, None, 25, "h4", "dead 1 - 25").await.unwrap(),
            Reserve::Ok
        );
        assert_eq!(q.balance(&q.user_key(1)).await.unwrap(), Some(50));
        assert!(q.release(1, None, "h4", 25).await.unwrap());
        assert!(!q.release(1, None, "h4", 25).await.unwrap());
        assert_eq!(q.balance(&q.user_key(1)).await.unwrap(), Some(75));
        // Settling a released hold charges the whole price from the balance instead.
        assert_eq!(
            q.settle(op(1, None, "h4", 25, 5, true)).await.unwrap(),
            Some(5)
        );
        assert_eq!(q.balance(&q.user_key(1)).await.unwrap(), Some(70));
        // A refund (price 0) retried gives back once; forgetting drops the receipts.
        assert_eq!(
            q.reserve(1, None, 10, "h6", "n 1 - 10").await.unwrap(),
            Reserve::Ok
        );
        for _ in 0..2 {
            assert_eq!(
                q.settle(op(1, None, "h6", 10, 0, false)).await.unwrap(),
                Some(0)
            );
            assert_eq!(q.balance(&q.user_key(1)).await.unwrap(), Some(70));
        }
        q.forget(1, &["h4".into(), "h6".into()]).await.unwrap();
        assert!(q.holds(1).await.unwrap().is_empty());
        // More receipts than one `HDEL` takes: all of them go.
        let many: Vec<String> = (0..FORGET_CHUNK * 2 + 3).map(|i| format!("r{i}")).collect();
        let stored: anyhow::Result<()> = async {
            with_conn!(&q.pool, c => {
                let fields: Vec<(&str, &str)> =
                    many.iter().map(|id| (id.as_str(), "n = 1")).collect();
                let key = q.holds_key_of(1);
                let _: i64 = redis::cmd("HSET").arg(key).arg(&fields).query_async(&mut c).await?;
                Ok::<_, anyhow::Error>(())
            })
        }
        .await;
        stored.unwrap();
        assert_eq!(q.holds(1).await.unwrap().len(), many.len());
        q.forget(1, &many).await.unwrap();
        assert!(q.holds(1).await.unwrap().is_empty());
        // A missing balance: nothing applied, the caller loads and retries.
        assert_eq!(q.settle(op(2, None, "h5", 5, 5, true)).await.unwrap(), None);

        // 200 concurrent reservations of 7 against 100: exactly 14 succeed, none overdraw.
        let v = q.version(3).await.unwrap();
        assert!(q.load(3, None, 100, &v).await.unwrap());
        let mut tasks = Vec::new();
        for i in 0..200 {
            let q = q.clone();
            tasks.push(tokio::spawn(async move {
                q.reserve(3, None, 7, &format!("c{i}"), "n 3 - 7")
                    .await
                    .unwrap()
            }));
        }
        let mut ok = 0;
        for t in tasks {
            if t.await.unwrap() == Reserve::Ok {
                ok += 1;
            }
        }
        assert_eq!(ok, 14);
        assert_eq!(q.balance(&q.user_key(3)).await.unwrap(), Some(2));
        cleanup(&q).await.unwrap();
    }

    /// A reservation pushes its balances' expiry back to a day from now, but a node does so at
    /// most once per [`REFRESH_EVERY`] for the same balances: in between, the script leaves the
    /// expiry alone.
    #[tokio::test]
    async fn reservations_push_the_balances_expiry_back_now_and_then() {
        let Some(q) = test_store().await else { return };
        let v = q.version(7).await.unwrap();
        assert!(q.load(7, None, 1_000, &v).await.unwrap());
        assert!(q.load(7, Some(3), 1_000, &v).await.unwrap());
        let (user, token) = (q.user_key(7), q.token_key(7, 3));
        // Time passes: both balances are an hour from expiring.
        expire_in(&q, &user, 3_600).await.unwrap();
        expire_in(&q, &token, 3_600).await.unwrap();
        // The first reservation of this node pushes both back to a day.
        assert_eq!(
            q.reserve(7, Some(3), 10, "h1", "n").await.unwrap(),
            Reserve::Ok
        );
        assert!(ttl_of(&q, &user).await.unwrap() > 86_000);
        assert!(ttl_of(&q, &token).await.unwrap() > 86_000);
        // Within REFRESH_EVERY the next ones leave the expiry alone.
        expire_in(&q, &user, 3_600).await.unwrap();
        expire_in(&q, &token, 3_600).await.unwrap();
        assert_eq!(
            q.reserve(7, Some(3), 10, "h2", "n").await.unwrap(),
            Reserve::Ok
        );
        assert!(ttl_of(&q, &user).await.unwrap() <= 3_600);
        assert!(ttl_of(&q, &token).await.unwrap() <= 3_600);
        // Once REFRESH_EVERY has passed (the node forgot it), the next one pushes them back.
        q.refreshed.invalidate(&(7, Some(3)));
        assert_eq!(
            q.reserve(7, Some(3), 10, "h3", "n").await.unwrap(),
            Reserve::Ok
        );
        assert!(ttl_of(&q, &user).await.unwrap() > 86_000);
        assert!(ttl_of(&q, &token).await.unwrap() > 86_000);
        // The amounts moved as always.
        assert_eq!(q.balance(&user).await.unwrap(), Some(970));
        assert_eq!(q.balance(&token).await.unwrap(), Some(970));
        cleanup(&q).await.unwrap();
    }

    /// Redis forgets its scripts when it restarts without persistence or on `SCRIPT FLUSH`;
    /// the quota calls (sent as `EVALSHA`) must load the script again, not fail.
    #[tokio::test]
    async fn quota_calls_load_a_script_redis_forgot() {
        let Some(q) = test_store().await else { return };
        let v = q.version(3).await.unwrap();
        assert!(q.load(3, None, 1000, &v).await.unwrap());
        assert_eq!(
            q.reserve(3, None, 10, "f1", "n 3 - 10").await.unwrap(),
            Reserve::Ok
        );
        let flushed: anyhow::Result<()> = async {
            Ok(with_conn!(&q.pool, c => {
                redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut c).await?
            }))
        }
        .await;
        flushed.unwrap();
        assert_eq!(
            q.reserve(3, None, 10, "f2", "n 3 - 10").await.unwrap(),
            Reserve::Ok
        );
        assert_eq!(
            q.settle(op(3, None, "f2", 10, 4, true)).await.unwrap(),
            Some(4)
        );
        assert_eq!(
            q.balance(&q.user_key(3)).await.unwrap(),
            Some(1000 - 10 - 4)
        );
    }

    /// A store under a fresh key prefix on `TEST_REDIS_URL`'s Redis; `None` (the test skips)
    /// without one.
    #[tokio::test]
    async fn calls_of_one_thread_go_out_together() {
        let Some(q) = test_store().await else { return };
        let runs = || q.runs.load(std::sync::atomic::Ordering::Relaxed);
        // Users 4 and 12 share shard 4; user 12's balance is not loaded.
        let v = q.version(4).await.unwrap();
        assert!(q.load(4, None, 1000, &v).await.unwrap());
        assert!(q.load(4, Some(8), 500, &v).await.unwrap());
        // 20 reservations of 10 made at once, one of 400 more than the token has left, and one
        // for the user not loaded, all in one run.
        let holds: Vec<String> = (0..22).map(|i| format!("b{i}")).collect();
        let reserved = futures_util::future::join_all(holds.iter().enumerate().map(|(i, h)| {
            let (user, amount) = match i {
                20 => (4, 400),
                21 => (12, 10),
                _ => (4, 10),
            };
            q.reserve(user, Some(8), amount, h, "n 4 8 10")
        }))
        .await;
        let reserved: Vec<Reserve> = reserved.into_iter().map(Result::unwrap).collect();
        let mut want = vec![Reserve::Ok; 20];
        want.push(Reserve::TokenShort);
        want.push(Reserve::Missing);
        assert_eq!(reserved, want);
        assert_eq!(runs(), 1);
        assert_eq!(q.balance(&q.token_key(4, 8)).await.unwrap(), Some(300));
        // 20 settlements made at once: 7 each, one at 25 (15 over its hold), one of them twice
        // (a retry), and one whose user is not loaded.
        let mut ops: Vec<Settle> = (0..20)
            .map(|i| {
                op(
                    4,
                    Some(8),
                    &format!("b{i}"),
                    10,
                    if i == 3 { 25 } else { 7 },
                    true,
                )
            })
            .collect();
        ops.push(op(4, Some(8), "b5", 10, 7, true));
        ops.push(op(12, None, "b99", 10, 7, true));
        let answers = futures_util::future::join_all(ops.into_iter().map(|o| q.settle(o))).await;
        let answers: Vec<Option<i64>> = answers.into_iter().map(Result::unwrap).collect();
        let mut want = vec![Some(7); 20];
        want[3] = Some(25);
        want.push(Some(7));
        want.push(None);
        assert_eq!(answers, want);
        assert_eq!(runs(), 2);
        // 200 reserved, 19 x 7 + 25 = 158 charged: 42 back; the retry moved nothing.
        assert_eq!(q.balance(&q.user_key(4)).await.unwrap(), Some(1000 - 158));
        assert_eq!(
            q.balance(&q.token_key(4, 8)).await.unwrap(),
            Some(500 - 158)
        );
        let moves = q.read_stream(4, None, 100).await.unwrap();
        assert_eq!(moves.len(), 20);
        assert_eq!(moves.iter().map(|m| m.charged).sum::<i64>(), 158);
        // More calls than one run takes: the rest go in the next ones.
        let more: Vec<String> = (0..CALL_BATCH + 5).map(|i| format!("m{i}")).collect();
        let reserved = futures_util::future::join_all(
            more.iter().map(|h| q.reserve(4, None, 1, h, "n 4 - 1")),
        )
        .await;
        assert!(reserved.into_iter().all(|r| r.unwrap() == Reserve::Ok));
        assert_eq!(runs(), 4);
        cleanup(&q).await.unwrap();
    }

    #[tokio::test]
    async fn queued_calls_fail_within_the_timeout_when_redis_stops_answering() {
        // A server that takes connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let pool = RedisPool::connect(&RedisTarget::Standalone(format!("redis://{addr}"))).unwrap();
        let q = Arc::new(QuotaStore::new(pool, "silent:"));
        // Four runs' worth of calls: each must fail within one timeout of its own call, not
        // wait for the runs before its own to time out.
        let holds: Vec<String> = (0..CALL_BATCH * 4).map(|i| format!("s{i}")).collect();
        let started = std::time::Instant::now();
        let answers =
            futures_util::future::join_all(holds.iter().map(|h| q.reserve(1, None, 1, h, "v")))
                .await;
        let took = started.elapsed();
        assert!(answers.iter().all(Result::is_err));
        assert!(
            took < REDIS_TIMEOUT + std::time::Duration::from_secs(2),
            "took {took:?}"
        );
        // The calls whose callers gave up were never sent.
        assert_eq!(q.runs.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    /// A settlement by node "n" with an empty movement.
    fn op(
        user_id: i64,
        token: Option<i64>,
        hold: &str,
        reserved: i64,
        price: i64,
        counted: bool,
    ) -> Settle {
        Settle {
            node: "n".into(),
            user_id,
            token,
            hold_id: hold.into(),
            reserved,
            price,
            counted,
            payload: Arc::from(&b"{}"[..]),
        }
    }

    async fn test_store() -> Option<Arc<QuotaStore>> {
        let Some(url) = redis_url() else {
            eprintln!("skipped: TEST_REDIS_URL not set");
            return None;
        };
        let pool = RedisPool::connect(&RedisTarget::Standalone(url)).unwrap();
        pool.ping().await.unwrap();
        let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        Some(Arc::new(QuotaStore::new(pool, &prefix)))
    }

    async fn ttl_of(q: &QuotaStore, key: &str) -> anyhow::Result<i64> {
        with_conn!(q.pool(), c => Ok(redis::cmd("TTL").arg(key).query_async(&mut c).await?))
    }

    async fn expire_in(q: &QuotaStore, key: &str, secs: i64) -> anyhow::Result<()> {
        with_conn!(q.pool(), c => {
            let _: i64 = redis::cmd("EXPIRE").arg(key).arg(secs).query_async(&mut c).await?;
        });
        Ok(())
    }

    async fn cleanup(q: &QuotaStore) -> anyhow::Result<()> {
        let pattern = format!("{}*", q.prefix());
        with_conn!(q.pool(), c => {
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut c).await?;
            for k in keys {
                let _: i64 = redis::cmd("DEL").arg(&k).query_async(&mut c).await?;
            }
        });
        Ok(())
    }
}
