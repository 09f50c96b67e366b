//! `pass_trailers`: the trailer fields of a backend's chunked response
//! (after its last chunk) reach the client, those a trailer may carry
//! alone, and a client's `TE: trailers` and the trailer fields of its
//! upload reach the backend; without the key, none, as nginx's
//! `proxy_pass_trailers off`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use support::*;

/// A backend whose answer is chunked, announces its trailer fields in
/// `Trailer`, and ends with them: one that may pass, one that frames and
/// one that authenticates, which may not.
fn trailing_backend() -> Backend {
    Backend::start("t", |_, out| {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\
                    Trailer: X-Checksum, Content-Length\r\nCache-Control: max-age=60\r\n\
                    Content-Type: text/plain\r\n\r\n";
        let body = "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 5eb63bbb\r\n\
                    Content-Length: 999\r\nSet-Cookie: s=1\r\n\r\n";
        // In one write: a response all there with its head is read
        // whole, unless its trailer fields are to go on.
        out.write_all(format!("{head}{body}").as_bytes()).unwrap();
        Action::KeepAlive
    })
}

/// What the proxy at `addr` sends for `GET path` with `fields`, the
/// connection closed after it: every byte, as it came.
fn raw_get(addr: SocketAddr, path: &str, fields: &str) -> String {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: test.example\r\n{fields}Connection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn with_pass_trailers_the_fields_a_trailer_may_carry_follow_the_body() {
    let backend = trailing_backend();
    let proxy = start_proxy(&[backend.addr], |c| c.pass_trailers = true);
    let got = raw_get(proxy.addr, "/", "");
    let (head, body) = got.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("\r\nTransfer-Encoding: chunked"), "{head}");
    assert!(
        head.contains("\r\nTrailer: X-Checksum, Content-Length"),
        "{head}"
    );
    assert!(
        body.ends_with("0\r\nX-Checksum: 5eb63bbb\r\n\r\n"),
        "{body:?}"
    );
    assert!(
        body.contains("hello") && body.contains(" world"),
        "{body:?}"
    );
}

#[test]
fn without_it_the_trailer_section_and_its_announcement_stay_behind() {
    let backend = trailing_backend();
    let proxy = start_proxy(&[backend.addr], |_| {});
    let got = raw_get(proxy.addr, "/", "");
    assert!(
        !got.contains("X-Checksum") && !got.contains("Trailer:"),
        "{got}"
    );
    // Read whole with its head: sent with a length.
    assert!(got.contains("\r\nContent-Length: 11\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\nhello world"), "{got:?}");
}

