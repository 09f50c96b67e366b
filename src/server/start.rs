//! Start-up: from a `Config` to a running server: the access log, the
//! cache and its snapshot, the first generation of settings, the threads,
//! then the listeners, all of them only once everything is ready.

use super::limiters::limiters_for;
use super::listener::{bind, bind_udp, set_inherited_options, start_listening};
use super::reload::restart_resolver;
use super::workers::{Listening, Workers};
use super::{Census, Connections, Inner, ServerHandle};
use crate::access_log::{AccessLog, Captures, Outputs, PoolFile, Syslog};
use crate::acme::Acme;
use crate::admin::Admin;
use crate::cache::disk::{self, Disk};
use crate::cache::persist;
use crate::cache::timer::{self, Timer};
use crate::cache::Cache;
use crate::config::{self, Config};
use crate::gzip::Gzip;
use crate::limits::{self, Limits};
use crate::metrics::{Metrics, StreamStats};
use crate::proxy::udp::UdpStream;
use crate::proxy::{CacheRules, Current, Mirrors, Shared};
use crate::upstream::{pools::Pools, state_file};
use crossbeam_channel::bounded;
use parking_lot::{Condvar, Mutex};
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

/// Each says its cause itself (in its message, not as a `source`, so that
/// printing the chain does not say it twice).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: SocketAddr, error: io::Error },
    #[error("cannot listen on {addr} (listen): {error}")]
    ListenBind { addr: SocketAddr, error: io::Error },
    #[error("cannot listen on {addr} (tls_port): {error}")]
    TlsBind { addr: SocketAddr, error: io::Error },
    #[error("cannot listen on {addr} (admin): {error}")]
    AdminBind { addr: SocketAddr, error: io::Error },
    #[error("cannot listen on {addr} (stream.{name}): {error}")]
    StreamBind {
        name: Arc<str>,
        addr: SocketAddr,
        error: io::Error,
    },
    #[error("cannot open the access log: {0}")]
    AccessLog(io::Error),
    #[error("cannot start a thread: {0}")]
    Thread(io::Error),
    /// Its listener's second handle (which stopping it closes), or its
    /// thread.
    #[error("cannot start the admin listener: {0}")]
    Admin(io::Error),
    #[error("path_to_persistence: {}: {error}", path.display())]
    Persistence { path: PathBuf, error: io::Error },
    #[error("cache_disk_dir: {}: {error}", path.display())]
    DiskDir { path: PathBuf, error: io::Error },
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
        let more_listeners = (config.listen.iter())
            .map(|&addr| {
                bind(addr, config.reuse_port)
                    .map_err(|error| StartError::ListenBind { addr, error })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (stream_listeners, udp_sockets) = bind_streams(&config)?;
        let addr = listener.local_addr().map_err(|error| StartError::Bind {
            addr: config.listen_addr(),
            error,
        })?;
        let listening = std::iter::once(Ok(addr))
            .chain(more_listeners.iter().map(TcpListener::local_addr))
            .collect::<io::Result<Vec<_>>>()
            .map_err(|error| StartError::Bind { addr, error })?;
        let worker_priority = config.worker_priority;
        let inherited =
            set_inherited_options(&listener, config.connection_timeout, config.defer_accept);
        let access_log = AccessLog::start(Outputs {
            stdout: config.log_to_stdout,
            file: config.path_to_log.clone(),
            format: config.log_format.clone(),
            syslog: Syslog::of(&config),
            pool_files: PoolFile::all_of(&config),
        })
        .map_err(StartError::AccessLog)?;
        let (cache, disk_worker) = match config.cache_size > 0 {
            true => {
                let (cache, worker) = new_cache(&config)?;
                (Some(Arc::new(cache)), worker)
            }
            false => (None, None),
        };
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
                .map_err(StartError::Thread)?
                .with_disk(disk_worker),
            ),
            None => None,
        };
        let pools = Pools::new(&config);
        if let Some(path) = &config.state_file {
            restore_states(&pools, path);
        }
        let (shutting_down, metrics) =
            (Arc::new(AtomicBool::new(false)), Arc::<Metrics>::default());
        let stream_stats =
            (config.streams.iter()).map(|s| (s.name.clone(), StreamStats::default()));
        let _ = metrics.streams.set(stream_stats.collect());
        let connections = Arc::new(Mutex::new(Connections::default()));
        // Before any connection: a certificate kept from before is
        // served from the first handshake.
        let (acme, acme_thread) = match config.acme() {
            Some(settings) => {
                let (acme, thread) = Acme::start(settings.clone()).map_err(StartError::Thread)?;
                acme.serve_into(&config.acme_slot);
                (Some(acme), Some(thread))
            }
            None => (None, None),
        };
        let shared = Shared {
            otel: crate::otel::Exporter::for_config(&config, None, &metrics),
            acme,
            census: Census(connections.clone()),
            cache: cache.clone(),
            pools,
            log: access_log.sender(),
            log_captures: Captures::of(&config),
            mirrors: Mirrors::new(Arc::clone(&metrics), Arc::clone(&shutting_down)),
            shutting_down,
            metrics,
            limiters: limiters_for(&config, None),
            cache_rules,
            gzip: config.pool_configs().map(Gzip::of).collect(),
            gunzips: config.pool_configs().filter(|c| c.gunzip).count() > 0,
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
            acme: Mutex::new(acme_thread),
            idle_closer: Mutex::new(None),
            lookup_failures: Mutex::default(),
            connections,
            drained: Condvar::new(),
            next_id: AtomicU64::new(0),
            inherited,
            listening,
        });
        let first = inner.current.get();
        first.mirrors.attach(&inner.current);
        *inner.checker.lock() = first
            .pools
            .start_checkers(&first.config, &first.metrics)
            .map_err(StartError::Thread)?;
        drop(first);
        restart_resolver(&inner).map_err(StartError::Thread)?;
        let (stop_tx, stop_rx) = bounded(1);
        // Ready to serve: the snapshot loaded, the settings in force. All
        // listen before any is served, so that none fails with another
        // already taking connections.
        start_listening(&listener).map_err(|error| StartError::Bind { addr, error })?;
        for more in &more_listeners {
            let addr = more.local_addr().unwrap_or(addr);
            start_listening(more).map_err(|error| StartError::ListenBind { addr, error })?;
        }
        if let Some(tls) = &tls_listener {
            let addr = tls.local_addr().unwrap_or(addr);
            start_listening(tls).map_err(|error| StartError::TlsBind { addr, error })?;
        }
        if let Some(admin) = &admin {
            let addr = admin.local_addr().unwrap_or(addr);
            start_listening(admin).map_err(|error| StartError::AdminBind { addr, error })?;
        }
        for (name, listener) in &stream_listeners {
            start_listening(listener).map_err(|error| StartError::StreamBind {
                name: name.clone(),
                addr: listener.local_addr().unwrap_or(addr),
                error,
            })?;
        }
        let workers = Workers::start(
            (listener, inherited),
            &inner,
            worker_priority,
            Listening::Http,
        )?;
        log::info!("listening on {addr}");
        // The other listeners' workers: their sockets take the options
        // `port`'s took, but for `defer`.
        let start_workers = |listener: TcpListener, defer: bool, kind: Listening| {
            let inherited = set_inherited_options(&listener, inherited.timeout, defer);
            Workers::start((listener, inherited), &inner, worker_priority, kind)
        };
        let mut listen_workers = Vec::with_capacity(more_listeners.len());
        for listener in more_listeners {
            let workers = start_workers(listener, inherited.deferred, Listening::Http)?;
            log::info!("listening on {} (listen)", workers.local_addr());
            listen_workers.push(workers);
        }
        let tls_workers = match tls_listener {
            Some(listener) => {
                let workers = start_workers(listener, inherited.deferred, Listening::Tls)?;
                log::info!("listening on {} (TLS)", workers.local_addr());
                Some(workers)
            }
            None => None,
        };
        let mut stream_workers = Vec::with_capacity(stream_listeners.len());
        for (name, listener) in stream_listeners {
            // A server may speak first (a database's greeting, SMTP's):
            // its connections are not held back until the client speaks.
            let workers = start_workers(listener, false, Listening::Stream(name.clone()))?;
            log::info!("listening on {} (stream.{name})", workers.local_addr());
            stream_workers.push((name, workers));
        }
        let mut udp_streams = Vec::with_capacity(udp_sockets.len());
        for (name, socket) in udp_sockets {
            let current = Arc::clone(&inner.current);
            let stream =
                UdpStream::start(socket, name.clone(), current).map_err(StartError::Thread)?;
            if let Some(addr) = stream.local_addr() {
                log::info!("listening on {addr} (stream.{name}, UDP)");
            }
            udp_streams.push((name, stream));
        }
        log_error_pages(&inner.current.get().config);
        warn_of_limits(&inner.current.get().config);
        let admin = match admin {
            Some(listener) => {
                Some(Admin::start(listener, inner.current.clone()).map_err(StartError::Admin)?)
            }
            None => None,
        };
        Ok(ServerHandle {
            addr,
            inner,
            cache,
            admin,
            workers,
            listen_workers,
            tls_workers,
            stream_workers,
            udp_streams,
            access_log: Some(access_log),
            timer,
            stop_tx,
            stop_rx,
        })
    }
}

