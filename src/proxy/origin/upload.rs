//! Sending the request body, watching for the backend to answer before
//! it has all of it: then the rest stays unsent and the answer is relayed.

use super::{Failure, Phase, MAX_RESPONSE_HEAD};
use crate::http::body::{chunk_size_line, last_chunk_with, LAST_CHUNK};
use crate::http::conn::{write_all_unless_answered, SharedStream, Source, Stream};
use crate::http::head::find_head_end;
use crate::http::{BodyReader, BufConn};
use crate::proxy::client_body_status;
use crate::spool::Spooled;
use crate::throttle::OnceAMinute;
use std::io::{self, IoSlice, Write};

/// The most of a body read back from disk at a time.
const SPOOLED_PIECE: usize = 64 * 1024;

/// Sends a request with its whole body; returns whether all of the body
/// went (see [`send_unless_answered`]).
pub(super) fn send_buffered(
    up: &mut BufConn<SharedStream<Stream>>,
    request: &[u8],
    body: &[u8],
) -> Result<bool, Failure> {
    send_unless_answered(up, &mut [IoSlice::new(request), IoSlice::new(body)])
}

/// Sends a request with its body read back from disk (see
/// [`crate::spool`]) a piece at a time, the head with the first; returns
/// whether all of the body went (see [`send_unless_answered`]). A body
/// that cannot be read back is the proxy's failure: 500.
pub(super) fn send_spooled(
    up: &mut BufConn<SharedStream<Stream>>,
    request: &[u8],
    body: &Spooled,
) -> Result<bool, Failure> {
    let mut piece = vec![0; SPOOLED_PIECE.min(usize::try_from(body.len()).unwrap_or(usize::MAX))];
    let mut head = request;
    let mut sent = 0;
    loop {
        let read = body.read_at(&mut piece, sent).map_err(|e| {
            static UNREADABLE: OnceAMinute = OnceAMinute::new();
            if UNREADABLE.due() {
                log::error!(
                    "cannot read a request body back from request_buffer_dir: {e}; answering \
                     500 (said at most once a minute)"
                );
            }
            Failure::Client(Some(500))
        })?;
        if !send_unless_answered(up, &mut [IoSlice::new(head), IoSlice::new(read)])? {
            return Ok(false);
        }
        head = &[];
        sent += read.len() as u64;
        if sent >= body.len() {
            return Ok(true);
        }
    }
}

