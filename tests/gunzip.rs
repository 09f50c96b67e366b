//! `gunzip` (nginx's `gunzip on`): a gzip-coded answer goes decoded to a
//! client that takes no gzip, relayed (whole or streamed) and from the
//! cache, which keeps the coded copy for the clients that take it. What
//! is coded otherwise, partial or `no-transform` goes as it came; a body
//! that does not decode is answered 502 when read whole, and cut when
//! streamed, never ended as if whole.

mod support;

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::net::SocketAddr;
use support::*;

const GZIP: (&str, &str) = ("Accept-Encoding", "gzip, deflate, br");

/// Clients that take no gzip: they send no `Accept-Encoding`, name
/// other codings, or refuse gzip with a weight of 0.
const NO_GZIP: [&[(&str, &str)]; 4] = [
    &[],
    &[("Accept-Encoding", "br")],
    &[("Accept-Encoding", "identity")],
    &[("Accept-Encoding", "gzip;q=0, br")],
];

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::new(6));
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

fn page(len: usize) -> Vec<u8> {
    let line = b"<p>a page kept compressed by its backend</p>\n";
    line.iter().copied().cycle().take(len).collect()
}

/// Past the 64 KiB of the default `response_buffer_size` once decoded,
/// though it is far less coded: it streams.
const LARGE: usize = 256 << 10;

const CODED: &[(&str, &str)] = &[
    ("Content-Type", "text/html"),
    ("Content-Encoding", "gzip"),
    ("ETag", "\"v1\""),
    ("Accept-Ranges", "bytes"),
];

/// A coded answer with every field that holds of its coded bytes alone.
const CODED_AND_DIGESTED: &[(&str, &str)] = &[
    ("Content-Type", "text/html"),
    ("Content-Encoding", "gzip"),
    ("ETag", "\"v1\""),
    ("Vary", "Cookie"),
    ("Vary", "Origin"),
    ("Accept-Ranges", "bytes"),
    ("Content-MD5", "Q2hlY2sgSW50ZWdyaXR5IQ=="),
    (
        "Digest",
        "sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
    ),
    (
        "Content-Digest",
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
    ),
    (
        "Repr-Digest",
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
    ),
];

/// The fields of [`CODED_AND_DIGESTED`] a decoded answer leaves out.
const OF_THE_CODED_BYTES: [&str; 6] = [
    "content-encoding",
    "accept-ranges",
    "content-md5",
    "digest",
    "content-digest",
    "repr-digest",
];

/// Fresh for a minute, for the cache.
const CACHED: &[(&str, &str)] = &[
    ("Content-Type", "text/html"),
    ("Content-Encoding", "gzip"),
    ("ETag", "\"v1\""),
    ("Cache-Control", "max-age=60"),
];

/// A backend answering every request with `coded` as `fields` say; a
/// HEAD gets the head alone, its length still the coded body's.
fn coded_origin(coded: Vec<u8>, fields: &'static [(&'static str, &'static str)]) -> Backend {
    answering(200, fields, coded)
}

