//! `cache_key_ignore_params`: query parameters left out of the cache key
//! (marketing trackers such as `utm_source`, `gclid`), while the backend
//! still gets the query as the client sent it.
//!
//! The origin numbers its responses and echoes the target it received
//! (`TARGET #N`), so a body tells both whether it came from the cache (an
//! old number) and what the backend was asked; its request counter says
//! the same from the other side. Responses say `max-age=60`.

mod support;

use inverso::cache::policy::IgnoredParams;
use inverso::Config;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::*;

const TRACKERS: &str = "utm_*, gclid, fbclid";

fn cache_on(c: &mut Config, ignored: &str) {
    c.cache_size = 4 << 20;
    c.max_object_size = Some(256 * 1024);
    c.cache_key_ignore_params = IgnoredParams::parse(ignored).unwrap();
}

/// A backend answering `status` with `fields` (and `Cache-Control:
/// max-age=60`), the body `TARGET #N`, N counting its responses from 1.
fn origin_with(status: u16, fields: &'static [(&'static str, &'static str)]) -> Backend {
    let numbered = AtomicUsize::new(0);
    Backend::start("origin", move |seen, out| {
        let n = numbered.fetch_add(1, Ordering::SeqCst) + 1;
        let mut all = vec![("Cache-Control", "max-age=60")];
        all.extend_from_slice(fields);
        let body = format!("{} #{n}", seen.path());
        respond(out, status, &all, body.as_bytes());
        Action::KeepAlive
    })
}

fn origin() -> Backend {
    origin_with(200, &[])
}

fn proxy_for(backend: &Backend, ignored: &str) -> Proxy {
    start_proxy(&[backend.addr], |c| cache_on(c, ignored))
}

// One request per connection, each returning once the proxy is done with
// it (see `Proxy::exchange`): the next one sees what it stored.

fn get(proxy: &Proxy, path: &str) -> Response {
    get_with(proxy, path, &[])
}

fn get_with(proxy: &Proxy, path: &str, fields: &[(&str, &str)]) -> Response {
    proxy.exchange(|c| c.get_with(path, fields))
}

/// The targets the backend was sent, in order.
fn targets_seen(backend: &Backend) -> Vec<String> {
    backend
        .seen()
        .iter()
        .map(|s| s.path().to_string())
        .collect()
}

/// A request to the admin listener at `addr`.
fn admin(addr: SocketAddr, method: &str, target: &str) -> Response {
    let mut client = Client::connect(addr);
    client.send(format!("{method} {target} HTTP/1.1\r\nHost: test.example\r\n\r\n").as_bytes());
    client.response()
}

#[test]
fn urls_differing_only_in_an_ignored_param_share_one_entry() {
    let backend = origin();
    let proxy = proxy_for(&backend, TRACKERS);
    let first = "/p?utm_source=news&id=3";
    expect(&get(&proxy, first), 200, "MISS", &format!("{first} #1"));
    // Another tracker value, another place, another tracker, none.
    for hit in [
        "/p?id=3&utm_source=ads",
        "/p?gclid=xyz&id=3&utm_medium=email",
        "/p?id=3",
        "/p?id=3&&fbclid",
    ] {
        expect(&get(&proxy, hit), 200, "HIT", &format!("{first} #1"));
    }
    assert_eq!(backend.requests(), 1);
    // The backend got the query as the client sent it.
    assert_eq!(targets_seen(&backend), [first]);
    // A HEAD is answered from the same entry.
    let r = proxy.exchange(|c| c.head("/p?id=3&gclid=1"));
    assert_eq!((r.status, x_cache(&r)), (200, "HIT"), "{}", r.head.raw);

    // All trackers: the key of the URL without a query.
    let tracked = "/q?utm_campaign=spring";
    expect(&get(&proxy, tracked), 200, "MISS", &format!("{tracked} #2"));
    expect(&get(&proxy, "/q"), 200, "HIT", &format!("{tracked} #2"));
    expect(
        &get(&proxy, "/q?gclid=1"),
        200,
        "HIT",
        &format!("{tracked} #2"),
    );
    assert_eq!(targets_seen(&backend), [first, tracked]);
}

