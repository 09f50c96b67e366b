//! The backends: which one serves the next request (`balancer`, and what
//! `balance = hash` hashes of it: `hash_on`), whether
//! each may be used (`health`, and what the operator says: `admin_state`,
//! kept across restarts by `state_file`),
//! the keep-alive connections kept open to each (`idle`), and the names
//! looked up again while the proxy runs (`resolve`).

pub mod admin_state;
pub mod balancer;
pub mod hash_on;
pub mod health;
pub mod idle;
pub mod pools;
pub mod resolve;
pub mod retry_on;
pub mod slots;
pub mod state_file;
pub mod sticky;

use crate::config::{Config, Endpoint, Target};
use crate::http::conn::{SharedStream, Socket as _, Stream};
use crate::http::tls::{HandshakeError, TlsStream};
use crate::http::BufConn;
use crate::metrics::{PoolStats, TargetStats};
use admin_state::AdminState;
use balancer::{Balancer, Context, Peers};
use health::{Active, Checker, Health, Passive, Probe, ProbeKind};
use idle::IdleConns;
use rustls_pki_types::ServerName;
pub use slots::InFlight;
use socket2::{Domain, SockAddr, SockRef, Socket, Type};
use std::io;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Buffer for reading a backend's responses: large enough that a 64 KiB
/// response arrives in one read and leaves in one write (read straight
/// into it when found there; see `BufConn::without_probe`).
const UPSTREAM_BUFFER: usize = 64 * 1024 + 1024;

/// One backend, its health and its idle connections.
pub struct Upstream {
    /// As configured (`host:port`, `unix:PATH`; `host:port@address` for
    /// each address of a name giving several); shown in the access log.
    pub name: Arc<str>,
    /// As written in `targets` (`host:port`, `unix:PATH`).
    pub written: Arc<str>,
    /// The `Host` sent when the client gave none, and the health checks'
    /// unless `health_check_host` says: the target as written, but
    /// `localhost` for a Unix socket, whose path is no host (a `/` has no
    /// place in a Host), as nginx sends for its `unix:` servers.
    pub host: Arc<str>,
    pub addr: Endpoint,
    /// How it is spoken to over TLS (`tls`); `None`: plain HTTP.
    pub tls: Option<BackendTls>,
    pub weight: u32,
    pub backup: bool,
    /// Most requests at once (`max_conns`) in this generation's settings;
    /// 0: no limit. Requests are counted against the limit in force, which
    /// the target's counters keep (see [`slots::Queue::set_limit`]).
    pub max_conns: usize,
    /// What `sticky_cookie` says to name this target.
    pub sticky_id: String,
    /// The id it had under the name it had before the name it was written
    /// as came to give several addresses, or came back to one (see
    /// [`Upstreams::keep_state_of`]): clients stuck to it then still are.
    former_sticky_id: Option<String>,
    pub health: Arc<Health>,
    /// Shared with the generations after this one while the target stays
    /// at its address through re-resolutions (not reloads).
    idle: Arc<IdleConns>,
    /// Requests, failures and requests in flight (which `least_conn` and
    /// `random_two` read), for the admin listener too.
    pub stats: Arc<TargetStats>,
}

impl Upstream {
    /// Whether each connection carries one request
    /// (`upstream_keepalive = 0`).
    pub fn keeps_no_connection(&self) -> bool {
        self.idle.keeps_none()
    }

    /// Closes the idle connections: one of them was found dead, and the
    /// others most likely went with it (a restarted backend).
    pub fn forget_idle(&self) {
        self.idle.clear();
    }

    /// Returns a connection whose last exchange ended cleanly; one to a
    /// target in maintenance is closed.
    pub fn checkin(&self, mut conn: BufConn<SharedStream<Stream>>) {
        if self.health.admin_state() == AdminState::Maint {
            return;
        }
        conn.release_if_empty();
        if let Stream::Tls(tls) = &**conn.get_ref() {
            tls.release_if_empty();
        }
        self.idle.give(conn);
        // Put into maintenance while it was given back: the clear that
        // came with the change may have missed it (see `set_admin_state`).
        if self.health.admin_state() == AdminState::Maint {
            self.idle.clear();
        }
    }

    /// Whether the balancer may give it a new request at `now`: up (as
    /// far as failures and health checks say) and `ready`, neither
    /// drained nor in maintenance.
    pub fn in_rotation(&self, now: Instant) -> bool {
        self.health.admin_state().takes_new_requests() && self.health.usable(now)
    }

    /// Requests being served by this backend right now.
    pub fn in_flight(&self) -> usize {
        self.stats.in_flight.load(Ordering::Relaxed)
    }

    /// No slot here for a request waiting as `waiting` (or not at all):
    /// `max_conns` are served already, or others wait for it first.
    fn has_no_slot(&self, waiting: Option<&slots::Waiting>) -> bool {
        slots::is_full(&self.stats) || !slots::in_turn(&self.stats, waiting)
    }
}

/// A target's TLS: the settings its connections are made with, and the
/// name its certificate is checked for.
#[derive(Clone, Debug)]
pub struct BackendTls {
    pub settings: Arc<rustls::ClientConfig>,
    pub name: ServerName<'static>,
}

/// What [`Upstreams::choose`] found.
enum Choice {
    Target(usize),
    /// Targets that could serve are up but have no slot for the request.
    Wait,
    Nothing,
    /// No target takes new requests: each is drained or in maintenance.
    Unavailable,
}

