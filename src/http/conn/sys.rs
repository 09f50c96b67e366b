//! The system calls under the reads and waits: reads that never wait, a
//! look that takes nothing, a read retried through signals.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use crate::poll::{poll, pollfd};

/// Whether `fd` has something to read (data, or its end) within `patience`.
pub(in crate::http) fn readable_within(fd: RawFd, patience: Duration) -> io::Result<bool> {
    let mut fds = [pollfd(fd, libc::POLLIN)];
    Ok(poll(&mut fds, patience)? > 0)
}

/// One `recv` that does not block, whatever the socket's mode.
pub(in crate::http) fn recv_now(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
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

/// Looks at what is waiting to be read on `stream` without taking it or
/// blocking: `Ok(0)` at the end of the stream, `WouldBlock` when nothing
/// has arrived.
pub fn peek(stream: &impl AsFd) -> io::Result<usize> {
    let mut byte = [std::mem::MaybeUninit::uninit()];
    socket2::SockRef::from(stream).recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
}

/// What the kernel measures of a TCP connection, as nginx's `$tcpinfo_*`
/// give it: the round-trip time and its variance (microseconds), the
/// congestion window (segments) and the receive space (bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    pub rtt: u32,
    pub rttvar: u32,
    pub snd_cwnd: u32,
    pub rcv_space: u32,
}

/// [`TcpInfo`] of `stream`, a TCP socket; `None` when the kernel says
/// nothing (not TCP, or closed).
pub fn tcp_info(stream: &impl AsRawFd) -> Option<TcpInfo> {
    // SAFETY: `tcp_info` is plain integers, so all-zero is valid; the
    // kernel writes at most `len` bytes into it, and says how many.
    let (info, len) = unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let got = libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        (got == 0).then_some((info, len))?
    };
    // An older kernel's shorter struct may stop before the last field read.
    let through_rcv_space = std::mem::offset_of!(libc::tcp_info, tcpi_rcv_space) + 4;
    (len as usize >= through_rcv_space).then_some(TcpInfo {
        rtt: info.tcpi_rtt,
        rttvar: info.tcpi_rttvar,
        snd_cwnd: info.tcpi_snd_cwnd,
        rcv_space: info.tcpi_rcv_space,
    })
}

pub(in crate::http) fn read_retrying<S: Read + ?Sized>(
    stream: &mut S,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_info_is_the_kernel_s_for_tcp_and_none_for_another_socket() {
        let (a, _b) = crate::http::conn::tests::loopback_pair();
        let info = tcp_info(&a).expect("a TCP socket's");
        assert!(info.snd_cwnd > 0 && info.rcv_space > 0, "{info:?}");
        let (unix, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(tcp_info(&unix), None);
    }
}
