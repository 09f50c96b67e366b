//! `gzip`: responses of the listed types go compressed to clients that
//! take gzip, relayed (read whole or streamed) and from the cache, which
//! compresses an entry once and keeps the copy; other clients get the
//! body as the backend sent it, and every client is told in `Vary`. The
//! proxy's own answers (`error_pages` pages, `return` texts) by the same
//! rules.

mod support;

use flate2::read::GzDecoder;
use inverso::gzip::{Coding, MediaTypes};
use inverso::Config;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use support::*;

const GZIP: (&str, &str) = ("Accept-Encoding", "gzip, deflate, br");

fn gzip_on(c: &mut Config) {
    c.gzip = true;
    c.gzip_types = MediaTypes::parse("text/html, text/plain, application/json").unwrap();
    c.gzip_min_length = 100;
}

fn cache_on(c: &mut Config) {
    gzip_on(c);
    c.cache_size = 8 << 20;
    c.max_object_size = Some(1 << 20);
    c.admin_port = Some(0);
}

/// Text that compresses well, and that a test can tell from other text.
fn page(len: usize) -> Vec<u8> {
    let line = b"<p>inverso compresses what it relays, once per cached entry</p>\n";
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
];

#[test]
fn a_relayed_page_goes_compressed_to_a_client_that_takes_gzip_and_whole_to_others() {
    let backend = origin(5000, HTML);
    let proxy = start_proxy(&[backend.addr], gzip_on);
    let mut client = proxy.connect();

    let zipped = client.get_with("/", &[GZIP]);
    assert_eq!(zipped.status, 200);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert!(zipped.body.len() < 1000, "{} bytes", zipped.body.len());
    assert_eq!(
        zipped.header("content-length"),
        Some(zipped.body.len().to_string().as_str()),
        "read whole, it goes with its length"
    );
    assert_eq!(gunzip(&zipped.body), page(5000));
    assert_eq!(zipped.header("etag"), Some("W/\"v1\""));
    assert_eq!(zipped.header("vary"), Some("Accept-Encoding"));
    assert!(!zipped.head.has("accept-ranges"));

    // The same connection, a client that does not take gzip.
    for plain in [
        client.get("/"),
        client.get_with("/", &[("Accept-Encoding", "gzip;q=0, br")]),
    ] {
        assert_eq!(plain.status, 200);
        assert!(!plain.head.has("content-encoding"));
        assert_eq!(plain.body, page(5000));
        assert_eq!(plain.header("etag"), Some("\"v1\""));
        assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
        assert_eq!(plain.header("accept-ranges"), Some("bytes"));
    }
    // The backend was asked as the client asked.
    let seen = backend.seen();
    assert_eq!(
        seen[0].field_or("accept-encoding", "-"),
        "gzip, deflate, br"
    );
    assert_eq!(seen[1].field_or("accept-encoding", "-"), "-");
}

#[test]
fn a_large_body_is_compressed_as_it_streams_in_chunks() {
    // Past response_buffer_size (64 KiB): streamed, not read whole.
    let len = 600 * 1024;
    let backend = origin(len, &[("Content-Type", "text/plain"), ("Vary", "Origin")]);
    let proxy = start_proxy(&[backend.addr], |c| {
        gzip_on(c);
        c.admin_port = Some(0);
    });
    let mut client = proxy.connect();
    for _ in 0..2 {
        let zipped = client.get_with("/big", &[GZIP]);
        assert_eq!(zipped.header("content-encoding"), Some("gzip"));
        assert!(zipped.head.is_chunked());
        assert!(!zipped.head.has("content-length"));
        assert_eq!(zipped.header("vary"), Some("Origin, Accept-Encoding"));
        assert!(zipped.body.len() < len / 10);
        assert_eq!(gunzip(&zipped.body), page(len));
    }
    // Kept alive through both, over one backend connection.
    assert_eq!(backend.connections(), 1);
    let admin = proxy.handle().admin_addr().unwrap();
    let text = one_request(admin, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").body_str();
    let line = format!("inverso_gzip_bytes_in_total {}", 2 * len);
    assert!(text.lines().any(|l| l == line), "{line} in {text}");
    assert!(
        text.lines().any(|l| l == "inverso_gzip_responses_total 2"),
        "{text}"
    );
}

#[test]
fn a_chunked_stream_reaches_the_client_piece_by_piece_not_held_for_the_end() {
    let gate = Gate::new();
    let open = gate.clone();
    let backend = Backend::start("stream", move |_, out| {
        let _ = out.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
              b\r\nfirst piece\r\n",
        );
        // The second piece only once the client has decoded the first.
        open.wait();
        let _ = out.write_all(b"c\r\nsecond piece\r\n0\r\n\r\n");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], gzip_on);
    let mut client = proxy.connect();
    client.send(b"GET /events HTTP/1.1\r\nHost: test.example\r\nAccept-Encoding: gzip\r\n\r\n");
    let head = client.reader.read_head().unwrap().unwrap();
    assert_eq!(head.get("content-encoding"), Some("gzip"));
    assert!(head.is_chunked());
    // The first chunk of the compressed stream decodes to the first piece.
    let size = usize::from_str_radix(&client.reader.read_line().unwrap(), 16).unwrap();
    let first = client.reader.read_exact_body(size).unwrap();
    assert_eq!(client.reader.read_line().unwrap(), "");
    let mut decoded = Vec::new();
    let _ = GzDecoder::new(&first[..]).read_to_end(&mut decoded);
    assert_eq!(decoded, b"first piece");
    gate.open();
    let rest = client.reader.read_chunked().unwrap();
    let whole: Vec<u8> = first.into_iter().chain(rest).collect();
    assert_eq!(gunzip(&whole), b"first piecesecond piece");
}

