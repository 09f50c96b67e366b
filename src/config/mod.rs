//! proxy.conf, `INVERSO_*` environment variables and command-line flags,
//! merged into one typed [`Config`].
//!
//! Every key has one entry in [`KEYS`]: its name, its default (as text, parsed
//! like any other value so defaults cannot drift from the parser) and a
//! one-line summary. Precedence is
//! flag > environment > file > default, and every value remembers where it
//! came from so an error can say `proxy.conf:7: ...` or
//! `environment INVERSO_PORT: ...`.
//!
//! # Layout
//! - this file: the [`Config`] itself, its effective values and the
//!   settings derived from them.
//! - `loader`: the [`Loader`]: values from the file, the environment and
//!   flags, built into a [`Config`].
//! - `keys`: every key, with its default and how its value is applied.
//! - `values`: the parsers of values.
//! - `fields`: the `request_header.*` and `response_header.*` keys.
//! - `pools`: the `pool.*` and `route.*` keys.
//! - `rewrites`: the `rewrite.*` keys.
//! - `streams`: the `stream.*` keys.
//! - `checks`: what keys mean together, refused or warned of.
//! - `types`: the small types a [`Config`] holds: targets, balancing, log format.
//! - `error`: a [`ConfigError`], and where a value came from.
//! - `expand`: a value's `{$NAME}`s, the environment's variables.
//! - `listeners`: whether an address reaches one of the proxy's own listeners.
//! - `suggest`: the messages for keys not taken, with "did you mean" hints.
//! - `load`: loading the way the binary does, proxy.conf read from disk.

mod checks;
mod error;
mod expand;
mod fields;
mod include;
mod keys;
mod listeners;
mod load;
mod loader;
mod pools;
#[cfg(test)]
mod readme_examples;
mod rewrites;
mod streams;
mod suggest;
mod types;
mod values;

use crate::cidr_set::CidrList;
use crate::field_value::FieldValue;
use crate::http::edits::FieldEdits;
use crate::ratelimit::{Limit, Rate};
pub(crate) use checks::{log_key, same_file};
pub(crate) use error::first_set;
pub use error::{escape_controls, printable, ConfigError, Origin};
pub use fields::FieldFamily;
use fields::FieldKey;
pub use include::{InMemory, IncludeSource, Included, OnDisk};
pub use keys::{Key, KEYS, MAX_HEADER_SIZE_CEILING, SECRET_KEYS};
pub use listeners::{is_listener, target_at};
pub use load::read;
pub use loader::{Loader, Setting};
pub use pools::{PoolConfig, DEFAULT_POOL, MAX_POOLS, POOL_KEYS};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
pub use streams::{Asking, StreamListener};
pub(crate) use suggest::nearest;
pub use types::{
    weight_from, AgentCheck, Balance, Endpoint, LeastTimeMeasure, LogFormat, Target,
    UnresolvedTargets, MAX_WEIGHT,
};
pub use values::{
    address_blocks, addresses_of, does_not_resolve, is_origin_path, listed, lookup, parse_duration,
    parse_rate, parse_size, service_domain, target_lines, written, Addresses, Found, LastAddresses,
    PoolRequest, ProbeStep, Written, ADDRESS_LISTS, MAX_ADDRESSES_PER_NAME,
};

