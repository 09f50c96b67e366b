//! The response side of an exchange: relay what a backend answered to the
//! client (head and small body in one write, larger bodies streamed), take
//! a copy for the cache on the way, and return the connection to the pool
//! when it may carry another request.

use super::cache_status::{self, Member};
use super::client::CLIENT_CHECK_AFTER;
use super::origin::{hold_against, AfterHead, Failure, Fetched, Malformed, Phase};
use super::{Client, Outcome, Refusal, Shared};
use crate::access_log::Stage;
use crate::digits::push_field;
use crate::gzip::{self, Encoder, Gzip};
use crate::http::body::{
    chunk_size_line, content_length, decode_complete_chunked, forbids_content_length,
    response_forbids_reuse, LAST_CHUNK,
};
use crate::http::conn::write_all_vectored_counting;
use crate::http::conn::{
    ClientStream, Lag, Leaving, Pending, SharedStream, Stream, Taken, WatchingClose,
};
use crate::http::forward::strip_hop_by_hop;
use crate::http::{BodyError, BodyKind, BodyReader, BufConn, RequestHead, ResponseHead, Version};
use crate::metrics::GzipCounters;
use crate::pace::Paced;
use crate::upstream::{sticky, Upstream, UpstreamConn};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{IoSlice, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest pause of a backend in the middle of a body read whole
/// (`response_buffer_size`) before what came goes to the client and the
/// rest streams. A body sent in one go arrives with pauses of microseconds.
const GATHER_PATIENCE: Duration = Duration::from_millis(50);
/// Room for the chunk framing around a chunked body of up to
/// response_buffer_size (size lines, CRLFs, trailers) when it is read whole.
const CHUNK_FRAMING: u64 = 16 * 1024;

/// A copy of the body taken while it is relayed, for the cache.
pub(super) struct Tee<'a> {
    limit: u64,
    body: Vec<u8>,
    overflowed: bool,
    /// Receives the whole body once it has been read, before its last bytes
    /// go to the client (a client that asks again as soon as it has the
    /// response finds the entry stored); or `None` as soon as it grows
    /// over the limit.
    on_end: Option<OnEnd<'a>>,
}

/// What a [`Tee`] hands the body to: `Some` whole, `None` too large.
type OnEnd<'a> = Box<dyn FnOnce(Option<Vec<u8>>) + 'a>;

impl<'a> Tee<'a> {
    pub(super) fn new(limit: u64, on_end: impl FnOnce(Option<Vec<u8>>) + 'a) -> Self {
        Tee {
            limit,
            body: Vec::new(),
            overflowed: false,
            on_end: Some(Box::new(on_end)),
        }
    }

    fn push(&mut self, piece: &[u8]) {
        if self.overflowed {
            return;
        }
        if (self.body.len() + piece.len()) as u64 > self.limit {
            self.overflow();
        } else {
            self.body.extend_from_slice(piece);
        }
    }

    /// The body grew past the limit.
    fn overflow(&mut self) {
        self.overflowed = true;
        self.body = Vec::new();
        // Nothing will be stored: what waits on it (the key's flight,
        // the fill) is let go now, not once the body is all relayed.
        if let Some(on_end) = self.on_end.take() {
            on_end(None);
        }
    }

    /// The body ended: hand it over (once), unless it grew too large.
    fn finish(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(Some(std::mem::take(&mut self.body)));
        }
    }
}

/// How the response goes to the client.
pub(super) struct Relay {
    pub request_is_head: bool,
    pub version: Version,
    pub keep_alive: bool,
    /// With the cache on, the `X-Cache` the response carries (`MISS`,
    /// `BYPASS`): it replaces any the backend sent, and the log shows it.
    pub x_cache: Option<&'static str>,
    /// The client takes gzip, and `gzip` is on (see [`client_takes_gzip`]).
    pub takes_gzip: bool,
}

/// Whether the client takes gzip over HTTP/1.1, as nginx's
/// `gzip_http_version` (a body whose compressed length is not known in
/// advance would end an HTTP/1.0 connection): read once per request
/// (`Client::takes_gzip`), its pool's `gzip` asked apart.
pub(super) fn client_takes_gzip(request: &RequestHead) -> bool {
    request.version == Version::Http11 && gzip::accepted(&request.headers)
}

