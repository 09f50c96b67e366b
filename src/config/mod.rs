//! proxy.conf, `INVERSO_*` environment variables and command-line flags,
//! merged into one typed [`Config`].
//!
//! Every key has one entry in [`KEYS`]: its name, its default (as text, parsed
//! like any other value so defaults cannot drift from the parser) and a
//! one-line summary. Precedence is
//! flag > environment > file > default, and every value remembers where it
//! came from so an error can say `proxy.conf:7: ...` or
//! `environment INVERSO_PORT: ...`.

mod keys;
mod pools;
mod rewrites;
mod values;

use crate::access_log::Template;
use crate::field_value::FieldValue;
use crate::http::edits::FieldEdits;
use crate::ratelimit::Rate;
use crate::realip::Cidr;
use keys::find_key;
pub use keys::{Key, KEYS, MAX_HEADER_SIZE_CEILING};
pub use pools::{PoolConfig, DEFAULT_POOL, MAX_POOLS, POOL_KEYS};
use pools::{PoolKey, RouteKey, Scope};
use rewrites::RewriteKey;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
pub use values::{
    addresses_of, lookup, parse_duration, parse_rate, parse_size, target_lines, written, Addresses,
    AuthRequest, Written, MAX_ADDRESSES_PER_NAME,
};

/// TLS settings for backends, and the keys they were made of.
type BackendTlsMade = (
    crate::tls::backends::BackendTlsKeys,
    Arc<rustls::ClientConfig>,
);

/// The effective configuration of one proxy process.
#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub bind: IpAddr,
    pub targets: Vec<Target>,
    /// `pool.<name>`: the other pools of backends, in the order written;
    /// none but `targets` when no such key is set.
    pub pools: Vec<PoolConfig>,
    /// `route.<host><path>`: the requests each pool serves (the rest go
    /// to `targets`).
    pub routes: Arc<crate::routes::Routes>,
    /// `rewrite.<name>`: the rules that change a request's path, or
    /// answer it with a redirect, before it is routed, in the order
    /// written (none for a pool's settings: they are the proxy's).
    pub rewrites: Arc<crate::rewrite::Rewrites>,
    /// How often targets written as names are resolved again while the
    /// proxy runs; `None`: only at start-up and on reload.
    pub resolve_interval: Option<Duration>,
    pub cache_size: u64,
    pub ttl: Duration,
    pub unit_time: Duration,
    pub connection_timeout: Duration,
    /// How long a client connection may wait for its next request;
    /// `None`: `connection_timeout`.
    pub keepalive_timeout: Option<Duration>,
    /// The longest opening a backend connection may take; `None`:
    /// `connection_timeout`.
    pub connect_timeout: Option<Duration>,
    /// Read and write timeout of backend connections (the wait for a
    /// response head too); `None`: `connection_timeout`.
    pub backend_timeout: Option<Duration>,
    /// How long an upgraded (WebSocket) connection may carry nothing
    /// either way before it is closed.
    pub tunnel_timeout: Duration,
    pub path_to_persistence: Option<PathBuf>,
    pub path_to_log: Option<PathBuf>,
    /// `error_pages`: the bodies read from its directory for the proxy's
    /// own errors (none when off).
    pub error_pages: crate::error_pages::ErrorPages,
    /// `request_header.<Name>`: fields set or removed on every request
    /// sent to a backend (none when no such key is set).
    pub request_headers: FieldEdits,
    /// `response_header.<Name>`: fields set or removed on every response
    /// sent to a client (none when no such key is set).
    pub response_headers: FieldEdits,
    pub max_connections: usize,
    /// Connections one client address may hold at once; 0 = no limit.
    pub max_connections_per_client: usize,
    pub upstream_keepalive: usize,
    pub shutdown_timeout: Duration,
    /// Worker threads under SCHED_BATCH (throughput) rather than the
    /// default policy (tail latency).
    pub batch_scheduling: bool,
    /// Nice value of the worker threads; `None`: the process's own.
    pub worker_priority: Option<i32>,
    pub defer_accept: bool,
    /// Listeners bound with SO_REUSEPORT, so a second process can listen
    /// on the same addresses (a binary upgrade without refusing anyone).
    pub reuse_port: bool,
    /// Requests go through the cache (when there is one, `cache_size`
    /// above 0); off for a pool, they pass as with no cache.
    pub cache: bool,
    /// A backend's 4xx or 5xx with a page in `error_pages` is answered
    /// with the page (see [`Config::intercepts`]).
    pub intercept_errors: bool,
    /// `None`: an eighth of `cache_size`.
    pub max_object_size: Option<u64>,
    pub cache_unlabeled: bool,
    pub cache_valid: Arc<crate::cache::policy::CacheValid>,
    /// Response fields the cache does not read; empty: off.
    pub cache_ignore_headers: crate::cache::policy::IgnoredHeaders,
    pub stale_if_error: Duration,
    pub stale_while_revalidate: Duration,
    /// The cache's device token for Surrogate-Control; `None`: not read.
    pub surrogate_id: Option<Arc<str>>,
    pub x_accel_expires: bool,
    /// `Surrogate-Key` read (tags for a purge by tag) and removed from
    /// responses; off: passed through.
    pub surrogate_keys: bool,
    /// RFC 9213's target list, lower case (see `policy::Targeting`).
    pub targeted_cache_control: Arc<[Box<str>]>,
    /// GET and HEAD lose their Cache-Control and Pragma before the cache
    /// sees them.
    pub ignore_client_cache_control: bool,
    /// Requests carrying one of these cookies neither are answered from
    /// the cache nor have their answers stored; empty: off.
    pub cache_bypass_cookies: crate::cache::policy::BypassCookies,
    /// Query parameters left out of the cache key; empty: off.
    pub cache_key_ignore_params: crate::cache::policy::IgnoredParams,
    pub balance: Balance,
    /// What `balance = hash` hashes; set with it alone.
    pub hash_on: Option<crate::upstream::hash_on::HashOn>,
    /// Failures within `fail_timeout` that take a target out; 0 = never.
    pub max_fails: u32,
    pub fail_timeout: Duration,
    /// Other targets tried after a failure; `None`: every other target.
    pub retries: Option<usize>,
    /// Response statuses retried on another target; empty: none.
    pub retry_on_status: crate::upstream::retry_on::RetryOnStatus,
    /// How long a target back in rotation takes to get its whole share of
    /// requests; zero: at once.
    pub slow_start: Duration,
    /// Active health checks by `GET` of this path; `None`: none of those.
    pub health_check_path: Option<String>,
    /// Active health checks by connecting alone, when there is no
    /// `health_check_path` (the loader refuses both in one scope).
    pub health_check_tcp: bool,
    /// The Host the probes send; `None`: each target's own `host:port`.
    pub health_check_host: Option<String>,
    /// Statuses a probe must get, as ranges; empty: any 2xx or 3xx.
    pub health_check_expect_status: Arc<[(u16, u16)]>,
    /// Text a probe's body must hold.
    pub health_check_expect_body: Option<Arc<str>>,
    pub health_check_interval: Duration,
    /// How long a whole probe may take; `None`: the smaller of
    /// `backend_timeout` and the interval.
    pub health_check_timeout: Option<Duration>,
    pub health_check_rise: u32,
    pub health_check_fall: u32,
    /// The admin listener's port; `None`: no admin listener.
    pub admin_port: Option<u16>,
    /// `tls_port`: the port that takes HTTPS; `None`: off.
    pub tls_port: Option<u16>,
    /// `tls_certificates` as written, and the TLS settings made of them
    /// (at load and at every reload).
    pub tls_certificates: Vec<crate::tls::CertificateFiles>,
    pub tls_served: Option<Arc<crate::tls::Certificates>>,
    /// `tls_verify_client`, `tls_client_ca` and `tls_client_crl`: whether
    /// and how clients on `tls_port` show certificates of their own.
    pub tls_verify_client: crate::tls::VerifyClient,
    /// `tls_protocols`: the TLS versions `tls_port` speaks.
    pub tls_protocols: crate::tls::TlsVersions,
    /// `tls_strict_sni`: a client that names no host a certificate is
    /// valid for is refused at the handshake, not given the first.
    pub tls_strict_sni: bool,
    pub tls_client_ca: Option<PathBuf>,
    pub tls_client_crl: Option<PathBuf>,
    /// The checks those keys make (also of resumed sessions).
    pub tls_client_auth: Option<Arc<crate::tls::ClientAuth>>,
    /// The settings `tls_port` takes TLS with, made of the keys above
    /// once they are all read.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `backend_tls_verify`, `backend_tls_ca` and
    /// `backend_tls_certificate`, and the TLS settings made of them when
    /// a target has `tls` (at load and at every reload; `None`, with
    /// such a target, in a configuration built by hand: the keys'
    /// defaults).
    pub backend_tls_keys: crate::tls::backends::BackendTlsKeys,
    pub backend_tls: Option<Arc<rustls::ClientConfig>>,
    pub admin_bind: IpAddr,
    /// Where the targets' drain and maintenance states are kept across
    /// restarts (see `upstream::state_file`); `None`: not kept.
    pub state_file: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Add the request and response heads to each access-log record.
    pub log_headers: bool,
    /// Path prefixes whose answers below 400 are not logged.
    pub log_skip_paths: crate::patterns::PathPrefixes,
    /// Statuses, in inclusive ranges, whose answers are not logged.
    pub log_skip_statuses: Arc<[(u16, u16)]>,
    /// Add this hop to `Via` on requests to backends.
    pub via: bool,
    /// Requests for a URL before its response is stored.
    pub cache_min_uses: u32,
    /// The cache's name in RFC 9211 `Cache-Status`; `None`: not written.
    pub cache_status: Option<Arc<str>>,
    /// Compress responses for clients that take gzip (see `crate::gzip`).
    pub gzip: bool,
    pub gzip_types: crate::gzip::MediaTypes,
    /// Bodies shorter than this go uncompressed.
    pub gzip_min_length: u64,
    /// 1 (fastest) to 9 (smallest).
    pub gzip_comp_level: u32,
    /// The header field carrying each request's ID, if any.
    pub request_id_header: Option<Arc<str>>,
    /// The cookie that keeps a client on the target that served it.
    pub sticky_cookie: Option<Arc<str>>,
    /// Requests one client address may make over time; more get 429.
    pub rate_limit: Option<Rate>,
    /// Requests past the rate a client may make at once; `None`: one
    /// second's worth of the rate.
    pub rate_limit_burst: Option<u32>,
    /// What a request's bucket is keyed on; `None`: its client's address
    /// (as for a request that does not carry what this names).
    pub rate_limit_key: Option<crate::upstream::hash_on::HashOn>,
    /// Largest request head (request line and fields) in bytes; 431 past it.
    pub max_header_size: usize,
    /// Most header fields in a request head; 431 past it.
    pub max_headers: usize,
    /// Longest request-target in bytes; 414 past it.
    pub max_uri_length: usize,
    /// Forward request fields whose name has an underscore (else dropped).
    pub underscores_in_headers: bool,
    /// Proxies in front whose `X-Forwarded-For` names the client.
    pub real_ip_from: Vec<Cidr>,
    /// Every client connection starts with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// Requests that came over plain HTTP are answered with a redirect to
    /// HTTPS (see [`crate::https_redirect`]).
    pub redirect_to_https: bool,
    /// Paths served over plain HTTP all the same; empty: none.
    pub redirect_to_https_except: crate::patterns::PathPrefixes,
    /// Client addresses that may send requests; empty = every one (see
    /// [`crate::access`]).
    pub allow_from: Vec<Cidr>,
    /// Client addresses refused 403, whatever `allow_from` says.
    pub deny_from: Vec<Cidr>,
    /// `auth_basic`: the realm clients sign in to (see [`crate::auth`]);
    /// `None`: no sign-in.
    pub auth_basic: Option<Arc<str>>,
    /// `auth_basic_user_file`: who may sign in.
    pub auth_users: Option<Arc<crate::auth::Users>>,
    /// Clients that need not sign in; empty: none.
    pub auth_basic_except_from: Vec<Cidr>,
    /// `auth_request`: the pool and path each request is first asked of;
    /// `None`: none.
    pub auth_request: Option<AuthRequest>,
    /// `mirror`: the pool a copy of each request sent to a backend goes
    /// to as well, its answer dropped; `None`: none.
    pub mirror: Option<Arc<str>>,
    /// `auth_request_headers`: the fields of its yes sent on to the
    /// backend with the request.
    pub auth_request_headers: Arc<[Box<str>]>,
    /// `auth_request_cache`: how long a yes of the `auth_request` service
    /// is taken again for the same question; zero: it is asked each time.
    pub auth_request_cache: Duration,
    /// `auth_request_redirect`: where a client the service answers 401
    /// is sent instead (302), its variables rendered for the request;
    /// `None`: the 401 goes to the client as it came.
    pub auth_request_redirect: Option<FieldValue>,
    /// `admin_auth_basic_user_file`: who may use the admin listener; `None`:
    /// whoever reaches it.
    pub admin_auth_users: Option<Arc<crate::auth::Users>>,
    /// Largest request body in bytes; 413 past it. 0 = unlimited.
    pub max_body_size: u64,
    /// `limit_rate` and `limit_rate_after`: how fast responses go to
    /// clients (a rate of 0: at full speed).
    pub pacing: crate::pace::Pacing,
    /// Request bodies up to this are read whole before a backend is
    /// contacted; larger ones stream.
    pub request_buffer_size: u64,
    /// Response bodies with a Content-Length up to this are read whole
    /// before the client gets any, freeing the backend connection first;
    /// larger ones stream.
    pub response_buffer_size: u64,
    /// The longest a whole request head may take to arrive (slowloris); 408.
    pub client_header_timeout: Duration,
    /// The longest a client may pause between two reads of its request body; 408.
    pub client_body_timeout: Duration,
    /// Requests served on one client connection before it is closed; 0 = no limit.
    pub keepalive_requests: u64,
    /// Not a key: the access log always goes to stdout when run from the
    /// command line; embedders and tests may turn that copy off.
    pub log_to_stdout: bool,
}

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
}

impl Target {
    /// `name` at `addr`, with none of the options `targets` may give one.
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Target {
        Target {
            name: name.into(),
            addr: Endpoint::Tcp(addr),
            weight: 1,
            backup: false,
            max_conns: None,
            max_fails: None,
            fail_timeout: None,
            tls: None,
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

    /// The targets this one, named as written, stands for at `addrs`
    /// (sorted, as [`addresses_of`] gives them), each with its options
    /// (weight, `max_conns`, `backup`, `max_fails`, `fail_timeout`). One address keeps the name as written,
    /// so a name giving one address is the target it has always been
    /// (its sticky cookie, `ip_hash` points and metrics label); of
    /// several, each is named `name@address` (`app:8000@10.0.0.5:8000`):
    /// unique, and the same for an address whatever else the name gives.
    pub fn at(&self, addrs: &[SocketAddr]) -> Vec<Target> {
        let written = self.as_written();
        addrs
            .iter()
            .map(|&addr| Target {
                name: match addrs.len() {
                    1 => written.to_string(),
                    _ => format!("{written}@{addr}"),
                },
                addr: Endpoint::Tcp(addr),
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
    IpHash,
    UriHash,
    /// Consistent hashing of what `hash_on` names.
    Hash,
    RandomTwo,
}

impl Balance {
    const NAMES: &'static [(&'static str, Balance)] = &[
        ("round_robin", Balance::RoundRobin),
        ("weighted_round_robin", Balance::WeightedRoundRobin),
        ("least_conn", Balance::LeastConn),
        ("ip_hash", Balance::IpHash),
        ("uri_hash", Balance::UriHash),
        ("hash", Balance::Hash),
        ("random_two", Balance::RandomTwo),
    ];

    fn parse(v: &str) -> Result<Balance, String> {
        Balance::NAMES
            .iter()
            .find(|(name, _)| *name == v)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                let names: Vec<_> = Balance::NAMES.iter().map(|(n, _)| *n).collect();
                format!("unknown algorithm `{v}` (one of {})", names.join(", "))
            })
    }

    pub fn name(self) -> &'static str {
        Balance::NAMES
            .iter()
            .find(|(_, b)| *b == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    File { path: String, line: usize },
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path, line } => write!(f, "{path}:{line}"),
            Origin::Env(var) => write!(f, "environment {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration that cannot be used, with where the problem is. The
/// message quotes values as they came, so it is shown [`printable`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{place}: {}", printable(.message))]
pub struct ConfigError {
    /// `proxy.conf:7`, `environment INVERSO_PORT`, `flag --port`, or just
    /// the file name for whole-file problems.
    pub place: String,
    pub message: String,
}

/// `text` made safe to print on a terminal or in a log: control
/// characters (an escape sequence, a newline that would fake another
/// line) and bidirectional overrides escaped, and anything past 300
/// characters cut.
pub fn printable(text: &str) -> String {
    const SHOWN: usize = 300;
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => escape_controls(&text[..cut]) + "...",
        None => escape_controls(text),
    }
}

/// `text` with control characters and bidirectional overrides (which
/// reorder what a terminal shows) escaped.
pub fn escape_controls(text: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if hidden(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl ConfigError {
    fn at(origin: &Origin, message: impl Into<String>) -> Self {
        ConfigError {
            place: origin.to_string(),
            message: message.into(),
        }
    }
}

/// A value and where it came from.
#[derive(Clone, Debug)]
pub struct Setting {
    pub value: String,
    pub origin: Origin,
}

/// A key family that sets (or, with an empty value, removes) a header
/// field: `request_header.X-Backend-Auth = s3cret` on every request sent
/// to a backend, `response_header.X-Frame-Options = DENY` on every
/// response sent to a client. One key per field, since values hold the
/// commas and semicolons a list would split at (`Content-Security-Policy`,
/// `Strict-Transport-Security`). File only: an environment variable's
/// name cannot spell the `.` and `-`. Both families share their syntax and
/// rules; which names each may edit is [`values::parse_field_edit`]'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldFamily {
    Request,
    Response,
}

impl FieldFamily {
    pub const ALL: [FieldFamily; 2] = [FieldFamily::Request, FieldFamily::Response];

    /// What every key of the family begins with, dot included.
    pub fn prefix(self) -> &'static str {
        match self {
            FieldFamily::Request => "request_header.",
            FieldFamily::Response => "response_header.",
        }
    }

    /// The family's name, without the dot: `response_header`.
    fn name(self) -> &'static str {
        self.prefix().trim_end_matches('.')
    }

    /// The messages its fields are set on or removed from, for `check`
    /// and errors.
    pub fn messages(self) -> &'static str {
        match self {
            FieldFamily::Request => "every request sent to a backend",
            FieldFamily::Response => "every response",
        }
    }

    /// A key's field name and value that set a field, and one that
    /// removes one, for messages.
    fn examples(self) -> (&'static str, &'static str) {
        match self {
            FieldFamily::Request => ("X-Backend-Auth = s3cret", "X-Debug ="),
            FieldFamily::Response => ("X-Frame-Options = DENY", "X-Powered-By ="),
        }
    }

    /// The family `key` belongs to, and the field name after its dot.
    fn of(key: &str) -> Option<(FieldFamily, &str)> {
        FieldFamily::ALL
            .into_iter()
            .find_map(|f| key.strip_prefix(f.prefix()).map(|name| (f, name)))
    }

    /// The family whose name `key` (lower case, as an environment
    /// variable's is read) begins with, dot or not.
    fn named_at_start_of(key: &str) -> Option<FieldFamily> {
        FieldFamily::ALL
            .into_iter()
            .find(|f| key.starts_with(f.name()))
    }
}

/// A `request_header.<Name>` or `response_header.<Name>` key as read: the
/// name as written, and its value.
#[derive(Clone, Debug)]
pub(super) struct FieldKey {
    family: FieldFamily,
    name: String,
    setting: Setting,
}

