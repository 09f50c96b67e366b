//! One client connection, start to end: read a request, forward it to a
//! backend, relay the response, log it, and go round again while the
//! connection stays alive. This module holds the proxy's policy; the byte
//! level lives in `http`, backends in `upstream`.
//!
//! # Layout
//! - `connection`: one client connection's loop ([`serve`]), its settings
//!   taken per request, its log lines.
//! - `exchange`: one request's exchange, from its head to its answer:
//!   parsed, rewritten, routed, checked (access lists, `return 444`, the
//!   HTTPS redirect, redirects and `return`s, the rate limit, the body's
//!   size, `auth_basic`, `auth_request`, `files`), then forwarded.
//! - `rewriting`: a request's `rewrite.<name>` rules.
//! - `forward`: a routed request on its way to a backend: `Expect`,
//!   `Max-Forwards`, its body, the cache's say, what it invalidates, the
//!   fetch and the relay; this hop's `Via` entry.
//! - `own_answer`: a request the proxy answers itself before reading its
//!   body (a refusal, a redirect, a `return`), and how such an exchange
//!   ends in the log.
//! - `refusal`: an exchange that ended without relaying a response
//!   (`Refusal`), and its answer.
//! - `own_response`: the bytes of a response the proxy makes itself
//!   ([`ErrorResponse`]).
//! - `outcome`: what happened to one request (`Outcome`).
//! - `log_line`: the request fields the access log shows.
//! - `shared`: one generation of the settings ([`Shared`]), and what it
//!   holds for a request's pool.
//! - `cache_rules`: the cache's rules of a generation, for each pool
//!   ([`CacheRules`], [`Caching`]).
//! - `current`: the generation in force, swapped by a reload
//!   ([`Current`]).
//! - `inherited`: what an accepted socket comes with from its listener
//!   ([`Inherited`]).
//! - `client`: the client side of a connection (`Client`): request
//!   heads, bodies, the proxy's own short answers, closing.
//! - `client_cert`: a client's certificate, in `Client-Cert` fields for
//!   its backend.
//! - `origin`: the request side of an exchange with a backend: the
//!   forwarded request, its retries, the response head.
//! - `relay`: the response side: a backend's answer relayed to the
//!   client, a copy for the cache on the way.
//! - `cached`: GET and HEAD through the cache.
//! - `cache_status`: RFC 9211's `Cache-Status` field.
//! - `files`: a `files` route's answers, and `X-Accel-Redirect`.
//! - `forward_auth`: `auth_request`, a request first asked of a pool.
//! - `auth_answers`: `auth_request_cache`, the yeses kept.
//! - `mirror`: `mirror`, a copy of each request for another pool.
//! - `tunnel`: protocol upgrades (WebSocket), bytes copied both ways.
//! - `watch`: what shutdown sees of a connection ([`ConnWatch`]), and how
//!   it ends it.
//! - here: the modules and what the crate and the files here take from
//!   them.

mod auth_answers;
mod cache_rules;
mod cache_status;
mod cached;
mod client;
mod client_cert;
mod connection;
mod current;
mod exchange;
mod files;
mod forward;
mod forward_auth;
mod inherited;
mod log_line;
mod mirror;
mod origin;
mod outcome;
mod own_answer;
mod own_response;
mod refusal;
mod relay;
mod rewriting;
mod shared;
pub mod tcp;
mod tunnel;
pub mod udp;
mod watch;

pub use auth_answers::AuthAnswers;
pub use cache_rules::{CacheRules, Caching};
pub use connection::serve;
pub use current::Current;
pub use inherited::{canonical, Inherited};
pub use mirror::Mirrors;
pub use own_response::ErrorResponse;
pub use own_response::{
    coded_response, error_response, own_response, starts_a_head_request, OwnText, PLAIN,
};
pub use shared::Shared;
pub use watch::{ConnWatch, Phase};

pub(crate) use client::first_line;
// For the files here, which name them `super::X`.
use client::Client;
use forward::via_entry;
use outcome::Outcome;
use own_answer::{answer_unread, keep_alive_field, location_field};
use refusal::{client_body_status, Refusal};
