//! `rewrite.<name> = <pattern> <replacement> [<flag>] [host=<hosts>]`: a request's path
//! changed by a regular expression before it is routed (the backend, the
//! cache, the routes and a log template's `$uri` see the new one, the
//! log's request line the client's), or the
//! request answered with a redirect made of it, over real sockets.
//!
//! The rules are written as proxy.conf is and read by the configuration
//! loader.

mod support;

use inverso::Config;
use std::time::Duration;
use support::*;

/// The paths (with queries) `backend` was sent, in order.
fn paths(backend: &Backend) -> Vec<String> {
    backend
        .seen()
        .iter()
        .map(|s| s.path().to_string())
        .collect()
}

/// `GET target` on `Host: site.test`: the status, the `Location` and
/// the backend's description of what it got (`-` for none).
fn get(proxy: &Proxy, target: &str) -> (u16, String, String) {
    let r = proxy.get_on("site.test", target, &[]);
    let location = r.header("location").unwrap_or("-").to_string();
    let got = match r.header("x-backend") {
        Some(_) => r.body_str(),
        None => "-".to_string(),
    };
    (r.status, location, got)
}

/// A backend answering as [`Backend::echo`] does, fresh for a minute.
fn cacheable_echo(name: &str) -> Backend {
    let me = name.to_string();
    Backend::start(name, move |seen, out| {
        let body = describe(&me, seen);
        let fields = [("X-Backend", me.as_str()), ("Cache-Control", "max-age=60")];
        respond(out, 200, &fields, body.as_bytes());
        Action::KeepAlive
    })
}

#[test]
fn an_internal_rewrite_reaches_the_backend_with_the_new_path_and_the_query_as_nginx_makes_it() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             rewrite.kept = ^/old/(.*)$ /new/$1\n\
             rewrite.after = ^/item/(\\d+)$ /show?id=$1 last\n\
             rewrite.dropped = ^/tracked/(.*)$ /clean/$1? break\n\
             rewrite.dollar = ^/price/([0-9]+)$ /cost/$$$1\n\
             rewrite.named = ^/users/(?<id>\\d+)/(?P<tab>[a-z]+)$ /profile?user=$id&tab=${{tab}}\n",
            main.addr
        )),
    );
    for (target, sent) in [
        // No `?` in the replacement: the client's query follows as it came.
        ("/old/a/b?x=1&y=%20", "/new/a/b?x=1&y=%20"),
        ("/old/a", "/new/a"),
        // `?args`: the rule's first, then the client's.
        ("/item/7?ref=mail", "/show?id=7&ref=mail"),
        ("/item/7", "/show?id=7"),
        // A `?` at the end: the client's query dropped.
        ("/tracked/x?utm_source=a", "/clean/x"),
        ("/price/12", "/cost/$12"),
        // Named groups, by their names (nginx's named captures).
        ("/users/42/posts?x", "/profile?user=42&tab=posts&x"),
        // Matched as routes read the path: escapes of letters decoded,
        // `//` merged.
        ("/%6Fld//c?q", "/new/c?q"),
    ] {
        let (status, _, got) = get(&proxy, target);
        assert_eq!(status, 200, "{target}");
        assert_eq!(got, format!("main GET {sent} len=0 fnv=cbf29ce484222325"));
    }
    assert_eq!(main.requests(), 8);
}

#[test]
fn a_request_no_rule_matches_goes_on_as_it_came() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nrewrite.old = ^/old/(.*)$ /new/$1\n",
            main.addr
        )),
    );
    for target in ["/other/old/x?a=%2F", "/a%2Fb", "/older/x", "/"] {
        assert_eq!(get(&proxy, target).0, 200, "{target}");
    }
    // The query is never matched.
    assert_eq!(get(&proxy, "/x?/old/y").0, 200);
    assert_eq!(
        paths(&main),
        ["/other/old/x?a=%2F", "/a%2Fb", "/older/x", "/", "/x?/old/y"]
    );
}

