//! `sticky_cookie`: a client that was served by a target keeps going to
//! it, as with HAProxy's `cookie NAME insert` and nginx's `sticky cookie`.
//! The proxy names the target in a cookie on the responses it relays; a
//! request that carries the cookie goes to that target while it can serve.

use crate::http::headers::Headers;

/// The cookie value that names a target: a hash of its name as written in
/// `targets`, so that it survives restarts and reloads, and is the same
/// on every proxy with the same targets, without showing the backend's
/// address to clients.
pub fn id_of(target_name: &str) -> String {
    // FNV-1a, 64 bits: stable across builds and processes, unlike std's
    // hasher.
    let hash = target_name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// The value of cookie `name` in the request's `Cookie` fields, if any.
pub fn requested<'h>(headers: &'h Headers, name: &str) -> Option<&'h str> {
    headers
        .get_all("cookie")
        .filter_map(|value| std::str::from_utf8(value).ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
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
    fn the_cookie_is_found_among_others_and_in_any_cookie_field() {
        let mut headers = Headers::default();
        headers.push("Cookie", "a=1; srv=abc ;b=2");
        assert_eq!(requested(&headers, "srv"), Some("abc"));
        assert_eq!(requested(&headers, "sr"), None);
        let mut headers = Headers::default();
        headers.push("Cookie", "a=1");
        headers.push("Cookie", "srv=\"q\"");
        assert_eq!(requested(&headers, "srv"), Some("q"));
        assert_eq!(requested(&Headers::default(), "srv"), None);
    }
}