#[test]
fn what_is_not_listed_coded_partial_small_or_no_transform_goes_as_it_came() {
    type Case = (&'static str, &'static [(&'static str, &'static str)], usize);
    let cases: &[Case] = &[
        ("png", &[("Content-Type", "image/png")], 5000),
        (
            "coded",
            &[("Content-Type", "text/html"), ("Content-Encoding", "br")],
            5000,
        ),
        (
            "no-transform",
            &[
                ("Content-Type", "text/html"),
                ("Cache-Control", "no-transform"),
            ],
            5000,
        ),
        ("small", &[("Content-Type", "text/html")], 99),
        ("untyped", &[], 5000),
    ];
    for &(name, fields, len) in cases {
        let backend = origin(len, fields);
        let proxy = start_proxy(&[backend.addr], gzip_on);
        let response = proxy.connect().get_with("/", &[GZIP]);
        assert_eq!(response.status, 200, "{name}");
        assert_eq!(response.body, page(len), "{name}");
        assert_eq!(
            response.header("content-encoding"),
            fields
                .iter()
                .find(|(n, _)| *n == "Content-Encoding")
                .map(|(_, v)| *v),
            "{name}"
        );
        assert!(!response.head.has("vary"), "{name}");
    }

    // A part of the body, as the backend cut it.
    let backend = Backend::start("ranges", |_, out| {
        respond(
            out,
            206,
            &[
                ("Content-Type", "text/html"),
                ("Content-Range", "bytes 0-199/5000"),
            ],
            &page(200),
        );
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], gzip_on);
    let part = proxy
        .connect()
        .get_with("/", &[GZIP, ("Range", "bytes=0-199")]);
    assert_eq!(part.status, 206);
    assert!(!part.head.has("content-encoding"));
    assert_eq!(part.body, page(200));
}

#[test]
fn head_says_the_coding_without_a_length_and_http_1_0_gets_the_body_as_it_came() {
    let backend = origin(5000, HTML);
    let proxy = start_proxy(&[backend.addr], gzip_on);
    let mut client = proxy.connect();
    let head = client.head_with("/", &[GZIP]);
    assert_eq!(head.header("content-encoding"), Some("gzip"));
    assert_eq!(head.header("etag"), Some("W/\"v1\""));
    // Its compressed length is not known without the body.
    assert!(!head.head.has("content-length"));
    // Still in step: the HEAD carried no body.
    assert_eq!(gunzip(&client.get_with("/", &[GZIP]).body), page(5000));

    let mut old = proxy.connect();
    old.send(b"GET / HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n");
    let response = old.response();
    assert!(!response.head.has("content-encoding"));
    assert_eq!(response.body, page(5000));
}

#[test]
fn off_by_default_a_client_that_takes_gzip_gets_the_body_as_it_came() {
    let backend = origin(5000, HTML);
    let proxy = start_proxy(&[backend.addr], |_| {});
    let response = proxy.connect().get_with("/", &[GZIP]);
    assert!(!response.head.has("content-encoding"));
    assert!(!response.head.has("vary"));
    assert_eq!(response.header("etag"), Some("\"v1\""));
    assert_eq!(response.body, page(5000));
}

const CACHED_HTML: &[(&str, &str)] = &[
    ("Content-Type", "text/html"),
    ("Cache-Control", "max-age=60"),
    ("ETag", "\"v2\""),
];

