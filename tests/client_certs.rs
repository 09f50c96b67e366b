//! Client certificates on `tls_port` (mutual TLS: `tls_verify_client`,
//! `tls_client_ca`, `tls_client_crl`) over real sockets: a rustls client
//! (`support::tls_client`) that shows certificates of test authorities
//! (made with rcgen in `support::pki`), and a backend that records what
//! it was sent.
//!
//! What is refused at the handshake (none with `on`, another authority's,
//! an expired one, one not meant for clients, a revoked one, one whose
//! revocation status is unknown, any under a revocation list past its
//! next update) and counted as a failed handshake; what the backend is
//! told (RFC 9440's `Client-Cert` and `Client-Cert-Chain`, which no
//! client can write, spell otherwise or have dropped); sessions resumed
//! after the certificate expired, or was revoked by a reload; the log's
//! `$ssl_client_verify` and `$ssl_client_fingerprint`; the cache taking a
//! certificate as `Authorization`; and the configuration's refusals.
//!
//! One test is ignored: it shows an implementation bug (see its reason).

mod support;

use inverso::config::{Config, Loader};
use rustls::client::{Resumption, Tls12Resumption};
use rustls::{ClientConfig, SupportedProtocolVersion};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::pki::{Ca, Pki};
use support::tls_client::{client_settings, Shown, TlsClient};
use support::*;

// ---------------------------------------------------------------- setting up

/// The proxy's own certificate (of `pki`'s authority), the authority of
/// clients' certificates, and the directory their files are written to.
struct Mtls {
    pki: Pki,
    clients: Ca,
    /// `tls_client_ca`: the clients' authority's certificate.
    client_ca: String,
}

impl Mtls {
    fn new() -> Mtls {
        let pki = Pki::new();
        let clients = Ca::named("clients CA");
        let client_ca = clients.write(pki.dir.path(), "clients-ca.pem");
        Mtls {
            client_ca: client_ca.display().to_string(),
            pki,
            clients,
        }
    }

    /// Writes `text` to `name` in the test's directory; its path.
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.pki.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// proxy.conf: `target`, HTTPS on any free port, clients checked as
    /// `verify` says against the clients' authority, then `more`.
    fn conf(&self, target: SocketAddr, verify: &str, more: &str) -> String {
        format!(
            "targets = {target}\ntls_port = 0\ntls_certificates = {}\n\
             tls_verify_client = {verify}\ntls_client_ca = {}\n{more}",
            self.pki.entry, self.client_ca
        )
    }

    /// A client (TLS 1.2 or 1.3) that shows `shown`, if anything.
    fn client(&self, shown: Option<Shown>) -> Arc<ClientConfig> {
        self.client_with(rustls::DEFAULT_VERSIONS, shown, None)
    }

    /// A client that speaks `versions`, shows `shown` and resumes as
    /// `resumption` says (rustls's default when `None`).
    fn client_with(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        shown: Option<Shown>,
        resumption: Option<Resumption>,
    ) -> Arc<ClientConfig> {
        let mut config = client_settings(&self.pki.ca, versions, shown);
        if let Some(resumption) = resumption {
            config.resumption = resumption;
        }
        Arc::new(config)
    }
}

/// Starts a proxy on `text` (read by the loader), the admin listener on,
/// then `tweak`.
fn start(text: &str, tweak: impl FnOnce(&mut Config)) -> Proxy {
    let from_text = from_file_with_admin(text);
    start_proxy(&[], move |c| {
        from_text(c);
        tweak(c);
    })
}

fn tls_addr(proxy: &Proxy) -> SocketAddr {
    proxy.handle().tls_addr().expect("tls_port is on")
}

/// Connects to the proxy's TLS port as `localhost`.
fn connect(proxy: &Proxy, config: &Arc<ClientConfig>) -> io::Result<TlsClient> {
    TlsClient::try_connect(tls_addr(proxy), config, "localhost")
}

/// A handshake, then `GET path` with `fields` on it: the response, or
/// what failed. With client certificates, a refusal may come after the
/// client's side of the handshake is done (TLS 1.3: the client has sent
/// its certificate and Finished), so it is the request that fails then.
fn get(
    proxy: &Proxy,
    config: &Arc<ClientConfig>,
    path: &str,
    fields: &[(&str, &str)],
) -> io::Result<Response> {
    connect(proxy, config)?.try_get(path, fields)
}

