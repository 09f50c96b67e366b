//! Waits for a backend's bytes that watch the client for its close, and
//! send it what it has not taken yet meanwhile.

use super::source::read_acking_or;
use super::sys::readable_within;
use super::{Leaving, Source, Stream};
use crate::poll::{poll, pollfd};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// A socket read inside a message (see [`Source`]) whose waits also watch
/// another socket for its peer's close: a backend's body on its way to a
/// client that may leave between two of its pieces (an event stream, a
/// long poll), when nothing else would notice before the backend's next
/// byte, if it ever comes.
pub struct WatchingClose<'a> {
    stream: &'a Stream,
    /// `None` once not worth watching (see [`wait_unless_left`]).
    watched: Option<&'a dyn Leaving>,
    /// Waits do not watch while set (a response the cache is taking is
    /// worth reading whole, client or not).
    pub paused: bool,
    /// How long each wait looks at `stream` alone first (see
    /// `readable_unless_closed`).
    grace: Duration,
    /// How long a read may wait, all its waits together (the read timeout
    /// `stream` has).
    patience: Duration,
    /// Whether the watched peer was found gone: the read failed for that.
    pub left: bool,
    /// Bytes for the client that it has not taken yet, sent as it takes
    /// them while this waits for the backend.
    pub pending: Option<&'a dyn Pending>,
}

/// Bytes waiting to go to a client while its response is still read from
/// the backend (the cache taking it: see `relay::client_out::ClientOut`). A wait for
/// the backend's next bytes sends them as the client takes them, so that
/// neither waits for the other.
pub trait Pending {
    /// What the bytes wait for, if any are left.
    fn lag(&self) -> Lag;
    /// Sends what the client takes now, without waiting; a failure is
    /// kept, for the writer to report (the backend is read on).
    fn send_now(&self);
}

/// What bytes for a client wait for (see [`Pending`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// Nothing: none are left, or the client is gone.
    None,
    /// Room in this socket's send buffer.
    Room(RawFd),
    /// The pace (`limit_rate`) to allow more, this much later.
    Pace(Duration),
}

impl<'a> WatchingClose<'a> {
    pub fn new(
        stream: &'a Stream,
        watched: Option<&'a dyn Leaving>,
        grace: Duration,
        patience: Duration,
    ) -> Self {
        WatchingClose {
            stream,
            watched,
            paused: false,
            grace,
            patience,
            left: false,
            pending: None,
        }
    }

