//! The listener, the accept loop and the worker pool.
//!
//! Each client connection is served start to end by one OS thread, but
//! threads are reused: idle workers wait in `accept` on the shared
//! listener, and the one that gets a connection serves it itself, first
//! spawning a new worker if it was the last one accepting (leader and
//! followers). Workers unused for a minute retire. Spawning a thread per
//! connection would cost a mmap/munmap of its stack and the TLB shootdowns
//! that go with it: about 140 µs of CPU per connection on our benchmark
//! machine. Accepting in the worker instead of handing sockets over from an
//! acceptor thread spares a wake-up per connection.
//!
//! Shutdown: a flag, `shutdown(SHUT_RD)` on the listener to wake every
//! blocked `accept`, then closing the connections that sit idle between
//! requests; connections that are mid-request finish it (within a grace
//! period) and close.
//!
//! Reload: the settings live in one [`Shared`] generation behind
//! [`Current`]; a reload builds the next generation and swaps it in. Each
//! request takes the generation in force when it begins, so requests in
//! flight finish on the old settings and no connection is dropped.

use crate::access_log::{AccessLog, LogSender, Outputs, Record};
use crate::admin::Admin;
use crate::cache::persist;
use crate::cache::timer::{self, Timer};
use crate::cache::Cache;
use crate::config::{self, Config};
use crate::gzip::Gzip;
use crate::http::conn::{is_timeout, ClientStream};
use crate::http::proxy_protocol;
use crate::http::tls::{HandshakeError, TlsStream};
use crate::limits::{self, Limits};
use crate::metrics::Metrics;
use crate::proxy::{
    self, own_response, CacheRules, ConnWatch, Current, Inherited, Mirrors, Shared,
};
use crate::ratelimit::{self, Limiter};
use crate::throttle::OnceAMinute;
use crate::upstream::health::Checker;
use crate::upstream::resolve::{self, Resolve, Resolver};
use crate::upstream::{pools::Pools, state_file};
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, SendError, Sender};
use parking_lot::{Condvar, Mutex};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

/// How long an unused worker thread waits for a connection before it exits.
const WORKER_IDLE: Duration = Duration::from_secs(60);
/// Stack reserved per worker. Only touched pages cost memory; the proxy
/// keeps its buffers on the heap and its frames small.
const WORKER_STACK: usize = 256 * 1024;
/// Longest pause after repeated accept errors (e.g. out of descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// After the grace period, how long to wait for forcibly closed connections.
const FORCED_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How long a connection over the limit is given to take its 503.
const REJECT_WRITE_TIMEOUT: Duration = Duration::from_millis(100);
/// Connections the kernel completes and queues before they are accepted:
/// nginx's default (std's `TcpListener::bind` takes 128, which a burst of
/// new connections overflows into SYN retransmissions, a second each).
/// The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 511;

/// How often idle backend connections are looked at for the ones idle
/// past their age: how late after it one may be closed.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Each says its cause itself (in its message, not as a `source`, so that
/// printing the chain does not say it twice).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: SocketAddr, error: io::Error },
    #[error("cannot listen on {addr} (tls_port): {error}")]
    TlsBind { addr: SocketAddr, error: io::Error },
    #[error("cannot listen on {addr} (admin): {error}")]
    AdminBind { addr: SocketAddr, error: io::Error },
    #[error("cannot open the access log: {0}")]
    AccessLog(io::Error),
    #[error("cannot start a thread: {0}")]
    Thread(io::Error),
    #[error("path_to_persistence: {}: {error}", path.display())]
    Persistence { path: PathBuf, error: io::Error },
}

pub struct Server;

impl Server {
    /// Binds `bind:port` from the configuration and starts serving.
    pub fn start(config: Config) -> Result<ServerHandle, StartError> {
        let addr = config.listen_addr();
        let listener =
            bind(addr, config.reuse_port).map_err(|error| StartError::Bind { addr, error })?;
        Server::start_on(listener, config)
    }

    /// Serves on an already bound listener (tests bind `127.0.0.1:0`).
    /// The admin listener, when `admin_port` is set, is bound here, and
    /// so is the HTTPS one, when `tls_port` is.
    pub fn start_on(listener: TcpListener, config: Config) -> Result<ServerHandle, StartError> {
        let admin = match config.admin_addr() {
            Some(addr) => Some(
                bind(addr, config.reuse_port)
                    .map_err(|error| StartError::AdminBind { addr, error })?,
            ),
            None => None,
        };
        Server::start_with(listener, admin, config)
    }

