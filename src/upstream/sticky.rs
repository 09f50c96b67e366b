//! `sticky_cookie`: a client that was served by a target keeps going to
//! it, as with HAProxy's `cookie NAME insert` and nginx's `sticky cookie`.
//! The proxy names the target in a cookie on the responses it relays; a
//! request that carries the cookie goes to that target while it can serve.

use super::balancer::stable_hash;
use crate::cache::policy::CacheControl;
use crate::http::edits::FieldEdits;
use crate::http::headers::{cookie_named, cookie_pairs, Headers};
use std::sync::Arc;

/// A request's part in `sticky_cookie`.
pub struct Sticky {
    /// The cookie's name.
    pub name: Arc<str>,
    /// The target the request's cookie named, if it had one.
    pub sent: Option<String>,
    /// `sticky_cookie_nocache`: a response that sets the cookie is marked
    /// `private`.
    pub nocache: bool,
    /// `sticky_cookie_attributes`, as `Set-Cookie` says them.
    pub attributes: Arc<str>,
}

/// The cookie value that names a target: a hash of its name as written in
/// `targets`, so that it survives restarts and reloads, and is the same
/// on every proxy with the same targets, without showing the backend's
/// address to clients.
pub fn id_of(target_name: &str) -> String {
    // Stable across builds and processes, unlike std's hasher.
    format!("{:016x}", stable_hash(target_name.as_bytes()))
}

/// Takes cookie `name` out of the request's `Cookie` fields and returns its
/// value, if there was one. It is the proxy's, not the application's
/// (HAProxy's `indirect`): the backend does not see it, and a request that
/// carries no other cookie is, for the cache, a request without cookies.
///
/// Read as bytes: a cookie of the application's that is not UTF-8 (obs-text
/// is allowed in a field value) neither hides ours, in the same field or
/// another, nor is lost from what goes on.
pub fn take(headers: &mut Headers, name: &str) -> Option<String> {
    // A first look copies nothing: most requests do not carry it.
    let value = headers.cookie(name)?;
    let value = String::from_utf8_lossy(value).trim_matches('"').to_string();
    // The others go on, in one field.
    let mut others = Vec::new();
    for pair in headers.get_all("cookie").flat_map(cookie_pairs) {
        if cookie_named(pair, name).is_none() {
            if !others.is_empty() {
                others.extend_from_slice(b"; ");
            }
            others.extend_from_slice(pair);
        }
    }
    headers.remove("cookie");
    if !others.is_empty() {
        headers.push("Cookie", others);
    }
    Some(value)
}

/// The `Set-Cookie` line that sends the client to target `id`;
/// `attributes` as kept by the configuration (`; Secure`).
pub fn set_cookie_line(name: &str, id: &str, attributes: &str) -> String {
    format!("Set-Cookie: {name}={id}; Path=/; HttpOnly{attributes}\r\n")
}

/// Whether a shared cache may store a response that goes out with the
/// fields `headers` holds (the backend's, less those `edits` replace)
/// and those `edits` set: then, under `sticky_cookie_nocache`, it is
/// marked `private`, as HAProxy's `nocache` does, lest a cache in front
/// hand one client's cookie to all. One already `private` or `no-store`
/// is left as it is; `no-cache` still lets a cache store it.
pub fn shared_caches_may_store(headers: &Headers, edits: &FieldEdits) -> bool {
    let cc = match edits.edits(b"cache-control") {
        false => CacheControl::parse(headers),
        // The operator's value; one with variables is not read here,
        // and the response is marked.
        true => {
            let mut set = Headers::default();
            if let Some(value) = edits.value_of("cache-control") {
                set.push("Cache-Control", value);
            }
            CacheControl::parse(&set)
        }
    };
    !(cc.private || cc.no_store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(id_of("10.0.0.1:80"), id_of("10.0.0.1:80"));
        assert_ne!(id_of("10.0.0.1:80"), id_of("10.0.0.2:80"));
        assert_eq!(id_of("a").len(), 16);
    }

    #[test]
    fn the_cookie_is_taken_from_among_the_others_in_any_cookie_field() {
        let mut headers = Headers::default();
        headers.push("Cookie", "a=1; srv=abc ;b=2");
        assert_eq!(take(&mut headers, "sr"), None);
        assert_eq!(headers.get_str("cookie"), Some("a=1; srv=abc ;b=2"));
        assert_eq!(take(&mut headers, "srv").as_deref(), Some("abc"));
        assert_eq!(headers.get_str("cookie"), Some("a=1; b=2"));
        let mut headers = Headers::default();
        headers.push("Cookie", "a=1");
        headers.push("Cookie", "srv=\"q\"");
        assert_eq!(take(&mut headers, "srv").as_deref(), Some("q"));
        assert_eq!(headers.get_str("cookie"), Some("a=1"));
        // Ours alone: no Cookie field left.
        let mut headers = Headers::default();
        headers.push("Cookie", "srv=q");
        assert_eq!(take(&mut headers, "srv").as_deref(), Some("q"));
        assert!(!headers.contains("cookie"));
        assert_eq!(take(&mut Headers::default(), "srv"), None);
    }

    #[test]
    fn a_cookie_that_is_not_utf_8_neither_hides_ours_nor_is_lost() {
        let mut headers = Headers::default();
        headers.push("Cookie", b"lang=caf\xe9".as_slice());
        headers.push("Cookie", "srv=abc; a=1");
        assert_eq!(take(&mut headers, "srv").as_deref(), Some("abc"));
        assert_eq!(headers.get("cookie"), Some(&b"lang=caf\xe9; a=1"[..]));
        let mut headers = Headers::default();
        headers.push("Cookie", b"x=\xff; srv=abc".as_slice());
        assert_eq!(take(&mut headers, "srv").as_deref(), Some("abc"));
        assert_eq!(headers.get("cookie"), Some(&b"x=\xff"[..]));
    }
}
