//! `auth_basic` and `auth_basic_user_file`: HTTP Basic sign-in against an
//! htpasswd file, for the whole proxy or for one pool, before the cache
//! and the backends; refusals counted, and configuration mistakes caught
//! by `inverso check`.

mod support;

use std::path::Path;
use support::*;
use support::{from_file, from_file_with_admin};

/// ann's password is `secret` (`htpasswd`'s default MD5-crypt); bob's is
/// `Hello world!` (SHA-512 crypt).
const USERS: &str = "ann:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\n\
bob:$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1\n";

/// `Authorization` values: `ann:secret`, `ann:wrong`, `bob:Hello world!`.
const ANN: (&str, &str) = ("Authorization", "Basic YW5uOnNlY3JldA==");
const ANN_WRONG: (&str, &str) = ("Authorization", "Basic YW5uOndyb25n");
const BOB: (&str, &str) = ("Authorization", "Basic Ym9iOkhlbGxvIHdvcmxkIQ==");

/// The users file in `dir`, its path as a config value.
fn users_file(dir: &Path, text: &str) -> String {
    let path = dir.join("htpasswd");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// proxy.conf for a proxy in front of `backend` whose clients sign in
/// to `Staff` as the users of `file`, then `more`.
fn signing_in(backend: &Backend, file: &str, more: &str) -> String {
    format!(
        "targets = {}\nauth_basic = Staff\nauth_basic_user_file = {file}\n{more}",
        backend.addr
    )
}

#[test]
fn a_request_without_a_user_of_the_file_is_answered_401_and_never_forwarded() {
    let backend = Backend::echo("app");
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path(), USERS);
    let mut proxy = start_proxy(
        &[backend.addr],
        from_file_with_admin(&format!(
            "targets = {}\nauth_basic = Staff only\nauth_basic_user_file = {file}\n",
            backend.addr
        )),
    );
    for fields in [
        &[][..],
        &[ANN_WRONG],
        &[("Authorization", "Bearer abc")],
        &[ANN, BOB],
    ] {
        let r = proxy.get_on("app.example", "/private", fields);
        assert_eq!(r.status, 401, "{fields:?}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"Staff only\", charset=\"UTF-8\""),
            "{fields:?}"
        );
    }
    assert_eq!(backend.requests(), 0);
    for fields in [[ANN], [BOB]] {
        let r = proxy.get_on("app.example", "/private", &fields);
        assert_eq!(r.status, 200, "{fields:?}");
        assert!(r.header("www-authenticate").is_none());
    }
    // The backend gets the field, as nginx passes it on.
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].field_or("authorization", "-"), ANN.1);
    let missing = "inverso_auth_refused_total{reason=\"missing\"}";
    let wrong = "inverso_auth_refused_total{reason=\"wrong\"}";
    assert_eq!(proxy.metric(missing), Some(2));
    assert_eq!(proxy.metric(wrong), Some(2));
    assert!(proxy.shutdown(std::time::Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.iter().filter(|l| l.contains("\" 401 ")).count(), 4);
}

#[test]
fn a_browser_asked_to_sign_in_goes_on_on_the_same_connection() {
    let backend = Backend::echo("app");
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path(), USERS);
    let proxy = start_proxy(&[backend.addr], from_file(&signing_in(&backend, &file, "")));
    let mut client = proxy.connect();
    let r = client.get("/a");
    assert_eq!(r.head.start_line, "HTTP/1.1 401 Unauthorized");
    assert_eq!(client.get_with("/a", &[ANN]).status, 200);
    assert_eq!(client.get_with("/b", &[ANN]).status, 200);
    // Accepted once on this connection does not make a wrong password
    // right, nor a request without any.
    assert_eq!(client.get_with("/c", &[ANN_WRONG]).status, 401);
    assert_eq!(client.get("/d").status, 401);
    assert_eq!(client.get_with("/e", &[ANN]).status, 200);
    assert_eq!(backend.requests(), 3);
    // A refused request with a body closes the connection, its body
    // unread: it could not be told from the next request.
    let r = client.request("POST", "/f", &[], b"payload");
    assert_eq!(r.status, 401);
    assert!(client.is_closed());
    assert_eq!(backend.requests(), 3);
}

#[test]
fn a_pool_signs_in_on_its_own_and_the_others_do_not() {
    let site = Backend::echo("site");
    let admin = Backend::echo("admin");
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path(), USERS);
    let mut proxy = start_proxy(
        &[site.addr],
        from_file(&format!(
            "targets = {}\npool.admin = {}\npool.admin.auth_basic = Admin\n\
             pool.admin.auth_basic_user_file = {file}\nroute./admin/ = admin\n",
            site.addr, admin.addr
        )),
    );
    assert_eq!(proxy.get_on("x", "/", &[]).status, 200);
    let r = proxy.get_on("x", "/admin/users", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"Admin\", charset=\"UTF-8\"")
    );
    assert_eq!(proxy.get_on("x", "/admin/users", &[ANN]).status, 200);
    assert_eq!((site.requests(), admin.requests()), (1, 1));
    // The log names the pool that refused.
    assert!(proxy.shutdown(std::time::Duration::from_secs(5)));
    let lines = proxy.log_lines();
    let refused = lines.iter().find(|l| l.contains("\" 401 ")).unwrap();
    assert!(refused.contains("pool=admin"), "{refused}");
}

#[test]
fn a_pool_may_turn_the_top_levels_sign_in_off_and_return_routes_answer_first() {
    let site = Backend::echo("site");
    let public = Backend::echo("public");
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path(), USERS);
    let proxy = start_proxy(
        &[site.addr],
        from_file(&format!(
            "targets = {}\nauth_basic = Staging\nauth_basic_user_file = {file}\n\
             pool.public = {}\npool.public.auth_basic = off\nroute./public/ = public\n\
             route./healthz = return 200 ok\n",
            site.addr, public.addr
        )),
    );
    assert_eq!(proxy.get_on("x", "/", &[]).status, 401);
    assert_eq!(proxy.get_on("x", "/", &[BOB]).status, 200);
    assert_eq!(proxy.get_on("x", "/public/a", &[]).status, 200);
    // As nginx's `return` (its rewrite phase) before `auth_basic`.
    let r = proxy.get_on("x", "/healthz", &[]);
    assert_eq!((r.status, r.body_str().as_str()), (200, "ok"));
    assert_eq!((site.requests(), public.requests()), (1, 1));
}