/// Collects raw values from the sources in increasing precedence, then
/// builds the typed [`Config`]. Later sources override earlier ones.
#[derive(Clone, Debug)]
pub struct Loader {
    settings: BTreeMap<&'static str, Setting>,
    /// The `request_header.<Name>` and `response_header.<Name>` keys, in
    /// the file's order.
    field_keys: Vec<FieldKey>,
    /// The `pool.*` keys, in the file's order, but for the next.
    pool_keys: Vec<PoolKey>,
    /// The `pool.<name>.request_header.<Name>` and
    /// `pool.<name>.response_header.<Name>` keys: each with its pool.
    pool_field_keys: Vec<(String, FieldKey)>,
    /// The `route.*` keys, in the file's order.
    route_keys: Vec<RouteKey>,
    /// The `rewrite.*` keys, in the file's order.
    rewrite_keys: Vec<RewriteKey>,
    /// The file name whole-file errors are reported against.
    file: String,
    /// Whether a file was read (else defaults, environment and flags only).
    file_read: bool,
    /// The TLS settings for backends as made, by the keys they were made
    /// of: one for every pool that sets none of its own, so their files
    /// are read, and their sessions kept, once.
    backend_tls: std::cell::RefCell<Vec<BackendTlsMade>>,
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

impl Loader {
    /// Starts with every key at its default.
    pub fn new() -> Self {
        let settings = KEYS
            .iter()
            .map(|k| {
                let s = Setting {
                    value: k.default.to_string(),
                    origin: Origin::Default,
                };
                (k.name, s)
            })
            .collect();
        Loader {
            settings,
            field_keys: Vec::new(),
            pool_keys: Vec::new(),
            pool_field_keys: Vec::new(),
            route_keys: Vec::new(),
            rewrite_keys: Vec::new(),
            file: "configuration".to_string(),
            file_read: false,
            backend_tls: Default::default(),
        }
    }

    /// The file read, or `configuration` when none was (defaults,
    /// environment and flags only).
    pub fn source(&self) -> &str {
        &self.file
    }

    /// Whether a configuration file was read.
    pub fn read_a_file(&self) -> bool {
        self.file_read
    }

