//! The client side of a connection: reading request heads (within their
//! limits and timeouts, after the PROXY header when there is one), the
//! proxy's own short answers, and closing without losing a response.

use super::cached;
use super::origin::{ExchangeTime, Failure, Fetched, RequestBody};
use super::{client_body_status, coded_response, ConnWatch, Inherited, Refusal, Shared};
use crate::access_log::{By, Stage, Termination};
use crate::config::Config;
use crate::field_value::{Answer, Pending};
use crate::gzip::ForClient;
use crate::http::conn::{is_timeout, ClientStream, Leaving as _, SharedStream, Socket as _};
use crate::http::head::{find_head_end, RequestLimits};
use crate::http::proxy_protocol::{self, NoHeader};
use crate::http::tls::TlsStream;
use crate::http::{BodyKind, BodyReader, BufConn, RequestHead};
use crate::metrics::GzipCounters;
use crate::pace::Pacing;
use crate::sched::{self, Peer};
use crate::tls::client_cert::ClientCertificate;
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Initial size of a client connection's read buffer (it grows up to the
/// head limit for a large head, and is freed while the connection idles).
const CLIENT_BUFFER: usize = 16 * 1024;
/// Empty lines tolerated before a request-line (RFC 9112 §2.2 asks for at
/// least one; unbounded would let a client idle forever on CRLFs).
const MAX_LEADING_EMPTY_LINES: usize = 4;
/// Lingering close (as nginx does): after the last response on a connection
/// we close, input is read and dropped for at most this long, or this many
/// bytes, so the kernel does not answer unread input with a reset that can
/// destroy our response before the client reads it. Skipped when the client
/// itself asked to close and nothing of its is left unread (see
/// [`super::Outcome::linger`]).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_READ_TIMEOUT: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 256 * 1024;
/// How long a backend must have taken to answer before the proxy looks
/// whether the client is still there (see `Client::gave_up_on`, and the
/// watch on the client while the answer is awaited in `origin`): people
/// and timeouts give up after seconds, so this catches them, while the
/// quick answers that make up most traffic go out without a look.
pub(super) const CLIENT_CHECK_AFTER: Duration = Duration::from_millis(20);

/// Stops sending, then reads and drops what the client still sends until it
/// closes, for a bounded time and amount (see [`LINGER_TIME`]).
///
/// Never inlined: its buffer would otherwise sit in the frame of `serve`,
/// pushing every call below it a page deeper into the stack of every
/// worker, a page each idle connection then keeps resident.
#[inline(never)]
pub(super) fn linger(stream: &ClientStream) {
    // Over TLS the shutdown says `close_notify` first; what the client
    // still sends is dropped undeciphered.
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let mut stream = stream.tcp();
    let _ = stream.set_read_timeout(Some(LINGER_READ_TIMEOUT));
    let deadline = Instant::now() + LINGER_TIME;
    let mut sink = [0u8; 4096];
    let mut dropped = 0;
    while dropped < LINGER_BYTES && Instant::now() < deadline {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => dropped += n,
        }
    }
}

