//! A response's body read for no client waiting on its pieces (absorbed
//! into a tee for the cache, read whole, discarded), and its backend
//! connection returned to the pool when it may carry another request.

use super::Tee;
use crate::http::body::{decode_complete_chunked, response_forbids_reuse};
use crate::http::conn::{SharedStream, Stream};
use crate::http::{BodyError, BodyKind, BodyReader, BufConn, ResponseHead};
use crate::proxy::origin::{hold_against, AfterHead, Busy, Failure, Fetched, Malformed, Phase};
use crate::proxy::Client;
use crate::upstream::{Upstream, UpstreamConn};
use std::time::{Duration, Instant};

/// Returns a connection whose response was read to its end to the pool,
/// its exchange over (its `Busy` dropped: past this, another may read
/// the connection, and the bytes it counts would be theirs). Bytes past the end of the response are not the start of the next one:
/// nothing was asked yet. A backend that sends them has lost track of
/// framing (or is desynchronising us on purpose); pooled, they would be
/// read as the answer to someone else's request. The connection is
/// dropped instead.
pub(super) fn reuse(client: &Client, target: &Upstream, conn: BufConn<SharedStream<Stream>>) {
    if conn.buffered().is_empty() {
        // No longer this connection's to cut at a forced close: from the
        // pool it may carry someone else's request.
        client.watch.backend_done();
        target.checkin(conn, Some(&client.kept_backend));
    }
}

/// Returns a bodiless response's connection to the pool (a 304 used to
/// refresh a cache entry, say), or closes it, before the client has its
/// answer.
pub(in crate::proxy) fn finish_bodiless(fetched: Fetched<'_>, client: &Client) {
    let AfterHead {
        target,
        up,
        response,
        busy,
    } = fetched.after_head();
    // Whole with its head: its last byte came with it. Its slot is
    // freed once the connection is back (see `Busy::end`).
    let _slot = busy.and_then(Busy::read_whole);
    if may_reuse(&response, BodyKind::Empty, &up) {
        reuse(client, target, up.conn);
    }
}

/// Lets go of an answer no client will get: its status is retried on
/// another target (`retry_on_status`). Its connection goes back to the
/// pool only when the whole body came with the head (an error page most
/// often does): nothing is waited for, and no large body read, for an
/// answer that is thrown away. Any other closes.
pub(in crate::proxy) fn discard(fetched: Fetched<'_>, request_is_head: bool, client: &Client) {
    let AfterHead {
        target,
        mut up,
        response,
        busy,
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
            Some(whole) => {
                up.conn.consume(whole.used);
                true
            }
            None => false,
        },
        BodyKind::UntilClose => false,
    };
    let _slot = busy.and_then(Busy::end);
    if arrived && may_reuse(&response, kind, &up) {
        reuse(client, target, up.conn);
    }
}

/// How [`absorb`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::proxy) enum Absorbed {
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
pub(in crate::proxy) fn absorb(
    client: &Client,
    mut fetched: Fetched<'_>,
    tee: &mut Tee<'_>,
    within: Option<Duration>,
) -> Absorbed {
    // Stored as clients get it, `sub_filter`'s strings replaced.
    let mut substitution = fetched.substitution.take();
    let read = read_body(
        client,
        fetched,
        tee.limit,
        within,
        |piece| match substitution.as_mut() {
            Some(s) => s.pass(piece, false, |made| tee.push(made)),
            None => tee.push(piece),
        },
    );
    match read {
        Ok(_) => {
            if let Some(s) = substitution.as_mut() {
                s.pass(b"", true, |made| tee.push(made));
            }
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
pub(in crate::proxy) fn read_whole(
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
        busy,
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
    let _slot = busy.and_then(Busy::read_whole);
    if may_reuse(&response, kind, &up) {
        reuse(client, target, up.conn);
    }
    Ok(response)
}

/// Whether the connection may carry another request once this response's
/// body has been read to its end.
pub(in crate::proxy) fn may_reuse(
    response: &ResponseHead,
    kind: BodyKind,
    up: &UpstreamConn,
) -> bool {
    response.allows_keep_alive()
        && !response_forbids_reuse(response)
        && kind != BodyKind::UntilClose
        && !up.body_cut
}
