//! Parsers for configuration values: numbers, durations, sizes, booleans,
//! paths, address blocks and targets. Each says what is wrong in words;
//! the loader adds where (`proxy.conf:7: ...`).

use super::{Config, Endpoint, FieldFamily, Target};
use crate::field_value::FieldValue;
use crate::realip::Cidr;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Response fields the proxy writes itself, or that describe the bytes it
/// frames and serves from the cache, each with why: the operator may
/// neither set nor remove them (`response_header.*`), and no request ID
/// goes in one (with [`HTTP_FIELDS`]).
const RESPONSE_OWNED: &[(&str, &str)] = &[
    (
        "accept-ranges",
        "the cache writes it on the whole responses it serves, and answers ranges itself",
    ),
    ("age", "the cache writes it on every response it serves"),
    (
        "allow",
        "the proxy writes it on its own 405 and OPTIONS answers",
    ),
    (
        "content-encoding",
        "it says how the body's bytes are coded; changed or dropped, clients decode them wrong",
    ),
    (
        "content-range",
        "it frames a partial response (the cache writes its own on a 206 or 416)",
    ),
    (
        "content-type",
        "one value would give every response the same type (images and scripts as HTML, \
         which browsers then refuse under X-Content-Type-Options: nosniff), and the proxy \
         writes its own on error pages and multipart ranges",
    ),
    (
        "date",
        "the proxy writes it on its own answers and on backend answers without one, and \
         Age and freshness are counted from it",
    ),
    (
        "etag",
        "clients and caches in front send it back in their conditions, and the cache \
         answers them from the stored one",
    ),
    (
        "last-modified",
        "clients and caches in front send it back in their conditions, and the cache \
         answers them from the stored one",
    ),
    ("retry-after", "the proxy writes it on its own 429"),
    (
        "vary",
        "caches in front (and browsers) key the response by it; one they do not see \
         gives one client's variant to another",
    ),
    (
        "x-cache",
        "the cache writes it on every response relayed or served",
    ),
];

/// Fields with a meaning in HTTP (RFC 9110, 9111) besides the framing and
/// forwarding ones and [`RESPONSE_OWNED`]: the proxy writes the field it is
/// given on every request and response, and drops a backend's, so one of
/// these would break what it is for (a request ID in `Content-Range`
/// breaks ranges).
const HTTP_FIELDS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-language",
    "content-location",
    "cookie",
    "expect",
    "expires",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "location",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "server",
    "set-cookie",
    "user-agent",
    "www-authenticate",
    "strict-transport-security",
    "x-frame-options",
    "x-content-type-options",
    "x-xss-protection",
    "referrer-policy",
    "permissions-policy",
    "link",
    "refresh",
    "alt-svc",
    "origin",
    "forwarded",
    "timing-allow-origin",
    "upgrade-insecure-requests",
];

/// A header field name for the proxy to write itself: a token (RFC 9110
/// §5.6.2), and not one of the fields that frame a message, describe a
/// connection, the proxy already writes, or HTTP gives a meaning.
pub(super) fn parse_field_name(v: &str) -> Result<Arc<str>, String> {
    if v.is_empty() || !v.bytes().all(crate::http::head::is_tchar) {
        return Err(format!("`{}` is not a header field name", v.escape_debug()));
    }
    // Whole families too: every `Content-*` field describes the body, and
    // browsers act on the security and CORS ones. Read with `_` as `-`, as
    // CGI, WSGI and Rack backends read it (`Client_Cert` is `Client-Cert`).
    let read_as = v.to_ascii_lowercase().replace('_', "-");
    let families = ["content-", "access-control-", "cross-origin-", "sec-"];
    let owned = RESPONSE_OWNED.iter().map(|(name, _)| name);
    if HTTP_FIELDS
        .iter()
        .chain(owned)
        .any(|f| f.eq_ignore_ascii_case(&read_as))
        || families.iter().any(|f| read_as.starts_with(f))
        || crate::http::forward::is_proxy_owned(&read_as)
    {
        return Err(format!(
            "`{v}` is a field HTTP gives a meaning, or the proxy writes or frames messages \
             with; use a name of your own, e.g. X-Request-ID"
        ));
    }
    Ok(Arc::from(v))
}

/// Request fields the proxy writes itself for the backend, or that the
/// cache and the proxy read to know which answer is due, each with why:
/// the operator may neither set nor remove them (`request_header.*`).
/// The framing fields, `Host` and `Cookie` have rules of their own (see
/// [`parse_field_edit`]).
const REQUEST_OWNED: &[(&str, &str)] = &[
    (
        "x-forwarded-for",
        "the proxy appends the client's address to it on every request, for the backend \
         to trust (see real_ip_from): a value of the configuration's would name every \
         client alike, or none",
    ),
    (
        "x-real-ip",
        "the proxy writes the client's address in it on every request, for the backend \
         to trust: a value of the configuration's would name every client alike, or none",
    ),
    (
        "forwarded",
        "the proxy writes the client, the Host it asked for and its scheme in it on every \
         request, for the backend to trust: a value of the configuration's would name \
         every client alike, or none",
    ),
    (
        "client-cert",
        "the proxy writes the certificate a client showed on tls_port in it, and takes it \
         from no request (RFC 9440)",
    ),
    (
        "client-cert-chain",
        "the proxy writes the intermediates a client showed on tls_port in it, and takes it \
         from no request (RFC 9440)",
    ),
    (
        "x-forwarded-proto",
        "the proxy writes the client's scheme in it on every request (https only when a \
         real_ip_from proxy or a PROXY header says the client used TLS)",
    ),
    (
        "x-forwarded-host",
        "the proxy writes the Host the client asked for in it on every request \
         (request_header.Host changes the Host the backend gets, not this)",
    ),
    (
        "via",
        "the proxy appends its own entry to it (see `via`; `via = false` leaves it as it \
         came)",
    ),
    (
        "expect",
        "the proxy answers 100-continue itself and never forwards the field (another \
         expectation is answered 417)",
    ),
    (
        "surrogate-capability",
        "the cache announces itself in it for the origin's Surrogate-Control to target \
         (see surrogate_id)",
    ),
    (
        "max-forwards",
        "the proxy counts it down on an OPTIONS, and answers one that reaches 0 itself \
         (RFC 9110 §7.6.2): one value of the configuration's would let such a request go \
         round a loop of proxies for ever, and none would drop the count the client set",
    ),
    ("range", RANGES),
    ("if-range", RANGES),
    ("if-match", CONDITIONS),
    ("if-none-match", CONDITIONS),
    ("if-modified-since", CONDITIONS),
    ("if-unmodified-since", CONDITIONS),
];

