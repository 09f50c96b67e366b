//! A PROXY protocol header sent to a target written `send_proxy` or
//! `send_proxy_v2` (HAProxy's `send-proxy`, `send-proxy-v2`), read by
//! the one receiver at hand that checks it strictly: a second inverso
//! with `proxy_protocol` on, which refuses a connection without one and
//! tells its own backend whom the header named.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use support::pki::Pki;
use support::tls_client::{client_settings, TlsClient};
use support::*;

/// What an inner proxy says of each request in a field to its backend:
/// the client the header named, the connection the request came on (the
/// inner proxy's port, then the connection's serial there) and its count
/// there, the scheme, and where the client had connected to.
const SEEN: &str = "request_header.X-Seen = $remote_addr:$remote_port \
                    $server_port-$connection/$connection_requests $scheme \
                    $proxy_protocol_server_addr:$proxy_protocol_server_port\n";

/// What an inner proxy says of the client's TLS, from the TLVs of a
/// version 2 header.
const TLS_SEEN: &str = "request_header.X-Tls = $proxy_protocol_tlv_authority \
                        $proxy_protocol_tlv_alpn $proxy_protocol_tlv_ssl_version \
                        $proxy_protocol_tlv_ssl_cipher\n";

/// An app behind inner proxies that want a PROXY header, behind a front
/// proxy whose targets they are, each written with `option`, with
/// `front` in its proxy.conf too.
struct Chain {
    app: Backend,
    inners: Vec<Proxy>,
    front: Proxy,
}

impl Chain {
    fn new(option: &str, front: &str) -> Chain {
        Chain::of(1, option, front)
    }

    fn of(inners: usize, option: &str, front: &str) -> Chain {
        let app = Backend::echo("app");
        let inner_text = format!(
            "targets = {}\nproxy_protocol = true\n{SEEN}{TLS_SEEN}",
            app.addr
        );
        let inners: Vec<Proxy> = (0..inners)
            .map(|_| start_proxy(&[app.addr], from_file(&inner_text)))
            .collect();
        let targets: Vec<String> = (inners.iter())
            .map(|inner| format!("{} {option}", inner.addr))
            .collect();
        let text = format!("targets = {}\n{front}", targets.join(", "));
        let front = start_proxy(&[], from_file(&text));
        Chain { app, inners, front }
    }

    /// The `X-Seen` of each request the app had, in order.
    fn seen(&self) -> Vec<String> {
        (self.app.seen().iter())
            .map(|s| s.field_or("x-seen", "-"))
            .collect()
    }

    /// [`Chain::seen`], each in its [`parts`].
    fn parts(&self) -> Vec<[String; 4]> {
        self.seen().iter().map(|s| parts(s)).collect()
    }
}

fn local_addr(client: &Client) -> SocketAddr {
    client.reader.stream.local_addr().unwrap()
}

/// Splits an `X-Seen` into the client, the connection (the inner proxy's
/// port and its serial there), its count, and the rest.
fn parts(seen: &str) -> [String; 4] {
    let words: Vec<&str> = seen.split(' ').collect();
    let (serial, count) = words[1].split_once('/').unwrap();
    [words[0], serial, count, &words[2..].join(" ")].map(str::to_string)
}

#[test]
fn each_client_connection_is_named_to_the_backend_on_a_connection_of_its_own() {
    for option in ["send_proxy", "send_proxy_v2"] {
        let chain = Chain::new(option, "");
        let mut first = chain.front.connect();
        let mut second = chain.front.connect();
        // The first client's two requests, the second's while the first
        // client's backend connection idles, then the first's again.
        assert_eq!(first.get("/1").status, 200, "{option}");
        assert_eq!(first.get("/2").status, 200, "{option}");
        assert_eq!(second.get("/3").status, 200, "{option}");
        assert_eq!(first.get("/4").status, 200, "{option}");
        let seen = chain.parts();
        assert_eq!(seen.len(), 4, "{option}: {seen:?}");
        let front = format!("http {}", chain.front.addr);
        let (one, two) = (local_addr(&first), local_addr(&second));
        let expected = [(one, 1), (one, 2), (two, 1), (one, 3)];
        for (s, (client, count)) in seen.iter().zip(expected) {
            assert_eq!(s[0], client.to_string(), "{option}: {seen:?}");
            assert_eq!(s[2], count.to_string(), "{option}: {seen:?}");
            assert_eq!(s[3], front, "{option}: {seen:?}");
        }
        // The first client's requests on one connection to the inner
        // proxy, never lent to the second.
        assert_eq!(seen[0][1], seen[1][1], "{option}: {seen:?}");
        assert_eq!(seen[0][1], seen[3][1], "{option}: {seen:?}");
        assert_ne!(seen[0][1], seen[2][1], "{option}: {seen:?}");
    }
}