/// What [`Upstreams::pick`] found.
pub enum Pick<'a> {
    /// This target, the request counted in its in-flight number until the
    /// guard drops.
    Chosen(usize, InFlight<'a>),
    /// Targets that could serve are all at their `max_conns`: wait for a
    /// slot (see [`Upstreams::wait_for_slot`]).
    Full,
    /// Nothing is left to try.
    Nothing,
    /// No target takes new requests (each is drained or in maintenance),
    /// and the client is stuck to none that still serves: HAProxy's 503
    /// "no server available".
    Unavailable,
}

/// A connection to a backend, checked out for one exchange.
pub struct UpstreamConn {
    pub conn: BufConn<SharedStream<Stream>>,
    /// Whether it served an earlier request: a reused connection may have
    /// been closed by the backend while idle, which is worth one retry.
    pub reused: bool,
    /// The backend answered before the whole request body was sent, and
    /// the rest was not: the connection is out of step, never reused.
    pub body_cut: bool,
    /// The same for a body streamed from the client: the rest of it is
    /// still on the client connection, which closes after the answer.
    pub client_body_left: bool,
}

/// The backends of one pool (`targets`, or a `pool.<name>`) and the
/// policy that spreads requests over them.
pub struct Upstreams {
    /// `default` for `targets`, else the pool's name.
    name: Arc<str>,
    targets: Vec<Upstream>,
    /// The primary targets, then the backups if any: a group is picked
    /// from only when the ones before it have no target left.
    groups: Vec<Group>,
    /// Reads and writes.
    timeout: Duration,
    connect_timeout: Duration,
    retries: usize,
    retry_on_status: retry_on::RetryOnStatus,
    /// How long a target back in rotation takes to get its whole share.
    slow_start: Duration,
    /// Its counters: shared with the generation before when a reload
    /// keeps its name (see [`pools::Pools::keep_state_of`]).
    stats: Arc<PoolStats>,
}

/// Targets one balancer spreads requests over. Backups have a balancer of
/// their own (as nginx's do): over the whole list, round robin would hand
/// a primary the turns of each backup it skips, and ip_hash, uri_hash and
/// hash would move clients, URLs and keys when a backup is added.
struct Group {
    balancer: Box<dyn Balancer>,
    /// Indexes into [`Upstreams::targets`].
    members: Vec<usize>,
}

/// The targets of a group a pick may choose from: healthy and not tried
/// yet. Indexed like the group's members.
struct Candidates<'a> {
    targets: &'a [Upstream],
    members: &'a [usize],
    tried: &'a [bool],
    now: Instant,
    waiting: Option<&'a slots::Waiting>,
    slow_start: Duration,
}

impl Peers for Candidates<'_> {
    fn len(&self) -> usize {
        self.members.len()
    }
    fn weight(&self, i: usize) -> u32 {
        self.targets[self.members[i]].weight
    }
    fn share(&self, i: usize) -> u32 {
        let health = &self.targets[self.members[i]].health;
        health.share(self.now, self.slow_start)
    }
    fn in_flight(&self, i: usize) -> usize {
        self.targets[self.members[i]].in_flight()
    }
    fn usable(&self, i: usize) -> bool {
        let index = self.members[i];
        could_serve(&self.targets[index], index, self.tried, self.now)
            && !self.targets[index].has_no_slot(self.waiting)
    }
}

/// Not tried yet for this request, and not out of rotation: neither
/// drained nor in maintenance, nor down.
fn could_serve(target: &Upstream, index: usize, tried: &[bool], now: Instant) -> bool {
    !tried.get(index).copied().unwrap_or(false) && target.in_rotation(now)
}

/// The same for a client stuck to the target: a drained one will do.
fn could_serve_stuck(target: &Upstream, index: usize, tried: &[bool], now: Instant) -> bool {
    target.health.admin_state().takes_sticky_requests() && untried_and_up(target, index, tried, now)
}

fn untried_and_up(target: &Upstream, index: usize, tried: &[bool], now: Instant) -> bool {
    !tried.get(index).copied().unwrap_or(false) && target.health.usable(now)
}

impl Upstreams {
    /// The pool `targets` makes (a configuration's `pools` are left out:
    /// see [`pools::Pools`]).
    pub fn new(config: &Config) -> Upstreams {
        Upstreams::named(config, crate::config::DEFAULT_POOL.into())
    }

