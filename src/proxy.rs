//! One client connection, start to end: read a request, forward it to a
//! backend, relay the response, log it, and go round again while the
//! connection stays alive. This module holds the proxy's policy; the byte
//! level lives in `http`, backends in `upstream`.

use crate::access_log::{LogSender, Record};
use crate::config::Config;
use crate::http::body::{chunk_size_line, response_forbids_reuse, LAST_CHUNK};
use crate::http::conn::is_timeout;
use crate::http::forward::{add_forwarded, strip_hop_by_hop, Forwarded};
use crate::http::head::{
    find_head_end, parse_request, parse_response, reason_phrase, RequestLimits,
};
use crate::http::{
    BodyError, BodyKind, BodyReader, BufConn, HeadError, RequestHead, ResponseHead, Version,
};
use crate::upstream::{Upstream, UpstreamConn, Upstreams};
use std::io::{self, IoSlice, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Initial size of a client connection's read buffer (it grows up to the
/// head limit for a large head, and is freed while the connection idles).
const CLIENT_BUFFER: usize = 16 * 1024;
/// Largest request head accepted (431 past it); nginx's default allows
/// 4 x 8 KiB, HAProxy's 16 KiB buffers hold about as much.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Largest response head accepted from a backend (502 past it).
const MAX_RESPONSE_HEAD: usize = 32 * 1024;
/// Request bodies up to this size are read whole before they are sent:
/// such a request can be retried on a fresh connection, and head and body
/// leave in one write.
const REPLAYABLE_BODY: u64 = 64 * 1024;
/// Response bodies up to this size are gathered whole before the head is
/// written, so head and body leave in one `writev`.
const GATHERED_BODY: u64 = 64 * 1024;
/// Empty lines tolerated before a request-line (RFC 9112 §2.2 asks for at
/// least one; unbounded would let a client idle forever on CRLFs).
const MAX_LEADING_EMPTY_LINES: usize = 4;
/// This hop's entry in `Via`.
const VIA: &str = "1.1 inverso";

/// What every connection thread shares.
pub struct Shared {
    pub config: Config,
    pub upstreams: Upstreams,
    pub log: LogSender,
    pub shutting_down: AtomicBool,
}

/// Serves one client connection until it closes, times out, or the server
/// shuts down. `idle` is raised while the connection waits for a request,
/// so shutdown can close exactly the connections that are not mid-request.
pub fn serve(stream: TcpStream, peer: SocketAddr, shared: &Shared, idle: &AtomicBool) {
    let timeout = shared.config.connection_timeout;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let mut client = Client {
        conn: BufConn::new(stream, CLIENT_BUFFER),
        peer: peer.ip(),
        timeout,
    };
    loop {
        idle.store(true, Ordering::SeqCst);
        if shared.shutting_down.load(Ordering::SeqCst) && client.conn.buffered().is_empty() {
            break;
        }
        let head = client.read_head();
        idle.store(false, Ordering::SeqCst);
        let time = SystemTime::now();
        let started = Instant::now();
        let (outcome, line) = match head {
            HeadRead::Ready(len) => exchange(&mut client, len, shared),
            HeadRead::Closed => break,
            HeadRead::Refused(status, request_line) => {
                let bytes = client.send_error(status, true);
                (Outcome::closing(status, bytes), LogLine::raw(request_line))
            }
        };
        shared.log.log(Record {
            time,
            client: client.peer,
            request_line: line.request_line,
            status: outcome.status,
            bytes: outcome.bytes,
            referer: line.referer,
            user_agent: line.user_agent,
            upstream: outcome.upstream,
            cache: None,
            duration: started.elapsed(),
        });
        if !outcome.keep_alive || shared.shutting_down.load(Ordering::SeqCst) {
            break;
        }
        client.conn.release_if_empty();
    }
}

struct Client {
    conn: BufConn<TcpStream>,
    peer: IpAddr,
    timeout: Duration,
}

enum HeadRead {
    /// A complete head of this many bytes is buffered.
    Ready(usize),
    /// The client went away, or idled out, between requests.
    Closed,
    /// Answer with this status and close; the text is what could be read
    /// of the request line, for the log.
    Refused(u16, String),
}

impl Client {
    /// Waits for the next request head. The first byte may take up to the
    /// idle timeout; from then on the whole head must arrive within one
    /// more timeout, however slowly it trickles (slowloris).
    fn read_head(&mut self) -> HeadRead {
        let mut scanned = 0;
        let mut deadline: Option<Instant> = None;
        let mut empty_lines = 0;
        let result = loop {
            while self.conn.buffered().starts_with(b"\r\n") {
                self.conn.consume(2);
                empty_lines += 1;
                scanned = 0;
            }
            if empty_lines > MAX_LEADING_EMPTY_LINES {
                break HeadRead::Refused(400, String::new());
            }
            let buffered = self.conn.buffered();
            if !buffered.is_empty() {
                match find_head_end(buffered, &mut scanned) {
                    Ok(Some(len)) => break HeadRead::Ready(len),
                    Ok(None) if buffered.len() > MAX_REQUEST_HEAD => {
                        break HeadRead::Refused(431, first_line(buffered));
                    }
                    Ok(None) => {}
                    Err(e) => break HeadRead::Refused(e.status(), first_line(buffered)),
                }
                let now = Instant::now();
                let deadline = *deadline.get_or_insert(now + self.timeout);
                let Some(left) = deadline
                    .checked_duration_since(now)
                    .filter(|d| !d.is_zero())
                else {
                    break HeadRead::Refused(408, first_line(self.conn.buffered()));
                };
                let _ = self.conn.get_ref().set_read_timeout(Some(left));
            }
            match self.conn.fill() {
                Ok(0) => break HeadRead::Closed,
                Ok(_) => {}
                Err(e) if is_timeout(&e) && !self.conn.buffered().is_empty() => {
                    break HeadRead::Refused(408, first_line(self.conn.buffered()));
                }
                Err(_) => break HeadRead::Closed,
            }
        };
        if deadline.is_some() {
            let _ = self.conn.get_ref().set_read_timeout(Some(self.timeout));
        }
        result
    }

    /// Sends a short plain-text error response; returns the body size.
    fn send_error(&mut self, status: u16, close: bool) -> u64 {
        let response = error_response(status, close);
        let _ = self.conn.get_mut().write_all(&response.bytes);
        response.body_len
    }
}

/// What happened to one request, for the log and the connection loop.
struct Outcome {
    status: u16,
    bytes: u64,
    upstream: Option<Arc<str>>,
    keep_alive: bool,
}

impl Outcome {
    fn closing(status: u16, bytes: u64) -> Self {
        Outcome {
            status,
            bytes,
            upstream: None,
            keep_alive: false,
        }
    }
}

/// The request fields the access log shows.
struct LogLine {
    request_line: String,
    referer: Option<String>,
    user_agent: Option<String>,
}

impl LogLine {
    fn raw(request_line: String) -> Self {
        LogLine {
            request_line,
            referer: None,
            user_agent: None,
        }
    }

    fn of(head: &RequestHead) -> Self {
        LogLine {
            request_line: format!("{} {} {}", head.method, head.target, head.version),
            referer: head.headers.get_str("referer").map(str::to_string),
            user_agent: head.headers.get_str("user-agent").map(str::to_string),
        }
    }
}

/// The request line of a head that could not be parsed, for the log.
fn first_line(buf: &[u8]) -> String {
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len())
        .min(256);
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// One request/response exchange, from a complete head in the client's
/// buffer to the last byte of the response.
fn exchange(client: &mut Client, head_len: usize, shared: &Shared) -> (Outcome, LogLine) {
    let parsed = parse_request(
        &client.conn.buffered()[..head_len],
        &RequestLimits::default(),
    )
    .and_then(|head| BodyKind::for_request(&head).map(|kind| (head, kind)));
    let (head, body_kind) = match parsed {
        Ok(ok) => ok,
        Err(e) => {
            let line = LogLine::raw(first_line(client.conn.buffered()));
            let bytes = client.send_error(e.status(), true);
            return (Outcome::closing(e.status(), bytes), line);
        }
    };
    client.conn.consume(head_len);
    let line = LogLine::of(&head);
    let outcome = match forward(client, head, body_kind, shared) {
        Ok(outcome) => outcome,
        Err(refusal) => {
            let bytes = match refusal.status {
                Some(status) => client.send_error(status, !refusal.keep_alive),
                None => 0,
            };
            Outcome {
                status: refusal.status.unwrap_or(499),
                bytes,
                upstream: refusal.upstream,
                keep_alive: refusal.keep_alive && refusal.status.is_some(),
            }
        }
    };
    (outcome, line)
}

/// An exchange that ended without relaying a response: the status the
/// proxy answers with itself (`None`: the client is gone, say nothing).
struct Refusal {
    status: Option<u16>,
    upstream: Option<Arc<str>>,
    keep_alive: bool,
}

impl Refusal {
    fn new(status: u16, keep_alive: bool) -> Self {
        Refusal {
            status: Some(status),
            upstream: None,
            keep_alive,
        }
    }
}

/// How the request body travels to the backend.
enum RequestBody {
    /// Read whole from the client already (replayable).
    Buffered(Vec<u8>),
    /// Copied from the client while it is sent; cannot be replayed.
    Streamed(BodyKind),
}

fn forward(
    client: &mut Client,
    mut head: RequestHead,
    body_kind: BodyKind,
    shared: &Shared,
) -> Result<Outcome, Refusal> {
    let client_keep_alive = head.wants_keep_alive();
    let mut expect_continue = false;
    if let Some(expect) = head.headers.get_str("expect") {
        // RFC 9110 §10.1.1: 100-continue is the only expectation defined;
        // a server that receives another may answer 417.
        if !expect.eq_ignore_ascii_case("100-continue") {
            return Err(Refusal::new(417, false));
        }
        expect_continue = body_kind != BodyKind::Empty;
    }
    let body = match body_kind {
        BodyKind::Length(n) if n <= REPLAYABLE_BODY => {
            if expect_continue {
                client.send_continue()?;
            }
            RequestBody::Buffered(client.read_body(body_kind)?)
        }
        BodyKind::Empty => RequestBody::Buffered(Vec::new()),
        kind => RequestBody::Streamed(kind),
    };

    let upstreams = &shared.upstreams;
    let target = upstreams.pick();
    let request = upstream_request(&mut head, &body, client.peer, target);
    let upstream_name = Some(target.name.clone());
    let failed = |status: u16, keep_alive: bool| Refusal {
        status: Some(status),
        upstream: upstream_name.clone(),
        keep_alive,
    };

    // A pooled connection the backend closed while it idled fails before
    // any response byte: that one failure is retried on a new connection,
    // when the request can be sent again.
    let mut fresh = false;
    let (mut up, response, response_len) = loop {
        let mut up = match upstreams.checkout(target, fresh) {
            Ok(up) => up,
            Err(e) => {
                log::warn!("target {}: cannot connect: {e}", target.name);
                return Err(failed(
                    if is_timeout(&e) { 504 } else { 502 },
                    client_keep_alive && body_done(&body),
                ));
            }
        };
        match send_request(&mut up, &request, &body, client, expect_continue) {
            Ok((response, len)) => break (up, response, len),
            Err(Failure::Client(status)) => {
                return Err(Refusal {
                    status,
                    upstream: upstream_name,
                    keep_alive: false,
                })
            }
            Err(f)
                if up.reused
                    && !fresh
                    && f.before_response()
                    && matches!(body, RequestBody::Buffered(_)) =>
            {
                fresh = true;
            }
            Err(f) => {
                log::warn!("target {}: {}", target.name, f.describe());
                let keep = client_keep_alive && body_done(&body);
                return Err(failed(f.status(), keep));
            }
        }
    };
    let result = relay_response(
        client,
        &mut up,
        response,
        response_len,
        &head,
        client_keep_alive,
    );
    match result {
        Ok((outcome, reusable)) => {
            if reusable {
                upstreams.checkin(target, up.conn);
            }
            Ok(Outcome {
                upstream: upstream_name,
                ..outcome
            })
        }
        Err(f) => {
            log::warn!("target {}: {}", target.name, f.describe());
            Err(failed(f.status(), client_keep_alive))
        }
    }
}

fn body_done(body: &RequestBody) -> bool {
    matches!(body, RequestBody::Buffered(_))
}

impl Client {
    fn send_continue(&mut self) -> Result<(), Refusal> {
        self.conn
            .get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|_| Refusal {
                status: None,
                upstream: None,
                keep_alive: false,
            })
    }

    /// Reads a whole (small) request body.
    fn read_body(&mut self, kind: BodyKind) -> Result<Vec<u8>, Refusal> {
        let mut reader = BodyReader::new(kind);
        let mut body = Vec::new();
        loop {
            match reader.next(&mut self.conn) {
                Ok(Some(piece)) => body.extend_from_slice(piece),
                Ok(None) => return Ok(body),
                Err(e) => {
                    return Err(Refusal {
                        status: client_body_status(&e),
                        upstream: None,
                        keep_alive: false,
                    })
                }
            }
        }
    }
}