#[test]
fn a_cached_entry_is_stored_as_it_came_and_compressed_once_for_every_hit() {
    let backend = origin(20_000, CACHED_HTML);
    let proxy = start_proxy(&[backend.addr], cache_on);
    let cache = Arc::clone(proxy.handle().cache().expect("the cache is on"));
    let mut client = proxy.connect();

    let miss = client.get_with("/doc", &[GZIP]);
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    assert_eq!(miss.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&miss.body), page(20_000));
    let stored_weight = cache.bytes();

    let hit = client.get_with("/doc", &[GZIP]);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.header("content-encoding"), Some("gzip"));
    assert_eq!(hit.header("etag"), Some("W/\"v2\""));
    assert_eq!(hit.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        hit.header("content-length"),
        Some(hit.body.len().to_string().as_str())
    );
    assert_eq!(gunzip(&hit.body), page(20_000));
    // The compressed copy now counts against the capacity.
    assert_eq!(cache.bytes(), stored_weight + hit.body.len() as u64);

    // Hits share the copy: the same bytes, and nothing counted twice.
    let again = client.get_with("/doc", &[GZIP]);
    assert_eq!(again.body, hit.body);
    assert_eq!(cache.bytes(), stored_weight + hit.body.len() as u64);

    // A HEAD from the cache knows the compressed length.
    let head = client.head_with("/doc", &[GZIP]);
    assert_eq!(
        head.header("content-length"),
        Some(hit.body.len().to_string().as_str())
    );
    assert_eq!(head.header("content-encoding"), Some("gzip"));

    // A client that does not take gzip: the stored body, told it varies.
    let plain = client.get("/doc");
    assert_eq!(plain.header("x-cache"), Some("HIT"));
    assert!(!plain.head.has("content-encoding"));
    assert_eq!(plain.header("etag"), Some("\"v2\""));
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert_eq!(plain.header("accept-ranges"), Some("bytes"));
    assert_eq!(plain.body, page(20_000));

    // A range is cut from the stored body, uncompressed.
    let part = client.get_with("/doc", &[GZIP, ("Range", "bytes=0-9")]);
    assert_eq!(part.status, 206);
    assert!(!part.head.has("content-encoding"));
    assert_eq!(part.body, page(10));

    assert_eq!(backend.requests(), 1);
    assert_eq!(cache.stats.hits.load(Ordering::Relaxed), 5);

    // Counted: the miss and two GET hits went compressed (not the HEAD).
    let admin = proxy.handle().admin_addr().unwrap();
    let metrics = one_request(admin, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let text = metrics.body_str();
    let zipped = (miss.body.len() + 2 * hit.body.len()).to_string();
    for line in [
        "inverso_gzip_responses_total 3".to_string(),
        format!("inverso_gzip_bytes_in_total {}", 3 * 20_000),
        format!("inverso_gzip_bytes_out_total {zipped}"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
}

#[test]
fn a_conditional_hit_is_answered_304_with_the_validator_the_client_holds() {
    let backend = origin(20_000, CACHED_HTML);
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();
    let first = client.get_with("/doc", &[GZIP]);
    let etag = first.header("etag").unwrap().to_string();
    assert_eq!(etag, "W/\"v2\"");

    let not_modified = client.get_with("/doc", &[GZIP, ("If-None-Match", &etag)]);
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some("W/\"v2\""));
    assert_eq!(not_modified.header("vary"), Some("Accept-Encoding"));
    assert!(!not_modified.head.has("content-encoding"));

    // A client that holds the uncompressed body holds the strong tag.
    let plain = client.get_with("/doc", &[("If-None-Match", "\"v2\"")]);
    assert_eq!(plain.status, 304);
    assert_eq!(plain.header("etag"), Some("\"v2\""));
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert_eq!(backend.requests(), 1);
}

#[test]
fn with_accept_encoding_taken_out_toward_backends_one_stored_page_serves_every_coding() {
    // A backend that compresses when asked, and says it varies.
    let backend = Backend::start("app", |seen, out| {
        let asked = seen.field_or("accept-encoding", "");
        let mut fields = vec![
            ("Content-Type", "text/html"),
            ("Cache-Control", "max-age=60"),
            ("Vary", "Accept-Encoding"),
        ];
        if asked.contains("gzip") {
            fields.push(("Content-Encoding", "gzip"));
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), Default::default());
            encoder.write_all(&page(20_000)).unwrap();
            respond(out, 200, &fields, &encoder.finish().unwrap());
        } else {
            respond(out, 200, &fields, &page(20_000));
        }
        Action::KeepAlive
    });
    let mut loader = inverso::config::Loader::new();
    let text =
        "targets = 127.0.0.1:1\nrequest_header.Accept-Encoding =\ncache_ignore_headers = Vary\n";
    loader.file("proxy.conf", text).unwrap();
    let file = loader.build().unwrap();
    let proxy = start_proxy(&[backend.addr], |c| {
        cache_on(c);
        c.request_headers = file.request_headers;
        c.cache_ignore_headers = file.cache_ignore_headers;
    });
    let mut client = proxy.connect();
    for coding in ["gzip, deflate, br", "gzip", "br", "identity"] {
        let response = client.get_with("/", &[("Accept-Encoding", coding)]);
        let body = match response.header("content-encoding") {
            Some("gzip") => gunzip(&response.body),
            Some(other) => panic!("{coding}: {other}"),
            None => response.body.clone(),
        };
        assert_eq!(body, page(20_000), "{coding}");
        assert_eq!(
            response.header("content-encoding").is_some(),
            coding.contains("gzip"),
            "{coding}"
        );
    }
    // One request reached the backend, without Accept-Encoding.
    assert_eq!(backend.requests(), 1);
    assert_eq!(backend.seen()[0].field_or("accept-encoding", "-"), "-");
}

