//! `PURGE /` with `Purge-Regex` on the admin listener: every entry of the
//! host the request names (both schemes) whose path and query the pattern
//! matches goes, or with `Soft-Purge: 1` is marked stale.
//!
//! The origin's responses say `max-age=60` and `ETag: "v1"`, and it
//! answers a request naming that ETag with a 304; a request with
//! `X-Hold: 1` is answered only once the test lets it. X-Cache tells
//! whether an entry is still stored.

mod support;

use inverso::realip::Cidr;
use inverso::Config;
use support::*;

const SHOP: &str = "shop.example";
const OTHER_HOST: &str = "elsewhere.example";
const ETAG: &str = "\"v1\"";
/// The client is a proxy in front that received the request over TLS
/// (trusted: see `cache_on`), so the entry is under the `https://` key.
const TLS: (&str, &str) = ("X-Forwarded-Proto", "https");
const SOFT: (&str, &str) = ("Soft-Purge", "1");

fn cache_on(c: &mut Config) {
    c.admin_port = Some(0);
    c.cache_size = 1 << 20;
    c.real_ip_from = vec![Cidr::parse("127.0.0.1").unwrap()].into();
}

fn origin(hold: Gate) -> Backend {
    Backend::start("origin", move |seen, out| {
        if seen.head.get("x-hold").is_some() {
            assert!(hold.wait(), "the test never let the origin answer");
        }
        let fields = [("Cache-Control", "max-age=60"), ("ETag", ETAG)];
        if seen.head.get("if-none-match") == Some(ETAG) {
            write_304(out, &fields);
        } else {
            respond(out, 200, &fields, seen.path().as_bytes());
        }
        Action::KeepAlive
    })
}

/// X-Cache of `GET path` on `host` with `fields`, once the proxy is done
/// with it (whatever it stored is stored).
fn cached(proxy: &Proxy, host: &str, path: &str, fields: &[(&str, &str)]) -> String {
    let r = proxy.get_on(host, path, fields);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), path);
    r.header("x-cache").unwrap_or("(none)").to_string()
}

/// `PURGE target` on its own connection to the admin listener, with
/// `fields` (the Host among them).
fn purge(proxy: &Proxy, target: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let mut client = Client::connect(proxy.handle().admin_addr().unwrap());
    let mut request = format!("PURGE {target} HTTP/1.1\r\n");
    for (name, value) in fields {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    client.send(request.as_bytes());
    let r = client.response();
    (r.status, r.body_str())
}

fn entries(proxy: &Proxy) -> usize {
    proxy.handle().cache().unwrap().len()
}

/// What each request stores: (host, path, fields).
type Stored<'a> = [(&'a str, &'a str, &'a [(&'a str, &'a str)])];

const IMAGE: &str = "/products/1/images/a.jpg";

/// The image (under both schemes), a product page, another page's image
/// and another host's image, each stored by a miss.
fn store_all(proxy: &Proxy) -> &'static Stored<'static> {
    let all: &Stored = &[
        (SHOP, IMAGE, &[]),
        (SHOP, IMAGE, &[TLS]),
        (SHOP, "/products/1", &[]),
        (SHOP, "/about.jpg", &[]),
        (OTHER_HOST, "/x.jpg", &[]),
        (OTHER_HOST, IMAGE, &[]),
    ];
    for &(host, path, fields) in all {
        assert_eq!(cached(proxy, host, path, fields), "MISS", "{host}{path}");
    }
    assert_eq!(entries(proxy), all.len());
    all
}

/// Asserts that each request of `requests` is answered `x_cache`.
#[track_caller]
fn expect_all(proxy: &Proxy, requests: &Stored, x_cache: &str) {
    for &(host, path, fields) in requests {
        let seen = cached(proxy, host, path, fields);
        assert_eq!(seen, x_cache, "{host}{path} {fields:?}");
    }
}

#[test]
fn a_pattern_purge_drops_the_matching_paths_of_its_host_on_both_schemes_and_nothing_else() {
    let origin = origin(Gate::new());
    let proxy = start_proxy(&[origin.addr], cache_on);
    store_all(&proxy);

    let jpg = [("Host", SHOP), ("Purge-Regex", r"\.jpg$")];
    let (status, body) = purge(&proxy, "/", &jpg);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "{\"host\":\"shop.example\",\"pattern\":\"\\\\.jpg$\",\"removed\":3}\n"
    );
    assert_eq!(entries(&proxy), 3);
    let kept: &Stored = &[
        (SHOP, "/products/1", &[]),
        (OTHER_HOST, "/x.jpg", &[]),
        (OTHER_HOST, IMAGE, &[]),
    ];
    expect_all(&proxy, kept, "HIT");
    let gone: &Stored = &[
        (SHOP, IMAGE, &[]),
        (SHOP, IMAGE, &[TLS]),
        (SHOP, "/about.jpg", &[]),
    ];
    expect_all(&proxy, gone, "MISS");
    assert_eq!(
        proxy.metric("inverso_cache_purges_total{kind=\"pattern\",mode=\"hard\"}"),
        Some(1)
    );
    assert_eq!(
        proxy.metric("inverso_cache_purged_entries_total{kind=\"pattern\",mode=\"hard\"}"),
        Some(3)
    );

    // Nothing left to match: 404.
    let (status, body) = purge(&proxy, "/", &[("Host", SHOP), ("Purge-Regex", r"\.gif$")]);
    assert_eq!(status, 404, "{body}");
    assert!(body.ends_with("\"removed\":0}\n"), "{body}");
}