#[test]
fn nothing_the_cache_holds_reaches_a_client_not_signed_in() {
    let backend = Backend::start("app", |_, out| {
        respond(
            out,
            200,
            &[("Cache-Control", "public, max-age=300")],
            b"members only",
        );
        Action::KeepAlive
    });
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path(), USERS);
    let tweak = from_file(&signing_in(&backend, &file, ""));
    let proxy = start_proxy(&[backend.addr], |c| {
        tweak(c);
        c.cache_size = 1 << 20;
    });
    let r = proxy.get_on("x", "/page", &[ANN]);
    expect(&r, 200, "MISS", "members only");
    let r = proxy.get_on("x", "/page", &[BOB]);
    expect(&r, 200, "HIT", "members only");
    let r = proxy.get_on("x", "/page", &[]);
    assert_eq!(r.status, 401);
    assert!(!r.body_str().contains("members only"));
    let r = proxy.get_on("x", "/page", &[ANN_WRONG]);
    assert_eq!(r.status, 401);
    assert_eq!(backend.requests(), 1);
}

/// A backend whose answers may be stored, but for no one's credentials
/// (no `public`).
fn cacheable_origin() -> Backend {
    Backend::start("app", |_, out| {
        respond(out, 200, &[("Cache-Control", "max-age=300")], b"page");
        Action::KeepAlive
    })
}

/// One page of a [`cacheable_origin`] asked through a proxy with a cache,
/// configured by `text`, by two clients signed in with `users`' fields:
/// each answer's `X-Cache`, and the `field` the backend saw first.
fn cached_for_two(
    text: impl Fn(&Backend) -> String,
    users: [(&str, &str); 2],
    field: &str,
) -> (String, String, String) {
    let backend = cacheable_origin();
    let tweak = from_file(&text(&backend));
    let proxy = start_proxy(&[backend.addr], |c| {
        tweak(c);
        c.cache_size = 1 << 20;
    });
    let first = proxy.get_on("x", "/page", &[users[0]]);
    let second = proxy.get_on("x", "/page", &[users[1]]);
    assert_eq!(proxy.get_on("x", "/page", &[]).status, 401);
    let seen = backend.seen()[0].field_or(field, "-");
    (
        x_cache(&first).to_string(),
        x_cache(&second).to_string(),
        seen,
    )
}

#[test]
fn a_pool_that_keeps_credentials_from_its_backends_is_cached_for_everyone_signed_in() {
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path(), USERS);
    let run = |strip: &str| {
        let text = |backend: &Backend| signing_in(backend, &file, strip);
        cached_for_two(text, [ANN, BOB], "authorization")
    };
    // As RFC 9111 §3.5 asks: the backend saw credentials, so what it
    // answered is not stored for a shared cache.
    let (first, second, seen) = run("");
    assert_eq!((first.as_str(), second.as_str()), ("MISS", "MISS"));
    assert_eq!(seen, ANN.1);
    // Taken out before the backend: nothing it answers is anyone's own.
    let (first, second, seen) = run("request_header.Authorization =\n");
    assert_eq!((first.as_str(), second.as_str()), ("MISS", "HIT"));
    assert_eq!(seen, "-");
}

#[test]
fn the_401_takes_its_error_page() {
    let backend = Backend::echo("app");
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path(), USERS);
    let pages = dir.path().join("pages");
    std::fs::create_dir(&pages).unwrap();
    std::fs::write(pages.join("401.html"), "<p>Sign in, please</p>").unwrap();
    let proxy = start_proxy(
        &[backend.addr],
        from_file(&signing_in(
            &backend,
            &file,
            &format!("error_pages = {}\n", pages.display()),
        )),
    );
    let r = proxy.get_on("x", "/", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.body_str(), "<p>Sign in, please</p>");
    assert!(r.header("www-authenticate").is_some());
}

#[test]
fn a_reload_reads_the_users_file_again_for_open_connections_too() {
    let backend = Backend::echo("app");
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path(), USERS);
    let text = signing_in(&backend, &file, "");
    let proxy = start_proxy(&[backend.addr], from_file(&text));
    let mut client = proxy.connect();
    assert_eq!(client.get_with("/a", &[ANN]).status, 200);
    // ann is taken out of the file.
    users_file(dir.path(), &USERS[USERS.find("bob:").unwrap()..]);
    proxy.reload(&[backend.addr], from_file(&text));
    assert_eq!(client.get_with("/b", &[ANN]).status, 401);
    assert_eq!(client.get_with("/c", &[BOB]).status, 200);
    assert_eq!(backend.requests(), 2);
}

#[test]
fn clients_of_auth_basic_except_from_need_not_sign_in() {
    let backend = Backend::echo("app");
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path(), USERS);
    let proxy = start_proxy(
        &[backend.addr],
        from_file(&signing_in(
            &backend,
            &file,
            "auth_basic_except_from = 127.0.0.2\n",
        )),
    );
    let office: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut spared = Client::connect_from(office, proxy.addr);
    assert_eq!(spared.get("/a").status, 200);
    // Credentials of a user go on; others are taken out, so that no
    // backend takes the name for a user signed in.
    assert_eq!(spared.get_with("/b", &[ANN]).status, 200);
    assert_eq!(spared.get_with("/c", &[ANN_WRONG]).status, 200);
    let mut other = proxy.connect();
    assert_eq!(other.get("/d").status, 401);
    assert_eq!(other.get_with("/e", &[ANN]).status, 200);
    let seen: Vec<(String, String)> = (backend.seen().iter())
        .map(|s| (s.path().to_string(), s.field_or("authorization", "-")))
        .collect();
    let expected = [("/a", "-"), ("/b", ANN.1), ("/c", "-"), ("/e", ANN.1)];
    assert_eq!(seen, expected.map(|(p, a)| (p.to_string(), a.to_string())));
    // The log names the user who signed in, not the spared one's guess;
    // its writer thread may not have written the last lines yet.
    assert!(wait_until(WAIT_LIMIT, || proxy.log_lines().len() >= 5));
    let lines = proxy.log_lines();
    let user_of = |path: &str| {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("GET {path} ")))
            .unwrap();
        line.split(' ').nth(2).unwrap().to_string()
    };
    assert_eq!(user_of("/b"), "ann");
    assert_eq!(user_of("/c"), "-");
}

