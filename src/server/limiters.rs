//! The rate limiters a generation of settings gets: those of the running
//! one where a reload leaves a limit as it was, so that clients keep
//! their buckets, new ones elsewhere.

use crate::config::Config;
use crate::error_limit::ErrorLimit;
use crate::proxy::Shared;
use crate::ratelimit::{Limiter, Limiters};
use crate::upstream::hash_on::HashOn;
use std::collections::HashMap;
use std::sync::Arc;

/// The rate limiter `config` asks for: the running one when a reload
/// leaves the limit as it was (clients keep their buckets), else a new one.
fn limiter_for(config: &Config, running: Option<&Shared>) -> Option<Arc<Limiter>> {
    let limit = config.effective_rate_limit()?;
    match running {
        Some(old) if same_rate_limit(&old.config, config) => {
            old.limiters.pools.first().cloned().flatten()
        }
        _ => Some(Arc::new(Limiter::new(limit))),
    }
}

/// Whether the two limit requests alike: buckets kept across a reload
/// count what they counted.
fn same_rate_limit(old: &Config, new: &Config) -> bool {
    old.effective_rate_limit() == new.effective_rate_limit()
        && old.rate_limit_key == new.rate_limit_key
}

/// The rate limiters of each pool, `targets`' first: a pool that sets
/// its own limit has buckets of its own (kept from the running pool of
/// its name when the limit is the same), the others share the top
/// level's, as nginx's `limit_req` is inherited by a `location` that
/// sets none.
fn pool_limiters(config: &Config, running: Option<&Shared>) -> Vec<Option<Arc<Limiter>>> {
    let top = limiter_for(config, running);
    let mut limiters = vec![top.clone()];
    for pool in &config.pools {
        if !pool.own_rate_limit {
            limiters.push(top.clone());
            continue;
        }
        let limit = pool.config.effective_rate_limit();
        let kept = running.and_then(|old| {
            let at =
                (old.config.pools.iter()).position(|p| p.name == pool.name && p.own_rate_limit)?;
            let same = same_rate_limit(&old.config.pools[at].config, &pool.config);
            same.then(|| old.limiters.pools.get(at + 1).cloned().flatten())
                .flatten()
        });
        let new = || limit.map(|limit| Arc::new(Limiter::new(limit)));
        limiters.push(kept.or_else(new));
    }
    limiters
}

/// The rate limiters of each route with a `rate_limit=` of its own: the
/// running one of the same route (its host, path and condition) when the
/// reload leaves its limit, and the key its pool counts by, as they were
/// (its clients keep their buckets), else a new one.
fn route_limiters(config: &Config, running: Option<&Shared>) -> Vec<Option<Arc<Limiter>>> {
    let key_of = |config: &Config, pool: usize| -> Option<HashOn> {
        let settings = (config.pool_configs().nth(pool)).unwrap_or(config);
        settings.rate_limit_key.clone()
    };
    // Each running route with a limit by how it is written, once: a
    // search of them all for each new route would make a reload of
    // thousands of routes quadratic.
    let mut running_at: HashMap<String, usize> = HashMap::new();
    if let Some(old) = running {
        for (at, was) in old.config.routes.iter().enumerate() {
            if was.rate_limit().is_some() {
                running_at.entry(was.to_string()).or_insert(at);
            }
        }
    }
    (config.routes.iter())
        .map(|route| {
            let limit = route.rate_limit()?;
            let kept = running.and_then(|old| {
                let at = *running_at.get(&route.to_string())?;
                let was = old.config.routes.get(at)?;
                let same = was.rate_limit() == route.rate_limit()
                    && key_of(&old.config, was.pool) == key_of(config, route.pool);
                same.then(|| old.limiters.of_route(at).cloned()).flatten()
            });
            Some(kept.unwrap_or_else(|| Arc::new(Limiter::new(limit))))
        })
        .collect()
}

/// The rate limiters of one generation of the settings: each pool's and
/// each route's (see [`Limiters`]).
pub(super) fn limiters_for(config: &Config, running: Option<&Shared>) -> Limiters {
    Limiters {
        pools: pool_limiters(config, running),
        routes: route_limiters(config, running),
        errors: error_limit_for(config, running),
    }
}

/// The `error_limit` buckets `config` asks for: the running ones when a
/// reload leaves the limit and its statuses as they were, else new ones.
fn error_limit_for(config: &Config, running: Option<&Shared>) -> Option<Arc<ErrorLimit>> {
    let rate = config.error_limit?;
    let statuses = &config.error_limit_statuses;
    let kept = running.and_then(|old| old.limiters.errors.clone());
    let kept = kept.filter(|kept| kept.is(rate, statuses));
    Some(kept.unwrap_or_else(|| Arc::new(ErrorLimit::new(rate, statuses.clone()))))
}