#[test]
fn the_rewritten_path_is_routed_and_a_redirecting_rule_s_request_by_the_path_as_it_came() {
    let (main, api, admin) = (
        Backend::echo("main"),
        Backend::echo("api"),
        Backend::echo("admin"),
    );
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             pool.api = {}\n\
             pool.admin = {}\n\
             pool.admin.allow_from = 10.0.0.0/8\n\
             route./api/ = api rewrite=/\n\
             route./admin/ = admin\n\
             rewrite.v1 = ^/v1/(.*)$ /api/$1\n\
             rewrite.into-admin = ^/panel/(.*)$ /admin/$1\n\
             rewrite.out = ^/admin/old$ /login redirect\n",
            main.addr, api.addr, admin.addr
        )),
    );
    // Routed by the new path, whose prefix the route replaces in turn.
    let (status, _, got) = get(&proxy, "/v1/users?id=3");
    assert_eq!(status, 200);
    assert!(got.starts_with("api GET /users?id=3 "), "{got}");
    // The pool the new path routes to, with its access lists.
    assert_eq!(get(&proxy, "/panel/x").0, 403);
    // A redirecting rule goes by the path as it came: its route's pool
    // refuses this client before any redirect.
    assert_eq!(get(&proxy, "/admin/old").0, 403);
    assert_eq!(admin.requests(), 0);
    assert_eq!(main.requests(), 0);
}

#[test]
fn a_rule_redirects_301_or_302_to_a_path_or_a_url_and_nothing_reaches_a_backend() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             rewrite.moved = ^/blog/(\\d+)/(.*)$ /articles/$2?id=$1 permanent\n\
             rewrite.temp = ^/sale$ /offers/summer redirect\n\
             rewrite.away = ^/docs/(.*)$ https://docs.example.com/$1\n\
             rewrite.clean = ^/go/(.*)$ https://example.com/$1?\n",
            main.addr
        )),
    );
    for (target, status, location) in [
        ("/blog/42/hello?ref=x", 301, "/articles/hello?id=42&ref=x"),
        ("/blog/42/hello", 301, "/articles/hello?id=42"),
        ("/sale?c=1", 302, "/offers/summer?c=1"),
        // An absolute URL redirects 302 without a flag, as nginx's.
        ("/docs/a/b?v=2", 302, "https://docs.example.com/a/b?v=2"),
        ("/go/x?utm=1", 302, "https://example.com/x"),
    ] {
        let (got_status, got_location, got) = get(&proxy, target);
        assert_eq!(
            (got_status, got_location.as_str(), got.as_str()),
            (status, location, "-"),
            "{target}"
        );
    }
    // A HEAD has the head alone.
    let r = proxy.exchange(|client| client.head("/sale"));
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/offers/summer"));
    assert!(r.body.is_empty());
    assert_eq!(main.requests(), 0);
}

#[test]
fn a_replacement_writes_the_request_s_host_and_scheme_as_nginx_s_do() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             rewrite.secure = ^/account(/.*)?$ https://$host/account$1 permanent\n\
             rewrite.moved = ^/old/(.*)$ $scheme://new.example/$1\n\
             rewrite.sites = ^/s/(.*)$ /sites/${{host}}_/$1\n",
            main.addr
        )),
    );
    let on = |host: &str, target: &str| {
        let r = proxy.get_on(host, target, &[]);
        let location = r.header("location").unwrap_or("-").to_string();
        (r.status, location)
    };
    // nginx's `$host`: lower case, without the port.
    assert_eq!(
        on("Shop.Example:8080", "/account/orders?page=2"),
        (301, "https://shop.example/account/orders?page=2".into())
    );
    assert_eq!(
        on("shop.example", "/account"),
        (301, "https://shop.example/account".into())
    );
    // Not the rule's: sent on as it came.
    assert_eq!(on("shop.example", "/account.evil.example/").0, 200);
    assert_eq!(
        on("shop.example", "/old/x"),
        (302, "http://new.example/x".into())
    );
    assert_eq!(on("Blog.Example", "/s/a?b=1").0, 200);
    assert_eq!(
        paths(&main),
        ["/account.evil.example/", "/sites/blog.example_/a?b=1"]
    );
    // A request that names no host takes no rule that writes it.
    let r = proxy.exchange(|client| {
        client.send(b"GET /account/x HTTP/1.0\r\n\r\n");
        client.response()
    });
    assert_eq!(r.status, 200);
    assert_eq!(paths(&main).last().map(String::as_str), Some("/account/x"));
}

