//! Forwarding: balancing, keep-alive and pooling, header rewriting,
//! HEAD/204/304, pipelining, Expect, HTTP/1.0, retries and the access log.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

#[test]
fn bind_on_the_ipv6_wildcard_takes_ipv4_clients_too() {
    if !has_ipv6_loopback() {
        return;
    }
    // `bind = ::` takes both families, whatever the system's default for
    // such a socket is (Linux's net.ipv6.bindv6only, the BSDs' V6ONLY).
    let backend = Backend::echo("a");
    let mut config = inverso::Config::with_targets(vec![backend.target()]);
    config.bind = "::".parse().unwrap();
    config.port = 0;
    config.log_to_stdout = false;
    config.cache_size = 0;
    config.path_to_persistence = None;
    let handle = inverso::Server::start(config).unwrap();
    let port = handle.local_addr().port();
    for ip in ["127.0.0.1", "::1"] {
        let addr = std::net::SocketAddr::new(ip.parse().unwrap(), port);
        let response = Client::connect(addr).get("/");
        assert_eq!(response.header("x-backend"), Some("a"), "{addr}");
    }
    handle.shutdown(Duration::from_secs(1));
}

#[test]
fn round_robin_alternates_between_two_backends() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |_| {});
    let mut answered = Vec::new();
    for i in 0..6 {
        // Half on one keep-alive connection, half on fresh ones: the
        // rotation is per request, not per connection.
        let response = if i < 3 {
            one_request(proxy.addr, b"GET /rr HTTP/1.1\r\nHost: x\r\n\r\n")
        } else {
            let mut c = proxy.connect();
            c.get("/rr")
        };
        assert_eq!(response.status, 200);
        let by = response.header("x-backend").unwrap().to_string();
        assert!(
            response.body_str().starts_with(&by),
            "{}",
            response.body_str()
        );
        answered.push(by);
    }
    for pair in answered.windows(2) {
        assert_ne!(pair[0], pair[1], "not alternating: {answered:?}");
    }
    assert_eq!(a.requests(), 3);
    assert_eq!(b.requests(), 3);
}

#[test]
fn many_requests_on_one_connection_reuse_few_upstream_connections() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |_| {});
    let mut client = proxy.connect();
    for i in 0..200 {
        let path = format!("/item/{i}");
        let response = client.get(&path);
        assert_eq!(response.status, 200, "request {i}");
        assert!(
            response.body_str().contains(&format!(" GET {path} len=0 ")),
            "request {i}: {}",
            response.body_str()
        );
    }
    assert_eq!(a.requests() + b.requests(), 200);
    assert_eq!(a.requests(), 100);
    let upstream_connections = a.connections() + b.connections();
    assert!(
        upstream_connections <= 4,
        "200 sequential requests used {upstream_connections} upstream connections"
    );
}

#[test]
fn an_ipv4_client_of_a_dual_stack_listener_is_forwarded_as_ipv4() {
    // bind = :: accepts IPv4 clients as ::ffff:a.b.c.d; backends (and
    // their allow-lists) must see a.b.c.d, as they do without the proxy.
    let Ok(listener) = std::net::TcpListener::bind("[::]:0") else {
        return; // no IPv6 on this machine: nothing to test
    };
    let a = Backend::echo("a");
    let mut config = inverso::Config::with_targets(vec![target(a.addr)]);
    config.log_to_stdout = false;
    config.path_to_persistence = None;
    config.cache_size = 0;
    let handle = inverso::Server::start_on(listener, config).unwrap();
    let port = handle.local_addr().port();
    let v4: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    if std::net::TcpStream::connect(v4).is_err() {
        // An IPv6-only listener (bindv6only): no IPv4 client to test with.
        assert!(handle.shutdown(Duration::from_secs(5)));
        return;
    }
    let mut client = Client::connect(v4);
    assert_eq!(client.get("/who").status, 200);
    let seen = a.seen();
    assert_eq!(
        seen[0].head.get("x-forwarded-for"),
        Some("127.0.0.1"),
        "{}",
        seen[0].head.raw
    );
    drop(client);
    assert!(handle.shutdown(Duration::from_secs(5)));
}

#[test]
fn a_proxy_protocol_header_names_the_client() {
    let a = Backend::echo("a");
    let mut proxy = start_proxy(&[a.addr], |c| c.proxy_protocol = true);
    let request = b"GET /pp HTTP/1.1\r\nHost: x\r\n\r\n";
    // Version 1, then two requests on the connection it opened.
    let mut client = proxy.connect();
    client.send(b"PROXY TCP4 203.0.113.5 127.0.0.1 5555 80\r\n");
    client.send(request);
    assert_eq!(client.response().status, 200);
    assert_eq!(client.get("/pp2").status, 200);
    // Version 2, in one piece with the request, from a client that came
    // over TLS (an SSL TLV: client bits, then the verify result).
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x14".to_vec();
    v2.extend_from_slice(&[198, 51, 100, 9, 127, 0, 0, 1, 0x30, 0x39, 0, 80]);
    v2.extend_from_slice(&[0x20, 0, 5, 0x01, 0, 0, 0, 0]);
    v2.extend_from_slice(request);
    let mut client2 = proxy.connect();
    client2.send(&v2);
    assert_eq!(client2.response().status, 200);
    // LOCAL (a balancer's health check): the TCP peer stands.
    let mut local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec();
    local.extend_from_slice(request);
    let mut client3 = proxy.connect();
    client3.send(&local);
    assert_eq!(client3.response().status, 200);
    let xff: Vec<String> = a
        .seen()
        .iter()
        .map(|s| s.head.get("x-forwarded-for").unwrap_or("-").to_string())
        .collect();
    assert_eq!(
        xff,
        ["203.0.113.5", "203.0.113.5", "198.51.100.9", "127.0.0.1"]
    );
    let schemes: Vec<String> = a
        .seen()
        .iter()
        .map(|s| s.head.get("x-forwarded-proto").unwrap_or("-").to_string())
        .collect();
    assert_eq!(schemes, ["http", "http", "https", "http"]);

    // Without one: closed unanswered, and nothing reaches the backend.
    let mut bare = proxy.connect();
    bare.send(request);
    assert!(bare.read_until_closed().is_empty());
    assert_eq!(a.requests(), 4);
    drop((client, client2, client3));
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert!(lines[0].starts_with("203.0.113.5 - - ["), "{lines:?}");
    assert_eq!(lines.len(), 4, "{lines:?}");
}