#[test]
fn an_anchored_pattern_is_matched_against_the_path_not_the_host() {
    let origin = origin(Gate::new());
    let proxy = start_proxy(&[origin.addr], cache_on);
    let all = store_all(&proxy);

    // The host is no part of what is matched.
    let host = [("Host", SHOP), ("Purge-Regex", "^shop")];
    let (status, body) = purge(&proxy, "/", &host);
    assert_eq!(status, 404, "{body}");
    expect_all(&proxy, all, "HIT");

    let images = [("Host", SHOP), ("Purge-Regex", "^/products/[0-9]+/images/")];
    let (status, body) = purge(&proxy, "/", &images);
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with(",\"removed\":2}\n"), "{body}");
    expect_all(&proxy, &all[..2], "MISS");
    expect_all(&proxy, &all[2..], "HIT");
}

#[test]
fn a_bad_pattern_is_refused_with_the_regex_error_and_removes_nothing() {
    let origin = origin(Gate::new());
    let proxy = start_proxy(&[origin.addr], cache_on);
    let all = store_all(&proxy);

    let (status, body) = purge(&proxy, "/", &[("Host", SHOP), ("Purge-Regex", "(")]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unclosed group"), "{body}");
    let long = "a".repeat(1025);
    let too_long = [("Host", SHOP), ("Purge-Regex", long.as_str())];
    let (status, body) = purge(&proxy, "/", &too_long);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("longer than 1024 bytes"), "{body}");
    let huge = [("Host", SHOP), ("Purge-Regex", r"(\w{100}){100}")];
    let (status, body) = purge(&proxy, "/", &huge);
    assert_eq!(status, 400, "{body}");
    // A URL and a pattern, tags and a pattern, two patterns: which purge
    // was meant is not known.
    let jpg = ("Purge-Regex", r"\.jpg$");
    for (target, fields) in [
        ("/about.jpg", &[("Host", SHOP), jpg][..]),
        ("/", &[("Host", "127.0.0.1"), ("Surrogate-Key", "a"), jpg]),
        ("/", &[("Host", SHOP), jpg, ("Purge-Regex", "x")]),
    ] {
        let (status, body) = purge(&proxy, target, fields);
        assert_eq!(status, 400, "{target} {fields:?}: {body}");
    }

    assert_eq!(entries(&proxy), all.len(), "nothing purged");
    expect_all(&proxy, all, "HIT");
    assert_eq!(
        proxy.metric("inverso_cache_purges_total{kind=\"pattern\",mode=\"hard\"}"),
        Some(0)
    );
}

#[test]
fn a_soft_pattern_purge_leaves_the_matching_entries_present_but_stale() {
    let origin = origin(Gate::new());
    let proxy = start_proxy(&[origin.addr], cache_on);
    let all = store_all(&proxy);

    let fields = [("Host", SHOP), ("Purge-Regex", r"\.jpg$"), SOFT];
    let (status, body) = purge(&proxy, "/", &fields);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "{\"host\":\"shop.example\",\"pattern\":\"\\\\.jpg$\",\"soft\":true,\"marked_stale\":3}\n"
    );
    assert_eq!(entries(&proxy), all.len(), "every entry present");
    let before = origin.requests();
    expect_all(&proxy, &[all[0], all[1], all[3]], "REVALIDATED");
    assert_eq!(origin.requests(), before + 3, "a 304 each");
    expect_all(&proxy, &[all[2], all[4], all[5]], "HIT");
    let soft = "inverso_cache_purges_total{kind=\"pattern\",mode=\"soft\"}";
    assert_eq!(proxy.metric(soft), Some(1));
    assert_eq!(
        proxy.metric("inverso_cache_purges_total{kind=\"pattern\",mode=\"hard\"}"),
        Some(0)
    );
}

/// A response fetched before a purge whose pattern matches its URL may be
/// older than the purge: it is relayed but not stored.
#[test]
fn a_response_on_its_way_when_a_pattern_purge_runs_is_relayed_not_stored() {
    let hold = Gate::new();
    let origin = origin(hold.clone());
    let proxy = start_proxy(&[origin.addr], cache_on);
    let addr = proxy.addr;
    let held = std::thread::spawn(move || {
        let mut client = Client::connect(addr);
        let request = format!("GET /held.jpg HTTP/1.1\r\nHost: {SHOP}\r\nX-Hold: 1\r\n\r\n");
        client.send(request.as_bytes());
        client.response()
    });
    assert!(wait_until(WAIT_LIMIT, || origin.requests() == 1));
    let (status, body) = purge(&proxy, "/", &[("Host", SHOP), ("Purge-Regex", r"\.jpg$")]);
    assert_eq!(status, 404, "nothing stored yet: {body}");
    hold.open();
    let r = held.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), "/held.jpg");
    proxy.assert_becomes_idle();
    assert_eq!(entries(&proxy), 0, "not stored");
    assert_eq!(cached(&proxy, SHOP, "/held.jpg", &[]), "MISS");
    assert_eq!(
        cached(&proxy, SHOP, "/held.jpg", &[]),
        "HIT",
        "the next one is"
    );
}