    /// Serves on already bound public and admin listeners (`admin_port` is
    /// then ignored).
    pub fn start_with(
        listener: TcpListener,
        admin: Option<TcpListener>,
        config: Config,
    ) -> Result<ServerHandle, StartError> {
        let tls_listener = match config.tls_addr() {
            Some(addr) => Some(
                bind(addr, config.reuse_port)
                    .map_err(|error| StartError::TlsBind { addr, error })?,
            ),
            None => None,
        };
        let addr = listener.local_addr().map_err(|error| StartError::Bind {
            addr: config.listen_addr(),
            error,
        })?;
        let worker_priority = config.worker_priority;
        let inherited =
            set_inherited_options(&listener, config.connection_timeout, config.defer_accept);
        let access_log = AccessLog::start(Outputs {
            stdout: config.log_to_stdout,
            file: config.path_to_log.clone(),
            format: config.log_format.clone(),
        })
        .map_err(StartError::AccessLog)?;
        let cache = (config.cache_size > 0).then(|| Arc::new(new_cache(&config)));
        let cache_rules = CacheRules::new(&config, &cache);
        if let (Some(cache), Some(path)) = (&cache, &config.path_to_persistence) {
            persist::ensure_directory(path).map_err(|error| StartError::Persistence {
                path: path.clone(),
                error,
            })?;
            timer::load(cache, path, |key| {
                cache_rules.settings_of_key(key, &config.routes)
            });
        }
        let timer = match &cache {
            Some(cache) => Some(
                Timer::start(
                    cache.clone(),
                    config.unit_time,
                    config.path_to_persistence.clone(),
                )
                .map_err(StartError::Thread)?,
            ),
            None => None,
        };
        let pools = Pools::new(&config);
        if let Some(path) = &config.state_file {
            restore_states(&pools, path);
        }
        let (shutting_down, metrics) = (Arc::new(AtomicBool::new(false)), Arc::default());
        let shared = Shared {
            cache: cache.clone(),
            pools,
            log: access_log.sender(),
            mirrors: Mirrors::new(Arc::clone(&metrics), Arc::clone(&shutting_down)),
            shutting_down,
            metrics,
            limiters: limiters_for(&config, None),
            cache_rules,
            gzip: config.pool_configs().map(Gzip::of).collect(),
            auth_answers: Default::default(),
            config,
        };
        let inner = Arc::new(Inner {
            shutting_down: shared.shutting_down.clone(),
            metrics: shared.metrics.clone(),
            log: shared.log.clone(),
            current: Arc::new(Current::new(shared)),
            checker: Mutex::new(Vec::new()),
            resolver: Mutex::new(None),
            idle_closer: Mutex::new(None),
            lookup_failures: Mutex::default(),
            connections: Mutex::new(Connections::default()),
            drained: Condvar::new(),
            next_id: AtomicU64::new(0),
            inherited,
            listening: addr,
        });
        let first = inner.current.get();
        first.mirrors.attach(&inner.current);
        *inner.checker.lock() = first
            .pools
            .start_checkers(&first.config)
            .map_err(StartError::Thread)?;
        drop(first);
        restart_resolver(&inner).map_err(StartError::Thread)?;
        let (stop_tx, stop_rx) = bounded(1);
        // Ready to serve: the snapshot loaded, the settings in force. All
        // listen before any is served, so that none fails with another
        // already taking connections.
        start_listening(&listener).map_err(|error| StartError::Bind { addr, error })?;
        if let Some(tls) = &tls_listener {
            let addr = tls.local_addr().unwrap_or(addr);
            start_listening(tls).map_err(|error| StartError::TlsBind { addr, error })?;
        }
        if let Some(admin) = &admin {
            let addr = admin.local_addr().unwrap_or(addr);
            start_listening(admin).map_err(|error| StartError::AdminBind { addr, error })?;
        }
        let workers = Workers::start((listener, inherited), &inner, worker_priority, false)?;
        log::info!("listening on {addr}");
        let tls_workers = match tls_listener {
            Some(listener) => {
                let inherited =
                    set_inherited_options(&listener, inherited.timeout, inherited.deferred);
                let workers = Workers::start((listener, inherited), &inner, worker_priority, true)?;
                log::info!("listening on {} (TLS)", workers.local_addr());
                Some(workers)
            }
            None => None,
        };
        log_error_pages(&inner.current.get().config);
        warn_of_limits(&inner.current.get().config);
        let admin = match admin {
            Some(listener) => {
                Some(Admin::start(listener, inner.current.clone()).map_err(StartError::Thread)?)
            }
            None => None,
        };
        Ok(ServerHandle {
            addr,
            inner,
            cache,
            admin,
            workers,
            tls_workers,
            access_log: Some(access_log),
            timer,
            stop_tx,
            stop_rx,
        })
    }
}

/// Says which error pages are in force (at start and on every reload), so
/// that an operator sees a page was picked up without making an error.
fn log_error_pages(config: &Config) {
    let pages = &config.error_pages;
    if let Some(dir) = pages.dir() {
        let statuses: Vec<String> = pages.found().map(|(s, _, _)| s.to_string()).collect();
        let statuses = if statuses.is_empty() {
            "none".to_string()
        } else {
            statuses.join(", ")
        };
        log::info!("error pages from {}: {statuses}", dir.display());
    }
}

/// Puts the targets in the states `state_file` kept (before the health
/// checker starts: a target in maintenance is not probed), and says what
/// was applied and what was not.
fn restore_states(pools: &Pools, path: &std::path::Path) {
    let restored = state_file::restore_at_start(pools, path);
    if restored.missing {
        log::info!(
            "state_file {}: none yet; every target starts ready",
            config::printable(&path.display().to_string())
        );
    }
    for applied in &restored.applied {
        log::info!("{applied}");
    }
    for warning in &restored.warnings {
        log::warn!("{warning}");
    }
}

/// The rate limiter `config` asks for: the running one when a reload
/// leaves the limit as it was (clients keep their buckets), else a new one.
fn limiter_for(config: &Config, running: Option<&Shared>) -> Option<Arc<Limiter>> {
    let (rate, burst) = config.effective_rate_limit()?;
    match running {
        Some(old) if same_rate_limit(&old.config, config) => {
            old.limiters.first().cloned().flatten()
        }
        _ => Some(Arc::new(Limiter::new(rate, burst))),
    }
}

/// Whether the two limit requests alike: buckets kept across a reload
/// count what they counted.
fn same_rate_limit(old: &Config, new: &Config) -> bool {
    old.effective_rate_limit() == new.effective_rate_limit()
        && old.rate_limit_key == new.rate_limit_key
}

/// The rate limiters of each pool, `targets`' first: a pool that sets
/// its own limit has buckets of its own (kept from the running pool of
/// its name when the limit is the same), the others share the top
/// level's, as nginx's `limit_req` is inherited by a `location` that
/// sets none.
fn limiters_for(config: &Config, running: Option<&Shared>) -> Vec<Option<Arc<Limiter>>> {
    let top = limiter_for(config, running);
    let mut limiters = vec![top.clone()];
    for pool in &config.pools {
        if !pool.own_rate_limit {
            limiters.push(top.clone());
            continue;
        }
        let limit = pool.config.effective_rate_limit();
        let kept = running.and_then(|old| {
            let at =
                (old.config.pools.iter()).position(|p| p.name == pool.name && p.own_rate_limit)?;
            let same = same_rate_limit(&old.config.pools[at].config, &pool.config);
            same.then(|| old.limiters.get(at + 1).cloned().flatten())
                .flatten()
        });
        let new = || limit.map(|(rate, burst)| Arc::new(Limiter::new(rate, burst)));
        limiters.push(kept.or_else(new));
    }
    limiters
}

fn new_cache(config: &Config) -> Cache {
    Cache::new(config.cache_size, config.effective_max_object_size())
}

/// Options set once on the listener instead of three system calls per
/// connection: Linux copies TCP_NODELAY and the socket timeouts to every
/// socket `accept` returns. Elsewhere the connection sets them itself.
/// The receive timeout also bounds `accept` itself, after which an idle
/// worker may retire: it is at most WORKER_IDLE, or a `timeout` of minutes
/// would keep idle threads as long (a connection's reads set the timeout
/// they need before they wait, see `ReadTimeout`). With `defer`,
/// connections are accepted once their first bytes have come (see
/// [`defer_accept`]).
fn set_inherited_options(listener: &TcpListener, timeout: Duration, defer: bool) -> Inherited {
    let read_timeout = timeout.min(WORKER_IDLE);
    let socket = socket2::SockRef::from(listener);
    let set = socket
        .set_nodelay(true)
        .and_then(|()| socket.set_read_timeout(Some(read_timeout)))
        .and_then(|()| socket.set_write_timeout(Some(timeout)));
    if let Err(e) = set {
        log::warn!("cannot set socket options on the listener: {e}");
    }
    let deferred = defer
        && defer_accept(listener)
            .inspect_err(|e| log::warn!("defer_accept: {e}; connections are accepted at once"))
            .is_ok();
    Inherited {
        timeout,
        read_timeout,
        deferred,
        // Known since it was bound: the call cannot fail on a listening
        // socket. As `$server_addr` writes it: `bind = ::ffff:127.0.0.1`
        // is 127.0.0.1, and `::ffff:0.0.0.0` a wildcard.
        addr: (listener.local_addr())
            .map(proxy::canonical)
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
    }
}

