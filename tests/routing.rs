//! Routing: `pool.<name>` and `route.<host><path>` send each request to a
//! pool of backends by its host and path, `rewrite=` changes the path the
//! backend is sent, and each pool is balanced, retried, health-checked,
//! drained and made sticky on its own.
//!
//! The pools and routes are written as proxy.conf is, with the backends'
//! real addresses, and read by the configuration loader: a pool's
//! settings are built from the file's top-level keys as the binary builds
//! them.

mod support;

use inverso::Config;
use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use support::{from_file, from_file_with_admin};

// ------------------------------------------------------------ helpers

/// `GET target` with `Host: host` on a connection of its own: the status
/// and the name of the backend that answered (`-` for none).
fn via(proxy: &Proxy, host: &str, target: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let r = proxy.get_on(host, target, fields);
    let backend = r.header("x-backend").unwrap_or("-").to_string();
    (r.status, backend)
}

/// [`via`] for a request that must be answered 200: the backend's name.
#[track_caller]
fn served_by(proxy: &Proxy, host: &str, target: &str) -> String {
    let (status, backend) = via(proxy, host, target, &[]);
    assert_eq!(status, 200, "{host} {target}");
    backend
}

/// The objects of `/status`'s `targets`, as JSON text each.
fn status_targets(proxy: &Proxy) -> Vec<String> {
    let response = proxy.admin("GET", "/status", "");
    assert_eq!(response.status, 200);
    let body = response.body_str();
    let (_, rest) = body.split_once("\"targets\":[").expect("targets");
    let mut objects = Vec::new();
    let (mut depth, mut start, mut in_string, mut escaped) = (0, 0, false, false);
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    objects.push(rest[start..=i].to_string());
                }
            }
            ']' if depth == 0 => break,
            _ => {}
        }
    }
    objects
}

/// `key`'s value in a flat JSON object, as written (a string without its
/// quotes).
fn field(object: &str, key: &str) -> String {
    let (_, rest) = (object.split_once(&format!("\"{key}\":")))
        .unwrap_or_else(|| panic!("no {key} in {object}"));
    match rest.strip_prefix('"') {
        Some(s) => s.split('"').next().unwrap().to_string(),
        None => rest.split([',', '}']).next().unwrap().to_string(),
    }
}

/// The `/status` object of the target at `addr`.
#[track_caller]
fn status_of(proxy: &Proxy, addr: SocketAddr) -> String {
    let address = addr.to_string();
    (status_targets(proxy).into_iter())
        .find(|t| field(t, "address") == address)
        .unwrap_or_else(|| panic!("{address} is not in /status"))
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

// ------------------------------------------------------ host and path

#[test]
fn server_name_is_the_host_of_the_route_taken_as_written() {
    let backend = Backend::start("main", |seen, out| {
        let sent = seen.field_or("x-server-name", "(none)");
        respond(out, 200, &[("X-Seen", &sent)], b"");
        Action::KeepAlive
    });
    let mut proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             route.shop.example/ = default\n\
             route.*.example.org/ = default\n\
             route./api/ = default\n\
             request_header.X-Server-Name = $server_name\n\
             log_format = $host [$server_name]\n",
            backend.addr
        )),
    );
    let mut client = proxy.connect();
    // A value that renders empty sends no field.
    for (host, path, sent) in [
        ("Shop.Example", "/", "shop.example"),
        ("a.example.org", "/", "*.example.org"),
        ("x.test", "/api/", "(none)"),
        ("x.test", "/", "(none)"),
        ("shop.example", "/", "shop.example"),
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        client.send(request.as_bytes());
        let answer = client.response();
        assert_eq!(answer.status, 200, "{host}{path}");
        assert_eq!(answer.header("x-seen"), Some(sent), "{host}{path}");
    }
    // Refused before it is routed: not the last request's route's.
    client.send(b"GET /\x01 HTTP/1.1\r\nHost: shop.example\r\n\r\n");
    assert_eq!(client.response().status, 400);
    drop(client);
    assert!(proxy.shutdown(std::time::Duration::from_secs(5)));
    assert_eq!(
        proxy.log_lines(),
        [
            "shop.example [shop.example]",
            "a.example.org [*.example.org]",
            "x.test [-]",
            "x.test [-]",
            "shop.example [shop.example]",
            "- [-]",
        ]
    );
}

#[test]
fn requests_go_to_the_pool_their_host_and_path_route_them_to() {
    let (main, api, shop) = (
        Backend::echo("main"),
        Backend::echo("api"),
        Backend::echo("shop"),
    );
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             pool.api = {}\n\
             pool.shop = {}\n\
             route./api = api\n\
             route./static/long/path/ = api\n\
             route.shop.example = shop\n\
             route.*.example.org = shop\n\
             route.admin.example.org = default\n",
            main.addr, api.addr, shop.addr
        )),
    );
    for (host, target, want) in [
        // By path, whole segments only.
        ("x.test", "/api", "api"),
        ("x.test", "/api/users?id=1", "api"),
        ("x.test", "/api?x", "api"),
        ("x.test", "/apiary", "main"),
        ("x.test", "/", "main"),
        ("x.test", "/other/api", "main"),
        // By exact host, in any case, with a port and a trailing dot.
        ("shop.example", "/cart", "shop"),
        ("Shop.Example.:8080", "/cart", "shop"),
        ("shop.example.net", "/cart", "main"),
        // A host's route beats a longer path-only route.
        ("shop.example", "/static/long/path/x", "shop"),
        ("x.test", "/static/long/path/x", "api"),
        ("shop.example", "/api/x", "shop"),
        // `*.` is every name under it, not the name itself.
        ("a.example.org", "/x", "shop"),
        ("a.b.example.org", "/api/x", "shop"),
        ("example.org", "/x", "main"),
        // An exact host beats a `*.` one, and `default` is targets.
        ("admin.example.org", "/x", "main"),
        ("admin.example.org", "/api/x", "main"),
    ] {
        assert_eq!(served_by(&proxy, host, target), want, "{host} {target}");
    }
    // An absolute-form target's authority is the request's host.
    let r = proxy.exchange(|client| {
        client.send(b"GET http://shop.example/cart HTTP/1.1\r\nHost: shop.example\r\n\r\n");
        client.response()
    });
    assert_eq!(r.header("x-backend"), Some("shop"), "{}", r.head.raw);
    // Without `rewrite=`, the path is sent as the client wrote it.
    assert!(
        api.seen().iter().any(|s| s.path() == "/api/users?id=1"),
        "{:?}",
        api.seen().iter().map(Seen::path).collect::<Vec<_>>()
    );
    // The only `/api/` requests on targets were the ones admin.example.org's
    // route kept there.
    let kept: Vec<String> = (main.seen().iter())
        .filter(|s| s.path().starts_with("/api/"))
        .map(|s| s.field_or("host", "(none)"))
        .collect();
    assert_eq!(kept, ["admin.example.org"]);
    // Each request on a kept-alive connection is routed on its own.
    let mut client = proxy.connect();
    let on_one: Vec<String> = ["/api/1", "/", "/api/2", "/x"]
        .iter()
        .map(|path| client.get(path).header("x-backend").unwrap().to_string())
        .collect();
    assert_eq!(on_one, ["api", "main", "api", "main"]);
}

#[test]
fn every_spelling_of_a_path_goes_where_the_path_goes() {
    let (main, api) = (Backend::echo("main"), Backend::echo("api"));
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\npool.api = {}\nroute./api/ = api\n",
            main.addr, api.addr
        )),
    );
    for target in [
        "/api/plain",
        "/%61pi/x",
        "/%61%70%69/x",
        "//api/z",
        "/api//z",
    ] {
        assert_eq!(served_by(&proxy, "x.test", target), "api", "{target}");
    }
    // Nor does `/api` reach a route for `/api/`.
    for target in ["/api", "/API/x", "/x;jsessionid=1"] {
        assert_eq!(served_by(&proxy, "x.test", target), "main", "{target}");
    }
    // What backends read in different ways is refused, and reaches none.
    for target in [
        "/x/../api/y",
        "/./api/y",
        "/api//../x",
        "/x/%2e%2e/api/",
        "/x/..;/api/",
        "/x\\api/",
        "/api%2Fx",
        "/api;v=1/x",
    ] {
        assert_eq!(via(&proxy, "x.test", target, &[]).0, 400, "{target}");
    }
    assert_eq!(main.requests() + api.requests(), 8);
    // A `;` or `%2F` that leaves the route as it is goes on as it came.
    assert_eq!(served_by(&proxy, "x.test", "/api/p;jsessionid=1"), "api");
    assert_eq!(served_by(&proxy, "x.test", "/api/group%2Fproject"), "api");
    let paths: Vec<String> = api.seen().iter().map(|s| s.path().to_string()).collect();
    assert!(
        paths.contains(&"/api/p;jsessionid=1".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"/api/group%2Fproject".to_string()),
        "{paths:?}"
    );
}

// ------------------------------------------------------------ rewrite=

#[test]
fn rewrite_changes_the_request_line_alone_and_the_log_shows_the_client_s_url() {
    let (main, api) = (Backend::echo("main"), Backend::echo("api"));
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\npool.api = {}\n\
             route./api/ = api rewrite=/\n\
             route./old/ = api rewrite=/v2/\n",
            main.addr, api.addr
        )),
    );
    let r = proxy.get_on("x.test", "/api/users?id=3&q=%61", &[]);
    assert_eq!(
        r.body_str(),
        "api GET /users?id=3&q=%61 len=0 fnv=cbf29ce484222325"
    );
    // Matched as decoded, sent as matched; the query as it came.
    let r = proxy.get_on("x.test", "/%61pi//b?x=%2F", &[]);
    assert_eq!(r.body_str(), "api GET /b?x=%2F len=0 fnv=cbf29ce484222325");
    let r = proxy.get_on("x.test", "/old/page", &[]);
    assert_eq!(r.body_str(), "api GET /v2/page len=0 fnv=cbf29ce484222325");
    // An absolute-form target is sent in origin form, rewritten.
    let r = proxy.exchange(|client| {
        client.send(b"GET http://x.test/api/abs?k=v HTTP/1.1\r\nHost: x.test\r\n\r\n");
        client.response()
    });
    assert_eq!(r.body_str(), "api GET /abs?k=v len=0 fnv=cbf29ce484222325");
    assert_eq!(main.requests(), 0);
    // The backend read the rest of the request as the client sent it.
    let first = &api.seen()[0];
    assert_eq!(first.head.get("host"), Some("x.test"), "{}", first.head.raw);
    // The access log shows the URL the client asked for.
    assert!(wait_until(WAIT_LIMIT, || proxy.log_lines().len() >= 4));
    let lines = proxy.log_lines();
    for (line, url) in lines.iter().zip([
        "/api/users?id=3&q=%61",
        "/%61pi//b?x=%2F",
        "/old/page",
        "http://x.test/api/abs?k=v",
    ]) {
        assert!(line.contains(&format!(" {url} ")), "{url}: {line}");
    }
    assert!(lines.iter().all(|l| !l.contains(" /users")), "{lines:?}");
}

#[test]
fn a_rewritten_url_is_cached_under_the_client_s_url() {
    let (main, api) = (cacheable_echo("main"), cacheable_echo("api"));
    let tweak = from_file(&format!(
        "targets = {}\npool.api = {}\nroute./api/ = api rewrite=/\n",
        main.addr, api.addr
    ));
    let proxy = start_proxy(&[], |c| {
        tweak(c);
        c.cache_size = 1 << 20;
    });
    let via_api = "api GET /x len=0 fnv=cbf29ce484222325";
    let via_main = "main GET /x len=0 fnv=cbf29ce484222325";
    // `/api/x` is sent as `/x` and stored; `/x` on targets is another
    // entry, not a hit on the one `/api/x` stored.
    expect(&proxy.get_on("x.test", "/api/x", &[]), 200, "MISS", via_api);
    expect(&proxy.get_on("x.test", "/x", &[]), 200, "MISS", via_main);
    expect(&proxy.get_on("x.test", "/api/x", &[]), 200, "HIT", via_api);
    expect(&proxy.get_on("x.test", "/x", &[]), 200, "HIT", via_main);
    assert_eq!((api.requests(), main.requests()), (1, 1));
}

// ------------------------------------------------------------ per pool

#[test]
fn each_pool_balances_with_its_own_algorithm() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let tenants: Vec<Backend> = (0..3).map(|i| Backend::echo(&format!("t{i}"))).collect();
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}, {}\n\
             pool.tenants = {}, {}, {}\n\
             pool.tenants.balance = hash\n\
             pool.tenants.hash_on = header:X-Tenant\n\
             route./t/ = tenants\n",
            a.addr, b.addr, tenants[0].addr, tenants[1].addr, tenants[2].addr
        )),
    );
    let mut top = Vec::new();
    for tenant in ["acme", "globex", "initech"] {
        let mut served = Vec::new();
        for _ in 0..4 {
            // Interleaved: one pool's turns are not the other's.
            top.push(served_by(&proxy, "x.test", "/"));
            let (status, backend) = via(&proxy, "x.test", "/t/x", &[("X-Tenant", tenant)]);
            assert_eq!(status, 200);
            served.push(backend);
        }
        assert!(
            served.iter().all(|s| *s == served[0]),
            "{tenant}: {served:?}"
        );
        assert!(served[0].starts_with('t'), "{tenant}: {served:?}");
    }
    // targets goes on round robin: every other request each.
    for pair in top.windows(2) {
        assert_ne!(pair[0], pair[1], "{top:?}");
    }
    assert_eq!(a.requests() + b.requests(), 12);
    assert!(a.seen().iter().chain(&b.seen()).all(|s| s.path() == "/"));
}

#[test]
fn a_failed_request_is_retried_within_its_pool_only() {
    let (main, live) = (Backend::echo("main"), Backend::echo("live"));
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             pool.half = {}, {}\n\
             pool.gone = {}\n\
             route./half/ = half\n\
             route./gone/ = gone\n",
            main.addr,
            dead_addr(),
            live.addr,
            dead_addr()
        )),
    );
    for i in 0..6 {
        assert_eq!(served_by(&proxy, "x.test", &format!("/half/{i}")), "live");
    }
    assert_eq!(live.requests(), 6);
    // A pool with no backend left answers itself: no other pool's
    // backend stands in.
    for _ in 0..3 {
        assert_eq!(via(&proxy, "x.test", "/gone/x", &[]), (502, "-".into()));
    }
    assert_eq!(main.requests(), 0);
    assert_eq!(served_by(&proxy, "x.test", "/"), "main");
}