/// [`coded_origin`] with another status.
fn answering(
    status: u16,
    fields: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
) -> Backend {
    Backend::start("origin", move |seen, out| {
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

/// A backend answering every request with `coded` in chunks of `piece`
/// bytes, written in one go.
fn chunked_origin(coded: Vec<u8>, piece: usize) -> Backend {
    let wire = chunked(&coded, piece, "");
    Backend::start("origin", move |_, out| {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n\
                     ETag: \"v1\"\r\nTransfer-Encoding: chunked\r\n\r\n";
        let _ = out.write_all(&[&head[..], &wire].concat());
        Action::KeepAlive
    })
}

/// The proxy in front of `backend` with `gunzip = on` and `lines`.
fn proxy_with(backend: SocketAddr, lines: &str) -> Proxy {
    start_proxy(
        &[],
        from_file(&format!("targets = {backend}\ngunzip = on\n{lines}")),
    )
}

/// [`proxy_with`] and a cache that stores bodies of up to 16 MiB.
fn cached_proxy(backend: SocketAddr, lines: &str) -> Proxy {
    let from_text = from_file(&format!(
        "targets = {backend}\nmax_object_size = 16MiB\n{lines}"
    ));
    start_proxy(&[], |c| {
        from_text(c);
        c.cache_size = 64 << 20;
    })
}

/// `GET path` over HTTP/1.0, asking to keep the connection: a body of
/// unknown length ends with it all the same. Says whether it closed.
fn get_http_10(proxy: &Proxy, path: &str) -> (Response, bool) {
    let mut client = proxy.connect();
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: test.example\r\nConnection: keep-alive\r\n\r\n");
    client.send(request.as_bytes());
    let r = client.response();
    // One with its length may stay open: not waited on.
    let closed = !r.head.has("content-length") && client.is_closed();
    (r, closed)
}

/// A chunked body read as far as it goes: its bytes, and whether its
/// last chunk came.
fn read_chunks(reader: &mut Reader) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Ok(line) = reader.read_line() else {
            return (body, false);
        };
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        if size == 0 {
            return (body, reader.read_line().is_ok_and(|end| end.is_empty()));
        }
        match reader.read_exact_body(size) {
            Ok(data) => body.extend(data),
            Err(_) => return (body, false),
        }
        if reader.read_line().map_or(true, |end| !end.is_empty()) {
            return (body, false);
        }
    }
}

fn vary(r: &Response) -> Vec<&str> {
    r.head.get_all("vary").collect()
}

/// Asserts `r` is `wanted` decoded, as a decoded answer's head says.
#[track_caller]
fn assert_decoded(r: &Response, wanted: &[u8], why: &str) {
    assert_eq!(r.status, 200, "{why}: {}", r.head.raw);
    assert_eq!(r.body.len(), wanted.len(), "{why}: {}", r.head.raw);
    assert!(r.body == wanted, "{why}: the decoded body differs");
    assert_eq!(r.header("content-encoding"), None, "{why}: {}", r.head.raw);
    assert_eq!(r.header("etag"), Some("W/\"v1\""), "{why}: {}", r.head.raw);
    assert!(
        r.head.has_token("vary", "accept-encoding"),
        "{why}: {}",
        r.head.raw
    );
}

/// Asserts `r` is the backend's coded answer as it came.
#[track_caller]
fn assert_as_it_came(r: &Response, coded: &[u8], coding: &str, why: &str) {
    assert_eq!(r.body, coded, "{why}: {}", r.head.raw);
    assert_eq!(
        r.header("content-encoding"),
        Some(coding),
        "{why}: {}",
        r.head.raw
    );
    assert_eq!(r.header("etag"), Some("\"v1\""), "{why}: {}", r.head.raw);
    let length = coded.len().to_string();
    assert_eq!(
        r.header("content-length"),
        Some(&*length),
        "{why}: {}",
        r.head.raw
    );
}

// ---------------------------------------------------------------- relayed

/// Read whole and decoded within the buffer: sent with the decoded
/// length; every field that held of the coded bytes gone, its `ETag`
/// weak, `Vary` the backend's (its lines joined) with `Accept-Encoding`.
#[test]
fn a_small_body_goes_decoded_with_its_decoded_length_to_a_client_without_gzip() {
    let backend = coded_origin(gzip(&page(5000)), CODED_AND_DIGESTED);
    let proxy = proxy_with(backend.addr, "");
    let mut client = proxy.connect();
    for fields in NO_GZIP {
        let why = format!("{fields:?}");
        let r = client.get_with("/", fields);
        assert_decoded(&r, &page(5000), &why);
        assert!(!r.head.is_chunked(), "{why}: {}", r.head.raw);
        assert_eq!(r.header("content-length"), Some("5000"), "{why}");
        assert_eq!(vary(&r), ["Cookie, Origin, Accept-Encoding"], "{why}");
        assert_eq!(r.head.get_all("etag").count(), 1, "{why}: {}", r.head.raw);
        for name in OF_THE_CODED_BYTES {
            assert!(!r.head.has(name), "{why}: {name}: {}", r.head.raw);
        }
        assert_eq!(r.header("content-type"), Some("text/html"), "{why}");
    }
    // HTTP/1.0 too has the length.
    let (r, _) = get_http_10(&proxy, "/");
    assert_decoded(&r, &page(5000), "HTTP/1.0");
    assert_eq!(r.header("content-length"), Some("5000"));

    // A backend's Vary that names Accept-Encoding already is not told
    // it twice.
    let fields: &[(&str, &str)] = &[
        ("Content-Encoding", "gzip"),
        ("ETag", "\"v1\""),
        ("Vary", "accept-encoding, Cookie"),
    ];
    let backend = coded_origin(gzip(&page(5000)), fields);
    let proxy = proxy_with(backend.addr, "");
    let r = proxy.connect().get("/");
    assert_decoded(&r, &page(5000), "said before");
    assert_eq!(vary(&r), ["accept-encoding, Cookie"]);
}

#[test]
fn a_client_that_takes_gzip_gets_the_backend_s_bytes_and_fields_with_vary_named() {
    let coded = gzip(&page(5000));
    let backend = coded_origin(coded.clone(), CODED_AND_DIGESTED);
    let proxy = proxy_with(backend.addr, "");
    let mut client = proxy.connect();
    for taking in ["gzip", "gzip, deflate, br", "br;q=1, x-gzip;q=0.5", "*"] {
        let r = client.get_with("/", &[("Accept-Encoding", taking)]);
        assert_eq!(r.status, 200, "{taking}");
        assert_as_it_came(&r, &coded, "gzip", taking);
        // Others get it decoded: a cache in front must keep them apart.
        assert_eq!(vary(&r), ["Cookie, Origin, Accept-Encoding"], "{taking}");
        let fields = CODED_AND_DIGESTED
            .iter()
            .filter(|(name, _)| *name != "Vary");
        for (name, _) in fields {
            let sent = CODED_AND_DIGESTED.iter().filter(|(n, _)| n == name);
            let sent: Vec<&str> = sent.map(|(_, value)| *value).collect();
            let got: Vec<&str> = r.head.get_all(name).collect();
            assert_eq!(got, sent, "{taking}: {name}: {}", r.head.raw);
        }
    }
    // A large one as well: its bytes as they came, with their length.
    let coded = gzip(&page(LARGE));
    let big = coded_origin(coded.clone(), CODED);
    let proxy = proxy_with(big.addr, "response_buffer_size = 0\n");
    let r = proxy.connect().get_with("/", &[GZIP]);
    assert_as_it_came(&r, &coded, "gzip", "streamed");
    assert!(!r.head.is_chunked(), "{}", r.head.raw);
}

/// Decoded past the buffer (a large page, or any with
/// `response_buffer_size = 0`): streamed, its length unknown, in chunks;
/// to HTTP/1.0, ended by the close.
#[test]
fn a_body_that_decodes_past_the_buffer_streams_in_chunks_or_until_the_close() {
    let small = coded_origin(gzip(&page(5000)), CODED);
    let large = coded_origin(gzip(&page(LARGE)), CODED);
    let cases = [
        (&small, 5000, "response_buffer_size = 0\n"),
        (&large, LARGE, ""),
    ];
    for (backend, len, lines) in cases {
        let proxy = proxy_with(backend.addr, lines);
        let mut client = proxy.connect();
        let r = client.get("/");
        assert_decoded(&r, &page(len), &format!("{len}"));
        assert!(r.head.is_chunked(), "{len}: {}", r.head.raw);
        assert!(!r.head.has("content-length"), "{len}: {}", r.head.raw);
        assert_eq!(vary(&r), ["Accept-Encoding"], "{len}");
        assert!(!r.head.has("accept-ranges"), "{len}: {}", r.head.raw);
        // Delimited: the connection goes on.
        let again = client.get("/");
        assert!(again.body == page(len), "{len}: the second body differs");

        let (old, closed) = get_http_10(&proxy, "/");
        assert_decoded(&old, &page(len), &format!("{len} over HTTP/1.0"));
        assert!(!old.head.is_chunked(), "{len}: {}", old.head.raw);
        assert!(!old.head.has("content-length"), "{len}: {}", old.head.raw);
        assert!(closed, "{len}: the body was not ended by the close");
    }
}

/// A chunked body come whole with its head is decoded whole and goes
/// with its length; streamed, it goes in chunks.
#[test]
fn a_chunked_body_is_decoded_whole_with_its_length_or_as_it_streams() {
    let backend = chunked_origin(gzip(&page(20_000)), 1000);
    let proxy = proxy_with(backend.addr, "");
    let r = proxy.connect().get("/");
    assert_decoded(&r, &page(20_000), "whole");
    assert!(!r.head.is_chunked(), "{}", r.head.raw);
    assert_eq!(r.header("content-length"), Some("20000"));

    let proxy = proxy_with(backend.addr, "response_buffer_size = 0\n");
    let r = proxy.connect().get("/");
    assert_decoded(&r, &page(20_000), "streamed");
    assert!(r.head.is_chunked(), "{}", r.head.raw);

    let large = chunked_origin(gzip(&page(LARGE)), 4096);
    let proxy = proxy_with(large.addr, "");
    let r = proxy.connect().get("/");
    assert_decoded(&r, &page(LARGE), "large");
    assert!(r.head.is_chunked(), "{}", r.head.raw);
    let (old, closed) = get_http_10(&proxy, "/");
    assert_decoded(&old, &page(LARGE), "large over HTTP/1.0");
    assert!(closed);
}

#[test]
fn off_by_default_the_coded_bytes_go_to_every_client() {
    let coded = gzip(&page(5000));
    let backend = coded_origin(coded.clone(), CODED);
    let proxy = start_proxy(&[], from_file(&format!("targets = {}\n", backend.addr)));
    let r = proxy.connect().get("/");
    assert_as_it_came(&r, &coded, "gzip", "gunzip off");
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(!r.head.has("vary"), "{}", r.head.raw);
}

/// Another coding (or gzip and another), a body not to be transformed,
/// a part of the coded bytes: as they came, to a client without gzip.
#[test]
fn another_coding_no_transform_or_a_part_goes_as_it_came() {
    let coded = gzip(&page(5000));
    let br: &[(&str, &str)] = &[("Content-Encoding", "br"), ("ETag", "\"v1\"")];
    let twice: &[(&str, &str)] = &[("Content-Encoding", "gzip, br"), ("ETag", "\"v1\"")];
    let kept: &[(&str, &str)] = &[
        ("Content-Encoding", "gzip"),
        ("ETag", "\"v1\""),
        ("Cache-Control", "public, no-transform"),
    ];
    let brotli = b"\x8b\x02\x80brotli".to_vec();
    let cases = [
        (br, brotli, "br"),
        (twice, coded.clone(), "gzip, br"),
        (kept, coded.clone(), "gzip"),
    ];
    for (fields, body, coding) in cases {
        let backend = coded_origin(body.clone(), fields);
        let proxy = proxy_with(backend.addr, "");
        let r = proxy.connect().get("/");
        assert_eq!(r.status, 200, "{coding}: {}", r.head.raw);
        assert_as_it_came(&r, &body, coding, coding);
        assert!(!r.head.has("vary"), "{coding}: {}", r.head.raw);
    }

    // A 206 of the coded bytes.
    let part: &[(&str, &str)] = &[
        ("Content-Encoding", "gzip"),
        ("ETag", "\"v1\""),
        ("Content-Range", "bytes 0-9/4000"),
    ];
    let backend = answering(206, part, coded[..10].to_vec());
    let proxy = proxy_with(backend.addr, "");
    for taking in [&[][..], &[GZIP]] {
        let mut fields = vec![("Range", "bytes=0-9")];
        fields.extend_from_slice(taking);
        let r = proxy.connect().get_with("/", &fields);
        assert_eq!(r.status, 206, "{}", r.head.raw);
        assert_as_it_came(&r, &coded[..10], "gzip", "a part");
        assert_eq!(r.header("content-range"), Some("bytes 0-9/4000"));
        // Its 200 would go decoded to some clients (RFC 9110 §15.3.7).
        assert_eq!(vary(&r), ["Accept-Encoding"], "{taking:?}: {}", r.head.raw);
    }
}

/// A HEAD says what its GET would: no coding, and not the coded length.
#[test]
fn a_head_says_no_coding_and_not_the_coded_length() {
    let coded = gzip(&page(5000));
    let backend = coded_origin(coded.clone(), CODED);
    let proxy = proxy_with(backend.addr, "");
    let mut client = proxy.connect();
    let r = client.head("/");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert!(!r.head.has("content-encoding"), "{}", r.head.raw);
    assert!(!r.head.has("content-length"), "{}", r.head.raw);
    assert!(!r.head.is_chunked(), "{}", r.head.raw);
    assert_eq!(r.header("etag"), Some("W/\"v1\""));
    assert_eq!(vary(&r), ["Accept-Encoding"]);
    // Framed right: the connection goes on.
    assert!(client.get("/").body == page(5000));

    let r = client.head_with("/", &[GZIP]);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head.raw);
    let length = coded.len().to_string();
    assert_eq!(r.header("content-length"), Some(&*length));
    assert_eq!(r.header("etag"), Some("\"v1\""));
}

