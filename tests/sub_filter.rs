//! `sub_filter` (nginx's `sub_filter`): strings replaced in the bodies of
//! the responses of the `sub_filter_types` as they are relayed, found in
//! any case, the rewritten body streamed with its length unknown, stored
//! rewritten by the cache and compressed after it is rewritten. What is
//! coded, partial, `no-transform` or of another type goes as it came.

mod support;

use flate2::read::GzDecoder;
use std::io::{Read, Write};
use std::net::SocketAddr;
use support::*;

/// The address an application writes into its pages, and the one its
/// clients know it by.
const APP: &str = "http://app.internal/";
const WWW: &str = "https://www.example.test/";

/// Every match of `APP` replaced with `WWW`.
const EVERY: &str =
    "sub_filter = http://app.internal/ https://www.example.test/\nsub_filter_once = false\n";

const HTML: &[(&str, &str)] = &[("Content-Type", "text/html; charset=utf-8")];

/// A backend answering every request with `status`, `fields` and `body`
/// (its length in `Content-Length`); a HEAD gets the head alone, the
/// length still the body's, as a server says it.
fn serving(status: u16, fields: &'static [(&'static str, &'static str)], body: &[u8]) -> Backend {
    let body = body.to_vec();
    Backend::start("app", move |seen, out| {
        match seen.method() {
            "HEAD" => {
                let mut head = format!("HTTP/1.1 {status} Whatever\r\n");
                for (name, value) in fields {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                let _ = out.write_all(head.as_bytes());
            }
            _ => respond(out, status, fields, &body),
        }
        Action::KeepAlive
    })
}

fn proxy_with(backend: SocketAddr, lines: &str) -> Proxy {
    start_proxy(&[], from_file(&format!("targets = {backend}\n{lines}")))
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

#[test]
fn a_page_read_whole_goes_with_its_new_length_in_one_write() {
    let page = b"<a href=\"http://APP.internal/x\">http://app.Internal/y</a>";
    let backend = serving(200, HTML, page);
    let proxy = proxy_with(backend.addr, EVERY);
    let wanted = "<a href=\"https://www.example.test/x\">https://www.example.test/y</a>";
    let r = proxy.connect().get("/");
    assert_eq!(r.status, 200);
    assert_eq!(text(&r.body), wanted);
    assert!(!r.head.is_chunked(), "{}", r.head.raw);
    let length = wanted.len().to_string();
    assert_eq!(r.head.get("content-length"), Some(length.as_str()));
}

#[test]
fn a_page_that_streams_is_rewritten_in_any_case_and_goes_without_a_length() {
    let page = b"<a href=\"http://APP.internal/x\">http://app.Internal/y</a>";
    let backend = serving(200, HTML, page);
    // Every body streams.
    let proxy = proxy_with(backend.addr, &format!("{EVERY}response_buffer_size = 0\n"));
    let wanted =
        "<a href=\"https://www.example.test/x\">https://www.example.test/y</a>".to_string();

    // Its length is no longer the backend's: chunked to HTTP/1.1.
    let r = proxy.connect().get("/");
    assert_eq!(r.status, 200);
    assert_eq!(text(&r.body), wanted);
    assert!(r.head.is_chunked(), "{}", r.head.raw);
    assert!(!r.head.has("content-length"), "{}", r.head.raw);

    // HTTP/1.0 has no chunks: the body ends where the connection does,
    // though the client asked to keep it.
    let mut old = proxy.connect();
    old.send(b"GET / HTTP/1.0\r\nHost: test.example\r\nConnection: keep-alive\r\n\r\n");
    let r = old.response();
    assert_eq!(r.status, 200);
    assert!(!r.head.is_chunked(), "{}", r.head.raw);
    assert!(!r.head.has("content-length"), "{}", r.head.raw);
    assert_eq!(text(&r.body), wanted);
}

/// A page that fits the buffer but whose rewriting would not streams
/// all the same, rewritten.
#[test]
fn a_page_whose_rewriting_outgrows_the_buffer_streams() {
    let page = "x".repeat(1000);
    let backend = serving(200, HTML, page.as_bytes());
    let rules = format!(
        "sub_filter = x '{}'\nsub_filter_once = false\nresponse_buffer_size = 64KiB\n",
        "y".repeat(100)
    );
    let proxy = proxy_with(backend.addr, &rules);
    let r = proxy.connect().get("/");
    assert_eq!(r.status, 200);
    assert!(r.head.is_chunked(), "{}", r.head.raw);
    assert_eq!(r.body, "y".repeat(100_000).into_bytes());
}

#[test]
fn a_body_past_the_response_buffer_has_every_match_replaced_even_across_its_slices() {
    // 200 KiB, past response_buffer_size (64 KiB) and over several of
    // the slices the rewriting hands on: a match every 1000 bytes, and
    // one across each 64 KiB boundary.
    let mut page = vec![b'.'; 200 * 1024];
    let at = (0..200)
        .map(|k| k * 1000)
        .chain([65536 - 7, 131072 - 13, 196608 - 19]);
    for start in at {
        page[start..start + APP.len()].copy_from_slice(APP.as_bytes());
    }
    let wanted = text(&page).replace(APP, WWW);
    assert_eq!(wanted.matches(WWW).count(), 203);
    let backend = serving(200, HTML, &page);
    let proxy = proxy_with(backend.addr, EVERY);
    let mut client = proxy.connect();
    let r = client.get("/big");
    assert_eq!(r.status, 200);
    assert!(r.head.is_chunked());
    assert_eq!(r.body.len(), wanted.len());
    assert!(text(&r.body) == wanted, "the rewritten body differs");
    // The body was delimited: the connection goes on.
    assert_eq!(client.get("/big").body.len(), wanted.len());
}

#[test]
fn a_chunked_body_in_small_chunks_that_cut_the_strings_is_all_rewritten() {
    // Its end could begin a string: held back until the body ends, then
    // sent as it is.
    let page = "<p>http://app.internal/page</p>\n".repeat(50) + "http://app.int";
    let body = page.clone().into_bytes();
    let backend = Backend::start("app", move |_, out| {
        let _ = out.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        // Each chunk written on its own, 7 bytes: every string is cut.
        for piece in body.chunks(7) {
            let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
            chunk.extend_from_slice(piece);
            chunk.extend_from_slice(b"\r\n");
            let _ = out.write_all(&chunk);
            let _ = out.flush();
        }
        let _ = out.write_all(b"0\r\n\r\n");
        Action::KeepAlive
    });
    // Streamed, as it comes: not read whole first.
    let proxy = proxy_with(backend.addr, &format!("{EVERY}response_buffer_size = 0\n"));
    let r = proxy.connect().get("/");
    assert_eq!(r.status, 200);
    assert_eq!(text(&r.body), page.replace(APP, WWW));
}

/// A chunked page all there with its head is read whole, rewritten whole
/// and sent with its length.
#[test]
fn a_chunked_page_come_whole_goes_rewritten_with_its_length() {
    let page = "<p>http://app.internal/page</p>\n".repeat(20);
    let wire = chunked(page.as_bytes(), 100, "");
    let backend = Backend::start("app", move |_, out| {
        let head =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n";
        let _ = out.write_all(&[&head[..], &wire].concat());
        Action::KeepAlive
    });
    let proxy = proxy_with(backend.addr, EVERY);
    let r = proxy.connect().get("/");
    assert_eq!(r.status, 200);
    let wanted = page.replace(APP, WWW);
    assert_eq!(text(&r.body), wanted);
    assert!(!r.head.is_chunked(), "{}", r.head.raw);
    let length = wanted.len().to_string();
    assert_eq!(r.head.get("content-length"), Some(length.as_str()));
}

#[test]
fn once_by_default_each_rule_replaces_its_first_match_alone() {
    let page = b"<head>http://app.internal/1 http://app.internal/2</head></head>";
    let rules = "sub_filter = http://app.internal/ https://www.example.test/, \
                 '</head>' '<meta></head>'\n";
    let backend = serving(200, HTML, page);
    let proxy = proxy_with(backend.addr, rules);
    let r = proxy.connect().get("/");
    assert_eq!(
        text(&r.body),
        "<head>https://www.example.test/1 http://app.internal/2<meta></head></head>"
    );

    let every = format!("{rules}sub_filter_once = false\n");
    let proxy = proxy_with(backend.addr, &every);
    let r = proxy.connect().get("/");
    assert_eq!(
        text(&r.body),
        "<head>https://www.example.test/1 https://www.example.test/2<meta></head><meta></head>"
    );
}

#[test]
fn a_replacement_names_the_host_the_client_asked_for() {
    let backend = serving(200, HTML, b"<a href=\"http://app.internal/login\">");
    let proxy = proxy_with(
        backend.addr,
        "sub_filter = 'http://app.internal/' '$scheme://$host/'\n",
    );
    for host in ["www.example.test", "other.example"] {
        let r = proxy.get_on(host, "/", &[]);
        assert_eq!(
            text(&r.body),
            format!("<a href=\"http://{host}/login\">"),
            "{host}"
        );
    }
}

#[test]
fn quoted_strings_hold_spaces_commas_and_quotes() {
    let page = b"<html><head><title>t</title></HEAD><body>Hello, world</body>";
    let rules = "sub_filter = '</head>' '<script src=\"/a.js\"></script></head>', \
                 'hello, world' \"it's \\\"here\\\"\"\n";
    let backend = serving(200, HTML, page);
    let proxy = proxy_with(backend.addr, rules);
    let r = proxy.connect().get("/");
    assert_eq!(
        text(&r.body),
        "<html><head><title>t</title><script src=\"/a.js\"></script></head>\
         <body>it's \"here\"</body>"
    );
}

/// Each of these goes as the backend sent it: its length, its ETag and
/// every byte (each body holds the string to find).
#[test]
fn what_is_not_listed_coded_partial_or_no_transform_goes_as_it_came() {
    type Case = (&'static str, u16, &'static [(&'static str, &'static str)]);
    let cases: &[Case] = &[
        (
            "json",
            200,
            &[("Content-Type", "application/json"), ("ETag", "\"v1\"")],
        ),
        (
            "gzip",
            200,
            &[
                ("Content-Type", "text/html"),
                ("Content-Encoding", "gzip"),
                ("ETag", "\"v1\""),
            ],
        ),
        (
            "part",
            206,
            &[
                ("Content-Type", "text/html"),
                ("Content-Range", "bytes 100-130/1000"),
                ("ETag", "\"v1\""),
            ],
        ),
        (
            "no-transform",
            200,
            &[
                ("Content-Type", "text/html"),
                ("Cache-Control", "no-transform"),
                ("ETag", "\"v1\""),
            ],
        ),
    ];
    let page = b"{\"url\": \"http://app.internal/x\"}";
    for &(name, status, fields) in cases {
        let backend = serving(status, fields, page);
        let proxy = proxy_with(backend.addr, EVERY);
        let r = proxy.connect().get("/");
        assert_eq!(r.status, status, "{name}");
        assert_eq!(text(&r.body), text(page), "{name}");
        let length = page.len().to_string();
        assert_eq!(r.header("content-length"), Some(&*length), "{name}");
        assert_eq!(r.header("etag"), Some("\"v1\""), "{name}");
    }
}

#[test]
fn a_type_listed_in_sub_filter_types_is_rewritten() {
    let backend = serving(
        200,
        &[("Content-Type", "application/json")],
        b"{\"url\": \"http://app.internal/x\"}",
    );
    let lines = format!("{EVERY}sub_filter_types = application/json\n");
    let proxy = proxy_with(backend.addr, &lines);
    let r = proxy.connect().get("/");
    assert_eq!(text(&r.body), "{\"url\": \"https://www.example.test/x\"}");
}

const VALIDATED: &[(&str, &str)] = &[
    ("Content-Type", "text/html"),
    ("ETag", "\"v1\""),
    ("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
    ("Accept-Ranges", "bytes"),
];

#[test]
fn a_rewritten_body_loses_the_backend_s_validators_or_keeps_them_weakened() {
    let backend = serving(200, VALIDATED, b"http://app.internal/");
    let proxy = proxy_with(backend.addr, EVERY);
    let r = proxy.connect().get("/");
    assert_eq!(text(&r.body), WWW);
    for name in ["etag", "last-modified", "accept-ranges"] {
        assert!(!r.head.has(name), "{name} in {}", r.head.raw);
    }

    let lines = format!("{EVERY}sub_filter_last_modified = true\n");
    let proxy = proxy_with(backend.addr, &lines);
    let r = proxy.connect().get("/");
    assert_eq!(text(&r.body), WWW);
    assert_eq!(r.header("etag"), Some("W/\"v1\""));
    assert_eq!(
        r.header("last-modified"),
        Some("Tue, 01 Dec 2026 10:00:00 GMT")
    );
    assert!(!r.head.has("accept-ranges"), "{}", r.head.raw);
}

#[test]
fn the_backend_is_asked_for_uncompressed_bodies_where_there_are_rules() {
    let gzip = [("Accept-Encoding", "gzip")];
    let asked = |lines: &str| {
        let backend = serving(200, HTML, b"page");
        let proxy = proxy_with(backend.addr, lines);
        proxy.connect().get_with("/", &gzip);
        backend.seen()[0].field_or("accept-encoding", "-")
    };
    assert_eq!(asked(EVERY), "-");
    assert_eq!(asked(""), "gzip");
    // The operator's own field still goes.
    let set = format!("{EVERY}request_header.Accept-Encoding = identity\n");
    assert_eq!(asked(&set), "identity");
}

#[test]
fn a_head_of_a_rewritten_type_does_not_say_the_original_length() {
    let backend = serving(200, HTML, b"<a href=\"http://app.internal/\">");
    let proxy = proxy_with(backend.addr, EVERY);
    let mut client = proxy.connect();
    let r = client.head("/");
    assert_eq!(r.status, 200);
    assert!(!r.head.has("content-length"), "{}", r.head.raw);
    // Nothing of a body followed: the next answer reads as one.
    let r = client.get("/");
    assert_eq!(text(&r.body), "<a href=\"https://www.example.test/\">");
}

/// With rules on, a HEAD of a type they do not rewrite says the length
/// its body would have, as without them.
#[test]
fn a_head_of_a_type_no_rule_rewrites_keeps_its_length() {
    let page = b"{\"url\": \"http://app.internal/x\"}";
    let backend = serving(200, &[("Content-Type", "application/json")], page);
    let proxy = proxy_with(backend.addr, EVERY);
    let r = proxy.connect().head("/");
    assert_eq!(r.status, 200);
    let length = page.len().to_string();
    assert_eq!(r.header("content-length"), Some(&*length), "{}", r.head.raw);
}

#[test]
fn the_cache_stores_the_rewritten_body_and_cuts_ranges_from_it() {
    let page = b"http://app.internal/ is where the application lives";
    let backend = serving(
        200,
        &[
            ("Content-Type", "text/html"),
            ("Cache-Control", "max-age=60"),
        ],
        page,
    );
    let wanted = text(page).replace(APP, WWW);
    let from_text = from_file(&format!("targets = {}\n{EVERY}", backend.addr));
    let proxy = start_proxy(&[], |c| {
        from_text(c);
        c.cache_size = 1 << 20;
    });
    let miss = proxy.get_on("test.example", "/", &[]);
    let hit = proxy.get_on("test.example", "/", &[]);
    assert_eq!(x_cache(&miss), "MISS");
    assert_eq!(x_cache(&hit), "HIT");
    for r in [&miss, &hit] {
        assert_eq!(text(&r.body), wanted, "{}", x_cache(r));
    }
    assert_eq!(backend.requests(), 1);

    // A range asked of what is not stored yet: bytes of the rewritten
    // body (`https://ww`), not of the backend's (`http://app`).
    let part = proxy.get_on("test.example", "/r", &[("Range", "bytes=0-9")]);
    assert_eq!(part.status, 206, "{}", part.head.raw);
    assert_eq!(text(&part.body), wanted[..10]);
    let range = format!("bytes 0-9/{}", wanted.len());
    assert_eq!(part.header("content-range"), Some(&*range));
    let whole = proxy.get_on("test.example", "/r", &[]);
    assert_eq!(x_cache(&whole), "HIT");
    assert_eq!(text(&whole.body), wanted);
    assert_eq!(backend.requests(), 2);
}

/// Kept with `sub_filter_last_modified`, a stored rewritten body's weak
/// ETag is what the cache revalidates with; the backend's `304` names
/// its own body, and is read as naming the rewritten one.
#[test]
fn a_stored_rewritten_body_is_revalidated_with_its_weak_etag() {
    let backend = Backend::start("app", |seen, out| {
        if seen.head.has("if-none-match") {
            write_304(out, &[("ETag", "\"v1\""), ("Cache-Control", "max-age=60")]);
        } else {
            // Stale on arrival: its next use revalidates.
            let fields = [
                ("Content-Type", "text/html"),
                ("ETag", "\"v1\""),
                ("Cache-Control", "max-age=60"),
                ("Age", "120"),
            ];
            respond(out, 200, &fields, b"http://app.internal/");
        }
        Action::KeepAlive
    });
    let lines = format!(
        "targets = {}\n{EVERY}sub_filter_last_modified = true\n",
        backend.addr
    );
    let from_text = from_file(&lines);
    let proxy = start_proxy(&[], |c| {
        from_text(c);
        c.cache_size = 1 << 20;
    });
    let miss = proxy.get_on("test.example", "/", &[]);
    let revalidated = proxy.get_on("test.example", "/", &[]);
    assert_eq!(x_cache(&miss), "MISS");
    assert_eq!(x_cache(&revalidated), "REVALIDATED");
    for r in [&miss, &revalidated] {
        assert_eq!(text(&r.body), WWW, "{}", x_cache(r));
        assert_eq!(r.header("etag"), Some("W/\"v1\""), "{}", x_cache(r));
    }
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].field_or("if-none-match", "-"), "W/\"v1\"");
    // A client holding the rewritten body is told it still has it.
    let kept = proxy.get_on("test.example", "/", &[("If-None-Match", "W/\"v1\"")]);
    assert_eq!(kept.status, 304, "{}", kept.head.raw);
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_rewritten_body_goes_compressed_to_a_client_that_takes_gzip() {
    let page = "<p>http://app.internal/page</p>\n".repeat(100);
    let backend = serving(200, HTML, page.as_bytes());
    let proxy = proxy_with(backend.addr, &format!("{EVERY}gzip = on\n"));
    let r = proxy
        .connect()
        .get_with("/", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head.raw);
    let mut unzipped = String::new();
    GzDecoder::new(&r.body[..])
        .read_to_string(&mut unzipped)
        .expect("a gzip stream");
    assert_eq!(unzipped, page.replace(APP, WWW));
}

#[test]
fn a_cached_rewritten_body_is_compressed_for_hits_too() {
    let page = "<p>http://app.internal/page</p>\n".repeat(100);
    let fields = &[
        ("Content-Type", "text/html"),
        ("Cache-Control", "max-age=60"),
    ];
    let backend = serving(200, fields, page.as_bytes());
    let from_text = from_file(&format!("targets = {}\n{EVERY}gzip = on\n", backend.addr));
    let proxy = start_proxy(&[], |c| {
        from_text(c);
        c.cache_size = 1 << 20;
    });
    let gzip = [("Accept-Encoding", "gzip")];
    let miss = proxy.get_on("test.example", "/", &gzip);
    let hit = proxy.get_on("test.example", "/", &gzip);
    let plain = proxy.get_on("test.example", "/", &[]);
    assert_eq!((x_cache(&miss), x_cache(&hit)), ("MISS", "HIT"));
    for r in [&miss, &hit] {
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head.raw);
        let mut unzipped = String::new();
        GzDecoder::new(&r.body[..])
            .read_to_string(&mut unzipped)
            .expect("a gzip stream");
        assert_eq!(unzipped, page.replace(APP, WWW), "{}", x_cache(r));
    }
    assert_eq!(x_cache(&plain), "HIT");
    assert_eq!(text(&plain.body), page.replace(APP, WWW));
    assert_eq!(backend.requests(), 1);
}

/// A rewritten body that streams is stored as its client got it, whole:
/// one whose last read the rewriting hands on in several slices (each
/// `x` becomes 100 bytes), and one whose end, the start of a string, is
/// held back until the body is all read. The hit has every byte.
#[test]
fn a_rewritten_body_that_streams_is_stored_whole() {
    let grows = (
        "x".repeat(1000),
        format!(
            "sub_filter = x '{}'\nsub_filter_once = false\n",
            "y".repeat(100)
        ),
        "y".repeat(100_000),
    );
    let page = "<p>http://app.internal/page</p>\n".repeat(50) + "http://app.int";
    let held_back = (
        page.clone(),
        format!("{EVERY}response_buffer_size = 0\n"),
        page.replace(APP, WWW),
    );
    for (page, rules, wanted) in [grows, held_back] {
        let fields = &[
            ("Content-Type", "text/html"),
            ("Cache-Control", "max-age=60"),
        ];
        let backend = serving(200, fields, page.as_bytes());
        let from_text = from_file(&format!("targets = {}\n{rules}", backend.addr));
        let proxy = start_proxy(&[], |c| {
            from_text(c);
            c.cache_size = 8 << 20;
        });
        let miss = proxy.get_on("test.example", "/", &[]);
        let hit = proxy.get_on("test.example", "/", &[]);
        assert!(miss.head.is_chunked(), "it streamed: {}", miss.head.raw);
        assert_eq!((x_cache(&miss), x_cache(&hit)), ("MISS", "HIT"));
        for r in [&miss, &hit] {
            assert_eq!(r.body.len(), wanted.len(), "{}", x_cache(r));
            assert!(text(&r.body) == wanted, "{} differs", x_cache(r));
        }
        assert_eq!(backend.requests(), 1);
    }
}

/// A client that leaves while a rewritten body streams to it does not
/// take the cache's copy with it: the proxy reads on, and the rewritten
/// body is stored whole.
#[test]
fn a_rewritten_body_is_stored_though_its_client_left() {
    // 4 MiB, far more than the sockets between proxy and client hold
    // unread: a write to the client fails before the body ends.
    let page = "<p>http://app.internal/page</p>\n".repeat(128 * 1024);
    let fields = &[
        ("Content-Type", "text/html"),
        ("Cache-Control", "max-age=60"),
    ];
    let backend = serving(200, fields, page.as_bytes());
    let from_text = from_file(&format!("targets = {}\n{EVERY}", backend.addr));
    let proxy = start_proxy(&[], |c| {
        from_text(c);
        c.cache_size = 64 << 20;
    });
    let mut client = proxy.connect();
    client.send(b"GET / HTTP/1.1\r\nHost: test.example\r\n\r\n");
    let head = client.reader.read_head().unwrap().unwrap();
    assert!(head.is_chunked(), "{}", head.raw);
    // Gone with most of the body unread.
    drop(client);

    let wanted = page.replace(APP, WWW);
    let only_stored = [("Cache-Control", "only-if-cached")];
    let mut stored = None;
    let was_stored = wait_until(WAIT_LIMIT, || {
        let r = proxy.get_on("test.example", "/", &only_stored);
        let found = r.status == 200;
        stored = found.then_some(r);
        found
    });
    assert!(was_stored, "the body was not stored");
    let stored = stored.unwrap();
    assert_eq!(stored.body.len(), wanted.len());
    assert!(text(&stored.body) == wanted, "the stored body differs");
    assert_eq!(backend.requests(), 1);
}

/// A body cut short by the backend must not reach the client as a whole
/// one: read whole, it is answered 502; streamed, the chunks it goes in
/// stop without their last.
#[test]
fn a_body_the_backend_cut_short_is_not_ended_as_if_whole() {
    let backend = Backend::start("app", |_, out| {
        let _ = out.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n\
              <p>http://app.internal/</p>",
        );
        Action::Close
    });
    let proxy = proxy_with(backend.addr, EVERY);
    assert_eq!(proxy.connect().get("/").status, 502);
    let proxy = proxy_with(backend.addr, &format!("{EVERY}response_buffer_size = 0\n"));
    let mut client = proxy.connect();
    client.send(b"GET / HTTP/1.1\r\nHost: test.example\r\n\r\n");
    let head = client.reader.read_head().unwrap().unwrap();
    assert!(head.is_chunked(), "{}", head.raw);
    assert!(client.reader.read_chunked().is_err(), "a last chunk came");
}

