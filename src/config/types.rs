//! The small types a `Config` holds: how access-log records are
//! written, the backends (targets and where each is reached) and how
//! requests are spread over them.

use super::values::{Addresses, Found};
use crate::access_log::Template;
use crate::http::send_proxy::ProxyVersion;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How access-log records are written.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// The combined log format plus `upstream=`, `cache=`, `duration_ms=`.
    #[default]
    Combined,
    /// One JSON object per line, with the same fields.
    Json,
    /// The operator's own line, nginx's `log_format` style.
    Template(Arc<Template>),
}

impl LogFormat {
    /// `combined`, `json`, or a template: any value holding a `$`.
    pub fn parse(v: &str) -> Result<LogFormat, String> {
        match v {
            "combined" => Ok(LogFormat::Combined),
            "json" => Ok(LogFormat::Json),
            _ if v.contains('$') => Template::parse(v).map(|t| LogFormat::Template(Arc::new(t))),
            _ => Err(format!(
                "`{v}` is not a log format (combined, json, or a template of $variables \
                 such as `$remote_addr $status $request_time`)"
            )),
        }
    }

    /// The request fields each record must carry for this format: those
    /// a template names.
    pub fn request_fields(&self) -> Option<&Arc<[Box<str>]>> {
        match self {
            LogFormat::Template(t) => Some(t.request_fields()).filter(|f| !f.is_empty()),
            _ => None,
        }
    }
}

/// The highest `weight=N` a target may have, in the file, through the
/// admin listener, from its agent or in `state_file`.
pub const MAX_WEIGHT: u32 = 10_000;

/// A weight written as digits alone (no sign, no blanks), 1 to
/// [`MAX_WEIGHT`]: as the admin listener and `state_file` take one.
pub fn weight_from(digits: &str) -> Option<u32> {
    Some(digits)
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .filter(|w| (1..=MAX_WEIGHT).contains(w))
}

/// A backend as configured: `host:port` or `unix:PATH` with its options
/// (`weight=N`, `max_conns=N`, `backup`, `max_fails=N`, `fail_timeout=D`),
/// resolved at load time. A name that gives several addresses
/// is one target per address (see [`Target::at`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// As written in the configuration, e.g. `app1.internal:8080`; for
    /// each address of a name giving several, `app1.internal:8080@10.0.0.5:8080`.
    /// Unique among the targets: the sticky cookie, `ip_hash`, metrics
    /// and the admin listener know a target by it.
    pub name: String,
    pub addr: Endpoint,
    pub weight: u32,
    /// Used only while every other target is down or already tried (as
    /// nginx's and HAProxy's `backup`).
    pub backup: bool,
    /// `down`: in maintenance from the start (nginx's `server ... down`,
    /// HAProxy's `disabled`), until the admin listener or a reload that
    /// takes the word out says otherwise.
    pub down: bool,
    /// Most requests at this target at once (`max_conns=N`); more wait for
    /// a slot. `None`: no limit.
    pub max_conns: Option<usize>,
    /// Its own `max_fails=N`, as nginx's `server ... max_fails=N`; `None`:
    /// the global `max_fails`. Kept as written, not filled in from the
    /// global key here, so that a reload that changes only the key
    /// changes every target without an option of its own.
    pub max_fails: Option<u32>,
    /// Its own `fail_timeout=D`; `None`: the global `fail_timeout`.
    pub fail_timeout: Option<Duration>,
    /// `tls`: spoken to over TLS, its certificate checked for this name
    /// (`tls_name=NAME`, else the host it is written with) and the name
    /// sent in SNI unless it is an address; `None`: plain HTTP.
    pub tls: Option<rustls_pki_types::ServerName<'static>>,
    /// `send_proxy` or `send_proxy_v2`: each connection to it starts with
    /// a PROXY protocol header naming the client, as HAProxy's
    /// `send-proxy` and `send-proxy-v2`; `None`: none.
    pub send_proxy: Option<ProxyVersion>,
    /// `agent_port=N` and the options that go with it: its agent, which
    /// says its weight and state (HAProxy's `agent-check`); `None`: none.
    pub agent: Option<AgentCheck>,
    /// `check_port=N`: its health checks go to that port of its address
    /// (HAProxy's `server ... check port N`), before the pool's
    /// `health_check_port`; `None`: the pool's, else its own port.
    pub check_port: Option<u16>,
    /// `fastcgi`: a FastCGI server (PHP-FPM), asked as the pool's
    /// `fastcgi_*` keys say (see [`crate::fastcgi`]).
    pub fastcgi: bool,
    /// Its weight is its SRV record's (`srv:NAME` written without
    /// `weight=`), given again at each lookup (see [`Target::at`]).
    pub record_weight: bool,
    /// A backup because its SRV record's priority is above the lowest,
    /// not because `backup` was written: a lookup where the record is
    /// of the lowest makes it a primary again.
    pub record_backup: bool,
}