/// `cat a.gz b.gz`: one body of two members.
#[test]
fn members_one_after_another_decode_as_one_body() {
    let mut coded = gzip(&page(3000));
    coded.extend(gzip(b"the second member"));
    let mut wanted = page(3000);
    wanted.extend_from_slice(b"the second member");
    let backend = coded_origin(coded, CODED);
    for lines in ["", "response_buffer_size = 0\n"] {
        let proxy = proxy_with(backend.addr, lines);
        let r = proxy.connect().get("/");
        assert_decoded(&r, &wanted, lines);
    }
}

/// A few KiB that decode to many MiB (members of a MiB of zeros each,
/// one after another: cheap to make) stream out whole, in chunks of at
/// most a slice, none of it held whole.
#[test]
fn a_bomb_streams_out_whole_a_slice_at_a_time() {
    const MEMBERS: usize = 16;
    const DECODED: usize = MEMBERS << 20;
    let member = gzip(&vec![0u8; 1 << 20]);
    let coded = member.repeat(MEMBERS);
    assert!(coded.len() < 32 << 10, "{}", coded.len());
    let backend = coded_origin(coded, CODED);
    let proxy = proxy_with(backend.addr, "");
    let mut client = proxy.connect();
    client.send(b"GET / HTTP/1.1\r\nHost: test.example\r\n\r\n");
    let head = client.reader.read_head().unwrap().unwrap();
    assert!(head.is_chunked(), "{}", head.raw);
    assert!(!head.has("content-encoding"), "{}", head.raw);
    // Counted as it comes, not kept.
    let (mut total, mut nonzero, mut largest) = (0, 0, 0);
    loop {
        let line = client.reader.read_line().unwrap();
        let size = usize::from_str_radix(line.trim(), 16).unwrap();
        if size == 0 {
            assert_eq!(client.reader.read_line().unwrap(), "");
            break;
        }
        let data = client.reader.read_exact_body(size).unwrap();
        nonzero += data.iter().filter(|&&b| b != 0).count();
        total += size;
        largest = largest.max(size);
        assert_eq!(client.reader.read_line().unwrap(), "");
    }
    assert_eq!((total, nonzero), (DECODED, 0));
    assert!(largest <= 64 << 10, "a chunk of {largest} bytes");
    // Ended right: the connection goes on.
    assert_eq!(client.head("/").status, 200);
}

