//! The backends: which one serves the next request (`balancer`, and what
//! `balance = hash` hashes of it: `hash_on`), whether
//! each may be used (`health`, and what the operator says: `admin_state`,
//! kept across restarts by `state_file`),
//! the keep-alive connections kept open to each (`idle`), and the names
//! looked up again while the proxy runs (`resolve`).
//!
//! # Layout
//! - `target`: one backend ([`Upstream`]): whether it is in rotation,
//!   and a connection to it lent from its idle ones or made anew and
//!   given back ([`UpstreamConn`]).
//! - `dial`: a socket to a backend opened, connected and its TLS
//!   handshake made ([`open`], [`connect`], [`handshake`]), and a PROXY
//!   header sent before it ([`send_in_clear`]).
//! - `kept`: the connection a client connection keeps to a `send_proxy`
//!   target, never pooled ([`KeptConns`]).
//! - `pick`: which target the next request goes to, or why none, and
//!   the wait for a slot at targets at their `max_conns` ([`Pick`]).
//! - `states`: what a target's state carries over to the next
//!   generation, and the operator's drain and maintenance set.
//! - here: a pool's targets ([`Upstreams`]) built from the
//!   configuration, its settings, and its health checker started.

pub mod admin_state;
pub mod balancer;
pub mod hash_on;
pub mod health;
pub mod idle;
pub mod latency;
pub mod pools;
pub mod resolve;
pub mod retry_on;
pub mod slots;
pub mod state_file;
pub mod sticky;

mod dial;
mod kept;
mod pick;
mod states;
mod target;

pub use dial::{connect, handshake, no_delay, open, send_in_clear};
pub use kept::{ForClient, KeptConns};
pub use pick::{InLine, Pick};
pub use slots::{Held, InFlight};
pub use target::{BackendTls, UpstreamConn};

use crate::config::{Balance, Config, Endpoint, LeastTimeMeasure, Target};
use crate::http::send_proxy::ProxyVersion;
use crate::metrics::{PoolStats, TargetStats};
use admin_state::AdminState;
use balancer::Balancer;
use health::{Active, AgentTiming, Checker, Health, Passive, Probe, ProbeKind};
use idle::{IdleConns, MostUse};
use rustls_pki_types::ServerName;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// How it is asked as a FastCGI server (`fastcgi`); `None`: HTTP.
    pub fastcgi: Option<Arc<crate::fastcgi::App>>,
    /// The PROXY header each connection to it starts with (`send_proxy`).
    pub send_proxy: Option<ProxyVersion>,
    /// Where and how its agent is asked (`agent_port=N`, see
    /// [`health::Agent`]).
    agent: Option<crate::config::AgentCheck>,
    /// Where its health checks go instead of its own port: its
    /// `check_port=N`, else the pool's `health_check_port`.
    check_port: Option<u16>,
    /// Under `least_time`, how its answers are timed (see [`latency`]);
    /// `None` otherwise.
    pub least_time: Option<Timing>,
    pub weight: u32,
    pub backup: bool,
    /// Written `down`: in maintenance from the start (see
    /// [`Upstreams::keep_state_of`] for a reload).
    down: bool,
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

/// How `least_time` times a target's answers.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// To the head, or to the last byte (`least_time_measure`).
    pub measure: LeastTimeMeasure,
    /// A failure counts as an answer as slow as this (`backend_timeout`):
    /// a target that fails fast is no fast target. The pool's, whatever
    /// a route's own `backend_timeout=` the failed request had: it
    /// weighs the target against the pool's others for every route, and
    /// one failure on a route allowed ten minutes would otherwise keep
    /// the target from the pool's other requests for long.
    pub failure_takes: Duration,
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
    /// The algorithm of its balancers.
    balance: Balance,
    /// Reads and writes.
    timeout: Duration,
    connect_timeout: Duration,
    queue_timeout: Duration,
    /// `max_queue`; `None`: no limit.
    max_queue: Option<usize>,
    retries: usize,
    /// `retry_timeout`; `None`: no limit.
    retry_timeout: Option<Duration>,
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

impl Upstreams {
    /// The pool `targets` makes (a configuration's `pools` are left out:
    /// see [`pools::Pools`]).
    pub fn new(config: &Config) -> Upstreams {
        Upstreams::named(config, crate::config::DEFAULT_POOL.into())
    }

