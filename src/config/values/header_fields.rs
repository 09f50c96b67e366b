//! What the proxy writes in header fields: the `request_header.*` and
//! `response_header.*` names and values, and the tokens, cache names,
//! Host values and targeted cache-control fields it sends.

use crate::config::FieldFamily;
use crate::field_value::FieldValue;
use std::sync::Arc;

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
pub(in crate::config) fn parse_field_name(v: &str) -> Result<Arc<str>, String> {
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
pub(super) const REQUEST_OWNED: &[(&str, &str)] = &[
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
pub(in crate::config) const MAX_FIELD_EDITS: usize = 64;

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
pub(in crate::config) fn parse_field_edit(
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

/// A cookie name: a token (RFC 6265 §4.1.1).
pub(in crate::config) fn parse_cookie_name(v: &str) -> Result<Arc<str>, String> {
    if v.bytes().all(crate::http::head::is_tchar) {
        Ok(Arc::from(v))
    } else {
        Err(format!("`{}` is not a cookie name", v.escape_debug()))
    }
}

/// `sticky_cookie_attributes`: what the sticky cookie's `Set-Cookie`
/// says after `Path=/; HttpOnly` (which it always says), as HAProxy's
/// `secure`, `domain` and `attr` and nginx's `sticky cookie` parameters:
/// `Secure`, `SameSite=Strict|Lax|None`, `Max-Age=<duration>`,
/// `Domain=<name>` and `Partitioned`, `;`-separated in any case, each at
/// most once. Kept as the text to append (`; Secure; SameSite=Lax`).
pub(in crate::config) fn parse_cookie_attributes(v: &str) -> Result<Arc<str>, String> {
    let mut out = String::new();
    let mut seen: Vec<String> = Vec::new();
    for attribute in v.split(';').map(str::trim).filter(|a| !a.is_empty()) {
        let (name, value) = match attribute.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (attribute, None),
        };
        let lower = name.to_ascii_lowercase();
        if seen.contains(&lower) {
            return Err(format!("{name} is given twice"));
        }
        let written = match (lower.as_str(), value) {
            ("secure", None) => "Secure".to_string(),
            ("partitioned", None) => "Partitioned".to_string(),
            ("samesite", Some(v)) => match v.to_ascii_lowercase().as_str() {
                "strict" => "SameSite=Strict".to_string(),
                "lax" => "SameSite=Lax".to_string(),
                "none" => "SameSite=None".to_string(),
                _ => return Err(format!("SameSite is Strict, Lax or None, not `{v}`")),
            },
            ("max-age", Some(v)) => match super::parse_duration(v)?.as_secs() {
                0 => {
                    return Err(format!(
                        "Max-Age={v} is under a second: the cookie would be gone at once"
                    ))
                }
                seconds => format!("Max-Age={seconds}"),
            },
            ("domain", Some(v)) => {
                let name = v.strip_prefix('.').unwrap_or(v);
                // RFC 1035 §2.3.1 labels: letters, digits and inner hyphens,
                // 63 bytes at most.
                let fits = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
                let labels = name.split('.').all(|l| {
                    (1..=63).contains(&l.len())
                        && l.bytes().all(fits)
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
                if name.len() > 253 || !labels {
                    return Err(format!(
                        "Domain=`{}` is not a domain name",
                        v.escape_debug()
                    ));
                }
                format!("Domain={name}")
            }
            ("path" | "httponly", _) => {
                return Err(format!("{name}: the cookie always says `Path=/; HttpOnly`"))
            }
            ("expires", _) => {
                return Err("Expires: say how long with Max-Age (`Max-Age=7d`)".into())
            }
            _ => {
                return Err(format!(
                    "`{}` is not one of Secure, SameSite=Strict|Lax|None, Max-Age=<duration>, \
                     Domain=<name>, Partitioned",
                    attribute.escape_debug()
                ))
            }
        };
        seen.push(lower);
        out.push_str("; ");
        out.push_str(&written);
    }
    // Browsers drop a cookie that says either without Secure.
    let says = |what: &str| out.split("; ").any(|a| a == what);
    for needs_secure in ["SameSite=None", "Partitioned"] {
        if says(needs_secure) && !says("Secure") {
            return Err(format!(
                "{needs_secure} needs Secure: browsers drop such a cookie without it"
            ));
        }
    }
    Ok(Arc::from(out))
}

/// A device token for `Surrogate-Capability` and `Surrogate-Control`
/// (an HTTP token: no `=`, `;`, `,` or quote to break those fields).
pub(in crate::config) fn parse_device_token(v: &str) -> Result<Arc<str>, String> {
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
pub(in crate::config) fn parse_cache_name(v: &str) -> Result<Arc<str>, String> {
    match v.starts_with(|c: char| c.is_ascii_alphabetic()) {
        true => parse_device_token(v),
        false => Err(format!("`{}` must begin with a letter", v.escape_debug())),
    }
}

/// A Host field value for the proxy to send (RFC 9110 §7.2): what inverso
/// itself accepts from a client as Host, so nothing a backend could split
/// into another field or read as another host (a space, a control
/// character, `/`, `@`, a `%`-escape).
pub(in crate::config) fn parse_host(v: &str) -> Result<String, String> {
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
pub(in crate::config) fn parse_targeted_fields(v: &str) -> Result<Arc<[Box<str>]>, String> {
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