/// [`get`], expected to be answered.
#[track_caller]
fn served(proxy: &Proxy, config: &Arc<ClientConfig>, path: &str) -> Response {
    get(proxy, config, path, &[]).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// [`get`], expected to be refused at the handshake with `alert` (as
/// rustls names it): the error, as a message.
#[track_caller]
fn refused(proxy: &Proxy, config: &Arc<ClientConfig>, path: &str, alert: &str) -> String {
    match get(proxy, config, path, &[]) {
        Ok(r) => panic!("GET {path} answered {}:\n{}", r.status, r.head.raw),
        Err(e) => {
            let why = e.to_string();
            assert_eq!(why, format!("received fatal alert: {alert}"), "GET {path}");
            why
        }
    }
}

const FAILED: &str = "inverso_tls_handshakes_total{result=\"failed\"}";

fn failed_handshakes(proxy: &Proxy) -> u64 {
    proxy.metric(FAILED).unwrap_or(0)
}

/// Waits until the failed handshakes counted reach `value`; asserts
/// they do (the proxy counts a failure after the client saw it).
#[track_caller]
fn assert_failed_handshakes(proxy: &Proxy, value: u64) {
    let mut last = 0;
    let reached = wait_until(WAIT_LIMIT, || {
        last = failed_handshakes(proxy);
        last == value
    });
    assert!(reached, "{FAILED} is {last}, not {value}");
}

/// RFC 8941's byte sequence of `der`: `:` base64 `:`, as `Client-Cert`
/// carries a certificate.
fn byte_sequence(der: &[u8]) -> String {
    format!(":{}:", base64(der))
}

/// Lower-case hex SHA-1 of `der`: `openssl x509 -fingerprint -sha1`
/// without the colons.
fn fingerprint(der: &[u8]) -> String {
    sha1(der).iter().map(|b| format!("{b:02x}")).collect()
}

/// The values of every field of `seen` that a backend reading `_` as
/// `-` takes for `name`, in order.
fn read_as(seen: &Seen, name: &str) -> Vec<String> {
    seen.head
        .headers
        .iter()
        .filter(|(n, _)| n.replace('_', "-").eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

/// The request the backend got for `path`.
#[track_caller]
fn seen_at(backend: &Backend, path: &str) -> Seen {
    let seen = backend.seen();
    let found = seen.iter().find(|s| s.path() == path).cloned();
    found.unwrap_or_else(|| {
        let paths: Vec<&str> = seen.iter().map(|s| s.path()).collect();
        panic!("the backend got no {path}, only {paths:?}")
    })
}

fn an_hour() -> Duration {
    Duration::from_secs(3600)
}

fn a_day() -> Duration {
    Duration::from_secs(86_400)
}

// ---------------------------------------------------------------- verification

/// `tls_verify_client = on`: a client without a certificate, with one of
/// another authority, an expired one, or one meant for servers alone, is
/// refused at the handshake (each counted as a failed handshake, none
/// reaching the backend); one of the clients' authority is served, and
/// the backend is told its certificate in `Client-Cert`, and the
/// intermediates it sent after it in `Client-Cert-Chain`, in its order.
#[test]
fn required_certificates_are_checked_and_the_valid_one_reaches_the_backend() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let proxy = start(&m.conf(backend.addr, "on", ""), |_| {});
    let now = SystemTime::now();
    let stranger = Ca::named("clients CA");
    // Each with the alert rustls says why in.
    let refusals = [
        ("none", None, "CertificateRequired"),
        (
            "another authority's",
            Some(Ca::named("other CA").client_leaf("alice").shown()),
            "UnknownCA",
        ),
        (
            "an impostor's, under the clients' authority's name",
            Some(stranger.client_leaf("alice").shown()),
            "DecryptError",
        ),
        (
            "expired yesterday",
            Some(
                m.clients
                    .client_leaf_valid("alice", now - 2 * a_day(), now - a_day())
                    .shown(),
            ),
            "CertificateExpired",
        ),
        (
            "valid from tomorrow",
            Some(
                m.clients
                    .client_leaf_valid("alice", now + a_day(), now + 2 * a_day())
                    .shown(),
            ),
            "CertificateExpired",
        ),
        (
            "meant for servers alone",
            Some(m.clients.leaf(&["alice"]).shown()),
            "UnsupportedCertificate",
        ),
    ];
    let mut failures = failed_handshakes(&proxy);
    for (i, (what, shown, alert)) in refusals.into_iter().enumerate() {
        eprintln!("{what}");
        refused(&proxy, &m.client(shown), &format!("/refused-{i}"), alert);
        failures += 1;
        assert_failed_handshakes(&proxy, failures);
    }
    assert_eq!(
        backend.requests(),
        0,
        "a refused client reached the backend"
    );

    // Valid, alone.
    let alice = m.clients.client_leaf("alice");
    let r = served(&proxy, &m.client(Some(alice.shown())), "/alice");
    assert_eq!(r.status, 200);
    let seen = seen_at(&backend, "/alice");
    assert_eq!(
        seen.head.get_all("Client-Cert").collect::<Vec<_>>(),
        [byte_sequence(&alice.der)],
        "{}",
        seen.head.raw
    );
    assert!(!seen.head.has("Client-Cert-Chain"), "{}", seen.head.raw);

    // Issued by an intermediate the client sends after its own (the
    // proxy trusts the root alone); then with the root too, and another
    // authority's certificate that the check has no use for: the chain
    // is what the client sent, in its order.
    let intermediate = m.clients.intermediate("clients issuing CA");
    let bob = intermediate.client_leaf("bob");
    let r = served(
        &proxy,
        &m.client(Some(bob.shown_with(&[&intermediate.der]))),
        "/bob",
    );
    assert_eq!(r.status, 200);
    let sent_more = bob.shown_with(&[&stranger.der, &intermediate.der, &m.clients.der]);
    let r = served(&proxy, &m.client(Some(sent_more)), "/bob-more");
    assert_eq!(r.status, 200);
    let seen = seen_at(&backend, "/bob");
    assert_eq!(
        seen.head.get_all("Client-Cert").collect::<Vec<_>>(),
        [byte_sequence(&bob.der)]
    );
    assert_eq!(
        seen.head.get_all("Client-Cert-Chain").collect::<Vec<_>>(),
        [byte_sequence(&intermediate.der)]
    );
    let seen = seen_at(&backend, "/bob-more");
    assert_eq!(seen.field_or("Client-Cert", "-"), byte_sequence(&bob.der));
    let chain = [&stranger.der, &intermediate.der, &m.clients.der]
        .map(|der| byte_sequence(der))
        .join(", ");
    assert_eq!(seen.field_or("Client-Cert-Chain", "-"), chain);
    // The intermediate alone, without the client sending it: the proxy
    // has no path to the root.
    refused(
        &proxy,
        &m.client(Some(bob.shown())),
        "/bob-alone",
        "UnknownCA",
    );
    assert_eq!(backend.requests(), 3);
}

/// `tls_verify_client = optional`: a client without a certificate is
/// served, and the backend gets no `Client-Cert`; one with a valid
/// certificate is served with it; one with a certificate not valid is
/// refused at the handshake, as with `on`.
#[test]
fn optional_serves_a_client_without_a_certificate_and_refuses_an_invalid_one() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let proxy = start(&m.conf(backend.addr, "optional", ""), |_| {});
    let r = served(&proxy, &m.client(None), "/anonymous");
    assert_eq!(r.status, 200);
    let alice = m.clients.client_leaf("alice");
    let r = served(&proxy, &m.client(Some(alice.shown())), "/alice");
    assert_eq!(r.status, 200);
    let before = failed_handshakes(&proxy);
    let now = SystemTime::now();
    let invalid = [
        (Ca::named("other CA").client_leaf("mallory"), "UnknownCA"),
        (
            m.clients
                .client_leaf_valid("old", now - 2 * a_day(), now - a_day()),
            "CertificateExpired",
        ),
        (m.clients.leaf(&["server"]), "UnsupportedCertificate"),
    ];
    for (i, (leaf, alert)) in invalid.iter().enumerate() {
        let path = format!("/invalid-{i}");
        refused(&proxy, &m.client(Some(leaf.shown())), &path, alert);
    }
    assert_failed_handshakes(&proxy, before + invalid.len() as u64);

    let paths: Vec<String> = backend.seen().iter().map(|s| s.path().into()).collect();
    assert_eq!(paths, ["/anonymous", "/alice"]);
    let anonymous = seen_at(&backend, "/anonymous");
    assert!(!anonymous.head.has("Client-Cert"), "{}", anonymous.head.raw);
    assert!(!anonymous.head.has("Client-Cert-Chain"));
    assert_eq!(
        seen_at(&backend, "/alice").field_or("Client-Cert", "-"),
        byte_sequence(&alice.der)
    );
}

// ---------------------------------------------------------------- forgery

/// What a client writes in `Client-Cert` and `Client-Cert-Chain`, in any
/// case and several times over, reaches the backend from nobody: not over
/// plain HTTP, not from a `real_ip_from` proxy in front, not over TLS
/// without a certificate, and not beside the certificate a client showed
/// (whose fields are the proxy's alone, once each).
#[test]
fn client_cert_fields_a_client_writes_never_reach_the_backend() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let trusted = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let more = format!("real_ip_from = {trusted}\n");
    let proxy = start(&m.conf(backend.addr, "optional", &more), |_| {});
    let forged: &[(&str, &str)] = &[
        ("Client-Cert", ":Zm9yZ2Vk:"),
        ("client-cert", ":c2Vjb25k:"),
        ("CLIENT-CERT", ":dGhpcmQ=:"),
        ("Client-Cert-Chain", ":Zm9yZ2Vk:"),
        ("cLiEnT-cErT-cHaIn", ":Zm9yZ2Vk:, :c2Vjb25k:"),
        ("X-Marker", "sent"),
    ];
    let plain = proxy.exchange(|c| c.get_with("/plain", forged));
    assert_eq!(plain.status, 200);
    let mut fronted = Client::connect_from(trusted, proxy.addr);
    let r = fronted.get_with(
        "/fronted",
        &[&[("X-Forwarded-For", "192.0.2.7")], forged].concat(),
    );
    assert_eq!(r.status, 200);
    drop(fronted);
    let r = get(&proxy, &m.client(None), "/tls-anonymous", forged).unwrap();
    assert_eq!(r.status, 200);
    let alice = m.clients.client_leaf("alice");
    let r = get(&proxy, &m.client(Some(alice.shown())), "/tls-alice", forged).unwrap();
    assert_eq!(r.status, 200);
    let intermediate = m.clients.intermediate("clients issuing CA");
    let bob = intermediate.client_leaf("bob");
    let shown = bob.shown_with(&[&intermediate.der]);
    let r = get(&proxy, &m.client(Some(shown)), "/tls-bob", forged).unwrap();
    assert_eq!(r.status, 200);

    for path in ["/plain", "/fronted", "/tls-anonymous"] {
        let seen = seen_at(&backend, path);
        // The request went through, fields and all: only these are gone.
        assert_eq!(seen.field_or("X-Marker", "-"), "sent", "{path}");
        assert_eq!(
            read_as(&seen, "client-cert"),
            Vec::<String>::new(),
            "{path}"
        );
        assert_eq!(
            read_as(&seen, "client-cert-chain"),
            Vec::<String>::new(),
            "{path}"
        );
    }
    // The trusted peer was taken as one (its X-Forwarded-For was read).
    assert_eq!(
        seen_at(&backend, "/fronted").field_or("X-Real-IP", "-"),
        "192.0.2.7"
    );
    let seen = seen_at(&backend, "/tls-alice");
    assert_eq!(read_as(&seen, "client-cert"), [byte_sequence(&alice.der)]);
    assert_eq!(read_as(&seen, "client-cert-chain"), Vec::<String>::new());
    let seen = seen_at(&backend, "/tls-bob");
    assert_eq!(read_as(&seen, "client-cert"), [byte_sequence(&bob.der)]);
    assert_eq!(
        read_as(&seen, "client-cert-chain"),
        [byte_sequence(&intermediate.der)]
    );
}

