//! TLS to backends (a target written `host:port tls`, as nginx's
//! `proxy_pass https://` and HAProxy's `server ... ssl`), over real
//! sockets: in-process rustls backends (`support::tls_backend`) with
//! certificates of a test CA (`support::pki`) that `backend_tls_ca`
//! names. Requests and bodies both ways on a pooled connection, a body
//! that ends with the session, an answer before the request body is
//! taken, the certificate's chain and name (`tls_name`, SNI),
//! `backend_tls_verify`, client certificates, a backend that speaks no
//! TLS or never finishes its handshake, retries, a pooled connection
//! ended by `close_notify`, session resumption, reloads, WebSockets,
//! health checks, the cache, pools, TLS on both sides, and the
//! configuration's refusals.

mod support;

use inverso::config::{Config, Loader};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::pki::{provider, Ca, Pki};
use support::tls_backend::{TlsBackend, TlsSetup};
use support::*;

// ---------------------------------------------------------------- helpers

/// The head of an event stream, its body chunked.
const EVENT_STREAM_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

/// A test CA whose certificate is written where `backend_tls_ca` can
/// name it.
struct Trust {
    pki: Pki,
    ca_file: String,
}

impl Trust {
    fn new() -> Trust {
        let pki = Pki::new();
        let ca_file = pki.ca.write(pki.dir.path(), "backend-ca.pem");
        Trust {
            ca_file: ca_file.display().to_string(),
            pki,
        }
    }

    fn ca(&self) -> &Ca {
        &self.pki.ca
    }

    fn dir(&self) -> &Path {
        self.pki.dir.path()
    }

    /// A backend's setup serving a certificate of this CA for `names`.
    fn serving(&self, names: &[&str]) -> TlsSetup {
        TlsSetup::serving(&self.ca().leaf(names), self.ca())
    }

    /// proxy.conf with `targets`, this CA as the backends' roots, then
    /// `more`.
    fn conf(&self, targets: &str, more: &str) -> String {
        format!(
            "targets = {targets}\nbackend_tls_ca = {}\n{more}",
            self.ca_file
        )
    }
}

/// A TLS echo backend with a certificate of `trust` for 127.0.0.1 (an
/// IP address name), as a target `127.0.0.1:PORT tls` needs.
fn echo_on_ip(trust: &Trust, name: &str) -> TlsBackend {
    TlsBackend::echo(name, trust.serving(&["127.0.0.1"]))
}

/// `backend` as a `targets` entry marked `tls`, then `options`.
fn tls_target(backend: &Backend, options: &str) -> String {
    format!("{} tls {options}", backend.addr)
        .trim_end()
        .to_string()
}

/// Starts a proxy on `text` (read by the loader) with the admin listener
/// on, then `tweak` on what the harness set.
fn start(text: &str, tweak: impl FnOnce(&mut Config)) -> Proxy {
    let from_text = from_file_with_admin(text);
    start_proxy(&[], move |c| {
        from_text(c);
        tweak(c);
    })
}

/// The body [`Backend::echo`] answers `method path` with `body`.
fn echoed(name: &str, method: &str, path: &str, body: &[u8]) -> String {
    format!(
        "{name} {method} {path} len={} fnv={:016x}",
        body.len(),
        fnv(body)
    )
}

/// `GET path`, whose answer must come within the client's read timeout
/// ([`IO_TIMEOUT`]): the bound that tells an answer from a hang.
#[track_caller]
fn get_in_time(client: &mut Client, path: &str) -> Response {
    client.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    (client.try_response(false))
        .unwrap_or_else(|e| panic!("GET {path}: no answer within {IO_TIMEOUT:?}: {e}"))
}

/// The sample of `family` for the target at `addr` in the default pool.
fn target_metric(proxy: &Proxy, family: &str, addr: SocketAddr) -> Option<u64> {
    proxy.metric(&format!("{family}{{target=\"{addr}\",pool=\"default\"}}"))
}

/// Asserts that `addr`'s failures (`inverso_upstream_failures_total`)
/// come to at least `least`.
#[track_caller]
fn assert_failures_reach(proxy: &Proxy, addr: SocketAddr, least: u64) {
    let mut last = None;
    let reached = wait_until(WAIT_LIMIT, || {
        last = target_metric(proxy, "inverso_upstream_failures_total", addr);
        last.is_some_and(|n| n >= least)
    });
    assert!(reached, "failures of {addr}: {last:?}, not {least} or more");
}

/// Asserts that `backend` comes to count at least one failed handshake.
#[track_caller]
fn assert_a_handshake_failed(backend: &TlsBackend) {
    assert!(
        wait_until(WAIT_LIMIT, || backend.failed_handshakes() >= 1),
        "the backend saw no failed handshake (completed: {:?})",
        backend.handshakes()
    );
}

// ---------------------------------------------------------------- requests

#[test]
fn get_and_post_reach_a_tls_backend_on_one_kept_connection() {
    let trust = Trust::new();
    let backend = echo_on_ip(&trust, "a");
    // Counted as sent and read before and after encryption.
    let logged = "log_format = $upstream_bytes_sent $upstream_response_length\n";
    let mut proxy = start(&trust.conf(&tls_target(&backend, ""), logged), |_| {});
    let mut client = proxy.connect();
    let r = client.get("/one?x=1");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("x-backend"), Some("a"));
    assert_eq!(r.body_str(), echoed("a", "GET", "/one?x=1", b""));
    let form = pattern(5_000);
    let r = client.post("/form", &form);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("a", "POST", "/form", &form));
    for path in ["/two", "/three"] {
        let r = client.get(path);
        assert_eq!(r.body_str(), echoed("a", "GET", path, b""));
    }
    drop(client);
    // Another client: the pooled connection again.
    let r = proxy.connect().get("/four");
    assert_eq!(r.body_str(), echoed("a", "GET", "/four", b""));

    let seen = backend.seen();
    let paths: Vec<&str> = seen.iter().map(Seen::path).collect();
    assert_eq!(paths, ["/one?x=1", "/form", "/two", "/three", "/four"]);
    assert!(seen.iter().all(|s| s.conn == 0), "{seen:#?}");
    assert_eq!(backend.connections(), 1);
    // One handshake; to an IP address no name is sent (RFC 6066 §3).
    let handshakes = backend.handshakes();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}");
    assert_eq!(handshakes[0].sni, None);
    assert!(!handshakes[0].client_cert);
    assert_eq!(handshakes[0].version, Some(ProtocolVersion::TLSv1_3));

    assert!(proxy.shutdown(Duration::from_secs(5)));
    let mut counted: Vec<String> = seen
        .iter()
        .map(|s| {
            let body = echoed("a", s.method(), s.path(), &s.body);
            format!("{} {}", s.head.raw.len() + s.body.len(), body.len())
        })
        .collect();
    // Each connection's thread logs once its answer has gone: the first
    // client's last line may come after the second client's.
    let mut lines = proxy.log_lines();
    lines.sort();
    counted.sort();
    assert_eq!(lines, counted);
}

#[test]
fn a_backend_speaking_tls_1_2_alone_is_served() {
    let trust = Trust::new();
    static TLS12_ALONE: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let setup = trust.serving(&["127.0.0.1"]).versions(TLS12_ALONE);
    let backend = TlsBackend::echo("old", setup);
    let proxy = start(&trust.conf(&tls_target(&backend, ""), ""), |_| {});
    let mut client = proxy.connect();
    for path in ["/a", "/b"] {
        let r = client.get(path);
        assert_eq!(r.status, 200, "{}", r.head.raw);
        assert_eq!(r.body_str(), echoed("old", "GET", path, b""));
    }
    let handshakes = backend.handshakes();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}");
    assert_eq!(handshakes[0].version, Some(ProtocolVersion::TLSv1_2));
}

