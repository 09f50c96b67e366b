//! The request side of an exchange with a backend: build the forwarded
//! request, send it (retrying on a fresh connection when a pooled one turns
//! out dead, and on other targets when that is safe, or when the answer's
//! status is one `retry_on_status` lists) and read the response head;
//! [`super::relay`] takes it from there. Each failure is reported to the
//! target's health.

use super::client::CLIENT_CHECK_AFTER;
use super::mirror::Duplicate;
use super::relay;
use super::{client_body_status, via_entry, Client, Refusal, Shared};
use crate::access_log::{By, Stage, Termination};
use crate::cache::policy::OwnFields;
use crate::digits::push_field;
use crate::field_value::Facts;
use crate::http::body::{chunk_size_line, LAST_CHUNK};
use crate::http::conn::{
    is_local_shortage, is_timeout, wait_unless_left, write_all_unless_answered, SharedStream,
    Source, Stream,
};
use crate::http::date::format_http_date;
use crate::http::edits::FieldEdits;
use crate::http::forward::{add_forwarded, strip_hop_by_hop, Forwarded};
use crate::http::head::{find_head_end, parse_response, push_canonical_authority};
use crate::http::{
    BodyError, BodyKind, BodyReader, BufConn, HeadError, RequestHead, ResponseHead, Version,
};
use crate::routes::Route;
use crate::sched::{self, Peer};
use crate::throttle::OnceAMinute;
use crate::upstream::retry_on::RetryOnStatus;
use crate::upstream::slots::Waiting;
use crate::upstream::{InFlight, Pick, Upstream, UpstreamConn, Upstreams};
use std::cell::Cell;
use std::fmt;
use std::io::{self, IoSlice, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The longest one wait for a slot at a target (`max_conns`) lasts before
/// the request looks again, whether the server is shutting down included.
const QUEUE_STEP: Duration = Duration::from_millis(250);
/// Largest response head accepted from a backend (502 past it).
const MAX_RESPONSE_HEAD: usize = 32 * 1024;
/// Interim (1xx) responses absorbed before the final one; a backend that
/// sends an endless stream of them would otherwise hold the thread forever.
const MAX_INTERIM_RESPONSES: usize = 16;

/// How the request body travels to the backend.
pub(super) enum RequestBody {
    /// Read whole from the client already (replayable).
    Buffered(Vec<u8>),
    /// Copied from the client while it is sent; cannot be replayed. The
    /// first attempt that sends it takes it: a second finds nothing (see
    /// [`retry_elsewhere`]: a streamed body goes again only when nothing of
    /// it went, and then it is still here).
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

    pub(super) fn is_buffered(&self) -> bool {
        matches!(self, RequestBody::Buffered(_))
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
}

/// An exchange in flight at its target: it counts there (against
/// `max_conns` too) until dropped, and its drop, wherever that is, notes
/// how long the backend's part took from the moment the target was
/// picked (`$upstream_response_time`, as nginx's from connecting on).
pub(super) struct Busy<'s> {
    _slot: InFlight<'s>,
    began: Instant,
    /// `None` once it is known no backend was asked after all.
    took: Option<Arc<ExchangeTime>>,
}

impl<'s> Busy<'s> {
    fn new(slot: InFlight<'s>, took: &Arc<ExchangeTime>) -> Busy<'s> {
        Busy {
            _slot: slot,
            began: Instant::now(),
            took: Some(took.clone()),
        }
    }

    /// No backend was asked (this proxy could not open a connection): no
    /// time of one to log.
    fn untimed(&mut self) {
        self.took = None;
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Some(took) = &self.took {
            let micros = u64::try_from(self.began.elapsed().as_micros()).unwrap_or(u64::MAX);
            took.0.store(micros.saturating_add(1), Ordering::Relaxed);
        }
    }
}

/// How long the backend's part of a client's last exchange took, once
/// it is over: one per client connection, written by each [`Busy`] as it
/// drops.
#[derive(Debug, Default)]
pub(super) struct ExchangeTime(AtomicU64);

impl ExchangeTime {
    /// Taken, so that the next request starts without one.
    pub(super) fn take(&self) -> Option<Duration> {
        match self.0.swap(0, Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros - 1)),
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

    /// The exchange no longer counts as in flight for the target: its
    /// part is over, though the client may not have its bytes yet.
    pub(super) fn release(&mut self) {
        self.busy = None;
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

/// Sends `head` (rewritten for the backend in place) to a backend chosen
/// by the balancer and reads its final response head, trying other
/// targets when that is safe (see [`retry_elsewhere`]), and when the
/// answer's status is listed in `retry_on_status` and the request may be
/// sent again (see [`may_send_again`]).
///
/// Such an answer is held while the next target is picked, and is the
/// one returned when none is left (the client gets the backend's own
/// answer, as with HAProxy and nginx, not a 502 of ours), or when every
/// one left is at its `max_conns`: an answer in hand is not given up to
/// wait in the queue. Only once another target is chosen is it
/// discarded; nothing of it reaches the client or the cache.
pub(super) fn fetch<'s>(
    client: &mut Client,
    head: &mut RequestHead,
    send: &Outgoing<'_>,
    shared: &'s Shared,
) -> Result<Fetched<'s>, Refusal> {
    fetch_from(client, head, send, Destination::of(client, shared), shared)
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

/// [`fetch`] from the pool `to` names, with its settings: a request's
/// own pool, or the one `auth_request` asks.
pub(super) fn fetch_from<'s>(
    client: &mut Client,
    head: &mut RequestHead,
    send: &Outgoing<'_>,
    to: Destination<'s>,
    shared: &'s Shared,
) -> Result<Fetched<'s>, Refusal> {
    let upstreams = shared.pools.get(to.pool);
    let edits = &shared.config_of_pool(to.pool).request_headers;
    let forwarded = prepare_request(head, send, client, to, shared);
    // With a route's `rewrite=`: the backend's redirects and its cookies'
    // paths within what it was sent go back under the route's prefix.
    let rewriting = to.route.filter(|r| r.rewrite().is_some());
    let sent_host = edits.value_of("host").or(forwarded.host.as_deref());
    // uri_hash's key: the path and query the backend is sent (as the
    // client sent them, an absolute-form target's without its scheme and
    // host, so that either form of one URL goes to one target; as a
    // route's `rewrite=` made them), taken before anything in the head is
    // edited. `hash`'s key
    // was taken earlier still, before the sticky cookie left the request
    // (see `Client::hash_value`).
    let uri = forwarded.path.as_str();
    let idempotent = is_idempotent(&head.method);
    let mut tried = vec![false; upstreams.targets().len()];
    let mut retries_left = upstreams.retries();
    let retry_on = upstreams.retry_on_status();
    let is_head = head.is_head();
    // The failure the client hears of when no target is left to try.
    let mut last_failure = None;
    // An answer with a listed status, held until another target is chosen.
    let mut held: Option<Fetched<'s>> = None;
    // While the request waits for a slot (`max_conns`): its place in the
    // queue, and until when it may wait.
    let mut queued: Option<(Waiting, Instant)> = None;
    let mut copied = false;
    loop {
        let stuck_to = client.sticky.as_ref().and_then(|(_, sent)| sent.as_deref());
        let waiting = queued.as_ref().map(|(place, _)| place);
        let key = client.hash_key();
        let picked = upstreams.pick(client.real_ip, uri, key, &tried, stuck_to, waiting);
        let (index, mut busy) = match (picked, held.take()) {
            (Pick::Chosen(index, busy), answered) => {
                queued = None;
                // Another target will answer: this answer goes unread.
                if let Some(answered) = answered {
                    relay::discard(answered, is_head, client);
                }
                // What the log says of a backend is of the last tried.
                client.forget_upstream_answer();
                (index, Busy::new(busy, &client.exchange_time))
            }
            (Pick::Full | Pick::Nothing | Pick::Unavailable, Some(answered)) => {
                // An answer after all, whatever failed after it.
                client.begin_anew();
                return Ok(answered);
            }
            (Pick::Full, None) => {
                // Woken after a change of state: in the lines it may
                // still take a slot from, and no other.
                if let Some((place, _)) = &mut queued {
                    upstreams.requeue(&tried, stuck_to, place);
                }
                let (place, until) = &*queued.get_or_insert_with(|| {
                    shared.metrics.queued.fetch_add(1, Ordering::Relaxed);
                    let until = Instant::now() + upstreams.queue_timeout();
                    (upstreams.enqueue(&tried, stuck_to), until)
                });
                let until = *until;
                // In short steps, so that a shutdown is not kept waiting,
                // nor a slot taken for a client that left meanwhile.
                let step = until.min(Instant::now() + QUEUE_STEP);
                let woken = upstreams.wait_for_slot(&tried, stuck_to, place, step);
                if client.has_left() {
                    client.ended(Termination::new(By::Client, Stage::Queue));
                    return Err(Refusal::silent());
                }
                let over = Instant::now() >= until || shared.shutting_down.load(Ordering::Relaxed);
                if !woken && over {
                    // As HAProxy answers a request its queue timed out,
                    // and logs it (`sQ`).
                    client.ended(Termination::new(By::ServerTimeout, Stage::Queue));
                    let keep_alive = send.keep_alive && send.body.is_buffered();
                    return Err(Refusal::new(503, keep_alive));
                }
                continue;
            }
            (Pick::Nothing, None) => {
                // No target to try (none healthy): HAProxy's `SC`, unless
                // the last one tried told how it failed.
                client.ended(Termination::new(By::Server, Stage::Connect));
                return Err(last_failure.unwrap_or_else(|| {
                    Refusal::new(502, send.keep_alive && send.body.is_buffered())
                }));
            }
            // Every target drained or in maintenance: as HAProxy's 503
            // (and its `SC`).
            (Pick::Unavailable, None) => {
                client.ended(Termination::new(By::Server, Stage::Connect));
                return Err(Refusal::new(
                    503,
                    send.keep_alive && send.body.is_buffered(),
                ));
            }
        };
        tried[index] = true;
        let picked = Instant::now();
        let target = &upstreams.targets()[index];
        if !client.pending_fields.is_empty() {
            client.upstream = Some(target.name.clone());
        }
        let close = target.keeps_no_connection();
        let request = upstream_request(head, &forwarded, edits, send, target, close);
        // Once, whatever the retries: the mirror sees the request a
        // client made. Whether its connection is kept is its own pool's
        // word (see `mirror::send_and_read`), not this one's.
        if send.mirrored && !std::mem::replace(&mut copied, true) {
            let copy = upstream_request(head, &forwarded, edits, send, target, false);
            mirror(&copy, send, client, uri, to.pool, shared);
        }
        let failed = |status: u16| Refusal {
            status: Some(status),
            upstream: Some(target.name.clone()),
            keep_alive: send.keep_alive && send.body.is_buffered(),
        };
        let own = &shared.cache_rules.of_pool(to.pool).own_fields;
        // The log tells how the last target tried ended the exchange.
        client.begin_anew();
        let attempted = attempt(client, upstreams, target, &request, send, idempotent, own);
        if let Err(f) = &attempted {
            client.failed(f);
        }
        match attempted {
            Ok((up, mut response, head_len, request_time)) => {
                if let Some(route) = rewriting {
                    // `Content-Location` too: it names a URL of the
                    // client's, which a successful POST's invalidates.
                    for field in ["Location", "Content-Location"] {
                        let named = response.headers.get_str(field);
                        let back = named.and_then(|l| route.location_back(l.trim(), sent_host));
                        if let Some(back) = back {
                            response.headers.set(field, back);
                        }
                    }
                    // The backend's cookies: the proxy's own sticky cookie
                    // is added as the head is written (`relay`), after.
                    (response.headers).edit_values("set-cookie", |c| route.set_cookie_back(c));
                }
                let status = response.status;
                report_answer(target, picked, status, retry_on, client);
                let fetched = Fetched {
                    target,
                    up,
                    response,
                    head_len,
                    request_time,
                    busy: Some(busy),
                };
                // After a forced shutdown cut the connections, the answer
                // in hand is the last there will be.
                if !retry_on.contains(status)
                    || retries_left == 0
                    || !tried.contains(&false)
                    || !may_send_again(idempotent, send.body)
                    || client.watch.cut()
                {
                    return Ok(fetched);
                }
                held = Some(fetched);
                retries_left -= 1;
            }
            Err(Failure::Client(status)) => {
                return Err(Refusal {
                    status,
                    upstream: Some(target.name.clone()),
                    keep_alive: false,
                })
            }
            Err(f) if client.watch.cut() => {
                client.upstream_status = Some(f.status());
                return Err(failed(f.status()));
            }
            Err(Failure::Local(e)) => {
                busy.untimed();
                static SHORT: OnceAMinute = OnceAMinute::new();
                if SHORT.due() {
                    log::error!(
                        "cannot open a connection to a backend: {e}; answering 503 (this \
                         process's limits: see `max_connections`; said at most once a minute)"
                    );
                }
                return Err(Refusal {
                    upstream: None,
                    ..failed(503)
                });
            }
            Err(f) => {
                hold_against(target, &f, client);
                client.upstream_status = Some(f.status());
                let untried = tried.iter().any(|&t| !t);
                if retries_left == 0 || !untried || !retry_elsewhere(&f, idempotent, send.body) {
                    return Err(failed(f.status()));
                }
                last_failure = Some(failed(f.status()));
                retries_left -= 1;
            }
        }
    }
}

/// With `mirror`, a copy of the request the pool's backend is sent (its
/// head and body), queued for the mirror pool (see [`super::mirror`]).
fn mirror(
    request: &[u8],
    send: &Outgoing<'_>,
    client: &Client,
    uri: &str,
    pool: usize,
    shared: &Shared,
) {
    let Some(name) = &shared.config_of_pool(pool).mirror else {
        return;
    };
    let body = match send.body {
        RequestBody::Buffered(body) => body.clone(),
        // Read from the client as it goes: there is no second copy of it.
        RequestBody::Streamed { .. } => return shared.mirrors.dropped(),
    };
    shared.mirrors.send(Duplicate {
        pool: name.clone(),
        head: request.to_vec(),
        body,
        client: client.real_ip,
        uri: uri.to_string(),
        key: client.hash_key().map(<[u8]>::to_vec),
    });
}

/// With `mirror`, a copy of a request the cache takes, made before the
/// cache is looked in, as nginx mirrors one: a hit is copied as a miss
/// is. The copy is the request as the pool's backend would be sent it
/// for a miss, the client's own conditions and range in it (not the
/// validators the cache sends in their place).
pub(super) fn mirror_cache_request(client: &Client, request: &RequestHead, shared: &Shared) {
    let to = Destination::of(client, shared);
    if shared.config_of_pool(to.pool).mirror.is_none() {
        return;
    }
    // Only for a request without `Host`, which is sent its target's.
    let Some(target) = shared.pools.get(to.pool).targets().first() else {
        return shared.mirrors.dropped();
    };
    let send = Outgoing {
        body: &RequestBody::Buffered(Vec::new()),
        expect_continue: false,
        keep_alive: true,
        extra: &[],
        upgrade: false,
        interim_to_client: false,
        abandon_if_client_leaves: false,
        mirrored: true,
    };
    let mut head = request.clone();
    let forwarded = prepare_request(&mut head, &send, client, to, shared);
    let edits = &shared.config_of_pool(to.pool).request_headers;
    let copy = upstream_request(&mut head, &forwarded, edits, &send, target, false);
    mirror(&copy, &send, client, &forwarded.path, to.pool, shared);
}

/// Reports a failed exchange: warned about, counted, and held against the
/// target's health. Not what is not the backend's doing: the client's
/// side failing, a pooled connection it had closed while idle (a retry's
/// business), or a connection cut by a forced shutdown.
///
/// The choke point of the failures past the response head too: the log
/// is told how it ended the exchange (see [`Client::failed`]).
pub(super) fn hold_against(target: &Upstream, f: &Failure, client: &Client) {
    client.failed(f);
    if matches!(f, Failure::Client(_)) || client.watch.cut() {
        return;
    }
    let reason = f.to_string();
    warn_failure(target, &reason, client);
    if !matches!(f, Failure::Stale(_)) {
        count_failure(target, &reason);
    }
}

/// Reports a response head to its target's health. A status that
/// `retry_on_status` counts as the target's failure (a listed 5xx, see
/// [`RetryOnStatus::fails_target`]) goes toward `max_fails`, whether the
/// request is then retried or the answer relayed (the last attempt, a
/// POST); any other answer resets the count.
fn report_answer(
    target: &Upstream,
    picked: Instant,
    status: u16,
    retry_on: &RetryOnStatus,
    client: &Client,
) {
    if !retry_on.fails_target(status) {
        target.health.succeeded(picked);
    } else if !client.watch.cut() {
        let reason = format!("answered {status}");
        warn_failure(target, &reason, client);
        count_failure(target, &reason);
    }
}

/// Says a failure of `target` on stderr, naming the client and the
/// request's ID (the access log's `request_id`), as nginx's error log
/// names the client and request (see [`say_failure`]).
pub(super) fn warn_failure(target: &Upstream, reason: &str, client: &Client) {
    let request_id = client.request_id.as_ref().map(|(_, id)| id.as_str());
    say_failure(target, reason, (client.real_ip, request_id));
}

/// Says `reason`, a failure of `target` met by `client` (its address, and
/// its request's ID), at most once a minute for each target and cause,
/// with the count of those not said: a dead backend under load fails
/// every request, each in the access log already. Returns whether it was
/// said.
fn say_failure(target: &Upstream, reason: &str, client: (IpAddr, Option<&str>)) -> bool {
    let failures = &target.stats.failures_said;
    let Some(quiet) = failures.failed_because(Instant::now(), reason) else {
        return false;
    };
    let id = match client.1 {
        Some(id) => format!(", request_id {id}"),
        None => String::new(),
    };
    let since = match quiet {
        0 => String::new(),
        n => format!("; {n} failure(s) of it not said since the last"),
    };
    log::warn!(
        "target {}: {reason} (client {}{id}; said at most once a minute for each \
         target and cause{since})",
        target.name,
        client.0,
    );
    true
}

/// One failure of `target`: toward `max_fails`, and in its failure count.
fn count_failure(target: &Upstream, reason: &str) {
    target.health.failed(Instant::now(), reason);
    target.stats.failures.fetch_add(1, Ordering::Relaxed);
}

/// Whether an idle connection can still carry a request (see
/// [`Stream::still_open`]).
pub(super) fn still_open(conn: &BufConn<SharedStream<Stream>>) -> bool {
    conn.buffered().is_empty() && conn.get_ref().still_open()
}

/// RFC 9110 §9.2.2: repeating these has the same effect as sending once.
fn is_idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE")
}

