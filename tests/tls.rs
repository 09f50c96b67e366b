//! HTTPS termination on `tls_port` over real sockets: a test CA and its
//! leaf certificates (made with rcgen in `support::pki`), written as PEM
//! files and named by `tls_certificates` in a proxy.conf read by the
//! loader, and a rustls client (`support::tls_client`) that checks what
//! the proxy presents. Requests, bodies both ways, SNI, ALPN, the
//! protocol versions, plain HTTP and garbage on the TLS port, a stalled
//! handshake, files, the redirect to HTTPS, the cache, a reload with a
//! renewed certificate, the configuration's errors, a WebSocket tunnel,
//! and shutdown. Clients' own certificates (mutual TLS) are
//! client_certs.rs's.

mod support;

use inverso::config::{Config, Loader};
use inverso::http::tls::TlsStream;
use rustls::pki_types::ServerName;
use rustls::SupportedProtocolVersion;
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use support::pki::{provider, Ca, Leaf, Pki};
use support::tls_client::{client_settings, TlsClient, Verifier};
use support::*;

// ---------------------------------------------------------------- certificates

impl Pki {
    /// The client settings that trust this CA.
    fn client(&self) -> Arc<ClientConfig> {
        client_config(&self.ca, rustls::DEFAULT_VERSIONS, &[], None)
    }
}

// ---------------------------------------------------------------- the client

/// A client that trusts `ca`, speaks `versions`, offers `alpn`, and, with
/// `certified_for`, takes a certificate of `ca` valid for that name
/// whatever name it asked for (to see which certificate a name nobody
/// serves gets).
fn client_config(
    ca: &Ca,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
    certified_for: Option<&str>,
) -> Arc<ClientConfig> {
    let mut config = client_settings(ca, versions, None);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    if let Some(name) = certified_for {
        config
            .dangerous()
            .set_certificate_verifier(Verifier::of(ca, Some(name)));
    }
    Arc::new(config)
}

/// Reads a raw socket until the peer ends the stream (or resets it);
/// `None` when the read timeout passed first (not closed).
fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    // Bounded: each read waits at most the socket's read timeout, and a
    // closing proxy sends an alert at most before its end.
    for _ in 0..1000 {
        match stream.read(&mut chunk) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                return Some(got)
            }
            Err(_) => return None,
        }
    }
    None
}

fn raw_connect(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp
}

// ---------------------------------------------------------------- the proxy

/// proxy.conf with `targets` and HTTPS on any free port serving `entries`
/// (a `tls_certificates` value), then `more`.
fn tls_conf(targets: &str, entries: &str, more: &str) -> String {
    format!("targets = {targets}\ntls_port = 0\ntls_certificates = {entries}\n{more}")
}

fn tls_addr(proxy: &Proxy) -> SocketAddr {
    proxy.handle().tls_addr().expect("tls_port is on")
}

/// Starts a proxy on `text` (read by the loader) with the admin listener
/// on, then `tweak` on what the harness set.
fn start_tls(text: &str, tweak: impl FnOnce(&mut Config)) -> Proxy {
    let from_text = from_file_with_admin(text);
    start_proxy(&[], move |c| {
        from_text(c);
        tweak(c);
    })
}

/// The admin's metrics say when each certificate served stops being
/// valid, for an alert before clients start refusing it.
#[test]
fn the_metrics_say_when_each_certificate_served_expires() {
    let pki = Pki::new();
    let backend = Backend::echo("a");
    let until = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    let since = SystemTime::now() - Duration::from_secs(3600);
    let expiring = pki.ca.leaf_valid(&["expiring.test"], since, until);
    let path = expiring.write(&pki.ca, pki.dir.path(), "expiring.pem");
    let entries = format!("{}, {}", pki.entry, path.display());
    let proxy = start_tls(&tls_conf(&backend.addr.to_string(), &entries, ""), |_| {});
    let metric = |file: &str| {
        proxy.metric(&format!(
            "inverso_tls_certificate_expiry_seconds{{file=\"{file}\"}}"
        ))
    };
    assert_eq!(metric(&path.display().to_string()), Some(2_000_000_000));
    // rcgen's certificates otherwise run to 4096.
    let first = pki.entry.split_whitespace().next().unwrap();
    assert!(
        metric(first).is_some_and(|secs| secs > 60_000_000_000),
        "{:?}",
        metric(first)
    );
}

const OK: &str = "inverso_tls_handshakes_total{result=\"ok\"}";
const FAILED: &str = "inverso_tls_handshakes_total{result=\"failed\"}";

/// Waits until the admin's `metric` reads `value`; asserts it does.
#[track_caller]
fn assert_metric_becomes(proxy: &Proxy, metric: &str, value: u64) {
    let mut last = None;
    let reached = wait_until(WAIT_LIMIT, || {
        last = proxy.metric(metric);
        last == Some(value)
    });
    assert!(reached, "{metric} is {last:?}, not {value}");
}

/// The body [`Backend::echo`] answers `method path` with `body`.
fn echoed(name: &str, method: &str, path: &str, body: &[u8]) -> String {
    format!(
        "{name} {method} {path} len={} fnv={:016x}",
        body.len(),
        fnv(body)
    )
}

// ---------------------------------------------------------------- requests

#[test]
fn requests_over_tls_reach_the_backend_as_https_on_one_kept_connection() {
    let pki = Pki::new();
    let a = Backend::echo("a");
    let proxy = start_tls(&tls_conf(&a.addr.to_string(), &pki.entry, ""), |_| {});
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    // The chain as written: the leaf, then the CA's.
    let chain = client.conn().peer_certificates().unwrap().to_vec();
    assert_eq!(chain, [pki.localhost.der.clone(), pki.ca.der.clone()]);

    // A client's own X-Forwarded-Proto does not count: the connection is TLS.
    let r = client.request("GET", "/one?x=1", &[("X-Forwarded-Proto", "http")], b"");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("a", "GET", "/one?x=1", b""));
    assert!(!r.head.has_token("connection", "close"), "{}", r.head.raw);
    for path in ["/two", "/three"] {
        let r = client.get(path);
        assert_eq!(r.body_str(), echoed("a", "GET", path, b""));
    }
    let seen = a.seen();
    let paths: Vec<&str> = seen.iter().map(Seen::path).collect();
    assert_eq!(paths, ["/one?x=1", "/two", "/three"]);
    for s in &seen {
        assert_eq!(
            s.field_or("x-forwarded-proto", "-"),
            "https",
            "{}",
            s.head.raw
        );
    }
    // Three requests, one handshake: the connection was kept.
    assert_metric_becomes(&proxy, OK, 1);
    assert_eq!(proxy.metric(FAILED), Some(0));

    // Pipelined: three requests in one write, answered in order.
    let mut pipelined = Vec::new();
    for path in ["/p1", "/p2", "/p3"] {
        pipelined.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    }
    client.send(&pipelined);
    for path in ["/p1", "/p2", "/p3"] {
        let r = client.response();
        assert_eq!(r.body_str(), echoed("a", "GET", path, b""));
    }
    assert_eq!(proxy.metric(OK), Some(1));
}

#[test]
fn large_and_chunked_bodies_cross_tls_intact_both_ways() {
    const LARGE_RESPONSE: usize = 4 << 20;
    let pki = Pki::new();
    let backend = Backend::start("bodies", |seen, out| {
        match seen.path() {
            "/large" => respond(out, 200, &[], &pattern(LARGE_RESPONSE)),
            "/chunked" => {
                let mut bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                bytes.extend_from_slice(&chunked(&pattern(300_000), 70_001, ""));
                let _ = out.write_all(&bytes);
            }
            _ => {
                let body = describe("bodies", seen);
                respond(out, 200, &[], body.as_bytes());
            }
        }
        Action::KeepAlive
    });
    let proxy = start_tls(&tls_conf(&backend.addr.to_string(), &pki.entry, ""), |_| {});
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");

    let upload = pattern(10 << 20);
    let r = client.request("POST", "/upload", &[], &upload);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("bodies", "POST", "/upload", &upload));

    // A chunked request body, in chunks of odd sizes, on the same connection.
    let body = pattern(200_000);
    let mut request =
        b"PUT /chunked-upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(&chunked(&body, 33_333, ";ext=1"));
    client.send(&request);
    let r = client.response();
    assert_eq!(
        r.body_str(),
        echoed("bodies", "PUT", "/chunked-upload", &body)
    );

    let r = client.get("/large");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), LARGE_RESPONSE);
    assert_eq!(
        fnv(&r.body),
        fnv(&pattern(LARGE_RESPONSE)),
        "large body differs"
    );

    let r = client.get("/chunked");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 300_000);
    assert_eq!(fnv(&r.body), fnv(&pattern(300_000)), "chunked body differs");
    let received: Vec<usize> = backend.seen().iter().map(|s| s.body.len()).collect();
    assert_eq!(received, [10 << 20, 200_000, 0, 0]);
}

// ---------------------------------------------------------------- handshakes

/// Certificates for `a.test` and `*.b.test`, in that order, and the
/// `tls_certificates` value that names them.
fn for_a_and_b(pki: &Pki) -> (Leaf, Leaf, String) {
    let dir = pki.dir.path();
    let a = pki.ca.leaf(&["a.test"]);
    let b = pki.ca.leaf(&["*.b.test"]);
    let entries = format!(
        "{}, {}",
        a.write(&pki.ca, dir, "a.pem").display(),
        b.write(&pki.ca, dir, "b.pem").display()
    );
    (a, b, entries)
}

#[test]
fn sni_picks_the_first_certificate_valid_for_the_name_else_the_first() {
    let pki = Pki::new();
    let (a, b, entries) = for_a_and_b(&pki);
    let backend = Backend::echo("app");
    let proxy = start_tls(&tls_conf(&backend.addr.to_string(), &entries, ""), |_| {});
    let addr = tls_addr(&proxy);
    let verifying = pki.client();

    let mut wildcard = TlsClient::connect(addr, &verifying, "x.b.test");
    assert!(
        wildcard.server_cert() == b.der,
        "x.b.test did not get *.b.test"
    );
    assert_eq!(wildcard.get("/w").status, 200);
    let named = TlsClient::connect(addr, &verifying, "a.test");
    assert!(named.server_cert() == a.der, "a.test did not get a.test");
    // A wildcard covers one label: a.b.test's sub-name is nobody's.
    for unknown in ["unknown.test", "y.x.b.test", "b.test"] {
        let config = client_config(&pki.ca, rustls::DEFAULT_VERSIONS, &[], Some("a.test"));
        let default = TlsClient::connect(addr, &config, unknown);
        assert!(
            default.server_cert() == a.der,
            "{unknown} did not get the first"
        );
    }
    // No SNI at all (a client asking by address): the first.
    let config = client_config(&pki.ca, rustls::DEFAULT_VERSIONS, &[], Some("a.test"));
    let mut by_address = TlsClient::connect(addr, &config, "127.0.0.1");
    assert!(
        by_address.server_cert() == a.der,
        "no SNI did not get the first"
    );
    assert_eq!(by_address.get("/ip").status, 200);
    // A client that trusts the name it asked for alone refuses the default.
    assert!(TlsClient::try_connect(addr, &verifying, "unknown.test").is_err());
}