// ---------------------------------------------------------------- corrupt

/// Read whole, a body that does not decode is answered 502 to a client
/// without gzip (logged as the proxy's refusal of the body), and goes as
/// it came to one that takes gzip.
#[test]
fn a_small_body_that_does_not_decode_is_a_502_to_a_client_without_gzip() {
    let coded = gzip(&page(5000));
    let truncated = coded[..coded.len() / 2].to_vec();
    let not_gzip = b"<html>not gzip at all</html>".to_vec();
    let mut flipped = coded.clone();
    let crc = flipped.len() - 6;
    flipped[crc] ^= 0xff;
    let cases = [
        (
            "truncated",
            coded_origin(truncated.clone(), CODED),
            &truncated,
        ),
        ("not gzip", coded_origin(not_gzip.clone(), CODED), &not_gzip),
        (
            "its CRC wrong",
            coded_origin(flipped.clone(), CODED),
            &flipped,
        ),
        ("in chunks", chunked_origin(not_gzip.clone(), 10), &not_gzip),
    ];
    let lines = "log_format = $request_uri $status $termination\n";
    for (why, backend, body) in cases {
        let mut proxy = proxy_with(backend.addr, lines);
        // One after the other, each done before the next: logged in turn.
        let r = proxy.exchange(|client| client.get("/plain"));
        assert_eq!(r.status, 502, "{why}: {}", r.head.raw);
        let r = proxy.exchange(|client| client.get_with("/zipped", &[GZIP]));
        assert_eq!(r.status, 200, "{why}: {}", r.head.raw);
        assert_as_it_came(&r, body, "gzip", why);
        assert!(proxy.shutdown(std::time::Duration::from_secs(5)));
        // Refused by the proxy in the body (HAProxy's `PD`).
        let lines = proxy.log_lines();
        assert_eq!(lines, ["/plain 502 PD", "/zipped 200 --"], "{why}");
    }
}

/// Streamed, a body that stops decoding is cut: the chunks stop without
/// their last, the connection closed; what decoded before went.
#[test]
fn a_streamed_body_that_stops_decoding_is_cut_not_ended() {
    let text = pattern(LARGE);
    let coded = gzip(&text);
    let truncated = coded[..coded.len() / 2].to_vec();
    let mut corrupt = coded.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle..middle + 64].fill(0xff);
    for (body, why) in [(truncated, "truncated"), (corrupt, "corrupt")] {
        let backend = coded_origin(body, CODED);
        let proxy = proxy_with(backend.addr, "response_buffer_size = 0\n");
        let mut client = proxy.connect();
        client.send(b"GET / HTTP/1.1\r\nHost: test.example\r\n\r\n");
        let head = client.reader.read_head().unwrap().unwrap();
        assert_eq!(head.start_line.split(' ').nth(1), Some("200"), "{why}");
        assert!(head.is_chunked(), "{why}: {}", head.raw);
        let (got, ended) = read_chunks(&mut client.reader);
        assert!(!ended, "{why}: a last chunk came after {} bytes", got.len());
        assert!(got.len() < text.len(), "{why}");
        // Bytes changed in the middle decode to other text until they
        // are found out: what went before them is the text.
        let before = got.len().min(text.len() / 4);
        assert!(
            got[..before] == text[..before],
            "{why}: what went is not the text"
        );
        assert!(client.is_closed(), "{why}: the connection stayed open");
    }
}

/// A chunked body cut short at the same point: cut too, HTTP/1.0's
/// connection closed before the length a whole body would have.
#[test]
fn a_truncated_body_to_http_1_0_ends_short_with_its_connection() {
    let text = pattern(LARGE);
    let coded = gzip(&text);
    let backend = coded_origin(coded[..coded.len() / 2].to_vec(), CODED);
    let proxy = proxy_with(backend.addr, "response_buffer_size = 0\n");
    let (r, closed) = get_http_10(&proxy, "/");
    assert!(closed);
    assert!(r.body.len() < text.len(), "{}", r.body.len());
    assert!(r.body == text[..r.body.len()]);
}

// ---------------------------------------------------------------- pools

