//! The cache's rules of one generation of the settings, for each pool
//! ([`CacheRules`], [`Caching`]).

use crate::cache::{policy, Cache};
use crate::config::Config;
use crate::routes::{Lookup, Routes};
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
}

/// How the requests of one pool use the cache.
pub struct Caching {
    /// Whether they do: with a cache, and `cache` on.
    pub on: bool,
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
        let settings = Arc::new(config.cache_settings());
        let on = with_cache && config.cache;
        Caching {
            on,
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
        CacheRules {
            top: Caching::new(config, with_cache),
            pools: (config.pools.iter())
                .map(|p| Caching::new(&p.config, with_cache))
                .collect(),
        }
    }

    /// Pool `index`'s (0: `targets`').
    pub(super) fn of_pool(&self, index: usize) -> &Caching {
        match index {
            0 => &self.top,
            i => self.pools.get(i - 1).unwrap_or(&self.top),
        }
    }

    /// The settings a stored response under `key` (a snapshot's) is
    /// judged by: those of the pool its URL is routed to. `None` when
    /// that pool does not use the cache, when a route redirects its URL,
    /// or when no request could be routed there (see [`Routes::route`]):
    /// nothing would ever find it. Conditional routes that together
    /// take every request for a URL (`cookie a` and `not cookie a`) are
    /// not seen as such: the entry loads under the pool of the route
    /// without a condition and is never found, taking room until it
    /// expires.
    pub fn settings_of_key(&self, key: &str, routes: &Routes) -> Option<&policy::Settings> {
        let primary = &key[..key.find('\n').unwrap_or(key.len())];
        let (authority, path) = policy::split_key(primary);
        let route = (routes.route_asked(Some(authority), path, Lookup::StoredGet)).ok()?;
        let route = route.and_then(|i| routes.get(i));
        if route.is_some_and(|r| r.answers_itself()) {
            return None;
        }
        let pool = route.map_or(0, |r| r.pool);
        let caching = self.of_pool(pool);
        caching.on.then_some(&*caching.settings)
    }
}
