//! `auth_request` and `auth_request_headers`: each request first asked of
//! a gateway pool (nginx's `auth_request`, Traefik's `forwardAuth`) with a
//! `GET` carrying the client's fields and where it was going; a 2xx lets
//! it through with the fields the gateway named, any other answer goes to
//! the client as it came and the backend is never asked. Before the files
//! and the cache; counted on `/metrics`; mistakes caught by the loader.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use support::*;
use support::{from_file, from_file_with_admin};

/// The body of the gateway's refusal: a sign-in page's link.
const SIGN_IN: &str = "<a href=\"https://sso.example/login\">sign in first</a>";

/// The cookie the gateway knows as ann's session.
const SIGNED_IN: (&str, &str) = ("Cookie", "theme=dark; session=ok");

/// A gateway as oauth2-proxy or Authelia answer: on `/verify` (and
/// `/admin-verify`), 200 with `Remote-User: ann` to a request whose
/// cookies hold `session=ok`; 204 with no user to `session=anon`; 401 to
/// an expired bearer token; otherwise a 302 to its sign-in page, its body
/// in chunks, with fields a client must not get (an `X-Accel-*` one, a
/// hop-by-hop one named in `Connection`). Any other path is its own
/// sign-in page, 200.
fn gateway() -> Backend {
    Backend::start("sso", |seen, out| {
        if !seen.path().ends_with("verify") {
            let body = format!("sso login page {}", seen.path());
            respond(out, 200, &[("X-Backend", "sso")], body.as_bytes());
            return Action::KeepAlive;
        }
        let cookie = seen.field_or("cookie", "");
        let has = |s: &str| cookie.split(';').any(|c| c.trim() == s);
        if has("session=ok") {
            let fields = [
                ("Remote-User", "ann"),
                ("Remote-Groups", "staff"),
                ("Remote-Groups", "ops"),
                ("X-Not-Named", "secret"),
                ("Set-Cookie", "session=ok; Path=/; HttpOnly"),
            ];
            respond(out, 200, &fields, b"yes");
        } else if has("session=anon") {
            respond(out, 204, &[("X-Not-Named", "anon")], b"");
        } else if seen.field_or("authorization", "") == "Bearer expired" {
            let fields = [("WWW-Authenticate", "Bearer error=\"invalid_token\"")];
            respond(out, 401, &fields, b"token expired");
        } else {
            let location = format!(
                "https://sso.example/login?rd={}",
                seen.field_or("x-original-url", "-")
            );
            let mut head = format!(
                "HTTP/1.1 302 Found\r\n\
                 Location: {location}\r\n\
                 Set-Cookie: csrf=c1; Path=/; HttpOnly\r\n\
                 X-Accel-Redirect: /internal/secret\r\n\
                 X-Accel-Buffering: no\r\n\
                 X-Powered-By: gatekeeper\r\n\
                 Connection: X-Hop\r\n\
                 X-Hop: dropped\r\n\
                 Transfer-Encoding: chunked\r\n\r\n"
            )
            .into_bytes();
            head.extend_from_slice(&chunked(SIGN_IN.as_bytes(), 7, ""));
            let _ = out.write_all(&head);
        }
        Action::KeepAlive
    })
}

/// proxy.conf: targets `app`, the pool `sso` at `gate` asked of `/verify`
/// for every request, `Remote-User` and `Remote-Groups` taken from its
/// yes, then `more`.
fn guarded(app: SocketAddr, gate: SocketAddr, more: &str) -> String {
    format!(
        "targets = {app}\npool.sso = {gate}\nauth_request = sso /verify\n\
         auth_request_headers = Remote-User, Remote-Groups\n{more}"
    )
}

/// The requests the gateway was asked (its `/verify` GETs), in order.
fn questions(gate: &Backend) -> Vec<Seen> {
    gate.seen()
        .into_iter()
        .filter(|s| s.path().ends_with("verify"))
        .collect()
}

/// Every value of `name` in a request a backend saw.
fn all(seen: &Seen, name: &str) -> Vec<String> {
    seen.head.get_all(name).map(str::to_string).collect()
}

/// Asserts that `r` is the gateway's sign-in redirect as a client must get
/// it, whose `rd=` is `url`.
#[track_caller]
fn assert_sign_in_redirect(r: &Response, url: &str, with_body: bool) {
    assert_eq!(r.status, 302, "{}", r.head.raw);
    assert_eq!(
        r.header("location"),
        Some(format!("https://sso.example/login?rd={url}").as_str()),
        "{}",
        r.head.raw
    );
    assert_eq!(
        r.header("set-cookie"),
        Some("csrf=c1; Path=/; HttpOnly"),
        "{}",
        r.head.raw
    );
    // Read whole and sent with its length: not in chunks.
    assert_eq!(
        r.header("content-length"),
        Some(SIGN_IN.len().to_string().as_str()),
        "{}",
        r.head.raw
    );
    assert!(!r.head.has("transfer-encoding"), "{}", r.head.raw);
    // The gateway's word to the proxy, and its hop-by-hop fields, stay
    // with the proxy.
    for name in ["x-accel-redirect", "x-accel-buffering", "x-hop"] {
        assert!(!r.head.has(name), "{name}: {}", r.head.raw);
    }
    assert!(!r.head.has_token("connection", "x-hop"), "{}", r.head.raw);
    let body = if with_body { SIGN_IN } else { "" };
    assert_eq!(r.body_str(), body, "{}", r.head.raw);
}

#[test]
fn a_signed_in_request_goes_on_with_the_user_the_gateway_named() {
    let (app, gate) = (Backend::echo("app"), gateway());
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, "")));
    let r = proxy.get_on(
        "app.example",
        "/private/page?x=1&y=%20",
        &[SIGNED_IN, ("Authorization", "Bearer abc")],
    );
    assert_eq!(r.status, 200, "{}", r.head.raw);
    // The backend's answer, not the gateway's `yes`.
    assert_eq!(
        r.body_str(),
        "app GET /private/page?x=1&y=%20 len=0 fnv=cbf29ce484222325"
    );
    assert!(!r.head.has("remote-user"), "{}", r.head.raw);

    let asked = questions(&gate);
    assert_eq!(asked.len(), 1, "{asked:?}");
    let q = &asked[0];
    assert_eq!((q.method(), q.path()), ("GET", "/verify"));
    assert!(q.body.is_empty());
    let uri = "/private/page?x=1&y=%20";
    for (name, want) in [
        ("cookie", "theme=dark; session=ok"),
        ("authorization", "Bearer abc"),
        ("x-original-method", "GET"),
        ("x-forwarded-method", "GET"),
        ("x-original-uri", uri),
        ("x-forwarded-uri", uri),
        ("x-original-url", &format!("http://app.example{uri}")),
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "app.example"),
    ] {
        assert_eq!(all(q, name), [want], "{name}:\n{}", q.head.raw);
    }

    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.path(), uri);
    assert_eq!(all(s, "remote-user"), ["ann"], "{}", s.head.raw);
    // Each value the gateway gave, in its order.
    assert_eq!(all(s, "remote-groups"), ["staff", "ops"], "{}", s.head.raw);
    // Not named in auth_request_headers: the gateway's alone.
    assert!(!s.head.has("x-not-named"), "{}", s.head.raw);
    // The client's own fields go on as ever.
    assert_eq!(s.field_or("cookie", "-"), "theme=dark; session=ok");
    assert_eq!(s.field_or("authorization", "-"), "Bearer abc");
}

