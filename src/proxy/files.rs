//! Answering a request from a `files` route's directory (see
//! [`crate::files`]): the head written here, the body sent by the kernel
//! from the file to the socket.

use super::client::Client;
use super::{answer_unread, keep_alive_field, location_field, Outcome, Shared};
use crate::access_log::{By, Stage, Termination};
use crate::files::{self, Files, Found, Reply, Served, Unopened};
use crate::gzip::Gzip;
use crate::http::conn::{is_timeout, write_all_vectored_counting, ClientStream};
use crate::http::date::format_http_date;
use crate::http::range::{Multipart, Span};
use crate::http::{BodyKind, Headers, RequestHead, ResponseHead};
use crate::pace::{Paced, Pacing};
use crate::routes::routing_path;
use crate::throttle::OnceAMinute;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

/// Bodies up to this size are read and sent with their head in one
/// `writev`; larger ones go from the page cache to the socket by
/// `sendfile`, after the head.
const SENT_WITH_HEAD: u64 = 32 * 1024;

/// Largest file `gzip` compresses as it is sent (read whole, then
/// compressed): larger ones go as they are. Make a `.gz` copy for those,
/// with `precompressed`.
const MAX_GZIPPED: u64 = 1024 * 1024;

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
    let found = files.find(under, &head.headers);
    // The route's own `limit_rate=`, for what it answers itself.
    if !(fallback && matches!(found, Found::Missing)) {
        client.pacing = files.pacing(client.pacing);
    }
    let served = match found {
        Found::File(served) => served,
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
            let (body, len) = match gzip.filter(|_| client.takes_gzip) {
                None => {
                    let len = listed.len() as u64;
                    (listed, Some(len))
                }
                Some(gzip) => {
                    fields.push("Content-Encoding", "gzip");
                    // A HEAD's answer leaves out the length that only
                    // compressing would tell (RFC 9110 §8.6).
                    match head.is_head() {
                        true => (Vec::new(), None),
                        false => {
                            let compressed = gzip.compress(&listed);
                            let len = compressed.len() as u64;
                            (shared.metrics.gzip).count(listed.len() as u64, len);
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
    // `relay::client_takes_gzip`).
    let takes = gzip.filter(|_| client.takes_gzip);
    // A client that takes gzip may hold the compressed copy, whose date
    // is the file's: a part of the file, for its `If-Range` date, would
    // be spliced onto gzip bytes. It gets the whole, as the cache has it.
    let dated_if_range =
        takes.is_some() && (head.headers.get_str("if-range")).is_some_and(|c| !c.starts_with('"'));
    let ranged = head.method == "GET" && !dated_if_range;
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
    // Its 304 names the tag its 200 would: weak.
    let gzip = takes.filter(|_| matches!(status, 200 | 304));
    if gzip.is_some() {
        mark_compressed(&mut fields, status);
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
    let compressed = match (gzip, body) {
        (Some(gzip), Some((start, len))) if status == 200 && !head.is_head() => {
            match read_pieces(&file, &[Piece::File(start, len)]) {
                Ok(bytes) => {
                    let compressed = gzip.compress(&bytes);
                    (shared.metrics.gzip).count(len, compressed.len() as u64);
                    Some(compressed)
                }
                Err(unread) => {
                    let opened = Opened(&file, &path, files.dir());
                    return Some(unread_answer(
                        client, head, body_kind, opened, unread, shared,
                    ));
                }
            }
        }
        _ => None,
    };
    let body = match (&compressed, gzip) {
        (Some(compressed), _) => Some((0, compressed.len() as u64)),
        // A HEAD's: its length is not known without compressing it all,
        // and a HEAD's answer may leave it out (RFC 9110 §8.6).
        (None, Some(_)) if status == 200 => None,
        (None, _) => body,
    };
    // A HEAD's answer says the length its GET's would have, and sends none.
    let sent_body = body.filter(|_| !head.is_head());
    // A small body is read before anything is sent: a file that turns out
    // shorter than it said (cut since, or a kernel file whose size is a
    // guess) can still be answered with an error.
    let small = match (compressed, sent_body) {
        (_, None) => None,
        (Some(compressed), Some(_)) => Some(compressed),
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

/// What follows an answer's head.
enum Body<'a> {
    /// Nothing: a HEAD's answer, a 304.
    None,
    /// Bytes at hand, sent with the head in one write.
    Bytes(&'a [u8]),
    /// Pieces of a file, and bytes between them, sent after the head.
    File(Opened<'a>, &'a [Piece<'a>]),
}

/// A file served, and where it was opened, under what directory (for
/// the warnings that name it).
#[derive(Clone, Copy)]
struct Opened<'a>(&'a File, &'a Path, &'a Path);

impl Opened<'_> {
    /// Its whole path, for a warning: the name is on disk, not the
    /// request's, but may hold anything.
    fn printable(&self) -> String {
        crate::config::printable(&self.2.join(self.1).to_string_lossy())
    }
}

/// How sending a piece of a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Went {
    /// All of it went out.
    Whole,
    /// The file ended before the piece did: it was cut shorter since it
    /// was opened.
    FileEnded,
    /// Reading the file failed (`EIO`): the error's number, for the
    /// warning.
    Unreadable(i32),
    /// The client is gone (closed, reset).
    ClientGone,
    /// The client took nothing within the send timeout.
    ClientSlow,
}

impl Went {
    /// How a write to the client ended.
    fn of_write(result: &io::Result<()>) -> Went {
        match result {
            Ok(()) => Went::Whole,
            Err(e) => Went::of_client(e),
        }
    }

    /// What a failed write to the client says of it.
    fn of_client(e: &io::Error) -> Went {
        match is_timeout(e) {
            true => Went::ClientSlow,
            false => Went::ClientGone,
        }
    }

    /// The log's `$termination` for a body that went so: as a relayed
    /// body's, the client's `CD` or `cD`; a file that failed the proxy
    /// midway, its `PD` (nothing else is to blame: the file is its own).
    fn termination(self) -> Option<Termination> {
        let by = match self {
            Went::Whole => return None,
            Went::FileEnded | Went::Unreadable(_) => By::Proxy,
            Went::ClientGone => By::Client,
            Went::ClientSlow => By::ClientTimeout,
        };
        Some(Termination::new(by, Stage::Data))
    }
}

/// Why the pieces of a file could not be read whole before they were
/// sent.
#[derive(Debug)]
enum Unread {
    /// The file ended `read` bytes into what was to be read of it.
    Short {
        read: u64,
        wanted: u64,
    },
    Failed(io::Error),
}

/// A piece of a body sent from a file.
enum Piece<'a> {
    /// Bytes at hand: a multipart delimiter and its part's fields.
    Bytes(&'a [u8]),
    /// Bytes `start..start + len` of the file.
    File(u64, u64),
}

impl Piece<'_> {
    fn len(&self) -> u64 {
        match *self {
            Piece::Bytes(bytes) => bytes.len() as u64,
            Piece::File(_, len) => len,
        }
    }
}

impl Body<'_> {
    /// Nothing, for a HEAD.
    fn unless_head(self, head: &RequestHead) -> Self {
        match head.is_head() {
            true => Body::None,
            false => self,
        }
    }
}

/// Sends the answer of `status` with `fields` and `length` (its
/// `Content-Length`, when it has one: a HEAD's too), the fields of the
/// route's pool and of the proxy added, and then `body`.
fn send(
    client: &mut Client,
    head: &RequestHead,
    body_kind: BodyKind,
    (status, fields, length): (u16, Headers, Option<u64>),
    body: Body<'_>,
    shared: &Shared,
) -> Outcome {
    let close = body_kind != BodyKind::Empty
        || !client.keeps_alive(head)
        || shared.shutting_down.load(Ordering::Relaxed);
    let mut response = ResponseHead::new(status);
    response.headers = fields;
    let config = shared.pool_config(client.route);
    config.response_headers.remove_from(&mut response.headers);
    // The operator's `Cache-Control` says how long, as a backend's does
    // (see `take_kept`): the route's `Expires` would say otherwise to the
    // caches that read only it.
    if config.response_headers.edits(b"cache-control") {
        response.headers.remove("expires");
    }
    if let Some(len) = length {
        response.headers.push("Content-Length", len.to_string());
    }
    if close {
        response.headers.push("Connection", "close");
    }
    let mut bytes = Vec::with_capacity(512);
    response.write_start(&mut bytes);
    bytes.extend_from_slice(keep_alive_field(head.version, close));
    client.push_own_fields(&mut bytes, status, None);
    bytes.extend_from_slice(config.response_headers.set_lines());
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

/// A file that could not be read is said at most once a minute, before
/// its head went (answered 500) or after (the connection closed short):
/// a failing disk fails every request for what is on it.
static UNREADABLE: OnceAMinute = OnceAMinute::new();

/// The warning for the file `opened` that could not be read while it was
/// sent (`error`, after `sent` of the answer's `length` body bytes), as
/// nginx's error log tells its failed `sendfile()` or `pread()`: the
/// client is cut short, and the log's `PD` alone says not which file,
/// nor why.
fn unreadable_while_sent(
    opened: Opened<'_>,
    sent: u64,
    length: Option<u64>,
    error: &io::Error,
) -> String {
    let of = length.map_or(String::new(), |length| format!(" of {length}"));
    format!(
        "{}: reading the file failed while it was served ({sent}{of} body bytes sent): \
         {error}; the connection is closed",
        opened.printable()
    )
}

/// Says that the file `opened` ended before the answer's `length` bytes
/// of body were sent (nginx's "was truncated"): changed in place while
/// served (a deploy that rewrites files rather than renaming new ones
/// over them). The client is sent `sent` bytes, then the connection
/// closes; a client gone is no news and is not said.
fn say_truncated(opened: Opened<'_>, sent: u64, length: u64) {
    let now = size_now(opened.0);
    let path = opened.printable();
    log::warn!(
        "{path}: the file was truncated while it was served ({sent} of {length} body bytes sent{now}); \
         the connection is closed: rename new files into place rather than rewrite them"
    );
}

/// Answers 500 for a file whose pieces could not be read whole before
/// its answer's head went (`opened`, why in `unread`), and says so: a
/// file cut shorter since it was opened, as [`say_truncated`] does for
/// one found so while it was sent, or one that cannot be read. Logged
/// `PH`: the proxy would not send what it had of it, as it would not a
/// backend's broken answer.
fn unread_answer(
    client: &mut Client,
    head: &RequestHead,
    body_kind: BodyKind,
    opened: Opened<'_>,
    unread: Unread,
    shared: &Shared,
) -> Outcome {
    let printable = opened.printable();
    match unread {
        Unread::Short { read, wanted } => log::warn!(
            "{printable}: the file was truncated before it was served ({read} of {wanted} bytes \
             read{}); answered 500: rename new files into place rather than rewrite them",
            size_now(opened.0)
        ),
        Unread::Failed(e) => {
            if UNREADABLE.due() {
                log::warn!("{printable}: reading the file failed: {e}; answered 500");
            }
        }
    }
    client.ended(Termination::new(By::Proxy, Stage::Head));
    answer_unread(client, head, body_kind, 500, b"", shared)
}

/// Answers `status` for a file that could not be opened, and says so
/// with its path, as nginx's error log does: at most once a minute for
/// each cause (refused, the proxy's resources out, another failure),
/// since a scanner may ask for it at every request, and one cause must
/// not hide another. Logged as the proxy's failure before any head
/// (`PH`), as a file found short is; for descriptors or memory run out,
/// as its resource's (`RH`).
fn unopened_answer(
    client: &mut Client,
    head: &RequestHead,
    body_kind: BodyKind,
    (status, unopened): (u16, Unopened),
    shared: &Shared,
) -> Outcome {
    static REFUSED: OnceAMinute = OnceAMinute::new();
    static EXHAUSTED: OnceAMinute = OnceAMinute::new();
    static FAILING: OnceAMinute = OnceAMinute::new();
    let (said, by) = match (status, unopened.exhausted()) {
        (403, _) => (&REFUSED, By::Proxy),
        (_, true) => (&EXHAUSTED, By::Resource),
        (_, false) => (&FAILING, By::Proxy),
    };
    if said.due() {
        let path = crate::config::printable(&unopened.path.to_string_lossy());
        log::warn!(
            "{path}: opening the file failed: {}; answered {status}",
            unopened.error
        );
    }
    client.ended(Termination::new(by, Stage::Head));
    answer_unread(client, head, body_kind, status, b"", shared)
}

/// `, N bytes now`: the size of `file` as it is now, for a warning that
/// it was cut (nothing when it cannot be told).
fn size_now(file: &File) -> String {
    match file.metadata() {
        Ok(meta) => format!(", {} bytes now", meta.len()),
        Err(_) => String::new(),
    }
}

/// The backend's fields for the file it named (`X-Accel-Redirect`), in
/// place of the file's own of those names; merged before `gzip` is asked,
/// which reads its type and its `no-transform`. A 304 takes none that
/// describes the body (RFC 9110 §15.4.5; nginx clears its type too).
fn take_kept(fields: &mut Headers, kept: &Headers, status: u16) {
    let taken = |name: &str| {
        status != 304
            || !["content-type", "content-disposition"]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
    };
    if kept.contains("content-type") && taken("content-type") {
        fields.remove("content-type");
    }
    // Either says how long it may be kept: the file's `max_age` would
    // otherwise outweigh a backend's `Expires` (RFC 9111 §5.3).
    if kept.contains("cache-control") || kept.contains("expires") {
        fields.remove("cache-control");
        fields.remove("expires");
    }
    for (name, value) in kept.iter().filter(|(name, _)| taken(name)) {
        fields.push(name, value);
    }
}

/// Whether `gzip` compresses the file `served` (with the backend's `kept`
/// fields, and the route's `cache_control`) for the clients that take
/// it: a type it lists, a length it takes and no more than
/// [`MAX_GZIPPED`], no coding of its own, no `no-transform`, as nginx's
/// `gzip on` does for what it serves from disk. Every answer for such a
/// file varies on `Accept-Encoding`.
fn compressible(
    gzip: &Gzip,
    served: &Served,
    kept: Option<&Headers>,
    cache_control: Option<&str>,
) -> bool {
    let mut described = Headers::new();
    let content_type = kept.and_then(|kept| kept.get("content-type"));
    let content_type = content_type.unwrap_or(served.content_type.as_bytes());
    described.push("Content-Type", content_type);
    // As `take_kept` has them: the backend's in place of the file's.
    match kept.filter(|kept| kept.contains("cache-control") || kept.contains("expires")) {
        Some(kept) => {
            for value in kept.get_all("cache-control") {
                described.push("Cache-Control", value);
            }
        }
        None => {
            if let Some(value) = cache_control {
                described.push("Cache-Control", value);
            }
        }
    }
    served.encoding.is_none()
        && served.len <= MAX_GZIPPED
        && gzip.suits(200, &described, Some(served.len))
}

/// The fields of an answer compressed for its client: its tag weak (a
/// 304's too, naming what its 200 would); a 200's coding said, and no
/// ranges offered of what is not the file's bytes.
fn mark_compressed(fields: &mut Headers, status: u16) {
    let etag = fields.get("etag").map(|tag| [b"W/", tag].concat());
    fields.remove("etag");
    if let Some(etag) = etag {
        fields.push("ETag", etag);
    }
    if status == 200 {
        fields.remove("accept-ranges");
        fields.push("Content-Encoding", "gzip");
    }
}

/// The pieces' bytes, the file's read whole, or why they could not be
/// (a file cut shorter since it was opened, a read error).
fn read_pieces(file: &File, pieces: &[Piece]) -> Result<Vec<u8>, Unread> {
    let too_large = || Unread::Failed(io::ErrorKind::OutOfMemory.into());
    let total = pieces.iter().map(Piece::len).sum::<u64>();
    let mut body = Vec::with_capacity(usize::try_from(total).map_err(|_| too_large())?);
    for piece in pieces {
        match *piece {
            Piece::Bytes(bytes) => body.extend_from_slice(bytes),
            Piece::File(start, len) => {
                let at = body.len();
                body.resize(at + usize::try_from(len).map_err(|_| too_large())?, 0);
                let mut read = 0;
                while read < body.len() - at {
                    match file.read_at(&mut body[at + read..], start + read as u64) {
                        Ok(0) => {
                            return Err(Unread::Short {
                                read: read as u64,
                                wanted: len,
                            })
                        }
                        Ok(n) => read += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(Unread::Failed(e)),
                    }
                }
            }
        }
    }
    Ok(body)
}

/// Sends `head`, then the pieces of the file: from the page cache with
/// `sendfile` where it can (`io::copy` does not use it from a file to a
/// socket), through a buffer where it cannot. Returns the body bytes that
/// went out, and how the sending ended: short of the whole (a client
/// gone, or a file cut shorter since it was opened), the connection must
/// close, or the client would wait for the rest.
fn send_large(
    stream: &ClientStream,
    head: &[u8],
    (file, pieces): (&File, &[Piece]),
    pacing: Pacing,
) -> (u64, Went) {
    match stream {
        ClientStream::Tcp(tcp) if pacing.is_off() => sendfile_pieces(tcp, head, file, pieces),
        // The kernel does not encrypt, nor send at a pace: over TLS, or
        // under `limit_rate`, the file goes through a buffer.
        _ => {
            let mut out = Paced::new(stream, pacing);
            if let Err(e) = out.write_all(head) {
                return (0, Went::of_client(&e));
            }
            copy_pieces(&mut out, file, pieces)
        }
    }
}

/// Sends `head` and the pieces to a plain TCP client, the file's with
/// `sendfile`; returns the body bytes that went out, and how it ended.
fn sendfile_pieces(tcp: &TcpStream, head: &[u8], file: &File, pieces: &[Piece]) -> (u64, Went) {
    if let (_, went @ (Went::ClientGone | Went::ClientSlow)) = send_more(tcp, head) {
        return (0, went);
    }
    let mut sent = 0;
    for (i, piece) in pieces.iter().enumerate() {
        let (went, whole) = match *piece {
            // The last piece is the closing delimiter: nothing follows it
            // to take it along.
            Piece::Bytes(bytes) if i + 1 == pieces.len() => {
                let (went, result) =
                    write_all_vectored_counting(&mut &*tcp, &mut [IoSlice::new(bytes)]);
                (went as u64, Went::of_write(&result))
            }
            Piece::Bytes(bytes) => {
                let (went, whole) = send_more(tcp, bytes);
                (went as u64, whole)
            }
            Piece::File(start, len) => sendfile_part(tcp, file, start, len),
        };
        sent += went;
        if whole != Went::Whole {
            return (sent, whole);
        }
    }
    (sent, Went::Whole)
}

/// Sends bytes `start..start + len` of the file with `sendfile`; returns
/// how many went out, and how it ended.
fn sendfile_part(tcp: &TcpStream, file: &File, start: u64, len: u64) -> (u64, Went) {
    let (Ok(first), Some(end)) = (libc::off_t::try_from(start), start.checked_add(len)) else {
        return (0, Went::Unreadable(libc::EOVERFLOW));
    };
    let mut offset = first;
    let ended;
    loop {
        let done = u64::try_from(offset).unwrap_or(end);
        if done >= end {
            ended = Went::Whole;
            break;
        }
        // At most 1 GiB a call: Linux sends no more than about 2 GiB at once.
        let count = (end - done).min(1 << 30) as usize;
        // SAFETY: both descriptors are open for the call (borrowed from
        // `tcp` and `file`), and `offset` is a valid `off_t` that the
        // kernel advances by what it sent.
        let n = unsafe { libc::sendfile(tcp.as_raw_fd(), file.as_raw_fd(), &mut offset, count) };
        match n {
            // The file ended before its length: cut since it was opened.
            0 => {
                ended = Went::FileEnded;
                break;
            }
            n if n > 0 => {}
            _ => match io::Error::last_os_error().raw_os_error() {
                // A signal: again.
                Some(libc::EINTR) => {}
                // A file system `sendfile` cannot read from: copied.
                Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) if offset == first => {
                    return copy_part(tcp, file, (start, len), &mut copy_buffer());
                }
                // The send timeout (`EAGAIN` on a socket with
                // `SO_SNDTIMEO`), a file that cannot be read, a client
                // gone: the end.
                error => {
                    ended = match error {
                        Some(libc::EAGAIN) => Went::ClientSlow,
                        Some(libc::EIO) => Went::Unreadable(libc::EIO),
                        _ => Went::ClientGone,
                    };
                    break;
                }
            },
        }
    }
    let sent = u64::try_from(offset).map_or(0, |at| at.saturating_sub(start));
    (sent, ended)
}

/// Writes the pieces through a buffer, where `sendfile` cannot take
/// them (over TLS, or at a rate); returns the bytes that went out, and
/// how it ended.
fn copy_pieces(mut out: impl Write, file: &File, pieces: &[Piece]) -> (u64, Went) {
    let mut buffer = copy_buffer();
    let mut sent = 0;
    for piece in pieces {
        let (went, whole) = match *piece {
            Piece::Bytes(bytes) => {
                let (went, result) =
                    write_all_vectored_counting(&mut out, &mut [IoSlice::new(bytes)]);
                (went as u64, Went::of_write(&result))
            }
            Piece::File(start, len) => copy_part(&mut out, file, (start, len), &mut buffer),
        };
        sent += went;
        if whole != Went::Whole {
            return (sent, whole);
        }
    }
    (sent, Went::Whole)
}

fn copy_buffer() -> Vec<u8> {
    vec![0; 64 * 1024]
}

/// Bytes `start..start + len` of the file written through `buffer`;
/// returns how many went out, and how it ended.
fn copy_part(
    mut stream: impl Write,
    file: &File,
    (start, len): (u64, u64),
    buffer: &mut [u8],
) -> (u64, Went) {
    let mut sent = 0;
    while sent < len {
        let want = (len - sent).min(buffer.len() as u64) as usize;
        let read = match file.read_at(&mut buffer[..want], start + sent) {
            Ok(0) => return (sent, Went::FileEnded),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A read error (EIO) ends the answer short: told by the
            // log's `PD`.
            Err(e) => {
                return (
                    sent,
                    Went::Unreadable(e.raw_os_error().unwrap_or(libc::EIO)),
                )
            }
        };
        // Counted as they go: a download cut short logs what reached the
        // socket, not the buffers written whole.
        let (written, result) =
            write_all_vectored_counting(&mut stream, &mut [IoSlice::new(&buffer[..read])]);
        sent += written as u64;
        if let Err(e) = result {
            return (sent, Went::of_client(&e));
        }
    }
    (sent, Went::Whole)
}

/// Writes `bytes`, telling the kernel more follows (`MSG_MORE`): the head
/// goes out in one packet with the start of the body, as nginx's
/// `tcp_nopush` has it, not in one of its own. Returns how many went out,
/// all of them unless the client is gone or too slow, and which.
fn send_more(stream: &TcpStream, bytes: &[u8]) -> (usize, Went) {
    let mut sent = 0;
    while sent < bytes.len() {
        let rest = &bytes[sent..];
        // SAFETY: the descriptor is open (borrowed from `stream`), and the
        // pointer and length are those of a live slice.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_MORE | libc::MSG_NOSIGNAL,
            )
        };
        match usize::try_from(n) {
            Ok(0) => return (sent, Went::ClientGone),
            Ok(n) => sent += n,
            Err(_) => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted => {}
                e => return (sent, Went::of_client(&e)),
            },
        }
    }
    (sent, Went::Whole)
}

/// The fields of a request a file named by `X-Accel-Redirect` is served
/// for: the host (for routing), how the connection goes on, the
/// conditions and ranges (a download resumed), the codings taken.
const ACCEL_FIELDS: [&str; 8] = [
    "connection",
    "range",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "accept-encoding",
];

/// The backend's fields that go with the file it names, as nginx passes
/// them on: its type and name for the download, and how long it may be
/// kept.
const ACCEL_KEPT: [&str; 5] = [
    "Content-Type",
    "Content-Disposition",
    "Cache-Control",
    "Expires",
    "Set-Cookie",
];

/// What of `head` a file its backend names in `X-Accel-Redirect` is
/// served for: a GET (a HEAD stays one, as nginx has it) with the
/// fields [`ACCEL_FIELDS`] names, its target set once the backend names
/// it.
pub(super) fn accel_request(head: &RequestHead) -> RequestHead {
    let mut headers = Headers::new();
    // The host the request was routed by: an absolute-form target's
    // (which a `Host` field may contradict), else its `Host`.
    if let Some(authority) = head.authority() {
        headers.push("host", authority);
    }
    for name in ACCEL_FIELDS {
        for value in head.headers.get_all(name) {
            headers.push(name, value);
        }
    }
    RequestHead {
        method: if head.is_head() { "HEAD" } else { "GET" }.to_string(),
        target: String::new(),
        version: head.version,
        headers,
    }
}

/// The path a backend's `X-Accel-Redirect` names (nginx's internal
/// redirect, which Django, Rails' `send_file` and PHP applications use
/// to have the proxy send a file they checked the client may have),
/// when the request may be answered so; as sent, which may not be text.
pub(super) fn accel_redirect_of<'r>(
    response: &'r ResponseHead,
    client: &Client,
) -> Option<&'r [u8]> {
    client.accel.as_ref()?;
    response
        .headers
        .get("x-accel-redirect")
        .map(<[u8]>::trim_ascii)
}

