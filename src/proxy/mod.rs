//! One client connection, start to end: read a request, forward it to a
//! backend, relay the response, log it, and go round again while the
//! connection stays alive. This module holds the proxy's policy; the byte
//! level lives in `http`, backends in `upstream`.

mod auth_answers;
mod cache_status;
mod cached;
mod client;
mod client_cert;
mod files;
mod forward_auth;
mod mirror;
mod origin;
mod relay;
mod tunnel;
mod watch;

pub use auth_answers::AuthAnswers;
pub use mirror::Mirrors;

use crate::access;
use crate::access_log::{By, Heads, LogSender, Record, RequestFields, Stage, Termination};
use crate::auth;
use crate::cache::{policy, Cache, Purge};
use crate::config::Config;
use crate::digits::push_field;
use crate::error_pages::PAGE_CONTENT_TYPE;
use crate::gzip::{self, ForClient, Gzip};
use crate::http::conn::{is_timeout, write_all_vectored, Socket as _};
use crate::http::forward::{max_forwards, FORWARDING_FIELDS};
use crate::http::head::{parse_request, reason_phrase};
use crate::http::headers::read_alike;
use crate::http::proxy_protocol;
use crate::http::{BodyError, BodyKind, Headers, RequestHead, ResponseHead, Version};
use crate::https_redirect;
use crate::metrics::Metrics;
use crate::pace::Pacing;
use crate::ratelimit::{self, Keys, Limiter, Limiters};
use crate::realip;
use crate::request_id;
use crate::rewrite::{Rewrites, Rewritten};
use crate::routes::{Ambiguous, Asked, Lookup, Return, Routes, CLOSE_UNANSWERED};
use crate::sched;
use crate::throttle::OnceAMinute;
use crate::upstream::hash_on::HashOn;
use crate::upstream::pools::Pools;
use crate::upstream::{sticky, Upstreams};
use crate::variables;
pub(crate) use client::first_line;
use client::{linger, Client, HeadRead};
use origin::{Outgoing, RequestBody};
use parking_lot::RwLock;
use relay::Relay;
use std::borrow::Cow;
use std::io::IoSlice;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
pub use watch::ConnWatch;

/// This hop's entry in `Via` for a request received in `version`: RFC
/// 9110 §7.6.3 names the protocol it came in, not the one it goes on in.
fn via_entry(version: Version) -> &'static str {
    match version {
        Version::Http10 => "1.0 inverso",
        Version::Http11 => "1.1 inverso",
    }
}
/// What every connection thread shares: one generation of the settings.
/// A reload builds a new one; a request keeps the one it started with.
pub struct Shared {
    pub config: Config,
    /// `targets` and each `pool.<name>`.
    pub pools: Pools,
    pub log: LogSender,
    pub cache: Option<Arc<Cache>>,
    /// The same flag in every generation.
    pub shutting_down: Arc<AtomicBool>,
    /// The same counters in every generation.
    pub metrics: Arc<Metrics>,
    /// With `rate_limit`: every client address's bucket (kept by a reload
    /// that leaves the limit as it was), for each pool, `targets`' first
    /// (a pool without a limit of its own shares the top level's), and
    /// for each route with a `rate_limit=` of its own.
    pub limiters: Limiters,
    /// The cache rules of this generation, made once, not per request.
    pub cache_rules: CacheRules,
    /// With `gzip` on: what is compressed, and how; for each pool,
    /// `targets`' first (see [`Shared::gzip`]).
    pub gzip: Vec<Option<Gzip>>,
    /// With `auth_request_cache`: the sign-in services' yeses, kept for
    /// this configuration (a reload, which may change them, starts anew;
    /// new addresses of targets' names do not).
    pub auth_answers: Arc<AuthAnswers>,
    /// `mirror`'s queue and threads: the same in every generation.
    pub mirrors: Arc<Mirrors>,
}

impl Shared {
    /// The pool a request that took `route` goes to (see
    /// `Client::route`).
    pub fn pool(&self, route: Option<usize>) -> &Upstreams {
        self.pools.get(self.pool_index(route))
    }

    /// The settings of that pool: the top-level ones for `targets`.
    pub fn pool_config(&self, route: Option<usize>) -> &Config {
        self.config_of_pool(self.pool_index(route))
    }

    /// The settings of the pool at `index` (0: `targets`, the top level's).
    pub fn config_of_pool(&self, index: usize) -> &Config {
        (self.config.pool_configs().nth(index)).unwrap_or(&self.config)
    }

    /// How requests routed to that pool use the cache.
    pub fn caching(&self, route: Option<usize>) -> &Caching {
        self.cache_rules.of_pool(self.pool_index(route))
    }

    /// The cache, for a request that took `route`: none when the pool's
    /// `cache` is off.
    pub fn cache_for(&self, route: Option<usize>) -> Option<&Arc<Cache>> {
        self.cache.as_ref().filter(|_| self.caching(route).on)
    }

    /// With `gzip` on for that pool: what of its answers is compressed,
    /// and how.
    pub fn gzip(&self, route: Option<usize>) -> Option<&Gzip> {
        self.gzip.get(self.pool_index(route))?.as_ref()
    }

    /// With a `rate_limit`: the buckets the request fills (see
    /// [`Shared::limiters`]).
    pub fn limiter(&self, route: Option<usize>) -> Option<&Arc<Limiter>> {
        self.limiters.of_pool(self.pool_index(route))
    }

    /// The pool a request that took `route` goes to (0 for `targets`);
    /// none for a route that answers itself (a redirect, a `return`).
    pub(super) fn routed_pool(&self, route: Option<usize>) -> Option<usize> {
        let taken = route.and_then(|i| self.config.routes.get(i));
        (!taken.is_some_and(|r| r.answers_itself())).then(|| self.pool_index(route))
    }

    pub(super) fn pool_index(&self, route: Option<usize>) -> usize {
        let route = route.and_then(|i| self.config.routes.get(i));
        route.map_or(0, |r| r.pool)
    }
}

/// What the cache's rules give for one generation of the settings, for
/// each pool.
pub struct CacheRules {
    /// `targets`' (the top level's).
    pub top: Caching,
    /// Each `pool.<name>`'s, in order (see [`Shared::caching`]).
    pools: Vec<Caching>,
}

/// How the requests of one pool use the cache.
pub struct Caching {
    /// Whether they do: with a cache, and `cache` on.
    pub on: bool,
    pub settings: Arc<policy::Settings>,
    /// The fields for the cache alone that it reads and clients never
    /// get (none without a cache: then they pass through as any other),
    /// and `X-Accel-Limit-Rate`, the proxy's, with a cache or without;
    /// compared with an entry's on every hit.
    pub own_fields: policy::OwnFields,
    /// This cache's entry for `Surrogate-Capability`, when it reads
    /// `Surrogate-Control`: only with a cache.
    pub surrogate_capability: Option<String>,
}

impl Caching {
    fn new(config: &Config, with_cache: bool) -> Caching {
        let settings = Arc::new(config.cache_settings());
        let on = with_cache && config.cache;
        Caching {
            on,
            own_fields: match on {
                true => settings.targeting.own_fields(),
                false => policy::OwnFields::default(),
            },
            surrogate_capability: (settings.targeting.surrogate_id.as_deref())
                .filter(|_| on)
                .map(policy::surrogate_capability),
            settings,
        }
    }
}

impl CacheRules {
    pub fn new(config: &Config, cache: &Option<Arc<Cache>>) -> CacheRules {
        let with_cache = cache.is_some();
        CacheRules {
            top: Caching::new(config, with_cache),
            pools: (config.pools.iter())
                .map(|p| Caching::new(&p.config, with_cache))
                .collect(),
        }
    }

    /// Pool `index`'s (0: `targets`').
    fn of_pool(&self, index: usize) -> &Caching {
        match index {
            0 => &self.top,
            i => self.pools.get(i - 1).unwrap_or(&self.top),
        }
    }