#[test]
fn backend_tls_protocols_may_leave_tls_1_2_out() {
    let trust = Trust::new();
    static TLS12_ALONE: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let old = TlsBackend::echo("old", trust.serving(&["127.0.0.1"]).versions(TLS12_ALONE));
    let new = TlsBackend::echo("new", trust.serving(&["127.0.0.1"]));
    // TLS 1.3 alone for the pool of the old backend, as the top level's.
    let more = format!(
        "backend_tls_protocols = tlsv1.3\npool.new = {}\nroute./new/ = new\n",
        tls_target(&new, "")
    );
    let proxy = start(&trust.conf(&tls_target(&old, ""), &more), |_| {});
    assert_eq!(proxy.connect().get("/a").status, 502);
    assert!(old.handshakes().is_empty(), "{:?}", old.handshakes());
    // Said by the backend's own thread, maybe after the 502.
    assert!(wait_until(WAIT_LIMIT, || old.failed_handshakes() >= 1));
    let r = proxy.connect().get("/new/a");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    let handshakes = new.handshakes();
    assert_eq!(handshakes[0].version, Some(ProtocolVersion::TLSv1_3));
    // Nothing older, as for tls_protocols.
    let mut loader = inverso::config::Loader::new();
    let text = "targets = 127.0.0.1:1\nbackend_tls_protocols = TLSv1.1\n";
    let e = match loader.file("proxy.conf", text) {
        Err(e) => e.to_string(),
        Ok(loader) => loader.build().map(|_| ()).unwrap_err().to_string(),
    };
    assert!(e.contains("TLSv1.1 is not offered"), "{e}");
}

#[test]
fn backend_tls_groups_and_ciphers_offer_only_what_they_name_per_pool_too() {
    use rustls::crypto::ring::kx_group;
    let trust = Trust::new();
    static X25519_ALONE: &[&dyn rustls::crypto::SupportedKxGroup] = &[kx_group::X25519];
    let x25519 = TlsBackend::echo("x", trust.serving(&["127.0.0.1"]).groups(X25519_ALONE));
    let other = TlsBackend::echo("other", trust.serving(&["127.0.0.1"]).groups(X25519_ALONE));
    // P-384 alone at the top level; the pool of `other` offers X25519 too,
    // and TLS 1.2 with one suite alone.
    let more = format!(
        "backend_tls_groups = secp384r1\npool.other = {}\nroute./other/ = other\n\
         pool.other.backend_tls_groups = P-384:X25519\n\
         pool.other.backend_tls_protocols = TLSv1.2\n\
         pool.other.backend_tls_ciphers = ECDHE-ECDSA-CHACHA20-POLY1305\n",
        tls_target(&other, "")
    );
    let proxy = start(&trust.conf(&tls_target(&x25519, ""), &more), |_| {});
    assert_eq!(proxy.connect().get("/a").status, 502);
    assert!(x25519.handshakes().is_empty(), "{:?}", x25519.handshakes());
    let r = proxy.connect().get("/other/a");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(
        other.handshakes()[0].suite,
        Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
    );
}

#[test]
fn a_large_upload_and_large_and_chunked_responses_cross_intact() {
    const LARGE_RESPONSE: usize = 4 << 20;
    const CHUNKED: usize = 300_000;
    let trust = Trust::new();
    let backend = TlsBackend::start("bodies", trust.serving(&["127.0.0.1"]), |seen, out| {
        match seen.path() {
            "/large" => respond(out, 200, &[], &pattern(LARGE_RESPONSE)),
            "/chunked" => {
                let mut bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                bytes.extend_from_slice(&chunked(&pattern(CHUNKED), 70_001, ""));
                let _ = out.write_all(&bytes);
            }
            _ => respond(out, 200, &[], describe("bodies", seen).as_bytes()),
        }
        Action::KeepAlive
    });
    let proxy = start(&trust.conf(&tls_target(&backend, ""), ""), |_| {});
    let mut client = proxy.connect();

    // Past request_buffer_size: streamed to the backend.
    let upload = pattern(10 << 20);
    let r = client.post("/upload", &upload);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("bodies", "POST", "/upload", &upload));

    // A chunked request body, sent in small writes.
    let body = pattern(200_000);
    let mut request =
        b"PUT /chunked-upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(&chunked(&body, 33_333, ""));
    client.send_split(&request, 4096);
    let r = client.response();
    assert_eq!(
        r.body_str(),
        echoed("bodies", "PUT", "/chunked-upload", &body)
    );

    let r = client.get("/large");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body.len(), LARGE_RESPONSE);
    assert_eq!(fnv(&r.body), fnv(&pattern(LARGE_RESPONSE)), "large body");

    let r = client.get("/chunked");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body.len(), CHUNKED);
    assert_eq!(fnv(&r.body), fnv(&pattern(CHUNKED)), "chunked body");

    let received: Vec<usize> = backend.seen().iter().map(|s| s.body.len()).collect();
    assert_eq!(received, [10 << 20, 200_000, 0, 0]);
    assert_eq!(backend.connections(), 1);
}

#[test]
fn a_body_that_ends_with_the_tls_session_arrives_whole() {
    // No Content-Length, not chunked: the body ends where the backend
    // ends the connection (close_notify, then the TCP end).
    const LEN: usize = 300_000;
    let trust = Trust::new();
    let backend = TlsBackend::start("until-close", trust.serving(&["127.0.0.1"]), |_, out| {
        let mut bytes =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
        bytes.extend_from_slice(&pattern(LEN));
        let _ = out.write_all(&bytes);
        Action::Close
    });
    let proxy = start(&trust.conf(&tls_target(&backend, ""), ""), |_| {});
    let mut client = proxy.connect();
    for path in ["/1", "/2"] {
        let r = client.get(path);
        assert_eq!(r.status, 200, "{}", r.head.raw);
        assert_eq!(r.body.len(), LEN, "{path}: {}", r.head.raw);
        assert_eq!(fnv(&r.body), fnv(&pattern(LEN)), "{path}: body differs");
    }
    assert_eq!(backend.connections(), 2);
}

/// A TLS backend answering each request with a body framed by the
/// connection's end (`max-age=60`, so the cache would keep it), ending
/// the session with `close_notify` or (`cut`) with the TCP end alone.
fn body_until_the_end(trust: &Trust, cut: bool) -> TlsBackend {
    TlsBackend::start_raw(
        "until-end",
        trust.serving(&["127.0.0.1"]),
        move |_, stream| {
            let mut out = stream.clone();
            if !matches!(Reader::new(stream).read_head(), Ok(Some(_))) {
                return;
            }
            let mut bytes = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\r\n".to_vec();
            bytes.extend_from_slice(&pattern(100_000));
            let _ = out.write_all(&bytes);
            let _ = out.flush();
            if !cut {
                let _ = out.shutdown(std::net::Shutdown::Both);
            }
            // Else the socket closes as the session is dropped: no close_notify.
        },
    )
}

#[test]
fn a_body_framed_by_the_end_counts_only_when_the_backend_says_close_notify() {
    let trust = Trust::new();
    // With it: whole, and cached.
    let whole = body_until_the_end(&trust, false);
    let proxy = start(&trust.conf(&tls_target(&whole, ""), ""), |c| {
        c.cache_size = 1 << 20;
    });
    for cache in ["MISS", "HIT"] {
        let r = proxy.exchange(|c| c.get("/page"));
        assert_eq!((r.status, x_cache(&r)), (200, cache), "{}", r.head.raw);
        assert!(r.body == pattern(100_000), "body differs");
    }
    assert_eq!(whole.connections(), 1);

    // Without it (the TCP end alone, which anyone on the way can forge):
    // cut short to the client, and not cached.
    let cut = body_until_the_end(&trust, true);
    let proxy = start(&trust.conf(&tls_target(&cut, ""), ""), |c| {
        c.cache_size = 1 << 20;
    });
    for _ in 0..2 {
        let got = proxy.exchange(|c| {
            c.send(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
            c.try_response(false)
        });
        assert!(got.is_err(), "taken whole: {:?}", got.map(|r| r.head.raw));
    }
    assert_eq!(
        cut.connections(),
        2,
        "the cut body was served from the cache"
    );
}

/// A backend's answer to an upload it will not take.
const TOO_LARGE: &[u8] =
    b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig";

/// A TLS backend that reads only request heads and answers each at once
/// with [`TOO_LARGE`], never reading a body; `close` ends the session
/// after it (close_notify), else it is kept, unread, until `done` opens.
fn answers_before_the_body(trust: &Trust, close: bool, done: &Gate) -> TlsBackend {
    let done = done.clone();
    TlsBackend::start_raw("early", trust.serving(&["127.0.0.1"]), move |_, stream| {
        let mut out = stream.clone();
        if !matches!(Reader::new(stream).read_head(), Ok(Some(_))) {
            return;
        }
        let _ = out.write_all(TOO_LARGE);
        let _ = out.flush();
        if close {
            let _ = out.shutdown(std::net::Shutdown::Both);
        } else {
            done.wait();
        }
    })
}

/// How an upload goes: (chunked, `request_buffer_size`). Streamed as it
/// comes, or read whole first and sent in one go.
const UPLOADS: [(bool, u64); 3] = [(false, 0), (true, 0), (false, 16 << 20)];

/// POSTs 8 MiB through a proxy on `text` (every timeout 30s), framed and
/// buffered as `upload` says; returns the answer, which must come within
/// the client's read timeout. The body goes from another thread: the
/// proxy may stop reading it, and the answer must come back all the same.
fn upload(text: &str, (is_chunked, buffer): (bool, u64)) -> Response {
    let proxy = start(text, |c| {
        c.connection_timeout = Duration::from_secs(30);
        c.request_buffer_size = buffer;
    });
    let body = pattern(8 << 20);
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
        let framed = if is_chunked {
            chunked(&body, 64 * 1024, "")
        } else {
            body
        };
        let _ = writer.write_all(&framed);
    });
    let how = format!("chunked {is_chunked}, request_buffer_size {buffer}");
    let response = (client.try_response(false))
        .unwrap_or_else(|e| panic!("{how}: no answer within {IO_TIMEOUT:?}: {e}"));
    // The client's socket closes for good with its writer's clone.
    let _ = client.reader.stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    response
}