const RANGES: &str = "the cache fetches whole responses and cuts a client's ranges from them, \
                      and relays the answer to a client's range as partial: changed or dropped, \
                      the backend would answer another part than the one the client is sent as";

const CONDITIONS: &str = "the cache answers a client's conditions itself and writes its own \
                          validators when it revalidates: changed or dropped, the backend would \
                          answer 304 or 412 where a whole response is expected, or the other way \
                          round";

/// The most keys of one `request_header.*` or `response_header.*` family
/// a configuration may hold: the fields go into every head, and each is
/// compared with every field a head carries.
pub(super) const MAX_FIELD_EDITS: usize = 64;

/// The longest value a `request_header.*` or `response_header.*` key may
/// have: a Content-Security-Policy runs to a few KiB, and servers and
/// proxies refuse heads not much larger (nginx's `proxy_buffer_size` is 4
/// or 8 KiB by default, its `large_client_header_buffers` take a line of
/// 8 KiB).
const MAX_FIELD_VALUE: usize = 8 * 1024;

/// `request_header.<name> = value` or `response_header.<name> = value`:
/// the value to set the field to, or `None` (an empty value) to remove it.
/// The name is a token, and not one the proxy frames messages with or
/// writes itself ([`REQUEST_OWNED`], [`RESPONSE_OWNED`]; the request's ID
/// field is checked where both keys are known); the value visible ASCII
/// with spaces and tabs inside (no control character to split the head,
/// no obs-text), at most 8 KiB.
///
/// `Set-Cookie` (on a response) and `Cookie` (on a request) may be
/// removed but not set: one value would stand for every client's own
/// cookies. `Host` may be set, to a Host value, but not removed: HTTP/1.1
/// requires it.
pub(super) fn parse_field_edit(
    family: FieldFamily,
    name: &str,
    value: &str,
) -> Result<Option<FieldValue>, String> {
    if !name.bytes().all(crate::http::head::is_tchar) {
        return Err(format!(
            "`{}` is not a header field name (letters, digits and !#$%&'*+-.^_`|~)",
            name.escape_debug()
        ));
    }
    // Backends that read `_` as `-` (CGI, WSGI, Rack) take X_Forwarded_For
    // for X-Forwarded-For: a request field is judged as they read it.
    let read_as = match family {
        FieldFamily::Request => name.replace('_', "-"),
        FieldFamily::Response => name.to_string(),
    };
    let called = if read_as == name {
        name.to_string()
    } else {
        format!("{name} (which backends that read `_` as `-` take for {read_as})")
    };
    if crate::http::forward::frames_or_hop_by_hop(&read_as) {
        return Err(format!(
            "{called} frames the message or describes the connection: the proxy writes its own"
        ));
    }
    let owned = match family {
        FieldFamily::Request => REQUEST_OWNED,
        FieldFamily::Response => RESPONSE_OWNED,
    };
    if let Some((_, why)) = owned
        .iter()
        .find(|(owned, _)| owned.eq_ignore_ascii_case(&read_as))
    {
        return Err(format!("{called} may be neither set nor removed: {why}"));
    }
    let is = |field: &str| name.eq_ignore_ascii_case(field);
    let host = family == FieldFamily::Request && is("host");
    if value.is_empty() {
        if host {
            return Err(
                "Host may be set but not removed: HTTP/1.1 requires it on every request \
                 (RFC 9112 §3.2), and backends answer a request without it 400"
                    .to_string(),
            );
        }
        return Ok(None);
    }
    let only_removed = match family {
        FieldFamily::Request => is("cookie").then_some((
            "Cookie",
            "one value would give every client the same cookies, one session for all \
             (a credential for the backend goes in Authorization or a field of its own)",
        )),
        FieldFamily::Response => is("set-cookie").then_some((
            "Set-Cookie",
            "one value would replace the application's own cookies, its sessions, on every \
             response",
        )),
    };
    if let Some((field, why)) = only_removed {
        return Err(format!(
            "{field} may be removed (an empty value) but not set: {why}"
        ));
    }
    if value.len() > MAX_FIELD_VALUE {
        return Err(format!(
            "the value is {} bytes; at most {MAX_FIELD_VALUE}",
            value.len()
        ));
    }
    if !value.bytes().all(crate::http::edits::is_value_byte) {
        return Err(format!(
            "`{}` holds a control character or a byte outside ASCII: a value is visible \
             ASCII, with spaces and tabs inside",
            value.escape_debug()
        ));
    }
    if host {
        if value.contains('$') {
            return Err(
                "Host cannot hold variables: the backend gets the Host the client asked for \
                 unless this sets another, fixed one"
                    .to_string(),
            );
        }
        // What a client's Host must be: nothing a backend could read as
        // another host or split into another field.
        return parse_host(value).map(|host| Some(FieldValue::fixed(&host)));
    }
    let parsed = FieldValue::parse(value, family)?;
    if parsed.text().is_none() && family == FieldFamily::Request && is("authorization") {
        return Err(
            "Authorization cannot hold variables: the cache takes a request whose \
             Authorization this sets for one without the client's credentials, and would \
             serve what the backend answered to values taken from one request to every other"
                .to_string(),
        );
    }
    Ok(Some(parsed))
}

/// `auth_request = <pool> <path>`: the pool each request is first asked
/// of, and the path of that GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRequest {
    /// As written.
    pub pool_name: Arc<str>,
    /// Its index in the pools, known once they are.
    pub pool: usize,
    /// Origin-form: `/` and visible ASCII.
    pub path: Box<str>,
}

impl AuthRequest {
    /// `<pool> <path>`; empty or `off`: none.
    pub(super) fn parse(v: &str) -> Result<Option<AuthRequest>, String> {
        if v.is_empty() || v.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let mut words = v.split_whitespace();
        let (Some(pool), Some(path), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "`{}`: give the pool that answers and the path it is asked (`sso /verify`)",
                v.escape_debug()
            ));
        };
        if pool == super::DEFAULT_POOL {
            return Err(
                "the service goes in a pool of its own (`pool.<name> = host:port`), which its \
                 sign-in pages are routed to and which is never asked about its own requests"
                    .into(),
            );
        }
        // `//x` reads as another host to some servers.
        if !path.starts_with('/')
            || path.starts_with("//")
            || !path.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!(
                "`{}` is not a path: it starts with one `/`, and holds visible ASCII only",
                path.escape_debug()
            ));
        }
        Ok(Some(AuthRequest {
            pool_name: pool.into(),
            pool: 0,
            path: path.into(),
        }))
    }
}

