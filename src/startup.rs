//! Building and running the application: databases, migrations, bootstrap, the HTTP server and
//! its route families. `Application::build` binds the port first, so tests can ask for port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix_session::SessionMiddleware;
use actix_session::config::PersistentSession;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::{Key, SameSite, time::Duration as CookieDuration};
use actix_web::dev::Server;
use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha512};

use crate::config::{Config, NodeType};
use crate::error::{ApiError, AppError, V1Error, from_payload_error};
use crate::options::OptionStore;
use crate::state::AppState;
use crate::store::{self, Db};
use crate::{api, bootstrap, telemetry};

/// Connects the databases and, on the master, migrates them and creates root.
pub async fn prepare_databases(cfg: &Config) -> anyhow::Result<(Db, Db)> {
    let (db, log_db) = connect_databases(cfg, cfg.node_type == NodeType::Master).await?;
    if cfg.node_type == NodeType::Master {
        bootstrap::ensure_root(&db, cfg).await?;
    }
    Ok((db, log_db))
}

/// Connects the main and log databases (the same one unless `LOG_SQL_DSN`), migrating both when
/// asked.
pub async fn connect_databases(cfg: &Config, migrate: bool) -> anyhow::Result<(Db, Db)> {
    let db = Db::connect_main(cfg).await?;
    let log_db = Db::connect_logs(cfg).await?;
    if migrate {
        db.migrate().await?;
        if let Some(l) = &log_db {
            l.migrate().await?;
        }
    }
    Ok((db.clone(), log_db.unwrap_or(db)))
}

/// The upstream HTTP client: one pool for every worker, rustls with ring, no system proxy
/// (only `RELAY_PROXY`), timeouts from the configuration.
pub fn http_client(cfg: &Config) -> anyhow::Result<reqwest::Client> {
    use crate::relay::upstream;
    install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(upstream::POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(upstream::POOL_MAX_IDLE_PER_HOST)
        .connect_timeout(upstream::CONNECT_TIMEOUT);
    if let Some(t) = cfg.relay_idle_timeout {
        b = b.read_timeout(t);
    }
    if let Some(p) = &cfg.relay_proxy {
        b = b.proxy(reqwest::Proxy::all(p)?);
    }
    Ok(b.build()?)
}

/// The listening socket's backlog: the kernel caps it at `net.core.somaxconn` (4096 on current
/// Linux), as it does for Go's listeners in One API.
const LISTEN_BACKLOG: i32 = 65_535;

/// Binds the server's port like `TcpListener::bind`, but with a backlog of [`LISTEN_BACKLOG`]
/// instead of std's 128: past 128 connections waiting for `accept` (a burst of new clients
/// while the workers are busy), the kernel drops further handshakes and those clients wait for
/// TCP's retransmission, a second or more.
pub fn bind_listener(host: &str, port: u16) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::ToSocketAddrs;
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        let bound = (|| {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            // As std does on Unix: a restart may bind while old connections sit in TIME_WAIT.
            #[cfg(unix)]
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(LISTEN_BACKLOG)?;
            Ok::<_, std::io::Error>(TcpListener::from(socket))
        })();
        match bound {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("no address for {host}"),
        )
    }))
}

/// Makes ring the process's rustls provider (idempotent); every reqwest client needs one.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The key that signs session cookies: derived from `SESSION_SECRET`, or random (with a warning)
/// when unset, in which case sessions end at restart and do not cross nodes.
fn session_key(cfg: &Config) -> Key {
    match &cfg.session_secret {
        Some(s) => Key::from(&Sha512::digest(s.expose_secret().as_bytes())),
        None => {
            tracing::warn!(
                "SESSION_SECRET is not set: using a random one; sessions will not survive a \
                 restart or work across nodes"
            );
            Key::generate()
        }
    }
}

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
}

impl Application {
    pub async fn build(cfg: Config) -> anyhow::Result<Self> {
        let (db, log_db) = prepare_databases(&cfg).await?;
        let listener = bind_listener(&cfg.host, cfg.port)?;
        Self::build_with(cfg, db, log_db, listener).await
    }