#[test]
fn the_admin_listener_asks_its_own_users_but_for_healthz() {
    let backend = Backend::echo("app");
    let dir = tempfile::tempdir().unwrap();
    let admins = users_file(dir.path(), &USERS[USERS.find("bob:").unwrap()..]);
    let proxy = start_proxy(
        &[backend.addr],
        from_file_with_admin(&format!(
            "targets = {}\nadmin_auth_basic_user_file = {admins}\n",
            backend.addr
        )),
    );
    let admin = proxy.handle().admin_addr().unwrap();
    let ask = |request_line: &str, fields: &[(&str, &str)]| {
        let mut request = format!("{request_line}\r\nHost: 127.0.0.1\r\n");
        for (name, value) in fields {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("Content-Length: 5\r\n\r\ndrain");
        one_request(admin, request.as_bytes())
    };
    let target = format!("/targets/{}", backend.addr);
    for (line, fields) in [
        ("GET /metrics HTTP/1.1", &[][..]),
        ("GET /status HTTP/1.1", &[ANN]),
        ("DELETE /cache HTTP/1.1", &[ANN_WRONG]),
        (&format!("PUT {target} HTTP/1.1"), &[]),
    ] {
        let r = ask(line, fields);
        assert_eq!(r.status, 401, "{line}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"inverso admin\", charset=\"UTF-8\""),
            "{line}"
        );
    }
    // Refused before its body is asked for.
    let mut waiting = Client::connect(admin);
    waiting.send(
        format!(
            "PUT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n\
             Content-Length: 5\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(waiting.response().status, 401);
    // The PUT did not drain the target.
    assert_eq!(proxy.get_on("x", "/", &[]).status, 200);
    assert_eq!(ask("GET /healthz HTTP/1.1", &[]).status, 200);
    assert_eq!(ask("GET /metrics HTTP/1.1", &[BOB]).status, 200);
    let r = ask(&format!("PUT {target} HTTP/1.1"), &[BOB]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    // The target is drained now: 503, not 401 (the file is the admin
    // listener's alone).
    assert_eq!(proxy.get_on("x", "/", &[]).status, 503);
}

#[test]
fn check_refuses_a_realm_without_users_users_without_a_realm_and_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path(), USERS);
    let bad = dir.path().join("bad");
    std::fs::write(
        &bad,
        "ann:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\nbob:plain\n",
    )
    .unwrap();
    let bad = bad.display();
    let cases = [
        (
            "auth_basic = Staff\n".to_string(),
            "proxy.conf:2: auth_basic: is on, but auth_basic_user_file is empty".to_string(),
        ),
        (
            format!("auth_basic_user_file = {file}\n"),
            "proxy.conf:2: auth_basic_user_file: is set, but auth_basic is off".to_string(),
        ),
        (
            format!("pool.a = 127.0.0.1:2\npool.a.auth_basic_user_file = {file}\n"),
            "proxy.conf:3: pool.a.auth_basic_user_file: is set, but auth_basic is off".to_string(),
        ),
        (
            format!("auth_basic = Staff\nauth_basic_user_file = {bad}\n"),
            format!(
                "proxy.conf:3: auth_basic_user_file: {bad}:2: user `bob`: a password in plain text"
            ),
        ),
        (
            "auth_basic_except_from = 10.0.0.0/8\n".to_string(),
            "proxy.conf:2: auth_basic_except_from: is set, but auth_basic is off".to_string(),
        ),
        (
            "auth_basic = Say \"hi\"\n".to_string(),
            "proxy.conf:2: auth_basic: '\"' in a realm".to_string(),
        ),
    ];
    for (text, expected) in cases {
        let text = format!("targets = 127.0.0.1:1\n{text}");
        let (code, _, stderr) = inverso_check(&text, "warn");
        assert_eq!(code, Some(2), "{text}");
        assert!(stderr.contains(&expected), "{text}\n{stderr}");
    }
    // A pool that turns the sign-in off keeps the top level's file.
    let text = format!(
        "targets = 127.0.0.1:1\nauth_basic = Staff\nauth_basic_user_file = {file}\n\
         pool.a = 127.0.0.1:2\npool.a.auth_basic = off\n\
         pool.b = 127.0.0.1:3\npool.b.auth_basic_except_from = 10.0.0.0/8\n"
    );
    let (code, stdout, stderr) = inverso_check(&text, "warn");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("# auth_basic_user_file: 2 users"),
        "{stdout}"
    );
    let pool_line = "# pool a: balance round_robin, auth_basic off";
    assert!(stdout.contains(pool_line), "{stdout}");
    let pool_line = "# pool b: balance round_robin, auth_basic \"Staff\" but for 10.0.0.0/8";
    assert!(stdout.contains(pool_line), "{stdout}");
    // ann's MD5-crypt is quicker to check than bob's SHA-512 crypt.
    assert!(stderr.contains("differ in kind or cost"), "{stderr}");
    let alike = users_file(dir.path(), &USERS[..USERS.find("bob:").unwrap()]);
    let text =
        format!("targets = 127.0.0.1:1\nauth_basic = Staff\nauth_basic_user_file = {alike}\n");
    let (code, _, stderr) = inverso_check(&text, "warn");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("differ in kind or cost"), "{stderr}");
    assert!(!stderr.contains("auth_basic_except_from"), "{stderr}");
    // Spared blocks that spare more than they seem to: warned of.
    for (more, says) in [
        (
            "auth_basic_except_from = 0.0.0.0/0\n",
            "spares every client",
        ),
        (
            "real_ip_from = 10.0.0.1\nauth_basic_except_from = 10.0.0.0/8\n",
            "shares addresses with real_ip_from (10.0.0.1/32)",
        ),
    ] {
        let (code, _, stderr) = inverso_check(&format!("{text}{more}"), "warn");
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stderr.contains(says), "{more}: {stderr}");
    }
}

#[test]
fn a_declared_length_over_max_body_size_is_413_before_auth_basic() {
    let backend = Backend::echo("app");
    let dir = tempfile::tempdir().unwrap();
    let file = users_file(dir.path(), USERS);
    let conf = signing_in(&backend, &file, "max_body_size = 1000\n");
    let proxy = start_proxy(&[backend.addr], from_file(&conf));
    let mut client = proxy.connect();
    client.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5000000\r\n\r\n");
    let r = client.response();
    assert_eq!(r.status, 413, "{}", r.head.raw);
    assert_eq!(backend.requests(), 0);
}

// ---------------------------------------------------------------- auth_jwt

mod jwt {
    use super::*;
    use base64::Engine as _;
    use ring::rand::SystemRandom;
    use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An identity provider's P-256 key, published as a JWKS.
    struct Issuer {
        pair: EcdsaKeyPair,
        rng: SystemRandom,
        /// The key's id, in the JWKS and each token's header.
        kid: &'static str,
    }