/// Binds `addr` as `TcpListener::bind` does (with SO_REUSEADDR, so that a
/// restart is not refused while connections of the last run linger in
/// TIME_WAIT), and with SO_REUSEPORT when asked: a new process can then
/// listen beside a running one, and the kernel spreads new connections
/// over both until the old one is stopped. Then it listens only once it
/// can serve (see [`start_listening`]): a process that joined the group
/// while it loaded its snapshot would be handed connections it could not
/// answer for that long, while the running one could. Without it, it
/// listens at once: a second process on the port is refused here, not
/// once both have loaded their snapshots.
fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // `bind = ::` takes IPv4 too (README), whatever the system's default
    // is (Linux's net.ipv6.bindv6only, on in some distributions and on
    // the BSDs); `::ffff:127.0.0.1` can be bound only so.
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    if reuse_port {
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        #[cfg(not(unix))]
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "reuse_port: no SO_REUSEPORT here",
        ));
    }
    socket.bind(&addr.into())?;
    if !reuse_port {
        socket.listen(LISTEN_BACKLOG)?;
    }
    Ok(socket.into())
}

/// Starts taking connections on a listener [`bind`] made (again, and
/// harmlessly, on one already listening: one a test bound).
fn start_listening(listener: &TcpListener) -> io::Result<()> {
    socket2::SockRef::from(listener).listen(LISTEN_BACKLOG)
}

/// Has the kernel hold a new connection until its first bytes arrive
/// (TCP_DEFER_ACCEPT; Apache's default `AcceptFilter http data` on Linux,
/// nginx's `listen ... deferred`, HAProxy's `defer-accept`). A thread per
/// connection gains most from it: the worker that accepts finds the
/// request there, instead of sleeping again at once to wait for it. A
/// client that says nothing is passed on after a second anyway (the
/// kernel's first SYN-ACK retransmission), and the header timeout runs
/// from then.
fn defer_accept(listener: &TcpListener) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let seconds: libc::c_int = 1;
        // SAFETY: the descriptor is the listener's, open for the call; the
        // option value is a c_int we own, passed with its size.
        let done = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&seconds as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if done == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = listener;
        Err(io::Error::new(io::ErrorKind::Unsupported, "Linux only"))
    }
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    inner: Arc<Inner>,
    cache: Option<Arc<Cache>>,
    admin: Option<Admin>,
    workers: Arc<Workers>,
    /// Those of `tls_port`, when it is on.
    tls_workers: Option<Arc<Workers>>,
    access_log: Option<AccessLog>,
    timer: Option<Timer>,
    stop_tx: Sender<()>,
    stop_rx: Receiver<()>,
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

    /// The address HTTPS is accepted on, when `tls_port` is set.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_workers.as_ref().map(|w| w.local_addr())
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
        for workers in std::iter::once(&self.workers).chain(&self.tls_workers) {
            let _ = socket2::SockRef::from(&workers.listener).shutdown(Shutdown::Read);
        }
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

struct Inner {
    /// The settings in force.
    current: Arc<Current>,
    /// The active health checkers of the generation in force: one per
    /// pool that has them.
    checker: Mutex<Vec<Checker>>,
    /// The thread that looks targets' names up again (`resolve_interval`).
    resolver: Mutex<Option<Resolver>>,
    /// What asks the thread that closes idle connections after a reload
    /// shortened their timeout (see `Control::close_idle_after`); dropped,
    /// it stops the thread.
    idle_closer: Mutex<Option<Sender<IdleClose>>>,
    /// Names that did not resolve, each said once a minute at most.
    lookup_failures: Mutex<resolve::Failures>,
    /// What every generation shares.
    shutting_down: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    log: LogSender,
    connections: Mutex<Connections>,
    /// Signalled whenever a connection ends.
    drained: Condvar,
    next_id: AtomicU64,
    /// What accepted sockets come with (see `set_inherited_options`).
    inherited: Inherited,
    /// The address actually listened on (a reload keeps it).
    listening: SocketAddr,
}

/// The live client connections, so shutdown can reach them, and how many
/// each client address holds.
#[derive(Default)]
struct Connections {
    live: HashMap<u64, Arc<ConnWatch>>,
    /// By [`ratelimit::counted_as`]: an IPv6 client's /64.
    per_client: HashMap<IpAddr, usize>,
    /// Connections being refused (see [`Refusing`]).
    refusing: usize,
}

impl Inner {
    fn close_idle(&self) {
        for conn in self.connections.lock().live.values() {
            conn.close_if_idle();
        }
    }

    fn any_busy(&self) -> bool {
        self.connections.lock().live.values().any(|c| c.is_busy())
    }

    fn close_all(&self) {
        for conn in self.connections.lock().live.values() {
            conn.close();
        }
    }

    fn wait_drained(&self, deadline: Instant) -> bool {
        let mut connections = self.connections.lock();
        let busy = |c: &Connections| !c.live.is_empty() || c.refusing > 0;
        while busy(&connections) {
            if self
                .drained
                .wait_until(&mut connections, deadline)
                .timed_out()
            {
                return !busy(&connections);
            }
        }
        true
    }
}

/// A connection's place in the registry; leaving it (on drop, however the
/// connection ended) frees the slot counted against `max_connections` and
/// `max_connections_per_client`.
struct Slot {
    inner: Arc<Inner>,
    id: u64,
    /// The client as `max_connections_per_client` counts it
    /// ([`ratelimit::counted_as`]).
    client: IpAddr,
    watch: Arc<ConnWatch>,
}

impl Slot {
    /// Counts the connection against `client` instead (the one its PROXY
    /// header named; at accept only the balancer was known), unless that
    /// client already holds `limit` connections (0: no limit).
    fn claim(&mut self, client: IpAddr, limit: usize) -> bool {
        let client = ratelimit::counted_as(client);
        if client == self.client {
            return true;
        }
        let mut connections = self.inner.connections.lock();
        if limit != 0 && connections.per_client.get(&client) >= Some(&limit) {
            return false;
        }
        *connections.per_client.entry(client).or_default() += 1;
        release(&mut connections.per_client, self.client);
        self.client = client;
        true
    }
}