    /// A pool of the targets `config` gives, under `name`.
    pub fn named(config: &Config, name: Arc<str>) -> Upstreams {
        let fastcgi = Arc::new(config.fastcgi.clone());
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
                let health = Health::new(name.clone(), passive);
                if t.down {
                    health.set_admin_state(AdminState::Maint);
                }
                Upstream {
                    health: Arc::new(health),
                    name,
                    host: match (&t.addr, &t.tls) {
                        // The name its certificate is for (`tls_name=`):
                        // a backend choosing its site by SNI may refuse
                        // another Host (421).
                        (Endpoint::Tcp(addr), Some(ServerName::DnsName(name))) => {
                            format!("{}:{}", name.as_ref(), addr.port()).into()
                        }
                        // An `srv:` name is no host: its domain is.
                        (Endpoint::Tcp(addr), _) => match crate::config::written(&written) {
                            Ok(crate::config::Written::Srv(service)) => {
                                let domain = crate::config::service_domain(service);
                                format!("{domain}:{}", addr.port()).into()
                            }
                            _ => written.clone(),
                        },
                        (Endpoint::Unix(_), _) => "localhost".into(),
                    },
                    written,
                    addr: t.addr.clone(),
                    tls: t.tls.clone().map(|name| BackendTls {
                        settings: (config.backend_tls.clone())
                            .unwrap_or_else(crate::tls::backends::default_client_config),
                        name,
                    }),
                    fastcgi: t.fastcgi.then(|| fastcgi.clone()),
                    send_proxy: t.send_proxy,
                    agent: t.agent.clone(),
                    check_port: t.check_port.or(config.health_check_port),
                    least_time: (config.balance == Balance::LeastTime).then(|| Timing {
                        measure: config.least_time_measure,
                        failure_takes: config.effective_backend_timeout(),
                    }),
                    weight: t.weight,
                    backup: t.backup,
                    down: t.down,
                    max_conns: t.max_conns.unwrap_or(0),
                    sticky_id: sticky::id_of(&t.name),
                    former_sticky_id: None,
                    idle: Arc::new(IdleConns::new(
                        config.upstream_keepalive,
                        config.connection_timeout,
                        MostUse {
                            requests: config.upstream_keepalive_requests,
                            lifetime: config.upstream_keepalive_time,
                        },
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
                    balancer: balancer::new(
                        config.balance,
                        &names,
                        &weights,
                        config.hash_balance_factor,
                    ),
                    members,
                }
            })
            .filter(|group| !group.members.is_empty())
            .collect();
        Upstreams {
            name,
            groups,
            balance: config.balance,
            targets,
            timeout: config.effective_backend_timeout(),
            connect_timeout: config.effective_connect_timeout(),
            queue_timeout: config.effective_queue_timeout(),
            max_queue: config.max_queue,
            retries: config.effective_retries(),
            retry_timeout: (!config.retry_timeout.is_zero()).then_some(config.retry_timeout),
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

    /// Other targets a failed request may be tried on.
    pub fn retries(&self) -> usize {
        self.retries
    }

    /// How long after the first try a request may still be sent on to
    /// another target; `None`: as long as `retries` allows.
    pub fn retry_timeout(&self) -> Option<Duration> {
        self.retry_timeout
    }

    /// Response statuses that send a request on to another target.
    pub fn retry_on_status(&self) -> &retry_on::RetryOnStatus {
        &self.retry_on_status
    }

    /// The longest a read from or a write to a backend may wait.
    pub fn backend_timeout(&self) -> Duration {
        self.timeout
    }

    /// The algorithm its balancers pick by.
    pub fn balance(&self) -> Balance {
        self.balance
    }

    /// How long a request may wait for a slot when every target that could
    /// serve it is at its `max_conns`: `queue_timeout`.
    pub fn queue_timeout(&self) -> Duration {
        self.queue_timeout
    }

    /// Where each target takes requests, as probes: what the active
    /// checker asks (each moved to its `check_port`) and where fetched
    /// JWT keys are asked for.
    pub fn probes(&self) -> Vec<Probe> {
        self.targets
            .iter()
            .map(|t| Probe {
                name: t.written.clone(),
                host: t.host.clone(),
                addr: t.addr.clone(),
                tls: t.tls.clone(),
                fastcgi: t.fastcgi.clone(),
                send_proxy: t.send_proxy,
                health: t.health.clone(),
            })
            .collect()
    }

    /// Starts the active health checker, when `health_check_path` is set
    /// (a `GET`), `health_check_tcp` is on (a connect, and what
    /// `health_check_send` and `_expect`, or `health_check_conversation`,
    /// say) or `health_check_udp` (a
    /// datagram). More than one, which only
    /// a `Config` built by hand can have (the loader refuses it): the
    /// `GET`, which connects too, else the connect.
    pub fn start_checker(&self, config: &Config) -> io::Result<Option<Checker>> {
        let kind = match &config.health_check_path {
            Some(path) => ProbeKind::Http {
                method: config.health_check_method,
                path: path.clone(),
            },
            None if config.health_check_tcp => ProbeKind::Connect,
            None if config.health_check_udp => ProbeKind::Datagram,
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
            fast_interval: (config.health_check_fast_interval)
                .unwrap_or(config.health_check_interval),
            down_interval: (config.health_check_down_interval)
                .unwrap_or(config.health_check_interval),
            timeout: config.effective_health_check_timeout(),
            connect_timeout: config.effective_connect_timeout(),
            rise: config.health_check_rise,
            fall: config.health_check_fall,
            expect_status: config.health_check_expect_status.clone(),
            expect_body: config.health_check_expect_body.clone(),
            send: config.health_check_send.as_deref().map(Arc::from),
            expect: config.health_check_expect.as_deref().map(Arc::from),
            conversation: config.health_check_conversation.clone(),
            disable_on_404: config.health_check_disable_on_404,
        };
        let probes = (self.targets.iter().zip(self.probes()))
            .map(|(target, probe)| match target.check_port {
                Some(port) => probe.at_port(port),
                None => probe,
            })
            .collect();
        Checker::start(probes, settings).map(Some)
    }

    /// Starts asking the agents of the targets that have one
    /// (`agent_port=N`), every `health_check_interval`, each question
    /// within `health_check_timeout`.
    pub fn start_agents(&self, config: &Config) -> io::Result<Option<Checker>> {
        let agents = self.agents(config);
        if agents.is_empty() {
            return Ok(None);
        }
        let timing = AgentTiming {
            interval: config.health_check_interval,
            timeout: config.effective_health_check_timeout(),
        };
        Checker::ask_agents(agents, timing).map(Some)
    }
}

#[cfg(test)]
mod test_support {
    use super::*;
    use crate::config::Balance;
    use std::net::SocketAddr;

    /// Every target of `upstreams`, as a reload takes their state over.
    pub(super) fn all(upstreams: &Upstreams) -> Vec<&Upstream> {
        upstreams.targets().iter().collect()
    }

    /// Targets `127.0.0.1:1..=n`, with `max_conns` at each.
    pub(super) fn upstreams(n: u16, balance: Balance, max_conns: Option<usize>) -> Upstreams {
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
}