#[test]
fn each_pool_is_health_checked_with_its_own_probe() {
    // `sick` fails the pool's probe; both of the pool's backends answer
    // every other request.
    let answer = |name: &'static str, probe_status: u16| {
        Backend::start(name, move |seen, out| {
            let status = match seen.path() {
                "/pool-probe" => probe_status,
                _ => 200,
            };
            respond(out, status, &[("X-Backend", name)], name.as_bytes());
            Action::KeepAlive
        })
    };
    let main = Backend::echo("main");
    let (sick, well) = (answer("sick", 500), answer("well", 200));
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\n\
             pool.checked = {}, {}\n\
             pool.checked.health_check_path = /pool-probe\n\
             pool.checked.health_check_interval = 100ms\n\
             pool.checked.health_check_fall = 1\n\
             route./c/ = checked\n",
            main.addr, sick.addr, well.addr
        )),
    );
    assert!(
        wait_until(WAIT_LIMIT, || {
            field(&status_of(&proxy, sick.addr), "healthy") == "false"
        }),
        "{:?}",
        status_targets(&proxy)
    );
    let probes = |b: &Backend| {
        b.seen()
            .iter()
            .filter(|s| s.path() == "/pool-probe")
            .count()
    };
    let sick_served = sick.requests() - probes(&sick);
    for i in 0..4 {
        assert_eq!(served_by(&proxy, "x.test", &format!("/c/{i}")), "well");
    }
    assert_eq!(sick.requests() - probes(&sick), sick_served);
    assert!(probes(&well) >= 1);
    // targets sets no health_check_path: its backend is not probed, and
    // stays in rotation.
    assert!(main.seen().is_empty(), "{:?}", main.seen());
    assert_eq!(field(&status_of(&proxy, main.addr), "healthy"), "true");
    assert_eq!(field(&status_of(&proxy, well.addr), "healthy"), "true");
    assert_eq!(served_by(&proxy, "x.test", "/"), "main");
}

// ------------------------------------------------------------ admin

#[test]
fn status_names_each_target_s_pool_and_a_pool_s_target_can_be_drained() {
    let main = Backend::echo("main");
    let (p1, p2) = (Backend::echo("p1"), Backend::echo("p2"));
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\npool.api = {}, {}\nroute./api/ = api\n",
            main.addr, p1.addr, p2.addr
        )),
    );
    let pools: Vec<(String, String)> = (status_targets(&proxy).iter())
        .map(|t| (field(t, "address"), field(t, "pool")))
        .collect();
    assert_eq!(
        pools,
        [
            (main.addr.to_string(), "default".to_string()),
            (p1.addr.to_string(), "api".to_string()),
            (p2.addr.to_string(), "api".to_string()),
        ]
    );
    let r = proxy.admin("PUT", &format!("/targets/{}", p1.addr), "drain");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(
        r.body_str().contains("\"admin_state\":\"drain\""),
        "{}",
        r.body_str()
    );
    assert_eq!(field(&status_of(&proxy, p1.addr), "admin_state"), "drain");
    for i in 0..4 {
        assert_eq!(served_by(&proxy, "x.test", &format!("/api/{i}")), "p2");
    }
    assert_eq!(p1.requests(), 0);
    assert_eq!(served_by(&proxy, "x.test", "/"), "main");
    // And back.
    let r = proxy.admin("PUT", &format!("/targets/{}", p1.addr), "ready");
    assert_eq!(r.status, 200, "{}", r.body_str());
    let served: Vec<String> = (0..2)
        .map(|i| served_by(&proxy, "x.test", &format!("/api/{i}")))
        .collect();
    assert!(served.contains(&"p1".to_string()), "{served:?}");
}

// ------------------------------------------------------------ reload

#[test]
fn a_reload_puts_new_pools_and_routes_in_force() {
    let (main, new) = (Backend::echo("main"), Backend::echo("new"));
    let proxy = start_proxy(&[], from_file(&format!("targets = {}\n", main.addr)));
    assert_eq!(served_by(&proxy, "x.test", "/new/x"), "main");
    proxy.reload(
        &[],
        from_file(&format!(
            "targets = {}\npool.fresh = {}\nroute./new/ = fresh rewrite=/\n",
            main.addr, new.addr
        )),
    );
    let r = proxy.get_on("x.test", "/new/x", &[]);
    assert_eq!(r.body_str(), "new GET /x len=0 fnv=cbf29ce484222325");
    assert_eq!(served_by(&proxy, "x.test", "/x"), "main");
    assert_eq!(new.requests(), 1);
}

#[test]
fn a_target_moved_into_a_pool_keeps_its_drain_state_and_counters() {
    let (main, moved) = (Backend::echo("main"), Backend::echo("moved"));
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!("targets = {}, {}\n", main.addr, moved.addr)),
    );
    for _ in 0..4 {
        served_by(&proxy, "x.test", "/");
    }
    assert_eq!(moved.requests(), 2);
    assert_eq!(field(&status_of(&proxy, moved.addr), "requests"), "2");
    let r = proxy.admin("PUT", &format!("/targets/{}", moved.addr), "drain");
    assert_eq!(r.status, 200, "{}", r.body_str());
    proxy.reload(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\npool.side = {}\nroute./side/ = side\n",
            main.addr, moved.addr
        )),
    );
    let status = status_of(&proxy, moved.addr);
    assert_eq!(field(&status, "pool"), "side", "{status}");
    assert_eq!(field(&status, "admin_state"), "drain", "{status}");
    assert_eq!(field(&status, "requests"), "2", "{status}");
    // Drained, it is given no new request; its pool has no other.
    assert_eq!(via(&proxy, "x.test", "/side/x", &[]).0, 503);
    assert_eq!(moved.requests(), 2);
    let r = proxy.admin("PUT", &format!("/targets/{}", moved.addr), "ready");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(served_by(&proxy, "x.test", "/side/x"), "moved");
    assert_eq!(served_by(&proxy, "x.test", "/x"), "main");
}

// ------------------------------------------------------------ sticky

/// The value a response's `Set-Cookie` gives `name`, if it sets it.
fn cookie_set(r: &Response, name: &str) -> Option<String> {
    (r.head.get_all("set-cookie"))
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_string())
}

#[test]
fn a_pool_s_sticky_cookie_brings_a_client_back_to_its_backend() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let (s1, s2) = (Backend::echo("s1"), Backend::echo("s2"));
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}, {}\n\
             sticky_cookie = srv\n\
             pool.shop = {}, {}\n\
             pool.shop.sticky_cookie = srv_shop\n\
             route./shop/ = shop\n",
            a.addr, b.addr, s1.addr, s2.addr
        )),
    );
    let first = proxy.get_on("x.test", "/shop/cart", &[]);
    let home = first.header("x-backend").unwrap().to_string();
    let id = cookie_set(&first, "srv_shop").expect("the pool's cookie");
    assert_eq!(cookie_set(&first, "srv"), None, "{}", first.head.raw);
    let cookie = format!("a=1; srv_shop={id}");
    for _ in 0..4 {
        let r = proxy.get_on("x.test", "/shop/cart", &[("Cookie", &cookie)]);
        assert_eq!(r.header("x-backend"), Some(home.as_str()));
        assert_eq!(r.header("set-cookie"), None, "{}", r.head.raw);
    }
    // Without it, round robin sends the next client to the other one.
    let other = proxy.get_on("x.test", "/shop/cart", &[]);
    assert_ne!(other.header("x-backend"), Some(home.as_str()));
    assert_ne!(cookie_set(&other, "srv_shop"), Some(id.clone()));
    // targets' own cookie is another.
    let top = proxy.get_on("x.test", "/", &[]);
    assert!(cookie_set(&top, "srv").is_some(), "{}", top.head.raw);
    assert_eq!(cookie_set(&top, "srv_shop"), None);
    // The pool's cookie is the proxy's: its backends see the rest.
    let seen = [s1.seen(), s2.seen()].concat();
    assert!(seen
        .iter()
        .all(|s| s.head.get("cookie").is_none_or(|c| c == "a=1")));
}

// ------------------------------------------------ what a pool sets itself

#[test]
fn a_pool_s_request_fields_replace_the_top_level_ones_for_its_backends() {
    let (main, blog) = (Backend::echo("main"), Backend::echo("blog"));
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             request_header.X-Auth = top\n\
             request_header.X-Env = prod\n\
             pool.blog = {}\n\
             pool.blog.request_header.Host = blog.example.net\n\
             pool.blog.request_header.X-Auth =\n\
             route./blog/ = blog\n",
            main.addr, blog.addr
        )),
    );
    assert_eq!(served_by(&proxy, "site.test", "/blog/post"), "blog");
    assert_eq!(served_by(&proxy, "site.test", "/home"), "main");
    let seen = &blog.seen()[0];
    assert_eq!(seen.field_or("host", "(none)"), "blog.example.net");
    assert_eq!(seen.field_or("x-auth", "(none)"), "(none)");
    assert_eq!(seen.field_or("x-env", "(none)"), "prod");
    // The client's host still goes on as X-Forwarded-Host.
    assert_eq!(seen.field_or("x-forwarded-host", "(none)"), "site.test");
    let seen = &main.seen()[0];
    assert_eq!(seen.field_or("host", "(none)"), "site.test");
    assert_eq!(seen.field_or("x-auth", "(none)"), "top");
}

#[test]
fn a_pool_admits_the_clients_its_own_lists_admit() {
    let (main, admin_backend) = (Backend::echo("main"), Backend::echo("admin"));
    // The tests' client is 127.0.0.1: outside the admin pool's list.
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             pool.admin = {}\n\
             pool.admin.allow_from = 10.0.0.0/8\n\
             route./admin/ = admin\n",
            main.addr, admin_backend.addr
        )),
    );
    assert_eq!(via(&proxy, "site.test", "/admin/users", &[]).0, 403);
    assert_eq!(via(&proxy, "site.test", "/%61dmin/users", &[]).0, 403);
    assert_eq!(served_by(&proxy, "site.test", "/home"), "main");
    assert_eq!(admin_backend.requests(), 0);
    // And the other way round: a pool open to a client the top level denies.
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             deny_from = 127.0.0.1\n\
             pool.admin = {}\n\
             pool.admin.deny_from =\n\
             route./status/ = admin\n",
            main.addr, admin_backend.addr
        )),
    );
    assert_eq!(via(&proxy, "site.test", "/home", &[]).0, 403);
    assert_eq!(served_by(&proxy, "site.test", "/status/up"), "admin");
}

#[test]
fn a_pool_takes_bodies_as_large_as_its_own_limit() {
    let (main, upload) = (Backend::echo("main"), Backend::echo("upload"));
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             max_body_size = 1KiB\n\
             pool.upload = {}\n\
             pool.upload.max_body_size = 64KiB\n\
             route./upload/ = upload\n",
            main.addr, upload.addr
        )),
    );
    let body = pattern(8 * 1024);
    // The body goes only where it is taken: a 413 is answered from the
    // head, and the connection closed with the body unread.
    let post = |path: &str, with_body: bool| {
        proxy.exchange(|client| {
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: site.test\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            client.send(head.as_bytes());
            if with_body {
                client.send(&body);
            }
            client.response()
        })
    };
    let r = post("/upload/file", true);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("x-backend"), Some("upload"));
    assert_eq!(post("/form", false).status, 413);
    assert_eq!(main.requests(), 0);
}

#[test]
fn a_pool_s_response_fields_go_on_every_answer_to_its_requests() {
    let (main, api) = (cacheable_echo("main"), cacheable_echo("api"));
    let mut tweak = Some(from_file(&format!(
        "targets = {}\n\
         response_header.X-Frame-Options = DENY\n\
         pool.api = {}\n\
         pool.api.response_header.Access-Control-Allow-Origin = *\n\
         pool.api.response_header.X-Frame-Options =\n\
         pool.dead = {}\n\
         pool.dead.response_header.X-Pool = dead\n\
         route./api/ = api\n\
         route./gone/ = dead\n",
        main.addr,
        api.addr,
        dead_addr(),
    )));
    let proxy = start_proxy(&[], |c| {
        (tweak.take().unwrap())(c);
        c.cache_size = 1 << 20;
    });
    for cache in ["MISS", "HIT"] {
        let r = proxy.get_on("site.test", "/api/x", &[]);
        assert_eq!(r.header("x-cache"), Some(cache));
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("*"),
            "{}",
            r.head.raw
        );
        assert_eq!(r.header("x-frame-options"), None, "{}", r.head.raw);
        let r = proxy.get_on("site.test", "/x", &[]);
        assert_eq!(r.header("x-cache"), Some(cache));
        assert_eq!(r.header("access-control-allow-origin"), None);
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
    }
    // The proxy's own answer to a request routed to a pool carries its
    // fields too.
    let r = proxy.get_on("site.test", "/gone/x", &[]);
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-pool"), Some("dead"), "{}", r.head.raw);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[test]
fn a_route_may_redirect_instead_of_sending_on() {
    let main = Backend::echo("main");
    let mut proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             route.www.site.test = redirect 301 https://site.test\n\
             route./old/ = redirect 308 /new/\n",
            main.addr
        )),
    );
    let r = proxy.get_on("WWW.site.test", "/a/b?x=1", &[]);
    assert_eq!(r.status, 301, "{}", r.head.raw);
    assert_eq!(r.header("location"), Some("https://site.test/a/b?x=1"));
    // The home page to the other site's, `/` written as nginx's
    // `return 301 https://site.test$request_uri` writes it.
    let r = proxy.get_on("www.site.test", "/?utm=1", &[]);
    assert_eq!(r.header("location"), Some("https://site.test/?utm=1"));
    // A form's POST is sent on as one: 308, its body left unread.
    let r = proxy.exchange(|client| {
        client
            .send(b"POST /old/form?id=3 HTTP/1.1\r\nHost: site.test\r\nContent-Length: 0\r\n\r\n");
        client.response()
    });
    assert_eq!(r.status, 308, "{}", r.head.raw);
    assert_eq!(r.header("location"), Some("/new/form?id=3"));
    assert_eq!(served_by(&proxy, "site.test", "/new/form"), "main");
    // Only the request that was not redirected reached the backend.
    assert_eq!(main.requests(), 1);
    proxy.shutdown(Duration::from_secs(1));
    let logged = proxy.log_lines();
    let redirect = logged
        .iter()
        .any(|l| l.contains("\"GET /a/b?x=1 HTTP/1.1\" 301"));
    assert!(redirect, "{logged:?}");
}