#[test]
fn a_pool_has_rules_of_its_own() {
    let page: &[u8] = b"http://app.internal/x";
    let (backend, other) = (serving(200, HTML, page), serving(200, HTML, page));
    let text_conf = format!(
        "targets = {0}\npool.p = {1}\nroute./p/ = p\n\
         sub_filter = http://app.internal/ https://top.example/\n\
         pool.p.sub_filter = http://app.internal/ https://pool.example/\n",
        backend.addr, other.addr
    );
    let proxy = start_proxy(&[], from_file(&text_conf));
    let mut client = proxy.connect();
    assert_eq!(text(&client.get("/go").body), "https://top.example/x");
    assert_eq!(text(&client.get("/p/go").body), "https://pool.example/x");

    // Rules of a pool alone: the other routes go untouched, and ask for
    // what the client takes.
    let text_conf = format!(
        "targets = {0}\npool.p = {1}\nroute./p/ = p\n\
         pool.p.sub_filter = http://app.internal/ https://pool.example/\n",
        backend.addr, other.addr
    );
    let proxy = start_proxy(&[], from_file(&text_conf));
    let mut client = proxy.connect();
    let top = client.get_with("/go", &[("Accept-Encoding", "gzip")]);
    assert_eq!(text(&top.body), text(page));
    assert_eq!(top.header("content-length"), Some("21"));
    let pooled = client.get_with("/p/go", &[("Accept-Encoding", "gzip")]);
    assert_eq!(text(&pooled.body), "https://pool.example/x");
    let last = |b: &Backend| b.seen().last().unwrap().field_or("accept-encoding", "-");
    assert_eq!(last(&backend), "gzip");
    assert_eq!(last(&other), "-");
}

