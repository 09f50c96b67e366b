//! `route.<host><path> = ...`: each route to a pool, to a redirect, to
//! a `return`, or to files, with its condition, its rate limit and (to a
//! pool) the pool's settings it has its own of.

use super::keys::on_line;
use super::{PoolConfig, RouteKey, DEFAULT_POOL};
use crate::config::values::{parse_bool, parse_number, parse_positive_duration};
use crate::config::{
    nearest, parse_duration, parse_rate, parse_size, Config, ConfigError, Loader, Setting,
};
use crate::files::{listing, Files, MAX_MAX_AGE};
use crate::ratelimit::Rate;
use crate::routes::{Condition, OwnSettings, Route, Routes};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What a route answers with instead of a pool: `redirect <status> <to>`
/// or `return <status> [type=<media type>] [<text>]`.
pub(super) const REDIRECT: &str = "redirect";

pub(super) const RETURN: &str = "return";

pub(super) const FILES: &str = "files";

impl Loader {
    /// The routes, each to a pool by name (`default` for `targets`, whose
    /// settings are `top`).
    pub(super) fn build_routes(
        &self,
        top: &Config,
        pools: &[PoolConfig],
    ) -> Result<Routes, ConfigError> {
        let mut routes: Vec<Route> = Vec::new();
        // Each route as written, and where.
        let mut seen: HashMap<String, &Setting> = HashMap::new();
        // The pools a route's `cache=on` was checked for.
        let mut cache_checked = HashSet::new();
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
            if let Some(option) = (words.clone().find_map(own_option)).filter(|_| has_no_pool(pool))
            {
                return Err(refused(no_pool_for(pool, option)));
            }
            let route = match pool {
                REDIRECT => redirect_route(place, words),
                RETURN => return_route(place, &setting.value),
                FILES => files_route(place, words, pools),
                pool => pool_route(place, pool, words, pools),
            };
            let mut route = route.map_err(refused)?;
            if let Some(condition) = condition {
                let condition = Condition::parse(condition).map_err(refused)?;
                condition
                    .needs_geoip(top.geoip.is_some())
                    .map_err(refused)?;
                route = route.on_condition(condition);
            }
            let of_pool = match route.pool {
                0 => top,
                i => pools.get(i - 1).map_or(top, |p| &p.config),
            };
            own_spools_unlimited(&route, of_pool).map_err(refused)?;
            if turns_cache_on(&route, of_pool) && cache_checked.insert(route.pool) {
                self.check_cache_turned_on(top, pools, route.pool)
                    .map_err(|e| refused(format!("cache=on: {e}")))?;
            }
            let written = route.to_string();
            if let Some(first) = seen.get(&written) {
                return Err(refused(format!(
                    "a second route for {written}{}",
                    on_line(first, &setting.origin)
                )));
            }
            seen.insert(written, setting);
            routes.push(route);
        }
        Ok(Routes::new(routes))
    }
}

