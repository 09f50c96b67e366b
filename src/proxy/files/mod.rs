//! Answering a request from a `files` route's directory (see
//! [`crate::files`]): the head written here, the body sent by the kernel
//! from the file to the socket.
//!
//! # Layout
//! - `fields`: the fields of a file's answer that the backend's and
//!   `gzip` decide.
//! - `send`: an answer's head and body sent, and how that went (`Went`).
//! - `gunzipped`: a `.gz` copy alone decoded for a client that takes no
//!   gzip (`gunzip`).
//! - `pieces`: the pieces of a file's body: read whole for a small one,
//!   sent after the head (by `sendfile`, or through a buffer) for a
//!   larger one.
//! - `failed`: a file that could not be opened or read whole: its answer,
//!   and the warning that names it.
//! - `accel`: `X-Accel-Redirect`, a file a backend names served in its
//!   answer's place.
//! - here: what a `files` route answers ([`serve`]), a single body or
//!   several ranges of one.

mod accel;
mod failed;
mod fields;
mod gunzipped;
mod pieces;
mod send;

pub(super) use accel::{accel_kept, accel_redirect_of, accel_request, serve_accel};

use super::client::Client;
use super::origin::facts;
use super::{answer_unread, location_field, Outcome, Shared};
use crate::files::{self, Files, Found, Reply};
use crate::http::date::format_http_date;
use crate::http::range::{Multipart, Span};
use crate::http::{BodyKind, Headers, RequestHead};
use crate::routes::routing_path;
use crate::sub_filter;
use failed::{unopened_answer, unread_answer};
use fields::{compressible, mark_compressed, rewritable, take_kept};
use gunzipped::serve_gunzipped;
use pieces::{read_pieces, Piece};
use send::{send, Body, Opened};
use std::time::SystemTime;

/// Bodies up to this size are read and sent with their head in one
/// `writev`; larger ones go from the page cache to the socket by
/// `sendfile`, after the head.
const SENT_WITH_HEAD: u64 = 32 * 1024;

/// The most `sub_filter` may make of a file: one it would make larger is
/// answered 500 (a rule that makes a kilobyte of every byte).
const MAX_MADE: u64 = 16 * 1024 * 1024;

