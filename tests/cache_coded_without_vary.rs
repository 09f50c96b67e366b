//! A backend that compresses for clients that take gzip but does not say
//! `Vary: Accept-Encoding` (nginx's `gzip on` without `gzip_vary on`, its
//! default): the cache keys such a coded answer by `Accept-Encoding` as
//! if `Vary` named it, so that a client that takes no coding is never
//! served another's compressed bytes. A plain answer is keyed by the URL
//! alone, as before: its bytes are right for every client.

mod support;

use inverso::cache::policy::IgnoredHeaders;
use inverso::Config;
use support::*;

fn cache_on(c: &mut Config) {
    c.cache_size = 4 << 20;
    c.max_object_size = Some(256 * 1024);
}

/// nginx's bytes with `gzip on` and `gzip_vary off`: the coded body to a
/// request whose `Accept-Encoding` names gzip, the plain one to others,
/// and no `Vary` on either.
fn nginx_gzip_without_vary() -> Backend {
    Backend::start("origin", move |seen, out| {
        let takes_gzip = seen.field_or("accept-encoding", "").contains("gzip");
        let mut fields = vec![
            ("Content-Type", "text/plain"),
            ("Cache-Control", "max-age=60"),
            ("ETag", "W/\"6b12d269-30d40\""),
        ];
        let body: &[u8] = match takes_gzip {
            true => {
                fields.push(("Content-Encoding", "gzip"));
                b"\x1f\x8b coded bytes"
            }
            false => b"plain text",
        };
        respond(out, 200, &fields, body);
        Action::KeepAlive
    })
}

#[test]
fn a_coded_answer_without_vary_goes_only_to_clients_sending_the_same_accept_encoding() {
    let backend = nginx_gzip_without_vary();
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();
    let gzip = [("Accept-Encoding", "gzip, deflate")];

    let r = client.get_with("/t.txt", &gzip);
    expect(&r, 200, "MISS", "\u{1f}\u{fffd} coded bytes");
    // Not the coded bytes stored for the client before.
    let r = client.get("/t.txt");
    assert_eq!(r.header("content-encoding"), None, "{}", r.head.raw);
    expect(&r, 200, "MISS", "plain text");
    // The plain answer, keyed by the URL alone, now answers everyone:
    // plain bytes are right for a client that takes gzip too.
    let r = client.get_with("/t.txt", &gzip);
    expect(&r, 200, "HIT", "plain text");
    expect(&client.get("/t.txt"), 200, "HIT", "plain text");
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_plain_answer_stored_first_still_serves_every_client_without_a_coding() {
    let backend = nginx_gzip_without_vary();
    let proxy = start_proxy(&[backend.addr], cache_on);
    let mut client = proxy.connect();

    expect(&client.get("/t.txt"), 200, "MISS", "plain text");
    expect(&client.get("/t.txt"), 200, "HIT", "plain text");
    // A plain body needs no key by coding: a client that takes gzip may
    // have it, as before.
    let r = client.get_with("/t.txt", &[("Accept-Encoding", "gzip")]);
    expect(&r, 200, "HIT", "plain text");
    assert_eq!(backend.requests(), 1);
}

#[test]
fn with_vary_unread_a_coded_answer_is_still_kept_from_clients_that_take_no_coding() {
    let backend = nginx_gzip_without_vary();
    let proxy = start_proxy(&[backend.addr], |c| {
        cache_on(c);
        c.cache_ignore_headers = IgnoredHeaders::parse("Vary").unwrap();
    });
    let mut client = proxy.connect();

    let r = client.get_with("/t.txt", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let r = client.get("/t.txt");
    assert_eq!(r.header("content-encoding"), None, "{}", r.head.raw);
    expect(&r, 200, "MISS", "plain text");
}
