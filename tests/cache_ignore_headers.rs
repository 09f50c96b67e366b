//! `cache_ignore_headers`: response fields the cache does not read when
//! it decides whether and how long to store, as nginx's
//! `proxy_ignore_headers`. The micro-caching recipe (`cache_valid = 200
//! 1m` with `Cache-Control, Expires, Set-Cookie` ignored) in front of an
//! application that says `private, no-cache` and sets a cookie on every
//! page, as WordPress, Django and Rails do.
//!
//! The origin numbers its responses (`PATH #N`) and its cookies
//! (`sid=N`), so a body tells whether it came from the cache (an old
//! number) or from the origin (a new one); the backend's request counter
//! says the same from the other side.

mod support;

use inverso::cache::policy::{BypassCookies, CacheValid, IgnoredHeaders};
use inverso::cache::Cache;
use inverso::Config;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::*;

/// nginx's `proxy_ignore_headers Cache-Control Expires Set-Cookie`.
const RECIPE: &str = "Cache-Control, Expires, Set-Cookie";

/// The cache on, `cache_valid = 200 1m`, and `ignored` unread.
fn micro_cache(c: &mut Config, ignored: &str) {
    c.cache_size = 4 << 20;
    c.max_object_size = Some(256 * 1024);
    c.cache_valid = Arc::new(CacheValid::parse("200 1m").unwrap());
    c.cache_ignore_headers = IgnoredHeaders::parse(ignored).unwrap();
}

fn proxy_for(backend: &Backend, ignored: &str) -> Proxy {
    start_proxy(&[backend.addr], |c| micro_cache(c, ignored))
}

/// A backend whose `answer` adds fields per request to what it always
/// says: `Cache-Control: private, no-cache` and a new session cookie
/// (`sid=N`), with the body `PATH #N`, N counting its responses from 1.
/// A 304 when `answer` says so, with no body.
fn dynamic_origin(
    answer: impl Fn(&Seen) -> (u16, Vec<(&'static str, &'static str)>) + Send + Sync + 'static,
) -> Backend {
    let numbered = AtomicUsize::new(0);
    Backend::start("app", move |seen, out| {
        let n = numbered.fetch_add(1, Ordering::SeqCst) + 1;
        let (status, extra) = answer(seen);
        let cookie = format!("sid={n}; Path=/; HttpOnly");
        let mut fields = vec![
            ("Cache-Control", "private, no-cache"),
            ("Set-Cookie", cookie.as_str()),
        ];
        fields.extend(extra);
        if status == 304 {
            write_304(out, &fields);
        } else {
            let body = format!("{} #{n}", seen.path());
            respond(out, status, &fields, body.as_bytes());
        }
        Action::KeepAlive
    })
}

/// An application page: a 200 with nothing more.
fn app() -> Backend {
    dynamic_origin(|_| (200, Vec::new()))
}

fn cache_of(proxy: &Proxy) -> &Arc<Cache> {
    proxy.handle().cache().expect("the cache is on")
}

// One request per connection, each returning once the proxy is done with
// it (see `Proxy::exchange`): the next one sees what it stored.

fn get(proxy: &Proxy, path: &str, fields: &[(&str, &str)]) -> Response {
    proxy.exchange(|c| c.get_with(path, fields))
}

#[test]
fn a_private_no_cache_page_that_sets_a_cookie_is_micro_cached() {
    let backend = app();
    let proxy = proxy_for(&backend, RECIPE);
    let first = get(&proxy, "/", &[]);
    expect(&first, 200, "MISS", "/ #1");
    // The client whose request fetched it gets its cookie, and the
    // origin's Cache-Control as it came.
    assert_eq!(first.header("set-cookie"), Some("sid=1; Path=/; HttpOnly"));
    assert_eq!(first.header("cache-control"), Some("private, no-cache"));
    for _ in 0..5 {
        let hit = get(&proxy, "/", &[]);
        expect(&hit, 200, "HIT", "/ #1");
        assert_eq!(hit.header("set-cookie"), None, "{}", hit.head.raw);
        assert_eq!(hit.header("cache-control"), Some("private, no-cache"));
    }
    assert_eq!(backend.requests(), 1);
    // Stored without the cookie, for the minute cache_valid gives.
    let entries = cache_of(&proxy).entries();
    assert_eq!(entries.len(), 1);
    assert!(!entries[0].head.headers.contains("set-cookie"));
    assert_eq!(entries[0].fresh_lifetime().as_secs(), 60);
    // A range is cut from it as from any entry.
    let part = get(&proxy, "/", &[("Range", "bytes=0-2")]);
    expect(&part, 206, "HIT", "/ #");
    assert_eq!(backend.requests(), 1);
}

