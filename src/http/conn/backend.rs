//! A backend's connection ([`Stream`]): TCP, Unix or TLS.

use super::sys::{peek, recv_now};
use super::Socket;
use crate::http::fastcgi::FcgiStream;
use crate::http::tls::TlsStream;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A connection to a backend, and the bytes read from it and written to
/// it.
pub struct Stream {
    kind: Kind,
    /// Every byte read and written since it was opened: what one
    /// exchange received and sent is the difference over it
    /// (`$upstream_bytes_received`, `$upstream_bytes_sent`). Written only
    /// by the thread that has the connection checked out.
    received: AtomicU64,
    sent: AtomicU64,
    /// When it was opened, and the exchanges it was lent for: what
    /// `upstream_keepalive_time` and `upstream_keepalive_requests` limit.
    opened: Instant,
    lent: AtomicU64,
    /// The read and write timeout its socket has, in nanoseconds (0:
    /// none set yet), as [`Stream::time_out_after`] set it.
    timeout: AtomicU64,
}

/// TCP, a Unix-domain stream socket (a `unix:PATH` target), TLS over
/// TCP (a target with `tls`), or FastCGI over either (with `fastcgi`).
/// An enum, not a trait object: each call on a TCP backend costs one
/// branch more than on the `TcpStream` itself, and nothing is allocated
/// or called through a pointer.
pub enum Kind {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream>),
    Fcgi(Box<FcgiStream>),
}

impl Kind {
    /// Whether its bytes are not the socket's: what a wait on the socket
    /// sees may give none (a TLS record that carries no data, a line of
    /// FastCGI's stderr), and what the layer holds already it does not
    /// see.
    pub fn is_layered(&self) -> bool {
        matches!(self, Kind::Tls(_) | Kind::Fcgi(_))
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Tcp(s) => s.fmt(f),
            Kind::Unix(s) => s.fmt(f),
            Kind::Tls(s) => f.debug_tuple("Tls").field(s.tcp()).finish(),
            Kind::Fcgi(s) => s.fmt(f),
        }
    }
}

impl From<Kind> for Stream {
    fn from(kind: Kind) -> Stream {
        Stream {
            kind,
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            opened: Instant::now(),
            lent: AtomicU64::new(0),
            timeout: AtomicU64::new(0),
        }
    }
}

impl Stream {
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// Counts one more exchange on it.
    pub fn lend(&self) {
        add(&self.lent, 1);
    }

    /// Gives its socket `timeout` to read and write with, for the
    /// exchange it is lent for (its pool's `backend_timeout`, or a
    /// route's own). Each exchange sets what it needs and nothing is put
    /// back after it: the system calls are made only when an exchange
    /// wants another than the last one (after a route's own, the pool's
    /// again; a new connection's first).
    pub fn time_out_after(&self, timeout: Duration) -> io::Result<()> {
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        if self.timeout.load(Ordering::Relaxed) == nanos {
            return Ok(());
        }
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))?;
        self.timeout.store(nanos, Ordering::Relaxed);
        Ok(())
    }

    /// The exchanges it was lent for, and how long ago it was opened.
    pub fn used(&self) -> (u64, Duration) {
        (self.lent.load(Ordering::Relaxed), self.opened.elapsed())
    }

    /// The bytes read from it since it was opened (its TLS records'
    /// contents over TLS, as they are read).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The bytes written to it since it was opened (over TLS, before
    /// they were encrypted).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn counted_read(&self, read: io::Result<usize>) -> io::Result<usize> {
        if let Ok(n) = read {
            add(&self.received, n as u64);
        }
        read
    }

    /// Counts what a write took.
    pub(super) fn count_sent(&self, n: u64) {
        add(&self.sent, n);
    }

    fn counted_write(&self, written: io::Result<usize>) -> io::Result<usize> {
        if let Ok(n) = written {
            self.count_sent(n as u64);
        }
        written
    }

    /// Whether bytes are waiting to be read, without reading or waiting:
    /// over TLS, plaintext or records that would give some (or end the
    /// connection).
    pub fn has_waiting(&self) -> bool {
        match &self.kind {
            Kind::Tls(s) => s.has_waiting(),
            Kind::Fcgi(s) => s.has_waiting(),
            _ => matches!(peek(self), Ok(n) if n > 0),
        }
    }

    /// Whether a pooled connection can carry another request: nothing
    /// came on it while it idled, not even the backend's close (anything
    /// at all would be a response nobody asked for). Over TLS, records
    /// that carry no data (a session ticket) do not count.
    pub fn still_open(&self) -> bool {
        match &self.kind {
            Kind::Tls(s) => !s.peer_gone() && !s.has_waiting(),
            Kind::Fcgi(s) => s.still_open(),
            _ => matches!(peek(self), Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        }
    }
}