#[test]
fn the_client_a_balancer_in_front_named_is_passed_on_and_version_2_tells_its_tls() {
    // A client behind a balancer that sends the front a version 2 header
    // saying it came over TLS (an SSL TLV).
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x14".to_vec();
    header.extend_from_slice(&[198, 51, 100, 9, 127, 0, 0, 1, 0x30, 0x39, 0, 80]);
    header.extend_from_slice(&[0x20, 0, 5, 0x01, 0, 0, 0, 0]);
    for (option, scheme) in [("send_proxy", "http"), ("send_proxy_v2", "https")] {
        let chain = Chain::new(option, "proxy_protocol = true\n");
        let mut client = chain.front.connect();
        client.send(&header);
        assert_eq!(client.get("/").status, 200, "{option}");
        let seen = chain.seen();
        assert_eq!(seen.len(), 1, "{option}");
        let [named, _, _, rest] = parts(&seen[0]);
        assert_eq!(named, "198.51.100.9:12345", "{option}");
        assert_eq!(rest, format!("{scheme} 127.0.0.1:80"), "{option}");
    }
}

#[test]
fn health_probes_of_a_target_sent_the_header_send_one_that_names_no_client() {
    for option in ["send_proxy", "send_proxy_v2"] {
        let chain = Chain::new(
            option,
            "health_check_path = /health\nhealth_check_interval = 100ms\n",
        );
        // The inner proxy answers a probe only after a header: its app
        // sees it, from the front's own address (nobody named).
        assert!(
            wait_until(WAIT_LIMIT, || chain
                .app
                .seen()
                .iter()
                .any(|s| s.path() == "/health")),
            "{option}: no probe got through"
        );
        let probe = chain.seen()[0].clone();
        let [from, _, _, rest] = parts(&probe);
        assert!(from.starts_with("127.0.0.1:"), "{option}: {probe}");
        assert_ne!(from, chain.front.addr.to_string(), "{option}: {probe}");
        assert_eq!(rest, "http :", "{option}: no destination named: {probe}");
        // And the target is up: a request goes to it.
        assert_eq!(chain.front.connect().get("/after").status, 200, "{option}");
    }
}

#[test]
fn the_header_goes_before_the_tls_hello_of_a_target_spoken_to_over_tls() {
    let pki = Pki::new();
    let app = Backend::echo("app");
    let inner_text = format!(
        "targets = {}\ntls_port = 0\ntls_certificates = {}\nproxy_protocol = true\n{SEEN}",
        app.addr, pki.entry
    );
    let inner = start_proxy(&[], from_file(&inner_text));
    let tls_port = inner.handle().tls_addr().unwrap().port();
    let ca = pki.ca.write(pki.dir.path(), "ca.pem");
    let text = format!(
        "targets = localhost:{tls_port} tls send_proxy_v2\nbackend_tls_ca = {}\n",
        ca.display()
    );
    let front = start_proxy(&[], from_file(&text));
    let mut client = front.connect();
    assert_eq!(client.get("/1").status, 200);
    assert_eq!(client.get("/2").status, 200);
    let seen: Vec<[String; 4]> = (app.seen().iter())
        .map(|s| parts(&s.field_or("x-seen", "-")))
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let named = local_addr(&client).to_string();
    assert_eq!((&seen[0][0], &seen[1][0]), (&named, &named), "{seen:?}");
    // One TLS session for both, which the inner proxy took as https.
    assert_eq!((&seen[0][1], &seen[1][2]), (&seen[1][1], &"2".to_string()));
    assert!(seen[0][3].starts_with("https "), "{seen:?}");
}