#[test]
fn a_replacement_writes_the_client_s_target_and_query_as_nginx_s_variables_do() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             rewrite.moved = ^/shop/ https://shop.example$request_uri permanent\n\
             rewrite.go = ^/go/(.*)$ https://$host/$1$is_args$args redirect\n\
             rewrite.legacy = ^/legacy(/.*)$ /app$1?from=legacy&$args\n",
            main.addr
        )),
    );
    // As sent: escapes and the query as they came, written once.
    assert_eq!(
        get(&proxy, "/shop/a%20b?x=1&y=%2F"),
        (
            301,
            "https://shop.example/shop/a%20b?x=1&y=%2F".into(),
            "-".into()
        )
    );
    assert_eq!(
        get(&proxy, "/go/p/q?x=1&y=2"),
        (302, "https://site.test/p/q?x=1&y=2".into(), "-".into())
    );
    assert_eq!(
        get(&proxy, "/go/p"),
        (302, "https://site.test/p".into(), "-".into())
    );
    assert_eq!(get(&proxy, "/legacy/z?k=v").0, 200);
    assert_eq!(get(&proxy, "/legacy/z").0, 200);
    assert_eq!(
        paths(&main),
        ["/app/z?from=legacy&k=v", "/app/z?from=legacy&"]
    );
}

#[test]
fn the_first_rule_that_matches_applies_and_no_other_after_it() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             rewrite.exact = ^/a/b$ /one\n\
             rewrite.broad = ^/a/ /two\n\
             rewrite.chained = ^/one$ /three\n\
             rewrite.never = ^/a/b$ /four permanent\n",
            main.addr
        )),
    );
    assert_eq!(get(&proxy, "/a/b").0, 200);
    assert_eq!(get(&proxy, "/a/c").0, 200);
    assert_eq!(get(&proxy, "/one").0, 200);
    // `/a/b` became `/one`, and `chained` was not tried on it.
    assert_eq!(paths(&main), ["/one", "/two", "/three"]);
}

#[test]
fn a_rule_with_hosts_applies_to_their_requests_alone() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             rewrite.shop = ^/old/(.*)$ /shop/$1 permanent host=shop.test,*.shop.test\n\
             rewrite.rest = ^/old/(.*)$ /kept/$1\n",
            main.addr
        )),
    );
    for host in ["shop.test", "EU.Shop.Test:8080"] {
        let r = proxy.get_on(host, "/old/a?x=1", &[]);
        assert_eq!(r.status, 301, "{host}: {}", r.head.raw);
        assert_eq!(r.header("location"), Some("/shop/a?x=1"), "{host}");
    }
    // Any other host's request goes to the next rule.
    let r = proxy.get_on("blog.test", "/old/a", &[]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    // The host is the one routes read: an absolute-form target's over
    // the Host field; a request that names none takes no host's rule.
    let r = proxy.exchange(|client| {
        client.send(b"GET http://shop.test/old/b HTTP/1.1\r\nHost: blog.test\r\n\r\n");
        client.response()
    });
    assert_eq!(r.status, 301, "{}", r.head.raw);
    let r = proxy.exchange(|client| {
        client.send(b"GET http://blog.test/old/c HTTP/1.1\r\nHost: shop.test\r\n\r\n");
        client.response()
    });
    assert_eq!(r.status, 200, "{}", r.head.raw);
    let r = proxy.exchange(|client| {
        client.send(b"GET /old/d HTTP/1.0\r\n\r\n");
        client.response()
    });
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(paths(&main), ["/kept/a", "/kept/c", "/kept/d"]);
}

