//! `cache_bypass_cookies`: a request carrying a listed cookie (a signed-in
//! user's) is neither answered from the cache nor has its answer stored,
//! as nginx's `proxy_cache_bypass` with `proxy_no_cache` on `$cookie_...`.
//!
//! The origin numbers its responses (`PATH #N`), so a body tells whether it
//! came from the cache (an old number) or from the origin (a new one); the
//! backend's request counter says the same from the other side. Responses
//! say `max-age=60`, which the cache stores whatever the request's cookies:
//! without the setting, every request below would be answered from it.

mod support;

use inverso::cache::policy::BypassCookies;
use inverso::cache::Cache;
use inverso::Config;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const WORDPRESS: &str = "wordpress_logged_in_*, wp-postpass_*, comment_author_*";

fn cache_on(c: &mut Config, cookies: &str) {
    c.cache_size = 4 << 20;
    c.max_object_size = Some(256 * 1024);
    c.cache_bypass_cookies = BypassCookies::parse(cookies).unwrap();
}

/// A backend whose `answer` picks status and fields per request; the body
/// is `PATH #N`, N counting its responses from 1 (no body for a 304).
fn origin(
    answer: impl Fn(&Seen) -> (u16, Vec<(&'static str, String)>) + Send + Sync + 'static,
) -> Backend {
    let numbered = AtomicUsize::new(0);
    Backend::start("origin", move |seen, out| {
        let n = numbered.fetch_add(1, Ordering::SeqCst) + 1;
        let (status, fields) = answer(seen);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        if status == 304 {
            write_304(out, &fields);
        } else {
            respond(
                out,
                status,
                &fields,
                format!("{} #{n}", seen.path()).as_bytes(),
            );
        }
        Action::KeepAlive
    })
}

/// An origin whose every answer is fresh for a minute.
fn fresh_origin() -> Backend {
    origin(|_| (200, vec![("Cache-Control", "max-age=60".into())]))
}

fn proxy_for(backend: &Backend, cookies: &str) -> Proxy {
    start_proxy(&[backend.addr], |c| cache_on(c, cookies))
}

fn cache_of(proxy: &Proxy) -> &Arc<Cache> {
    proxy.handle().cache().expect("the cache is on")
}

fn bypassed(proxy: &Proxy) -> u64 {
    cache_of(proxy).stats.bypass.load(Ordering::Relaxed)
}

// One request per connection, each returning once the proxy is done with
// it (see `Proxy::exchange`): the next one sees what it stored.

fn get(proxy: &Proxy, path: &str, fields: &[(&str, &str)]) -> Response {
    proxy.exchange(|c| c.get_with(path, fields))
}

#[test]
fn a_listed_cookie_bypasses_a_fresh_entry() {
    let backend = fresh_origin();
    let mut proxy = proxy_for(&backend, "sessionid");
    expect(&get(&proxy, "/p", &[]), 200, "MISS", "/p #1");
    expect(&get(&proxy, "/p", &[]), 200, "HIT", "/p #1");
    assert_eq!(backend.requests(), 1);

    let cookie = "theme=dark; sessionid=s3cr3t";
    let r = get(&proxy, "/p", &[("Cookie", cookie)]);
    expect(&r, 200, "BYPASS", "/p #2");
    assert_eq!(backend.requests(), 2);
    // The backend got the cookie as the client sent it.
    assert_eq!(backend.seen()[1].head.get("cookie"), Some(cookie));
    assert_eq!(bypassed(&proxy), 1);
    // A HEAD too.
    let r = proxy.exchange(|c| c.head_with("/p", &[("Cookie", cookie)]));
    assert_eq!((r.status, x_cache(&r)), (200, "BYPASS"), "{}", r.head.raw);
    assert_eq!(backend.requests(), 3);
    assert_eq!(bypassed(&proxy), 2);

    // The entry is untouched for everyone else.
    expect(&get(&proxy, "/p", &[]), 200, "HIT", "/p #1");
    assert_eq!(backend.requests(), 3);

    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    let caches: Vec<&str> = lines
        .iter()
        .map(|l| {
            l.split(" cache=")
                .nth(1)
                .unwrap_or("")
                .split(' ')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        caches,
        ["MISS", "HIT", "BYPASS", "BYPASS", "HIT"],
        "{lines:#?}"
    );
}

#[test]
fn the_answer_to_a_bypassing_request_is_not_stored() {
    let backend = fresh_origin();
    let proxy = proxy_for(&backend, "sessionid");
    let r = get(&proxy, "/n", &[("Cookie", "sessionid=s3cr3t")]);
    expect(&r, 200, "BYPASS", "/n #1");
    assert!(cache_of(&proxy).entries().is_empty());
    // Nothing was stored: the next client goes to the origin.
    expect(&get(&proxy, "/n", &[]), 200, "MISS", "/n #2");
    expect(&get(&proxy, "/n", &[]), 200, "HIT", "/n #2");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_trailing_star_matches_every_name_it_begins() {
    let backend = fresh_origin();
    let proxy = proxy_for(&backend, WORDPRESS);
    expect(&get(&proxy, "/w", &[]), 200, "MISS", "/w #1");
    let signed_in =
        "wordpress_test_cookie=WP%20Cookie%20check; wordpress_logged_in_3f2a9c=admin%7C1";
    expect(
        &get(&proxy, "/w", &[("Cookie", signed_in)]),
        200,
        "BYPASS",
        "/w #2",
    );
    expect(
        &get(&proxy, "/w", &[("Cookie", "wp-postpass_9d1e=%24P%24B")]),
        200,
        "BYPASS",
        "/w #3",
    );
    // WordPress's test cookie, which every visitor of the login page
    // gets, is no sign of a session.
    let visitor = "wordpress_test_cookie=WP%20Cookie%20check";
    expect(
        &get(&proxy, "/w", &[("Cookie", visitor)]),
        200,
        "HIT",
        "/w #1",
    );
    assert_eq!(backend.requests(), 3);
}

#[test]
fn other_cookies_are_answered_from_the_cache() {
    let backend = fresh_origin();
    let proxy = proxy_for(&backend, "sessionid, wordpress_logged_in_*");
    expect(&get(&proxy, "/o", &[]), 200, "MISS", "/o #1");
    for cookie in [
        "theme=dark",
        "SessionID=x",
        "sessionid2=x",
        "my_sessionid=x",
        "a=sessionid",
        "wordpress_logged_in=x",
    ] {
        let r = get(&proxy, "/o", &[("Cookie", cookie)]);
        assert_eq!(
            (x_cache(&r), r.body_str().as_str()),
            ("HIT", "/o #1"),
            "{cookie}"
        );
    }
    assert_eq!(backend.requests(), 1);
    assert_eq!(bypassed(&proxy), 0);
}

#[test]
fn a_listed_cookie_on_a_second_cookie_line_bypasses() {
    let backend = fresh_origin();
    let proxy = proxy_for(&backend, "sessionid");
    expect(&get(&proxy, "/l", &[]), 200, "MISS", "/l #1");
    let lines = [("Cookie", "theme=dark"), ("Cookie", "sessionid=s3cr3t")];
    expect(&get(&proxy, "/l", &lines), 200, "BYPASS", "/l #2");
    // Both lines went on.
    let seen = backend.seen();
    let sent: Vec<&str> = seen[1].head.get_all("cookie").collect();
    assert_eq!(sent, ["theme=dark", "sessionid=s3cr3t"]);
    expect(&get(&proxy, "/l", &[]), 200, "HIT", "/l #1");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_lone_star_bypasses_every_request_with_a_cookie() {
    let backend = fresh_origin();
    let proxy = proxy_for(&backend, "*");
    expect(&get(&proxy, "/a", &[]), 200, "MISS", "/a #1");
    expect(
        &get(&proxy, "/a", &[("Cookie", "x=1")]),
        200,
        "BYPASS",
        "/a #2",
    );
    expect(&get(&proxy, "/a", &[]), 200, "HIT", "/a #1");
}

#[test]
fn a_reload_applies_the_setting() {
    let backend = fresh_origin();
    let proxy = proxy_for(&backend, "");
    let cookie = [("Cookie", "sessionid=s3cr3t")];
    expect(&get(&proxy, "/r", &[]), 200, "MISS", "/r #1");
    expect(&get(&proxy, "/r", &cookie), 200, "HIT", "/r #1");

    let reload = |cookies: &str| {
        let mut next = Config::with_targets(vec![target(backend.addr)]);
        next.log_to_stdout = false;
        next.path_to_persistence = None;
        cache_on(&mut next, cookies);
        proxy.handle().control().reload(next).unwrap();
    };
    reload("sessionid");
    expect(&get(&proxy, "/r", &cookie), 200, "BYPASS", "/r #2");
    expect(&get(&proxy, "/r", &[]), 200, "HIT", "/r #1");
    reload("");
    expect(&get(&proxy, "/r", &cookie), 200, "HIT", "/r #1");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_304_to_a_bypassing_request_refreshes_nothing() {
    // Stale on arrival, with a validator: each use asks the origin, whose
    // 304 would make it fresh for a minute.
    let backend = origin(|seen| {
        let etag = ("ETag", "\"v1\"".to_string());
        if seen.head.get("if-none-match") == Some("\"v1\"") {
            (304, vec![("Cache-Control", "max-age=60".into()), etag])
        } else {
            (200, vec![("Cache-Control", "max-age=0".into()), etag])
        }
    });
    let proxy = proxy_for(&backend, "sessionid");
    expect(&get(&proxy, "/v", &[]), 200, "MISS", "/v #1");
    let own = [("Cookie", "sessionid=s3cr3t"), ("If-None-Match", "\"v1\"")];
    let r = get(&proxy, "/v", &own);
    assert_eq!((r.status, x_cache(&r)), (304, "BYPASS"), "{}", r.head.raw);
    assert_eq!(backend.requests(), 2);
    // Still stale: revalidated by the next request, not a hit.
    expect(&get(&proxy, "/v", &[]), 200, "REVALIDATED", "/v #1");
    assert_eq!(backend.requests(), 3);
    expect(&get(&proxy, "/v", &[]), 200, "HIT", "/v #1");
}

#[test]
fn a_bypassing_request_gets_no_stale_entry_when_the_origin_fails() {
    let failing = Arc::new(AtomicBool::new(false));
    let fails = failing.clone();
    // 100 s old on arrival, fresh for 50: stale at once, within the
    // default stale_if_error.
    let backend = origin(move |_| match fails.load(Ordering::SeqCst) {
        false => (
            200,
            vec![
                ("Cache-Control", "max-age=50".into()),
                ("Age", "100".into()),
            ],
        ),
        true => (500, Vec::new()),
    });
    let proxy = proxy_for(&backend, "sessionid");
    expect(&get(&proxy, "/f", &[]), 200, "MISS", "/f #1");
    failing.store(true, Ordering::SeqCst);
    expect(&get(&proxy, "/f", &[]), 200, "STALE", "/f #1");
    let r = get(&proxy, "/f", &[("Cookie", "sessionid=s3cr3t")]);
    expect(&r, 500, "BYPASS", "/f #3");
}

#[test]
fn only_if_cached_with_a_listed_cookie_gets_504() {
    let backend = fresh_origin();
    let proxy = proxy_for(&backend, "sessionid");
    expect(&get(&proxy, "/c", &[]), 200, "MISS", "/c #1");
    let asked = [
        ("Cookie", "sessionid=s3cr3t"),
        ("Cache-Control", "only-if-cached"),
    ];
    let r = get(&proxy, "/c", &asked);
    assert_eq!((r.status, x_cache(&r)), (504, "(none)"), "{}", r.head.raw);
    let ranged = [asked[0], asked[1], ("Range", "bytes=0-1")];
    assert_eq!(get(&proxy, "/c", &ranged).status, 504);
    assert_eq!(backend.requests(), 1);
}

#[test]
fn ignore_client_cache_control_leaves_a_bypassing_request_as_sent() {
    // The setting takes Cache-Control and Pragma out of the requests the
    // cache answers, whose fetch is for everyone; a bypassing request's
    // fetch is its own, and its answer goes to it alone.
    let backend = fresh_origin();
    let proxy = start_proxy(&[backend.addr], |c| {
        cache_on(c, "sessionid");
        c.ignore_client_cache_control = true;
    });
    expect(&get(&proxy, "/g", &[]), 200, "MISS", "/g #1");
    let reload = [("Cache-Control", "no-cache"), ("Pragma", "no-cache")];
    expect(&get(&proxy, "/g", &reload), 200, "HIT", "/g #1");
    assert_eq!(backend.requests(), 1);
    let signed_in = [reload[0], reload[1], ("Cookie", "sessionid=s3cr3t")];
    expect(&get(&proxy, "/g", &signed_in), 200, "BYPASS", "/g #2");
    let seen = &backend.seen()[1];
    assert_eq!(seen.head.get("cache-control"), Some("no-cache"));
    assert_eq!(seen.head.get("pragma"), Some("no-cache"));
    // Nothing stored answers it: its only-if-cached gets 504.
    let only = [("Cache-Control", "only-if-cached"), signed_in[2]];
    assert_eq!(get(&proxy, "/g", &only).status, 504);
    assert_eq!(backend.requests(), 2);
}

#[test]
fn an_unsafe_request_with_a_listed_cookie_still_invalidates() {
    let backend = fresh_origin();
    let proxy = proxy_for(&backend, "sessionid");
    expect(&get(&proxy, "/i", &[]), 200, "MISS", "/i #1");
    let cookie = ("Cookie", "sessionid=s3cr3t");
    let r = proxy.exchange(|c| c.request("POST", "/i", &[cookie], b"comment"));
    assert_eq!((r.status, x_cache(&r)), (200, "BYPASS"));
    expect(&get(&proxy, "/i", &[]), 200, "MISS", "/i #3");
}

#[test]
fn without_a_cache_the_setting_does_nothing() {
    let backend = fresh_origin();
    let proxy = start_proxy(&[backend.addr], |c| {
        c.cache_bypass_cookies = BypassCookies::parse("sessionid").unwrap();
    });
    assert!(proxy.handle().cache().is_none());
    let cookie = ("Cookie", "sessionid=s3cr3t");
    let r = get(&proxy, "/x", &[cookie]);
    assert_eq!((r.status, x_cache(&r)), (200, "(none)"), "{}", r.head.raw);
    // No cache to say `only-if-cached` to: it goes on, as without the
    // setting.
    let r = get(&proxy, "/x", &[cookie, ("Cache-Control", "only-if-cached")]);
    assert_eq!((r.status, x_cache(&r)), (200, "(none)"), "{}", r.head.raw);
    assert_eq!(backend.requests(), 2);
}

#[test]
fn the_sticky_cookie_is_not_the_application_s_and_does_not_count() {
    let backend = fresh_origin();
    let proxy = start_proxy(&[backend.addr], |c| {
        cache_on(c, "*");
        c.sticky_cookie = Some("srv".into());
    });
    expect(&get(&proxy, "/s", &[]), 200, "MISS", "/s #1");
    // Taken out before the cache sees the request: no cookie is left.
    expect(
        &get(&proxy, "/s", &[("Cookie", "srv=0123")]),
        200,
        "HIT",
        "/s #1",
    );
    let r = get(&proxy, "/s", &[("Cookie", "srv=0123; sid=1")]);
    expect(&r, 200, "BYPASS", "/s #2");
    assert_eq!(backend.seen()[1].head.get("cookie"), Some("sid=1"));
}
