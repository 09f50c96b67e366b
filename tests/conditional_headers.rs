//! `response_header.<Name> if <condition>` and `request_header.<Name> if
//! <condition>`: fields set or removed on the requests that meet a
//! condition (HAProxy's `http-response set-header ... if <acl>`, nginx's
//! `map` feeding `add_header`), the first met of one name taking the
//! place of the one without, and a field no edit applies to left as it
//! came.

mod support;

use std::io::Write;
use support::*;

/// A CORS list of origins, a frame rule that one path escapes, and a
/// field the internal clients alone get.
const RULES: &str = r"
response_header.Access-Control-Allow-Origin if header_reg Origin ^https://(app|admin)\.example\.com$ = $http_origin
response_header.Access-Control-Allow-Credentials if header_reg Origin ^https://(app|admin)\.example\.com$ = true
response_header.X-Frame-Options if path_beg /embed/ =
response_header.X-Frame-Options if path_beg /partners/ = SAMEORIGIN
response_header.X-Frame-Options = DENY
response_header.X-App if method POST =
request_header.X-Internal if client 127.0.0.0/8 = yes
request_header.X-Internal if not client 127.0.0.0/8 =
";

/// A backend whose answers carry fields the rules name, storable for a
/// minute so that a second request is a cache hit.
fn framed_backend() -> Backend {
    Backend::start("framed", |seen, out| {
        let body = b"hello";
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Frame-Options: ALLOWALL\r\nX-App: app/1\r\n\
             Cache-Control: max-age=60\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = out.write_all(head.as_bytes());
        if seen.method() != "HEAD" {
            let _ = out.write_all(body);
        }
        Action::KeepAlive
    })
}

/// A proxy with the rules in front of `backend`, with a cache.
fn proxy_for(backend: &Backend) -> Proxy {
    let text = format!("targets = {}\n{RULES}", backend.addr);
    let rules = from_file(&text);
    start_proxy(&[backend.addr], |c| {
        rules(c);
        c.cache_size = 1 << 20;
    })
}

fn all<'r>(r: &'r Response, name: &str) -> Vec<&'r str> {
    r.head.get_all(name).collect()
}

#[test]
fn an_origin_on_the_list_is_echoed_and_another_gets_no_cors_field() {
    let backend = framed_backend();
    let proxy = proxy_for(&backend);
    let mut client = proxy.connect();
    for (origin, allowed) in [
        ("https://app.example.com", true),
        ("https://evil.example.net", false),
        ("https://app.example.com.evil.net", false),
        ("https://admin.example.com", true),
    ] {
        // The first from the backend, the rest hits: the cache stores the
        // backend's fields, and each answer is edited for its request.
        let r = client.get_with("/api/items", &[("Origin", origin)]);
        assert_eq!(r.status, 200, "{origin}");
        assert!(r.header("x-cache").is_some(), "{}", r.head.raw);
        let expected: &[&str] = if allowed { &[origin] } else { &[] };
        assert_eq!(
            all(&r, "access-control-allow-origin"),
            expected,
            "{}",
            r.head.raw
        );
        let credentials: &[&str] = if allowed { &["true"] } else { &[] };
        assert_eq!(all(&r, "access-control-allow-credentials"), credentials);
    }
    let r = client.get("/api/items");
    assert!(
        r.header("access-control-allow-origin").is_none(),
        "{}",
        r.head.raw
    );
    assert_eq!(backend.requests(), 1, "the rest were cache hits");
}

#[test]
fn the_first_condition_met_takes_the_place_of_the_field_without_one() {
    let backend = framed_backend();
    let proxy = proxy_for(&backend);
    let mut client = proxy.connect();
    for _ in 0..2 {
        // Without a condition met: DENY in place of the backend's.
        let r = client.get("/");
        assert_eq!(all(&r, "x-frame-options"), ["DENY"], "{}", r.head.raw);
        // Removed under /embed/, the backend's too.
        let r = client.get("/embed/video");
        assert_eq!(
            all(&r, "x-frame-options"),
            Vec::<&str>::new(),
            "{}",
            r.head.raw
        );
        let r = client.get("/partners/x");
        assert_eq!(all(&r, "x-frame-options"), ["SAMEORIGIN"], "{}", r.head.raw);
    }
}

#[test]
fn a_field_whose_condition_is_not_met_goes_as_the_backend_sent_it() {
    let backend = framed_backend();
    let proxy = proxy_for(&backend);
    let mut client = proxy.connect();
    let r = client.get("/");
    assert_eq!(r.header("x-app"), Some("app/1"), "{}", r.head.raw);
    let r = client.post("/form", b"a=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-app"), None, "{}", r.head.raw);
}

#[test]
fn a_request_field_is_set_for_the_clients_its_condition_takes() {
    let backend = Backend::echo("echo");
    let text = format!("targets = {}\ncache_size = 0\n{RULES}", backend.addr);
    let proxy = start_proxy(&[backend.addr], from_file(&text));
    let mut client = proxy.connect();
    client.get_with("/a", &[("X-Internal", "forged")]);
    let seen = backend.seen();
    let values: Vec<&str> = seen[0].head.get_all("x-internal").collect();
    assert_eq!(values, ["yes"], "{}", seen[0].head.raw);
}

#[test]
fn a_request_field_removed_for_other_clients_never_reaches_the_backend() {
    let backend = Backend::echo("echo");
    let rules = "request_header.X-Internal if client 10.0.0.0/8 = yes\n\
                 request_header.X-Internal =\n";
    let text = format!("targets = {}\n{rules}", backend.addr);
    let proxy = start_proxy(&[backend.addr], from_file(&text));
    proxy.connect().get_with("/a", &[("X-Internal", "forged")]);
    let seen = backend.seen();
    assert_eq!(seen[0].head.get("x-internal"), None, "{}", seen[0].head.raw);
}