/// With `underscores_in_headers = on`, `Client_Cert` and
/// `Client_Cert_Chain` (which backends that read `_` as `-` take for the
/// proxy's fields) reach the backend from nobody, whereas a field of no
/// meaning to the proxy written with `_` does.
#[test]
fn the_underscore_spelling_of_client_cert_never_reaches_the_backend() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let more = "underscores_in_headers = on\n";
    let proxy = start(&m.conf(backend.addr, "optional", more), |_| {});
    let forged: &[(&str, &str)] = &[
        ("Client_Cert", ":Zm9yZ2Vk:"),
        ("client_cert", ":c2Vjb25k:"),
        ("CLIENT_CERT_CHAIN", ":Zm9yZ2Vk:"),
        ("Client_Cert-Chain", ":Zm9yZ2Vk:"),
        ("X_Marker", "sent"),
    ];
    let plain = proxy.exchange(|c| c.get_with("/plain", forged));
    assert_eq!(plain.status, 200);
    let r = get(&proxy, &m.client(None), "/tls-anonymous", forged).unwrap();
    assert_eq!(r.status, 200);
    let alice = m.clients.client_leaf("alice");
    let r = get(&proxy, &m.client(Some(alice.shown())), "/tls-alice", forged).unwrap();
    assert_eq!(r.status, 200);
    for path in ["/plain", "/tls-anonymous", "/tls-alice"] {
        let seen = seen_at(&backend, path);
        assert_eq!(
            seen.field_or("X_Marker", "-"),
            "sent",
            "{path}:\n{}",
            seen.head.raw
        );
        let mine = match path {
            "/tls-alice" => vec![byte_sequence(&alice.der)],
            _ => vec![],
        };
        assert_eq!(
            read_as(&seen, "client-cert"),
            mine,
            "{path}:\n{}",
            seen.head.raw
        );
        assert_eq!(
            read_as(&seen, "client-cert-chain"),
            Vec::<String>::new(),
            "{path}"
        );
    }
}

