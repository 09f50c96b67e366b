//! W3C Trace Context (`trace_context`): a client's trace continued (or
//! begun) and the proxy's span sent to the backend as the parent, the
//! trace named in the access log, as nginx's `otel_trace_context`.

mod support;

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
    let line = &proxy.log_lines()[1];
    assert!(
        line.contains(&format!(r#""trace_id":"{TRACE}","span_id":""#)),
        "{line}"
    );
}