#[test]
fn the_tlvs_of_a_version_2_header_are_variables_as_nginx_names_them() {
    let a = Backend::echo("a");
    let text = format!(
        "targets = {}\nproxy_protocol = true\n\
         request_header.X-Endpoint = $proxy_protocol_tlv_0xea\n\
         log_format = $proxy_protocol_tlv_alpn|$proxy_protocol_tlv_ssl_version|\
         $proxy_protocol_tlv_ssl_verify|$proxy_protocol_tlv_authority|$proxy_protocol_tlv_0xEA\n",
        a.addr
    );
    let mut proxy = start_proxy(&[a.addr], from_file(&text));
    let tlv = |kind: u8, value: &[u8]| {
        let mut out = vec![kind];
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value);
        out
    };
    // What an AWS NLB in front of a PrivateLink endpoint sends (its
    // endpoint's ID, type 0xEA, subtype 1), and HAProxy's ALPN and SSL.
    let mut ssl = vec![0x01, 0, 0, 0, 0];
    ssl.extend(tlv(0x21, b"TLSv1.3"));
    let tlvs = [
        tlv(0x01, b"http/1.1"),
        tlv(0xea, b"\x01vpce-0abc"),
        tlv(0x20, &ssl),
    ]
    .concat();
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11".to_vec();
    header.extend_from_slice(&(12 + tlvs.len() as u16).to_be_bytes());
    header.extend_from_slice(&[198, 51, 100, 9, 127, 0, 0, 1, 0x30, 0x39, 0, 80]);
    header.extend_from_slice(&tlvs);
    let mut client = proxy.connect();
    client.send(&header);
    assert_eq!(client.get("/").status, 200);
    // A version 1 header has none.
    let mut v1 = proxy.connect();
    v1.send(b"PROXY TCP4 203.0.113.5 127.0.0.1 5555 80\r\n");
    assert_eq!(v1.get("/v1").status, 200);
    let endpoints: Vec<String> = (a.seen().iter())
        .map(|s| s.field_or("x-endpoint", "(none)"))
        .collect();
    // A byte a field value cannot hold is written as `\xNN`; an empty
    // value leaves the field out.
    assert_eq!(endpoints, ["\\x01vpce-0abc", "(none)"]);
    drop((client, v1));
    assert!(proxy.shutdown(Duration::from_secs(5)));
    // Each connection's thread logs its request once the answer went:
    // the second's line may come first.
    let mut lines = proxy.log_lines();
    lines.sort();
    assert_eq!(lines, ["-|-|-|-|-", "http/1.1|TLSv1.3|0|-|\\x01vpce-0abc"]);
}

#[test]
fn hop_by_hop_fields_are_removed_and_forwarding_fields_added() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(
        b"GET /headers HTTP/1.1\r\n\
          Host: shop.example\r\n\
          Connection: keep-alive, X-Secret\r\n\
          X-Secret: hidden\r\n\
          Keep-Alive: timeout=5\r\n\
          TE: trailers\r\n\
          Upgrade: websocket\r\n\
          Proxy-Connection: keep-alive\r\n\
          X-Forwarded-For: 10.1.2.3\r\n\
          X-End-To-End: kept\r\n\
          \r\n",
    );
    assert_eq!(client.response().status, 200);
    let seen = a.seen();
    assert_eq!(seen.len(), 1);
    let head = &seen[0].head;
    for name in [
        "connection",
        "x-secret",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-connection",
    ] {
        assert!(!head.has(name), "{name} reached the backend:\n{}", head.raw);
    }
    assert_eq!(head.get("x-end-to-end"), Some("kept"));
    let xff: Vec<_> = head.get_all("x-forwarded-for").collect();
    assert_eq!(xff, ["10.1.2.3, 127.0.0.1"], "{}", head.raw);
    assert_eq!(head.get("x-forwarded-proto"), Some("http"));
    assert_eq!(head.get("x-forwarded-host"), Some("shop.example"));
    assert_eq!(head.get("host"), Some("shop.example"));
    let via = head.get("via").expect("no Via");
    assert!(via.starts_with("1.1 "), "Via: {via}");
}

/// The values of `name` the backend received in the one request it saw.
fn seen_values(backend: &Backend, name: &str) -> Vec<String> {
    let seen = backend.seen();
    assert_eq!(seen.len(), 1);
    seen[0].head.get_all(name).map(str::to_owned).collect()
}

#[test]
fn a_clients_own_x_real_ip_and_forwarded_are_replaced_with_ours() {
    // Backends moved from behind nginx trust X-Real-IP for allow-lists and
    // rate limits, and frameworks read Forwarded for host and scheme: a
    // client's own would be lies passed on.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(
        b"GET /who HTTP/1.1\r\n\
          Host: shop.example\r\n\
          X-Real-IP: 6.6.6.6\r\n\
          x-real-ip: 6.6.6.7\r\n\
          Forwarded: for=7.7.7.7;proto=https;host=evil\r\n\
          forwarded: for=8.8.8.8\r\n\
          \r\n",
    );
    assert_eq!(client.response().status, 200);
    assert_eq!(seen_values(&a, "x-real-ip"), ["127.0.0.1"]);
    assert_eq!(
        seen_values(&a, "forwarded"),
        ["for=127.0.0.1;host=shop.example;proto=http"]
    );
    // The same client as X-Forwarded-For ends with.
    assert_eq!(seen_values(&a, "x-forwarded-for"), ["127.0.0.1"]);
}

#[test]
fn naming_x_real_ip_or_forwarded_in_connection_does_not_remove_ours() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(
        b"GET /who HTTP/1.1\r\n\
          Host: shop.example\r\n\
          Connection: keep-alive, X-Real-IP, Forwarded\r\n\
          X-Real-IP: 6.6.6.6\r\n\
          \r\n",
    );
    assert_eq!(client.response().status, 200);
    assert_eq!(seen_values(&a, "x-real-ip"), ["127.0.0.1"]);
    assert_eq!(
        seen_values(&a, "forwarded"),
        ["for=127.0.0.1;host=shop.example;proto=http"]
    );
}

#[test]
fn forwarded_quotes_a_host_with_a_port_and_names_none_without_one() {
    // RFC 7239 §4: a value is a token or a quoted-string, and `:` is no
    // token character.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let response = one_request(
        proxy.addr,
        b"GET /p HTTP/1.1\r\nHost: Shop.Example:8443\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    assert_eq!(
        seen_values(&a, "forwarded"),
        ["for=127.0.0.1;host=\"shop.example:8443\";proto=http"]
    );
    // HTTP/1.0 without Host: no host the client asked for to name.
    let b = Backend::echo("b");
    let proxy = start_proxy(&[b.addr], |_| {});
    let response = one_request(proxy.addr, b"GET /p HTTP/1.0\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(seen_values(&b, "forwarded"), ["for=127.0.0.1;proto=http"]);
    assert_eq!(seen_values(&b, "x-real-ip"), ["127.0.0.1"]);
}

#[test]
fn what_only_a_proxy_in_front_can_say_of_the_url_reaches_the_backend_only_from_one() {
    // Port, prefix and scheme claims frameworks build links from, and the
    // URL some serve in place of the path: a client's own would be passed
    // on to everyone in a page the cache stores. From a proxy in
    // `real_ip_from`, they are its word.
    let claims = [
        ("X-Forwarded-Port", "8443"),
        ("X-Forwarded-Prefix", "//evil.example"),
        ("X-Forwarded-Ssl", "on"),
        ("x-forwarded-scheme", "https"),
        ("Front-End-Https", "On"),
        ("X-Original-URL", "/admin/"),
        ("X-Rewrite-URL", "/admin/"),
    ];
    for trusted in [false, true] {
        let a = Backend::echo("a");
        let proxy = start_proxy(&[a.addr], |c| {
            if trusted {
                c.real_ip_from = vec![inverso::realip::Cidr::parse("127.0.0.1").unwrap()].into();
            }
        });
        assert_eq!(proxy.connect().get_with("/t", &claims).status, 200);
        let seen = a.seen().pop().unwrap();
        for (name, value) in claims {
            let passed = seen.head.get(name);
            assert_eq!(
                passed,
                trusted.then_some(value),
                "{name} (trusted: {trusted})"
            );
        }
    }
}

