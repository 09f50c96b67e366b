//! A FastCGI server's records turned back into the HTTP response the
//! proxy reads: `FCGI_STDOUT` is a CGI response (RFC 3875 §6), its
//! header fields, a blank line and the body; `FCGI_STDERR` is logged;
//! `FCGI_END_REQUEST` ends it.

use super::record::{Ended, Header, END_REQUEST, HEADER_LEN, REQUEST_ID, STDERR, STDOUT};
use super::request::Begun;
use crate::digits::{push_field, Decimal};
use crate::http::body::{chunk_size_line, LAST_CHUNK};
use crate::http::head::{is_tchar, reason_phrase, MAX_HEADERS};

/// The most a CGI header may take, as a backend's HTTP head may.
const MAX_CGI_HEAD: usize = 64 * 1024;
/// The most of one `FCGI_STDERR` record kept for the log.
const MAX_STDERR: usize = 4 * 1024;

/// Reads one reply at a time, for the request [`Decoder::begin`] said
/// was sent.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The HTTP response so far, not yet read, from `out_at`.
    out: Vec<u8>,
    out_at: usize,
    /// The head of an answer the script gave no length, all but its
    /// framing: held until the proxy reads it, when the framing is
    /// known. The whole body here by then, it goes with its length
    /// (which the proxy sends on as it came, with no chunk to undo);
    /// else in chunks.
    unframed_head: Option<Vec<u8>>,
    /// The reply ended while `unframed_head` waited: the body is whole.
    ended: bool,
    /// Body bytes of such an answer not framed yet: what came by the
    /// time the proxy reads goes as one chunk, however many records
    /// brought it (PHP sends one per 4 KiB of output).
    unframed: Vec<u8>,
    /// What goes out only once the reply has ended: the last bytes of a
    /// body of known length, or the whole head of an answer without a
    /// body. The proxy has then read `FCGI_END_REQUEST` before it takes
    /// the response for done, and gives the connection back idle, not
    /// with the record still to come on it.
    held: Vec<u8>,
    /// A record header read in part.
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// The record being read.
    record: Option<Record>,
    /// The content of a record taken whole (`FCGI_END_REQUEST`, a line
    /// of `FCGI_STDERR`).
    small: Vec<u8>,
    state: State,
    /// What came on `FCGI_STDERR`, for the stream to log.
    pub said: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
struct Record {
    kind: u8,
    content_left: usize,
    padding_left: usize,
}

#[derive(Debug, Default)]
enum State {
    /// No request is waiting for its reply.
    #[default]
    Idle,
    /// The CGI header so far.
    Head {
        cgi: Vec<u8>,
        request: Begun,
    },
    Body(Framing),
}

/// How the body goes on to the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// In HTTP chunks: the CGI response gave no length.
    Chunked,
    /// This much more of the `Content-Length` it gave.
    Length(u64),
    /// None goes: a `HEAD`, a 204 or a 304.
    Nothing,
}

/// What makes a reply unreadable: the connection cannot go on.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("the FastCGI server sent a record of version {0}")]
    Version(u8),
    #[error("the FastCGI server sent a record for request {0}, not ours")]
    RequestId(u16),
    #[error("the FastCGI server sent a record of type {0}, which a responder does not send")]
    Kind(u8),
    #[error("the FastCGI server sent output with no request waiting")]
    Unasked,
    #[error("the FastCGI server refused the request: {}", Ended::words(*.0))]
    Refused(u8),
    #[error("the FastCGI server's FCGI_END_REQUEST is {0} bytes, not 8")]
    EndLength(usize),
    #[error("the FastCGI server ended the request before the end of its CGI header")]
    NoHead,
    #[error("the FastCGI server ended the request {0} bytes short of its Content-Length")]
    Short(u64),
    #[error("the CGI header is over {MAX_CGI_HEAD} bytes")]
    HeadTooLarge,
    #[error("the CGI header is malformed: {0}")]
    BadHead(&'static str),
}