/// Whether a request that failed this way may go to another target:
/// - when it never left (cannot connect), always: even a streamed body
///   has not been read from the client yet;
/// - otherwise only when its body can be sent again (buffered), and only
///   for idempotent methods: the backend may have acted on it before the
///   connection failed. A reused connection closing before any response
///   byte is retried on a fresh connection to the same target already,
///   in [`attempt`].
fn retry_elsewhere(f: &Failure, idempotent: bool, body: &RequestBody) -> bool {
    match f {
        Failure::Connect(_) => true,
        Failure::Client(_) => false,
        _ => may_send_again(idempotent, body),
    }
}

/// Whether a request that reached a backend may be sent again, to it or
/// another: after a failure (see [`retry_elsewhere`]), or an answer
/// whose status `retry_on_status` lists. Only an idempotent one (the
/// backend may have acted on it) whose body can be sent again (buffered).
fn may_send_again(idempotent: bool, body: &RequestBody) -> bool {
    idempotent && body.is_buffered()
}

/// One target: send the request, read the response head. A pooled
/// connection the backend closed while it idled fails before any response
/// byte: for an idempotent request whose body can be sent again, that one
/// failure is retried on a new connection and not held against the target.
///
/// Any other request is sent once: the backend may have acted on it before
/// closing (a POST charged twice). Every request only goes out on a pooled
/// connection that is still open and silent when it leaves (the backend's
/// close of an idle connection has usually arrived by then); what closes
/// after that is left to chance, as nginx, which never retries a
/// non-idempotent request, also leaves it.
fn attempt(
    client: &mut Client,
    upstreams: &Upstreams,
    target: &Upstream,
    request: &[u8],
    send: &Outgoing<'_>,
    idempotent: bool,
    own: &OwnFields,
) -> Result<(UpstreamConn, ResponseHead, usize, SystemTime), Failure> {
    let replayable = may_send_again(idempotent, send.body);
    let mut fresh = false;
    loop {
        let request_time = SystemTime::now();
        let connecting = Instant::now();
        client.upstream_connect = None;
        let mut up = upstreams
            .checkout(target, fresh, |stream| client.watch.watch_backend(stream))
            .map_err(|e| {
                if is_local_shortage(&e) {
                    Failure::Local(e)
                } else {
                    Failure::Connect(e)
                }
            })?;
        // Whatever the method: bytes that arrived on an idle connection
        // (a late HEAD body, a second response, a 408 before closing) would
        // otherwise be read as the answer to this request, another
        // client's perhaps. nginx closes such a connection too.
        if up.reused && !still_open(&up.conn) {
            continue; // dropped; the next pooled one, or a new one
        }
        // nginx's `$upstream_connect_time`: none for a pooled connection.
        client.upstream_connect = Some(match up.reused {
            true => Duration::ZERO,
            false => connecting.elapsed(),
        });
        let watch = send
            .abandon_if_client_leaves
            .then(|| upstreams.backend_timeout());
        match send_request(&mut up, request, send, client, watch, own) {
            Ok((response, head_len)) => {
                target.stats.responses.count(response.status);
                client.upstream_status = Some(response.status);
                if let Some(wait) = client.upstream_wait {
                    target.stats.header_times.observe(wait);
                }
                return Ok((up, response, head_len, request_time));
            }
            // A pooled connection the backend had closed or reset while it
            // idled (a restarted backend, most often): the others it holds
            // went the same way, so they go too. The backend is not at
            // fault; a request that may be sent again goes on a new one.
            // Not once part of a response head came: that is no
            // connection closed while idle, and the request is not sent
            // again here (only within `retries`, see `retry_elsewhere`).
            Err(f) if up.reused && f.before_response() && up.conn.buffered().is_empty() => {
                target.forget_idle();
                if !replayable {
                    return Err(Failure::Stale(Box::new(f)));
                }
                // Sent again: the backend may well have seen both.
                target.stats.requests.fetch_add(1, Ordering::Relaxed);
                fresh = true;
            }
            Err(f) => return Err(f),
        }
    }
}