#[test]
fn a_route_may_return_a_fixed_answer() {
    // A load balancer's health endpoint, a path no backend should see,
    // and every other request sent on.
    let main = Backend::echo("main");
    let pages = tempfile::tempdir().unwrap();
    std::fs::write(pages.path().join("404.html"), "<h1>not here</h1>").unwrap();
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nerror_pages = {}\n\
             route./healthz = return 200 ok\n\
             route./up = return 200\n\
             route./.git/ = return 404\n\
             route./secret/ = return 403\n\
             route./status.json = return 200 type=application/json {{\"status\": \"ok\"}}\n\
             route./maintenance = return 503 type=text/html;charset=utf-8 <h1>Back soon</h1>\n\
             route.old.site.test = return 410 this site is gone\n",
            main.addr,
            pages.path().display()
        )),
    );
    let r = proxy.get_on("site.test", "/healthz", &[]);
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "ok"),
        "{}",
        r.head.raw
    );
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("allow"), None, "{}", r.head.raw);
    let r = proxy.get_on("site.test", "/up", &[]);
    assert_eq!((r.status, r.body_str().as_str()), (200, "200 OK\n"));
    assert_eq!(r.header("allow"), None, "{}", r.head.raw);
    // The error page for the status, or the proxy's plain one.
    let r = proxy.get_on("site.test", "/.git/config", &[]);
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (404, "<h1>not here</h1>")
    );
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = proxy.get_on("site.test", "/secret/x", &[]);
    assert_eq!((r.status, r.body_str().as_str()), (403, "403 Forbidden\n"));
    // A text of its own type: a JSON status, an HTML maintenance page.
    let r = proxy.get_on("site.test", "/status.json", &[]);
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "{\"status\": \"ok\"}")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = proxy.get_on("site.test", "/maintenance", &[]);
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (503, "<h1>Back soon</h1>")
    );
    assert_eq!(r.header("content-type"), Some("text/html;charset=utf-8"));
    let r = proxy.get_on("old.site.test", "/any/page", &[]);
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (410, "this site is gone")
    );
    // A HEAD has the head alone; a body sent along is not read, and the
    // connection closes after the answer.
    let r = proxy.exchange(|client| {
        client.send(b"HEAD /healthz HTTP/1.1\r\nHost: site.test\r\n\r\n");
        client.head_response()
    });
    assert_eq!((r.status, r.header("content-length")), (200, Some("2")));
    let r = proxy.exchange(|client| {
        client.send(b"POST /healthz HTTP/1.1\r\nHost: site.test\r\nContent-Length: 3\r\n\r\nabc");
        client.response()
    });
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert_eq!(served_by(&proxy, "site.test", "/healthzz"), "main");
    assert_eq!(main.requests(), 1);
}

#[test]
fn a_route_s_return_text_says_what_it_knows_of_each_request() {
    // nginx's `return 200 "$remote_addr"`: what is my IP, a health
    // endpoint naming the instance, a page echoing what a client sent.
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\ngzip = true\ngzip_min_length = 64\n\
             route./ip = return 200 $remote_addr\n\
             route./echo = return 200 $remote_addr $request_uri [$http_x_name] $host\n\
             route./long = return 200 $request_uri $request_uri $request_uri $request_uri\n\
             route./who = return 200 type=application/json {{\"host\":\"$hostname\",\"name\":\"$http_x_name\"}}\n\
             route./hello = return 200 type=text/html <p>Hello, $http_x_name</p>\n\
             route./price = return 200 costs $$5\n",
            main.addr,
        )),
    );
    let r = proxy.get_on("site.test", "/ip", &[]);
    assert_eq!((r.status, r.body_str().as_str()), (200, "127.0.0.1"));
    assert_eq!(r.header("content-length"), Some("9"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let fields = [("X-Name", "Ann")];
    let r = proxy.get_on("Site.Test:8080", "/echo/a?b=1", &fields);
    let want = "127.0.0.1 /echo/a?b=1 [Ann] site.test";
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, want),
        "{}",
        r.head.raw
    );
    assert_eq!(r.header("content-length"), Some(&*want.len().to_string()));
    // Each request its own text; what it lacks is nothing.
    let r = proxy.get_on("other.test", "/echo", &[]);
    assert_eq!(r.body_str(), "127.0.0.1 /echo [] other.test");
    // Split in two writes, and a HEAD: the same length.
    let r = proxy.exchange(|client| {
        client.send(b"HEAD /echo/a?b=1 HTTP/1.1\r\nHost: Site");
        client.send(b".Test:8080\r\nX-Name: Ann\r\n\r\n");
        client.head_response()
    });
    assert_eq!(r.header("content-length"), Some(&*want.len().to_string()));
    // Compressed as it is rendered, when it is long enough.
    let target = "/long/a-path-long-enough";
    let r = proxy.get_on("site.test", target, &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head.raw);
    assert_eq!(r.header("content-length"), Some(&*r.body.len().to_string()));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut text)
        .unwrap();
    assert_eq!(text, [target; 4].join(" "));
    // Into JSON and HTML, a value is text of that type.
    let fields = [("X-Name", "<script>\"x\"</script>")];
    let r = proxy.get_on("site.test", "/who", &fields);
    let host = inverso::variables::hostname();
    assert_eq!(
        r.body_str(),
        format!("{{\"host\":\"{host}\",\"name\":\"<script>\\\"x\\\"</script>\"}}")
    );
    let r = proxy.get_on("site.test", "/hello", &fields);
    assert_eq!(
        r.body_str(),
        "<p>Hello, &lt;script&gt;&quot;x&quot;&lt;/script&gt;</p>"
    );
    // A text without variables is as it was; `$$` a dollar.
    let r = proxy.get_on("site.test", "/price", &[]);
    assert_eq!(
        (r.body_str().as_str(), r.header("content-length")),
        ("costs $5", Some("8"))
    );
    assert_eq!(main.requests(), 0);
}

#[test]
fn return_444_closes_the_connection_without_an_answer() {
    // nginx's `server { listen 80 default_server; return 444; }` beside
    // the site's own, and a path scanners ask for.
    let main = Backend::echo("main");
    let mut proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nroute.site.test/ = default\nroute./ = return 444\n\
             route.site.test/.env = return 444\nredirect_to_https = true\n\
             redirect_to_https_except = /a\n\
             rewrite.docs = ^/a/docs(.*)$ https://docs.test$1 host=old.test\n\
             rewrite.moved = ^/(.*)$ https://site.test/$1 permanent host=old.test\n",
            main.addr
        )),
    );
    assert_eq!(served_by(&proxy, "site.test", "/a"), "main");
    for (host, path, body) in [
        ("scanner.test", "/", ""),
        ("site.test", "/.env", ""),
        ("site.test", "/.env", "Content-Length: 5\r\n\r\nhello"),
        // A rule that made nothing to go on with (its group would
        // lengthen the host it writes) answers no more than the route.
        ("old.test", "/a/docs.evil.test/x", ""),
    ] {
        let mut client = proxy.connect();
        let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
        let end = if body.is_empty() { "\r\n" } else { body };
        client.send(format!("{head}{end}").as_bytes());
        let got = client.read_until_closed();
        assert!(
            got.is_empty(),
            "{host}{path}: {}",
            String::from_utf8_lossy(&got)
        );
    }
    // A host a rule redirects is answered by the rule, not dropped.
    let r = proxy.get_on("old.test", "/a/page", &[]);
    assert_eq!(r.status, 301, "{}", r.head.raw);
    assert_eq!(r.header("location"), Some("https://site.test/a/page"));
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    let dropped = lines.iter().filter(|l| l.contains(" 444 0 ")).count();
    assert_eq!(dropped, 4, "{lines:#?}");
    assert_eq!(main.requests(), 1);
}

#[test]
fn a_request_dropped_by_return_444_after_an_answered_one_closes_without_lingering() {
    let main = Backend::echo("main");
    let text = format!("targets = {}\nroute./.env = return 444\n", main.addr);
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = proxy.connect();
    assert_eq!(client.get("/").status, 200);
    client.send(b"GET /.env HTTP/1.1\r\nHost: site.test\r\n\r\n");
    assert!(client.is_closed());
    // A scanner gets no more time on a kept connection than on a new one.
    assert!(client.was_closed_without_lingering());
    assert_eq!(main.requests(), 1);
}

#[test]
fn a_route_may_take_only_the_requests_that_meet_its_condition() {
    // A canary by cookie, WebSockets by their Upgrade field, writes by
    // their method, the office by its address; the rest as before.
    let (main, api, canary, writes) = (
        cacheable_echo("main"),
        cacheable_echo("api"),
        cacheable_echo("canary"),
        cacheable_echo("writes"),
    );
    let proxy = start_proxy(&[], |c: &mut Config| {
        from_file(&format!(
            "targets = {}\npool.api = {}\npool.canary = {}\npool.writes = {}\n\
                 route./api/ = api\n\
                 route./api/ if cookie canary 1 = canary\n\
                 route./api/ if method POST,PUT,DELETE = writes\n\
                 route./ if header Upgrade websocket = return 403\n\
                 route./office/ if client 10.0.0.0/8 = canary\n\
                 route./office/ = return 404\n\
                 route./search if query engine new = canary\n\
                 route./staff/ if client 127.0.0.0/8 and header X-Staff yes = canary\n",
            main.addr, api.addr, canary.addr, writes.addr
        ))(c);
        c.cache_size = 1 << 20;
    });
    let canary_cookie: &[(&str, &str)] = &[("Cookie", "canary=1")];
    assert_eq!(served_by(&proxy, "site.test", "/api/a"), "api");
    assert_eq!(
        via(&proxy, "site.test", "/api/a", canary_cookie),
        (200, "canary".into())
    );
    assert_eq!(
        via(&proxy, "site.test", "/api/a", &[("Cookie", "canary=0")]),
        (200, "api".into())
    );
    let r = proxy.exchange(|client| {
        client.send(b"POST /api/a HTTP/1.1\r\nHost: site.test\r\nContent-Length: 0\r\n\r\n");
        client.response()
    });
    assert_eq!((r.status, r.header("x-backend")), (200, Some("writes")));
    // Not at the root only: a longer path without the condition wins.
    let upgrade: &[(&str, &str)] = &[("Upgrade", "WebSocket"), ("Connection", "Upgrade")];
    assert_eq!(via(&proxy, "site.test", "/chat", upgrade).0, 403);
    assert_eq!(served_by(&proxy, "site.test", "/chat"), "main");
    // The proxy's clients are at 127.0.0.1, not in the office.
    assert_eq!(via(&proxy, "site.test", "/office/x", &[]).0, 404);
    assert_eq!(
        served_by(&proxy, "site.test", "/search?q=x&engine=new"),
        "canary"
    );
    assert_eq!(served_by(&proxy, "site.test", "/search?engine=old"), "main");
    // Both, or not at all.
    let staff: &[(&str, &str)] = &[("X-Staff", "yes")];
    assert_eq!(via(&proxy, "site.test", "/staff/x", staff).1, "canary");
    assert_eq!(served_by(&proxy, "site.test", "/staff/x"), "main");

    // What the canary answers is neither stored nor answered from what
    // `api` stored: the same URL goes to either.
    let r = proxy.get_on("site.test", "/api/page", &[]);
    assert_eq!((r.header("x-backend"), x_cache(&r)), (Some("api"), "MISS"));
    for _ in 0..2 {
        let r = proxy.get_on("site.test", "/api/page", canary_cookie);
        assert_eq!(
            (r.header("x-backend"), x_cache(&r)),
            (Some("canary"), "BYPASS")
        );
    }
    let r = proxy.get_on("site.test", "/api/page", &[]);
    assert_eq!((r.header("x-backend"), x_cache(&r)), (Some("api"), "HIT"));
}

#[test]
fn a_listen_condition_gives_a_listener_routes_of_its_own() {
    // A public port and an internal one (HAProxy's two frontends, nginx's
    // two `server` blocks): `/admin/` is served on the internal one alone,
    // and `/` by another pool there.
    let (public, internal) = (cacheable_echo("public"), cacheable_echo("internal"));
    let main = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = main.local_addr().unwrap().port();
    let text = format!(
        "port = {port}\nbind = 127.0.0.1\nlisten = 127.0.0.1:0\n\
         targets = {}\npool.internal = {}\n\
         route./ if not listen {port} = internal\n\
         route./admin/ if listen 127.0.0.1:{port} = return 404\n\
         route./admin/ = internal\n",
        public.addr, internal.addr
    );
    let mut loader = inverso::config::Loader::new();
    loader.file("proxy.conf", &text).unwrap();
    let mut config = loader.build().unwrap();
    (config.log_to_stdout, config.path_to_log) = (false, None);
    config.path_to_persistence = None;
    config.cache_size = 1 << 20;
    let handle = inverso::Server::start_on(main, config).unwrap();
    let (at_port, at_listen) = (handle.local_addr(), handle.listen_addrs()[0]);
    let get = |addr: SocketAddr, path: &str| {
        let r = Client::connect(addr).get(path);
        (r.status, r.header("x-backend").unwrap_or("-").to_string())
    };
    for _ in 0..2 {
        assert_eq!(get(at_port, "/page"), (200, "public".into()));
        assert_eq!(get(at_listen, "/page"), (200, "internal".into()));
        assert_eq!(get(at_port, "/admin/users").0, 404);
        assert_eq!(get(at_listen, "/admin/users"), (200, "internal".into()));
    }
    // One URL, two pools by listener: the conditional route's requests
    // go around the cache (never answered with what `public` stored),
    // the others are cached as usual.
    assert_eq!((public.requests(), internal.requests()), (1, 3));
    assert!(handle.shutdown(Duration::from_secs(5)));
}

#[test]
fn a_route_on_what_the_path_ends_in_or_matches_takes_those_paths_and_is_cached() {
    // HAProxy's classic `acl static path_end .jpg .css` with `use_backend
    // static if static`, and nginx's `location ~ \.php(/|$) { return 403; }`.
    let (main, assets) = (cacheable_echo("main"), cacheable_echo("assets"));
    let proxy = start_proxy(&[], |c: &mut Config| {
        from_file(&format!(
            "targets = {}\npool.assets = {}\n\
                 route./ if path_end .css,.js,.png = assets\n\
                 route./ if path_reg \\.php(/|$) = return 403\n\
                 route./app/ if not path_reg ^/app/[a-z]+$ = return 404\n",
            main.addr, assets.addr
        ))(c);
        c.cache_size = 1 << 20;
    });
    assert_eq!(served_by(&proxy, "site.test", "/css/site.css"), "assets");
    assert_eq!(
        served_by(&proxy, "site.test", "/img/LOGO.PNG?v=2"),
        "assets"
    );
    assert_eq!(served_by(&proxy, "site.test", "/page"), "main");
    assert_eq!(served_by(&proxy, "site.test", "/site.css/x"), "main");
    for path in ["/index.php", "/index.php/user", "/x.ph%70"] {
        assert_eq!(via(&proxy, "site.test", path, &[]).0, 403, "{path}");
    }
    // Read otherwise by a server that drops `;` parameters: refused.
    assert_eq!(via(&proxy, "site.test", "/x.php;a", &[]).0, 400);
    assert_eq!(served_by(&proxy, "site.test", "/app/home"), "main");
    assert_eq!(via(&proxy, "site.test", "/app/Home", &[]).0, 404);
    // What the path alone decides is cached as any other route's answer.
    let r = proxy.get_on("site.test", "/a.js", &[]);
    assert_eq!(
        (r.header("x-backend"), x_cache(&r)),
        (Some("assets"), "MISS")
    );
    let r = proxy.get_on("site.test", "/a.js", &[]);
    assert_eq!(
        (r.header("x-backend"), x_cache(&r)),
        (Some("assets"), "HIT")
    );
}

