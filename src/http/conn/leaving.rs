//! Whether a peer has left, told without waiting.

use super::sys::peek;
use super::ClientStream;
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd};

/// A peer whose leaving can be told without waiting: a client's connection,
/// which [`WatchingClose`](super::WatchingClose) watches.
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
