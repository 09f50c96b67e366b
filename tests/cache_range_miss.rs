//! A `GET` with `Range` that finds nothing stored: when the cache may
//! store the answer, the origin is asked for the whole response, without
//! `Range` and `If-Range` (as nginx's `proxy_cache` asks it), the `200` is
//! stored and the client gets its part cut from it. Otherwise the range
//! goes to the origin as it is.
//!
//! One range of a `200` whose length its head says goes out as the body
//! arrives (as nginx's range filter sends it), the whole read on into
//! the cache; any other answer is cut from what is stored.
//!
//! The origin honours a range of one span as a server does (a `206`), so
//! a range that reached it shows in its answer as well as in what it saw.

mod support;

use inverso::Config;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::time::Duration;
use support::*;

/// What the origin serves for every URL.
const BODY: &str = "0123456789abcdef";
const ETAG: &str = "\"v1\"";

fn cache_on(c: &mut Config) {
    c.cache_size = 4 << 20;
    c.max_object_size = Some(256 * 1024);
}

/// The span of a `Range: bytes=A-B` the origin honours, if that is what
/// `seen` asks.
fn one_span(seen: &Seen) -> Option<(usize, usize)> {
    let spec = seen.head.get("range")?.strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()?))
}

/// Answers the range of one span `seen` asks of `body` as a `206`, as a
/// server does; `false` when it asks none.
fn answered_a_span(seen: &Seen, out: &mut impl Write, body: &[u8]) -> bool {
    let Some((start, end)) = one_span(seen) else {
        return false;
    };
    let range = format!("bytes {start}-{end}/{}", body.len());
    respond(
        out,
        206,
        &[("Content-Range", range.as_str())],
        &body[start..=end],
    );
    true
}

/// An origin answering [`BODY`] with `cache_control` and `ETag: "v1"`,
/// its answers numbered in `X-Answer`, a range of one span as a `206`.
/// Each answer waits for `gate` (open unless a test holds it).
fn ranging(cache_control: &'static str, gate: Gate) -> Backend {
    let numbered = AtomicUsize::new(0);
    Backend::start("origin", move |seen, out| {
        gate.wait();
        let n = (numbered.fetch_add(1, Ordering::SeqCst) + 1).to_string();
        let mut fields = vec![
            ("Cache-Control", cache_control),
            ("ETag", ETAG),
            ("X-Answer", n.as_str()),
        ];
        match one_span(seen) {
            Some((start, end)) => {
                let range = format!("bytes {start}-{end}/{}", BODY.len());
                fields.push(("Content-Range", &range));
                respond(out, 206, &fields, &BODY.as_bytes()[start..=end]);
            }
            None => respond(out, 200, &fields, BODY.as_bytes()),
        }
        Action::KeepAlive
    })
}

fn open_gate() -> Gate {
    let gate = Gate::new();
    gate.open();
    gate
}

/// The `Range` the origin saw in each request, in order (`-` for none).
fn ranges_seen(backend: &Backend) -> Vec<String> {
    (backend.seen().iter())
        .map(|s| s.field_or("range", "-"))
        .collect()
}

