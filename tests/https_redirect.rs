//! `redirect_to_https`: requests that came over plain HTTP, as the scheme
//! `X-Forwarded-Proto` is sent with says (a trusted `real_ip_from` proxy's
//! word, or a PROXY v2 header's), answered by the proxy itself with a
//! redirect to HTTPS; no backend and not the cache hears of them.

mod support;

use inverso::config::{Config, Loader};
use inverso::patterns::PathPrefixes;
use inverso::realip::Cidr;
use std::net::IpAddr;
use std::time::Duration;
use support::*;

/// The proxy in front (a TLS terminator, a load balancer) is 127.0.0.1.
fn behind_a_terminator(c: &mut Config) {
    c.real_ip_from = vec![Cidr::parse("127.0.0.1").unwrap()].into();
    c.redirect_to_https = true;
}

/// `c` read as proxy.conf is, after `behind_a_terminator`'s keys.
fn from_file(lines: &str) -> Config {
    let text = format!(
        "targets = 127.0.0.1:1\nreal_ip_from = 127.0.0.1\nredirect_to_https = true\n{lines}"
    );
    let mut loader = Loader::new();
    loader.file("proxy.conf", &text).unwrap();
    loader.build().unwrap()
}

const PLAIN: (&str, &str) = ("X-Forwarded-Proto", "http");
const TLS: (&str, &str) = ("X-Forwarded-Proto", "https");

/// Asserts that `r` is the proxy's redirect to `location` with `status`,
/// a plain-text body (none to a HEAD) of the length it says.
#[track_caller]
fn assert_redirect(r: &Response, status: u16, location: &str, head_request: bool) {
    assert_eq!(r.status, status, "{}", r.head.raw);
    assert_eq!(r.header("location"), Some(location), "{}", r.head.raw);
    let reason = match status {
        301 => "301 Moved Permanently\n",
        _ => "308 Permanent Redirect\n",
    };
    assert_eq!(r.head.start_line, format!("HTTP/1.1 {}", reason.trim_end()));
    assert_eq!(
        r.header("content-length"),
        Some(reason.len().to_string().as_str())
    );
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(r.header("x-backend").is_none(), "{}", r.head.raw);
    let body = if head_request { "" } else { reason };
    assert_eq!(r.body_str(), body);
}