/// A client that names `Client-Cert` and `Client-Cert-Chain` in
/// `Connection` does not have the proxy drop the ones it wrote.
#[test]
fn naming_client_cert_in_connection_leaves_the_proxys_own() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let proxy = start(&m.conf(backend.addr, "on", ""), |_| {});
    let intermediate = m.clients.intermediate("clients issuing CA");
    let bob = intermediate.client_leaf("bob");
    let config = m.client(Some(bob.shown_with(&[&intermediate.der])));
    let mut client = connect(&proxy, &config).unwrap();
    let connection = [(
        "Connection",
        "keep-alive, Client-Cert, client-cert-chain, X-Dropped",
    )];
    let named = [&connection[..], &[("X-Dropped", "yes")]].concat();
    assert_eq!(client.try_get("/named", &named).unwrap().status, 200);
    assert_eq!(client.try_get("/plain", &[]).unwrap().status, 200);
    drop(client);
    for path in ["/named", "/plain"] {
        let seen = seen_at(&backend, path);
        assert_eq!(
            read_as(&seen, "client-cert"),
            [byte_sequence(&bob.der)],
            "{path}"
        );
        assert_eq!(
            read_as(&seen, "client-cert-chain"),
            [byte_sequence(&intermediate.der)],
            "{path}"
        );
    }
    // What else Connection named was dropped: the field was read.
    assert!(!seen_at(&backend, "/named").head.has("X-Dropped"));
}

// ---------------------------------------------------------------- revocation

/// With `tls_client_crl`, a certificate the list revokes is refused and
/// one it does not is served; a certificate whose issuer has no list in
/// the file (its status unknown) is refused; a list past its next update
/// refuses every certificate at the handshake (no client gets in on a
/// list that may miss a revocation).
#[test]
fn a_revocation_list_refuses_the_revoked_the_unknown_and_all_once_out_of_date() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let intermediate = m.clients.intermediate("clients issuing CA");
    let good = m.clients.client_leaf("good");
    let revoked = m.clients.client_leaf("revoked");
    let below = intermediate.client_leaf("below");
    let later = SystemTime::now() + a_day();
    let crl = m.write("clients.crl", &m.clients.crl(&[&revoked], later));
    let text = m.conf(backend.addr, "on", &format!("tls_client_crl = {crl}\n"));
    let proxy = start(&text, |_| {});
    let r = served(&proxy, &m.client(Some(good.shown())), "/good");
    assert_eq!(r.status, 200);
    refused(
        &proxy,
        &m.client(Some(revoked.shown())),
        "/revoked",
        "CertificateRevoked",
    );
    // Issued by the intermediate, which has no list in the file.
    let shown = below.shown_with(&[&intermediate.der]);
    refused(
        &proxy,
        &m.client(Some(shown)),
        "/unknown-status",
        "UnknownCA",
    );
    assert_failed_handshakes(&proxy, 2);

    // The intermediate's list too: now its certificates are known.
    let both = m.clients.crl(&[&revoked], later) + &intermediate.crl(&[], later);
    let crl = m.write("both.crl", &both);
    let text = m.conf(backend.addr, "on", &format!("tls_client_crl = {crl}\n"));
    let second = start(&text, |_| {});
    let shown = below.shown_with(&[&intermediate.der]);
    let r = served(&second, &m.client(Some(shown)), "/known-status");
    assert_eq!(r.status, 200);
    refused(
        &second,
        &m.client(Some(revoked.shown())),
        "/revoked-again",
        "CertificateRevoked",
    );

    // Out of date since an hour ago, revoking nothing.
    let stale = m.clients.crl(&[], SystemTime::now() - an_hour());
    let crl = m.write("stale.crl", &stale);
    let text = m.conf(backend.addr, "on", &format!("tls_client_crl = {crl}\n"));
    let third = start(&text, |_| {});
    // rustls says UnknownCA for a status it cannot know.
    refused(
        &third,
        &m.client(Some(good.shown())),
        "/stale-good",
        "UnknownCA",
    );
    assert_failed_handshakes(&third, 1);

    let paths: Vec<String> = backend.seen().iter().map(|s| s.path().into()).collect();
    assert_eq!(paths, ["/good", "/known-status"]);
}

