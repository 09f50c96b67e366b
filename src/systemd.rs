//! systemd's readiness protocol (`sd_notify(3)`): under a unit of
//! `Type=notify` (or `notify-reload`), systemd counts the service as
//! started once its listeners are bound, not once the process exists, and
//! `systemctl reload` waits for a reload to be done, as with HAProxy's
//! master. Written without libsystemd: one datagram to `$NOTIFY_SOCKET`
//! per change of state; without that variable (not under systemd, or
//! another `Type=`), nothing is sent.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// How long start-up may take once it says it is loading the cache
/// snapshot (`EXTEND_TIMEOUT_USEC`), beyond the unit's own start timeout.
pub const SNAPSHOT_LOAD_ALLOWANCE: Duration = Duration::from_secs(600);

/// Longest `STATUS=` text sent: systemd reads a notification into 4 KiB,
/// and drops (or cuts) a longer one, whose `READY=1` would be lost with it.
const MAX_STATUS: usize = 1024;

/// `text` as one `STATUS=` line: its line ends made spaces, other
/// control characters escaped (systemd ignores a notification with a NUL
/// in it, and `systemctl status` would pass an escape sequence on to the
/// terminal), cut to [`MAX_STATUS`] bytes at a character's end.
pub fn status_line(text: &str) -> String {
    let mut line = crate::config::escape_controls(&text.replace(['\n', '\r'], " "));
    if line.len() > MAX_STATUS {
        let mut end = MAX_STATUS - 3;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str("...");
    }
    line
}

/// Tells systemd `state` (`READY=1`, `STOPPING=1`, ... one per line). A
/// notification that cannot be sent is a warning: the proxy serves
/// whether systemd heard of it or not.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&socket, state) {
        let what = state.lines().next().unwrap_or_default();
        log::warn!(
            "cannot tell systemd {what} at NOTIFY_SOCKET {}: {e}",
            socket.to_string_lossy()
        );
    }
}

/// The start of a reload, as `Type=notify-reload` needs it said: with the
/// time of the monotonic clock, so that systemd can tell it from an
/// earlier one.
pub fn reloading() {
    notify(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}",
        monotonic_micros()
    ));
}

fn send(socket: &OsStr, state: &str) -> io::Result<()> {
    let name = socket.as_bytes();
    // `@` stands for the abstract namespace's leading NUL.
    let addr = match name.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&name[1..])?,
        Some(b'/') => SocketAddr::from_pathname(socket)?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither a path nor an abstract socket name (`@...`)",
            ))
        }
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// `CLOCK_MONOTONIC`, in microseconds: the clock systemd reads.
fn monotonic_micros() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill; the clock
    // always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let secs = u64::try_from(now.tv_sec).unwrap_or_default();
    let micros = u64::try_from(now.tv_nsec / 1000).unwrap_or_default();
    secs.saturating_mul(1_000_000).saturating_add(micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn received(listener: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = listener.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn a_state_goes_to_a_path_or_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        send(path.as_os_str(), "READY=1\nSTATUS=serving").unwrap();
        assert_eq!(received(&listener), "READY=1\nSTATUS=serving");

        let name = format!("inverso-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        send(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        assert_eq!(received(&listener), "STOPPING=1");

        let e = send(OsStr::new("relative"), "READY=1").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_status_is_one_line_of_at_most_a_kib() {
        assert_eq!(status_line("a\nb\r\nc"), "a b  c");
        assert_eq!(status_line("a\0b\x1b[2J"), "a\\u{0}b\\u{1b}[2J");
        let long = status_line(&"é".repeat(1000));
        assert!(
            long.len() <= MAX_STATUS && long.ends_with("..."),
            "{}",
            long.len()
        );
        assert!(long.starts_with("éé"));
    }

    #[test]
    fn the_monotonic_clock_goes_forward() {
        let (a, b) = (monotonic_micros(), monotonic_micros());
        assert!(a > 0 && b >= a, "{a} {b}");
    }
}