#[test]
fn an_answer_a_tls_backend_gives_before_reading_the_body_is_relayed() {
    // As over plain HTTP (tests/framing.rs): the 413 reaches the client,
    // streamed body (Content-Length or chunked) or buffered, whether the
    // backend then closes or just stops reading.
    let trust = Trust::new();
    let done = Gate::new();
    for close in [true, false] {
        let backend = answers_before_the_body(&trust, close, &done);
        let text = trust.conf(&tls_target(&backend, ""), "");
        for how in UPLOADS {
            let r = upload(&text, how);
            let said = (r.status, r.body_str());
            assert_eq!(said, (413, "big".into()), "close {close}, {how:?}");
        }
        assert_eq!(backend.handshakes().len(), 3, "close {close}");
    }
    done.open();
}

#[test]
fn an_answer_that_comes_while_the_body_waits_for_room_is_relayed_at_once() {
    // tests/framing.rs's test of this name, over TLS. The backend takes
    // little (a small receive buffer) and reads nothing past the head; it
    // sends a record that carries no data, then, once the proxy's writes
    // of the body have had time to fill its buffer, its answer, and keeps
    // the connection. The proxy, waiting for room to write, must see the
    // answer when it comes, not at its write timeout (30s, past the
    // client's patience) or the backend's close. A record without data
    // is no answer, and no reason to stop watching for one: the session
    // tickets a TLS 1.3 server sends after its handshake are such
    // records, and come while the first request goes out (a key update
    // stands for them here, to come at a known time).
    let trust = Trust::new();
    let done = Gate::new();
    let holding = done.clone();
    let setup = trust.serving(&["127.0.0.1"]).receive_buffer(4096);
    let backend = TlsBackend::start_raw("late", setup, move |_, stream| {
        let mut out = stream.clone();
        if !matches!(Reader::new(stream).read_head(), Ok(Some(_))) {
            return;
        }
        let _ = out.send_key_update();
        // A precondition, not a measurement: time for the proxy's writes
        // to fill the buffers, and for it to take the record in.
        std::thread::sleep(Duration::from_secs(1));
        let _ = out.write_all(TOO_LARGE);
        let _ = out.flush();
        holding.wait();
    });
    let text = trust.conf(&tls_target(&backend, ""), "");
    for how in UPLOADS {
        let r = upload(&text, how);
        let said = (r.status, r.body_str());
        assert_eq!(said, (413, "big".into()), "{how:?}");
    }
    done.open();
}

// ---------------------------------------------------------------- verification

#[test]
fn a_certificate_of_another_ca_gets_502_unless_backend_tls_verify_is_off() {
    let trust = Trust::new();
    let stranger = Ca::new();
    let setup = TlsSetup::serving(&stranger.leaf(&["127.0.0.1"]), &stranger);
    let backend = TlsBackend::echo("a", setup);
    let text = trust.conf(&tls_target(&backend, ""), "");
    let proxy = start(&text, |_| {});
    let mut client = proxy.connect();
    for path in ["/refused", "/again"] {
        let r = client.get(path);
        assert_eq!(r.status, 502, "{path}: {}", r.head.raw);
    }
    assert_a_handshake_failed(&backend);
    assert!(
        backend.handshakes().is_empty(),
        "{:?}",
        backend.handshakes()
    );
    assert_eq!(backend.requests(), 0);
    assert_failures_reach(&proxy, backend.addr, 1);

    // Off (or false, as the README writes it): the certificate is taken
    // as it is.
    for off in ["off", "false"] {
        let more = format!("backend_tls_verify = {off}\n");
        let proxy = start(&trust.conf(&tls_target(&backend, ""), &more), |_| {});
        let r = proxy.connect().get("/taken");
        assert_eq!(r.status, 200, "{off}: {}", r.head.raw);
        assert_eq!(r.body_str(), echoed("a", "GET", "/taken", b""));
    }
    assert_eq!(backend.requests(), 2);
    assert_eq!(backend.handshakes().len(), 2);
}

#[test]
fn without_backend_tls_ca_a_test_ca_s_certificate_is_refused() {
    // The system's roots are the default: no public CA signed this one.
    let trust = Trust::new();
    let backend = echo_on_ip(&trust, "a");
    let text = format!("targets = {}\n", tls_target(&backend, ""));
    let proxy = start(&text, |_| {});
    let r = proxy.connect().get("/");
    assert_eq!(r.status, 502, "{}", r.head.raw);
    assert_eq!(backend.requests(), 0);
    assert_a_handshake_failed(&backend);
}

#[test]
fn the_certificate_must_name_the_target_s_address_or_its_tls_name() {
    let trust = Trust::new();
    let backend = TlsBackend::echo("named", trust.serving(&["backend.test"]));

    // By address: the certificate names no IP address.
    let proxy = start(&trust.conf(&tls_target(&backend, ""), ""), |_| {});
    let r = proxy.connect().get("/by-address");
    assert_eq!(r.status, 502, "{}", r.head.raw);
    assert_eq!(backend.requests(), 0);
    assert_a_handshake_failed(&backend);

    // Another name: refused as well.
    let other = tls_target(&backend, "tls_name=other.test");
    let proxy = start(&trust.conf(&other, ""), |_| {});
    let r = proxy.connect().get("/other-name");
    assert_eq!(r.status, 502, "{}", r.head.raw);
    assert_eq!(backend.requests(), 0);

    // Its name: served, and asked for in the hello.
    let named = tls_target(&backend, "tls_name=backend.test");
    let proxy = start(&trust.conf(&named, ""), |_| {});
    let r = proxy.connect().get("/by-name");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("named", "GET", "/by-name", b""));
    let handshakes = backend.handshakes();
    let snis: Vec<Option<&str>> = handshakes.iter().map(|h| h.sni.as_deref()).collect();
    assert_eq!(snis, [Some("backend.test")]);
}

/// Why a handshake with `backend`, checked for `name` against `trust`'s
/// CA, fails: what the log says after `cannot connect: `.
fn refusal(trust: &Trust, backend: &TlsBackend, name: &str) -> String {
    use inverso::config::Endpoint;
    use inverso::tls::backends::{client_config, server_name, BackendTlsKeys};
    use inverso::upstream::{connect, handshake, open, BackendTls};
    let keys = BackendTlsKeys {
        ca: Some(trust.ca_file.clone().into()),
        ..BackendTlsKeys::default()
    };
    let tls = BackendTls {
        settings: client_config(&keys).unwrap(),
        name: server_name(name, None).unwrap(),
    };
    let endpoint = Endpoint::Tcp(backend.addr);
    let stream = open(&endpoint, Some(&tls), None).unwrap();
    connect(&stream, &endpoint, Duration::from_secs(10)).unwrap();
    let failure = handshake(&stream, Duration::from_secs(10)).unwrap_err();
    failure.to_string()
}

