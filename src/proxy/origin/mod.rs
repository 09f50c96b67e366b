//! The request side of an exchange with a backend: build the forwarded
//! request, send it (retrying on a fresh connection when a pooled one turns
//! out dead, and on other targets when that is safe, or when the answer's
//! status is one `retry_on_status` lists) and read the response head;
//! [`super::relay`] takes it from there. Each failure is reported to the
//! target's health.
//!
//! # Layout
//! - `fetch`: a request's way to a backend ([`fetch()`], [`fetch_from`]):
//!   the balancer's pick, the queue at `max_conns`, other targets after a
//!   failure, answers `retry_on_status` lists held.
//! - `retry`: which requests may be sent again, after what.
//! - `attempt`: one target: a connection checked out, the request sent on
//!   it, a pooled connection the backend had closed replaced.
//! - `request`: the head a backend is sent ([`facts`] of its
//!   `request_header.*` variables, [`CLOSE_LINE`]).
//! - `mirrored`: the copies for the pool's `mirror`
//!   ([`mirror_cache_request`]).
//! - `exchange`: sending a request and reading its final response head,
//!   interim responses passed on or dropped.
//! - `upload`: sending the request body, unless the backend answers first.
//! - `response_head`: reading a response head, watching the client.
//! - `failure`: why an exchange failed ([`Failure`], [`Phase`],
//!   [`Malformed`]): its status, and its `$termination`.
//! - `report`: failures and answers told to the target's health and on
//!   stderr ([`hold_against`], [`warn_failure`]).
//! - here: the request body ([`RequestBody`]), what a request is sent with
//!   ([`Outgoing`]) and where ([`Destination`]), a response head received
//!   ([`Fetched`], [`AfterHead`]), and the exchange counted and timed at
//!   its target ([`Busy`], [`ExchangeTally`]).

mod attempt;
mod exchange;
mod failure;
mod fetch;
mod mirrored;
mod report;
mod request;
mod response_head;
mod retry;
mod upload;

pub(super) use attempt::still_open;
pub(super) use failure::{Failure, Malformed, Phase};
pub(super) use fetch::{fetch, fetch_from};
pub(super) use mirrored::mirror_cache_request;
pub(super) use report::{fail_for_stream, hold_against, warn_failure};
pub(super) use request::{facts, CLOSE_LINE};

use super::{Client, Shared};
use crate::config::LeastTimeMeasure;
use crate::http::conn::Stream;
use crate::http::{BodyKind, BodyReader, ResponseHead};
use crate::routes::Route;
use crate::spool::Spooled;
use crate::sub_filter::Substitution;
use crate::upstream::{InFlight, Upstream, UpstreamConn};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Largest response head accepted from a backend (502 past it).
const MAX_RESPONSE_HEAD: usize = 32 * 1024;

/// How the request body travels to the backend.
pub(super) enum RequestBody {
    /// Read whole from the client already (replayable).
    Buffered(Vec<u8>),
    /// Read whole to disk (`request_buffer_dir`), as replayable.
    Spooled(Spooled),
    /// Copied from the client while it is sent; cannot be replayed. The
    /// first attempt that sends it takes it: a second finds nothing (see
    /// [`retry_elsewhere`](retry::retry_elsewhere): a streamed body goes
    /// again only when nothing of it went, and then it is still here).
    Streamed {
        kind: BodyKind,
        unsent: Cell<Option<Unsent>>,
    },
}

/// A streamed body, before it goes.
pub(super) struct Unsent {
    /// What was read of it already: the start of a chunked body that
    /// outgrew `request_buffer_size`.
    pub start: Vec<u8>,
    /// Reads the rest from the client connection.
    pub rest: BodyReader,
}

impl RequestBody {
    /// A body none of which has been read, to stream.
    pub(super) fn streamed(kind: BodyKind, max_body: u64) -> Self {
        RequestBody::streamed_from(kind, Vec::new(), BodyReader::with_limit(kind, max_body))
    }

    /// A body whose `start` was read already, `rest` reading the remainder.
    pub(super) fn streamed_from(kind: BodyKind, start: Vec<u8>, rest: BodyReader) -> Self {
        RequestBody::Streamed {
            kind,
            unsent: Cell::new(Some(Unsent { start, rest })),
        }
    }

    /// Whether it was read whole before a backend was asked: it may be
    /// sent again, and the client connection is ready for its next
    /// request whatever becomes of this one.
    pub(super) fn is_read_whole(&self) -> bool {
        matches!(self, RequestBody::Buffered(_) | RequestBody::Spooled(_))
    }
}

