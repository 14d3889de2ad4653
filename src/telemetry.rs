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
use tracing_subscriber::filter::Targets;
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
        // Writing to a `String` cannot fail.
        let _ = push_padded(&mut id, v, width);
    }
    RequestId(id.into())
}

/// Appends `v` in decimal, zero-padded to at least `width` digits.
fn push_padded(out: &mut impl std::fmt::Write, v: u64, width: usize) -> std::fmt::Result {
    let mut digits = [b'0'; 20];
    let len = (v.checked_ilog10().unwrap_or(0) as usize + 1).max(width);
    let start = digits.len() - len;
    put_digits(&mut digits[start..], v);
    // Only ASCII digits were written.
    out.write_str(std::str::from_utf8(&digits[start..]).unwrap_or_default())
}

/// Fills `buf` with the last `buf.len()` decimal digits of `v`, zero-padded.
fn put_digits(buf: &mut [u8], mut v: u64) {
    for b in buf.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
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

/// The log lines' timestamp, `2026-12-02T01:30:03.123456Z` as tracing-subscriber's default timer
/// writes it, put together in place: its `Display` goes through `write!` seven times per line
/// (about 860 instructions more per line, 0.3% of a relayed request's).
struct UtcTime;

impl fmt::time::FormatTime for UtcTime {
    fn format_time(&self, w: &mut fmt::format::Writer<'_>) -> std::fmt::Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        write_utc(w, now.as_secs() as i64, now.subsec_micros())
    }
}

/// Writes `secs` and `micros` after the epoch as RFC 3339 with microseconds (years 0 to 9999),
/// digits put in place in one buffer and written once: the line's writer is a `dyn Write`, and
/// a call per part (fourteen) cost 1,850 instructions a line, 0.8% of a relayed request's.
fn write_utc(out: &mut impl std::fmt::Write, secs: i64, micros: u32) -> std::fmt::Result {
    let (y, mo, d, h, mi, s) = civil_from_unix(secs);
    let mut buf = *b"0000-00-00T00:00:00.000000Z";
    for (at, width, v) in [
        (0, 4, y.clamp(0, 9999) as u64),
        (5, 2, mo.into()),
        (8, 2, d.into()),
        (11, 2, h.into()),
        (14, 2, mi.into()),
        (17, 2, s.into()),
        (20, 6, micros.min(999_999).into()),
    ] {
        put_digits(&mut buf[at..at + width], v);
    }
    // Only ASCII was written.
    out.write_str(std::str::from_utf8(&buf).unwrap_or_default())
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
    let (targets, env_filter) = level_filter(std::env::var("RUST_LOG").ok().as_deref(), debug);
    let (out, out_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("tollgate-log")
        .finish(batched(std::io::stdout()));
    let stdout = fmt::layer()
        .fmt_fields(PlainFields)
        .with_timer(UtcTime)
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
                        .with_timer(UtcTime)
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
        .with(targets)
        .with(env_filter)
        .with(stdout)
        .with(file)
        .try_init();
    std::iter::once(out_guard).chain(guard).collect()
}

/// The filter for `RUST_LOG` (or the default): exactly one of the two is set.
///
/// A list of `target=level` directives (the default, and most `RUST_LOG`s) is a [`Targets`]
/// filter; `EnvFilter` only serves span and field directives (`[...]`), which need it. For those,
/// `EnvFilter` takes a read lock shared by every thread on each entry into and exit from a span,
/// even when it has no such directive: that is every poll of every request's future.
fn level_filter(rust_log: Option<&str>, debug: bool) -> (Option<Targets>, Option<EnvFilter>) {
    let default = if debug { "debug" } else { "info" };
    let default = format!("{default},sqlx=warn,actix_server=warn,hyper=warn");
    let spec = rust_log.map(str::trim).filter(|s| !s.is_empty());
    if let Some(spec) = spec.filter(|s| s.contains('['))
        && let Ok(f) = EnvFilter::try_new(spec)
    {
        return (None, Some(f));
    }
    let parsed = spec.and_then(|spec| {
        spec.split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect::<Vec<_>>()
            .join(",")
            .parse::<Targets>()
            .ok()
    });
    match parsed {
        Some(t) => (Some(t), None),
        // As before: a `RUST_LOG` that does not parse leaves the default in force.
        None => (default.parse().ok(), None),
    }
}

/// Fields as `name=value`, space-separated, the message first and without its name: what
/// `DefaultFields` writes when nothing is coloured, without its styling of every field's name and
/// `=` (20 calls a relayed request into the ANSI painter, 2.5% of its instructions, even with
/// colours off). On a terminal the level and span names keep their colours.
#[derive(Default)]
struct PlainFields;

impl<'w> fmt::FormatFields<'w> for PlainFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut v = PlainVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct PlainVisitor<'w> {
    writer: fmt::format::Writer<'w>,
    first: bool,
    result: std::fmt::Result,
}

impl PlainVisitor<'_> {
    /// What goes before the next field: nothing before the first.
    fn separator(&mut self) -> &'static str {
        if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        }
    }

    /// Writes the separator and `name=` of a field other than the message: pieces written as
    /// they are, only a value goes through `fmt`.
    fn name(&mut self, field: &tracing::field::Field) -> std::fmt::Result {
        let pad = self.separator();
        let name = field.name();
        let w = &mut self.writer;
        w.write_str(pad)
            .and_then(|()| w.write_str(name.strip_prefix("r#").unwrap_or(name)))
            .and_then(|()| w.write_str("="))
    }

    /// `name=digits`, as `record_debug` writes an integer, without `fmt` (the access line has
    /// two: the status and the latency).
    fn record_digits(&mut self, field: &tracing::field::Field, minus: bool, v: u64) {
        if self.result.is_err() {
            return;
        }
        self.result = self.name(field).and_then(|()| {
            let w = &mut self.writer;
            w.write_str(if minus { "-" } else { "" })
                .and_then(|()| push_padded(w, v, 1))
        });
    }
}

