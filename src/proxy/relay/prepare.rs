//! A response made ready to go: its head for the client (the operator's
//! fields, the cache's, gzip's, the connection's), and its body gathered
//! whole when it fits, compressed, or cut to one range.

use super::bodies::may_reuse;
use super::{Relay, CHUNK_FRAMING, GATHER_PATIENCE};
use crate::digits::push_field;
use crate::gunzip::{self, Decoder};
use crate::gzip::{self, Coding, Encoder};
use crate::http::body::{content_length, decode_complete_chunked, forbids_content_length};
use crate::http::conn::{SharedStream, Stream};
use crate::http::forward::strip_hop_by_hop;
use crate::http::{BodyKind, BufConn, Version};
use crate::proxy::cache_status::{self, Member};
use crate::proxy::origin::{Failure, Fetched, Malformed, Phase};
use crate::proxy::{Client, Shared};
use crate::upstream::sticky;
use std::io::Write;

/// A response ready to go: its head for the client, and how its body is
/// read and framed.
pub(super) struct Prepared {
    pub(super) head: Vec<u8>,
    pub(super) kind: BodyKind,
    pub(super) rechunk: bool,
    pub(super) keep_alive: bool,
    pub(super) upstream_reusable: bool,
    /// The whole body, read before the head goes out.
    pub(super) gathered: Option<Gathered>,
    /// That body compressed, as the client gets it, and its coding.
    pub(super) compressed: Option<(Coding, Vec<u8>)>,
    /// That body decoded (`gunzip`), as the client gets it.
    pub(super) decoded: Option<Vec<u8>>,
    /// For a body compressed as it streams.
    pub(super) encoder: Option<Encoder>,
    /// For a body decoded as it streams.
    pub(super) decoder: Option<Decoder>,
    /// For a client that gets one range of the body (see [`relay_part`](super::relay_part)).
    pub(super) window: Option<Window>,
}

/// The one range of a body a client gets as it streams: the first `skip`
/// bytes are left out, the next `take` go, and what comes after is left
/// out too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::proxy) struct Window {
    skip: u64,
    take: u64,
}

impl Window {
    /// Bytes `start..=end` of the body, `start <= end`.
    pub(in crate::proxy) fn of(start: u64, end: u64) -> Window {
        Window {
            skip: start,
            take: end.saturating_sub(start).saturating_add(1),
        }
    }