/// The parts of the forwarded head that do not depend on the target.
struct Forwarding {
    path: String,
    /// The authority the client asked for, if any: the backend's Host
    /// unless `request_header.Host` sets another, and its
    /// `X-Forwarded-Host` whatever that sets.
    host: Option<String>,
    /// `request_header.Host` is set: the backend gets that Host.
    host_set: bool,
    had_body: bool,
    /// With `request_header.*` values that hold variables: the lines of
    /// those fields, rendered for this request (every attempt sends the
    /// same); empty without.
    rendered: Vec<u8>,
}

/// Rewrites `head` for any backend once: end-to-end fields only, less
/// those `request_header.*` names, plus the forwarding fields and cache
/// validators.
fn prepare_request(
    head: &mut RequestHead,
    send: &Outgoing<'_>,
    client: &Client,
    to: Destination<'_>,
    shared: &Shared,
) -> Forwarding {
    let edits = &shared.config_of_pool(to.pool).request_headers;
    // From the request as the client sent it (less what the proxy took
    // out before anything read it: an underscored name, its own cookie).
    let mut rendered = Vec::new();
    if edits.has_variables() {
        edits.render_variable_lines(&facts(head, client, shared), &mut rendered);
    }
    // With a route's `rewrite=`, the path it replaces a prefix of.
    let target = head.origin_target();
    let path = match to.route.and_then(|r| r.rewritten(&target)) {
        Some(rewritten) => rewritten,
        None => target.into_owned(),
    };
    // RFC 9112 §3.2.2: for an absolute-form target, the authority in it
    // replaces any Host field. Spelled as the cache keys it (see
    // `push_canonical_authority`).
    let host = head.authority().map(|authority| {
        let mut host = String::with_capacity(authority.len());
        push_canonical_authority(&mut host, authority);
        host
    });
    // A body the client framed, even an empty one, is announced with a
    // Content-Length: some backends answer a POST without one 411.
    let had_body =
        head.headers.contains("content-length") || head.headers.contains("transfer-encoding");
    strip_hop_by_hop(&mut head.headers, send.upgrade);
    head.headers.remove("expect");
    // Every field the client sent of a name `request_header.*` sets or
    // removes, or that a backend reading `_` as `-` would take for one
    // (with `underscores_in_headers`): the set ones go after the fields
    // on each attempt (see `upstream_request`). Never one the proxy
    // writes below (the configuration refuses those names), and after
    // what the cache and the log read: they see the request as the
    // client sent it (but for an edited `Authorization`, which
    // `exchange` takes out before the cache reads the request).
    let host_set = !edits.is_empty() && {
        edits.remove_read_alike_from(&mut head.headers);
        edits.edits(b"host")
    };
    if send.upgrade {
        head.headers.push("Connection", "Upgrade");
    }
    add_forwarded(
        &mut head.headers,
        &Forwarded {
            client_ip: client.peer,
            real_ip: client.real_ip,
            proto: client.scheme,
            host: host.as_deref(),
            via: shared.config.via.then(|| via_entry(head.version)),
            surrogate_capability: (shared.cache_rules.of_pool(to.pool).surrogate_capability)
                .as_deref(),
        },
    );
    for (name, value) in send.extra {
        head.headers.set(name, value);
    }
    // After the hop-by-hop fields went: a client naming the field in
    // `Connection` cannot make it disappear.
    if let Some((name, id)) = &client.request_id {
        head.headers.set(name, id);
    }
    Forwarding {
        path,
        host,
        host_set,
        had_body,
        rendered,
    }
}

