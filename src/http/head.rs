//! Request and response heads: finding where a head ends, parsing it with
//! httparse, and the checks RFC 9112 asks of a recipient before it trusts one.

use super::headers::Headers;
use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;

/// The hard ceiling on header fields in any head: httparse parses into a
/// fixed array of this many slots. Requests are held to the configured
/// `max_headers` (100 by default, as nginx and HAProxy), which may not
/// exceed it; responses from backends to this ceiling.
pub const MAX_HEADERS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    fn from_minor(minor: u8) -> Result<Self, HeadError> {
        match minor {
            0 => Ok(Version::Http10),
            1 => Ok(Version::Http11),
            _ => Err(HeadError::Version),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a head was refused. Each variant maps to the status a server answers
/// with (`status`); for upstream replies every variant means 502.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    #[error("head larger than {0} bytes")]
    TooLarge(usize),
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    #[error("request-target longer than {0} bytes")]
    UriTooLong(usize),
    #[error("bare LF line ending (CRLF required)")]
    BareLf,
    #[error("malformed head: {0}")]
    Malformed(&'static str),
    #[error("unsupported HTTP version")]
    Version,
    #[error("unsupported transfer coding")]
    UnsupportedCoding,
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl HeadError {
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge(_) | HeadError::TooManyHeaders(_) => 431,
            HeadError::UriTooLong(_) => 414,
            HeadError::Version => 505,
            HeadError::UnsupportedCoding => 501,
            HeadError::MethodNotAllowed => 405,
            HeadError::BareLf | HeadError::Malformed(_) => 400,
        }
    }
}

/// Looks for the empty line that ends a head in `buf`, starting the scan at
/// `from` (the caller passes how far an earlier call got, so a head that
/// trickles in byte by byte costs linear, not quadratic, time).
///
/// RFC 9112 §2.2 lets a recipient accept a bare LF as a line terminator; we
/// do not. A proxy that reads `\n` as a line end while the backend does not
/// (or the other way round) is how requests get smuggled, so a bare LF
/// anywhere in a head is an error. So is a CR before the CR of a line's
/// end (`\r\r\n`): it is never part of a valid head, and where the empty
/// line belongs, a head ended so would never be found complete, and its
/// client be told 408 when the head timeout passes instead of 400 at once.
///
/// Returns `Ok(Some(len))` with the length of the head including its final
/// CRLF CRLF, `Ok(None)` when more bytes are needed, and the offset to resume
/// from in `scanned`.
pub fn find_head_end(buf: &[u8], scanned: &mut usize) -> Result<Option<usize>, HeadError> {
    let mut i = *scanned;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let lf = i + off;
        if lf == 0 || buf[lf - 1] != b'\r' {
            return Err(HeadError::BareLf);
        }
        if lf >= 2 && buf[lf - 2] == b'\r' {
            return Err(HeadError::Malformed("bare CR"));
        }
        // An empty line: this LF ends "\r\n\r\n" (or the head is only "\r\n").
        if lf >= 3 && &buf[lf - 3..lf - 1] == b"\r\n" {
            *scanned = lf + 1;
            return Ok(Some(lf + 1));
        }
        i = lf + 1;
    }
    // Resume just before a trailing CR so "\r" + "\n" split across reads is seen.
    *scanned = buf.len().saturating_sub(1).max(i);
    Ok(None)
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request-target exactly as sent (origin-form, absolute-form or `*`).
    pub target: String,
    pub version: Version,
    pub headers: Headers,
}

impl RequestHead {
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Whether the client wants the connection kept open after this exchange
    /// (see `persists`).
    pub fn wants_keep_alive(&self) -> bool {
        persists(self.version, &self.headers)
    }