fn get_with(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> Response {
    proxy.exchange(|c| c.get_with(path, headers))
}

fn range(proxy: &Proxy, path: &str, range: &str) -> Response {
    get_with(proxy, path, &[("Range", range)])
}

#[test]
fn a_range_miss_is_fetched_whole_stored_and_each_range_cut_from_it() {
    let backend = ranging("max-age=60", open_gate());
    let proxy = start_proxy(&[backend.addr], cache_on);

    let r = range(&proxy, "/one", "bytes=2-5");
    expect(&r, 206, "MISS", "2345");
    assert_eq!(r.header("content-range"), Some("bytes 2-5/16"));
    assert_eq!(r.header("etag"), Some(ETAG));
    // Several ranges: a multipart 206, as a hit gets.
    let r = range(&proxy, "/multi", "bytes=0-1,4-5");
    assert_eq!((r.status, x_cache(&r)), (206, "MISS"), "{}", r.head.raw);
    let parts: Vec<Vec<u8>> = multipart(&r).into_iter().map(|(_, b)| b).collect();
    assert_eq!(parts, [b"01".to_vec(), b"45".to_vec()]);
    // Past the end: 416, with the stored length.
    let r = range(&proxy, "/past", "bytes=100-");
    assert_eq!((r.status, x_cache(&r)), (416, "MISS"), "{}", r.head.raw);
    assert_eq!(r.header("content-range"), Some("bytes */16"));
    // An If-Range the stored answer does not meet: the whole of it.
    let asked = [("Range", "bytes=0-1"), ("If-Range", "\"v0\"")];
    expect(&get_with(&proxy, "/other", &asked), 200, "MISS", BODY);
    let seen = backend.seen();
    assert!(seen.iter().all(|s| !s.head.has("if-range")));

    // One request each, none of them ranged; everything stored.
    assert_eq!(ranges_seen(&backend), ["-", "-", "-", "-"]);
    expect(&range(&proxy, "/one", "bytes=0-1"), 206, "HIT", "01");
    for path in ["/one", "/multi", "/past", "/other"] {
        expect(&proxy.exchange(|c| c.get(path)), 200, "HIT", BODY);
    }
    assert_eq!(backend.requests(), 4);
}

#[test]
fn a_range_miss_that_may_not_be_stored_is_asked_again_as_it_is() {
    let backend = ranging("private", open_gate());
    let proxy = start_proxy(&[backend.addr], cache_on);
    // The whole answer says it may not be stored: the client gets its
    // part, asked of the origin as it is.
    expect(&range(&proxy, "/p", "bytes=2-5"), 206, "BYPASS", "2345");
    // The URL's ranges are not fetched whole again for a while.
    expect(&range(&proxy, "/p", "bytes=2-5"), 206, "BYPASS", "2345");
    assert_eq!(ranges_seen(&backend), ["-", "bytes=2-5", "bytes=2-5"]);
}

#[test]
fn a_range_miss_for_a_url_not_asked_often_enough_goes_as_it_is_and_counts() {
    let backend = ranging("max-age=60", open_gate());
    let proxy = start_proxy(&[backend.addr], |c| {
        cache_on(c);
        c.cache_min_uses = 2;
    });
    expect(&range(&proxy, "/m", "bytes=2-5"), 206, "BYPASS", "2345");
    // The second use: fetched whole, stored, cut.
    expect(&range(&proxy, "/m", "bytes=0-1"), 206, "MISS", "01");
    expect(&range(&proxy, "/m", "bytes=3-4"), 206, "HIT", "34");
    assert_eq!(ranges_seen(&backend), ["bytes=2-5", "-"]);
}

#[test]
fn a_range_miss_with_credentials_or_no_store_goes_as_it_is() {
    let backend = ranging("public, max-age=60", open_gate());
    let proxy = start_proxy(&[backend.addr], cache_on);
    for own in [
        ("Authorization", "Basic dXNlcjpwYXNz"),
        ("Cache-Control", "no-store"),
    ] {
        let r = get_with(&proxy, "/c", &[("Range", "bytes=2-5"), own]);
        expect(&r, 206, "BYPASS", "2345");
    }
    assert_eq!(ranges_seen(&backend), ["bytes=2-5", "bytes=2-5"]);
    expect(&proxy.exchange(|c| c.get("/c")), 200, "MISS", BODY);
}

#[test]
fn a_range_miss_found_too_large_as_it_streams_is_asked_again_as_it_is() {
    let large = pattern(300 * 1024);
    let backend = Backend::start("origin", move |seen, out| {
        if answered_a_span(seen, out, &large) {
            return Action::KeepAlive;
        }
        let head = "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        let mut bytes = head.as_bytes().to_vec();
        bytes.extend_from_slice(&chunked(&large, 4096, ""));
        let _ = out.write_all(&bytes);
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], cache_on);
    let expected = pattern(300 * 1024)[10..=19].to_vec();

    let r = range(&proxy, "/big", "bytes=10-19");
    assert_eq!((r.status, x_cache(&r)), (206, "BYPASS"), "{}", r.head.raw);
    assert_eq!(r.body, expected);
    assert_eq!(ranges_seen(&backend), ["-", "bytes=10-19"]);
    // Not fetched whole again for a while.
    let r = range(&proxy, "/big", "bytes=10-19");
    assert_eq!((r.status, r.body.clone()), (206, expected.clone()));
    assert_eq!(ranges_seen(&backend), ["-", "bytes=10-19", "bytes=10-19"]);

    // Nor with a cookie, whose answer says nothing of the next plain GET's.
    let cookied = [("Range", "bytes=10-19"), ("Cookie", "a=b")];
    for _ in 0..2 {
        let r = get_with(&proxy, "/cookied", &cookied);
        assert_eq!((r.status, r.body.clone()), (206, expected.clone()));
    }
    assert_eq!(
        ranges_seen(&backend)[3..],
        ["-", "bytes=10-19", "bytes=10-19"]
    );
}

#[test]
fn a_range_miss_announced_too_large_is_asked_again_as_it_is() {
    let gate = Gate::new();
    let held = gate.clone();
    let large = pattern(300 * 1024);
    let backend = Backend::start("origin", move |seen, out| {
        if answered_a_span(seen, out, &large) {
            return Action::KeepAlive;
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: {}\r\n\r\n",
            large.len()
        );
        let _ = out.write_all(head.as_bytes());
        let _ = out.write_all(&large[..1024]);
        // The rest never comes while the test runs: a proxy waiting for
        // the whole body would leave the client waiting.
        held.wait();
        let _ = out.write_all(&large[1024..]);
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], cache_on);

    let r = range(&proxy, "/huge", "bytes=0-9");
    assert_eq!((r.status, x_cache(&r)), (206, "BYPASS"), "{}", r.head.raw);
    assert_eq!(r.body, pattern(10));
    // The URL's ranges now go as they are.
    let r = range(&proxy, "/huge", "bytes=0-9");
    assert_eq!((r.status, r.body.clone()), (206, pattern(10)));
    gate.open();
    assert_eq!(ranges_seen(&backend), ["-", "bytes=0-9", "bytes=0-9"]);
}

#[test]
fn range_misses_coalesced_on_one_fill_each_get_their_own_part() {
    let gate = Gate::new();
    let backend = ranging("max-age=60", gate.clone());
    let proxy = start_proxy(&[backend.addr], cache_on);

    let mut leader = proxy.connect();
    leader.send(&request_bytes("GET", "/co", &[("Range", "bytes=0-1")], b""));
    assert!(wait_until(WAIT_LIMIT, || backend.requests() == 1));
    let followers: Vec<&[(&str, &str)]> = vec![
        &[("Range", "bytes=2-3")],
        &[("Range", "bytes=-2")],
        &[],
        &[("Range", "bytes=100-")],
    ];
    let mut clients = sent_each(&proxy, "/co", &followers);
    gate.open();
    expect(&leader.response(), 206, "MISS", "01");
    let answers = statuses_and_bodies(&mut clients);
    assert_eq!(
        answers,
        [
            (206, "23".to_string()),
            (206, "ef".to_string()),
            (200, BODY.to_string()),
            (416, String::new()),
        ]
    );
    assert_eq!(backend.requests(), 1);
    assert_eq!(ranges_seen(&backend), ["-"]);
}

/// A range asked while a whole `GET` of the same URL is being fetched
/// waits for that fill, as a whole miss would: the origin is asked once.
#[test]
fn a_range_during_another_requests_fill_waits_for_it() {
    let gate = Gate::new();
    let backend = ranging("max-age=60", gate.clone());
    let proxy = start_proxy(&[backend.addr], cache_on);

    let mut filling = proxy.connect();
    filling.send(&request_bytes("GET", "/f", &[], b""));
    assert!(wait_until(WAIT_LIMIT, || backend.requests() == 1));
    let mut ranged = proxy.connect();
    ranged.send(&request_bytes("GET", "/f", &[("Range", "bytes=4-7")], b""));
    gate.open();
    expect(&filling.response(), 200, "MISS", BODY);
    let r = ranged.response();
    assert_eq!((r.status, r.body_str()), (206, "4567".to_string()));
    assert_eq!(backend.requests(), 1);
}

#[test]
fn a_heads_range_miss_is_a_head_miss() {
    let backend = ranging("max-age=60", open_gate());
    let proxy = start_proxy(&[backend.addr], cache_on);
    let r = proxy.exchange(|c| c.head_with("/h", &[("Range", "bytes=0-1")]));
    assert_eq!((r.status, x_cache(&r)), (200, "MISS"), "{}", r.head.raw);
    assert_eq!(ranges_seen(&backend), ["-"]);
}

/// The whole body a range miss is cut from may take longer to arrive
/// than `connection_timeout`, each read within `backend_timeout`, as a
/// large video does: a miss relayed whole streams it, and the range is
/// answered once it is whole, not refused 502 (every next range of the
/// URL refused the same way) for the time the whole took.
#[test]
fn a_range_miss_whose_whole_body_arrives_slowly_is_answered() {
    let backend = Backend::start("origin", |_, out| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: {}\r\n\r\n",
            BODY.len()
        );
        let _ = out.write_all(head.as_bytes());
        let _ = out.write_all(&BODY.as_bytes()[..8]);
        // Longer than the proxy's connection_timeout, well within its
        // backend_timeout.
        std::thread::sleep(Duration::from_millis(1500));
        let _ = out.write_all(&BODY.as_bytes()[8..]);
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], |c| {
        cache_on(c);
        c.connection_timeout = Duration::from_secs(1);
        c.backend_timeout = Some(Duration::from_secs(30));
    });
    expect(&range(&proxy, "/slow", "bytes=10-13"), 206, "MISS", "abcd");
    expect(&range(&proxy, "/slow", "bytes=0-1"), 206, "HIT", "01");
    assert_eq!(backend.requests(), 1);
}