/// `auth_request_redirect`: a path (`/oauth2/start?rd=$request_uri`) or
/// an `http://` or `https://` URL (its scheme may be `$scheme`), with the
/// variables a request's field may hold; empty or `off`: none.
pub(super) fn parse_auth_redirect(v: &str) -> Result<Option<FieldValue>, String> {
    if v.is_empty() || v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    // The host is written, never a variable's: `$host` would let a client
    // name where it is sent (a `//` path too reads as a host to browsers).
    let after_scheme = ["http://", "https://", "$scheme://", "${scheme}://"]
        .iter()
        .find_map(|scheme| v.strip_prefix(scheme));
    let well_placed = match after_scheme {
        Some(rest) => rest
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'['),
        None => v.starts_with('/') && !v.starts_with("//"),
    };
    // The host ends before any variable: none can lengthen it, nor make
    // it a user name (`https://sso.example$x` with `@evil.example`); nor
    // can one start a path with another `/`, which browsers read as a host.
    let host_ends_written = after_scheme.map_or(!v.starts_with("/$"), |rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        !host.contains('$')
    });
    if !well_placed || !host_ends_written {
        return Err(format!(
            "`{}`: give a path (`/oauth2/start?rd=$request_uri`) or a URL with its host written \
             (`https://sso.example.com/login?rd=$scheme://$host$request_uri`)",
            v.escape_debug()
        ));
    }
    // Browsers read `/\` as `//`, another host; `#` would put what
    // follows in the fragment, which the service never sees.
    if !v
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'\\' && b != b'#')
    {
        return Err(format!(
            "`{}`: a URL holds visible ASCII only, without `\\` or `#` (write a space `%20`)",
            v.escape_debug()
        ));
    }
    FieldValue::parse(v, FieldFamily::Request).map(Some)
}

/// `auth_request_headers`: field names, each one a request may carry to
/// a backend from the auth answer: not one the proxy frames with or
/// writes for the backend to trust, nor `Host` or `Cookie`.
pub(super) fn parse_auth_fields(v: &str) -> Result<Arc<[Box<str>]>, String> {
    let mut names: Vec<Box<str>> = Vec::new();
    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let read_as = name.replace('_', "-");
        let refused = |why: &str| Err(format!("{name}: {why}"));
        if !name.bytes().all(crate::http::head::is_tchar) {
            return refused("not a header field name (letters, digits and !#$%&'*+-.^_`|~)");
        }
        if crate::http::forward::frames_or_hop_by_hop(&read_as) {
            return refused("frames the message or describes the connection");
        }
        if let Some((_, why)) =
            (REQUEST_OWNED.iter()).find(|(owned, _)| owned.eq_ignore_ascii_case(&read_as))
        {
            return refused(why);
        }
        if ["host", "cookie"].contains(&read_as.to_ascii_lowercase().as_str()) {
            return refused("the client's, which an answer on its access does not replace");
        }
        if (names.iter()).any(|n| crate::http::headers::read_alike(n.as_bytes(), name.as_bytes())) {
            return refused("named twice (`_` reads as `-`)");
        }
        names.push(name.into());
    }
    Ok(names.into())
}

/// A cookie name: a token (RFC 6265 §4.1.1).
pub(super) fn parse_cookie_name(v: &str) -> Result<Arc<str>, String> {
    if v.bytes().all(crate::http::head::is_tchar) {
        Ok(Arc::from(v))
    } else {
        Err(format!("`{}` is not a cookie name", v.escape_debug()))
    }
}

/// A device token for `Surrogate-Capability` and `Surrogate-Control`
/// (an HTTP token: no `=`, `;`, `,` or quote to break those fields).
pub(super) fn parse_device_token(v: &str) -> Result<Arc<str>, String> {
    if v.len() <= 64 && v.bytes().all(crate::http::head::is_tchar) {
        Ok(Arc::from(v))
    } else {
        Err(format!(
            "`{}` is not a device token (at most 64 letters, digits and !#$%&'*+-.^_`|~)",
            v.escape_debug()
        ))
    }
}

/// The cache's name in `Cache-Status`: a structured-field token (RFC
/// 8941 §3.3.4), which begins with a letter; kept to a device token's
/// characters after it.
pub(super) fn parse_cache_name(v: &str) -> Result<Arc<str>, String> {
    match v.starts_with(|c: char| c.is_ascii_alphabetic()) {
        true => parse_device_token(v),
        false => Err(format!("`{}` must begin with a letter", v.escape_debug())),
    }
}

/// A Host field value for the proxy to send (RFC 9110 §7.2): what inverso
/// itself accepts from a client as Host, so nothing a backend could split
/// into another field or read as another host (a space, a control
/// character, `/`, `@`, a `%`-escape).
pub(super) fn parse_host(v: &str) -> Result<String, String> {
    match crate::http::head::check_host(v.as_bytes()) {
        Ok(()) => Ok(v.to_string()),
        Err(_) => Err(format!(
            "`{}` is not a Host value: a name (letters, digits, `-`, `_`, dots) or an IP \
             address ([brackets] for IPv6), with an optional :port",
            v.escape_debug()
        )),
    }
}

/// The most targeted cache-control fields a configuration may list.
const MAX_TARGETED_FIELDS: usize = 8;

/// RFC 9213's target list: field names in priority order, each ending in
/// `-Cache-Control` as every targeted field's does (`CDN-Cache-Control`,
/// `Inverso-Cache-Control`). The suffix is required because the cache
/// hides the fields it lists from clients: a slip such as `Vary` or
/// `Content-Type` would otherwise vanish from every response. Kept lower
/// case.
pub(super) fn parse_targeted_fields(v: &str) -> Result<Arc<[Box<str>]>, String> {
    const SUFFIX: &str = "-cache-control";
    if v.is_empty() {
        return Ok(Arc::from([]));
    }
    let mut names: Vec<Box<str>> = Vec::new();
    for name in v.split(',').map(str::trim) {
        let lower = name.to_ascii_lowercase();
        let is_targeted = lower.len() > SUFFIX.len()
            && lower.len() <= 64
            && lower.ends_with(SUFFIX)
            && lower.bytes().all(crate::http::head::is_tchar);
        if !is_targeted {
            return Err(format!(
                "`{}` is not a targeted cache-control field: a field name ending in \
                 -Cache-Control (RFC 9213), such as CDN-Cache-Control, at most 64 characters",
                name.escape_debug()
            ));
        }
        if names.iter().any(|n| **n == *lower) {
            return Err(format!("`{name}` is listed twice"));
        }
        names.push(lower.into());
    }
    if names.len() > MAX_TARGETED_FIELDS {
        return Err(format!(
            "{} fields listed; at most {MAX_TARGETED_FIELDS}",
            names.len()
        ));
    }
    Ok(names.into())
}