impl Decoder {
    /// A request was sent: its reply is read from now on. A `HEAD`'s has
    /// no body, whatever the server sends after its header; one to a
    /// server not asked to keep the connection says `Connection: close`,
    /// so the proxy does not pool it.
    pub fn begin(&mut self, request: Begun) {
        self.state = State::Head {
            cgi: Vec::new(),
            request,
        };
    }

    /// Whether response bytes are waiting to be read.
    pub fn has_output(&self) -> bool {
        self.out_at < self.out.len() || self.unframed_head.is_some() || !self.unframed.is_empty()
    }

    /// How many response bytes are waiting to be read, about (the
    /// framing of what is not framed yet aside).
    pub fn waiting(&self) -> usize {
        self.out.len() - self.out_at + self.unframed.len()
    }

    /// Whether a reply is being read: its end has not come.
    pub fn is_reading(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Whether the connection stands between replies, with nothing read
    /// in part: one that may carry another request.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
            && self.record.is_none()
            && self.header_len == 0
            && !self.has_output()
    }

    /// Copies response bytes into `buf`; how many.
    pub fn take(&mut self, buf: &mut [u8]) -> usize {
        if self.out_at == self.out.len() {
            // Framed straight into `buf` when it fits, copied once.
            let framed = self.frame(buf);
            if framed > 0 {
                return framed;
            }
        }
        let waiting = &self.out[self.out_at..];
        let n = waiting.len().min(buf.len());
        buf[..n].copy_from_slice(&waiting[..n]);
        self.out_at += n;
        if self.out_at == self.out.len() {
            self.out.clear();
            self.out_at = 0;
        }
        n
    }

    /// Gives back the memory of an idle connection's buffers.
    pub fn release(&mut self) {
        if !self.has_output() {
            self.out = Vec::new();
            self.out_at = 0;
            self.unframed = Vec::new();
        }
        self.held = Vec::new();
    }