#[test]
fn without_the_setting_every_request_reaches_the_origin() {
    let backend = app();
    let proxy = proxy_for(&backend, "");
    for n in 1..=4 {
        let r = get(&proxy, "/", &[]);
        expect(&r, 200, "MISS", &format!("/ #{n}"));
        assert_eq!(
            r.header("set-cookie"),
            Some(format!("sid={n}; Path=/; HttpOnly").as_str())
        );
    }
    assert_eq!(backend.requests(), 4);
    assert!(cache_of(&proxy).entries().is_empty());
    // Cache-Control alone ignored: the cookie still keeps it out.
    let backend = app();
    let proxy = proxy_for(&backend, "Cache-Control");
    expect(&get(&proxy, "/", &[]), 200, "MISS", "/ #1");
    expect(&get(&proxy, "/", &[]), 200, "MISS", "/ #2");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn concurrent_misses_reach_the_origin_once_and_only_the_first_gets_the_cookie() {
    const CLIENTS: usize = 4;
    let sent = Arc::new(AtomicUsize::new(0));
    let held = sent.clone();
    let backend = dynamic_origin(move |_| {
        wait_until(WAIT_LIMIT, || held.load(Ordering::SeqCst) >= CLIENTS);
        (200, Vec::new())
    });
    let proxy = proxy_for(&backend, RECIPE);
    let addr = proxy.addr;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let sent = sent.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                client.send(b"GET /busy HTTP/1.1\r\nHost: test.example\r\n\r\n");
                sent.fetch_add(1, Ordering::SeqCst);
                client.response()
            })
        })
        .collect();
    let responses: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(backend.requests(), 1);
    for r in &responses {
        assert_eq!(r.body_str(), "/busy #1", "{}", r.head.raw);
    }
    // The one that fetched it got the cookie; those served from what it
    // stored, none.
    let seen: Vec<(&str, Option<&str>)> = (responses.iter())
        .map(|r| (x_cache(r), r.header("set-cookie")))
        .collect();
    let mut expected = vec![("HIT", None); CLIENTS - 1];
    expected.push(("MISS", Some("sid=1; Path=/; HttpOnly")));
    let mut sorted = seen.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "{seen:?}");
}

#[test]
fn a_stale_entry_is_revalidated_with_the_validator_it_was_stored_with() {
    // Born stale: two minutes old on arrival, for cache_valid's minute.
    let backend = dynamic_origin(|seen| match seen.head.get("if-none-match") {
        Some("\"v1\"") => (304, vec![("ETag", "\"v1\"")]),
        _ => (200, vec![("ETag", "\"v1\""), ("Age", "120")]),
    });
    let proxy = proxy_for(&backend, RECIPE);
    expect(&get(&proxy, "/r", &[]), 200, "MISS", "/r #1");
    let r = get(&proxy, "/r", &[]);
    expect(&r, 200, "REVALIDATED", "/r #1");
    // The 304's cookie went to the client that caused it, and no further.
    assert_eq!(r.header("set-cookie"), Some("sid=2; Path=/; HttpOnly"));
    assert_eq!(backend.seen()[1].head.get("if-none-match"), Some("\"v1\""));
    let hit = get(&proxy, "/r", &[]);
    expect(&hit, 200, "HIT", "/r #1");
    assert_eq!(hit.header("set-cookie"), None);
    assert_eq!(backend.requests(), 2);
}

#[test]
fn vary_unread_keeps_one_entry_per_url() {
    let languages = || dynamic_origin(|_| (200, vec![("Vary", "Accept-Language")]));
    let backend = languages();
    let proxy = proxy_for(&backend, "Cache-Control, Set-Cookie, Vary");
    expect(
        &get(&proxy, "/v", &[("Accept-Language", "en")]),
        200,
        "MISS",
        "/v #1",
    );
    let fr = get(&proxy, "/v", &[("Accept-Language", "fr")]);
    expect(&fr, 200, "HIT", "/v #1");
    // Clients are still told what it varies on.
    assert_eq!(fr.header("vary"), Some("Accept-Language"));
    assert_eq!(backend.requests(), 1);
    assert_eq!(cache_of(&proxy).entries()[0].key(), "test.example/v");

    // Read: an entry per language.
    let backend = languages();
    let proxy = proxy_for(&backend, RECIPE);
    expect(
        &get(&proxy, "/v", &[("Accept-Language", "en")]),
        200,
        "MISS",
        "/v #1",
    );
    let fr = get(&proxy, "/v", &[("Accept-Language", "fr")]);
    expect(&fr, 200, "MISS", "/v #2");
    assert_eq!(cache_of(&proxy).entries().len(), 2);
}

