//! Soft purges on the admin listener (`Soft-Purge: 1`, or Fastly's
//! `Fastly-Soft-Purge: 1`): what a `PURGE` of a URL, a prefix or a tag
//! names is marked stale instead of removed, so the next request
//! revalidates it (a 304 when nothing changed), and while the origin is
//! down it still stands in under `stale_if_error`.
//!
//! The origin answers every path with `ETag: "v1"`, `max-age=60`, the tag
//! `product-42` for paths under `/products/`, and a 304 to a request whose
//! `If-None-Match` names that ETag. X-Cache tells what the proxy did.

mod support;

use inverso::Config;
use std::net::SocketAddr;
use std::time::Duration;
use support::*;

const SHOP: &str = "test.example";
const ETAG: &str = "\"v1\"";

fn cache_on(c: &mut Config) {
    c.admin_port = Some(0);
    c.cache_size = 1 << 20;
    c.stale_if_error = Duration::from_secs(600);
}

/// The origin; a request with `X-Hold: 1` is answered only once `hold`
/// opens.
fn origin(hold: Gate) -> Backend {
    Backend::start("origin", move |seen, out| {
        if seen.head.get("x-hold").is_some() {
            assert!(hold.wait(), "the test never let the origin answer");
        }
        let mut fields = vec![("Cache-Control", "max-age=60"), ("ETag", ETAG)];
        if seen.path().starts_with("/products/") {
            fields.push(("Surrogate-Key", "product-42"));
        }
        if seen.head.get("if-none-match") == Some(ETAG) {
            write_304(out, &fields);
        } else {
            respond(out, 200, &fields, seen.path().as_bytes());
        }
        Action::KeepAlive
    })
}

/// `GET path` on [`SHOP`] (the Host `Client` sends) with `fields`, once
/// the proxy is done with it (whatever it stored is stored): its X-Cache,
/// the body checked.
fn cached(proxy: &Proxy, path: &str, fields: &[(&str, &str)]) -> String {
    let r = proxy.exchange(|client| client.get_with(path, fields));
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.body_str(), path);
    r.header("x-cache").unwrap_or("(none)").to_string()
}

/// One request on its own connection to the admin listener, with `Host`
/// and `fields`.
fn admin(proxy: &Proxy, method: &str, target: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let addr: SocketAddr = proxy.handle().admin_addr().unwrap();
    let mut client = Client::connect(addr);
    let mut request = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in fields {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    client.send(request.as_bytes());
    let r = client.response();
    (r.status, r.body_str())
}

const SOFT: (&str, &str) = ("Soft-Purge", "1");

fn entries(proxy: &Proxy) -> usize {
    proxy.handle().cache().unwrap().len()
}

/// Whether the origin's last request carried `If-None-Match` with the
/// stored ETag, and how many requests it saw.
fn last_conditional(origin: &Backend) -> (bool, usize) {
    let seen = origin.seen();
    let last = seen.last().map(|s| s.field_or("if-none-match", ""));
    (last.as_deref() == Some(ETAG), seen.len())
}

#[test]
fn after_a_soft_purge_of_a_url_the_next_request_revalidates_with_a_304() {
    let origin = origin(Gate::new());
    let proxy = start_proxy(&[origin.addr], cache_on);
    assert_eq!(cached(&proxy, "/p", &[]), "MISS");
    assert_eq!(cached(&proxy, "/p", &[]), "HIT");
    assert_eq!(origin.requests(), 1);

    let (status, body) = admin(&proxy, "PURGE", "/p", &[("Host", SHOP), SOFT]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "{\"key\":\"test.example/p\",\"soft\":true,\"marked_stale\":1}\n"
    );
    assert_eq!(entries(&proxy), 1, "kept");
    assert_eq!(cached(&proxy, "/p", &[]), "REVALIDATED");
    assert_eq!(last_conditional(&origin), (true, 2));
    // Refreshed by the 304: fresh again.
    assert_eq!(cached(&proxy, "/p", &[]), "HIT");
    assert_eq!(origin.requests(), 2);

    // Fastly's field does the same.
    let fastly = ("Fastly-Soft-Purge", "1");
    let (status, body) = admin(&proxy, "PURGE", "/p", &[("Host", SHOP), fastly]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"soft\":true"), "{body}");
    assert_eq!(cached(&proxy, "/p", &[]), "REVALIDATED");
    assert_eq!(last_conditional(&origin), (true, 3));
    let url = "inverso_cache_purges_total{kind=\"url\",mode=\"soft\"}";
    assert_eq!(proxy.metric(url), Some(2));
    let entries_url = "inverso_cache_purged_entries_total{kind=\"url\",mode=\"soft\"}";
    assert_eq!(proxy.metric(entries_url), Some(2));

    // `0` is a hard purge; nothing stored is 404 either way.
    let (status, body) = admin(
        &proxy,
        "PURGE",
        "/p",
        &[("Host", SHOP), ("Soft-Purge", "0")],
    );
    assert_eq!(
        (status, body.as_str()),
        (200, "{\"key\":\"test.example/p\",\"removed\":1}\n")
    );
    assert_eq!(entries(&proxy), 0);
    let (status, body) = admin(&proxy, "PURGE", "/p", &[("Host", SHOP), SOFT]);
    assert_eq!(status, 404, "{body}");
    assert_eq!(cached(&proxy, "/p", &[]), "MISS");
}

