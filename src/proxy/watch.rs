//! What the server's shutdown sees of a client connection served on
//! another thread, and how it ends it: the client socket, whether the
//! connection waits for its next request, and the backend connection the
//! request in flight is using.

use crate::http::conn::{ClientStream, Socket as _, Stream};
use parking_lot::Mutex;
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// What a client connection is doing, as nginx's `stub_status` tells
/// them apart: waiting for a request (keep-alive), reading one's head,
/// or serving one (its body, the backend's part, the answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Waiting,
    Reading,
    Writing,
}

/// [`ConnWatch::state`]: waiting for a request, serving one, or closed by
/// shutdown while it waited.
const IDLE: u8 = 0;
const BUSY: u8 = 1;
const CLOSED_IDLE: u8 = 2;

pub struct ConnWatch {
    client: Arc<ClientStream>,
    /// IDLE, BUSY or CLOSED_IDLE. Shutdown closes a connection as idle only
    /// by moving it from IDLE, and a request is served only by moving it
    /// from IDLE too: one of the two wins. (A request read after the close,
    /// which Linux allows for bytes already received, would otherwise be
    /// sent on and never answered.)
    state: AtomicU8,
    /// The keepalive_timeout (ms) the connection waits for its next
    /// request under, which a reload that shortens it cannot change for a
    /// read already blocked (see [`ConnWatch::waits_from_before`]),
    /// and the generation of the settings it was taken from (`u64::MAX`
    /// once the next head has begun: no longer waiting under it).
    idle_timeout_ms: AtomicU64,
    idle_generation: AtomicU64,
    backend: Mutex<Backend>,
}

#[derive(Default)]
struct Backend {
    /// The socket the request in flight is using, so a forced close ends a
    /// thread blocked on a backend that does not answer: the thread then
    /// unwinds and logs its request. Weak: a connection that will not be
    /// pooled closes the moment the exchange drops it, wherever that is (the
    /// backend may be waiting for the close), not once the exchange ends.
    /// A forced close shuts the socket down only through a strong handle,
    /// which keeps it open meanwhile: it is never another socket that got
    /// its number after a close.
    in_use: Option<Weak<Stream>>,
    /// Closed by force: a backend connection taken after that (a retry)
    /// is shut down at once.
    closed: bool,
}

impl ConnWatch {
    pub fn new(client: Arc<ClientStream>, idle_timeout: Duration, generation: u64) -> ConnWatch {
        ConnWatch {
            client,
            state: AtomicU8::new(IDLE),
            idle_timeout_ms: AtomicU64::new(millis(idle_timeout)),
            idle_generation: AtomicU64::new(generation),
            backend: Mutex::default(),
        }
    }

    pub(super) fn client(&self) -> &Arc<ClientStream> {
        &self.client
    }

