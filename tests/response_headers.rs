//! `response_header.<Name>`: fields set or removed on every response sent
//! to a client (backend answers buffered or streamed, cache hits, the
//! proxy's own errors), never on what the cache stores, and never on an
//! interim response.

mod support;

use inverso::config::Loader;
use inverso::http::edits::FieldEdits;
use std::io::Write;
use std::time::Duration;
use support::*;

/// The usual security fields, with the `;` and `,` a list key could not
/// hold, and the leaks people hide.
const EDITS: &str = "\
response_header.Strict-Transport-Security = max-age=63072000; includeSubDomains
response_header.X-Frame-Options = DENY
response_header.Content-Security-Policy = default-src 'self'; img-src 'self' data:, https:
response_header.X-Powered-By =            # removed
response_header.server =
";
const HSTS: &str = "max-age=63072000; includeSubDomains";
const CSP: &str = "default-src 'self'; img-src 'self' data:, https:";

/// The edits the `response_header.*` lines of `lines` give, read as
/// proxy.conf is.
fn edits(lines: &str) -> FieldEdits {
    let text = format!("targets = 127.0.0.1:1\n{lines}");
    let mut loader = Loader::new();
    loader.file("proxy.conf", &text).unwrap();
    loader.build().unwrap().response_headers
}

/// Asserts the fields of [`EDITS`]: each set one there once with its
/// value, each removed one absent.
#[track_caller]
fn assert_edited(r: &Response) {
    let all = |name| r.head.get_all(name).collect::<Vec<_>>();
    assert_eq!(all("strict-transport-security"), [HSTS], "{}", r.head.raw);
    assert_eq!(all("x-frame-options"), ["DENY"], "{}", r.head.raw);
    assert_eq!(all("content-security-policy"), [CSP], "{}", r.head.raw);
    assert_eq!(all("x-powered-by"), Vec::<&str>::new(), "{}", r.head.raw);
    assert_eq!(all("server"), Vec::<&str>::new(), "{}", r.head.raw);
}

/// A backend that answers with the fields the edits name (one of them
/// twice), plus `extra` lines, and `body`.
fn leaky_backend(extra: &'static str, body: &'static [u8]) -> Backend {
    Backend::start("leaky", move |seen, out| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Frame-Options: SAMEORIGIN\r\nX-Powered-By: Express\r\n\
             Server: app/1.2\r\nx-frame-options: ALLOWALL\r\nX-App: kept\r\n{extra}\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = out.write_all(head.as_bytes());
        if seen.method() != "HEAD" {
            let _ = out.write_all(body);
        }
        Action::KeepAlive
    })
}

/// The configuration a test proxy starts with (as `start_proxy` makes it),
/// for a reload: `tweak` changes it.
#[test]
fn a_set_field_replaces_every_one_the_backend_sent_and_a_removed_one_is_gone() {
    let backend = leaky_backend("", b"hello");
    let proxy = start_proxy(&[backend.addr], |c| c.response_headers = edits(EDITS));
    let mut client = proxy.connect();
    let r = client.get("/");
    assert_eq!(r.status, 200);
    assert_edited(&r);
    assert_eq!(r.header("x-app"), Some("kept"));
    assert_eq!(r.body, b"hello");
    // The answer to a HEAD too, and the connection goes on.
    let r = client.head("/");
    assert_eq!(r.status, 200);
    assert_edited(&r);
    assert_eq!(r.header("content-length"), Some("5"));
    assert_eq!(client.get("/again").body, b"hello");
}

#[test]
fn without_the_keys_the_backend_s_fields_go_as_they_came() {
    let backend = leaky_backend("", b"hello");
    let proxy = start_proxy(&[backend.addr], |_| {});
    let r = proxy.connect().get("/");
    let all = |name| r.head.get_all(name).collect::<Vec<_>>();
    assert_eq!(all("x-frame-options"), ["SAMEORIGIN", "ALLOWALL"]);
    assert_eq!(all("x-powered-by"), ["Express"]);
    assert_eq!(all("strict-transport-security"), Vec::<&str>::new());
}

