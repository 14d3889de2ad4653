//! Relay benchmark: client -> mock (floor), client -> pass-through proxy -> mock (proxy floor),
//! client -> Tollgate -> mock (auth, routing, billing, consume logs), measured in one run so that
//! machine noise cancels out in the ratios. Load comes from `wrk`. After every Tollgate run the
//! ledger is checked: quota moved = sum of consume logs, one log per successful request.
//!
//!     cargo build --release && cargo bench --bench relay -- [--quick] [--postgres URL]
//!
//! `scripts/bench` installs wrk, builds, runs this and prints the Markdown table; see
//! docs/benchmarks.md for the measured figures.

mod upstream;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Row;
use tollgate::store::{self, Db, PoolSettings};

const MODEL: &str = "gpt-3.5-turbo";
const BODY: &str =
    r#"{"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"hi"}],"max_tokens":16}"#;
const STREAM_BODY: &str = r#"{"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"hi"}],"max_tokens":16,"stream":true}"#;
const TOKENS: usize = 10_000;
const USER_QUOTA: i64 = 10_000_000_000_000;

#[derive(Debug, Clone)]
struct Args {
    quick: bool,
    duration: u64,
    postgres: Option<String>,
    redis: Option<String>,
    only: Option<String>,
    /// Concurrent slow streams for the memory case (0: skipped; the full run uses 10,000).
    open_streams: usize,
    /// Count Tollgate's instructions per request under callgrind instead of timing it.
    callgrind: bool,
    /// `--concurrency N`: that many clients only (a profile of one load), not 1, 64 and 512.
    concurrency: Option<usize>,
    /// `--cold-streams`: the open-streams case without warming the caches first (as until
    /// session 24).
    cold_streams: bool,
    /// `--prompt-bytes N`: the open-streams case's prompt is N bytes of text instead of "hi"
    /// (what a request holds while it waits for its first chunk grows with its body).
    prompt_bytes: usize,
}

impl Args {
    /// Whether `--only` leaves this Tollgate setup out. The 50 ms and open-streams cases run
    /// SQLite with one channel, so `--only "sqlite 1ch"` keeps them; `--only 50ms` or
    /// `--only streams` runs that case alone.
    fn skips(&self, label: &str) -> bool {
        self.only
            .as_ref()
            .is_some_and(|only| !label.contains(only.as_str()))
    }
}

/// The release binary `scripts/bench` built, beside this executable (`<target>/release/deps/`),
/// so that a `CARGO_TARGET_DIR` elsewhere is followed; until session 20 the bench ran
/// `./target/release/tollgate`, which such a build leaves stale or missing.
fn release_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("tollgate")))
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/tollgate")
        })
}

/// One Tollgate configuration. Its label is derived from what it runs, so a row cannot claim
/// "sqlite" for a run that also had Redis (until session 20, `--redis` gave every setup Redis,
/// the SQLite ones too, under their SQLite-only labels).
struct Setup {
    label: String,
    /// The database URL the bench prepares.
    url: String,
    /// `SQL_DSN` (PostgreSQL); SQLite setups use `SQLITE_PATH`.
    dsn: Option<String>,
    /// `REDIS_CONN_STRING`: only the PostgreSQL setup has one (scenario 3b); SQLite is scenario
    /// 3a, no Redis.
    redis: Option<String>,
    channels: usize,
}

impl Setup {
    fn new(url: String, dsn: Option<String>, redis: Option<String>, channels: usize) -> Setup {
        let db = if dsn.is_some() { "pg" } else { "sqlite" };
        let cache = if redis.is_some() { "+redis" } else { "" };
        Setup {
            label: format!("tollgate {db}{cache} {channels}ch"),
            url,
            dsn,
            redis,
            channels,
        }
    }
}

fn args() -> Args {
    let mut a = Args {
        quick: false,
        duration: 10,
        postgres: std::env::var("BENCH_POSTGRES_URL").ok(),
        redis: std::env::var("BENCH_REDIS_URL").ok(),
        only: None,
        open_streams: 0,
        callgrind: false,
        concurrency: None,
        cold_streams: false,
        prompt_bytes: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--quick" => {
                a.quick = true;
                a.duration = 3;
            }
            "--duration" => a.duration = it.next().and_then(|d| d.parse().ok()).unwrap_or(10),
            "--postgres" => a.postgres = it.next(),
            "--redis" => a.redis = it.next(),
            "--only" => a.only = it.next(),
            "--callgrind" => a.callgrind = true,
            "--concurrency" => a.concurrency = it.next().and_then(|n| n.parse().ok()),
            "--cold-streams" => a.cold_streams = true,
            "--prompt-bytes" => {
                a.prompt_bytes = it.next().and_then(|n| n.parse().ok()).unwrap_or(0)
            }
            "--open-streams" => {
                a.open_streams = it.next().and_then(|n| n.parse().ok()).unwrap_or(0)
            }
            _ => {}
        }
    }
    a
}

#[derive(Debug, Default, Clone)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    errors: u64,
}

