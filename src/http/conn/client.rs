//! A client's connection ([`ClientStream`]): plain TCP, or TLS over it.

use super::sys::peek;
use super::Socket;
use crate::http::tls::TlsStream;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

/// A client's connection: plain TCP, or TLS over it (`tls_port`). An enum, as
/// [`Stream`](super::Stream) is: a plain connection pays one branch per call.
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

    /// Gives back what the connection holds for reading while nothing is in it,
    /// as [`BufConn::release_if_empty`](super::BufConn::release_if_empty) does:
    /// a TLS connection idle for a while keeps no record buffer (its wait
    /// takes one again only once a record comes).
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
