//! Message framing through the proxy: large and chunked request bodies,
//! chunked and close-delimited responses, split writes, and requests the
//! proxy must refuse.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

#[test]
fn a_10_mib_post_arrives_intact() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let body = pattern(10 * 1024 * 1024);
    let mut client = proxy.connect();
    let response = client.post("/big", &body);
    assert_eq!(response.status, 200);
    assert!(
        response.body_str().contains(&format!(
            "POST /big len={} fnv={:016x}",
            body.len(),
            fnv(&body)
        )),
        "{}",
        response.body_str()
    );
    let seen = a.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.len(), body.len());
    assert!(seen[0].body == body, "body bytes differ");
    // The connection is still usable.
    assert_eq!(client.get("/after").status, 200);
}

/// Encodes `body` as chunks of the given sizes (cycled), with extensions
/// on some size lines and a trailer field.
fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        let ext = if i % 2 == 0 { ";name=value" } else { "" };
        out.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    out
}

#[test]
fn a_chunked_request_body_arrives_intact() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    // A small body, and one larger than any buffer, sent in odd pieces.
    for len in [1000usize, 300 * 1024 + 7] {
        let body = pattern(len);
        let mut request =
            b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(&chunked(&body, &[1, 17, 4093, 65_537, 3]));
        let mut client = proxy.connect();
        client.send_split(&request, 7919);
        let response = client.response();
        assert_eq!(response.status, 200, "len {len}");
        assert!(
            response
                .body_str()
                .contains(&format!("POST /chunked len={len} fnv={:016x}", fnv(&body))),
            "{}",
            response.body_str()
        );
        assert_eq!(client.get("/next").status, 200);
    }
    let seen = a.seen();
    let posts: Vec<_> = seen.iter().filter(|s| s.method() == "POST").collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].body, pattern(1000));
    assert_eq!(posts[1].body, pattern(300 * 1024 + 7));
    // Within request_buffer_size the body was read whole and goes with a
    // Content-Length (as nginx sends it); past it, it streams chunked.
    assert_eq!(posts[0].head.get("content-length"), Some("1000"));
    assert!(
        !posts[0].head.has("transfer-encoding"),
        "{}",
        posts[0].head.raw
    );
    assert!(posts[1].head.is_chunked(), "{}", posts[1].head.raw);
    assert!(
        !posts[1].head.has("content-length"),
        "{}",
        posts[1].head.raw
    );
}

#[test]
fn an_empty_chunked_body_goes_with_content_length_zero_and_without_buffering_chunked_it_stays() {
    let a = Backend::echo("a");
    let empty = b"POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(empty);
    assert_eq!(client.response().status, 200);
    let seen = a.seen();
    assert_eq!(
        seen[0].head.get("content-length"),
        Some("0"),
        "{}",
        seen[0].head.raw
    );
    assert!(!seen[0].head.has("transfer-encoding"));

    // request_buffer_size = 0: every body streams as it arrives.
    let b = Backend::echo("b");
    let proxy = start_proxy(&[b.addr], |c| c.request_buffer_size = 0);
    let mut client = proxy.connect();
    let mut request = b"POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(&chunked(&pattern(500), &[100]));
    client.send(&request);
    assert_eq!(client.response().status, 200);
    let seen = b.seen();
    assert!(seen[0].head.is_chunked(), "{}", seen[0].head.raw);
    assert_eq!(seen[0].body, pattern(500));
}

/// A backend answering with `body` in odd chunks with extensions.
fn chunked_backend(body: Vec<u8>) -> Backend {
    Backend::start("a", move |_, out| {
        let mut bytes =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n".to_vec();
        bytes.extend_from_slice(&chunked(&body, &[1, 7, 4099, 31, 70_001]));
        out.write_all(&bytes).unwrap();
        Action::KeepAlive
    })
}

#[test]
fn a_chunked_response_is_relayed_intact() {
    for len in [5usize, 3000, 500 * 1024 + 1] {
        let body = pattern(len);
        let a = chunked_backend(body.clone());
        let proxy = start_proxy(&[a.addr], |_| {});
        let mut client = proxy.connect();
        let response = client.get("/chunked");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-kind"), Some("chunked"));
        assert!(
            response.head.is_chunked() || response.head.has("content-length"),
            "{}",
            response.head.raw
        );
        assert_eq!(response.body.len(), len);
        assert!(response.body == body, "len {len}: body bytes differ");
        // Framing ended exactly: the connection carries on.
        let again = client.get("/again");
        assert_eq!(again.body, body);
        assert_eq!(a.connections(), 1, "chunked response not reused upstream");
    }
}

