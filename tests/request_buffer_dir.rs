//! `request_buffer_dir`: request bodies larger than `request_buffer_size`
//! read whole to disk before a backend is asked (nginx's
//! `client_body_temp_path`), sent on with a `Content-Length`, and sent
//! again on a retry.

mod support;

use inverso::config::LogFormat;
use inverso::Config;
use std::path::Path;
use std::time::Duration;
use support::*;

const MIB: u64 = 1024 * 1024;

/// Bodies past 64 KiB go to `dir`, up to 8 MiB.
fn spooling_to(dir: &Path) -> impl FnOnce(&mut Config) + '_ {
    move |c| {
        c.request_buffer_size = 64 * 1024;
        c.request_buffer_dir = Some(dir.to_path_buf());
        c.max_body_size = 8 * MIB;
    }
}

/// What the echo backend says of a request with `body`.
fn echoed(method: &str, path: &str, body: &[u8]) -> String {
    format!("{method} {path} len={} fnv={:016x}", body.len(), fnv(body))
}

/// `body` chunked in pieces of `size`, the last chunk followed by
/// `trailers` (field lines, each ending in CRLF).
fn in_chunks(body: &[u8], size: usize, trailers: &str) -> Vec<u8> {
    let mut chunked = Vec::new();
    for piece in body.chunks(size) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(format!("0\r\n{trailers}\r\n").as_bytes());
    chunked
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn a_large_upload_reaches_the_backend_only_once_it_is_whole() {
    let a = Backend::echo("a");
    let dir = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&[a.addr], spooling_to(dir.path()));
    let body = pattern(MIB as usize);
    let mut client = proxy.connect();
    let head = format!(
        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.send(head.as_bytes());
    let (first, second) = body.split_at(body.len() / 2);
    client.send(first);
    // Time for a proxy that streams to have asked the backend already:
    // this one holds the half that came, and the backend hears nothing.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        a.connections(),
        0,
        "the backend was asked before the body was whole"
    );
    // The file has no name: nothing shows in the directory.
    assert_eq!(files_in(dir.path()), 0);
    client.send(second);
    let response = client.response();
    assert_eq!(response.status, 200);
    assert!(
        response.body_str().contains(&echoed("POST", "/up", &body)),
        "{}",
        response.body_str()
    );
    let seen = a.seen();
    assert_eq!(
        seen[0].field_or("content-length", "-"),
        body.len().to_string()
    );
    assert!(seen[0].body == body, "body bytes differ");
    // The connection goes on.
    assert_eq!(client.get("/after").status, 200);
    assert_eq!(files_in(dir.path()), 0);
}

#[test]
fn a_large_chunked_upload_goes_on_with_its_length_and_an_expectation_is_met_here() {
    let a = Backend::echo("a");
    let dir = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&[a.addr], spooling_to(dir.path()));
    let body = pattern(300 * 1024);
    let chunked = in_chunks(&body, 10_000, "");
    let mut client = proxy.connect();
    client.send(
        b"PUT /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
          Expect: 100-continue\r\n\r\n",
    );
    // Answered by the proxy, which is to read the body.
    assert_eq!(client.response().status, 100);
    client.send(&chunked);
    let response = client.response();
    assert_eq!(response.status, 200);
    assert!(response
        .body_str()
        .contains(&echoed("PUT", "/chunked", &body)));
    let seen = &a.seen()[0];
    assert_eq!(seen.field_or("content-length", "-"), body.len().to_string());
    assert!(!seen.head.has("transfer-encoding"), "{}", seen.head.raw);
    assert!(!seen.head.has("expect"), "{}", seen.head.raw);
}

#[test]
fn a_body_read_to_disk_is_sent_again_to_the_next_target() {
    // The first target takes the request and closes without a word.
    let closing = Backend::start("closing", |_, _| Action::Close);
    let a = Backend::echo("a");
    let dir = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&[closing.addr, a.addr], |c| {
        spooling_to(dir.path())(c);
        c.retries = Some(1);
    });
    let body = pattern(500 * 1024);
    let response = proxy.connect().request("PUT", "/again", &[], &body);
    assert_eq!(response.status, 200);
    assert!(response
        .body_str()
        .contains(&echoed("PUT", "/again", &body)));
    assert_eq!(closing.seen().len(), 1, "the first target was not tried");
    assert!(
        closing.seen()[0].body == body,
        "the first try's body differs"
    );
    assert!(a.seen()[0].body == body, "the second try's body differs");
}

#[test]
fn a_body_past_max_body_size_is_refused_as_it_comes() {
    let a = Backend::echo("a");
    let dir = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&[a.addr], |c| {
        spooling_to(dir.path())(c);
        c.max_body_size = 200 * 1024;
    });
    let mut client = proxy.connect();
    client.send(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..30 {
        client.send(format!("{:x}\r\n", 10_000).as_bytes());
        client.send(&pattern(10_000));
        client.send(b"\r\n");
    }
    assert_eq!(client.response().status, 413);
    assert_eq!(a.requests(), 0);
    assert_eq!(files_in(dir.path()), 0);
}

#[test]
fn a_body_the_directory_cannot_take_is_answered_500_and_logged_rd() {
    let a = Backend::echo("a");
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("bodies");
    std::fs::create_dir(&spool).unwrap();
    let mut proxy = start_proxy(&[a.addr], |c| {
        spooling_to(&spool)(c);
        c.log_format = LogFormat::parse("$request_uri $status $termination").unwrap();
    });
    // Gone since the start (a disk unmounted, a directory cleaned up):
    // no body can be written there, as on a full disk.
    std::fs::remove_dir(&spool).unwrap();
    let mut client = proxy.connect();
    let response = client.post("/large", &pattern(MIB as usize));
    assert_eq!(response.status, 500);
    assert!(
        client.is_closed(),
        "the rest of the body would be read as a request"
    );
    assert_eq!(a.requests(), 0);
    // A body within request_buffer_size still goes.
    let small = pattern(10 * 1024);
    assert_eq!(proxy.connect().post("/small", &small).status, 200);
    assert!(a.seen()[0].body == small);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert!(lines.iter().any(|l| l == "/large 500 RD"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "/small 200 --"), "{lines:?}");
}

#[test]
fn a_chunked_upload_whose_trailers_go_on_streams_rather_than_go_to_disk() {
    let a = Backend::echo("a");
    let dir = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&[a.addr], |c| {
        spooling_to(dir.path())(c);
        c.pass_trailers = true;
    });
    let body = pattern(200 * 1024);
    let chunked = in_chunks(&body, 50_000, "X-Checksum: 42\r\n");
    let mut client = proxy.connect();
    client.send(b"PUT /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    client.send(&chunked);
    assert_eq!(client.response().status, 200);
    let seen = &a.seen()[0];
    assert!(seen.head.is_chunked(), "{}", seen.head.raw);
    assert_eq!(seen.trailers, ["X-Checksum: 42"]);
    assert!(seen.body == body, "body bytes differ");
}