/// A reload whose list revokes a certificate: the client is refused at a
/// new handshake and at the resumption of a session made before (by a
/// TLS 1.3 ticket and a TLS 1.2 session ID), while a certificate not
/// revoked is still served; a connection kept alive from before keeps
/// the certificate it showed until it closes, as the README says.
#[test]
fn a_reload_that_revokes_refuses_new_handshakes_and_resumptions() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let alice = m.clients.client_leaf("alice");
    let carol = m.clients.client_leaf("carol");
    let later = SystemTime::now() + a_day();
    let empty = m.write("empty.crl", &m.clients.crl(&[], later));
    let before = m.conf(backend.addr, "on", &format!("tls_client_crl = {empty}\n"));
    let proxy = start(&before, |_| {});
    let by_id = Resumption::in_memory_sessions(16).tls12_resumption(Tls12Resumption::SessionIdOnly);
    let sessions = [
        (
            "TLS 1.3 ticket",
            m.client_with(
                &[&rustls::version::TLS13],
                Some(alice.shown()),
                Some(Resumption::in_memory_sessions(16)),
            ),
        ),
        (
            "TLS 1.2 session ID",
            m.client_with(&[&rustls::version::TLS12], Some(alice.shown()), Some(by_id)),
        ),
    ];
    // A session each, and it resumes while nothing changed.
    for (what, config) in &sessions {
        let mut first = connect(&proxy, config).unwrap();
        assert!(!first.resumed(), "{what}");
        assert_eq!(first.try_get("/first", &[]).unwrap().status, 200);
        let mut again = connect(&proxy, config).unwrap();
        assert!(again.resumed(), "{what}: not resumed before the reload");
        assert_eq!(again.try_get("/resumed", &[]).unwrap().status, 200);
    }
    let mut kept = connect(&proxy, &m.client(Some(alice.shown()))).unwrap();
    assert_eq!(kept.try_get("/kept-before", &[]).unwrap().status, 200);
    let before_reload = backend.requests();
    let failures = failed_handshakes(&proxy);

    let revoking = m.write("revoking.crl", &m.clients.crl(&[&alice], later));
    let after = m.conf(
        backend.addr,
        "on",
        &format!("tls_client_crl = {revoking}\n"),
    );
    proxy.reload(&[], from_file_with_admin(&after));

    // The reload changed the lists: the sessions are forgotten, and the
    // whole handshake the client is taken to refuses the certificate.
    for (what, config) in &sessions {
        eprintln!("{what}");
        refused(&proxy, config, "/resumed-after", "CertificateRevoked");
    }
    let fresh = m.client_with(
        rustls::DEFAULT_VERSIONS,
        Some(alice.shown()),
        Some(Resumption::disabled()),
    );
    refused(&proxy, &fresh, "/full-after", "CertificateRevoked");
    assert_failed_handshakes(&proxy, failures + 3);
    let r = served(&proxy, &m.client(Some(carol.shown())), "/carol");
    assert_eq!(r.status, 200);
    assert_eq!(kept.try_get("/kept-after", &[]).unwrap().status, 200);
    drop(kept);

    let paths: Vec<String> = backend.seen()[before_reload..]
        .iter()
        .map(|s| s.path().into())
        .collect();
    assert_eq!(paths, ["/carol", "/kept-after"]);
    assert_eq!(
        seen_at(&backend, "/kept-after").field_or("Client-Cert", "-"),
        byte_sequence(&alice.der)
    );
}

// ---------------------------------------------------------------- resumption

