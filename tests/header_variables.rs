//! Variables in `request_header.<Name>` values (nginx's
//! `proxy_set_header X-Client-IP $remote_addr`) over real sockets: an echo
//! backend records what it was sent, and each test compares that with
//! what the client was and did.
//!
//! The client and its request (`$remote_addr`, behind `real_ip_from` too,
//! `$remote_port`, `$request_uri`, `$host`, `$http_<name>`, ...); the
//! syntax (`${name}`, `$$`, names in any case); a value that renders
//! empty, which sends no field and still takes the client's away;
//! `$remote_user` only for a user `auth_basic` accepted; `$request_id`
//! and `$pool` (a pool's own `request_header.*` too); TLS on `tls_port`
//! with and without a client certificate (`$ssl_client_*`,
//! `$ssl_protocol`), and a certificate's name that holds CR LF, which
//! adds no field; one rendering per client request, carried by a retry
//! on another target and by the cache's own requests; a reload; the
//! log's `$ssl_client_i_dn` and `$ssl_client_serial`; and what the
//! loader and `inverso check` refuse, with the line.

mod support;

use rustls::ClientConfig;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::pki::{Ca, Pki};
use support::tls_client::{client_settings, Shown, TlsClient};
use support::*;

// ---------------------------------------------------------------- helpers

/// A proxy in front of `backend` whose proxy.conf holds `lines` after
/// `targets`.
fn proxy_for(backend: &Backend, lines: &str) -> Proxy {
    let text = format!("targets = {}\n{lines}", backend.addr);
    start_proxy(&[backend.addr], from_file(&text))
}

/// Every value of `name` in a request the backend saw.
fn all(seen: &Seen, name: &str) -> Vec<String> {
    seen.head.get_all(name).map(str::to_string).collect()
}

/// The one value of `name` in `seen`, `None` when absent; fails when it
/// came more than once.
#[track_caller]
fn one(seen: &Seen, name: &str) -> Option<String> {
    let values = all(seen, name);
    assert!(values.len() <= 1, "{name} {values:?}:\n{}", seen.head.raw);
    values.into_iter().next()
}

/// The request the backend got for `path` (the request target as sent).
#[track_caller]
fn seen_at(backend: &Backend, path: &str) -> Seen {
    let seen = backend.seen();
    let found = seen.iter().find(|s| s.path() == path).cloned();
    found.unwrap_or_else(|| {
        let paths: Vec<&str> = seen.iter().map(|s| s.path()).collect();
        panic!("the backend got no {path}, only {paths:?}")
    })
}

/// Asserts the fields `expected` gives (`None`: absent) in `seen`.
#[track_caller]
fn assert_fields(seen: &Seen, expected: &[(&str, Option<&str>)]) {
    for (name, value) in expected {
        assert_eq!(
            one(seen, name).as_deref(),
            *value,
            "{name} in:\n{}",
            seen.head.raw
        );
    }
}

/// Milliseconds since the epoch, now.
fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// `$msec` (`1764444352.412`) as milliseconds, if it has that shape.
fn msec_value(text: &str) -> Option<u128> {
    let (secs, millis) = text.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || millis.len() != 3 || !digits(millis) {
        return None;
    }
    Some(secs.parse::<u128>().ok()? * 1000 + millis.parse::<u128>().ok()?)
}

/// `text` has the shape of `pattern`, where `9` is any digit and `M` any
/// ASCII letter.
fn shaped(text: &str, pattern: &str) -> bool {
    text.len() == pattern.len()
        && text.bytes().zip(pattern.bytes()).all(|(t, p)| match p {
            b'9' => t.is_ascii_digit(),
            b'M' => t.is_ascii_alphabetic(),
            _ => t == p,
        })
}

// ---------------------------------------------------------------- the request

/// Every variable of the client and its request, one field each.
const REQUEST_VARIABLES: &str = "\
request_header.X-Addr = $remote_addr
request_header.X-Port = $remote_port
request_header.X-Scheme = $scheme
request_header.X-Method = $request_method
request_header.X-Request = $request
request_header.X-Request-Uri = $request_uri
request_header.X-Uri = $uri
request_header.X-Args = $args
request_header.X-Query = $query_string
request_header.X-Host = $host
request_header.X-Protocol = $server_protocol
request_header.X-Start = t=${msec}
request_header.X-Iso = $time_iso8601
request_header.X-Local = $time_local
";

#[test]
fn cookie_and_arg_send_a_cookie_s_and_a_query_parameter_s_value_but_not_the_sticky_cookie() {
    let backend = Backend::echo("a");
    let proxy = proxy_for(
        &backend,
        "sticky_cookie = srv\nrequest_header.X-Tenant = t=$arg_tenant s=$cookie_session\n\
         request_header.X-Sticky = [$cookie_srv]\n",
    );
    let mut client = proxy.connect();
    let cookie = [("Cookie", "srv=0123456789abcdef; Session=abc")];
    assert_eq!(
        client.get_with("/p?TENANT=acme%20co&x", &cookie).status,
        200
    );
    let seen = seen_at(&backend, "/p?TENANT=acme%20co&x");
    assert_eq!(one(&seen, "x-tenant").as_deref(), Some("t=acme%20co s=abc"));
    // The proxy's own cookie left the request before the value was made.
    assert_eq!(one(&seen, "x-sticky").as_deref(), Some("[]"));
}

#[test]
fn the_backend_sees_the_client_and_its_request_rendered() {
    let backend = Backend::echo("app");
    let proxy = proxy_for(&backend, REQUEST_VARIABLES);
    let mut client = proxy.connect();
    let port = client
        .reader
        .stream
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let before = now_ms();
    client.send(b"GET /shop/items?x=1&y=2 HTTP/1.1\r\nHost: Shop.Example:8080\r\n\r\n");
    assert_eq!(client.response().status, 200);
    let after = now_ms();
    // Absolute form on the same connection: the request-target loses its
    // scheme and host, which $host is taken from.
    client.send(
        b"POST http://Other.Example:81/abs/path?q=%20 HTTP/1.1\r\nHost: other.example:81\r\n\
          Content-Length: 2\r\n\r\nhi",
    );
    assert_eq!(client.response().status, 200);
    let mut old = proxy.connect();
    old.send(b"GET /old HTTP/1.0\r\nHost: a.example\r\n\r\n");
    assert_eq!(old.response().status, 200);

    let seen = seen_at(&backend, "/shop/items?x=1&y=2");
    assert_fields(
        &seen,
        &[
            ("x-addr", Some("127.0.0.1")),
            ("x-port", Some(&port)),
            ("x-scheme", Some("http")),
            ("x-method", Some("GET")),
            ("x-request", Some("GET /shop/items?x=1&y=2 HTTP/1.1")),
            ("x-request-uri", Some("/shop/items?x=1&y=2")),
            ("x-uri", Some("/shop/items")),
            ("x-args", Some("x=1&y=2")),
            ("x-query", Some("x=1&y=2")),
            ("x-host", Some("shop.example")),
            ("x-protocol", Some("HTTP/1.1")),
        ],
    );
    let start = one(&seen, "x-start").unwrap_or_default();
    let msec = start.strip_prefix("t=").and_then(msec_value);
    assert!(
        msec.is_some_and(|ms| before <= ms && ms <= after),
        "X-Start {start:?} is not t=<seconds>.<millis> between {before} and {after} ms"
    );
    let iso = one(&seen, "x-iso").unwrap_or_default();
    assert!(shaped(&iso, "9999-99-99T99:99:99+00:00"), "{iso:?}");
    let local = one(&seen, "x-local").unwrap_or_default();
    assert!(shaped(&local, "99/MMM/9999:99:99:99 +0000"), "{local:?}");

    let absolute = seen_at(&backend, "/abs/path?q=%20");
    assert_fields(
        &absolute,
        &[
            ("x-method", Some("POST")),
            ("x-request-uri", Some("/abs/path?q=%20")),
            ("x-uri", Some("/abs/path")),
            ("x-args", Some("q=%20")),
            ("x-host", Some("other.example")),
            ("x-port", Some(&port)),
        ],
    );
    assert_eq!(absolute.body, b"hi");
    let old = seen_at(&backend, "/old");
    assert_fields(
        &old,
        &[
            ("x-protocol", Some("HTTP/1.0")),
            ("x-host", Some("a.example")),
            ("x-request", Some("GET /old HTTP/1.0")),
        ],
    );
}

