//! A request read from the client: its head, within its limits and
//! timeouts, the PROXY protocol header a connection may start with, and
//! its body.

use super::Client;
use crate::access_log::{By, Stage, Termination};
use crate::config::Config;
use crate::http::conn::is_timeout;
use crate::http::head::find_head_end;
use crate::http::proxy_protocol::{self, NoHeader};
use crate::http::{BodyKind, BodyReader};
use crate::proxy::origin::{Failure, RequestBody};
use crate::proxy::{client_body_status, Refusal};
use crate::sched::{self, Peer};
use crate::spool::Spooling;
use crate::throttle::OnceAMinute;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Empty lines tolerated before a request-line (RFC 9112 §2.2 asks for at
/// least one; unbounded would let a client idle forever on CRLFs).
const MAX_LEADING_EMPTY_LINES: usize = 4;

/// How long a connection waits for its next request before the stack
/// pages its last one touched below the wait are given back (see
/// [`crate::thread_stack`]): most keep-alive requests come sooner, and so
/// pay for no page fault, while a connection left idle keeps only what
/// its wait needs.
const STACK_KEPT_FOR: Duration = Duration::from_secs(1);

pub(in crate::proxy) enum HeadRead {
    /// A complete head of this many bytes is buffered.
    Ready(usize),
    /// The client went away, or idled out, between requests.
    Closed,
    /// The client went away in the middle of a head; what could be read of
    /// its request line, for the log.
    Abandoned(String),
    /// Answer with this status and close; the text is what could be read
    /// of the request line, for the log.
    Refused(u16, String),
}

impl Client {
    /// Waits for the next request head. The first byte may take up to the
    /// idle timeout (or, on a new connection, the head timeout counted from
    /// `since`); from then on the whole head must arrive within the head
    /// timeout, however slowly it trickles (slowloris): 408 and close.
    ///
    /// Out of line, as what it calls: the connection's loop waits here,
    /// and an idle connection keeps the stack pages down to this wait.
    #[inline(never)]
    pub(in crate::proxy) fn read_head(&mut self, since: Option<Instant>) -> HeadRead {
        let max_head = self.limits.max_head_size;
        let mut scanned = 0;
        let mut deadline: Option<Instant> = since.map(|t| t + self.header_timeout);
        let mut empty_lines = 0;
        // Between requests, the idle wait is cut in two: the stack below
        // it, and a TLS session's buffers, are given back when the first
        // part ends with nothing.
        let mut given_back = false;
        let idle_in_two = self.idle_timeout > STACK_KEPT_FOR;
        self.blank_before = 0;
        if since.is_some() && self.bytes_on_accept && self.conn.buffered().is_empty() {
            // Whatever this finds (bytes, the end, an error, nothing yet),
            // the loop below takes it from there.
            let _ = self.conn.fill_now();
        }
        loop {
            while self.conn.buffered().starts_with(b"\r\n") {
                self.conn.consume(2);
                self.blank_before += 2;
                empty_lines += 1;
                scanned = 0;
            }
            if empty_lines > MAX_LEADING_EMPTY_LINES {
                break HeadRead::Refused(400, String::new());
            }
            let buffered = self.conn.buffered();
            // An empty line starts the head as any byte does (as with
            // nginx): else each would start the idle wait afresh.
            if empty_lines > 0 {
                self.head_begins(&mut deadline);
            }
            if !buffered.is_empty() {
                match find_head_end(buffered, &mut scanned) {
                    // The head may have arrived whole in one read past the
                    // limit: the limit is on the head, not on the reads.
                    Ok(Some(len)) if len > max_head => {
                        break HeadRead::Refused(431, first_line(buffered));
                    }
                    Ok(Some(len)) => break HeadRead::Ready(len),
                    Ok(None) if buffered.len() > max_head => {
                        break HeadRead::Refused(431, first_line(buffered));
                    }
                    Ok(None) => {}
                    Err(e) => break HeadRead::Refused(e.status(), first_line(buffered)),
                }
                self.head_begins(&mut deadline);
            }
            let wait = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None if !idle_in_two => self.idle_timeout,
                None if given_back => self.idle_timeout - STACK_KEPT_FOR,
                None => STACK_KEPT_FOR,
            };
            if wait.is_zero() {
                break self.head_timed_out();
            }
            // A TLS connection idle past the first part waits here, not
            // under the session's read: the stack it keeps ends here, and
            // it takes a buffer again only once the client sends.
            let tls = self.conn.get_ref().tls();
            if let Some(tls) = tls.filter(|_| given_back && deadline.is_none()) {
                match tls.wait_idle(wait) {
                    Ok(true) => {}
                    Ok(false) => break self.head_timed_out(),
                    Err(_) => break self.head_abandoned(),
                }
            }
            // Set for the read that waits: one the yields make needless
            // (a new connection's request there by then) needs none.
            let filled =
                sched::fill_yielding_or(&mut self.conn, Peer::Client, self.crowded, |conn| {
                    self.read_timeout.set(conn.get_ref(), wait);
                    conn.fill()
                });
            match filled {
                Ok(0) => break self.head_abandoned(),
                Ok(_) => {}
                Err(e) if is_timeout(&e) && deadline.is_none() && idle_in_two && !given_back => {
                    crate::thread_stack::release_below();
                    self.conn.get_ref().release_if_empty();
                    given_back = true;
                }
                Err(e) if is_timeout(&e) => break self.head_timed_out(),
                Err(_) => break self.head_abandoned(),
            }
        }
    }

    /// A head has begun to arrive: it is due within the header timeout
    /// (from the connection's opening for its first), and the connection
    /// no longer waits for a request, so a reload that shortened
    /// keepalive_timeout does not close it as idle.
    fn head_begins(&self, deadline: &mut Option<Instant>) {
        deadline.get_or_insert_with(|| Instant::now() + self.header_timeout);
        self.watch.head_begun();
    }

    /// Takes the PROXY protocol header the connection starts with (due
    /// within the head timeout from `accepted`): its client becomes the
    /// peer. `false` when there is none, to close the connection.
    #[inline(never)]
    pub(in crate::proxy) fn take_proxy_header(
        &mut self,
        accepted: Instant,
        config: &Config,
    ) -> bool {
        let due = accepted + config.client_header_timeout.min(config.connection_timeout);
        match self.read_proxy_header(due) {
            Ok(header) => {
                self.take_header(header);
                true
            }
            Err(why) => {
                proxy_protocol::warn_of(self.peer, &why);
                false
            }
        }
    }

    /// The client a PROXY header names becomes the peer (one read before
    /// a TLS handshake comes here that way).
    #[inline(never)]
    pub(in crate::proxy) fn take_header(&mut self, header: proxy_protocol::Header) {
        if let Some(source) = header.source {
            self.peer = source.ip().to_canonical();
            self.peer_port = source.port();
            self.proxied_to = header.destination;
            self.proxy_tlvs = (!header.tlvs.is_empty()).then(|| header.tlvs.into());
        }
        self.tls_in_front |= header.tls;
    }

    /// Reads the PROXY protocol header that starts the connection, due by
    /// `due`.
    fn read_proxy_header(&mut self, due: Instant) -> Result<proxy_protocol::Header, NoHeader> {
        loop {
            match proxy_protocol::parse(self.conn.buffered()) {
                Ok(Some(header)) => {
                    self.conn.consume(header.len);
                    break Ok(header);
                }
                Ok(None) => {}
                Err(e) => break Err(NoHeader::Invalid(e)),
            }
            let left = due.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(NoHeader::Late);
            }
            self.time_reads_out_after(left);
            match self.conn.fill() {
                Ok(0) => break Err(NoHeader::Closed),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => break Err(NoHeader::Late),
                Err(e) => break Err(NoHeader::Io(e)),
            }
        }
    }

    /// The client closed (or reset) before its head was complete: nothing
    /// to answer, but a head that had started is logged, as nginx logs a
    /// 400 for a client that "prematurely closed" (scanners, broken
    /// clients show up that way).
    fn head_abandoned(&self) -> HeadRead {
        if self.conn.buffered().is_empty() {
            HeadRead::Closed
        } else {
            HeadRead::Abandoned(first_line(self.conn.buffered()))
        }
    }

    /// A head that did not arrive in time: 408 if it had started, else a
    /// silent close (there is no request to answer).
    fn head_timed_out(&self) -> HeadRead {
        if self.conn.buffered().is_empty() {
            HeadRead::Closed
        } else {
            HeadRead::Refused(408, first_line(self.conn.buffered()))
        }
    }

    pub(in crate::proxy) fn send_continue(&mut self) -> Result<(), Refusal> {
        self.conn
            .get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|_| {
                self.ended(Termination::new(By::Client, Stage::Data));
                Refusal::silent()
            })
    }

    /// Reads a request body whole if it ends within request_buffer_size;
    /// past that, it goes on to a file in `spool_dir` and is read whole
    /// there (`request_buffer_dir`), or, without one, what was read
    /// becomes the start of a streamed body. So does a whole chunked body
    /// with trailer fields to pass on: one sent with a `Content-Length`
    /// would have nowhere to carry them (nor is such a body written to
    /// disk).
    pub(in crate::proxy) fn read_body(
        &mut self,
        kind: BodyKind,
        spool_dir: Option<&Path>,
    ) -> Result<RequestBody, Refusal> {
        let mut rest = BodyReader::with_limit(kind, self.max_body);
        let mut body = Vec::new();
        let trailers_to_pass = self.pass_trailers && kind == BodyKind::Chunked;
        let spool_dir = spool_dir.filter(|_| !trailers_to_pass);
        let mut spooling: Option<Spooling> = None;
        loop {
            match rest.next(&mut self.conn) {
                Ok(Some(piece)) => {
                    if let Some(file) = &mut spooling {
                        file.write(piece).map_err(|e| self.not_spooled(e))?;
                        continue;
                    }
                    body.extend_from_slice(piece);
                    if body.len() as u64 > self.request_buffer {
                        let Some(dir) = spool_dir else {
                            return Ok(RequestBody::streamed_from(kind, body, rest));
                        };
                        let mut file = Spooling::create(dir).map_err(|e| self.not_spooled(e))?;
                        file.write(&body).map_err(|e| self.not_spooled(e))?;
                        body = Vec::new();
                        spooling = Some(file);
                    }
                }
                Ok(None) if trailers_to_pass && !rest.trailers().is_empty() => {
                    return Ok(RequestBody::streamed_from(kind, body, rest));
                }
                Ok(None) => {
                    return Ok(match spooling {
                        Some(file) => RequestBody::Spooled(file.done()),
                        None => RequestBody::Buffered(body),
                    })
                }
                Err(e) => {
                    let status = client_body_status(&e);
                    // Gone (`CD`), slow (`cD`) or refused (`PD`).
                    self.failed(&Failure::Client(status));
                    return Err(Refusal {
                        status,
                        upstream: None,
                        keep_alive: false,
                    });
                }
            }
        }
    }

    /// A body that could not be written to `request_buffer_dir` (a full
    /// disk, most likely): the proxy's resource, answered 500 as nginx
    /// answers it, the connection closed (the rest of the body unread).
    fn not_spooled(&self, e: std::io::Error) -> Refusal {
        static SAID: OnceAMinute = OnceAMinute::new();
        if SAID.due() {
            log::error!(
                "cannot write a request body to request_buffer_dir: {e}; answering 500 (said \
                 at most once a minute)"
            );
        }
        self.ended(Termination::new(By::Resource, Stage::Data));
        Refusal {
            status: Some(500),
            upstream: None,
            keep_alive: false,
        }
    }
}

/// The request line of a head that could not be parsed, for the log.
pub(crate) fn first_line(buf: &[u8]) -> String {
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len())
        .min(256);
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