/// Sends the response head and streams the body to the client, and puts
/// the backend connection back in the pool when it may carry another
/// request. A failure before the head went out is returned for the caller
/// to answer (502/504); one after it ends the client connection (nothing
/// more can be said within a response already started) and is logged as
/// what the client got.
pub(super) fn relay(
    client: &mut Client,
    mut fetched: Fetched<'_>,
    how: &Relay,
    tee: Option<&mut Tee<'_>>,
    shared: &Shared,
) -> Result<Outcome, Refusal> {
    // A shutdown that began while the backend worked: say it in this
    // response, as one that began before the request would have.
    let closing = shared.shutting_down.load(Ordering::Relaxed);
    // A request body cut short by an early answer leaves the rest of it
    // on the client connection: whatever is answered (a 502 if the relay
    // fails), the connection closes, or that rest would be read as the
    // next request.
    let how = &Relay {
        keep_alive: how.keep_alive && !closing && !fetched.up.client_body_left,
        ..*how
    };
    let target = fetched.target;
    // `X-Accel-Limit-Rate`: the backend's rate for this answer (taken out
    // of it below, with the cache's own fields).
    client.pacing = client.pacing.as_backend_says(&fetched.response.headers);
    let refusal =
        |f: Failure, head_sent: bool, client: &Client| refused(target, f, head_sent, how, client);
    // `X-Accel-Redirect`: the file the backend names goes in its answer's
    // place (never one being stored: see `cached`).
    if let Some(to) = super::files::accel_redirect_of(&fetched.response, client) {
        let (to, kept) = (to.to_vec(), super::files::accel_kept(&fetched.response));
        let upstream = fetched.target.name.clone();
        discard(fetched, how.request_is_head, client);
        let outcome = super::files::serve_accel(client, &to, &kept, how.keep_alive, shared);
        // Not a cache's answer (nor one it may store): no `X-Cache`.
        return Ok(Outcome {
            upstream: Some(upstream),
            ..outcome
        });
    }
    // `intercept_errors`: never an answer being stored (the cache's
    // rules store none of these).
    if tee.is_none() && (shared.pool_config(client.route)).intercepts(fetched.response.status) {
        return Ok(intercept(client, fetched, how, shared));
    }
    // The origin's word to the cache alone (stored with what the tee
    // took) is not for clients.
    (shared.caching(client.route).own_fields).remove_from(&mut fetched.response.headers);
    let prepared = prepare_response(&mut fetched, how, client, shared)
        .map_err(|f| refusal(f, false, client))?;
    client.note_sent_head(&[&prepared.head]);
    let keep_alive = prepared.keep_alive;
    let sent = match prepared.gathered {
        Some(gathered) => {
            // The backend's part is over (see `prepare_response`): its
            // connection goes back to the pool before this client has a
            // byte (a slow reader holds no backend).
            let conn = &mut fetched.up.conn;
            // Anything past the body's end is not pooled (see `reuse`).
            let (body, past_end) = match gathered {
                Gathered::OnConnection(len) => {
                    let all = conn.take_all();
                    let past_end = all.len() > len;
                    (all.first(len), past_end)
                }
                Gathered::Decoded(body) => (Taken::from(body), !conn.buffered().is_empty()),
            };
            if prepared.upstream_reusable && !past_end {
                reuse(client, target, fetched.up.conn);
            } else {
                // Closed now, not once the client has it all: the backend
                // may be waiting for the close.
                drop(fetched.up.conn);
            }
            let coded = prepared.compressed.as_deref().unwrap_or(&body);
            let sent = send_gathered(client, prepared.head, &body, coded, tee);
            if prepared.compressed.is_some() && sent.is_ok() {
                shared
                    .metrics
                    .gzip
                    .count(body.len() as u64, coded.len() as u64);
            }
            sent
        }
        None => {
            send_streamed(client, &mut fetched, prepared, tee, shared).map(|(sent, reusable)| {
                if reusable {
                    reuse(client, target, fetched.up.conn);
                }
                sent
            })
        }
    };
    let status = fetched.response.status;
    relayed(client, target, sent, status, keep_alive, how)
}

/// One range of a response the cache is storing, for a client that asked
/// for that range alone (see `cached`): `head`, the `206` the cache made
/// of the response's head, goes out with the first piece of the body,
/// and of the body only what falls in `window`, while `tee` takes all of
/// it, read on past the window as any body being stored is. `how` says
/// the connection as `head` does. Failures go as [`relay`]'s: before the
/// head went out, a refusal; after, the connection cut.
pub(super) fn relay_part(
    client: &mut Client,
    mut fetched: Fetched<'_>,
    how: &Relay,
    (head, window): (Vec<u8>, Window),
    tee: &mut Tee<'_>,
    shared: &Shared,
) -> Result<Outcome, Refusal> {
    let target = fetched.target;
    fetched.up.conn.consume(fetched.head_len);
    let kind = BodyKind::for_response(false, &fetched.response)
        .map_err(|e| refused(target, e.into(), false, how, client))?;
    let prepared = Prepared {
        head,
        kind,
        rechunk: false,
        keep_alive: how.keep_alive,
        upstream_reusable: may_reuse(&fetched.response, kind, &fetched.up),
        gathered: None,
        compressed: None,
        encoder: None,
        window: Some(window),
    };
    client.note_sent_head(&[&prepared.head]);
    let sent =
        send_streamed(client, &mut fetched, prepared, Some(tee), shared).map(|(sent, reusable)| {
            if reusable {
                reuse(client, target, fetched.up.conn);
            }
            sent
        });
    relayed(client, target, sent, 206, how.keep_alive, how)
}

/// A failure of an exchange with `target`, held against it, as the
/// client is answered: nothing for a client gone before anything reached
/// it (logged 499), and nothing more once the head went out.
fn refused(
    target: &Upstream,
    f: Failure,
    head_sent: bool,
    how: &Relay,
    client: &Client,
) -> Refusal {
    hold_against(target, &f, client);
    let status = match f {
        Failure::Client(status) => status,
        _ => (!head_sent).then(|| f.status()),
    };
    Refusal {
        status,
        upstream: Some(target.name.clone()),
        keep_alive: how.keep_alive && !head_sent,
    }
}

/// How a relayed response went, `status` sent and `keep_alive` said.
fn relayed(
    client: &Client,
    target: &Upstream,
    sent: Result<u64, Broken>,
    status: u16,
    keep_alive: bool,
    how: &Relay,
) -> Result<Outcome, Refusal> {
    match sent {
        Ok(sent) => Ok(Outcome {
            status,
            bytes: sent,
            upstream: Some(target.name.clone()),
            keep_alive,
            cache: how.x_cache,
            linger: true,
        }),
        Err(Broken {
            failure,
            head_sent: true,
            sent,
        }) => {
            // Cut short: logged as what the client got, the status sent
            // and the body bytes that went out (as nginx), not as a 499.
            let client_gone = matches!(failure, Failure::Client(_));
            refused(target, failure, true, how, client);
            Ok(Outcome {
                status,
                bytes: sent,
                upstream: Some(target.name.clone()),
                keep_alive: false,
                cache: how.x_cache,
                linger: !client_gone,
            })
        }
        Err(Broken { failure, .. }) => Err(refused(target, failure, false, how, client)),
    }
}

/// Returns a connection whose response was read to its end to the pool.
/// Bytes past the end of the response are not the start of the next one:
/// nothing was asked yet. A backend that sends them has lost track of
/// framing (or is desynchronising us on purpose); pooled, they would be
/// read as the answer to someone else's request. The connection is
/// dropped instead.
fn reuse(client: &Client, target: &Upstream, conn: BufConn<SharedStream<Stream>>) {
    if conn.buffered().is_empty() {
        // No longer this connection's to cut at a forced close: from the
        // pool it may carry someone else's request.
        client.watch.backend_done();
        target.checkin(conn);
    }
}

