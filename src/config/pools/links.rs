//! What pools mean to one another once all are built: the pools
//! `auth_request`, `auth_jwt_key_request` and `mirror` name, sign-in
//! loops, sticky cookies, and each backend in one pool.

use super::routes::index_named;
use super::{PoolConfig, Scope, DEFAULT_POOL};
use crate::auth::jwt_keys::{FetchedKeys, JwtKeys};
use crate::config::{Config, ConfigError, Loader, Origin};
use crate::routes::Route;
use std::sync::Arc;

/// Each pool's name, in order.
fn pool_names(pools: &[PoolConfig]) -> Vec<Arc<str>> {
    pools.iter().map(|p| p.name.clone()).collect()
}

/// The top level and each pool: its index among the pools (0: the top
/// level's `targets`), its scope and its settings.
fn scopes<'a>(
    top: &'a mut Config,
    pools: &'a mut [PoolConfig],
    names: &'a [Arc<str>],
) -> impl Iterator<Item = (usize, Scope<'a>, &'a mut Config)> {
    let pools =
        (pools.iter_mut().enumerate()).map(|(i, p)| (i + 1, Scope::Pool(&names[i]), &mut p.config));
    std::iter::once((0, Scope::Top, top)).chain(pools)
}

impl Loader {
    /// The index of the pool `name` that `key` names in `scope`, and the
    /// scope its mistakes are told of: a pool that takes the top level's
    /// key is judged there.
    fn pool_named<'a>(
        &self,
        scope: Scope<'a>,
        key: &str,
        name: &str,
        names: &[Arc<str>],
    ) -> Result<(usize, Scope<'a>), ConfigError> {
        let key_scope = match self.sets(scope, key) {
            true => scope,
            false => Scope::Top,
        };
        let index = index_named(name, names.iter().map(|n| &**n))
            .map_err(|m| self.refused_in(key_scope, key, m))?;
        Ok((index, key_scope))
    }

    /// Each `auth_request`'s pool, by name. A pool's requests are not
    /// asked of itself (its sign-in pages must be reachable by a client
    /// that has not signed in): the top level's key is off for it, and
    /// its own naming itself is refused.
    pub(super) fn resolve_auth_requests(
        &self,
        top: &mut Config,
        pools: &mut [PoolConfig],
    ) -> Result<(), ConfigError> {
        let names = pool_names(pools);
        for (own, scope, config) in scopes(top, pools, &names) {
            let Some(asked) = &mut config.auth_request else {
                continue;
            };
            let (pool, key_scope) =
                self.pool_named(scope, "auth_request", &asked.pool_name, &names)?;
            asked.pool = pool;
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

    /// Each `auth_jwt_key_request`'s pool, by name, and the keys it
    /// fetches: one set for the scopes asking the same (a pool taking the
    /// top level's request shares its keys and its fetches).
    pub(super) fn resolve_key_requests(
        &self,
        top: &mut Config,
        pools: &mut [PoolConfig],
    ) -> Result<(), ConfigError> {
        let names = pool_names(pools);
        let mut made: Vec<Arc<FetchedKeys>> = Vec::new();
        for (_, scope, config) in scopes(top, pools, &names) {
            let Some(asked) = &mut config.auth_jwt_key_request else {
                continue;
            };
            let key = "auth_jwt_key_request";
            asked.pool = self.pool_named(scope, key, &asked.pool_name, &names)?.0;
            let (cache, issuer) = (config.auth_jwt_key_cache, &config.auth_jwt_issuer);
            // A discovery document must name each scope's own issuer.
            let same =
                |f: &&Arc<FetchedKeys>| f.from == *asked && f.cache == cache && f.issuer == *issuer;
            let fetched = match made.iter().find(same) {
                Some(fetched) => fetched.clone(),
                None => {
                    let issuer = issuer.clone();
                    let fetched = Arc::new(FetchedKeys::new(asked.clone(), cache, issuer));
                    made.push(fetched.clone());
                    fetched
                }
            };
            config.auth_jwt_keys = Some(JwtKeys::Fetched(fetched));
        }
        Ok(())
    }

    /// Each `mirror`'s pool must be one. A pool's requests are not
    /// mirrored to itself: the top level's key is off for the pool it
    /// names, and a pool's own naming itself is refused.
    pub(super) fn check_mirrors(
        &self,
        top: &mut Config,
        pools: &mut [PoolConfig],
    ) -> Result<(), ConfigError> {
        let names = pool_names(pools);
        for (own, scope, config) in scopes(top, pools, &names) {
            let Some(mirror) = &config.mirror else {
                continue;
            };
            let (to, key_scope) = self.pool_named(scope, "mirror", mirror, &names)?;
            if to == own {
                if !matches!(key_scope, Scope::Top) || own == 0 {
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
    pub(super) fn warn_of_sign_in_loops(&self, top: &Config, pools: &[PoolConfig]) {
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

    /// One sticky cookie per pool: a client served by two pools under one
    /// name would have its cookie replaced at each turn, each naming a
    /// target the other pool does not have, and be stuck to none.
    pub(super) fn check_sticky_cookies(
        &self,
        top: &Config,
        pools: &[PoolConfig],
    ) -> Result<(), ConfigError> {
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
}

/// A backend serves one pool: its health, its counters, its drain or
/// maintenance state and its sticky id are one of each, which two pools
/// would share, and the admin listener and the state file name it alone.
pub(super) fn check_each_backend_in_one_pool(
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

#[cfg(test)]
mod tests {
    use crate::config::pools::tests::{build, refused};

    #[test]
    fn scopes_asking_the_same_keys_share_one_set_and_its_fetches() {
        use crate::auth::jwt_keys::JwtKeys;
        let c = build(
            "targets = 127.0.0.1:9001\nauth_jwt = api\nauth_jwt_key_request = idp /jwks\n\
             pool.idp = 127.0.0.1:9002\n\
             pool.same = 127.0.0.1:9003\npool.same.auth_jwt_key_request = idp /jwks\n\
             pool.slow = 127.0.0.1:9004\npool.slow.auth_jwt_key_cache = 1h\n\
             pool.own = 127.0.0.1:9005\npool.own.auth_jwt_key_request = default /keys\n\
             pool.iss = 127.0.0.1:9006\npool.iss.auth_jwt_issuer = https://id.example.com\n\
             route./same/ = same\nroute./slow/ = slow\nroute./own/ = own\nroute./iss/ = iss\n",
        )
        .unwrap();
        let fetched = |i: usize| match &c.pool_configs().nth(i).unwrap().auth_jwt_keys {
            Some(JwtKeys::Fetched(keys)) => keys.clone(),
            other => panic!("{other:?}"),
        };
        let top = fetched(0);
        assert_eq!((top.from.pool, &*top.from.path), (1, "/jwks"));
        // The pool asked, and one asking the same itself, share the set.
        assert!(std::sync::Arc::ptr_eq(&top, &fetched(1)));
        assert!(std::sync::Arc::ptr_eq(&top, &fetched(2)));
        // Another cache time or another request: a set of its own.
        assert_eq!(top.cache, None);
        assert_eq!(fetched(3).cache, Some(std::time::Duration::from_secs(3600)));
        assert!(!std::sync::Arc::ptr_eq(&top, &fetched(3)));
        assert_eq!((fetched(4).from.pool, &*fetched(4).from.path), (0, "/keys"));
        // Another issuer: the discovery document is checked for each.
        assert_eq!(fetched(5).issuer.as_deref(), Some("https://id.example.com"));
        assert!(!std::sync::Arc::ptr_eq(&top, &fetched(5)));
        assert_eq!(c.fetched_jwt_keys().count(), 6);
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
    fn sticky_cookie_nocache_goes_with_a_cookie_in_its_scope() {
        let e = refused("targets = 127.0.0.1:9001\nsticky_cookie_nocache = on\n");
        assert!(
            e.contains("proxy.conf:2: sticky_cookie_nocache: is set, but sticky_cookie is not"),
            "{e}"
        );
        let base = "targets = 127.0.0.1:9001\nsticky_cookie = SRV\nsticky_cookie_nocache = on\n\
                    pool.api = 127.0.0.1:9002\npool.api.sticky_cookie =\n";
        // Taken from the top level by a pool without a cookie: nothing to mark.
        let c = build(base).unwrap();
        assert!(c.sticky_cookie_nocache && c.pools[0].config.sticky_cookie.is_none());
        let e = refused(&format!("{base}pool.api.sticky_cookie_nocache = on\n"));
        assert!(
            e.contains("proxy.conf:6: pool.api.sticky_cookie_nocache: is set, but sticky_cookie"),
            "{e}"
        );
        let own = base.replace("sticky_cookie =\n", "sticky_cookie = A\n");
        let c = build(&format!("{own}pool.api.sticky_cookie_nocache = off\n")).unwrap();
        assert!(c.sticky_cookie_nocache && !c.pools[0].config.sticky_cookie_nocache);
    }

    #[test]
    fn sticky_cookie_lifetimes_are_a_pool_s_own_and_go_with_its_cookie() {
        let base = "targets = 127.0.0.1:9001\nsticky_cookie = SRV\nsticky_cookie_max_idle = 30m\n\
                    pool.api = 127.0.0.1:9002\npool.api.sticky_cookie = API\n";
        let c = build(&format!("{base}pool.api.sticky_cookie_max_life = 8h\n")).unwrap();
        let (top, api) = (
            c.sticky_cookie_lifetimes,
            c.pools[0].config.sticky_cookie_lifetimes,
        );
        assert_eq!((top.max_idle, top.max_life), (Some(1800), None));
        assert_eq!((api.max_idle, api.max_life), (Some(1800), Some(28_800)));
        let c = build(&format!("{base}pool.api.sticky_cookie_max_idle = 0\n")).unwrap();
        assert_eq!(c.pools[0].config.sticky_cookie_lifetimes.max_idle, None);
        let without = base.replace("sticky_cookie = API", "sticky_cookie =");
        let e = refused(&format!("{without}pool.api.sticky_cookie_max_life = 1h\n"));
        assert!(
            e.contains("pool.api.sticky_cookie_max_life: is set, but sticky_cookie is not"),
            "{e}"
        );
    }
}