#[test]
fn a_request_not_signed_in_gets_the_gateway_s_answer_and_never_reaches_the_backend() {
    let (app, gate) = (Backend::echo("app"), gateway());
    let more = "response_header.X-Frame-Options = DENY\nresponse_header.X-Powered-By =\n";
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, more)));
    let r = proxy.get_on("app.example", "/private?a=b", &[]);
    assert_sign_in_redirect(&r, "http://app.example/private?a=b", true);
    // The proxy's edits of responses apply to it, as to any answer.
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{}", r.head.raw);
    assert!(!r.head.has("x-powered-by"), "{}", r.head.raw);

    // A 401 goes back as it came too, its challenge with it.
    let r = proxy.get_on(
        "app.example",
        "/api",
        &[("Authorization", "Bearer expired")],
    );
    assert_eq!(r.status, 401, "{}", r.head.raw);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    assert_eq!(r.body_str(), "token expired");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));

    assert_eq!(app.requests(), 0);
    assert_eq!(questions(&gate).len(), 2);
}

/// The log tells a request the gateway refused (its redirect or its 401
/// relayed, or the 302 to `auth_request_redirect`) as the proxy's refusal,
/// `PR`, as `auth_basic`'s, and names the gateway's target as `upstream`
/// (the README's word): who said no is what an operator looks for. One it
/// let through ended as it should, and names the backend that answered
/// it, not the gateway.
#[test]
fn a_refused_request_is_logged_as_the_proxy_s_refusal_by_the_gateway_s_target() {
    let (app, gate) = (Backend::echo("app"), gateway());
    for (more, status) in [("", 401), ("auth_request_redirect = /login\n", 302)] {
        let text = guarded(app.addr, gate.addr, more);
        let mut proxy = start_proxy(&[], move |c| {
            from_file(&text)(c);
            c.log_format =
                inverso::config::LogFormat::parse("$status $termination $upstream_addr").unwrap();
        });
        let expired = [("Authorization", "Bearer expired")];
        let signed_in = [("Cookie", "session=ok")];
        assert_eq!(proxy.get_on("app.example", "/a", &[]).status, 302);
        assert_eq!(proxy.get_on("app.example", "/a", &expired).status, status);
        assert_eq!(proxy.get_on("app.example", "/a", &signed_in).status, 200);
        assert!(proxy.shutdown(std::time::Duration::from_secs(5)));
        assert_eq!(
            proxy.log_lines(),
            [
                format!("302 PR {}", gate.addr),
                format!("{status} PR {}", gate.addr),
                format!("200 -- {}", app.addr),
            ],
            "{more}"
        );
    }
}

#[test]
fn the_client_cannot_forge_the_fields_the_gateway_gives() {
    let (app, gate) = (Backend::echo("app"), gateway());
    // Underscores let through: `Remote_User` would reach a backend that
    // reads it as `Remote-User` if the proxy left it.
    let more = "underscores_in_headers = true\n";
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, more)));
    let forged = [
        ("Remote-User", "mallory"),
        ("remote_user", "mallory"),
        ("REMOTE-GROUPS", "admins"),
        ("Remote_Groups", "admins"),
        // The question's fields are the proxy's alone.
        ("X-Original-URI", "/public"),
        ("X-Forwarded-Uri", "/public"),
        ("X-Original-Method", "GET"),
        ("X-Forwarded-Method", "GET"),
        ("X-Original-URL", "http://public.example/public"),
        ("X-Kept", "yes"),
    ];
    let signed_in: Vec<_> = forged.iter().copied().chain([SIGNED_IN]).collect();
    let anon: Vec<_> = (forged.iter().copied())
        .chain([("Cookie", "session=anon")])
        .collect();
    let mut client = proxy.connect();
    let r = client.request("PUT", "/admin/x", &signed_in, b"new");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    // A yes that names no user: the backend gets none, not the client's.
    let r = client.request("PUT", "/admin/x", &anon, b"new");
    assert_eq!(r.status, 200, "{}", r.head.raw);

    let seen = app.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        all(&seen[0], "remote-user"),
        ["ann"],
        "{}",
        seen[0].head.raw
    );
    assert_eq!(all(&seen[0], "remote-groups"), ["staff", "ops"]);
    for s in &seen {
        for name in ["remote_user", "remote_groups"] {
            assert!(!s.head.has(name), "{name}:\n{}", s.head.raw);
        }
        assert_eq!(s.field_or("x-kept", "-"), "yes");
        assert_eq!(s.body, b"new");
    }
    assert!(!seen[1].head.has("remote-user"), "{}", seen[1].head.raw);
    assert!(!seen[1].head.has("remote-groups"), "{}", seen[1].head.raw);

    let asked = questions(&gate);
    assert_eq!(asked.len(), 2);
    for q in &asked {
        for (name, want) in [
            ("x-original-uri", "/admin/x"),
            ("x-forwarded-uri", "/admin/x"),
            ("x-original-method", "PUT"),
            ("x-forwarded-method", "PUT"),
            ("x-original-url", "http://test.example/admin/x"),
        ] {
            assert_eq!(all(q, name), [want], "{name}:\n{}", q.head.raw);
        }
        // A GET without a body: the client's framing stays behind.
        assert_eq!(q.method(), "GET");
        assert!(!q.head.has("content-length"), "{}", q.head.raw);
        assert!(!q.head.has("transfer-encoding"), "{}", q.head.raw);
    }
}

#[test]
fn a_refused_request_with_a_body_closes_the_connection_and_the_backend_never_sees_it() {
    let (app, gate) = (Backend::echo("app"), gateway());
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, "")));
    let mut client = proxy.connect();
    // Let through: the body goes to the backend whole, and the connection
    // stays open.
    let fields = [SIGNED_IN, ("Expect", "100-continue")];
    client.send(&request_bytes("POST", "/form", &fields, b"signed payload"));
    let mut r = client.response();
    if r.status == 100 {
        r = client.response();
    }
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(
        r.body_str(),
        format!("app POST /form len=14 fnv={:016x}", fnv(b"signed payload"))
    );
    // Refused: the body is never read, and could not be told from a next
    // request; the connection closes after the answer.
    let r = client.request("POST", "/form", &[], b"GET /smuggled HTTP/1.1\r\n\r\n");
    assert_sign_in_redirect(&r, "http://test.example/form", true);
    assert!(client.is_closed());

    let seen = app.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path(), "/form");
    let asked = questions(&gate);
    assert_eq!(asked.len(), 2);
    for q in &asked {
        assert_eq!(q.field_or("x-original-method", "-"), "POST");
        for name in ["content-length", "transfer-encoding", "expect"] {
            assert!(!q.head.has(name), "{name}:\n{}", q.head.raw);
        }
    }
    assert!(gate.seen().iter().all(|s| s.path() != "/smuggled"));

    // A client that waits for `100 Continue` before its body gets the
    // refusal instead, and the connection closes: the body never comes.
    let mut client = proxy.connect();
    let fields = [("Expect", "100-continue"), ("Content-Length", "5")];
    client.send(&request_bytes("POST", "/upload", &fields, b""));
    let r = client.response();
    assert_sign_in_redirect(&r, "http://test.example/upload", true);
    assert!(client.is_closed());
    assert_eq!(app.requests(), 1);
}