#[test]
fn a_client_whose_requests_go_to_several_such_targets_keeps_a_connection_to_each() {
    let chain = Chain::of(2, "send_proxy", "");
    let mut client = chain.front.connect();
    for path in ["/1", "/2", "/3", "/4", "/5"] {
        assert_eq!(client.get(path).status, 200, "{path}");
    }
    // Round robin: one target, the other, and so on, each request on the
    // connection the last request to that target had.
    let seen = chain.parts();
    let connections: Vec<&str> = seen.iter().map(|s| &s[1][..]).collect();
    let counts: Vec<&str> = seen.iter().map(|s| &s[2][..]).collect();
    assert_ne!(connections[0], connections[1], "{seen:?}");
    assert_eq!(
        connections,
        [0, 1, 0, 1, 0].map(|i| connections[i]),
        "{seen:?}"
    );
    assert_eq!(counts, ["1", "1", "2", "2", "3"], "{seen:?}");
}

#[test]
fn a_connection_is_kept_for_no_next_request_without_upstream_keepalive_nor_past_a_reload() {
    let chain = Chain::new("send_proxy_v2", "upstream_keepalive = 0\n");
    let mut client = chain.front.connect();
    assert_eq!(client.get("/1").status, 200);
    assert_eq!(client.get("/2").status, 200);
    let seen = chain.parts();
    assert_ne!(seen[0][1], seen[1][1], "{seen:?}");

    // Kept, then the settings reloaded: the target is the next
    // generation's, and the connection kept to the last one's closes.
    let chain = Chain::new("send_proxy_v2", "");
    let mut client = chain.front.connect();
    assert_eq!(client.get("/1").status, 200);
    assert_eq!(client.get("/2").status, 200);
    let text = format!("targets = {} send_proxy_v2\n", chain.inners[0].addr);
    chain.front.reload(&[], from_file(&text));
    assert_eq!(client.get("/3").status, 200);
    let seen = chain.parts();
    assert_eq!(seen[0][1], seen[1][1], "{seen:?}");
    assert_ne!(seen[1][1], seen[2][1], "{seen:?}");
}

#[test]
fn a_mirrored_copy_names_the_client_of_the_request_copied_on_a_connection_closed_after_it() {
    let chain = Chain::new("send_proxy", "");
    let main = Backend::echo("main");
    let text = format!(
        "targets = {}\npool.shadow = {} send_proxy_v2\nmirror = shadow\n",
        main.addr, chain.inners[0].addr
    );
    let front = start_proxy(&[], from_file(&text));
    let mut client = front.connect();
    assert_eq!(client.get("/1").status, 200);
    assert_eq!(client.get("/2").status, 200);
    assert!(wait_until(WAIT_LIMIT, || chain.app.requests() == 2));
    let seen = chain.parts();
    let named = local_addr(&client).to_string();
    assert_eq!((&seen[0][0], &seen[1][0]), (&named, &named), "{seen:?}");
    // Each copy on a connection of its own: none is kept for the next.
    assert_ne!(seen[0][1], seen[1][1], "{seen:?}");
    assert_eq!((&seen[0][2], &seen[1][2]), (&"1".into(), &"1".into()));
}

#[test]
fn version_2_tells_what_the_clients_handshake_agreed() {
    let pki = Pki::new();
    let front = format!("tls_port = 0\ntls_certificates = {}\n", pki.entry);
    for (option, expected) in [
        // The suite is the one the two chose: a TLS 1.3 one.
        ("send_proxy_v2", "localhost http/1.1 TLSv1.3 TLS13_"),
        // Version 1 cannot say it: nothing but the addresses.
        ("send_proxy", ""),
    ] {
        let chain = Chain::new(option, &front);
        let mut settings = client_settings(&pki.ca, &[&rustls::version::TLS13], None);
        settings.alpn_protocols = vec![b"http/1.1".to_vec()];
        let addr = chain.front.handle().tls_addr().unwrap();
        let mut client = TlsClient::try_connect(addr, &Arc::new(settings), "localhost").unwrap();
        assert_eq!(client.get("/").status, 200, "{option}");
        let seen = chain.app.seen();
        assert_eq!(seen.len(), 1, "{option}");
        let tls = seen[0].field_or("x-tls", "");
        assert!(tls.starts_with(expected), "{option}: {tls}");
        assert_eq!(tls.is_empty(), expected.is_empty(), "{option}: {tls}");
        let scheme = parts(&seen[0].field_or("x-seen", "-"))[3].clone();
        let expected_scheme = if option == "send_proxy_v2" {
            "https"
        } else {
            "http"
        };
        assert!(scheme.starts_with(expected_scheme), "{option}: {scheme}");
    }
}