    /// Builds the server on an already bound listener and prepared databases.
    pub async fn build_with(
        cfg: Config,
        db: Db,
        log_db: Db,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let options = OptionStore::new(Default::default());
        options.reload(&db).await?;
        let relay = crate::relay::RelayState::new(&cfg, &db, &log_db).await?;
        let state = AppState {
            relay,
            http: http_client(&cfg)?,
            http_id: AppState::next_http_id(),
            trusted_proxies: crate::client_ip::TrustedProxies::new(&cfg.trusted_proxies),
            cfg: Arc::new(cfg),
            db,
            log_db,
            options,
            start_time: store::now(),
        };
        crate::relay::spawn_sync(state.clone());
        if state.cfg.node_type == NodeType::Master {
            crate::jobs::spawn(state.clone());
        }
        let port = listener.local_addr()?.port();
        let key = session_key(&state.cfg);
        let data = web::Data::new(state.clone());
        crate::metrics::handle();
        let limits = web::Data::new(api::rate_limit::RateLimits::new(
            &state.cfg,
            state.trusted_proxies.clone(),
        ));
        limits.spawn_cleanup();
        let workers = state.cfg.workers;
        let mut server = HttpServer::new(move || {
            // Runs on each worker thread: its relay requests talk to Redis on a connection of
            // their own thread.
            if let Some(q) = &data.relay.redis {
                q.pool().attach_here();
            }
            App::new()
                .app_data(data.clone())
                .app_data(limits.clone())
                .wrap(from_fn(api::rate_limit::limit))
                .wrap(from_fn(crate::metrics::track))
                .wrap(from_fn(telemetry::request_context))
                .configure(|cfg| configure(cfg, session(key.clone())))
        })
        // SSE writes are small and frequent: without TCP_NODELAY, Nagle holds each chunk until
        // the client ACKs the last one (up to 40 ms with delayed ACKs).
        .tcp_nodelay(true)
        .shutdown_timeout(30)
        .listen(listener)?;
        if let Some(w) = workers {
            server = server.workers(w);
        }
        Ok(Application {
            port,
            server: server.run(),
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT/SIGTERM (actix handles both and drains open requests).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await?;
        // Every accepted request is billed: write out the queued settlements.
        self.state.relay.flush().await;
        tracing::info!("server stopped");
        Ok(())
    }

    /// The server future and a handle, for callers that stop it themselves.
    pub fn into_server(self) -> Server {
        self.server
    }
}

fn api_json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let too_large = matches!(
        err,
        JsonPayloadError::Overflow { .. }
            | JsonPayloadError::OverflowKnownLength { .. }
            | JsonPayloadError::Payload(PayloadError::Overflow)
    );
    ApiError(from_payload_error(&err, too_large)).into()
}

fn v1_json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let too_large = matches!(
        err,
        JsonPayloadError::Overflow { .. }
            | JsonPayloadError::OverflowKnownLength { .. }
            | JsonPayloadError::Payload(PayloadError::Overflow)
    );
    V1Error(from_payload_error(&err, too_large)).into()
}

/// The dashboard's cookie session, on `/api` only: the relay authenticates by token and does not
/// pay for cookie parsing and signing.
fn session(key: Key) -> SessionMiddleware<CookieSessionStore> {
    SessionMiddleware::builder(CookieSessionStore::default(), key)
        .cookie_name("session".into())
        .cookie_secure(false)
        .cookie_same_site(SameSite::Lax)
        .session_lifecycle(PersistentSession::default().session_ttl(CookieDuration::days(30)))
        .build()
}

