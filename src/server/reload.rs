//! Changing a running server's settings: reopening the access log, a
//! reload, a new lookup of targets' names, and closing the idle
//! connections a shortened keepalive timeout no longer allows.

use super::limiters::limiters_for;
use super::start::{log_error_pages, warn_of_limits};
use super::Inner;
use crate::access_log::{Captures, PoolFile, Syslog};
use crate::acme::Acme;
use crate::config::{self, Config, LastAddresses};
use crate::dns::srv::Answer;
use crate::gzip::Gzip;
use crate::proxy::{CacheRules, ConnWatch, Shared};
use crate::upstream::resolve::{self, Due, Lookups, Resolve, ResolveTimed, Resolver};
use crate::upstream::{pools::Pools, state_file};
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, SendError};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Operations on a running server from any thread (the signal thread's):
/// reopen the access log (SIGUSR1), reload the settings (SIGHUP).
#[derive(Clone)]
pub struct Control {
    pub(super) inner: Arc<Inner>,
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
    /// A log file that is another file the proxy writes.
    #[error("{key}: {why}")]
    LogFile { key: String, why: String },
    /// A stream's listener runs until a restart: its pool must still be
    /// there to take its connections.
    #[error("{0}")]
    Stream(String),
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
    /// and the pools' own files (after logrotate renamed them) and the
    /// syslog socket (after the daemon restarted). On failure the old
    /// files stay in use.
    pub fn reopen_log(&self) -> io::Result<()> {
        let shared = self.inner.current.get();
        shared.log.reopen(
            shared.config.path_to_log.clone(),
            shared.config.log_format.clone(),
            Syslog::of(&shared.config),
            PoolFile::all_of(&shared.config),
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
    /// changing nothing, if a new `path_to_log` (or a pool's own file)
    /// cannot be opened, or once a shutdown has begun.
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
            listen,
            path_to_persistence,
            cache_disk_dir,
            cache_disk_size,
            pid_file
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
                next.tls_choice = was.tls_choice.clone();
                next.tls_strict_sni = was.tls_strict_sni;
                next.tls_session_tickets = was.tls_session_tickets;
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
        match next.keep_streams_of(was) {
            Ok(true) => reloaded.needs_restart.push("stream"),
            Ok(false) => {}
            Err(why) => return refused(ReloadError::Stream(why)),
        }
        if let Some(why) = next.state_file_shared() {
            return refused(ReloadError::StateFile(why));
        }
        if let Some((pool, why)) = next.log_file_refused() {
            let key = config::log_key(pool);
            return refused(ReloadError::LogFile { key, why });
        }
        // Checked by the file's `port` and `listen` as it was loaded; the
        // addresses listened on are the running ones, which a reload keeps.
        let listening = &self.inner.listening;
        if let Some((t, at)) = (next.pool_configs())
            .flat_map(|c| listening.iter().map(move |&at| (c, at)))
            .find_map(|(c, at)| config::target_at(at, &c.targets).map(|t| (t, at)))
        {
            return refused(ReloadError::Loop {
                target: t.name.clone(),
                listening: at,
            });
        }
        let (syslog, pool_files) = (Syslog::of(&next), PoolFile::all_of(&next));
        if next.path_to_log != was.path_to_log
            || next.log_format != was.log_format
            || syslog != Syslog::of(was)
            || pool_files != PoolFile::all_of(was)
        {
            let (file, format) = (next.path_to_log.clone(), next.log_format.clone());
            if let Err(e) = (old.log).reopen(file, format, syslog, pool_files) {
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
    /// `keep_idle` (see [`Upstreams::keep_state_of`](crate::upstream::Upstreams::keep_state_of)), which is given for
    /// `old`'s own settings with new addresses: then the sign-in answers
    /// kept are too.
    fn install(&self, old: &Shared, mut next: Config, keep_idle: bool) {
        // Rules that keep their names keep their counts (rules shared
        // with the running configuration, as after a new lookup of
        // targets' names, have them already).
        if let Some(rewrites) = Arc::get_mut(&mut next.rewrites) {
            rewrites.keep_counts_of(&old.config.rewrites);
        }
        if let Some(deny) = Arc::get_mut(&mut next.deny) {
            deny.keep_counts_of(&old.config.deny);
        }
        // Keys fetched as before serve until the new settings' own fetch
        // comes, rather than a 503 to every token meanwhile.
        for keys in next.fetched_jwt_keys() {
            for before in old.config.fetched_jwt_keys() {
                keys.take_keys_of(before);
            }
        }
        let acme = self.acme_for(old.acme.as_ref(), &next);
        let mut pools = Pools::new(&next);
        pools.keep_state_of(&old.pools, keep_idle);
        let otel = crate::otel::Exporter::for_config(&next, old.otel.as_ref(), &old.metrics);
        let replaced = self.inner.current.replace(Shared {
            otel,
            limiters: limiters_for(&next, Some(old)),
            cache_rules: CacheRules::new(&next, &old.cache),
            gzip: next.pool_configs().map(Gzip::of).collect(),
            gunzips: next.pool_configs().filter(|c| c.gunzip).count() > 0,
            auth_answers: match keep_idle {
                true => old.auth_answers.clone(),
                false => Default::default(),
            },
            log_captures: Captures::of(&next),
            config: next,
            pools,
            log: self.inner.log.clone(),
            cache: old.cache.clone(),
            shutting_down: self.inner.shutting_down.clone(),
            metrics: self.inner.metrics.clone(),
            mirrors: old.mirrors.clone(),
            census: old.census.clone(),
            acme,
        });
        // Requests begun before the swap keep the old generation, pools
        // included, for as long as they run; nothing takes from or sweeps
        // those pools any more (but those the new one goes on with), so
        // no connection to an old address is used again.
        replaced.pools.retire(&self.inner.current.get().pools);
    }

    /// The ACME client for `next`: the one `running`, serving `next` too,
    /// while its settings stay; one started anew on the new ones (the
    /// one before stopped after the exchange it is in), or none.
    fn acme_for(&self, running: Option<&Arc<Acme>>, next: &Config) -> Option<Arc<Acme>> {
        let acme = match (running, next.acme()) {
            (Some(acme), Some(settings)) if acme.settings() == settings => Some(acme.clone()),
            (_, settings) => {
                let mut thread = self.inner.acme.lock();
                drop(thread.take());
                let started = settings.map(|settings| Acme::start(settings.clone()));
                match started {
                    Some(Ok((acme, started))) => {
                        log::info!("reload: the ACME client starts anew on its new settings");
                        *thread = Some(started);
                        Some(acme)
                    }
                    Some(Err(e)) => {
                        log::error!("reload: cannot start the ACME client's thread: {e}");
                        None
                    }
                    None => None,
                }
            }
        };
        if let Some(acme) = &acme {
            acme.serve_into(&next.acme_slot);
        }
        acme
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
    /// same). A name that does not resolve keeps its addresses; one that
    /// had none yet (`unresolved_targets = wait`) and now resolves
    /// becomes targets as a name's new addresses do. Returns how many
    /// names changed.
    ///
    /// The lookups run without the reload's lock (they may block for
    /// seconds); their results are dropped if a generation came in force
    /// meanwhile: a reload looked its names up itself, maybe with other
    /// targets, and the next interval looks again.
    pub fn re_resolve(&self, resolve: &Resolve<'_>) -> usize {
        let resolve = |name: &str| resolve(name).map(Answer::from);
        self.re_resolve_due(&resolve, &|_| true).0
    }

    /// [`Control::re_resolve`] of the names `due` takes, with `resolve`
    /// saying each answer's TTL where it reads one; returns, too, what was
    /// looked up, for the resolve thread's schedule.
    fn re_resolve_due(
        &self,
        resolve: &ResolveTimed<'_>,
        due: &Due<'_>,
    ) -> (usize, Vec<resolve::Looked>) {
        let seen = self.inner.current.generation();
        let Lookups { changes, looked } = {
            let shared = self.inner.current.get();
            let mut failures = self.inner.lookup_failures.lock();
            let targets: Vec<_> = shared.config.all_written_targets().cloned().collect();
            resolve::look_up_due(&targets, resolve, &self.inner.listening, &mut failures, due)
        };
        (self.follow_changes(seen, &changes), looked)
    }

    /// Puts `changes`, looked up against generation `seen`, in force;
    /// returns how many names changed.
    fn follow_changes(&self, seen: u64, changes: &[resolve::Change]) -> usize {
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
        let mut changed = follow(&mut next, changes);
        for pool in &mut next.pools {
            changed += follow(&mut pool.config, changes);
        }
        self.install(&old, next, true);
        for change in changes {
            log::info!("{change}");
        }
        (self.inner.metrics.address_changes).fetch_add(changed as u64, Ordering::Relaxed);
        // The probes go to the new addresses.
        self.restart_checker();
        changed
    }

    /// The addresses each target written as a name is at now, for the
    /// next reload's file to keep for a name that does not resolve then
    /// (see [`Loader::keep_last_addresses`](crate::config::Loader::keep_last_addresses)).
    pub fn last_addresses(&self) -> LastAddresses {
        let shared = self.inner.current.get();
        let targets: Vec<_> = shared.config.all_written_targets().cloned().collect();
        resolve::last_addresses(&targets)
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
        match current
            .pools
            .start_checkers(&current.config, &current.metrics)
        {
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
pub(super) struct IdleClose {
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

/// Puts `changes` in force among the targets of one pool's `config`:
/// names that gave no address yet and now do become targets too.
fn follow(config: &mut Config, changes: &[resolve::Change]) -> usize {
    resolve::admit(&mut config.targets, &mut config.unresolved, changes);
    resolve::apply(&mut config.targets, changes)
}

/// Replaces the thread that looks targets' names up again with one for
/// the `resolve_interval` now in force; none when it is off, when every
/// target is written as an address, or once shutdown has begun.
pub(super) fn restart_resolver(inner: &Arc<Inner>) -> io::Result<()> {
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
    if !config.all_written_targets().any(resolve::is_named) {
        return Ok(());
    }
    let targets: Vec<_> = config.all_written_targets().cloned().collect();
    let schedule = resolve::schedule(&targets, interval, Instant::now());
    // Weak: the thread must not keep a stopped server alive.
    let weak = Arc::downgrade(inner);
    let step = move |due: &Due<'_>| {
        let inner = weak.upgrade()?;
        // The `resolver` in force now: a reload may have changed it.
        let resolver = inner.current.get().config.resolver;
        let resolve = |name: &str| resolve::answer_via(name, resolver);
        Some(Control { inner }.re_resolve_due(&resolve, due).1)
    };
    *resolver = Some(Resolver::start(schedule, step)?);
    Ok(())
}