#[test]
fn a_host_s_rules_refuse_its_paths_read_otherwise_and_no_other_host_s() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nrewrite.admin = ^/admin/ /x host=shop.test\n",
            main.addr
        )),
    );
    assert_eq!(proxy.get_on("shop.test", "/admin%2Fusers", &[]).status, 400);
    assert_eq!(proxy.get_on("shop.test", "/a/../admin/", &[]).status, 400);
    let r = proxy.exchange(|client| {
        client.send(b"GET http://shop.test/admin%2Fusers HTTP/1.1\r\nHost: blog.test\r\n\r\n");
        client.response()
    });
    assert_eq!(r.status, 400, "{}", r.head.raw);
    // Another host's requests go on as they would without the rule.
    assert_eq!(proxy.get_on("blog.test", "/admin%2Fusers", &[]).status, 200);
    assert_eq!(paths(&main), ["/admin%2Fusers"]);
}

#[test]
fn the_log_shows_the_request_as_the_client_sent_it() {
    let main = Backend::echo("main");
    let mut proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             rewrite.old = ^/old/(.*)$ /new/$1\n\
             rewrite.moved = ^/moved$ /there permanent\n",
            main.addr
        )),
    );
    assert_eq!(get(&proxy, "/old/page?x=1").0, 200);
    assert_eq!(get(&proxy, "/moved").0, 301);
    // An absolute-form target keeps its host, and is logged as it came.
    let r = proxy.exchange(|client| {
        client.send(b"GET http://site.test/old/abs HTTP/1.1\r\nHost: other.test\r\n\r\n");
        client.response()
    });
    assert!(
        r.body_str().starts_with("main GET /new/abs "),
        "{}",
        r.body_str()
    );
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for request in [
        "\"GET /old/page?x=1 HTTP/1.1\" 200",
        "\"GET /moved HTTP/1.1\" 301",
        "\"GET http://site.test/old/abs HTTP/1.1\" 200",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(request)),
            "{request}: {lines:#?}"
        );
    }
    assert_eq!(paths(&main), ["/new/page?x=1", "/new/abs"]);
    assert_eq!(main.seen()[1].field_or("host", "-"), "site.test");
}

#[test]
fn a_template_s_uri_and_args_are_the_rewritten_ones_and_its_request_the_client_s() {
    let main = Backend::echo("main");
    let mut proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             rewrite.find = ^/find/([a-z]+)$ /search?q=$1\n\
             log_format = $request_uri|$uri|$args|$request\n",
            main.addr
        )),
    );
    assert_eq!(get(&proxy, "/find/shoes?page=2").0, 200);
    assert_eq!(get(&proxy, "/other?x=1").0, 200);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(
        proxy.log_lines(),
        [
            "/find/shoes?page=2|/search|q=shoes&page=2|GET /find/shoes?page=2 HTTP/1.1",
            "/other?x=1|/other|x=1|GET /other?x=1 HTTP/1.1",
        ]
    );
}

/// A template's `$is_args`, as its `$args`, is the rewritten query's.
#[test]
fn a_template_s_is_args_follows_the_query_a_rule_made() {
    let main = Backend::echo("main");
    let mut proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             rewrite.find = ^/find/([a-z]+)$ /search?q=$1\n\
             rewrite.drop = ^/drop$ /dropped?\n\
             log_format = $uri$is_args$args|[$is_args]\n",
            main.addr
        )),
    );
    for path in ["/find/shoes", "/drop?x=1", "/other", "/other?x=1"] {
        assert_eq!(get(&proxy, path).0, 200, "{path}");
    }
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(
        proxy.log_lines(),
        // Without a query `$args` is the log's `-` (nginx's too), while
        // `$is_args` is empty.
        [
            "/search?q=shoes|[?]",
            "/dropped-|[]",
            "/other-|[]",
            "/other?x=1|[?]"
        ]
    );
}