#[test]
fn a_claim_spelled_with_underscores_is_dropped_too() {
    // With `underscores_in_headers`, CGI, WSGI and Rack read `X_Forwarded_Ssl`
    // as `X-Forwarded-Ssl` (HTTP_X_FORWARDED_SSL): the claim a client may not
    // make under one spelling it may not make under the other.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| c.underscores_in_headers = true);
    let claims = [
        ("X_Forwarded_Prefix", "//evil.example"),
        ("X_Forwarded_Ssl", "on"),
        ("Front_End_Https", "On"),
    ];
    assert_eq!(proxy.connect().get_with("/t", &claims).status, 200);
    let seen = a.seen().pop().unwrap();
    for (name, _) in claims {
        assert_eq!(seen.head.get(name), None, "{name} reached the backend");
    }
}

#[test]
fn the_access_log_shows_a_claim_as_the_client_sent_it() {
    // README ("The request as the client sent it"): the access log shows
    // the client's fields; its forged X-Forwarded-Proto is logged, and its
    // forged X-Forwarded-Prefix should be too (the evidence of the attempt).
    let a = Backend::echo("a");
    let template = "$http_x_forwarded_proto $http_x_forwarded_prefix";
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.log_format = inverso::config::LogFormat::parse(template).unwrap();
    });
    let claims = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Prefix", "/evil"),
    ];
    assert_eq!(proxy.connect().get_with("/t", &claims).status, 200);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines, ["https /evil"]);
}

#[test]
fn behind_a_trusted_proxy_the_client_it_names_is_in_x_real_ip_and_forwarded() {
    // Tests speak to 127.0.0.1 only: an IPv6 client is one named here
    // (RFC 7239 §6: `for="[2001:db8::7]"`, brackets and quotes).
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.real_ip_from = vec![inverso::realip::Cidr::parse("127.0.0.1").unwrap()].into();
    });
    let mut client = proxy.connect();
    let spoofed = [
        ("X-Real-IP", "6.6.6.6"),
        ("Forwarded", "for=7.7.7.7;proto=http;host=evil"),
    ];
    for (named, x_real_ip, for_) in [
        ("203.0.113.7", "203.0.113.7", "203.0.113.7"),
        ("2001:db8::7", "2001:db8::7", "\"[2001:db8::7]\""),
    ] {
        let mut fields = vec![("X-Forwarded-For", named), ("X-Forwarded-Proto", "https")];
        fields.extend(spoofed);
        assert_eq!(client.get_with("/t", &fields).status, 200);
        let seen = a.seen().pop().unwrap();
        let head = &seen.head;
        let all = |name| head.get_all(name).collect::<Vec<_>>();
        assert_eq!(all("x-real-ip"), [x_real_ip], "{}", head.raw);
        assert_eq!(
            all("forwarded"),
            [format!("for={for_};host=test.example;proto=https")],
            "{}",
            head.raw
        );
        // X-Forwarded-For keeps the whole chain, the proxy in front last.
        assert_eq!(
            all("x-forwarded-for"),
            [format!("{named}, 127.0.0.1")],
            "{}",
            head.raw
        );
    }
}

#[test]
fn via_false_leaves_via_as_it_came() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| c.via = false);
    let mut client = proxy.connect();
    assert_eq!(client.get("/").status, 200);
    assert_eq!(client.get_with("/", &[("Via", "1.0 fred")]).status, 200);
    let seen = a.seen();
    assert!(!seen[0].head.has("via"), "{}", seen[0].head.raw);
    assert_eq!(seen[1].head.get("via"), Some("1.0 fred"));
}

#[test]
fn fields_with_an_underscore_are_dropped_unless_allowed() {
    let a = Backend::echo("a");
    let request = b"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\
          X_Custom_Id: 7\r\nX-Plain: kept\r\n\r\nok";
    for allowed in [false, true] {
        let proxy = start_proxy(&[a.addr], |c| c.underscores_in_headers = allowed);
        let mut client = proxy.connect();
        client.send(request);
        assert_eq!(client.response().status, 200);
        let seen = a.seen().pop().unwrap();
        let head = &seen.head;
        assert_eq!(head.has("x_custom_id"), allowed, "{}", head.raw);
        assert_eq!(head.get("x-plain"), Some("kept"));
        assert_eq!(seen.body, b"ok");
    }
}

#[test]
fn allowed_underscores_never_stand_in_for_the_proxys_own_fields() {
    // A CGI-style backend would read these as the fields the proxy wrote
    // or framed the request with.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| c.underscores_in_headers = true);
    let mut client = proxy.connect();
    client.send(
        b"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\
          X_Forwarded_For: 6.6.6.6\r\nx_FORWARDED_host: evil\r\n\
          X_Real_IP: 6.6.6.6\r\n\
          Transfer_Encoding: chunked\r\nContent_Length: 99\r\n\
          X_Forwarded_Proto: https\r\nConnection_: x\r\n\r\nok",
    );
    assert_eq!(client.response().status, 200);
    let seen = a.seen().pop().unwrap();
    let head = &seen.head;
    for ours in [
        "x_forwarded_for",
        "x_forwarded_host",
        "x_forwarded_proto",
        "x_real_ip",
        "transfer_encoding",
        "content_length",
    ] {
        assert!(!head.has(ours), "{ours} reached the backend:\n{}", head.raw);
    }
    // Not a look-alike of any of ours: forwarded.
    assert!(head.has("connection_"), "{}", head.raw);
    assert_eq!(seen.body, b"ok");
}

#[test]
fn an_odd_byte_in_connection_does_not_hide_its_other_tokens() {
    // obs-text in one element: `close` and `X-Hop` still count.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client
        .send(b"GET /c HTTP/1.1\r\nHost: a\r\nConnection: close, X-Hop, \xff\r\nX-Hop: 1\r\n\r\n");
    let response = client.response();
    assert_eq!(response.status, 200);
    assert!(
        response.head.has_token("connection", "close"),
        "{}",
        response.head.raw
    );
    assert!(client.is_closed());
    assert!(!a.seen()[0].head.has("x-hop"), "{}", a.seen()[0].head.raw);
}

#[test]
fn a_status_http_does_not_define_is_passed_on_not_taken_for_a_broken_backend() {
    // Applications use 600-999 among themselves (RFC 9110 §15 has them
    // treated as a 5xx). Refused as malformed, the first would have taken
    // its target out of the rotation, and the cache must not store it.
    let a = Backend::start("a", |_, out| {
        respond(out, 999, &[("Cache-Control", "max-age=600")], b"app error");
        Action::KeepAlive
    });
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| c.cache_size = 1 << 20);
    let mut client = proxy.connect();
    let statuses: Vec<u16> = (0..4).map(|_| client.get("/app").status).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 999).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(a.requests(), 2);
    // The rotation comes back to `a`, whose answer was not stored.
    let response = proxy.connect().get("/app");
    assert_eq!(response.status, 999);
    assert_eq!(response.body, b"app error");
    assert_eq!(response.header("x-cache"), Some("MISS"));
    assert_eq!(a.requests(), 3);
}

