//! Message body framing (RFC 9112 §6-§7): deciding how a body is delimited,
//! and decoding it piece by piece from a [`BufConn`] so it can be streamed
//! through bounded buffers and re-framed on the other side.

use super::conn::{BufConn, Source};
use super::head::{is_tchar, HeadError, RequestHead, ResponseHead, Version};
use super::headers::Headers;
use std::io;

/// Longest chunk-size line (size, extensions, CRLF) we read. Extensions carry
/// nothing we use; a long line is an attack on our memory.
pub const MAX_CHUNK_LINE: usize = 4096;
/// Most bytes of trailer fields after the last chunk.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// Fields a trailer section may not carry on (RFC 9110 §6.5.1): those
/// that frame the message, route it, modify the request, authenticate,
/// control the response or say how to process its content; they are
/// needed before the content, and a recipient that merged them in after
/// it would act on what the sender never meant. Those of one connection
/// too.
const NOT_IN_TRAILERS: &[&str] = &[
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "content-type",
    "content-range",
    "trailer",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "authorization",
    "proxy-authorization",
    "proxy-authenticate",
    "www-authenticate",
    "cookie",
    "set-cookie",
    "cache-control",
    "expires",
    "date",
    "age",
    "vary",
    "etag",
    "last-modified",
    "location",
    "retry-after",
    "pragma",
    "expect",
    "max-forwards",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
];

/// Whether a trailer field of `name` (its bytes as sent) may be passed on.
fn may_trail(name: &[u8]) -> bool {
    !NOT_IN_TRAILERS
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Transfer-Encoding: chunked.
    Chunked,
    /// Everything until the peer closes (responses only).
    UntilClose,
}

impl BodyKind {
    /// RFC 9112 §6.3, for requests:
    /// "If a Transfer-Encoding header field is present in a request and the
    /// chunked transfer coding is not the final encoding, the message body
    /// length cannot be determined reliably; the server MUST respond with
    /// the 400 (Bad Request) status code and then close the connection."
    /// "If a message is received with both a Transfer-Encoding and a
    /// Content-Length header field, the Transfer-Encoding overrides the
    /// Content-Length. Such a message might indicate an attempt to perform
    /// request smuggling" — so we refuse it outright rather than guess.
    /// "If this is a request message and none of the above are true, then
    /// the message body length is zero."
    pub fn for_request(head: &RequestHead) -> Result<BodyKind, HeadError> {
        let has_te = head.headers.contains("transfer-encoding");
        let length = content_length(&head.headers)?;
        if has_te {
            if length.is_some() {
                return Err(HeadError::Malformed(
                    "both Content-Length and Transfer-Encoding",
                ));
            }
            // RFC 9112 §6.1: "A server or client that receives an HTTP/1.0
            // message containing a Transfer-Encoding header field MUST treat
            // the message as if the framing is faulty, even if a
            // Content-Length is present, and close the connection after
            // processing the message."
            if head.version == Version::Http10 {
                return Err(HeadError::Malformed("Transfer-Encoding in HTTP/1.0"));
            }
            return chunked_only(&transfer_codings(&head.headers)?);
        }
        Ok(match length {
            Some(0) | None => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
        })
    }

    /// RFC 9112 §6.3, for responses: "Any response to a HEAD request and any
    /// response with a 1xx (Informational), 204 (No Content), or 304 (Not
    /// Modified) status code is always terminated by the first empty line
    /// after the header fields"; then Transfer-Encoding; then
    /// Content-Length, then until close.
    ///
    /// Transfer-Encoding must be exactly `chunked`, as nginx requires of
    /// its upstreams. RFC 9112 would read `gzip` alone until close and
    /// decode `gzip, chunked` down to gzip; but Transfer-Encoding is
    /// hop-by-hop and we re-frame every body, so the client would get
    /// gzip bytes with nothing saying so. Those responses are an error
    /// (502), as on requests.
    ///
    /// A response with both fields is read as chunked; the caller must not
    /// reuse the connection afterwards (see [`response_forbids_reuse`]).
    /// An HTTP/1.0 response with Transfer-Encoding has faulty framing
    /// (§6.1) and is refused, as is any Content-Length we would not accept
    /// on a request.
    pub fn for_response(request_is_head: bool, head: &ResponseHead) -> Result<BodyKind, HeadError> {
        if request_is_head || head.status < 200 || head.status == 204 || head.status == 304 {
            return Ok(BodyKind::Empty);
        }
        if head.headers.contains("transfer-encoding") {
            if head.version == Version::Http10 {
                return Err(HeadError::Malformed("Transfer-Encoding in HTTP/1.0"));
            }
            return chunked_only(&transfer_codings(&head.headers)?);
        }
        Ok(match content_length(&head.headers)? {
            Some(n) => BodyKind::Length(n),
            None => BodyKind::UntilClose,
        })
    }
}

/// RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field in
/// any response with a status code of 1xx (Informational) or 204 (No
/// Content)"; a client that believed one would read the next response as
/// this one's body.
pub fn forbids_content_length(status: u16) -> bool {
    status < 200 || status == 204
}

/// Whether a response's framing is dubious enough that the connection it
/// came on must be closed after it (RFC 9112 §6.3: "If a message is
/// received with both a Transfer-Encoding and a Content-Length header
/// field ... a server or client that receives [such a message] ... MUST
/// close the connection after responding to the request or processing the
/// response").
pub fn response_forbids_reuse(head: &ResponseHead) -> bool {
    head.headers.contains("transfer-encoding") && head.headers.contains("content-length")
}

/// Most transfer codings we look at in one message; nobody needs more than
/// two, a long list is noise meant to confuse someone's parser.
const MAX_CODINGS: usize = 8;

/// The transfer codings of every Transfer-Encoding field, in order, as raw
/// bytes (a value that is not UTF-8 must not simply vanish from the list).
/// RFC 9112 §6.1: Transfer-Encoding = #transfer-coding, and RFC 9110 §5.6.1
/// lets empty list elements be ignored; but a field with no coding at all,
/// or a coding that is not a token (a quoted string, a parameter, a
/// control character), is refused: another parser could see a different
/// list.
fn transfer_codings(headers: &Headers) -> Result<Vec<&[u8]>, HeadError> {
    let mut codings = Vec::new();
    for value in headers.get_all("transfer-encoding") {
        let before = codings.len();
        for element in value.split(|&b| b == b',') {
            let coding = element.trim_ascii();
            if coding.is_empty() {
                continue;
            }
            if !coding.iter().all(|&b| is_tchar(b)) {
                return Err(HeadError::Malformed("invalid transfer coding"));
            }
            codings.push(coding);
        }
        if codings.len() == before {
            return Err(HeadError::Malformed("empty Transfer-Encoding"));
        }
        if codings.len() > MAX_CODINGS {
            return Err(HeadError::Malformed("too many transfer codings"));
        }
    }
    Ok(codings)
}