/// The effective configuration of one proxy process.
#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub bind: IpAddr,
    /// `listen`: more addresses plain HTTP is served on, as `port` is.
    pub listen: Vec<SocketAddr>,
    pub targets: Vec<Target>,
    /// Targets written as names that gave no address when the file was
    /// read (`unresolved_targets = wait`), as written: none of them is a
    /// backend until a new lookup (`resolve_interval`) gives it addresses.
    pub unresolved: Vec<Target>,
    /// `unresolved_targets`: whether a name that does not resolve
    /// refuses the configuration or waits in `unresolved`.
    pub unresolved_targets: UnresolvedTargets,
    /// While a reload's file is read, the addresses of the names in force,
    /// for a name that does not resolve then to keep (see
    /// [`Loader::keep_last_addresses`]); empty once it is built.
    pub last_addresses: LastAddresses,
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
    /// `deny.<name>`: the rules that refuse a request before it is
    /// rewritten or routed, in the order written (none for a pool's
    /// settings).
    pub deny: Arc<crate::deny::DenyRules>,
    /// `stream.<name>`: TCP listeners whose connections are relayed to a
    /// pool's targets as bytes (none for a pool's settings).
    pub streams: Arc<[StreamListener]>,
    /// How often targets written as names are resolved again while the
    /// proxy runs; `None`: only at start-up and on reload.
    pub resolve_interval: Option<Duration>,
    /// The DNS server `srv:` targets' SRV records are asked of
    /// (`resolver`); `None`: the first `nameserver` of resolv.conf, read
    /// at each lookup.
    pub resolver: Option<SocketAddr>,
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
    /// The longest a request may wait for a target's free slot
    /// (`max_conns`); `None`: the connect timeout.
    pub queue_timeout: Option<Duration>,
    /// The most requests of the pool waiting for a slot at once
    /// (`max_queue`, nginx Plus's `queue N`); one more is answered 503 at
    /// once. `None`: no limit.
    pub max_queue: Option<usize>,
    /// Read and write timeout of backend connections (the wait for a
    /// response head too); `None`: `connection_timeout`.
    pub backend_timeout: Option<Duration>,
    /// How long an upgraded (WebSocket) connection may carry nothing
    /// either way before it is closed.
    pub tunnel_timeout: Duration,
    pub path_to_persistence: Option<PathBuf>,
    /// `cache_disk_dir`: where entries evicted from memory go, one file
    /// each; `None`: nowhere (the disk tier is off).
    pub cache_disk_dir: Option<PathBuf>,
    /// `cache_disk_size`: bytes of files the disk tier keeps at most.
    pub cache_disk_size: u64,
    pub path_to_log: Option<PathBuf>,
    /// Where the process writes its ID once it listens (`pid_file`).
    pub pid_file: Option<PathBuf>,
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
    /// Requests one backend connection carries at most; `None`: no limit.
    pub upstream_keepalive_requests: Option<u64>,
    /// How long after its opening a backend connection may still be
    /// reused; `None`: no limit.
    pub upstream_keepalive_time: Option<Duration>,
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
    /// `pass_trailers`: a chunked response's trailer fields go on to the
    /// client, and a chunked request's to the backend (those a trailer may
    /// carry).
    pub pass_trailers: bool,
    /// How this pool's `fastcgi` targets are asked: `fastcgi_root`,
    /// `fastcgi_index`, `fastcgi_script`, `fastcgi_split_path_info`,
    /// `fastcgi_params`, `fastcgi_keep_conn`.
    pub fastcgi: crate::fastcgi::App,
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
    /// The cookies and request fields every stored response is keyed on
    /// besides its `Vary`; empty: none.
    pub cache_vary: crate::cache::policy::CacheVary,
    /// Query parameters left out of the cache key; empty: off.
    pub cache_key_ignore_params: crate::cache::policy::IgnoredParams,
    pub balance: Balance,
    /// What `balance = hash` hashes; set with it alone.
    pub hash_on: Option<crate::upstream::hash_on::HashOn>,
    /// Under the hashing balances, a target past this percentage of the
    /// average load (by weight) is passed over; `None`: never.
    pub hash_balance_factor: Option<u32>,
    /// What `balance = least_time` times answers by; `last_byte` set with
    /// it alone.
    pub least_time_measure: LeastTimeMeasure,
    /// Failures within `fail_timeout` that take a target out; 0 = never.
    pub max_fails: u32,
    pub fail_timeout: Duration,
    /// Other targets tried after a failure; `None`: every other target.
    pub retries: Option<usize>,
    /// After this long from the first try, a failure is not sent on to
    /// another target (nginx's `proxy_next_upstream_timeout`); 0: never.
    pub retry_timeout: Duration,
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
    /// Active health checks by a datagram sent (`health_check_send`) and
    /// one awaited back (`health_check_udp`), when neither of the others
    /// is set.
    pub health_check_udp: bool,
    /// What a probe by connecting sends once connected, and a probe by
    /// datagram sends (`health_check_send`).
    pub health_check_send: Option<Vec<u8>>,
    /// What the reply of a probe by connecting or by datagram must hold
    /// (`health_check_expect`).
    pub health_check_expect: Option<Vec<u8>>,
    /// Instead of those two, a probe by connecting's exchange in steps
    /// (`health_check_conversation`; the loader refuses both in one
    /// scope).
    pub health_check_conversation: Option<Arc<[ProbeStep]>>,
    /// The Host the probes send; `None`: each target's own `host:port`.
    pub health_check_host: Option<String>,
    /// The port the probes go to on each target's address (a management
    /// port); `None`: the target's own.
    pub health_check_port: Option<u16>,
    /// Statuses a probe must get, as ranges; empty: any 2xx or 3xx.
    pub health_check_expect_status: Arc<[(u16, u16)]>,
    /// Text a probe's body must hold.
    pub health_check_expect_body: Option<Arc<str>>,
    /// `health_check_disable_on_404`: a probe answered 404 keeps the
    /// target up but gives it no new request (HAProxy's
    /// `http-check disable-on-404`).
    pub health_check_disable_on_404: bool,
    /// The probes' method: `GET`, `HEAD` or `OPTIONS`.
    pub health_check_method: &'static str,
    pub health_check_interval: Duration,
    /// Between the probes of a target on its way down or up (HAProxy's
    /// `fastinter`); `None`: `health_check_interval`.
    pub health_check_fast_interval: Option<Duration>,
    /// Between the probes of a target that is down (HAProxy's
    /// `downinter`); `None`: `health_check_interval`.
    pub health_check_down_interval: Option<Duration>,
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
    /// `tls_ciphers` and `tls_groups`: the cipher suites and key
    /// exchange groups `tls_port` offers.
    pub tls_choice: crate::tls::suites::TlsChoice,
    /// `tls_strict_sni`: a client that names no host a certificate is
    /// valid for is refused at the handshake, not given the first.
    pub tls_strict_sni: bool,
    /// `tls_session_tickets`: sessions resume from tickets that carry
    /// them, encrypted; without, from the proxy's memory alone.
    pub tls_session_tickets: bool,
    pub tls_client_ca: Option<PathBuf>,
    pub tls_client_crl: Option<PathBuf>,
    /// The checks those keys make (also of resumed sessions).
    pub tls_client_auth: Option<Arc<crate::tls::ClientAuth>>,
    /// The settings `tls_port` takes TLS with, made of the keys above
    /// once they are all read.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The `acme_*` keys: certificates from an ACME server, on when
    /// `acme_domains` names a host (see [`Config::acme`]).
    pub acme_keys: crate::acme::AcmeSettings,
    /// The ACME client as `tls` sees it: this generation's slot, which
    /// the running client is put in.
    pub acme_slot: Arc<crate::acme::AcmeSlot>,
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
    /// Where a copy of each access-log line goes as a syslog message.
    pub log_syslog: Option<crate::access_log::SyslogTarget>,
    pub log_syslog_facility: crate::access_log::Facility,
    pub log_syslog_tag: Arc<str>,
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
    /// Compress responses with Brotli for clients that take it, by the
    /// rules of `gzip` and its `gzip_types` and `gzip_min_length`.
    pub brotli: bool,
    /// Brotli's quality, 0 (fastest) to 11 (smallest).
    pub brotli_comp_level: u32,
    /// Decode gzip-coded responses for clients that do not take gzip
    /// (see `crate::gunzip`).
    pub gunzip: bool,
    /// The header field carrying each request's ID, if any.
    pub request_id_header: Option<Arc<str>>,
    /// What is done with requests' `traceparent` (`trace_context`).
    pub trace_context: crate::trace_context::TraceMode,
    /// Where spans are sent (`otel_exporter`).
    pub otel_exporter: Option<crate::otel::Collector>,
    /// The service the spans are of (`otel_service_name`).
    pub otel_service_name: Arc<str>,
    /// The cookie that keeps a client on the target that served it.
    pub sticky_cookie: Option<Arc<str>>,
    /// A response that sets the sticky cookie is marked `private`, so that
    /// no shared cache in front hands that cookie to every client.
    pub sticky_cookie_nocache: bool,
    /// What the sticky cookie's `Set-Cookie` says after `Path=/;
    /// HttpOnly`, as written there (`; Secure; SameSite=Lax`); empty: nothing.
    pub sticky_cookie_attributes: Arc<str>,
    /// How long the sticky cookie holds a client that makes no request,
    /// and how long at all (HAProxy's `maxidle` and `maxlife`).
    pub sticky_cookie_lifetimes: crate::upstream::sticky::Lifetimes,
    /// `Secure`, `HttpOnly` and `SameSite` given to (or taken from) the
    /// backends' cookies (nginx's `proxy_cookie_flags`); empty: none.
    pub cookie_flags: crate::cookie_flags::CookieFlags,
    /// `cookie_domain`: the `Domain` of the backends' cookies replaced
    /// (nginx's `proxy_cookie_domain`); empty: none.
    pub cookie_domain: crate::cookie_rewrite::CookieDomains,
    /// `cookie_path`: the `Path` of the backends' cookies replaced
    /// (nginx's `proxy_cookie_path`); empty: none.
    pub cookie_path: crate::cookie_rewrite::CookiePaths,
    /// `location_rewrite`: what the URLs in a backend's `Location` and
    /// `Refresh` begin with replaced (nginx's `proxy_redirect`); empty:
    /// none.
    pub location_rewrite: crate::location_rewrite::LocationRewrite,
    /// `sub_filter`: strings replaced in the bodies of responses of the
    /// `sub_filter_types` (nginx's `sub_filter`); empty: none.
    pub sub_filter: crate::sub_filter::SubFilter,
    /// The media types whose bodies `sub_filter` rewrites.
    pub sub_filter_types: crate::gzip::MediaTypes,
    /// Each rule replaces its first match alone (nginx's default).
    pub sub_filter_once: bool,
    /// A rewritten body keeps the backend's `Last-Modified`, its `ETag`
    /// weakened; else both go.
    pub sub_filter_last_modified: bool,
    /// Requests one client address may make over time; more get 429.
    pub rate_limit: Option<Rate>,
    /// Requests past the rate a client may make at once; `None`: one
    /// second's worth of the rate.
    pub rate_limit_burst: Option<u32>,
    /// Of the burst, the requests that pass at once, the others delayed
    /// to the rate; `None`: all of them.
    pub rate_limit_delay: Option<u32>,
    /// The rate limits are counted but neither refuse nor delay: what
    /// they would do is counted and said.
    pub rate_limit_dry_run: bool,
    /// What a request's bucket is keyed on; `None`: its client's address
    /// (as for a request that does not carry what this names).
    pub rate_limit_key: Option<crate::upstream::hash_on::HashOn>,
    /// Client errors one client address may cause over time; past it,
    /// its requests are refused 429.
    pub error_limit: Option<Rate>,
    /// The statuses `error_limit` counts; empty: 4xx but 429 and 499.
    pub error_limit_statuses: Arc<[(u16, u16)]>,
    /// Clients `error_limit` neither refuses nor counts.
    pub error_limit_except_from: CidrList,
    /// Largest request head (request line and fields) in bytes; 431 past it.
    pub max_header_size: usize,
    /// Most header fields in a request head; 431 past it.
    pub max_headers: usize,
    /// Longest request-target in bytes; 414 past it.
    pub max_uri_length: usize,
    /// Forward request fields whose name has an underscore (else dropped).
    pub underscores_in_headers: bool,
    /// Proxies in front whose `X-Forwarded-For` names the client.
    pub real_ip_from: CidrList,
    /// `geoip_database`, read whole: the clients' countries.
    pub geoip: Option<Arc<crate::geoip::GeoIp>>,
    /// Every client connection starts with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// Requests that came over plain HTTP are answered with a redirect to
    /// HTTPS (see [`crate::https_redirect`]).
    pub redirect_to_https: bool,
    /// Paths served over plain HTTP all the same; empty: none.
    pub redirect_to_https_except: crate::patterns::PathPrefixes,
    /// Client addresses that may send requests; empty = every one (see
    /// [`crate::access`]).
    pub allow_from: CidrList,
    /// Client addresses refused 403, whatever `allow_from` says.
    pub deny_from: CidrList,
    /// `secure_link`: where a request's hash and expiry time are read
    /// from (see [`crate::secure_link`]); `None`: no secure links.
    pub secure_link: Option<FieldValue>,
    /// `secure_link_md5`: what the hash is of.
    pub secure_link_md5: Option<crate::secure_link::SignedText>,
    /// `secure_link_secret`: the word hashed after a link in its path
    /// (see [`crate::secure_link::unsigned_target`]); `None`: off.
    pub secure_link_secret: Option<Arc<str>>,
    /// `auth_basic`: the realm clients sign in to (see [`crate::auth`]);
    /// `None`: no sign-in.
    pub auth_basic: Option<Arc<str>>,
    /// `auth_jwt`: the realm a request without a valid token is told of
    /// (see [`crate::auth::jwt`]); `None`: no token asked for.
    pub auth_jwt: Option<Arc<str>>,
    /// The keys a token must be signed by: `auth_jwt_key_file`'s, or
    /// those `auth_jwt_key_request` fetches (set once the pools are).
    pub auth_jwt_keys: Option<crate::auth::jwt_keys::JwtKeys>,
    /// `auth_jwt_key_request`: the pool and path keys are fetched from.
    pub auth_jwt_key_request: Option<PoolRequest>,
    /// `auth_jwt_key_cache`: how long fetched keys are used before they
    /// are asked for again; `None`: as long as their answer says.
    pub auth_jwt_key_cache: Option<Duration>,
    /// `auth_jwt_require`: what a valid token's claims must say.
    pub auth_jwt_require: Option<Arc<crate::auth::jwt_require::Required>>,
    /// `auth_jwt_header`: the field the token comes in, in place of
    /// `Authorization`.
    pub auth_jwt_header: Option<Arc<str>>,
    /// `auth_jwt_cookie`: a cookie the token may come in instead.
    pub auth_jwt_cookie: Option<Arc<str>>,
    /// `auth_jwt_issuer`: the `iss` a token must have; `None`: any.
    pub auth_jwt_issuer: Option<Arc<str>>,
    /// `auth_jwt_audience`: an `aud` a token must have; `None`: any.
    pub auth_jwt_audience: Option<Arc<str>>,
    /// `auth_jwt_leeway`: how far past `exp` or before `nbf` a token is
    /// still taken.
    pub auth_jwt_leeway: Duration,
    /// `auth_basic_user_file`: who may sign in.
    pub auth_users: Option<Arc<crate::auth::Users>>,
    /// Clients that need not sign in; empty: none.
    pub auth_basic_except_from: CidrList,
    /// `auth_request`: the pool and path each request is first asked of;
    /// `None`: none.
    pub auth_request: Option<PoolRequest>,
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
    /// Where request bodies larger than `request_buffer_size` are read
    /// whole before a backend is contacted (`request_buffer_dir`, see
    /// [`crate::spool`]); `None`: they stream.
    pub request_buffer_dir: Option<PathBuf>,
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