#[test]
fn tls_strict_sni_refuses_a_client_naming_no_host_of_a_certificate() {
    let pki = Pki::new();
    let (a, b, entries) = for_a_and_b(&pki);
    let backend = Backend::echo("app");
    let conf = tls_conf(
        &backend.addr.to_string(),
        &entries,
        "tls_strict_sni = true
",
    );
    let proxy = start_tls(&conf, |_| {});
    let addr = tls_addr(&proxy);
    let verifying = pki.client();

    let mut named = TlsClient::connect(addr, &verifying, "a.test");
    assert!(named.server_cert() == a.der, "a.test did not get a.test");
    assert_eq!(named.get("/a").status, 200);
    let wildcard = TlsClient::connect(addr, &verifying, "x.b.test");
    assert!(
        wildcard.server_cert() == b.der,
        "x.b.test did not get *.b.test"
    );
    // A client that would accept the first certificate is refused all
    // the same: it is not shown the first one's names.
    let trusting = client_config(&pki.ca, rustls::DEFAULT_VERSIONS, &[], Some("a.test"));
    for unknown in ["unknown.test", "b.test"] {
        assert!(
            TlsClient::try_connect(addr, &trusting, unknown).is_err(),
            "{unknown} was given a certificate"
        );
    }
    // No SNI at all: a scan by address.
    assert!(TlsClient::try_connect(addr, &trusting, "127.0.0.1").is_err());
    assert_metric_becomes(&proxy, FAILED, 3);

    // With one certificate, its own names are checked too.
    let conf = tls_conf(
        &backend.addr.to_string(),
        &pki.entry,
        "tls_strict_sni = true
",
    );
    let proxy = start_tls(&conf, |_| {});
    let returning = pki.client();
    let mut client = TlsClient::connect(tls_addr(&proxy), &returning, "localhost");
    assert_eq!(client.get("/one").status, 200);
    let trusting = client_config(&pki.ca, rustls::DEFAULT_VERSIONS, &[], Some("localhost"));
    assert!(TlsClient::try_connect(tls_addr(&proxy), &trusting, "other.test").is_err());
    assert!(TlsClient::try_connect(tls_addr(&proxy), &trusting, "127.0.0.1").is_err());

    // A certificate for an address alone is given to no client: with no
    // other, the configuration is refused; beside one, it starts.
    let by_address = pki.ca.leaf(&["127.0.0.1"]);
    let by_address = by_address
        .write(&pki.ca, pki.dir.path(), "ip.pem")
        .display()
        .to_string();
    let strict = |entries: &str| {
        let text = tls_conf("127.0.0.1:1", entries, "tls_strict_sni = true\n");
        let mut loader = inverso::config::Loader::new();
        let loaded = loader.file("proxy.conf", &text);
        loaded.and_then(|l| l.build()).map(|_| ())
    };
    let e = strict(&by_address).unwrap_err().to_string();
    assert!(
        e.contains("tls_strict_sni: no certificate of tls_certificates names a host"),
        "{e}"
    );
    assert!(strict(&format!("{}, {by_address}", pki.entry)).is_ok());

    // A reload that turns it off gives such a client the certificate at
    // its next handshake, and resumes the sessions made before it: the
    // certificates are the same.
    let text = tls_conf(&backend.addr.to_string(), &pki.entry, "");
    let next = proxy.config_for(&[], from_file_with_admin(&text));
    proxy.handle().control().reload(next).unwrap();
    let mut by_address = TlsClient::connect(tls_addr(&proxy), &trusting, "127.0.0.1");
    assert_eq!(by_address.get("/ip").status, 200);
    let mut resumed = TlsClient::connect(tls_addr(&proxy), &returning, "localhost");
    assert_eq!(
        resumed.conn().handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    assert_eq!(resumed.get("/resumed").status, 200);
}

#[test]
fn a_resumed_session_is_logged_and_counted_as_one() {
    let pki = Pki::new();
    let backend = Backend::echo("a");
    let more = "log_format = $ssl_session_reused $request_uri\n";
    let mut proxy = start_tls(
        &tls_conf(&backend.addr.to_string(), &pki.entry, more),
        |_| {},
    );
    let returning = pki.client();
    let mut first = TlsClient::connect(tls_addr(&proxy), &returning, "localhost");
    assert_eq!(first.get("/new").status, 200);
    // Counted at the handshake, before the request was served: a whole
    // handshake is no resumption.
    assert_eq!(proxy.metric("inverso_tls_sessions_resumed_total"), Some(0));
    drop(first);
    let mut again = TlsClient::connect(tls_addr(&proxy), &returning, "localhost");
    assert_eq!(
        again.conn().handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    assert_eq!(again.get("/again").status, 200);
    assert_metric_becomes(&proxy, OK, 2);
    assert_metric_becomes(&proxy, "inverso_tls_sessions_resumed_total", 1);
    drop(again);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(proxy.log_lines(), [". /new", "r /again"]);
}

/// The TLS records a server sent, each as its type and its first
/// content byte (a handshake message's type, while not yet encrypted).
#[derive(Default)]
struct Records {
    bytes: Vec<u8>,
}

impl Records {
    fn kinds(&self) -> Vec<(u8, u8)> {
        let mut kinds = Vec::new();
        let mut rest = &self.bytes[..];
        while rest.len() >= 6 {
            let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            kinds.push((rest[0], rest[5]));
            rest = &rest[(5 + len).min(rest.len())..];
        }
        kinds
    }
}

/// Whether a TLS 1.2 handshake with the proxy at `addr` had it send a
/// session ticket (RFC 5077): a `NewSessionTicket` (handshake type 4),
/// the one handshake message it sends in the clear after the client's
/// `Finished`, right before its `ChangeCipherSpec`.
fn tls12_ticket_sent(addr: SocketAddr, pki: &Pki) -> bool {
    let config = client_config(&pki.ca, &[&rustls::version::TLS12], &[], None);
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(config, name).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut records = Records::default();
    let mut buf = [0u8; 16 * 1024];
    while conn.is_handshaking() {
        while conn.wants_write() {
            conn.write_tls(&mut tcp).unwrap();
        }
        if conn.wants_read() {
            let n = tcp.read(&mut buf).unwrap();
            assert!(n > 0, "the proxy closed during the handshake");
            records.bytes.extend_from_slice(&buf[..n]);
            conn.read_tls(&mut &buf[..n]).unwrap();
            conn.process_new_packets().unwrap();
        }
    }
    let kinds = records.kinds();
    let cipher_spec = kinds.iter().position(|&(kind, _)| kind == 20).unwrap();
    kinds[..cipher_spec].contains(&(22, 4))
}

#[test]
fn tls_session_tickets_false_issues_none_and_sessions_still_resume_from_memory() {
    let pki = Pki::new();
    let backend = Backend::echo("a");
    for (tickets, sent) in [("true", true), ("false", false)] {
        let more = format!("tls_session_tickets = {tickets}\n");
        let proxy = start_tls(
            &tls_conf(&backend.addr.to_string(), &pki.entry, &more),
            |_| {},
        );
        assert_eq!(tls12_ticket_sent(tls_addr(&proxy), &pki), sent, "{tickets}");
        // TLS 1.3 resumes either way: from the ticket, or by the session
        // kept in memory that the ticket names.
        let returning = client_config(&pki.ca, &[&rustls::version::TLS13], &[], None);
        let mut first = TlsClient::connect(tls_addr(&proxy), &returning, "localhost");
        assert_eq!(first.get("/").status, 200);
        let again = TlsClient::connect(tls_addr(&proxy), &returning, "localhost");
        assert_eq!(
            again.conn().handshake_kind(),
            Some(rustls::HandshakeKind::Resumed),
            "{tickets}"
        );
    }
}

#[test]
fn the_alpn_protocol_agreed_is_logged_and_http2_is_empty() {
    let pki = Pki::new();
    let backend = Backend::echo("a");
    let more = "log_format = $request_uri [$ssl_alpn_protocol] [$http2]\n";
    let mut proxy = start_tls(
        &tls_conf(&backend.addr.to_string(), &pki.entry, more),
        |_| {},
    );
    let tls13 = [&rustls::version::TLS13];
    for (path, alpn) in [
        ("/h2-first", &[&b"h2"[..], b"http/1.1"][..]),
        // `curl --http1.0`'s offer: agreed, and logged as such.
        ("/h1.0", &[&b"http/1.0"[..]][..]),
        ("/none", &[][..]),
    ] {
        let config = client_config(&pki.ca, &tls13, alpn, None);
        let mut client = TlsClient::connect(tls_addr(&proxy), &config, "localhost");
        assert_eq!(client.get(path).status, 200);
    }
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(
        proxy.log_lines(),
        [
            "/h2-first [http/1.1] []",
            "/h1.0 [http/1.0] []",
            "/none [-] []"
        ]
    );
}

#[test]
fn the_key_exchange_group_is_logged_as_openssl_names_it() {
    let pki = Pki::new();
    let backend = Backend::echo("a");
    let more = "log_format = $request_uri $ssl_protocol $ssl_curve\n";
    let mut proxy = start_tls(
        &tls_conf(&backend.addr.to_string(), &pki.entry, more),
        |_| {},
    );
    // rustls offers X25519 first; a client that offers P-256 alone gets
    // it, which OpenSSL (and so nginx) calls `prime256v1`.
    let p256_only = {
        let mut only = rustls::crypto::ring::default_provider();
        only.kx_groups = vec![rustls::crypto::ring::kx_group::SECP256R1];
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca.der.clone()).unwrap();
        rustls::ClientConfig::builder_with_provider(Arc::new(only))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
    };
    let configs = [
        (
            "/default",
            client_config(&pki.ca, &[&rustls::version::TLS13], &[], None),
        ),
        ("/p256", Arc::new(p256_only)),
    ];
    for (path, config) in &configs {
        let mut client = TlsClient::connect(tls_addr(&proxy), config, "localhost");
        assert_eq!(client.get(path).status, 200);
    }
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(
        proxy.log_lines(),
        ["/default TLSv1.3 X25519", "/p256 TLSv1.2 prime256v1"]
    );
}

#[test]
fn tls_1_2_and_1_3_handshakes_both_work() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let proxy = start_tls(&tls_conf(&backend.addr.to_string(), &pki.entry, ""), |_| {});
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let config = client_config(&pki.ca, &[version], &[], None);
        let mut client = TlsClient::connect(tls_addr(&proxy), &config, "localhost");
        assert_eq!(client.conn().protocol_version(), Some(expected));
        let r = client.get("/v");
        assert_eq!(
            r.body_str(),
            echoed("app", "GET", "/v", b""),
            "{expected:?}"
        );
        // A second request over the same session.
        assert_eq!(client.get("/v2").status, 200, "{expected:?}");
    }
    assert_metric_becomes(&proxy, OK, 2);
}