#[test]
fn plain_http_is_redirected_and_https_proxied_on_one_kept_alive_connection() {
    let a = Backend::echo("a");
    let mut proxy = start_proxy(&[a.addr], |c| {
        behind_a_terminator(c);
        c.admin_port = Some(0);
    });
    let mut balancer = proxy.connect();
    balancer.send(
        b"GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: Shop.Example:8080\r\n\
          X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: http\r\n\r\n",
    );
    let redirected = balancer.response();
    assert_redirect(
        &redirected,
        301,
        "https://shop.example/a/b?x=1&y=%20",
        false,
    );
    assert!(!redirected.head.has_token("connection", "close"));
    // The same connection goes on: the next request, over TLS, is proxied.
    let proxied = balancer.get_with("/a/b?x=1", &[TLS]);
    assert_eq!(proxied.status, 200, "{}", proxied.body_str());
    assert_eq!(proxied.header("x-backend"), Some("a"));
    // A HEAD is answered with the head alone: were a body sent, it would
    // be read as the start of the next response.
    let head = balancer.head_with("/h", &[PLAIN]);
    assert_redirect(&head, 301, "https://test.example/h", true);
    assert!(head.body.is_empty());
    assert_eq!(balancer.get_with("/after", &[TLS]).status, 200);
    let seen = a.seen();
    let paths: Vec<&str> = seen.iter().map(Seen::path).collect();
    assert_eq!(paths, ["/a/b?x=1", "/after"]);
    assert_eq!(seen[0].field_or("x-forwarded-proto", "-"), "https");
    assert_eq!(a.connections(), 1);

    let admin = proxy.handle().admin_addr().unwrap();
    let metrics = one_request(admin, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let text = metrics.body_str();
    assert!(
        text.lines().any(|l| l == "inverso_https_redirects_total 2"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "inverso_requests_total{class=\"3xx\"} 2"),
        "{text}"
    );
    drop(balancer);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    // Logged as the client the balancer names, with no upstream.
    assert!(
        lines[0].starts_with("203.0.113.9 ")
            && lines[0].contains("\"GET /a/b?x=1&y=%20 HTTP/1.1\" 301 22 ")
            && lines[0].contains(" upstream=- "),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("\" 200 ") && !lines[1].contains(" upstream=- "));
    assert!(
        lines[2].contains("\"HEAD /h HTTP/1.1\" 301 0 ") && lines[2].contains(" upstream=- "),
        "{}",
        lines[2]
    );
}

#[test]
fn other_methods_get_308_and_a_body_is_never_read() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], behind_a_terminator);
    // Without a body: answered, and the connection stays.
    let mut balancer = proxy.connect();
    let deleted = balancer.request("DELETE", "/item/7", &[PLAIN], b"");
    assert_redirect(&deleted, 308, "https://test.example/item/7", false);
    assert!(!deleted.head.has_token("connection", "close"));
    let options = balancer.request("OPTIONS", "/api", &[PLAIN], b"");
    assert_redirect(&options, 308, "https://test.example/api", false);
    // With one: answered before it is read, then closed (its rest would
    // be taken for a next request), a pipelined request unanswered.
    let mut request = b"POST /form?next=%2F HTTP/1.1\r\nHost: test.example\r\n\
                        X-Forwarded-Proto: http\r\nContent-Length: 9\r\n\r\nname=ann!"
        .to_vec();
    request.extend_from_slice(b"GET /smuggled HTTP/1.1\r\nHost: test.example\r\n\r\n");
    balancer.send(&request);
    let posted = balancer.response();
    assert_redirect(&posted, 308, "https://test.example/form?next=%2F", false);
    assert!(posted.head.has_token("connection", "close"));
    assert!(balancer.is_closed());
    // Waiting for 100-continue: told where to go instead.
    let mut waiting = proxy.connect();
    waiting.send(
        b"PUT /big HTTP/1.1\r\nHost: test.example\r\nX-Forwarded-Proto: http\r\n\
          Content-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let put = waiting.response();
    assert_redirect(&put, 308, "https://test.example/big", false);
    assert!(waiting.is_closed());
    // Over TLS the same POST is proxied, body and all.
    let mut tls = proxy.connect();
    let posted = tls.request("POST", "/form", &[TLS], b"name=ann!");
    assert_eq!(posted.status, 200);
    assert_eq!(a.seen()[0].body, b"name=ann!");
    assert_eq!(a.requests(), 1);
}

#[test]
fn excepted_paths_are_proxied_over_plain_http() {
    let a = Backend::echo("a");
    let except = "/healthz, /.well-known/acme-challenge/";
    let proxy = start_proxy(&[a.addr], |c| {
        behind_a_terminator(c);
        c.redirect_to_https_except = PathPrefixes::parse(except).unwrap();
    });
    let mut balancer = proxy.connect();
    for path in [
        "/healthz",
        "/healthz?deep=1",
        "/.well-known/acme-challenge/Tok3n_-x",
    ] {
        let r = balancer.get_with(path, &[PLAIN]);
        assert_eq!(r.status, 200, "{path}: {}", r.head.raw);
        assert_eq!(r.header("x-backend"), Some("a"), "{path}");
    }
    // An ALB's health check sends no X-Forwarded-Proto: http, and excepted.
    assert_eq!(balancer.get("/healthz").status, 200);
    for (path, location) in [
        ("/health", "https://test.example/health"),
        (
            "/.well-known/acme-challenge",
            "https://test.example/.well-known/acme-challenge",
        ),
        ("/?to=/healthz", "https://test.example/?to=/healthz"),
    ] {
        let r = balancer.get_with(path, &[PLAIN]);
        assert_redirect(&r, 301, location, false);
    }
    let seen = a.seen();
    assert_eq!(seen.len(), 4);
    // Served as usual: the backend is told the truth about the scheme.
    assert!(seen
        .iter()
        .all(|s| s.field_or("x-forwarded-proto", "-") == "http"));
}