    /// The path and query of the target, also for absolute-form targets
    /// (whose empty path becomes "/", RFC 9112 §3.2.2).
    pub fn path_and_query(&self) -> Cow<'_, str> {
        path_and_query_of(&self.target)
    }

    /// Puts `path_and_query` (origin-form) in place of the target's path
    /// and query, an absolute-form target keeping its scheme and
    /// authority; returns the target it replaces.
    pub fn set_path_and_query(&mut self, path_and_query: &str) -> String {
        let origin = match split_absolute(&self.target) {
            Some((_, rest)) => &self.target[..self.target.len() - rest.len()],
            None => "",
        };
        let target = [origin, path_and_query].concat();
        std::mem::replace(&mut self.target, target)
    }

    /// The request-target sent to a backend: the path and query, or `*`
    /// for an OPTIONS about the whole server. RFC 9112 §3.2.4: "If a proxy
    /// receives an OPTIONS request with an absolute-form of request-target
    /// in which the URI has an empty path and no query component, then the
    /// last proxy on the request chain MUST send a request-target of "*"
    /// when it forwards the request to the indicated origin server." As
    /// `/` it would ask about one resource instead.
    pub fn origin_target(&self) -> Cow<'_, str> {
        match split_absolute(&self.target) {
            Some((_, "")) if self.method == "OPTIONS" => Cow::Borrowed("*"),
            _ => self.path_and_query(),
        }
    }

    /// The authority the request is for: the absolute-form target's, or Host.
    pub fn authority(&self) -> Option<&str> {
        match split_absolute(&self.target) {
            Some((authority, _)) => Some(authority),
            None => self.headers.get_str("host"),
        }
    }
}

/// RFC 9112 §9.3: "If the "close" connection option is present, the
/// connection will not persist after the current response; else, if the
/// received protocol is HTTP/1.1 (or later), the connection will persist
/// ...; else, if the received protocol is HTTP/1.0, the "keep-alive"
/// connection option is present ... the connection will persist". So
/// `close` wins over an HTTP/1.0 `keep-alive` in the same message, in
/// whatever order: a peer that sent both closes (a server "MUST NOT
/// process any further requests received on that connection", §9.6), and
/// one that reads `keep-alive` alone sends or answers what comes next on a
/// connection the other side has given up.
fn persists(version: Version, headers: &Headers) -> bool {
    !headers.has_token("connection", "close")
        && (version == Version::Http11 || headers.has_token("connection", "keep-alive"))
}

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

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub version: Version,
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
}

impl ResponseHead {
    pub fn new(status: u16) -> Self {
        ResponseHead {
            version: Version::Http11,
            status,
            reason: reason_phrase(status).to_string(),
            headers: Headers::new(),
        }
    }

    /// Whether the server lets the connection be reused after this response
    /// (see `persists`).
    pub fn allows_keep_alive(&self) -> bool {
        persists(self.version, &self.headers)
    }

    /// Appends the status line and fields, without the final empty line.
    pub fn write_start(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.version.as_str().as_bytes());
        out.push(b' ');
        push_status(out, self.status);
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        self.headers.write_to(out);
    }
}

fn push_status(out: &mut Vec<u8>, status: u16) {
    let digits = [
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ];
    out.extend_from_slice(&digits);
}

/// Limits applied while parsing a request head (the `max_*` keys of the
/// configuration; these defaults are theirs).
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// The whole head, request line to the empty line, in bytes (431).
    pub max_head_size: usize,
    /// Header fields (431); at most [`MAX_HEADERS`].
    pub max_headers: usize,
    /// The request-target, in bytes (414).
    pub max_uri_length: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_head_size: 16 * 1024,
            max_headers: 100,
            max_uri_length: 8 * 1024,
        }
    }
}