    /// The settings a stored response under `key` (a snapshot's) is
    /// judged by: those of the pool its URL is routed to. `None` when
    /// that pool does not use the cache, when a route redirects its URL,
    /// or when no request could be routed there (see [`Routes::route`]):
    /// nothing would ever find it. Conditional routes that together
    /// take every request for a URL (`cookie a` and `not cookie a`) are
    /// not seen as such: the entry loads under the pool of the route
    /// without a condition and is never found, taking room until it
    /// expires.
    pub fn settings_of_key(&self, key: &str, routes: &Routes) -> Option<&policy::Settings> {
        let primary = &key[..key.find('\n').unwrap_or(key.len())];
        let (authority, path) = policy::split_key(primary);
        let route = (routes.route_asked(Some(authority), path, Lookup::StoredGet)).ok()?;
        let route = route.and_then(|i| routes.get(i));
        if route.is_some_and(|r| r.answers_itself()) {
            return None;
        }
        let pool = route.map_or(0, |r| r.pool);
        let caching = self.of_pool(pool);
        caching.on.then_some(&*caching.settings)
    }
}

impl Shared {
    /// Counts and logs a connection answered 503 before any request was
    /// read from it (see [`Record::refused`]).
    pub fn log_refusal(&self, mut record: Record) {
        self.metrics.observe(record.status, record.duration);
        if self.config.log_skips(false, record.status) {
            return;
        }
        record.show_pool = !self.config.pools.is_empty();
        self.log.log(record);
    }
}

/// The generation of [`Shared`] in force, swapped whole by a reload. A
/// connection keeps its copy and checks the generation counter (one
/// atomic load) per request.
pub struct Current {
    shared: RwLock<Arc<Shared>>,
    /// Bumped by every reload, so connections notice one with a plain
    /// load instead of taking the lock and touching the `Arc`'s counter on
    /// every request (both are writes to memory every core shares).
    generation: AtomicU64,
    /// See [`Current::installing`].
    installing: parking_lot::Mutex<()>,
}

impl Current {
    pub fn new(shared: Shared) -> Current {
        Current {
            shared: RwLock::new(Arc::new(shared)),
            generation: AtomicU64::new(0),
            installing: parking_lot::Mutex::new(()),
        }
    }

    /// Held while a new generation is built from the one in force and put
    /// in its place (a reload, new addresses for targets' names), and
    /// while the admin listener changes targets' states: none then works
    /// from a generation another is replacing (a state set on the old
    /// targets only, a new target built from states about to change).
    pub fn installing(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.installing.lock()
    }

    pub fn get(&self) -> Arc<Shared> {
        self.shared.read().clone()
    }

    /// Counts the reloads.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Brings a connection's copy up to date if a reload happened since it
    /// was taken (generation `seen`).
    pub fn refresh(&self, held: &mut Arc<Shared>, seen: &mut u64) {
        let now = self.generation.load(Ordering::Acquire);
        if now != *seen {
            *held = self.get();
            *seen = now;
        }
    }

    /// Puts `next` in force; returns the generation it replaces.
    pub fn replace(&self, next: Shared) -> Arc<Shared> {
        let old = std::mem::replace(&mut *self.shared.write(), Arc::new(next));
        self.generation.fetch_add(1, Ordering::Release);
        old
    }
}

/// What every accepted socket comes with from the listener.
#[derive(Clone, Copy, Debug)]
pub struct Inherited {
    /// Its send timeout: `connection_timeout` as the server started.
    pub timeout: Duration,
    /// Its receive timeout, which may be shorter (see
    /// `set_inherited_options`).
    pub read_timeout: Duration,
    /// It was accepted only once its first bytes had come (TCP_DEFER_ACCEPT).
    pub deferred: bool,
    /// The address it reached (`$server_addr`, `$server_port`): the
    /// listener's, until [`Inherited::accepted_by`] names the one a
    /// wildcard listener's connection reached.
    pub addr: SocketAddr,
}

impl Inherited {
    /// What `tcp`, just accepted, inherits: on a listener bound to a
    /// wildcard address, the address it reached (a system call on every
    /// such connection, where nginx makes it only for a request that
    /// names `$server_addr`).
    pub fn accepted_by(self, tcp: &TcpStream) -> Inherited {
        if !self.addr.ip().is_unspecified() {
            return self;
        }
        match tcp.local_addr() {
            Ok(local) => Inherited {
                addr: canonical(local),
                ..self
            },
            Err(_) => self,
        }
    }
}

