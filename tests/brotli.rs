//! `brotli`: Brotli beside gzip, by the same rules. A client gets `br`
//! when it weighs it no lower than gzip (browsers: `gzip, deflate, br,
//! zstd`), relayed (read whole or streamed) and from the cache, which
//! keeps a copy per coding, each made once; a range goes uncompressed,
//! and a backend's own `br` body goes as it came.

mod support;

use inverso::gzip::{Coding, MediaTypes};
use inverso::Config;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use support::*;

const BROWSER: (&str, &str) = ("Accept-Encoding", "gzip, deflate, br, zstd");

fn brotli_on(c: &mut Config) {
    c.gzip = true;
    c.brotli = true;
    c.gzip_types = MediaTypes::parse("text/html, text/plain").unwrap();
    c.gzip_min_length = 100;
}

fn cache_on(c: &mut Config) {
    brotli_on(c);
    c.cache_size = 8 << 20;
    c.max_object_size = Some(1 << 20);
    c.admin_port = Some(0);
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .expect("a Brotli stream");
    out
}

fn page(len: usize) -> Vec<u8> {
    let line = b"<p>inverso compresses with Brotli too, once per cached entry</p>\n";
    line.iter().copied().cycle().take(len).collect()
}

/// A backend answering every request with `page(len)` as `fields` say.
fn origin(len: usize, fields: &'static [(&'static str, &'static str)]) -> Backend {
    let body = page(len);
    Backend::start("origin", move |_, out| {
        respond(out, 200, fields, &body);
        Action::KeepAlive
    })
}

const HTML: &[(&str, &str)] = &[
    ("Content-Type", "text/html; charset=utf-8"),
    ("ETag", "\"v1\""),
    ("Accept-Ranges", "bytes"),
    ("Content-Digest", "sha-256=:AAAA:"),
];

const CACHED_HTML: &[(&str, &str)] = &[
    ("Content-Type", "text/html"),
    ("Cache-Control", "max-age=60"),
    ("ETag", "\"v2\""),
    ("Accept-Ranges", "bytes"),
];

fn metrics_text(proxy: &Proxy) -> String {
    let admin = proxy.handle().admin_addr().unwrap();
    one_request(admin, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").body_str()
}

/// The weak tag, `Vary`, no ranges and no digest of the bytes it replaced.
fn assert_compressed_fields(response: &Response, etag: &str) {
    assert_eq!(response.header("etag"), Some(etag));
    assert_eq!(response.header("vary"), Some("Accept-Encoding"));
    assert!(!response.head.has("accept-ranges"));
    assert!(!response.head.has("content-digest"));
}

#[test]
fn a_relayed_page_goes_as_br_or_gzip_as_the_client_weighs_them() {
    let backend = origin(5000, HTML);
    let proxy = start_proxy(&[backend.addr], brotli_on);
    let mut client = proxy.connect();

    for asked in [BROWSER, ("Accept-Encoding", "gzip, br")] {
        let br = client.get_with("/", &[asked]);
        assert_eq!(br.status, 200);
        assert_eq!(br.header("content-encoding"), Some("br"), "{asked:?}");
        assert_eq!(
            br.header("content-length"),
            Some(br.body.len().to_string().as_str()),
            "read whole, it goes with its length"
        );
        assert!(br.body.len() < 1000, "{} bytes", br.body.len());
        assert_eq!(unbrotli(&br.body), page(5000));
        assert_compressed_fields(&br, "W/\"v1\"");
    }
    for weighed in ["gzip;q=1, br;q=0.5", "gzip, br;q=0", "gzip", "x-gzip"] {
        let gzipped = client.get_with("/", &[("Accept-Encoding", weighed)]);
        assert_eq!(
            gzipped.header("content-encoding"),
            Some("gzip"),
            "{weighed}"
        );
        assert_eq!(gunzip(&gzipped.body), page(5000));
        assert_compressed_fields(&gzipped, "W/\"v1\"");
    }
    for none in ["br;q=0", "br;q=0, gzip;q=0", "identity", "deflate, zstd"] {
        let plain = client.get_with("/", &[("Accept-Encoding", none)]);
        assert!(!plain.head.has("content-encoding"), "{none}");
        assert_eq!(plain.body, page(5000));
        assert_eq!(plain.header("etag"), Some("\"v1\""));
        assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
        assert_eq!(plain.header("accept-ranges"), Some("bytes"));
    }
}

#[test]
fn with_brotli_off_br_is_never_sent() {
    let backend = origin(5000, HTML);
    // The same request, brotli on then off.
    let on = start_proxy(&[backend.addr], brotli_on);
    let br = on.connect().get_with("/", &[("Accept-Encoding", "br")]);
    assert_eq!(br.header("content-encoding"), Some("br"));
    let proxy = start_proxy(&[backend.addr], |c| {
        brotli_on(c);
        c.brotli = false;
    });
    let mut client = proxy.connect();
    for asked in ["br", "gzip;q=0.5, br", "*"] {
        let response = client.get_with("/", &[("Accept-Encoding", asked)]);
        assert_ne!(response.header("content-encoding"), Some("br"), "{asked}");
    }
    let browser = client.get_with("/", &[BROWSER]);
    assert_eq!(browser.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&browser.body), page(5000));
}

