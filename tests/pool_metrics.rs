//! Each pool's totals: `inverso_pool_requests_total{pool,class}` counts
//! the answers the clients of the requests routed to a pool got (a
//! backend's, a cache hit, the proxy's own errors), and
//! `inverso_pool_targets_usable{pool}` how many of its targets may take a
//! request now; `/status` has both in its `pools` array. The counts go on
//! across a reload for a pool that keeps its name.
//!
//! Pools and routes are written as proxy.conf is and read by the
//! configuration loader (see `support::from_file`).

mod support;

use support::*;

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// `inverso_pool_requests_total` of `pool`, in class order (each sample
/// must be on the page).
#[track_caller]
fn pool_requests(proxy: &Proxy, pool: &str) -> [u64; 5] {
    CLASSES.map(|class| {
        let sample = format!("inverso_pool_requests_total{{pool=\"{pool}\",class=\"{class}\"}}");
        (proxy.metric(&sample)).unwrap_or_else(|| panic!("no {sample}"))
    })
}

/// `inverso_pool_targets_usable` of `pool`.
#[track_caller]
fn usable(proxy: &Proxy, pool: &str) -> u64 {
    let sample = format!("inverso_pool_targets_usable{{pool=\"{pool}\"}}");
    (proxy.metric(&sample)).unwrap_or_else(|| panic!("no {sample}"))
}

/// `/status`'s `pools` array, as written.
fn status_pools(proxy: &Proxy) -> String {
    let response = proxy.admin("GET", "/status", "");
    assert_eq!(response.status, 200);
    let body = response.body_str();
    let (_, rest) = body.split_once("\"pools\":").expect("pools");
    let (pools, _) = rest
        .split_once(",\"streams\":")
        .expect("streams after pools");
    pools.to_string()
}

/// `PUT /targets/<target>` with `state` on the admin listener.
#[track_caller]
fn set_state(proxy: &Proxy, target: &str, state: &str) {
    let r = proxy.admin("PUT", &format!("/targets/{target}"), state);
    assert_eq!(r.status, 200, "{}", r.body_str());
}

#[test]
fn each_pool_counts_what_its_clients_were_answered_by_class() {
    let (main, api, closed) = (
        Backend::echo("main"),
        Backend::echo("api"),
        Backend::echo("closed"),
    );
    let dead = dead_addr();
    let mut tweak = Some(from_file_with_admin(&format!(
        "targets = {}\n\
         cache = false\n\
         pool.api = {}\n\
         pool.api.cache = true\n\
         pool.api.cache_valid = 200 1m\n\
         pool.dead = {dead}\n\
         pool.dead.max_fails = 1\n\
         pool.dead.fail_timeout = 1h\n\
         pool.closed = {}\n\
         pool.closed.allow_from = 10.0.0.0/8\n\
         route./api/ = api\n\
         route./dead/ = dead\n\
         route./closed/ = closed\n\
         route./old/ = redirect 301 /new/\n",
        main.addr, api.addr, closed.addr
    )));
    let proxy = start_proxy(&[], |c| {
        (tweak.take().unwrap())(c);
        c.cache_size = 1 << 20;
    });
    // Every pool is on the page from the start, at 0.
    for pool in ["default", "api", "dead", "closed"] {
        assert_eq!(pool_requests(&proxy, pool), [0; 5], "{pool}");
    }

    let r = proxy.get_on("site.test", "/x", &[]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    // A miss, then a hit: both the API's, though the second never
    // reached its backend.
    for cache in ["MISS", "HIT"] {
        let r = proxy.get_on("site.test", "/api/users", &[]);
        assert_eq!(r.status, 200, "{}", r.head.raw);
        assert_eq!(x_cache(&r), cache, "{}", r.head.raw);
    }
    assert_eq!(api.requests(), 1);
    // The proxy's own answers, once routed: a 502 for a backend that
    // refuses connections, a 403 for a client the pool does not admit.
    let r = proxy.get_on("site.test", "/dead/x", &[]);
    assert_eq!(r.status, 502, "{}", r.head.raw);
    let r = proxy.get_on("site.test", "/closed/x", &[]);
    assert_eq!(r.status, 403, "{}", r.head.raw);
    assert_eq!(closed.requests(), 0);
    // A redirect route's answer goes to no pool.
    let r = proxy.get_on("site.test", "/old/x", &[]);
    assert_eq!(r.status, 301, "{}", r.head.raw);

    assert_eq!(pool_requests(&proxy, "default"), [0, 1, 0, 0, 0]);
    assert_eq!(pool_requests(&proxy, "api"), [0, 2, 0, 0, 0]);
    assert_eq!(pool_requests(&proxy, "dead"), [0, 0, 0, 0, 1]);
    assert_eq!(pool_requests(&proxy, "closed"), [0, 0, 0, 1, 0]);
    // The redirect is in the process-wide count alone.
    let total = |class: &str| {
        let sample = format!("inverso_requests_total{{class=\"{class}\"}}");
        proxy.metric(&sample).unwrap()
    };
    assert_eq!(CLASSES.map(total), [0, 3, 1, 1, 1]);
    assert_eq!(main.requests(), 1);
    // The dead backend is out for its hour; the others' are up.
    assert_eq!(usable(&proxy, "dead"), 0);
    assert_eq!(usable(&proxy, "api"), 1);
    assert_eq!(usable(&proxy, "default"), 1);
}

#[test]
fn a_pool_whose_only_target_is_in_maintenance_has_none_usable() {
    let (main, api) = (Backend::echo("main"), Backend::echo("api"));
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\npool.api = {}\nroute./api/ = api\n",
            main.addr, api.addr
        )),
    );
    assert_eq!(usable(&proxy, "api"), 1);
    set_state(&proxy, &api.addr.to_string(), "maint");
    assert_eq!(usable(&proxy, "api"), 0);
    assert!(status_pools(&proxy).contains("{\"name\":\"api\",\"targets\":1,\"usable\":0,"));
    // Its requests fail (the proxy's 503), and are counted as its own.
    let r = proxy.get_on("site.test", "/api/x", &[]);
    assert_eq!(r.status, 503, "{}", r.head.raw);
    assert_eq!(api.requests(), 0);
    assert_eq!(pool_requests(&proxy, "api"), [0, 0, 0, 0, 1]);
    // The other pool is not touched.
    assert_eq!(usable(&proxy, "default"), 1);
    // And back.
    set_state(&proxy, &api.addr.to_string(), "ready");
    assert_eq!(usable(&proxy, "api"), 1);
    let r = proxy.get_on("site.test", "/api/x", &[]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(pool_requests(&proxy, "api"), [0, 1, 0, 0, 1]);
}

