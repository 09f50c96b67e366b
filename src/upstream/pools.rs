//! The pools of backends of one configuration: `targets` (the pool named
//! `default`) and each `pool.<name>`, each an [`Upstreams`] with its own
//! balancer and settings; a route picks the one a request goes to (see
//! [`crate::routes`]). What spans them is here: a target looked up by
//! name (the admin listener, the state file), the state a reload carries
//! over, the idle connections retired or swept.
//!
//! A backend is in one pool only (the configuration refuses it in two),
//! so a target's name names one target across them all.

use super::admin_state::AdminState;
use super::health::{Active, Checker, KeyFetch, ProbeKind};
use super::{Upstream, Upstreams};
use crate::config::Config;
use crate::metrics::Metrics;
use std::io;
use std::sync::Arc;

pub struct Pools {
    /// `targets`' first: index 0 is where a request no route takes goes.
    pools: Vec<Upstreams>,
}

impl Pools {
    pub fn new(config: &Config) -> Pools {
        let mut pools = vec![Upstreams::new(config)];
        for pool in &config.pools {
            pools.push(Upstreams::named(&pool.config, pool.name.clone()));
        }
        Pools { pools }
    }

    /// The pool a route's index names (see `routes::Route::pool`); out of
    /// range, which a route of this generation never is, `targets`'.
    pub fn get(&self, index: usize) -> &Upstreams {
        self.pools.get(index).unwrap_or(&self.pools[0])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Upstreams> {
        self.pools.iter()
    }

    /// Every target of every pool, `targets`' first.
    pub fn targets(&self) -> impl Iterator<Item = &Upstream> + Clone {
        self.pools.iter().flat_map(|pool| pool.targets())
    }

    /// The target `id` names, in whichever pool: its name as configured,
    /// or its address (the `name` and `address` of `/status`). Both are
    /// unique as loaded: the configuration refuses two targets at one
    /// address (two names that come to resolve to one while the proxy
    /// runs are two targets still, the first found by that address).
    pub fn find(&self, id: &str) -> Option<&Upstream> {
        let by_name = self.targets().find(|t| *t.name == *id);
        by_name.or_else(|| self.targets().find(|t| t.addr.to_string() == id))
    }

    /// The targets a name written in `targets` or a pool stands for
    /// (`app:8000`: one per address it gives), none when no target was
    /// written so.
    pub fn written_as(&self, written: &str) -> Vec<&Upstream> {
        self.targets().filter(|t| *t.written == *written).collect()
    }

    /// The pool `target` is in.
    pub fn pool_of(&self, target: &Upstream) -> &Upstreams {
        let holds = |pool: &&Upstreams| pool.targets().iter().any(|t| std::ptr::eq(t, target));
        self.pools.iter().find(holds).unwrap_or(&self.pools[0])
    }

    /// Sets `target`'s administrative state (see
    /// [`Upstreams::set_admin_state`]); returns the one it replaced.
    pub fn set_admin_state(&self, target: &Upstream, state: AdminState) -> AdminState {
        self.pool_of(target).set_admin_state(target, state)
    }

    /// Takes over what `old`'s targets had, by name, whichever pool each
    /// was in (see [`Upstreams::keep_state_of`]): a backend moved to
    /// another pool keeps its health, counters and state. A pool keeps
    /// the counters of the pool of its name (`targets`' those of
    /// `targets`); one new, or renamed, starts from zero.
    pub fn keep_state_of(&mut self, old: &Pools, keep_idle: bool) {
        let old_targets: Vec<&Upstream> = old.targets().collect();
        for pool in &mut self.pools {
            if let Some(same) = old.pools.iter().find(|o| o.name == pool.name) {
                pool.stats = same.stats.clone();
            }
            pool.keep_state_of(&old_targets, keep_idle);
        }
    }

    /// The settings these belong to were replaced by `next` (a reload, or
    /// a re-resolution): their idle connections are closed, and those
    /// still in use once their request is done, but for those `next`
    /// goes on with (see [`Upstreams::keep_state_of`]).
    pub fn retire(&self, next: &Pools) {
        for target in self.targets() {
            if !(next.targets()).any(|t| Arc::ptr_eq(&t.idle, &target.idle)) {
                target.idle.retire();
            }
        }
    }

    /// Closes every target's pooled connections that idled too long.
    pub fn sweep_idle(&self) {
        for target in self.targets() {
            target.idle.sweep();
        }
    }

    /// Starts the active health checks and the agents' questions of each
    /// pool that has them, under its own settings (`config`'s for
    /// `targets`, its pool's for the others), and the fetches of the keys
    /// `auth_jwt_key_request` asks for.
    pub fn start_checkers(
        &self,
        config: &Config,
        metrics: &Arc<Metrics>,
    ) -> io::Result<Vec<Checker>> {
        let mut checkers = Vec::new();
        for (pool, settings) in self.pools.iter().zip(config.pool_configs()) {
            checkers.extend(pool.start_checker(settings)?);
            checkers.extend(pool.start_agents(settings)?);
        }
        let fetches = self.key_fetches(config);
        if !fetches.is_empty() {
            checkers.push(Checker::fetch_keys(fetches, metrics)?);
        }
        Ok(checkers)
    }

    /// Each set of keys `auth_jwt_key_request` fetches, once however
    /// many scopes share it: a `GET` of its path from a target of its
    /// pool, within the pool's `backend_timeout`, any 2xx taken.
    fn key_fetches(&self, config: &Config) -> Vec<KeyFetch> {
        let mut fetches: Vec<KeyFetch> = Vec::new();
        for keys in config.distinct_fetched_jwt_keys() {
            let pool = keys.from.pool;
            let asked = config.pool_configs().nth(pool).unwrap_or(config);
            fetches.push(KeyFetch {
                keys: keys.clone(),
                targets: self.get(pool).probes(),
                settings: Active {
                    kind: ProbeKind::Http {
                        method: "GET",
                        path: keys.from.path.to_string(),
                    },
                    host: asked.request_headers.value_of("host").map(str::to_string),
                    interval: keys.every(),
                    fast_interval: keys.every(),
                    down_interval: keys.every(),
                    timeout: asked.effective_backend_timeout(),
                    connect_timeout: asked.effective_connect_timeout(),
                    rise: 1,
                    fall: 1,
                    expect_status: Arc::new([(200, 299)]),
                    expect_body: None,
                    send: None,
                    expect: None,
                    conversation: None,
                    disable_on_404: false,
                },
            });
        }
        fetches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Loader;

    fn config(text: &str) -> Config {
        let mut loader = Loader::new();
        loader.file("proxy.conf", text).unwrap();
        loader.build().unwrap()
    }

    const TWO_POOLS: &str = "targets = 127.0.0.1:9001\n\
                             pool.api = 127.0.0.1:9002, 127.0.0.1:9003\n\
                             route./api/ = api\n";

    #[test]
    fn a_target_is_found_by_name_or_address_in_any_pool() {
        let pools = Pools::new(&config(
            "targets = localhost:9001\npool.api = 127.0.0.1:9002\nroute./api/ = api\n",
        ));
        assert_eq!(pools.targets().count(), 2);
        assert_eq!(
            &*pools.find("localhost:9001").unwrap().name,
            "localhost:9001"
        );
        assert_eq!(
            &*pools.find("127.0.0.1:9001").unwrap().name,
            "localhost:9001"
        );
        let api = pools.find("127.0.0.1:9002").unwrap();
        assert_eq!(pools.pool_of(api).name(), "api");
        assert_eq!(pools.get(1).name(), "api");
        assert!(pools.find("127.0.0.1:80").is_none());
        assert_eq!(pools.written_as("localhost:9001").len(), 1);
    }

    #[test]
    fn a_backend_moved_to_another_pool_keeps_its_state() {
        let old = Pools::new(&config(TWO_POOLS));
        let moved = old.find("127.0.0.1:9003").unwrap();
        old.set_admin_state(moved, AdminState::Drain);
        moved
            .stats
            .requests
            .fetch_add(7, std::sync::atomic::Ordering::Relaxed);
        // 9003 moves from `api` to `targets`.
        let mut next = Pools::new(&config(
            "targets = 127.0.0.1:9001, 127.0.0.1:9003\npool.api = 127.0.0.1:9002\n\
             route./api/ = api\n",
        ));
        next.keep_state_of(&old, false);
        let now = next.find("127.0.0.1:9003").unwrap();
        assert_eq!(next.pool_of(now).name(), "default");
        assert_eq!(now.health.admin_state(), AdminState::Drain);
        assert_eq!(
            now.stats
                .requests
                .load(std::sync::atomic::Ordering::Relaxed),
            7
        );
        // The others were not touched.
        let kept = next.find("127.0.0.1:9002").unwrap();
        assert_eq!(kept.health.admin_state(), AdminState::Ready);
    }

    #[test]
    fn a_pool_keeps_its_counters_by_name_and_a_new_one_starts_at_zero() {
        let old = Pools::new(&config(TWO_POOLS));
        old.get(0).stats().answers.count(200);
        old.get(1).stats().answers.count(502);
        old.get(1).stats().answers.count(204);
        // `api` stays (with other targets), `web` is new.
        let mut next = Pools::new(&config(
            "targets = 127.0.0.1:9001\npool.api = 127.0.0.1:9004\n\
             pool.web = 127.0.0.1:9005\nroute./api/ = api\nroute./web/ = web\n",
        ));
        next.keep_state_of(&old, false);
        let counts = |i: usize| next.get(i).stats().answers.counts();
        assert_eq!(counts(0), [0, 1, 0, 0, 0]);
        assert_eq!((next.get(1).name(), counts(1)), ("api", [0, 1, 0, 0, 1]));
        assert_eq!((next.get(2).name(), counts(2)), ("web", [0; 5]));
        // Shared, not copied: a request of the old generation still in
        // flight counts where the new one's do.
        old.get(1).stats().answers.count(404);
        assert_eq!(counts(1), [0, 1, 0, 1, 1]);
    }

    #[test]
    fn a_pool_s_usable_targets_are_those_up_and_ready() {
        let pools = Pools::new(&config(&format!("max_fails = 1\n{TWO_POOLS}")));
        let api = pools.get(1);
        let now = std::time::Instant::now();
        assert_eq!(api.usable(now), 2);
        let first = &api.targets()[0];
        pools.set_admin_state(first, AdminState::Drain);
        assert_eq!(api.usable(now), 1);
        pools.set_admin_state(&api.targets()[1], AdminState::Maint);
        assert_eq!(api.usable(now), 0);
        pools.set_admin_state(first, AdminState::Ready);
        assert_eq!(api.usable(now), 1);
        // Down by failures: out until its fail_timeout is over.
        first.health.failed(now, "test");
        assert_eq!(api.usable(now), 0);
        assert_eq!(pools.get(0).usable(now), 1);
    }

    #[test]
    fn each_pool_has_the_settings_it_was_given() {
        let pools = Pools::new(&config(
            "targets = 127.0.0.1:9001\nbackend_timeout = 30s\npool.api = 127.0.0.1:9002\n\
             pool.api.backend_timeout = 2m\nroute./api/ = api\n",
        ));
        assert_eq!(pools.get(0).backend_timeout().as_secs(), 30);
        assert_eq!(pools.get(1).backend_timeout().as_secs(), 120);
        // Out of range (never, from a route of the same generation): targets.
        assert_eq!(pools.get(7).name(), "default");
    }
}