#[test]
fn a_chunked_response_streams_as_it_comes_unless_it_came_whole() {
    let gate = Gate::new();
    let sent_first = gate.clone();
    let a = Backend::start("a", move |seen, out| {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        if seen.path() == "/page" {
            // A page of 6,000 bytes in chunks, written in one go.
            let mut whole = head.as_bytes().to_vec();
            whole.extend_from_slice(&chunked(&pattern(6000), &[1000, 7, 2993]));
            out.write_all(&whole).unwrap();
        } else {
            // Server-sent events: the next one comes when it happens.
            let first = format!("{head}d\r\ndata: first\n\n\r\n");
            out.write_all(first.as_bytes()).unwrap();
            sent_first.wait();
            out.write_all(b"e\r\ndata: second\n\n\r\n0\r\n\r\n")
                .unwrap();
        }
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = client.reader.read_head().unwrap().unwrap();
    assert!(head.is_chunked(), "{}", head.raw);
    // The first event arrives while the backend still holds the second.
    assert_eq!(client.reader.read_line().unwrap(), "d");
    assert_eq!(
        client.reader.read_exact_body(13).unwrap(),
        b"data: first\n\n"
    );
    gate.open();
    assert_eq!(client.reader.read_line().unwrap(), "");
    assert_eq!(client.reader.read_chunked().unwrap(), b"data: second\n\n");

    // All there with its head: read whole and sent with its length, so
    // that even an HTTP/1.0 client keeps its connection.
    client.send(b"GET /page HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
    let response = client.response();
    let length = response.header("content-length");
    assert_eq!(length, Some("6000"), "{}", response.head.raw);
    assert_eq!(response.header("connection"), Some("keep-alive"));
    assert_eq!(response.body, pattern(6000));
    assert_eq!(client.get("/page").body, pattern(6000));
    assert_eq!(a.connections(), 1);
}

#[test]
fn small_chunks_that_came_together_go_on_together() {
    // After a first event, a hundred chunks of ten bytes in one write: the
    // proxy's read brings them all, and they go on in one piece, not a
    // write (and a chunk) each.
    let gate = Gate::new();
    let opened = gate.clone();
    let burst: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let sent = burst.clone();
    let a = Backend::start("a", move |_, out| {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        out.write_all(format!("{head}5\r\nfirst\r\n").as_bytes())
            .unwrap();
        opened.wait();
        out.write_all(&chunked(&sent, &[10])).unwrap();
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /burst HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = client.reader.read_head().unwrap().unwrap();
    assert!(head.is_chunked(), "{}", head.raw);
    assert_eq!(client.reader.read_line().unwrap(), "5");
    assert_eq!(client.reader.read_exact_body(5).unwrap(), b"first");
    assert_eq!(client.reader.read_line().unwrap(), "");
    gate.open();
    let (mut body, mut chunks) = (Vec::new(), 0);
    loop {
        let size = usize::from_str_radix(&client.reader.read_line().unwrap(), 16).unwrap();
        if size == 0 {
            assert_eq!(client.reader.read_line().unwrap(), "");
            break;
        }
        body.extend(client.reader.read_exact_body(size).unwrap());
        assert_eq!(client.reader.read_line().unwrap(), "");
        chunks += 1;
    }
    assert!(body == burst, "the burst differs");
    assert!(chunks < 10, "{chunks} chunks");
}

#[test]
fn a_close_delimited_response_is_relayed_intact() {
    let body = pattern(200 * 1024);
    let sent = body.clone();
    let a = Backend::start("a", move |_, out| {
        out.write_all(b"HTTP/1.1 200 OK\r\nX-Kind: eof\r\n\r\n")
            .unwrap();
        out.write_all(&sent).unwrap();
        Action::Close
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    let response = client.get("/eof");
    assert_eq!(response.status, 200);
    assert!(response.body == body, "body bytes differ");
    if response.head.is_chunked() {
        // Re-framed for an HTTP/1.1 client: the connection may stay.
        assert_eq!(client.get("/eof").body.len(), body.len());
    }
}

#[test]
fn an_empty_close_delimited_response_reaches_an_http_1_0_client_head_and_all() {
    // Nothing of the body ever comes: the head still goes, then the
    // close that ends the body (an HTTP/1.0 client has no chunks).
    let a = Backend::start("a", |_, out| {
        out.write_all(b"HTTP/1.1 200 OK\r\nX-Kind: eof\r\n\r\n")
            .unwrap();
        Action::Close
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /empty HTTP/1.0\r\n\r\n");
    let response = client.response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-kind"), Some("eof"));
    assert!(!response.head.is_chunked(), "{}", response.head.raw);
    assert!(response.body.is_empty());
}

#[test]
fn a_large_content_length_response_is_relayed_intact() {
    let body = pattern(3 * 1024 * 1024 + 5);
    let sent = body.clone();
    let a = Backend::start("a", move |_, out| {
        respond(out, 200, &[], &sent);
        Action::KeepAlive
    });
    // Streamed (past the default response_buffer_size), and read whole
    // first.
    for buffer in [64 << 10, 4 << 20] {
        let proxy = start_proxy(&[a.addr], |c| c.response_buffer_size = buffer);
        let mut client = proxy.connect();
        for _ in 0..2 {
            let response = client.get("/large");
            assert_eq!(response.status, 200);
            assert_eq!(
                response.header("content-length"),
                Some(body.len().to_string().as_str())
            );
            assert!(response.body == body, "body bytes differ");
        }
    }
}

/// The backend connections used when a second client asks while the first
/// has read only the head of a 16 MiB response (more than the sockets
/// between them hold) and reads no more.
fn backend_connections_beside_a_slow_reader(response_buffer_size: u64) -> usize {
    let big = Arc::new(pattern(16 << 20));
    let a = Backend::start("a", move |seen, out| {
        let body: &[u8] = if seen.path() == "/big" {
            &big
        } else {
            b"small"
        };
        respond(out, 200, &[], body);
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |c| c.response_buffer_size = response_buffer_size);
    let mut slow = proxy.connect();
    slow.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = slow.reader.read_head().unwrap().unwrap();
    assert!(head.start_line.contains(" 200 "), "{}", head.start_line);
    let response = proxy.connect().get("/small");
    assert_eq!(response.body, b"small");
    a.connections()
}

#[test]
fn a_small_body_the_backend_pauses_in_reaches_the_client_as_it_comes() {
    // A page flushed as it renders: 10,000 bytes, a pause, the rest.
    let gate = Gate::new();
    let read_first = gate.clone();
    let paused_for_the_client = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen_by_backend = paused_for_the_client.clone();
    let page = pattern(30_000);
    let sent = page.clone();
    let a = Backend::start("a", move |_, out| {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", sent.len());
        out.write_all(head.as_bytes()).unwrap();
        out.write_all(&sent[..10_000]).unwrap();
        // Until the client has the first part (or the wait gives up).
        seen_by_backend.store(read_first.wait(), std::sync::atomic::Ordering::SeqCst);
        out.write_all(&sent[10_000..]).unwrap();
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = client.reader.read_head().unwrap().unwrap();
    assert_eq!(head.get("content-length"), Some("30000"));
    let first = client.reader.read_exact_body(10_000).unwrap();
    gate.open();
    let rest = client.reader.read_exact_body(20_000).unwrap();
    assert!(
        paused_for_the_client.load(std::sync::atomic::Ordering::SeqCst),
        "the first part waited for the rest"
    );
    assert_eq!([first, rest].concat(), page);
    assert_eq!(client.get("/again").status, 200);
}

#[test]
fn a_backend_connection_that_cannot_be_pooled_is_closed_before_a_slow_client_reads() {
    let big = Arc::new(pattern(16 << 20));
    let a = Backend::start("a", move |_, out| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            big.len()
        );
        out.write_all(head.as_bytes()).unwrap();
        out.write_all(&big).unwrap();
        // Reads on: the proxy's close ends the connection.
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |c| c.response_buffer_size = 16 << 20);
    let mut slow = proxy.connect();
    slow.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = slow.reader.read_head().unwrap().unwrap();
    assert!(head.start_line.contains(" 200 "), "{}", head.start_line);
    // The client reads no more: the proxy is still writing to it.
    let closed = || a.closed.load(std::sync::atomic::Ordering::SeqCst) == 1;
    assert!(wait_until(WAIT_LIMIT, closed));
}

#[test]
fn a_streamed_response_that_says_close_never_has_its_backend_connection_reused() {
    // Past response_buffer_size, so streamed; the backend would read on,
    // but said it closes: the proxy must not send it another request.
    let body = pattern(200_000);
    let sent = body.clone();
    let a = Backend::start("a", move |_, out| {
        respond(out, 200, &[("Connection", "close")], &sent);
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    for _ in 0..2 {
        let response = client.get("/big");
        assert_eq!(response.status, 200);
        assert!(response.body == body, "body bytes differ");
    }
    assert_eq!(a.connections(), 2);
}

#[test]
fn a_response_within_response_buffer_size_frees_its_backend_before_the_client_reads_it() {
    // Read whole first: the connection is back in the pool before the
    // head goes out, and carries the second request.
    assert_eq!(backend_connections_beside_a_slow_reader(16 << 20), 1);
    // Streamed: held until the slow client has it all.
    assert_eq!(backend_connections_beside_a_slow_reader(64 << 10), 2);
}

#[test]
fn a_request_sent_byte_by_byte_is_forwarded() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send_split(
        b"POST /slowly HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd",
        1,
    );
    let response = client.response();
    assert_eq!(response.status, 200);
    assert!(response.body_str().contains("POST /slowly len=4"));
    assert_eq!(a.seen()[0].body, b"abcd");
}

/// Sends `request` on a new connection; returns the response and whether
/// the proxy then closed the connection.
fn refused(proxy: &Proxy, request: &[u8]) -> (Response, bool) {
    let mut client = proxy.connect();
    client.send(request);
    let response = client.response();
    let closed = client.is_closed();
    (response, closed)
}

#[test]
fn malformed_requests_get_400_and_the_connection_closes() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let cases: [&[u8]; 5] = [
        b"THIS IS NOT HTTP\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ];
    for request in cases {
        let (response, closed) = refused(&proxy, request);
        let text = String::from_utf8_lossy(request);
        assert_eq!(response.status, 400, "{text}");
        assert!(closed, "connection left open after 400 for {text}");
    }
    // The bad chunk was the only one that got as far as a backend, and
    // the backend never saw a complete request from any of them.
    assert!(a.seen().iter().all(|s| s.body.is_empty()));
}

#[test]
fn a_head_refused_before_it_is_parsed_gets_the_head_of_its_answer_alone() {
    // RFC 9110 §9.3.2: no content in an answer to HEAD.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| c.max_uri_length = 64);
    let long_target = format!("HEAD /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(80));
    let oversized = format!(
        "HEAD / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70_000)
    );
    let cases: [(&[u8], u16); 5] = [
        (b"HEAD / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (long_target.as_bytes(), 414),
        (b"HEAD / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (oversized.as_bytes(), 431),
    ];
    for (request, status) in cases {
        let mut client = proxy.connect();
        client.send(request);
        let response = client.head_response();
        assert_eq!(response.status, status);
        assert!(response.head.has("content-length"), "{}", response.head.raw);
        let after = client.read_until_closed();
        assert_eq!(
            String::from_utf8_lossy(&after),
            "",
            "{status}: a body after the head"
        );
    }
    assert_eq!(a.requests(), 0);
}

#[test]
fn an_oversized_head_gets_431_and_the_connection_closes() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut request = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..400 {
        request.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(100)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let (response, closed) = refused(&proxy, &request);
    assert_eq!(response.status, 431);
    assert!(closed);
    assert_eq!(a.requests(), 0);
    // And the proxy still serves.
    assert_eq!(proxy.connect().get("/").status, 200);
}

#[test]
fn a_response_with_both_length_and_chunked_is_read_as_chunked() {
    let a = Backend::start("a", |_, out| {
        out.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        .unwrap();
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    let response = client.get("/");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    assert!(
        !(response.head.has("content-length") && response.head.has("transfer-encoding")),
        "{}",
        response.head.raw
    );
    // Such a connection is not trusted again: the next request gets a
    // new one.
    assert_eq!(client.get("/").body, b"hello");
    assert_eq!(a.connections(), 2);
}

/// A backend that reads only request heads and answers each at once with
/// `reply`, never reading a body; `close` ends the connection after it.
/// Returns its address and how many heads it saw.
fn answers_before_the_body(
    reply: &'static [u8],
    close: bool,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16).flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                read_head_bytes(&mut stream);
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(reply);
                if close {
                    return;
                }
                // Keep the connection, read nothing more.
                std::thread::sleep(IO_TIMEOUT);
            });
        }
    });
    (addr, heads)
}

/// A backend's answer to an upload it will not take.
const TOO_LARGE: &[u8] =
    b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig";

/// How an upload goes: (chunked, `request_buffer_size`). Streamed as it
/// comes, or read whole first and sent in one go.
const UPLOADS: [(bool, u64); 3] = [(false, 0), (true, 0), (false, 16 << 20)];

/// POSTs 8 MiB through a proxy in front of `addr`, framed and buffered as
/// `upload` says, with `connection_timeout` at `patience`; returns the
/// answer. The body goes from another thread: the proxy may stop reading
/// it, and the answer must come back all the same.
fn upload(addr: SocketAddr, patience: Duration, (is_chunked, buffer): (bool, u64)) -> Response {
    let proxy = start_proxy(&[addr], |c| {
        c.connection_timeout = patience;
        c.request_buffer_size = buffer;
    });
    let body = pattern(8 * 1024 * 1024);
    let mut client = proxy.connect();
    let head = if is_chunked {
        "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
    } else {
        format!(
            "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
    };
    client.send(head.as_bytes());
    let mut writer = client.reader.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let framed = match is_chunked {
            true => chunked(&body, &[64 * 1024]),
            false => body,
        };
        let _ = writer.write_all(&framed);
    });
    let response = client.response();
    drop(client);
    let _ = sender.join();
    response
}

#[test]
fn a_backend_answering_before_reading_a_large_body_is_relayed() {
    // RFC 9112 §9.5: the answer a backend gives before it has read the
    // body (a 413 here) reaches the client, whether the backend then
    // closes or just stops reading; it is not a 502 or a 504, and not a
    // failure of the target.
    for close in [true, false] {
        let (addr, heads) = answers_before_the_body(TOO_LARGE, close);
        for how in UPLOADS {
            let response = upload(addr, Duration::from_secs(30), how);
            assert_eq!(
                (response.status, response.body_str().as_str()),
                (413, "big"),
                "close {close}, (chunked, buffer) {how:?}"
            );
            // The rest of a streamed body is still on its way: that client
            // connection closes. A buffered one was read whole.
            let closes = response.header("connection") == Some("close");
            assert_eq!(closes, how.1 == 0, "(chunked, buffer) {how:?}");
        }
        assert_eq!(heads.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}

#[test]
fn an_answer_that_comes_while_the_body_waits_for_room_is_relayed_at_once() {
    // The backend takes little (a small receive buffer), answers only once
    // the proxy's writes of the body have had time to fill it, and then
    // keeps the connection without reading: the proxy, waiting for room
    // to write, must see the answer then, not after its write timeout (a
    // minute here, past the client's patience) or the backend's close.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&listener)
        .set_recv_buffer_size(4096)
        .unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(UPLOADS.len()).flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                read_head_bytes(&mut stream);
                std::thread::sleep(Duration::from_millis(300));
                let _ = stream.write_all(TOO_LARGE);
                std::thread::sleep(3 * IO_TIMEOUT);
            });
        }
    });
    for how in UPLOADS {
        let response = upload(addr, Duration::from_secs(60), how);
        assert_eq!(
            (response.status, response.body_str().as_str()),
            (413, "big"),
            "(chunked, buffer) {how:?}"
        );
    }
}

#[test]
fn an_unasked_100_continue_does_not_stop_a_streamed_body() {
    // Some servers send 100 Continue whatever the request said: an interim
    // answer, not a reason to stop sending the body.
    uploads_past(b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn empty_lines_from_the_backend_do_not_stop_a_streamed_body() {
    // They may come before a status line (RFC 9112 §2.2), and are skipped
    // there: no answer yet.
    uploads_past(b"\r\n");
    uploads_past(b"\r\nHTTP/1.1 100 Continue\r\n\r\n");
}

/// A 2 MiB upload, streamed to a backend that sends `early` once it has
/// the head and answers once it has the whole body, arrives whole.
fn uploads_past(early: &'static [u8]) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Some(Ok(mut stream)) = listener.incoming().next() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let mut reader = Reader::new(stream.try_clone().unwrap());
        let Ok(Some(head)) = reader.read_head() else {
            return;
        };
        let _ = stream.write_all(early);
        let len: usize = head.get("content-length").unwrap().parse().unwrap();
        let body = reader.read_exact_body(len).unwrap_or_default();
        let answer = format!("got {} fnv={:016x}", body.len(), fnv(&body));
        respond(&mut stream, 200, &[], answer.as_bytes());
        let _ = stream.read(&mut [0u8; 1]);
    });
    let proxy = start_proxy(&[addr], |_| {});
    let body = pattern(2 * 1024 * 1024);
    let response = proxy.connect().post("/up", &body);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body_str(),
        format!("got {} fnv={:016x}", body.len(), fnv(&body))
    );
}

/// A backend that answers `POST /up` with `early` as soon as its head is
/// read, then closes (after `hang`ing, if asked) without reading the body;
/// any other request is answered and its path recorded.
fn answers_early_then_fails(
    early: &'static [u8],
    hang: bool,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let paths = Arc::new(Mutex::new(Vec::new()));
    let seen = paths.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let head = read_head_bytes(&mut stream);
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                if path == "/up" {
                    let _ = stream.write_all(early);
                    if hang {
                        std::thread::sleep(Duration::from_secs(3));
                    }
                    return;
                }
                seen.lock().unwrap().push(path);
                respond(&mut stream, 200, &[], b"answered");
            });
        }
    });
    (addr, paths)
}

#[test]
fn an_early_answer_that_fails_closes_the_client_connection() {
    // The rest of the client's body is still on its connection: answered
    // 502 and kept open, the proxy would read it as the next request (a
    // page can make a browser upload one, to capture its next request).
    let cases: [(&[u8], bool, bool); 3] = [
        // A head promising a body, then a close.
        (
            b"HTTP/1.1 413 Too Large\r\nContent-Length: 10\r\n\r\n",
            false,
            false,
        ),
        // The same, then a stall past connection_timeout.
        (
            b"HTTP/1.1 413 Too Large\r\nContent-Length: 10\r\n\r\n",
            true,
            false,
        ),
        // A chunked answer with a bad chunk, to a chunked upload.
        (
            b"HTTP/1.1 401 No\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false,
            true,
        ),
    ];
    for (early, hang, chunked) in cases {
        let (addr, paths) = answers_early_then_fails(early, hang);
        let proxy = start_proxy(&[addr], |c| c.connection_timeout = Duration::from_secs(1));
        let mut client = proxy.connect();
        let (head, first, second): (&[u8], &[u8], &[u8]) = if chunked {
            (
                b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"10\r\naaaaaaaaaaaaaaaa\r\n",
                b"10\r\nbbbbbbbbbbbbbbbb\r\n",
            )
        } else {
            (
                b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n",
                b"aaaaaaaaaaaaaaaa",
                b"bbbbbbbbbbbbbbbb",
            )
        };
        // Streamed (over 64 KiB announced, or chunked): a first piece, then
        // a second once the backend has answered, then "the rest of the body".
        client.send(&[head, first].concat());
        std::thread::sleep(Duration::from_millis(300));
        client.send(second);
        std::thread::sleep(Duration::from_millis(300));
        client.send(b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
        let response = client.response();
        assert!(
            response.head.has_token("connection", "close"),
            "hang {hang}, chunked {chunked}: {}",
            response.head.raw
        );
        assert!(client.is_closed(), "hang {hang}, chunked {chunked}");
        assert!(
            paths.lock().unwrap().is_empty(),
            "{:?}",
            paths.lock().unwrap()
        );
    }
}

/// A request head as it arrives, byte by byte (nothing of the body is
/// read), within IO_TIMEOUT.
fn read_head_bytes(stream: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
    head
}

/// A backend that takes one chunked request body as it comes, sending
/// `progress` how many body bytes it has after each chunk, and answers
/// `chunks=N len=L fnv=F`: how many chunks the body came in, and the body.
fn chunk_counting_backend(progress: std::sync::mpsc::Sender<usize>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Some(Ok(stream)) = listener.incoming().next() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let mut out = stream.try_clone().unwrap();
        let mut reader = Reader::new(stream);
        let mut take = || -> std::io::Result<(usize, Vec<u8>)> {
            reader.read_head()?;
            let (mut chunks, mut body) = (0, Vec::new());
            loop {
                // We frame without extensions: the line is the size alone.
                let line = reader.read_line()?;
                let size = usize::from_str_radix(&line, 16)
                    .map_err(|_| std::io::Error::other(format!("size line {line:?}")))?;
                if size == 0 {
                    while !reader.read_line()?.is_empty() {}
                    return Ok((chunks, body));
                }
                body.extend_from_slice(&reader.read_exact_body(size)?);
                if !reader.read_line()?.is_empty() {
                    return Err(std::io::Error::other("no CRLF after chunk data"));
                }
                chunks += 1;
                let _ = progress.send(body.len());
            }
        };
        let answer = match take() {
            Ok((chunks, body)) => {
                format!("chunks={chunks} len={} fnv={:016x}", body.len(), fnv(&body))
            }
            Err(e) => format!("broken: {e}"),
        };
        respond(&mut out, 200, &[], answer.as_bytes());
    });
    addr
}

