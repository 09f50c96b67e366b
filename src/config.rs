//! proxy.conf, `INVERSO_*` environment variables and command-line flags,
//! merged into one typed [`Config`].
//!
//! Every key has one entry in [`KEYS`]: its name, its default (as text, parsed
//! like any other value so defaults cannot drift from the parser) and a
//! one-line description used by `inverso check` and the README. Precedence is
//! flag > environment > file > default, and every value remembers where it
//! came from so an error can say `proxy.conf:7: ...` or
//! `environment INVERSO_PORT: ...`.

use crate::realip::Cidr;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The effective configuration of one proxy process.
#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub bind: IpAddr,
    pub targets: Vec<Target>,
    pub cache_size: u64,
    pub ttl: Duration,
    pub unit_time: Duration,
    pub connection_timeout: Duration,
    /// The longest opening a backend connection may take; `None`:
    /// `connection_timeout`.
    pub connect_timeout: Option<Duration>,
    pub path_to_persistence: Option<PathBuf>,
    pub path_to_log: Option<PathBuf>,
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
    /// `None`: an eighth of `cache_size`.
    pub max_object_size: Option<u64>,
    pub cache_unlabeled: bool,
    pub stale_if_error: Duration,
    pub balance: Balance,
    /// Failures within `fail_timeout` that take a target out; 0 = never.
    pub max_fails: u32,
    pub fail_timeout: Duration,
    /// Other targets tried after a failure; `None`: every other target.
    pub retries: Option<usize>,
    /// Active health checks; `None`: off.
    pub health_check_path: Option<String>,
    pub health_check_interval: Duration,
    pub health_check_rise: u32,
    pub health_check_fall: u32,
    /// The admin listener's port; `None`: no admin listener.
    pub admin_port: Option<u16>,
    pub admin_bind: IpAddr,
    pub log_format: LogFormat,
    /// Add the request and response heads to each access-log record.
    pub log_headers: bool,
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
    /// Largest request body in bytes; 413 past it. 0 = unlimited.
    pub max_body_size: u64,
    /// Request bodies with a Content-Length up to this are read whole
    /// before a backend is contacted; larger ones stream.
    pub request_buffer_size: u64,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// The combined log format plus `upstream=`, `cache=`, `duration_ms=`.
    #[default]
    Combined,
    /// One JSON object per line, with the same fields.
    Json,
}

/// A backend as configured: `host:port` with an optional `weight=N` and
/// `backup`, resolved to an address at load time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// As written in the configuration, e.g. `app1.internal:8080`.
    pub name: String,
    pub addr: SocketAddr,
    pub weight: u32,
    /// Used only while every other target is down or already tried (as
    /// nginx's and HAProxy's `backup`).
    pub backup: bool,
}

/// How requests are spread over the targets (`balance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    WeightedRoundRobin,
    LeastConn,
    IpHash,
    RandomTwo,
}

impl Balance {
    const NAMES: &'static [(&'static str, Balance)] = &[
        ("round_robin", Balance::RoundRobin),
        ("weighted_round_robin", Balance::WeightedRoundRobin),
        ("least_conn", Balance::LeastConn),
        ("ip_hash", Balance::IpHash),
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

type Apply = fn(&mut Config, &str) -> Result<(), String>;

/// One configuration key.
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    apply: Apply,
}