/// A response head received, its body still on the connection.
pub(super) struct Fetched<'s> {
    pub target: &'s Upstream,
    pub up: UpstreamConn,
    pub response: ResponseHead,
    pub head_len: usize,
    /// When the request was sent (for the response's age).
    pub request_time: SystemTime,
    /// Counts the exchange in the target's in-flight requests; released
    /// as soon as the backend's part is over.
    busy: Option<Busy<'s>>,
    /// The target's slot once the backend's part is over, held until its
    /// connection is back in the pool (see [`Busy::end`]).
    pub slot: Option<InFlight<'s>>,
    /// `sub_filter`'s rewriting of the body, when it rewrites this one:
    /// its fields were made the rewritten body's already (see `fetch`).
    pub substitution: Option<Substitution>,
}

/// An exchange in flight at its target: it counts there (against
/// `max_conns` too) until dropped, and its drop, wherever that is, notes
/// how long the backend's part took from the moment the target was
/// picked (`$upstream_response_time`, as nginx's from connecting on) and,
/// once an answer came, what was read of the connection meanwhile. It is
/// dropped before the connection goes back to the pool (see
/// `relay::reuse`): past that, another exchange may be reading it.
pub(super) struct Busy<'s> {
    /// The target asked.
    target: &'s Upstream,
    /// Taken out by [`Busy::end`] to outlive it.
    slot: Option<InFlight<'s>>,
    began: Instant,
    /// `None` once it is known no backend was asked after all.
    took: Option<Arc<ExchangeTally>>,
    /// The connection an answer came on, and how much had been read of
    /// it before the exchange and before the answer's body.
    reading: Option<Reading>,
    /// The answer's body was read to its end: under `least_time_measure
    /// = last_byte`, the time to the drop is the target's answer time.
    read_whole: bool,
}

struct Reading {
    stream: Arc<Stream>,
    from: u64,
    /// None when no answer's head came whole: no body either.
    body_from: Option<u64>,
    sent_from: u64,
}

impl<'s> Busy<'s> {
    fn new(target: &'s Upstream, slot: InFlight<'s>, took: &Arc<ExchangeTally>) -> Busy<'s> {
        Busy {
            target,
            slot: Some(slot),
            began: Instant::now(),
            took: Some(took.clone()),
            reading: None,
            read_whole: false,
        }
    }

    /// No backend was asked (this proxy could not open a connection): no
    /// time of one to log.
    fn untimed(&mut self) {
        self.took = None;
    }

    /// An answer's head, `head_len` bytes long, came on `up`: what is
    /// read of it from the exchange's start, and from after the head, and
    /// what is written to it, are counted until the drop.
    fn answered_on(&mut self, up: &UpstreamConn, head_len: usize) {
        let stream = &up.conn.get_ref().0;
        // Of what was read so far, what follows the head is the body's.
        let past_head = up.conn.buffered().len().saturating_sub(head_len) as u64;
        self.reading = Some(Reading {
            stream: stream.clone(),
            from: up.received_from,
            body_from: Some(stream.received().saturating_sub(past_head)),
            sent_from: up.sent_from,
        });
    }

    /// Ends the exchange, its answer read to the last byte (see
    /// [`Busy::end`]).
    pub(super) fn read_whole(mut self) -> Option<InFlight<'s>> {
        self.read_whole = true;
        self.end()
    }

    /// Ends the exchange, but for its slot at the target, which is the
    /// caller's to drop once the connection is back in the pool (or
    /// closed). Freed first, it would wake a request waiting for it
    /// (`max_conns`) that, finding no idle connection, opens one more:
    /// a FastCGI server that gives each connection a child of its own
    /// (PHP-FPM) may have none left to take it.
    pub(super) fn end(mut self) -> Option<InFlight<'s>> {
        self.slot.take()
    }

    /// The exchange on `up` failed before an answer's head came whole:
    /// what went and came on it meanwhile is counted as an answer's is,
    /// as nginx counts a failed try's, with no body.
    fn failed_on(&mut self, up: &UpstreamConn) {
        self.reading = Some(Reading {
            stream: up.conn.get_ref().0.clone(),
            from: up.received_from,
            body_from: None,
            sent_from: up.sent_from,
        });
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let Some(took) = &self.took else {
            return;
        };
        let elapsed = self.began.elapsed();
        if self.read_whole && self.target.timed_by(LeastTimeMeasure::LastByte) {
            (self.target.stats.latency).observe(elapsed, Instant::now());
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        took.micros
            .store(micros.saturating_add(1), Ordering::Relaxed);
        // Without a connection, none: not an earlier target's either.
        let (received, body, sent) = match &self.reading {
            Some(reading) => {
                let since = |now: u64, from: u64| now.saturating_sub(from).saturating_add(1);
                let (read, written) = (reading.stream.received(), reading.stream.sent());
                (
                    since(read, reading.from),
                    reading.body_from.map_or(0, |from| since(read, from)),
                    since(written, reading.sent_from),
                )
            }
            None => (0, 0, 0),
        };
        took.received.store(received, Ordering::Relaxed);
        took.body.store(body, Ordering::Relaxed);
        took.sent.store(sent, Ordering::Relaxed);
    }
}

