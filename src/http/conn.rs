//! A buffered byte stream that lets the caller look at what has arrived,
//! take part of it, and ask for more: what head parsing, body framing and
//! pipelining all need, and what `std::io::BufReader` cannot do (it only
//! refills when empty).

use parking_lot::Mutex;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use super::tls::TlsStream;

/// Bytes read by one `read` call into an empty, released buffer. Small on
/// purpose: it lives on the stack of a thread that may sit idle for minutes.
/// A backend's response is read in two calls when it is larger, and that is
/// still the better deal: reading straight into a full buffer saved a `recv`
/// per response (within the noise of A/B runs) but made every request
/// waiting on a backend hold its 65 KiB buffer while it waits (peak RSS at
/// 256 connections: 15 → 27-35 MiB).
const PROBE_BYTES: usize = 1024;

/// Buffers given back by connections that went idle, kept for the next
/// busy one: reusing them spares zeroing fresh memory on every request,
/// while idle connections still hold none.
static SPARE: Mutex<Vec<Vec<u8>>> = parking_lot::const_mutex(Vec::new());
/// Most spare buffers kept (a few MiB at the sizes we use).
const MAX_SPARE: usize = 64;

pub(super) fn take_buffer(size: usize) -> Vec<u8> {
    let mut spare = SPARE.lock();
    match spare.iter().rposition(|b| b.len() == size) {
        Some(i) => spare.swap_remove(i),
        None => {
            drop(spare);
            vec![0; size]
        }
    }
}

pub(super) fn give_buffer(buf: Vec<u8>) {
    let mut spare = SPARE.lock();
    if spare.len() < MAX_SPARE {
        spare.push(buf);
    }
}

pub struct BufConn<S> {
    stream: S,
    /// Fully initialised storage (zeroed once, when allocated); the live
    /// bytes are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Size the buffer is given when it is (re)allocated.
    capacity: usize,
    /// Whether a read that cannot wait ([`fill_now`](Self::fill_now)) with
    /// no buffer (after `release_if_empty`) also goes to the small stack
    /// buffer (see `fill_released`), as every read that may wait does.
    probe: bool,
    /// Bytes taken since the connection began: a request's length is
    /// what was taken while it was read.
    taken: u64,
}

impl<S> BufConn<S> {
    pub fn new(stream: S, capacity: usize) -> Self {
        BufConn {
            stream,
            buf: Vec::new(),
            start: 0,
            end: 0,
            capacity,
            probe: true,
            taken: 0,
        }
    }

