//! [`Shared`]: one generation of the settings, and what is found in it
//! for the pool a request was routed to.

use super::{AuthAnswers, CacheRules, Caching, Mirrors};
use crate::access_log::{Captures, LogSender, Record};
use crate::cache::Cache;
use crate::config::Config;
use crate::gzip::Gzip;
use crate::metrics::Metrics;
use crate::ratelimit::{Limiter, Limiters};
use crate::routes::Route;
use crate::upstream::pools::Pools;
use crate::upstream::Upstreams;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// What every connection thread shares: one generation of the settings.
/// A reload builds a new one; a request keeps the one it started with.
pub struct Shared {
    pub config: Config,
    /// `targets` and each `pool.<name>`.
    pub pools: Pools,
    pub log: LogSender,
    /// What each record carries for the log's formats in this
    /// generation, made once, not per request.
    pub log_captures: Captures,
    pub cache: Option<Arc<Cache>>,
    /// The same flag in every generation.
    pub shutting_down: Arc<AtomicBool>,
    /// The same counters in every generation.
    pub metrics: Arc<Metrics>,
    /// With `rate_limit`: every client address's bucket (kept by a reload
    /// that leaves the limit as it was), for each pool, `targets`' first
    /// (a pool without a limit of its own shares the top level's), and
    /// for each route with a `rate_limit=` of its own.
    pub limiters: Limiters,
    /// The cache rules of this generation, made once, not per request.
    pub cache_rules: CacheRules,
    /// With `gzip` on: what is compressed, and how; for each pool,
    /// `targets`' first (see [`Shared::gzip`]).
    pub gzip: Vec<Option<Gzip>>,
    /// Some pool has `gunzip` on (`Client::lacks_gzip` is read for it).
    pub gunzips: bool,
    /// With `auth_request_cache`: the sign-in services' yeses, kept for
    /// this configuration (a reload, which may change them, starts anew;
    /// new addresses of targets' names do not).
    pub auth_answers: Arc<AuthAnswers>,
    /// `mirror`'s queue and threads: the same in every generation.
    pub mirrors: Arc<Mirrors>,
    /// What the client connections are doing: the same in every
    /// generation.
    pub census: crate::server::Census,
    /// The ACME client, with `acme_domains`: the same from one
    /// generation to the next while its settings stay (a reload that
    /// changes them starts another).
    pub acme: Option<Arc<crate::acme::Acme>>,
    /// With `otel_exporter`: where this generation's spans go (its
    /// thread ends once the generation's last request is done).
    pub otel: Option<Arc<crate::otel::Exporter>>,
}

impl Shared {
    /// The pool a request that took `route` goes to (see
    /// `Client::route`).
    pub fn pool(&self, route: Option<usize>) -> &Upstreams {
        self.pools.get(self.pool_index(route))
    }

    /// The settings of that pool: the top-level ones for `targets`.
    pub fn pool_config(&self, route: Option<usize>) -> &Config {
        self.config_of_pool(self.pool_index(route))
    }

    /// The settings of the pool at `index` (0: `targets`, the top level's).
    pub fn config_of_pool(&self, index: usize) -> &Config {
        let pool = index.checked_sub(1).and_then(|i| self.config.pools.get(i));
        pool.map_or(&self.config, |pool| &pool.config)
    }

    /// How requests routed to that pool by `route` use the cache: as the
    /// pool's `cache`, or the route's `cache=`.
    pub fn caching(&self, route: Option<usize>) -> &Caching {
        (self.cache_rules).of_route(self.pool_index(route), self.taken(route))
    }

    /// The cache, for a request that took `route`: none when the pool's
    /// `cache` is off (or the route's `cache=`).
    pub fn cache_for(&self, route: Option<usize>) -> Option<&Arc<Cache>> {
        self.cache.as_ref().filter(|_| self.caching(route).on)
    }

    /// The longest the backend may keep a request that took `route`
    /// waiting: the route's `backend_timeout=`, or its pool's.
    pub fn backend_timeout(&self, route: Option<usize>) -> Duration {
        self.backend_timeout_to(self.pool_index(route), self.taken(route))
    }

    /// [`Shared::backend_timeout`] for a request to the pool at `index`
    /// that took `route`, if any.
    pub(super) fn backend_timeout_to(&self, index: usize, route: Option<&Route>) -> Duration {
        (route.and_then(|r| r.own_settings().backend_timeout))
            .unwrap_or_else(|| self.pools.get(index).backend_timeout())
    }

    /// With `gzip` on for that pool: what of its answers is compressed,
    /// and how.
    pub fn gzip(&self, route: Option<usize>) -> Option<&Gzip> {
        self.gzip.get(self.pool_index(route))?.as_ref()
    }

    /// With a `rate_limit`: the buckets the request fills (see
    /// [`Shared::limiters`]).
    pub fn limiter(&self, route: Option<usize>) -> Option<&Arc<Limiter>> {
        self.limiters.of_pool(self.pool_index(route))
    }

    /// The pool a request that took `route` goes to (0 for `targets`);
    /// none for a route that answers itself (a redirect, a `return`).
    pub(super) fn routed_pool(&self, route: Option<usize>) -> Option<usize> {
        let taken = self.taken(route);
        (!taken.is_some_and(|r| r.answers_itself())).then(|| self.pool_index(route))
    }

    pub(super) fn pool_index(&self, route: Option<usize>) -> usize {
        self.taken(route).map_or(0, |r| r.pool)
    }

    /// The route at `route`, the index a request's routing gave.
    pub(super) fn taken(&self, route: Option<usize>) -> Option<&Route> {
        route.and_then(|i| self.config.routes.get(i))
    }
}

impl Shared {
    /// Counts and logs a connection answered 503 before any request was
    /// read from it (see [`Record::refused`]).
    pub fn log_refusal(&self, mut record: Record) {
        self.metrics.observe(record.status, record.duration);
        if self.config.log_skips(false, record.status) {
            return;
        }
        record.show_pool = !self.config.pools.is_empty();
        self.log.log(record);
    }
}