/// What the variables of `request_header.*` values stand for in the
/// request `head` from `client`.
pub(super) fn facts<'a>(
    head: &'a RequestHead,
    client: &'a Client,
    shared: &'a Shared,
) -> Facts<'a> {
    Facts {
        head,
        sent_target: client.sent_target.as_deref(),
        client: client.real_ip,
        // The connection's: not that of a client a proxy in front named.
        client_port: (client.real_ip == client.peer).then_some(client.peer_port),
        server: client.server,
        user: client.user.as_deref(),
        scheme: client.scheme,
        tls: client.tls,
        server_name: client.server_name.as_deref(),
        certificate: client.certificate.as_deref(),
        request_id: client.request_id.as_ref().map(|(_, id)| id.as_str()),
        // From the route: `client.pool` is taken for the log before a
        // revalidation in the background renders these.
        pool: (shared.routed_pool(client.route)).map(|i| &**shared.pools.get(i).shared_name()),
        now: SystemTime::now(),
    }
}

/// Builds the head sent to `target`: origin-form request line, the
/// prepared fields, Host, the fields `request_header.*` sets (`edits`,
/// whose names [`prepare_request`] took out), `Connection: close` when
/// `close`, and our own framing.
fn upstream_request(
    head: &mut RequestHead,
    forwarding: &Forwarding,
    edits: &FieldEdits,
    send: &Outgoing<'_>,
    target: &Upstream,
    close: bool,
) -> Vec<u8> {
    match &forwarding.host {
        _ if forwarding.host_set => {}
        Some(h) => head.headers.set("Host", h.as_str()),
        None => head.headers.set("Host", &*target.host),
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(forwarding.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    head.headers.write_to(&mut out);
    out.extend_from_slice(edits.set_lines());
    out.extend_from_slice(&forwarding.rendered);
    // A connection used once: RFC 9112 §9.6 has a client that does not
    // persist say so, and the backend then holds it open for no next
    // request.
    if close && !send.upgrade {
        out.extend_from_slice(CLOSE_LINE);
    }
    match send.body {
        RequestBody::Buffered(b) if !b.is_empty() || forwarding.had_body => {
            push_field(&mut out, "Content-Length", b.len() as u64);
        }
        RequestBody::Buffered(_) => {}
        RequestBody::Streamed {
            kind: BodyKind::Length(n),
            ..
        } => {
            push_field(&mut out, "Content-Length", *n);
        }
        RequestBody::Streamed { .. } => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// What a request to a backend that keeps no connection says
/// (`upstream_keepalive = 0`).
pub(super) const CLOSE_LINE: &[u8] = b"Connection: close\r\n";

/// Why an exchange with a backend failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// No connection: the request never left.
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    /// No connection for want of this proxy's own resources (descriptors,
    /// memory): not the backend's doing, and no other does better.
    #[error("this proxy cannot open a connection: {0}")]
    Local(io::Error),
    /// The backend did not answer in time, at that phase.
    #[error("timed out {0}")]
    Timeout(Phase),
    /// The connection ended before a single response byte.
    #[error("closed the connection without a response")]
    Closed,
    #[error("I/O error {0}: {1}")]
    Io(Phase, io::Error),
    #[error("malformed response: {0}")]
    Malformed(Malformed),
    /// The client's side failed; answer with this, if anything.
    #[error("the client failed")]
    Client(Option<u16>),
    /// A pooled connection turned out dead before any response byte, for
    /// a request that must not be sent twice: not held against the target.
    #[error("a pooled connection it had closed: {0}")]
    Stale(Box<Failure>),
}

/// Where in an exchange with a backend, once connected, a timeout or an
/// I/O error struck: said on stderr, and the stage of `$termination`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// The request (its head, its body) was going to the backend.
    Sending,
    /// The request had gone; its response head had not come.
    Head,
    /// The response body was on its way.
    Body,
}

impl Phase {
    /// HAProxy's stage: the request going out counts as the wait for
    /// the response head (`sH` for a timeout either way).
    fn stage(self) -> Stage {
        match self {
            Phase::Sending | Phase::Head => Stage::Head,
            Phase::Body => Stage::Data,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Sending => "sending the request",
            Phase::Head => "waiting for the response head",
            Phase::Body => "reading the response body",
        })
    }
}

/// How a backend's reply broke HTTP.
#[derive(Debug, thiserror::Error)]
pub(super) enum Malformed {
    #[error(transparent)]
    Head(HeadError),
    #[error(transparent)]
    Body(BodyError),
    #[error("101 without an upgrade request")]
    UnaskedSwitch,
    #[error("too many interim responses")]
    TooManyInterim,
    #[error("response head too large")]
    HeadTooLarge,
    #[error("reply is not HTTP")]
    NotHttp,
    #[error("connection closed inside the response head")]
    ClosedInHead,
    #[error("connection closed after an interim response")]
    ClosedAfterInterim,
    #[error("connection closed inside the body")]
    ClosedInBody,
}

impl Failure {
    pub(super) fn status(&self) -> u16 {
        match self {
            Failure::Timeout(_) => 504,
            Failure::Connect(e) if is_timeout(e) => 504,
            Failure::Local(_) => 503,
            _ => 502,
        }
    }

    /// Failures that leave no doubt the backend never sent a response.
    fn before_response(&self) -> bool {
        matches!(self, Failure::Closed | Failure::Io(..))
    }

    pub(super) fn io(phase: Phase, e: io::Error) -> Self {
        if is_timeout(&e) {
            Failure::Timeout(phase)
        } else {
            Failure::Io(phase, e)
        }
    }

    /// The stage of the exchange this failure ended (see
    /// [`Failure::termination`]).
    pub(super) fn stage(&self) -> Stage {
        match self {
            Failure::Connect(_) | Failure::Local(_) => Stage::Connect,
            Failure::Timeout(phase) | Failure::Io(phase, _) => phase.stage(),
            Failure::Closed => Stage::Head,
            Failure::Malformed(m) => match m {
                Malformed::Body(_) | Malformed::ClosedInBody => Stage::Data,
                _ => Stage::Head,
            },
            // A client that left while the answer was awaited told so
            // itself (`Client::departure`); others failed in a body.
            Failure::Client(_) => Stage::Data,
            Failure::Stale(f) => f.stage(),
        }
    }

    /// Why and where the exchange ended, as HAProxy's termination state:
    /// the backend refused or cut it (`SC`, `SH`, `SD`), timed out
    /// (`sC`, `sH`, `sD`), or sent what the proxy refuses (`PH`, `PD`);
    /// the client left (`CD`), was slow (`cD`) or sent a body the proxy
    /// refuses (`PD`); the proxy had no descriptor to connect with (`RC`).
    pub(super) fn termination(&self) -> Termination {
        let by = match self {
            Failure::Connect(e) if is_timeout(e) => By::ServerTimeout,
            Failure::Connect(_) | Failure::Closed | Failure::Io(..) => By::Server,
            Failure::Local(_) => By::Resource,
            Failure::Timeout(_) => By::ServerTimeout,
            Failure::Malformed(m) => match m {
                // Cut short: the backend's doing.
                Malformed::ClosedInHead
                | Malformed::ClosedAfterInterim
                | Malformed::ClosedInBody
                | Malformed::Body(BodyError::Truncated) => By::Server,
                Malformed::Body(BodyError::Io(e)) if is_timeout(e) => By::ServerTimeout,
                Malformed::Body(BodyError::Io(_)) => By::Server,
                // What the proxy would not pass on (HAProxy's `PH`, `PD`).
                _ => By::Proxy,
            },
            Failure::Client(None) => By::Client,
            Failure::Client(Some(408)) => By::ClientTimeout,
            Failure::Client(Some(_)) => By::Proxy,
            Failure::Stale(f) => return f.termination(),
        };
        Termination::new(by, self.stage())
    }
}

impl From<HeadError> for Failure {
    fn from(e: HeadError) -> Self {
        Failure::Malformed(Malformed::Head(e))
    }
}

impl From<BodyError> for Failure {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Io(e) => Failure::io(Phase::Body, e),
            e => Failure::Malformed(Malformed::Body(e)),
        }
    }
}

