//! `request_header.<Name>`: fields set or removed on every request sent to
//! a backend (forwarded, retried on another target, the cache's own
//! revalidations, a WebSocket upgrade), while the cache, the log and the
//! forwarding fields keep the request as the client sent it.

mod support;

use inverso::config::Loader;
use inverso::http::edits::FieldEdits;
use inverso::upstream::retry_on::RetryOnStatus;
use inverso::Config;
use std::io::Write;
use std::time::Duration;
use support::*;

/// A credential for the backend (with the `;`, `,` and quotes a list key
/// could not hold), two fields taken away from it, and one whose name a
/// client could not send (an underscore: dropped by default).
const EDITS: &str = "\
request_header.X-Backend-Auth = s3cret; scope=\"a, b\"
request_header.Accept-Encoding =          # uncompressed bodies
request_header.x-debug =
request_header.X_Api_Key = k1
";
const AUTH: &str = "s3cret; scope=\"a, b\"";

/// What a client sends against [`EDITS`]: each edited field (one twice,
/// one named in `Connection` to try to make the proxy drop it), and one
/// they leave alone.
const CLIENT_FIELDS: &str = "Connection: X-Backend-Auth\r\n\
                             X-Backend-Auth: forged\r\n\
                             Accept-Encoding: gzip, br\r\n\
                             X-Debug: 1\r\n\
                             x-backend-auth: forged too\r\n\
                             X-DEBUG: 2\r\n\
                             X-Other: kept\r\n";

/// The edits the `request_header.*` lines of `lines` give, read as
/// proxy.conf is.
fn edits(lines: &str) -> FieldEdits {
    let text = format!("targets = 127.0.0.1:1\n{lines}");
    let mut loader = Loader::new();
    loader.file("proxy.conf", &text).unwrap();
    loader.build().unwrap().request_headers
}

/// A `GET path` for `host` with `fields` (CRLF-terminated lines).
fn get_for(host: &str, path: &str, fields: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{fields}\r\n").into_bytes()
}

/// Sends `request` on `client` and reads the answer.
fn exchange(client: &mut Client, request: &[u8]) -> Response {
    client.send(request);
    client.response()
}

/// Every value of `name` in a request the backend saw.
fn all(seen: &Seen, name: &str) -> Vec<String> {
    seen.head.get_all(name).map(str::to_string).collect()
}

/// Asserts that `seen` carries the fields of [`EDITS`]: the set ones once
/// with their value, the removed ones not at all, and the others as the
/// client sent them.
#[track_caller]
fn assert_edited(seen: &Seen) {
    let raw = &seen.head.raw;
    assert_eq!(all(seen, "x-backend-auth"), [AUTH], "{raw}");
    assert_eq!(all(seen, "x_api_key"), ["k1"], "{raw}");
    assert_eq!(all(seen, "accept-encoding"), Vec::<String>::new(), "{raw}");
    assert_eq!(all(seen, "x-debug"), Vec::<String>::new(), "{raw}");
    assert_eq!(all(seen, "x-other"), ["kept"], "{raw}");
}