#[test]
fn a_route_on_a_pattern_in_a_field_takes_the_requests_whose_field_matches() {
    // nginx's `if ($http_user_agent ~* (bot|crawler))`: crawlers to a
    // pool of their own, a scraper refused.
    let (main, bots) = (cacheable_echo("main"), cacheable_echo("bots"));
    let proxy = start_proxy(&[], |c: &mut Config| {
        from_file(&format!(
            "targets = {}\npool.bots = {}\n\
             route./ if header_reg User-Agent (?i)(bot|crawler) = bots\n\
             route./ if header_reg User-Agent ^python- = return 403\n",
            main.addr, bots.addr
        ))(c);
        c.cache_size = 1 << 20;
    });
    let agent = |ua: &str| proxy.get_on("site.test", "/page", &[("User-Agent", ua)]);
    let browser = "Mozilla/5.0 (X11; Linux x86_64)";
    let r = agent(browser);
    assert_eq!((r.header("x-backend"), x_cache(&r)), (Some("main"), "MISS"));
    assert_eq!(x_cache(&agent(browser)), "HIT");
    // What a field decides goes around the cache: the crawler is not
    // served the page the browser's request stored.
    for ua in ["Mozilla/5.0 (compatible; Googlebot/2.1)", "SomeCRAWLER"] {
        let r = agent(ua);
        assert_eq!(
            (r.header("x-backend"), x_cache(&r)),
            (Some("bots"), "BYPASS")
        );
    }
    assert_eq!(agent("python-requests/2.31").status, 403);
    assert_eq!(agent("my-python-tool").header("x-backend"), Some("main"));
}

#[test]
fn a_negated_condition_takes_the_requests_that_do_not_meet_it() {
    // Visitors without a session to the static copy, the admin area
    // closed but to the office, WebSockets refused but to the beta's
    // testers, and whatever is not a read to the writes' pool.
    let (main, copy, writes) = (
        cacheable_echo("main"),
        cacheable_echo("copy"),
        cacheable_echo("writes"),
    );
    let proxy = start_proxy(&[], |c: &mut Config| {
        from_file(&format!(
            "targets = {}
pool.copy = {}
pool.writes = {}
real_ip_from = 127.0.0.1
             route./ if not cookie session = copy
             route./admin/ if not client 10.0.0.0/8 = return 403
             route./api/ if header Upgrade websocket and not cookie beta = return 403
             route./w/ if not method GET,HEAD = writes
",
            main.addr, copy.addr, writes.addr
        ))(c);
        c.cache_size = 1 << 20;
    });
    let session: &[(&str, &str)] = &[("Cookie", "session=7")];
    assert_eq!(served_by(&proxy, "site.test", "/page"), "copy");
    assert_eq!(
        via(&proxy, "site.test", "/page", session),
        (200, "main".into())
    );
    // Another cookie is not the one.
    let other = [("Cookie", "beta=1; sessions=7")];
    assert_eq!(via(&proxy, "site.test", "/page", &other).1, "copy");

    // The proxy's clients are at 127.0.0.1, outside the office; one named
    // in it by the proxy in front is let through.
    assert_eq!(via(&proxy, "site.test", "/admin/x", session).0, 403);
    let office = [("X-Forwarded-For", "10.1.2.3"), ("Cookie", "session=7")];
    assert_eq!(
        via(&proxy, "site.test", "/admin/x", &office),
        (200, "main".into())
    );

    // One part met and the negated one not: both, or the route is passed.
    let upgrade = ("Upgrade", "websocket");
    assert_eq!(via(&proxy, "site.test", "/api/chat", &[upgrade]).0, 403);
    let beta = [upgrade, ("Connection", "Upgrade"), ("Cookie", "beta=1")];
    assert_eq!(
        via(&proxy, "site.test", "/api/chat", &beta),
        (200, "copy".into())
    );
    assert_eq!(via(&proxy, "site.test", "/api/chat", session).1, "main");

    let r = proxy.exchange(|client| {
        client.send(b"POST /w/form HTTP/1.1\r\nHost: site.test\r\nContent-Length: 0\r\n\r\n");
        client.response()
    });
    assert_eq!((r.status, r.header("x-backend")), (200, Some("writes")));
    assert_eq!(via(&proxy, "site.test", "/w/form", session).1, "main");
    assert_eq!(writes.requests(), 1);
}

#[test]
fn a_negated_cookie_route_goes_around_the_cache() {
    // The same URL goes to `copy` without the cookie and to `targets`
    // with it: neither is answered from what the other stored.
    let (main, copy) = (cacheable_echo("main"), cacheable_echo("copy"));
    let proxy = start_proxy(&[], |c: &mut Config| {
        from_file(&format!(
            "targets = {}
pool.copy = {}
route./ if not cookie session = copy
",
            main.addr, copy.addr
        ))(c);
        c.cache_size = 1 << 20;
    });
    let session: &[(&str, &str)] = &[("Cookie", "session=7")];
    let seen = |fields: &[(&str, &str)]| {
        let r = proxy.get_on("site.test", "/page", fields);
        assert_eq!(r.status, 200, "{}", r.head.raw);
        let backend = r.header("x-backend").unwrap_or("-").to_string();
        (backend, x_cache(&r).to_string())
    };
    let pair = |backend: &str, cache: &str| (backend.to_string(), cache.to_string());
    assert_eq!(seen(&[]), pair("copy", "BYPASS"));
    assert_eq!(seen(session), pair("main", "MISS"));
    assert_eq!(seen(session), pair("main", "HIT"));
    assert_eq!(seen(&[]), pair("copy", "BYPASS"));
    assert_eq!((main.requests(), copy.requests()), (1, 2));
}

#[test]
fn a_snapshot_s_entry_is_not_loaded_under_a_negated_route_that_stores_nothing() {
    // The entry was stored by `targets` for a request with the cookie:
    // `copy`, whose cache is off, never stored it, so a restart keeps it.
    let (main, copy) = (cacheable_echo("main"), cacheable_echo("copy"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.bin");
    let start = || {
        let mut tweak = Some(from_file(&format!(
            "targets = {}
pool.copy = {}
pool.copy.cache = false
             route./ if not cookie session = copy
",
            main.addr, copy.addr
        )));
        start_proxy(&[], |c| {
            (tweak.take().unwrap())(c);
            c.cache_size = 1 << 20;
            c.path_to_persistence = Some(file.clone());
        })
    };
    let session: &[(&str, &str)] = &[("Cookie", "session=7")];
    let mut first = start();
    assert_eq!(
        x_caches(&first, "/page", &[session, session]),
        ["MISS", "HIT"]
    );
    assert!(first.shutdown(Duration::from_secs(5)));
    let second = start();
    assert_eq!(second.handle().cache().expect("a cache").len(), 1);
    assert_eq!(x_caches(&second, "/page", &[session]), ["HIT"]);
    assert_eq!((main.requests(), copy.requests()), (1, 0));
}

#[test]
fn a_share_of_the_clients_goes_to_the_canary_and_each_stays_where_it_went() {
    let (main, canary) = (Backend::echo("main"), Backend::echo("canary"));
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\npool.canary = {}\nreal_ip_from = 127.0.0.1\n\
             route./ if share 50% = canary\n",
            main.addr, canary.addr
        )),
    );
    // Clients told apart by the address the proxy in front names.
    let pool_of = |client: &str| via(&proxy, "site.test", "/", &[("X-Forwarded-For", client)]).1;
    let clients: Vec<String> = (0..100).map(|i| format!("198.51.100.{i}")).collect();
    let first: Vec<String> = clients.iter().map(|c| pool_of(c)).collect();
    let canaries = first.iter().filter(|p| *p == "canary").count();
    assert!((25..=75).contains(&canaries), "{canaries} of 100");
    let again: Vec<String> = clients.iter().map(|c| pool_of(c)).collect();
    assert_eq!(first, again);
}

#[test]
fn a_pool_s_cache_valid_gives_its_answers_alone_a_lifetime() {
    // Backends that say nothing of freshness: only `static`'s answers are
    // given one, so the API's are never served from the cache.
    let (api, assets) = (Backend::echo("api"), Backend::echo("static"));
    let mut tweak = Some(from_file(&format!(
        "targets = {}\n\
         pool.static = {}\n\
         pool.static.cache_valid = 200 1m\n\
         route./static/ = static\n",
        api.addr, assets.addr
    )));
    let proxy = start_proxy(&[], |c| {
        (tweak.take().unwrap())(c);
        c.cache_size = 1 << 20;
    });
    for cache in ["MISS", "HIT"] {
        let r = proxy.get_on("site.test", "/static/app.css", &[]);
        assert_eq!(r.header("x-cache"), Some(cache), "{}", r.head.raw);
    }
    for _ in 0..2 {
        let r = proxy.get_on("site.test", "/api/users", &[]);
        assert_eq!(r.header("x-cache"), Some("MISS"), "{}", r.head.raw);
    }
    assert_eq!((assets.requests(), api.requests()), (1, 2));
}

/// A backend whose every answer says `cache_control`, and names it.
fn answering_with(name: &str, cache_control: &'static str) -> Backend {
    let me = name.to_string();
    Backend::start(name, move |seen, out| {
        let body = describe(&me, seen);
        let fields = [("X-Backend", me.as_str()), ("Cache-Control", cache_control)];
        respond(out, 200, &fields, body.as_bytes());
        Action::KeepAlive
    })
}

/// The `X-Cache` statuses of `GET path` on `site.test`, once per field
/// set in `each`.
fn x_caches(proxy: &Proxy, path: &str, each: &[&[(&str, &str)]]) -> Vec<String> {
    (each.iter())
        .map(|fields| {
            let r = proxy.get_on("site.test", path, fields);
            assert_eq!(r.status, 200, "{path}: {}", r.head.raw);
            r.header("x-cache").unwrap_or("-").to_string()
        })
        .collect()
}