#[test]
fn a_refused_certificate_is_said_in_words_with_what_it_holds() {
    let trust = Trust::new();
    let named = TlsBackend::echo("named", trust.serving(&["backend.test", "api.test"]));
    let said = refusal(&trust, &named, "other.test");
    assert_eq!(
        said,
        "TLS handshake: certificate refused: not valid for other.test: it is for backend.test, api.test"
    );

    let stranger = Ca::named("another CA");
    let setup = TlsSetup::serving(&stranger.leaf(&["backend.test"]), &stranger);
    let foreign = TlsBackend::echo("foreign", setup);
    let said = refusal(&trust, &foreign, "backend.test");
    assert!(
        said.starts_with("TLS handshake: certificate refused: not issued by a trusted authority"),
        "{said}"
    );
    // Another authority of the trusted one's name: its signature fails.
    let twin = Ca::new();
    let setup = TlsSetup::serving(&twin.leaf(&["backend.test"]), &twin);
    let twin = TlsBackend::echo("twin", setup);
    let said = refusal(&trust, &twin, "backend.test");
    assert!(
        said.starts_with("TLS handshake: certificate refused: its signature does not match"),
        "{said}"
    );

    let day = Duration::from_secs(86_400);
    let now = std::time::SystemTime::now();
    let leaf = trust
        .ca()
        .leaf_valid(&["backend.test"], now - 30 * day, now - 10 * day);
    let expired = TlsBackend::echo("expired", TlsSetup::serving(&leaf, trust.ca()));
    let said = refusal(&trust, &expired, "backend.test");
    let end = inverso::http::date::format_rfc3339(now - 10 * day);
    // To the second, as the certificate says it.
    let end = format!("{}Z", &end[..19]);
    assert_eq!(
        said,
        format!("TLS handshake: certificate refused: expired at {end}, 10 days ago")
    );
    for backend in [&named, &foreign, &twin, &expired] {
        assert_eq!(backend.requests(), 0);
    }
}

#[test]
fn a_target_named_localhost_asks_for_localhost_and_checks_that_name() {
    let trust = Trust::new();
    let ip = localhost_ip();
    let backend = TlsBackend::echo("local", trust.serving(&["localhost"]).on(ip));
    let target = format!("localhost:{} tls", backend.addr.port());
    let proxy = start(&trust.conf(&target, ""), |_| {});
    let r = proxy.connect().get("/local");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("local", "GET", "/local", b""));
    let handshakes = backend.handshakes();
    let snis: Vec<Option<&str>> = handshakes.iter().map(|h| h.sni.as_deref()).collect();
    assert_eq!(snis, [Some("localhost")]);

    // The name as written is checked, not the address it resolved to: a
    // certificate for the address alone does not do for `localhost`.
    let by_ip = TlsBackend::echo("ip", trust.serving(&[&ip.to_string()]).on(ip));
    let target = format!("localhost:{} tls", by_ip.addr.port());
    let proxy = start(&trust.conf(&target, ""), |_| {});
    let r = proxy.connect().get("/ip");
    assert_eq!(r.status, 502, "{}", r.head.raw);
    assert_eq!(by_ip.requests(), 0);
}

// ---------------------------------------------------------------- backends that do not speak it

/// A plain-HTTP server that answers whatever comes with 400 and closes,
/// as nginx answers a TLS hello sent to its plain port; keeps the first
/// bytes each connection sent.
fn plain_server_answering_400() -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let first_bytes: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let kept = first_bytes.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let kept = kept.clone();
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).unwrap_or(0);
                kept.lock().unwrap().push(chunk[..n].to_vec());
                let _ = stream.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request",
                );
            });
        }
    });
    (addr, first_bytes)
}

#[test]
fn a_plain_backend_marked_tls_gets_502_without_waiting_for_a_timeout() {
    let trust = Trust::new();
    let (addr, first_bytes) = plain_server_answering_400();
    let text = trust.conf(&format!("{addr} tls"), "connect_timeout = 60s\n");
    // Every timeout far past the client's read timeout (IO_TIMEOUT): only
    // the handshake failing on the backend's answer answers in time.
    let proxy = start(&text, |c| c.connection_timeout = Duration::from_secs(60));
    let r = get_in_time(&mut proxy.connect(), "/plain");
    assert_eq!(r.status, 502, "{}", r.head.raw);
    let first = first_bytes.lock().unwrap().clone();
    assert!(!first.is_empty(), "the proxy never connected");
    // What the proxy sent was a TLS handshake record, not the request.
    assert!(
        first.iter().all(|b| b.first() == Some(&0x16)),
        "not a TLS hello: {:?}",
        first
            .iter()
            .map(|b| String::from_utf8_lossy(b))
            .collect::<Vec<_>>()
    );
    assert_failures_reach(&proxy, addr, 1);
}

#[test]
fn a_tls_backend_not_marked_tls_gets_502() {
    let trust = Trust::new();
    let backend = echo_on_ip(&trust, "a");
    let proxy = start(&trust.conf(&backend.addr.to_string(), ""), |_| {});
    let r = proxy.connect().get("/plain-to-tls");
    assert_eq!(r.status, 502, "{}", r.head.raw);
    assert_eq!(backend.requests(), 0);
    assert!(backend.handshakes().is_empty());
    assert_a_handshake_failed(&backend);
}

/// The setting under which only `connect_timeout` (1s) can end a
/// backend's silence before the client's read timeout (IO_TIMEOUT).
fn a_second_to_connect(c: &mut Config) {
    c.connection_timeout = Duration::from_secs(60);
}

#[test]
fn a_handshake_the_backend_never_answers_ends_at_connect_timeout_as_a_connect_does() {
    let trust = Trust::new();
    let stalled = TlsBackend::echo("stalled", trust.serving(&["127.0.0.1"]).stalling());
    let more = "connect_timeout = 1s\nbackend_timeout = 60s\n";
    let proxy = start(
        &trust.conf(&tls_target(&stalled, ""), more),
        a_second_to_connect,
    );
    let r = get_in_time(&mut proxy.connect(), "/stalled");
    // A connect that times out is answered 504 (tests/resilience.rs,
    // connect_timeout_bounds_a_backend_that_never_answers_the_handshake).
    assert_eq!(r.status, 504, "{}", r.head.raw);
    assert!(stalled.connections() >= 1);
    assert_eq!(stalled.requests(), 0);
    assert_failures_reach(&proxy, stalled.addr, 1);

    // With a good target beside it, the request goes there.
    let good = echo_on_ip(&trust, "good");
    let targets = format!("{}, {}", tls_target(&stalled, ""), tls_target(&good, ""));
    let proxy = start(&trust.conf(&targets, more), a_second_to_connect);
    let mut client = proxy.connect();
    for path in ["/1", "/2"] {
        let r = get_in_time(&mut client, path);
        assert_eq!(r.status, 200, "{}", r.head.raw);
        assert_eq!(r.body_str(), echoed("good", "GET", path, b""));
    }
}

// ---------------------------------------------------------------- retries

#[test]
fn a_target_with_a_bad_certificate_is_passed_over_for_the_next_one() {
    let trust = Trust::new();
    let stranger = Ca::new();
    let bad = TlsBackend::echo(
        "bad",
        TlsSetup::serving(&stranger.leaf(&["127.0.0.1"]), &stranger),
    );
    let good = echo_on_ip(&trust, "good");
    let targets = format!("{}, {}", tls_target(&bad, ""), tls_target(&good, ""));
    // Never taken out: every other request is tried on the bad one first.
    let proxy = start(&trust.conf(&targets, "max_fails = 0\n"), |_| {});
    let mut client = proxy.connect();
    for i in 0..4 {
        let path = format!("/get{i}");
        let r = client.get(&path);
        assert_eq!(r.status, 200, "{}", r.head.raw);
        assert_eq!(r.body_str(), echoed("good", "GET", &path, b""));
    }
    // A failed handshake is a connection not made: nothing was sent, so
    // even a POST goes on to the next target.
    for i in 0..4 {
        let path = format!("/post{i}");
        let body = pattern(1000 + i);
        let r = client.post(&path, &body);
        assert_eq!(r.status, 200, "{}", r.head.raw);
        assert_eq!(r.body_str(), echoed("good", "POST", &path, &body));
    }
    assert_eq!(bad.requests(), 0);
    assert!(
        bad.connections() >= 4,
        "bad tried {} times",
        bad.connections()
    );
    assert_eq!(good.requests(), 8);
    assert_failures_reach(&proxy, bad.addr, 4);
    assert_eq!(
        target_metric(&proxy, "inverso_upstream_failures_total", good.addr),
        Some(0)
    );
}

#[test]
fn a_bad_certificate_under_default_settings_is_retried_on_the_good_target() {
    let trust = Trust::new();
    let stranger = Ca::new();
    let bad = TlsBackend::echo(
        "bad",
        TlsSetup::serving(&stranger.leaf(&["127.0.0.1"]), &stranger),
    );
    let good = echo_on_ip(&trust, "good");
    let targets = format!("{}, {}", tls_target(&bad, ""), tls_target(&good, ""));
    let proxy = start(&trust.conf(&targets, ""), |_| {});
    let mut client = proxy.connect();
    for i in 0..4 {
        let r = client.get(&format!("/{i}"));
        assert_eq!(r.status, 200, "{}", r.head.raw);
        assert_eq!(r.header("x-backend"), Some("good"));
    }
    assert_eq!(bad.requests(), 0);
    assert!(bad.connections() >= 1, "the bad target was never tried");
    assert_failures_reach(&proxy, bad.addr, 1);
}