#[test]
fn the_proxy_s_own_answers_are_edited_by_the_same_rules() {
    let backend = framed_backend();
    let text = format!(
        "targets = {}\nroute./health = return 200 ok\n{RULES}",
        backend.addr
    );
    let proxy = start_proxy(&[backend.addr], from_file(&text));
    let mut client = proxy.connect();
    let r = client.get_with("/health", &[("Origin", "https://app.example.com")]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(all(&r, "x-frame-options"), ["DENY"]);
    let r = client.get_with("/health", &[("Origin", "https://other.example.org")]);
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "{}",
        r.head.raw
    );
}

#[test]
fn an_answer_to_a_request_never_routed_gets_the_keys_without_a_condition() {
    let backend = framed_backend();
    let proxy = proxy_for(&backend);
    let mut client = proxy.connect();
    client.send(b"GET /embed/ HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n");
    let r = client.response();
    assert_eq!(r.status, 400);
    assert_eq!(all(&r, "x-frame-options"), ["DENY"], "{}", r.head.raw);
    assert_eq!(backend.requests(), 0);
}

/// Fields chosen by the status of each answer, whoever gives it: a
/// backend, the cache, or the proxy itself.
const BY_STATUS: &str = "
route./teapot = return 418
response_header.Cache-Control = max-age=60
response_header.Cache-Control if status 404,410 = no-store
response_header.Server if status 5xx =
response_header.X-Redirected if status 3xx and path_beg /old/ = yes
response_header.X-Not-Modified if status 304 = 1
response_header.X-Refused if status 400 = malformed
response_header.X-Refused if status 400 and path_beg / = routed
";

/// A backend that answers `/missing` 404, `/down` 503, `/old/...` 301
/// and anything else 200 with an ETag, each naming itself in `Server`.
fn status_backend() -> Backend {
    Backend::start("status", |seen, out| {
        let (status, extra) = match seen.path() {
            "/missing" => ("404 Not Found", ""),
            "/down" => ("503 Service Unavailable", ""),
            p if p.starts_with("/old/") => ("301 Moved Permanently", "Location: /new/\r\n"),
            _ => ("200 OK", "ETag: \"v1\"\r\n"),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nServer: app/1\r\nCache-Control: max-age=600\r\n{extra}\
             Content-Length: 2\r\n\r\n"
        );
        let _ = out.write_all(head.as_bytes());
        let _ = out.write_all(b"ok");
        Action::KeepAlive
    })
}

#[test]
fn a_field_the_status_decides_goes_on_the_answers_of_that_status_alone() {
    let backend = status_backend();
    let text = format!("targets = {}\n{BY_STATUS}", backend.addr);
    let rules = from_file(&text);
    let proxy = start_proxy(&[backend.addr], |c| {
        rules(c);
        c.cache_size = 1 << 20;
    });
    let mut client = proxy.connect();
    for (path, status, cache_control, server) in [
        ("/page", 200, "max-age=60", Some("app/1")),
        ("/missing", 404, "no-store", Some("app/1")),
        ("/down", 503, "max-age=60", None),
        ("/old/a", 301, "max-age=60", Some("app/1")),
        ("/teapot", 418, "max-age=60", None),
    ] {
        let r = client.get(path);
        assert_eq!(r.status, status, "{path}");
        assert_eq!(all(&r, "cache-control"), [cache_control], "{}", r.head.raw);
        assert_eq!(r.header("server"), server, "{}", r.head.raw);
        let redirected: &[&str] = if status == 301 { &["yes"] } else { &[] };
        assert_eq!(all(&r, "x-redirected"), redirected, "{}", r.head.raw);
    }
    // From the cache: a hit keeps the 200's fields, and a client's own
    // conditional request gets its 304's.
    let r = client.get("/page");
    assert_eq!(r.header("x-cache"), Some("HIT"), "{}", r.head.raw);
    assert_eq!(all(&r, "cache-control"), ["max-age=60"]);
    assert_eq!(all(&r, "x-not-modified"), Vec::<&str>::new());
    let r = client.get_with("/page", &[("If-None-Match", "\"v1\"")]);
    assert_eq!(r.status, 304, "{}", r.head.raw);
    assert_eq!(all(&r, "x-not-modified"), ["1"], "{}", r.head.raw);
    assert_eq!(all(&r, "cache-control"), ["max-age=60"]);
    // The stored answer is the backend's: only what is sent is edited.
    assert_eq!(backend.requests(), 4, "/teapot is the proxy's own");
}

#[test]
fn a_request_never_routed_gets_the_fields_its_status_chooses() {
    let backend = status_backend();
    let text = format!("targets = {}\n{BY_STATUS}", backend.addr);
    let proxy = start_proxy(&[backend.addr], from_file(&text));
    let mut client = proxy.connect();
    client.send(b"GET /old/a HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n");
    let r = client.response();
    assert_eq!(r.status, 400);
    // Keys with a condition on the request are not asked of a request
    // never read, whatever its path said.
    assert_eq!(all(&r, "x-refused"), ["malformed"], "{}", r.head.raw);
    assert_eq!(all(&r, "cache-control"), ["max-age=60"], "{}", r.head.raw);
    assert_eq!(all(&r, "x-redirected"), Vec::<&str>::new());
    assert_eq!(backend.requests(), 0);
}
