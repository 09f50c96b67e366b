//! Building each pool: the top level's settings with the pool's targets
//! and the keys it sets, and the error pages each scope answers with.

use super::links::check_each_backend_in_one_pool;
use super::{PoolConfig, Scope};
use crate::config::{
    Balance, Config, ConfigError, FieldFamily, FieldKey, LeastTimeMeasure, Loader, LogFormat,
    Setting,
};
use crate::error_pages::{warn_of_unused_pages, ErrorPages};
use crate::http::head::required_field;
use crate::routes::{Route, CLOSE_UNANSWERED};
use std::path::PathBuf;
use std::sync::Arc;

impl Loader {
    /// The pools and routes of `top` (built from every other key).
    pub(in crate::config) fn build_pools(&self, top: &mut Config) -> Result<(), ConfigError> {
        let mut pools: Vec<PoolConfig> = Vec::new();
        for targets in self.pool_keys.iter().filter(|k| k.key.is_none()) {
            let mut config = self.build_pool(top, &targets.pool, &targets.setting)?;
            let own = |key| self.sets(Scope::Pool(&targets.pool), key);
            let (path_to_log, log_format) = self.own_log(top, &mut config, &targets.pool)?;
            pools.push(PoolConfig {
                name: targets.pool.as_str().into(),
                config,
                own_rate_limit: [
                    "rate_limit",
                    "rate_limit_burst",
                    "rate_limit_delay",
                    "rate_limit_key",
                ]
                .into_iter()
                .any(own),
                path_to_log,
                log_format,
            });
        }
        // A key for a pool that has no targets would set nothing.
        let keys = (self.pool_keys.iter())
            .filter_map(|k| Some((&*k.pool, k.key?.to_string(), &k.setting)));
        let fields =
            (self.pool_field_keys.iter()).map(|(pool, f)| (&**pool, f.written(), &f.setting));
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
        top.routes = Arc::new(self.build_routes(top, &pools)?);
        self.read_more_error_pages(top, &mut pools)?;
        self.resolve_auth_requests(top, &mut pools)?;
        self.resolve_key_requests(top, &mut pools)?;
        self.check_mirrors(top, &mut pools)?;
        self.warn_of_sign_in_loops(top, &pools);
        top.streams = self.build_streams(top, &pools)?;
        // Asked by `auth_request` or for keys, sent copies by `mirror`,
        // or a stream's.
        let asked = |i: usize, name: &str| {
            (std::iter::once(&*top).chain(pools.iter().map(|p| &p.config))).any(|c| {
                [&c.auth_request, &c.auth_jwt_key_request]
                    .into_iter()
                    .any(|asked| asked.as_ref().is_some_and(|a| a.pool == i))
                    || c.mirror.as_deref() == Some(name)
            }) || (top.streams.iter())
                .any(|s| s.pool == i || s.by_hello.iter().any(|b| b.pool == i))
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

    /// The pool's own log file and its format, if it sets them, taken out
    /// of its settings (`config`): its file is a copy, and the main log
    /// stays the top level's, in the top level's format.
    fn own_log(
        &self,
        top: &Config,
        config: &mut Config,
        pool: &str,
    ) -> Result<(Option<PathBuf>, Option<LogFormat>), ConfigError> {
        let own = |key| self.sets(Scope::Pool(pool), key);
        let path_to_log = std::mem::replace(&mut config.path_to_log, top.path_to_log.clone())
            .filter(|_| own("path_to_log"));
        let log_format = std::mem::replace(&mut config.log_format, top.log_format.clone());
        let log_format = own("log_format").then_some(log_format);
        if log_format.is_some() && path_to_log.is_none() {
            let why = format!(
                "the format of the pool's own file, and it has none: its lines go to the main \
                 log alone, in the main log_format (set `pool.{pool}.path_to_log = {pool}.log` \
                 too, or take this key out)"
            );
            return Err(self.refused_in(Scope::Pool(pool), "log_format", why));
        }
        Ok((path_to_log, log_format))
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
        config.deny = Arc::default();
        for key in (self.pool_keys.iter()).filter(|k| k.pool == name) {
            let shown = match key.key {
                Some(k) => format!("pool.{name}.{k}"),
                None => format!("pool.{name}"),
            };
            (key.apply)(&mut config, &key.setting.value)
                .map_err(|m| ConfigError::at(&key.setting.origin, format!("{shown}: {m}")))?;
        }
        if config.targets.is_empty() && config.unresolved.is_empty() {
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
        if sets("balance") && !sets("least_time_measure") && config.balance != Balance::LeastTime {
            config.least_time_measure = LeastTimeMeasure::Header;
        }
        // Another service's sign-in page is its own.
        if sets("auth_request") && !sets("auth_request_redirect") {
            config.auth_request_redirect = None;
        }
        // Of the two sources of keys, the one a pool sets is the one it
        // has.
        if sets("auth_jwt_key_file") && !sets("auth_jwt_key_request") {
            config.auth_jwt_key_request = None;
        }
        if sets("auth_jwt_key_request") && !sets("auth_jwt_key_file") {
            config.auth_jwt_keys = None;
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
        // A pool's own redirect to HTTPS writes Location itself, as the
        // top level's does: a top-level response_header.Location would
        // go out beside it.
        let sets_location = || {
            (config.response_headers.iter())
                .any(|(field, _)| field.eq_ignore_ascii_case("location"))
        };
        if config.redirect_to_https && sets_location() {
            let why = "is on, and response_header.Location is set: the proxy writes Location \
                       on its redirects itself";
            return Err(self.refused_in(Scope::Pool(name), "redirect_to_https", why.into()));
        }
        // Of the kinds of probe (a GET, a connect, a datagram), the one a
        // pool chooses is the one it has: its own `health_check_tcp =
        // true` under a top-level health_check_path checks its targets by
        // connecting, and its own health_check_path (or `health_check_udp
        // = true`) under a top-level `health_check_tcp` with GETs
        // (datagrams), or, an empty path, with none (as under a top-level
        // path). `false` chooses none: it turns off its own kind alone.
        // Two chosen for the pool are refused below.
        let [path, tcp, udp] = [
            sets("health_check_path"),
            sets("health_check_tcp") && config.health_check_tcp,
            sets("health_check_udp") && config.health_check_udp,
        ];
        if path || tcp || udp {
            if !path {
                config.health_check_path = None;
            }
            config.health_check_tcp &= tcp;
            config.health_check_udp &= udp;
        }
        // Of the two ways a connect converses, the one a pool sets is the
        // one it has (both set by the pool are refused below); a datagram
        // still sends the top level's health_check_send.
        let [conversation, one_exchange] = [
            sets("health_check_conversation"),
            sets("health_check_send") || sets("health_check_expect"),
        ];
        if conversation && !one_exchange && config.health_check_tcp {
            config.health_check_send = None;
            config.health_check_expect = None;
        }
        if one_exchange && !conversation {
            config.health_check_conversation = None;
        }
        // A burst or a key it takes from the top level goes with a rate
        // the pool turned off (`pool.<name>.rate_limit =`): nothing; so
        // does a sticky cookie's marking or attributes without it.
        let mut own = config.set_in_vain().into_iter();
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
        self.check_request_buffer_dir(&config, Scope::Pool(name))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::pools::tests::{assert_built_or_refused, build, refused, TWO_POOLS};
    use std::path::Path;
    use std::time::Duration;

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
        // Datagrams of its own replace either; top-level datagrams give
        // way to a pool's own GET.
        for top in ["health_check_path = /up", "health_check_tcp = true"] {
            let c = build(&format!(
                "targets = 127.0.0.1:9001\n{top}\n{pools}pool.a.health_check_udp = true\n\
                 pool.a.health_check_send = ping\n"
            ))
            .unwrap();
            let a = &c.pools[0].config;
            let kind = (&a.health_check_path, a.health_check_tcp, a.health_check_udp);
            assert_eq!(kind, (&None, false, true), "{top}");
            assert!(!c.pools[1].config.health_check_udp, "{top}");
        }
        let c = build(&format!(
            "targets = 127.0.0.1:9001\nhealth_check_udp = true\nhealth_check_send = ping\n\
             {pools}pool.a.health_check_path = /up\n"
        ))
        .unwrap();
        assert!(!c.pools[0].config.health_check_udp);
        assert!(c.pools[1].config.health_check_udp);
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
    fn least_time_measure_goes_with_the_balance_it_was_set_for() {
        use crate::config::LeastTimeMeasure::{Header, LastByte};
        let top =
            "targets = 127.0.0.1:9001\nbalance = least_time\nleast_time_measure = last_byte\n";
        let c = build(&format!("{top}pool.a = 127.0.0.1:9002\nroute./a/ = a\n")).unwrap();
        assert_eq!(c.pools[0].config.least_time_measure, LastByte);
        let c = build(&format!(
            "{top}pool.a = 127.0.0.1:9002\npool.a.balance = least_conn\nroute./a/ = a\n"
        ))
        .unwrap();
        assert_eq!(c.pools[0].config.least_time_measure, Header);
        let c = build(
            "targets = 127.0.0.1:9001\npool.a = 127.0.0.1:9002\npool.a.balance = least_time\n\
             pool.a.least_time_measure = last_byte\nroute./a/ = a\n",
        )
        .unwrap();
        assert_eq!(c.pools[0].config.least_time_measure, LastByte);
        assert_eq!(c.least_time_measure, Header);
        let e = build(
            "targets = 127.0.0.1:9001\npool.a = 127.0.0.1:9002\n\
             pool.a.least_time_measure = last_byte\nroute./a/ = a\n",
        )
        .unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(
            e.message.starts_with(
                "pool.a.least_time_measure: is last_byte, but balance = round_robin: only \
                 balance = least_time reads it"
            ),
            "{e}"
        );
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

    #[test]
    fn a_pool_has_its_own_queue_timeout_or_the_top_level_s() {
        let c = build(
            "targets = 127.0.0.1:9001\nconnect_timeout = 1s\nqueue_timeout = 10s\n\
             pool.busy = 127.0.0.1:9002\npool.busy.queue_timeout = 1m\n\
             pool.plain = 127.0.0.1:9003\n",
        )
        .unwrap();
        let queue = |name: &str| {
            let pool = c.pools.iter().find(|p| &*p.name == name).unwrap();
            pool.config.effective_queue_timeout()
        };
        assert_eq!(queue("busy"), Duration::from_secs(60));
        assert_eq!(queue("plain"), Duration::from_secs(10));
        assert_eq!(c.effective_queue_timeout(), Duration::from_secs(10));
    }

    #[test]
    fn a_pool_logs_to_a_file_of_its_own_besides_the_main_log() {
        let c = build(
            "targets = 127.0.0.1:9001\npath_to_log = all.log\npool.shop = 127.0.0.1:9002\n\
             pool.shop.path_to_log = shop.log\npool.blog = 127.0.0.1:9003\n\
             pool.blog.path_to_log = ./shop.log\npool.api = 127.0.0.1:9004\n\
             pool.old = 127.0.0.1:9005\npool.old.path_to_log =\n",
        )
        .unwrap();
        let own: Vec<Option<&str>> = (c.pools.iter())
            .map(|p| p.path_to_log.as_deref().and_then(|p| p.to_str()))
            .collect();
        // Two pools may share one; one that sets none, or an empty one,
        // logs to the main log alone.
        assert_eq!(own, [Some("shop.log"), Some("./shop.log"), None, None]);
        for pool in &c.pools {
            assert_eq!(
                pool.config.path_to_log.as_deref(),
                Some(Path::new("all.log"))
            );
        }
    }

    #[test]
    fn a_pools_log_may_not_be_another_file_the_proxy_writes() {
        let base = "targets = 127.0.0.1:9001\npool.shop = 127.0.0.1:9002\n";
        for (lines, says) in [
            // The snapshot's default name, with the cache on by default.
            (
                "pool.shop.path_to_log = ./cache.bin\n",
                "proxy.conf:3: pool.shop.path_to_log: ./cache.bin is also path_to_persistence",
            ),
            ("cache_size = 0\npool.shop.path_to_log = ./cache.bin\n", ""),
            (
                "path_to_log = all.log\npool.shop.path_to_log = ./all.log\n",
                "proxy.conf:4: pool.shop.path_to_log: ./all.log is also path_to_log",
            ),
            (
                "pool.shop.path_to_log = run/f\nstate_file = run/f\n",
                "proxy.conf:4: state_file: run/f is also pool.shop.path_to_log",
            ),
        ] {
            assert_built_or_refused(&format!("{base}{lines}"), says);
        }
    }

    #[test]
    fn a_pools_own_file_may_have_a_format_of_its_own() {
        let c = build(
            "targets = 127.0.0.1:9001\npool.shop = 127.0.0.1:9002\n\
             pool.shop.path_to_log = shop.log\npool.shop.log_format = json\n\
             pool.blog = 127.0.0.1:9003\npool.blog.path_to_log = blog.log\n\
             pool.blog.log_format = $remote_addr \"$http_x_customer\"\n\
             pool.api = 127.0.0.1:9004\npool.api.path_to_log = api.log\n",
        )
        .unwrap();
        let formats: Vec<Option<&LogFormat>> =
            c.pools.iter().map(|p| p.log_format.as_ref()).collect();
        assert_eq!(formats[0], Some(&LogFormat::Json));
        assert!(matches!(formats[1], Some(LogFormat::Template(t))
            if t.source() == "$remote_addr \"$http_x_customer\""));
        assert_eq!(formats[2], None, "the main log's");
        // The main log keeps its own, in every pool's settings too.
        assert_eq!(c.log_format, LogFormat::Combined);
        assert!((c.pools.iter()).all(|p| p.config.log_format == LogFormat::Combined));
        // Read as the top-level key is.
        let e = refused(
            "targets = 127.0.0.1:9001\npool.shop = 127.0.0.1:9002\n\
             pool.shop.path_to_log = shop.log\npool.shop.log_format = $stauts\n",
        );
        assert!(
            e.starts_with("proxy.conf:4: pool.shop.log_format: unknown variable `$stauts`"),
            "{e}"
        );
    }

    #[test]
    fn a_pools_format_without_a_file_of_its_own_is_refused() {
        let base = "targets = 127.0.0.1:9001\npath_to_log = all.log\npool.shop = 127.0.0.1:9002\n";
        for own_file in ["", "pool.shop.path_to_log =\n"] {
            let e = refused(&format!("{base}{own_file}pool.shop.log_format = json\n"));
            assert!(
                e.contains(
                    ": pool.shop.log_format: the format of the pool's own file, and it has none"
                ),
                "{e}"
            );
            assert!(e.contains("pool.shop.path_to_log = shop.log"), "{e}");
        }
    }

    #[test]
    fn a_file_two_pools_share_has_one_format() {
        let base = "targets = 127.0.0.1:9001\npool.shop = 127.0.0.1:9002\n\
                    pool.shop.path_to_log = sites.log\npool.blog = 127.0.0.1:9003\n\
                    pool.blog.path_to_log = ./sites.log\n";
        let mixed = "proxy.conf:5: pool.blog.path_to_log: ./sites.log is also \
                     pool.shop.path_to_log, in another log_format";
        for (formats, says) in [
            ("pool.shop.log_format = json\n", mixed),
            ("pool.blog.log_format = json\n", mixed),
            (
                "pool.shop.log_format = json\npool.blog.log_format = $status\n",
                mixed,
            ),
            // The same, written by both or by one as the main log's.
            (
                "pool.shop.log_format = json\npool.blog.log_format = json\n",
                "",
            ),
            ("log_format = json\npool.shop.log_format = json\n", ""),
            (
                "pool.shop.log_format = $status\npool.blog.log_format = $status\n",
                "",
            ),
        ] {
            assert_built_or_refused(&format!("{base}{formats}"), says);
        }
    }

    #[test]
    fn log_headers_is_refused_only_when_no_format_in_use_writes_heads() {
        let base = "targets = 127.0.0.1:9001\nlog_headers = true\nlog_format = $status\n\
                    pool.shop = 127.0.0.1:9002\npool.shop.path_to_log = shop.log\n";
        let refused = "proxy.conf:2: log_headers: adds the heads to combined and json lines";
        assert_built_or_refused(base, refused);
        assert_built_or_refused(&format!("{base}pool.shop.log_format = $uri\n"), refused);
        assert_built_or_refused(&format!("{base}pool.shop.log_format = json\n"), "");
    }
}