/// Parses a complete request head (as delimited by [`find_head_end`]) and
/// checks what RFC 9112 requires before the request may be forwarded.
pub fn parse_request(head: &[u8], limits: &RequestLimits) -> Result<RequestHead, HeadError> {
    if head.len() > limits.max_head_size {
        return Err(HeadError::TooLarge(limits.max_head_size));
    }
    // RFC 9112 §2.2: "A sender MUST NOT send whitespace between the
    // start-line and the first header field. A recipient that receives
    // whitespace between the start-line and the first header field MUST
    // either reject the message as invalid or ..." — we reject it (some
    // parsers take such a line for a field, others for a fold).
    // httparse does too; checking here keeps the rule independent of it.
    if let Some(lf) = head.iter().position(|&b| b == b'\n') {
        if matches!(head.get(lf + 1), Some(b' ' | b'\t')) {
            return Err(HeadError::Malformed("whitespace before the first field"));
        }
    }
    let max_headers = limits.max_headers.min(MAX_HEADERS);
    let mut storage = header_storage(head, max_headers);
    let mut req = httparse::Request::new(&mut storage);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders(max_headers)),
        Err(httparse::Error::Version) => {
            let line_end = head.iter().position(|&b| b == b'\r').unwrap_or(head.len());
            return match as_http11(head, line_end.saturating_sub(8)) {
                Some(patched) => parse_request(&patched, limits),
                None => Err(request_parse_error(httparse::Error::Version, head)),
            };
        }
        Err(e) => return Err(request_parse_error(e, head)),
    }
    if req.headers.len() > max_headers {
        return Err(HeadError::TooManyHeaders(max_headers));
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    let version = Version::from_minor(minor)?;
    if target.len() > limits.max_uri_length {
        return Err(HeadError::UriTooLong(limits.max_uri_length));
    }
    // RFC 9110 makes `delete` another method than DELETE; Django and
    // Flask upper-case it, and a route `if method DELETE` (or the refusal
    // of TRACE) would not see it: refused, as nginx refuses it.
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(HeadError::Malformed("a method in lower case"));
    }
    check_target(method, target)?;
    let headers = collect_headers(req.headers)?;

    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
    // code to any HTTP/1.1 request message that lacks a Host header field and
    // to any request message that contains more than one Host header field
    // line or a Host header field with an invalid field value."
    match headers.get_all("host").count() {
        0 if version == Version::Http10 => {}
        0 => return Err(HeadError::Malformed("missing Host")),
        1 => check_host(headers.get("host").unwrap_or_default())?,
        _ => return Err(HeadError::Malformed("more than one Host")),
    }

    Ok(RequestHead {
        method: method.to_string(),
        target: target.to_string(),
        version,
        headers,
    })
}

/// RFC 9110 §2.5: a message of a higher minor version of HTTP/1 is
/// processed as the highest one we speak, 1.1. Given where the version
/// sits in `head`, a copy saying `HTTP/1.1` there, if it says `HTTP/1.x`
/// with x above 1 (httparse knows only 1.0 and 1.1).
fn as_http11(head: &[u8], at: usize) -> Option<Vec<u8>> {
    let version = head.get(at..at + 8)?;
    if !(version.starts_with(b"HTTP/1.") && matches!(version[7], b'2'..=b'9')) {
        return None;
    }
    let mut patched = head.to_vec();
    patched[at + 7] = b'1';
    Some(patched)
}