#[test]
fn a_head_request_gets_the_refusal_s_head_alone() {
    let (app, gate) = (Backend::echo("app"), gateway());
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, "")));
    let mut client = proxy.connect();
    let r = client.head("/doc");
    assert_sign_in_redirect(&r, "http://test.example/doc", false);
    // Nothing of the body follows the head: the next answer on the
    // connection starts where it should.
    let r = client.get_with("/doc", &[SIGNED_IN]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), "app GET /doc len=0 fnv=cbf29ce484222325");
    let r = client.head("/doc");
    assert_eq!(r.status, 302, "{}", r.head.raw);

    let asked = questions(&gate);
    let methods: Vec<_> = (asked.iter())
        .map(|q| (q.method().to_string(), q.field_or("x-original-method", "-")))
        .collect();
    let want = [("GET", "HEAD"), ("GET", "GET"), ("GET", "HEAD")];
    let want: Vec<_> = (want.iter())
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(methods, want);
    assert_eq!(app.requests(), 1);
}

#[test]
fn a_gateway_that_cannot_be_asked_fails_the_request_and_the_backend_is_not_asked() {
    let app = Backend::echo("app");
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&guarded(app.addr, dead_addr(), "max_fails = 0\n")),
    );
    let r = proxy.get_on("app.example", "/", &[SIGNED_IN]);
    assert_eq!(r.status, 502, "{}", r.head.raw);
    let r = proxy.get_on("app.example", "/", &[]);
    assert_eq!(r.status, 502, "{}", r.head.raw);
    assert_eq!(app.requests(), 0);
    let failed = "inverso_auth_requests_total{result=\"failed\"}";
    let allowed = "inverso_auth_requests_total{result=\"allowed\"}";
    assert_eq!(proxy.metric(failed), Some(2));
    assert_eq!(proxy.metric(allowed), Some(0));
}

#[test]
fn a_refusal_is_relayed_up_to_64_kib_and_a_larger_one_is_a_502() {
    const LIMIT: usize = 64 * 1024;
    let app = Backend::echo("app");
    // A refusal of as many bytes as the path says.
    let gate = Backend::start("sso", |seen, out| {
        let len: usize = (seen.field_or("x-original-uri", "/0")[1..].parse()).unwrap_or(0);
        respond(out, 403, &[("Content-Type", "text/html")], &pattern(len));
        Action::KeepAlive
    });
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, "")));
    let r = proxy.get_on("x", &format!("/{LIMIT}"), &[]);
    assert_eq!(r.status, 403, "{}", r.head.raw);
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(fnv(&r.body), fnv(&pattern(LIMIT)), "{} bytes", r.body.len());
    let r = proxy.get_on("x", &format!("/{}", LIMIT + 1), &[]);
    assert_eq!(r.status, 502, "{}", r.head.raw);
    assert!(r.body.len() < 1000, "{}", r.head.raw);
    assert_eq!(app.requests(), 0);
    assert_eq!(gate.requests(), 2);
}

#[test]
fn a_gateway_that_does_not_answer_in_time_is_a_504() {
    let app = Backend::echo("app");
    // Reads the question and answers nothing.
    let silent = Backend::start("silent", |_, _| Action::Hang);
    let proxy = start_proxy(
        &[],
        from_file(&guarded(
            app.addr,
            silent.addr,
            "pool.sso.backend_timeout = 300ms\npool.sso.retries = 0\n",
        )),
    );
    let r = proxy.get_on("app.example", "/", &[SIGNED_IN]);
    assert_eq!(r.status, 504, "{}", r.head.raw);
    assert_eq!(silent.requests(), 1);
    assert_eq!(app.requests(), 0);
}

#[test]
fn a_refusal_whose_body_trickles_in_past_the_backend_timeout_is_a_504() {
    let app = Backend::echo("app");
    // Each byte well within the timeout of the one before it, the whole
    // body not: ten bytes 150 ms apart, under a 500 ms timeout.
    let slow = Backend::start("slow", |_, out| {
        let head = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\n";
        let _ = out.write_all(head);
        for _ in 0..10 {
            std::thread::sleep(std::time::Duration::from_millis(150));
            if out.write_all(b"x").is_err() {
                break;
            }
        }
        Action::Close
    });
    let proxy = start_proxy(
        &[],
        from_file(&guarded(
            app.addr,
            slow.addr,
            "pool.sso.backend_timeout = 500ms\npool.sso.retries = 0\n",
        )),
    );
    let r = proxy.get_on("app.example", "/", &[SIGNED_IN]);
    assert_eq!(r.status, 504, "{}", r.head.raw);
    assert_eq!(slow.requests(), 1);
    assert_eq!(app.requests(), 0);
}

#[test]
fn each_answer_is_counted_on_the_admin_listener() {
    let (app, gate) = (Backend::echo("app"), gateway());
    let proxy = start_proxy(&[], from_file_with_admin(&guarded(app.addr, gate.addr, "")));
    for fields in [
        &[SIGNED_IN][..],
        &[],
        &[SIGNED_IN],
        &[("Cookie", "session=anon")],
    ] {
        proxy.get_on("app.example", "/", fields);
    }
    let metric = |result: &str| {
        proxy.metric(&format!(
            "inverso_auth_requests_total{{result=\"{result}\"}}"
        ))
    };
    assert_eq!(
        (metric("allowed"), metric("denied"), metric("failed")),
        (Some(3), Some(1), Some(0))
    );
    assert_eq!(app.requests(), 3);
}

#[test]
fn a_cache_hit_is_still_asked_of_the_gateway_each_time() {
    let gate = gateway();
    let app = Backend::start("app", |seen, out| {
        let body = describe("app", seen);
        respond(
            out,
            200,
            &[("Cache-Control", "max-age=60")],
            body.as_bytes(),
        );
        Action::KeepAlive
    });
    let tweak = from_file(&guarded(app.addr, gate.addr, ""));
    let proxy = start_proxy(&[], |c| {
        tweak(c);
        c.cache_size = 1 << 20;
    });
    let body = "app GET /report len=0 fnv=cbf29ce484222325";
    expect(
        &proxy.get_on("x", "/report", &[SIGNED_IN]),
        200,
        "MISS",
        body,
    );
    expect(
        &proxy.get_on("x", "/report", &[SIGNED_IN]),
        200,
        "HIT",
        body,
    );
    // Stored, but not for a client the gateway refuses.
    let r = proxy.get_on("x", "/report", &[]);
    assert_sign_in_redirect(&r, "http://x/report", true);
    let r = proxy.get_on("x", "/report", &[("Authorization", "Bearer expired")]);
    assert_eq!(r.status, 401, "{}", r.head.raw);
    expect(
        &proxy.get_on("x", "/report", &[SIGNED_IN]),
        200,
        "HIT",
        body,
    );
    assert_eq!(app.requests(), 1);
    let asked: Vec<_> = (questions(&gate).iter())
        .map(|q| q.field_or("x-original-uri", "-"))
        .collect();
    assert_eq!(asked, ["/report"; 5]);
}

