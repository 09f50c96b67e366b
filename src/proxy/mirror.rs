//! `mirror`: a copy of each request a pool sends to a backend, or its
//! cache answers, goes to another pool as well, and its answer is read and dropped, as nginx's
//! `mirror` does: a new version of an application tried on real traffic,
//! whose answers no client sees.
//!
//! A copy never holds up its client: it is queued, and sent by threads
//! of its own. When the queue is full, or the mirror pool has no target
//! to take it, the copy is dropped and counted, never waited for.

use super::origin::CLOSE_LINE;
use super::relay::may_reuse;
use super::{Current, Shared};
use crate::http::conn::{is_timeout, write_all_vectored_counting};
use crate::http::conn::{Kind, SharedStream, Stream};
use crate::http::head::{find_head_end, parse_response};
use crate::http::send_proxy::ClientEnds;
use crate::http::{BodyKind, BufConn};
use crate::metrics::Metrics;
use crate::upstream::{ForClient, Pick, Upstream, UpstreamConn, Upstreams};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::io::IoSlice;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Copies waiting for a thread; more are dropped.
const QUEUE: usize = 1024;
/// Bytes of copies waiting (heads and bodies); more are dropped, so that
/// large bodies to a slow mirror hold no more memory than this.
const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Threads sending copies, started as copies find none free.
const MAX_THREADS: usize = 16;
/// A thread with no copy to send for this long ends.
const IDLE: Duration = Duration::from_secs(30);
/// Largest answer head read.
const MAX_HEAD: usize = 32 * 1024;
/// Largest answer body read to keep its connection; past it (or one of a
/// length not known), the connection is closed instead.
const MAX_DRAINED: u64 = 1 << 20;
/// Interim answers (1xx) read before the final one.
const MAX_INTERIM: usize = 16;

/// A request to send again, to the pool `pool` names.
pub(super) struct Duplicate {
    pub pool: Arc<str>,
    /// The head as the request's own backend is sent it (but for a
    /// `Connection: close`, the mirror pool's to add), then its body.
    pub head: Vec<u8>,
    pub body: Vec<u8>,
    /// What the mirror pool's `balance` may pick its target by.
    pub client: IpAddr,
    pub uri: String,
    pub key: Option<Vec<u8>>,
    /// Whom a `send_proxy` target's PROXY header names: the client of
    /// the request copied.
    pub ends: ClientEnds,
}

impl Duplicate {
    fn size(&self) -> usize {
        self.head.len() + self.body.len()
    }
}

/// The copies' queue and the threads that send them, one for the
/// process: reloads keep it.
pub struct Mirrors {
    queue: Sender<Duplicate>,
    taken: Receiver<Duplicate>,
    threads: AtomicUsize,
    idle: AtomicUsize,
    /// What the copies waiting hold (see [`MAX_QUEUED_BYTES`]).
    queued_bytes: AtomicUsize,
    /// Where each copy finds the pools in force when it is sent.
    current: OnceLock<Weak<Current>>,
    metrics: Arc<Metrics>,
    shutting_down: Arc<AtomicBool>,
}

impl Mirrors {
    pub fn new(metrics: Arc<Metrics>, shutting_down: Arc<AtomicBool>) -> Arc<Mirrors> {
        let (queue, taken) = crossbeam_channel::bounded(QUEUE);
        Arc::new(Mirrors {
            queue,
            taken,
            threads: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            current: OnceLock::new(),
            metrics,
            shutting_down,
        })
    }

    /// Where the settings in force are found (set once, when they are).
    pub fn attach(&self, current: &Arc<Current>) {
        let _ = self.current.set(Arc::downgrade(current));
    }

