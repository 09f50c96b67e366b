//! A request's path as routes read it ([`routing_path`]): decoded and
//! merged as backends read it, compared by whole segments, and refused
//! when backends could read it otherwise ([`is_ambiguous`]).

use crate::cache::policy::push_path;
use std::borrow::Cow;

/// Whether `path` is `prefix`, or below it by whole segments.
pub(super) fn path_is_under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The path a request-target names, without its query: `/` for one
/// that is no path (`*`, an authority), which routes and rules read as
/// the site's root.
pub fn path_of_target(target: &str) -> &str {
    match target.starts_with('/') {
        true => &target[..target.find('?').unwrap_or(target.len())],
        false => "/",
    }
}

/// A path as routes match it (see the module's documentation): encoded
/// unreserved characters decoded (the cache key's spelling, and `.`),
/// runs of `/` merged. Paths with dot-segments are refused before (see
/// [`is_ambiguous`]).
pub fn routing_path(path: &str) -> Cow<'_, str> {
    if !path.contains('%') && !path.contains("//") {
        return Cow::Borrowed(path);
    }
    let mut decoded = String::with_capacity(path.len());
    push_path(&mut decoded, path);
    // `.` is unreserved too (RFC 3986 §2.3): `/%2Egit/` is `/.git/` to a
    // backend, and to a route for it. The cache key keeps it escaped (see
    // `push_path`); here no dot segment can come of it, such paths being
    // refused first.
    if decoded.contains("%2E") {
        decoded = decoded.replace("%2E", ".");
    }
    let mut merged = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        if !(c == '/' && merged.ends_with('/')) {
            merged.push(c);
        }
    }
    Cow::Owned(merged)
}

/// Whether servers decode the escape of `byte` before they read a path
/// (nginx does, to match its locations), though RFC 3986 does not make
/// `/%40admin/` `/@admin/`: `/`, and every other character a route's
/// path may hold (see `parse_spec`), which [`other_reading`] decodes.
fn decoded_by_servers(byte: u8) -> bool {
    byte.is_ascii_graphic() && !b"%?#*;".contains(&byte)
}

/// `path` as servers that drop `;` parameters from segments and decode
/// `%2F` and the other characters a route may name read it (see
/// [`decoded_by_servers`]), matched as [`routing_path`] matches; `None`
/// when it has none of these.
pub fn other_reading(path: &str) -> Option<String> {
    let read = routing_path(path);
    let escaped = |(i, _): (usize, _)| {
        let hex = read.get(i + 1..i + 3)?;
        let byte = u8::from_str_radix(hex, 16).ok()?;
        decoded_by_servers(byte).then_some((i, char::from(byte)))
    };
    let reserved: Vec<(usize, char)> = read.match_indices('%').filter_map(escaped).collect();
    if !path.contains(';') && reserved.is_empty() {
        return None;
    }
    let mut decoded = String::with_capacity(read.len());
    let mut from = 0;
    for (i, c) in reserved {
        decoded.push_str(&read[from..i]);
        decoded.push(c);
        from = i + 3;
    }
    decoded.push_str(&read[from..]);
    let mut other = String::with_capacity(decoded.len());
    for (i, segment) in decoded.split('/').enumerate() {
        if i > 0 && !other.ends_with('/') {
            other.push('/');
        }
        other.push_str(segment.split(';').next().unwrap_or_default());
    }
    Some(other)
}

/// Whether backends could read `path` (a request's, without its query)
/// in ways that differ on which route it is for: it holds a `.` or `..`
/// segment, however spelled (`%2E`, with `;` parameters as Tomcat reads
/// `..;`, between `%2F` separators a backend may decode), or a `\` (or
/// `%5C`), which IIS and browsers read as `/`; or an escape no client
/// sends but that some server decodes into one of those: a NUL (`%00`,
/// Jetty's `.%00`), IIS's `%u002e`, a double-encoded `.`, `/`, `\` or
/// `;` (`%252e`), an overlong UTF-8 lead byte (`%c0%ae`). Servers resolve
/// such segments before or after merging `//`, decoding or not: no
/// matching can be sure to read them as the backend will. Browsers never
/// send them. As sent, and as routes read it (see [`routing_path`]):
/// `%25%32%65` is `%2e` to them, and `.` to a backend that decodes twice.
pub fn is_ambiguous(path: &str) -> bool {
    unambiguous_reading(path).is_none()
}

/// `path` as routes read it ([`routing_path`]), or `None` when backends
/// could read it otherwise ([`is_ambiguous`]): one decoding for both.
pub fn unambiguous_reading(path: &str) -> Option<Cow<'_, str>> {
    if ambiguous_as_spelled(path) {
        return None;
    }
    let read = routing_path(path);
    match &read {
        Cow::Owned(decoded) if ambiguous_as_spelled(decoded) => None,
        _ => Some(read),
    }
}

fn ambiguous_as_spelled(path: &str) -> bool {
    if path.contains('\\') {
        return true;
    }
    // The common case, a path with no escape, costs no allocation.
    if !path.contains('%') {
        return has_dot_segment(path.as_bytes());
    }
    let lower = path.to_ascii_lowercase();
    let smuggled = [
        "%00", "%u", "%252e", "%252f", "%255c", "%253b", "%c0", "%c1",
    ];
    if smuggled.iter().any(|s| lower.contains(s)) {
        return true;
    }
    // Decoded as liberally as any backend decodes it.
    let mut liberal = Vec::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => Some([hi.to_ascii_uppercase(), lo.to_ascii_uppercase()]),
            _ => None,
        };
        match (bytes[i], escaped) {
            (b'\\', _) | (_, Some([b'5', b'C'])) => return true,
            (_, Some([b'2', b'E'])) => liberal.push(b'.'),
            (_, Some([b'2', b'F'])) => liberal.push(b'/'),
            (_, Some([b'3', b'B'])) => liberal.push(b';'),
            (b, _) => {
                liberal.push(b);
                i += 1;
                continue;
            }
        }
        i += 3;
    }
    has_dot_segment(&liberal)
}

/// Whether a segment of `path` is `.` or `..`, `;` parameters aside.
fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(|segment| {
        let name = segment.split(|&b| b == b';').next().unwrap_or_default();
        name == b"." || name == b".."
    })
}
