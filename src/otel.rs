//! Spans sent to an OpenTelemetry collector (`otel_exporter`), as nginx's
//! `otel_exporter`: each traced request (see [`crate::trace_context`]) is
//! one span, the proxy's, sent in batches over OTLP/HTTP with JSON
//! bodies by a thread of its own, so that a request never waits for the
//! collector. A collector that is down or slow loses spans, never
//! requests: a full queue drops the newest.

use crate::access_log::Record;
use crate::config::Config;
use crate::json;
use crate::metrics::Metrics;
use crate::throttle::OnceAMinute;
use crate::trace_context::TraceContext;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Spans waiting to be sent; past this many, new ones are dropped.
const QUEUE: usize = 4096;
/// The most spans one request to the collector carries.
const BATCH: usize = 512;
/// How long a span may wait for its batch to fill.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// The longest an exchange with the collector may take.
const EXCHANGE: Duration = Duration::from_secs(5);

/// Where spans go: `http://host[:port][/path]` (OTLP/HTTP's port 4318
/// and `/v1/traces` unless written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collector {
    /// As written, for the `Host` field.
    pub authority: String,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Collector {
    pub fn parse(v: &str) -> Result<Collector, String> {
        let rest = v.strip_prefix("http://").ok_or_else(|| {
            format!("`{v}`: an http:// URL of an OTLP/HTTP collector, e.g. http://127.0.0.1:4318")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/v1/traces"),
        };
        let bad = || format!("`{v}`: a host and an optional port after http://");
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (
                host,
                port.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(bad)?,
            ),
            _ => (authority, 4318),
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let named = !bare.is_empty()
            && bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
        if !named || path.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(bad());
        }
        Ok(Collector {
            authority: authority.to_string(),
            host: bare.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

/// `otel_service_name`: 1 to 128 printable characters.
pub fn parse_service_name(v: &str) -> Result<Arc<str>, String> {
    let printable = v.chars().all(|c| !c.is_control());
    match (v.is_empty(), v.chars().count() <= 128 && printable) {
        (false, true) => Ok(v.into()),
        _ => Err(format!("`{v}`: a name of 1 to 128 printable characters")),
    }
}

/// One request's span, as the proxy saw it.
#[derive(Debug)]
struct Span {
    trace: TraceContext,
    start: SystemTime,
    duration: Duration,
    /// The request line as it came (`GET /a?b=1 HTTP/1.1`).
    request_line: String,
    status: u16,
    client: IpAddr,
    upstream: Option<Arc<str>>,
    cache: Option<&'static str>,
    user_agent: Option<String>,
}

/// What the exporter's thread is given.
enum Message {
    Span(Box<Span>),
    /// Send what waits now, then say so (a shutdown, whose process ends
    /// before the thread would otherwise send its last batch).
    Flush(Sender<()>),
}

/// The sending side, kept with a generation of the settings: when the
/// last request of that generation is done, its thread sends what is
/// left and ends.
pub struct Exporter {
    spans: Sender<Message>,
    /// `inverso_otel_spans_total`'s counts, and spans dropped for a full
    /// queue since the last warning.
    metrics: Arc<Metrics>,
    dropped: Arc<AtomicU64>,
    /// What it was started with: a reload that changes neither keeps it.
    settings: (Collector, Arc<str>),
}

impl Exporter {
    /// Starts the thread that sends to `collector`, naming the service
    /// `service`.
    pub fn start(
        collector: Collector,
        service: Arc<str>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Exporter> {
        let (spans, queue) = crossbeam_channel::bounded(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let settings = (collector.clone(), service.clone());
        let counts = (metrics.clone(), dropped.clone());
        std::thread::Builder::new()
            .name("otel".into())
            .spawn(move || send_batches(&queue, (&collector, &service), &counts))?;
        Ok(Exporter {
            spans,
            metrics,
            dropped,
            settings,
        })
    }

    /// The exporter `config` asks for: `old` when it is the same, else a
    /// new one (none without `otel_exporter`, or when no thread can be
    /// started: said, and the proxy serves without).
    pub fn for_config(
        config: &Config,
        old: Option<&Arc<Exporter>>,
        metrics: &Arc<Metrics>,
    ) -> Option<Arc<Exporter>> {
        let collector = config.otel_exporter.clone()?;
        let service = config.otel_service_name.clone();
        if let Some(old) = old.filter(|old| old.settings == (collector.clone(), service.clone())) {
            return Some(old.clone());
        }
        match Exporter::start(collector, service, metrics.clone()) {
            Ok(exporter) => Some(Arc::new(exporter)),
            Err(e) => {
                log::error!("otel_exporter: cannot start its thread: {e}; no spans are sent");
                None
            }
        }
    }

    /// Queues the span of the request `record` logs, if it was traced.
    pub fn export(&self, record: &Record) {
        let Some(trace) = record.trace else {
            return;
        };
        let span = Span {
            trace,
            start: record.time,
            duration: record.duration,
            request_line: record.request_line.clone(),
            status: record.status,
            client: record.client,
            upstream: record.last_try.upstream.clone(),
            cache: record.cache,
            user_agent: record.user_agent.clone(),
        };
        if let Err(TrySendError::Full(_)) = self.spans.try_send(Message::Span(Box::new(span))) {
            self.metrics
                .otel_spans_dropped
                .fetch_add(1, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Exporter {
    /// Sends the spans that wait now, and returns once they are sent (or
    /// failed), or once `within` has passed: at a shutdown, after the
    /// last request, so that its spans are not lost with the process.
    pub fn flush(&self, within: Duration) {
        let (done, flushed) = crossbeam_channel::bounded(1);
        if self
            .spans
            .send_timeout(Message::Flush(done), within)
            .is_ok()
        {
            let _ = flushed.recv_timeout(within);
        }
    }
}

/// The exporter's thread: a batch at most every [`FLUSH_EVERY`], or as
/// soon as [`BATCH`] spans wait, or when asked to flush; what is left once
/// every sender is gone.
fn send_batches(
    queue: &Receiver<Message>,
    (to, service): (&Collector, &str),
    (metrics, dropped): &(Arc<Metrics>, Arc<AtomicU64>),
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut due = Instant::now() + FLUSH_EVERY;
    loop {
        let mut flushed = None;
        let ended = match queue.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Ok(Message::Span(span)) => {
                batch.push(*span);
                false
            }
            Ok(Message::Flush(done)) => {
                flushed = Some(done);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if batch.len() >= BATCH || Instant::now() >= due || ended || flushed.is_some() {
            if !batch.is_empty() {
                let body = encode(&batch, service);
                let count = batch.len() as u64;
                let posted = post(to, &body);
                let counted = match posted {
                    Ok(()) => &metrics.otel_spans_sent,
                    Err(_) => &metrics.otel_spans_failed,
                };
                counted.fetch_add(count, Ordering::Relaxed);
                if let Err(why) = posted {
                    static FAILING: OnceAMinute = OnceAMinute::new();
                    if FAILING.due() {
                        log::warn!(
                            "otel_exporter http://{}{}: {why}; {} spans lost (said at most once a minute)",
                            to.authority,
                            to.path,
                            batch.len()
                        );
                    }
                }
                batch.clear();
            }
            let lost = dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                static FULL: OnceAMinute = OnceAMinute::new();
                if FULL.due() {
                    log::warn!("otel_exporter: {lost} spans dropped, the queue full (said at most once a minute)");
                }
            }
            due = Instant::now() + FLUSH_EVERY;
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
        if ended {
            return;
        }
    }
}

/// Sends `body` to the collector, `Ok` when it answered 2xx.
fn post(to: &Collector, body: &str) -> Result<(), String> {
    let deadline = Instant::now() + EXCHANGE;
    let addr = (to.host.as_str(), to.port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let io = |e: std::io::Error| e.to_string();
    let mut stream = TcpStream::connect_timeout(&addr, EXCHANGE).map_err(io)?;
    stream.set_write_timeout(Some(EXCHANGE)).map_err(io)?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: inverso/{}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        to.path,
        to.authority,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.write_all(body.as_bytes()).map_err(io)?;
    let answer = crate::acme::http::Answer::read(&mut stream, false, |stream| {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no answer within {EXCHANGE:?}"));
        }
        stream.set_read_timeout(Some(left)).map_err(io)
    })?;
    match answer.status {
        200..=299 => Ok(()),
        status => Err(format!("answered {status}")),
    }
}

/// The OTLP/JSON body of `spans` (OTLP's JSON mapping: IDs in hex, times
/// as strings of nanoseconds, enums as numbers).
fn encode(spans: &[Span], service: &str) -> String {
    let mut out = String::with_capacity(256 + spans.len() * 512);
    out.push_str(r#"{"resourceSpans":[{"resource":{"attributes":["#);
    attribute(&mut out, "service.name", Value::Text(service));
    out.push_str(r#"]},"scopeSpans":[{"scope":{"name":"inverso","version":"#);
    json::push_str(&mut out, env!("CARGO_PKG_VERSION"));
    out.push_str(r#"},"spans":["#);
    for (i, span) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        encode_span(&mut out, span);
    }
    out.push_str("]}]}]}");
    out
}

fn encode_span(out: &mut String, span: &Span) {
    let nanos = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let mut parts = span.request_line.splitn(3, ' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let _ = write!(
        out,
        r#"{{"traceId":"{:032x}","spanId":"{:016x}","#,
        span.trace.trace_id, span.trace.span_id
    );
    if let Some(parent) = span.trace.parent_id {
        let _ = write!(out, r#""parentSpanId":"{parent:016x}","#);
    }
    // HTTP's conventions name a server span by its method alone when no
    // route template is known.
    json::push_key(out, "name");
    json::push_str(out, method);
    let _ = write!(
        out,
        r#","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":["#,
        nanos(span.start),
        nanos(span.start + span.duration)
    );
    attribute(out, "http.request.method", Value::Text(method));
    out.push(',');
    attribute(out, "url.path", Value::Text(path));
    if !query.is_empty() {
        out.push(',');
        attribute(out, "url.query", Value::Text(query));
    }
    out.push(',');
    attribute(
        out,
        "http.response.status_code",
        Value::Int(span.status.into()),
    );
    out.push(',');
    attribute(out, "client.address", Value::Text(&span.client.to_string()));
    if let Some(agent) = &span.user_agent {
        out.push(',');
        attribute(out, "user_agent.original", Value::Text(agent));
    }
    if let Some(upstream) = &span.upstream {
        out.push(',');
        attribute(out, "inverso.upstream.address", Value::Text(upstream));
    }
    if let Some(cache) = span.cache {
        out.push(',');
        attribute(out, "inverso.cache", Value::Text(cache));
    }
    out.push(']');
    // A server span is in error for a 5xx alone (a 4xx is the client's).
    if span.status >= 500 {
        out.push_str(r#","status":{"code":2}"#);
    }
    out.push('}');
}

enum Value<'a> {
    Text(&'a str),
    Int(u64),
}

fn attribute(out: &mut String, key: &str, value: Value<'_>) {
    out.push_str(r#"{"key":"#);
    json::push_str(out, key);
    out.push_str(r#","value":{"#);
    match value {
        Value::Text(text) => {
            out.push_str(r#""stringValue":"#);
            json::push_str(out, text);
        }
        // An int64 is a string in OTLP's JSON.
        Value::Int(n) => {
            let _ = write!(out, r#""intValue":"{n}""#);
        }
    }
    out.push_str("}}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_value::{parse, Value as Json};

    #[test]
    fn a_collector_is_an_http_url_with_otlp_s_port_and_path_by_default() {
        let c = Collector::parse("http://127.0.0.1").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.path.as_str()),
            ("127.0.0.1", 4318, "/v1/traces")
        );
        let c = Collector::parse("http://otel-collector:4318/v1/traces").unwrap();
        assert_eq!(
            (c.authority.as_str(), c.port),
            ("otel-collector:4318", 4318)
        );
        let c = Collector::parse("http://[::1]:9000/custom").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.path.as_str()),
            ("::1", 9000, "/custom")
        );
        let c = Collector::parse("http://[::1]").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 4318));
        for bad in [
            "https://c:4318",
            "127.0.0.1:4318",
            "http://",
            "http://:4318",
            "http://c:0",
            "http://c:99999",
            "http://c d:1",
            "http://c:1/a b",
        ] {
            assert!(Collector::parse(bad).is_err(), "{bad}");
        }
    }

    fn span(status: u16, parent: Option<u64>) -> Span {
        Span {
            trace: TraceContext {
                trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
                span_id: 0x53995c3f42cd8ad8,
                parent_id: parent,
                flags: 1,
                continued: parent.is_some(),
            },
            start: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            duration: Duration::from_micros(1_500),
            request_line: "GET /a/b?x=\"1\" HTTP/1.1".into(),
            status,
            client: [203, 0, 113, 7].into(),
            upstream: Some("10.0.0.2:80".into()),
            cache: Some("MISS"),
            user_agent: Some("curl/8".into()),
        }
    }

    fn attributes(span: &Json) -> Vec<(String, String)> {
        let Some(Json::Array(list)) = span.get("attributes") else {
            panic!("no attributes: {span:?}")
        };
        (list.iter())
            .map(|a| {
                let key = a.get("key").and_then(Json::as_str).unwrap_or_default();
                let value = a.get("value").unwrap();
                let text = (value.get("stringValue").or(value.get("intValue")))
                    .and_then(Json::as_str)
                    .unwrap_or_default();
                (key.to_string(), text.to_string())
            })
            .collect()
    }

    #[test]
    fn spans_are_written_in_otlp_s_json() {
        let body = encode(
            &[span(200, Some(0x00f067aa0ba902b7)), span(502, None)],
            "shop \"edge\"",
        );
        let doc = parse(body.as_bytes()).unwrap();
        let resource = &doc.get("resourceSpans").unwrap();
        let Json::Array(resources) = resource else {
            panic!()
        };
        let service = &resources[0].get("resource").unwrap();
        assert_eq!(
            attributes(service),
            [("service.name".to_string(), "shop \"edge\"".to_string())]
        );
        let Some(Json::Array(scopes)) = resources[0].get("scopeSpans") else {
            panic!()
        };
        let Some(Json::Array(spans)) = scopes[0].get("spans") else {
            panic!()
        };
        let first = &spans[0];
        let text = |span: &Json, key: &str| span.get(key).and_then(Json::as_str).map(String::from);
        assert_eq!(
            text(first, "traceId").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(text(first, "spanId").as_deref(), Some("53995c3f42cd8ad8"));
        assert_eq!(
            text(first, "parentSpanId").as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(text(first, "name").as_deref(), Some("GET"));
        assert_eq!(first.get("kind").and_then(Json::as_f64), Some(2.0));
        assert_eq!(
            text(first, "startTimeUnixNano").as_deref(),
            Some("1700000000123000000")
        );
        assert_eq!(
            text(first, "endTimeUnixNano").as_deref(),
            Some("1700000000124500000")
        );
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            attributes(first),
            pairs(&[
                ("http.request.method", "GET"),
                ("url.path", "/a/b"),
                ("url.query", "x=\"1\""),
                ("http.response.status_code", "200"),
                ("client.address", "203.0.113.7"),
                ("user_agent.original", "curl/8"),
                ("inverso.upstream.address", "10.0.0.2:80"),
                ("inverso.cache", "MISS"),
            ])
        );
        assert!(first.get("status").is_none());
        // A trace begun here has no parent; a 5xx is an error.
        let second = &spans[1];
        assert!(second.get("parentSpanId").is_none());
        let code = second
            .get("status")
            .and_then(|s| s.get("code"))
            .and_then(Json::as_f64);
        assert_eq!(code, Some(2.0));
    }
}