/// Sends the request and reads the final response head (skipping 1xx).
/// `watch`: the backend timeout, when the wait for the response gives up
/// if the client leaves (see [`Outgoing::abandon_if_client_leaves`]).
/// `own`: the cache's own fields, taken out of an interim response passed
/// on as out of any other.
fn send_request(
    up: &mut UpstreamConn,
    request: &[u8],
    send: &Outgoing<'_>,
    client: &mut Client,
    watch: Option<Duration>,
    own: &OwnFields,
) -> Result<(ResponseHead, usize), Failure> {
    // Once the backend has begun answering (an interim response, read
    // while the body went or after it), this is no pooled connection it
    // had closed while idle, and the request is not sent again (see
    // `attempt`).
    let began = up.conn.taken();
    let after_interim = |f: Failure, up: &UpstreamConn| match f {
        f if up.conn.taken() > began && f.before_response() => {
            Failure::Malformed(Malformed::ClosedAfterInterim)
        }
        f => f,
    };
    if let Err(f) = send_with_body(up, request, send, client) {
        return Err(after_interim(f, up));
    }
    // From here on the backend has the request: what it takes to answer
    // is its own time (the log's `upstream_ms`), not the upload's.
    let sent = Instant::now();
    for _ in 0..=MAX_INTERIM_RESPONSES {
        let len = match read_response_head(&mut up.conn, client, watch) {
            Ok(len) => len,
            Err(f) => return Err(after_interim(f, up)),
        };
        let mut response = parse_response(&up.conn.buffered()[..len])?;
        // The request's ID is ours to give the client (and the cache must
        // not keep one backend's echo of it).
        if let Some((name, _)) = &client.request_id {
            response.headers.remove(name);
        }
        // RFC 9110 §15.2.2: a server sends 101 only in answer to Upgrade.
        // One we did not ask for would hand the connection to some other
        // protocol behind the client's back.
        if response.status == 101 {
            return if send.upgrade {
                client.upstream_wait = Some(sent.elapsed());
                Ok((response, len))
            } else {
                Err(Failure::Malformed(Malformed::UnaskedSwitch))
            };
        }
        // Interim responses: a `100 Continue` is about the body we send,
        // and the client had its own from us if it asked; the others
        // (`103 Early Hints`) are the client's (RFC 9110 §15.2).
        if response.status < 200 {
            if send.interim_to_client && response.status != 100 {
                pass_on_interim(&mut response, client, own)?;
            }
            up.conn.consume(len);
            continue;
        }
        // RFC 9110 §6.6.1: a recipient with a clock that forwards (or
        // caches) a response without Date adds the time it arrived.
        if !response.headers.contains("date") {
            response
                .headers
                .push("Date", format_http_date(SystemTime::now()));
        }
        client.upstream_wait = Some(sent.elapsed());
        return Ok((response, len));
    }
    Err(Failure::Malformed(Malformed::TooManyInterim))
}

