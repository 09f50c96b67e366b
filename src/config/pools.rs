//! `pool.<name> = <targets>` and `pool.<name>.<key> = <value>`: pools of
//! backends beside `targets` (nginx's `upstream` blocks, HAProxy's
//! `backend` sections), each with its own balancing, health checks,
//! retries and timeouts where it sets them and the top-level keys' where
//! it does not; and `route.<host><path> = <pool>`, which requests each
//! pool serves (see [`crate::routes`]).

use super::keys::{find_key, Apply};
use super::values::parse_number;
use super::{
    nearest, parse_duration, parse_rate, parse_size, Balance, Config, ConfigError, FieldFamily,
    FieldKey, Loader, Origin, Setting,
};
use crate::error_pages::{warn_of_unused_pages, ErrorPages};
use crate::files::{listing, Files, MAX_MAX_AGE};
use crate::http::head::required_field;
use crate::ratelimit::Rate;
use crate::routes::{Condition, Route, Routes, CLOSE_UNANSWERED, MAX_ROUTES};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Most pools one configuration may define.
pub const MAX_POOLS: usize = 100;

/// The name routes give the pool `targets` makes.
pub const DEFAULT_POOL: &str = "default";

/// What a route answers with instead of a pool: `redirect <status> <to>`
/// or `return <status> [<text>]`.
const REDIRECT: &str = "redirect";
const RETURN: &str = "return";
const FILES: &str = "files";

/// The keys a pool may set for itself: how its backends are chosen,
/// checked, retried, waited for and spoken to over TLS, who may send it what (nginx's
/// `allow`, `deny` and `client_max_body_size` in a `location`), and
/// whether and for how long what it answers is cached (`proxy_cache`,
/// `proxy_cache_valid`, `proxy_ignore_headers`, `proxy_cache_bypass`),
/// and what of it is compressed (`gzip` in a `location`).
/// The others are the proxy's: among them the cache key's rules
/// (`cache_key_ignore_params`), which a purge applies without knowing
/// which pool a URL's answers came from.
pub const POOL_KEYS: &[&str] = &[
    "allow_from",
    "deny_from",
    "auth_basic",
    "auth_basic_user_file",
    "auth_basic_except_from",
    "auth_request",
    "auth_request_headers",
    "mirror",
    "auth_request_cache",
    "auth_request_redirect",
    "max_body_size",
    "limit_rate",
    "limit_rate_after",
    "error_pages",
    "intercept_errors",
    "cache",
    "ttl",
    "cache_valid",
    "cache_unlabeled",
    "cache_ignore_headers",
    "cache_min_uses",
    "cache_bypass_cookies",
    "ignore_client_cache_control",
    "stale_if_error",
    "stale_while_revalidate",
    "gzip",
    "gzip_types",
    "gzip_min_length",
    "gzip_comp_level",
    "rate_limit",
    "rate_limit_burst",
    "rate_limit_key",
    "balance",
    "hash_on",
    "max_fails",
    "fail_timeout",
    "retries",
    "retry_on_status",
    "slow_start",
    "connect_timeout",
    "backend_timeout",
    "tunnel_timeout",
    "upstream_keepalive",
    "backend_tls_verify",
    "backend_tls_ca",
    "backend_tls_protocols",
    "backend_tls_certificate",
    "sticky_cookie",
    "health_check_path",
    "health_check_tcp",
    "health_check_host",
    "health_check_expect_status",
    "health_check_expect_body",
    "health_check_interval",
    "health_check_timeout",
    "health_check_rise",
    "health_check_fall",
];

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

/// Where a check of backend settings says what it refused: the top-level
/// keys, or a pool's.
#[derive(Clone, Copy)]
pub(super) enum Scope<'a> {
    Top,
    Pool(&'a str),
}

/// What a pool sets, for a message: [`POOL_KEYS`], the health checks'
/// as one, and its fields.
fn pool_keys_in_short() -> String {
    let mut keys: Vec<&str> = (POOL_KEYS.iter().copied())
        .filter(|k| !k.starts_with("health_check_"))
        .collect();
    keys.extend([
        "health_check_*",
        "request_header.<Field-Name>",
        "response_header.<Field-Name>",
    ]);
    keys.join(", ")
}

/// A pool's name: letters, digits, `-` and `_`, as short as a name.
fn check_pool_name(name: &str) -> Result<(), String> {
    let valid = (1..=64).contains(&name.len())
        && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(format!(
            "`pool.{}`: a pool's name is 1 to 64 letters, digits, `-` or `_` \
             (e.g. `pool.api = 10.0.0.5:8080`)",
            name.escape_debug()
        ));
    }
    if name == DEFAULT_POOL {
        return Err(format!(
            "`pool.{DEFAULT_POOL}`: `{DEFAULT_POOL}` is the pool `targets` makes; \
             give this pool another name"
        ));
    }
    if [REDIRECT, RETURN, FILES].contains(&name) {
        return Err(format!(
            "`pool.{name}`: `{name}` is what a route that answers itself says \
             (`route./old/ = redirect 301 /new/`, `route./healthz = return 200 ok`, \
             `route./static/ = files /srv/www`); give this pool another name"
        ));
    }
    Ok(())
}

impl Loader {
    /// Takes `pool.<rest> = value` from the file.
    pub(super) fn pool_key(
        &mut self,
        rest: &str,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        let (pool, key) = match rest.split_once('.') {
            Some((pool, key)) => (pool, Some(key)),
            None => (rest, None),
        };
        check_pool_name(pool).map_err(|m| ConfigError::at(&origin, m))?;
        if let Some((family, name)) = key.and_then(FieldFamily::of) {
            return self.pool_field_key(pool, family, name, value, origin);
        }
        let key = match key {
            None => None,
            Some(key) => match POOL_KEYS.iter().find(|k| **k == key) {
                Some(known) => Some(*known),
                None => {
                    let why = match find_key(key) {
                        Some(_) if key == "targets" => {
                            format!("a pool's targets are `pool.{pool} = host:port, ...`")
                        }
                        Some(_) => format!("{key} is the proxy's, not set per pool"),
                        None => match nearest(key, POOL_KEYS.iter().copied()) {
                            Some(near) => format!("unknown key (did you mean `{near}`?)"),
                            None => "unknown key".to_string(),
                        },
                    };
                    return Err(ConfigError::at(
                        &origin,
                        format!(
                            "`pool.{pool}.{}`: {why}; a pool sets {}",
                            key.escape_debug(),
                            pool_keys_in_short()
                        ),
                    ));
                }
            },
        };
        let shown = |key: Option<&str>| match key {
            Some(key) => format!("pool.{pool}.{key}"),
            None => format!("pool.{pool}"),
        };
        if let Some(first) = (self.pool_keys.iter()).find(|k| k.pool == pool && k.key == key) {
            return Err(ConfigError::at(
                &origin,
                format!("duplicate key `{}`{}", shown(key), on_line(&first.setting)),
            ));
        }
        let pools = (self.pool_keys.iter()).filter(|k| k.key.is_none() && k.pool != pool);
        if key.is_none() && pools.count() >= MAX_POOLS {
            return Err(ConfigError::at(
                &origin,
                format!("`{}`: more than {MAX_POOLS} pools", shown(key)),
            ));
        }
        let Some(spec) = find_key(key.unwrap_or("targets")) else {
            return Err(ConfigError::at(
                &origin,
                format!("`{}`: no such key", shown(key)),
            ));
        };
        self.pool_keys.push(PoolKey {
            pool: pool.to_string(),
            key,
            apply: spec.apply,
            setting: Setting {
                value: value.to_string(),
                origin,
            },
        });
        Ok(())
    }

    /// Takes `pool.<pool>.request_header.<name> = value` (a field set or
    /// removed on the requests sent to that pool's backends) or
    /// `pool.<pool>.response_header.<name> = value` (on the responses to
    /// the requests routed to it), in place of the top-level key for that
    /// field, if any.
    fn pool_field_key(
        &mut self,
        pool: &str,
        family: FieldFamily,
        name: &str,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        let key = format!("pool.{pool}.{}{name}", family.prefix());
        if name.is_empty() {
            return Err(ConfigError::at(
                &origin,
                format!("`{key}` needs a field name after the dot, e.g. `{key}Host`"),
            ));
        }
        let mine = (self.pool_field_keys.iter()).filter(|(p, k)| p == pool && k.family == family);
        if let Some((_, first)) = mine
            .clone()
            .find(|(_, k)| k.name.eq_ignore_ascii_case(name))
        {
            return Err(ConfigError::at(
                &origin,
                format!("duplicate key `{key}`{}", on_line(&first.setting)),
            ));
        }
        if mine.count() >= super::values::MAX_FIELD_EDITS {
            return Err(ConfigError::at(
                &origin,
                format!(
                    "`{key}`: more than {} such keys",
                    super::values::MAX_FIELD_EDITS
                ),
            ));
        }
        let field = FieldKey {
            family,
            name: name.to_string(),
            setting: Setting {
                value: value.to_string(),
                origin,
            },
        };
        self.pool_field_keys.push((pool.to_string(), field));
        Ok(())
    }

