//! `PURGE /prefix*` on the admin listener: every entry whose key starts
//! with the prefix goes (each Vary variant, both schemes), on the host the
//! request names, and the snapshot written next no longer holds them.
//!
//! The origin's responses say `max-age=60` and vary on Accept-Encoding;
//! X-Cache tells whether an entry is still stored.

mod support;

use inverso::cache::persist::{load_snapshot, LoadLimits};
use inverso::realip::Cidr;
use inverso::Config;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::*;

const SHOP: &str = "test.example";
const OTHER_HOST: &str = "elsewhere.example";
const GZIP: (&str, &str) = ("Accept-Encoding", "gzip");
/// The client is a proxy in front that received the request over TLS
/// (trusted: see `cache_on`), so the entry is under the `https://` key.
const TLS: (&str, &str) = ("X-Forwarded-Proto", "https");

fn cache_on(c: &mut Config) {
    c.admin_port = Some(0);
    c.cache_size = 1 << 20;
    c.real_ip_from = vec![Cidr::parse("127.0.0.1").unwrap()].into();
}

fn origin() -> Backend {
    Backend::start("origin", |seen, out| {
        let encoding = seen.head.get("accept-encoding").unwrap_or("none");
        let body = format!("{} {encoding}", seen.path());
        let fields = [("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")];
        respond(out, 200, &fields, body.as_bytes());
        Action::KeepAlive
    })
}

/// `GET path` on `Host: host` with `fields`, once the proxy is done with
/// it (whatever it stored is stored).
fn get(proxy: &Proxy, host: &str, path: &str, fields: &[(&str, &str)]) -> Response {
    proxy.get_on(host, path, fields)
}

/// X-Cache of `GET path` on `host` with `fields`.
fn cached(proxy: &Proxy, host: &str, path: &str, fields: &[(&str, &str)]) -> String {
    let r = get(proxy, host, path, fields);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    r.header("x-cache").unwrap_or("(none)").to_string()
}

/// One request on its own connection to the admin listener.
fn admin(addr: SocketAddr, method: &str, target: &str, host: &str) -> Response {
    let mut client = Client::connect(addr);
    client.send(format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
    client.response()
}

fn purge(proxy: &Proxy, target: &str, host: &str) -> (u16, String) {
    let r = admin(proxy.handle().admin_addr().unwrap(), "PURGE", target, host);
    (r.status, r.body_str())
}

fn entries(proxy: &Proxy) -> usize {
    proxy.handle().cache().unwrap().len()
}

/// What each request stores: (host, path, fields).
type Stored<'a> = [(&'a str, &'a str, &'a [(&'a str, &'a str)])];

/// Stores what each request of `requests` asks for, each a miss.
fn store(proxy: &Proxy, requests: &Stored) {
    for &(host, path, fields) in requests {
        assert_eq!(cached(proxy, host, path, fields), "MISS", "{host}{path}");
    }
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
fn a_prefix_purge_drops_every_variant_under_it_on_both_schemes_and_nothing_else() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    let under: &Stored = &[
        (SHOP, "/products/a", &[]),
        (SHOP, "/products/b?x=1", &[]),
        (SHOP, "/products/b?x=1", &[GZIP]),
        (SHOP, "/products/b?x=1", &[TLS]),
        (SHOP, "/products/c", &[TLS, GZIP]),
    ];
    let beside: &Stored = &[
        // `/products/*` is the directory: the path itself and its
        // siblings are not under it.
        (SHOP, "/products", &[]),
        (SHOP, "/productsX", &[]),
        (SHOP, "/productsX/a", &[TLS]),
        (SHOP, "/other", &[]),
        (SHOP, "/other?p=/products/a", &[]),
        (OTHER_HOST, "/products/a", &[]),
        (OTHER_HOST, "/products/a", &[TLS]),
    ];
    store(&proxy, under);
    store(&proxy, beside);
    assert_eq!(entries(&proxy), under.len() + beside.len());

    let (status, body) = purge(&proxy, "/products/*", SHOP);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "{\"prefix\":\"test.example/products/\",\"removed\":5}\n"
    );
    assert_eq!(entries(&proxy), beside.len());
    expect_all(&proxy, beside, "HIT");
    expect_all(&proxy, under, "MISS");
}