/// Every key proxy.conf understands.
pub const KEYS: &[Key] = &[
    Key {
        name: "port",
        default: "8080",
        help: "listening port",
        apply: |c, v| parse_number(v, 0..=65535).map(|n| c.port = n as u16),
    },
    Key {
        name: "bind",
        default: "0.0.0.0",
        help: "listening address",
        apply: |c, v| {
            v.parse()
                .map(|a| c.bind = a)
                .map_err(|_| format!("`{v}` is not an IP address"))
        },
    },
    Key {
        name: "targets",
        default: "",
        help: "backends, comma separated host:port with optional weight=N",
        apply: |c, v| parse_targets(v).map(|t| c.targets = t),
    },
    Key {
        name: "cache_size",
        default: "64MiB",
        help: "cache capacity in bytes; 0 disables the cache",
        apply: |c, v| parse_size(v).map(|n| c.cache_size = n),
    },
    Key {
        name: "ttl",
        default: "1h",
        help: "the longest a response stays fresh in the cache",
        apply: |c, v| parse_duration(v).map(|d| c.ttl = d),
    },
    Key {
        name: "unit_time",
        default: "5s",
        help: "interval of the timer thread: expire entries, write the snapshot",
        apply: |c, v| parse_positive_duration(v).map(|d| c.unit_time = d),
    },
    Key {
        name: "connection_timeout",
        default: "30s",
        help: "idle/read timeout for client and upstream sockets",
        apply: |c, v| parse_positive_duration(v).map(|d| c.connection_timeout = d),
    },
    Key {
        name: "connect_timeout",
        default: "",
        help: "longest opening a backend connection may take; empty = connection_timeout",
        apply: |c, v| optional(v, parse_positive_duration).map(|d| c.connect_timeout = d),
    },
    Key {
        name: "path_to_persistence",
        default: "cache.bin",
        help: "cache snapshot file; empty = no persistence",
        apply: |c, v| {
            c.path_to_persistence = optional_path(v);
            Ok(())
        },
    },
    Key {
        name: "path_to_log",
        default: "",
        help: "file that receives the same log lines as stdout; empty = none",
        apply: |c, v| {
            c.path_to_log = optional_path(v);
            Ok(())
        },
    },
    Key {
        name: "max_connections",
        default: "10000",
        help: "most client connections served at once; more get 503",
        apply: |c, v| parse_number(v, 1..=1_000_000).map(|n| c.max_connections = n as usize),
    },
    Key {
        name: "max_connections_per_client",
        default: "0",
        help: "connections one client address may hold at once; more get 503; 0 = no limit",
        apply: |c, v| {
            parse_number(v, 0..=1_000_000).map(|n| c.max_connections_per_client = n as usize)
        },
    },
    Key {
        name: "upstream_keepalive",
        default: "128",
        help: "idle keep-alive connections kept per target; 0 = close after each request",
        apply: |c, v| parse_number(v, 0..=100_000).map(|n| c.upstream_keepalive = n as usize),
    },
    Key {
        name: "max_object_size",
        default: "",
        help: "largest response body stored in the cache; empty = cache_size / 8",
        apply: |c, v| optional(v, parse_size).map(|n| c.max_object_size = n),
    },
    Key {
        name: "cache_unlabeled",
        default: "false",
        help: "cache responses that carry no freshness information for ttl",
        apply: |c, v| parse_bool(v).map(|b| c.cache_unlabeled = b),
    },
    Key {
        name: "stale_if_error",
        default: "1h",
        help: "how long an expired entry may be served when no backend answers",
        apply: |c, v| parse_duration(v).map(|d| c.stale_if_error = d),
    },
    Key {
        name: "balance",
        default: "round_robin",
        help: "round_robin, weighted_round_robin, least_conn, ip_hash or random_two",
        apply: |c, v| Balance::parse(v).map(|b| c.balance = b),
    },
    Key {
        name: "max_fails",
        default: "1",
        help: "failures within fail_timeout that take a target out of rotation; 0 = never",
        apply: |c, v| parse_number(v, 0..=1_000_000).map(|n| c.max_fails = n as u32),
    },
    Key {
        name: "fail_timeout",
        default: "10s",
        help: "window for counting max_fails, and how long a failed target stays out",
        apply: |c, v| parse_positive_duration(v).map(|d| c.fail_timeout = d),
    },
    Key {
        name: "retries",
        default: "",
        help: "other targets tried when one fails; empty = every other target",
        apply: |c, v| optional(v, |v| parse_number(v, 0..=1000)).map(|n| c.retries = n),
    },
    Key {
        name: "health_check_path",
        default: "",
        help: "path probed with GET on every target; empty = no active checks",
        apply: |c, v| {
            if !v.is_empty() && !v.starts_with('/') {
                return Err(format!("`{v}` must be a path starting with /"));
            }
            // What inverso itself would accept as a request-target: a probe
            // the backend must refuse as malformed tests nothing.
            if crate::http::head::check_target_bytes(v.as_bytes()).is_err() {
                return Err(format!(
                    "`{}` is not a valid request path (spaces, control or non-ASCII characters, a bad %-escape, a #fragment)",
                    v.escape_debug()
                ));
            }
            c.health_check_path = (!v.is_empty()).then(|| v.to_string());
            Ok(())
        },
    },
    Key {
        name: "health_check_interval",
        default: "5s",
        help: "time between two probes of a target",
        apply: |c, v| parse_positive_duration(v).map(|d| c.health_check_interval = d),
    },
    Key {
        name: "health_check_rise",
        default: "2",
        help: "good probes in a row that bring a target back",
        apply: |c, v| parse_number(v, 1..=1000).map(|n| c.health_check_rise = n as u32),
    },
    Key {
        name: "health_check_fall",
        default: "3",
        help: "failed probes in a row that take a target out",
        apply: |c, v| parse_number(v, 1..=1000).map(|n| c.health_check_fall = n as u32),
    },
    Key {
        name: "shutdown_timeout",
        default: "10s",
        help: "on SIGINT/SIGTERM, how long requests in flight may take to finish",
        apply: |c, v| parse_duration(v).map(|d| c.shutdown_timeout = d),
    },
    Key {
        name: "worker_scheduling",
        default: "normal",
        help: "`batch` runs connection threads under SCHED_BATCH (a woken thread does not preempt the running one): no measurable gain since workers yield, a longer tail at high concurrency",
        apply: |c, v| {
            c.batch_scheduling = match v {
                "normal" => false,
                "batch" => true,
                other => return Err(format!("`{other}` is not `normal` or `batch`")),
            };
            Ok(())
        },
    },
    Key {
        name: "worker_priority",
        default: "",
        help: "nice value (-20..=19) of connection threads, as nginx's worker_priority; below 0 needs CAP_SYS_NICE; empty = the process's own",
        apply: |c, v| optional(v, |v| parse_number(v, -20..=19)).map(|n| c.worker_priority = n),
    },
    Key {
        name: "admin_port",
        default: "",
        help: "port of the admin listener (/metrics, /status, /healthz, purge); empty = off",
        apply: |c, v| {
            c.admin_port = if v.is_empty() {
                None
            } else {
                Some(parse_number(v, 0..=65535)? as u16)
            };
            Ok(())
        },
    },
    Key {
        name: "admin_bind",
        default: "127.0.0.1",
        help: "address of the admin listener",
        apply: |c, v| {
            v.parse()
                .map(|a| c.admin_bind = a)
                .map_err(|_| format!("`{v}` is not an IP address"))
        },
    },
    Key {
        name: "log_format",
        default: "combined",
        help: "access-log format: combined or json",
        apply: |c, v| {
            c.log_format = match v {
                "combined" => LogFormat::Combined,
                "json" => LogFormat::Json,
                _ => return Err(format!("`{v}` is not a log format (combined or json)")),
            };
            Ok(())
        },
    },
    Key {
        name: "log_headers",
        default: "false",
        help: "add the request and response heads to each access-log record",
        apply: |c, v| parse_bool(v).map(|b| c.log_headers = b),
    },
    Key {
        name: "max_header_size",
        default: "16KiB",
        help: "largest request head (request line + fields); larger gets 431",
        apply: |c, v| {
            parse_size_in(v, 1024..=MAX_HEADER_SIZE_CEILING).map(|n| c.max_header_size = n as usize)
        },
    },
    Key {
        name: "max_headers",
        default: "100",
        help: "most header fields in a request; more gets 431",
        apply: |c, v| {
            parse_number(v, 1..=crate::http::head::MAX_HEADERS as u64)
                .map(|n| c.max_headers = n as usize)
        },
    },
    Key {
        name: "max_uri_length",
        default: "8KiB",
        help: "longest request-target; longer gets 414",
        apply: |c, v| {
            parse_size_in(v, 1..=MAX_HEADER_SIZE_CEILING).map(|n| c.max_uri_length = n as usize)
        },
    },
    Key {
        name: "underscores_in_headers",
        default: "false",
        help: "forward request header fields whose name has an underscore (else they are dropped)",
        apply: |c, v| parse_bool(v).map(|b| c.underscores_in_headers = b),
    },
    Key {
        name: "real_ip_from",
        default: "",
        help: "addresses and blocks (10.0.0.0/8) of proxies in front whose X-Forwarded-For names the client (for the log and ip_hash) and whose X-Forwarded-Proto: https is passed on; empty = none",
        apply: |c, v| parse_cidrs(v).map(|list| c.real_ip_from = list),
    },
    Key {
        name: "proxy_protocol",
        default: "false",
        help: "every client connection starts with a PROXY protocol header (v1 or v2) naming the client (v2: and whether it came over TLS), as sent by HAProxy's send-proxy or an AWS NLB; one without is closed",
        apply: |c, v| parse_bool(v).map(|b| c.proxy_protocol = b),
    },
    Key {
        name: "keepalive_requests",
        default: "1000",
        help: "requests served on one client connection, the last answered with Connection: close; 0 = no limit",
        apply: |c, v| parse_number(v, 0..=u64::MAX).map(|n| c.keepalive_requests = n),
    },
    Key {
        name: "max_body_size",
        default: "0",
        help: "largest request body; larger gets 413; 0 = unlimited",
        apply: |c, v| parse_size(v).map(|n| c.max_body_size = n),
    },
    Key {
        name: "request_buffer_size",
        default: "64KiB",
        help: "request bodies with a Content-Length up to this are read whole before a backend is \
               contacted (a slow upload holds no backend connection, and the request may be retried); \
               larger and chunked ones stream; 0 = every body streams",
        apply: |c, v| {
            parse_size_in(v, 0..=MAX_REQUEST_BUFFER).map(|n| c.request_buffer_size = n)
        },
    },
    Key {
        name: "client_header_timeout",
        default: "10s",
        help: "the longest a whole request head may take to arrive; then 408 and close",
        apply: |c, v| parse_positive_duration(v).map(|d| c.client_header_timeout = d),
    },
    Key {
        name: "client_body_timeout",
        default: "30s",
        help: "the longest a client may pause while sending a request body; then 408 and close",
        apply: |c, v| parse_positive_duration(v).map(|d| c.client_body_timeout = d),
    },
];

