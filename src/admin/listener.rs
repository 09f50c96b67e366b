//! The admin listener's thread: accepts connections, bounds how many are
//! answered at once, and stops when asked.

use super::connection::handle;
use crate::proxy::Current;
use crate::throttle::OnceAMinute;
use parking_lot::Mutex;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Admin connections served at once; more are closed unanswered.
const MAX_ADMIN_CONNECTIONS: usize = 32;
/// The longest an admin request head may take to arrive, however it
/// trickles in (else a few slow clients could hold every slot), and its
/// reply to leave.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The same for a request answered on the listener's own thread (when no
/// other can be started): short, so that a client that says nothing
/// does not hold up the health checks behind it.
const INLINE_ADMIN_TIMEOUT: Duration = Duration::from_millis(250);

/// The running admin listener.
pub struct Admin {
    addr: SocketAddr,
    /// The listening socket itself (the thread accepts on a clone), to
    /// wake that thread from `accept` when stopping.
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    gate: Arc<Gate>,
}

impl Admin {
    pub fn start(listener: TcpListener, current: Arc<Current>) -> io::Result<Admin> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(Gate::default());
        let thread = {
            let (stop, gate) = (stop.clone(), gate.clone());
            let listener = listener.try_clone()?;
            std::thread::Builder::new()
                .name("admin".into())
                .spawn(move || accept_loop(listener, current, &stop, &gate))?
        };
        log::info!("admin listener on {addr}");
        Ok(Admin {
            addr,
            listener,
            stop,
            thread: Some(thread),
            gate,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting admin connections, and answering requests on those
    /// open (503): once this returns, no admin request changes the cache,
    /// so that a purge answered 200 is in the final snapshot taken then.
    pub fn finish(mut self) {
        self.stop_now();
        self.gate.close();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // A blocked `accept` returns (EINVAL) and sees the flag. Not by
        // connecting to the port: under `reuse_port` another process's
        // listener may take that connection.
        let _ = socket2::SockRef::from(&self.listener).shutdown(Shutdown::Read);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The admin requests being answered, and whether more may be.
#[derive(Default)]
pub(super) struct Gate {
    closed: AtomicBool,
    answering: AtomicUsize,
}

impl Gate {
    /// Lets a request be answered while the guard lives, unless closed.
    /// As `close` stores before it loads, and this adds before it loads,
    /// one of the two sees the other (the orders are sequentially
    /// consistent): a request is refused, or waited for.
    pub(super) fn enter(&self) -> Option<Answering<'_>> {
        self.answering.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.answering.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Answering(self))
    }

    /// Refuses requests from now on, and waits for those let in (whose
    /// bodies were read before: what is left is work in memory, or a
    /// state file written) for at most `ADMIN_TIMEOUT`.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + ADMIN_TIMEOUT;
        while self.answering.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

pub(super) struct Answering<'a>(&'a Gate);

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.answering.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn accept_loop(listener: TcpListener, current: Arc<Current>, stop: &AtomicBool, gate: &Arc<Gate>) {
    let busy = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                static FAILING: OnceAMinute = OnceAMinute::new();
                if FAILING.due() {
                    log::warn!("admin: accept failed: {e} (said at most once a minute)");
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Some(counted) = Counted::take(&busy) else {
            continue;
        };
        // Kept here too, to be answered on this thread if no other can be
        // started: the health check and the metrics matter most when the
        // process is at its thread limit.
        let held = Arc::new(Mutex::new(Some(stream)));
        let spawned = std::thread::Builder::new()
            .name("admin-conn".into())
            .spawn({
                let (held, current) = (held.clone(), current.clone());
                let gate = gate.clone();
                move || {
                    let _counted = counted;
                    if let Some(stream) = held.lock().take() {
                        handle(stream, &current, &gate, ADMIN_TIMEOUT);
                    }
                }
            });
        if let Err(e) = spawned {
            static FAILING: OnceAMinute = OnceAMinute::new();
            if FAILING.due() {
                log::warn!(
                    "admin: cannot start a thread: {e}; answering on the listener's own \
                     (said at most once a minute)"
                );
            }
            // (Its count went with the thread's closure: this thread
            // accepts no other connection meanwhile.)
            if let Some(stream) = held.lock().take() {
                handle(stream, &current, gate, INLINE_ADMIN_TIMEOUT);
            }
        }
    }
}

/// One admin connection counted among [`MAX_ADMIN_CONNECTIONS`] until it
/// is dropped, however its handling ended: a panic in it would otherwise
/// keep its place taken for good.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn take(busy: &Arc<AtomicUsize>) -> Option<Counted> {
        let taken = busy.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < MAX_ADMIN_CONNECTIONS).then_some(n + 1)
        });
        taken.ok().map(|_| Counted(busy.clone()))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