#[test]
fn remote_addr_is_the_client_a_trusted_proxy_or_a_proxy_protocol_header_names() {
    let backend = Backend::echo("app");
    let proxy = proxy_for(
        &backend,
        "real_ip_from = 127.0.0.2\nrequest_header.X-Client-IP = $remote_addr\n",
    );
    let balancer: IpAddr = "127.0.0.2".parse().unwrap();
    let mut fronted = Client::connect_from(balancer, proxy.addr);
    let xff = ("X-Forwarded-For", "203.0.113.7");
    assert_eq!(fronted.get_with("/fronted", &[xff]).status, 200);
    // Anyone else's X-Forwarded-For names nobody.
    let mut direct = proxy.connect();
    let forged = ("X-Forwarded-For", "198.51.100.9");
    assert_eq!(direct.get_with("/direct", &[forged]).status, 200);
    let client_ip = |path: &str| one(&seen_at(&backend, path), "x-client-ip");
    assert_eq!(client_ip("/fronted").as_deref(), Some("203.0.113.7"));
    assert_eq!(client_ip("/direct").as_deref(), Some("127.0.0.1"));

    // The client a PROXY protocol header names.
    let balanced = Backend::echo("balanced");
    let proxy = proxy_for(
        &balanced,
        "proxy_protocol = true\nrequest_header.X-Client-IP = $remote_addr\n\
         request_header.X-PP = $proxy_protocol_addr:$proxy_protocol_port\n\
         request_header.X-PP-Front = $proxy_protocol_server_addr:$proxy_protocol_server_port\n",
    );
    let mut client = proxy.connect();
    client.send(b"PROXY TCP4 203.0.113.5 198.51.100.1 5555 443\r\n");
    assert_eq!(client.get("/balanced").status, 200);
    // A balancer's own connection (LOCAL) names no client: empty.
    let mut local = proxy.connect();
    local.send(b"PROXY UNKNOWN\r\n");
    assert_eq!(local.get("/local").status, 200);
    assert_fields(
        &seen_at(&balanced, "/balanced"),
        &[
            ("x-client-ip", Some("203.0.113.5")),
            ("x-pp", Some("203.0.113.5:5555")),
            ("x-pp-front", Some("198.51.100.1:443")),
        ],
    );
    assert_fields(
        &seen_at(&balanced, "/local"),
        &[
            ("x-client-ip", Some("127.0.0.1")),
            ("x-pp", Some(":")),
            ("x-pp-front", Some(":")),
        ],
    );
}

#[test]
fn braces_let_letters_follow_two_dollars_write_one_and_names_take_any_case() {
    let backend = Backend::echo("app");
    let proxy = proxy_for(
        &backend,
        "request_header.X-Braced = ${uri}x\n\
         request_header.X-Price = 5$$\n\
         request_header.X-Case = $Request_Method/${URI}\n\
         request_header.X-Mixed = for=$remote_addr;m=$request_method;$$${args}$$\n\
         request_header.X-Fixed = plain text, no variable\n",
    );
    assert_eq!(proxy.connect().get("/p?a=1").status, 200);
    assert_fields(
        &seen_at(&backend, "/p?a=1"),
        &[
            ("x-braced", Some("/px")),
            ("x-price", Some("5$")),
            ("x-case", Some("GET//p")),
            ("x-mixed", Some("for=127.0.0.1;m=GET;$a=1$")),
            ("x-fixed", Some("plain text, no variable")),
        ],
    );
}

#[test]
fn http_variables_are_the_client_s_fields_joined() {
    let backend = Backend::echo("app");
    let proxy = proxy_for(
        &backend,
        "request_header.X-All = $http_x_multi\n\
         request_header.X-Cookies = $http_cookie\n\
         request_header.X-Agent = [$http_user_agent]\n\
         request_header.X-Trace = $HTTP_X_TRACE_ID\n",
    );
    let fields = [
        ("X-Multi", "a"),
        ("x-multi", "b, c"),
        ("Cookie", "a=1"),
        ("Cookie", "b=2"),
        ("User-Agent", "curl/8.5.0 (x)"),
        ("X-Trace-Id", "t-1"),
    ];
    assert_eq!(proxy.connect().get_with("/h", &fields).status, 200);
    let seen = seen_at(&backend, "/h");
    assert_fields(
        &seen,
        &[
            ("x-all", Some("a, b, c")),
            ("x-cookies", Some("a=1; b=2")),
            ("x-agent", Some("[curl/8.5.0 (x)]")),
            ("x-trace", Some("t-1")),
        ],
    );
    // The client's own fields go on as they were.
    assert_eq!(all(&seen, "x-multi"), ["a", "b, c"]);
    assert_eq!(all(&seen, "x-trace-id"), ["t-1"]);
}

/// nginx's `$is_args`: `?` before a query, nothing without one (nor
/// for an empty one), so that `$uri$is_args$args` writes the target back.
#[test]
fn is_args_is_a_question_mark_only_before_a_query() {
    let backend = Backend::echo("app");
    let proxy = proxy_for(&backend, "request_header.X-Url = [$uri$is_args$args]\n");
    let mut client = proxy.connect();
    for path in ["/none", "/some?q=1", "/empty?"] {
        assert_eq!(client.get(path).status, 200, "{path}");
    }
    for (path, url) in [
        ("/none", "[/none]"),
        ("/some?q=1", "[/some?q=1]"),
        ("/empty?", "[/empty]"),
    ] {
        let seen = seen_at(&backend, path);
        assert_eq!(all(&seen, "x-url"), [url], "{}", seen.head.raw);
    }
}

