//! Reading a backend's response head, giving up on it when the client
//! leaves before it comes.

use super::{Failure, Malformed, Phase, MAX_RESPONSE_HEAD};
use crate::access_log::Stage;
use crate::http::conn::{wait_unless_left, SharedStream, Stream};
use crate::http::head::find_head_end;
use crate::http::BufConn;
use crate::proxy::client::CLIENT_CHECK_AFTER;
use crate::proxy::Client;
use crate::sched::{self, Peer};
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Reads until a complete response head is buffered; returns its length.
pub(super) fn read_response_head(
    conn: &mut BufConn<SharedStream<Stream>>,
    client: &Client,
    mut watch: Option<Duration>,
) -> Result<usize, Failure> {
    let mut scanned = 0;
    loop {
        // One read can bring a whole head larger than the limit.
        match find_head_end(conn.buffered(), &mut scanned)? {
            Some(len) if len <= MAX_RESPONSE_HEAD => return Ok(len),
            Some(_) => return Err(Failure::Malformed(Malformed::HeadTooLarge)),
            None => {}
        }
        if conn.buffered().len() > MAX_RESPONSE_HEAD {
            return Err(Failure::Malformed(Malformed::HeadTooLarge));
        }
        // Not HTTP at all (another protocol on the port, a banner): a 502
        // now, not after waiting for a head end that may never come.
        // (Empty lines before a status line are skipped by the parser.)
        let start = conn.buffered();
        let start = &start[start
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count()..];
        if !b"HTTP/".starts_with(&start[..start.len().min(5)]) {
            return Err(Failure::Malformed(Malformed::NotHttp));
        }
        let mut left = false;
        let filled = sched::fill_yielding_or(conn, Peer::Backend, client.crowded, |conn| {
            fill_unless_client_leaves(conn, client, &mut watch, &mut left)
        });
        if left {
            return Err(client.departure(Stage::Head));
        }
        match filled {
            Ok(0) if conn.buffered().is_empty() => return Err(Failure::Closed),
            Ok(0) => return Err(Failure::Malformed(Malformed::ClosedInHead)),
            Ok(_) => {}
            Err(e) => return Err(Failure::io(Phase::Head, e)),
        }
    }
}

/// `conn.fill()` that, while `watch` holds the backend timeout, also
/// watches the client once the backend has taken `CLIENT_CHECK_AFTER`: one
/// that closes its connection before the backend answers sets `left`
/// (nothing is read). One that only shut down its sending side after
/// sending more requests has not left: it is waiting for their answers,
/// and from then on is not watched (its half-close would wake every wait).
fn fill_unless_client_leaves(
    conn: &mut BufConn<SharedStream<Stream>>,
    client: &Client,
    watch: &mut Option<Duration>,
    left: &mut bool,
) -> io::Result<usize> {
    let Some(patience) = *watch else {
        return conn.fill();
    };
    // Over TLS the socket's bytes are not the plaintext: what the session
    // holds already a wait would not see, and what makes the socket
    // readable may give none (a TLS 1.3 session ticket, sent right after
    // the handshake; part of a record); over FastCGI the same (a line of
    // stderr, part of a record). The wait is then taken up again,
    // still watching the client, for what is left of the patience.
    let layered = conn.get_ref().kind().is_layered();
    let deadline = Instant::now() + patience;
    let mut watched = Some(client.conn.get_ref().0.as_ref());
    let backend_fd = conn.get_ref().as_raw_fd();
    loop {
        if layered {
            match conn.fill_now() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
        }
        let patience = deadline.saturating_duration_since(Instant::now());
        let gone = |_: &_| client.has_left();
        if !wait_unless_left(backend_fd, &mut watched, CLIENT_CHECK_AFTER, patience, gone)? {
            *left = true;
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        if watched.is_none() {
            *watch = None;
        }
        if !layered || watched.is_none() {
            return conn.fill();
        }
    }
}