/// Only exactly `chunked` is accepted (on responses too, see
/// [`BodyKind::for_response`]). RFC 9112 §6.3: "If a Transfer-Encoding
/// header field is present in a request and the chunked transfer coding is
/// not the final encoding, the message body length cannot be determined
/// reliably; the server MUST respond with the 400 (Bad Request) status code
/// and then close the connection." §7: "A sender MUST
/// NOT apply the chunked transfer coding more than once to a message body".
/// A coding before chunked is one we will not decode for the backend;
/// §6.1: "A server that receives a request message with a transfer coding
/// it does not understand SHOULD respond with 501 (Not Implemented)."
fn chunked_only(codings: &[&[u8]]) -> Result<BodyKind, HeadError> {
    let is_chunked = |c: &&[u8]| c.eq_ignore_ascii_case(b"chunked");
    match codings {
        [only] if is_chunked(only) => Ok(BodyKind::Chunked),
        [first @ .., last] if is_chunked(last) && !first.iter().any(is_chunked) => {
            Err(HeadError::UnsupportedCoding)
        }
        [.., last] if is_chunked(last) => Err(HeadError::Malformed("chunked applied twice")),
        _ => Err(HeadError::Malformed(
            "chunked is not the final transfer coding",
        )),
    }
}

/// The Content-Length of a message. Strict on purpose: one field, plain
/// decimal digits, no list, no sign, no overflow. RFC 9110 §8.6 would let us
/// accept "42, 42"; a proxy gains nothing from that leniency and a backend
/// might read it differently. RFC 9112 §6.3: "If a message is received
/// without Transfer-Encoding and with an invalid Content-Length header
/// field, then the message framing is invalid and the recipient MUST treat
/// it as an unrecoverable error ... the server MUST respond with a 400 (Bad
/// Request) status code and then close the connection."
///
/// Leading zeros are digits (`Content-Length = 1*DIGIT`), so `007` is 7;
/// the backend never sees them, as every forwarded message is re-framed.
/// A length past what a signed 64-bit number holds is refused, as nginx
/// does: a peer that parses it into one would frame the body otherwise.
pub fn content_length(headers: &Headers) -> Result<Option<u64>, HeadError> {
    let mut values = headers.get_all("content-length");
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HeadError::Malformed("more than one Content-Length"));
    }
    parse_decimal(value)
        .filter(|&n| i64::try_from(n).is_ok())
        .map(Some)
        .ok_or(HeadError::Malformed("invalid Content-Length"))
}

fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    // Leading zeros are digits too, however many.
    let first = value
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(value.len() - 1);
    let value = &value[first..];
    if value.len() > 19 {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        let digit = (b as char).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(digit as u64)
    })
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("connection closed before the body ended")]
    Truncated,
    #[error("malformed chunked encoding: {0}")]
    BadChunk(&'static str),
    #[error("body larger than {0} bytes")]
    TooLarge(u64),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl BodyError {
    /// The same error again, for one that says the body cannot be read
    /// on (its framing broken, its length past the limit, its connection
    /// closed); `None` for an I/O error, which a timeout may have been.
    fn again(&self) -> Option<BodyError> {
        match self {
            BodyError::Truncated => Some(BodyError::Truncated),
            BodyError::BadChunk(why) => Some(BodyError::BadChunk(why)),
            BodyError::TooLarge(limit) => Some(BodyError::TooLarge(*limit)),
            BodyError::Io(_) => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// `remaining` bytes of a Content-Length body left.
    Length,
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Inside a chunk's data, `remaining` bytes left.
    ChunkData,
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers,
    UntilClose,
    Done,
}

/// Decodes one message body from a connection, piece by piece. Each piece
/// is a slice of the connection's buffer, so data is never copied here.
#[derive(Debug)]
pub struct BodyReader {
    state: State,
    remaining: u64,
    trailer_bytes: usize,
    /// The trailer fields that may be passed on, each line with its CRLF.
    trailers: Vec<u8>,
    /// Decoded bytes so far.
    read: u64,
    /// Most decoded bytes allowed (`u64::MAX`: no limit).
    limit: u64,
    /// Why the body cannot be read on, once that is known (by
    /// [`BodyReader::next_joined`], maybe past the data it returned):
    /// every later call's answer, so that no byte past a broken frame is
    /// ever taken for the body's (what follows a bad chunk-size line may
    /// be another request a smuggler wrote).
    broken: Option<BodyError>,
}

impl BodyReader {
    pub fn new(kind: BodyKind) -> Self {
        let (state, remaining) = match kind {
            BodyKind::Empty | BodyKind::Length(0) => (State::Done, 0),
            BodyKind::Length(n) => (State::Length, n),
            BodyKind::Chunked => (State::ChunkSize, 0),
            BodyKind::UntilClose => (State::UntilClose, 0),
        };
        BodyReader {
            state,
            remaining,
            trailer_bytes: 0,
            trailers: Vec::new(),
            read: 0,
            limit: u64::MAX,
            broken: None,
        }
    }

    /// A reader that fails with [`BodyError::TooLarge`] as soon as the body
    /// is known to exceed `limit` bytes: before any data for a chunk whose
    /// size line would take it past, before any data at all for a
    /// Content-Length past it.
    pub fn with_limit(kind: BodyKind, limit: u64) -> Self {
        BodyReader {
            limit,
            ..BodyReader::new(kind)
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The trailer fields of a chunked body read so far that may be
    /// passed on (see [`NOT_IN_TRAILERS`]), each line with its CRLF.
    pub fn trailers(&self) -> &[u8] {
        &self.trailers
    }

    /// Why the body cannot be read on, if it cannot: what
    /// [`BodyReader::next_joined`] found past the piece it returned last,
    /// for a caller that would rather not pass on that piece of a body
    /// it refuses.
    pub fn failure(&self) -> Option<BodyError> {
        self.broken.as_ref().and_then(BodyError::again)
    }

    /// Decoded body bytes returned so far.
    #[cfg(test)]
    fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The next piece of the body, or `None` once it has ended. Reads from
    /// the stream only when the buffer holds nothing usable.
    pub fn next<'c, S: Source>(
        &mut self,
        conn: &'c mut BufConn<S>,
    ) -> Result<Option<&'c [u8]>, BodyError> {
        Ok(self.advance(conn, true)?.map(|n| conn.take(n)))
    }

    /// `next`, joined with the rest of the body the buffer already holds:
    /// the data of every chunk that came with the first, moved together
    /// over the framing between them. A client's many small chunks then go
    /// on in a few large ones, not one write each. Reads no more than
    /// `next` does, so a piece is never larger than the buffer, and what
    /// has come goes without waiting for the rest. A malformed or too
    /// large chunk among what is buffered ends the piece, and fails the
    /// next call: what came before it goes on as with `next` (a response
    /// whose head has not left yet is still answered as it would be).
    pub fn next_joined<'c, S: Source>(
        &mut self,
        conn: &'c mut BufConn<S>,
    ) -> Result<Option<&'c [u8]>, BodyError> {
        let Some(first) = self.advance(conn, true)? else {
            return Ok(None);
        };
        conn.consume(first);
        let (mut joined, mut skipped) = (first, 0);
        loop {
            let before = conn.buffered().len();
            // What it finds wrong, the reader keeps: the next call's answer.
            let more = self.advance(conn, false).unwrap_or(None);
            skipped += before - conn.buffered().len();
            let Some(n) = more else { break };
            conn.take_joined(joined, skipped, n);
            joined += n;
        }
        Ok(Some(conn.take_joined(joined, skipped, 0)))
    }

    /// Decodes up to the next piece of data, left first in the buffer for
    /// the caller to take, and returns its length: `None` once the body
    /// has ended or, unless `wait`, when the buffer holds no more of it.
    /// Reads from the stream only when the buffer holds nothing usable,
    /// and only if `wait`. Once the body is found broken, it stays so.
    fn advance<S: Source>(
        &mut self,
        conn: &mut BufConn<S>,
        wait: bool,
    ) -> Result<Option<usize>, BodyError> {
        if let Some(broken) = self.broken.as_ref().and_then(BodyError::again) {
            return Err(broken);
        }
        let advanced = self.decode(conn, wait);
        if let Err(e) = &advanced {
            self.broken = e.again();
        }
        advanced
    }

    /// [`BodyReader::advance`], on a body not found broken yet.
    fn decode<S: Source>(
        &mut self,
        conn: &mut BufConn<S>,
        wait: bool,
    ) -> Result<Option<usize>, BodyError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Length | State::ChunkData => {
                    if self.read.saturating_add(self.remaining) > self.limit {
                        return Err(BodyError::TooLarge(self.limit));
                    }
                    if conn.buffered().is_empty() {
                        match read_more(conn, wait)? {
                            None => return Ok(None),
                            Some(0) => return Err(BodyError::Truncated),
                            Some(_) => {}
                        }
                    }
                    let n = (conn.buffered().len() as u64).min(self.remaining) as usize;
                    self.remaining -= n as u64;
                    self.read += n as u64;
                    if self.remaining == 0 {
                        self.state = if self.state == State::Length {
                            State::Done
                        } else {
                            State::ChunkEnd
                        };
                    }
                    return Ok(Some(n));
                }
                State::UntilClose => {
                    if conn.buffered().is_empty() {
                        match read_more(conn, wait)? {
                            None => return Ok(None),
                            Some(0) => {
                                self.state = State::Done;
                                return Ok(None);
                            }
                            Some(_) => {}
                        }
                    }
                    let n = conn.buffered().len();
                    self.read += n as u64;
                    if self.read > self.limit {
                        return Err(BodyError::TooLarge(self.limit));
                    }
                    return Ok(Some(n));
                }
                State::ChunkSize => {
                    let Some(line) = read_line(conn, MAX_CHUNK_LINE, wait)? else {
                        return Ok(None);
                    };
                    let size = parse_chunk_size(&line)?;
                    if size == 0 {
                        self.state = State::Trailers;
                    } else {
                        self.remaining = size;
                        self.state = State::ChunkData;
                    }
                }
                State::ChunkEnd => {
                    let Some(line) = read_line(conn, 2, wait)? else {
                        return Ok(None);
                    };
                    if !line.is_empty() {
                        return Err(BodyError::BadChunk("missing CRLF after chunk data"));
                    }
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let limit = MAX_TRAILERS.saturating_sub(self.trailer_bytes);
                    let Some(line) = read_line(conn, limit, wait)? else {
                        return Ok(None);
                    };
                    self.trailer_bytes += line.len() + 2;
                    if line.is_empty() {
                        self.state = State::Done;
                    } else if !is_field_line(&line) {
                        return Err(BodyError::BadChunk("malformed trailer field"));
                    } else if line.split(|&b| b == b':').next().is_some_and(may_trail) {
                        self.trailers.extend_from_slice(&line);
                        self.trailers.extend_from_slice(b"\r\n");
                    }
                }
            }
        }
    }

    /// Reads and discards the rest of the body.
    pub fn skip_rest<S: Source>(&mut self, conn: &mut BufConn<S>) -> Result<(), BodyError> {
        while self.next(conn)?.is_some() {}
        Ok(())
    }
}

/// Reads more into `conn`'s buffer: how many bytes came (0: the stream
/// ended), or `None`, reading nothing, unless `wait`.
fn read_more<S: Source>(conn: &mut BufConn<S>, wait: bool) -> io::Result<Option<usize>> {
    wait.then(|| conn.fill_midway()).transpose()
}

/// Takes one CRLF-terminated line (without the CRLF) from `conn`, reading
/// more as needed if `wait`, else `None` while it is not all buffered; a
/// line longer than `limit`, or a CR or LF alone, is an error as soon as
/// it is seen (neither may stand in a chunk-size line or a trailer
/// field), not once the peer gives up.
fn read_line<S: Source>(
    conn: &mut BufConn<S>,
    limit: usize,
    wait: bool,
) -> Result<Option<Vec<u8>>, BodyError> {
    loop {
        let buffered = conn.buffered();
        let end = buffered.iter().position(|&b| b == b'\r' || b == b'\n');
        if end.is_some_and(|i| i > limit) || (end.is_none() && buffered.len() > limit) {
            return Err(BodyError::BadChunk("line too long"));
        }
        if let Some(i) = end {
            match (buffered[i], buffered.get(i + 1)) {
                (b'\n', _) => return Err(BodyError::BadChunk("bare LF")),
                (_, Some(b'\n')) => {
                    let line = buffered[..i].to_vec();
                    conn.consume(i + 2);
                    return Ok(Some(line));
                }
                (_, Some(_)) => return Err(BodyError::BadChunk("bare CR")),
                (_, None) => {} // the LF may be on its way
            }
        }
        match read_more(conn, wait)? {
            None => return Ok(None),
            Some(0) => return Err(BodyError::Truncated),
            Some(_) => {}
        }
    }
}