/// An empty value is "not set"; anything else must parse.
pub(super) fn optional<T>(
    v: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if v.is_empty() {
        Ok(None)
    } else {
        parse(v).map(Some)
    }
}

/// A whole number within `range` (the message names the range either way:
/// a number too large for `T` fails to parse rather than to fit).
pub(super) fn parse_number<T>(v: &str, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let (start, end) = (range.start(), range.end());
    // Digits only (and a minus sign): `parse` would also take `+80`.
    let digits = v.strip_prefix('-').unwrap_or(v);
    let n: T = Some(v)
        .filter(|_| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("`{v}` is not a whole number ({start}..={end})"))?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is out of range ({start}..={end})"))
    }
}

/// `500ms`, `30s`, `5m`, `1h`; a bare number is seconds.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{v}` is not a duration (e.g. 500ms, 30s, 5m, 1h, 1d)"))?;
    let millis_per = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{v}` (use ms, s, m, h or d)"
            ))
        }
    };
    n.checked_mul(millis_per)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{v}` is too long"))
}

pub(super) fn parse_positive_duration(v: &str) -> Result<Duration, String> {
    match parse_duration(v)? {
        d if d.is_zero() => Err("must be greater than zero".to_string()),
        d => Ok(d),
    }
}

/// `max_fails`, the global key or a target's own: 0 (never taken out)
/// to 1,000,000.
pub(super) fn parse_max_fails(v: &str) -> Result<u32, String> {
    parse_number(v, 0..=1_000_000)
}

/// `fail_timeout`, the global key or a target's own: a duration, not 0
/// (a window of nothing would count no failure together, and a target
/// taken out would be back at once).
pub(super) fn parse_fail_timeout(v: &str) -> Result<Duration, String> {
    parse_positive_duration(v)
}

/// `512B`, `64KiB`, `64MiB`, `1GiB` (`K`, `M`, `G` are the same binary
/// units); a bare number is bytes.
pub fn parse_size(v: &str) -> Result<u64, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{v}` is not a size (e.g. 4096, 512KiB, 64MiB, 1GiB)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" | "mb" | "gb" => {
            return Err(format!(
                "`{v}`: use KiB, MiB or GiB (sizes are binary, 1 KiB = 1024 bytes)"
            ))
        }
        other => return Err(format!("unknown size unit `{other}` in `{v}`")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{v}` is too large"))
}

/// A rate in bytes a second: a size, `/s` after it or not (`512KiB/s`).
pub fn parse_rate(v: &str) -> Result<u64, String> {
    match v.strip_suffix("/s").unwrap_or(v) {
        "" => Err(format!("`{v}` is not a rate (e.g. 512KiB/s, 2MiB)")),
        size => parse_size(size),
    }
}

pub(super) fn parse_size_in(v: &str, range: std::ops::RangeInclusive<u64>) -> Result<u64, String> {
    let n = parse_size(v)?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{n} bytes is out of range ({}..={} bytes)",
            range.start(),
            range.end()
        ))
    }
}

pub(super) fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!(
            "`{v}` is not a boolean (true or false; also yes/no, on/off, 1/0)"
        )),
    }
}

pub(super) fn optional_path(v: &str) -> Option<PathBuf> {
    (!v.is_empty()).then(|| PathBuf::from(v))
}

/// `10.0.0.0/8, 192.168.1.10, ...`; empty = none.
/// `auth_basic`'s realm: what a browser shows when it asks for a user
/// and password, sent in `WWW-Authenticate` as a quoted string. Printable
/// ASCII without `"` and `\`, which would need escaping many browsers do
/// not undo. Empty or `off` (nginx's word): no sign-in.
pub(super) fn parse_realm(v: &str) -> Result<Option<Arc<str>>, String> {
    if v.is_empty() || v == "off" {
        return Ok(None);
    }
    if v.len() > 128 {
        return Err("a realm of more than 128 characters".into());
    }
    if let Some(c) = v
        .chars()
        .find(|&c| !(' '..='~').contains(&c) || c == '"' || c == '\\')
    {
        return Err(format!(
            "{c:?} in a realm: printable ASCII only, without `\"` and `\\` (it is sent in a header field)"
        ));
    }
    Ok(Some(v.into()))
}

/// The users of an htpasswd file (see [`crate::auth::Users`]); empty:
/// none.
pub(super) fn optional_users(v: &str) -> Result<Option<Arc<crate::auth::Users>>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let users = crate::auth::Users::load(v).map_err(|e| e.to_string())?;
    if users.costs_differ() {
        log::warn!(
            "{v}: the users' hashes differ in kind or cost: a wrong password comes back sooner \
             for those with cheaper ones than for a name not in the file, which tells that they \
             have an account; hash every password alike (htpasswd -B -C 10)"
        );
    }
    Ok(Some(Arc::new(users)))
}

pub(super) fn parse_cidrs(v: &str) -> Result<Vec<Cidr>, String> {
    if v.trim().is_empty() {
        return Ok(Vec::new());
    }
    v.split(',').map(|item| Cidr::parse(item.trim())).collect()
}