    impl Issuer {
        fn new() -> Issuer {
            Issuer::with_kid("k1")
        }

        fn with_kid(kid: &'static str) -> Issuer {
            let rng = SystemRandom::new();
            let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
            Issuer { pair, rng, kid }
        }

        fn jwks(&self) -> String {
            let point = self.pair.public_key().as_ref();
            format!(
                r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"{}","use":"sig","x":"{}","y":"{}"}}]}}"#,
                self.kid,
                b64(&point[1..33]),
                b64(&point[33..])
            )
        }

        /// Its JWKS written in `dir`, as `auth_jwt_key_file` reads it.
        fn published_in(&self, dir: &Path) -> std::path::PathBuf {
            let path = dir.join("jwks.json");
            std::fs::write(&path, self.jwks()).unwrap();
            path
        }

        /// A token with `claims`, as `Authorization: Bearer`.
        fn bearer(&self, claims: &str) -> String {
            let header = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, self.kid);
            let signed = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
            let signature = self.pair.sign(&self.rng, signed.as_bytes()).unwrap();
            format!("Bearer {signed}.{}", b64(signature.as_ref()))
        }
    }

    fn now() -> u64 {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        since.unwrap().as_secs()
    }

    #[test]
    fn a_request_without_a_valid_token_is_answered_401_and_never_forwarded() {
        let backend = Backend::echo("api");
        let issuer = Issuer::new();
        let dir = tempfile::tempdir().unwrap();
        let keys = issuer.published_in(dir.path());
        let text = format!(
            "targets = {}\nauth_jwt = api\nauth_jwt_key_file = {}\nlog_format = $remote_user $status\n\
             request_header.X-User = $remote_user\n",
            backend.addr,
            keys.display()
        );
        let mut proxy = start_proxy(&[backend.addr], from_file_with_admin(&text));
        let valid = issuer.bearer(&format!(r#"{{"sub":"ann","exp":{}}}"#, now() + 600));
        let expired = issuer.bearer(&format!(r#"{{"sub":"ann","exp":{}}}"#, now() - 1));
        let other = Issuer::new().bearer(r#"{"sub":"ann"}"#);

        let r = proxy.get_on("api.example", "/orders", &[]);
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"api\""));
        for bad in [
            expired.as_str(),
            &other,
            "Bearer not.a.token",
            "Basic YW5uOnNlY3JldA==",
        ] {
            let r = proxy.get_on("api.example", "/orders", &[("Authorization", bad)]);
            let challenge = match bad.starts_with("Bearer") {
                true => "Bearer realm=\"api\", error=\"invalid_token\"",
                false => "Bearer realm=\"api\"",
            };
            assert_eq!(
                (r.status, r.header("www-authenticate")),
                (401, Some(challenge)),
                "{bad}"
            );
        }
        assert_eq!(backend.requests(), 0);

        let r = proxy.get_on("api.example", "/orders", &[("Authorization", &valid)]);
        assert_eq!(r.status, 200);
        // The backend gets the token, to read its claims, and the subject
        // where the operator asked, in place of any the client sent.
        assert_eq!(backend.seen()[0].field_or("authorization", "-"), valid);
        assert_eq!(backend.seen()[0].field_or("x-user", "-"), "ann");
        let fields = [("Authorization", valid.as_str()), ("X-User", "admin")];
        assert_eq!(proxy.get_on("api.example", "/orders", &fields).status, 200);
        assert_eq!(backend.seen()[1].field_or("x-user", "-"), "ann");
        let missing = "inverso_auth_refused_total{reason=\"missing\"}";
        let wrong = "inverso_auth_refused_total{reason=\"wrong\"}";
        assert_eq!(proxy.metric(missing), Some(2));
        assert_eq!(proxy.metric(wrong), Some(3));
        assert!(proxy.shutdown(std::time::Duration::from_secs(5)));
        // `$remote_user`: a valid token's subject; a Basic field's user
        // (nginx's `$remote_user` too), refused all the same.
        let lines = proxy.log_lines();
        let expected = [
            "- 401", "- 401", "- 401", "- 401", "ann 401", "ann 200", "ann 200",
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn a_pool_takes_its_token_from_a_cookie_too() {
        let (site, api) = (Backend::echo("site"), Backend::echo("api"));
        let issuer = Issuer::new();
        let dir = tempfile::tempdir().unwrap();
        let keys = issuer.published_in(dir.path());
        let text = format!(
            "targets = {}\npool.api = {}\nroute./api/ = api\npool.api.auth_jwt = api\n\
             pool.api.auth_jwt_key_file = {}\npool.api.auth_jwt_cookie = session\n",
            site.addr,
            api.addr,
            keys.display()
        );
        let proxy = start_proxy(&[site.addr], from_file(&text));
        let bearer = issuer.bearer(r#"{"sub":"ann"}"#);
        let token = bearer.strip_prefix("Bearer ").unwrap();
        let cookie = format!("theme=dark; session={token}");
        let get = |fields: &[(&str, &str)]| proxy.get_on("x", "/api/orders", fields).status;
        assert_eq!(get(&[("Cookie", &cookie)]), 200);
        assert_eq!(get(&[("Authorization", &bearer)]), 200);
        assert_eq!(get(&[("Cookie", "session=x.y.z")]), 401);
        assert_eq!(get(&[("Cookie", "theme=dark")]), 401);
        // Not the top level's: the site asks for nothing.
        assert_eq!(proxy.get_on("x", "/", &[]).status, 200);
        assert_eq!((api.requests(), site.requests()), (2, 1));
        for (key, value) in [
            ("auth_jwt_cookie", "x"),
            ("auth_jwt_issuer", "x"),
            ("auth_jwt_audience", "x"),
            ("auth_jwt_leeway", "30s"),
        ] {
            let e = config_error(&format!("targets = 127.0.0.1:1\n{key} = {value}\n"));
            assert!(
                e.contains(&format!("{key}: is set, but auth_jwt is off")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_token_issued_by_another_or_for_another_audience_is_refused() {
        let backend = Backend::echo("api");
        let issuer = Issuer::new();
        let dir = tempfile::tempdir().unwrap();
        let keys = issuer.published_in(dir.path());
        let text = format!(
            "targets = {}\nauth_jwt = api\nauth_jwt_key_file = {}\n\
             auth_jwt_issuer = https://id.example\nauth_jwt_audience = orders\n\
             request_header.X-Groups = $jwt_claim_groups\nauth_jwt_leeway = 1m\n",
            backend.addr,
            keys.display()
        );
        let proxy = start_proxy(&[backend.addr], from_file(&text));
        let answer = |claims: &str| {
            let bearer = issuer.bearer(claims);
            let r = proxy.get_on("x", "/", &[("Authorization", &bearer)]);
            (r.status, r.header("www-authenticate").map(str::to_string))
        };
        let ours = r#"{"iss":"https://id.example","aud":["web","orders"],"groups":["ops","dev"]}"#;
        assert_eq!(answer(ours), (200, None));
        // A claim handed on to the backend, as the operator asked.
        assert_eq!(backend.seen()[0].field_or("x-groups", "-"), "ops,dev");
        let invalid = Some("Bearer realm=\"api\", error=\"invalid_token\"".to_string());
        for claims in [
            r#"{"iss":"https://id.example","aud":"web"}"#,
            r#"{"iss":"https://other.example","aud":"orders"}"#,
            r#"{"aud":"orders"}"#,
            r#"{"iss":"https://id.example"}"#,
        ] {
            assert_eq!(answer(claims), (401, invalid.clone()), "{claims}");
        }
        assert_eq!(backend.requests(), 1);
        // Within the leeway of its expiry, and past it.
        let expired = |ago: u64| {
            let exp = now() - ago;
            format!(r#"{{"iss":"https://id.example","aud":"orders","exp":{exp}}}"#)
        };
        assert_eq!(answer(&expired(20)).0, 200);
        assert_eq!(answer(&expired(120)), (401, invalid.clone()));
        assert_eq!(backend.requests(), 2);
    }

    #[test]
    fn a_valid_token_whose_claims_lack_what_is_required_is_refused_403() {
        let backend = Backend::echo("api");
        let issuer = Issuer::new();
        let dir = tempfile::tempdir().unwrap();
        let keys = issuer.published_in(dir.path());
        let text = format!(
            "targets = {}\nauth_jwt = api\nauth_jwt_key_file = {}\n\
             auth_jwt_require = scope=orders:read, realm_access.roles=admin|auditor\n\
             log_format = $remote_user $status ${{jwt_claim_realm_access.roles}} $jwt_claim_scope\n\
             request_header.X-Roles = ${{jwt_claim_realm_access.roles}}\n",
            backend.addr,
            keys.display()
        );
        let mut proxy = start_proxy(&[backend.addr], from_file_with_admin(&text));
        let answer = |claims: &str| {
            let bearer = issuer.bearer(claims);
            let r = proxy.get_on("x", "/", &[("Authorization", &bearer)]);
            (r.status, r.header("www-authenticate").map(str::to_string))
        };
        let keycloak = |scope: &str, roles: &str| {
            format!(r#"{{"sub":"ann","scope":"{scope}","realm_access":{{"roles":{roles}}}}}"#)
        };
        assert_eq!(
            answer(&keycloak("profile orders:read", r#"["auditor","user"]"#)),
            (200, None)
        );
        assert_eq!(backend.seen()[0].field_or("x-roles", "-"), "auditor,user");
        let insufficient = Some("Bearer realm=\"api\", error=\"insufficient_scope\"".to_string());
        for claims in [
            keycloak("profile", r#"["admin"]"#),
            keycloak("orders:read", r#"["user"]"#),
            r#"{"sub":"ann","scope":"orders:read"}"#.to_string(),
        ] {
            assert_eq!(answer(&claims), (403, insufficient.clone()), "{claims}");
        }
        assert_eq!(backend.requests(), 1);
        // A token that is no valid one is still 401, whatever it claims.
        let forged = Issuer::new().bearer(&keycloak("orders:read", r#"["admin"]"#));
        let r = proxy.get_on("x", "/", &[("Authorization", &forged)]);
        assert_eq!(r.status, 401);
        let forbidden = "inverso_auth_refused_total{reason=\"forbidden\"}";
        assert_eq!(proxy.metric(forbidden), Some(3));
        assert!(proxy.shutdown(Duration::from_secs(5)));
        // Refused, but who it is, and what it claims, are known; a token
        // no key verifies says nothing.
        assert_eq!(
            proxy.log_lines(),
            [
                "ann 200 auditor,user profile orders:read",
                "ann 403 admin profile",
                "ann 403 user orders:read",
                "ann 403 - orders:read",
                "- 401 - -"
            ]
        );
        let e = config_error("targets = 127.0.0.1:1\nauth_jwt_require = scope=x\n");
        assert!(
            e.contains("auth_jwt_require: is set, but auth_jwt is off"),
            "{e}"
        );
        let e = config_error(&format!(
            "targets = 127.0.0.1:1\nauth_jwt = api\nauth_jwt_key_file = {}\n\
             auth_jwt_require = scope\n",
            keys.display()
        ));
        assert!(e.contains("auth_jwt_require: `scope`: give a claim"), "{e}");
    }

    #[test]
    fn a_token_in_a_field_of_its_own_leaves_authorization_to_auth_basic() {
        let backend = Backend::echo("app");
        let issuer = Issuer::new();
        let dir = tempfile::tempdir().unwrap();
        let keys = issuer.published_in(dir.path());
        // Behind Cloudflare Access, whose assertion names the user, an
        // application with its own Basic sign-in.
        let jwt = format!(
            "auth_jwt = access\nauth_jwt_key_file = {}\n\
             auth_jwt_header = Cf-Access-Jwt-Assertion\n",
            keys.display()
        );
        let text = signing_in(&backend, &users_file(dir.path(), USERS), &jwt);
        let proxy = start_proxy(&[backend.addr], from_file(&text));
        let assertion = issuer.bearer(r#"{"sub":"ann@example.com"}"#);
        let assertion = assertion.trim_start_matches("Bearer ");
        let both = [ANN, ("Cf-Access-Jwt-Assertion", assertion)];
        assert_eq!(proxy.get_on("x", "/", &both).status, 200);
        assert_eq!(backend.seen()[0].field_or("authorization", "-"), ANN.1);
        let r = proxy.get_on("x", "/", &[ANN]);
        assert_eq!(
            (r.status, r.header("www-authenticate")),
            (401, Some("Bearer realm=\"access\""))
        );
        let r = proxy.get_on("x", "/", &[("Cf-Access-Jwt-Assertion", assertion)]);
        assert_eq!(r.status, 401);
        assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
        // A Bearer in Authorization is no token here.
        let bearer = issuer.bearer(r#"{"sub":"ann@example.com"}"#);
        let r = proxy.get_on("x", "/", &[("Authorization", &bearer)]);
        assert_eq!(r.status, 401);
        assert_eq!(backend.requests(), 1);
        let e = config_error(&format!(
            "targets = 127.0.0.1:1\nauth_jwt = api\nauth_jwt_key_file = {}\n\
             auth_jwt_header = Cookie\n",
            keys.display()
        ));
        assert!(
            e.contains("auth_jwt_header: `Cookie` is a field HTTP gives"),
            "{e}"
        );
    }

    #[test]
    fn a_token_in_a_field_of_its_own_keeps_answers_from_the_cache_as_authorization_does() {
        let issuer = Issuer::new();
        let dir = tempfile::tempdir().unwrap();
        let keys = issuer.published_in(dir.path());
        let token = |sub: &str| {
            let bearer = issuer.bearer(&format!(r#"{{"sub":"{sub}"}}"#));
            bearer.trim_start_matches("Bearer ").to_string()
        };
        let (ann, bob) = (token("ann"), token("bob"));
        let run = |more: &str| {
            let text = |backend: &Backend| {
                format!(
                    "targets = {}\nauth_jwt = app\nauth_jwt_key_file = {}\n\
                     auth_jwt_header = X-Token\n{more}",
                    backend.addr,
                    keys.display()
                )
            };
            cached_for_two(text, [("X-Token", &ann), ("X-Token", &bob)], "x-token")
        };
        // The backend saw who asked: its answer (max-age, not public) is
        // ann's, not bob's.
        let (first, second, seen) = run("");
        assert_eq!((first.as_str(), second.as_str()), ("MISS", "MISS"));
        assert_eq!(seen, ann);
        // Taken out before the backend: its answer is anyone's.
        let (first, second, seen) = run("request_header.X-Token =\n");
        assert_eq!((first.as_str(), second.as_str()), ("MISS", "HIT"));
        assert_eq!(seen, "-");
    }

    /// An identity provider's `jwks_uri`: answers each `GET` with the
    /// status and body it is given, said good for an hour, then closes.
    fn key_server(served: &Arc<Mutex<(u16, String)>>) -> Backend {
        let served = served.clone();
        Backend::start("idp", move |_, out| {
            let (status, body) = served.lock().unwrap().clone();
            let fields = [
                ("Content-Type", "application/json"),
                ("Cache-Control", "max-age=3600"),
            ];
            respond(out, status, &fields, body.as_bytes());
            Action::Close
        })
    }

    /// The status of a request with `token`, asked every 50 ms until it
    /// is `status` (or 20 s have passed, and the test fails).
    fn becomes(proxy: &Proxy, token: &str, status: u16) -> bool {
        let answer = || proxy.get_on("api.example", "/orders", &[("Authorization", token)]);
        wait_until(Duration::from_secs(20), || {
            let done = answer().status == status;
            if !done {
                std::thread::sleep(Duration::from_millis(50));
            }
            done
        })
    }

    #[test]
    fn keys_fetched_from_a_pool_come_when_it_answers_and_stay_while_it_fails() {
        let backend = Backend::echo("api");
        let served = Arc::new(Mutex::new((503, "down for maintenance".to_string())));
        let idp = key_server(&served);
        let issuer = Issuer::new();
        let text = format!(
            "targets = {}\nauth_jwt = api\npool.idp = {}\n\
             auth_jwt_key_request = idp /protocol/openid-connect/certs\nauth_jwt_key_cache = 1s\n",
            backend.addr, idp.addr
        );
        let proxy = start_proxy(&[backend.addr], from_file_with_admin(&text));
        let valid = issuer.bearer(&format!(r#"{{"sub":"ann","exp":{}}}"#, now() + 600));
        // No keys yet: nothing can be verified, and it is not the
        // client's doing.
        let r = proxy.get_on("api.example", "/orders", &[("Authorization", &valid)]);
        assert_eq!((r.status, r.header("retry-after")), (503, Some("10")));
        assert!(wait_until(Duration::from_secs(10), || idp.requests() >= 1));
        let r = proxy.get_on("api.example", "/orders", &[("Authorization", &valid)]);
        assert_eq!(r.status, 503);
        assert_eq!(backend.requests(), 0);
        let keys_status = || proxy.admin("GET", "/status", "").body_str();
        let none_yet = r#""jwt_keys":[{"pool":"idp","path":"/protocol/openid-connect/certs","keys":0,"fetched_s_ago":null,"every_s":1}]"#;
        assert!(keys_status().contains(none_yet), "{}", keys_status());
        // The admin listener's page says the same, for people.
        let page = proxy.admin("GET", "/", "").body_str();
        let row = "<tr><td class=\"name\">idp</td><td class=\"name\">\
                   /protocol/openid-connect/certs</td><td>0</td><td>not yet</td><td>1s</td></tr>";
        assert!(page.contains(row), "{page}");
        let asked = &idp.seen()[0];
        assert_eq!(
            (asked.method(), asked.path()),
            ("GET", "/protocol/openid-connect/certs")
        );

        *served.lock().unwrap() = (200, issuer.jwks());
        assert!(becomes(&proxy, &valid, 200));
        assert_eq!(backend.requests(), 1);
        let one = r#""jwt_keys":[{"pool":"idp","path":"/protocol/openid-connect/certs","keys":1,"fetched_s_ago":"#;
        assert!(keys_status().contains(one), "{}", keys_status());
        // auth_jwt_key_cache wins over the hour the answer says.
        assert!(
            keys_status().contains(r#""every_s":1}]"#),
            "{}",
            keys_status()
        );
        let page = proxy.admin("GET", "/", "").body_str();
        let row = "/protocol/openid-connect/certs</td><td>1</td><td>";
        let (_, fetched) = page.split_once(row).unwrap_or_else(|| panic!("{page}"));
        assert!(
            fetched.split("</td>").next().unwrap().ends_with("s ago"),
            "{page}"
        );
        let forged = Issuer::new().bearer(r#"{"sub":"ann"}"#);
        let r = proxy.get_on("api.example", "/orders", &[("Authorization", &forged)]);
        assert_eq!(r.status, 401);

        // The provider fails, then answers what is no key set: the keys
        // that came are kept through both.
        for broken in [
            (500, "oops".to_string()),
            (200, r#"{"keys":[]}"#.to_string()),
        ] {
            *served.lock().unwrap() = broken;
            let seen = idp.requests();
            assert!(wait_until(Duration::from_secs(10), || idp.requests() >= seen + 2));
            let r = proxy.get_on("api.example", "/orders", &[("Authorization", &valid)]);
            assert_eq!(r.status, 200);
        }
        let fetches = |result: &str| {
            let name = format!("inverso_jwt_key_fetches_total{{result=\"{result}\"}}");
            proxy.metric(&name).unwrap()
        };
        // Counted once each fetch is judged, a moment after it is asked.
        assert!(wait_until(Duration::from_secs(10), || fetches("failed") >= 5));
        assert!(fetches("ok") >= 1);
        assert!(fetches("ok") + fetches("failed") <= idp.requests() as u64);

        // A reload asking the same goes on with those keys while the
        // provider still fails; one asking for another path has none.
        proxy.reload(&[backend.addr], from_file(&text));
        let r = proxy.get_on("api.example", "/orders", &[("Authorization", &valid)]);
        assert_eq!(r.status, 200);
        let elsewhere = text.replace("/protocol/openid-connect/certs", "/keys");
        proxy.reload(&[backend.addr], from_file(&elsewhere));
        let r = proxy.get_on("api.example", "/orders", &[("Authorization", &valid)]);
        assert_eq!(r.status, 503);
    }

    #[test]
    fn a_token_naming_a_new_key_has_the_keys_fetched_again_at_once() {
        let backend = Backend::echo("api");
        let (old, new) = (Issuer::with_kid("2026-11"), Issuer::with_kid("2026-12"));
        let served = Arc::new(Mutex::new((200, old.jwks())));
        let idp = key_server(&served);
        // A pool asks a key server in the default pool (an application
        // that publishes its own keys), and fetches them every hour only.
        let text = format!(
            "targets = {}\npool.api = {}\nroute./orders = api\n\
             pool.api.auth_jwt = api\npool.api.auth_jwt_key_request = default /jwks.json\n\
             pool.api.auth_jwt_key_cache = 1h\n",
            idp.addr, backend.addr
        );
        let proxy = start_proxy(&[idp.addr], from_file(&text));
        let claims = format!(r#"{{"sub":"ann","exp":{}}}"#, now() + 600);
        assert!(becomes(&proxy, &old.bearer(&claims), 200));
        assert_eq!(idp.requests(), 1);

        // The provider rotates: its new key is published, and the first
        // token signed by it is refused, but has the keys fetched again
        // well before the hour is out.
        *served.lock().unwrap() = (200, new.jwks());
        assert!(becomes(&proxy, &new.bearer(&claims), 200));
        assert_eq!(idp.requests(), 2, "one fetch, however many tokens asked");
        let r = proxy.get_on(
            "api.example",
            "/orders",
            &[("Authorization", &old.bearer(&claims))],
        );
        assert_eq!(r.status, 401, "the key withdrawn is no longer taken");
        assert!(backend.seen().iter().all(|r| r.path() == "/orders"));
    }

    const DISCOVERY: &str = "/realms/shop/.well-known/openid-configuration";

    /// An identity provider behind a pool named `id.example.com` (its
    /// `request_header.Host`): its discovery document at [`DISCOVERY`]
    /// is `document`, and its key set, at `/realms/shop/certs`, says it
    /// may be kept an hour.
    fn provider(document: &Arc<Mutex<String>>, keys: String) -> Backend {
        let document = document.clone();
        Backend::start("idp", move |request, out| {
            let json = ("Content-Type", "application/json");
            match request.path() {
                DISCOVERY => {
                    let document = document.lock().unwrap().clone();
                    respond(out, 200, &[json], document.as_bytes())
                }
                "/realms/shop/certs" => {
                    let fields = [json, ("Cache-Control", "public, max-age=3600")];
                    respond(out, 200, &fields, keys.as_bytes())
                }
                _ => respond(out, 404, &[], b""),
            }
            Action::Close
        })
    }

    fn document(issuer: &str, jwks_uri: &str) -> String {
        format!(r#"{{"issuer":"{issuer}","jwks_uri":"{jwks_uri}"}}"#)
    }

    const SHOP: &str = "https://id.example.com/realms/shop";
    const SHOP_KEYS: &str = "https://id.example.com/realms/shop/certs";

    /// A configuration asking the [`provider`] for keys of issuer
    /// [`SHOP`].
    fn asking_the_provider(backend: &Backend, idp: &Backend, more: &str) -> String {
        format!(
            "targets = {}\nauth_jwt = api\nauth_jwt_issuer = {SHOP}\n\
             pool.idp = {}\npool.idp.request_header.Host = id.example.com\n\
             auth_jwt_key_request = idp {DISCOVERY}\n{more}",
            backend.addr, idp.addr
        )
    }

    #[test]
    fn keys_are_found_from_the_providers_discovery_document_and_kept_as_long_as_they_say() {
        let backend = Backend::echo("api");
        let issuer = Issuer::new();
        let found = Arc::new(Mutex::new(document(SHOP, SHOP_KEYS)));
        let idp = provider(&found, issuer.jwks());
        let text = asking_the_provider(&backend, &idp, "");
        let proxy = start_proxy(&[backend.addr], from_file_with_admin(&text));
        let claims = format!(r#"{{"sub":"ann","iss":"{SHOP}","exp":{}}}"#, now() + 600);
        assert!(becomes(&proxy, &issuer.bearer(&claims), 200));
        let forged = Issuer::new().bearer(&claims);
        let r = proxy.get_on("api.example", "/orders", &[("Authorization", &forged)]);
        assert_eq!(r.status, 401);
        let asked: Vec<String> = idp.seen().iter().map(|r| r.path().to_string()).collect();
        assert_eq!(asked[..2], [DISCOVERY, "/realms/shop/certs"], "{asked:?}");
        let hosts = idp
            .seen()
            .iter()
            .map(|r| r.field_or("host", ""))
            .collect::<Vec<_>>();
        assert!(hosts.iter().all(|h| h == "id.example.com"), "{hosts:?}");
        // The key set said an hour, and no auth_jwt_key_cache says else.
        let status = proxy.admin("GET", "/status", "").body_str();
        let said = format!(r#""path":"{DISCOVERY}","keys":1,"#);
        let every = r#""every_s":3600}"#;
        assert!(status.contains(&said) && status.contains(every), "{status}");
    }

    #[test]
    fn a_discovery_document_of_another_issuer_or_host_gives_no_keys_until_it_is_right() {
        let issuer = Issuer::new();
        let claims = format!(r#"{{"sub":"ann","iss":"{SHOP}","exp":{}}}"#, now() + 600);
        let token = issuer.bearer(&claims);
        for wrong in [
            document("https://id.example.com/realms/other", SHOP_KEYS),
            document(SHOP, "https://keys.example.net/realms/shop/certs"),
        ] {
            let backend = Backend::echo("api");
            let found = Arc::new(Mutex::new(wrong.clone()));
            let idp = provider(&found, issuer.jwks());
            // A failure is tried again within the cache time.
            let text = asking_the_provider(&backend, &idp, "auth_jwt_key_cache = 1s\n");
            let proxy = start_proxy(&[backend.addr], from_file_with_admin(&text));
            let failed = || proxy.metric("inverso_jwt_key_fetches_total{result=\"failed\"}");
            assert!(wait_until(Duration::from_secs(10), || failed() >= Some(1)));
            let r = proxy.get_on("api.example", "/orders", &[("Authorization", &token)]);
            assert_eq!(r.status, 503, "{wrong}");
            let paths = || {
                idp.seen()
                    .iter()
                    .map(|r| r.path().to_string())
                    .collect::<Vec<_>>()
            };
            assert!(
                paths().iter().all(|p| p == DISCOVERY),
                "{wrong}: {:?}",
                paths()
            );
            assert_eq!(backend.requests(), 0);
            // Keys come once the document is the issuer's, of its host.
            *found.lock().unwrap() = document(SHOP, SHOP_KEYS);
            assert!(becomes(&proxy, &token, 200), "{wrong}");
        }
    }

    #[test]
    fn keys_come_from_one_source_a_pool_named_and_check_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Issuer::new().published_in(dir.path());
        let keys = keys.display();
        let base = "targets = 127.0.0.1:1\npool.idp = 127.0.0.1:2\n";
        for (more, says) in [
            (
                format!("auth_jwt = api\nauth_jwt_key_file = {keys}\nauth_jwt_key_request = idp /jwks\n"),
                "auth_jwt_key_request: and auth_jwt_key_file are both set".to_string(),
            ),
            (
                "auth_jwt = api\nauth_jwt_key_request = ipd /jwks\n".into(),
                "auth_jwt_key_request: no pool is named `ipd`".into(),
            ),
            (
                "auth_jwt = api\nauth_jwt_key_request = idp jwks\n".into(),
                "`jwks` is not a path".into(),
            ),
            (
                "auth_jwt_key_request = idp /jwks\n".into(),
                "auth_jwt_key_request: is set, but auth_jwt is off".into(),
            ),
            (
                format!("auth_jwt = api\nauth_jwt_key_file = {keys}\nauth_jwt_key_cache = 1m\n"),
                "auth_jwt_key_cache: is set, but auth_jwt_key_request is empty".into(),
            ),
            (
                "auth_jwt = api\nauth_jwt_key_request = idp /jwks\nauth_jwt_key_cache = 500ms\n"
                    .into(),
                "auth_jwt_key_cache: less than 1s".into(),
            ),
            (
                "auth_jwt_key_cache = 1m\n".into(),
                "auth_jwt_key_cache: is set, but auth_jwt is off".into(),
            ),
        ] {
            let e = config_error(&format!("{base}{more}"));
            assert!(e.contains(&says), "{more}: {e}");
        }
        // The default it had before it followed the answers, as the
        // proxy.conf shipped then writes it, still loads.
        let (code, _, err) = inverso_check(&format!("{base}auth_jwt_key_cache = 10m\n"), "");
        assert_eq!(code, Some(0), "{err}");
        // A pool's own file in place of the top level's request, and the
        // other way round: each scope has the source it names.
        let (code, out, err) = inverso_check(
            &format!(
                "{base}auth_jwt = api\nauth_jwt_key_request = idp /jwks\nauth_jwt_key_cache = 2m\n\
                 pool.local = 127.0.0.1:3\npool.local.auth_jwt_key_file = {keys}\n\
                 pool.other = 127.0.0.1:4\npool.other.auth_jwt_key_request = default /keys\n\
                 route./local/ = local\nroute./other/ = other\n"
            ),
            "",
        );
        assert_eq!(code, Some(0), "{err}");
        for line in [
            "# auth_jwt_key_request: GET /jwks of pool idp, every 120s once running\n",
            "# pool local: auth_jwt_key_file: 1 key: EC P-256 `k1`\n",
            "# pool other: auth_jwt_key_request: GET /keys of pool default, every 120s once running\n",
        ] {
            assert!(out.contains(line), "{line}{out}");
        }
        assert!(!out.contains("# pool idp: auth_jwt"), "{out}");
        assert!(!err.contains("pool.idp: no route"), "{err}");
    }

    #[test]
    fn the_keys_and_the_realm_go_together_and_a_bad_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Issuer::new().published_in(dir.path());
        let keys = keys.display();
        let alone = config_error("targets = 127.0.0.1:1\nauth_jwt = api\n");
        assert!(
            alone.contains(
                "auth_jwt: is on, but auth_jwt_key_file and auth_jwt_key_request are empty"
            ),
            "{alone}"
        );
        let file = config_error(&format!(
            "targets = 127.0.0.1:1\nauth_jwt_key_file = {keys}\n"
        ));
        assert!(
            file.contains("auth_jwt_key_file: is set, but auth_jwt is off"),
            "{file}"
        );
        let both = config_error(&format!(
            "targets = 127.0.0.1:1\nauth_jwt = api\nauth_jwt_key_file = {keys}\n\
             auth_basic = staff\nauth_basic_user_file = {}\n",
            users_file(dir.path(), USERS)
        ));
        assert!(
            both.contains("both read the one Authorization field"),
            "{both}"
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}"#).unwrap();
        let e = config_error(&format!(
            "targets = 127.0.0.1:1\nauth_jwt = api\nauth_jwt_key_file = {}\n",
            bad.display()
        ));
        assert!(
            e.contains("bad.json: key 1: an HMAC secret of 5 bytes"),
            "{e}"
        );
        // `check` says what it read, and where a token is asked for.
        let (code, out, err) = inverso_check(
            &format!(
                "targets = 127.0.0.1:1\nauth_jwt = api\nauth_jwt_key_file = {keys}\n\
                 pool.open = 127.0.0.1:2\npool.open.auth_jwt = off\nroute./open/ = open\n"
            ),
            "",
        );
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains("# auth_jwt_key_file: 1 key: EC P-256 `k1`\n"),
            "{out}"
        );
        assert!(
            out.contains("# pool open: balance round_robin, auth_jwt off"),
            "{out}"
        );
    }
}