    /// A pool of the targets `config` gives, under `name`.
    pub fn named(config: &Config, name: Arc<str>) -> Upstreams {
        let targets = config
            .targets
            .iter()
            .map(|t: &Target| {
                let name: Arc<str> = t.name.as_str().into();
                let written: Arc<str> = t.as_written().into();
                // Its own max_fails= and fail_timeout=, else the keys'.
                let passive = Passive {
                    max_fails: config.max_fails_of(t),
                    fail_timeout: config.fail_timeout_of(t),
                };
                Upstream {
                    health: Arc::new(Health::new(name.clone(), passive)),
                    name,
                    host: match (&t.addr, &t.tls) {
                        // The name its certificate is for (`tls_name=`):
                        // a backend choosing its site by SNI may refuse
                        // another Host (421).
                        (Endpoint::Tcp(addr), Some(ServerName::DnsName(name))) => {
                            format!("{}:{}", name.as_ref(), addr.port()).into()
                        }
                        (Endpoint::Tcp(_), _) => written.clone(),
                        (Endpoint::Unix(_), _) => "localhost".into(),
                    },
                    written,
                    addr: t.addr.clone(),
                    tls: t.tls.clone().map(|name| BackendTls {
                        settings: (config.backend_tls.clone())
                            .unwrap_or_else(crate::tls::backends::default_client_config),
                        name,
                    }),
                    weight: t.weight,
                    backup: t.backup,
                    max_conns: t.max_conns.unwrap_or(0),
                    sticky_id: sticky::id_of(&t.name),
                    former_sticky_id: None,
                    idle: Arc::new(IdleConns::new(
                        config.upstream_keepalive,
                        config.connection_timeout,
                    )),
                    stats: Arc::default(),
                }
            })
            .collect::<Vec<_>>();
        for target in &targets {
            target.stats.waiting.set_limit(target.max_conns);
        }
        let groups = [false, true]
            .into_iter()
            .map(|backup| {
                let members: Vec<usize> = (0..targets.len())
                    .filter(|&i| targets[i].backup == backup)
                    .collect();
                let names: Vec<&str> = members.iter().map(|&i| &*targets[i].name).collect();
                let weights: Vec<u32> = members.iter().map(|&i| targets[i].weight).collect();
                Group {
                    balancer: balancer::new(config.balance, &names, &weights),
                    members,
                }
            })
            .filter(|group| !group.members.is_empty())
            .collect();
        Upstreams {
            name,
            groups,
            targets,
            timeout: config.effective_backend_timeout(),
            connect_timeout: config.effective_connect_timeout(),
            retries: config.effective_retries(),
            retry_on_status: config.retry_on_status,
            slow_start: config.slow_start,
            stats: Arc::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// [`name`](Self::name), to keep: the access log's records share it.
    pub fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    pub fn targets(&self) -> &[Upstream] {
        &self.targets
    }

    /// The pool's own counters (the targets' are each target's).
    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// How many of its targets the balancer may give a new request at
    /// `now` (see [`Upstream::in_rotation`]), backups included: HAProxy's
    /// `haproxy_backend_active_servers`. With none, a request gets the
    /// last-resort try of a target that is down, or 503.
    pub fn usable(&self, now: Instant) -> usize {
        self.targets.iter().filter(|t| t.in_rotation(now)).count()
    }

    /// Takes over the counters and health of the targets `old` shares
    /// with us (by name), so a reload does not reset them, and a target
    /// that was down stays down; the health goes on under our settings.
    /// A name now at another address is another server: its health
    /// starts afresh, and only its counters and the operator's state
    /// (drain, maint) go on. With `keep_idle` (a re-resolution, whose
    /// settings are those of `old`), a target at the address it was at
    /// keeps its idle connections too.
    ///
    /// The address of a name that came to give several, or came back to
    /// one, is renamed (`app:8000` is now `app:8000@10.0.0.5:8000`, see
    /// [`Target::at`]) but is the same target: found by the name as
    /// written and the address, it keeps all of that, and answers to its
    /// former sticky id too. An address new to a name starts afresh,
    /// `ready`, unless every address the name had was in one other state:
    /// a name put in maintenance stays there as its replicas come and go.
    pub fn keep_state_of(&mut self, old: &[&Upstream], keep_idle: bool) {
        for target in &mut self.targets {
            let passive = target.health.passive();
            let same_name = old.iter().find(|o| o.name == target.name);
            let renamed = || {
                old.iter()
                    .find(|o| o.written == target.written && o.addr == target.addr)
            };
            if let Some(same) = same_name.filter(|o| o.addr != target.addr) {
                target.stats = same.stats.clone();
                target.health = Arc::new(Health::sharing_admin_of(&same.health, passive));
            } else if let Some(same) = same_name.or_else(renamed) {
                target.stats = same.stats.clone();
                // Renamed first: what the new settings announce names it
                // as it is now.
                if same.name != target.name {
                    same.health.rename(target.name.clone());
                }
                same.health.set_passive(passive);
                target.health = same.health.clone();
                target.former_sticky_id = match same.name == target.name {
                    true => same.former_sticky_id.clone(),
                    false => Some(same.sticky_id.clone()),
                };
                if keep_idle {
                    target.idle = same.idle.clone();
                }
            } else if let Some(state) = state_of_every(old, &target.written) {
                target.health.set_admin_state(state);
            }
            // Counters kept: the requests of the generation before, those
            // waiting included, count against this one's limit from now on.
            target.stats.waiting.set_limit(target.max_conns);
        }
    }

    /// Sets `target`'s administrative state; returns the one it replaced.
    /// Into maintenance, its idle connections are closed (those in use are
    /// when their request ends, see [`Upstream::checkin`]). Every request
    /// waiting for a slot is woken to choose again: the targets it may
    /// wait for have changed.
    pub fn set_admin_state(&self, target: &Upstream, state: AdminState) -> AdminState {
        let was = target.health.set_admin_state(state);
        // After the store: a connection given back meanwhile either is in
        // the pool for this clear, or its giver sees the new state.
        if state == AdminState::Maint {
            target.idle.clear();
        }
        for t in &self.targets {
            t.stats.waiting.wake_all();
        }
        was
    }

    /// Other targets a failed request may be tried on.
    pub fn retries(&self) -> usize {
        self.retries
    }

    /// Response statuses that send a request on to another target.
    pub fn retry_on_status(&self) -> &retry_on::RetryOnStatus {
        &self.retry_on_status
    }

    /// The longest a read from or a write to a backend may wait.
    pub fn backend_timeout(&self) -> Duration {
        self.timeout
    }

    /// How long a request may wait for a slot when every target that could
    /// serve it is at its `max_conns`: `connect_timeout`, as HAProxy's
    /// `timeout queue` defaults to its `timeout connect`.
    pub fn queue_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The backend for the next request of `client` for `uri` (the path
    /// and query `uri_hash` hashes, see [`Context::uri`]), with `key`
    /// (the value `hash_on` names, see [`Context::key`]), skipping targets
    /// marked in `tried` (indexed like [`Upstreams::targets`]). Backups
    /// are chosen from (by the same algorithm) only when no other target
    /// is left. A target drained or in maintenance gets no new request;
    /// one the client is stuck to still does while drained. When every
    /// target is down, the first try goes to the one that failed longest
    /// ago, preferring one only passive failures keep out: a request is
    /// better tried than refused outright; with no target even `ready`,
    /// the answer is [`Pick::Unavailable`]. A retry never
    /// goes to a target that is down: with all of them down, one try per
    /// request is enough (else each would wait out every dead target's
    /// `connect_timeout`), and the client is told how it failed. A target
    /// at its `max_conns` is passed over like one already tried; when all
    /// that could serve are, the request waits for a slot ([`Pick::Full`])
    /// rather than going to a target that is down.
    pub fn pick(
        &self,
        client: IpAddr,
        uri: &str,
        key: Option<&[u8]>,
        tried: &[bool],
        stuck_to: Option<&str>,
        waiting: Option<&slots::Waiting>,
    ) -> Pick<'_> {
        let now = Instant::now();
        // Slots at limited targets go to those waiting, in turn.
        let take = |index: usize| {
            let target = &self.targets[index];
            if !slots::in_turn(&target.stats, waiting) {
                return None;
            }
            slots::begin(&target.stats)
        };
        // A full target the client is stuck to is waited for: its
        // sessions live there.
        if let Some(index) = self.stuck(stuck_to, tried, now) {
            return match take(index) {
                Some(busy) => Pick::Chosen(index, busy),
                None => Pick::Full,
            };
        }
        // A target's last slot taken by another request between the choice
        // and the count: choose again (it now counts as full).
        for _ in 0..=self.targets.len() {
            match self.choose(client, uri, key, tried, now, waiting) {
                Choice::Target(index) => {
                    if let Some(busy) = take(index) {
                        return Pick::Chosen(index, busy);
                    }
                }
                Choice::Wait => return Pick::Full,
                Choice::Nothing => return Pick::Nothing,
                Choice::Unavailable => return Pick::Unavailable,
            }
        }
        Pick::Full
    }

    fn choose(
        &self,
        client: IpAddr,
        uri: &str,
        key: Option<&[u8]>,
        tried: &[bool],
        now: Instant,
        waiting: Option<&slots::Waiting>,
    ) -> Choice {
        for group in &self.groups {
            let candidates = Candidates {
                targets: &self.targets,
                members: &group.members,
                tried,
                now,
                waiting,
                slow_start: self.slow_start,
            };
            let cx = Context {
                client,
                uri,
                key,
                peers: &candidates,
            };
            if let Some(i) = group.balancer.pick(&cx) {
                return Choice::Target(group.members[i % group.members.len()]);
            }
            // Up but with no slot for this request: waited for. The backups
            // are for when the others are down or tried, not busy; nor is
            // a target that is down tried while one that is up is busy.
            let up = group
                .members
                .iter()
                .any(|&i| could_serve(&self.targets[i], i, tried, now));
            if up {
                return Choice::Wait;
            }
        }
        if tried.contains(&true) {
            return Choice::Nothing;
        }
        // The last resort is for targets that are down, not for those the
        // operator took out: a target drained or in maintenance may be
        // the very one being worked on.
        let index = (0..self.targets.len())
            .filter(|&i| self.targets[i].health.admin_state().takes_new_requests())
            .min_by_key(|&i| self.targets[i].health.fallback_rank());
        index.map_or(Choice::Unavailable, Choice::Target)
    }

    /// Counts a request that found no slot among those waiting for the
    /// limited targets that could serve it.
    pub fn enqueue(&self, tried: &[bool], stuck_to: Option<&str>) -> slots::Waiting {
        slots::Waiting::at(self.lines(tried, stuck_to))
    }

    /// Moves a request already waiting to the lines it would join now:
    /// out of those of targets drained or put into maintenance since
    /// (see [`slots::Waiting::move_to`]).
    pub fn requeue(&self, tried: &[bool], stuck_to: Option<&str>, place: &mut slots::Waiting) {
        place.move_to(self.lines(tried, stuck_to));
    }

    /// The limited targets whose slots the request may wait for.
    fn lines(&self, tried: &[bool], stuck_to: Option<&str>) -> Vec<Arc<TargetStats>> {
        let now = Instant::now();
        let waited_for = match self.stuck(stuck_to, tried, now) {
            Some(index) => vec![index],
            None => self.waited_for(tried, now).collect(),
        };
        (waited_for.into_iter())
            .map(|i| &self.targets[i].stats)
            .filter(|stats| stats.waiting.limit() > 0)
            .cloned()
            .collect()
    }

    /// The targets that could serve a request the balancer made wait: those
    /// of the first group with one (see [`Upstreams::choose`]). Not the
    /// backups while a primary is up, however busy: a request waiting on
    /// a free backup would find room at once, every time, and never wait.
    fn waited_for<'a>(
        &'a self,
        tried: &'a [bool],
        now: Instant,
    ) -> impl Iterator<Item = usize> + 'a {
        let could = move |i: &usize| could_serve(&self.targets[*i], *i, tried, now);
        let group = self.groups.iter().find(|g| g.members.iter().any(could));
        group
            .into_iter()
            .flat_map(move |g| g.members.iter().copied().filter(could))
    }

