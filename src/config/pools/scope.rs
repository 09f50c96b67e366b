//! Where a message about a backend setting points: the top level or a
//! pool ([`Scope`]), the key a pool set itself or the line of its
//! targets.

use super::PoolKey;
use crate::config::{ConfigError, Loader, Origin};

/// Where a check of backend settings says what it refused: the top-level
/// keys, or a pool's.
#[derive(Clone, Copy)]
pub(in crate::config) enum Scope<'a> {
    Top,
    Pool(&'a str),
}

impl Loader {
    /// Where `pool.<name>` was set.
    pub(super) fn pool_origin(&self, name: &str) -> Origin {
        (self.pool_keys.iter())
            .find(|k| k.pool == name && k.key.is_none())
            .map_or(Origin::Default, |k| k.setting.origin.clone())
    }

    /// `key: message` for a check of the backends' settings, placed where
    /// `scope` set `key`: for a pool, its own key, or else its targets
    /// (what it sets nothing else for takes the top-level value), naming
    /// the key it took from the top level.
    pub(in crate::config) fn refused_in(
        &self,
        scope: Scope<'_>,
        key: &str,
        message: String,
    ) -> ConfigError {
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
    pub(in crate::config) fn first_set_in<'k>(
        &self,
        scope: Scope<'_>,
        keys: &[&'k str],
    ) -> &'k str {
        let first = keys.first().copied().unwrap_or_default();
        (keys.iter().copied())
            .find(|key| self.sets(scope, key))
            .unwrap_or(first)
    }

    /// Whether `scope` sets `key` itself (the top level: always).
    pub(in crate::config) fn sets(&self, scope: Scope<'_>, key: &str) -> bool {
        match scope {
            Scope::Top => true,
            Scope::Pool(pool) => self.own_key(pool, key).is_some(),
        }
    }

    /// `pool.<pool>.<key>`, as read.
    pub(super) fn own_key(&self, pool: &str, key: &str) -> Option<&PoolKey> {
        (self.pool_keys.iter()).find(|k| k.pool == pool && k.key == Some(key))
    }
}