#[test]
fn the_cache_keys_the_rewritten_target() {
    let origin = cacheable_echo("origin");
    let tweak = from_file(&format!(
        "targets = {}\n\
         rewrite.a = ^/a/(\\d+)$ /item/$1\n\
         rewrite.b = ^/b/(\\d+)$ /item/$1\n",
        origin.addr
    ));
    let proxy = start_proxy(&[], move |c: &mut Config| {
        tweak(c);
        c.cache_size = 1 << 20;
    });
    let miss = proxy.get_on("site.test", "/a/1", &[]);
    assert_eq!(miss.header("x-cache"), Some("MISS"), "{}", miss.head.raw);
    // Another URL the client asked for, one target: the stored answer.
    let hit = proxy.get_on("site.test", "/b/1", &[]);
    assert_eq!(hit.header("x-cache"), Some("HIT"), "{}", hit.head.raw);
    assert_eq!(hit.body_str(), miss.body_str());
    let hit = proxy.get_on("site.test", "/item/1", &[]);
    assert_eq!(hit.header("x-cache"), Some("HIT"), "{}", hit.head.raw);
    assert_eq!(paths(&origin), ["/item/1"]);
}

#[test]
fn a_body_sent_to_a_redirecting_rule_is_not_read_and_its_connection_closes() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nrewrite.form = ^/old-form$ /form redirect\n",
            main.addr
        )),
    );
    // Without a body, the connection goes on to the next request.
    let mut client = proxy.connect();
    let r = client.get("/old-form");
    assert_eq!((r.status, r.header("location")), (302, Some("/form")));
    assert_eq!(r.header("connection"), None, "{}", r.head.raw);
    let r = client.get("/form");
    assert_eq!(r.status, 200);
    assert!(r.body_str().starts_with("main GET /form "));
    // With one, it is answered unread, and the connection closed: what
    // is left of the body would be read as the next request.
    let r = client.post("/old-form", b"name=value&more=1");
    assert_eq!((r.status, r.header("location")), (302, Some("/form")));
    assert_eq!(r.header("connection"), Some("close"), "{}", r.head.raw);
    assert!(client.is_closed());
    assert_eq!(main.requests(), 1);
}

#[test]
fn a_rule_that_makes_no_path_is_answered_500_and_the_connection_goes_on() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nrewrite.bare = ^/bare/(.*)$ $1\n",
            main.addr
        )),
    );
    let mut client = proxy.connect();
    let r = client.get("/bare/x");
    assert_eq!(r.status, 500, "{}", r.head.raw);
    assert_eq!(r.body_str(), "500 Internal Server Error\n");
    // Matched with `//` merged: the group holds `y` all the same.
    let r = client.get("/bare//y");
    assert_eq!(r.status, 500, "{}", r.head.raw);
    let r = client.get("/other");
    assert_eq!(r.status, 200);
    assert_eq!(paths(&main), ["/other"]);
}

#[test]
fn with_rules_a_path_backends_read_in_different_ways_is_refused_as_routes_refuse_it() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nrewrite.api = ^/api/(.*)$ /v2/$1\n",
            main.addr
        )),
    );
    for target in ["/x/../api/y", "/api/%2e%2e/admin", "/api\\y"] {
        assert_eq!(get(&proxy, target).0, 400, "{target}");
    }
    assert_eq!(main.requests(), 0);
}

#[test]
fn the_client_s_url_is_what_names_its_request_after_a_rewrite() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             rewrite.old = ^/old/(.*)$ /new/$1\n\
             request_header.X-Uri = $request_uri $uri $args\n",
            main.addr
        )),
    );
    assert_eq!(get(&proxy, "/old/a?q=1").0, 200);
    let seen = main.seen();
    // As nginx's `$request_uri` after its `rewrite`; `$uri`, `$args` the
    // new ones.
    assert_eq!(seen[0].field_or("x-uri", "-"), "/old/a?q=1 /new/a q=1");
}

