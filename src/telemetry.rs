//! Logging (tracing to stdout and, with `--log-dir`, to a daily file) and the per-request id.
//!
//! Every request gets an id in One API's format, returned as `X-Oneapi-Request-Id` and
//! `X-Request-Id`, recorded on the request's span (so every log line carries it) and available to
//! error renderers through a task-local; the relay adds the token, channel and model to the span.
//! The access log records method, path (never the query string, which may carry keys), status and
//! latency.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use rand::RngExt;
use tracing::Instrument;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

tokio::task_local! {
    static REQUEST_ID: RequestId;
}

/// The id of one request, cheap to clone.
#[derive(Clone, Debug)]
pub struct RequestId(pub std::sync::Arc<str>);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<RequestId> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}

/// One API's request id: `YYYYMMDDhhmmss` + nanoseconds + 8 random digits.
pub fn new_request_id() -> RequestId {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (y, mo, d, h, mi, s) = civil_from_unix(secs);
    let rnd: u32 = rand::rng().random_range(0..100_000_000);
    // `{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}{nanos}{rnd:08}`, without `format!`'s machinery
    // (1% of a relayed request's instructions).
    let mut id = String::with_capacity(40);
    for (v, width) in [
        (y.max(0) as u64, 4),
        (mo.into(), 2),
        (d.into(), 2),
        (h.into(), 2),
        (mi.into(), 2),
        (s.into(), 2),
        (now.subsec_nanos().into(), 1),
        (rnd.into(), 8),
    ] {
        push_padded(&mut id, v, width);
    }
    RequestId(id.into())
}

/// Appends `v` in decimal, zero-padded to at least `width` digits.
fn push_padded(out: &mut String, mut v: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut n = 0;
    while v > 0 || n < width {
        digits[n] = b'0' + (v % 10) as u8;
        v /= 10;
        n += 1;
    }
    out.extend(digits[..n].iter().rev().map(|&b| b as char));
}

/// Converts unix seconds to a UTC civil date and time (Howard Hinnant's algorithm).
pub fn civil_from_unix(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

/// A log writer for the background thread, which flushes whenever its queue runs dry.
fn batched<W: std::io::Write>(w: W) -> std::io::BufWriter<W> {
    std::io::BufWriter::with_capacity(64 * 1024, w)
}

/// Installs the global subscriber. Returns the guards that flush the writers on drop.
///
/// Lines are written by a background thread (not lossy: a full queue waits), so the access log
/// of every request costs its formatting only, not a `write` on the stdout lock; colours only
/// when stdout is a terminal. That thread writes what is queued into a buffer and flushes it when
/// the queue is empty: under load one `write` carries many lines (it was one system call per
/// request, a sixth of a relayed request's calls).
pub fn init(log_dir: Option<&Path>, only_one_file: bool, debug: bool) -> Vec<WorkerGuard> {
    let default = if debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{default},sqlx=warn,actix_server=warn,hyper=warn"))
    });
    let (out, out_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("tollgate-log")
        .finish(batched(std::io::stdout()));
    let stdout = fmt::layer()
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(out);
    let (file, guard) = match log_dir {
        Some(dir) => {
            let appender = if only_one_file {
                tracing_appender::rolling::never(dir, "tollgate.log")
            } else {
                tracing_appender::rolling::daily(dir, "tollgate.log")
            };
            let (writer, guard) = tracing_appender::non_blocking(batched(appender));
            (
                Some(
                    fmt::layer()
                        .fmt_fields(FileFields::default())
                        .with_ansi(false)
                        .with_target(false)
                        .with_writer(writer),
                ),
                Some(guard),
            )
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(stdout)
        .with(file)
        .try_init();
    std::iter::once(out_guard).chain(guard).collect()
}

/// The file layer's field formatter: `DefaultFields` under a type of its own. A span keeps its
/// formatted fields per formatter type, so with both layers on `DefaultFields`, a field recorded
/// after the span started (the relay's token, channel and model) was appended twice.
#[derive(Default)]
struct FileFields(fmt::format::DefaultFields);

impl<'w> fmt::FormatFields<'w> for FileFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        self.0.format_fields(writer, fields)
    }
}

static ONEAPI_HEADER: HeaderName = HeaderName::from_static("x-oneapi-request-id");
static REQUEST_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Middleware: request id, span, access log.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = new_request_id();
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_string();
    req.extensions_mut().insert(id.clone());
    // The relay fills in the token, the channel and the model (relay::forward::run), so every
    // line a relayed request logs, the access line included, says which they were.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        token_id = tracing::field::Empty,
        channel_id = tracing::field::Empty,
        model = tracing::field::Empty
    );
    let res = REQUEST_ID
        .scope(id.clone(), next.call(req).instrument(span.clone()))
        .await;
    let mut res = res?;
    if let Ok(v) = HeaderValue::from_str(&id.0) {
        res.headers_mut().insert(ONEAPI_HEADER.clone(), v.clone());
        res.headers_mut().insert(REQUEST_HEADER.clone(), v);
    }
    span.in_scope(|| {
        tracing::info!(
            %method,
            // Display, not Debug: a request target holds no control characters (the HTTP
            // parser refuses them), and Debug's escaping was most of the line's cost.
            %path,
            status = res.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "request"
        )
    });
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_unix(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_from_unix(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil_from_unix(1_700_000_000), (2023, 11, 14, 22, 13, 20));
    }

    #[test]
    fn padded_digits() {
        let mut s = String::new();
        for (v, w) in [(7, 2), (2026, 4), (0, 1), (123_456_789, 1), (42, 8), (0, 3)] {
            push_padded(&mut s, v, w);
            s.push('|');
        }
        assert_eq!(s, "07|2026|0|123456789|00000042|000|");
    }

    #[test]
    fn request_ids_are_unique_digits() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a.0, b.0);
        assert!(a.0.chars().all(|c| c.is_ascii_digit()));
        assert!(a.0.len() >= 22);
    }
}