fn parse_duration_ms(s: &str) -> f64 {
    let s = s.trim();
    let (num, mult) = if let Some(v) = s.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix("m") {
        (v, 60_000.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * mult
}

/// Parses wrk's report (`--latency`).
fn parse_wrk(out: &str) -> Load {
    let mut l = Load::default();
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            l.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("50%") {
            l.p50_ms = parse_duration_ms(v);
        } else if let Some(v) = t.strip_prefix("99%") {
            l.p99_ms = parse_duration_ms(v);
        } else if t.contains(" requests in ") {
            l.requests = t
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            l.errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            l.errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    l
}

fn wrk_script(dir: &std::path::Path, body: &str, keys: &[String]) -> PathBuf {
    let mut s = String::from("local keys = {");
    for k in keys {
        let _ = write!(s, "\"{k}\",");
    }
    let _ = write!(
        s,
        "}}\nlocal body = [[{body}]]\nlocal i = 0\nrequest = function()\n  i = i + 1\n  \
         local k = keys[(i % #keys) + 1]\n  return wrk.format(\"POST\", nil, \
         {{[\"Content-Type\"] = \"application/json\", [\"Authorization\"] = \"Bearer sk-\" .. k}}, body)\nend\n"
    );
    let path = dir.join(format!("bench-{}.lua", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, s).expect("write wrk script");
    path
}

fn run_wrk(url: &str, script: &std::path::Path, concurrency: usize, secs: u64) -> Load {
    let threads = concurrency.clamp(1, 2);
    let out = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &concurrency.to_string(),
            "-d",
            &format!("{secs}s"),
            // Longer than the run: a slow stream (about 8 s, more while 9,000 start at once)
            // cut off by wrk's 10 s default counted as an error that Tollgate never made.
            "--timeout",
            &format!("{}s", secs + 10),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .expect("run wrk (apt-get install wrk)");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// A chat completion request with token `key` (without its `sk-`).
fn chat(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: &'static str,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer sk-{key}"))
        .body(body)
}

/// Time to first body byte of one streamed request (ms), or `None` when it failed; with the
/// mock's stamps ([`upstream::Stamps`]), also its part before the mock's handler started and its
/// part after the handler answered (ms).
async fn first_byte(
    client: &reqwest::Client,
    url: &str,
    key: &str,
) -> Option<(f64, Option<(f64, f64)>)> {
    upstream::take_stamps();
    let started = Instant::now();
    let mut r = chat(client, url, key, STREAM_BODY).send().await.ok()?;
    r.chunk().await.ok()??;
    let first = Instant::now();
    while let Ok(Some(_)) = r.chunk().await {}
    let ms = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1e3;
    let s = upstream::take_stamps();
    let parts = s
        .arrived
        .zip(s.answered)
        .map(|(arrived, answered)| (ms(started, arrived), ms(answered, first)));
    Some((ms(started, first), parts))
}

/// The value at quantile `q` of sorted samples.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64) * q) as usize)
        .or(sorted.last())
        .copied()
        .unwrap_or(f64::NAN)
}

/// Time to first body byte over `n` sequential streamed requests to each target, taken in turns
/// (one request to each, then the next round) so that the machine's slow moments fall on all of
/// them alike. Returns each target's p99 (ms) and prints p50/p90/p99/max to stderr, with the
/// parts before the mock's handler and after its answer: a relay's own work on the way in and
/// on the way out.
async fn ttfb_p99(targets: &[(&str, &str, &str)], n: usize) -> Vec<f64> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut samples = vec![Vec::with_capacity(n); targets.len()];
    let mut parts = vec![(Vec::with_capacity(n), Vec::with_capacity(n)); targets.len()];
    upstream::stamping(true);
    for _ in 0..n {
        for (i, (_, url, key)) in targets.iter().enumerate() {
            if let Some((ms, split)) = first_byte(&client, url, key).await {
                samples[i].push(ms);
                if let Some((before, after)) = split {
                    parts[i].0.push(before);
                    parts[i].1.push(after);
                }
            }
        }
    }
    upstream::stamping(false);
    let sorted = |v: &mut Vec<f64>| v.sort_by(|a, b| a.total_cmp(b));
    targets
        .iter()
        .zip(&mut samples)
        .zip(&mut parts)
        .map(|(((label, _, _), s), (before, after))| {
            sorted(s);
            sorted(before);
            sorted(after);
            eprintln!(
                "TTFB {label} ({} of {n}): p50 {:.3} p90 {:.3} p99 {:.3} max {:.3} ms; \
                 to the mock's handler p50 {:.3} p99 {:.3}, from its answer p50 {:.3} p99 {:.3}",
                s.len(),
                quantile(s, 0.5),
                quantile(s, 0.9),
                quantile(s, 0.99),
                quantile(s, 1.0),
                quantile(before, 0.5),
                quantile(before, 0.99),
                quantile(after, 0.5),
                quantile(after, 0.99),
            );
            quantile(s, 0.99)
        })
        .collect()
}

/// One request per token, 64 at a time, so that the measured runs see warm caches (a node
/// that has served traffic has its tokens, users and balances in memory; a cold token costs a
/// database read, which is not the hot path the targets are about).
async fn warm_up(url: &str, keys: &[String]) {
    use futures_util::StreamExt;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    futures_util::stream::iter(keys)
        .for_each_concurrent(64, |k| {
            let client = client.clone();
            async move {
                if let Ok(r) = chat(&client, url, k, BODY).send().await {
                    let _ = r.bytes().await;
                }
            }
        })
        .await;
}

/// CPU time (user + system) a process has used so far, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    stat_secs(pid, false)
}

/// A process's CPU time from `/proc/<pid>/stat`, in seconds; with `children`, also that of its
/// children it has waited for (`cutime`, `cstime`).
fn stat_secs(pid: u32, children: bool) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name: utime and stime are the 12th and 13th, in ticks,
    // cutime and cstime the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(if children { 4 } else { 2 })
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    // USER_HZ: 100 ticks a second on every Linux architecture the bench runs on.
    ticks as f64 / 100.0
}

/// CPU time (user + system, seconds) of the running processes named `name` (every PostgreSQL
/// backend, the Redis server), or of this process (the mock and the proxy) for `None`. A
/// PostgreSQL backend that exits (the pool recycles its connections) takes its CPU time with it,
/// which made PostgreSQL's share of a run negative; the postmaster reaps it, so counting what
/// each process's reaped children used keeps the sum whole. (This process's own children are
/// wrk, which is not counted.)
fn cpu_of(name: Option<&str>) -> f64 {
    let Some(name) = name else {
        return cpu_secs(std::process::id());
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .map(|pid| stat_secs(pid, true))
        .sum()
}

/// The processes besides Tollgate whose CPU a run's requests cost.
const OTHERS: [(&str, Option<&str>); 3] = [
    ("PostgreSQL", Some("postgres")),
    ("Redis", Some("redis-server")),
    ("the mock", None),
];

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

struct Tollgate {
    child: Child,
    port: u16,
    db: Db,
    keys: Vec<String>,
    user_id: i64,
    /// Redis and this run's key prefix: every run starts from a fresh database whose user and
    /// token ids repeat, so a shared prefix would hand it the balances a previous run left.
    redis: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Drop for Tollgate {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        if let Some((url, prefix)) = &self.redis {
            let _ = drop_redis_keys(url, prefix);
        }
    }
}

/// Deletes the keys under `prefix` (a finished run's balances, holds and streams).
fn drop_redis_keys(url: &str, prefix: &str) -> redis::RedisResult<()> {
    use redis::Commands;
    let mut c = redis::Client::open(url)?.get_connection()?;
    let keys = c
        .scan_match(format!("{prefix}*"))?
        .collect::<redis::RedisResult<Vec<String>>>()?;
    for chunk in keys.chunks(500) {
        redis::cmd("DEL").arg(chunk).exec(&mut c)?;
    }
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Seeds a database (a user, 10,000 limited tokens, `channels` channels to the mock) and starts
/// the release binary on it.
async fn start_tollgate(
    db_url: &str,
    sql_dsn: Option<&str>,
    redis: Option<&str>,
    mock_port: u16,
    channels: usize,
    callgrind: Option<&std::path::Path>,
) -> anyhow::Result<Tollgate> {
    let dir = tempfile::tempdir()?;
    let settings = PoolSettings {
        max_open: 4,
        max_idle: 1,
        max_lifetime: Duration::from_secs(600),
        sqlite_busy_timeout: Duration::from_secs(5),
    };
    let db = Db::connect(db_url, &settings).await?;
    db.migrate().await?;
    let user_id = store::users::insert(
        &db,
        &db.pool,
        &store::users::NewUser {
            username: "bench".into(),
            password_hash: "x".into(),
            quota: USER_QUOTA,
            group: "default".into(),
            role: 1,
            ..Default::default()
        },
    )
    .await?;
    let mut keys = Vec::with_capacity(TOKENS);
    let mut tx = db.pool.begin().await?;
    for i in 0..TOKENS {
        let key = tollgate::auth::keys::token_key();
        store::tokens::insert(
            &db,
            &mut *tx,
            &store::tokens::NewToken {
                user_id,
                key: key.clone(),
                name: format!("bench-{i}"),
                expired_time: -1,
                remain_quota: USER_QUOTA,
                unlimited_quota: false,
                ..Default::default()
            },
        )
        .await?;
        keys.push(key);
    }
    tx.commit().await?;
    for i in 0..channels {
        let mut c = store::channels::Channel {
            r#type: 1,
            key: format!("sk-upstream-{i}"),
            status: 1,
            name: format!("mock-{i}"),
            weight: 1,
            base_url: format!("http://127.0.0.1:{mock_port}"),
            models: MODEL.into(),
            group: "default".into(),
            ..Default::default()
        };
        let mut tx = db.pool.begin().await?;
        c.id = store::channels::insert(&db, &mut *tx, &c).await?;
        store::abilities::replace_for_channel(&db, &mut tx, &c).await?;
        tx.commit().await?;
    }
    let port = free_port();
    // BENCH_TOLLGATE=PATH measures another build (an A/B of two binaries).
    let bin = std::env::var_os("BENCH_TOLLGATE").map_or_else(release_binary, PathBuf::from);
    let mut cmd = match callgrind {
        // Counting starts only when the bench turns it on (after start-up and warm-up).
        Some(out) => {
            let mut c = Command::new("valgrind");
            c.arg("--tool=callgrind")
                .arg("--instr-atstart=no")
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    cmd.current_dir(dir.path())
        .env("PORT", port.to_string())
        .env("SESSION_SECRET", "bench")
        .env("MEMORY_CACHE_ENABLED", "true")
        .env(
            "RUST_LOG",
            std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stderr(Stdio::null());
    // BENCH_LOG=FILE keeps Tollgate's log (appended), to see what a run did.
    match std::env::var("BENCH_LOG") {
        Ok(f) => cmd.stdout(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)?,
        ),
        Err(_) => cmd.stdout(Stdio::null()),
    };
    match sql_dsn {
        Some(dsn) => cmd.env("SQL_DSN", dsn),
        None => cmd.env(
            "SQLITE_PATH",
            db_url
                .trim_start_matches("sqlite://")
                .trim_end_matches("?mode=rwc"),
        ),
    };
    let redis = redis.map(|r| {
        let prefix = format!("bench{}:", uuid::Uuid::new_v4().simple());
        cmd.env("REDIS_CONN_STRING", r)
            .env("REDIS_KEY_PREFIX", &prefix);
        (r.to_string(), prefix)
    });
    let child = cmd.spawn().map_err(|e| {
        anyhow::anyhow!("start {} (cargo build --release first): {e}", bin.display())
    })?;
    // The port accepts connections before the server is ready (the listener is bound first), so
    // wait for an answer: the idle RSS is read after start-up, tokenizer tables included.
    let deadline = Instant::now() + Duration::from_secs(if callgrind.is_some() { 600 } else { 60 });
    let client = reqwest::Client::builder().no_proxy().build()?;
    let status = format!("http://127.0.0.1:{port}/api/status");
    while !client
        .get(&status)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        anyhow::ensure!(Instant::now() < deadline, "tollgate did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(Tollgate {
        child,
        port,
        db,
        keys,
        user_id,
        redis,
        _dir: dir,
    })
}

/// The highest log id so far: the watermark that separates one run's logs from the next.
async fn last_log_id(t: &Tollgate) -> i64 {
    let sql = store::dialect::as_i64(t.db.backend, "COALESCE(MAX(id), 0)");
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {sql} FROM logs")))
        .fetch_one(&t.db.pool)
        .await
        .map(|r| r.get::<i64, _>(0))
        .unwrap_or(0)
}

/// The user's quota and the last log id once the writer is idle (the same two readings 500 ms
/// apart), so that the ledger check of the next run counts nothing of an earlier one.
async fn quiet_point(t: &Tollgate) -> anyhow::Result<(i64, i64)> {
    let mut last = None;
    for _ in 0..60 {
        let quota = store::users::get_by_id(&t.db, t.user_id)
            .await?
            .map(|u| u.quota)
            .unwrap_or(0);
        let now = (quota, last_log_id(t).await);
        if last == Some(now) {
            return Ok(now);
        }
        last = Some(now);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("the ledger writer did not go idle within 30 s")
}

/// This process's soft limit of open files (its children inherit it), from /proc.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| match line.split_whitespace().nth(3)? {
                    "unlimited" => Some(usize::MAX),
                    n => n.parse().ok(),
                })
        })
        .unwrap_or(1024)
}