#[test]
fn a_pool_decodes_for_its_routes_alone() {
    let coded = gzip(&page(5000));
    let (top, pooled) = (
        coded_origin(coded.clone(), CODED),
        coded_origin(coded.clone(), CODED),
    );
    let routes = format!(
        "targets = {}\npool.p = {}\nroute./p/ = p\n",
        top.addr, pooled.addr
    );
    let proxy = start_proxy(&[], from_file(&format!("{routes}pool.p.gunzip = on\n")));
    let mut client = proxy.connect();
    assert_decoded(&client.get("/p/page"), &page(5000), "pool.p");
    assert_as_it_came(&client.get("/page"), &coded, "gzip", "default pool");

    // On for all but one.
    let text = format!("{routes}gunzip = on\npool.p.gunzip = off\n");
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = proxy.connect();
    assert_as_it_came(&client.get("/p/page"), &coded, "gzip", "pool.p");
    assert_decoded(&client.get("/page"), &page(5000), "default pool");
    assert_eq!((top.requests(), pooled.requests()), (2, 2));
}

// ---------------------------------------------------------------- cache

/// One entry, the coded one, serves every client: decoded for one that
/// takes no gzip (miss and hit, whole with its length), coded for one
/// that takes it, whichever came first.
#[test]
fn one_stored_coded_entry_serves_clients_with_and_without_gzip() {
    let coded = gzip(&page(5000));
    for plain_first in [true, false] {
        let backend = coded_origin(coded.clone(), CACHED);
        let proxy = cached_proxy(backend.addr, "gunzip = on\n");
        let why = format!("plain first: {plain_first}");
        let first = match plain_first {
            true => proxy.get_on("test.example", "/", &[]),
            false => proxy.get_on("test.example", "/", &[GZIP]),
        };
        assert_eq!(x_cache(&first), "MISS", "{why}");
        for fields in NO_GZIP {
            let r = proxy.get_on("test.example", "/", fields);
            assert_eq!(x_cache(&r), "HIT", "{why}: {fields:?}");
            assert_decoded(&r, &page(5000), &format!("{why}: {fields:?}"));
            assert!(!r.head.is_chunked(), "{}", r.head.raw);
            assert_eq!(r.header("content-length"), Some("5000"));
            assert_eq!(r.head.get_all("etag").count(), 1, "{}", r.head.raw);
        }
        let zipped = proxy.get_on("test.example", "/", &[GZIP]);
        assert_eq!(x_cache(&zipped), "HIT", "{why}");
        assert_as_it_came(&zipped, &coded, "gzip", &why);
        assert_eq!(vary(&zipped), ["Accept-Encoding"], "{why}");
        if !plain_first {
            assert_eq!(vary(&first), ["Accept-Encoding"], "the miss");
        }
        if plain_first {
            assert_decoded(&first, &page(5000), "the miss");
            assert_eq!(first.header("content-length"), Some("5000"));
        }
        assert_eq!(backend.requests(), 1, "{why}");
    }
}

/// A stored `Vary` of the backend's own is said once, with
/// `Accept-Encoding` among its names, to both kinds of client.
#[test]
fn a_stored_vary_gains_accept_encoding_for_both_kinds_of_client() {
    const VARYING: &[(&str, &str)] = &[
        ("Content-Type", "text/html"),
        ("Content-Encoding", "gzip"),
        ("Cache-Control", "max-age=60"),
        ("ETag", "\"v1\""),
        ("Vary", "Cookie"),
    ];
    let coded = gzip(&page(5000));
    let backend = coded_origin(coded.clone(), VARYING);
    let proxy = cached_proxy(backend.addr, "gunzip = on\n");
    let miss = proxy.get_on("test.example", "/", &[]);
    assert_eq!(x_cache(&miss), "MISS");
    let plain = proxy.get_on("test.example", "/", &[]);
    let zipped = proxy.get_on("test.example", "/", &[GZIP]);
    let held = [GZIP, ("If-None-Match", "\"v1\"")];
    let kept = proxy.get_on("test.example", "/", &held);
    assert_eq!(kept.status, 304, "{}", kept.head.raw);
    for (r, why) in [
        (&miss, "miss"),
        (&plain, "plain hit"),
        (&zipped, "gzip hit"),
        (&kept, "gzip 304"),
    ] {
        assert_eq!(
            vary(r),
            ["Cookie, Accept-Encoding"],
            "{why}: {}",
            r.head.raw
        );
    }
    assert_eq!((x_cache(&plain), x_cache(&zipped)), ("HIT", "HIT"));
    assert_decoded(&plain, &page(5000), "plain hit");
    assert_eq!(zipped.body, coded);
    assert_eq!(backend.requests(), 1);
}

/// A stored entry that decodes past the buffer goes in chunks at each
/// hit (ended by the close to HTTP/1.0); the miss that stored it too.
#[test]
fn a_large_stored_entry_is_decoded_as_it_goes_at_each_hit() {
    let coded = gzip(&page(LARGE));
    let backend = coded_origin(coded.clone(), CACHED);
    let proxy = cached_proxy(backend.addr, "gunzip = on\n");
    let miss = proxy.get_on("test.example", "/", &[]);
    let hit = proxy.get_on("test.example", "/", &[]);
    assert_eq!((x_cache(&miss), x_cache(&hit)), ("MISS", "HIT"));
    for r in [&miss, &hit] {
        assert_decoded(r, &page(LARGE), x_cache(r));
        assert!(r.head.is_chunked(), "{}", r.head.raw);
        assert!(!r.head.has("content-length"), "{}", r.head.raw);
    }
    let (old, closed) = get_http_10(&proxy, "/");
    assert_eq!(x_cache(&old), "HIT");
    assert_decoded(&old, &page(LARGE), "HTTP/1.0");
    assert!(!old.head.has("content-length"), "{}", old.head.raw);
    assert!(closed);
    let zipped = proxy.get_on("test.example", "/", &[GZIP]);
    assert_eq!(x_cache(&zipped), "HIT");
    assert_as_it_came(&zipped, &coded, "gzip", "a client that takes gzip");
    assert_eq!(backend.requests(), 1);
}