    /// Waiting for the next request (unless closed meanwhile).
    pub(super) fn set_idle(&self) {
        let _ = self
            .state
            .compare_exchange(BUSY, IDLE, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// What it is doing now (read without a lock: a glance, for counts).
    pub fn phase(&self) -> Phase {
        match self.state.load(Ordering::Relaxed) {
            BUSY => Phase::Writing,
            _ if self.idle_generation.load(Ordering::Relaxed) == u64::MAX => Phase::Reading,
            _ => Phase::Waiting,
        }
    }

    /// Serving a request: neither waiting for one nor closed as idle.
    pub fn is_busy(&self) -> bool {
        self.state.load(Ordering::SeqCst) == BUSY
    }

    /// A request has arrived: whether it may be served (`false`: shutdown
    /// closed the connection as idle first, and the client was told
    /// nothing was done).
    pub(super) fn begin_request(&self) -> bool {
        self.state
            .compare_exchange(IDLE, BUSY, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    pub(super) fn set_idle_timeout(&self, timeout: Duration, generation: u64) {
        self.idle_timeout_ms
            .store(millis(timeout), Ordering::Relaxed);
        self.idle_generation.store(generation, Ordering::Relaxed);
    }

    pub(super) fn watch_backend(&self, stream: &Arc<Stream>) {
        let mut backend = self.backend.lock();
        if backend.closed {
            let _ = stream.shutdown(Shutdown::Both);
        }
        backend.in_use = Some(Arc::downgrade(stream));
    }

    /// Whether the connection was closed by force (at the end of a
    /// shutdown's grace period): what fails after that is not the
    /// backend's doing.
    pub(super) fn cut(&self) -> bool {
        self.backend.lock().closed
    }

    /// The backend connection is no longer this client's to cut at a
    /// forced close: from the pool it may carry someone else's request.
    pub(super) fn backend_done(&self) {
        self.backend.lock().in_use = None;
    }

    /// Closes the connection if it waits for a request; one mid-request
    /// is left to finish.
    /// The backend socket too: the only one an idle connection can be
    /// using is a background revalidation's, which no client waits for.
    pub fn close_if_idle(&self) {
        let closed =
            self.state
                .compare_exchange(IDLE, CLOSED_IDLE, Ordering::SeqCst, Ordering::SeqCst);
        if closed.is_ok() {
            self.close();
        }
    }

    /// The next request's head has begun: the connection waits under no
    /// keepalive_timeout until it is idle again (`set_idle_timeout`).
    pub(super) fn head_begun(&self) {
        self.idle_generation.store(u64::MAX, Ordering::Relaxed);
    }

    /// Whether the connection waits (or will, between requests) under a
    /// keepalive_timeout longer than `timeout` and taken from settings
    /// older than `generation`.
    pub fn waits_from_before(&self, generation: u64, timeout: Duration) -> bool {
        self.idle_generation.load(Ordering::Relaxed) < generation
            && self.idle_timeout_ms.load(Ordering::Relaxed) > millis(timeout)
    }

    /// Ends the connection whatever it is doing: the client socket and the
    /// backend one, so that no read on either waits out its timeout.
    pub fn close(&self) {
        // The backend side first: a thread woken by the client's close
        // then already sees the connection as cut (not as a client that
        // left: its request is logged as the shutdown's, not 499).
        // Shut down under the lock: released, the connection could go back
        // to the pool (`backend_done`) and carry another client's request.
        let in_use = {
            let mut backend = self.backend.lock();
            backend.closed = true;
            let in_use = backend.in_use.as_ref().and_then(Weak::upgrade);
            if let Some(stream) = &in_use {
                let _ = stream.shutdown(Shutdown::Both);
            }
            in_use
        };
        // Dropped outside the lock: it may be the last handle, and close.
        drop(in_use);
        let _ = self.client.shutdown(Shutdown::Both);
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::config::{Config, Target};
    use crate::upstream::Upstreams;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_backend_connection_begun_after_a_forced_close_fails_to_connect() {
        let backend = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = backend.local_addr().unwrap();
        let client = Arc::new(ClientStream::Tcp(TcpStream::connect(addr).unwrap()));
        let watch = ConnWatch::new(client, Duration::from_secs(5), 0);
        // The forced close comes after the request picked its target and
        // before the connect: the socket is shown to the watch before it
        // connects, and Linux keeps a shutdown of an unconnected socket,
        // so the connect that follows ends at once.
        watch.close();
        let upstreams = Upstreams::new(&Config::with_targets(vec![Target::new(
            addr.to_string(),
            addr,
        )]));
        let timeout = upstreams.backend_timeout();
        let checkout = upstreams.checkout(&upstreams.targets()[0], true, None, timeout, |stream| {
            watch.watch_backend(stream)
        });
        assert!(
            checkout.is_err(),
            "the connect went ahead after a forced close"
        );
    }

    #[test]
    fn a_unix_backend_connection_begun_after_a_forced_close_carries_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let _backend = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = Arc::new(ClientStream::Tcp(
            TcpStream::connect(tcp.local_addr().unwrap()).unwrap(),
        ));
        let watch = ConnWatch::new(client, Duration::from_secs(5), 0);
        watch.close();
        let upstreams = Upstreams::new(&Config::with_targets(vec![Target::unix(&path)]));
        let timeout = upstreams.backend_timeout();
        let checkout = upstreams.checkout(&upstreams.targets()[0], true, None, timeout, |stream| {
            watch.watch_backend(stream)
        });
        // Linux connects a Unix socket shut down before, but keeps the
        // shutdown: the request cannot go out on it.
        if let Ok(mut up) = checkout {
            let sent = up.conn.get_mut().write(b"GET / HTTP/1.1\r\n\r\n");
            assert!(sent.is_err(), "a request went out after a forced close");
        }
    }
}