/// Takes one connection off `client`'s count.
fn release(per_client: &mut HashMap<IpAddr, usize>, client: IpAddr) {
    if let Entry::Occupied(mut held) = per_client.entry(client) {
        *held.get_mut() -= 1;
        if *held.get() == 0 {
            held.remove();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut connections = self.inner.connections.lock();
            connections.live.remove(&self.id);
            release(&mut connections.per_client, self.client);
        }
        self.inner
            .metrics
            .connections
            .fetch_sub(1, Ordering::Relaxed);
        self.inner.drained.notify_all();
    }
}

/// The worker threads and the listener they share. An idle worker is a
/// thread blocked in `accept`; the one that gets a connection serves it
/// itself, after making sure another thread is left accepting. No hand-off:
/// a new connection wakes exactly one thread (Linux wakes one `accept`er per
/// connection), where an acceptor passing sockets to workers woke two.
struct Workers {
    listener: TcpListener,
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
    /// The listener is `tls_port`'s: its connections begin with a TLS
    /// handshake.
    tls: bool,
    /// What its connections come with, the address they reach
    /// (`$server_addr`, `$server_port`) among it (see `set_inherited_options`).
    inherited: Inherited,
}

impl Workers {
    /// The first worker of `listener`'s, accepting.
    fn start(
        (listener, inherited): (TcpListener, Inherited),
        inner: &Arc<Inner>,
        priority: Option<i32>,
        tls: bool,
    ) -> Result<Arc<Workers>, StartError> {
        let workers = Arc::new(Workers {
            listener,
            inner: inner.clone(),
            idle: AtomicUsize::new(0),
            priority,
            started: Instant::now(),
            next_sweep: AtomicU64::new(0),
            surplus: Surplus::new(),
            tls,
            inherited,
        });
        spawn_worker(&workers).map_err(StartError::Thread)?;
        Ok(workers)
    }