/// `route./api/ if cookie canary 1`: the route's place (or the field a
/// header key edits), then what else a request must carry for it, if
/// anything.
pub(in crate::config) fn split_condition(spec: &str) -> Result<(&str, Option<&str>), String> {
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
/// [rate_limit=<N>/s|m|h [rate_limit_burst=<N>] [rate_limit_delay=<N>]]
/// [max_body_size=<size>] [backend_timeout=<duration>] [cache=on|off]`, `words` being what
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
    let mut own = OwnSettings::default();
    for option in words {
        if limit.read(option)? || read_own(&mut own, option)? {
            continue;
        }
        match (option.strip_prefix("rewrite="), option) {
            (Some(_), _) if rewrite.is_some() => return Err("rewrite= given twice".into()),
            (Some(path), _) => rewrite = Some(path),
            (None, "cookie_paths") => set_once(&mut cookie_paths, option)?,
            (None, _) => {
                return Err(format!(
                    "unknown option `{}` (a route is `<pool>`, `<pool> rewrite=/path/ \
                     [cookie_paths] [rate_limit=<N>/s|m|h [rate_limit_burst=<N>] \
                     [rate_limit_delay=<N>]] [max_body_size=<size>] \
                     [backend_timeout=<duration>] [cache=on|off]`, \
                     `redirect <status> <to>`, `return <status> [type=<media type>] [<text>]` or \
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
    limit.apply(route)?.with_own_settings(own)
}

/// The options of a route's own settings: its pool's keys of those names.
const OWN_OPTIONS: [&str; 3] = ["max_body_size", "backend_timeout", "cache"];

/// The name of the option of [`OWN_OPTIONS`] `word` sets, if any.
fn own_option(word: &str) -> Option<&'static str> {
    let key = word.split_once('=')?.0;
    OWN_OPTIONS.into_iter().find(|option| *option == key)
}

/// Whether a route with `kind` in place of a pool's name has no exchange
/// of its own with a pool's backends.
fn has_no_pool(kind: &str) -> bool {
    matches!(kind, REDIRECT | RETURN | FILES)
}

/// Why a route with `kind` in place of a pool's name refuses `option`,
/// one of [`OWN_OPTIONS`].
fn no_pool_for(kind: &str, option: &str) -> String {
    let why = match kind {
        FILES => {
            "serves its files itself (what its fallback= sends to a pool goes with that \
             pool's settings)"
        }
        _ => "is answered by the proxy itself, with no exchange with a pool's backends",
    };
    format!(
        "{option}=: a {kind} route {why}: set it on a route to a pool \
         (`route.<path> = <pool> {option}=...`)"
    )
}

/// Takes `option` into `own` if it is one of [`OWN_OPTIONS`], its value
/// read as the key of its name reads it: whether it was.
fn read_own(own: &mut OwnSettings, option: &str) -> Result<bool, String> {
    let Some((key, written)) = option.split_once('=') else {
        return Ok(false);
    };
    match key {
        "max_body_size" => once(&mut own.max_body_size, key, written, parse_size)?,
        "backend_timeout" => once(
            &mut own.backend_timeout,
            key,
            written,
            parse_positive_duration,
        )?,
        "cache" => once(&mut own.cache, key, written, parse_bool)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// `slot` set once, to `written` as `parse` reads it; a bad value named
/// with its option.
fn once<T>(
    slot: &mut Option<T>,
    key: &str,
    written: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("{key}= given twice"));
    }
    *slot = Some(parse(written).map_err(|e| format!("{key}={written}: {e}"))?);
    Ok(())
}

/// A route's `max_body_size=0` (no limit) refused where `request_buffer_dir`
/// writes bodies to disk, as a pool's `max_body_size = 0` is: one upload
/// could fill it.
fn own_spools_unlimited(route: &Route, pool: &Config) -> Result<(), String> {
    match route.own_settings().max_body_size {
        Some(0) if pool.request_buffer_dir.is_some() => Err(
            "max_body_size=0: no limit, and request_buffer_dir writes request bodies to disk: \
             one upload could fill it; give the route a limit"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// Whether the route's `cache=on` turns the cache on for requests its
/// pool, `cache = false`, keeps from it.
fn turns_cache_on(route: &Route, pool: &Config) -> bool {
    route.own_settings().cache == Some(true) && !pool.cache
}

/// Whether a word of a route's value is one of [`RouteLimit`]'s options.
fn is_limit_option(word: &str) -> bool {
    ["rate_limit=", "rate_limit_burst=", "rate_limit_delay="]
        .iter()
        .any(|option| word.starts_with(option))
}

/// A route's `rate_limit=`, `rate_limit_burst=` and `rate_limit_delay=`,
/// as read.
#[derive(Default)]
struct RouteLimit {
    rate: Option<Rate>,
    burst: Option<u32>,
    delay: Option<u32>,
}

impl RouteLimit {
    /// Takes `option` if it is one of the limit's: whether it was.
    fn read(&mut self, option: &str) -> Result<bool, String> {
        let Some((key, written)) = option.split_once('=') else {
            return Ok(false);
        };
        let count = |v: &str| parse_number(v, 0..=1_000_000);
        match key {
            "rate_limit" => once(&mut self.rate, key, written, Rate::parse)?,
            "rate_limit_burst" => once(&mut self.burst, key, written, count)?,
            "rate_limit_delay" => once(&mut self.delay, key, written, count)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `route` with the limit read, if any.
    fn apply(self, route: Route) -> Result<Route, String> {
        match (self.rate, self.burst, self.delay) {
            (Some(rate), burst, delay) => route.with_rate_limit(rate, burst, delay),
            (None, Some(_), _) => Err(
                "rate_limit_burst= is set, but rate_limit= is not: without a rate there is \
                 no burst"
                    .into(),
            ),
            (None, None, Some(_)) => Err(
                "rate_limit_delay= is set, but rate_limit= is not: without a rate nothing is \
                 delayed"
                    .into(),
            ),
            (None, None, None) => Ok(route),
        }
    }
}

/// The index of the pool a route names: 0 for `targets`, then each
/// `pool.<name>` in the order written.
fn pool_index(name: &str, pools: &[PoolConfig]) -> Result<usize, String> {
    index_named(name, pools.iter().map(|p| &*p.name))
}

/// [`pool_index`] among the pools called `names`.
pub(in crate::config) fn index_named<'a>(
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
/// [rate_limit=<N>/s|m|h [rate_limit_burst=<N>] [rate_limit_delay=<N>]]`, `words` being what
/// comes after `files`.
fn files_route<'a>(
    spec: &str,
    mut words: impl Iterator<Item = &'a str>,
    pools: &[PoolConfig],
) -> Result<Route, String> {
    let usage = "a files route is `files <directory> [max_age=<duration> \
                 [immutable]] [fallback=<pool>|/<file>] [precompressed] [internal] \
                 [autoindex[=json]] [limit_rate=<size>[/s]] [limit_rate_after=<size>] \
                 [rate_limit=<N>/s|m|h [rate_limit_burst=<N>] [rate_limit_delay=<N>]]`, e.g. \
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

/// `route.<spec> = return <status> [type=<media type>] [<text>]`,
/// `value` being the whole value: the text is the rest of it after the
/// status (and the type), spaces and all.
fn return_route(spec: &str, value: &str) -> Result<Route, String> {
    let usage = "a route that answers itself is `return <status> [type=<media type>] [<text>]`, \
                 e.g. `return 200 ok`, `return 404` or `return 200 type=application/json {}`";
    fn first_word(rest: &str) -> (&str, &str) {
        let rest = rest.trim_start();
        rest.split_at(rest.find(char::is_whitespace).unwrap_or(rest.len()))
    }
    let (status, rest) = first_word(value.trim_start().strip_prefix(RETURN).unwrap_or_default());
    let (content_type, text) = match first_word(rest) {
        (word, text) if word.starts_with("type=") => (word.strip_prefix("type="), text),
        _ => (None, rest),
    };
    let text = Some(text.trim()).filter(|t| !t.is_empty());
    Route::returning(spec, status_of(status, usage)?, text, content_type)
}

#[cfg(test)]
mod tests {
    use crate::config::pools::tests::{assert_built_or_refused, build, TWO_POOLS};
    use std::time::Duration;

    #[test]
    fn a_route_s_rate_limit_takes_a_second_s_worth_of_burst_unless_given() {
        let c = build(
            "targets = 127.0.0.1:9001\nroute./login = default rate_limit=120/m\n\
             route./search = default rate_limit=5/m rate_limit_burst=0\nroute./ = default\n\
             route./signin = default rate_limit=10/m rate_limit_delay=0 rate_limit_burst=5\n",
        )
        .unwrap();
        let limit = |path: &str| {
            let route = c.routes.iter().find(|r| r.to_string() == path).unwrap();
            route
                .rate_limit()
                .map(|limit| (limit.rate.to_string(), limit.burst))
        };
        assert_eq!(limit("/login"), Some(("120/m".into(), 2)));
        assert_eq!(limit("/search"), Some(("5/m".into(), 0)));
        let signin = c
            .routes
            .iter()
            .find(|r| r.to_string() == "/signin")
            .unwrap();
        assert_eq!(signin.rate_limit().unwrap().delay, Some(0));
        assert_eq!(limit("/"), None);
    }

    #[test]
    fn a_route_to_a_pool_takes_settings_of_its_own_in_place_of_the_pool_s() {
        let c = build(
            "targets = 127.0.0.1:9001\nmax_body_size = 1m\n\
             route./upload/ = default max_body_size=10m rate_limit=5/m\n\
             route./reports/export = default backend_timeout=10m cache=off\n\
             route./big/ = default max_body_size=0 backend_timeout=1500ms cache=yes\n\
             route./ = default\n",
        )
        .unwrap();
        let own = |path: &str| {
            let route = c.routes.iter().find(|r| r.to_string() == path).unwrap();
            *route.own_settings()
        };
        let upload = own("/upload/");
        assert_eq!(upload.max_body_size, Some(10 << 20));
        assert_eq!((upload.backend_timeout, upload.cache), (None, None));
        let export = own("/reports/export");
        assert_eq!(export.backend_timeout, Some(Duration::from_secs(600)));
        assert_eq!((export.max_body_size, export.cache), (None, Some(false)));
        let big = own("/big/");
        assert_eq!(big.max_body_size, Some(0));
        assert_eq!(big.cache, Some(true));
        assert!(own("/").is_empty());
        // Shown as a route's line writes them, as the keys read them back.
        assert_eq!(upload.to_string(), "max_body_size=10MiB");
        assert_eq!(
            big.to_string(),
            "max_body_size=0 backend_timeout=1500ms cache=on"
        );
    }

    #[test]
    fn a_route_s_own_settings_are_refused_with_the_option_named() {
        let dir = tempfile::tempdir().unwrap();
        let www = dir.path().display();
        let base = "targets = 127.0.0.1:9001\npool.app = 127.0.0.1:9002\nroute./app/ = app\n";
        for (line, says) in [
            (
                "route./u/ = app max_body_size=lots".to_string(),
                "proxy.conf:4: route./u/: max_body_size=lots: `lots` is not a size",
            ),
            (
                "route./u/ = app max_body_size=10mb".into(),
                "proxy.conf:4: route./u/: max_body_size=10mb: `10mb`: use KiB, MiB or GiB",
            ),
            (
                "route./u/ = app max_body_size=1m max_body_size=2m".into(),
                "proxy.conf:4: route./u/: max_body_size= given twice",
            ),
            (
                "route./u/ = app backend_timeout=0".into(),
                "proxy.conf:4: route./u/: backend_timeout=0: must be greater than zero",
            ),
            (
                "route./u/ = app backend_timeout=soon".into(),
                "backend_timeout=soon: `soon` is not a duration",
            ),
            (
                "route./u/ = app backend_timeout=1s cache=off backend_timeout=2s".into(),
                "backend_timeout= given twice",
            ),
            (
                "route./u/ = app cache=maybe".into(),
                "proxy.conf:4: route./u/: cache=maybe: `maybe` is not a boolean",
            ),
            (
                "route./u/ = app cache=off cache=on".into(),
                "cache= given twice",
            ),
            (
                "route./u/ = app cache".into(),
                "unknown option `cache` (a route is `<pool>`",
            ),
            (
                "route./u/ = return 200 cache=off".into(),
                "proxy.conf:4: route./u/: cache=: a return route is answered by the proxy \
                 itself, with no exchange with a pool's backends: set it on a route to a pool",
            ),
            (
                "route./u/ = redirect 301 /v/ max_body_size=1m".into(),
                "proxy.conf:4: route./u/: max_body_size=: a redirect route is answered by the \
                 proxy itself",
            ),
            (
                format!("route./u/ = files {www} fallback=app backend_timeout=1s"),
                "proxy.conf:4: route./u/: backend_timeout=: a files route serves its files \
                 itself (what its fallback= sends to a pool goes with that pool's settings)",
            ),
            (
                format!("request_buffer_dir = {www}\nmax_body_size = 1m\nroute./u/ = app max_body_size=0"),
                "proxy.conf:6: route./u/: max_body_size=0: no limit, and request_buffer_dir \
                 writes request bodies to disk",
            ),
            (
                format!("request_buffer_dir = {www}\nmax_body_size = 1m\nroute./u/ = app max_body_size=1g"),
                "",
            ),
        ] {
            assert_built_or_refused(&format!("{base}{line}\n"), says);
        }
    }

    #[test]
    fn a_route_s_cache_on_checks_its_pool_s_cache_rules_as_a_pool_s_that_uses_it() {
        // Cache-Control unread, and no lifetime of the pool's own: with
        // the cache on, nothing would ever be stored.
        let base = "targets = 127.0.0.1:9001\n\
                    cache_ignore_headers = Cache-Control, Expires, X-Accel-Expires, \
                    Surrogate-Control\ncache = false\n\
                    pool.s = 127.0.0.1:9002\nroute./s/ = s\n";
        assert!(build(base).is_ok());
        assert!(build(&format!("{base}route./t/ = s cache=off\n")).is_ok());
        let e = build(&format!("{base}route./t/ = s cache=on\n"))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "proxy.conf:6: route./t/: cache=on: proxy.conf:4: pool.s: cache_ignore_headers \
                 (the top level's): Cache-Control is not read"
            ),
            "{e}"
        );
        let lifetimes = format!("{base}pool.s.cache_valid = 200 1s\nroute./t/ = s cache=on\n");
        assert!(build(&lifetimes).is_ok());
        // So is `targets`', the top level's.
        let e = build(&format!("{base}route./t/ = default cache=on\n"))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("proxy.conf:6: route./t/: cache=on: "), "{e}");
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
                "proxy.conf:4: route./s/: unknown option `strip` (a files route is \
                 `files <directory> [max_age=<duration> [immutable]] \
                 [fallback=<pool>|/<file>] [precompressed] [internal] [autoindex[=json]] \
                 [limit_rate=<size>[/s]] [limit_rate_after=<size>] \
                 [rate_limit=<N>/s|m|h [rate_limit_burst=<N>] [rate_limit_delay=<N>]]`"
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
                "proxy.conf:4: route./s/: a files route is `files <directory>".into(),
            ),
            (
                "route./s/ = files max_age=1h".into(),
                "a files route is `files <directory>".into(),
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
            (
                answer.status,
                answer.text.as_ref().map(|t| t.source().to_string()),
            )
        };
        assert_eq!(text("/healthz"), (200, Some("all is   well".to_string())));
        assert_eq!(text("/gone/x"), (410, None));
    }

    #[test]
    fn a_return_route_s_text_may_name_the_request_s_variables() {
        let c = build(
            "targets = 127.0.0.1:9001\nroute./ip = return 200 $remote_addr\n\
             route./price = return 200 costs $$5\n\
             route./who = return 200 type=application/json {\"host\":\"${host}\"}\n",
        )
        .unwrap();
        let text = |path: &str| {
            let index = c.routes.route(None, path).unwrap().unwrap();
            let answer = c.routes.get(index).and_then(|r| r.returned()).unwrap();
            let text = answer.text.clone().unwrap();
            (text.source().to_string(), text.text().map(str::to_string))
        };
        assert_eq!(text("/ip"), ("$remote_addr".into(), None));
        assert_eq!(
            text("/price"),
            ("costs $$5".into(), Some("costs $5".into()))
        );
        assert_eq!(text("/who"), ("{\"host\":\"${host}\"}".into(), None));
        let refused = |line: &str, says: &str| {
            let text = format!("targets = 127.0.0.1:9001\n{line}\n");
            assert_built_or_refused(&text, says);
            assert_built_or_refused(&text, "proxy.conf:2: route./x: return 200: ");
        };
        refused(
            "route./x = return 200 $remote_adr",
            "unknown variable `$remote_adr` (did you mean `$remote_addr`?)",
        );
        refused(
            "route./x = return 200 costs $5",
            "unknown variable `$5`; `$$` writes a dollar sign",
        );
        refused(
            "route./x = return 200 100 $",
            "starts no variable name (`$status`, `${status}`); `$$` writes a dollar sign",
        );
        refused(
            "route./x = return 200 $status",
            "a variable of a backend's answer",
        );
        refused(
            "route./x = return 200 $upstream_addr",
            "a variable of a backend's answer",
        );
        refused(
            "route./x = return 200 $request_body",
            "the access log's alone",
        );
    }
}