impl tracing::field::Visit for PlainVisitor<'_> {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "message" {
            self.record_debug(field, &value)
        } else {
            self.record_digits(field, false, value)
        }
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        if field.name() == "message" {
            self.record_debug(field, &value)
        } else {
            self.record_digits(field, value < 0, value.unsigned_abs())
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"))
        } else {
            self.record_debug(field, &value)
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if self.result.is_err() {
            return;
        }
        self.result = if field.name() == "message" {
            // Control characters escaped, as tracing-subscriber does: a message may carry text
            // from a request, which must not drive the terminal that shows the log.
            let pad = self.separator();
            let w = &mut self.writer;
            w.write_str(pad)
                .and_then(|()| write!(Escaped(w), "{value:?}"))
        } else {
            self.name(field)
                .and_then(|()| write!(self.writer, "{value:?}"))
        };
    }
}

/// Writes through with the ANSI and C1 control characters escaped (tracing-subscriber's rule).
struct Escaped<'a, W>(&'a mut W);

impl<W: std::fmt::Write> std::fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let risky = |c: char| {
            matches!(
                c,
                '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
            )
        };
        if !s.contains(risky) {
            return self.0.write_str(s);
        }
        for c in s.chars() {
            match c {
                c if !risky(c) => self.0.write_char(c)?,
                c if c.is_ascii() => write!(self.0, "\\x{:02x}", c as u32)?,
                c => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
        }
        Ok(())
    }
}

/// The file layer's field formatter: [`PlainFields`] under a type of its own. A span keeps its
/// formatted fields per formatter type, so with both layers on one type, a field recorded after
/// the span started (the relay's token, channel and model) was appended twice.
#[derive(Default)]
struct FileFields(PlainFields);

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
    fn plain_directives_filter_without_env_filter() {
        use tracing::Level;
        let targets = |rust_log, debug| match level_filter(rust_log, debug) {
            (Some(t), None) => t,
            other => panic!("expected Targets for {rust_log:?}, got {other:?}"),
        };
        let t = targets(None, false);
        assert!(t.would_enable("tollgate::relay", &Level::INFO));
        assert!(!t.would_enable("tollgate::relay", &Level::DEBUG));
        assert!(!t.would_enable("sqlx::query", &Level::INFO));
        assert!(t.would_enable("sqlx::query", &Level::WARN));
        assert!(targets(None, true).would_enable("tollgate", &Level::DEBUG));
        let t = targets(Some(" warn , tollgate::billing=trace "), false);
        assert!(t.would_enable("tollgate::billing::ledger", &Level::TRACE));
        assert!(!t.would_enable("tollgate::relay", &Level::INFO));
        assert!(t.would_enable("tollgate::relay", &Level::WARN));
        // One that does not parse leaves the default.
        let t = targets(Some("sqlx=loud"), false);
        assert!(t.would_enable("tollgate", &Level::INFO));
        assert!(!t.would_enable("sqlx", &Level::INFO));
        // Span and field directives need EnvFilter.
        assert!(matches!(
            level_filter(Some("info,tollgate[request{model=x}]=debug"), false),
            (None, Some(_))
        ));
    }

    /// Lines written with `fields`, without timestamps: a span with a field recorded later, and
    /// events with strings, numbers, a message with control characters and a raw identifier.
    fn lines_with<F>(fields: F) -> String
    where
        F: for<'w> fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(fields)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                request_id = %"2026120111",
                model = tracing::field::Empty
            );
            span.record("model", "gpt-4o \"mini\"");
            span.in_scope(|| {
                tracing::info!(method = %"POST", path = %"/v1/chat", status = 200u16, "request");
                tracing::warn!(r#type = 2, error = %"no \x1b[31m", "bad \x1b[2J\u{9b} text {}", 7);
                tracing::info!(
                    ok = true,
                    ratio = 1.5,
                    n = -42i64,
                    m = i64::MIN,
                    big = u64::MAX,
                    zero = 0u64,
                    ""
                );
            });
        });
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn plain_fields_write_what_default_fields_write_uncoloured() {
        let plain = lines_with(PlainFields);
        assert_eq!(plain, lines_with(fmt::format::DefaultFields::new()));
        assert!(plain.contains("bad \\x1b[2J\\u{9b} text 7"), "{plain}");
        assert!(plain.contains("model=\"gpt-4o \\\"mini\\\"\""), "{plain}");
        assert_eq!(plain.lines().count(), 3);
    }

    #[test]
    fn timestamps_as_the_default_timer_writes_them() {
        let utc_timestamp = |secs, micros| {
            let mut out = String::new();
            write_utc(&mut out, secs, micros).unwrap();
            out
        };
        assert_eq!(utc_timestamp(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            utc_timestamp(1_764_639_003, 123_456),
            "2025-12-02T01:30:03.123456Z"
        );
        assert_eq!(
            utc_timestamp(951_825_599, 999_999),
            "2000-02-29T11:59:59.999999Z"
        );
        // The default timer's line, whatever second it is: the same shape.
        let mut line = String::new();
        fmt::time::FormatTime::format_time(&UtcTime, &mut fmt::format::Writer::new(&mut line))
            .unwrap();
        let mut default = String::new();
        fmt::time::FormatTime::format_time(
            &fmt::time::SystemTime,
            &mut fmt::format::Writer::new(&mut default),
        )
        .unwrap();
        let shape = |s: &str| s.replace(|c: char| c.is_ascii_digit(), "0");
        assert_eq!(shape(&line), shape(&default));
    }

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
            push_padded(&mut s, v, w).unwrap();
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
