//! Writing buffers whole, or unless the peer answers first.

use super::sys::peek;
use super::{Kind, Socket, Stream};
use crate::poll::{poll, pollfd};
use std::io::{self, IoSlice, Write};
use std::time::Duration;

/// Writes `bufs` whole to `stream`, unless its peer speaks first: each
/// time the socket takes no more, waits (up to the socket's write
/// timeout, as a blocking write would) for it to take more or for the
/// peer to send something, and then asks `answered` whether that is an
/// answer. `Ok(false)`: it was, and not everything went. A blocking write
/// would sit out the whole timeout, or until the peer closes, when the
/// peer has answered and stopped reading (a backend's 413 to an upload,
/// RFC 9112 §9.5). After `answered` says no, the peer's bytes are not
/// waited on again until more has gone (its end, say, would otherwise
/// wake every wait at once). What went is counted in the stream's
/// [`Stream::sent`].
pub fn write_all_unless_answered(
    stream: &Stream,
    bufs: &mut [IoSlice<'_>],
    answered: impl FnMut() -> bool,
) -> io::Result<bool> {
    let sent = match stream.kind() {
        Kind::Tls(s) => s.write_all_unless_answered(bufs, answered),
        Kind::Fcgi(s) => s.write_all_unless_answered(bufs, answered),
        _ => send_all_unless_answered(stream, bufs, answered),
    }?;
    stream.count_sent(sent.bytes);
    Ok(sent.whole)
}

/// How a write that stops when the peer answers ended: whether all went,
/// and how many bytes did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub whole: bool,
    pub bytes: u64,
}

/// [`write_all_unless_answered`] on the socket itself: `bufs` go as
/// they are.
pub(in crate::http) fn send_all_unless_answered(
    stream: &impl Socket,
    mut bufs: &mut [IoSlice<'_>],
    mut answered: impl FnMut() -> bool,
) -> io::Result<Sent> {
    let socket = socket2::SockRef::from(stream);
    let mut bytes = 0;
    let mut watch_peer = true;
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match socket.send_vectored_with_flags(bufs, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                IoSlice::advance_slices(&mut bufs, n);
                bytes += n as u64;
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
                return Ok(Sent {
                    whole: false,
                    bytes,
                });
            }
            // Watched again only when `answered` took all there was: over
            // TLS, records that carry no data (a TLS 1.3 session ticket,
            // sent right after the handshake) wake the wait and are read
            // into the session, and the answer may come after them. What
            // is left, the peer's end above all, would wake it at once.
            watch_peer = matches!(peek(stream), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        }
    }
    Ok(Sent { whole: true, bytes })
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