/// RFC 9112 §7.1: `chunk-size [ chunk-ext ] CRLF`, chunk-size = 1*HEXDIG.
/// The size is checked for overflow, the extensions against their grammar
/// (see [`is_chunk_ext`]); they are then dropped.
fn parse_chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(BodyError::BadChunk("missing chunk size"));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
        // Past 2^63-1, as for Content-Length (and nginx's off_t): no body
        // is that long, and a peer that says so is not framing honestly.
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(d))
            .filter(|&s| s <= i64::MAX as u64)
            .ok_or(BodyError::BadChunk("chunk size overflows"))?;
    }
    match &line[digits..] {
        [] => Ok(size),
        ext if is_chunk_ext(ext) => Ok(size),
        // Whitespace after the size with no extension is not in the grammar.
        ext if ext.iter().all(|&b| b == b' ' || b == b'\t') => {
            Err(BodyError::BadChunk("trailing whitespace after chunk size"))
        }
        _ => Err(BodyError::BadChunk("invalid chunk size or extension")),
    }
}

/// RFC 9112 §7.1.1: `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "="
/// BWS chunk-ext-val ] )`, a name being a token and a value a token or a
/// quoted-string (RFC 9110 §5.6.4). Whitespace at the very end is let
/// through (harmless: the size is already read).
fn is_chunk_ext(ext: &[u8]) -> bool {
    let skip_ws = |i: &mut usize| {
        while ext.get(*i).is_some_and(|&b| b == b' ' || b == b'\t') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while ext.get(*i).is_some_and(|&b| is_tchar(b)) {
            *i += 1;
        }
        *i > start
    };
    let quoted = |i: &mut usize| {
        if ext.get(*i) != Some(&b'"') {
            return false;
        }
        *i += 1;
        // qdtext and quoted-pair: any HTAB, SP, VCHAR or obs-text, a
        // backslash escaping the next one.
        let text = |b: u8| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80;
        loop {
            match ext.get(*i) {
                Some(b'"') => {
                    *i += 1;
                    return true;
                }
                Some(b'\\') if ext.get(*i + 1).is_some_and(|&b| text(b)) => *i += 2,
                Some(&b) if text(b) => *i += 1,
                _ => return false,
            }
        }
    };
    let mut i = 0;
    skip_ws(&mut i);
    if i == ext.len() {
        return false;
    }
    while i < ext.len() {
        if ext[i] != b';' {
            return false;
        }
        i += 1;
        skip_ws(&mut i);
        if !token(&mut i) {
            return false;
        }
        skip_ws(&mut i);
        if ext.get(i) == Some(&b'=') {
            i += 1;
            skip_ws(&mut i);
            if !(token(&mut i) || quoted(&mut i)) {
                return false;
            }
            skip_ws(&mut i);
        }
    }
    true
}

/// A trailer line must look like a header field (name ":" value) with no
/// obs-fold.
fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0
        && line[..colon]
            .iter()
            .all(|&b| crate::http::head::is_tchar(b))
        && line[colon..]
            .iter()
            .all(|&b| b == b'\t' || b >= 0x20 && b != 0x7f)
}

/// A chunked body decoded whole from `wire`, when all of it, last chunk
/// and trailers included, is there and decodes to at most `limit` bytes;
/// with the number of bytes of `wire` it took, and the trailer fields
/// that may be passed on. `None` otherwise: more is still to come, it is
/// too large, or it is malformed (whoever reads it from the connection
/// then meets the error).
pub fn decode_complete_chunked(wire: &[u8], limit: u64) -> Option<Whole> {
    // A whole body ends its last chunk (and trailers) with an empty line:
    // a stream still arriving is not copied for nothing.
    if !wire.ends_with(b"\r\n\r\n") {
        return None;
    }
    let mut conn = BufConn::holding(wire.to_vec());
    let mut reader = BodyReader::with_limit(BodyKind::Chunked, limit);
    let mut body = Vec::new();
    while let Some(piece) = reader.next(&mut conn).ok()? {
        body.extend_from_slice(piece);
    }
    Some(Whole {
        used: wire.len() - conn.buffered().len(),
        body,
        trailers: reader.trailers,
    })
}

/// A chunked body [`decode_complete_chunked`] found whole.
#[derive(Debug, PartialEq, Eq)]
pub struct Whole {
    pub body: Vec<u8>,
    /// The bytes of the wire it took.
    pub used: usize,
    /// As [`BodyReader::trailers`].
    pub trailers: Vec<u8>,
}

/// The bytes that end a chunked body with `trailers` (lines of fields,
/// each with its CRLF): the last chunk, them, the empty line.
pub fn last_chunk_with(trailers: &[u8]) -> Vec<u8> {
    [b"0\r\n", trailers, b"\r\n"].concat()
}

/// Writes the framing of one chunk of `len` bytes: the size line.
pub fn chunk_size_line(len: usize, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(out, "{len:x}\r\n");
}