#[test]
fn a_body_that_ends_with_its_connection_is_compressed_in_chunks_and_the_client_kept() {
    let backend = Backend::start("old", |_, out| {
        let mut bytes = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n".to_vec();
        bytes.extend_from_slice(&page(30_000));
        let _ = out.write_all(&bytes);
        Action::Close
    });
    let proxy = start_proxy(&[backend.addr], |c| {
        gzip_on(c);
        // Every body streams, none is read whole first.
        c.response_buffer_size = 0;
    });
    let mut client = proxy.connect();
    for _ in 0..2 {
        let response = client.get_with("/", &[GZIP]);
        assert_eq!(response.header("content-encoding"), Some("gzip"));
        assert!(response.head.is_chunked());
        assert_eq!(gunzip(&response.body), page(30_000));
    }
    assert_eq!(backend.connections(), 2);
}

#[test]
fn a_chunked_page_that_came_whole_goes_compressed_with_its_length() {
    // All its chunks arrive with the head: decoded and read whole, then
    // compressed whole, as a page of a known length is.
    let backend = Backend::start("chunks", |_, out| {
        let mut bytes =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        bytes.extend_from_slice(&chunked(&page(5000), 700, ""));
        let _ = out.write_all(&bytes);
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], gzip_on);
    let mut client = proxy.connect();
    let zipped = client.get_with("/", &[GZIP]);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert!(!zipped.head.is_chunked(), "{}", zipped.head.raw);
    assert_eq!(
        zipped.header("content-length"),
        Some(zipped.body.len().to_string().as_str())
    );
    assert_eq!(gunzip(&zipped.body), page(5000));
    // Without gzip, the same page as it came, its length now known.
    let plain = client.get("/");
    assert!(!plain.head.has("content-encoding"));
    assert_eq!(plain.header("content-length"), Some("5000"));
    assert_eq!(plain.body, page(5000));
}

#[test]
fn a_head_for_a_page_too_small_to_compress_says_no_coding_as_its_get() {
    // The length a HEAD's answer describes is the one gzip_min_length is
    // measured against, as it is for the GET.
    let backend = origin(99, HTML);
    let proxy = start_proxy(&[backend.addr], gzip_on);
    let mut client = proxy.connect();
    let head = client.head_with("/", &[GZIP]);
    assert_eq!(head.status, 200);
    assert!(!head.head.has("content-encoding"), "{}", head.head.raw);
    assert!(!head.head.has("vary"), "{}", head.head.raw);
    assert_eq!(head.header("content-length"), Some("99"));
    assert_eq!(head.header("etag"), Some("\"v1\""));
    let get = client.get_with("/", &[GZIP]);
    assert!(!get.head.has("content-encoding"));
    assert_eq!(get.body, page(99));
}

#[test]
fn an_etag_the_backend_names_in_connection_is_not_written_back_weakened() {
    const FIELDS: &[(&str, &str)] = &[
        ("Content-Type", "text/html"),
        ("ETag", "\"hop\""),
        ("Connection", "ETag"),
        ("Cache-Control", "max-age=60"),
    ];
    let backend = origin(5000, FIELDS);
    for cache in [false, true] {
        let proxy = start_proxy(&[backend.addr], if cache { cache_on } else { gzip_on });
        let mut client = proxy.connect();
        for _ in 0..2 {
            let r = client.get_with("/doc", &[GZIP]);
            assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head.raw);
            assert!(!r.head.has("etag"), "cache {cache}: {}", r.head.raw);
            assert_eq!(gunzip(&r.body), page(5000));
        }
    }
}