// ---------------------------------------------------------------- client certificates

#[test]
fn a_backend_that_requires_a_client_certificate_gets_backend_tls_certificate() {
    let trust = Trust::new();
    let clients = Ca::new();
    let setup = trust
        .serving(&["127.0.0.1"])
        .client_certificate_from(&clients);
    let backend = TlsBackend::echo("mtls", setup);
    let target = tls_target(&backend, "");

    // None to present: refused.
    let proxy = start(&trust.conf(&target, ""), |_| {});
    let r = proxy.connect().get("/anonymous");
    assert_eq!(r.status, 502, "{}", r.head.raw);
    assert_eq!(backend.requests(), 0);
    assert_a_handshake_failed(&backend);

    // One of a CA the backend does not trust: refused.
    let dir = trust.dir();
    let stranger = Ca::new();
    let foreign = stranger
        .client_leaf("proxy")
        .write_apart(&stranger, dir, "foreign");
    let more = format!("backend_tls_certificate = {foreign}\n");
    let proxy = start(&trust.conf(&target, &more), |_| {});
    let r = proxy.connect().get("/foreign");
    assert_eq!(r.status, 502, "{}", r.head.raw);
    assert_eq!(backend.requests(), 0);

    // Its own: chain and key apart, then in one file.
    let leaf = clients.client_leaf("proxy");
    let apart = leaf.write_apart(&clients, dir, "client");
    let together = leaf.write(&clients, dir, "client.pem");
    for entry in [apart, together.display().to_string()] {
        let more = format!("backend_tls_certificate = {entry}\n");
        let proxy = start(&trust.conf(&target, &more), |_| {});
        let r = proxy.connect().get("/certified");
        assert_eq!(r.status, 200, "{entry}: {}", r.head.raw);
        assert_eq!(r.body_str(), echoed("mtls", "GET", "/certified", b""));
    }
    let handshakes = backend.handshakes();
    assert_eq!(handshakes.len(), 2, "{handshakes:?}");
    assert!(handshakes.iter().all(|h| h.client_cert), "{handshakes:?}");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_backend_that_asks_for_no_client_certificate_is_shown_none() {
    let trust = Trust::new();
    let clients = Ca::new();
    let backend = echo_on_ip(&trust, "a");
    let entry = clients
        .client_leaf("proxy")
        .write_apart(&clients, trust.dir(), "client");
    let more = format!("backend_tls_certificate = {entry}\n");
    let proxy = start(&trust.conf(&tls_target(&backend, ""), &more), |_| {});
    let r = proxy.connect().get("/");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    let handshakes = backend.handshakes();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}");
    assert!(!handshakes[0].client_cert);
}

// ---------------------------------------------------------------- pooled connections

#[test]
fn a_pooled_connection_the_backend_ends_with_close_notify_is_not_used_again() {
    let trust = Trust::new();
    // Each connection answers one request, waits (bounded) until the
    // test has the answer and the connection idles in the proxy's pool,
    // then ends its session: close_notify, then the TCP end.
    let idle = Gate::new();
    let gate = idle.clone();
    let backend = TlsBackend::start("once", trust.serving(&["127.0.0.1"]), move |seen, out| {
        respond(out, 200, &[], describe("once", seen).as_bytes());
        let _ = out.flush();
        gate.wait();
        Action::Close
    });
    let proxy = start(&trust.conf(&tls_target(&backend, ""), ""), |_| {});
    let mut client = proxy.connect();
    let r = client.get("/first");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    idle.open();
    assert!(wait_until(WAIT_LIMIT, || backend.closed() == 1));

    // A GET, then (the second connection closed the same way) a POST,
    // which is sent only on a connection still open as it leaves.
    let r = client.get("/second");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("once", "GET", "/second", b""));
    assert!(wait_until(WAIT_LIMIT, || backend.closed() == 2));
    let body = pattern(3000);
    let r = client.post("/third", &body);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("once", "POST", "/third", &body));

    let conns: Vec<usize> = backend.seen().iter().map(|s| s.conn).collect();
    assert_eq!(conns, [0, 1, 2]);
    assert_eq!(backend.connections(), 3);
}

/// A TLS backend that answers each request on a connection of its own
/// (`Connection: close`, then close_notify): every request a handshake.
fn one_request_per_connection(trust: &Trust) -> TlsBackend {
    TlsBackend::start("once", trust.serving(&["127.0.0.1"]), |seen, out| {
        let body = describe("once", seen);
        respond(out, 200, &[("Connection", "close")], body.as_bytes());
        Action::Close
    })
}

/// Reloads `proxy` with `text`, read by the loader as at start.
fn reload(proxy: &Proxy, text: &str) {
    let next = proxy.config_for(&[], from_file_with_admin(text));
    proxy.handle().control().reload(next).unwrap();
}

#[test]
fn new_connections_resume_the_backend_s_session_until_a_reload() {
    let trust = Trust::new();
    let backend = one_request_per_connection(&trust);
    let text = trust.conf(&tls_target(&backend, ""), "");
    let proxy = start(&text, |_| {});
    let mut client = proxy.connect();
    for path in ["/1", "/2", "/3"] {
        let r = client.get(path);
        assert_eq!(r.status, 200, "{}", r.head.raw);
        assert_eq!(r.body_str(), echoed("once", "GET", path, b""));
    }
    reload(&proxy, &text);
    for path in ["/4", "/5"] {
        let r = client.get(path);
        assert_eq!(r.status, 200, "{}", r.head.raw);
    }
    let resumed: Vec<bool> = backend.handshakes().iter().map(|h| h.resumed).collect();
    assert_eq!(resumed, [false, true, true, false, true]);
}

#[test]
fn a_reload_reads_backend_tls_ca_again() {
    let trust = Trust::new();
    let other = Ca::new();
    let backend = echo_on_ip(&trust, "a");
    // The file the configuration names trusts another CA at first.
    let roots = trust.dir().join("roots.pem");
    std::fs::write(&roots, &other.pem).unwrap();
    let text = format!(
        "targets = {}\nbackend_tls_ca = {}\n",
        tls_target(&backend, ""),
        roots.display()
    );
    let proxy = start(&text, |_| {});
    let mut client = proxy.connect();
    assert_eq!(client.get("/before").status, 502);
    assert_eq!(backend.requests(), 0);

    // The backend's CA written in, and a reload: trusted.
    std::fs::write(&roots, &trust.ca().pem).unwrap();
    reload(&proxy, &text);
    let r = client.get("/trusted");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("a", "GET", "/trusted", b""));

    // Taken out again: the connection made under the old trust is not
    // used after the reload, and a new one is refused.
    std::fs::write(&roots, &other.pem).unwrap();
    reload(&proxy, &text);
    let r = client.get("/distrusted");
    assert_eq!(r.status, 502, "{}", r.head.raw);
    let paths: Vec<String> = backend
        .seen()
        .iter()
        .map(|s| s.path().to_string())
        .collect();
    assert_eq!(paths, ["/trusted"]);
}

