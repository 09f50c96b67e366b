//! The cache's rules of one generation of the settings, for each pool
//! ([`CacheRules`], [`Caching`]).

use crate::cache::{policy, Cache};
use crate::config::Config;
use crate::routes::{Lookup, Route, Routes};
use std::sync::Arc;

/// What the cache's rules give for one generation of the settings, for
/// each pool.
pub struct CacheRules {
    /// `targets`' (the top level's).
    pub top: Caching,
    /// Each `pool.<name>`'s, in order (see [`Shared::caching`]).
    ///
    /// [`Shared::caching`]: super::Shared::caching
    pools: Vec<Caching>,
    /// For each pool, `targets`' first, that a route's `cache=` turns the
    /// other way than the pool's `cache`: how that route's requests use
    /// the cache (see [`CacheRules::of_route`]).
    turned: Vec<Option<Caching>>,
}

/// How the requests of one pool use the cache.
pub struct Caching {
    /// Whether they do: with a cache, and `cache` on.
    pub on: bool,
    /// The `cache` they follow, with a cache or without.
    cache: bool,
    pub settings: Arc<policy::Settings>,
    /// The fields for the cache alone that it reads and clients never
    /// get (none without a cache: then they pass through as any other),
    /// and `X-Accel-Limit-Rate`, the proxy's, with a cache or without;
    /// compared with an entry's on every hit.
    pub own_fields: policy::OwnFields,
    /// This cache's entry for `Surrogate-Capability`, when it reads
    /// `Surrogate-Control`: only with a cache.
    pub surrogate_capability: Option<String>,
}

impl Caching {
    fn new(config: &Config, with_cache: bool) -> Caching {
        Caching::following(Arc::new(config.cache_settings()), with_cache, config.cache)
    }

    /// Under `settings`, as `cache` says.
    fn following(settings: Arc<policy::Settings>, with_cache: bool, cache: bool) -> Caching {
        let on = with_cache && cache;
        Caching {
            on,
            cache,
            own_fields: match on {
                true => settings.targeting.own_fields(),
                false => policy::OwnFields::default(),
            },
            surrogate_capability: (settings.targeting.surrogate_id.as_deref())
                .filter(|_| on)
                .map(policy::surrogate_capability),
            settings,
        }
    }
}

impl CacheRules {
    pub fn new(config: &Config, cache: &Option<Arc<Cache>>) -> CacheRules {
        let with_cache = cache.is_some();
        let top = Caching::new(config, with_cache);
        let pools: Vec<Caching> = (config.pools.iter())
            .map(|p| Caching::new(&p.config, with_cache))
            .collect();
        let turned = (std::iter::once(&top).chain(&pools).enumerate())
            .map(|(pool, of_pool)| {
                let other = !of_pool.cache;
                let turns = |r: &Route| r.pool == pool && r.own_settings().cache == Some(other);
                (config.routes.iter().any(turns))
                    .then(|| Caching::following(of_pool.settings.clone(), with_cache, other))
            })
            .collect();
        CacheRules { top, pools, turned }
    }

    /// Pool `index`'s (0: `targets`').
    pub(super) fn of_pool(&self, index: usize) -> &Caching {
        match index {
            0 => &self.top,
            i => self.pools.get(i - 1).unwrap_or(&self.top),
        }
    }

    /// For a request to pool `index` that took `route`: the pool's, or,
    /// with the route's `cache=` the other way, the pool's rules with the
    /// cache turned as the route says.
    pub(super) fn of_route(&self, index: usize, route: Option<&Route>) -> &Caching {
        let pooled = self.of_pool(index);
        match route.and_then(|r| r.own_settings().cache) {
            Some(cache) if cache != pooled.cache => (self.turned.get(index))
                .and_then(Option::as_ref)
                .unwrap_or(pooled),
            _ => pooled,
        }
    }

    /// The settings a stored response under `key` (a snapshot's) is
    /// judged by: those of the pool its URL is routed to. `None` when
    /// that pool (or the route, with its `cache=`) does not use the
    /// cache, when a route redirects its URL, or when no request could
    /// be routed there (see [`Routes::route`]):
    /// nothing would ever find it. Conditional routes that together
    /// take every request for a URL (`cookie a` and `not cookie a`) are
    /// not seen as such: the entry loads under the pool of the route
    /// without a condition and is never found, taking room until it
    /// expires.
    pub fn settings_of_key(&self, key: &str, routes: &Routes) -> Option<&policy::Settings> {
        let primary = &key[..key.find('\n').unwrap_or(key.len())];
        let (authority, path) = policy::split_key(primary);
        let https = policy::is_https_key(primary);
        let lookup = Lookup::StoredGet { https };
        let route = (routes.route_asked(Some(authority), path, lookup)).ok()?;
        let route = route.and_then(|i| routes.get(i));
        if route.is_some_and(|r| r.answers_itself()) {
            return None;
        }
        let caching = self.of_route(route.map_or(0, |r| r.pool), route);
        caching.on.then_some(&*caching.settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Loader;

    #[test]
    fn a_route_s_cache_turns_its_pool_s_the_other_way_for_its_requests_alone() {
        let mut loader = Loader::new();
        let text = "targets = 127.0.0.1:9001\npool.app = 127.0.0.1:9002\npool.app.cache = false\n\
                    pool.app.cache_valid = 200 1m\nroute./app/ = app\n\
                    route./app/feed = app cache=on\nroute./account/ = default cache=off\n\
                    route./still/ = default cache=on\n";
        let config = loader.file("proxy.conf", text).unwrap().build().unwrap();
        let routes = &config.routes;
        let route = |path: &str| routes.iter().find(|r| r.to_string() == path);
        let cache = Some(Arc::new(Cache::new(1 << 20, 1 << 16)));
        let rules = CacheRules::new(&config, &cache);
        let on = |pool: usize, path: Option<&str>| rules.of_route(pool, path.and_then(route)).on;
        assert!(on(0, None) && on(0, Some("/still/")));
        assert!(!on(0, Some("/account/")));
        assert!(!on(1, Some("/app/")) && on(1, Some("/app/feed")));
        // Turned on, it has the pool's rules, and the fields they read.
        let feed = rules.of_route(1, route("/app/feed"));
        assert!(Arc::ptr_eq(&feed.settings, &rules.of_pool(1).settings));
        assert!(rules
            .of_route(0, route("/account/"))
            .surrogate_capability
            .is_none());
        assert!(rules.of_pool(0).surrogate_capability.is_some());
        // A snapshot's entries load under the route's word.
        assert!(rules.settings_of_key("h/account/x", routes).is_none());
        assert!(rules.settings_of_key("h/app/feed", routes).is_some());
        assert!(rules.settings_of_key("h/app/x", routes).is_none());
        assert!(rules.settings_of_key("h/x", routes).is_some());
        // Without a cache, no route turns one on.
        let rules = CacheRules::new(&config, &None);
        assert!(!rules.of_route(1, route("/app/feed")).on);
    }
}