/// The length of the body [`holding`] sends, within `max_object_size`.
const LARGE: usize = 200 * 1024;
/// What of it comes with its head.
const FIRST: usize = 1024;

/// What an origin holding the rest of a body does next.
enum Then {
    /// Sends the rest.
    Rest,
    /// Closes the connection: the body ends short.
    Close,
}

/// An origin answering a `200` of [`LARGE`] bytes (`pattern`), its length
/// in its head, that sends the head and the first [`FIRST`] bytes, then
/// waits for the test to say what it does with the rest (or closes, if
/// the test never says).
fn holding(then: Receiver<Then>) -> Backend {
    holding_after(0, then)
}

/// A [`holding`] origin whose first `stale` answers are a short body,
/// stored stale (`max-age=0`, with `stale-if-error`, and `ETag: "v0"`):
/// its next answer, to the cache's revalidation, is a new body, held.
fn holding_after(stale: usize, then: Receiver<Then>) -> Backend {
    let then = Mutex::new(then);
    let body = pattern(LARGE);
    let answered = AtomicUsize::new(0);
    Backend::start("origin", move |_, out| {
        if answered.fetch_add(1, Ordering::SeqCst) < stale {
            let old = [
                ("Cache-Control", "max-age=0, stale-if-error=60"),
                ("ETag", "\"v0\""),
            ];
            respond(out, 200, &old, b"old");
            return Action::KeepAlive;
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nETag: {ETAG}\r\n\
             Last-Modified: Mon, 01 Jun 2026 10:00:00 GMT\r\nContent-Type: video/mp4\r\n\
             Content-Length: {LARGE}\r\n\r\n"
        );
        let _ = out.write_all(head.as_bytes());
        let _ = out.write_all(&body[..FIRST]);
        let next = then.lock().unwrap().recv_timeout(WAIT_LIMIT);
        match next {
            Ok(Then::Rest) => {
                let _ = out.write_all(&body[FIRST..]);
                Action::KeepAlive
            }
            Ok(Then::Close) | Err(_) => Action::Close,
        }
    })
}

