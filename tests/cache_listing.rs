//! `GET /cache/entries` and `GET /cache` on the admin listener: what the
//! cache holds for a URL (each Vary variant) or under a prefix, with each
//! entry's times, validator, variants and tags, and its totals; and a
//! listing is not a use (it leaves the LRU order as it was).
//!
//! The origin answers by path: `/v...` varies on Accept-Encoding, `/e...`
//! and `/products/...` carry an ETag (the latter the tag `product-42`
//! too), `/big/...` a body of 10,000 bytes; all `max-age=60`.

mod support;

use inverso::gzip::MediaTypes;
use inverso::Config;
use std::net::SocketAddr;
use std::time::Duration;
use support::*;

const SHOP: &str = "test.example";
const OTHER_HOST: &str = "elsewhere.example";
const GZIP: (&str, &str) = ("Accept-Encoding", "gzip");
const BIG: usize = 10_000;

fn cache_on(c: &mut Config) {
    c.admin_port = Some(0);
    c.cache_size = 1 << 20;
    c.stale_if_error = Duration::from_secs(600);
}

fn origin() -> Backend {
    Backend::start("origin", |seen, out| {
        let path = seen.path().to_string();
        let mut fields = vec![("Cache-Control", "max-age=60")];
        if path.starts_with("/v") {
            fields.push(("Vary", "Accept-Encoding"));
        }
        if path.starts_with("/e") || path.starts_with("/products/") {
            fields.push(("ETag", "\"v1\""));
        }
        if path.starts_with("/products/") {
            fields.push(("Surrogate-Key", "product-42"));
        }
        if path.starts_with("/big/") {
            fields.push(("Content-Type", "text/plain"));
        }
        let body = match path.starts_with("/big/") {
            true => vec![b'x'; BIG],
            false => path.into_bytes(),
        };
        respond(out, 200, &fields, &body);
        Action::KeepAlive
    })
}

/// `GET path` on `host` with `fields`, once the proxy is done with it:
/// its X-Cache.
fn get(proxy: &Proxy, host: &str, path: &str, fields: &[(&str, &str)]) -> String {
    let r = proxy.get_on(host, path, fields);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    r.header("x-cache").unwrap_or("(none)").to_string()
}

/// One request on its own connection to the admin listener.
fn admin(proxy: &Proxy, method: &str, target: &str, host: &str) -> Response {
    let addr: SocketAddr = proxy.handle().admin_addr().unwrap();
    let mut client = Client::connect(addr);
    client.send(format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
    client.response()
}

/// `GET /cache/entries?query` under `host`: the status and body.
fn list(proxy: &Proxy, query: &str, host: &str) -> (u16, String) {
    let r = admin(proxy, "GET", &format!("/cache/entries?{query}"), host);
    (r.status, r.body_str())
}

/// The entries of a listing, each the text of its JSON object (up to
/// the next one).
fn entries_of(body: &str) -> Vec<&str> {
    body.split("{\"key\":").skip(1).collect()
}

/// The value of `name` in the JSON text `json`: up to the next `,` or
/// `}`, or the whole array.
fn field<'a>(json: &'a str, name: &str) -> &'a str {
    let start = json
        .find(&format!("\"{name}\":"))
        .unwrap_or_else(|| panic!("no {name} in {json}"))
        + name.len()
        + 3;
    let rest = &json[start..];
    let end = match rest.starts_with('[') {
        true => rest.find(']').map(|i| i + 1),
        false => rest.find([',', '}']),
    };
    &rest[..end.unwrap_or(rest.len())]
}

fn number(json: &str, name: &str) -> i64 {
    let value = field(json, name);
    value
        .parse()
        .unwrap_or_else(|_| panic!("{name} is {value}"))
}

