//! The bytes of a response the proxy makes itself ([`ErrorResponse`]):
//! an `error_pages` page, a `return` text or a short plain-text body,
//! compressed when the pool's `gzip` says so.

use crate::config::Config;
use crate::error_pages::PAGE_CONTENT_TYPE;
use crate::gzip::{self, Coding, ForClient};
use crate::http::conn::write_all_vectored;
use crate::http::edits::Applied;
use crate::http::head::reason_phrase;
use crate::http::ResponseHead;
use std::borrow::Cow;
use std::io::IoSlice;
use std::time::SystemTime;

/// A response the proxy makes itself: its head (and the plain-text body,
/// or a body compressed for it, when there is no page or page copy held
/// in the settings), then the operator's page, or its compressed copy, if
/// any, sent from where it is held rather than copied.
pub struct ErrorResponse<'p> {
    bytes: Vec<u8>,
    head_len: usize,
    page: &'p [u8],
    pub body_len: u64,
    /// The coding the body went in and its length before, when it was
    /// compressed.
    pub gzipped_from: Option<(Coding, u64)>,
}

impl ErrorResponse<'_> {
    /// The head, up to and with its blank line.
    pub fn head(&self) -> &[u8] {
        &self.bytes[..self.head_len]
    }

    /// Writes the response, or its head alone (the answer to a HEAD: RFC
    /// 9110 §9.3.2), in one `writev` in the common case; returns the body
    /// bytes that went out (none for a HEAD), or `None` when the write
    /// failed.
    pub fn send(&self, out: &mut impl std::io::Write, head_only: bool) -> Option<u64> {
        let written = if head_only {
            out.write_all(self.head())
        } else {
            let mut parts = [IoSlice::new(&self.bytes), IoSlice::new(self.page)];
            write_all_vectored(out, &mut parts)
        };
        match written {
            Ok(()) if !head_only => Some(self.body_len),
            Ok(()) => Some(0),
            Err(_) => None,
        }
    }
}

/// Whether raw request bytes not parsed yet (what a client sent before it
/// is refused) begin a HEAD, whose answer is its head alone; after empty
/// lines too, which RFC 9112 §2.2 has a server ignore before a request.
pub fn starts_a_head_request(received: &[u8]) -> bool {
    let blank = received.iter().take_while(|&&b| b == b'\r' || b == b'\n');
    received[blank.count()..].starts_with(b"HEAD ")
}

/// The response for `status`, e.g. `502 Bad Gateway`: the `error_pages`
/// page for it if there is one, else a short plain-text body. `fields`
/// (whole lines, CRLF-ended) are added to the head, then the fields
/// `response_header.*` sets (none it removes is here: every field of this
/// head is one the proxy writes, which those keys may not name).
pub fn error_response<'p>(
    status: u16,
    close: bool,
    fields: &[u8],
    config: &'p Config,
) -> ErrorResponse<'p> {
    own_response(status, close, fields, None, config)
}

/// What the proxy's own body says, when it is not its page for the
/// status: a `return` route's text (of its `type=`), the ACME server's
/// key authorization.
#[derive(Clone, Copy, Debug)]
pub struct OwnText<'a> {
    /// Any bytes: a `return` text's variables may bring what is not
    /// UTF-8 (a client's field).
    pub body: &'a [u8],
    pub content_type: &'a str,
}

/// The type of a text given without one.
pub const PLAIN: &str = "text/plain; charset=utf-8";

impl<'a> OwnText<'a> {
    pub fn plain(body: &'a str) -> OwnText<'a> {
        OwnText {
            body: body.as_bytes(),
            content_type: PLAIN,
        }
    }
}

/// [`error_response`], with `text` as the body when given (a `return`
/// route's).
pub fn own_response<'p>(
    status: u16,
    close: bool,
    fields: &[u8],
    text: Option<OwnText<'p>>,
    config: &'p Config,
) -> ErrorResponse<'p> {
    let edits = config.response_headers.unconditional().at(status);
    coded_response(status, close, fields, text, (config, edits), None)
}