#[test]
fn a_compressed_answer_says_one_coding_and_no_digest_of_the_bytes_it_replaced() {
    const FIELDS: &[(&str, &str)] = &[
        ("Content-Type", "text/html"),
        ("Content-Encoding", "identity"),
        (
            "Content-Digest",
            "sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:",
        ),
        (
            "Repr-Digest",
            "sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:",
        ),
        ("Content-MD5", "AAAAAAAAAAAAAAAAAAAAAA=="),
        ("Cache-Control", "max-age=60"),
    ];
    let backend = origin(5000, FIELDS);
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();
    // Relayed, then from the cache as the copy is made, then from the copy.
    for x_cache in ["MISS", "HIT", "HIT"] {
        let r = client.get_with("/doc", &[GZIP]);
        assert_eq!(r.header("x-cache"), Some(x_cache));
        let codings: Vec<&str> = r.head.get_all("content-encoding").collect();
        assert_eq!(codings, ["gzip"], "{x_cache}: {}", r.head.raw);
        for digest in ["content-digest", "repr-digest", "content-md5"] {
            assert!(!r.head.has(digest), "{x_cache}: {}", r.head.raw);
        }
        assert_eq!(gunzip(&r.body), page(5000));
    }
    // Sent as it came to a client that does not take gzip.
    let plain = client.get("/doc");
    assert_eq!(plain.header("content-encoding"), Some("identity"));
    assert!(plain.head.has("content-digest") && plain.head.has("content-md5"));
    assert_eq!(plain.body, page(5000));
}

#[test]
fn a_part_of_a_page_compressed_for_some_says_vary_as_its_200_does() {
    // RFC 9110 §15.3.7: a 206 carries the Vary its 200 would have. Parts
    // are never compressed (a range is of the backend's bytes).
    const FIELDS: &[(&str, &str)] = &[
        ("Content-Type", "text/html"),
        ("Cache-Control", "max-age=60"),
        ("ETag", "\"v1\""),
    ];
    let backend = origin(20_000, FIELDS);
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();
    assert_eq!(x_cache(&client.get("/doc")), "MISS");
    // From the cache: one part, then two.
    for (range, parts) in [("bytes=0-9", 1), ("bytes=0-9,20-29", 2)] {
        let part = client.get_with("/doc", &[GZIP, ("Range", range)]);
        assert_eq!((part.status, x_cache(&part)), (206, "HIT"));
        assert_eq!(
            part.header("vary"),
            Some("Accept-Encoding"),
            "{}",
            part.head.raw
        );
        assert_eq!(part.header("content-encoding"), None);
        let multipart = part
            .header("content-type")
            .unwrap()
            .starts_with("multipart/");
        assert_eq!(multipart, parts > 1);
    }
    // Relayed from a backend that cut it, the cache off.
    let cutting = Backend::start("origin", |seen, out| {
        let body = page(5000);
        let mut fields = vec![("Content-Type", "text/html"), ("ETag", "\"v1\"")];
        match seen.field_or("range", "") == "bytes=0-9" {
            true => {
                fields.push(("Content-Range", "bytes 0-9/5000"));
                respond(out, 206, &fields, &body[..10]);
            }
            false => respond(out, 200, &fields, &body),
        }
        Action::KeepAlive
    });
    let proxy = start_proxy(&[cutting.addr], gzip_on);
    let mut client = proxy.connect();
    assert_eq!(client.get("/").header("vary"), Some("Accept-Encoding"));
    let part = client.get_with("/", &[GZIP, ("Range", "bytes=0-9")]);
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("vary"),
        Some("Accept-Encoding"),
        "{}",
        part.head.raw
    );
    assert_eq!(part.body, page(5000)[..10]);
}

#[test]
fn an_if_range_date_of_a_compressed_copy_gets_no_part_of_the_uncompressed_body() {
    // An origin that dates its page and gives it no entity-tag: the
    // client's only validator is Last-Modified, strong (the stored Date
    // is years later, RFC 9110 §8.8.2.2), so it may resume with
    // `If-Range: <date>` (§13.1.5) and join the 206 to what it holds.
    const DATED_HTML: &[(&str, &str)] = &[
        ("Content-Type", "text/html"),
        ("Cache-Control", "max-age=60"),
        ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ];
    let backend = origin(20_000, DATED_HTML);
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();
    assert_eq!(x_cache(&client.get("/doc")), "MISS");
    // What the client holds: the compressed copy, cut short.
    let whole = client.get_with("/doc", &[GZIP]);
    assert_eq!(whole.header("content-encoding"), Some("gzip"));
    let date = whole.header("last-modified").unwrap().to_string();
    let rest = client.get_with(
        "/doc",
        &[GZIP, ("Range", "bytes=100-"), ("If-Range", &date)],
    );
    // The whole answer again, compressed as a GET gets it: a part of the
    // plain body would be spliced onto gzip bytes.
    assert_eq!(rest.status, 200, "{}", rest.head.raw);
    assert_eq!(rest.header("content-encoding"), Some("gzip"));
    assert_eq!(rest.body, whole.body);
    // Without gzip, the date names the plain copy: its part.
    let plain = client.get_with("/doc", &[("Range", "bytes=100-"), ("If-Range", &date)]);
    assert_eq!(plain.status, 206, "{}", plain.head.raw);
    assert_eq!(backend.requests(), 1);
}

