//! Request and response heads: finding where a head ends, parsing it with
//! httparse, and the checks RFC 9112 asks of a recipient before it trusts one.
//!
//! # Layout
//! - `request`: a request head ([`RequestHead`]) parsed within its limits
//!   ([`parse_request`], [`RequestLimits`]).
//! - `target`: the request-target: its forms and parts
//!   ([`split_absolute`], [`path_and_query_of`]), and the characters and
//!   methods it may come with.
//! - `host`: a Host (or a target's authority) checked ([`check_host`]) and
//!   spelled one way per server ([`push_canonical_authority`]).
//! - `fields`: the header fields of either head copied out of httparse and
//!   checked, and the token characters ([`is_tchar`]).
//! - `response`: a response head ([`ResponseHead`]) parsed from a backend
//!   ([`parse_response`]) or made, and the reason phrases.
//! - here: the end of a head ([`find_head_end`]), its [`Version`], why it
//!   was refused ([`HeadError`]), and whether its connection persists.

mod fields;
mod host;
mod request;
mod response;
mod target;

pub use fields::is_tchar;
pub use host::{check_host, push_canonical_authority, push_host_name};
pub use request::{parse_request, RequestHead, RequestLimits};
pub use response::{parse_response, reason_phrase, required_field, ResponseHead};
pub use target::{check_target_bytes, path_and_query_of, split_absolute};

use super::headers::Headers;
use std::fmt;

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
    // `memchr` looks a word or a vector at a time: a byte at a time, the
    // search was a tenth of the work of a request with a browser's fields.
    while let Some(off) = memchr::memchr(b'\n', &buf[i..]) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // Resuming from a complete head starts past it, not inside it.
        assert_eq!(scanned, full.len() - 4);
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
    fn only_a_higher_minor_of_http_1_is_taken_as_1_1() {
        assert_eq!(
            as_http11(b"HTTP/1.2 200 OK\r\n", 0).as_deref(),
            Some(&b"HTTP/1.1 200 OK\r\n"[..])
        );
        for head in [
            &b"HTTP/1.x 200 OK\r\n"[..],
            b"HTTP/2.2 200 OK\r\n",
            b"HTTP/1.0",
        ] {
            assert_eq!(as_http11(head, 0), None, "{head:?}");
        }
    }
}