/// After a run: waits for settlement, then checks that the quota moved equals the sum of this
/// run's consume logs (ids above `since`) and counts them.
/// Also returns how many requests were billed (wrk does not count the ones it cut off at the end).
async fn ledger_check(t: &Tollgate, before: i64, since: i64, successes: u64) -> (String, u64) {
    let mut last = (0, 0, 0);
    let ended = Instant::now();
    // With Redis the database is written behind the balances: wait until every answered request
    // has its log (or nothing moved for 5 s), and say how long that took.
    let mut still = 0;
    for _ in 0..240 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sum = store::dialect::as_i64(t.db.backend, "COALESCE(SUM(quota), 0)");
        let sql = format!(
            "SELECT {sum}, COUNT(*) FROM logs WHERE type = 2 AND user_id = {} AND id > {since}",
            t.user_id
        );
        let Ok(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&t.db.pool)
            .await
        else {
            continue;
        };
        let (logged, count): (i64, i64) = (row.get(0), row.get(1));
        let quota = store::users::get_by_id(&t.db, t.user_id)
            .await
            .ok()
            .flatten()
            .map(|u| u.quota)
            .unwrap_or(0);
        let now = (before - quota, logged, count);
        still = if now == last { still + 1 } else { 0 };
        last = now;
        let settled = still >= 1 && now.0 == now.1 && now.2 as u64 >= successes;
        if settled || still >= 10 {
            break;
        }
    }
    let (moved, logged, count) = last;
    let exact = if moved == logged { "exact" } else { "MISMATCH" };
    let caught_up = ended.elapsed().as_secs_f64();
    let line = format!(
        "{exact}: moved {moved} = logs {logged}; {count} logs / {successes} ok; in the database {caught_up:.1} s after the run"
    );
    (line, count as u64)
}