/// Returns a bodiless response's connection to the pool (a 304 used to
/// refresh a cache entry, say), or closes it, before the client has its
/// answer.
pub(super) fn finish_bodiless(fetched: Fetched<'_>, client: &Client) {
    let AfterHead {
        target,
        up,
        response,
        ..
    } = fetched.after_head();
    if may_reuse(&response, BodyKind::Empty, &up) {
        reuse(client, target, up.conn);
    }
}

/// `intercept_errors`: the `error_pages` page for a backend's answer,
/// sent in its place with its status (see `Config::intercepts`); the
/// answer is let go as a retried one is, and counts as what it was: a
/// relayed answer of that backend (a miss, for the cache), not an error
/// of the proxy's own.
fn intercept(client: &mut Client, fetched: Fetched<'_>, how: &Relay, shared: &Shared) -> Outcome {
    let (status, upstream) = (fetched.response.status, fetched.target.name.clone());
    let close = !how.keep_alive;
    let mut fields = super::keep_alive_field(how.version, close).to_vec();
    // When to come back (a 503's, a 429's) is the backend's to say, and
    // so is a 416's current length (RFC 9110 §15.5.17): a client resuming
    // a download needs it.
    let kept: &[&str] = match status {
        416 => &["Retry-After", "Content-Range"],
        _ => &["Retry-After"],
    };
    for name in kept {
        if let Some(value) = fetched.response.headers.get(name) {
            for part in [name.as_bytes(), b": ", value, b"\r\n"] {
                fields.extend_from_slice(part);
            }
        }
    }
    discard(fetched, how.request_is_head, client);
    let bytes = client.send_in_place(
        status,
        close,
        how.request_is_head,
        fields,
        how.x_cache,
        shared,
    );
    Outcome {
        status,
        bytes,
        upstream: Some(upstream),
        keep_alive: how.keep_alive,
        cache: how.x_cache,
        linger: true,
    }
}

/// Lets go of an answer no client will get: its status is retried on
/// another target (`retry_on_status`). Its connection goes back to the
/// pool only when the whole body came with the head (an error page most
/// often does): nothing is waited for, and no large body read, for an
/// answer that is thrown away. Any other closes.
pub(super) fn discard(fetched: Fetched<'_>, request_is_head: bool, client: &Client) {
    let AfterHead {
        target,
        mut up,
        response,
        busy: _busy,
    } = fetched.after_head();
    let Ok(kind) = BodyKind::for_response(request_is_head, &response) else {
        return;
    };
    let arrived = match kind {
        BodyKind::Empty => true,
        BodyKind::Length(n) => {
            let whole = up.conn.buffered().len() as u64 >= n;
            if whole {
                // Whole, hence no larger than the buffer.
                up.conn.consume(n as usize);
            }
            whole
        }
        // Come whole with the head (an error page most often does): read
        // to its end, as the connection is worth keeping. Else not worth
        // waiting for.
        BodyKind::Chunked => match decode_complete_chunked(up.conn.buffered(), u64::MAX) {
            Some((_, len)) => {
                up.conn.consume(len);
                true
            }
            None => false,
        },
        BodyKind::UntilClose => false,
    };
    if arrived && may_reuse(&response, kind, &up) {
        reuse(client, target, up.conn);
    }
}

/// How [`absorb`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Absorbed {
    /// The whole body went to the tee.
    Whole,
    /// Past the tee's limit.
    TooLarge,
    /// Cut short, or too slow.
    Failed,
}

/// Reads a response's body into `tee` alone, before anything of it goes
/// to a client. Past the tee's limit, or `within` from now if given, it
/// gives up and closes the connection; a body that ends cleanly returns it
/// to the pool. Each read waits at most the backend's timeout.
pub(super) fn absorb(
    client: &Client,
    fetched: Fetched<'_>,
    tee: &mut Tee<'_>,
    within: Option<Duration>,
) -> Absorbed {
    match read_body(client, fetched, tee.limit, within, |piece| tee.push(piece)) {
        Ok(_) => {
            tee.finish();
            Absorbed::Whole
        }
        // The reader stops short of the limit, so the tee never saw the
        // body outgrow it: told here, as a relayed body's tee is.
        Err(Failure::Malformed(Malformed::Body(BodyError::TooLarge(_)))) => {
            tee.overflow();
            Absorbed::TooLarge
        }
        Err(_) => Absorbed::Failed,
    }
}

/// Reads a response's body whole, up to `limit` bytes and `within` from
/// now: a small answer the proxy sends on itself (see `forward_auth`).
pub(super) fn read_whole(
    client: &Client,
    fetched: Fetched<'_>,
    limit: u64,
    within: Duration,
) -> Result<(ResponseHead, Vec<u8>), Failure> {
    let mut body = Vec::new();
    let response = read_body(client, fetched, limit, Some(within), |piece| {
        body.extend_from_slice(piece)
    })?;
    Ok((response, body))
}

/// Reads a response's body to its end into `sink`, for no client waiting
/// on its pieces: past `limit` bytes, or `within` from now if given, it
/// gives up and closes the connection; a body that ends cleanly returns
/// it to the pool. A failure is held against the target, but for a body
/// that is only too large for this use.
fn read_body(
    client: &Client,
    fetched: Fetched<'_>,
    limit: u64,
    within: Option<Duration>,
    mut sink: impl FnMut(&[u8]),
) -> Result<ResponseHead, Failure> {
    let deadline = within.and_then(|within| Instant::now().checked_add(within));
    // The target serves this exchange until its body is read: it counts
    // against max_conns until then.
    let AfterHead {
        target,
        mut up,
        response,
        busy: _busy,
    } = fetched.after_head();
    let kind = BodyKind::for_response(false, &response)?;
    let mut reader = BodyReader::with_limit(kind, limit);
    loop {
        match reader.next(&mut up.conn) {
            Ok(Some(_)) if deadline.is_some_and(|d| Instant::now() > d) => {
                return Err(Failure::Timeout(Phase::Body))
            }
            Ok(Some(piece)) => sink(piece),
            Ok(None) => break,
            Err(e @ BodyError::TooLarge(_)) => return Err(Failure::from(e)),
            // Cut by a forced shutdown: not the backend's failure.
            Err(e) => {
                let failure = Failure::from(e);
                hold_against(target, &failure, client);
                return Err(failure);
            }
        }
    }
    if may_reuse(&response, kind, &up) {
        reuse(client, target, up.conn);
    }
    Ok(response)
}

