//! The request-target: its forms (origin, absolute, asterisk) and their
//! parts, and the characters and methods a request may send one with.

use super::host::check_host;
use super::HeadError;
use std::borrow::Cow;

/// The path and query of `target` (a request-target), also for an
/// absolute-form one (whose empty path becomes "/", RFC 9112 §3.2.2).
pub fn path_and_query_of(target: &str) -> Cow<'_, str> {
    match split_absolute(target) {
        Some((_, path)) if path.starts_with('/') => Cow::Borrowed(path),
        Some((_, path)) => Cow::Owned(format!("/{path}")),
        None => Cow::Borrowed(target),
    }
}

/// Splits `http://authority/path?q` into its authority and the rest (which
/// may be empty or start with '?'); `None` for any other form.
pub fn split_absolute(target: &str) -> Option<(&str, &str)> {
    let rest = strip_prefix_ignore_case(target, "http://")
        .or_else(|| strip_prefix_ignore_case(target, "https://"))?;
    match rest.find(['/', '?']) {
        Some(i) => Some((&rest[..i], &rest[i..])),
        None => Some((rest, "")),
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// RFC 9112 §3.2: origin-form for most methods, absolute-form always
/// allowed, asterisk-form only for OPTIONS; authority-form is CONNECT's,
/// which a reverse proxy does not offer. Nor TRACE (as nginx), nor IIS's
/// TRACK: the backend would echo the request as it reached it, cookies
/// and the proxy's own fields included, to whatever script made it send
/// one.
///
/// RFC 9112 §3: "Recipients of an invalid request-line SHOULD respond
/// with either a 400 (Bad Request) error or a 301 (Moved Permanently)
/// redirect with the request-target properly encoded." We answer 400.
pub(super) fn check_target(method: &str, target: &str) -> Result<(), HeadError> {
    if matches!(method, "CONNECT" | "TRACE" | "TRACK") {
        return Err(HeadError::MethodNotAllowed);
    }
    check_target_bytes(target.as_bytes())?;
    if target.starts_with('/') {
        // "//host/path" would read as a scheme-relative reference to some
        // backends; it is legal origin-form, so it is forwarded as is.
        return Ok(());
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(())
        } else {
            Err(HeadError::Malformed("asterisk-form is for OPTIONS only"))
        };
    }
    match split_absolute(target) {
        Some((authority, _)) if !authority.is_empty() => check_host(authority.as_bytes()),
        _ => Err(HeadError::Malformed("invalid request-target")),
    }
}

/// The characters of a request-target: ASCII graphic characters only
/// (httparse lets bytes above 0x7F through), and no `#` (a fragment is
/// never sent, and backends disagree on whether it ends the path). RFC 3986
/// also excludes `" < > [ ] { } | ^ \ \`` and a `%` that starts no escape;
/// browsers send them as typed (`?q=100%`, `?promo=50%off`), they say
/// nothing about where a request ends, and nginx and HAProxy pass them on,
/// so they are tolerated (the cache keys a lone `%` as the `%25` it stands
/// for).
pub fn check_target_bytes(target: &[u8]) -> Result<(), HeadError> {
    for &b in target {
        match b {
            b'#' => return Err(HeadError::Malformed("fragment in target")),
            b if !b.is_ascii_graphic() => {
                return Err(HeadError::Malformed("invalid character in target"))
            }
            _ => {}
        }
    }
    Ok(())
}
