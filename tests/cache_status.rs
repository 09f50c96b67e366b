//! `cache_status`: RFC 9211's `Cache-Status` on every response with the
//! cache on, naming this cache and what it did, after the members of the
//! caches behind it.

mod support;

use inverso::Config;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::*;

fn named(c: &mut Config) {
    c.cache_size = 4 << 20;
    c.max_object_size = Some(256 * 1024);
    c.cache_status = Some("inverso".into());
}

/// Our member: the last of the field's.
fn ours(response: &Response) -> String {
    let all: Vec<&str> = response.head.get_all("cache-status").collect();
    all.last().copied().unwrap_or("-").to_string()
}

/// `ttl=N` of a member.
fn ttl(member: &str) -> i64 {
    let at = member.find("ttl=").expect("a ttl");
    member[at + 4..].parse().expect("a number")
}

#[test]
fn a_miss_a_hit_and_a_bypass_each_say_what_the_cache_did() {
    let backend = Backend::start("origin", |seen, out| {
        let fields = [
            ("Cache-Control", "max-age=60"),
            ("Cache-Status", "upstream; hit"),
        ];
        respond(out, 200, &fields, seen.path().as_bytes());
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], named);
    let mut client = proxy.connect();
    let miss = client.get("/a");
    assert_eq!(ours(&miss), "inverso; fwd=uri-miss; fwd-status=200");
    // The cache behind says its own first.
    let members: Vec<&str> = miss.head.get_all("cache-status").collect();
    assert_eq!(
        members,
        ["upstream; hit", "inverso; fwd=uri-miss; fwd-status=200"]
    );

    let hit = client.get("/a");
    assert_eq!(x_cache(&hit), "HIT");
    let member = ours(&hit);
    assert!(member.starts_with("inverso; hit; ttl="), "{member}");
    assert!((59..=60).contains(&ttl(&member)), "{member}");

    let posted = client.post("/a", b"x");
    assert_eq!(ours(&posted), "inverso; fwd=bypass; fwd-status=200");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn the_ttl_a_hit_says_is_capped_by_ttl_as_its_freshness_is() {
    let backend = Backend::start("origin", |seen, out| {
        respond(
            out,
            200,
            &[("Cache-Control", "max-age=3600")],
            seen.path().as_bytes(),
        );
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], named);
    let mut client = proxy.connect();
    assert_eq!(x_cache(&client.get("/a")), "MISS");
    // Stored for an hour; a reload lowers ttl to a minute.
    proxy.reload(&[backend.addr], |c| {
        named(c);
        c.ttl = std::time::Duration::from_secs(60);
    });
    let member = ours(&proxy.connect().get("/a"));
    assert!(member.starts_with("inverso; hit; ttl="), "{member}");
    assert!((59..=60).contains(&ttl(&member)), "{member}");
}

#[test]
fn a_revalidation_says_it_went_on_for_a_stale_entry_and_what_came_back() {
    let numbered = AtomicUsize::new(0);
    let backend = Backend::start("origin", move |seen, out| {
        numbered.fetch_add(1, Ordering::SeqCst);
        if seen.head.has("if-none-match") {
            write_304(out, &[("ETag", "\"v1\""), ("Cache-Control", "max-age=60")]);
        } else {
            // Stale on arrival: its first use revalidates.
            let fields = [
                ("ETag", "\"v1\""),
                ("Cache-Control", "max-age=60"),
                ("Age", "120"),
            ];
            respond(out, 200, &fields, b"page");
        }
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], named);
    let mut client = proxy.connect();
    assert_eq!(x_cache(&client.get("/r")), "MISS");
    let revalidated = client.get("/r");
    assert_eq!(x_cache(&revalidated), "REVALIDATED");
    let member = ours(&revalidated);
    assert!(
        member.starts_with("inverso; fwd=stale; fwd-status=304; stored; ttl="),
        "{member}"
    );
    assert!((59..=60).contains(&ttl(&member)), "{member}");
}

#[test]
fn without_a_name_no_cache_status_is_written() {
    let backend = Backend::start("origin", |_, out| {
        respond(out, 200, &[("Cache-Control", "max-age=60")], b"x");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], |c| {
        named(c);
        c.cache_status = None;
    });
    let mut client = proxy.connect();
    for _ in 0..2 {
        assert!(!client.get("/").head.has("cache-status"));
    }
}

#[test]
fn the_ttl_a_hit_says_is_what_is_left_of_its_freshness() {
    let backend = Backend::start("origin", |seen, out| {
        // A minute's freshness, twenty seconds of it spent upstream.
        let fields = [("Cache-Control", "max-age=60"), ("Age", "20")];
        respond(out, 200, &fields, seen.path().as_bytes());
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], named);
    let mut client = proxy.connect();
    assert_eq!(x_cache(&client.get("/a")), "MISS");
    let hit = client.get("/a");
    assert_eq!(x_cache(&hit), "HIT");
    let member = ours(&hit);
    assert!(member.starts_with("inverso; hit; ttl="), "{member}");
    assert!((39..=40).contains(&ttl(&member)), "{member}");
}
