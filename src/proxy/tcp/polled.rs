//! Both directions of a stream's connection copied by one thread: both
//! sockets non-blocking, `poll` waiting for whichever can move bytes next.
//! The tunnel of an upgraded HTTP connection gives each direction a
//! thread of its own (and may speak TLS to its backend); a stream's
//! connection to a plain TCP or Unix target needs no second thread, whose
//! start would cost each connection as much as the rest of its work
//! (`Connection: close` through a TCP proxy opens one a request), nor
//! does one whose client's TLS the stream ended: the session is read and
//! written without waiting, its records the socket did not take sent as
//! it takes them.
//!
//! Each direction reads its source into a buffer of its own and writes
//! it out as its destination takes it; a source's end is passed on as a
//! half-close once what came before it went, while the other direction
//! goes on. The connection ends when both directions have, when a read
//! or write fails (the side at fault named, the other given a lingering
//! close), or when nothing has moved either way for `idle`.

use super::super::tunnel::Relayed;
use crate::access_log::{By, Stage, Termination};
use crate::pace::Pacing;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

/// Bytes each direction holds at most between its read and its write.
const BUFFER: usize = 16 * 1024;
/// Turns yielded before a wait, and waits made without yielding after
/// yields that found nothing: as `sched`'s before a worker's read.
const YIELDS: u8 = 3;
const SKIP_AFTER_MISS: u8 = 4;

/// A socket as both directions use it: read and written without waiting
/// (`WouldBlock` when it can take or give nothing now), half-closed.
pub(super) trait Side: AsFd + Sized {
    fn socket(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(self)
    }

    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.socket()).read(buf)
    }

    fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        (&*self.socket()).write(buf)
    }

    /// Whether bytes it took wait to go out (a TLS session's records).
    fn unsent(&self) -> bool {
        false
    }

    /// Sends what it can of those bytes.
    fn send_unsent(&self) -> io::Result<()> {
        Ok(())
    }

    /// Says the end of what it is sent.
    fn end_writing(&self) {
        let _ = self.socket().shutdown(Shutdown::Write);
    }
}

impl Side for std::net::TcpStream {}
impl Side for std::os::unix::net::UnixStream {}
impl Side for crate::http::conn::Stream {}