/// A client of `pki` that offers only `suites` and `groups` (all of
/// rustls's when empty).
fn offering(
    pki: &Pki,
    suites: &[rustls::SupportedCipherSuite],
    groups: &[&'static dyn rustls::crypto::SupportedKxGroup],
) -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !suites.is_empty() {
        provider.cipher_suites = suites.to_vec();
    }
    if !groups.is_empty() {
        provider.kx_groups = groups.to_vec();
    }
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.der.clone()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[test]
fn tls_ciphers_and_tls_groups_offer_only_what_they_name() {
    use rustls::crypto::ring::{cipher_suite, kx_group};
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let more = "tls_ciphers = DHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
                TLS_AES_256_GCM_SHA384\ntls_groups = P-384\n";
    let text = tls_conf(&backend.addr.to_string(), &pki.entry, more);
    let proxy = start_tls(&text, |_| {});
    let addr = tls_addr(&proxy);
    let agreed = |client: &TlsClient| {
        let conn = client.conn();
        let suite = conn.negotiated_cipher_suite().unwrap().suite();
        let group = conn.negotiated_key_exchange_group().unwrap().name();
        (suite, group)
    };
    // Everything offered: the proxy's one suite and one group are agreed.
    let mut client = TlsClient::connect(addr, &offering(&pki, &[], &[]), "localhost");
    assert_eq!(
        agreed(&client),
        (
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
            rustls::NamedGroup::secp384r1
        )
    );
    assert_eq!(client.get("/").status, 200);
    let tls12 = offering(
        &pki,
        &[cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384],
        &[],
    );
    let client = TlsClient::connect(addr, &tls12, "localhost");
    assert_eq!(
        agreed(&client).0,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    );
    // A client offering only what is not named is refused, each way.
    for refused in [
        offering(&pki, &[cipher_suite::TLS13_AES_128_GCM_SHA256], &[]),
        offering(
            &pki,
            &[cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
            &[],
        ),
        offering(&pki, &[], &[kx_group::X25519, kx_group::SECP256R1]),
    ] {
        assert!(TlsClient::try_connect(addr, &refused, "localhost").is_err());
    }
    assert_metric_becomes(&proxy, FAILED, 3);

    // `check` lists what is offered.
    std::fs::write(pki.dir.path().join("proxy.conf"), &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_inverso"))
        .args(["check", "--config", "proxy.conf"])
        .current_dir(pki.dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(
            "# tls_port offers the cipher suites TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, \
             TLS13_AES_256_GCM_SHA384\n# tls_port offers the key exchange groups secp384r1\n"
        ),
        "{stdout}"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("`DHE-RSA-AES128-GCM-SHA256` is no cipher suite this build offers"),
        "{stderr}"
    );
}

#[test]
fn the_client_s_order_chooses_the_suite_unless_tls_prefer_server_ciphers() {
    use rustls::crypto::ring::cipher_suite::{TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384};
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let client = offering(
        &pki,
        &[TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384],
        &[],
    );
    for (prefer, agreed) in [
        ("false", rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
        ("true", rustls::CipherSuite::TLS13_AES_256_GCM_SHA384),
    ] {
        let more = format!(
            "tls_ciphers = TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256\n\
             tls_prefer_server_ciphers = {prefer}\n"
        );
        let proxy = start_tls(
            &tls_conf(&backend.addr.to_string(), &pki.entry, &more),
            |_| {},
        );
        let connected = TlsClient::connect(tls_addr(&proxy), &client, "localhost");
        let suite = connected.conn().negotiated_cipher_suite().unwrap().suite();
        assert_eq!(suite, agreed, "tls_prefer_server_ciphers = {prefer}");
    }
}

#[test]
fn tls_protocols_may_leave_tls_1_2_out() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let conf = tls_conf(
        &backend.addr.to_string(),
        &pki.entry,
        "tls_protocols = tlsv1.3\n",
    );
    let proxy = start_tls(&conf, |_| {});
    let tls12 = client_config(&pki.ca, &[&rustls::version::TLS12], &[], None);
    assert!(TlsClient::try_connect(tls_addr(&proxy), &tls12, "localhost").is_err());
    assert_metric_becomes(&proxy, FAILED, 1);
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    assert_eq!(
        client.conn().protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(client.get("/v").status, 200);
    // TLS 1.2 alone, as nginx's `ssl_protocols TLSv1.2` may be written.
    let conf = tls_conf(
        &backend.addr.to_string(),
        &pki.entry,
        "tls_protocols = TLSv1.2\n",
    );
    let proxy = start_tls(&conf, |_| {});
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    assert_eq!(
        client.conn().protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(client.get("/v").status, 200);
}

#[test]
fn tls_protocols_offers_nothing_older_and_needs_tls_port() {
    for (more, says) in [
        (
            "tls_port = 8443\ntls_protocols = TLSv1.1, TLSv1.2\n",
            "TLSv1.1 is not offered",
        ),
        (
            "tls_port = 8443\ntls_protocols = SSLv3\n",
            "SSLv3 is not offered",
        ),
        (
            "tls_port = 8443\ntls_protocols = TLSv1.4\n",
            "expected TLSv1.2 or TLSv1.3",
        ),
        ("tls_port = 8443\ntls_protocols = ,\n", "names no version"),
        ("tls_protocols = TLSv1.3\n", "is set, but tls_port is not"),
        ("tls_strict_sni = true\n", "is set, but tls_port is not"),
    ] {
        let text = format!("targets = 127.0.0.1:1\n{more}");
        let mut loader = inverso::config::Loader::new();
        let e = match loader.file("proxy.conf", &text) {
            Err(e) => e.to_string(),
            Ok(loader) => loader.build().expect_err(more).to_string(),
        };
        let key = more.lines().last().and_then(|l| l.split(' ').next());
        assert!(
            e.contains(&format!("{}: ", key.unwrap())) && e.contains(says),
            "{more}: {e}"
        );
    }
}

#[test]
fn alpn_agrees_on_http_1_1_and_refuses_an_h2_only_client() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let proxy = start_tls(&tls_conf(&backend.addr.to_string(), &pki.entry, ""), |_| {});
    let both = client_config(
        &pki.ca,
        rustls::DEFAULT_VERSIONS,
        &[b"h2", b"http/1.1"],
        None,
    );
    let mut client = TlsClient::connect(tls_addr(&proxy), &both, "localhost");
    assert_eq!(client.conn().alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(client.get("/alpn").status, 200);
    // Offering nothing: no ALPN, HTTP/1.1 all the same.
    let mut none = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    assert_eq!(none.conn().alpn_protocol(), None);
    assert_eq!(none.get("/none").status, 200);
    // h2 alone: nothing in common, refused at the handshake.
    let h2 = client_config(&pki.ca, rustls::DEFAULT_VERSIONS, &[b"h2"], None);
    let refused = TlsClient::try_connect(tls_addr(&proxy), &h2, "localhost").err();
    assert!(refused.is_some(), "an h2-only client was accepted");
    assert_metric_becomes(&proxy, FAILED, 1);
    assert_eq!(proxy.metric(OK), Some(2));
    assert_eq!(backend.requests(), 2);
}

#[test]
fn plain_http_to_the_tls_port_gets_400_and_the_port_goes_on_serving() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let mut proxy = start_tls(&tls_conf(&backend.addr.to_string(), &pki.entry, ""), |_| {});
    let mut plain = Client::connect(tls_addr(&proxy));
    plain.send(b"GET /plain HTTP/1.1\r\nHost: test.example\r\n\r\n");
    let r = plain.response();
    assert_eq!(r.status, 400, "{}", r.head.raw);
    assert!(
        r.body_str()
            .contains("The plain HTTP request was sent to the HTTPS port"),
        "{}",
        r.body_str()
    );
    assert!(plain.is_closed());
    assert_eq!(backend.requests(), 0);
    assert_metric_becomes(&proxy, FAILED, 1);

    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    assert_eq!(client.get("/after").status, 200);
    assert_eq!(backend.requests(), 1);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"GET /plain HTTP/1.1\" 400 ")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"GET /after HTTP/1.1\" 200 ")),
        "{lines:#?}"
    );
}

/// A proxy in front of `backend` with `client_header_timeout = 1s`, and
/// a connection_timeout so long that nothing else would close a stalled
/// client before the test's own read timeout: only the head's can.
fn with_a_second_for_heads(pki: &Pki, backend: &Backend) -> Proxy {
    let more = "client_header_timeout = 1s\n";
    let text = tls_conf(&backend.addr.to_string(), &pki.entry, more);
    start_tls(&text, |c| c.connection_timeout = IO_TIMEOUT * 6)
}

#[test]
fn a_stalled_handshake_is_closed_after_client_header_timeout_and_garbage_is_dropped() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let proxy = with_a_second_for_heads(&pki, &backend);
    let addr = tls_addr(&proxy);

    // Half of a real ClientHello, then nothing.
    let name = ServerName::try_from("localhost").unwrap();
    let mut hello_writer = ClientConnection::new(pki.client(), name).unwrap();
    let mut hello = Vec::new();
    hello_writer.write_tls(&mut hello).unwrap();
    assert!(hello.len() > 100 && hello[0] == 0x16);
    let mut stalled = raw_connect(addr);
    stalled.write_all(&hello[..hello.len() / 2]).unwrap();

    // Meanwhile others are served.
    let mut client = TlsClient::connect(addr, &pki.client(), "localhost");
    assert_eq!(client.get("/meanwhile").status, 200);

    let answered = read_until_closed(&mut stalled);
    assert_eq!(
        answered,
        Some(Vec::new()),
        "the stalled handshake was not closed"
    );
    assert_metric_becomes(&proxy, FAILED, 1);

    // A handshake record of garbage: a TLS alert at most, then the end.
    let mut garbage = raw_connect(addr);
    let mut bytes = vec![0x16, 0x03, 0x01, 0x00, 0x40];
    bytes.extend_from_slice(&pattern(64));
    garbage.write_all(&bytes).unwrap();
    let answered = read_until_closed(&mut garbage).expect("garbage was not dropped");
    assert!(
        answered.is_empty() || answered[0] == 0x15,
        "not an alert: {answered:?}"
    );
    assert_metric_becomes(&proxy, FAILED, 2);
    // And random bytes after a 0x16 that never make a record.
    let mut random = raw_connect(addr);
    let mut bytes = vec![0x16];
    bytes.extend(pattern(4096).iter().map(|b| b.wrapping_mul(7) ^ 0x5a));
    random.write_all(&bytes).unwrap();
    assert!(
        read_until_closed(&mut random).is_some(),
        "random bytes kept open"
    );
    assert_metric_becomes(&proxy, FAILED, 3);

    // The kept connection and new ones are served all the same.
    assert_eq!(client.get("/still").status, 200);
    let mut again = TlsClient::connect(addr, &pki.client(), "localhost");
    assert_eq!(again.get("/again").status, 200);
    assert_metric_becomes(&proxy, OK, 2);
    assert_eq!(backend.requests(), 3);
}

// ---------------------------------------------------------------- routes

