//! The response cache over real sockets: what is stored and reused, request
//! directives, Vary, revalidation, invalidation, stale-on-failure,
//! coalescing, eviction, size limits, and the snapshot across restarts.
//!
//! Backends number their responses (`PATH #N`), so a body tells whether it
//! came from the cache (an old number) or from the origin (a new one); the
//! backends' request counters say the same from the other side.
//!
//! Staleness is never waited for: a response is made old on arrival with
//! `Age` (e.g. `Age: 100` with `max-age=50`), or born stale with
//! `max-age=0` plus a validator.

mod support;

use inverso::cache::persist::{load_snapshot, write_snapshot, LoadLimits, Record};
use inverso::cache::policy::{CacheValid, Lifetime, Settings};
use inverso::cache::store::ENTRY_OVERHEAD;
use inverso::cache::{timer, Cache, Entry};
use inverso::http::date::format_http_date;
use inverso::http::ResponseHead;
use inverso::Config;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use support::*;

/// Cache capacity for most tests: roomy enough that nothing is evicted.
const CACHE_SIZE: u64 = 4 << 20;
/// The host every support client sends; keys start with it.
const HOST: &str = "test.example";

fn cache_on(c: &mut Config) {
    c.cache_size = CACHE_SIZE;
    c.max_object_size = Some(256 * 1024);
}

/// A proxy with the cache on (no persistence) in front of `backend`.
fn cached_proxy(backend: &Backend, tweak: impl FnOnce(&mut Config)) -> Proxy {
    start_proxy(&[backend.addr], |c| {
        cache_on(c);
        tweak(c);
    })
}

fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Writes a response; `body: None` writes no body and no Content-Length
/// (for 304).
fn write_response(
    out: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) {
    let mut bytes = format!("HTTP/1.1 {status} Whatever\r\n");
    for (name, value) in headers {
        bytes.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        bytes.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    bytes.push_str("\r\n");
    let mut bytes = bytes.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    let _ = out.write_all(&bytes);
}

/// A backend whose `answer` picks status and fields per request; the body
/// is `PATH #N`, N counting this backend's responses from 1 (no body for
/// 304).
fn origin(
    answer: impl Fn(&Seen) -> (u16, Vec<(String, String)>) + Send + Sync + 'static,
) -> Backend {
    let numbered = AtomicUsize::new(0);
    Backend::start("origin", move |seen, out| {
        let n = numbered.fetch_add(1, Ordering::SeqCst) + 1;
        let (status, headers) = answer(seen);
        let body = format!("{} #{n}", seen.path());
        let body = (status != 304).then_some(body.as_bytes());
        write_response(out, status, &headers, body);
        Action::KeepAlive
    })
}

/// A proxy with its cache on in front of `backend`; both, for the test
/// to keep.
fn behind_cache(backend: Backend) -> (Backend, Proxy) {
    let proxy = cached_proxy(&backend, |_| {});
    (backend, proxy)
}

/// A proxy with its cache on, in front of an origin that answers every
/// request `status` with `headers`.
fn cached_fixed(status: u16, headers: &[(&str, &str)]) -> (Backend, Proxy) {
    behind_cache(fixed(status, headers))
}

/// A backend answering `status` with fixed `headers`.
fn fixed(status: u16, headers: &[(&str, &str)]) -> Backend {
    let headers = fields(headers);
    origin(move |_| (status, headers.clone()))
}

// Requests go one per connection, and each returns once the proxy is done
// with it (see `Proxy::exchange`): the next one sees what it stored.

fn get(proxy: &Proxy, path: &str) -> Response {
    proxy.exchange(|c| c.get(path))
}

fn get_with(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> Response {
    proxy.exchange(|c| c.get_with(path, headers))
}

fn request(proxy: &Proxy, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    proxy.exchange(|c| c.request(method, path, headers, b"x"))
}

fn cache_of(proxy: &Proxy) -> &Arc<Cache> {
    proxy.handle().cache().expect("the cache is on")
}

/// The keys of the entries the cache holds, sorted.
fn stored_keys(proxy: &Proxy) -> Vec<String> {
    let mut keys: Vec<String> = cache_of(proxy)
        .entries()
        .iter()
        .map(|e| e.key().to_string())
        .collect();
    keys.sort();
    keys
}

fn key(path: &str) -> String {
    format!("{HOST}{path}")
}

/// The fresh lifetime of the stored entry for `path`.
fn stored_lifetime(proxy: &Proxy, path: &str) -> Option<Duration> {
    cache_of(proxy)
        .entries()
        .iter()
        .find(|e| e.key() == key(path))
        .map(|e| e.fresh_lifetime())
}

fn now_date(offset: i64) -> String {
    let now = SystemTime::now();
    let t = if offset >= 0 {
        now + Duration::from_secs(offset as u64)
    } else {
        now - Duration::from_secs(offset.unsigned_abs())
    };
    format_http_date(t)
}

// ------------------------------------------------------------- hit / miss

#[test]
fn a_repeated_get_is_a_hit_and_head_is_answered_from_the_get() {
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=60")]);

    expect(&get(&proxy, "/a"), 200, "MISS", "/a #1");
    assert_eq!(backend.requests(), 1);

    let hit = get(&proxy, "/a");
    expect(&hit, 200, "HIT", "/a #1");
    let age: u64 = hit.header("age").expect("Age on a hit").parse().unwrap();
    assert!(age <= 60, "Age {age}");
    assert_eq!(backend.requests(), 1);

    // HEAD from the stored GET, then a GET on the same connection: had the
    // HEAD carried body bytes, the GET would not parse.
    let mut client = proxy.connect();
    let head = client.head("/a");
    assert_eq!(
        (head.status, x_cache(&head)),
        (200, "HIT"),
        "{}",
        head.head.raw
    );
    assert_eq!(
        head.header("content-length"),
        Some("5"),
        "{}",
        head.head.raw
    );
    assert!(head.body.is_empty());
    expect(&client.get("/a"), 200, "HIT", "/a #1");
    assert_eq!(backend.requests(), 1);

    let stats = &cache_of(&proxy).stats;
    assert_eq!(stats.misses.load(Ordering::Relaxed), 1);
    assert_eq!(stats.hits.load(Ordering::Relaxed), 3);
}

#[test]
fn a_hit_to_a_client_that_closes_says_so_and_closes() {
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=60")]);
    get(&proxy, "/c");
    for request in [
        "GET /c HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n",
        "GET /c HTTP/1.0\r\nHost: test.example\r\n\r\n",
    ] {
        let mut client = proxy.connect();
        client.send(request.as_bytes());
        let hit = client.response();
        expect(&hit, 200, "HIT", "/c #1");
        assert!(
            hit.head.has_token("connection", "close"),
            "{request:?}:\n{}",
            hit.head.raw
        );
        // Closed: a request sent after it is never answered.
        let again = b"GET /c HTTP/1.1\r\nHost: test.example\r\n\r\n";
        let _ = client.reader.stream.write_all(again);
        let after = client.try_response(false);
        assert!(after.is_err(), "{request:?}: kept open, answered {after:?}");
    }
    assert_eq!(backend.requests(), 1);
}

#[test]
fn a_range_of_a_stored_response_is_answered_from_the_cache() {
    let (backend, proxy) =
        cached_fixed(200, &[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")]);
    let miss = get(&proxy, "/r");
    expect(&miss, 200, "MISS", "/r #1");
    assert_eq!(miss.header("accept-ranges"), None);

    let part = |range: &str, more: &[(&str, &str)]| {
        let mut headers = vec![("Range", range)];
        headers.extend_from_slice(more);
        get_with(&proxy, "/r", &headers)
    };
    for (range, body, content_range) in [
        ("bytes=1-3", "r #", "bytes 1-3/5"),
        ("bytes=-2", "#1", "bytes 3-4/5"),
        ("bytes=2-", " #1", "bytes 2-4/5"),
        ("bytes=4-400", "1", "bytes 4-4/5"),
    ] {
        let r = part(range, &[]);
        expect(&r, 206, "HIT", body);
        assert_eq!(r.header("content-range"), Some(content_range), "{range}");
        assert_eq!(r.header("etag"), Some("\"v1\""), "{}", r.head.raw);
    }

    let past = part("bytes=5-", &[]);
    expect(&past, 416, "HIT", "");
    assert_eq!(past.header("content-range"), Some("bytes */5"));

    // Several ranges: a multipart 206 (see below).
    let several = part("bytes=0-0,2-3", &[]);
    assert_eq!((several.status, x_cache(&several)), (206, "HIT"));
    let cut: Vec<Vec<u8>> = multipart(&several).into_iter().map(|p| p.1).collect();
    assert_eq!(cut, [b"/".to_vec(), b" #".to_vec()]);
    // Answered whole: an If-Range about another version.
    expect(
        &part("bytes=1-3", &[("If-Range", "\"v0\"")]),
        200,
        "HIT",
        "/r #1",
    );
    expect(
        &part("bytes=1-3", &[("If-Range", "\"v1\"")]),
        206,
        "HIT",
        "r #",
    );
    // If-None-Match comes before Range (RFC 9110 §13.2.2).
    let unchanged = part("bytes=1-3", &[("If-None-Match", "\"v1\"")]);
    expect(&unchanged, 304, "HIT", "");
    assert_eq!(backend.requests(), 1, "every range from the one response");

    // A HEAD's Range means nothing: answered from the cache, whole.
    let mut client = proxy.connect();
    client.send(b"HEAD /r HTTP/1.1\r\nHost: test.example\r\nRange: bytes=0-1\r\n\r\n");
    let head = client.head_response();
    assert_eq!(
        (head.status, x_cache(&head)),
        (200, "HIT"),
        "{}",
        head.head.raw
    );
    assert_eq!(head.header("content-length"), Some("5"));
    drop(client);

    // A whole answer from the cache says parts may be asked for; the
    // origin's, which said nothing, did not.
    let whole = get(&proxy, "/r");
    assert_eq!(
        whole.header("accept-ranges"),
        Some("bytes"),
        "{}",
        whole.head.raw
    );
    let refused = fixed(
        200,
        &[("Cache-Control", "max-age=60"), ("Accept-Ranges", "none")],
    );
    let other = cached_proxy(&refused, |_| {});
    assert_eq!(get(&other, "/n").header("accept-ranges"), Some("none"));
    let hit = get(&other, "/n");
    let said: Vec<&str> = hit.head.get_all("accept-ranges").collect();
    assert_eq!(said, ["none"], "{}", hit.head.raw);

    // The connection goes on after a part: its framing was right.
    let mut client = proxy.connect();
    let first = client.get_with("/r", &[("Range", "bytes=0-1")]);
    expect(&first, 206, "HIT", "/r");
    expect(&client.get("/r"), 200, "HIT", "/r #1");
}

#[test]
fn an_if_range_on_two_field_lines_is_no_validator_the_range_is_cut_under() {
    // RFC 9110 §13.1.5: If-Range holds one validator, and is no list: two
    // lines name none the stored response could match, so the Range is
    // ignored, whichever line names the stored tag (nginx refuses such a
    // request, 400). A part cut for the first line alone would be spliced
    // onto another version than the one the request also names.
    let (backend, proxy) =
        cached_fixed(200, &[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")]);
    expect(&get(&proxy, "/r"), 200, "MISS", "/r #1");
    for lines in [["\"v1\"", "\"v0\""], ["\"v0\"", "\"v1\""]] {
        let [first, second] = lines;
        let r = get_with(
            &proxy,
            "/r",
            &[
                ("Range", "bytes=1-3"),
                ("If-Range", first),
                ("If-Range", second),
            ],
        );
        expect(&r, 200, "HIT", "/r #1");
        assert_eq!(r.header("content-range"), None, "{}", r.head.raw);
    }
    // One line naming the stored tag still gets its part.
    let r = get_with(
        &proxy,
        "/r",
        &[("Range", "bytes=1-3"), ("If-Range", "\"v1\"")],
    );
    expect(&r, 206, "HIT", "r #");
    assert_eq!(backend.requests(), 1);
}

/// A backend that answers every GET with `body`, typed `content_type`,
/// storable for a minute and with validators.
fn serving(body: Vec<u8>, content_type: &'static str) -> Backend {
    Backend::start("origin", move |_, out| {
        let fields = [
            ("Content-Type", content_type),
            ("Cache-Control", "max-age=60"),
            ("ETag", "\"v1\""),
            ("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ];
        respond(out, 200, &fields, &body);
        Action::KeepAlive
    })
}

#[test]
fn several_ranges_of_a_stored_response_are_one_multipart_206() {
    let body = pattern(1000);
    let backend = serving(body.clone(), "application/pdf");
    let mut proxy = cached_proxy(&backend, |_| {});
    expect(
        &get(&proxy, "/doc"),
        200,
        "MISS",
        &String::from_utf8_lossy(&body),
    );

    let mut client = proxy.connect();
    let r = client.get_with("/doc", &[("Range", "bytes=0-99, 200-299,,-50")]);
    assert_eq!((r.status, x_cache(&r)), (206, "HIT"), "{}", r.head.raw);
    // The client read exactly Content-Length bytes: it is the body's length
    // if the body parses to its closing delimiter, with nothing after.
    let parts = multipart(&r);
    let expected = [(0, 99), (200, 299), (950, 999)];
    assert_eq!(parts.len(), expected.len());
    for ((fields, bytes), (start, end)) in parts.iter().zip(expected) {
        let content_range = format!("bytes {start}-{end}/1000");
        assert_eq!(
            fields,
            &[
                ("content-type".to_string(), "application/pdf".to_string()),
                ("content-range".to_string(), content_range),
            ]
        );
        assert_eq!(bytes, &body[start..=end], "{start}-{end}");
    }
    // The stored fields as a single 206 has them, but for Content-Type,
    // which is the multipart's own, once; no Content-Range at the top.
    let types: Vec<&str> = r.head.get_all("content-type").collect();
    assert_eq!(types.len(), 1, "{}", r.head.raw);
    assert_eq!(r.header("content-range"), None, "{}", r.head.raw);
    assert_eq!(
        r.head.get_all("content-length").count(),
        1,
        "{}",
        r.head.raw
    );
    for field in ["etag", "last-modified", "cache-control", "age", "date"] {
        assert!(r.head.has(field), "{field}: {}", r.head.raw);
    }
    // The connection goes on: the framing was right.
    let next = client.get_with("/doc", &[("Range", "bytes=10-19")]);
    assert_eq!(next.status, 206);
    assert_eq!(next.body, &body[10..20]);
    drop(client);

    // Out of order but disjoint: in the order asked, with a new boundary.
    let again = get_with(&proxy, "/doc", &[("Range", "bytes=900-909,0-9")]);
    let parts = multipart(&again);
    assert_eq!(parts[0].1, &body[900..910]);
    assert_eq!(parts[1].1, &body[..10]);
    assert_ne!(again.header("content-type"), r.header("content-type"));
    // A range past the end is left out; what is left goes as it would alone.
    let one = get_with(&proxy, "/doc", &[("Range", "bytes=5000-,10-19")]);
    assert_eq!(one.status, 206);
    assert_eq!(one.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(one.header("content-type"), Some("application/pdf"));
    assert_eq!(one.body, &body[10..20]);
    let none = get_with(&proxy, "/doc", &[("Range", "bytes=5000-,1000-1001")]);
    expect(&none, 416, "HIT", "");
    assert_eq!(none.header("content-range"), Some("bytes */1000"));
    // A HEAD's ranges still mean nothing.
    let mut client = proxy.connect();
    client.send(b"HEAD /doc HTTP/1.1\r\nHost: test.example\r\nRange: bytes=0-1,4-5\r\n\r\n");
    let head = client.head_response();
    assert_eq!(head.status, 200, "{}", head.head.raw);
    assert_eq!(head.header("content-length"), Some("1000"));
    assert_eq!(head.header("content-type"), Some("application/pdf"));
    drop(client);
    assert_eq!(backend.requests(), 1, "every answer from the one response");

    // The access log counts the body sent: frames and parts.
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let logged = format!("\"GET /doc HTTP/1.1\" 206 {} ", r.body.len());
    let lines = proxy.log_lines();
    assert!(lines[1].contains(&logged), "{logged} in {lines:?}");
}

#[test]
fn a_range_set_a_careful_server_declines_is_answered_whole() {
    let body = pattern(1000);
    let backend = serving(body.clone(), "video/mp4");
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/v");
    let many: Vec<String> = (0..33).map(|i| format!("{}-{}", 10 * i, 10 * i)).collect();
    let within: Vec<String> = (0..32).map(|i| format!("{}-{}", 10 * i, 10 * i)).collect();
    for range in [
        // More ranges than MAX_RANGES (32).
        format!("bytes={}", many.join(",")),
        // Overlapping: CVE-2011-3192's shape, each range near the whole body.
        "bytes=0-,1-,2-,3-,4-,5-,6-,7-".to_string(),
        "bytes=0-99,50-149".to_string(),
        "bytes=-100,900-999".to_string(),
        // One malformed range makes the header invalid.
        "bytes=0-9,x-y".to_string(),
    ] {
        let r = get_with(&proxy, "/v", &[("Range", &range)]);
        assert_eq!((r.status, x_cache(&r)), (200, "HIT"), "{range}");
        assert_eq!(r.body, body, "{range}");
        assert_eq!(r.header("content-type"), Some("video/mp4"), "{range}");
    }
    let most = get_with(
        &proxy,
        "/v",
        &[("Range", &format!("bytes={}", within.join(",")))],
    );
    assert_eq!(most.status, 206, "{}", most.head.raw);
    assert_eq!(multipart(&most).len(), 32);
    assert_eq!(backend.requests(), 1);
}

#[test]
fn a_200s_own_content_range_is_kept_but_never_in_a_part_cut_from_it() {
    // Served whole, the 200 is what the origin sent (as the MISS was); a
    // 206 cut from it says its own range, once: with the origin's beside
    // it, a client reading that one would misplace the part.
    let (_backend, proxy) = cached_fixed(
        200,
        &[
            ("Cache-Control", "max-age=60"),
            ("Content-Range", "bytes 0-4/5"),
            ("Content-Type", "text/plain"),
        ],
    );
    let miss = get(&proxy, "/c");
    assert_eq!(miss.header("content-range"), Some("bytes 0-4/5"));
    let whole = get(&proxy, "/c");
    expect(&whole, 200, "HIT", "/c #1");
    assert_eq!(whole.header("content-range"), Some("bytes 0-4/5"));
    let r = get_with(&proxy, "/c", &[("Range", "bytes=1-2")]);
    expect(&r, 206, "HIT", "c ");
    let ranges: Vec<&str> = r.head.get_all("content-range").collect();
    assert_eq!(ranges, ["bytes 1-2/5"], "{}", r.head.raw);
    let parts = get_with(&proxy, "/c", &[("Range", "bytes=0-0,2-2")]);
    assert_eq!(parts.status, 206, "{}", parts.head.raw);
    assert_eq!(parts.header("content-range"), None, "{}", parts.head.raw);
    for (fields, _) in multipart(&parts) {
        let ranges = fields.iter().filter(|(n, _)| n == "content-range").count();
        assert_eq!(ranges, 1, "{fields:?}");
    }
}

#[test]
fn a_range_only_if_cached_with_nothing_stored_gets_504() {
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=60")]);
    let asked = [("Range", "bytes=0-1"), ("Cache-Control", "only-if-cached")];
    assert_eq!(get_with(&proxy, "/o", &asked).status, 504);
    assert_eq!(backend.requests(), 0);
}

#[test]
fn a_range_with_nothing_stored_is_fetched_whole_and_cut_from_what_is_stored() {
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=60")]);
    let r = get_with(&proxy, "/n", &[("Range", "bytes=0-1")]);
    expect(&r, 206, "MISS", "/n");
    let seen = backend.seen();
    assert_eq!(seen[0].head.get("range"), None, "asked whole");
    // Stored whole: the next whole GET is a hit.
    expect(&get(&proxy, "/n"), 200, "HIT", "/n #1");
    assert_eq!(backend.requests(), 1);
}

#[test]
fn a_range_of_a_stale_entry_revalidates_it_first() {
    let (backend, proxy) = behind_cache(etag_origin(
        &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
        &[("ETag", "\"v1\""), ("Cache-Control", "max-age=60")],
    ));
    expect(&get(&proxy, "/s"), 200, "MISS", "/s #1");
    let r = get_with(&proxy, "/s", &[("Range", "bytes=1-2")]);
    expect(&r, 206, "REVALIDATED", "s ");
    // The cache's own request: conditional, whole.
    let asked = &backend.seen()[1];
    assert_eq!(asked.head.get("if-none-match"), Some("\"v1\""));
    assert_eq!(asked.head.get("range"), None);
    // Fresh again: the next part is a hit.
    expect(
        &get_with(&proxy, "/s", &[("Range", "bytes=0-1")]),
        206,
        "HIT",
        "/s",
    );
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_range_of_a_stale_entry_is_cut_from_a_new_body_or_from_the_stale_one() {
    let mode = Arc::new(AtomicU8::new(SERVE));
    let validated = [("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")];
    let backend = failing_origin(mode.clone(), &validated);
    let proxy = cached_proxy(&backend, |_| {});
    expect(&get(&proxy, "/x"), 200, "MISS", "/x #1");
    // The origin fails: the stale copy's part.
    mode.store(FAIL_500, Ordering::SeqCst);
    expect(
        &get_with(&proxy, "/x", &[("Range", "bytes=3-4")]),
        206,
        "STALE",
        "#1",
    );
    // It answers with a new body: stored, and the part cut from it.
    mode.store(SERVE, Ordering::SeqCst);
    expect(
        &get_with(&proxy, "/x", &[("Range", "bytes=3-4")]),
        206,
        "MISS",
        "#2",
    );
}

/// An origin answering `first` (a numbered body) once, then `later`.
fn two_phase(first: &[(&str, &str)], later: &[(&str, &str)]) -> Backend {
    let (first, later) = (fields(first), fields(later));
    let answered = AtomicUsize::new(0);
    origin(move |_| match answered.fetch_add(1, Ordering::SeqCst) {
        0 => (200, first.clone()),
        _ => (200, later.clone()),
    })
}

#[test]
fn a_range_revalidation_is_logged_with_its_backend() {
    let backend = etag_origin(
        &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
        &[("ETag", "\"v1\""), ("Cache-Control", "max-age=0")],
    );
    let mut proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/a");
    let part = get_with(&proxy, "/a", &[("Range", "bytes=0-1")]);
    expect(&part, 206, "REVALIDATED", "/a");
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert!(
        lines[1].contains(&format!("upstream={} ", backend.addr)),
        "{}",
        lines[1]
    );
}

#[test]
fn a_range_refetch_that_may_not_be_stored_is_dropped_and_the_range_asked_as_it_is() {
    let (backend, proxy) = behind_cache(two_phase(
        &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
        &[("Cache-Control", "no-store")],
    ));
    get(&proxy, "/u");
    // This origin ignores ranges: the answer to the range is whole.
    let r = get_with(&proxy, "/u", &[("Range", "bytes=0-1")]);
    expect(&r, 200, "BYPASS", "/u #3");
    let seen = backend.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].head.get("range"), None, "the cache's own request");
    assert_eq!(
        seen[2].head.get("range"),
        Some("bytes=0-1"),
        "asked as it is"
    );
    assert_eq!(cache_of(&proxy).len(), 0, "the old entry is dropped");
}

#[test]
fn a_range_with_no_store_does_not_store_what_it_brings() {
    let (_backend, proxy) = behind_cache(two_phase(
        &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
        &[("Cache-Control", "max-age=60"), ("ETag", "\"v2\"")],
    ));
    get(&proxy, "/n");
    let asked = [("Range", "bytes=0-1"), ("Cache-Control", "no-store")];
    assert_eq!(get_with(&proxy, "/n", &asked).status, 200, "as it is");
    assert_ne!(x_cache(&get(&proxy, "/n")), "HIT");
}

#[test]
fn only_if_cached_within_stale_while_revalidate_gets_the_stale_part() {
    let swr = [
        ("Cache-Control", "max-age=0, stale-while-revalidate=60"),
        ("ETag", "\"w\""),
    ];
    let (_backend, proxy) = behind_cache(two_phase(&swr, &swr));
    get(&proxy, "/w");
    let asked = [("Cache-Control", "only-if-cached"), ("Range", "bytes=0-1")];
    expect(&get_with(&proxy, "/w", &asked), 206, "STALE", "/w");
}

#[test]
fn a_range_of_an_entry_that_may_not_be_served_stale_asks_the_origin_once() {
    let mode = Arc::new(AtomicU8::new(SERVE));
    let must = [
        ("Cache-Control", "max-age=0, must-revalidate"),
        ("ETag", "\"v1\""),
    ];
    let backend = failing_origin(mode.clone(), &must);
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/f");
    mode.store(FAIL_500, Ordering::SeqCst);
    let r = get_with(&proxy, "/f", &[("Range", "bytes=0-1")]);
    assert_eq!((r.status, r.body_str().as_str()), (500, "broken"));
    assert_eq!(backend.requests(), 2, "once for the range, as it is");
}

/// An origin whose first answer is a small entry born stale, with a
/// validator; `later` answers the rest.
fn stale_then(later: impl Fn(&Seen, &mut TcpStream) -> Action + Send + Sync + 'static) -> Backend {
    let answered = AtomicUsize::new(0);
    Backend::start("origin", move |seen, out| {
        if answered.fetch_add(1, Ordering::SeqCst) == 0 {
            let stale = [("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")];
            respond(out, 200, &stale, b"0123456789");
            Action::KeepAlive
        } else {
            later(seen, out)
        }
    })
}

/// A new body that says its length and ends before its first byte (the
/// part's head, which goes with that byte, never went out), or one of
/// unknown length cut short (read whole before the part is cut).
#[test]
fn a_range_whose_refetch_is_cut_short_gets_the_stale_part() {
    let cuts: [&[u8]; 2] = [
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 1000\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nshort\r\n",
    ];
    for cut in cuts {
        let backend = stale_then(move |_, out| {
            let _ = out.write_all(cut);
            Action::Close
        });
        let proxy = cached_proxy(&backend, |_| {});
        get(&proxy, "/cut");
        expect(
            &get_with(&proxy, "/cut", &[("Range", "bytes=0-1")]),
            206,
            "STALE",
            "01",
        );
        assert_eq!(backend.requests(), 2);
    }
}

#[test]
fn a_heads_range_goes_neither_into_the_answer_nor_to_the_origin() {
    let backend = stale_then(|seen, out| {
        // An origin that would honour a HEAD's Range, and describe that
        // part in its 304.
        let ranged = seen.head.get("range").is_some();
        let part = if ranged {
            "Content-Range: bytes 0-1/10\r\n"
        } else {
            ""
        };
        let head = format!(
            "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=60\r\n{part}\r\n"
        );
        let _ = out.write_all(head.as_bytes());
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/t");
    let head = proxy.exchange(|c| {
        c.send(b"HEAD /t HTTP/1.1\r\nHost: test.example\r\nRange: bytes=0-1\r\n\r\n");
        c.head_response()
    });
    assert_eq!(
        (head.status, x_cache(&head)),
        (200, "REVALIDATED"),
        "{}",
        head.head.raw
    );
    assert_eq!(backend.seen()[1].head.get("range"), None);
    let whole = get(&proxy, "/t");
    expect(&whole, 200, "HIT", "0123456789");
    assert_eq!(whole.header("content-range"), None, "{}", whole.head.raw);
}

#[test]
fn https_keys_survive_a_restart() {
    let (_dir, file) = snapshot_file();
    let backend = Backend::start("app", |seen, out| {
        let proto = seen.field_or("x-forwarded-proto", "-");
        respond(
            out,
            200,
            &[("Cache-Control", "max-age=600")],
            proto.as_bytes(),
        );
        Action::KeepAlive
    });
    let trusted = |c: &mut Config| {
        cache_on(c);
        c.path_to_persistence = Some(file.clone());
        c.real_ip_from = vec![inverso::realip::Cidr::parse("127.0.0.1").unwrap()].into();
    };
    let tls = [("X-Forwarded-Proto", "https")];
    let mut first = start_proxy(&[backend.addr], trusted);
    assert_eq!(get_with(&first, "/p", &tls).body_str(), "https");
    assert_eq!(get(&first, "/p").body_str(), "http");
    assert!(first.shutdown(Duration::from_secs(5)));
    let second = start_proxy(&[dead_addr()], trusted);
    expect(&get_with(&second, "/p", &tls), 200, "HIT", "https");
    expect(&get(&second, "/p"), 200, "HIT", "http");
}

#[test]
fn a_range_within_stale_while_revalidate_is_answered_at_once_then_refreshed() {
    let (backend, proxy) = cached_fixed(
        200,
        &[
            ("Cache-Control", "max-age=0, stale-while-revalidate=60"),
            ("ETag", "\"w\""),
        ],
    );
    expect(&get(&proxy, "/w"), 200, "MISS", "/w #1");
    let r = get_with(&proxy, "/w", &[("Range", "bytes=0-1")]);
    expect(&r, 206, "STALE", "/w");
    // Refreshed after that answer, before the connection went idle.
    assert_eq!(backend.requests(), 2);
    assert_eq!(backend.seen()[1].head.get("range"), None);
}

#[test]
fn the_backends_own_x_cache_gives_way_to_ours() {
    // A cache behind the proxy says HIT; what clients read is this one's.
    let (_backend, proxy) = cached_fixed(200, &[("Cache-Control", "no-store"), ("X-Cache", "HIT")]);
    let r = get(&proxy, "/x");
    let all: Vec<&str> = r.head.get_all("x-cache").collect();
    assert_eq!(all, ["MISS"], "{}", r.head.raw);
    let r = request(&proxy, "POST", "/x", &[]);
    let all: Vec<&str> = r.head.get_all("x-cache").collect();
    assert_eq!(all, ["BYPASS"], "{}", r.head.raw);
}

#[test]
fn behind_a_tls_terminator_http_and_https_are_stored_apart() {
    // An application that redirects http to https: were both one key,
    // the stored redirect would be served to https clients, in a loop.
    let backend = Backend::start("app", |seen, out| {
        let proto = seen.field_or("x-forwarded-proto", "-");
        let cc = [("Cache-Control", "max-age=60")];
        if seen.method() == "POST" {
            respond(out, 204, &[], b"");
        } else if proto == "https" {
            respond(out, 200, &cc, b"page");
        } else {
            respond(
                out,
                301,
                &[("Location", "https://test.example/p"), cc[0]],
                b"",
            );
        }
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |c| {
        c.real_ip_from = vec![inverso::realip::Cidr::parse("127.0.0.1").unwrap()].into();
    });
    let tls = [("X-Forwarded-Proto", "https")];
    expect(&get(&proxy, "/p"), 301, "MISS", "");
    expect(&get_with(&proxy, "/p", &tls), 200, "MISS", "page");
    expect(&get(&proxy, "/p"), 301, "HIT", "");
    expect(&get_with(&proxy, "/p", &tls), 200, "HIT", "page");
    assert_eq!(backend.requests(), 2);
    // A change over either scheme drops both.
    assert_eq!(request(&proxy, "POST", "/p", &[]).status, 204);
    expect(&get(&proxy, "/p"), 301, "MISS", "");
    expect(&get_with(&proxy, "/p", &tls), 200, "MISS", "page");

    // From a peer not trusted, the field is the proxy's own: http.
    let proxy = cached_proxy(&backend, |_| {});
    expect(&get_with(&proxy, "/p", &tls), 301, "MISS", "");
}

#[test]
fn other_paths_and_hosts_are_other_keys() {
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=60")]);
    expect(&get(&proxy, "/k?x=1"), 200, "MISS", "/k?x=1 #1");
    expect(&get(&proxy, "/k?x=2"), 200, "MISS", "/k?x=2 #2");
    let other_host = proxy.exchange(|c| {
        c.send(b"GET /k?x=1 HTTP/1.1\r\nHost: other.example\r\n\r\n");
        c.response()
    });
    expect(&other_host, 200, "MISS", "/k?x=1 #3");
    expect(&get(&proxy, "/k?x=1"), 200, "HIT", "/k?x=1 #1");
    assert_eq!(backend.requests(), 3);
}

// ------------------------------------------------------------ storability

/// One storability rule: two identical GETs, and whether the second came
/// from the cache.
struct Case {
    name: &'static str,
    request: Vec<(String, String)>,
    status: u16,
    response: Vec<(String, String)>,
    unlabeled: bool,
    stored: bool,
}

fn case(name: &'static str, status: u16, response: &[(&str, &str)], stored: bool) -> Case {
    Case {
        name,
        request: Vec::new(),
        status,
        response: fields(response),
        unlabeled: false,
        stored,
    }
}

impl Case {
    fn request(mut self, headers: &[(&str, &str)]) -> Case {
        self.request = fields(headers);
        self
    }

    fn unlabeled(mut self) -> Case {
        self.unlabeled = true;
        self
    }

    /// `None` when the proxy behaved as expected, else what it did.
    fn run(&self) -> Option<String> {
        let response = self.response.clone();
        let status = self.status;
        let backend = origin(move |_| (status, response.clone()));
        let unlabeled = self.unlabeled;
        let proxy = cached_proxy(&backend, |c| c.cache_unlabeled = unlabeled);
        let request: Vec<(&str, &str)> = self
            .request
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let first = get_with(&proxy, "/c", &request);
        let second = get_with(&proxy, "/c", &request);
        let (want_requests, want_cache, want_body) = if self.stored {
            (1, "HIT", "/c #1")
        } else {
            (2, "MISS", "/c #2")
        };
        let got = (
            backend.requests(),
            x_cache(&second).to_string(),
            second.body_str(),
        );
        let ok = first.status == status
            && x_cache(&first) == "MISS"
            && got == (want_requests, want_cache.to_string(), want_body.to_string());
        (!ok).then(|| {
            format!(
                "{}: expected stored={} ({want_requests} backend requests, second {want_cache} {want_body:?}); \
                 got first {} {}, {} backend requests, second {} {:?}",
                self.name,
                self.stored,
                first.status,
                x_cache(&first),
                got.0,
                got.1,
                got.2
            )
        })
    }
}

#[track_caller]
fn check(cases: Vec<Case>) {
    let failures: Vec<String> = cases.iter().filter_map(Case::run).collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn what_is_stored_and_what_is_not() {
    check(vec![
        case("max-age", 200, &[("Cache-Control", "max-age=60")], true),
        case(
            "no-store",
            200,
            &[("Cache-Control", "no-store, max-age=60")],
            false,
        ),
        case(
            "private",
            200,
            &[("Cache-Control", "private, max-age=60")],
            false,
        ),
        case(
            "request no-store",
            200,
            &[("Cache-Control", "max-age=60")],
            false,
        )
        .request(&[("Cache-Control", "no-store")]),
        case(
            "vary *",
            200,
            &[("Cache-Control", "max-age=60"), ("Vary", "*")],
            false,
        ),
        case("no freshness, no validator", 200, &[], false),
        case(
            "no freshness, no validator, cache_unlabeled",
            200,
            &[],
            true,
        )
        .unlabeled(),
        case(
            "302 without freshness",
            302,
            &[("Location", "/elsewhere")],
            false,
        ),
        case(
            "302 with max-age",
            302,
            &[("Location", "/elsewhere"), ("Cache-Control", "max-age=60")],
            true,
        ),
        case("404 without freshness", 404, &[], false),
    ]);
}

#[test]
fn authorization_and_set_cookie_need_an_explicit_permission() {
    let auth = [("Authorization", "Bearer secret")];
    check(vec![
        case(
            "authorization, max-age",
            200,
            &[("Cache-Control", "max-age=60")],
            false,
        )
        .request(&auth),
        case(
            "authorization, public",
            200,
            &[("Cache-Control", "public, max-age=60")],
            true,
        )
        .request(&auth),
        case(
            "authorization, s-maxage",
            200,
            &[("Cache-Control", "s-maxage=60")],
            true,
        )
        .request(&auth),
        case(
            "authorization, must-revalidate",
            200,
            &[("Cache-Control", "max-age=60, must-revalidate")],
            true,
        )
        .request(&auth),
        case(
            "set-cookie, max-age",
            200,
            &[("Cache-Control", "max-age=60"), ("Set-Cookie", "id=1")],
            false,
        ),
        case(
            "set-cookie, public",
            200,
            &[
                ("Cache-Control", "public, max-age=60"),
                ("Set-Cookie", "id=1"),
            ],
            true,
        ),
    ]);
}

#[test]
fn freshness_comes_from_s_maxage_max_age_expires_or_last_modified() {
    // Each case: fields (computed when the response is sent), expected
    // fresh lifetime of the stored entry.
    type Fields = fn() -> Vec<(String, String)>;
    let cases: [(&str, Fields, Option<u64>); 5] = [
        (
            "s-maxage over max-age=0",
            || fields(&[("Cache-Control", "max-age=0, s-maxage=60")]),
            Some(60),
        ),
        (
            "s-maxage=0 over max-age (no validator: not stored)",
            || fields(&[("Cache-Control", "max-age=60, s-maxage=0")]),
            None,
        ),
        (
            "Expires minus Date",
            || fields(&[("Date", &now_date(0)), ("Expires", &now_date(100))]),
            Some(100),
        ),
        (
            "10% of Date minus Last-Modified",
            || fields(&[("Date", &now_date(0)), ("Last-Modified", &now_date(-1000))]),
            Some(100),
        ),
        (
            "max-age",
            || fields(&[("Cache-Control", "max-age=77")]),
            Some(77),
        ),
    ];
    let mut failures = Vec::new();
    for (name, make, want) in cases {
        let backend = origin(move |_| (200, make()));
        let proxy = cached_proxy(&backend, |_| {});
        get(&proxy, "/f");
        let second = get(&proxy, "/f");
        let lifetime = stored_lifetime(&proxy, "/f").map(|d| d.as_secs());
        let reused = backend.requests() == 1 && x_cache(&second) == "HIT";
        if lifetime != want || reused != want.is_some() {
            failures.push(format!(
                "{name}: expected lifetime {want:?}, got {lifetime:?}; second {} with {} backend requests",
                x_cache(&second),
                backend.requests()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn ttl_caps_what_the_origin_says() {
    let backend = fixed(200, &[("Cache-Control", "max-age=3600")]);
    let proxy = cached_proxy(&backend, |c| c.ttl = Duration::from_secs(30));
    get(&proxy, "/t");
    assert_eq!(stored_lifetime(&proxy, "/t"), Some(Duration::from_secs(30)));
    expect(&get(&proxy, "/t"), 200, "HIT", "/t #1");

    // Observed on the wire: 40 s old on arrival is fresh for the origin
    // (3600 s) but stale under a 30 s ttl.
    let old = fixed(200, &[("Cache-Control", "max-age=3600"), ("Age", "40")]);
    let proxy = cached_proxy(&old, |c| c.ttl = Duration::from_secs(30));
    expect(&get(&proxy, "/t"), 200, "MISS", "/t #1");
    expect(&get(&proxy, "/t"), 200, "MISS", "/t #2");
    assert_eq!(old.requests(), 2);
}

#[test]
fn a_lower_ttl_applies_to_what_is_already_stored() {
    // 100 s old on arrival, fresh for 600.
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=600"), ("Age", "100")]);
    get(&proxy, "/t");
    expect(&get(&proxy, "/t"), 200, "HIT", "/t #1");
    let mut next = Config::with_targets(vec![target(backend.addr)]);
    next.log_to_stdout = false;
    next.path_to_persistence = None;
    cache_on(&mut next);
    next.ttl = Duration::from_secs(60);
    proxy.handle().control().reload(next).unwrap();
    expect(&get(&proxy, "/t"), 200, "MISS", "/t #2");
}

#[test]
fn a_lower_ttl_ends_the_stale_window_of_what_is_stored_too() {
    // Stored an hour ago under `ttl = 1d`, fresh for a day, usable on
    // error a second past that; loaded under `ttl = 60s`: fresh for a
    // minute, stale for 3540 s, its one second of stale-if-error long past.
    let (_dir, file) = snapshot_file();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (hour, day) = (3_600_000, 86_400_000);
    let mut stored = record("/p", "an hour old");
    stored.stored_at = now - hour;
    stored.expires_at = now - hour + day;
    stored.stale_until = now - hour + day + 1000;
    write_snapshot(&file, [&stored]).unwrap();
    let proxy = start_proxy(&[dead_addr()], |c| {
        persisted(&file)(c);
        c.ttl = Duration::from_secs(60);
        c.stale_if_error = Duration::from_secs(1);
    });
    assert_eq!(cache_of(&proxy).len(), 1);
    let r = get(&proxy, "/p");
    assert_eq!(
        (r.status, r.header("x-cache")),
        (502, None),
        "{}",
        r.head.raw
    );
}

#[test]
fn cache_valid_stores_what_the_origin_says_nothing_about_by_status() {
    let backend = origin(|seen| match seen.path() {
        "/missing" => (404, Vec::new()),
        "/moved" => (302, fields(&[("Location", "/elsewhere")])),
        _ => (200, Vec::new()),
    });
    let proxy = cached_proxy(&backend, |c| {
        c.cache_valid = Arc::new(CacheValid::parse("200 302 10m, 404 1m").unwrap());
    });
    for (n, (path, status)) in [("/page", 200), ("/missing", 404), ("/moved", 302)]
        .into_iter()
        .enumerate()
    {
        expect(
            &get(&proxy, path),
            status,
            "MISS",
            &format!("{path} #{}", n + 1),
        );
        let hit = get(&proxy, path);
        assert_eq!((hit.status, x_cache(&hit)), (status, "HIT"), "{path}");
    }
    assert_eq!(
        stored_lifetime(&proxy, "/page"),
        Some(Duration::from_secs(600))
    );
    assert_eq!(
        stored_lifetime(&proxy, "/missing"),
        Some(Duration::from_secs(60))
    );
    assert_eq!(backend.requests(), 3);

    // Without it, none of them is stored.
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/page");
    assert_eq!(x_cache(&get(&proxy, "/page")), "MISS");
}

#[test]
fn a_post_is_never_answered_from_the_cache() {
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=60")]);
    expect(&get(&proxy, "/p"), 200, "MISS", "/p #1");
    let post = request(&proxy, "POST", "/p", &[]);
    expect(&post, 200, "BYPASS", "/p #2");
    let post = request(&proxy, "POST", "/p", &[]);
    expect(&post, 200, "BYPASS", "/p #3");
    assert_eq!(backend.requests(), 3);
    assert!(backend.seen().iter().skip(1).all(|s| s.method() == "POST"));
}

// ---------------------------------------------- fields for the cache alone

#[test]
fn surrogate_control_gives_the_cache_its_own_lifetime_and_stays_behind() {
    // Browsers are told not to store it; the cache, to keep it a minute.
    let (backend, proxy) = cached_fixed(
        200,
        &[
            ("Cache-Control", "no-store"),
            ("Surrogate-Control", "max-age=60;inverso"),
        ],
    );
    let miss = get(&proxy, "/s");
    expect(&miss, 200, "MISS", "/s #1");
    let hit = get(&proxy, "/s");
    expect(&hit, 200, "HIT", "/s #1");
    assert_eq!(backend.requests(), 1);
    assert_eq!(stored_lifetime(&proxy, "/s"), Some(Duration::from_secs(60)));
    for r in [&miss, &hit] {
        assert_eq!(r.header("surrogate-control"), None, "{}", r.head.raw);
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    // Nor in a range, or several, cut from the stored response.
    for range in ["bytes=0-1", "bytes=0-0,2-2"] {
        let part = get_with(&proxy, "/s", &[("Range", range)]);
        assert_eq!((part.status, x_cache(&part)), (206, "HIT"), "{range}");
        assert_eq!(part.header("surrogate-control"), None, "{}", part.head.raw);
    }
    // The backend hears who is asking, after what earlier surrogates said.
    let capability = proxy.exchange(|c| {
        c.get_with(
            "/other",
            &[("Surrogate-Capability", "cdn=\"Surrogate/1.0\"")],
        )
    });
    assert_eq!(capability.status, 200);
    let seen = backend.seen();
    assert_eq!(
        seen[0].head.get("surrogate-capability"),
        Some("inverso=\"Surrogate/1.0\"")
    );
    assert_eq!(
        seen[1].head.get("surrogate-capability"),
        Some("cdn=\"Surrogate/1.0\", inverso=\"Surrogate/1.0\"")
    );
}

#[test]
fn surrogate_control_for_another_device_or_switched_off_is_not_read() {
    let headers = [
        ("Cache-Control", "no-store"),
        ("Surrogate-Control", "max-age=60;cdn"),
    ];
    let (backend, proxy) = cached_fixed(200, &headers);
    expect(&get(&proxy, "/o"), 200, "MISS", "/o #1");
    expect(&get(&proxy, "/o"), 200, "MISS", "/o #2");
    assert_eq!(backend.requests(), 2);

    // With the device token empty, the field is neither read nor removed,
    // and no capability is announced.
    let backend = fixed(
        200,
        &[
            ("Cache-Control", "no-store"),
            ("Surrogate-Control", "max-age=60"),
        ],
    );
    let proxy = cached_proxy(&backend, |c| c.surrogate_id = None);
    let first = get(&proxy, "/n");
    expect(&first, 200, "MISS", "/n #1");
    assert_eq!(first.header("surrogate-control"), Some("max-age=60"));
    expect(&get(&proxy, "/n"), 200, "MISS", "/n #2");
    assert_eq!(backend.seen()[0].head.get("surrogate-capability"), None);
}

#[test]
fn x_accel_expires_gives_the_cache_its_own_lifetime_as_in_nginx() {
    let (backend, proxy) = cached_fixed(
        200,
        &[("Cache-Control", "private"), ("X-Accel-Expires", "30")],
    );
    let miss = get(&proxy, "/x");
    expect(&miss, 200, "MISS", "/x #1");
    let hit = get(&proxy, "/x");
    expect(&hit, 200, "HIT", "/x #1");
    assert_eq!(backend.requests(), 1);
    assert_eq!(stored_lifetime(&proxy, "/x"), Some(Duration::from_secs(30)));
    for r in [&miss, &hit] {
        assert_eq!(r.header("x-accel-expires"), None, "{}", r.head.raw);
        assert_eq!(r.header("cache-control"), Some("private"));
    }

    // `0`: not stored, whatever Cache-Control says.
    let (backend, proxy) = cached_fixed(
        200,
        &[("Cache-Control", "max-age=60"), ("X-Accel-Expires", "0")],
    );
    expect(&get(&proxy, "/z"), 200, "MISS", "/z #1");
    expect(&get(&proxy, "/z"), 200, "MISS", "/z #2");
    assert_eq!(backend.requests(), 2);

    // Switched off, it is one more field.
    let backend = fixed(
        200,
        &[("Cache-Control", "private"), ("X-Accel-Expires", "30")],
    );
    let proxy = cached_proxy(&backend, |c| c.x_accel_expires = false);
    let first = get(&proxy, "/f");
    assert_eq!(first.header("x-accel-expires"), Some("30"));
    expect(&get(&proxy, "/f"), 200, "MISS", "/f #2");
}

#[test]
fn without_a_cache_fields_for_it_pass_through() {
    let backend = fixed(
        200,
        &[
            ("Surrogate-Control", "max-age=60"),
            ("X-Accel-Expires", "30"),
        ],
    );
    let proxy = start_proxy(&[backend.addr], |_| {});
    let r = get(&proxy, "/p");
    assert_eq!(r.header("surrogate-control"), Some("max-age=60"));
    assert_eq!(r.header("x-accel-expires"), Some("30"));
    assert_eq!(backend.seen()[0].head.get("surrogate-capability"), None);
}

#[test]
fn a_lifetime_for_the_cache_alone_is_no_permission_to_store_an_authenticated_answer() {
    // An application that gives every page a lifetime at the edge (a
    // middleware's Surrogate-Control, nginx's X-Accel-Expires) and marks
    // a user's own page `private` for browsers: RFC 9111 §3.5 lets a
    // shared cache store the answer to a request with credentials only
    // on Cache-Control's `public`, `s-maxage` or `must-revalidate`, and
    // Squid stores none while Surrogate-Control applies.
    for own in [
        ("Surrogate-Control", "max-age=60"),
        ("X-Accel-Expires", "60"),
    ] {
        let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "private"), own]);
        let alice = get_with(&proxy, "/me", &[("Authorization", "Basic YWxpY2U6cw==")]);
        expect(&alice, 200, "MISS", "/me #1");
        let anonymous = get(&proxy, "/me");
        expect(&anonymous, 200, "MISS", "/me #2");
        assert_eq!(backend.requests(), 2, "{own:?}");
    }
    // With Cache-Control's word, the lifetime is the cache's own.
    let (backend, proxy) = cached_fixed(
        200,
        &[
            ("Cache-Control", "public, max-age=5"),
            ("Surrogate-Control", "max-age=60"),
        ],
    );
    let auth = [("Authorization", "Basic YWxpY2U6cw==")];
    expect(&get_with(&proxy, "/p", &auth), 200, "MISS", "/p #1");
    expect(&get(&proxy, "/p"), 200, "HIT", "/p #1");
    assert_eq!(stored_lifetime(&proxy, "/p"), Some(Duration::from_secs(60)));
    assert_eq!(backend.requests(), 1);
}

#[test]
fn fields_for_the_cache_alone_stay_behind_once_a_reload_turns_them_on() {
    // Stored while neither was read (and passed on, for a CDN in front):
    // once a reload makes them this cache's own, no response carries them,
    // hits of what was stored before included, as after a restart.
    let backend = fixed(
        200,
        &[
            ("Cache-Control", "max-age=60"),
            ("Surrogate-Control", "max-age=600"),
            ("X-Accel-Expires", "600"),
            ("Inverso-Cache-Control", "max-age=600"),
        ],
    );
    let proxy = cached_proxy(&backend, |c| {
        c.surrogate_id = None;
        c.x_accel_expires = false;
    });
    let first = get(&proxy, "/r");
    expect(&first, 200, "MISS", "/r #1");
    assert_eq!(first.header("surrogate-control"), Some("max-age=600"));
    let mut next = Config::with_targets(vec![target(backend.addr)]);
    next.log_to_stdout = false;
    next.path_to_persistence = None;
    next.targeted_cache_control = targeted_fields(&["Inverso-Cache-Control"]);
    cache_on(&mut next);
    proxy.handle().control().reload(next).unwrap();
    for range in [None, Some("bytes=0-1"), Some("bytes=0-0,2-2")] {
        let r = match range {
            None => get(&proxy, "/r"),
            Some(range) => get_with(&proxy, "/r", &[("Range", range)]),
        };
        assert_eq!(x_cache(&r), "HIT", "{range:?}");
        assert_eq!(r.header("surrogate-control"), None, "{}", r.head.raw);
        assert_eq!(r.header("x-accel-expires"), None, "{}", r.head.raw);
        assert_eq!(r.header("inverso-cache-control"), None, "{}", r.head.raw);
    }
    assert_eq!(backend.requests(), 1);
}

/// The `targeted_cache_control` value of the tests that read RFC 9213
/// fields.
fn targeted_fields(names: &[&str]) -> Arc<[Box<str>]> {
    names
        .iter()
        .map(|n| n.to_ascii_lowercase().into())
        .collect()
}

#[test]
fn the_caches_own_fields_never_reach_a_client_on_an_interim_response() {
    // What a backend says to this cache alone is taken out of every
    // response a client gets: a `103` it adds them to (a framework that
    // puts its headers on every head it writes) is one of those.
    let backend = Backend::start("origin", |_, out| {
        out.write_all(
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\
              Surrogate-Control: max-age=60\r\nX-Accel-Expires: 60\r\n\
              Inverso-Cache-Control: max-age=60\r\nCDN-Cache-Control: max-age=60\r\n\r\n",
        )
        .unwrap();
        respond(out, 200, &[("Cache-Control", "max-age=60")], b"final");
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |c| {
        c.surrogate_id = Some("inverso".into());
        c.x_accel_expires = true;
        c.targeted_cache_control = targeted_fields(&["Inverso-Cache-Control", "CDN-Cache-Control"]);
    });
    let (hints, last) = proxy.exchange(|c| (c.get("/e"), c.response()));
    assert_eq!(hints.status, 103, "{}", hints.head.raw);
    assert_eq!(hints.header("link"), Some("</s.css>; rel=preload"));
    for own in [
        "surrogate-control",
        "x-accel-expires",
        "inverso-cache-control",
    ] {
        assert_eq!(hints.header(own), None, "{own}:\n{}", hints.head.raw);
    }
    // As on a final response: for the CDNs in front too.
    assert_eq!(hints.header("cdn-cache-control"), Some("max-age=60"));
    expect(&last, 200, "MISS", "final");
}

#[test]
fn a_listed_targeted_field_gives_the_cache_its_lifetime_and_only_its_own_stays_behind() {
    // RFC 9213: browsers are told not to store it; this cache reads its
    // own field first; CDN-Cache-Control goes on to the CDNs in front.
    let (backend, proxy) = behind_cache(fixed(
        200,
        &[
            ("Cache-Control", "no-store"),
            ("CDN-Cache-Control", "max-age=600"),
            ("Inverso-Cache-Control", "max-age=60"),
            ("Akamai-Cache-Control", "max-age=5"),
        ],
    ));
    let proxy_reading = cached_proxy(&backend, |c| {
        c.targeted_cache_control = targeted_fields(&["Inverso-Cache-Control", "CDN-Cache-Control"]);
    });
    // Not listed (the default): none is read, and all pass on.
    let plain = get(&proxy, "/t");
    expect(&plain, 200, "MISS", "/t #1");
    assert_eq!(plain.header("inverso-cache-control"), Some("max-age=60"));
    expect(&get(&proxy, "/t"), 200, "MISS", "/t #2");

    let miss = get(&proxy_reading, "/t");
    expect(&miss, 200, "MISS", "/t #3");
    let hit = get(&proxy_reading, "/t");
    expect(&hit, 200, "HIT", "/t #3");
    let part = get_with(&proxy_reading, "/t", &[("Range", "bytes=0-1")]);
    assert_eq!((part.status, x_cache(&part)), (206, "HIT"));
    assert_eq!(
        stored_lifetime(&proxy_reading, "/t"),
        Some(Duration::from_secs(60))
    );
    for r in [&miss, &hit, &part] {
        assert_eq!(r.header("inverso-cache-control"), None, "{}", r.head.raw);
        assert_eq!(r.header("cdn-cache-control"), Some("max-age=600"));
        assert_eq!(r.header("akamai-cache-control"), Some("max-age=5"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    assert_eq!(backend.requests(), 3);
}

#[test]
fn a_switch_of_protocols_does_not_carry_fields_for_the_cache_alone() {
    let backend = Backend::start("upgrade", |_, out| {
        let _ = out.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-test\r\nConnection: Upgrade\r\n\
              Surrogate-Control: max-age=60\r\nX-Accel-Expires: 60\r\n\r\n",
        );
        Action::Close
    });
    let proxy = cached_proxy(&backend, |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /t HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x-test\r\n\r\n");
    let switched = client.try_response(true).unwrap();
    assert_eq!(switched.status, 101);
    assert_eq!(
        switched.header("surrogate-control"),
        None,
        "{}",
        switched.head.raw
    );
    assert_eq!(
        switched.header("x-accel-expires"),
        None,
        "{}",
        switched.head.raw
    );
}

#[test]
fn a_zero_lifetime_for_the_cache_alone_keeps_a_page_asked_with_cookies_out() {
    // "Not at the edge" for a signed-in user's page: a lifetime of zero,
    // as `max-age=0` in Cache-Control is. Stored, it would be revalidated
    // with Alice's validator for Bob (the origin confirms the resource)
    // and served to him stale when the origin fails.
    for own in [
        ("Surrogate-Control", "max-age=0"),
        ("X-Accel-Expires", "@1"),
    ] {
        let backend = etag_origin(&[("ETag", "\"v1\""), own], &[own]);
        let proxy = cached_proxy(&backend, |_| {});
        let alice = get_with(&proxy, "/account", &[("Cookie", "sid=alice")]);
        expect(&alice, 200, "MISS", "/account #1");
        assert!(stored_keys(&proxy).is_empty(), "{own:?}");
        let bob = get_with(&proxy, "/account", &[("Cookie", "sid=bob")]);
        expect(&bob, 200, "MISS", "/account #2");
    }
}

#[test]
fn a_lifetime_for_the_cache_alone_survives_a_restart_unserved() {
    let (_dir, file) = snapshot_file();
    let backend = fixed(
        200,
        &[
            ("Cache-Control", "no-cache"),
            ("Surrogate-Control", "max-age=600"),
        ],
    );
    let mut first = start_proxy(&[backend.addr], persisted(&file));
    expect(&get(&first, "/k"), 200, "MISS", "/k #1");
    assert!(first.shutdown(Duration::from_secs(1)));

    let second = start_proxy(&[dead_addr()], persisted(&file));
    let hit = get(&second, "/k");
    expect(&hit, 200, "HIT", "/k #1");
    assert_eq!(hit.header("surrogate-control"), None, "{}", hit.head.raw);
    assert_eq!(hit.header("cache-control"), Some("no-cache"));
}

// ------------------------------------------------------ request directives

#[test]
fn no_cache_and_pragma_no_cache_go_to_the_origin() {
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=60")]);
    expect(&get(&proxy, "/n"), 200, "MISS", "/n #1");

    for (n, field) in [
        (2, ("Cache-Control", "no-cache")),
        (3, ("Pragma", "no-cache")),
    ] {
        let r = get_with(&proxy, "/n", &[field]);
        assert_eq!(
            (r.status, r.body_str()),
            (200, format!("/n #{n}")),
            "{}",
            r.head.raw
        );
        assert_ne!(x_cache(&r), "HIT");
        assert_eq!(backend.requests(), n);
    }

    // What came back replaced the stored copy.
    expect(&get(&proxy, "/n"), 200, "HIT", "/n #3");
    assert_eq!(backend.requests(), 3);
}

#[test]
fn ignore_client_cache_control_answers_a_reload_from_the_cache() {
    let backend = origin(|seen| {
        // What the origin saw of the client's directives.
        let cc = seen.field_or("cache-control", "-");
        (
            200,
            vec![
                ("Cache-Control".into(), "max-age=60".into()),
                ("X-Seen-CC".into(), cc),
            ],
        )
    });
    let proxy = cached_proxy(&backend, |c| c.ignore_client_cache_control = true);
    let first = get_with(&proxy, "/r", &[("Cache-Control", "no-cache")]);
    assert_eq!((first.status, x_cache(&first)), (200, "MISS"));
    assert_eq!(first.header("x-seen-cc"), Some("-"), "not sent on");
    for field in [
        ("Cache-Control", "no-cache"),
        ("Cache-Control", "max-age=0"),
        ("Cache-Control", "no-store"),
        ("Pragma", "no-cache"),
    ] {
        let r = get_with(&proxy, "/r", &[field]);
        assert_eq!((r.status, x_cache(&r)), (200, "HIT"), "{field:?}");
    }
    let r = head_with(&proxy, "/r", &[("Cache-Control", "no-cache")]);
    assert_eq!((r.status, x_cache(&r)), (200, "HIT"));
    assert_eq!(backend.requests(), 1);

    // Other methods keep theirs.
    request(&proxy, "POST", "/r", &[("Cache-Control", "no-cache")]);
    let seen = backend.seen();
    assert_eq!(
        seen.last().unwrap().head.get("cache-control"),
        Some("no-cache")
    );
}

/// ETag "v1"; a request carrying it gets 304 with `on_304` fields.
fn etag_origin(on_200: &[(&str, &str)], on_304: &[(&str, &str)]) -> Backend {
    let on_200 = fields(on_200);
    let on_304 = fields(on_304);
    origin(move |seen| {
        if seen.head.get("if-none-match") == Some("\"v1\"") {
            (304, on_304.clone())
        } else {
            (200, on_200.clone())
        }
    })
}

#[test]
fn request_max_age_zero_forces_revalidation() {
    let (backend, proxy) = behind_cache(etag_origin(
        &[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")],
        &[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")],
    ));
    expect(&get(&proxy, "/m"), 200, "MISS", "/m #1");
    // The entry is well under a second old here.
    let r = get_with(&proxy, "/m", &[("Cache-Control", "max-age=0")]);
    assert_eq!(
        backend.requests(),
        2,
        "max-age=0 must reach the origin; got {} {}:\n{}",
        r.status,
        x_cache(&r),
        r.head.raw
    );
    expect(&r, 200, "REVALIDATED", "/m #1");
    assert_eq!(backend.seen()[1].head.get("if-none-match"), Some("\"v1\""));
}

#[test]
fn request_max_age_sends_an_older_entry_to_the_origin() {
    // 10 s old on arrival, fresh for 60.
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=60"), ("Age", "10")]);
    expect(&get(&proxy, "/m"), 200, "MISS", "/m #1");
    let hit = get(&proxy, "/m");
    expect(&hit, 200, "HIT", "/m #1");
    let age: u64 = hit.header("age").unwrap().parse().unwrap();
    assert!((10..60).contains(&age), "Age {age}");

    expect(
        &get_with(&proxy, "/m", &[("Cache-Control", "max-age=30")]),
        200,
        "HIT",
        "/m #1",
    );
    let r = get_with(&proxy, "/m", &[("Cache-Control", "max-age=5")]);
    assert_eq!(r.body_str(), "/m #2", "{}", r.head.raw);
    assert_eq!(backend.requests(), 2);
}

#[test]
fn only_if_cached_gets_504_on_a_miss_and_the_entry_on_a_hit() {
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=60")]);
    let r = get_with(&proxy, "/o", &[("Cache-Control", "only-if-cached")]);
    assert_eq!(r.status, 504, "{}", r.head.raw);
    assert_eq!(backend.requests(), 0);
    // No X-Cache on that answer, so no cache result counted for it.
    assert_eq!(cache_of(&proxy).stats.misses.load(Ordering::Relaxed), 0);

    get(&proxy, "/o");
    let r = get_with(&proxy, "/o", &[("Cache-Control", "only-if-cached")]);
    expect(&r, 200, "HIT", "/o #1");
    assert_eq!(backend.requests(), 1);
}

#[test]
fn only_if_cached_with_only_a_stale_entry_gets_504() {
    // RFC 9111 §5.2.1.7: serve a stored response that satisfies the
    // request, or 504; never ask the origin.
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=50"), ("Age", "100")]);
    get(&proxy, "/o");
    let r = get_with(&proxy, "/o", &[("Cache-Control", "only-if-cached")]);
    assert_eq!(
        (r.status, backend.requests()),
        (504, 1),
        "only-if-cached reached the origin: {} {}:\n{}",
        r.status,
        x_cache(&r),
        r.head.raw
    );
    // With max-stale the stale entry satisfies the request.
    let r = get_with(
        &proxy,
        "/o",
        &[("Cache-Control", "only-if-cached, max-stale")],
    );
    expect(&r, 200, "STALE", "/o #1");
}

#[test]
fn max_stale_serves_an_expired_entry() {
    // 100 s old on arrival, fresh for 50: stale by 50 s at once.
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=50"), ("Age", "100")]);
    expect(&get(&proxy, "/s"), 200, "MISS", "/s #1");
    assert_eq!(cache_of(&proxy).len(), 1);

    let r = get_with(&proxy, "/s", &[("Cache-Control", "max-stale")]);
    expect(&r, 200, "STALE", "/s #1");
    let age: u64 = r.header("age").unwrap().parse().unwrap();
    assert!(age >= 100, "Age {age}");
    let r = get_with(&proxy, "/s", &[("Cache-Control", "max-stale=120")]);
    expect(&r, 200, "STALE", "/s #1");
    assert_eq!(backend.requests(), 1);

    // Stale by more than the client accepts, or no max-stale at all.
    let r = get_with(&proxy, "/s", &[("Cache-Control", "max-stale=10")]);
    assert_eq!(r.body_str(), "/s #2", "{}", r.head.raw);
    let r = get(&proxy, "/s");
    assert_eq!(r.body_str(), "/s #3", "{}", r.head.raw);
    assert_eq!(backend.requests(), 3);
}

// -------------------------------------------------------------------- Vary

/// A backend whose answers vary on `Accept-Encoding`, naming the value,
/// with `more` fields.
fn varying_backend(more: &'static [(&'static str, &'static str)]) -> Backend {
    Backend::start("vary", move |seen, out| {
        let encoding = seen.field_or("accept-encoding", "none");
        let mut fields = vec![("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")];
        fields.extend_from_slice(more);
        respond(out, 200, &fields, format!("encoded {encoding}").as_bytes());
        Action::KeepAlive
    })
}

#[test]
fn vary_keeps_one_entry_per_value() {
    let backend = varying_backend(&[]);
    let proxy = cached_proxy(&backend, |_| {});
    let gzip = [("Accept-Encoding", "gzip")];
    let br = [("Accept-Encoding", "br")];

    expect(&get_with(&proxy, "/v", &gzip), 200, "MISS", "encoded gzip");
    expect(&get_with(&proxy, "/v", &br), 200, "MISS", "encoded br");
    assert_eq!(backend.requests(), 2);
    expect(&get_with(&proxy, "/v", &gzip), 200, "HIT", "encoded gzip");
    expect(&get_with(&proxy, "/v", &br), 200, "HIT", "encoded br");
    assert_eq!(backend.requests(), 2);
    assert_eq!(cache_of(&proxy).len(), 2);

    expect(&get(&proxy, "/v"), 200, "MISS", "encoded none");
    expect(&get(&proxy, "/v"), 200, "HIT", "encoded none");
    assert_eq!(backend.requests(), 3);
    // An empty value is a value: it matches only an empty value (RFC 9111
    // §4.1), not the absence the entry above was stored for.
    let empty = [("Accept-Encoding", "")];
    expect(&get_with(&proxy, "/v", &empty), 200, "MISS", "encoded ");
    expect(&get_with(&proxy, "/v", &empty), 200, "HIT", "encoded ");
    expect(&get(&proxy, "/v"), 200, "HIT", "encoded none");
}

#[test]
fn vary_treats_spellings_of_one_list_as_one_value() {
    let (backend, proxy) = cached_fixed(
        200,
        &[
            ("Cache-Control", "max-age=60"),
            ("Vary", "Accept-Language, Accept"),
        ],
    );
    let asked = [("Accept-Language", "en, de"), ("Accept", "1,2")];
    expect(&get_with(&proxy, "/l", &asked), 200, "MISS", "/l #1");
    let respelled = [
        ("Accept-Language", " EN ,de"),
        ("Accept", "1"),
        ("Accept", " 2 "),
    ];
    expect(&get_with(&proxy, "/l", &respelled), 200, "HIT", "/l #1");
    // Order may be a preference; case, in a field that is not known to
    // ignore it, may matter.
    let reordered = [("Accept-Language", "de, en"), ("Accept", "1,2")];
    expect(&get_with(&proxy, "/l", &reordered), 200, "MISS", "/l #2");
    let upper = [
        ("Accept-Language", "en,de"),
        ("Accept", "1,2"),
        ("Accept", "A"),
    ];
    expect(&get_with(&proxy, "/l", &upper), 200, "MISS", "/l #3");
    let lower = [("Accept-Language", "en,de"), ("Accept", "1,2,a")];
    expect(&get_with(&proxy, "/l", &lower), 200, "MISS", "/l #4");
    assert_eq!(backend.requests(), 4);
}

#[test]
fn vary_on_a_field_that_is_no_list_keeps_its_spelling() {
    // A comma in a User-Agent is no list separator ("(KHTML, like
    // Gecko)"), nor is a second line a list element: a backend that reads
    // the first line, or does not know a UA spelled otherwise ("update
    // your browser"), answers these otherwise, and that answer must not
    // go to every client that sends the common spelling.
    let (backend, proxy) = cached_fixed(
        200,
        &[("Cache-Control", "max-age=60"), ("Vary", "User-Agent")],
    );
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
                  (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    let (first, second) = chrome.split_once(", ").unwrap();
    let odd: [&[(&str, &str)]; 3] = [
        &[("User-Agent", &chrome.replace(", ", ","))],
        &[("User-Agent", &format!("{chrome},"))],
        &[("User-Agent", first), ("User-Agent", second)],
    ];
    for (i, ua) in odd.iter().enumerate() {
        let body = format!("/ua #{}", i + 1);
        expect(&get_with(&proxy, "/ua", ua), 200, "MISS", &body);
    }
    let common = get_with(&proxy, "/ua", &[("User-Agent", chrome)]);
    expect(&common, 200, "MISS", "/ua #4");
    expect(
        &get_with(&proxy, "/ua", &[("User-Agent", chrome)]),
        200,
        "HIT",
        "/ua #4",
    );
    assert_eq!(backend.requests(), 4);
}

/// A CGI-style backend (Python's WSGI, Rack too): `Accept-Language` and
/// `Accept_Language` are both its `HTTP_ACCEPT_LANGUAGE`, the last sent
/// winning. It answers `lang=VALUE` (`lang=none` without either), varying
/// on `Accept-Language`, with `cache_control` and an `ETag` it never
/// matches (a revalidation brings a 200).
fn cgi_language_origin(cache_control: &'static str) -> Backend {
    Backend::start("cgi", move |seen, out| {
        let mut lang = "none".to_string();
        for (name, value) in &seen.head.headers {
            if name
                .replace('_', "-")
                .eq_ignore_ascii_case("accept-language")
            {
                lang = value.clone();
            }
        }
        let fields = [
            ("Cache-Control", cache_control),
            ("Vary", "Accept-Language"),
            ("ETag", "\"v1\""),
        ];
        respond(out, 200, &fields, format!("lang={lang}").as_bytes());
        Action::KeepAlive
    })
}

#[test]
fn vary_stores_no_answer_to_a_request_spelling_the_field_with_underscores() {
    // With `underscores_in_headers`, the backend may have read the field in
    // the spelling the variant key does not hold: its answer would be
    // filed under the `en` variant, for everyone who sends `en`.
    let backend = cgi_language_origin("max-age=60");
    let proxy = cached_proxy(&backend, |c| c.underscores_in_headers = true);
    let en = [("Accept-Language", "en")];
    let evil = "x><script>alert(1)</script";
    let both = [("Accept-Language", "en"), ("Accept_Language", evil)];
    let poisoned = format!("lang={evil}");
    expect(&get_with(&proxy, "/", &both), 200, "MISS", &poisoned);
    expect(&get_with(&proxy, "/", &en), 200, "MISS", "lang=en");
    expect(&get_with(&proxy, "/", &en), 200, "HIT", "lang=en");
    // Alone, it would be filed under the variant without the field.
    let alone = [("Accept_Language", evil)];
    expect(&get_with(&proxy, "/a", &alone), 200, "MISS", &poisoned);
    expect(&get(&proxy, "/a"), 200, "MISS", "lang=none");
    assert_eq!(backend.requests(), 4);
    assert_eq!(stored_keys(&proxy).len(), 2);
    // Such a request may still be answered from the variant its
    // `Accept-Language` keys: what every client that sends `en` gets.
    expect(&get_with(&proxy, "/", &both), 200, "HIT", "lang=en");
    // A field with `_` that no Vary names keeps nothing out.
    let de = [("Accept-Language", "de")];
    let traced = [("Accept-Language", "de"), ("X_Trace", "1")];
    expect(&get_with(&proxy, "/", &traced), 200, "MISS", "lang=de");
    expect(&get_with(&proxy, "/", &de), 200, "HIT", "lang=de");
    assert_eq!(backend.requests(), 5);
}

/// A backend that serves the path an `X-Original-URL` or `X-Rewrite-URL`
/// names in place of the request's own, as Symfony before 3.4.14, Zend
/// Framework and Drupal on it did for IIS's URL Rewrite: `page PATH`,
/// fresh for a minute.
fn url_override_origin() -> Backend {
    Backend::start("legacy", |seen, out| {
        let path = (seen.head.get("x-original-url"))
            .or(seen.head.get("x-rewrite-url"))
            .unwrap_or(seen.path())
            .to_string();
        let fields = [("Cache-Control", "max-age=60")];
        respond(out, 200, &fields, format!("page {path}").as_bytes());
        Action::KeepAlive
    })
}

#[test]
fn a_clients_url_override_is_not_stored_under_the_url_it_asked_for() {
    // The key is the request's URL; were a client's `X-Original-URL` sent
    // on, the page it names would be filed under that URL for everyone
    // ("web cache poisoning" by an unkeyed field), and get past a route
    // that closes the path it names.
    let backend = url_override_origin();
    let proxy = cached_proxy(&backend, |_| {});
    for (n, field) in ["X-Original-URL", "X-Rewrite-URL"].into_iter().enumerate() {
        let path = format!("/home{n}");
        let own = format!("page {path}");
        let forged = [(field, "/admin/users")];
        expect(&get_with(&proxy, &path, &forged), 200, "MISS", &own);
        expect(&get(&proxy, &path), 200, "HIT", &own);
    }
    assert_eq!(backend.requests(), 2);
}

/// A backend that takes a request for the method a method-override field
/// names, whatever its own (Play 1 reads `X-HTTP-Method-Override` so):
/// `page PATH` to a `GET`, fresh for a minute; 404 (no such route) to
/// anything else, which says nothing of its freshness.
fn method_override_origin() -> Backend {
    Backend::start("play", |seen, out| {
        let overridden = (seen.head.headers.iter()).find(|(name, _)| {
            [
                "x-http-method-override",
                "x-http-method",
                "x-method-override",
            ]
            .iter()
            .any(|m| name.replace('_', "-").eq_ignore_ascii_case(m))
        });
        let method = overridden.map_or(seen.method(), |(_, value)| value.as_str());
        match method {
            "GET" | "HEAD" => {
                let fields = [("Cache-Control", "max-age=60")];
                let body = format!("page {}", seen.path());
                respond(out, 200, &fields, body.as_bytes());
            }
            _ => respond(out, 404, &[], b"no route"),
        }
        Action::KeepAlive
    })
}

#[test]
fn a_get_with_a_method_override_is_neither_stored_nor_answered_from_the_cache() {
    // To such a backend it is another method's request: its 404, stored
    // under the GET's key (as `cache_valid` has 404s stored), would be
    // what everyone asking for the page gets.
    let backend = method_override_origin();
    let proxy = cached_proxy(&backend, |c| {
        c.underscores_in_headers = true;
        c.cache_valid = Arc::new(CacheValid::parse("404 1m").unwrap());
    });
    let overrides = [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
        "X_HTTP_Method_Override",
    ];
    for (n, field) in overrides.into_iter().enumerate() {
        let path = format!("/item{n}");
        let page = format!("page {path}");
        let overridden = get_with(&proxy, &path, &[(field, "DELETE")]);
        assert_eq!(overridden.status, 404, "{field}");
        expect(&get(&proxy, &path), 200, "MISS", &page);
        assert_eq!(overridden.head.get("x-cache"), Some("BYPASS"), "{field}");
        // Nor is it answered from what the GET stored.
        let again = get_with(&proxy, &path, &[(field, "DELETE")]);
        assert_eq!(again.status, 404, "{field}");
        expect(&get(&proxy, &path), 200, "HIT", &page);
    }
    assert_eq!(backend.requests(), 3 * overrides.len());
}

#[test]
fn a_method_override_invalidates_the_page_when_it_names_an_unsafe_method() {
    // A backend that takes `X-HTTP-Method-Override: DELETE` for a DELETE
    // (204) has the page go, as a DELETE would. One naming a safe method
    // is a GET to every backend, whether it reads the field or not: as
    // any GET (RFC 9111 §4.4), it drops nothing (else any client could
    // empty the cache of any page at will).
    let backend = Backend::start("play", |seen, out| {
        match seen.head.get("x-http-method-override") {
            Some("DELETE") => respond(out, 204, &[], b""),
            _ => {
                let fields = [("Cache-Control", "max-age=60")];
                let page = format!("page {}", seen.path());
                respond(out, 200, &fields, page.as_bytes());
            }
        }
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |_| {});
    expect(&get(&proxy, "/item"), 200, "MISS", "page /item");
    for (field, method) in [
        ("X-HTTP-Method-Override", "GET"),
        ("X-HTTP-Method", "head"),
        ("X-Method-Override", " OPTIONS "),
    ] {
        let r = get_with(&proxy, "/item", &[(field, method)]);
        assert_eq!(r.status, 200, "{field}: {method}");
        expect(&get(&proxy, "/item"), 200, "HIT", "page /item");
    }
    let deleted = get_with(&proxy, "/item", &[("X-HTTP-Method-Override", "DELETE")]);
    assert_eq!(deleted.status, 204);
    expect(&get(&proxy, "/item"), 200, "MISS", "page /item");
    assert_eq!(backend.requests(), 6);
}

#[test]
fn a_revalidation_spelling_a_varying_field_with_underscores_leaves_the_variant() {
    // The background revalidation is made with the client's fields: what
    // it brings back for the other spelling is not stored either, and the
    // entry stays as it was for everyone.
    let backend = cgi_language_origin("max-age=0, stale-while-revalidate=60");
    let proxy = cached_proxy(&backend, |c| c.underscores_in_headers = true);
    let en = [("Accept-Language", "en")];
    let both = [("Accept-Language", "en"), ("Accept_Language", "evil")];
    expect(&get_with(&proxy, "/", &en), 200, "MISS", "lang=en");
    expect(&get_with(&proxy, "/", &both), 200, "STALE", "lang=en");
    assert_eq!(backend.requests(), 2, "revalidated after");
    expect(&get_with(&proxy, "/", &en), 200, "STALE", "lang=en");
}

// ------------------------------------------------------------ revalidation

#[test]
fn an_age_is_read_as_its_first_members_digits() {
    // Older than its max-age however it is spelled: never a hit.
    for (n, age) in ["7200, 0", "7200.0", "7200;x=1"].into_iter().enumerate() {
        let (_backend, proxy) =
            cached_fixed(200, &[("Cache-Control", "max-age=3600"), ("Age", age)]);
        let path = format!("/a{n}");
        expect(&get(&proxy, &path), 200, "MISS", &format!("{path} #1"));
        expect(&get(&proxy, &path), 200, "MISS", &format!("{path} #2"));
    }
    // A first member of 0 is what counts.
    let (_backend, proxy) = cached_fixed(
        200,
        &[("Cache-Control", "max-age=3600"), ("Age", "0, 7200")],
    );
    get(&proxy, "/b");
    expect(&get(&proxy, "/b"), 200, "HIT", "/b #1");
}

#[test]
fn an_absurd_age_makes_an_old_response_not_a_crash() {
    // An Age far past what 64 bits of seconds can subtract from now: RFC
    // 9111 §1.2.2 caps it at 2^31 s, so the response is simply old.
    let huge = "18446744073709551615";
    let (_backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=60"), ("Age", huge)]);
    expect(&get(&proxy, "/a"), 200, "MISS", "/a #1");
    expect(&get(&proxy, "/a"), 200, "MISS", "/a #2");

    // The same Age on the 304 that revalidates an entry.
    let (backend, proxy) = behind_cache(etag_origin(
        &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
        &[("ETag", "\"v1\""), ("Age", huge)],
    ));
    expect(&get(&proxy, "/e"), 200, "MISS", "/e #1");
    expect(&get(&proxy, "/e"), 200, "REVALIDATED", "/e #1");
    expect(&get(&proxy, "/e"), 200, "REVALIDATED", "/e #1");
    assert_eq!(backend.requests(), 3);
}

#[test]
fn a_304_that_refreshes_an_entry_leaves_its_connection_in_the_pool() {
    let (backend, proxy) = behind_cache(etag_origin(
        &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
        &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
    ));
    expect(&get(&proxy, "/e"), 200, "MISS", "/e #1");
    for _ in 0..2 {
        expect(&get(&proxy, "/e"), 200, "REVALIDATED", "/e #1");
    }
    // Each 304 is whole with its head: one connection carries all three.
    assert_eq!((backend.requests(), backend.connections()), (3, 1));
}

#[test]
fn a_stale_entry_with_an_etag_is_revalidated_and_fresh_again() {
    let (backend, proxy) = behind_cache(etag_origin(
        &[
            ("Cache-Control", "max-age=0"),
            ("ETag", "\"v1\""),
            ("X-Origin", "first"),
        ],
        &[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")],
    ));
    expect(&get(&proxy, "/e"), 200, "MISS", "/e #1");
    assert_eq!(
        cache_of(&proxy).len(),
        1,
        "born stale, kept for its validator"
    );

    let r = get(&proxy, "/e");
    expect(&r, 200, "REVALIDATED", "/e #1");
    assert_eq!(r.header("x-origin"), Some("first"), "{}", r.head.raw);
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert_eq!(backend.requests(), 2);
    let seen = backend.seen();
    assert_eq!(
        seen[1].head.get("if-none-match"),
        Some("\"v1\""),
        "{}",
        seen[1].head.raw
    );

    // The 304's max-age=60 made the entry fresh.
    expect(&get(&proxy, "/e"), 200, "HIT", "/e #1");
    assert_eq!(backend.requests(), 2);
    assert_eq!(stored_lifetime(&proxy, "/e"), Some(Duration::from_secs(60)));
}

#[test]
fn a_revalidation_for_a_request_saying_no_store_is_not_stored() {
    // RFC 9111 §5.2.1.5: no part of the answer to it is stored; the 304's
    // freshness refreshes what this client gets, not the entry.
    let (backend, proxy) = behind_cache(etag_origin(
        &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
        &[
            ("Cache-Control", "max-age=60"),
            ("ETag", "\"v1\""),
            ("X-Refreshed", "yes"),
        ],
    ));
    get(&proxy, "/n");
    let r = get_with(&proxy, "/n", &[("Cache-Control", "no-store")]);
    expect(&r, 200, "REVALIDATED", "/n #1");
    assert_eq!(r.header("x-refreshed"), Some("yes"));
    let r = get(&proxy, "/n");
    expect(&r, 200, "REVALIDATED", "/n #1");
    assert_eq!(backend.requests(), 3);
}

#[test]
fn a_304_to_a_request_with_credentials_refreshes_only_its_own_answer() {
    // RFC 9111 §3.5: the stored response is everyone's; a 304 answering
    // alice's credentials may carry fields of hers, which her answer gets
    // and the entry does not (it says nothing that permits storing it).
    let backend = origin(|seen| {
        if seen.head.get("if-none-match") == Some("\"v1\"") {
            let user = seen.head.get("authorization").unwrap_or("anonymous");
            let fresh = [
                ("Cache-Control", "max-age=60"),
                ("ETag", "\"v1\""),
                ("X-User", user),
            ];
            (304, fields(&fresh))
        } else {
            (
                200,
                fields(&[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")]),
            )
        }
    });
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/u");
    let r = get_with(&proxy, "/u", &[("Authorization", "alice")]);
    expect(&r, 200, "REVALIDATED", "/u #1");
    assert_eq!(r.header("x-user"), Some("alice"));
    let r = get(&proxy, "/u");
    expect(&r, 200, "REVALIDATED", "/u #1");
    assert_eq!(r.header("x-user"), Some("anonymous"), "{}", r.head.raw);
    expect(&get(&proxy, "/u"), 200, "HIT", "/u #1");
}

#[test]
fn a_private_304_to_one_clients_request_leaves_the_entry_for_everyone() {
    // Many applications answer `private` to any signed-in request: that
    // answer is the client's, and the stored one stays everyone's.
    for (why, own) in [
        ("credentials", ("Authorization", "alice")),
        ("no-store", ("Cache-Control", "no-store")),
    ] {
        let backend = origin(|seen| {
            if seen.head.get("if-none-match") == Some("\"v1\"") {
                let personal = seen.head.has("authorization") || seen.head.has("cache-control");
                let cc = if personal { "private" } else { "max-age=60" };
                (304, fields(&[("Cache-Control", cc), ("ETag", "\"v1\"")]))
            } else {
                (
                    200,
                    fields(&[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")]),
                )
            }
        });
        let proxy = cached_proxy(&backend, |_| {});
        expect(&get(&proxy, "/p"), 200, "MISS", "/p #1");
        let r = get_with(&proxy, "/p", &[own]);
        assert_eq!(r.header("cache-control"), Some("private"), "{why}");
        assert_eq!(cache_of(&proxy).len(), 1, "{why}: the entry was dropped");
        expect(&get(&proxy, "/p"), 200, "REVALIDATED", "/p #1");
    }
}

/// An origin whose first answer is `first` with `ETag: "v1"`; a request
/// carrying it gets a 304 with `on_304`, and `X-Visitor: yes` when it
/// came with a cookie (a field of that client's).
fn cookie_304_origin(first: &[(&str, &str)], on_304: &[(&str, &str)]) -> Backend {
    let first = fields(first);
    let on_304 = fields(on_304);
    origin(move |seen| {
        if seen.head.get("if-none-match") == Some("\"v1\"") {
            let mut fields = on_304.clone();
            fields.push(("ETag".into(), "\"v1\"".into()));
            if seen.head.has("cookie") {
                fields.push(("X-Visitor".into(), "yes".into()));
            }
            (304, fields)
        } else {
            let mut fields = first.clone();
            fields.push(("ETag".into(), "\"v1\"".into()));
            (200, fields)
        }
    })
}

const ANALYTICS: (&str, &str) = ("Cookie", "_ga=GA1.2.3");

#[test]
fn a_304_to_a_request_with_cookies_leaves_the_entry_for_everyone() {
    // A page stored with no positive explicit lifetime (`no-cache`, the
    // usual for HTML, or one guessed from Last-Modified) would not have
    // been stored from a request with cookies; its 304 to one, which
    // brings no body of that client's, is no reason to drop the entry
    // (an analytics cookie will do). Nor are its fields everyone's: the
    // entry stays as it was, for the next client to revalidate.
    let modified = now_date(-100);
    for first in [
        &[("Cache-Control", "no-cache")][..],
        &[("Last-Modified", modified.as_str()), ("Age", "50")],
    ] {
        let backend = cookie_304_origin(first, &[]);
        let proxy = cached_proxy(&backend, |_| {});
        expect(&get(&proxy, "/p"), 200, "MISS", "/p #1");
        let r = get_with(&proxy, "/p", &[ANALYTICS]);
        expect(&r, 200, "REVALIDATED", "/p #1");
        assert_eq!(r.header("x-visitor"), Some("yes"), "{first:?}");
        assert_eq!(
            cache_of(&proxy).len(),
            1,
            "{first:?}: the entry was dropped"
        );
        let r = get(&proxy, "/p");
        expect(&r, 200, "REVALIDATED", "/p #1");
        assert_eq!(r.header("x-visitor"), None, "{first:?}: {}", r.head.raw);
        assert_eq!(backend.requests(), 3, "{first:?}");
    }
    // With a lifetime that would have stored it from that request too,
    // the 304 refreshes the entry for everyone.
    let backend = cookie_304_origin(
        &[("Cache-Control", "no-cache")],
        &[("Cache-Control", "max-age=60")],
    );
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/p");
    expect(
        &get_with(&proxy, "/p", &[ANALYTICS]),
        200,
        "REVALIDATED",
        "/p #1",
    );
    expect(&get(&proxy, "/p"), 200, "HIT", "/p #1");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_304_to_a_request_with_cookies_that_may_not_be_stored_drops_the_entry() {
    // Not stored whoever asked: the cookie is not why, and what was
    // stored is not served again, as with a 304 to any client.
    for said in ["no-store", "private"] {
        let backend =
            cookie_304_origin(&[("Cache-Control", "no-cache")], &[("Cache-Control", said)]);
        let proxy = cached_proxy(&backend, |_| {});
        get(&proxy, "/p");
        let r = get_with(&proxy, "/p", &[ANALYTICS]);
        expect(&r, 200, "REVALIDATED", "/p #1");
        assert_eq!(r.header("cache-control"), Some(said));
        assert!(cache_of(&proxy).is_empty(), "{said}");
        expect(&get(&proxy, "/p"), 200, "MISS", "/p #3");
    }
}

#[test]
fn a_304_listing_the_same_vary_names_in_another_order_refreshes() {
    let (backend, proxy) = behind_cache(etag_origin(
        &[
            ("Cache-Control", "max-age=0"),
            ("ETag", "\"v1\""),
            ("Vary", "Accept-Encoding, Origin"),
        ],
        &[
            ("Cache-Control", "max-age=60"),
            ("ETag", "\"v1\""),
            ("Vary", "Origin, Accept-Encoding, origin"),
        ],
    ));
    expect(&get(&proxy, "/v"), 200, "MISS", "/v #1");
    expect(&get(&proxy, "/v"), 200, "REVALIDATED", "/v #1");
    expect(&get(&proxy, "/v"), 200, "HIT", "/v #1");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_304_without_freshness_leaves_the_entry_to_be_revalidated_again() {
    let (backend, proxy) = behind_cache(etag_origin(
        &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
        &[("ETag", "\"v1\"")],
    ));
    get(&proxy, "/e");
    expect(&get(&proxy, "/e"), 200, "REVALIDATED", "/e #1");
    expect(&get(&proxy, "/e"), 200, "REVALIDATED", "/e #1");
    assert_eq!(backend.requests(), 3);
}

/// A backend whose `/doc` is 16 MiB (more than the sockets between the
/// proxy and a client that stops reading hold), born stale with `ETag:
/// "v1"`; a conditional request gets `answer`'s response, on a connection
/// the backend then reads on, so that it ends when the proxy closes it.
/// Every response says `Connection: close`.
fn closing_origin(answer: fn(&mut TcpStream, &[u8])) -> (Backend, Arc<Vec<u8>>) {
    let big = Arc::new(pattern(16 << 20));
    let body = big.clone();
    let backend = Backend::start("a", move |seen, out| {
        if seen.head.has("if-none-match") {
            answer(out, &body);
        } else {
            let stored = [
                ("Cache-Control", "max-age=0, stale-if-error=60"),
                ("ETag", "\"v1\""),
                ("Connection", "close"),
            ];
            respond(out, 200, &stored, &body);
        }
        Action::KeepAlive
    });
    (backend, big)
}

/// A proxy with room for [`closing_origin`]'s body, and a connection_timeout
/// no wait of these tests reaches: a write to the client that stops
/// reading must not be what ends the exchange.
fn proxy_for_closing_origin(backend: &Backend) -> Proxy {
    start_proxy(&[backend.addr], |c| {
        c.cache_size = 64 << 20;
        c.max_object_size = Some(32 << 20);
        c.connection_timeout = Duration::from_secs(60);
    })
}

/// Stores [`closing_origin`]'s `/doc` through a new proxy and waits until
/// the backend's connection for it has closed; then sends `request`, which
/// makes the proxy ask the origin again, from a client that reads the
/// response's head and no more. Returns the proxy, that client and the head.
fn slow_reader_of_a_refetch(a: &Backend, big: &[u8], request: &[u8]) -> (Proxy, Client, Head) {
    let proxy = proxy_for_closing_origin(a);
    proxy.exchange(|c| assert_eq!(c.get("/doc").body.len(), big.len()));
    assert!(wait_until(WAIT_LIMIT, || a.closed() == 1));
    let mut slow = proxy.connect();
    slow.send(request);
    let head = slow.reader.read_head().unwrap().unwrap();
    (proxy, slow, head)
}

#[test]
fn a_304_on_a_connection_that_closes_has_it_closed_before_the_client_has_the_entry() {
    let (a, big) = closing_origin(|out, _| {
        let _ = out
            .write_all(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n");
    });
    let request = b"GET /doc HTTP/1.1\r\nHost: test.example\r\n\r\n";
    let (_proxy, mut slow, head) = slow_reader_of_a_refetch(&a, &big, request);
    assert_eq!(head.get("x-cache"), Some("REVALIDATED"), "{}", head.raw);
    // The client reads no more: the proxy is still writing to it.
    assert!(
        wait_until(WAIT_LIMIT, || a.closed() == 2),
        "the backend saw no close while the client read"
    );
    assert!(slow.reader.read_exact_body(big.len()).unwrap() == *big);
}

#[test]
fn a_range_refetch_on_a_connection_that_closes_has_it_closed_before_the_client_has_the_part() {
    // Chunked: one range of a body whose length is known streams as it
    // comes (see tests/cache_range_miss.rs), at the client's pace.
    let (a, big) = closing_origin(|out, body| {
        let head = "HTTP/1.1 200 OK\r\nETag: \"v2\"\r\nConnection: close\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        let size = format!("{:x}\r\n", body.len());
        for piece in [head.as_bytes(), size.as_bytes(), body, b"\r\n0\r\n\r\n"] {
            let _ = out.write_all(piece);
        }
    });
    let request = b"GET /doc HTTP/1.1\r\nHost: test.example\r\nRange: bytes=0-\r\n\r\n";
    let (_proxy, mut slow, head) = slow_reader_of_a_refetch(&a, &big, request);
    assert!(head.start_line.contains(" 206 "), "{}", head.raw);
    assert_eq!(head.get("x-cache"), Some("MISS"), "{}", head.raw);
    // The client reads no more: the proxy is still writing to it.
    assert!(
        wait_until(WAIT_LIMIT, || a.closed() == 2),
        "the backend saw no close while the client read"
    );
    assert!(slow.reader.read_exact_body(big.len()).unwrap() == *big);
}

#[test]
fn if_none_match_star_holds_of_any_stored_answer_and_a_listed_if_modified_since_of_none() {
    // RFC 9110 §13.1.2: `*` is true of a current representation, with an
    // entity-tag or not; §13.1.3: If-Modified-Since with more than one
    // member is ignored.
    let lm = "Sun, 06 Nov 1994 08:49:37 GMT";
    let (backend, proxy) = cached_fixed(
        200,
        &[("Cache-Control", "max-age=60"), ("Last-Modified", lm)],
    );
    expect(&get(&proxy, "/c"), 200, "MISS", "/c #1");
    assert_eq!(
        get_with(&proxy, "/c", &[("If-None-Match", "*")]).status,
        304
    );
    assert_eq!(
        get_with(&proxy, "/c", &[("If-Modified-Since", lm)]).status,
        304
    );
    let twice = [("If-Modified-Since", lm), ("If-Modified-Since", lm)];
    expect(&get_with(&proxy, "/c", &twice), 200, "HIT", "/c #1");
    assert_eq!(backend.requests(), 1);
}

#[test]
fn max_stale_bounds_what_is_served_stale_and_a_bad_value_allows_nothing() {
    // 50 s stale, within a stale-while-revalidate window of 600: a client
    // that accepts 5 s of staleness, or a max-stale it wrote wrong, does
    // not get it.
    let (backend, proxy) = cached_fixed(
        200,
        &[
            ("Cache-Control", "max-age=50, stale-while-revalidate=600"),
            ("Age", "100"),
        ],
    );
    expect(&get(&proxy, "/swr"), 200, "MISS", "/swr #1");
    for asked in ["max-stale=5", "max-stale=abc"] {
        let r = get_with(&proxy, "/swr", &[("Cache-Control", asked)]);
        assert_ne!(x_cache(&r), "STALE", "{asked}: {}", r.head.raw);
    }
    // Within what it accepts, it does.
    let r = get_with(&proxy, "/swr", &[("Cache-Control", "max-stale=60")]);
    assert!(
        r.header("x-cache")
            .is_some_and(|x| x == "STALE" || x == "HIT"),
        "{}",
        r.head.raw
    );
    let _ = backend;
}

#[test]
fn a_max_age_with_a_space_beside_its_equals_sign_is_no_max_age() {
    // RFC 9111 §5.2's grammar, and nginx's reading: not reused. A
    // restriction so written still restricts.
    for cc in [
        "max-age =3600",
        "max-age= 3600",
        "max-age=3600, private =\"Set-Cookie\"",
        "max-age=3600, no-cache = \"Set-Cookie\"",
    ] {
        let (backend, proxy) = cached_fixed(200, &[("Cache-Control", cc)]);
        get(&proxy, "/sp");
        let r = get(&proxy, "/sp");
        assert_ne!(x_cache(&r), "HIT", "{cc}");
        assert_eq!(backend.requests(), 2, "{cc}");
    }
}

#[test]
fn a_stale_entry_with_last_modified_is_revalidated_with_if_modified_since() {
    const MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    let backend = origin(|seen| {
        if seen.head.get("if-modified-since") == Some(MODIFIED) {
            (304, fields(&[("Cache-Control", "max-age=60")]))
        } else {
            (
                200,
                fields(&[("Cache-Control", "max-age=0"), ("Last-Modified", MODIFIED)]),
            )
        }
    });
    let proxy = cached_proxy(&backend, |_| {});
    expect(&get(&proxy, "/l"), 200, "MISS", "/l #1");
    expect(&get(&proxy, "/l"), 200, "REVALIDATED", "/l #1");
    let seen = backend.seen();
    assert_eq!(
        seen[1].head.get("if-modified-since"),
        Some(MODIFIED),
        "{}",
        seen[1].head.raw
    );
    assert!(!seen[1].head.has("if-none-match"));
    expect(&get(&proxy, "/l"), 200, "HIT", "/l #1");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_changed_resource_replaces_the_entry_on_revalidation() {
    // The origin no longer matches the stored validator: a full 200.
    let backend = origin(|seen| {
        let etag = if seen.head.has("if-none-match") {
            "\"v2\""
        } else {
            "\"v1\""
        };
        (
            200,
            fields(&[("Cache-Control", "max-age=0"), ("ETag", etag)]),
        )
    });
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/c");
    let r = get(&proxy, "/c");
    expect(&r, 200, "MISS", "/c #2");
    assert_eq!(r.header("etag"), Some("\"v2\""));
    assert_eq!(cache_of(&proxy).len(), 1);
}

/// An origin that answers a GET with `on_get` (and the body `PATH #N`), and
/// every HEAD 200 with what `on_head` gives for it, whatever its
/// conditions: many frameworks answer a HEAD as a GET without its body,
/// and never with 304.
fn head_origin(
    on_get: &[(&str, &str)],
    on_head: impl Fn(&Seen) -> Vec<(String, String)> + Send + Sync + 'static,
) -> Backend {
    let on_get = fields(on_get);
    let numbered = AtomicUsize::new(0);
    Backend::start("origin", move |seen, out| {
        let n = numbered.fetch_add(1, Ordering::SeqCst) + 1;
        if seen.method() == "HEAD" {
            write_response(out, 200, &on_head(seen), None);
        } else {
            let body = format!("{} #{n}", seen.path());
            write_response(out, 200, &on_get, Some(body.as_bytes()));
        }
        Action::KeepAlive
    })
}

/// A [`head_origin`] whose GET answers are born stale (`max-age=0`,
/// `ETag: "v1"`, `X-Version: 1`), and whose HEAD answers are `on_head`.
fn head_ignoring_conditions(on_head: &[(&str, &str)]) -> Backend {
    let on_head = fields(on_head);
    head_origin(
        &[
            ("Cache-Control", "max-age=0"),
            ("ETag", "\"v1\""),
            ("X-Version", "1"),
        ],
        move |_| on_head.clone(),
    )
}

fn head(proxy: &Proxy, path: &str) -> Response {
    head_with(proxy, path, &[])
}

fn head_with(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> Response {
    proxy.exchange(|c| c.head_with(path, headers))
}

#[test]
fn a_head_answered_200_with_the_stored_validator_refreshes_the_get_entry() {
    // RFC 9111 §4.3.5: the same ETag and length, so the same body; the
    // HEAD's fields, its freshness among them, go into the entry.
    let backend = head_ignoring_conditions(&[
        ("Cache-Control", "max-age=60"),
        ("ETag", "\"v1\""),
        ("X-Version", "2"),
        ("Content-Length", "5"),
    ]);
    let proxy = cached_proxy(&backend, |_| {});
    expect(&get(&proxy, "/h"), 200, "MISS", "/h #1");

    let r = head(&proxy, "/h");
    assert_eq!(
        (r.status, x_cache(&r), r.header("x-version")),
        (200, "REVALIDATED", Some("2")),
        "{}",
        r.head.raw
    );
    assert_eq!(r.header("content-length"), Some("5"), "{}", r.head.raw);
    assert_eq!(backend.seen()[1].method(), "HEAD");

    let r = get(&proxy, "/h");
    expect(&r, 200, "HIT", "/h #1");
    assert_eq!(r.header("x-version"), Some("2"), "{}", r.head.raw);
    assert_eq!(backend.requests(), 2);
    assert_eq!(stored_lifetime(&proxy, "/h"), Some(Duration::from_secs(60)));
}

#[test]
fn a_head_answered_200_that_contradicts_the_stored_get_is_relayed_and_refreshes_nothing() {
    for (why, etag, length) in [
        ("another ETag", "\"v2\"", "5"),
        ("another length", "\"v1\"", "6"),
    ] {
        let backend = head_ignoring_conditions(&[
            ("Cache-Control", "max-age=60"),
            ("ETag", etag),
            ("Content-Length", length),
        ]);
        let proxy = cached_proxy(&backend, |_| {});
        get(&proxy, "/h");
        let r = head(&proxy, "/h");
        assert_eq!(
            (r.status, x_cache(&r)),
            (200, "MISS"),
            "{why}: {}",
            r.head.raw
        );
        assert_eq!(r.header("etag"), Some(etag), "{why}: the origin's answer");
        let entries = cache_of(&proxy).entries();
        let stored = &entries[0].head.headers;
        assert_eq!(
            (stored.get_str("etag"), stored.get_str("cache-control")),
            (Some("\"v1\""), Some("max-age=0")),
            "{why}: the stored GET is outdated, not refreshed"
        );
    }
}

#[test]
fn a_head_answered_200_without_validators_refreshes_the_get_entry_too() {
    // RFC 9111 §4.3.5 asks for matching "received validator fields":
    // with none received, only a length could tell another body.
    let backend = head_ignoring_conditions(&[("Cache-Control", "max-age=60"), ("X-Version", "2")]);
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/h");
    let r = head(&proxy, "/h");
    assert_eq!(
        (r.status, x_cache(&r), r.header("x-version")),
        (200, "REVALIDATED", Some("2")),
        "{}",
        r.head.raw
    );
    // The stored response keeps its own validator.
    assert_eq!(r.header("etag"), Some("\"v1\""), "{}", r.head.raw);
    expect(&get(&proxy, "/h"), 200, "HIT", "/h #1");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_head_answered_200_that_says_nothing_of_freshness_keeps_the_stored_fields() {
    // Fields it does not carry stay as stored, the freshness ones too.
    let backend = head_ignoring_conditions(&[("X-Extra", "2")]);
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/h");
    let r = head(&proxy, "/h");
    assert_eq!(
        (x_cache(&r), r.header("x-version"), r.header("x-extra")),
        ("REVALIDATED", Some("1"), Some("2")),
        "{}",
        r.head.raw
    );
}

#[test]
fn a_heads_answer_for_one_client_does_not_refresh_the_shared_get_entry() {
    // As a GET, none of these answers would be stored for everyone: one
    // for a request with credentials, one setting a cookie, one that
    // varies on what the stored response did not, one to a request that
    // says no-store. As a HEAD's answer, they must not reach the entry.
    let fresh = [("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")];
    let no_cache = ("Cache-Control", "no-cache");
    for (why, request, answer) in [
        (
            "credentials",
            vec![("Authorization", "alice"), no_cache],
            vec![],
        ),
        (
            "a cookie set",
            vec![no_cache],
            vec![("Set-Cookie", "sid=alice")],
        ),
        (
            "another Vary",
            vec![("Cookie", "sid=alice"), no_cache],
            vec![("Vary", "Cookie")],
        ),
        (
            "no-store",
            vec![("Cache-Control", "no-store, no-cache")],
            vec![],
        ),
    ] {
        let answer = fields(&answer);
        let backend = head_origin(&fresh, move |_| {
            let mut f = fields(&[
                ("Cache-Control", "max-age=60"),
                ("ETag", "\"v1\""),
                ("X-User", "alice"),
            ]);
            f.extend(answer.iter().cloned());
            f
        });
        let proxy = cached_proxy(&backend, |_| {});
        expect(&get(&proxy, "/h"), 200, "MISS", "/h #1");
        let r = head_with(&proxy, "/h", &request);
        assert_eq!(r.header("x-user"), Some("alice"), "{why}: {}", r.head.raw);
        let r = get(&proxy, "/h");
        assert_eq!(
            (x_cache(&r), r.header("x-user"), r.header("vary")),
            ("HIT", None, None),
            "{why}: one client's answer served to the next: {}",
            r.head.raw
        );
    }
}

#[test]
fn a_heads_answer_for_one_client_does_not_take_the_entry_from_others() {
    // A signed-in client's HEAD, answered with its own private page (its
    // own ETag), says nothing of the page everyone else gets.
    let backend = head_origin(
        &[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")],
        |seen| {
            assert!(seen.head.has("authorization") || seen.head.has("cookie"));
            fields(&[("Cache-Control", "private"), ("ETag", "\"alice-1\"")])
        },
    );
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/h");
    for credential in ["Authorization", "Cookie"] {
        head_with(
            &proxy,
            "/h",
            &[(credential, "alice"), ("Cache-Control", "no-cache")],
        );
        expect(&get(&proxy, "/h"), 200, "HIT", "/h #1");
    }
}

#[test]
fn a_heads_answer_to_credentials_naming_another_body_leaves_a_public_entry_fresh() {
    // The entry says `public`; the HEAD's answer, for a signed-in client,
    // names that user's own page and has no `Cache-Control` of its own,
    // so nothing lets a shared cache use it (RFC 9111 §3.5; the entry's
    // `public` is not its word): it is no word on everyone's page either.
    // Saying `public` itself, it is (§4.3.5).
    let backend = head_origin(
        &[("Cache-Control", "public, max-age=60"), ("ETag", "\"v1\"")],
        |seen| match seen.head.get("x-public") {
            Some(_) => fields(&[("Cache-Control", "public"), ("ETag", "\"alice-1\"")]),
            None => fields(&[("ETag", "\"alice-1\"")]),
        },
    );
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/h");
    let alice = [("Authorization", "alice"), ("Cache-Control", "no-cache")];
    head_with(&proxy, "/h", &alice);
    expect(&get(&proxy, "/h"), 200, "HIT", "/h #1");
    assert_eq!(backend.requests(), 2);
    let public = [alice[0], alice[1], ("X-Public", "1")];
    head_with(&proxy, "/h", &public);
    assert_ne!(
        x_cache(&get(&proxy, "/h")),
        "HIT",
        "the entry was not made stale"
    );
    assert_eq!(backend.requests(), 4);
}

#[test]
fn a_heads_answer_does_not_put_back_an_entry_a_newer_one_replaced() {
    // A monitor's HEAD is on its way when a GET stores the new body; the
    // HEAD's answer names it, and must not make the old entry stale over
    // the new one.
    let gate = Gate::new();
    let held = gate.clone();
    let gets = AtomicUsize::new(0);
    let backend = Backend::start("origin", move |seen, out| {
        let v = |etag, cc| fields(&[("Cache-Control", cc), ("ETag", etag)]);
        if seen.method() == "HEAD" {
            assert!(held.wait());
            write_response(out, 200, &v("\"v2\"", "max-age=60"), None);
        } else if gets.fetch_add(1, Ordering::SeqCst) == 0 {
            write_response(out, 200, &v("\"v1\"", "max-age=0"), Some(b"v1"));
        } else {
            write_response(out, 200, &v("\"v2\"", "max-age=60"), Some(b"v2"));
        }
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |_| {});
    expect(&get(&proxy, "/h"), 200, "MISS", "v1");
    let mut monitor = proxy.connect();
    let head = std::thread::spawn(move || monitor.head("/h"));
    assert!(wait_until(WAIT_LIMIT, || backend.requests() == 2));
    let mut browser = proxy.connect();
    expect(&browser.get("/h"), 200, "MISS", "v2");
    drop(browser);
    let stored_etag = || {
        let entries = cache_of(&proxy).entries();
        entries[0].head.headers.get_str("etag").map(str::to_string)
    };
    assert!(wait_until(WAIT_LIMIT, || stored_etag().as_deref() == Some("\"v2\"")));
    gate.open();
    let r = head.join().unwrap();
    assert_eq!(x_cache(&r), "MISS", "{}", r.head.raw);
    proxy.assert_becomes_idle();
    assert_eq!(
        stored_etag().as_deref(),
        Some("\"v2\""),
        "v2 replaced by v1"
    );
    expect(&get(&proxy, "/h"), 200, "HIT", "v2");
}

#[test]
fn a_heads_answer_naming_another_body_makes_the_entry_stale_not_gone() {
    // RFC 9111 §4.3.5: "consider the stored response to be stale". It
    // still stands in when the origin fails (here, every GET after the
    // first).
    let gets = AtomicUsize::new(0);
    let backend = Backend::start("origin", move |seen, out| {
        let fresh = |etag| fields(&[("Cache-Control", "max-age=60"), ("ETag", etag)]);
        if seen.method() == "HEAD" {
            write_response(out, 200, &fresh("\"v2\""), None);
        } else if gets.fetch_add(1, Ordering::SeqCst) == 0 {
            write_response(out, 200, &fresh("\"v1\""), Some(b"/h #1"));
        } else {
            write_response(out, 500, &[], Some(b"down"));
        }
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |c| c.stale_if_error = Duration::from_secs(600));
    get(&proxy, "/h");
    let r = head_with(&proxy, "/h", &[("Cache-Control", "no-cache")]);
    assert_eq!((x_cache(&r), r.header("etag")), ("MISS", Some("\"v2\"")));
    assert_eq!(cache_of(&proxy).len(), 1, "kept for when the origin fails");
    // Stale, or it would be a HIT without asking the origin.
    expect(&get(&proxy, "/h"), 200, "STALE", "/h #1");
    assert_eq!(backend.requests(), 3);
}

#[test]
fn a_new_answer_that_may_not_be_stored_drops_the_stale_entry_it_replaced() {
    // Revalidated while the client waits, a stale entry is answered with
    // a new 200 that may be stored for nobody: the origin has said the old
    // body is outdated, and it does not come back as STALE when the origin
    // then fails (as a refresh in the background drops it too).
    for unstorable in ["private", "no-store"] {
        let n = AtomicUsize::new(0);
        let backend = Backend::start("origin", move |_, out| {
            let (status, fields, body) = match n.fetch_add(1, Ordering::SeqCst) {
                0 => (
                    200,
                    [("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
                    "old",
                ),
                1 => (
                    200,
                    [("Cache-Control", unstorable), ("ETag", "\"v2\"")],
                    "new",
                ),
                _ => (500, [("X-Down", "1"), ("X-Down", "1")], "down"),
            };
            respond(out, status, &fields, body.as_bytes());
            Action::KeepAlive
        });
        let proxy = cached_proxy(&backend, |c| c.stale_if_error = Duration::from_secs(600));
        expect(&get(&proxy, "/p"), 200, "MISS", "old");
        expect(&get(&proxy, "/p"), 200, "MISS", "new");
        let r = get(&proxy, "/p");
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (500, "down"),
            "{unstorable}: {}",
            r.head.raw
        );
        assert!(cache_of(&proxy).is_empty(), "{unstorable}");
    }
}

#[test]
fn a_304_varying_on_other_fields_than_the_stored_response_is_asked_again() {
    // The stored response varied on nothing; revalidated with alice's
    // cookie, the 304 says it varies on Cookie (the session was touched):
    // its fields are about alice's variant, not the stored one's.
    let backend = origin(|seen| {
        let alice = [
            ("Cache-Control", "max-age=60"),
            ("ETag", "\"v1\""),
            ("Vary", "Cookie"),
            ("X-User", "alice"),
        ];
        match (seen.head.has("cookie"), seen.head.has("if-none-match")) {
            (true, true) => (304, fields(&alice)),
            (true, false) => (200, fields(&alice)),
            (false, _) => (
                200,
                fields(&[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")]),
            ),
        }
    });
    let proxy = cached_proxy(&backend, |_| {});
    expect(&get(&proxy, "/v"), 200, "MISS", "/v #1");
    let r = get_with(&proxy, "/v", &[("Cookie", "sid=alice")]);
    expect(&r, 200, "MISS", "/v #3");
    assert_eq!(r.header("x-user"), Some("alice"));
    assert_eq!(backend.requests(), 3, "asked again without a condition");
    let r = get(&proxy, "/v");
    assert_eq!(
        r.header("x-user"),
        None,
        "alice's answer for bob: {}",
        r.head.raw
    );
}

#[test]
fn a_clients_own_conditional_on_a_fresh_entry_gets_304_from_the_cache() {
    let (backend, proxy) = cached_fixed(
        200,
        &[
            ("Cache-Control", "max-age=60"),
            ("ETag", "\"v1\""),
            ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ],
    );
    get(&proxy, "/i");
    let r = get_with(&proxy, "/i", &[("If-None-Match", "\"v1\"")]);
    assert_eq!((r.status, x_cache(&r)), (304, "HIT"), "{}", r.head.raw);
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert!(r.body.is_empty());
    let r = get_with(&proxy, "/i", &[("If-Modified-Since", &now_date(0))]);
    assert_eq!(r.status, 304, "{}", r.head.raw);
    let r = get_with(&proxy, "/i", &[("If-None-Match", "W/\"v0\", \"v1\"")]);
    assert_eq!(r.status, 304, "{}", r.head.raw);
    // Not matching: the whole stored response.
    let r = get_with(&proxy, "/i", &[("If-None-Match", "\"v2\"")]);
    expect(&r, 200, "HIT", "/i #1");
    assert_eq!(backend.requests(), 1);
}

#[test]
fn a_304_to_a_clients_conditional_miss_is_not_served_to_unconditional_requests() {
    // Nothing stored; a client revalidates its own copy through the proxy.
    // The cache asks the origin without the client's condition, stores the
    // 200 and answers the client 304 itself (see
    // tests/cache_conditional_miss.rs). A later client without a copy must
    // get the full response, not an empty 304.
    let (backend, proxy) = behind_cache(etag_origin(
        &[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")],
        &[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")],
    ));
    let r = get_with(&proxy, "/q", &[("If-None-Match", "\"v1\"")]);
    assert_eq!(r.status, 304, "{}", r.head.raw);
    let r = get(&proxy, "/q");
    assert_eq!(backend.requests(), 1);
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "/q #1"),
        "an unconditional GET got {} {}:\n{}",
        r.status,
        x_cache(&r),
        r.head.raw
    );
}

// ------------------------------------------------ stale-while-revalidate

const SWR: (&str, &str) = ("Cache-Control", "max-age=0, stale-while-revalidate=60");

#[test]
fn stale_while_revalidate_answers_from_the_cache_then_revalidates() {
    let (backend, proxy) = behind_cache(etag_origin(
        &[SWR, ("ETag", "\"v1\"")],
        &[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")],
    ));
    expect(&get(&proxy, "/s"), 200, "MISS", "/s #1");
    // Served what is stored; the revalidation follows on the same thread
    // (`get` returns once the proxy is done with the connection).
    expect(&get(&proxy, "/s"), 200, "STALE", "/s #1");
    assert_eq!(backend.requests(), 2);
    assert_eq!(backend.seen()[1].head.get("if-none-match"), Some("\"v1\""));
    // The 304 made it fresh.
    expect(&get(&proxy, "/s"), 200, "HIT", "/s #1");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_background_revalidation_sends_the_client_no_interim_response() {
    // The client has its answer when the revalidation runs: a `103` then
    // would be read as the start of its next response.
    let backend = Backend::start("a", |_, out| {
        out.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
            .unwrap();
        respond(out, 200, &[SWR, ("ETag", "\"v1\"")], b"body");
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |_| {});
    let mut client = proxy.connect();
    assert_eq!(client.get("/s").status, 103, "a miss passes hints on");
    expect(&client.response(), 200, "MISS", "body");
    expect(&client.get("/s"), 200, "STALE", "body");
    let next = client.get("/s");
    assert_eq!(next.status, 200, "{}", next.head.raw);
    // The revalidation ran before this request was read (on the same
    // thread); this one, stale again (max-age=0), may start another
    // after its answer, at any moment now.
    assert!(backend.requests() >= 2, "one revalidation ran in between");
}

#[test]
fn the_stale_while_revalidate_setting_serves_stale_where_the_response_allows() {
    let stale_while_updating = |c: &mut Config| c.stale_while_revalidate = Duration::from_secs(600);
    let revalidated = [("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")];
    // A response that says nothing of it: the setting gives the window.
    // Fresh for a minute, it is two minutes old on arrival.
    let stale_on_arrival = [
        ("Cache-Control", "max-age=60"),
        ("Age", "120"),
        ("ETag", "\"v1\""),
    ];
    let backend = etag_origin(&stale_on_arrival, &revalidated);
    let proxy = cached_proxy(&backend, stale_while_updating);
    expect(&get(&proxy, "/w"), 200, "MISS", "/w #1");
    expect(&get(&proxy, "/w"), 200, "STALE", "/w #1");
    expect(&get(&proxy, "/w"), 200, "HIT", "/w #1");
    assert_eq!(backend.requests(), 2);

    // Not where the response forbids serving it stale, nor for one that
    // said nothing of freshness at all (it may be one user's page), nor
    // one fresh for no time (the origin asks to be asked each time).
    for first in [
        &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")][..],
        &[
            ("Cache-Control", "max-age=0, must-revalidate"),
            ("ETag", "\"v1\""),
        ],
        &[("Cache-Control", "no-cache"), ("ETag", "\"v1\"")],
        &[("ETag", "\"v1\"")],
    ] {
        let backend = etag_origin(first, &revalidated);
        let proxy = cached_proxy(&backend, stale_while_updating);
        expect(&get(&proxy, "/w"), 200, "MISS", "/w #1");
        let second = get(&proxy, "/w");
        assert_eq!(x_cache(&second), "REVALIDATED", "{first:?}");
    }
    // Without the setting, revalidated before it is served.
    let backend = etag_origin(&stale_on_arrival, &revalidated);
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/w");
    assert_eq!(x_cache(&get(&proxy, "/w")), "REVALIDATED");
}

#[test]
fn a_resource_changed_meanwhile_is_stored_whole_in_the_background() {
    let backend = origin(|seen| {
        if seen.head.has("if-none-match") {
            (
                200,
                fields(&[("Cache-Control", "max-age=60"), ("ETag", "\"v2\"")]),
            )
        } else {
            (200, fields(&[SWR, ("ETag", "\"v1\"")]))
        }
    });
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/c");
    expect(&get(&proxy, "/c"), 200, "STALE", "/c #1");
    let r = get(&proxy, "/c");
    expect(&r, 200, "HIT", "/c #2");
    assert_eq!(r.header("etag"), Some("\"v2\""));
    assert_eq!(backend.requests(), 2);
}

#[test]
fn an_answer_that_may_not_be_stored_ends_the_stale_window() {
    let backend = origin(|seen| {
        if seen.head.has("if-none-match") {
            (200, fields(&[("Cache-Control", "no-store")]))
        } else {
            (200, fields(&[SWR, ("ETag", "\"v1\"")]))
        }
    });
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/n");
    expect(&get(&proxy, "/n"), 200, "STALE", "/n #1");
    // The origin said no-store: what was stored is not served any more.
    expect(&get(&proxy, "/n"), 200, "MISS", "/n #3");
}

#[test]
fn one_clients_own_fields_never_drop_the_shared_entry() {
    // Its cache directives, its credentials, its conditions are about its
    // own answer: the entry stays for everyone else.
    for own in [
        ("Cache-Control", "no-store"),
        ("Pragma", "no-cache"),
        ("Authorization", "Basic Zm9vOmJhcg=="),
        ("If-Match", "\"nope\""),
    ] {
        let backend = origin(|seen| {
            if seen.head.has("if-match") {
                (412, fields(&[("Cache-Control", "max-age=60")]))
            } else if seen.head.get("if-none-match") == Some("\"v1\"") {
                (304, fields(&[SWR, ("ETag", "\"v1\"")]))
            } else {
                (200, fields(&[SWR, ("ETag", "\"v1\"")]))
            }
        });
        let proxy = cached_proxy(&backend, |_| {});
        get(&proxy, "/s");
        get_with(&proxy, "/s", &[own]);
        let r = get(&proxy, "/s");
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (200, "/s #1"),
            "after {own:?}: {}",
            r.head.raw
        );
    }
}

#[test]
fn a_background_revalidation_for_a_client_with_cookies_keeps_the_entry_for_everyone() {
    // The cache's own request carries the client's cookies: an answer
    // with no positive lifetime, refused for them alone, is not stored
    // (it may be that client's page) and does not end the stale window
    // of what was stored, be it a 304 or a 200.
    for status in [304, 200] {
        let backend = origin(move |seen| {
            let fresh = fields(&[SWR, ("ETag", "\"v1\"")]);
            match seen.head.has("if-none-match") {
                true => (status, fresh),
                false => (200, fresh),
            }
        });
        let proxy = cached_proxy(&backend, |_| {});
        get(&proxy, "/s");
        let r = get_with(&proxy, "/s", &[ANALYTICS]);
        expect(&r, 200, "STALE", "/s #1");
        assert_eq!(backend.requests(), 2, "{status}: revalidated after");
        expect(&get(&proxy, "/s"), 200, "STALE", "/s #1");
    }
    // One that may not be stored whoever asks still ends it.
    for (status, said) in [(200, "no-store"), (304, "private")] {
        let backend = origin(move |seen| match seen.head.has("if-none-match") {
            true => (
                status,
                fields(&[("Cache-Control", said), ("ETag", "\"v1\"")]),
            ),
            false => (200, fields(&[SWR, ("ETag", "\"v1\"")])),
        });
        let proxy = cached_proxy(&backend, |_| {});
        get(&proxy, "/s");
        let r = get_with(&proxy, "/s", &[ANALYTICS]);
        expect(&r, 200, "STALE", "/s #1");
        expect(&get(&proxy, "/s"), 200, "MISS", "/s #3");
    }
}

#[test]
fn a_background_revalidation_for_a_client_with_cookies_that_brings_a_new_version_ends_the_entry() {
    // The answer, refused for the client's cookies, is another version
    // (another validator, none, or one now `no-cache`) or too large: the
    // cache cannot tell it from that client's own page, and the old one
    // is served no more.
    let later: [&[(&str, &str)]; 3] = [
        &[SWR, ("ETag", "\"v2\"")],
        &[SWR],
        &[("Cache-Control", "no-cache"), ("ETag", "\"v2\"")],
    ];
    for (i, answer) in later.into_iter().enumerate() {
        let first = AtomicUsize::new(0);
        let backend = origin(move |_| match first.fetch_add(1, Ordering::SeqCst) {
            0 => (200, fields(&[SWR, ("ETag", "\"v1\"")])),
            _ => (200, fields(answer)),
        });
        let proxy = cached_proxy(&backend, |_| {});
        get(&proxy, "/s");
        expect(&get_with(&proxy, "/s", &[ANALYTICS]), 200, "STALE", "/s #1");
        assert_eq!(backend.requests(), 2, "{i}: revalidated after");
        let r = get(&proxy, "/s");
        assert_eq!(
            (r.header("x-cache"), r.body_str().as_str()),
            (Some("MISS"), "/s #3"),
            "{i}"
        );
    }
    let first = AtomicUsize::new(0);
    let backend = Backend::start("large", move |_, out| {
        match first.fetch_add(1, Ordering::SeqCst) {
            0 => respond(out, 200, &[SWR, ("ETag", "\"v1\"")], b"small"),
            _ => respond(out, 200, &[SWR, ("ETag", "\"v1\"")], &[b'x'; 4096]),
        }
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |c| c.max_object_size = Some(1024));
    get(&proxy, "/s");
    expect(&get_with(&proxy, "/s", &[ANALYTICS]), 200, "STALE", "small");
    assert_eq!(backend.requests(), 2);
    assert!(
        cache_of(&proxy).is_empty(),
        "too large for anyone: the entry goes"
    );
}

#[test]
fn a_304_that_sets_a_cookie_refreshes_no_shared_entry_with_its_fields() {
    // Alice's 304 names her; anyone else's is plain.
    let backend = origin(|seen| {
        let validated = fields(&[("ETag", "\"v1\""), ("Cache-Control", "no-cache")]);
        match (seen.head.has("if-none-match"), seen.head.has("cookie")) {
            (true, true) => (
                304,
                fields(&[
                    ("ETag", "\"v1\""),
                    ("Cache-Control", "max-age=600"),
                    ("Set-Cookie", "sid=alice"),
                    ("X-User", "alice"),
                ]),
            ),
            (true, false) => (304, validated),
            (false, _) => (200, validated),
        }
    });
    let proxy = cached_proxy(&backend, |_| {});
    expect(&get(&proxy, "/p"), 200, "MISS", "/p #1");
    let alice = get_with(&proxy, "/p", &[("Cookie", "sid=alice")]);
    assert_eq!(
        alice.header("x-cache"),
        Some("REVALIDATED"),
        "{}",
        alice.head.raw
    );
    let own = (alice.header("set-cookie"), alice.header("x-user"));
    assert_eq!(own, (Some("sid=alice"), Some("alice")), "her own answer");
    // Not made fresh for everyone by her 304, nor holding her field.
    let r = get(&proxy, "/p");
    assert_eq!(r.header("x-cache"), Some("REVALIDATED"), "{}", r.head.raw);
    assert_eq!(r.header("x-user"), None, "{}", r.head.raw);
}

#[test]
fn a_412_is_never_stored() {
    let backend = origin(|seen| {
        if seen.head.has("if-match") || seen.head.has("if-unmodified-since") {
            (412, fields(&[("Cache-Control", "max-age=60")]))
        } else {
            (200, fields(&[("Cache-Control", "max-age=60")]))
        }
    });
    let proxy = cached_proxy(&backend, |_| {});
    for condition in [
        ("If-Match", "\"nope\""),
        ("If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ] {
        assert_eq!(get_with(&proxy, "/q", &[condition]).status, 412);
    }
    let r = get(&proxy, "/q");
    assert_eq!((r.status, x_cache(&r)), (200, "MISS"), "{}", r.head.raw);
}

#[test]
fn a_purge_while_a_stale_answer_goes_out_is_not_undone_by_its_revalidation() {
    // A body large enough that the client, not reading, holds its
    // connection's thread in the middle of writing it.
    let body = pattern(8 << 20);
    let sent = body.clone();
    let backend = Backend::start("origin", move |seen, out| {
        if seen.head.has("if-none-match") {
            write_response(
                out,
                304,
                &fields(&[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")]),
                None,
            );
        } else {
            write_response(out, 200, &fields(&[SWR, ("ETag", "\"v1\"")]), Some(&sent));
        }
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |c| {
        c.cache_size = 64 << 20;
        c.max_object_size = Some(16 << 20);
    });
    assert_eq!(get(&proxy, "/p").body.len(), body.len());
    let mut client = proxy.connect();
    client.send(b"GET /p HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n");
    let head = client.reader.read_head().unwrap().unwrap();
    assert!(head.raw.contains("X-Cache: STALE"), "{}", head.raw);
    assert_eq!(cache_of(&proxy).invalidate(&key("/p")), 1);
    let rest = client.read_until_closed();
    assert!(!rest.is_empty());
    proxy.assert_becomes_idle();
    assert!(cache_of(&proxy).is_empty(), "the purged entry came back");
    assert_eq!(backend.requests(), 1, "revalidated what was purged");
}

#[test]
fn a_failed_background_revalidation_keeps_the_stale_entry() {
    let backend = origin(|seen| {
        if seen.head.has("if-none-match") {
            (500, Vec::new())
        } else {
            (200, fields(&[SWR, ("ETag", "\"v1\"")]))
        }
    });
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/f");
    expect(&get(&proxy, "/f"), 200, "STALE", "/f #1");
    expect(&get(&proxy, "/f"), 200, "STALE", "/f #1");
    assert_eq!(backend.requests(), 3);
}

#[test]
fn stale_while_revalidate_yields_to_must_revalidate_and_to_the_request() {
    let (_strict, proxy) = behind_cache(etag_origin(
        &[
            (
                "Cache-Control",
                "max-age=0, must-revalidate, stale-while-revalidate=60",
            ),
            ("ETag", "\"v1\""),
        ],
        &[("ETag", "\"v1\"")],
    ));
    get(&proxy, "/m");
    expect(&get(&proxy, "/m"), 200, "REVALIDATED", "/m #1");

    let (_lenient, proxy) = behind_cache(etag_origin(
        &[SWR, ("ETag", "\"v1\"")],
        &[("ETag", "\"v1\"")],
    ));
    get(&proxy, "/r");
    for wants_fresh in [
        ("Cache-Control", "max-age=0"),
        ("Cache-Control", "min-fresh=1"),
        ("Pragma", "no-cache"),
    ] {
        let r = get_with(&proxy, "/r", &[wants_fresh]);
        expect(&r, 200, "REVALIDATED", "/r #1");
    }
}

#[test]
fn one_request_revalidates_while_the_others_are_answered_from_the_cache() {
    let release = Gate::new();
    let gate = release.clone();
    let numbered = AtomicUsize::new(0);
    let backend = Backend::start("origin", move |seen, out| {
        let n = numbered.fetch_add(1, Ordering::SeqCst) + 1;
        if seen.head.has("if-none-match") {
            // Bounded: answers anyway if the test never releases.
            gate.wait();
            write_response(out, 304, &fields(&[("ETag", "\"v1\"")]), None);
        } else {
            let body = format!("{} #{n}", seen.path());
            write_response(
                out,
                200,
                &fields(&[SWR, ("ETag", "\"v1\"")]),
                Some(body.as_bytes()),
            );
        }
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |_| {});
    get(&proxy, "/o");

    // The first stale answer leaves its thread revalidating, held by the
    // origin; the others neither wait for it nor revalidate too.
    let mut first = proxy.connect();
    expect(&first.get("/o"), 200, "STALE", "/o #1");
    assert!(wait_until(WAIT_LIMIT, || backend.requests() == 2));
    for _ in 0..3 {
        expect(&proxy.connect().get("/o"), 200, "STALE", "/o #1");
    }
    assert_eq!(backend.requests(), 2);
    release.open();
    drop(first);
    proxy.assert_becomes_idle();
}

#[test]
fn a_key_not_coalesced_for_a_while_still_has_one_background_revalidation() {
    // A miss whose answer (a 503) came after another request stored the
    // URL (a reload, `no-cache`, which waits for no flight) leaves the key
    // uncoalesced for a while, and stored: its stale answers must still
    // send one revalidation between them, not one each.
    let (failing, revalidating) = (Gate::new(), Gate::new());
    let (fail, hold) = (failing.clone(), revalidating.clone());
    let conditional = Arc::new(AtomicUsize::new(0));
    let asked = conditional.clone();
    let backend = Backend::start("origin", move |seen, out| {
        let swr = fields(&[SWR, ("ETag", "\"v1\"")]);
        if seen.head.has("if-none-match") {
            // The first one waits for the test; any other, at once.
            if asked.fetch_add(1, Ordering::SeqCst) == 0 {
                hold.wait();
            }
            write_response(out, 304, &swr, None);
        } else if seen.path() == "/other" {
            write_response(
                out,
                200,
                &fields(&[("Cache-Control", "no-store")]),
                Some(b"o"),
            );
        } else if seen.head.has("cache-control") {
            write_response(out, 200, &swr, Some(b"stored"));
        } else {
            fail.wait();
            write_response(out, 503, &[], Some(b"busy"));
        }
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |_| {});
    std::thread::scope(|scope| {
        let first = scope.spawn(|| proxy.connect().get("/p"));
        assert!(wait_until(WAIT_LIMIT, || backend.requests() == 1));
        let reload = proxy
            .connect()
            .get_with("/p", &[("Cache-Control", "no-cache")]);
        expect(&reload, 200, "MISS", "stored");
        assert!(wait_until(WAIT_LIMIT, || cache_of(&proxy).len() == 1));
        failing.open();
        assert_eq!(first.join().unwrap().status, 503);
    });
    let mut one = proxy.connect();
    expect(&one.get("/p"), 200, "STALE", "stored");
    let revalidations = || conditional.load(Ordering::SeqCst);
    assert!(wait_until(WAIT_LIMIT, || revalidations() == 1));
    // The next request on this connection goes once its revalidation, if
    // any, is done.
    let mut another = proxy.connect();
    expect(&another.get("/p"), 200, "STALE", "stored");
    assert_eq!(another.get("/other").body, b"o");
    assert_eq!(revalidations(), 1, "revalidated twice at once");
    revalidating.open();
    drop((one, another));
    proxy.assert_becomes_idle();
}

// ------------------------------------------------------------ invalidation

#[test]
fn an_invalidation_during_a_fetch_keeps_that_response_out() {
    // A GET's response is on its way when a POST to the same URI succeeds:
    // the response may predate the POST, so it is relayed but not stored.
    let release = Gate::new();
    let gate = release.clone();
    let backend = Backend::start("slow", move |seen, out| {
        if seen.method() == "GET" {
            let waited = gate.wait();
            assert!(waited, "never released");
        }
        let headers = [("Cache-Control", "max-age=600")];
        respond(out, 200, &headers, seen.method().as_bytes());
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |_| {});
    std::thread::scope(|scope| {
        // Plain connections: `get` would wait for the other to finish.
        let first = scope.spawn(|| proxy.connect().get("/doc"));
        assert!(wait_until(WAIT_LIMIT, || backend.requests() == 1));
        let post = proxy.connect().request("POST", "/doc", &[], b"x");
        assert_eq!(post.status, 200);
        release.open();
        expect(&first.join().unwrap(), 200, "MISS", "GET");
    });
    expect(&get(&proxy, "/doc"), 200, "MISS", "GET");
    expect(&get(&proxy, "/doc"), 200, "HIT", "GET");
    assert_eq!(backend.requests(), 3); // GET, POST, GET
}

#[test]
fn a_successful_unsafe_method_invalidates_the_uri() {
    // Unsafe methods get the status asked for in X-Want-Status.
    let backend = origin(|seen| {
        let status = seen
            .head
            .get("x-want-status")
            .map_or(200, |s| s.parse().unwrap());
        (status, fields(&[("Cache-Control", "max-age=60")]))
    });
    let proxy = cached_proxy(&backend, |_| {});
    let mut expected_requests = 0;
    for method in ["POST", "PUT", "DELETE"] {
        let path = format!("/{}", method.to_lowercase());
        get(&proxy, &path);
        expect(
            &get(&proxy, &path),
            200,
            "HIT",
            &format!("{path} #{}", expected_requests + 1),
        );

        // A failure changes nothing.
        let r = request(&proxy, method, &path, &[("X-Want-Status", "500")]);
        assert_eq!(
            (r.status, x_cache(&r)),
            (500, "BYPASS"),
            "{method}: {}",
            r.head.raw
        );
        let r = get(&proxy, &path);
        assert_eq!(
            x_cache(&r),
            "HIT",
            "{method} 500 invalidated:\n{}",
            r.head.raw
        );

        let r = request(&proxy, method, &path, &[]);
        assert_eq!(
            (r.status, x_cache(&r)),
            (200, "BYPASS"),
            "{method}: {}",
            r.head.raw
        );
        let r = get(&proxy, &path);
        expected_requests += 4;
        assert_eq!(
            (x_cache(&r), r.body_str()),
            ("MISS", format!("{path} #{expected_requests}")),
            "{method} 200 did not invalidate:\n{}",
            r.head.raw
        );
        assert_eq!(backend.requests(), expected_requests);
    }
}

#[test]
fn a_successful_unsafe_method_invalidates_what_its_location_and_content_location_name() {
    // POST answers carry the Location and Content-Location asked for.
    let backend = origin(|seen| {
        let mut answer = vec![("Cache-Control".to_string(), "max-age=60".to_string())];
        for (asked, field) in [("x-location", "Location"), ("x-cl", "Content-Location")] {
            if let Some(uri) = seen.head.get(asked) {
                answer.push((field.to_string(), uri.to_string()));
            }
        }
        (if seen.method() == "POST" { 201 } else { 200 }, answer)
    });
    let proxy = cached_proxy(&backend, |_| {});
    for item in ["/item/1", "/item/2", "/item/3"] {
        get(&proxy, item);
        assert_eq!(x_cache(&get(&proxy, item)), "HIT", "{item}");
    }
    let post = |headers: &[(&str, &str)]| {
        assert_eq!(request(&proxy, "POST", "/cart/add", headers).status, 201);
    };
    post(&[
        ("X-Location", "../item/1"),
        ("X-CL", "http://TEST.example/item/2"),
    ]);
    // Another origin's URI is not this cache's to drop.
    post(&[("X-Location", "http://other.example/item/3")]);
    for (item, cache) in [("/item/1", "MISS"), ("/item/2", "MISS"), ("/item/3", "HIT")] {
        assert_eq!(x_cache(&get(&proxy, item)), cache, "{item}");
    }
}

#[test]
fn webdav_propfind_invalidates_nothing_and_copy_and_move_their_destination() {
    // A WebDAV server: 207 to PROPFIND, 201 to COPY and MOVE.
    let backend = origin(|seen| {
        let status = match seen.method() {
            "PROPFIND" => 207,
            "COPY" | "MOVE" => 201,
            _ => 200,
        };
        (status, fields(&[("Cache-Control", "max-age=60")]))
    });
    let proxy = cached_proxy(&backend, |_| {});
    for file in ["/dav/a", "/dav/b", "/dav/c", "/dav/d"] {
        get(&proxy, file);
        assert_eq!(x_cache(&get(&proxy, file)), "HIT", "{file}");
    }
    // PROPFIND is safe (RFC 4918 §9.1): relayed with its body, and the
    // file a sync client only looks at stays stored.
    let r = request(&proxy, "PROPFIND", "/dav/a", &[("Depth", "0")]);
    assert_eq!((r.status, x_cache(&r)), (207, "BYPASS"), "{}", r.head.raw);
    let seen = backend.seen();
    let propfind = seen.last().expect("the PROPFIND reached the backend");
    assert_eq!(propfind.method(), "PROPFIND");
    assert_eq!(
        (propfind.head.get("depth"), &*propfind.body),
        (Some("0"), &b"x"[..])
    );
    assert_eq!(x_cache(&get(&proxy, "/dav/a")), "HIT", "after PROPFIND");
    // COPY changes its Destination too, and, as any unsafe method, its
    // own URI. Another origin's URI is not this cache's to drop.
    let copy = [("Destination", "http://TEST.example/dav/b")];
    assert_eq!(request(&proxy, "COPY", "/dav/a", &copy).status, 201);
    let elsewhere = [("Destination", "http://other.example/dav/d")];
    assert_eq!(request(&proxy, "MOVE", "/dav/c", &elsewhere).status, 201);
    let after = [
        ("/dav/a", "MISS"),
        ("/dav/b", "MISS"),
        ("/dav/c", "MISS"),
        ("/dav/d", "HIT"),
    ];
    for (file, cache) in after {
        assert_eq!(x_cache(&get(&proxy, file)), cache, "{file}");
    }
}

#[test]
fn invalidation_drops_every_variant() {
    let (_backend, proxy) = cached_fixed(
        200,
        &[("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")],
    );
    get_with(&proxy, "/v", &[("Accept-Language", "en")]);
    get_with(&proxy, "/v", &[("Accept-Language", "fr")]);
    assert_eq!(cache_of(&proxy).len(), 2);
    request(&proxy, "POST", "/v", &[]);
    assert_eq!(cache_of(&proxy).len(), 0);
    let r = get_with(&proxy, "/v", &[("Accept-Language", "fr")]);
    assert_eq!(x_cache(&r), "MISS");
}

#[test]
fn an_unsafe_request_invalidates_on_its_status_even_if_the_relay_then_fails() {
    // The backend has acted on the POST once it answers 200, whether or not
    // the body then arrives (RFC 9111 §4.4: on receiving the status).
    let backend = Backend::start("cut", |seen, out| {
        if seen.method() == "POST" {
            let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsevenby");
            return Action::Close;
        }
        respond(out, 200, &[("Cache-Control", "max-age=60")], b"version");
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |_| {});
    expect(&get(&proxy, "/cut"), 200, "MISS", "version");
    expect(&get(&proxy, "/cut"), 200, "HIT", "version");
    let mut client = proxy.connect();
    client.send(b"POST /cut HTTP/1.1\r\nHost: test.example\r\nContent-Length: 1\r\n\r\nx");
    // The relay fails mid-body: the client sees its connection end early.
    let _ = client.read_until_closed();
    expect(&get(&proxy, "/cut"), 200, "MISS", "version");
    assert_eq!(backend.requests(), 3);
}

// ---------------------------------------------- what a stored head may hold

#[test]
fn hop_by_hop_fields_of_a_response_are_neither_stored_nor_replayed() {
    // RFC 9111 §3.1: Connection, the fields it names, and the other
    // hop-by-hop fields are not stored; a 304's are not merged either.
    let (_backend, proxy) = behind_cache(etag_origin(
        &[
            ("Cache-Control", "max-age=0"),
            ("ETag", "\"v1\""),
            ("Connection", "X-Internal"),
            ("X-Internal", "s3cr3t"),
            ("Upgrade", "h2c"),
            ("Proxy-Connection", "keep-alive"),
        ],
        &[
            ("ETag", "\"v1\""),
            ("Cache-Control", "max-age=60"),
            ("Connection", "X-Hop"),
            ("X-Hop", "hop"),
        ],
    ));
    let leaks = |r: &Response| {
        ["x-internal", "upgrade", "proxy-connection", "x-hop"]
            .into_iter()
            .filter(|f| r.head.has(f))
            .collect::<Vec<_>>()
    };
    let miss = get(&proxy, "/h");
    expect(&miss, 200, "MISS", "/h #1");
    assert!(leaks(&miss).is_empty(), "{}", miss.head.raw);
    let revalidated = get(&proxy, "/h");
    expect(&revalidated, 200, "REVALIDATED", "/h #1");
    assert!(leaks(&revalidated).is_empty(), "{}", revalidated.head.raw);
    let hit = get(&proxy, "/h");
    expect(&hit, 200, "HIT", "/h #1");
    assert!(leaks(&hit).is_empty(), "{}", hit.head.raw);
}

/// An origin whose answer is stale at once, and whose 304 to the cache's
/// revalidation refreshes a session cookie.
fn refreshing_a_cookie() -> Backend {
    etag_origin(
        &[("Cache-Control", "public, max-age=0"), ("ETag", "\"v1\"")],
        &[
            ("ETag", "\"v1\""),
            ("Cache-Control", "max-age=60"),
            ("Set-Cookie", "session=alice"),
        ],
    )
}

#[test]
fn a_set_cookie_on_a_304_goes_to_its_own_client_only() {
    // Session middleware refreshing a cookie on a revalidation: the client
    // that caused it gets the cookie, the entry does not keep it.
    let (_backend, proxy) = behind_cache(refreshing_a_cookie());
    expect(&get(&proxy, "/s"), 200, "MISS", "/s #1");
    let alice = get(&proxy, "/s");
    expect(&alice, 200, "REVALIDATED", "/s #1");
    assert_eq!(alice.header("set-cookie"), Some("session=alice"));
    let bob = get(&proxy, "/s");
    expect(&bob, 200, "HIT", "/s #1");
    assert!(!bob.head.has("set-cookie"), "{}", bob.head.raw);
}

#[test]
fn a_set_cookie_brought_by_a_range_s_revalidation_goes_to_that_client() {
    // As for a whole GET (above): a 304, then a new body, each answering
    // the range request that revalidated its stale entry.
    let (_backend, proxy) = behind_cache(refreshing_a_cookie());
    expect(&get(&proxy, "/s"), 200, "MISS", "/s #1");
    let alice = get_with(&proxy, "/s", &[("Range", "bytes=1-2")]);
    expect(&alice, 206, "REVALIDATED", "s ");
    assert_eq!(alice.header("set-cookie"), Some("session=alice"));
    let answered = AtomicUsize::new(0);
    let (_backend, proxy) = behind_cache(origin(move |_| {
        let later = answered.fetch_add(1, Ordering::SeqCst) > 0;
        let answer: &[(&str, &str)] = match later {
            false => &[("Cache-Control", "public, max-age=0"), ("ETag", "\"v1\"")],
            true => &[
                ("Cache-Control", "public, max-age=60"),
                ("ETag", "\"v2\""),
                ("Set-Cookie", "session=bob"),
            ],
        };
        (200, fields(answer))
    }));
    expect(&get(&proxy, "/n"), 200, "MISS", "/n #1");
    let bob = get_with(&proxy, "/n", &[("Range", "bytes=0-1")]);
    expect(&bob, 206, "MISS", "/n");
    assert_eq!(bob.header("set-cookie"), Some("session=bob"));
    // Stored without it.
    let carol = get(&proxy, "/n");
    expect(&carol, 200, "HIT", "/n #2");
    assert!(!carol.head.has("set-cookie"), "{}", carol.head.raw);
}

#[test]
fn a_response_varying_on_the_request_id_the_proxy_writes_is_not_stored() {
    // The key would hold the client's own X-Request-ID (none), the backend
    // answered the proxy's: each client's page names its own request.
    let backend = Backend::start("origin", |seen, out| {
        let id = seen.field_or("x-request-id", "-");
        let fields = [("Cache-Control", "max-age=60"), ("Vary", "X-Request-ID")];
        respond(out, 200, &fields, format!("for {id}").as_bytes());
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |c| {
        c.request_id_header = Some("X-Request-ID".into())
    });
    let first = get(&proxy, "/p");
    let second = get(&proxy, "/p");
    assert_eq!(x_cache(&second), "MISS");
    assert_eq!(backend.requests(), 2);
    assert_ne!(first.body, second.body);
    assert_eq!(
        second.body_str(),
        format!("for {}", second.header("x-request-id").unwrap())
    );
}

#[test]
fn a_snapshot_record_is_cleaned_like_a_fresh_response() {
    // A crafted (or foreign) record with framing and hop-by-hop fields in
    // its head: served, they would frame the response twice.
    let (_dir, file) = snapshot_file();
    let mut crafted = record("/crafted", "hello");
    crafted.head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\
        Connection: X-Conn\r\nX-Conn: 1\r\nCache-Control: max-age=3600\r\n"
        .to_vec();
    write_snapshot(&file, &[crafted]).unwrap();
    let proxy = start_proxy(&[dead_addr()], persisted(&file));
    let r = get(&proxy, "/crafted");
    expect(&r, 200, "HIT", "hello");
    assert!(!r.head.has("transfer-encoding"), "{}", r.head.raw);
    assert!(!r.head.has("x-conn"), "{}", r.head.raw);
    assert_eq!(r.head.get_all("content-length").collect::<Vec<_>>(), ["5"]);
}

#[test]
fn a_snapshot_written_with_the_clock_ahead_is_counted_from_now() {
    let (_dir, file) = snapshot_file();
    // Born a day in the future, fresh for an hour from then.
    let mut ahead = record("/ahead", "ahead");
    let day = 86_400_000;
    ahead.stored_at += day;
    ahead.expires_at += day;
    ahead.stale_until += day;
    write_snapshot(&file, &[ahead]).unwrap();
    let proxy = start_proxy(&[dead_addr()], persisted(&file));
    let entries = cache_of(&proxy).entries();
    assert_eq!(entries.len(), 1);
    let now = SystemTime::now();
    assert!(entries[0].age(now) < Duration::from_secs(60));
    let fresh_until = SystemTime::UNIX_EPOCH + Duration::from_millis(entries[0].record.expires_at);
    assert!(
        fresh_until <= now + Duration::from_secs(3600),
        "fresh until {fresh_until:?}, past an hour from now"
    );
}

// ------------------------------------------------- variants and conditionals

#[test]
fn a_field_the_client_hides_with_connection_is_absent_from_the_variant_key() {
    // The backend never sees a field the request's Connection names; its
    // answer must not be filed under that field's value.
    let backend = Backend::start("lang", |seen, out| {
        let lang = seen.field_or("accept-language", "none");
        let headers = [("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")];
        respond(out, 200, &headers, format!("lang {lang}").as_bytes());
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |_| {});
    let hiding = [("Accept-Language", "fr"), ("Connection", "Accept-Language")];
    expect(&get_with(&proxy, "/l", &hiding), 200, "MISS", "lang none");
    let french = [("Accept-Language", "fr")];
    expect(&get_with(&proxy, "/l", &french), 200, "MISS", "lang fr");
    expect(&get_with(&proxy, "/l", &french), 200, "HIT", "lang fr");
    expect(&get(&proxy, "/l"), 200, "HIT", "lang none");
    expect(&get_with(&proxy, "/l", &hiding), 200, "HIT", "lang none");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_response_varying_on_a_field_the_proxy_writes_is_not_stored() {
    // The proxy writes these itself (from the client's address, from its
    // Host as spelled): no key made from the client's request tells the
    // backend's variants apart.
    for field in [
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "x-forwarded-proto",
        "Via",
        "X-Real-IP",
        "forwarded",
    ] {
        let (_backend, proxy) =
            cached_fixed(200, &[("Cache-Control", "max-age=60"), ("Vary", field)]);
        expect(&get(&proxy, "/geo"), 200, "MISS", "/geo #1");
        expect(&get(&proxy, "/geo"), 200, "MISS", "/geo #2");
        assert_eq!(cache_of(&proxy).len(), 0, "{field}");
    }
}

#[test]
fn when_a_response_stops_varying_its_old_variants_go() {
    // The newest response decides (RFC 9111 §4.1); variants stored before
    // must not linger where a PURGE misses them and come back later.
    let varies = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mode = varies.clone();
    let backend = origin(move |_| {
        let mut headers = vec![("Cache-Control", "max-age=60")];
        if mode.load(Ordering::SeqCst) {
            headers.push(("Vary", "X-A"));
        }
        (200, fields(&headers))
    });
    let proxy = cached_proxy(&backend, |_| {});
    expect(
        &get_with(&proxy, "/o", &[("X-A", "1")]),
        200,
        "MISS",
        "/o #1",
    );
    varies.store(false, Ordering::SeqCst);
    expect(&get(&proxy, "/o"), 200, "MISS", "/o #2");
    assert_eq!(cache_of(&proxy).len(), 1, "the X-A=1 variant is still held");
    assert_eq!(cache_of(&proxy).invalidate(&key("/o")), 1);
    assert_eq!(cache_of(&proxy).len(), 0);
    varies.store(true, Ordering::SeqCst);
    expect(
        &get_with(&proxy, "/o", &[("X-A", "1")]),
        200,
        "MISS",
        "/o #3",
    );
    // And the other way: the unvaried entry goes once the response varies.
    varies.store(false, Ordering::SeqCst);
    cache_of(&proxy).clear();
    expect(&get(&proxy, "/p"), 200, "MISS", "/p #4");
    varies.store(true, Ordering::SeqCst);
    expect(
        &get_with(&proxy, "/p", &[("Cache-Control", "no-cache")]),
        200,
        "MISS",
        "/p #5",
    );
    assert_eq!(cache_of(&proxy).len(), 1);
}

#[test]
fn a_conditional_request_for_a_stored_error_gets_the_error() {
    // RFC 9110 §13.2.1: preconditions apply to 2xx responses only.
    let (_backend, proxy) =
        cached_fixed(404, &[("Cache-Control", "max-age=60"), ("ETag", "\"e\"")]);
    expect(&get(&proxy, "/gone"), 404, "MISS", "/gone #1");
    for tag in ["\"e\"", "*"] {
        let r = get_with(&proxy, "/gone", &[("If-None-Match", tag)]);
        expect(&r, 404, "HIT", "/gone #1");
    }
}

#[test]
fn a_304_naming_another_representation_refreshes_nothing() {
    // RFC 9111 §4.3.4: the stored copy has "v1"; a 304 saying "v2" is about
    // something else, so the proxy asks again without a condition.
    let backend = origin(|seen| {
        let v2 = [("Cache-Control", "max-age=600"), ("ETag", "\"v2\"")];
        match (seen.path(), seen.head.get("if-none-match")) {
            (_, Some("\"v1\"")) => (304, fields(&v2)),
            (_, _) if seen.head.has("x-first") => (
                200,
                fields(&[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")]),
            ),
            _ => (200, fields(&v2)),
        }
    });
    let proxy = cached_proxy(&backend, |_| {});
    expect(
        &get_with(&proxy, "/e", &[("X-First", "1")]),
        200,
        "MISS",
        "/e #1",
    );
    let r = get(&proxy, "/e");
    expect(&r, 200, "MISS", "/e #3");
    assert_eq!(r.header("etag"), Some("\"v2\""));
    let seen = backend.seen();
    assert_eq!(seen[1].head.get("if-none-match"), Some("\"v1\""));
    assert_eq!(seen[2].head.get("if-none-match"), None);
    expect(&get(&proxy, "/e"), 200, "HIT", "/e #3");
    assert_eq!(backend.requests(), 3);
}

#[test]
fn an_entry_the_origin_can_revalidate_outlives_a_zero_stale_window() {
    // No stale-if-error window at all, but an ETag: kept past its
    // freshness so that the next request costs a 304, not the body.
    let backend = etag_origin(
        &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
        &[("ETag", "\"v1\"")],
    );
    let proxy = cached_proxy(&backend, |c| c.stale_if_error = Duration::ZERO);
    expect(&get(&proxy, "/k"), 200, "MISS", "/k #1");
    let cache = cache_of(&proxy);
    let now = SystemTime::now();
    assert_eq!(cache.expire_due(now + Duration::from_secs(60)), 0);
    expect(&get(&proxy, "/k"), 200, "REVALIDATED", "/k #1");
    // Not forever: some minutes past its freshness it goes.
    assert_eq!(cache.expire_due(now + Duration::from_secs(3600)), 1);
    // Without a validator there is nothing to revalidate: it goes at once.
    let plain = fixed(200, &[("Cache-Control", "max-age=1")]);
    let proxy = cached_proxy(&plain, |c| c.stale_if_error = Duration::ZERO);
    get(&proxy, "/p");
    assert_eq!(
        cache_of(&proxy).expire_due(now + Duration::from_secs(60)),
        1
    );
}

// ------------------------------------------------------- stale on failure

/// What a [`failing_origin`] does.
const SERVE: u8 = 0;
const FAIL_500: u8 = 1;
const HANG_UP: u8 = 2;

/// Answers per `mode`: the fields given, a 500, or closing unanswered.
fn failing_origin(mode: Arc<AtomicU8>, headers: &[(&str, &str)]) -> Backend {
    let headers = fields(headers);
    let numbered = AtomicUsize::new(0);
    Backend::start("failing", move |seen, out| {
        match mode.load(Ordering::SeqCst) {
            SERVE => {
                let n = numbered.fetch_add(1, Ordering::SeqCst) + 1;
                write_response(
                    out,
                    200,
                    &headers,
                    Some(format!("{} #{n}", seen.path()).as_bytes()),
                );
                Action::KeepAlive
            }
            FAIL_500 => {
                respond(out, 500, &[], b"broken");
                Action::KeepAlive
            }
            _ => Action::Close,
        }
    })
}

/// Stores `/x` from an origin sending `headers`, then fails it both ways
/// and returns the two responses (after a 500, after a hang-up).
fn fail_after_storing(
    headers: &[(&str, &str)],
    tweak: impl FnOnce(&mut Config),
) -> (Response, Response) {
    let mode = Arc::new(AtomicU8::new(SERVE));
    let backend = failing_origin(mode.clone(), headers);
    let proxy = cached_proxy(&backend, tweak);
    expect(&get(&proxy, "/x"), 200, "MISS", "/x #1");
    assert_eq!(cache_of(&proxy).len(), 1);
    mode.store(FAIL_500, Ordering::SeqCst);
    let after_500 = get(&proxy, "/x");
    mode.store(HANG_UP, Ordering::SeqCst);
    let after_hang_up = get(&proxy, "/x");
    (after_500, after_hang_up)
}

#[test]
fn an_entry_purged_while_the_origin_is_asked_does_not_stand_in_when_it_fails() {
    // The stale entry goes to the origin to be revalidated (for a range
    // of it too); a PURGE takes it meanwhile; the origin then fails (a
    // 500, or hanging up): what was purged is not served, whole or in
    // part, after the purge said it was gone.
    let cases = [FAIL_500, HANG_UP].map(|f| [(f, None), (f, Some("bytes=0-1"))]);
    for (failure, range) in cases.into_iter().flatten() {
        let answer = Gate::new();
        let hold = answer.clone();
        let asked = AtomicUsize::new(0);
        let old = fields(&[
            ("Cache-Control", "max-age=50, stale-if-error=600"),
            ("Age", "100"),
        ]);
        let backend = Backend::start("failing", move |_, out| {
            if asked.fetch_add(1, Ordering::SeqCst) == 0 {
                write_response(out, 200, &old, Some(b"purged"));
                return Action::KeepAlive;
            }
            assert!(hold.wait(), "never let the origin answer");
            if failure == HANG_UP {
                return Action::Close;
            }
            respond(out, 500, &[], b"broken");
            Action::KeepAlive
        });
        let proxy = cached_proxy(&backend, |_| {});
        expect(&get(&proxy, "/x"), 200, "MISS", "purged");
        let fields: Vec<_> = range.map(|r| ("Range", r)).into_iter().collect();
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| proxy.connect().get_with("/x", &fields));
            assert!(wait_until(WAIT_LIMIT, || backend.requests() == 2));
            assert_eq!(cache_of(&proxy).invalidate(&key("/x")), 1);
            answer.open();
            let r = waiting.join().unwrap();
            let case = format!("{failure} {range:?}: {}", r.head.raw);
            assert_ne!(r.header("x-cache"), Some("STALE"), "{case}");
            let status = if failure == HANG_UP { 502 } else { 500 };
            assert_eq!(r.status, status, "{case}");
        });
    }
}

#[test]
fn an_expired_entry_is_served_stale_when_the_origin_fails() {
    let old = [("Cache-Control", "max-age=50"), ("Age", "100")];
    let (a, b) = fail_after_storing(&old, |_| {});
    expect(&a, 200, "STALE", "/x #1");
    expect(&b, 200, "STALE", "/x #1");

    // Born stale with a validator: revalidation fails, the copy answers.
    let validated = [("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")];
    let (a, b) = fail_after_storing(&validated, |_| {});
    expect(&a, 200, "STALE", "/x #1");
    expect(&b, 200, "STALE", "/x #1");
}

#[test]
fn an_answer_whose_body_cannot_be_framed_is_an_origin_failure_too() {
    // The head parses, the framing does not: nothing reached the client
    // yet, so the stored copy answers, as after a 5xx.
    let answers = AtomicUsize::new(0);
    let backend = Backend::start("garbled", move |_, out| {
        let broken: &[u8] = match answers.fetch_add(1, Ordering::SeqCst) {
            0 => b"HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\nETag: \"v1\"\r\nContent-Length: 8\r\n\r\noriginal",
            1 => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            _ => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        };
        let _ = out.write_all(broken);
        Action::Close
    });
    let proxy = cached_proxy(&backend, |_| {});
    expect(&get(&proxy, "/g"), 200, "MISS", "original");
    expect(&get(&proxy, "/g"), 200, "STALE", "original");
    expect(&get(&proxy, "/g"), 200, "STALE", "original");
    assert_eq!(backend.requests(), 3);
}

/// No stale copy for either failure of [`fail_after_storing`]: the
/// origin's 500 as it came, then the proxy's own error.
#[track_caller]
fn assert_no_stale_copy(after_500: &Response, after_hang_up: &Response) {
    assert_eq!(
        (after_500.status, after_500.body_str().as_str()),
        (500, "broken"),
        "{}",
        after_500.head.raw
    );
    assert!(
        matches!(after_hang_up.status, 502 | 504),
        "{}",
        after_hang_up.head.raw
    );
}

#[test]
fn an_origin_s_500_leaves_the_entry_it_could_not_stand_in_for() {
    // Nothing may be served stale here, so the 500 goes to the client;
    // but it is the origin failing, not a new answer for the URL: the
    // entry stays, and the next request revalidates it.
    let failing = Arc::new(AtomicBool::new(false));
    let fails = failing.clone();
    let backend = origin(move |seen| {
        let born_stale = fields(&[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")]);
        if fails.load(Ordering::SeqCst) {
            (500, Vec::new())
        } else if seen.head.has("if-none-match") {
            (304, born_stale)
        } else {
            (200, born_stale)
        }
    });
    let proxy = cached_proxy(&backend, |c| c.stale_if_error = Duration::ZERO);
    expect(&get(&proxy, "/e"), 200, "MISS", "/e #1");
    failing.store(true, Ordering::SeqCst);
    let failed = get(&proxy, "/e");
    let answer = (failed.status, failed.body_str());
    assert_eq!(answer, (500, "/e #2".to_string()), "{}", failed.head.raw);
    failing.store(false, Ordering::SeqCst);
    expect(&get(&proxy, "/e"), 200, "REVALIDATED", "/e #1");
    assert_eq!(backend.requests(), 3);
}

#[test]
fn the_proxy_specific_fields_of_a_response_are_not_stored() {
    // RFC 9111 §3.1: one hop's challenge or nonce, not the resource's.
    let (_backend, proxy) = cached_fixed(
        200,
        &[
            ("Cache-Control", "max-age=600"),
            ("Proxy-Authentication-Info", "nextnonce=\"abc\""),
            ("Proxy-Authenticate", "Basic realm=\"upstream\""),
        ],
    );
    get(&proxy, "/pa");
    let hit = get(&proxy, "/pa");
    assert_eq!(x_cache(&hit), "HIT");
    assert!(
        !hit.head.has("proxy-authentication-info"),
        "{}",
        hit.head.raw
    );
    assert!(!hit.head.has("proxy-authenticate"), "{}", hit.head.raw);
}

#[test]
fn a_no_store_request_within_a_stale_while_revalidate_window_refreshes_nothing() {
    // Its revalidation is its own, in the foreground, and not stored: a
    // 304 refreshes nothing, a new body replaces nothing.
    for answer in [304, 200] {
        let backend = origin(move |seen| match seen.head.get("if-none-match") {
            Some(_) => {
                let etag = if answer == 304 { "\"v1\"" } else { "\"v2\"" };
                (
                    answer,
                    fields(&[("Cache-Control", "max-age=600"), ("ETag", etag)]),
                )
            }
            None => (
                200,
                fields(&[
                    ("Cache-Control", "max-age=50, stale-while-revalidate=600"),
                    ("Age", "100"),
                    ("ETag", "\"v1\""),
                ]),
            ),
        });
        let proxy = cached_proxy(&backend, |_| {});
        expect(&get(&proxy, "/ns"), 200, "MISS", "/ns #1");
        let own = get_with(&proxy, "/ns", &[("Cache-Control", "no-store")]);
        assert_eq!(backend.requests(), 2, "{answer}: asked in the foreground");
        assert_ne!(x_cache(&own), "STALE", "{answer}: {}", own.head.raw);
        let next = get(&proxy, "/ns");
        expect(&next, 200, "STALE", "/ns #1");
    }
}

#[test]
fn must_revalidate_or_a_zero_window_gets_the_error_instead() {
    let must = [
        ("Cache-Control", "max-age=50, must-revalidate"),
        ("Age", "100"),
    ];
    let (a, b) = fail_after_storing(&must, |_| {});
    assert_no_stale_copy(&a, &b);
    // Nor when the response grants a stale-if-error window beside a
    // directive that forbids serving it stale: the most restrictive holds
    // (RFC 9111 §4.2.1, §4.2.4).
    for cc in [
        "max-age=50, must-revalidate, stale-if-error=600",
        "max-age=50, proxy-revalidate, stale-if-error=600",
        "s-maxage=50, stale-if-error=600",
        "max-age=50, no-cache, stale-if-error=600",
    ] {
        let forbids = [("Cache-Control", cc), ("Age", "100"), ("ETag", "\"v1\"")];
        let (a, b) = fail_after_storing(&forbids, |c| c.stale_if_error = Duration::ZERO);
        assert_no_stale_copy(&a, &b);
    }

    // A response that said nothing of freshness may grant the window
    // itself all the same.
    let granted = [("Cache-Control", "stale-if-error=600"), ("ETag", "\"v1\"")];
    let (a, b) = fail_after_storing(&granted, |c| c.stale_if_error = Duration::ZERO);
    expect(&a, 200, "STALE", "/x #1");
    expect(&b, 200, "STALE", "/x #1");

    let old = [("Cache-Control", "max-age=50"), ("Age", "100")];
    let (a, b) = fail_after_storing(&old, |c| c.stale_if_error = Duration::ZERO);
    assert_no_stale_copy(&a, &b);

    // Past the window: 100 s old, fresh for 50, stale allowed for 30.
    let (a, b) = fail_after_storing(&old, |c| c.stale_if_error = Duration::from_secs(30));
    assert_eq!(a.status, 500, "{}", a.head.raw);
    assert!(matches!(b.status, 502 | 504), "{}", b.head.raw);
}

#[test]
fn entries_past_their_stale_window_are_expired_as_a_function_of_time() {
    let backend = fixed(200, &[("Cache-Control", "max-age=60")]);
    let proxy = cached_proxy(&backend, |c| c.stale_if_error = Duration::from_secs(100));
    get(&proxy, "/x");
    let cache = cache_of(&proxy);
    let now = SystemTime::now();
    // Stale at +60 s but still a fallback until +160 s.
    assert_eq!(cache.expire_due(now + Duration::from_secs(120)), 0);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.expire_due(now + Duration::from_secs(200)), 1);
    assert_eq!(cache.len(), 0);
    expect(&get(&proxy, "/x"), 200, "MISS", "/x #2");
}

// -------------------------------------------------------------- coalescing

#[test]
fn concurrent_misses_reach_the_origin_once() {
    concurrent_misses_after(&[]);
}

#[test]
fn a_head_or_a_no_store_get_does_not_stop_coalescing() {
    // Neither is stored, whatever the URL: that says nothing about what
    // the next plain GET brings.
    concurrent_misses_after(&[
        b"HEAD /co HTTP/1.1\r\nHost: test.example\r\n\r\n",
        b"GET /co HTTP/1.1\r\nHost: test.example\r\nCache-Control: no-store\r\n\r\n",
    ]);
}

#[test]
fn a_status_http_does_not_define_stops_coalescing_as_a_5xx_does() {
    // Neither a 500 without freshness nor a 999 (a 5xx to the cache) is
    // stored: once one came, the next misses of the URL go to the origin
    // at once, not each behind another's answer, which a failing origin
    // may take long to give.
    for status in [500, 999] {
        let answered = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let backend = {
            let (answered, in_flight, most) = (answered.clone(), in_flight.clone(), most.clone());
            Backend::start("failing", move |_, out| {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // The first answer at once; the later ones once two wait
                // together (or after 3 s).
                if answered.load(Ordering::SeqCst) > 0 {
                    wait_until(Duration::from_secs(3), || most.load(Ordering::SeqCst) >= 2);
                }
                respond(out, status, &[], b"app error");
                answered.fetch_add(1, Ordering::SeqCst);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Action::KeepAlive
            })
        };
        let proxy = cached_proxy(&backend, |_| {});
        assert_eq!(get(&proxy, "/app").status, status);
        let addr = proxy.addr;
        let clients: Vec<_> = (0..2)
            .map(|_| std::thread::spawn(move || Client::connect(addr).get("/app").status))
            .collect();
        for client in clients {
            assert_eq!(client.join().unwrap(), status);
        }
        assert_eq!(most.load(Ordering::SeqCst), 2, "{status}: one waited");
    }
}

/// With `max_object_size` 1000, a first request for `/big` (with
/// `fields`) answered 5000 bytes, `framing` as named, then two plain
/// misses at once: how many of these were at the origin together (1: they
/// waited on each other; 2: they did not). The origin holds its later
/// answers until two wait together, or `hold`.
fn misses_together_after_a_large_answer(
    framing: &str,
    fields: &[(&str, &str)],
    hold: Duration,
) -> usize {
    let answered = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let chunked_body = framing == "chunked";
    let backend = {
        let (answered, in_flight, most) = (answered.clone(), in_flight.clone(), most.clone());
        Backend::start("large", move |_, out| {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            if answered.load(Ordering::SeqCst) > 0 {
                wait_until(hold, || most.load(Ordering::SeqCst) >= 2);
            }
            let body = pattern(5000);
            let mut bytes = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n".to_vec();
            if chunked_body {
                bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                bytes.extend_from_slice(&chunked(&body, 1000, ""));
            } else {
                bytes.extend_from_slice(b"Content-Length: 5000\r\n\r\n");
                bytes.extend_from_slice(&body);
            }
            // Counted out before the answer goes: once it is read, a miss
            // that waited for it may reach this origin before this thread
            // runs again (seen on a loaded machine), and would be counted
            // as one beside it.
            answered.fetch_add(1, Ordering::SeqCst);
            in_flight.fetch_sub(1, Ordering::SeqCst);
            let _ = out.write_all(&bytes);
            Action::KeepAlive
        })
    };
    let proxy = cached_proxy(&backend, |c| c.max_object_size = Some(1000));
    let first = proxy.connect().get_with("/big", fields);
    assert_eq!((first.status, first.body.len()), (200, 5000), "{framing}");
    assert_eq!(cache_of(&proxy).len(), 0, "{framing}: not stored");
    let addr = proxy.addr;
    let clients: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || Client::connect(addr).get("/big").body.len()))
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), 5000);
    }
    most.load(Ordering::SeqCst)
}

#[test]
fn an_answer_found_too_large_as_it_streams_stops_coalescing_as_one_announced_too_large_does() {
    // Not stored, whatever its framing: the next misses of the URL go to
    // the origin at once, each on its own, not behind another's answer.
    for framing in ["content-length", "chunked"] {
        assert_eq!(
            misses_together_after_a_large_answer(framing, &[], Duration::from_secs(3)),
            2,
            "{framing}"
        );
    }
}

#[test]
fn a_too_large_answer_to_a_request_with_a_cookie_stops_no_coalescing_however_framed() {
    // An answer to a request with a Cookie says nothing of what the next
    // plain GET brings: the next misses still wait on each other.
    for framing in ["content-length", "chunked"] {
        let cookie = [("Cookie", "session=1")];
        // The later answer is held a second: well within the 5 s its
        // follower waits for it, however loaded the machine.
        let hold = Duration::from_secs(1);
        assert_eq!(
            misses_together_after_a_large_answer(framing, &cookie, hold),
            1,
            "{framing}"
        );
    }
}

/// `CLIENTS` concurrent misses of one URL, after `before` were answered
/// one by one: the origin sees one of them.
fn concurrent_misses_after(before: &[&[u8]]) {
    const CLIENTS: usize = 8;
    let sent = Arc::new(AtomicUsize::new(0));
    let backend = one_body_once_all_sent(&sent, CLIENTS);
    let proxy = cached_proxy(&backend, |_| {});
    let addr = proxy.addr;
    for request in before {
        sent.fetch_add(CLIENTS, Ordering::SeqCst);
        let mut client = Client::connect(addr);
        client.send(request);
        let response = client.try_response(request.starts_with(b"HEAD")).unwrap();
        assert_eq!(response.status, 200, "{}", response.head.raw);
        sent.store(0, Ordering::SeqCst);
    }
    let asked_before = backend.requests();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let sent = sent.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                client.send(b"GET /co HTTP/1.1\r\nHost: test.example\r\n\r\n");
                sent.fetch_add(1, Ordering::SeqCst);
                client.response()
            })
        })
        .collect();
    let responses: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(backend.requests() - asked_before, 1);
    for r in &responses {
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (200, "the one body"),
            "{}",
            r.head.raw
        );
    }
    let misses = responses.iter().filter(|r| x_cache(r) == "MISS").count();
    let hits = responses.iter().filter(|r| x_cache(r) == "HIT").count();
    assert_eq!((misses, hits), (1, CLIENTS - 1));
}

// ---------------------------------------------------------------- eviction

#[test]
fn the_least_recently_used_entry_is_evicted_first() {
    // Bodies of 1000 bytes; key and head (counted three and two times)
    // add well under 300 bytes to the bookkeeping, so the cache holds
    // three entries and not four.
    let backend = Backend::start("big", |_, out| {
        respond(out, 200, &[("Cache-Control", "max-age=60")], &pattern(1000));
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |c| {
        c.cache_size = 3 * (1000 + ENTRY_OVERHEAD + 300);
        c.max_object_size = Some(2000);
    });
    for path in ["/e1", "/e2", "/e3"] {
        assert_eq!(x_cache(&get(&proxy, path)), "MISS");
    }
    assert_eq!(cache_of(&proxy).len(), 3, "three entries fit");
    assert_eq!(x_cache(&get(&proxy, "/e1")), "HIT"); // e2 is now the oldest
    assert_eq!(x_cache(&get(&proxy, "/e4")), "MISS");
    assert_eq!(stored_keys(&proxy), [key("/e1"), key("/e3"), key("/e4")]);
    assert!(cache_of(&proxy).bytes() <= 3 * (1000 + ENTRY_OVERHEAD + 300));
    assert_eq!(cache_of(&proxy).stats.evictions.load(Ordering::Relaxed), 1);
    for path in ["/e1", "/e3", "/e4"] {
        let r = get(&proxy, path);
        assert_eq!(x_cache(&r), "HIT", "{path}");
        assert_eq!(r.body, pattern(1000));
    }
    assert_eq!(backend.requests(), 4);
    assert_eq!(x_cache(&get(&proxy, "/e2")), "MISS");
    assert_eq!(backend.requests(), 5);
}

// ------------------------------------------------------------ size limits

#[test]
fn a_body_over_max_object_size_is_relayed_whole_but_not_stored() {
    let backend = Backend::start("sizes", |seen, out| {
        let n: usize = seen.path().trim_start_matches('/').parse().unwrap();
        respond(out, 200, &[("Cache-Control", "max-age=60")], &pattern(n));
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |c| c.max_object_size = Some(1000));
    // Gathered before relaying, and streamed.
    for n in [5000, 300_000] {
        let path = format!("/{n}");
        for _ in 0..2 {
            let r = get(&proxy, &path);
            assert_eq!((r.status, x_cache(&r)), (200, "MISS"), "{path}");
            assert_eq!(r.body.len(), n);
            assert_eq!(fnv(&r.body), fnv(&pattern(n)));
        }
    }
    assert_eq!(backend.requests(), 4);
    assert_eq!(x_cache(&get(&proxy, "/900")), "MISS");
    assert_eq!(x_cache(&get(&proxy, "/900")), "HIT");
    assert_eq!(cache_of(&proxy).len(), 1);
}

#[test]
fn a_chunked_body_over_max_object_size_is_relayed_whole_but_not_stored() {
    let backend = Backend::start("chunked", |_, out| {
        let mut bytes =
            b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for piece in pattern(5000).chunks(700) {
            bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            bytes.extend_from_slice(piece);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
        let _ = out.write_all(&bytes);
        Action::KeepAlive
    });
    let proxy = cached_proxy(&backend, |c| c.max_object_size = Some(1000));
    for _ in 0..2 {
        let r = get(&proxy, "/chunked");
        assert_eq!((r.status, x_cache(&r)), (200, "MISS"));
        assert_eq!(r.body, pattern(5000));
    }
    assert_eq!(backend.requests(), 2);
    assert_eq!(cache_of(&proxy).len(), 0);
}

#[test]
fn a_response_shorter_than_its_content_length_is_not_stored() {
    // Promises `promised` bytes, sends `sent`, hangs up.
    let backend = Backend::start("liar", |seen, out| {
        let (promised, sent) = if seen.path() == "/small" {
            (1000, 10)
        } else {
            (300_000, 100_000)
        };
        let mut bytes = format!(
            "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: {promised}\r\n\r\n"
        )
        .into_bytes();
        bytes.extend_from_slice(&pattern(sent));
        let _ = out.write_all(&bytes);
        Action::Close
    });
    let proxy = cached_proxy(&backend, |c| c.max_object_size = Some(1 << 20));
    for path in ["/small", "/large"] {
        for _ in 0..2 {
            let response = proxy.exchange(|client| {
                client
                    .send(format!("GET {path} HTTP/1.1\r\nHost: test.example\r\n\r\n").as_bytes());
                client.try_response(false)
            });
            match response {
                // Caught before the head went out.
                Ok(r) => assert_eq!(r.status, 502, "{path}: {}", r.head.raw),
                // Or cut short after it.
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{path}: {e}"),
            }
        }
    }
    assert_eq!(backend.requests(), 4);
    assert_eq!(cache_of(&proxy).len(), 0);
}

// ------------------------------------------------------------- persistence

/// A temporary directory and the path of a snapshot file in it, not
/// written yet.
fn snapshot_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.bin");
    (dir, file)
}

fn persisted(path: &Path) -> impl FnOnce(&mut Config) + '_ {
    move |c| {
        cache_on(c);
        c.path_to_persistence = Some(path.to_path_buf());
    }
}

/// [`persisted`], with the timer that writes snapshots ticking every
/// `unit_time`.
fn persisted_every(path: &Path, unit_time: Duration) -> impl FnOnce(&mut Config) + '_ {
    move |c| {
        persisted(path)(c);
        c.unit_time = unit_time;
    }
}

#[test]
fn entries_survive_a_restart() {
    let (_dir, file) = snapshot_file();
    let backend = fixed(200, &[("Cache-Control", "max-age=600")]);
    let mut first = start_proxy(&[backend.addr], persisted(&file));
    expect(&get(&first, "/r1"), 200, "MISS", "/r1 #1");
    expect(&get(&first, "/r2"), 200, "MISS", "/r2 #2");
    assert!(first.shutdown(Duration::from_secs(1)));

    // Same file, no origin at all.
    let second = start_proxy(&[dead_addr()], persisted(&file));
    assert_eq!(cache_of(&second).len(), 2);
    expect(&get(&second, "/r1"), 200, "HIT", "/r1 #1");
    expect(&get(&second, "/r2"), 200, "HIT", "/r2 #2");
    assert_eq!(get(&second, "/r3").status, 502);
    assert_eq!(backend.requests(), 2);
}

#[test]
fn variants_survive_a_restart() {
    let (_dir, file) = snapshot_file();
    let backend = fixed(
        200,
        &[
            ("Cache-Control", "max-age=600"),
            ("Vary", "Accept-Language"),
        ],
    );
    let mut first = start_proxy(&[backend.addr], persisted(&file));
    let en = [("Accept-Language", "en")];
    let fr = [("Accept-Language", "fr")];
    get_with(&first, "/v", &en);
    get_with(&first, "/v", &fr);
    assert!(first.shutdown(Duration::from_secs(1)));

    let second = start_proxy(&[dead_addr()], persisted(&file));
    assert_eq!(cache_of(&second).len(), 2);
    expect(&get_with(&second, "/v", &en), 200, "HIT", "/v #1");
    expect(&get_with(&second, "/v", &fr), 200, "HIT", "/v #2");
    // A value never stored is a miss (the dead origin: 502).
    let r = get_with(&second, "/v", &[("Accept-Language", "de")]);
    assert_eq!(r.status, 502, "{}", r.head.raw);
}

/// An origin whose every answer is cacheable and 1000 bytes long (the
/// path, padded with dots).
fn thousand_byte_origin() -> Backend {
    Backend::start("big", |seen, out| {
        let mut body = seen.path().as_bytes().to_vec();
        body.resize(1000, b'.');
        respond(out, 200, &[("Cache-Control", "max-age=600")], &body);
        Action::KeepAlive
    })
}

#[test]
fn a_restart_into_a_smaller_cache_keeps_the_most_recently_used() {
    let (_dir, file) = snapshot_file();
    let backend = thousand_byte_origin();
    let mut first = start_proxy(&[backend.addr], persisted(&file));
    for i in 1..=5 {
        get(&first, &format!("/r{i}"));
    }
    assert_eq!(x_cache(&get(&first, "/r1")), "HIT"); // most recent: r1, r5
    assert!(first.shutdown(Duration::from_secs(1)));

    // Room for two 1000-byte entries, not three.
    let second = start_proxy(&[dead_addr()], |c| {
        persisted(&file)(c);
        c.cache_size = 2 * (1000 + ENTRY_OVERHEAD + 300);
        c.max_object_size = Some(2000);
    });
    assert_eq!(stored_keys(&second), [key("/r1"), key("/r5")]);
    assert_eq!(x_cache(&get(&second, "/r1")), "HIT");
    assert_eq!(x_cache(&get(&second, "/r5")), "HIT");
}

#[test]
fn recency_after_the_last_snapshot_survives_a_restart() {
    // As above, but the timer has already written all five entries when
    // /r1 is read again: the final snapshot must still record that read.
    let (_dir, file) = snapshot_file();
    let backend = thousand_byte_origin();
    let mut first = start_proxy(
        &[backend.addr],
        persisted_every(&file, Duration::from_millis(50)),
    );
    for i in 1..=5 {
        get(&first, &format!("/r{i}"));
    }
    let written = wait_until(WAIT_LIMIT, || {
        load_snapshot(&file, 0, &LoadLimits::UNLIMITED).is_ok_and(|l| l.records.len() == 5)
    });
    assert!(written, "no snapshot with five records appeared");
    assert_eq!(x_cache(&get(&first, "/r1")), "HIT"); // most recent: r1, r5
    assert!(first.shutdown(Duration::from_secs(1)));

    let order: Vec<String> = load_snapshot(&file, 0, &LoadLimits::UNLIMITED)
        .unwrap()
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.key).into_owned())
        .collect();
    assert_eq!(
        order,
        ["/r1", "/r5", "/r4", "/r3", "/r2"].map(key),
        "snapshot order (most recent first)"
    );
}

#[test]
fn records_past_their_stale_window_are_not_loaded() {
    let (_dir, file) = snapshot_file();
    let mut old = record("/old", "old");
    old.stored_at -= 10_000_000;
    old.expires_at = old.stored_at + 1000;
    old.stale_until = old.expires_at + 1000;
    write_snapshot(&file, &[record("/new", "new"), old]).unwrap();
    let proxy = start_proxy(&[dead_addr()], persisted(&file));
    assert_eq!(cache_of(&proxy).len(), 1);
    expect(&get(&proxy, "/new"), 200, "HIT", "new");
    assert_eq!(get(&proxy, "/old").status, 502);
}

#[test]
fn the_timer_writes_snapshots_a_crash_would_leave_behind() {
    let (dir, file) = snapshot_file();
    let backend = fixed(200, &[("Cache-Control", "max-age=600")]);
    let _running = start_proxy(
        &[backend.addr],
        persisted_every(&file, Duration::from_millis(100)),
    );
    expect(&get(&_running, "/t1"), 200, "MISS", "/t1 #1");
    let written = wait_until(WAIT_LIMIT, || {
        load_snapshot(&file, 0, &LoadLimits::UNLIMITED).is_ok_and(|l| {
            l.damage.is_none() && l.records.iter().any(|r| r.key == key("/t1").as_bytes())
        })
    });
    assert!(written, "no snapshot with /t1 appeared");

    // What a kill -9 now would leave: the file as it is, no final snapshot.
    let crashed = dir.path().join("crashed.bin");
    std::fs::copy(&file, &crashed).unwrap();
    let second = start_proxy(&[dead_addr()], persisted(&crashed));
    expect(&get(&second, "/t1"), 200, "HIT", "/t1 #1");
}

#[test]
fn what_a_damaged_snapshot_held_is_written_back_without_waiting_for_a_change() {
    let (_dir, file) = snapshot_file();
    let offsets = five_records(&file);
    let whole = std::fs::read(&file).unwrap();
    std::fs::write(&file, &whole[..offsets[3] + 20]).unwrap();
    // No request at all: the three records read are on disk again within
    // a unit_time, the damaged file kept aside.
    let _proxy = start_proxy(
        &[dead_addr()],
        persisted_every(&file, Duration::from_millis(50)),
    );
    assert!(wait_until(WAIT_LIMIT, || {
        load_snapshot(&file, 0, &LoadLimits::UNLIMITED)
            .is_ok_and(|l| l.damage.is_none() && l.records.len() == 3)
    }));
}

#[test]
fn a_snapshot_deleted_while_running_is_written_again_without_a_change() {
    let (_dir, file) = snapshot_file();
    let backend = fixed(200, &[("Cache-Control", "max-age=600")]);
    let proxy = start_proxy(
        &[backend.addr],
        persisted_every(&file, Duration::from_millis(50)),
    );
    get(&proxy, "/kept");
    let holds_kept = || {
        load_snapshot(&file, 0, &LoadLimits::UNLIMITED)
            .is_ok_and(|l| l.records.iter().any(|r| r.key == key("/kept").as_bytes()))
    };
    assert!(wait_until(WAIT_LIMIT, holds_kept));
    std::fs::remove_file(&file).unwrap();
    // Nothing changes in the cache from here on.
    assert!(
        wait_until(WAIT_LIMIT, holds_kept),
        "the snapshot was not written again"
    );
}

fn record(path: &str, body: &str) -> Record {
    let mut head = ResponseHead::new(200);
    head.headers.push("Cache-Control", "max-age=3600");
    let lifetime = Lifetime {
        fresh: Duration::from_secs(3600),
        stale_if_error: Duration::from_secs(3600),
    };
    Entry::new(
        key(path),
        head,
        body.as_bytes().into(),
        SystemTime::now(),
        lifetime,
        &Settings::default(),
    )
    .record
}

/// Writes five records `/d0`..`/d4`; returns the byte offset where each
/// record starts and where the trailer starts.
fn five_records(file: &Path) -> Vec<usize> {
    let records: Vec<Record> = (0..5)
        .map(|i| record(&format!("/d{i}"), &format!("body {i}")))
        .collect();
    write_snapshot(file, &records).unwrap();
    let mut offsets = vec![12];
    for r in &records {
        let last = *offsets.last().unwrap();
        offsets.push(last + 8 + 36 + r.key.len() + r.head.len() + r.body.len());
    }
    assert_eq!(
        std::fs::metadata(file).unwrap().len() as usize,
        offsets[5] + 16
    );
    offsets
}

#[test]
fn a_damaged_snapshot_keeps_what_is_valid() {
    let (dir, file) = snapshot_file();
    let offsets = five_records(&file);
    let whole = std::fs::read(&file).unwrap();

    let mut flipped = whole.clone();
    flipped[offsets[3] - 2] ^= 0x10; // in the body of the third record
                                     // What each file keeps, and the name it is moved aside to, if any.
    type Case<'a> = (&'a str, Vec<u8>, &'a [usize], Option<&'a str>);
    let cases: [Case; 6] = [
        ("whole", whole.clone(), &[0, 1, 2, 3, 4], None),
        (
            "cut inside the fourth record",
            whole[..offsets[3] + 20].to_vec(),
            &[0, 1, 2],
            Some("damaged"),
        ),
        (
            "cut before the trailer",
            whole[..offsets[5]].to_vec(),
            &[0, 1, 2, 3, 4],
            Some("damaged"),
        ),
        // Nothing past the damage: what follows a damaged record cannot
        // be told from bytes of a body.
        (
            "a bit flipped in the third record",
            flipped,
            &[0, 1],
            Some("damaged"),
        ),
        ("empty", Vec::new(), &[], None),
        (
            "not a snapshot",
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            &[],
            Some("unread"),
        ),
    ];
    let mut failures = Vec::new();
    for (name, bytes, kept, aside) in cases {
        let file_name = format!("{}.bin", name.replace(' ', "-"));
        let file = dir.path().join(&file_name);
        std::fs::write(&file, &bytes).unwrap();
        let proxy = start_proxy(&[dead_addr()], persisted(&file));
        let len = cache_of(&proxy).len();
        if len != kept.len() {
            failures.push(format!("{name}: kept {len} entries, expected {kept:?}"));
            continue;
        }
        // The survivors answer; the lost ones do not.
        for i in 0..5 {
            let r = get(&proxy, &format!("/d{i}"));
            let want = if kept.contains(&i) {
                (200, "HIT".to_string(), format!("body {i}"))
            } else {
                (502, "MISS".into(), String::new())
            };
            let got = (
                r.status,
                x_cache(&r).to_string(),
                if r.status == 200 {
                    r.body_str()
                } else {
                    String::new()
                },
            );
            if got.0 != want.0 || (kept.contains(&i) && got != want) {
                failures.push(format!("{name}: /d{i} got {got:?}, expected {want:?}"));
            }
        }
        // A file not read whole is kept, byte for byte, out of the way of
        // the next snapshot.
        let set_aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with(&format!("{file_name}.")) && !n.ends_with(".tmp")
            })
            .collect();
        match aside {
            None if !set_aside.is_empty() => {
                failures.push(format!("{name}: moved aside as {set_aside:?}"))
            }
            Some(label) => match set_aside.as_slice() {
                [one] if one.to_string_lossy().contains(&format!(".{label}-")) => {
                    if std::fs::read(one).unwrap() != bytes {
                        failures.push(format!("{name}: {one:?} is not the file as it was"));
                    }
                }
                other => failures.push(format!("{name}: expected a .{label}- file, got {other:?}")),
            },
            None => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn ten_thousand_entries_round_trip_through_a_snapshot() {
    const N: usize = 10_000;
    let cache = Cache::new(1 << 30, 1 << 20);
    for i in 0..N {
        let body = format!("body of entry {i} {}", "x".repeat(i % 300));
        assert!(cache.insert(
            Entry::from_record(record(&format!("/n/{i}"), &body), &Settings::default()).unwrap()
        ));
    }
    assert_eq!(cache.len(), N);
    let (_dir, file) = snapshot_file();
    let stats = timer::snapshot(&cache, &file).unwrap();
    assert_eq!(stats.records, N);

    let loaded = load_snapshot(&file, 0, &LoadLimits::UNLIMITED).unwrap();
    assert!(loaded.damage.is_none(), "{:?}", loaded.damage);
    let before: Vec<Record> = cache.entries().iter().map(|e| e.record.clone()).collect();
    assert_eq!(loaded.records, before);

    let restored = Cache::new(1 << 30, 1 << 20);
    let settings = Settings::default();
    assert_eq!(timer::load(&restored, &file, |_| Some(&settings)), N);
    let after: Vec<Record> = restored
        .entries()
        .iter()
        .map(|e| e.record.clone())
        .collect();
    assert_eq!(after, before, "same records in the same recency order");
    assert_eq!(restored.bytes(), cache.bytes());
}

// -------------------------------------------------------- cache inspect CLI

/// `inverso cache inspect FILE`, not started yet.
fn cache_inspect(file: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_inverso"));
    command.args(["cache", "inspect"]).arg(file);
    command
}

#[test]
fn cache_inspect_lists_a_record_that_ended_at_the_epoch_too() {
    // Inspecting shows every record the file holds: one whose times are 0
    // (a hostile or broken file) was left out of the listing and the count.
    let (_dir, file) = snapshot_file();
    let record = |key: &str, at: u64| Record {
        key: key.as_bytes().to_vec(),
        head: b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n".to_vec(),
        body: b"body"[..].into(),
        stored_at: at,
        expires_at: at,
        stale_until: at,
    };
    write_snapshot(&file, &[record("x/shown", 1), record("x/hidden", 0)]).unwrap();
    let out = cache_inspect(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("x/shown") && stdout.contains("x/hidden"),
        "{stdout}"
    );
    assert!(stdout.contains("records: 2 "), "{stdout}");
}

#[test]
fn cache_inspect_lists_records_and_rejects_other_files() {
    let (dir, file) = snapshot_file();
    let offsets = five_records(&file);
    assert_eq!(offsets.len(), 6);

    let out = cache_inspect(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let (header, lines) = lines.split_first().expect("a header line");
    assert!(header.starts_with("status"), "{stdout}");
    let (summary, records) = lines.split_last().expect("output");
    assert!(summary.starts_with("records:"), "{stdout}");
    assert_eq!(records.len(), 5, "{stdout}");
    for i in 0..5 {
        let k = key(&format!("/d{i}"));
        assert!(
            records.iter().any(|l| l.contains(&k) && l.contains("200")),
            "no line with {k} and 200:\n{stdout}"
        );
    }

    let foreign = dir.path().join("foreign.bin");
    std::fs::write(&foreign, b"this is not a cache file").unwrap();
    let out = cache_inspect(&foreign).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not an inverso cache snapshot"), "{stderr}");

    // A damaged file: what is valid is listed, and the exit code says the
    // file is not whole.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &bytes[..offsets[3] + 10]).unwrap();
    let out = cache_inspect(&cut).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("records: 3 "), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));

    // Records the proxy would drop are listed as such, keys escaped, and
    // the exit code says the file is not sound.
    let mut bad = vec![record("/ok", "fine"), record("/\x1b[31mred\r", "x")];
    let mut not_modified = record("/nm", "body");
    not_modified.head = b"HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=60\r\n".to_vec();
    bad.push(not_modified);
    let mut binary_key = record("/b", "body");
    binary_key.key = b"test.example/\xff".to_vec();
    bad.push(binary_key);
    let crafted = dir.path().join("crafted.bin");
    write_snapshot(&crafted, &bad).unwrap();
    let out = cache_inspect(&crafted).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\r'),
        "{stdout:?}"
    );
    assert!(stdout.contains("\\u{1b}[31mred\\r"), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("bad ")).count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("2 unusable"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 record(s) the proxy would drop"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Output to a full device is an error, not a panic.
    let full = std::fs::File::create("/dev/full").unwrap();
    let out = cache_inspect(&file).stdout(full).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("No space left"), "{stderr}");
}

#[test]
fn cache_inspect_lists_a_file_claiming_a_huge_record_in_bounded_memory() {
    // A header, then one record claiming 256 MiB, all of it zeros that
    // take no room on disk (a sparse file).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sparse.bin");
    let mut head = b"INVERSO\0".to_vec();
    head.extend_from_slice(&1u32.to_le_bytes());
    head.extend_from_slice(&(256u32 << 20).to_le_bytes());
    head.extend_from_slice(&0u32.to_le_bytes());
    std::fs::write(&file, &head).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(head.len() as u64 + (256 << 20)).unwrap();
    drop(f);

    // Run with less address space than the record claims: holding it
    // would fail (and abort), reading it through does not.
    let mut command = cache_inspect(&file);
    // SAFETY: only setrlimit, async-signal-safe, runs between fork and
    // exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 160 << 20,
                rlim_max: 160 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("checksum"), "{stderr}");
}

#[test]
fn a_hit_cut_short_by_the_client_is_logged_with_its_status_and_the_bytes_sent() {
    const SIZE: usize = 16 << 20;
    let backend = Backend::start("big", |_, out| {
        respond(
            out,
            200,
            &[("Cache-Control", "max-age=600")],
            &pattern(SIZE),
        );
        Action::KeepAlive
    });
    let mut proxy = start_proxy(&[backend.addr], |c| {
        c.cache_size = 64 << 20;
        c.max_object_size = Some(32 << 20);
    });
    assert_eq!(get(&proxy, "/big").body.len(), SIZE);
    // The head, then gone with most of the body unread.
    let mut client = proxy.connect();
    client.send(b"GET /big HTTP/1.1\r\nHost: test.example\r\n\r\n");
    let head = client.reader.read_head().unwrap().unwrap();
    assert!(head.raw.contains("X-Cache: HIT"), "{}", head.raw);
    drop(client);
    proxy.assert_becomes_idle();
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    let line = lines.last().unwrap();
    let bytes: u64 = line
        .split("\" 200 ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a 200: {line}"));
    assert!(bytes > 0 && bytes < SIZE as u64, "{line}");
    assert!(line.contains("cache=HIT"), "{line}");
}

#[test]
fn max_stale_never_gets_an_entry_that_forbids_serving_it_stale() {
    // s-maxage implies proxy-revalidate (RFC 9111 §5.2.2.10), no-cache
    // means validate every time (§5.2.2.4), must-revalidate says so: once
    // stale, whatever the request allows, the origin is asked first.
    for cc in [
        "s-maxage=50",
        "max-age=50, no-cache",
        "max-age=50, must-revalidate",
    ] {
        let (backend, proxy) = cached_fixed(
            200,
            &[("Cache-Control", cc), ("Age", "100"), ("ETag", "\"v1\"")],
        );
        get(&proxy, "/f");
        let r = get_with(&proxy, "/f", &[("Cache-Control", "max-stale")]);
        assert_ne!(x_cache(&r), "STALE", "{cc}:\n{}", r.head.raw);
        assert_eq!(backend.requests(), 2, "{cc}");
    }
}

#[test]
fn a_304_that_makes_an_entry_private_is_answered_as_private() {
    // The stored 200 was public; the 304 says private, and sets the
    // session of the client that caused it: that answer must not carry
    // the old, shareable Cache-Control next to the cookie.
    let (_backend, proxy) = behind_cache(etag_origin(
        &[("Cache-Control", "public, max-age=0"), ("ETag", "\"v1\"")],
        &[
            ("ETag", "\"v1\""),
            ("Cache-Control", "private, max-age=60"),
            ("Set-Cookie", "session=alice"),
        ],
    ));
    get(&proxy, "/p");
    let alice = get(&proxy, "/p");
    assert_eq!(alice.header("set-cookie"), Some("session=alice"));
    assert_eq!(
        alice.header("cache-control"),
        Some("private, max-age=60"),
        "{}",
        alice.head.raw
    );
    assert!(cache_of(&proxy).is_empty());
}

#[test]
fn a_background_answer_too_large_drops_the_entry_however_it_is_framed() {
    for chunked in [false, true] {
        let first = Arc::new(AtomicBool::new(true));
        let backend = Backend::start("big", move |_, out| {
            if first.swap(false, Ordering::SeqCst) {
                let cc = [
                    ("Cache-Control", "max-age=10, stale-while-revalidate=60"),
                    ("Age", "20"),
                ];
                respond(out, 200, &cc, b"small #1");
                return Action::KeepAlive;
            }
            let body = pattern(5000);
            let mut bytes = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n".to_vec();
            if chunked {
                bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                bytes.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                bytes.extend_from_slice(&body);
                bytes.extend_from_slice(b"\r\n0\r\n\r\n");
            } else {
                bytes.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                );
                bytes.extend_from_slice(&body);
            }
            let _ = out.write_all(&bytes);
            Action::KeepAlive
        });
        let proxy = cached_proxy(&backend, |c| c.max_object_size = Some(1000));
        expect(&get(&proxy, "/b"), 200, "MISS", "small #1");
        // Served stale, then revalidated in the background: 5000 bytes.
        expect(&get(&proxy, "/b"), 200, "STALE", "small #1");
        let r = get(&proxy, "/b");
        assert_eq!(x_cache(&r), "MISS", "chunked={chunked}");
    }
}

// ------------------------------------------- what one user's page must not do

#[test]
fn an_entry_the_origin_said_nothing_about_is_never_served_stale() {
    // An application's page with only an ETag (Express's default): stored
    // so that a 304 can stand for it, never handed out unconfirmed.
    let unlabeled = [("ETag", "\"v1\"")];
    let (a, b) = fail_after_storing(&unlabeled, |_| {});
    assert_eq!(
        (a.status, b.status),
        (500, 502),
        "{}\n{}",
        a.head.raw,
        b.head.raw
    );

    let (backend, proxy) = cached_fixed(200, &unlabeled);
    expect(&get(&proxy, "/me"), 200, "MISS", "/me #1");
    // A client that accepts anything stale still gets the origin's word.
    let r = get_with(&proxy, "/me", &[("Cache-Control", "max-stale")]);
    assert_eq!(backend.requests(), 2, "{}", r.head.raw);
    assert_eq!(backend.seen()[1].head.get("if-none-match"), Some("\"v1\""));

    // One with a Last-Modified was fresh for a guessed while (a tenth of
    // its age, RFC 9111 §4.2.2): it stands in on failure as one with a
    // lifetime of its own does, as nginx's proxy_cache_use_stale.
    let modified = now_date(-1000);
    let guessed = [("Last-Modified", modified.as_str()), ("Age", "200")];
    let (a, b) = fail_after_storing(&guessed, |_| {});
    expect(&a, 200, "STALE", "/x #1");
    expect(&b, 200, "STALE", "/x #1");
}

#[test]
fn a_stored_response_never_hands_out_its_set_cookie() {
    let (backend, proxy) = cached_fixed(
        200,
        &[
            ("Cache-Control", "public, max-age=60"),
            ("Set-Cookie", "sid=first-visitor"),
        ],
    );
    let miss = get(&proxy, "/landing");
    expect(&miss, 200, "MISS", "/landing #1");
    assert_eq!(miss.header("set-cookie"), Some("sid=first-visitor"));
    let hit = get(&proxy, "/landing");
    expect(&hit, 200, "HIT", "/landing #1");
    assert_eq!(hit.header("set-cookie"), None, "{}", hit.head.raw);
    assert_eq!(backend.requests(), 1);
}

#[test]
fn a_response_to_a_request_with_cookies_is_stored_only_when_it_says_so() {
    let old = [
        ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ("ETag", "\"v1\""),
    ];
    // Without cookies, Last-Modified a long time ago makes it fresh for a
    // while (RFC 9111 §4.2.2).
    let (backend, proxy) = cached_fixed(200, &old);
    expect(&get(&proxy, "/page"), 200, "MISS", "/page #1");
    expect(&get(&proxy, "/page"), 200, "HIT", "/page #1");
    assert_eq!(backend.requests(), 1);
    // With them, the page may be that user's own: not stored, so neither
    // served to another nor revalidated with the first user's validator
    // (which may name the resource, and get a 304 for someone else's page).
    let (backend, proxy) = cached_fixed(200, &old);
    let alice = [("Cookie", "sid=alice")];
    expect(&get_with(&proxy, "/page", &alice), 200, "MISS", "/page #1");
    let bob = [("Cookie", "sid=bob")];
    expect(&get_with(&proxy, "/page", &bob), 200, "MISS", "/page #2");
    let asked = &backend.seen()[1];
    assert!(!asked.head.has("if-none-match"), "{}", asked.head.raw);
    assert!(!asked.head.has("if-modified-since"), "{}", asked.head.raw);
    // Nor when it says it is fresh for no time at all.
    for zero in [("Cache-Control", "max-age=0"), ("Expires", "0")] {
        let (backend, proxy) = cached_fixed(200, &[zero, ("ETag", "\"v1\"")]);
        expect(&get_with(&proxy, "/page", &alice), 200, "MISS", "/page #1");
        let stale = [("Cookie", "sid=bob"), ("Cache-Control", "max-stale")];
        expect(&get_with(&proxy, "/page", &stale), 200, "MISS", "/page #2");
        assert!(!backend.seen()[1].head.has("if-none-match"));
    }
    // The proxy's own sticky cookie is no application's: not a cookie the
    // page could depend on.
    let backend = fixed(200, &old);
    let proxy = cached_proxy(&backend, |c| c.sticky_cookie = Some("srv".into()));
    let ours = [("Cookie", "srv=0123456789abcdef")];
    expect(&get_with(&proxy, "/page", &ours), 200, "MISS", "/page #1");
    expect(&get_with(&proxy, "/page", &ours), 200, "HIT", "/page #1");
    // Said explicitly, it is stored as any response is.
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=60")]);
    expect(&get_with(&proxy, "/page", &alice), 200, "MISS", "/page #1");
    expect(&get_with(&proxy, "/page", &bob), 200, "HIT", "/page #1");
    assert_eq!(backend.requests(), 1);
}

#[test]
fn sticky_cookie_nocache_marks_the_response_that_sets_the_cookie_not_what_the_cache_stores() {
    let backend = fixed(200, &[("Cache-Control", "max-age=60")]);
    let proxy = cached_proxy(&backend, |c| {
        c.sticky_cookie = Some("srv".into());
        c.sticky_cookie_nocache = true;
    });
    let cache_control = |r: &Response| {
        r.head
            .get_all("cache-control")
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let miss = get(&proxy, "/page");
    expect(&miss, 200, "MISS", "/page #1");
    assert!(miss.header("set-cookie").is_some());
    assert_eq!(cache_control(&miss), ["max-age=60", "private"]);
    // Stored as the backend sent it: a hit, which sets no cookie, is no
    // one's to keep private.
    let hit = get(&proxy, "/page");
    expect(&hit, 200, "HIT", "/page #1");
    assert_eq!(hit.header("set-cookie"), None);
    assert_eq!(cache_control(&hit), ["max-age=60"]);
}

#[test]
fn a_percent_that_starts_no_escape_is_forwarded_as_sent_and_keyed_as_its_escape() {
    // As browsers send what was typed: `?q=100%`, `?promo=50%off`.
    let (backend, proxy) = cached_fixed(200, &[("Cache-Control", "max-age=60")]);
    expect(
        &get(&proxy, "/search?q=100%"),
        200,
        "MISS",
        "/search?q=100% #1",
    );
    assert_eq!(
        backend.seen()[0].head.start_line,
        "GET /search?q=100% HTTP/1.1"
    );
    expect(
        &get(&proxy, "/search?q=100%"),
        200,
        "HIT",
        "/search?q=100% #1",
    );
    // The one resource, spelled properly.
    expect(
        &get(&proxy, "/search?q=100%25"),
        200,
        "HIT",
        "/search?q=100% #1",
    );
    expect(
        &get(&proxy, "/p?promo=50%off"),
        200,
        "MISS",
        "/p?promo=50%off #2",
    );
}

#[test]
fn dropping_the_replaced_entry_spares_one_stored_while_the_unstorable_200_streamed() {
    // A stale entry is answered with a 200 `no-store` whose body takes a
    // while; meanwhile another request stores a fresh answer. The old
    // entry is what is to go, not the one stored since.
    let (streaming, stored) = (Gate::new(), Gate::new());
    let n = AtomicUsize::new(0);
    let backend = {
        let (streaming, stored) = (streaming.clone(), stored.clone());
        Backend::start("origin", move |_, out| {
            match n.fetch_add(1, Ordering::SeqCst) {
                0 => respond(
                    out,
                    200,
                    &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
                    b"old",
                ),
                1 => {
                    let _ = out.write_all(
                        b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 10\r\n\r\nnnnnn",
                    );
                    streaming.open();
                    stored.wait();
                    let _ = out.write_all(b"nnnnn");
                }
                2 => respond(out, 200, &[("Cache-Control", "max-age=600")], b"fresh"),
                _ => respond(out, 200, &[("Cache-Control", "max-age=600")], b"later"),
            }
            Action::KeepAlive
        })
    };
    let proxy = Arc::new(cached_proxy(&backend, |_| {}));
    expect(&get(&proxy, "/p"), 200, "MISS", "old");
    let slow = {
        let proxy = proxy.clone();
        std::thread::spawn(move || get(&proxy, "/p").body_str())
    };
    assert!(streaming.wait());
    // Not `get`, which waits for the proxy to be idle.
    assert_eq!(proxy.connect().get("/p").body_str(), "fresh");
    stored.open();
    assert_eq!(slow.join().unwrap(), "nnnnnnnnnn");
    let r = get(&proxy, "/p");
    assert_eq!(
        (r.body_str().as_str(), r.header("x-cache")),
        ("fresh", Some("HIT")),
        "the entry stored meanwhile was dropped"
    );
}

#[test]
fn a_vary_the_backend_names_in_connection_too_still_keys_its_variants() {
    // Named in `Connection`, it would be dropped as hop-by-hop: from the
    // stored head (the variants then stored under keys no lookup made
    // again) and from the client's answer. It is kept.
    let backend = varying_backend(&[("Connection", "Vary")]);
    let proxy = cached_proxy(&backend, |_| {});
    let gzip = [("Accept-Encoding", "gzip")];
    let br = [("Accept-Encoding", "br")];
    let first = get_with(&proxy, "/v", &gzip);
    expect(&first, 200, "MISS", "encoded gzip");
    assert_eq!(
        first.header("vary"),
        Some("Accept-Encoding"),
        "{}",
        first.head.raw
    );
    expect(&get_with(&proxy, "/v", &br), 200, "MISS", "encoded br");
    expect(&get_with(&proxy, "/v", &gzip), 200, "HIT", "encoded gzip");
    expect(&get_with(&proxy, "/v", &br), 200, "HIT", "encoded br");
    assert_eq!(backend.requests(), 2);
}