#[test]
fn response_hop_by_hop_fields_do_not_reach_the_client() {
    let a = Backend::start("a", |_, out| {
        respond(
            out,
            200,
            &[
                // A Date it names there still reaches the client: every
                // response carries one (RFC 9110 §6.6.1).
                ("Connection", "X-Backend-Private, Date"),
                ("X-Backend-Private", "1"),
                ("Date", "Tue, 01 Dec 2026 10:00:00 GMT"),
                ("Keep-Alive", "timeout=100"),
                ("X-Public", "yes"),
            ],
            b"ok",
        );
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    let response = proxy.connect().get("/");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"ok");
    assert_eq!(response.header("x-public"), Some("yes"));
    assert!(
        !response.head.has("x-backend-private"),
        "{}",
        response.head.raw
    );
    assert!(!response.head.has("keep-alive"), "{}", response.head.raw);
    assert!(response.head.has("date"), "{}", response.head.raw);
}

/// Answers HEAD with a head only, `/204` and `/304` with bodiless
/// statuses, anything else like `echo`.
fn bodiless_backend() -> Backend {
    Backend::start("a", |seen, out| {
        use std::io::Write;
        let raw: &[u8] = match (seen.method(), seen.path()) {
            ("HEAD", _) => b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-Head: 1\r\n\r\n",
            (_, "/204") => b"HTTP/1.1 204 No Content\r\nX-Status: 204\r\n\r\n",
            (_, "/304") => b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n",
            _ => {
                respond(out, 200, &[], describe("a", seen).as_bytes());
                return Action::KeepAlive;
            }
        };
        out.write_all(raw).unwrap();
        Action::KeepAlive
    })
}

#[test]
fn head_relays_no_body_and_keeps_content_length() {
    let a = bodiless_backend();
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"HEAD /thing HTTP/1.1\r\nHost: x\r\n\r\n");
    let response = client.head_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("1234"));
    assert_eq!(response.header("x-head"), Some("1"));
    assert!(!response.head.has("transfer-encoding"));
    // Had any body bytes followed the head, the next response would not
    // start with a status line.
    let next = client.get("/after-head");
    assert_eq!(next.status, 200);
    assert!(next.body_str().contains("GET /after-head"));
    assert_eq!(a.seen()[0].method(), "HEAD");
}