    /// Queues `copy`, or drops it when the queue is full; starts a thread
    /// when fewer are free than copies wait (a thread just started is
    /// free until it takes one: counted against the copies, a copy sent
    /// right after the one that started it would wait behind it).
    pub(super) fn send(self: &Arc<Self>, copy: Duplicate) {
        let size = copy.size();
        let taken = (self.queued_bytes).fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n + size <= MAX_QUEUED_BYTES).then_some(n + size)
        });
        if taken.is_err() {
            return self.dropped();
        }
        match self.queue.try_send(copy) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued_bytes.fetch_sub(size, Ordering::SeqCst);
                self.dropped();
                return;
            }
        }
        if self.idle.load(Ordering::SeqCst) < self.queue.len() {
            self.start_thread();
        }
    }

    /// Counts a copy that was not sent.
    pub(super) fn dropped(&self) {
        self.metrics.mirror_dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn start_thread(self: &Arc<Self>) {
        let started = (self.threads).fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < MAX_THREADS).then_some(n + 1)
        });
        if started.is_err() {
            return;
        }
        self.idle.fetch_add(1, Ordering::SeqCst);
        let mirrors = self.clone();
        let spawned = std::thread::Builder::new()
            .name("mirror".into())
            .stack_size(256 * 1024)
            .spawn(move || mirrors.work());
        if spawned.is_err() {
            // The copies wait for a thread that exists, if any.
            self.idle.fetch_sub(1, Ordering::SeqCst);
            self.threads.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn work(self: &Arc<Self>) {
        let _place = Place(self);
        let mut idle_since = Instant::now();
        loop {
            match self.taken.recv_timeout(Duration::from_secs(1)) {
                Ok(copy) => {
                    self.queued_bytes.fetch_sub(copy.size(), Ordering::SeqCst);
                    self.idle.fetch_sub(1, Ordering::SeqCst);
                    let counter = match self.deliver(&copy) {
                        Delivered::Answered => &self.metrics.mirror_answered,
                        Delivered::Failed => &self.metrics.mirror_failed,
                        Delivered::Dropped => &self.metrics.mirror_dropped,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    self.idle.fetch_add(1, Ordering::SeqCst);
                    idle_since = Instant::now();
                }
                Err(RecvTimeoutError::Timeout)
                    if idle_since.elapsed() < IDLE
                        && !self.shutting_down.load(Ordering::Relaxed) => {}
                Err(_) => break,
            }
        }
        self.idle.fetch_sub(1, Ordering::SeqCst);
    }

    /// Sends `copy` to a target of its pool, as the settings in force
    /// have it, and reads the answer.
    fn deliver(&self, copy: &Duplicate) -> Delivered {
        let Some(current) = self.current.get().and_then(Weak::upgrade) else {
            return Delivered::Dropped;
        };
        let shared: Arc<Shared> = current.get();
        // A reload may have taken the pool away since.
        let Some(upstreams) = shared.pools.iter().find(|p| p.name() == &*copy.pool) else {
            return Delivered::Dropped;
        };
        let tried = vec![false; upstreams.targets().len()];
        let key = copy.key.as_deref();
        let Pick::Chosen(index, busy) =
            upstreams.pick(copy.client, &copy.uri, key, &tried, None, None)
        else {
            return Delivered::Dropped;
        };
        let target = &upstreams.targets()[index];
        let answered = exchange(upstreams, target, copy);
        drop(busy);
        match answered {
            Some(status) => {
                target.stats.responses.count(status);
                Delivered::Answered
            }
            None => Delivered::Failed,
        }
    }
}

enum Delivered {
    Answered,
    Failed,
    Dropped,
}

/// Sends the copy on a pooled connection (again on a new one if that
/// turns out closed before any answer, for a method that may be sent
/// twice) and reads the answer: its status, or `None` when there is none.
/// The connection goes back to the pool when the answer was read to its
/// end.
fn exchange(upstreams: &Upstreams, target: &Upstream, copy: &Duplicate) -> Option<u16> {
    let is_head = copy.head.starts_with(b"HEAD ");
    let idempotent = ["GET ", "HEAD ", "OPTIONS "]
        .iter()
        .any(|m| copy.head.starts_with(m.as_bytes()));
    let mut fresh = false;
    loop {
        // A connection to a `send_proxy` target names the client: it
        // closes after the copy, kept by nobody.
        let client = ForClient {
            ends: copy.ends.clone(),
            kept: None,
        };
        let timeout = upstreams.backend_timeout();
        let Ok(mut up) = upstreams.checkout(target, fresh, Some(client), timeout, |_| {}) else {
            return None;
        };
        // Bytes on an idle connection are no answer to this copy.
        if up.reused && !super::origin::still_open(&up.conn) {
            continue;
        }
        if let Kind::Fcgi(fcgi) = up.conn.get_ref().kind() {
            fcgi.begin(crate::fastcgi::Exchange {
                client: copy.ends.source,
                server: copy.ends.destination,
                https: copy.ends.tls.is_some(),
            });
        }
        match send_and_read(&mut up, copy, is_head, target.keeps_no_connection()) {
            Answer::Read(status, reusable) => {
                if reusable && up.conn.buffered().is_empty() {
                    target.checkin(up.conn, None);
                }
                return Some(status);
            }
            Answer::Unread(status) => return Some(status),
            // A pooled connection the backend had closed while it idled.
            Answer::None { closed_unanswered } if closed_unanswered && up.reused && idempotent => {
                fresh = true;
            }
            Answer::None { .. } => return None,
        }
    }
}

enum Answer {
    /// The whole answer read; whether its connection may carry another.
    Read(u16, bool),
    /// Its head read, its body not: the connection is closed.
    Unread(u16),
    /// None; whether the connection ended (closed or reset) before a
    /// byte of it came, rather than timed out or broke HTTP.
    None { closed_unanswered: bool },
}

fn send_and_read(up: &mut UpstreamConn, copy: &Duplicate, is_head: bool, close: bool) -> Answer {
    let stream = up.conn.get_ref().0.clone();
    let mut out = &*stream;
    // `Connection: close` for a pool that keeps no connection (RFC 9112
    // §9.6), before the head's empty line.
    let fields = &copy.head[..copy.head.len().saturating_sub(2)];
    let close: &[u8] = if close { CLOSE_LINE } else { b"" };
    let mut request = [
        IoSlice::new(fields),
        IoSlice::new(close),
        IoSlice::new(b"\r\n"),
        IoSlice::new(&copy.body),
    ];
    if let Err(e) = write_all_vectored_counting(&mut out, &mut request).1 {
        return Answer::None {
            closed_unanswered: !is_timeout(&e),
        };
    }
    let mut interim = 0;
    loop {
        let len = match read_head(&mut up.conn) {
            Ok(len) => len,
            Err(ended) => {
                let closed_unanswered = ended && interim == 0 && up.conn.buffered().is_empty();
                return Answer::None { closed_unanswered };
            }
        };
        let Ok(response) = parse_response(&up.conn.buffered()[..len]) else {
            return Answer::None {
                closed_unanswered: false,
            };
        };
        up.conn.consume(len);
        let status = response.status;
        // A switch (no copy asks for one), or one interim answer too many:
        // what comes next on the connection is not known, it is closed.
        if status == 101 || ((100..200).contains(&status) && interim == MAX_INTERIM) {
            return Answer::Unread(status);
        }
        if (100..200).contains(&status) {
            interim += 1;
            continue;
        }
        let Ok(kind) = BodyKind::for_response(is_head, &response) else {
            return Answer::Unread(status);
        };
        let drained = match kind {
            BodyKind::Empty => true,
            BodyKind::Length(n) if n <= MAX_DRAINED => drain(&mut up.conn, n as usize),
            _ => return Answer::Unread(status),
        };
        return match drained {
            true => Answer::Read(status, may_reuse(&response, kind, up)),
            false => Answer::Unread(status),
        };
    }
}

/// Reads until a whole head is buffered: its length; or whether the
/// connection ended (closed, reset) rather than timed out or sent what
/// is no head.
fn read_head(conn: &mut BufConn<SharedStream<Stream>>) -> Result<usize, bool> {
    let mut scanned = 0;
    loop {
        match find_head_end(conn.buffered(), &mut scanned) {
            Ok(Some(len)) => return Ok(len),
            Ok(None) if conn.buffered().len() <= MAX_HEAD => {}
            _ => return Err(false),
        }
        match conn.fill() {
            Ok(0) => return Err(true),
            Ok(_) => {}
            Err(e) => return Err(!is_timeout(&e)),
        }
    }
}

/// Reads and drops `n` bytes: whether they all came.
fn drain(conn: &mut BufConn<SharedStream<Stream>>, n: usize) -> bool {
    let mut left = n;
    loop {
        let have = conn.buffered().len().min(left);
        conn.consume(have);
        left -= have;
        if left == 0 {
            return true;
        }
        if !matches!(conn.fill(), Ok(read) if read > 0) {
            return false;
        }
    }
}

/// A mirror thread's place among [`MAX_THREADS`], given back when the
/// thread ends however it ends: a panic in `deliver` would otherwise keep
/// it taken for good.
struct Place<'a>(&'a Arc<Mirrors>);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mirrors = self.0;
        mirrors.threads.fetch_sub(1, Ordering::SeqCst);
        // A copy queued while this thread was leaving, seeing it idle,
        // started none.
        if !mirrors.taken.is_empty() {
            mirrors.start_thread();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    /// A copy with a body of `len` bytes.
    fn copy(len: usize) -> Duplicate {
        let any: SocketAddr = "127.0.0.1:1".parse().unwrap();
        Duplicate {
            pool: "shadow".into(),
            head: b"POST / HTTP/1.1\r\n\r\n".to_vec(),
            body: vec![0; len],
            client: any.ip(),
            uri: "/".into(),
            key: None,
            ends: ClientEnds {
                source: any,
                destination: any,
                tls: None,
            },
        }
    }

    /// Polls `cond` for up to five seconds: whether it came to hold.
    fn soon(cond: impl Fn() -> bool) -> bool {
        let due = Instant::now() + Duration::from_secs(5);
        while !cond() {
            if Instant::now() > due {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    #[test]
    fn copies_waiting_for_a_slow_mirror_hold_no_more_than_their_bytes_allow() {
        let metrics = Arc::new(Metrics::default());
        let mirrors = Mirrors::new(metrics.clone(), Arc::default());
        // Every thread taken by a slow mirror: the copies stay queued.
        mirrors.threads.store(MAX_THREADS, Ordering::SeqCst);
        let dropped = || metrics.mirror_dropped.load(Ordering::Relaxed);
        let third = MAX_QUEUED_BYTES / 3;
        mirrors.send(copy(third));
        mirrors.send(copy(third));
        assert_eq!((mirrors.taken.len(), dropped()), (2, 0));
        // Three thirds and their heads are past the bound: dropped.
        mirrors.send(copy(third));
        assert_eq!((mirrors.taken.len(), dropped()), (2, 1));
        // A small copy still fits.
        mirrors.send(copy(1000));
        assert_eq!((mirrors.taken.len(), dropped()), (3, 1));
    }

    #[test]
    fn a_copy_sent_before_a_thread_just_started_took_the_one_before_starts_another() {
        let metrics = Arc::new(Metrics::default());
        let shutting_down = Arc::new(AtomicBool::new(false));
        let mirrors = Mirrors::new(metrics, shutting_down.clone());
        // A thread started for a copy, free until it takes it.
        mirrors.threads.store(1, Ordering::SeqCst);
        mirrors.idle.store(1, Ordering::SeqCst);
        mirrors.send(copy(10));
        assert_eq!(
            mirrors.threads.load(Ordering::SeqCst),
            1,
            "one free for one copy"
        );
        // Two copies for it: the second must not wait behind the first.
        mirrors.send(copy(10));
        assert_eq!(mirrors.threads.load(Ordering::SeqCst), 2);
        shutting_down.store(true, Ordering::SeqCst);
    }

    #[test]
    fn a_thread_with_no_copy_to_send_stays_a_while_and_ends_at_shutdown() {
        let metrics = Arc::new(Metrics::default());
        let shutting_down = Arc::new(AtomicBool::new(false));
        let mirrors = Mirrors::new(metrics.clone(), shutting_down.clone());
        let threads = || mirrors.threads.load(Ordering::SeqCst);
        // No settings attached: the thread started drops the copy.
        mirrors.send(copy(10));
        assert_eq!(threads(), 1);
        assert!(soon(|| metrics.mirror_dropped.load(Ordering::Relaxed) == 1));
        // Idle past its queue's one-second wait, well short of `IDLE`: it
        // is there for the next copy.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(threads(), 1);
        shutting_down.store(true, Ordering::Relaxed);
        assert!(soon(|| threads() == 0));
        // None started in its place, with no copy waiting.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(threads(), 0);
    }
}