#[test]
fn files_behind_the_gateway_stay_behind_it() {
    let (app, gate) = (Backend::echo("app"), gateway());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.txt"), "the secret plan\n").unwrap();
    let more = format!("route./static/ = files {}\n", dir.path().display());
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, &more)));
    let r = proxy.get_on("files.example", "/static/plan.txt", &[]);
    assert_sign_in_redirect(&r, "http://files.example/static/plan.txt", true);
    assert!(!r.body_str().contains("secret"));
    let r = proxy.get_on("files.example", "/static/plan.txt", &[SIGNED_IN]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), "the secret plan\n");
    assert_eq!(app.requests(), 0);
    assert_eq!(questions(&gate).len(), 2);
}

#[test]
fn the_gateway_s_own_pages_are_not_asked_of_it() {
    let (app, gate) = (Backend::echo("app"), gateway());
    let more = "route./sso/ = sso\n";
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, more)));
    // Its sign-in page is reachable by a client that has not signed in.
    let r = proxy.get_on("x", "/sso/login?rd=/a", &[]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), "sso login page /sso/login?rd=/a");
    let paths: Vec<_> = gate.seen().iter().map(|s| s.path().to_string()).collect();
    assert_eq!(paths, ["/sso/login?rd=/a"]);
    // Everything else still is.
    let r = proxy.get_on("x", "/a", &[]);
    assert_eq!(r.status, 302, "{}", r.head.raw);
    assert_eq!(app.requests(), 0);
}

#[test]
fn each_pool_may_ask_its_own_path_or_none() {
    let (app, admin, public, gate) = (
        Backend::echo("app"),
        Backend::echo("admin"),
        Backend::echo("public"),
        gateway(),
    );
    let more = format!(
        "pool.admin = {}\npool.public = {}\n\
         pool.admin.auth_request = sso /admin-verify\n\
         pool.public.auth_request =\n\
         route./admin/ = admin\nroute./public/ = public\n",
        admin.addr, public.addr
    );
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, &more)));
    // Off for `public`: no question, the backend answers anyone.
    let r = proxy.get_on("x", "/public/doc", &[]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(
        r.body_str(),
        "public GET /public/doc len=0 fnv=cbf29ce484222325"
    );
    assert!(gate.seen().is_empty(), "{:?}", gate.seen());
    // `admin` asks its own path.
    assert_eq!(proxy.get_on("x", "/admin/users", &[]).status, 302);
    assert_eq!(proxy.get_on("x", "/admin/users", &[SIGNED_IN]).status, 200);
    // The rest asks the top level's.
    assert_eq!(proxy.get_on("x", "/home", &[SIGNED_IN]).status, 200);
    let paths: Vec<_> = gate.seen().iter().map(|s| s.path().to_string()).collect();
    assert_eq!(paths, ["/admin-verify", "/admin-verify", "/verify"]);
    assert_eq!(
        (app.requests(), admin.requests(), public.requests()),
        (1, 1, 1)
    );
    // The pool's own `Remote-User` is the one it named.
    assert_eq!(admin.seen()[0].field_or("remote-user", "-"), "ann");
}

#[test]
fn each_request_on_a_kept_alive_connection_is_asked_once() {
    let (app, gate) = (Backend::echo("app"), gateway());
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, "")));
    let mut client = proxy.connect();
    let mut statuses = Vec::new();
    for (path, fields) in [
        ("/1", &[SIGNED_IN][..]),
        ("/2", &[SIGNED_IN]),
        ("/3", &[]),
        ("/4", &[SIGNED_IN]),
        ("/5", &[("Authorization", "Bearer expired")]),
        ("/6", &[SIGNED_IN]),
    ] {
        let r = client.get_with(path, fields);
        assert!(!r.head.has_token("connection", "close"), "{}", r.head.raw);
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 302, 200, 401, 200]);
    let asked: Vec<_> = (questions(&gate).iter())
        .map(|q| q.field_or("x-original-uri", "-"))
        .collect();
    assert_eq!(asked, ["/1", "/2", "/3", "/4", "/5", "/6"]);
    let served: Vec<_> = app.seen().iter().map(|s| s.path().to_string()).collect();
    assert_eq!(served, ["/1", "/2", "/4", "/6"]);
    // Pipelined: both asked, both answered, in order.
    let mut both = request_bytes("GET", "/7", &[SIGNED_IN], b"");
    both.extend_from_slice(&request_bytes("GET", "/8", &[], b""));
    client.send(&both);
    assert_eq!(client.response().status, 200);
    assert_sign_in_redirect(&client.response(), "http://test.example/8", true);
    assert_eq!(questions(&gate).len(), 8);
    assert_eq!(app.requests(), 5);
    // Every question on one connection to the gateway: its refusals,
    // read whole, leave it fit for the next.
    assert_eq!(gate.connections(), 1);
}

#[test]
fn a_reload_may_turn_it_off_and_on() {
    let (app, gate) = (Backend::echo("app"), gateway());
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, "")));
    let mut client = proxy.connect();
    assert_eq!(client.get("/a").status, 302);
    proxy.reload(
        &[],
        from_file(&format!(
            "targets = {}\npool.sso = {}\nroute./sso/ = sso\n",
            app.addr, gate.addr
        )),
    );
    // A new connection, and one kept from before, both on the new
    // configuration.
    assert_eq!(proxy.connect().get("/b").status, 200);
    let forged = [("Remote-User", "mallory")];
    let r = client.get_with("/c", &forged);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(questions(&gate).len(), 1);
    // Off, nothing takes the client's field out.
    assert_eq!(app.seen()[1].field_or("remote-user", "-"), "mallory");

    proxy.reload(&[], from_file(&guarded(app.addr, gate.addr, "")));
    assert_eq!(client.get("/d").status, 302);
    assert_eq!(proxy.connect().get("/e").status, 302);
    assert_eq!(client.get_with("/f", &[SIGNED_IN]).status, 200);
    let asked: Vec<_> = (questions(&gate).iter())
        .map(|q| q.field_or("x-original-uri", "-"))
        .collect();
    assert_eq!(asked, ["/a", "/d", "/e", "/f"]);
    let served: Vec<_> = app.seen().iter().map(|s| s.path().to_string()).collect();
    assert_eq!(served, ["/b", "/c", "/f"]);
}