/// `addr` with an IPv4 address a dual-stack socket writes as IPv6
/// (`::ffff:127.0.0.1`) written as IPv4, as the log and backends are
/// told it.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Serves one client connection until it closes, times out, or the server
/// shuts down. `watch` says when the connection waits for a request, so
/// shutdown can close exactly the connections that are not mid-request,
/// and which backend socket a request uses, so a forced close ends it.
///
/// The socket arrives with TCP_NODELAY and the timeouts of `inherited`
/// (Linux copies them from the listener), so nothing is set here unless the
/// configuration says otherwise.
///
/// `claim` counts the connection against the client a PROXY header names,
/// or says that client holds the most it may already. The peer comes with
/// the connection's serial number, for the log (`$connection`), and the
/// time it was accepted, from which its first head is due.
pub fn serve(
    watch: Arc<ConnWatch>,
    (peer, connection, accepted): (SocketAddr, u64, Instant),
    proxied: Option<proxy_protocol::Header>,
    current: &Current,
    inherited: Inherited,
    claim: &mut dyn FnMut(IpAddr, usize) -> bool,
) {
    let mut seen = current.generation();
    let mut shared = current.get();
    let mut timeout = inherited.timeout;
    let mut client = Client::new(watch, peer, inherited);
    if shared.config.proxy_protocol {
        match proxied {
            // Over TLS the header came before the handshake, read and
            // counted with it.
            Some(header) => client.take_header(header),
            // None over TLS: `proxy_protocol` was turned on since.
            None if client.tls_in_front => {}
            None if !client.take_proxy_header(accepted, &shared.config) => return,
            // Over max_connections_per_client for the client the header
            // named: refused at once, as at accept, so that its slot and
            // its thread are free again.
            None if !claim(client.peer, shared.config.max_connections_per_client) => {
                refuse(&mut client, &shared);
                return;
            }
            None => {}
        }
    }
    let mut first = true;
    let mut served: u64 = 0;
    loop {
        // Reload: each request runs on the settings in force when it
        // begins; those in flight finish on theirs. Taken here for the wait
        // for the next head (its timeouts and limits), and again once it
        // has come.
        current.refresh(&mut shared, &mut seen);
        take_settings(&mut client, &shared, seen, &mut timeout);
        served += 1;
        client.forget_forwarded();
        client.user = None;
        client.takes_gzip = false;
        client.sent_target = None;
        client.made_target = None;
        client.response_fields.clear();
        client.pending_fields.clear();
        client.upstream = None;
        client.forget_upstream_answer();
        client.begin_anew();
        client.head_bytes = 0;
        client.pacing = Pacing::OFF;
        client.watch.set_idle();
        if shared.shutting_down.load(Ordering::SeqCst) && client.conn.buffered().is_empty() {
            break;
        }
        // A new connection's first head is due client_header_timeout after
        // the connection opened: connecting and saying nothing ties up a
        // thread as surely as trickling bytes. Between requests the idle
        // timeout applies until the next head starts.
        let taken_before = client.conn.taken();
        let head = client.read_head(first.then_some(accepted));
        first = false;
        // Closed by shutdown as idle while the head came: not served, as
        // the client was already told by the close.
        if matches!(head, HeadRead::Ready(_) | HeadRead::Refused(..))
            && !client.watch.begin_request()
        {
            break;
        }
        let generation = seen;
        current.refresh(&mut shared, &mut seen);
        if seen != generation {
            take_settings(&mut client, &shared, seen, &mut timeout);
        }
        let limit = shared.config.keepalive_requests;
        client.last_request = limit != 0 && served >= limit;
        // Every request gets its own, given before its head is parsed: one
        // refused as malformed has one too, in its answer and its log line.
        client.request_id = shared
            .config
            .request_id_header
            .clone()
            .map(|name| (name, request_id::generate()));
        let time = SystemTime::now();
        client.started = Instant::now();
        // A head refused as it is (no Host) was read whole all the same,
        // if not taken.
        let head_len = match head {
            HeadRead::Ready(len) => Some(len as u64),
            _ => None,
        };
        let (outcome, line) = match head {
            HeadRead::Ready(len) => {
                let done = exchange(&mut client, len, &shared);
                client.watch.backend_done();
                done
            }
            HeadRead::Closed => break,
            HeadRead::Abandoned(request_line) => {
                client.ended(Termination::new(By::Client, Stage::Request));
                let outcome = Outcome {
                    linger: false,
                    ..Outcome::closing(400, 0)
                };
                (outcome, LogLine::raw(request_line))
            }
            HeadRead::Refused(status, request_line) => {
                client.ended(refused_head(status));
                let bytes = client.refuse_unparsed(status, &shared.config);
                (Outcome::closing(status, bytes), LogLine::raw(request_line))
            }
        };
        let duration = client.started.elapsed();
        shared.metrics.observe(outcome.status, duration);
        // Logged 499: the client left before its answer began, whoever
        // saw it go.
        if outcome.status == 499 {
            client.ended(Termination::new(By::Client, Stage::Head));
        }
        // Counted under the pool whoever answered (one relaxed add, as
        // `observe`); its name, a shared count to touch, only for a log
        // that writes it.
        let pool = client.pool.take().map(|i| shared.pools.get(i));
        if let Some(pool) = pool {
            pool.stats().answers.count(outcome.status);
        }
        let pool = pool
            .filter(|_| shared.config.logs_pool())
            .map(|pool| pool.shared_name().clone());
        let sent_head = client.sent_head.take();
        // `log_skip_paths`, `log_skip_statuses`: counted above all the same.
        if !shared.config.log_skips(line.quiet_path, outcome.status) {
            let heads = sent_head.map(|sent| {
                Box::new(Heads {
                    request: line.headers.unwrap_or_default(),
                    response: Heads::fields_of(&sent),
                })
            });
            shared.log.log(Record {
                time,
                client: client.real_ip,
                // The port is the connection's: not that of a client a proxy
                // in front named.
                client_port: (client.real_ip == client.peer).then_some(client.peer_port),
                server: Some(client.server),
                remote_user: line.remote_user,
                request_line: line.request_line,
                made_target: client.made_target.take(),
                status: outcome.status,
                bytes: outcome.bytes,
                referer: line.referer,
                user_agent: line.user_agent,
                upstream: outcome.upstream,
                cache: outcome.cache,
                duration,
                connection: Some((connection, served)),
                // A client gone before anything reached it got no head.
                head_bytes: if outcome.status == 499 {
                    0
                } else {
                    client.head_bytes
                },
                request_length: Some(
                    (client.conn.taken() - taken_before)
                        .saturating_sub(client.blank_before)
                        .max(head_len.unwrap_or_default()),
                ),
                upstream_status: client.upstream_status,
                upstream_wait: client.upstream_wait,
                upstream_connect: client.upstream_connect,
                upstream_response: client.exchange_time.take(),
                termination: client.termination(),
                pool,
                show_pool: !shared.config.pools.is_empty(),
                request_id: client.request_id.as_ref().map(|(_, id)| id.clone()),
                heads,
                fields: line.fields,
                scheme: client.scheme,
                tls: client.tls,
                server_name: client.server_name.clone(),
                client_certificate: client.certificate.clone(),
            });
        }
        // Idle as far as shutdown is concerned, before the flag is read: a
        // shutdown then either is seen here or ends the revalidation, never
        // waits for it. Not begun during a shutdown: no client waits for it.
        if let Some(job) = client.after_response.take() {
            client.watch.set_idle();
            if !shared.shutting_down.load(Ordering::SeqCst) {
                cached::refresh(&mut client, job, &shared);
                client.watch.backend_done();
            }
        }
        let shutting_down = shared.shutting_down.load(Ordering::SeqCst);
        if !outcome.keep_alive || client.last_request || shutting_down {
            // During a shutdown too when input is left unread: closing on it
            // would send a reset that can destroy the response still on its
            // way (a pipelined request, an upload cut short). Bounded. But
            // for a first request dropped (`return 444`): nothing was sent
            // that a reset could destroy, and the client gets no more time.
            let dropped = outcome.status == CLOSE_UNANSWERED && served == 1;
            if !dropped && (client.has_unread_input() || (outcome.linger && !shutting_down)) {
                linger(client.conn.get_ref());
            }
            break;
        }
        client.conn.release_if_empty();
        client.conn.get_ref().release_if_empty();
    }
}

/// A request the proxy refused (an access rule, a limit, a malformed
/// or ambiguous head): HAProxy's `PR`.
const REFUSED: Termination = Termination::new(By::Proxy, Stage::Request);

/// How a request head refused with `status` ended its exchange: a slow
/// client's (`cR`, HAProxy's for a 408), else the proxy's refusal of a
/// malformed or too large head (`PR`, HAProxy's for its 400).
fn refused_head(status: u16) -> Termination {
    match status {
        408 => Termination::new(By::ClientTimeout, Stage::Request),
        _ => REFUSED,
    }
}

/// Applies the settings of `shared` (generation `seen`) to the connection.
fn take_settings(client: &mut Client, shared: &Shared, seen: u64, timeout: &mut Duration) {
    if shared.config.connection_timeout != *timeout {
        *timeout = shared.config.connection_timeout;
        client.timeout = *timeout;
        let _ = client.conn.get_ref().set_write_timeout(Some(*timeout));
    }
    // The generation too, whether or not the timeout changed: a close a
    // reload asked for is of the waits begun before it (see
    // `server::reload::close_idle_when_due`), and a wait begun after a later
    // reload gave back the old timeout is not one of them.
    let idle = shared.config.effective_keepalive_timeout();
    client.idle_timeout = idle;
    client.watch.set_idle_timeout(idle, seen);
    client.sent_head = shared.config.log_headers.then(Vec::new);
    client.crowded = sched::crowded(shared.metrics.connections.load(Ordering::Relaxed));
    client.apply_limits(&shared.config);
}

/// Answers 503 to a connection over a limit without waiting for its
/// request (what has arrived of it names it in the log), and closes it.
fn refuse(client: &mut Client, shared: &Shared) {
    let (time, started) = (SystemTime::now(), Instant::now());
    // Read what the client already sent, so closing does not reset the
    // connection before it sees the answer.
    let _ = client.conn.fill_now();
    let request_line = first_line(client.conn.buffered());
    let head_request = starts_a_head_request(client.conn.buffered());
    let bytes = client.send_error_to(503, true, head_request, shared);
    let _ = client.conn.get_ref().shutdown(Shutdown::Write);
    let duration = started.elapsed();
    let mut record = Record::refused(
        time,
        SocketAddr::new(client.peer, client.peer_port),
        client.server,
        request_line,
        bytes,
        duration,
    );
    record.head_bytes = client.head_bytes;
    shared.log_refusal(record);
}

/// Whether `name`, read with `_` as `-`, is a field the proxy writes or
/// frames the message with itself.
fn stands_in_for_proxy_field(name: &[u8]) -> bool {
    let framing = ["host", "content-length", "transfer-encoding", "connection"];
    (framing.iter().chain(&FORWARDING_FIELDS)).any(|ours| read_alike(ours.as_bytes(), name))
}

/// What happened to one request, for the log and the connection loop.
struct Outcome {
    status: u16,
    bytes: u64,
    upstream: Option<Arc<str>>,
    keep_alive: bool,
    /// The X-Cache status, when the cache is on.
    cache: Option<&'static str>,
    /// Whether closing after this exchange must linger (see [`linger`]):
    /// true unless the client asked to close and its whole request was
    /// read, so that it has nothing more to send. nginx's `lingering_close
    /// on` makes the same guess; lingering on every close costs a thread
    /// wake-up per connection for nothing.
    linger: bool,
}

impl Outcome {
    fn closing(status: u16, bytes: u64) -> Self {
        Outcome {
            status,
            bytes,
            upstream: None,
            keep_alive: false,
            cache: None,
            linger: true,
        }
    }
}