/// A session made while the client's certificate was valid is not
/// resumed once it has expired, by a TLS 1.3 ticket, a TLS 1.2 session ID
/// or a TLS 1.2 ticket alike: rustls does not check a resumed session's
/// certificate, the proxy checks it again as of now. The connection
/// fails, the backend gets nothing, and it counts as a failed handshake.
#[test]
fn a_session_is_not_resumed_once_its_certificate_has_expired() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let proxy = start(&m.conf(backend.addr, "on", ""), |_| {});
    // Valid for three to four more seconds: time enough for the six
    // handshakes below (a few milliseconds each).
    let now = SystemTime::now();
    let whole = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let not_after = UNIX_EPOCH + Duration::from_secs(whole + 4);
    let short = m
        .clients
        .client_leaf_valid("short", now - an_hour(), not_after);
    let tls12 = &[&rustls::version::TLS12][..];
    let tls13 = &[&rustls::version::TLS13][..];
    let shown = || Some(short.shown());
    let sessions = [
        (
            "TLS 1.3 ticket",
            m.client_with(tls13, shown(), Some(Resumption::in_memory_sessions(16))),
        ),
        (
            "TLS 1.2 session ID",
            m.client_with(
                tls12,
                shown(),
                Some(
                    Resumption::in_memory_sessions(16)
                        .tls12_resumption(Tls12Resumption::SessionIdOnly),
                ),
            ),
        ),
        (
            "TLS 1.2 ticket",
            m.client_with(tls12, shown(), Some(Resumption::in_memory_sessions(16))),
        ),
    ];
    for (what, config) in &sessions {
        let mut first = connect(&proxy, config).unwrap();
        assert!(!first.resumed(), "{what}");
        assert_eq!(first.try_get("/valid", &[]).unwrap().status, 200);
        // Resumed while valid: the check of a resumed session takes it.
        let mut again = connect(&proxy, config).unwrap();
        assert!(again.resumed(), "{what}: not resumed while valid");
        assert_eq!(again.try_get("/resumed-valid", &[]).unwrap().status, 200);
    }
    let served_while_valid = backend.requests();
    assert_eq!(served_while_valid, 2 * sessions.len());
    assert!(
        SystemTime::now() < not_after,
        "the handshakes took longer than the certificate's validity: too slow a machine"
    );
    // Bounded: the certificate's end is four seconds away at most.
    let expired = not_after + Duration::from_secs(1);
    while SystemTime::now() < expired {
        std::thread::sleep(Duration::from_millis(50));
    }
    let failures = failed_handshakes(&proxy);
    // The same certificate in a whole handshake: refused, as expired.
    let fresh = m.client_with(
        rustls::DEFAULT_VERSIONS,
        Some(short.shown()),
        Some(Resumption::disabled()),
    );
    refused(&proxy, &fresh, "/expired-full", "CertificateExpired");
    for (what, config) in &sessions {
        let got = connect(&proxy, config).and_then(|mut c| {
            let resumed = c.resumed();
            c.try_get("/expired-resumed", &[])
                .map(|r| (resumed, r.status))
        });
        match got {
            Ok((resumed, status)) => {
                panic!("{what}: served {status} with an expired certificate (resumed: {resumed})")
            }
            Err(e) => eprintln!("{what}, expired: {e}"),
        }
    }
    assert_failed_handshakes(&proxy, failures + 1 + sessions.len() as u64);
    assert_eq!(backend.requests(), served_while_valid);
}

// ---------------------------------------------------------------- the log

/// `$ssl_client_verify $ssl_client_fingerprint $ssl_client_s_dn` write
/// `SUCCESS`, the SHA-1 of the certificate a client showed and whom it
/// names, `NONE - -` for one that showed none (with `optional`), and
/// `- - -` over plain HTTP.
#[test]
fn the_log_writes_whether_and_which_certificate_a_client_showed() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let more = "log_format = $uri $ssl_client_verify $ssl_client_fingerprint $ssl_client_s_dn\n";
    let mut proxy = start(&m.conf(backend.addr, "optional", more), |_| {});
    let alice = m.clients.client_leaf("alice");
    assert_eq!(
        served(&proxy, &m.client(Some(alice.shown())), "/alice").status,
        200
    );
    assert_eq!(served(&proxy, &m.client(None), "/anonymous").status, 200);
    assert_eq!(proxy.exchange(|c| c.get("/plain")).status, 200);
    proxy.shutdown(Duration::from_secs(1));
    let mut lines = proxy.log_lines();
    lines.sort();
    let expected = [
        format!("/alice SUCCESS {} CN=alice", fingerprint(&alice.der)),
        "/anonymous NONE - -".to_string(),
        "/plain - - -".to_string(),
    ];
    assert_eq!(lines, expected);
    // As openssl writes it: 40 lower-case hex digits.
    assert_eq!(fingerprint(&alice.der).len(), 40);
}

// ---------------------------------------------------------------- the cache

/// An origin that answers `path #N` (N counting that path's requests
/// from 1) with the `Cache-Control` that `cache_control` gives the path,
/// an `ETag`, and a 304 to a request that names it in `If-None-Match`.
fn numbered_origin(cache_control: fn(&str) -> &'static str) -> Backend {
    let counts = Mutex::new(HashMap::<String, usize>::new());
    Backend::start("origin", move |seen, out| {
        let path = seen.path().to_string();
        let fields = [("Cache-Control", cache_control(&path)), ("ETag", "\"v1\"")];
        if seen.head.get("If-None-Match") == Some("\"v1\"") {
            write_304(out, &fields);
            return Action::KeepAlive;
        }
        let n = {
            let mut counts = counts.lock().unwrap();
            let n = counts.entry(path.clone()).or_default();
            *n += 1;
            *n
        };
        let body = format!("{path} #{n}");
        respond(out, 200, &fields, body.as_bytes());
        Action::KeepAlive
    })
}

/// A proxy with the cache on, `optional` client certificates.
fn cached(m: &Mtls, origin: &Backend) -> Proxy {
    start(&m.conf(origin.addr, "optional", ""), |c| {
        c.cache_size = 4 << 20;
        c.max_object_size = Some(256 * 1024);
    })
}

/// `GET path` with `fields` on a new connection of `config`'s, waiting
/// until the proxy is done with it: what it stored is stored.
fn exchange(
    proxy: &Proxy,
    config: &Arc<ClientConfig>,
    path: &str,
    fields: &[(&str, &str)],
) -> Response {
    let r = get(proxy, config, path, fields).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    proxy.assert_becomes_idle();
    r
}