#[test]
fn a_files_route_sends_a_large_file_and_its_ranges_over_tls() {
    const SIZE: usize = 300_007;
    let pki = Pki::new();
    let site = tempfile::tempdir().unwrap();
    let content = pattern(SIZE);
    std::fs::write(site.path().join("large.bin"), &content).unwrap();
    std::fs::write(site.path().join("small.txt"), "a small file").unwrap();
    let backend = Backend::echo("app");
    let more = format!("route./static/ = files {}\n", site.path().display());
    let proxy = start_tls(
        &tls_conf(&backend.addr.to_string(), &pki.entry, &more),
        |_| {},
    );
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");

    let r = client.get("/static/large.bin");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("content-length"), Some(SIZE.to_string().as_str()));
    assert_eq!(r.body.len(), SIZE);
    assert!(r.body == content, "the file arrived altered");
    // The connection goes on after a file sent through a buffer.
    let r = client.get("/static/small.txt");
    assert_eq!(r.body_str(), "a small file");

    // A small range and one past 32 KiB (the large path again).
    for (from, to) in [(100_000, 100_099), (1_000, 250_000)] {
        let range = format!("bytes={from}-{to}");
        let r = client.request("GET", "/static/large.bin", &[("Range", &range)], b"");
        assert_eq!(r.status, 206, "{range}: {}", r.head.raw);
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {from}-{to}/{SIZE}").as_str())
        );
        assert!(r.body == content[from..=to], "{range}: wrong bytes");
    }
    let r = client.request("GET", "/static/large.bin", &[("Range", "bytes=-10")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &content[SIZE - 10..]);
    assert_eq!(backend.requests(), 0);
}

#[test]
fn redirect_to_https_leaves_requests_over_tls_alone() {
    let pki = Pki::new();
    let a = Backend::echo("a");
    let more = "real_ip_from = 127.0.0.1\nredirect_to_https = true\n";
    let proxy = start_tls(&tls_conf(&a.addr.to_string(), &pki.entry, more), |_| {});
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    let r = client.get("/secure?q=1");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), echoed("a", "GET", "/secure?q=1", b""));
    // Even when the client itself says http: the connection is TLS.
    let r = client.request("GET", "/said-http", &[("X-Forwarded-Proto", "http")], b"");
    assert_eq!(r.status, 200, "{}", r.head.raw);

    let mut plain = proxy.connect();
    let r = plain.get("/secure?q=1");
    assert_eq!(r.status, 301, "{}", r.head.raw);
    assert_eq!(
        r.header("location"),
        Some("https://test.example/secure?q=1")
    );
    let paths: Vec<String> = a.seen().iter().map(|s| s.path().to_string()).collect();
    assert_eq!(paths, ["/secure?q=1", "/said-http"]);
    assert_eq!(proxy.metric("inverso_https_redirects_total"), Some(1));
}

/// A route's `if https` takes what came to the TLS port, whatever the
/// client says, and a deny rule's `if not https` what came to the plain one.
#[test]
fn an_https_route_takes_the_tls_port_s_requests_and_a_rule_refuses_the_others() {
    let pki = Pki::new();
    let (main, secure) = (Backend::echo("main"), Backend::echo("secure"));
    let more = format!(
        "pool.secure = {}\nroute./ if https = secure\n\
         deny.plain = 403 if not https and path_beg /account/\n",
        secure.addr
    );
    let proxy = start_tls(&tls_conf(&main.addr.to_string(), &pki.entry, &more), |_| {});
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    let said_http = [("X-Forwarded-Proto", "http")];
    for path in ["/p", "/account/x"] {
        let r = client.request("GET", path, &said_http, b"");
        assert_eq!(
            (r.status, r.header("x-backend")),
            (200, Some("secure")),
            "{path}"
        );
    }
    let mut plain = proxy.connect();
    let r = plain.get_with("/p", &[("X-Forwarded-Proto", "https")]);
    assert_eq!((r.status, r.header("x-backend")), (200, Some("main")));
    assert_eq!(plain.get("/account/x").status, 403);
    assert_eq!((main.requests(), secure.requests()), (1, 2));
}

/// Runs `exchange` on a new TLS connection, closes it, and waits until
/// the proxy is done with it: what the exchange stored is stored.
fn tls_exchange<T>(
    proxy: &Proxy,
    config: &Arc<ClientConfig>,
    exchange: impl FnOnce(&mut TlsClient) -> T,
) -> T {
    let mut client = TlsClient::connect(tls_addr(proxy), config, "localhost");
    let result = exchange(&mut client);
    drop(client);
    proxy.assert_becomes_idle();
    result
}

/// The cache keys a request over TLS under `https://`, as it does one a
/// trusted proxy in front says came over HTTPS (`real_ip_from` and
/// `X-Forwarded-Proto: https`), and apart from one over plain HTTP
/// (src/cache/policy/key.rs `primary_key`, realip::client_scheme): the
/// TLS port and a terminator in front share entries; plain HTTP does not
/// share them with either.
#[test]
fn the_cache_serves_tls_requests_under_the_https_key() {
    let pki = Pki::new();
    let origin = numbered_fresh_origin();
    let more = "real_ip_from = 127.0.0.1\n";
    let proxy = start_tls(&tls_conf(&origin.addr.to_string(), &pki.entry, more), |c| {
        c.cache_size = 1 << 20
    });
    let config = pki.client();
    let first = tls_exchange(&proxy, &config, |c| c.get("/page"));
    expect(&first, 200, "MISS", "/page #1");
    let second = tls_exchange(&proxy, &config, |c| c.get("/page"));
    expect(&second, 200, "HIT", "/page #1");
    // On one connection too.
    let (third, fourth) = tls_exchange(&proxy, &config, |c| (c.get("/page"), c.get("/page")));
    expect(&third, 200, "HIT", "/page #1");
    expect(&fourth, 200, "HIT", "/page #1");

    // Plain HTTP: its own entry.
    let plain = proxy.exchange(|c| c.get("/page"));
    expect(&plain, 200, "MISS", "/page #2");
    let plain = proxy.exchange(|c| c.get("/page"));
    expect(&plain, 200, "HIT", "/page #2");
    // Plain HTTP that a trusted proxy in front says was HTTPS: TLS's entry.
    let fronted = proxy.exchange(|c| c.get_with("/page", &[("X-Forwarded-Proto", "https")]));
    expect(&fronted, 200, "HIT", "/page #1");
    assert_eq!(origin.requests(), 2);
}

// ---------------------------------------------------------------- reload

#[test]
fn a_reload_serves_the_renewed_certificate_to_new_connections() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let old = pki.ca.leaf(&["localhost"]);
    let path = old.write(&pki.ca, dir, "site.pem");
    let backend = Backend::echo("app");
    let text = tls_conf(&backend.addr.to_string(), &path.display().to_string(), "");
    let proxy = start_tls(&text, |_| {});
    let addr = tls_addr(&proxy);
    let config = pki.client();
    let mut kept = TlsClient::connect(addr, &config, "localhost");
    assert!(kept.server_cert() == old.der);
    assert_eq!(kept.get("/before").status, 200);

    // Renewed in place: another certificate, another key.
    let new = pki.ca.leaf(&["localhost"]);
    assert!(new.key_pem != old.key_pem);
    new.write(&pki.ca, dir, "site.pem");
    // Not before the reload.
    let unreloaded = TlsClient::connect(addr, &config, "localhost");
    assert!(
        unreloaded.server_cert() == old.der,
        "read again without a reload"
    );

    let next = proxy.config_for(&[], from_file_with_admin(&text));
    let reloaded = proxy.handle().control().reload(next).unwrap();
    assert!(
        reloaded.needs_restart.is_empty(),
        "{:?} taken for changes",
        reloaded.needs_restart
    );
    assert_eq!(tls_addr(&proxy), addr);
    // Sessions of the old certificate are not resumed: a client that
    // offers one gets a whole handshake, and the new certificate.
    let mut renewed = TlsClient::connect(addr, &config, "localhost");
    assert_eq!(
        renewed.conn().handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    assert!(
        renewed.server_cert() == new.der,
        "the old certificate after the reload"
    );
    assert_eq!(renewed.get("/renewed").status, 200);
    // A reload that leaves the certificates as they are keeps the
    // sessions: the one just made resumes after it.
    let next = proxy.config_for(&[], from_file_with_admin(&text));
    proxy.handle().control().reload(next).unwrap();
    let mut resumed = TlsClient::connect(addr, &config, "localhost");
    assert_eq!(
        resumed.conn().handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    assert_eq!(resumed.get("/resumed").status, 200);
    // The connection from before goes on, on its session.
    assert_eq!(kept.get("/kept").status, 200);
    assert!(kept.server_cert() == old.der);
    let paths: Vec<String> = backend
        .seen()
        .iter()
        .map(|s| s.path().to_string())
        .collect();
    assert_eq!(paths, ["/before", "/renewed", "/resumed", "/kept"]);
}

/// A directory as `tls_certificates` (HAProxy's `crt <dir>/`): each
/// name gets its own certificate from it, and a site dropped into it is
/// served after a reload.
#[test]
fn a_directory_of_certificates_serves_each_by_name_and_a_site_added_after_a_reload() {
    let pki = Pki::new();
    let certs = pki.dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let a = pki.ca.leaf(&["a.test"]);
    let b = pki.ca.leaf(&["b.test"]);
    a.write(&pki.ca, &certs, "a.test.pem");
    b.write(&pki.ca, &certs, "b.test.pem");
    let backend = Backend::echo("app");
    let written = format!("{}/", certs.display());
    let text = tls_conf(&backend.addr.to_string(), &written, "");
    let proxy = start_tls(&text, |_| {});
    let addr = tls_addr(&proxy);
    let config = pki.client();
    let mut to_b = TlsClient::connect(addr, &config, "b.test");
    assert!(to_b.server_cert() == b.der, "b.test did not get b.test");
    assert_eq!(to_b.get("/b").status, 200);
    let to_a = TlsClient::connect(addr, &config, "a.test");
    assert!(to_a.server_cert() == a.der, "a.test did not get a.test");
    // Not served before it is there and the proxy reloaded.
    assert!(TlsClient::try_connect(addr, &config, "c.test").is_err());

    let c = pki.ca.leaf(&["c.test"]);
    c.write(&pki.ca, &certs, "c.test.pem");
    let next = proxy.config_for(&[], from_file_with_admin(&text));
    proxy.handle().control().reload(next).unwrap();
    let mut to_c = TlsClient::connect(addr, &config, "c.test");
    assert!(to_c.server_cert() == c.der, "c.test did not get c.test");
    assert_eq!(to_c.get("/c").status, 200);
    let to_a = TlsClient::connect(addr, &config, "a.test");
    assert!(to_a.server_cert() == a.der, "a.test lost its certificate");
}

/// A directory of chains with their keys beside them (nginx's `a.crt`
/// and `a.key`, HAProxy's `b.pem` and `b.pem.key`): each name gets its
/// own certificate, a renewed pair is served after a reload, and a key
/// that cannot be read refuses the next one, the pair in force kept.
#[test]
fn a_directory_of_chains_with_their_keys_beside_them_serves_each_name() {
    let pki = Pki::new();
    let certs = pki.dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let a = pki.ca.leaf(&["a.test"]);
    a.write_apart(&pki.ca, &certs, "a");
    let b = pki.ca.leaf(&["b.test"]);
    let b_chain = certs.join("b.pem");
    std::fs::write(&b_chain, format!("{}{}", b.cert_pem, pki.ca.pem)).unwrap();
    let b_key = certs.join("b.pem.key");
    std::fs::write(&b_key, &b.key_pem).unwrap();
    let backend = Backend::echo("app");
    let text = tls_conf(&backend.addr.to_string(), &certs.display().to_string(), "");
    let proxy = start_tls(&text, |_| {});
    let addr = tls_addr(&proxy);
    let config = pki.client();
    let mut to_a = TlsClient::connect(addr, &config, "a.test");
    assert!(to_a.server_cert() == a.der, "a.test did not get a.test");
    assert_eq!(to_a.get("/a").status, 200);
    let mut to_b = TlsClient::connect(addr, &config, "b.test");
    assert!(to_b.server_cert() == b.der, "b.test did not get b.test");
    assert_eq!(to_b.get("/b").status, 200);

    // Renewed: another certificate and another key, both rewritten.
    let renewed = pki.ca.leaf(&["a.test"]);
    renewed.write_apart(&pki.ca, &certs, "a");
    let next = proxy.config_for(&[], from_file_with_admin(&text));
    proxy.handle().control().reload(next).unwrap();
    let mut to_a = TlsClient::connect(addr, &config, "a.test");
    assert!(
        to_a.server_cert() == renewed.der,
        "the old a.test after the reload"
    );
    assert_eq!(to_a.get("/renewed").status, 200);

    // A key that cannot be read refuses the reload, naming it.
    std::fs::remove_file(&b_key).unwrap();
    std::fs::create_dir(&b_key).unwrap();
    let refused = from_file_keeping(&text, proxy.handle().control().last_addresses())
        .map(|_| ())
        .unwrap_err();
    assert!(
        refused.contains(&format!("{}: ", b_key.display())),
        "{refused}"
    );
    let mut to_b = TlsClient::connect(addr, &config, "b.test");
    assert!(to_b.server_cert() == b.der, "b.test lost its certificate");
    assert_eq!(to_b.get("/kept").status, 200);
}

/// Turning TLS off waits for a restart, as the port does: the reload
/// reports `tls_port`, and the port goes on serving its certificate
/// (nothing else listens there until the restart).
#[test]
fn a_reload_that_turns_tls_off_keeps_serving_it_until_a_restart() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let text = tls_conf(&backend.addr.to_string(), &pki.entry, "");
    let proxy = start_tls(&text, |_| {});
    let addr = tls_addr(&proxy);
    let plain = format!("targets = {}\n", backend.addr);
    let next = proxy.config_for(&[], from_file_with_admin(&plain));
    let reloaded = proxy.handle().control().reload(next).unwrap();
    assert_eq!(reloaded.needs_restart, ["tls_port"]);
    let mut client = TlsClient::connect(addr, &pki.client(), "localhost");
    assert!(client.server_cert() == pki.localhost.der);
    assert_eq!(client.get("/after").status, 200);
}

