//! The client's side of a streamed body: what it does not take at once
//! waits in a bounded backlog while the cache takes the response, and
//! each piece goes out in one `writev` with its framing.

use crate::http::body::chunk_size_line;
use crate::http::conn::write_all_vectored_counting;
use crate::http::conn::{ClientStream, Lag, Pending};
use crate::pace::Paced;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{IoSlice, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};

/// The client's side of a streamed body. While the cache takes the
/// response, what the client does not take at once (a slow reader, or
/// `limit_rate`) waits here, and the backend is read on at its own speed,
/// its waits sending the rest as the client takes it (see [`Pending`]):
/// the entry is stored, and the requests coalesced on it answered, once
/// the backend has sent it all, as nginx's buffering has it, not once
/// this client has read it. What waits is bounded by what the cache
/// stores (`max_object_size`), and by the cache's capacity for every
/// connection's together (but [`LEAST_BACKLOG`] each); past that bound, a
/// write waits for the client until no more than it waits, so that the
/// backend is then read at the client's pace, as any streamed body is.
/// (Without the shared bound, clients that read nothing of large
/// responses held `max_object_size` each, twice with the copy stored.)
pub(super) struct ClientOut<'a> {
    state: RefCell<OutState<'a>>,
}

/// What waits for the clients of every response being stored, and the
/// most that may (`cache_size`).
pub(super) struct ReadAhead<'a> {
    pub(super) held: &'a AtomicU64,
    pub(super) limit: u64,
}

struct OutState<'a> {
    to: Paced<&'a ClientStream>,
    /// What the client has not taken yet, oldest first.
    backlog: VecDeque<u8>,
    /// While writes go through `backlog` (the cache is taking the
    /// response): the most bytes kept waiting before a write waits for
    /// the client. `None`: writes go straight to it.
    bound: Option<usize>,
    /// Counts `backlog` among every connection's, while there is a bound.
    read_ahead: Option<ReadAhead<'a>>,
    /// Bytes that reached the client's socket, the head's among them.
    delivered: u64,
    /// A write failed: the client is gone. A lagging write has taken its
    /// bytes by then; the next write, or the flush, says so.
    failed: bool,
    /// Bytes dropped once the client was found gone, never to reach it:
    /// kept, they would hold memory and the read-ahead every connection
    /// shares for as long as the backend takes to send the rest.
    dropped: u64,
}

/// The least [`OutState::bound`] is brought down to when nothing is to be
/// stored after all.
const LEAST_BACKLOG: usize = 64 * 1024;

impl<'a> ClientOut<'a> {
    /// Writes through a backlog of at most `bound` bytes, counted in
    /// `read_ahead`, when given one, else straight to the client.
    pub(super) fn new(to: Paced<&'a ClientStream>, bound: Option<(u64, ReadAhead<'a>)>) -> Self {
        let (bound, read_ahead) = bound.unzip();
        let state = OutState {
            to,
            backlog: VecDeque::new(),
            bound: bound.map(|b| usize::try_from(b).unwrap_or(usize::MAX)),
            read_ahead,
            delivered: 0,
            failed: false,
            dropped: 0,
        };
        ClientOut {
            state: RefCell::new(state),
        }
    }

    pub(super) fn delivered(&self) -> u64 {
        self.state.borrow().delivered
    }

    /// Bytes written that have not reached the client yet.
    pub(super) fn unsent(&self) -> u64 {
        let state = self.state.borrow();
        state.backlog.len() as u64 + state.dropped
    }

    /// Nothing will be stored: what waits now is the most that will, and
    /// the backend is read as the client takes what comes after.
    pub(super) fn stop_reading_ahead(&self) {
        let state = &mut *self.state.borrow_mut();
        let waiting = state.backlog.len().max(LEAST_BACKLOG);
        state.bound = state.bound.map(|bound| bound.min(waiting));
    }
}