/// Where and how a target's agent is asked (see
/// [`crate::upstream::health::Agent`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentCheck {
    /// `agent_port=N` (HAProxy's `agent-port`).
    pub port: u16,
    /// `agent_addr=IP`: the agent at another address than the target's
    /// (`agent-addr`); `None`: the target's own.
    pub addr: Option<std::net::IpAddr>,
    /// `agent_inter=D`: how often it is asked (`agent-inter`); `None`:
    /// every `health_check_interval`.
    pub interval: Option<Duration>,
    /// `agent_send=TEXT`: sent to it once connected, `%XX` decoded
    /// (`agent-send`); `None`: nothing.
    pub send: Option<Box<[u8]>>,
}

impl Target {
    /// `name` at `addr`, with none of the options `targets` may give one.
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Target {
        Target {
            name: name.into(),
            addr: Endpoint::Tcp(addr),
            weight: 1,
            backup: false,
            down: false,
            max_conns: None,
            max_fails: None,
            fail_timeout: None,
            tls: None,
            send_proxy: None,
            agent: None,
            check_port: None,
            fastcgi: false,
            record_weight: false,
            record_backup: false,
        }
    }

    /// The Unix socket at `path`, named `unix:PATH` as `targets` writes
    /// it, with none of the options. `path` is taken as it is: see
    /// [`crate::config::written`] for what a configuration may name.
    pub fn unix(path: impl Into<PathBuf>) -> Target {
        let path = path.into();
        Target {
            name: format!("unix:{}", path.display()),
            addr: Endpoint::Unix(path),
            ..Target::new("", SocketAddr::from(([0, 0, 0, 0], 0)))
        }
    }

    /// The target as written in `targets` (`app:8000`, `10.0.0.5:8000`):
    /// for each address of a name that gives several, the part of its
    /// name before `@` (see [`Target::at`]). A `unix:` target is never one
    /// of several, and its path may hold an `@` (systemd's `app@1.sock`).
    pub fn as_written(&self) -> &str {
        if matches!(self.addr, Endpoint::Unix(_)) {
            return &self.name;
        }
        self.name
            .split_once('@')
            .map_or(&self.name, |(written, _)| written)
    }

    /// The addresses of `answer` that this target, as written, is spread
    /// over (see [`addresses_of`](super::addresses_of)): written `backup`,
    /// those of an SRV name's lowest priority are its backups, and the
    /// fallback records are not used, as nginx Plus does.
    pub fn addresses_in(&self, mut answer: Vec<Found>) -> Addresses {
        if self.backup_written() {
            answer.retain(|f| !f.backup);
        }
        super::addresses_of(answer)
    }

    /// Whether `backup` was written for it, rather than given by its SRV
    /// record's priority.
    fn backup_written(&self) -> bool {
        self.backup && !self.record_backup
    }

    /// Whether it is a name as written that gave no address yet (see
    /// [`Config::unresolved`](super::Config::unresolved)): it stands at
    /// port 0, where no target written or looked up is.
    pub fn has_no_address(&self) -> bool {
        matches!(self.addr, Endpoint::Tcp(addr) if addr.port() == 0)
    }

