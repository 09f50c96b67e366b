//! A client's conditional GET (`If-None-Match`, `If-Modified-Since`) that
//! misses the cache: when the cache may store the answer, the origin is
//! asked without the client's conditions (as nginx's `proxy_cache` asks
//! it), the 200 is stored, and the client gets a 304 if its copy matches
//! what was stored, else the 200. Otherwise the conditions go to the origin
//! as sent.
//!
//! The origin honours conditions as a real server does (a 304 for its
//! `ETag` or a date not older than its `Last-Modified`), so a condition
//! that reached it shows in its answer as well as in what it saw; its
//! bodies are numbered (`PATH #N`): a body tells which answer was stored.

mod support;

use inverso::cache::policy::BypassCookies;
use inverso::Config;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

const ETAG: &str = "\"v1\"";
const LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const EARLIER: &str = "Sat, 05 Nov 1994 08:49:37 GMT";

fn cache_on(c: &mut Config) {
    c.cache_size = 4 << 20;
    c.max_object_size = Some(256 * 1024);
}

/// An origin that answers with `cache_control`, `ETag: "v1"` and
/// `Last-Modified`, and 304 when the request's conditions hold of them.
/// Each answer waits for `gate` (open unless a test holds it).
fn honouring(cache_control: &'static str, gate: Gate) -> Backend {
    let numbered = AtomicUsize::new(0);
    Backend::start("origin", move |seen, out| {
        gate.wait();
        let n = numbered.fetch_add(1, Ordering::SeqCst) + 1;
        let fields = [
            ("Cache-Control", cache_control),
            ("ETag", ETAG),
            ("Last-Modified", LAST_MODIFIED),
        ];
        let not_modified = match (
            seen.head.get("if-none-match"),
            seen.head.get("if-modified-since"),
        ) {
            (Some(tags), _) => tags
                .split(',')
                .any(|t| t.trim().trim_start_matches("W/") == ETAG),
            (None, Some(since)) => since == LAST_MODIFIED,
            (None, None) => false,
        };
        if not_modified {
            write_304(out, &fields);
        } else {
            let body = format!("{} #{n}", seen.path());
            respond(out, 200, &fields, body.as_bytes());
        }
        Action::KeepAlive
    })
}

fn open_gate() -> Gate {
    let gate = Gate::new();
    gate.open();
    gate
}

/// The conditions the origin saw in its requests for `path`, in order.
fn conditions_seen(backend: &Backend, path: &str) -> Vec<(String, String)> {
    (backend.seen().iter())
        .filter(|s| s.path() == path)
        .map(|s| {
            (
                s.field_or("if-none-match", "-"),
                s.field_or("if-modified-since", "-"),
            )
        })
        .collect()
}

fn none_seen(n: usize) -> Vec<(String, String)> {
    vec![("-".to_string(), "-".to_string()); n]
}

#[test]
fn a_conditional_miss_is_stored_and_answered_304_or_200_by_the_clients_etag() {
    let backend = honouring("max-age=60", open_gate());
    let mut proxy = start_proxy(&[backend.addr], |c| {
        cache_on(c);
        c.cache_status = Some("inverso".into());
    });
    let mut client = proxy.connect();

    // The client's copy is the origin's: a 304, made from what was stored.
    let r = client.get_with("/a", &[("If-None-Match", ETAG)]);
    expect(&r, 304, "MISS", "");
    assert_eq!(r.header("etag"), Some(ETAG), "{}", r.head.raw);
    assert_eq!(r.header("last-modified"), Some(LAST_MODIFIED));
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    assert!(r.header("content-length").is_none(), "{}", r.head.raw);
    let status = r.header("cache-status").unwrap_or_default();
    assert!(
        status.contains("fwd=uri-miss; fwd-status=200; stored"),
        "{status}"
    );
    // Compared weakly, and among others.
    let r = client.get_with("/b", &[("If-None-Match", "\"v0\", W/\"v1\"")]);
    expect(&r, 304, "MISS", "");
    // Another copy: the whole answer, stored as well.
    let r = client.get_with("/c", &[("If-None-Match", "\"v0\"")]);
    expect(&r, 200, "MISS", "/c #3");

    // The origin never saw a condition, and was asked once for each.
    for path in ["/a", "/b", "/c"] {
        assert_eq!(conditions_seen(&backend, path), none_seen(1), "{path}");
    }
    expect(&client.get("/a"), 200, "HIT", "/a #1");
    expect(&client.get("/b"), 200, "HIT", "/b #2");
    expect(&client.get("/c"), 200, "HIT", "/c #3");
    // The next conditional request is a hit, answered as hits are.
    expect(
        &client.get_with("/c", &[("If-None-Match", ETAG)]),
        304,
        "HIT",
        "",
    );
    assert_eq!(backend.requests(), 3);

    // The access log has the status the client got.
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert!(lines[0].contains("\"GET /a HTTP/1.1\" 304 0 "), "{lines:?}");
    assert!(lines[2].contains("\"GET /c HTTP/1.1\" 200 "), "{lines:?}");
}

