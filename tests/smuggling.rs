//! Request smuggling and strict parsing, end to end: raw bytes over a real
//! socket to the proxy, checking both what the client gets back and what
//! the backend saw. A request the proxy refuses must never reach a backend,
//! and neither may anything hidden behind it.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// Sends `bytes` on a new connection and expects `status` followed by the
/// proxy closing the connection, with no backend ever contacted.
fn assert_refused(proxy: &Proxy, backend: &Backend, bytes: &[u8], status: u16) {
    let what = String::from_utf8_lossy(bytes).into_owned();
    let mut client = proxy.connect();
    client.send(bytes);
    let response = client
        .try_response(false)
        .unwrap_or_else(|e| panic!("no response to {what:?}: {e}"));
    assert_eq!(response.status, status, "{what:?}: {}", response.body_str());
    assert!(
        response.head.has_token("connection", "close"),
        "{what:?}: not told the connection closes"
    );
    assert!(client.is_closed(), "{what:?}: connection left open");
    // The proxy closed the connection: it is done with these bytes, and
    // any request it forwarded would have been counted before that.
    assert_eq!(backend.connections(), 0, "{what:?} reached the backend");
}

fn echo_proxy() -> (Backend, Proxy) {
    let backend = Backend::echo("b");
    let proxy = start_proxy(&[backend.addr], |_| {});
    (backend, proxy)
}

/// Request heads whose body framing is ambiguous or faulty; each carries a
/// request hidden where a lenient parser would find it.
const FRAMING: &[(&str, u16)] = &[
    // CL.TE and TE.CL: both fields
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n0\r\n\r\n", 400),
    // TE.TE obfuscations
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x00\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\n : chunked\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: a\r\n\r\n0\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    // codings we do not decode: 501
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", 501),
    // Content-Length that is not one plain number
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\nhello", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\nh", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\nhello", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nhello", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\nhello", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400),
    ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello", 400),
];

#[test]
fn ambiguous_framing_is_refused_and_nothing_reaches_the_backend() {
    let (backend, proxy) = echo_proxy();
    for (request, status) in FRAMING {
        assert_refused(&proxy, &backend, request.as_bytes(), *status);
    }
    // Still serving.
    assert_eq!(proxy.connect().get("/after").status, 200);
}

