//! The head and body sent to the client: a body read whole in one write
//! with its head, or one streamed as it arrives (framed, compressed or
//! cut to its range), with the cache's copy taken on the way.

use super::client_out::{write_piece, ClientOut, ReadAhead};
use super::prepare::{Prepared, Window};
use super::{Broken, Tee, CHUNK_FRAMING, GATHER_PATIENCE};
use crate::access_log::Stage;
use crate::gunzip::{Decoder, GunzipError};
use crate::gzip::Encoder;
use crate::http::body::{last_chunk_with, LAST_CHUNK};
use crate::http::conn::write_all_vectored_counting;
use crate::http::conn::{ClientStream, Leaving, Pending, SharedStream, Stream, WatchingClose};
use crate::http::{BodyError, BodyKind, BodyReader, BufConn};
use crate::metrics::Metrics;
use crate::pace::Paced;
use crate::proxy::client::CLIENT_CHECK_AFTER;
use crate::proxy::origin::{Failure, Fetched, Malformed, Phase};
use crate::proxy::{Client, Shared};
use crate::sub_filter::Substitution;
use std::io::{IoSlice, Write};

/// Sends the head and a body read whole in one write, `coded` as the
/// client gets it (compressed, or `body` itself); returns the body bytes
/// sent. The tee takes `body`, as the backend sent it.
pub(super) fn send_gathered(
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
pub(super) fn send_streamed(
    client: &Client,
    fetched: &mut Fetched<'_>,
    prepared: Prepared,
    tee: Option<&mut Tee<'_>>,
    shared: &Shared,
) -> Result<(u64, bool), Broken> {
    let patience = shared.backend_timeout(client.route);
    let mut reader = BodyReader::new(prepared.kind);
    let substitution = fetched.substitution.take();
    let to: &ClientStream = client.conn.get_ref();
    let head = head_unless_body_begins(&mut fetched.up.conn, prepared.kind, prepared.head, to)?;
    // Trailer fields end a body that goes on as it came: not one
    // compressed, decoded, rewritten or cut to a range (a checksum would
    // no longer be its).
    let trailers = shared.pool_config(client.route).pass_trailers
        && prepared.encoder.is_none()
        && prepared.decoder.is_none()
        && substitution.is_none()
        && prepared.window.is_none();
    let (encoder, decoder) = (prepared.encoder, prepared.decoder);
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
                encoder: encoder.map(|e| (e, &*shared.metrics, client)),
                decoder,
                window: prepared.window,
                trailers,
            };
            let mut pieces = Pieces::new(&mut reader, substitution);
            let sent = copy_body(&mut pieces, conn, &out, head, framing, tee);
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

/// How a streamed body goes to the client.
struct Framing<'a> {
    /// In chunks (the client's length being unknown).
    chunked: bool,
    /// Compressed as it goes, counted once it all went (in the metrics
    /// and the client's log line).
    encoder: Option<(Encoder, &'a Metrics, &'a Client)>,
    /// Decoded as it goes (`gunzip`), a slice at a time.
    decoder: Option<Decoder>,
    /// Only this range of it goes (never compressed).
    window: Option<Window>,
    /// Its trailer fields go too (`pass_trailers`), when chunked.
    trailers: bool,
}