#[test]
fn without_a_host_a_request_and_a_probe_name_the_target_s_tls_name() {
    let trust = Trust::new();
    let backend = TlsBackend::echo("named", trust.serving(&["backend.test"]));
    let target = tls_target(&backend, "tls_name=backend.test");
    let more = "health_check_path = /health\nhealth_check_interval = 300ms\n";
    let proxy = start(&trust.conf(&target, more), |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /old HTTP/1.0\r\n\r\n");
    let r = client.response();
    assert_eq!(r.status, 200, "{}", r.head.raw);
    let r = proxy.connect().get("/hosted");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert!(wait_until(WAIT_LIMIT, || backend
        .seen()
        .iter()
        .any(|s| s.path() == "/health")));
    let port = backend.addr.port();
    let hosts = |path: &str| -> Vec<String> {
        let seen = backend.seen();
        let of_path = seen.iter().filter(|s| s.path() == path);
        of_path.map(|s| s.field_or("host", "-")).collect()
    };
    assert_eq!(hosts("/old"), [format!("backend.test:{port}")]);
    assert_eq!(hosts("/hosted"), ["test.example"]);
    assert!(
        hosts("/health")
            .iter()
            .all(|h| *h == format!("backend.test:{port}")),
        "{:?}",
        hosts("/health")
    );
}

#[test]
fn the_proxy_ends_its_sessions_with_backends_with_close_notify() {
    let trust = Trust::new();
    let backend = TlsBackend::start("a", trust.serving(&["127.0.0.1"]), |seen, out| {
        if seen.path() == "/slow" {
            // Answers nothing: the proxy gives up at backend_timeout.
            return Action::Hang;
        }
        respond(out, 200, &[], seen.path().as_bytes());
        Action::KeepAlive
    });
    let text = trust.conf(&tls_target(&backend, ""), "upstream_keepalive = 0\n");
    let mut proxy = start(&text, |_| {});
    let mut client = proxy.connect();
    // Not kept: let go after each answer.
    for path in ["/1", "/2"] {
        assert_eq!(client.get(path).status, 200);
    }
    assert!(wait_until(WAIT_LIMIT, || backend.closed() == 2));
    assert_eq!(backend.close_notifies(), 2);

    // An exchange that failed.
    let more = "backend_timeout = 500ms\n";
    let failing = start(&trust.conf(&tls_target(&backend, ""), more), |_| {});
    assert_eq!(failing.connect().get("/slow").status, 504);
    assert!(wait_until(WAIT_LIMIT, || backend.closed() == 3));
    assert_eq!(backend.close_notifies(), 3);

    // Kept in the pool, then let go at shutdown.
    let kept = start(&trust.conf(&tls_target(&backend, ""), ""), |_| {});
    assert_eq!(kept.connect().get("/kept").status, 200);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let mut kept = kept;
    assert!(kept.shutdown(Duration::from_secs(5)));
    assert!(wait_until(WAIT_LIMIT, || backend.closed() == 4));
    assert_eq!(backend.close_notifies(), 4);
}

#[test]
fn a_client_leaving_while_a_tls_backend_works_is_noticed() {
    // As over plain HTTP (tests/resilience.rs and tests/tls.rs): the proxy
    // gives the request up and closes the backend's connection; the TLS
    // 1.3 session tickets that came first do not hide the client's leave.
    let trust = Trust::new();
    let saw_close = Arc::new(AtomicUsize::new(0));
    let closes = saw_close.clone();
    let backend = TlsBackend::start("a", trust.serving(&["127.0.0.1"]), move |seen, out| {
        if seen.path() != "/work" {
            respond(out, 200, &[], seen.path().as_bytes());
            return Action::KeepAlive;
        }
        // Works until the proxy closes (or the read timeout passes).
        let mut byte = [0u8; 1];
        match out.read(&mut byte) {
            Ok(0) => {
                closes.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                closes.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        Action::Close
    });
    let mut proxy = start(&trust.conf(&tls_target(&backend, ""), ""), |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /work HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || backend.requests() == 1));
    drop(client);
    assert!(
        wait_until(WAIT_LIMIT, || saw_close.load(Ordering::SeqCst) == 1),
        "the backend saw no close while it worked"
    );
    proxy.assert_becomes_idle();
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    let line = lines.iter().find(|l| l.contains("/work")).unwrap();
    assert!(line.contains("\" 499 "), "{line}");
}

#[test]
fn an_event_stream_s_head_is_relayed_when_records_without_data_follow_it() {
    // tests/resilience.rs's event stream, over TLS: the head of a body of
    // unknown length goes on once none of the body comes within a short
    // patience (50 ms). A record that carries no data (a key update here;
    // a TLS 1.3 session ticket is another) coming in that patience makes
    // the socket readable but gives no byte: no reason to wait for one
    // for the whole backend_timeout. The backend sends such records for a
    // while (so that some come while the proxy waits, however late it
    // begins to), then its first event only if the client had the head
    // by then: a proxy that waits for the event first never sends it.
    let trust = Trust::new();
    let first_event = Gate::new();
    let held = first_event.clone();
    let backend = TlsBackend::start("a", trust.serving(&["127.0.0.1"]), move |_, out| {
        let _ = out.write_all(EVENT_STREAM_HEAD);
        let _ = out.flush();
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(10));
            let _ = out.send_key_update();
        }
        if held.wait() {
            let _ = out.write_all(b"c\r\ndata: tick\n\n\r\n0\r\n\r\n");
            let _ = out.flush();
        }
        Action::Close
    });
    let long = Duration::from_secs(30);
    let proxy = start(&trust.conf(&tls_target(&backend, ""), ""), |c| {
        c.connection_timeout = long;
        c.backend_timeout = Some(long);
    });
    let mut client = proxy.connect();
    client.send(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = client.reader.read_head();
    first_event.open();
    let head = (head.unwrap_or_else(|e| panic!("no head within {IO_TIMEOUT:?}: {e}")))
        .expect("closed before a head");
    assert!(head.start_line.starts_with("HTTP/1.1 200"), "{head:?}");
    assert!(head.is_chunked(), "{head:?}");
    let event = client.reader.read_line();
    assert_eq!(
        event.ok().as_deref(),
        Some("c"),
        "the backend sent no event"
    );
}

#[test]
fn a_client_leaving_an_event_stream_is_noticed_after_a_record_without_data() {
    // tests/resilience.rs's client that leaves an event stream, over TLS:
    // between events the proxy waits on the backend watching the client.
    // A record that carries no data (a key update) ends that wait but
    // gives no byte: the wait goes on, still watching, rather than a read
    // that sees only the backend until backend_timeout.
    let trust = Trust::new();
    let (read_event, updated) = (Gate::new(), Gate::new());
    let saw_close = Arc::new(AtomicUsize::new(0));
    let backend = {
        let (read_event, updated, closes) =
            (read_event.clone(), updated.clone(), saw_close.clone());
        TlsBackend::start("a", trust.serving(&["127.0.0.1"]), move |_, out| {
            let _ = out.write_all(EVENT_STREAM_HEAD);
            let _ = out.write_all(b"c\r\ndata: tick\n\n\r\n");
            let _ = out.flush();
            read_event.wait();
            // Time for the proxy to wait for the next event (a
            // precondition, not a measurement).
            std::thread::sleep(Duration::from_millis(50));
            let _ = out.send_key_update();
            updated.open();
            match out.read(&mut [0u8; 64]) {
                Ok(0) => {
                    closes.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    closes.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
            Action::Close
        })
    };
    let long = Duration::from_secs(30);
    let proxy = start(&trust.conf(&tls_target(&backend, ""), ""), |c| {
        c.connection_timeout = long;
        c.backend_timeout = Some(long);
    });
    let mut client = proxy.connect();
    client.send(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = client.reader.read_head().unwrap().expect("a response head");
    assert!(head.start_line.starts_with("HTTP/1.1 200"), "{head:?}");
    assert_eq!(client.reader.read_line().unwrap(), "c");
    read_event.open();
    assert!(updated.wait(), "the backend sent no key update");
    // Time for the record to reach the proxy before the client leaves.
    std::thread::sleep(Duration::from_millis(50));
    drop(client);
    assert!(
        wait_until(WAIT_LIMIT, || saw_close.load(Ordering::SeqCst) == 1),
        "the backend saw no close"
    );
}

// ---------------------------------------------------------------- websocket

/// A WebSocket origin over TLS that greets first (a frame in the record
/// of its 101), then echoes each frame until a close frame, echoed too.
fn websocket_backend(trust: &Trust) -> TlsBackend {
    TlsBackend::start("ws", trust.serving(&["127.0.0.1"]), |seen, out| {
        let key = seen.head.get("sec-websocket-key").unwrap_or_default();
        let handshake = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            websocket_accept(key)
        );
        let mut bytes = handshake.into_bytes();
        bytes.extend_from_slice(&websocket_frame(0x1, b"welcome", None));
        if out.write_all(&bytes).is_err() {
            return Action::Close;
        }
        let Ok(mut reader) = out.try_clone() else {
            return Action::Close;
        };
        echo_websocket_frames(out, &mut reader);
        Action::Close
    })
}

/// Asks `client` (any stream to the proxy) for a WebSocket to
/// [`websocket_backend`] and talks to it both ways, through to the close
/// handshake that ends the connection.
fn talk_websocket<S: Read + Write>(client: &mut Reader<S>) {
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    let send = |client: &mut Reader<S>, bytes: &[u8], piece: usize| {
        for part in bytes.chunks(piece) {
            client.stream.write_all(part).unwrap();
            client.stream.flush().unwrap();
        }
    };
    let upgrade = format!(
        "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    send(client, upgrade.as_bytes(), usize::MAX);
    let r = client.read_response(true).unwrap();
    assert_eq!(r.status, 101, "{}", r.head.raw);
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some(websocket_accept(KEY).as_str())
    );
    // The greeting, unasked.
    assert_eq!(
        client.read_websocket_frame().unwrap(),
        (0x1, b"welcome".to_vec())
    );
    let hello = websocket_frame(0x1, b"hello", Some([1, 2, 3, 4]));
    send(client, &hello, usize::MAX);
    assert_eq!(
        client.read_websocket_frame().unwrap(),
        (0x1, b"hello".to_vec())
    );
    // One frame of many TLS records each way, sent in small writes.
    let big = pattern(100_000);
    send(
        client,
        &websocket_frame(0x2, &big, Some([9, 8, 7, 6])),
        4096,
    );
    let (opcode, echoed) = client.read_websocket_frame().unwrap();
    assert_eq!(opcode, 0x2);
    assert!(echoed == big, "binary frame differs");
    let close = websocket_frame(0x8, &[0x03, 0xe8], Some([5, 5, 5, 5]));
    send(client, &close, usize::MAX);
    assert_eq!(
        client.read_websocket_frame().unwrap(),
        (0x8, vec![0x03, 0xe8])
    );
    assert!(
        client.is_closed(),
        "the tunnel outlived its close handshake"
    );
}

#[test]
fn a_websocket_to_a_tls_backend_is_tunnelled_both_ways() {
    let trust = Trust::new();
    let backend = websocket_backend(&trust);
    let proxy = start(&trust.conf(&tls_target(&backend, ""), ""), |_| {});
    let mut client = proxy.connect();
    talk_websocket(&mut client.reader);
    assert_eq!(backend.handshakes().len(), 1);
}

// ---------------------------------------------------------------- TLS both sides

/// A client of the proxy's `tls_port` that trusts `pki`'s CA and asks for
/// `localhost`, its handshake done.
fn tls_client(proxy: &Proxy, pki: &Pki) -> Reader<StreamOwned<ClientConnection, TcpStream>> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.der.clone()).unwrap();
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let addr = proxy.handle().tls_addr().expect("tls_port is on");
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(Arc::new(config), name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    Reader::new(StreamOwned::new(conn, tcp))
}

#[test]
fn a_client_over_tls_reaches_a_tls_backend_requests_and_websocket() {
    let trust = Trust::new();
    let backend = echo_on_ip(&trust, "a");
    let ws = websocket_backend(&trust);
    let text = trust.conf(
        &tls_target(&backend, ""),
        &format!(
            "tls_port = 0\ntls_certificates = {}\npool.ws = {}\nroute./chat = ws\n",
            trust.pki.entry,
            tls_target(&ws, "")
        ),
    );
    let proxy = start(&text, |_| {});
    let mut client = tls_client(&proxy, &trust.pki);
    let body = pattern(1 << 20);
    for (method, path, body) in [("GET", "/s", &b""[..]), ("POST", "/s/up", &body[..])] {
        client
            .stream
            .write_all(&request_bytes(method, path, &[], body))
            .unwrap();
        let r = client.read_response(false).unwrap();
        assert_eq!(r.status, 200, "{}", r.head.raw);
        assert_eq!(r.body_str(), echoed("a", method, path, body));
    }
    let seen = backend.seen();
    let protos: Vec<String> = seen
        .iter()
        .map(|s| s.field_or("x-forwarded-proto", "-"))
        .collect();
    assert_eq!(protos, ["https", "https"]);
    assert_eq!(backend.connections(), 1);

    let mut client = tls_client(&proxy, &trust.pki);
    talk_websocket(&mut client);
    assert_eq!(ws.handshakes().len(), 1);
}

// ---------------------------------------------------------------- health checks

#[test]
fn health_checks_of_a_tls_target_go_over_tls() {
    let trust = Trust::new();
    let probes = Arc::new(AtomicUsize::new(0));
    let counted = probes.clone();
    let healthy = TlsBackend::start(
        "healthy",
        trust.serving(&["127.0.0.1"]),
        move |seen, out| {
            if seen.path() == "/health" {
                counted.fetch_add(1, Ordering::SeqCst);
                respond(out, 200, &[], b"ok");
            } else {
                respond(
                    out,
                    200,
                    &[("X-Backend", "healthy")],
                    seen.path().as_bytes(),
                );
            }
            Action::KeepAlive
        },
    );
    // Its certificate is of a CA the proxy does not trust: every probe
    // fails its handshake.
    let stranger = Ca::new();
    let refused = TlsBackend::echo(
        "refused",
        TlsSetup::serving(&stranger.leaf(&["127.0.0.1"]), &stranger),
    );
    let targets = format!("{}, {}", tls_target(&refused, ""), tls_target(&healthy, ""));
    // A probe must end within the interval: generous, for a debug build
    // on a busy machine.
    let more = "health_check_path = /health\nhealth_check_interval = 300ms\n\
                health_check_fall = 2\nhealth_check_rise = 1\n";
    let proxy = start(&trust.conf(&targets, more), |_| {});
    let up = |addr| target_metric(&proxy, "inverso_upstream_up", addr);
    assert!(
        wait_until(WAIT_LIMIT, || up(refused.addr) == Some(0)),
        "the target failing its handshakes is still up: {:?}",
        up(refused.addr)
    );
    assert!(wait_until(WAIT_LIMIT, || probes.load(Ordering::SeqCst) >= 3));
    assert_eq!(up(healthy.addr), Some(1));
    assert!(refused.failed_handshakes() >= 2);
    // The probes came as requests inside the TLS session.
    let seen = healthy.seen();
    assert!(seen.iter().all(|s| s.path() == "/health"), "{seen:#?}");
    assert!(healthy.handshakes().len() >= 3);

    let mut client = proxy.connect();
    for i in 0..6 {
        let path = format!("/{i}");
        let r = client.get(&path);
        assert_eq!(r.status, 200, "{}", r.head.raw);
        assert_eq!(r.header("x-backend"), Some("healthy"));
    }
    // Out of rotation: no request was even tried there.
    assert_eq!(
        target_metric(&proxy, "inverso_upstream_requests_total", refused.addr),
        Some(0)
    );
    assert_eq!(refused.requests(), 0);
}

#[test]
fn checks_by_connecting_to_a_tls_target_complete_the_handshake() {
    let trust = Trust::new();
    let healthy = echo_on_ip(&trust, "healthy");
    let stranger = Ca::new();
    let refused = TlsBackend::echo(
        "refused",
        TlsSetup::serving(&stranger.leaf(&["127.0.0.1"]), &stranger),
    );
    let targets = format!("{}, {}", tls_target(&refused, ""), tls_target(&healthy, ""));
    let more = "health_check_tcp = true\nhealth_check_interval = 300ms\n\
                health_check_fall = 2\nhealth_check_rise = 1\n";
    let proxy = start(&trust.conf(&targets, more), |_| {});
    let up = |addr| target_metric(&proxy, "inverso_upstream_up", addr);
    assert!(
        wait_until(WAIT_LIMIT, || up(refused.addr) == Some(0)),
        "a target whose certificate is refused passes a check by connecting: {:?}",
        up(refused.addr)
    );
    // The probe is the handshake: done with the healthy one, no request.
    assert!(wait_until(WAIT_LIMIT, || healthy.handshakes().len() >= 3));
    assert_eq!(up(healthy.addr), Some(1));
    assert_eq!(healthy.requests(), 0);
    assert!(refused.failed_handshakes() >= 2);
    let r = proxy.connect().get("/after");
    assert_eq!(r.header("x-backend"), Some("healthy"), "{}", r.head.raw);
    assert_eq!(
        target_metric(&proxy, "inverso_upstream_requests_total", refused.addr),
        Some(0)
    );
}

// ---------------------------------------------------------------- cache and pools

#[test]
fn a_cacheable_answer_of_a_tls_backend_is_a_miss_then_a_hit() {
    let trust = Trust::new();
    let numbered = AtomicUsize::new(0);
    let origin = TlsBackend::start("origin", trust.serving(&["127.0.0.1"]), move |seen, out| {
        let n = numbered.fetch_add(1, Ordering::SeqCst) + 1;
        let body = format!("{} #{n}", seen.path());
        respond(
            out,
            200,
            &[("Cache-Control", "max-age=60")],
            body.as_bytes(),
        );
        Action::KeepAlive
    });
    let proxy = start(&trust.conf(&tls_target(&origin, ""), ""), |c| {
        c.cache_size = 1 << 20;
    });
    let first = proxy.exchange(|c| c.get("/page"));
    expect(&first, 200, "MISS", "/page #1");
    let second = proxy.exchange(|c| c.get("/page"));
    expect(&second, 200, "HIT", "/page #1");
    assert_eq!(origin.requests(), 1);
}

#[test]
fn a_pool_s_target_may_be_tls_beside_plain_ones() {
    let trust = Trust::new();
    let plain = Backend::echo("plain");
    let secure = echo_on_ip(&trust, "secure");
    let text = format!(
        "targets = {}\npool.api = {}\nroute./api/ = api\nbackend_tls_ca = {}\n",
        plain.addr,
        tls_target(&secure, ""),
        trust.ca_file
    );
    let proxy = start(&text, |_| {});
    let mut client = proxy.connect();
    let r = client.get("/api/users");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("secure", "GET", "/api/users", b""));
    let r = client.get("/site");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("plain", "GET", "/site", b""));
    assert_eq!((plain.requests(), secure.requests()), (1, 1));
}