/// What a `files` route answers `head`, or `None` when the request goes
/// on to the route's pool (`fallback=`): it asks for a file that is not
/// there, or with another method than GET or HEAD.
pub(super) fn serve(
    client: &mut Client,
    head: &RequestHead,
    body_kind: BodyKind,
    (files, fallback): (&Files, bool),
    under: &str,
    kept: Option<&Headers>,
    shared: &Shared,
) -> Option<Outcome> {
    if !matches!(head.method.as_str(), "GET" | "HEAD") {
        if fallback {
            return None;
        }
        let allow = b"Allow: GET, HEAD\r\n";
        return Some(answer_unread(client, head, body_kind, 405, allow, shared));
    }
    let pool = shared.pool_config(client.route);
    let found = files.find(under, &head.headers, pool.gunzip);
    // A precompressed copy holds none of `sub_filter`'s strings as
    // written: a file of a type it rewrites is sent from the file itself
    // (compressed after, with `gzip`), when it is there.
    let found = match found {
        Found::File(served) if served.encoding.is_some() && served.varies => {
            let content_type = served.content_type.as_bytes();
            match !pool.sub_filter.is_empty() && pool.sub_filter_types.lists(content_type) {
                true => Found::File(files.file_of_copy(&served).unwrap_or(served)),
                false => Found::File(served),
            }
        }
        found => found,
    };
    // The route's own `limit_rate=`, for what it answers itself.
    if !(fallback && matches!(found, Found::Missing)) {
        client.pacing = files.pacing(client.pacing);
    }
    let served = match found {
        Found::File(served) => served,
        Found::GzipAlone(served) => {
            let request = (head, body_kind);
            return Some(serve_gunzipped(
                client, request, files, served, kept, shared,
            ));
        }
        Found::Missing if fallback => return None,
        Found::Missing => return Some(answer_unread(client, head, body_kind, 404, b"", shared)),
        // As nginx's: 403 for a file the proxy may not read, 500 for any
        // other failure to open one.
        Found::Forbidden(unopened) => {
            let answer = (403, unopened);
            return Some(unopened_answer(client, head, body_kind, answer, shared));
        }
        Found::Listing(listing, format) => {
            let target = head.path_and_query();
            let path = target.split('?').next().unwrap_or_default();
            let listed = listing.write(path, format).into_bytes();
            let mut fields = Headers::with_capacity(4, 120);
            fields.push("Date", format_http_date(SystemTime::now()));
            fields.push("Content-Type", format.content_type());
            // Compressed as any page of its type, as nginx's `gzip`
            // takes its `autoindex`'s output.
            let gzip = shared
                .gzip(client.route)
                .filter(|gzip| gzip.suits(200, &fields, Some(listed.len() as u64)));
            if gzip.is_some() {
                fields.push("Vary", "Accept-Encoding");
            }
            let (body, len) = match gzip.and_then(|g| g.taken_by(client.accepts)) {
                None => {
                    let len = listed.len() as u64;
                    (listed, Some(len))
                }
                Some((gzip, coding)) => {
                    fields.push("Content-Encoding", coding.name());
                    // A HEAD's answer leaves out the length that only
                    // compressing would tell (RFC 9110 §8.6).
                    match head.is_head() {
                        true => (Vec::new(), None),
                        false => {
                            let compressed = gzip.compress(coding, &listed);
                            let len = compressed.len() as u64;
                            let counted = (&*shared.metrics, coding);
                            client.count_compressed(counted, listed.len() as u64, len);
                            (compressed, Some(len))
                        }
                    }
                }
            };
            let body = Body::Bytes(&body).unless_head(head);
            return Some(send(
                client,
                head,
                body_kind,
                (200, fields, len),
                body,
                shared,
            ));
        }
        Found::Directory => {
            // The path as routes read it (`//` merged: `//evil.example`
            // would send the browser to another host), a `/` added, the
            // query kept.
            let target = head.path_and_query();
            let (path, query) = target.split_at(target.find('?').unwrap_or(target.len()));
            let location = location_field(format!("{}/{query}", routing_path(path)));
            return Some(answer_unread(
                client, head, body_kind, 301, &location, shared,
            ));
        }
        Found::Failed(unopened) => {
            let answer = (500, unopened);
            return Some(unopened_answer(client, head, body_kind, answer, shared));
        }
    };
    let cache_control = files.cache_control();
    // Whether gzip compresses the file's 200, decided on the fields that
    // 200 has (the backend's type and caching fields in place of the
    // file's), so that its 206 and 304 say the same of it.
    let gzip = shared
        .gzip(client.route)
        .filter(|&gzip| compressible(gzip, &served, kept, cache_control.as_deref()));
    // This client's coding: over HTTP/1.1, as for relayed answers (see
    // `relay::client_accepts`).
    let takes = gzip.and_then(|g| g.taken_by(client.accepts));
    // `sub_filter`, as nginx filters what it serves from disk: a file of
    // a type it rewrites is read whole, rewritten, and sent whole with
    // its new length (a range of the file is none of what is sent).
    let rewriting = rewritable(pool, &served, kept, cache_control.as_deref()).then(|| {
        let rendered = pool.sub_filter.for_request(&facts(head, client, shared));
        pool.sub_filter
            .substitution(&rendered, pool.sub_filter_once)
    });
    // A client that takes gzip may hold the compressed copy, whose date
    // is the file's: a part of the file, for its `If-Range` date, would
    // be spliced onto gzip bytes. It gets the whole, as the cache has it.
    let dated_if_range =
        takes.is_some() && (head.headers.get_str("if-range")).is_some_and(|c| !c.starts_with('"'));
    let ranged = head.method == "GET" && !dated_if_range && rewriting.is_none();
    let now = SystemTime::now();
    let fresh = cache_control.as_deref().zip(files.max_age());
    let reply = files::reply(&served, &head.headers, ranged, fresh, now);
    let (status, mut fields, body, spans) = match reply {
        Reply::Body {
            status,
            start,
            len,
            fields,
        } => (status, fields, Some((start, len)), None),
        Reply::Parts { spans, fields } => (206, fields, None, Some(spans)),
        Reply::NotModified(fields) => (304, fields, None, None),
        Reply::PreconditionFailed => {
            return Some(answer_unread(client, head, body_kind, 412, b"", shared))
        }
        Reply::Unsatisfiable(len) => {
            let field = format!("Content-Range: bytes */{len}\r\n");
            let outcome = answer_unread(client, head, body_kind, 416, field.as_bytes(), shared);
            return Some(outcome);
        }
    };
    if let Some(kept) = kept {
        take_kept(&mut fields, kept, status);
    }
    if gzip.is_some() && !served.varies {
        fields.push("Vary", "Accept-Encoding");
    }
    if rewriting.is_some() && matches!(status, 200 | 304) {
        sub_filter::edit_validators(&mut fields, pool.sub_filter_last_modified);
    }
    // Its 304 names the tag its 200 would: weak.
    let gzip = takes.filter(|_| matches!(status, 200 | 304));
    if let Some((_, coding)) = gzip {
        mark_compressed(&mut fields, status, coding);
    }
    let (file, path) = (served.file, served.path);
    if let Some(spans) = spans {
        let parts = (spans, served.len);
        return Some(send_parts(
            client,
            head,
            body_kind,
            fields,
            (Opened(&file, &path, files.dir()), parts),
            shared,
        ));
    }
    // What is made of the file, rewritten, compressed, or both.
    let made_of_it = gzip.is_some() || rewriting.is_some();
    let made = match body {
        Some((start, len)) if made_of_it && status == 200 && !head.is_head() => {
            let bytes = match read_pieces(&file, &[Piece::File(start, len)]) {
                Ok(bytes) => bytes,
                Err(unread) => {
                    let opened = Opened(&file, &path, files.dir());
                    return Some(unread_answer(
                        client, head, body_kind, opened, unread, shared,
                    ));
                }
            };
            let bytes = match &rewriting {
                None => bytes,
                Some(rewriting) => match rewriting.whole(&bytes, MAX_MADE) {
                    Some(made) => made,
                    None => {
                        log::warn!(
                            "{}: sub_filter makes more than {MAX_MADE} bytes of it; answered 500",
                            path.display()
                        );
                        return Some(answer_unread(client, head, body_kind, 500, b"", shared));
                    }
                },
            };
            match gzip {
                None => Some(bytes),
                Some((gzip, coding)) => {
                    let compressed = gzip.compress(coding, &bytes);
                    let (taken, sent) = (bytes.len() as u64, compressed.len() as u64);
                    client.count_compressed((&shared.metrics, coding), taken, sent);
                    Some(compressed)
                }
            }
        }
        _ => None,
    };
    let body = match &made {
        Some(made) => Some((0, made.len() as u64)),
        // A HEAD's: its length is not known without compressing or
        // rewriting it all, and a HEAD's answer may leave it out (RFC
        // 9110 §8.6).
        None if made_of_it && status == 200 => None,
        None => body,
    };
    // A HEAD's answer says the length its GET's would have, and sends none.
    let sent_body = body.filter(|_| !head.is_head());
    // A small body is read before anything is sent: a file that turns out
    // shorter than it said (cut since, or a kernel file whose size is a
    // guess) can still be answered with an error.
    let small = match (made, sent_body) {
        (_, None) => None,
        (Some(made), Some(_)) => Some(made),
        (None, Some((start, len))) if len <= SENT_WITH_HEAD => {
            match read_pieces(&file, &[Piece::File(start, len)]) {
                Ok(bytes) => Some(bytes),
                Err(unread) => {
                    let opened = Opened(&file, &path, files.dir());
                    return Some(unread_answer(
                        client, head, body_kind, opened, unread, shared,
                    ));
                }
            }
        }
        (None, Some(_)) => None,
    };
    let whole_part;
    let sent = match (&small, sent_body) {
        (Some(small), _) => Body::Bytes(small),
        (None, Some((start, len))) => {
            whole_part = [Piece::File(start, len)];
            Body::File(Opened(&file, &path, files.dir()), &whole_part)
        }
        (None, None) => Body::None,
    };
    let length = body.map(|(_, len)| len);
    Some(send(
        client,
        head,
        body_kind,
        (status, fields, length),
        sent,
        shared,
    ))
}