#[test]
fn a_value_that_renders_empty_sends_no_field_and_the_client_s_is_still_removed() {
    let backend = Backend::echo("app");
    let proxy = proxy_for(
        &backend,
        "request_header.X-Args = $args\n\
         request_header.X-Https = $https\n\
         request_header.X-Verify = $ssl_client_verify\n\
         request_header.X-Id = $request_id\n\
         request_header.X-User = $remote_user\n\
         request_header.X-Absent = $http_x_nothing\n\
         request_header.X-Spaces = ${args}   ${ssl_protocol}\n\
         request_header.X-Kept = [$args]\n",
    );
    let forged = [
        ("X-Args", "forged"),
        ("X-Https", "on"),
        ("X-Verify", "SUCCESS"),
        ("X-Id", "forged"),
        ("X-User", "admin"),
        ("X-Absent", "forged"),
        ("X-Spaces", "forged"),
        ("X-Kept", "forged"),
    ];
    let mut client = proxy.connect();
    assert_eq!(client.get_with("/none", &forged).status, 200);
    assert_eq!(client.get_with("/some?q=1", &forged).status, 200);
    let none = seen_at(&backend, "/none");
    for name in [
        "x-args", "x-https", "x-verify", "x-id", "x-user", "x-absent", "x-spaces",
    ] {
        assert_eq!(
            all(&none, name),
            Vec::<String>::new(),
            "{name}:\n{}",
            none.head.raw
        );
    }
    assert_eq!(all(&none, "x-kept"), ["[]"]);
    // With a query, the field it renders takes the client's place.
    let some = seen_at(&backend, "/some?q=1");
    assert_eq!(all(&some, "x-args"), ["q=1"], "{}", some.head.raw);
    assert_eq!(all(&some, "x-spaces"), ["q=1"], "{}", some.head.raw);
    assert_eq!(all(&some, "x-kept"), ["[q=1]"]);
    assert_eq!(all(&some, "x-verify"), Vec::<String>::new());
}

// ---------------------------------------------------------------- who, which, where

/// ann's password is `secret` (`htpasswd`'s default MD5-crypt).
const USERS: &str = "ann:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\n";
/// `ann:secret` and `ann:wrong`.
const ANN: (&str, &str) = ("Authorization", "Basic YW5uOnNlY3JldA==");
const ANN_WRONG: (&str, &str) = ("Authorization", "Basic YW5uOndyb25n");

#[test]
fn remote_user_is_forwarded_only_for_a_user_auth_basic_accepted() {
    let backend = Backend::echo("app");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, USERS).unwrap();
    let proxy = proxy_for(
        &backend,
        &format!(
            "auth_basic = Staff\nauth_basic_user_file = {}\n\
             auth_basic_except_from = 127.0.0.2\n\
             request_header.X-User = user=$remote_user\n\
             request_header.X-Remote-User = $remote_user\n",
            file.display()
        ),
    );
    let forged = ("X-Remote-User", "root");
    let mut client = proxy.connect();
    assert_eq!(client.get_with("/ann", &[ANN, forged]).status, 200);
    assert_eq!(client.get_with("/wrong", &[ANN_WRONG, forged]).status, 401);
    // Spared from signing in: whatever it claims was not accepted.
    let office: IpAddr = "127.0.0.2".parse().unwrap();
    let mut spared = Client::connect_from(office, proxy.addr);
    assert_eq!(spared.get_with("/spared", &[forged]).status, 200);
    assert_eq!(
        spared
            .get_with("/spared-wrong", &[ANN_WRONG, forged])
            .status,
        200
    );
    let paths: Vec<String> = backend.seen().iter().map(|s| s.path().into()).collect();
    assert_eq!(paths, ["/ann", "/spared", "/spared-wrong"]);
    assert_fields(
        &seen_at(&backend, "/ann"),
        &[("x-user", Some("user=ann")), ("x-remote-user", Some("ann"))],
    );
    for path in ["/spared", "/spared-wrong"] {
        assert_fields(
            &seen_at(&backend, path),
            &[("x-user", Some("user=")), ("x-remote-user", None)],
        );
    }
}

#[test]
fn a_user_claimed_without_auth_basic_is_not_forwarded() {
    let backend = Backend::echo("app");
    let proxy = proxy_for(
        &backend,
        "request_header.X-Remote-User = $remote_user\nrequest_header.X-User = user=$remote_user\n",
    );
    let forged = ("X-Remote-User", "root");
    assert_eq!(
        proxy.connect().get_with("/claimed", &[ANN, forged]).status,
        200
    );
    let seen = seen_at(&backend, "/claimed");
    assert_fields(&seen, &[("x-remote-user", None), ("x-user", Some("user="))]);
    // The credentials themselves go on, as they did.
    assert_eq!(all(&seen, "authorization"), [ANN.1]);
}