// ---------------------------------------------------------------- configuration

#[test]
fn the_configuration_refuses_tls_settings_that_cannot_work() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let good = pki.localhost.write(&pki.ca, dir, "good.pem");
    let good = good.display().to_string();
    let base = "targets = 127.0.0.1:1\nport = 8080\n";
    // The working setting, so that each refusal below is for its one change.
    let mut loader = Loader::new();
    loader
        .file(
            "proxy.conf",
            &format!("{base}tls_port = 8443\ntls_certificates = {good}\n"),
        )
        .unwrap();
    let config = loader.build().unwrap();
    assert_eq!(config.tls_port, Some(8443));
    assert!(config.tls.is_some());

    let cert_only = dir.join("cert-only.pem");
    std::fs::write(&cert_only, &pki.localhost.cert_pem).unwrap();
    let key_only = dir.join("key-only.pem");
    std::fs::write(&key_only, &pki.localhost.key_pem).unwrap();
    let other_key = dir.join("other.key");
    std::fs::write(&other_key, pki.ca.leaf(&["localhost"]).key_pem).unwrap();
    let missing = dir.join("missing.pem");
    let cases: Vec<(String, &str, Vec<String>)> = vec![
        (
            "tls_port = 8443\n".into(),
            "tls_port",
            vec!["tls_certificates".into()],
        ),
        (
            format!("tls_certificates = {good}\n"),
            "tls_certificates",
            vec!["tls_port".into()],
        ),
        (
            format!(
                "tls_port = 8443\ntls_certificates = {}\n",
                missing.display()
            ),
            "tls_certificates",
            vec![missing.display().to_string()],
        ),
        (
            format!(
                "tls_port = 8443\ntls_certificates = {}\n",
                key_only.display()
            ),
            "tls_certificates",
            vec![key_only.display().to_string(), "no PEM certificate".into()],
        ),
        (
            format!(
                "tls_port = 8443\ntls_certificates = {}\n",
                cert_only.display()
            ),
            "tls_certificates",
            vec![cert_only.display().to_string(), "key=".into()],
        ),
        (
            format!(
                "tls_port = 8443\ntls_certificates = {} key={}\n",
                cert_only.display(),
                other_key.display()
            ),
            "tls_certificates",
            vec![other_key.display().to_string(), "does not belong".into()],
        ),
        (
            format!("tls_port = 8443\ntls_certificates = {good} chain=x.pem\n"),
            "tls_certificates",
            vec!["chain=x.pem".into(), "unknown option".into()],
        ),
        (
            format!("tls_port = 8443\ntls_certificates = {good} key=a.key key=b.key\n"),
            "tls_certificates",
            vec!["`key=` given twice".into()],
        ),
        (
            format!("tls_port = 8443\ntls_certificates = {good}\ntls_ciphers = HIGH:!aNULL\n"),
            "tls_ciphers",
            vec!["names no cipher suite this build offers".into()],
        ),
        (
            format!("tls_port = 8443\ntls_certificates = {good}\ntls_groups = X448\n"),
            "tls_groups",
            vec!["`X448`".into()],
        ),
        (
            "tls_groups = X25519\n".into(),
            "tls_groups",
            vec!["tls_port is not".into()],
        ),
        (
            format!("backend_tls_certificate = {good} ocsp=a.der\n"),
            "backend_tls_certificate",
            vec!["a backend is not stapled".into()],
        ),
        (
            format!("tls_port = 8080\ntls_certificates = {good}\n"),
            "tls_port",
            vec!["8080".into(), "`port`".into()],
        ),
        (
            format!("admin_port = 9000\ntls_port = 9000\ntls_certificates = {good}\n"),
            "tls_port",
            vec!["9000".into(), "`admin_port`".into()],
        ),
    ];
    assert_refused(base, &cases);
}

// ---------------------------------------------------------------- websocket

/// A WebSocket origin that greets first (a frame the client did not ask
/// for), then echoes each frame until a close frame, echoed too.
fn greeting_websocket_backend() -> Backend {
    Backend::start("ws", |seen, out| {
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
        let mut reader = out.try_clone().unwrap();
        echo_websocket_frames(out, &mut reader);
        Action::Close
    })
}

#[test]
fn a_websocket_is_tunnelled_over_tls_both_ways() {
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    let pki = Pki::new();
    let backend = greeting_websocket_backend();
    let proxy = start_tls(&tls_conf(&backend.addr.to_string(), &pki.entry, ""), |_| {});
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    client.send(
        format!(
            "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    );
    let r = client.reader.read_response(true).unwrap();
    assert_eq!(r.status, 101, "{}", r.head.raw);
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some(websocket_accept(KEY).as_str())
    );
    assert_eq!(
        backend.seen()[0].field_or("x-forwarded-proto", "-"),
        "https"
    );
    // Backend to client, unasked.
    assert_eq!(
        client.reader.read_websocket_frame().unwrap(),
        (0x1, b"welcome".to_vec())
    );
    // Client to backend and back, a small frame and one of many records.
    client.send(&websocket_frame(0x1, b"hello", Some([1, 2, 3, 4])));
    assert_eq!(
        client.reader.read_websocket_frame().unwrap(),
        (0x1, b"hello".to_vec())
    );
    let big = pattern(100_000);
    client.send(&websocket_frame(0x2, &big, Some([9, 8, 7, 6])));
    let (opcode, echoed) = client.reader.read_websocket_frame().unwrap();
    assert_eq!(opcode, 0x2);
    assert!(echoed == big, "binary frame differs");
    // The close handshake ends the tunnel and the connection.
    client.send(&websocket_frame(0x8, &[0x03, 0xe8], Some([5, 5, 5, 5])));
    assert_eq!(
        client.reader.read_websocket_frame().unwrap(),
        (0x8, vec![0x03, 0xe8])
    );
    assert!(client.is_closed());
}

// ---------------------------------------------------------------- shutdown

#[test]
fn shutdown_closes_an_idle_tls_keep_alive_connection() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let mut proxy = start_tls(&tls_conf(&backend.addr.to_string(), &pki.entry, ""), |_| {});
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    assert_eq!(client.get("/one").status, 200);
    // Idle now, kept alive.
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert!(client.is_closed(), "the idle TLS connection was left open");
    assert_eq!(backend.requests(), 1);
}

#[test]
fn a_half_closed_tunnel_over_tls_still_carries_the_answer() {
    // The client sends its last bytes and ends its side (close_notify,
    // then the TCP end); the backend answers once it sees that end.
    let pki = Pki::new();
    let backend = Backend::start("half", |_, out| {
        let _ = out.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-test\r\nConnection: Upgrade\r\n\r\n",
        );
        let mut got = Vec::new();
        let _ = out.read_to_end(&mut got);
        let _ = out.write_all(format!("got {:?}, bye", String::from_utf8_lossy(&got)).as_bytes());
        Action::Close
    });
    let proxy = start_tls(&tls_conf(&backend.addr.to_string(), &pki.entry, ""), |_| {});
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    client.send(b"GET /t HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x-test\r\n\r\n");
    assert_eq!(client.reader.read_response(true).unwrap().status, 101);
    client.send(b"last words");
    client.reader.stream.conn.send_close_notify();
    client.reader.stream.flush().unwrap();
    client.reader.stream.sock.shutdown(Shutdown::Write).unwrap();
    let rest = client.reader.read_to_end();
    let rest = rest.map(|r| String::from_utf8_lossy(&r).into_owned());
    assert_eq!(rest.unwrap(), "got \"last words\", bye");
}

// ---------------------------------------------------------------- limits

#[test]
fn over_max_connections_a_tls_connection_is_closed_unanswered_and_logged_503() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let mut proxy = start_tls(&tls_conf(&backend.addr.to_string(), &pki.entry, ""), |c| {
        c.max_connections = 1;
    });
    let addr = tls_addr(&proxy);
    let mut first = TlsClient::connect(addr, &pki.client(), "localhost");
    assert_eq!(first.get("/1").status, 200);
    // No handshake for the second: closed, not answered in plain text.
    let mut second = raw_connect(addr);
    let name = ServerName::try_from("localhost").unwrap();
    let mut hello_writer = ClientConnection::new(pki.client(), name).unwrap();
    let mut hello = Vec::new();
    hello_writer.write_tls(&mut hello).unwrap();
    second.write_all(&hello).unwrap();
    let answered = read_until_closed(&mut second).expect("the second was kept open");
    assert!(answered.is_empty(), "answered: {answered:?}");
    // The first goes on; once it leaves, a newcomer is served.
    assert_eq!(first.get("/1b").status, 200);
    drop(first);
    assert!(wait_until(WAIT_LIMIT, || proxy.handle().live_connections() == 0));
    let mut third = TlsClient::connect(addr, &pki.client(), "localhost");
    assert_eq!(third.get("/3").status, 200);
    drop(third);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    let refused: Vec<_> = lines.iter().filter(|l| l.contains("\" 503 ")).collect();
    assert_eq!(refused.len(), 1, "{lines:#?}");
    assert!(refused[0].contains("\" 503 0 "), "{}", refused[0]);
    assert_eq!(backend.requests(), 3);
}

