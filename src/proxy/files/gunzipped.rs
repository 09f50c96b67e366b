//! A file whose `.gz` copy alone is there (`precompressed`), decoded for
//! a client that takes no gzip (`gunzip`), as nginx's `gzip_static
//! always` with `gunzip on` serves a site built with its compressed
//! copies alone.
//!
//! The copy is read whole, at most [`MAX_CODED`] bytes of it, and goes
//! decoded with its length when that fits `response_buffer_size`, else
//! decoded as it goes out, in chunks. Its validators are the copy's, its
//! tag weak (the bytes sent are not the copy's), and its answers say
//! `Vary: Accept-Encoding`; a `Range` gets the whole, as from the cache.

use super::failed::unread_answer;
use super::fields::{take_kept, weaken_tag};
use super::pieces::{read_pieces, Piece};
use super::send::{send, Body, Opened};
use crate::files::{self, Files, Reply, Served};
use crate::gunzip::Decoder;
use crate::http::{BodyKind, Headers, RequestHead};
use crate::proxy::client::Client;
use crate::proxy::{answer_unread, Outcome, Shared};
use crate::throttle::OnceAMinute;
use std::time::SystemTime;

/// The largest copy decoded: it is read whole first. A larger one is
/// answered 500, the file named in a warning; keep the plain file beside
/// it.
const MAX_CODED: u64 = 16 * 1024 * 1024;

/// A copy that cannot be decoded is said at most once a minute: every
/// request for it fails alike.
pub(super) static UNDECODABLE: OnceAMinute = OnceAMinute::new();

/// Answers `head` with the `.gz` copy `served` decoded; `kept` are the
/// backend's fields for a file it named (`X-Accel-Redirect`).
pub(super) fn serve_gunzipped(
    client: &mut Client,
    (head, body_kind): (&RequestHead, BodyKind),
    files: &Files,
    served: Served,
    kept: Option<&Headers>,
    shared: &Shared,
) -> Outcome {
    // Its validators are the copy's, with no coding said: what is sent
    // is the file decoded.
    let served = Served {
        encoding: None,
        ..served
    };
    let cache_control = files.cache_control();
    let fresh = cache_control.as_deref().zip(files.max_age());
    let now = SystemTime::now();
    let (status, mut fields) = match files::reply(&served, &head.headers, false, fresh, now) {
        Reply::Body { fields, .. } => (200, fields),
        Reply::NotModified(fields) => (304, fields),
        Reply::PreconditionFailed => {
            return answer_unread(client, head, body_kind, 412, b"", shared)
        }
        // Neither is made without ranges.
        Reply::Parts { .. } | Reply::Unsatisfiable(_) => {
            return answer_unread(client, head, body_kind, 500, b"", shared)
        }
    };
    if let Some(kept) = kept {
        take_kept(&mut fields, kept, status);
    }
    weaken_tag(&mut fields);
    fields.remove("accept-ranges");
    let opened = Opened(&served.file, &served.path, files.dir());
    if status == 304 || head.is_head() {
        // A HEAD's answer leaves out the length only decoding would tell
        // (RFC 9110 §8.6).
        return send(
            client,
            head,
            body_kind,
            (status, fields, None),
            Body::None,
            shared,
        );
    }
    if served.len > MAX_CODED {
        if UNDECODABLE.due() {
            log::warn!(
                "{}: a .gz copy alone of more than {MAX_CODED} bytes is not decoded for a \
                 client without gzip (answered 500): keep the plain file beside it",
                opened.printable()
            );
        }
        return answer_unread(client, head, body_kind, 500, b"", shared);
    }
    let coded = match read_pieces(&served.file, &[Piece::File(0, served.len)]) {
        Ok(coded) => coded,
        Err(unread) => return unread_answer(client, head, body_kind, opened, unread, shared),
    };
    match Decoder::whole(&coded, client.response_buffer) {
        Ok(Some(decoded)) => {
            let length = Some(decoded.len() as u64);
            let body = Body::Bytes(&decoded);
            send(client, head, body_kind, (200, fields, length), body, shared)
        }
        Ok(None) => {
            let body = Body::Decoded(opened, &coded);
            send(client, head, body_kind, (200, fields, None), body, shared)
        }
        Err(e) => {
            if UNDECODABLE.due() {
                let path = opened.printable();
                log::warn!("{path}: does not decode for a client without gzip (answered 500): {e}");
            }
            answer_unread(client, head, body_kind, 500, b"", shared)
        }
    }
}