#[test]
fn request_id_is_the_id_request_id_header_carries() {
    let backend = Backend::echo("app");
    let proxy = proxy_for(
        &backend,
        "request_id_header = X-Request-Id\nrequest_header.X-Trace = id=$request_id\n",
    );
    let mut client = proxy.connect();
    let first = client.get("/1");
    let second = client.get("/2");
    let mut ids = Vec::new();
    for (path, response) in [("/1", &first), ("/2", &second)] {
        let seen = seen_at(&backend, path);
        let id = one(&seen, "x-request-id").expect("the backend got an ID");
        assert!(!id.is_empty());
        assert_eq!(response.header("x-request-id"), Some(id.as_str()));
        assert_eq!(one(&seen, "x-trace"), Some(format!("id={id}")));
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn connection_and_connection_requests_tell_the_backend_which_client_connection_and_its_count() {
    let backend = Backend::echo("app");
    let proxy = proxy_for(
        &backend,
        "request_header.X-Conn = $connection/$connection_requests\n\
         response_header.X-Conn = $connection/$connection_requests\n",
    );
    let mut first = proxy.connect();
    let mut second = proxy.connect();
    let answers = [
        ("/a1", first.get("/a1")),
        ("/a2", first.get("/a2")),
        ("/b1", second.get("/b1")),
    ];
    let sent: Vec<(u64, u64)> = answers
        .iter()
        .map(|(path, answer)| {
            let value = one(&seen_at(&backend, path), "x-conn").expect("the backend got it");
            assert_eq!(answer.header("x-conn"), Some(value.as_str()), "{path}");
            let (serial, requests) = value.split_once('/').unwrap();
            (serial.parse().unwrap(), requests.parse().unwrap())
        })
        .collect();
    // One connection's two requests, counted; the other's first.
    assert_eq!(sent[0].0, sent[1].0);
    assert_eq!((sent[0].1, sent[1].1, sent[2].1), (1, 2, 1));
    assert_ne!(sent[2].0, sent[0].0);
}

#[test]
fn pool_names_the_pool_routed_to_and_a_pool_s_own_value_takes_the_top_level_s_place() {
    let site = Backend::echo("site");
    let api = Backend::echo("api");
    let text = format!(
        "targets = {}\npool.api = {}\nroute./api/ = api\n\
         request_header.X-Pool = $pool\n\
         request_header.X-Addr = $remote_addr\n\
         pool.api.request_header.X-Pool = api:$pool:$uri\n",
        site.addr, api.addr
    );
    let proxy = start_proxy(&[site.addr], from_file(&text));
    let mut client = proxy.connect();
    assert_eq!(client.get("/home").status, 200);
    assert_eq!(client.get("/api/v1?x=1").status, 200);
    assert_eq!((site.requests(), api.requests()), (1, 1));
    assert_fields(
        &seen_at(&site, "/home"),
        &[("x-pool", Some("default")), ("x-addr", Some("127.0.0.1"))],
    );
    assert_fields(
        &seen_at(&api, "/api/v1?x=1"),
        &[
            ("x-pool", Some("api:api:/api/v1")),
            ("x-addr", Some("127.0.0.1")),
        ],
    );
}

// ---------------------------------------------------------------- TLS

/// The proxy's own certificate, the clients' authority (`tls_client_ca`)
/// and an intermediate of it.
struct Mtls {
    pki: Pki,
    clients: Ca,
    client_ca: String,
}

impl Mtls {
    fn new() -> Mtls {
        Mtls::with_clients_named("Clients-CA")
    }

    /// The clients' authority called `name`.
    fn with_clients_named(name: &str) -> Mtls {
        let pki = Pki::new();
        let clients = Ca::named(name);
        let client_ca = clients.write(pki.dir.path(), "clients-ca.pem");
        Mtls {
            client_ca: client_ca.display().to_string(),
            pki,
            clients,
        }
    }

    /// A proxy in front of `backend`, HTTPS on any free port, client
    /// certificates optional, then `more`.
    fn proxy(&self, backend: &Backend, more: &str) -> Proxy {
        let text = format!(
            "targets = {}\ntls_port = 0\ntls_certificates = {}\n\
             tls_verify_client = optional\ntls_client_ca = {}\n{more}",
            backend.addr, self.pki.entry, self.client_ca
        );
        start_proxy(&[backend.addr], from_file(&text))
    }

    /// A client that speaks `versions` and shows `shown`, if anything.
    fn client(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        shown: Option<Shown>,
    ) -> Arc<ClientConfig> {
        Arc::new(client_settings(&self.pki.ca, versions, shown))
    }
}

fn tls_addr(proxy: &Proxy) -> SocketAddr {
    proxy.handle().tls_addr().expect("tls_port is on")
}

/// `GET path` over a new TLS connection with `config`.
#[track_caller]
fn tls_get(proxy: &Proxy, config: &Arc<ClientConfig>, path: &str) -> Response {
    TlsClient::connect(tls_addr(proxy), config, "localhost").get(path)
}

/// Lower-case hex SHA-1 of `der`.
fn fingerprint(der: &[u8]) -> String {
    sha1(der).iter().map(|b| format!("{b:02x}")).collect()
}

/// The DER element at the start of `der`: its tag, its contents, and
/// what follows it.
fn der_element(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let (len, head) = match der[1] {
        n if n < 0x80 => (usize::from(n), 2),
        n => {
            let count = usize::from(n & 0x7f);
            let len = (der[2..2 + count].iter()).fold(0, |acc, &b| acc << 8 | usize::from(b));
            (len, 2 + count)
        }
    };
    (der[0], &der[head..head + len], &der[head + len..])
}

/// The serial number of the certificate `der`, as `openssl x509 -serial`
/// and nginx's `$ssl_client_serial` write it: the bytes of the INTEGER,
/// upper-case hex.
fn serial_hex(der: &[u8]) -> String {
    let (_, certificate, _) = der_element(der);
    let (_, tbs, _) = der_element(certificate);
    let (tag, mut serial, rest) = der_element(tbs);
    if tag == 0xA0 {
        // [0] the version, then the serial number.
        serial = der_element(rest).1;
    }
    serial.iter().map(|b| format!("{b:02X}")).collect()
}

/// The PEM of the certificate `der`: base64 in lines of 64, each ending
/// in LF.
fn pem_of(der: &[u8]) -> String {
    let encoded = base64(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// `text` URL-encoded as nginx's `$ssl_client_escaped_cert`: every byte
/// but `A-Za-z0-9-._~` as `%XX`, upper-case hex.
fn escaped(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes `%XX` escapes; `None` for a `%` not followed by two hex digits.
fn percent_decoded(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

const TLS_VARIABLES: &str = "\
request_header.X-Verify = $ssl_client_verify
request_header.X-S-Dn = $ssl_client_s_dn
request_header.X-I-Dn = $ssl_client_i_dn
request_header.X-Serial = $ssl_client_serial
request_header.X-Fingerprint = $ssl_client_fingerprint
request_header.X-Cert = $ssl_client_escaped_cert
request_header.X-Protocol = $ssl_protocol
request_header.X-Cipher = $ssl_cipher
request_header.X-Scheme = $scheme
request_header.X-Https = $https
request_header.X-Forwarded-Port = $server_port
request_header.X-Server-Addr = $server_addr
request_header.X-Sni = $ssl_server_name
";

#[test]
fn the_client_certificate_s_validity_is_written_as_nginx_writes_it() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let proxy = m.proxy(
        &backend,
        "request_header.X-V = $ssl_client_v_start|$ssl_client_v_end\n\
         request_header.X-Remain = $ssl_client_v_remain\n",
    );
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    // 2024-03-01 12:00:00 to 2100-01-01 00:00:00.
    let (start, end) = (1_709_294_400, 4_102_444_800);
    let leaf = m.clients.client_leaf_valid("carol", at(start), at(end));
    let days_left = || {
        (end - SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs())
            / 86_400
    };
    let before = days_left();
    let tls13 = [&rustls::version::TLS13];
    let r = tls_get(&proxy, &m.client(&tls13, Some(leaf.shown())), "/carol");
    assert_eq!(r.status, 200);
    let after = days_left();
    let seen = seen_at(&backend, "/carol");
    assert_eq!(
        one(&seen, "x-v").as_deref(),
        Some("Mar  1 12:00:00 2024 GMT|Jan  1 00:00:00 2100 GMT")
    );
    let remain: u64 = one(&seen, "x-remain").unwrap().parse().unwrap();
    assert!((after..=before).contains(&remain), "{remain}");
}

#[test]
fn over_tls_the_backend_is_told_of_the_client_s_certificate() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let proxy = m.proxy(&backend, TLS_VARIABLES);
    let tls13 = [&rustls::version::TLS13];
    let alice = m.clients.client_leaf("alice");
    // The serial number as the test reads it from the DER is the one made.
    assert_eq!(
        u64::from_str_radix(&serial_hex(&alice.der), 16),
        Ok(alice.serial)
    );
    let r = tls_get(&proxy, &m.client(&tls13, Some(alice.shown())), "/alice");
    assert_eq!(r.status, 200);
    // Issued by an intermediate the client sends after its own.
    let issuing = m.clients.intermediate("Clients-Issuing-CA");
    let bob = issuing.client_leaf("bob");
    let shown = bob.shown_with(&[&issuing.der]);
    let r = tls_get(&proxy, &m.client(&tls13, Some(shown)), "/bob");
    assert_eq!(r.status, 200);

    for (path, leaf, issuer) in [
        ("/alice", &alice, "CN=Clients-CA"),
        ("/bob", &bob, "CN=Clients-Issuing-CA"),
    ] {
        let seen = seen_at(&backend, path);
        let subject = format!("CN={}", &path[1..]);
        assert_fields(
            &seen,
            &[
                ("x-verify", Some("SUCCESS")),
                ("x-s-dn", Some(&subject)),
                ("x-i-dn", Some(issuer)),
                ("x-serial", Some(&serial_hex(&leaf.der))),
                ("x-fingerprint", Some(&fingerprint(&leaf.der))),
                ("x-protocol", Some("TLSv1.3")),
                ("x-scheme", Some("https")),
                ("x-https", Some("on")),
                ("x-server-addr", Some("127.0.0.1")),
                // The name the client's hello asked for.
                ("x-sni", Some("localhost")),
            ],
        );
        let cipher = one(&seen, "x-cipher").unwrap_or_default();
        assert!(!cipher.is_empty(), "{}", seen.head.raw);
        assert!(one(&seen, "x-cert").is_some(), "{}", seen.head.raw);
    }
    // The serial numbers are the certificates' own: two leaves, two.
    assert_ne!(serial_hex(&alice.der), serial_hex(&bob.der));
}

#[test]
fn a_name_in_a_certificate_cannot_add_a_field_of_its_own() {
    // The authority's name, which its clients' certificates carry as
    // their issuer, holds CR LF and a field of its own.
    let m = Mtls::with_clients_named("evil\r\nX-Injected: yes");
    let backend = Backend::echo("app");
    let proxy = m.proxy(
        &backend,
        "request_header.X-I-Dn = $ssl_client_i_dn\nrequest_header.X-Who = $ssl_client_s_dn\n",
    );
    let alice = m.clients.client_leaf("alice");
    let config = m.client(rustls::DEFAULT_VERSIONS, Some(alice.shown()));
    assert_eq!(tls_get(&proxy, &config, "/alice").status, 200);
    let seen = seen_at(&backend, "/alice");
    assert_eq!(
        all(&seen, "x-injected"),
        Vec::<String>::new(),
        "{}",
        seen.head.raw
    );
    assert_eq!(one(&seen, "x-who").as_deref(), Some("CN=alice"));
    // RFC 4514 writes a control character as `\0D` (OpenSSL, nginx), a
    // field value's rendering as `\x0D`: either, never the byte.
    let issuer = one(&seen, "x-i-dn").unwrap_or_default();
    assert!(
        [
            r"CN=evil\0D\0AX-Injected: yes",
            r"CN=evil\x0D\x0AX-Injected: yes"
        ]
        .contains(&issuer.as_str()),
        "{issuer:?}:\n{}",
        seen.head.raw
    );
}

#[test]
fn ssl_client_escaped_cert_is_the_certificate_s_pem_url_encoded() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let proxy = m.proxy(
        &backend,
        "request_header.X-Client-Cert = $ssl_client_escaped_cert\n",
    );
    let alice = m.clients.client_leaf("alice");
    let config = m.client(rustls::DEFAULT_VERSIONS, Some(alice.shown()));
    // The PEM this test made, whatever the line ends rcgen wrote.
    let pem = pem_of(&alice.der);
    assert_eq!(pem, alice.cert_pem.replace("\r\n", "\n"));
    assert_eq!(tls_get(&proxy, &config, "/alice").status, 200);
    let seen = seen_at(&backend, "/alice");
    let value = one(&seen, "x-client-cert").expect("X-Client-Cert sent");
    let decoded = percent_decoded(&value).expect("well-formed escapes");
    assert_eq!(String::from_utf8_lossy(&decoded), pem);
    // Exactly nginx's escaping: no other byte left bare, upper-case hex.
    assert_eq!(value, escaped(&pem));
    assert!(
        value.starts_with("-----BEGIN%20CERTIFICATE-----%0A"),
        "{value}"
    );
    assert!(value.ends_with("-----END%20CERTIFICATE-----%0A"), "{value}");
}

#[test]
fn without_a_certificate_verify_is_none_and_over_plain_http_every_tls_variable_is_empty() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let proxy = m.proxy(&backend, TLS_VARIABLES);
    let tls12 = [&rustls::version::TLS12];
    assert_eq!(
        tls_get(&proxy, &m.client(&tls12, None), "/anonymous").status,
        200
    );
    // Over plain HTTP a client's own fields of these names go too.
    let forged: Vec<(&str, &str)> = ["X-Verify", "X-S-Dn", "X-Serial", "X-Protocol", "X-Https"]
        .iter()
        .map(|name| (*name, "forged"))
        .collect();
    assert_eq!(proxy.connect().get_with("/plain", &forged).status, 200);

    let anonymous = seen_at(&backend, "/anonymous");
    assert_fields(
        &anonymous,
        &[
            ("x-verify", Some("NONE")),
            ("x-s-dn", None),
            ("x-i-dn", None),
            ("x-serial", None),
            ("x-fingerprint", None),
            ("x-cert", None),
            ("x-protocol", Some("TLSv1.2")),
            ("x-scheme", Some("https")),
            ("x-https", Some("on")),
        ],
    );
    assert!(one(&anonymous, "x-cipher").is_some_and(|c| !c.is_empty()));
    // The port each connected to: `tls_port`'s, then `port`'s.
    let tls_port = tls_addr(&proxy).port().to_string();
    assert_eq!(one(&anonymous, "x-forwarded-port"), Some(tls_port));
    let plain = seen_at(&backend, "/plain");
    let port = proxy.addr.port().to_string();
    assert_eq!(one(&plain, "x-forwarded-port"), Some(port));
    assert_fields(
        &plain,
        &[
            ("x-verify", None),
            ("x-s-dn", None),
            ("x-i-dn", None),
            ("x-serial", None),
            ("x-fingerprint", None),
            ("x-cert", None),
            ("x-protocol", None),
            ("x-cipher", None),
            ("x-scheme", Some("http")),
            ("x-https", None),
        ],
    );
}

#[test]
fn the_log_writes_the_issuer_and_the_serial_of_a_client_s_certificate() {
    let m = Mtls::new();
    let backend = Backend::echo("app");
    let more = "log_format = $uri $ssl_client_i_dn $ssl_client_serial $ssl_client_s_dn\n";
    let mut proxy = m.proxy(&backend, more);
    let alice = m.clients.client_leaf("alice");
    let config = m.client(rustls::DEFAULT_VERSIONS, Some(alice.shown()));
    assert_eq!(tls_get(&proxy, &config, "/alice").status, 200);
    let anonymous = m.client(rustls::DEFAULT_VERSIONS, None);
    assert_eq!(tls_get(&proxy, &anonymous, "/anonymous").status, 200);
    assert_eq!(proxy.exchange(|c| c.get("/plain")).status, 200);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let mut lines = proxy.log_lines();
    lines.sort();
    let expected = [
        format!("/alice CN=Clients-CA {} CN=alice", serial_hex(&alice.der)),
        "/anonymous - - -".to_string(),
        "/plain - - -".to_string(),
    ];
    assert_eq!(lines, expected);
}

// ---------------------------------------------------------------- once per request

#[test]
fn a_retry_on_another_target_carries_the_values_rendered_once() {
    // The busy one answers 503 once the clock has passed the $msec it
    // was sent: a value rendered again for the retry would differ.
    let busy = Backend::start("busy", |seen, out| {
        if let Some(sent) = seen.head.get("x-start").and_then(msec_value) {
            wait_until(WAIT_LIMIT, || now_ms() > sent + 1);
        }
        respond(out, 503, &[], b"busy");
        Action::KeepAlive
    });
    let spare = Backend::echo("spare");
    let text = format!(
        "targets = {}, {}\nretry_on_status = 503\nrequest_id_header = X-Request-Id\n\
         request_header.X-Start = $msec\nrequest_header.X-Trace = $request_id\n\
         request_header.X-Port = $remote_port\n",
        busy.addr, spare.addr
    );
    let proxy = start_proxy(&[busy.addr, spare.addr], from_file(&text));
    // Round robin over two: one of two requests starts at the busy one.
    for path in ["/1", "/2"] {
        let r = proxy.connect().get(path);
        assert_eq!((r.status, r.header("x-backend")), (200, Some("spare")));
    }
    let tried = busy.seen();
    assert_eq!(tried.len(), 1);
    let first = &tried[0];
    let retried = seen_at(&spare, first.path());
    for name in ["x-start", "x-trace", "x-port"] {
        let value = one(first, name);
        assert!(value.is_some(), "{name}:\n{}", first.head.raw);
        assert_eq!(one(&retried, name), value, "{name}:\n{}", retried.head.raw);
    }
    assert!(msec_value(&one(first, "x-start").unwrap()).is_some());
}

#[test]
fn the_cache_s_fetch_and_revalidations_carry_the_values_of_the_request_they_serve() {
    // Stale on arrival with a window to serve it stale while it is
    // revalidated; the 304 leaves it stale, so the next request
    // revalidates before it is answered.
    let backend = Backend::start("origin", |seen, out| {
        if seen.head.has("if-none-match") {
            write_304(out, &[("ETag", "\"v1\""), ("Cache-Control", "max-age=0")]);
        } else {
            respond(
                out,
                200,
                &[
                    ("Cache-Control", "max-age=50, stale-while-revalidate=1000"),
                    ("Age", "100"),
                    ("ETag", "\"v1\""),
                ],
                b"body",
            );
        }
        Action::KeepAlive
    });
    let text = format!(
        "targets = {}\nrequest_header.X-Agent = $http_user_agent\n\
         request_header.X-Request-Uri = $request_uri\nrequest_header.X-Addr = $remote_addr\n\
         request_header.X-Pool = p=$pool\n",
        backend.addr
    );
    let configure = from_file(&text);
    let proxy = start_proxy(&[backend.addr], |c| {
        configure(c);
        c.cache_size = 4 << 20;
    });
    let get = |agent: &str| proxy.get_on("a.example", "/s?v=1", &[("User-Agent", agent)]);
    assert_eq!(get("one").header("x-cache"), Some("MISS"));
    let stale = get("two");
    assert_eq!(stale.header("x-cache"), Some("STALE"), "{}", stale.head.raw);
    // Revalidated in the background, after the answer.
    assert!(wait_until(WAIT_LIMIT, || backend.requests() == 2));
    let revalidated = get("three");
    assert_eq!(revalidated.header("x-cache"), Some("REVALIDATED"));
    assert_eq!(revalidated.body, b"body");
    let seen = backend.seen();
    assert_eq!(seen.len(), 3);
    for (s, agent) in seen.iter().zip(["one", "two", "three"]) {
        assert_fields(
            s,
            &[
                ("x-agent", Some(agent)),
                ("x-request-uri", Some("/s?v=1")),
                ("x-addr", Some("127.0.0.1")),
                // The background one too, made after the response was logged.
                ("x-pool", Some("p=default")),
            ],
        );
    }
    for s in &seen[1..] {
        assert_eq!(all(s, "if-none-match"), ["\"v1\""], "{}", s.head.raw);
    }
}

#[test]
fn a_reload_changes_the_values_from_the_next_request_on() {
    let backend = Backend::echo("app");
    let before = format!(
        "targets = {}\nrequest_header.X-Who = before:$remote_addr\nrequest_header.X-Was = $uri\n",
        backend.addr
    );
    let proxy = start_proxy(&[backend.addr], from_file(&before));
    let mut held = proxy.connect();
    assert_eq!(held.get("/1").status, 200);
    let after = format!(
        "targets = {}\nrequest_header.X-Who = after:$request_method:${{uri}}!\n",
        backend.addr
    );
    proxy.reload(&[backend.addr], from_file(&after));
    // On a connection open since before the reload too.
    assert_eq!(held.get("/2").status, 200);
    assert_eq!(proxy.connect().get("/3").status, 200);
    assert_fields(
        &seen_at(&backend, "/1"),
        &[("x-who", Some("before:127.0.0.1")), ("x-was", Some("/1"))],
    );
    for path in ["/2", "/3"] {
        let expected = format!("after:GET:{path}!");
        assert_fields(
            &seen_at(&backend, path),
            &[("x-who", Some(&expected)), ("x-was", None)],
        );
    }
}

// ---------------------------------------------------------------- refusals

/// A file with a comment and a blank line before a key that is taken:
/// the case's line is the fifth.
const BASE: &str = "targets = 127.0.0.1:1\n# variables\n\nrequest_header.X-Ok = $remote_addr\n";

/// `BASE` then `lines` is refused as `proxy.conf:LINE: KEY: ...`, saying
/// each of `words`.
#[track_caller]
fn assert_refused_at(lines: &str, line: usize, key: &str, words: &[&str]) {
    let text = format!("{BASE}{lines}");
    let message = config_error(&text);
    let start = format!("proxy.conf:{line}: {key}: ");
    assert!(
        message.starts_with(&start),
        "not {start:?}: {message}\nfor:\n{text}"
    );
    for word in words {
        assert!(
            message.contains(word),
            "does not say {word:?}: {message}\nfor:\n{text}"
        );
    }
}

#[test]
fn unknown_variables_and_those_known_only_with_the_response_are_refused_with_their_line() {
    let bad = "request_header.X-Bad";
    assert_refused_at(
        "request_header.X-Bad = $remote_adr\n",
        5,
        bad,
        &["$remote_adr", "did you mean", "$remote_addr"],
    );
    assert_refused_at(
        "request_header.X-Bad = x=${reqest_uri}\n",
        5,
        bad,
        &["reqest_uri", "did you mean", "$request_uri"],
    );
    // A name runs on over letters: `$urix` is not `$uri` then `x`.
    assert_refused_at("request_header.X-Bad = $urix\n", 5, bad, &["urix"]);
    for name in [
        "status",
        "body_bytes_sent",
        "request_time",
        "upstream_addr",
        "upstream_header_time",
        "upstream_cache_status",
        "duration_ms",
        "upstream_ms",
    ] {
        assert_refused_at(
            &format!("request_header.X-Bad = took $${name}: ${name}\n"),
            5,
            bad,
            &[&format!("${name}"), "response"],
        );
    }
    // A pool's own key, on its own line.
    assert_refused_at(
        "pool.api = 127.0.0.1:2\nroute./api/ = api\npool.api.request_header.X-Bad = $upstream_addr\n",
        7,
        "pool.api.request_header.X-Bad",
        &["$upstream_addr", "response"],
    );
}

#[test]
fn a_variable_in_host_and_a_dollar_that_names_nothing_are_refused_with_their_line() {
    for value in ["$host", "${host}.internal", "api-$pool.internal"] {
        assert_refused_at(
            &format!("request_header.Host = {value}\n"),
            5,
            "request_header.Host",
            &["Host"],
        );
    }
    assert_refused_at(
        "pool.api = 127.0.0.1:2\npool.api.request_header.Host = $host\n",
        6,
        "pool.api.request_header.Host",
        &["Host"],
    );
    let bad = "request_header.X-Bad";
    assert_refused_at("request_header.X-Bad = ${uri\n", 5, bad, &["${", "}"]);
    assert_refused_at("request_header.X-Bad = a $ b\n", 5, bad, &["$"]);
    assert_refused_at("request_header.X-Bad = 5$\n", 5, bad, &["$"]);
    assert_refused_at("request_header.X-Bad = ${}\n", 5, bad, &["$"]);
    // The fixed Host of before is taken, as `$$` in another field.
    let text = format!("{BASE}request_header.Host = api.internal\nrequest_header.X-Price = 5$$\n");
    let mut loader = inverso::config::Loader::new();
    loader.file("proxy.conf", &text).unwrap();
    loader
        .build()
        .unwrap_or_else(|e| panic!("{e}\nin:\n{text}"));
}

#[test]
fn check_prints_the_keys_as_written_and_refuses_with_exit_2() {
    let (code, stdout, stderr) = inverso_check(
        "targets = 127.0.0.1:9001\n\
         request_header.X-Client-IP = $remote_addr\n\
         request_header.X-Request-Start = t=${msec}\n",
        "error",
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("_header.")).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, (starts, at)) in lines.iter().zip([
        ("request_header.X-Client-IP = $remote_addr ", "proxy.conf:2"),
        (
            "request_header.X-Request-Start = t=${msec} ",
            "proxy.conf:3",
        ),
    ]) {
        assert!(line.starts_with(starts) && line.contains(at), "{stdout}");
    }
    let (code, _, stderr) = inverso_check(
        "targets = 127.0.0.1:9001\n\nrequest_header.X-S = $status\n",
        "error",
    );
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("proxy.conf:3: request_header.X-S: ") && stderr.contains("$status"),
        "{stderr}"
    );
}

