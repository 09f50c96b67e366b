//! What a `route.` key names after the dot: its host (`HostPattern`)
//! and its path, read and checked; and a request's host as routes
//! compare it.

use super::paths::{is_ambiguous, routing_path};
use crate::http::head::push_host_name;
use std::fmt;
use std::sync::Arc;

/// The host and path of a `route.` key's part after the dot.
pub(super) fn parse_spec(spec: &str) -> Result<(HostPattern, Box<str>), String> {
    let (host, path) = spec.split_at(spec.find('/').unwrap_or(spec.len()));
    let host = parse_host(host)?;
    let path = match path {
        "" => "/",
        path => path,
    };
    if path.contains(['?', '#', '%', '*']) || path.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(format!(
            "the path `{path}` may hold no `?`, `#`, `%`, `*`, space or non-ASCII \
             character: it is a prefix of paths, matched as decoded"
        ));
    }
    // A request under it holds the `;` too, which backends that drop `;`
    // parameters read without: it is refused as ambiguous, never matched.
    if path.contains(';') {
        return Err(format!(
            "the path `{path}` may hold no `;`: some backends read a path without its `;` \
             parameters, so requests with one are refused 400, never matched"
        ));
    }
    if is_ambiguous(path) {
        return Err(format!(
            "the path `{path}` has a `.` or `..` segment or a `\\`: requests with those are \
             refused, never matched"
        ));
    }
    if routing_path(path) != path {
        return Err(format!(
            "the path `{path}` is not as requests are matched: without `//` (write `{}`)",
            routing_path(path)
        ));
    }
    Ok((host, path.into()))
}

/// The host a route (or a `rewrite.<name>` rule's `host=`) is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostPattern {
    Any,
    /// Lower case, without port or trailing dot.
    Exact(Box<str>),
    /// `*.example.com`: `.example.com`, matched by every name that ends
    /// with it (`a.example.com`, `a.b.example.com`), not by
    /// `example.com` itself, as nginx's `server_name *.example.com`.
    Suffix(Box<str>),
}

impl HostPattern {
    /// As a route key writes it: none for a route of any host.
    pub(crate) fn server_name(&self) -> Option<Arc<str>> {
        match self {
            HostPattern::Any => None,
            named => Some(named.to_string().into()),
        }
    }

    /// How specific: the more, the earlier tried.
    pub(crate) fn rank(&self) -> (u8, usize) {
        match self {
            HostPattern::Exact(_) => (2, 0),
            HostPattern::Suffix(s) => (1, s.len()),
            HostPattern::Any => (0, 0),
        }
    }

    /// Whether a request's host (see [`host_of`]; `None`: it named none)
    /// is this one.
    pub(crate) fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Exact(name), Some(host)) => **name == *host,
            (HostPattern::Suffix(suffix), Some(host)) => {
                host.len() > suffix.len() && host.ends_with(&**suffix)
            }
            (_, None) => false,
        }
    }
}

impl fmt::Display for HostPattern {
    /// As written: nothing for any host.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Any => Ok(()),
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Suffix(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// A route's host as written: empty (any host), a name or address, or
/// `*.` and a name; lower-cased.
pub(crate) fn parse_host(host: &str) -> Result<HostPattern, String> {
    if host.is_empty() {
        return Ok(HostPattern::Any);
    }
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host),
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !name.starts_with('.')
        && !name.contains("..");
    let ipv6 = !wildcard && canonical_ipv6(name).is_some();
    if !valid && !ipv6 {
        return Err(format!(
            "`{host}` is no host: a name (`example.com`), `*.` and a name \
             (`*.example.com`, its subdomains), or nothing before the path (any host); \
             without a port"
        ));
    }
    let mut lower = String::with_capacity(name.len() + 1);
    if wildcard {
        lower.push('.');
    }
    lower.push_str(&host_of(name));
    Ok(match wildcard {
        true => HostPattern::Suffix(lower.into()),
        false => HostPattern::Exact(lower.into()),
    })
}

/// A request's host as routes compare it: lower case, without port or
/// trailing dot.
pub(crate) fn host_of(authority: &str) -> String {
    let mut host = String::with_capacity(authority.len());
    push_host_name(&mut host, authority);
    // `[0::1]` and `[::1]` are one address.
    canonical_ipv6(&host).unwrap_or(host)
}

/// `[address]` in its one spelling (RFC 5952), for a bracketed IPv6
/// address.
fn canonical_ipv6(host: &str) -> Option<String> {
    let inner = host.strip_prefix('[')?.strip_suffix(']')?;
    let address: std::net::Ipv6Addr = inner.parse().ok()?;
    Some(format!("[{address}]"))
}