/// What the backend's part of a client's last exchange took, once it is
/// over: one per client connection, written by each [`Busy`] as it
/// drops. Each count is kept one more than it is, so that 0 is none.
#[derive(Debug, Default)]
pub(super) struct ExchangeTally {
    micros: AtomicU64,
    received: AtomicU64,
    body: AtomicU64,
    sent: AtomicU64,
}

/// What an [`ExchangeTally`] held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Tally {
    /// From the target's pick to the backend's part's end
    /// (`$upstream_response_time`).
    pub time: Option<Duration>,
    /// The bytes of the answer read, its head, body and framing
    /// (`$upstream_bytes_received`), those after its head
    /// (`$upstream_response_length`), and those of the request sent
    /// (`$upstream_bytes_sent`); none when no answer came.
    pub received: Option<u64>,
    pub body: Option<u64>,
    pub sent: Option<u64>,
}

impl ExchangeTally {
    /// Taken, so that the next request starts without one.
    pub(super) fn take(&self) -> Tally {
        let take = |count: &AtomicU64| count.swap(0, Ordering::Relaxed).checked_sub(1);
        Tally {
            time: take(&self.micros).map(Duration::from_micros),
            received: take(&self.received),
            body: take(&self.body),
            sent: take(&self.sent),
        }
    }
}

impl<'s> Fetched<'s> {
    /// The target, its connection positioned after the response head, the
    /// head, and what counts the exchange as in flight (at the target's
    /// `max_conns` too) until it is dropped.
    pub(super) fn after_head(self) -> AfterHead<'s> {
        let mut up = self.up;
        up.conn.consume(self.head_len);
        AfterHead {
            target: self.target,
            up,
            response: self.response,
            busy: self.busy,
        }
    }

    /// The exchange's part at the target is over, though the client may
    /// not have its bytes yet; `read_whole` when its answer came to its
    /// last byte. Its slot is kept in `slot`, to drop once the connection
    /// is back in the pool.
    pub(super) fn release(&mut self, read_whole: bool) {
        self.slot = match self.busy.take() {
            Some(busy) if read_whole => busy.read_whole(),
            Some(busy) => busy.end(),
            None => None,
        };
    }
}

/// A response head read, its body next on the connection.
pub(super) struct AfterHead<'s> {
    pub target: &'s Upstream,
    pub up: UpstreamConn,
    pub response: ResponseHead,
    pub busy: Option<Busy<'s>>,
}

/// What to do with the request before it leaves.
pub(super) struct Outgoing<'a> {
    pub body: &'a RequestBody,
    pub expect_continue: bool,
    /// Whether the client connection may stay open if this fails.
    pub keep_alive: bool,
    /// Extra request fields (cache validators).
    pub extra: &'a [(&'static str, Vec<u8>)],
    /// Forward the client's `Upgrade` and accept a `101 Switching Protocols`.
    pub upgrade: bool,
    /// Pass the backend's interim responses other than `100 Continue` on
    /// to the client: to an HTTP/1.1 client (RFC 9110 §15.2: never to an
    /// HTTP/1.0 one).
    pub interim_to_client: bool,
    /// Give the request up, closing the backend connection, if the client
    /// leaves while the backend has not answered (nginx's default,
    /// `proxy_ignore_client_abort off`): the backend sees the close and
    /// may stop its work. Not for a response the cache may store: that
    /// one is worth having.
    pub abandon_if_client_leaves: bool,
    /// A copy goes to the pool's `mirror`: a client's request, not an
    /// upgrade (a WebSocket session would hold a mirror's thread), nor a
    /// question of the proxy's own (`auth_request`'s, the cache's: the
    /// request it fetches for was copied before, see
    /// [`mirror_cache_request`]).
    pub mirrored: bool,
}

/// Where a request goes: a pool (its index in the generation's pools),
/// and the route that chose it, if any.
#[derive(Clone, Copy)]
pub(super) struct Destination<'s> {
    pub pool: usize,
    pub route: Option<&'s Route>,
}

impl<'s> Destination<'s> {
    /// The client's request's own: its route's pool.
    fn of(client: &Client, shared: &'s Shared) -> Destination<'s> {
        Destination {
            pool: shared.pool_index(client.route),
            route: client.route.and_then(|i| shared.config.routes.get(i)),
        }
    }
}