/// Whether the connection may carry another request once this response's
/// body has been read to its end.
pub(super) fn may_reuse(response: &ResponseHead, kind: BodyKind, up: &UpstreamConn) -> bool {
    response.allows_keep_alive()
        && !response_forbids_reuse(response)
        && kind != BodyKind::UntilClose
        && !up.body_cut
}

/// A response ready to go: its head for the client, and how its body is
/// read and framed.
struct Prepared {
    head: Vec<u8>,
    kind: BodyKind,
    rechunk: bool,
    keep_alive: bool,
    upstream_reusable: bool,
    /// The whole body, read before the head goes out.
    gathered: Option<Gathered>,
    /// That body compressed, as the client gets it.
    compressed: Option<Vec<u8>>,
    /// For a body compressed as it streams.
    encoder: Option<Encoder>,
    /// For a client that gets one range of the body (see [`relay_part`]).
    window: Option<Window>,
}

/// The one range of a body a client gets as it streams: the first `skip`
/// bytes are left out, the next `take` go, and what comes after is left
/// out too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window {
    skip: u64,
    take: u64,
}

impl Window {
    /// Bytes `start..=end` of the body, `start <= end`.
    pub(super) fn of(start: u64, end: u64) -> Window {
        Window {
            skip: start,
            take: end.saturating_sub(start).saturating_add(1),
        }
    }

    /// What of `piece`, the body's next bytes, falls in the window.
    fn cut<'p>(&mut self, piece: &'p [u8]) -> &'p [u8] {
        let len = piece.len() as u64;
        let skipped = self.skip.min(len);
        self.skip -= skipped;
        let taken = self.take.min(len - skipped);
        self.take -= taken;
        // Both within `piece`, whose length is a `usize`.
        &piece[skipped as usize..(skipped + taken) as usize]
    }
}

/// Where a body read whole is.
enum Gathered {
    /// The first this many bytes on the connection.
    OnConnection(usize),
    /// Decoded from chunks already taken off the connection.
    Decoded(Vec<u8>),
}

/// Everything that can fail before the first byte goes to the client:
/// the backend's framing, and gathering the body whole when it fits
/// response_buffer_size (then the backend is free before a slow client has
/// read a byte, and head and body leave in one `writev`): one of a known
/// length, or a chunked one that has all arrived with its head (a small
/// dynamic page, not an event stream: what trickles in is not waited for).
/// The fields `response_header.*` names replace the backend's in the head
/// (what the cache stores was taken before: see `Storing::tee`), and with
/// `gzip` a body of a type it lists goes out compressed to a client that
/// takes it.
fn prepare_response(
    fetched: &mut Fetched<'_>,
    how: &Relay,
    client: &Client,
    shared: &Shared,
) -> Result<Prepared, Failure> {
    let edits = &shared.pool_config(client.route).response_headers;
    let gzip = shared.gzip(client.route);
    let cache_name = shared.config.cache_status.as_deref();
    let up = &mut fetched.up;
    let response = &mut fetched.response;
    up.conn.consume(fetched.head_len);
    let kind = BodyKind::for_response(how.request_is_head, response)?;
    let upstream_reusable = may_reuse(response, kind, up);
    let limit = client.response_buffer;
    let gathered = match kind {
        BodyKind::Empty => Some(Gathered::OnConnection(0)),
        BodyKind::Length(n) if n <= limit => {
            gather(&mut up.conn, n as usize)?.then_some(Gathered::OnConnection(n as usize))
        }
        BodyKind::Chunked => {
            // What has arrived already, without waiting: a page sent in
            // one go is all there, and an event stream is not held back.
            // No look past a body that has ended (its last chunk and
            // trailer section end in an empty line).
            while (up.conn.buffered().len() as u64) <= limit.saturating_add(CHUNK_FRAMING)
                && !up.conn.buffered().ends_with(b"\r\n\r\n")
                && matches!(up.conn.fill_now(), Ok(n) if n > 0)
            {}
            decode_complete_chunked(up.conn.buffered(), limit).map(|(body, used)| {
                up.conn.consume(used);
                Gathered::Decoded(body)
            })
        }
        _ => None,
    };
    // Sent with the length it turned out to have.
    let kind = match &gathered {
        Some(Gathered::Decoded(body)) => BodyKind::Length(body.len() as u64),
        _ => kind,
    };
    // Read whole, the backend's part is over: the target is free for the
    // next pick (and its time taken) before the proxy's own work on the
    // body (compressing it), and long before a slow client has it all.
    if gathered.is_some() {
        fetched.release();
    }
    let up = &mut fetched.up;
    let response = &mut fetched.response;

    // Responses to HEAD and 304s describe a body they do not carry: keep
    // the backend's Content-Length for them (never on a 204), if it is
    // one number; another value says nothing a client could use.
    let described_length = match kind {
        BodyKind::Empty if !forbids_content_length(response.status) => {
            content_length(&response.headers).ok().flatten()
        }
        _ => None,
    };
    // Before any field is copied into a line of our own (a compressed
    // answer's weak ETag): what the backend named in `Connection` was for
    // that hop alone.
    strip_hop_by_hop(&mut response.headers, false);
    // A response gzip may compress says in `Vary` that it is compressed
    // for some clients, and is compressed for this one if it takes gzip:
    // whole when it was read whole, else as it streams, in chunks.
    let length = match kind {
        BodyKind::Length(n) => Some(n),
        BodyKind::Empty => described_length,
        _ => None,
    };
    let coding = gzip.filter(|g| g.suits(response.status, &response.headers, length));
    let compress = coding.filter(|_| how.takes_gzip);
    let compressed = match (compress, &gathered, kind) {
        (Some(g), Some(Gathered::OnConnection(n)), BodyKind::Length(_)) => {
            Some(g.compress(&up.conn.buffered()[..*n]))
        }
        (Some(g), Some(Gathered::Decoded(body)), _) => Some(g.compress(body)),
        _ => None,
    };
    let streams_compressed = compress.is_some() && gathered.is_none();
    let mut coding_fields = Vec::with_capacity(if coding.is_some() { 128 } else { 0 });
    if compress.is_some() {
        gzip::push_compressed_fields(&mut coding_fields, &response.headers);
        for name in gzip::REPLACED_FIELDS {
            response.headers.remove(name);
        }
    } else if coding.is_some()
        || response.status == 206 && gzip.is_some_and(|g| g.suits_the_whole_of(&response.headers))
    {
        gzip::push_vary(&mut coding_fields, &response.headers);
        response.headers.remove("vary");
    }

    // A body we cannot delimit for this client (HTTP/1.0 has no chunked)
    // is sent raw and ended by closing the connection (`how` already
    // closes one whose request body was cut short, see [`relay`]).
    let delimited_by_close =
        matches!(kind, BodyKind::Chunked | BodyKind::UntilClose) || streams_compressed;
    let rechunk = delimited_by_close && how.version == Version::Http11;
    let keep_alive = how.keep_alive && (rechunk || !delimited_by_close);
    // Ours says what the cache did; the backend's (a cache behind it)
    // would sit beside it, and clients read the first.
    if how.x_cache.is_some() {
        response.headers.remove("x-cache");
    }
    // The operator's fields: each set one replaces every field of its
    // name the backend sent, each removed one goes.
    edits.remove_from(&mut response.headers);
    let mut head = Vec::with_capacity(512 + edits.set_lines().len());
    response.version = Version::Http11;
    response.write_start(&mut head);
    head.extend_from_slice(&coding_fields);
    head.extend_from_slice(edits.set_lines());
    if let Some(status) = how.x_cache {
        let _ = write!(head, "X-Cache: {status}\r\n");
        if let Some(name) = cache_name {
            let fwd = if status == "BYPASS" {
                "bypass"
            } else {
                "uri-miss"
            };
            let status = response.status;
            let member = Member::Forwarded {
                fwd,
                status,
                stored: None,
            };
            cache_status::push(&mut head, name, member);
        }
    }
    client.push_own_fields(&mut head, response.status, how.x_cache);
    // A client not yet stuck to this target is from now on.
    if let Some((name, sent)) = &client.sticky {
        if sent.as_deref() != Some(&fetched.target.sticky_id) {
            head.extend_from_slice(
                sticky::set_cookie_line(name, &fetched.target.sticky_id).as_bytes(),
            );
        }
    }
    match (kind, &compressed) {
        (_, Some(body)) => push_field(&mut head, "Content-Length", body.len() as u64),
        _ if rechunk => head.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        (BodyKind::Length(n), None) => push_field(&mut head, "Content-Length", n),
        // The length of a compressed body that did not come is unknown.
        (BodyKind::Empty, None) if compress.is_none() => {
            if let Some(len) = described_length {
                push_field(&mut head, "Content-Length", len);
            }
        }
        _ => {}
    }
    push_connection_header(&mut head, keep_alive, how.version);
    head.extend_from_slice(b"\r\n");
    Ok(Prepared {
        head,
        kind,
        rechunk,
        keep_alive,
        upstream_reusable,
        gathered,
        compressed,
        encoder: compress.filter(|_| streams_compressed).map(Gzip::encoder),
        window: None,
    })
}