#[test]
fn with_the_origin_down_a_soft_purged_entry_stands_in_where_a_hard_purged_one_is_gone() {
    let origin = origin(Gate::new());
    let proxy = start_proxy(&[origin.addr], cache_on);
    assert_eq!(cached(&proxy, "/soft", &[]), "MISS");
    assert_eq!(cached(&proxy, "/hard", &[]), "MISS");
    let (status, _) = admin(&proxy, "PURGE", "/soft", &[("Host", SHOP), SOFT]);
    assert_eq!(status, 200);
    let (status, _) = admin(&proxy, "PURGE", "/hard", &[("Host", SHOP)]);
    assert_eq!(status, 200);
    // Each counted by its mode, with the entry it named.
    for mode in ["soft", "hard"] {
        let labels = format!("{{kind=\"url\",mode=\"{mode}\"}}");
        assert_eq!(
            proxy.metric(&format!("inverso_cache_purges_total{labels}")),
            Some(1)
        );
        let named = format!("inverso_cache_purged_entries_total{labels}");
        assert_eq!(proxy.metric(&named), Some(1), "{mode}");
    }

    proxy.reload(&[dead_addr()], cache_on);
    assert_eq!(cached(&proxy, "/soft", &[]), "STALE");
    let r = proxy.exchange(|client| client.get("/hard"));
    assert_eq!(r.status, 502, "{}", r.head.raw);
    assert_eq!(origin.requests(), 2, "the origin is out of the targets");
}

#[test]
fn a_soft_prefix_purge_leaves_every_entry_present_but_stale() {
    let origin = origin(Gate::new());
    let proxy = start_proxy(&[origin.addr], cache_on);
    let under = ["/products/a", "/products/b?x=1"];
    for path in under.iter().chain(&["/other"]) {
        assert_eq!(cached(&proxy, path, &[]), "MISS", "{path}");
    }
    let before = entries(&proxy);
    assert_eq!(before, 3);

    let (status, body) = admin(&proxy, "PURGE", "/products/*", &[("Host", SHOP), SOFT]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "{\"prefix\":\"test.example/products/\",\"soft\":true,\"marked_stale\":2}\n"
    );
    assert_eq!(entries(&proxy), before, "every entry present");
    assert_eq!(cached(&proxy, "/other", &[]), "HIT");
    for path in under {
        assert_eq!(cached(&proxy, path, &[]), "REVALIDATED", "{path}");
        assert!(last_conditional(&origin).0, "{path}");
    }
    let kind = "inverso_cache_purges_total{kind=\"prefix\",mode=\"soft\"}";
    assert_eq!(proxy.metric(kind), Some(1));
}