#[test]
fn the_redirect_to_https_sends_the_client_to_its_own_url() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             real_ip_from = 127.0.0.1\n\
             redirect_to_https = true\n\
             rewrite.old = ^/old/(.*)$ /new/$1\n\
             rewrite.moved = ^/moved$ /there permanent\n",
            main.addr
        )),
    );
    let plain = [("X-Forwarded-Proto", "http")];
    let r = proxy.get_on("site.test", "/old/a?x=1", &plain);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://site.test/old/a?x=1"));
    // The HTTPS redirect comes first, as before a redirect route.
    let r = proxy.get_on("site.test", "/moved", &plain);
    assert_eq!(r.header("location"), Some("https://site.test/moved"));
    let r = proxy.get_on("site.test", "/moved", &[("X-Forwarded-Proto", "https")]);
    assert_eq!((r.status, r.header("location")), (301, Some("/there")));
    assert_eq!(main.requests(), 0);
}

#[test]
fn each_rule_s_applications_are_counted() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\n\
             rewrite.old = ^/old/(.*)$ /new/$1\n\
             rewrite.moved = ^/moved$ /there permanent\n\
             rewrite.unused = ^/unused$ /x\n",
            main.addr
        )),
    );
    get(&proxy, "/old/a");
    get(&proxy, "/old/b");
    get(&proxy, "/moved");
    get(&proxy, "/neither");
    let count = |rule: &str| proxy.metric(&format!("inverso_rewrites_total{{rule=\"{rule}\"}}"));
    assert_eq!(
        [count("old"), count("moved"), count("unused")],
        [Some(2), Some(1), Some(0)]
    );
    // A reload keeps the count of a rule that keeps its name, whatever
    // it now says; one that went is no longer shown.
    proxy.reload(
        &[],
        from_file_with_admin(&format!(
            "targets = {}
rewrite.old = ^/older/(.*)$ /new/$1
rewrite.fresh = ^/f$ /x
",
            main.addr
        )),
    );
    get(&proxy, "/older/a");
    assert_eq!(
        [count("old"), count("fresh"), count("moved")],
        [Some(3), Some(0), None]
    );
}

#[test]
fn rules_that_cannot_be_used_are_refused_at_their_line() {
    let base = "targets = 127.0.0.1:1\n";
    for (lines, says) in [
        (
            "rewrite.r = ^/(a /b\n",
            "proxy.conf:2: rewrite.r: the pattern `^/(a` does not compile: unclosed group \
             (at `(`, character 3)",
        ),
        (
            "rewrite.r = ^/a$ /b moved\n",
            "proxy.conf:2: rewrite.r: unknown flag `moved`: a rule's flag is `redirect` (302), \
             `permanent` (301), or `last` or `break`",
        ),
        (
            "rewrite.r = ^/(a)/(b)$ /$7\n",
            "proxy.conf:2: rewrite.r: the replacement `/$7` names `$7`, but the pattern has 2 \
             groups",
        ),
        (
            "rewrite.r = ^/a$ /cost-in-$\n",
            "proxy.conf:2: rewrite.r: the replacement `/cost-in-$` has a `$` that is no `$1` \
             to `$9` or variable (`$host`, `$scheme`, `$request_uri`, `$args`, `$is_args`): \
             `$$` writes a dollar",
        ),
        (
            "rewrite.r = ^/a$ /b\nrewrite.r = ^/c$ /d\n",
            "proxy.conf:3: duplicate key `rewrite.r` (first set on line 2)",
        ),
        (
            "rewrite.a:b = ^/a$ /b\n",
            "proxy.conf:2: `rewrite.a:b`: a rule's name is 1 to 64 letters, digits, `-` or `_`",
        ),
        (
            "rewrite. = ^/a$ /b\n",
            "proxy.conf:2: `rewrite.` needs a name after the dot",
        ),
        (
            "rewrites.r = ^/a$ /b\n",
            "proxy.conf:2: unknown key `rewrites.r` (did you mean `rewrite.r`?)",
        ),
        (
            "rewrite.r = ^/a$ b/c\n",
            "proxy.conf:2: rewrite.r: the replacement `b/c` must start with `/`",
        ),
    ] {
        let message = config_error(&format!("{base}{lines}"));
        assert!(message.starts_with(says), "{lines}: {message}");
    }
    let rules: String = (0..=100)
        .map(|i| format!("rewrite.r{i} = ^/{i}$ /x\n"))
        .collect();
    assert_eq!(
        config_error(&format!("{base}{rules}")),
        "proxy.conf:102: `rewrite.r100`: more than 100 rewrite rules"
    );
}