    fn local_addr(&self) -> SocketAddr {
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

/// Raises the descriptor limit as far as `max_connections` needs and the
/// hard limit allows, then says which of the process's limits would stop
/// it short of `max_connections` (and the idle backend connections kept
/// besides).
fn warn_of_limits(config: &Config) {
    let targets = config.all_targets().count();
    let pooled: usize = (config.pool_configs())
        .map(|c| c.upstream_keepalive * c.targets.len())
        .sum();
    limits::raise_descriptor_limit(config.max_connections, targets, pooled);
    let limits = Limits::of_this_process();
    for shortfall in limits.shortfalls(config.max_connections, targets, pooled) {
        log::warn!("{shortfall}");
    }
}

/// Starts one more worker; logs (once a minute) if the system refuses a
/// thread.
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
    loop {
        let accepted = workers.listener.accept();
        if inner.shutting_down.load(Ordering::SeqCst) {
            break;
        }
        let (stream, peer) = match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                (stream, peer)
            }
            // The listener's receive timeout (set for the sockets it
            // hands out) also bounds `accept`: a thread unused for a while
            // retires, unless it is the last one accepting.
            Err(e) if is_timeout(&e) => {
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
        let Some(stream) = client_stream(stream, workers.tls, &shared.config) else {
            workers.idle.fetch_add(1, Ordering::SeqCst);
            continue;
        };
        let registered = if last && spawn_worker(workers).is_err() {
            Err(Refusing::new(inner))
        } else {
            register(inner, &stream, peer.ip().to_canonical(), &shared.config)
        };
        match registered {
            Ok(slot) => {
                crate::sched::set_batch(shared.config.batch_scheduling);
                drop(shared);
                let inherited = workers.inherited.accepted_by(stream.tcp());
                serve(stream, peer, slot, inner, inherited);
            }
            Err(Some(refusing)) => {
                let server = workers.inherited.accepted_by(stream.tcp()).addr;
                refuse(stream, (peer, server), &shared, refusing)
            }
            // A shutdown began: dropped, as a connection accepted then is.
            Err(None) => {}
        }
        workers.idle.fetch_add(1, Ordering::SeqCst);
        idle_since = Instant::now();
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

/// Takes a slot for a new connection, or refuses it over
/// `max_connections` or over `max_connections_per_client` for `client`
/// (see [`Refusing::new`] for the `None`).
fn register(
    inner: &Arc<Inner>,
    stream: &Arc<ClientStream>,
    client: IpAddr,
    config: &Config,
) -> Result<Slot, Option<Refusing>> {
    let client = ratelimit::counted_as(client);
    let mut connections = inner.connections.lock();
    // Behind a PROXY protocol balancer the peer is the balancer: the
    // client is known, and checked, once its header is read.
    let per_client = if config.proxy_protocol {
        0
    } else {
        config.max_connections_per_client
    };
    let full = connections.live.len() >= config.max_connections
        || (per_client != 0 && connections.per_client.get(&client) >= Some(&per_client));
    if full {
        return Err(Refusing::counted(inner, &mut connections));
    }
    let held = connections.per_client.entry(client).or_default();
    *held += 1;
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let watch = Arc::new(ConnWatch::new(
        stream.clone(),
        inner.inherited.timeout,
        inner.current.generation(),
    ));
    inner.metrics.connections.fetch_add(1, Ordering::Relaxed);
    connections.live.insert(id, watch.clone());
    Ok(Slot {
        inner: inner.clone(),
        id,
        client,
        watch,
    })
}

/// Answers 503 to `stream` from `peer`, which reached `server`, and logs
/// it. One to `tls_port` is closed unanswered: an answer over TLS would
/// take the handshake the limit is there to spare.
fn refuse(
    stream: Arc<ClientStream>,
    (peer, server): (SocketAddr, SocketAddr),
    shared: &Shared,
    refusing: Refusing,
) {
    let (time, started) = (SystemTime::now(), Instant::now());
    let refused = match &*stream {
        ClientStream::Tcp(tcp) => reject(tcp, 503, None, shared),
        ClientStream::Tls(tls) => {
            let _ = tls.tcp().shutdown(Shutdown::Both);
            Refused::default()
        }
    };
    log_rejected(refused, 503, (peer, server), time, started, shared);
    drop(refusing);
}

/// Logs what [`reject`] answered to `peer`, which reached `server`.
fn log_rejected(
    refused: Refused,
    status: u16,
    (peer, server): (SocketAddr, SocketAddr),
    time: SystemTime,
    started: Instant,
    shared: &Shared,
) {
    let client = refused.client.unwrap_or(peer);
    let mut record = Record::refused(
        time,
        proxy::canonical(client),
        server,
        refused.request_line,
        refused.bytes,
        started.elapsed(),
    );
    record.status = status;
    record.head_bytes = refused.head_bytes;
    shared.log_refusal(record);
}

/// A connection being refused, counted until its 503 is logged: a
/// shutdown waits for that line rather than close the log under it.
struct Refusing {
    inner: Arc<Inner>,
}

impl Refusing {
    /// `None` once a shutdown has begun (checked under the lock its wait
    /// takes): it may have found nothing left to wait for, and closed the
    /// log; the connection is then dropped unanswered.
    fn new(inner: &Arc<Inner>) -> Option<Refusing> {
        Refusing::counted(inner, &mut inner.connections.lock())
    }

    /// [`Refusing::new`] with the registry's lock held already.
    fn counted(inner: &Arc<Inner>, connections: &mut Connections) -> Option<Refusing> {
        if inner.shutting_down.load(Ordering::SeqCst) {
            return None;
        }
        connections.refusing += 1;
        Some(Refusing {
            inner: inner.clone(),
        })
    }
}

impl Drop for Refusing {
    fn drop(&mut self) {
        self.inner.connections.lock().refusing -= 1;
        self.inner.drained.notify_all();
    }
}

/// Answers a connection we will not serve, without letting the client hold
/// the worker: non-blocking, one short write, close.
///
/// Never inlined: its buffer would otherwise sit in the base frame of
/// every worker (which now accepts), a page each idle connection keeps.
///
/// Returns, for the access log, what could be read of the request line,
/// the client a PROXY header named (`proxy_protocol`), and the body bytes
/// sent: a refusal is the overload signal an operator most needs to see
/// (nginx logs its `limit_conn` 503s too).
#[inline(never)]
fn reject(mut stream: &TcpStream, status: u16, text: Option<&str>, shared: &Shared) -> Refused {
    let _ = stream.set_nonblocking(true);
    // Read what the client already sent, so closing does not reset the
    // connection before it sees our answer.
    let mut sink = [0u8; 4096];
    let read = stream.read(&mut sink).unwrap_or(0);
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(REJECT_WRITE_TIMEOUT));
    let mut received = &sink[..read];
    let mut client = None;
    if shared.config.proxy_protocol {
        if let Ok(Some(header)) = proxy_protocol::parse(received) {
            received = &received[header.len..];
            client = header.source;
        }
    }
    let head_request = proxy::starts_a_head_request(received);
    let response = own_response(status, true, b"", text, &shared.config);
    let sent = response.send(&mut stream, head_request);
    let _ = stream.shutdown(Shutdown::Write);
    Refused {
        request_line: proxy::first_line(received),
        client,
        head_bytes: sent.map_or(0, |_| response.head().len() as u64),
        bytes: sent.unwrap_or(0),
    }
}

/// What [`reject`] tells the access log.
#[derive(Default)]
struct Refused {
    request_line: String,
    client: Option<SocketAddr>,
    head_bytes: u64,
    bytes: u64,
}

/// Serves the connection `stream` from `peer`, accepted with what
/// `inherited` says, in `slot`.
fn serve(
    stream: Arc<ClientStream>,
    peer: SocketAddr,
    mut slot: Slot,
    inner: &Inner,
    inherited: Inherited,
) {
    if !cfg!(target_os = "linux") {
        let tcp = stream.tcp();
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(inherited.read_timeout));
        let _ = tcp.set_write_timeout(Some(inherited.timeout));
    }
    // What the first request head is due by counts from here: a TLS
    // handshake takes from its time, as a PROXY header does.
    let accepted = Instant::now();
    let proxied = match stream
        .tls()
        .map(|tls| begin_tls(tls, (peer, inherited.addr), accepted, &mut slot, inner))
    {
        None => None,
        Some(Ok(proxied)) => proxied,
        Some(Err(Ended)) => return,
    };
    let (watch, connection) = (slot.watch.clone(), slot.id + 1);
    let mut claim = |client, limit| slot.claim(client, limit);
    proxy::serve(
        watch,
        (peer, connection, accepted),
        proxied,
        &inner.current,
        inherited,
        &mut claim,
    );
    if let Some(tls) = stream.tls() {
        tls.say_closing();
    }
    // Leaving the registry frees the slot only once the socket is done with.
    drop(slot);
}

/// A connection to `tls_port` that ended before its first request.
struct Ended;

/// Reads the PROXY header a connection to `tls_port` starts with (under
/// `proxy_protocol`), then completes its handshake, both within the time
/// a request head is given from `accepted`. A failure is counted and the
/// connection ends; plain HTTP sent there is answered 400 and logged, as
/// nginx does. The client a header names is counted in `slot` before the
/// handshake: over `max_connections_per_client`, the connection is closed
/// unanswered, as at accept, sparing the handshake.
fn begin_tls(
    tls: &TlsStream,
    (peer, server): (SocketAddr, SocketAddr),
    accepted: Instant,
    slot: &mut Slot,
    inner: &Inner,
) -> Result<Option<proxy_protocol::Header>, Ended> {
    let shared = inner.current.get();
    let config = &shared.config;
    let limit = config.client_header_timeout.min(config.connection_timeout);
    let proxied = match config.proxy_protocol {
        false => None,
        true => match proxy_protocol::read_header(tls.tcp(), accepted + limit) {
            Ok(header) => Some(header),
            Err(why) => {
                proxy_protocol::warn_of(peer.ip().to_canonical(), &why);
                return Err(Ended);
            }
        },
    };
    let named = proxied.as_ref().and_then(|header| header.source);
    if let Some(client) = named {
        if !slot.claim(
            client.ip().to_canonical(),
            config.max_connections_per_client,
        ) {
            let (time, started) = (SystemTime::now(), Instant::now());
            let _ = tls.tcp().shutdown(Shutdown::Both);
            log_rejected(
                Refused::default(),
                503,
                (client, server),
                time,
                started,
                &shared,
            );
            return Err(Ended);
        }
    }
    let limit = limit.saturating_sub(accepted.elapsed());
    let handshake = tls.handshake(limit, inner.inherited.read_timeout);
    let Err(failure) = handshake.and_then(|()| check_resumed(tls, config)) else {
        inner.metrics.tls_handshakes.fetch_add(1, Ordering::Relaxed);
        return Ok(proxied);
    };
    inner
        .metrics
        .tls_handshake_failures
        .fetch_add(1, Ordering::Relaxed);
    if let HandshakeError::PlainHttp = failure {
        let (time, started) = (SystemTime::now(), Instant::now());
        let text = "The plain HTTP request was sent to the HTTPS port\n";
        let refused = reject(tls.tcp(), 400, Some(text), &shared);
        // The client a PROXY header named, read before the handshake.
        let client = proxied.and_then(|header| header.source).unwrap_or(peer);
        log_rejected(refused, 400, (client, server), time, started, &shared);
    } else {
        log::debug!("client {peer}: TLS handshake: {failure}");
    }
    Err(Ended)
}

/// A resumed session's client certificate, checked again as of now
/// (see [`crate::tls::ClientAuth::check_again`]).
fn check_resumed(tls: &TlsStream, config: &Config) -> Result<(), HandshakeError> {
    match &config.tls_client_auth {
        Some(auth) if tls.resumed() => {
            (auth.check_again(&tls.client_certificates())).map_err(HandshakeError::Tls)
        }
        _ => Ok(()),
    }
}

/// The accepted `tcp` as the connection it is: a plain one, or the start
/// of a TLS one (its handshake is the serving thread's); `None` when the
/// settings cannot start a TLS session.
fn client_stream(tcp: TcpStream, tls: bool, config: &Config) -> Option<Arc<ClientStream>> {
    if !tls {
        return Some(Arc::new(ClientStream::Tcp(tcp)));
    }
    let settings = config.tls.clone()?;
    match TlsStream::accepting(tcp, settings) {
        Ok(session) => Some(Arc::new(ClientStream::Tls(Box::new(session)))),
        Err(e) => {
            log::warn!("cannot start a TLS session: {e}");
            None
        }
    }
}

/// Operations on a running server from any thread (the signal thread's):
/// reopen the access log (SIGUSR1), reload the settings (SIGHUP).
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

/// Why a reload was refused (the running configuration stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("targets: {target} is this proxy's own address ({listening}): requests would loop")]
    Loop {
        target: String,
        listening: SocketAddr,
    },
    #[error("access log: {0}")]
    Log(io::Error),
    /// Checked by the loader with the file's own `path_to_persistence`,
    /// and again with the one kept until a restart.
    #[error("state_file: {0}")]
    StateFile(String),
    #[error("path_to_log: {0}")]
    LogIsSnapshot(String),
    /// A drain finishes on the settings it began with.
    #[error("a shutdown has begun")]
    ShuttingDown,
}