#[derive(Debug, Clone)]
struct Row_ {
    scenario: String,
    stream: bool,
    concurrency: usize,
    load: Load,
    /// First byte p99, and the proxy's when it was taken in turns with this one.
    ttfb_p99: Option<(f64, Option<f64>)>,
    rss_mb: Option<f64>,
    /// Tollgate's CPU time per request (µs): steadier than req/s on a noisy machine, where
    /// what else runs takes cores away but not the work each request needs.
    cpu_us: Option<f64>,
    /// The bare proxy's req/s measured just before this row, in the same conditions: the floor
    /// rows are taken minutes earlier, and a shared machine's speed drifts in between.
    proxy_adjacent: Option<f64>,
    ledger: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The pass-through proxy in a process of its own, so that its memory can be read apart
    // (the open-streams case): `--serve-proxy UPSTREAM` prints the port and serves.
    let argv: Vec<String> = std::env::args().collect();
    if let Some(i) = argv.iter().position(|a| a == "--serve-proxy") {
        let upstream = argv.get(i + 1).cloned().unwrap_or_default();
        // Two workers, as Tollgate has on this machine's two cores.
        let port = upstream::start_proxy(upstream, 2)?;
        println!("{port}");
        std::future::pending::<()>().await;
    }
    // `cargo bench` passes --bench; anything else (cargo test --all-targets) only builds it.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("relay benchmark: run it with `cargo bench --bench relay` or scripts/bench");
        return Ok(());
    }
    let a = args();
    let _ = rustls::crypto::ring::default_provider().install_default();
    sqlx::any::install_default_drivers();
    anyhow::ensure!(
        Command::new("wrk").arg("--version").output().is_ok(),
        "wrk is not installed (apt-get install wrk)"
    );
    let one = a.concurrency.map(|c| [c]);
    let concurrencies: &[usize] = match &one {
        Some(c) => c,
        None if a.quick => &[64],
        None => &[1, 64, 512],
    };
    let open_streams = if a.open_streams == 0 && !a.quick {
        // Tollgate holds two descriptors per open stream (client and upstream): stay inside the
        // limit it inherits, or the run measures refused connections instead of memory.
        let limit = open_files_limit();
        let most = (limit.saturating_sub(2_000) / 2).min(10_000);
        if most < 10_000 {
            eprintln!("open streams: {most}, not 10000 (descriptor limit {limit})");
        }
        most
    } else {
        a.open_streams
    };
    let mock0 = upstream::start_mock(
        upstream::MockConfig {
            latency: Duration::ZERO,
            chunks: 20,
            interval: Duration::ZERO,
        },
        1,
    )?;
    let proxy0 = upstream::start_proxy(format!("http://127.0.0.1:{mock0}"), 1)?;
    let scratch = tempfile::tempdir()?;
    let mut rows: Vec<Row_> = Vec::new();

    // Tollgate configurations: SQLite (1 and 100 channels), then PostgreSQL (+ Redis) if given.
    let mut setups: Vec<Setup> = Vec::new();
    for channels in [1usize, 100] {
        let path = scratch.path().join(format!("bench-{channels}.db"));
        setups.push(Setup::new(
            format!("sqlite://{}?mode=rwc", path.display()),
            None,
            None,
            channels,
        ));
    }
    let mut scratch_db = None;
    if let Some(pg) = &a.postgres {
        let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(pg).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        // Keep the query (`?host=/var/run/postgresql` for a unix socket) after the new name.
        let (path, query) = pg
            .split_once('?')
            .map_or((pg.as_str(), ""), |(p, q)| (p, q));
        let base = path.rsplit_once('/').map(|(b, _)| b).unwrap_or(path);
        let url = match query {
            "" => format!("{base}/{name}"),
            q => format!("{base}/{name}?{q}"),
        };
        scratch_db = Some((pg.clone(), name.clone()));
        setups.push(Setup::new(url.clone(), Some(url), a.redis.clone(), 1));
    }

    if a.callgrind {
        let mut out = String::from(
            "| scenario | stream | conc | billed | instructions/request | ledger |\n|---|---|---|---|---|---|\n",
        );
        for setup in setups.iter().filter(|s| !a.skips(&s.label)) {
            for line in callgrind_runs(setup, &a, mock0, scratch.path()).await? {
                out.push_str(&line);
            }
        }
        println!("{out}");
    }
    // The floors, for the setups measured below.
    let measures_setups = setups.iter().any(|s| !a.skips(&s.label));
    for stream in [false, true] {
        if a.callgrind || !measures_setups {
            break;
        }
        let body = if stream { STREAM_BODY } else { BODY };
        let dummy_keys = vec!["bench".to_string()];
        let script = wrk_script(scratch.path(), body, &dummy_keys);
        for &c in concurrencies {
            for (label, port) in [("direct (mock)", mock0), ("pass-through proxy", proxy0)] {
                let url = chat_url(port);
                let load = run_wrk(&url, &script, c, a.duration);
                let ttfb = if stream && c == 64 {
                    Some((ttfb_p99(&[(label, &url, "bench")], 200).await[0], None))
                } else {
                    None
                };
                rows.push(Row_ {
                    scenario: label.into(),
                    stream,
                    concurrency: c,
                    load,
                    ttfb_p99: ttfb,
                    rss_mb: None,
                    cpu_us: None,
                    proxy_adjacent: None,
                    ledger: String::new(),
                });
            }
        }
    }
    for Setup {
        label,
        url,
        dsn,
        redis,
        channels,
    } in &setups
    {
        if a.callgrind || a.skips(label) {
            continue;
        }
        let t = start_tollgate(
            url,
            dsn.as_deref(),
            redis.as_deref(),
            mock0,
            *channels,
            None,
        )
        .await?;
        let idle = rss_kb(t.child.id(), "VmRSS:") as f64 / 1024.0;
        eprintln!("{label}: idle RSS {idle:.1} MB");
        let warm = Instant::now();
        warm_up(&chat_url(t.port), &t.keys).await;
        eprintln!(
            "{label}: {} tokens warmed in {:?}",
            t.keys.len(),
            warm.elapsed()
        );
        for stream in [false, true] {
            let body = if stream { STREAM_BODY } else { BODY };
            let script = wrk_script(scratch.path(), body, &t.keys);
            let proxy_script = wrk_script(scratch.path(), body, &["bench".to_string()]);
            let proxy_url = chat_url(proxy0);
            for &c in concurrencies {
                let adjacent = run_wrk(&proxy_url, &proxy_script, c, a.duration).rps;
                let (before, since) = quiet_point(&t).await?;
                let url = chat_url(t.port);
                let cpu_before = cpu_secs(t.child.id());
                let others_before = OTHERS.map(|(_, name)| cpu_of(name));
                let load = run_wrk(&url, &script, c, a.duration);
                let cpu = cpu_secs(t.child.id()) - cpu_before;
                let ok = load.requests.saturating_sub(load.errors);
                // Where else the machine's cores went (PostgreSQL and Redis run on them too).
                let per_request = |secs: f64| secs * 1e6 / ok.max(1) as f64;
                let mut line = format!("Tollgate {:.0} µs", per_request(cpu));
                for ((what, name), before) in OTHERS.iter().zip(others_before) {
                    let _ = write!(
                        line,
                        ", {what} {:.0} µs",
                        per_request(cpu_of(*name) - before)
                    );
                }
                eprintln!(
                    "{label} stream={stream} c={c}: CPU per answered request: {line} (wrk's own \
                     is not counted)"
                );
                let (ledger, _) = ledger_check(&t, before, since, ok).await;
                // Tollgate's first byte, taken in turns with the floors' (1,000 rounds): a
                // p99 is one slow moment in a hundred, and this machine has them.
                let ttfb = if stream && c == 64 {
                    let direct = chat_url(mock0);
                    let proxy = chat_url(proxy0);
                    let p99 = ttfb_p99(
                        &[
                            ("direct (in turns)", &direct, "bench"),
                            ("proxy (in turns)", &proxy, "bench"),
                            (label.as_str(), &url, &t.keys[0]),
                        ],
                        1000,
                    )
                    .await;
                    Some((p99[2], Some(p99[1])))
                } else {
                    None
                };
                rows.push(Row_ {
                    scenario: label.clone(),
                    stream,
                    concurrency: c,
                    load,
                    ttfb_p99: ttfb,
                    rss_mb: Some(rss_kb(t.child.id(), "VmHWM:") as f64 / 1024.0),
                    cpu_us: (ok > 0).then(|| cpu * 1e6 / ok as f64),
                    proxy_adjacent: Some(adjacent),
                    ledger,
                });
            }
        }
    }

    // 50 ms upstream at concurrency 512: errors and tail latency.
    if !a.quick && !a.callgrind && !a.skips("tollgate sqlite 1ch 50ms") {
        let mock50 = upstream::start_mock(
            upstream::MockConfig {
                latency: Duration::from_millis(50),
                chunks: 20,
                interval: Duration::ZERO,
            },
            1,
        )?;
        let path = scratch.path().join("bench-50ms.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let t = start_tollgate(&url, None, None, mock50, 1, None).await?;
        // Warm like the other Tollgate runs: without it most of the 10,000 tokens were first
        // seen during the run, and their database loads were what the p99 measured.
        warm_up(&chat_url(t.port), &t.keys).await;
        let script = wrk_script(scratch.path(), BODY, &t.keys);
        // The proxy floor too: what any relay on this stack reaches at this load.
        let proxy50 = upstream::start_proxy(format!("http://127.0.0.1:{mock50}"), 1)?;
        for (label, target) in [
            ("direct (mock) 50ms", chat_url(mock50)),
            ("pass-through proxy 50ms", chat_url(proxy50)),
            ("tollgate sqlite 50ms", chat_url(t.port)),
        ] {
            // Each target's first 2 s, then a run of its own: the relays open their 512 upstream
            // connections in the first wave of the first run and pool them for the second (wrk
            // connects anew in both). In one 5 s run that first wave is about 1% of the
            // requests, so the p99 measured the start-up, not the load.
            let first = run_wrk(&target, &script, 512, 2);
            let load = run_wrk(&target, &script, 512, a.duration);
            for (scenario, load) in [(format!("{label}, first 2 s"), first), (label.into(), load)] {
                rows.push(Row_ {
                    scenario,
                    stream: false,
                    concurrency: 512,
                    load,
                    ttfb_p99: None,
                    rss_mb: None,
                    cpu_us: None,
                    proxy_adjacent: None,
                    ledger: String::new(),
                });
            }
        }
    }

    // Memory with many streams open at once: a mock that sends one chunk every 400 ms (about
    // 9 s a stream), wrk holding `open_streams` connections, Tollgate's peak RSS.
    if open_streams > 0 && !a.callgrind && !a.skips("tollgate sqlite 1ch streams") {
        let slow = upstream::start_mock(
            upstream::MockConfig {
                latency: Duration::ZERO,
                chunks: 20,
                interval: Duration::from_millis(400),
            },
            2,
        )?;
        let path = scratch.path().join("bench-streams.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let t = start_tollgate(&url, None, None, slow, 1, None).await?;
        // Warm the token and user caches first, as the timed runs do (non-stream requests, which
        // the slow mock answers at once): cold, each stream first read its token and user from
        // the database while the rest queued behind, so fewer requests waited for their
        // upstream's first answer at the same moment, the phase where a request holds the most,
        // and the peak RSS understated the warm case (docs/benchmarks.md, session 24).
        if !a.cold_streams {
            warm_up(&chat_url(t.port), &t.keys).await;
        }
        let body = long_prompt_body(a.prompt_bytes);
        let script = wrk_script(
            scratch.path(),
            body.as_deref().unwrap_or(STREAM_BODY),
            &t.keys,
        );
        let prompt = match a.prompt_bytes {
            0 => String::new(),
            n => format!(" ({n}-byte prompts)"),
        };
        rows.push(open_streams_row(
            &format!("tollgate sqlite{prompt}"),
            t.child.id(),
            t.port,
            &script,
            open_streams,
        ));
        drop(t);
        // The same streams through the pass-through proxy in its own process: what this HTTP
        // stack (actix-web in front, Tollgate's upstream client behind) holds per stream with no
        // relay work at all.
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--serve-proxy", &format!("http://127.0.0.1:{slow}")])
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("piped stdout")),
            &mut line,
        )?;
        let port: u16 = line.trim().parse()?;
        rows.push(open_streams_row(
            &format!("pass-through proxy{prompt}"),
            child.id(),
            port,
            &script,
            open_streams,
        ));
        let _ = child.kill();
        let _ = child.wait();
    }

    if !a.callgrind {
        println!("{}", render(&rows));
    }
    if let Some((pg, name)) = scratch_db {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&pg).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await?;
    }
    Ok(())
}