    /// Reads proxy.conf text: `key = value` lines, `#` comments and blank
    /// lines ignored. Unknown and repeated keys are errors.
    pub fn file(&mut self, path: &str, text: &str) -> Result<&mut Self, ConfigError> {
        self.file = path.to_string();
        self.file_read = true;
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        // Some editors start a UTF-8 file with a byte order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let origin = Origin::File {
                path: path.to_string(),
                line,
            };
            let content = strip_comment(raw).trim();
            if content.is_empty() {
                continue;
            }
            let Some((key, value)) = content.split_once('=') else {
                return Err(ConfigError::at(
                    &origin,
                    format!("expected `key = value`, found `{content}`"),
                ));
            };
            let key = key.trim();
            if let Some((family, name)) = FieldFamily::of(key) {
                self.field_key(family, name, value.trim(), origin)?;
                continue;
            }
            if let Some(rest) = key.strip_prefix("pool.") {
                self.pool_key(rest, value.trim(), origin)?;
                continue;
            }
            if let Some(spec) = key.strip_prefix("route.") {
                self.route_key(spec.trim(), value.trim(), origin)?;
                continue;
            }
            if let Some(name) = key.strip_prefix("rewrite.") {
                self.rewrite_key(name, value.trim(), origin)?;
                continue;
            }
            let Some(spec) = find_key(key) else {
                return Err(ConfigError::at(&origin, unknown_key_message(key)));
            };
            if let Some(first) = seen.insert(spec.name, line) {
                return Err(ConfigError::at(
                    &origin,
                    format!("duplicate key `{key}` (first set on line {first})"),
                ));
            }
            self.put(spec.name, value.trim(), origin);
        }
        Ok(self)
    }

    /// Takes `request_header.<name> = value` or `response_header.<name> =
    /// value` from the file: one key per field name and family, in any
    /// case (two spellings of one name are one field).
    fn field_key(
        &mut self,
        family: FieldFamily,
        name: &str,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        let prefix = family.prefix();
        if name.is_empty() {
            return Err(ConfigError::at(
                &origin,
                format!(
                    "`{prefix}` needs a field name after the dot, e.g. `{prefix}{}`",
                    family.examples().0
                ),
            ));
        }
        let mut same_family = self.field_keys.iter().filter(|k| k.family == family);
        if let Some(first) = same_family
            .clone()
            .find(|k| k.name.eq_ignore_ascii_case(name))
        {
            let first = pools::on_line(&first.setting);
            return Err(ConfigError::at(
                &origin,
                format!("duplicate key `{prefix}{name}`{first}"),
            ));
        }
        if same_family.nth(values::MAX_FIELD_EDITS - 1).is_some() {
            return Err(ConfigError::at(
                &origin,
                format!(
                    "`{prefix}{name}`: more than {} {prefix}* keys",
                    values::MAX_FIELD_EDITS
                ),
            ));
        }
        self.field_keys.push(FieldKey {
            family,
            name: name.to_string(),
            setting: Setting {
                value: value.to_string(),
                origin,
            },
        });
        Ok(())
    }

    /// Applies `INVERSO_<KEY>` variables. Other variables are ignored.
    pub fn env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> &mut Self {
        for (var, value) in vars {
            let Some(rest) = var.strip_prefix("INVERSO_") else {
                continue;
            };
            // One spelling per key: with `INVERSO_port` beside `INVERSO_PORT`
            // the winner would depend on the environment's order.
            if rest != rest.to_ascii_uppercase() {
                log::warn!(
                    "{var}: environment keys are upper case (INVERSO_{}); ignored",
                    rest.to_ascii_uppercase()
                );
                continue;
            }
            let key = rest.to_ascii_lowercase();
            if let Some(family) = FieldFamily::named_at_start_of(&key) {
                log::warn!("{var}: {}; ignored", file_only(family, &key));
                continue;
            }
            let family = |f: &&str| {
                (key.strip_prefix(*f)).is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
            };
            if FILE_ONLY.iter().any(family) {
                log::warn!("{var}: {}; ignored", file_only_keys(&key));
                continue;
            }
            match find_key(&key) {
                Some(spec) => self.put(spec.name, value.trim(), Origin::Env(var.clone())),
                // Not an error: the environment is shared with other
                // programs. But a misspelt key should not vanish silently.
                None => log::warn!(
                    "{var}: {}; ignored",
                    unknown_key_message(&rest.to_ascii_lowercase())
                ),
            }
        }
        self
    }

    /// Applies a command-line override of one key.
    pub fn flag(&mut self, key: &str, value: &str, flag: &str) -> Result<&mut Self, ConfigError> {
        let origin = Origin::Flag(flag.to_string());
        if let Some((family, _)) = FieldFamily::of(key) {
            return Err(ConfigError::at(&origin, file_only(family, key)));
        }
        if FILE_ONLY
            .iter()
            .any(|f| key.strip_prefix(f).is_some_and(|k| k.starts_with('.')))
        {
            return Err(ConfigError::at(&origin, file_only_keys(key)));
        }
        let Some(spec) = find_key(key) else {
            return Err(ConfigError::at(&origin, unknown_key_message(key)));
        };
        self.put(spec.name, value.trim(), origin);
        Ok(self)
    }

    fn put(&mut self, key: &'static str, value: &str, origin: Origin) {
        self.settings.insert(
            key,
            Setting {
                value: value.to_string(),
                origin,
            },
        );
    }

    /// Every key with its effective value and origin, in key-table order.
    pub fn effective(&self) -> impl Iterator<Item = (&'static str, &Setting)> {
        KEYS.iter().map(|k| (k.name, &self.settings[k.name]))
    }

    /// Every `request_header.<Name>` and `response_header.<Name>` key (the
    /// family's prefix and the name as written) with its family, value
    /// and origin, in the file's order.
    pub fn field_settings(&self) -> impl Iterator<Item = (FieldFamily, String, &Setting)> {
        (self.field_keys.iter()).map(|k| {
            (
                k.family,
                format!("{}{}", k.family.prefix(), k.name),
                &k.setting,
            )
        })
    }

    /// The fields the keys of `family` set and remove, each checked where
    /// it came from: a name the proxy writes itself (the request's ID
    /// field among them), a value that is no field value.
    fn field_edits(&self, family: FieldFamily, config: &Config) -> Result<FieldEdits, ConfigError> {
        let keys = self.field_keys.iter().filter(|k| k.family == family);
        self.field_edits_of(family, keys, "", config)
    }

    /// [`Loader::field_edits`] of `keys` (all of `family`), whose names
    /// are shown after `scope` (`pool.api.` for a pool's).
    fn field_edits_of<'k>(
        &self,
        family: FieldFamily,
        keys: impl Iterator<Item = &'k FieldKey>,
        scope: &str,
        config: &Config,
    ) -> Result<FieldEdits, ConfigError> {
        let mut edits = Vec::new();
        for FieldKey { name, setting, .. } in keys {
            let refused = |message: String| {
                let key = format!("{scope}{}{name}", family.prefix());
                ConfigError::at(&setting.origin, format!("{key}: {message}"))
            };
            let value = values::parse_field_edit(family, name, &setting.value).map_err(refused)?;
            // As a backend that reads `_` as `-` would read a request's.
            let same = |id: &str| match family {
                FieldFamily::Request => id.eq_ignore_ascii_case(&name.replace('_', "-")),
                FieldFamily::Response => id.eq_ignore_ascii_case(name),
            };
            if config.request_id_header.as_deref().is_some_and(same) {
                return Err(refused(format!(
                    "{name} is request_id_header, which the proxy writes on {} itself",
                    family.messages()
                )));
            }
            // Its own redirects' Location would otherwise go out beside the
            // value set (two places to go), or be the one field a removal
            // leaves on a response.
            if family == FieldFamily::Response
                && config.redirect_to_https
                && name.eq_ignore_ascii_case("location")
            {
                return Err(refused(
                    "with redirect_to_https on, the proxy writes Location on its redirects itself"
                        .to_string(),
                ));
            }
            edits.push((name.clone(), value));
        }
        FieldEdits::new(edits).map_err(|message| ConfigError {
            place: self.file.clone(),
            message,
        })
    }

    /// `key: message`, placed where the value of `key` came from: for
    /// checks that span keys, after each key has parsed.
    fn refused(&self, key: &str, message: String) -> ConfigError {
        ConfigError::at(&self.settings[key].origin, format!("{key}: {message}"))
    }

    /// The cache's settings of `scope`, each pool's as the top level's
    /// (`top`, for a pool: what the top level was warned of already is
    /// not said again for each pool that takes it).
    fn check_cache(
        &self,
        config: &Config,
        scope: Scope<'_>,
        top: Option<&Config>,
    ) -> Result<(), ConfigError> {
        let uses_cache = |c: &Config| c.cache_size > 0 && c.cache;
        if !uses_cache(config) {
            return Ok(());
        }
        // The proxy takes its own cookie out of a request before the cache
        // sees it: listed, it would never bypass anything.
        if let Some(sticky) = config
            .sticky_cookie
            .as_deref()
            .filter(|name| config.cache_bypass_cookies.lists(name))
        {
            return Err(self.refused_in(
                scope,
                self.first_set_in(scope, &["cache_bypass_cookies", "sticky_cookie"]),
                format!(
                    "lists {sticky}, the sticky_cookie, which the proxy takes out of every request \
                     before the cache sees it: it would bypass nothing"
                ),
            ));
        }
        let key = self.first_set_in(
            scope,
            &[
                "cache_ignore_headers",
                "cache_valid",
                "cache_unlabeled",
                "cache",
            ],
        );
        let lifetimes = lifetimes_left(config).map_err(|m| self.refused_in(scope, key, m))?;
        let warned_at_top = |warning: &Option<String>, of: fn(&Config) -> Option<String>| {
            top.is_some_and(|top| uses_cache(top) && of(top) == *warning)
        };
        let ttl_caps = |c: &Config| c.cache_valid.capped_by(c.ttl);
        let warning = ttl_caps(config);
        if let Some(capped) = warning
            .as_ref()
            .filter(|_| !warned_at_top(&warning, ttl_caps))
        {
            let key = self.first_set_in(scope, &["cache_valid", "ttl"]);
            log::warn!("{}", self.refused_in(scope, key, capped.clone()));
        }
        if let Some(left) = lifetimes
            .as_ref()
            .filter(|_| !warned_at_top(&lifetimes, no_lifetime))
        {
            log::warn!("{}", self.refused_in(scope, key, left.clone()));
        }
        Ok(())
    }

    /// The cache's checks of `config`, read for a reload, with the
    /// `cache_size` that stays in force until a restart, `running`: a file
    /// that sets 0 leaves the cache on, with the rest of its settings,
    /// which its load did not check against a cache.
    pub fn check_cache_kept(&self, config: &Config, running: u64) -> Result<(), ConfigError> {
        if config.cache_size != 0 || running == 0 {
            return Ok(());
        }
        let kept = |c: &Config| Config {
            cache_size: running,
            ..c.clone()
        };
        let top = kept(config);
        self.check_cache(&top, Scope::Top, None)?;
        for pool in &config.pools {
            self.check_cache(&kept(&pool.config), Scope::Pool(&pool.name), Some(&top))?;
        }
        Ok(())
    }

    /// The TLS settings for the backends of `scope`, made (their files
    /// read) once a target of `config` has `tls`, or a file for them is
    /// named (so that `check` reads it), and shared by every pool with the
    /// same keys.
    fn backend_tls_for(&self, config: &mut Config, scope: Scope<'_>) -> Result<(), ConfigError> {
        let keys = &config.backend_tls_keys;
        let named = keys.ca.is_some() || keys.certificate.is_some();
        if config.backend_tls.is_some()
            || (!named && config.targets.iter().all(|t| t.tls.is_none()))
        {
            return Ok(());
        }
        let mut made = self.backend_tls.borrow_mut();
        if let Some((_, settings)) = made.iter().find(|(of, _)| of == keys) {
            config.backend_tls = Some(settings.clone());
            return Ok(());
        }
        if !keys.verify {
            let warn = |key, m: &str| log::warn!("{}", self.refused_in(scope, key, m.into()));
            warn(
                "backend_tls_verify",
                "is false: targets with tls are taken for whoever they say they are, and \
                 anyone on the way to them could read and change what they are sent",
            );
            if keys.ca.is_some() {
                warn("backend_tls_ca", "is not read: backend_tls_verify is false");
            }
        }
        let settings = crate::tls::backends::client_config(keys).map_err(|e| {
            let key = match e {
                crate::tls::trust::TrustError::Certificate(_) => "backend_tls_certificate",
                _ => "backend_tls_ca",
            };
            self.refused_in(scope, key, e.to_string())
        })?;
        made.push((keys.clone(), settings.clone()));
        config.backend_tls = Some(settings);
        Ok(())
    }

    /// `tls_port` and `tls_certificates` go together, and HTTPS has a port
    /// of its own; clients' certificates are asked for with authorities
    /// to check them against, and on `tls_port` alone. Makes the settings
    /// `tls_port` takes TLS with.
    fn check_tls(&self, config: &mut Config) -> Result<(), ConfigError> {
        use crate::tls::VerifyClient;
        let verify = config.tls_verify_client;
        if verify == VerifyClient::Off {
            for (key, set) in [
                ("tls_client_ca", config.tls_client_ca.is_some()),
                ("tls_client_crl", config.tls_client_crl.is_some()),
            ] {
                if set {
                    return Err(self.refused(
                        key,
                        "is set, but tls_verify_client is off: no client is asked for a \
                         certificate"
                            .into(),
                    ));
                }
            }
        } else if config.tls_client_ca.is_none() {
            return Err(self.refused(
                "tls_verify_client",
                "is set, but tls_client_ca is empty: there is no authority to check clients' \
                 certificates against"
                    .into(),
            ));
        }
        let Some(port) = config.tls_port else {
            let set_alone = [
                ("tls_protocols", config.tls_protocols != Default::default()),
                ("tls_strict_sni", config.tls_strict_sni),
            ];
            if let Some((key, _)) = set_alone.iter().find(|(_, set)| *set) {
                return Err(self.refused(
                    key,
                    "is set, but tls_port is not: nothing would take TLS".into(),
                ));
            }
            return match (&config.tls_served, verify) {
                (Some(_), _) => Err(self.refused(
                    "tls_certificates",
                    "is set, but tls_port is not: nothing would take TLS".into(),
                )),
                (None, VerifyClient::Off) => Ok(()),
                (None, _) => Err(self.refused(
                    "tls_verify_client",
                    "is set, but tls_port is not: clients show certificates over TLS alone".into(),
                )),
            };
        };
        let Some(served) = config.tls_served.clone() else {
            return Err(self.refused(
                "tls_port",
                "is set, but tls_certificates is empty: there is no certificate to serve".into(),
            ));
        };
        if port != 0 && port == config.port {
            return Err(self.refused("tls_port", format!("{port} is also `port`")));
        }
        let admin_shares = listeners_overlap(config.admin_bind, config.bind);
        if port != 0 && config.admin_port == Some(port) && admin_shares {
            return Err(self.refused("tls_port", format!("{port} is also `admin_port`")));
        }
        let client_auth = match (&config.tls_client_ca, verify) {
            (Some(ca), VerifyClient::Optional | VerifyClient::On) => {
                let crl = config.tls_client_crl.as_deref();
                let auth = crate::tls::ClientAuth::load(verify, ca, crl).map_err(|e| {
                    let of_crl = crl.is_some() && e.path() == crl;
                    let key = if of_crl {
                        "tls_client_crl"
                    } else {
                        "tls_client_ca"
                    };
                    self.refused(key, e.to_string())
                })?;
                Some(Arc::new(auth))
            }
            _ => None,
        };
        if config.tls_strict_sni {
            let nameless: Vec<&Path> = served.naming_no_host().collect();
            let why = |path: &Path| {
                format!(
                    "{} names no host (no DNS name among its subject alternative names): \
                     no client is given it",
                    path.display()
                )
            };
            if let (Some(first), true) =
                (nameless.first(), nameless.len() == served.files().count())
            {
                return Err(self.refused(
                    "tls_strict_sni",
                    format!(
                        "no certificate of tls_certificates names a host, so every client \
                             would be refused: {}",
                        why(first)
                    ),
                ));
            }
            for path in nameless {
                log::warn!("{}", self.refused("tls_strict_sni", why(path)));
            }
        }
        config.tls = Some(crate::tls::server_config(
            served,
            client_auth.as_deref(),
            config.tls_protocols,
            config.tls_strict_sni,
        ));
        config.tls_client_auth = client_auth;
        Ok(())
    }

    /// `auth_basic` and `auth_basic_user_file` go together: a realm with
    /// nobody to sign in would refuse every request, and a file without a
    /// realm would let every request through unchecked, which is worse
    /// than an error. A pool that turns the sign-in off
    /// (`pool.<name>.auth_basic = off`) may keep the top level's file.
    fn check_auth(&self, config: &Config, scope: Scope<'_>) -> Result<(), ConfigError> {
        // Keys that mean something only with `auth_request`.
        let with_auth_request = [
            (
                "auth_request_headers",
                !config.auth_request_headers.is_empty(),
                "no answer gives these fields",
            ),
            (
                "auth_request_cache",
                !config.auth_request_cache.is_zero(),
                "there is no answer to keep",
            ),
            (
                "auth_request_redirect",
                config.auth_request_redirect.is_some(),
                "no service answers 401",
            ),
        ];
        for (key, set, why) in with_auth_request {
            if config.auth_request.is_none() && set && self.sets(scope, key) {
                let why = format!("is set, but auth_request is off: {why}");
                return Err(self.refused_in(scope, key, why));
            }
        }
        // The redirect's Location would go out beside the one set (two
        // places to go), or be the one a removal leaves; a pool may take
        // either from the top level.
        if config.auth_request_redirect.is_some() && config.response_headers.edits(b"location") {
            return Err(self.refused_in(
                scope,
                "auth_request_redirect",
                "is on, and response_header.Location is set too: the proxy writes Location on \
                 its redirects itself"
                    .into(),
            ));
        }
        match (&config.auth_basic, &config.auth_users) {
            (Some(_), None) => Err(self.refused_in(
                scope,
                "auth_basic",
                "is on, but auth_basic_user_file is empty: nobody could sign in".into(),
            )),
            (None, Some(_)) if self.sets(scope, "auth_basic_user_file") => Err(self.refused_in(
                scope,
                "auth_basic_user_file",
                "is set, but auth_basic is off: every request would pass unchecked; set \
                 `auth_basic = <realm>` too"
                    .into(),
            )),
            (None, _)
                if !config.auth_basic_except_from.is_empty()
                    && self.sets(scope, "auth_basic_except_from") =>
            {
                Err(self.refused_in(
                    scope,
                    "auth_basic_except_from",
                    "is set, but auth_basic is off: nobody signs in to be spared it".into(),
                ))
            }
            (Some(_), _) if self.sets(scope, "auth_basic_except_from") => {
                self.warn_of_spared(config, scope);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Spared blocks that likely spare more than meant: every address,
    /// or a trusted proxy's own (its requests that name no client, a
    /// health check, are judged on its address).
    fn warn_of_spared(&self, config: &Config, scope: Scope<'_>) {
        let spared = &config.auth_basic_except_from;
        let why = if spared.iter().any(Cidr::is_everything) {
            "spares every client of an address family: nobody of it is asked to sign in".into()
        } else if let Some(proxy) = (config.real_ip_from.iter())
            .find(|proxy| spared.iter().any(|block| block.overlaps(proxy)))
        {
            format!(
                "shares addresses with real_ip_from ({proxy}): a request from that proxy \
                 that names no client (its own health check, say) is spared the sign-in"
            )
        } else {
            return;
        };
        log::warn!("{}", self.refused_in(scope, "auth_basic_except_from", why));
    }

    /// `redirect_to_https_except` means nothing without the redirect. The
    /// redirect without `real_ip_from` or `proxy_protocol` is warned about,
    /// not refused: no request can then be `https`, and every one is
    /// redirected, which behind a TLS terminator sends browsers round in a
    /// loop; but a listener whose only work is to redirect (the port 80
    /// beside a terminator that sends its HTTPS elsewhere, with the ACME
    /// challenges in `redirect_to_https_except` going to a backend) is
    /// what nginx's `server { listen 80; return 301 ...; }` is for.
    fn check_https_redirect(&self, config: &Config) -> Result<(), ConfigError> {
        if !config.redirect_to_https {
            if !config.redirect_to_https_except.is_empty() {
                return Err(self.refused(
                    "redirect_to_https_except",
                    "is set, but redirect_to_https is not: there is no redirect to except from"
                        .into(),
                ));
            }
            return Ok(());
        }
        if config.real_ip_from.is_empty() && !config.proxy_protocol && config.tls_port.is_none() {
            log::warn!(
                "{}: redirect_to_https: neither real_ip_from, proxy_protocol nor tls_port is set, so no \
                 request can be https: every request{} is redirected, and behind a TLS \
                 terminator the redirected ones come back to be redirected again, in a loop \
                 (list the terminator in real_ip_from: its X-Forwarded-Proto says https)",
                self.settings["redirect_to_https"].origin,
                match config.redirect_to_https_except.is_empty() {
                    true => "",
                    false => " but those redirect_to_https_except lists",
                }
            );
        }
        Ok(())
    }

    /// The checks of what one pool of backends is given: the top-level
    /// keys' (`scope`), or a `pool.<name>`'s.
    fn check_backends(&self, config: &Config, scope: Scope<'_>) -> Result<(), ConfigError> {
        // A target that is this proxy's own listener: the first request
        // would be forwarded to itself, again and again, until every
        // connection slot is taken.
        if config.port != 0 {
            if let Some(t) = target_at(config.listen_addr(), &config.targets) {
                return Err(self.refused_in(
                    scope,
                    "targets",
                    format!(
                        "{} is this proxy's own address (bind {}, port {}): requests would loop",
                        t.name, config.bind, config.port
                    ),
                ));
            }
        }
        // A probe is a GET or a connect alone; with both asked for, which
        // one was meant cannot be told.
        if let Some(path) = config
            .health_check_path
            .as_ref()
            .filter(|_| config.health_check_tcp)
        {
            // Where the path came from, when not from the file line the
            // message points at (an environment variable, a flag).
            let from = match (scope, &self.settings["health_check_path"].origin) {
                (Scope::Top, origin @ (Origin::Env(_) | Origin::Flag(_))) => {
                    format!(", from {origin}")
                }
                _ => String::new(),
            };
            return Err(self.refused_in(
                scope,
                "health_check_tcp",
                format!(
                    "is true, but health_check_path is set too ({}{from}): a target is probed \
                     one way; keep health_check_path for GET probes (which connect first), or \
                     empty it to probe by connecting alone",
                    printable(path)
                ),
            ));
        }
        // A probe inverso itself would answer 414.
        if let Some(path) = config
            .health_check_path
            .as_ref()
            .filter(|p| p.len() > config.max_uri_length)
        {
            return Err(self.refused_in(
                scope,
                "health_check_path",
                format!(
                    "{} bytes, longer than max_uri_length ({})",
                    path.len(),
                    config.max_uri_length
                ),
            ));
        }
        if config.targets.iter().all(|t| t.backup) {
            return Err(self.refused_in(
                scope,
                "targets",
                "every target is a backup: at least one must serve before the backups do".into(),
            ));
        }
        // Either alone means nothing: `hash` would have nothing to hash,
        // and another algorithm would not read the setting.
        match (config.balance, &config.hash_on) {
            (Balance::Hash, None) => {
                return Err(self.refused_in(
                    scope,
                    "balance",
                    "hash needs hash_on, what to hash: `header:<Name>`, `cookie:<name>` or \
                     `query:<name>` (e.g. `hash_on = header:X-Tenant`)"
                        .into(),
                ))
            }
            (balance, Some(on)) if balance != Balance::Hash => {
                return Err(self.refused_in(
                    scope,
                    "hash_on",
                    format!(
                        "is set ({on}), but balance = {}: only balance = hash reads it",
                        balance.name()
                    ),
                ))
            }
            _ => {}
        }
        // Plain round robin is one atomic increment and has no notion of
        // weight: a weight there would be silently ignored.
        if config.balance == Balance::RoundRobin {
            if let Some(t) = config.targets.iter().find(|t| t.weight != 1) {
                return Err(self.refused_in(
                    scope,
                    "targets",
                    format!(
                        "{} has weight={}, but balance = round_robin ignores weights (use weighted_round_robin, least_conn, ip_hash, uri_hash, hash or random_two)",
                        t.as_written(), t.weight
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Parses every value into a [`Config`], resolving target names.
    pub fn build(&self) -> Result<Config, ConfigError> {
        let mut config = Config::blank();
        for key in KEYS {
            let setting = &self.settings[key.name];
            (key.apply)(&mut config, &setting.value)
                .map_err(|m| ConfigError::at(&setting.origin, format!("{}: {m}", key.name)))?;
        }
        config.request_headers = self.field_edits(FieldFamily::Request, &config)?;
        config.response_headers = self.field_edits(FieldFamily::Response, &config)?;
        if config.targets.is_empty() {
            let setting = &self.settings["targets"];
            let place = match &setting.origin {
                Origin::Default => self.file.clone(),
                other => other.to_string(),
            };
            return Err(ConfigError {
                place,
                message: "targets: at least one backend is required, e.g. `targets = 127.0.0.1:9001, 127.0.0.1:9002`".to_string(),
            });
        }
        // Both listeners on one port: caught here rather than as a bind
        // error once `check` has said the configuration is fine (port 0
        // asks the system for a free port, a different one each).
        if config.admin_port == Some(config.port)
            && config.port != 0
            && listeners_overlap(config.admin_bind, config.bind)
        {
            return Err(self.refused("admin_port", format!("{} is also `port`", config.port)));
        }
        self.check_tls(&mut config)?;
        self.backend_tls_for(&mut config, Scope::Top)?;
        self.check_backends(&config, Scope::Top)?;
        // An object larger than the whole cache could never be stored: the
        // setting would silently mean less than it says.
        if let Some(max) = config
            .max_object_size
            .filter(|&m| config.cache_size > 0 && m > config.cache_size)
        {
            return Err(self.refused(
                "max_object_size",
                format!(
                    "{max} bytes is more than cache_size ({} bytes); an object larger than the cache cannot be stored",
                    config.cache_size
                ),
            ));
        }
        if let Some(why) = config.state_file_shared() {
            return Err(self.refused("state_file", why));
        }
        if let Some(why) = config.log_shares_snapshot() {
            return Err(self.refused("path_to_log", why));
        }
        self.check_https_redirect(&config)?;
        // The heads would be copied at every request and never written.
        if config.log_headers && matches!(config.log_format, LogFormat::Template(_)) {
            return Err(self.refused(
                "log_headers",
                "adds the heads to combined and json lines; a log_format template writes \
                 only what it names (a request field as $http_<name>)"
                    .into(),
            ));
        }
        if let Some((key, why)) = config.rate_limit_unlimited().first() {
            return Err(self.refused(key, why.to_string()));
        }
        if let Some(why) = config.rate_limit_key_unread() {
            return Err(self.refused("rate_limit_key", why));
        }
        self.check_cache(&config, Scope::Top, None)?;
        self.check_auth(&config, Scope::Top)?;
        config.rewrites = Arc::new(self.build_rewrites()?);
        self.build_pools(&mut config)?;
        Ok(config)
    }
}

/// With Cache-Control unread, a response is stored only for a lifetime
/// given to this cache: by `cache_valid` or `cache_unlabeled`, or by a
/// field still read (`Expires`, `X-Accel-Expires`, `Surrogate-Control`,
/// a targeted field). Without the first two, the setting is most likely
/// nginx's micro-caching recipe without its `proxy_cache_valid`: a
/// warning (`Ok(Some)`), since nginx users also ignore Cache-Control to
/// let X-Accel-Expires alone decide. With none at all, nothing could
/// ever be stored: refused (`Err`).
fn lifetimes_left(config: &Config) -> Result<Option<String>, String> {
    let ignored = &config.cache_ignore_headers;
    if !ignored.ignores("cache-control") || !config.cache_valid.is_empty() || config.cache_unlabeled
    {
        return Ok(None);
    }
    let targeting = config.cache_settings().targeting;
    let mut read: Vec<&str> = Vec::new();
    if !ignored.ignores("expires") {
        read.push("Expires");
    }
    if targeting.x_accel_expires {
        read.push("X-Accel-Expires");
    }
    if targeting.surrogate_id.is_some() {
        read.push("Surrogate-Control");
    }
    read.extend(targeting.fields.iter().map(|name| &**name));
    let recipe = "for micro-caching, set cache_valid (e.g. `cache_valid = 200 1s`)";
    if read.is_empty() {
        return Err(format!(
            "Cache-Control is not read, nor any field that could give a response a lifetime \
             instead, and neither cache_valid nor cache_unlabeled gives one: nothing would ever \
             be stored ({recipe}, or `cache = false` where nothing should be)"
        ));
    }
    Ok(Some(format!(
        "Cache-Control is not read, and neither cache_valid nor cache_unlabeled gives a \
         lifetime: only responses given one by {} are stored ({recipe})",
        read.join(", ")
    )))
}

/// [`lifetimes_left`]'s warning, if any.
fn no_lifetime(config: &Config) -> Option<String> {
    lifetimes_left(config).ok().flatten()
}

impl Config {
    /// Whether an answer of `status` goes unlogged: under a
    /// `log_skip_paths` prefix (`quiet_path`) and below 400, or of a
    /// status `log_skip_statuses` lists.
    pub fn log_skips(&self, quiet_path: bool, status: u16) -> bool {
        (quiet_path && status < 400)
            || (self.log_skip_statuses.iter()).any(|&(low, high)| (low..=high).contains(&status))
    }

    /// A config with every key at its default but no targets (which have
    /// none); for tests and embedders, who then set the fields they need.
    pub fn with_targets(targets: Vec<Target>) -> Config {
        let mut c = Config::blank();
        for key in KEYS {
            // Defaults are known to parse: a unit test checks every one.
            let _ = (key.apply)(&mut c, key.default);
        }
        c.targets = targets;
        c
    }

    /// The failures within its `fail_timeout` that take `target` out: its
    /// own `max_fails=N`, else the global key.
    pub fn max_fails_of(&self, target: &Target) -> u32 {
        target.max_fails.unwrap_or(self.max_fails)
    }

    /// `target`'s window for counting failures, and how long it stays out:
    /// its own `fail_timeout=D`, else the global key.
    pub fn fail_timeout_of(&self, target: &Target) -> Duration {
        target.fail_timeout.unwrap_or(self.fail_timeout)
    }

    fn blank() -> Config {
        Config {
            port: 0,
            bind: IpAddr::from([0, 0, 0, 0]),
            targets: Vec::new(),
            pools: Vec::new(),
            routes: Arc::default(),
            rewrites: Arc::default(),
            resolve_interval: None,
            cache_size: 0,
            ttl: Duration::ZERO,
            unit_time: Duration::from_secs(1),
            connection_timeout: Duration::from_secs(1),
            keepalive_timeout: None,
            connect_timeout: None,
            backend_timeout: None,
            tunnel_timeout: Duration::from_secs(1),
            path_to_persistence: None,
            path_to_log: None,
            error_pages: Default::default(),
            request_headers: FieldEdits::default(),
            response_headers: FieldEdits::default(),
            max_connections: 1,
            max_connections_per_client: 0,
            upstream_keepalive: 0,
            shutdown_timeout: Duration::ZERO,
            batch_scheduling: false,
            worker_priority: None,
            defer_accept: true,
            reuse_port: false,
            max_object_size: None,
            cache: true,
            intercept_errors: false,
            cache_unlabeled: false,
            cache_valid: Arc::default(),
            cache_ignore_headers: Default::default(),
            stale_if_error: Duration::ZERO,
            stale_while_revalidate: Duration::ZERO,
            surrogate_id: None,
            x_accel_expires: false,
            surrogate_keys: false,
            ignore_client_cache_control: false,
            cache_bypass_cookies: Default::default(),
            cache_key_ignore_params: Default::default(),
            targeted_cache_control: Arc::from([]),
            balance: Balance::RoundRobin,
            hash_on: None,
            max_fails: 0,
            fail_timeout: Duration::from_secs(1),
            retries: None,
            retry_on_status: Default::default(),
            slow_start: Duration::ZERO,
            health_check_path: None,
            health_check_tcp: false,
            health_check_host: None,
            health_check_expect_status: Arc::from([]),
            health_check_expect_body: None,
            health_check_interval: Duration::from_secs(1),
            health_check_timeout: None,
            health_check_rise: 1,
            health_check_fall: 1,
            admin_port: None,
            tls_port: None,
            tls_certificates: Vec::new(),
            tls_served: None,
            tls_verify_client: Default::default(),
            tls_protocols: Default::default(),
            tls_strict_sni: false,
            tls_client_ca: None,
            tls_client_crl: None,
            tls_client_auth: None,
            tls: None,
            backend_tls_keys: Default::default(),
            backend_tls: None,
            admin_bind: IpAddr::from([127, 0, 0, 1]),
            state_file: None,
            log_format: LogFormat::Combined,
            log_headers: false,
            log_skip_paths: Default::default(),
            log_skip_statuses: Arc::from([]),
            via: true,
            cache_min_uses: 1,
            cache_status: None,
            gzip: false,
            gzip_types: Default::default(),
            gzip_min_length: 0,
            gzip_comp_level: 1,
            request_id_header: None,
            sticky_cookie: None,
            rate_limit: None,
            rate_limit_burst: None,
            mirror: None,
            rate_limit_key: None,
            max_header_size: 0,
            max_headers: 0,
            max_uri_length: 0,
            underscores_in_headers: false,
            real_ip_from: Vec::new(),
            proxy_protocol: false,
            redirect_to_https: false,
            redirect_to_https_except: Default::default(),
            allow_from: Vec::new(),
            deny_from: Vec::new(),
            auth_basic: None,
            auth_users: None,
            auth_basic_except_from: Vec::new(),
            auth_request: None,
            auth_request_headers: Arc::from([]),
            auth_request_cache: Duration::ZERO,
            auth_request_redirect: None,
            admin_auth_users: None,
            max_body_size: 0,
            pacing: crate::pace::Pacing::OFF,
            request_buffer_size: 0,
            response_buffer_size: 0,
            client_header_timeout: Duration::from_secs(1),
            client_body_timeout: Duration::from_secs(1),
            keepalive_requests: 0,
            log_to_stdout: true,
        }
    }

    /// The settings of each pool of backends: these for `targets`, then
    /// each `pool.<name>`'s.
    pub fn pool_configs(&self) -> impl Iterator<Item = &Config> {
        std::iter::once(self).chain(self.pools.iter().map(|p| &p.config))
    }

    /// Every target of every pool.
    pub fn all_targets(&self) -> impl Iterator<Item = &Target> {
        self.pool_configs().flat_map(|c| c.targets.iter())
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// Other targets tried after a failure: `retries`, or by default
    /// every other target.
    pub fn effective_retries(&self) -> usize {
        self.retries.unwrap_or(self.targets.len().saturating_sub(1))
    }

    /// The longest opening a backend connection may take.
    pub fn effective_connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(self.connection_timeout)
    }

    /// How long a client connection may wait for its next request.
    pub fn effective_keepalive_timeout(&self) -> Duration {
        self.keepalive_timeout.unwrap_or(self.connection_timeout)
    }

    pub fn effective_backend_timeout(&self) -> Duration {
        self.backend_timeout.unwrap_or(self.connection_timeout)
    }

    /// Resumes the TLS sessions `was` made, when it serves the same
    /// certificates and checks clients' own alike (see
    /// [`crate::tls::sessions_carry_over`]): a reload that changes
    /// nothing else loses no session.
    pub fn keep_tls_sessions_of(&mut self, was: &Config) {
        let (Some(next), Some(old)) = (&self.tls, &was.tls) else {
            return;
        };
        let (Some(served), Some(was_served)) = (&self.tls_served, &was.tls_served) else {
            return;
        };
        let carry = crate::tls::sessions_carry_over(
            (was_served, was.tls_client_auth.as_deref()),
            (served, self.tls_client_auth.as_deref()),
        );
        if carry {
            self.tls = Some(crate::tls::with_sessions_of(next, old));
        }
    }

    /// How long a whole probe may take.
    pub fn effective_health_check_timeout(&self) -> Duration {
        self.health_check_timeout.unwrap_or_else(|| {
            self.effective_backend_timeout()
                .min(self.health_check_interval)
        })
    }

    /// The cache rules these settings give (`ttl` and friends can change
    /// on reload; the cache's size cannot).
    pub fn cache_settings(&self) -> crate::cache::policy::Settings {
        crate::cache::policy::Settings {
            ttl: self.ttl,
            cache_unlabeled: self.cache_unlabeled,
            stale_if_error: self.stale_if_error,
            stale_while_revalidate: self.stale_while_revalidate,
            targeting: self
                .cache_ignore_headers
                .targeting(crate::cache::policy::Targeting {
                    surrogate_id: self.surrogate_id.clone(),
                    x_accel_expires: self.x_accel_expires,
                    fields: self.targeted_cache_control.clone(),
                    surrogate_keys: self.surrogate_keys,
                }),
            cache_valid: self.cache_valid.clone(),
            ignored: self.cache_ignore_headers,
            never_stored: (400..=599).filter(|&s| self.intercepts(s)).collect(),
            rendered_fields: (self.request_headers.rendered_names())
                .chain(self.request_id_header.as_deref().map(Box::from))
                .collect(),
        }
    }

    /// Why `state_file` may not be the file it is: another writer's, which
    /// rewrites it whole (the snapshot's, the log's), so that each would
    /// overwrite the other. Checked again at a reload, with the
    /// `path_to_persistence` kept until a restart.
    pub fn state_file_shared(&self) -> Option<String> {
        let state_file = self.state_file.as_deref()?;
        let others = [
            ("path_to_persistence", &self.path_to_persistence),
            ("path_to_log", &self.path_to_log),
        ];
        let (key, _) = (others.iter())
            .find(|(_, p)| p.as_deref().is_some_and(|p| same_file(p, state_file)))?;
        Some(format!(
            "{} is also {key}: each needs a file of its own",
            state_file.display()
        ))
    }

    /// Why `path_to_log` may not be the file it is: the snapshot's, which
    /// every snapshot is renamed over (the log's lines then go on into a
    /// file no longer on disk), and which a reopen would append lines to.
    /// Checked again at a reload, with the `path_to_persistence` and
    /// `cache_size` kept until a restart.
    pub fn log_shares_snapshot(&self) -> Option<String> {
        let log = self.path_to_log.as_deref()?;
        let snapshot = (self.path_to_persistence.as_deref()).filter(|_| self.cache_size > 0)?;
        same_file(log, snapshot).then(|| {
            format!(
                "{} is also path_to_persistence: each needs a file of its own",
                log.display()
            )
        })
    }

    /// Whether access-log records name the pool a request went to: the
    /// combined and JSON lines do with pools defined, a template that
    /// writes `$pool` always.
    pub fn logs_pool(&self) -> bool {
        !self.pools.is_empty()
            || matches!(&self.log_format, LogFormat::Template(t) if t.names_pool())
    }

    /// Whether `client` (as the access lists see it) is spared
    /// `auth_basic` by `auth_basic_except_from`.
    pub fn spares_auth(&self, client: IpAddr) -> bool {
        (self.auth_basic_except_from.iter()).any(|block| block.contains(client))
    }

    /// Whether a backend's answer with `status` goes to the client as the
    /// `error_pages` page for it (`intercept_errors`): not one whose
    /// fields the client needs (a 401's challenge, a 405's `Allow`).
    pub fn intercepts(&self, status: u16) -> bool {
        self.intercept_errors
            && status >= 400
            && crate::http::head::required_field(status).is_none()
            && self.error_pages.get(status).is_some()
    }

    /// The keys that say how requests are limited set without the rate
    /// they would go with, and what is wrong with each.
    fn rate_limit_unlimited(&self) -> Vec<(&'static str, &'static str)> {
        let mut wrong = Vec::new();
        if self.rate_limit.is_some() {
            return wrong;
        }
        if self.rate_limit_burst.is_some() {
            wrong.push((
                "rate_limit_burst",
                "is set, but rate_limit is not: without a rate there is no burst",
            ));
        }
        if self.rate_limit_key.is_some() {
            wrong.push((
                "rate_limit_key",
                "is set, but rate_limit is not: without a rate nothing is limited",
            ));
        }
        wrong
    }

    /// Why `rate_limit_key` cannot be read where the limit is counted: it
    /// names what the proxy itself replaces or takes out of a request
    /// before that, so that a client's own value would be counted.
    fn rate_limit_key_unread(&self) -> Option<String> {
        use crate::http::forward::is_proxy_owned;
        use crate::http::headers::read_alike;
        use crate::upstream::hash_on::HashOn;
        self.rate_limit?;
        let counted = "after the limit is counted: the client's own would be counted (any value \
                       it likes), not what the backend gets";
        match self.rate_limit_key.as_ref()? {
            HashOn::Header(name) => {
                let dashed = name.replace('_', "-");
                let edited = |n: &str| self.request_headers.edits(n.as_bytes());
                // Fields one value is spelled many ways in (a scheme in
                // any case, spaces, padding; a host in any case): each
                // spelling would be a bucket.
                let spelled_freely = ["authorization", "proxy-authorization", "host", "cookie"];
                if spelled_freely
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(&dashed))
                {
                    return Some(format!(
                        "names {name}, whose one value a client may spell in many ways (each \
                         a bucket of its own); key on a field of the application's own \
                         (header:X-Api-Key) or a cookie (cookie:<name>)"
                    ));
                }
                let why = if name.contains('_') && !self.underscores_in_headers {
                    "is dropped from every request (underscores_in_headers is off)"
                } else if is_proxy_owned(&dashed) {
                    "is one the proxy writes itself, in place of the client's,"
                } else if edited(name) || edited(&dashed) {
                    "is set or removed by request_header,"
                } else if (self.auth_request_headers.iter())
                    .any(|f| read_alike(f.as_bytes(), name.as_bytes()))
                {
                    "is taken from the sign-in service by auth_request_headers (or removed),"
                } else {
                    return None;
                };
                Some(format!("names {name}, which {why} {counted}"))
            }
            HashOn::Cookie(name) if self.sticky_cookie.as_deref() == Some(&**name) => {
                Some(format!(
                "names {name}, the sticky_cookie, which is taken out of a request {counted}, and \
                 says which target serves a client, not who it is"
            ))
            }
            HashOn::Cookie(name) if self.request_headers.edits(b"cookie") => Some(format!(
                "names the cookie {name}, but request_header.Cookie sets or removes the \
                 client's cookies {counted}"
            )),
            _ => None,
        }
    }

    /// The rate limit and its burst, when one is set.
    pub fn effective_rate_limit(&self) -> Option<(Rate, u32)> {
        self.rate_limit
            .map(|rate| (rate, self.rate_limit_burst.unwrap_or(rate.one_second())))
    }

    /// The HTTPS listener's address, when it is on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_port.map(|port| SocketAddr::new(self.bind, port))
    }

    /// The admin listener's address, when it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_port
            .map(|port| SocketAddr::new(self.admin_bind, port))
    }

    /// The largest body the cache stores.
    pub fn effective_max_object_size(&self) -> u64 {
        self.max_object_size.unwrap_or(self.cache_size / 8)
    }
}

/// The target that is the listener at `listen` (this proxy's own), if
/// any: a request forwarded there comes back, again and again, until every
/// connection slot is taken.
pub fn target_at(listen: SocketAddr, targets: &[Target]) -> Option<&Target> {
    // A Unix socket is never the TCP listener.
    (targets.iter()).find(|t| t.addr.tcp().is_some_and(|addr| is_listener(listen, addr)))
}

/// Whether listeners on `a` and `b` at one port take the same
/// connections (the second could not be bound): one address, or a
/// wildcard of the other's family (`::` takes IPv4 too, see `bind`).
fn listeners_overlap(a: IpAddr, b: IpAddr) -> bool {
    let (a, b) = (a.to_canonical(), b.to_canonical());
    let covers = |w: IpAddr, x: IpAddr| w.is_unspecified() && (w.is_ipv6() || x.is_ipv4());
    a == b || covers(a, b) || covers(b, a)
}

/// Whether connecting to `addr` reaches the listener at `listen`.
pub fn is_listener(listen: SocketAddr, addr: SocketAddr) -> bool {
    let bind = listen.ip().to_canonical();
    let local = bind.is_loopback() || bind.is_unspecified();
    let ip = addr.ip().to_canonical();
    // An IPv4 listener is never reached over IPv6, nor one on an IPv6
    // address over IPv4; `::` takes both (see `bind`).
    let reached =
        bind.is_ipv4() == ip.is_ipv4() || bind == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
    addr.port() == listen.port()
        && reached
        && (ip == bind
            || (bind.is_unspecified() && ip.is_loopback())
            // Connecting to 0.0.0.0 or :: reaches this host.
            || (ip.is_unspecified() && local))
}

/// A configuration is a few dozen lines; anything this large is some other
/// file (or /dev/zero), refused before it fills the memory.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn read_config_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    // A FIFO would hang `check`, or a SIGHUP's reload and with it the
    // signal thread: only a regular file is read.
    crate::cache::persist::open_regular(path)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_BYTES} bytes: not a configuration file"),
        ));
    }
    Ok(text)
}