#[test]
fn a_prefix_without_its_slash_takes_the_path_and_its_siblings() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    let under: &Stored = &[
        (SHOP, "/products", &[]),
        (SHOP, "/products?page=2", &[GZIP]),
        (SHOP, "/productsX", &[]),
        (SHOP, "/products/a", &[TLS]),
    ];
    let beside: &Stored = &[(SHOP, "/product", &[]), (OTHER_HOST, "/products", &[])];
    store(&proxy, under);
    store(&proxy, beside);
    let (status, body) = purge(&proxy, "/products*", SHOP);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "{\"prefix\":\"test.example/products\",\"removed\":4}\n"
    );
    expect_all(&proxy, beside, "HIT");
    expect_all(&proxy, under, "MISS");
}

#[test]
fn a_star_after_the_query_mark_purges_every_query_of_the_path() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    let under: &Stored = &[(SHOP, "/search?q=a", &[]), (SHOP, "/search?q=b", &[TLS])];
    let beside: &Stored = &[(SHOP, "/search", &[]), (SHOP, "/search/x?q=a", &[])];
    store(&proxy, under);
    store(&proxy, beside);
    let (status, body) = purge(&proxy, "/search?*", SHOP);
    assert_eq!(
        (status, body.as_str()),
        (200, "{\"prefix\":\"test.example/search?\",\"removed\":2}\n")
    );
    expect_all(&proxy, beside, "HIT");
    expect_all(&proxy, under, "MISS");
}

#[test]
fn a_purge_of_slash_star_empties_the_host_it_names_and_no_other() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    let shop: &Stored = &[
        (SHOP, "/", &[]),
        (SHOP, "/a", &[GZIP]),
        (SHOP, "/b?c=1", &[TLS]),
    ];
    let other: &Stored = &[(OTHER_HOST, "/a", &[]), ("test.example:8080", "/a", &[])];
    store(&proxy, shop);
    store(&proxy, other);
    // The Host in any spelling: case, a trailing dot, the default port.
    let (status, body) = purge(&proxy, "/*", "Test.Example.:80");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "{\"prefix\":\"test.example/\",\"removed\":3}\n");
    expect_all(&proxy, other, "HIT");
    expect_all(&proxy, shop, "MISS");
    // An absolute-form target carries its host itself.
    let (status, body) = purge(&proxy, "http://elsewhere.example/*", "127.0.0.1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(entries(&proxy), 3 + 1);
}

#[test]
fn a_prefix_purge_that_matches_nothing_is_404() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    store(
        &proxy,
        &[(SHOP, "/products/a", &[]), (OTHER_HOST, "/news/a", &[])],
    );
    for (target, host, prefix) in [
        ("/news/*", SHOP, "test.example/news/"),
        ("/products/a/*", SHOP, "test.example/products/a/"),
        (
            "/products/*",
            "unknown.example",
            "unknown.example/products/",
        ),
    ] {
        let (status, body) = purge(&proxy, target, host);
        assert_eq!(status, 404, "{target} on {host}: {body}");
        assert_eq!(body, format!("{{\"prefix\":\"{prefix}\",\"removed\":0}}\n"));
    }
    assert_eq!(entries(&proxy), 2);
    // With no cache at all, nothing matches either.
    let uncached = start_proxy(&[origin.addr], |c| c.admin_port = Some(0));
    assert_eq!(
        admin(uncached.handle().admin_addr().unwrap(), "PURGE", "/*", SHOP).status,
        404
    );
}