pub(super) struct Client {
    pub(super) conn: BufConn<SharedStream<ClientStream>>,
    /// The connection's other end: the client, or a proxy in front.
    pub(super) peer: IpAddr,
    /// `peer`'s port, for the log (`$remote_port`).
    pub(super) peer_port: u16,
    /// The address and port the client connected to (`port` or
    /// `tls_port`): `$server_addr`, `$server_port`.
    pub(super) server: SocketAddr,
    /// Whom the request being served is from: `peer`, or the client a
    /// trusted proxy in front names (see [`crate::realip`]). Logged, and
    /// what `ip_hash` hashes.
    pub(super) real_ip: IpAddr,
    /// The client came over TLS: to `tls_port`, or to a proxy in front
    /// whose PROXY header says so.
    pub(super) tls_in_front: bool,
    /// The TLS version and cipher suite of a connection to `tls_port`,
    /// for the log.
    pub(super) tls: Option<(&'static str, &'static str)>,
    /// The host name its hello asked for (SNI), for the log.
    pub(super) server_name: Option<Arc<str>>,
    /// The certificate the client showed on `tls_port`
    /// (`tls_verify_client`), for its backend and the log.
    pub(super) certificate: Option<Arc<ClientCertificate>>,
    /// The scheme of the request being served, for `X-Forwarded-Proto`.
    pub(super) scheme: &'static str,
    /// connection_timeout: the longest any socket read may wait, and the
    /// cap of the head timeout.
    pub(super) timeout: Duration,
    /// keepalive_timeout: the longest the wait for a next request may be.
    pub(super) idle_timeout: Duration,
    /// The request being served is HTTP/1.1 and its `Accept-Encoding`
    /// takes gzip (see `relay::client_takes_gzip`): with `gzip` on, the proxy's
    /// own answers to it may go compressed.
    pub(super) takes_gzip: bool,
    /// The user `auth_basic` accepted for the request being served
    /// (`$remote_user`).
    pub(super) user: Option<String>,
    /// Field lines every final response to the request being served
    /// carries: the `response_header.*` whose values hold variables, as
    /// rendered for it, and the cookies its `auth_request` service set.
    /// Empty for most: a buffer kept from request to request.
    pub(super) response_fields: Vec<u8>,
    /// The `response_header.*` whose values name the response's
    /// variables (`$status`, `$upstream_addr`), rendered as far as the
    /// request goes: each final response head finishes them.
    pub(super) pending_fields: Vec<Pending>,
    /// With [`Client::pending_fields`]: the backend last tried for the
    /// request being served (`$upstream_addr`).
    pub(super) upstream: Option<Arc<str>>,
    /// When the head of the request being served had come.
    pub(super) started: Instant,
    /// For the log: the length of the response head sent (`$bytes_sent`
    /// is it and the body's).
    pub(super) head_bytes: u64,
    /// The empty lines the last head read skipped before its request
    /// line, in bytes: not the request's (`$request_length`), as nginx
    /// counts it.
    pub(super) blank_before: u64,
    /// For the log: the status of the last backend's answer to this
    /// request, or the one the proxy gave for its failure (502, 504).
    pub(super) upstream_status: Option<u16>,
    /// For the log: how long the backend that answered this request took
    /// to send its response head once it had the request.
    pub(super) upstream_wait: Option<Duration>,
    /// For the log: how long the last connection to a backend for this
    /// request took to open (zero for a pooled one).
    pub(super) upstream_connect: Option<Duration>,
    /// For the log: how long the backend's part of the last exchange took.
    pub(super) exchange_time: Arc<ExchangeTime>,
    /// For the log: why and where this request's exchange ended
    /// (`$termination`). The first failure told of it stays (see
    /// [`Client::ended`]); a cell, as the relay sees the client shared.
    termination: Cell<Termination>,
    read_timeout: ReadTimeout,
    /// Connections are accepted once their first bytes have come: the
    /// first read of a new one looks before it yields or waits.
    bytes_on_accept: bool,
    /// The longest a whole request head may take.
    pub(super) header_timeout: Duration,
    /// The longest a pause between two reads of a request body may take.
    pub(super) body_timeout: Duration,
    pub(super) limits: RequestLimits,
    /// The request's pool's max_body_size (`u64::MAX` when unlimited),
    /// set once it is routed.
    pub(super) max_body: u64,
    /// How fast the response goes to the client: its pool's `limit_rate`,
    /// set once the request is routed.
    pub(super) pacing: Pacing,
    /// request_buffer_size: bodies up to this are read whole first.
    pub(super) request_buffer: u64,
    /// response_buffer_size: response bodies of a known length up to this
    /// are read whole before the client gets any.
    pub(super) response_buffer: u64,
    /// With `log_headers`: the response head sent, for the log.
    pub(super) sent_head: Option<Vec<u8>>,
    /// With `request_id_header`: the field's name and this request's ID.
    pub(super) request_id: Option<(Arc<str>, String)>,
    /// This request's body (if any) was read to its end before it went to
    /// a backend: nothing of the request is left on the connection.
    pub(super) body_read_whole: bool,
    /// With `sticky_cookie`: the cookie's name, and the target it named in
    /// this request, if it did.
    pub(super) sticky: Option<(Arc<str>, Option<String>)>,
    /// The route this request took (its index in the generation's
    /// `routes`); `None`: it goes to `targets`.
    pub(super) route: Option<usize>,
    /// The request-target as the client sent it, when a `rewrite.<name>`
    /// rule put another in the head: what names the client's own URL
    /// (`$request_uri`, the HTTPS redirect's `Location`), as nginx's
    /// `$request_uri` stays the client's after its `rewrite`.
    pub(super) sent_target: Option<String>,
    /// The path and query that rule made: the log's `$uri` and `$args`,
    /// as nginx's are the new ones.
    pub(super) made_target: Option<String>,
    /// The pool this request was routed to (its index in the
    /// generation's pools); none until it is, and for a route that
    /// answers itself. Counted, and logged, under it.
    pub(super) pool: Option<usize>,
    /// With `balance = hash`: the value `hash_on` names in this request,
    /// as the client sent it (empty: none). Kept here, not read from the
    /// head each time, so that the cache's own requests for it (which
    /// lose fields such as `Cache-Control`, as the request the backend
    /// gets loses the sticky cookie) go where the request itself would.
    /// A buffer reused from request to request: no allocation per request.
    pub(super) hash_value: Vec<u8>,
    /// The credentials `auth_basic` last accepted on this connection.
    pub(super) granted: crate::auth::Granted,
    /// Enough client connections are open for workers to yield before
    /// blocking (see [`sched::fill_yielding`]); taken once per request.
    pub(super) crowded: bool,
    /// This request is the last keepalive_requests allows on the
    /// connection: its response says Connection: close.
    pub(super) last_request: bool,
    pub(super) watch: Arc<ConnWatch>,
    /// A cache entry to revalidate once this request's response is out
    /// and logged (stale-while-revalidate).
    pub(super) after_response: Option<cached::Refresh>,
    /// When a route serves files: what of this request a file its
    /// backend names in `X-Accel-Redirect` is served for (see
    /// [`super::files::accel_request`]).
    pub(super) accel: Option<RequestHead>,
}