/// The bytes that end a chunked body (last chunk, no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{find_head_end, parse_request, parse_response, RequestLimits};

    fn decode(kind: BodyKind, wire: &[u8]) -> Result<(Vec<u8>, usize), BodyError> {
        let mut conn = BufConn::new(wire, 16);
        let mut reader = BodyReader::new(kind);
        let mut out = Vec::new();
        while let Some(piece) = reader.next(&mut conn)? {
            out.extend_from_slice(piece);
        }
        Ok((out, conn.buffered().len()))
    }

    fn request(bytes: &[u8]) -> Result<BodyKind, HeadError> {
        let mut s = 0;
        let len = find_head_end(bytes, &mut s)?.unwrap();
        BodyKind::for_request(&parse_request(&bytes[..len], &RequestLimits::default())?)
    }

    #[test]
    fn a_broken_body_stays_broken_and_nothing_past_the_break_is_read() {
        // After the bad size line comes what would decode as a chunk: a
        // caller that read on must not be given it.
        let wire = b"3\r\nabc\r\nZZ\r\n5\r\nhello\r\n0\r\n\r\n";
        let mut conn = BufConn::new(&wire[..], 64);
        let mut reader = BodyReader::new(BodyKind::Chunked);
        assert_eq!(reader.next(&mut conn).unwrap(), Some(&b"abc"[..]));
        for _ in 0..3 {
            assert!(matches!(
                reader.next(&mut conn),
                Err(BodyError::BadChunk(_))
            ));
        }
        assert!(reader.skip_rest(&mut conn).is_err());
        // Joined: the piece before the break, the break said, and kept.
        let mut conn = BufConn::new(&wire[..], 64);
        let mut reader = BodyReader::new(BodyKind::Chunked);
        assert_eq!(reader.next_joined(&mut conn).unwrap(), Some(&b"abc"[..]));
        assert!(matches!(reader.failure(), Some(BodyError::BadChunk(_))));
        for _ in 0..2 {
            assert!(matches!(
                reader.next_joined(&mut conn),
                Err(BodyError::BadChunk(_))
            ));
            assert!(matches!(
                reader.next(&mut conn),
                Err(BodyError::BadChunk(_))
            ));
        }
        // Past the limit, the same.
        let mut conn = BufConn::new(&b"5\r\nhello\r\n0\r\n\r\n"[..], 64);
        let mut reader = BodyReader::with_limit(BodyKind::Chunked, 4);
        for _ in 0..2 {
            assert!(matches!(
                reader.next(&mut conn),
                Err(BodyError::TooLarge(4))
            ));
        }
    }

    #[test]
    fn request_framing_rules() {
        assert_eq!(
            request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(BodyKind::Empty)
        );
        assert_eq!(
            request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n"),
            Ok(BodyKind::Length(i64::MAX as u64))
        );
        assert_eq!(
            request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 000000000000000000005\r\n\r\n"),
            Ok(BodyKind::Length(5))
        );
        assert_eq!(
            request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 00\r\n\r\n"),
            Ok(BodyKind::Empty)
        );
        assert_eq!(
            request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"),
            Ok(BodyKind::Length(5))
        );
        assert_eq!(
            request(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Ok(BodyKind::Chunked)
        );
        let bad = [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \xffchunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: \xff\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunk\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked-false\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5e2\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
        ];
        for b in bad {
            assert_eq!(
                request(b).map_err(|e| e.status()),
                Err(400),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
        assert_eq!(
            request(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
                .map_err(|e| e.status()),
            Err(501)
        );
        assert_eq!(
            request(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:   chunked\t\r\n\r\n"),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            request(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked,\r\n\r\n"),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n"),
            Ok(BodyKind::Length(7))
        );
        assert_eq!(
            request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  5 \r\n\r\n"),
            Ok(BodyKind::Length(5))
        );
    }

    #[test]
    fn response_framing_rules() {
        let r = |b: &[u8], head| {
            let mut s = 0;
            let len = find_head_end(b, &mut s).unwrap().unwrap();
            BodyKind::for_response(head, &parse_response(&b[..len]).unwrap())
        };
        assert_eq!(
            r(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true),
            Ok(BodyKind::Empty)
        );
        assert_eq!(
            r(b"HTTP/1.1 304 OK\r\nContent-Length: 3\r\n\r\n", false),
            Ok(BodyKind::Empty)
        );
        assert_eq!(r(b"HTTP/1.1 204 OK\r\n\r\n", false), Ok(BodyKind::Empty));
        // 1xx has no body, whatever it says; any other 2xx but 204 may.
        assert_eq!(
            r(b"HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\n", false),
            Ok(BodyKind::Empty)
        );
        assert_eq!(
            r(b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\n", false),
            Ok(BodyKind::Length(3))
        );
        assert_eq!(
            r(b"HTTP/1.1 200 OK\r\n\r\n", false),
            Ok(BodyKind::UntilClose)
        );
        assert_eq!(
            r(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            r(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked \r\n\r\n",
                false
            ),
            Ok(BodyKind::Chunked)
        );
        for bad in [
            &b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            // Codings we would strip without decoding (see for_response).
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n",
        ] {
            assert!(r(bad, false).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    fn decode_limited(kind: BodyKind, wire: &[u8], limit: u64) -> Result<Vec<u8>, BodyError> {
        let mut conn = BufConn::new(wire, 16);
        let mut reader = BodyReader::with_limit(kind, limit);
        let mut out = Vec::new();
        while let Some(piece) = reader.next(&mut conn)? {
            out.extend_from_slice(piece);
        }
        Ok(out)
    }

    #[test]
    fn limits_stop_a_body_before_its_data() {
        assert!(matches!(
            decode_limited(BodyKind::Length(6), b"hello!", 5),
            Err(BodyError::TooLarge(5))
        ));
        assert_eq!(
            decode_limited(BodyKind::Length(5), b"hello", 5).unwrap(),
            b"hello"
        );
        let wire = b"3\r\nhel\r\n2\r\nlo\r\n1\r\n!\r\n0\r\n\r\n";
        assert_eq!(
            decode_limited(BodyKind::Chunked, wire, 6).unwrap(),
            b"hello!"
        );
        assert!(matches!(
            decode_limited(BodyKind::Chunked, wire, 5),
            Err(BodyError::TooLarge(5))
        ));
        // A huge announced chunk is refused before any of its data arrives.
        assert!(matches!(
            decode_limited(BodyKind::Chunked, b"ffffffff\r\n", 1000),
            Err(BodyError::TooLarge(1000))
        ));
        assert!(matches!(
            decode_limited(BodyKind::UntilClose, b"hello!", 5),
            Err(BodyError::TooLarge(5))
        ));
    }

    #[test]
    fn decodes_length_and_leaves_the_next_message() {
        let (body, left) = decode(BodyKind::Length(5), b"helloGET").unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(left, 3);
        assert!(matches!(
            decode(BodyKind::Length(6), b"hello"),
            Err(BodyError::Truncated)
        ));
    }

    #[test]
    fn decodes_chunked_with_extensions_and_trailers() {
        let wire = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nExpires: never\r\n\r\nNEXT";
        let (body, left) = decode(BodyKind::Chunked, wire).unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(left, 4);
    }

    #[test]
    fn chunk_extensions_follow_their_grammar() {
        for good in [
            &b"5;a"[..],
            b"5;a=b",
            b"5 ; a = b ;c",
            b"5;a=\"quoted; \\\"x\\\" \xc3\xa9\"",
            b"5;a=\"\"",
            b"5\t;a=b\t",
            b"5;a=b;c=\"d\";e",
        ] {
            let line = String::from_utf8_lossy(good);
            assert_eq!(parse_chunk_size(good).ok(), Some(5), "{line:?}");
        }
        for bad in [
            &b"5;"[..],
            b"5;=x",
            b"5;a=",
            b"5;a=\"x",
            b"5;a=\"x\\",
            b"5;a b",
            b"5;a=b c",
            b"5;a=b;",
            b"5;a@b",
            b"5;a=\"x\"y",
            b"5;a=\"\x01\"",
            b"5 ",
            b"5x",
            b"5 ;",
        ] {
            let line = String::from_utf8_lossy(bad);
            assert!(parse_chunk_size(bad).is_err(), "{line:?}");
        }
    }

    #[test]
    fn refuses_bad_chunking() {
        for bad in [
            &b"5\r\nhelloX\r\n0\r\n\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"fffffffffffffffff\r\n",
            b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
            b"5\r\nhel",
        ] {
            assert!(
                decode(BodyKind::Chunked, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long_ext = [
            b"5;".to_vec(),
            vec![b'a'; MAX_CHUNK_LINE + 10],
            b"\r\nhello\r\n0\r\n\r\n".to_vec(),
        ]
        .concat();
        assert!(decode(BodyKind::Chunked, &long_ext).is_err());
        // Refused as soon as seen, not when the peer stops sending: a CR
        // alone, a size past 2^63-1.
        for (bad, why) in [
            (&b"5\rhello\r0\r\r"[..], "bare CR"),
            (b"5\r\nhello\r0\r\n\r\n", "bare CR"),
            (b"5\r\nhello\r\n0\r\nA: b\rC\r\n\r\n", "bare CR"),
            (b"fffffffffffffff5\r\nhello\r\n", "chunk size overflows"),
            (b"8000000000000000\r\n", "chunk size overflows"),
        ] {
            let got = decode(BodyKind::Chunked, bad);
            let shown = String::from_utf8_lossy(bad);
            assert!(
                matches!(got, Err(BodyError::BadChunk(w)) if w == why),
                "{shown}: {got:?}"
            );
        }
        let most = b"7fffffffffffffff\r\nhello";
        let got = decode(BodyKind::Chunked, most);
        assert!(matches!(got, Err(BodyError::Truncated)), "{got:?}");
    }

    /// Encodes `body` as chunks cut at `cuts`, each size line written in
    /// upper or lower case hex with optional leading zeros and extensions.
    fn encode(body: &[u8], cuts: &[(usize, u8)], trailers: &[&str]) -> Vec<u8> {
        const EXTENSIONS: &[&str] = &["", ";a", ";a=b", " ; a = \"q;\\\" x\"", ";x;y=1", "\t;z"];
        let mut out = Vec::new();
        let mut rest = body;
        let mut i = 0;
        while !rest.is_empty() {
            let (size, style) = cuts.get(i).copied().unwrap_or((rest.len(), 0));
            let n = size.clamp(1, rest.len());
            let size_line = match style % 3 {
                0 => format!("{n:x}"),
                1 => format!("{n:X}"),
                _ => format!("000{n:x}"),
            };
            let ext = EXTENSIONS[style as usize % EXTENSIONS.len()];
            out.extend_from_slice(format!("{size_line}{ext}\r\n").as_bytes());
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
            i += 1;
        }
        out.extend_from_slice(b"0\r\n");
        for t in trailers {
            out.extend_from_slice(format!("{t}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// A piece by `next`, or by `next_joined` if `joined`.
    fn piece<'c, S: Source>(
        reader: &mut BodyReader,
        conn: &'c mut BufConn<S>,
        joined: bool,
    ) -> Result<Option<&'c [u8]>, BodyError> {
        if joined {
            reader.next_joined(conn)
        } else {
            reader.next(conn)
        }
    }

    /// A stream that gives out `wire` at most `step` bytes a read, and
    /// counts its reads.
    struct Steps<'a> {
        wire: &'a [u8],
        step: usize,
        reads: usize,
    }

    impl io::Read for Steps<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            let n = self.step.min(buf.len()).min(self.wire.len());
            buf[..n].copy_from_slice(&self.wire[..n]);
            self.wire = &self.wire[n..];
            Ok(n)
        }
    }

    impl Source for Steps<'_> {}

    #[test]
    fn joined_pieces_hold_what_came_in_one_read_and_wait_for_no_more() {
        let body: Vec<u8> = (0..3000).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        for &b in &body {
            wire.extend_from_slice(&[b'1', b'\r', b'\n', b, b'\r', b'\n']);
        }
        wire.extend_from_slice(b"0\r\nT: 1\r\n\r\n");
        let steps = Steps {
            wire: &wire,
            step: 600,
            reads: 0,
        };
        let mut conn = BufConn::new(steps, 1024);
        let mut reader = BodyReader::new(BodyKind::Chunked);
        let (mut out, mut pieces) = (Vec::new(), 0);
        loop {
            let reads = conn.get_ref().reads;
            let Some(piece) = reader.next_joined(&mut conn).unwrap() else {
                break;
            };
            out.extend_from_slice(piece);
            pieces += 1;
            // A piece is what the buffer held once it had some: had it
            // waited for more, it would have read again.
            assert!(conn.get_ref().reads <= reads + 1, "piece {pieces}");
        }
        assert_eq!(out, body);
        // A read brings 100 one-byte chunks at most: each goes as one piece.
        let reads = conn.get_ref().reads;
        assert!(
            pieces <= reads && reads < 100,
            "{pieces} pieces, {reads} reads"
        );
    }

    #[test]
    fn a_joined_piece_ends_with_its_body_and_leaves_the_next_message() {
        let wire = b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\nNEXT";
        let mut conn = BufConn::new(&wire[..], 64);
        let mut reader = BodyReader::new(BodyKind::Chunked);
        assert_eq!(reader.next_joined(&mut conn).unwrap(), Some(&b"abcde"[..]));
        assert!(reader.is_done());
        assert_eq!(conn.buffered(), b"NEXT");
        assert_eq!(reader.next_joined(&mut conn).unwrap(), None);
        // A Content-Length body is one piece per read, as from `next`.
        let mut conn = BufConn::new(&b"helloGET"[..], 64);
        let mut reader = BodyReader::new(BodyKind::Length(5));
        assert_eq!(reader.next_joined(&mut conn).unwrap(), Some(&b"hello"[..]));
        assert!(reader.is_done());
        assert_eq!(conn.buffered(), b"GET");
    }

    #[test]
    fn a_bad_or_too_large_chunk_among_those_joined_ends_the_piece_and_fails_the_next() {
        // What came before it goes on, as from `next`.
        let mut conn = BufConn::new(&b"1\r\na\r\n1\r\nb\r\nzz\r\n"[..], 64);
        let mut reader = BodyReader::new(BodyKind::Chunked);
        assert_eq!(reader.next_joined(&mut conn).unwrap(), Some(&b"ab"[..]));
        let got = reader.next_joined(&mut conn);
        assert!(matches!(got, Err(BodyError::BadChunk(_))), "{got:?}");
        let wire = b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
        let mut conn = BufConn::new(&wire[..], 64);
        let mut reader = BodyReader::with_limit(BodyKind::Chunked, 5);
        assert_eq!(reader.next_joined(&mut conn).unwrap(), Some(&b"abc"[..]));
        let got = reader.next(&mut conn);
        assert!(matches!(got, Err(BodyError::TooLarge(5))), "{got:?}");
        // A bad first chunk fails the first call.
        let mut conn = BufConn::new(&b"zz\r\n"[..], 64);
        let got = BodyReader::new(BodyKind::Chunked).next_joined(&mut conn);
        assert!(matches!(got, Err(BodyError::BadChunk(_))), "{got:?}");
    }

    proptest::proptest! {
        /// Any chunked encoding of a body decodes to that body, whatever the
        /// chunk boundaries, extensions, trailers and read sizes, piece by
        /// piece or joined, and leaves the bytes after it (the next
        /// message) untouched.
        #[test]
        fn any_chunking_decodes_to_the_body(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            cuts in proptest::collection::vec((1usize..700, proptest::prelude::any::<u8>()), 0..20),
            trailer_count in 0usize..3,
            buffer in 1usize..64,
            joined in proptest::prelude::any::<bool>(),
        ) {
            let trailers = &["X-Checksum: 1", "Expires: never", "A:"][..trailer_count];
            let mut wire = encode(&body, &cuts, trailers);
            wire.extend_from_slice(b"NEXT");
            let mut conn = BufConn::new(&wire[..], buffer);
            let mut reader = BodyReader::new(BodyKind::Chunked);
            let mut out = Vec::new();
            while let Some(piece) = piece(&mut reader, &mut conn, joined).unwrap() {
                out.extend_from_slice(piece);
            }
            proptest::prop_assert_eq!(&out, &body);
            proptest::prop_assert_eq!(reader.bytes_read(), body.len() as u64);
            let mut rest = conn.buffered().to_vec();
            let mut tail = [0u8; 16];
            loop {
                let n = std::io::Read::read(conn.get_mut(), &mut tail).unwrap();
                if n == 0 { break; }
                rest.extend_from_slice(&tail[..n]);
            }
            proptest::prop_assert_eq!(rest, b"NEXT".to_vec());
        }

        /// Small chunks, many to a buffer, joined: the pieces still make
        /// the body, whatever the read sizes, and the next message is left.
        #[test]
        fn small_chunks_joined_decode_to_the_body(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
            cuts in proptest::collection::vec((1usize..16, proptest::prelude::any::<u8>()), 0..300),
            trailer_count in 0usize..3,
            step in 1usize..300,
            buffer in 16usize..512,
        ) {
            let trailers = &["X-Checksum: 1", "Expires: never", "A:"][..trailer_count];
            let mut wire = encode(&body, &cuts, trailers);
            wire.extend_from_slice(b"NEXT");
            let steps = Steps { wire: &wire, step, reads: 0 };
            let mut conn = BufConn::new(steps, buffer);
            let mut reader = BodyReader::new(BodyKind::Chunked);
            let mut out = Vec::new();
            while let Some(piece) = reader.next_joined(&mut conn).unwrap() {
                out.extend_from_slice(piece);
            }
            proptest::prop_assert_eq!(&out, &body);
            let mut rest = conn.buffered().to_vec();
            rest.extend_from_slice(conn.get_ref().wire);
            proptest::prop_assert_eq!(rest, b"NEXT".to_vec());
        }

        /// Decoding never panics on arbitrary bytes, and never returns more
        /// than the limit.
        #[test]
        fn arbitrary_bytes_never_panic(
            wire in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            limit in 0u64..600,
            joined in proptest::prelude::any::<bool>(),
        ) {
            let mut conn = BufConn::new(&wire[..], 7);
            let mut reader = BodyReader::with_limit(BodyKind::Chunked, limit);
            let mut total = 0u64;
            while let Ok(Some(piece)) = piece(&mut reader, &mut conn, joined) {
                total += piece.len() as u64;
            }
            proptest::prop_assert!(total <= limit);
        }
    }

    #[test]
    fn until_close_reads_everything() {
        let (body, _) = decode(BodyKind::UntilClose, b"all of it").unwrap();
        assert_eq!(body, b"all of it");
    }

    #[test]
    fn a_reader_is_done_only_once_its_body_has_ended() {
        let mut conn = BufConn::new(&b"3\r\nabc\r\n0\r\n\r\n"[..], 64);
        let mut reader = BodyReader::new(BodyKind::Chunked);
        assert!(!reader.is_done());
        assert_eq!(reader.next(&mut conn).unwrap(), Some(&b"abc"[..]));
        assert!(!reader.is_done());
        assert_eq!(reader.next(&mut conn).unwrap(), None);
        assert!(reader.is_done());
    }

    #[test]
    fn a_body_of_exactly_the_limit_is_read_whole() {
        for (kind, wire) in [
            (BodyKind::Length(5), &b"hello"[..]),
            (BodyKind::Chunked, b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"),
            (BodyKind::UntilClose, b"hello"),
        ] {
            let got = decode_limited(kind, wire, 5);
            assert_eq!(got.ok().as_deref(), Some(&b"hello"[..]), "{kind:?}");
        }
    }

    #[test]
    fn a_chunk_size_line_may_be_max_chunk_line_long_however_it_arrives() {
        for (len, fits) in [(MAX_CHUNK_LINE, true), (MAX_CHUNK_LINE + 1, false)] {
            let mut line = b"5;".to_vec();
            line.resize(len, b'a');
            let wire = [line, b"\r\nhello\r\n0\r\n\r\n".to_vec()].concat();
            // One byte a read: the buffer holds the whole line before its CR.
            for step in [1, wire.len()] {
                let steps = Steps {
                    wire: &wire,
                    step,
                    reads: 0,
                };
                let mut conn = BufConn::new(steps, 64);
                let mut reader = BodyReader::new(BodyKind::Chunked);
                let mut out = Vec::new();
                let got = loop {
                    match reader.next(&mut conn) {
                        Ok(Some(piece)) => out.extend_from_slice(piece),
                        Ok(None) => break Ok(out),
                        Err(e) => break Err(e),
                    }
                };
                if fits {
                    assert_eq!(got.ok().as_deref(), Some(&b"hello"[..]), "{step}");
                } else {
                    let line_too_long = matches!(got, Err(BodyError::BadChunk("line too long")));
                    assert!(line_too_long, "{step}: {got:?}");
                }
            }
        }
    }

    #[test]
    fn trailers_may_take_16_kib_with_their_line_ends_and_no_more() {
        // MAX_TRAILERS, as documented: a field's CRLF counts, not the
        // empty line that ends them.
        let most = 16 * 1024;
        let field = |len: usize| {
            let mut field = b"A:".to_vec();
            field.resize(len, b'x');
            field.extend_from_slice(b"\r\n");
            field
        };
        let body = |fields: &[Vec<u8>]| {
            let wire = [&b"0\r\n"[..], &fields.concat(), b"\r\n"].concat();
            decode(BodyKind::Chunked, &wire).map(|(body, _)| body)
        };
        assert!(body(&[field(most)]).is_ok());
        assert!(body(&[field(100), field(most - 102)]).is_ok());
        for over in [vec![field(most + 1)], vec![field(100), field(most - 101)]] {
            let got = body(&over);
            let line_too_long = matches!(got, Err(BodyError::BadChunk("line too long")));
            assert!(line_too_long, "{got:?}");
        }
    }

    #[test]
    fn whitespace_after_a_chunk_size_is_told_from_other_junk() {
        for (line, why) in [
            (&b"5 "[..], "trailing whitespace after chunk size"),
            (b"5\t", "trailing whitespace after chunk size"),
            (b"5 \t ", "trailing whitespace after chunk size"),
            (b"5x", "invalid chunk size or extension"),
            (b"5 x", "invalid chunk size or extension"),
        ] {
            let got = parse_chunk_size(line);
            let shown = String::from_utf8_lossy(line);
            assert!(
                matches!(got, Err(BodyError::BadChunk(w)) if w == why),
                "{shown:?}: {got:?}"
            );
        }
    }

    #[test]
    fn a_trailer_field_has_a_token_name_and_a_value_without_controls() {
        for good in [
            &b"A:"[..],
            b"A: b",
            b"A:\tb c\t",
            b"X-Y: \xc3\xa9",
            b"!#$%&'*+-.^_`|~0aZ: v",
        ] {
            assert!(is_field_line(good), "{:?}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b": b"[..],
            b"A",
            b"A b: c",
            b"A : c",
            b"A\x01: b",
            b"\xc3\xa9: b",
            b"A: b\x01",
            b"A: b\x00",
            b"A: b\x7f",
        ] {
            assert!(!is_field_line(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_response_with_both_framing_fields_forbids_reuse() {
        let reuse_forbidden = |b: &[u8]| {
            let mut s = 0;
            let len = find_head_end(b, &mut s).unwrap().unwrap();
            response_forbids_reuse(&parse_response(&b[..len]).unwrap())
        };
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(reuse_forbidden(both));
        assert!(!reuse_forbidden(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
        ));
        assert!(!reuse_forbidden(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
    }

    #[test]
    fn eight_transfer_codings_are_looked_at_and_nine_are_refused() {
        // Eight: read, and refused for the coding before chunked (501).
        let eight = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: a, b, c, d, e, f, gzip, chunked\r\n\r\n";
        assert_eq!(request(eight).map_err(|e| e.status()), Err(501));
        let nine = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: a, b, c, d, e, f, g, gzip, chunked\r\n\r\n";
        assert_eq!(request(nine).map_err(|e| e.status()), Err(400));
    }

    #[test]
    fn only_1xx_and_204_forbid_a_content_length() {
        for status in [100, 101, 199, 204] {
            assert!(forbids_content_length(status), "{status}");
        }
        for status in [200, 201, 205, 304, 404] {
            assert!(!forbids_content_length(status), "{status}");
        }
    }

    #[test]
    fn a_complete_chunked_body_is_decoded_from_what_arrived_and_nothing_else() {
        let wire = b"3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n";
        let whole = |body: &[u8], used: usize, trailers: &[u8]| Whole {
            body: body.to_vec(),
            used,
            trailers: trailers.to_vec(),
        };
        assert_eq!(
            decode_complete_chunked(wire, 64),
            Some(whole(b"abcde", wire.len(), b"T: 1\r\n"))
        );
        // Bytes after its end: not a body that arrived alone.
        let mut more = wire.to_vec();
        more.extend_from_slice(b"HTTP/1.1 200");
        assert_eq!(decode_complete_chunked(&more, 64), None);
        assert_eq!(
            decode_complete_chunked(b"0\r\n\r\n", 64),
            Some(whole(b"", 5, b""))
        );
        // Not all there yet, at every cut.
        let whole = b"3\r\nabc\r\n0\r\n\r\n";
        for cut in 0..whole.len() {
            assert_eq!(decode_complete_chunked(&whole[..cut], 64), None, "{cut}");
        }
        // Larger than the limit, or malformed: left to the stream.
        assert_eq!(decode_complete_chunked(whole, 2), None);
        assert_eq!(decode_complete_chunked(b"3\nabc\r\n0\r\n\r\n", 64), None);
        assert_eq!(decode_complete_chunked(b"zz\r\n", 64), None);
    }

    #[test]
    fn trailer_fields_are_kept_to_pass_on_but_those_needed_before_the_content() {
        let wire = b"2\r\nab\r\n0\r\nX-Checksum: 9f\r\nContent-Length: 99\r\n\
                     set-cookie: a=b\r\nServer-Timing: db;dur=53\r\nTRANSFER-ENCODING: x\r\n\r\n";
        let (body, _) = decode(BodyKind::Chunked, wire).unwrap();
        assert_eq!(body, b"ab");
        let mut conn = BufConn::new(&wire[..], 7);
        let mut reader = BodyReader::new(BodyKind::Chunked);
        while reader.next(&mut conn).unwrap().is_some() {}
        assert_eq!(
            reader.trailers(),
            b"X-Checksum: 9f\r\nServer-Timing: db;dur=53\r\n"
        );
        assert_eq!(
            last_chunk_with(reader.trailers()),
            b"0\r\nX-Checksum: 9f\r\nServer-Timing: db;dur=53\r\n\r\n"
        );
        assert_eq!(last_chunk_with(b""), LAST_CHUNK);
    }

    #[test]
    fn chunked_not_last_and_chunked_twice_are_refused_for_what_they_are() {
        // Both are a 400; the reason tells a coding after chunked from a
        // second chunked.
        let why = |te: &str| {
            let head = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n");
            request(head.as_bytes())
        };
        let not_final = Err(HeadError::Malformed(
            "chunked is not the final transfer coding",
        ));
        assert_eq!(why("chunked, identity"), not_final);
        assert_eq!(why("identity"), not_final);
        let twice = Err(HeadError::Malformed("chunked applied twice"));
        assert_eq!(why("chunked, chunked"), twice);
        assert_eq!(why("chunked, gzip, chunked"), twice);
    }

    #[test]
    fn a_complete_chunked_body_takes_only_its_own_bytes_of_what_arrived() {
        // A whole next message after it also ends in an empty line: the
        // count taken must stop at the body's end, or the caller consumes
        // that message too.
        let body = b"3\r\nabc\r\n0\r\n\r\n";
        let wire = [&body[..], b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"].concat();
        let whole = decode_complete_chunked(&wire, 64).unwrap();
        assert_eq!((&whole.body[..], whole.used), (&b"abc"[..], body.len()));
    }

    #[test]
    fn a_quoted_pair_in_a_chunk_extension_escapes_only_text() {
        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ): a backslash
        // does not let a control character into the value.
        for ctl in [0x00, 0x01, 0x1f, 0x7f] {
            let line = [&b"5;a=\"\\"[..], &[ctl], b"\""].concat();
            assert!(parse_chunk_size(&line).is_err(), "{ctl:#x}");
        }
        assert_eq!(parse_chunk_size(b"5;a=\"\\\t\\ \\\x80\"").ok(), Some(5));
    }
}
