//! The worker pool: threads that accept on a shared listener and serve
//! what they accept, one more started when the last one accepting takes
//! a connection, the ones not needed retiring.

use super::admission::{refuse, register, Refusing};
use super::connection::{client_stream, serve, serve_stream};
use super::start::StartError;
use super::Inner;
use crate::http::conn::is_timeout;
use crate::proxy::Inherited;
use crate::throttle::OnceAMinute;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an unused worker thread waits for a connection before it exits.
pub(super) const WORKER_IDLE: Duration = Duration::from_secs(60);
/// Stack reserved per worker. Only touched pages cost memory; the proxy
/// keeps its buffers on the heap and its frames small.
const WORKER_STACK: usize = 256 * 1024;
/// Longest pause after repeated accept errors (e.g. out of descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How often idle backend connections are looked at for the ones idle
/// past their age: how late after it one may be closed.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Whose a listener is.
#[derive(Clone, Debug)]
pub(super) enum Listening {
    /// `port`'s: HTTP.
    Http,
    /// `tls_port`'s: HTTP after a TLS handshake.
    Tls,
    /// A `stream.<name>`'s, by its name: bytes relayed to a pool's target
    /// (a TLS session's, with the stream's `tls`).
    Stream(Arc<str>),
}

impl Listening {
    /// The stream's name, for a stream's listener.
    fn stream(&self) -> Option<&Arc<str>> {
        match self {
            Listening::Stream(name) => Some(name),
            Listening::Http | Listening::Tls => None,
        }
    }
}

/// The worker threads and the listener they share. An idle worker is a
/// thread blocked in `accept`; the one that gets a connection serves it
/// itself, after making sure another thread is left accepting. No hand-off:
/// a new connection wakes exactly one thread (Linux wakes one `accept`er per
/// connection), where an acceptor passing sockets to workers woke two.
pub(super) struct Workers {
    pub(super) listener: TcpListener,
    inner: Arc<Inner>,
    /// Threads blocked in (or about to enter) `accept`.
    idle: AtomicUsize,
    /// `worker_priority` as started with (a restart key).
    priority: Option<i32>,
    /// When the next sweep of idle backend connections is due, in
    /// milliseconds since `started` (see [`Workers::sweep_if_due`]).
    started: Instant,
    next_sweep: AtomicU64,
    /// The idle workers a busy minute did not need (see [`Surplus`]).
    surplus: Surplus,
    /// Whose listener it is: what its connections begin with, and how
    /// they are served.
    kind: Listening,
    /// What its connections come with, the address they reach
    /// (`$server_addr`, `$server_port`) among it (see `set_inherited_options`).
    inherited: Inherited,
}

impl Workers {
    /// The first worker of `listener`'s, accepting.
    pub(super) fn start(
        (listener, inherited): (TcpListener, Inherited),
        inner: &Arc<Inner>,
        priority: Option<i32>,
        kind: Listening,
    ) -> Result<Arc<Workers>, StartError> {
        let workers = Arc::new(Workers {
            listener,
            inner: inner.clone(),
            idle: AtomicUsize::new(0),
            priority,
            started: Instant::now(),
            next_sweep: AtomicU64::new(0),
            surplus: Surplus::new(),
            kind,
            inherited,
        });
        spawn_worker(&workers).map_err(StartError::Thread)?;
        Ok(workers)
    }

