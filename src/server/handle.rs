//! The handle of a running server: its addresses, what stops it from
//! another thread, and the graceful shutdown.

use super::reload::Control;
use super::workers::Workers;
use super::Inner;
use crate::access_log::AccessLog;
use crate::admin::Admin;
use crate::cache::timer::Timer;
use crate::cache::Cache;
use crate::proxy::udp::UdpStream;
use crossbeam_channel::{Receiver, Sender};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After the grace period, how long to wait for forcibly closed connections.
const FORCED_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// At a shutdown, the longest the spans of the last requests may take to
/// reach the collector (`otel_exporter`): a collector that is down costs
/// the stop no more than this.
const OTEL_FLUSH_WAIT: Duration = Duration::from_secs(5);

/// A running server.
pub struct ServerHandle {
    pub(super) addr: SocketAddr,
    pub(super) inner: Arc<Inner>,
    pub(super) cache: Option<Arc<Cache>>,
    pub(super) admin: Option<Admin>,
    pub(super) workers: Arc<Workers>,
    /// Those of each of `listen`'s addresses.
    pub(super) listen_workers: Vec<Arc<Workers>>,
    /// Those of `tls_port`, when it is on.
    pub(super) tls_workers: Option<Arc<Workers>>,
    /// Those of each `stream.<name>`, by its name.
    pub(super) stream_workers: Vec<(Arc<str>, Arc<Workers>)>,
    /// Those of each `udp` stream, by its name.
    pub(super) udp_streams: Vec<(Arc<str>, UdpStream)>,
    pub(super) access_log: Option<AccessLog>,
    pub(super) timer: Option<Timer>,
    pub(super) stop_tx: Sender<()>,
    pub(super) stop_rx: Receiver<()>,
}

/// Asks a running server to stop, from any thread (a signal handler's,
/// say); the owner of the handle does the draining in [`ServerHandle::wait_configured`].
#[derive(Clone)]
pub struct StopTrigger {
    tx: Sender<()>,
}

impl StopTrigger {
    pub fn stop(&self) {
        let _ = self.tx.try_send(());
    }
}

impl ServerHandle {
    /// The address the server accepts connections on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The addresses of `listen`, as bound (a port 0 given its number).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listen_workers.iter().map(|w| w.local_addr()).collect()
    }

    /// The address HTTPS is accepted on, when `tls_port` is set.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_workers.as_ref().map(|w| w.local_addr())
    }

    /// The address the listener (or, for `udp`, the socket) of
    /// `stream.<name>` is bound to.
    pub fn stream_addr(&self, name: &str) -> Option<SocketAddr> {
        let tcp = (self.stream_workers.iter()).find(|(n, _)| **n == *name);
        let udp = (self.udp_streams.iter()).find(|(n, _)| **n == *name);
        tcp.map(|(_, w)| w.local_addr())
            .or_else(|| udp.and_then(|(_, u)| u.local_addr()))
    }

    /// The response cache, when `cache_size` is not 0.
    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.cache.as_ref()
    }

    /// The admin listener's address, when it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(Admin::local_addr)
    }

    /// Reopens the log file and reloads settings, from any thread.
    pub fn control(&self) -> Control {
        Control {
            inner: self.inner.clone(),
        }
    }

    pub fn stop_trigger(&self) -> StopTrigger {
        StopTrigger {
            tx: self.stop_tx.clone(),
        }
    }

    /// Client connections being served right now.
    pub fn live_connections(&self) -> usize {
        self.inner.connections.lock().live.len()
    }

    /// Blocks until a [`StopTrigger`] fires, then shuts down gracefully,
    /// with the `shutdown_timeout` in force when the stop comes (a reload
    /// may have changed it).
    pub fn wait_configured(self) -> bool {
        let _ = self.stop_rx.recv();
        let grace = self.inner.current.get().config.shutdown_timeout;
        self.shutdown(grace)
    }

    /// Stops accepting, closes idle connections, lets requests in flight
    /// finish for up to `grace`, then closes what is left and flushes the
    /// access log. Returns whether every connection finished in time.
    pub fn shutdown(mut self, grace: Duration) -> bool {
        let inner = &self.inner;
        {
            // Set under the lock new generations are put in force with: a
            // DNS lookup that ends now (`re_resolve`) installs nothing.
            let _installing = inner.current.installing();
            inner.shutting_down.store(true, Ordering::SeqCst);
        }
        // Every thread blocked in `accept` returns (EINVAL) and sees the flag.
        let streams = self.stream_workers.iter().map(|(_, w)| w);
        for workers in std::iter::once(&self.workers)
            .chain(&self.listen_workers)
            .chain(&self.tls_workers)
            .chain(streams)
        {
            let _ = socket2::SockRef::from(&workers.listener).shutdown(Shutdown::Read);
        }
        // Datagrams have no end to wait for: each session ends (and is
        // logged) now.
        self.udp_streams.clear();
        // Under `reuse_port` a new process may share the admin port too: it
        // is left at once as well, so that health checks reach the process
        // that serves, not the one draining (see below otherwise).
        if inner.current.get().config.reuse_port {
            if let Some(admin) = self.admin.take() {
                admin.finish();
            }
        }
        for checker in std::mem::take(&mut *inner.checker.lock()) {
            checker.stop();
        }
        if let Some(resolver) = inner.resolver.lock().take() {
            resolver.stop();
        }
        drop(inner.acme.lock().take());
        drop(inner.idle_closer.lock().take());
        inner.close_idle();
        let mut clean = inner.wait_drained(Instant::now() + grace);
        if !clean {
            // Connections just closed as idle may still be unwinding (with
            // a grace of 0 they always are): only one mid-request is cut.
            clean = !inner.any_busy();
            if !clean {
                log::warn!("shutdown: closing connections still busy after {grace:?}");
            }
            inner.close_all();
            inner.wait_drained(Instant::now() + FORCED_CLOSE_WAIT);
        }
        // Alone on its port, the admin listener serves through the drain,
        // so that a health checker reads `/healthz`'s 503 "shutting down"
        // rather than a refused connection, and `/status` shows the drain.
        if let Some(admin) = self.admin.take() {
            admin.finish();
        }
        // The last requests' spans, which the process would end before
        // their batch is due: within an exchange's time with a collector.
        if let Some(otel) = &inner.current.get().otel {
            otel.flush(OTEL_FLUSH_WAIT);
        }
        // The final snapshot, once no request can change the cache any more.
        if let Some(timer) = self.timer.take() {
            timer.finish();
        }
        if let Some(log) = self.access_log.take() {
            log.finish();
        }
        clean
    }
}
