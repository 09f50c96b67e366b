//! What code that serves a client and a backend alike needs of a socket
//! ([`Socket`]).

use super::sys::recv_now;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

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
    /// Whether the stream ended in a way that says nothing of whether the peer
    /// meant it to end there: a backend's TLS without `close_notify` (see
    /// [`TlsStream::cut_short`](crate::http::tls::TlsStream::cut_short)). A
    /// client's end is taken as it comes, as everyone takes it.
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