/// `n` slow streams held open through the server `pid` listening on `port`: its idle and peak
/// RSS, as a row of the table.
fn open_streams_row(label: &str, pid: u32, port: u16, script: &std::path::Path, n: usize) -> Row_ {
    let idle = rss_kb(pid, "VmRSS:") as f64 / 1024.0;
    let idle_fds = open_fds(pid);
    let target = chat_url(port);
    // About how many streams were open at once: each holds two sockets (the client's and the
    // upstream's); idle pooled upstream connections count too, so it can read a little over `n`.
    // The memory a stream takes is the peak over idle divided by it.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let sampler = std::thread::spawn(move || {
        let mut most = open_fds(pid);
        // Every 100 ms until the run ends (the sender is dropped).
        while stopped.recv_timeout(Duration::from_millis(100))
            == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        {
            most = most.max(open_fds(pid));
        }
        most
    });
    let load = run_wrk(&target, script, n, 12);
    drop(stop);
    let open = sampler.join().unwrap_or(0).saturating_sub(idle_fds) / 2;
    let peak = rss_kb(pid, "VmHWM:") as f64 / 1024.0;
    let per_stream = (peak - idle) * 1024.0 / open.max(1) as f64;
    eprintln!(
        "{label}, {n} open streams: idle RSS {idle:.1} MB, peak {peak:.1} MB, at most {open} open at once \
         ({per_stream:.1} KB each over idle), {} streams finished, {} errors",
        load.requests, load.errors
    );
    Row_ {
        scenario: format!("{label}, {n} slow streams open"),
        stream: true,
        concurrency: n,
        load,
        ttfb_p99: None,
        rss_mb: Some(peak),
        cpu_us: None,
        proxy_adjacent: None,
        ledger: format!(
            "idle RSS {idle:.1} MB; at most {open} streams open at once, {per_stream:.1} KB each"
        ),
    }
}