/// What a reload did.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// Keys that changed but need a restart; their old values stay.
    pub needs_restart: Vec<&'static str>,
}

impl Control {
    /// Writes out the records queued so far, then reopens `path_to_log`
    /// (after logrotate renamed it). On failure the old file stays in use.
    pub fn reopen_log(&self) -> io::Result<()> {
        let shared = self.inner.current.get();
        shared.log.reopen(
            shared.config.path_to_log.clone(),
            shared.config.log_format.clone(),
        )
    }

    /// The cache's capacity in force, which only a restart changes.
    pub fn cache_size(&self) -> u64 {
        self.inner.current.get().config.cache_size
    }

    /// Puts `next` in force: targets, timeouts, limits, log settings and
    /// cache rules change for every request that begins from now on;
    /// requests in flight finish on the old settings. Keys that need a
    /// restart keep their old values and are reported (and logged). Fails,
    /// changing nothing, if a new `path_to_log` cannot be opened, or once
    /// a shutdown has begun.
    pub fn reload(&self, mut next: Config) -> Result<Reloaded, ReloadError> {
        let _installing = self.inner.current.installing();
        // Checked under the lock the shutdown sets its flag with.
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(ReloadError::ShuttingDown);
        }
        let old = self.inner.current.get();
        let was = &old.config;
        let mut reloaded = Reloaded::default();
        // Keys whose new value only takes effect at the next start: the
        // running value stays, and the change is reported. Each config
        // field is named after its key.
        macro_rules! keep_running {
            ($($key:ident),*) => {$(
                if next.$key != was.$key {
                    reloaded.needs_restart.push(stringify!($key));
                    next.$key = was.$key.clone();
                }
            )*};
        }
        keep_running!(
            port,
            bind,
            admin_port,
            admin_bind,
            cache_size,
            max_object_size,
            unit_time,
            worker_priority,
            defer_accept,
            reuse_port,
            path_to_persistence
        );
        // The certificates are read again at every reload (a renewed
        // one is served from then on), and the checks of clients' own
        // made again (a revocation counts from then on), even when the
        // port they are for changes, which waits for a restart; but
        // for TLS turned on or off, which waits for it too.
        if next.tls_port != was.tls_port {
            reloaded.needs_restart.push("tls_port");
            next.tls_port = was.tls_port;
            if was.tls.is_none() || next.tls.is_none() {
                next.tls_certificates = was.tls_certificates.clone();
                next.tls_served = was.tls_served.clone();
                next.tls_verify_client = was.tls_verify_client;
                next.tls_protocols = was.tls_protocols;
                next.tls_strict_sni = was.tls_strict_sni;
                next.tls_client_ca = was.tls_client_ca.clone();
                next.tls_client_crl = was.tls_client_crl.clone();
                next.tls_client_auth = was.tls_client_auth.clone();
                next.tls = was.tls.clone();
            }
        }
        next.keep_tls_sessions_of(was);
        next.log_to_stdout = was.log_to_stdout;
        let refused = |e| {
            self.refused();
            Err(e)
        };
        if let Some(why) = next.state_file_shared() {
            return refused(ReloadError::StateFile(why));
        }
        if let Some(why) = next.log_shares_snapshot() {
            return refused(ReloadError::LogIsSnapshot(why));
        }
        // Checked by the file's `port` as it was loaded; the port listened
        // on is the running one, which a reload keeps.
        let listening = self.inner.listening;
        if let Some(t) =
            (next.pool_configs()).find_map(|c| config::target_at(listening, &c.targets))
        {
            return refused(ReloadError::Loop {
                target: t.name.clone(),
                listening: self.inner.listening,
            });
        }
        if next.path_to_log != was.path_to_log || next.log_format != was.log_format {
            if let Err(e) = old
                .log
                .reopen(next.path_to_log.clone(), next.log_format.clone())
            {
                return refused(ReloadError::Log(e));
            }
        }
        if next.max_connections > was.max_connections {
            warn_of_limits(&next);
        }
        let shortened = next.effective_keepalive_timeout() < was.effective_keepalive_timeout();
        let state_file_moved = next.state_file != was.state_file;
        self.install(&old, next, false);
        // The states as the new targets hold them (one gone, one come), in
        // the file a restart would read, a new `state_file` too.
        let installed = self.inner.current.get();
        if let Some(path) = &installed.config.state_file {
            if state_file::save_or_warn(path, &installed.pools, "reload").is_ok()
                && state_file_moved
            {
                log::info!(
                    "reload: the targets' states are now kept in state_file {}",
                    config::printable(&path.display().to_string())
                );
            }
        }
        drop(installed);
        if shortened {
            self.close_idle_after(self.inner.current.generation());
        }
        self.restart_checker();
        if let Err(e) = restart_resolver(&self.inner) {
            log::error!("reload: cannot start the thread that resolves targets' names: {e}");
        }
        self.inner.metrics.reloads.fetch_add(1, Ordering::Relaxed);
        for key in &reloaded.needs_restart {
            log::warn!("reload: `{key}` changed; it takes effect at the next restart");
        }
        log_error_pages(&self.inner.current.get().config);
        log::info!("reload: new configuration in force");
        Ok(reloaded)
    }

    /// Puts `next` in force as the generation after `old` (the one in
    /// force; the caller holds `installing`): targets that stay keep
    /// their health and counters, and their idle connections with
    /// `keep_idle` (see [`Upstreams::keep_state_of`]), which is given for
    /// `old`'s own settings with new addresses: then the sign-in answers
    /// kept are too.
    fn install(&self, old: &Shared, mut next: Config, keep_idle: bool) {
        // Rules that keep their names keep their counts (rules shared
        // with the running configuration, as after a new lookup of
        // targets' names, have them already).
        if let Some(rewrites) = Arc::get_mut(&mut next.rewrites) {
            rewrites.keep_counts_of(&old.config.rewrites);
        }
        let mut pools = Pools::new(&next);
        pools.keep_state_of(&old.pools, keep_idle);
        let replaced = self.inner.current.replace(Shared {
            limiters: limiters_for(&next, Some(old)),
            cache_rules: CacheRules::new(&next, &old.cache),
            gzip: next.pool_configs().map(Gzip::of).collect(),
            auth_answers: match keep_idle {
                true => old.auth_answers.clone(),
                false => Default::default(),
            },
            config: next,
            pools,
            log: self.inner.log.clone(),
            cache: old.cache.clone(),
            shutting_down: self.inner.shutting_down.clone(),
            metrics: self.inner.metrics.clone(),
            mirrors: old.mirrors.clone(),
        });
        // Requests begun before the swap keep the old generation, pools
        // included, for as long as they run; nothing takes from or sweeps
        // those pools any more (but those the new one goes on with), so
        // no connection to an old address is used again.
        replaced.pools.retire(&self.inner.current.get().pools);
    }

    /// Looks up every target written as a name once, now, with `resolve`
    /// (the step the `resolve_interval` thread takes with the system
    /// resolver), and puts the names whose set of addresses changed in
    /// force as a reload would, one target per address (see
    /// [`resolve::apply`]): requests in flight finish at the addresses
    /// that went, idle connections to them are closed, and a moved
    /// target's health starts afresh while its counters and drain or
    /// maintenance state stay. Targets that keep their address keep
    /// everything, their idle connections too (the settings are the
    /// same). A name that does not resolve keeps its addresses. Returns
    /// how many names changed.
    ///
    /// The lookups run without the reload's lock (they may block for
    /// seconds); their results are dropped if a generation came in force
    /// meanwhile: a reload looked its names up itself, maybe with other
    /// targets, and the next interval looks again.
    pub fn re_resolve(&self, resolve: &Resolve<'_>) -> usize {
        let seen = self.inner.current.generation();
        let changes = {
            let shared = self.inner.current.get();
            let mut failures = self.inner.lookup_failures.lock();
            let targets: Vec<_> = shared.config.all_targets().cloned().collect();
            resolve::look_up(&targets, resolve, self.inner.listening, &mut failures)
        };
        if changes.is_empty() {
            return 0;
        }
        let _installing = self.inner.current.installing();
        if self.inner.shutting_down.load(Ordering::SeqCst)
            || self.inner.current.generation() != seen
        {
            return 0;
        }
        let old = self.inner.current.get();
        let mut next = old.config.clone();
        let mut changed = resolve::apply(&mut next.targets, &changes);
        for pool in &mut next.pools {
            changed += resolve::apply(&mut pool.config.targets, &changes);
        }
        self.install(&old, next, true);
        for change in &changes {
            log::info!("{change}");
        }
        (self.inner.metrics.address_changes).fetch_add(changed as u64, Ordering::Relaxed);
        // The probes go to the new addresses.
        self.restart_checker();
        changed
    }

    /// Once the keepalive_timeout that settings `generation` shortened
    /// has passed, closes the connections still waiting for a request
    /// under a longer one taken before: a read already blocked keeps the
    /// timeout it began with, and an operator who shortens it to shed idle
    /// connections should not wait out the old one. A later reload that
    /// lengthens it again makes this wait for the new one.
    fn close_idle_after(&self, generation: u64) {
        let close = IdleClose {
            generation,
            started: Instant::now(),
            timeout: (self.inner.current.get().config).effective_keepalive_timeout(),
        };
        // One thread for every reload's close: one each piled up, each
        // sleeping out its timeout (an hour, say), shutdown or not.
        let mut closer = self.inner.idle_closer.lock();
        let close = match closer.as_ref() {
            Some(asked) => match asked.send(close) {
                Ok(()) => return,
                // Its thread is gone: another takes its place.
                Err(SendError(close)) => close,
            },
            None => close,
        };
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let (asked, asks) = unbounded();
        // Weak: a shutdown meanwhile must not wait for this thread.
        let inner = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("idle-close".into())
            .spawn(move || close_idle_when_due(&inner, &asks));
        match spawned {
            Ok(_) => {
                let _ = asked.send(close);
                *closer = Some(asked);
            }
            Err(e) => log::warn!("reload: cannot start a thread to close idle connections: {e}"),
        }
    }

    /// Replaces the health checker with one for the targets and settings
    /// now in force (none once shutdown has begun).
    fn restart_checker(&self) {
        let mut checker = self.inner.checker.lock();
        for old in std::mem::take(&mut *checker) {
            old.stop();
        }
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let current = self.inner.current.get();
        match current.pools.start_checkers(&current.config) {
            Ok(next) => *checker = next,
            Err(e) => log::error!("reload: cannot start the health checker: {e}"),
        }
    }

    /// Counts a reload refused before it reached us (a bad file).
    pub fn refused(&self) {
        self.inner
            .metrics
            .reloads_refused
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// A close a reload asked for: at `started + timeout`, of the connections
/// waiting for a request since before `generation` under a longer
/// timeout than the one then in force.
struct IdleClose {
    generation: u64,
    started: Instant,
    timeout: Duration,
}

impl IdleClose {
    fn due(&self) -> Instant {
        self.started + self.timeout
    }
}

/// Carries out the closes `asks` brings, each when due, until it is
/// dropped or the server is gone. A reload that lengthened the timeout
/// again meanwhile makes a close wait for the new one, if anything is
/// left to close then.
fn close_idle_when_due(inner: &Weak<Inner>, asks: &Receiver<IdleClose>) {
    let mut pending: Vec<IdleClose> = Vec::new();
    loop {
        let asked = match pending.iter().map(IdleClose::due).min() {
            Some(due) => asks.recv_timeout(due.saturating_duration_since(Instant::now())),
            None => asks.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        // Then whatever is due, asked for or not: reloads one after the
        // other must not hold back a close whose time has come.
        match asked {
            Ok(close) => pending.push(close),
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let in_force = inner.current.get().config.effective_keepalive_timeout();
        let now = Instant::now();
        pending.retain_mut(|close| {
            if close.due() > now {
                return true;
            }
            // Closed outside the lock, which every accept takes.
            let old: Vec<Arc<ConnWatch>> = (inner.connections.lock().live.values())
                .filter(|conn| conn.waits_from_before(close.generation, in_force))
                .cloned()
                .collect();
            if in_force <= close.timeout {
                old.iter().for_each(|conn| conn.close_if_idle());
                return false;
            }
            close.timeout = in_force;
            !old.is_empty()
        });
    }
}

/// Replaces the thread that looks targets' names up again with one for
/// the `resolve_interval` now in force; none when it is off, when every
/// target is written as an address, or once shutdown has begun.
fn restart_resolver(inner: &Arc<Inner>) -> io::Result<()> {
    let mut resolver = inner.resolver.lock();
    if let Some(old) = resolver.take() {
        old.stop();
    }
    if inner.shutting_down.load(Ordering::SeqCst) {
        return Ok(());
    }
    let config = &inner.current.get().config;
    let Some(interval) = config.resolve_interval else {
        return Ok(());
    };
    if !config.all_targets().any(resolve::is_named) {
        return Ok(());
    }
    // Weak: the thread must not keep a stopped server alive.
    let weak = Arc::downgrade(inner);
    let step = move || match weak.upgrade() {
        Some(inner) => {
            Control { inner }.re_resolve(&resolve::system);
            true
        }
        None => false,
    };
    *resolver = Some(Resolver::start(interval, step)?);
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_the_listener_options() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        set_inherited_options(&listener, Duration::from_secs(7), false);
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
        let timeout = accepted.read_timeout().unwrap().unwrap();
        assert!(timeout >= Duration::from_secs(7) && timeout < Duration::from_secs(8));
        assert!(accepted.write_timeout().unwrap().is_some());
    }

    #[test]
    fn a_connection_to_a_wildcard_listener_is_told_the_address_it_reached() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let inherited = set_inherited_options(&listener, Duration::from_secs(7), false);
        let port = listener.local_addr().unwrap().port();
        assert_eq!(inherited.addr, SocketAddr::from(([127, 0, 0, 1], port)));
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        // Bound to an address: that one, with no system call.
        let elsewhere = Inherited {
            addr: SocketAddr::from(([192, 0, 2, 1], 80)),
            ..inherited
        };
        assert_eq!(elsewhere.accepted_by(&accepted).addr, elsewhere.addr);
        // Bound to a wildcard (`bind = 0.0.0.0` or `::`): the socket's own.
        for wildcard in ["0.0.0.0", "::"] {
            let any = Inherited {
                addr: SocketAddr::new(wildcard.parse().unwrap(), port),
                ..inherited
            };
            let reached = any.accepted_by(&accepted).addr;
            assert_eq!(reached, SocketAddr::from(([127, 0, 0, 1], port)));
        }
        // Bound to an IPv4 address written as IPv6 (where the system has
        // IPv6): written as IPv4, as `$remote_addr` is.
        if let Ok(mapped) = TcpListener::bind("[::ffff:127.0.0.1]:0") {
            let inherited = set_inherited_options(&mapped, Duration::from_secs(7), false);
            let port = mapped.local_addr().unwrap().port();
            assert_eq!(inherited.addr, SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }

    #[test]
    fn a_long_connection_timeout_bounds_accept_by_the_worker_idle_time_only() {
        // The send timeout is the connection's own from the start (no
        // system call per connection to set it); the receive timeout, which
        // bounds `accept`, is cut to WORKER_IDLE.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let long = WORKER_IDLE * 5;
        let inherited = set_inherited_options(&listener, long, false);
        assert_eq!(
            (inherited.timeout, inherited.read_timeout),
            (long, WORKER_IDLE)
        );
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let within = |t: Duration, of: Duration| t <= of && t + Duration::from_secs(1) > of;
        assert!(within(
            accepted.read_timeout().unwrap().unwrap(),
            WORKER_IDLE
        ));
        assert!(within(accepted.write_timeout().unwrap().unwrap(), long));
    }

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

    #[test]
    fn without_reuse_port_a_second_process_is_refused_at_bind() {
        let first = bind(SocketAddr::from(([127, 0, 0, 1], 0)), false).unwrap();
        let addr = first.local_addr().unwrap();
        assert!(bind(addr, false).is_err(), "a second listener on {addr}");
    }

    #[test]
    fn a_socket_bound_beside_a_listening_one_takes_no_connection_until_it_listens() {
        // A new process binds the running one's port (SO_REUSEPORT) as it
        // starts, and listens only once it can serve: until then the
        // kernel hands every connection to the running one.
        let running = bind(SocketAddr::from(([127, 0, 0, 1], 0)), true).unwrap();
        start_listening(&running).unwrap();
        let addr = running.local_addr().unwrap();
        let starting = bind(addr, true).unwrap();
        running.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        for _ in 0..32 {
            let _client = std::net::TcpStream::connect(addr).unwrap();
            let accepted = loop {
                match running.accept() {
                    Ok(_) => break true,
                    Err(_) if Instant::now() < deadline => std::thread::yield_now(),
                    Err(_) => break false,
                }
            };
            assert!(
                accepted,
                "a connection went to the socket not listening yet"
            );
        }
        // Listening, it takes its share.
        start_listening(&starting).unwrap();
        starting.set_nonblocking(true).unwrap();
        let shared = (0..64).any(|_| {
            let _client = std::net::TcpStream::connect(addr).unwrap();
            starting.accept().is_ok()
        });
        assert!(shared);
    }
}