    /// What of `piece`, the body's next bytes, falls in the window.
    pub(super) fn cut<'p>(&mut self, piece: &'p [u8]) -> &'p [u8] {
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
pub(super) enum Gathered {
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
/// `gzip` or `brotli` a body of a type listed goes out compressed to a
/// client that takes it.
pub(super) fn prepare_response(
    fetched: &mut Fetched<'_>,
    how: &Relay,
    client: &Client,
    shared: &Shared,
) -> Result<Prepared, Failure> {
    let pool = shared.pool_config(client.route);
    let status = fetched.response.status;
    let (edits, passes_trailers) = (client.response_edits(pool, status), pool.pass_trailers);
    let gzip = shared.gzip(client.route);
    let cache_name = shared.config.cache_status.as_deref();
    let up = &mut fetched.up;
    let response = &mut fetched.response;
    up.conn.consume(fetched.head_len);
    let kind = BodyKind::for_response(how.request_is_head, response)?;
    let upstream_reusable = may_reuse(response, kind, up);
    let limit = client.response_buffer;
    // A body `sub_filter` rewrites is rewritten whole when it is read
    // whole and what it becomes fits the buffer too; else it streams, its
    // length unknown (what it becomes may be far larger than what came).
    let rewriting = fetched.substitution.as_ref();
    let substituting = rewriting.is_some();
    // `gunzip`: a gzip-coded body goes decoded to a client that takes no
    // gzip, whole when it was read whole and decodes within the buffer
    // too, else as it streams (what it decodes to may be far larger).
    // What the cache takes is the body as it came. A `HEAD`'s answer, or
    // a `304`, says the fields its `200` would. One this client gets as it
    // came says in `Vary` that others get it decoded.
    let decodable = pool.gunzip && gunzip::decodes(response.status, &response.headers);
    let decodes = decodable && client.lacks_gzip;
    let decoding = decodes && kind != BodyKind::Empty;
    let decode = |coded: &[u8]| match decoding {
        true => Decoder::whole(coded, limit).map_err(|e| Failure::Malformed(Malformed::Gzip(e))),
        false => Ok(None),
    };
    let mut decoded = None;
    let gathered = match kind {
        BodyKind::Empty => Some(Gathered::OnConnection(0)),
        BodyKind::Length(n) if n <= limit => match (gather(&mut up.conn, n as usize)?, rewriting) {
            (false, _) => None,
            (true, None) if decoding => {
                decoded = decode(&up.conn.buffered()[..n as usize])?;
                decoded
                    .is_some()
                    .then_some(Gathered::OnConnection(n as usize))
            }
            (true, None) => Some(Gathered::OnConnection(n as usize)),
            (true, Some(rewriting)) => (rewriting.whole(&up.conn.buffered()[..n as usize], limit))
                .map(|made| {
                    up.conn.consume(n as usize);
                    Gathered::Decoded(made)
                }),
        },
        BodyKind::Chunked => {
            // What has arrived already, without waiting: a page sent in
            // one go is all there, and an event stream is not held back.
            // No look past a body that has ended (its last chunk and
            // trailer section end in an empty line).
            while (up.conn.buffered().len() as u64) <= limit.saturating_add(CHUNK_FRAMING)
                && !up.conn.buffered().ends_with(b"\r\n\r\n")
                && matches!(up.conn.fill_now(), Ok(n) if n > 0)
            {}
            // A body whose trailer fields are passed on streams with
            // them, in chunks.
            let whole = decode_complete_chunked(up.conn.buffered(), limit)
                .filter(|whole| !passes_trailers || whole.trailers.is_empty());
            if let Some(whole) = &whole {
                decoded = decode(&whole.body)?;
            }
            whole
                .filter(|_| !decoding || decoded.is_some())
                .and_then(|whole| {
                    let body = match rewriting {
                        Some(rewriting) => rewriting.whole(&whole.body, limit)?,
                        None => whole.body,
                    };
                    up.conn.consume(whole.used);
                    Some(Gathered::Decoded(body))
                })
        }
        _ => None,
    };
    // Sent with the length it turned out to have.
    let kind = match (&gathered, &decoded) {
        (Some(_), Some(body)) | (Some(Gathered::Decoded(body)), None) => {
            BodyKind::Length(body.len() as u64)
        }
        _ => kind,
    };
    // Read whole, the backend's part is over: the target is free for the
    // next pick (and its time taken) before the proxy's own work on the
    // body (compressing it), and long before a slow client has it all.
    if gathered.is_some() {
        fetched.release(true);
    }
    let up = &mut fetched.up;
    let response = &mut fetched.response;

    // Responses to HEAD and 304s describe a body they do not carry: keep
    // the backend's Content-Length for them (never on a 204), if it is
    // one number; another value says nothing a client could use.
    let described_length = match kind {
        BodyKind::Empty
            if !forbids_content_length(response.status) && !substituting && !decodes =>
        {
            content_length(&response.headers).ok().flatten()
        }
        _ => None,
    };
    // The trailer fields a body passed on in chunks says will follow it
    // (RFC 9110 §6.6.2), a field of one hop otherwise.
    let trailer_names: Vec<&[u8]> = match (passes_trailers, kind) {
        (true, BodyKind::Chunked) => response.headers.get_all("trailer").collect(),
        _ => Vec::new(),
    };
    let mut announced = trailer_names.join(&b", "[..]);
    // Before any field is copied into a line of our own (a compressed
    // answer's weak ETag): what the backend named in `Connection` was for
    // that hop alone.
    strip_hop_by_hop(&mut response.headers, false);
    // A response gzip may compress says in `Vary` that it is compressed
    // for some clients, and is compressed for this one if it takes a
    // coding: whole when it was read whole, else as it streams, in chunks.
    let length = match kind {
        BodyKind::Length(n) => Some(n),
        BodyKind::Empty => described_length,
        _ => None,
    };
    let coding = gzip.filter(|g| g.suits(response.status, &response.headers, length));
    let compress = coding.zip(how.takes);
    let compressed = match (compress, &gathered, kind) {
        (Some((g, c)), Some(Gathered::OnConnection(n)), BodyKind::Length(_)) => {
            Some((c, g.compress(c, &up.conn.buffered()[..*n])))
        }
        (Some((g, c)), Some(Gathered::Decoded(body)), _) => Some((c, g.compress(c, body))),
        _ => None,
    };
    let streams_compressed = compress.is_some() && gathered.is_none();
    let streams_substituted = substituting && gathered.is_none();
    let streams_decoded = decoding && gathered.is_none();
    let mut coding_fields = Vec::with_capacity(if coding.is_some() || decodable {
        128
    } else {
        0
    });
    if decodes {
        gunzip::push_decoded_fields(&mut coding_fields, &response.headers);
        for name in gzip::REPLACED_FIELDS {
            response.headers.remove(name);
        }
    } else if let Some((_, takes)) = compress {
        gzip::push_compressed_fields(&mut coding_fields, &response.headers, takes);
        for name in gzip::REPLACED_FIELDS {
            response.headers.remove(name);
        }
    } else if coding.is_some()
        || decodable
        || response.status == 206 && gzip.is_some_and(|g| g.suits_the_whole_of(&response.headers))
        || response.status == 206 && pool.gunzip && gunzip::decodes(200, &response.headers)
    {
        gzip::push_vary(&mut coding_fields, &response.headers);
        response.headers.remove("vary");
    }

    // A body we cannot delimit for this client (HTTP/1.0 has no chunked)
    // is sent raw and ended by closing the connection (`how` already
    // closes one whose request body was cut short, see [`relay`]).
    let delimited_by_close = matches!(kind, BodyKind::Chunked | BodyKind::UntilClose)
        || streams_compressed
        || streams_substituted
        || streams_decoded;
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
    edits.push_set_lines(&mut head);
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
    // A client not yet stuck to this target is from now on; one stuck to
    // it is told its cookie's new dates when they are due.
    let set =
        (client.sticky.as_ref()).and_then(|s| Some((s, s.value_for(&fetched.target.sticky_id)?)));
    if let Some((sticky_cookie, value)) = set {
        head.extend_from_slice(
            sticky::set_cookie_line(&sticky_cookie.name, &value, &sticky_cookie.attributes)
                .as_bytes(),
        );
        if sticky_cookie.nocache && sticky::shared_caches_may_store(&response.headers, edits) {
            head.extend_from_slice(b"Cache-Control: private\r\n");
        }
    }
    if rechunk && compress.is_none() && !substituting && !decodes && !announced.is_empty() {
        head.extend_from_slice(b"Trailer: ");
        head.append(&mut announced);
        head.extend_from_slice(b"\r\n");
    }
    match (kind, &compressed) {
        (_, Some((_, body))) => push_field(&mut head, "Content-Length", body.len() as u64),
        _ if rechunk => head.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        (BodyKind::Length(n), None) if !streams_substituted && !streams_decoded => {
            push_field(&mut head, "Content-Length", n)
        }
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
        decoded,
        encoder: (compress.filter(|_| streams_compressed)).map(|(g, c)| g.encoder(c)),
        decoder: streams_decoded.then(Decoder::new),
        window: None,
    })
}

/// `Connection: close` when closing; HTTP/1.0 clients must be told when
/// the connection stays open.
pub(in crate::proxy) fn push_connection_header(
    head: &mut Vec<u8>,
    keep_alive: bool,
    version: Version,
) {
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