#[test]
fn mistakes_are_refused_with_what_is_wrong() {
    let base = "targets = 127.0.0.1:1\npool.sso = 127.0.0.1:2\npool.app = 127.0.0.1:3\n\
                route./app/ = app\nroute./sso/ = sso\n";
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let with = "auth_request = sso /verify\n";
    let cases = vec![
        (
            "auth_request = ssoo /verify\n".to_string(),
            "auth_request",
            words(&["ssoo", "did you mean `sso`", "pool.ssoo = host:port"]),
        ),
        (
            "pool.app.auth_request = ss /verify\n".to_string(),
            "pool.app.auth_request",
            words(&["`ss`", "did you mean `sso`"]),
        ),
        (
            "auth_request = default /verify\n".to_string(),
            "auth_request",
            words(&["a pool of its own"]),
        ),
        (
            "pool.sso.auth_request = sso /verify\n".to_string(),
            "pool.sso.auth_request",
            words(&["names the pool itself"]),
        ),
        (
            "auth_request = sso verify\n".to_string(),
            "auth_request",
            words(&["`verify` is not a path"]),
        ),
        (
            "auth_request = sso //evil.example/verify\n".to_string(),
            "auth_request",
            words(&["is not a path"]),
        ),
        (
            "auth_request = sso\n".to_string(),
            "auth_request",
            words(&["give the pool"]),
        ),
        (
            "auth_request = sso /verify /other\n".to_string(),
            "auth_request",
            words(&["give the pool"]),
        ),
        (
            format!("{with}auth_request_headers = Remote-User, Host\n"),
            "auth_request_headers",
            words(&["Host"]),
        ),
        (
            format!("{with}auth_request_headers = Cookie\n"),
            "auth_request_headers",
            words(&["Cookie"]),
        ),
        (
            format!("{with}auth_request_headers = Content-Length\n"),
            "auth_request_headers",
            words(&["Content-Length", "frames the message"]),
        ),
        (
            format!("{with}auth_request_headers = X-Forwarded-For\n"),
            "auth_request_headers",
            words(&["X-Forwarded-For"]),
        ),
        (
            format!("{with}auth_request_headers = X_Forwarded_For\n"),
            "auth_request_headers",
            words(&["X_Forwarded_For"]),
        ),
        (
            format!("{with}auth_request_headers = Remote-User, remote-user\n"),
            "auth_request_headers",
            words(&["named twice"]),
        ),
        (
            "auth_request_headers = Remote-User\n".to_string(),
            "auth_request_headers",
            words(&["auth_request is off"]),
        ),
        (
            "pool.app.auth_request_headers = Remote-User\n".to_string(),
            "pool.app.auth_request_headers",
            words(&["auth_request is off"]),
        ),
        (
            "auth_request_cache = 10s\n".to_string(),
            "auth_request_cache",
            words(&["auth_request is off", "no answer to keep"]),
        ),
        (
            format!("{with}auth_request_cache = soon\n"),
            "auth_request_cache",
            words(&["soon"]),
        ),
        (
            "auth_request_redirect = /oauth2/start\n".to_string(),
            "auth_request_redirect",
            words(&["auth_request is off", "no service answers 401"]),
        ),
        (
            format!("{with}auth_request_redirect = https://$host/login\n"),
            "auth_request_redirect",
            words(&["its host written"]),
        ),
        (
            format!("{with}auth_request_redirect = //sso.example/login\n"),
            "auth_request_redirect",
            words(&["give a path"]),
        ),
        (
            format!("{with}auth_request_redirect = /login?rd=$upstream_addr\n"),
            "auth_request_redirect",
            words(&["$upstream_addr", "once the response has come"]),
        ),
        (
            format!(
                "{with}auth_request_redirect = /login\nresponse_header.Location = /elsewhere\n"
            ),
            "auth_request_redirect",
            words(&["response_header.Location", "writes Location"]),
        ),
        (
            // A pool's own redirect under the top level's field.
            format!(
                "{with}pool.app.auth_request_redirect = /login\nresponse_header.Location = /x\n"
            ),
            "pool.app.auth_request_redirect",
            words(&["response_header.Location", "writes Location"]),
        ),
        (
            format!("{with}auth_request_redirect = /\\$host\n"),
            "auth_request_redirect",
            words(&["without `\\` or `#`"]),
        ),
    ];
    assert_refused(base, &cases);
    // Each of them right is taken.
    for good in [
        format!("{with}auth_request_headers = Remote-User, Remote-Email, X-Auth-Request-Groups\n"),
        "auth_request = sso /auth?x=1\n".to_string(),
        format!("{with}pool.app.auth_request = off\n"),
        "pool.app.auth_request = sso /verify\npool.app.auth_request_headers = Remote-User\n"
            .to_string(),
        format!("{with}pool.app.auth_request =\n"),
        format!("{with}auth_request_cache = 30s\npool.app.auth_request_cache = 0\n"),
        format!("{with}auth_request_redirect = /oauth2/start?rd=$request_uri\n"),
        format!("{with}pool.app.auth_request_redirect = https://sso.example/?rd=$host\n"),
    ] {
        let text = format!("{base}{good}");
        let mut loader = inverso::config::Loader::new();
        loader.file("proxy.conf", &text).unwrap();
        if let Err(e) = loader.build() {
            panic!("{e}\nin:\n{text}");
        }
    }
}

#[test]
fn naming_fields_in_connection_drops_neither_what_the_gateway_judges_nor_what_it_gives() {
    let (app, gate) = (Backend::echo("app"), gateway());
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, "")));
    let connection = (
        "Connection",
        "X-Forwarded-Uri, X-Original-URL, X-Original-URI, X-Forwarded-Method, \
         X-Original-Method, Remote-User",
    );
    let r = proxy.get_on("app.example", "/admin/x?y=1", &[SIGNED_IN, connection]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    let asked = &questions(&gate)[0];
    for (name, value) in [
        ("x-forwarded-uri", "/admin/x?y=1"),
        ("x-original-uri", "/admin/x?y=1"),
        ("x-original-url", "http://app.example/admin/x?y=1"),
        ("x-forwarded-method", "GET"),
        ("x-original-method", "GET"),
    ] {
        assert_eq!(all(asked, name), [value], "{}", asked.head.raw);
    }
    let sent = &app.seen()[0];
    assert_eq!(all(sent, "remote-user"), ["ann"], "{}", sent.head.raw);
    // Nor does the client's own reach the gateway.
    let forged = ("Remote-User", "admin");
    assert_eq!(proxy.get_on("x", "/b", &[SIGNED_IN, forged]).status, 200);
    let asked = &questions(&gate)[1];
    assert_eq!(
        all(asked, "remote-user"),
        Vec::<String>::new(),
        "{}",
        asked.head.raw
    );
}

#[test]
fn the_gateway_judges_the_client_s_authorization_even_when_its_answer_replaces_it() {
    let (app, gate) = (Backend::echo("app"), gateway());
    let text = format!(
        "targets = {}\npool.sso = {}\nauth_request = sso /verify\n\
         auth_request_headers = Authorization\n",
        app.addr, gate.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let expired = ("Authorization", "Bearer expired");
    assert_eq!(proxy.get_on("x", "/a", &[expired]).status, 401);
    assert_eq!(
        all(&questions(&gate)[0], "authorization"),
        ["Bearer expired"]
    );
    assert_eq!(app.requests(), 0);
    // Let through: the backend gets the gateway's (none here), never the
    // client's.
    assert_eq!(proxy.get_on("x", "/b", &[expired, SIGNED_IN]).status, 200);
    assert_eq!(all(&app.seen()[0], "authorization"), Vec::<String>::new());
}

#[test]
fn a_pool_that_asks_nothing_still_drops_the_client_s_fields_of_the_names() {
    let (app, public, gate) = (Backend::echo("app"), Backend::echo("public"), gateway());
    let more = format!(
        "pool.public = {}\npool.public.auth_request = off\nroute./public/ = public\n\
         route./sso/ = sso\n",
        public.addr
    );
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, &more)));
    let forged = ("Remote-User", "admin");
    assert_eq!(proxy.get_on("x", "/public/a", &[forged]).status, 200);
    assert_eq!(proxy.get_on("x", "/sso/login", &[forged]).status, 200);
    assert!(questions(&gate).is_empty());
    assert_eq!(all(&public.seen()[0], "remote-user"), Vec::<String>::new());
    let login = gate.seen();
    assert_eq!(all(&login[0], "remote-user"), Vec::<String>::new());
}