#[test]
fn a_param_not_listed_still_makes_an_entry_of_its_own() {
    let backend = origin();
    let proxy = proxy_for(&backend, TRACKERS);
    expect(
        &get(&proxy, "/p?id=3&gclid=a"),
        200,
        "MISS",
        "/p?id=3&gclid=a #1",
    );
    expect(
        &get(&proxy, "/p?id=3&gclid=b"),
        200,
        "HIT",
        "/p?id=3&gclid=a #1",
    );
    expect(
        &get(&proxy, "/p?id=4&gclid=a"),
        200,
        "MISS",
        "/p?id=4&gclid=a #2",
    );
    // Names are compared whole and with their case.
    expect(
        &get(&proxy, "/p?id=3&GCLID=a"),
        200,
        "MISS",
        "/p?id=3&GCLID=a #3",
    );
    expect(
        &get(&proxy, "/p?id=3&gclid2=a"),
        200,
        "MISS",
        "/p?id=3&gclid2=a #4",
    );
    // The order of the others counts: not sorted.
    expect(
        &get(&proxy, "/s?a=1&b=2&gclid=1"),
        200,
        "MISS",
        "/s?a=1&b=2&gclid=1 #5",
    );
    expect(
        &get(&proxy, "/s?b=2&gclid=2&a=1"),
        200,
        "MISS",
        "/s?b=2&gclid=2&a=1 #6",
    );
    expect(
        &get(&proxy, "/s?a=1&gclid=3&b=2"),
        200,
        "HIT",
        "/s?a=1&b=2&gclid=1 #5",
    );
    assert_eq!(backend.requests(), 6);
}

/// A backend whose query parser splits at `;` as well as `&` (Rack 2,
/// Python's `parse_qs` before 3.9.2, Go before 1.17) reads a parameter
/// hidden after a `;` in an ignored one: left out of the key, it would
/// change the answer and not the key ("parameter cloaking"). Such a
/// parameter stays in the key.
#[test]
fn a_param_cloaked_after_a_semicolon_in_an_ignored_one_keys_its_own_entry() {
    // Pairs split at `&` and `;`, the last value wins.
    let backend = Backend::start("origin", |seen, out| {
        let query = seen.path().split_once('?').map_or("", |(_, q)| q);
        let mut callback = "none";
        for pair in query.split(['&', ';']) {
            if let Some(("callback", v)) = pair.split_once('=') {
                callback = v;
            }
        }
        let body = format!("{callback}({{\"ok\":1}})");
        let fields = [
            ("Cache-Control", "public, max-age=60"),
            ("Content-Type", "application/javascript"),
        ];
        respond(out, 200, &fields, body.as_bytes());
        Action::KeepAlive
    });
    let proxy = proxy_for(&backend, TRACKERS);
    let cloaked = "/api?callback=render&utm_source=x;callback=alert(1)";
    expect(&get(&proxy, cloaked), 200, "MISS", "alert(1)({\"ok\":1})");
    // Stored under the URL as sent, not under `?callback=render`.
    expect(
        &get(&proxy, "/api?callback=render"),
        200,
        "MISS",
        "render({\"ok\":1})",
    );
    expect(&get(&proxy, cloaked), 200, "HIT", "alert(1)({\"ok\":1})");
    // A tracker without a `;`, or with only trackers after it, is left
    // out as ever.
    for tracked in [
        "/api?callback=render&utm_source=y",
        "/api?callback=render&utm_source=y;utm_medium=z",
    ] {
        expect(&get(&proxy, tracked), 200, "HIT", "render({\"ok\":1})");
    }
    assert_eq!(backend.requests(), 2);
}

