//! W3C Trace Context (`trace_context`): a client's trace continued (or
//! begun) and the proxy's span sent to the backend as the parent, the
//! trace named in the access log, as nginx's `otel_trace_context`.

mod support;

use inverso::json_value::Value as Json;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A backend answering with the trace fields it was sent.
fn tracing_backend() -> Backend {
    Backend::start("traced", |seen, out| {
        let body = format!(
            "traceparent={} tracestate={} x-trace={}",
            seen.field_or("traceparent", "-"),
            seen.field_or("tracestate", "-"),
            seen.field_or("x-trace", "-"),
        );
        respond(
            out,
            200,
            &[("Cache-Control", "max-age=60")],
            body.as_bytes(),
        );
        Action::KeepAlive
    })
}

/// What the backend said it was sent: `name=value` pairs.
fn sent(response: &Response) -> Vec<(String, String)> {
    (response.body_str().split(' '))
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn field(response: &Response, name: &str) -> String {
    let pairs = sent(response);
    let found = pairs.iter().find(|(n, _)| n == name);
    found.map(|(_, v)| v.clone()).unwrap_or_default()
}

/// `traceparent`'s four parts.
fn parts(traceparent: &str) -> Vec<String> {
    traceparent.split('-').map(str::to_string).collect()
}

fn is_hex(text: &str, digits: usize) -> bool {
    text.len() == digits
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && text.bytes().any(|b| b != b'0')
}

#[test]
fn propagate_continues_the_client_s_trace_with_the_proxy_s_span_as_parent() {
    let backend = tracing_backend();
    let text = format!(
        "targets = {}\ntrace_context = propagate\nrequest_header.X-Trace = $otel_trace_id\n\
         log_format = $status $otel_trace_id $otel_span_id $otel_parent_id $otel_parent_sampled\n",
        backend.addr
    );
    let mut proxy = start_proxy(&[backend.addr], from_file(&text));
    let mut client = proxy.connect();
    let continued = client.get_with("/a", &[("traceparent", GIVEN), ("tracestate", "vendor=1")]);
    assert_eq!(continued.status, 200);
    let sent_on = parts(&field(&continued, "traceparent"));
    assert_eq!(sent_on[0], "00");
    assert_eq!(sent_on[1], TRACE, "the client's trace");
    assert!(
        is_hex(&sent_on[2], 16) && sent_on[2] != "00f067aa0ba902b7",
        "the proxy's span"
    );
    assert_eq!(sent_on[3], "01");
    assert_eq!(
        field(&continued, "tracestate"),
        "vendor=1",
        "the trace's state goes with it"
    );
    assert_eq!(field(&continued, "x-trace"), TRACE);

    // Without one (or with one that is not valid), a trace begins here,
    // each request's its own, and a stray tracestate is not sent on.
    let begun = client.get_with(
        "/b",
        &[
            ("traceparent", "00-XYZ-00f067aa0ba902b7-01"),
            ("tracestate", "vendor=1"),
        ],
    );
    let begun_parts = parts(&field(&begun, "traceparent"));
    assert!(is_hex(&begun_parts[1], 32) && begun_parts[1] != TRACE);
    assert!(is_hex(&begun_parts[2], 16));
    assert_eq!(begun_parts[3], "01");
    assert_eq!(field(&begun, "tracestate"), "-");
    let other = client.get_with("/c", &[]);
    assert_ne!(parts(&field(&other, "traceparent"))[1], begun_parts[1]);
    // Two traceparent fields are no trace to continue.
    let two = client.get_with("/d", &[("traceparent", GIVEN), ("traceparent", GIVEN)]);
    assert_ne!(parts(&field(&two, "traceparent"))[1], TRACE);

    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(
        lines[0],
        format!("200 {TRACE} {} 00f067aa0ba902b7 1", sent_on[2]),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        format!("200 {} {} - 0", begun_parts[1], begun_parts[2]),
        "{lines:?}"
    );
}

#[test]
fn inject_replaces_the_client_s_trace_extract_passes_it_on_and_off_leaves_it() {
    let backend = tracing_backend();
    let with = |mode: &str| {
        let text = format!("targets = {}\ntrace_context = {mode}\n", backend.addr);
        start_proxy(&[backend.addr], from_file(&text))
    };
    let headers = [("traceparent", GIVEN), ("tracestate", "vendor=1")];

    let mut proxy = with("inject");
    let injected = proxy.connect().get_with("/", &headers);
    let injected_parts = parts(&field(&injected, "traceparent"));
    assert!(is_hex(&injected_parts[1], 32) && injected_parts[1] != TRACE);
    assert_eq!(field(&injected, "tracestate"), "-");
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let line = &proxy.log_lines()[0];
    assert!(
        line.ends_with(&format!(" trace_id={}", injected_parts[1])),
        "{line}"
    );

    for mode in ["extract", "off"] {
        let mut proxy = with(mode);
        let passed = proxy.connect().get_with("/", &headers);
        assert_eq!(field(&passed, "traceparent"), GIVEN, "{mode}");
        assert_eq!(field(&passed, "tracestate"), "vendor=1", "{mode}");
        assert!(proxy.shutdown(Duration::from_secs(5)));
        let line = &proxy.log_lines()[0];
        match mode {
            "extract" => assert!(line.ends_with(&format!(" trace_id={TRACE}")), "{line}"),
            _ => assert!(!line.contains("trace_id"), "{line}"),
        }
    }
}

/// A cache hit goes to no backend, but is the proxy's span all the same.
#[test]
fn a_cache_hit_is_logged_in_the_client_s_trace() {
    let backend = tracing_backend();
    let text = format!(
        "targets = {}\ntrace_context = propagate\nlog_format = json\n",
        backend.addr
    );
    let mut proxy = start_proxy(&[backend.addr], |c| {
        from_file(&text)(c);
        c.cache_size = 1 << 20;
    });
    assert_eq!(proxy.connect().get("/page").status, 200);
    let hit = proxy.connect().get_with("/page", &[("traceparent", GIVEN)]);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(backend.requests(), 1);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    // Each thread logs once its answer has gone: the miss's line may come
    // after the hit's.
    let lines = proxy.log_lines();
    let line = lines.iter().find(|l| l.contains(r#""cache":"HIT""#));
    let line = line.unwrap_or_else(|| panic!("no hit logged: {lines:#?}"));
    assert!(
        line.contains(&format!(r#""trace_id":"{TRACE}","span_id":""#)),
        "{line}"
    );
}

/// A collector: takes OTLP/HTTP posts, keeps their bodies, answers 200.
fn collector() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut got = Vec::new();
            let mut buf = [0u8; 8192];
            let head_end = loop {
                if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            };
            let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
            let length: usize = (head.lines())
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while got.len() < head_end + length {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            assert!(head.starts_with("post /v1/traces http/1.1\r\n"), "{head}");
            assert!(
                head.contains("\r\ncontent-type: application/json\r\n"),
                "{head}"
            );
            let body = String::from_utf8_lossy(&got[head_end..head_end + length]).into_owned();
            kept.lock().unwrap().push(body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        }
    });
    (addr, bodies)
}

/// Every span of the bodies a collector took, with its resource's
/// `service.name`.
fn spans_of(bodies: &[String]) -> Vec<(String, Json)> {
    let mut spans = Vec::new();
    for body in bodies {
        let doc = inverso::json_value::parse(body.as_bytes()).unwrap();
        let Some(Json::Array(resources)) = doc.get("resourceSpans") else {
            panic!("{body}")
        };
        for resource in resources {
            let attributes = resource.get("resource").and_then(|r| r.get("attributes"));
            let Some(Json::Array(attributes)) = attributes else {
                panic!("{body}")
            };
            let service = (attributes.iter())
                .find(|a| a.get("key").and_then(Json::as_str) == Some("service.name"))
                .and_then(|a| a.get("value")?.get("stringValue")?.as_str())
                .unwrap_or_default()
                .to_string();
            let Some(Json::Array(scopes)) = resource.get("scopeSpans") else {
                panic!("{body}")
            };
            for scope in scopes {
                let Some(Json::Array(list)) = scope.get("spans") else {
                    panic!("{body}")
                };
                spans.extend(list.iter().map(|s| (service.clone(), s.clone())));
            }
        }
    }
    spans
}

#[test]
fn each_traced_request_is_a_span_sent_to_the_collector() {
    let backend = tracing_backend();
    let (at, bodies) = collector();
    let text = format!(
        "targets = {}\ntrace_context = propagate\notel_exporter = http://{at}\n\
         otel_service_name = shop-edge\nadmin_port = 0\n",
        backend.addr
    );
    let mut proxy = start_proxy(&[backend.addr], from_file(&text));
    let mut client = proxy.connect();
    let continued = client.get_with("/a?x=1", &[("traceparent", GIVEN)]);
    let begun = client.get("/b");
    let sent_span = parts(&field(&continued, "traceparent"))[2].clone();
    let begun_trace = parts(&field(&begun, "traceparent"))[1].clone();
    let both = || spans_of(&bodies.lock().unwrap()).len() == 2;
    assert!(wait_until(WAIT_LIMIT, both), "{:?}", bodies.lock().unwrap());
    let spans = spans_of(&bodies.lock().unwrap());
    let text = |span: &Json, key: &str| span.get(key).and_then(Json::as_str).map(String::from);
    let (service, first) = &spans[0];
    assert_eq!(service, "shop-edge");
    assert_eq!(text(first, "traceId").as_deref(), Some(TRACE));
    assert_eq!(
        text(first, "spanId"),
        Some(sent_span),
        "the span the backend was told of"
    );
    assert_eq!(
        text(first, "parentSpanId").as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_eq!(text(first, "name").as_deref(), Some("GET"));
    let query = (bodies.lock().unwrap().iter())
        .any(|b| b.contains(r#"{"key":"url.query","value":{"stringValue":"x=1"}}"#));
    assert!(query, "{:?}", bodies.lock().unwrap());
    let (_, second) = &spans[1];
    assert_eq!(text(second, "traceId"), Some(begun_trace));
    assert!(second.get("parentSpanId").is_none());
    // Counted once the collector has answered.
    let sent = || spans_counted(&proxy, "sent").as_deref() == Some("2");
    assert!(
        wait_until(WAIT_LIMIT, sent),
        "{:?}",
        spans_counted(&proxy, "sent")
    );
    assert_eq!(spans_counted(&proxy, "failed").as_deref(), Some("0"));
    assert!(proxy.shutdown(Duration::from_secs(5)));
}

/// The last requests' spans are sent before the process stops, not
/// lost with it: they are at the collector once the binary, stopped by
/// SIGTERM, has exited (their batch would be due up to a second later,
/// the process gone by then).
#[test]
fn a_shutdown_sends_the_spans_that_wait() {
    let backend = tracing_backend();
    let (at, bodies) = collector();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("proxy.conf");
    std::fs::write(
        &conf,
        format!(
            "bind = 127.0.0.1\nport = 0\ntargets = {}\npath_to_persistence =\n\
             trace_context = propagate\notel_exporter = http://{at}\n",
            backend.addr
        ),
    )
    .unwrap();
    // Told where it listens as systemd is (`READY=1`, `STATUS=serving on`).
    let socket = dir.path().join("notify");
    let systemd = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    systemd.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_inverso"))
        .arg("--config")
        .arg(&conf)
        .env("RUST_LOG", "off")
        .env("NOTIFY_SOCKET", &socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 512];
    let n = systemd.recv(&mut ready).expect("never ready");
    let ready = String::from_utf8_lossy(&ready[..n]).into_owned();
    let addr: std::net::SocketAddr = (ready.strip_prefix("READY=1\nSTATUS=serving on "))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{ready}"));
    let answered = Client::connect(addr).get_with("/last", &[("traceparent", GIVEN)]);
    assert_eq!(answered.status, 200);
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: a signal to the child this test started, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let spans = spans_of(&bodies.lock().unwrap());
    assert_eq!(spans.len(), 1, "{:?}", bodies.lock().unwrap());
}

/// A collector that is not there loses spans, not requests.
#[test]
fn a_collector_that_is_down_costs_no_request() {
    let backend = tracing_backend();
    let gone = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let text = format!(
        "targets = {}\ntrace_context = propagate\notel_exporter = http://{gone}\nadmin_port = 0\n",
        backend.addr
    );
    let mut proxy = start_proxy(&[backend.addr], from_file(&text));
    let mut client = proxy.connect();
    for path in ["/1", "/2", "/3"] {
        assert_eq!(client.get(path).status, 200);
    }
    assert_eq!(backend.requests(), 3);
    let failed = || spans_counted(&proxy, "failed").as_deref() == Some("3");
    assert!(
        wait_until(WAIT_LIMIT, failed),
        "{:?}",
        spans_counted(&proxy, "failed")
    );
    assert_eq!(spans_counted(&proxy, "sent").as_deref(), Some("0"));
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert!(config_error(&format!(
        "targets = {}\notel_exporter = http://{gone}\n",
        backend.addr
    ))
    .contains("otel_exporter: sends the spans of traced requests: set trace_context"));
}

/// `inverso_otel_spans_total{result="<result>"}` as the admin listener
/// says it.
fn spans_counted(proxy: &Proxy, result: &str) -> Option<String> {
    let admin = proxy.handle().admin_addr().unwrap();
    let page = one_request(admin, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let prefix = format!("inverso_otel_spans_total{{result=\"{result}\"}} ");
    let body = page.body_str();
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(String::from)
}
