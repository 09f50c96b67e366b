//! `gunzip` (nginx's `gunzip on`): a gzip-coded answer goes decoded to a
//! client that takes no gzip, relayed (whole or streamed) and from the
//! cache, which keeps the coded copy for the clients that take it.

mod support;

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::net::SocketAddr;
use support::*;

const GZIP: (&str, &str) = ("Accept-Encoding", "gzip, deflate, br");

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::new(6));
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

fn page(len: usize) -> Vec<u8> {
    let line = b"<p>a page kept compressed by its backend</p>\n";
    line.iter().copied().cycle().take(len).collect()
}

const CODED: &[(&str, &str)] = &[
    ("Content-Type", "text/html"),
    ("Content-Encoding", "gzip"),
    ("ETag", "\"v1\""),
    ("Accept-Ranges", "bytes"),
];

/// A backend answering every request with `coded` as `fields` say.
fn coded_origin(coded: Vec<u8>, fields: &'static [(&'static str, &'static str)]) -> Backend {
    Backend::start("origin", move |_, out| {
        respond(out, 200, fields, &coded);
        Action::KeepAlive
    })
}

fn proxy_with(backend: SocketAddr, lines: &str) -> Proxy {
    start_proxy(
        &[],
        from_file(&format!("targets = {backend}\ngunzip = on\n{lines}")),
    )
}

#[test]
fn smoke_relayed_whole_and_streamed() {
    let backend = coded_origin(gzip(&page(5000)), CODED);
    let proxy = proxy_with(backend.addr, "");
    let mut client = proxy.connect();
    let plain = client.get("/");
    assert_eq!(plain.status, 200);
    assert_eq!(plain.body, page(5000));
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("content-length"), Some("5000"));
    assert_eq!(plain.header("etag"), Some("W/\"v1\""));
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert_eq!(plain.header("accept-ranges"), None);
    let zipped = client.get_with("/", &[GZIP]);
    assert_eq!(zipped.body, gzip(&page(5000)));
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));

    let big = coded_origin(gzip(&page(3 << 20)), CODED);
    let proxy = proxy_with(big.addr, "");
    let plain = proxy.connect().get("/");
    assert_eq!(plain.body.len(), 3 << 20);
    assert!(plain.body == page(3 << 20));
    assert!(plain.head.is_chunked());
}

#[test]
fn smoke_cache() {
    let backend = coded_origin(
        gzip(&page(3 << 20)),
        &[
            ("Content-Type", "text/html"),
            ("Content-Encoding", "gzip"),
            ("Cache-Control", "max-age=60"),
        ],
    );
    let small = coded_origin(
        gzip(&page(5000)),
        &[
            ("Content-Type", "text/html"),
            ("Content-Encoding", "gzip"),
            ("Cache-Control", "max-age=60"),
        ],
    );
    for (b, len) in [(&small, 5000), (&backend, 3 << 20)] {
        let from_text = from_file(&format!(
            "targets = {}\ngunzip = on\nmax_object_size = 16MiB\n",
            b.addr
        ));
        let proxy = start_proxy(&[], |c| {
            from_text(c);
            c.cache_size = 64 << 20;
        });
        let mut client = proxy.connect();
        let miss = client.get("/");
        assert_eq!(miss.header("x-cache"), Some("MISS"), "{}", miss.head.raw);
        assert!(miss.body == page(len));
        let hit = client.get("/");
        assert_eq!(hit.header("x-cache"), Some("HIT"), "{}", hit.head.raw);
        assert!(hit.body == page(len));
        let zipped = client.get_with("/", &[GZIP]);
        assert_eq!(zipped.header("x-cache"), Some("HIT"));
        assert_eq!(zipped.body, gzip(&page(len)));
    }
}

#[test]
fn smoke_cache_plain() {
    let small = coded_origin(
        gzip(&page(5000)),
        &[
            ("Content-Type", "text/html"),
            ("Content-Encoding", "gzip"),
            ("Cache-Control", "max-age=60"),
        ],
    );
    let from_text = from_file(&format!("targets = {}\n", small.addr));
    let proxy = start_proxy(&[], |c| {
        from_text(c);
        c.cache_size = 64 << 20;
    });
    let mut client = proxy.connect();
    let miss = client.get_with("/", &[GZIP]);
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    let hit = client.get_with("/", &[GZIP]);
    assert_eq!(hit.header("x-cache"), Some("HIT"), "{}", hit.head.raw);
    let miss = client.get("/");
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    let hit = client.get("/");
    assert_eq!(hit.header("x-cache"), Some("HIT"), "{}", hit.head.raw);
}
