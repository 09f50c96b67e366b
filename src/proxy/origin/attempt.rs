//! One target: a connection checked out (a pooled one still open, or a
//! new one), the request sent on it, and a pooled connection the backend
//! had closed while idle replaced once.

use super::exchange::send_request;
use super::retry::may_send_again;
use super::{Busy, Failure, Outgoing};
use crate::cache::policy::OwnFields;
use crate::config::LeastTimeMeasure;
use crate::http::conn::{is_local_shortage, Kind, SharedStream, Stream};
use crate::http::{BufConn, ResponseHead};
use crate::proxy::Client;
use crate::upstream::{UpstreamConn, Upstreams};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

/// Whether an idle connection can still carry a request (see
/// [`Stream::still_open`]).
pub(in crate::proxy) fn still_open(conn: &BufConn<SharedStream<Stream>>) -> bool {
    conn.buffered().is_empty() && conn.get_ref().still_open()
}

/// What the exchanges of a request go by, from its pool and its route.
pub(super) struct Terms<'a> {
    /// The longest the backend may keep it waiting (the pool's
    /// `backend_timeout`, or the route's own): for the response head,
    /// and, as the socket's timeouts, on each read and write of the
    /// bodies.
    pub timeout: Duration,
    /// The cache's own fields, taken out of an interim response passed
    /// on.
    pub own: &'a OwnFields,
}

/// One target, `busy`'s: send the request, read the response head (what
/// went and came on a connection that failed noted in `busy`). A pooled
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
pub(super) fn attempt(
    client: &mut Client,
    upstreams: &Upstreams,
    busy: &mut Busy<'_>,
    request: &[u8],
    send: &Outgoing<'_>,
    idempotent: bool,
    terms: &Terms<'_>,
) -> Result<(UpstreamConn, ResponseHead, usize, SystemTime), Failure> {
    let target = busy.target;
    let replayable = may_send_again(idempotent, send.body);
    let mut fresh = false;
    loop {
        let request_time = SystemTime::now();
        let connecting = Instant::now();
        client.upstream_connect = None;
        // Whom a PROXY header names, made only for a target sent one.
        let for_client = target.send_proxy.is_some().then(|| client.for_backend());
        let mut up = upstreams
            .checkout(target, fresh, for_client, terms.timeout, |stream| {
                client.watch.watch_backend(stream)
            })
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
        if let Kind::Fcgi(fcgi) = up.conn.get_ref().kind() {
            fcgi.begin(client.fastcgi_exchange());
        }
        // nginx's `$upstream_connect_time`: none for a pooled connection.
        client.upstream_connect = Some(match up.reused {
            true => Duration::ZERO,
            false => connecting.elapsed(),
        });
        let watch = send.abandon_if_client_leaves.then_some(terms.timeout);
        match send_request(&mut up, request, send, client, watch, terms.own) {
            Ok((response, head_len)) => {
                target.stats.responses.count(response.status);
                client.upstream_status = Some(response.status);
                if let Some(wait) = client.upstream_wait {
                    target.stats.header_times.observe(wait);
                    if target.timed_by(LeastTimeMeasure::Header) {
                        target.stats.latency.observe(wait, Instant::now());
                    }
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
                    busy.failed_on(&up);
                    return Err(Failure::Stale(Box::new(f)));
                }
                // Sent again: the backend may well have seen both.
                target.stats.requests.fetch_add(1, Ordering::Relaxed);
                fresh = true;
            }
            Err(f) => {
                busy.failed_on(&up);
                return Err(f);
            }
        }
    }
}
