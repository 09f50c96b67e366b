//! `poll(2)`: a wait for any of several sockets to be ready.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// A `poll` entry asking `events` of `fd` (a negative one is skipped).
pub fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// `poll(2)` on `fds` for up to `patience` (at most `i32::MAX` ms):
/// how many have events.
pub fn poll(fds: &mut [libc::pollfd], patience: Duration) -> io::Result<usize> {
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