    /// Takes `route.<spec> = value` from the file; read when the pools
    /// are known (see [`Loader::build_routes`]).
    pub(super) fn route_key(
        &mut self,
        spec: &str,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        if spec.is_empty() {
            return Err(ConfigError::at(
                &origin,
                "`route.` needs a host, a path or both after the dot, \
                 e.g. `route./api/ = api` or `route.static.example.com = static`",
            ));
        }
        if self.route_keys.len() >= MAX_ROUTES {
            return Err(ConfigError::at(
                &origin,
                format!("`route.{spec}`: more than {MAX_ROUTES} routes"),
            ));
        }
        self.route_keys.push(RouteKey {
            spec: spec.to_string(),
            setting: Setting {
                value: value.to_string(),
                origin,
            },
        });
        Ok(())
    }

    /// Every `pool.*` and `route.*` key with its value and origin, in the
    /// file's order within each family.
    pub fn pool_and_route_settings(&self) -> impl Iterator<Item = (String, &Setting)> {
        let pools = self.pool_keys.iter().map(|k| {
            let key = match k.key {
                Some(key) => format!("pool.{}.{key}", k.pool),
                None => format!("pool.{}", k.pool),
            };
            (key, &k.setting)
        });
        let fields = (self.pool_field_keys.iter()).map(|(pool, k)| {
            (
                format!("pool.{pool}.{}{}", k.family.prefix(), k.name),
                &k.setting,
            )
        });
        let routes = (self.route_keys.iter()).map(|k| (format!("route.{}", k.spec), &k.setting));
        pools.chain(fields).chain(routes)
    }

    /// The pools and routes of `top` (built from every other key).
    pub(super) fn build_pools(&self, top: &mut Config) -> Result<(), ConfigError> {
        let mut pools: Vec<PoolConfig> = Vec::new();
        for targets in self.pool_keys.iter().filter(|k| k.key.is_none()) {
            let config = self.build_pool(top, &targets.pool, &targets.setting)?;
            let own = |key| self.sets(Scope::Pool(&targets.pool), key);
            pools.push(PoolConfig {
                name: targets.pool.as_str().into(),
                config,
                own_rate_limit: ["rate_limit", "rate_limit_burst", "rate_limit_key"]
                    .into_iter()
                    .any(own),
            });
        }
        // A key for a pool that has no targets would set nothing.
        let keys = (self.pool_keys.iter())
            .filter_map(|k| Some((&*k.pool, k.key?.to_string(), &k.setting)));
        let fields = (self.pool_field_keys.iter()).map(|(pool, f)| {
            (
                &**pool,
                format!("{}{}", f.family.prefix(), f.name),
                &f.setting,
            )
        });
        let mut all = keys.chain(fields);
        if let Some((pool, key, setting)) =
            all.find(|(pool, ..)| !pools.iter().any(|p| *p.name == **pool))
        {
            return Err(ConfigError::at(
                &setting.origin,
                format!(
                    "`pool.{pool}.{key}`: the pool has no targets; give them with \
                     `pool.{pool} = host:port, ...`"
                ),
            ));
        }
        check_each_backend_in_one_pool(top, &pools, |pool| self.pool_origin(pool))?;
        self.check_sticky_cookies(top, &pools)?;
        top.routes = Arc::new(self.build_routes(&pools)?);
        self.read_more_error_pages(top, &mut pools)?;
        self.resolve_auth_requests(top, &mut pools)?;
        self.check_mirrors(top, &mut pools)?;
        self.warn_of_sign_in_loops(top, &pools);
        // Asked by `auth_request`, or sent copies by `mirror`.
        let asked = |i: usize, name: &str| {
            (std::iter::once(&*top).chain(pools.iter().map(|p| &p.config))).any(|c| {
                c.auth_request.as_ref().is_some_and(|a| a.pool == i)
                    || c.mirror.as_deref() == Some(name)
            })
        };
        for (i, pool) in pools.iter().enumerate() {
            if !top.routes.iter().any(|r| r.pool == i + 1) && !asked(i + 1, &pool.name) {
                log::warn!(
                    "{}: pool.{}: no route sends requests to it \
                     (e.g. `route./{}/ = {}`)",
                    self.pool_origin(&pool.name),
                    pool.name,
                    pool.name,
                    pool.name
                );
            }
        }
        top.pools = pools;
        Ok(())
    }

    /// Each `auth_request`'s pool, by name. A pool's requests are not
    /// asked of itself (its sign-in pages must be reachable by a client
    /// that has not signed in): the top level's key is off for it, and
    /// its own naming itself is refused.
    fn resolve_auth_requests(
        &self,
        top: &mut Config,
        pools: &mut [PoolConfig],
    ) -> Result<(), ConfigError> {
        let names: Vec<Arc<str>> = pools.iter().map(|p| p.name.clone()).collect();
        let scopes = std::iter::once((0, None, top)).chain(
            (pools.iter_mut().enumerate()).map(|(i, p)| (i + 1, Some(&*names[i]), &mut p.config)),
        );
        for (own, name, config) in scopes {
            let Some(asked) = &mut config.auth_request else {
                continue;
            };
            let scope = name.map_or(Scope::Top, Scope::Pool);
            // A pool that takes the top level's key is judged there.
            let key_scope = match self.sets(scope, "auth_request") {
                true => scope,
                false => Scope::Top,
            };
            asked.pool = index_named(&asked.pool_name, names.iter().map(|n| &**n))
                .map_err(|m| self.refused_in(key_scope, "auth_request", m))?;
            if asked.pool == own {
                if !matches!(key_scope, Scope::Top) {
                    return Err(self.refused_in(
                        scope,
                        "auth_request",
                        "names the pool itself, which is never asked about its own requests \
                         (its sign-in pages must be reached unasked)"
                            .into(),
                    ));
                }
                config.auth_request = None;
            }
        }
        Ok(())
    }

    /// Each `mirror`'s pool must be one. A pool's requests are not
    /// mirrored to itself: the top level's key is off for the pool it
    /// names, and a pool's own naming itself is refused.
    fn check_mirrors(&self, top: &mut Config, pools: &mut [PoolConfig]) -> Result<(), ConfigError> {
        let names: Vec<Arc<str>> = pools.iter().map(|p| p.name.clone()).collect();
        let scopes = std::iter::once((0, None, top)).chain(
            (pools.iter_mut().enumerate()).map(|(i, p)| (i + 1, Some(&*names[i]), &mut p.config)),
        );
        for (own, name, config) in scopes {
            let Some(mirror) = &config.mirror else {
                continue;
            };
            let scope = name.map_or(Scope::Top, Scope::Pool);
            let key_scope = match self.sets(scope, "mirror") {
                true => scope,
                false => Scope::Top,
            };
            let to = index_named(mirror, names.iter().map(|n| &**n))
                .map_err(|m| self.refused_in(key_scope, "mirror", m))?;
            if to == own {
                if !matches!(key_scope, Scope::Top) || name.is_none() {
                    return Err(self.refused_in(
                        key_scope,
                        "mirror",
                        "names the pool itself: its requests would go to it twice".into(),
                    ));
                }
                config.mirror = None;
            }
        }
        Ok(())
    }

    /// Warns of an `auth_request_redirect` path that is routed to a pool
    /// whose requests are asked too: a client not signed in would be
    /// sent there, answered 401 and sent on again, in a loop. Not told
    /// where routes are by host (which host the path is asked on is the
    /// client's), nor for a route that answers itself.
    fn warn_of_sign_in_loops(&self, top: &Config, pools: &[PoolConfig]) {
        if top.routes.by_host() {
            return;
        }
        let config_of = |i: usize| match i.checked_sub(1) {
            Some(i) => &pools[i].config,
            None => top,
        };
        let scopes =
            std::iter::once((None, top)).chain(pools.iter().map(|p| (Some(&*p.name), &p.config)));
        for (name, config) in scopes {
            let (Some(to), Some(asked)) = (&config.auth_request_redirect, &config.auth_request)
            else {
                continue;
            };
            // A pool that takes the top level's is told of there.
            let inherited =
                name.is_some_and(|n| self.own_key(n, "auth_request_redirect").is_none());
            let source = to.source();
            if inherited || !source.starts_with('/') {
                continue;
            }
            let path = &source[..source.find(['?', '$']).unwrap_or(source.len())];
            let route =
                (top.routes.route(None, path).ok().flatten()).and_then(|r| top.routes.get(r));
            if route.is_some_and(Route::answers_itself) {
                continue;
            }
            let pool = route.map_or(0, |r| r.pool);
            if config_of(pool).auth_request.is_some() {
                let routed = match pool.checked_sub(1) {
                    Some(i) => format!("routed to pool {}", pools[i].name),
                    None => "routed to targets".to_string(),
                };
                let why = format!(
                    "`{path}` is {routed}, whose requests are asked of a sign-in service too: a \
                     client not signed in would be sent there and back, in a loop (route it to \
                     the service: `route.{path} = {}`)",
                    asked.pool_name
                );
                let scope = name.map_or(Scope::Top, Scope::Pool);
                log::warn!("{}", self.refused_in(scope, "auth_request_redirect", why));
            }
        }
    }