#[test]
fn a_pool_with_the_cache_off_is_served_as_with_no_cache() {
    // nginx's `proxy_cache off` in one location: the API's answers are
    // neither stored nor looked up, and say nothing of a cache.
    let (main, api) = (cacheable_echo("main"), cacheable_echo("api"));
    let mut tweak = Some(from_file(&format!(
        "targets = {}\npool.api = {}\npool.api.cache = false\nroute./api/ = api\n\
         cache_status = edge\n",
        main.addr, api.addr
    )));
    let proxy = start_proxy(&[], |c| {
        (tweak.take().unwrap())(c);
        c.cache_size = 1 << 20;
    });
    assert_eq!(x_caches(&proxy, "/page", &[&[], &[]]), ["MISS", "HIT"]);
    for _ in 0..2 {
        let r = proxy.get_on("site.test", "/api/users", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-cache"), None, "{}", r.head.raw);
        assert_eq!(r.header("cache-status"), None, "{}", r.head.raw);
    }
    assert_eq!((main.requests(), api.requests()), (1, 2));
}

#[test]
fn a_pool_s_cache_rules_are_its_own() {
    // Every backend says `no-cache` and gives a lifetime: the API's pool
    // reads neither (micro-caching, as nginx's `proxy_ignore_headers` in
    // a location), stores an answer only at its second request, keeps
    // its answers from signed-in users to themselves, and answers a
    // browser's reload from the cache; the top level does none of it.
    let (main, api) = (
        answering_with("main", "max-age=60"),
        answering_with("api", "no-cache, max-age=60"),
    );
    let mut tweak = Some(from_file(&format!(
        "targets = {}\npool.api = {}\nroute./api/ = api\n\
         pool.api.cache_ignore_headers = Cache-Control\npool.api.cache_valid = 200 1m\n\
         pool.api.cache_min_uses = 2\npool.api.cache_bypass_cookies = session\n\
         pool.api.ignore_client_cache_control = true\n",
        main.addr, api.addr
    )));
    let proxy = start_proxy(&[], |c| {
        (tweak.take().unwrap())(c);
        c.cache_size = 1 << 20;
    });
    let reload: &[(&str, &str)] = &[("Cache-Control", "no-cache")];
    let signed_in: &[(&str, &str)] = &[("Cookie", "session=1")];
    assert_eq!(
        x_caches(&proxy, "/api/a", &[&[], &[], &[], reload, signed_in]),
        ["MISS", "MISS", "HIT", "HIT", "BYPASS"]
    );
    assert_eq!(api.requests(), 3);
    assert_eq!(
        x_caches(&proxy, "/page", &[&[], &[], reload, signed_in]),
        ["MISS", "HIT", "MISS", "HIT"]
    );
}

#[test]
fn a_pool_s_ttl_caps_its_answers_alone() {
    // Answers fresh for a minute, by their own word; a `ttl` of 0 keeps
    // none fresh, lower than the top level's or higher.
    let (main, api) = (cacheable_echo("main"), cacheable_echo("api"));
    for (top, pool, main_cached, api_cached) in
        [("1h", "0", "HIT", "MISS"), ("0", "1h", "MISS", "HIT")]
    {
        let mut tweak = Some(from_file(&format!(
            "targets = {}\nttl = {top}\npool.api = {}\npool.api.ttl = {pool}\n\
             route./api/ = api\n",
            main.addr, api.addr
        )));
        let proxy = start_proxy(&[], |c| {
            (tweak.take().unwrap())(c);
            c.cache_size = 1 << 20;
        });
        let again = |path: &str| x_caches(&proxy, path, &[&[], &[]]);
        assert_eq!(again("/page"), ["MISS", main_cached], "ttl = {top}");
        assert_eq!(
            again("/api/a"),
            ["MISS", api_cached],
            "pool.api.ttl = {pool}"
        );
    }
}

#[test]
fn a_snapshot_s_entries_are_loaded_for_the_pools_that_use_the_cache() {
    let (main, api) = (cacheable_echo("main"), cacheable_echo("api"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.bin");
    let start = |api_cache: &str| {
        let mut tweak = Some(from_file(&format!(
            "targets = {}\npool.api = {}\npool.api.cache = {api_cache}\nroute./api/ = api\n",
            main.addr, api.addr
        )));
        start_proxy(&[], |c| {
            (tweak.take().unwrap())(c);
            c.cache_size = 1 << 20;
            c.path_to_persistence = Some(file.clone());
        })
    };
    let mut first = start("true");
    assert_eq!(x_caches(&first, "/api/a", &[&[]]), ["MISS"]);
    assert_eq!(x_caches(&first, "/page", &[&[]]), ["MISS"]);
    assert!(first.shutdown(Duration::from_secs(5)));
    let cache_len = |proxy: &Proxy| proxy.handle().cache().expect("a cache").len();

    // The API's entry is one nothing would look up any more.
    let mut second = start("false");
    assert_eq!(cache_len(&second), 1);
    assert_eq!(x_caches(&second, "/page", &[&[]]), ["HIT"]);
    assert!(second.shutdown(Duration::from_secs(5)));
    let third = start("true");
    assert_eq!(cache_len(&third), 1);
    assert_eq!(x_caches(&third, "/api/a", &[&[]]), ["MISS"]);
    assert_eq!((main.requests(), api.requests()), (1, 2));
}

#[test]
fn what_a_method_route_stored_is_loaded_from_a_snapshot_under_its_pool() {
    // Reads go to a pool that caches, writes to one that does not: what
    // the reads stored comes back at the next start. Whatever is not a
    // write, the negated route, takes the same reads.
    for route in ["method GET,HEAD", "not method POST,PUT,PATCH,DELETE"] {
        let (writes, reads) = (cacheable_echo("writes"), cacheable_echo("reads"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache.bin");
        let start = || {
            let mut tweak = Some(from_file(&format!(
                "targets = {}\ncache = false\npool.reads = {}\npool.reads.cache = true\n\
                 route./ if {route} = reads\n",
                writes.addr, reads.addr
            )));
            start_proxy(&[], |c| {
                (tweak.take().unwrap())(c);
                c.cache_size = 1 << 20;
                c.path_to_persistence = Some(file.clone());
            })
        };
        let mut first = start();
        assert_eq!(
            x_caches(&first, "/page", &[&[], &[]]),
            ["MISS", "HIT"],
            "{route}"
        );
        assert!(first.shutdown(Duration::from_secs(5)));
        let second = start();
        assert_eq!(
            second.handle().cache().expect("a cache").len(),
            1,
            "{route}"
        );
        assert_eq!(x_caches(&second, "/page", &[&[]]), ["HIT"], "{route}");
        assert_eq!((reads.requests(), writes.requests()), (1, 0), "{route}");
    }
}

#[test]
fn a_pool_compresses_as_its_own_gzip_keys_say() {
    // Text bodies everywhere; the API's pool compresses JSON alone, and
    // the downloads' pool nothing (nginx's `gzip off` in a location).
    let text = |name: &str, media_type: &'static str| {
        Backend::start(name, move |_, out| {
            respond(out, 200, &[("Content-Type", media_type)], &[b'a'; 2000]);
            Action::KeepAlive
        })
    };
    let (main, api, downloads) = (
        text("main", "text/plain"),
        text("api", "text/plain"),
        text("downloads", "text/plain"),
    );
    let mut tweak = Some(from_file(&format!(
        "targets = {}\npool.api = {}\npool.downloads = {}\n\
         route./api/ = api\nroute./downloads/ = downloads\n\
         gzip = true\npool.api.gzip_types = application/json\npool.downloads.gzip = false\n",
        main.addr, api.addr, downloads.addr
    )));
    let proxy = start_proxy(&[], |c| (tweak.take().unwrap())(c));
    let coding = |path: &str| {
        let r = proxy.get_on("site.test", path, &[("Accept-Encoding", "gzip")]);
        assert_eq!(r.status, 200, "{path}");
        r.header("content-encoding").unwrap_or("-").to_string()
    };
    assert_eq!(coding("/page"), "gzip");
    assert_eq!(coding("/api/a"), "-");
    assert_eq!(coding("/downloads/a"), "-");
}

#[test]
fn a_pool_is_warned_of_its_own_cache_settings_once() {
    // The top level's warning is not said again for a pool that only
    // repeats its settings; a pool's own `ttl` capping the top level's
    // `cache_valid` is said at the pool's line.
    let conf = "targets = 127.0.0.1:9001\ncache_ignore_headers = Cache-Control\n\
                cache_valid = 200 10m\nttl = 1h\n\
                pool.s = 127.0.0.1:9002\npool.s.cache = true\npool.s.ttl = 1m\n\
                route./s/ = s\n";
    let (code, _, stderr) = inverso_check(conf, "warn");
    assert_eq!(code, Some(0), "{stderr}");
    let capped: Vec<&str> = stderr.lines().filter(|l| l.contains("caps")).collect();
    assert_eq!(capped.len(), 1, "{stderr}");
    assert!(capped[0].contains("proxy.conf:7: pool.s.ttl: "), "{stderr}");
    let conf = "targets = 127.0.0.1:9001\ncache_ignore_headers = Cache-Control\n\
                pool.s = 127.0.0.1:9002\npool.s.cache = true\nroute./s/ = s\n";
    let (code, _, stderr) = inverso_check(conf, "warn");
    assert_eq!(code, Some(0), "{stderr}");
    let unread: Vec<&str> = (stderr.lines())
        .filter(|l| l.contains("Cache-Control is not read"))
        .collect();
    assert_eq!(unread.len(), 1, "{stderr}");
    assert!(
        unread[0].contains("proxy.conf:2: cache_ignore_headers: "),
        "{stderr}"
    );
}

#[test]
fn a_pool_with_a_rate_limit_of_its_own_fills_buckets_of_its_own() {
    let (main, api, login) = (
        Backend::echo("main"),
        Backend::echo("api"),
        Backend::echo("login"),
    );
    // One request a minute each: a second one within the test is refused.
    let text = format!(
        "targets = {}\n\
         rate_limit = 1/m\n\
         rate_limit_burst = 0\n\
         pool.api = {}\n\
         pool.login = {}\n\
         pool.login.rate_limit = 1/m\n\
         route./api/ = api\n\
         route./login/ = login\n",
        main.addr, api.addr, login.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let status = |path: &str| via(&proxy, "site.test", path, &[]).0;
    assert_eq!(status("/"), 200);
    // The API sets no limit: it shares the top level's bucket, spent.
    assert_eq!(status("/api/x"), 429);
    // The login pool's own bucket is full, then spent (its burst is the
    // top level's 0).
    assert_eq!(status("/login/a"), 200);
    assert_eq!(status("/login/b"), 429);
    // A reload that leaves the limits as they were keeps the buckets.
    proxy.reload(&[], from_file(&text));
    assert_eq!(status("/login/c"), 429);
    assert_eq!(status("/"), 429);
    assert_eq!(
        (main.requests(), api.requests(), login.requests()),
        (1, 0, 1)
    );
}

#[test]
fn rate_limit_key_counts_each_api_key_on_its_own_and_the_rest_by_address() {
    let (main, api) = (Backend::echo("main"), Backend::echo("api"));
    // Two requests a minute for each key (a burst of one), then 429.
    let text = format!(
        "targets = {}\n\
         rate_limit = 1/m\n\
         rate_limit_burst = 1\n\
         rate_limit_key = header:X-Api-Key\n\
         pool.api = {}\n\
         pool.api.rate_limit_key = query:key\n\
         route./api/ = api\n",
        main.addr, api.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let status = |target: &str, fields: &[(&str, &str)]| via(&proxy, "site.test", target, fields).0;
    let (alice, bob) = (("X-Api-Key", "alice"), ("X-Api-Key", " bob "));
    // Each key has its own bucket, though every request comes from one
    // address.
    assert_eq!([status("/", &[alice]), status("/", &[alice])], [200, 200]);
    assert_eq!(status("/", &[alice]), 429);
    assert_eq!([status("/", &[bob]), status("/", &[bob])], [200, 200]);
    // The value trimmed, as `hash_on` reads it: the same key.
    assert_eq!(status("/", &[("X-Api-Key", "bob")]), 429);
    // No key, or an empty one: by the address, a bucket of its own.
    assert_eq!(
        [status("/", &[]), status("/", &[("X-Api-Key", "")])],
        [200, 200]
    );
    assert_eq!(status("/", &[]), 429);
    // More keys than are counted: refused without a bucket asked, and
    // told to come back in a second, not two.
    let keys: Vec<String> = (0..=inverso::ratelimit::MAX_KEYS)
        .map(|i| format!("k{i}"))
        .collect();
    let many: Vec<_> = keys.iter().map(|k| ("X-Api-Key", k.as_str())).collect();
    let r = proxy.get_on("site.test", "/", &many);
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    // Nor does a key no backend will see: under an underscore (dropped
    // with underscores_in_headers off) or named in `Connection`.
    assert_eq!(status("/", &[("X_Api_Key", "r1")]), 429);
    let hidden = [("Connection", "X-Api-Key"), ("X-Api-Key", "r2")];
    assert_eq!(status("/", &hidden), 429);
    // The API pool's key is another, and its buckets its own.
    assert_eq!(status("/api/a?key=alice", &[alice]), 200);
    assert_eq!(status("/api/b?key=alice", &[]), 200);
    assert_eq!(status("/api/c?key=alice", &[]), 429);
    // The same key, however spelled, as the backend decodes it.
    assert_eq!(status("/api/e?key=%61lic%65", &[]), 429);
    assert_eq!(status("/api/d?key=carol", &[]), 200);
    // A reload that leaves the limits and their keys as they were keeps
    // the buckets; one that changes a key starts afresh.
    proxy.reload(&[], from_file(&text));
    assert_eq!(status("/", &[alice]), 429);
    proxy.reload(&[], from_file(&text.replace("X-Api-Key", "X-Key")));
    assert_eq!(status("/", &[("X-Key", "alice")]), 200);
    assert_eq!((main.requests(), api.requests()), (7, 3));
}

#[test]
fn a_backend_s_redirect_goes_back_under_the_route_s_prefix() {
    // An application that thinks it is at `/`: it redirects to its own
    // paths, one answer cacheable.
    let app = Backend::start("app", |seen, out| {
        let (status, location, cache) = match seen.path() {
            "/old" => (301, "/new?x=1", "max-age=60"),
            "/abs" => (302, "http://site.test/login", "no-store"),
            _ => (302, "https://elsewhere.test/", "no-store"),
        };
        let fields = [("Location", location), ("Cache-Control", cache)];
        respond(out, status, &fields, b"");
        Action::KeepAlive
    });
    let main = Backend::echo("main");
    let mut tweak = Some(from_file(&format!(
        "targets = {}\npool.app = {}\nroute./app/ = app rewrite=/\n",
        main.addr, app.addr
    )));
    let proxy = start_proxy(&[], |c| {
        (tweak.take().unwrap())(c);
        c.cache_size = 1 << 20;
    });
    for cache in ["MISS", "HIT"] {
        let r = proxy.get_on("site.test", "/app/old", &[]);
        assert_eq!((r.status, r.header("x-cache")), (301, Some(cache)));
        assert_eq!(r.header("location"), Some("/app/new?x=1"), "{}", r.head.raw);
    }
    let r = proxy.get_on("site.test", "/app/abs", &[]);
    assert_eq!(r.header("location"), Some("/app/login"), "{}", r.head.raw);
    let r = proxy.get_on("site.test", "/app/other", &[]);
    assert_eq!(r.header("location"), Some("https://elsewhere.test/"));
    assert_eq!(main.requests(), 0);
}

#[test]
fn a_backend_s_content_location_goes_back_under_the_route_s_prefix_and_invalidates_there() {
    // A POST answered with the URL of what it made: the entry cached for
    // that URL, which clients know under the route's prefix, goes.
    let app = Backend::start("app", |seen, out| {
        let made = seen.method() == "POST";
        let fields: &[(&str, &str)] = match made {
            true => &[("Content-Location", "/items/1")],
            false => &[("Cache-Control", "max-age=60")],
        };
        respond(
            out,
            if made { 201 } else { 200 },
            fields,
            seen.path().as_bytes(),
        );
        Action::KeepAlive
    });
    let mut tweak = Some(from_file(&format!(
        "targets = {}\nroute./app/ = default rewrite=/\n",
        app.addr
    )));
    let proxy = start_proxy(&[], |c| {
        (tweak.take().unwrap())(c);
        c.cache_size = 1 << 20;
    });
    let item = |proxy: &Proxy| proxy.get_on("test.example", "/app/items/1", &[]);
    assert_eq!(item(&proxy).header("x-cache"), Some("MISS"));
    assert_eq!(item(&proxy).header("x-cache"), Some("HIT"));
    let made = proxy.exchange(|c| c.request("POST", "/app/items", &[], b"name=1"));
    assert_eq!(made.status, 201);
    assert_eq!(made.header("content-location"), Some("/app/items/1"));
    assert_eq!(item(&proxy).header("x-cache"), Some("MISS"));
    assert_eq!(app.requests(), 3);
}

/// The values of a response's `Set-Cookie` fields, in their order.
fn cookies(r: &Response) -> Vec<&str> {
    r.head.get_all("set-cookie").collect()
}

#[test]
fn a_backend_s_cookie_paths_go_back_under_the_route_s_prefix() {
    // An application that thinks it is at `/`: its cookies' paths are
    // its own.
    let app = Backend::start("app", |_, out| {
        let fields = [
            ("Set-Cookie", "sid=1; Path=/account; HttpOnly"),
            ("Set-Cookie", "theme=dark; path=/"),
            ("Set-Cookie", "plain=1"),
            ("Set-Cookie", "v2=1; Secure; Path = /v2/x ; SameSite=Lax"),
            ("Set-Cookie", "far=1; Path=\"/quoted\""),
            ("Cache-Control", "no-store"),
        ];
        respond(out, 200, &fields, b"");
        Action::KeepAlive
    });
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\n\
             pool.app = {}\n\
             pool.app.sticky_cookie = srv\n\
             route./app/ = app rewrite=/ cookie_paths\n\
             route./api/ = app rewrite=/v2/ cookie_paths\n\
             route./bare/ = app rewrite=/\n\
             route./plain/ = app\n",
            main.addr, app.addr
        )),
    );
    // The proxy's own sticky cookie is for every path, whatever the
    // route: it is written after the backend's cookies were rewritten.
    let sticky = |r: &Response| {
        let id = cookie_set(r, "srv").unwrap_or_else(|| panic!("{}", r.head.raw));
        format!("srv={id}; Path=/; HttpOnly")
    };
    let r = proxy.get_on("site.test", "/app/account", &[]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(
        cookies(&r),
        [
            "sid=1; Path=/app/account; HttpOnly",
            "theme=dark; path=/app/",
            "plain=1",
            "v2=1; Secure; Path = /app/v2/x ; SameSite=Lax",
            "far=1; Path=\"/quoted\"",
            &sticky(&r),
        ],
        "{}",
        r.head.raw
    );
    // Under `/v2/`, only what is under it.
    let r = proxy.get_on("site.test", "/api/x", &[]);
    assert_eq!(
        cookies(&r),
        [
            "sid=1; Path=/account; HttpOnly",
            "theme=dark; path=/",
            "plain=1",
            "v2=1; Secure; Path = /api/x ; SameSite=Lax",
            "far=1; Path=\"/quoted\"",
            &sticky(&r),
        ],
        "{}",
        r.head.raw
    );
    // Without `cookie_paths`, or without `rewrite=`, the backend's paths
    // are the client's.
    let sent_as_they_came = |r: &Response| {
        assert_eq!(
            cookies(r),
            [
                "sid=1; Path=/account; HttpOnly",
                "theme=dark; path=/",
                "plain=1",
                "v2=1; Secure; Path = /v2/x ; SameSite=Lax",
                "far=1; Path=\"/quoted\"",
                &sticky(r),
            ],
            "{}",
            r.head.raw
        );
    };
    sent_as_they_came(&proxy.get_on("site.test", "/bare/account", &[]));
    sent_as_they_came(&proxy.get_on("site.test", "/plain/x", &[]));
    let paths: Vec<String> = app.seen().iter().map(|s| s.path().to_string()).collect();
    assert_eq!(paths, ["/account", "/v2/x", "/account", "/plain/x"]);
    assert_eq!(main.requests(), 0);
}

#[test]
fn a_stored_answer_s_cookies_are_rewritten_for_the_client_and_never_stored() {
    // Micro-caching an application that sets a cookie on every page
    // (`cache_ignore_headers = Set-Cookie`): the cookie of the answer
    // that fills the cache, and of a 304 that revalidates it, is this
    // client's, rewritten; a hit has none.
    let app = Backend::start("app", |seen, out| {
        let revalidating = seen.head.get("if-none-match") == Some("\"v1\"");
        let cache = match seen.path() {
            "/fresh" => "max-age=60",
            _ => "no-cache",
        };
        let cookie = match revalidating {
            true => "sid=2; Path=/account",
            false => "sid=1; Path=/",
        };
        let fields = [
            ("ETag", "\"v1\""),
            ("Cache-Control", cache),
            ("Set-Cookie", cookie),
        ];
        match revalidating {
            true => write_304(out, &fields),
            false => respond(out, 200, &fields, b"page"),
        }
        Action::KeepAlive
    });
    let main = Backend::echo("main");
    let mut tweak = Some(from_file(&format!(
        "targets = {}\n\
         pool.app = {}\n\
         cache_ignore_headers = Set-Cookie\n\
         route./app/ = app rewrite=/ cookie_paths\n",
        main.addr, app.addr
    )));
    let proxy = start_proxy(&[], |c| {
        (tweak.take().unwrap())(c);
        c.cache_size = 1 << 20;
    });
    let get = |path: &str| {
        let r = proxy.get_on("site.test", path, &[]);
        assert_eq!((r.status, r.body_str().as_str()), (200, "page"));
        let x_cache = r.header("x-cache").unwrap_or("-").to_string();
        let cookies = cookies(&r)
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>();
        (x_cache, cookies)
    };
    let no_cookie: Vec<String> = Vec::new();
    assert_eq!(
        get("/app/fresh"),
        ("MISS".into(), vec!["sid=1; Path=/app/".into()])
    );
    assert_eq!(get("/app/fresh"), ("HIT".into(), no_cookie));
    assert_eq!(
        get("/app/page"),
        ("MISS".into(), vec!["sid=1; Path=/app/".into()])
    );
    for _ in 0..2 {
        let (x_cache, cookies) = get("/app/page");
        assert_eq!(x_cache, "REVALIDATED");
        assert_eq!(cookies, ["sid=2; Path=/app/account"]);
    }
    assert_eq!(app.requests(), 4);
}

// ------------------------------------------------------------ the log and metrics

/// The log line of the request `request` (as its request line starts),
/// the one line there must be.
#[track_caller]
fn line_of<'a>(lines: &'a [String], request: &str) -> &'a str {
    let quoted = format!("\"{request} ");
    let found: Vec<&String> = lines.iter().filter(|l| l.contains(&quoted)).collect();
    assert_eq!(found.len(), 1, "{request}: {lines:#?}");
    found[0]
}

/// The value of a combined line's ` key=` field.
#[track_caller]
fn combined_field<'a>(line: &'a str, key: &str) -> &'a str {
    let (_, rest) =
        (line.split_once(&format!(" {key}="))).unwrap_or_else(|| panic!("no {key}= in {line}"));
    rest.split(' ').next().unwrap_or_default()
}

