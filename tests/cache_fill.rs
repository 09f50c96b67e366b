//! A response the cache takes is read from the backend at the backend's
//! speed, whatever its client's: a client that reads slowly, or one held
//! to `limit_rate`, does not hold back the entry it fills, nor the
//! requests coalesced on it (which would wait 5 s, then go to the backend
//! themselves), as nginx's buffering does not.

mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use support::pki::Pki;
use support::tls_client::{client_settings, TlsClient};
use support::*;

/// Far more than the kernel's buffers between the proxy and a client
/// that reads nothing hold.
const BIG: usize = 16 << 20;

/// An origin that answers every request with `len` bytes, storable.
fn origin(len: usize) -> Backend {
    let body = pattern(len);
    Backend::start("origin", move |_, out| {
        respond(out, 200, &[("Cache-Control", "max-age=60")], &body);
        Action::KeepAlive
    })
}

/// A caching proxy in front of `origin`, with `more` config lines.
fn caching(origin: &Backend, more: &str) -> Proxy {
    let text = format!("targets = {}\n{more}", origin.addr);
    let from_text = from_file(&text);
    start_proxy(&[], move |c| {
        from_text(c);
        c.cache_size = 64 << 20;
        c.max_object_size = Some(32 << 20);
    })
}

/// The bytes `proxy` keeps waiting for slow clients of responses being
/// stored (`inverso_cache_read_ahead_bytes`).
fn read_ahead(proxy: &Proxy) -> u64 {
    let cache = proxy.handle().cache().unwrap();
    (cache.stats.read_ahead).load(std::sync::atomic::Ordering::Relaxed)
}

/// Asserts that `r` is the whole body of `len` bytes.
fn assert_whole(r: &Response, len: usize, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.head.raw);
    let expected = pattern(len);
    assert_eq!(
        (r.body.len(), fnv(&r.body)),
        (len, fnv(&expected)),
        "{what}"
    );
}

/// Sends a request for the URL being filled (which waits for it, as
/// coalesced) and asserts it is answered from what was stored, the
/// origin asked once; only the head is read, when `head_only`.
fn asked_again_is_a_hit(proxy: &Proxy, origin: &Backend, head_only: bool) -> Response {
    assert!(
        wait_until(WAIT_LIMIT, || origin.requests() == 1),
        "the filling request reached the origin"
    );
    let mut client = proxy.connect();
    client.send(b"GET /big HTTP/1.1\r\nHost: test.example\r\n\r\n");
    let r = client.try_response(head_only).unwrap();
    assert_eq!(x_cache(&r), "HIT", "{}", r.head.raw);
    assert_eq!(origin.requests(), 1);
    r
}

#[test]
fn a_client_that_reads_nothing_does_not_hold_back_the_entry_it_fills() {
    let origin = origin(BIG);
    let proxy = caching(&origin, "");
    let mut slow = proxy.connect();
    slow.send(b"GET /big HTTP/1.1\r\nHost: test.example\r\n\r\n");
    // While it reads nothing, the entry is stored and serves another.
    let r = asked_again_is_a_hit(&proxy, &origin, false);
    assert_whole(&r, BIG, "the hit");
    // Then it has its answer whole, the connection going on.
    let r = slow.response();
    assert_eq!(x_cache(&r), "MISS", "{}", r.head.raw);
    assert_whole(&r, BIG, "the slow client's");
    assert_eq!(x_cache(&slow.get("/big")), "HIT");
}

#[test]
fn clients_that_read_nothing_keep_no_more_waiting_than_the_cache_holds() {
    // Each response fits max_object_size, but together they are many
    // times cache_size: past it, a backend is read at its client's pace
    // (else a few clients that read nothing held gigabytes).
    let clients = 6;
    let origin = origin(BIG);
    let capacity: u64 = 24 << 20;
    let proxy = start_proxy(&[origin.addr], |c| {
        c.cache_size = capacity;
        c.max_object_size = Some(BIG as u64);
        // The clients are read one after the other: the last waits long.
        c.connection_timeout = Duration::from_secs(60);
    });
    let waiting = || read_ahead(&proxy);
    let mut slow: Vec<_> = (0..clients)
        .map(|i| {
            let mut client = Client::connect_taking(4096, proxy.addr);
            client.send(format!("GET /big/{i} HTTP/1.1\r\nHost: test.example\r\n\r\n").as_bytes());
            client
        })
        .collect();
    assert!(wait_until(WAIT_LIMIT, || origin.requests() == clients));
    // Never more than the capacity, but 64 KiB each.
    let most = capacity + clients as u64 * (64 << 10);
    assert!(
        !wait_until(Duration::from_secs(2), || waiting() > most),
        "{} bytes wait",
        waiting()
    );
    assert!(waiting() > 0, "nothing read ahead");
    for (i, client) in slow.iter_mut().enumerate() {
        assert_whole(&client.response(), BIG, &format!("client {i}"));
    }
    // (Counted out once the proxy's last write has returned, which may be
    // after the client read its bytes.)
    assert!(wait_until(WAIT_LIMIT, || waiting() == 0), "{}", waiting());
}

