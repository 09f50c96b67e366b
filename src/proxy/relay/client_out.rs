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