/// The receive timeout a client socket has. Each read that may wait sets
/// what it needs, and nothing is put back after it: the system call is
/// made only when a read wants another than the last one.
struct ReadTimeout(Duration);

impl ReadTimeout {
    fn set(&mut self, stream: &ClientStream, wanted: Duration) {
        if self.0 != wanted && stream.set_read_timeout(Some(wanted)).is_ok() {
            self.0 = wanted;
        }
    }
}

pub(super) enum HeadRead {
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
    /// A connection just accepted from `peer`, its socket watched by
    /// `watch`, with what it `inherited` from the listener (its timeouts
    /// become its idle and read timeout).
    pub(super) fn new(watch: Arc<ConnWatch>, peer: SocketAddr, inherited: Inherited) -> Client {
        let timeout = inherited.timeout;
        Client {
            conn: BufConn::new(SharedStream(watch.client().clone()), CLIENT_BUFFER),
            // A dual-stack listener (bind = ::) sees IPv4 clients as
            // ::ffff:a.b.c.d; they are logged, hashed and forwarded as a.b.c.d.
            peer: peer.ip().to_canonical(),
            peer_port: peer.port(),
            server: inherited.addr,
            real_ip: peer.ip().to_canonical(),
            tls_in_front: watch.client().tls().is_some(),
            tls: watch.client().tls().map(TlsStream::agreed),
            server_name: watch.client().tls().and_then(TlsStream::server_name),
            certificate: (watch.client().tls())
                .and_then(|tls| ClientCertificate::of(&tls.client_certificates()))
                .map(Arc::new),
            scheme: scheme_of(watch.client().tls().is_some()),
            takes_gzip: false,
            user: None,
            response_fields: Vec::new(),
            pending_fields: Vec::new(),
            upstream: None,
            started: Instant::now(),
            timeout,
            idle_timeout: timeout,
            head_bytes: 0,
            blank_before: 0,
            upstream_status: None,
            upstream_wait: None,
            upstream_connect: None,
            exchange_time: Arc::default(),
            termination: Cell::new(Termination::NORMAL),
            read_timeout: ReadTimeout(inherited.read_timeout),
            bytes_on_accept: inherited.deferred,
            header_timeout: timeout,
            body_timeout: timeout,
            limits: RequestLimits::default(),
            max_body: u64::MAX,
            pacing: Pacing::OFF,
            request_buffer: 0,
            response_buffer: 0,
            sent_head: None,
            request_id: None,
            body_read_whole: false,
            sticky: None,
            route: None,
            sent_target: None,
            made_target: None,
            pool: None,
            hash_value: Vec::new(),
            granted: Default::default(),
            crowded: false,
            last_request: false,
            watch,
            after_response: None,
            accel: None,
        }
    }