/// The request fields the access log shows.
struct LogLine {
    request_line: String,
    /// The user `Authorization: Basic` claims, right password or not.
    remote_user: Option<String>,
    referer: Option<String>,
    user_agent: Option<String>,
    /// With `log_headers`: the request's fields.
    headers: Option<Vec<(String, String)>>,
    /// Those a `log_format` template names.
    fields: Option<RequestFields>,
    /// Its path is one `log_skip_paths` lists.
    quiet_path: bool,
}

impl LogLine {
    fn raw(request_line: String) -> Self {
        LogLine {
            request_line,
            remote_user: None,
            referer: None,
            user_agent: None,
            headers: None,
            fields: None,
            quiet_path: false,
        }
    }

    fn of(head: &RequestHead, config: &Config) -> Self {
        let headers = config.log_headers.then(|| {
            head.headers
                .iter()
                .map(|(name, value)| (name.to_string(), logged_value(name, value)))
                .collect()
        });
        LogLine {
            request_line: [head.method.as_str(), &head.target, head.version.as_str()].join(" "),
            // Taken before the request is checked or forwarded: a 401's
            // line names the user refused. No field, no allocation.
            remote_user: crate::auth::claimed_user(&head.headers),
            referer: logged_field(&head.headers, "referer"),
            user_agent: logged_field(&head.headers, "user_agent"),
            headers,
            fields: (config.log_format.request_fields())
                .map(|names| RequestFields::take(names, &head.headers)),
            quiet_path: !config.log_skip_paths.is_empty() && {
                let target = head.path_and_query();
                let path = target.split('?').next().unwrap_or_default();
                config.log_skip_paths.matches(path)
            },
        }
    }
}

/// A request field's value as `log_headers` writes it: credentials
/// redacted (see [`auth::redacted`]).
fn logged_value(name: &str, value: &[u8]) -> String {
    let value = String::from_utf8_lossy(value);
    match auth::is_credentials_field(name) {
        true => auth::redacted(&value),
        false => value.into_owned(),
    }
}

/// The fields `$http_<name>` reads (`_` for `-`, as nginx), trimmed and
/// joined with `, `, as every other `$http_` variable's; obs-text (not
/// UTF-8) logged as U+FFFD rather than lost.
fn logged_field(headers: &Headers, name: &str) -> Option<String> {
    let named = (headers.iter()).filter(|(field, _)| variables::names_field(name, field));
    named.fold(None, |joined, (_, value)| {
        let value = String::from_utf8_lossy(value.trim_ascii());
        Some(match joined {
            Some(joined) => format!("{joined}, {value}"),
            None => value.into_owned(),
        })
    })
}

