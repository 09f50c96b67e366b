//! `cache_vary`: cookies and request fields every stored response is
//! keyed on besides its own `Vary`, as nginx's `proxy_cache_key` with
//! `$cookie_lang` added: a page whose language a cookie picks has a copy
//! per language, while the other cookies a visitor sends (a session, an
//! analytics id) make no copies of their own.
//!
//! The origin numbers its responses (`PATH #N`) and sends no `Vary`, so a
//! body tells which request's answer was served; its request counter says
//! the same from the other side. Responses say `max-age=60`.

mod support;

use inverso::cache::policy::CacheVary;
use inverso::Config;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::*;

fn cache_on(c: &mut Config, vary: &str) {
    c.cache_size = 4 << 20;
    c.max_object_size = Some(256 * 1024);
    c.cache_vary = CacheVary::parse(vary).unwrap();
}

// One request per connection, each returning once the proxy is done with
// it (see `Proxy::exchange`): the next one sees what it stored.

fn get_with(proxy: &Proxy, path: &str, fields: &[(&str, &str)]) -> Response {
    proxy.exchange(|c| c.get_with(path, fields))
}

fn with_cookie(proxy: &Proxy, path: &str, cookie: &str) -> Response {
    get_with(proxy, path, &[("Cookie", cookie)])
}

/// A request to the admin listener at `addr`.
fn admin(addr: SocketAddr, method: &str, target: &str) -> Response {
    let mut client = Client::connect(addr);
    client.send(format!("{method} {target} HTTP/1.1\r\nHost: test.example\r\n\r\n").as_bytes());
    client.response()
}

#[test]
fn each_value_of_the_cookie_has_a_copy_of_its_own() {
    let backend = numbered_fresh_origin();
    let proxy = start_proxy(&[backend.addr], |c| cache_on(c, "cookie:lang"));
    expect(&with_cookie(&proxy, "/p", "lang=fr"), 200, "MISS", "/p #1");
    expect(&with_cookie(&proxy, "/p", "lang=de"), 200, "MISS", "/p #2");
    // Other cookies, before or after it, are no part of the key.
    let fr_again = with_cookie(&proxy, "/p", "sid=9; lang=fr; _ga=GA1.2");
    expect(&fr_again, 200, "HIT", "/p #1");
    expect(&with_cookie(&proxy, "/p", "lang=de"), 200, "HIT", "/p #2");
    // Without it (or with other cookies alone), a copy of its own too;
    // the name is compared as sent.
    expect(&get_with(&proxy, "/p", &[]), 200, "MISS", "/p #3");
    expect(
        &with_cookie(&proxy, "/p", "sid=1; Lang=fr"),
        200,
        "HIT",
        "/p #3",
    );
    assert_eq!(backend.requests(), 3);
    // The response says nothing of it: what is added is the proxy's.
    assert!(fr_again.header("vary").is_none(), "{}", fr_again.head.raw);
}

#[test]
fn a_named_field_keys_responses_that_do_not_vary_on_it() {
    let backend = numbered_fresh_origin();
    let proxy = start_proxy(&[backend.addr], |c| cache_on(c, "header:X-Device"));
    let phone = [("X-Device", "phone")];
    expect(&get_with(&proxy, "/p", &phone), 200, "MISS", "/p #1");
    expect(&get_with(&proxy, "/p", &[]), 200, "MISS", "/p #2");
    expect(&get_with(&proxy, "/p", &phone), 200, "HIT", "/p #1");
    expect(&get_with(&proxy, "/p", &[]), 200, "HIT", "/p #2");
}

#[test]
fn a_purge_and_an_unsafe_request_drop_every_copy() {
    let backend = numbered_fresh_origin();
    let proxy = start_proxy(&[backend.addr], |c| {
        cache_on(c, "cookie:lang");
        c.admin_port = Some(0);
    });
    let admin_addr = proxy.handle().admin_addr().unwrap();
    with_cookie(&proxy, "/p", "lang=fr");
    with_cookie(&proxy, "/p", "lang=de");
    let purged = admin(admin_addr, "PURGE", "/p");
    assert_eq!(purged.status, 200, "{}", purged.body_str());
    expect(&with_cookie(&proxy, "/p", "lang=fr"), 200, "MISS", "/p #3");
    expect(&with_cookie(&proxy, "/p", "lang=de"), 200, "MISS", "/p #4");

    let post = proxy.exchange(|c| c.request("POST", "/p", &[("Cookie", "lang=fr")], b"x"));
    assert_eq!(post.status, 200);
    expect(&with_cookie(&proxy, "/p", "lang=fr"), 200, "MISS", "/p #6");
    expect(&with_cookie(&proxy, "/p", "lang=de"), 200, "MISS", "/p #7");
}

#[test]
fn entries_stored_before_a_reload_that_names_a_cookie_are_not_served() {
    let backend = numbered_fresh_origin();
    let proxy = start_proxy(&[backend.addr], |c| cache_on(c, ""));
    expect(&with_cookie(&proxy, "/p", "lang=fr"), 200, "MISS", "/p #1");
    // One copy for every language, as nginx's key without the cookie.
    expect(&with_cookie(&proxy, "/p", "lang=de"), 200, "HIT", "/p #1");

    proxy.reload(&[backend.addr], |c| cache_on(c, "cookie:lang"));
    expect(&with_cookie(&proxy, "/p", "lang=de"), 200, "MISS", "/p #2");
    expect(&with_cookie(&proxy, "/p", "lang=fr"), 200, "MISS", "/p #3");
    expect(&with_cookie(&proxy, "/p", "lang=de"), 200, "HIT", "/p #2");
    expect(&with_cookie(&proxy, "/p", "lang=fr"), 200, "HIT", "/p #3");
    // The copy for all was dropped, not left behind the new ones.
    assert_eq!(proxy.handle().cache().unwrap().len(), 2);
}

fn persisted(path: &Path) -> impl FnOnce(&mut Config) + '_ {
    move |c| {
        cache_on(c, "cookie:lang");
        c.path_to_persistence = Some(path.to_path_buf());
    }
}

#[test]
fn copies_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.bin");
    let backend = numbered_fresh_origin();
    let mut first = start_proxy(&[backend.addr], persisted(&file));
    with_cookie(&first, "/p", "lang=fr");
    with_cookie(&first, "/p", "lang=\"de\"");
    assert!(first.shutdown(Duration::from_secs(1)));

    // Same file, no origin at all.
    let second = start_proxy(&[dead_addr()], persisted(&file));
    expect(&with_cookie(&second, "/p", "lang=fr"), 200, "HIT", "/p #1");
    expect(
        &with_cookie(&second, "/p", "lang=\"de\""),
        200,
        "HIT",
        "/p #2",
    );
    // A value never stored is a miss (the dead origin: 502).
    assert_eq!(with_cookie(&second, "/p", "lang=it").status, 502);
}