/// The streams' listeners and sockets, by name.
type StreamSockets = (Vec<(Arc<str>, TcpListener)>, Vec<(Arc<str>, UdpSocket)>);

/// Binds each `stream.<name>`'s listener (listening begins with the
/// others', once everything is ready), or its socket for `udp`.
fn bind_streams(config: &Config) -> Result<StreamSockets, StartError> {
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    for stream in config.streams.iter() {
        let (name, addr) = (stream.name.clone(), stream.listen);
        let bound = match stream.udp {
            false => bind(addr, config.reuse_port).map(|l| tcp.push((name.clone(), l))),
            true => bind_udp(addr, config.reuse_port).map(|s| udp.push((name.clone(), s))),
        };
        bound.map_err(|error| StartError::StreamBind { name, addr, error })?;
    }
    Ok((tcp, udp))
}

/// Says which error pages are in force (at start and on every reload), so
/// that an operator sees a page was picked up without making an error.
pub(super) fn log_error_pages(config: &Config) {
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
            "state_file {}: none yet; every target starts as configured",
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

/// The cache, with its disk tier and that tier's thread when
/// `cache_disk_dir` is set.
fn new_cache(config: &Config) -> Result<(Cache, Option<disk::Worker>), StartError> {
    let max_object_size = config.effective_max_object_size();
    let cache = Cache::new(config.cache_size, max_object_size);
    let Some(dir) = &config.cache_disk_dir else {
        return Ok((cache, None));
    };
    let (disk, worker) =
        Disk::start(dir, config.cache_disk_size, max_object_size).map_err(|error| {
            StartError::DiskDir {
                path: dir.clone(),
                error,
            }
        })?;
    Ok((cache.with_disk(disk), Some(worker)))
}

/// Raises the descriptor limit as far as `max_connections` needs and the
/// hard limit allows, then says which of the process's limits would stop
/// it short of `max_connections` (and the idle backend connections kept
/// besides).
pub(super) fn warn_of_limits(config: &Config) {
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