    /// The target the client's sticky cookie names (`stuck_to`), while it
    /// could serve the request (drained, it still serves its clients).
    fn stuck(&self, stuck_to: Option<&str>, tried: &[bool], now: Instant) -> Option<usize> {
        let id = stuck_to?;
        let index = (self.targets.iter().position(|t| t.sticky_id == id)).or_else(|| {
            (self.targets.iter()).position(|t| t.former_sticky_id.as_deref() == Some(id))
        })?;
        let target = &self.targets[index];
        // Stuck to a backup during an outage: back to the others once one
        // of them can serve again.
        let primary_back = target.backup
            && self
                .targets
                .iter()
                .enumerate()
                .any(|(i, t)| !t.backup && could_serve(t, i, tried, now));
        (could_serve_stuck(target, index, tried, now) && !primary_back).then_some(index)
    }

    /// Waits, after [`Pick::Full`], until a slot may have freed or `until`
    /// passes; `false` when `until` passed first.
    pub fn wait_for_slot(
        &self,
        tried: &[bool],
        stuck_to: Option<&str>,
        waiting: &slots::Waiting,
        until: Instant,
    ) -> bool {
        let free = |i: usize| !self.targets[i].has_no_slot(Some(waiting));
        waiting.wait(until, || {
            let now = Instant::now();
            match self.stuck(stuck_to, tried, now) {
                Some(index) => free(index),
                None => self.waited_for(tried, now).any(free),
            }
        })
    }