/// One request/response exchange, from a complete head in the client's
/// buffer to the last byte of the response.
fn exchange(client: &mut Client, head_len: usize, shared: &Shared) -> (Outcome, LogLine) {
    let parsed = parse_request(&client.conn.buffered()[..head_len], &client.limits)
        .and_then(|head| BodyKind::for_request(&head).map(|kind| (head, kind)));
    let (mut head, body_kind) = match parsed {
        Ok(ok) => ok,
        Err(e) => {
            client.ended(refused_head(e.status()));
            let line = LogLine::raw(first_line(client.conn.buffered()));
            let bytes = client.refuse_unparsed(e.status(), &shared.config);
            return (Outcome::closing(e.status(), bytes), line);
        }
    };
    client.conn.consume(head_len);
    client.takes_gzip = relay::client_takes_gzip(&head);
    let trusted = &shared.config.real_ip_from;
    client.real_ip = realip::client_address(client.peer, &head.headers, trusted);
    client.scheme = realip::client_scheme(client.peer, client.tls_in_front, &head.headers, trusted);
    let from_proxy = realip::is_trusted(client.peer, trusted);
    // Before the cache reads the request: one with a certificate is an
    // authenticated one (see `policy::has_credentials`).
    client_cert::put_fields(&mut head.headers, client.certificate.as_deref());
    if let Some((name, id)) = &mut client.request_id {
        // The last field of that name: a proxy in front that adds its own
        // (HAProxy's `unique-id-header` does) leaves its client's before
        // it, as with X-Forwarded-For, and the client's is never kept.
        let given = head
            .headers
            .get_all(name)
            .next_back()
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim);
        if let Some(given) = given.filter(|g| from_proxy && request_id::is_well_formed(g)) {
            *id = given.to_string();
        }
    }
    let mut line = LogLine::of(&head, &shared.config);
    // After the log line, which shows the request as it came (a forged
    // claim is worth seeing there); before anything else reads them.
    if !from_proxy {
        realip::drop_claims(&mut head.headers);
    }
    // `rewrite.<name>`: after the log line is taken (it shows the request
    // as it came, as nginx's `$request`), before routing, which goes by
    // the new path. A rule that redirects is answered below, where a
    // redirect route is: it is routed by the path as it came.
    let rule_answer = match shared.config.rewrites.is_empty() {
        true => None,
        false => match rewrite(client, &mut head, &shared.config.rewrites) {
            Ok(answer) => answer,
            Err(Ambiguous) => {
                client.route = None;
                client.ended(REFUSED);
                let outcome = answer_unread(client, &head, body_kind, 400, b"", shared);
                return (outcome, line);
            }
        },
    };
    let target = head.path_and_query();
    let asked = Asked {
        method: &head.method,
        target: &target,
        headers: &head.headers,
        client: client.real_ip,
    };
    let routes = &shared.config.routes;
    client.route = match routes.route_asked(head.authority(), &target, Lookup::Request(&asked)) {
        Ok(route) => route,
        // A path with dot-segments or a `\`: which route it is for
        // depends on how each backend reads it.
        Err(Ambiguous) => {
            client.route = None;
            client.ended(REFUSED);
            let outcome = answer_unread(client, &head, body_kind, 400, b"", shared);
            return (outcome, line);
        }
    };
    // Routed: from here on, what the request is answered (a cache hit,
    // the pool's own refusals and errors too) is logged with its pool,
    // and counted under it.
    client.pool = shared.routed_pool(client.route);
    // The pool's lists and limit: its own, or the top-level ones.
    let settings = shared.pool_config(client.route);
    render_response_fields(client, &head, settings, shared);
    client.pacing = settings.pacing;
    client.max_body = match settings.max_body_size {
        0 => u64::MAX,
        n => n,
    };
    if !access::admits(client.real_ip, &settings.allow_from, &settings.deny_from) {
        return (deny(client, &head, shared), line);
    }
    // `return 444` says nothing, over either scheme (a scanner gets no
    // redirect to HTTPS either): the connection is closed, what the
    // client still sends unread. Not a request a rule redirects (a
    // `host=` rule's redirect for a host a catch-all route drops); one a
    // rule failed on is dropped as the rest, not told of it in a 500.
    let route = client.route.and_then(|i| shared.config.routes.get(i));
    let dropped = route.and_then(|r| r.returned()).map(|r| r.status) == Some(CLOSE_UNANSWERED);
    if dropped && !matches!(rule_answer, Some(RuleAnswer::Redirect(..))) {
        client.ended(REFUSED);
        let outcome = Outcome {
            linger: false,
            ..Outcome::closing(CLOSE_UNANSWERED, 0)
        };
        return (outcome, line);
    }
    // After the access lists, so that a refused client is refused on
    // either scheme; before the rate limit, so that a page is counted
    // once, when the browser asks again over HTTPS, as nginx's `return`
    // (its rewrite phase) comes before `limit_req`.
    if shared.config.redirect_to_https && client.scheme == "http" {
        let except = &shared.config.redirect_to_https_except;
        let sent = client.sent_target.as_deref().unwrap_or(&head.target);
        if let Some(redirect) = https_redirect::redirect(&head, sent, except) {
            shared
                .metrics
                .https_redirects
                .fetch_add(1, Ordering::Relaxed);
            let location = location_field(&redirect.location);
            let status = redirect.status;
            let outcome = answer_unread(client, &head, body_kind, status, &location, shared);
            return (outcome, line);
        }
    }
    // A rule that redirects (`rewrite.old = ^/old/(.*)$ /new/$1
    // permanent`), or that made no target to go on with: answered here,
    // as a redirect route is.
    match rule_answer {
        Some(RuleAnswer::Redirect(status, to)) => {
            let field = location_field(&to);
            let outcome = answer_unread(client, &head, body_kind, status, &field, shared);
            return (outcome, line);
        }
        Some(RuleAnswer::Failed) => {
            let outcome = answer_unread(client, &head, body_kind, 500, b"", shared);
            return (outcome, line);
        }
        None => {}
    }
    // A route that redirects (`route.www.example.com = redirect 301
    // https://example.com`): answered here, as the HTTPS redirect is.
    if let Some((status, to)) = route.and_then(|r| r.redirect_for(&head.path_and_query())) {
        let field = location_field(&to);
        let outcome = answer_unread(client, &head, body_kind, status, &field, shared);
        return (outcome, line);
    }
    // `route./healthz = return 200 ok`, `route./.git/ = return 404`.
    if let Some(Return { status, text }) = route.and_then(|r| r.returned()) {
        let answer = (*status, text.as_deref());
        let outcome = answer_unread_with(client, &head, body_kind, answer, b"", shared);
        return (outcome, line);
    }
    // `hash`'s key, from the request as the client sent it: before the
    // sticky cookie is taken out (`hash_on` may name it) and any field is
    // dropped or edited on its way to a backend or the cache.
    client.hash_value.clear();
    if let Some(value) = (settings.hash_on.as_ref()).and_then(|on| on.value_in(&head)) {
        client.hash_value.extend_from_slice(value);
    }
    client.sticky = settings.sticky_cookie.clone().map(|name| {
        let sent = sticky::take(&mut head.headers, &name);
        (name, sent)
    });
    // The route's own `rate_limit=` and its pool's, both: by the pool's key.
    let own = client.route.and_then(|i| shared.limiters.of_route(i));
    let limits = [own, shared.limiter(client.route)].map(|l| l.map(|l| &**l));
    if limits.iter().any(Option::is_some) {
        // A request that does not carry what `rate_limit_key` names is
        // counted by its address: leaving the key out gets around nothing.
        let underscores = shared.config.underscores_in_headers;
        let keys = (settings.rate_limit_key.as_ref()).map_or(Keys::Address, |on| {
            ratelimit::key_in(on, &head, underscores)
        });
        let now = Instant::now();
        if let Err(wait) = ratelimit::admit_under_all(limits, &keys, client.real_ip, now) {
            shared.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            client.ended(REFUSED);
            // Whole seconds, rounded up, at least one.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut retry_after = Vec::new();
            push_field(&mut retry_after, "Retry-After", seconds.max(1));
            let outcome = answer_unread(client, &head, body_kind, 429, &retry_after, shared);
            return (outcome, line);
        }
    }
    // RFC 9110 §15.5.14: a server may refuse a request whose content is
    // larger than it is willing to process with 413, and close the
    // connection (the body is not read). A declared length is checked
    // before anything is read or forwarded, or asked of `auth_basic` and
    // `auth_request`'s gateway (nginx checks `client_max_body_size` before
    // its access phase); a chunked body is counted as it streams
    // (BodyReader::with_limit).
    if matches!(body_kind, BodyKind::Length(n) if n > client.max_body) {
        client.ended(REFUSED);
        let bytes = client.send_error_to(413, true, head.is_head(), shared);
        return (Outcome::closing(413, bytes), line);
    }
    // After the rate limit, so that guessing passwords takes a client's
    // tokens (nginx's `limit_req` comes before `auth_basic` too); before
    // the cache, so that nothing stored reaches a client not signed in.
    if let Some((realm, users)) = (settings.auth_basic.as_ref()).zip(settings.auth_users.as_ref()) {
        match auth::check(users, &head.headers, &mut client.granted) {
            // `$remote_user`, for the values that may name it (those of
            // the `auth_request` service's pool too): only a user signed in.
            Ok(()) if names_variables(settings, shared) => {
                client.user = auth::claimed_user(&head.headers);
                render_response_fields(client, &head, settings, shared);
            }
            Ok(()) => {}
            // A client `auth_basic_except_from` spares goes on, but not
            // with credentials that are not a user's: a backend that
            // trusts the name would take it for a user signed in.
            Err(_) if settings.spares_auth(client.real_ip) => {
                if head.headers.remove("authorization") > 0 {
                    line.remote_user = None;
                }
            }
            Err(refused) => {
                shared.metrics.count_auth_refusal(refused);
                client.ended(REFUSED);
                let challenge = auth::challenge(realm);
                let challenge = challenge.as_bytes();
                let outcome = answer_unread(client, &head, body_kind, 401, challenge, shared);
                return (outcome, line);
            }
        }
    }
    // As nginx does by default: a backend that maps `-` and `_` to one
    // name (CGI, WSGI, Rack) would read `X_Forwarded_For` as our
    // X-Forwarded-For, or `Content_Length` as framing we did not check.
    // Allowed, they still never stand in for a field the proxy writes.
    // Before `auth_request`, whose service may read names so too.
    let underscores = shared.config.underscores_in_headers;
    head.headers.retain(|name, _| {
        !name.contains(&b'_') || (underscores && !stands_in_for_proxy_field(name))
    });
    // `auth_request`: after `auth_basic` (both may be on), before the
    // files and the cache, as the sign-in above.
    let names = &settings.auth_request_headers;
    if let Some(asked) = &settings.auth_request {
        match forward_auth::ask(client, &mut head, body_kind, asked, names, shared) {
            Ok(None) => {}
            Ok(Some(answered)) => return (answered, line),
            Err(refusal) => {
                let (version, head_request) = (head.version, head.is_head());
                let outcome = answer_refusal(client, refusal, version, head_request, shared);
                return (outcome, line);
            }
        }
    } else if !names.is_empty() {
        forward_auth::take_out(&mut head, names);
    }
    // `hash_on` a field the service gives (`header:Remote-User`, one
    // target per user): its value, not the one the client sent.
    if let Some(on @ HashOn::Header(field)) = &settings.hash_on {
        if names
            .iter()
            .any(|n| read_alike(n.as_bytes(), field.as_bytes()))
        {
            client.hash_value.clear();
            if let Some(value) = on.value_in(&head) {
                client.hash_value.extend_from_slice(value);
            }
        }
    }
    // `route./static/ = files /srv/www`: after the sign-in, so that files
    // behind a password stay behind it; before the cache, which never
    // holds them (the page cache does).
    if let Some((route, files)) = route.and_then(|r| Some((r, r.files()?))) {
        // Not there for clients: for a backend's `X-Accel-Redirect`.
        if route.is_internal() {
            return (
                answer_unread(client, &head, body_kind, 404, b"", shared),
                line,
            );
        }
        let target = head.path_and_query();
        let under = route.path_under(target.split('?').next().unwrap_or_default());
        let answered = files::serve(client, &head, body_kind, files, &under, None, shared);
        if let Some(outcome) = answered {
            return (outcome, line);
        }
    }
    // A pool whose backends never get the client's credentials (its
    // `request_header.Authorization` removes them, or sets its own) gets
    // answers that cannot depend on them: the cache reads the request
    // without them too, as anyone's (RFC 9111 §3.5 keeps a shared cache
    // from answering with what an origin sent for credentials it saw).
    // Not when a value holds variables: one may tell the backend who the
    // client is (`$remote_user`), and its answer is then for them alone.
    let edits = &settings.request_headers;
    if edits.edits(b"authorization") && !edits.has_variables() {
        head.headers.remove("authorization");
    }
    // While the body arrives, a pause longer than client_body_timeout ends
    // the exchange with 408 (the response side keeps connection_timeout).
    let has_body = body_kind != BodyKind::Empty;
    if has_body {
        client.time_reads_out_after(client.body_timeout);
    }
    let wants_keep_alive = head.wants_keep_alive();
    let head_request = head.is_head();
    let version = head.version;
    client.body_read_whole = false;
    client.accel =
        (shared.config.routes.take_accel_redirects()).then(|| files::accel_request(&head));
    let forwarded = forward(client, head, body_kind, shared);
    // A client that asked to close and whose request was read to its end
    // has nothing more to send: no lingering. A streamed body may have been
    // cut short by an early response, and its rest still be coming.
    let client_closes = !wants_keep_alive && client.body_read_whole;
    let outcome = match forwarded {
        Ok(outcome) => Outcome {
            linger: !client_closes,
            ..outcome
        },
        Err(refusal) => Outcome {
            // As after a relayed response: a client that asked to close
            // and sent all it had leaves nothing to drain.
            linger: !client_closes,
            ..answer_refusal(client, refusal, version, head_request, shared)
        },
    };
    (outcome, line)
}