impl Config {
    /// Whether an answer of `status` goes unlogged: under a
    /// `log_skip_paths` prefix (`quiet_path`) and below 400, or of a
    /// status `log_skip_statuses` lists.
    pub fn log_skips(&self, quiet_path: bool, status: u16) -> bool {
        (quiet_path && status < 400)
            || (self.log_skip_statuses.iter()).any(|&(low, high)| (low..=high).contains(&status))
    }

    /// Whether a target of this pool is a FastCGI server.
    pub fn speaks_fastcgi(&self) -> bool {
        self.written_targets().any(|t| t.fastcgi)
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
            listen: Vec::new(),
            targets: Vec::new(),
            unresolved: Vec::new(),
            unresolved_targets: UnresolvedTargets::Refuse,
            last_addresses: LastAddresses::default(),
            pools: Vec::new(),
            routes: Arc::default(),
            rewrites: Arc::default(),
            deny: Arc::default(),
            streams: Arc::new([]),
            resolve_interval: None,
            resolver: None,
            cache_size: 0,
            ttl: Duration::ZERO,
            unit_time: Duration::from_secs(1),
            connection_timeout: Duration::from_secs(1),
            keepalive_timeout: None,
            connect_timeout: None,
            queue_timeout: None,
            max_queue: None,
            backend_timeout: None,
            tunnel_timeout: Duration::from_secs(1),
            path_to_persistence: None,
            cache_disk_dir: None,
            cache_disk_size: 1 << 30,
            path_to_log: None,
            pid_file: None,
            error_pages: Default::default(),
            request_headers: FieldEdits::default(),
            response_headers: FieldEdits::default(),
            max_connections: 1,
            max_connections_per_client: 0,
            upstream_keepalive: 0,
            upstream_keepalive_requests: None,
            upstream_keepalive_time: None,
            shutdown_timeout: Duration::ZERO,
            batch_scheduling: false,
            worker_priority: None,
            defer_accept: true,
            reuse_port: false,
            max_object_size: None,
            cache: true,
            intercept_errors: false,
            pass_trailers: false,
            fastcgi: crate::fastcgi::App::default(),
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
            cache_vary: Default::default(),
            cache_key_ignore_params: Default::default(),
            targeted_cache_control: Arc::from([]),
            balance: Balance::RoundRobin,
            hash_balance_factor: None,
            least_time_measure: LeastTimeMeasure::Header,
            hash_on: None,
            max_fails: 0,
            fail_timeout: Duration::from_secs(1),
            retries: None,
            retry_timeout: Duration::ZERO,
            retry_on_status: Default::default(),
            slow_start: Duration::ZERO,
            health_check_path: None,
            health_check_tcp: false,
            health_check_udp: false,
            health_check_send: None,
            health_check_expect: None,
            health_check_conversation: None,
            health_check_host: None,
            health_check_port: None,
            health_check_expect_status: Arc::from([]),
            health_check_expect_body: None,
            health_check_disable_on_404: false,
            health_check_method: "GET",
            health_check_interval: Duration::from_secs(1),
            health_check_fast_interval: None,
            health_check_down_interval: None,
            health_check_timeout: None,
            health_check_rise: 1,
            health_check_fall: 1,
            admin_port: None,
            tls_port: None,
            tls_certificates: Vec::new(),
            tls_served: None,
            acme_keys: crate::acme::AcmeSettings {
                certificates: Vec::new(),
                directory: crate::acme::LETS_ENCRYPT.to_string(),
                email: None,
                state_dir: PathBuf::from("acme"),
                directory_ca: None,
                eab_kid: None,
                eab_mac_key: None,
                challenge: Default::default(),
                dns_server: None,
                dns_zones: Vec::new(),
                dns_key: None,
                dns_wait: std::time::Duration::from_secs(30),
            },
            acme_slot: Default::default(),
            tls_verify_client: Default::default(),
            tls_protocols: Default::default(),
            tls_choice: Default::default(),
            tls_strict_sni: false,
            tls_session_tickets: true,
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
            log_syslog: None,
            log_syslog_facility: Default::default(),
            log_syslog_tag: Arc::from("inverso"),
            via: true,
            cache_min_uses: 1,
            cache_status: None,
            gzip: false,
            gzip_types: Default::default(),
            gzip_min_length: 0,
            gzip_comp_level: 1,
            brotli: false,
            brotli_comp_level: 2,
            gunzip: false,
            request_id_header: None,
            trace_context: Default::default(),
            otel_exporter: None,
            otel_service_name: "inverso".into(),
            sticky_cookie: None,
            sticky_cookie_nocache: false,
            sticky_cookie_attributes: Arc::from(""),
            sticky_cookie_lifetimes: Default::default(),
            cookie_flags: Default::default(),
            cookie_domain: Default::default(),
            cookie_path: Default::default(),
            location_rewrite: Default::default(),
            sub_filter: Default::default(),
            sub_filter_types: Default::default(),
            sub_filter_once: true,
            sub_filter_last_modified: false,
            rate_limit: None,
            rate_limit_burst: None,
            rate_limit_delay: None,
            rate_limit_dry_run: false,
            mirror: None,
            rate_limit_key: None,
            error_limit: None,
            error_limit_statuses: Arc::from([]),
            error_limit_except_from: CidrList::default(),
            max_header_size: 0,
            max_headers: 0,
            max_uri_length: 0,
            underscores_in_headers: false,
            real_ip_from: CidrList::default(),
            geoip: None,
            proxy_protocol: false,
            redirect_to_https: false,
            redirect_to_https_except: Default::default(),
            allow_from: CidrList::default(),
            deny_from: CidrList::default(),
            secure_link: None,
            secure_link_md5: None,
            secure_link_secret: None,
            auth_basic: None,
            auth_jwt: None,
            auth_jwt_keys: None,
            auth_jwt_key_request: None,
            auth_jwt_require: None,
            auth_jwt_key_cache: None,
            auth_jwt_header: None,
            auth_jwt_cookie: None,
            auth_jwt_issuer: None,
            auth_jwt_audience: None,
            auth_jwt_leeway: Duration::ZERO,
            auth_users: None,
            auth_basic_except_from: CidrList::default(),
            auth_request: None,
            auth_request_headers: Arc::from([]),
            auth_request_cache: Duration::ZERO,
            auth_request_redirect: None,
            admin_auth_users: None,
            max_body_size: 0,
            pacing: crate::pace::Pacing::OFF,
            request_buffer_size: 0,
            request_buffer_dir: None,
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

    /// Its targets, and the names that gave no address yet as written:
    /// what the file gives each its options, to be checked as written.
    pub fn written_targets(&self) -> impl Iterator<Item = &Target> {
        self.targets.iter().chain(&self.unresolved)
    }

    /// [`Config::written_targets`] of every pool: the names among them
    /// are those looked up again.
    pub fn all_written_targets(&self) -> impl Iterator<Item = &Target> {
        self.pool_configs().flat_map(Config::written_targets)
    }

    /// The ACME client's settings, when `acme_domains` turns it on.
    pub fn acme(&self) -> Option<&crate::acme::AcmeSettings> {
        Some(&self.acme_keys).filter(|keys| !keys.certificates.is_empty())
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// Every address plain HTTP is served on: `bind:port`, then `listen`'s.
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        let mut addrs = vec![self.listen_addr()];
        addrs.extend(&self.listen);
        addrs
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

    /// The longest a request may wait for a slot at a target at its
    /// `max_conns`: by default the connect timeout, as HAProxy's `timeout
    /// queue` defaults to its `timeout connect`; set apart so that queued
    /// requests may wait out a spike while a dead host is still given up
    /// on quickly.
    pub fn effective_queue_timeout(&self) -> Duration {
        self.queue_timeout
            .unwrap_or_else(|| self.effective_connect_timeout())
    }

    /// How long a client connection may wait for its next request.
    pub fn effective_keepalive_timeout(&self) -> Duration {
        self.keepalive_timeout.unwrap_or(self.connection_timeout)
    }

    /// `auth_jwt_header`'s field, where tokens come in place of
    /// `Authorization`, while `auth_jwt` asks for one.
    pub fn jwt_token_field(&self) -> Option<&str> {
        self.auth_jwt_header
            .as_deref()
            .filter(|_| self.auth_jwt.is_some())
    }

    /// The sets of keys `auth_jwt_key_request` fetches for the top level
    /// and each pool (one shared by several scopes, as often).
    pub fn fetched_jwt_keys(
        &self,
    ) -> impl Iterator<Item = &Arc<crate::auth::jwt_keys::FetchedKeys>> {
        self.pool_configs().filter_map(|c| match &c.auth_jwt_keys {
            Some(crate::auth::jwt_keys::JwtKeys::Fetched(keys)) => Some(keys),
            _ => None,
        })
    }

    /// [`Config::fetched_jwt_keys`], each set once however many scopes
    /// share it.
    pub fn distinct_fetched_jwt_keys(&self) -> Vec<&Arc<crate::auth::jwt_keys::FetchedKeys>> {
        let mut distinct: Vec<&Arc<crate::auth::jwt_keys::FetchedKeys>> = Vec::new();
        for fetched in self.fetched_jwt_keys() {
            if !distinct.iter().any(|seen| Arc::ptr_eq(seen, fetched)) {
                distinct.push(fetched);
            }
        }
        distinct
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
            credential_fields: (self.jwt_token_field())
                .map(Box::from)
                .into_iter()
                .collect(),
            gunzip: self.gunzip,
            vary: self.cache_vary.clone(),
        }
    }

    /// The access log's formats: `log_format`, then each pool's own (see
    /// [`crate::access_log::Captures`], what a record carries for them).
    pub fn log_formats(&self) -> impl Iterator<Item = &LogFormat> {
        let pools = self.pools.iter().filter_map(|p| p.log_format.as_ref());
        std::iter::once(&self.log_format).chain(pools)
    }

    /// Whether `client` (as the access lists see it) is spared
    /// `auth_basic` by `auth_basic_except_from`.
    pub fn spares_auth(&self, client: IpAddr) -> bool {
        self.auth_basic_except_from.holds(client)
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

    /// The rate limit, its burst and delay, when one is set.
    pub fn effective_rate_limit(&self) -> Option<Limit> {
        self.rate_limit.map(|rate| Limit {
            rate,
            burst: self.rate_limit_burst.unwrap_or(rate.one_second()),
            delay: self.rate_limit_delay,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realip::Cidr;

    pub(super) fn build(text: &str) -> Result<Config, ConfigError> {
        Loader::new().file("proxy.conf", text)?.build()
    }

    /// A self-signed certificate for `names` with its key after it, in
    /// the file `file` of `dir`.
    pub(super) fn certificate(
        dir: &std::path::Path,
        file: &str,
        names: &[&str],
    ) -> std::path::PathBuf {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let path = dir.join(file);
        std::fs::write(&path, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        path
    }

    /// [`build`] of `text` after a `targets` line: its first line is
    /// line 2.
    pub(super) fn build_after_targets(text: &str) -> Result<Config, ConfigError> {
        build(&format!("targets = 127.0.0.1:1\n{text}"))
    }

    /// What the loader says of `text` after a `targets` line: refused.
    #[track_caller]
    pub(super) fn refused_after_targets(text: &str) -> String {
        build_after_targets(text).unwrap_err().to_string()
    }

    #[test]
    fn every_default_parses() {
        let mut c = Config::blank();
        for key in KEYS {
            assert_eq!((key.apply)(&mut c, key.default), Ok(()), "{}", key.name);
        }
    }

    #[test]
    fn a_backend_connections_use_is_limited_as_nginxs_by_default_and_zero_is_none() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        let limits = (c.upstream_keepalive_requests, c.upstream_keepalive_time);
        assert_eq!(limits, (Some(1000), Some(Duration::from_secs(3600))));
        let text = "targets = 127.0.0.1:1\nupstream_keepalive_requests = 0\n\
                    upstream_keepalive_time = 0\n";
        let c = build(text).unwrap();
        assert_eq!(
            (c.upstream_keepalive_requests, c.upstream_keepalive_time),
            (None, None)
        );
        let text = "targets = 127.0.0.1:1\nupstream_keepalive_requests = 5\n\
                    upstream_keepalive_time = 90s\n";
        let c = build(text).unwrap();
        let limits = (c.upstream_keepalive_requests, c.upstream_keepalive_time);
        assert_eq!(limits, (Some(5), Some(Duration::from_secs(90))));
        assert!(build("targets = 127.0.0.1:1\nupstream_keepalive_requests = -1\n").is_err());
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
    fn a_target_written_down_is_read_once_beside_its_other_options() {
        let c = build("targets = 127.0.0.1:1 down weight=2, 127.0.0.1:2\nbalance = least_conn\n")
            .unwrap();
        let down: Vec<_> = c.targets.iter().map(|t| (t.down, t.weight)).collect();
        assert_eq!(down, [(true, 2), (false, 1)]);
        let lines = crate::config::target_lines(&c);
        assert!(lines[0].ends_with("(weight 2, down (in maintenance from the start))"));
        assert!(lines[1].ends_with("(weight 1)"), "{lines:?}");
        let e = build("targets = 127.0.0.1:1 down down\n").unwrap_err();
        assert!(e
            .to_string()
            .contains("target 127.0.0.1:1: down given twice"));
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
        assert_eq!(
            (c.health_check_fast_interval, c.health_check_down_interval),
            (None, None)
        );
        let set = build(
            "targets = 127.0.0.1:1\nhealth_check_fast_interval = 250ms\n\
             health_check_down_interval = 1m\n",
        )
        .unwrap();
        assert_eq!(
            (
                set.health_check_fast_interval,
                set.health_check_down_interval
            ),
            (
                Some(Duration::from_millis(250)),
                Some(Duration::from_secs(60))
            )
        );
        for key in ["health_check_fast_interval", "health_check_down_interval"] {
            let e = build(&format!("targets = 127.0.0.1:1\n{key} = 0\n")).unwrap_err();
            assert!(e.message.starts_with(&format!("{key}: ")), "{e}");
        }
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
        // The queue waits as long as a connect may take, unless told apart.
        let c = build("targets = 127.0.0.1:1\nconnect_timeout = 2s\n").unwrap();
        assert_eq!(c.effective_queue_timeout(), Duration::from_secs(2));
        let c = build("targets = 127.0.0.1:1\nconnect_timeout = 2s\nqueue_timeout = 1m\n").unwrap();
        assert_eq!(c.effective_queue_timeout(), Duration::from_secs(60));
        assert_eq!(c.effective_connect_timeout(), Duration::from_secs(2));
        let e = build("targets = 127.0.0.1:1\nqueue_timeout = 0\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        // max_queue: none by default, 0 (none waits) to a million.
        assert_eq!(build("targets = 127.0.0.1:1\n").unwrap().max_queue, None);
        for (n, expected) in [("0", Some(0)), ("1000000", Some(1_000_000)), ("", None)] {
            let c = build(&format!("targets = 127.0.0.1:1\nmax_queue = {n}\n")).unwrap();
            assert_eq!(c.max_queue, expected, "{n}");
        }
        for bad in ["1000001", "-1", "x"] {
            let e = build(&format!("targets = 127.0.0.1:1\nmax_queue = {bad}\n")).unwrap_err();
            assert!(e.message.starts_with("max_queue: "), "{bad}: {e}");
        }
        let c = build(
            "targets = 127.0.0.1:1\nmax_queue = 50\npool.api = 127.0.0.1:2\n\
             pool.api.max_queue = 5\nroute./api/ = api\n",
        )
        .unwrap();
        let queues: Vec<_> = c.pool_configs().map(|p| p.max_queue).collect();
        assert_eq!(queues, [Some(50), Some(5)]);

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

    /// Names under `.invalid` never resolve (RFC 6761 §6.4).
    const NOWHERE: &str = "app.invalid:8000";

    #[test]
    fn unresolved_targets_refuses_by_default_and_with_wait_keeps_the_name_without_address() {
        let with = |v: &str, targets: &str| {
            build(&format!(
                "resolve_interval = 5s\nunresolved_targets = {v}\ntargets = {targets}\n"
            ))
        };
        let e = build(&format!("resolve_interval = 5s\ntargets = {NOWHERE}\n")).unwrap_err();
        assert!(e.message.contains("does not resolve"), "{e}");
        let e = with("refuse", NOWHERE).unwrap_err();
        assert!(e.message.contains("does not resolve"), "{e}");
        let c = with(
            "wait",
            &format!("127.0.0.1:1, {NOWHERE} max_conns=3, db.invalid:5432"),
        )
        .unwrap();
        assert_eq!(c.unresolved_targets, UnresolvedTargets::Wait);
        assert_eq!(
            c.targets,
            [Target::new("127.0.0.1:1", "127.0.0.1:1".parse().unwrap())]
        );
        let names: Vec<&str> = c.unresolved.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, [NOWHERE, "db.invalid:5432"]);
        assert!(c.unresolved.iter().all(Target::has_no_address));
        assert_eq!(c.unresolved[0].max_conns, Some(3), "its options as written");
        // Every name of the pool waiting is a pool still: no address yet.
        let c = with("wait", NOWHERE).unwrap();
        assert!(c.targets.is_empty());
        assert_eq!(c.unresolved.len(), 1);
        // What is wrong with a name as written, or with its options, is
        // no lookup's to wait for.
        for (bad, says) in [
            ("app.invalid", "needs a port"),
            ("http://app.invalid:80", "without a scheme"),
            ("app.invalid:80 weight=0", "weight"),
            (
                "app.invalid:80 weight=2",
                "balance = round_robin ignores weights",
            ),
            ("app.invalid:80, app.invalid:80", "listed twice"),
        ] {
            let e = with("wait", bad).unwrap_err();
            assert!(e.message.contains(says), "{bad}: {e}");
        }
        let e = with("sometimes", "127.0.0.1:1").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        assert!(
            e.message
                .contains("unresolved_targets: `sometimes`: refuse or wait"),
            "{e}"
        );
    }

    /// A reload's file (see [`Loader::keep_last_addresses`]): a name that
    /// does not resolve keeps the addresses in force, with a warning
    /// naming it and the error, under `refuse` and `wait` alike, in a
    /// pool too, and with the options the file now writes for it.
    #[test]
    fn a_reload_keeps_the_last_addresses_of_a_name_that_does_not_resolve() {
        let was: Vec<Found> = ["10.0.0.5:8000", "10.0.0.6:8000"]
            .iter()
            .map(|a| a.parse::<SocketAddr>().unwrap().into())
            .collect();
        let last = LastAddresses::new([(NOWHERE.to_string(), was)]);
        let reload = |text: &str| {
            let mut loader = Loader::new();
            loader.file("proxy.conf", text).unwrap();
            crate::test_log::logged(|| loader.keep_last_addresses(last.clone()).build())
        };
        let warned = format!("WARN target {NOWHERE} does not resolve: ");
        for v in ["refuse", "wait"] {
            let (c, logged) = reload(&format!(
                "resolve_interval = 5s\nunresolved_targets = {v}\n\
                 targets = {NOWHERE} max_conns=3\n"
            ));
            let c = c.unwrap();
            assert!(c.unresolved.is_empty(), "{v}");
            let at: Vec<(String, Option<SocketAddr>, Option<usize>)> = (c.targets.iter())
                .map(|t| (t.name.clone(), t.addr.tcp(), t.max_conns))
                .collect();
            assert_eq!(
                at,
                ["10.0.0.5:8000", "10.0.0.6:8000"].map(|a| (
                    format!("{NOWHERE}@{a}"),
                    a.parse().ok(),
                    Some(3)
                ))
            );
            assert!(c.last_addresses.is_empty(), "not kept past the build");
            assert_eq!(logged.len(), 1, "{logged:?}");
            assert!(logged[0].starts_with(&warned), "{logged:?}");
            assert!(
                logged[0]
                    .ends_with("; it stays at 10.0.0.5:8000, 10.0.0.6:8000, as before this reload"),
                "{logged:?}"
            );
        }
        let (c, _) = reload(&format!(
            "resolve_interval = 5s\ntargets = 127.0.0.1:1\npool.app = {NOWHERE}\n\
             route./app/ = app\n"
        ));
        assert_eq!(c.unwrap().pools[0].config.targets.len(), 2, "a pool's too");
        // A name it had no address for is refused, or waits, as ever.
        let (e, _) = reload("resolve_interval = 5s\ntargets = db.invalid:5432\n");
        assert!(e.unwrap_err().message.contains("does not resolve"));
        let (c, _) =
            reload("resolve_interval = 5s\nunresolved_targets = wait\ntargets = db.invalid:5432\n");
        assert_eq!(c.unwrap().unresolved.len(), 1);
    }

    #[test]
    fn unresolved_targets_wait_needs_resolve_interval() {
        for interval in ["", "resolve_interval = 0\n"] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\n{interval}unresolved_targets = wait\n"
            ))
            .unwrap_err();
            assert!(e.place.starts_with("proxy.conf:"), "{e}");
            assert!(
                e.to_string()
                    .contains(": unresolved_targets: wait needs resolve_interval"),
                "{e}"
            );
        }
        let e = build(&format!("unresolved_targets = wait\ntargets = {NOWHERE}\n")).unwrap_err();
        assert_eq!(e.place, "proxy.conf:1");
        assert!(build("targets = 127.0.0.1:1\nunresolved_targets = refuse\n").is_ok());
    }

    #[test]
    fn a_pool_of_names_that_do_not_resolve_waits_too_and_check_lists_them_without_address() {
        let c = build(&format!(
            "resolve_interval = 5s\nunresolved_targets = wait\ntargets = 127.0.0.1:1\n\
             pool.app = {NOWHERE} backup, 127.0.0.1:2\nroute./app/ = app\n"
        ))
        .unwrap();
        let app = &c.pools[0].config;
        assert_eq!(app.targets.len(), 1);
        assert_eq!(app.unresolved.len(), 1);
        assert_eq!(
            target_lines(app),
            [
                "# target 127.0.0.1:2 -> 127.0.0.1:2 (weight 1)",
                "# target app.invalid:8000 -> (no address yet) (weight 1, backup)",
            ]
        );
        assert!(c.unresolved.is_empty(), "the top level's own resolved");
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
        // 8 is the most, not one past it.
        let eight = nine[..8].join(",");
        let c = build(&format!(
            "targets = 127.0.0.1:1\ntargeted_cache_control = {eight}\n"
        ))
        .unwrap();
        assert_eq!(c.targeted_cache_control.len(), 8);
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
        // The limits themselves pass: 32 statuses or ranges, 256 bytes of
        // body; one more does not.
        let statuses = |n: u16| {
            let listed: Vec<String> = (200..200 + n).map(|s| s.to_string()).collect();
            build(&format!(
                "targets = 127.0.0.1:1\nhealth_check_expect_status = {}\n",
                listed.join(",")
            ))
        };
        assert_eq!(statuses(32).unwrap().health_check_expect_status.len(), 32);
        let e = statuses(33).unwrap_err();
        assert!(
            e.message
                .contains("33 statuses or ranges listed; at most 32"),
            "{e}"
        );
        let body = |n: usize| {
            let text = "x".repeat(n);
            build(&format!(
                "targets = 127.0.0.1:1\nhealth_check_expect_body = {text}\n"
            ))
        };
        let c = body(256).unwrap();
        assert_eq!(
            c.health_check_expect_body.as_deref().map(str::len),
            Some(256)
        );
        let e = body(257).unwrap_err();
        assert!(e.message.contains("at most 256 bytes"), "{e}");
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
        assert_eq!((c.brotli, c.brotli_comp_level), (false, 2));
        let c = build("targets = 127.0.0.1:1\nbrotli = on\nbrotli_comp_level = 6\n").unwrap();
        assert!(
            !c.gzip && crate::gzip::Gzip::of(&c).is_some(),
            "Brotli alone"
        );
        assert_eq!((c.brotli, c.brotli_comp_level), (true, 6));
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
            ("brotli = maybe", "not a boolean"),
            ("brotli_comp_level = 12", "out of range (0..=11)"),
            (
                "brotli_comp_level = 7",
                "7 is above 6: from 7 on a Brotli encoder holds",
            ),
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
    fn sticky_cookie_attributes_are_the_known_ones_written_as_cookies_spell_them() {
        let attributes = |v: &str| {
            let text = format!(
                "targets = 127.0.0.1:1\nsticky_cookie = S\nsticky_cookie_attributes = {v}\n"
            );
            build(&text).map(|c| c.sticky_cookie_attributes.to_string())
        };
        assert_eq!(attributes("").unwrap(), "");
        assert_eq!(
            attributes("secure; samesite=lax ;MAX-AGE=7d; Domain=.Example.com;").unwrap(),
            "; Secure; SameSite=Lax; Max-Age=604800; Domain=Example.com"
        );
        assert_eq!(
            attributes("SameSite=None; Secure; Partitioned").unwrap(),
            "; SameSite=None; Secure; Partitioned"
        );
        assert_eq!(attributes("samesite=strict").unwrap(), "; SameSite=Strict");
        assert_eq!(
            attributes("Domain=my-shop.example").unwrap(),
            "; Domain=my-shop.example"
        );
        // A domain name is at most 253 bytes (RFC 1035 §2.3.4, less the
        // root's dot).
        let label = "a".repeat(63);
        let longest = format!("{label}.{label}.{label}.{}", "b".repeat(61));
        assert_eq!(longest.len(), 253);
        assert_eq!(
            attributes(&format!("Domain={longest}")).unwrap(),
            format!("; Domain={longest}")
        );
        let refused = |v: &str| attributes(v).unwrap_err().message;
        for (bad, why) in [
            ("SameSite=None", "SameSite=None needs Secure"),
            ("Partitioned", "Partitioned needs Secure"),
            ("Secure; secure", "secure is given twice"),
            (
                "SameSite=Loose",
                "SameSite is Strict, Lax or None, not `Loose`",
            ),
            ("Max-Age=500ms", "under a second"),
            ("Max-Age=soon", "is not a duration"),
            ("Domain=a b", "is not a domain name"),
            ("Domain=", "is not a domain name"),
            ("Domain=.", "is not a domain name"),
            ("Domain=..a", "is not a domain name"),
            ("Domain=a..b", "is not a domain name"),
            // A label is 63 bytes at most, and neither begins nor ends
            // with a hyphen (RFC 1035 §2.3.1).
            (
                &format!("Domain={}.com", "a".repeat(64)),
                "is not a domain name",
            ),
            ("Domain=-shop.example", "is not a domain name"),
            ("Domain=shop-.example", "is not a domain name"),
            ("Path=/app", "always says `Path=/; HttpOnly`"),
            ("HttpOnly", "always says"),
            (
                "Expires=Wed, 21 Oct 2037 07:28:00 GMT",
                "Expires: say how long with Max-Age",
            ),
            (&format!("Domain={longest}b"), "is not a domain name"),
            ("Secure, HttpOnly", "is not one of"),
            ("Priority=High", "is not one of"),
            ("Secure=yes", "is not one of"),
        ] {
            assert!(refused(bad).contains(why), "{bad}: {}", refused(bad));
        }
        // Set without the cookie they would go with.
        let e = build("targets = 127.0.0.1:1\nsticky_cookie_attributes = Secure\n").unwrap_err();
        assert!(
            e.message.contains("is set, but sticky_cookie is not"),
            "{e}"
        );
    }

    #[test]
    fn hash_balance_factor_is_a_percentage_of_at_least_100_or_none() {
        let factor = |v: &str| {
            let text =
                format!("targets = 127.0.0.1:1\nbalance = uri_hash\nhash_balance_factor = {v}\n");
            build(&text).map(|c| c.hash_balance_factor)
        };
        assert_eq!(factor("150").unwrap(), Some(150));
        assert_eq!(factor("100").unwrap(), Some(100));
        assert_eq!(factor("0").unwrap(), None);
        assert_eq!(factor("").unwrap(), None);
        for bad in ["99", "1.5", "-150", "100001"] {
            assert_eq!(factor(bad).unwrap_err().place, "proxy.conf:3", "{bad}");
        }
        assert!(factor("50").unwrap_err().message.contains("under 100"));
        let c = build(
            "targets = 127.0.0.1:1\npool.c = 127.0.0.1:2\npool.c.balance = uri_hash\n\
             pool.c.hash_balance_factor = 125\n",
        )
        .unwrap();
        assert_eq!(c.hash_balance_factor, None);
        assert_eq!(c.pools[0].config.hash_balance_factor, Some(125));
    }

    #[test]
    fn sticky_cookie_lifetimes_are_whole_seconds_or_none() {
        let lifetimes = |idle: &str, life: &str| {
            let text = format!(
                "targets = 127.0.0.1:1\nsticky_cookie = S\nsticky_cookie_max_idle = {idle}\n\
                 sticky_cookie_max_life = {life}\n"
            );
            build(&text).map(|c| c.sticky_cookie_lifetimes)
        };
        let l = lifetimes("30m", "8h").unwrap();
        assert_eq!((l.max_idle, l.max_life), (Some(1800), Some(28_800)));
        let l = lifetimes("", "0").unwrap();
        assert_eq!((l.max_idle, l.max_life), (None, None));
        assert_eq!(lifetimes("1500ms", "1s").unwrap().max_idle, Some(1));
        for (idle, life, why) in [
            ("500ms", "", "under a second"),
            ("", "999ms", "under a second"),
            ("soon", "", "is not a duration"),
        ] {
            let e = lifetimes(idle, life).unwrap_err();
            assert!(e.message.contains(why), "{idle} {life}: {e}");
        }
        for key in ["sticky_cookie_max_idle", "sticky_cookie_max_life"] {
            let e = build(&format!("targets = 127.0.0.1:1\n{key} = 1h\n")).unwrap_err();
            assert!(
                e.message.contains("is set, but sticky_cookie is not"),
                "{e}"
            );
            assert!(e.to_string().contains(key), "{e}");
            // Off is no lifetime, with or without a cookie.
            assert!(build(&format!("targets = 127.0.0.1:1\n{key} = 0\n")).is_ok());
        }
    }

    #[test]
    fn rate_limit_is_a_rate_with_a_burst_of_a_second_unless_set() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert_eq!(c.effective_rate_limit(), None);
        let c = build("targets = 127.0.0.1:1\nrate_limit = 600/m\n").unwrap();
        let crate::ratelimit::Limit { rate, burst, delay } = c.effective_rate_limit().unwrap();
        assert_eq!(delay, None);
        assert_eq!((rate.to_string(), burst), ("600/m".to_string(), 10));
        let c = build("targets = 127.0.0.1:1\nrate_limit = 5/s\nrate_limit_burst = 0\n").unwrap();
        assert_eq!(c.effective_rate_limit().unwrap().burst, 0);
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
        // How much of the burst passes at once: all but with a delay.
        let text = "targets = 127.0.0.1:1\nrate_limit = 5/s\nrate_limit_delay = 2\n";
        assert_eq!(
            build(text).unwrap().effective_rate_limit().unwrap().delay,
            Some(2)
        );
        let e = build("targets = 127.0.0.1:1\nrate_limit_delay = 0\n").unwrap_err();
        assert!(e.message.contains("rate_limit is not"), "{e}");
        // Tried first, in a dry run.
        let text = "targets = 127.0.0.1:1\nrate_limit = 5/s\nrate_limit_dry_run = true\n";
        assert!(build(text).unwrap().rate_limit_dry_run);
        let e = build("targets = 127.0.0.1:1\nrate_limit_dry_run = true\n").unwrap_err();
        assert!(e.message.contains("rate_limit is not"), "{e}");
        let e = build("targets = 127.0.0.1:1\nrate_limit = 5/s\nrate_limit_delay = x\n");
        assert_eq!(e.unwrap_err().place, "proxy.conf:3");
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
    fn limit_rate_is_a_size_a_second_with_or_without_its_per_second() {
        for (rate, bytes) in [
            ("0", 0),
            ("100/s", 100),
            ("512KiB/s", 512 << 10),
            ("2MiB", 2 << 20),
        ] {
            let c = build(&format!("targets = 127.0.0.1:1\nlimit_rate = {rate}\n")).unwrap();
            assert_eq!(c.pacing.rate, bytes, "{rate}");
        }
        for (bad, says) in [
            ("/s", "`/s` is not a rate"),
            ("5MB/s", "use KiB, MiB or GiB"),
            ("5KiB/m", "unknown size unit `kib/m`"),
        ] {
            let e = build(&format!("targets = 127.0.0.1:1\nlimit_rate = {bad}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{bad}");
            assert!(e.message.contains(says), "{bad}: {e}");
        }
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
