//! `pool.<name> = <targets>` and `pool.<name>.<key> = <value>`: pools of
//! backends beside `targets` (nginx's `upstream` blocks, HAProxy's
//! `backend` sections), each with its own balancing, health checks,
//! retries and timeouts where it sets them and the top-level keys' where
//! it does not; and `route.<host><path> = <pool>`, which requests each
//! pool serves (see [`crate::routes`]).
//!
//! # Layout
//! - `keys`: the keys a pool may set ([`POOL_KEYS`]), and each `pool.*`
//!   and `route.*` key taken from the file as written.
//! - `build`: each pool built: the top level's settings with the pool's
//!   targets and the keys it sets, and the error pages each scope
//!   answers with.
//! - `links`: what pools mean to one another once all are built: the
//!   pools `auth_request` and `mirror` name, sign-in loops, sticky
//!   cookies, each backend in one pool.
//! - `routes`: each route to a pool, a redirect, a `return` or files.
//! - `scope`: where a message about a backend setting points
//!   ([`Scope`]).
//! - here: the pools' limits, a pool's settings as built ([`PoolConfig`])
//!   and the keys as read, which the files share; and the tests' helpers,
//!   with a test of the messages of every file.

mod build;
mod keys;
mod links;
mod routes;
mod scope;

use super::keys::Apply;
// Named as `super::Target` and `super::values` by code here from when
// the pools were one file in `config`.
use super::Target;
use super::{Config, LogFormat, Setting};
pub(super) use keys::on_line;
pub use keys::POOL_KEYS;
pub(super) use routes::index_named;
pub(in crate::config) use routes::split_condition;
pub(super) use scope::Scope;
use std::path::PathBuf;
use std::sync::Arc;

/// Most pools one configuration may define.
pub const MAX_POOLS: usize = 100;

/// The name routes give the pool `targets` makes.
pub const DEFAULT_POOL: &str = "default";

/// A pool's settings, as built: the top-level configuration with the
/// pool's targets and the keys it sets (it has no pools or routes of its
/// own).
#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub name: Arc<str>,
    pub config: Config,
    /// Whether the pool sets its own `rate_limit`, `rate_limit_burst` or
    /// `rate_limit_key`: its requests then fill buckets of their own, not
    /// the top level's.
    pub own_rate_limit: bool,
    /// Its own access log (`pool.<name>.path_to_log`), which takes a copy
    /// of the lines of the requests routed to it; `None` when it sets none.
    pub path_to_log: Option<PathBuf>,
    /// The format of the lines in that file (`pool.<name>.log_format`);
    /// `None` when it sets none: the main log's.
    pub log_format: Option<LogFormat>,
}

/// A `pool.<name>` or `pool.<name>.<key>` key as read.
#[derive(Clone, Debug)]
pub(super) struct PoolKey {
    pool: String,
    /// `None`: the pool's targets.
    key: Option<&'static str>,
    /// How the value is read: `targets`'s, or the key's.
    apply: Apply,
    setting: Setting,
}