    /// Waits until `deadline` for `fd` to be readable (`Ok(true)`), serving
    /// `pending` and watching the client meanwhile; an error ends the read.
    /// One deadline for all the waits of a read, counted from its first:
    /// the backend's silence is bounded by `patience` (as nginx's
    /// `proxy_read_timeout`, between two reads), however long the client
    /// took to drain its bytes, and however many records without data
    /// (over TLS) woke the waits.
    fn wait(&mut self, fd: RawFd, deadline: Instant) -> io::Result<bool> {
        if let Some(pending) = self.pending {
            match serve_pending_until_readable(fd, pending, deadline)? {
                Served::Readable => return Ok(true),
                Served::TimedOut => return Err(io::ErrorKind::TimedOut.into()),
                Served::Sent => {}
            }
        }
        let patience = deadline.saturating_duration_since(Instant::now());
        if self.paused || self.watched.is_none() {
            if !readable_within(fd, patience)? {
                return Err(io::ErrorKind::TimedOut.into());
            }
            return Ok(true);
        }
        let gone = |peer: &(dyn Leaving + 'a)| peer.peer_gone();
        if !wait_unless_left(fd, &mut self.watched, self.grace, patience, gone)? {
            self.left = true;
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        Ok(true)
    }
}

/// Waits, as `readable_unless_closed` does, for `fd` to be readable,
/// watching `*watched` (if any) for its peer's close: `Ok(false)` when
/// `gone` (given the watched socket) says the peer has left. One that only
/// shut down its sending side after sending more (pipelined requests,
/// waiting for their answers) is watched no more (`*watched` becomes
/// `None`): that half-close would end every wait at once.
pub fn wait_unless_left<W: AsRawFd + ?Sized>(
    fd: RawFd,
    watched: &mut Option<&W>,
    grace: Duration,
    patience: Duration,
    gone: impl FnOnce(&W) -> bool,
) -> io::Result<bool> {
    let Some(peer) = *watched else {
        return Ok(true);
    };
    match readable_unless_closed(fd, peer.as_raw_fd(), grace, patience)? {
        Awaited::Readable => Ok(true),
        Awaited::TimedOut => Err(io::ErrorKind::TimedOut.into()),
        Awaited::WatchedClosed if gone(peer) => Ok(false),
        Awaited::WatchedClosed => {
            *watched = None;
            Ok(true)
        }
    }
}

/// How [`serve_pending_until_readable`] ended.
#[derive(Debug, PartialEq, Eq)]
enum Served {
    /// The backend's socket is readable.
    Readable,
    /// No bytes are left for the client (or it is gone): the usual wait
    /// goes on.
    Sent,
    TimedOut,
}

/// Sends `pending`'s bytes as the client takes them (or the pace allows)
/// until `fd` is readable, none are left, or `deadline` passes.
fn serve_pending_until_readable(
    fd: RawFd,
    pending: &dyn Pending,
    deadline: Instant,
) -> io::Result<Served> {
    loop {
        let (room, wait) = match pending.lag() {
            Lag::None => return Ok(Served::Sent),
            Lag::Room(client) => (Some(client), None),
            Lag::Pace(wait) => (None, Some(wait)),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [
            pollfd(fd, libc::POLLIN),
            pollfd(room.unwrap_or(-1), libc::POLLOUT),
        ];
        let timeout = wait.map_or(left, |wait| wait.min(left));
        let n = poll(&mut fds, timeout)?;
        if fds[0].revents != 0 {
            return Ok(Served::Readable);
        }
        if n == 0 && timeout == left {
            return Ok(Served::TimedOut);
        }
        pending.send_now();
    }
}

impl Read for WatchingClose<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Source for WatchingClose<'_> {
    fn read_midway(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let stream = self.stream;
        let mut deadline = None;
        read_acking_or(stream, buf, |fd| {
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + self.patience);
            self.wait(fd, deadline)
        })
    }
}

impl AsRawFd for WatchingClose<'_> {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

/// How a wait for one socket's bytes that watched another for its close
/// ended.
#[derive(Debug, PartialEq, Eq)]
enum Awaited {
    /// The socket waited on has bytes, or its end, or an error, to read.
    Readable,
    /// The watched socket was closed or shut down for sending by its peer
    /// (or broke).
    WatchedClosed,
    TimedOut,
}

/// Waits up to `patience` for `fd` to be readable, or, once `grace` has
/// passed, for the peer of `watched` to close it: a `poll` on `fd` alone,
/// then on both. (A client may shut down its sending side right after its
/// request, `nc -N` does: the grace lets a quick answer reach it.)
fn readable_unless_closed(
    fd: RawFd,
    watched: RawFd,
    grace: Duration,
    patience: Duration,
) -> io::Result<Awaited> {
    let grace = grace.min(patience);
    if readable_within(fd, grace)? {
        return Ok(Awaited::Readable);
    }
    // A peer's FIN shows as POLLRDHUP (Linux); a reset as POLLHUP or
    // POLLERR, which poll always reports.
    #[cfg(target_os = "linux")]
    const CLOSED: libc::c_short = libc::POLLRDHUP;
    #[cfg(not(target_os = "linux"))]
    const CLOSED: libc::c_short = 0;
    let mut fds = [pollfd(fd, libc::POLLIN), pollfd(watched, CLOSED)];
    Ok(match poll(&mut fds, patience - grace)? {
        0 => Awaited::TimedOut,
        _ if fds[0].revents != 0 => Awaited::Readable,
        _ => Awaited::WatchedClosed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::conn::tests::loopback_pair;
    use crate::http::conn::BufConn;
    use crate::http::conn::Kind;
    use std::io::Write;
    use std::net::TcpStream;
    use std::os::unix::net::UnixStream;

    /// Reads through [`WatchingClose`] watching `watched`: what the read
    /// gave (or its error), whether the watched peer was found gone, and
    /// what `conn` holds after.
    fn read_watching(
        conn: &mut BufConn<Stream>,
        watched: &TcpStream,
    ) -> (Result<usize, io::ErrorKind>, bool, Vec<u8>) {
        let patience = Duration::from_secs(10);
        let (read, left) = conn.read_through(
            |s| WatchingClose::new(s, Some(watched), Duration::ZERO, patience),
            |c| (c.fill_midway().map_err(|e| e.kind()), c.get_ref().left),
        );
        (read, left, conn.buffered().to_vec())
    }

    #[test]
    fn a_wait_watching_a_socket_ends_when_its_peer_leaves() {
        let (tcp_backend, tcp_proxy_side) = loopback_pair();
        let (unix_backend, unix_proxy_side) = UnixStream::pair().unwrap();
        let backends: [(Box<dyn Write>, Stream); 2] = [
            (Box::new(tcp_backend), Kind::Tcp(tcp_proxy_side).into()),
            (Box::new(unix_backend), Kind::Unix(unix_proxy_side).into()),
        ];
        for (mut backend, proxy_side) in backends {
            let (client, watched) = loopback_pair();
            let unix = matches!(proxy_side.kind(), Kind::Unix(_));
            let mut conn = BufConn::new(proxy_side, 64);
            backend.write_all(b"ab").unwrap();
            while conn.buffered().len() < 2 {
                conn.fill().unwrap();
            }
            drop(client);
            let got = read_watching(&mut conn, &watched);
            assert_eq!(
                got,
                (Err(io::ErrorKind::ConnectionAborted), true, b"ab".to_vec()),
                "unix: {unix}"
            );
        }
    }

    #[test]
    fn a_watched_peer_that_only_stopped_sending_is_not_taken_for_gone() {
        // Pipelined requests, then a half-close: it waits for answers.
        let (mut backend, proxy_side) = loopback_pair();
        let (mut client, watched) = loopback_pair();
        client.write_all(b"GET /next").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut conn = BufConn::new(Stream::from(Kind::Tcp(proxy_side)), 64);
        let answer = std::thread::spawn(move || {
            // Late enough that the read waits (nothing to measure).
            std::thread::sleep(Duration::from_millis(50));
            backend.write_all(b"body").unwrap();
            backend
        });
        let got = read_watching(&mut conn, &watched);
        let _backend = answer.join().unwrap();
        assert_eq!(got, (Ok(4), false, b"body".to_vec()));
    }
}