/// Sends the parts `spans` of a file of `len` bytes as one 206
/// `multipart/byteranges` (RFC 9110 §14.6), laid out as a cached answer's
/// are (see `range::Multipart`); a small one read and sent with its head
/// in one write, a larger one part by part from the file.
fn send_parts(
    client: &mut Client,
    head: &RequestHead,
    body_kind: BodyKind,
    mut fields: Headers,
    (opened, (spans, len)): (Opened<'_>, (Vec<Span>, u64)),
    shared: &Shared,
) -> Outcome {
    let content_type = fields.get("content-type").map(<[u8]>::to_vec);
    fields.remove("content-type");
    // Unique, and unguessable (a keyed hash of a counter): no file holds
    // it, by chance or by design.
    let boundary = crate::request_id::generate();
    let parts = Multipart::new(spans, len, content_type.as_deref(), boundary);
    fields.push("Content-Type", parts.content_type());
    let length = parts.content_length();
    let mut pieces = Vec::with_capacity(2 * parts.parts().count() + 1);
    for (frame, span) in parts.parts() {
        pieces.push(Piece::Bytes(frame));
        pieces.push(Piece::File(span.start, span.size()));
    }
    pieces.push(Piece::Bytes(parts.closing()));
    let small = match length <= SENT_WITH_HEAD {
        true => match read_pieces(opened.0, &pieces) {
            Ok(bytes) => Some(bytes),
            Err(unread) => return unread_answer(client, head, body_kind, opened, unread, shared),
        },
        false => None,
    };
    let body = match &small {
        Some(bytes) => Body::Bytes(bytes),
        None => Body::File(opened, &pieces),
    };
    send(
        client,
        head,
        body_kind,
        (206, fields, Some(length)),
        body,
        shared,
    )
}