    /// A read that cannot wait takes the buffer for what has come, rather
    /// than probing, and gives it back if nothing has: for a connection
    /// whose answer is often found there after a yield (a backend's),
    /// where a probe would split a response larger than it into two
    /// reads. A read that may wait still probes, so that a request
    /// waiting for its answer (a long poll) holds no buffer.
    pub fn without_probe(mut self) -> Self {
        self.probe = false;
        self
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The bytes received and not yet taken.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` buffered bytes as used and returns them.
    pub fn take(&mut self, n: usize) -> &[u8] {
        let from = self.start;
        self.start += n;
        assert!(self.start <= self.end, "took more than was buffered");
        self.taken += n as u64;
        &self.buf[from..self.start]
    }

    /// Every byte taken since the connection began.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Every buffered byte, taken as what comes after the messages read
    /// (a new protocol's first bytes, after an upgrade): not counted in
    /// [`BufConn::taken`].
    pub fn take_past_messages(&mut self) -> Vec<u8> {
        let rest = self.buffered().to_vec();
        self.start = self.end;
        rest
    }

    pub fn consume(&mut self, n: usize) {
        self.take(n);
    }

    /// Takes `n` buffered bytes as one piece with the `joined` taken
    /// before the last `skipped` (framing between them, say): they are
    /// moved back over those, and all `joined + n` returned. The bytes
    /// must all have been taken since the last read, which moves them.
    pub fn take_joined(&mut self, joined: usize, skipped: usize, n: usize) -> &[u8] {
        assert!(
            joined + skipped <= self.start && n <= self.end - self.start,
            "joined more than was taken or buffered"
        );
        let to = self.start - skipped;
        self.buf.copy_within(self.start..self.start + n, to);
        self.start += n;
        self.taken += n as u64;
        &self.buf[to - joined..to + n]
    }

    /// Frees the buffer when nothing is pending, so a connection that sits
    /// idle between requests holds no heap memory.
    pub fn release_if_empty(&mut self) {
        if self.start == self.end && !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            // Only a buffer of the usual size is worth keeping for reuse:
            // one grown for a large head would sit in the spare list for
            // good, as nothing asks for its size.
            if buf.len() == self.capacity {
                give_buffer(buf);
            }
            self.start = 0;
            self.end = 0;
        }
    }
}

impl<S> BufConn<S> {
    /// Makes room for `n` bytes from the first buffered one on, so that a
    /// body gathered whole is read in large pieces into storage of its
    /// size, not grown a buffer at a time. Storage grown past the usual
    /// size is freed, not kept for reuse, once the connection releases it.
    pub fn reserve(&mut self, n: usize) {
        if self.buf.len() - self.start >= n {
            return;
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        self.buf.resize(n.max(self.capacity), 0);
    }

    /// Takes every buffered byte out with the storage it is in, without
    /// copying: the connection is left with none, as after
    /// [`release_if_empty`](Self::release_if_empty).
    pub fn take_all(&mut self) -> Taken {
        let taken = Taken {
            buf: std::mem::take(&mut self.buf),
            start: self.start,
            end: self.end,
            capacity: self.capacity,
        };
        self.taken += (self.end - self.start) as u64;
        self.start = 0;
        self.end = 0;
        taken
    }
}

impl BufConn<&'static [u8]> {
    /// A connection whose bytes are `bytes` and nothing more: reading past
    /// them meets the end of the stream. Its storage never grows, nor is it
    /// kept for reuse.
    pub fn holding(bytes: Vec<u8>) -> Self {
        BufConn {
            stream: &[],
            start: 0,
            end: bytes.len(),
            buf: bytes,
            capacity: 0,
            probe: true,
            taken: 0,
        }
    }
}

/// Bytes taken out of a [`BufConn`] with their storage; the storage goes
/// back to the spare buffers when dropped.
pub struct Taken {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    capacity: usize,
}

impl std::ops::Deref for Taken {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

impl Taken {
    /// Only the first `n` of the bytes.
    pub fn first(mut self, n: usize) -> Self {
        self.end = self.end.min(self.start + n);
        self
    }
}

impl From<Vec<u8>> for Taken {
    /// Bytes of no connection, not kept for reuse once dropped.
    fn from(buf: Vec<u8>) -> Self {
        Taken {
            end: buf.len(),
            buf,
            start: 0,
            capacity: 0,
        }
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        if !self.buf.is_empty() && self.buf.len() == self.capacity {
            give_buffer(std::mem::take(&mut self.buf));
        }
    }
}

impl<S> Drop for BufConn<S> {
    fn drop(&mut self) {
        if !self.buf.is_empty() && self.buf.len() == self.capacity {
            give_buffer(std::mem::take(&mut self.buf));
        }
    }
}

impl<S> BufConn<S> {
    /// Runs `f` on this connection's bytes read through `through(stream)`,
    /// a view of the stream that reads, or waits, its own way (see
    /// [`WatchingClose`]). The buffer is moved there and back, not copied.
    pub fn read_through<'s, T, R>(
        &'s mut self,
        through: impl FnOnce(&'s S) -> T,
        f: impl FnOnce(&mut BufConn<T>) -> R,
    ) -> R {
        let mut view = BufConn {
            stream: through(&self.stream),
            buf: std::mem::take(&mut self.buf),
            start: self.start,
            end: self.end,
            capacity: self.capacity,
            probe: self.probe,
            taken: self.taken,
        };
        let result = f(&mut view);
        self.buf = std::mem::take(&mut view.buf);
        self.start = view.start;
        self.end = view.end;
        self.taken = view.taken;
        result
    }
}

impl<S: Read> BufConn<S> {
    /// Reads more bytes after the buffered ones. Returns how many arrived;
    /// 0 means end of stream. The buffer grows (by `capacity` at a time)
    /// only when it is full of unconsumed bytes, so callers bound growth by
    /// checking `buffered().len()` against their own limits first.
    pub fn fill(&mut self) -> io::Result<usize> {
        self.fill_by(read_retrying)
    }

    /// `fill` with `read` doing the reading.
    fn fill_by(
        &mut self,
        mut read: impl FnMut(&mut S, &mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.buf.is_empty() {
            return self.fill_released(read);
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() + self.capacity, 0);
            }
        }
        let n = read(&mut self.stream, &mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// The first read after `release_if_empty` goes to a small stack buffer,
    /// so an idle connection blocked in `read` costs no heap.
    fn fill_released(
        &mut self,
        mut read: impl FnMut(&mut S, &mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut probe = [0u8; PROBE_BYTES];
        let n = read(&mut self.stream, &mut probe)?;
        if n > 0 {
            self.buf = take_buffer(self.capacity.max(n));
            self.buf[..n].copy_from_slice(&probe[..n]);
            self.start = 0;
            self.end = n;
        }
        Ok(n)
    }
}

impl<S: Read + Socket> BufConn<S> {
    /// `fill` without waiting: `WouldBlock` when nothing has arrived.
    pub fn fill_now(&mut self) -> io::Result<usize> {
        let released = self.buf.is_empty();
        if released && !self.probe {
            self.buf = take_buffer(self.capacity);
        }
        let filled = self.fill_by(|stream, buf| stream.read_now(buf));
        if released {
            self.release_if_empty();
        }
        filled
    }
}

impl<S: Source> BufConn<S> {
    /// `fill` for the rest of a message whose start has arrived (a body):
    /// see [`Source::read_midway`].
    pub fn fill_midway(&mut self) -> io::Result<usize> {
        self.fill_by(S::read_midway)
    }
}

/// What a [`BufConn`] reads from.
pub trait Source: Read {
    /// A read inside a message. A socket that would wait first sends the
    /// acknowledgement it was holding back (see `read_acking`); other
    /// sources just read.
    fn read_midway(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_retrying(self, buf)
    }
}

impl Source for &[u8] {}

impl Source for TcpStream {
    fn read_midway(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_acking(self, buf)
    }
}

impl<S: Socket> Source for SharedStream<S>
where
    for<'a> &'a S: Read,
{
    fn read_midway(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_acking(&*self.0, buf)
    }
}

/// A read that, when nothing has arrived yet, first acknowledges at once
/// what did arrive, then waits.
///
/// Linux delays the acknowledgement of data that asks for no answer by up
/// to 40 ms, hoping to send it with one. A sender that holds back a
/// message's last, partial segment until its earlier data is acknowledged
/// (Nagle's algorithm does; so did the benchmark's nginx backends, serving
/// files with `sendfile` and `tcp_nopush`) then waits those 40 ms, and we
/// wait on it.
/// Measured with wrk through inverso to the benchmark's nginx backends
/// (64 KiB responses, 64 connections): about 1% of responses took the delay,
/// making p99 42 ms; acknowledging before waiting brought p99 to 10-23 ms
/// and requests per second up 13-16%. Asking for the quick acknowledgement
/// only when the read would wait spares the extra packet when the rest of
/// the message is already here (1 KiB responses: no change).
fn read_acking<S: Socket>(stream: &S, buf: &mut [u8]) -> io::Result<usize>
where
    for<'a> &'a S: Read,
{
    read_acking_or(stream, buf, |_| Ok(true))
}

/// `read_acking` that, when it would wait, first asks `wait` (given the
/// socket) whether to: `Ok(false)` reads nothing (`Ok(0)`).
fn read_acking_or<S: Socket>(
    stream: &S,
    buf: &mut [u8],
    wait: impl FnOnce(RawFd) -> io::Result<bool>,
) -> io::Result<usize>
where
    for<'a> &'a S: Read,
{
    let read = match stream.read_now(buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            stream.ack_now();
            if !wait(stream.as_raw_fd())? {
                return Ok(0);
            }
            read_retrying(&mut &*stream, buf)
        }
        done => done,
    };
    match read {
        // Inside a message, an end that may have been anyone's is none.
        Ok(0) if stream.cut_short() => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the TLS connection ended without close_notify",
        )),
        read => read,
    }
}

impl BufConn<SharedStream<Stream>> {
    /// `fill` that waits at most `patience` for the first byte: `None` when
    /// nothing came in that time. As in `read_acking`, the acknowledgement
    /// held back goes first, so that a sender waiting on it is not what the
    /// patience runs out on.
    pub fn fill_within(&mut self, patience: Duration) -> io::Result<Option<usize>> {
        let mut waited_out = false;
        let n = self.fill_by(|stream, buf| {
            read_acking_or(&**stream, buf, |fd| {
                waited_out = !readable_within(fd, patience)?;
                Ok(!waited_out)
            })
        })?;
        Ok((!waited_out).then_some(n))
    }
}

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
    /// How long a wait may last (the read timeout `stream` has).
    patience: Duration,
    /// Whether the watched peer was found gone: the read failed for that.
    pub left: bool,
    /// Bytes for the client that it has not taken yet, sent as it takes
    /// them while this waits for the backend.
    pub pending: Option<&'a dyn Pending>,
}

/// Bytes waiting to go to a client while its response is still read from
/// the backend (the cache taking it: see `relay::ClientOut`). A wait for
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

    /// Whether to wait in `recv`; an error ends the read.
    fn wait(&mut self, fd: RawFd) -> io::Result<bool> {
        if let Some(pending) = self.pending {
            if !serve_pending_until_readable(fd, pending, self.patience)? {
                return Err(io::ErrorKind::TimedOut.into());
            }
        }
        if self.paused {
            return Ok(true);
        }
        let gone = |peer: &(dyn Leaving + 'a)| peer.peer_gone();
        if !wait_unless_left(fd, &mut self.watched, self.grace, self.patience, gone)? {
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

/// Sends `pending`'s bytes as the client takes them (or the pace allows)
/// until `fd` is readable: `Ok(false)` when it is not within `patience`.
/// With none left, it returns at once, for the usual wait.
fn serve_pending_until_readable(
    fd: RawFd,
    pending: &dyn Pending,
    patience: Duration,
) -> io::Result<bool> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        let (room, wait) = match pending.lag() {
            Lag::None => return Ok(true),
            Lag::Room(client) => (Some(client), None),
            Lag::Pace(wait) => (None, Some(wait)),
        };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut fds = [
            pollfd(fd, libc::POLLIN),
            pollfd(room.unwrap_or(-1), libc::POLLOUT),
        ];
        let timeout = wait.map_or(left, |wait| wait.min(left));
        let n = poll(&mut fds, timeout)?;
        if fds[0].revents != 0 {
            return Ok(true);
        }
        if n == 0 && timeout == left {
            return Ok(false);
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
        read_acking_or(stream, buf, |fd| self.wait(fd))
    }
}

impl AsRawFd for WatchingClose<'_> {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

/// Whether `fd` has something to read (data, or its end) within `patience`.
pub(super) fn readable_within(fd: RawFd, patience: Duration) -> io::Result<bool> {
    let mut fds = [pollfd(fd, libc::POLLIN)];
    Ok(poll(&mut fds, patience)? > 0)
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

/// Writes `bufs` whole to `stream`, unless its peer speaks first: each
/// time the socket takes no more, waits (up to the socket's write
/// timeout, as a blocking write would) for it to take more or for the
/// peer to send something, and then asks `answered` whether that is an
/// answer. `Ok(false)`: it was, and not everything went. A blocking write
/// would sit out the whole timeout, or until the peer closes, when the
/// peer has answered and stopped reading (a backend's 413 to an upload,
/// RFC 9112 §9.5). After `answered` says no, the peer's bytes are not
/// waited on again until more has gone (its end, say, would otherwise
/// wake every wait at once).
pub fn write_all_unless_answered(
    stream: &Stream,
    bufs: &mut [IoSlice<'_>],
    answered: impl FnMut() -> bool,
) -> io::Result<bool> {
    match stream {
        Stream::Tls(s) => s.write_all_unless_answered(bufs, answered),
        _ => send_all_unless_answered(stream, bufs, answered),
    }
}

/// [`write_all_unless_answered`] on the socket itself: `bufs` go as
/// they are.
pub(super) fn send_all_unless_answered(
    stream: &impl Socket,
    mut bufs: &mut [IoSlice<'_>],
    mut answered: impl FnMut() -> bool,
) -> io::Result<bool> {
    let socket = socket2::SockRef::from(stream);
    let mut watch_peer = true;
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match socket.send_vectored_with_flags(bufs, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                IoSlice::advance_slices(&mut bufs, n);
                watch_peer = true;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            Err(_) => {}
        }
        let events = match watch_peer {
            true => libc::POLLOUT | libc::POLLIN,
            false => libc::POLLOUT,
        };
        let mut fds = [pollfd(stream.as_raw_fd(), events)];
        // Asked only here: most writes (every bodiless request) never
        // wait, and this is a system call.
        let patience = stream.write_timeout()?.unwrap_or(Duration::MAX);
        if poll(&mut fds, patience)? == 0 {
            return Err(io::ErrorKind::TimedOut.into());
        }
        // POLLHUP and POLLERR come unasked: the next send says what broke.
        if fds[0].revents & libc::POLLIN != 0 {
            if answered() {
                return Ok(false);
            }
            // Watched again only when `answered` took all there was: over
            // TLS, records that carry no data (a TLS 1.3 session ticket,
            // sent right after the handshake) wake the wait and are read
            // into the session, and the answer may come after them. What
            // is left, the peer's end above all, would wake it at once.
            watch_peer = matches!(peek(stream), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        }
    }
    Ok(true)
}

/// `poll(2)` on `fds` for up to `patience` (at most `i32::MAX` ms):
/// how many have events.
/// A `poll` entry asking `events` of `fd` (a negative one is skipped).
fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

fn poll(fds: &mut [libc::pollfd], patience: Duration) -> io::Result<usize> {
    // Rounded up: a wait of 0.4 ms is one of 1 ms, not a busy look.
    let ms = patience
        .as_nanos()
        .div_ceil(1_000_000)
        .min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: `fds` is a valid array of as many pollfds as the count says.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One `recv` that does not block, whatever the socket's mode.
pub(super) fn recv_now(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes, and recv
        // writes at most that many; `fd` is a socket its owner keeps open
        // for the duration of the call.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A socket held by two: a client's by the thread that serves it and by
/// the server's registry, which shuts it down at shutdown; a backend's
/// (a [`Stream`]) by the thread using it and by its client's
/// `ConnWatch`, which shuts it down at a forced close. Sharing the handle
/// spares a `dup` and a `close` per connection.
pub struct SharedStream<S = TcpStream>(pub Arc<S>);

impl<S> Read for SharedStream<S>
where
    for<'a> &'a S: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl<S> Write for SharedStream<S>
where
    for<'a> &'a S: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self.0).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: AsRawFd> AsRawFd for SharedStream<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl<S: AsFd> AsFd for SharedStream<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl<S> Deref for SharedStream<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.0
    }
}

/// What code that serves a client and a backend alike needs of a socket
/// beyond reading, writing and its descriptor: a client's is TCP, a
/// backend's TCP or Unix.
pub trait Socket: AsFd + AsRawFd {
    /// One read that does not wait, whatever the socket's mode:
    /// `WouldBlock` when nothing has arrived.
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        recv_now(self.as_raw_fd(), buf)
    }
    /// Sends now the acknowledgement TCP may be holding back for what
    /// has arrived (see `read_acking`); a Unix socket has none to send.
    fn ack_now(&self);
    /// Whether the stream ended in a way that says nothing of whether
    /// the peer meant it to end there: a backend's TLS without
    /// `close_notify` (see [`TlsStream::cut_short`]). A client's end is
    /// taken as it comes, as everyone takes it.
    fn cut_short(&self) -> bool {
        false
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn write_timeout(&self) -> io::Result<Option<Duration>>;
}

impl Socket for TcpStream {
    fn ack_now(&self) {
        // TCP_QUICKACK sends the pending acknowledgement now; failing to
        // set it only costs the delay.
        let _ = socket2::SockRef::from(self).set_quickack(true);
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }

    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        TcpStream::write_timeout(self)
    }
}

/// A shared socket is used as the socket itself.
impl<S: Socket> Socket for SharedStream<S> {
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_now(buf)
    }

    fn ack_now(&self) {
        self.0.ack_now();
    }

    fn cut_short(&self) -> bool {
        self.0.cut_short()
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.shutdown(how)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_write_timeout(timeout)
    }

    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.0.write_timeout()
    }
}

/// A client's connection: plain TCP, or TLS over it (`tls_port`). An
/// enum, as [`Stream`] is: a plain connection pays one branch per call.
/// The TLS session is boxed, so that a plain one carries no room for it.
pub enum ClientStream {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
}

impl ClientStream {
    /// The TCP connection under it: for what watches the peer's close,
    /// which TLS does not change.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Tcp(s) => s,
            ClientStream::Tls(s) => s.tcp(),
        }
    }

    pub fn tls(&self) -> Option<&TlsStream> {
        match self {
            ClientStream::Tcp(_) => None,
            ClientStream::Tls(s) => Some(s),
        }
    }

    /// Gives back what the connection holds for reading while nothing
    /// is in it, as [`BufConn::release_if_empty`] does: an idle TLS
    /// connection keeps no record buffer.
    pub fn release_if_empty(&self) {
        if let ClientStream::Tls(s) = self {
            s.release_if_empty();
        }
    }

    /// Whether bytes are waiting to be read, without reading or waiting.
    pub fn has_waiting(&self) -> bool {
        match self {
            ClientStream::Tcp(s) => matches!(peek(s), Ok(n) if n > 0),
            ClientStream::Tls(s) => s.has_waiting(),
        }
    }
}

impl Socket for ClientStream {
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => s.read_now(buf),
            ClientStream::Tls(s) => s.read_now(buf),
        }
    }

    fn ack_now(&self) {
        self.tcp().ack_now();
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.shutdown(how),
            ClientStream::Tls(s) => s.shutdown(how),
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_write_timeout(timeout)
    }

    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.tcp().write_timeout()
    }
}

impl Read for &ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => (&*s).read(buf),
            ClientStream::Tls(s) => (&**s).read(buf),
        }
    }
}

impl ClientStream {
    /// Writes what the socket takes now, without waiting: `Ok(0)` when
    /// it takes nothing. Over TLS, records it did not take are kept and
    /// go first with the next write (or `flush`).
    pub fn write_now(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => {
                let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
                match socket2::SockRef::from(s).send_vectored_with_flags(bufs, flags) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    sent => sent,
                }
            }
            ClientStream::Tls(s) => s.write_now(bufs),
        }
    }

    /// Whether written bytes wait to go out (see [`ClientStream::write_now`]).
    pub fn has_unsent(&self) -> bool {
        matches!(self, ClientStream::Tls(s) if s.has_unsent())
    }
}

impl Write for &ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => (&*s).write(buf),
            ClientStream::Tls(s) => (&**s).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => (&*s).write_vectored(bufs),
            ClientStream::Tls(s) => (&**s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Tcp(_) => Ok(()),
            ClientStream::Tls(s) => (&**s).flush(),
        }
    }
}

impl AsFd for ClientStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.tcp().as_fd()
    }
}

impl AsRawFd for ClientStream {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp().as_raw_fd()
    }
}

/// A connection to a backend: TCP, a Unix-domain stream socket (a
/// `unix:PATH` target), or TLS over TCP (a target with `tls`). An enum,
/// not a trait object: each call on a TCP backend costs one branch more
/// than on the `TcpStream` itself, and nothing is allocated or called
/// through a pointer.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stream::Tcp(s) => s.fmt(f),
            Stream::Unix(s) => s.fmt(f),
            Stream::Tls(s) => f.debug_tuple("Tls").field(s.tcp()).finish(),
        }
    }
}

impl Stream {
    /// Whether bytes are waiting to be read, without reading or waiting:
    /// over TLS, plaintext or records that would give some (or end the
    /// connection).
    pub fn has_waiting(&self) -> bool {
        match self {
            Stream::Tls(s) => s.has_waiting(),
            _ => matches!(peek(self), Ok(n) if n > 0),
        }
    }

    /// Whether a pooled connection can carry another request: nothing
    /// came on it while it idled, not even the backend's close (anything
    /// at all would be a response nobody asked for). Over TLS, records
    /// that carry no data (a session ticket) do not count.
    pub fn still_open(&self) -> bool {
        match self {
            Stream::Tls(s) => !s.peer_gone() && !s.has_waiting(),
            _ => matches!(peek(self), Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        }
    }
}

impl Socket for Stream {
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tls(s) => s.read_now(buf),
            _ => recv_now(self.as_raw_fd(), buf),
        }
    }

    fn ack_now(&self) {
        match self {
            Stream::Tcp(s) => s.ack_now(),
            Stream::Tls(s) => s.tcp().ack_now(),
            Stream::Unix(_) => {}
        }
    }

    fn cut_short(&self) -> bool {
        matches!(self, Stream::Tls(s) if s.cut_short())
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
            Stream::Tls(s) => s.shutdown(how),
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            Stream::Unix(s) => s.set_read_timeout(timeout),
            Stream::Tls(s) => s.tcp().set_read_timeout(timeout),
        }
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(timeout),
            Stream::Unix(s) => s.set_write_timeout(timeout),
            Stream::Tls(s) => s.tcp().set_write_timeout(timeout),
        }
    }

    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        match self {
            Stream::Tcp(s) => s.write_timeout(),
            Stream::Unix(s) => s.write_timeout(),
            Stream::Tls(s) => s.tcp().write_timeout(),
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
            Stream::Tls(s) => (&**s).read(buf),
        }
    }
}

/// Writes to a Unix socket go out with `MSG_NOSIGNAL`, as std's do to a
/// TCP one: a backend that closed fails the write (`EPIPE`) rather than
/// raise `SIGPIPE`, whatever the process does with that signal (a Rust
/// `main` ignores it, an embedder's may not).
impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => socket2::SockRef::from(s).send_with_flags(buf, libc::MSG_NOSIGNAL),
            Stream::Tls(s) => (&**s).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write_vectored(bufs),
            Stream::Unix(s) => {
                socket2::SockRef::from(s).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
            }
            Stream::Tls(s) => (&**s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
            Stream::Tls(s) => s.as_fd(),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tls(s) => s.as_raw_fd(),
        }
    }
}

/// Looks at what is waiting to be read on `stream` without taking it or
/// blocking: `Ok(0)` at the end of the stream, `WouldBlock` when nothing
/// has arrived.
pub fn peek(stream: &impl AsFd) -> io::Result<usize> {
    let mut byte = [std::mem::MaybeUninit::uninit()];
    socket2::SockRef::from(stream).recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
}

/// A peer whose leaving can be told without waiting: a client's
/// connection, which [`WatchingClose`] watches.
pub trait Leaving: AsRawFd {
    /// Whether the peer closed the connection (or it broke) with nothing
    /// left unread, as far as a look without waiting tells.
    fn peer_gone(&self) -> bool;
}

impl Leaving for TcpStream {
    fn peer_gone(&self) -> bool {
        peer_gone(self)
    }
}

impl Leaving for ClientStream {
    fn peer_gone(&self) -> bool {
        match self {
            ClientStream::Tcp(s) => peer_gone(s),
            ClientStream::Tls(s) => s.peer_gone(),
        }
    }
}

/// Whether the peer of `stream` closed it (or it broke) with nothing left
/// unread, as far as a look without waiting tells.
pub fn peer_gone(stream: &impl AsFd) -> bool {
    loop {
        match peek(stream) {
            Ok(n) => return n == 0,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return e.kind() != io::ErrorKind::WouldBlock,
        }
    }
}

pub(super) fn read_retrying<S: Read + ?Sized>(stream: &mut S, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Whether opening a connection failed for want of this process's or
/// this machine's resources (descriptors, memory), not because of the
/// peer: no reason to think less of the backend, nor to try another.
/// Not EADDRNOTAVAIL: local ports run out per destination (another
/// target may still be reached), as its address may be unusable.
pub fn is_local_shortage(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Whether an I/O error is a timeout (`set_read_timeout` reports either
/// kind depending on the platform).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// `write_all` for several buffers at once (`Write::write_all_vectored` is
/// not stable yet): one `writev` in the common case.
pub fn write_all_vectored(out: &mut impl Write, bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    write_all_vectored_counting(out, bufs).1
}

/// [`write_all_vectored`], also saying how many bytes went out, all of
/// them or, on an error, those before it.
pub fn write_all_vectored_counting(
    out: &mut impl Write,
    mut bufs: &mut [IoSlice<'_>],
) -> (usize, io::Result<()>) {
    IoSlice::advance_slices(&mut bufs, 0);
    let mut written = 0;
    while !bufs.is_empty() {
        match out.write_vectored(bufs) {
            Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                written += n;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Err(e)),
        }
    }
    (written, Ok(()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reader that hands out one byte per call, as a slow peer would.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn accumulates_until_taken() {
        let mut c = BufConn::new(Trickle(b"abcdef"), 4);
        while c.fill().unwrap() > 0 {}
        assert_eq!(c.buffered(), b"abcdef");
        assert_eq!(c.take(2), b"ab");
        assert_eq!(c.buffered(), b"cdef");
    }

    #[test]
    fn taken_bytes_are_joined_over_those_skipped_between() {
        let mut c = BufConn::new(&b"ab--cd-ef+"[..], 16);
        c.fill().unwrap();
        c.consume(2);
        c.consume(2);
        assert_eq!(c.take_joined(2, 2, 2), b"abcd");
        c.consume(1);
        assert_eq!(c.take_joined(4, 3, 2), b"abcdef");
        assert_eq!(c.take_joined(6, 3, 0), b"abcdef");
        assert_eq!(c.buffered(), b"+");
    }

    #[test]
    fn release_then_fill_again() {
        let mut c = BufConn::new(&b"hello world, again"[..], 8);
        // The probe takes all that fits in it, more than `capacity`.
        assert_eq!(c.fill().unwrap(), 18);
        c.consume(18);
        c.release_if_empty();
        assert!(c.buf.is_empty());
        assert_eq!(c.fill().unwrap(), 0);
        assert!(c.buf.is_empty(), "nothing read, nothing allocated");
    }

    #[test]
    fn without_a_probe_a_read_that_cannot_wait_takes_what_came_in_one_read() {
        let (mut far, near) = loopback_pair();
        let message = vec![b'x'; 3 * PROBE_BYTES];
        for (probe, first_read) in [(true, PROBE_BYTES), (false, message.len())] {
            let mut c = BufConn::new(near.try_clone().unwrap(), 4 * PROBE_BYTES);
            if !probe {
                c = c.without_probe();
            }
            // Nothing there: no buffer kept.
            assert_eq!(c.fill_now().unwrap_err().kind(), io::ErrorKind::WouldBlock);
            assert!(c.buf.is_empty(), "probe: {probe}");
            far.write_all(&message).unwrap();
            assert!(readable_within(near.as_raw_fd(), Duration::from_secs(10)).unwrap());
            let mut got = c.fill_now().unwrap();
            assert_eq!(got, first_read, "probe: {probe}");
            while got < message.len() {
                got += c.fill().unwrap();
            }
            c.consume(got);
            c.release_if_empty();
        }
    }

    /// Both ends of a loopback TCP connection: (the connecting end, the
    /// accepted end).
    pub(crate) fn loopback_pair() -> (TcpStream, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (near, listener.accept().unwrap().0)
    }

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
            (Box::new(tcp_backend), Stream::Tcp(tcp_proxy_side)),
            (Box::new(unix_backend), Stream::Unix(unix_proxy_side)),
        ];
        for (mut backend, proxy_side) in backends {
            let (client, watched) = loopback_pair();
            let unix = matches!(proxy_side, Stream::Unix(_));
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
        let mut conn = BufConn::new(Stream::Tcp(proxy_side), 64);
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

    #[test]
    fn fill_now_never_waits() {
        let (mut near, far) = loopback_pair();
        let mut c = BufConn::new(far, 8);
        let nothing = c.fill_now().unwrap_err();
        assert_eq!(nothing.kind(), io::ErrorKind::WouldBlock);
        assert!(c.buf.is_empty(), "nothing read, nothing allocated");
        near.write_all(b"hello").unwrap();
        assert_eq!(c.fill_now().unwrap(), 5);
        assert_eq!(c.buffered(), b"hello");
        drop(near);
        let mut ended = false;
        for _ in 0..500 {
            match c.fill_now() {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(ended, "the end of the stream reads as 0");
    }

    /// Segments the peer sent that we have not acknowledged, as the
    /// sender's kernel counts them.
    fn unacknowledged(sender: &TcpStream) -> u32 {
        // SAFETY: `tcp_info` is plain integers, so all-zero is valid;
        // getsockopt writes at most `len` bytes into it.
        unsafe {
            let mut info: libc::tcp_info = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
            let got = libc::getsockopt(
                sender.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            );
            assert_eq!(got, 0, "{}", io::Error::last_os_error());
            info.tcpi_unacked
        }
    }

    #[test]
    fn a_read_inside_a_message_acknowledges_before_it_waits() {
        let (mut sender, receiver) = loopback_pair();
        // A new connection acknowledges its first segments at once; turn
        // that off, as it is on a connection that has carried a few.
        socket2::SockRef::from(&receiver)
            .set_quickack(false)
            .unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_millis(1)))
            .unwrap();
        let mut c = BufConn::new(receiver, 64);
        sender.write_all(b"first part").unwrap();
        assert_eq!(
            c.fill_midway().unwrap(),
            10,
            "what is there is read at once"
        );
        // The rest has not come: the read waits (here, until its timeout),
        // and has told the sender first that the first part arrived,
        // instead of letting the kernel hold that back for up to 40 ms.
        let waited = c.fill_midway().unwrap_err();
        assert!(is_timeout(&waited), "{waited}");
        assert_eq!(unacknowledged(&sender), 0);
        sender.write_all(b", the rest").unwrap();
        assert_eq!(c.fill_midway().unwrap(), 10);
        assert_eq!(c.buffered(), b"first part, the rest");
    }

    #[test]
    fn compacts_instead_of_growing_when_possible() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut c = BufConn::new(&data[..], 16);
        let mut seen = Vec::new();
        loop {
            if c.fill().unwrap() == 0 {
                break;
            }
            let n = c.buffered().len();
            seen.extend_from_slice(c.take(n));
        }
        assert_eq!(seen, data);
        assert!(c.buf.len() <= data.len());
    }
}
