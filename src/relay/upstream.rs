//! The relay's upstream HTTP client: hyper-util's pooled HTTP/1.1 client over rustls, one per
//! actix worker thread ([`crate::state::AppState::upstream`]).
//!
//! Requests are still built with reqwest's `RequestBuilder` (every adaptor and the channel test
//! build them), but sent here: reqwest always installs tower-http's redirect layer, which parses
//! the URL twice a request (5.3% of a relayed request's instructions, docs/benchmarks.md), and
//! it does not pass on hyper's read-buffer size, which is most of what an open stream holds.
//! With `RELAY_PROXY` the request goes through reqwest (its proxy support) instead.
//!
//! What reqwest did and this keeps: `Accept: */*` when the request has none, the connect
//! timeout (10 s), `RELAY_IDLE_TIMEOUT` as a read timeout (the answer's head and each body
//! read), a request's own timeout (`RequestBuilder::timeout`, `RELAY_TIMEOUT` for non-stream
//! calls) over the head and the whole body, ALPN `http/1.1` only, the platform's certificate
//! verifier. What it does not: redirects are not followed (an API answer is never one; a 3xx
//! reaches the relay as an upstream error).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, TryStreamExt};
use hyper::body::Body as _;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::config::Config;

/// An answer's body as a stream of its data.
pub(crate) type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;

/// hyper's read buffer per upstream connection. Its default strategy grows the buffer to 8 KB
/// and keeps it for the connection's life, the largest single item of an open stream's memory
/// (docs/benchmarks.md); SSE events and API answers arrive in reads far smaller than this, and a
/// larger body just takes more reads.
const READ_BUFFER: usize = 4096;

/// How long an upstream TCP (and TLS) connect may take; with the two below, reqwest's client
/// (`startup::http_client`) is pooled the same way.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle pooled upstream connection is kept.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle pooled connections kept per host.
pub(crate) const POOL_MAX_IDLE_PER_HOST: usize = 256;

/// An upstream call failed. Its message never holds the URL (a query may carry a key).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", chain(.0))]
    Client(hyper_util::client::legacy::Error),
    #[error("{}", chain(.0.as_ref()))]
    Body(Box<dyn std::error::Error + Send + Sync>),
    #[error("{}", quiet(.0))]
    Reqwest(reqwest::Error),
    #[error("operation timed out")]
    Timeout,
}

impl Error {
    /// A timeout (connect, read, or the request's own), as opposed to a refused or broken
    /// connection.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout => true,
            Error::Reqwest(e) => e.is_timeout(),
            Error::Client(e) => timed_out(e),
            Error::Body(e) => timed_out(e.as_ref()),
        }
    }
}

/// Whether an io::Error of kind `TimedOut` is in `e`'s source chain (hyper-util's connect
/// timeout is one).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// `e` and its sources, `: `-separated (hyper's own message is only "client error (Connect)").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

/// A reqwest error without the URL.
pub(crate) fn quiet(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<upstream>");
    }
    s
}

/// The upstream client of one worker thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Shared: the client is cloned for each request (`AppState::upstream`), and hyper-util's
    /// is 336 bytes of handles.
    inner: Arc<Inner>,
    /// `RELAY_IDLE_TIMEOUT`: the longest wait for any read.
    idle: Option<Duration>,
}

// One per worker thread, behind an Arc: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Inner {
    Direct(Client<HttpsConnector<HttpConnector>, reqwest::Body>),
    Reqwest(reqwest::Client),
}

impl Upstream {
    /// The client `cfg` asks for: direct, or reqwest's through `RELAY_PROXY`. Call on the
    /// runtime that will drive its connections (its pool spawns them there).
    pub fn new(cfg: &Config) -> anyhow::Result<Self> {
        let inner = if cfg.relay_proxy.is_some() {
            Inner::Reqwest(crate::startup::http_client(cfg)?)
        } else {
            Inner::Direct(direct_client()?)
        };
        Ok(Self {
            inner: Arc::new(inner),
            idle: cfg.relay_idle_timeout,
        })
    }

    /// Sends through `client` (reqwest's own pool and settings).
    pub fn reqwest(client: reqwest::Client, cfg: &Config) -> Self {
        Self {
            inner: Arc::new(Inner::Reqwest(client)),
            idle: cfg.relay_idle_timeout,
        }
    }