/// A `route.<host><path>` key as read.
#[derive(Clone, Debug)]
pub(super) struct RouteKey {
    spec: String,
    setting: Setting,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, Loader};
    pub(super) fn build(text: &str) -> Result<Config, ConfigError> {
        Loader::new().file("proxy.conf", text)?.build()
    }

    pub(super) fn refused(text: &str) -> String {
        build(text).unwrap_err().to_string()
    }

    /// `text` builds when `says` is empty, else is refused saying it.
    #[track_caller]
    pub(super) fn assert_built_or_refused(text: &str, says: &str) {
        let result = build(text);
        match says {
            "" => assert!(result.is_ok(), "{text}: {:?}", result.err()),
            says => {
                let e = result.map(|_| ()).unwrap_err().to_string();
                assert!(e.contains(says), "{text}: {e}");
            }
        }
    }

    pub(super) const TWO_POOLS: &str = "\
targets = 127.0.0.1:9001
balance = least_conn
retries = 1
health_check_path = /up
pool.api = 127.0.0.1:9002 weight=2, 127.0.0.1:9003
pool.api.balance = weighted_round_robin
pool.api.health_check_path = /healthz
pool.static = 127.0.0.1:9004
route./api/ = api rewrite=/
route.static.example = static
";

    #[test]
    fn pool_keys_are_checked_where_they_are_written() {
        let base = "targets = 127.0.0.1:9001\npool.api = 127.0.0.1:9002\nroute./api/ = api\n";
        for (line, says) in [
            ("pool.api.port = 1", "proxy.conf:4: `pool.api.port`: port is the proxy's, not set per pool"),
            ("pool.api.balanse = hash", "did you mean `balance`?"),
            ("pool.api.targets = 127.0.0.1:9005", "a pool's targets are `pool.api = host:port, ...`"),
            ("pool.api.retries = x", "proxy.conf:4: pool.api.retries: `x` is not a whole number"),
            ("pool.api = 127.0.0.1:9005", "proxy.conf:4: duplicate key `pool.api` (first set on line 2)"),
            ("pool.api.balance = hash", "proxy.conf:4: pool.api.balance: hash needs hash_on"),
            ("pool.api.hash_on = header:X", "pool.api.hash_on: is set (header:X), but balance = round_robin"),
            ("pool.other.slow_start = 1s", "proxy.conf:4: `pool.other.slow_start`: the pool has no targets"),
            ("pool.default = 127.0.0.1:9005", "`default` is the pool `targets` makes"),
            ("pool.a/b = 127.0.0.1:9005", "a pool's name is 1 to 64 letters"),
            ("pool.b = 127.0.0.1:9001", "proxy.conf:4: pool.b: 127.0.0.1:9001 is also in targets: a backend serves one pool"),
            ("pool.b = 127.0.0.1:9002", "pool.b: 127.0.0.1:9002 is also in pool.api"),
            ("pool.b = 127.0.0.1:9005 weight=3", "pool.b: 127.0.0.1:9005 has weight=3, but balance = round_robin"),
            ("pool.b = 127.0.0.1:9005 backup", "pool.b: every target is a backup"),
            ("pool.b =", "pool.b: at least one backend is required"),
            ("pool.b = 127.0.0.1:8080", "pool.b: 127.0.0.1:8080 is this proxy's own address"),
            ("route./api/ = default", "proxy.conf:4: route./api/: a second route for /api/ (first set on line 3)"),
            ("route./API/ = default", ""),
            ("route.x.example = apj", "route.x.example: no pool is named `apj` (did you mean `api`?)"),
            ("route.x.example =", "route.x.example: needs the pool"),
            ("route.x.example = api strip", "unknown option `strip`"),
            ("route./v2/ = api rewrite=/a rewrite=/b", "rewrite= given twice"),
            ("route./login = api rate_limit=5/m rate_limit_burst=3", ""),
            ("route./login = api rate_limit=5/m rate_limit_burst=3 rate_limit_burst=1", "rate_limit_burst= given twice"),
            ("route./login = api rate_limit=5/week", "rate_limit=5/week: `5/week` is not a rate"),
            ("route./login = api rate_limit=5/m rate_limit_delay=0", ""),
            ("route./login = api rate_limit_delay=1", "rate_limit_delay= is set, but rate_limit= is not"),
            ("route./login = api rate_limit=5/m rate_limit_delay=1 rate_limit_delay=2", "rate_limit_delay= given twice"),
            ("route./login = api rate_limit=5/m rate_limit_delay=-1", "rate_limit_delay=-1: "),
            ("route./old/ = return 404 rate_limit_delay=1", "answered before any rate limit"),
            ("route./v2/ = api cookie_paths", "it needs rewrite="),
            (
                "route./v2/ = api rewrite=/ cookie_paths cookie_paths",
                "cookie_paths given twice",
            ),
            ("route./v2/ = api rewrite=v1", "rewrite=v1: a path that starts with one `/`"),
            ("route.x.example:80 = api", "is no host"),
            ("route./a/../b/ = api", "a `.` or `..` segment"),
            ("route. = api", "`route.` needs a host, a path or both"),
            ("route./old/ = redirect 301", "a redirect is `redirect <status> <to>`"),
            ("route./old/ = redirect 301 /new/ x", "a redirect is `redirect <status> <to>`"),
            ("route./old/ = redirect moved /new/", "`moved` is no status"),
            ("route./old/ = redirect 200 /new/", "301, 302, 303, 307 or 308"),
            ("route./old/ = redirect 301 /new/", ""),
            ("route./api/ = redirect 301 /new/", "a second route for /api/"),
            ("route./api/ if cookie canary 1 = default", ""),
            ("route./api/ if cookie  canary 1 = default\nroute./api/ if cookie canary 1 = api", "proxy.conf:5: route./api/ if cookie canary 1: a second route for /api/ if cookie canary 1 (first set on line 4)"),
            ("route./api/ if cookie = api", "proxy.conf:4: route./api/ if cookie: `if cookie`: a condition is"),
            ("route./api/\tif\tcookie c = api", ""),
            ("route./api/ when cookie c = api", "after `/api/`, a route's key has `if <condition>` or nothing"),
            ("route./api/ if method PUT,POST = api\nroute./api/ if method POST,PUT = default", "a second route for /api/ if method POST,PUT"),
            ("route./api/ if not cookie canary 1 = default", ""),
            ("route./api/ if cookie canary 1 = default\nroute./api/ if not cookie canary 1 = api", ""),
            ("route./api/ if not cookie a = default\nroute./api/ if not  cookie a = api", "proxy.conf:5: route./api/ if not  cookie a: a second route for /api/ if not cookie a (first set on line 4)"),
            ("route./api/ if not method PUT,POST = api\nroute./api/ if not method POST,PUT = default", "a second route for /api/ if not method POST,PUT"),
            ("route./api/ if cookie b and not cookie a = api\nroute./api/ if not cookie a and cookie b = default", "a second route for /api/ if cookie b and not cookie a"),
            ("route./admin/ if not client 10.0.0.0/8 = return 403", ""),
            ("route./api/ if not not cookie a = api", "proxy.conf:4: route./api/ if not not cookie a: `if not not cookie a`: `not` is written once"),
            ("route./api/ if not = api", "`if not`: `not` needs the condition it negates"),
            ("route./api/ if cookie a and not = api", "`not` needs the condition it negates"),
            ("route./api/ if not method GET = api", "GET and HEAD go together"),
            ("route./ws/ if header Upgrade websocket = return 403", ""),
            ("route./x/ if method POST = redirect 307 /y/", ""),
            ("route./healthz = return 200 all is well", ""),
            ("route./.git/ = return 404", ""),
            ("route./x = return", "`` is no status: a route that answers itself is `return <status> [type=<media type>] [<text>]`"),
            ("route./x = return +200 ok", "`+200` is no status"),
            ("route./x = return 0200 ok", "`0200` is no status"),
            ("route./x = redirect 0301 /y/", "`0301` is no status"),
            ("route./x = return 200 a\tb", "with no control character (a tab included)"),
            ("route./x = return ok 200", "`ok` is no status"),
            ("route./x = return 204", "a route returns 200 to 203, or 400 to 599"),
            ("route./x = return 444", ""),
            ("route./x = return 444 bye", "closes the connection without an answer"),
            ("route./api/ = return 503 down", "a second route for /api/"),
            ("pool.redirect = 127.0.0.1:9005", "`redirect` is what a route that answers itself says"),
            ("pool.return = 127.0.0.1:9005", "`return` is what a route that answers itself says"),
        ] {
            assert_built_or_refused(&format!("{base}{line}\n"), says);
        }
    }
}