/// The configuration a test proxy starts with (as `start_proxy` makes it),
/// for a reload: `tweak` changes it.
#[test]
fn a_set_field_replaces_every_one_the_client_sent_and_a_removed_one_is_gone() {
    let backend = Backend::echo("a");
    let proxy = start_proxy(&[backend.addr], |c| c.request_headers = edits(EDITS));
    let mut client = proxy.connect();
    let r = exchange(&mut client, &get_for("shop.example", "/", CLIENT_FIELDS));
    assert_eq!(r.status, 200);
    // A POST on the same connection: its body and framing as they were.
    let post = format!(
        "POST /form HTTP/1.1\r\nHost: shop.example\r\n{CLIENT_FIELDS}Content-Length: 5\r\n\r\nhello"
    );
    let r = exchange(&mut client, post.as_bytes());
    assert_eq!(r.status, 200);
    assert!(
        r.body_str().starts_with("a POST /form len=5 "),
        "{}",
        r.body_str()
    );
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_edited(s);
        // The proxy's own fields, as without the keys.
        assert_eq!(all(s, "host"), ["shop.example"], "{}", s.head.raw);
        assert_eq!(all(s, "x-forwarded-host"), ["shop.example"]);
        assert_eq!(all(s, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(all(s, "connection"), Vec::<String>::new());
    }
    assert_eq!(seen[1].body, b"hello");
    assert_eq!(all(&seen[1], "content-length"), ["5"]);
}

#[test]
fn with_underscores_allowed_a_client_s_field_read_as_an_edited_one_goes_too() {
    // A backend that reads `_` as `-` (CGI, WSGI, Rack) would take the
    // client's X_Debug for the X-Debug taken out, its X_Backend_Auth for
    // the credential set, and its X-Api-Key for the X_Api_Key set.
    let backend = Backend::echo("a");
    let proxy = start_proxy(&[backend.addr], |c| {
        c.request_headers = edits(EDITS);
        c.underscores_in_headers = true;
    });
    let mut client = proxy.connect();
    let fields = "X_Backend_Auth: forged\r\n\
                  x_debug: 1\r\n\
                  Accept_Encoding: gzip\r\n\
                  X-Api-Key: forged\r\n\
                  X_Other: kept\r\n";
    let r = exchange(&mut client, &get_for("shop.example", "/", fields));
    assert_eq!(r.status, 200);
    let seen = &backend.seen()[0];
    let raw = &seen.head.raw;
    for gone in ["x_backend_auth", "x_debug", "accept_encoding", "x-api-key"] {
        assert_eq!(all(seen, gone), Vec::<String>::new(), "{gone}: {raw}");
    }
    assert_eq!(all(seen, "x-backend-auth"), [AUTH], "{raw}");
    assert_eq!(all(seen, "x_api_key"), ["k1"], "{raw}");
    assert_eq!(all(seen, "x_other"), ["kept"], "{raw}");
}

// ---------------------------------------------------------------- Host

/// A backend that says which Host it was asked for, and what the proxy
/// told it of the client's, in a body the cache may keep for ten minutes.
fn host_backend() -> Backend {
    Backend::start("vhost", |seen, out| {
        let body = format!(
            "host={} xfh={} fwd={}",
            seen.field_or("host", "-"),
            seen.field_or("x-forwarded-host", "-"),
            seen.field_or("forwarded", "-")
        );
        respond(
            out,
            200,
            &[("Cache-Control", "max-age=600")],
            body.as_bytes(),
        );
        Action::KeepAlive
    })
}

#[test]
fn host_set_reaches_the_backend_while_the_cache_key_and_the_forwarded_host_stay_the_client_s() {
    let backend = host_backend();
    let proxy = start_proxy(&[backend.addr], |c| {
        c.cache_size = 4 << 20;
        c.log_headers = true;
        c.request_headers = edits("request_header.Host = api.internal:8080\n");
    });
    let get = |host: &str| proxy.exchange(|c| exchange(c, &get_for(host, "/p", "")));
    let a = get("a.example");
    assert_eq!(a.header("x-cache"), Some("MISS"));
    assert_eq!(
        a.body_str(),
        "host=api.internal:8080 xfh=a.example fwd=for=127.0.0.1;host=a.example;proto=http"
    );
    // Another client's Host is another entry, though the backend saw the
    // same Host for both: what is stored for a is not served for b.
    let b = get("B.Example.");
    assert_eq!(b.header("x-cache"), Some("MISS"), "{}", b.head.raw);
    assert_eq!(
        b.body_str(),
        "host=api.internal:8080 xfh=b.example fwd=for=127.0.0.1;host=b.example;proto=http"
    );
    assert_eq!(backend.requests(), 2);
    let a = get("a.example");
    assert_eq!(a.header("x-cache"), Some("HIT"));
    assert!(a.body_str().contains("xfh=a.example"), "{}", a.body_str());
    assert_eq!(backend.requests(), 2);
    for seen in backend.seen() {
        assert_eq!(
            all(&seen, "host"),
            ["api.internal:8080"],
            "{}",
            seen.head.raw
        );
    }
    // The log shows the request as the client sent it.
    assert!(wait_until(WAIT_LIMIT, || proxy.log_lines().len() >= 3));
    let lines = proxy.log_lines();
    assert!(lines[0].contains("Host: a.example"), "{}", lines[0]);
    assert!(lines[1].contains("Host: B.Example."), "{}", lines[1]);
    assert!(
        lines.iter().all(|l| !l.contains("api.internal")),
        "{lines:?}"
    );
}

#[test]
fn an_http_1_0_request_without_host_gets_the_host_set() {
    let backend = Backend::echo("a");
    let proxy = start_proxy(&[backend.addr], |c| {
        c.request_headers = edits("request_header.Host = api.internal\n");
    });
    let r = exchange(&mut proxy.connect(), b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    let seen = &backend.seen()[0];
    assert_eq!(all(seen, "host"), ["api.internal"], "{}", seen.head.raw);
    assert_eq!(all(seen, "x-forwarded-host"), Vec::<String>::new());
}

// ---------------------------------------------------------------- the cache

#[test]
fn vary_is_matched_on_the_client_s_fields_not_the_edited_ones() {
    // The backend varies on a field the proxy takes away: it always sees
    // none, and the cache keeps one entry per value clients send.
    let backend = Backend::start("vary", |seen, out| {
        let encoding = seen.field_or("accept-encoding", "none");
        respond(
            out,
            200,
            &[
                ("Cache-Control", "max-age=600"),
                ("Vary", "Accept-Encoding"),
            ],
            format!("encoded {encoding}").as_bytes(),
        );
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], |c| {
        c.cache_size = 4 << 20;
        c.request_headers = edits("request_header.Accept-Encoding =\n");
    });
    let get = |fields: &str| proxy.exchange(|c| exchange(c, &get_for("a", "/v", fields)));
    let gzip = "Accept-Encoding: gzip\r\n";
    for (fields, cache) in [(gzip, "MISS"), (gzip, "HIT"), ("", "MISS"), ("", "HIT")] {
        let r = get(fields);
        assert_eq!(r.body_str(), "encoded none");
        assert_eq!(r.header("x-cache"), Some(cache), "{fields:?}");
    }
    assert_eq!(backend.requests(), 2);
}

#[test]
fn the_cache_s_background_and_conditional_revalidations_carry_them() {
    // Stale on arrival (Age past max-age) with a window to serve it stale
    // while it is revalidated; the revalidation's 304 makes it stale
    // again, so the next request revalidates before it is answered.
    let backend = Backend::start("origin", |seen, out| {
        if seen.head.has("if-none-match") {
            let _ = out.write_all(
                b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=0\r\n\r\n",
            );
        } else {
            respond(
                out,
                200,
                &[
                    ("Cache-Control", "max-age=50, stale-while-revalidate=1000"),
                    ("Age", "100"),
                    ("ETag", "\"v1\""),
                ],
                b"body",
            );
        }
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], |c| {
        c.cache_size = 4 << 20;
        c.request_headers = edits(EDITS);
    });
    let get = || proxy.exchange(|c| exchange(c, &get_for("a", "/s", CLIENT_FIELDS)));
    assert_eq!(get().header("x-cache"), Some("MISS"));
    let stale = get();
    assert_eq!(stale.header("x-cache"), Some("STALE"), "{}", stale.head.raw);
    // Revalidated in the background, after the answer.
    assert!(wait_until(WAIT_LIMIT, || backend.requests() == 2));
    let revalidated = get();
    assert_eq!(revalidated.header("x-cache"), Some("REVALIDATED"));
    assert_eq!(revalidated.body, b"body");
    let seen = backend.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_edited(s);
    }
    // The last two were the cache's conditional requests.
    for s in &seen[1..] {
        assert_eq!(all(s, "if-none-match"), ["\"v1\""], "{}", s.head.raw);
    }
}

// ---------------------------------------------------------------- retries

#[test]
fn a_request_retried_on_another_target_carries_them_to_each() {
    let busy = Backend::start("busy", |_, out| {
        respond(out, 503, &[], b"busy");
        Action::KeepAlive
    });
    let spare = Backend::echo("spare");
    let proxy = start_proxy(&[busy.addr, spare.addr], |c| {
        c.retry_on_status = RetryOnStatus::parse("503").unwrap();
        c.request_headers = edits(EDITS);
    });
    // Round robin over two: one of two requests starts at the busy one.
    for path in ["/1", "/2"] {
        let r = exchange(&mut proxy.connect(), &get_for("a", path, CLIENT_FIELDS));
        assert_eq!((r.status, r.header("x-backend")), (200, Some("spare")));
    }
    assert_eq!((busy.requests(), spare.requests()), (1, 2));
    for s in busy.seen().iter().chain(&spare.seen()) {
        assert_edited(s);
    }
}

// ---------------------------------------------------------------- upgrade

#[test]
fn a_websocket_upgrade_request_carries_them() {
    let backend = Backend::start("ws", |seen, out| {
        if seen.head.get("upgrade") == Some("websocket") {
            let _ = out.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello",
            );
            return Action::Close;
        }
        respond(out, 426, &[("Upgrade", "websocket")], b"upgrade required");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], |c| {
        c.request_headers = edits(&format!("{EDITS}request_header.Host = chat.internal\n"));
    });
    let mut client = proxy.connect();
    let fields = "Connection: Upgrade, X-Backend-Auth\r\nUpgrade: websocket\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                  X-Backend-Auth: forged\r\nAccept-Encoding: gzip\r\nX-Debug: 1\r\nX-Other: kept\r\n";
    client.send(&get_for("chat.example", "/chat", fields));
    let r = client.try_response(true).unwrap();
    assert_eq!(r.status, 101, "{}", r.head.raw);
    // The tunnel carries what the backend sent after its head.
    assert_eq!(client.read_until_closed(), b"hello");
    let seen = &backend.seen()[0];
    assert_edited(seen);
    assert_eq!(all(seen, "host"), ["chat.internal"]);
    assert_eq!(all(seen, "x-forwarded-host"), ["chat.example"]);
    assert_eq!(all(seen, "upgrade"), ["websocket"]);
    assert!(
        seen.head.has_token("connection", "upgrade"),
        "{}",
        seen.head.raw
    );
}