/// A relay that failed midway, whether the client already has the
/// response head (then it can only be cut short, not answered 502), and
/// the body bytes it has.
struct Broken {
    failure: Failure,
    head_sent: bool,
    sent: u64,
}

/// Sends the head and a body read whole in one write, `coded` as the
/// client gets it (compressed, or `body` itself); returns the body bytes
/// sent. The tee takes `body`, as the backend sent it.
fn send_gathered(
    client: &mut Client,
    head: Vec<u8>,
    body: &[u8],
    coded: &[u8],
    tee: Option<&mut Tee<'_>>,
) -> Result<u64, Broken> {
    if let Some(tee) = tee {
        tee.push(body);
        tee.finish();
    }
    let pacing = client.pacing;
    let (written, result) = write_all_vectored_counting(
        &mut Paced::new(client.conn.get_mut(), pacing),
        &mut [IoSlice::new(&head), IoSlice::new(coded)],
    );
    result.map_err(|_| Broken {
        failure: Failure::Client(None),
        head_sent: written > 0,
        sent: written.saturating_sub(head.len()) as u64,
    })?;
    Ok(coded.len() as u64)
}

/// Streams the body as it arrives; returns the body bytes sent, and
/// whether the connection may carry another request.
///
/// While it waits on the backend, the client is watched (past the same
/// grace as for the head): one that leaves between two pieces (an event
/// stream closed, a long poll given up) has the backend's connection
/// closed at once, as nginx does, not when a next piece finds it gone, if
/// one ever comes. Not while the cache takes the response (worth having
/// whole, as when waiting for the head: from the piece that makes it too
/// large to store on, it is watched), nor with requests pipelined behind
/// it.
fn send_streamed(
    client: &Client,
    fetched: &mut Fetched<'_>,
    prepared: Prepared,
    tee: Option<&mut Tee<'_>>,
    shared: &Shared,
) -> Result<(u64, bool), Broken> {
    let patience = shared.pool(client.route).backend_timeout();
    let mut reader = BodyReader::new(prepared.kind);
    let to: &ClientStream = client.conn.get_ref();
    let head = head_unless_body_begins(&mut fetched.up.conn, prepared.kind, prepared.head, to)?;
    let encoder = prepared.encoder;
    let watched = client
        .conn
        .buffered()
        .is_empty()
        .then_some(to as &dyn Leaving);
    let storing = tee.is_some();
    // What waits for the client may be as large as what is stored, and
    // the framing of its chunks.
    let bound = tee.as_ref().map(|t| t.limit.saturating_add(CHUNK_FRAMING));
    let read_ahead = shared.cache.as_deref().map(|cache| ReadAhead {
        held: &cache.stats.read_ahead,
        limit: shared.config.cache_size,
    });
    let out = ClientOut::new(Paced::new(to, client.pacing), bound.zip(read_ahead));
    let (sent, left) = fetched.up.conn.read_through(
        |backend| {
            let mut source = WatchingClose::new(backend, watched, CLIENT_CHECK_AFTER, patience);
            source.paused = storing;
            source.pending = storing.then_some(&out as &dyn Pending);
            source
        },
        |conn| {
            let framing = Framing {
                chunked: prepared.rechunk,
                encoder: encoder.map(|e| (e, &shared.metrics.gzip)),
                window: prepared.window,
            };
            let sent = copy_body(&mut reader, conn, &out, head, framing, tee);
            (sent, conn.get_ref().left)
        },
    );
    let sent = sent.map_err(|broken| {
        if left {
            Broken {
                failure: client.departure(Stage::Data),
                ..broken
            }
        } else {
            broken
        }
    })?;
    Ok((sent, prepared.upstream_reusable && reader.is_done()))
}