fn request_parse_error(e: httparse::Error, head: &[u8]) -> HeadError {
    match e {
        // httparse says "bad version" both for "HTTP/2.0" (a version we do
        // not speak: 505) and for a request line with a space in its target
        // (garbage: 400).
        httparse::Error::Version if names_a_version(head) => HeadError::Version,
        httparse::Error::HeaderName => HeadError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HeadError::Malformed("invalid header value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
        _ => HeadError::Malformed("invalid request line"),
    }
}

/// Whether the request line ends in something shaped like `HTTP/x.y`.
fn names_a_version(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    matches!(parts.as_slice(), [_, _, v] if v.len() == 8 && v.starts_with(b"HTTP/") && v[5].is_ascii_digit() && v[6] == b'.' && v[7].is_ascii_digit())
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
fn check_target(method: &str, target: &str) -> Result<(), HeadError> {
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

/// The authority (of a valid Host) as one name per server (RFC 3986
/// §6.2.2, §6.2.3): host lower-cased, without the trailing dot of a fully
/// qualified name, and the port as a number, left out when it is HTTP's
/// default. The cache keys on it, so `example.com:80` is not a second copy
/// of `example.com`; and it is what backends are sent, so that the key is
/// what the backend answered for (nginx's `$host` is spelled the same
/// way), not a spelling a backend might treat otherwise.
pub fn push_canonical_authority(key: &mut String, authority: &str) {
    let (host, port) = split_port(authority);
    push_host(key, host);
    match port.parse::<u16>() {
        Ok(80) => {}
        Ok(n) => {
            let _ = write!(key, ":{n}");
        }
        // Empty; anything else was refused with the request.
        Err(_) if port.is_empty() => {}
        Err(_) => {
            key.push(':');
            key.push_str(port);
        }
    }
}

/// The host of a valid authority without its port, spelled as
/// [`push_canonical_authority`] spells it (an IPv6 literal keeps its
/// brackets): what nginx's `$host` holds, and what a redirect to another
/// scheme, whose port is that scheme's own, names.
pub fn push_host_name(out: &mut String, authority: &str) {
    push_host(out, split_port(authority).0);
}

/// A valid authority's host and port (empty when it has none, or only
/// its colon). A colon inside an IPv6 literal's brackets is not a port's.
fn split_port(authority: &str) -> (&str, &str) {
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port),
        _ => (authority, ""),
    }
}

/// Lower-cased, without the trailing dot of a fully qualified name.
fn push_host(out: &mut String, host: &str) {
    let host = host
        .strip_suffix('.')
        .filter(|h| !h.is_empty())
        .unwrap_or(host);
    out.extend(host.chars().map(|c| c.to_ascii_lowercase()));
}

/// RFC 9110 §7.2: Host = uri-host [ ":" port ], where uri-host is an
/// IP-literal in brackets or a name, and port a number up to 65535. No
/// userinfo, no path, nothing a backend could split differently from us.
/// Names are narrower than RFC 3986's reg-name: letters, digits, `-`, `_`
/// and dots between non-empty labels (a trailing one too), which is every
/// name DNS or a hosts file serves; `%`-escapes and sub-delims (`,;'=`...)
/// are refused, as a backend decoding or splitting on them would see
/// another host than the one the cache keyed on.
pub fn check_host(host: &[u8]) -> Result<(), HeadError> {
    let invalid = Err(HeadError::Malformed("invalid Host"));
    if host.is_empty() || host.len() > 255 {
        return invalid;
    }
    let (name, port) = if host[0] == b'[' {
        let Some(close) = host.iter().position(|&b| b == b']') else {
            return invalid;
        };
        // An IPv6 address (IPvFuture and zone ids are refused): `[1]` or
        // `[:::]` is no address a backend could be reached at.
        let literal = std::str::from_utf8(&host[1..close]).ok();
        let literal_ok = literal.is_some_and(|l| l.parse::<std::net::Ipv6Addr>().is_ok());
        if !literal_ok {
            return invalid;
        }
        match &host[close + 1..] {
            [] => (&host[..0], None),
            [b':', port @ ..] => (&host[..0], Some(port)),
            _ => return invalid,
        }
    } else {
        match host.iter().position(|&b| b == b':') {
            Some(colon) => (&host[..colon], Some(&host[colon + 1..])),
            None => (host, None),
        }
    };
    let labels = name.strip_suffix(b".").unwrap_or(name);
    let name_ok = host[0] == b'['
        || (labels
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && labels.split(|&b| b == b'.').all(|label| !label.is_empty()));
    let port_ok = port.is_none_or(|p| {
        p.len() <= 5
            && p.iter().all(u8::is_ascii_digit)
            && (p.is_empty() || p.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535)
    });
    if name_ok && port_ok {
        Ok(())
    } else {
        invalid
    }
}

/// Copies httparse's borrowed fields into an owned list, checking them.
///
/// RFC 9112 §5.1: "No whitespace is allowed between the field name and
/// colon. ... A server MUST reject, with a response status code of 400
/// (Bad Request), any received request message that contains whitespace
/// between a header field name and colon. A proxy MUST remove any such
/// whitespace from a response message before forwarding it downstream."
/// httparse refuses it in both (we answer a backend that sends it 502).
///
/// RFC 9112 §5.2: "A server that receives an obs-fold in a request message
/// that is not within a "message/http" container MUST either reject the
/// message by sending a 400 (Bad Request) ... or replace each received
/// obs-fold with one or more SP octets". We reject (httparse does, for
/// requests and, by default, for responses).
///
/// RFC 9110 §5.5: "Field values containing CR, LF, or NUL characters are
/// invalid and dangerous ... a recipient of CR, LF, or NUL within a field
/// value MUST either reject the message or replace each of those
/// characters with SP". We reject them, and every other control character
/// but HTAB, which field-value does not allow either.
fn collect_headers(raw: &[httparse::Header<'_>]) -> Result<Headers, HeadError> {
    let bytes = raw
        .iter()
        .map(|h| h.name.len() + h.value.len())
        .sum::<usize>();
    // Room for the fields a proxy adds (X-Forwarded-*, Via, framing).
    let mut headers = Headers::with_capacity(raw.len() + 6, bytes + 160);
    for h in raw {
        if h.name.is_empty() || !h.name.bytes().all(is_tchar) {
            return Err(HeadError::Malformed("invalid header name"));
        }
        // Every byte looked at, no early exit: the loop vectorizes, and
        // a valid value (nearly all) is read whole anyway.
        if h.value.iter().fold(false, |bad, &b| {
            bad | ((b < 0x20 && b != b'\t') || b == 0x7f)
        }) {
            return Err(HeadError::Malformed("control character in header value"));
        }
        headers.push(h.name, h.value);
    }
    Ok(headers)
}

/// RFC 9110 §5.6.2: tchar, the characters of a token (field names, methods).
pub fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// [`is_tchar`] as a table: every field name of every head is checked byte
/// by byte.
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

/// Room for httparse to put the fields of `head`: one slot per line (an
/// upper bound on the fields), at most `max`, on the heap. A fixed array of
/// `MAX_HEADERS` on the stack would be 8 KiB that every worker thread
/// touches once and then keeps resident while it idles.
fn header_storage(head: &[u8], max: usize) -> Vec<httparse::Header<'static>> {
    let lines = head.iter().filter(|&&b| b == b'\n').count();
    vec![httparse::EMPTY_HEADER; lines.min(max)]
}

/// Parses a complete response head from a backend.
pub fn parse_response(head: &[u8]) -> Result<ResponseHead, HeadError> {
    let mut storage = header_storage(head, MAX_HEADERS);
    let mut res = httparse::Response::new(&mut storage);
    match res.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders(MAX_HEADERS)),
        Err(httparse::Error::Version) => {
            return match as_http11(head, 0) {
                Some(patched) => parse_response(&patched),
                None => Err(HeadError::Version),
            }
        }
        Err(_) => return Err(HeadError::Malformed("unparsable response head")),
    }
    let (Some(minor), Some(status)) = (res.version, res.code) else {
        return Err(HeadError::Malformed("incomplete status line"));
    };
    // httparse takes exactly three digits. 600-999 are not HTTP's, but
    // applications use them among themselves, and RFC 9110 §15 has a
    // recipient treat them as a 5xx, not as garbage: they are passed on as
    // nginx and HAProxy pass them, never stored (`status_ever_stored`), and
    // never cost the backend its place in the rotation.
    if status < 100 {
        return Err(HeadError::Malformed("status code below 100"));
    }
    let reason = res.reason.unwrap_or("");
    if reason
        .bytes()
        .any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(HeadError::Malformed("control character in reason phrase"));
    }
    Ok(ResponseHead {
        version: Version::from_minor(minor)?,
        status,
        // An empty phrase stays empty for a status no registry names: a
        // backend's `599 ` says no more than that.
        reason: if reason.is_empty() {
            registered_reason(status).unwrap_or_default().to_string()
        } else {
            reason.to_string()
        },
        headers: collect_headers(res.headers)?,
    })
}