#[test]
fn a_revalidated_entry_keeps_its_compressed_copy() {
    // An entry that must be revalidated at every use (max-age=0, an
    // ETag): each hit is a 304 from the backend, which refreshes the
    // entry's head, its body the same bytes. The copy compressed for the
    // first gzip hit is still a copy of that body.
    const ALWAYS_REVALIDATED: &[(&str, &str)] = &[
        ("Content-Type", "text/html"),
        ("Cache-Control", "max-age=0"),
        ("ETag", "\"v3\""),
    ];
    let backend = Backend::start("origin", |seen, out| {
        if seen.field_or("if-none-match", "") == "\"v3\"" {
            respond(
                out,
                304,
                &[("ETag", "\"v3\""), ("Cache-Control", "max-age=0")],
                b"",
            );
        } else {
            respond(out, 200, ALWAYS_REVALIDATED, &page(20_000));
        }
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], cache_on);
    let cache = Arc::clone(proxy.handle().cache().expect("the cache is on"));
    let mut client = proxy.connect();
    assert_eq!(x_cache(&client.get_with("/doc", &[GZIP])), "MISS");
    let copy_of = |entries: &[Arc<inverso::cache::Entry>]| {
        assert_eq!(entries.len(), 1);
        let (copy, made) = entries[0]
            .compressed(Coding::Gzip, |_| panic!("no copy"))
            .unwrap();
        assert!(!made);
        copy.as_ptr() as usize
    };
    let first = client.get_with("/doc", &[GZIP]);
    assert_eq!(x_cache(&first), "REVALIDATED");
    assert_eq!(gunzip(&first.body), page(20_000));
    // Held, so that a copy made again cannot be where this one was.
    let refreshed = cache.entries();
    let made = copy_of(&refreshed);
    let second = client.get_with("/doc", &[GZIP]);
    assert_eq!(x_cache(&second), "REVALIDATED");
    assert_eq!(gunzip(&second.body), page(20_000));
    assert_eq!(
        copy_of(&cache.entries()),
        made,
        "the copy was compressed again for a body that did not change"
    );
    assert_eq!(backend.requests(), 3);
}

/// The date of [`resuming_origin`]'s page.
const LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

/// A backend that honours `Range: bytes=N-` under an `If-Range` of its
/// date, serving 20,000 bytes of HTML at `/doc` and of a zip elsewhere.
fn resuming_origin() -> Backend {
    Backend::start("origin", |seen, out| {
        let body = page(20_000);
        let kind = match seen.path() {
            "/doc" => "text/html",
            _ => "application/zip",
        };
        let mut fields = vec![("Content-Type", kind), ("Last-Modified", LAST_MODIFIED)];
        let range = seen.field_or("range", "");
        let from = range
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'));
        match from.and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if seen.field_or("if-range", "") == LAST_MODIFIED => {
                let content_range = format!("bytes {n}-19999/20000");
                fields.push(("Content-Range", &content_range));
                respond(out, 206, &fields, &body[n..]);
            }
            _ => respond(out, 200, &fields, &body),
        }
        Action::KeepAlive
    })
}

#[test]
fn a_relayed_if_range_date_of_a_compressed_answer_gets_no_part_of_the_plain_body() {
    // As `an_if_range_date_of_a_compressed_copy_gets_no_part_of_the_uncompressed_body`,
    // the cache off.
    let backend = resuming_origin();
    let proxy = start_proxy(&[backend.addr], gzip_on);
    let mut client = proxy.connect();
    let whole = client.get_with("/doc", &[GZIP]);
    assert_eq!(whole.header("content-encoding"), Some("gzip"));
    let date = whole.header("last-modified").unwrap().to_string();
    let resume = [GZIP, ("Range", "bytes=100-"), ("If-Range", &date)];
    let rest = client.get_with("/doc", &resume);
    // What the client holds is gzip: a part of the plain body would be
    // spliced onto it. It gets the whole, compressed.
    assert_eq!(rest.status, 200, "{}", rest.head.raw);
    assert_eq!(gunzip(&rest.body), page(20_000));
    // A type gzip leaves alone is resumed as the backend answers.
    let rest = client.get_with("/archive.zip", &resume);
    assert_eq!(rest.status, 206, "{}", rest.head.raw);
    assert_eq!(rest.body, page(20_000)[100..]);
    assert_eq!(backend.requests(), 4);
}