/// A client holding the decoded body (its weak tag) or the coded one
/// (the strong tag, compared weakly) is told it still has it, in the
/// fields the decoded `200` says.
#[test]
fn a_conditional_hit_is_304_with_the_weak_etag_and_vary() {
    let backend = coded_origin(gzip(&page(5000)), CACHED);
    let proxy = cached_proxy(backend.addr, "gunzip = on\n");
    assert_eq!(x_cache(&proxy.get_on("test.example", "/", &[])), "MISS");
    for tag in ["W/\"v1\"", "\"v1\""] {
        let r = proxy.get_on("test.example", "/", &[("If-None-Match", tag)]);
        assert_eq!(r.status, 304, "{tag}: {}", r.head.raw);
        assert_eq!(x_cache(&r), "HIT", "{tag}");
        let etags: Vec<&str> = r.head.get_all("etag").collect();
        assert_eq!(etags, ["W/\"v1\""], "{tag}: {}", r.head.raw);
        assert_eq!(vary(&r), ["Accept-Encoding"], "{tag}: {}", r.head.raw);
        assert!(!r.head.has("content-encoding"), "{tag}: {}", r.head.raw);
        assert!(r.body.is_empty());
    }
    // A client that takes gzip holds the coded bytes, under their own tag.
    let holding = [("If-None-Match", "\"v1\""), GZIP];
    let r = proxy.get_on("test.example", "/", &holding);
    assert_eq!(r.status, 304, "{}", r.head.raw);
    assert_eq!(r.header("etag"), Some("\"v1\""), "{}", r.head.raw);
    assert_eq!(vary(&r), ["Accept-Encoding"], "{}", r.head.raw);
    let other = proxy.get_on("test.example", "/", &[("If-None-Match", "W/\"v2\"")]);
    assert_eq!(other.status, 200);
    assert_decoded(&other, &page(5000), "another tag");
    assert_eq!(backend.requests(), 1);
}

/// Ranges are of the coded bytes: a client without gzip gets the whole
/// decoded body, one that takes gzip the part of the coded bytes.
#[test]
fn a_range_of_a_stored_coded_entry_is_cut_for_gzip_clients_alone() {
    let coded = gzip(&page(5000));
    let backend = coded_origin(coded.clone(), CACHED);
    let proxy = cached_proxy(backend.addr, "gunzip = on\n");
    assert_eq!(x_cache(&proxy.get_on("test.example", "/", &[])), "MISS");
    let range = ("Range", "bytes=0-9");
    let whole = proxy.get_on("test.example", "/", &[range]);
    assert_eq!(x_cache(&whole), "HIT");
    assert_decoded(&whole, &page(5000), "a range without gzip");
    assert!(!whole.head.has("content-range"), "{}", whole.head.raw);
    assert_eq!(whole.header("content-length"), Some("5000"));

    let part = proxy.get_on("test.example", "/", &[range, GZIP]);
    assert_eq!(part.status, 206, "{}", part.head.raw);
    assert_eq!(x_cache(&part), "HIT");
    assert_eq!(part.body, coded[..10]);
    let said = format!("bytes 0-9/{}", coded.len());
    assert_eq!(part.header("content-range"), Some(&*said));
    assert_eq!(part.header("content-encoding"), Some("gzip"));
    assert_eq!(vary(&part), ["Accept-Encoding"], "{}", part.head.raw);
    assert_eq!(backend.requests(), 1);
}

/// A Range asked on a miss: the whole decoded body to a client without
/// gzip, the part of the coded bytes to one that takes gzip; stored
/// whole all the same.
#[test]
fn a_range_asked_on_a_miss_is_cut_for_gzip_clients_alone() {
    let coded = gzip(&page(5000));
    let backend = coded_origin(coded.clone(), CACHED);
    let proxy = cached_proxy(backend.addr, "gunzip = on\n");
    let range = ("Range", "bytes=0-9");
    let whole = proxy.get_on("test.example", "/plain", &[range]);
    assert_eq!(x_cache(&whole), "MISS", "{}", whole.head.raw);
    assert_decoded(&whole, &page(5000), "a range without gzip");
    assert!(!whole.head.has("content-range"), "{}", whole.head.raw);

    let part = proxy.get_on("test.example", "/zipped", &[range, GZIP]);
    assert_eq!(part.status, 206, "{}", part.head.raw);
    assert_eq!(part.body, coded[..10]);
    assert_eq!(part.header("content-encoding"), Some("gzip"));
    for path in ["/plain", "/zipped"] {
        let hit = proxy.get_on("test.example", path, &[]);
        assert_eq!(x_cache(&hit), "HIT", "{path}");
        assert_decoded(&hit, &page(5000), path);
    }
    assert_eq!(backend.requests(), 2);
}

/// A stale entry revalidated for a client without gzip (the backend's
/// `304` names the coded bytes) goes decoded, and stays coded for the
/// others.
#[test]
fn a_revalidated_entry_goes_decoded_and_stays_coded() {
    let coded = gzip(&page(5000));
    let stored = coded.clone();
    let backend = Backend::start("origin", move |seen, out| {
        if seen.head.has("if-none-match") {
            write_304(out, &[("ETag", "\"v1\""), ("Cache-Control", "max-age=60")]);
        } else {
            // Stale on arrival: its next use revalidates.
            let mut fields = CACHED.to_vec();
            fields.push(("Age", "120"));
            respond(out, 200, &fields, &stored);
        }
        Action::KeepAlive
    });
    let proxy = cached_proxy(backend.addr, "gunzip = on\n");
    let miss = proxy.get_on("test.example", "/", &[]);
    let revalidated = proxy.get_on("test.example", "/", &[]);
    assert_eq!(x_cache(&miss), "MISS");
    assert_eq!(
        x_cache(&revalidated),
        "REVALIDATED",
        "{}",
        revalidated.head.raw
    );
    for r in [&miss, &revalidated] {
        assert_decoded(r, &page(5000), x_cache(r));
        assert_eq!(r.header("content-length"), Some("5000"), "{}", x_cache(r));
    }
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].field_or("if-none-match", "-"), "\"v1\"");
    let zipped = proxy.get_on("test.example", "/", &[GZIP]);
    assert_eq!(x_cache(&zipped), "HIT");
    assert_as_it_came(&zipped, &coded, "gzip", "after the revalidation");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_head_hit_says_no_coding_to_a_client_without_gzip() {
    let coded = gzip(&page(5000));
    let backend = coded_origin(coded.clone(), CACHED);
    let proxy = cached_proxy(backend.addr, "gunzip = on\n");
    // A HEAD's miss goes on as a HEAD (and stores nothing).
    let miss = proxy.exchange(|client| client.head("/"));
    assert_eq!(x_cache(&miss), "MISS", "{}", miss.head.raw);
    assert!(!miss.head.has("content-encoding"), "{}", miss.head.raw);
    assert!(!miss.head.has("content-length"), "{}", miss.head.raw);
    assert_eq!(x_cache(&proxy.get_on("test.example", "/", &[])), "MISS");
    let mut client = proxy.connect();
    let r = client.head("/");
    assert_eq!((r.status, x_cache(&r)), (200, "HIT"), "{}", r.head.raw);
    assert!(!r.head.has("content-encoding"), "{}", r.head.raw);
    // Its GET's length, or none: not the coded bytes'.
    let length = coded.len().to_string();
    let said = r.header("content-length");
    assert!(matches!(said, None | Some("5000")), "{}", r.head.raw);
    assert_eq!(r.header("etag"), Some("W/\"v1\""));
    // Framed right: the connection goes on.
    assert!(client.get("/").body == page(5000));
    let r = client.head_with("/", &[GZIP]);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head.raw);
    assert_eq!(r.header("content-length"), Some(&*length), "{}", r.head.raw);
    assert_eq!(backend.requests(), 2);
}

