//! A request head: what it says of its target and its connection, and
//! how one is parsed and checked within the configured limits.

use super::fields::{collect_headers, header_storage, FEW_HEADERS};
use super::host::check_host;
use super::target::{check_target, path_and_query_of, split_absolute};
use super::{as_http11, persists, HeadError, Version, MAX_HEADERS};
use crate::http::headers::Headers;
use std::borrow::Cow;
use std::mem::MaybeUninit;

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

/// Parses a complete request head (as delimited by [`find_head_end`](super::find_head_end)) and
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
    // Most requests have a few fields: a short list on the stack, left
    // uninitialized for httparse to fill, spares counting the head's
    // lines and an allocation; a longer head is parsed again into one as
    // long as it needs. Short, as each worker's stack keeps what it once
    // touched while it idles (see `header_storage`).
    let mut few = [const { MaybeUninit::uninit() }; FEW_HEADERS];
    let mut many;
    let mut req = httparse::Request::new(&mut []);
    let mut parsed = req.parse_with_uninit_headers(head, &mut few[..max_headers.min(FEW_HEADERS)]);
    if let Err(httparse::Error::TooManyHeaders) = parsed {
        if max_headers > FEW_HEADERS {
            many = header_storage(head, max_headers);
            req = httparse::Request::new(&mut many);
            parsed = req.parse(head);
        }
    }
    match parsed {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{find_head_end, parse_response};

    fn req(bytes: &[u8]) -> Result<RequestHead, HeadError> {
        let mut scanned = 0;
        let len = find_head_end(bytes, &mut scanned)?.expect("complete head");
        parse_request(&bytes[..len], &RequestLimits::default())
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
    fn a_head_with_more_fields_than_the_first_list_holds_is_parsed_whole() {
        let head_with = |n: usize| {
            let fields: String = (0..n).map(|i| format!("X-F{i}: {i}\r\n")).collect();
            format!("GET / HTTP/1.1\r\nHost: a\r\n{fields}\r\n").into_bytes()
        };
        let limits = |max_headers| RequestLimits {
            max_headers,
            ..RequestLimits::default()
        };
        for n in [FEW_HEADERS - 2, FEW_HEADERS - 1, FEW_HEADERS, 99] {
            let parsed = parse_request(&head_with(n), &limits(100)).unwrap();
            assert_eq!(parsed.headers.len(), n + 1, "{n}");
            assert!(parsed.headers.contains(&format!("x-f{}", n - 1)), "{n}");
        }
        assert_eq!(
            parse_request(&head_with(100), &limits(100)).err(),
            Some(HeadError::TooManyHeaders(100))
        );
        // A limit below the first list's length counts as well.
        assert!(parse_request(&head_with(9), &limits(10)).is_ok());
        assert_eq!(
            parse_request(&head_with(10), &limits(10)).err(),
            Some(HeadError::TooManyHeaders(10))
        );
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
        assert_eq!(status(b"GET / HTTP/1.x\r\nHost: a\r\n\r\n"), Err(400));
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
    fn a_head_of_exactly_the_limit_is_accepted() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let limits = |max_head_size| RequestLimits {
            max_head_size,
            ..RequestLimits::default()
        };
        assert!(parse_request(head, &limits(head.len())).is_ok());
        assert_eq!(
            parse_request(head, &limits(head.len() - 1)),
            Err(HeadError::TooLarge(head.len() - 1))
        );
    }

    #[test]
    fn is_head_is_the_head_method_only() {
        assert!(req(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .is_head());
        assert!(!req(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().is_head());
    }

    #[test]
    fn only_options_asks_about_the_whole_server() {
        let r = req(b"GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r.origin_target(), "/");
    }

    // The refusals are all 400s; the reason logged says which rule it was.
    #[test]
    fn malformed_heads_say_why() {
        for (bad, why) in [
            (
                &b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"[..],
                "whitespace before the first field",
            ),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", "invalid header name"),
            (
                b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
                "invalid header value",
            ),
            (b"GET / HTTP/1.1\rHost: a\r\n\r\n", "invalid line ending"),
            (
                b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
                "invalid request line",
            ),
            (
                b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
                "invalid request-target",
            ),
        ] {
            assert_eq!(
                parse_request(bad, &RequestLimits::default()),
                Err(HeadError::Malformed(why)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