    /// What the active checker probes.
    pub fn probes(&self) -> Vec<Probe> {
        self.targets
            .iter()
            .map(|t| Probe {
                name: t.written.clone(),
                host: t.host.clone(),
                addr: t.addr.clone(),
                tls: t.tls.clone(),
                health: t.health.clone(),
            })
            .collect()
    }

    /// Starts the active health checker, when `health_check_path` is set
    /// (a `GET`) or `health_check_tcp` is on (a connect alone). Both set,
    /// which only a `Config` built by hand can be (the loader refuses it):
    /// the `GET`, which connects too.
    pub fn start_checker(&self, config: &Config) -> io::Result<Option<Checker>> {
        let kind = match &config.health_check_path {
            Some(path) => ProbeKind::Get(path.clone()),
            None if config.health_check_tcp => ProbeKind::Connect,
            None => {
                // Off, perhaps since a reload: nothing is held down by them.
                for target in &self.targets {
                    target.health.checks_off();
                }
                return Ok(None);
            }
        };
        let settings = Active {
            kind,
            // A backend that needs the Host `request_header.Host` gives it
            // (a virtual host) likely answers a probe without it 400 or
            // 404: the probes send it too, unless told otherwise.
            host: (config.health_check_host.clone())
                .or_else(|| config.request_headers.value_of("host").map(str::to_string)),
            interval: config.health_check_interval,
            timeout: config.effective_health_check_timeout(),
            connect_timeout: config.effective_connect_timeout(),
            rise: config.health_check_rise,
            fall: config.health_check_fall,
            expect_status: config.health_check_expect_status.clone(),
            expect_body: config.health_check_expect_body.clone(),
        };
        Checker::start(self.probes(), settings).map(Some)
    }

    /// An idle pooled connection to `target`, or a new one when none is
    /// left or `fresh` is asked for.
    ///
    /// `in_use` is shown the socket before anything waits on it, even the
    /// connect: a forced shutdown can then end the wait (see
    /// `proxy::ConnWatch`). One that comes before the connect begins
    /// makes it fail: Linux keeps the shutdown of an unconnected socket.
    pub fn checkout(
        &self,
        target: &Upstream,
        fresh: bool,
        in_use: impl FnOnce(&Arc<Stream>),
    ) -> io::Result<UpstreamConn> {
        if !fresh {
            if let Some(conn) = target.idle.take() {
                in_use(&conn.get_ref().0);
                return Ok(UpstreamConn {
                    conn,
                    reused: true,
                    body_cut: false,
                    client_body_left: false,
                });
            }
        }
        let stream = Arc::new(open(&target.addr, target.tls.as_ref())?);
        in_use(&stream);
        let started = Instant::now();
        connect(&stream, &target.addr, self.connect_timeout)?;
        match &*stream {
            Stream::Tcp(tcp) => tcp.set_nodelay(true)?,
            Stream::Tls(tls) => tls.tcp().set_nodelay(true)?,
            Stream::Unix(_) => {}
        }
        handshake(
            &stream,
            self.connect_timeout.saturating_sub(started.elapsed()),
        )?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        Ok(UpstreamConn {
            conn: BufConn::new(SharedStream(stream), UPSTREAM_BUFFER).without_probe(),
            reused: false,
            body_cut: false,
            client_body_left: false,
        })
    }
}

/// The administrative state every target of `targets` written as
/// `written` is in, if there are some and they agree.
fn state_of_every(targets: &[&Upstream], written: &str) -> Option<AdminState> {
    let mut states = (targets.iter())
        .filter(|t| *t.written == *written)
        .map(|t| t.health.admin_state());
    let first = states.next()?;
    states.all(|s| s == first).then_some(first)
}