#[test]
fn the_gateway_s_targets_are_chosen_by_its_own_pool_s_hash() {
    let (app, gate1, gate2) = (Backend::echo("app"), gateway(), gateway());
    let text = format!(
        "targets = {}\npool.sso = {}, {}\npool.sso.balance = hash\n\
         pool.sso.hash_on = cookie:session\nauth_request = sso /verify\n",
        app.addr, gate1.addr, gate2.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    for i in 0..6 {
        let r = proxy.get_on("x", &format!("/{i}"), &[SIGNED_IN]);
        assert_eq!(r.status, 200, "{}", r.head.raw);
    }
    let asked = (questions(&gate1).len(), questions(&gate2).len());
    assert!(asked == (6, 0) || asked == (0, 6), "{asked:?}");
}

#[test]
fn the_cookies_of_a_yes_go_to_the_client_with_the_response_even_from_the_cache() {
    let app = Backend::start("app", |_, out| {
        let fields = [("Cache-Control", "max-age=600")];
        respond(out, 200, &fields, b"page");
        Action::KeepAlive
    });
    let gate = gateway();
    let configure = from_file(&guarded(app.addr, gate.addr, ""));
    let proxy = start_proxy(&[], |c| {
        configure(c);
        c.cache_size = 4 << 20;
    });
    let mut client = proxy.connect();
    let first = client.get_with("/p", &[SIGNED_IN]);
    let second = client.get_with("/p", &[SIGNED_IN]);
    let cookies =
        |r: &Response| (r.head.get_all("set-cookie").map(str::to_string)).collect::<Vec<_>>();
    for (r, cache) in [(&first, "MISS"), (&second, "HIT")] {
        assert_eq!(r.header("x-cache"), Some(cache), "{}", r.head.raw);
        let raw = &r.head.raw;
        assert_eq!(cookies(r), ["session=ok; Path=/; HttpOnly"], "{raw}");
    }
    assert_eq!(app.requests(), 1);
    // Removed with the application's where response_header says so.
    let proxy = start_proxy(
        &[],
        from_file(&guarded(
            app.addr,
            gate.addr,
            "response_header.Set-Cookie =\n",
        )),
    );
    let r = proxy.get_on("x", "/q", &[SIGNED_IN]);
    assert_eq!(cookies(&r), Vec::<String>::new(), "{}", r.head.raw);
}

#[test]
fn hash_on_a_field_the_gateway_gives_hashes_its_value_not_the_client_s() {
    let (app1, app2, gate) = (Backend::echo("app1"), Backend::echo("app2"), gateway());
    let text = format!(
        "targets = {}, {}\npool.sso = {}\nauth_request = sso /verify\n\
         auth_request_headers = Remote-User\nbalance = hash\nhash_on = header:Remote-User\n",
        app1.addr, app2.addr, gate.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    // ann each time, whatever the client claims: one target.
    for i in 0..8 {
        let forged = ("Remote-User", format!("user-{i}"));
        let r = proxy.get_on("x", &format!("/{i}"), &[SIGNED_IN, (forged.0, &forged.1)]);
        assert_eq!(r.status, 200, "{}", r.head.raw);
    }
    let served = (app1.requests(), app2.requests());
    assert!(served == (8, 0) || served == (0, 8), "{served:?}");
}

/// A gateway that says yes to `user=<name>` with `Remote-User: <name>`
/// (with a refreshed session cookie to `user=refreshed`, and `no-store`
/// to `user=unstored`), and 401 to anyone else.
fn judging_gateway() -> Backend {
    Backend::start("sso", |seen, out| {
        let cookie = seen.field_or("cookie", "");
        match cookie.strip_prefix("user=") {
            Some("refreshed") => {
                let fields = [
                    ("Remote-User", "refreshed"),
                    ("Set-Cookie", "user=refreshed"),
                ];
                respond(out, 200, &fields, b"")
            }
            Some("unstored") => {
                let fields = [("Remote-User", "unstored"), ("Cache-Control", "no-store")];
                respond(out, 200, &fields, b"")
            }
            Some(user) => respond(out, 200, &[("Remote-User", user)], b""),
            None => respond(out, 401, &[], b"who are you"),
        }
        Action::KeepAlive
    })
}

#[test]
fn auth_request_cache_takes_a_yes_again_only_for_the_same_question() {
    let app = Backend::echo("app");
    let gate = judging_gateway();
    let text = guarded(app.addr, gate.addr, "auth_request_cache = 1m\n");
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    let get = |client: &mut Client, path: &str, fields: &[(&str, &str)]| {
        client.get_with(path, fields).status
    };
    let ann = ("Cookie", "user=ann");
    let mut client = proxy.connect();
    // (request, status, was the gateway asked)
    type Step<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, bool);
    let steps: [Step; 10] = [
        ("/a", &[ann], 200, true),
        ("/a", &[ann], 200, false),
        // A forged user changes nothing of the question: kept, and
        // still never reaches the backend.
        ("/a", &[ann, ("Remote-User", "admin")], 200, false),
        ("/b", &[ann], 200, true),
        ("/a", &[("Cookie", "user=bob")], 200, true),
        ("/a", &[ann, ("X-Api-Key", "k")], 200, true),
        ("/a", &[], 401, true),
        ("/a", &[], 401, true),
        ("/a", &[("Cookie", "user=refreshed")], 200, true),
        ("/a", &[("Cookie", "user=refreshed")], 200, true),
    ];
    for (i, (path, fields, status, asked)) in steps.into_iter().enumerate() {
        let before = questions(&gate).len();
        assert_eq!(get(&mut client, path, fields), status, "step {i}");
        assert_eq!(
            questions(&gate).len() - before,
            usize::from(asked),
            "step {i}"
        );
    }
    for _ in 0..2 {
        let before = questions(&gate).len();
        assert_eq!(get(&mut client, "/a", &[("Cookie", "user=unstored")]), 200);
        assert_eq!(
            questions(&gate).len() - before,
            1,
            "no-store is asked again"
        );
    }
    // Another client address is another question.
    let mut other = Client::connect_from("127.0.0.2".parse().unwrap(), proxy.addr);
    let before = questions(&gate).len();
    assert_eq!(get(&mut other, "/a", &[ann]), 200);
    assert_eq!(questions(&gate).len() - before, 1, "another address");
    // The user the backend got, each time from the gateway's yes.
    let users: Vec<String> = app
        .seen()
        .iter()
        .map(|s| all(s, "remote-user").join("|"))
        .collect();
    assert_eq!(&users[..3], ["ann", "ann", "ann"]);
    assert_eq!(users[3..].iter().filter(|u| u.contains("admin")).count(), 0);
    let metric = |result: &str| {
        proxy.metric(&format!(
            "inverso_auth_requests_total{{result=\"{result}\"}}"
        ))
    };
    assert_eq!(metric("cached"), Some(2));
    assert_eq!(metric("allowed"), Some(9));
}

#[test]
fn without_auth_request_cache_every_request_is_asked() {
    let app = Backend::echo("app");
    let gate = judging_gateway();
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, "")));
    for _ in 0..3 {
        proxy.get_on("app.example", "/a", &[("Cookie", "user=ann")]);
    }
    assert_eq!(questions(&gate).len(), 3);
    assert_eq!(app.requests(), 3);
}