/// Pools `api` (its answers fresh for a minute) and `default`, a route
/// for each, one that redirects, and the cache on.
fn logged_pools(api: &Backend, main: &Backend, more: &str) -> impl FnOnce(&mut Config) {
    let tweak = from_file(&format!(
        "targets = {}\n\
         pool.api = {}\n\
         route./api/ = api\n\
         route.admin.test = default\n\
         route./old/ = redirect 308 /new/\n\
         {more}",
        main.addr, api.addr
    ));
    move |c: &mut Config| {
        tweak(c);
        c.cache_size = 1 << 20;
    }
}

#[test]
fn the_access_log_names_the_pool_each_request_was_routed_to() {
    let (api, main) = (cacheable_echo("api"), Backend::echo("main"));
    let mut proxy = start_proxy(&[], logged_pools(&api, &main, ""));
    let miss = proxy.get_on("x.test", "/api/a", &[]);
    assert_eq!(miss.header("x-cache"), Some("MISS"), "{}", miss.head.raw);
    // A hit is its route's pool's, though no backend of it was asked.
    let hit = proxy.get_on("x.test", "/api/a", &[]);
    assert_eq!(hit.header("x-cache"), Some("HIT"), "{}", hit.head.raw);
    assert_eq!(api.requests(), 1);
    assert_eq!(served_by(&proxy, "admin.test", "/by-host"), "main");
    assert_eq!(served_by(&proxy, "x.test", "/no-route"), "main");
    // Pools none: a redirect route's, a path refused before it was
    // routed, a head refused before it was parsed (no Host).
    assert_eq!(via(&proxy, "x.test", "/old/page", &[]).0, 308);
    assert_eq!(via(&proxy, "x.test", "/x/../api/y", &[]).0, 400);
    let bad = proxy.exchange(|client| {
        client.send(b"GET /no-host HTTP/1.1\r\n\r\n");
        client.response()
    });
    assert_eq!(bad.status, 400);
    assert!(proxy.shutdown(Duration::from_secs(5)));

    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 7, "{lines:#?}");
    for (request, pool, upstream) in [
        ("GET /api/a", "api", api.addr.to_string()),
        ("GET /by-host", "default", main.addr.to_string()),
        ("GET /no-route", "default", main.addr.to_string()),
        ("GET /old/page", "-", "-".into()),
        ("GET /x/../api/y", "-", "-".into()),
        ("GET /no-host", "-", "-".into()),
    ] {
        let line = (lines.iter())
            .find(|l| l.contains(&format!("\"{request} ")))
            .unwrap_or_else(|| panic!("{request}: {lines:#?}"));
        assert_eq!(combined_field(line, "upstream"), upstream, "{line}");
        // The last field (no request IDs here), after `upstream_ms`.
        assert!(line.ends_with(&format!(" pool={pool}")), "{line}");
        let (_, after) = line.split_once(" upstream_ms=").expect(line);
        assert!(after.contains(" pool="), "{line}");
    }
    let hit = (lines.iter())
        .find(|l| l.contains("cache=HIT"))
        .unwrap_or_else(|| panic!("no hit: {lines:#?}"));
    assert!(hit.contains("\"GET /api/a "), "{hit}");
    assert_eq!(combined_field(hit, "upstream"), "-", "{hit}");
    assert_eq!(combined_field(hit, "pool"), "api", "{hit}");
}

#[test]
fn the_json_log_and_templates_name_the_pool_too() {
    let (api, main) = (cacheable_echo("api"), Backend::echo("main"));
    let mut proxy = start_proxy(
        &[],
        logged_pools(
            &api,
            &main,
            "log_format = json\nrequest_id_header = X-Request-Id\n",
        ),
    );
    served_by(&proxy, "x.test", "/api/j");
    served_by(&proxy, "x.test", "/j");
    assert_eq!(via(&proxy, "x.test", "/old/j", &[]).0, 308);
    // And a template, from a reload.
    proxy.reload(
        &[],
        logged_pools(
            &api,
            &main,
            "log_format = $request_uri $pool $upstream_cache_status\n",
        ),
    );
    served_by(&proxy, "x.test", "/api/j");
    served_by(&proxy, "x.test", "/t");
    assert_eq!(via(&proxy, "x.test", "/old/t", &[]).0, 308);
    assert!(proxy.shutdown(Duration::from_secs(5)));

    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    for (request, pool) in [
        ("GET /api/j", "\"api\""),
        ("GET /j", "\"default\""),
        ("GET /old/j", "null"),
    ] {
        let line = line_of(&lines, request);
        // After `upstream_ms`, before `request_id`.
        let at = |key: &str| line.find(&format!("\"{key}\":")).expect(line);
        assert!(at("upstream_ms") < at("pool"), "{line}");
        assert!(
            line.contains(&format!(",\"pool\":{pool},\"request_id\":\"")),
            "{line}"
        );
    }
    assert_eq!(
        lines[3..],
        ["/api/j api HIT", "/t default MISS", "/old/t - -"],
        "{lines:#?}"
    );
}

#[test]
fn without_pools_lines_are_as_they_were_and_a_template_s_pool_is_default() {
    let main = Backend::echo("main");
    let mut proxy = start_proxy(&[], from_file(&format!("targets = {}\n", main.addr)));
    served_by(&proxy, "x.test", "/a");
    for format in ["log_format = json", "log_format = $request_uri $pool"] {
        proxy.reload(
            &[],
            from_file(&format!("targets = {}\n{format}\n", main.addr)),
        );
        served_by(&proxy, "x.test", "/a");
    }
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(!lines[0].contains("pool"), "{}", lines[0]);
    let upstream_ms = combined_field(&lines[0], "upstream_ms");
    assert!(lines[0].ends_with(&format!(" upstream_ms={upstream_ms}")));
    assert!(!lines[1].contains("pool"), "{}", lines[1]);
    assert_eq!(lines[2], "/a default");
}

#[test]
fn metrics_label_each_target_with_its_pool() {
    let (api, main) = (Backend::echo("api"), Backend::echo("main"));
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\npool.api = {}\nroute./api/ = api\n",
            main.addr, api.addr
        )),
    );
    assert_eq!(served_by(&proxy, "x.test", "/api/m"), "api");
    assert_eq!(served_by(&proxy, "x.test", "/m"), "main");
    for (backend, pool) in [(&api, "api"), (&main, "default")] {
        let labels = format!("target=\"{}\",pool=\"{pool}\"", backend.addr);
        for (sample, value) in [
            (format!("inverso_upstream_requests_total{{{labels}}}"), 1),
            (format!("inverso_upstream_failures_total{{{labels}}}"), 0),
            (format!("inverso_upstream_in_flight{{{labels}}}"), 0),
            (format!("inverso_upstream_up{{{labels}}}"), 1),
            (
                format!("inverso_upstream_responses_total{{{labels},class=\"2xx\"}}"),
                1,
            ),
            (
                format!("inverso_upstream_header_seconds_bucket{{{labels},le=\"+Inf\"}}"),
                1,
            ),
            (
                format!("inverso_upstream_header_seconds_count{{{labels}}}"),
                1,
            ),
            (
                format!("inverso_upstream_admin_state{{{labels},state=\"ready\"}}"),
                1,
            ),
        ] {
            assert_eq!(proxy.metric(&sample), Some(value), "{sample}");
        }
    }
    // Every sample of a target has its pool, right after it.
    let page = proxy.admin("GET", "/metrics", "").body_str();
    let of_targets: Vec<&str> = page.lines().filter(|l| l.contains("{target=")).collect();
    let of = |addr: SocketAddr| {
        let target = format!("{{target=\"{addr}\",");
        of_targets.iter().filter(|l| l.contains(&target)).count()
    };
    assert!(of(api.addr) > 0 && of(api.addr) == of(main.addr), "{page}");
    for line in of_targets {
        let (_, rest) = line.split_once("{target=\"").unwrap();
        let (_, rest) = rest.split_once('"').unwrap();
        assert!(
            rest.starts_with(",pool=\"api\"") || rest.starts_with(",pool=\"default\""),
            "{line}"
        );
    }
}

#[test]
fn a_connection_refused_over_max_connections_is_logged_with_no_pool() {
    let (api, main) = (cacheable_echo("api"), Backend::echo("main"));
    let tweak = logged_pools(&api, &main, "");
    let mut proxy = start_proxy(&[], |c| {
        tweak(c);
        c.max_connections = 1;
    });
    let mut first = proxy.connect();
    assert_eq!(first.get("/api/held").status, 200);
    let mut second = proxy.connect();
    second.send(b"GET /api/refused HTTP/1.1\r\nHost: x.test\r\n\r\n");
    assert_eq!(second.response().status, 503);
    drop((first, second));
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let held = line_of(&lines, "GET /api/held");
    assert_eq!(combined_field(held, "pool"), "api", "{held}");
    let refused = line_of(&lines, "GET /api/refused");
    assert!(refused.ends_with(" upstream_ms=- pool=-"), "{refused}");
}

#[test]
fn a_route_for_a_dot_name_takes_its_escaped_spellings_too() {
    // README: `route./.git/ = return 404` "keeps a path from every
    // backend", and `route./.env = return 444` drops a path scanners ask
    // for. `.` is unreserved: `/%2Egit/config` is `/.git/config`, and
    // `/%2Eenv` `/.env`, to every backend.
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nroute./.git/ = return 404\nroute./.env = return 444\n",
            main.addr
        )),
    );
    for target in ["/.git/config", "/%2Egit/config", "/%2egit/config"] {
        let (status, backend) = via(&proxy, "site.test", target, &[]);
        assert_eq!((status, backend.as_str()), (404, "-"), "{target}");
    }
    for target in ["/.env", "/%2Eenv"] {
        let mut client = proxy.connect();
        client.send(format!("GET {target} HTTP/1.1\r\nHost: site.test\r\n\r\n").as_bytes());
        let got = client.read_until_closed();
        assert!(
            got.is_empty(),
            "{target}: {}",
            String::from_utf8_lossy(&got)
        );
    }
    assert_eq!(main.requests(), 0);
}

#[test]
fn an_escaped_reserved_character_that_would_read_as_another_route_is_refused() {
    // Servers decode `%40` before they read a path (nginx, to match its
    // locations): `/%40admin/` is their `/@admin/`, which has a route of
    // its own. Where the reading changes no route, the path goes on as
    // it came.
    let main = Backend::echo("main");
    let admin = Backend::echo("admin");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\npool.admin = {}\nroute./@admin/ = admin\n",
            main.addr, admin.addr
        )),
    );
    assert_eq!(
        via(&proxy, "site.test", "/@admin/x", &[]),
        (200, "admin".into())
    );
    assert_eq!(via(&proxy, "site.test", "/%40admin/x", &[]).0, 400);
    assert_eq!(
        via(&proxy, "site.test", "/user/%40me", &[]),
        (200, "main".into())
    );
    assert_eq!(main.seen()[0].path(), "/user/%40me");
    // Every character a route may name: `[` and `]` too.
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\npool.admin = {}\nroute./[admin]/ = admin\n",
            main.addr, admin.addr
        )),
    );
    assert_eq!(
        via(&proxy, "site.test", "/[admin]/x", &[]),
        (200, "admin".into())
    );
    assert_eq!(via(&proxy, "site.test", "/%5Badmin%5D/x", &[]).0, 400);
}