/// What to tell a client whose request body could not be read.
fn client_body_status(e: &BodyError) -> Option<u16> {
    match e {
        BodyError::BadChunk(_) => Some(400),
        BodyError::Io(e) if is_timeout(e) => Some(408),
        _ => None,
    }
}

/// Builds the head sent to the backend: origin-form request line,
/// end-to-end fields, forwarding fields, and our own framing.
fn upstream_request(
    head: &mut RequestHead,
    body: &RequestBody,
    client_ip: IpAddr,
    target: &Upstream,
) -> Vec<u8> {
    let path = head.path_and_query().into_owned();
    // RFC 9112 §3.2.2: for an absolute-form target, the authority in it
    // replaces any Host field.
    let host = head.authority().map(str::to_string);
    let had_length = head.headers.contains("content-length");
    strip_hop_by_hop(&mut head.headers, false);
    head.headers.remove("expect");
    match &host {
        Some(h) => head.headers.set("Host", h.as_str()),
        None => head.headers.set("Host", &*target.name),
    }
    add_forwarded(
        &mut head.headers,
        &Forwarded {
            client_ip,
            proto: "http",
            host: host.as_deref(),
            via: VIA,
        },
    );
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    head.headers.write_to(&mut out);
    match body {
        RequestBody::Buffered(b) if !b.is_empty() || had_length => {
            out.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
        }
        RequestBody::Buffered(_) => {}
        RequestBody::Streamed(BodyKind::Length(n)) => {
            out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
        }
        RequestBody::Streamed(_) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Why an exchange with a backend failed.
enum Failure {
    /// The backend did not answer in time.
    Timeout,
    /// The connection ended before a single response byte.
    Closed,
    Io(io::Error),
    Malformed(String),
    /// The client's side failed (its body); answer with this, if anything.
    Client(Option<u16>),
}

impl Failure {
    fn status(&self) -> u16 {
        match self {
            Failure::Timeout => 504,
            _ => 502,
        }
    }

    /// Failures that leave no doubt the backend never saw a response go out.
    fn before_response(&self) -> bool {
        matches!(self, Failure::Closed | Failure::Io(_))
    }

    fn describe(&self) -> String {
        match self {
            Failure::Timeout => "timed out".into(),
            Failure::Closed => "closed the connection without a response".into(),
            Failure::Io(e) => format!("I/O error: {e}"),
            Failure::Malformed(m) => format!("malformed response: {m}"),
            Failure::Client(_) => "client body failed".into(),
        }
    }

    fn io(e: io::Error) -> Self {
        if is_timeout(&e) {
            Failure::Timeout
        } else {
            Failure::Io(e)
        }
    }
}

impl From<HeadError> for Failure {
    fn from(e: HeadError) -> Self {
        Failure::Malformed(e.to_string())
    }
}

/// Sends the request and reads the final response head (skipping 1xx).
fn send_request(
    up: &mut UpstreamConn,
    request: &[u8],
    body: &RequestBody,
    client: &mut Client,
    expect_continue: bool,
) -> Result<(ResponseHead, usize), Failure> {
    let stream = up.conn.get_mut();
    match body {
        RequestBody::Buffered(bytes) => {
            write_all_vectored(stream, &mut [IoSlice::new(request), IoSlice::new(bytes)])
                .map_err(Failure::io)?
        }
        RequestBody::Streamed(kind) => {
            stream.write_all(request).map_err(Failure::io)?;
            if expect_continue {
                client.send_continue().map_err(|_| Failure::Client(None))?;
            }
            stream_request_body(*kind, &mut client.conn, stream)?;
        }
    }
    loop {
        let len = read_response_head(&mut up.conn)?;
        let response = parse_response(&up.conn.buffered()[..len])?;
        // Interim responses (100 Continue and friends) are ours to absorb:
        // we already answered the client's Expect ourselves.
        if response.status < 200 {
            up.conn.consume(len);
            continue;
        }
        return Ok((response, len));
    }
}

/// Copies a request body from the client to the backend, re-framed: the
/// backend sees exactly the framing we announced, whatever the client sent.
fn stream_request_body(
    kind: BodyKind,
    from: &mut BufConn<TcpStream>,
    to: &mut TcpStream,
) -> Result<(), Failure> {
    let chunked = kind == BodyKind::Chunked;
    let mut reader = BodyReader::new(kind);
    let mut size_line = Vec::with_capacity(16);
    loop {
        let piece = match reader.next(from) {
            Ok(Some(piece)) => piece,
            Ok(None) => break,
            Err(e) => return Err(Failure::Client(client_body_status(&e))),
        };
        if chunked {
            size_line.clear();
            chunk_size_line(piece.len(), &mut size_line);
            write_all_vectored(
                to,
                &mut [
                    IoSlice::new(&size_line),
                    IoSlice::new(piece),
                    IoSlice::new(b"\r\n"),
                ],
            )
        } else {
            to.write_all(piece)
        }
        .map_err(Failure::io)?;
    }
    if chunked {
        to.write_all(LAST_CHUNK).map_err(Failure::io)?;
    }
    Ok(())
}

/// Reads until a complete response head is buffered; returns its length.
fn read_response_head(conn: &mut BufConn<TcpStream>) -> Result<usize, Failure> {
    let mut scanned = 0;
    loop {
        if let Some(len) = find_head_end(conn.buffered(), &mut scanned)? {
            return Ok(len);
        }
        if conn.buffered().len() > MAX_RESPONSE_HEAD {
            return Err(Failure::Malformed("response head too large".into()));
        }
        match conn.fill() {
            Ok(0) if conn.buffered().is_empty() => return Err(Failure::Closed),
            Ok(0) => {
                return Err(Failure::Malformed(
                    "connection closed inside the response head".into(),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(Failure::io(e)),
        }
    }
}

/// Sends the response head and streams the body to the client. Returns the
/// outcome and whether the backend connection may be reused.
fn relay_response(
    client: &mut Client,
    up: &mut UpstreamConn,
    mut response: ResponseHead,
    head_len: usize,
    request: &RequestHead,
    client_keep_alive: bool,
) -> Result<(Outcome, bool), Failure> {
    up.conn.consume(head_len);
    let kind = BodyKind::for_response(request.is_head(), &response)?;
    let upstream_reusable = response.allows_keep_alive()
        && !response_forbids_reuse(&response)
        && kind != BodyKind::UntilClose;

    // A body we cannot delimit for this client (HTTP/1.0 has no chunked)
    // is sent raw and ended by closing the connection.
    let rechunk = matches!(kind, BodyKind::Chunked | BodyKind::UntilClose)
        && request.version == Version::Http11;
    let keep_alive =
        client_keep_alive && (rechunk || !matches!(kind, BodyKind::Chunked | BodyKind::UntilClose));

    // HEAD and 304 responses describe a body they do not carry: keep the
    // backend's Content-Length for them.
    let described_length = match kind {
        BodyKind::Empty => response.headers.get("content-length").map(<[u8]>::to_vec),
        _ => None,
    };
    strip_hop_by_hop(&mut response.headers, false);
    let mut head = Vec::with_capacity(512);
    response.version = Version::Http11;
    response.write_start(&mut head);
    match kind {
        BodyKind::Length(n) => {
            head.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes())
        }
        BodyKind::Empty => {
            if let Some(len) = described_length {
                head.extend_from_slice(b"Content-Length: ");
                head.extend_from_slice(&len);
                head.extend_from_slice(b"\r\n");
            }
        }
        _ if rechunk => head.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        _ => {}
    }
    match (keep_alive, request.version) {
        (false, _) => head.extend_from_slice(b"Connection: close\r\n"),
        (true, Version::Http10) => head.extend_from_slice(b"Connection: keep-alive\r\n"),
        (true, Version::Http11) => {}
    }
    head.extend_from_slice(b"\r\n");

    let status = response.status;
    let mut reader = BodyReader::new(kind);
    if let BodyKind::Length(n) = kind {
        if n <= GATHERED_BODY {
            gather(&mut up.conn, n as usize)?;
        }
    }
    let sent = copy_body(
        &mut reader,
        &mut up.conn,
        client.conn.get_mut(),
        head,
        rechunk,
    )?;
    let outcome = Outcome {
        status,
        bytes: sent,
        upstream: None,
        keep_alive,
    };
    Ok((outcome, upstream_reusable && reader.is_done()))
}

/// Reads until `n` bytes are buffered (the caller checked they fit).
fn gather(conn: &mut BufConn<TcpStream>, n: usize) -> Result<(), Failure> {
    while conn.buffered().len() < n {
        match conn.fill() {
            Ok(0) => {
                return Err(Failure::Malformed(
                    "connection closed inside the body".into(),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(Failure::io(e)),
        }
    }
    Ok(())
}

/// Streams a body from `from` to `to`, the head going out with the first
/// piece. Returns the body bytes sent. A failure on the backend's side
/// after the head went out cannot be reported to the client any more; the
/// caller closes the client connection.
fn copy_body(
    reader: &mut BodyReader,
    from: &mut BufConn<TcpStream>,
    to: &mut TcpStream,
    head: Vec<u8>,
    chunked: bool,
) -> Result<u64, Failure> {
    let mut pending_head = Some(head);
    let mut size_line = Vec::with_capacity(16);
    let mut sent = 0u64;
    loop {
        let piece = match reader.next(from) {
            Ok(Some(piece)) => piece,
            Ok(None) => break,
            Err(BodyError::Io(e)) => return Err(Failure::io(e)),
            Err(e) => return Err(Failure::Malformed(e.to_string())),
        };
        let head = pending_head.take().unwrap_or_default();
        size_line.clear();
        if chunked {
            chunk_size_line(piece.len(), &mut size_line);
        }
        let tail: &[u8] = if chunked { b"\r\n" } else { b"" };
        write_all_vectored(
            to,
            &mut [
                IoSlice::new(&head),
                IoSlice::new(&size_line),
                IoSlice::new(piece),
                IoSlice::new(tail),
            ],
        )
        .map_err(|_| Failure::Client(None))?;
        sent += piece.len() as u64;
    }
    let head = pending_head.take().unwrap_or_default();
    let last: &[u8] = if chunked { LAST_CHUNK } else { b"" };
    if !head.is_empty() || !last.is_empty() {
        write_all_vectored(to, &mut [IoSlice::new(&head), IoSlice::new(last)])
            .map_err(|_| Failure::Client(None))?;
    }
    Ok(sent)
}

/// `write_all` for several buffers at once (`Write::write_all_vectored` is
/// not stable yet): one `writev` in the common case.
pub fn write_all_vectored(out: &mut impl Write, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match out.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A response the proxy makes itself.
pub struct ErrorResponse {
    pub bytes: Vec<u8>,
    pub body_len: u64,
}

/// A short plain-text response for `status`, e.g. `502 Bad Gateway`.
pub fn error_response(status: u16, close: bool) -> ErrorResponse {
    let body = format!("{status} {}\n", reason_phrase(status));
    let mut head = ResponseHead::new(status);
    head.headers.push(
        "Date",
        crate::http::date::format_http_date(SystemTime::now()),
    );
    head.headers
        .push("Content-Type", "text/plain; charset=utf-8");
    head.headers.push("Content-Length", body.len().to_string());
    if close {
        head.headers.push("Connection", "close");
    }
    let mut bytes = Vec::with_capacity(160);
    head.write_start(&mut bytes);
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(body.as_bytes());
    ErrorResponse {
        bytes,
        body_len: body.len() as u64,
    }
}