/// A streamed chat body whose prompt is `bytes` of words (`None` for 0: the usual "hi").
fn long_prompt_body(bytes: usize) -> Option<String> {
    if bytes == 0 {
        return None;
    }
    let words = ["tollgate ", "relays ", "every ", "stream "];
    let mut text = String::with_capacity(bytes + 16);
    for w in words.iter().cycle() {
        if text.len() >= bytes {
            break;
        }
        text.push_str(w);
    }
    text.truncate(bytes);
    Some(
        serde_json::json!({
            "model": "gpt-3.5-turbo",
            "messages": [{"role": "user", "content": text}],
            "max_tokens": 16,
            "stream": true,
        })
        .to_string(),
    )
}

/// The chat completions URL of a server on this machine's `port`.
fn chat_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/v1/chat/completions")
}

/// How many descriptors a process has open (its sockets, files and the rest).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// One Tollgate setup under callgrind: its instructions per answered request, non-stream and
/// stream. Exact counts, the same for one build and load whatever else the machine runs (its
/// req/s moves by 20% on a shared host), so two builds compare to within a percent. The
/// writer's work after the run is counted too: the count stops once every request is logged.
async fn callgrind_runs(
    Setup {
        label,
        url,
        dsn,
        redis,
        channels,
    }: &Setup,
    a: &Args,
    mock: u16,
    dir: &std::path::Path,
) -> anyhow::Result<Vec<String>> {
    const CONCURRENCY: usize = 64;
    let slug: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let out = dir.join(format!("callgrind.{slug}"));
    let t = start_tollgate(
        url,
        dsn.as_deref(),
        redis.as_deref(),
        mock,
        *channels,
        Some(&out),
    )
    .await?;
    let target = chat_url(t.port);
    // Under callgrind each run takes minutes, longer than the token and user caches' 60 s
    // time-to-live: with all 10,000 tokens the stream run re-read most of them (11% of its
    // instructions). So these runs use the first 1,000, warmed again just before each run.
    let keys = &t.keys[..t.keys.len().min(1_000)];
    warm_up(&target, keys).await;
    let control = |args: &[&str]| {
        Command::new("callgrind_control")
            .args(args)
            .arg(t.child.id().to_string())
            .output()
    };
    let mut rows = Vec::new();
    for (n, stream) in [false, true].into_iter().enumerate() {
        let body = if stream { STREAM_BODY } else { BODY };
        let script = wrk_script(dir, body, keys);
        if n > 0 {
            // Counted, but zeroed below.
            warm_up(&target, keys).await;
        }
        let (before, since) = quiet_point(&t).await?;
        // Switched on once and zeroed per run: switching it off and on again between the two
        // runs left the second profile's inclusive costs unusable.
        control(&["-i", "on"])?;
        control(&["-z"])?;
        let load = run_wrk(&target, &script, CONCURRENCY, a.duration);
        let ok = load.requests.saturating_sub(load.errors);
        let (ledger, billed) = ledger_check(&t, before, since, ok).await;
        control(&["-d"])?;
        // Each dump is its own file: `<out>.<n>`, numbered from 1.
        let dump = PathBuf::from(format!("{}.{}", out.display(), n + 1));
        let total: u64 = std::fs::read_to_string(&dump)
            .ok()
            .and_then(|d| {
                d.lines()
                    .find_map(|l| l.strip_prefix("totals:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .ok_or_else(|| anyhow::anyhow!("no totals in {}", dump.display()))?;
        let kept = std::env::temp_dir().join(format!(
            "callgrind.{slug}.{}",
            if stream { "stream" } else { "json" }
        ));
        let _ = std::fs::copy(&dump, &kept);
        eprintln!("{label}: callgrind profile in {}", kept.display());
        rows.push(format!(
            "| {label} | {} | {CONCURRENCY} | {billed} | {} | {ledger} |\n",
            if stream { "yes" } else { "no" },
            total.checked_div(billed).unwrap_or(0),
        ));
    }
    Ok(rows)
}

fn render(rows: &[Row_]) -> String {
    let find = |name: &str, stream: bool, c: usize| {
        rows.iter()
            .find(|r| r.scenario == name && r.stream == stream && r.concurrency == c)
            .map(|r| r.load.clone())
    };
    let mut out = String::from(
        "| scenario | stream | conc | req/s | p50 ms | p99 ms | p50 added vs direct | req/s vs proxy | TTFB p99 ms | errors | peak RSS MB | CPU µs/req | ledger |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        // The 50 ms rows compare with the 50 ms floors (their first 2 s with theirs).
        let suffix = r.scenario.find(" 50ms").map_or("", |i| &r.scenario[i..]);
        let direct = find(&format!("direct (mock){suffix}"), r.stream, r.concurrency);
        let proxy = find(
            &format!("pass-through proxy{suffix}"),
            r.stream,
            r.concurrency,
        );
        let added = direct
            .map(|d| format!("{:+.3} ms", r.load.p50_ms - d.p50_ms))
            .unwrap_or_default();
        let mut ratio = proxy
            .filter(|p| p.rps > 0.0)
            .map(|p| format!("{:.0}%", 100.0 * r.load.rps / p.rps))
            .unwrap_or_default();
        if let Some(p) = r.proxy_adjacent.filter(|p| *p > 0.0) {
            let _ = write!(ratio, " ({:.0}% adjacent)", 100.0 * r.load.rps / p);
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.3} | {:.3} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            if r.stream { "yes" } else { "no" },
            r.concurrency,
            r.load.rps,
            r.load.p50_ms,
            r.load.p99_ms,
            added,
            ratio,
            match r.ttfb_p99 {
                Some((t, Some(p))) => format!("{t:.3} (proxy {p:.3})"),
                Some((t, None)) => format!("{t:.3}"),
                None => String::new(),
            },
            r.load.errors,
            r.rss_mb.map(|m| format!("{m:.1}")).unwrap_or_default(),
            r.cpu_us.map(|c| format!("{c:.0}")).unwrap_or_default(),
            r.ledger
        );
    }
    out
}