#[test]
fn a_url_lists_each_variant_with_its_times_validator_and_tags() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    for (path, fields) in [
        ("/v", &[][..]),
        ("/v", &[GZIP][..]),
        ("/e?x=1&y=2", &[][..]),
        ("/products/old", &[][..]),
    ] {
        assert_eq!(get(&proxy, SHOP, path, fields), "MISS", "{path}");
    }
    let (status, body) = list(&proxy, "url=/v", SHOP);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"truncated\":false"), "{body}");
    assert!(body.contains("\"key\":\"test.example/v\","), "{body}");
    let variants = entries_of(&body);
    assert_eq!(variants.len(), 2, "{body}");
    let mut keys: Vec<&str> = variants
        .iter()
        .map(|v| v.split(',').next().unwrap())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "\"test.example/v\\naccept-encoding\"",
            "\"test.example/v\\naccept-encoding=gzip\""
        ]
    );
    for v in &variants {
        assert_eq!(field(v, "status"), "200");
        assert_eq!(number(v, "body_bytes"), 2, "{v}");
        assert!(number(v, "weight") > 2, "{v}");
        assert!((0..60).contains(&number(v, "age")), "{v}");
        assert!((1..=60).contains(&number(v, "fresh_for")), "{v}");
        assert_eq!(number(v, "stale_window_left"), 600, "{v}");
        assert_eq!(field(v, "validator"), "false", "{v}");
        assert_eq!(field(v, "vary"), "[\"accept-encoding\"]", "{v}");
        assert_eq!(field(v, "tags"), "[]", "{v}");
        assert_eq!(field(v, "gzip_bytes"), "null", "{v}");
    }

    // A URL with its own query, percent-encoded as a query value.
    let (status, body) = list(&proxy, "url=%2Fe%3Fx%3D1%26y%3D2", SHOP);
    assert_eq!(status, 200, "{body}");
    let [e] = entries_of(&body)[..] else {
        panic!("{body}")
    };
    assert_eq!(field(e, "validator"), "true", "{e}");
    assert_eq!(field(e, "vary"), "[]", "{e}");
    assert!(number(e, "fresh_for") > 0, "{e}");

    // Made stale by a soft purge (no waiting for it to age): listed
    // with a negative `fresh_for` and what is left of its stale window.
    let soft = {
        let addr = proxy.handle().admin_addr().unwrap();
        let mut client = Client::connect(addr);
        client.send(b"PURGE /products/old HTTP/1.1\r\nHost: test.example\r\nSoft-Purge: 1\r\n\r\n");
        client.response()
    };
    assert_eq!(soft.status, 200, "{}", soft.body_str());
    let (status, body) = list(&proxy, "url=/products/old", SHOP);
    assert_eq!(status, 200, "{body}");
    let [stale] = entries_of(&body)[..] else {
        panic!("{body}")
    };
    // No freshness left: stale from the purge's millisecond on (0 when
    // listed within the same second, rounded down).
    assert!(number(stale, "fresh_for") <= 0, "{stale}");
    assert!(
        (1..=600).contains(&number(stale, "stale_window_left")),
        "{stale}"
    );
    assert_eq!(field(stale, "validator"), "true", "{stale}");
    assert_eq!(field(stale, "tags"), "[\"product-42\"]", "{stale}");

    // Nothing stored: 404 with no entries; another host's are its own.
    let (status, body) = list(&proxy, "url=/none", SHOP);
    assert_eq!(status, 404, "{body}");
    assert!(body.starts_with("{\"entries\":[],"), "{body}");
    assert_eq!(list(&proxy, "url=/v", OTHER_HOST).0, 404);
    // An absolute URL names its own host, as a PURGE's does: another
    // site's under a Host that is an address (a page on a name rebound
    // to 127.0.0.1 sends its own, and may write anything in a query).
    let (status, body) = list(&proxy, "url=http://test.example/v", "127.0.0.1");
    assert_eq!((status, entries_of(&body).len()), (200, 2), "{body}");
    for query in [
        "url=http://test.example/v",
        "prefix=http%3A%2F%2Ftest.example%2F",
        "url=http%3A%2F%2FTest.Example%3A80%2Fv",
    ] {
        let (status, body) = list(&proxy, query, OTHER_HOST);
        assert_eq!(status, 403, "{query}: {body}");
    }
    let (status, body) = list(&proxy, "url=http://Test.Example:80/v", SHOP);
    assert_eq!((status, entries_of(&body).len()), (200, 2), "{body}");
}