/// Sends the head now, and returns `None` (nothing to send with the body:
/// a failure from here on can only cut the response short), when the
/// body's length is unknown (chunked, or until the close) and none of it
/// comes within [`GATHER_PATIENCE`]: an event stream, a long poll, whose
/// client should have the status now (a browser's `EventSource` opens on
/// it, a `fetch` resolves), as HAProxy sends it (nginx holds it back
/// unless told `X-Accel-Buffering: no`). Otherwise the head goes with the
/// first piece, and a backend that fails before it, within the patience
/// or with a body of a known length, is answered 502 or 504.
fn head_unless_body_begins(
    conn: &mut BufConn<SharedStream<Stream>>,
    kind: BodyKind,
    head: Vec<u8>,
    mut to: &ClientStream,
) -> Result<Option<Vec<u8>>, Broken> {
    let open_ended = matches!(kind, BodyKind::Chunked | BodyKind::UntilClose);
    if !open_ended || !conn.buffered().is_empty() {
        return Ok(Some(head));
    }
    match conn.fill_within(GATHER_PATIENCE) {
        // Bytes, or the end that the body's reader will find.
        Ok(Some(_)) => Ok(Some(head)),
        Ok(None) => {
            let (written, result) =
                write_all_vectored_counting(&mut to, &mut [IoSlice::new(&head)]);
            result.map_err(|_| Broken {
                failure: Failure::Client(None),
                head_sent: written > 0,
                sent: 0,
            })?;
            Ok(None)
        }
        Err(e) => Err(Broken {
            failure: Failure::io(Phase::Body, e),
            head_sent: false,
            sent: 0,
        }),
    }
}

/// `Connection: close` when closing; HTTP/1.0 clients must be told when
/// the connection stays open.
pub(super) fn push_connection_header(head: &mut Vec<u8>, keep_alive: bool, version: Version) {
    match (keep_alive, version) {
        (false, _) => head.extend_from_slice(b"Connection: close\r\n"),
        (true, Version::Http10) => head.extend_from_slice(b"Connection: keep-alive\r\n"),
        (true, Version::Http11) => {}
    }
}

/// Reads until `n` bytes are buffered (the caller checked they fit), as
/// long as they keep coming: `false` when the backend paused for
/// [`GATHER_PATIENCE`], and the body streams from there (a page flushed as
/// it renders reaches the client as it comes, as through nginx).
fn gather(conn: &mut BufConn<SharedStream<Stream>>, n: usize) -> Result<bool, Failure> {
    conn.reserve(n);
    while conn.buffered().len() < n {
        match conn.fill_within(GATHER_PATIENCE) {
            Ok(None) => return Ok(false),
            Ok(Some(0)) => return Err(Failure::Malformed(Malformed::ClosedInBody)),
            Ok(Some(_)) => {}
            Err(e) => return Err(Failure::io(Phase::Body, e)),
        }
    }
    Ok(true)
}

/// How a streamed body goes to the client.
struct Framing<'a> {
    /// In chunks (the client's length being unknown).
    chunked: bool,
    /// Compressed as it goes, counted once it all went.
    encoder: Option<(Encoder, &'a GzipCounters)>,
    /// Only this range of it goes (never compressed).
    window: Option<Window>,
}

/// Streams a body from `from` to `out`, the head, unless already sent
/// (`None`), going out with the first piece. Returns the body bytes sent.
fn copy_body(
    reader: &mut BodyReader,
    from: &mut BufConn<WatchingClose<'_>>,
    out: &ClientOut<'_>,
    head: Option<Vec<u8>>,
    framing: Framing<'_>,
    mut tee: Option<&mut Tee<'_>>,
) -> Result<u64, Broken> {
    let Framing {
        chunked,
        mut encoder,
        mut window,
    } = framing;
    let head_was_sent = head.is_none();
    let mut pending_head = head;
    let mut sent = 0u64;
    let mut taken = 0u64;
    // The chunk size lines, one buffer for the whole body.
    let mut size_line = Vec::new();
    let mut to = out;
    // The head counts as sent once any byte reached the client; the body
    // bytes, less what still waited for it.
    let client_gone = |sent: u64| Broken {
        failure: Failure::Client(None),
        head_sent: head_was_sent || out.delivered() > 0,
        sent: sent.saturating_sub(out.unsent()),
    };
    loop {
        // Every chunk one read brought, as one piece: a backend's many
        // small chunks go on in one write, not one each (nothing is
        // waited for that has not come).
        let piece = match reader.next_joined(from) {
            Ok(Some(piece)) => piece,
            Ok(None) => break,
            Err(e) => {
                // What the client was sent before the backend failed is
                // still its own.
                let _ = to.flush();
                return Err(Broken {
                    failure: e.into(),
                    head_sent: head_was_sent || out.delivered() > 0,
                    sent: sent.saturating_sub(out.unsent()),
                });
            }
        };
        let mut given_up = false;
        if let Some(copy) = tee.as_deref_mut() {
            copy.push(piece);
            if reader.is_done() {
                copy.finish();
            }
            given_up = copy.overflowed;
        }
        let head = pending_head.take().unwrap_or_default();
        taken += piece.len() as u64;
        let piece = match window.as_mut() {
            Some(window) => window.cut(piece),
            None => piece,
        };
        let piece_out = match encoder.as_mut() {
            Some((encoder, _)) => encoder.push(piece),
            None => piece,
        };
        let (_, result) = write_piece(&mut to, &head, piece_out, chunked, b"", &mut size_line);
        if result.is_err() {
            // The client is gone, but a response being stored is still
            // worth having whole (its waits do not watch the client
            // either): read on into the cache, then report the client.
            if let Some(copy) = tee.as_deref_mut().filter(|_| !reader.is_done()) {
                read_on_into(copy, reader, from);
            }
            return Err(client_gone(sent));
        }
        sent += piece_out.len() as u64;
        if given_up {
            // Nothing will be stored: the response is now its client's
            // alone, not worth reading on once it has left, nor ahead of
            // it.
            tee = None;
            from.get_mut().paused = false;
            out.stop_reading_ahead();
        }
    }
    if let Some(tee) = tee {
        tee.finish();
    }
    let head = pending_head.take().unwrap_or_default();
    let (rest, counters) = match encoder {
        Some((encoder, counters)) => (encoder.finish(), Some(counters)),
        None => (Vec::new(), None),
    };
    let last: &[u8] = if chunked { LAST_CHUNK } else { b"" };
    if !head.is_empty() || !rest.is_empty() || !last.is_empty() {
        let (_, result) = write_piece(&mut to, &head, &rest, chunked, last, &mut size_line);
        result.map_err(|_| client_gone(sent))?;
        sent += rest.len() as u64;
    }
    to.flush().map_err(|_| client_gone(sent))?;
    if let Some(counters) = counters {
        counters.count(taken, sent);
    }
    Ok(sent)
}