/// What a `rewrite.<name>` rule leaves to answer once the request is
/// routed and past the access lists and the HTTPS redirect.
enum RuleAnswer {
    /// A redirect, with that status, to that `Location`.
    Redirect(u16, String),
    /// The rule made no target the request can go on with (see
    /// [`crate::rewrite::Unusable`]): 500, the configuration's fault
    /// rather than the client's.
    Failed,
}

/// Applies the first `rewrite.<name>` rule that matches `head`'s path:
/// a new target goes in the head (the client's is kept in
/// [`Client::sent_target`]); a redirect, or a failure, is left to answer
/// (see [`RuleAnswer`]). A path routes refuse is refused here too, with
/// routes or without: rules match paths as routes read them, and some
/// backend reads such a path otherwise.
fn rewrite(
    client: &mut Client,
    head: &mut RequestHead,
    rewrites: &Rewrites,
) -> Result<Option<RuleAnswer>, Ambiguous> {
    // Not an `OPTIONS *` (or an absolute-form one with no path): it asks
    // about the server, and no rule takes it.
    let target = head.origin_target();
    let rules = rewrites.for_request(head.authority(), client.scheme);
    if rules.ambiguous(&target) {
        return Err(Ambiguous);
    }
    match rules.apply(&target) {
        Ok(None) => Ok(None),
        Ok(Some(Rewritten::Internal(to))) => {
            client.sent_target = Some(head.set_path_and_query(&to));
            client.made_target = Some(to);
            Ok(None)
        }
        Ok(Some(Rewritten::Redirect { status, location })) => {
            Ok(Some(RuleAnswer::Redirect(status, location)))
        }
        Err(unusable) => {
            // A rule that goes wrong for one path goes wrong for many.
            static UNUSABLE: OnceAMinute = OnceAMinute::new();
            if UNUSABLE.due() {
                log::error!("{unusable}; answered 500");
            }
            Ok(Some(RuleAnswer::Failed))
        }
    }
}

/// Whether a field value of `settings`, or of its `auth_request`
/// service's pool, holds variables.
fn names_variables(settings: &Config, shared: &Shared) -> bool {
    let asked = (settings.auth_request.as_ref()).map(|a| shared.config_of_pool(a.pool));
    (std::iter::once(settings).chain(asked))
        .any(|c| c.request_headers.has_variables() || c.response_headers.has_variables())
}

/// Renders the `response_header.*` of `settings` whose values hold
/// variables for the request `head`, into the fields each response to it
/// carries (see [`Client::response_fields`]).
fn render_response_fields(
    client: &mut Client,
    head: &RequestHead,
    settings: &Config,
    shared: &Shared,
) {
    let edits = &settings.response_headers;
    if edits.has_variables() {
        // The fixed ones are in each head already (`set_lines`).
        let mut fields = std::mem::take(&mut client.response_fields);
        let mut pending = std::mem::take(&mut client.pending_fields);
        fields.clear();
        pending.clear();
        let facts = origin::facts(head, client, shared);
        edits.render_variable_lines(&facts, &mut fields);
        edits.pending(&facts, &mut pending);
        client.response_fields = fields;
        client.pending_fields = pending;
    }
}

/// Answers an exchange that ended in `refusal` with the proxy's own
/// status, if it has one (none: the client is gone).
fn answer_refusal(
    client: &mut Client,
    refusal: Refusal,
    version: Version,
    head_request: bool,
    shared: &Shared,
) -> Outcome {
    if let Some(status) = refusal.for_backend() {
        client.upstream_status = Some(status);
    }
    let bytes = match refusal.status {
        Some(status) => {
            let close = !refusal.keep_alive || shared.shutting_down.load(Ordering::Relaxed);
            let fields = keep_alive_field(version, close);
            client.send_own(status, close, head_request, fields, None, shared)
        }
        None => 0,
    };
    Outcome {
        status: refusal.status.unwrap_or(499),
        bytes,
        upstream: refusal.upstream,
        keep_alive: refusal.keep_alive && refusal.status.is_some(),
        cache: None,
        linger: true,
    }
}

/// The `Connection` field an answer of the proxy's own needs besides
/// its `Connection: close` (written with it): an HTTP/1.0 connection
/// kept open says so, or the client takes it for closed (RFC 9112 §9.3)
/// and waits for an end that does not come.
pub(super) fn keep_alive_field(version: Version, close: bool) -> &'static [u8] {
    match !close && version == Version::Http10 {
        true => b"Connection: keep-alive\r\n",
        false => b"",
    }
}

/// `Location: <to>` and its line end, for a redirect of the proxy's own.
fn location_field(to: impl AsRef<[u8]>) -> Vec<u8> {
    let to = to.as_ref();
    let mut field = Vec::with_capacity(to.len() + 12);
    for part in [b"Location: ", to, b"\r\n"] {
        field.extend_from_slice(part);
    }
    field
}

/// Answers 403 to a client `allow_from` or `deny_from` refuses, as nginx
/// does, before the cache or a backend is involved, and before the rate
/// limit, so that a refused client takes no bucket from the allowed ones.
/// The connection is closed, so the body is never read (it could not be
/// told from a next request otherwise) and a refused client gets no more
/// of a thread's time; what it still sends is only drained by the
/// lingering close, so that the answer is not lost to a reset. Behind a
/// `real_ip_from` balancer that carries several clients on a connection,
/// that connection closes too, and the balancer opens another.
fn deny(client: &mut Client, head: &RequestHead, shared: &Shared) -> Outcome {
    shared.metrics.access_denied.fetch_add(1, Ordering::Relaxed);
    client.ended(REFUSED);
    let bytes = client.send_error_to(403, true, head.is_head(), shared);
    Outcome::closing(403, bytes)
}

/// Answers a request with the proxy's own `status` (`fields`, whole
/// lines, added to its head) before its body, if any, is read: the 429 of
/// `rate_limit`, the redirects of `redirect_to_https`. A body is not read:
/// the connection closes after the answer, or what is left of it would be
/// taken for the next request. Without one, the connection stays open as
/// the client wants.
fn answer_unread(
    client: &mut Client,
    head: &RequestHead,
    body_kind: BodyKind,
    status: u16,
    fields: &[u8],
    shared: &Shared,
) -> Outcome {
    answer_unread_with(client, head, body_kind, (status, None), fields, shared)
}

/// [`answer_unread`] with `text` as the body, when given (see
/// [`own_response`]).
fn answer_unread_with(
    client: &mut Client,
    head: &RequestHead,
    body_kind: BodyKind,
    (status, text): (u16, Option<&str>),
    fields: &[u8],
    shared: &Shared,
) -> Outcome {
    let close = body_kind != BodyKind::Empty
        || !client.keeps_alive(head)
        || shared.shutting_down.load(Ordering::Relaxed);
    let kept = keep_alive_field(head.version, close);
    let fields: Cow<'_, [u8]> = match kept.is_empty() {
        true => Cow::Borrowed(fields),
        false => Cow::Owned([fields, kept].concat()),
    };
    // Answered here, as told (a redirect, a `return`): HAProxy's `LR`,
    // unless it is a refusal, told so before.
    client.ended(Termination::new(By::Local, Stage::Request));
    let bytes = client.send_own(status, close, head.is_head(), &fields, text, shared);
    Outcome {
        keep_alive: !close,
        ..Outcome::closing(status, bytes)
    }
}

/// An exchange that ended without relaying a response: the status the
/// proxy answers with itself (`None`: the client is gone, say nothing).
struct Refusal {
    status: Option<u16>,
    upstream: Option<Arc<str>>,
    keep_alive: bool,
}

impl Refusal {
    /// The status answered for a backend that failed (502, 504), for the
    /// log's `$upstream_status`.
    fn for_backend(&self) -> Option<u16> {
        self.status
            .filter(|s| self.upstream.is_some() && matches!(s, 502 | 504))
    }