/// A client's TLS session, ended by the stream: its plaintext read and
/// written, its records going out as the socket takes them.
impl Side for crate::http::tls::TlsStream {
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        crate::http::tls::TlsStream::read_now(self, buf)
    }

    fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        // Nothing taken while earlier records wait for room.
        match crate::http::tls::TlsStream::write_now(self, &[io::IoSlice::new(buf)])? {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            taken => Ok(taken),
        }
    }

    fn unsent(&self) -> bool {
        self.has_unsent()
    }

    fn send_unsent(&self) -> io::Result<()> {
        crate::http::tls::TlsStream::write_now(self, &[]).map(drop)
    }

    /// `close_notify`, then the end of the TCP stream.
    fn end_writing(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// One direction: from a source to a destination, through its buffer.
struct Direction {
    buf: Box<[u8]>,
    /// What the buffer holds still to write: `buf[start..end]`.
    start: usize,
    end: usize,
    /// The source has ended (its end passed on once the buffer is
    /// written).
    source_ended: bool,
    /// Nothing more goes this way: the end passed on, or a failure.
    done: bool,
    copied: u64,
    /// What was read since the last wait (see [`Direction::ack_if_bulk`]).
    burst: usize,
    /// Who the source and the destination are, for a failure's blame.
    source: By,
    destination: By,
    /// How fast the source is read (`upload_rate=`, `download_rate=`),
    /// counted from `began`; and, when it is ahead, when it may read next.
    pacing: Pacing,
    began: Instant,
    paused_until: Option<Instant>,
}

impl Direction {
    fn new(source: By, destination: By, pacing: Pacing) -> Direction {
        Direction {
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            source_ended: false,
            done: false,
            copied: 0,
            burst: 0,
            source,
            destination,
            pacing,
            began: Instant::now(),
            paused_until: None,
        }
    }

    fn pending(&self) -> bool {
        self.start < self.end
    }

    fn wants_read(&self) -> bool {
        !self.done && !self.source_ended && !self.pending()
    }

    fn wants_write(&self) -> bool {
        !self.done && self.pending()
    }

    /// Whether a wait is for its source to have bytes: it wants them,
    /// and its pacing lets it read.
    fn waits_to_read(&self) -> bool {
        self.wants_read() && self.paused_until.is_none()
    }

    /// How many bytes it may read now (a buffer's worth, or what its
    /// pacing allows); `None`, paused until some may.
    fn room(&mut self) -> Option<usize> {
        if self.pacing.is_off() {
            return Some(self.buf.len());
        }
        let allowed = (self.pacing).allowed(self.copied, self.began.elapsed(), self.buf.len());
        self.paused_until = allowed.err().map(|wait| Instant::now() + wait);
        allowed.ok()
    }

    /// Moves what it can without waiting: whether anything moved, and
    /// the side whose failure ended it, if one did.
    fn step(&mut self, from: &impl Side, to: &impl Side) -> (bool, Option<By>) {
        let mut moved = false;
        if !self.done && to.unsent() && to.send_unsent().is_err() {
            return (moved, Some(self.fail(self.destination)));
        }
        while !self.done {
            if self.wants_read() {
                let Some(room) = self.room() else {
                    return (moved, None);
                };
                match from.read_now(&mut self.buf[..room]) {
                    Ok(0) => self.source_ended = true,
                    Ok(n) => {
                        (self.start, self.end, moved) = (0, n, true);
                        self.burst += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (moved, None),
                    Err(_) => return (moved, Some(self.fail(self.source))),
                }
            }
            if self.pending() {
                match to.write_now(&self.buf[self.start..self.end]) {
                    // A socket takes a byte or says why not: never nothing.
                    Ok(0) => return (moved, Some(self.fail(self.destination))),
                    Ok(n) => {
                        self.start += n;
                        self.copied += n as u64;
                        moved |= n > 0;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (moved, None),
                    Err(_) => return (moved, Some(self.fail(self.destination))),
                }
            } else if self.source_ended {
                // What the destination took goes before its end.
                if to.unsent() {
                    return (moved, None);
                }
                to.end_writing();
                self.done = true;
            }
        }
        (moved, None)
    }

    /// Before a wait: a source that sent a buffer's worth or more since
    /// the last is in the middle of something large, and may hold its
    /// last, partial segment until what it sent is acknowledged (Nagle),
    /// which Linux delays up to 40 ms: the acknowledgement goes now
    /// (`TCP_QUICKACK`; nothing on a Unix socket), as a worker's read
    /// inside a body sends it.
    fn ack_if_bulk(&mut self, from: &impl Side) {
        if std::mem::take(&mut self.burst) >= BUFFER {
            let _ = from.socket().set_quickack(true);
        }
    }

    fn fail(&mut self, by: By) -> By {
        self.done = true;
        by
    }
}

/// Copies `client` to `up` and back on this thread alone, until both
/// directions have ended, one fails, or nothing has moved for `idle`.
///
/// A side's failure ends the connection: the other side is told the end
/// of the stream after what it was sent, and given [`CLOSE_GRACE`] to
/// close in turn (a lingering close: closed at once with unread bytes,
/// the socket would reset, and a reset can destroy what is still on its
/// way to that side). Idling out closes both at once.
///
/// `crowded` (see [`crate::sched::crowded`]): before a wait, the thread
/// yields its turn a few times, looking again after each, as a worker
/// does before a read: under load the bytes come while others run, and
/// the sleep and the wake-up are saved.
///
/// `pacing`: how fast the client is read (`upload_rate=`), and the target
/// (`download_rate=`): a direction ahead of its rate reads nothing until
/// it may (its source's bytes wait in the sockets' buffers, as nginx's
/// `proxy_upload_rate` and `proxy_download_rate` leave them).
pub(super) fn relay(
    client: &impl Side,
    up: &impl Side,
    idle: Duration,
    crowded: &dyn Fn() -> bool,
    [upload, download]: [Pacing; 2],
) -> Relayed {
    let mut upward = Direction::new(By::Client, By::Server, upload);
    let mut downward = Direction::new(By::Server, By::Client, download);
    let relayed = |upward: &Direction, downward: &Direction, ended| Relayed {
        to_client: downward.copied,
        to_backend: upward.copied,
        ended,
    };
    let nonblocking = [client.socket(), up.socket()]
        .iter()
        .try_for_each(|s| s.set_nonblocking(true));
    if nonblocking.is_err() {
        close(client, up);
        let failed = Termination::new(By::Resource, Stage::Data);
        return relayed(&upward, &downward, Some(failed));
    }
    let mut last_moved = Instant::now();
    // Yields left before the next wait, and waits left without yielding
    // after yields that did not pay off.
    let (mut yields, mut skip) = (YIELDS, 0);
    while !(upward.done && downward.done) {
        let (up_moved, up_failed) = upward.step(client, up);
        let (down_moved, down_failed) = downward.step(up, client);
        if let Some(at_fault) = up_failed.or(down_failed) {
            match at_fault {
                By::Client => linger(up, client),
                _ => linger(client, up),
            }
            let failed = Termination::new(at_fault, Stage::Data);
            return relayed(&upward, &downward, Some(failed));
        }
        if up_moved || down_moved {
            last_moved = Instant::now();
            yields = YIELDS;
            continue;
        }
        if upward.done && downward.done {
            break;
        }
        if yields > 0 && skip == 0 && crowded() {
            yields -= 1;
            std::thread::yield_now();
            continue;
        }
        skip = match yields {
            0 => SKIP_AFTER_MISS,
            _ => skip.saturating_sub(1),
        };
        upward.ack_if_bulk(client);
        downward.ack_if_bulk(up);
        let left = idle.saturating_sub(last_moved.elapsed());
        // A paced direction's turn is no activity: only a wait as long as
        // the idle time left can find the connection idle.
        let resume = [upward.paused_until, downward.paused_until]
            .into_iter()
            .flatten()
            .min();
        let patience = resume.map_or(left, |at| {
            left.min(at.saturating_duration_since(Instant::now()))
        });
        if !left.is_zero() && patience < left {
            wait(client, up, [&upward, &downward], patience);
            upward.paused_until = None;
            downward.paused_until = None;
            continue;
        }
        if left.is_zero() || !wait(client, up, [&upward, &downward], left) {
            close(client, up);
            // Bytes the backend has not taken tell it stalled; otherwise
            // the client's timeout, as HAProxy's `timeout tunnel` is told.
            let by = match upward.pending() && !downward.pending() {
                true => By::ServerTimeout,
                false => By::ClientTimeout,
            };
            return relayed(&upward, &downward, Some(Termination::new(by, Stage::Data)));
        }
    }
    relayed(&upward, &downward, None)
}

/// How long a side is given to close after the other failed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

fn close(client: &impl Side, up: &impl Side) {
    let _ = client.socket().shutdown(Shutdown::Both);
    let _ = up.socket().shutdown(Shutdown::Both);
}

/// `failed` is shut; `left` is told the end of the stream and read (what
/// it sends dropped) until it closes, or for [`CLOSE_GRACE`].
fn linger(left: &impl Side, failed: &impl Side) {
    let _ = failed.socket().shutdown(Shutdown::Both);
    let _ = left.socket().shutdown(Shutdown::Write);
    let until = Instant::now() + CLOSE_GRACE;
    let mut dropped = [0u8; 4096];
    loop {
        match (&*left.socket()).read(&mut dropped) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
        let grace = until.saturating_duration_since(Instant::now());
        if grace.is_zero() || !poll(&mut [interest(left, true, false)], grace) {
            let _ = left.socket().shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Waits for either socket to be ready for what the directions want of
/// it (`upward` reads `client`, `downward` reads `up`), for at most
/// `left`: whether one is.
fn wait(
    client: &impl Side,
    up: &impl Side,
    [upward, downward]: [&Direction; 2],
    left: Duration,
) -> bool {
    let mut fds = [
        interest(
            client,
            upward.waits_to_read(),
            downward.wants_write() || client.unsent(),
        ),
        interest(
            up,
            downward.waits_to_read(),
            upward.wants_write() || up.unsent(),
        ),
    ];
    poll(&mut fds, left)
}

/// What a wait on `side` asks of it. A socket nothing is asked of is
/// left out (-1, which `poll` skips): its hang-up would end every wait
/// at once.
fn interest(side: &impl AsFd, reads: bool, writes: bool) -> libc::pollfd {
    let events = (if reads { libc::POLLIN } else { 0 }) | (if writes { libc::POLLOUT } else { 0 });
    libc::pollfd {
        fd: if events == 0 {
            -1
        } else {
            side.as_fd().as_raw_fd()
        },
        events,
        revents: 0,
    }
}

/// Waits for at most `left` for one of `fds` to be ready: whether one is
/// (a wait the system refuses is told as none).
fn poll(fds: &mut [libc::pollfd], left: Duration) -> bool {
    crate::poll::poll(fds, left).is_ok_and(|ready| ready > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::thread;

    /// A relay between two socket pairs, on a thread: the client's end,
    /// the backend's end, and the relay's outcome.
    fn relayed(idle: Duration) -> (UnixStream, UnixStream, thread::JoinHandle<Relayed>) {
        let (client, client_side) = UnixStream::pair().unwrap();
        let (up, up_side) = UnixStream::pair().unwrap();
        let relay =
            thread::spawn(move || relay(&client_side, &up_side, idle, &|| false, [Pacing::OFF; 2]));
        (client, up, relay)
    }

    #[test]
    fn each_end_is_passed_on_after_what_came_before_it() {
        let (mut client, mut up, relay) = relayed(Duration::from_secs(10));
        client.write_all(b"question").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut asked = Vec::new();
        up.read_to_end(&mut asked).unwrap();
        assert_eq!(asked, b"question");
        // The other way still goes after the client's end.
        up.write_all(b"the answer").unwrap();
        drop(up);
        let mut answered = Vec::new();
        client.read_to_end(&mut answered).unwrap();
        assert_eq!(answered, b"the answer");
        let relayed = relay.join().unwrap();
        assert_eq!((relayed.to_backend, relayed.to_client), (8, 10));
        assert_eq!(relayed.ended, None);
    }

    #[test]
    fn under_load_it_yields_a_few_turns_and_still_waits_and_ends() {
        let (client, client_side) = UnixStream::pair().unwrap();
        let (mut up, up_side) = UnixStream::pair().unwrap();
        let looks = std::sync::atomic::AtomicUsize::new(0);
        let crowded = || {
            looks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            true
        };
        let relayed = thread::scope(|scope| {
            let relay = scope.spawn(|| {
                relay(
                    &client_side,
                    &up_side,
                    Duration::from_millis(100),
                    &crowded,
                    [Pacing::OFF; 2],
                )
            });
            let mut client = client;
            client.write_all(b"ping").unwrap();
            let mut got = [0; 4];
            up.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"ping");
            relay.join().unwrap()
        });
        // Silence then: it yielded before its first waits, then waited
        // (the idle timeout came), rather than yield on and on.
        assert_eq!(
            relayed.ended,
            Some(Termination::new(By::ClientTimeout, Stage::Data))
        );
        let looked = looks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            (1..=2 * usize::from(YIELDS)).contains(&looked),
            "{looked} looks"
        );
    }

    #[test]
    fn a_destination_slow_to_take_its_bytes_is_waited_for() {
        let (mut client, mut up, relay) = relayed(Duration::from_secs(5));
        // More than the sockets and the relay hold: its writes to the
        // backend wait for room, which comes once the backend reads.
        let sent = vec![7u8; 1 << 20];
        let writer = thread::spawn(move || {
            client.write_all(&sent).unwrap();
            client.shutdown(Shutdown::Write).unwrap();
            client
        });
        thread::sleep(Duration::from_millis(300));
        let mut got = Vec::new();
        up.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), 1 << 20);
        drop(up);
        drop(writer.join().unwrap());
        let relayed = relay.join().unwrap();
        assert_eq!((relayed.to_backend, relayed.ended), (1 << 20, None));
    }

    #[test]
    fn a_client_that_resets_is_the_one_that_aborted() {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let pair = || {
            let near = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            (near, listener.accept().unwrap().0)
        };
        let ((client, client_side), (_up, up_side)) = (pair(), pair());
        let relay = thread::spawn(move || {
            relay(
                &client_side,
                &up_side,
                Duration::from_secs(5),
                &|| false,
                [Pacing::OFF; 2],
            )
        });
        // Closed with bytes unread and no linger: a reset, not an end.
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client);
        let relayed = relay.join().unwrap();
        assert_eq!(
            relayed.ended.map(|t| t.as_str().to_string()),
            Some("CD".into())
        );
    }

    #[test]
    fn silence_both_ways_ends_it_as_the_client_s_timeout() {
        let (mut client, mut up, relay) = relayed(Duration::from_millis(50));
        let relayed = relay.join().unwrap();
        assert_eq!(
            relayed.ended,
            Some(Termination::new(By::ClientTimeout, Stage::Data))
        );
        // Both closed.
        assert_eq!(client.read(&mut [0; 8]).unwrap(), 0);
        assert_eq!(up.read(&mut [0; 8]).unwrap(), 0);
    }

    #[test]
    fn a_backend_that_takes_nothing_is_the_one_that_timed_out() {
        let (client, _up, relay) = relayed(Duration::from_millis(200));
        // More than the socket buffers and the relay's hold: the writer
        // blocks until the relay gives up and closes.
        let writer = thread::spawn(move || {
            let chunk = [7u8; 64 * 1024];
            let mut client = client;
            for _ in 0..1024 {
                if client.write_all(&chunk).is_err() {
                    return true;
                }
            }
            false
        });
        let relayed = relay.join().unwrap();
        assert_eq!(
            relayed.ended,
            Some(Termination::new(By::ServerTimeout, Stage::Data))
        );
        assert!(writer.join().unwrap(), "the client's writes never failed");
    }

    #[test]
    fn a_side_that_fails_ends_it_and_the_other_is_told_the_end() {
        let (mut client, up, relay) = relayed(Duration::from_secs(10));
        client.write_all(b"x").unwrap();
        // The backend goes away without reading: the next write to it fails.
        drop(up);
        client.write_all(b"more").unwrap();
        let relayed = relay.join().unwrap();
        assert_eq!(
            relayed.ended.map(|t| t.as_str().to_string()),
            Some("SD".into())
        );
        assert_eq!(
            client.read(&mut [0; 8]).unwrap(),
            0,
            "the client's end of stream"
        );
    }

    /// A paced direction may read the slice its rate credits it with at
    /// the start (one not paced, a buffer's worth); once ahead of its
    /// rate, it may read nothing, is paused for as long as the rate takes
    /// to earn the next slice, and meanwhile waits for no bytes.
    #[test]
    fn a_direction_ahead_of_its_rate_is_paused_until_its_next_slice_is_due() {
        let mut unpaced = Direction::new(By::Client, By::Server, Pacing::OFF);
        assert_eq!(unpaced.room(), Some(BUFFER));
        // 1 KiB a second: slices of 1 KiB, the first credited at once.
        let pacing = Pacing {
            rate: 1024,
            after: 0,
        };
        let mut paced = Direction::new(By::Client, By::Server, pacing);
        assert_eq!(paced.room(), Some(1024));
        assert!(paced.waits_to_read());
        // A minute's worth ahead: the next slice is a second away (then
        // looked at again).
        paced.copied = 61 * 1024;
        let before = Instant::now();
        assert_eq!(paced.room(), None);
        let paused_until = paced.paused_until.expect("paused");
        assert!(paused_until >= before + Duration::from_secs(1));
        assert!(paced.wants_read() && !paced.waits_to_read());
    }
}