    /// Sends `rb` (its client is not used). The head of the answer is awaited here; its body is
    /// read with [`Response::bytes`] or [`Response::into_stream`], under the same timeouts.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Response, Error> {
        let req = rb.build().map_err(Error::Reqwest)?;
        let now = Instant::now();
        let deadline = req.timeout().map(|t| now + *t);
        let head_by = earliest(deadline, self.idle.map(|t| now + t));
        let resp = match self.inner.as_ref() {
            Inner::Direct(client) => {
                let mut req = http::Request::try_from(req).map_err(Error::Reqwest)?;
                req.headers_mut()
                    .entry(http::header::ACCEPT)
                    .or_insert(http::HeaderValue::from_static("*/*"));
                let resp = within(head_by, client.request(req))
                    .await?
                    .map_err(Error::Client)?;
                resp.map(Body::Direct)
            }
            Inner::Reqwest(client) => {
                let resp = within(head_by, client.execute(req))
                    .await?
                    .map_err(Error::Reqwest)?;
                http::Response::from(resp).map(Body::Reqwest)
            }
        };
        let (head, body) = resp.into_parts();
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body: Reader::new(body, deadline, self.idle),
        })
    }
}

/// hyper-util's client: HTTP/1.1 only, rustls with the process's provider and the platform's
/// verifier (as reqwest's `rustls-no-provider` builds it), pooled like `startup::http_client`.
fn direct_client() -> anyhow::Result<Client<HttpsConnector<HttpConnector>, reqwest::Body>> {
    use rustls_platform_verifier::BuilderVerifierExt;
    crate::startup::install_crypto_provider();
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    // Never `h2`: see docs/architecture.md, "Upstream connections".
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let connector = HttpsConnector::from((http, tls));
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .http1_read_buf_exact_size(READ_BUFFER)
        .build(connector))
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `fut`, or [`Error::Timeout`] once `by` has passed.
async fn within<F: Future>(by: Option<Instant>, fut: F) -> Result<F::Output, Error> {
    match by {
        Some(by) => tokio::time::timeout_at(by, fut)
            .await
            .map_err(|_| Error::Timeout),
        None => Ok(fut.await),
    }
}

/// An upstream answer whose head has arrived.
#[derive(Debug)]
pub struct Response {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    body: Reader,
}

impl Response {
    /// The `Content-Type` header, when it is text.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// The whole body.
    pub async fn bytes(mut self) -> Result<Bytes, Error> {
        let Some(first) = self.body.next().await.transpose()? else {
            return Ok(Bytes::new());
        };
        let Some(second) = self.body.next().await.transpose()? else {
            return Ok(first);
        };
        let mut all = BytesMut::with_capacity(first.len() + second.len());
        all.extend_from_slice(&first);
        all.extend_from_slice(&second);
        while let Some(chunk) = self.body.next().await.transpose()? {
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }

    /// The body as it arrives.
    pub fn into_stream(self) -> ByteStream {
        Box::pin(self.body)
    }
}

#[derive(Debug)]
enum Body {
    Direct(hyper::body::Incoming),
    Reqwest(reqwest::Body),
}

/// Reads a body's data frames under the idle timeout and the request's deadline.
#[derive(Debug)]
struct Reader {
    body: Body,
    deadline: Option<Instant>,
    idle: Option<Duration>,
    /// When the body last gave a frame (the idle timeout counts from there).
    last: Instant,
    /// One timer for the whole body, re-armed only when it fires early: a timer per read
    /// (registered in tokio's wheel and removed again) was 3% of a streamed request's
    /// instructions.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl Reader {
    fn new(body: Body, deadline: Option<Instant>, idle: Option<Duration>) -> Self {
        Reader {
            body,
            deadline,
            idle,
            last: Instant::now(),
            timer: None,
            done: false,
        }
    }

    /// The instant the body times out at, as of now.
    fn limit(&self) -> Option<Instant> {
        earliest(self.deadline, self.idle.map(|t| self.last + t))
    }