#[test]
fn a_body_sent_in_one_byte_chunks_reaches_the_backend_in_few_chunks() {
    // 200 KiB as `1\r\nx\r\n`, 1.2 MB on the wire in one write: forwarded
    // one chunk per chunk, that was some 140,000 writes (and as many small
    // packets) to the backend for 1.2 MB from the client. What each read
    // brings goes on as one chunk.
    let (progress, _) = std::sync::mpsc::channel();
    let addr = chunk_counting_backend(progress);
    let proxy = start_proxy(&[addr], |_| {});
    let body = pattern(200 * 1024);
    let mut request =
        b"POST /tiny HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for &byte in &body {
        request.extend_from_slice(&[b'1', b'\r', b'\n', byte, b'\r', b'\n']);
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let mut client = proxy.connect();
    client.send(&request);
    let response = client.response();
    assert_eq!(response.status, 200);
    let answer = response.body_str();
    let whole = format!("len={} fnv={:016x}", body.len(), fnv(&body));
    assert!(answer.ends_with(&whole), "{answer}");
    let chunks: usize = answer
        .strip_prefix("chunks=")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    assert!(chunks < 1000, "{answer}");
}

#[test]
fn a_chunked_body_trickling_in_is_forwarded_as_it_comes() {
    // Each piece the client sends reaches the backend before the client
    // sends the next: nothing waits for more to fill a chunk, even mid
    // chunk. Streamed from the start (request_buffer_size = 0) and past a
    // start read whole first.
    let pieces: [(&[u8], &[u8]); 4] = [
        (b"5\r\nhel", b"hel"),
        (b"lo\r\n3;x=y\r\n, w\r\n", b"lo, w"),
        (b"4\r\norld\r\n1\r", b"orld"),
        (b"\n!\r\n0\r\nT: t\r\n\r\n", b"!"),
    ];
    for buffer in [0, 64 << 10] {
        let (progress, arrived) = std::sync::mpsc::channel();
        let addr = chunk_counting_backend(progress);
        let proxy = start_proxy(&[addr], |c| c.request_buffer_size = buffer);
        let mut client = proxy.connect();
        let mut sent =
            b"POST /trickle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut body = Vec::new();
        if buffer > 0 {
            body = pattern(70_000);
            sent.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            sent.extend_from_slice(&body);
            sent.extend_from_slice(b"\r\n");
        }
        for (i, (wire, data)) in pieces.iter().enumerate() {
            sent.extend_from_slice(wire);
            client.send(&sent);
            sent.clear();
            body.extend_from_slice(data);
            // Bounded by WAIT_LIMIT: a proxy holding the piece back fails
            // here rather than hang.
            let got = std::iter::from_fn(|| arrived.recv_timeout(WAIT_LIMIT).ok())
                .find(|&len| len >= body.len());
            assert_eq!(got, Some(body.len()), "buffer {buffer}, piece {i}");
        }
        let response = client.response();
        let whole = format!("len={} fnv={:016x}", body.len(), fnv(&body));
        assert!(
            response.body_str().ends_with(&whole),
            "buffer {buffer}: {}",
            response.body_str()
        );
    }
}