#[test]
fn a_drained_target_is_not_usable_either() {
    let (main, a, b) = (
        Backend::echo("main"),
        Backend::echo("a"),
        Backend::echo("b"),
    );
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\npool.api = {}, {}\nroute./api/ = api\n",
            main.addr, a.addr, b.addr
        )),
    );
    assert_eq!(usable(&proxy, "api"), 2);
    set_state(&proxy, &a.addr.to_string(), "drain");
    assert_eq!(usable(&proxy, "api"), 1);
    set_state(&proxy, &b.addr.to_string(), "maint");
    assert_eq!(usable(&proxy, "api"), 0);
}

#[test]
fn a_kept_pool_keeps_its_counts_across_a_reload_and_a_new_one_starts_at_zero() {
    let (main, api, fresh) = (
        Backend::echo("main"),
        Backend::echo("api"),
        Backend::echo("fresh"),
    );
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\npool.api = {}\nroute./api/ = api\n",
            main.addr, api.addr
        )),
    );
    for path in ["/api/a", "/api/b", "/x"] {
        assert_eq!(proxy.get_on("site.test", path, &[]).status, 200, "{path}");
    }
    assert_eq!(pool_requests(&proxy, "api"), [0, 2, 0, 0, 0]);
    // `api` stays, under another route; `fresh` is new.
    proxy.reload(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\npool.api = {}\npool.fresh = {}\n\
             route./v2/ = api\nroute./fresh/ = fresh\n",
            main.addr, api.addr, fresh.addr
        )),
    );
    assert_eq!(pool_requests(&proxy, "api"), [0, 2, 0, 0, 0]);
    assert_eq!(pool_requests(&proxy, "default"), [0, 1, 0, 0, 0]);
    assert_eq!(pool_requests(&proxy, "fresh"), [0; 5]);
    assert_eq!(usable(&proxy, "fresh"), 1);
    // The counts go on from where they were.
    assert_eq!(proxy.get_on("site.test", "/v2/a", &[]).status, 200);
    assert_eq!(proxy.get_on("site.test", "/fresh/a", &[]).status, 200);
    // What /api/ took goes to targets now.
    assert_eq!(proxy.get_on("site.test", "/api/a", &[]).status, 200);
    assert_eq!(pool_requests(&proxy, "api"), [0, 3, 0, 0, 0]);
    assert_eq!(pool_requests(&proxy, "fresh"), [0, 1, 0, 0, 0]);
    assert_eq!(pool_requests(&proxy, "default"), [0, 2, 0, 0, 0]);
    assert_eq!((api.requests(), fresh.requests()), (3, 1));

    // A pool renamed is a new pool: `api`'s counts are not `api2`'s.
    proxy.reload(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\npool.api2 = {}\nroute./api/ = api2\n",
            main.addr, api.addr
        )),
    );
    assert_eq!(pool_requests(&proxy, "api2"), [0; 5]);
    let page = proxy.admin("GET", "/metrics", "").body_str();
    assert!(!page.contains("pool=\"api\",class="), "{page}");
}

#[test]
fn status_lists_each_pool_with_its_targets_usable_and_requests() {
    let main = Backend::echo("main");
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\npool.api = {}, {}\nroute./api/ = api\n\
             route./old/ = redirect 308 /new/\n",
            main.addr, a.addr, b.addr
        )),
    );
    for path in ["/api/a", "/x", "/old/x"] {
        proxy.get_on("site.test", path, &[]);
    }
    set_state(&proxy, &b.addr.to_string(), "maint");
    assert_eq!(
        status_pools(&proxy),
        "[{\"name\":\"default\",\"targets\":1,\"usable\":1,\"queued\":0,\
         \"requests\":{\"1xx\":0,\"2xx\":1,\"3xx\":0,\"4xx\":0,\"5xx\":0}},\
         {\"name\":\"api\",\"targets\":2,\"usable\":1,\"queued\":0,\
         \"requests\":{\"1xx\":0,\"2xx\":1,\"3xx\":0,\"4xx\":0,\"5xx\":0}}]"
    );
    // The fields that were there are still there, the targets first.
    let body = proxy.admin("GET", "/status", "").body_str();
    assert!(
        body.starts_with("{\"shutting_down\":false,\"connections\":"),
        "{body}"
    );
    assert!(body.contains("\"requests\":3,\"targets\":["), "{body}");
    assert!(body.contains("],\"pools\":[{"), "{body}");
}