#[test]
fn a_prefix_lists_what_its_purge_would_drop_up_to_the_limit() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    let under = ["/products/a", "/products/b?x=1", "/products/c"];
    for path in under.iter().chain(&["/products", "/productsX", "/other"]) {
        assert_eq!(get(&proxy, SHOP, path, &[]), "MISS", "{path}");
    }
    assert_eq!(get(&proxy, OTHER_HOST, "/products/a", &[]), "MISS");

    let (status, body) = list(&proxy, "prefix=/products/", SHOP);
    assert_eq!(status, 200, "{body}");
    let listed = entries_of(&body);
    assert_eq!(listed.len(), 3, "{body}");
    for path in under {
        let key = format!("\"test.example{path}\",");
        assert!(listed.iter().any(|e| e.starts_with(&key)), "{path}: {body}");
    }
    assert!(body.contains("\"truncated\":false"), "{body}");
    assert!(
        body.contains("\"prefix\":\"test.example/products/\""),
        "{body}"
    );
    // The totals, of the whole cache.
    let totals = &body[body.find("\"cache\":").unwrap()..];
    assert_eq!(number(totals, "entries"), 7, "{totals}");
    assert!(number(totals, "bytes") > 0, "{totals}");
    assert_eq!(number(totals, "capacity"), 1 << 20, "{totals}");

    let (status, body) = list(&proxy, "prefix=/products/&limit=2", SHOP);
    assert_eq!((status, entries_of(&body).len()), (200, 2), "{body}");
    assert!(body.contains("\"truncated\":true"), "{body}");
    let (_, body) = list(&proxy, "prefix=/products/&limit=3", SHOP);
    assert!(body.contains("\"truncated\":false"), "{body}");

    // `/` is the whole site, and no other; every site's under an address.
    let (_, body) = list(&proxy, "prefix=/", SHOP);
    assert_eq!(entries_of(&body).len(), 6, "{body}");
    let (status, body) = list(&proxy, "limit=1000", "127.0.0.1");
    assert_eq!((status, entries_of(&body).len()), (200, 7), "{body}");
    let (status, body) = list(&proxy, "", SHOP);
    assert_eq!(status, 403, "{body}");

    for bad in [
        "prefix=/&limit=0",
        "prefix=/&limit=10001",
        "prefix=/&limit=x",
        "prefx=/",
        "prefix=http://test.example",
    ] {
        assert_eq!(list(&proxy, bad, SHOP).0, 400, "{bad}");
    }
    let (status, body) = list(&proxy, "prefix=/nothing/", SHOP);
    assert_eq!(status, 404, "{body}");
    assert!(body.starts_with("{\"entries\":[],"), "{body}");

    // Listing changed nothing, and the purge drops what was listed.
    let purged = admin(&proxy, "PURGE", "/products/*", SHOP);
    assert!(
        purged.body_str().contains("\"removed\":3"),
        "{}",
        purged.body_str()
    );
    assert_eq!(list(&proxy, "prefix=/products/", SHOP).0, 404);
}

#[test]
fn a_listing_leaves_the_lru_order_as_it_was() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], |c| {
        cache_on(c);
        // Room for three of the big responses, not four.
        c.cache_size = 35_000;
        c.max_object_size = Some(20_000);
    });
    for path in ["/big/a", "/big/b", "/big/c"] {
        assert_eq!(get(&proxy, SHOP, path, &[]), "MISS", "{path}");
    }
    // Used: a, then c, then b, from the most recent.
    assert_eq!(get(&proxy, SHOP, "/big/a", &[]), "HIT");
    // Listed, b last: were a listing a use, b would be the most recent.
    let (status, body) = list(&proxy, "prefix=/big/", SHOP);
    assert_eq!((status, entries_of(&body).len()), (200, 3), "{body}");
    assert_eq!(list(&proxy, "limit=10", "localhost").0, 200);
    let (status, body) = list(&proxy, "url=/big/b", SHOP);
    assert_eq!(status, 200, "{body}");
    assert!(number(entries_of(&body)[0], "weight") > BIG as i64);

    assert_eq!(get(&proxy, SHOP, "/big/d", &[]), "MISS");
    // The least recently used went, not the least recently listed.
    assert_eq!(list(&proxy, "url=/big/b", SHOP).0, 404, "b evicted");
    for path in ["/big/a", "/big/c", "/big/d"] {
        let (status, body) = list(&proxy, &format!("url={path}"), SHOP);
        assert_eq!(status, 200, "{path}: {body}");
    }
}

#[test]
fn get_cache_says_the_totals_that_status_says() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    assert_eq!(get(&proxy, SHOP, "/e", &[]), "MISS");
    assert_eq!(get(&proxy, SHOP, "/e", &[]), "HIT");
    let cache = admin(&proxy, "GET", "/cache", "127.0.0.1");
    assert_eq!(cache.status, 200);
    assert_eq!(cache.header("content-type"), Some("application/json"));
    let cache = cache.body_str();
    let status = admin(&proxy, "GET", "/status", "127.0.0.1").body_str();
    let status = inverso::json_value::parse(status.as_bytes()).unwrap();
    let listed = inverso::json_value::parse(cache.as_bytes()).unwrap();
    assert_eq!(status.get("cache"), Some(&listed));
    assert!(
        cache.starts_with("{\"enabled\":true,\"entries\":1,"),
        "{cache}"
    );
    assert_eq!(number(&cache, "hits"), 1, "{cache}");
    assert_eq!(number(&cache, "misses"), 1, "{cache}");

    let r = admin(&proxy, "POST", "/cache", "127.0.0.1");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, DELETE, PURGE"));
    assert_eq!(
        admin(&proxy, "DELETE", "/cache/entries", "127.0.0.1").status,
        405
    );
}