/// A socket for `endpoint`, not connected yet (see [`connect`]): one a
/// forced close may be shown before the connect begins. With `tls`, its
/// session too, to begin once connected (see [`handshake`]).
pub fn open(endpoint: &Endpoint, tls: Option<&BackendTls>) -> io::Result<Stream> {
    Ok(match (endpoint, tls) {
        (Endpoint::Tcp(addr), None) => {
            Stream::Tcp(Socket::new(Domain::for_address(*addr), Type::STREAM, None)?.into())
        }
        (Endpoint::Tcp(addr), Some(tls)) => {
            let tcp = Socket::new(Domain::for_address(*addr), Type::STREAM, None)?.into();
            let session = TlsStream::connecting(tcp, tls.settings.clone(), tls.name.clone())
                .map_err(io::Error::other)?;
            Stream::Tls(Box::new(session))
        }
        // The loader refuses `tls` on a Unix socket.
        (Endpoint::Unix(_), _) => {
            Stream::Unix(Socket::new(Domain::UNIX, Type::STREAM, None)?.into())
        }
    })
}

/// Completes the TLS handshake of `stream`, connected, if it is a TLS
/// one, within `limit` (what the connect left of its timeout, which
/// covers the handshake as nginx's `proxy_connect_timeout` does), its
/// writes too. The caller sets the socket's timeouts for what follows.
/// A failed one is a failure to connect, which says why (the
/// certificate, most often).
pub fn handshake(stream: &Stream, limit: Duration) -> io::Result<()> {
    let Stream::Tls(tls) = stream else {
        return Ok(());
    };
    if limit.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake: no time left of connect_timeout",
        ));
    }
    tls.tcp().set_write_timeout(Some(limit))?;
    tls.handshake(limit, limit).map_err(|e| {
        let kind = match &e {
            HandshakeError::Late(_) => io::ErrorKind::TimedOut,
            HandshakeError::Closed => io::ErrorKind::ConnectionAborted,
            HandshakeError::Io(e) => e.kind(),
            HandshakeError::PlainHttp | HandshakeError::Tls(_) => io::ErrorKind::InvalidData,
        };
        match e {
            HandshakeError::Io(e) => e,
            HandshakeError::Tls(e) => {
                io::Error::new(kind, crate::tls::words::handshake_failure(&e))
            }
            e => io::Error::new(kind, format!("TLS handshake: {e}")),
        }
    })
}

