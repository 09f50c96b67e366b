//! `PURGE /` with `Surrogate-Key` on the admin listener: every entry a
//! backend tagged with one of the tags goes, whatever its URL, host or
//! scheme; clients never see the field; tags survive a restart; with
//! `surrogate_keys = false` the field passes through and nothing is
//! purged by tag.
//!
//! The origin tags `/p/42` `product-42`, `/c/7` `product-42 category-7`
//! and `/about` `static` (each `max-age=60`); X-Cache tells whether an
//! entry is still stored.

mod support;

use inverso::realip::Cidr;
use inverso::Config;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::*;

const SHOP: &str = "test.example";
const OTHER_HOST: &str = "elsewhere.example";
/// The client is a proxy in front that received the request over TLS
/// (trusted: see `cache_on`), so the entry is under the `https://` key.
const TLS: (&str, &str) = ("X-Forwarded-Proto", "https");

fn cache_on(c: &mut Config) {
    c.admin_port = Some(0);
    c.cache_size = 1 << 20;
    c.real_ip_from = vec![Cidr::parse("127.0.0.1").unwrap()].into();
}

/// The `Surrogate-Key` the origin sends for `path`.
fn tags_of(path: &str) -> String {
    match path {
        "/p/42" => "product-42".into(),
        "/c/7" => "product-42 category-7".into(),
        "/about" => "static".into(),
        // More tags than are kept: the first 64 are.
        "/many" => (0..100)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn origin() -> Backend {
    Backend::start("origin", |seen, out| {
        let tags = tags_of(seen.path());
        let mut fields = vec![("Cache-Control", "max-age=60")];
        if !tags.is_empty() {
            fields.push(("Surrogate-Key", &tags));
        }
        respond(out, 200, &fields, seen.path().as_bytes());
        Action::KeepAlive
    })
}

/// `GET path` on `Host: host` with `fields`, once the proxy is done with
/// it (whatever it stored is stored).
fn get(proxy: &Proxy, host: &str, path: &str, fields: &[(&str, &str)]) -> Response {
    proxy.get_on(host, path, fields)
}

/// X-Cache of `GET path` on `host` with `fields`, and the Surrogate-Key
/// the client got, if any.
fn cached(
    proxy: &Proxy,
    host: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (String, Option<String>) {
    let r = get(proxy, host, path, fields);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), path);
    let x_cache = r.header("x-cache").unwrap_or("(none)").to_string();
    (x_cache, r.header("surrogate-key").map(str::to_string))
}

/// What each request stores: (host, path, fields).
type Stored<'a> = [(&'a str, &'a str, &'a [(&'a str, &'a str)])];

/// Asserts that each request of `requests` is answered `x_cache`, without
/// `Surrogate-Key`.
#[track_caller]
fn expect_all(proxy: &Proxy, requests: &Stored, x_cache: &str) {
    for &(host, path, fields) in requests {
        let (seen, key) = cached(proxy, host, path, fields);
        assert_eq!(seen, x_cache, "{host}{path} {fields:?}");
        assert_eq!(key, None, "{host}{path}: the client got Surrogate-Key");
    }
}