/// Reads a configuration the way the binary does: the file (if `path` is
/// given it must exist; the default `proxy.conf` may be absent), then the
/// environment, then flags `(key, value, flag name)`.
pub fn load(
    path: &Path,
    path_is_explicit: bool,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &[(&str, String, &str)],
) -> Result<(Config, Loader), ConfigError> {
    let mut loader = Loader::new();
    let name = path.display().to_string();
    match read_config_file(path) {
        Ok(text) => {
            loader.file(&name, &text)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path_is_explicit => {
            log::info!("{name} not found; using defaults, environment and flags");
        }
        Err(e) => {
            return Err(ConfigError {
                place: name,
                message: format!("cannot read: {e}"),
            })
        }
    }
    loader.env(env);
    for (key, value, flag) in flags {
        loader.flag(key, value, flag)?;
    }
    let config = loader.build()?;
    Ok((config, loader))
}

/// Whether two paths name one file: as written, once relative ones are
/// taken from the working directory (`./cache.bin` is `cache.bin`), or as
/// the system resolves them (links, `..`): the file, or for one not made
/// yet (a first start), its directory, with its name.
fn same_file(a: &Path, b: &Path) -> bool {
    let absolute = |p: &Path| match std::env::current_dir() {
        Ok(cwd) => cwd.join(p),
        Err(_) => p.to_path_buf(),
    };
    let resolved = |p: &Path| {
        std::fs::canonicalize(p).ok().or_else(|| {
            let name = p.file_name()?;
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            Some(
                std::fs::canonicalize(dir.unwrap_or(Path::new(".")))
                    .ok()?
                    .join(name),
            )
        })
    };
    absolute(a).components().eq(absolute(b).components())
        || matches!((resolved(a), resolved(b)), (Some(a), Some(b)) if a == b)
}

/// `#` starts a comment anywhere on a line (values never contain `#`).
fn strip_comment(line: &str) -> &str {
    line.split_once('#').map_or(line, |(before, _)| before)
}

/// The families of keys named after a dot (`pool.api`, `route./api/`,
/// `rewrite.old-blog`) that only the file holds, where they stand in
/// order; an environment variable's name cannot spell their `.` and `/`
/// either. (The field families have their own message: [`file_only`].)
const FILE_ONLY: [&str; 3] = ["pool", "route", "rewrite"];

/// Why a key of [`FILE_ONLY`] given elsewhere than in the file is not
/// taken.
fn file_only_keys(key: &str) -> String {
    format!(
        "`{}`: pool.*, route.* and rewrite.* keys are read from the configuration file only",
        key.escape_debug()
    )
}

/// Why a `request_header.*` or `response_header.*` key given elsewhere
/// than in the file is not taken.
fn file_only(family: FieldFamily, key: &str) -> String {
    format!(
        "`{}`: {}<Field-Name> keys are read from the configuration file only, \
         where they stand together, one line per field (an environment variable's name \
         cannot spell their `.` and `-` either)",
        key.escape_debug(),
        family.prefix()
    )
}

/// The families of [`FILE_ONLY`]: what follows the dot, what a key of
/// each is set to, what one key stands for, and what the dot needs, for
/// a key written without it (`pool = 10.0.0.5:80`).
const NAMED_AFTER_A_DOT: [(&str, &str, &str, &str, &str); 3] = [
    ("pool", "<name>", "host:port, ...", "pool", "a name"),
    (
        "route",
        "<host><path>",
        "<pool>",
        "route",
        "a host, a path or both",
    ),
    (
        "rewrite",
        "<name>",
        "<pattern> <replacement> [<flag>] [host=<hosts>]",
        "rule",
        "a name",
    ),
];

fn unknown_key_message(key: &str) -> String {
    // A key is a short word: anything long is garbage, shown cut and not
    // compared (the edit distance is quadratic).
    const SHOWN: usize = 64;
    if key.len() > SHOWN {
        let cut = (0..=SHOWN)
            .rev()
            .find(|&i| key.is_char_boundary(i))
            .unwrap_or(0);
        return format!(
            "unknown key `{}...` ({} bytes)",
            key[..cut].escape_debug(),
            key.len()
        );
    }
    let key = key.escape_debug().to_string();
    let key = key.as_str();
    // The families' names without their dot, candidates among the keys:
    // a key with a dot can only be a member of one (no other key has a
    // dot), misspelt before the name after the dot.
    let families = FieldFamily::ALL.map(|f| (f.name(), f));
    let family_named = |name: &str| families.iter().find(|(n, _)| *n == name).map(|(_, f)| *f);
    if let Some((prefix, rest)) = key.split_once('.') {
        let names = (families.iter().map(|(name, _)| *name)).chain(FILE_ONLY);
        let nearest = nearest_to(prefix, key.len(), names).filter(|_| !rest.is_empty());
        return match nearest {
            Some(name) => format!("unknown key `{key}` (did you mean `{name}.{rest}`?)"),
            None => format!("unknown key `{key}`"),
        };
    }
    let named = |name: &str| NAMED_AFTER_A_DOT.iter().find(|n| n.0 == name);
    if let Some((family, spec, value, one, needs)) = named(key) {
        return format!("`{family}` needs {needs}: `{family}.{spec} = {value}`, one key per {one}");
    }
    if let Some(f) = family_named(key) {
        let (set, remove) = f.examples();
        let prefix = f.prefix();
        return format!(
            "`{key}` needs a field name: `{prefix}{set}` sets that field on {}, \
             `{prefix}{remove}` removes it",
            f.messages()
        );
    }
    let names = (KEYS.iter().map(|k| k.name)).chain(families.iter().map(|(name, _)| *name));
    // A family only when nearer than any key: `prot` is `port`, not `pool`.
    let near_key = nearest(key, names);
    let near_family = nearest(key, FILE_ONLY).filter(|family| {
        near_key.is_none_or(|near| edit_distance(key, family) < edit_distance(key, near))
    });
    let Some(name) = near_family.or(near_key) else {
        return format!("unknown key `{key}`");
    };
    match (named(name), family_named(name)) {
        (Some((family, spec, _, one, _)), _) => {
            format!("unknown key `{key}` (did you mean `{family}.{spec}`, one key per {one}?)")
        }
        (None, Some(f)) => format!(
            "unknown key `{key}` (did you mean `{}<Field-Name>`, one key per field?)",
            f.prefix()
        ),
        (None, None) => format!("unknown key `{key}` (did you mean `{name}`?)"),
    }
}

/// The name among `names` that `word` most likely misspells, for a "did
/// you mean" hint; none when each is too far from it.
pub(crate) fn nearest<'a>(word: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    nearest_to(word, word.len(), names)
}