#[test]
fn a_head_answer_passes_on_a_content_length_only_if_it_is_one() {
    let a = Backend::start("a", |seen, out| {
        let length = match seen.path() {
            "/007" => "007",
            "/list" => "1, 2",
            _ => "abc",
        };
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
        let _ = std::io::Write::write_all(out, head.as_bytes());
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    for (path, shown) in [("/007", Some("7")), ("/list", None), ("/abc", None)] {
        client.send(format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let response = client.head_response();
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-length"),
            shown,
            "{}",
            response.head.raw
        );
    }
}

#[test]
fn responses_204_and_304_carry_no_body() {
    let a = bodiless_backend();
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();

    let response = client.get("/204");
    assert_eq!(response.status, 204);
    assert_eq!(response.header("x-status"), Some("204"));
    assert!(
        !response.head.has("transfer-encoding"),
        "{}",
        response.head.raw
    );
    assert!(
        response.header("content-length").is_none_or(|v| v == "0"),
        "{}",
        response.head.raw
    );

    let response = client.get("/304");
    assert_eq!(response.status, 304);
    assert_eq!(response.header("etag"), Some("\"v1\""));
    assert!(
        !response.head.has("transfer-encoding"),
        "{}",
        response.head.raw
    );

    let next = client.get("/after");
    assert_eq!(next.status, 200);
    assert!(next.body_str().contains("GET /after len=0"));
    assert!(client.reader.buffered().is_empty());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |_| {});
    let mut client = proxy.connect();
    client.send(
        b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          GET /p3 HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /p4 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /p5 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let expected = [
        "GET /p1 len=0",
        &format!("POST /p2 len=5 fnv={:016x}", fnv(b"hello")),
        "GET /p3 len=0",
    ];
    for want in expected {
        let response = client.response();
        assert_eq!(response.status, 200);
        assert!(
            response.body_str().contains(want),
            "{want}: {}",
            response.body_str()
        );
    }
    let head = client.head_response();
    assert_eq!(head.status, 200);
    let last = client.response();
    assert!(
        last.body_str().contains("GET /p5 len=0"),
        "{}",
        last.body_str()
    );
    assert_eq!(a.requests() + b.requests(), 5);
}

#[test]
fn many_open_connections_each_get_their_own_answers() {
    // Past 8 open connections per core, workers yield and try non-blocking
    // reads before they block: answers must still go to the right client,
    // whole, request after request, from threads running side by side.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |_| {});
    let clients: Vec<_> = (0..8 * cores + 8).map(|_| proxy.connect()).collect();
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            std::thread::spawn(move || {
                for round in 0..20 {
                    let path = format!("/c{i}/r{round}");
                    let response = client.get(&path);
                    assert_eq!(response.status, 200);
                    assert!(
                        response.body_str().contains(&format!(" GET {path} len=0 ")),
                        "{path}: {}",
                        response.body_str()
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(a.requests() + b.requests(), (8 * cores + 8) * 20);
}

#[test]
fn a_client_that_asks_to_close_gets_its_whole_response_then_the_end() {
    let a = Backend::start("a", |_, out| {
        respond(out, 200, &[], &pattern(50_000));
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    // The client keeps its side open: the proxy must close on its own
    // after the response.
    let response = client.get_with("/bye", &[("Connection", "close")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, pattern(50_000));
    assert!(response.head.has_token("connection", "close"));
    assert!(client.is_closed());
    // Its whole request read, it has nothing more to send: no lingering.
    assert!(client.was_closed_without_lingering());
    proxy.assert_becomes_idle();
}

#[test]
fn a_client_that_asks_to_close_is_not_lingered_on_after_a_502_either() {
    let proxy = start_proxy(&[dead_addr()], |_| {});
    let mut client = proxy.connect();
    let response = client.get_with("/bye", &[("Connection", "close")]);
    assert_eq!(response.status, 502, "{}", response.head.raw);
    assert!(client.is_closed());
    assert!(client.was_closed_without_lingering());
}

#[test]
fn a_request_pipelined_behind_a_close_is_not_answered() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(
        b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n\
          GET /ignored HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let response = client.response();
    assert_eq!(response.status, 200);
    assert!(
        response.body_str().contains("GET /last"),
        "{}",
        response.body_str()
    );
    assert!(client.is_closed());
    assert_eq!(a.requests(), 1);
}

#[test]
fn a_connection_closes_after_keepalive_requests() {
    // As nginx's keepalive_requests: the last allowed response says
    // Connection: close, and what was pipelined behind it is not answered
    // (the client sends it again on a new connection).
    let a = Backend::start("a", |_, out| {
        respond(out, 200, &[("Cache-Control", "max-age=60")], b"k");
        Action::KeepAlive
    });
    for cache_size in [0, 1 << 20] {
        let proxy = start_proxy(&[a.addr], |c| {
            c.keepalive_requests = 3;
            c.cache_size = cache_size;
        });
        let before = a.requests();
        let mut client = proxy.connect();
        client.send(&b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5));
        for n in 1..=3 {
            let response = client.response();
            assert_eq!(response.status, 200);
            assert_eq!(
                response.head.has_token("connection", "close"),
                n == 3,
                "response {n}, cache_size {cache_size}"
            );
        }
        assert!(client.is_closed());
        // Without a cache all three went to the backend; with one, the
        // first filled it and the others were hits.
        let forwarded = if cache_size == 0 { 3 } else { 1 };
        assert_eq!(a.requests() - before, forwarded);
        // A new connection gets its own count.
        assert_eq!(proxy.connect().get("/k").status, 200);
    }
}

#[test]
fn expect_100_continue_gets_continue_before_the_body() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    // A small body (read whole by the proxy) and a large one (streamed).
    for len in [10usize, 200 * 1024] {
        let body = pattern(len);
        let mut client = proxy.connect();
        client.send(
            format!(
                "PUT /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {len}\r\n\r\n"
            )
            .as_bytes(),
        );
        let interim = client.response();
        assert_eq!(interim.status, 100, "len {len}: {}", interim.head.raw);
        client.send(&body);
        let last = client.response();
        assert_eq!(last.status, 200, "len {len}");
        assert!(
            last.body_str()
                .contains(&format!("PUT /upload len={len} fnv={:016x}", fnv(&body))),
            "{}",
            last.body_str()
        );
    }
    assert!(a.seen().iter().all(|s| !s.head.has("expect")));
}

#[test]
fn an_expectation_other_than_100_continue_gets_417_however_it_is_spelled() {
    // RFC 9110 §10.1.1: one list, whether in one field line or several.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let unknown: [&[u8]; 4] = [
        b"Expect: something-else\r\n",
        b"Expect: 100-continue, something-else\r\n",
        b"Expect: 100-continue\r\nExpect: something-else\r\n",
        b"Expect: 100-continue\r\nExpect: \xff\r\n",
    ];
    for expect in unknown {
        let mut client = proxy.connect();
        let mut request = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n".to_vec();
        request.extend_from_slice(expect);
        request.extend_from_slice(b"\r\nhello");
        client.send(&request);
        let response = client.response();
        assert_eq!(response.status, 417, "{}", String::from_utf8_lossy(expect));
    }
    assert!(
        a.seen().is_empty(),
        "an unmet expectation reached the backend"
    );
    // Said twice, it is still only 100-continue.
    let mut client = proxy.connect();
    client.send(
        b"PUT /y HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nExpect: 100-Continue\r\n\
          Content-Length: 5\r\n\r\n",
    );
    assert_eq!(client.response().status, 100);
    client.send(b"hello");
    assert_eq!(client.response().status, 200);
}

#[test]
fn max_forwards_on_options_is_counted_down_and_answered_here_at_zero() {
    // RFC 9110 §7.6.2: an intermediary decrements it, and at 0 answers
    // the OPTIONS itself; on other methods it means nothing.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n\r\n");
    let here = client.response();
    assert_eq!(here.status, 200, "{}", here.head.raw);
    assert!(here.header("allow").is_some_and(|m| m.contains("OPTIONS")));
    assert!(
        a.seen().is_empty(),
        "an OPTIONS with Max-Forwards: 0 went on"
    );
    // The connection goes on.
    client.send(b"OPTIONS /r HTTP/1.1\r\nHost: x\r\nMax-Forwards: 3\r\n\r\n");
    assert_eq!(client.response().status, 200);
    client.send(b"GET /g HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n\r\n");
    assert_eq!(client.response().status, 200);
    let seen = a.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].head.get("max-forwards"),
        Some("2"),
        "{}",
        seen[0].head.raw
    );
    assert_eq!(
        seen[1].head.get("max-forwards"),
        Some("0"),
        "{}",
        seen[1].head.raw
    );
}

#[test]
fn an_http10_expectation_is_ignored() {
    // RFC 9110 §10.1.1: an HTTP/1.0 client may not know 1xx at all; its
    // 100-continue (or any other expectation) is ignored, never answered.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    for expect in ["100-continue", "something-else"] {
        let mut client = proxy.connect();
        client.send(
            format!(
                "POST /old HTTP/1.0\r\nHost: x\r\nExpect: {expect}\r\nContent-Length: 5\r\n\r\nhello"
            )
            .as_bytes(),
        );
        let response = client.response();
        assert_eq!(response.status, 200, "{expect}: {}", response.head.raw);
        assert!(response.body_str().contains("POST /old len=5"));
    }
}

#[test]
fn http10_client_is_closed_unless_it_asks_for_keep_alive() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});

    let mut client = proxy.connect();
    client.send(b"GET /old HTTP/1.0\r\n\r\n");
    let response = client.response();
    assert_eq!(response.status, 200);
    assert!(response.body_str().contains("GET /old"));
    assert!(client.is_closed(), "HTTP/1.0 connection left open");

    let mut client = proxy.connect();
    for i in 0..3 {
        client.send(b"GET /kept HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let response = client.response();
        assert_eq!(response.status, 200, "request {i}");
        assert!(response.head.has_token("connection", "keep-alive"));
        assert!(response.header("content-length").is_some());
        assert!(response.body_str().contains("GET /kept"));
    }
    client.send(b"GET /last HTTP/1.0\r\n\r\n");
    assert_eq!(client.response().status, 200);
    assert!(client.is_closed());
}

#[test]
fn http10_client_gets_a_chunked_backend_response_delimited_by_close() {
    let a = Backend::start("a", |_, out| {
        use std::io::Write;
        out.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .unwrap();
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let response = client.response();
    assert_eq!(response.status, 200);
    assert!(!response.head.is_chunked(), "{}", response.head.raw);
    assert_eq!(response.body, b"abcde");
}

/// A backend answering like `Backend::echo("a")`, as if keeping the
/// connection, then closing it: the proxy's pooled connection is dead.
fn echo_then_close() -> Backend {
    Backend::start("a", |seen, out| {
        respond(out, 200, &[], describe("a", seen).as_bytes());
        Action::Close
    })
}

#[test]
fn a_pooled_connection_closed_by_the_backend_is_retried_on_a_fresh_one() {
    let a = echo_then_close();
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    for (i, path) in ["/first", "/second", "/third"].iter().enumerate() {
        let response = client.get(path);
        assert_eq!(response.status, 200, "{path}: {}", response.body_str());
        assert!(response.body_str().contains(path));
        // The backend's close has happened before the next request.
        assert!(wait_until(WAIT_LIMIT, || a.closed() > i));
    }
    assert_eq!(a.requests(), 3);
    assert_eq!(a.connections(), 3);
}

#[test]
fn a_small_post_goes_on_a_new_connection_when_the_pooled_one_closed() {
    let a = echo_then_close();
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    assert_eq!(client.post("/one", b"abc").status, 200);
    assert!(wait_until(WAIT_LIMIT, || a.closed() == 1));
    let response = client.post("/two", b"defg");
    assert_eq!(response.status, 200);
    assert!(response.body_str().contains("POST /two len=4"));
    assert_eq!(a.requests(), 2);
}

/// A backend that reads a POST and closes the connection without a word;
/// anything else it answers 200 with `body`, keeping the connection.
fn closing_on_post(body: &'static [u8]) -> Backend {
    Backend::start("a", move |seen, out| {
        if seen.method() == "POST" {
            return Action::Close;
        }
        respond(out, 200, &[], body);
        Action::KeepAlive
    })
}

#[test]
fn a_dead_pooled_connection_is_not_held_against_its_target() {
    // A restarted backend leaves the proxy's pooled connections dead. The
    // POST that finds one gets 502 (it must not be sent twice), but the
    // target stays in rotation: the next requests still reach it.
    let a = closing_on_post(b"a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| c.retries = Some(0));
    let mut client = proxy.connect();
    // Round robin: a, then b; a's connection is pooled.
    assert_eq!(client.get("/warm-a").status, 200);
    assert_eq!(client.get("/warm-b").status, 200);
    assert_eq!(client.post("/charge", b"abc").status, 502);
    let before = a.requests();
    for i in 0..4 {
        assert_eq!(proxy.connect().get(&format!("/after{i}")).status, 200);
    }
    assert!(a.requests() > before, "a was taken out of rotation");
}

#[test]
fn a_post_the_backend_may_have_acted_on_is_never_sent_twice() {
    // The backend reads the POST, then closes without a word: it may have
    // charged the card. The client gets 502; the backend saw it once.
    let a = closing_on_post(b"warm");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    assert_eq!(client.get("/warm").status, 200); // pools a connection
    assert_eq!(client.post("/charge", b"abc").status, 502);
    let posts = a.seen().iter().filter(|s| s.method() == "POST").count();
    assert_eq!(posts, 1);
    // A GET in the same situation is retried on a new connection.
    let b = Backend::start("b", |seen, out| {
        if seen.conn == 0 && seen.path() == "/again" {
            return Action::Close;
        }
        respond(out, 200, &[], b"fine");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[b.addr], |_| {});
    let mut client = proxy.connect();
    assert_eq!(client.get("/warm").status, 200);
    assert_eq!(client.get("/again").status, 200);
    assert_eq!(b.requests(), 3);
}

/// The value of `key=` in a combined log line.
fn field<'l>(line: &'l str, key: &str) -> &'l str {
    let start = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("{line}"))
        + key.len()
        + 2;
    line[start..].split(' ').next().unwrap_or("")
}

#[test]
fn the_log_tells_the_backend_s_wait_from_the_whole() {
    // A backend that thinks for 300 ms: its time to the response head is
    // in `upstream_ms`, a part of `duration_ms`; an answer no backend gave
    // has none.
    let slow = Backend::start("slow", |_, out| {
        std::thread::sleep(Duration::from_millis(300));
        respond(out, 200, &[], b"late");
        Action::KeepAlive
    });
    let mut proxy = start_proxy(&[slow.addr], |_| {});
    let mut client = proxy.connect();
    assert_eq!(client.get("/slow").status, 200);
    client.send(b"GET /no-host HTTP/1.1\r\n\r\n");
    assert_eq!(client.response().status, 400);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let upstream: f64 = field(&lines[0], "upstream_ms").parse().unwrap();
    let duration: f64 = field(&lines[0], "duration_ms").parse().unwrap();
    assert!(upstream >= 300.0 && duration >= upstream, "{}", lines[0]);
    assert_eq!(field(&lines[1], "upstream_ms"), "-", "{}", lines[1]);
}

#[test]
fn access_log_has_one_line_per_request() {
    let a = Backend::echo("a");
    let dead = dead_addr();
    // No retries, so the dead target's 502 reaches the client and the log.
    let mut proxy = start_proxy(&[a.addr, dead], |c| c.retries = Some(0));
    let mut client = proxy.connect();
    // Round robin: /one to a, /two to the dead target, /three to a.
    assert_eq!(client.get("/one").status, 200);
    assert_eq!(client.get("/two?q=1").status, 502);
    let three = client.post("/three", b"12345");
    assert_eq!(three.status, 200);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let expect = [
        ("\"GET /one HTTP/1.1\" 200 ", a.addr),
        ("\"GET /two?q=1 HTTP/1.1\" 502 ", dead),
        ("\"POST /three HTTP/1.1\" 200 ", a.addr),
    ];
    for (line, (request, upstream)) in lines.iter().zip(expect) {
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(line.contains(request), "{line} lacks {request}");
        assert!(
            line.contains(&format!(" upstream={upstream} ")),
            "{line} lacks upstream {upstream}"
        );
        assert!(line.contains(" duration_ms="), "{line}");
    }
    // The byte count is the body relayed to the client.
    let body_len = three.body.len();
    assert!(
        lines[2].contains(&format!("\" 200 {body_len} \"")),
        "{}",
        lines[2]
    );
}

#[test]
fn an_http11_client_asking_to_close_is_closed() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let response = client.response();
    assert_eq!(response.status, 200);
    assert!(response.head.has_token("connection", "close"));
    assert!(client.is_closed());
    // The backend connection itself stays pooled.
    assert_eq!(proxy.connect().get("/again").status, 200);
    assert_eq!(a.connections(), 1);
}

#[test]
fn without_upstream_keepalive_every_request_opens_a_connection() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| c.upstream_keepalive = 0);
    let mut client = proxy.connect();
    for i in 0..5 {
        assert_eq!(client.get(&format!("/{i}")).status, 200);
    }
    assert_eq!(a.requests(), 5);
    assert_eq!(a.connections(), 5);
}