/// A backend that greets the user the proxy names, in a page fresh for
/// ten minutes (which says nothing of whether it is for one user), and
/// varies on what it is told to.
fn greeting_backend(vary: Option<&'static str>) -> Backend {
    Backend::start("app", move |seen, out| {
        let user = seen.head.get("x-user").unwrap_or("nobody").to_string();
        let mut fields = vec![("Cache-Control", "max-age=600")];
        if let Some(vary) = vary {
            fields.push(("Vary", vary));
        }
        respond(out, 200, &fields, format!("hello {user}").as_bytes());
        Action::KeepAlive
    })
}

#[test]
fn a_page_for_the_user_signed_in_is_not_served_to_another_from_the_cache() {
    // The usual nginx set-up: the backend trusts the proxy's user and
    // never sees the password. Without variables, a request whose
    // Authorization the proxy removes is anyone's for the cache; with
    // them, its answer may be for that user alone.
    let backend = greeting_backend(None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    let users = format!("{USERS}bob:$apr1$abcdefgh$ckT15POyCRlen.h6XtGAZ1\n");
    std::fs::write(&file, users).unwrap();
    let text = format!(
        "targets = {}\nauth_basic = Staff\nauth_basic_user_file = {}\n\
         request_header.Authorization =\nrequest_header.X-User = $remote_user\n",
        backend.addr,
        file.display()
    );
    let configure = from_file(&text);
    let proxy = start_proxy(&[backend.addr], |c| {
        configure(c);
        c.cache_size = 4 << 20;
    });
    let bob = ("Authorization", "Basic Ym9iOmh1bnRlcjI=");
    let mut client = proxy.connect();
    assert_eq!(client.get_with("/page", &[ANN]).body_str(), "hello ann");
    assert_eq!(client.get_with("/page", &[bob]).body_str(), "hello bob");
    assert_eq!(backend.requests(), 2);
    for seen in backend.seen() {
        assert_eq!(one(&seen, "authorization"), None, "{}", seen.head.raw);
    }
}

#[test]
fn a_response_that_varies_on_a_field_set_from_variables_is_not_stored() {
    let backend = greeting_backend(Some("X-Client-IP"));
    let text = format!(
        "targets = {}\nrequest_header.X-Client-IP = $remote_addr\n\
         request_header.X-User = $remote_addr\n",
        backend.addr
    );
    let configure = from_file(&text);
    let proxy = start_proxy(&[backend.addr], |c| {
        configure(c);
        c.cache_size = 4 << 20;
    });
    let from = |ip: &str| {
        let mut client = Client::connect_from(ip.parse().unwrap(), proxy.addr);
        client.get("/page").body_str()
    };
    assert_eq!(from("127.0.0.1"), "hello 127.0.0.1");
    assert_eq!(from("127.0.0.2"), "hello 127.0.0.2");
    assert_eq!(from("127.0.0.2"), "hello 127.0.0.2");
    assert_eq!(backend.requests(), 3, "none stored");
}

#[test]
fn response_fields_with_variables_are_rendered_for_each_request_on_every_answer() {
    let backend = Backend::start("app", |seen, out| {
        match seen.path() {
            "/fail" => respond(out, 503, &[], b"down"),
            _ => respond(out, 200, &[("Cache-Control", "max-age=600")], b"page"),
        }
        Action::KeepAlive
    });
    let text = format!(
        "targets = {}\n\
         response_header.Access-Control-Allow-Origin = $http_origin\n\
         response_header.X-Served-For = $remote_addr $request_method $uri\n\
         response_header.X-Frame-Options = DENY\n\
         route./health = return 200 ok\n",
        backend.addr
    );
    let configure = from_file(&text);
    let proxy = start_proxy(&[backend.addr], |c| {
        configure(c);
        c.cache_size = 4 << 20;
    });
    let origin = |o: &'static str| ("Origin", o);
    let mut client = proxy.connect();
    let miss = client.get_with("/page", &[origin("https://a.example")]);
    let hit = client.get_with("/page", &[origin("https://b.example")]);
    assert_eq!(
        (miss.header("x-cache"), hit.header("x-cache")),
        (Some("MISS"), Some("HIT"))
    );
    let fail = client.get_with("/fail", &[origin("https://c.example")]);
    let own = client.get_with("/health", &[origin("https://d.example")]);
    let none = client.get("/page");
    for (r, allowed, path) in [
        (&miss, Some("https://a.example"), "/page"),
        (&hit, Some("https://b.example"), "/page"),
        (&fail, Some("https://c.example"), "/fail"),
        (&own, Some("https://d.example"), "/health"),
        (&none, None, "/page"),
    ] {
        let raw = &r.head.raw;
        assert_eq!(r.header("access-control-allow-origin"), allowed, "{raw}");
        let served = format!("127.0.0.1 GET {path}");
        assert_eq!(r.header("x-served-for"), Some(served.as_str()), "{raw}");
        assert_eq!(r.head.get_all("x-frame-options").count(), 1, "{raw}");
        assert_eq!(r.head.get_all("x-served-for").count(), 1, "{raw}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{raw}");
    }
    assert_eq!(
        backend.requests(),
        2,
        "the hit and the last one from the cache"
    );
}

#[test]
fn response_fields_name_the_status_the_backend_and_the_cache_of_each_answer() {
    let backend = Backend::start("app", |seen, out| {
        let page = [("Cache-Control", "max-age=600"), ("ETag", "\"v1\"")];
        match seen.path() {
            "/fail" => respond(out, 503, &[], b"down"),
            _ => respond(out, 200, &page, b"page"),
        }
        Action::KeepAlive
    });
    let dead = dead_addr();
    let text = format!(
        "targets = {}\n\
         pool.gone = {dead}\n\
         route./gone/ = gone\n\
         route./health = return 200 ok\n\
         response_header.X-Upstream = $upstream_addr\n\
         response_header.X-Answer = $status $uri [$upstream_cache_status]\n\
         response_header.Server-Timing = upstream;dur=$upstream_ms, total;dur=$duration_ms\n\
         response_header.X-Took = ${{request_time}}s\n",
        backend.addr
    );
    let configure = from_file(&text);
    let proxy = start_proxy(&[backend.addr], |c| {
        configure(c);
        c.cache_size = 4 << 20;
    });
    let mut client = proxy.connect();
    let miss = client.get("/page");
    let hit = client.get("/page");
    let not_modified = client.get_with("/page", &[("If-None-Match", "\"v1\"")]);
    let fail = client.get("/fail");
    let gone = client.get("/gone/x");
    let own = client.get("/health");
    let up = backend.addr.to_string();
    let dead = dead.to_string();
    let cases = [
        (&miss, 200, Some(&*up), "200 /page [MISS]"),
        (&hit, 200, None, "200 /page [HIT]"),
        (&not_modified, 304, None, "304 /page [HIT]"),
        (&fail, 503, Some(&*up), "503 /fail [MISS]"),
        (&gone, 502, Some(&*dead), "502 /gone/x []"),
        (&own, 200, None, "200 /health []"),
    ];
    let seconds = |v: &str| {
        let (whole, frac) = v.split_once('.').unwrap_or_else(|| panic!("{v}"));
        assert!(whole.parse::<u64>().is_ok() && frac.len() == 3, "{v}");
        assert!(frac.parse::<u64>().is_ok(), "{v}");
    };
    for (r, status, upstream, answer) in cases {
        let raw = &r.head.raw;
        assert_eq!(r.status, status, "{raw}");
        assert_eq!(r.header("x-upstream"), upstream, "{raw}");
        assert_eq!(r.header("x-answer"), Some(answer), "{raw}");
        assert_eq!(r.head.get_all("x-answer").count(), 1, "{raw}");
        let took = r.header("x-took").unwrap_or_else(|| panic!("{raw}"));
        seconds(took.strip_suffix('s').unwrap_or_else(|| panic!("{raw}")));
        let timing = r.header("server-timing").unwrap_or_else(|| panic!("{raw}"));
        let (upstream_part, total) = timing.split_once(", ").unwrap_or_else(|| panic!("{raw}"));
        seconds(
            total
                .strip_prefix("total;dur=")
                .unwrap_or_else(|| panic!("{raw}")),
        );
        // Only a backend's answer has its time.
        match status {
            200 | 503 if upstream.is_some() => {
                seconds(upstream_part.strip_prefix("upstream;dur=").unwrap())
            }
            _ => assert_eq!(upstream_part, "upstream;dur=", "{raw}"),
        }
    }
    assert_eq!(backend.requests(), 2, "/page once, and /fail");
}

#[test]
fn a_response_field_cannot_name_the_size_of_a_body_not_yet_sent() {
    let e = config_error("targets = 127.0.0.1:1\nresponse_header.X-Size = $body_bytes_sent\n");
    assert!(e.contains("proxy.conf:2: response_header.X-Size"), "{e}");
    assert!(e.contains("only once the body has been sent"), "{e}");
}

#[test]
fn an_intercepted_error_page_names_the_backend_and_the_cache_as_its_answer_would() {
    let backend = Backend::start("app", |_, out| {
        respond(out, 503, &[], b"down");
        Action::KeepAlive
    });
    let pages = tempfile::tempdir().unwrap();
    std::fs::write(pages.path().join("503.html"), "<h1>busy</h1>").unwrap();
    let text = format!(
        "targets = {}\nerror_pages = {}\nintercept_errors = true\n\
         response_header.X-Answer = [$upstream_cache_status] [$upstream_addr] $status\n",
        backend.addr,
        pages.path().display()
    );
    let configure = from_file(&text);
    let proxy = start_proxy(&[], |c| {
        configure(c);
        c.cache_size = 4 << 20;
    });
    let r = proxy.connect().get("/x");
    assert_eq!((r.status, r.body_str().as_str()), (503, "<h1>busy</h1>"));
    let expected = format!("[MISS] [{}] 503", backend.addr);
    assert_eq!(
        r.header("x-answer"),
        Some(expected.as_str()),
        "{}",
        r.head.raw
    );
}