/// The largest `request_buffer_size` accepted: each connection may hold
/// that much while its body arrives.
const MAX_REQUEST_BUFFER: u64 = 64 << 20;

/// The largest `max_header_size` (and `max_uri_length`) accepted: a head is
/// buffered whole, so this bounds the memory one connection can make us hold.
pub const MAX_HEADER_SIZE_CEILING: u64 = 1 << 20;

fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// A value and where it came from.
#[derive(Clone, Debug)]
pub struct Setting {
    pub value: String,
    pub origin: Origin,
}

/// Collects raw values from the sources in increasing precedence, then
/// builds the typed [`Config`]. Later sources override earlier ones.
#[derive(Clone, Debug)]
pub struct Loader {
    settings: BTreeMap<&'static str, Setting>,
    /// The file name whole-file errors are reported against.
    file: String,
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
            file: "configuration".to_string(),
        }
    }

    /// The file read, or `configuration` when none was (defaults,
    /// environment and flags only).
    pub fn source(&self) -> &str {
        &self.file
    }

    /// Reads proxy.conf text: `key = value` lines, `#` comments and blank
    /// lines ignored. Unknown and repeated keys are errors.
    pub fn file(&mut self, path: &str, text: &str) -> Result<&mut Self, ConfigError> {
        self.file = path.to_string();
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
            match find_key(&rest.to_ascii_lowercase()) {
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

    /// `key: message`, placed where the value of `key` came from: for
    /// checks that span keys, after each key has parsed.
    fn refused(&self, key: &str, message: String) -> ConfigError {
        ConfigError::at(&self.settings[key].origin, format!("{key}: {message}"))
    }

    /// Parses every value into a [`Config`], resolving target names.
    pub fn build(&self) -> Result<Config, ConfigError> {
        let mut config = Config::blank();
        for key in KEYS {
            let setting = &self.settings[key.name];
            (key.apply)(&mut config, &setting.value)
                .map_err(|m| ConfigError::at(&setting.origin, format!("{}: {m}", key.name)))?;
        }
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
            && (config.admin_bind == config.bind
                || config.bind.is_unspecified()
                || config.admin_bind.is_unspecified())
        {
            return Err(self.refused("admin_port", format!("{} is also `port`", config.port)));
        }
        // A target that is this proxy's own listener: the first request
        // would be forwarded to itself, again and again, until every
        // connection slot is taken.
        if config.port != 0 {
            if let Some(t) = target_at(config.listen_addr(), &config.targets) {
                return Err(self.refused(
                    "targets",
                    format!(
                        "{} is this proxy's own address (bind {}, port {}): requests would loop",
                        t.name, config.bind, config.port
                    ),
                ));
            }
        }
        // A probe inverso itself would answer 414.
        if let Some(path) = config
            .health_check_path
            .as_ref()
            .filter(|p| p.len() > config.max_uri_length)
        {
            return Err(self.refused(
                "health_check_path",
                format!(
                    "{} bytes, longer than max_uri_length ({})",
                    path.len(),
                    config.max_uri_length
                ),
            ));
        }
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
        if config.targets.iter().all(|t| t.backup) {
            return Err(self.refused(
                "targets",
                "every target is a backup: at least one must serve before the backups do".into(),
            ));
        }
        // Plain round robin is one atomic increment and has no notion of
        // weight: a weight there would be silently ignored.
        if config.balance == Balance::RoundRobin {
            if let Some(t) = config.targets.iter().find(|t| t.weight != 1) {
                return Err(self.refused(
                    "targets",
                    format!(
                        "{} has weight={}, but balance = round_robin ignores weights (use weighted_round_robin, least_conn, ip_hash or random_two)",
                        t.name, t.weight
                    ),
                ));
            }
        }
        Ok(config)
    }
}

impl Config {
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

    fn blank() -> Config {
        Config {
            port: 0,
            bind: IpAddr::from([0, 0, 0, 0]),
            targets: Vec::new(),
            cache_size: 0,
            ttl: Duration::ZERO,
            unit_time: Duration::from_secs(1),
            connection_timeout: Duration::from_secs(1),
            connect_timeout: None,
            path_to_persistence: None,
            path_to_log: None,
            max_connections: 1,
            max_connections_per_client: 0,
            upstream_keepalive: 0,
            shutdown_timeout: Duration::ZERO,
            batch_scheduling: false,
            worker_priority: None,
            max_object_size: None,
            cache_unlabeled: false,
            stale_if_error: Duration::ZERO,
            balance: Balance::RoundRobin,
            max_fails: 0,
            fail_timeout: Duration::from_secs(1),
            retries: None,
            health_check_path: None,
            health_check_interval: Duration::from_secs(1),
            health_check_rise: 1,
            health_check_fall: 1,
            admin_port: None,
            admin_bind: IpAddr::from([127, 0, 0, 1]),
            log_format: LogFormat::Combined,
            log_headers: false,
            max_header_size: 0,
            max_headers: 0,
            max_uri_length: 0,
            underscores_in_headers: false,
            real_ip_from: Vec::new(),
            proxy_protocol: false,
            max_body_size: 0,
            request_buffer_size: 0,
            client_header_timeout: Duration::from_secs(1),
            client_body_timeout: Duration::from_secs(1),
            keepalive_requests: 0,
            log_to_stdout: true,
        }
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
    let bind = listen.ip().to_canonical();
    let local = bind.is_loopback() || bind.is_unspecified();
    targets.iter().find(|t| {
        let ip = t.addr.ip().to_canonical();
        t.addr.port() == listen.port()
            && (ip == bind
                || (bind.is_unspecified() && ip.is_loopback())
                // Connecting to 0.0.0.0 or :: reaches this host.
                || (ip.is_unspecified() && local))
    })
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

/// `#` starts a comment anywhere on a line (values never contain `#`).
fn strip_comment(line: &str) -> &str {
    line.split_once('#').map_or(line, |(before, _)| before)
}

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
    let nearest = KEYS
        .iter()
        .map(|k| (edit_distance(key, k.name), k.name))
        .min()
        .filter(|(d, name)| *d <= 3.max(name.len() / 4));
    match nearest {
        Some((_, name)) => format!("unknown key `{key}` (did you mean `{name}`?)"),
        None => format!("unknown key `{key}`"),
    }
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

/// An empty value is "not set"; anything else must parse.
fn optional<T>(
    v: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if v.is_empty() {
        Ok(None)
    } else {
        parse(v).map(Some)
    }
}

/// A whole number within `range` (the message names the range either way:
/// a number too large for `T` fails to parse rather than to fit).
fn parse_number<T>(v: &str, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let (start, end) = (range.start(), range.end());
    // Digits only (and a minus sign): `parse` would also take `+80`.
    let digits = v.strip_prefix('-').unwrap_or(v);
    let n: T = Some(v)
        .filter(|_| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("`{v}` is not a whole number ({start}..={end})"))?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is out of range ({start}..={end})"))
    }
}

/// `500ms`, `30s`, `5m`, `1h`; a bare number is seconds.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{v}` is not a duration (e.g. 500ms, 30s, 5m, 1h)"))?;
    let millis_per = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{v}` (use ms, s, m or h)"
            ))
        }
    };
    n.checked_mul(millis_per)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{v}` is too long"))
}

fn parse_positive_duration(v: &str) -> Result<Duration, String> {
    match parse_duration(v)? {
        d if d.is_zero() => Err("must be greater than zero".to_string()),
        d => Ok(d),
    }
}

/// `512B`, `64KiB`, `64MiB`, `1GiB` (`K`, `M`, `G` are the same binary
/// units); a bare number is bytes.
pub fn parse_size(v: &str) -> Result<u64, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{v}` is not a size (e.g. 4096, 512KiB, 64MiB, 1GiB)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" | "mb" | "gb" => {
            return Err(format!(
                "`{v}`: use KiB, MiB or GiB (sizes are binary, 1 KiB = 1024 bytes)"
            ))
        }
        other => return Err(format!("unknown size unit `{other}` in `{v}`")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{v}` is too large"))
}