#[test]
fn a_backend_connection_carries_at_most_upstream_keepalive_requests() {
    for (requests, connections) in [("2", 3), ("0", 1)] {
        let a = Backend::echo("a");
        let text = format!(
            "targets = {}\nupstream_keepalive_requests = {requests}\n",
            a.addr
        );
        let proxy = start_proxy(&[a.addr], from_file(&text));
        let mut client = proxy.connect();
        for i in 0..5 {
            assert_eq!(client.get(&format!("/{i}")).status, 200);
        }
        // 2, 2 and 1; or all on one with no limit. Each closed once done
        // with, not left for the backend to time out.
        assert_eq!(a.connections(), connections, "{requests}");
        let closed = connections - 1;
        assert!(
            wait_until(WAIT_LIMIT, || a.closed() == closed),
            "{requests}"
        );
    }
}

/// A backend that answers every request with an unasked `100 Continue`, a
/// `103 Early Hints` carrying a field it names in `Connection` and a
/// `Content-Length` no 1xx may have, and then the final response.
fn early_hinting_backend() -> Backend {
    Backend::start("a", |_, out| {
        use std::io::Write;
        out.write_all(
            b"HTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\
              Connection: x-hop\r\nX-Hop: 1\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
        respond(out, 200, &[("Cache-Control", "max-age=60")], b"final");
        Action::KeepAlive
    })
}

#[test]
fn early_hints_reach_an_http_11_client_before_the_final_response() {
    // RFC 9110 §15.2: a proxy forwards 1xx responses it did not ask for.
    // The backend's `100 Continue` is not passed on: it is about the body
    // the proxy sends, and a client that asked had its own.
    for cache_size in [0, 1 << 20] {
        let a = early_hinting_backend();
        let proxy = start_proxy(&[a.addr], |c| c.cache_size = cache_size);
        let mut client = proxy.connect();
        for i in 0..2 {
            let path = format!("/{i}");
            let hints = client.get(&path);
            assert_eq!(hints.status, 103, "cache {cache_size}: {}", hints.head.raw);
            assert_eq!(hints.header("link"), Some("</s.css>; rel=preload"));
            assert_eq!(hints.header("x-hop"), None, "named in Connection");
            assert_eq!(hints.header("connection"), None);
            assert_eq!(
                hints.header("content-length"),
                None,
                "a 1xx has no body: {}",
                hints.head.raw
            );
            let last = client.response();
            assert_eq!(last.status, 200, "cache {cache_size}: {}", last.head.raw);
            assert_eq!(last.body, b"final");
        }
    }
}

#[test]
fn a_pooled_connection_closed_after_an_interim_response_is_not_tried_again() {
    // A close with nothing read is taken for a pooled connection the
    // backend closed while idle, and an idempotent request goes again on
    // a new one. After a `103` the backend had the request: a 502, once.
    let a = Backend::start("a", |seen, out| {
        use std::io::Write;
        if seen.head.start_line.starts_with("GET /first ") {
            respond(out, 200, &[], b"first");
            return Action::KeepAlive;
        }
        out.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
            .unwrap();
        Action::Close
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    assert_eq!(client.get("/first").status, 200);
    assert_eq!(client.get("/second").status, 103);
    assert_eq!(client.response().status, 502);
    assert_eq!(a.requests(), 2, "the second request was sent again");
    assert_eq!(a.connections(), 1);
}

#[test]
fn a_pooled_connection_reset_after_part_of_a_head_is_not_tried_again() {
    // As after a 103: the backend had the request and began to answer
    // before its reset. With `retries = 0`, a 502, and the GET sent once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counted = counted.clone();
            std::thread::spawn(move || {
                let mut reader = Reader::new(stream.try_clone().unwrap());
                let mut out = stream;
                while let Ok(Some(head)) = reader.read_head() {
                    if !head.start_line.starts_with("GET /again ") {
                        respond(&mut out, 200, &[], b"ok");
                        continue;
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    out.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap();
                    // Read by the proxy before the reset comes.
                    std::thread::sleep(Duration::from_millis(200));
                    let linger = socket2::SockRef::from(&out).set_linger(Some(Duration::ZERO));
                    linger.unwrap();
                    return;
                }
            });
        }
    });
    let proxy = start_proxy(&[addr], |c| c.retries = Some(0));
    let mut client = proxy.connect();
    assert_eq!(client.get("/warm").status, 200);
    assert_eq!(client.get("/again").status, 502);
    assert_eq!(
        sent.load(Ordering::SeqCst),
        1,
        "sent again after a response byte came"
    );
}

#[test]
fn an_http_10_client_gets_no_interim_response() {
    // RFC 9110 §15.2: "A server MUST NOT send a 1xx response to an
    // HTTP/1.0 client."
    let a = early_hinting_backend();
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET / HTTP/1.0\r\nHost: test.example\r\nConnection: keep-alive\r\n\r\n");
    let response = client.response();
    assert_eq!(response.status, 200, "{}", response.head.raw);
    assert_eq!(response.body, b"final");
}

#[test]
fn an_absolute_form_target_is_forwarded_in_origin_form() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET http://other.example/path?x=1 HTTP/1.1\r\nHost: ignored.example\r\n\r\n");
    assert_eq!(client.response().status, 200);
    let seen = a.seen();
    assert_eq!(seen[0].head.start_line, "GET /path?x=1 HTTP/1.1");
    assert_eq!(seen[0].head.get("host"), Some("other.example"));
    assert_eq!(seen[0].head.get_all("host").count(), 1);
}