#[test]
fn a_bad_rule_is_refused_with_its_line() {
    for (line, says) in [
        ("sub_filter = a", "a rule is two strings"),
        (
            "sub_filter = a $remote_addr",
            "may differ between two requests",
        ),
        ("sub_filter = 'a b", "is not closed"),
    ] {
        let message = config_error(&format!("targets = 127.0.0.1:1\n{line}\n"));
        assert!(
            message.starts_with("proxy.conf:2: sub_filter"),
            "{line}: {message}"
        );
        assert!(message.contains(says), "{line}: {message}");
    }
}

/// With rules on, a body they do not rewrite is relayed as without them:
/// one past the response buffer with its length, and a small one read
/// whole and compressed with its new length, not streamed in chunks.
#[test]
fn a_body_no_rule_rewrites_keeps_its_length_large_or_compressed() {
    let large = text(APP.as_bytes()).repeat(5000);
    let backend = serving(
        200,
        &[("Content-Type", "application/json")],
        large.as_bytes(),
    );
    let proxy = proxy_with(backend.addr, EVERY);
    let r = proxy.connect().get("/");
    assert_eq!(text(&r.body), large);
    let length = large.len().to_string();
    assert_eq!(r.header("content-length"), Some(&*length), "{}", r.head.raw);
    assert!(!r.head.is_chunked(), "{}", r.head.raw);

    let small = "{\"url\": \"http://app.internal/x\"}\n".repeat(20);
    let backend = serving(
        200,
        &[("Content-Type", "application/json")],
        small.as_bytes(),
    );
    let proxy = proxy_with(backend.addr, &format!("{EVERY}gzip = on\n"));
    let r = proxy
        .connect()
        .get_with("/", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head.raw);
    assert!(r.head.has("content-length"), "{}", r.head.raw);
    let mut unzipped = String::new();
    GzDecoder::new(&r.body[..])
        .read_to_string(&mut unzipped)
        .expect("a gzip stream");
    assert_eq!(unzipped, small);
}

