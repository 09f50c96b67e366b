//! Sending a request and reading its final response head: interim (1xx)
//! responses passed on to the client or dropped, a 101 taken only when
//! asked for.

use super::response_head::read_response_head;
use super::upload::{send_buffered, send_spooled, stream_request_body};
use super::{Failure, Malformed, Outgoing, Phase, RequestBody, Unsent};
use crate::cache::policy::OwnFields;
use crate::http::date::format_http_date;
use crate::http::forward::strip_hop_by_hop;
use crate::http::head::parse_response;
use crate::http::{BodyKind, ResponseHead, Version};
use crate::proxy::Client;
use crate::upstream::UpstreamConn;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

/// Interim (1xx) responses absorbed before the final one; a backend that
/// sends an endless stream of them would otherwise hold the thread forever.
const MAX_INTERIM_RESPONSES: usize = 16;

/// Sends the request and reads the final response head (skipping 1xx).
/// `watch`: the backend timeout, when the wait for the response gives up
/// if the client leaves (see [`Outgoing::abandon_if_client_leaves`]).
/// `own`: the cache's own fields, taken out of an interim response passed
/// on as out of any other.
pub(super) fn send_request(
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
        RequestBody::Spooled(body) => up.body_cut = !send_spooled(&mut up.conn, request, body)?,
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
            let trailers = client.pass_trailers.then_some(request);
            let whole = stream_request_body(
                chunked,
                trailers,
                &start,
                rest,
                &mut client.conn,
                &mut up.conn,
            )?;
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
