//! A file's answer sent: its head with the pool's and the proxy's
//! fields, then its body, and how that went for the log.

use super::failed::{say_truncated, unreadable_while_sent, UNREADABLE};
use super::pieces::{send_large, Piece};
use crate::access_log::{By, Stage, Termination};
use crate::gunzip::{self, WriteCut};
use crate::http::conn::{is_timeout, write_all_vectored_counting, ClientStream};
use crate::http::{BodyKind, Headers, RequestHead, ResponseHead, Version};
use crate::pace::Paced;
use crate::proxy::client::Client;
use crate::proxy::{keep_alive_field, Outcome, Shared};
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

/// What follows an answer's head.
pub(super) enum Body<'a> {
    /// Nothing: a HEAD's answer, a 304.
    None,
    /// Bytes at hand, sent with the head in one write.
    Bytes(&'a [u8]),
    /// Pieces of a file, and bytes between them, sent after the head.
    File(Opened<'a>, &'a [Piece<'a>]),
    /// A gzip-coded file's bytes, sent decoded as they are decoded (see
    /// `gunzipped`): in chunks, or to an HTTP/1.0 client until the close.
    Decoded(Opened<'a>, &'a [u8]),
}

/// A file served, and where it was opened, under what directory (for
/// the warnings that name it).
#[derive(Clone, Copy)]
pub(super) struct Opened<'a>(
    pub(super) &'a File,
    pub(super) &'a Path,
    pub(super) &'a Path,
);

impl Opened<'_> {
    /// Its whole path, for a warning: the name is on disk, not the
    /// request's, but may hold anything.
    pub(super) fn printable(&self) -> String {
        crate::config::printable(&self.2.join(self.1).to_string_lossy())
    }
}

/// How sending a piece of a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Went {
    /// All of it went out.
    Whole,
    /// The file ended before the piece did: it was cut shorter since it
    /// was opened.
    FileEnded,
    /// Reading the file failed (`EIO`): the error's number, for the
    /// warning.
    Unreadable(i32),
    /// The file stopped decoding (`gunzip`).
    Undecodable,
    /// The client is gone (closed, reset).
    ClientGone,
    /// The client took nothing within the send timeout.
    ClientSlow,
}

impl Went {
    /// How a write to the client ended.
    pub(super) fn of_write(result: &io::Result<()>) -> Went {
        match result {
            Ok(()) => Went::Whole,
            Err(e) => Went::of_client(e),
        }
    }

    /// What a failed write to the client says of it.
    pub(super) fn of_client(e: &io::Error) -> Went {
        match is_timeout(e) {
            true => Went::ClientSlow,
            false => Went::ClientGone,
        }
    }

    /// The log's `$termination` for a body that went so: as a relayed
    /// body's, the client's `CD` or `cD`; a file that failed the proxy
    /// midway, its `PD` (nothing else is to blame: the file is its own).
    pub(super) fn termination(self) -> Option<Termination> {
        let by = match self {
            Went::Whole => return None,
            Went::FileEnded | Went::Unreadable(_) | Went::Undecodable => By::Proxy,
            Went::ClientGone => By::Client,
            Went::ClientSlow => By::ClientTimeout,
        };
        Some(Termination::new(by, Stage::Data))
    }
}

impl Body<'_> {
    /// Nothing, for a HEAD.
    pub(super) fn unless_head(self, head: &RequestHead) -> Self {
        match head.is_head() {
            true => Body::None,
            false => self,
        }
    }
}

/// Sends the answer of `status` with `fields` and `length` (its
/// `Content-Length`, when it has one: a HEAD's too), the fields of the
/// route's pool and of the proxy added, and then `body` (a decoded one in
/// chunks, or until the close).
pub(super) fn send(
    client: &mut Client,
    head: &RequestHead,
    body_kind: BodyKind,
    (status, fields, length): (u16, Headers, Option<u64>),
    body: Body<'_>,
    shared: &Shared,
) -> Outcome {
    let decoded = matches!(body, Body::Decoded(..));
    let chunked = decoded && head.version == Version::Http11;
    let close = body_kind != BodyKind::Empty
        || !client.keeps_alive(head)
        || shared.shutting_down.load(Ordering::Relaxed)
        || (decoded && !chunked);
    let mut response = ResponseHead::new(status);
    response.headers = fields;
    let config = shared.pool_config(client.route);
    let edits = client.response_edits(config, status);
    edits.remove_from(&mut response.headers);
    // The operator's `Cache-Control` says how long, as a backend's does
    // (see `take_kept`): the route's `Expires` would say otherwise to the
    // caches that read only it.
    if edits.edits(b"cache-control") {
        response.headers.remove("expires");
    }
    if let Some(len) = length {
        response.headers.push("Content-Length", len.to_string());
    }
    if chunked {
        response.headers.push("Transfer-Encoding", "chunked");
    }
    if close {
        response.headers.push("Connection", "close");
    }
    let mut bytes = Vec::with_capacity(512);
    response.write_start(&mut bytes);
    bytes.extend_from_slice(keep_alive_field(head.version, close));
    client.push_own_fields(&mut bytes, status, None);
    edits.push_set_lines(&mut bytes);
    bytes.extend_from_slice(b"\r\n");
    client.note_sent_head(&[&bytes]);
    let stream: &ClientStream = client.conn.get_ref();
    let (sent, went) = match body {
        Body::Bytes(small) => {
            let mut parts = [IoSlice::new(&bytes), IoSlice::new(small)];
            let mut paced = Paced::new(stream, client.pacing);
            let (written, result) = write_all_vectored_counting(&mut paced, &mut parts);
            let sent = written.saturating_sub(bytes.len()) as u64;
            (sent, Went::of_write(&result))
        }
        Body::File(opened, pieces) => {
            let (sent, went) = send_large(stream, &bytes, (opened.0, pieces), client.pacing);
            match went {
                Went::FileEnded => say_truncated(opened, sent, length.unwrap_or(0)),
                Went::Unreadable(errno) if UNREADABLE.due() => {
                    let error = io::Error::from_raw_os_error(errno);
                    log::warn!("{}", unreadable_while_sent(opened, sent, length, &error));
                }
                _ => {}
            }
            (sent, went)
        }
        Body::Decoded(opened, coded) => {
            let mut paced = Paced::new(stream, client.pacing);
            let (written, result) = gunzip::write_decoded(&mut paced, &bytes, coded, chunked);
            let sent = written.saturating_sub(bytes.len()) as u64;
            let went = match result {
                Ok(()) => Went::Whole,
                Err(WriteCut::Client(e)) => Went::of_client(&e),
                Err(WriteCut::Corrupt(e)) => {
                    if super::gunzipped::UNDECODABLE.due() {
                        let path = opened.printable();
                        log::warn!("{path}: stopped decoding for a client without gzip: {e}");
                    }
                    Went::Undecodable
                }
            };
            (sent, went)
        }
        Body::None => (0, Went::of_write(&(&mut &*stream).write_all(&bytes))),
    };
    // A forced shutdown closes the client too: `KD`, not its leaving.
    match went.termination() {
        Some(_) if went == Went::ClientGone => _ = client.departure(Stage::Data),
        Some(how) => client.ended(how),
        None => {}
    }
    Outcome {
        keep_alive: !close && went == Went::Whole,
        ..Outcome::closing(status, sent)
    }
}