/// A `304` that says no type and validates a body no rule rewrote (the
/// client asked after its strong tag) keeps that tag strong.
#[test]
fn a_304_for_a_body_left_alone_keeps_its_strong_etag() {
    let backend = Backend::start("app", |seen, out| {
        if seen.head.has("if-none-match") {
            write_304(out, &[("ETag", "\"p1\"")]);
        } else {
            respond(
                out,
                200,
                &[("Content-Type", "image/png"), ("ETag", "\"p1\"")],
                b"png",
            );
        }
        Action::KeepAlive
    });
    let proxy = proxy_with(
        backend.addr,
        &format!("{EVERY}sub_filter_last_modified = true\n"),
    );
    let r = proxy.get_on("test.example", "/logo.png", &[("If-None-Match", "\"p1\"")]);
    assert_eq!(r.status, 304, "{}", r.head.raw);
    assert_eq!(r.head.get("etag"), Some("\"p1\""), "{}", r.head.raw);
}

/// A directory for a `files` route: `page.html` naming the backend's
/// address twice, its precompressed copy (which holds it too, coded),
/// and `logo.txt` of a type no rule rewrites.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let page = b"<a href=\"http://app.internal/a\">http://app.internal/b</a>";
    std::fs::write(dir.path().join("page.html"), page).unwrap();
    let mut coder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    coder.write_all(page).unwrap();
    std::fs::write(dir.path().join("page.html.gz"), coder.finish().unwrap()).unwrap();
    std::fs::write(dir.path().join("logo.txt"), b"http://app.internal/").unwrap();
    dir
}