/// `host:port[ weight=N][ max_conns=N][ backup][ max_fails=N][ fail_timeout=D][ tls][ tls_name=NAME], ...`
/// (`max_fails` and `fail_timeout` override the global keys for that
/// target only), or `unix:PATH` with the same options but TLS; each
/// name is resolved once, here, so a
/// typo is a start-up error rather than a stream of 502s, and stands for a
/// target per address it gives (see [`addresses_of`] and [`Target::at`]).
pub(super) fn parse_targets(v: &str) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for item in v.split(',') {
        let mut words = item.split_whitespace();
        let Some(name) = words.next() else {
            if v.trim().is_empty() {
                break;
            }
            return Err("empty entry in the targets list".to_string());
        };
        let mut weight = None;
        let mut max_conns = None;
        let mut max_fails = None;
        let mut fail_timeout = None;
        let mut backup = false;
        let mut tls = false;
        let mut tls_name = None;
        let once = |key: &str| format!("target {name}: {key} given twice");
        let bad = |key: &str, m: String| format!("target {name}: {key}: {m}");
        for option in words {
            if option == "backup" {
                if backup {
                    return Err(once("backup"));
                }
                backup = true;
                continue;
            }
            if option == "tls" {
                if tls {
                    return Err(once("tls"));
                }
                tls = true;
                continue;
            }
            match option.split_once('=') {
                Some(("tls_name", _)) if tls_name.is_some() => return Err(once("tls_name")),
                Some(("tls_name", n)) => tls_name = Some(n),
                Some(("weight", _)) if weight.is_some() => return Err(once("weight")),
                Some(("weight", w)) => {
                    weight = Some(parse_number(w, 1..=10_000).map_err(|m| bad("weight", m))? as u32)
                }
                Some(("max_conns", _)) if max_conns.is_some() => return Err(once("max_conns")),
                Some(("max_conns", n)) => {
                    max_conns =
                        Some(parse_number(n, 1..=1_000_000).map_err(|m| bad("max_conns", m))?)
                }
                Some(("max_fails", _)) if max_fails.is_some() => return Err(once("max_fails")),
                Some(("max_fails", n)) => {
                    max_fails = Some(parse_max_fails(n).map_err(|m| bad("max_fails", m))?)
                }
                Some(("fail_timeout", _)) if fail_timeout.is_some() => {
                    return Err(once("fail_timeout"))
                }
                Some(("fail_timeout", d)) => {
                    fail_timeout = Some(parse_fail_timeout(d).map_err(|m| bad("fail_timeout", m))?)
                }
                _ => {
                    return Err(format!(
                        "target {name}: unknown option `{option}` (expected weight=N, \
                         max_conns=N or backup; for passive health, max_fails=N or \
                         fail_timeout=D; for TLS, tls and tls_name=NAME)"
                    ))
                }
            }
        }
        let tls = match (tls, tls_name) {
            (false, None) => None,
            (false, Some(_)) => {
                return Err(format!(
                    "target {name}: tls_name= is for a target spoken to over TLS: add `tls`"
                ))
            }
            (true, tls_name) => {
                let host = match written(name)? {
                    Written::Unix(_) => {
                        return Err(format!(
                            "target {name}: tls over a Unix socket is not supported (it stays \
                             on this machine: speak plain HTTP to it)"
                        ))
                    }
                    Written::Address(addr) => addr.ip().to_string(),
                    Written::Name { host, .. } => host.to_string(),
                };
                let name = crate::tls::backends::server_name(&host, tls_name)
                    .map_err(|m| format!("target {name}: tls_name: {m}"))?;
                Some(name)
            }
        };
        // As written; `at` gives it each address found.
        let as_written = Target {
            name: name.to_string(),
            addr: Endpoint::Tcp(SocketAddr::from(([0, 0, 0, 0], 0))),
            weight: weight.unwrap_or(1),
            backup,
            max_conns,
            max_fails,
            fail_timeout,
            tls,
        };
        let found = match written(name)? {
            // A path, not a name: nothing to look up.
            Written::Unix(path) => vec![Target {
                addr: Endpoint::Unix(path.to_path_buf()),
                ..as_written
            }],
            Written::Address(addr) => as_written.at(&[addr]),
            Written::Name { host, port } => {
                let found = lookup(host, port)
                    .map(addresses_of)
                    .map_err(|e| format!("target `{name}` does not resolve: {e}"))?;
                if found.left_out > 0 {
                    log::warn!("{}", found.cap_warning(name));
                }
                as_written.at(&found.used)
            }
        };
        for target in found {
            // By address: `127.0.0.1:80` and `localhost:80` are one backend.
            if let Some(twin) = targets.iter().find(|t: &&Target| t.addr == target.addr) {
                return Err(format!(
                    "target {name} is listed twice (as {}, both {}; use weight=N instead)",
                    twin.name, target.addr
                ));
            }
            targets.push(target);
        }
    }
    Ok(targets)
}

/// `check`'s account of the targets: each with its address and options,
/// and a name that gives several addresses said once, before its targets.
/// A target's `max_fails` and `fail_timeout` are said where they are not
/// the global keys' (those lines come before, with the other keys).
pub fn target_lines(config: &Config) -> Vec<String> {
    let targets = &config.targets[..];
    let mut lines = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let written = target.as_written();
        let first_of_several =
            written != target.name && !targets[..i].iter().any(|t| t.as_written() == written);
        if first_of_several {
            let count = targets.iter().filter(|t| t.as_written() == written).count();
            lines.push(format!(
                "# target {written} resolves to {count} addresses, each a target of its own:"
            ));
        }
        let mut options = format!("weight {}", target.weight);
        if let Some(n) = target.max_conns {
            options.push_str(&format!(", max_conns {n}"));
        }
        if let Some(name) = &target.tls {
            options.push_str(&format!(", tls for {}", name.to_str()));
        }
        if target.backup {
            options.push_str(", backup");
        }
        let max_fails = config.max_fails_of(target);
        if max_fails != config.max_fails {
            options.push_str(&format!(", max_fails {max_fails}"));
        }
        let fail_timeout = config.fail_timeout_of(target);
        if fail_timeout != config.fail_timeout {
            options.push_str(&format!(", fail_timeout {fail_timeout:?}"));
        }
        lines.push(format!(
            "# target {} -> {} ({options})",
            target.name, target.addr
        ));
    }
    lines
}

/// How a target is written: as an address, as a name for the system
/// resolver (the only kind re-resolved while the proxy runs, see
/// `resolve_interval`), or as a Unix socket's path (`unix:PATH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written<'a> {
    Address(SocketAddr),
    Name { host: &'a str, port: u16 },
    Unix(&'a Path),
}

/// The most addresses one name stands for: past it, the first
/// [`MAX_ADDRESSES_PER_NAME`] in sorted order are used (and a warning
/// says so), so that a name answering with a whole subnet does not
/// become thousands of targets, each with its health checker thread.
pub const MAX_ADDRESSES_PER_NAME: usize = 64;

/// The addresses a target as written stands for: see [`addresses_of`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addresses {
    /// Sorted, without duplicates, of one family; at most
    /// [`MAX_ADDRESSES_PER_NAME`].
    pub used: Vec<SocketAddr>,
    /// Addresses of that family past the cap, not used.
    pub left_out: usize,
}

impl Addresses {
    /// What to warn of when `left_out` is not 0.
    pub fn cap_warning(&self, name: &str) -> String {
        format!(
            "target {name} resolves to {} addresses; only the first {} (sorted) are used",
            self.used.len() + self.left_out,
            self.used.len()
        )
    }
}