    fn new(status: u16, keep_alive: bool) -> Self {
        Refusal {
            status: Some(status),
            upstream: None,
            keep_alive,
        }
    }

    /// The client is gone: nothing to answer.
    fn silent() -> Self {
        Refusal {
            status: None,
            upstream: None,
            keep_alive: false,
        }
    }
}

fn forward(
    client: &mut Client,
    mut head: RequestHead,
    body_kind: BodyKind,
    shared: &Shared,
) -> Result<Outcome, Refusal> {
    let keep_alive = client.keeps_alive(&head);
    let mut expect_continue = false;
    // RFC 9110 §10.1.1: 100-continue is the only expectation defined; a
    // server that receives another may answer 417. "A server that receives
    // a 100-continue expectation in an HTTP/1.0 request MUST ignore that
    // expectation": such a client may not know 1xx responses at all.
    // Every line counts: `Expect` is a list, whether in one line or several.
    // Empty list elements are no expectation (RFC 9110 §5.6.1.2: a
    // recipient MUST ignore them); an element that is not UTF-8 is one.
    if head.version == Version::Http11 && head.headers.contains("expect") {
        let mut expectations = (head.headers.get_all("expect"))
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|e| !e.is_empty())
            .peekable();
        let any = expectations.peek().is_some();
        if !expectations.all(|e| e.eq_ignore_ascii_case(b"100-continue")) {
            return Err(Refusal::new(417, false));
        }
        expect_continue = any && body_kind != BodyKind::Empty;
    }
    // RFC 9110 §7.6.2: an OPTIONS that may go no further is answered here,
    // as its final recipient; one that may goes one hop less far. (TRACE,
    // the other method it counts on, is refused before.)
    if head.method == "OPTIONS" {
        match max_forwards(&head.headers) {
            Some(0) => {
                let keep_alive = keep_alive && body_kind == BodyKind::Empty;
                return Err(Refusal::new(200, keep_alive));
            }
            Some(hops) => {
                head.headers.remove("max-forwards");
                head.headers.push("Max-Forwards", (hops - 1).to_string());
            }
            None => {}
        }
    }
    // RFC 9110 §7.8: "A server MUST ignore an Upgrade header field that is
    // received in an HTTP/1.0 request." A request with a body is not
    // upgraded either: the switch would have to wait for the whole body,
    // and nobody needs that.
    let upgrade = tunnel::is_upgrade_request(&head) && body_kind == BodyKind::Empty;
    // Bodies are read whole first when they fit request_buffer_size: a
    // Content-Length says so at once; a chunked body is read until it ends
    // or outgrows it, and goes on a Content-Length if it ended (nginx's
    // proxy_request_buffering does the same; many backends take no
    // chunked request at all).
    let body = match body_kind {
        BodyKind::Empty => RequestBody::Buffered(Vec::new()),
        BodyKind::Length(n) if n > client.request_buffer => {
            RequestBody::streamed(body_kind, client.max_body)
        }
        _ if client.request_buffer == 0 => RequestBody::streamed(body_kind, client.max_body),
        _ => {
            if expect_continue {
                client.send_continue()?;
                expect_continue = false;
            }
            client.read_body(body_kind)?
        }
    };
    client.body_read_whole = body.is_buffered();
    let cache = shared.cache_for(client.route);
    // Whether `mirror` has its copy already (see below).
    let mut copied = false;
    if let Some(cache) = cache.filter(|_| !upgrade) {
        let pool = shared.pool_config(client.route);
        // A signed-in user's request (`cache_bypass_cookies`): as one the
        // cache has no say in, it goes to the origin on its own, as sent,
        // and its answer to the client alone (BYPASS, below).
        // Or a request a route took for a field, a cookie or its
        // address (`if cookie canary 1`): another for the same URL may go
        // to another pool, whose answers are not this one's.
        let route = client.route.and_then(|i| shared.config.routes.get(i));
        let by_condition =
            (route.and_then(|r| r.condition())).is_some_and(|c| c.reads_past_the_key());
        let bypass = by_condition || pool.cache_bypass_cookies.matches(&head.headers);
        if pool.ignore_client_cache_control && !bypass && matches!(&*head.method, "GET" | "HEAD") {
            // A browser's reload (`no-cache`, `max-age=0`) is answered from
            // the cache, as nginx and Varnish do: a page everyone reloads at
            // once would otherwise send every reload to the backend. Taken
            // out of the request itself, so the cache's own fetch does not
            // carry them either.
            head.headers.remove("cache-control");
            head.headers.remove("pragma");
        }
        if bypass {
            // Nothing stored may answer it, so its `only-if-cached` (RFC
            // 9111 §5.2.1.7) gets what a miss gets.
            if cached::consulted(&head, &body)
                && policy::CacheControl::parse(&head.headers).only_if_cached
            {
                return Err(Refusal::new(504, keep_alive));
            }
        } else {
            // Copied before the cache is looked in, as nginx's `mirror`
            // copies a request before its `proxy_cache` has a say.
            if cached::eligible(&head, &body) {
                origin::mirror_cache_request(client, &head, shared);
                return cached::serve(client, head, cache, shared);
            }
            if cached::takes_range(&head, &body) {
                origin::mirror_cache_request(client, &head, shared);
                copied = true;
                if let Some(done) = cached::serve_range(client, &head, &body, cache, shared) {
                    return done;
                }
            }
        }
    }
    // Unsafe methods that succeed invalidate what is stored for their URI,
    // and for the ones their answer's Location and Content-Location name
    // (RFC 9111 §4.4), keyed as a GET of them would be; so does a method
    // override, which some backends take for the method it names.
    let ignored = &shared.config.cache_key_ignore_params;
    let invalidates = shared
        .cache
        .as_ref()
        .filter(|_| policy::is_unsafe(&head.method) || cached::overrides_to_unsafe(&head))
        .map(|_| policy::primary_keys_of_uri(&head, ignored));
    // A COPY or MOVE also changes the resource its `Destination` names
    // (RFC 4918 §9.8, §9.9): what is stored for it goes as for a
    // `Location`, when it is on the request's own host. Taken as the
    // client sent it, before anything is set on the request for the
    // backend: the cache keys the client's URLs.
    let destination = (invalidates.as_ref())
        .filter(|_| matches!(&*head.method, "COPY" | "MOVE"))
        .and_then(|_| head.headers.get_str("destination"))
        .map(str::to_owned);
    let send = Outgoing {
        body: &body,
        expect_continue,
        keep_alive,
        extra: &[],
        upgrade,
        interim_to_client: head.version == Version::Http11,
        abandon_if_client_leaves: true,
        mirrored: !upgrade && !copied,
    };
    let is_head = head.is_head();
    let version = head.version;
    let gzip = shared.gzip(client.route);
    let takes_gzip = relay::takes_gzip(&head, gzip);
    // A client that takes gzip may hold a compressed answer, whose date
    // is the plain body's too: a part of the plain body, sent for its
    // `If-Range` date, would be spliced onto gzip bytes. Such a part of a
    // body gzip compresses is not relayed: the whole is asked for, and
    // goes compressed, as the cache answers it (`cached::answer::serve_entry`).
    // A part of a type gzip leaves alone (a `.zip` resumed) is.
    let resumed_by_date = takes_gzip
        && head.method == "GET"
        && head.headers.contains("range")
        && (head.headers.get_str("if-range")).is_some_and(|c| !c.starts_with('"'))
        && matches!(&body, RequestBody::Buffered(b) if b.is_empty());
    let whole = resumed_by_date.then(|| head.clone());
    let mut fetched = origin::fetch(client, &mut head, &send, shared)?;
    let part_of_compressed = fetched.response.status == 206
        && gzip.is_some_and(|g| g.suits_the_whole_of(&fetched.response.headers));
    if let Some(mut whole) = whole.filter(|_| part_of_compressed) {
        relay::discard(fetched, false, client);
        whole.headers.remove("range");
        whole.headers.remove("if-range");
        let again = Outgoing {
            mirrored: false,
            ..send
        };
        fetched = origin::fetch(client, &mut whole, &again, shared)?;
        head = whole;
    }
    // Sent: the body cannot go again, and is not kept while the response
    // is relayed.
    drop(body);
    if fetched.response.status == 101 {
        return tunnel::run(client, fetched, &head, shared);
    }
    // On the status, not after the relay: the backend has acted on the
    // request even if its body or the client then fails (RFC 9111 §4.4:
    // "when it receives a non-error status code").
    if let (Some(cache), Some(keys)) = (&shared.cache, &invalidates) {
        if (200..400).contains(&fetched.response.status) {
            cache.invalidate_all(keys, Purge::Hard);
            let named = ["location", "content-location"]
                .map(|field| fetched.response.headers.get_str(field));
            for uri in named.into_iter().chain([destination.as_deref()]).flatten() {
                if let Some(more) = policy::keys_of_reference(keys, uri, ignored) {
                    cache.invalidate_all(&more, Purge::Hard);
                }
            }
        }
    }
    if client.gave_up_on(&fetched) {
        return Err(Refusal {
            upstream: Some(fetched.target.name.clone()),
            ..Refusal::silent()
        });
    }
    let how = Relay {
        request_is_head: is_head,
        version,
        keep_alive,
        x_cache: cache.is_some().then_some("BYPASS"),
        takes_gzip,
    };
    let outcome = relay::relay(client, fetched, &how, None, shared)?;
    if let Some(cache) = cache {
        cache.stats.bypass.fetch_add(1, Ordering::Relaxed);
    }
    Ok(outcome)
}

