//! The cache between users: what one client's credentials brought (a
//! 304's fields, a HEAD's) never reaches another client through what is
//! stored for everyone.

mod support;

use support::*;

fn cache_on(c: &mut inverso::Config) {
    c.cache_size = 4 << 20;
    c.max_object_size = Some(256 * 1024);
}

/// An origin whose page is everyone's (`public`, revalidated at every use),
/// and which answers a revalidation with credentials with a 304 carrying
/// the user it answered, and no `Cache-Control` of its own: what its 200
/// to that request would have said (RFC 9110 §15.4.5), so not `public`.
fn per_user_304_origin() -> Backend {
    Backend::start("app", |seen, out| {
        let user = seen.head.get("authorization").map(str::to_string);
        if seen.method() == "HEAD" {
            // A HEAD that describes the stored body, for this user.
            let user = user.unwrap_or_default();
            let head = format!(
                "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 6\r\nX-User: {user}\r\n\r\n"
            );
            let _ = std::io::Write::write_all(out, head.as_bytes());
            return Action::KeepAlive;
        }
        match (seen.head.get("if-none-match"), user) {
            (Some(_), Some(user)) => {
                respond(out, 304, &[("ETag", "\"v1\""), ("X-User", &user)], b"");
            }
            (Some(_), None) => respond(out, 304, &[("ETag", "\"v1\"")], b""),
            (None, _) => respond(
                out,
                200,
                &[("Cache-Control", "public, max-age=0"), ("ETag", "\"v1\"")],
                b"shared",
            ),
        }
        Action::KeepAlive
    })
}

#[test]
fn a_304_to_a_request_with_credentials_leaves_its_fields_out_of_the_stored_entry() {
    let backend = per_user_304_origin();
    let proxy = start_proxy(&[backend.addr], cache_on);
    let first = proxy.get_on("test.example", "/p", &[]);
    assert_eq!((first.status, first.body_str().as_str()), (200, "shared"));
    // Alice revalidates with her credentials: her answer carries her
    // fields, for her.
    let alice = proxy.get_on("test.example", "/p", &[("Authorization", "Bearer alice")]);
    assert_eq!((alice.status, alice.body_str().as_str()), (200, "shared"));
    assert_eq!(alice.header("x-user"), Some("Bearer alice"));
    // The next client, without credentials, gets the page without them.
    let anonymous = proxy.get_on("test.example", "/p", &[]);
    assert_eq!(anonymous.body_str(), "shared");
    assert_eq!(anonymous.header("x-user"), None, "{}", anonymous.head.raw);
    assert_eq!(backend.requests(), 3);
}

#[test]
fn a_head_answered_for_credentials_leaves_its_fields_out_of_the_stored_entry() {
    let backend = per_user_304_origin();
    let proxy = start_proxy(&[backend.addr], cache_on);
    assert_eq!(proxy.get_on("test.example", "/p", &[]).status, 200);
    let alice =
        proxy.exchange(|client| client.head_with("/p", &[("Authorization", "Bearer alice")]));
    assert_eq!(alice.status, 200);
    assert_eq!(alice.header("x-user"), Some("Bearer alice"));
    let anonymous = proxy.get_on("test.example", "/p", &[]);
    assert_eq!(anonymous.body_str(), "shared");
    assert_eq!(anonymous.header("x-user"), None, "{}", anonymous.head.raw);
}

/// With the 304's own `public`, the entry takes its fields (RFC 9111
/// §3.5): the origin said they are everyone's.
#[test]
fn a_304_to_a_request_with_credentials_that_says_public_refreshes_the_entry() {
    let backend = Backend::start("app", |seen, out| {
        let with_credentials = seen.head.get("authorization").is_some();
        match seen.head.get("if-none-match") {
            // Its new field comes with the 304 to the credentials only.
            Some(_) if with_credentials => respond(
                out,
                304,
                &[
                    ("ETag", "\"v1\""),
                    ("Cache-Control", "public, max-age=0"),
                    ("X-Version", "2"),
                ],
                b"",
            ),
            Some(_) => respond(out, 304, &[("ETag", "\"v1\"")], b""),
            None => respond(
                out,
                200,
                &[("Cache-Control", "public, max-age=0"), ("ETag", "\"v1\"")],
                b"shared",
            ),
        }
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], cache_on);
    assert_eq!(proxy.get_on("test.example", "/p", &[]).status, 200);
    let alice = proxy.get_on("test.example", "/p", &[("Authorization", "Bearer alice")]);
    assert_eq!(alice.header("x-cache"), Some("REVALIDATED"));
    // The next client's 304 says nothing of it: the entry kept it.
    let later = proxy.get_on("test.example", "/p", &[]);
    assert_eq!(later.header("x-version"), Some("2"), "{}", later.head.raw);
}