/// Reads the rest of a body into `copy` alone, its client gone: until it
/// ends (then stored), grows past what is stored, or fails.
fn read_on_into(
    copy: &mut Tee<'_>,
    reader: &mut BodyReader,
    from: &mut BufConn<WatchingClose<'_>>,
) {
    while !copy.overflowed {
        match reader.next_joined(from) {
            Ok(Some(piece)) => copy.push(piece),
            Ok(None) => return copy.finish(),
            Err(_) => return,
        }
        if reader.is_done() {
            return copy.finish();
        }
    }
}

/// The client's side of a streamed body. While the cache takes the
/// response, what the client does not take at once (a slow reader, or
/// `limit_rate`) waits here, and the backend is read on at its own speed,
/// its waits sending the rest as the client takes it (see [`Pending`]):
/// the entry is stored, and the requests coalesced on it answered, once
/// the backend has sent it all, as nginx's buffering has it, not once
/// this client has read it. What waits is bounded by what the cache
/// stores (`max_object_size`), and by the cache's capacity for every
/// connection's together (but [`LEAST_BACKLOG`] each); past that bound, a
/// write waits for the client until no more than it waits, so that the
/// backend is then read at the client's pace, as any streamed body is.
/// (Without the shared bound, clients that read nothing of large
/// responses held `max_object_size` each, twice with the copy stored.)
struct ClientOut<'a> {
    state: RefCell<OutState<'a>>,
}

/// What waits for the clients of every response being stored, and the
/// most that may (`cache_size`).
struct ReadAhead<'a> {
    held: &'a AtomicU64,
    limit: u64,
}

struct OutState<'a> {
    to: Paced<&'a ClientStream>,
    /// What the client has not taken yet, oldest first.
    backlog: VecDeque<u8>,
    /// While writes go through `backlog` (the cache is taking the
    /// response): the most bytes kept waiting before a write waits for
    /// the client. `None`: writes go straight to it.
    bound: Option<usize>,
    /// Counts `backlog` among every connection's, while there is a bound.
    read_ahead: Option<ReadAhead<'a>>,
    /// Bytes that reached the client's socket, the head's among them.
    delivered: u64,
    /// A write failed: the client is gone. A lagging write has taken its
    /// bytes by then; the next write, or the flush, says so.
    failed: bool,
    /// Bytes dropped once the client was found gone, never to reach it:
    /// kept, they would hold memory and the read-ahead every connection
    /// shares for as long as the backend takes to send the rest.
    dropped: u64,
}

/// The least [`OutState::bound`] is brought down to when nothing is to be
/// stored after all.
const LEAST_BACKLOG: usize = 64 * 1024;

impl<'a> ClientOut<'a> {
    /// Writes through a backlog of at most `bound` bytes, counted in
    /// `read_ahead`, when given one, else straight to the client.
    fn new(to: Paced<&'a ClientStream>, bound: Option<(u64, ReadAhead<'a>)>) -> Self {
        let (bound, read_ahead) = bound.unzip();
        let state = OutState {
            to,
            backlog: VecDeque::new(),
            bound: bound.map(|b| usize::try_from(b).unwrap_or(usize::MAX)),
            read_ahead,
            delivered: 0,
            failed: false,
            dropped: 0,
        };
        ClientOut {
            state: RefCell::new(state),
        }
    }

    fn delivered(&self) -> u64 {
        self.state.borrow().delivered
    }

    /// Bytes written that have not reached the client yet.
    fn unsent(&self) -> u64 {
        let state = self.state.borrow();
        state.backlog.len() as u64 + state.dropped
    }

    /// Nothing will be stored: what waits now is the most that will, and
    /// the backend is read as the client takes what comes after.
    fn stop_reading_ahead(&self) {
        let state = &mut *self.state.borrow_mut();
        let waiting = state.backlog.len().max(LEAST_BACKLOG);
        state.bound = state.bound.map(|bound| bound.min(waiting));
    }
}