#[test]
fn proxy_protocol_on_the_tls_port_comes_before_the_handshake() {
    let pki = Pki::new();
    let a = Backend::echo("a");
    let more = "proxy_protocol = true\n";
    let mut proxy = start_tls(&tls_conf(&a.addr.to_string(), &pki.entry, more), |_| {});
    let addr = tls_addr(&proxy);
    // The plain port wants its PROXY header.
    let mut plain = proxy.connect();
    plain.send(b"GET /no-header HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(plain.try_response(false).map_or(true, |r| r.status == 400));
    // So does the TLS port, before its hello: version 1, and version 2
    // (an AWS NLB's), each naming the client.
    let v1 = b"PROXY TCP4 192.0.2.9 127.0.0.1 5555 443\r\n";
    let mut client = TlsClient::try_connect_after(addr, &pki.client(), "localhost", v1).unwrap();
    assert_eq!(client.get("/v1").status, 200);
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[198, 51, 100, 7, 127, 0, 0, 1, 0x15, 0xb3, 0x01, 0xbb]);
    let mut client = TlsClient::try_connect_after(addr, &pki.client(), "localhost", &v2).unwrap();
    assert_eq!(client.get("/v2").status, 200);
    let seen = a.seen();
    let by_path = |path: &str| {
        let s = seen.iter().find(|s| s.path() == path).unwrap();
        let fields = ["x-forwarded-for", "x-forwarded-proto"];
        fields.map(|f| s.field_or(f, "-"))
    };
    assert_eq!(by_path("/v1"), ["192.0.2.9", "https"]);
    assert_eq!(by_path("/v2"), ["198.51.100.7", "https"]);
    // A hello without the header is no header: closed, never served.
    assert!(TlsClient::try_connect(addr, &pki.client(), "localhost").is_err());
    assert_eq!(a.seen().len(), 2);
    // Plain HTTP after the header: 400, logged as the named client's.
    let mut plain = Client::connect(addr);
    plain.send(
        b"PROXY TCP4 192.0.2.11 127.0.0.1 5555 443\r\nGET /plain HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(plain.response().status, 400);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    let line = lines
        .iter()
        .find(|l| l.contains("GET /plain"))
        .expect("logged");
    assert!(line.starts_with("192.0.2.11 "), "{line}");
}

/// A request refused before its fields are read (no Host) came over
/// TLS all the same: `$scheme` says so from the connection's first
/// request on.
#[test]
fn a_request_refused_over_tls_is_logged_as_https() {
    let pki = Pki::new();
    let a = Backend::echo("a");
    let more = "log_format = $status $scheme\n";
    let mut proxy = start_tls(&tls_conf(&a.addr.to_string(), &pki.entry, more), |_| {});
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    client.send(b"GET /no-host HTTP/1.1\r\n\r\n");
    assert_eq!(client.response().status, 400);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(proxy.log_lines(), ["400 https"]);
}

// ---------------------------------------------------------------- clients leaving

/// A TLS client asks for `/work` and leaves while the backend works on
/// it, with a `close_notify` first or not; asserts that the proxy closes
/// the backend connection then (as it does for a plain client), and logs
/// 499.
fn leaves_while_the_backend_works(close_notify: bool) {
    let pki = Pki::new();
    let saw_close = Arc::new(AtomicUsize::new(0));
    let a = working_backend(&saw_close);
    let mut proxy = start_tls(&tls_conf(&a.addr.to_string(), &pki.entry, ""), |_| {});
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    client.send(b"GET /work HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 1));
    if close_notify {
        client.reader.stream.conn.send_close_notify();
        client.reader.stream.flush().unwrap();
    }
    drop(client);
    assert!(
        wait_until(WAIT_LIMIT, || saw_close.load(Ordering::SeqCst) == 1),
        "the backend saw no close while it worked"
    );
    proxy.assert_becomes_idle();
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    let line = lines.iter().find(|l| l.contains("/work")).unwrap();
    assert!(line.contains("\" 499 0 "), "{line}");
}

#[test]
fn a_tls_client_that_drops_its_connection_while_the_backend_works_is_noticed() {
    leaves_while_the_backend_works(false);
}

/// The close_notify record that comes before the end is a byte in the
/// socket: a look at the TCP socket alone took such a client for one that
/// half-closed after pipelining, and the backend worked on until
/// backend_timeout (504, not 499). The watch reads what came into the
/// session to tell.
#[test]
fn a_tls_client_that_closes_with_close_notify_while_the_backend_works_is_noticed() {
    leaves_while_the_backend_works(true);
}

/// Two requests in one write, the first exactly 1 KiB (what the first
/// read of a connection takes), then the client's end of sending.
fn pipelined_then_half_closed() -> Vec<u8> {
    let mut first = String::from("GET /slow HTTP/1.1\r\nHost: x\r\nX-Pad: ");
    let pad = 1024 - first.len() - "\r\n\r\n".len();
    first.push_str(&"p".repeat(pad));
    first.push_str("\r\n\r\n");
    assert_eq!(first.len(), 1024);
    let mut bytes = first.into_bytes();
    bytes.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    bytes
}

/// A backend that takes a while over `/slow` (past the 20 ms after which
/// the proxy looks whether the client left: a precondition, not a
/// measurement) and answers each path with itself.
fn slow_path_backend() -> Backend {
    Backend::start("a", |seen, out| {
        if seen.path() == "/slow" {
            std::thread::sleep(Duration::from_millis(300));
        }
        respond(out, 200, &[], seen.path().as_bytes());
        Action::KeepAlive
    })
}

#[test]
fn pipelined_requests_then_a_half_close_are_all_answered_over_plain_http() {
    // The reference for the TLS test below.
    let a = slow_path_backend();
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(&pipelined_then_half_closed());
    client.finish_sending();
    assert_eq!(client.response().body, b"/slow");
    assert_eq!(client.response().body, b"/next");
}

/// The second request is read from the socket and decrypted with the
/// first, but the first read of a connection takes 1 KiB: it waits in the
/// rustls session, in neither the connection's buffer nor the socket. A
/// look at those two alone took the client for gone 20 ms into the
/// backend's wait, and answered neither request.
#[test]
fn pipelined_requests_then_a_half_close_are_all_answered_over_tls() {
    let pki = Pki::new();
    let a = slow_path_backend();
    let proxy = start_tls(&tls_conf(&a.addr.to_string(), &pki.entry, ""), |_| {});
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    client.send(&pipelined_then_half_closed());
    client.reader.stream.sock.shutdown(Shutdown::Write).unwrap();
    let first = client.reader.read_response(false);
    assert_eq!(first.unwrap().body, b"/slow");
    assert_eq!(client.response().body, b"/next");
}

// ---------------------------------------------------------------- more of HTTP over TLS

#[test]
fn expect_100_continue_over_tls_gets_continue_before_the_body() {
    let pki = Pki::new();
    let a = Backend::echo("a");
    let proxy = start_tls(&tls_conf(&a.addr.to_string(), &pki.entry, ""), |_| {});
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    // A small body (read whole by the proxy) and a large one (streamed),
    // on one connection.
    for len in [10usize, 200 * 1024] {
        let body = pattern(len);
        client.send(
            format!(
                "PUT /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
                 Content-Length: {len}\r\n\r\n"
            )
            .as_bytes(),
        );
        let interim = client.response();
        assert_eq!(interim.status, 100, "len {len}: {}", interim.head.raw);
        client.send(&body);
        let last = client.response();
        assert_eq!(last.body_str(), echoed("a", "PUT", "/upload", &body));
    }
}

#[test]
fn a_body_over_max_body_size_over_tls_gets_413() {
    let pki = Pki::new();
    let a = Backend::echo("a");
    let more = "max_body_size = 1KiB\n";
    let proxy = start_tls(&tls_conf(&a.addr.to_string(), &pki.entry, more), |_| {});
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    let r = client.request("POST", "/big", &[], &pattern(100 * 1024));
    assert_eq!(r.status, 413, "{}", r.head.raw);
    assert!(client.is_closed());
    assert_eq!(a.requests(), 0);
    let mut next = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    let r = next.request("POST", "/small", &[], &pattern(1000));
    assert_eq!(r.status, 200, "{}", r.head.raw);
}

#[test]
fn an_idle_tls_connection_is_closed_at_keepalive_timeout() {
    let pki = Pki::new();
    let a = Backend::echo("a");
    let more = "keepalive_timeout = 300ms\n";
    // Nothing else closes it within the test's read timeout.
    let proxy = start_tls(&tls_conf(&a.addr.to_string(), &pki.entry, more), |c| {
        c.connection_timeout = IO_TIMEOUT * 6;
    });
    let mut idle = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    assert_eq!(idle.get("/before").status, 200);
    assert!(idle.is_closed(), "the idle TLS connection stayed open");
    proxy.assert_becomes_idle();
}

#[test]
fn an_idle_tls_connection_serves_after_its_stack_is_given_back() {
    // The wait for the next request is cut in two after a second (see
    // `thread_stack`): the session's reads go on across the cut.
    let pki = Pki::new();
    let a = Backend::echo("a");
    let more = "keepalive_timeout = 4s\n";
    let proxy = start_tls(&tls_conf(&a.addr.to_string(), &pki.entry, more), |c| {
        c.connection_timeout = IO_TIMEOUT * 6;
    });
    let mut idle = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    assert_eq!(idle.get("/before").status, 200);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(idle.get("/after").status, 200);
    assert!(idle.is_closed(), "kept past keepalive_timeout");
}

#[test]
fn a_tls_client_that_leaves_while_idle_past_a_second_frees_its_connection() {
    // The wait past the first second runs from the connection's loop
    // (`TlsStream::wait_idle`): a client gone then ends it, well before
    // keepalive_timeout.
    let pki = Pki::new();
    let a = Backend::echo("a");
    let more = "keepalive_timeout = 600s\n";
    let proxy = start_tls(&tls_conf(&a.addr.to_string(), &pki.entry, more), |c| {
        c.connection_timeout = IO_TIMEOUT * 6;
    });
    let mut idle = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    assert_eq!(idle.get("/before").status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(proxy.handle().live_connections(), 1);
    drop(idle);
    proxy.assert_becomes_idle();
}

#[test]
fn a_page_goes_gzipped_over_tls() {
    let pki = Pki::new();
    let text: Vec<u8> = b"<p>compressed over TLS</p>\n"
        .iter()
        .copied()
        .cycle()
        .take(300_000)
        .collect();
    let body = text.clone();
    let origin = Backend::start("origin", move |_, out| {
        respond(out, 200, &[("Content-Type", "text/html")], &body);
        Action::KeepAlive
    });
    let more = "gzip = true\ngzip_types = text/html\n";
    let proxy = start_tls(
        &tls_conf(&origin.addr.to_string(), &pki.entry, more),
        |_| {},
    );
    let mut client = TlsClient::connect(tls_addr(&proxy), &pki.client(), "localhost");
    let r = client.request("GET", "/", &[("Accept-Encoding", "gzip")], b"");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head.raw);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut plain)
        .expect("a gzip stream");
    assert!(plain == text, "decompressed body differs");
    // And whole to a client that does not take it, on the same connection.
    let r = client.get("/");
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.body == text);
}