#[test]
fn a_method_in_lower_case_is_refused_not_routed_past_a_method_route() {
    // `route./admin/ if method ... = return 403` keeps writes from the
    // backend. Django and Werkzeug read `delete` as DELETE: refused 400,
    // as nginx refuses it, it reaches no backend.
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nroute./admin/ if method POST,PUT,PATCH,DELETE = return 403\n",
            main.addr
        )),
    );
    let send = |method: &str| {
        proxy.exchange(|client| {
            client.send(
                format!("{method} /admin/users/7 HTTP/1.1\r\nHost: site.test\r\nContent-Length: 0\r\n\r\n")
                    .as_bytes(),
            );
            client.response().status
        })
    };
    assert_eq!(send("DELETE"), 403);
    for method in ["delete", "Delete", "post", "pUT", "trace"] {
        assert_eq!(send(method), 400, "{method}");
    }
    assert_eq!(main.requests(), 0);
    // Custom methods in capitals go on as they came.
    assert_eq!(send("PURGE_ME"), 200);
}

#[test]
fn rate_limit_key_reads_a_query_name_as_php_reads_it() {
    // PHP turns `.`, a space and `[` in a parameter's name into `_`:
    // `?api.key=K` is `$_GET['api_key']`. Counted by address instead of
    // in K's bucket, K would be used past its limit from every address.
    let api = Backend::echo("api");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nrate_limit = 1/m\nrate_limit_burst = 0\n\
             rate_limit_key = query:api_key\nreal_ip_from = 127.0.0.1\n",
            api.addr
        )),
    );
    let status =
        |target: &str, from: &str| via(&proxy, "site.test", target, &[("X-Forwarded-For", from)]).0;
    assert_eq!(status("/v1/orders?api_key=K", "192.0.2.1"), 200);
    assert_eq!(status("/v1/orders?api_key=K", "192.0.2.2"), 429);
    for (i, spelled) in ["api.key", "api+key", "api%20key", "api[key", "api_key[]"]
        .iter()
        .enumerate()
    {
        let from = format!("198.51.100.{}", i + 1);
        let target = format!("/v1/orders?{spelled}=K");
        assert_eq!(status(&target, &from), 429, "`{spelled}=K` is K to PHP");
    }
}

#[test]
fn a_route_s_own_rate_limit_refuses_its_path_alone_and_survives_a_reload() {
    let (main, files) = (Backend::echo("main"), tempfile::tempdir().unwrap());
    std::fs::write(files.path().join("report.pdf"), b"pdf").unwrap();
    // One request an hour past a burst of 2: nothing refills in a test.
    let text = format!(
        "targets = {}\n\
         route./login = default rate_limit=1/h rate_limit_burst=2\n\
         route./dl/ = files {} rate_limit=1/h rate_limit_burst=0\n\
         log_format = $status $termination $request_uri\n",
        main.addr,
        files.path().display()
    );
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    let status = |path: &str| via(&proxy, "site.test", path, &[]).0;
    for path in ["/login", "/login?next=/", "/login/sso"] {
        assert_eq!(status(path), 200, "{path}");
    }
    let refused = proxy.get_on("site.test", "/login", &[]);
    assert_eq!(refused.status, 429);
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    // The rest of the site, on the same backends, is not limited.
    for i in 0..5 {
        assert_eq!(status(&format!("/page/{i}")), 200);
    }
    // A files route takes one too.
    assert_eq!(status("/dl/report.pdf"), 200);
    assert_eq!(status("/dl/report.pdf"), 429);
    // One counter, logged as the other limits' refusals are.
    assert_eq!(proxy.metric("inverso_rate_limited_total"), Some(2));
    assert!(wait_until(WAIT_LIMIT, || proxy.log_lines().len() == 11));
    let lines = proxy.log_lines();
    assert!(lines.contains(&"429 PR /login".to_string()), "{lines:?}");
    // A reload that keeps the route's line keeps its buckets, though
    // another route now comes before it.
    let more = format!("{text}route./account/settings/ = default\n");
    proxy.reload(&[], from_file_with_admin(&more));
    assert_eq!(status("/login"), 429);
    assert_eq!(status("/dl/report.pdf"), 429);
    // One that changes its limit starts it afresh.
    let changed = more.replace("rate_limit_burst=2", "rate_limit_burst=3");
    proxy.reload(&[], from_file_with_admin(&changed));
    assert_eq!(status("/login"), 200);
    assert_eq!(status("/dl/report.pdf"), 429);
    assert_eq!(main.requests(), 9);
}

#[test]
fn a_route_s_rate_limit_adds_to_its_pool_s_and_counts_by_its_key() {
    let (main, api) = (Backend::echo("main"), Backend::echo("api"));
    let text = format!(
        "targets = {}\n\
         rate_limit = 1/h\n\
         rate_limit_burst = 1\n\
         pool.api = {}\n\
         pool.api.rate_limit = 1/h\n\
         pool.api.rate_limit_burst = 5\n\
         pool.api.rate_limit_key = header:X-Api-Key\n\
         route./login = default rate_limit=1/h rate_limit_burst=0\n\
         route./api/search = api rate_limit=1/h rate_limit_burst=1\n\
         route./api/ = api\n",
        main.addr, api.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let status = |target: &str, fields: &[(&str, &str)]| via(&proxy, "site.test", target, fields).0;
    // The login's bucket is spent after one; the one refused takes no
    // token of the site's, which has one more.
    assert_eq!(status("/login", &[]), 200);
    assert_eq!(status("/login", &[]), 429);
    assert_eq!(status("/", &[]), 200);
    // The site's is spent now: nothing passes, the login's limit or not.
    assert_eq!(status("/", &[]), 429);
    // The search counts by the API pool's key, in buckets of its own.
    let (alice, bob) = (("X-Api-Key", "alice"), ("X-Api-Key", "bob"));
    for _ in 0..2 {
        assert_eq!(status("/api/search?q=1", &[alice]), 200);
    }
    assert_eq!(status("/api/search?q=2", &[alice]), 429);
    assert_eq!(status("/api/search?q=2", &[bob]), 200);
    // The pool's limit still holds on the search: carol's key spent
    // elsewhere in the API, her search is refused, its bucket full or not.
    let carol = ("X-Api-Key", "carol");
    for i in 0..6 {
        assert_eq!(status(&format!("/api/items/{i}"), &[carol]), 200);
    }
    assert_eq!(status("/api/search?q=3", &[carol]), 429);
    assert_eq!(status("/api/items/6", &[carol]), 429);
    assert_eq!((main.requests(), api.requests()), (2, 9));
}

#[test]
fn a_request_refused_for_one_of_its_keys_spends_no_token_of_its_other_keys() {
    // A request with two values of the key (two fields, of which a
    // backend may read either) passes only if each has a token; refused,
    // it costs neither, in the route's buckets as in the pool's.
    let (main, api) = (Backend::echo("main"), Backend::echo("api"));
    let text = format!(
        "targets = {}\n\
         pool.api = {}\n\
         pool.api.rate_limit = 1/h\n\
         pool.api.rate_limit_burst = 5\n\
         pool.api.rate_limit_key = header:X-Api-Key\n\
         route./api/search = api rate_limit=1/h rate_limit_burst=0\n\
         route./api/ = api\n",
        main.addr, api.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let status = |target: &str, fields: &[(&str, &str)]| via(&proxy, "site.test", target, fields).0;
    let (alice, bob) = (("X-Api-Key", "alice"), ("X-Api-Key", "bob"));
    assert_eq!(status("/api/search?q=1", &[alice]), 200);
    // Alice's search bucket is spent: refused, whatever bob's holds.
    for _ in 0..3 {
        assert_eq!(status("/api/search?q=2", &[alice, bob]), 429);
    }
    // Bob spent nothing on them, in the search's buckets or the pool's.
    assert_eq!(status("/api/search?q=3", &[bob]), 200);
    for i in 0..5 {
        assert_eq!(status(&format!("/api/items/{i}"), &[bob]), 200, "{i}");
    }
    assert_eq!(status("/api/items/5", &[bob]), 429);
    assert_eq!(api.requests(), 7);
}

#[test]
fn a_route_s_rate_limit_is_shown_by_check_and_refused_where_it_means_nothing() {
    let top = "targets = 127.0.0.1:9001\n";
    let (code, stdout, stderr) = inverso_check(
        &format!("{top}route./login = default rewrite=/sign-in rate_limit=5/m\n"),
        "error",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(
            "# route /login -> default, its prefix rewritten to /sign-in, \
             rate_limit 5/m (burst 1) of its own, its pool's too\n"
        ),
        "{stdout}"
    );
    for (route, says) in [
        (
            "default rate_limit=10/d",
            "rate_limit=10/d: `10/d` is not a rate",
        ),
        (
            "default rate_limit=0/s",
            "rate_limit=0/s: `0/s` is not a rate",
        ),
        (
            "default rate_limit_burst=3",
            "rate_limit_burst= is set, but rate_limit= is not",
        ),
        (
            "default rate_limit=1/s rate_limit_burst=-1",
            "rate_limit_burst=-1: ",
        ),
        (
            "default rate_limit=1/s rate_limit=2/s",
            "rate_limit= given twice",
        ),
        (
            "return 200 ok rate_limit=1/s",
            "rate_limit=: a return route is answered before any rate limit",
        ),
        (
            "redirect 301 /new rate_limit=1/s",
            "rate_limit=: a redirect route is answered before any rate",
        ),
        (
            "files / internal rate_limit=1/s",
            "rate_limit=: an internal route is reached by a backend's",
        ),
    ] {
        let (code, _, stderr) = inverso_check(&format!("{top}route./login = {route}\n"), "error");
        assert_eq!(code, Some(2), "{route}: {stderr}");
        assert!(
            stderr.contains(&format!("proxy.conf:2: route./login: {says}")),
            "{route}: {stderr}"
        );
    }
}

#[test]
fn deny_rules_refuse_before_any_route_or_rewrite_whatever_the_path() {
    let (main, api) = (Backend::echo("main"), Backend::echo("api"));
    let text = format!(
        "targets = {}\npool.api = {}\n\
         route./api/ = api\n\
         route./api/v1/ if cookie beta = api\n\
         rewrite.old = ^/old/(.*)$ /api/$1\n\
         deny.bots = if header_reg User-Agent (?i)(bot|crawler)\n\
         deny.probes = 444 if path_sub /.env,/.git\n\
         deny.writes = 429 if method POST and not client 10.0.0.0/8\n\
         log_format = $status $termination $request_uri\n",
        main.addr, api.addr
    );
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    let bot: &[(&str, &str)] = &[("User-Agent", "FooBot/2.1")];
    // Under every route, the longest and the conditional too, and before
    // a rewrite would send the path elsewhere.
    for path in ["/", "/page", "/api/x", "/api/v1/x", "/old/x"] {
        assert_eq!(
            via(&proxy, "site.test", path, bot),
            (403, "-".into()),
            "{path}"
        );
        assert_eq!(via(&proxy, "site.test", path, &[]).0, 200, "{path}");
    }
    // 444: closed unanswered, however the path is spelled.
    for path in ["/app/.env", "/.git;x/config", "/%2e%67it/HEAD"] {
        let mut client = proxy.connect();
        client.send(format!("GET {path} HTTP/1.1\r\nHost: site.test\r\n\r\n").as_bytes());
        assert!(client.read_until_closed().is_empty(), "{path}");
    }
    // A path servers read in different ways is no way past them.
    assert_eq!(via(&proxy, "site.test", "/x/../.env", &[]).0, 400);
    let r = proxy.exchange(|client| {
        client.send(b"POST /api/x HTTP/1.1\r\nHost: site.test\r\nContent-Length: 2\r\n\r\nhi");
        client.response()
    });
    assert_eq!(r.status, 429);
    // Nothing refused reached a backend: 10 GETs of 200 did.
    assert_eq!(main.requests() + api.requests(), 5);
    assert_eq!(proxy.metric("inverso_denied_total{rule=\"bots\"}"), Some(5));
    assert_eq!(
        proxy.metric("inverso_denied_total{rule=\"probes\"}"),
        Some(3)
    );
    assert_eq!(
        proxy.metric("inverso_denied_total{rule=\"writes\"}"),
        Some(1)
    );
    assert!(wait_until(WAIT_LIMIT, || proxy.log_lines().len() == 15));
    let lines = proxy.log_lines();
    for line in [
        "403 PR /api/v1/x",
        "444 PR /app/.env",
        "400 PR /x/../.env",
        "429 PR /api/x",
    ] {
        assert!(lines.contains(&line.to_string()), "{line}: {lines:?}");
    }
    // A reload that keeps a rule's name keeps its count.
    proxy.reload(
        &[],
        from_file_with_admin(&text.replace("deny.writes", "deny.posts")),
    );
    assert_eq!(proxy.metric("inverso_denied_total{rule=\"bots\"}"), Some(5));
    assert_eq!(
        proxy.metric("inverso_denied_total{rule=\"posts\"}"),
        Some(0)
    );
}

// ------------------------------------ a route's own pool settings

/// `POST path` of `len` bytes on a connection of its own; with `whole`
/// false only its head goes (a 413 is answered from the head).
fn post_of(proxy: &Proxy, path: &str, len: usize, whole: bool) -> u16 {
    proxy.exchange(|client| {
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: site.test\r\nContent-Length: {len}\r\n\r\n");
        client.send(head.as_bytes());
        if whole {
            client.send(&pattern(len));
        }
        client.response().status
    })
}

#[test]
fn a_route_s_max_body_size_takes_bodies_its_pool_s_limit_refuses() {
    // nginx's `location /upload/ { client_max_body_size 10m; proxy_pass
    // http://app; }` beside the site's 1m, on the same backends.
    let app = Backend::echo("app");
    let routes = "route./upload/ = default max_body_size=10m\n\
                  route./avatar/ = default max_body_size=64KiB\n";
    let text = |routes: &str| format!("targets = {}\nmax_body_size = 1m\n{routes}", app.addr);
    let proxy = start_proxy(&[], from_file(&text(routes)));
    let two_mib = 2 << 20;
    assert_eq!(post_of(&proxy, "/upload/photo", two_mib, true), 200);
    assert_eq!(post_of(&proxy, "/form", two_mib, false), 413);
    // Lower than its pool's too.
    assert_eq!(post_of(&proxy, "/avatar/me", 128 << 10, false), 413);
    assert_eq!(post_of(&proxy, "/form", 128 << 10, true), 200);
    // A chunked body is counted as it comes, against the route's limit.
    let chunked_upload = || {
        proxy.exchange(|client| {
            let head = "POST /upload/photo HTTP/1.1\r\nHost: site.test\r\n\
                        Transfer-Encoding: chunked\r\n\r\n";
            client.send(head.as_bytes());
            client.send(&chunked(&pattern(two_mib), 64 << 10, ""));
            client.response().status
        })
    };
    assert_eq!(chunked_upload(), 200);
    assert_eq!(app.requests(), 3);
    // A reload puts the routes as written now in force.
    proxy.reload(&[], from_file(&text("route./upload/ = default\n")));
    assert_eq!(post_of(&proxy, "/upload/photo", two_mib, false), 413);
}

/// A backend that answers `/wait/<ms>/...` and `/stall/<ms>/...` that
/// many milliseconds late (a stall: after the head and half the body),
/// the rest at once, each with a body of 10 bytes.
fn late_backend() -> Backend {
    use std::io::Write as _;
    Backend::start("late", |seen, out| {
        let path = seen.path().to_string();
        let mut parts = path.split('/').skip(1);
        let (how, ms) = (parts.next(), parts.next().and_then(|ms| ms.parse().ok()));
        let late = Duration::from_millis(ms.unwrap_or(0));
        if how == Some("wait") {
            std::thread::sleep(late);
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345";
        if out.write_all(head.as_bytes()).is_err() {
            return Action::Close;
        }
        if how == Some("stall") {
            std::thread::sleep(late);
        }
        match out.write_all(b"67890") {
            Ok(()) => Action::KeepAlive,
            Err(_) => Action::Close,
        }
    })
}

#[test]
fn a_route_s_backend_timeout_cuts_its_requests_alone() {
    // HAProxy's `http-request set-timeout server 1s if { path_beg
    // /wait/2000/ }`: the route waits 1 s, the rest of the site 30 s, on
    // the same backend's connections. Without the cache, the wait for
    // the head watches the client too; with it (a response it may
    // store), the socket's timeouts alone bound it.
    for cache_size in [0, 1 << 20] {
        backend_timeouts_of_routes(cache_size);
    }
}

fn backend_timeouts_of_routes(cache_size: u64) {
    let late = late_backend();
    let mut tweak = Some(from_file(&format!(
        "targets = {}\nbackend_timeout = 30s\n\
         route./wait/2000/ = default backend_timeout=1s\n\
         route./wait/0/ = default backend_timeout=1s\n\
         route./stall/2000/ = default backend_timeout=1s\n",
        late.addr
    )));
    let proxy = start_proxy(&[], |c| {
        (tweak.take().unwrap())(c);
        c.cache_size = cache_size;
    });
    let status = |path: &str| proxy.get_on("site.test", path, &[]).status;
    // The head 2 s late: 504 at 1 s.
    assert_eq!(status("/wait/2000/report"), 504, "cache_size {cache_size}");
    // Answered at once on the route: its connection goes back to the pool
    // with the route's timeout on it...
    assert_eq!(status("/wait/0/x"), 200);
    let connections = late.connections();
    // ...and the next request on it, the pool's, waits the pool's 30 s.
    assert_eq!(status("/wait/1500/export"), 200, "cache_size {cache_size}");
    assert_eq!(late.connections(), connections, "not the pooled connection");
    // A body that stalls past the route's timeout is cut short there.
    let cut = proxy.exchange(|client| {
        client.send(b"GET /stall/2000/x HTTP/1.1\r\nHost: site.test\r\n\r\n");
        client.try_response(false).map(|r| r.status)
    });
    assert!(cut.is_err(), "the stalled body came whole: {cut:?}");
    let whole = proxy.exchange(|client| {
        client.send(b"GET /stall/1500/x HTTP/1.1\r\nHost: site.test\r\n\r\n");
        client.try_response(false).map(|r| r.body)
    });
    assert_eq!(whole.unwrap(), b"1234567890", "cache_size {cache_size}");
}

#[test]
fn a_route_s_cache_off_keeps_its_answers_from_the_cache_as_a_pool_s_would() {
    // nginx's `location /account/ { proxy_cache off; proxy_pass
    // http://app; }`; and `cache=on` for a feed of a pool kept from it.
    let (app, api) = (cacheable_echo("app"), cacheable_echo("api"));
    let mut tweak = Some(from_file(&format!(
        "targets = {}\npool.api = {}\npool.api.cache = false\nroute./api/ = api\n\
         route./api/feed = api cache=on\nroute./account/ = default cache=off\n\
         cache_status = edge\n",
        app.addr, api.addr
    )));
    let proxy = start_proxy(&[], |c| {
        (tweak.take().unwrap())(c);
        c.cache_size = 1 << 20;
    });
    assert_eq!(x_caches(&proxy, "/", &[&[], &[]]), ["MISS", "HIT"]);
    assert_eq!(app.requests(), 1);
    // As from a pool with `cache = false`: asked each time, and no word
    // of a cache.
    for _ in 0..2 {
        let r = proxy.get_on("site.test", "/account/me", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-cache"), None, "{}", r.head.raw);
        assert_eq!(r.header("cache-status"), None, "{}", r.head.raw);
    }
    assert_eq!(app.requests(), 3);
    assert_eq!(x_caches(&proxy, "/api/feed", &[&[], &[]]), ["MISS", "HIT"]);
    assert_eq!(x_caches(&proxy, "/api/users", &[&[], &[]]), ["-", "-"]);
    assert_eq!(api.requests(), 3);
}

// ----------------------------------------------------------- the scheme

/// The proxy in front that says a request came over HTTPS: 127.0.0.1,
/// in `real_ip_from`; 127.0.0.2 is a client that reached the port itself.
const IN_FRONT: [u8; 4] = [127, 0, 0, 1];
const ITSELF: [u8; 4] = [127, 0, 0, 2];
const OVER_TLS: &[(&str, &str)] = &[("X-Forwarded-Proto", "https")];

/// `GET target` on `Host: host` with `fields`, from `source`, on a
/// connection of its own, waited out as [`Proxy::exchange`] does.
fn get_from(
    proxy: &Proxy,
    source: [u8; 4],
    host: &str,
    target: &str,
    fields: &[(&str, &str)],
) -> Response {
    let mut client = Client::connect_from(source.into(), proxy.addr);
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in fields {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    client.send(format!("{request}\r\n").as_bytes());
    let r = client.response();
    drop(client);
    proxy.assert_becomes_idle();
    r
}

/// The backend that answered `r` (`-` for none) and its `X-Cache`.
fn answered(r: &Response) -> (String, String) {
    let backend = r.header("x-backend").unwrap_or("-").to_string();
    (backend, x_cache(r).to_string())
}

fn pair(backend: &str, cache: &str) -> (String, String) {
    (backend.to_string(), cache.to_string())
}

#[test]
fn an_https_route_takes_the_requests_that_are_https_each_scheme_cached_apart() {
    let (main, secure) = (cacheable_echo("main"), cacheable_echo("secure"));
    let proxy = start_proxy(&[], |c: &mut Config| {
        from_file(&format!(
            "targets = {}\npool.secure = {}\nreal_ip_from = 127.0.0.1\n\
             route./ if https = secure\n",
            main.addr, secure.addr
        ))(c);
        c.cache_size = 1 << 20;
    });
    let get = |source, fields: &[(&str, &str)]| {
        answered(&get_from(&proxy, source, "site.test", "/page", fields))
    };
    // One URL, a pool per scheme: neither answered with what the other
    // stored (the scheme is in the cache's key), each cached.
    assert_eq!(get(IN_FRONT, OVER_TLS), pair("secure", "MISS"));
    assert_eq!(get(IN_FRONT, &[]), pair("main", "MISS"));
    assert_eq!(get(IN_FRONT, OVER_TLS), pair("secure", "HIT"));
    assert_eq!(
        get(IN_FRONT, &[("X-Forwarded-Proto", "http")]),
        pair("main", "HIT")
    );
    // A client's own claim is not the word of a proxy in front.
    assert_eq!(get(ITSELF, OVER_TLS), pair("main", "HIT"));
    assert_eq!((main.requests(), secure.requests()), (1, 1));
}

#[test]
fn an_https_route_is_taken_over_a_proxy_header_s_tls_and_not_over_plain_http() {
    // A balancer's PROXY v2 header with its SSL field, as
    // `redirect_to_https` reads it.
    let (main, secure) = (Backend::echo("main"), Backend::echo("secure"));
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\npool.secure = {}\nproxy_protocol = true\n\
             route./ if https = secure\n",
            main.addr, secure.addr
        )),
    );
    let header = |ssl: bool| {
        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00".to_vec();
        v2.push(if ssl { 0x14 } else { 0x0c });
        v2.extend_from_slice(&[198, 51, 100, 9, 127, 0, 0, 1, 0x30, 0x39, 0, 80]);
        if ssl {
            v2.extend_from_slice(&[0x20, 0, 5, 0x01, 0, 0, 0, 0]);
        }
        v2
    };
    for (ssl, backend) in [(true, "secure"), (false, "main")] {
        let mut client = proxy.connect();
        client.send(&header(ssl));
        client.send(b"GET /p HTTP/1.1\r\nHost: site.test\r\nX-Forwarded-Proto: https\r\n\r\n");
        assert_eq!(
            client.response().header("x-backend"),
            Some(backend),
            "{ssl}"
        );
    }
}

#[test]
fn a_deny_rule_refuses_what_is_not_https() {
    let main = Backend::echo("main");
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nreal_ip_from = 127.0.0.1\n\
             deny.plain_admin = if not https and path_beg /admin/\n",
            main.addr
        )),
    );
    let status = |source, target, fields: &[(&str, &str)]| {
        get_from(&proxy, source, "site.test", target, fields)
    };
    assert_eq!(status(IN_FRONT, "/admin/x", OVER_TLS).status, 200);
    assert_eq!(status(IN_FRONT, "/admin/x", &[]).status, 403);
    assert_eq!(status(ITSELF, "/admin/x", OVER_TLS).status, 403);
    assert_eq!(status(ITSELF, "/page", &[]).status, 200);
    assert_eq!(main.requests(), 2);
}

