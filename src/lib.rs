//! inverso: an HTTP/1.1 reverse proxy and load balancer with a persistent
//! response cache.
//!
//! # Layout
//! - `config`: proxy.conf + `INVERSO_*` environment + flags into a typed `Config`.
//! - `server`: listener, accept loop, worker pool, connection limit, shutdown.
//! - `proxy`: one client connection: request, upstream, response, log.
//! - `http`: bytes on the wire: heads, body framing, dates, forwarding headers,
//!   the response fields the operator sets and removes, the PROXY protocol
//!   header read from clients and sent to backends.
//! - `upstream`: backends: balancer, health (passive and active checks), drain and
//!   maintenance states (kept across restarts: `state_file`), keep-alive pools, names
//!   looked up again (`resolve_interval`).
//! - `cache`: the LRU store and its snapshot file.
//! - `error_pages`: the operator's bodies for the proxy's own error answers.
//! - `files`: files served from a directory (`route./static/ = files /srv/www`).
//! - `gzip`: responses compressed for the clients that take it (`gzip`,
//!   `brotli`).
//! - `patterns`: name lists with `*` prefixes, as several settings write them.
//! - `access_log`: request records to one writer thread, stdout, a file and
//!   syslog (`log_syslog`); the combined, JSON and template
//!   (`log_format = $remote_addr ...`) lines.
//! - `admin`: the admin listener: metrics, status, health, purge, target states.
//! - `metrics`: the counters behind `/metrics` and `/status`.
//! - `digits`: numbers and addresses as text, without `core::fmt`.
//! - `dns`: SRV queries asked of a DNS server, for targets written `srv:NAME`.
//! - `json`: string escaping for the JSON log and `/status`.
//! - `html`: text escaped for the HTML pages (a directory's listing, the admin page).
//! - `json_value`: strict JSON reading, for JWTs and their key files.
//! - `access`: which client addresses may send requests (`allow_from`, `deny_from`).
//! - `auth`: who may send requests: users of an htpasswd file (`auth_basic`),
//!   bearers of a signed token (`auth_jwt`).
//! - `cidr_set`: lists of address blocks, searched by address in a handful of steps.
//! - `ratelimit`: requests per client address over time (`rate_limit`).
//! - `error_limit`: clients refused for the errors they cause (`error_limit`).
//! - `realip`: the client's address as trusted proxies in front name it.
//! - `geoip`: the client's country, from a MaxMind DB file (`geoip_database`).
//! - `routes`: which pool of backends serves a request (`route.<host><path>`).
//! - `rewrite`: paths changed by regular expressions, or answered with a
//!   redirect, before routing (`rewrite.<name>`).
//! - `https_redirect`: plain-HTTP requests sent to HTTPS (`redirect_to_https`).
//! - `request_id`: the ID each request carries with `request_id_header`.
//! - `sched`: the scheduling hint for worker threads (SCHED_BATCH).
//! - `thread_stack`: the stack pages an idle worker no longer needs, given back.
//! - `secure_link`: links signed by the application, checked before a
//!   pool serves them (nginx's `secure_link`).
//! - `throttle`: a lasting failure said once a minute, not at every retry.
//! - `limits`: the process limits that would stop it short of `max_connections`.
//! - `tls`: the certificates and settings of `tls_port`.
//! - `demo`: the built-in origin servers of `inverso demo`.
//! - `pid_file`: the process ID file (`pid_file`) that `inverso signal` reads.

// The library serves its own binary: its docs are read with
// `cargo doc --document-private-items`, where links to private items resolve.
#![allow(rustdoc::private_intra_doc_links)]

pub mod access;
pub mod access_log;
pub mod acme;
pub mod admin;
pub mod auth;
pub mod cache;
pub mod cidr_set;
pub mod config;
pub mod cookie_flags;
pub mod cookie_rewrite;
pub mod demo;
pub mod deny;
pub mod digits;
pub mod dns;
pub mod error_limit;
pub mod error_pages;
pub mod fastcgi;
pub mod field_value;
pub mod files;
pub mod geoip;
pub mod gunzip;
pub mod gzip;
pub mod html;
pub mod http;
pub mod https_redirect;
pub mod json;
pub mod json_value;
pub mod limits;
pub mod location_rewrite;
pub mod metrics;
pub mod otel;
pub mod pace;
pub mod patterns;
pub mod pid_file;
mod poll;
pub mod proxy;
pub mod ratelimit;
pub mod realip;
pub mod request_id;
pub mod rewrite;
pub mod routes;
pub mod rule_pairs;
pub mod sched;
pub mod secure_link;
pub mod server;
mod spool;
pub mod sub_filter;
pub mod systemd;
pub mod tcp_keepalive;
#[cfg(test)]
mod test_log;
pub mod thread_stack;
pub mod throttle;
pub mod tls;
pub mod trace_context;
pub mod upstream;
pub mod upstream_tries;
pub mod variables;

pub use config::Config;
pub use server::{Control, Reloaded, Server, ServerHandle};
