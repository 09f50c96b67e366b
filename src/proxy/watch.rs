//! What the server's shutdown sees of a client connection served on
//! another thread, and how it ends it: the client socket, whether the
//! connection waits for its next request, and the backend connection the
//! request in flight is using.

use parking_lot::Mutex;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct ConnWatch {
    client: Arc<TcpStream>,
    /// Raised while the connection waits for a request.
    idle: AtomicBool,
    backend: Mutex<Backend>,
}

#[derive(Default)]
struct Backend {
    /// A handle on the socket the request in flight is using, so a forced
    /// close ends a thread blocked on a backend that does not answer: the
    /// thread then unwinds and logs its request. The handle keeps the
    /// socket open, so the socket shut down is never another one that got
    /// its number after a close.
    in_use: Option<Arc<TcpStream>>,
    /// Closed by force: a backend connection taken after that (a retry)
    /// is shut down at once.
    closed: bool,
}

impl ConnWatch {
    pub fn new(client: Arc<TcpStream>) -> ConnWatch {
        ConnWatch {
            client,
            idle: AtomicBool::new(true),
            backend: Mutex::default(),
        }
    }

    pub(super) fn client(&self) -> &Arc<TcpStream> {
        &self.client
    }

    pub(super) fn set_idle(&self, idle: bool) {
        self.idle.store(idle, Ordering::SeqCst);
    }

    pub(super) fn watch_backend(&self, stream: &Arc<TcpStream>) {
        let mut backend = self.backend.lock();
        if backend.closed {
            let _ = stream.shutdown(Shutdown::Both);
        }
        backend.in_use = Some(stream.clone());
    }

    /// Whether the connection was closed by force (at the end of a
    /// shutdown's grace period): what fails after that is not the
    /// backend's doing.
    pub(super) fn cut(&self) -> bool {
        self.backend.lock().closed
    }

    pub(super) fn backend_done(&self) {
        // Dropped outside the lock: it may be the last handle, and close.
        let released = self.backend.lock().in_use.take();
        drop(released);
    }

    /// Closes the connection if it waits for a request; one mid-request
    /// is left to finish.
    pub fn close_if_idle(&self) {
        if self.idle.load(Ordering::SeqCst) {
            let _ = self.client.shutdown(Shutdown::Both);
        }
    }

    /// Ends the connection whatever it is doing: the client socket and the
    /// backend one, so that no read on either waits out its timeout.
    pub fn close(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let mut backend = self.backend.lock();
        backend.closed = true;
        if let Some(stream) = &backend.in_use {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}