/// Writes `bufs` to the backend whole, unless it answers first (see
/// [`answered_early`]): whenever the socket takes no more, the wait for it
/// also watches for the backend's answer. `Ok(false)`: it answered, and
/// not all went. A backend that answered a large body's head with a 413
/// and stopped reading would otherwise leave the write waiting for its
/// timeout, or for the backend to close.
fn send_unless_answered(
    up: &mut BufConn<SharedStream<Stream>>,
    bufs: &mut [IoSlice<'_>],
) -> Result<bool, Failure> {
    let stream = up.get_ref().0.clone();
    match write_all_unless_answered(&stream, bufs, || answered_early(up)) {
        Ok(all) => Ok(all),
        Err(e) => answered_or(up, e),
    }
}

/// After a failed write of the request body: `Ok(false)` (not all of it
/// went) if the backend answered early, which is what the failure was,
/// else the failure.
fn answered_or(up: &mut BufConn<SharedStream<Stream>>, e: io::Error) -> Result<bool, Failure> {
    if answered_early(up) {
        Ok(false)
    } else {
        Err(Failure::io(Phase::Sending, e))
    }
}

/// Copies a request body from the client to the backend, re-framed: the
/// backend sees exactly the framing we announced, whatever the client sent.
/// What each read from the client brings goes on in one write (one chunk),
/// however many chunks it held (see [`BodyReader::next_joined`]): a body
/// sent a byte per chunk would otherwise cost a write, and most likely a
/// packet, per byte.
///
/// With `trailers`, the trailer fields the client sent after a chunked
/// body go after it (`pass_trailers`), but for those of a name in the
/// request's `head` (see [`trailers_not_in`]).
///
/// Returns whether the whole body went. A backend may answer before it has
/// read the body (a 413, a 401), and then stop reading or close (RFC 9112
/// §9.5: a client sending a body should watch for that). Before each piece
/// and after a failed write, a non-blocking peek looks for such an answer:
/// then the rest of the body is not sent, and the answer is relayed rather
/// than turned into a 502 (or, from a backend that stops reading but keeps
/// the connection, a 504 some write timeouts later).
pub(super) fn stream_request_body(
    chunked: bool,
    trailers: Option<&[u8]>,
    start: &[u8],
    mut rest: BodyReader,
    from: &mut BufConn<impl Source>,
    up: &mut BufConn<SharedStream<Stream>>,
) -> Result<bool, Failure> {
    let mut size_line = Vec::new();
    let mut start = Some(start).filter(|s| !s.is_empty());
    loop {
        let piece = match start.take() {
            Some(piece) => piece,
            None => match rest.next_joined(from) {
                Ok(Some(piece)) => {
                    // A read that ends in a bad or too large chunk sends
                    // nothing: the backend gets no more of a body the
                    // client is refused for.
                    if let Some(e) = rest.failure() {
                        return Err(Failure::Client(client_body_status(&e)));
                    }
                    piece
                }
                Ok(None) => break,
                Err(e) => return Err(Failure::Client(client_body_status(&e))),
            },
        };
        if answered_early(up) {
            return Ok(false);
        }
        let all = if chunked {
            size_line.clear();
            chunk_size_line(piece.len(), &mut size_line);
            let mut framed = [
                IoSlice::new(&size_line),
                IoSlice::new(piece),
                IoSlice::new(b"\r\n"),
            ];
            send_unless_answered(up, &mut framed)?
        } else {
            send_unless_answered(up, &mut [IoSlice::new(piece)])?
        };
        if !all {
            return Ok(false);
        }
    }
    if chunked {
        let passed = match trailers {
            Some(head) if !rest.trailers().is_empty() => trailers_not_in(rest.trailers(), head),
            _ => Vec::new(),
        };
        let end = match passed.is_empty() {
            true => LAST_CHUNK,
            false => &last_chunk_with(&passed),
        };
        (up.get_mut().write_all(end)).map_err(|e| Failure::io(Phase::Sending, e))?;
    }
    Ok(true)
}

/// The lines of `trailers` whose field names the request `head` (as sent
/// to the backend) has none of. A backend may merge trailer fields into
/// the head's (RFC 9110 §6.5.2 lets it, where it knows that is safe): a
/// client's trailer must not add to, or stand in for, a field the proxy
/// wrote (`X-Forwarded-For`, `X-Real-IP`, a `request_header.*`, the
/// request's ID) or one the client sent in the head and the proxy passed
/// on as it was.
fn trailers_not_in(trailers: &[u8], head: &[u8]) -> Vec<u8> {
    let in_head: Vec<&[u8]> = (head.split(|&b| b == b'\n').skip(1))
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .map(field_name)
        .collect();
    let mut passed = Vec::with_capacity(trailers.len());
    for line in trailers.split_inclusive(|&b| b == b'\n') {
        let name = field_name(line);
        if !in_head.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            passed.extend_from_slice(line);
        }
    }
    passed
}

/// The name of the field on `line`: what comes before its colon.
fn field_name(line: &[u8]) -> &[u8] {
    line.split(|&b| b == b':').next().unwrap_or_default()
}