/// The cache takes a request with a certificate as one with
/// `Authorization`: the response to it is stored only when it says
/// `public` (so a page made for one client's certificate is not served
/// to another). The same requests without a certificate are stored, and
/// so is one over plain HTTP that wrote a `Client-Cert` of its own (gone
/// before the cache read the request).
#[test]
fn the_cache_stores_an_answer_to_a_certificate_only_when_public() {
    let m = Mtls::new();
    let origin = numbered_origin(|path| match path {
        "/public" => "public, max-age=60",
        _ => "max-age=60",
    });
    let proxy = cached(&m, &origin);
    let alice = m.clients.client_leaf("alice");
    let certified = m.client(Some(alice.shown()));
    let anonymous = m.client(None);

    let r = exchange(&proxy, &certified, "/private", &[]);
    expect(&r, 200, "MISS", "/private #1");
    let r = exchange(&proxy, &anonymous, "/private", &[]);
    expect(&r, 200, "MISS", "/private #2");
    // What the anonymous request had answered was stored.
    let r = exchange(&proxy, &anonymous, "/private", &[]);
    expect(&r, 200, "HIT", "/private #2");

    let r = exchange(&proxy, &certified, "/public", &[]);
    expect(&r, 200, "MISS", "/public #1");
    let r = exchange(&proxy, &anonymous, "/public", &[]);
    expect(&r, 200, "HIT", "/public #1");
    assert_eq!(origin.requests(), 3);
    let seen = seen_at(&origin, "/private");
    assert_eq!(seen.field_or("Client-Cert", "-"), byte_sequence(&alice.der));

    let forged = [("Client-Cert", ":Zm9yZ2Vk:")];
    let r = proxy.exchange(|c| c.get_with("/forged", &forged));
    expect(&r, 200, "MISS", "/forged #1");
    let r = proxy.exchange(|c| c.get("/forged"));
    expect(&r, 200, "HIT", "/forged #1");
}

/// A request with a certificate meets a stale entry (with
/// `stale-while-revalidate`) as one with `Authorization` does, step by
/// step: what it is answered, what the origin is asked and with what
/// credentials, and what the next anonymous request is answered.
#[test]
fn a_certificate_meets_a_stale_entry_as_authorization_does() {
    let m = Mtls::new();
    let origin = numbered_origin(|_| "max-age=1, stale-while-revalidate=30");
    let proxy = cached(&m, &origin);
    let alice = m.clients.client_leaf("alice");
    let anonymous = m.client(None);
    let ways = [
        (
            "/by-authorization",
            m.client(None),
            vec![("Authorization", "Bearer x")],
        ),
        ("/by-certificate", m.client(Some(alice.shown())), vec![]),
    ];
    for (path, _, _) in &ways {
        let r = exchange(&proxy, &anonymous, path, &[]);
        expect(&r, 200, "MISS", &format!("{path} #1"));
    }
    // Stale past max-age=1, whatever the second an entry was stored in.
    std::thread::sleep(Duration::from_millis(2100));
    let mut outcomes = Vec::new();
    for (path, config, fields) in &ways {
        let before = origin.requests();
        let credentialed = exchange(&proxy, config, path, fields);
        // This path's alone: the origin may be refreshing the one before
        // in the background, for the anonymous request that found it stale.
        let asked: Vec<(String, bool)> = origin.seen()[before..]
            .iter()
            .filter(|s| s.path() == *path)
            .map(|s| {
                let credentials = s.head.has("Authorization") || s.head.has("Client-Cert");
                (s.field_or("If-None-Match", "-"), credentials)
            })
            .collect();
        let next = exchange(&proxy, &anonymous, path, &[]);
        let summary = |r: &Response| {
            let body = r.body_str().replace(*path, "PATH");
            (r.status, x_cache(r).to_string(), body)
        };
        eprintln!(
            "{path}: {:?}, then {:?}; the origin was asked {asked:?}",
            summary(&credentialed),
            summary(&next)
        );
        outcomes.push((summary(&credentialed), asked, summary(&next)));
    }
    assert_eq!(
        outcomes[0], outcomes[1],
        "Authorization, then a certificate"
    );
    // The origin was asked for the credentialed request, with them.
    assert!(
        outcomes[1].1.iter().any(|(_, credentials)| *credentials),
        "{:?}",
        outcomes[1]
    );
}

/// With `request_id_header` named as a backend that reads `_` as `-`
/// reads `Client-Cert`, the proxy writes the request's ID in what such a
/// backend takes for the client's certificate, and takes it from a
/// `real_ip_from` proxy in front (underscores_in_headers off): a forged
/// certificate for CGI, WSGI and Rack backends: refused, as
/// `request_header.Client_Cert` is.
#[test]
fn request_id_header_may_not_be_an_underscore_spelling_of_client_cert() {
    let base = "targets = 127.0.0.1:1\n";
    for name in ["Client_Cert", "client_cert_chain", "Client_Cert-Chain"] {
        let text = format!("{base}request_id_header = {name}\n");
        let mut loader = Loader::new();
        loader.file("proxy.conf", &text).unwrap();
        let taken = loader.build().is_ok();
        if taken {
            // What it leads to: the trusted peer's value, as it wrote it.
            let backend = Backend::echo("app");
            let trusted = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
            let text = format!(
                "targets = {}\nreal_ip_from = {trusted}\nrequest_id_header = {name}\n",
                backend.addr
            );
            let proxy = start(&text, |_| {});
            let mut fronted = Client::connect_from(trusted, proxy.addr);
            assert_eq!(fronted.get_with("/", &[(name, ":Zm9yZ2Vk:")]).status, 200);
            drop(fronted);
            let seen = seen_at(&backend, "/");
            let wanted = name.replace('_', "-").to_ascii_lowercase();
            panic!(
                "request_id_header = {name} taken; the backend got {:?} as {wanted}:\n{}",
                read_as(&seen, &wanted),
                seen.head.raw
            );
        }
    }
}

