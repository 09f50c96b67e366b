//! The system calls under the reads and waits: `poll`, reads that never
//! wait, a look that takes nothing, a read retried through signals.

use std::io::{self, Read};
use std::os::fd::{AsFd, RawFd};
use std::time::Duration;

/// Whether `fd` has something to read (data, or its end) within `patience`.
pub(in crate::http) fn readable_within(fd: RawFd, patience: Duration) -> io::Result<bool> {
    let mut fds = [pollfd(fd, libc::POLLIN)];
    Ok(poll(&mut fds, patience)? > 0)
}

/// A `poll` entry asking `events` of `fd` (a negative one is skipped).
pub(super) fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// `poll(2)` on `fds` for up to `patience` (at most `i32::MAX` ms):
/// how many have events.
pub(super) fn poll(fds: &mut [libc::pollfd], patience: Duration) -> io::Result<usize> {
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