#[test]
fn without_a_cache_nothing_is_listed() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], |c| {
        c.admin_port = Some(0);
        c.cache_size = 0;
    });
    let r = admin(&proxy, "GET", "/cache", "127.0.0.1");
    assert_eq!(
        (r.status, r.body_str()),
        (200, "{\"enabled\":false}\n".into())
    );
    let (status, body) = list(&proxy, "prefix=/", SHOP);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"entries\":[]"), "{body}");
}

#[test]
fn an_entry_lists_its_gzip_copy_once_a_hit_made_it() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], |c| {
        cache_on(c);
        c.gzip = true;
        c.gzip_types = MediaTypes::parse("text/plain").unwrap();
        c.gzip_min_length = 100;
    });
    assert_eq!(get(&proxy, SHOP, "/big/z", &[]), "MISS");
    let gzip_bytes = |proxy: &Proxy| {
        let (status, body) = list(proxy, "url=/big/z", SHOP);
        assert_eq!(status, 200, "{body}");
        field(entries_of(&body)[0], "gzip_bytes").to_string()
    };
    assert_eq!(gzip_bytes(&proxy), "null");
    assert_eq!(get(&proxy, SHOP, "/big/z", &[GZIP]), "HIT");
    let made = gzip_bytes(&proxy);
    let made: usize = made.parse().unwrap_or_else(|_| panic!("gzip_bytes {made}"));
    assert!((1..BIG).contains(&made), "{made} bytes for {BIG} of x");
}

#[test]
fn a_ttl_lowered_by_a_reload_shows_in_the_listing() {
    // README: a lowered `ttl` applies to what is already stored, and the
    // stale window counts from the freshness it leaves. The listing says
    // what serving does: stale, its window running.
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    assert_eq!(get(&proxy, SHOP, "/lowered", &[]), "MISS");
    proxy.reload(&[origin.addr], |c| {
        cache_on(c);
        c.ttl = Duration::from_millis(1);
    });
    // Listed as it was stored, before any request refetched it.
    let listed = || {
        let (status, body) = list(&proxy, "url=/lowered", SHOP);
        assert_eq!(status, 200, "{body}");
        let [entry] = entries_of(&body)[..] else {
            panic!("{body}")
        };
        let times = ["fresh_for", "stale_window_left"].map(|f| number(entry, f));
        (times, entry.to_string())
    };
    assert!(
        wait_until(WAIT_LIMIT, || listed().0[0] < 0),
        "{}",
        listed().1
    );
    let ([_, stale_left], entry) = listed();
    assert!((1..600).contains(&stale_left), "{entry}");
    assert_eq!(
        get(&proxy, SHOP, "/lowered", &[]),
        "MISS",
        "served as listed"
    );
}

#[test]
fn a_url_written_in_unicode_lists_the_entry_its_browser_spelling_stored() {
    let origin = origin();
    let proxy = start_proxy(&[origin.addr], cache_on);
    // What a browser sends for `/café/menü`, and what
    // `curl -G --data-urlencode 'url=/café/menü'` asks for.
    assert_eq!(get(&proxy, SHOP, "/caf%C3%A9/men%c3%bc", &[]), "MISS");
    for query in ["url=%2Fcaf%C3%A9%2Fmen%C3%BC", "prefix=%2Fcaf%C3%A9%2F"] {
        let (status, body) = list(&proxy, query, SHOP);
        assert_eq!(status, 200, "{query}: {body}");
        let [entry] = entries_of(&body)[..] else {
            panic!("{body}")
        };
        assert!(
            entry.starts_with("\"test.example/caf%C3%A9/men%C3%BC\""),
            "{entry}"
        );
    }
    // Escaped twice, as the contract has it, it is the same URL.
    let (status, _) = list(&proxy, "url=%2Fcaf%25C3%25A9%2Fmen%25c3%25bc", SHOP);
    assert_eq!(status, 200);
}