/// `r`'s fields, in order, but `left_out` (lowercase names).
fn fields_but(r: &Response, left_out: &[&str]) -> Vec<(String, String)> {
    (r.head.headers.iter())
        .filter(|(name, _)| !left_out.contains(&name.to_ascii_lowercase().as_str()))
        .cloned()
        .collect()
}

/// A player's first request for a video: its part comes while the origin
/// still holds the rest of the body, with the head a hit of the part
/// then has; once the rest came, the entry is whole.
#[test]
fn a_single_range_miss_gets_its_part_before_the_whole_body_arrives() {
    let (then, held) = mpsc::channel();
    let backend = holding(held);
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();
    let asked = request_bytes("GET", "/video", &[("Range", "bytes=0-99")], b"");

    client.send(&asked);
    // The origin sends nothing more until this response is read.
    let miss = client.response();
    assert_eq!(
        (miss.status, x_cache(&miss)),
        (206, "MISS"),
        "{}",
        miss.head.raw
    );
    assert_eq!(miss.header("content-range"), Some("bytes 0-99/204800"));
    assert!(miss.body == pattern(100), "the part differs");
    then.send(Then::Rest).unwrap();

    // Read on into the cache: the next request on the connection, once
    // the body is whole, is a hit that says the same.
    client.send(&asked);
    let hit = client.response();
    assert_eq!(
        (hit.status, x_cache(&hit)),
        (206, "HIT"),
        "{}",
        hit.head.raw
    );
    assert!(hit.body == miss.body, "the hit's part differs");
    let own = ["x-cache", "age", "date"];
    assert_eq!(fields_but(&miss, &own), fields_but(&hit, &own));
    assert_eq!(miss.header("etag"), Some(ETAG));

    let whole = client.get("/video");
    assert_eq!((whole.status, x_cache(&whole)), (200, "HIT"));
    assert!(whole.body == pattern(LARGE), "the entry differs");
    assert_eq!(backend.requests(), 1);
}