    /// The `error_pages` pages the proxy answers with besides its own
    /// errors', in each scope's directory: the statuses bare `return`
    /// routes answer (at the top level: they go to no pool), the 404 of
    /// `files` routes without `fallback=` (there too), and with
    /// `intercept_errors` those of backends' answers it may replace. A
    /// pool without a directory of its own has the top level's.
    fn read_more_error_pages(
        &self,
        top: &mut Config,
        pools: &mut [PoolConfig],
    ) -> Result<(), ConfigError> {
        let interceptable = |s: u16| (400..=599).contains(&s) && required_field(s).is_none();
        // A `files` route without `fallback=` answers a missing file 404
        // itself, at the top level too.
        let files_404 = (top.routes.iter())
            .filter(|r| r.files().is_some_and(|(_, fallback)| !fallback))
            .map(|_| 404);
        let returned: Vec<u16> = (top.routes.iter())
            .filter_map(|r| r.returned().filter(|r| r.text.is_none()).map(|r| r.status))
            .filter(|&status| status != CLOSE_UNANSWERED)
            .chain(files_404)
            .collect();
        let shares_top = |pool: &PoolConfig| !self.sets(Scope::Pool(&pool.name), "error_pages");
        let top_intercepts = top.intercept_errors
            || (pools.iter()).any(|p| p.config.intercept_errors && shares_top(p));
        let used_at_top = |s: u16| returned.contains(&s) || top_intercepts && interceptable(s);
        let at_top: Vec<u16> = (400..=599).filter(|&s| used_at_top(s)).collect();
        (top.error_pages.load_more(at_top.iter().copied()))
            .map_err(|e| self.refused("error_pages", e.to_string()))?;
        // Each directory's pages that some scope uses, to warn of the
        // others once per directory, however many scopes read it.
        let mut used_in: Vec<(PathBuf, Vec<u16>)> = Vec::new();
        let mut note = |pages: &ErrorPages, used: Vec<u16>| {
            let Some(dir) = pages.dir() else {
                return;
            };
            match used_in.iter_mut().find(|(d, _)| d == dir) {
                Some((_, all)) => all.extend(used),
                None => used_in.push((dir.to_path_buf(), used)),
            }
        };
        note(&top.error_pages, at_top);
        for pool in pools.iter_mut() {
            if shares_top(pool) {
                pool.config.error_pages = top.error_pages.clone();
                continue;
            }
            let intercepts = pool.config.intercept_errors;
            // A file a pool's backend names in `X-Accel-Redirect` is
            // answered with the pool's settings: a missing one is its 404.
            let accel_404 = |s: u16| s == 404 && top.routes.iter().any(Route::is_internal);
            let used: Vec<u16> = (400..=599)
                .filter(|&s| intercepts && interceptable(s) || accel_404(s))
                .collect();
            (pool.config.error_pages.load_more(used.iter().copied())).map_err(|e| {
                self.refused_in(Scope::Pool(&pool.name), "error_pages", e.to_string())
            })?;
            note(&pool.config.error_pages, used);
        }
        for (dir, used) in used_in {
            warn_of_unused_pages(&dir, |s| used.contains(&s));
        }
        // Said where it is set: a pool that only takes the top level's
        // setting needs no warning of its own.
        let scopes = std::iter::once((Scope::Top, &*top)).chain(
            (pools.iter())
                .filter(|p| {
                    let own = |key| self.sets(Scope::Pool(&p.name), key);
                    own("intercept_errors") || own("error_pages")
                })
                .map(|p| (Scope::Pool(&p.name), &p.config)),
        );
        for (scope, config) in scopes {
            if config.intercept_errors && config.error_pages.dir().is_none() {
                let why = "is on, but error_pages is empty: no answer has a page to be \
                           replaced with";
                log::warn!("{}", self.refused_in(scope, "intercept_errors", why.into()));
            }
        }
        Ok(())
    }

    /// One sticky cookie per pool: a client served by two pools under one
    /// name would have its cookie replaced at each turn, each naming a
    /// target the other pool does not have, and be stuck to none.
    fn check_sticky_cookies(&self, top: &Config, pools: &[PoolConfig]) -> Result<(), ConfigError> {
        let mut taken: Vec<(&str, String)> = Vec::new();
        if let Some(name) = top.sticky_cookie.as_deref() {
            taken.push((name, "targets'".to_string()));
        }
        for pool in pools {
            let Some(name) = pool.config.sticky_cookie.as_deref() else {
                continue;
            };
            if let Some((_, whose)) = taken.iter().find(|(n, _)| *n == name) {
                return Err(self.refused_in(
                    Scope::Pool(&pool.name),
                    "sticky_cookie",
                    format!(
                        "{name} is also {whose}: a client served by both would have it replaced \
                         at each turn; give the pool its own (`pool.{0}.sticky_cookie = \
                         {name}_{0}`) or none (`pool.{0}.sticky_cookie =`)",
                        pool.name
                    ),
                ));
            }
            taken.push((name, format!("pool.{}'s", pool.name)));
        }
        Ok(())
    }

    /// Where `pool.<name>` was set.
    fn pool_origin(&self, name: &str) -> Origin {
        (self.pool_keys.iter())
            .find(|k| k.pool == name && k.key.is_none())
            .map_or(Origin::Default, |k| k.setting.origin.clone())
    }

    /// One pool: `top`'s settings with the pool's targets and the keys it
    /// sets, checked as the top-level ones are.
    fn build_pool(
        &self,
        top: &Config,
        name: &str,
        targets: &Setting,
    ) -> Result<Config, ConfigError> {
        let mut config = top.clone();
        config.pools = Vec::new();
        config.routes = Arc::default();
        config.rewrites = Arc::default();
        for key in (self.pool_keys.iter()).filter(|k| k.pool == name) {
            let shown = match key.key {
                Some(k) => format!("pool.{name}.{k}"),
                None => format!("pool.{name}"),
            };
            (key.apply)(&mut config, &key.setting.value)
                .map_err(|m| ConfigError::at(&key.setting.origin, format!("{shown}: {m}")))?;
        }
        if config.targets.is_empty() {
            return Err(ConfigError::at(
                &targets.origin,
                format!("pool.{name}: at least one backend is required, e.g. `pool.{name} = 10.0.0.5:8080`"),
            ));
        }
        // Another algorithm set for the pool does not read the `hash_on`
        // that went with the top-level `balance = hash`.
        let sets = |key| self.sets(Scope::Pool(name), key);
        if sets("balance") && !sets("hash_on") && config.balance != Balance::Hash {
            config.hash_on = None;
        }
        // Another service's sign-in page is its own.
        if sets("auth_request") && !sets("auth_request_redirect") {
            config.auth_request_redirect = None;
        }
        // The top-level fields, but for those the pool sets itself.
        for family in FieldFamily::ALL {
            let own_fields: Vec<&FieldKey> = (self.pool_field_keys.iter())
                .filter(|(pool, k)| pool == name && k.family == family)
                .map(|(_, k)| k)
                .collect();
            if own_fields.is_empty() {
                continue;
            }
            let top_fields = (self.field_keys.iter()).filter(|k| {
                k.family == family
                    && !own_fields
                        .iter()
                        .any(|o| o.name.eq_ignore_ascii_case(&k.name))
            });
            let fields = top_fields.chain(own_fields.iter().copied());
            let edits = self.field_edits_of(family, fields, &format!("pool.{name}."), &config)?;
            match family {
                FieldFamily::Request => config.request_headers = edits,
                FieldFamily::Response => config.response_headers = edits,
            }
        }
        // Of the two kinds of probe, the one a pool sets is the one it
        // has: its own `health_check_tcp = true` under a top-level
        // health_check_path checks its targets by connecting alone, and
        // its own health_check_path under a top-level `health_check_tcp`
        // with GETs, or, empty, with none (as under a top-level path).
        // Both set for the pool are refused below.
        if sets("health_check_tcp") && config.health_check_tcp && !sets("health_check_path") {
            config.health_check_path = None;
        }
        if sets("health_check_path") && !sets("health_check_tcp") {
            config.health_check_tcp = false;
        }
        // A burst or a key it takes from the top level goes with a rate
        // the pool turned off (`pool.<name>.rate_limit =`): nothing.
        let mut own = config.rate_limit_unlimited().into_iter();
        if let Some((key, why)) = own.find(|(key, _)| self.sets(Scope::Pool(name), key)) {
            return Err(self.refused_in(Scope::Pool(name), key, why.into()));
        }
        if let Some(why) = config.rate_limit_key_unread() {
            return Err(self.refused_in(Scope::Pool(name), "rate_limit_key", why));
        }
        // Settings of its own for TLS to its backends are made anew.
        if config.backend_tls_keys != top.backend_tls_keys {
            config.backend_tls = None;
        }
        self.backend_tls_for(&mut config, Scope::Pool(name))?;
        self.check_backends(&config, Scope::Pool(name))?;
        self.check_cache(&config, Scope::Pool(name), Some(top))?;
        self.check_auth(&config, Scope::Pool(name))?;
        Ok(config)
    }