/// [`nearest`], with closeness judged against `len` bytes rather than the
/// word's own length: the part of a key before its dot is judged by the
/// whole key's.
fn nearest_to<'a>(
    word: &str,
    len: usize,
    names: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Not when most of a short word would have to change (`foo` is no
    // misspelt `port`).
    let close = |d: usize, name: &str| d <= 3.max(name.len() / 4) && 2 * d <= len.min(name.len());
    names
        .into_iter()
        .map(|name| (edit_distance(word, name), name))
        .min()
        .filter(|(d, name)| close(*d, name))
        .map(|(_, name)| name)
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca.to_ascii_lowercase() != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> Result<Config, ConfigError> {
        Loader::new().file("proxy.conf", text)?.build()
    }

    #[test]
    fn every_default_parses() {
        let mut c = Config::blank();
        for key in KEYS {
            assert_eq!((key.apply)(&mut c, key.default), Ok(()), "{}", key.name);
        }
    }

    #[test]
    fn reads_keys_comments_and_blank_lines() {
        let c = build(
            "# a comment\n\nport = 9000\nbalance = least_conn\ntargets = 127.0.0.1:1, [::1]:2 weight=3 # trailing\ncache_size = 2MiB\nttl = 90s\npath_to_persistence =\n",
        )
        .unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.targets[1].weight, 3);
        assert_eq!(c.targets[1].addr.tcp(), "[::1]:2".parse().ok());
        assert_eq!(c.cache_size, 2 << 20);
        assert_eq!(c.ttl, Duration::from_secs(90));
        assert_eq!(c.path_to_persistence, None);
        assert_eq!(c.connection_timeout, Duration::from_secs(30));
        assert_eq!(c.path_to_log, None);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_key() {
        let c = build("\u{feff}targets = 127.0.0.1:1\nport = 81\n").unwrap();
        assert_eq!(c.port, 81);
    }

    #[test]
    fn odd_keys_are_shown_escaped_and_long_ones_cut() {
        let e = build("targets = 127.0.0.1:1\npo\0rt = 1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:2: unknown key `po\\0rt` (did you mean `port`?)"
        );
        let long = "k".repeat(100_000);
        let e = build(&format!("targets = 127.0.0.1:1\n{long} = 1\n")).unwrap_err();
        assert!(e.message.len() < 200, "{}", e.message);
        assert!(e.message.contains("100000 bytes"), "{}", e.message);
    }

    #[test]
    fn a_file_only_family_without_its_dot_is_hinted_at_never_another_key() {
        for (line, says) in [
            (
                "pool = 127.0.0.1:2",
                "proxy.conf:2: `pool` needs a name: `pool.<name> = host:port, ...`, one key per pool",
            ),
            (
                "route = api",
                "proxy.conf:2: `route` needs a host, a path or both: `route.<host><path> = <pool>`, \
                 one key per route",
            ),
            (
                "pools = 127.0.0.1:2",
                "proxy.conf:2: unknown key `pools` (did you mean `pool.<name>`, one key per pool?)",
            ),
            (
                "routes = api",
                "proxy.conf:2: unknown key `routes` (did you mean `route.<host><path>`, one key \
                 per route?)",
            ),
            (
                "rout = api",
                "proxy.conf:2: unknown key `rout` (did you mean `route.<host><path>`, one key \
                 per route?)",
            ),
            ("prot = 1", "proxy.conf:2: unknown key `prot` (did you mean `port`?)"),
        ] {
            let e = build(&format!("targets = 127.0.0.1:1\n{line}\n")).unwrap_err();
            assert_eq!(e.to_string(), says, "{line}");
        }
        // The same from the command line, where `--set pool=...` is as
        // easily written.
        let e = Loader::new()
            .flag("pool", "127.0.0.1:2", "--set")
            .unwrap_err();
        assert!(e.message.starts_with("`pool` needs a name"), "{e}");
    }

    #[test]
    fn errors_name_the_line() {
        let e = build("targets = 127.0.0.1:1\n\nport = http\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.contains("port"), "{e}");

        let e = build("targets = 127.0.0.1:1\nprot = 80\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:2: unknown key `prot` (did you mean `port`?)"
        );
        let e = build("targets = 127.0.0.1:1\nfoo = 80\n").unwrap_err();
        assert_eq!(e.to_string(), "proxy.conf:2: unknown key `foo`");

        let e = build("targets = 127.0.0.1:1\nport = 1\n# x\nport = 2\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:4");
        assert!(e.message.contains("duplicate"));

        let e = build("port 80\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:1");

        let e = build("port = 80\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf");
        assert!(e.message.contains("targets"));

        let e = build("targets = 127.0.0.1:1\nunit_time = 0\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        for bad in ["127.0.0.1", "[::1]", "[2001:db8::1]"] {
            let e = build(&format!("targets = {bad}\n")).unwrap_err();
            assert!(e.message.contains("needs a port"), "{bad}: {e}");
        }
        let e = build("targets = 127.0.0.1:1 weight=0\n").unwrap_err();
        assert!(e.message.contains("weight"), "{e}");
        let e = build("targets = 127.0.0.1:1,,127.0.0.1:2\n").unwrap_err();
        assert!(e.message.contains("empty entry"), "{e}");
        let e = build("targets = no-such-host.invalid:80\n").unwrap_err();
        assert!(e.message.contains("does not resolve"), "{e}");
        let e = build("targets = 127.0.0.1:1 weight=2 weight=3\n").unwrap_err();
        assert!(e.message.contains("weight given twice"), "{e}");
        let c = build("targets = 127.0.0.1:1 max_conns=8 backup, 127.0.0.1:2\n").unwrap();
        assert_eq!(
            c.targets.iter().map(|t| t.max_conns).collect::<Vec<_>>(),
            [Some(8), None]
        );
        for bad in [
            "max_conns=0",
            "max_conns=x",
            "max_conns=1 max_conns=2",
            "maxconn=3",
        ] {
            let e = build(&format!("targets = 127.0.0.1:1 {bad}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:1", "{bad}");
        }
        let c = build("targets = 127.0.0.1:1, 127.0.0.1:2 backup\n").unwrap();
        assert_eq!(
            c.targets.iter().map(|t| t.backup).collect::<Vec<_>>(),
            [false, true]
        );
        let e = build("targets = 127.0.0.1:1, 127.0.0.1:2 backup backup\n").unwrap_err();
        assert!(e.message.contains("backup given twice"), "{e}");
        let e = build("targets = 127.0.0.1:1 backup\n").unwrap_err();
        assert!(e.message.contains("every target is a backup"), "{e}");
        let e = build("targets = 127.0.0.1:1 spare\n").unwrap_err();
        assert!(
            e.message
                .contains("expected weight=N, max_conns=N or backup"),
            "{e}"
        );
        // One backend under two names.
        let e = build("targets = 127.0.0.1:1, 127.0.0.1:01\n").unwrap_err();
        assert!(e.message.contains("listed twice"), "{e}");
        // Spellings that would be read some other way than meant.
        for (target, says) in [
            ("http://127.0.0.1:80/", "without a scheme (`127.0.0.1:80`)"),
            (
                "https://127.0.0.1:8443",
                "`tls` for HTTPS (`127.0.0.1:8443 tls`)",
            ),
            (
                "https://localhost/",
                "`tls` for HTTPS (`localhost:443 tls`)",
            ),
            ("::1:80", "as `[::1]:80`"),
            ("[127.0.0.1]:80", "not an IPv6 address in brackets"),
            ("[::1:80", "not an IPv6 address in brackets"),
            ("127.0.0.1:+80", "not a whole number"),
        ] {
            let e = build(&format!("targets = {target}\n")).unwrap_err();
            assert!(e.message.contains(says), "{target}: {e}");
        }
        assert!(build("port = +80\ntargets = 127.0.0.1:1\n").is_err());
        // TLS: checked for the host as written, or for tls_name=.
        let c = build("targets = localhost:1 tls, 127.0.0.1:2 tls tls_name=api.test\n").unwrap();
        let names: Vec<_> = (c.targets.iter())
            .map(|t| t.tls.as_ref().map(|n| n.to_str().into_owned()))
            .collect();
        assert_eq!(names, [Some("localhost".into()), Some("api.test".into())]);
        assert!(c.backend_tls.is_some());
        assert!(build("targets = 127.0.0.1:1\n")
            .unwrap()
            .backend_tls
            .is_none());
        for (targets, says) in [
            ("127.0.0.1:1 tls_name=a.test", "add `tls`"),
            ("127.0.0.1:1 tls tls", "tls given twice"),
            (
                "127.0.0.1:1 tls tls_name=a.test tls_name=b.test",
                "tls_name given twice",
            ),
            ("127.0.0.1:1 tls tls_name=no_such^name", "not a host name"),
            ("unix:/run/app.sock tls", "not supported"),
        ] {
            let e = build(&format!("targets = {targets}\n")).unwrap_err();
            assert!(e.message.contains(says), "{targets}: {e}");
        }
        assert_eq!(
            build("worker_priority = -5\ntargets = 127.0.0.1:1\n")
                .unwrap()
                .worker_priority,
            Some(-5)
        );
    }

    #[test]
    fn the_admin_listener_cannot_share_the_proxy_port() {
        let e = build("targets = 127.0.0.1:1\nport = 9000\nadmin_port = 9000\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        // Distinct addresses on one port are fine.
        let c = build("targets = 127.0.0.1:1\nbind = 127.0.0.2\nport = 9000\nadmin_port = 9000\n")
            .unwrap();
        assert_eq!(c.admin_port, Some(9000));
        // A wildcard takes its family's addresses (`::` both families).
        for (bind, admin, overlap) in [
            ("0.0.0.0", "127.0.0.1", true),
            ("::", "127.0.0.1", true),
            ("0.0.0.0", "::", true),
            ("::1", "::", true),
            ("::ffff:127.0.0.1", "127.0.0.1", true),
            ("0.0.0.0", "::1", false),
            ("::1", "0.0.0.0", false),
            ("::1", "127.0.0.1", false),
        ] {
            let text = format!(
                "targets = 127.0.0.1:1\nbind = {bind}\nport = 9000\n\
                 admin_bind = {admin}\nadmin_port = 9000\n"
            );
            assert_eq!(build(&text).is_err(), overlap, "{bind} and {admin}");
        }
    }

    #[test]
    fn errors_show_values_printable_and_bounded() {
        let e = build("targets = 127.0.0.1:1\nttl = 5\u{1b}[31m\n").unwrap_err();
        let shown = e.to_string();
        assert!(
            !shown.contains('\u{1b}') && shown.contains("\\u{1b}"),
            "{shown}"
        );
        let long = format!(
            "targets = 127.0.0.1:1\nlog_format = {}\n",
            "x".repeat(100_000)
        );
        assert!(build(&long).unwrap_err().to_string().len() < 400);
    }

    #[test]
    fn a_bad_unix_target_is_refused_at_its_line() {
        let long = format!("/{}", "s".repeat(values::max_unix_path()));
        let too_long = format!("# long\ntargets = unix:{long} weight=2\n");
        for (text, says) in [
            ("port = 9000\n\ntargets = unix:\n", "has no path"),
            ("targets = 127.0.0.1:1, unix:/run/a\0b.sock\n", "NUL"),
            (too_long.as_str(), "at most"),
        ] {
            let e = build(text).unwrap_err();
            let line = text.lines().position(|l| l.starts_with("targets")).unwrap() + 1;
            assert_eq!(e.place, format!("proxy.conf:{line}"), "{text:?}: {e}");
            assert!(e.message.starts_with("targets: target `unix:"), "{e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_unix_target_is_never_the_proxy_itself() {
        // Whatever its path says, it is not the TCP listener.
        let c = build("port = 9000\ntargets = unix:127.0.0.1:9000, unix:/run/9000.sock\n").unwrap();
        assert_eq!(c.targets.len(), 2);
        assert_eq!(target_at(c.listen_addr(), &c.targets), None);
    }

    #[test]
    fn a_target_that_is_the_proxy_itself_is_refused() {
        for text in [
            "port = 9000\ntargets = 127.0.0.1:9000\n",
            "port = 9000\nbind = 127.0.0.2\ntargets = 127.0.0.2:9000\n",
            "port = 9000\ntargets = 127.0.0.1:9001, localhost:9000\n",
        ] {
            let e = build(text).unwrap_err();
            assert!(e.message.contains("own address"), "{text:?}: {e}");
        }
        for text in [
            "port = 9000\nbind = 127.0.0.1\ntargets = 0.0.0.0:9000\n",
            "port = 9000\nbind = 127.0.0.1\ntargets = [::ffff:127.0.0.1]:9000\n",
            // `::` takes IPv4 too.
            "port = 9000\nbind = ::\ntargets = 127.0.0.1:9000\n",
            "port = 9000\nbind = ::\ntargets = [::1]:9000\n",
        ] {
            assert!(build(text).is_err(), "{text:?}");
        }
        // Another address on the same port is another server, and so is
        // one of the other family.
        for text in [
            "port = 9000\nbind = 127.0.0.2\ntargets = 127.0.0.1:9000\n",
            "port = 9000\ntargets = [::1]:9000\n",
            "port = 9000\ntargets = [::]:9000\n",
            "port = 9000\nbind = ::1\ntargets = 0.0.0.0:9000\n",
        ] {
            assert!(build(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn environment_keys_have_one_spelling() {
        let mut l = Loader::new();
        l.env([
            ("INVERSO_port".to_string(), "1".to_string()),
            ("INVERSO_PORT".to_string(), "2".to_string()),
            ("INVERSO_Port".to_string(), "3".to_string()),
        ]);
        l.flag("targets", "127.0.0.1:1", "--targets").unwrap();
        assert_eq!(l.build().unwrap().port, 2);
    }

    #[test]
    fn an_object_limit_larger_than_the_cache_is_refused() {
        let e = build("targets = 127.0.0.1:1\ncache_size = 1MiB\nmax_object_size = 2MiB\n")
            .unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.contains("more than cache_size"), "{e}");
        // Equal is fine, and so is any limit with the cache off.
        assert!(
            build("targets = 127.0.0.1:1\ncache_size = 1MiB\nmax_object_size = 1MiB\n").is_ok()
        );
        assert!(build("targets = 127.0.0.1:1\ncache_size = 0\nmax_object_size = 2MiB\n").is_ok());
    }

    #[test]
    fn keepalive_requests_defaults_to_nginx_s_1000_and_0_is_no_limit() {
        assert_eq!(
            build("targets = 127.0.0.1:1\n").unwrap().keepalive_requests,
            1000
        );
        let c = build("targets = 127.0.0.1:1\nkeepalive_requests = 0\n").unwrap();
        assert_eq!(c.keepalive_requests, 0);
        assert!(build("targets = 127.0.0.1:1\nkeepalive_requests = -1\n").is_err());
    }

    #[test]
    fn precedence_is_flag_env_file_default() {
        let mut l = Loader::new();
        l.file(
            "proxy.conf",
            "targets = 127.0.0.1:1\nport = 1000\nttl = 5s\n",
        )
        .unwrap();
        l.env([
            ("INVERSO_PORT".to_string(), "2000".to_string()),
            ("INVERSO_TTL".to_string(), "7s".to_string()),
            ("HOME".to_string(), "/".to_string()),
        ]);
        l.flag("port", "3000", "--port").unwrap();
        let c = l.build().unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.ttl, Duration::from_secs(7));
        assert_eq!(c.unit_time, Duration::from_secs(5));
        let origins: BTreeMap<_, _> = l
            .effective()
            .map(|(k, s)| (k, s.origin.to_string()))
            .collect();
        assert_eq!(origins["port"], "flag --port");
        assert_eq!(origins["ttl"], "environment INVERSO_TTL");
        assert_eq!(origins["targets"], "proxy.conf:1");
        assert_eq!(origins["unit_time"], "default");

        let mut l = Loader::new();
        l.env([("INVERSO_PORT".to_string(), "x".to_string())]);
        l.flag("targets", "127.0.0.1:1", "--targets").unwrap();
        assert_eq!(l.build().unwrap_err().place, "environment INVERSO_PORT");
    }

    #[test]
    fn a_target_has_its_own_max_fails_and_fail_timeout_or_the_keys() {
        let secs = Duration::from_secs;
        // The keys after the targets: a target without an option follows
        // them wherever they are written.
        let c = build(
            "targets = 127.0.0.1:1 weight=3, 127.0.0.1:2 max_fails=3 fail_timeout=30s, \
             127.0.0.1:3 backup max_fails=0\nbalance = weighted_round_robin\n\
             max_fails = 2\nfail_timeout = 5s\n",
        )
        .unwrap();
        let written: Vec<_> = (c.targets.iter())
            .map(|t| (t.max_fails, t.fail_timeout))
            .collect();
        assert_eq!(
            written,
            [(None, None), (Some(3), Some(secs(30))), (Some(0), None)]
        );
        let effective: Vec<_> = (c.targets.iter())
            .map(|t| (c.max_fails_of(t), c.fail_timeout_of(t)))
            .collect();
        assert_eq!(effective, [(2, secs(5)), (3, secs(30)), (0, secs(5))]);
        // The other options are read as before, beside them.
        assert_eq!(c.targets[0].weight, 3);
        assert!(c.targets[2].backup);
        // Without the keys, their defaults (1 and 10s); any order of options.
        let c = build("targets = 127.0.0.1:1 fail_timeout=500ms backup, 127.0.0.1:2\n").unwrap();
        let effective: Vec<_> = (c.targets.iter())
            .map(|t| (c.max_fails_of(t), c.fail_timeout_of(t)))
            .collect();
        assert_eq!(effective, [(1, Duration::from_millis(500)), (1, secs(10))]);
    }

    #[test]
    fn a_target_max_fails_or_fail_timeout_wrong_or_twice_is_refused_on_its_line() {
        for (option, says) in [
            (
                "max_fails=-1",
                "max_fails: `-1` is not a whole number (0..=1000000)",
            ),
            ("max_fails=1000001", "max_fails: 1000001 is out of range"),
            ("max_fails=x", "max_fails: `x` is not a whole number"),
            ("max_fails=", "max_fails: `` is not a whole number"),
            ("fail_timeout=0", "fail_timeout: must be greater than zero"),
            ("fail_timeout=0s", "fail_timeout: must be greater than zero"),
            ("fail_timeout=3x", "fail_timeout: unknown duration unit `x`"),
            ("fail_timeout=", "fail_timeout: `` is not a duration"),
            ("max_fails=1 max_fails=1", "max_fails given twice"),
            (
                "fail_timeout=1s backup fail_timeout=2s",
                "fail_timeout given twice",
            ),
            ("max_fail=1", "unknown option `max_fail=1`"),
        ] {
            let e = build(&format!(
                "port = 80\ntargets = 127.0.0.1:1, 127.0.0.1:2 {option}\n"
            ))
            .unwrap_err();
            let line = e.to_string();
            assert!(
                line.starts_with("proxy.conf:2: targets: target 127.0.0.1:2: "),
                "{option}: {line}"
            );
            assert!(line.contains(says), "{option}: {line}");
        }
        // The global keys refuse what the options refuse, in the same words.
        let e = build("targets = 127.0.0.1:1\nmax_fails = -1\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("`-1` is not a whole number (0..=1000000)"),
            "{e}"
        );
        let e = build("targets = 127.0.0.1:1\nfail_timeout = 0s\n").unwrap_err();
        assert!(e.to_string().contains("must be greater than zero"), "{e}");
    }

    #[test]
    fn each_target_of_a_name_giving_several_addresses_has_its_options() {
        let written = Target {
            name: "app:80".into(),
            addr: Endpoint::Tcp(SocketAddr::from(([0, 0, 0, 0], 0))),
            weight: 1,
            backup: false,
            max_conns: None,
            max_fails: Some(4),
            fail_timeout: Some(Duration::from_secs(45)),
            tls: None,
        };
        let addrs: Vec<SocketAddr> = vec![
            "10.0.0.5:80".parse().unwrap(),
            "10.0.0.6:80".parse().unwrap(),
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
    fn check_says_a_target_max_fails_and_fail_timeout_only_where_not_the_keys() {
        let c = build(
            "targets = 127.0.0.1:1, 127.0.0.1:2 max_fails=3 fail_timeout=10s, \
             127.0.0.1:3 max_fails=1 fail_timeout=1m max_conns=2\n",
        )
        .unwrap();
        assert_eq!(
            target_lines(&c),
            [
                "# target 127.0.0.1:1 -> 127.0.0.1:1 (weight 1)",
                "# target 127.0.0.1:2 -> 127.0.0.1:2 (weight 1, max_fails 3)",
                "# target 127.0.0.1:3 -> 127.0.0.1:3 (weight 1, max_conns 2, fail_timeout 60s)",
            ]
        );
    }

    #[test]
    fn the_shipped_proxy_conf_loads_with_its_targets_example_in_place() {
        let shipped = include_str!("../../proxy.conf");
        build(shipped).unwrap();
        let example = (shipped.lines())
            .find_map(|l| l.strip_prefix("# targets = "))
            .unwrap();
        let live = (shipped.lines())
            .find(|l| l.starts_with("targets = "))
            .unwrap();
        let uncommented = shipped.replace(live, &format!("targets = {example}"));
        let c = build(&uncommented).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.targets.len(), 3);
    }

    #[test]
    fn the_shipped_proxy_conf_names_every_key() {
        let shipped = include_str!("../../proxy.conf");
        let named = |name: &str| {
            let set = format!("{name} =");
            (shipped.lines()).any(|l| l.trim_start_matches("# ").starts_with(&set))
        };
        let missing: Vec<&str> = (keys::KEYS.iter().map(|k| k.name))
            .filter(|name| !named(name))
            .collect();
        assert!(missing.is_empty(), "not in proxy.conf: {missing:?}");
    }

    #[test]
    fn balancing_keys() {
        let c = build("targets = 127.0.0.1:1, 127.0.0.1:2\n").unwrap();
        assert_eq!(c.balance, Balance::RoundRobin);
        assert_eq!((c.max_fails, c.fail_timeout), (1, Duration::from_secs(10)));
        assert_eq!(c.effective_retries(), 1);
        assert_eq!(c.effective_connect_timeout(), Duration::from_secs(30));
        assert_eq!(c.health_check_path, None);
        assert_eq!((c.health_check_rise, c.health_check_fall), (2, 3));

        let c = build(
            "targets = 127.0.0.1:1 weight=3, 127.0.0.1:2\nbalance = weighted_round_robin\nmax_fails = 0\nfail_timeout = 30s\nretries = 0\nhealth_check_path = /healthz?full=1\nhealth_check_interval = 500ms\nhealth_check_rise = 1\nhealth_check_fall = 5\n",
        )
        .unwrap();
        assert_eq!(c.balance, Balance::WeightedRoundRobin);
        assert_eq!(c.balance.name(), "weighted_round_robin");
        assert_eq!((c.max_fails, c.fail_timeout), (0, Duration::from_secs(30)));
        assert_eq!(c.effective_retries(), 0);
        assert_eq!(c.health_check_path.as_deref(), Some("/healthz?full=1"));
        assert_eq!(c.health_check_interval, Duration::from_millis(500));
        assert_eq!((c.health_check_rise, c.health_check_fall), (1, 5));
        // A probe's bound: the interval, under a longer backend_timeout.
        assert_eq!(
            c.effective_health_check_timeout(),
            Duration::from_millis(500)
        );
        let c = build("targets = 127.0.0.1:1\nbackend_timeout = 2s\n").unwrap();
        assert_eq!(c.effective_health_check_timeout(), Duration::from_secs(2));
        let c = build("targets = 127.0.0.1:1\nhealth_check_timeout = 12s\n").unwrap();
        assert_eq!(c.effective_health_check_timeout(), Duration::from_secs(12));
        let e = build("targets = 127.0.0.1:1\nhealth_check_timeout = 0\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");

        let c = build("targets = 127.0.0.1:1\nconnect_timeout = 3s\n").unwrap();
        assert_eq!(c.effective_connect_timeout(), Duration::from_secs(3));
        let e = build("targets = 127.0.0.1:1\nconnect_timeout = 0\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        let c = build("targets = 127.0.0.1:1\nconnection_timeout = 9s\n").unwrap();
        assert_eq!(c.effective_backend_timeout(), Duration::from_secs(9));
        assert_eq!(c.tunnel_timeout, Duration::from_secs(3600));
        assert_eq!(c.effective_keepalive_timeout(), Duration::from_secs(9));
        let c = build("targets = 127.0.0.1:1\nkeepalive_timeout = 75s\n").unwrap();
        assert_eq!(c.effective_keepalive_timeout(), Duration::from_secs(75));
        assert_eq!(c.connection_timeout, Duration::from_secs(30));
        let e = build("targets = 127.0.0.1:1\nkeepalive_timeout = 0\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        let c = build("targets = 127.0.0.1:1\nbackend_timeout = 5m\n").unwrap();
        assert_eq!(c.effective_backend_timeout(), Duration::from_secs(300));
        let e = build("targets = 127.0.0.1:1\nbackend_timeout = 0\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");

        let e = build("targets = 127.0.0.1:1\nbalance = fastest\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        assert!(e.message.contains("least_conn"), "{e}");
        assert!(e.message.contains("uri_hash"), "{e}");
        // uri_hash takes weights, as ip_hash does.
        let c = build("targets = 127.0.0.1:1 weight=3, 127.0.0.1:2\nbalance = uri_hash\n").unwrap();
        assert_eq!(c.balance, Balance::UriHash);
        assert_eq!(c.balance.name(), "uri_hash");
        assert_eq!(c.targets[0].weight, 3);
        // A weight that round robin would silently ignore.
        let e = build("targets = 127.0.0.1:1 weight=2, 127.0.0.1:2\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:1");
        assert!(e.message.contains("weighted_round_robin"), "{e}");
        let e = build("targets = 127.0.0.1:1\nhealth_check_path = healthz\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        for bad in ["/a b", "/caf\u{e9}", "/a\u{7f}b"] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\nhealth_check_path = {bad}\n"
            ))
            .unwrap_err();
            assert!(e.message.contains("not a valid request path"), "{bad}: {e}");
        }
        assert!(build("targets = 127.0.0.1:1\nhealth_check_path = /h?x=%41\n").is_ok());
        let long = format!(
            "targets = 127.0.0.1:1\nhealth_check_path = /{}\n",
            "a".repeat(9000)
        );
        assert!(build(&long).unwrap_err().message.contains("max_uri_length"));
        let e = build("targets = 127.0.0.1:1\nhealth_check_rise = 0\n").unwrap_err();
        assert!(e.message.contains("health_check_rise"), "{e}");
        let e = build("targets = 127.0.0.1:1\nfail_timeout = 0\n").unwrap_err();
        assert!(e.message.contains("fail_timeout"), "{e}");
        let e = build("targets = 127.0.0.1:1\nretires = 2\n").unwrap_err();
        assert!(e.message.contains("did you mean `retries`"), "{e}");
    }

    #[test]
    fn balance_hash_takes_hash_on_and_weights_and_neither_goes_without_the_other() {
        use crate::upstream::hash_on::HashOn;
        let c = build(
            "targets = 127.0.0.1:1 weight=3, 127.0.0.1:2\nbalance = hash\nhash_on = header:X-Tenant\n",
        )
        .unwrap();
        assert_eq!(c.balance, Balance::Hash);
        assert_eq!(c.balance.name(), "hash");
        assert_eq!(c.hash_on, Some(HashOn::Header("X-Tenant".into())));
        assert_eq!(c.targets[0].weight, 3);
        for (on, expected) in [
            ("cookie:sid", HashOn::Cookie("sid".into())),
            ("query:user", HashOn::Query("user".into())),
        ] {
            let c = build(&format!(
                "targets = 127.0.0.1:1\nhash_on = {on}\nbalance = hash\n"
            ))
            .unwrap();
            assert_eq!(c.hash_on, Some(expected));
        }
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert_eq!(c.hash_on, None);

        // Without hash_on: refused at balance's line.
        let e = build("targets = 127.0.0.1:1\n\nbalance = hash\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.starts_with("balance: hash needs hash_on"), "{e}");
        let e = build("targets = 127.0.0.1:1\nbalance = hash\nhash_on =\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        // With another algorithm (the default one too): at hash_on's.
        for balance in ["", "balance = uri_hash\n", "balance = ip_hash\n"] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\n{balance}# the tenant\nhash_on = header:X-Tenant\n"
            ))
            .unwrap_err();
            let line = 3 + usize::from(!balance.is_empty());
            assert_eq!(e.place, format!("proxy.conf:{line}"), "{balance}");
            assert!(
                e.message.starts_with("hash_on: is set (header:X-Tenant)"),
                "{e}"
            );
            assert!(e.message.contains("only balance = hash"), "{e}");
        }
        // A bad name, at its line.
        for (bad, why) in [
            ("header:X Tenant", "not a header field name"),
            ("header:", "not a header field name"),
            ("cookie:sid=1", "not a cookie name"),
            ("query:a&b", "not a query parameter name"),
            ("query:", "not a query parameter name"),
            ("X-Tenant", "is not `header:<Name>`"),
            ("arg:user", "is not `header:<Name>`"),
        ] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\nbalance = hash\n\nhash_on = {bad}\n"
            ))
            .unwrap_err();
            assert_eq!(e.place, "proxy.conf:4", "{bad}");
            assert!(e.message.starts_with("hash_on: "), "{bad}: {e}");
            assert!(e.message.contains(why), "{bad}: {e}");
        }
        // From the environment, as every key.
        let c = Loader::new()
            .file("proxy.conf", "targets = 127.0.0.1:1\nbalance = hash\n")
            .unwrap()
            .env([("INVERSO_HASH_ON".to_string(), "cookie:sid".to_string())])
            .build()
            .unwrap();
        assert_eq!(c.hash_on, Some(HashOn::Cookie("sid".into())));
    }

    #[test]
    fn every_key_s_help_is_one_line_of_single_spaced_words() {
        for key in KEYS {
            let help = key.help;
            assert!(
                !help.contains("  ") && !help.contains('\n') && help.trim() == help,
                "{}: {help:?}",
                key.name
            );
        }
    }

    #[test]
    fn resolve_interval_is_off_empty_or_zero_and_else_a_second_at_least() {
        let interval = |v: &str| build(&format!("targets = 127.0.0.1:1\nresolve_interval = {v}\n"));
        assert_eq!(
            build("targets = 127.0.0.1:1\n").unwrap().resolve_interval,
            None
        );
        for off in ["", "0", "0s", "0ms"] {
            assert_eq!(interval(off).unwrap().resolve_interval, None, "{off:?}");
        }
        for (on, secs) in [("10s", 10), ("10", 10), ("1m", 60), ("1000ms", 1)] {
            let got = interval(on).unwrap().resolve_interval;
            assert_eq!(got, Some(Duration::from_secs(secs)), "{on}");
        }
        for bad in ["10x", "-1s", "soon", "500ms"] {
            let e = interval(bad).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{bad}");
            assert!(e.message.contains("resolve_interval"), "{bad}: {e}");
        }
        assert!(interval("500ms")
            .unwrap_err()
            .message
            .contains("at least 1s"));
    }

    #[test]
    fn health_check_host_is_a_host_value_or_empty() {
        let host = |v: &str| build(&format!("targets = 127.0.0.1:1\nhealth_check_host = {v}\n"));
        assert_eq!(host("").unwrap().health_check_host, None);
        assert_eq!(
            build("targets = 127.0.0.1:1\n").unwrap().health_check_host,
            None
        );
        for good in [
            "www.example.com",
            "www.example.com:8080",
            "localhost",
            "app_1.internal.",
            "10.0.0.2",
            "10.0.0.2:8000",
            "[::1]",
            "[2001:db8::1]:443",
        ] {
            let c = host(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(c.health_check_host.as_deref(), Some(good));
        }
        // Anything that would split the probe's head, name another host
        // to a backend, or is no authority at all.
        for bad in [
            // A lone CR stays in a file's line; a CRLF is tried from
            // the environment below.
            "www.example.com\rX-Injected: 1",
            "a\tb",
            "a b",
            "a\u{7f}b",
            "www.example.com/health",
            "user@www.example.com",
            "http://www.example.com",
            "a%2eb",
            "a,b",
            "a:b",
            "a:65536",
            "::1",
            "[::1",
            ":80",
            "caf\u{e9}.example",
        ] {
            let e = match host(bad) {
                Ok(c) => panic!("{bad:?} accepted as {:?}", c.health_check_host),
                Err(e) => e,
            };
            assert_eq!(e.place, "proxy.conf:2", "{bad:?}");
            assert!(e.message.starts_with("health_check_host: "), "{bad:?}: {e}");
            assert!(e.message.contains("is not a Host value"), "{bad:?}: {e}");
        }
        let e = host("a b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:2: health_check_host: `a b` is not a Host value: a name (letters, \
             digits, `-`, `_`, dots) or an IP address ([brackets] for IPv6), with an optional \
             :port"
        );
        // From the environment, as every key.
        let mut l = Loader::new();
        l.flag("targets", "127.0.0.1:1", "--targets").unwrap();
        l.env([(
            "INVERSO_HEALTH_CHECK_HOST".to_string(),
            "www.example.com".to_string(),
        )]);
        assert_eq!(
            l.build().unwrap().health_check_host.as_deref(),
            Some("www.example.com")
        );
        for bad in ["a/b", "www.example.com\r\nX-Injected: 1"] {
            l.env([("INVERSO_HEALTH_CHECK_HOST".to_string(), bad.to_string())]);
            let e = l.build().unwrap_err();
            assert_eq!(e.place, "environment INVERSO_HEALTH_CHECK_HOST");
            assert!(e.message.starts_with("health_check_host: "), "{e}");
            // Shown escaped: the message itself is one line.
            assert!(!e.to_string().contains(['\r', '\n']), "{e}");
        }
    }

    #[test]
    fn worker_priority_is_a_nice_value_or_empty() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert_eq!(c.worker_priority, None);
        let c = build("targets = 127.0.0.1:1\nworker_priority = -10\n").unwrap();
        assert_eq!(c.worker_priority, Some(-10));
        let c = build("targets = 127.0.0.1:1\nworker_priority =\n").unwrap();
        assert_eq!(c.worker_priority, None);
        let e = build("targets = 127.0.0.1:1\nworker_priority = -21\n").unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = build("targets = 127.0.0.1:1\nworker_priority = high\n").unwrap_err();
        assert!(e.to_string().contains("whole number"), "{e}");
    }

    #[test]
    fn retry_on_status_lists_error_statuses_and_names_the_line_of_a_bad_one() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(c.retry_on_status.is_empty());
        let c = build("targets = 127.0.0.1:1\nretry_on_status = 502, 503, 504\n").unwrap();
        assert!([502, 503, 504]
            .iter()
            .all(|&s| c.retry_on_status.contains(s)));
        assert!(!c.retry_on_status.contains(500));
        for (bad, says) in [
            ("200", "not an error"),
            ("302", "not an error"),
            ("400", "about the request itself"),
            ("http_502", "not a status"),
            ("502, 502", "listed twice"),
        ] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\n# retries\nretry_on_status = {bad}\n"
            ))
            .unwrap_err();
            assert_eq!(e.place, "proxy.conf:3", "{bad}");
            assert!(e.message.starts_with("retry_on_status: "), "{bad}: {e}");
            assert!(e.message.contains(says), "{bad}: {e}");
        }
        // From the environment, as every key.
        let mut l = Loader::new();
        l.file(
            "proxy.conf",
            "targets = 127.0.0.1:1\nretry_on_status = 503\n",
        )
        .unwrap();
        l.env([("INVERSO_RETRY_ON_STATUS".to_string(), "429 502".to_string())]);
        let c = l.build().unwrap();
        assert!(c.retry_on_status.contains(429) && !c.retry_on_status.contains(503));
        l.env([("INVERSO_RETRY_ON_STATUS".to_string(), "299".to_string())]);
        assert_eq!(
            l.build().unwrap_err().place,
            "environment INVERSO_RETRY_ON_STATUS"
        );
    }

    #[test]
    fn body_buffers_default_to_64_kib_and_stop_at_64_mib() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert_eq!(
            (c.request_buffer_size, c.response_buffer_size),
            (64 << 10, 64 << 10)
        );
        let c = build("targets = 127.0.0.1:1\nresponse_buffer_size = 64MiB\n").unwrap();
        assert_eq!(c.response_buffer_size, 64 << 20);
        for key in ["request_buffer_size", "response_buffer_size"] {
            let e = build(&format!("targets = 127.0.0.1:1\n{key} = 65MiB\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2");
            assert!(e.message.contains(key), "{e}");
        }
    }

    #[test]
    fn cache_valid_is_refused_where_it_is_wrong() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert_eq!(c.cache_valid.lifetime(200), None);
        let c = build("targets = 127.0.0.1:1\ncache_valid = 200 10m, any 1m\n").unwrap();
        assert_eq!(c.cache_valid.lifetime(500), Some(Duration::from_secs(60)));
        let e = build("targets = 127.0.0.1:1\n\ncache_valid = 200 10m, 304 1m\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.contains("304 is never stored"), "{e}");
    }

    #[test]
    fn cache_ignore_headers_lists_fields_the_cache_reads_and_names_the_line_of_a_bad_one() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(c.cache_ignore_headers.is_empty());
        assert!(c.cache_settings().ignored.is_empty());
        let c = build(
            "targets = 127.0.0.1:1\ncache_valid = 200 1s\n\
             cache_ignore_headers = cache-control, EXPIRES Set-Cookie\n",
        )
        .unwrap();
        let names: Vec<&str> = c.cache_ignore_headers.names().collect();
        assert_eq!(names, ["Cache-Control", "Expires", "Set-Cookie"]);
        assert_eq!(c.cache_settings().ignored, c.cache_ignore_headers);
        for (bad, says) in [
            ("Pragma", "not a field the cache reads"),
            ("CDN-Cache-Control", "targeted_cache_control"),
            ("X-Accel-Buffering", "does not act on"),
            ("Vary, vary", "listed twice"),
        ] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\n# micro-caching\ncache_ignore_headers = {bad}\n"
            ))
            .unwrap_err();
            assert_eq!(e.place, "proxy.conf:3", "{bad}");
            assert!(e.message.starts_with("cache_ignore_headers: "), "{e}");
            assert!(e.message.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn cache_ignore_headers_turns_off_the_switches_of_the_fields_for_the_cache() {
        let c = build(
            "targets = 127.0.0.1:1\ncache_valid = 200 1s\n\
             cache_ignore_headers = X-Accel-Expires, Surrogate-Control\n",
        )
        .unwrap();
        // The keys keep their values; the rules read neither field.
        assert!(c.x_accel_expires);
        assert_eq!(c.surrogate_id.as_deref(), Some("inverso"));
        let targeting = c.cache_settings().targeting;
        assert!(!targeting.x_accel_expires);
        assert_eq!(targeting.surrogate_id, None);
    }

    #[test]
    fn cache_control_unread_without_a_lifetime_left_to_give_is_refused() {
        let base = "targets = 127.0.0.1:1\ncache_ignore_headers = Cache-Control, Expires, \
                    X-Accel-Expires, Surrogate-Control\n";
        let e = build(base).unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        assert!(e.message.contains("nothing would ever be stored"), "{e}");
        assert!(e.message.contains("cache_valid = 200 1s"), "{e}");
        // Anything that still gives a lifetime will do (the fields still
        // read leave a warning).
        for more in [
            "cache_valid = 200 1s",
            "cache_unlabeled = true",
            "targeted_cache_control = CDN-Cache-Control",
            "cache = false",
            "cache_size = 0",
        ] {
            build(&format!("{base}{more}\n")).unwrap_or_else(|e| panic!("{more}: {e}"));
        }
        build("targets = 127.0.0.1:1\ncache_ignore_headers = Cache-Control\n").unwrap();
        build(
            "targets = 127.0.0.1:1\nx_accel_expires = false\nsurrogate_id =\n\
             cache_ignore_headers = Cache-Control\n",
        )
        .unwrap();
        let e = build(
            "targets = 127.0.0.1:1\nx_accel_expires = false\nsurrogate_id =\n\
             cache_ignore_headers = Cache-Control, Expires\n",
        )
        .unwrap_err();
        assert_eq!(e.place, "proxy.conf:4");
    }

    #[test]
    fn surrogate_keys_is_on_by_default_and_a_boolean() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(c.surrogate_keys);
        assert!(c.cache_settings().targeting.surrogate_keys);
        let c = build("targets = 127.0.0.1:1\nsurrogate_keys = off\n").unwrap();
        assert!(!c.cache_settings().targeting.surrogate_keys);
        // Not a field cache_ignore_headers could list: it gives no lifetime.
        let c = build(
            "targets = 127.0.0.1:1\ncache_ignore_headers = Surrogate-Control, X-Accel-Expires\n",
        )
        .unwrap();
        assert!(c.cache_settings().targeting.surrogate_keys);
        let e = build("targets = 127.0.0.1:1\nsurrogate_keys = maybe\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        let e = build("targets = 127.0.0.1:1\ncache_ignore_headers = Surrogate-Key\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
    }

    #[test]
    fn surrogate_id_is_a_token_that_fits_surrogate_control() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert_eq!(c.surrogate_id.as_deref(), Some("inverso"));
        assert!(c.x_accel_expires);
        let c = build("targets = 127.0.0.1:1\nsurrogate_id =\nx_accel_expires = off\n").unwrap();
        assert_eq!(c.surrogate_id, None);
        assert!(!c.x_accel_expires);
        let c = build("targets = 127.0.0.1:1\nsurrogate_id = edge-1.example\n").unwrap();
        assert_eq!(c.surrogate_id.as_deref(), Some("edge-1.example"));
        let long = "a".repeat(65);
        for bad in ["a;b", "a=b", "a,b", "\"a\"", "a b", long.as_str()] {
            let e = build(&format!("targets = 127.0.0.1:1\nsurrogate_id = {bad}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{bad}");
            assert!(e.message.contains("device token"), "{e}");
        }
    }

    #[test]
    fn targeted_cache_control_lists_fields_ending_in_cache_control() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(c.targeted_cache_control.is_empty());
        let c = build(
            "targets = 127.0.0.1:1\ntargeted_cache_control = Inverso-Cache-Control , CDN-Cache-Control\n",
        )
        .unwrap();
        let names: Vec<&str> = c.targeted_cache_control.iter().map(|n| &**n).collect();
        assert_eq!(names, ["inverso-cache-control", "cdn-cache-control"]);
        let nine = (0..9)
            .map(|i| format!("x{i}-cache-control"))
            .collect::<Vec<_>>();
        for (bad, why) in [
            ("Cache-Control", "ending in"),
            ("-Cache-Control", "ending in"),
            ("Vary", "ending in"),
            ("CDN-Cache-Control,", "ending in"),
            ("CDN Cache-Control", "ending in"),
            ("CDN-Cache-Control, cdn-cache-control", "listed twice"),
            (&nine.join(","), "at most 8"),
        ] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\ntargeted_cache_control = {bad}\n"
            ))
            .unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{bad}");
            assert!(e.message.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn health_check_tcp_is_a_bool_refused_beside_a_health_check_path() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(!c.health_check_tcp);
        let c = build("targets = 127.0.0.1:1\nhealth_check_tcp = true\n").unwrap();
        assert!(c.health_check_tcp);
        assert_eq!(c.health_check_path, None);
        let e = build("targets = 127.0.0.1:1\nhealth_check_tcp = maybe\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        assert!(e.message.starts_with("health_check_tcp: "), "{e}");
        // Both: which kind of probe was meant cannot be told.
        let e = build(
            "targets = 127.0.0.1:1\nhealth_check_path = /up\nhealth_check_interval = 1s\n\
             health_check_tcp = true\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:4: health_check_tcp: is true, but health_check_path is set too (/up): \
             a target is probed one way; keep health_check_path for GET probes (which connect \
             first), or empty it to probe by connecting alone"
        );
        // A path from the environment is named as such.
        let mut l = Loader::new();
        l.file(
            "proxy.conf",
            "targets = 127.0.0.1:1\nhealth_check_tcp = true\n",
        )
        .unwrap();
        l.env([("INVERSO_HEALTH_CHECK_PATH".to_string(), "/up".to_string())]);
        let e = l.build().unwrap_err().to_string();
        assert!(
            e.contains("(/up, from environment INVERSO_HEALTH_CHECK_PATH)"),
            "{e}"
        );
        // An empty path is no GET probe.
        let c = build("targets = 127.0.0.1:1\nhealth_check_path =\nhealth_check_tcp = true\n");
        assert!(c.unwrap().health_check_tcp);
        // Off, it says nothing of the path.
        let c = build("targets = 127.0.0.1:1\nhealth_check_path = /up\nhealth_check_tcp = false\n");
        assert_eq!(c.unwrap().health_check_path.as_deref(), Some("/up"));
    }

    #[test]
    fn what_only_a_get_probe_reads_is_taken_beside_tcp_checks_as_without_them() {
        // As without any check: a pool with a health_check_path of its own
        // may take them from the top level.
        let expectations = "health_check_host = www.example.com\n\
                            health_check_expect_status = 200\n\
                            health_check_expect_body = UP\n";
        for checks in ["", "health_check_tcp = true\n"] {
            let text = format!("targets = 127.0.0.1:1\n{checks}{expectations}");
            let c = build(&text).unwrap_or_else(|e| panic!("{checks:?}: {e}"));
            assert_eq!(c.health_check_host.as_deref(), Some("www.example.com"));
            assert_eq!(*c.health_check_expect_status, [(200, 200)]);
        }
    }

    #[test]
    fn health_check_expectations_are_status_ranges_and_printable_text() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(c.health_check_expect_status.is_empty() && c.health_check_expect_body.is_none());
        let c = build(
            "targets = 127.0.0.1:1\nhealth_check_expect_status = 200, 204-206 ,301\n\
             health_check_expect_body = \"status\": \"UP\"\n",
        )
        .unwrap();
        assert_eq!(
            *c.health_check_expect_status,
            [(200, 200), (204, 206), (301, 301)]
        );
        assert_eq!(
            c.health_check_expect_body.as_deref(),
            Some("\"status\": \"UP\"")
        );
        for (line, why) in [
            ("health_check_expect_status = 2xx", "not a status"),
            ("health_check_expect_status = 99", "not a status"),
            ("health_check_expect_status = 600", "not a status"),
            ("health_check_expect_status = 299-200", "high to low"),
            ("health_check_expect_status = 200-", "not a status"),
            ("health_check_expect_body = caf\u{e9}", "printable"),
        ] {
            let e = build(&format!("targets = 127.0.0.1:1\n{line}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{line}");
            assert!(e.message.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn cache_status_is_off_or_a_token_beginning_with_a_letter() {
        assert_eq!(build("targets = 127.0.0.1:1\n").unwrap().cache_status, None);
        let c = build("targets = 127.0.0.1:1\ncache_status = edge-1.example\n").unwrap();
        assert_eq!(c.cache_status.as_deref(), Some("edge-1.example"));
        for (bad, why) in [
            ("1st", "begin with a letter"),
            ("my cache", "not a device token"),
        ] {
            let e = build(&format!("targets = 127.0.0.1:1\ncache_status = {bad}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{bad}");
            assert!(e.message.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn intercept_errors_takes_the_statuses_with_a_page_and_no_field_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        for status in [401, 404, 500] {
            std::fs::write(dir.path().join(format!("{status}.html")), "x").unwrap();
        }
        let text = format!(
            "targets = 127.0.0.1:1\nerror_pages = {}\nintercept_errors = true\n",
            dir.path().display()
        );
        let c = build(&text).unwrap();
        let intercepted: Vec<u16> = (100..=599).filter(|&s| c.intercepts(s)).collect();
        assert_eq!(intercepted, [404, 500]);
        assert_eq!(&*c.cache_settings().never_stored, [404, 500]);
        let off = build(&text.replace("intercept_errors = true", "intercept_errors = false"));
        let off = off.unwrap();
        assert!(!off.intercepts(404) && off.cache_settings().never_stored.is_empty());
    }

    #[test]
    fn cache_min_uses_is_a_count_from_one() {
        assert_eq!(build("targets = 127.0.0.1:1\n").unwrap().cache_min_uses, 1);
        let c = build("targets = 127.0.0.1:1\ncache_min_uses = 3\n").unwrap();
        assert_eq!(c.cache_min_uses, 3);
        for bad in ["0", "-1", "two", "1000001"] {
            let e = build(&format!("targets = 127.0.0.1:1\ncache_min_uses = {bad}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{bad}");
            assert!(e.message.starts_with("cache_min_uses: "), "{e}");
        }
    }

    #[test]
    fn gzip_is_off_by_default_and_its_keys_name_the_line_of_a_bad_value() {
        use crate::gzip::MediaTypes;
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(!c.gzip);
        assert!(crate::gzip::Gzip::of(&c).is_none());
        assert_eq!(
            c.gzip_types,
            MediaTypes::parse(crate::gzip::DEFAULT_TYPES).unwrap()
        );
        assert_eq!((c.gzip_min_length, c.gzip_comp_level), (256, 1));
        let c = build(
            "targets = 127.0.0.1:1\ngzip = on\ngzip_types = text/*, application/json\n\
             gzip_min_length = 1KiB\ngzip_comp_level = 6\n",
        )
        .unwrap();
        assert!(c.gzip && crate::gzip::Gzip::of(&c).is_some());
        assert_eq!(
            c.gzip_types,
            MediaTypes::parse("text/*, application/json").unwrap()
        );
        assert_eq!((c.gzip_min_length, c.gzip_comp_level), (1024, 6));
        for (line, why) in [
            ("gzip = sometimes", "not a boolean"),
            ("gzip_types = text", "not a media type"),
            ("gzip_types = text/html,", "empty entry"),
            ("gzip_min_length = 1KB", "KB"),
            ("gzip_comp_level = 0", "out of range (1..=9)"),
            ("gzip_comp_level = 10", "out of range (1..=9)"),
        ] {
            let e = build(&format!("targets = 127.0.0.1:1\n{line}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{line}");
            assert!(e.message.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn cache_bypass_cookies_are_cookie_names_and_a_bad_one_names_its_line() {
        let with = |names: &str| {
            let mut headers = crate::http::Headers::new();
            headers.push("Cookie", names);
            headers
        };
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(c.cache_bypass_cookies.is_empty());
        assert!(!c.cache_bypass_cookies.matches(&with("a=1")));
        let c = build(
            "targets = 127.0.0.1:1\ncache_bypass_cookies = wordpress_logged_in_*, wp-postpass_*\n",
        )
        .unwrap();
        assert!(c
            .cache_bypass_cookies
            .matches(&with("wordpress_logged_in_ab=1")));
        assert!(!c
            .cache_bypass_cookies
            .matches(&with("wordpress_test_cookie=1")));
        // Without a cache it does nothing, and is no error.
        let c = build("targets = 127.0.0.1:1\ncache_size = 0\ncache_bypass_cookies = *\n");
        assert!(c.unwrap().cache_bypass_cookies.matches(&with("a=1")));
        let mut loader = Loader::new();
        loader
            .file("proxy.conf", "targets = 127.0.0.1:1\n")
            .unwrap();
        loader.env([("INVERSO_CACHE_BYPASS_COOKIES".into(), "sid".into())]);
        assert!(loader
            .build()
            .unwrap()
            .cache_bypass_cookies
            .matches(&with("sid=1")));
        let many = (0..33)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        for (bad, why) in [
            ("sid, session id", "not a cookie name"),
            ("sid=1", "not a cookie name"),
            ("sid,", "empty entry"),
            ("wp_*_x", "may only end"),
            ("sid, sid", "listed twice"),
            (many.as_str(), "at most 32"),
        ] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\n\ncache_bypass_cookies = {bad}\n"
            ))
            .unwrap_err();
            assert_eq!(e.place, "proxy.conf:3", "{bad}");
            assert!(e.message.starts_with("cache_bypass_cookies: "), "{e}");
            assert!(e.message.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn state_file_is_a_file_of_its_own() {
        for key in ["path_to_persistence", "path_to_log"] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\n{key} = run/f\nstate_file = run/f\n"
            ))
            .unwrap_err();
            assert_eq!(e.place, "proxy.conf:3", "{key}");
            assert!(e.message.contains(&format!("is also {key}")), "{e}");
            // However spelled: from the working directory, or in full.
            let cwd = std::env::current_dir().unwrap();
            for spelled in ["./run/f".into(), cwd.join("run/f").display().to_string()] {
                let e = build(&format!(
                    "targets = 127.0.0.1:1\n{key} = run/f\nstate_file = {spelled}\n"
                ))
                .unwrap_err();
                assert!(e.message.contains(&format!("is also {key}")), "{e}");
            }
        }
        // The snapshot's default name.
        let e = build("targets = 127.0.0.1:1\nstate_file = ./cache.bin\n").unwrap_err();
        assert!(e.message.contains("is also path_to_persistence"), "{e}");
        let c = build("targets = 127.0.0.1:1\nstate_file = run/state\n").unwrap();
        assert_eq!(c.state_file, Some(PathBuf::from("run/state")));
    }

    #[test]
    fn state_file_and_log_are_files_of_their_own_however_spelled_before_they_exist() {
        // Neither file is there yet (a first start): spelled through `..`
        // or through a link to the directory, it is still the snapshot's.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("link")).unwrap();
        let snapshot = dir.path().join("cache.bin");
        for other in [
            dir.path().join("sub/../cache.bin"),
            dir.path().join("link/cache.bin"),
        ] {
            for (key, says) in [
                ("state_file", "is also path_to_persistence"),
                ("path_to_log", "is also path_to_persistence"),
            ] {
                let text = format!(
                    "targets = 127.0.0.1:1\npath_to_persistence = {}\n{key} = {}\n",
                    snapshot.display(),
                    other.display()
                );
                let e = build(&text).unwrap_err();
                assert_eq!(e.place, "proxy.conf:3", "{key} = {}", other.display());
                assert!(e.message.contains(says), "{e}");
            }
        }
        assert!(!snapshot.exists());
    }

    #[test]
    fn cache_bypass_cookies_may_not_list_the_sticky_cookie_which_never_reaches_the_cache() {
        let conf = |bypass: &str| {
            build(&format!(
                "targets = 127.0.0.1:1\nsticky_cookie = SERVERID\ncache_bypass_cookies = {bypass}\n"
            ))
        };
        let e = conf("sid, SERVERID").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.contains("SERVERID, the sticky_cookie"), "{e}");
        // Under a prefix it is one of many names, and does no harm.
        assert!(conf("SERVER*").is_ok());
        assert!(conf("*").is_ok());
        assert!(
            conf("serverid").is_ok(),
            "cookie names are compared as sent"
        );
        // Without a cache, nothing to bypass; but a reload that sets
        // `cache_size = 0` keeps the running cache until a restart, with
        // these settings: refused then, at their line, a pool's too.
        for (text, line) in [
            "sticky_cookie = SERVERID\ncache_bypass_cookies = SERVERID\n",
            "pool.api = 127.0.0.1:2\npool.api.sticky_cookie = SERVERID\n\
             pool.api.cache_bypass_cookies = SERVERID\n",
        ]
        .into_iter()
        .zip(["proxy.conf:4", "proxy.conf:5"])
        {
            let mut loader = Loader::new();
            let text = format!("targets = 127.0.0.1:1\ncache_size = 0\n{text}");
            loader.file("proxy.conf", &text).unwrap();
            let c = loader.build().unwrap();
            assert!(loader.check_cache_kept(&c, 0).is_ok());
            let e = loader.check_cache_kept(&c, 1 << 20).unwrap_err();
            assert!(e.message.contains("SERVERID, the sticky_cookie"), "{e}");
            assert_eq!(e.place, line, "{e}");
        }
    }

    #[test]
    fn cache_key_ignore_params_are_parameter_names_and_a_bad_one_names_its_line() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(c.cache_key_ignore_params.is_empty());
        let c = build("targets = 127.0.0.1:1\ncache_key_ignore_params = utm_*, gclid, fbclid\n")
            .unwrap();
        for name in ["utm_source", "gclid", "fbclid"] {
            assert!(c.cache_key_ignore_params.matches(name), "{name}");
        }
        assert!(!c.cache_key_ignore_params.matches("id"));
        let mut loader = Loader::new();
        loader
            .file("proxy.conf", "targets = 127.0.0.1:1\n")
            .unwrap();
        loader.env([("INVERSO_CACHE_KEY_IGNORE_PARAMS".into(), "gclid".into())]);
        let c = loader.build().unwrap();
        assert!(c.cache_key_ignore_params.matches("gclid"));
        let many = (0..33)
            .map(|i| format!("p{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        for (bad, why) in [
            ("gclid, utm source", "not a query parameter name"),
            ("gclid=1", "not a query parameter name"),
            ("a&b", "not a query parameter name"),
            ("gclid,", "empty entry"),
            ("utm_*_x", "may only end"),
            ("a%2", "must start an escape"),
            ("gclid, gclid", "listed twice"),
            (many.as_str(), "at most 32"),
        ] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\n\ncache_key_ignore_params = {bad}\n"
            ))
            .unwrap_err();
            assert_eq!(e.place, "proxy.conf:3", "{bad}");
            assert!(e.message.starts_with("cache_key_ignore_params: "), "{e}");
            assert!(e.message.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn request_id_header_is_a_field_name_the_proxy_does_not_own() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert_eq!(c.request_id_header, None);
        let c = build("targets = 127.0.0.1:1\nrequest_id_header = X-Request-ID\n").unwrap();
        assert_eq!(c.request_id_header.as_deref(), Some("X-Request-ID"));
        for bad in [
            "X Request",
            "X-Id:",
            "Host",
            "content-length",
            "X-Forwarded-For",
            "X-Real-IP",
            "forwarded",
            "x-cache",
            "Content-Range",
            "Set-Cookie",
            "Vary",
            "Content-Security-Policy",
            "Strict-Transport-Security",
            "Access-Control-Allow-Origin",
        ] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\nrequest_id_header = {bad}\n"
            ))
            .unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{bad}");
        }
    }

    /// The `response_header.*` keys of `text` (after a targets line), as
    /// the fields they set and remove.
    fn field_edits(text: &str) -> Result<Vec<(String, Option<String>)>, ConfigError> {
        let c = build(&format!("targets = 127.0.0.1:1\n{text}"))?;
        let edits = c.response_headers.iter();
        Ok(edits
            .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
            .collect())
    }

    #[test]
    fn response_header_keys_set_and_remove_fields_in_file_order() {
        assert_eq!(field_edits("").unwrap(), []);
        assert!(build("targets = 127.0.0.1:1\n")
            .unwrap()
            .response_headers
            .is_empty());
        let text = "response_header.Strict-Transport-Security = max-age=63072000; includeSubDomains\n\
                    response_header.Content-Security-Policy = default-src 'self'; img-src * data:, x\n\
                    response_header.X-Powered-By =      # empty: removed\n\
                    response_header.Server =\n\
                    response_header.Cache-Control =  public, max-age=60  \n\
                    response_header.Set-Cookie =\n\
                    response_header.X-Tab = a\tb \"q\" 'x'\n";
        let some = |v: &str| Some(v.to_string());
        assert_eq!(
            field_edits(text).unwrap(),
            [
                (
                    "Strict-Transport-Security".to_string(),
                    some("max-age=63072000; includeSubDomains")
                ),
                (
                    "Content-Security-Policy".to_string(),
                    some("default-src 'self'; img-src * data:, x")
                ),
                ("X-Powered-By".to_string(), None),
                ("Server".to_string(), None),
                ("Cache-Control".to_string(), some("public, max-age=60")),
                ("Set-Cookie".to_string(), None),
                ("X-Tab".to_string(), some("a\tb \"q\" 'x'")),
            ]
        );
        let long = "v".repeat(8 * 1024);
        let e = field_edits(&format!("response_header.X-Long = {long}\n")).unwrap();
        assert_eq!(e[0].1.as_ref().map(String::len), Some(8 * 1024));
        // At most 64, each name once.
        let lines: String = (0..64)
            .map(|i| format!("response_header.X-{i} = {i}\n"))
            .collect();
        assert_eq!(field_edits(&lines).unwrap().len(), 64);
        let e = field_edits(&format!("{lines}response_header.X-64 = 64\n")).unwrap_err();
        assert_eq!(e.place, "proxy.conf:66");
        assert!(e.message.contains("more than 64"), "{e}");
    }

    #[test]
    fn a_response_header_name_given_twice_in_any_case_is_a_duplicate_key() {
        let e = field_edits(
            "response_header.X-Frame-Options = DENY\n# again\nresponse_header.x-frame-OPTIONS = SAMEORIGIN\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:4: duplicate key `response_header.x-frame-OPTIONS` (first set on line 2)"
        );
        // Removing and setting one field is twice the same key too.
        let e = field_edits("response_header.Server =\nresponse_header.server = x\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.contains("duplicate key"), "{e}");
    }

    #[test]
    fn response_header_names_the_proxy_writes_or_frames_with_are_refused() {
        for (name, says) in [
            ("Content-Length", "frames the message"),
            ("transfer-encoding", "frames the message"),
            ("Connection", "frames the message"),
            ("Keep-Alive", "frames the message"),
            ("Proxy-Connection", "frames the message"),
            ("TE", "frames the message"),
            ("Trailer", "frames the message"),
            ("Upgrade", "frames the message"),
            ("Date", "neither set nor removed"),
            ("age", "neither set nor removed"),
            ("X-Cache", "neither set nor removed"),
            ("Vary", "neither set nor removed"),
            ("ETag", "neither set nor removed"),
            ("Last-Modified", "neither set nor removed"),
            ("Content-Range", "neither set nor removed"),
            ("Content-Type", "same type"),
            ("Content-Encoding", "neither set nor removed"),
            ("Accept-Ranges", "neither set nor removed"),
            ("Retry-After", "neither set nor removed"),
            ("Allow", "neither set nor removed"),
        ] {
            for value in ["x", ""] {
                let line = format!("response_header.{name} = {value}\n");
                let e = field_edits(&line).unwrap_err();
                assert_eq!(e.place, "proxy.conf:2", "{line}");
                let key = format!("response_header.{name}: ");
                assert!(e.message.starts_with(&key), "{line}: {e}");
                assert!(e.message.contains(says), "{line}: {e}");
            }
        }
        // Set-Cookie: removed, not set.
        assert!(field_edits("response_header.Set-Cookie =\n").is_ok());
        let e = field_edits("response_header.Set-Cookie = sid=1\n").unwrap_err();
        assert!(
            e.message.contains("removed (an empty value) but not set"),
            "{e}"
        );
        // The request's ID field is the proxy's, wherever the two keys stand.
        for text in [
            "request_id_header = X-Request-ID\nresponse_header.x-request-id = 1\n",
            "response_header.X-Request-Id =\nrequest_id_header = X-Request-ID\n",
        ] {
            let e = field_edits(text).unwrap_err();
            assert!(e.message.contains("is request_id_header"), "{text:?}: {e}");
            let line = if text.starts_with("request") { 3 } else { 2 };
            assert_eq!(e.place, format!("proxy.conf:{line}"), "{text:?}");
        }
        assert!(
            field_edits("request_id_header = X-Request-ID\nresponse_header.X-Trace = 1\n").is_ok()
        );
    }

    #[test]
    fn response_header_values_are_visible_ascii_of_at_most_8_kib() {
        let long = "v".repeat(8 * 1024 + 1);
        for (value, says) in [
            ("a\rX-Injected: 1", "control character"),
            ("a\u{7f}b", "control character"),
            ("a\0b", "control character"),
            ("a\u{1b}[31m", "control character"),
            ("caf\u{e9}", "outside ASCII"),
            (long.as_str(), "at most 8192"),
        ] {
            let e = field_edits(&format!("response_header.X-A = {value}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{value:?}");
            assert!(e.message.starts_with("response_header.X-A: "), "{e}");
            assert!(e.message.contains(says), "{value:?}: {e}");
            // One line, whatever the value held.
            assert!(!e.to_string().contains(['\r', '\n', '\u{1b}']), "{e}");
        }
        for name in ["X A", "X:A", "X(A)", "X\"A", "caf\u{e9}"] {
            let e = field_edits(&format!("response_header.{name} = 1\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{name:?}");
            assert!(
                e.message.contains("is not a header field name"),
                "{name:?}: {e}"
            );
        }
    }

    #[test]
    fn response_header_without_a_name_or_misspelt_says_what_was_meant() {
        for (line, says) in [
            (
                "response_header. = x",
                "`response_header.` needs a field name after the dot",
            ),
            (
                "response_header.   = x",
                "`response_header.` needs a field name after the dot",
            ),
            (
                "response_header = X-Frame-Options: DENY",
                "`response_header` needs a field name",
            ),
            (
                "respons_header.X-A = 1",
                "unknown key `respons_header.X-A` (did you mean `response_header.X-A`?)",
            ),
            (
                "response_headers.X-A = 1",
                "unknown key `response_headers.X-A` (did you mean `response_header.X-A`?)",
            ),
            (
                "Response-Header.X-A = 1",
                "(did you mean `response_header.X-A`?)",
            ),
            (
                "response_headers = 1",
                "(did you mean `response_header.<Field-Name>`",
            ),
            (
                "reponse_hedaer.X-A = 1",
                "(did you mean `response_header.X-A`?)",
            ),
            (
                "requst_header.X-A = 1",
                "unknown key `requst_header.X-A` (did you mean `request_header.X-A`?)",
            ),
            (
                "request_headers.Host = a",
                "(did you mean `request_header.Host`?)",
            ),
            (
                "request_header = X-A: 1",
                "`request_header` needs a field name: `request_header.X-Backend-Auth = s3cret` \
                 sets that field on every request sent to a backend",
            ),
            (
                "request_headers = 1",
                "(did you mean `request_header.<Field-Name>`",
            ),
            (
                "request_header. = x",
                "`request_header.` needs a field name after the dot",
            ),
            (
                "requests_id_header = X-ID",
                "(did you mean `request_id_header`?)",
            ),
            ("header.X-A = 1", "unknown key `header.X-A`"),
            ("resp.X-A = 1", "unknown key `resp.X-A`"),
            ("add_header.X-A = 1", "unknown key `add_header.X-A`"),
        ] {
            let e = field_edits(&format!("{line}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{line}");
            assert!(e.message.contains(says), "{line}: {e}");
            if says.starts_with("unknown key `") && !says.contains("did you") {
                assert!(!e.message.contains("did you"), "{line}: {e}");
            }
        }
    }

    #[test]
    fn response_header_keys_come_from_the_file_alone() {
        let mut l = Loader::new();
        l.file(
            "proxy.conf",
            "targets = 127.0.0.1:1\nresponse_header.X-A = 1\n",
        )
        .unwrap();
        // Warned about and ignored, as any variable naming no key.
        l.env([("INVERSO_RESPONSE_HEADER_X_A".to_string(), "2".to_string())]);
        let e = l
            .clone()
            .flag("response_header.X-A", "3", "--set")
            .unwrap_err();
        assert_eq!(e.place, "flag --set");
        assert!(e.message.contains("configuration file only"), "{e}");
        let c = l.build().unwrap();
        let edits: Vec<_> = c.response_headers.iter().collect();
        assert_eq!(edits, [("X-A", Some("1"))]);
        let shown: Vec<_> = l
            .field_settings()
            .map(|(f, k, s)| (f, k, s.value.clone(), s.origin.to_string()))
            .collect();
        assert_eq!(
            shown,
            [(
                FieldFamily::Response,
                "response_header.X-A".to_string(),
                "1".to_string(),
                "proxy.conf:2".to_string()
            )]
        );
    }

    /// The `request_header.*` keys of `text` (after a targets line), as
    /// the fields they set and remove.
    fn request_edits(text: &str) -> Result<Vec<(String, Option<String>)>, ConfigError> {
        let c = build(&format!("targets = 127.0.0.1:1\n{text}"))?;
        let edits = c.request_headers.iter();
        Ok(edits
            .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
            .collect())
    }

    #[test]
    fn request_header_keys_set_and_remove_fields_in_file_order() {
        assert!(build("targets = 127.0.0.1:1\n")
            .unwrap()
            .request_headers
            .is_empty());
        let text = "request_header.Host = api.internal:8080\n\
                    request_header.X-Backend-Auth =  Bearer abc; scope=\"a, b\"  \n\
                    request_header.Accept-Encoding =\n\
                    request_header.X-Debug =   # empty: removed\n\
                    request_header.Cookie =\n\
                    request_header.Authorization = Basic dXNlcjpwdw==\n\
                    request_header.X_Api_Key = k\n\
                    response_header.X-Debug = 1\n";
        let some = |v: &str| Some(v.to_string());
        assert_eq!(
            request_edits(text).unwrap(),
            [
                ("Host".to_string(), some("api.internal:8080")),
                (
                    "X-Backend-Auth".to_string(),
                    some("Bearer abc; scope=\"a, b\"")
                ),
                ("Accept-Encoding".to_string(), None),
                ("X-Debug".to_string(), None),
                ("Cookie".to_string(), None),
                ("Authorization".to_string(), some("Basic dXNlcjpwdw==")),
                ("X_Api_Key".to_string(), some("k")),
            ]
        );
        // Each family its own: the response key is not a request edit.
        let c = build(&format!("targets = 127.0.0.1:1\n{text}")).unwrap();
        let response: Vec<_> = c.response_headers.iter().collect();
        assert_eq!(response, [("X-Debug", Some("1"))]);
        // At most 64 of each family.
        let lines: String = (0..64)
            .map(|i| format!("request_header.X-{i} = {i}\nresponse_header.X-{i} = {i}\n"))
            .collect();
        assert_eq!(request_edits(&lines).unwrap().len(), 64);
        let e = request_edits(&format!("{lines}request_header.X-64 = 64\n")).unwrap_err();
        assert_eq!(e.place, "proxy.conf:130");
        assert!(
            e.message.contains("more than 64 request_header.* keys"),
            "{e}"
        );
    }

    #[test]
    fn a_request_header_name_given_twice_in_any_case_is_a_duplicate_key() {
        let e = request_edits(
            "request_header.X-Backend-Auth = a\n# again\nrequest_header.x-backend-AUTH = b\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:4: duplicate key `request_header.x-backend-AUTH` (first set on line 2)"
        );
        let e = request_edits("request_header.HOST = a\nrequest_header.host = b\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.contains("duplicate key"), "{e}");
        // The same name in both families is two keys.
        assert!(request_edits("request_header.X-A = 1\nresponse_header.x-a = 1\n").is_ok());
    }

    #[test]
    fn request_header_names_the_proxy_writes_frames_with_or_reads_are_refused() {
        for (name, says) in [
            ("Content-Length", "frames the message"),
            ("Transfer-Encoding", "frames the message"),
            ("connection", "frames the message"),
            ("Keep-Alive", "frames the message"),
            ("TE", "frames the message"),
            ("Trailer", "frames the message"),
            ("Upgrade", "frames the message"),
            ("Proxy-Connection", "frames the message"),
            ("X-Forwarded-For", "name every client alike"),
            ("x-real-ip", "name every client alike"),
            ("Forwarded", "name every client alike"),
            ("X-Forwarded-Proto", "client's scheme"),
            ("X-Forwarded-Host", "the Host the client asked for"),
            ("Via", "via = false"),
            ("Expect", "100-continue itself"),
            ("Surrogate-Capability", "surrogate_id"),
            ("Range", "neither set nor removed"),
            ("If-Range", "neither set nor removed"),
            ("If-None-Match", "validators"),
            ("If-Modified-Since", "validators"),
            ("If-Match", "validators"),
            ("If-Unmodified-Since", "validators"),
            ("Max-Forwards", "counts it down"),
            // As a backend that reads `_` as `-` would take them.
            ("X_Forwarded_For", "take for X-Forwarded-For"),
            ("Content_Length", "take for Content-Length"),
            ("x_real_ip", "take for x-real-ip"),
        ] {
            for value in ["x", ""] {
                let line = format!("request_header.{name} = {value}\n");
                let e = request_edits(&line).unwrap_err();
                assert_eq!(e.place, "proxy.conf:2", "{line}");
                let key = format!("request_header.{name}: ");
                assert!(e.message.starts_with(&key), "{line}: {e}");
                assert!(e.message.contains(says), "{line}: {e}");
            }
        }
        // What only a response's edits refuse is a request's to edit, and
        // the other way round.
        for name in [
            "Date",
            "ETag",
            "Content-Type",
            "Vary",
            "X-Cache",
            "Set-Cookie",
        ] {
            assert!(
                request_edits(&format!("request_header.{name} = x\n")).is_ok(),
                "{name}"
            );
        }
        assert!(field_edits("response_header.X-Forwarded-For = x\n").is_ok());
        assert!(field_edits("response_header.Cookie = x\n").is_ok());
        // The request's ID field is the proxy's, wherever the two keys
        // stand, and as read with `_` as `-`.
        for text in [
            "request_id_header = X-Request-ID\nrequest_header.x-request-id = 1\n",
            "request_header.X-Request-Id =\nrequest_id_header = X-Request-ID\n",
            "request_id_header = X-Request-ID\nrequest_header.X_Request_ID = 1\n",
        ] {
            let e = request_edits(text).unwrap_err();
            assert!(
                e.message.contains(
                    "is request_id_header, which the proxy writes on every request sent to a \
                     backend itself"
                ),
                "{text:?}: {e}"
            );
            let line = if text.starts_with("request_id") { 3 } else { 2 };
            assert_eq!(e.place, format!("proxy.conf:{line}"), "{text:?}");
        }
    }

    #[test]
    fn host_may_be_set_to_a_host_value_but_not_removed() {
        for good in [
            "api.internal",
            "bucket.s3.example:443",
            "[::1]:8080",
            "10.0.0.2",
        ] {
            let edits = request_edits(&format!("request_header.Host = {good}\n")).unwrap();
            assert_eq!(edits, [("Host".to_string(), Some(good.to_string()))]);
        }
        for removed in [
            "request_header.Host =\n",
            "request_header.host =   # gone\n",
        ] {
            let e = request_edits(removed).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{removed}");
            assert!(
                e.message.contains("Host may be set but not removed"),
                "{removed}: {e}"
            );
        }
        for bad in ["a b", "a/b", "user@a", "a%2eb", "a,b"] {
            let e = request_edits(&format!("request_header.Host = {bad}\n")).unwrap_err();
            assert!(e.message.starts_with("request_header.Host: "), "{bad}: {e}");
            assert!(e.message.contains("is not a Host value"), "{bad}: {e}");
        }
    }

    #[test]
    fn cookie_may_be_removed_from_requests_but_not_set() {
        assert_eq!(
            request_edits("request_header.cookie =\n").unwrap(),
            [("cookie".to_string(), None)]
        );
        let e = request_edits("request_header.Cookie = sid=1\n").unwrap_err();
        assert!(
            e.message.starts_with(
                "request_header.Cookie: Cookie may be removed (an empty value) but not set"
            ),
            "{e}"
        );
    }

    #[test]
    fn request_header_values_are_visible_ascii_of_at_most_8_kib() {
        let long = "v".repeat(8 * 1024 + 1);
        for (value, says) in [
            ("a\rX-Injected: 1", "control character"),
            ("a\u{7f}b", "control character"),
            ("caf\u{e9}", "outside ASCII"),
            (long.as_str(), "at most 8192"),
        ] {
            let e = request_edits(&format!("request_header.X-A = {value}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{value:?}");
            assert!(e.message.starts_with("request_header.X-A: "), "{e}");
            assert!(e.message.contains(says), "{value:?}: {e}");
        }
        let e = request_edits("request_header.X(A) = 1\n").unwrap_err();
        assert!(e.message.contains("is not a header field name"), "{e}");
    }

    #[test]
    fn request_header_keys_come_from_the_file_alone() {
        let mut l = Loader::new();
        l.file(
            "proxy.conf",
            "targets = 127.0.0.1:1\nresponse_header.X-B = 2\nrequest_header.X-A = 1\n",
        )
        .unwrap();
        // Warned about and ignored, as any variable naming no key.
        l.env([
            ("INVERSO_REQUEST_HEADER_X_A".to_string(), "2".to_string()),
            ("INVERSO_REQUEST_HEADER".to_string(), "X-A: 2".to_string()),
        ]);
        let e = l
            .clone()
            .flag("request_header.X-A", "3", "--set")
            .unwrap_err();
        assert_eq!(e.place, "flag --set");
        assert!(
            e.message.contains(
                "`request_header.X-A`: request_header.<Field-Name> keys are read from the \
                 configuration file only"
            ),
            "{e}"
        );
        let c = l.build().unwrap();
        let edits: Vec<_> = c.request_headers.iter().collect();
        assert_eq!(edits, [("X-A", Some("1"))]);
        // Both families, in the file's order, for `check`.
        let shown: Vec<_> = l
            .field_settings()
            .map(|(f, k, s)| (f, k, s.origin.to_string()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    FieldFamily::Response,
                    "response_header.X-B".to_string(),
                    "proxy.conf:2".to_string()
                ),
                (
                    FieldFamily::Request,
                    "request_header.X-A".to_string(),
                    "proxy.conf:3".to_string()
                ),
            ]
        );
    }

    #[test]
    fn sticky_cookie_is_a_cookie_name() {
        let c = build("targets = 127.0.0.1:1\nsticky_cookie = SERVERID\n").unwrap();
        assert_eq!(c.sticky_cookie.as_deref(), Some("SERVERID"));
        for bad in ["a b", "a=b", "a;b"] {
            let e = build(&format!("targets = 127.0.0.1:1\nsticky_cookie = {bad}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{bad}");
        }
    }

    #[test]
    fn rate_limit_is_a_rate_with_a_burst_of_a_second_unless_set() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert_eq!(c.effective_rate_limit(), None);
        let c = build("targets = 127.0.0.1:1\nrate_limit = 600/m\n").unwrap();
        let (rate, burst) = c.effective_rate_limit().unwrap();
        assert_eq!((rate.to_string(), burst), ("600/m".to_string(), 10));
        let c = build("targets = 127.0.0.1:1\nrate_limit = 5/s\nrate_limit_burst = 0\n").unwrap();
        assert_eq!(c.effective_rate_limit().unwrap().1, 0);
        for bad in [
            "rate_limit = 10",
            "rate_limit = 10/d",
            "rate_limit_burst = -1",
        ] {
            let e = build(&format!("targets = 127.0.0.1:1\n{bad}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{bad}");
        }
        let e = build("targets = 127.0.0.1:1\nrate_limit_burst = 5\n").unwrap_err();
        assert!(e.message.contains("rate_limit is not"), "{e}");
        // What requests are counted by: the address, or what a request
        // carries.
        use crate::upstream::hash_on::HashOn;
        for (value, key) in [
            ("address", None),
            ("", None),
            ("header:X-Api-Key", Some(HashOn::Header("X-Api-Key".into()))),
            ("query:key", Some(HashOn::Query("key".into()))),
        ] {
            let text =
                format!("targets = 127.0.0.1:1\nrate_limit = 5/s\nrate_limit_key = {value}\n");
            assert_eq!(build(&text).unwrap().rate_limit_key, key, "{value}");
        }
        let e =
            build("targets = 127.0.0.1:1\nrate_limit = 5/s\nrate_limit_key = ip\n").unwrap_err();
        assert!(e.message.contains("rate_limit_key"), "{e}");
        let e = build("targets = 127.0.0.1:1\nrate_limit_key = header:X\n").unwrap_err();
        assert!(e.message.contains("nothing is limited"), "{e}");
    }

    #[test]
    fn real_ip_from_is_a_list_of_blocks() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(c.real_ip_from.is_empty());
        let c = build("targets = 127.0.0.1:1\nreal_ip_from = 10.0.0.0/8, 192.168.1.7\n").unwrap();
        let shown: Vec<String> = c.real_ip_from.iter().map(|c| c.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.168.1.7/32"]);
        let e = build("targets = 127.0.0.1:1\nreal_ip_from = 10.0.0.0/40\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        assert!(e.message.contains("prefix"), "{e}");
        let e = build("targets = 127.0.0.1:1\nreal_ip_from = 10.0.0.0/8,\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
    }

    #[test]
    fn log_skips_are_off_and_read_as_paths_and_statuses() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(c.log_skip_paths.is_empty() && !c.log_skips(false, 200));
        let text = "targets = 127.0.0.1:1\nlog_skip_paths = /healthz, /ready\n\
                    log_skip_statuses = 204, 300-399\n";
        let c = build(text).unwrap();
        assert!(c.log_skip_paths.matches("/healthz/db") && !c.log_skip_paths.matches("/x"));
        assert!(c.log_skips(true, 200) && c.log_skips(true, 399));
        assert!(!c.log_skips(true, 400) && !c.log_skips(true, 503));
        assert!(c.log_skips(false, 204) && c.log_skips(false, 302));
        assert!(!c.log_skips(false, 200) && !c.log_skips(false, 404));
        for (line, message) in [
            ("log_skip_paths = healthz", "does not start with `/`"),
            ("log_skip_statuses = 600", "not a status"),
            ("log_skip_statuses = 399-200", "from high to low"),
        ] {
            let e = build(&format!("targets = 127.0.0.1:1\n{line}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{line}");
            assert!(e.message.contains(message), "{line}: {e}");
        }
    }

    #[test]
    fn redirect_to_https_is_off_and_its_exceptions_are_paths_named_by_line() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(!c.redirect_to_https && c.redirect_to_https_except.is_empty());
        let text = "targets = 127.0.0.1:1\nreal_ip_from = 10.0.0.0/8\nredirect_to_https = on\n\
                    redirect_to_https_except = /healthz, /.well-known/acme-challenge/\n";
        let c = build(text).unwrap();
        assert!(c.redirect_to_https);
        assert!(c.redirect_to_https_except.matches("/healthz"));
        assert!(c
            .redirect_to_https_except
            .matches("/.well-known/acme-challenge/x"));
        for (line, message) in [
            (
                "redirect_to_https_except = healthz",
                "does not start with `/`",
            ),
            ("redirect_to_https_except = /a?b", "not the start of a path"),
            ("redirect_to_https_except = /a,", "empty entry"),
        ] {
            let text = format!("targets = 127.0.0.1:1\nredirect_to_https = true\n\n{line}\n");
            let e = build(&text).unwrap_err();
            assert_eq!(e.place, "proxy.conf:4", "{line}");
            assert!(e.message.contains(message), "{line}: {e}");
        }
        let e = build("targets = 127.0.0.1:1\n\nredirect_to_https = maybe\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.starts_with("redirect_to_https: "), "{e}");
        // Exceptions without the redirect say nothing: refused, by their line.
        let e = build("targets = 127.0.0.1:1\nredirect_to_https_except = /healthz\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        assert!(e.message.contains("redirect_to_https is not"), "{e}");
        // Without a trusted proxy or PROXY header every request would be
        // redirected: a warning, not an error (a listener that only
        // redirects is a use).
        let c = build("targets = 127.0.0.1:1\nredirect_to_https = true\n").unwrap();
        assert!(c.redirect_to_https);
    }

    #[test]
    fn with_redirect_to_https_location_is_the_proxy_s_own() {
        let text = "targets = 127.0.0.1:1\nredirect_to_https = true\nproxy_protocol = true\n";
        for line in [
            "response_header.Location = https://example.com/",
            "response_header.location =",
        ] {
            let e = build(&format!("{text}{line}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:4", "{line}");
            assert!(e.message.contains("writes Location"), "{line}: {e}");
        }
        let c = build("targets = 127.0.0.1:1\nresponse_header.Location =\n").unwrap();
        assert!(
            !c.redirect_to_https,
            "allowed without the redirect, as before"
        );
        let text = format!("{text}response_header.Strict-Transport-Security = max-age=63072000\n");
        assert!(build(&text).is_ok(), "HSTS beside the redirect");
    }

    #[test]
    fn allow_from_and_deny_from_are_lists_of_blocks() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(c.allow_from.is_empty() && c.deny_from.is_empty());
        let text = "targets = 127.0.0.1:1\nallow_from = 10.0.0.0/8, ::1\ndeny_from = 10.0.0.5\n";
        let c = build(text).unwrap();
        let shown = |list: &[Cidr]| list.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(shown(&c.allow_from), ["10.0.0.0/8", "::1/128"]);
        assert_eq!(shown(&c.deny_from), ["10.0.0.5/32"]);
        for (line, message) in [
            ("allow_from = 10.0.0.0/33", "prefix"),
            ("allow_from = 10.0.0.0/8,", "not an address"),
            ("deny_from = 10.1.2.3/8", "bits set past"),
            ("deny_from = localhost", "not an address"),
        ] {
            let e = build(&format!("targets = 127.0.0.1:1\n{line}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{line}");
            let key = line.split(' ').next().unwrap_or_default();
            assert!(e.message.starts_with(key), "{e}");
            assert!(e.message.contains(message), "{e}");
        }
    }

    #[test]
    fn worker_scheduling_is_normal_or_batch() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(!c.batch_scheduling);
        let c = build("targets = 127.0.0.1:1\nworker_scheduling = batch\n").unwrap();
        assert!(c.batch_scheduling);
        let e = build("targets = 127.0.0.1:1\nworker_scheduling = fast\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
        assert!(parse_duration("-3s").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("10MB").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }

    #[test]
    fn admin_and_log_keys() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert_eq!(c.admin_addr(), None);
        assert_eq!(c.log_format, LogFormat::Combined);
        assert!(!c.log_headers);
        let c = build(
            "targets = 127.0.0.1:1\nadmin_port = 9901\nlog_format = json\nlog_headers = yes\n",
        )
        .unwrap();
        assert_eq!(c.admin_addr(), Some("127.0.0.1:9901".parse().unwrap()));
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(c.log_headers);
        let e = build("targets = 127.0.0.1:1\nlog_format = xml\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
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
            .env([("INVERSO_LOG_FORMAT".into(), "$nope".into())])
            .build()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment INVERSO_LOG_FORMAT: log_format: unknown variable `$nope`"
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