/// The addresses of a resolver's answer that become targets: those of
/// the family of its first address (a dual-stack `localhost` gives `::1`
/// and `127.0.0.1`, a backend usually listens on one of them: two
/// targets, one refusing every connection, is nginx's known annoyance),
/// each once, sorted, so that the set does not depend on the order a DNS
/// server rotates its answers in, and at most [`MAX_ADDRESSES_PER_NAME`]
/// of them. The one rule for start-up, reloads and re-resolution alike.
pub fn addresses_of(answer: impl IntoIterator<Item = SocketAddr>) -> Addresses {
    let mut answer = answer.into_iter().peekable();
    let Some(family) = answer.peek().map(SocketAddr::is_ipv4) else {
        return Addresses::default();
    };
    let mut used: Vec<SocketAddr> = answer.filter(|a| a.is_ipv4() == family).collect();
    used.sort_unstable();
    used.dedup();
    let left_out = used.len().saturating_sub(MAX_ADDRESSES_PER_NAME);
    used.truncate(MAX_ADDRESSES_PER_NAME);
    Addresses { used, left_out }
}

/// Every address the system resolver gives for `host`, in its order
/// (getaddrinfo's, RFC 6724); never none. Blocks for as long as the
/// resolver takes.
pub fn lookup(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    let found: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    if found.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address returned",
        ));
    }
    Ok(found)
}

/// What a target as written in `targets` is: an address, a name and a
/// port, or a Unix socket's path; an error says what is wrong with it.
pub fn written(name: &str) -> Result<Written<'_>, String> {
    // Before the scheme check: `unix:///run/app.sock` (Docker's spelling)
    // is the path `///run/app.sock`, which is `/run/app.sock`.
    if let Some(path) = name.strip_prefix("unix:") {
        return unix_path(path).map(Written::Unix);
    }
    if let Some((scheme, rest)) = name.split_once("://") {
        let rest = rest.trim_end_matches('/');
        let hint = match scheme.to_ascii_lowercase().as_str() {
            "http" => format!(" (`{rest}`)"),
            "https" if rest.ends_with(']') || !rest.contains(':') => {
                format!(", and `tls` for HTTPS (`{rest}:443 tls`)")
            }
            "https" => format!(", and `tls` for HTTPS (`{rest} tls`)"),
            _ => String::new(),
        };
        return Err(format!(
            "target `{name}`: write host:port, without a scheme{hint}"
        ));
    }
    // Each address of a name giving several is called `name@address`
    // (see `Target::as_written`); no host has an `@` in it.
    if name.contains('@') {
        return Err(format!(
            "target `{name}`: `@` has no place in host:port (write a name, or one address)"
        ));
    }
    // `[::1]`: its last colon is the address's, not a port's.
    let (host, port) = (name.rsplit_once(':'))
        .filter(|(_, port)| !port.ends_with(']'))
        .ok_or_else(|| format!("target `{name}` needs a port (host:port)"))?;
    if host.is_empty() {
        return Err(format!("target `{name}` has no host"));
    }
    let port = parse_number(port, 1..=65535).map_err(|m| format!("target `{name}`: port {m}"))?;
    let port = port as u16;
    // Brackets are for IPv6 addresses (RFC 3986 §3.2.2), and an IPv6
    // address needs them: `::1:80` could be an address without a port.
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .and_then(|ip| ip.parse::<std::net::Ipv6Addr>().ok())
            .map(|ip| Written::Address(SocketAddr::new(ip.into(), port)))
            .ok_or_else(|| {
                format!("target `{name}`: `{host}` is not an IPv6 address in brackets")
            });
    }
    if host.contains(':') {
        return Err(format!(
            "target `{name}`: an IPv6 address goes in brackets, as `[{host}]:{port}`"
        ));
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(Written::Address(SocketAddr::new(ip, port))),
        Err(_) => Ok(Written::Name { host, port }),
    }
}

/// The longest path a Unix socket may be reached at: `sun_path` of
/// `sockaddr_un` less its terminating NUL (107 bytes on Linux, 103 on
/// the BSDs and macOS). A longer one cannot be connected to at all.
pub fn max_unix_path() -> usize {
    // SAFETY: `sockaddr_un` is plain integers and arrays of them, for
    // which all-zero is a valid value.
    let addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_path.len() - 1
}

/// The path of a `unix:PATH` target: not empty, no NUL byte (the kernel
/// would end it there, and connect to another socket) nor other control
/// character, and short enough for `sockaddr_un`. Whether a socket is
/// there is not asked: a backend may well start after the proxy, and
/// until it does the target fails as a refused TCP connection does.
fn unix_path(path: &str) -> Result<&Path, String> {
    let name = format!("unix:{path}");
    let name = name.escape_debug();
    if path.is_empty() {
        return Err(format!(
            "target `{name}` has no path (write unix:/run/app.sock)"
        ));
    }
    if path.contains('\0') {
        return Err(format!("target `{name}`: a path holds no NUL byte"));
    }
    // The name goes as it is into the access log's `upstream=`, the
    // state file and `check`'s lines, where one would garble the line.
    if path.chars().any(char::is_control) {
        return Err(format!(
            "target `{name}`: the path holds a control character"
        ));
    }
    let max = max_unix_path();
    if path.len() > max {
        return Err(format!(
            "target `{name}`: the path is {} bytes, and a Unix socket's path is at most {max}",
            path.len()
        ));
    }
    Ok(Path::new(path))
}

/// `200, 204, 300-399`: the statuses a health probe passes with, each one
/// or an inclusive range, from 100 to 599; empty: none listed.
pub(super) fn parse_status_ranges(v: &str) -> Result<Vec<(u16, u16)>, String> {
    let status = |s: &str| {
        parse_number::<u16>(s.trim(), 100..=599)
            .map_err(|_| format!("`{s}` is not a status (100 to 599) in `{v}`"))
    };
    let mut ranges = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let range = match item.split_once('-') {
            Some((low, high)) => (status(low)?, status(high)?),
            None => (status(item)?, status(item)?),
        };
        if range.0 > range.1 {
            return Err(format!("`{item}` is a range from high to low"));
        }
        ranges.push(range);
    }
    if ranges.len() > 32 {
        return Err(format!(
            "{} statuses or ranges listed; at most 32",
            ranges.len()
        ));
    }
    Ok(ranges)
}