/// A request head sent a byte of its TLS record at a time, each byte
/// well within any one read's timeout: the head's own deadline still
/// ends the connection, as it ends a plain-HTTP trickle, long before the
/// record is whole, and nothing reaches the backend.
#[test]
fn a_request_record_trickled_a_byte_at_a_time_meets_client_header_timeout() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let proxy = with_a_second_for_heads(&pki, &backend);
    let addr = tls_addr(&proxy);
    let mut tcp = raw_connect(addr);
    let name = ServerName::try_from("localhost").unwrap();
    // TLS 1.2: nothing comes from the proxy after the handshake (1.3's
    // session tickets would), so any byte that does is its answer.
    let config = client_config(&pki.ca, &[&rustls::version::TLS12], &[], None);
    let mut conn = ClientConnection::new(config, name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    let path = format!("/{}", "x".repeat(200));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn.writer().write_all(request.as_bytes()).unwrap();
    let mut record = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut record).unwrap();
    }
    // 250 bytes at 40 ms each: ten seconds, ten times the head's limit.
    let mut sent = 0;
    for byte in &record {
        if tcp.write_all(std::slice::from_ref(byte)).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(40));
        if peer_closed_or_spoke(&tcp) {
            break;
        }
    }
    assert!(
        sent < record.len(),
        "the whole record ({} bytes) went in before the proxy gave up",
        record.len()
    );
    // What the proxy said before it closed: its 408, over TLS.
    let mut answer = Vec::new();
    loop {
        match conn.read_tls(&mut tcp) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    break;
                }
                let _ = conn.reader().read_to_end(&mut answer);
            }
        }
    }
    // Not a byte of the head was deciphered: closed as an idle
    // connection is, or answered 408, never served.
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert_eq!(backend.requests(), 0);
}

/// Whether the proxy has sent something or closed, without waiting.
fn peer_closed_or_spoke(tcp: &TcpStream) -> bool {
    tcp.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let said = !matches!(tcp.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    tcp.set_nonblocking(false).unwrap();
    said
}

/// `curl --http1.0` offers `http/1.0` alone in ALPN; it is taken.
#[test]
fn an_http_1_0_client_naming_it_in_alpn_is_served() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let proxy = start_tls(&tls_conf(&backend.addr.to_string(), &pki.entry, ""), |_| {});
    let config = client_config(&pki.ca, &[&rustls::version::TLS13], &[b"http/1.0"], None);
    let mut client = TlsClient::connect(tls_addr(&proxy), &config, "localhost");
    assert_eq!(client.conn().alpn_protocol(), Some(&b"http/1.0"[..]));
    assert_eq!(client.get("/old").status, 200);
}

#[test]
fn behind_proxy_protocol_a_client_over_its_limit_is_closed_before_its_handshake() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let more = "proxy_protocol = true\nmax_connections_per_client = 1\n\
                client_header_timeout = 60s\n";
    let proxy = start_tls(
        &tls_conf(&backend.addr.to_string(), &pki.entry, more),
        |c| {
            c.connection_timeout = Duration::from_secs(60);
        },
    );
    let addr = tls_addr(&proxy);
    let header = b"PROXY TCP4 203.0.113.1 127.0.0.1 5555 443\r\n";
    let mut held = TlsClient::try_connect_after(addr, &pki.client(), "localhost", header).unwrap();
    assert_eq!(held.get("/1").status, 200);
    // The same client again, its hello never sent: closed unanswered as
    // soon as the header is read, not held for client_header_timeout.
    let mut again = raw_connect(addr);
    again.write_all(header).unwrap();
    assert_eq!(read_until_closed(&mut again), Some(Vec::new()));
    assert!(wait_until(WAIT_LIMIT, || {
        proxy
            .log_lines()
            .iter()
            .any(|l| l.starts_with("203.0.113.1 ") && l.contains(" 503 0 "))
    }));
    // Another client behind the same balancer is not held to its limit.
    let other = b"PROXY TCP4 203.0.113.2 127.0.0.1 5556 443\r\n";
    let mut other = TlsClient::try_connect_after(addr, &pki.client(), "localhost", other).unwrap();
    assert_eq!(other.get("/2").status, 200);
    assert_eq!(held.get("/3").status, 200);
}