#[test]
fn variants_of_a_vary_response_are_keyed_without_the_ignored_params() {
    let backend = origin_with(200, &[("Vary", "Accept-Language")]);
    let proxy = proxy_for(&backend, TRACKERS);
    let de = [("Accept-Language", "de")];
    let en = [("Accept-Language", "en")];
    expect(
        &get_with(&proxy, "/v?gclid=1", &de),
        200,
        "MISS",
        "/v?gclid=1 #1",
    );
    expect(
        &get_with(&proxy, "/v?gclid=2", &en),
        200,
        "MISS",
        "/v?gclid=2 #2",
    );
    expect(
        &get_with(&proxy, "/v?utm_id=3", &de),
        200,
        "HIT",
        "/v?gclid=1 #1",
    );
    expect(&get_with(&proxy, "/v", &en), 200, "HIT", "/v?gclid=2 #2");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_range_request_with_a_tracker_is_cut_from_the_entry() {
    let backend = origin();
    let proxy = proxy_for(&backend, TRACKERS);
    expect(&get(&proxy, "/r?id=1"), 200, "MISS", "/r?id=1 #1");
    let r = get_with(&proxy, "/r?utm_source=x&id=1", &[("Range", "bytes=0-3")]);
    assert_eq!(
        (r.status, x_cache(&r), r.body_str().as_str()),
        (206, "HIT", "/r?i"),
        "{}",
        r.head.raw
    );
    assert_eq!(backend.requests(), 1);
}

#[test]
fn concurrent_misses_differing_in_a_tracker_reach_the_origin_once() {
    const CLIENTS: usize = 4;
    let sent = Arc::new(AtomicUsize::new(0));
    let backend = one_body_once_all_sent(&sent, CLIENTS);
    let proxy = proxy_for(&backend, TRACKERS);
    let addr = proxy.addr;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let sent = sent.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let request = format!("GET /co?gclid={i} HTTP/1.1\r\nHost: test.example\r\n\r\n");
                client.send(request.as_bytes());
                sent.fetch_add(1, Ordering::SeqCst);
                client.response()
            })
        })
        .collect();
    let responses: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(backend.requests(), 1);
    for r in &responses {
        assert_eq!(r.body_str(), "the one body", "{}", r.head.raw);
    }
    let hits = responses.iter().filter(|r| x_cache(r) == "HIT").count();
    assert_eq!(hits, CLIENTS - 1);
}

#[test]
fn purge_with_a_tracker_purges_the_entry() {
    let backend = origin();
    let proxy = start_proxy(&[backend.addr], |c| {
        cache_on(c, TRACKERS);
        c.admin_port = Some(0);
    });
    let admin_addr = proxy.handle().admin_addr().unwrap();
    expect(
        &get(&proxy, "/p?id=3&gclid=a"),
        200,
        "MISS",
        "/p?id=3&gclid=a #1",
    );
    expect(&get(&proxy, "/p?id=3"), 200, "HIT", "/p?id=3&gclid=a #1");

    let purged = admin(admin_addr, "PURGE", "/p?utm_source=x&id=3");
    assert_eq!(purged.status, 200, "{}", purged.body_str());
    assert!(
        purged
            .body_str()
            .contains("\"key\":\"test.example/p?id=3\""),
        "{}",
        purged.body_str()
    );
    expect(
        &get(&proxy, "/p?id=3&gclid=b"),
        200,
        "MISS",
        "/p?id=3&gclid=b #2",
    );

    // A URL with nothing but trackers purges the one without a query.
    expect(&get(&proxy, "/q"), 200, "MISS", "/q #3");
    assert_eq!(admin(admin_addr, "PURGE", "/q?fbclid=1").status, 200);
    assert_eq!(admin(admin_addr, "PURGE", "/q").status, 404);
}

#[test]
fn an_unsafe_request_with_a_tracker_invalidates_the_entry() {
    let backend = origin();
    let proxy = proxy_for(&backend, TRACKERS);
    expect(&get(&proxy, "/i?id=1"), 200, "MISS", "/i?id=1 #1");
    expect(&get(&proxy, "/i?id=1&gclid=2"), 200, "HIT", "/i?id=1 #1");
    let r = proxy.exchange(|c| c.post("/i?utm_source=mail&id=1", b"comment"));
    assert_eq!((r.status, x_cache(&r)), (200, "BYPASS"), "{}", r.head.raw);
    // The POST reached the backend as sent.
    assert_eq!(targets_seen(&backend)[1], "/i?utm_source=mail&id=1");
    expect(&get(&proxy, "/i?id=1"), 200, "MISS", "/i?id=1 #3");
}

#[test]
fn a_location_with_a_tracker_invalidates_the_entry_it_names() {
    let backend = origin_with(200, &[("Location", "/done?utm_source=form&id=7")]);
    let proxy = proxy_for(&backend, TRACKERS);
    expect(&get(&proxy, "/done?id=7"), 200, "MISS", "/done?id=7 #1");
    expect(&get(&proxy, "/done?id=7"), 200, "HIT", "/done?id=7 #1");
    let r = proxy.exchange(|c| c.post("/form", b"sent"));
    assert_eq!(r.status, 200, "{}", r.head.raw);
    expect(&get(&proxy, "/done?id=7"), 200, "MISS", "/done?id=7 #3");
}