    /// Reads `bytes`, the next the server sent.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ReplyError> {
        while !bytes.is_empty() {
            let Some(record) = &mut self.record else {
                let take = (HEADER_LEN - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + take]
                    .copy_from_slice(&bytes[..take]);
                self.header_len += take;
                bytes = &bytes[take..];
                if self.header_len == HEADER_LEN {
                    self.header_len = 0;
                    self.start_record()?;
                }
                continue;
            };
            if record.content_left > 0 {
                let take = record.content_left.min(bytes.len());
                record.content_left -= take;
                let kind = record.kind;
                self.content(kind, &bytes[..take])?;
                bytes = &bytes[take..];
            } else {
                let take = record.padding_left.min(bytes.len());
                record.padding_left -= take;
                bytes = &bytes[take..];
            }
            self.end_record_if_read()?;
        }
        Ok(())
    }

    fn start_record(&mut self) -> Result<(), ReplyError> {
        let header = Header::parse(&self.header).ok_or(ReplyError::Version(self.header[0]))?;
        if header.request_id != REQUEST_ID {
            return Err(ReplyError::RequestId(header.request_id));
        }
        if ![STDOUT, STDERR, END_REQUEST].contains(&header.kind) {
            return Err(ReplyError::Kind(header.kind));
        }
        self.record = Some(Record {
            kind: header.kind,
            content_left: header.content_len as usize,
            padding_left: header.padding_len as usize,
        });
        self.end_record_if_read()
    }

    fn content(&mut self, kind: u8, content: &[u8]) -> Result<(), ReplyError> {
        match kind {
            STDOUT => self.stdout(content),
            STDERR => {
                let room = MAX_STDERR.saturating_sub(self.small.len());
                self.small
                    .extend_from_slice(&content[..content.len().min(room)]);
                Ok(())
            }
            _ => {
                self.small.extend_from_slice(content);
                match self.small.len() {
                    0..=8 => Ok(()),
                    n => Err(ReplyError::EndLength(n)),
                }
            }
        }
    }

    fn end_record_if_read(&mut self) -> Result<(), ReplyError> {
        let Some(record) = self
            .record
            .filter(|r| r.content_left == 0 && r.padding_left == 0)
        else {
            return Ok(());
        };
        self.record = None;
        let small = std::mem::take(&mut self.small);
        match record.kind {
            STDERR => {
                let text = String::from_utf8_lossy(&small);
                let text = text.trim_end();
                if !text.is_empty() {
                    self.said.push(text.to_owned());
                }
                Ok(())
            }
            END_REQUEST => {
                let body: [u8; 8] = (small.as_slice().try_into())
                    .map_err(|_| ReplyError::EndLength(small.len()))?;
                match Ended::parse(&body) {
                    Ended::Complete => self.end(),
                    Ended::Refused(status) => Err(ReplyError::Refused(status)),
                }
            }
            // An empty STDOUT record ends the stream; the request ends
            // with FCGI_END_REQUEST.
            _ => Ok(()),
        }
    }

    fn stdout(&mut self, content: &[u8]) -> Result<(), ReplyError> {
        match &mut self.state {
            State::Idle => Err(ReplyError::Unasked),
            State::Head { cgi, request } => {
                let searched_from = cgi.len().saturating_sub(2);
                cgi.extend_from_slice(content);
                let Some((head_end, body_at)) = cgi_head_end(cgi, searched_from) else {
                    return match cgi.len() > MAX_CGI_HEAD {
                        true => Err(ReplyError::HeadTooLarge),
                        false => Ok(()),
                    };
                };
                let request = *request;
                let cgi = std::mem::take(cgi);
                let mut head = Vec::with_capacity(head_end + 64);
                let framing = http_head(&cgi[..head_end], request, &mut head)?;
                match framing {
                    Framing::Chunked => self.unframed_head = Some(head),
                    Framing::Length(1..) => self.out.extend_from_slice(&head),
                    Framing::Nothing | Framing::Length(0) => self.held = head,
                }
                self.state = State::Body(framing);
                self.stdout(&cgi[body_at..])
            }
            State::Body(framing) => {
                if content.is_empty() {
                    return Ok(());
                }
                match framing {
                    Framing::Chunked => self.unframed.extend_from_slice(content),
                    Framing::Length(left) => {
                        let take = content
                            .len()
                            .min(usize::try_from(*left).unwrap_or(usize::MAX));
                        *left -= take as u64;
                        // Past its length, the rest is dropped: it was
                        // never part of the response the length framed.
                        let to = match *left {
                            0 => &mut self.held,
                            _ => &mut self.out,
                        };
                        to.extend_from_slice(&content[..take]);
                    }
                    Framing::Nothing => {}
                }
                Ok(())
            }
        }
    }

    /// Frames what waits of an answer the script gave no length: its
    /// head, once (with a `Content-Length` when the body is whole, else
    /// for chunks), and the body since the last read as one chunk (or as
    /// it is, with a length). Into `buf` when it all fits there (how
    /// many bytes), else into `out` (0).
    fn frame(&mut self, buf: &mut [u8]) -> usize {
        let body_len = self.unframed.len();
        let (mut before, after): (Vec<u8>, &[u8]) = match self.unframed_head.take() {
            None if body_len == 0 => return 0,
            None => (Vec::with_capacity(16), b"\r\n"),
            Some(mut head) if self.ended => {
                push_field(&mut head, "Content-Length", body_len as u64);
                head.extend_from_slice(b"\r\n");
                (head, b"")
            }
            Some(mut head) => {
                head.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                match body_len {
                    0 => (head, b""),
                    _ => (head, b"\r\n"),
                }
            }
        };
        let chunked = !after.is_empty();
        if chunked {
            chunk_size_line(body_len, &mut before);
        }
        self.ended = false;
        let total = before.len() + body_len + after.len();
        if total <= buf.len() {
            let (head, rest) = buf.split_at_mut(before.len());
            head.copy_from_slice(&before);
            let (body, tail) = rest.split_at_mut(body_len);
            body.copy_from_slice(&self.unframed);
            tail[..after.len()].copy_from_slice(after);
            self.unframed.clear();
            return total;
        }
        self.out.extend_from_slice(&before);
        self.out.extend_from_slice(&self.unframed);
        self.out.extend_from_slice(after);
        self.unframed.clear();
        0
    }

    /// `FCGI_END_REQUEST`, complete: the response ends.
    fn end(&mut self) -> Result<(), ReplyError> {
        match std::mem::take(&mut self.state) {
            State::Idle => Err(ReplyError::Unasked),
            State::Head { .. } => Err(ReplyError::NoHead),
            State::Body(Framing::Length(left @ 1..)) => Err(ReplyError::Short(left)),
            // Not read yet: it goes whole, with its length.
            State::Body(Framing::Chunked) if self.unframed_head.is_some() => {
                self.ended = true;
                Ok(())
            }
            State::Body(Framing::Chunked) => {
                self.frame(&mut []);
                self.out.extend_from_slice(LAST_CHUNK);
                Ok(())
            }
            State::Body(Framing::Length(0) | Framing::Nothing) => {
                let held = std::mem::take(&mut self.held);
                self.out.extend_from_slice(&held);
                Ok(())
            }
        }
    }
}