impl OutState<'_> {
    /// Sends what the client takes now from the backlog.
    fn send_now(&mut self) {
        // Over TLS, records of an earlier write may wait alone.
        let mut again = self.to.get_ref().has_unsent();
        while !self.failed && (!self.backlog.is_empty() || again) {
            again = false;
            let (front, back) = self.backlog.as_slices();
            match self
                .to
                .write_now(&[IoSlice::new(front), IoSlice::new(back)])
            {
                Ok(0) => break,
                Ok(n) => self.sent(n),
                Err(_) => self.fail(),
            }
        }
    }

    /// Sends what waits, waiting for the client, until no more than
    /// `keep` bytes do.
    fn send_until(&mut self, keep: usize) -> std::io::Result<()> {
        while self.backlog.len() > keep {
            let excess = self.backlog.len() - keep;
            let (front, back) = self.backlog.as_slices();
            let first = &front[..front.len().min(excess)];
            let second = &back[..excess - first.len()];
            let (written, result) = write_all_vectored_counting(
                &mut self.to,
                &mut [IoSlice::new(first), IoSlice::new(second)],
            );
            self.sent(written);
            if let Err(e) = result {
                self.fail();
                return Err(e);
            }
        }
        Ok(())
    }

    /// `n` more bytes of the backlog reached the client.
    fn sent(&mut self, n: usize) {
        self.backlog.drain(..n);
        self.delivered += n as u64;
        self.released(n);
    }

    /// `n` bytes no longer wait, among every connection's.
    fn released(&self, n: usize) {
        if let Some(ahead) = &self.read_ahead {
            ahead.held.fetch_sub(n as u64, Ordering::Relaxed);
        }
    }

    /// The client is gone: what waits for it is dropped.
    fn fail(&mut self) {
        self.failed = true;
        let dropped = std::mem::take(&mut self.backlog).len();
        self.dropped += dropped as u64;
        self.released(dropped);
    }

    /// `bytes` wait for the client, after what already did (dropped
    /// once it is gone).
    fn keep(&mut self, bytes: &[u8]) {
        if self.failed {
            self.dropped += bytes.len() as u64;
            return;
        }
        self.backlog.extend(bytes);
        if let Some(ahead) = &self.read_ahead {
            ahead.held.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
    }

    /// The most bytes that may wait for this client before `incoming`
    /// more join them: `bound`, less what every connection's together
    /// would keep beyond the cache's capacity (but [`LEAST_BACKLOG`]).
    fn room(&self, bound: usize, incoming: usize) -> usize {
        let after = self.backlog.len() + incoming;
        let most = match &self.read_ahead {
            None => bound,
            Some(ahead) => {
                let held = (ahead.held.load(Ordering::Relaxed)).saturating_add(incoming as u64);
                let over = usize::try_from(held.saturating_sub(ahead.limit)).unwrap_or(usize::MAX);
                bound.min(after.saturating_sub(over).max(LEAST_BACKLOG))
            }
        };
        most.saturating_sub(incoming)
    }
}

impl Drop for OutState<'_> {
    /// What still waits once the response is done no longer counts.
    fn drop(&mut self) {
        self.released(self.backlog.len());
    }
}

impl Write for &ClientOut<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    /// Takes all of `bufs` while lagging (sending what the client takes
    /// now, and waiting for it only past the bound); else writes, waiting
    /// for the client.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        let state = &mut *self.state.borrow_mut();
        let Some(bound) = state.bound else {
            let n = state.to.write_vectored(bufs)?;
            state.delivered += n as u64;
            return Ok(n);
        };
        if state.failed {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        let mut skip = 0;
        if state.backlog.is_empty() {
            match state.to.write_now(bufs) {
                Ok(n) => {
                    state.delivered += n as u64;
                    skip = n;
                }
                Err(_) => state.fail(),
            }
        }
        let total: usize = bufs.iter().map(|buf| buf.len()).sum();
        // Room is made before the bytes join what waits: a client that
        // reads nothing then keeps this write waiting with them still in
        // the backend's buffer, not counted among every connection's
        // read-ahead on top of what the bound lets wait.
        let _ = state.send_until(state.room(bound, total - skip));
        for buf in bufs {
            let from = skip.min(buf.len());
            state.keep(&buf[from..]);
            skip -= from;
        }
        state.send_now();
        // Taken whole: a failure shows at the next write, and the bytes
        // that did not go are counted out by `unsent`. (A write larger
        // than the room waits here with them.)
        let _ = state.send_until(state.room(bound, 0));
        Ok(total)
    }

    /// Sends what waits, waiting for the client; writes wait for it from
    /// then on.
    fn flush(&mut self) -> std::io::Result<()> {
        let state = &mut *self.state.borrow_mut();
        let lagged = state.bound.take().is_some();
        if state.failed {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        if !lagged {
            return Ok(());
        }
        state.send_until(0)?;
        state.backlog = VecDeque::new();
        state.to.flush()
    }
}

impl Pending for ClientOut<'_> {
    fn lag(&self) -> Lag {
        let state = &mut *self.state.borrow_mut();
        let unsent = state.backlog.len();
        let client = state.to.get_ref();
        if state.bound.is_none() || state.failed || (unsent == 0 && !client.has_unsent()) {
            return Lag::None;
        }
        let fd = client.as_raw_fd();
        match state.to.due_in(unsent.max(1)) {
            Some(wait) => Lag::Pace(wait),
            None => Lag::Room(fd),
        }
    }

    fn send_now(&self) {
        self.state.borrow_mut().send_now();
    }
}

/// Writes `head` (maybe empty), a piece of body (in a chunk of its own
/// when `chunked`, its size line written in `size_line`; none for an
/// empty piece, which would read as the last chunk) and `after`, in one
/// `writev`.
fn write_piece(
    to: &mut impl Write,
    head: &[u8],
    piece: &[u8],
    chunked: bool,
    after: &[u8],
    size_line: &mut Vec<u8>,
) -> (usize, std::io::Result<()>) {
    size_line.clear();
    let framed = chunked && !piece.is_empty();
    if framed {
        chunk_size_line(piece.len(), size_line);
    }
    let tail: &[u8] = if framed { b"\r\n" } else { b"" };
    write_all_vectored_counting(
        to,
        &mut [
            IoSlice::new(head),
            IoSlice::new(size_line),
            IoSlice::new(piece),
            IoSlice::new(tail),
            IoSlice::new(after),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::Window;

    /// The window's bytes, whatever pieces the body comes in.
    #[test]
    fn a_window_lets_through_its_range_of_the_pieces() {
        let body: Vec<u8> = (0..=99).collect();
        for (start, end) in [(0, 0), (0, 99), (10, 19), (95, 99), (7, 63)] {
            for size in [1, 3, 10, 64, 100] {
                let mut window = Window::of(start, end);
                let got: Vec<u8> = (body.chunks(size))
                    .flat_map(|piece| window.cut(piece).to_vec())
                    .collect();
                let (start, end) = (start as usize, end as usize);
                assert_eq!(got, body[start..=end], "{start}-{end} in pieces of {size}");
            }
        }
    }
}