/// Whether the backend has begun its final answer while the request body
/// is still going. What it sent is read without waiting; whole interim
/// (1xx) responses are dropped, as a backend may send `100 Continue`
/// unasked, and the start of one is not an answer yet, unless it is
/// longer than any head may be or malformed: then it is taken as the
/// answer, which the relay refuses (502), rather than buffered on. A
/// `101` is an answer: after it the connection speaks another protocol,
/// and `send_request` refuses it unless the client asked to switch.
fn answered_early(up: &mut BufConn<SharedStream<Stream>>) -> bool {
    if up.buffered().is_empty() && !up.get_ref().has_waiting() {
        return false;
    }
    let _ = up.fill_now();
    loop {
        // Empty lines before a status line are no answer: the head's
        // reader skips them (RFC 9112 §2.2).
        while up.buffered().starts_with(b"\r\n") {
            up.consume(2);
        }
        let buffered = up.buffered();
        if buffered == b"\r" {
            return false;
        }
        match interim_status(buffered) {
            None => return false,
            Some(false) => return true,
            Some(true) => {}
        }
        if buffered.get(9..12) == Some(b"101") {
            return true;
        }
        match find_head_end(buffered, &mut 0) {
            Ok(Some(len)) if len <= MAX_RESPONSE_HEAD => up.consume(len),
            Ok(None) if buffered.len() <= MAX_RESPONSE_HEAD => return false,
            _ => return true,
        }
    }
}

/// What the first bytes of a response say of it: `Some(true)` the status
/// line of an interim (1xx) answer, of any HTTP/1 version; `Some(false)`
/// a final answer's, or no HTTP; `None` too few bytes to tell.
fn interim_status(start: &[u8]) -> Option<bool> {
    // `x`: any digit.
    const INTERIM: &[u8; 10] = b"HTTP/1.x 1";
    let fits = |(&b, &p): (&u8, &u8)| b == p || (p == b'x' && b.is_ascii_digit());
    let fitting = start.iter().zip(INTERIM).all(fits);
    match start.len() {
        n if n >= INTERIM.len() => Some(fitting),
        _ if fitting => None,
        _ => Some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::conn::tests::loopback_pair;
    use crate::http::conn::Kind;
    use std::sync::Arc;

    #[test]
    fn an_interim_head_that_never_ends_is_an_answer_past_the_head_limit() {
        // A `100 Continue` started during an upload and never finished:
        // taken as the answer (which the relay refuses) once longer than
        // any head may be, not buffered for as long as the backend sends.
        let (mut backend, proxy_side) = loopback_pair();
        let mut up = BufConn::new(
            SharedStream(Arc::new(Stream::from(Kind::Tcp(proxy_side)))),
            16 * 1024,
        );
        backend.write_all(b"HTTP/1.1 100 Continue\r\nX: ").unwrap();
        assert!(!answered_early(&mut up), "the start of an interim head");
        let writer = std::thread::spawn(move || {
            let junk = vec![b'a'; 8 * 1024];
            for _ in 0..16 {
                if backend.write_all(&junk).is_err() {
                    break;
                }
            }
            backend
        });
        let _backend = writer.join().unwrap();
        // Bounded: each call reads what has arrived, 128 KiB in all.
        let answered = (0..64).any(|_| answered_early(&mut up));
        assert!(answered);
        assert!(up.buffered().len() <= 2 * MAX_RESPONSE_HEAD);
    }

    #[test]
    fn the_first_bytes_of_an_interim_head_of_any_http_1_version_are_no_answer_yet() {
        // An HTTP/1.0 backend's `100 Continue`, its first bytes arrived
        // alone: taken for a final answer, the upload was cut and waited
        // for an answer that never came.
        for (first, answered) in [
            (&b"HTTP/1.0"[..], false),
            (b"HTTP/1.0 1", false),
            (b"HTTP/1.1 ", false),
            (b"HTTP/1.0 2", true),
            (b"HTTP/2", true),
            (b"SSH-2.0", true),
        ] {
            let (mut backend, proxy_side) = loopback_pair();
            let mut up = BufConn::new(
                SharedStream(Arc::new(Stream::from(Kind::Tcp(proxy_side)))),
                4096,
            );
            backend.write_all(first).unwrap();
            // Arrived, or the `false` of an empty socket would pass.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !up.get_ref().has_waiting() {
                assert!(std::time::Instant::now() < deadline, "nothing arrived");
                std::thread::yield_now();
            }
            let said = String::from_utf8_lossy(first);
            assert_eq!(answered_early(&mut up), answered, "{said:?}");
        }
    }
}
