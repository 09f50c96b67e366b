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
    let mut value = None;
    let mut others = Vec::new();
    for field in headers.get_all("cookie") {
        let Ok(field) = std::str::from_utf8(field) else {
            // Not ours to parse: left as it came.
            return None;
        };
        for pair in field.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((key, v)) if key == name => {
                    value.get_or_insert_with(|| v.trim_matches('"').to_string());
                }
                _ => others.push(pair.to_string()),
            }
        }
    }
    value.as_ref()?;
    headers.remove("cookie");
    if !others.is_empty() {
        headers.push("Cookie", others.join("; "));
    }
    value
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