#[test]
fn a_soft_tag_purge_leaves_every_tagged_entry_present_but_stale() {
    let origin = origin(Gate::new());
    let proxy = start_proxy(&[origin.addr], cache_on);
    for path in ["/products/a", "/products/b", "/other"] {
        assert_eq!(cached(&proxy, path, &[]), "MISS", "{path}");
    }
    let fields = [("Host", "127.0.0.1"), ("Surrogate-Key", "product-42"), SOFT];
    let (status, body) = admin(&proxy, "PURGE", "/", &fields);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "{\"tags\":[\"product-42\"],\"soft\":true,\"marked_stale\":2}\n"
    );
    assert_eq!(entries(&proxy), 3);
    assert_eq!(cached(&proxy, "/products/a", &[]), "REVALIDATED");
    assert_eq!(cached(&proxy, "/other", &[]), "HIT");
    // Counted apart from hard purges by tag.
    let soft = "inverso_cache_purges_total{kind=\"tag\",mode=\"soft\"}";
    assert_eq!(proxy.metric(soft), Some(1));
    assert_eq!(
        proxy.metric("inverso_cache_purges_total{kind=\"tag\",mode=\"hard\"}"),
        Some(0)
    );
}

/// A revalidation that began before a soft purge carries what the origin
/// said before it: its 304 is relayed, not stored, and the entry stays
/// stale for the next request to revalidate, which is stored.
#[test]
fn a_revalidation_begun_before_a_soft_purge_is_not_stored_and_the_next_one_is() {
    let hold = Gate::new();
    let origin = origin(hold.clone());
    let proxy = start_proxy(&[origin.addr], cache_on);
    assert_eq!(cached(&proxy, "/p", &[]), "MISS");
    let (status, _) = admin(&proxy, "PURGE", "/p", &[("Host", SHOP), SOFT]);
    assert_eq!(status, 200);

    // The revalidation reaches the origin, which holds its 304...
    let addr = proxy.addr;
    let held = std::thread::spawn(move || {
        let mut client = Client::connect(addr);
        client.get_with("/p", &[("X-Hold", "1")])
    });
    assert!(wait_until(WAIT_LIMIT, || origin.requests() == 2));
    // ...while the entry is soft-purged again (already stale: as it is).
    let (status, body) = admin(&proxy, "PURGE", "/p", &[("Host", SHOP), SOFT]);
    assert_eq!(
        (status, body.contains("\"marked_stale\":1")),
        (200, true),
        "{body}"
    );
    hold.open();
    let r = held.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("x-cache"), Some("REVALIDATED"));
    assert_eq!(last_conditional(&origin), (true, 2));
    proxy.assert_becomes_idle();

    assert_eq!(cached(&proxy, "/p", &[]), "REVALIDATED", "still stale");
    assert_eq!(last_conditional(&origin), (true, 3));
    assert_eq!(
        cached(&proxy, "/p", &[]),
        "HIT",
        "the one begun after is stored"
    );
    assert_eq!(origin.requests(), 3);
}

#[test]
fn a_soft_purge_field_other_than_1_or_0_is_refused_and_delete_cache_is_never_soft() {
    let origin = origin(Gate::new());
    let proxy = start_proxy(&[origin.addr], cache_on);
    assert_eq!(cached(&proxy, "/p", &[]), "MISS");
    for fields in [
        &[("Host", SHOP), ("Soft-Purge", "yes")][..],
        &[("Host", SHOP), SOFT, ("Fastly-Soft-Purge", "0")],
    ] {
        let (status, body) = admin(&proxy, "PURGE", "/p", fields);
        assert_eq!(status, 400, "{fields:?}: {body}");
    }
    let (status, body) = admin(&proxy, "DELETE", "/cache", &[("Host", "127.0.0.1"), SOFT]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(entries(&proxy), 1, "nothing purged");
    assert_eq!(cached(&proxy, "/p", &[]), "HIT");
}