/// A backend of raw connections: `answer(connection, head, reader, stream)`
/// for each request head it reads (the body is the answer's to read);
/// `false` ends the connection. Returns its address and the request lines
/// it saw, each as `<connection> <line>`.
fn raw_backend(
    answer: impl Fn(usize, &Head, &mut Reader<std::net::TcpStream>, &mut std::net::TcpStream) -> bool
        + Send
        + Sync
        + 'static,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (seen, answer) = (lines.clone(), Arc::new(answer));
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let (seen, answer) = (seen.clone(), answer.clone());
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                let mut reader = Reader::new(stream.try_clone().unwrap());
                while let Ok(Some(head)) = reader.read_head() {
                    seen.lock()
                        .unwrap()
                        .push(format!("{n} {}", head.start_line));
                    if !answer(n, &head, &mut reader, &mut stream) {
                        return;
                    }
                }
            });
        }
    });
    (addr, lines)
}

#[test]
fn an_unasked_101_while_the_body_goes_is_a_502_and_its_connection_never_used_again() {
    // After a 101's blank line the connection speaks another protocol: what
    // the backend sends next is no HTTP answer, and no other request may
    // go on it.
    const BODY: usize = 1 << 20;
    let (switched, switched_rx) = std::sync::mpsc::channel();
    let switched = Mutex::new(switched);
    let (addr, lines) = raw_backend(move |_, head, reader, out| {
        if head.start_line.starts_with("POST") {
            out.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                .unwrap();
            switched.lock().unwrap().send(()).unwrap();
            if reader.read_exact_body(BODY).is_err() {
                return false;
            }
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nswitched")
                .unwrap();
        } else {
            respond(out, 200, &[], b"ok");
        }
        true
    });
    let proxy = start_proxy(&[addr], |_| {});
    let mut client = proxy.connect();
    // Streamed (past request_buffer_size): the head goes before the body.
    client
        .send(format!("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {BODY}\r\n\r\n").as_bytes());
    switched_rx.recv_timeout(WAIT_LIMIT).unwrap();
    client.send(&pattern(BODY));
    assert_eq!(client.response().status, 502);
    assert_eq!(proxy.connect().get("/next").body, b"ok");
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines, ["0 POST /up HTTP/1.1", "1 GET /next HTTP/1.1"]);
}