    /// `key: message` for a check of the backends' settings, placed where
    /// `scope` set `key`: for a pool, its own key, or else its targets
    /// (what it sets nothing else for takes the top-level value), naming
    /// the key it took from the top level.
    pub(super) fn refused_in(&self, scope: Scope<'_>, key: &str, message: String) -> ConfigError {
        let Scope::Pool(pool) = scope else {
            return self.refused(key, message);
        };
        match self.own_key(pool, key) {
            Some(k) => ConfigError::at(&k.setting.origin, format!("pool.{pool}.{key}: {message}")),
            None if key == "targets" => {
                ConfigError::at(&self.pool_origin(pool), format!("pool.{pool}: {message}"))
            }
            None => ConfigError::at(
                &self.pool_origin(pool),
                format!("pool.{pool}: {key} (the top level's): {message}"),
            ),
        }
    }

    /// Of `keys`, which together make a setting wrong, the first that
    /// `scope` sets itself (for the top level, or a pool that sets none,
    /// the first): where a message about them points.
    pub(super) fn first_set_in<'k>(&self, scope: Scope<'_>, keys: &[&'k str]) -> &'k str {
        let first = keys.first().copied().unwrap_or_default();
        (keys.iter().copied())
            .find(|key| self.sets(scope, key))
            .unwrap_or(first)
    }

    /// Whether `scope` sets `key` itself (the top level: always).
    pub(super) fn sets(&self, scope: Scope<'_>, key: &str) -> bool {
        match scope {
            Scope::Top => true,
            Scope::Pool(pool) => self.own_key(pool, key).is_some(),
        }
    }

    /// `pool.<pool>.<key>`, as read.
    fn own_key(&self, pool: &str, key: &str) -> Option<&PoolKey> {
        (self.pool_keys.iter()).find(|k| k.pool == pool && k.key == Some(key))
    }

    /// The routes, each to a pool by name (`default` for `targets`).
    fn build_routes(&self, pools: &[PoolConfig]) -> Result<Routes, ConfigError> {
        let mut routes: Vec<Route> = Vec::new();
        // Each route as written, and where.
        let mut seen: HashMap<String, &Setting> = HashMap::new();
        for RouteKey { spec, setting } in &self.route_keys {
            let refused =
                |m: String| ConfigError::at(&setting.origin, format!("route.{spec}: {m}"));
            let mut words = setting.value.split_whitespace();
            let Some(pool) = words.next() else {
                return Err(refused(format!(
                    "needs the pool it sends requests to (`{DEFAULT_POOL}` for targets, or a \
                     pool.<name>)"
                )));
            };
            let (place, condition) = split_condition(spec).map_err(refused)?;
            // Answered before any limit is counted: a limit there would
            // never refuse anything (and a `return`'s text would take
            // it in silently).
            if matches!(pool, REDIRECT | RETURN) && words.clone().any(is_limit_option) {
                return Err(refused(format!(
                    "rate_limit=: a {pool} route is answered before any rate limit is \
                     counted (as nginx's `return` comes before `limit_req`): limit the route \
                     to a pool or to files instead"
                )));
            }
            let route = match pool {
                REDIRECT => redirect_route(place, words),
                RETURN => return_route(place, &setting.value),
                FILES => files_route(place, words, pools),
                pool => pool_route(place, pool, words, pools),
            };
            let mut route = route.map_err(refused)?;
            if let Some(condition) = condition {
                route = route.on_condition(Condition::parse(condition).map_err(refused)?);
            }
            let written = route.to_string();
            if let Some(first) = seen.get(&written) {
                return Err(refused(format!(
                    "a second route for {written}{}",
                    on_line(first)
                )));
            }
            seen.insert(written, setting);
            routes.push(route);
        }
        Ok(Routes::new(routes))
    }
}

/// `route./api/ if cookie canary 1`: the route's place, then what else a
/// request must carry for it, if anything.
fn split_condition(spec: &str) -> Result<(&str, Option<&str>), String> {
    let Some(end) = spec.find(char::is_whitespace) else {
        return Ok((spec, None));
    };
    let (place, rest) = spec.split_at(end);
    match rest.trim_start().strip_prefix("if") {
        Some(condition) if condition.starts_with(char::is_whitespace) => {
            Ok((place, Some(condition.trim())))
        }
        _ => Err(format!(
            "after `{}`, a route's key has `if <condition>` or nothing",
            place.escape_debug()
        )),
    }
}

/// `route.<spec> = <pool> [rewrite=<path> [cookie_paths]]
/// [rate_limit=<N>/s|m|h [rate_limit_burst=<N>]]`, `words` being what
/// comes after the pool's name.
fn pool_route<'a>(
    spec: &str,
    pool: &str,
    words: impl Iterator<Item = &'a str>,
    pools: &[PoolConfig],
) -> Result<Route, String> {
    let index = pool_index(pool, pools)?;
    let (mut rewrite, mut cookie_paths) = (None, false);
    let mut limit = RouteLimit::default();
    for option in words {
        if limit.read(option)? {
            continue;
        }
        match (option.strip_prefix("rewrite="), option) {
            (Some(_), _) if rewrite.is_some() => return Err("rewrite= given twice".into()),
            (Some(path), _) => rewrite = Some(path),
            (None, "cookie_paths") => set_once(&mut cookie_paths, option)?,
            (None, _) => {
                return Err(format!(
                    "unknown option `{}` (a route is `<pool>`, `<pool> rewrite=/path/ \
                     [cookie_paths] [rate_limit=<N>/s|m|h [rate_limit_burst=<N>]]`, \
                     `redirect <status> <to>`, `return <status> [<text>]` or \
                     `files <directory>`)",
                    option.escape_debug()
                ))
            }
        }
    }
    let route = Route::parse(spec, index, rewrite)?;
    let route = match cookie_paths {
        true => route.with_cookie_paths()?,
        false => route,
    };
    limit.apply(route)
}

/// Whether a word of a route's value is one of [`RouteLimit`]'s options.
fn is_limit_option(word: &str) -> bool {
    word.starts_with("rate_limit=") || word.starts_with("rate_limit_burst=")
}

/// A route's `rate_limit=` and `rate_limit_burst=`, as read.
#[derive(Default)]
struct RouteLimit {
    rate: Option<Rate>,
    burst: Option<u32>,
}