#[test]
fn brotli_alone_leaves_a_client_that_takes_only_gzip_the_body_as_it_came() {
    let backend = origin(5000, HTML);
    let proxy = start_proxy(&[backend.addr], |c| {
        brotli_on(c);
        c.gzip = false;
    });
    let mut client = proxy.connect();
    let plain = client.get_with("/", &[("Accept-Encoding", "gzip")]);
    assert!(!plain.head.has("content-encoding"));
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert_eq!(plain.body, page(5000));
    let br = client.get_with("/", &[BROWSER]);
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&br.body), page(5000));
}

#[test]
fn a_large_body_is_compressed_with_br_as_it_streams_and_counted() {
    // Past response_buffer_size (64 KiB): streamed, not read whole.
    let len = 600 * 1024;
    let backend = origin(len, &[("Content-Type", "text/plain"), ("ETag", "\"big\"")]);
    let proxy = start_proxy(&[backend.addr], |c| {
        brotli_on(c);
        c.admin_port = Some(0);
    });
    let mut client = proxy.connect();
    let mut sent = 0;
    for _ in 0..2 {
        let br = client.get_with("/big", &[BROWSER]);
        assert_eq!(br.header("content-encoding"), Some("br"));
        assert!(br.head.is_chunked());
        assert!(!br.head.has("content-length"));
        assert_eq!(br.header("etag"), Some("W/\"big\""));
        assert_eq!(br.header("vary"), Some("Accept-Encoding"));
        assert!(br.body.len() < len / 10);
        assert_eq!(unbrotli(&br.body), page(len));
        sent += br.body.len();
    }
    // Kept alive through both, over one backend connection.
    assert_eq!(backend.connections(), 1);
    let text = metrics_text(&proxy);
    for line in [
        "inverso_brotli_responses_total 2".to_string(),
        format!("inverso_brotli_bytes_in_total {}", 2 * len),
        format!("inverso_brotli_bytes_out_total {sent}"),
        "inverso_gzip_responses_total 0".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
}

#[test]
fn a_cached_entry_keeps_a_copy_per_coding_each_made_once() {
    let backend = origin(20_000, CACHED_HTML);
    let proxy = start_proxy(&[backend.addr], cache_on);
    let cache = Arc::clone(proxy.handle().cache().expect("the cache is on"));
    let mut client = proxy.connect();

    let miss = client.get_with("/doc", &[BROWSER]);
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    assert_eq!(miss.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&miss.body), page(20_000));
    let stored_weight = cache.bytes();

    let hit = client.get_with("/doc", &[BROWSER]);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.header("content-encoding"), Some("br"));
    assert_compressed_fields(&hit, "W/\"v2\"");
    assert_eq!(
        hit.header("content-length"),
        Some(hit.body.len().to_string().as_str())
    );
    assert_eq!(unbrotli(&hit.body), page(20_000));
    // The copy counts against the capacity, and is shared by the hits.
    assert_eq!(cache.bytes(), stored_weight + hit.body.len() as u64);
    let again = client.get_with("/doc", &[BROWSER]);
    assert_eq!(again.body, hit.body);

    // A client that takes only gzip: the entry's gzip copy, beside it.
    let gzipped = client.get_with("/doc", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gzipped.header("x-cache"), Some("HIT"));
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gzipped.body), page(20_000));
    let both = (hit.body.len() + gzipped.body.len()) as u64;
    assert_eq!(cache.bytes(), stored_weight + both);
    let entries = cache.entries();
    assert_eq!(entries.len(), 1);
    let kept = |coding| entries[0].compressed_len(coding);
    assert_eq!(kept(Coding::Brotli), Some(hit.body.len()));
    assert_eq!(kept(Coding::Gzip), Some(gzipped.body.len()));

    // A range is cut from the stored body, uncompressed.
    let part = client.get_with("/doc", &[BROWSER, ("Range", "bytes=0-9")]);
    assert_eq!(part.status, 206);
    assert!(!part.head.has("content-encoding"));
    assert_eq!(part.header("vary"), Some("Accept-Encoding"));
    assert_eq!(part.body, page(10));

    assert_eq!(backend.requests(), 1);
    assert_eq!(cache.stats.hits.load(Ordering::Relaxed), 4);
    let text = metrics_text(&proxy);
    for line in [
        "inverso_brotli_responses_total 3".to_string(),
        "inverso_gzip_responses_total 1".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
}