#[test]
fn a_backend_that_closes_after_an_interim_answer_while_the_body_goes_had_the_request() {
    // As after an interim answer to a request sent whole (tests/forwarding.rs,
    // a_pooled_connection_closed_after_an_interim_response_is_not_tried_again):
    // not sent again on a new connection, though the close came while the
    // body (read whole, larger than the socket takes at once) was going.
    const BODY: usize = 24 << 20;
    let (addr, lines) = raw_backend(move |_, head, reader, out| {
        if head.start_line.starts_with("PUT") {
            out.write_all(b"HTTP/1.1 102 Processing\r\n\r\n").unwrap();
            // Read while the proxy's write waits for room.
            std::thread::sleep(Duration::from_millis(300));
            return false;
        }
        let len = head.get("content-length").map_or(0, |n| n.parse().unwrap());
        let _ = reader.read_exact_body(len);
        respond(out, 200, &[], b"ok");
        true
    });
    let proxy = start_proxy(&[addr], |c| c.request_buffer_size = 32 << 20);
    let mut client = proxy.connect();
    // A pooled connection for the PUT to go on.
    assert_eq!(client.get("/warm").status, 200);
    let response = client.request("PUT", "/doc", &[], &vec![b'x'; BODY]);
    let lines = lines.lock().unwrap().clone();
    assert_eq!(response.status, 502, "{lines:?}");
    assert_eq!(lines, ["0 GET /warm HTTP/1.1", "0 PUT /doc HTTP/1.1"]);
}