    /// The targets this one, named as written, stands for at `found`
    /// (sorted, as [`addresses_of`](super::addresses_of) gives them), each with its options
    /// (weight, `max_conns`, `backup`, `max_fails`, `fail_timeout`), and
    /// what an SRV record says of its address: its weight where no
    /// `weight=` was written, `backup` where its priority is above the
    /// lowest. One address keeps the name as written,
    /// so a name giving one address is the target it has always been
    /// (its sticky cookie, `ip_hash` points and metrics label); of
    /// several, each is named `name@address` (`app:8000@10.0.0.5:8000`):
    /// unique, and the same for an address whatever else the name gives.
    pub fn at(&self, found: &[Found]) -> Vec<Target> {
        let written = self.as_written();
        let backup_written = self.backup_written();
        found
            .iter()
            .map(|f| Target {
                name: match found.len() {
                    1 => written.to_string(),
                    _ => format!("{written}@{}", f.addr),
                },
                addr: Endpoint::Tcp(f.addr),
                weight: match f.weight {
                    Some(weight) if self.record_weight => weight,
                    _ => self.weight,
                },
                backup: backup_written || f.backup,
                record_backup: f.backup && !backup_written,
                ..self.clone()
            })
            .collect()
    }
}

/// Where a target is reached: a TCP address, or the path of a
/// Unix-domain stream socket (`unix:PATH`, as nginx's `server unix:...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    /// As written after `unix:`: a relative path is from the working
    /// directory, which inverso never changes. Compared as paths
    /// (`/run//app.sock` is `/run/app.sock`), not resolved: the socket
    /// may not exist yet when the configuration is read.
    Unix(PathBuf),
}

impl Endpoint {
    /// The TCP address, for the checks only TCP targets can fail (the
    /// proxy's own listener) and the names looked up again.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Endpoint::Tcp(addr) => Some(*addr),
            Endpoint::Unix(_) => None,
        }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Endpoint {
        Endpoint::Tcp(addr)
    }
}

/// The address `/status` shows: `10.0.0.5:8000`, `unix:/run/app.sock`.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => addr.fmt(f),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// How requests are spread over the targets (`balance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    WeightedRoundRobin,
    LeastConn,
    /// Fewest requests in flight, each counted by how long the target
    /// has taken to answer lately (nginx Plus's `least_time`; to the
    /// head or to the last byte, see [`LeastTimeMeasure`]).
    LeastTime,
    IpHash,
    UriHash,
    /// Consistent hashing of what `hash_on` names.
    Hash,
    RandomTwo,
}

/// What a start or a reload does with a target written as a name
/// (`host:port`, `srv:NAME`) that does not resolve (`unresolved_targets`);
/// at a reload, only for one that had no address (see
/// [`LastAddresses`](super::LastAddresses)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnresolvedTargets {
    /// The configuration is refused: a typo shows at once, not as 502s.
    Refuse,
    /// The name is kept with no address, and looked up again every
    /// `resolve_interval` until it resolves (HAProxy's `init-addr none`):
    /// a backend's container may well start after the proxy.
    Wait,
}

impl UnresolvedTargets {
    pub(super) fn parse(v: &str) -> Result<UnresolvedTargets, String> {
        match v {
            "refuse" => Ok(UnresolvedTargets::Refuse),
            "wait" => Ok(UnresolvedTargets::Wait),
            _ => Err(format!("`{}`: refuse or wait", v.escape_debug())),
        }
    }
}

/// What `least_time` times each answer by (`least_time_measure`, nginx
/// Plus's `least_time header | last_byte`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeastTimeMeasure {
    /// From the request sent to the response head.
    Header,
    /// From the target's pick to the response's last byte read.
    LastByte,
}

impl LeastTimeMeasure {
    pub(super) fn parse(v: &str) -> Result<LeastTimeMeasure, String> {
        match v {
            "header" => Ok(LeastTimeMeasure::Header),
            "last_byte" => Ok(LeastTimeMeasure::LastByte),
            _ => Err(format!("`{}`: header or last_byte", v.escape_debug())),
        }
    }
}