/// A file of a type the rules rewrite is rewritten as a backend's page
/// is: whole, with its new length, without the file's validators and
/// without ranges; its precompressed copy is not sent in its place.
#[test]
fn a_file_route_s_pages_are_rewritten_too() {
    let dir = site();
    let backend = serving(200, HTML, b"-");
    let lines = format!(
        "{EVERY}route./s/ = files {} precompressed\n",
        dir.path().display()
    );
    let proxy = proxy_with(backend.addr, &lines);
    let wanted = "<a href=\"https://www.example.test/a\">https://www.example.test/b</a>";
    let r = proxy.get_on("test.example", "/s/page.html", &[("Range", "bytes=0-3")]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(text(&r.body), wanted);
    let length = wanted.len().to_string();
    assert_eq!(r.head.get("content-length"), Some(length.as_str()));
    for gone in ["etag", "last-modified", "accept-ranges", "content-encoding"] {
        assert!(!r.head.has(gone), "{gone}: {}", r.head.raw);
    }
    // A client that takes gzip is sent the file rewritten, not the
    // precompressed copy as it is.
    let r = proxy.get_on(
        "test.example",
        "/s/page.html",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert!(!r.head.has("content-encoding"), "{}", r.head.raw);
    assert_eq!(text(&r.body), wanted);
    // A HEAD says no length it would have to rewrite the file to know.
    let mut client = proxy.connect();
    client.send(b"HEAD /s/page.html HTTP/1.1\r\nHost: test.example\r\n\r\n");
    let head = client.reader.read_head().unwrap().unwrap();
    assert!(!head.has("content-length"), "{}", head.raw);
    drop(client);
    // Another type goes as it is, with its validators.
    let r = proxy.get_on("test.example", "/s/logo.txt", &[]);
    assert_eq!(text(&r.body), "http://app.internal/");
    assert!(r.head.has("etag"), "{}", r.head.raw);
    // A copy alone, with no file to rewrite, goes as it is to a client
    // that takes it (not the `fallback=` file, nor a 404).
    std::fs::rename(
        dir.path().join("page.html.gz"),
        dir.path().join("only.html.gz"),
    )
    .unwrap();
    let coded = std::fs::read(dir.path().join("only.html.gz")).unwrap();
    let fallback = format!(
        "{EVERY}route./s/ = files {} precompressed fallback=/logo.txt\n",
        dir.path().display()
    );
    let proxy = proxy_with(backend.addr, &fallback);
    let gzip = [("Accept-Encoding", "gzip")];
    let r = proxy.get_on("test.example", "/s/only.html", &gzip);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(
        r.head.get("content-encoding"),
        Some("gzip"),
        "{}",
        r.head.raw
    );
    assert_eq!(r.body, coded);
}

/// With `gzip` too, a rewritten file goes compressed to a client that
/// takes it, and decompresses to the rewritten page.
#[test]
fn a_rewritten_file_is_compressed_after() {
    let dir = site();
    let backend = serving(200, HTML, b"-");
    let lines = format!(
        "{EVERY}gzip = true\ngzip_min_length = 0\nroute./s/ = files {}\n",
        dir.path().display()
    );
    let proxy = proxy_with(backend.addr, &lines);
    let r = proxy.get_on(
        "test.example",
        "/s/page.html",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(
        r.head.get("content-encoding"),
        Some("gzip"),
        "{}",
        r.head.raw
    );
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(
        plain,
        "<a href=\"https://www.example.test/a\">https://www.example.test/b</a>"
    );
}

/// A file the rules would make larger than 16 MiB is answered 500, not
/// sent as it is.
#[test]
fn a_file_the_rules_would_make_too_large_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.html"), "x".repeat(20_000)).unwrap();
    let backend = serving(200, HTML, b"-");
    let lines = format!(
        "sub_filter = x '{}'\nsub_filter_once = false\nroute./s/ = files {}\n",
        "y".repeat(1000),
        dir.path().display()
    );
    let proxy = proxy_with(backend.addr, &lines);
    let r = proxy.get_on("test.example", "/s/x.html", &[]);
    assert_eq!(r.status, 500, "{}", r.head.raw);
    assert!(!text(&r.body).contains('x'));
}