#[test]
fn access_log_records_refused_requests_without_an_upstream() {
    let a = Backend::echo("a");
    let mut proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n");
    assert_eq!(client.response().status, 400);
    assert!(client.is_closed());
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("\"GET / HTTP/1.1\" 400 "), "{}", lines[0]);
    assert!(lines[0].contains(" upstream=- "), "{}", lines[0]);
    assert_eq!(a.requests(), 0);
}

// --------------------------------------------------------------- request IDs

fn with_request_ids(c: &mut inverso::config::Config) {
    c.request_id_header = Some("X-Request-ID".into());
}

/// The access log's lines once `n` are written.
fn log_lines_once(proxy: &Proxy, n: usize) -> Vec<String> {
    assert!(wait_until(WAIT_LIMIT, || proxy.log_lines().len() >= n));
    proxy.log_lines()
}

#[test]
fn request_ids_are_off_unless_a_field_is_named() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let response = proxy.connect().get("/");
    assert_eq!(response.header("x-request-id"), None);
    assert!(!a.seen()[0].head.has("x-request-id"));
    assert!(!log_lines_once(&proxy, 1)[0].contains("request_id"));
}

#[test]
fn each_request_gets_an_id_sent_to_the_backend_returned_and_logged() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], with_request_ids);
    let mut client = proxy.connect();
    let ids: Vec<String> = (0..2)
        .map(|_| client.get("/").header("x-request-id").unwrap().to_string())
        .collect();
    assert_ne!(ids[0], ids[1]);
    for (id, seen) in ids.iter().zip(a.seen()) {
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(seen.head.get("x-request-id"), Some(id.as_str()));
    }
    let lines = log_lines_once(&proxy, 2);
    for (id, line) in ids.iter().zip(&lines) {
        assert!(line.ends_with(&format!(" request_id={id}")), "{line}");
    }
}

#[test]
fn a_head_refused_before_it_is_parsed_gets_an_id_of_its_own() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        with_request_ids(c);
        c.max_header_size = 1024;
    });
    let too_large = format!(
        "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2000)
    );
    let mut client = proxy.connect();
    let first = client.get("/");
    let first_id = first.header("x-request-id").unwrap().to_string();
    client.send(too_large.as_bytes());
    let refused = client.response();
    assert_eq!(refused.status, 431);
    let refused_id = refused.header("x-request-id").unwrap().to_string();
    assert_ne!(refused_id, first_id);
    let lines = log_lines_once(&proxy, 2);
    assert!(
        lines[0].ends_with(&format!(" request_id={first_id}")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(" 431 ") && lines[1].ends_with(&refused_id),
        "{}",
        lines[1]
    );
}