#[test]
fn a_reload_changes_the_rule_and_leaves_entries_under_their_old_keys() {
    let backend = origin();
    let proxy = proxy_for(&backend, "");
    expect(&get(&proxy, "/r?gclid=1"), 200, "MISS", "/r?gclid=1 #1");
    expect(&get(&proxy, "/r?gclid=2"), 200, "MISS", "/r?gclid=2 #2");

    let reload = |ignored: &str| {
        let mut next = Config::with_targets(vec![target(backend.addr)]);
        next.log_to_stdout = false;
        next.path_to_persistence = None;
        cache_on(&mut next, ignored);
        proxy.handle().control().reload(next).unwrap();
    };
    reload("gclid");
    expect(&get(&proxy, "/r?gclid=3"), 200, "MISS", "/r?gclid=3 #3");
    expect(&get(&proxy, "/r?gclid=4"), 200, "HIT", "/r?gclid=3 #3");
    expect(&get(&proxy, "/r"), 200, "HIT", "/r?gclid=3 #3");
    assert_eq!(backend.requests(), 3);

    // Off again: each URL is its own key once more. What was stored
    // under the old rule stays under its key, and a key of either rule
    // answers again when a request spells it.
    reload("");
    expect(&get(&proxy, "/r?gclid=4"), 200, "MISS", "/r?gclid=4 #4");
    expect(&get(&proxy, "/r?gclid=2"), 200, "HIT", "/r?gclid=2 #2");
    expect(&get(&proxy, "/r"), 200, "HIT", "/r?gclid=3 #3");
    assert_eq!(backend.requests(), 4);
}

#[test]
fn a_prefix_purge_with_trackers_reaches_the_urls_stored_without_them() {
    let backend = origin();
    let proxy = start_proxy(&[backend.addr], |c| {
        cache_on(c, TRACKERS);
        c.admin_port = Some(0);
    });
    let admin_addr = proxy.handle().admin_addr().unwrap();
    let stored = |path: &str, n: usize| {
        let r = get(&proxy, path);
        assert_eq!((r.status, x_cache(&r)), (200, "MISS"), "{path}");
        assert!(r.body_str().ends_with(&format!("#{n}")), "{path}");
        expect(&get(&proxy, path), 200, "HIT", &r.body_str());
    };
    // `/p?utm_source=a&utm_medium=b` is under the prefix the purge names,
    // and is stored as `/p`: the purge drops it.
    stored("/p?utm_source=a&utm_medium=b", 1);
    // The listing of the prefix names what its purge drops.
    let listed = admin(
        admin_addr,
        "GET",
        "/cache/entries?prefix=%2Fp%3Futm_source%3Da%26",
    );
    assert_eq!(listed.status, 200, "{}", listed.body_str());
    assert!(
        listed.body_str().contains("\"key\":\"test.example/p\""),
        "{}",
        listed.body_str()
    );
    let purged = admin(admin_addr, "PURGE", "/p?utm_source=a&*");
    assert_eq!(purged.status, 200, "{}", purged.body_str());
    assert!(
        purged.body_str().contains("\"removed\":1"),
        "{}",
        purged.body_str()
    );
    assert_eq!(get(&proxy, "/p").status, 200);
    assert_eq!(backend.requests(), 2, "/p was purged: a miss");

    // `/q?gclid=*`: a parameter whose name is whole is left out as from
    // a request, so every `/q?gclid=...` goes, stored as `/q` or not.
    stored("/q?gclid=x", 3);
    stored("/q?gclid=y&id=2", 4);
    // Its listing counts the bare key's entry against the limit.
    let listed = admin(
        admin_addr,
        "GET",
        "/cache/entries?prefix=%2Fq%3Fgclid%3D&limit=1",
    )
    .body_str();
    assert_eq!(listed.matches("{\"key\"").count(), 1, "{listed}");
    assert!(listed.contains("\"key\":\"test.example/q\""), "{listed}");
    assert!(listed.contains("\"truncated\":true"), "{listed}");
    let purged = admin(admin_addr, "PURGE", "/q?gclid=*");
    assert_eq!(purged.status, 200, "{}", purged.body_str());
    assert!(
        purged.body_str().contains("\"removed\":2"),
        "{}",
        purged.body_str()
    );

    // After other parameters: `/r?id=3&gclid=*` drops `/r?id=3` too.
    stored("/r?id=3&gclid=z", 5);
    let purged = admin(admin_addr, "PURGE", "/r?id=3&gclid=*");
    assert_eq!(purged.status, 200, "{}", purged.body_str());
    assert_eq!(backend.requests(), 5);
    expect(&get(&proxy, "/q?id=2"), 200, "MISS", "/q?id=2 #6");
    expect(&get(&proxy, "/r?id=3"), 200, "MISS", "/r?id=3 #7");
}