impl OutState<'_> {
    /// Sends what the client takes now from the backlog.
    fn send_now(&mut self) {
        // Over TLS, records of an earlier write may wait alone.
        let mut again = self.to.get_ref().has_unsent();
        while !self.failed && (!self.backlog.is_empty() || again) {
            again = false;
            let (front, back) = self.backlog.as_slices();
            match self
                .to
                .write_now(&[IoSlice::new(front), IoSlice::new(back)])
            {
                Ok(0) => break,
                Ok(n) => self.sent(n),
                Err(_) => self.fail(),
            }
        }
    }

    /// Sends what waits, waiting for the client, until no more than
    /// `keep` bytes do.
    fn send_until(&mut self, keep: usize) -> std::io::Result<()> {
        while self.backlog.len() > keep {
            let excess = self.backlog.len() - keep;
            let (front, back) = self.backlog.as_slices();
            let first = &front[..front.len().min(excess)];
            let second = &back[..excess - first.len()];
            let (written, result) = write_all_vectored_counting(
                &mut self.to,
                &mut [IoSlice::new(first), IoSlice::new(second)],
            );
            self.sent(written);
            if let Err(e) = result {
                self.fail();
                return Err(e);
            }
        }
        Ok(())
    }

    /// `n` more bytes of the backlog reached the client.
    fn sent(&mut self, n: usize) {
        self.backlog.drain(..n);
        self.delivered += n as u64;
        self.released(n);
    }

    /// `n` bytes no longer wait, among every connection's.
    fn released(&self, n: usize) {
        if let Some(ahead) = &self.read_ahead {
            ahead.held.fetch_sub(n as u64, Ordering::Relaxed);
        }
    }

    /// The client is gone: what waits for it is dropped.
    fn fail(&mut self) {
        self.failed = true;
        let dropped = std::mem::take(&mut self.backlog).len();
        self.dropped += dropped as u64;
        self.released(dropped);
    }

    /// `bytes` wait for the client, after what already did (dropped
    /// once it is gone).
    fn keep(&mut self, bytes: &[u8]) {
        if self.failed {
            self.dropped += bytes.len() as u64;
            return;
        }
        self.backlog.extend(bytes);
        if let Some(ahead) = &self.read_ahead {
            ahead.held.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
    }

    /// The most bytes that may wait for this client before `incoming`
    /// more join them: `bound`, less what every connection's together
    /// would keep beyond the cache's capacity (but [`LEAST_BACKLOG`]).
    fn room(&self, bound: usize, incoming: usize) -> usize {
        let after = self.backlog.len() + incoming;
        let most = match &self.read_ahead {
            None => bound,
            Some(ahead) => {
                let held = (ahead.held.load(Ordering::Relaxed)).saturating_add(incoming as u64);
                let over = usize::try_from(held.saturating_sub(ahead.limit)).unwrap_or(usize::MAX);
                bound.min(after.saturating_sub(over).max(LEAST_BACKLOG))
            }
        };
        most.saturating_sub(incoming)
    }
}

impl Drop for OutState<'_> {
    /// What still waits once the response is done no longer counts.
    fn drop(&mut self) {
        self.released(self.backlog.len());
    }
}