#[test]
fn only_a_trusted_proxy_or_a_tls_proxy_header_makes_a_request_https() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], behind_a_terminator);
    // A client that reaches the port itself cannot claim TLS.
    let untrusted = IpAddr::from([127, 0, 0, 2]);
    let mut client = Client::connect_from(untrusted, proxy.addr);
    let r = client.get_with("/p", &[TLS]);
    assert_redirect(&r, 301, "https://test.example/p", false);
    // The trusted proxy's own element is the last one.
    let mut balancer = proxy.connect();
    let r = balancer.get_with("/p", &[("X-Forwarded-Proto", "https, http")]);
    assert_redirect(&r, 301, "https://test.example/p", false);
    let r = balancer.get_with("/p", &[("X-Forwarded-Proto", "http, https")]);
    assert_eq!(r.status, 200);
    assert_eq!(a.requests(), 1);

    // Behind a balancer speaking the PROXY protocol: a version 2 header
    // whose SSL TLV says the client came over TLS makes it https.
    let proxy = start_proxy(&[a.addr], |c| {
        c.proxy_protocol = true;
        c.redirect_to_https = true;
    });
    let request = b"GET /pp HTTP/1.1\r\nHost: pp.example\r\n\r\n";
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x14".to_vec();
    v2.extend_from_slice(&[198, 51, 100, 9, 127, 0, 0, 1, 0x30, 0x39, 0, 80]);
    v2.extend_from_slice(&[0x20, 0, 5, 0x01, 0, 0, 0, 0]);
    v2.extend_from_slice(request);
    let mut over_tls = proxy.connect();
    over_tls.send(&v2);
    assert_eq!(over_tls.response().status, 200);
    let mut v1 = proxy.connect();
    v1.send(b"PROXY TCP4 203.0.113.5 127.0.0.1 5555 80\r\n");
    v1.send(request);
    assert_redirect(&v1.response(), 301, "https://pp.example/pp", false);
    assert_eq!(a.requests(), 2);
}

#[test]
fn the_host_is_the_one_asked_for_without_its_port() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], behind_a_terminator);
    let mut balancer = proxy.connect();
    for (request, location) in [
        (
            "GET /v6?q HTTP/1.1\r\nHost: [2001:DB8::1]:8080\r\n",
            "https://[2001:db8::1]/v6?q",
        ),
        (
            "GET http://Abs.Example.:80/p HTTP/1.1\r\nHost: other.example\r\n",
            "https://abs.example/p",
        ),
        (
            "GET http://abs.example?x=1 HTTP/1.1\r\nHost: abs.example\r\n",
            "https://abs.example/?x=1",
        ),
        (
            "GET /old HTTP/1.0\r\nHost: old.example\r\nConnection: keep-alive\r\n",
            "https://old.example/old",
        ),
    ] {
        balancer.send(format!("{request}X-Forwarded-Proto: http\r\n\r\n").as_bytes());
        assert_redirect(&balancer.response(), 301, location, false);
    }
    assert_eq!(a.requests(), 0);
}

#[test]
fn requests_that_name_no_resource_to_move_are_served_as_usual() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], behind_a_terminator);
    // HTTP/1.0 without Host (an old health checker): no host to send it to.
    let mut client = proxy.connect();
    client.send(b"GET /legacy HTTP/1.0\r\nX-Forwarded-Proto: http\r\n\r\n");
    let r = client.response();
    assert_eq!((r.status, r.header("x-backend")), (200, Some("a")));
    // OPTIONS * asks about the server, not a resource that could move.
    let mut client = proxy.connect();
    let r = client.request("OPTIONS", "*", &[PLAIN], b"");
    assert_eq!((r.status, r.header("x-backend")), (200, Some("a")));
    let methods: Vec<String> = a
        .seen()
        .iter()
        .map(|s| format!("{} {}", s.method(), s.path()))
        .collect();
    assert_eq!(methods, ["GET /legacy", "OPTIONS *"]);
}