#[test]
fn what_waited_for_a_client_that_left_is_dropped_while_the_fill_goes_on() {
    // Half the body, then the backend pauses: the client leaves meanwhile.
    let (len, first) = (16 << 20, 8 << 20);
    let (sent_half, go_on) = (Gate::new(), Gate::new());
    let origin = {
        let (sent_half, go_on) = (sent_half.clone(), go_on.clone());
        Backend::start("origin", move |_, out| {
            let body = pattern(len);
            let head = format!(
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: {len}\r\n\r\n"
            );
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(&body[..first]);
            sent_half.open();
            go_on.wait();
            let _ = out.write_all(&body[first..]);
            Action::KeepAlive
        })
    };
    let proxy = start_proxy(&[origin.addr], |c| {
        c.cache_size = 64 << 20;
        c.max_object_size = Some(32 << 20);
        // The backend's pause is not what ends the wait.
        c.connection_timeout = Duration::from_secs(60);
    });
    let waiting = || read_ahead(&proxy);
    let mut client = Client::connect_taking(4096, proxy.addr);
    client.send(b"GET /big HTTP/1.1\r\nHost: test.example\r\n\r\n");
    assert!(sent_half.wait(), "the backend sent half");
    assert!(wait_until(WAIT_LIMIT, || waiting() > 0), "nothing waits");
    // Unread bytes in its buffer: the close is a reset.
    drop(client);
    // Its bytes are no longer kept for it (nor held against every other
    // connection's) while the backend pauses.
    let dropped = wait_until(WAIT_LIMIT, || waiting() == 0);
    go_on.open();
    assert!(dropped, "{} bytes wait for a client that left", waiting());
    // The fill goes on into the cache.
    let stored = || proxy.handle().cache().unwrap().len() == 1;
    assert!(wait_until(WAIT_LIMIT, stored), "the fill was not stored");
    let r = proxy.connect().get("/big");
    assert_eq!(x_cache(&r), "HIT", "{}", r.head.raw);
    assert_whole(&r, len, "the hit");
    assert_eq!(origin.requests(), 1);
}

#[test]
fn a_client_held_to_limit_rate_does_not_hold_back_the_entry_it_fills() {
    // A megabyte at 64 KiB a second would take 16 s to send.
    let len = 1 << 20;
    let origin = origin(len);
    let proxy = caching(&origin, "limit_rate = 64KiB\n");
    let mut paced = proxy.connect();
    paced.send(b"GET /big HTTP/1.1\r\nHost: test.example\r\n\r\n");
    // Another's head, from what was stored (its body goes at the pace).
    let r = asked_again_is_a_hit(&proxy, &origin, true);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    // The paced answer's start arrived, at its pace.
    let r = paced.try_response(true).unwrap();
    assert_eq!((r.status, x_cache(&r)), (200, "MISS"), "{}", r.head.raw);
}

