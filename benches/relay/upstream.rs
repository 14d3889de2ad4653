//! The benchmark's two helpers that stand for the outside world: a fast mock of OpenAI's chat
//! completions (non-stream, and SSE with N content chunks and a usage chunk, after a fixed
//! latency), and a minimal pass-through proxy (no auth, no billing) built on the same HTTP stack
//! as Tollgate (actix-web in front, Tollgate's upstream client behind, one per worker thread),
//! which is the floor any relay can reach.

use std::net::TcpListener;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures_util::StreamExt;
use tollgate::relay::upstream::Upstream;

#[derive(Clone, Copy)]
pub struct MockConfig {
    pub latency: Duration,
    pub chunks: usize,
    /// Pause between streamed chunks (zero: all at once). A slow stream keeps connections open.
    pub interval: Duration,
}

pub const PROMPT_TOKENS: i64 = 12;

fn completion() -> Bytes {
    Bytes::from_static(
        br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-3.5-turbo","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, this is a benchmark reply."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}"#,
    )
}

fn sse_body(chunks: usize) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(chunks + 3);
    for i in 0..chunks {
        out.push(Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-3.5-turbo\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
        )));
    }
    out.push(Bytes::from_static(b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-3.5-turbo\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"));
    out.push(Bytes::from(format!(
        "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-3.5-turbo\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{PROMPT_TOKENS},\"completion_tokens\":{chunks},\"total_tokens\":{}}}}}\n\n",
        PROMPT_TOKENS + chunks as i64
    )));
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

/// Whether the mocks note when each request reached them and when they answered it (see
/// [`Stamps`]). Off under wrk's load, where a shared lock per request would slow the floor.
static STAMPING: AtomicBool = AtomicBool::new(false);
static STAMPS: Mutex<Stamps> = Mutex::new(Stamps::NONE);

/// When the last request reached a mock's handler and when the handler handed its answer to
/// actix. With one request in flight at a time (the first-byte rounds), they split a relay's
/// first byte into its part before the upstream and its part after it.
#[derive(Clone, Copy, Debug)]
pub struct Stamps {
    pub arrived: Option<Instant>,
    pub answered: Option<Instant>,
}

impl Stamps {
    const NONE: Stamps = Stamps {
        arrived: None,
        answered: None,
    };
}

/// Turns the stamps on (cleared) or off.
pub fn stamping(on: bool) {
    take_stamps();
    STAMPING.store(on, Ordering::Relaxed);
}

/// The last request's stamps, cleared for the next one.
pub fn take_stamps() -> Stamps {
    std::mem::replace(
        &mut STAMPS.lock().unwrap_or_else(|e| e.into_inner()),
        Stamps::NONE,
    )
}

fn stamp(f: impl FnOnce(&mut Stamps)) {
    if STAMPING.load(Ordering::Relaxed) {
        f(&mut STAMPS.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

async fn chat(cfg: web::Data<MockConfig>, body: Bytes) -> HttpResponse {
    stamp(|s| s.arrived = Some(Instant::now()));
    let res = answer(&cfg, &body).await;
    stamp(|s| s.answered = Some(Instant::now()));
    res
}

async fn answer(cfg: &MockConfig, body: &[u8]) -> HttpResponse {
    if !cfg.latency.is_zero() {
        tokio::time::sleep(cfg.latency).await;
    }
    let stream = memchr_stream(body);
    if stream {
        let chunks = sse_body(cfg.chunks);
        let mut res = HttpResponse::Ok();
        res.content_type("text/event-stream")
            .insert_header(("Cache-Control", "no-cache"));
        let interval = cfg.interval;
        if interval.is_zero() {
            res.streaming(futures_util::stream::iter(
                chunks.into_iter().map(Ok::<_, actix_web::Error>),
            ))
        } else {
            // Streams out of step, as real ones are: wrk opens every connection at once, and
            // with one cadence for all, the chunks of all 9,000 streams arrived in the same
            // instant (the relay's peak RSS 490 MB against 441 out of step). The first chunk
            // waits a share of the interval, spread evenly over the streams.
            static STREAMS: AtomicU64 = AtomicU64::new(0);
            let n = STREAMS.fetch_add(1, Ordering::Relaxed);
            let first = interval.mul_f64((n as f64 * 0.618_033_988_749_895).fract());
            res.streaming(futures_util::stream::iter(chunks).enumerate().then(
                move |(i, c)| async move {
                    tokio::time::sleep(if i == 0 { first } else { interval }).await;
                    Ok::<_, actix_web::Error>(c)
                },
            ))
        }
    } else {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(completion())
    }
}

/// Whether the request asks for a stream (a byte search: the mock must stay cheap).
fn memchr_stream(body: &[u8]) -> bool {
    body.windows(13).any(|w| w == b"\"stream\":true")
}

/// Starts the mock upstream on a free port; returns the port.
pub fn start_mock(cfg: MockConfig, workers: usize) -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(cfg))
            .app_data(web::PayloadConfig::new(1 << 20))
            .route("/v1/chat/completions", web::post().to(chat))
    })
    .workers(workers)
    .tcp_nodelay(true)
    .backlog(4096)
    .max_connection_rate(4096)
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok(port)
}

struct Proxy {
    /// Builds the requests (Tollgate's relay builds them with reqwest too).
    client: reqwest::Client,
    cfg: tollgate::config::Config,
    upstream: String,
}

impl Proxy {
    /// Tollgate's upstream client, one per worker thread as in Tollgate (`AppState::upstream`).
    fn sender(&self) -> Upstream {
        thread_local! {
            static SENDER: std::cell::OnceCell<Upstream> = const { std::cell::OnceCell::new() };
        }
        SENDER.with(|s| {
            s.get_or_init(|| Upstream::new(&self.cfg).expect("upstream client"))
                .clone()
        })
    }
}

async fn forward(p: web::Data<Proxy>, req: HttpRequest, body: Bytes) -> HttpResponse {
    let url = format!("{}{}", p.upstream, req.uri().path());
    let rb = p
        .client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    let res = match p.sender().send(rb).await {
        Ok(r) => r,
        Err(e) => return HttpResponse::BadGateway().body(e.to_string()),
    };
    let status = actix_web::http::StatusCode::from_u16(res.status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
    let ct = res.content_type().unwrap_or("application/json").to_string();
    HttpResponse::build(status).content_type(ct).streaming(
        res.into_stream()
            .map(|r| r.map_err(actix_web::error::ErrorBadGateway)),
    )
}

/// Starts the pass-through proxy in front of `upstream`; returns its port.
pub fn start_proxy(upstream: String, workers: usize) -> std::io::Result<u16> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg =
        tollgate::config::Config::from_map(&Default::default()).map_err(std::io::Error::other)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(std::io::Error::other)?;
    let data = web::Data::new(Proxy {
        client,
        cfg,
        upstream,
    });
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .default_service(web::to(forward))
    })
    .workers(workers)
    .tcp_nodelay(true)
    .backlog(4096)
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok(port)
}