#[test]
fn kept_yeses_outlive_new_addresses_of_targets_but_not_a_reload() {
    let (app, app2) = (Backend::echo("app"), Backend::echo("app2"));
    let gate = judging_gateway();
    let text = guarded(app.addr, gate.addr, "auth_request_cache = 1m\n");
    let configure = from_file(&text);
    let proxy = start_proxy(&[], |c| {
        configure(c);
        c.targets[0].name = "app.internal:80".into();
    });
    let mut client = proxy.connect();
    let ann = [("Cookie", "user=ann")];
    for _ in 0..2 {
        assert_eq!(client.get_with("/a", &ann).status, 200);
    }
    assert_eq!(questions(&gate).len(), 1);
    // `resolve_interval` finds the target's name at another address.
    let moved = app2.addr;
    let resolve = move |_: &str| Ok::<_, std::io::Error>(vec![moved.into()]);
    assert_eq!(proxy.handle().control().re_resolve(&resolve), 1);
    let r = client.get_with("/a", &ann);
    assert_eq!((r.status, app2.requests()), (200, 1));
    assert_eq!(questions(&gate).len(), 1, "the same configuration: kept");
    // A reload may change the services: they are asked anew.
    let configure = from_file(&text);
    proxy.reload(&[], configure);
    assert_eq!(proxy.connect().get_with("/a", &ann).status, 200);
    assert_eq!(questions(&gate).len(), 2, "asked again after a reload");
}

/// A gateway as oauth2-proxy's `/oauth2/auth` answers: 202 to a request
/// whose cookies hold `session=ok`, 403 to `session=banned` (signed in,
/// not allowed), a redirect of its own to `session=moved`, a 401 with a
/// body larger than any refusal relayed to `session=big`, and otherwise
/// 401 with a body, a challenge and the cookie that clears a session it
/// no longer takes.
fn oauth2_gateway() -> Backend {
    Backend::start("oauth2", |seen, out| {
        let cookie = seen.field_or("cookie", "");
        let cleared = ("Set-Cookie", "_oauth2_proxy=; Path=/; Max-Age=0");
        match cookie.as_str() {
            "session=ok" => respond(out, 202, &[("X-Auth-Request-User", "ann")], b""),
            "session=banned" => respond(out, 403, &[], b"not for you"),
            "session=moved" => respond(out, 302, &[("Location", "/elsewhere")], b""),
            "session=big" => respond(out, 401, &[cleared], &vec![b'x'; 100 * 1024]),
            _ => respond(
                out,
                401,
                &[cleared, ("WWW-Authenticate", "Bearer")],
                b"Unauthorized",
            ),
        }
        Action::KeepAlive
    })
}

/// `$is_args$args` carries the client's query to the sign-in page as it
/// came, and a `?` only when there is one, as nginx's.
#[test]
fn auth_request_redirect_writes_is_args_before_a_query_alone() {
    let (app, gate) = (Backend::echo("app"), oauth2_gateway());
    let config = format!(
        "targets = {}\npool.oauth2 = {}\nroute./oauth2/ = oauth2\n\
         auth_request = oauth2 /oauth2/auth\n\
         auth_request_redirect = /oauth2/start$is_args$args\n",
        app.addr, gate.addr
    );
    let proxy = start_proxy(&[], from_file(&config));
    let mut client = proxy.connect();
    for (path, location) in [
        ("/private/page?x=1&y=%2F", "/oauth2/start?x=1&y=%2F"),
        ("/doc", "/oauth2/start"),
        ("/doc?", "/oauth2/start"),
    ] {
        let r = client.get_with(path, &[]);
        assert_eq!(r.status, 302, "{}", r.head.raw);
        assert_eq!(r.header("location"), Some(location), "{}", r.head.raw);
    }
    assert_eq!(app.requests(), 0);
}