#[test]
fn a_relayed_range_goes_uncompressed() {
    let body = page(5000);
    let backend = Backend::start("ranges", move |request, out| {
        match request.field_or("range", "").as_str() {
            "bytes=0-9" => respond(
                out,
                206,
                &[
                    ("Content-Type", "text/html"),
                    ("Content-Range", "bytes 0-9/5000"),
                ],
                &body[..10],
            ),
            _ => respond(out, 200, &[("Content-Type", "text/html")], &body),
        }
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], brotli_on);
    let mut client = proxy.connect();
    let part = client.get_with("/", &[BROWSER, ("Range", "bytes=0-9")]);
    assert_eq!(part.status, 206);
    assert!(!part.head.has("content-encoding"));
    assert_eq!(part.header("vary"), Some("Accept-Encoding"));
    assert_eq!(part.body, page(10));
    // The whole of it goes as br.
    let whole = client.get_with("/", &[BROWSER]);
    assert_eq!(whole.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&whole.body), page(5000));
}

#[test]
fn a_backends_own_br_body_goes_as_it_came_relayed_and_cached() {
    // Not a Brotli stream: passed on, never decoded or coded again.
    const CODED: &[(&str, &str)] = &[
        ("Content-Type", "text/html"),
        ("Content-Encoding", "br"),
        ("Cache-Control", "max-age=60"),
        ("ETag", "\"own\""),
    ];
    let body = page(5000);
    let backend = Backend::start("coded", move |request, out| {
        match request.path() {
            "/coded" => respond(out, 200, CODED, &body),
            _ => respond(out, 200, CACHED_HTML, &body),
        }
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();
    for expected in ["MISS", "HIT"] {
        let response = client.get_with("/coded", &[BROWSER]);
        assert_eq!(response.header("x-cache"), Some(expected));
        assert_eq!(response.header("content-encoding"), Some("br"));
        assert_eq!(response.header("etag"), Some("\"own\""));
        assert_eq!(response.body, page(5000));
    }
    // A plain page of the same backend goes as br the proxy made.
    let made = client.get_with("/plain", &[BROWSER]);
    assert_eq!(made.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&made.body), page(5000));
    assert_eq!(backend.requests(), 2);
}

/// The proxy's own answers and a `files` route's files by the same
/// rules: an `error_pages` page (its copy per coding made once), a long
/// `return` text and a file go as br to a browser, as gzip to a client
/// that takes only gzip.
#[test]
fn own_answers_and_files_go_as_br_too() {
    let backend = origin(5000, HTML);
    let dir = tempfile::tempdir().unwrap();
    let not_found = "<p>Nothing here, and that is compressed too.</p>\n".repeat(40);
    std::fs::write(dir.path().join("404.html"), &not_found).unwrap();
    std::fs::write(dir.path().join("page.html"), page(5000)).unwrap();
    let long_text = "This page moved; follow the link on the front page. ".repeat(6);
    let long_text = long_text.trim_end().to_string();
    let text = format!(
        "targets = {}\ngzip = true\nbrotli = true\ngzip_min_length = 100\n\
         error_pages = {dir}\nroute./gone/ = return 404\nroute./long = return 200 {long_text}\n\
         route./static/ = files {dir}\n",
        backend.addr,
        dir = dir.path().display(),
    );
    let proxy = start_proxy(&[backend.addr], from_file_with_admin(&text));
    let mut client = proxy.connect();
    let cases = [
        ("/gone/x", 404, not_found.as_bytes().to_vec()),
        ("/long", 200, long_text.into_bytes()),
        ("/static/page.html", 200, page(5000)),
    ];
    for (path, status, body) in &cases {
        for _ in 0..2 {
            let br = client.get_with(path, &[BROWSER]);
            assert_eq!(br.status, *status, "{path}");
            assert_eq!(br.header("content-encoding"), Some("br"), "{path}");
            assert_eq!(br.header("vary"), Some("Accept-Encoding"), "{path}");
            assert_eq!(&unbrotli(&br.body), body, "{path}");
        }
        let gzipped = client.get_with(path, &[("Accept-Encoding", "gzip")]);
        assert_eq!(gzipped.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(&gunzip(&gzipped.body), body, "{path}");
    }
    assert_eq!(proxy.metric("inverso_brotli_responses_total"), Some(6));
    assert_eq!(proxy.metric("inverso_gzip_responses_total"), Some(3));
}