/// A stored coded entry that does not decode is a 502 to a client
/// without gzip, its bytes as they are to one that takes gzip.
#[test]
fn a_stored_entry_that_does_not_decode_is_a_502_to_a_client_without_gzip() {
    let not_gzip = b"<html>not gzip at all</html>".to_vec();
    let backend = coded_origin(not_gzip.clone(), CACHED);
    let proxy = cached_proxy(backend.addr, "gunzip = on\n");
    let zipped = proxy.get_on("test.example", "/", &[GZIP]);
    assert_eq!(x_cache(&zipped), "MISS");
    assert_as_it_came(&zipped, &not_gzip, "gzip", "the miss");
    let plain = proxy.get_on("test.example", "/", &[]);
    assert_eq!(plain.status, 502, "{}", plain.head.raw);
    let zipped = proxy.get_on("test.example", "/", &[GZIP]);
    assert_eq!(x_cache(&zipped), "HIT");
    assert_as_it_came(&zipped, &not_gzip, "gzip", "the hit");
    assert_eq!(backend.requests(), 1);
}

/// Without `gunzip`, a coded answer is stored per `Accept-Encoding`: a
/// client without gzip is a miss of its own.
#[test]
fn without_gunzip_a_coded_answer_is_stored_per_accept_encoding() {
    let backend = coded_origin(gzip(&page(5000)), CACHED);
    let proxy = cached_proxy(backend.addr, "");
    let expected = [
        (&[GZIP][..], "MISS"),
        (&[GZIP], "HIT"),
        (&[], "MISS"),
        (&[], "HIT"),
    ];
    for (fields, cache) in expected {
        let r = proxy.get_on("test.example", "/", fields);
        assert_eq!(x_cache(&r), cache, "{fields:?}: {}", r.head.raw);
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{fields:?}");
    }
    assert_eq!(backend.requests(), 2);
}

// ---------------------------------------------------------------- config

#[test]
fn gunzip_takes_a_boolean_and_says_which_line_does_not() {
    let message = config_error("targets = 127.0.0.1:1\ngunzip = maybe\n");
    assert!(message.starts_with("proxy.conf:2: gunzip"), "{message}");
    assert!(message.contains("maybe"), "{message}");
    let message = config_error(
        "targets = 127.0.0.1:1\npool.p = 127.0.0.1:2\nroute./p/ = p\npool.p.gunzip = maybe\n",
    );
    assert!(message.starts_with("proxy.conf:4: "), "{message}");
    assert!(message.contains("gunzip"), "{message}");
    // Taken, each of the ways a boolean is written.
    let backend = coded_origin(gzip(b"x"), CODED);
    for (value, decoded) in [("on", true), ("yes", true), ("1", true), ("off", false)] {
        let text = format!("targets = {}\ngunzip = {value}\n", backend.addr);
        let proxy = start_proxy(&[], from_file(&text));
        let r = proxy.connect().get("/");
        assert_eq!(r.body == b"x", decoded, "{value}: {}", r.head.raw);
    }
}

/// With `gzip` on as well, a coded answer is coded once: as it came to a
/// client that takes gzip, decoded (not compressed again) for others.
#[test]
fn with_gzip_on_too_a_coded_answer_is_coded_once() {
    let coded = gzip(&page(5000));
    let backend = coded_origin(coded.clone(), CODED);
    let proxy = proxy_with(backend.addr, "gzip = on\ngzip_min_length = 0\n");
    let mut client = proxy.connect();
    let zipped = client.get_with("/", &[GZIP]);
    assert_as_it_came(&zipped, &coded, "gzip", "takes gzip");
    let plain = client.get("/");
    assert_decoded(&plain, &page(5000), "takes none");
    assert_eq!(plain.header("content-length"), Some("5000"));
}

// ---------------------------------------------------------------- files

/// A `files` route with `precompressed` over a directory holding copies
/// alone (no plain file beside them): `page.html.gz` of `page(5000)`,
/// `large.html.gz` of `page(LARGE)`, `bad.html.gz` that is no gzip, and
/// `index.html`, the `fallback=` file; `lines` after.
fn copies_alone(lines: &str) -> (Proxy, tempfile::TempDir, Backend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.html.gz"), gzip(&page(5000))).unwrap();
    std::fs::write(dir.path().join("large.html.gz"), gzip(&page(LARGE))).unwrap();
    std::fs::write(dir.path().join("bad.html.gz"), b"no gzip at all").unwrap();
    std::fs::write(dir.path().join("index.html"), b"the fallback").unwrap();
    let backend = Backend::echo("app");
    let text = format!(
        "targets = {}\nroute./s/ = files {} precompressed{lines}\n",
        backend.addr,
        dir.path().display()
    );
    (start_proxy(&[], from_file(&text)), dir, backend)
}