#[test]
fn the_redirect_carries_response_header_fields_and_the_request_id() {
    let a = Backend::echo("a");
    let edits = from_file(
        "response_header.Strict-Transport-Security = max-age=63072000; includeSubDomains\n\
         response_header.X-Frame-Options = DENY\n",
    )
    .response_headers;
    let proxy = start_proxy(&[a.addr], |c| {
        behind_a_terminator(c);
        c.response_headers = edits;
        c.request_id_header = Some("X-Request-ID".into());
    });
    let mut balancer = proxy.connect();
    let r = balancer.get_with("/p", &[PLAIN, ("X-Request-ID", "lb-7")]);
    assert_redirect(&r, 301, "https://test.example/p", false);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains")
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    // The trusted balancer's ID is kept, as on any other answer.
    assert_eq!(r.header("x-request-id"), Some("lb-7"));
    assert_eq!(r.head.get_all("location").count(), 1);
    assert_eq!(a.requests(), 0);
}

#[test]
fn the_cache_neither_answers_nor_stores_a_redirected_request() {
    let a = Backend::start("a", |_, out| {
        respond(out, 200, &[("Cache-Control", "max-age=600")], b"stored");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |c| {
        behind_a_terminator(c);
        c.cache_size = 1 << 20;
    });
    let mut balancer = proxy.connect();
    let r = balancer.get_with("/page", &[PLAIN]);
    assert_redirect(&r, 301, "https://test.example/page", false);
    assert!(r.header("x-cache").is_none());
    let first = balancer.get_with("/page", &[TLS]);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let hit = balancer.get_with("/page", &[TLS]);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    let r = balancer.get_with("/page", &[PLAIN]);
    assert_redirect(&r, 301, "https://test.example/page", false);
    assert_eq!(a.requests(), 1);
}

#[test]
fn a_reload_turns_the_redirect_on_and_off_from_the_next_request() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.real_ip_from = vec![Cidr::parse("127.0.0.1").unwrap()].into();
    });
    let mut balancer = proxy.connect();
    assert_eq!(
        balancer.get_with("/1", &[PLAIN]).status,
        200,
        "off by default"
    );
    proxy.reload(&[a.addr], behind_a_terminator);
    let r = balancer.get_with("/2", &[PLAIN]);
    assert_redirect(&r, 301, "https://test.example/2", false);
    proxy.reload(&[a.addr], |c| {
        c.real_ip_from = vec![Cidr::parse("127.0.0.1").unwrap()].into();
    });
    assert_eq!(balancer.get_with("/3", &[PLAIN]).status, 200);
    assert_eq!(a.requests(), 2);
}

#[test]
fn check_prints_the_keys_and_warns_when_nothing_can_be_https() {
    let good = "targets = 127.0.0.1:9001\nreal_ip_from = 10.0.0.0/8\nredirect_to_https = true\n\
                redirect_to_https_except = /healthz, /.well-known/acme-challenge/\n";
    let (code, stdout, stderr) = inverso_check(good, "warn");
    assert_eq!(code, Some(0), "{stderr}");
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_default()
            .to_string()
    };
    let on = line("redirect_to_https");
    assert!(on.starts_with("redirect_to_https = true "), "{stdout}");
    assert!(on.contains("proxy.conf:3"), "{on}");
    let except = line("redirect_to_https_except");
    assert!(
        except.starts_with("redirect_to_https_except = /healthz, /.well-known/acme-challenge/ "),
        "{stdout}"
    );
    assert!(except.contains("proxy.conf:4"), "{except}");
    assert!(!stderr.contains("redirect_to_https"), "{stderr}");

    // Nothing in front is trusted: every request would be redirected.
    let (code, _, stderr) = inverso_check(
        "targets = 127.0.0.1:9001\n\nredirect_to_https = true\n",
        "warn",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "proxy.conf:3: redirect_to_https: neither real_ip_from, proxy_protocol nor tls_port"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("in a loop"), "{stderr}");
    let (code, _, stderr) = inverso_check(
        "targets = 127.0.0.1:9001\nproxy_protocol = true\nredirect_to_https = true\n",
        "warn",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("redirect_to_https"), "{stderr}");

    let (code, _, stderr) = inverso_check(
        "targets = 127.0.0.1:9001\nredirect_to_https = true\nredirect_to_https_except = healthz\n",
        "warn",
    );
    assert_eq!(code, Some(2));
    assert!(
        stderr
            .contains("proxy.conf:3: redirect_to_https_except: `healthz` does not start with `/`"),
        "{stderr}"
    );
}