#[test]
fn a_compressed_body_goes_without_them() {
    let backend = trailing_backend();
    let text = format!(
        "targets = {}\npass_trailers = true\ngzip = true\ngzip_types = text/plain\ngzip_min_length = 0\n",
        backend.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let got = raw_get(proxy.addr, "/", "Accept-Encoding: gzip\r\n");
    assert!(got.contains("Content-Encoding: gzip"), "{got:?}");
    assert!(
        !got.contains("X-Checksum") && !got.contains("Trailer:"),
        "{got:?}"
    );
    assert!(got.ends_with("\r\n0\r\n\r\n"), "{got:?}");
}

#[test]
fn a_body_sub_filter_rewrites_goes_without_them() {
    let backend = trailing_backend();
    let text = format!(
        "targets = {}\npass_trailers = true\nsub_filter = world there\nsub_filter_types = text/plain\n",
        backend.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let got = raw_get(proxy.addr, "/", "");
    assert!(got.contains("hello there"), "{got:?}");
    assert!(
        !got.contains("X-Checksum") && !got.contains("Trailer:"),
        "{got:?}"
    );
    assert!(got.ends_with("\r\n0\r\n\r\n"), "{got:?}");
}

#[test]
fn a_client_s_te_trailers_reaches_the_backend_only_with_pass_trailers() {
    for pass in [true, false] {
        let backend = Backend::echo("e");
        let proxy = start_proxy(&[backend.addr], |c| c.pass_trailers = pass);
        let mut client = proxy.connect();
        let r = client.get_with("/", &[("TE", "trailers"), ("Connection", "TE")]);
        assert_eq!(r.status, 200);
        let seen = backend.seen.lock().unwrap()[0].clone();
        let te = seen.field_or("te", "-");
        let connection = seen.field_or("connection", "-");
        match pass {
            true => assert_eq!((&*te, &*connection), ("trailers", "TE")),
            false => assert_eq!((&*te, &*connection), ("-", "-")),
        }
    }
    // A TE without `trailers` is not passed on either way.
    let backend = Backend::echo("e");
    let proxy = start_proxy(&[backend.addr], |c| c.pass_trailers = true);
    let r = proxy
        .connect()
        .get_with("/", &[("TE", "gzip"), ("Connection", "TE")]);
    assert_eq!(r.status, 200);
    assert_eq!(backend.seen.lock().unwrap()[0].field_or("te", "-"), "-");
}

#[test]
fn a_pool_passes_them_on_its_own_and_the_cache_stores_the_body_alone() {
    let backend = trailing_backend();
    let text = format!(
        "targets = 127.0.0.1:1\npool.t = {}\nroute./t/ = t\npool.t.pass_trailers = true\n",
        backend.addr
    );
    let from_text = from_file(&text);
    let proxy = start_proxy(&[], |c| {
        from_text(c);
        c.cache_size = 1 << 20;
    });
    let first = raw_get(proxy.addr, "/t/x", "");
    assert!(
        first.ends_with("0\r\nX-Checksum: 5eb63bbb\r\n\r\n"),
        "{first:?}"
    );
    assert!(first.contains("X-Cache: MISS"), "{first}");
    // A hit is the stored body, with no trailer section.
    let hit = raw_get(proxy.addr, "/t/x", "");
    assert!(hit.contains("X-Cache: HIT"), "{hit}");
    assert!(hit.ends_with("\r\n\r\nhello world"), "{hit:?}");
}

/// A chunked `POST /up` of `body` in chunks of at most 4 KiB, announcing
/// and ending with `trailers`, from a client that also sent `X-Tag` in
/// its head.
fn chunked_upload(body: &[u8], trailers: &[&str]) -> Vec<u8> {
    let mut request = b"POST /up HTTP/1.1\r\nHost: test.example\r\nX-Tag: head\r\n\
                        Trailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for chunk in body.chunks(4096) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n");
    for field in trailers {
        request.extend_from_slice(format!("{field}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request
}

/// Trailer fields a client may end an upload with: one to pass, and some
/// that would stand in for a field of the head: one the proxy writes, one
/// the client sent there, one a trailer may not carry.
const UPLOAD_TRAILERS: &[&str] = &[
    "X-Checksum: 9f86d081",
    "X-Forwarded-For: 203.0.113.9",
    "x-tag: trailer",
    "Authorization: Basic YTpi",
];

#[test]
fn with_pass_trailers_a_client_s_trailer_fields_reach_the_backend_less_those_of_the_head() {
    // A body read whole (within request_buffer_size) and one that
    // outgrows it, streamed: each goes chunked, with its trailer fields.
    for size in [11, 200 * 1024] {
        let backend = Backend::echo("e");
        let proxy = start_proxy(&[backend.addr], |c| c.pass_trailers = true);
        let body = vec![b'u'; size];
        let mut client = proxy.connect();
        client.send(&chunked_upload(&body, UPLOAD_TRAILERS));
        assert_eq!(client.response().status, 200);
        let seen = backend.seen.lock().unwrap()[0].clone();
        assert_eq!(seen.body, body, "{size}");
        assert_eq!(seen.head.get("transfer-encoding"), Some("chunked"));
        assert_eq!(seen.head.get("trailer"), Some("X-Checksum"), "{size}");
        assert_eq!(seen.trailers, ["X-Checksum: 9f86d081"], "{size}");
        assert_eq!(seen.field_or("x-tag", "-"), "head");
    }
}

#[test]
fn without_it_an_upload_s_trailer_fields_stay_behind() {
    let backend = Backend::echo("e");
    let proxy = start_proxy(&[backend.addr], |_| {});
    let mut client = proxy.connect();
    client.send(&chunked_upload(b"hello world", UPLOAD_TRAILERS));
    assert_eq!(client.response().status, 200);
    let seen = backend.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.body, b"hello world");
    // Read whole: sent with a length, and nothing announced.
    assert_eq!(seen.head.get("content-length"), Some("11"));
    assert_eq!(seen.field_or("trailer", "-"), "-");
    assert!(seen.trailers.is_empty(), "{:?}", seen.trailers);
}

#[test]
fn an_upload_without_trailer_fields_is_still_sent_whole_with_a_length() {
    let backend = Backend::echo("e");
    let proxy = start_proxy(&[backend.addr], |c| c.pass_trailers = true);
    let mut client = proxy.connect();
    client.send(&chunked_upload(b"hello world", &[]));
    assert_eq!(client.response().status, 200);
    let seen = backend.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.body, b"hello world");
    assert_eq!(seen.head.get("content-length"), Some("11"));
    assert_eq!(seen.field_or("transfer-encoding", "-"), "-");
    assert_eq!(seen.field_or("trailer", "-"), "-");
}