/// The field a response of `status` must carry (RFC 9110 §15.5.2,
/// §15.5.6, §15.5.8, §15.5.22), if any: an answer of the proxy's own
/// with that status would tell the client what to do, and not how.
pub fn required_field(status: u16) -> Option<&'static str> {
    match status {
        401 => Some("WWW-Authenticate"),
        405 => Some("Allow"),
        407 => Some("Proxy-Authenticate"),
        426 => Some("Upgrade"),
        _ => None,
    }
}

/// The standard reason phrase of a status code, for responses we make.
pub fn reason_phrase(status: u16) -> &'static str {
    registered_reason(status).unwrap_or("Unknown")
}

/// The reason phrase IANA's status code registry gives `status` (RFC 9110
/// §15 and the RFCs since), if any: what a backend's empty phrase is
/// filled in with, so a client is told no "Unknown" of a status it knows.
fn registered_reason(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_reason_of_a_registered_status_is_filled_in() {
        for (status, reason) in [(410, "Gone"), (510, "Not Extended"), (299, "")] {
            let head = format!("HTTP/1.1 {status} \r\n\r\n");
            assert_eq!(parse_response(head.as_bytes()).unwrap().reason, reason);
        }
    }

    #[test]
    fn tchar_is_exactly_rfc_9110s_token_characters() {
        let specials = b"!#$%&'*+-.^_`|~";
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || specials.contains(&b);
            assert_eq!(is_tchar(b), expected, "byte {b:#04x}");
        }
    }

    fn req(bytes: &[u8]) -> Result<RequestHead, HeadError> {
        let mut scanned = 0;
        let len = find_head_end(bytes, &mut scanned)?.expect("complete head");
        parse_request(&bytes[..len], &RequestLimits::default())
    }

    #[test]
    fn finds_the_end_across_split_reads() {
        let full = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
        let mut scanned = 0;
        for cut in 1..full.len() - 4 {
            scanned = scanned.min(cut);
            assert_eq!(
                find_head_end(&full[..cut], &mut scanned),
                Ok(None),
                "cut {cut}"
            );
        }
        assert_eq!(find_head_end(full, &mut scanned), Ok(Some(full.len() - 4)));
    }

    #[test]
    fn bare_lf_is_refused() {
        let mut s = 0;
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\nHost: a\n\n", &mut s),
            Err(HeadError::BareLf)
        );
        let mut s = 0;
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\nHost: a\n\r\n", &mut s),
            Err(HeadError::BareLf)
        );
    }

    #[test]
    fn a_cr_before_a_line_end_is_refused_where_the_head_would_end_too() {
        for head in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
            b"GET / HTTP/1.1\r\r\nHost: a\r\n\r\n",
        ] {
            let mut s = 0;
            assert_eq!(
                find_head_end(head, &mut s),
                Err(HeadError::Malformed("bare CR")),
                "{head:?}"
            );
        }
    }

    #[test]
    fn parses_a_request() {
        let r = req(b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n\r\n").unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/a?b=1");
        assert_eq!(r.version, Version::Http11);
        assert_eq!(r.headers.get_str("x-a"), Some("1"));
        assert!(r.wants_keep_alive());
    }

    #[test]
    fn close_wins_over_keep_alive_in_any_order() {
        for connection in [
            "Connection: keep-alive, close\r\n",
            "Connection: close, keep-alive\r\n",
            "Connection: keep-alive\r\nConnection: Close\r\n",
        ] {
            let r = req(format!("GET / HTTP/1.0\r\n{connection}\r\n").as_bytes()).unwrap();
            assert!(!r.wants_keep_alive(), "{connection:?}");
            let raw = format!("HTTP/1.0 200 OK\r\n{connection}\r\n");
            let r = parse_response(raw.as_bytes()).unwrap();
            assert!(!r.allows_keep_alive(), "{connection:?}");
        }
        let r = req(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(r.wants_keep_alive());
        let r = parse_response(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(r.allows_keep_alive());
        assert!(!req(b"GET / HTTP/1.0\r\n\r\n").unwrap().wants_keep_alive());
    }

    #[test]
    fn host_rules() {
        assert_eq!(
            req(b"GET / HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed("missing Host"))
        );
        assert!(req(b"GET / HTTP/1.0\r\n\r\n").is_ok());
        assert_eq!(
            req(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(HeadError::Malformed("more than one Host"))
        );
        assert_eq!(
            req(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            Err(HeadError::Malformed("invalid Host"))
        );
        assert_eq!(
            req(b"GET / HTTP/1.1\r\nHost: u@evil\r\n\r\n"),
            Err(HeadError::Malformed("invalid Host"))
        );
    }

    #[test]
    fn refuses_malformed_lines() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
            b"GET x HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(
                req(bad).map_err(|e| e.status()),
                Err(400),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            req(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n").map_err(|e| e.status()),
            Err(505)
        );
        assert_eq!(
            req(b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n").map_err(|e| e.status()),
            Err(405)
        );
        assert_eq!(
            req(b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n").map_err(|e| e.status()),
            Err(405)
        );
        assert!(req(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
    }

    #[test]
    fn absolute_form_targets() {
        let r = req(b"GET http://Example.com:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n").unwrap();
        assert_eq!(r.authority(), Some("Example.com:8080"));
        assert_eq!(r.path_and_query(), "/p?q");
        let r = req(b"GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r.path_and_query(), "/");
        let r = req(b"GET http://example.com?a=1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r.path_and_query(), "/?a=1");
        assert_eq!(r.origin_target(), "/?a=1");
        let r = req(b"OPTIONS http://example.com HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            (r.path_and_query(), r.origin_target()),
            ("/".into(), "*".into())
        );
        let r = req(b"OPTIONS http://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r.origin_target(), "/");
        let r = req(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r.origin_target(), "*");
    }

    #[test]
    fn a_new_path_and_query_keeps_an_absolute_target_s_scheme_and_authority() {
        let mut r = req(b"GET http://Example.com:8080/p?q HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r.set_path_and_query("/n?m"), "http://Example.com:8080/p?q");
        assert_eq!(r.target, "http://Example.com:8080/n?m");
        assert_eq!(r.authority(), Some("Example.com:8080"));
        let mut r = req(b"GET http://example.com?a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        r.set_path_and_query("/n");
        assert_eq!(r.target, "http://example.com/n");
        let mut r = req(b"GET /p?q HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r.set_path_and_query("/n"), "/p?q");
        assert_eq!((&*r.target, r.path_and_query()), ("/n", "/n".into()));
    }

    #[test]
    fn too_many_headers() {
        let mut h = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            h.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        h.extend_from_slice(b"\r\n");
        assert_eq!(req(&h), Err(HeadError::TooManyHeaders(100)));
    }

    fn status(bytes: &[u8]) -> Result<(), u16> {
        req(bytes).map(|_| ()).map_err(|e| e.status())
    }

    #[test]
    fn field_syntax_that_parsers_disagree_on_is_refused() {
        for bad in [
            // whitespace between name and colon (RFC 9112 §5.1)
            &b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n",
            // obs-fold (§5.2), also right after the request line (§2.2)
            b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\tfolded\r\n\r\n",
            b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
            b"GET / HTTP/1.1\r\n\tX: a\r\nHost: a\r\n\r\n",
            // control characters in names and values (RFC 9110 §5.5)
            b"GET / HTTP/1.1\r\nHost: a\r\nX\x00Y: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n: empty name\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-\xc3\xa9: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n",
            // the request line
            b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
            b" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GE\x00T / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"G{T / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET / http/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\rHost: a\r\n\r\n",
        ] {
            assert_eq!(status(bad), Err(400), "{:?}", String::from_utf8_lossy(bad));
        }
        // HTTP/0.9 and versions we do not speak
        for bad in [
            &b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/0.9\r\nHost: a\r\n\r\n",
            b"GET / HTTP/3.0\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(status(bad), Err(505), "{:?}", String::from_utf8_lossy(bad));
        }
        // RFC 9110 §2.5: a higher minor version is taken as 1.1.
        let r = req(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(r.version, Version::Http11);
        let r = parse_response(b"HTTP/1.9 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!((r.version, r.status), (Version::Http11, 200));
        assert_eq!(status(b"GET / HTTP/1.2 \r\nHost: a\r\n\r\n"), Err(400));
        // obs-text in values and leading/trailing whitespace are fine
        let r = req(b"GET / HTTP/1.1\r\nHost: a\r\nX: \t caf\xc3\xa9 \t\r\n\r\n").unwrap();
        assert_eq!(r.headers.get("x"), Some(&b"caf\xc3\xa9"[..]));
    }

    #[test]
    fn target_characters() {
        for good in [
            &b"GET /a/b%2Fc?x=1&y=%41;z@:!$'()*+,= HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /search?q[]=1|2^{x}`\\ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET //double HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /q?a=\"1\"&b=<2> HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET HTTP://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
            b"GET https://[::1]:8443/x HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n",
            // As browsers send them: a `%` that starts no escape.
            b"GET /search?q=100% HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a%zz?promo=50%off HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(status(good), Ok(()), "{:?}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET http://user@evil/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(status(bad), Err(400), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn host_values() {
        for good in [
            "a",
            "a.example",
            "a.example:8080",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:80",
            "[2001:DB8::1]:8080",
            "[::ffff:192.0.2.1]",
            "a:",
            "xn--caf-dma.example",
            "a_b",
            "a.",
            "A.Example.:8080",
            "a:65535",
            "a:0080",
        ] {
            assert_eq!(check_host(good.as_bytes()), Ok(()), "{good}");
        }
        for bad in [
            "",
            ":80",
            "a:b",
            "a:80:90",
            "a:123456",
            "a b",
            "a/b",
            "u@a",
            "[::1",
            "[]",
            "[::1]x",
            "[::g]",
            "[1]",
            "[:::]",
            "[1:2:3:4:5:6:7:8:9]",
            "[::1.2.3]",
            "a\\b",
            "a,b:x",
            "a,b",
            "a;b",
            "a'b",
            "a%00",
            "a%2fb",
            "a=b",
            "a~b",
            "a:99999",
            "a:65536",
            ".",
            "..",
            ".a",
            "a..b",
            "[::1]:65536",
        ] {
            assert!(check_host(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_names_lose_their_port_as_nginx_s_host() {
        for (authority, host) in [
            ("a.example", "a.example"),
            ("Shop.Example.:8080", "shop.example"),
            ("a.example:80", "a.example"),
            ("a:", "a"),
            ("127.0.0.1:8443", "127.0.0.1"),
            ("[::1]", "[::1]"),
            ("[2001:DB8::1]:8080", "[2001:db8::1]"),
            ("[::ffff:192.0.2.1]:80", "[::ffff:192.0.2.1]"),
        ] {
            assert_eq!(check_host(authority.as_bytes()), Ok(()), "{authority}");
            let mut out = String::from("https://");
            push_host_name(&mut out, authority);
            assert_eq!(out, format!("https://{host}"), "{authority}");
        }
        // The port is kept where one server is named, as the cache keys it.
        let mut key = String::new();
        push_canonical_authority(&mut key, "[2001:DB8::1]:8080");
        assert_eq!(key, "[2001:db8::1]:8080");
    }

    #[test]
    fn configured_limits() {
        let limits = RequestLimits {
            max_head_size: 64,
            max_headers: 2,
            max_uri_length: 8,
        };
        let parse = |b: &[u8]| {
            parse_request(b, &limits)
                .map(|_| ())
                .map_err(|e| e.status())
        };
        assert_eq!(
            parse(b"GET /1234567 HTTP/1.1\r\nHost: a\r\nA: 1\r\n\r\n"),
            Ok(())
        );
        assert_eq!(
            parse(b"GET /12345678 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(414)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"),
            Err(431)
        );
        let long = format!("GET / HTTP/1.1\r\nHost: a\r\nA: {}\r\n\r\n", "x".repeat(64));
        assert_eq!(parse(long.as_bytes()), Err(431));
    }

    #[test]
    fn parses_a_response() {
        let r = parse_response(b"HTTP/1.0 404 \r\nA: b\r\n\r\n").unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.reason, "Not Found");
        assert!(!r.allows_keep_alive());
        assert!(parse_response(b"HTTP/1.1 99 x\r\n\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
        for bad in [
            &b"HTTP/1.1 200 OK\r\nA : b\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nA: b\x00c\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 099 OK\r\n\r\n",
            b"HTTP/1.1 200 O\x01K\r\n\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for status in [600, 999] {
            let raw = format!("HTTP/1.1 {status} App Error\r\n\r\n");
            assert_eq!(parse_response(raw.as_bytes()).unwrap().status, status);
        }
        let mut out = Vec::new();
        ResponseHead::new(502).write_start(&mut out);
        assert_eq!(out, b"HTTP/1.1 502 Bad Gateway\r\n");
        // The redirects the proxy makes itself (redirect_to_https), and
        // a backend's that come without a phrase.
        let mut out = Vec::new();
        ResponseHead::new(308).write_start(&mut out);
        assert_eq!(out, b"HTTP/1.1 308 Permanent Redirect\r\n");
        let relayed = parse_response(b"HTTP/1.1 307 \r\n\r\n").unwrap();
        assert_eq!(relayed.reason, "Temporary Redirect");
    }
}