    pub(super) fn local_addr(&self) -> SocketAddr {
        // Known since it was bound; the system call cannot fail on a
        // listening socket, and a wildcard address is as good a name.
        (self.listener.local_addr()).unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Closes the backend connections idle past their age, at most once
    /// per [`SWEEP_EVERY`], by whichever worker comes by first: one back
    /// from a connection, or one whose `accept` timed out. Not only at a
    /// quiet moment: while connections keep coming faster than an
    /// `accept` times out there is none, and a target no request goes to
    /// (a backup after an outage) would keep its idle connections open
    /// for as long as that lasts.
    fn sweep_if_due(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if claim_if_due(&self.next_sweep, now, SWEEP_EVERY) {
            self.inner.current.get().pools.sweep_idle();
            self.surplus.review(now, self.idle.load(Ordering::SeqCst));
        }
    }
}

/// Whether the moment `due` holds (ms, as `now` is counted) has come, for
/// this caller alone: the one that sees it first moves it `every` past
/// `now`, and the others see it moved.
fn claim_if_due(due: &AtomicU64, now: u64, every: Duration) -> bool {
    let was = due.load(Ordering::Relaxed);
    let next = now.saturating_add(every.as_millis() as u64);
    now >= was
        && due
            .compare_exchange(was, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// How many idle workers may retire although connections keep coming.
///
/// An idle worker retires when its `accept` times out after a minute
/// without work; but Linux hands connections to the threads waiting in
/// `accept` in turn, the longest waiting first, so while they come faster
/// than that no `accept` ever times out, and the threads a burst started
/// would stay (each with its stack, and a descriptor number reserved) for
/// as long as the traffic lasts. The fewest workers idle at any moment of
/// a window of [`WORKER_IDLE`] were not needed in it: that many may retire
/// in the next, each as it comes back from a connection.
#[derive(Debug)]
struct Surplus {
    /// The fewest idle workers seen since the window began.
    fewest_idle: AtomicUsize,
    /// How many may still retire, from the window before.
    quota: AtomicUsize,
    /// When the window ends, in milliseconds (as `now` is counted).
    window_ends: AtomicU64,
}

impl Surplus {
    fn new() -> Surplus {
        Surplus {
            fewest_idle: AtomicUsize::new(usize::MAX),
            quota: AtomicUsize::new(0),
            window_ends: AtomicU64::new(WORKER_IDLE.as_millis() as u64),
        }
    }

    /// A worker took a connection, leaving `idle` idle.
    fn note(&self, idle: usize) {
        self.fewest_idle.fetch_min(idle, Ordering::Relaxed);
    }

    /// At `now` (ms), with `idle` workers idle: a window that has ended
    /// makes the fewest idle in it the quota, and the next one begins.
    fn review(&self, now: u64, idle: usize) {
        if claim_if_due(&self.window_ends, now, WORKER_IDLE) {
            let fewest = self.fewest_idle.swap(idle, Ordering::Relaxed).min(idle);
            self.quota.store(fewest, Ordering::Relaxed);
        }
    }

    /// Whether one more worker may retire (taking it from the quota).
    fn take(&self) -> bool {
        (self.quota)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| q.checked_sub(1))
            .is_ok()
    }
}

/// Starts one more worker; logs (once a minute) if the system refuses a
/// thread.
#[inline(never)]
fn spawn_worker(workers: &Arc<Workers>) -> io::Result<()> {
    let workers = workers.clone();
    workers.idle.fetch_add(1, Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name("worker".into())
        .stack_size(WORKER_STACK)
        .spawn({
            let workers = workers.clone();
            move || work(&workers)
        });
    static FAILING: OnceAMinute = OnceAMinute::new();
    if spawned.is_ok() && FAILING.recovered() {
        log::warn!("worker threads can be started again");
    }
    if let Err(e) = &spawned {
        workers.idle.fetch_sub(1, Ordering::SeqCst);
        if FAILING.due() {
            log::error!(
                "cannot start a worker thread: {e}; new connections are answered 503 until one \
                 can be (the process's thread limit: RLIMIT_NPROC, a cgroup's pids.max, \
                 systemd's TasksMax; said at most once a minute)"
            );
        }
    }
    spawned.map(drop)
}

fn work(workers: &Arc<Workers>) {
    if let Some(nice) = workers.priority {
        if let Err(e) = crate::sched::set_priority(nice) {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                log::warn!(
                    "worker_priority = {nice}: {e}; connection threads keep the process's priority \
                     (below 0 needs CAP_SYS_NICE or RLIMIT_NICE, e.g. systemd's Nice= or AmbientCapabilities=)"
                );
            });
        }
    }
    let inner = &workers.inner;
    let mut backoff = Duration::from_millis(5);
    let mut idle_since = Instant::now();
    let mut stack_given_back = true;
    loop {
        let accepted = workers.listener.accept();
        if inner.shutting_down.load(Ordering::SeqCst) {
            break;
        }
        let (stream, peer) = match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                inner.metrics.accepted.fetch_add(1, Ordering::Relaxed);
                (stream, peer)
            }
            // The listener's receive timeout (set for the sockets it
            // hands out) also bounds `accept`: a thread unused for a while
            // retires, unless it is the last one accepting.
            Err(e) if is_timeout(&e) => {
                // A connection's deep calls are past: an idle worker keeps
                // only the stack its `accept` needs.
                if !stack_given_back {
                    crate::thread_stack::release_below();
                    stack_given_back = true;
                }
                workers.sweep_if_due();
                if idle_since.elapsed() >= WORKER_IDLE && leave_if_not_last(&workers.idle) {
                    return;
                }
                continue;
            }
            Err(e) => {
                // Out of descriptors, aborted handshakes...: never fatal.
                static FAILING: OnceAMinute = OnceAMinute::new();
                if FAILING.due() {
                    log::warn!("accept failed: {e}; retrying (said at most once a minute)");
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        // Leave someone accepting before this thread is busy. If no
        // thread can be started, this one stays the acceptor: the
        // connection is refused as one over max_connections is, rather
        // than served while new clients wait unanswered in the backlog.
        let was_idle = workers.idle.fetch_sub(1, Ordering::SeqCst);
        workers.surplus.note(was_idle.saturating_sub(1));
        let last = was_idle == 1;
        let shared = inner.current.get();
        let Some(stream) = client_stream(stream, &workers.kind, &shared.config) else {
            workers.idle.fetch_add(1, Ordering::SeqCst);
            continue;
        };
        let registered = if last && spawn_worker(workers).is_err() {
            Err(Refusing::new(inner))
        } else {
            let proxied = match workers.kind.stream() {
                Some(name) => (shared.config.stream_named(name)).is_some_and(|s| s.proxy_protocol),
                None => shared.config.proxy_protocol,
            };
            register(
                inner,
                &stream,
                peer.ip().to_canonical(),
                proxied,
                &shared.config,
            )
        };
        match registered {
            Ok(slot) => {
                crate::sched::set_batch(shared.config.batch_scheduling);
                drop(shared);
                let inherited = workers.inherited.accepted_by(stream.tcp());
                match workers.kind.stream() {
                    Some(name) => serve_stream(stream, peer, slot, inner, inherited, name),
                    None => serve(stream, peer, slot, inner, inherited),
                }
            }
            Err(Some(refusing)) => {
                let server = workers.inherited.accepted_by(stream.tcp()).addr;
                let stream_name = workers.kind.stream().map(|name| &**name);
                refuse(stream, (peer, server), &shared, refusing, stream_name)
            }
            // A shutdown began: dropped, as a connection accepted then is.
            Err(None) => {}
        }
        workers.idle.fetch_add(1, Ordering::SeqCst);
        idle_since = Instant::now();
        stack_given_back = false;
        // After the connection, not before: it waits for no sweep.
        workers.sweep_if_due();
        if workers.surplus.take() && leave_if_not_last(&workers.idle) {
            return;
        }
    }
    workers.idle.fetch_sub(1, Ordering::SeqCst);
}

/// Takes this thread out of the idle count unless it is the last one.
fn leave_if_not_last(idle: &AtomicUsize) -> bool {
    idle.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
        (n > 1).then(|| n - 1)
    })
    .is_ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_fewest_idle_of_a_window_may_retire_in_the_next() {
        let minute = WORKER_IDLE.as_millis() as u64;
        let surplus = Surplus::new();
        // A busy first window: never fewer than 3 idle.
        for idle in [10, 3, 5, 7] {
            surplus.note(idle);
        }
        surplus.review(minute - 1, 8);
        assert!(!surplus.take(), "the window has not ended");
        surplus.review(minute, 8);
        assert!(surplus.take() && surplus.take() && surplus.take());
        assert!(!surplus.take(), "only the 3 never needed");
        // A window in which every worker was needed at some moment.
        surplus.note(4);
        surplus.note(0);
        surplus.review(2 * minute, 6);
        assert!(!surplus.take());
        // One in which no connection came: every idle worker is spare.
        surplus.review(3 * minute, 6);
        assert_eq!(surplus.quota.load(Ordering::Relaxed), 6);
        // One that came within the quota's window leaves fewer spare.
        surplus.note(2);
        surplus.review(4 * minute, 5);
        assert_eq!(surplus.quota.load(Ordering::Relaxed), 2);
    }
}