fn parse_size_in(v: &str, range: std::ops::RangeInclusive<u64>) -> Result<u64, String> {
    let n = parse_size(v)?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{n} bytes is out of range ({}..={} bytes)",
            range.start(),
            range.end()
        ))
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!(
            "`{v}` is not a boolean (true or false; also yes/no, on/off, 1/0)"
        )),
    }
}

fn optional_path(v: &str) -> Option<PathBuf> {
    (!v.is_empty()).then(|| PathBuf::from(v))
}

/// `10.0.0.0/8, 192.168.1.10, ...`; empty = none.
fn parse_cidrs(v: &str) -> Result<Vec<Cidr>, String> {
    if v.trim().is_empty() {
        return Ok(Vec::new());
    }
    v.split(',').map(|item| Cidr::parse(item.trim())).collect()
}

/// `host:port[ weight=N][ backup], ...`; each name is resolved once, here, so a
/// typo is a start-up error rather than a stream of 502s.
fn parse_targets(v: &str) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for item in v.split(',') {
        let mut words = item.split_whitespace();
        let Some(name) = words.next() else {
            if v.trim().is_empty() {
                break;
            }
            return Err("empty entry in the targets list".to_string());
        };
        let mut weight = None;
        let mut backup = false;
        for option in words {
            if option == "backup" {
                if backup {
                    return Err(format!("target {name}: backup given twice"));
                }
                backup = true;
                continue;
            }
            match option.split_once('=') {
                Some(("weight", _)) if weight.is_some() => {
                    return Err(format!("target {name}: weight given twice"))
                }
                Some(("weight", w)) => {
                    weight = Some(
                        parse_number(w, 1..=10_000)
                            .map_err(|m| format!("target {name}: weight: {m}"))?
                            as u32,
                    )
                }
                _ => {
                    return Err(format!(
                        "target {name}: unknown option `{option}` (expected weight=N or backup)"
                    ))
                }
            }
        }
        let addr = resolve(name)?;
        // By address: `127.0.0.1:80` and `localhost:80` are one backend.
        if let Some(twin) = targets.iter().find(|t: &&Target| t.addr == addr) {
            return Err(format!(
                "target {name} is listed twice (as {}, both {addr}; use weight=N instead)",
                twin.name
            ));
        }
        targets.push(Target {
            name: name.to_string(),
            addr,
            weight: weight.unwrap_or(1),
            backup,
        });
    }
    Ok(targets)
}