#[test]
fn the_part_asked_again_whole_leaves_its_connection_reusable() {
    // The 206 that is not relayed came whole with its head: the connection
    // it came on is as good as any (`relay::discard` keeps such a one, as
    // for a `retry_on_status` answer); dropped, it is closed, and the
    // request asked again whole opens another.
    let backend = resuming_origin();
    let proxy = start_proxy(&[backend.addr], gzip_on);
    let mut client = proxy.connect();
    let resume = [GZIP, ("Range", "bytes=19900-"), ("If-Range", LAST_MODIFIED)];
    let rest = client.get_with("/doc", &resume);
    assert_eq!(rest.status, 200, "{}", rest.head.raw);
    assert_eq!(backend.requests(), 2);
    assert_eq!(backend.connections(), 1, "the 206's connection was closed");
}

/// The pages of `error_pages` and the texts of `return` routes, as any
/// answer of their status, type and length: compressed for a client that
/// takes gzip, with `Vary` for every client.
fn own_answers(gzip: bool, backend: &Backend, dir: &Path) -> Proxy {
    let text = format!(
        "targets = {}\ngzip = {gzip}\ngzip_min_length = 100\nerror_pages = {}\n\
         intercept_errors = true\nroute./gone/ = return 404\n\
         route./long = return 200 {}\nroute./short = return 200 ok\n\
         pool.dead = {}\nroute./dead/ = dead\n",
        backend.addr,
        dir.display(),
        long_text(),
        dead_addr(),
    );
    start_proxy(&[backend.addr], from_file_with_admin(&text))
}

fn long_text() -> String {
    "This page moved to the new site; follow the link on the front page.".repeat(6)
}

fn not_found_page() -> String {
    "<p>Nothing here, and that is compressed too.</p>\n".repeat(40)
}

/// A 16 KiB page, as a branded 502 may be.
fn bad_gateway_page() -> String {
    "<p>We will be right back: the shop is being restocked.</p>\n".repeat(280)
}

/// A backend that answers 404 with `page(5000)` and 403 for `/forbidden`.
fn erring_origin() -> Backend {
    Backend::start("origin", |seen, out| {
        let status = if seen.path() == "/forbidden" {
            403
        } else {
            404
        };
        respond(out, status, HTML, &page(5000));
        Action::KeepAlive
    })
}

fn pages_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("404.html"), not_found_page()).unwrap();
    std::fs::write(dir.path().join("502.html"), bad_gateway_page()).unwrap();
    dir
}

#[track_caller]
fn assert_gzipped(response: &Response, body: &str) {
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    assert!(response.head.has_token("vary", "accept-encoding"));
    let length = response.body.len().to_string();
    assert_eq!(response.header("content-length"), Some(length.as_str()));
    assert_eq!(String::from_utf8(gunzip(&response.body)).unwrap(), body);
}

#[track_caller]
fn assert_plain(response: &Response, body: &str, vary: bool) {
    assert!(!response.head.has("content-encoding"));
    assert_eq!(response.head.has_token("vary", "accept-encoding"), vary);
    let length = body.len().to_string();
    assert_eq!(response.header("content-length"), Some(length.as_str()));
    assert_eq!(response.body_str(), body);
}