// ---------------------------------------------------------------- reload

#[test]
fn a_reload_changes_the_fields_of_the_next_requests() {
    let backend = Backend::echo("a");
    let proxy = start_proxy(&[backend.addr], |c| c.request_headers = edits(EDITS));
    let mut held = proxy.connect();
    exchange(&mut held, &get_for("a", "/1", CLIENT_FIELDS));
    assert_edited(&backend.seen()[0]);
    proxy.reload(&[backend.addr], |c| {
        c.request_headers =
            edits("request_header.X-Debug = on\nrequest_header.Host = b.internal\n");
    });
    // On a connection open since before the reload too.
    exchange(&mut held, &get_for("a", "/2", CLIENT_FIELDS));
    exchange(&mut proxy.connect(), &get_for("a", "/3", CLIENT_FIELDS));
    for s in &backend.seen()[1..] {
        assert_eq!(all(s, "x-debug"), ["on"], "{}", s.head.raw);
        assert_eq!(all(s, "host"), ["b.internal"]);
        // Not set any more: named in the client's Connection, its own
        // goes as a hop-by-hop field.
        assert_eq!(all(s, "x-backend-auth"), Vec::<String>::new());
        assert_eq!(all(s, "accept-encoding"), ["gzip, br"]);
        assert_eq!(all(s, "x_api_key"), Vec::<String>::new());
    }
    // And back: none at all.
    proxy.reload(&[backend.addr], |_| {});
    exchange(&mut held, &get_for("a", "/4", CLIENT_FIELDS));
    let last = backend.seen().pop().unwrap();
    assert_eq!(all(&last, "x-debug"), ["1", "2"]);
    assert_eq!(all(&last, "host"), ["a"]);
}