#[test]
fn credentials_and_bypass_cookies_still_keep_answers_out() {
    let backend = dynamic_origin(|_| (200, vec![("Cache-Control", "public, s-maxage=60")]));
    let proxy = start_proxy(&[backend.addr], |c| {
        micro_cache(c, RECIPE);
        c.cache_bypass_cookies = BypassCookies::parse("wordpress_logged_in_*").unwrap();
    });
    // Only Cache-Control could permit storing an answer to credentials:
    // unread, it permits nothing, whatever it says.
    let auth = [("Authorization", "Basic YWxpY2U6cHc=")];
    expect(&get(&proxy, "/a", &auth), 200, "MISS", "/a #1");
    expect(&get(&proxy, "/a", &auth), 200, "MISS", "/a #2");
    assert!(cache_of(&proxy).entries().is_empty());
    let signed_in = [("Cookie", "wordpress_logged_in_3f2a=admin")];
    let r = get(&proxy, "/a", &signed_in);
    expect(&r, 200, "BYPASS", "/a #3");
    assert!(r.header("set-cookie").is_some());
    assert!(cache_of(&proxy).entries().is_empty());
    // Everyone else is served from the cache.
    expect(&get(&proxy, "/a", &[]), 200, "MISS", "/a #4");
    expect(&get(&proxy, "/a", &[]), 200, "HIT", "/a #4");
    expect(&get(&proxy, "/a", &signed_in), 200, "BYPASS", "/a #5");
    assert_eq!(backend.requests(), 5);
}

#[test]
fn a_reload_without_the_setting_stores_no_more_and_keeps_what_was_stored() {
    let backend = app();
    let proxy = proxy_for(&backend, RECIPE);
    expect(&get(&proxy, "/k", &[]), 200, "MISS", "/k #1");
    proxy.reload(&[backend.addr], |c| micro_cache(c, ""));
    // Stored for a minute, as cache_valid's lifetimes are kept.
    expect(&get(&proxy, "/k", &[]), 200, "HIT", "/k #1");
    expect(&get(&proxy, "/new", &[]), 200, "MISS", "/new #2");
    expect(&get(&proxy, "/new", &[]), 200, "MISS", "/new #3");
    assert_eq!(backend.requests(), 3);
}

#[test]
fn x_accel_expires_and_surrogate_control_unread_pass_through_as_with_their_switches_off() {
    let backend = Backend::start("edge-aware", |_, out| {
        let fields = [
            ("Cache-Control", "max-age=5"),
            ("X-Accel-Expires", "600"),
            ("Surrogate-Control", "max-age=900"),
        ];
        respond(out, 200, &fields, b"page");
        Action::KeepAlive
    });
    let lifetime_and_fields = |ignored: &str| {
        let proxy = proxy_for(&backend, ignored);
        let r = get(&proxy, "/e", &[]);
        let entries = cache_of(&proxy).entries();
        let fresh = entries[0].fresh_lifetime().as_secs();
        let passed = (r.header("x-accel-expires").is_some())
            .then_some("X-Accel-Expires")
            .into_iter()
            .chain(r.header("surrogate-control").map(|_| "Surrogate-Control"))
            .collect::<Vec<_>>();
        (fresh, passed)
    };
    // Read: Surrogate-Control goes first, and neither reaches the client.
    assert_eq!(lifetime_and_fields(""), (900, vec![]));
    assert_eq!(
        lifetime_and_fields("Surrogate-Control"),
        (600, vec!["Surrogate-Control"])
    );
    assert_eq!(
        lifetime_and_fields("X-Accel-Expires, Surrogate-Control"),
        (5, vec!["X-Accel-Expires", "Surrogate-Control"])
    );
    // Nor is the cache announced to an origin whose directives it ignores.
    let seen = backend.seen();
    let capability = |i: usize| seen[i].head.get("surrogate-capability").map(str::to_string);
    assert_eq!(capability(0).as_deref(), Some("inverso=\"Surrogate/1.0\""));
    assert_eq!(capability(1), None);
    assert_eq!(capability(2), None);
}