impl RouteLimit {
    /// Takes `option` if it is `rate_limit=` or `rate_limit_burst=`:
    /// whether it was.
    fn read(&mut self, option: &str) -> Result<bool, String> {
        match option.split_once('=') {
            Some(("rate_limit", _)) if self.rate.is_some() => Err("rate_limit= given twice".into()),
            Some(("rate_limit", written)) => {
                let rate =
                    Rate::parse(written).map_err(|e| format!("rate_limit={written}: {e}"))?;
                self.rate = Some(rate);
                Ok(true)
            }
            Some(("rate_limit_burst", _)) if self.burst.is_some() => {
                Err("rate_limit_burst= given twice".into())
            }
            Some(("rate_limit_burst", written)) => {
                let burst = parse_number(written, 0..=1_000_000);
                let burst = burst.map_err(|e| format!("rate_limit_burst={written}: {e}"))?;
                self.burst = Some(burst);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// `route` with the limit read, if any.
    fn apply(self, route: Route) -> Result<Route, String> {
        match (self.rate, self.burst) {
            (Some(rate), burst) => route.with_rate_limit(rate, burst),
            (None, Some(_)) => Err(
                "rate_limit_burst= is set, but rate_limit= is not: without a rate there is \
                 no burst"
                    .into(),
            ),
            (None, None) => Ok(route),
        }
    }
}

/// The index of the pool a route names: 0 for `targets`, then each
/// `pool.<name>` in the order written.
fn pool_index(name: &str, pools: &[PoolConfig]) -> Result<usize, String> {
    index_named(name, pools.iter().map(|p| &*p.name))
}

/// [`pool_index`] among the pools called `names`.
fn index_named<'a>(
    name: &str,
    mut names: impl Iterator<Item = &'a str> + Clone,
) -> Result<usize, String> {
    if name == DEFAULT_POOL {
        return Ok(0);
    }
    if let Some(i) = names.clone().position(|n| n == name) {
        return Ok(i + 1);
    }
    let hint = match nearest(name, names.by_ref().chain([DEFAULT_POOL])) {
        Some(near) => format!(" (did you mean `{near}`?)"),
        None => String::new(),
    };
    Err(format!(
        "no pool is named `{}`{hint}; define it with `pool.{} = host:port, ...`",
        name.escape_debug(),
        name.escape_debug()
    ))
}

/// `route.<spec> = redirect <status> <to>`, `words` being what comes
/// after `redirect`.
fn redirect_route<'a>(
    spec: &str,
    mut words: impl Iterator<Item = &'a str>,
) -> Result<Route, String> {
    let usage = "a redirect is `redirect <status> <to>`, e.g. \
                 `redirect 301 https://example.com` or `redirect 308 /new/`";
    let (Some(status), Some(to), None) = (words.next(), words.next(), words.next()) else {
        return Err(usage.to_string());
    };
    Route::redirecting(spec, status_of(status, usage)?, to)
}

/// `route.<spec> = files <dir> [max_age=<duration> [immutable]]
/// [fallback=<pool>|/<file>] [precompressed] [internal]
/// [autoindex[=json]] [limit_rate=<size>[/s]] [limit_rate_after=<size>]
/// [rate_limit=<N>/s|m|h [rate_limit_burst=<N>]]`, `words` being what
/// comes after `files`.
fn files_route<'a>(
    spec: &str,
    mut words: impl Iterator<Item = &'a str>,
    pools: &[PoolConfig],
) -> Result<Route, String> {
    let usage = "a route that serves files is `files <directory> [max_age=<duration> \
                 [immutable]] [fallback=<pool>|/<file>] [precompressed] [internal] \
                 [autoindex[=json]] [limit_rate=<size>[/s]] [limit_rate_after=<size>] \
                 [rate_limit=<N>/s|m|h [rate_limit_burst=<N>]]`, e.g. \
                 `files /srv/www/static max_age=1h`";
    let Some(dir) = words.next().filter(|w| !w.contains('=')) else {
        return Err(usage.to_string());
    };
    let (mut max_age, mut fallback, mut fallback_file) = (None, None, None);
    let (mut precompressed, mut internal, mut immutable) = (false, false, false);
    let mut autoindex = None;
    let (mut rate, mut rate_after) = (None, None);
    let mut limit = RouteLimit::default();
    for option in words {
        if limit.read(option)? {
            continue;
        }
        let listing = match option {
            "autoindex" | "autoindex=html" => Some(listing::Format::Html),
            "autoindex=json" => Some(listing::Format::Json),
            _ => None,
        };
        match option.split_once('=') {
            _ if listing.is_some() && autoindex.is_some() => {
                return Err("autoindex given twice".into())
            }
            _ if listing.is_some() => autoindex = listing,
            Some(("autoindex", written)) => {
                return Err(format!(
                    "autoindex={}: a listing is `autoindex` (HTML) or `autoindex=json`",
                    written.escape_debug()
                ))
            }
            None if option == "precompressed" => set_once(&mut precompressed, option)?,
            None if option == "internal" => set_once(&mut internal, option)?,
            None if option == "immutable" => set_once(&mut immutable, option)?,
            Some(("max_age", _)) if max_age.is_some() => return Err("max_age= given twice".into()),
            Some(("max_age", written)) => {
                let age = parse_duration(written).map_err(|e| format!("max_age={written}: {e}"))?;
                // Named as written: `400d`, not its seconds.
                if age > MAX_MAX_AGE {
                    return Err(format!(
                        "max_age={}: at most a year (365d), as RFC 9111 asks of freshness",
                        written.escape_debug()
                    ));
                }
                max_age = Some(age);
            }
            Some(("limit_rate", _)) if rate.is_some() => {
                return Err("limit_rate= given twice".into())
            }
            Some(("limit_rate", written)) => {
                let size = parse_rate(written).map_err(|e| format!("limit_rate={written}: {e}"))?;
                rate = Some(size);
            }
            Some(("limit_rate_after", _)) if rate_after.is_some() => {
                return Err("limit_rate_after= given twice".into())
            }
            Some(("limit_rate_after", written)) => {
                let size = parse_size(written);
                let size = size.map_err(|e| format!("limit_rate_after={written}: {e}"))?;
                rate_after = Some(size);
            }
            Some(("fallback", _)) if fallback.is_some() || fallback_file.is_some() => {
                return Err("fallback= given twice".into())
            }
            Some(("fallback", file)) if file.starts_with('/') => fallback_file = Some(file),
            Some(("fallback", pool)) => fallback = Some(pool_index(pool, pools)?),
            _ => {
                return Err(format!(
                    "unknown option `{}` ({usage}; the directory's path may hold no space)",
                    option.escape_debug()
                ))
            }
        }
    }
    let mut files = Files::open(dir).map_err(|e| format!("files {e}"))?;
    if let Some(age) = max_age {
        files = files.with_max_age(age);
    }
    if precompressed {
        files = files.with_precompressed();
    }
    files = files.with_pacing(rate, rate_after);
    if let Some(format) = autoindex {
        // A backend's `X-Accel-Redirect` made of a client's input
        // (`/protected/` and a name) would list the whole directory set
        // aside for it.
        if internal {
            return Err(
                "autoindex lists directories to clients; an internal route is for the files \
                 a backend names one by one: give it one or the other"
                    .into(),
            );
        }
        files = files.with_autoindex(format)?;
    }
    if immutable {
        files = files.with_immutable()?;
    }
    if let Some(file) = fallback_file {
        files = files.with_fallback_file(file)?;
    }
    let route = Route::serving_files(spec, Arc::new(files), fallback)?;
    let route = match internal {
        true => route.internal()?,
        false => route,
    };
    limit.apply(route)
}

/// Sets a route's option `flag`, `name` in its value, refused when given
/// twice.
fn set_once(flag: &mut bool, name: &str) -> Result<(), String> {
    if *flag {
        return Err(format!("{name} given twice"));
    }
    *flag = true;
    Ok(())
}