/// Heads that are malformed in ways parsers are known to disagree about.
const HEADS: &[(&[u8], u16)] = &[
    // line endings: bare LF anywhere, bare CR
    (b"GET / HTTP/1.1\nHost: a\n\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\n\r\n", 400),
    (b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", 400),
    // a CR before the empty line's: the head never ends for a reader
    // that looks for CRLF CRLF, so it must be refused as it comes
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400),
    // control characters in names and values
    (b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\x00\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[31m\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", 400),
    // Host: none, two, invalid
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: evil@a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
    // characters a backend could decode or split on, an impossible port
    (b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a%2fb\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a;b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", 400),
    (b"GET http://a%2fb/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    // the request line: method, target, version
    (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET\x00 / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET /a#f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET /\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
    (b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", 405),
    (b"TRACK / HTTP/1.1\r\nHost: a\r\n\r\n", 405),
];

#[test]
fn malformed_heads_are_refused_and_nothing_reaches_the_backend() {
    let (backend, proxy) = echo_proxy();
    for (request, status) in HEADS {
        assert_refused(&proxy, &backend, request, *status);
    }
    assert_eq!(proxy.connect().get("/after").status, 200);
}

#[test]
fn connect_gets_405_with_the_methods_a_reverse_proxy_passes() {
    let (backend, proxy) = echo_proxy();
    let r = one_request(proxy.addr, b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n");
    assert_eq!(r.status, 405);
    let allow = r.header("allow").unwrap_or_default();
    assert!(
        allow.contains("GET") && !allow.contains("CONNECT"),
        "{}",
        r.head.raw
    );
    assert_eq!(backend.requests(), 0);
}

#[test]
fn a_higher_minor_version_is_served_as_http_1_1_both_ways() {
    // RFC 9110 §2.5, as nginx does.
    let backend = raw_backend(b"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let proxy = start_proxy(&[backend.addr], |_| {});
    let r = one_request(proxy.addr, b"GET /v HTTP/1.2\r\nHost: a\r\n\r\n");
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "ok"),
        "{}",
        r.head.raw
    );
    assert!(r.head.raw.starts_with("HTTP/1.1 200"), "{}", r.head.raw);
    // And the backend said no Date: the proxy adds one (RFC 9110 §6.6.1).
    assert!(r.head.has("date"), "{}", r.head.raw);
}

#[test]
fn a_refused_request_takes_the_pipelined_one_behind_it_down_too() {
    let (backend, proxy) = echo_proxy();
    assert_refused(
        &proxy,
        &backend,
        b"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    );
    // After a good request, a bad one on the same connection: the first is
    // answered, the second refused, nothing after it forwarded.
    let mut client = proxy.connect();
    client.send(
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxGET /third HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(client.response().status, 200);
    let refused = client.response();
    assert_eq!(refused.status, 400);
    assert!(client.is_closed());
    let paths: Vec<String> = backend
        .seen()
        .iter()
        .map(|s| s.path().to_string())
        .collect();
    assert_eq!(paths, ["/first"]);
}

#[test]
fn close_wins_over_keep_alive_and_nothing_after_it_is_served() {
    // RFC 9112 §9.3: `close` ends the connection whatever else Connection
    // says, HTTP/1.0 `keep-alive` included, and §9.6: no request after it
    // is processed. A peer in front that sent it expects exactly that.
    let (backend, proxy) = echo_proxy();
    for connection in [
        "Connection: keep-alive, close\r\n",
        "Connection: close\r\nConnection: keep-alive\r\n",
    ] {
        let mut client = proxy.connect();
        client.send(
            format!("GET /first HTTP/1.0\r\n{connection}\r\nGET /second HTTP/1.0\r\n\r\n")
                .as_bytes(),
        );
        let response = client.response();
        assert_eq!(response.status, 200, "{connection:?}");
        assert!(
            response.head.has_token("connection", "close"),
            "{connection:?}: {}",
            response.head.raw
        );
        assert!(client.is_closed(), "{connection:?}: connection left open");
    }
    let paths: Vec<String> = backend
        .seen()
        .iter()
        .map(|s| s.path().to_string())
        .collect();
    assert_eq!(paths, ["/first", "/first"]);
}

#[test]
fn a_chunked_body_is_re_framed_and_what_follows_it_is_a_separate_request() {
    let (backend, proxy) = echo_proxy();
    let mut client = proxy.connect();
    // A TE.CL attempt without the CL: what follows the last chunk is the
    // next request on this connection, parsed and forwarded on its own.
    client.send(
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(client.response().status, 200);
    assert_eq!(client.response().status, 200);
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path(), "/a");
    assert_eq!(seen[0].body, b"hello");
    // The backend sees one framing, ours: the body was read whole, so a
    // Content-Length, without the chunk extensions or trailers.
    assert!(!seen[0].head.has("transfer-encoding"));
    assert_eq!(seen[0].head.get("content-length"), Some("5"));
    assert!(!seen[0].head.raw.contains("ext=1"));
    assert!(!seen[0].head.has("x-trailer"));
    assert_eq!(seen[1].path(), "/b");
    assert_eq!(seen[1].body, b"");
}

#[test]
fn content_length_with_leading_zeros_is_forwarded_as_a_plain_number() {
    let (backend, proxy) = echo_proxy();
    let mut client = proxy.connect();
    client.send(b"POST /z HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(client.response().status, 200);
    assert_eq!(client.response().status, 200);
    let seen = backend.seen();
    assert_eq!(seen[0].head.get("content-length"), Some("5"));
    assert_eq!(seen[0].body, b"hello");
    assert_eq!(seen[1].path(), "/next");
}

#[test]
fn bad_chunked_bodies_are_400_and_no_request_completes_at_the_backend() {
    let cases: &[&[u8]] = &[
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"fffffffffffffffff5\r\nhello\r\n0\r\n\r\n",
        b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
        b"5\r\nhello\r\n0\r\nX : y\r\n\r\n",
        b"5\r\nhello\r\n0\r\nX: y\r\n folded\r\n\r\n",
        b"5\r\nhello\r\n0\r\r\n\r\n",
    ];
    let (backend, proxy) = echo_proxy();
    for body in cases {
        let mut request =
            b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(body);
        request.extend_from_slice(b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
        let what = String::from_utf8_lossy(body).into_owned();
        let mut client = proxy.connect();
        client.send(&request);
        let response = client.try_response(false).unwrap();
        assert_eq!(response.status, 400, "{what:?}");
        assert!(client.is_closed(), "{what:?}");
    }
    // The head went ahead of the body, but no request ever completed.
    assert_eq!(backend.requests(), 0);
    assert!(backend.seen().iter().all(|s| s.path() != "/smuggled"));
    assert_eq!(proxy.connect().get("/after").status, 200);
}

#[test]
fn a_long_chunk_extension_or_trailer_section_is_refused() {
    let (backend, proxy) = echo_proxy();
    let mut request =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;".to_vec();
    request.extend_from_slice(&vec![b'x'; 8192]);
    request.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    let mut client = proxy.connect();
    client.send(&request);
    assert_eq!(client.response().status, 400);

    let mut request =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
    for i in 0..2000 {
        request.extend_from_slice(format!("X-{i}: yyyyyyyyyy\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let mut client = proxy.connect();
    client.send(&request);
    assert_eq!(client.try_response(false).map(|r| r.status).ok(), Some(400));
    assert_eq!(backend.requests(), 0);
}

#[test]
fn an_absolute_form_target_overrides_host_and_the_backend_sees_one_host() {
    let (backend, proxy) = echo_proxy();
    let mut client = proxy.connect();
    client.send(b"GET http://real.example:8080/p?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n");
    assert_eq!(client.response().status, 200);
    let seen = &backend.seen()[0];
    assert_eq!(seen.head.start_line, "GET /p?q=1 HTTP/1.1");
    assert_eq!(
        seen.head.get_all("host").collect::<Vec<_>>(),
        ["real.example:8080"]
    );
    assert_eq!(seen.head.get("x-forwarded-host"), Some("real.example:8080"));
}

#[test]
fn an_absolute_form_options_for_the_whole_server_reaches_it_as_asterisk_form() {
    // RFC 9112 §3.2.4: sent as `/`, it would ask about one resource
    // instead of the server.
    let (backend, proxy) = echo_proxy();
    let mut client = proxy.connect();
    for target in [
        "http://a.example",
        "http://a.example/",
        "http://a.example?x",
    ] {
        client.send(format!("OPTIONS {target} HTTP/1.1\r\nHost: a.example\r\n\r\n").as_bytes());
        assert_eq!(client.response().status, 200, "{target}");
    }
    let lines: Vec<String> = backend
        .seen()
        .iter()
        .map(|s| s.head.start_line.clone())
        .collect();
    assert_eq!(
        lines,
        [
            "OPTIONS * HTTP/1.1",
            "OPTIONS / HTTP/1.1",
            "OPTIONS /?x HTTP/1.1"
        ]
    );
}

#[test]
fn the_backend_is_sent_the_host_spelled_as_the_cache_keys_it() {
    // Otherwise `Host: Victim.:80` could store, for every client of
    // `victim`, what a backend answered for that odd spelling.
    let (backend, proxy) = echo_proxy();
    for (sent, forwarded) in [
        ("Shop.Example.:80", "shop.example"),
        ("SHOP.example:0080", "shop.example"),
        ("shop.example:8080", "shop.example:8080"),
        ("[::1]:80", "[::1]"),
    ] {
        let mut client = proxy.connect();
        client.send(format!("GET /h HTTP/1.1\r\nHost: {sent}\r\n\r\n").as_bytes());
        assert_eq!(client.response().status, 200);
        let seen = backend.seen().pop().unwrap();
        assert_eq!(seen.head.get("host"), Some(forwarded), "sent {sent}");
        assert_eq!(seen.head.get("x-forwarded-host"), Some(forwarded));
    }
}

#[test]
fn a_host_in_brackets_that_is_no_ipv6_address_is_refused() {
    // RFC 9112 §3.2: a Host that is not uri-host [":" port] gets 400;
    // between brackets only an IPv6 address is (RFC 3986 §3.2.2).
    let (backend, proxy) = echo_proxy();
    for host in ["[1]", "[:::]:80", "[1:2:3:4:5:6:7:8:9]", "[::1.2.3]"] {
        let mut client = proxy.connect();
        client.send(format!("GET /h HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        assert_eq!(client.response().status, 400, "Host: {host}");
        let mut client = proxy.connect();
        client.send(format!("GET http://{host}/h HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        assert_eq!(client.response().status, 400, "GET http://{host}/h");
    }
    assert_eq!(backend.requests(), 0);
    let mut client = proxy.connect();
    client.send(b"GET /h HTTP/1.1\r\nHost: [2001:DB8::1]:8080\r\n\r\n");
    assert_eq!(client.response().status, 200);
}

#[test]
fn http_1_0_without_host_is_served_and_upgraded_to_1_1_framing() {
    let (backend, proxy) = echo_proxy();
    let mut client = proxy.connect();
    client.send(b"GET /old HTTP/1.0\r\n\r\n");
    let response = client.response();
    assert_eq!(response.status, 200);
    let seen = &backend.seen()[0];
    assert_eq!(seen.head.start_line, "GET /old HTTP/1.1");
    assert_eq!(seen.head.get_all("host").count(), 1);
}

// ---------------------------------------------------------------- limits

#[test]
fn head_size_field_count_and_uri_length_limits() {
    let backend = Backend::echo("b");
    let proxy = start_proxy(&[backend.addr], |c| {
        c.max_header_size = 2048;
        c.max_headers = 10;
        c.max_uri_length = 100;
    });
    let fields = |n: usize| -> String { (0..n).map(|i| format!("X-{i}: v\r\n")).collect() };
    // Within every limit.
    let ok = format!(
        "GET /{} HTTP/1.1\r\nHost: a\r\n{}\r\n",
        "u".repeat(99),
        fields(9)
    );
    assert_eq!(one_request(proxy.addr, ok.as_bytes()).status, 200);
    assert_eq!(backend.requests(), 1);
    let fresh = Backend::echo("fresh");
    let proxy2 = start_proxy(&[fresh.addr], |c| {
        c.max_header_size = 2048;
        c.max_headers = 10;
        c.max_uri_length = 100;
    });
    for (request, status) in [
        (
            format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "u".repeat(100)),
            414,
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", fields(10)),
            431,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
                "v".repeat(2048)
            ),
            431,
        ),
        // Larger than the limit and never ending: refused once past it.
        (
            format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(4096)),
            431,
        ),
    ] {
        assert_refused(&proxy2, &fresh, request.as_bytes(), status);
    }
}

#[test]
fn max_body_size_refuses_a_declared_length_up_front_and_a_chunked_body_midway() {
    let backend = Backend::echo("b");
    let proxy = start_proxy(&[backend.addr], |c| c.max_body_size = 1000);
    // Up to the limit is fine.
    let mut client = proxy.connect();
    assert_eq!(client.post("/ok", &pattern(1000)).status, 200);
    assert_eq!(backend.requests(), 1);

    // Declared too large: 413 before any body byte is read or forwarded,
    // also when the client waits for 100-continue.
    let mut client = proxy.connect();
    client.send(b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n");
    let response = client.response();
    assert_eq!(response.status, 413);
    assert!(client.is_closed());
    let mut client = proxy.connect();
    client.send(
        b"PUT /big HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n",
    );
    assert_eq!(client.response().status, 413);

    // Chunked: counted while it streams; the backend never gets a whole request.
    let mut request =
        b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        request.extend_from_slice(b"190\r\n");
        request.extend_from_slice(&pattern(400));
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let mut client = proxy.connect();
    client.send(&request);
    assert_eq!(client.response().status, 413);
    assert!(client.is_closed());
    // A chunk announcing more than the limit is refused before its data.
    let mut client = proxy.connect();
    client.send(
        b"POST /huge HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\n",
    );
    assert_eq!(client.response().status, 413);
    assert_eq!(backend.requests(), 1);
    assert!(backend.seen().iter().all(|s| s.path() == "/ok"));
}

#[test]
fn a_streamed_body_over_max_body_size_sends_the_backend_nothing_of_the_read_past_it() {
    // A backend that records what reaches it, until the proxy closes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            seen.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let proxy = start_proxy(&[addr], |c| {
        c.max_body_size = 1000;
        c.request_buffer_size = 0;
    });
    let mut client = proxy.connect();
    client
        .send(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    let has = |text: &[u8]| got.lock().unwrap().windows(text.len()).any(|w| w == text);
    assert!(
        wait_until(WAIT_LIMIT, || has(b"hello")),
        "the start never came"
    );
    // Three chunks of 400 in one write: the third takes the body past the
    // limit, and none of the three goes on.
    let mut rest = Vec::new();
    for _ in 0..3 {
        rest.extend_from_slice(b"190\r\n");
        rest.extend_from_slice(&[b'x'; 400]);
        rest.extend_from_slice(b"\r\n");
    }
    client.send(&rest);
    assert_eq!(client.response().status, 413);
    assert!(client.is_closed());
    assert!(
        !has(b"x"),
        "{}",
        String::from_utf8_lossy(&got.lock().unwrap())
    );
}

/// A second's grace for the head or body, a minute for everything else:
/// a proxy that only applied connection_timeout would make the test's own
/// read time out instead of receiving the 408.
fn slow_client_limits(c: &mut inverso::Config) {
    c.connection_timeout = Duration::from_secs(60);
    c.client_header_timeout = Duration::from_millis(400);
    c.client_body_timeout = Duration::from_millis(400);
}

#[test]
fn slowloris_a_head_trickling_in_gets_408_when_the_head_timeout_passes() {
    let backend = Backend::echo("b");
    let proxy = start_proxy(&[backend.addr], slow_client_limits);
    let mut client = proxy.connect();
    // Each piece comes well within connection_timeout; the head never ends.
    client.send(b"GET / HTTP/1.1\r\n");
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(50));
        client.send(format!("X-{i}: y\r\n").as_bytes());
    }
    let response = client.response();
    assert_eq!(response.status, 408);
    assert!(client.is_closed());
    assert_eq!(backend.connections(), 0);
    // A connection that never sends a byte is closed too (without a word).
    let mut silent = proxy.connect();
    assert!(silent.is_closed());
    assert_eq!(proxy.connect().get("/after").status, 200);
}

#[test]
fn the_head_timeout_holds_while_many_connections_are_open() {
    // With many connections open a worker yields before a read that
    // would wait, and sets the read's timeout only if it still must wait:
    // that wait must still end when the head timeout passes.
    let backend = Backend::echo("b");
    let proxy = start_proxy(&[backend.addr], slow_client_limits);
    let mut crowd: Vec<_> = (0..40).map(|_| proxy.connect()).collect();
    for client in &mut crowd {
        assert_eq!(client.get("/crowd").status, 200);
    }
    let mut client = proxy.connect();
    client.send(b"GET / HTTP/1.1\r\n");
    assert_eq!(client.response().status, 408);
    assert!(client.is_closed());
    let mut silent = proxy.connect();
    assert!(silent.is_closed());
}

#[test]
fn after_a_body_the_connection_idles_under_connection_timeout_not_the_body_timeout() {
    // The body's reads time out after 400 ms; the wait for the next
    // request that follows must not inherit that.
    let backend = Backend::echo("b");
    let proxy = start_proxy(&[backend.addr], slow_client_limits);
    let mut client = proxy.connect();
    assert_eq!(client.post("/form", b"a=1").status, 200);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(client.get("/next").status, 200);
}

#[test]
fn a_body_that_stops_arriving_gets_408() {
    // A body with a length and a chunked one stall after a few bytes:
    // read whole before forwarding, then streamed (the backend has the
    // head by then, and its connection is closed, never pooled).
    for buffer in [None, Some(0)] {
        let backend = Backend::echo("b");
        let proxy = start_proxy(&[backend.addr], |c| {
            slow_client_limits(c);
            if let Some(buffer) = buffer {
                c.request_buffer_size = buffer;
            }
        });
        for request in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        ] {
            let mut client = proxy.connect();
            client.send(request);
            let response = client.response();
            assert_eq!(response.status, 408, "buffer {buffer:?}");
            assert!(client.is_closed());
        }
        assert_eq!(backend.requests(), 0);
        let streamed = buffer.is_some();
        assert_eq!(backend.connections() > 0, streamed, "buffer {buffer:?}");
        assert!(wait_until(WAIT_LIMIT, || backend.closed() == backend.connections()));
    }
}

// ---------------------------------------------------------------- upstream

/// A backend that answers every request with `raw`, and keeps the
/// connection open (so only the proxy's own judgement stops its reuse).
fn raw_backend(raw: &'static [u8]) -> Backend {
    Backend::start("raw", move |_, out| {
        let _ = out.write_all(raw);
        Action::KeepAlive
    })
}

#[test]
fn malformed_responses_are_502_and_their_connection_is_not_reused() {
    let cases: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \"chunked\"\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok",
        b"garbage\r\n\r\n",
    ];
    for raw in cases {
        let what = String::from_utf8_lossy(raw).into_owned();
        let backend = raw_backend(raw);
        let proxy = start_proxy(&[backend.addr], |_| {});
        let mut client = proxy.connect();
        client.send(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
        let response = client.response();
        assert_eq!(response.status, 502, "{what:?}");
        assert!(response.body_str().contains("Bad Gateway"), "{what:?}");
        // The next request needs a new backend connection.
        assert_eq!(client.get("/y").status, 502, "{what:?}");
        assert_eq!(backend.connections(), 2, "{what:?}");
    }
}

#[test]
fn a_reply_that_is_not_http_is_a_502_at_once() {
    // No head end ever comes: waiting for one would hold the client until
    // the read timeout.
    let backend = Backend::start("banner", |_, out| {
        let _ = out.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
        Action::Hang
    });
    let proxy = start_proxy(&[backend.addr], |c| {
        c.connection_timeout = Duration::from_secs(600);
    });
    assert_eq!(proxy.connect().get("/").status, 502);

    // An empty line before the status line, in a segment of its own, is
    // skipped like one in the same segment.
    let backend = Backend::start("crlf", |_, out| {
        let _ = out.write_all(b"\r\n");
        let _ = out.flush();
        std::thread::sleep(Duration::from_millis(20));
        respond(out, 200, &[], b"ok");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], |_| {});
    assert_eq!(proxy.connect().get("/").body, b"ok");
}

#[test]
fn bytes_after_a_response_are_never_read_as_the_next_response() {
    // A backend answering one request with two responses: the second must
    // not become the answer to the next client's request.
    let backend = raw_backend(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
    );
    let proxy = start_proxy(&[backend.addr], |_| {});
    let mut client = proxy.connect();
    let first = client.get("/1");
    assert_eq!(first.body, b"ok");
    let mut other = proxy.connect();
    let second = other.get("/2");
    assert_eq!(second.body, b"ok");
    assert_eq!(backend.connections(), 2);
    assert_eq!(backend.requests(), 2);
}

#[test]
fn bytes_arriving_on_an_idle_pooled_connection_are_never_read_as_a_response() {
    // The backend answers, then writes more on the connection once it sits
    // idle in the pool (a late HEAD body, a 408 before a close). Whatever
    // the method, the next request must not take those bytes for its
    // answer: the connection is dropped and a new one used.
    let stray_written = Arc::new(AtomicBool::new(false));
    let flag = stray_written.clone();
    let backend = Backend::start("late", move |seen, out| {
        if seen.path() == "/first" {
            respond(out, 200, &[], b"first");
            // Written once the proxy has put the connection back.
            std::thread::sleep(Duration::from_millis(50));
            let _ = out
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: x=1\r\n\r\nstray");
            flag.store(true, Ordering::SeqCst);
        } else {
            respond(out, 200, &[], seen.path().as_bytes());
        }
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], |_| {});
    for method in ["GET", "HEAD", "DELETE"] {
        stray_written.store(false, Ordering::SeqCst);
        assert_eq!(proxy.connect().get("/first").body, b"first");
        assert!(wait_until(WAIT_LIMIT, || stray_written.load(Ordering::SeqCst)));
        let mut victim = proxy.connect();
        victim.send(format!("{method} /victim HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        let response = if method == "HEAD" {
            victim.head_response()
        } else {
            victim.response()
        };
        assert_eq!(response.status, 200, "{method}");
        assert!(
            !response.head.has("set-cookie"),
            "{method}: {}",
            response.head.raw
        );
        if method != "HEAD" {
            assert_eq!(response.body, b"/victim", "{method}");
        }
    }
}

#[test]
fn a_response_head_over_32_kib_is_a_502_even_when_one_read_brings_it_whole() {
    let mut raw = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
    raw.resize(40 * 1024, b'a');
    raw.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
    let raw: &'static [u8] = raw.leak();
    let backend = raw_backend(raw);
    let proxy = start_proxy(&[backend.addr], |_| {});
    assert_eq!(proxy.connect().get("/").status, 502);
}

#[test]
fn a_backend_failing_before_the_first_body_byte_is_a_502_or_504() {
    // The head is held back until the body starts: until then the client
    // can still be told what happened. (One of unknown length that stays
    // silent, an event stream, has its head sent on after a moment.)
    let cases: [(&[u8], u16); 3] = [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
            502,
        ),
        // Larger than what is gathered whole before sending, then closed.
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", 502),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", 504),
    ];
    for (raw, status) in cases {
        let what = String::from_utf8_lossy(raw).into_owned();
        let backend = Backend::start("raw", move |_, out| {
            let _ = out.write_all(raw);
            if status == 504 {
                Action::Hang
            } else {
                Action::Close
            }
        });
        let proxy = start_proxy(&[backend.addr], |c| {
            c.connection_timeout = Duration::from_millis(300);
        });
        let mut client = proxy.connect();
        client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(client.response().status, status, "{what:?}");
        // Nothing was sent of the failed response: the connection goes on.
        assert_eq!(client.get("/next").status, status, "{what:?}");
    }
}

#[test]
fn a_204_never_carries_a_content_length() {
    // A 204 with a Content-Length (RFC 9110 §8.6 forbids it): a client
    // believing it would take the next response for this one's body.
    let backend = raw_backend(
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\n\r\n",
    );
    let proxy = start_proxy(&[backend.addr], |c| c.cache_size = 1 << 20);
    let mut client = proxy.connect();
    for x_cache in ["MISS", "HIT"] {
        let response = client.get("/empty");
        assert_eq!(response.status, 204);
        assert_eq!(response.header("x-cache"), Some(x_cache));
        assert!(
            !response.head.has("content-length"),
            "{}",
            response.head.raw
        );
    }
}

#[test]
fn a_response_with_a_bad_chunk_after_its_head_went_out_closes_the_client() {
    for raw in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n80000\r\nnot that long\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n0\r\n\r\n",
    ] {
        let backend = Backend::start("raw", move |_, out| {
            let _ = out.write_all(raw);
            Action::Close
        });
        let proxy = start_proxy(&[backend.addr], |_| {});
        let mut client = proxy.connect();
        client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        // Whatever arrived, it must not look like a complete response.
        assert!(client.try_response(false).is_err());
    }
}

// ---------------------------------------------------------------- upgrade

/// A WebSocket origin: answers the handshake, then echoes each frame it
/// receives unmasked, until a close frame (echoed too) or the end.
fn websocket_backend() -> Backend {
    Backend::start("ws", |seen, out| {
        let Some(key) = seen.head.get("sec-websocket-key") else {
            respond(out, 400, &[], b"not a websocket request");
            return Action::Close;
        };
        let is_upgrade = seen.head.has_token("connection", "upgrade")
            && seen.head.get("upgrade") == Some("websocket");
        if !is_upgrade {
            respond(out, 426, &[("Upgrade", "websocket")], b"upgrade required");
            return Action::KeepAlive;
        }
        let handshake = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            websocket_accept(key)
        );
        if out.write_all(handshake.as_bytes()).is_err() {
            return Action::Close;
        }
        let mut reader = out.try_clone().unwrap();
        echo_websocket_frames(out, &mut reader);
        Action::Close
    })
}

const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn websocket_handshake(client: &mut Client) -> Response {
    client.send(
        format!(
            "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    );
    client.try_response(true).unwrap()
}

#[test]
fn the_test_sha1_matches_rfc_6455() {
    // RFC 6455 §1.3's example.
    assert_eq!(websocket_accept(WS_KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(base64(b"ab"), "YWI=");
}

#[test]
fn a_websocket_handshake_is_relayed_and_frames_echo_both_ways() {
    let backend = websocket_backend();
    let proxy = start_proxy(&[backend.addr], |c| c.cache_size = 1 << 20);
    let mut client = proxy.connect();
    let response = websocket_handshake(&mut client);
    assert_eq!(response.status, 101);
    assert_eq!(
        response.header("sec-websocket-accept"),
        Some(websocket_accept(WS_KEY).as_str())
    );
    assert!(response.head.has_token("connection", "upgrade"));
    assert_eq!(response.header("upgrade"), Some("websocket"));
    // The backend got the Upgrade and its Connection option; the client's
    // other connection options did not travel.
    let seen = &backend.seen()[0];
    assert_eq!(seen.head.get("upgrade"), Some("websocket"));
    assert!(seen.head.has_token("connection", "upgrade"));
    assert!(!seen.head.has_token("connection", "keep-alive"));
    assert_eq!(seen.head.get("sec-websocket-key"), Some(WS_KEY));

    // A masked text frame goes out, the echo comes back; then a larger
    // binary one, sent in pieces.
    client.send(&websocket_frame(0x1, b"hello", Some([1, 2, 3, 4])));
    assert_eq!(
        client.reader.read_websocket_frame().unwrap(),
        (0x1, b"hello".to_vec())
    );
    let big = pattern(100_000);
    client.send_split(&websocket_frame(0x2, &big, Some([9, 8, 7, 6])), 4096);
    let (opcode, echoed) = client.reader.read_websocket_frame().unwrap();
    assert_eq!(opcode, 0x2);
    assert!(echoed == big, "binary frame differs");
    // Close handshake: the backend echoes the close and hangs up; the
    // proxy closes the client side too.
    client.send(&websocket_frame(0x8, &[0x03, 0xe8], Some([5, 5, 5, 5])));
    assert_eq!(
        client.reader.read_websocket_frame().unwrap(),
        (0x8, vec![0x03, 0xe8])
    );
    assert!(client.is_closed());

    // The proxy goes on, on a new backend connection.
    let mut client = proxy.connect();
    assert_eq!(websocket_handshake(&mut client).status, 101);
    assert!(wait_until(WAIT_LIMIT, || backend.connections() == 2));
}

#[test]
fn a_websocket_s_log_counts_its_handshake_and_what_went_to_the_client() {
    let backend = websocket_backend();
    let mut proxy = start_proxy(&[backend.addr], |c| {
        c.log_format = inverso::config::LogFormat::parse(
            "$status $request_length $bytes_sent $body_bytes_sent",
        )
        .unwrap();
    });
    let mut client = proxy.connect();
    let handshake = format!(
        "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    // A frame right behind the handshake: the new protocol's, not the
    // request's length.
    let mut sent = handshake.clone().into_bytes();
    sent.extend_from_slice(&websocket_frame(0x1, b"hello", Some([1, 2, 3, 4])));
    client.send(&sent);
    let response = client.try_response(true).unwrap();
    assert_eq!(response.status, 101);
    assert_eq!(
        client.reader.read_websocket_frame().unwrap(),
        (0x1, b"hello".to_vec())
    );
    client.send(&websocket_frame(0x8, &[0x03, 0xe8], Some([5, 5, 5, 5])));
    assert_eq!(client.reader.read_websocket_frame().unwrap().0, 0x8);
    assert!(client.is_closed());
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let frames =
        websocket_frame(0x1, b"hello", None).len() + websocket_frame(0x8, &[3, 0xe8], None).len();
    let head = response.head.raw.len();
    assert_eq!(
        proxy.log_lines(),
        [format!(
            "101 {} {} {frames}",
            handshake.len(),
            head + frames
        )]
    );
}

#[test]
fn an_idle_websocket_is_closed_after_tunnel_timeout() {
    let backend = websocket_backend();
    // Clients idle out between requests far later: the tunnel has its own.
    let proxy = start_proxy(&[backend.addr], |c| {
        c.connection_timeout = IO_TIMEOUT * 6;
        c.tunnel_timeout = Duration::from_millis(300);
    });
    let mut client = proxy.connect();
    assert_eq!(websocket_handshake(&mut client).status, 101);
    // Say nothing: the proxy ends the tunnel well before the test's read
    // timeout, and the backend's side ends with it.
    assert!(client.is_closed());
    assert!(wait_until(WAIT_LIMIT, || backend
        .closed
        .load(std::sync::atomic::Ordering::SeqCst)
        == 1));
}

#[test]
fn a_half_closed_tunnel_still_carries_the_answer() {
    // The client sends its last bytes and shuts its side; the backend
    // answers once it sees that end. The answer must still arrive.
    let backend = Backend::start("half", |_, out| {
        let _ = out.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-test\r\nConnection: Upgrade\r\n\r\n",
        );
        let mut got = Vec::new();
        let _ = std::io::Read::read_to_end(out, &mut got);
        let _ = out.write_all(format!("got {:?}, bye", String::from_utf8_lossy(&got)).as_bytes());
        Action::Close
    });
    let proxy = start_proxy(&[backend.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /t HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x-test\r\n\r\n");
    assert_eq!(client.try_response(true).unwrap().status, 101);
    client.send(b"last words");
    client.finish_sending();
    let rest = client.read_until_closed();
    assert_eq!(String::from_utf8_lossy(&rest), "got \"last words\", bye");
}

#[test]
fn upgrade_is_not_forwarded_for_http_1_0_with_a_body_or_to_h2c() {
    let backend = websocket_backend();
    let proxy = start_proxy(&[backend.addr], |_| {});
    for request in [
        format!("GET / HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: {WS_KEY}\r\n\r\n"),
        format!("POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: {WS_KEY}\r\nContent-Length: 2\r\n\r\nhi"),
        format!("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nSec-WebSocket-Key: {WS_KEY}\r\n\r\n"),
        // h2c: behind it every request would pass the proxy unseen.
        format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nSec-WebSocket-Key: {WS_KEY}\r\n\r\n"),
        format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket, H2C\r\nSec-WebSocket-Key: {WS_KEY}\r\n\r\n"),
        // Not protocol tokens: another reader could find an h2c in them.
        format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: \"x, h2c\r\nSec-WebSocket-Key: {WS_KEY}\r\n\r\n"),
        format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket, x=\"a, h2c\r\nSec-WebSocket-Key: {WS_KEY}\r\n\r\n"),
    ] {
        let response = one_request(proxy.addr, request.as_bytes());
        assert_eq!(response.status, 426, "{request:?}");
    }
    assert!(backend
        .seen()
        .iter()
        .all(|s| !s.head.has("upgrade") && !s.head.has_token("connection", "upgrade")));
}

#[test]
fn a_101_without_upgrade_or_to_another_protocol_is_a_502() {
    for raw in [
        &b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n"[..],
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    ] {
        let backend = raw_backend(raw);
        let proxy = start_proxy(&[backend.addr], |_| {});
        let mut client = proxy.connect();
        let response = websocket_handshake(&mut client);
        assert_eq!(response.status, 502, "{}", String::from_utf8_lossy(raw));
    }
    // A version the client did not name is another protocol; none named
    // accepts any; and an empty list element is no reason to refuse.
    let backend = raw_backend(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: Foo/2\r\n\r\n",
    );
    let proxy = start_proxy(&[backend.addr], |_| {});
    for (asked, status) in [
        ("foo/1", 502),
        ("foo", 101),
        ("foo/2,", 101),
        ("bar, foo/2", 101),
    ] {
        let mut client = proxy.connect();
        client.send(
            format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: {asked}\r\n\r\n")
                .as_bytes(),
        );
        let response = client.try_response(true).unwrap();
        assert_eq!(response.status, status, "{asked}");
    }
}

#[test]
fn a_websocket_goes_to_the_pool_its_path_is_routed_to() {
    let (main, ws) = (Backend::echo("main"), websocket_backend());
    let text = format!(
        "port = 0\ntargets = {}\npool.ws = {}\nroute./chat = ws\n",
        main.addr, ws.addr
    );
    let mut loader = inverso::config::Loader::new();
    let built = loader.file("proxy.conf", &text).unwrap().build().unwrap();
    let proxy = start_proxy(&[main.addr], move |c| {
        c.pools = built.pools;
        c.routes = built.routes;
    });
    let mut client = proxy.connect();
    assert_eq!(websocket_handshake(&mut client).status, 101);
    client.send(&websocket_frame(0x1, b"routed", Some([1, 2, 3, 4])));
    assert_eq!(
        client.reader.read_websocket_frame().unwrap(),
        (0x1, b"routed".to_vec())
    );
    assert_eq!((ws.requests(), main.requests()), (1, 0));
}

#[test]
fn a_pool_s_tunnel_timeout_closes_its_idle_websockets() {
    let (main, ws) = (Backend::echo("main"), websocket_backend());
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\ntunnel_timeout = 1h\npool.ws = {}\npool.ws.tunnel_timeout = 300ms\n\
             route./chat = ws\n",
            main.addr, ws.addr
        )),
    );
    let mut client = proxy.connect();
    assert_eq!(websocket_handshake(&mut client).status, 101);
    // Silent: the pool's own timeout ends the tunnel, well before the
    // top level's hour or the test's read timeout.
    assert!(client.is_closed());
}

/// Bytes the kernel still holds unsent on `stream` (`SIOCOUTQ`).
fn unsent(stream: &std::net::TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    n as usize
}

/// The head a backend answers a switch to `x-test` with.
const SWITCHED: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-test\r\nConnection: Upgrade\r\n\r\n";

/// What a backend sends before its end in the tests of tunnels' ends.
fn last_message() -> Vec<u8> {
    let mut last = pattern(256 * 1024);
    last.extend_from_slice(b"END");
    last
}

/// A client whose connection through `proxy` was switched to `x-test`.
fn switched_client(proxy: &Proxy) -> Client {
    let mut client = proxy.connect();
    client.send(b"GET /t HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x-test\r\n\r\n");
    assert_eq!(client.try_response(true).unwrap().status, 101);
    client
}

/// The first connection `listener` accepts, its request head read.
fn accept_request(listener: &TcpListener) -> std::net::TcpStream {
    let (mut stream, _) = listener.accept().unwrap();
    let (mut head, mut byte) = (Vec::new(), [0u8; 1]);
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    stream
}

/// Sends `ping` every 5 ms on `client`'s connection, reading nothing,
/// until the returned function is called.
fn keep_talking(client: &Client) -> impl FnOnce() {
    let mut sender = client.reader.stream.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let talking = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) && sender.write_all(b"ping").is_ok() {
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    move || {
        stop.store(true, Ordering::SeqCst);
        talking.join().unwrap();
    }
}

/// Once the backend has ended (and a while after, for the proxy to have
/// acted on it), the client, which read nothing, reads to the end: all
/// of [`last_message`], uncut.
fn reads_the_last_message(mut client: Client, stop_talking: impl FnOnce()) {
    std::thread::sleep(Duration::from_millis(300));
    let got = client.read_until_closed();
    stop_talking();
    assert!(
        got == last_message(),
        "the backend's last bytes were cut: {} bytes",
        got.len()
    );
}

#[test]
fn a_backend_s_last_bytes_reach_the_client_though_the_client_still_sends() {
    // The backend sends its last message and closes at once, as a
    // WebSocket server may after its close frame, while the client, slow
    // to read, still sends. Everything the backend sent before its close
    // is the client's: the proxy's failed write to the closed backend
    // must not cut it.
    let backend = Backend::start("closing", |_, out| {
        let _ = out.write_all(SWITCHED);
        let _ = out.write_all(&last_message());
        // All of it handed to the proxy before the close.
        assert!(wait_until(WAIT_LIMIT, || unsent(out) == 0));
        Action::Close
    });
    let proxy = start_proxy(&[backend.addr], |_| {});
    let client = switched_client(&proxy);
    let stop_talking = keep_talking(&client);
    // The client reads nothing for a while: the backend has closed by then.
    assert!(wait_until(WAIT_LIMIT, || backend.closed() == 1));
    reads_the_last_message(client, stop_talking);
}

#[test]
fn a_backend_s_last_bytes_reach_the_client_though_it_resets_after_them() {
    // As above, but the backend's end is a reset (it closed with the
    // client's bytes unread), after all it sent had reached the proxy.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reset = Arc::new(AtomicBool::new(false));
    let backend = {
        let reset = reset.clone();
        std::thread::spawn(move || {
            let mut out = accept_request(&listener);
            out.write_all(&[SWITCHED, &last_message()].concat())
                .unwrap();
            assert!(wait_until(WAIT_LIMIT, || unsent(&out) == 0));
            // The client's bytes arrived, unread: the close is a reset.
            assert!(out.peek(&mut [0u8; 1]).unwrap() == 1);
            socket2::SockRef::from(&out)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(out);
            reset.store(true, Ordering::SeqCst);
        })
    };
    let proxy = start_proxy(&[addr], |_| {});
    let client = switched_client(&proxy);
    let stop_talking = keep_talking(&client);
    assert!(wait_until(WAIT_LIMIT, || reset.load(Ordering::SeqCst)));
    backend.join().unwrap();
    reads_the_last_message(client, stop_talking);
}

#[test]
fn a_tunnel_whose_client_is_gone_does_not_wait_on_a_backend_that_reads_nothing() {
    // Both directions are blocked: the backend streams to a client that
    // reads nothing, and the client's bytes fill a backend that reads
    // nothing. The client then resets. The proxy's write to it fails;
    // the tunnel must end then (as it did), not when the other
    // direction's write to the backend times out (`tunnel_timeout`).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let backend = std::thread::spawn(move || {
        let mut out = accept_request(&listener);
        out.write_all(SWITCHED).unwrap();
        // Never reads; writes until the proxy closes the connection, or
        // for far longer than the proxy's 2 s of grace.
        out.set_write_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let chunk = vec![b'b'; 64 * 1024];
        loop {
            if let Err(e) = out.write_all(&chunk) {
                return e.kind();
            }
        }
    });
    let proxy = start_proxy(&[addr], |c| c.tunnel_timeout = Duration::from_secs(600));
    let client = switched_client(&proxy);
    // The client sends until nothing more is taken (the backend reads
    // nothing), and reads nothing itself.
    let mut sender = client.reader.stream.try_clone().unwrap();
    sender
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let chunk = vec![b'c'; 64 * 1024];
    while sender.write_all(&chunk).is_ok() {}
    // Then resets.
    socket2::SockRef::from(&sender)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(sender);
    drop(client);
    let kind = backend.join().unwrap();
    assert!(
        !matches!(
            kind,
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "the tunnel is still open"
    );
}

// ------------------------------------------------ a tunnel's $termination

/// A proxy in front of `addr` logging `$status $termination`, its
/// tunnels idling out after `idle`.
fn logging_termination(addr: std::net::SocketAddr, idle: Duration) -> Proxy {
    start_proxy(&[addr], |c| {
        c.log_format = inverso::config::LogFormat::parse("$status $termination").unwrap();
        c.tunnel_timeout = idle;
    })
}

/// Makes the close of `stream` a reset: with no linger, it sends an RST,
/// not a FIN.
fn to_reset(stream: &std::net::TcpStream) {
    socket2::SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// As HAProxy's: a tunnel whose sides closed (a FIN each way) ended as it
/// should, `--`; one the client aborted (a reset) is the client's, `CD`.
/// Both were `--`.
#[test]
fn a_tunnel_the_client_resets_is_cd_and_one_closed_is_dashes() {
    // Reads until the proxy passes the client's end on, then closes.
    let backend = Backend::start("closing", |_, out| {
        let _ = out.write_all(SWITCHED);
        let _ = std::io::Read::read_to_end(out, &mut Vec::new());
        Action::Close
    });
    let mut proxy = logging_termination(backend.addr, Duration::from_secs(600));
    let mut client = switched_client(&proxy);
    client
        .reader
        .stream
        .shutdown(std::net::Shutdown::Write)
        .unwrap();
    assert!(client.read_until_closed().is_empty());
    assert!(wait_until(WAIT_LIMIT, || backend.closed() == 1));
    let client = switched_client(&proxy);
    to_reset(&client.reader.stream);
    drop(client);
    assert!(wait_until(WAIT_LIMIT, || backend.closed() == 2));
    assert!(proxy.shutdown(Duration::from_secs(5)));
    // Two connections, each logged as its worker finishes: in any order.
    let mut lines = proxy.log_lines();
    lines.sort();
    assert_eq!(lines, ["101 --", "101 CD"]);
}

/// A tunnel the backend aborted (a reset) is the backend's, `SD`.
#[test]
fn a_tunnel_the_backend_resets_is_sd() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (switched, told) = std::sync::mpsc::channel::<()>();
    let backend = std::thread::spawn(move || {
        let mut out = accept_request(&listener);
        out.write_all(SWITCHED).unwrap();
        // Once the client has the 101.
        told.recv().unwrap();
        to_reset(&out);
        drop(out);
    });
    let mut proxy = logging_termination(addr, Duration::from_secs(600));
    let mut client = switched_client(&proxy);
    switched.send(()).unwrap();
    backend.join().unwrap();
    assert!(client.read_until_closed().is_empty());
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(proxy.log_lines(), ["101 SD"]);
}

/// A tunnel that idled out (`tunnel_timeout`) is the client's timeout,
/// `cD`, as HAProxy's `timeout tunnel` is logged.
#[test]
fn a_tunnel_that_idled_out_is_cd_in_lower_case() {
    let backend = Backend::start("silent", |_, out| {
        let _ = out.write_all(SWITCHED);
        let _ = std::io::Read::read_to_end(out, &mut Vec::new());
        Action::Close
    });
    let mut proxy = logging_termination(backend.addr, Duration::from_millis(300));
    let mut client = switched_client(&proxy);
    assert!(client.is_closed());
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(proxy.log_lines(), ["101 cD"]);
}