/// Connects `stream`, opened by [`open`] for `endpoint`, within `timeout`.
///
/// A Unix socket is connected to at once or refused at once (`ENOENT`
/// for a missing file, `ECONNREFUSED` for one nobody listens on), unless
/// the listener's backlog is full: then a blocking connect waits for room
/// (Linux), for at most the socket's send timeout, and fails with `EAGAIN`
/// after it. That timeout is set to `timeout` here (the caller sets the
/// backend's own afterwards). A non-blocking connect, as for TCP, would
/// not do: to a full backlog it fails at once, with nothing in progress.
/// Unlike a TCP connect, this wait is not cut short by a forced close's
/// shutdown (it ends within `timeout` all the same); a shutdown that came
/// before the connect leaves the connection unable to carry anything.
pub fn connect(stream: &Stream, endpoint: &Endpoint, timeout: Duration) -> io::Result<()> {
    let socket = SockRef::from(stream);
    match endpoint {
        Endpoint::Tcp(addr) => socket.connect_timeout(&(*addr).into(), timeout),
        Endpoint::Unix(path) => {
            let addr = SockAddr::unix(path)?;
            // Zero would be no timeout at all.
            socket.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
            loop {
                match socket.connect(&addr) {
                    // A Unix connect interrupted by a signal is begun anew
                    // (nothing of it is left in progress, unlike TCP's).
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the socket's backlog stayed full",
                        ))
                    }
                    done => return done,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target of `upstreams`, as a reload takes their state over.
    fn all(upstreams: &Upstreams) -> Vec<&Upstream> {
        upstreams.targets().iter().collect()
    }
    use crate::config::Balance;
    use std::net::SocketAddr;

    /// Targets `127.0.0.1:1..=n`, with `max_conns` at each.
    fn upstreams(n: u16, balance: Balance, max_conns: Option<usize>) -> Upstreams {
        let targets = (1..=n)
            .map(|port| {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                Target {
                    max_conns,
                    ..Target::new(addr.to_string(), addr)
                }
            })
            .collect();
        let mut config = Config::with_targets(targets);
        config.balance = balance;
        Upstreams::new(&config)
    }

    #[test]
    fn a_unix_connect_fails_as_a_tcp_one_would_and_waits_no_longer_than_told() {
        let dir = tempfile::tempdir().unwrap();
        let connect_to = |endpoint: &Endpoint| {
            let stream = open(endpoint, None)?;
            connect(&stream, endpoint, Duration::from_millis(50)).map(|()| stream)
        };
        let missing = Endpoint::Unix(dir.path().join("missing.sock"));
        let e = connect_to(&missing).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        let refusing = dir.path().join("refusing.sock");
        drop(std::os::unix::net::UnixListener::bind(&refusing).unwrap());
        let e = connect_to(&Endpoint::Unix(refusing)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");

        // A listener that never accepts, with the smallest backlog: the
        // connects that fill it succeed, the next waits its timeout out.
        let full = dir.path().join("full.sock");
        let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        listener.bind(&SockAddr::unix(&full).unwrap()).unwrap();
        listener.listen(0).unwrap();
        let full = Endpoint::Unix(full);
        let mut held = Vec::new();
        let waited_out = (0..8).find_map(|_| match connect_to(&full) {
            Ok(stream) => {
                held.push(stream);
                None
            }
            Err(e) => Some(e),
        });
        let e = waited_out.expect("the backlog never filled");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(!held.is_empty());
    }

    #[test]
    fn with_no_target_ready_every_algorithm_says_unavailable_at_once() {
        for balance in [
            Balance::RoundRobin,
            Balance::WeightedRoundRobin,
            Balance::LeastConn,
            Balance::IpHash,
            Balance::UriHash,
            Balance::Hash,
            Balance::RandomTwo,
        ] {
            for (max_conns, key) in [None, Some(1)].into_iter().zip([None, Some(&b"t1"[..])]) {
                let up = upstreams(3, balance, max_conns);
                let states = [AdminState::Drain, AdminState::Maint, AdminState::Drain];
                for (t, state) in up.targets().iter().zip(states) {
                    up.set_admin_state(t, state);
                }
                let client = IpAddr::from([10, 0, 0, 1]);
                for _ in 0..10 {
                    let pick = up.pick(client, "/", key, &[false; 3], None, None);
                    assert!(matches!(pick, Pick::Unavailable), "{balance:?}");
                }
                // The one left ready gets them all.
                up.set_admin_state(&up.targets()[2], AdminState::Ready);
                for _ in 0..10 {
                    match up.pick(client, "/", key, &[false; 3], None, None) {
                        Pick::Chosen(2, busy) => drop(busy),
                        _ => panic!("{balance:?}: not the ready target"),
                    }
                }
            }
        }
    }

    #[test]
    fn hash_passes_over_tried_and_full_targets_and_hashes_on_the_backups_own_ring() {
        let targets = (1..=5)
            .map(|port: u16| {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                Target {
                    max_conns: Some(1),
                    backup: port > 3,
                    ..Target::new(addr.to_string(), addr)
                }
            })
            .collect();
        let mut config = Config::with_targets(targets);
        config.balance = Balance::Hash;
        let up = Upstreams::new(&config);
        let client = IpAddr::from([10, 0, 0, 1]);
        let pick =
            |key: &[u8], tried: &[bool]| match up.pick(client, "/", Some(key), tried, None, None) {
                Pick::Chosen(i, _) => i,
                _ => panic!("nothing chosen for {key:?} past {tried:?}"),
            };
        // Tenants spread over the primaries alone, each to one.
        let keys: Vec<String> = (0..30).map(|k| format!("tenant-{k}")).collect();
        let homes: Vec<usize> = keys
            .iter()
            .map(|k| pick(k.as_bytes(), &[false; 5]))
            .collect();
        assert!(homes.iter().all(|&h| h < 3), "{homes:?}");
        assert!((0..3).all(|t| homes.contains(&t)), "{homes:?}");
        for (key, &home) in keys.iter().zip(&homes) {
            assert_eq!(pick(key.as_bytes(), &[false; 5]), home, "{key}");
            // A retry goes to another primary.
            let mut tried = [false; 5];
            tried[home] = true;
            let next = pick(key.as_bytes(), &tried);
            assert!(next != home && next < 3, "{key}: {next}");
            // Home full (max_conns=1): passed over as if tried.
            let busy = match up.pick(client, "/", Some(key.as_bytes()), &[false; 5], None, None) {
                Pick::Chosen(i, busy) => (i == home).then_some(busy),
                _ => None,
            };
            assert!(busy.is_some(), "{key}: home not chosen");
            assert_eq!(pick(key.as_bytes(), &[false; 5]), next, "{key}");
            drop(busy);
        }
        // Every primary tried: to a backup, one for each tenant, and both
        // backups have tenants.
        let all_tried = [true, true, true, false, false];
        let spare: Vec<usize> = keys
            .iter()
            .map(|k| pick(k.as_bytes(), &all_tried))
            .collect();
        assert!(spare.iter().all(|&s| s >= 3), "{spare:?}");
        assert!(spare.contains(&3) && spare.contains(&4), "{spare:?}");
        for (key, &s) in keys.iter().zip(&spare) {
            assert_eq!(pick(key.as_bytes(), &all_tried), s, "{key}");
        }
    }

    #[test]
    fn a_stuck_client_keeps_a_drained_target_and_leaves_one_in_maintenance() {
        let up = upstreams(2, Balance::RoundRobin, Some(1));
        let client = IpAddr::from([10, 0, 0, 1]);
        let first = up.targets()[0].sticky_id.clone();
        up.set_admin_state(&up.targets()[0], AdminState::Drain);
        let busy = match up.pick(client, "/", None, &[false; 2], Some(&first), None) {
            Pick::Chosen(0, busy) => busy,
            _ => panic!("a drained target serves its sticky clients"),
        };
        // Full: its sticky clients wait for it; the others go elsewhere.
        assert!(matches!(
            up.pick(client, "/", None, &[false; 2], Some(&first), None),
            Pick::Full
        ));
        assert!(matches!(
            up.pick(client, "/", None, &[false; 2], None, None),
            Pick::Chosen(1, _)
        ));
        up.set_admin_state(&up.targets()[0], AdminState::Maint);
        assert!(matches!(
            up.pick(client, "/", None, &[false; 2], Some(&first), None),
            Pick::Chosen(1, _)
        ));
        drop(busy);
    }

    #[test]
    fn the_address_of_a_name_that_comes_to_give_several_is_the_same_target_renamed() {
        let written = Target::new("app:80", "127.0.0.1:1".parse().unwrap());
        let (a, b) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        let generation = |addrs: &[SocketAddr]| {
            let mut config = Config::with_targets(written.at(addrs));
            config.max_fails = 1;
            Upstreams::new(&config)
        };
        let one = generation(&[a]);
        let alone = &one.targets()[0];
        alone.health.failed(Instant::now(), "test");
        one.set_admin_state(alone, AdminState::Drain);

        let mut two = generation(&[a, b]);
        two.keep_state_of(&all(&one), true);
        let (kept, new) = (&two.targets()[0], &two.targets()[1]);
        assert_eq!(&*kept.name, "app:80@127.0.0.1:1");
        assert!(Arc::ptr_eq(&kept.health, &alone.health));
        assert!(Arc::ptr_eq(&kept.stats, &alone.stats));
        assert!(Arc::ptr_eq(&kept.idle, &alone.idle));
        assert!(!kept.health.usable(Instant::now()), "still down");
        assert_eq!(kept.health.admin_state(), AdminState::Drain);
        // Its clients stuck to it under its former name still are.
        assert_eq!(
            kept.former_sticky_id.as_deref(),
            Some(&*sticky::id_of("app:80"))
        );
        // The new address: fresh, in the state the name's addresses shared.
        assert!(new.health.usable(Instant::now()));
        assert_eq!(new.health.admin_state(), AdminState::Drain);
        assert_eq!(new.former_sticky_id, None);

        // A reload keeps all but the idle connections.
        let mut reloaded = generation(&[a, b]);
        reloaded.keep_state_of(&all(&two), false);
        assert!(Arc::ptr_eq(&reloaded.targets()[0].health, &kept.health));
        assert!(!Arc::ptr_eq(&reloaded.targets()[0].idle, &kept.idle));
        // Back to one: named as written, the same target still.
        let mut back = generation(&[a]);
        back.keep_state_of(&all(&two), true);
        assert_eq!(&*back.targets()[0].name, "app:80");
        assert!(Arc::ptr_eq(&back.targets()[0].health, &kept.health));
    }

    #[test]
    fn each_target_is_under_its_own_max_fails_and_fail_timeout_or_the_keys_across_reloads() {
        let secs = Duration::from_secs;
        let target = |port: u16, max_fails, fail_timeout| Target {
            name: format!("127.0.0.1:{port}"),
            addr: Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], port))),
            weight: 1,
            backup: false,
            max_conns: None,
            max_fails,
            fail_timeout,
            tls: None,
        };
        let generation = |own: Option<u32>, keys: (u32, u64)| {
            let mut config =
                Config::with_targets(vec![target(1, None, None), target(2, own, Some(secs(60)))]);
            (config.max_fails, config.fail_timeout) = (keys.0, secs(keys.1));
            Upstreams::new(&config)
        };
        let passive = |up: &Upstreams| -> Vec<(u32, Duration)> {
            (up.targets().iter())
                .map(|t| t.health.passive())
                .map(|p| (p.max_fails, p.fail_timeout))
                .collect()
        };
        let first = generation(Some(3), (1, 10));
        assert_eq!(passive(&first), [(1, secs(10)), (3, secs(60))]);
        // Held out under its own max_fails: three failures, not one.
        let now = Instant::now();
        let own = &first.targets()[1].health;
        for i in 0..3 {
            assert!(own.usable(now), "out after {i} failure(s)");
            own.failed(now, "test");
        }
        assert!(!own.usable(now));
        assert!(!own.usable(now + secs(59)));
        assert!(own.usable(now + secs(60)), "out for its own fail_timeout");

        // A reload that changes only the keys: the target with its own
        // options keeps them, and its health (still out).
        let mut keys_only = generation(Some(3), (5, 20));
        keys_only.keep_state_of(&all(&first), false);
        assert_eq!(passive(&keys_only), [(5, secs(20)), (3, secs(60))]);
        assert!(Arc::ptr_eq(&keys_only.targets()[1].health, own));
        assert!(!own.usable(now), "kept out: its settings did not change");

        // A reload that changes its option: in force on the same health,
        // and the mark made under the old one is let go.
        let mut changed = generation(Some(0), (5, 20));
        changed.keep_state_of(&all(&keys_only), false);
        assert_eq!(passive(&changed), [(5, secs(20)), (0, secs(60))]);
        assert!(Arc::ptr_eq(&changed.targets()[1].health, own));
        assert!(own.usable(now));
        for _ in 0..10 {
            own.failed(now, "test");
        }
        assert!(own.usable(now), "max_fails=0: never taken out");
    }

    #[test]
    fn a_request_that_just_came_queues_behind_those_waiting_for_a_slot() {
        let mut config = Config::with_targets(vec![Target {
            max_conns: Some(1),
            ..Target::new("127.0.0.1:1", "127.0.0.1:1".parse().unwrap())
        }]);
        config.max_fails = 0;
        let upstreams = Upstreams::new(&config);
        let client = IpAddr::from([127, 0, 0, 1]);
        let tried = [false];
        // A slot is free, but requests wait for it already: it goes to
        // the first in line, then the next.
        let first = upstreams.enqueue(&tried, None);
        let second = upstreams.enqueue(&tried, None);
        assert!(matches!(
            upstreams.pick(client, "/", None, &tried, None, None),
            Pick::Full
        ));
        assert!(matches!(
            upstreams.pick(client, "/", None, &tried, None, Some(&second)),
            Pick::Full
        ));
        match upstreams.pick(client, "/", None, &tried, None, Some(&first)) {
            Pick::Chosen(0, busy) => drop(busy),
            _ => panic!("the first in line gets the slot"),
        }
        drop(first);
        match upstreams.pick(client, "/", None, &tried, None, Some(&second)) {
            Pick::Chosen(0, busy) => drop(busy),
            _ => panic!("then the next"),
        }
        drop(second);
        assert!(matches!(
            upstreams.pick(client, "/", None, &tried, None, None),
            Pick::Chosen(0, _)
        ));
    }
}