#[test]
fn a_given_id_is_kept_only_from_a_trusted_proxy_and_only_if_well_formed() {
    let sent_for = |proxy: &Proxy, backend: &Backend, given: &str| {
        let mut client = proxy.connect();
        // Named in Connection too: that must not make the field go.
        let response = client.get_with(
            "/",
            &[("X-Request-ID", given), ("Connection", "X-Request-ID")],
        );
        let seen = backend.seen().pop().unwrap();
        let forwarded = seen.head.get("x-request-id").unwrap().to_string();
        assert_eq!(response.header("x-request-id"), Some(forwarded.as_str()));
        forwarded
    };
    let a = Backend::echo("a");
    let untrusted = start_proxy(&[a.addr], with_request_ids);
    assert_ne!(
        sent_for(&untrusted, &a, "from-the-client"),
        "from-the-client"
    );
    let trusted = start_proxy(&[a.addr], |c| {
        with_request_ids(c);
        c.real_ip_from = vec![inverso::realip::Cidr::parse("127.0.0.1").unwrap()].into();
    });
    assert_eq!(sent_for(&trusted, &a, "lb-7f3a"), "lb-7f3a");
    let replaced = sent_for(&trusted, &a, "two\"words");
    assert_eq!(replaced.len(), 32, "{replaced}");
}

#[test]
fn a_trusted_proxy_that_appends_its_id_is_believed_not_its_client() {
    // HAProxy's `unique-id-header` adds its field after whatever the
    // client sent under that name: the proxy's own is the last one.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        with_request_ids(c);
        c.real_ip_from = vec![inverso::realip::Cidr::parse("127.0.0.1").unwrap()].into();
    });
    let response = proxy.connect().get_with(
        "/",
        &[
            ("X-Request-ID", "chosen-by-the-client"),
            ("X-Request-ID", "given-by-haproxy"),
        ],
    );
    assert_eq!(response.header("x-request-id"), Some("given-by-haproxy"));
    let seen = a.seen().pop().unwrap();
    let sent: Vec<&str> = seen.head.get_all("x-request-id").collect();
    assert_eq!(sent, ["given-by-haproxy"]);
    let line = &log_lines_once(&proxy, 1)[0];
    assert!(line.ends_with(" request_id=given-by-haproxy"), "{line}");
}

#[test]
fn a_backend_echoing_the_id_does_not_double_it() {
    let a = Backend::start("a", |_, out| {
        respond(out, 200, &[("X-Request-ID", "the-backend-s-own")], b"ok");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], with_request_ids);
    let response = proxy.connect().get("/");
    let ids: Vec<&str> = response.head.get_all("x-request-id").collect();
    let sent = a.seen()[0].head.get("x-request-id").unwrap().to_string();
    assert_eq!(ids, [sent.as_str()]);
}

#[test]
fn the_proxys_own_answers_and_cache_hits_carry_an_id_of_their_own() {
    let proxy = start_proxy(&[dead_addr()], with_request_ids);
    let response = proxy.connect().get("/");
    assert_eq!(response.status, 502);
    let id = response.header("x-request-id").unwrap();
    let lines = log_lines_once(&proxy, 1);
    assert!(
        lines[0].contains(" 502 ") && lines[0].ends_with(id),
        "{}",
        lines[0]
    );

    let a = Backend::start("a", |_, out| {
        respond(out, 200, &[("Cache-Control", "max-age=60")], b"cached");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |c| {
        with_request_ids(c);
        c.cache_size = 1 << 20;
    });
    let mut client = proxy.connect();
    let miss = client.get("/c");
    let hit = client.get("/c");
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.head.get_all("x-request-id").count(), 1);
    assert_ne!(hit.header("x-request-id"), miss.header("x-request-id"));
    assert_eq!(a.requests(), 1);
}

#[test]
fn an_empty_reason_phrase_is_filled_in_only_from_the_registry() {
    // RFC 9112 §4: the reason phrase is optional. A backend's empty one
    // is filled in with the registered phrase (410 Gone, 422...), never
    // with a wrong "Unknown"; a status no registry names keeps it empty.
    let a = Backend::start("a", |seen, out| {
        use std::io::Write;
        let status = &seen.path()[1..];
        let _ = write!(out, "HTTP/1.1 {status} \r\nContent-Length: 0\r\n\r\n");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    for (status, line) in [
        ("410", "HTTP/1.1 410 Gone"),
        ("422", "HTTP/1.1 422 Unprocessable Content"),
        ("299", "HTTP/1.1 299 "),
    ] {
        let response = client.get(&format!("/{status}"));
        assert_eq!(response.head.start_line, line);
    }
}

#[test]
fn via_names_the_version_the_request_was_received_in() {
    // RFC 9110 §7.6.3: a Via entry's received-protocol is the version of
    // the message this hop received: "1.0 inverso" for a request that
    // came as HTTP/1.0 (and goes on as HTTP/1.1).
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n");
    assert_eq!(client.response().status, 200);
    assert_eq!(proxy.connect().get("/new").status, 200);
    let seen = a.seen();
    let vias: Vec<_> = seen.iter().map(|s| s.field_or("via", "-")).collect();
    assert_eq!(vias, ["1.0 inverso", "1.1 inverso"]);
}

#[test]
fn without_upstream_keepalive_each_request_says_connection_close() {
    // RFC 9112 §9.6: "A client that does not support persistent
    // connections MUST send the "close" connection option in every
    // request message." The client's own connection is kept all the same.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| c.upstream_keepalive = 0);
    let mut client = proxy.connect();
    assert_eq!(client.get("/1").status, 200);
    assert_eq!(client.get("/2").status, 200);
    let seen = a.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert!(s.head.has_token("connection", "close"), "{}", s.head.raw);
    }
    // With it, nothing says close.
    let b = Backend::echo("b");
    let proxy = start_proxy(&[b.addr], |_| {});
    assert_eq!(proxy.connect().get("/").status, 200);
    assert_eq!(b.seen()[0].field_or("connection", "-"), "-");
}

#[test]
fn empty_elements_of_an_expect_list_are_no_expectation_of_their_own() {
    // RFC 9110 §5.6.1.2: "a recipient MUST parse and ignore a reasonable
    // number of empty list elements"; Expect is `#expectation`. These all
    // say 100-continue and nothing else: a 100, not a 417.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let spellings: [&[u8]; 3] = [
        b"Expect: 100-continue,\r\n",
        b"Expect: , 100-continue\r\n",
        b"Expect: 100-continue\r\nExpect: ,\r\n",
    ];
    for expect in spellings {
        let what = String::from_utf8_lossy(expect).into_owned();
        let mut client = proxy.connect();
        let mut request = b"PUT /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n".to_vec();
        request.extend_from_slice(expect);
        request.extend_from_slice(b"\r\n");
        client.send(&request);
        let interim = client.response();
        assert_eq!(interim.status, 100, "{what:?}: {}", interim.head.raw);
        client.send(b"hello");
        assert_eq!(client.response().status, 200, "{what:?}");
    }
    // An empty Expect is an empty list: no expectation, nothing refused.
    let mut client = proxy.connect();
    client.send(b"PUT /f HTTP/1.1\r\nHost: x\r\nExpect:\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(client.response().status, 200);
}