/// A pool may trust another authority for its backends than the top
/// level does (`pool.<name>.backend_tls_ca`): each pool's targets are
/// checked against its own, and a certificate of the other's is refused.
#[test]
fn a_pool_trusts_the_authority_it_names_for_its_backends() {
    let top = Trust::new();
    let api = Trust::new();
    let site = echo_on_ip(&top, "site");
    let service = echo_on_ip(&api, "service");
    let stranger = echo_on_ip(&top, "stranger");
    let text = format!(
        "targets = {}
pool.api = {}
pool.api.backend_tls_ca = {}
route./api/ = api
         pool.other = {}
pool.other.backend_tls_ca = {}
route./other/ = other
         backend_tls_ca = {}
",
        tls_target(&site, ""),
        tls_target(&service, ""),
        api.ca_file,
        tls_target(&stranger, ""),
        api.ca_file,
        top.ca_file
    );
    let proxy = start(&text, |_| {});
    let mut client = proxy.connect();
    let r = client.get("/site");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("site", "GET", "/site", b""));
    let r = client.get("/api/users");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("service", "GET", "/api/users", b""));
    // The top level's authority is not the pool's.
    let r = client.get("/other/x");
    assert_eq!(r.status, 502, "{}", r.head.raw);
    assert_eq!(stranger.requests(), 0);
}