#[test]
fn a_tls_client_that_reads_nothing_does_not_hold_back_the_entry_it_fills() {
    let pki = Pki::new();
    let origin = origin(BIG);
    let proxy = caching(
        &origin,
        &format!("tls_port = 0\ntls_certificates = {}\n", pki.entry),
    );
    let tls_addr = proxy.handle().tls_addr().expect("tls_port is on");
    let settings = Arc::new(client_settings(&pki.ca, rustls::DEFAULT_VERSIONS, None));
    let mut slow = TlsClient::connect(tls_addr, &settings, "localhost");
    slow.send(b"GET /big HTTP/1.1\r\nHost: test.example\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || origin.requests() == 1));
    let mut other = TlsClient::connect(tls_addr, &settings, "localhost");
    let r = other.get("/big");
    assert_eq!(x_cache(&r), "HIT", "{}", r.head.raw);
    assert_whole(&r, BIG, "the hit");
    assert_eq!(origin.requests(), 1);
    let r = slow.response();
    assert_whole(&r, BIG, "the slow client's");
}

#[test]
fn a_backend_that_fails_mid_body_leaves_a_slow_client_all_it_had_sent() {
    // Half the body it announces, then the end of the connection.
    let (announced, sent) = (32 << 20, 24 << 20);
    let done = Gate::new();
    let origin = {
        let done = done.clone();
        Backend::start("origin", move |_, out| {
            let head = format!(
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: {announced}\r\n\r\n"
            );
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(&pattern(sent));
            done.open();
            Action::Close
        })
    };
    let proxy = caching(&origin, "");
    let mut slow = std::net::TcpStream::connect(proxy.addr).unwrap();
    slow.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    slow.write_all(b"GET /big HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .unwrap();
    // Read from the backend whole while the client reads nothing.
    assert!(done.wait(), "the proxy read all the backend sent");
    let mut got = Vec::new();
    let _ = slow.read_to_end(&mut got);
    let at = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let body = &got[at..];
    assert_eq!((body.len(), fnv(body)), (sent, fnv(&pattern(sent))));
    // Logged as what the client got.
    let mut proxy = proxy;
    assert!(proxy.shutdown(WAIT_LIMIT));
    let logged = format!("\" 200 {sent} ");
    assert!(
        proxy.log_lines().iter().any(|l| l.contains(&logged)),
        "{:#?}",
        proxy.log_lines()
    );
}

#[test]
fn a_response_being_stored_is_read_on_and_stored_after_its_client_leaves() {
    // A response the cache is storing is not given up when its client
    // leaves in the middle of its body: it is worth storing, and other
    // requests may be waiting for it (as nginx reads on a cacheable one).
    let left = Gate::new();
    let a = {
        let left = left.clone();
        Backend::start("a", move |seen, out| {
            let len = 256 * 1024;
            let head = format!(
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: {len}\r\n\r\n"
            );
            out.write_all(head.as_bytes()).unwrap();
            let body = vec![b'x'; len];
            if seen.path() == "/big" {
                out.write_all(&body[..1024]).unwrap();
                left.wait();
                // The rest in pieces, as a backend writing as it goes.
                for piece in body[1024..].chunks(16 * 1024) {
                    std::thread::sleep(Duration::from_millis(20));
                    if out.write_all(piece).is_err() {
                        return Action::Close;
                    }
                }
            }
            Action::KeepAlive
        })
    };
    let proxy = start_proxy(&[a.addr], |c| c.cache_size = 4 << 20);
    let mut client = proxy.connect();
    client.send(b"GET /big HTTP/1.1\r\nHost: test.example\r\n\r\n");
    let head = client.reader.read_head().unwrap().unwrap();
    assert!(head.start_line.contains(" 200 "), "{head:?}");
    drop(client);
    left.open();
    proxy.assert_becomes_idle();
    let again = proxy.connect().get("/big");
    assert_eq!(again.body.len(), 256 * 1024);
    assert_eq!(again.header("x-cache"), Some("HIT"), "{}", again.head.raw);
    assert_eq!(a.requests(), 1);
}

#[test]
fn a_backend_silent_while_a_slow_client_drains_times_out_from_its_last_byte() {
    // backend_timeout bounds the backend's silence from its last byte, as
    // nginx's proxy_read_timeout (between two reads): the time its slow
    // client took to drain what waited for it does not start it over.
    // The client reads nothing for 3 s after the backend's first part,
    // then all of it; the backend sends the rest 5.5 s after the first
    // part, past the timeout (4 s) but before 3 + 4 s. (Preconditions with
    // margins of 1.5 s each way, not measurements.)
    let timeout = Duration::from_secs(4);
    let (first, rest) = (8 << 20, 1 << 20);
    let sent_first = Gate::new();
    let origin = {
        let sent_first = sent_first.clone();
        Backend::start("origin", move |_, out| {
            let body = pattern(first + rest);
            let head = format!(
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: {}\r\n\r\n",
                first + rest
            );
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(&body[..first]);
            sent_first.open();
            std::thread::sleep(timeout * 11 / 8);
            let _ = out.write_all(&body[first..]);
            Action::Close
        })
    };
    let mut proxy = start_proxy(&[origin.addr], |c| {
        c.log_format = inverso::config::LogFormat::parse("$status $termination").unwrap();
        c.cache_size = 64 << 20;
        c.max_object_size = Some(32 << 20);
        c.backend_timeout = Some(timeout);
        // The client's slowness is not what ends the exchange.
        c.connection_timeout = Duration::from_secs(60);
    });
    let mut client = Client::connect_taking(4096, proxy.addr);
    client.send(b"GET /big HTTP/1.1\r\nHost: test.example\r\n\r\n");
    assert!(sent_first.wait(), "the backend sent its first part");
    std::thread::sleep(timeout * 3 / 4);
    let head = client.reader.read_head().unwrap().expect("a response head");
    assert!(head.start_line.starts_with("HTTP/1.1 200"), "{}", head.raw);
    let body = client.reader.read_exact_body(first + rest);
    assert!(
        body.is_err(),
        "the whole body came, the backend's silence outlasting backend_timeout"
    );
    drop(client);
    assert!(proxy.shutdown(WAIT_LIMIT));
    assert_eq!(proxy.log_lines(), ["200 sD"]);
}