#[test]
fn a_slow_handshake_takes_from_the_time_the_first_head_is_given() {
    // client_header_timeout counts from the connection's opening: a
    // handshake that takes most of it leaves the head the rest.
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let text = tls_conf(
        &backend.addr.to_string(),
        &pki.entry,
        "client_header_timeout = 2s\n",
    );
    let proxy = start_tls(&text, |c| c.connection_timeout = IO_TIMEOUT * 6);
    let name = ServerName::try_from("localhost").unwrap();
    let config = client_config(&pki.ca, &[&rustls::version::TLS13], &[], None);
    let mut conn = ClientConnection::new(config, name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    let mut tcp = raw_connect(tls_addr(&proxy));
    let opened = std::time::Instant::now();
    // Half the hello, the rest 1.5 s later: the handshake ends within the
    // 2 s (or, on a slow machine, fails: nothing served either way).
    tcp.write_all(&hello[..hello.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    tcp.write_all(&hello[hello.len() / 2..]).unwrap();
    while conn.is_handshaking() {
        if conn.complete_io(&mut tcp).is_err() {
            break;
        }
    }
    // The head whole, but 2.75 s after the opening at the soonest.
    let due = opened + Duration::from_millis(2750);
    std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
    let _ = conn
        .writer()
        .write_all(b"GET /late HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let _ = conn.complete_io(&mut tcp);
    let mut answer = Vec::new();
    while let Ok(n) = conn.read_tls(&mut tcp) {
        if n == 0 || conn.process_new_packets().is_err() {
            break;
        }
        let _ = conn.reader().read_to_end(&mut answer);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert_eq!(backend.requests(), 0);
}

// ---------------------------------------------------------------- the stream itself

/// A client's end of a TLS connection.
type ClientEnd = rustls::StreamOwned<ClientConnection, TcpStream>;

/// A `TlsStream` accepting a TLS 1.3 client (a key update needs 1.3),
/// its handshake done: the proxy's end, and the client's.
fn stream_pair(pki: &Pki) -> (TlsStream, ClientEnd) {
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.localhost.chain(&pki.ca), pki.localhost.key())
        .unwrap();
    let client = Arc::new(client_settings(&pki.ca, &[&rustls::version::TLS13], None));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // Room for all a test sends before the stream reads any of it.
    let room = socket2::SockRef::from(&listener).set_recv_buffer_size(1 << 20);
    room.unwrap();
    let addr = listener.local_addr().unwrap();
    let connecting = std::thread::spawn(move || {
        let tcp = raw_connect(addr);
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(client, name).unwrap();
        let mut end = rustls::StreamOwned::new(conn, tcp);
        while end.conn.is_handshaking() {
            end.conn.complete_io(&mut end.sock).unwrap();
        }
        end
    });
    let (tcp, _) = listener.accept().unwrap();
    let stream = TlsStream::accepting(tcp, Arc::new(server)).unwrap();
    stream.handshake(IO_TIMEOUT, IO_TIMEOUT).unwrap();
    (stream, connecting.join().unwrap())
}

/// Sends the records the client's session made; how many bytes they are.
fn send_records(client: &mut ClientEnd) -> usize {
    let mut records = Vec::new();
    while client.conn.wants_write() {
        client.conn.write_tls(&mut records).unwrap();
    }
    client.sock.write_all(&records).unwrap();
    records.len()
}

/// Waits (up to the socket's read timeout) until `bytes` have come to
/// `stream` and, with `and_end`, the client's end after them: a peek
/// that waits for all returns early only at the end.
fn wait_arrived(stream: &TlsStream, bytes: usize, and_end: bool) {
    let wanted = bytes + usize::from(and_end);
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); wanted];
    let flags = libc::MSG_PEEK | libc::MSG_WAITALL;
    let peeked = socket2::SockRef::from(stream.tcp()).recv_with_flags(&mut buf, flags);
    assert_eq!(peeked.unwrap(), bytes);
}

/// Whether something waits to be read is told as it moves from the
/// socket into the session and out: a pipelined request is served, and
/// a connection with nothing waiting is not held for one.
#[test]
fn a_tls_stream_says_whether_plaintext_waits_wherever_it_is() {
    let pki = Pki::new();
    let (stream, mut client) = stream_pair(&pki);
    assert!(!stream.has_waiting(), "nothing was sent");
    client.conn.writer().write_all(b"hello world").unwrap();
    let sent = send_records(&mut client);
    wait_arrived(&stream, sent, false);
    assert!(stream.has_waiting(), "the record waits in the socket");
    let mut head = [0u8; 5];
    assert_eq!(stream.read_now(&mut head).unwrap(), 5);
    assert_eq!(&head, b"hello");
    assert!(stream.has_waiting(), "the session holds the rest");
    let mut rest = [0u8; 16];
    assert_eq!(stream.read_now(&mut rest).unwrap(), 6);
    assert_eq!(&rest[..6], b" world");
    assert!(!stream.has_waiting(), "all was read");
}

/// A client that says `close_notify` has gone, though its TCP connection
/// stays open.
#[test]
fn a_tls_client_that_says_close_notify_is_gone() {
    let pki = Pki::new();
    let (stream, mut client) = stream_pair(&pki);
    assert!(!stream.peer_gone());
    client.conn.send_close_notify();
    let sent = send_records(&mut client);
    wait_arrived(&stream, sent, false);
    assert!(stream.peer_gone());
}

/// A record that carries no data (a key update) before the TCP end
/// without `close_notify` does not hide that end.
#[test]
fn a_tls_client_that_ends_after_a_key_update_is_gone() {
    let pki = Pki::new();
    let (stream, mut client) = stream_pair(&pki);
    client.conn.refresh_traffic_keys().unwrap();
    let sent = send_records(&mut client);
    client.sock.shutdown(Shutdown::Write).unwrap();
    wait_arrived(&stream, sent, true);
    assert!(stream.peer_gone());
}

/// A client that sent more than the session holds at once and then
/// ended is not gone while it is unread; what is read in full records
/// leaves ciphertext waiting, which is said to wait, and kept when the
/// idle buffers are given back: every byte is read.
#[test]
fn a_tls_client_that_ends_after_more_than_a_record_is_read_to_the_end() {
    let pki = Pki::new();
    let (stream, mut client) = stream_pair(&pki);
    // Full records and a short one, 22 bytes each more in ciphertext, to
    // end where the socket's ninth read (16 KiB and 256 bytes at a time)
    // does: rustls, holding the start of a record each time, takes less
    // of that read than it has before it holds a record's plaintext.
    let body: Vec<u8> = (0..(9 * 16_384 + 2_084u32))
        .map(|i| (i % 251) as u8)
        .collect();
    client.conn.set_buffer_limit(None);
    client.conn.writer().write_all(&body).unwrap();
    let sent = send_records(&mut client);
    client.sock.shutdown(Shutdown::Write).unwrap();
    wait_arrived(&stream, sent, true);
    assert!(!stream.peer_gone(), "its bytes wait to be read");
    let mut got = Vec::new();
    let mut record = vec![0u8; 16_384];
    // Bounded: each read gives at least a byte until the end.
    for _ in 0..=body.len() {
        let n = (&stream).read(&mut record).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&record[..n]);
        assert!(
            got.len() == body.len() || stream.has_waiting(),
            "{} bytes of {} read, the rest waits",
            got.len(),
            body.len()
        );
        stream.release_if_empty();
    }
    assert!(got == body, "{} bytes of {} read", got.len(), body.len());
    assert!(stream.cut_short(), "the end came without close_notify");
}

/// A connection whose buffers were given back (idle a while) waits for
/// its next request without taking them again: storage for a record is
/// taken once one comes and is read.
#[test]
fn a_tls_stream_waits_without_buffers_once_given_back() {
    let pki = Pki::new();
    let (stream, mut client) = stream_pair(&pki);
    client.conn.writer().write_all(b"first").unwrap();
    send_records(&mut client);
    let mut buf = [0u8; 16];
    assert_eq!((&stream).read(&mut buf).unwrap(), 5);
    assert!(stream.held_buffers() > 0, "a record was read into one");
    stream.release_if_empty();
    assert_eq!(stream.held_buffers(), 0);
    // A wait that ends with nothing, as an idle connection's may.
    assert!(!stream.wait_idle(Duration::from_millis(100)).unwrap());
    assert_eq!(stream.held_buffers(), 0, "the wait took a buffer");
    client.conn.writer().write_all(b"second").unwrap();
    send_records(&mut client);
    assert!(stream.wait_idle(IO_TIMEOUT).unwrap());
    assert_eq!(stream.held_buffers(), 0, "bytes came, none read yet");
    assert_eq!((&stream).read(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"second");
    // Something waiting already, in the session or the socket: no wait.
    client.conn.writer().write_all(b"third").unwrap();
    send_records(&mut client);
    assert!(stream.wait_idle(IO_TIMEOUT).unwrap());
}

/// A connection let go without a word (an idle one the proxy closes)
/// still says `close_notify`: the client sees an orderly end, not a
/// truncation.
#[test]
fn a_tls_stream_dropped_says_close_notify() {
    let pki = Pki::new();
    let (stream, mut client) = stream_pair(&pki);
    drop(stream);
    let mut buf = [0u8; 16];
    assert_eq!(client.read(&mut buf).unwrap(), 0);
    let state = client.conn.process_new_packets().unwrap();
    assert!(state.peer_has_closed());
}

/// A write watched for an answer (an upload to a TLS backend) that is
/// not answered sends every buffer, and says so with the bytes it sent.
#[test]
fn a_tls_write_not_answered_sends_all_its_buffers() {
    let pki = Pki::new();
    let (stream, mut client) = stream_pair(&pki);
    let big = vec![b'x'; 40_000];
    let mut bufs = [
        io::IoSlice::new(b"head\r\n"),
        io::IoSlice::new(&big),
        io::IoSlice::new(b"tail"),
    ];
    let sent = stream
        .write_all_unless_answered(&mut bufs, || false)
        .unwrap();
    let total = 6 + big.len() + 4;
    let whole = inverso::http::conn::Sent {
        whole: true,
        bytes: total as u64,
    };
    assert_eq!(sent, whole);
    let mut got = vec![0u8; total];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got[..6], b"head\r\n");
    assert!(got[6..total - 4] == big[..]);
    assert_eq!(&got[total - 4..], b"tail");
}

/// A write that does not wait (a tunnel's) keeps the records the socket
/// did not take, says so, takes nothing more until they went, and sends
/// them at the flush: the client gets every byte, in order.
#[test]
fn a_tls_write_that_does_not_wait_keeps_what_the_socket_refused() {
    let pki = Pki::new();
    let (stream, mut client) = stream_pair(&pki);
    assert!(!stream.has_unsent(), "nothing was written");
    let chunk: Vec<u8> = (0..8192u32).map(|i| (i % 253) as u8).collect();
    let mut written = Vec::new();
    // Bounded: the socket's buffers hold some MiB, the client reads nothing.
    for _ in 0..100_000 {
        let taken = stream.write_now(&[io::IoSlice::new(&chunk)]).unwrap();
        written.extend_from_slice(&chunk[..taken]);
        if stream.has_unsent() {
            break;
        }
    }
    assert!(stream.has_unsent(), "the socket filled up");
    assert_eq!(
        stream.write_now(&[io::IoSlice::new(&chunk)]).unwrap(),
        0,
        "nothing more is taken while records wait"
    );
    let reading = std::thread::spawn(move || {
        let mut got = vec![0u8; written.len()];
        client.read_exact(&mut got).unwrap();
        assert!(got == written, "the bytes came in order");
    });
    (&stream).flush().unwrap();
    assert!(!stream.has_unsent(), "the flush sent them");
    reading.join().unwrap();
}

/// A write that does not wait still says that the connection broke (a
/// client that reset it), so a tunnel ends rather than writing on.
#[test]
fn a_tls_write_that_does_not_wait_says_the_connection_broke() {
    let pki = Pki::new();
    let (stream, client) = stream_pair(&pki);
    // No lingering: the close resets the connection.
    socket2::SockRef::from(&client.sock)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    // Bounded: the reset is seen at the latest by the write after the
    // first one it answers.
    let broke = (0..1000).any(|_| stream.write_now(&[io::IoSlice::new(b"more")]).is_err());
    assert!(broke, "the reset was not reported");
}

/// The records the client's session makes of `plain`, not sent.
fn records_of(client: &mut ClientEnd, plain: &[u8]) -> Vec<u8> {
    client.conn.writer().write_all(plain).unwrap();
    let mut records = Vec::new();
    while client.conn.wants_write() {
        client.conn.write_tls(&mut records).unwrap();
    }
    records
}

/// Waits until nothing is left unread in `stream`'s socket: a read under
/// way on another thread has taken what was sent.
fn wait_taken(stream: &TlsStream) {
    // Bounded: 5 s in all.
    for _ in 0..500 {
        let peeked = inverso::http::conn::peek(stream.tcp());
        if matches!(peeked, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the read took nothing of what came");
}

/// A read of `stream`, and what it gives as text.
fn read_text(stream: &TlsStream) -> io::Result<String> {
    let mut buf = [0u8; 256];
    let mut reader = stream;
    let n = reader.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A record cut in two, its rest sent after a pause longer than the
/// grace a record's start gets but well within the read's timeout: the
/// read waits for it, as a plain socket's read would, and deciphers the
/// whole.
#[test]
fn a_record_whose_rest_comes_within_the_read_timeout_is_read_whole() {
    let pki = Pki::new();
    let (stream, mut client) = stream_pair(&pki);
    let records = records_of(&mut client, b"split by a pause");
    let (start, rest) = records.split_at(records.len() / 2);
    std::thread::scope(|s| {
        let reading = s.spawn(|| read_text(&stream));
        client.sock.write_all(start).unwrap();
        wait_taken(&stream);
        std::thread::sleep(Duration::from_secs(2));
        client.sock.write_all(rest).unwrap();
        assert_eq!(reading.join().unwrap().unwrap(), "split by a pause");
    });
}

/// The rest of a record whose start came after the read's timeout had
/// run from the wait's start (the timeout shortened under the waiting
/// read, as a start that comes just before the timeout leaves it) still
/// gets its second.
#[test]
fn the_rest_of_a_record_begun_late_in_the_wait_gets_a_second_more() {
    let pki = Pki::new();
    let (stream, mut client) = stream_pair(&pki);
    let records = records_of(&mut client, b"begun late");
    let (start, rest) = records.split_at(records.len() / 2);
    std::thread::scope(|s| {
        let reading = s.spawn(|| read_text(&stream));
        // The read waits with the timeout it began with (IO_TIMEOUT); the
        // rest is waited for with this one, reckoned from the wait's start.
        std::thread::sleep(Duration::from_millis(500));
        stream
            .tcp()
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        std::thread::sleep(Duration::from_secs(1));
        client.sock.write_all(start).unwrap();
        wait_taken(&stream);
        std::thread::sleep(Duration::from_millis(200));
        client.sock.write_all(rest).unwrap();
        assert_eq!(reading.join().unwrap().unwrap(), "begun late");
    });
}

/// A record trickled in three pieces, each well within the socket's
/// timeout of the one before, the last after that timeout reckoned from
/// the start of the read: the read ends then, `TimedOut`, rather than
/// giving each piece a timeout of its own.
#[test]
fn a_trickled_record_times_out_from_the_start_of_the_read() {
    let pki = Pki::new();
    let (stream, mut client) = stream_pair(&pki);
    let limit = Duration::from_secs(3);
    stream.tcp().set_read_timeout(Some(limit)).unwrap();
    let records = records_of(&mut client, &[b'x'; 200]);
    let third = records.len() / 3;
    std::thread::scope(|s| {
        let reading = s.spawn(|| read_text(&stream));
        // At 0, half the timeout, and a quarter of it past its end,
        // counted from when the read has its first piece (its wait began
        // before: a reading thread slow to start moves nothing later).
        client.sock.write_all(&records[..third]).unwrap();
        wait_taken(&stream);
        std::thread::sleep(limit / 2);
        client.sock.write_all(&records[third..2 * third]).unwrap();
        std::thread::sleep(limit * 3 / 4);
        let _ = client.sock.write_all(&records[2 * third..]);
        let read = reading.join().unwrap();
        assert!(
            matches!(read, Err(ref e) if e.kind() == io::ErrorKind::TimedOut),
            "{read:?}"
        );
    });
}

/// A record that fails its check (a byte changed on the way) is an
/// error for the read, not the end of the stream nor a wait for more.
#[test]
fn a_record_that_fails_to_decrypt_is_an_error_not_an_end() {
    let pki = Pki::new();
    let (stream, mut client) = stream_pair(&pki);
    let mut records = records_of(&mut client, b"tampered with");
    *records.last_mut().unwrap() ^= 1;
    client.sock.write_all(&records).unwrap();
    // Nothing more comes: a read that waited on would see the end.
    client.sock.shutdown(Shutdown::Write).unwrap();
    let read = read_text(&stream);
    assert!(
        matches!(read, Err(ref e) if e.kind() == io::ErrorKind::InvalidData),
        "{read:?}"
    );
    assert!(!stream.cut_short(), "no end was read");
}

/// A connection reset while the rest of a record is awaited says so: the
/// reset is an error, not an end.
#[test]
fn a_reset_within_a_record_is_an_error_not_an_end() {
    let pki = Pki::new();
    let (stream, mut client) = stream_pair(&pki);
    let records = records_of(&mut client, b"cut by a reset");
    let start = &records[..records.len() / 2];
    client.sock.write_all(start).unwrap();
    // No lingering: the close resets the connection.
    socket2::SockRef::from(&client.sock)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    // The start is read first, then the reset seen as the record's rest
    // is looked for.
    wait_arrived(&stream, start.len(), true);
    let read = read_text(&stream);
    assert!(
        matches!(read, Err(ref e) if e.kind() == io::ErrorKind::ConnectionReset),
        "{read:?}"
    );
    assert!(!stream.cut_short(), "a reset is no end");
}