/// The page in place of a backend's 404 (`intercept_errors`) goes
/// compressed as the backend's 403, for which there is no page, does; a
/// HEAD gets the GET's head; a client that does not take gzip gets the
/// page as it is, told in `Vary` that others may not.
#[test]
fn an_error_page_is_compressed_as_the_error_it_stands_for() {
    let backend = erring_origin();
    let dir = pages_dir();
    let proxy = own_answers(true, &backend, dir.path());
    let mut client = proxy.connect();

    let replaced = client.get_with("/missing", &[GZIP]);
    assert_eq!(replaced.status, 404);
    assert_eq!(
        replaced.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_gzipped(&replaced, &not_found_page());
    let head = client.head_with("/missing", &[GZIP]);
    assert_eq!(head.status, 404);
    assert_eq!(head.head.headers.len(), replaced.head.headers.len());
    for name in ["content-encoding", "content-length", "vary", "content-type"] {
        assert_eq!(head.header(name), replaced.header(name), "{name}");
    }
    // Still in step: the HEAD's answer carried no body.
    assert_gzipped(&client.get_with("/missing", &[GZIP]), &not_found_page());

    for refused in [vec![], vec![("Accept-Encoding", "gzip;q=0")]] {
        let plain = client.get_with("/missing", &refused);
        assert_eq!(plain.status, 404);
        assert_plain(&plain, &not_found_page(), true);
    }
    let mut old = proxy.connect();
    old.send(b"GET /missing HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_plain(&old.response(), &not_found_page(), true);

    let relayed = client.get_with("/forbidden", &[GZIP]);
    assert_eq!(relayed.status, 403);
    assert_eq!(relayed.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&relayed.body), page(5000));
    // The page twice and the backend's 403, each counted.
    assert_eq!(proxy.metric("inverso_gzip_responses_total"), Some(3));
}

/// A `return` route's 404 page and its text, each compressed when long
/// enough; a 502 page, of a status gzip leaves alone (nginx's and
/// HAProxy's too), goes as it is, and says no `Vary`; so does every
/// answer with `gzip` off.
#[test]
fn a_return_route_s_page_and_long_text_are_compressed_and_the_rest_is_not() {
    let backend = erring_origin();
    let dir = pages_dir();
    let proxy = own_answers(true, &backend, dir.path());
    let mut client = proxy.connect();

    let gone = client.get_with("/gone/x", &[GZIP]);
    assert_eq!(gone.status, 404);
    assert_gzipped(&gone, &not_found_page());
    let long = client.get_with("/long", &[GZIP]);
    assert_eq!(long.status, 200);
    assert_eq!(
        long.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_gzipped(&long, &long_text());
    let head = client.head_with("/long", &[GZIP]);
    assert_eq!(head.header("content-length"), long.header("content-length"));
    assert_eq!(head.header("content-encoding"), Some("gzip"));
    assert_plain(&client.get_with("/long", &[]), &long_text(), true);
    // Under `gzip_min_length`: no coding, and nothing to vary on.
    assert_plain(&client.get_with("/short", &[GZIP]), "ok", false);
    let bad_gateway = client.get_with("/dead/x", &[GZIP]);
    assert_eq!(bad_gateway.status, 502);
    assert_plain(&bad_gateway, &bad_gateway_page(), false);
    assert_eq!(proxy.metric("inverso_gzip_responses_total"), Some(2));

    let off = own_answers(false, &backend, dir.path());
    let mut client = off.connect();
    for path in ["/missing", "/gone/x"] {
        assert_plain(&client.get_with(path, &[GZIP]), &not_found_page(), false);
    }
    assert_plain(&client.get_with("/long", &[GZIP]), &long_text(), false);
    assert_eq!(off.metric("inverso_gzip_responses_total"), Some(0));
}

#[test]
fn the_log_s_gzip_ratio_is_the_body_s_length_over_what_went_compressed() {
    // Read whole and stored, then a hit served from the entry's
    // compressed copy; a large body compressed as it streams; a client
    // that takes no gzip.
    let page_origin = Backend::start("origin", |seen, out| {
        let (len, fields): (usize, &[(&str, &str)]) = match seen.path() {
            "/big" => (
                600 * 1024,
                &[
                    ("Content-Type", "text/plain"),
                    ("Cache-Control", "no-store"),
                ],
            ),
            _ => (
                5000,
                &[
                    ("Content-Type", "text/html"),
                    ("Cache-Control", "max-age=60"),
                ],
            ),
        };
        respond(out, 200, fields, &page(len));
        Action::KeepAlive
    });
    let proxy = start_proxy(&[page_origin.addr], |c| {
        cache_on(c);
        c.log_format = inverso::config::LogFormat::parse(
            "$request_uri $upstream_cache_status $body_bytes_sent $gzip_ratio",
        )
        .unwrap();
    });
    let mut client = proxy.connect();
    for path in ["/page", "/page", "/big"] {
        let zipped = client.get_with(path, &[GZIP]);
        assert_eq!(zipped.header("content-encoding"), Some("gzip"), "{path}");
    }
    assert!(!client.get("/page").head.has("content-encoding"));
    drop(client);
    let mut proxy = proxy;
    assert!(proxy.shutdown(std::time::Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (line, (path, cache, len)) in lines.iter().zip([
        ("/page", "MISS", 5000),
        ("/page", "HIT", 5000),
        ("/big", "MISS", 600 * 1024),
    ]) {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[..2], [path, cache], "{line}");
        let sent: f64 = fields[2].parse().unwrap();
        let ratio: f64 = fields[3].parse().unwrap();
        assert!(ratio > 5.0, "{line}");
        assert!((ratio - len as f64 / sent).abs() <= 0.005, "{line}");
        assert_eq!(fields[3].split_once('.').unwrap().1.len(), 2, "{line}");
    }
    assert_eq!(lines[3], "/page HIT 5000 -");
}