#[test]
fn a_prefix_in_any_spelling_matches_the_keys_spelled_as_stored() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    // Stored as `products/a`, `~user/x` and `a%2Fb/c`.
    let under: &Stored = &[
        (SHOP, "/products/a", &[]),
        (SHOP, "/%7euser/x", &[]),
        (SHOP, "/a%2fb/c", &[TLS]),
    ];
    let beside: &Stored = &[(SHOP, "/a/b/c", &[])];
    store(&proxy, under);
    store(&proxy, beside);
    for (target, prefix) in [
        ("/%70roducts/*", "test.example/products/"),
        ("/~user/*", "test.example/~user/"),
        ("/a%2Fb/*", "test.example/a%2Fb/"),
    ] {
        let (status, body) = purge(&proxy, target, "TEST.example");
        assert_eq!(status, 200, "{target}: {body}");
        assert_eq!(body, format!("{{\"prefix\":\"{prefix}\",\"removed\":1}}\n"));
    }
    expect_all(&proxy, beside, "HIT");
    expect_all(&proxy, under, "MISS");
}

#[test]
fn a_url_ending_in_a_star_is_purged_alone_written_with_2a() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    // `*` and `%2A` are two keys (a reserved character stays encoded).
    let starred: &Stored = &[(SHOP, "/a*", &[]), (SHOP, "/a%2A", &[TLS])];
    let beside: &Stored = &[(SHOP, "/a", &[]), (SHOP, "/a*b", &[]), (SHOP, "/ab", &[])];
    store(&proxy, starred);
    store(&proxy, beside);
    let (status, body) = purge(&proxy, "/a%2a", SHOP);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "{\"key\":\"test.example/a%2A\",\"removed\":2}\n");
    expect_all(&proxy, beside, "HIT");
    expect_all(&proxy, starred, "MISS");
}

/// The keys of the snapshot at `path`, sorted.
fn snapshot_keys(path: &Path) -> BTreeSet<String> {
    let loaded = load_snapshot(path, 0, &LoadLimits::UNLIMITED).unwrap();
    (loaded.records.iter())
        .map(|r| String::from_utf8_lossy(&r.key).into_owned())
        .collect()
}

#[test]
fn purged_entries_leave_the_next_snapshot_and_stay_gone_after_a_restart() {
    let origin = origin();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.bin");
    let persisted = |file: &Path| {
        let file = file.to_path_buf();
        move |c: &mut Config| {
            cache_on(c);
            c.path_to_persistence = Some(file);
            c.unit_time = Duration::from_millis(50);
        }
    };
    let first = start_proxy(&[origin.addr], persisted(&file));
    store(
        &first,
        &[
            (SHOP, "/products/a", &[]),
            (SHOP, "/products/b", &[GZIP]),
            (SHOP, "/other", &[]),
        ],
    );
    let all = BTreeSet::from([
        "test.example/products/a\naccept-encoding".to_string(),
        "test.example/products/b\naccept-encoding=gzip".to_string(),
        "test.example/other\naccept-encoding".to_string(),
    ]);
    assert!(
        wait_until(WAIT_LIMIT, || snapshot_keys(&file) == all),
        "the timer wrote {:?}",
        snapshot_keys(&file)
    );

    let (status, body) = purge(&first, "/products/*", SHOP);
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "{\"prefix\":\"test.example/products/\",\"removed\":2}\n"
        )
    );
    // Written by the timer, while the proxy runs: not only at shutdown.
    let left = BTreeSet::from(["test.example/other\naccept-encoding".to_string()]);
    assert!(
        wait_until(WAIT_LIMIT, || snapshot_keys(&file) == left),
        "the snapshot still holds {:?}",
        snapshot_keys(&file)
    );

    // A proxy started from that snapshot (the first one still running, so
    // no final snapshot of its own is involved).
    let copy = dir.path().join("copy.bin");
    std::fs::copy(&file, &copy).unwrap();
    let second = start_proxy(&[origin.addr], persisted(&copy));
    expect_all(&second, &[(SHOP, "/other", &[])], "HIT");
    expect_all(
        &second,
        &[(SHOP, "/products/a", &[]), (SHOP, "/products/b", &[GZIP])],
        "MISS",
    );
}
