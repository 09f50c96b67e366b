//! What a [`BufConn`](super::BufConn) reads from, and a read inside a
//! message that acknowledges what came before it waits.

use super::sys::read_retrying;
use super::{SharedStream, Socket};
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::RawFd;

/// What a [`BufConn`](super::BufConn) reads from.
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
    let read = match stream.read_now(buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            stream.ack_now();
            read_retrying(&mut &*stream, buf)
        }
        done => done,
    };
    end_midway(stream, read)
}

/// `read_acking` whose waits are `wait`'s (given the socket): `Ok(false)`
/// reads nothing (`Ok(0)`). Each time `wait` says the socket has
/// something, what came is read without waiting, and `wait` is asked
/// again when that gave no byte: over TLS, what makes the socket readable
/// may carry no data (a TLS 1.3 session ticket or key update, part of a
/// record), and a read that then waited would wait out the socket's whole
/// timeout, past the caller's patience and blind to what `wait` watches.
/// So `wait` must not say yes without a readable socket (or an end).
pub(super) fn read_acking_or<S: Socket>(
    stream: &S,
    buf: &mut [u8],
    mut wait: impl FnMut(RawFd) -> io::Result<bool>,
) -> io::Result<usize>
where
    for<'a> &'a S: Read,
{
    let mut acked = false;
    let read = loop {
        match stream.read_now(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => break done,
        }
        if !acked {
            stream.ack_now();
            acked = true;
        }
        if !wait(stream.as_raw_fd())? {
            return Ok(0);
        }
    };
    end_midway(stream, read)
}

/// What a read inside a message gave: an end that may have been anyone's
/// (a TLS connection cut without `close_notify`) is none.
fn end_midway(stream: &impl Socket, read: io::Result<usize>) -> io::Result<usize> {
    match read {
        Ok(0) if stream.cut_short() => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the TLS connection ended without close_notify",
        )),
        read => read,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::conn::tests::loopback_pair;
    use crate::http::conn::{is_timeout, BufConn};
    use std::io::Write;
    use std::os::fd::AsRawFd;

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
}
