//! A client that leaves or is let go: whether it is still there, how its
//! exchange ended (for the log), and the lingering close after the last
//! response.

use super::Client;
use crate::access_log::{By, Stage, Termination};
use crate::http::conn::{ClientStream, Leaving as _, Socket as _};
use crate::proxy::origin::{Failure, Fetched};
use std::io::Read;
use std::net::Shutdown;
use std::time::{Duration, Instant};

/// Lingering close (as nginx does): after the last response on a connection
/// we close, input is read and dropped for at most this long, or this many
/// bytes, so the kernel does not answer unread input with a reset that can
/// destroy our response before the client reads it. Skipped when the client
/// itself asked to close and nothing of its is left unread (see
/// [`crate::proxy::Outcome::linger`]).
const LINGER_TIME: Duration = Duration::from_secs(2);

const LINGER_READ_TIMEOUT: Duration = Duration::from_millis(500);

const LINGER_BYTES: usize = 256 * 1024;

/// How long a backend must have taken to answer before the proxy looks
/// whether the client is still there (see `Client::gave_up_on`, and the
/// watch on the client while the answer is awaited in `origin`): people
/// and timeouts give up after seconds, so this catches them, while the
/// quick answers that make up most traffic go out without a look.
pub(in crate::proxy) const CLIENT_CHECK_AFTER: Duration = Duration::from_millis(20);

/// Stops sending, then reads and drops what the client still sends until it
/// closes, for a bounded time and amount (see [`LINGER_TIME`]).
///
/// Never inlined: its buffer would otherwise sit in the frame of `serve`,
/// pushing every call below it a page deeper into the stack of every
/// worker, a page each idle connection then keeps resident.
#[inline(never)]
pub(in crate::proxy) fn linger(stream: &ClientStream) {
    // Over TLS the shutdown says `close_notify` first; what the client
    // still sends is dropped undeciphered.
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let mut stream = stream.tcp();
    let _ = stream.set_read_timeout(Some(LINGER_READ_TIMEOUT));
    let deadline = Instant::now() + LINGER_TIME;
    let mut sink = [0u8; 4096];
    let mut dropped = 0;
    while dropped < LINGER_BYTES && Instant::now() < deadline {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => dropped += n,
        }
    }
}

impl Client {
    /// Whether the client sent bytes we have not used: buffered, or waiting
    /// in the socket (one non-blocking peek).
    pub(in crate::proxy) fn has_unread_input(&self) -> bool {
        !self.conn.buffered().is_empty() || self.conn.get_ref().has_waiting()
    }

    /// Whether the client closed its connection while the backend took
    /// its time to answer (a browser tab closed, `curl -m`): then the
    /// response is not sent, the backend connection is closed rather than
    /// read to its end, and the request is logged 499, as nginx does (a
    /// client that only shut down its sending side looks the same, and is
    /// treated the same, by nginx too). Not asked when the answer came
    /// quickly, to keep a system call off every request; nor for a
    /// response the cache will store.
    pub(in crate::proxy) fn gave_up_on(&self, fetched: &Fetched<'_>) -> bool {
        let waited = fetched.request_time.elapsed().unwrap_or_default();
        waited >= CLIENT_CHECK_AFTER && self.has_left()
    }

    /// Whether the client closed its connection (or it broke), as far as a
    /// look without waiting tells; one that sent more first (pipelined
    /// requests, to be answered) has not left.
    pub(in crate::proxy) fn has_left(&self) -> bool {
        self.conn.buffered().is_empty() && self.conn.get_ref().peer_gone()
    }

    /// What a client found gone at `stage` is put down to: its leaving,
    /// or a forced shutdown, which closes the client too (told as it is
    /// when the backend's side closes first). The log says which.
    pub(in crate::proxy) fn departure(&self, stage: Stage) -> Failure {
        if self.watch.cut() {
            self.ended(Termination::new(By::Killed, stage));
            Failure::Closed
        } else {
            self.ended(Termination::new(By::Client, stage));
            Failure::Client(None)
        }
    }

    /// Says why and where the exchange ended, for the log: as HAProxy's,
    /// the first event that ended it, so that what it brought about
    /// later (a backend cut off because the client left) does not hide
    /// it. [`Client::begin_anew`] forgets it.
    pub(in crate::proxy) fn ended(&self, how: Termination) {
        if self.termination.get().is_normal() {
            self.termination.set(how);
        }
    }

    /// [`Client::ended`] by `failure`: a forced shutdown's doing if it
    /// cut the connections, else the failure's.
    pub(in crate::proxy) fn failed(&self, failure: &Failure) {
        self.ended(match self.watch.cut() {
            true => Termination::new(By::Killed, failure.stage()),
            false => failure.termination(),
        });
    }

    /// Forgets how the exchange ended: before each request, and before
    /// each target tried for one (the log tells of the last).
    pub(in crate::proxy) fn begin_anew(&self) {
        self.termination.set(Termination::NORMAL);
    }

    /// How this request's exchange ended (see [`Client::ended`]).
    pub(in crate::proxy) fn termination(&self) -> Termination {
        self.termination.get()
    }
}
