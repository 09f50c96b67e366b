//! `cache_min_uses`: a response is stored only once its URL has been asked
//! for that many times, as nginx's `proxy_cache_min_uses`, so that URLs
//! asked for once do not push out of the cache those asked for all the
//! time. The origin numbers its responses (`PATH #N`): a body tells which
//! response was stored.

mod support;

use inverso::Config;
use support::*;

fn cache_on(c: &mut Config, min_uses: u32) {
    c.cache_size = 4 << 20;
    c.max_object_size = Some(256 * 1024);
    c.cache_min_uses = min_uses;
}

#[test]
fn a_url_is_stored_at_its_third_request_with_three_and_at_its_first_by_default() {
    let backend = numbered_fresh_origin();
    let proxy = start_proxy(&[backend.addr], |c| cache_on(c, 3));
    let mut client = proxy.connect();
    for n in 1..=3 {
        let response = client.get("/popular");
        assert_eq!(x_cache(&response), "MISS", "request {n}");
        assert_eq!(response.body_str(), format!("/popular #{n}"));
    }
    // Each URL is counted apart: another asked for once is not stored.
    let once = client.get("/once");
    assert_eq!(
        (x_cache(&once), once.body_str().as_str()),
        ("MISS", "/once #4")
    );
    for _ in 0..3 {
        let hit = client.get("/popular");
        assert_eq!(
            (x_cache(&hit), hit.body_str().as_str()),
            ("HIT", "/popular #3")
        );
    }
    let again = client.get("/once");
    assert_eq!(x_cache(&again), "MISS");
    assert_eq!(backend.requests(), 5);

    let backend = numbered_fresh_origin();
    let proxy = start_proxy(&[backend.addr], |c| cache_on(c, 1));
    let mut client = proxy.connect();
    assert_eq!(x_cache(&client.get("/first")), "MISS");
    assert_eq!(x_cache(&client.get("/first")), "HIT");
    assert_eq!(backend.requests(), 1);
}

#[test]
fn a_url_stored_then_purged_is_stored_again_at_its_next_miss() {
    let backend = numbered_fresh_origin();
    let proxy = start_proxy(&[backend.addr], |c| {
        cache_on(c, 2);
        c.admin_port = Some(0);
    });
    let mut client = proxy.connect();
    client.get("/page");
    client.get("/page");
    assert_eq!(x_cache(&client.get("/page")), "HIT");
    let admin = proxy.handle().admin_addr().unwrap();
    let purged = one_request(admin, b"PURGE /page HTTP/1.1\r\nHost: test.example\r\n\r\n");
    assert_eq!(purged.status, 200, "{}", purged.body_str());
    // Still asked for: its count stands, and the next miss stores it.
    assert_eq!(x_cache(&client.get("/page")), "MISS");
    let hit = client.get("/page");
    assert_eq!(
        (x_cache(&hit), hit.body_str().as_str()),
        ("HIT", "/page #3")
    );
}

#[test]
fn a_stored_url_s_new_version_is_stored_whatever_its_count() {
    // Stored while cache_min_uses was 1; 2 since a reload, which counts
    // the URL anew. Its entry must be revalidated (no-cache), and the
    // origin has a new version: that replaces the stored one, as the URL
    // is past its count by being stored at all. Else the old one stayed,
    // to be revalidated against (and served stale if the origin failed).
    let asked_with = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let backend = {
        let asked_with = asked_with.clone();
        let n = std::sync::atomic::AtomicUsize::new(0);
        Backend::start("versions", move |seen, out| {
            let n = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            asked_with
                .lock()
                .unwrap()
                .push(seen.field_or("if-none-match", "-").to_string());
            let etag = format!("\"{n}\"");
            let fields = [("Cache-Control", "no-cache"), ("ETag", etag.as_str())];
            respond(out, 200, &fields, format!("v{n}").as_bytes());
            Action::KeepAlive
        })
    };
    let proxy = start_proxy(&[backend.addr], |c| cache_on(c, 1));
    let mut client = proxy.connect();
    assert_eq!(client.get("/p").body_str(), "v1");
    proxy.reload(&[backend.addr], |c| cache_on(c, 2));
    let mut client = proxy.connect();
    assert_eq!(client.get("/p").body_str(), "v2");
    assert_eq!(client.get("/p").body_str(), "v3");
    assert_eq!(*asked_with.lock().unwrap(), ["-", "\"1\"", "\"2\""]);
}

#[test]
fn an_answer_the_cache_may_not_keep_does_not_count_toward_its_url_s_uses() {
    // Only URLs whose answers may be stored are counted: a page answered
    // `private` to everyone (an account page, asked for all the time)
    // would otherwise take the places of the storable URLs' counts. Its
    // first answer here is `private`, its next ones may be stored.
    let numbered = std::sync::atomic::AtomicUsize::new(0);
    let backend = Backend::start("origin", move |seen, out| {
        let n = numbered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let cache_control = if n == 1 {
            "private, max-age=60"
        } else {
            "max-age=60"
        };
        let body = format!("{} #{n}", seen.path());
        respond(
            out,
            200,
            &[("Cache-Control", cache_control)],
            body.as_bytes(),
        );
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], |c| cache_on(c, 2));
    let mut client = proxy.connect();
    expect(&client.get("/page"), 200, "MISS", "/page #1");
    // Its first counted use: not stored yet.
    expect(&client.get("/page"), 200, "MISS", "/page #2");
    expect(&client.get("/page"), 200, "MISS", "/page #3");
    expect(&client.get("/page"), 200, "HIT", "/page #3");
    assert_eq!(backend.requests(), 3);
}

#[test]
fn with_one_use_nothing_is_counted_so_a_url_s_count_starts_when_a_reload_raises_it() {
    // At 1, counting would cost a place in the table for every URL and
    // decide nothing: a URL asked for then, once raised to 2, is asked
    // for twice more before it is stored again.
    let backend = numbered_fresh_origin();
    let with_admin = |min_uses| {
        move |c: &mut Config| {
            cache_on(c, min_uses);
            c.admin_port = Some(0);
        }
    };
    let proxy = start_proxy(&[backend.addr], with_admin(1));
    let mut client = proxy.connect();
    expect(&client.get("/page"), 200, "MISS", "/page #1");
    expect(&client.get("/page"), 200, "HIT", "/page #1");
    let admin = proxy.handle().admin_addr().unwrap();
    let purged = one_request(admin, b"PURGE /page HTTP/1.1\r\nHost: test.example\r\n\r\n");
    assert_eq!(purged.status, 200, "{}", purged.body_str());
    proxy.reload(&[backend.addr], with_admin(2));
    let mut client = proxy.connect();
    expect(&client.get("/page"), 200, "MISS", "/page #2");
    expect(&client.get("/page"), 200, "MISS", "/page #3");
    expect(&client.get("/page"), 200, "HIT", "/page #3");
}
