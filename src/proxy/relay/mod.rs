//! The response side of an exchange: relay what a backend answered to the
//! client (head and small body in one write, larger bodies streamed), take
//! a copy for the cache on the way, and return the connection to the pool
//! when it may carry another request.
//!
//! # Layout
//! - `tee`: the copy of a body the cache takes as it is relayed
//!   ([`Tee`]).
//! - `bodies`: a body read for no client waiting on its pieces (absorbed
//!   into a tee, read whole, discarded), and its backend connection back
//!   to the pool or closed.
//! - `prepare`: a response made ready to go: its head for the client, its
//!   body gathered whole when it fits, compressed, or cut to one range
//!   ([`Window`]).
//! - `send`: the head and body sent, gathered in one write or streamed as
//!   they come.
//! - `client_out`: the client's side of a streamed body, and what waits
//!   for it while the cache takes the response (`ClientOut`).
//! - here: [`relay`] and [`relay_part`], `intercept_errors`, and how a
//!   relay ended.

mod bodies;
mod client_out;
mod prepare;
mod send;
mod tee;

pub(super) use bodies::{absorb, discard, finish_bodiless, may_reuse, read_whole, Absorbed};
pub(super) use prepare::{push_connection_header, Window};
pub(super) use tee::Tee;

use super::origin::{hold_against, Failure, Fetched};
use super::{Client, Outcome, Refusal, Shared};
use crate::gzip::{Accepts, Coding};
use crate::http::conn::Taken;
use crate::http::{BodyKind, RequestHead, Version};
use crate::upstream::Upstream;
use bodies::reuse;
use prepare::{prepare_response, Gathered, Prepared};
use send::{send_gathered, send_streamed};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The longest pause of a backend in the middle of a body read whole
/// (`response_buffer_size`) before what came goes to the client and the
/// rest streams. A body sent in one go arrives with pauses of microseconds.
const GATHER_PATIENCE: Duration = Duration::from_millis(50);
/// Room for the chunk framing around a chunked body of up to
/// response_buffer_size (size lines, CRLFs, trailers) when it is read whole.
const CHUNK_FRAMING: u64 = 16 * 1024;

/// How the response goes to the client.
pub(super) struct Relay {
    pub request_is_head: bool,
    pub version: Version,
    pub keep_alive: bool,
    /// With the cache on, the `X-Cache` the response carries (`MISS`,
    /// `BYPASS`): it replaces any the backend sent, and the log shows it.
    pub x_cache: Option<&'static str>,
    /// The coding the client gets of those its pool's `gzip` and
    /// `brotli` make (see [`client_accepts`]).
    pub takes: Option<Coding>,
}

/// The codings the client takes over HTTP/1.1, as nginx's
/// `gzip_http_version` (a body whose compressed length is not known in
/// advance would end an HTTP/1.0 connection): read once per request
/// (`Client::accepts`), its pool's `gzip` and `brotli` asked apart.
pub(super) fn client_accepts(request: &RequestHead) -> Accepts {
    match request.version {
        Version::Http11 => Accepts::of(&request.headers),
        _ => Accepts::default(),
    }
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
            drop(fetched.slot);
            let coded = (prepared.compressed.as_ref().map(|(_, c)| &c[..]))
                .or(prepared.decoded.as_deref())
                .unwrap_or(&body);
            // Counted before it goes: a client that has it finds it counted.
            if let Some((coding, _)) = prepared.compressed {
                let counted = (&*shared.metrics, coding);
                client.count_compressed(counted, body.len() as u64, coded.len() as u64);
            }
            send_gathered(client, prepared.head, &body, coded, tee)
        }
        None => {
            let streamed = send_streamed(client, &mut fetched, prepared, tee, shared);
            fetched.release(streamed.is_ok());
            streamed.map(|(sent, reusable)| {
                if reusable {
                    reuse(client, target, fetched.up.conn);
                }
                drop(fetched.slot);
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
        decoded: None,
        encoder: None,
        decoder: None,
        window: Some(window),
    };
    client.note_sent_head(&[&prepared.head]);
    let streamed = send_streamed(client, &mut fetched, prepared, Some(tee), shared);
    fetched.release(streamed.is_ok());
    let sent = streamed.map(|(sent, reusable)| {
        if reusable {
            reuse(client, target, fetched.up.conn);
        }
        drop(fetched.slot);
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

/// A relay that failed midway, whether the client already has the
/// response head (then it can only be cut short, not answered 502), and
/// the body bytes it has.
struct Broken {
    failure: Failure,
    head_sent: bool,
    sent: u64,
}