// ---------------------------------------------------------------- probes

/// Health checks every 20 ms on `/health`.
fn checks(config: &mut Config) {
    config.health_check_path = Some("/health".to_string());
    config.health_check_interval = Duration::from_millis(20);
    config.health_check_timeout = Some(Duration::from_secs(5));
}

/// The probes `backend` has received so far.
fn probes(backend: &Backend) -> Vec<Seen> {
    let seen = backend.seen();
    seen.into_iter().filter(|s| s.path() == "/health").collect()
}

#[test]
fn probes_send_the_host_set_unless_health_check_host_says_otherwise_and_nothing_else() {
    let backend = Backend::echo("a");
    let lines = format!("{EDITS}request_header.Host = api.internal\n");
    let proxy = start_proxy(&[backend.addr], |c| {
        checks(c);
        c.request_headers = edits(&lines);
    });
    assert!(wait_until(WAIT_LIMIT, || probes(&backend).len() >= 2));
    for probe in probes(&backend) {
        assert_eq!(all(&probe, "host"), ["api.internal"], "{}", probe.head.raw);
        // The other fields are the requests', not the probes'.
        assert_eq!(all(&probe, "x-backend-auth"), Vec::<String>::new());
    }
    drop(proxy);

    let other = Backend::echo("b");
    let _proxy = start_proxy(&[other.addr], |c| {
        checks(c);
        c.health_check_host = Some("health.example".to_string());
        c.request_headers = edits(&lines);
    });
    assert!(wait_until(WAIT_LIMIT, || probes(&other).len() >= 2));
    for probe in probes(&other) {
        assert_eq!(
            all(&probe, "host"),
            ["health.example"],
            "{}",
            probe.head.raw
        );
    }
}