/// Sends the request head and its body (see [`send_buffered`] and
/// [`stream_request_body`]), marking `up` when not all of the body went.
fn send_with_body(
    up: &mut UpstreamConn,
    request: &[u8],
    send: &Outgoing<'_>,
    client: &mut Client,
) -> Result<(), Failure> {
    match send.body {
        RequestBody::Buffered(bytes) => up.body_cut = !send_buffered(&mut up.conn, request, bytes)?,
        RequestBody::Streamed { kind, unsent } => {
            // Taken before a byte goes: whatever happens next, it cannot be
            // sent again.
            let Some(Unsent { start, rest }) = unsent.take() else {
                log::error!("a streamed request body was to be sent twice; answering 502");
                return Err(Failure::Client(Some(502)));
            };
            (up.conn.get_mut().write_all(request)).map_err(|e| Failure::io(Phase::Sending, e))?;
            if send.expect_continue {
                client.send_continue().map_err(|_| Failure::Client(None))?;
            }
            let chunked = *kind == BodyKind::Chunked;
            let whole = stream_request_body(chunked, &start, rest, &mut client.conn, &mut up.conn)?;
            up.body_cut = !whole;
            up.client_body_left = !whole;
        }
    }
    Ok(())
}

/// Sends an interim response on to the client as it came, less its
/// hop-by-hop fields, framing ones included: a client that took a
/// `Content-Length` on a 1xx for a body would read the final response as
/// its bytes. Less the cache's `own` fields too: what the backend says to
/// this cache alone reaches no client, whatever response it comes on.
fn pass_on_interim(
    response: &mut ResponseHead,
    client: &mut Client,
    own: &OwnFields,
) -> Result<(), Failure> {
    strip_hop_by_hop(&mut response.headers, false);
    own.remove_from(&mut response.headers);
    response.version = Version::Http11;
    let mut head = Vec::with_capacity(256);
    response.write_start(&mut head);
    head.extend_from_slice(b"\r\n");
    client
        .conn
        .get_mut()
        .write_all(&head)
        .map_err(|_| Failure::Client(None))
}

/// Sends a request with its whole body; returns whether all of the body
/// went (see [`send_unless_answered`]).
fn send_buffered(
    up: &mut BufConn<SharedStream<Stream>>,
    request: &[u8],
    body: &[u8],
) -> Result<bool, Failure> {
    send_unless_answered(up, &mut [IoSlice::new(request), IoSlice::new(body)])
}