/// Streams a body from `from` to `out`, the head, unless already sent
/// (`None`), going out with the first piece. Returns the body bytes sent.
fn copy_body(
    pieces: &mut Pieces<'_>,
    from: &mut BufConn<WatchingClose<'_>>,
    out: &ClientOut<'_>,
    head: Option<Vec<u8>>,
    framing: Framing<'_>,
    mut tee: Option<&mut Tee<'_>>,
) -> Result<u64, Broken> {
    let Framing {
        chunked,
        mut encoder,
        mut decoder,
        mut window,
        trailers,
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
    // What went before a body that would not decode still goes.
    let bad_gzip = |e: GunzipError, sent: u64| {
        let _ = (&*out).flush();
        Broken {
            failure: Failure::Malformed(Malformed::Gzip(e)),
            head_sent: head_was_sent || out.delivered() > 0,
            sent: sent.saturating_sub(out.unsent()),
        }
    };
    loop {
        // Every chunk one read brought, as one piece: a backend's many
        // small chunks go on in one write, not one each (nothing is
        // waited for that has not come).
        let (piece, last) = match pieces.next(from) {
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
            if last {
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
        let written = match decoder.as_mut() {
            Some(decoder) => {
                decoder.feed(piece);
                let framing = (chunked, &mut size_line);
                match write_decoded(decoder, last, &mut to, &head, framing, &mut sent) {
                    Ok(result) => result,
                    Err(e) => return Err(bad_gzip(e, sent)),
                }
            }
            None => {
                let piece_out = match encoder.as_mut() {
                    Some((encoder, ..)) => encoder.push(piece),
                    None => piece,
                };
                let (_, result) =
                    write_piece(&mut to, &head, piece_out, chunked, b"", &mut size_line);
                result.map(|()| sent += piece_out.len() as u64)
            }
        };
        if written.is_err() {
            // The client is gone, but a response being stored is still
            // worth having whole (its waits do not watch the client
            // either): read on into the cache, then report the client.
            if let Some(copy) = tee.as_deref_mut().filter(|_| !pieces.is_done()) {
                read_on_into(copy, pieces, from);
            }
            return Err(client_gone(sent));
        }
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
    // A body until the close ends with no last piece: what the decoder
    // holds goes now, and a member cut short is found.
    if let Some(decoder) = decoder.as_mut() {
        let framing = (chunked, &mut size_line);
        match write_decoded(decoder, true, &mut to, &head, framing, &mut sent) {
            Ok(result) => result.map_err(|_| client_gone(sent))?,
            Err(e) => return Err(bad_gzip(e, sent)),
        }
    }
    let head = if decoder.is_some() { Vec::new() } else { head };
    let rest = match encoder {
        Some((encoder, metrics, client)) => {
            let coding = encoder.coding();
            let rest = encoder.finish();
            // Counted before the last bytes go: a client that has them
            // finds it counted.
            client.count_compressed((metrics, coding), taken, sent + rest.len() as u64);
            rest
        }
        None => Vec::new(),
    };
    let with_trailers;
    let last: &[u8] = match chunked {
        false => b"",
        true if trailers && !pieces.reader.trailers().is_empty() => {
            with_trailers = last_chunk_with(pieces.reader.trailers());
            &with_trailers
        }
        true => LAST_CHUNK,
    };
    if !head.is_empty() || !rest.is_empty() || !last.is_empty() {
        let (_, result) = write_piece(&mut to, &head, &rest, chunked, last, &mut size_line);
        result.map_err(|_| client_gone(sent))?;
        sent += rest.len() as u64;
    }
    to.flush().map_err(|_| client_gone(sent))?;
    Ok(sent)
}

/// Writes what `decoder` makes of what it was fed, a slice a write (in a
/// chunk each when `chunked`), `head` (unless empty) with the first;
/// `ended` once the body was all fed. Counts the body bytes written in
/// `sent`; returns the failed write, if one failed, inside the body's own
/// error, if it would not decode.
fn write_decoded(
    decoder: &mut Decoder,
    ended: bool,
    to: &mut &ClientOut<'_>,
    mut head: &[u8],
    (chunked, size_line): (bool, &mut Vec<u8>),
    sent: &mut u64,
) -> Result<std::io::Result<()>, GunzipError> {
    loop {
        let (slice, more) = decoder.drain(ended)?;
        if !head.is_empty() || !slice.is_empty() {
            let (_, result) = write_piece(to, head, slice, chunked, b"", size_line);
            if result.is_err() {
                return Ok(result);
            }
            *sent += slice.len() as u64;
            head = b"";
        }
        if !more {
            return Ok(Ok(()));
        }
    }
}

/// Reads the rest of a body into `copy` alone, its client gone: until it
/// ends (then stored), grows past what is stored, or fails.
fn read_on_into(
    copy: &mut Tee<'_>,
    pieces: &mut Pieces<'_>,
    from: &mut BufConn<WatchingClose<'_>>,
) {
    while !copy.overflowed {
        match pieces.next(from) {
            Ok(Some((piece, _))) => copy.push(piece),
            Ok(None) => return copy.finish(),
            Err(_) => return,
        }
        if pieces.is_done() {
            return copy.finish();
        }
    }
}

/// A body's pieces as the client gets them: as they come, or as
/// `sub_filter` makes them.
struct Pieces<'r> {
    reader: &'r mut BodyReader,
    substitution: Option<Substitution>,
    /// What `substitution` made last.
    made: Vec<u8>,
    /// It has more to give before the next read.
    more: bool,
    /// The body has all been read.
    ended: bool,
}

impl<'r> Pieces<'r> {
    fn new(reader: &'r mut BodyReader, substitution: Option<Substitution>) -> Pieces<'r> {
        Pieces {
            reader,
            substitution,
            made: Vec::new(),
            more: false,
            ended: false,
        }
    }

    /// The next piece (see [`BodyReader::next_joined`]), and whether it
    /// is the body's last; `None` at the end.
    fn next<'a>(
        &'a mut self,
        from: &'a mut BufConn<WatchingClose<'_>>,
    ) -> Result<Option<(&'a [u8], bool)>, BodyError> {
        let Some(substitution) = self.substitution.as_mut() else {
            let piece = self.reader.next_joined(from)?;
            return Ok(piece.map(|piece| (piece, self.reader.is_done())));
        };
        loop {
            if !self.more {
                if self.ended {
                    return Ok(None);
                }
                match self.reader.next_joined(from)? {
                    Some(piece) => substitution.feed(piece),
                    None => self.ended = true,
                }
                self.ended |= self.reader.is_done();
            }
            self.more = substitution.drain(&mut self.made, self.ended);
            if !self.made.is_empty() {
                let last = self.reader.is_done() && !self.more;
                return Ok(Some((&self.made, last)));
            }
        }
    }

    /// Whether the last piece was the body's last.
    fn is_done(&self) -> bool {
        self.reader.is_done() && !self.more
    }
}