/// As on a miss, a range of a stale entry whose revalidation brings a
/// new body gets its part as that body comes, and the entry is the new
/// body once it is whole.
#[test]
fn a_range_of_a_stale_entry_gets_its_part_of_a_new_body_before_it_is_whole() {
    let (then, held) = mpsc::channel();
    let backend = holding_after(1, held);
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();
    let old = client.get("/video");
    assert_eq!((old.status, old.body_str().as_str()), (200, "old"));
    let asked = request_bytes("GET", "/video", &[("Range", "bytes=0-99")], b"");

    client.send(&asked);
    // The origin sends nothing more until this response is read.
    let part = client.response();
    assert_eq!(
        (part.status, x_cache(&part)),
        (206, "MISS"),
        "{}",
        part.head.raw
    );
    assert_eq!(part.header("content-range"), Some("bytes 0-99/204800"));
    assert!(part.body == pattern(100), "the part differs");
    assert_eq!(backend.seen()[1].head.get("if-none-match"), Some("\"v0\""));
    then.send(Then::Rest).unwrap();

    client.send(&asked);
    let hit = client.response();
    assert_eq!(
        (hit.status, x_cache(&hit)),
        (206, "HIT"),
        "{}",
        hit.head.raw
    );
    assert!(hit.body == part.body, "the hit's part differs");
    let whole = client.get("/video");
    assert_eq!((whole.status, x_cache(&whole)), (200, "HIT"));
    assert!(whole.body == pattern(LARGE), "the entry differs");
    assert_eq!(backend.requests(), 2);
}

/// A stale entry's revalidation brings a `200` that will not be stored:
/// as on a miss, the range is asked of the origin as it is rather than
/// sent the whole body, and so are the URL's next ones for a while.
#[test]
fn a_range_of_a_stale_entry_whose_new_answer_may_not_be_stored_is_asked_as_it_is() {
    let answered = AtomicUsize::new(0);
    let backend = Backend::start("origin", move |seen, out| {
        if answered.fetch_add(1, Ordering::SeqCst) == 0 {
            let old = [
                ("Cache-Control", "max-age=0, stale-if-error=60"),
                ("ETag", ETAG),
            ];
            respond(out, 200, &old, BODY.as_bytes());
        } else if !answered_a_span(seen, out, BODY.as_bytes()) {
            respond(out, 200, &[("Cache-Control", "private")], BODY.as_bytes());
        }
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], cache_on);
    expect(&get_with(&proxy, "/p", &[]), 200, "MISS", BODY);

    expect(&range(&proxy, "/p", "bytes=2-5"), 206, "BYPASS", "2345");
    expect(&range(&proxy, "/p", "bytes=2-5"), 206, "BYPASS", "2345");
    assert_eq!(ranges_seen(&backend), ["-", "-", "bytes=2-5", "bytes=2-5"]);
}