/// The backend's fields of [`ACCEL_KEPT`], for the file it names.
pub(super) fn accel_kept(response: &ResponseHead) -> Headers {
    let mut kept = Headers::new();
    for name in ACCEL_KEPT {
        for value in response.headers.get_all(name) {
            kept.push(name, value);
        }
    }
    kept
}

/// Answers with the file `to` (a backend's `X-Accel-Redirect`) names
/// under an `internal` `files` route, with the backend's fields `kept`
/// (see [`accel_kept`]), `keep_alive` false when the connection must
/// close whatever the client wants. A path no such route serves is the
/// backend's error: 502.
pub(super) fn serve_accel(
    client: &mut Client,
    to: &[u8],
    kept: &Headers,
    keep_alive: bool,
    shared: &Shared,
) -> Outcome {
    let Some(mut head) = client.accel.take() else {
        return Outcome::closing(502, 0);
    };
    if !keep_alive {
        head.headers.set("connection", "close");
    }
    // Not text: a path no route serves (below).
    let text = std::str::from_utf8(to).is_ok();
    let to = String::from_utf8_lossy(to);
    let path = to.split('?').next().unwrap_or_default();
    head.target = path.to_string();
    let routes = &shared.config.routes;
    let route = match routes.route(head.authority(), path) {
        Ok(Some(i)) if path.starts_with('/') && text => routes.get(i),
        _ => None,
    };
    let route = route.filter(|r| r.is_internal());
    let Some((route, files)) = route.and_then(|r| Some((r, r.files()?))) else {
        static UNSERVED: OnceAMinute = OnceAMinute::new();
        if UNSERVED.due() {
            log::warn!(
                "X-Accel-Redirect: {}: no internal files route serves it; answered 502",
                to.escape_debug()
            );
        }
        return answer_unread(client, &head, BodyKind::Empty, 502, b"", shared);
    };
    let under = route.path_under(path);
    // An internal route has no pool to fall back to (see `Route::internal`).
    let outcome = serve(
        client,
        &head,
        BodyKind::Empty,
        files,
        &under,
        Some(kept),
        shared,
    );
    outcome.unwrap_or_else(|| Outcome::closing(502, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    /// A file of ten bytes, `0123456789`, in a directory removed when
    /// the first is dropped.
    fn ten_bytes() -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ten");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        (dir, file)
    }

    /// A client that is gone: every write fails.
    struct Gone;

    impl Write for Gone {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_copied_file_that_ends_early_is_told_apart_from_a_client_gone() {
        let (_dir, file) = ten_bytes();
        let mut buffer = [0; 4];
        let mut out = Vec::new();
        assert_eq!(
            copy_part(&mut out, &file, (2, 5), &mut buffer),
            (5, Went::Whole)
        );
        assert_eq!(out, b"23456");
        // Said to be twenty bytes long when opened: it ends at ten.
        let mut out = Vec::new();
        assert_eq!(
            copy_part(&mut out, &file, (0, 20), &mut buffer),
            (10, Went::FileEnded)
        );
        assert_eq!(out, b"0123456789");
        assert_eq!(
            copy_part(Gone, &file, (0, 10), &mut buffer),
            (0, Went::ClientGone)
        );
        // Pieces stop at the first that ends early, and say how.
        let pieces = [Piece::Bytes(b"<"), Piece::File(8, 5), Piece::Bytes(b">")];
        let mut out = Vec::new();
        assert_eq!(copy_pieces(&mut out, &file, &pieces), (3, Went::FileEnded));
        assert_eq!(out, b"<89");
    }

    #[test]
    fn a_file_sent_by_sendfile_that_ends_early_is_told_apart_from_a_client_gone() {
        let (_dir, file) = ten_bytes();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        assert_eq!(sendfile_part(&tcp, &file, 0, 10), (10, Went::Whole));
        assert_eq!(sendfile_part(&tcp, &file, 4, 16), (6, Went::FileEnded));
        let mut received = [0; 16];
        peer.read_exact(&mut received).unwrap();
        assert_eq!(&received, b"0123456789456789");
        let pieces = [Piece::File(0, 3), Piece::File(9, 2), Piece::Bytes(b"!")];
        assert_eq!(
            sendfile_pieces(&tcp, b"head ", &file, &pieces),
            (4, Went::FileEnded)
        );
        let mut received = [0; 9];
        peer.read_exact(&mut received).unwrap();
        assert_eq!(&received, b"head 0129");
        // Our side shut for writing: what a client gone gives, EPIPE.
        tcp.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(sendfile_part(&tcp, &file, 0, 10), (0, Went::ClientGone));
    }

    #[test]
    fn a_file_that_cannot_be_read_is_told_apart_from_a_client_gone_or_slow() {
        // A directory opened as a file: every read of it fails (`EISDIR`),
        // as a file on a failing disk's does (`EIO`).
        let dir = tempfile::tempdir().unwrap();
        let unreadable = File::open(dir.path()).unwrap();
        let mut buffer = [0; 4];
        assert_eq!(
            copy_part(Vec::new(), &unreadable, (0, 10), &mut buffer),
            (0, Went::Unreadable(libc::EISDIR))
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _peer = listener.accept().unwrap();
        assert_eq!(
            sendfile_part(&tcp, &unreadable, 0, 10),
            (0, Went::Unreadable(libc::EISDIR))
        );
        assert!(matches!(
            read_pieces(&unreadable, &[Piece::File(0, 10)]),
            Err(Unread::Failed(_))
        ));
        // A client that takes nothing within the send timeout is slow,
        // not gone.
        struct Slow;
        impl Write for Slow {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::WouldBlock.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (_dir, file) = ten_bytes();
        assert_eq!(
            copy_part(Slow, &file, (0, 10), &mut buffer),
            (0, Went::ClientSlow)
        );
        assert_eq!(
            Went::ClientSlow
                .termination()
                .map(|t| t.as_str().to_owned()),
            Some("cD".to_owned())
        );
        assert_eq!(
            Went::Unreadable(libc::EIO).termination().unwrap().as_str(),
            "PD"
        );
        assert_eq!(Went::FileEnded.termination().unwrap().as_str(), "PD");
        assert_eq!(Went::Whole.termination(), None);
    }

    /// A read that fails while a large file streams is said with the
    /// file's path and the error, not only logged `PD`.
    #[test]
    fn a_file_unreadable_while_it_is_sent_is_said_with_its_path_and_error() {
        let dir = tempfile::tempdir().unwrap();
        let unreadable = File::open(dir.path()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _peer = listener.accept().unwrap();
        let pieces = [Piece::Bytes(b"--part\r\n"), Piece::File(0, 10)];
        let (sent, went) = sendfile_pieces(&tcp, b"head", &unreadable, &pieces);
        assert_eq!((sent, went), (8, Went::Unreadable(libc::EISDIR)));
        let opened = Opened(&unreadable, Path::new("big.bin"), dir.path());
        let error = io::Error::from_raw_os_error(libc::EISDIR);
        let said = unreadable_while_sent(opened, sent, Some(18), &error);
        let path = dir.path().join("big.bin");
        assert!(
            said.starts_with(&format!("{}: reading the file failed", path.display()))
                && said.contains("(8 of 18 body bytes sent)")
                && said.contains(&error.to_string()),
            "{said}"
        );
    }

    #[test]
    fn pieces_read_short_say_how_much_of_them_was_there() {
        let (_dir, file) = ten_bytes();
        assert_eq!(
            read_pieces(&file, &[Piece::Bytes(b"<"), Piece::File(8, 2)]).unwrap(),
            b"<89"
        );
        assert!(matches!(
            read_pieces(&file, &[Piece::File(6, 8)]),
            Err(Unread::Short { read: 4, wanted: 8 })
        ));
    }
}