// ---------------------------------------------------------------- configuration

#[test]
fn the_configuration_refuses_backend_tls_settings_that_cannot_work() {
    let trust = Trust::new();
    let dir = trust.dir();
    let clients = Ca::new();
    let client = clients.client_leaf("proxy");
    let client_entry = client.write_apart(&clients, dir, "client");
    let base = "port = 8080\n";
    // The working setting, so that each refusal below is for its one change.
    let good = format!(
        "{base}targets = 127.0.0.1:8443 tls, 127.0.0.1:8444 tls tls_name=backend.test weight=2\n\
         balance = weighted_round_robin\n\
         pool.api = 127.0.0.1:9443 tls tls_name=api.test\n\
         backend_tls_verify = on\n\
         backend_tls_ca = {}\n\
         backend_tls_certificate = {client_entry}\n",
        trust.ca_file
    );
    let mut loader = Loader::new();
    loader.file("proxy.conf", &good).unwrap();
    if let Err(e) = loader.build() {
        panic!("{e}\nin:\n{good}");
    }

    let key_only = dir.join("key-only.pem");
    std::fs::write(&key_only, &client.key_pem).unwrap();
    let missing = dir.join("missing.pem");
    let cert_only = dir.join("client-cert-only.pem");
    std::fs::write(&cert_only, &client.cert_pem).unwrap();
    let other_key = dir.join("other.key");
    std::fs::write(&other_key, clients.client_leaf("proxy").key_pem).unwrap();
    let cases: Vec<(String, &str, Vec<String>)> = vec![
        (
            "targets = 127.0.0.1:8443 tls_name=backend.test\n".into(),
            "targets",
            vec!["tls_name".into()],
        ),
        (
            "targets = 127.0.0.1:1\npool.api = 127.0.0.1:8443 tls_name=api.test\n".into(),
            "pool.api",
            vec!["tls_name".into()],
        ),
        (
            "targets = unix:/run/app.sock tls\n".into(),
            "targets",
            vec!["unix:/run/app.sock".into(), "tls".into()],
        ),
        (
            "targets = https://127.0.0.1:8443\n".into(),
            "targets",
            vec!["127.0.0.1:8443 tls".into()],
        ),
        (
            format!(
                "targets = 127.0.0.1:8443 tls\nbackend_tls_ca = {}\n",
                missing.display()
            ),
            "backend_tls_ca",
            vec![missing.display().to_string()],
        ),
        (
            format!(
                "targets = 127.0.0.1:8443 tls\nbackend_tls_ca = {}\n",
                key_only.display()
            ),
            "backend_tls_ca",
            vec![key_only.display().to_string()],
        ),
        (
            format!(
                "targets = 127.0.0.1:8443 tls\nbackend_tls_certificate = {} key={}\n",
                cert_only.display(),
                other_key.display()
            ),
            "backend_tls_certificate",
            vec![other_key.display().to_string()],
        ),
        (
            format!(
                "targets = 127.0.0.1:8443 tls\nbackend_tls_certificate = {client_entry}, {client_entry}\n"
            ),
            "backend_tls_certificate",
            vec![],
        ),
        (
            // Read even when no target has `tls` yet.
            format!(
                "targets = 127.0.0.1:8443\nbackend_tls_ca = {}\n",
                missing.display()
            ),
            "backend_tls_ca",
            vec![missing.display().to_string()],
        ),
        (
            "targets = 127.0.0.1:8443 tls\nbackend_tls_verify = maybe\n".into(),
            "backend_tls_verify",
            vec!["maybe".into()],
        ),
    ];
    assert_refused(base, &cases);
}

#[test]
fn inverso_check_lists_a_tls_target_with_the_name_it_is_checked_for() {
    let trust = Trust::new();
    let text = format!(
        "port = 8080\ntargets = 127.0.0.1:8443 tls tls_name=backend.test, 127.0.0.1:8444 tls\n\
         backend_tls_ca = {}\n",
        trust.ca_file
    );
    let (code, stdout, stderr) = inverso_check(&text, "error");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("tls for backend.test"), "{stdout}");
    assert!(stdout.contains("tls for 127.0.0.1"), "{stdout}");
}

#[test]
fn inverso_check_refuses_an_https_target_with_exit_2_and_its_line() {
    let (code, _, stderr) =
        inverso_check("port = 8080\n\ntargets = https://127.0.0.1:8443\n", "error");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("proxy.conf:3: targets: "), "{stderr}");
    assert!(stderr.contains("127.0.0.1:8443 tls"), "{stderr}");
}

#[test]
fn a_client_s_half_close_reaches_a_streaming_tls_backend_as_close_notify() {
    // The client ends its side while the backend still streams to it:
    // the proxy passes the end on to the backend as TLS ends a stream,
    // close_notify then the TCP half-close, not as a cut.
    const ROUNDS: usize = 20;
    let trust = Trust::new();
    let backend = TlsBackend::start_raw("stream", trust.serving(&["127.0.0.1"]), |_, stream| {
        let mut out = stream.clone();
        if !matches!(Reader::new(stream.clone()).read_head(), Ok(Some(_))) {
            return;
        }
        let mut bytes =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-test\r\nConnection: Upgrade\r\n\r\n"
                .to_vec();
        bytes.extend_from_slice(&pattern(4 << 20));
        let _ = out.write_all(&bytes);
        let _ = out.flush();
        let mut rest = Vec::new();
        let _ = out.read_to_end(&mut rest);
    });
    let proxy = start(&trust.conf(&tls_target(&backend, ""), ""), |_| {});
    for round in 0..ROUNDS {
        let mut client = proxy.connect();
        client
            .send(b"GET /t HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x-test\r\n\r\n");
        assert_eq!(client.try_response(true).unwrap().status, 101);
        let mut stream = client.reader.stream.try_clone().unwrap();
        let reading = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stream.read_to_end(&mut all);
        });
        std::thread::sleep(Duration::from_millis(5 + round as u64 % 7));
        client.finish_sending();
        reading.join().unwrap();
        assert!(wait_until(WAIT_LIMIT, || backend.closed() == round + 1));
    }
    assert_eq!(
        backend.close_notifies(),
        ROUNDS,
        "half-closes sent as a cut"
    );
}