/// What to tell a client whose request body could not be read.
fn client_body_status(e: &BodyError) -> Option<u16> {
    match e {
        BodyError::BadChunk(_) => Some(400),
        BodyError::TooLarge(_) => Some(413),
        BodyError::Io(e) if is_timeout(e) => Some(408),
        _ => None,
    }
}

/// A response the proxy makes itself: its head (and the plain-text body,
/// or a body compressed for it, when there is no page or page copy held
/// in the settings), then the operator's page, or its compressed copy, if
/// any, sent from where it is held rather than copied.
pub struct ErrorResponse<'p> {
    bytes: Vec<u8>,
    head_len: usize,
    page: &'p [u8],
    pub body_len: u64,
    /// The body's length before it was compressed, when it was.
    pub gzipped_from: Option<u64>,
}

impl ErrorResponse<'_> {
    /// The head, up to and with its blank line.
    pub fn head(&self) -> &[u8] {
        &self.bytes[..self.head_len]
    }

    /// Writes the response, or its head alone (the answer to a HEAD: RFC
    /// 9110 §9.3.2), in one `writev` in the common case; returns the body
    /// bytes that went out (none for a HEAD), or `None` when the write
    /// failed.
    pub fn send(&self, out: &mut impl std::io::Write, head_only: bool) -> Option<u64> {
        let written = if head_only {
            out.write_all(self.head())
        } else {
            let mut parts = [IoSlice::new(&self.bytes), IoSlice::new(self.page)];
            write_all_vectored(out, &mut parts)
        };
        match written {
            Ok(()) if !head_only => Some(self.body_len),
            Ok(()) => Some(0),
            Err(_) => None,
        }
    }
}

/// Whether raw request bytes not parsed yet (what a client sent before it
/// is refused) begin a HEAD, whose answer is its head alone; after empty
/// lines too, which RFC 9112 §2.2 has a server ignore before a request.
pub fn starts_a_head_request(received: &[u8]) -> bool {
    let blank = received.iter().take_while(|&&b| b == b'\r' || b == b'\n');
    received[blank.count()..].starts_with(b"HEAD ")
}

/// The response for `status`, e.g. `502 Bad Gateway`: the `error_pages`
/// page for it if there is one, else a short plain-text body. `fields`
/// (whole lines, CRLF-ended) are added to the head, then the fields
/// `response_header.*` sets (none it removes is here: every field of this
/// head is one the proxy writes, which those keys may not name).
pub fn error_response<'p>(
    status: u16,
    close: bool,
    fields: &[u8],
    config: &'p Config,
) -> ErrorResponse<'p> {
    own_response(status, close, fields, None, config)
}

/// [`error_response`], with `text` (plain text) as the body when given
/// (a `return` route's).
pub fn own_response<'p>(
    status: u16,
    close: bool,
    fields: &[u8],
    text: Option<&'p str>,
    config: &'p Config,
) -> ErrorResponse<'p> {
    coded_response(status, close, fields, text, config, None)
}

/// [`own_response`] with `gzip` on for the request it answers: its body
/// goes compressed, and says `Vary`, by the rules a backend's answer of
/// that status, type and length would (see [`Gzip::suits`]). Held whole,
/// it is compressed whole and sent with its length (a HEAD's too, which
/// is the GET's head); an `error_pages` page once, a text at each answer.
pub fn coded_response<'p>(
    status: u16,
    close: bool,
    fields: &[u8],
    text: Option<&'p str>,
    config: &'p Config,
    gzip: Option<ForClient<'_>>,
) -> ErrorResponse<'p> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    let page = match text {
        Some(text) => Some((text.as_bytes(), PLAIN)),
        None => (config.error_pages.get(status)).map(|page| (page, PAGE_CONTENT_TYPE)),
    };
    // With a page, no body is made here (an empty String allocates nothing).
    let (plain, content_type) = match page {
        Some((_, content_type)) => (String::new(), content_type),
        None => (format!("{status} {}\n", reason_phrase(status)), PLAIN),
    };
    let page = page.map(|(page, _)| page);
    let body = page.unwrap_or(plain.as_bytes());
    let mut head = ResponseHead::new(status);
    head.headers.push(
        "Date",
        crate::http::date::format_http_date(SystemTime::now()),
    );
    head.headers.push("Content-Type", content_type);
    let coding = gzip.filter(|g| g.gzip.suits(status, &head.headers, Some(body.len() as u64)));
    let gzipped: Option<Cow<'p, [u8]>> = coding.filter(|g| g.takes).map(|g| {
        let kept = text.is_none().then(|| {
            let gzip = g.gzip;
            config
                .error_pages
                .gzipped(status, |page| gzip.compress_to_keep(page))
        });
        match kept.flatten() {
            Some(kept) => Cow::Borrowed(kept),
            None => Cow::Owned(g.gzip.compress(body)),
        }
    });
    let body_len = gzipped.as_deref().map_or(body.len(), <[u8]>::len);
    head.headers.push("Content-Length", body_len.to_string());
    // RFC 9110 §15.5.6: a 405 lists the methods the resource supports;
    // the proxy passes on every method but CONNECT and TRACE. So does the
    // only 200 the proxy answers itself: to an OPTIONS it is the last hop
    // of (see `forward`).
    // A `files` route's 405 gives its own (GET and HEAD).
    let allow_given = (fields.split(|&b| b == b'\n')).any(|line| {
        line.get(..6)
            .is_some_and(|n| n.eq_ignore_ascii_case(b"allow:"))
    });
    if matches!(status, 200 | 405) && text.is_none() && !allow_given {
        head.headers
            .push("Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH");
    }
    if close {
        head.headers.push("Connection", "close");
    }
    let set = config.response_headers.set_lines();
    let mut bytes = Vec::with_capacity(192 + fields.len() + set.len());
    head.write_start(&mut bytes);
    // The proxy's own fields stand for a backend's here: no `ETag` or
    // `Vary` of their own to carry over.
    match (&gzipped, coding) {
        (Some(_), _) => gzip::push_compressed_fields(&mut bytes, &head.headers),
        (None, Some(_)) => gzip::push_vary(&mut bytes, &head.headers),
        (None, None) => {}
    }
    bytes.extend_from_slice(fields);
    bytes.extend_from_slice(set);
    bytes.extend_from_slice(b"\r\n");
    let head_len = bytes.len();
    let page = match gzipped {
        Some(Cow::Borrowed(kept)) => kept,
        Some(Cow::Owned(compressed)) => {
            bytes.extend_from_slice(&compressed);
            &[]
        }
        None => {
            bytes.extend_from_slice(plain.as_bytes());
            page.unwrap_or_default()
        }
    };
    ErrorResponse {
        bytes,
        head_len,
        page,
        body_len: body_len as u64,
        gzipped_from: coding.filter(|g| g.takes).map(|_| body.len() as u64),
    }
}
