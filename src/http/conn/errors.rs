//! What an I/O error says of its cause.

use std::io;

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