/// One request on its own connection to the admin listener, with
/// `fields` besides its `Host`.
fn admin(
    addr: SocketAddr,
    method: &str,
    target: &str,
    host: &str,
    fields: &[(&str, &str)],
) -> Response {
    let mut client = Client::connect(addr);
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in fields {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    client.send(request.as_bytes());
    client.response()
}

/// `PURGE /` with `Surrogate-Key: tags`, as curl sends it to 127.0.0.1.
fn purge_tags(proxy: &Proxy, tags: &str) -> (u16, String) {
    let addr = proxy.handle().admin_addr().unwrap();
    let r = admin(
        addr,
        "PURGE",
        "/",
        &addr.to_string(),
        &[("Surrogate-Key", tags)],
    );
    (r.status, r.body_str())
}

fn entries(proxy: &Proxy) -> usize {
    proxy.handle().cache().unwrap().len()
}

const PRODUCT: &Stored = &[
    (SHOP, "/p/42", &[]),
    (SHOP, "/c/7", &[]),
    (SHOP, "/p/42", &[TLS]),
    (OTHER_HOST, "/c/7", &[]),
];
const BESIDE: &Stored = &[
    (SHOP, "/about", &[]),
    (SHOP, "/untagged", &[]),
    (OTHER_HOST, "/about", &[TLS]),
];

#[test]
fn a_tag_purge_drops_every_page_tagged_whatever_its_url_or_host_and_nothing_else() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    expect_all(&proxy, PRODUCT, "MISS");
    expect_all(&proxy, BESIDE, "MISS");
    expect_all(&proxy, PRODUCT, "HIT");
    assert_eq!(entries(&proxy), PRODUCT.len() + BESIDE.len());
    assert_eq!(
        proxy.metric("inverso_cache_purges_total{kind=\"tag\",mode=\"hard\"}"),
        Some(0)
    );

    let (status, body) = purge_tags(&proxy, "product-42");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "{\"tags\":[\"product-42\"],\"removed\":4}\n");
    assert_eq!(entries(&proxy), BESIDE.len());
    expect_all(&proxy, BESIDE, "HIT");
    expect_all(&proxy, PRODUCT, "MISS");
    assert_eq!(
        proxy.metric("inverso_cache_purges_total{kind=\"tag\",mode=\"hard\"}"),
        Some(1)
    );
    assert_eq!(
        proxy.metric("inverso_cache_purged_entries_total{kind=\"tag\",mode=\"hard\"}"),
        Some(4)
    );

    // Several tags at once, on lines of their own: any of them.
    let addr = proxy.handle().admin_addr().unwrap();
    let both = [
        ("Surrogate-Key", "category-7"),
        ("Surrogate-Key", "static none"),
    ];
    let r = admin(addr, "PURGE", "/", "localhost", &both);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(
        r.body_str(),
        "{\"tags\":[\"category-7\",\"none\",\"static\"],\"removed\":4}\n"
    );
    expect_all(
        &proxy,
        &[(SHOP, "/untagged", &[]), (SHOP, "/p/42", &[])],
        "HIT",
    );
    expect_all(
        &proxy,
        &[(SHOP, "/about", &[]), (SHOP, "/c/7", &[])],
        "MISS",
    );
}

#[test]
fn a_tag_purge_that_matches_nothing_is_404() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    expect_all(&proxy, BESIDE, "MISS");
    // Tags are compared byte for byte, whole.
    for tags in ["product-42", "Static", "stat", "static-2"] {
        let (status, body) = purge_tags(&proxy, tags);
        assert_eq!(status, 404, "{tags}: {body}");
        assert_eq!(body, format!("{{\"tags\":[\"{tags}\"],\"removed\":0}}\n"));
    }
    expect_all(&proxy, BESIDE, "HIT");
    // With no cache at all, nothing matches either.
    let uncached = start_proxy(&[origin.addr], |c| c.admin_port = Some(0));
    assert_eq!(purge_tags(&uncached, "static").0, 404);
}

#[test]
fn a_response_with_more_tags_than_are_kept_is_stored_with_the_first_64() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    let many: &Stored = &[(SHOP, "/many", &[])];
    expect_all(&proxy, many, "MISS");
    expect_all(&proxy, many, "HIT");
    assert_eq!(purge_tags(&proxy, "t64").0, 404);
    expect_all(&proxy, many, "HIT");
    assert_eq!(purge_tags(&proxy, "t63").0, 200);
    expect_all(&proxy, many, "MISS");
}

#[test]
fn a_tag_purge_is_refused_under_a_host_name_with_a_url_or_with_bad_tags() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    let home: &Stored = &[(SHOP, "/about", &[])];
    expect_all(&proxy, home, "MISS");
    let addr = proxy.handle().admin_addr().unwrap();
    let long = "x".repeat(257);
    let many = (0..65)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    for (target, host, tags, status) in [
        // A page on a name rebound to 127.0.0.1 may not reach every site.
        ("/", SHOP, "static", 403),
        ("/", "static.example", "static", 403),
        // A URL as well as tags: which one was meant?
        ("/about", "127.0.0.1", "static", 400),
        ("/*", "127.0.0.1", "static", 400),
        // (An absolute-form target's host is the request's Host.)
        ("http://test.example/about", "127.0.0.1", "static", 403),
        ("http://127.0.0.1/about", SHOP, "static", 400),
        ("/", "127.0.0.1", "", 400),
        ("/", "127.0.0.1", " , ", 400),
        ("/", "127.0.0.1", &long, 400),
        ("/", "127.0.0.1", &many, 400),
    ] {
        let r = admin(addr, "PURGE", target, host, &[("Surrogate-Key", tags)]);
        assert_eq!(
            r.status,
            status,
            "{target} {host} {tags:?}: {}",
            r.body_str()
        );
    }
    // Nothing went, the URL named either.
    expect_all(&proxy, home, "HIT");
    assert_eq!(
        proxy.metric("inverso_cache_purges_total{kind=\"tag\",mode=\"hard\"}"),
        Some(0)
    );
}