#[test]
fn an_if_modified_since_miss_is_stored_and_answered_by_the_stored_date() {
    let backend = honouring("max-age=60", open_gate());
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();

    let r = client.get_with("/d", &[("If-Modified-Since", LAST_MODIFIED)]);
    expect(&r, 304, "MISS", "");
    assert_eq!(r.header("last-modified"), Some(LAST_MODIFIED));
    let r = client.get_with("/e", &[("If-Modified-Since", EARLIER)]);
    expect(&r, 200, "MISS", "/e #2");
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    let both = [
        ("If-None-Match", "\"v0\""),
        ("If-Modified-Since", LAST_MODIFIED),
    ];
    expect(&client.get_with("/f", &both), 200, "MISS", "/f #3");

    for path in ["/d", "/e", "/f"] {
        assert_eq!(conditions_seen(&backend, path), none_seen(1), "{path}");
    }
    expect(&client.get("/d"), 200, "HIT", "/d #1");
    expect(&client.get("/e"), 200, "HIT", "/e #2");
    expect(&client.get("/f"), 200, "HIT", "/f #3");
    assert_eq!(backend.requests(), 3);
}

#[test]
fn a_conditional_miss_answered_private_is_relayed_whole_then_asked_as_sent() {
    let backend = honouring("private, max-age=60", open_gate());
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();

    // Not stored: the whole answer, though the client's copy matches it
    // (correct HTTP: a server may ignore a condition).
    let r = client.get_with("/p", &[("If-None-Match", ETAG)]);
    expect(&r, 200, "MISS", "/p #1");
    // The URL's answer could not be stored: for a while its conditional
    // misses go to the origin as sent (hit-for-miss), and its 304 is
    // relayed.
    let r = client.get_with("/p", &[("If-None-Match", ETAG)]);
    expect(&r, 304, "MISS", "");
    assert_eq!(
        conditions_seen(&backend, "/p"),
        [
            ("-".to_string(), "-".to_string()),
            (ETAG.to_string(), "-".to_string())
        ]
    );
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_page_private_to_signed_in_users_keeps_its_304s() {
    // A private answer to a request with a cookie says nothing of the URL
    // for others (it is not hit-for-miss), but the conditions withheld
    // for it brought a whole page the cache could not keep: the next
    // conditional misses go as sent, and get the origin's 304s.
    let backend = honouring("private, max-age=0, must-revalidate", open_gate());
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();
    let asked = [("If-None-Match", ETAG), ("Cookie", "session=a")];
    let r = client.get_with("/account", &asked);
    expect(&r, 200, "MISS", "/account #1");
    for _ in 0..2 {
        let r = client.get_with("/account", &asked);
        expect(&r, 304, "MISS", "");
    }
    assert_eq!(backend.requests(), 3);
}

#[test]
fn conditions_reach_the_origin_as_sent_when_the_cache_stores_nothing_of_the_answer() {
    let backend = honouring("max-age=60", open_gate());
    let asked = [
        ("If-None-Match", ETAG),
        ("If-Modified-Since", LAST_MODIFIED),
    ];
    let as_sent = vec![(ETAG.to_string(), LAST_MODIFIED.to_string())];

    // Cache off.
    let proxy = start_proxy(&[backend.addr], |_| {});
    let r = proxy.connect().get_with("/off", &asked);
    assert_eq!((r.status, x_cache(&r)), (304, "(none)"), "{}", r.head.raw);
    assert_eq!(conditions_seen(&backend, "/off"), as_sent);

    let proxy = start_proxy(&[backend.addr], |c| {
        cache_on(c);
        c.cache_bypass_cookies = BypassCookies::parse("sessionid").unwrap();
        c.cache_min_uses = 2;
    });
    let mut client = proxy.connect();
    // A request the cache has no say in.
    let mut bypassed = asked.to_vec();
    bypassed.push(("Cookie", "sessionid=1"));
    expect(&client.get_with("/bypass", &bypassed), 304, "BYPASS", "");
    assert_eq!(conditions_seen(&backend, "/bypass"), as_sent);
    // One whose answer nothing may keep, a HEAD's, or one for a URL not
    // yet asked for `cache_min_uses` times.
    let mut no_store = asked.to_vec();
    no_store.push(("Cache-Control", "no-store"));
    expect(&client.get_with("/no-store", &no_store), 304, "MISS", "");
    assert_eq!(conditions_seen(&backend, "/no-store"), as_sent);
    let r = client.head_with("/head", &asked);
    assert_eq!((r.status, x_cache(&r)), (304, "MISS"), "{}", r.head.raw);
    assert_eq!(conditions_seen(&backend, "/head"), as_sent);
    expect(&client.get_with("/popular", &asked), 304, "MISS", "");
    // Its second time: the answer will be stored, and the conditions are
    // the cache's.
    expect(&client.get_with("/popular", &asked), 304, "MISS", "");
    assert_eq!(
        conditions_seen(&backend, "/popular"),
        [as_sent[0].clone(), ("-".to_string(), "-".to_string())]
    );
    expect(&client.get("/popular"), 200, "HIT", "/popular #6");
}

#[test]
fn misses_coalesced_on_a_conditional_one_are_each_answered_by_their_own_conditions() {
    let gate = Gate::new();
    let backend = honouring("max-age=60", gate.clone());
    let proxy = start_proxy(&[backend.addr], cache_on);

    // The conditional miss leads: the origin holds its answer.
    let mut leader = proxy.connect();
    leader.send(&request_bytes(
        "GET",
        "/co",
        &[("If-None-Match", ETAG)],
        b"",
    ));
    assert!(wait_until(WAIT_LIMIT, || backend.requests() == 1));
    let followers: Vec<&[(&str, &str)]> = vec![
        &[("If-None-Match", ETAG)],
        &[("If-None-Match", "\"v0\"")],
        &[],
        &[("If-Modified-Since", LAST_MODIFIED)],
        &[("If-Modified-Since", EARLIER)],
    ];
    let mut clients = sent_each(&proxy, "/co", &followers);
    gate.open();
    expect(&leader.response(), 304, "MISS", "");
    let statuses = statuses_and_bodies(&mut clients);
    let body = "/co #1".to_string();
    assert_eq!(
        statuses,
        [
            (304, String::new()),
            (200, body.clone()),
            (200, body.clone()),
            (304, String::new()),
            (200, body),
        ]
    );
    assert_eq!(backend.requests(), 1);
    assert_eq!(conditions_seen(&backend, "/co"), none_seen(1));
}

#[test]
fn a_chunked_answer_is_read_whole_for_the_304_and_one_too_large_to_store_still_gets_it() {
    let large = pattern(300 * 1024);
    let small = b"small body".to_vec();
    let backend = Backend::start("origin", move |seen, out| {
        let body = if seen.path() == "/large" {
            &large
        } else {
            &small
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nETag: {ETAG}\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&chunked(body, 4096, ""));
        let _ = std::io::Write::write_all(out, &bytes);
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();

    expect(
        &client.get_with("/small", &[("If-None-Match", ETAG)]),
        304,
        "MISS",
        "",
    );
    expect(&client.get("/small"), 200, "HIT", "small body");
    // Past max_object_size, found out only as it streams: nothing is
    // stored, and the client's copy is still the origin's answer.
    let r = client.get_with("/large", &[("If-None-Match", ETAG)]);
    expect(&r, 304, "MISS", "");
    assert_eq!(r.header("etag"), Some(ETAG));
    // Not fetched whole again for the next client's conditions: they go
    // to the origin (which here ignores them), as for any answer that
    // could not be stored.
    let r = client.get_with("/large", &[("If-None-Match", ETAG)]);
    assert_eq!((r.status, r.body.len()), (200, 300 * 1024));
    let r = client.get("/large");
    assert_eq!(
        (r.status, x_cache(&r), r.body.len()),
        (200, "MISS", 300 * 1024)
    );
    assert_eq!(backend.requests(), 4);
    let as_sent = (ETAG.to_string(), "-".to_string());
    let seen = conditions_seen(&backend, "/large");
    assert_eq!(seen, [none_seen(1), vec![as_sent], none_seen(1)].concat());
}