/// The text a health probe's body must hold: printable (a `#` cannot be
/// written, it starts a comment), at most 256 bytes; empty: none.
pub(super) fn parse_expected_body(v: &str) -> Result<Option<std::sync::Arc<str>>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > 256 || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!(
            "`{}` is not printable text of at most 256 bytes",
            v.escape_default()
        ));
    }
    Ok(Some(v.into()))
}

/// A port, or none when empty (a listener that is off).
pub(super) fn optional_port(v: &str) -> Result<Option<u16>, String> {
    optional(v, |v| parse_number(v, 0..=u16::MAX))
}

/// `tls_certificates`: the files as written, and the TLS settings made of
/// what they hold (none when empty).
pub(super) fn parse_certificates(
    v: &str,
) -> Result<
    (
        Vec<crate::tls::CertificateFiles>,
        Option<Arc<crate::tls::Certificates>>,
    ),
    String,
> {
    let files = certificate_entries(v)?;
    if files.is_empty() {
        return Ok((files, None));
    }
    let certificates = crate::tls::Certificates::load(&files).map_err(|e| e.to_string())?;
    Ok((files, Some(Arc::new(certificates))))
}

/// `backend_tls_certificate`: one entry as `tls_certificates` writes
/// them, read when the settings for backends are made.
pub(super) fn backend_certificate(v: &str) -> Result<Option<crate::tls::CertificateFiles>, String> {
    let mut files = certificate_entries(v)?;
    if files.len() > 1 {
        return Err("one certificate is shown to backends, not a list".to_string());
    }
    Ok(files.pop())
}

