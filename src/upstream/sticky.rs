//! `sticky_cookie`: a client that was served by a target keeps going to
//! it, as with HAProxy's `cookie NAME insert` and nginx's `sticky cookie`.
//! The proxy names the target in a cookie on the responses it relays; a
//! request that carries the cookie goes to that target while it can serve.

use super::balancer::stable_hash;
use crate::http::headers::Headers;

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
pub fn take(headers: &mut Headers, name: &str) -> Option<String> {
    let is_ours = |pair: &str| pair.split_once('=').is_some_and(|(key, _)| key == name);
    // A first look copies nothing: most requests do not carry it.
    let mut value = None;
    for field in headers.get_all("cookie") {
        // A field that is not text is not ours to parse: left as it came.
        let field = std::str::from_utf8(field).ok()?;
        if value.is_none() {
            value = field
                .split(';')
                .map(str::trim)
                .find(|pair| is_ours(pair))
                .and_then(|pair| pair.split_once('='))
                .map(|(_, v)| v.trim_matches('"').to_string());
        }
    }
    let value = value?;
    // The others go on, in one field.
    let mut others = String::new();
    for field in headers.get_all("cookie") {
        let field = std::str::from_utf8(field).unwrap_or_default();
        for pair in field.split(';').map(str::trim) {
            if !pair.is_empty() && !is_ours(pair) {
                if !others.is_empty() {
                    others.push_str("; ");
                }
                others.push_str(pair);
            }
        }
    }
    headers.remove("cookie");
    if !others.is_empty() {
        headers.push("Cookie", others);
    }
    Some(value)
}

/// The `Set-Cookie` line that sends the client to target `id`.
pub fn set_cookie_line(name: &str, id: &str) -> String {
    format!("Set-Cookie: {name}={id}; Path=/; HttpOnly\r\n")
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
}