/// Parts that begin and end within the pieces the body comes in, a
/// suffix, and one to the end, each streamed from its own miss.
#[test]
fn a_range_in_the_middle_or_at_the_end_streams_its_bytes() {
    let body = pattern(LARGE);
    let sent = body.clone();
    let backend = Backend::start("origin", move |_, out| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: {LARGE}\r\n\r\n"
        );
        let _ = out.write_all(head.as_bytes());
        for piece in sent.chunks(4000) {
            let _ = out.write_all(piece);
        }
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], cache_on);
    let cases = [
        ("/middle", "bytes=5001-70002", 5001, 70002),
        ("/suffix", "bytes=-3000", LARGE - 3000, LARGE - 1),
        ("/rest", "bytes=204000-", 204000, LARGE - 1),
        ("/past", "bytes=10-999999", 10, LARGE - 1),
    ];
    for (path, asked, start, end) in cases {
        let mut client = proxy.connect();
        let r = client.get_with(path, &[("Range", asked)]);
        assert_eq!((r.status, x_cache(&r)), (206, "MISS"), "{}", r.head.raw);
        let said = format!("bytes {start}-{end}/{LARGE}");
        assert_eq!(r.header("content-range"), Some(said.as_str()), "{path}");
        assert!(r.body == body[start..=end], "{path}: the part differs");
        let whole = client.get(path);
        assert_eq!((whole.status, x_cache(&whole)), (200, "HIT"), "{path}");
        assert!(whole.body == body, "{path}: the entry differs");
    }
    assert_eq!(backend.requests(), cases.len());
}

/// The origin's body ends short once the part's head went out: the client
/// has what came of its part, then the close; nothing is stored, and the
/// log says what the client got.
#[test]
fn a_streamed_range_miss_cut_short_closes_the_connection_and_stores_nothing() {
    let (then, held) = mpsc::channel();
    let backend = holding(held);
    let mut proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();
    client.send(&request_bytes(
        "GET",
        "/cut",
        &[("Range", "bytes=500-1999")],
        b"",
    ));

    let head = client.reader.read_head().unwrap().unwrap();
    assert!(head.start_line.contains(" 206 "), "{}", head.raw);
    assert_eq!(head.get("x-cache"), Some("MISS"));
    assert_eq!(head.get("content-range"), Some("bytes 500-1999/204800"));
    let came = client.reader.read_exact_body(FIRST - 500).unwrap();
    assert!(came == pattern(LARGE)[500..FIRST], "the part differs");
    then.send(Then::Close).unwrap();
    assert!(client.reader.is_closed(), "the connection stayed open");

    // Nothing stored: the next range is a miss again.
    then.send(Then::Rest).unwrap();
    let r = range(&proxy, "/cut", "bytes=0-99");
    assert_eq!((r.status, x_cache(&r)), (206, "MISS"), "{}", r.head.raw);
    assert!(r.body == pattern(100), "the part differs");
    assert_eq!(backend.requests(), 2);

    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let cut_short = format!("\" 206 {} ", FIRST - 500);
    assert!(lines[0].contains(&cut_short), "{}", lines[0]);
}

/// An `If-Range` the `200` meets (its strong tag) lets the part stream.
#[test]
fn a_range_miss_whose_if_range_the_answer_meets_streams_its_part() {
    let (then, held) = mpsc::channel();
    let backend = holding(held);
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();
    let asked = [("Range", "bytes=100-199"), ("If-Range", ETAG)];

    let r = client.get_with("/met", &asked);
    assert_eq!((r.status, x_cache(&r)), (206, "MISS"), "{}", r.head.raw);
    assert!(r.body == pattern(LARGE)[100..200], "the part differs");
    then.send(Then::Rest).unwrap();
    let r = client.get_with("/met", &asked);
    assert_eq!((r.status, x_cache(&r)), (206, "HIT"), "{}", r.head.raw);
    assert_eq!(backend.requests(), 1);
}

