//! A response head: one parsed from a backend, or one the proxy makes,
//! and the reason phrases of the statuses.

use super::fields::{collect_headers, header_storage, FEW_HEADERS};
use super::{as_http11, persists, HeadError, Version, MAX_HEADERS};
use crate::http::headers::Headers;

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

/// Parses a complete response head from a backend.
pub fn parse_response(head: &[u8]) -> Result<ResponseHead, HeadError> {
    // Most answers have a few fields: a list of as many on the stack
    // spares counting the head's lines and an allocation, and a longer
    // head is parsed again into one as long as it needs.
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    let mut many;
    let mut res = httparse::Response::new(&mut few);
    let mut parsed = res.parse(head);
    if let Err(httparse::Error::TooManyHeaders) = parsed {
        many = header_storage(head, MAX_HEADERS);
        res = httparse::Response::new(&mut many);
        parsed = res.parse(head);
    }
    match parsed {
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
    fn a_head_with_more_fields_than_the_first_list_holds_is_parsed_whole() {
        let head_with = |n: usize| {
            let fields: String = (0..n).map(|i| format!("X-F{i}: {i}\r\n")).collect();
            format!("HTTP/1.1 200 OK\r\n{fields}\r\n").into_bytes()
        };
        for n in [
            0,
            FEW_HEADERS - 1,
            FEW_HEADERS,
            FEW_HEADERS + 1,
            MAX_HEADERS,
        ] {
            let parsed = parse_response(&head_with(n)).unwrap();
            assert_eq!(parsed.headers.len(), n);
            if n > 0 {
                let last = format!("x-f{}", n - 1);
                assert_eq!(parsed.headers.get_str(&last), Some(&*(n - 1).to_string()));
            }
        }
        assert_eq!(
            parse_response(&head_with(MAX_HEADERS + 1)).err(),
            Some(HeadError::TooManyHeaders(MAX_HEADERS))
        );
    }

    #[test]
    fn an_empty_reason_of_a_registered_status_is_filled_in() {
        for (status, reason) in [(410, "Gone"), (510, "Not Extended"), (299, "")] {
            let head = format!("HTTP/1.1 {status} \r\n\r\n");
            assert_eq!(parse_response(head.as_bytes()).unwrap().reason, reason);
        }
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

    #[test]
    fn status_100_and_a_tab_in_the_reason_are_accepted() {
        let r = parse_response(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
        assert_eq!(r.status, 100);
        let r = parse_response(b"HTTP/1.1 200 A\tB\r\n\r\n").unwrap();
        assert_eq!(r.reason, "A\tB");
    }
}