#[test]
fn auth_request_redirect_sends_a_client_answered_401_to_sign_in_and_back() {
    let (app, other, own, gate) = (
        Backend::echo("app"),
        Backend::echo("other"),
        Backend::echo("own"),
        oauth2_gateway(),
    );
    let config = format!(
        "targets = {}\npool.oauth2 = {}\npool.other = {}\nroute./other/ = other\n\
         pool.own = {}\nroute./own/ = own\nroute./oauth2/ = oauth2\n\
         auth_request = oauth2 /oauth2/auth\nauth_request_redirect = /oauth2/start?rd=$request_uri\n\
         pool.other.auth_request_redirect = https://sso.example/login?rd=$scheme://$host$request_uri\n\
         pool.other.response_header.Set-Cookie =\n\
         pool.own.auth_request = oauth2 /oauth2/auth\n\
         response_header.X-Frame-Options = DENY\n",
        app.addr, gate.addr, other.addr, own.addr
    );
    let proxy = start_proxy(&[], from_file(&config));
    let mut client = proxy.connect();
    // The 401 becomes a 302 to the sign-in start, the client's URL in it
    // as one query value; the gateway's cookie comes along, its body and
    // challenge do not; the connection stays open.
    let r = client.get_with("/private/page?x=1&y=%2F", &[]);
    assert_eq!(r.status, 302, "{}", r.head.raw);
    assert_eq!(
        r.header("location"),
        Some("/oauth2/start?rd=%2Fprivate%2Fpage%3Fx%3D1%26y%3D%252F"),
        "{}",
        r.head.raw
    );
    assert_eq!(
        r.header("set-cookie"),
        Some("_oauth2_proxy=; Path=/; Max-Age=0")
    );
    assert!(!r.head.has("www-authenticate"), "{}", r.head.raw);
    assert!(!r.body_str().contains("Unauthorized"), "{}", r.body_str());
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    // A HEAD gets the head alone, and the connection goes on.
    let r = client.head("/doc");
    assert_eq!(r.status, 302, "{}", r.head.raw);
    assert_eq!(r.header("location"), Some("/oauth2/start?rd=%2Fdoc"));
    let r = client.get_with("/doc", &[("Cookie", "session=ok")]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    // A 403 (signed in, not allowed) is no call to sign in: it goes to
    // the client as it came.
    let r = client.get_with("/doc", &[("Cookie", "session=banned")]);
    assert_eq!(r.status, 403, "{}", r.head.raw);
    assert_eq!(r.body_str(), "not for you");
    // Nor is the service's own redirect.
    let r = client.get_with("/doc", &[("Cookie", "session=moved")]);
    assert_eq!(r.status, 302, "{}", r.head.raw);
    assert_eq!(r.header("location"), Some("/elsewhere"));
    // A 401's body is not sent, however large.
    let r = client.get_with("/doc", &[("Cookie", "session=big")]);
    assert_eq!(r.status, 302, "{}", r.head.raw);
    assert_eq!(r.header("location"), Some("/oauth2/start?rd=%2Fdoc"));
    // The connection goes on after each of them.
    let r = client.get_with("/doc", &[("Cookie", "session=ok")]);
    assert_eq!(r.status, 200, "{}", r.head.raw);

    // A pool's own URL, with the whole URL sent back to.
    let r = proxy.get_on("app.example", "/other/a?b=c", &[]);
    assert_eq!(r.status, 302, "{}", r.head.raw);
    assert_eq!(
        r.header("location"),
        Some("https://sso.example/login?rd=http://app.example%2Fother%2Fa%3Fb%3Dc")
    );
    // Where the application's cookies are taken out, so are the service's.
    assert!(!r.head.has("set-cookie"), "{}", r.head.raw);
    // A pool that names its own service has its own sign-in page, or
    // none: the 401 goes as it came.
    let r = proxy.get_on("app.example", "/own/a", &[]);
    assert_eq!(r.status, 401, "{}", r.head.raw);
    assert_eq!(r.body_str(), "Unauthorized");
    // A refused request's body is never read: the connection closes.
    let mut client = proxy.connect();
    let r = client.request("POST", "/form", &[], b"GET /smuggled HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 302, "{}", r.head.raw);
    assert!(client.is_closed());
    assert_eq!(
        (app.requests(), other.requests(), own.requests()),
        (2, 0, 0)
    );
    assert!(gate.seen().iter().all(|s| s.path() == "/oauth2/auth"));
}

/// An absolute-form target names the host the request is for (RFC 9112
/// §3.2.2): the backend gets it as its Host, whatever the Host field
/// said. The gateway is asked about that same host: a service that
/// judges by `X-Forwarded-Host` (Authelia's `/api/authz/forward-auth`,
/// Traefik's `forwardAuth`) would otherwise judge a public host's rules
/// while the backend serves the protected one.
#[test]
fn an_absolute_form_target_is_asked_about_the_host_the_backend_gets() {
    let (app, gate) = (Backend::echo("app"), gateway());
    let proxy = start_proxy(&[], from_file(&guarded(app.addr, gate.addr, "")));
    let r = proxy.exchange(|client| {
        client.send(
            b"GET http://Admin.Example:80/secret HTTP/1.1\r\nHost: public.example\r\n\
              Cookie: session=ok\r\n\r\n",
        );
        client.response()
    });
    assert_eq!(r.status, 200, "{}", r.head.raw);
    let seen = app.seen();
    assert_eq!(
        seen[0].field_or("host", "-"),
        "admin.example",
        "{}",
        seen[0].head.raw
    );
    let asked = questions(&gate);
    let q = &asked[0];
    for (field, want) in [
        ("host", "admin.example"),
        ("x-forwarded-host", "admin.example"),
        ("x-original-url", "http://admin.example/secret"),
    ] {
        assert_eq!(q.field_or(field, "-"), want, "{field}: {}", q.head.raw);
    }
    assert!(!q.head.raw.contains("public.example"), "{}", q.head.raw);
}

#[test]
fn a_gateway_s_refusal_reaches_the_client_without_the_cache_s_own_fields() {
    // The cache's own fields are taken out of every response a client
    // gets (SECURITY.md), a gateway's refusal relayed as it came too.
    let app = Backend::echo("app");
    let gate = Backend::start("sso", |_, out| {
        let fields = [
            ("Surrogate-Control", "max-age=600"),
            ("Inverso-Cache-Control", "max-age=600"),
            ("X-Accel-Expires", "600"),
        ];
        respond(out, 403, &fields, b"no");
        Action::KeepAlive
    });
    let conf = format!(
        "targets = {}\npool.sso = {}\nauth_request = sso /verify\n\
         surrogate_id = inverso\ntargeted_cache_control = Inverso-Cache-Control\n",
        app.addr, gate.addr
    );
    let proxy = start_proxy(&[], |c| {
        from_file(&conf)(c);
        c.cache_size = 4 << 20;
    });
    let r = proxy.connect().get("/page");
    assert_eq!(r.status, 403, "{}", r.head.raw);
    for own in [
        "surrogate-control",
        "inverso-cache-control",
        "x-accel-expires",
    ] {
        assert!(!r.head.has(own), "{own}: {}", r.head.raw);
    }
    assert_eq!(app.requests(), 0);
}

#[test]
fn a_declared_length_over_max_body_size_is_413_before_the_gateway_is_asked() {
    // As nginx checks client_max_body_size before its access phase: the
    // client learns its upload is too large, not that it should sign in,
    // and the gateway is not asked about a request refused anyway.
    let app = Backend::echo("app");
    let gate = Backend::start("sso", |_, out| {
        respond(out, 302, &[("Location", "https://sso.example/login")], b"");
        Action::KeepAlive
    });
    let conf = format!(
        "targets = {}\npool.sso = {}\nauth_request = sso /verify\nmax_body_size = 1000\n",
        app.addr, gate.addr
    );
    let proxy = start_proxy(&[], from_file(&conf));
    let mut client = proxy.connect();
    client.send(
        b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5000000\r\n\r\n",
    );
    let r = client.response();
    assert_eq!(r.status, 413, "{}", r.head.raw);
    assert_eq!(gate.requests(), 0);
}

#[test]
fn the_sign_in_redirect_names_the_user_auth_basic_signed_in() {
    // Whether `$remote_user` is known was asked of the fields alone: with
    // none naming a variable, the redirect's came out empty.
    let app = Backend::echo("app");
    let gate = Backend::start("sso", |_, out| {
        respond(out, 401, &[], b"who?");
        Action::KeepAlive
    });
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("htpasswd");
    std::fs::write(&users, "ann:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\n").unwrap();
    let more = format!(
        "auth_basic = Staff\nauth_basic_user_file = {}\n\
         auth_request_redirect = https://sso.example/login?user=$remote_user\n",
        users.display()
    );
    let text = guarded(app.addr, gate.addr, &more);
    let proxy = start_proxy(&[], from_file(&text));
    let r = proxy
        .connect()
        .get_with("/", &[("Authorization", "Basic YW5uOnNlY3JldA==")]);
    assert_eq!(r.status, 302, "{}", r.head.raw);
    assert_eq!(
        r.header("location"),
        Some("https://sso.example/login?user=ann"),
        "{}",
        r.head.raw
    );
    assert_eq!(app.requests(), 0);
}

#[test]
fn a_long_session_cookie_of_a_yes_goes_with_a_hit_too() {
    // As long as an oauth2-proxy session: longer than the room a hit's
    // head makes for its own fields before any are counted in.
    let session = format!("_oauth2_proxy={}; Path=/; HttpOnly", "s".repeat(400));
    let gate = {
        let session = session.clone();
        Backend::start("sso", move |_, out| {
            respond(out, 200, &[("Set-Cookie", session.as_str())], b"");
            Action::KeepAlive
        })
    };
    let app = Backend::start("app", |_, out| {
        respond(out, 200, &[("Cache-Control", "max-age=600")], b"page");
        Action::KeepAlive
    });
    let configure = from_file(&guarded(app.addr, gate.addr, ""));
    let proxy = start_proxy(&[], |c| {
        configure(c);
        c.cache_size = 4 << 20;
    });
    let mut client = proxy.connect();
    for cache in ["MISS", "HIT"] {
        let r = client.get_with("/p", &[SIGNED_IN]);
        let raw = &r.head.raw;
        assert_eq!(
            (r.header("x-cache"), r.body_str().as_str()),
            (Some(cache), "page"),
            "{raw}"
        );
        assert_eq!(r.header("set-cookie"), Some(session.as_str()), "{raw}");
    }
    assert_eq!(app.requests(), 1);
}