/// Where the CGI header in `cgi` ends (at its last line's end) and its
/// body begins, once its blank line has come: lines may end in `\n` or
/// `\r\n`. `searched_from`: no end begins before it.
fn cgi_head_end(cgi: &[u8], searched_from: usize) -> Option<(usize, usize)> {
    // No field at all: the blank line comes first.
    if searched_from == 0 {
        if cgi.starts_with(b"\n") {
            return Some((0, 1));
        }
        if cgi.starts_with(b"\r\n") {
            return Some((0, 2));
        }
    }
    memchr::memchr_iter(b'\n', &cgi[searched_from..])
        .map(|i| searched_from + i)
        .find_map(|i| match &cgi[i + 1..] {
            [b'\n', ..] => Some((i + 1, i + 2)),
            [b'\r', b'\n', ..] => Some((i + 1, i + 3)),
            _ => None,
        })
}

/// Writes the HTTP head of the CGI header `cgi` (its lines, without the
/// blank one) into `out`, and says how its body goes: with
/// [`Framing::Chunked`], all but the framing field and the blank line,
/// which [`Decoder::frame`] writes once it knows whether the body is
/// whole. `Status` gives the
/// status (200 without one; 302 with a `Location` alone, RFC 3875
/// §6.2.3); the fields that frame or end a connection are the proxy's to
/// write, not the script's.
fn http_head(cgi: &[u8], request: Begun, out: &mut Vec<u8>) -> Result<Framing, ReplyError> {
    let mut status = None;
    let mut length: Option<u64> = None;
    let mut location = false;
    let mut fields = Vec::with_capacity(cgi.len() + 32);
    let mut count = 0;
    for line in cgi.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        // As many as the proxy reads in any backend's head, with the
        // two fields added here (framing, and a close).
        count += 1;
        if count > MAX_HEADERS - 2 {
            return Err(ReplyError::BadHead("more fields than a head may have"));
        }
        let (name, value) = line
            .iter()
            .position(|&b| b == b':')
            .map(|at| (&line[..at], line[at + 1..].trim_ascii()))
            .ok_or(ReplyError::BadHead("a line without a colon"))?;
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(ReplyError::BadHead("a field name that is no token"));
        }
        // RFC 9110 §5.5: visible characters, spaces and tabs, and bytes
        // past ASCII; never a control character (a CR above all, which
        // would end the line for some readers and not others).
        if value.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
            return Err(ReplyError::BadHead(
                "a field value with a control character",
            ));
        }
        let named = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if named("status") {
            if status.is_some() {
                return Err(ReplyError::BadHead("Status twice"));
            }
            status = Some(parse_status(value)?);
            continue;
        }
        if named("content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(ReplyError::BadHead("a bad Content-Length"))?;
            if length.replace(n).is_some_and(|was| was != n) {
                return Err(ReplyError::BadHead("two Content-Lengths"));
            }
            continue;
        }
        if ["transfer-encoding", "connection", "keep-alive"]
            .iter()
            .any(|n| named(n))
        {
            continue;
        }
        location |= named("location");
        fields.extend_from_slice(name);
        fields.extend_from_slice(b": ");
        fields.extend_from_slice(value);
        fields.extend_from_slice(b"\r\n");
    }
    let (code, reason) = match status {
        Some(given) => given,
        None if location => (302, None),
        None => (200, None),
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(Decimal::new(u64::from(code)).as_bytes());
    out.push(b' ');
    match reason {
        Some(reason) => out.extend_from_slice(&reason),
        None => out.extend_from_slice(reason_phrase(code).as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&fields);
    if let Some(n) = length {
        push_field(out, "Content-Length", n);
    }
    if !request.keep_conn {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    let bodiless = request.head_only || code == 204 || code == 304;
    let framing = match (bodiless, length) {
        (true, _) => Framing::Nothing,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => return Ok(Framing::Chunked),
    };
    out.extend_from_slice(b"\r\n");
    Ok(framing)
}

/// `Status: 404 Not Found`: a final status and its reason, if given.
fn parse_status(value: &[u8]) -> Result<(u16, Option<Vec<u8>>), ReplyError> {
    let bad = ReplyError::BadHead("a bad Status");
    let (code, reason) = match value.iter().position(|&b| b == b' ') {
        Some(at) => (&value[..at], value[at + 1..].trim_ascii()),
        None => (value, &[][..]),
    };
    let code = std::str::from_utf8(code)
        .ok()
        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (200..=599).contains(c))
        .ok_or(bad)?;
    let reason = (!reason.is_empty()).then(|| reason.to_vec());
    Ok((code, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::record::{header, push_stream};

    const KEPT: Begun = Begun {
        head_only: false,
        keep_conn: true,
    };

    fn end_request(status: u8) -> Vec<u8> {
        let mut out = header(END_REQUEST, 8).to_vec();
        out.extend_from_slice(&[0, 0, 0, 0, status, 0, 0, 0]);
        out
    }

    /// The server's reply: `stdout` in records of `piece` bytes, then the
    /// end of the request.
    fn reply(stdout: &[u8], piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in stdout.chunks(piece) {
            push_stream(&mut out, STDOUT, part);
        }
        out.extend_from_slice(&header(STDOUT, 0));
        out.extend(end_request(0));
        out
    }

    /// What the proxy reads of `bytes`, fed `by` bytes at a time.
    fn read(bytes: &[u8], head_only: bool, by: usize) -> Result<Vec<u8>, ReplyError> {
        let mut decoder = Decoder::default();
        decoder.begin(Begun {
            head_only,
            keep_conn: true,
        });
        let mut http = Vec::new();
        for part in bytes.chunks(by) {
            decoder.feed(part)?;
            let mut buf = [0; 7];
            while decoder.has_output() {
                let n = decoder.take(&mut buf);
                http.extend_from_slice(&buf[..n]);
            }
        }
        assert!(decoder.is_idle(), "the reply is read to its end");
        Ok(http)
    }

    #[test]
    fn a_reply_without_a_length_goes_with_one_when_whole_else_in_a_chunk_a_read() {
        let cgi = b"Content-Type: text/html\nX-Powered-By: PHP\n\n<p>hello</p>";
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Powered-By: PHP\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        // Whole by the time the proxy reads, in however many records it
        // came: with its length.
        let http = read(&reply(cgi, 5), false, 1000).unwrap();
        let whole = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Powered-By: PHP\r\n\
                     Content-Length: 12\r\n\r\n<p>hello</p>";
        assert_eq!(String::from_utf8(http).unwrap(), whole);
        // Read as it comes: in chunks, one for what came before each read.
        let mut decoder = Decoder::default();
        decoder.begin(KEPT);
        let bytes = reply(cgi, 5);
        let (first, rest) = bytes.split_at(bytes.len() - 24);
        decoder.feed(first).unwrap();
        let mut buf = [0; 200];
        let n = decoder.take(&mut buf);
        decoder.feed(rest).unwrap();
        let m = decoder.take(&mut buf[n..]);
        let want = format!("{head}c\r\n<p>hello</p>\r\n0\r\n\r\n");
        assert_eq!(String::from_utf8_lossy(&buf[..n + m]), want);
        for by in [1, 3] {
            let http = read(&reply(cgi, 5), false, by).unwrap();
            assert!(http.starts_with(head.as_bytes()), "fed by {by}");
            let mut reader = crate::http::BodyReader::new(crate::http::BodyKind::Chunked);
            let mut body = Vec::new();
            let mut wire = crate::http::BufConn::new(&http[head.len()..], 64);
            while let Some(piece) = reader.next(&mut wire).unwrap() {
                body.extend_from_slice(piece);
            }
            assert_eq!(body, b"<p>hello</p>", "fed by {by}");
        }
    }

    #[test]
    fn status_location_and_a_length_are_read_as_cgi_says() {
        let http = read(
            &reply(
                b"Status: 404 Gone Fishing\r\nContent-Length: 4\r\n\r\nnope",
                3,
            ),
            false,
            2,
        )
        .unwrap();
        assert_eq!(
            http,
            b"HTTP/1.1 404 Gone Fishing\r\nContent-Length: 4\r\n\r\nnope"
        );
        let http = read(&reply(b"Location: /login\r\n\r\n", 100), false, 100).unwrap();
        assert!(
            http.starts_with(b"HTTP/1.1 302 Found\r\nLocation: /login\r\n"),
            "{http:?}"
        );
        let http = read(&reply(b"Status: 503\nRetry-After: 5\n\n", 100), false, 100).unwrap();
        assert!(http.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
        // A body past its length is dropped.
        let http = read(&reply(b"Content-Length: 2\n\nabcdef", 100), false, 100).unwrap();
        assert_eq!(http, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab");
        // No field at all.
        let http = read(&reply(b"\r\nbody", 100), false, 100).unwrap();
        assert!(
            http.ends_with(b"OK\r\nContent-Length: 4\r\n\r\nbody"),
            "{http:?}"
        );
    }

    #[test]
    fn the_last_of_a_known_length_waits_for_the_end_of_the_request() {
        let mut decoder = Decoder::default();
        decoder.begin(KEPT);
        let mut bytes = Vec::new();
        push_stream(&mut bytes, STDOUT, b"Content-Length: 3\n\nabc");
        decoder.feed(&bytes).unwrap();
        let mut buf = [0; 100];
        let n = decoder.take(&mut buf);
        assert_eq!(&buf[..n], b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
        assert!(!decoder.has_output(), "the body's last bytes are held");
        decoder.feed(&end_request(0)).unwrap();
        let n = decoder.take(&mut buf);
        assert_eq!(&buf[..n], b"abc");
        assert!(decoder.is_idle());
    }

    #[test]
    fn an_answer_on_a_connection_the_server_closes_says_so() {
        let mut decoder = Decoder::default();
        decoder.begin(Begun {
            head_only: false,
            keep_conn: false,
        });
        decoder
            .feed(&reply(b"Content-Length: 2\n\nok", 100))
            .unwrap();
        let mut buf = [0; 100];
        let n = decoder.take(&mut buf);
        assert_eq!(
            &buf[..n],
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
    }

    #[test]
    fn a_head_request_or_a_304_gets_no_body_whatever_the_script_printed() {
        let cgi = b"Content-Type: text/plain\n\nall of it";
        let http = read(&reply(cgi, 100), true, 100).unwrap();
        assert_eq!(http, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
        let http = read(&reply(b"Status: 304\nETag: \"a\"\n\n", 100), false, 100).unwrap();
        assert_eq!(http, b"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n");
    }

    #[test]
    fn as_many_fields_as_leave_room_for_the_two_added_and_no_more() {
        let fields = |n: usize| [b"X-A: b\n".repeat(n), b"\nbody".to_vec()].concat();
        let http = read(&reply(&fields(254), 60_000), false, 100_000).unwrap();
        let head_len = crate::http::head::find_head_end(&http, &mut 0)
            .unwrap()
            .unwrap();
        let head = crate::http::head::parse_response(&http[..head_len]).unwrap();
        assert_eq!(head.headers.iter().count(), 255, "and a framing field");
        let e = read(&reply(&fields(255), 60_000), false, 100_000).unwrap_err();
        assert!(matches!(e, ReplyError::BadHead(_)), "{e:?}");
    }

    #[test]
    fn stderr_is_kept_for_the_log_and_padding_skipped() {
        let mut bytes = Vec::new();
        let mut record = header(STDERR, 12).to_vec();
        record[6] = 3; // padding
        bytes.extend(record);
        bytes.extend_from_slice(b"PHP Warning\n\0\0\0");
        bytes.extend(reply(b"\nok", 100));
        let mut decoder = Decoder::default();
        decoder.begin(KEPT);
        decoder.feed(&bytes).unwrap();
        assert_eq!(decoder.said, ["PHP Warning"]);
        assert!(decoder.has_output());
    }

    #[test]
    fn what_a_responder_may_not_send_is_an_error() {
        let refused = read(&end_request(2), false, 100).unwrap_err();
        assert_eq!(refused, ReplyError::Refused(2));
        assert!(refused.to_string().contains("overloaded"));
        let no_head = read(&reply(b"Content-Type: text/plain\n", 100), false, 100);
        assert_eq!(no_head.unwrap_err(), ReplyError::NoHead);
        let short = read(&reply(b"Content-Length: 10\n\nabc", 100), false, 100);
        assert_eq!(short.unwrap_err(), ReplyError::Short(7));
        for cgi in [
            &b"Status: 101\n\n"[..],
            b"Status: abc\n\n",
            b"no colon here\n\n",
            b"Bad Name: x\n\n",
            b"Content-Length: -1\n\n",
            b"Content-Length: 1\nContent-Length: 2\n\n",
            b"X-A: a\x13b\n\n",
            &[b"X-A: b\n".repeat(300), b"\n".to_vec()].concat(),
            b"X-A: a\rb\n\n",
        ] {
            let e = read(&reply(cgi, 100), false, 100).unwrap_err();
            assert!(matches!(e, ReplyError::BadHead(_)), "{cgi:?}: {e:?}");
        }
        let mut other = header(STDOUT, 0);
        other[3] = 2;
        assert_eq!(
            read(&other, false, 8).unwrap_err(),
            ReplyError::RequestId(2)
        );
        let mut decoder = Decoder::default();
        let mut stray = Vec::new();
        push_stream(&mut stray, STDOUT, b"x");
        assert_eq!(decoder.feed(&stray).unwrap_err(), ReplyError::Unasked);
        let huge = vec![b'a'; MAX_CGI_HEAD + 1];
        let e = read(&reply(&huge, 60_000), false, 100_000).unwrap_err();
        assert_eq!(e, ReplyError::HeadTooLarge);
    }
}