/// `<chain.pem>[ key=<key.pem>], ...`, as written.
fn certificate_entries(v: &str) -> Result<Vec<crate::tls::CertificateFiles>, String> {
    let mut files = Vec::new();
    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut words = entry.split_whitespace();
        let chain = words.next().unwrap_or_default();
        let mut key = None;
        for word in words {
            match word.strip_prefix("key=") {
                Some(path) if !path.is_empty() && key.is_none() => key = Some(PathBuf::from(path)),
                Some(_) if key.is_some() => return Err(format!("`{entry}`: `key=` given twice")),
                _ => {
                    return Err(format!(
                        "`{entry}`: unknown option `{word}`: an entry is a PEM file, then \
                         `key=<file>` when the private key is in another"
                    ))
                }
            }
        }
        files.push(crate::tls::CertificateFiles {
            chain: PathBuf::from(chain),
            key,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn an_auth_redirect_is_a_path_or_a_url_whose_host_no_variable_touches() {
        for good in [
            "/oauth2/start?rd=$request_uri",
            "/login",
            "https://sso.example.com/login?rd=$scheme://$host$request_uri",
            "$scheme://sso.example.com?rd=$request_uri",
            "http://[::1]:8080/x",
        ] {
            let parsed = parse_auth_redirect(good).unwrap().unwrap();
            assert_eq!(parsed.source(), good);
        }
        assert_eq!(parse_auth_redirect("").unwrap(), None);
        assert_eq!(parse_auth_redirect("off").unwrap(), None);
        for bad in [
            "login",
            "//evil.example/",
            "/$request_uri",
            "https://sso.example$http_x_to/login",
            "https://$host/login",
            "https:///login",
            "ftp://sso.example/",
            "/log in",
            "/\\$host",
            "/\\x",
            "/login#x?rd=$request_uri",
            "/login\u{e9}",
            "/login?rd=$status",
            "/login?rd=$nonsense",
        ] {
            assert!(parse_auth_redirect(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_realm_is_printable_ascii_without_quotes_and_off_is_none() {
        assert_eq!(
            parse_realm("Staff only").unwrap().as_deref(),
            Some("Staff only")
        );
        assert_eq!(parse_realm("").unwrap(), None);
        assert_eq!(parse_realm("off").unwrap(), None);
        for bad in ["a\"b", "a\\b", "caf\u{e9}", "a\tb", &"x".repeat(129)] {
            assert!(parse_realm(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_the_family_of_the_first_answer_is_used() {
        // A dual-stack localhost: the backend listens on one of the two.
        let found = addresses_of(addrs(&["[::1]:3000", "127.0.0.1:3000"]));
        assert_eq!(found.used, addrs(&["[::1]:3000"]));
        let found = addresses_of(addrs(&["127.0.0.1:3000", "[::1]:3000", "127.0.0.2:3000"]));
        assert_eq!(found.used, addrs(&["127.0.0.1:3000", "127.0.0.2:3000"]));
        assert_eq!(found.left_out, 0);
    }

    #[test]
    fn addresses_are_sorted_and_each_used_once() {
        let a = addresses_of(addrs(&[
            "10.0.0.7:80",
            "10.0.0.5:80",
            "10.0.0.7:80",
            "10.0.0.6:80",
        ]));
        let b = addresses_of(addrs(&["10.0.0.6:80", "10.0.0.7:80", "10.0.0.5:80"]));
        assert_eq!(
            a.used,
            addrs(&["10.0.0.5:80", "10.0.0.6:80", "10.0.0.7:80"])
        );
        assert_eq!(a, b, "the order of the answer does not matter");
        assert_eq!(addresses_of([]), Addresses::default());
    }

    #[test]
    fn a_name_gives_at_most_the_first_addresses_in_sorted_order() {
        // Given from the highest down, so the first are not the first given.
        let answer: Vec<SocketAddr> = (0..100u8)
            .rev()
            .map(|i| SocketAddr::from(([10, 0, 0, i], 80)))
            .collect();
        let found = addresses_of(answer);
        assert_eq!(found.used.len(), MAX_ADDRESSES_PER_NAME);
        assert_eq!(found.left_out, 100 - MAX_ADDRESSES_PER_NAME);
        assert_eq!(found.used[0], SocketAddr::from(([10, 0, 0, 0], 80)));
        assert_eq!(
            found.used[MAX_ADDRESSES_PER_NAME - 1],
            SocketAddr::from(([10, 0, 0, MAX_ADDRESSES_PER_NAME as u8 - 1], 80))
        );
        assert_eq!(
            found.cap_warning("app:80"),
            "target app:80 resolves to 100 addresses; only the first 64 (sorted) are used"
        );
        let exactly = addresses_of((0..64u8).map(|i| SocketAddr::from(([10, 0, 0, i], 80))));
        assert_eq!((exactly.used.len(), exactly.left_out), (64, 0));
    }

    fn written_as(name: &str) -> Target {
        Target {
            name: name.into(),
            addr: Endpoint::Tcp(SocketAddr::from(([0, 0, 0, 0], 0))),
            weight: 3,
            backup: true,
            max_conns: Some(7),
            max_fails: None,
            fail_timeout: None,
            tls: None,
        }
    }

    #[test]
    fn a_name_giving_one_address_is_the_target_it_always_was() {
        let [one] = &written_as("app:8000").at(&addrs(&["10.0.0.5:8000"]))[..] else {
            panic!("one target");
        };
        assert_eq!(one.name, "app:8000");
        assert_eq!(one.as_written(), "app:8000");
        assert_eq!(one.addr.tcp(), "10.0.0.5:8000".parse().ok());
        assert_eq!((one.weight, one.backup, one.max_conns), (3, true, Some(7)));
        // The sticky cookie hashes the name: as before for such a target.
        assert_eq!(
            crate::upstream::sticky::id_of(&one.name),
            crate::upstream::sticky::id_of("app:8000")
        );
    }

    #[test]
    fn each_address_of_a_name_giving_several_is_a_target_named_by_it() {
        let several = addrs(&["10.0.0.5:8000", "[fd00::6]:8000"]);
        let targets = written_as("app:8000").at(&several);
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["app:8000@10.0.0.5:8000", "app:8000@[fd00::6]:8000"]);
        for (t, addr) in targets.iter().zip(&several) {
            assert_eq!(t.addr, Endpoint::Tcp(*addr));
            assert_eq!(t.as_written(), "app:8000");
            assert_eq!((t.weight, t.backup, t.max_conns), (3, true, Some(7)));
            // Spread again from one of its own targets: the same.
            assert_eq!(t.at(&several), targets);
        }
        // An address keeps its name whatever else the name gives.
        let more = written_as("app:8000").at(&addrs(&["10.0.0.4:8000", "10.0.0.5:8000"]));
        assert_eq!(more[1].name, targets[0].name);
    }

    #[test]
    fn check_lists_each_address_of_a_name_under_the_name() {
        let mut targets = vec![Target::new("10.0.0.1:80", "10.0.0.1:80".parse().unwrap())];
        targets.extend(written_as("app:80").at(&addrs(&["10.0.0.5:80", "10.0.0.6:80"])));
        targets.extend(written_as("db:80").at(&addrs(&["10.0.0.9:80"])));
        assert_eq!(
            target_lines(&Config::with_targets(targets)),
            [
                "# target 10.0.0.1:80 -> 10.0.0.1:80 (weight 1)",
                "# target app:80 resolves to 2 addresses, each a target of its own:",
                "# target app:80@10.0.0.5:80 -> 10.0.0.5:80 (weight 3, max_conns 7, backup)",
                "# target app:80@10.0.0.6:80 -> 10.0.0.6:80 (weight 3, max_conns 7, backup)",
                "# target db:80 -> 10.0.0.9:80 (weight 3, max_conns 7, backup)",
            ]
        );
    }

    #[test]
    fn a_unix_target_is_its_path_with_the_options_of_any_target() {
        let targets = parse_targets(
            "unix:/run/app.sock weight=2 max_conns=4 backup max_fails=3 fail_timeout=30s, \
             unix:run/app@1.sock, 10.0.0.5:8000",
        )
        .unwrap();
        let [app, relative, tcp] = &targets[..] else {
            panic!("three targets: {targets:?}");
        };
        assert_eq!(app.name, "unix:/run/app.sock");
        assert_eq!(app.as_written(), "unix:/run/app.sock");
        assert_eq!(app.addr, Endpoint::Unix("/run/app.sock".into()));
        assert_eq!(app.addr.to_string(), "unix:/run/app.sock");
        assert_eq!(app.addr.tcp(), None);
        assert_eq!((app.weight, app.max_conns, app.backup), (2, Some(4), true));
        assert_eq!(
            (app.max_fails, app.fail_timeout),
            (Some(3), Some(Duration::from_secs(30)))
        );
        // Relative, from the working directory; an `@` in a path is no
        // `name@address`.
        assert_eq!(relative.addr, Endpoint::Unix("run/app@1.sock".into()));
        assert_eq!(relative.as_written(), "unix:run/app@1.sock");
        assert_eq!(tcp.addr, Endpoint::Tcp("10.0.0.5:8000".parse().unwrap()));
        assert_eq!(
            written("unix:/run/app.sock"),
            Ok(Written::Unix(Path::new("/run/app.sock")))
        );
        // Built for tests and embedders, named as `targets` names it.
        assert_eq!(
            parse_targets("unix:/run/app.sock").unwrap(),
            [Target::unix("/run/app.sock")]
        );
    }

    #[test]
    fn one_socket_is_one_target_however_its_path_is_spelled() {
        for twice in [
            "unix:/run/app.sock, unix:/run//app.sock",
            "unix:/run/app.sock, unix:///run/./app.sock",
        ] {
            let e = parse_targets(twice).unwrap_err();
            assert!(e.contains("listed twice"), "{twice}: {e}");
        }
        assert_eq!(
            parse_targets("unix:/run/a.sock, unix:/run/b.sock")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_unix_path_that_cannot_be_connected_to_is_refused() {
        let max = max_unix_path();
        if cfg!(target_os = "linux") {
            assert_eq!(max, 107);
        }
        let longest = format!("/{}", "s".repeat(max - 1));
        assert_eq!(parse_targets(&format!("unix:{longest}")).unwrap().len(), 1);
        for (bad, says) in [
            ("unix:", "has no path"),
            ("unix: weight=2", "has no path"),
            ("unix:/run/a\0b.sock", "NUL"),
            ("unix:/run/a\u{1}b.sock", "control character"),
            (&format!("unix:{longest}s"), &format!("at most {max}")),
        ] {
            let e = parse_targets(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
            assert!(!e.contains('\0'), "{bad:?}: {e}");
        }
    }

    #[test]
    fn check_lists_a_unix_target_with_its_path() {
        let targets = parse_targets("unix:/run/app.sock max_conns=8, 10.0.0.1:80").unwrap();
        assert_eq!(
            target_lines(&Config::with_targets(targets)),
            [
                "# target unix:/run/app.sock -> unix:/run/app.sock (weight 1, max_conns 8)",
                "# target 10.0.0.1:80 -> 10.0.0.1:80 (weight 1)",
            ]
        );
    }

    #[test]
    fn a_target_is_written_without_an_at_sign() {
        for name in ["app:8000@10.0.0.5:8000", "user@app:8000"] {
            let e = written(name).unwrap_err();
            assert!(e.contains("`@`"), "{e}");
        }
    }
}