/// [`own_response`] with `gzip` on for the request it answers: its body
/// goes compressed, and says `Vary`, by the rules a backend's answer of
/// that status, type and length would (see [`Gzip::suits`]). Held whole,
/// it is compressed whole and sent with its length (a HEAD's too, which
/// is the GET's head); an `error_pages` page once, a text at each answer.
///
/// [`Gzip::suits`]: crate::gzip::Gzip::suits
pub fn coded_response<'p>(
    status: u16,
    close: bool,
    fields: &[u8],
    text: Option<OwnText<'p>>,
    (config, edits): (&'p Config, Applied<'_>),
    gzip: Option<ForClient<'_>>,
) -> ErrorResponse<'p> {
    let page = match text {
        Some(text) => Some((text.body, text.content_type)),
        None => (config.error_pages.get(status)).map(|page| (page, PAGE_CONTENT_TYPE)),
    };
    // With a page, no body is made here (an empty String allocates nothing).
    let (plain, content_type) = match page {
        Some((_, content_type)) => (String::new(), content_type),
        None => (format!("{status} {}\n", reason_phrase(status)), PLAIN),
    };
    let page = page.map(|(page, _)| page);
    let body = page.unwrap_or(plain.as_bytes());
    let mut head = ResponseHead::new(status);
    head.headers.push(
        "Date",
        crate::http::date::format_http_date(SystemTime::now()),
    );
    head.headers.push("Content-Type", content_type);
    let coding = gzip.filter(|g| g.gzip.suits(status, &head.headers, Some(body.len() as u64)));
    let takes = coding.and_then(|g| g.coding);
    let gzipped: Option<Cow<'p, [u8]>> = coding.zip(takes).map(|(g, takes)| {
        let kept = text.is_none().then(|| {
            let gzip = g.gzip;
            (config.error_pages)
                .compressed(status, takes, |page| gzip.compress_to_keep(takes, page))
        });
        match kept.flatten() {
            Some(kept) => Cow::Borrowed(kept),
            None => Cow::Owned(g.gzip.compress(takes, body)),
        }
    });
    let body_len = gzipped.as_deref().map_or(body.len(), <[u8]>::len);
    head.headers.push("Content-Length", body_len.to_string());
    // RFC 9110 §15.5.6: a 405 lists the methods the resource supports;
    // the proxy passes on every method but CONNECT and TRACE. So does the
    // only 200 the proxy answers itself: to an OPTIONS it is the last hop
    // of (see `forward`).
    // A `files` route's 405 gives its own (GET and HEAD).
    let allow_given = (fields.split(|&b| b == b'\n')).any(|line| {
        line.get(..6)
            .is_some_and(|n| n.eq_ignore_ascii_case(b"allow:"))
    });
    if matches!(status, 200 | 405) && text.is_none() && !allow_given {
        head.headers
            .push("Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH");
    }
    if close {
        head.headers.push("Connection", "close");
    }
    let mut bytes = Vec::with_capacity(192 + fields.len() + edits.set_lines().len());
    head.write_start(&mut bytes);
    // The proxy's own fields stand for a backend's here: no `ETag` or
    // `Vary` of their own to carry over.
    match (&gzipped, takes, coding) {
        (Some(_), Some(takes), _) => gzip::push_compressed_fields(&mut bytes, &head.headers, takes),
        (_, _, Some(_)) => gzip::push_vary(&mut bytes, &head.headers),
        _ => {}
    }
    bytes.extend_from_slice(fields);
    edits.push_set_lines(&mut bytes);
    bytes.extend_from_slice(b"\r\n");
    let head_len = bytes.len();
    let page = match gzipped {
        Some(Cow::Borrowed(kept)) => kept,
        Some(Cow::Owned(compressed)) => {
            bytes.extend_from_slice(&compressed);
            &[]
        }
        None => {
            bytes.extend_from_slice(plain.as_bytes());
            page.unwrap_or_default()
        }
    };
    ErrorResponse {
        bytes,
        head_len,
        page,
        body_len: body_len as u64,
        gzipped_from: takes.map(|takes| (takes, body.len() as u64)),
    }
}