/// With `gzip` on for the answer's type, a streamed part says the `Vary`
/// its `200` would, as the hit's part does, to a client that takes gzip.
#[test]
fn a_streamed_part_of_a_type_gzip_compresses_says_what_a_hit_says() {
    let (then, held) = mpsc::channel();
    then.send(Then::Rest).unwrap();
    let backend = holding(held);
    let proxy = start_proxy(&[backend.addr], |c| {
        cache_on(c);
        c.gzip = true;
        c.gzip_types = inverso::gzip::MediaTypes::parse("video/mp4").unwrap();
    });
    let mut client = proxy.connect();
    let asked = [("Range", "bytes=10-19"), ("Accept-Encoding", "gzip")];
    let miss = client.get_with("/zipped", &asked);
    let hit = client.get_with("/zipped", &asked);
    assert_eq!(
        (miss.status, x_cache(&miss)),
        (206, "MISS"),
        "{}",
        miss.head.raw
    );
    assert_eq!(
        (hit.status, x_cache(&hit)),
        (206, "HIT"),
        "{}",
        hit.head.raw
    );
    assert!(miss.body == pattern(20)[10..] && hit.body == miss.body);
    assert!(
        miss.head.has_token("vary", "accept-encoding"),
        "{}",
        miss.head.raw
    );
    let own = ["x-cache", "age", "date"];
    assert_eq!(fields_but(&miss, &own), fields_but(&hit, &own));
    assert_eq!(backend.requests(), 1);
}

/// A request pipelined behind a streamed part is answered after it, the
/// connection in step: the part's framing says its own length, not the
/// body's, and the rest of the body read into the cache goes nowhere.
#[test]
fn a_request_pipelined_behind_a_streamed_part_is_answered_in_step() {
    let (then, held) = mpsc::channel();
    then.send(Then::Rest).unwrap();
    let backend = holding(held);
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();
    let mut both = request_bytes("GET", "/piped", &[("Range", "bytes=300-2299")], b"");
    both.extend(request_bytes(
        "GET",
        "/piped",
        &[("Range", "bytes=5-9")],
        b"",
    ));

    client.send(&both);
    let part = client.response();
    assert_eq!(
        (part.status, x_cache(&part)),
        (206, "MISS"),
        "{}",
        part.head.raw
    );
    assert!(part.body == pattern(LARGE)[300..2300], "the part differs");
    let next = client.response();
    assert_eq!(
        (next.status, x_cache(&next)),
        (206, "HIT"),
        "{}",
        next.head.raw
    );
    assert_eq!(next.header("content-range"), Some("bytes 5-9/204800"));
    assert!(next.body == pattern(LARGE)[5..10], "the next part differs");
    assert_eq!(backend.requests(), 1);
}

/// A whole GET coalesced on the fill a streamed part leads waits for it
/// and is answered from it; a client that left after its part does not
/// keep the fill from completing.
#[test]
fn a_miss_waiting_on_a_streamed_parts_fill_gets_the_whole_entry() {
    let (then, held) = mpsc::channel();
    let backend = holding(held);
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();
    client.send(&request_bytes(
        "GET",
        "/shared",
        &[("Range", "bytes=0-99")],
        b"",
    ));
    let part = client.response();
    assert_eq!(
        (part.status, x_cache(&part)),
        (206, "MISS"),
        "{}",
        part.head.raw
    );
    drop(client);

    let mut waiting = proxy.connect();
    waiting.send(&request_bytes("GET", "/shared", &[], b""));
    then.send(Then::Rest).unwrap();
    let whole = waiting.response();
    assert_eq!(whole.status, 200, "{}", whole.head.raw);
    assert!(whole.body == pattern(LARGE), "the entry differs");
    assert_eq!(backend.requests(), 1);
}