    /// The next non-empty data frame; `None` at the end (or after an error).
    async fn next(&mut self) -> Option<Result<Bytes, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Ready with a timeout error once the limit has passed; re-arms a timer that fired before
    /// it (the limit moves later with every frame).
    fn poll_timeout(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Error> {
        use std::task::Poll;
        let Some(by) = self.limit() else {
            return Poll::Pending;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(by)));
        while timer.as_mut().poll(cx).is_ready() {
            if timer.deadline() >= by {
                return Poll::Ready(Error::Timeout);
            }
            timer.as_mut().reset(by);
        }
        Poll::Pending
    }
}

impl Stream for Reader {
    type Item = Result<Bytes, Error>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        while !this.done {
            let frame = match &mut this.body {
                Body::Direct(b) => Pin::new(b)
                    .poll_frame(cx)
                    .map(|f| f.map(|f| f.map_err(|e| Error::Body(e.into())))),
                Body::Reqwest(b) => Pin::new(b)
                    .poll_frame(cx)
                    .map(|f| f.map(|f| f.map_err(Error::Reqwest))),
            };
            match frame {
                Poll::Ready(Some(Ok(frame))) => {
                    if this.idle.is_some() {
                        this.last = Instant::now();
                    }
                    match frame.into_data() {
                        Ok(data) if !data.is_empty() => return Poll::Ready(Some(Ok(data))),
                        // Empty data, or trailers: nothing for the client.
                        _ => continue,
                    }
                }
                Poll::Ready(None) => this.done = true,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Pending => {
                    return match this.poll_timeout(cx) {
                        Poll::Ready(e) => {
                            this.done = true;
                            Poll::Ready(Some(Err(e)))
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
        Poll::Ready(None)
    }
}

/// A reqwest body stream (the exchanges' own calls) as a [`ByteStream`].
pub(crate) fn reqwest_stream(resp: reqwest::Response) -> ByteStream {
    Box::pin(resp.bytes_stream().map_err(Error::Reqwest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn cfg(vars: &[(&str, &str)]) -> Config {
        Config::from_pairs(vars).unwrap()
    }

    async fn server(answer: Vec<&'static str>) -> (String, tokio::sync::oneshot::Receiver<String>) {
        server_with_gap(answer, Duration::from_millis(100)).await
    }

    /// A server that reads one request head, hands it over, then writes `answer`'s parts with
    /// `gap` between them (and holds the connection open for 3 s, past the timeouts tested).
    async fn server_with_gap(
        answer: Vec<&'static str>,
        gap: Duration,
    ) -> (String, tokio::sync::oneshot::Receiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            let _ = tx.send(String::from_utf8_lossy(&got).into_owned());
            for part in answer {
                tokio::time::sleep(gap).await;
                sock.write_all(part.as_bytes()).await.unwrap();
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        });
        (url, rx)
    }

    fn post(url: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new().post(url).body("{}")
    }

    #[tokio::test]
    async fn a_body_in_several_reads_is_whole_and_the_request_as_reqwest_sent_it() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        let (url, request) = server(vec![head, "3\r\nabc\r\n", "2\r\nde\r\n0\r\n\r\n"]).await;
        let up = Upstream::new(&cfg(&[])).unwrap();
        let resp = up.send(post(&format!("{url}/v1/chat"))).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.content_type(), Some("application/json"));
        assert_eq!(resp.bytes().await.unwrap(), "abcde");
        let request = request.await.unwrap().to_ascii_lowercase();
        assert!(
            request.starts_with("post /v1/chat http/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\naccept: */*\r\n"), "{request}");
        assert!(request.contains("\r\ncontent-length: 2\r\n"), "{request}");
        assert!(
            request.contains(&format!("\r\nhost: {}\r\n", &url[7..])),
            "{request}"
        );
    }

    /// `RELAY_IDLE_TIMEOUT` bounds the wait for the head and for each read of the body; a
    /// request's own timeout bounds the whole body.
    #[tokio::test]
    async fn idle_and_request_timeouts() {
        let up = Upstream::new(&cfg(&[("RELAY_IDLE_TIMEOUT", "1")])).unwrap();
        // No head at all.
        let (url, _rx) = server(vec![]).await;
        let started = Instant::now();
        let e = up.send(post(&url)).await.unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // A head, then a body that stops.
        let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        let (url, _rx) = server(vec![head, "1\r\na\r\n"]).await;
        let resp = up.send(post(&url)).await.unwrap();
        let mut stream = resp.into_stream();
        use futures_util::StreamExt;
        assert_eq!(stream.next().await.unwrap().unwrap(), "a");
        assert!(stream.next().await.unwrap().unwrap_err().is_timeout());
        assert!(stream.next().await.is_none(), "ends after the error");
        // Reads 0.6 s apart, 2.4 s in all: the idle timeout counts from the last one.
        let parts = vec![head, "1\r\na\r\n", "1\r\nb\r\n", "1\r\nc\r\n0\r\n\r\n"];
        let (url, _rx) = server_with_gap(parts, Duration::from_millis(600)).await;
        let resp = up.send(post(&url)).await.unwrap();
        assert_eq!(resp.bytes().await.unwrap(), "abc");
        // A request timeout (RELAY_TIMEOUT for non-stream calls) shorter than the body.
        let (url, _rx) = server(vec![head, "1\r\na\r\n", "1\r\nb\r\n", "1\r\nc\r\n"]).await;
        let rb = post(&url).timeout(Duration::from_millis(250));
        let resp = up.send(rb).await.unwrap();
        assert!(resp.bytes().await.unwrap_err().is_timeout());
    }

    #[tokio::test]
    async fn a_refused_connect_is_not_a_timeout_and_its_message_has_no_url() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let up = Upstream::new(&cfg(&[])).unwrap();
        let url = format!("http://127.0.0.1:{port}/v1beta/models?key=sk-secret-key");
        let e = up.send(post(&url)).await.unwrap_err();
        assert!(!e.is_timeout());
        let msg = e.to_string();
        assert!(msg.contains("refused"), "{msg}");
        assert!(
            !msg.contains("sk-secret-key") && !msg.contains("127.0.0.1"),
            "{msg}"
        );
    }
}