    /// Forgets what the last request's fields said of the client (its
    /// address and scheme behind a trusted proxy): a request refused
    /// before its fields are read is the connection's own.
    pub(super) fn forget_forwarded(&mut self) {
        self.real_ip = self.peer;
        self.scheme = scheme_of(self.tls_in_front);
    }

    /// Gives the socket's reads `timeout` (see [`ReadTimeout`]).
    pub(super) fn time_reads_out_after(&mut self, timeout: Duration) {
        self.read_timeout.set(self.conn.get_ref(), timeout);
    }

    /// Takes the request limits of the settings in force.
    pub(super) fn apply_limits(&mut self, config: &Config) {
        // The head must arrive within client_header_timeout, and no read
        // may stall longer than connection_timeout: the smaller one bounds
        // the whole head.
        self.header_timeout = config.client_header_timeout.min(self.timeout);
        self.body_timeout = config.client_body_timeout;
        self.limits = RequestLimits {
            max_head_size: config.max_header_size,
            max_headers: config.max_headers,
            max_uri_length: config.max_uri_length,
        };
        self.request_buffer = config.request_buffer_size;
        self.response_buffer = config.response_buffer_size;
    }

    /// Waits for the next request head. The first byte may take up to the
    /// idle timeout (or, on a new connection, the head timeout counted from
    /// `since`); from then on the whole head must arrive within the head
    /// timeout, however slowly it trickles (slowloris): 408 and close.
    pub(super) fn read_head(&mut self, since: Option<Instant>) -> HeadRead {
        let max_head = self.limits.max_head_size;
        let mut scanned = 0;
        let mut deadline: Option<Instant> = since.map(|t| t + self.header_timeout);
        let mut empty_lines = 0;
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
                None => self.idle_timeout,
            };
            if wait.is_zero() {
                break self.head_timed_out();
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
    pub(super) fn take_proxy_header(&mut self, accepted: Instant, config: &Config) -> bool {
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
    pub(super) fn take_header(&mut self, header: proxy_protocol::Header) {
        if let Some(source) = header.source {
            self.peer = source.ip().to_canonical();
            self.peer_port = source.port();
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

    /// Whether the client sent bytes we have not used: buffered, or waiting
    /// in the socket (one non-blocking peek).
    pub(super) fn has_unread_input(&self) -> bool {
        !self.conn.buffered().is_empty() || self.conn.get_ref().has_waiting()
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

    /// Keeps a copy of the response head about to be sent, when the log
    /// wants it (`parts` are written one after the other).
    pub(super) fn note_sent_head(&mut self, parts: &[&[u8]]) {
        self.head_bytes = parts.iter().map(|p| p.len() as u64).sum();
        if let Some(sent) = &mut self.sent_head {
            sent.clear();
            parts.iter().for_each(|p| sent.extend_from_slice(p));
        }
    }

    /// Sends the proxy's own answer for `status` (the `error_pages` page
    /// for it, or a short plain-text one, with the fields
    /// `response_header.*` sets) to a request refused before it could be
    /// parsed, and closes; returns the body size. A HEAD, as far as its
    /// first bytes tell, gets the head alone (see [`Self::send_error_to`]).
    /// Never compressed: the request's `Accept-Encoding` is not known
    /// (and these statuses, 400, 408, 414, 431, are not compressed).
    pub(super) fn refuse_unparsed(&mut self, status: u16, config: &Config) -> u64 {
        let head_request = super::starts_a_head_request(self.conn.buffered());
        self.answer(status, (true, head_request), b"", None, config, None)
    }

    /// `send_error` in answer to a request known to be a HEAD or not: the
    /// answer to a HEAD has the head alone (RFC 9110 §9.3.2), or its body
    /// would be read as the start of the next response on the connection.
    /// Made with the settings of the pool the request went to.
    pub(super) fn send_error_to(
        &mut self,
        status: u16,
        close: bool,
        head_request: bool,
        shared: &Shared,
    ) -> u64 {
        self.send_own(status, close, head_request, b"", None, shared)
    }

    /// `send_error_to` with `fields` (whole lines, CRLF-ended) added to
    /// the head, and `text` as the body when given (see
    /// [`coded_response`]). The cache has no part in it
    /// (`$upstream_cache_status`).
    pub(super) fn send_own(
        &mut self,
        status: u16,
        close: bool,
        head_request: bool,
        fields: &[u8],
        text: Option<&str>,
        shared: &Shared,
    ) -> u64 {
        let config = shared.pool_config(self.route);
        let gzip = self.gzip_of(shared);
        self.answer(status, (close, head_request), fields, text, config, gzip)
    }

    fn answer(
        &mut self,
        status: u16,
        (close, head_request): (bool, bool),
        fields: &[u8],
        text: Option<&str>,
        config: &Config,
        gzip: Option<(ForClient<'_>, &GzipCounters)>,
    ) -> u64 {
        // A field `response_header.*` sets replaces the answer's own of
        // that name (a redirect's `Location`), as it does a backend's.
        let mut extra = Vec::with_capacity(fields.len());
        config.response_headers.push_kept(&mut extra, fields, &[]);
        self.push_own_fields(&mut extra, status, None);
        let coding = gzip.map(|(coding, _)| coding);
        let response = coded_response(status, close, &extra, text, config, coding);
        self.send_response(response, head_request, gzip.map(|(_, counted)| counted))
    }

    /// `send_own` in place of a backend's answer of `status` that the
    /// cache had a part in (`cache`, its `X-Cache`): an `intercept_errors`
    /// page, whose fields say so as the backend's would have.
    pub(super) fn send_in_place(
        &mut self,
        status: u16,
        close: bool,
        head_request: bool,
        mut fields: Vec<u8>,
        cache: Option<&str>,
        shared: &Shared,
    ) -> u64 {
        self.push_own_fields(&mut fields, status, cache);
        let config = shared.pool_config(self.route);
        let gzip = self.gzip_of(shared);
        let coding = gzip.map(|(coding, _)| coding);
        let response = coded_response(status, close, &fields, None, config, coding);
        self.send_response(response, head_request, gzip.map(|(_, counted)| counted))
    }

    /// With `gzip` on for the pool the request went to: how its answers
    /// are compressed for this client, and where that is counted.
    fn gzip_of<'s>(&self, shared: &'s Shared) -> Option<(ForClient<'s>, &'s GzipCounters)> {
        let gzip = shared.gzip(self.route)?;
        let coding = ForClient {
            gzip,
            takes: self.takes_gzip,
        };
        Some((coding, &shared.metrics.gzip))
    }

    fn send_response(
        &mut self,
        response: super::ErrorResponse<'_>,
        head_request: bool,
        gzip: Option<&GzipCounters>,
    ) -> u64 {
        self.note_sent_head(&[response.head()]);
        let sent = response.send(self.conn.get_mut(), head_request);
        if sent.is_none() {
            self.head_bytes = 0;
        }
        if let (Some(counted), Some(from), Some(sent)) = (gzip, response.gzipped_from, sent) {
            if !head_request {
                counted.count(from, sent);
            }
        }
        sent.unwrap_or(0)
    }

    /// Writes the request ID field, if IDs are on, into a response head.
    pub(super) fn push_request_id(&self, head: &mut Vec<u8>) {
        if let Some((name, id)) = &self.request_id {
            for part in [name.as_bytes(), b": ", id.as_bytes(), b"\r\n"] {
                head.extend_from_slice(part);
            }
        }
    }

    /// Lets go of what the log would say of a backend's answer: before
    /// each request, before each target tried, and after an exchange that
    /// is not the request's (`auth_request`'s).
    pub(super) fn forget_upstream_answer(&mut self) {
        self.upstream_status = None;
        self.upstream_wait = None;
        self.upstream_connect = None;
        self.exchange_time.take();
    }

    /// Writes the fields of this request's own into the head of a final
    /// response to it, of `status` and with the cache's part in it
    /// (`X-Cache`) when it had one: its ID, its
    /// [`Client::response_fields`], and its [`Client::pending_fields`]
    /// finished.
    pub(super) fn push_own_fields(&self, head: &mut Vec<u8>, status: u16, cache: Option<&str>) {
        self.push_request_id(head);
        head.extend_from_slice(&self.response_fields);
        if !self.pending_fields.is_empty() {
            let answer = Answer {
                status,
                upstream: self.upstream.as_deref(),
                cache,
                upstream_status: self.upstream_status,
                upstream_wait: self.upstream_wait,
                upstream_connect: self.upstream_connect,
                elapsed: self.started.elapsed(),
            };
            for field in &self.pending_fields {
                field.finish(&answer, head);
            }
        }
    }

    /// The value `hash_on` names in the request being served, if it had
    /// one (see [`Client::hash_value`]).
    pub(super) fn hash_key(&self) -> Option<&[u8]> {
        (!self.hash_value.is_empty()).then_some(&self.hash_value[..])
    }

    /// Whether the connection may stay open after this request's
    /// response: the client wants it and keepalive_requests allows it. A
    /// shutdown is checked where each response is written (relay, cache,
    /// the proxy's own errors), as it may begin while the request runs.
    pub(super) fn keeps_alive(&self, head: &RequestHead) -> bool {
        head.wants_keep_alive() && !self.last_request
    }

    /// Whether the client closed its connection while the backend took
    /// its time to answer (a browser tab closed, `curl -m`): then the
    /// response is not sent, the backend connection is closed rather than
    /// read to its end, and the request is logged 499, as nginx does (a
    /// client that only shut down its sending side looks the same, and is
    /// treated the same, by nginx too). Not asked when the answer came
    /// quickly, to keep a system call off every request; nor for a
    /// response the cache will store.
    pub(super) fn gave_up_on(&self, fetched: &Fetched<'_>) -> bool {
        let waited = fetched.request_time.elapsed().unwrap_or_default();
        waited >= CLIENT_CHECK_AFTER && self.has_left()
    }

    /// Whether the client closed its connection (or it broke), as far as a
    /// look without waiting tells; one that sent more first (pipelined
    /// requests, to be answered) has not left.
    pub(super) fn has_left(&self) -> bool {
        self.conn.buffered().is_empty() && self.conn.get_ref().peer_gone()
    }

    /// What a client found gone at `stage` is put down to: its leaving,
    /// or a forced shutdown, which closes the client too (told as it is
    /// when the backend's side closes first). The log says which.
    pub(super) fn departure(&self, stage: Stage) -> Failure {
        if self.watch.cut() {
            self.ended(Termination::new(By::Killed, stage));
            Failure::Closed
        } else {
            self.ended(Termination::new(By::Client, stage));
            Failure::Client(None)
        }
    }

    /// Says why and where the exchange ended, for the log: as HAProxy's,
    /// the first event that ended it, so that what it brought about
    /// later (a backend cut off because the client left) does not hide
    /// it. [`Client::begin_anew`] forgets it.
    pub(super) fn ended(&self, how: Termination) {
        if self.termination.get().is_normal() {
            self.termination.set(how);
        }
    }

    /// [`Client::ended`] by `failure`: a forced shutdown's doing if it
    /// cut the connections, else the failure's.
    pub(super) fn failed(&self, failure: &Failure) {
        self.ended(match self.watch.cut() {
            true => Termination::new(By::Killed, failure.stage()),
            false => failure.termination(),
        });
    }

    /// Forgets how the exchange ended: before each request, and before
    /// each target tried for one (the log tells of the last).
    pub(super) fn begin_anew(&self) {
        self.termination.set(Termination::NORMAL);
    }

    /// How this request's exchange ended (see [`Client::ended`]).
    pub(super) fn termination(&self) -> Termination {
        self.termination.get()
    }

    pub(super) fn send_continue(&mut self) -> Result<(), Refusal> {
        self.conn
            .get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|_| {
                self.ended(Termination::new(By::Client, Stage::Data));
                Refusal::silent()
            })
    }

    /// Reads a request body whole if it ends within request_buffer_size;
    /// past that (a chunked body: a longer Content-Length is never read
    /// here), what was read becomes the start of a streamed body.
    pub(super) fn read_body(&mut self, kind: BodyKind) -> Result<RequestBody, Refusal> {
        let mut rest = BodyReader::with_limit(kind, self.max_body);
        let mut body = Vec::new();
        loop {
            match rest.next(&mut self.conn) {
                Ok(Some(piece)) => {
                    body.extend_from_slice(piece);
                    if body.len() as u64 > self.request_buffer {
                        return Ok(RequestBody::streamed_from(kind, body, rest));
                    }
                }
                Ok(None) => return Ok(RequestBody::Buffered(body)),
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

/// The scheme of a connection's requests, before a trusted proxy says
/// otherwise.
fn scheme_of(over_tls: bool) -> &'static str {
    if over_tls {
        "https"
    } else {
        "http"
    }
}