// ---------------------------------------------------------------- configuration

/// Settings of client certificates that cannot work are refused, each
/// naming its key and what is wrong: no authority, an authority or a list
/// with verification off, verification with no TLS, a file that cannot be
/// read or holds nothing of what it should, an unknown mode. The working
/// setting is taken, so that each refusal is for its one change.
#[test]
fn the_configuration_refuses_client_certificate_settings_that_cannot_work() {
    let m = Mtls::new();
    let dir = m.pki.dir.path();
    let crl = m.write(
        "clients.crl",
        &m.clients.crl(&[], SystemTime::now() + a_day()),
    );
    let base = "targets = 127.0.0.1:1\nport = 8080\n";
    let tls = format!("tls_port = 8443\ntls_certificates = {}\n", m.pki.entry);
    let ca = &m.client_ca;
    for verify in ["on", "optional", "off"] {
        let files = match verify {
            "off" => String::new(),
            _ => format!("tls_client_ca = {ca}\ntls_client_crl = {crl}\n"),
        };
        let text = format!("{base}{tls}tls_verify_client = {verify}\n{files}");
        let mut loader = Loader::new();
        loader.file("proxy.conf", &text).unwrap();
        loader
            .build()
            .unwrap_or_else(|e| panic!("{e}\nin:\n{text}"));
    }

    let missing = dir.join("missing.pem").display().to_string();
    let a_directory = dir.display().to_string();
    let key_only = m.write("key-only.pem", &m.pki.localhost.key_pem);
    let cases: Vec<(String, &str, Vec<String>)> = vec![
        (
            format!("{tls}tls_verify_client = on\n"),
            "tls_verify_client",
            vec!["tls_client_ca".into()],
        ),
        (
            format!("{tls}tls_verify_client = optional\n"),
            "tls_verify_client",
            vec!["tls_client_ca".into()],
        ),
        (
            format!("{tls}tls_client_ca = {ca}\n"),
            "tls_client_ca",
            vec!["tls_verify_client is off".into()],
        ),
        (
            format!("{tls}tls_verify_client = off\ntls_client_crl = {crl}\n"),
            "tls_client_crl",
            vec!["tls_verify_client is off".into()],
        ),
        (
            format!("tls_verify_client = on\ntls_client_ca = {ca}\n"),
            "tls_verify_client",
            vec!["tls_port".into()],
        ),
        (
            format!("{tls}tls_verify_client = on\ntls_client_ca = {missing}\n"),
            "tls_client_ca",
            vec![missing.clone()],
        ),
        (
            format!("{tls}tls_verify_client = on\ntls_client_ca = {a_directory}\n"),
            "tls_client_ca",
            vec![a_directory.clone()],
        ),
        (
            format!("{tls}tls_verify_client = on\ntls_client_ca = {key_only}\n"),
            "tls_client_ca",
            vec![key_only.clone(), "no PEM certificate".into()],
        ),
        (
            // A list given for the authority.
            format!("{tls}tls_verify_client = on\ntls_client_ca = {crl}\n"),
            "tls_client_ca",
            vec![crl.clone(), "no PEM certificate".into()],
        ),
        (
            format!("{tls}tls_verify_client = maybe\ntls_client_ca = {ca}\n"),
            "tls_verify_client",
            vec!["maybe".into(), "off, optional or on".into()],
        ),
        (
            // An authority given for the list.
            format!("{tls}tls_verify_client = on\ntls_client_ca = {ca}\ntls_client_crl = {ca}\n"),
            "tls_client_crl",
            vec![ca.clone(), "no PEM revocation list".into()],
        ),
        (
            format!(
                "{tls}tls_verify_client = on\ntls_client_ca = {ca}\ntls_client_crl = {missing}\n"
            ),
            "tls_client_crl",
            vec![missing.clone()],
        ),
    ];
    assert_refused(base, &cases);
}

/// `Client-Cert` and `Client-Cert-Chain` are the proxy's: the
/// configuration may neither set nor remove them with `request_header.*`
/// (in any spelling a backend reads as theirs), nor name one as
/// `request_id_header`.
#[test]
fn the_configuration_may_not_write_client_cert() {
    let base = "targets = 127.0.0.1:1\n";
    for lines in [
        "request_header.Client-Cert = :Zm9yZ2Vk:\n",
        "request_header.client-cert-chain = :Zm9yZ2Vk:\n",
        "request_header.Client_Cert = :Zm9yZ2Vk:\n",
        "request_header.Client-Cert =\n",
        "request_id_header = Client-Cert\n",
        "request_id_header = client-cert-chain\n",
    ] {
        let text = format!("{base}{lines}");
        let message = config_error(&text);
        assert!(
            message.starts_with("proxy.conf:2:"),
            "{message}\nfor:\n{text}"
        );
        let key = lines.split(" =").next().unwrap();
        assert!(message.contains(key), "does not name {key}: {message}");
    }
    // Another field is taken, by both keys.
    let mut loader = Loader::new();
    let text = format!("{base}request_header.X-Client = a\nrequest_id_header = X-Request-Id\n");
    loader.file("proxy.conf", &text).unwrap();
    loader.build().unwrap();
}