/// A site built with its `.gz` copies alone: a client that takes gzip
/// gets the copy (nginx's `gzip_static`, which looks for no plain file);
/// with `gunzip`, the others get it decoded: whole with its length,
/// streamed in chunks past the buffer (or until the close to HTTP/1.0),
/// a `Range` the whole, a `HEAD` no length, a `304` for its weak tag.
#[test]
fn a_gz_copy_alone_goes_to_gzip_clients_and_decoded_to_the_others() {
    let (proxy, _dir, _app) = copies_alone("\ngunzip = on");
    let mut client = proxy.connect();
    let coded = client.get_with("/s/page.html", &[GZIP]);
    assert_eq!(coded.status, 200, "{}", coded.head.raw);
    assert_eq!(coded.body, gzip(&page(5000)));
    assert_eq!(coded.header("content-encoding"), Some("gzip"));
    assert!(coded.head.has_token("vary", "accept-encoding"));
    let strong = coded.header("etag").unwrap().to_string();
    assert!(strong.starts_with('"'), "{strong}");
    for fields in NO_GZIP {
        let why = format!("{fields:?}");
        let r = client.get_with("/s/page.html", fields);
        assert_eq!(r.status, 200, "{why}: {}", r.head.raw);
        assert!(r.body == page(5000), "{why}: the decoded body differs");
        assert_eq!(r.header("content-length"), Some("5000"), "{why}");
        assert_eq!(r.header("content-encoding"), None, "{why}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("etag"), Some(&*format!("W/{strong}")), "{why}");
        assert_eq!(r.header("accept-ranges"), None, "{why}");
        assert!(r.head.has_token("vary", "accept-encoding"), "{why}");
    }
    let ranged = client.get_with("/s/page.html", &[("Range", "bytes=0-9")]);
    assert_eq!(ranged.status, 200, "{}", ranged.head.raw);
    assert!(ranged.body == page(5000));
    let weak = format!("W/{strong}");
    let again = client.get_with("/s/page.html", &[("If-None-Match", &weak)]);
    assert_eq!(again.status, 304, "{}", again.head.raw);
    assert_eq!(again.header("etag"), Some(&*weak));
    let head = client.head("/s/page.html");
    assert_eq!(head.status, 200, "{}", head.head.raw);
    assert_eq!(head.header("content-length"), None, "{}", head.head.raw);

    let large = client.get("/s/large.html");
    assert!(large.head.is_chunked(), "{}", large.head.raw);
    assert!(large.body == page(LARGE), "the streamed body differs");
    // The connection goes on after the last chunk.
    assert_eq!(client.get("/s/page.html").body.len(), 5000);
    let (old, closed) = get_http_10(&proxy, "/s/large.html");
    assert!(old.body == page(LARGE), "the body to HTTP/1.0 differs");
    // Ended by the close, which the head says, however the client asked.
    assert_eq!(old.header("connection"), Some("close"), "{}", old.head.raw);
    assert!(closed, "{}", old.head.raw);
}

/// A copy that does not decode is the operator's file: a 500 for the
/// clients without gzip (the client with gzip gets it as it is); one
/// that is not there at all is still a 404.
#[test]
fn a_gz_copy_alone_that_does_not_decode_is_a_500() {
    let (proxy, _dir, _app) = copies_alone("\ngunzip = on");
    let mut client = proxy.connect();
    let r = client.get("/s/bad.html");
    assert_eq!(r.status, 500, "{}", r.head.raw);
    let r = client.get_with("/s/bad.html", &[GZIP]);
    assert_eq!((r.status, &r.body[..]), (200, &b"no gzip at all"[..]));
    assert_eq!(client.get("/s/none.html").status, 404);
}

/// Without `gunzip`, a copy alone is not there for a client that takes
/// no gzip (nginx's `gzip_static on`): 404, or the `fallback=` file.
#[test]
fn without_gunzip_a_gz_copy_alone_is_missing_for_clients_without_gzip() {
    let (proxy, _dir, _app) = copies_alone("");
    let mut client = proxy.connect();
    assert_eq!(client.get("/s/page.html").status, 404);
    let coded = client.get_with("/s/page.html", &[GZIP]);
    assert_eq!(coded.body, gzip(&page(5000)));
    let (proxy, _dir, _app) = copies_alone(" fallback=/index.html");
    let mut client = proxy.connect();
    let r = client.get("/s/page.html");
    assert_eq!((r.status, &r.body[..]), (200, &b"the fallback"[..]));
    let coded = client.get_with("/s/page.html", &[GZIP]);
    assert_eq!(coded.body, gzip(&page(5000)));
}

/// A copy alone is read whole to be decoded: up to 16 MiB of it (one of
/// 2 MiB, its bytes random, is decoded), a larger one answered 500.
#[test]
fn a_gz_copy_alone_past_16_mib_is_not_decoded() {
    let dir = tempfile::tempdir().unwrap();
    // Random bytes, stored rather than compressed: the copy is as large.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    let stored = |body: &[u8]| {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::none());
        encoder.write_all(body).unwrap();
        encoder.finish().unwrap()
    };
    let two = random(2 << 20);
    std::fs::write(dir.path().join("two.bin.gz"), stored(&two)).unwrap();
    let seventeen = stored(&random(17 << 20));
    std::fs::write(dir.path().join("seventeen.bin.gz"), &seventeen).unwrap();
    let text = format!(
        "targets = 127.0.0.1:1\nroute./s/ = files {} precompressed\ngunzip = on\n",
        dir.path().display()
    );
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = proxy.connect();
    let r = client.get("/s/two.bin");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert!(r.body == two, "the decoded body differs");
    let r = client.get("/s/seventeen.bin");
    assert_eq!(r.status, 500, "{}", r.head.raw);
    // A client that takes gzip is sent it as it is.
    let r = proxy.connect().get_with("/s/seventeen.bin", &[GZIP]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body.len(), seventeen.len());
}