#[test]
fn with_surrogate_keys_off_the_field_passes_through_and_no_tag_purge_matches() {
    let origin = origin();
    let off = |c: &mut Config| {
        cache_on(c);
        c.surrogate_keys = false;
    };
    let proxy = start_proxy(&[origin.addr], off);
    for x_cache in ["MISS", "HIT"] {
        let (seen, key) = cached(&proxy, SHOP, "/c/7", &[]);
        assert_eq!(seen, x_cache);
        assert_eq!(key.as_deref(), Some("product-42 category-7"), "{x_cache}");
    }
    let (status, body) = purge_tags(&proxy, "product-42");
    assert_eq!(
        (status, body.as_str()),
        (404, "{\"tags\":[\"product-42\"],\"removed\":0}\n")
    );
    assert_eq!(cached(&proxy, SHOP, "/c/7", &[]).0, "HIT");
    // Not taken for a purge of the URL `/` either.
    let (seen, _) = cached(&proxy, SHOP, "/", &[]);
    assert_eq!(seen, "MISS");
    let addr = proxy.handle().admin_addr().unwrap();
    let r = admin(addr, "PURGE", "/", SHOP, &[("Surrogate-Key", "x")]);
    assert_eq!(r.status, 403);
    assert_eq!(cached(&proxy, SHOP, "/", &[]).0, "HIT");

    // Turned on by a reload: the field the cache's own from then on, for
    // what is stored too, as a restart would have it.
    proxy.reload(&[origin.addr], cache_on);
    let (seen, key) = cached(&proxy, SHOP, "/c/7", &[]);
    assert_eq!((seen.as_str(), key), ("HIT", None));
    assert_eq!(purge_tags(&proxy, "category-7").0, 200);
    assert_eq!(cached(&proxy, SHOP, "/c/7", &[]).0, "MISS");
}

/// The snapshot's entries, loaded by a second proxy started from a copy
/// of it (the first one still running, so no final snapshot of its own is
/// involved).
fn restarted_from(file: &Path, origin: &Backend) -> Proxy {
    let copy = file.with_extension("copy");
    std::fs::copy(file, &copy).unwrap();
    start_proxy(&[origin.addr], persisted(&copy))
}

fn persisted(file: &Path) -> impl FnOnce(&mut Config) {
    let file = file.to_path_buf();
    move |c: &mut Config| {
        cache_on(c);
        c.path_to_persistence = Some(file);
        c.unit_time = Duration::from_millis(50);
    }
}

#[test]
fn tags_survive_a_restart_and_are_still_never_served() {
    let origin = origin();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.bin");
    let first = start_proxy(&[origin.addr], persisted(&file));
    let stored: &Stored = &[
        (SHOP, "/p/42", &[]),
        (SHOP, "/c/7", &[]),
        (SHOP, "/about", &[]),
    ];
    expect_all(&first, stored, "MISS");
    let whole = |file: &Path| {
        let limits = inverso::cache::persist::LoadLimits::UNLIMITED;
        inverso::cache::persist::load_snapshot(file, 0, &limits)
            .map(|loaded| loaded.records.len())
            .unwrap_or(0)
    };
    assert!(
        wait_until(WAIT_LIMIT, || whole(&file) == stored.len()),
        "the timer wrote {} records",
        whole(&file)
    );

    let second = restarted_from(&file, &origin);
    expect_all(&second, stored, "HIT");
    let (status, body) = purge_tags(&second, "product-42");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "{\"tags\":[\"product-42\"],\"removed\":2}\n");
    expect_all(&second, &[(SHOP, "/about", &[])], "HIT");
    expect_all(
        &second,
        &[(SHOP, "/p/42", &[]), (SHOP, "/c/7", &[])],
        "MISS",
    );
}