impl Balance {
    const NAMES: &'static [(&'static str, Balance)] = &[
        ("round_robin", Balance::RoundRobin),
        ("weighted_round_robin", Balance::WeightedRoundRobin),
        ("least_conn", Balance::LeastConn),
        ("least_time", Balance::LeastTime),
        ("ip_hash", Balance::IpHash),
        ("uri_hash", Balance::UriHash),
        ("hash", Balance::Hash),
        ("random_two", Balance::RandomTwo),
    ];

    pub(super) fn parse(v: &str) -> Result<Balance, String> {
        Balance::NAMES
            .iter()
            .find(|(name, _)| *name == v)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                let names: Vec<_> = Balance::NAMES.iter().map(|(n, _)| *n).collect();
                format!("unknown algorithm `{v}` (one of {})", names.join(", "))
            })
    }

    /// Whether it reads each target's weight as it picks, so that a
    /// weight given on the admin listener counts from the next request:
    /// all but `round_robin`, which weighs nothing (the hashing ones lay
    /// their rings out anew).
    pub fn weighs_as_it_picks(self) -> bool {
        self != Balance::RoundRobin
    }

    pub fn name(self) -> &'static str {
        Balance::NAMES
            .iter()
            .find(|(_, b)| *b == self)
            .map_or("?", |(n, _)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::build;
    use crate::config::{target_lines, Config, Loader};

    #[test]
    fn each_target_of_a_name_giving_several_addresses_has_its_options() {
        let written = Target {
            name: "app:80".into(),
            addr: Endpoint::Tcp(SocketAddr::from(([0, 0, 0, 0], 0))),
            weight: 1,
            backup: false,
            down: false,
            max_conns: None,
            max_fails: Some(4),
            fail_timeout: Some(Duration::from_secs(45)),
            tls: None,
            send_proxy: None,
            agent: None,
            check_port: None,
            fastcgi: false,
            record_weight: false,
            record_backup: false,
        };
        let addrs: Vec<Found> = vec![
            "10.0.0.5:80".parse::<SocketAddr>().unwrap().into(),
            "10.0.0.6:80".parse::<SocketAddr>().unwrap().into(),
        ];
        let mut c = Config::with_targets(written.at(&addrs));
        c.max_fails = 1;
        assert_eq!(c.targets.len(), 2);
        for t in &c.targets {
            assert_eq!(
                (t.max_fails, t.fail_timeout),
                (Some(4), Some(Duration::from_secs(45)))
            );
            assert_eq!(
                (c.max_fails_of(t), c.fail_timeout_of(t)),
                (4, Duration::from_secs(45))
            );
        }
        assert_eq!(
            target_lines(&c),
            [
                "# target app:80 resolves to 2 addresses, each a target of its own:",
                "# target app:80@10.0.0.5:80 -> 10.0.0.5:80 (weight 1, max_fails 4, fail_timeout 45s)",
                "# target app:80@10.0.0.6:80 -> 10.0.0.6:80 (weight 1, max_fails 4, fail_timeout 45s)",
            ]
        );
    }

    #[test]
    fn a_log_format_with_a_dollar_is_a_template() {
        let c = build("targets = 127.0.0.1:1\nlog_format = $remote_addr \"$http_x_id\"\n").unwrap();
        let LogFormat::Template(t) = &c.log_format else {
            panic!("{:?}", c.log_format);
        };
        assert_eq!(t.source(), "$remote_addr \"$http_x_id\"");
        assert_eq!(
            &**c.log_format.request_fields().unwrap(),
            [Box::from("x_id")]
        );
        assert_eq!(LogFormat::Json.request_fields(), None);
        let e = build("targets = 127.0.0.1:1\n\nlog_format = $remote_addr $stauts\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:3: log_format: unknown variable `$stauts` (did you mean `$status`?)"
        );
        let e = Loader::new()
            .file("proxy.conf", "targets = 127.0.0.1:1\n")
            .unwrap()
            .env([("INVERSO_LOG_FORMAT".into(), "$qqqqqqq".into())])
            .build()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment INVERSO_LOG_FORMAT: log_format: unknown variable `$qqqqqqq`"
        );
        // The heads would be taken at every request and never written.
        let e =
            build("targets = 127.0.0.1:1\nlog_format = $status\nlog_headers = true\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.starts_with("log_headers: "), "{e}");
        assert!(e.message.contains("$http_<name>"), "{e}");
        // nginx's `escape=json`, written before the template as there.
        let c = build("targets = 127.0.0.1:1\nlog_format = escape=json {\"s\":$status}\n").unwrap();
        assert!(matches!(c.log_format, LogFormat::Template(_)));
        let e = build("targets = 127.0.0.1:1\nlog_format = escape=none $status\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
    }
}
