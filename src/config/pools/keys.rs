//! Reading `pool.*` and `route.*` keys: the keys a pool may set, a
//! pool's name, and each key taken from the file as written, for the
//! pools and routes to be built from once every key is read.

use super::routes::{FILES, REDIRECT, RETURN};
use super::{PoolKey, RouteKey, DEFAULT_POOL, MAX_POOLS};
use crate::config::keys::find_key;
use crate::config::{nearest, ConfigError, FieldFamily, FieldKey, Loader, Origin, Setting};
use crate::routes::MAX_ROUTES;

/// The keys a pool may set for itself: how its backends are chosen,
/// checked, retried, waited for and spoken to over TLS, who may send it what (nginx's
/// `allow`, `deny` and `client_max_body_size` in a `location`), and
/// whether and for how long what it answers is cached (`proxy_cache`,
/// `proxy_cache_valid`, `proxy_ignore_headers`, `proxy_cache_bypass`),
/// what of it is compressed (`gzip` in a `location`), whether a request
/// that came over plain HTTP is sent to HTTPS (nginx's `return 301
/// https://...` in one `server` of several), and the file its requests
/// are logged to besides the main log, and in what format (`access_log`
/// in a `server`, with its `log_format`).
/// The others are the proxy's: among them the cache key's rules
/// (`cache_key_ignore_params`), which a purge applies without knowing
/// which pool a URL's answers came from.
pub const POOL_KEYS: &[&str] = &[
    "redirect_to_https",
    "allow_from",
    "deny_from",
    "secure_link",
    "secure_link_md5",
    "secure_link_secret",
    "auth_basic",
    "auth_basic_user_file",
    "auth_basic_except_from",
    "auth_jwt",
    "auth_jwt_key_file",
    "auth_jwt_key_request",
    "auth_jwt_key_cache",
    "auth_jwt_require",
    "auth_jwt_header",
    "auth_jwt_cookie",
    "auth_jwt_issuer",
    "auth_jwt_audience",
    "auth_jwt_leeway",
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
    "pass_trailers",
    "fastcgi_root",
    "fastcgi_index",
    "fastcgi_script",
    "fastcgi_split_path_info",
    "fastcgi_params",
    "fastcgi_keep_conn",
    "cache",
    "ttl",
    "cache_valid",
    "cache_unlabeled",
    "cache_ignore_headers",
    "cache_min_uses",
    "cache_bypass_cookies",
    "cache_vary",
    "ignore_client_cache_control",
    "stale_if_error",
    "stale_while_revalidate",
    "gzip",
    "gzip_types",
    "gzip_min_length",
    "gzip_comp_level",
    "brotli",
    "brotli_comp_level",
    "gunzip",
    "rate_limit",
    "rate_limit_burst",
    "rate_limit_delay",
    "rate_limit_dry_run",
    "rate_limit_key",
    "balance",
    "hash_on",
    "least_time_measure",
    "max_fails",
    "fail_timeout",
    "retries",
    "retry_timeout",
    "retry_on_status",
    "slow_start",
    "hash_balance_factor",
    "connect_timeout",
    "queue_timeout",
    "max_queue",
    "backend_timeout",
    "tunnel_timeout",
    "upstream_keepalive",
    "upstream_keepalive_requests",
    "upstream_keepalive_time",
    "backend_tls_verify",
    "backend_tls_ca",
    "backend_tls_protocols",
    "backend_tls_ciphers",
    "backend_tls_groups",
    "backend_tls_certificate",
    "sticky_cookie",
    "sticky_cookie_nocache",
    "sticky_cookie_attributes",
    "sticky_cookie_max_idle",
    "sticky_cookie_max_life",
    "cookie_flags",
    "cookie_domain",
    "cookie_path",
    "location_rewrite",
    "sub_filter",
    "sub_filter_types",
    "sub_filter_once",
    "sub_filter_last_modified",
    "health_check_path",
    "health_check_tcp",
    "health_check_udp",
    "health_check_send",
    "health_check_expect",
    "health_check_conversation",
    "health_check_host",
    "health_check_port",
    "health_check_expect_status",
    "health_check_expect_body",
    "health_check_disable_on_404",
    "health_check_method",
    "health_check_interval",
    "health_check_fast_interval",
    "health_check_down_interval",
    "health_check_timeout",
    "health_check_rise",
    "health_check_fall",
    "path_to_log",
    "log_format",
];

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
    pub(in crate::config) fn pool_key(
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
                format!(
                    "duplicate key `{}`{}",
                    shown(key),
                    on_line(&first.setting, &origin)
                ),
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
        let scope = format!("pool.{pool}.");
        let field = FieldKey::read(family, &scope, name, (value, origin))?;
        let mine = (self.pool_field_keys.iter()).filter(|(p, _)| p == pool);
        field.refused_beside(mine.map(|(_, k)| k), &scope)?;
        self.pool_field_keys.push((pool.to_string(), field));
        Ok(())
    }

    /// Takes `route.<spec> = value` from the file; read when the pools
    /// are known (see [`Loader::build_routes`]).
    pub(in crate::config) fn route_key(
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
        let fields = (self.pool_field_keys.iter())
            .map(|(pool, k)| (format!("pool.{pool}.{}", k.written()), &k.setting));
        let routes = (self.route_keys.iter()).map(|k| (format!("route.{}", k.spec), &k.setting));
        pools.chain(fields).chain(routes)
    }
}

/// ` (first set on line N)` for a setting read from a file, set again at
/// `again` (see [`first_set`](crate::config::first_set)).
pub(in crate::config) fn on_line(setting: &Setting, again: &Origin) -> String {
    crate::config::first_set(&setting.origin, again)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pool_key_is_a_key() {
        for key in POOL_KEYS {
            assert!(find_key(key).is_some(), "{key}");
        }
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
}