impl Write for &ClientOut<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    /// Takes all of `bufs` while lagging (sending what the client takes
    /// now, and waiting for it only past the bound); else writes, waiting
    /// for the client.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        let state = &mut *self.state.borrow_mut();
        let Some(bound) = state.bound else {
            let n = state.to.write_vectored(bufs)?;
            state.delivered += n as u64;
            return Ok(n);
        };
        if state.failed {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        let mut skip = 0;
        if state.backlog.is_empty() {
            match state.to.write_now(bufs) {
                Ok(n) => {
                    state.delivered += n as u64;
                    skip = n;
                }
                Err(_) => state.fail(),
            }
        }
        let total: usize = bufs.iter().map(|buf| buf.len()).sum();
        // Room is made before the bytes join what waits: a client that
        // reads nothing then keeps this write waiting with them still in
        // the backend's buffer, not counted among every connection's
        // read-ahead on top of what the bound lets wait.
        let _ = state.send_until(state.room(bound, total - skip));
        for buf in bufs {
            let from = skip.min(buf.len());
            state.keep(&buf[from..]);
            skip -= from;
        }
        state.send_now();
        // Taken whole: a failure shows at the next write, and the bytes
        // that did not go are counted out by `unsent`. (A write larger
        // than the room waits here with them.)
        let _ = state.send_until(state.room(bound, 0));
        Ok(total)
    }

    /// Sends what waits, waiting for the client; writes wait for it from
    /// then on.
    fn flush(&mut self) -> std::io::Result<()> {
        let state = &mut *self.state.borrow_mut();
        let lagged = state.bound.take().is_some();
        if state.failed {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        if !lagged {
            return Ok(());
        }
        state.send_until(0)?;
        state.backlog = VecDeque::new();
        state.to.flush()
    }
}

impl Pending for ClientOut<'_> {
    fn lag(&self) -> Lag {
        let state = &mut *self.state.borrow_mut();
        let unsent = state.backlog.len();
        let client = state.to.get_ref();
        if state.bound.is_none() || state.failed || (unsent == 0 && !client.has_unsent()) {
            return Lag::None;
        }
        let fd = client.as_raw_fd();
        match state.to.due_in(unsent.max(1)) {
            Some(wait) => Lag::Pace(wait),
            None => Lag::Room(fd),
        }
    }

    fn send_now(&self) {
        self.state.borrow_mut().send_now();
    }
}