/// One reader and one writer at a time (the thread that has the
/// connection): no add need be atomic as a whole.
fn add(count: &AtomicU64, n: u64) {
    count.store(count.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

impl Socket for Stream {
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.counted_read(match &self.kind {
            Kind::Tls(s) => s.read_now(buf),
            Kind::Fcgi(s) => s.read_now(buf),
            _ => recv_now(self.as_raw_fd(), buf),
        })
    }

    fn ack_now(&self) {
        match &self.kind {
            Kind::Tcp(s) => s.ack_now(),
            Kind::Tls(s) => s.tcp().ack_now(),
            Kind::Fcgi(s) => s.ack_now(),
            Kind::Unix(_) => {}
        }
    }

    fn cut_short(&self) -> bool {
        matches!(&self.kind, Kind::Tls(s) if s.cut_short())
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match &self.kind {
            Kind::Tcp(s) => s.shutdown(how),
            Kind::Unix(s) => s.shutdown(how),
            Kind::Tls(s) => s.shutdown(how),
            Kind::Fcgi(s) => Socket::shutdown(&**s, how),
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.kind {
            Kind::Tcp(s) => s.set_read_timeout(timeout),
            Kind::Unix(s) => s.set_read_timeout(timeout),
            Kind::Tls(s) => s.tcp().set_read_timeout(timeout),
            Kind::Fcgi(s) => s.set_read_timeout(timeout),
        }
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.kind {
            Kind::Tcp(s) => s.set_write_timeout(timeout),
            Kind::Unix(s) => s.set_write_timeout(timeout),
            Kind::Tls(s) => s.tcp().set_write_timeout(timeout),
            Kind::Fcgi(s) => s.set_write_timeout(timeout),
        }
    }

    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        match &self.kind {
            Kind::Tcp(s) => s.write_timeout(),
            Kind::Unix(s) => s.write_timeout(),
            Kind::Tls(s) => s.tcp().write_timeout(),
            Kind::Fcgi(s) => s.write_timeout(),
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.counted_read(match &self.kind {
            Kind::Tcp(s) => (&*s).read(buf),
            Kind::Unix(s) => (&*s).read(buf),
            Kind::Tls(s) => (&**s).read(buf),
            Kind::Fcgi(s) => (&**s).read(buf),
        })
    }
}

/// Writes to a Unix socket go out with `MSG_NOSIGNAL`, as std's do to a
/// TCP one: a backend that closed fails the write (`EPIPE`) rather than
/// raise `SIGPIPE`, whatever the process does with that signal (a Rust
/// `main` ignores it, an embedder's may not).
impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = match &self.kind {
            Kind::Tcp(s) => (&*s).write(buf),
            Kind::Unix(s) => socket2::SockRef::from(s).send_with_flags(buf, libc::MSG_NOSIGNAL),
            Kind::Tls(s) => (&**s).write(buf),
            Kind::Fcgi(s) => s.write_vectored(&[IoSlice::new(buf)]),
        };
        self.counted_write(written)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let written = match &self.kind {
            Kind::Tcp(s) => (&*s).write_vectored(bufs),
            Kind::Unix(s) => {
                socket2::SockRef::from(s).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
            }
            Kind::Tls(s) => (&**s).write_vectored(bufs),
            Kind::Fcgi(s) => s.write_vectored(bufs),
        };
        self.counted_write(written)
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
        match &self.kind {
            Kind::Tcp(s) => s.as_fd(),
            Kind::Unix(s) => s.as_fd(),
            Kind::Tls(s) => s.as_fd(),
            Kind::Fcgi(s) => s.as_fd(),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match &self.kind {
            Kind::Tcp(s) => s.as_raw_fd(),
            Kind::Unix(s) => s.as_raw_fd(),
            Kind::Tls(s) => s.as_raw_fd(),
            Kind::Fcgi(s) => s.as_raw_fd(),
        }
    }
}