/// Writes `bufs` to the backend whole, unless it answers first (see
/// [`answered_early`]): whenever the socket takes no more, the wait for it
/// also watches for the backend's answer. `Ok(false)`: it answered, and
/// not all went. A backend that answered a large body's head with a 413
/// and stopped reading would otherwise leave the write waiting for its
/// timeout, or for the backend to close.
fn send_unless_answered(
    up: &mut BufConn<SharedStream<Stream>>,
    bufs: &mut [IoSlice<'_>],
) -> Result<bool, Failure> {
    let stream = up.get_ref().0.clone();
    match write_all_unless_answered(&stream, bufs, || answered_early(up)) {
        Ok(all) => Ok(all),
        Err(e) => answered_or(up, e),
    }
}

/// After a failed write of the request body: `Ok(false)` (not all of it
/// went) if the backend answered early, which is what the failure was,
/// else the failure.
fn answered_or(up: &mut BufConn<SharedStream<Stream>>, e: io::Error) -> Result<bool, Failure> {
    if answered_early(up) {
        Ok(false)
    } else {
        Err(Failure::io(Phase::Sending, e))
    }
}

/// Copies a request body from the client to the backend, re-framed: the
/// backend sees exactly the framing we announced, whatever the client sent.
/// What each read from the client brings goes on in one write (one chunk),
/// however many chunks it held (see [`BodyReader::next_joined`]): a body
/// sent a byte per chunk would otherwise cost a write, and most likely a
/// packet, per byte.
///
/// Returns whether the whole body went. A backend may answer before it has
/// read the body (a 413, a 401), and then stop reading or close (RFC 9112
/// §9.5: a client sending a body should watch for that). Before each piece
/// and after a failed write, a non-blocking peek looks for such an answer:
/// then the rest of the body is not sent, and the answer is relayed rather
/// than turned into a 502 (or, from a backend that stops reading but keeps
/// the connection, a 504 some write timeouts later).
fn stream_request_body(
    chunked: bool,
    start: &[u8],
    mut rest: BodyReader,
    from: &mut BufConn<impl Source>,
    up: &mut BufConn<SharedStream<Stream>>,
) -> Result<bool, Failure> {
    let mut size_line = Vec::new();
    let mut start = Some(start).filter(|s| !s.is_empty());
    loop {
        let piece = match start.take() {
            Some(piece) => piece,
            None => match rest.next_joined(from) {
                Ok(Some(piece)) => {
                    // A read that ends in a bad or too large chunk sends
                    // nothing: the backend gets no more of a body the
                    // client is refused for.
                    if let Some(e) = rest.failure() {
                        return Err(Failure::Client(client_body_status(&e)));
                    }
                    piece
                }
                Ok(None) => break,
                Err(e) => return Err(Failure::Client(client_body_status(&e))),
            },
        };
        if answered_early(up) {
            return Ok(false);
        }
        let all = if chunked {
            size_line.clear();
            chunk_size_line(piece.len(), &mut size_line);
            let mut framed = [
                IoSlice::new(&size_line),
                IoSlice::new(piece),
                IoSlice::new(b"\r\n"),
            ];
            send_unless_answered(up, &mut framed)?
        } else {
            send_unless_answered(up, &mut [IoSlice::new(piece)])?
        };
        if !all {
            return Ok(false);
        }
    }
    if chunked {
        (up.get_mut().write_all(LAST_CHUNK)).map_err(|e| Failure::io(Phase::Sending, e))?;
    }
    Ok(true)
}

/// Whether the backend has begun its final answer while the request body
/// is still going. What it sent is read without waiting; whole interim
/// (1xx) responses are dropped, as a backend may send `100 Continue`
/// unasked, and the start of one is not an answer yet, unless it is
/// longer than any head may be or malformed: then it is taken as the
/// answer, which the relay refuses (502), rather than buffered on. A
/// `101` is an answer: after it the connection speaks another protocol,
/// and `send_request` refuses it unless the client asked to switch.
fn answered_early(up: &mut BufConn<SharedStream<Stream>>) -> bool {
    if up.buffered().is_empty() && !up.get_ref().has_waiting() {
        return false;
    }
    let _ = up.fill_now();
    loop {
        // Empty lines before a status line are no answer: the head's
        // reader skips them (RFC 9112 §2.2).
        while up.buffered().starts_with(b"\r\n") {
            up.consume(2);
        }
        let buffered = up.buffered();
        if buffered == b"\r" {
            return false;
        }
        match interim_status(buffered) {
            None => return false,
            Some(false) => return true,
            Some(true) => {}
        }
        if buffered.get(9..12) == Some(b"101") {
            return true;
        }
        match find_head_end(buffered, &mut 0) {
            Ok(Some(len)) if len <= MAX_RESPONSE_HEAD => up.consume(len),
            Ok(None) if buffered.len() <= MAX_RESPONSE_HEAD => return false,
            _ => return true,
        }
    }
}

/// What the first bytes of a response say of it: `Some(true)` the status
/// line of an interim (1xx) answer, of any HTTP/1 version; `Some(false)`
/// a final answer's, or no HTTP; `None` too few bytes to tell.
fn interim_status(start: &[u8]) -> Option<bool> {
    // `x`: any digit.
    const INTERIM: &[u8; 10] = b"HTTP/1.x 1";
    let fits = |(&b, &p): (&u8, &u8)| b == p || (p == b'x' && b.is_ascii_digit());
    let fitting = start.iter().zip(INTERIM).all(fits);
    match start.len() {
        n if n >= INTERIM.len() => Some(fitting),
        _ if fitting => None,
        _ => Some(false),
    }
}

/// Reads until a complete response head is buffered; returns its length.
fn read_response_head(
    conn: &mut BufConn<SharedStream<Stream>>,
    client: &Client,
    mut watch: Option<Duration>,
) -> Result<usize, Failure> {
    let mut scanned = 0;
    loop {
        // One read can bring a whole head larger than the limit.
        match find_head_end(conn.buffered(), &mut scanned)? {
            Some(len) if len <= MAX_RESPONSE_HEAD => return Ok(len),
            Some(_) => return Err(Failure::Malformed(Malformed::HeadTooLarge)),
            None => {}
        }
        if conn.buffered().len() > MAX_RESPONSE_HEAD {
            return Err(Failure::Malformed(Malformed::HeadTooLarge));
        }
        // Not HTTP at all (another protocol on the port, a banner): a 502
        // now, not after waiting for a head end that may never come.
        // (Empty lines before a status line are skipped by the parser.)
        let start = conn.buffered();
        let start = &start[start
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count()..];
        if !b"HTTP/".starts_with(&start[..start.len().min(5)]) {
            return Err(Failure::Malformed(Malformed::NotHttp));
        }
        let mut left = false;
        let filled = sched::fill_yielding_or(conn, Peer::Backend, client.crowded, |conn| {
            fill_unless_client_leaves(conn, client, &mut watch, &mut left)
        });
        if left {
            return Err(client.departure(Stage::Head));
        }
        match filled {
            Ok(0) if conn.buffered().is_empty() => return Err(Failure::Closed),
            Ok(0) => return Err(Failure::Malformed(Malformed::ClosedInHead)),
            Ok(_) => {}
            Err(e) => return Err(Failure::io(Phase::Head, e)),
        }
    }
}

/// `conn.fill()` that, while `watch` holds the backend timeout, also
/// watches the client once the backend has taken `CLIENT_CHECK_AFTER`: one
/// that closes its connection before the backend answers sets `left`
/// (nothing is read). One that only shut down its sending side after
/// sending more requests has not left: it is waiting for their answers,
/// and from then on is not watched (its half-close would wake every wait).
fn fill_unless_client_leaves(
    conn: &mut BufConn<SharedStream<Stream>>,
    client: &Client,
    watch: &mut Option<Duration>,
    left: &mut bool,
) -> io::Result<usize> {
    let Some(patience) = *watch else {
        return conn.fill();
    };
    // Over TLS the socket's bytes are not the plaintext: what the session
    // holds already a wait would not see, and what makes the socket
    // readable may give none (a TLS 1.3 session ticket, sent right after
    // the handshake; part of a record). The wait is then taken up again,
    // still watching the client, for what is left of the patience.
    let tls = matches!(&**conn.get_ref(), Stream::Tls(_));
    let deadline = Instant::now() + patience;
    let mut watched = Some(client.conn.get_ref().0.as_ref());
    let backend_fd = conn.get_ref().as_raw_fd();
    loop {
        if tls {
            match conn.fill_now() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
        }
        let patience = deadline.saturating_duration_since(Instant::now());
        let gone = |_: &_| client.has_left();
        if !wait_unless_left(backend_fd, &mut watched, CLIENT_CHECK_AFTER, patience, gone)? {
            *left = true;
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        if watched.is_none() {
            *watch = None;
        }
        if !tls || watched.is_none() {
            return conn.fill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Target};
    use crate::http::conn::tests::loopback_pair;
    use std::net::SocketAddr;
    use std::sync::Arc;

    #[test]
    fn a_target_s_failures_are_said_once_a_minute_for_each_cause() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let upstreams = Upstreams::new(&Config::with_targets(vec![Target::new("a", addr)]));
        let target = &upstreams.targets()[0];
        let client = (IpAddr::from([192, 0, 2, 7]), Some("id-1"));
        assert!(say_failure(target, "101 without Upgrade", client));
        // Every upgrade after it meets the same: not said again within
        // the minute, but counted for the next line.
        assert!(!say_failure(target, "101 without Upgrade", client));
        let said = &target.stats.failures_said;
        assert_eq!(
            said.failed_because(Instant::now(), "101 without Upgrade"),
            None
        );
        // The target's other failures are said as well: another cause is
        // said at once, its own count kept.
        assert_eq!(
            said.failed_because(Instant::now(), "cannot connect: refused"),
            Some(0)
        );
    }

    #[test]
    fn a_failure_says_its_stage_on_stderr_and_in_the_log() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let slow = io::Error::from(io::ErrorKind::TimedOut);
        let reset = || io::Error::from(io::ErrorKind::ConnectionReset);
        let cases = [
            (Failure::Connect(refused), "SC"),
            (Failure::Connect(slow), "sC"),
            (
                Failure::Local(io::Error::from(io::ErrorKind::OutOfMemory)),
                "RC",
            ),
            (Failure::Timeout(Phase::Sending), "sH"),
            (Failure::Timeout(Phase::Head), "sH"),
            (Failure::Timeout(Phase::Body), "sD"),
            (Failure::Io(Phase::Head, reset()), "SH"),
            (Failure::Io(Phase::Body, reset()), "SD"),
            (Failure::Closed, "SH"),
            (Failure::Malformed(Malformed::NotHttp), "PH"),
            (Failure::Malformed(Malformed::ClosedInHead), "SH"),
            (Failure::Malformed(Malformed::ClosedInBody), "SD"),
            (Failure::from(BodyError::Truncated), "SD"),
            (Failure::from(BodyError::BadChunk("size")), "PD"),
            (Failure::Client(None), "CD"),
            (Failure::Client(Some(408)), "cD"),
            (Failure::Client(Some(413)), "PD"),
            (Failure::Stale(Box::new(Failure::Closed)), "SH"),
        ];
        for (failure, state) in cases {
            assert_eq!(failure.termination().as_str(), state, "{failure}");
        }
        let said = |f: Failure| f.to_string();
        assert_eq!(
            said(Failure::Timeout(Phase::Head)),
            "timed out waiting for the response head"
        );
        assert_eq!(
            said(Failure::Timeout(Phase::Body)),
            "timed out reading the response body"
        );
        assert_eq!(
            said(Failure::io(Phase::Sending, reset())),
            format!("I/O error sending the request: {}", reset())
        );
    }

    #[test]
    fn an_interim_head_that_never_ends_is_an_answer_past_the_head_limit() {
        // A `100 Continue` started during an upload and never finished:
        // taken as the answer (which the relay refuses) once longer than
        // any head may be, not buffered for as long as the backend sends.
        let (mut backend, proxy_side) = loopback_pair();
        let mut up = BufConn::new(SharedStream(Arc::new(Stream::Tcp(proxy_side))), 16 * 1024);
        backend.write_all(b"HTTP/1.1 100 Continue\r\nX: ").unwrap();
        assert!(!answered_early(&mut up), "the start of an interim head");
        let writer = std::thread::spawn(move || {
            let junk = vec![b'a'; 8 * 1024];
            for _ in 0..16 {
                if backend.write_all(&junk).is_err() {
                    break;
                }
            }
            backend
        });
        let _backend = writer.join().unwrap();
        // Bounded: each call reads what has arrived, 128 KiB in all.
        let answered = (0..64).any(|_| answered_early(&mut up));
        assert!(answered);
        assert!(up.buffered().len() <= 2 * MAX_RESPONSE_HEAD);
    }

    #[test]
    fn the_first_bytes_of_an_interim_head_of_any_http_1_version_are_no_answer_yet() {
        // An HTTP/1.0 backend's `100 Continue`, its first bytes arrived
        // alone: taken for a final answer, the upload was cut and waited
        // for an answer that never came.
        for (first, answered) in [
            (&b"HTTP/1.0"[..], false),
            (b"HTTP/1.0 1", false),
            (b"HTTP/1.1 ", false),
            (b"HTTP/1.0 2", true),
            (b"HTTP/2", true),
            (b"SSH-2.0", true),
        ] {
            let (mut backend, proxy_side) = loopback_pair();
            let mut up = BufConn::new(SharedStream(Arc::new(Stream::Tcp(proxy_side))), 4096);
            backend.write_all(first).unwrap();
            // Arrived, or the `false` of an empty socket would pass.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !up.get_ref().has_waiting() {
                assert!(std::time::Instant::now() < deadline, "nothing arrived");
                std::thread::yield_now();
            }
            let said = String::from_utf8_lossy(first);
            assert_eq!(answered_early(&mut up), answered, "{said:?}");
        }
    }
}