/// All routes. Each family installs its own extractor error handlers and 404 so that every
/// error comes back in that family's format.
pub fn configure(cfg: &mut web::ServiceConfig, session: SessionMiddleware<CookieSessionStore>) {
    cfg.route("/metrics", web::get().to(crate::metrics::scrape))
        .route("/api/openapi.json", web::get().to(crate::openapi::serve))
        .service(
            web::scope("/api")
                .app_data(
                    web::JsonConfig::default()
                        .limit(2 * 1024 * 1024)
                        .error_handler(api_json_error),
                )
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError(AppError::bad_request(format!("invalid query: {e}"))).into()
                }))
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    ApiError(AppError::bad_request(format!("invalid path: {e}"))).into()
                }))
                .configure(api::configure)
                .default_service(web::to(api_not_found))
                .wrap(session),
        )
        .service(
            web::scope("/v1")
                .app_data(
                    web::JsonConfig::default()
                        .limit(32 * 1024 * 1024)
                        .error_handler(v1_json_error),
                )
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    V1Error(AppError::bad_request(format!("invalid query: {e}"))).into()
                }))
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    V1Error(AppError::bad_request(format!("invalid path: {e}"))).into()
                }))
                .configure(crate::relay::configure)
                .default_service(web::to(v1_not_found))
                .wrap(from_fn(crate::relay::handlers::cors)),
        )
        .configure(crate::relay::configure_dashboard)
        .configure(crate::relay::configure_native)
        .default_service(web::to(crate::web::index));
}

async fn api_not_found(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "success": false,
        "message": format!("Invalid URL ({} {})", req.method(), req.path()),
    }))
}

async fn v1_not_found(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "error": {
            "message": format!("Invalid URL ({} {})", req.method(), req.path()),
            "type": "invalid_request_error",
            "param": "",
            "code": "",
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The protocols a TLS client offers (ALPN), read from its ClientHello by a server that
    /// stops there.
    /// `send` makes a request to the URL it is given and tells whether it succeeded.
    fn offered_protocols<F: Future<Output = bool>>(
        send: impl FnOnce(String) -> F,
    ) -> Option<Vec<String>> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("https://{addr}/");
        let server = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut acceptor = rustls::server::Acceptor::default();
            loop {
                assert!(acceptor.read_tls(&mut sock).unwrap() > 0, "no ClientHello");
                if let Some(hello) = acceptor.accept().map_err(|(e, _)| e).unwrap() {
                    let alpn = hello.client_hello().alpn();
                    return alpn
                        .map(|a| a.map(|p| String::from_utf8_lossy(p).into_owned()).collect());
                }
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The handshake cannot finish (the server only reads): the request fails, as expected.
        assert!(!rt.block_on(send(url)));
        // A client that never connected left the server in `accept`: this ends it ("no
        // ClientHello") instead of hanging the test. Refused when the server is done already.
        let _ = std::net::TcpStream::connect(addr);
        server.join().unwrap()
    }

    /// Connections wait in the accept queue while the workers are busy: far more than std's 128
    /// must fit (here 300, none accepted), or the kernel drops the rest's handshakes and their
    /// requests wait for TCP's retransmissions, a second or more.
    #[tokio::test]
    async fn a_burst_of_connections_fits_the_accept_queue() {
        let listener = bind_listener("127.0.0.1", 0).unwrap();
        let addr = listener.local_addr().unwrap();
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4096);
        let n = 300.min(somaxconn);
        let connects = (0..n).map(|_| async move {
            let wait = std::time::Duration::from_secs(3);
            tokio::time::timeout(wait, tokio::net::TcpStream::connect(addr)).await
        });
        let done = futures_util::future::join_all(connects).await;
        let connected = done.iter().filter(|c| matches!(c, Ok(Ok(_)))).count();
        assert_eq!(connected, n, "connections queued without an accept");
        drop(listener);
    }

    /// Offering `h2` would let a provider multiplex every stream of a worker onto one
    /// connection, and hyper's pool does not open a second one at the provider's stream limit:
    /// the requests after it would wait for a stream to end.
    #[test]
    fn upstream_calls_offer_http1_only() {
        let cfg = Config::from_map(&Default::default()).unwrap();
        let client = http_client(&cfg).unwrap();
        let timeout = std::time::Duration::from_secs(5);
        let reqwest = offered_protocols(|url| async {
            client.get(url).timeout(timeout).send().await.is_ok()
        });
        assert_eq!(reqwest, Some(vec!["http/1.1".to_string()]));
        // The relay's own client (src/relay/upstream.rs).
        let relay = offered_protocols(|url| async {
            let up = crate::relay::upstream::Upstream::new(&cfg).unwrap();
            up.send(client.get(url).timeout(timeout)).await.is_ok()
        });
        assert_eq!(relay, Some(vec!["http/1.1".to_string()]));
    }
}