#[test]
fn a_redirect_never_goes_to_a_host_a_group_lengthened_or_made_a_user_name() {
    let main = Backend::echo("main");
    let text = format!(
        "targets = {}\nrewrite.docs = ^/docs(.*)$ https://docs.example.com$1 permanent\n",
        main.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let (status, location, _) = get(&proxy, "/docs/a");
    assert_eq!(
        (status, location.as_str()),
        (301, "https://docs.example.com/a")
    );
    for target in ["/docs.evil.example/", "/docs@evil.example/"] {
        let (status, location, _) = get(&proxy, target);
        assert_eq!((status, location.as_str()), (500, "-"), "{target}");
    }
    assert_eq!(main.requests(), 0);
}

#[test]
fn a_path_some_backends_read_so_that_another_rule_or_none_applies_is_refused() {
    let main = Backend::echo("main");
    let text = format!(
        "targets = {}\nrewrite.moved = ^/admin/(.*)$ https://admin.example.com/$1 permanent\n\
         rewrite.old = ^/old/(.*)$ /new/$1\n",
        main.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    assert_eq!(get(&proxy, "/admin/users").0, 301);
    // As servers that decode `%2F` or drop `;` parameters read them, the
    // rule would apply: 400, as routes answer such a path.
    for target in ["/admin%2Fusers", "/admin;x/users", "/old/%25%32%65"] {
        assert_eq!(get(&proxy, target).0, 400, "{target}");
    }
    // Read any way, no rule: as it came.
    assert_eq!(get(&proxy, "/other;x/y").0, 200);
    assert_eq!(paths(&main), ["/other;x/y"]);
}

#[test]
fn the_sign_in_service_judges_the_url_the_backend_will_serve() {
    let app = Backend::echo("app");
    // Refuses what is under /admin/, whatever path the client wrote.
    let gate = Backend::start("sso", |seen, out| {
        let uri = seen.field_or("x-original-uri", "-");
        let status = if uri.starts_with("/admin/") { 403 } else { 200 };
        respond(out, status, &[], b"");
        Action::KeepAlive
    });
    let text = format!(
        "targets = {}\npool.sso = {}\nauth_request = sso /verify\n\
         rewrite.legacy = ^/legacy/(.*)$ /admin/$1\n",
        app.addr, gate.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    assert_eq!(get(&proxy, "/admin/users").0, 403);
    assert_eq!(get(&proxy, "/legacy/users").0, 403, "judged as served");
    assert_eq!(get(&proxy, "/public/x").0, 200);
    assert_eq!(app.requests(), 1);
    let asked: Vec<String> = (gate.seen().iter())
        .map(|s| s.field_or("x-original-url", "-"))
        .collect();
    assert_eq!(asked[1], "http://site.test/admin/users");
}

#[test]
fn a_redirect_made_of_the_client_s_query_never_starts_with_a_backslash_browsers_read_as_a_slash() {
    // "Back where the sign-in began": the query is a path on this site.
    // Browsers read `\` as `/`, so `/\evil.example` is `//evil.example`,
    // another site, which a `//` the query wrote is refused as.
    let main = Backend::echo("main");
    let text = format!(
        "targets = {}\nrewrite.back = ^/signed-in$ /$args redirect\n",
        main.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    assert_eq!(
        get(&proxy, "/signed-in?account/orders"),
        (302, "/account/orders".into(), "-".into())
    );
    assert_eq!(get(&proxy, "/signed-in?/evil.example").0, 500);
    let (status, location, _) = get(&proxy, "/signed-in?\\evil.example/x");
    assert_eq!(
        (status, location.as_str()),
        (302, "/%5Cevil.example/x"),
        "a Location a browser reads as another site's"
    );
    assert_eq!(main.requests(), 0);
}