fn resolve(name: &str) -> Result<SocketAddr, String> {
    if let Some((scheme, rest)) = name.split_once("://") {
        let hint = match scheme.to_ascii_lowercase().as_str() {
            "http" => format!(" (`{}`)", rest.trim_end_matches('/')),
            _ => String::new(),
        };
        return Err(format!(
            "target `{name}`: write host:port, without a scheme{hint}; backends are spoken to in plain HTTP"
        ));
    }
    let (host, port) = name
        .rsplit_once(':')
        .ok_or_else(|| format!("target `{name}` needs a port (host:port)"))?;
    if host.is_empty() {
        return Err(format!("target `{name}` has no host"));
    }
    let port = parse_number(port, 1..=65535).map_err(|m| format!("target `{name}`: port {m}"))?;
    let port = port as u16;
    // Brackets are for IPv6 addresses (RFC 3986 §3.2.2), and an IPv6
    // address needs them: `::1:80` could be an address without a port.
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .and_then(|ip| ip.parse::<std::net::Ipv6Addr>().ok())
            .map(|ip| SocketAddr::new(ip.into(), port))
            .ok_or_else(|| {
                format!("target `{name}`: `{host}` is not an IPv6 address in brackets")
            });
    }
    if host.contains(':') {
        return Err(format!(
            "target `{name}`: an IPv6 address goes in brackets, as `[{host}]:{port}`"
        ));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("target `{name}` does not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("target `{name}` does not resolve to any address"))
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
        assert_eq!(c.targets[1].addr, "[::1]:2".parse().unwrap());
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
    fn errors_name_the_line() {
        let e = build("targets = 127.0.0.1:1\n\nport = http\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.contains("port"), "{e}");

        let e = build("targets = 127.0.0.1:1\nprot = 80\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:2: unknown key `prot` (did you mean `port`?)"
        );

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
        let e = build("targets = 127.0.0.1\n").unwrap_err();
        assert!(e.message.contains("needs a port"), "{e}");
        let e = build("targets = 127.0.0.1:1 weight=0\n").unwrap_err();
        assert!(e.message.contains("weight"), "{e}");
        let e = build("targets = 127.0.0.1:1,,127.0.0.1:2\n").unwrap_err();
        assert!(e.message.contains("empty entry"), "{e}");
        let e = build("targets = no-such-host.invalid:80\n").unwrap_err();
        assert!(e.message.contains("does not resolve"), "{e}");
        let e = build("targets = 127.0.0.1:1 weight=2 weight=3\n").unwrap_err();
        assert!(e.message.contains("weight given twice"), "{e}");
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
        assert!(e.message.contains("expected weight=N or backup"), "{e}");
        // One backend under two names.
        let e = build("targets = 127.0.0.1:1, 127.0.0.1:01\n").unwrap_err();
        assert!(e.message.contains("listed twice"), "{e}");
        // Spellings that would be read some other way than meant.
        for (target, says) in [
            ("http://127.0.0.1:80/", "without a scheme (`127.0.0.1:80`)"),
            ("https://127.0.0.1:443", "without a scheme;"),
            ("::1:80", "as `[::1]:80`"),
            ("[127.0.0.1]:80", "not an IPv6 address in brackets"),
            ("[::1:80", "not an IPv6 address in brackets"),
            ("127.0.0.1:+80", "not a whole number"),
        ] {
            let e = build(&format!("targets = {target}\n")).unwrap_err();
            assert!(e.message.contains(says), "{target}: {e}");
        }
        assert!(build("port = +80\ntargets = 127.0.0.1:1\n").is_err());
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
        ] {
            assert!(build(text).is_err(), "{text:?}");
        }
        // Another address on the same port is another server.
        assert!(build("port = 9000\nbind = 127.0.0.2\ntargets = 127.0.0.1:9000\n").is_ok());
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

        let c = build("targets = 127.0.0.1:1\nconnect_timeout = 3s\n").unwrap();
        assert_eq!(c.effective_connect_timeout(), Duration::from_secs(3));
        let e = build("targets = 127.0.0.1:1\nconnect_timeout = 0\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");

        let e = build("targets = 127.0.0.1:1\nbalance = fastest\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        assert!(e.message.contains("least_conn"), "{e}");
        // A weight that round robin would silently ignore.
        let e = build("targets = 127.0.0.1:1 weight=2, 127.0.0.1:2\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:1");
        assert!(e.message.contains("weighted_round_robin"), "{e}");
        let e = build("targets = 127.0.0.1:1\nhealth_check_path = healthz\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        for bad in ["/a b", "/caf\u{e9}", "/%zz"] {
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
        assert!(parse_duration("3d").is_err());
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
}
