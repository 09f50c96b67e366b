//! `location_rewrite` (nginx's `proxy_redirect`): the URL a backend's
//! `Location` and `Refresh` begin with replaced, for a backend that
//! writes its own address or scheme into its redirects.

mod support;

use std::net::SocketAddr;
use support::*;

/// A backend that answers `GET /go` with a 302 to `location` and a
/// `Refresh` to the same URL, cacheable for a minute.
fn redirecting(location: &'static str) -> Backend {
    Backend::start("r", move |_, out| {
        let refresh = format!("3; url={location}");
        respond(
            out,
            302,
            &[
                ("Location", location),
                ("Refresh", &refresh),
                ("Cache-Control", "max-age=60"),
            ],
            b"moved",
        );
        Action::KeepAlive
    })
}

fn proxy_with(backend: SocketAddr, lines: &str) -> Proxy {
    start_proxy(&[], from_file(&format!("targets = {backend}\n{lines}")))
}

#[test]
fn the_backend_s_own_address_becomes_the_host_the_client_asked_for() {
    let backend = redirecting("http://app.internal:8080/login?next=%2F");
    let rules = "location_rewrite = http://app.internal:8080/ $scheme://$host/\n";
    let proxy = proxy_with(backend.addr, rules);
    let r = proxy.get_on("www.example.test", "/go", &[]);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.head.get("location"),
        Some("http://www.example.test/login?next=%2F")
    );
    assert_eq!(
        r.head.get("refresh"),
        Some("3; url=http://www.example.test/login?next=%2F")
    );
}

#[test]
fn a_scheme_rule_sends_clients_to_https_and_other_urls_go_as_written() {
    let backend = redirecting("http://www.example.test/a");
    let proxy = proxy_with(backend.addr, "location_rewrite = http:// https://\n");
    let r = proxy.connect().get("/go");
    assert_eq!(r.head.get("location"), Some("https://www.example.test/a"));

    let other = redirecting("/relative/path");
    let proxy = proxy_with(other.addr, "location_rewrite = http:// https://\n");
    let r = proxy.connect().get("/go");
    assert_eq!(r.head.get("location"), Some("/relative/path"));
    assert_eq!(r.head.get("refresh"), Some("3; url=/relative/path"));
}

#[test]
fn without_the_key_a_redirect_goes_as_the_backend_wrote_it() {
    let backend = redirecting("http://app.internal:8080/login");
    let proxy = proxy_with(backend.addr, "");
    let r = proxy.connect().get("/go");
    assert_eq!(
        r.head.get("location"),
        Some("http://app.internal:8080/login")
    );
}

#[test]
fn a_pool_has_rules_of_its_own() {
    let (backend, other) = (
        redirecting("http://app.internal/x"),
        redirecting("http://app.internal/x"),
    );
    let text = format!(
        "targets = {0}\npool.p = {1}\nroute./p/ = p\n\
         location_rewrite = http://app.internal/ https://top.example/\n\
         pool.p.location_rewrite = http://app.internal/ https://pool.example/\n",
        backend.addr, other.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = proxy.connect();
    let top = client.get("/go");
    assert_eq!(top.head.get("location"), Some("https://top.example/x"));
    let pooled = client.get("/p/go");
    assert_eq!(pooled.head.get("location"), Some("https://pool.example/x"));
}

#[test]
fn the_cache_stores_the_redirect_each_host_is_sent() {
    let backend = redirecting("http://app.internal/login");
    let text = format!(
        "targets = {}\nlocation_rewrite = http://app.internal/ https://$host/\n",
        backend.addr
    );
    let from_text = from_file(&text);
    let proxy = start_proxy(&[], |c| {
        from_text(c);
        c.cache_size = 1 << 20;
    });
    for host in ["a.example", "b.example"] {
        let miss = proxy.get_on(host, "/go", &[]);
        assert_eq!(x_cache(&miss), "MISS");
        let hit = proxy.get_on(host, "/go", &[]);
        assert_eq!(x_cache(&hit), "HIT");
        let expected = format!("https://{host}/login");
        for r in [&miss, &hit] {
            assert_eq!(r.head.get("location"), Some(&*expected), "{host}");
        }
    }
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_location_a_route_s_rewrite_put_back_is_left_alone() {
    let backend = redirecting("/login");
    let text = format!(
        "targets = {}\nroute./app/ = default rewrite=/\nlocation_rewrite = /app/ /elsewhere/\n",
        backend.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let r = proxy.connect().get("/app/go");
    assert_eq!(r.head.get("location"), Some("/app/login"));
    // The rules read the Refresh the backend wrote, which the route
    // leaves as it is (not under its rewritten prefix here).
    assert_eq!(r.head.get("refresh"), Some("3; url=/login"));
}

#[test]
fn a_pattern_replaces_the_whole_url_with_its_groups_and_the_client_s_host() {
    let backend = redirecting("http://App.Internal:8080/login?next=%2F");
    // nginx's `proxy_redirect ~*^http://[^/]+:8080(/.*)$ $scheme://$host$1`.
    let rules = "location_rewrite = ~*^http://[a-z.]+:8080(/.*)$ $scheme://$host$1\n";
    let proxy = proxy_with(backend.addr, rules);
    let r = proxy.get_on("www.example.test", "/go", &[]);
    assert_eq!(
        r.head.get("location"),
        Some("http://www.example.test/login?next=%2F")
    );
    assert_eq!(
        r.head.get("refresh"),
        Some("3; url=http://www.example.test/login?next=%2F")
    );
    // A named group, by its name; a comma within braces, of the pattern.
    let named = "location_rewrite = ~*^http://[a-z.]{1,64}:8080(?<path>/.*)$ https://$host$path\n";
    let proxy = proxy_with(backend.addr, named);
    let r = proxy.get_on("www.example.test", "/go", &[]);
    assert_eq!(
        r.head.get("location"),
        Some("https://www.example.test/login?next=%2F")
    );
    // Matched in the case written without the `*`.
    let exact = "location_rewrite = ~^http://[a-z.]+:8080(/.*)$ $scheme://$host$1\n";
    let proxy = proxy_with(backend.addr, exact);
    let r = proxy.get_on("www.example.test", "/go", &[]);
    assert_eq!(
        r.head.get("location"),
        Some("http://App.Internal:8080/login?next=%2F")
    );
}

#[test]
fn a_rule_that_is_not_two_urls_is_refused_with_its_line() {
    let message = config_error("targets = 127.0.0.1:1\nlocation_rewrite = http://a/\n");
    assert!(
        message.starts_with("proxy.conf:2: location_rewrite"),
        "{message}"
    );
    assert!(message.contains("`<from> <to>`"), "{message}");
    let message =
        config_error("targets = 127.0.0.1:1\nlocation_rewrite = http://a/ $upstream_addr/\n");
    assert!(message.contains("once the response has come"), "{message}");
    let message = config_error("targets = 127.0.0.1:1\nlocation_rewrite = ~^http://a(/.*) /$2\n");
    assert!(
        message.starts_with("proxy.conf:2: location_rewrite"),
        "{message}"
    );
    assert!(
        message.contains("names `$2`, but the pattern has 1 group(s)"),
        "{message}"
    );
}
