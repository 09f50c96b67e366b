//! Which pool of backends serves a request (`route.<host><path> = pool`):
//! nginx's `server_name` and `location` prefixes, HAProxy's `use_backend`
//! on `hdr(host)` and `path_beg`, written as one table.
//!
//! Of the routes whose host and path both match a request, the one with
//! the most specific host wins (a name, then the longest `*.` suffix, then
//! none), then the one with the longest path; with none, the request goes
//! to `targets`. The order routes are written in never matters, but
//! between routes with conditions (`if cookie canary 1`, see
//! [`Condition`]) at one host and path: those are tried in the order
//! written, before the route without one.
//!
//! A path matches whole segments: `/api` matches `/api`, `/api/` and
//! `/api/v1`, not `/apiary`; `/api/` matches `/api/` and below, not
//! `/api`. It is compared with the request's path as a backend would read
//! it: percent-encoded letters, digits and `-_~.` decoded, runs of `/`
//! merged. A path that backends read in different ways (a `.` or `..`
//! segment however spelled, a `\`) is refused rather than matched, so
//! no spelling slips a request past the route meant for it.
//!
//! # Layout
//! - `table`: the table ([`Routes`]), sorted by specificity, and the
//!   route a request goes to (or [`Ambiguous`]).
//! - `route`: one route made and read ([`Route`]): its pool, files,
//!   `rewrite=`, `cookie_paths`, `rate_limit=` and `if` condition.
//! - `own`: a route's own `max_body_size=`, `backend_timeout=` and
//!   `cache=` ([`OwnSettings`]), in place of its pool's.
//! - `answers`: routes that answer themselves: redirects ([`Redirect`])
//!   and `return`s ([`Return`]).
//! - `rewriting`: the matched prefix replaced in what a backend is sent,
//!   and put back in its `Location` and cookie paths.
//! - `spec`: a route key's host (`HostPattern`) and path, read and
//!   checked; a request's host as routes compare it.
//! - `paths`: a request's path as routes read it, and the spellings
//!   refused as ambiguous.
//! - `condition`: a route's `if` condition ([`Condition`]).
//! - `index`: a long table by host and path, for a request to look up
//!   only the routes that could take it.
//! - here: [`Route`]'s fields, which each of those reads.

use crate::files::Files;
use crate::ratelimit::Limit;
use std::sync::Arc;

mod answers;
mod condition;
mod index;
mod own;
mod paths;
mod rewriting;
mod route;
mod spec;
mod table;

pub use answers::{Redirect, Return, CLOSE_UNANSWERED, MAX_RETURN_TEXT, REDIRECT_STATUSES};
pub use condition::{Asked, Condition, Lookup};
pub use own::OwnSettings;
pub use paths::{is_ambiguous, other_reading, path_of_target, routing_path, unambiguous_reading};
pub(crate) use spec::{host_of, parse_host, HostPattern};
pub use table::{Ambiguous, Routes, MAX_ROUTES};

/// One `route.<host><path> = pool` key.
#[derive(Clone, Debug)]
pub struct Route {
    host: HostPattern,
    /// The host it is written for, as written (`example.com`,
    /// `*.example.com`): nginx's `$server_name`, its server block's name.
    server_name: Option<Arc<str>>,
    /// Starts with `/`; `/` alone matches every path.
    path: Box<str>,
    /// The pool's index: 0 for `targets`, then each `pool.<name>` in the
    /// order written.
    pub pool: usize,
    /// With `rewrite=`: what replaces the matched prefix of the path a
    /// backend is sent.
    rewrite: Option<Box<str>>,
    /// With `rewrite=` and `cookie_paths`: the `Path` of a backend's
    /// cookies goes back under the route's prefix too.
    cookie_paths: bool,
    /// A route that answers itself instead, with a redirect or a fixed
    /// response (its `pool` is then `targets`', whose settings the answer
    /// takes).
    answer: Option<Answer>,
    /// `if <condition>`: what else a request must carry for the route to
    /// take it.
    condition: Option<Condition>,
    /// `files <dir>`: the files under the route's prefix are served from
    /// `dir` (and with `fallback=`, what is not there goes to `pool`).
    files: Option<FilesRoute>,
    /// `rate_limit=` and its burst: buckets of the route's own, which its
    /// requests fill as well as their pool's.
    rate_limit: Option<Limit>,
    /// `max_body_size=`, `backend_timeout=`, `cache=`: in place of its
    /// pool's keys for its requests.
    own: OwnSettings,
}

/// A `files` route's directory, and whether a missing file goes to the
/// route's pool.
#[derive(Clone, Debug)]
struct FilesRoute {
    files: Arc<Files>,
    fallback: bool,
    /// `internal`: reached only by a backend's `X-Accel-Redirect`.
    internal: bool,
}

/// What a route that sends to no pool answers.
#[derive(Clone, Debug)]
enum Answer {
    Redirect(Redirect),
    Return(Return),
}