#[test]
fn a_streamed_chunked_response_gets_them_and_its_body_whole() {
    // Larger than response_buffer_size, in pieces with pauses between:
    // the head goes out before the body has come.
    let backend = Backend::start("streaming", |_, out| {
        let _ = out.write_all(
            b"HTTP/1.1 200 OK\r\nX-Powered-By: PHP/8\r\nX-Frame-Options: SAMEORIGIN\r\n\
              Server: app\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        for i in 0..8u8 {
            let piece = vec![b'a' + i; 32 * 1024];
            let _ = write!(out, "{:x}\r\n", piece.len());
            let _ = out.write_all(&piece);
            let _ = out.write_all(b"\r\n");
            let _ = out.flush();
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = out.write_all(b"0\r\n\r\n");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], |c| {
        c.response_headers = edits(EDITS);
        c.response_buffer_size = 16 * 1024;
    });
    let r = proxy.connect().get("/events");
    assert_eq!(r.status, 200);
    assert!(r.head.is_chunked(), "{}", r.head.raw);
    assert_edited(&r);
    assert_eq!(r.body.len(), 8 * 32 * 1024);
    assert!(r.body.starts_with(b"aaa") && r.body.ends_with(b"hhh"));
}

#[test]
fn a_large_body_of_known_length_streams_with_them() {
    const LEN: usize = 1 << 20;
    let backend = Backend::start("large", |_, out| {
        let body = pattern(LEN);
        respond(
            out,
            200,
            &[
                ("X-Powered-By", "Express"),
                ("X-Frame-Options", "SAMEORIGIN"),
            ],
            &body,
        );
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], |c| c.response_headers = edits(EDITS));
    let r = proxy.connect().get("/large");
    assert_edited(&r);
    assert_eq!(r.header("content-length"), Some("1048576"));
    assert_eq!(fnv(&r.body), fnv(&pattern(LEN)));
}

#[test]
fn an_interim_response_is_left_alone_and_the_final_one_edited() {
    let backend = Backend::start("hints", |_, out| {
        let _ = out.write_all(
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nX-Powered-By: Express\r\n\r\n",
        );
        respond(out, 200, &[("X-Powered-By", "Express")], b"final");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], |c| c.response_headers = edits(EDITS));
    let mut client = proxy.connect();
    let hints = client.get("/");
    assert_eq!(hints.status, 103, "{}", hints.head.raw);
    assert_eq!(hints.header("x-powered-by"), Some("Express"));
    assert_eq!(hints.header("x-frame-options"), None, "{}", hints.head.raw);
    let last = client.response();
    assert_eq!(last.status, 200);
    assert_edited(&last);
}

#[test]
fn removing_set_cookie_drops_the_backend_s_cookies_but_not_the_sticky_one() {
    let backend = Backend::start("cookies", |_, out| {
        respond(
            out,
            200,
            &[("Set-Cookie", "sid=1; HttpOnly"), ("Set-Cookie", "track=2")],
            b"x",
        );
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], |c| {
        c.response_headers = edits("response_header.Set-Cookie =\n");
        c.sticky_cookie = Some("SERVERID".into());
    });
    let r = proxy.connect().get("/");
    let cookies: Vec<&str> = r.head.get_all("set-cookie").collect();
    assert_eq!(cookies.len(), 1, "{}", r.head.raw);
    assert!(cookies[0].starts_with("SERVERID="), "{}", r.head.raw);
}

#[test]
fn cookie_flags_give_each_pool_s_cookies_theirs_and_leave_the_sticky_one_alone() {
    let cookies = |name: &str| {
        Backend::start(name, |_, out| {
            let fields = [
                ("Set-Cookie", "sid=1; Path=/; SameSite=None"),
                ("Set-Cookie", "lang=en; Secure"),
            ];
            respond(out, 200, &fields, b"x");
            Action::KeepAlive
        })
    };
    let (app, api) = (cookies("app"), cookies("api"));
    let text = format!(
        "targets = {}\nsticky_cookie = SRV\n\
         cookie_flags = sid secure httponly samesite=lax, * secure\n\
         pool.api = {}\npool.api.sticky_cookie =\npool.api.cookie_flags = lang nosecure\n\
         route./api = api\n",
        app.addr, api.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let set =
        |r: &Response| -> Vec<String> { r.head.get_all("set-cookie").map(String::from).collect() };
    let app_said = [
        "sid=1; Path=/; Secure; HttpOnly; SameSite=Lax",
        "lang=en; Secure",
    ];
    let first = get(&proxy, "/page", &[]);
    let first_set = set(&first);
    let (backend, sticky) = first_set.split_at(2);
    assert_eq!(backend, app_said, "{}", first.head.raw);
    // The sticky cookie says what sticky_cookie_attributes says, no more.
    assert!(sticky[0].starts_with("SRV=") && sticky[0].ends_with("; Path=/; HttpOnly"));
    // The pool's own rules, in place of the top level's.
    let api_said = get(&proxy, "/api/x", &[]);
    assert_eq!(
        set(&api_said),
        ["sid=1; Path=/; SameSite=None", "lang=en"],
        "{}",
        api_said.head.raw
    );
}

#[test]
fn cookie_domain_and_cookie_path_give_the_client_s_host_and_path_for_the_backend_s_own() {
    let backend = Backend::start("app", |_, out| {
        let fields = [
            ("Set-Cookie", "sid=1; Domain=app.internal; Path=/app/"),
            (
                "Set-Cookie",
                "pref=2; Domain=.static.internal; Path=/app/prefs",
            ),
            ("Set-Cookie", "other=3; Domain=example.net; Path=/else"),
        ];
        respond(out, 200, &fields, b"x");
        Action::KeepAlive
    });
    let text = format!(
        "targets = {}\ncookie_domain = app.internal $host, static.internal example.com\n\
         cookie_path = /app/ /\ncookie_flags = sid secure\n",
        backend.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let r = proxy.get_on("www.example.com:8080", "/", &[]);
    let cookies: Vec<&str> = r.head.get_all("set-cookie").collect();
    assert_eq!(
        cookies,
        [
            "sid=1; Domain=www.example.com; Path=/; Secure",
            "pref=2; Domain=.example.com; Path=/prefs",
            "other=3; Domain=example.net; Path=/else",
        ],
        "{}",
        r.head.raw
    );
}

#[test]
fn cookie_domain_and_cookie_path_patterns_replace_the_values_they_match() {
    let backend = Backend::start("app", |_, out| {
        let fields = [
            (
                "Set-Cookie",
                "sid=1; Domain=eu.app.internal; Path=/app/eu/cart",
            ),
            ("Set-Cookie", "other=3; Domain=example.net; Path=/else"),
        ];
        respond(out, 200, &fields, b"x");
        Action::KeepAlive
    });
    let text = format!(
        "targets = {}\ncookie_domain = ~^([a-z]+)\\.app\\.internal$ $1.$host\n\
         cookie_path = ~^/app/[a-z]+(/.*)$ $1\n",
        backend.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let r = proxy.get_on("www.example.com:8080", "/", &[]);
    let cookies: Vec<&str> = r.head.get_all("set-cookie").collect();
    assert_eq!(
        cookies,
        [
            "sid=1; Domain=eu.www.example.com; Path=/cart",
            "other=3; Domain=example.net; Path=/else",
        ],
        "{}",
        r.head.raw
    );
}

// ---------------------------------------------------------------- cache

/// A proxy with its cache on in front of `backend`, with `lines` of
/// `response_header.*`.
fn cached(backend: &Backend, lines: &str) -> Proxy {
    let edits = edits(lines);
    start_proxy(&[backend.addr], move |c| {
        c.cache_size = 4 << 20;
        c.response_headers = edits;
    })
}

/// One request on a connection of its own; returns once the proxy is done
/// with it (see `Proxy::exchange`).
fn get(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> Response {
    proxy.exchange(|c| c.get_with(path, headers))
}

/// The stored head of the one entry the cache holds, as the snapshot
/// would write it.
fn stored_head(proxy: &Proxy) -> String {
    let entries = proxy.handle().cache().unwrap().entries();
    assert_eq!(entries.len(), 1);
    String::from_utf8_lossy(&entries[0].record.head).into_owned()
}

#[test]
fn hits_get_them_and_the_entry_keeps_the_backend_s_fields_which_a_reload_shows() {
    let backend = leaky_backend(
        "Cache-Control: max-age=600\r\nETag: \"v1\"\r\n",
        b"0123456789",
    );
    let lines = format!("{EDITS}response_header.Cache-Control = no-store\n");
    let proxy = cached(&backend, &lines);
    let miss = get(&proxy, "/page", &[]);
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    assert_edited(&miss);
    assert_eq!(miss.header("cache-control"), Some("no-store"));
    // Stored as it came: the cache read its own max-age, and the
    // snapshot would keep every field the backend sent.
    let stored = stored_head(&proxy);
    for line in [
        "X-Frame-Options: SAMEORIGIN",
        "x-frame-options: ALLOWALL",
        "X-Powered-By: Express",
        "Server: app/1.2",
        "Cache-Control: max-age=600",
    ] {
        assert!(stored.contains(line), "{line} not in {stored:?}");
    }
    assert!(
        !stored.contains("DENY") && !stored.contains("no-store"),
        "{stored:?}"
    );
    for (i, hit) in [
        get(&proxy, "/page", &[]),
        proxy.exchange(|c| c.head("/page")),
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(hit.header("x-cache"), Some("HIT"), "{i}: {}", hit.head.raw);
        assert_edited(hit);
        assert_eq!(hit.header("cache-control"), Some("no-store"), "{i}");
        assert_eq!(hit.header("x-app"), Some("kept"), "{i}");
        assert_eq!(hit.header("content-length"), Some("10"), "{i}");
    }
    // A 304 made from the entry, and ranges cut from it.
    let not_modified = get(&proxy, "/page", &[("If-None-Match", "\"v1\"")]);
    assert_eq!(not_modified.status, 304, "{}", not_modified.head.raw);
    assert_edited(&not_modified);
    assert_eq!(not_modified.header("cache-control"), Some("no-store"));
    let part = get(&proxy, "/page", &[("Range", "bytes=2-4")]);
    assert_eq!((part.status, part.body_str().as_str()), (206, "234"));
    assert_edited(&part);
    let parts = get(&proxy, "/page", &[("Range", "bytes=0-1,5-6")]);
    assert_eq!(parts.status, 206);
    assert_edited(&parts);
    assert!(parts.body_str().contains("56"), "{}", parts.body_str());
    assert_eq!(backend.requests(), 1);
    // A reload changes what the stored entry goes out with, at once.
    proxy.reload(&[backend.addr], |c| {
        c.cache_size = 4 << 20;
        c.response_headers = edits("response_header.Permissions-Policy = geolocation=()\n");
    });
    let hit = get(&proxy, "/page", &[]);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    let all = |name| hit.head.get_all(name).collect::<Vec<_>>();
    assert_eq!(
        all("x-frame-options"),
        ["SAMEORIGIN", "ALLOWALL"],
        "{}",
        hit.head.raw
    );
    assert_eq!(all("x-powered-by"), ["Express"]);
    assert_eq!(all("cache-control"), ["max-age=600"]);
    assert_eq!(all("permissions-policy"), ["geolocation=()"]);
    assert_eq!(all("strict-transport-security"), Vec::<&str>::new());
    // And back: none at all.
    proxy.reload(&[backend.addr], |c| c.cache_size = 4 << 20);
    let hit = get(&proxy, "/page", &[]);
    assert_eq!(hit.header("permissions-policy"), None, "{}", hit.head.raw);
    assert_eq!(hit.header("x-powered-by"), Some("Express"));
    assert_eq!(backend.requests(), 1);
}

#[test]
fn stale_and_revalidated_answers_get_them() {
    // Stale on arrival (Age past max-age) with a window to serve it stale
    // while it is revalidated; the revalidation's 304 refreshes it.
    let backend = Backend::start("origin", |seen, out| {
        if seen.head.has("if-none-match") {
            let _ = out.write_all(
                b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nX-Powered-By: Express\r\n\
                  Cache-Control: max-age=0\r\n\r\n",
            );
        } else {
            respond(
                out,
                200,
                &[
                    ("Cache-Control", "max-age=50, stale-while-revalidate=1000"),
                    ("Age", "100"),
                    ("ETag", "\"v1\""),
                    ("X-Powered-By", "Express"),
                    ("X-Frame-Options", "SAMEORIGIN"),
                ],
                b"body",
            );
        }
        Action::KeepAlive
    });
    let proxy = cached(&backend, EDITS);
    assert_eq!(get(&proxy, "/s", &[]).header("x-cache"), Some("MISS"));
    let stale = get(&proxy, "/s", &[]);
    assert_eq!(stale.header("x-cache"), Some("STALE"), "{}", stale.head.raw);
    assert_edited(&stale);
    assert_eq!(stale.body, b"body");
    // Now refreshed with max-age=0: the next request revalidates first.
    assert!(wait_until(WAIT_LIMIT, || backend.requests() == 2));
    let revalidated = get(&proxy, "/s", &[]);
    assert_eq!(
        revalidated.header("x-cache"),
        Some("REVALIDATED"),
        "{}",
        revalidated.head.raw
    );
    assert_edited(&revalidated);
    assert_eq!(revalidated.body, b"body");
    assert!(stored_head(&proxy).contains("X-Powered-By: Express"));
}

#[test]
fn fields_longer_than_the_stored_head_go_out_whole_from_the_cache() {
    // Born stale: each GET after the first is revalidated, and the 304
    // brings a session cookie for this client alone.
    let cookie = format!("session={}; Path=/", "c".repeat(3000));
    let backend = {
        let cookie = cookie.clone();
        Backend::start("origin", move |seen, out| {
            let fields = [("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")];
            if seen.head.has("if-none-match") {
                write_304(
                    out,
                    &[fields[0], fields[1], ("Set-Cookie", cookie.as_str())],
                );
            } else {
                respond(out, 200, &fields, b"body");
            }
            Action::KeepAlive
        })
    };
    // A policy far longer than what the backend sent.
    let policy = format!("default-src 'self' {}", "https://cdn.example ".repeat(60));
    let lines = format!(
        "response_header.Content-Security-Policy = {}\n",
        policy.trim()
    );
    let proxy = cached(&backend, &lines);
    assert_eq!(get(&proxy, "/p", &[]).header("x-cache"), Some("MISS"));
    let revalidated = get(&proxy, "/p", &[]);
    let raw = &revalidated.head.raw;
    assert_eq!(revalidated.header("x-cache"), Some("REVALIDATED"), "{raw}");
    assert_eq!(revalidated.body, b"body");
    assert_eq!(
        revalidated.header("set-cookie"),
        Some(cookie.as_str()),
        "{raw}"
    );
    let csp = revalidated.header("content-security-policy");
    assert_eq!(csp, Some(policy.trim()), "{raw}");
    assert_eq!(backend.requests(), 2);
}

// ---------------------------------------------------------------- own answers

#[test]
fn the_proxy_s_own_502_gets_them_with_and_without_a_page() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("502.html"), "<h1>down</h1>").unwrap();
    for page in [false, true] {
        let pages = if page {
            inverso::error_pages::ErrorPages::load(dir.path().to_str().unwrap()).unwrap()
        } else {
            Default::default()
        };
        let proxy = start_proxy(&[dead_addr()], |c| {
            c.response_headers = edits(EDITS);
            c.error_pages = pages;
        });
        let mut client = proxy.connect();
        let r = client.get("/");
        assert_eq!(r.status, 502);
        assert_edited(&r);
        let body = if page {
            "<h1>down</h1>"
        } else {
            "502 Bad Gateway\n"
        };
        assert_eq!(r.body_str(), body);
        // A HEAD gets the head alone, with them.
        let r = client.head("/");
        assert_eq!(r.status, 502);
        assert_edited(&r);
        let len = body.len().to_string();
        assert_eq!(r.header("content-length"), Some(&len[..]));
        assert_eq!(client.get("/").body_str(), body, "page {page}");
    }
}

#[test]
fn a_503_over_max_connections_gets_them() {
    let backend = Backend::echo("a");
    let proxy = start_proxy(&[backend.addr], |c| {
        c.response_headers = edits(EDITS);
        c.max_connections = 1;
    });
    let mut first = proxy.connect();
    assert_eq!(first.get("/1").status, 200);
    let mut second = proxy.connect();
    second.send(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = second.response();
    assert_eq!(r.status, 503);
    assert_edited(&r);
}

#[test]
fn a_429_and_a_403_get_them() {
    let backend = Backend::echo("a");
    let proxy = start_proxy(&[backend.addr], |c| {
        c.response_headers = edits(EDITS);
        c.rate_limit = Some(inverso::ratelimit::Rate::parse("1/h").unwrap());
        c.rate_limit_burst = Some(0);
        c.request_id_header = Some("X-Request-ID".into());
    });
    let mut client = proxy.connect();
    assert_edited(&client.get("/1"));
    let r = client.get("/2");
    assert_eq!(r.status, 429);
    assert_edited(&r);
    assert!(r.header("retry-after").is_some() && r.header("x-request-id").is_some());

    let proxy = start_proxy(&[backend.addr], |c| {
        c.response_headers = edits(EDITS);
        c.deny_from = vec![inverso::realip::Cidr::parse("127.0.0.1").unwrap()].into();
    });
    let r = proxy.connect().get("/");
    assert_eq!(r.status, 403);
    assert_edited(&r);
}

#[test]
fn a_field_set_replaces_the_one_of_the_proxy_s_own_redirect() {
    // Two `Location` fields are no URI a client can follow (RFC 9110
    // §10.2.2): the set one replaces the redirect's, as a backend's.
    let backend = Backend::echo("a");
    let text = format!(
        "targets = {}\nroute./old/ = redirect 301 /new/\nresponse_header.Location = /set\n",
        backend.addr
    );
    let proxy = start_proxy(&[backend.addr], from_file(&text));
    let r = proxy.connect().get("/old/a");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.head.get_all("location").collect::<Vec<_>>(),
        ["/set"],
        "{}",
        r.head.raw
    );
}

#[test]
fn a_malformed_request_s_400_gets_them() {
    let proxy = start_proxy(&[dead_addr()], |c| c.response_headers = edits(EDITS));
    let mut client = proxy.connect();
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Field: y\r\n\r\n");
    let r = client.response();
    assert_eq!(r.status, 400);
    assert_edited(&r);
}

#[test]
fn a_reload_changes_the_fields_of_the_next_answers() {
    let backend = leaky_backend("", b"x");
    let proxy = start_proxy(&[backend.addr], |c| c.response_headers = edits(EDITS));
    let mut held = proxy.connect();
    assert_edited(&held.get("/"));
    proxy.reload(&[backend.addr], |c| {
        c.response_headers = edits("response_header.X-Frame-Options = SAMEORIGIN\n");
    });
    // On a connection open since before the reload too.
    for r in [held.get("/"), proxy.connect().get("/")] {
        let all = |name| r.head.get_all(name).collect::<Vec<_>>();
        assert_eq!(all("x-frame-options"), ["SAMEORIGIN"], "{}", r.head.raw);
        assert_eq!(all("x-powered-by"), ["Express"]);
        assert_eq!(all("strict-transport-security"), Vec::<&str>::new());
    }
}