/// Writes `head` (maybe empty), a piece of body (in a chunk of its own
/// when `chunked`, its size line written in `size_line`; none for an
/// empty piece, which would read as the last chunk) and `after`, in one
/// `writev`.
pub(super) fn write_piece(
    to: &mut impl Write,
    head: &[u8],
    piece: &[u8],
    chunked: bool,
    after: &[u8],
    size_line: &mut Vec<u8>,
) -> (usize, std::io::Result<()>) {
    size_line.clear();
    let framed = chunked && !piece.is_empty();
    if framed {
        chunk_size_line(piece.len(), size_line);
    }
    let tail: &[u8] = if framed { b"\r\n" } else { b"" };
    write_all_vectored_counting(
        to,
        &mut [
            IoSlice::new(head),
            IoSlice::new(size_line),
            IoSlice::new(piece),
            IoSlice::new(tail),
            IoSlice::new(after),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pace::Pacing;
    use std::io::{ErrorKind, Read};
    use std::net::{TcpListener, TcpStream};
    use std::thread::JoinHandle;
    use std::time::Duration;

    /// A bound no test reaches.
    const FAR: u64 = 1 << 20;
    /// How long a write waits for a client that reads nothing before it
    /// is taken for gone.
    const GIVES_UP: Duration = Duration::from_secs(1);
    /// How long a write may wait for a client that reads: a machine busy
    /// with other work may keep its thread waiting a while.
    const PATIENT: Duration = Duration::from_secs(30);

    /// A client's connection with little room between its two ends
    /// (small buffers, not grown by the kernel), so that most of what a
    /// client that reads nothing is written waits in the backlog: the
    /// proxy's end, whose blocking writes give up after `write_timeout`
    /// (as a connection's timeout has them), and the client's.
    fn connection(write_timeout: Duration) -> (ClientStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (domain, kind) = (socket2::Domain::IPV4, socket2::Type::STREAM);
        let client = socket2::Socket::new(domain, kind, None).unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        client
            .connect(&listener.local_addr().unwrap().into())
            .unwrap();
        let (ours, _) = listener.accept().unwrap();
        socket2::SockRef::from(&ours)
            .set_send_buffer_size(4096)
            .unwrap();
        ours.set_write_timeout(Some(write_timeout)).unwrap();
        let client = TcpStream::from(client);
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (ClientStream::Tcp(ours), client)
    }

    /// `len` bytes that tell their places apart, told from another
    /// write's by `seed`.
    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    /// The client reading `len` bytes, from now on.
    fn reading(mut client: TcpStream, len: usize) -> JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut got = vec![0; len];
            client.read_exact(&mut got).unwrap();
            got
        })
    }

    /// Writes through a backlog of `bound` bytes, counted in `held`, with
    /// every connection's together limited to `limit`.
    fn lagging<'a>(
        client: &'a ClientStream,
        bound: u64,
        held: &'a AtomicU64,
        limit: u64,
    ) -> ClientOut<'a> {
        let ahead = ReadAhead { held, limit };
        ClientOut::new(Paced::new(client, Pacing::OFF), Some((bound, ahead)))
    }

    #[test]
    fn what_a_client_does_not_take_at_once_waits_counted_and_reaches_it_whole_in_order() {
        let (ours, client) = connection(PATIENT);
        let held = AtomicU64::new(0);
        let out = lagging(&ours, FAR, &held, u64::MAX);
        assert_eq!(out.lag(), Lag::None, "nothing waits yet");
        let (first, second) = (bytes(200 << 10, 1), bytes(100 << 10, 2));
        // Both taken whole at once, the client reading nothing: the
        // bound is far (the backend is read on meanwhile). The first in
        // two slices (a head and a piece of body), of which the socket
        // takes the head and part of the piece.
        let split = [IoSlice::new(&first[..100]), IoSlice::new(&first[100..])];
        assert_eq!((&out).write_vectored(&split).unwrap(), first.len());
        assert!(out.delivered() > 100, "the socket took the head");
        assert_eq!((&out).write(&second).unwrap(), second.len());
        let total = (first.len() + second.len()) as u64;
        let waiting = out.unsent();
        assert!(waiting > 0, "the client took {} bytes", out.delivered());
        assert_eq!(out.delivered() + waiting, total);
        assert_eq!(held.load(Ordering::Relaxed), waiting, "counted as held");
        // Once the client reads, what waits goes as it takes it, as a
        // wait for the backend sends it (see `WatchingClose`).
        let reader = reading(client, total as usize);
        let mut tries = 0;
        while out.lag() != Lag::None && tries < 10_000 {
            assert_eq!(out.lag(), Lag::Room(ours.as_raw_fd()));
            Pending::send_now(&out);
            std::thread::sleep(Duration::from_millis(1));
            tries += 1;
        }
        assert_eq!((out.delivered(), out.unsent()), (total, 0));
        assert_eq!(held.load(Ordering::Relaxed), 0, "no longer held");
        (&out).flush().unwrap();
        assert_eq!(reader.join().unwrap(), [first, second].concat());
    }

    #[test]
    fn what_waited_for_a_client_found_gone_is_dropped_and_counted_unsent() {
        let (ours, client) = connection(GIVES_UP);
        let held = AtomicU64::new(0);
        let out = lagging(&ours, FAR, &held, u64::MAX);
        let first = bytes(200 << 10, 1);
        (&out).write_all(&first).unwrap();
        let delivered = out.delivered();
        assert!(out.unsent() > 0);
        // It leaves, its bytes unread: a reset, which the next send finds.
        drop(client);
        let second = bytes(50 << 10, 2);
        // Taken whole: the failure shows at the next write.
        assert_eq!((&out).write(&second).unwrap(), second.len());
        let total = (first.len() + second.len()) as u64;
        assert_eq!(
            (out.delivered(), out.unsent()),
            (delivered, total - delivered)
        );
        // Not held against every other connection's read-ahead while the
        // backend takes its time to send the rest.
        assert_eq!(held.load(Ordering::Relaxed), 0);
        assert_eq!(out.lag(), Lag::None, "nothing waits for a client gone");
        let again = (&out).write(&second).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::BrokenPipe);
        assert_eq!((&out).flush().unwrap_err().kind(), ErrorKind::BrokenPipe);
        assert_eq!(out.unsent(), total - delivered, "refused, not counted");
    }

    #[test]
    fn a_write_that_finds_the_client_gone_is_counted_unsent_whole() {
        let (ours, client) = connection(GIVES_UP);
        let held = AtomicU64::new(0);
        let out = lagging(&ours, FAR, &held, u64::MAX);
        // Small enough for the socket to take at once.
        (&out).write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
        assert_eq!((out.delivered(), out.unsent()), (17, 0));
        drop(client);
        let body = bytes(50 << 10, 1);
        assert_eq!((&out).write(&body).unwrap(), body.len());
        assert_eq!((out.delivered(), out.unsent()), (17, body.len() as u64));
        assert_eq!(held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn past_the_caches_capacity_a_client_still_has_the_least_backlog_wait_for_it() {
        // Every connection's read-ahead is at the cache's capacity (a
        // limit of 0): this client still has LEAST_BACKLOG wait for it,
        // not its backend read at its pace from the first byte on.
        let (ours, _client) = connection(GIVES_UP);
        let held = AtomicU64::new(0);
        let out = lagging(&ours, FAR, &held, 0);
        // 64 KiB: LEAST_BACKLOG, as it is meant to be.
        let piece = bytes(64 << 10, 1);
        assert_eq!((&out).write(&piece).unwrap(), piece.len());
        let waiting = out.unsent();
        assert!(waiting > 0, "the client took {} bytes", out.delivered());
        assert_eq!(held.load(Ordering::Relaxed), waiting, "still waiting");
        assert_eq!(out.lag(), Lag::Room(ours.as_raw_fd()));
        // Another as large waits for the client: reading nothing, it is
        // found gone when the write gives up.
        waits_for_a_client_found_gone(&out, &held, &bytes(64 << 10, 2));
    }

    /// Writes `more`, which waits for a client that reads nothing: taken,
    /// the client then found gone as the write gives up (nothing held for
    /// it any longer), and the next write refused.
    fn waits_for_a_client_found_gone(out: &ClientOut<'_>, held: &AtomicU64, more: &[u8]) {
        assert_eq!((&*out).write(more).unwrap(), more.len());
        assert_eq!(held.load(Ordering::Relaxed), 0);
        let again = (&*out).write(more).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::BrokenPipe);
    }

    #[test]
    fn once_nothing_is_stored_what_waits_is_the_most_that_will() {
        let (ours, _client) = connection(GIVES_UP);
        let held = AtomicU64::new(0);
        let out = lagging(&ours, FAR, &held, u64::MAX);
        let piece = bytes(200 << 10, 1);
        (&out).write_all(&piece).unwrap();
        let waiting = out.unsent();
        assert!(waiting > 64 << 10, "{waiting} bytes wait");
        out.stop_reading_ahead();
        // Far within the bound it was given, yet past what waits: the
        // write waits for the client, which, reading nothing, is found
        // gone when it gives up.
        waits_for_a_client_found_gone(&out, &held, &bytes(16 << 10, 2));
    }

    #[test]
    fn what_waits_when_the_response_ends_unsent_no_longer_counts() {
        let (ours, _client) = connection(GIVES_UP);
        let held = AtomicU64::new(0);
        let out = lagging(&ours, FAR, &held, u64::MAX);
        (&out).write_all(&bytes(200 << 10, 1)).unwrap();
        assert!(held.load(Ordering::Relaxed) > 0);
        drop(out);
        assert_eq!(held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn without_a_bound_writes_go_straight_to_the_client_and_count_as_delivered() {
        let (ours, client) = connection(PATIENT);
        let out = ClientOut::new(Paced::new(&ours, Pacing::OFF), None);
        let body = bytes(100 << 10, 1);
        let reader = reading(client, body.len());
        (&out).write_all(&body).unwrap();
        assert_eq!((out.delivered(), out.unsent()), (body.len() as u64, 0));
        assert_eq!(out.lag(), Lag::None);
        (&out).flush().unwrap();
        assert_eq!(reader.join().unwrap(), body);
    }
}