/// A status as a route writes it: three digits, no sign or padding.
fn status_of(word: &str, usage: &str) -> Result<u16, String> {
    if word.len() != 3 || !word.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{}` is no status: {usage}", word.escape_debug()));
    }
    Ok((word.bytes()).fold(0, |n, digit| n * 10 + u16::from(digit - b'0')))
}

/// `route.<spec> = return <status> [<text>]`, `value` being the whole
/// value: the text is the rest of it after the status, spaces and all.
fn return_route(spec: &str, value: &str) -> Result<Route, String> {
    let usage = "a route that answers itself is `return <status> [<text>]`, e.g. \
                 `return 200 ok` or `return 404`";
    let rest = value.trim_start().strip_prefix(RETURN).unwrap_or_default();
    let rest = rest.trim_start();
    let (status, text) = rest.split_at(rest.find(char::is_whitespace).unwrap_or(rest.len()));
    let text = Some(text.trim()).filter(|t| !t.is_empty());
    Route::returning(spec, status_of(status, usage)?, text)
}

/// A backend serves one pool: its health, its counters, its drain or
/// maintenance state and its sticky id are one of each, which two pools
/// would share, and the admin listener and the state file name it alone.
fn check_each_backend_in_one_pool(
    top: &Config,
    pools: &[PoolConfig],
    origin_of: impl Fn(&str) -> Origin,
) -> Result<(), ConfigError> {
    let mut seen: Vec<(&str, &super::Target)> =
        top.targets.iter().map(|t| (DEFAULT_POOL, t)).collect();
    for pool in pools {
        for target in &pool.config.targets {
            if let Some((other, twin)) = seen.iter().find(|(_, t)| t.addr == target.addr) {
                let mut other = match *other {
                    DEFAULT_POOL => "targets".to_string(),
                    name => format!("pool.{name}"),
                };
                if twin.name != target.name {
                    other = format!("{other} as {} (both {})", twin.name, target.addr);
                }
                return Err(ConfigError::at(
                    &origin_of(&pool.name),
                    format!(
                        "pool.{}: {} is also in {other}: a backend serves one pool",
                        pool.name, target.name
                    ),
                ));
            }
            seen.push((&pool.name, target));
        }
    }
    Ok(())
}

/// ` (first set on line N)` for a setting read from the file.
pub(super) fn on_line(setting: &Setting) -> String {
    match &setting.origin {
        Origin::File { line, .. } => format!(" (first set on line {line})"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn build(text: &str) -> Result<Config, ConfigError> {
        Loader::new().file("proxy.conf", text)?.build()
    }

    fn refused(text: &str) -> String {
        build(text).unwrap_err().to_string()
    }

    #[test]
    fn a_route_s_rate_limit_takes_a_second_s_worth_of_burst_unless_given() {
        let c = build(
            "targets = 127.0.0.1:9001\nroute./login = default rate_limit=120/m\n\
             route./search = default rate_limit=5/m rate_limit_burst=0\nroute./ = default\n",
        )
        .unwrap();
        let limit = |path: &str| {
            let route = c.routes.iter().find(|r| r.to_string() == path).unwrap();
            route
                .rate_limit()
                .map(|(rate, burst)| (rate.to_string(), burst))
        };
        assert_eq!(limit("/login"), Some(("120/m".into(), 2)));
        assert_eq!(limit("/search"), Some(("5/m".into(), 0)));
        assert_eq!(limit("/"), None);
    }

    const TWO_POOLS: &str = "\
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
    fn every_pool_key_is_a_key() {
        for key in POOL_KEYS {
            assert!(find_key(key).is_some(), "{key}");
        }
    }

    #[test]
    fn a_pool_has_its_own_settings_and_the_top_levels_for_the_rest() {
        let c = build(TWO_POOLS).unwrap();
        let names: Vec<&str> = c.pools.iter().map(|p| &*p.name).collect();
        assert_eq!(names, ["api", "static"]);
        let api = &c.pools[0].config;
        assert_eq!(api.targets.len(), 2);
        assert_eq!(api.targets[0].weight, 2);
        assert_eq!(api.balance, Balance::WeightedRoundRobin);
        assert_eq!(api.health_check_path.as_deref(), Some("/healthz"));
        assert_eq!(api.retries, Some(1));
        assert!(api.pools.is_empty() && api.routes.is_empty());
        let stat = &c.pools[1].config;
        assert_eq!(stat.balance, Balance::LeastConn);
        assert_eq!(stat.health_check_path.as_deref(), Some("/up"));
        // The top level is left as it was.
        assert_eq!(c.balance, Balance::LeastConn);
        assert_eq!(c.targets.len(), 1);
        assert_eq!(c.all_targets().count(), 4);
        assert_eq!(c.pool_configs().count(), 3);
        let routes: Vec<(String, usize, Option<&str>)> = (c.routes.iter())
            .map(|r| (r.to_string(), r.pool, r.rewrite()))
            .collect();
        assert_eq!(
            routes,
            [
                ("static.example".to_string(), 2, None),
                ("/api/".to_string(), 1, Some("/")),
            ]
        );
    }

    #[test]
    fn a_route_to_default_goes_to_targets() {
        let c = build(&format!(
            "{TWO_POOLS}route.static.example/dynamic/ = default\n"
        ))
        .unwrap();
        let index = c
            .routes
            .route(Some("static.example"), "/dynamic/x")
            .unwrap()
            .unwrap();
        assert_eq!(c.routes.get(index).unwrap().pool, 0);
    }

    #[test]
    fn the_kind_of_probe_a_pool_sets_replaces_the_top_level_s() {
        let kinds = |text: &str| {
            let c = build(text).unwrap_or_else(|e| panic!("{e}\nin:\n{text}"));
            let kind = |c: &Config| (c.health_check_path.clone(), c.health_check_tcp);
            let pools: Vec<_> = c.pools.iter().map(|p| kind(&p.config)).collect();
            (kind(&c), pools)
        };
        let get = |path: &str| (Some(path.to_string()), false);
        let tcp = (None, true);
        let pools = "pool.a = 127.0.0.1:9002\npool.b = 127.0.0.1:9003\n\
                     route./a/ = a\nroute./b/ = b\n";
        // A GET at the top, connects in pool a; b takes the GET.
        let (top, each) = kinds(&format!(
            "targets = 127.0.0.1:9001\nhealth_check_path = /up\n{pools}\
             pool.a.health_check_tcp = true\n"
        ));
        assert_eq!((top, each), (get("/up"), vec![tcp.clone(), get("/up")]));
        // Connects at the top, a GET in pool a; b takes the connects.
        let (top, each) = kinds(&format!(
            "targets = 127.0.0.1:9001\nhealth_check_tcp = true\n{pools}\
             pool.a.health_check_path = /healthz\n"
        ));
        assert_eq!(
            (top, each),
            (tcp.clone(), vec![get("/healthz"), tcp.clone()])
        );
        // A pool that turns them off turns off the one it takes.
        let (_, each) = kinds(&format!(
            "targets = 127.0.0.1:9001\nhealth_check_tcp = true\n{pools}\
             pool.a.health_check_tcp = false\n"
        ));
        assert_eq!(each[0], (None, false));
        // So does an empty path of its own, as under a top-level path.
        let (_, each) = kinds(&format!(
            "targets = 127.0.0.1:9001\nhealth_check_tcp = true\n{pools}\
             pool.a.health_check_path =\n"
        ));
        assert_eq!(each, vec![(None, false), tcp.clone()]);
        // Both set for one pool: refused there, with the pool's line.
        let e = refused(&format!(
            "targets = 127.0.0.1:9001\n{pools}pool.a.health_check_tcp = true\n\
             pool.a.health_check_path = /healthz\n"
        ));
        assert!(
            e.starts_with(
                "proxy.conf:6: pool.a.health_check_tcp: is true, but health_check_path is set \
                 too (/healthz): "
            ),
            "{e}"
        );
    }

    #[test]
    fn hash_on_goes_with_the_balance_it_was_set_for() {
        let top = "targets = 127.0.0.1:9001\nbalance = hash\nhash_on = header:X-Tenant\n";
        // Inherited with `hash`...
        let c = build(&format!("{top}pool.a = 127.0.0.1:9002\nroute./a/ = a\n")).unwrap();
        assert!(c.pools[0].config.hash_on.is_some());
        // ...not by a pool that balances otherwise.
        let c = build(&format!(
            "{top}pool.a = 127.0.0.1:9002\npool.a.balance = least_conn\nroute./a/ = a\n"
        ))
        .unwrap();
        assert!(c.pools[0].config.hash_on.is_none());
        // Its own, with its own `hash`.
        let c = build(
            "targets = 127.0.0.1:9001\npool.a = 127.0.0.1:9002\npool.a.balance = hash\n\
             pool.a.hash_on = cookie:tenant\nroute./a/ = a\n",
        )
        .unwrap();
        assert_eq!(
            c.pools[0].config.hash_on.as_ref().unwrap().to_string(),
            "cookie:tenant"
        );
        assert!(c.hash_on.is_none());
    }

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
            ("route./x = return", "`` is no status: a route that answers itself is `return <status> [<text>]`"),
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
            let result = build(&format!("{base}{line}\n"));
            match says {
                "" => assert!(result.is_ok(), "{line}: {:?}", result.err()),
                says => {
                    let e = result.map(|_| ()).unwrap_err().to_string();
                    assert!(e.contains(says), "{line}: {e}");
                }
            }
        }
    }

    #[test]
    fn two_pools_may_not_share_a_sticky_cookie() {
        let base = "targets = 127.0.0.1:9001\nsticky_cookie = SRV\npool.api = 127.0.0.1:9002\n\
                    route./api/ = api\n";
        let e = refused(base);
        assert!(
            e.contains(
                "proxy.conf:3: pool.api: sticky_cookie (the top level's): SRV is also targets'"
            ),
            "{e}"
        );
        assert!(e.contains("`pool.api.sticky_cookie = SRV_api`"), "{e}");
        let e = refused(&format!("{base}pool.api.sticky_cookie = SRV\n"));
        assert!(
            e.contains("proxy.conf:5: pool.api.sticky_cookie: SRV is also"),
            "{e}"
        );
        for own in ["SRV_api", ""] {
            let c = build(&format!("{base}pool.api.sticky_cookie = {own}\n")).unwrap();
            let own = Some(own).filter(|o| !o.is_empty());
            assert_eq!(c.pools[0].config.sticky_cookie.as_deref(), own);
            assert_eq!(c.sticky_cookie.as_deref(), Some("SRV"));
        }
    }

    #[test]
    fn a_pool_sets_request_fields_over_the_top_level_ones() {
        let c = build(
            "targets = 127.0.0.1:9001\n\
             request_header.X-Auth = top\n\
             request_header.X-Debug =\n\
             pool.api = 127.0.0.1:9002\n\
             pool.api.request_header.Host = api.internal\n\
             pool.api.request_header.x-auth = api-secret\n\
             route./api/ = api\n",
        )
        .unwrap();
        let api: Vec<(&str, Option<&str>)> = c.pools[0].config.request_headers.iter().collect();
        assert_eq!(
            api,
            [
                ("X-Debug", None),
                ("Host", Some("api.internal")),
                ("x-auth", Some("api-secret")),
            ]
        );
        // The top level keeps its own.
        assert_eq!(c.request_headers.value_of("x-auth"), Some("top"));
        let c = build(
            "targets = 127.0.0.1:9001\n\
             response_header.X-Frame-Options = DENY\n\
             pool.api = 127.0.0.1:9002\n\
             pool.api.response_header.Access-Control-Allow-Origin = *\n\
             pool.api.request_header.X-Frame-Options = not a response field\n\
             route./api/ = api\n",
        )
        .unwrap();
        let api = &c.pools[0].config;
        assert_eq!(
            api.response_headers.value_of("x-frame-options"),
            Some("DENY")
        );
        assert_eq!(
            api.response_headers.value_of("access-control-allow-origin"),
            Some("*")
        );
        assert_eq!(
            api.request_headers.value_of("x-frame-options"),
            Some("not a response field")
        );
        assert_eq!(
            c.response_headers.value_of("access-control-allow-origin"),
            None
        );
        assert_eq!(c.request_headers.value_of("host"), None);
        for (line, says) in [
            ("pool.api.request_header. = 1", "needs a field name"),
            (
                "pool.api.request_header.Host = a\npool.api.request_header.host = b",
                "duplicate key",
            ),
            (
                "pool.api.request_header.Content-Length = 1",
                "pool.api.request_header.Content-Length:",
            ),
            (
                "pool.web.request_header.Host = a",
                "`pool.web.request_header.Host`: the pool has no targets",
            ),
        ] {
            let text = format!("targets = 127.0.0.1:9001\npool.api = 127.0.0.1:9002\n{line}\n");
            let e = refused(&text);
            assert!(e.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn a_pool_has_its_own_access_lists_body_size_and_lifetimes_or_the_top_levels() {
        let c = build(
            "targets = 127.0.0.1:9001\nmax_body_size = 1MiB\ndeny_from = 192.0.2.1\n\
             pool.admin = 127.0.0.1:9002\npool.admin.allow_from = 10.0.0.0/8\n\
             pool.upload = 127.0.0.1:9003\npool.upload.max_body_size = 1GiB\n\
             route./admin/ = admin\nroute./upload/ = upload\n",
        )
        .unwrap();
        let (admin, upload) = (&c.pools[0].config, &c.pools[1].config);
        assert_eq!(admin.allow_from.len(), 1);
        assert_eq!(admin.deny_from.len(), 1);
        assert_eq!(admin.max_body_size, 1 << 20);
        assert!(upload.allow_from.is_empty());
        assert_eq!(upload.max_body_size, 1 << 30);
        let c = build(
            "targets = 127.0.0.1:9001\npool.static = 127.0.0.1:9002\n\
             pool.static.cache_valid = 200 10m\npool.static.cache_unlabeled = true\n\
             route./static/ = static\n",
        )
        .unwrap();
        let assets = &c.pools[0].config;
        assert!(assets.cache_unlabeled && !c.cache_unlabeled);
        assert!(!assets.cache_valid.is_empty() && c.cache_valid.is_empty());
        let e = refused(
            "targets = 127.0.0.1:9001\npool.s = 127.0.0.1:9002\npool.s.cache_valid = 10m\n",
        );
        assert!(e.contains("proxy.conf:3: pool.s.cache_valid:"), "{e}");
        let e = refused(
            "targets = 127.0.0.1:9001\npool.s = 127.0.0.1:9002\npool.s.rate_limit_burst = 5\n",
        );
        assert!(
            e.contains("proxy.conf:3: pool.s.rate_limit_burst: is set, but rate_limit is not"),
            "{e}"
        );
        let c = build(
            "targets = 127.0.0.1:9001\npool.s = 127.0.0.1:9002\npool.s.rate_limit = 5/s\n\
             pool.t = 127.0.0.1:9003\n",
        )
        .unwrap();
        assert!(c.pools[0].own_rate_limit && !c.pools[1].own_rate_limit);
        // A key of its own is buckets of its own, at the top level's rate.
        let c = build(
            "targets = 127.0.0.1:9001\nrate_limit = 5/s\npool.s = 127.0.0.1:9002\n\
             pool.s.rate_limit_key = cookie:session\npool.t = 127.0.0.1:9003\n",
        )
        .unwrap();
        assert!(c.pools[0].own_rate_limit && !c.pools[1].own_rate_limit);
        assert_eq!(c.pools[0].config.rate_limit, c.rate_limit);
        assert_eq!(
            c.pools[0].config.rate_limit_key,
            Some(crate::upstream::hash_on::HashOn::Cookie("session".into()))
        );
        assert_eq!(c.rate_limit_key, None);
        // A pool that turns the top level's rate off takes no limit, its
        // key and burst neither.
        let c = build(
            "targets = 127.0.0.1:9001\nrate_limit = 5/s\nrate_limit_burst = 3\n\
             rate_limit_key = header:X-Api-Key\npool.s = 127.0.0.1:9002\npool.s.rate_limit =\n",
        )
        .unwrap();
        assert_eq!(c.pools[0].config.effective_rate_limit(), None);
        // What the proxy replaces or takes out before the limit is counted
        // cannot be its key.
        let e = refused(
            "targets = 127.0.0.1:9001\nrate_limit = 5/s\npool.sso = 127.0.0.1:9002\n\
             pool.s = 127.0.0.1:9003\npool.s.auth_request = sso /check\n\
             pool.s.auth_request_headers = Remote-User\npool.s.rate_limit_key = header:remote-user\n",
        );
        assert!(
            e.contains("pool.s.rate_limit_key: names remote-user, which is taken from the sign-in"),
            "{e}"
        );
        // Under any spelling a backend reads as it; but not where no rate
        // is counted.
        let sso = "targets = 127.0.0.1:9001\nrate_limit = 5/s\npool.sso = 127.0.0.1:9002\n\
                   pool.s = 127.0.0.1:9003\npool.s.auth_request = sso /check\n\
                   pool.s.auth_request_headers = Remote-User\n";
        let e = refused(&format!(
            "{sso}pool.s.rate_limit_key = header:Remote_User\n"
        ));
        assert!(
            e.contains("pool.s.rate_limit_key: names Remote_User, which "),
            "{e}"
        );
        let off = format!("{sso}rate_limit_key = header:Remote-User\npool.s.rate_limit =\n");
        let c = build(&off).unwrap();
        assert_eq!(c.pools[1].config.effective_rate_limit(), None);
        // Nor a field no backend gets from the client as it sent it.
        let top = "targets = 127.0.0.1:9001\nrate_limit = 5/s\n";
        for (more, says) in [
            (
                "rate_limit_key = header:X_Api_Key\n",
                "is dropped from every request",
            ),
            (
                "rate_limit_key = header:X-Real-IP\n",
                "is one the proxy writes itself",
            ),
            (
                "rate_limit_key = header:authorization\n",
                "a client may spell in many ways",
            ),
            (
                "underscores_in_headers = true\nauth_request = sso /check\n\
                 auth_request_headers = Remote-User\npool.sso = 127.0.0.1:9002\n\
                 rate_limit_key = header:Remote_User\n",
                "is taken from the sign-in service",
            ),
            (
                "rate_limit_key = header:X-Api-Key\nrequest_header.X-Api-Key = fixed\n",
                "is set or removed by request_header",
            ),
            (
                "auth_request = sso /check\nauth_request_headers = Remote-User\n\
                 pool.sso = 127.0.0.1:9002\npool.s = 127.0.0.1:9003\npool.s.auth_request =\n\
                 pool.s.rate_limit_key = header:Remote-User\n",
                "is taken from the sign-in service",
            ),
        ] {
            let e = refused(&format!("{top}{more}"));
            assert!(
                e.contains("rate_limit_key: names ") && e.contains(says),
                "{more}: {e}"
            );
        }
        // A pool's own key without a rate is refused, whatever it inherits.
        let e = refused(
            "targets = 127.0.0.1:9001\nrate_limit = 5/s\nrate_limit_burst = 2\n\
             pool.s = 127.0.0.1:9002\npool.s.rate_limit =\npool.s.rate_limit_key = header:X-K\n",
        );
        assert!(
            e.contains("pool.s.rate_limit_key: is set, but rate_limit is not"),
            "{e}"
        );
        let e = refused(
            "targets = 127.0.0.1:9001\nrate_limit = 5/s\nsticky_cookie = SRV\n\
             rate_limit_key = cookie:SRV\n",
        );
        assert!(
            e.contains("proxy.conf:4: rate_limit_key: names SRV, the sticky_cookie"),
            "{e}"
        );
        let e = refused(
            "targets = 127.0.0.1:9001\npool.s = 127.0.0.1:9002\npool.s.rate_limit_key = query:k\n",
        );
        assert!(
            e.contains("proxy.conf:3: pool.s.rate_limit_key: is set, but rate_limit is not"),
            "{e}"
        );
        // With Cache-Control unread, each pool that uses the cache needs
        // lifetimes of its own or the top level's.
        let micro = "targets = 127.0.0.1:9001\ncache_ignore_headers = Cache-Control, Expires, X-Accel-Expires, Surrogate-Control\n\
                     pool.s = 127.0.0.1:9002\nroute./s/ = s\n";
        assert!(refused(micro)
            .contains("proxy.conf:2: cache_ignore_headers: Cache-Control is not read"));
        let e = refused(&format!("{micro}pool.s.cache_valid = 200 1s\n"));
        assert!(e.contains("proxy.conf:2: cache_ignore_headers: "), "{e}");
        assert!(e.contains("or `cache = false`"), "{e}");
        // A pool takes `cache = false` from the top level as any other.
        assert!(build(&format!("{micro}cache = false\n")).is_ok());
        // Refused where the pool turns the cache on again.
        let e = refused(&format!("{micro}cache = false\npool.s.cache = true\n"));
        assert!(
            e.contains("proxy.conf:6: pool.s.cache: Cache-Control is not read"),
            "{e}"
        );
        // The key's rules are the whole cache's: a purge applies them.
        let e = refused(&format!("{micro}pool.s.cache_key_ignore_params = utm_*\n"));
        assert!(
            e.contains("cache_key_ignore_params is the proxy's, not set per pool"),
            "{e}"
        );
        let only_s =
            format!("{micro}cache = false\npool.s.cache = true\npool.s.cache_valid = 200 1s\n");
        assert!(build(&only_s).is_ok());
        let e = refused(&format!(
            "{micro}cache_valid = 200 1s\npool.s.cache_valid =\n"
        ));
        assert!(
            e.contains("proxy.conf:6: pool.s.cache_valid: Cache-Control is not read"),
            "{e}"
        );
        assert!(c.allow_from.is_empty());
    }

    #[test]
    fn a_files_route_is_checked_where_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let www = dir.path().join("www");
        std::fs::create_dir(&www).unwrap();
        std::fs::write(dir.path().join("plain"), "not a directory").unwrap();
        let (www, top) = (www.display(), dir.path().display());
        let base = "targets = 127.0.0.1:9001\npool.app = 127.0.0.1:9002\nroute./app/ = app\n";
        for (line, says) in [
            (format!("route./s/ = files {www}"), String::new()),
            (
                format!("route./s/ = files {top}/missing"),
                format!("proxy.conf:4: route./s/: files {top}/missing: No such file"),
            ),
            (
                format!("route./s/ = files {top}/plain"),
                format!("proxy.conf:4: route./s/: files {top}/plain: not a directory"),
            ),
            (
                format!("route./s/ = files {www} strip"),
                "proxy.conf:4: route./s/: unknown option `strip` (a route that serves files is \
                 `files <directory> [max_age=<duration> [immutable]] \
                 [fallback=<pool>|/<file>] [precompressed] [internal] [autoindex[=json]] \
                 [limit_rate=<size>[/s]] [limit_rate_after=<size>] \
                 [rate_limit=<N>/s|m|h [rate_limit_burst=<N>]]`"
                    .into(),
            ),
            (format!("route./s/ = files {www} autoindex"), String::new()),
            (
                format!("route./s/ = files {www} autoindex=html"),
                String::new(),
            ),
            (
                format!("route./s/ = files {www} autoindex=json"),
                String::new(),
            ),
            (
                format!("route./s/ = files {www} autoindex=xml"),
                "proxy.conf:4: route./s/: autoindex=xml: a listing is `autoindex` (HTML) or \
                 `autoindex=json`"
                    .into(),
            ),
            (
                format!("route./s/ = files {www} autoindex autoindex=json"),
                "autoindex given twice".into(),
            ),
            (
                format!("route./s/ = files {www} internal autoindex"),
                "autoindex lists directories to clients; an internal route is for the files".into(),
            ),
            (format!("route./s/ = files {www} max_age=1h"), String::new()),
            (
                format!("route./s/ = files {www} max_age=365d immutable"),
                String::new(),
            ),
            (
                format!("route./s/ = files {www} immutable"),
                "immutable says the files stay fresh for their max_age=: give one".into(),
            ),
            (
                format!("route./s/ = files {www} max_age=365d"),
                String::new(),
            ),
            (
                format!("route./s/ = files {www} max_age=400d"),
                "proxy.conf:4: route./s/: max_age=400d: at most a year (365d)".into(),
            ),
            (
                format!("route./s/ = files {www} max_age=soon"),
                "max_age=soon: `soon` is not a duration".into(),
            ),
            (
                format!("route./s/ = files {www} max_age=1h max_age=2h"),
                "max_age= given twice".into(),
            ),
            (
                format!("route./s/ = files {www} fallback=app"),
                String::new(),
            ),
            (
                format!("route./s/ = files {www} fallback=default"),
                String::new(),
            ),
            (
                format!("route./s/ = files {www} fallback=ap"),
                "proxy.conf:4: route./s/: no pool is named `ap` (did you mean `app`?)".into(),
            ),
            (
                format!("route./s/ = files {www} fallback=nosuch"),
                "route./s/: no pool is named `nosuch`".into(),
            ),
            (
                format!("route./s/ = files {www} fallback=app fallback=app"),
                "fallback= given twice".into(),
            ),
            (
                "route./s/ = files".into(),
                "proxy.conf:4: route./s/: a route that serves files is `files <directory>".into(),
            ),
            (
                "route./s/ = files max_age=1h".into(),
                "a route that serves files is `files <directory>".into(),
            ),
            (
                format!("route./app/ = files {www}"),
                "proxy.conf:4: route./app/: a second route for /app/ (first set on line 3)".into(),
            ),
            (
                "pool.files = 127.0.0.1:9005".into(),
                "proxy.conf:4: `pool.files`: `files` is what a route that answers itself says"
                    .into(),
            ),
        ] {
            let result = build(&format!("{base}{line}\n"));
            match says.as_str() {
                "" => assert!(result.is_ok(), "{line}: {:?}", result.err()),
                says => {
                    let e = result.map(|_| ()).unwrap_err().to_string();
                    assert!(e.contains(says), "{line}: {e}");
                }
            }
        }
        // What is taken: the directory's real path, the age, the pool.
        let c = build(&format!(
            "{base}route./s/ = files {top}/www/ max_age=10m fallback=app\n\
             route./t/ = files {www}\n"
        ))
        .unwrap();
        let route = |path: &str| {
            let index = c.routes.route(None, path).unwrap().unwrap();
            c.routes.get(index).unwrap()
        };
        let s = route("/s/x");
        let (files, fallback) = s.files().unwrap();
        assert_eq!(files.dir(), dir.path().join("www"));
        assert_eq!(files.max_age(), Some(Duration::from_secs(600)));
        assert!(fallback && !s.answers_itself());
        assert_eq!(s.pool, 1);
        let t = route("/t/x");
        let (files, fallback) = t.files().unwrap();
        assert_eq!(files.max_age(), None);
        assert!(!fallback && t.answers_itself());
        assert!(route("/app/x").files().is_none());
    }

    #[test]
    fn a_return_route_s_text_is_the_rest_of_its_value() {
        let c = build(
            "targets = 127.0.0.1:9001\nroute./healthz = return  200   all is   well \n\
             route./gone/ = return 410\n",
        )
        .unwrap();
        let text = |path: &str| {
            let route = c
                .routes
                .route(None, path)
                .unwrap()
                .and_then(|i| c.routes.get(i));
            let answer = route.and_then(|r| r.returned()).unwrap();
            (answer.status, answer.text.as_deref().map(str::to_string))
        };
        assert_eq!(text("/healthz"), (200, Some("all is   well".to_string())));
        assert_eq!(text("/gone/x"), (410, None));
    }

    #[test]
    fn pools_and_routes_come_from_the_file_only() {
        let mut loader = Loader::new();
        let e = loader
            .flag("pool.api", "127.0.0.1:9002", "--set")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("read from the configuration file only"),
            "{e}"
        );
        let e = loader.flag("route./api/", "api", "--set").unwrap_err();
        assert!(
            e.to_string()
                .contains("read from the configuration file only"),
            "{e}"
        );
    }

    #[test]
    fn a_pool_no_route_reaches_is_allowed() {
        // Warned about (a route may come with the next reload), not refused.
        let c = build("targets = 127.0.0.1:9001\npool.spare = 127.0.0.1:9002\n").unwrap();
        assert_eq!(c.pools.len(), 1);
        assert!(c.routes.is_empty());
    }

    #[test]
    fn each_pool_times_its_own_backends() {
        let c = build(
            "targets = 127.0.0.1:9001\nbackend_timeout = 30s\npool.slow = 127.0.0.1:9002\n\
             pool.slow.backend_timeout = 5m\nroute./reports/ = slow\n",
        )
        .unwrap();
        assert_eq!(
            c.pools[0].config.effective_backend_timeout(),
            Duration::from_secs(300)
        );
        assert_eq!(c.effective_backend_timeout(), Duration::from_secs(30));
    }
}