#[test]
fn a_host_redirected_by_a_route_on_the_scheme_keeps_its_path_and_query() {
    // README's recipe: one site sent to HTTPS, a legacy one left on HTTP.
    let (shop, legacy) = (Backend::echo("shop"), Backend::echo("legacy"));
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\npool.legacy = {}\nreal_ip_from = 127.0.0.1\n\
             route.legacy.example.com = legacy\n\
             route.shop.example.com if not https = redirect 301 https://shop.example.com\n",
            shop.addr, legacy.addr
        )),
    );
    let r = get_from(
        &proxy,
        IN_FRONT,
        "Shop.Example.com",
        "/cart?item=7&q=a%20b",
        &[],
    );
    assert_eq!(r.status, 301, "{}", r.head.raw);
    assert_eq!(
        r.header("location"),
        Some("https://shop.example.com/cart?item=7&q=a%20b")
    );
    let r = get_from(&proxy, ITSELF, "shop.example.com", "/", OVER_TLS);
    assert_eq!(r.header("location"), Some("https://shop.example.com/"));
    let r = get_from(&proxy, IN_FRONT, "shop.example.com", "/cart", OVER_TLS);
    assert_eq!(answered(&r).0, "shop");
    let r = get_from(&proxy, IN_FRONT, "legacy.example.com", "/p?x=1", &[]);
    assert_eq!((r.status, answered(&r).0), (200, "legacy".into()));
    assert_eq!((shop.requests(), legacy.requests()), (1, 1));
}

#[test]
fn a_pool_redirects_to_https_or_stays_on_plain_http_as_its_own_key_says() {
    let (shop, legacy) = (Backend::echo("shop"), Backend::echo("legacy"));
    let (shop_addr, legacy_addr) = (shop.addr, legacy.addr);
    let start = |keys: &str| {
        start_proxy(
            &[],
            from_file(&format!(
                "targets = {shop_addr}\npool.legacy = {legacy_addr}\nreal_ip_from = 127.0.0.1\n\
                 route.legacy.example.com = legacy\nredirect_to_https_except = /healthz\n{keys}"
            )),
        )
    };
    let get = |proxy: &Proxy, host: &str, target: &str, fields: &[(&str, &str)]| {
        let r = get_from(proxy, IN_FRONT, host, target, fields);
        (
            r.status,
            r.header("location").unwrap_or("-").to_string(),
            answered(&r).0,
        )
    };
    let redirected = |to: &str| (301, to.to_string(), "-".to_string());
    let served = |by: &str| (200, "-".to_string(), by.to_string());
    // Everything but the legacy site, or the legacy site alone.
    for keys in [
        "redirect_to_https = true\npool.legacy.redirect_to_https = false\n",
        "pool.legacy.redirect_to_https = true\n",
    ] {
        let proxy = start(keys);
        let legacy_redirects = !keys.starts_with("redirect_to_https = true");
        let (shop_plain, legacy_plain) = match legacy_redirects {
            false => (
                redirected("https://shop.example.com/cart?x=1"),
                served("legacy"),
            ),
            true => (
                served("shop"),
                redirected("https://legacy.example.com/cart?x=1"),
            ),
        };
        assert_eq!(
            get(&proxy, "shop.example.com", "/cart?x=1", &[]),
            shop_plain,
            "{keys}"
        );
        assert_eq!(
            get(&proxy, "legacy.example.com", "/cart?x=1", &[]),
            legacy_plain,
            "{keys}"
        );
        // Over HTTPS, and the top level's exceptions, served either way.
        for host in ["shop.example.com", "legacy.example.com"] {
            let by = host.split('.').next().unwrap();
            assert_eq!(get(&proxy, host, "/cart", OVER_TLS), served(by), "{keys}");
            assert_eq!(get(&proxy, host, "/healthz", &[]), served(by), "{keys}");
        }
    }
}

#[test]
fn what_an_https_route_stored_is_loaded_from_a_snapshot_under_its_pool() {
    // Only the HTTPS pool caches: its entry, under the `https://` key,
    // comes back at the next start, judged by that pool's rules.
    let (main, secure) = (cacheable_echo("main"), cacheable_echo("secure"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.bin");
    let start = || {
        let mut tweak = Some(from_file(&format!(
            "targets = {}\ncache = false\npool.secure = {}\npool.secure.cache = true\n\
             real_ip_from = 127.0.0.1\nroute./ if https = secure\n",
            main.addr, secure.addr
        )));
        start_proxy(&[], |c| {
            (tweak.take().unwrap())(c);
            c.cache_size = 1 << 20;
            c.path_to_persistence = Some(file.clone());
        })
    };
    let mut first = start();
    assert_eq!(
        x_caches(&first, "/page", &[OVER_TLS, OVER_TLS]),
        ["MISS", "HIT"]
    );
    assert!(first.shutdown(Duration::from_secs(5)));
    let second = start();
    assert_eq!(second.handle().cache().expect("a cache").len(), 1);
    assert_eq!(x_caches(&second, "/page", &[OVER_TLS]), ["HIT"]);
    // Plain HTTP goes to `targets`, which caches nothing.
    assert_eq!(x_caches(&second, "/page", &[&[]]), ["-"]);
    assert_eq!((secure.requests(), main.requests()), (1, 1));
}
