//! The checks across keys, once each value has parsed: settings that
//! together mean nothing, or other than they say, are refused or warned
//! of; and the TLS settings those checks let through are made.

use super::listeners::{clashes, listeners_overlap, target_at};
use super::pools::Scope;
use super::{
    printable, Balance, Config, ConfigError, LeastTimeMeasure, Loader, LogFormat, Origin,
    PoolConfig,
};
use crate::cache::persist::MAX_SNAPSHOT_BODY;
use crate::realip::Cidr;
use std::path::Path;
use std::sync::Arc;

/// What `cache_vary` names that the backend never gets as the client sent
/// it, so that a key made of the client's value says nothing of the
/// answer: a field `request_header.*` or `request_id_header` writes (or
/// removes), any cookie while `request_header.Cookie` removes them, or the
/// `sticky_cookie`, which the proxy takes out before the cache sees the
/// request.
fn vary_unread(config: &Config) -> Option<String> {
    let vary = &config.cache_vary;
    let written = |name: &str| {
        config.request_headers.edits(name.as_bytes())
            || (config.request_id_header.as_deref()).is_some_and(|f| f.eq_ignore_ascii_case(name))
    };
    if let Some(field) = vary.fields().find(|f| written(f)) {
        return Some(format!(
            "names {field}, which the proxy writes or removes itself \
             (request_header.*, request_id_header): the backend never gets the client's"
        ));
    }
    if let Some(cookie) = vary.cookies().next().filter(|_| written("cookie")) {
        return Some(format!(
            "names the cookie {cookie}, but request_header.Cookie takes the cookies \
             out of what the backend gets"
        ));
    }
    let sticky = config.sticky_cookie.as_deref();
    if let Some(cookie) = vary.cookies().find(|c| Some(*c) == sticky) {
        return Some(format!(
            "names {cookie}, the sticky_cookie, which the proxy takes out of every \
             request before the cache sees it"
        ));
    }
    None
}

impl Loader {
    /// `key: message`, placed where the value of `key` came from: for
    /// checks that span keys, after each key has parsed.
    pub(super) fn refused(&self, key: &str, message: String) -> ConfigError {
        ConfigError::at(&self.settings[key].origin, format!("{key}: {message}"))
    }

    /// The cache's settings of `scope`, each pool's as the top level's
    /// (`top`, for a pool: what the top level was warned of already is
    /// not said again for each pool that takes it).
    pub(super) fn check_cache(
        &self,
        config: &Config,
        scope: Scope<'_>,
        top: Option<&Config>,
    ) -> Result<(), ConfigError> {
        let uses_cache = |c: &Config| c.cache_size > 0 && c.cache;
        if !uses_cache(config) {
            return Ok(());
        }
        // The proxy takes its own cookie out of a request before the cache
        // sees it: listed, it would never bypass anything.
        if let Some(sticky) = config
            .sticky_cookie
            .as_deref()
            .filter(|name| config.cache_bypass_cookies.lists(name))
        {
            return Err(self.refused_in(
                scope,
                self.first_set_in(scope, &["cache_bypass_cookies", "sticky_cookie"]),
                format!(
                    "lists {sticky}, the sticky_cookie, which the proxy takes out of every request \
                     before the cache sees it: it would bypass nothing"
                ),
            ));
        }
        if let Some(why) = vary_unread(config) {
            let key = self.first_set_in(scope, &["cache_vary", "sticky_cookie"]);
            return Err(self.refused_in(scope, key, why));
        }
        let key = self.first_set_in(
            scope,
            &[
                "cache_ignore_headers",
                "cache_valid",
                "cache_unlabeled",
                "cache",
            ],
        );
        let lifetimes = lifetimes_left(config).map_err(|m| self.refused_in(scope, key, m))?;
        let warned_at_top = |warning: &Option<String>, of: fn(&Config) -> Option<String>| {
            top.is_some_and(|top| uses_cache(top) && of(top) == *warning)
        };
        let ttl_caps = |c: &Config| c.cache_valid.capped_by(c.ttl);
        let warning = ttl_caps(config);
        if let Some(capped) = warning
            .as_ref()
            .filter(|_| !warned_at_top(&warning, ttl_caps))
        {
            let key = self.first_set_in(scope, &["cache_valid", "ttl"]);
            log::warn!("{}", self.refused_in(scope, key, capped.clone()));
        }
        if let Some(left) = lifetimes
            .as_ref()
            .filter(|_| !warned_at_top(&lifetimes, no_lifetime))
        {
            log::warn!("{}", self.refused_in(scope, key, left.clone()));
        }
        Ok(())
    }

    /// The cache's checks of `config`, read for a reload, with the
    /// `cache_size` that stays in force until a restart, `running`: a file
    /// that sets 0 leaves the cache on, with the rest of its settings,
    /// which its load did not check against a cache.
    pub fn check_cache_kept(&self, config: &Config, running: u64) -> Result<(), ConfigError> {
        if config.cache_size != 0 || running == 0 {
            return Ok(());
        }
        let kept = |c: &Config| Config {
            cache_size: running,
            ..c.clone()
        };
        let top = kept(config);
        self.check_cache(&top, Scope::Top, None)?;
        for pool in &config.pools {
            self.check_cache(&kept(&pool.config), Scope::Pool(&pool.name), Some(&top))?;
        }
        Ok(())
    }

    /// The cache's checks of the pool at `index` (0: `targets`, whose
    /// settings are `top`), whose `cache` is false, for a route's
    /// `cache=on`: its requests use the cache with the pool's rules, so
    /// those are checked as a pool's that uses it, with a cache (without
    /// one in the file, a reload may keep the running one, as
    /// [`Loader::check_cache_kept`] checks against).
    pub(super) fn check_cache_turned_on(
        &self,
        top: &Config,
        pools: &[PoolConfig],
        index: usize,
    ) -> Result<(), ConfigError> {
        let on = |c: &Config| Config {
            cache: true,
            cache_size: c.cache_size.max(1),
            ..c.clone()
        };
        match index.checked_sub(1).and_then(|i| pools.get(i)) {
            None => self.check_cache(&on(top), Scope::Top, None),
            Some(pool) => self.check_cache(&on(&pool.config), Scope::Pool(&pool.name), Some(top)),
        }
    }

    /// The TLS settings for the backends of `scope`, made (their files
    /// read) once a target of `config` has `tls`, or a file for them is
    /// named (so that `check` reads it), and shared by every pool with the
    /// same keys.
    pub(super) fn backend_tls_for(
        &self,
        config: &mut Config,
        scope: Scope<'_>,
    ) -> Result<(), ConfigError> {
        let keys = &config.backend_tls_keys;
        let named = keys.ca.is_some() || keys.certificate.is_some();
        if config.backend_tls.is_some()
            || (!named && config.written_targets().all(|t| t.tls.is_none()))
        {
            return Ok(());
        }
        let mut made = self.backend_tls.borrow_mut();
        if let Some((_, settings)) = made.iter().find(|(of, _)| of == keys) {
            config.backend_tls = Some(settings.clone());
            return Ok(());
        }
        if !keys.verify {
            let warn = |key, m: &str| log::warn!("{}", self.refused_in(scope, key, m.into()));
            warn(
                "backend_tls_verify",
                "is false: targets with tls are taken for whoever they say they are, and \
                 anyone on the way to them could read and change what they are sent",
            );
            if keys.ca.is_some() {
                warn("backend_tls_ca", "is not read: backend_tls_verify is false");
            }
        }
        let settings = crate::tls::backends::client_config(keys).map_err(|e| {
            let key = match e {
                crate::tls::trust::TrustError::Certificate(_) => "backend_tls_certificate",
                _ => "backend_tls_ca",
            };
            self.refused_in(scope, key, e.to_string())
        })?;
        made.push((keys.clone(), settings.clone()));
        config.backend_tls = Some(settings);
        Ok(())
    }

    /// `tls_port` and `tls_certificates` go together, and HTTPS has a port
    /// of its own; clients' certificates are asked for with authorities
    /// to check them against, and on `tls_port` alone. Makes the settings
    /// `tls_port` takes TLS with.
    pub(super) fn check_tls(&self, config: &mut Config) -> Result<(), ConfigError> {
        use crate::tls::VerifyClient;
        let verify = config.tls_verify_client;
        if verify == VerifyClient::Off {
            for (key, set) in [
                ("tls_client_ca", config.tls_client_ca.is_some()),
                ("tls_client_crl", config.tls_client_crl.is_some()),
            ] {
                if set {
                    return Err(self.refused(
                        key,
                        "is set, but tls_verify_client is off: no client is asked for a \
                         certificate"
                            .into(),
                    ));
                }
            }
        } else if config.tls_client_ca.is_none() {
            return Err(self.refused(
                "tls_verify_client",
                "is set, but tls_client_ca is empty: there is no authority to check clients' \
                 certificates against"
                    .into(),
            ));
        }
        let streams_take_tls = self.streams_take_tls();
        if config.acme().is_some() {
            if config.tls_port.is_none() && !streams_take_tls {
                return Err(self.refused(
                    "acme_domains",
                    "is set, but tls_port is not, nor a stream's `tls`: the certificate would \
                     serve nothing"
                        .into(),
                ));
            }
            let keys = &config.acme_keys;
            if keys.challenge == crate::acme::Challenge::TlsAlpn01 && config.tls_port.is_none() {
                return Err(self.refused(
                    "acme_challenge",
                    "tls-alpn-01 is answered on tls_port, which is not set".into(),
                ));
            }
            self.check_dns_01(keys)?;
            let (kid, mac_key) = (keys.eab_kid.is_some(), keys.eab_mac_key.is_some());
            if kid != mac_key {
                let (set, empty) = match kid {
                    true => ("acme_eab_kid", "acme_eab_hmac_key"),
                    false => ("acme_eab_hmac_key", "acme_eab_kid"),
                };
                return Err(self.refused(
                    set,
                    format!("is set, but {empty} is empty: the binding needs both"),
                ));
            }
            // The ACME client's certificate alone is served until some
            // are written.
            if config.tls_served.is_none() {
                let none = crate::tls::Certificates::load(&[]);
                config.tls_served = none.ok().map(Arc::new);
            }
        } else if let Some((key, _)) = acme_set_alone(config).into_iter().find(|(_, set)| *set) {
            return Err(self.refused(
                key,
                "is set, but acme_domains is empty: no certificate is ordered".into(),
            ));
        }
        let port = match config.tls_port {
            Some(port) => Some(port),
            // A stream that ends TLS takes these keys as `tls_port` does,
            // and says at its line when there is no certificate.
            None if streams_take_tls && config.tls_served.is_none() => return Ok(()),
            None if streams_take_tls => None,
            None => return self.tls_set_alone(config, verify),
        };
        let Some(served) = config.tls_served.clone() else {
            return Err(self.refused(
                "tls_port",
                "is set, but tls_certificates is empty: there is no certificate to serve".into(),
            ));
        };
        if let Some(port) = port.filter(|&port| port != 0) {
            if port == config.port {
                return Err(self.refused("tls_port", format!("{port} is also `port`")));
            }
            let admin_shares = listeners_overlap(config.admin_bind, config.bind);
            if config.admin_port == Some(port) && admin_shares {
                return Err(self.refused("tls_port", format!("{port} is also `admin_port`")));
            }
        }
        let client_auth = match (&config.tls_client_ca, verify) {
            (Some(ca), VerifyClient::Optional | VerifyClient::On) => {
                let crl = config.tls_client_crl.as_deref();
                let auth = crate::tls::ClientAuth::load(verify, ca, crl).map_err(|e| {
                    let of_crl = crl.is_some() && e.path() == crl;
                    let key = if of_crl {
                        "tls_client_crl"
                    } else {
                        "tls_client_ca"
                    };
                    self.refused(key, e.to_string())
                })?;
                Some(Arc::new(auth))
            }
            _ => None,
        };
        if config.tls_strict_sni {
            let nameless: Vec<&Path> = served.naming_no_host().collect();
            let why = |path: &Path| {
                format!(
                    "{} names no host (no DNS name among its subject alternative names): \
                     no client is given it",
                    path.display()
                )
            };
            if let (Some(first), true) =
                (nameless.first(), nameless.len() == served.files().count())
            {
                return Err(self.refused(
                    "tls_strict_sni",
                    format!(
                        "no certificate of tls_certificates names a host, so every client \
                             would be refused: {}",
                        why(first)
                    ),
                ));
            }
            for path in nameless {
                log::warn!("{}", self.refused("tls_strict_sni", why(path)));
            }
        }
        config.tls = Some(crate::tls::server_config(
            served,
            client_auth.as_deref(),
            config.tls_protocols,
            &config.tls_choice,
            config.tls_strict_sni,
            config.tls_session_tickets,
            config.acme_slot.clone(),
        ));
        // `tls-alpn-01`: agreed with a validation alone, as no browser
        // offers it.
        let proving = config.acme().map(|acme| acme.challenge);
        if let (Some(tls), Some(crate::acme::Challenge::TlsAlpn01)) = (&mut config.tls, proving) {
            let mut with = (**tls).clone();
            with.alpn_protocols.push(crate::acme::ACME_TLS.to_vec());
            *tls = Arc::new(with);
        }
        config.tls_client_auth = client_auth;
        Ok(())
    }

    /// With neither `tls_port` nor a stream that ends TLS, no `tls_*` key
    /// may be set: nothing would take TLS.
    fn tls_set_alone(
        &self,
        config: &Config,
        verify: crate::tls::VerifyClient,
    ) -> Result<(), ConfigError> {
        use crate::tls::VerifyClient;
        let set_alone = [
            ("tls_protocols", config.tls_protocols != Default::default()),
            ("tls_ciphers", config.tls_choice.suites_chosen()),
            ("tls_groups", config.tls_choice.groups_chosen()),
            (
                "tls_prefer_server_ciphers",
                config.tls_choice.prefer_own_order,
            ),
            ("tls_strict_sni", config.tls_strict_sni),
            ("tls_session_tickets", !config.tls_session_tickets),
            ("tls_certificates", config.tls_served.is_some()),
        ];
        if let Some((key, _)) = set_alone.iter().find(|(_, set)| *set) {
            return Err(self.refused(
                key,
                "is set, but tls_port is not, nor a stream's `tls`: nothing would take TLS".into(),
            ));
        }
        match verify {
            VerifyClient::Off => Ok(()),
            _ => Err(self.refused(
                "tls_verify_client",
                "is set, but tls_port is not: clients show certificates over TLS alone".into(),
            )),
        }
    }

    /// `auth_basic` and `auth_basic_user_file` go together: a realm with
    /// nobody to sign in would refuse every request, and a file without a
    /// realm would let every request through unchecked, which is worse
    /// than an error. A pool that turns the sign-in off
    /// (`pool.<name>.auth_basic = off`) may keep the top level's file.
    pub(super) fn check_auth(&self, config: &Config, scope: Scope<'_>) -> Result<(), ConfigError> {
        // Keys that mean something only with `auth_request`.
        let with_auth_request = [
            (
                "auth_request_headers",
                !config.auth_request_headers.is_empty(),
                "no answer gives these fields",
            ),
            (
                "auth_request_cache",
                !config.auth_request_cache.is_zero(),
                "there is no answer to keep",
            ),
            (
                "auth_request_redirect",
                config.auth_request_redirect.is_some(),
                "no service answers 401",
            ),
        ];
        for (key, set, why) in with_auth_request {
            if config.auth_request.is_none() && set && self.sets(scope, key) {
                let why = format!("is set, but auth_request is off: {why}");
                return Err(self.refused_in(scope, key, why));
            }
        }
        // The redirect's Location would go out beside the one set (two
        // places to go), or be the one a removal leaves; a pool may take
        // either from the top level.
        if config.auth_request_redirect.is_some() && config.response_headers.edits(b"location") {
            return Err(self.refused_in(
                scope,
                "auth_request_redirect",
                "is on, and response_header.Location is set too: the proxy writes Location on \
                 its redirects itself"
                    .into(),
            ));
        }
        self.check_jwt(config, scope)?;
        self.check_secure_link(config, scope)?;
        match (&config.auth_basic, &config.auth_users) {
            (Some(_), None) => Err(self.refused_in(
                scope,
                "auth_basic",
                "is on, but auth_basic_user_file is empty: nobody could sign in".into(),
            )),
            (None, Some(_)) if self.sets(scope, "auth_basic_user_file") => Err(self.refused_in(
                scope,
                "auth_basic_user_file",
                "is set, but auth_basic is off: every request would pass unchecked; set \
                 `auth_basic = <realm>` too"
                    .into(),
            )),
            (None, _)
                if !config.auth_basic_except_from.is_empty()
                    && self.sets(scope, "auth_basic_except_from") =>
            {
                Err(self.refused_in(
                    scope,
                    "auth_basic_except_from",
                    "is set, but auth_basic is off: nobody signs in to be spared it".into(),
                ))
            }
            (Some(_), _) if self.sets(scope, "auth_basic_except_from") => {
                self.warn_of_spared(config, scope);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Spared blocks that likely spare more than meant: every address,
    /// or a trusted proxy's own (its requests that name no client, a
    /// health check, are judged on its address).
    fn warn_of_spared(&self, config: &Config, scope: Scope<'_>) {
        let spared = &config.auth_basic_except_from;
        let why = if spared.iter().any(Cidr::is_everything) {
            "spares every client of an address family: nobody of it is asked to sign in".into()
        } else if let Some(proxy) = (config.real_ip_from.iter()).find(|proxy| spared.meets(proxy)) {
            format!(
                "shares addresses with real_ip_from ({proxy}): a request from that proxy \
                 that names no client (its own health check, say) is spared the sign-in"
            )
        } else {
            return;
        };
        log::warn!("{}", self.refused_in(scope, "auth_basic_except_from", why));
    }

    /// `auth_jwt` and its keys (`auth_jwt_key_file` or
    /// `auth_jwt_key_request`, one of them) go together, as `auth_basic`
    /// and its file do; the keys that refine it mean nothing without it;
    /// and it cannot be on beside `auth_basic`, which reads the same
    /// field.
    fn check_jwt(&self, config: &Config, scope: Scope<'_>) -> Result<(), ConfigError> {
        let refused = |key: &str, why: &str| Err(self.refused_in(scope, key, why.into()));
        if config.auth_jwt_keys.is_some() && config.auth_jwt_key_request.is_some() {
            return refused(
                "auth_jwt_key_request",
                "and auth_jwt_key_file are both set: the keys come from one of them",
            );
        }
        // Written as the default it had before it followed the answers
        // (`10m`, as the proxy.conf shipped then says): not refused where
        // it does nothing, so such a file still loads.
        let key_cache_set =
            (config.auth_jwt_key_cache).is_some_and(|c| c != crate::auth::jwt_keys::DEFAULT_CACHE);
        if config.auth_jwt_key_request.is_none()
            && config.auth_jwt.is_some()
            && key_cache_set
            && self.sets(scope, "auth_jwt_key_cache")
        {
            return refused(
                "auth_jwt_key_cache",
                "is set, but auth_jwt_key_request is empty: a key file is read at start-up and \
                 reload, never fetched",
            );
        }
        let source = match config.auth_jwt_key_request {
            Some(_) => "auth_jwt_key_request",
            None => "auth_jwt_key_file",
        };
        let has_keys = config.auth_jwt_keys.is_some() || config.auth_jwt_key_request.is_some();
        match (&config.auth_jwt, has_keys) {
            (Some(_), false) => refused(
                "auth_jwt",
                "is on, but auth_jwt_key_file and auth_jwt_key_request are empty: no token \
                 could be verified",
            ),
            (None, true) if self.sets(scope, source) => refused(
                source,
                "is set, but auth_jwt is off: every request would pass unchecked; set \
                 `auth_jwt = <realm>` too",
            ),
            (Some(_), _) if config.auth_basic.is_some() && config.auth_jwt_header.is_none() => {
                refused(
                    "auth_jwt",
                    "and auth_basic are both on: both read the one Authorization field (a \
                     token in another field, auth_jwt_header, leaves it to auth_basic)",
                )
            }
            (None, _) => {
                let refining = [
                    ("auth_jwt_cookie", config.auth_jwt_cookie.is_some()),
                    ("auth_jwt_header", config.auth_jwt_header.is_some()),
                    ("auth_jwt_issuer", config.auth_jwt_issuer.is_some()),
                    ("auth_jwt_audience", config.auth_jwt_audience.is_some()),
                    ("auth_jwt_leeway", !config.auth_jwt_leeway.is_zero()),
                    ("auth_jwt_key_cache", key_cache_set),
                    ("auth_jwt_require", config.auth_jwt_require.is_some()),
                ];
                match (refining.iter()).find(|(key, set)| *set && self.sets(scope, key)) {
                    Some((key, _)) => {
                        refused(key, "is set, but auth_jwt is off: no token is asked for")
                    }
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// `secure_link` and `secure_link_md5` go together: a hash read and
    /// nothing to compare it with, or the other way round, is a mistake;
    /// `secure_link_secret` is another way of signing links, not both.
    fn check_secure_link(&self, config: &Config, scope: Scope<'_>) -> Result<(), ConfigError> {
        let refused = |key: &str, why: &str| Err(self.refused_in(scope, key, why.into()));
        if config.secure_link.is_some() && config.secure_link_secret.is_some() {
            let key = match self.sets(scope, "secure_link_secret") {
                true => "secure_link_secret",
                false => "secure_link",
            };
            return refused(
                key,
                "goes with one of secure_link and secure_link_secret: a link is signed one way",
            );
        }
        match (&config.secure_link, &config.secure_link_md5) {
            (Some(_), None) => refused(
                "secure_link",
                "is on, but secure_link_md5 is empty: no hash to compare",
            ),
            (None, Some(_)) if self.sets(scope, "secure_link_md5") => refused(
                "secure_link_md5",
                "is set, but secure_link is off: no link is checked",
            ),
            _ => Ok(()),
        }
    }

    /// `redirect_to_https_except` means nothing without the redirect, at
    /// the top level or in a pool (once the pools are built). The
    /// redirect without `real_ip_from` or `proxy_protocol` is warned about,
    /// not refused: no request can then be `https`, and every one is
    /// redirected, which behind a TLS terminator sends browsers round in a
    /// loop; but a listener whose only work is to redirect (the port 80
    /// beside a terminator that sends its HTTPS elsewhere, with the ACME
    /// challenges in `redirect_to_https_except` going to a backend) is
    /// what nginx's `server { listen 80; return 301 ...; }` is for.
    pub(super) fn check_https_redirect(&self, config: &Config) -> Result<(), ConfigError> {
        let pool = (config.pools.iter()).find(|p| p.config.redirect_to_https);
        if !config.redirect_to_https && pool.is_none() {
            if !config.redirect_to_https_except.is_empty() {
                return Err(self.refused(
                    "redirect_to_https_except",
                    "is set, but redirect_to_https is not, nor a pool's: there is no redirect \
                     to except from"
                        .into(),
                ));
            }
            return Ok(());
        }
        if config.real_ip_from.is_empty() && !config.proxy_protocol && config.tls_port.is_none() {
            let scope = match pool.filter(|_| !config.redirect_to_https) {
                Some(pool) => Scope::Pool(&pool.name),
                None => Scope::Top,
            };
            let why = format!(
                "neither real_ip_from, proxy_protocol nor tls_port is set, so no request can be \
                 https: every request{} is redirected, and behind a TLS terminator the \
                 redirected ones come back to be redirected again, in a loop (list the \
                 terminator in real_ip_from: its X-Forwarded-Proto says https)",
                match config.redirect_to_https_except.is_empty() {
                    true => "",
                    false => " but those redirect_to_https_except lists",
                }
            );
            log::warn!("{}", self.refused_in(scope, "redirect_to_https", why));
        }
        Ok(())
    }

    /// Bodies written to disk have a bound, `max_body_size`: without one,
    /// one upload could fill the disk.
    pub(super) fn check_request_buffer_dir(
        &self,
        config: &Config,
        scope: Scope<'_>,
    ) -> Result<(), ConfigError> {
        if config.request_buffer_dir.is_none() || config.max_body_size > 0 {
            return Ok(());
        }
        Err(match scope {
            Scope::Top => self.refused(
                "request_buffer_dir",
                "writes request bodies to disk, and max_body_size is 0 (no limit): one upload \
                 could fill it; set max_body_size, the largest body written there (e.g. 100MiB)"
                    .into(),
            ),
            Scope::Pool(_) => self.refused_in(
                scope,
                "max_body_size",
                "is 0 (no limit), and request_buffer_dir writes request bodies to disk: one \
                 upload could fill it; give the pool a limit"
                    .into(),
            ),
        })
    }

    /// Each of `listen`'s addresses can be bound beside the proxy's other
    /// listeners and `listen`'s others (refused here, not as a bind error
    /// once `check` has said the configuration is fine).
    pub(super) fn check_listen(&self, config: &Config) -> Result<(), ConfigError> {
        let others = [
            Some(("port", config.listen_addr())),
            config.tls_addr().map(|a| ("tls_port", a)),
            config.admin_addr().map(|a| ("admin_port", a)),
        ];
        for (i, &addr) in config.listen.iter().enumerate() {
            let earlier = config.listen[..i].iter().map(|&a| ("listen", a));
            if let Some((key, at)) = (others.into_iter().flatten())
                .chain(earlier)
                .find(|&(_, at)| clashes(addr, at))
            {
                return Err(self.refused(
                    "listen",
                    format!("{addr} takes the connections of {at} (`{key}`)"),
                ));
            }
        }
        Ok(())
    }

    /// The checks of what one pool of backends is given: the top-level
    /// keys' (`scope`), or a `pool.<name>`'s.
    pub(super) fn check_backends(
        &self,
        config: &Config,
        scope: Scope<'_>,
    ) -> Result<(), ConfigError> {
        // A target that is this proxy's own listener: the first request
        // would be forwarded to itself, again and again, until every
        // connection slot is taken.
        let own = (config.http_addrs().into_iter()).filter(|at| at.port() != 0);
        if let Some((t, at)) = own
            .into_iter()
            .find_map(|at| target_at(at, &config.targets).map(|t| (t, at)))
        {
            return Err(self.refused_in(
                scope,
                "targets",
                format!(
                    "{} is this proxy's own address ({at}): requests would loop",
                    t.name
                ),
            ));
        }
        // A probe is a GET or a connect alone; with both asked for, which
        // one was meant cannot be told.
        if let Some(path) = config
            .health_check_path
            .as_ref()
            .filter(|_| config.health_check_tcp)
        {
            // Where the path came from, when not from the file line the
            // message points at (an environment variable, a flag).
            let from = match (scope, &self.settings["health_check_path"].origin) {
                (Scope::Top, origin @ (Origin::Env(_) | Origin::Flag(_))) => {
                    format!(", from {origin}")
                }
                _ => String::new(),
            };
            return Err(self.refused_in(
                scope,
                "health_check_tcp",
                format!(
                    "is true, but health_check_path is set too ({}{from}): a target is probed \
                     one way; keep health_check_path for GET probes (which connect first), or \
                     empty it to probe by connecting alone",
                    printable(path)
                ),
            ));
        }
        // What a probe sends and expects is for connects and datagrams:
        // a GET has its own (health_check_expect_body).
        if !(config.health_check_tcp || config.health_check_udp) {
            let set = [
                ("health_check_send", config.health_check_send.is_some()),
                ("health_check_expect", config.health_check_expect.is_some()),
            ];
            for (key, _) in set.into_iter().filter(|(_, set)| *set) {
                if self.sets(scope, key) {
                    let why = "is set, but no probe of these targets connects alone or sends a \
                               datagram (health_check_tcp, health_check_udp): it is not read";
                    log::warn!("{}", self.refused_in(scope, key, why.into()));
                }
            }
        }
        // A conversation in steps is the one exchange's keys made longer:
        // with them in one scope, which was meant cannot be told. (A pool
        // has the one it sets, see `build_pool`, but for a datagram's.)
        if config.health_check_conversation.is_some() {
            let beside = [
                ("health_check_send", config.health_check_send.is_some()),
                ("health_check_expect", config.health_check_expect.is_some()),
            ];
            let mut beside =
                (beside.into_iter()).filter(|(key, set)| *set && self.sets(scope, key));
            if let Some((other, _)) = beside.next() {
                return Err(self.refused_in(
                    scope,
                    "health_check_conversation",
                    format!(
                        "is set, and {other} too: a probe converses one way; write the \
                         exchange as steps of the conversation alone (`send <text> | expect \
                         <text>`), or empty it"
                    ),
                ));
            }
            // Datagrams and GETs do not converse (a pool's own
            // health_check_udp does not read the top level's steps).
            if !config.health_check_tcp && self.sets(scope, "health_check_conversation") {
                let why = "is set, but no probe of these targets connects alone \
                           (health_check_tcp): it is not read";
                log::warn!(
                    "{}",
                    self.refused_in(scope, "health_check_conversation", why.into())
                );
            }
        }
        // A datagram is a third way, and a Unix socket takes none from
        // here.
        if config.health_check_udp {
            let other = match (&config.health_check_path, config.health_check_tcp) {
                (Some(path), _) => Some(format!(
                    "health_check_path is set too ({})",
                    printable(path)
                )),
                (None, true) => Some("health_check_tcp is true too".to_string()),
                (None, false) => None,
            };
            if let Some(other) = other {
                return Err(self.refused_in(
                    scope,
                    "health_check_udp",
                    format!(
                        "is true, but {other}: a target is probed one way; keep the one its \
                         service answers"
                    ),
                ));
            }
            if let Some(t) = config.targets.iter().find(|t| t.addr.tcp().is_none()) {
                return Err(self.refused_in(
                    scope,
                    "health_check_udp",
                    format!(
                        "is true, but {} is a Unix socket, which takes no datagram from here: \
                         put it in a pool of its own",
                        t.name
                    ),
                ));
            }
            if config.health_check_send.is_none() {
                return Err(self.refused_in(
                    scope,
                    "health_check_udp",
                    "is true, but health_check_send is empty: a probe's datagram is what it \
                     sends (for DNS, a question)"
                        .into(),
                ));
            }
        }
        // A FastCGI server is told where the script is, under the root.
        if let Some(t) = config.written_targets().find(|t| t.fastcgi) {
            if config.fastcgi.root.is_empty() {
                return Err(self.refused_in(
                    scope,
                    "targets",
                    format!(
                        "{} is a FastCGI server, and fastcgi_root is empty: set the directory \
                         its scripts are in, as it sees them (fastcgi_root = /var/www/html)",
                        t.as_written()
                    ),
                ));
            }
            // PHP-FPM holds a child for each kept connection, idle or not.
            let unlimited = config
                .targets
                .iter()
                .find(|t| t.fastcgi && t.max_conns.is_none());
            if let Some(t) = unlimited.filter(|_| config.fastcgi.keep_conn) {
                let why = format!(
                    "is true, and {} has no max_conns: PHP-FPM gives each kept connection a \
                     child of its own, and a connection past its pm.max_children waits \
                     unanswered, a health probe's too; give it max_conns=N below \
                     pm.max_children",
                    t.as_written()
                );
                log::warn!("{}", self.refused_in(scope, "fastcgi_keep_conn", why));
            }
        }
        // A socket's path has no port to probe instead.
        if let Some(port) = config.health_check_port {
            if let Some(t) = config.targets.iter().find(|t| t.addr.tcp().is_none()) {
                return Err(self.refused_in(
                    scope,
                    "health_check_port",
                    format!(
                        "is {port}, but {} is a Unix socket, which has no port: put it in a \
                         pool of its own without health_check_port",
                        t.name
                    ),
                ));
            }
        }
        // The answer to a HEAD has no body to hold the text.
        if config.health_check_method == "HEAD" && config.health_check_expect_body.is_some() {
            return Err(self.refused_in(
                scope,
                "health_check_method",
                "is HEAD, but health_check_expect_body is set: the answer to a HEAD has no \
                 body; probe with GET to read it"
                    .into(),
            ));
        }
        // A probe inverso itself would answer 414.
        if let Some(path) = config
            .health_check_path
            .as_ref()
            .filter(|p| p.len() > config.max_uri_length)
        {
            return Err(self.refused_in(
                scope,
                "health_check_path",
                format!(
                    "{} bytes, longer than max_uri_length ({})",
                    path.len(),
                    config.max_uri_length
                ),
            ));
        }
        if config.written_targets().all(|t| t.backup) {
            return Err(self.refused_in(
                scope,
                "targets",
                "every target is a backup: at least one must serve before the backups do".into(),
            ));
        }
        // Either alone means nothing: `hash` would have nothing to hash,
        // and another algorithm would not read the setting.
        match (config.balance, &config.hash_on) {
            (Balance::Hash, None) => {
                return Err(self.refused_in(
                    scope,
                    "balance",
                    "hash needs hash_on, what to hash: `header:<Name>`, `cookie:<name>` or \
                     `query:<name>` (e.g. `hash_on = header:X-Tenant`)"
                        .into(),
                ))
            }
            (balance, Some(on)) if balance != Balance::Hash => {
                return Err(self.refused_in(
                    scope,
                    "hash_on",
                    format!(
                        "is set ({on}), but balance = {}: only balance = hash reads it",
                        balance.name()
                    ),
                ))
            }
            _ => {}
        }
        if config.least_time_measure == LeastTimeMeasure::LastByte
            && config.balance != Balance::LeastTime
        {
            return Err(self.refused_in(
                scope,
                "least_time_measure",
                format!(
                    "is last_byte, but balance = {}: only balance = least_time reads it",
                    config.balance.name()
                ),
            ));
        }
        // Plain round robin is one atomic increment and has no notion of
        // weight: a weight there would be silently ignored. Not so an SRV
        // record's, which no one wrote here (Kubernetes gives every
        // record one): it is left unread, as the README says.
        if config.balance == Balance::RoundRobin {
            if let Some(t) = config
                .written_targets()
                .find(|t| t.weight != 1 && !t.record_weight)
            {
                return Err(self.refused_in(
                    scope,
                    "targets",
                    format!(
                        "{} has weight={}, but balance = round_robin ignores weights (use weighted_round_robin, least_conn, least_time, ip_hash, uri_hash, hash or random_two)",
                        t.as_written(), t.weight
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// With Cache-Control unread, a response is stored only for a lifetime
/// given to this cache: by `cache_valid` or `cache_unlabeled`, or by a
/// field still read (`Expires`, `X-Accel-Expires`, `Surrogate-Control`,
/// a targeted field). Without the first two, the setting is most likely
/// nginx's micro-caching recipe without its `proxy_cache_valid`: a
/// warning (`Ok(Some)`), since nginx users also ignore Cache-Control to
/// let X-Accel-Expires alone decide. With none at all, nothing could
/// ever be stored: refused (`Err`).
fn lifetimes_left(config: &Config) -> Result<Option<String>, String> {
    let ignored = &config.cache_ignore_headers;
    if !ignored.ignores("cache-control") || !config.cache_valid.is_empty() || config.cache_unlabeled
    {
        return Ok(None);
    }
    let targeting = config.cache_settings().targeting;
    let mut read: Vec<&str> = Vec::new();
    if !ignored.ignores("expires") {
        read.push("Expires");
    }
    if targeting.x_accel_expires {
        read.push("X-Accel-Expires");
    }
    if targeting.surrogate_id.is_some() {
        read.push("Surrogate-Control");
    }
    read.extend(targeting.fields.iter().map(|name| &**name));
    let recipe = "for micro-caching, set cache_valid (e.g. `cache_valid = 200 1s`)";
    if read.is_empty() {
        return Err(format!(
            "Cache-Control is not read, nor any field that could give a response a lifetime \
             instead, and neither cache_valid nor cache_unlabeled gives one: nothing would ever \
             be stored ({recipe}, or `cache = false` where nothing should be)"
        ));
    }
    Ok(Some(format!(
        "Cache-Control is not read, and neither cache_valid nor cache_unlabeled gives a \
         lifetime: only responses given one by {} are stored ({recipe})",
        read.join(", ")
    )))
}

/// [`lifetimes_left`]'s warning, if any.
fn no_lifetime(config: &Config) -> Option<String> {
    lifetimes_left(config).ok().flatten()
}

impl Config {
    /// Why `state_file` may not be the file it is: another writer's, which
    /// rewrites it whole (the snapshot's, a log's), so that each would
    /// overwrite the other. Checked again at a reload, with the
    /// `path_to_persistence` kept until a restart.
    pub fn state_file_shared(&self) -> Option<String> {
        let state_file = self.state_file.as_deref()?;
        let snapshot =
            (self.path_to_persistence.as_deref()).map(|p| ("path_to_persistence".to_string(), p));
        let logs = self.log_files().map(|(pool, p, _)| (log_key(pool), p));
        let (key, _) =
            (snapshot.into_iter().chain(logs)).find(|(_, p)| same_file(p, state_file))?;
        Some(format!(
            "{} is also {key}: each needs a file of its own",
            state_file.display()
        ))
    }

    /// The access log's files: `path_to_log` (pool `None`), then each
    /// pool's own; each with the format of its lines.
    fn log_files(&self) -> impl Iterator<Item = (Option<&str>, &Path, &LogFormat)> {
        let main = (self.path_to_log.as_deref()).map(|p| (None, p, &self.log_format));
        let pools = (self.pools.iter()).filter_map(|p| {
            let format = p.log_format.as_ref().unwrap_or(&self.log_format);
            Some((Some(&*p.name), p.path_to_log.as_deref()?, format))
        });
        main.into_iter().chain(pools)
    }

    /// Why a log file may not be the file it is, and whose it is (`None`:
    /// `path_to_log`, else the pool's): the snapshot's, which every
    /// snapshot is renamed over (the log's lines then go on into a file no
    /// longer on disk), and which a reopen would append lines to; for a
    /// pool's, `path_to_log`'s too, which has its lines already, and
    /// another pool's in another format (a reader of the file could not
    /// tell which lines to parse how). Checked again at a reload, with the
    /// `path_to_persistence` and `cache_size` kept until a restart.
    pub fn log_file_refused(&self) -> Option<(Option<&str>, String)> {
        let snapshot = (self.path_to_persistence.as_deref()).filter(|_| self.cache_size > 0);
        let main = self.path_to_log.as_deref();
        let files: Vec<_> = self.log_files().collect();
        files
            .iter()
            .enumerate()
            .find_map(|(i, &(pool, log, format))| {
                let why = if snapshot.is_some_and(|s| same_file(log, s)) {
                    "is also path_to_persistence: each needs a file of its own".to_string()
                } else if pool.is_some() && main.is_some_and(|m| same_file(log, m)) {
                    "is also path_to_log, which has every line already: each would be written twice"
                        .to_string()
                } else {
                    // An earlier pool's file that is this one, in another format.
                    let (other, ..) = (files.iter().take(i)).find(|(other, o, f)| {
                        pool.is_some() && other.is_some() && same_file(log, o) && *f != format
                    })?;
                    format!(
                        "is also {}, in another log_format: a file holds lines of one format, so \
                         that what reads it can parse each (give both pools the same \
                         log_format, or each a file of its own)",
                        log_key(*other)
                    )
                };
                Some((pool, format!("{} {why}", log.display())))
            })
    }

    /// Why an entry the cache may store would be left out of its snapshot:
    /// a record's lengths are 32-bit, so a body of about 4 GiB or more is
    /// answered from memory but gone after a restart.
    pub fn snapshot_leaves_out(&self) -> Option<String> {
        (self.path_to_persistence.as_ref()).filter(|_| self.cache_size > 0)?;
        let max = self.effective_max_object_size();
        (max > MAX_SNAPSHOT_BODY).then(|| {
            format!(
                "{max} bytes: a body over {MAX_SNAPSHOT_BODY} bytes (4 GiB less room for its key and head) is stored in memory \
                 but not in the snapshot (path_to_persistence), and is gone after a restart"
            )
        })
    }

    /// The keys set without the key they go with (a burst or a key
    /// without a rate, `sticky_cookie_nocache`, `_attributes` or a
    /// lifetime without a cookie), and what is wrong with each.
    pub(super) fn set_in_vain(&self) -> Vec<(&'static str, &'static str)> {
        let mut wrong = Vec::new();
        if self.sticky_cookie_nocache && self.sticky_cookie.is_none() {
            wrong.push((
                "sticky_cookie_nocache",
                "is set, but sticky_cookie is not: without the cookie no response is marked",
            ));
        }
        if !self.sticky_cookie_attributes.is_empty() && self.sticky_cookie.is_none() {
            wrong.push((
                "sticky_cookie_attributes",
                "is set, but sticky_cookie is not: there is no cookie to give them",
            ));
        }
        let lifetimes = self.sticky_cookie_lifetimes;
        if lifetimes.max_idle.is_some() && self.sticky_cookie.is_none() {
            wrong.push((
                "sticky_cookie_max_idle",
                "is set, but sticky_cookie is not: there is no cookie to expire",
            ));
        }
        if lifetimes.max_life.is_some() && self.sticky_cookie.is_none() {
            wrong.push((
                "sticky_cookie_max_life",
                "is set, but sticky_cookie is not: there is no cookie to expire",
            ));
        }
        if !self.error_limit_statuses.is_empty() && self.error_limit.is_none() {
            wrong.push((
                "error_limit_statuses",
                "is set, but error_limit is not: without a rate nothing is counted",
            ));
        }
        if !self.error_limit_except_from.is_empty() && self.error_limit.is_none() {
            wrong.push((
                "error_limit_except_from",
                "is set, but error_limit is not: without a rate no one is refused",
            ));
        }
        if self.rate_limit.is_some() {
            return wrong;
        }
        if self.rate_limit_burst.is_some() {
            wrong.push((
                "rate_limit_burst",
                "is set, but rate_limit is not: without a rate there is no burst",
            ));
        }
        if self.rate_limit_dry_run {
            wrong.push((
                "rate_limit_dry_run",
                "is set, but rate_limit is not: without a rate there is nothing to try",
            ));
        }
        if self.rate_limit_delay.is_some() {
            wrong.push((
                "rate_limit_delay",
                "is set, but rate_limit is not: without a rate nothing is delayed",
            ));
        }
        if self.rate_limit_key.is_some() {
            wrong.push((
                "rate_limit_key",
                "is set, but rate_limit is not: without a rate nothing is limited",
            ));
        }
        wrong
    }

    /// Why `rate_limit_key` cannot be read where the limit is counted: it
    /// names what the proxy itself replaces or takes out of a request
    /// before that, so that a client's own value would be counted.
    pub(super) fn rate_limit_key_unread(&self) -> Option<String> {
        use crate::http::forward::is_proxy_owned;
        use crate::http::headers::read_alike;
        use crate::upstream::hash_on::HashOn;
        self.rate_limit?;
        let counted = "after the limit is counted: the client's own would be counted (any value \
                       it likes), not what the backend gets";
        match self.rate_limit_key.as_ref()? {
            HashOn::Header(name) => {
                let dashed = name.replace('_', "-");
                let edited = |n: &str| self.request_headers.edits(n.as_bytes());
                // Fields one value is spelled many ways in (a scheme in
                // any case, spaces, padding; a host in any case): each
                // spelling would be a bucket.
                let spelled_freely = ["authorization", "proxy-authorization", "host", "cookie"];
                if spelled_freely
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(&dashed))
                {
                    return Some(format!(
                        "names {name}, whose one value a client may spell in many ways (each \
                         a bucket of its own); key on a field of the application's own \
                         (header:X-Api-Key) or a cookie (cookie:<name>)"
                    ));
                }
                let why = if name.contains('_') && !self.underscores_in_headers {
                    "is dropped from every request (underscores_in_headers is off)"
                } else if is_proxy_owned(&dashed) {
                    "is one the proxy writes itself, in place of the client's,"
                } else if edited(name) || edited(&dashed) {
                    "is set or removed by request_header,"
                } else if (self.auth_request_headers.iter())
                    .any(|f| read_alike(f.as_bytes(), name.as_bytes()))
                {
                    "is taken from the sign-in service by auth_request_headers (or removed),"
                } else {
                    return None;
                };
                Some(format!("names {name}, which {why} {counted}"))
            }
            HashOn::Cookie(name) if self.sticky_cookie.as_deref() == Some(&**name) => {
                Some(format!(
                "names {name}, the sticky_cookie, which is taken out of a request {counted}, and \
                 says which target serves a client, not who it is"
            ))
            }
            HashOn::Cookie(name) if self.request_headers.edits(b"cookie") => Some(format!(
                "names the cookie {name}, but request_header.Cookie sets or removes the \
                 client's cookies {counted}"
            )),
            _ => None,
        }
    }
}

/// The key of the log file `pool` names (`None`: `path_to_log`).
pub(crate) fn log_key(pool: Option<&str>) -> String {
    match pool {
        Some(pool) => format!("pool.{pool}.path_to_log"),
        None => "path_to_log".to_string(),
    }
}

/// Whether two paths name one file: as written, once relative ones are
/// taken from the working directory (`./cache.bin` is `cache.bin`), or as
/// the system resolves them (links, `..`): the file, or for one not made
/// yet (a first start), its directory, with its name.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    let absolute = |p: &Path| match std::env::current_dir() {
        Ok(cwd) => cwd.join(p),
        Err(_) => p.to_path_buf(),
    };
    let resolved = |p: &Path| {
        std::fs::canonicalize(p).ok().or_else(|| {
            let name = p.file_name()?;
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            Some(
                std::fs::canonicalize(dir.unwrap_or(Path::new(".")))
                    .ok()?
                    .join(name),
            )
        })
    };
    absolute(a).components().eq(absolute(b).components())
        || matches!((resolved(a), resolved(b)), (Some(a), Some(b)) if a == b)
}

impl Loader {
    /// With `dns-01`: the three keys that say where records go, and each
    /// name in the zone; without it: none of them, and no wildcard.
    fn check_dns_01(&self, keys: &crate::acme::AcmeSettings) -> Result<(), ConfigError> {
        let names = keys.certificates.iter().flatten();
        if keys.challenge != crate::acme::Challenge::Dns01 {
            let set = dns_keys_set(keys).into_iter().find(|(_, set)| *set);
            if let Some((key, _)) = set {
                return Err(self.refused(key, "is set, but acme_challenge is not dns-01".into()));
            }
            if let Some(wildcard) = names.clone().find(|n| n.starts_with("*.")) {
                return Err(self.refused(
                    "acme_domains",
                    format!("`{wildcard}`: a wildcard is proven by dns-01 alone (acme_challenge)"),
                ));
            }
            return Ok(());
        }
        let unset = dns_keys_set(keys)
            .into_iter()
            .take(3)
            .find(|(_, set)| !*set);
        if let Some((key, _)) = unset {
            return Err(self.refused(
                "acme_challenge",
                format!("dns-01 writes its records with a DNS update, but {key} is empty"),
            ));
        }
        let zones = &keys.dns_zones;
        let outside = (names.map(|n| n.trim_start_matches("*."))).find(|name| {
            !zones
                .iter()
                .any(|zone| crate::acme::dns_update::in_zone(name, zone))
        });
        if let Some(name) = outside {
            return Err(self.refused(
                "acme_domains",
                format!(
                    "`{name}` is in none of acme_dns_zone ({}), where its record would be written",
                    zones.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// The `acme_dns_*` keys, and whether each is set (by value, as
/// [`acme_set_alone`]).
fn dns_keys_set(keys: &crate::acme::AcmeSettings) -> [(&'static str, bool); 4] {
    [
        ("acme_dns_server", keys.dns_server.is_some()),
        ("acme_dns_zone", !keys.dns_zones.is_empty()),
        ("acme_dns_key", keys.dns_key.is_some()),
        (
            "acme_dns_wait",
            keys.dns_wait != std::time::Duration::from_secs(30),
        ),
    ]
}

/// The `acme_*` keys other than `acme_domains`, and whether each is set
/// to other than its default.
fn acme_set_alone(config: &Config) -> Vec<(&'static str, bool)> {
    let keys = &config.acme_keys;
    let mut set = vec![
        (
            "acme_directory",
            keys.directory != crate::acme::LETS_ENCRYPT,
        ),
        ("acme_email", keys.email.is_some()),
        ("acme_state_dir", keys.state_dir != Path::new("acme")),
        ("acme_directory_ca", keys.directory_ca.is_some()),
        ("acme_eab_kid", keys.eab_kid.is_some()),
        ("acme_eab_hmac_key", keys.eab_mac_key.is_some()),
        ("acme_challenge", keys.challenge != Default::default()),
    ];
    set.extend(dns_keys_set(keys));
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{build, certificate};
    use std::path::PathBuf;

    #[test]
    fn a_max_object_size_past_what_a_snapshot_record_holds_is_warned_of() {
        let with = |sizes: &str| build(&format!("targets = 127.0.0.1:1\n{sizes}")).unwrap();
        let big = with("cache_size = 8GiB\nmax_object_size = 5GiB\n");
        let why = big
            .snapshot_leaves_out()
            .expect("a 5 GiB body fits no record");
        assert!(why.contains("not in the snapshot"), "{why}");
        // An eighth of 40 GiB, by default.
        assert!(with("cache_size = 40GiB\n").snapshot_leaves_out().is_some());
        for fits in [
            "cache_size = 8GiB\nmax_object_size = 4000MiB\n",
            "cache_size = 8GiB\nmax_object_size = 5GiB\npath_to_persistence =\n",
        ] {
            assert_eq!(with(fits).snapshot_leaves_out(), None, "{fits:?}");
        }
    }

    #[test]
    fn a_target_that_is_the_proxy_itself_is_refused() {
        for text in [
            "port = 9000\ntargets = 127.0.0.1:9000\n",
            "port = 9000\nbind = 127.0.0.2\ntargets = 127.0.0.2:9000\n",
            "port = 9000\ntargets = 127.0.0.1:9001, localhost:9000\n",
        ] {
            let e = build(text).unwrap_err();
            assert!(e.message.contains("own address"), "{text:?}: {e}");
        }
        for text in [
            "port = 9000\nbind = 127.0.0.1\ntargets = 0.0.0.0:9000\n",
            "port = 9000\nbind = 127.0.0.1\ntargets = [::ffff:127.0.0.1]:9000\n",
            // `::` takes IPv4 too.
            "port = 9000\nbind = ::\ntargets = 127.0.0.1:9000\n",
            "port = 9000\nbind = ::\ntargets = [::1]:9000\n",
        ] {
            assert!(build(text).is_err(), "{text:?}");
        }
        // Another address on the same port is another server, and so is
        // one of the other family.
        for text in [
            "port = 9000\nbind = 127.0.0.2\ntargets = 127.0.0.1:9000\n",
            "port = 9000\ntargets = [::1]:9000\n",
            "port = 9000\ntargets = [::]:9000\n",
            "port = 9000\nbind = ::1\ntargets = 0.0.0.0:9000\n",
        ] {
            assert!(build(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn request_buffer_dir_is_a_directory_bodies_can_be_written_to_with_a_limit_on_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display();
        let c = build(&format!(
            "targets = 127.0.0.1:1\nmax_body_size = 10MiB\nrequest_buffer_dir = {path}\n"
        ))
        .unwrap();
        assert_eq!(c.request_buffer_dir.as_deref(), Some(dir.path()));
        assert_eq!(
            build("targets = 127.0.0.1:1\n").unwrap().request_buffer_dir,
            None
        );
        let e = build(&format!(
            "targets = 127.0.0.1:1\nrequest_buffer_dir = {path}/missing\nmax_body_size = 1MiB\n"
        ))
        .unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        assert_eq!(
            e.message,
            format!(
                "request_buffer_dir: {path}/missing: cannot write a request body there: no such \
                 directory"
            )
        );
        // Without a limit, one upload could fill the disk.
        let e = build(&format!(
            "targets = 127.0.0.1:1\n\nrequest_buffer_dir = {path}\n"
        ))
        .unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.contains("max_body_size is 0 (no limit)"), "{e}");
        let e = build(&format!(
            "targets = 127.0.0.1:1\nmax_body_size = 1MiB\nrequest_buffer_dir = {path}\n\
             pool.up = 127.0.0.1:2\npool.up.max_body_size = 0\nroute./up/ = up\n"
        ))
        .unwrap_err();
        assert_eq!(e.place, "proxy.conf:5");
        assert!(
            e.message
                .starts_with("pool.up.max_body_size: is 0 (no limit)"),
            "{e}"
        );
    }

    #[test]
    fn least_time_measure_is_header_or_last_byte_and_last_byte_goes_with_least_time() {
        use crate::config::LeastTimeMeasure::{Header, LastByte};
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert_eq!(c.least_time_measure, Header);
        for (written, measure) in [("header", Header), ("last_byte", LastByte)] {
            let c = build(&format!(
                "targets = 127.0.0.1:1\nbalance = least_time\nleast_time_measure = {written}\n"
            ))
            .unwrap();
            assert_eq!(c.least_time_measure, measure);
        }
        // `header` is what every balance reads when it reads none.
        build("targets = 127.0.0.1:1\nleast_time_measure = header\n").unwrap();
        let e =
            build("targets = 127.0.0.1:1\nbalance = least_conn\nleast_time_measure = last_byte\n")
                .unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert_eq!(
            e.message,
            "least_time_measure: is last_byte, but balance = least_conn: only balance = \
             least_time reads it"
        );
        let e = build("targets = 127.0.0.1:1\nbalance = least_time\nleast_time_measure = body\n")
            .unwrap_err();
        assert_eq!(e.message, "least_time_measure: `body`: header or last_byte");
    }

    #[test]
    fn balance_hash_takes_hash_on_and_weights_and_neither_goes_without_the_other() {
        use crate::upstream::hash_on::HashOn;
        let c = build(
            "targets = 127.0.0.1:1 weight=3, 127.0.0.1:2\nbalance = hash\nhash_on = header:X-Tenant\n",
        )
        .unwrap();
        assert_eq!(c.balance, Balance::Hash);
        assert_eq!(c.balance.name(), "hash");
        assert_eq!(c.hash_on, Some(HashOn::Header("X-Tenant".into())));
        assert_eq!(c.targets[0].weight, 3);
        for (on, expected) in [
            ("cookie:sid", HashOn::Cookie("sid".into())),
            ("query:user", HashOn::Query("user".into())),
        ] {
            let c = build(&format!(
                "targets = 127.0.0.1:1\nhash_on = {on}\nbalance = hash\n"
            ))
            .unwrap();
            assert_eq!(c.hash_on, Some(expected));
        }
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert_eq!(c.hash_on, None);

        // Without hash_on: refused at balance's line.
        let e = build("targets = 127.0.0.1:1\n\nbalance = hash\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.starts_with("balance: hash needs hash_on"), "{e}");
        let e = build("targets = 127.0.0.1:1\nbalance = hash\nhash_on =\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        // With another algorithm (the default one too): at hash_on's.
        for balance in ["", "balance = uri_hash\n", "balance = ip_hash\n"] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\n{balance}# the tenant\nhash_on = header:X-Tenant\n"
            ))
            .unwrap_err();
            let line = 3 + usize::from(!balance.is_empty());
            assert_eq!(e.place, format!("proxy.conf:{line}"), "{balance}");
            assert!(
                e.message.starts_with("hash_on: is set (header:X-Tenant)"),
                "{e}"
            );
            assert!(e.message.contains("only balance = hash"), "{e}");
        }
        // A bad name, at its line.
        for (bad, why) in [
            ("header:X Tenant", "not a header field name"),
            ("header:", "not a header field name"),
            ("cookie:sid=1", "not a cookie name"),
            ("query:a&b", "not a query parameter name"),
            ("query:", "not a query parameter name"),
            ("X-Tenant", "is not `header:<Name>`"),
            ("arg:user", "is not `header:<Name>`"),
        ] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\nbalance = hash\n\nhash_on = {bad}\n"
            ))
            .unwrap_err();
            assert_eq!(e.place, "proxy.conf:4", "{bad}");
            assert!(e.message.starts_with("hash_on: "), "{bad}: {e}");
            assert!(e.message.contains(why), "{bad}: {e}");
        }
        // From the environment, as every key.
        let c = Loader::new()
            .file("proxy.conf", "targets = 127.0.0.1:1\nbalance = hash\n")
            .unwrap()
            .env([("INVERSO_HASH_ON".to_string(), "cookie:sid".to_string())])
            .build()
            .unwrap();
        assert_eq!(c.hash_on, Some(HashOn::Cookie("sid".into())));
    }

    #[test]
    fn cache_control_unread_without_a_lifetime_left_to_give_is_refused() {
        let base = "targets = 127.0.0.1:1\ncache_ignore_headers = Cache-Control, Expires, \
                    X-Accel-Expires, Surrogate-Control\n";
        let e = build(base).unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        assert!(e.message.contains("nothing would ever be stored"), "{e}");
        assert!(e.message.contains("cache_valid = 200 1s"), "{e}");
        // Anything that still gives a lifetime will do (the fields still
        // read leave a warning).
        for more in [
            "cache_valid = 200 1s",
            "cache_unlabeled = true",
            "targeted_cache_control = CDN-Cache-Control",
            "cache = false",
            "cache_size = 0",
        ] {
            build(&format!("{base}{more}\n")).unwrap_or_else(|e| panic!("{more}: {e}"));
        }
        build("targets = 127.0.0.1:1\ncache_ignore_headers = Cache-Control\n").unwrap();
        build(
            "targets = 127.0.0.1:1\nx_accel_expires = false\nsurrogate_id =\n\
             cache_ignore_headers = Cache-Control\n",
        )
        .unwrap();
        let e = build(
            "targets = 127.0.0.1:1\nx_accel_expires = false\nsurrogate_id =\n\
             cache_ignore_headers = Cache-Control, Expires\n",
        )
        .unwrap_err();
        assert_eq!(e.place, "proxy.conf:4");
    }

    #[test]
    fn health_check_method_is_one_of_three_and_a_head_reads_no_body() {
        let c = build("targets = 127.0.0.1:1\nhealth_check_path = /\nhealth_check_method = HEAD\n");
        assert_eq!(c.unwrap().health_check_method, "HEAD");
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert_eq!(c.health_check_method, "GET");
        let e = build("targets = 127.0.0.1:1\nhealth_check_method = head\n").unwrap_err();
        assert!(
            e.to_string().contains("GET, HEAD or OPTIONS (in capitals"),
            "{e}"
        );
        let e = build(
            "targets = 127.0.0.1:1\nhealth_check_path = /\nhealth_check_method = HEAD\n\
             health_check_expect_body = UP\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("proxy.conf:3: health_check_method: is HEAD, but"),
            "{e}"
        );
    }

    #[test]
    fn a_fastcgi_target_needs_a_root_in_its_pool_and_no_tls_or_proxy_header() {
        let c = build(
            "targets = 127.0.0.1:9000 fastcgi, 127.0.0.1:9001\n\
             fastcgi_root = /srv/www/\n\
             fastcgi_index = index.php\n\
             fastcgi_params = APP_ENV=production\n\
             pool.php = unix:/run/php.sock fastcgi\n\
             pool.php.fastcgi_root = /var/www\n",
        )
        .unwrap();
        let flags: Vec<bool> = c.targets.iter().map(|t| t.fastcgi).collect();
        assert_eq!(flags, [true, false]);
        assert_eq!(c.fastcgi.root, "/srv/www");
        let php = c.pool_configs().nth(1).unwrap();
        assert_eq!(php.fastcgi.root, "/var/www");
        assert_eq!(php.fastcgi.index.as_deref(), Some("index.php"), "inherited");
        assert_eq!(
            php.fastcgi.params,
            [("APP_ENV".into(), "production".into())]
        );
        let e = build("targets = 127.0.0.1:9000 fastcgi\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:1: targets: 127.0.0.1:9000 is a FastCGI server, and fastcgi_root is \
             empty: set the directory its scripts are in, as it sees them (fastcgi_root = \
             /var/www/html)"
        );
        let e = build(
            "targets = 127.0.0.1:1\nfastcgi_root = /srv\npool.php = 127.0.0.1:9000 fastcgi\n\
             pool.php.fastcgi_root =\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("proxy.conf:3: pool.php: 127.0.0.1:9000 is a FastCGI"),
            "{e}"
        );
        let warned = |text: &str| crate::test_log::logged(|| build(text).unwrap()).1;
        let kept = "fastcgi_root = /srv\nfastcgi_keep_conn = true\n";
        let lines = warned(&format!("{kept}targets = 127.0.0.1:9000 fastcgi\n"));
        assert_eq!(
            lines,
            [
                "WARN proxy.conf:2: fastcgi_keep_conn: is true, and 127.0.0.1:9000 has no \
              max_conns: PHP-FPM gives each kept connection a child of its own, and a \
              connection past its pm.max_children waits unanswered, a health probe's too; \
              give it max_conns=N below pm.max_children"
            ]
        );
        assert!(warned(&format!(
            "{kept}targets = 127.0.0.1:9000 fastcgi max_conns=7\n"
        ))
        .is_empty());
        assert!(warned("fastcgi_root = /srv\ntargets = 127.0.0.1:9000 fastcgi\n").is_empty());
        for (words, with) in [("tls", "tls"), ("send_proxy_v2", "send_proxy_v2")] {
            let text = format!("fastcgi_root = /srv\ntargets = 127.0.0.1:9000 fastcgi {words}\n");
            let e = build(&text).unwrap_err().to_string();
            assert!(e.contains(&format!("fastcgi and {with} given both")), "{e}");
        }
    }

    #[test]
    fn health_check_port_is_a_port_and_refused_beside_a_unix_socket() {
        let c = build("targets = 127.0.0.1:1\nhealth_check_port = 8081\n").unwrap();
        assert_eq!(c.health_check_port, Some(8081));
        let c = build("targets = 127.0.0.1:1\nhealth_check_port =\n").unwrap();
        assert_eq!(c.health_check_port, None);
        for bad in ["0", "65536", "+80", "http", "80 81"] {
            let text = format!("targets = 127.0.0.1:1\nhealth_check_port = {bad}\n");
            let e = build(&text).unwrap_err();
            assert!(e.message.starts_with("health_check_port: "), "{bad}: {e}");
        }
        let e = build(
            "targets = 127.0.0.1:1, unix:/run/app.sock\nhealth_check_path = /up\n\
             health_check_port = 8081\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:3: health_check_port: is 8081, but unix:/run/app.sock is a Unix socket, \
             which has no port: put it in a pool of its own without health_check_port"
        );
        // A pool's own, for its targets alone.
        let c = build(
            "targets = unix:/run/app.sock\npool.api = 127.0.0.1:2\nroute./api/ = api\n\
             pool.api.health_check_port = 9000\n",
        )
        .unwrap();
        assert_eq!(c.health_check_port, None);
        assert_eq!(
            c.pool_configs().nth(1).unwrap().health_check_port,
            Some(9000)
        );
    }

    #[test]
    fn health_check_conversation_is_read_in_steps_and_a_bad_one_named_by_its_line_and_step() {
        use crate::config::ProbeStep::{Expect, Send};
        let c = build(
            "targets = 127.0.0.1:1\nhealth_check_tcp = true\nhealth_check_conversation = \
             expect 220 | send EHLO inverso.check\\r\\n | expect 250 | send QUIT\\r\\n\n",
        )
        .unwrap();
        let steps = c.health_check_conversation.unwrap();
        assert_eq!(
            &*steps,
            [
                Expect(b"220".as_slice().into()),
                Send(b"EHLO inverso.check\r\n".as_slice().into()),
                Expect(b"250".as_slice().into()),
                Send(b"QUIT\r\n".as_slice().into()),
            ]
        );
        let c = build("targets = 127.0.0.1:1\nhealth_check_conversation =\n").unwrap();
        assert_eq!(c.health_check_conversation, None);
        for (bad, says) in [
            ("expect 220 | sned EHLO", "step 2: `sned`: each step is"),
            ("send PING\\r\\n | expect", "step 2: expect what?"),
            ("expect 220 || send QUIT", "step 2: empty"),
            ("send \\q", "step 1: a backslash begins"),
        ] {
            let text = format!(
                "targets = 127.0.0.1:1\nhealth_check_tcp = true\nhealth_check_conversation = {bad}\n"
            );
            let e = build(&text).unwrap_err();
            assert_eq!(e.place, "proxy.conf:3", "{bad}");
            assert!(
                e.message
                    .starts_with(&format!("health_check_conversation: {says}")),
                "{bad}: {e}"
            );
        }
        let many = vec!["send a"; 17].join(" | ");
        let e = build(&format!(
            "targets = 127.0.0.1:1\nhealth_check_tcp = true\nhealth_check_conversation = {many}\n"
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:3: health_check_conversation: step 17: one too many: a conversation \
             takes 1 to 16 steps"
        );
        let e = build(
            "targets = 127.0.0.1:1\npool.mail = 127.0.0.1:2\npool.mail.health_check_tcp = true\n\
             pool.mail.health_check_conversation = expect 220 | hello\n",
        )
        .unwrap_err();
        assert_eq!(e.place, "proxy.conf:4");
        assert!(
            e.message
                .starts_with("pool.mail.health_check_conversation: step 2: `hello`"),
            "{e}"
        );
    }

    #[test]
    fn health_check_conversation_is_refused_beside_the_one_exchange_in_one_scope() {
        for other in [
            "health_check_send = PING\\r\\n",
            "health_check_expect = +PONG",
        ] {
            let key = other.split(' ').next().unwrap();
            let text = format!(
                "targets = 127.0.0.1:1\nhealth_check_tcp = true\n{other}\n\
                 health_check_conversation = send PING\\r\\n | expect +PONG\n"
            );
            assert_eq!(
                build(&text).unwrap_err().to_string(),
                format!(
                    "proxy.conf:4: health_check_conversation: is set, and {key} too: a probe \
                     converses one way; write the exchange as steps of the conversation alone \
                     (`send <text> | expect <text>`), or empty it"
                )
            );
        }
        let e = build(
            "targets = 127.0.0.1:1\npool.redis = 127.0.0.1:2\npool.redis.health_check_tcp = true\n\
             pool.redis.health_check_expect = +PONG\n\
             pool.redis.health_check_conversation = send PING\\r\\n\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "proxy.conf:5: pool.redis.health_check_conversation: is set, and \
                 health_check_expect too"
            ),
            "{e}"
        );
        // A pool has the way it sets, not the top level's.
        let c = build(
            "targets = 127.0.0.1:1\nhealth_check_tcp = true\nhealth_check_send = PING\\r\\n\n\
             health_check_expect = +PONG\n\
             pool.mail = 127.0.0.1:2\npool.mail.health_check_conversation = expect 220\n",
        )
        .unwrap();
        let mail = c.pool_configs().nth(1).unwrap();
        assert_eq!(
            (&mail.health_check_send, &mail.health_check_expect),
            (&None, &None)
        );
        assert_eq!(mail.health_check_conversation.as_ref().unwrap().len(), 1);
        assert!(c.health_check_send.is_some() && c.health_check_conversation.is_none());
        let c = build(
            "targets = 127.0.0.1:1\nhealth_check_tcp = true\n\
             health_check_conversation = expect 220 | send QUIT\\r\\n\n\
             pool.redis = 127.0.0.1:2\npool.redis.health_check_send = PING\\r\\n\n",
        )
        .unwrap();
        let redis = c.pool_configs().nth(1).unwrap();
        assert_eq!(redis.health_check_conversation, None);
        assert_eq!(redis.health_check_send.as_deref(), Some(&b"PING\r\n"[..]));
        assert_eq!(c.health_check_conversation.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn a_conversation_set_where_no_probe_connects_alone_is_warned_of() {
        let words = "health_check_conversation: is set, but no probe of these targets connects \
                     alone (health_check_tcp): it is not read";
        for (text, warned) in [
            ("health_check_conversation = expect 220\n", 1),
            (
                "health_check_path = /up\nhealth_check_conversation = expect 220\n",
                1,
            ),
            (
                "health_check_udp = true\nhealth_check_send = q\n\
                 pool.mail = 127.0.0.1:2\npool.mail.health_check_conversation = expect 220\n",
                1,
            ),
            (
                "health_check_tcp = true\nhealth_check_conversation = expect 220\n",
                0,
            ),
            // Set for the pools that connect: the one that takes it, but
            // probes by GET, is not warned of what it did not set.
            (
                "health_check_tcp = true\nhealth_check_conversation = expect 220\n\
                 pool.api = 127.0.0.1:2\npool.api.health_check_path = /up\n",
                0,
            ),
        ] {
            let (c, lines) = warnings(&format!("targets = 127.0.0.1:1\n{text}"));
            c.unwrap();
            assert_eq!(saying(&lines, words), warned, "{text}: {lines:?}");
        }
    }

    #[test]
    fn health_check_udp_sends_a_datagram_refused_beside_other_probes_and_unix_sockets() {
        let c = build(
            "targets = 127.0.0.1:1\nhealth_check_udp = true\nhealth_check_send = \\x00hi\\r\\n\n\
             health_check_expect = ok\n",
        )
        .unwrap();
        assert!(c.health_check_udp);
        assert_eq!(c.health_check_send.as_deref(), Some(&b"\x00hi\r\n"[..]));
        assert_eq!(c.health_check_expect.as_deref(), Some(&b"ok"[..]));
        let c = build("targets = 127.0.0.1:1\nhealth_check_send =\n").unwrap();
        assert_eq!((c.health_check_udp, c.health_check_send), (false, None));
        let e = build("targets = 127.0.0.1:1\nhealth_check_send = \\q\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        assert!(
            e.message.starts_with("health_check_send: a backslash"),
            "{e}"
        );
        let e = build("targets = 127.0.0.1:1\nhealth_check_udp = true\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:2: health_check_udp: is true, but health_check_send is empty: a probe's \
             datagram is what it sends (for DNS, a question)"
        );
        for (other, says) in [
            (
                "health_check_path = /up",
                "health_check_path is set too (/up)",
            ),
            ("health_check_tcp = true", "health_check_tcp is true too"),
        ] {
            let text = format!(
                "targets = 127.0.0.1:1\n{other}\nhealth_check_udp = true\nhealth_check_send = q\n"
            );
            let e = build(&text).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "proxy.conf:3: health_check_udp: is true, but {says}: a target is probed one \
                     way; keep the one its service answers"
                )
            );
        }
        let e =
            build("targets = unix:/run/dns.sock\nhealth_check_udp = true\nhealth_check_send = q\n")
                .unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:2: health_check_udp: is true, but unix:/run/dns.sock is a Unix socket, \
             which takes no datagram from here: put it in a pool of its own"
        );
    }

    #[test]
    fn health_check_tcp_is_a_bool_refused_beside_a_health_check_path() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(!c.health_check_tcp);
        let c = build("targets = 127.0.0.1:1\nhealth_check_tcp = true\n").unwrap();
        assert!(c.health_check_tcp);
        assert_eq!(c.health_check_path, None);
        let e = build("targets = 127.0.0.1:1\nhealth_check_tcp = maybe\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        assert!(e.message.starts_with("health_check_tcp: "), "{e}");
        // Both: which kind of probe was meant cannot be told.
        let e = build(
            "targets = 127.0.0.1:1\nhealth_check_path = /up\nhealth_check_interval = 1s\n\
             health_check_tcp = true\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:4: health_check_tcp: is true, but health_check_path is set too (/up): \
             a target is probed one way; keep health_check_path for GET probes (which connect \
             first), or empty it to probe by connecting alone"
        );
        // A path from the environment is named as such.
        let mut l = Loader::new();
        l.file(
            "proxy.conf",
            "targets = 127.0.0.1:1\nhealth_check_tcp = true\n",
        )
        .unwrap();
        l.env([("INVERSO_HEALTH_CHECK_PATH".to_string(), "/up".to_string())]);
        let e = l.build().unwrap_err().to_string();
        assert!(
            e.contains("(/up, from environment INVERSO_HEALTH_CHECK_PATH)"),
            "{e}"
        );
        // An empty path is no GET probe.
        let c = build("targets = 127.0.0.1:1\nhealth_check_path =\nhealth_check_tcp = true\n");
        assert!(c.unwrap().health_check_tcp);
        // Off, it says nothing of the path.
        let c = build("targets = 127.0.0.1:1\nhealth_check_path = /up\nhealth_check_tcp = false\n");
        assert_eq!(c.unwrap().health_check_path.as_deref(), Some("/up"));
    }

    #[test]
    fn what_only_a_get_probe_reads_is_taken_beside_tcp_checks_as_without_them() {
        // As without any check: a pool with a health_check_path of its own
        // may take them from the top level.
        let expectations = "health_check_host = www.example.com\n\
                            health_check_expect_status = 200\n\
                            health_check_expect_body = UP\n";
        for checks in ["", "health_check_tcp = true\n"] {
            let text = format!("targets = 127.0.0.1:1\n{checks}{expectations}");
            let c = build(&text).unwrap_or_else(|e| panic!("{checks:?}: {e}"));
            assert_eq!(c.health_check_host.as_deref(), Some("www.example.com"));
            assert_eq!(*c.health_check_expect_status, [(200, 200)]);
        }
    }

    #[test]
    fn state_file_is_a_file_of_its_own() {
        for key in ["path_to_persistence", "path_to_log"] {
            let e = build(&format!(
                "targets = 127.0.0.1:1\n{key} = run/f\nstate_file = run/f\n"
            ))
            .unwrap_err();
            assert_eq!(e.place, "proxy.conf:3", "{key}");
            assert!(e.message.contains(&format!("is also {key}")), "{e}");
            // However spelled: from the working directory, or in full.
            let cwd = std::env::current_dir().unwrap();
            for spelled in ["./run/f".into(), cwd.join("run/f").display().to_string()] {
                let e = build(&format!(
                    "targets = 127.0.0.1:1\n{key} = run/f\nstate_file = {spelled}\n"
                ))
                .unwrap_err();
                assert!(e.message.contains(&format!("is also {key}")), "{e}");
            }
        }
        // The snapshot's default name.
        let e = build("targets = 127.0.0.1:1\nstate_file = ./cache.bin\n").unwrap_err();
        assert!(e.message.contains("is also path_to_persistence"), "{e}");
        let c = build("targets = 127.0.0.1:1\nstate_file = run/state\n").unwrap();
        assert_eq!(c.state_file, Some(PathBuf::from("run/state")));
    }

    #[test]
    fn state_file_and_log_are_files_of_their_own_however_spelled_before_they_exist() {
        // Neither file is there yet (a first start): spelled through `..`
        // or through a link to the directory, it is still the snapshot's.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("link")).unwrap();
        let snapshot = dir.path().join("cache.bin");
        for other in [
            dir.path().join("sub/../cache.bin"),
            dir.path().join("link/cache.bin"),
        ] {
            for (key, says) in [
                ("state_file", "is also path_to_persistence"),
                ("path_to_log", "is also path_to_persistence"),
            ] {
                let text = format!(
                    "targets = 127.0.0.1:1\npath_to_persistence = {}\n{key} = {}\n",
                    snapshot.display(),
                    other.display()
                );
                let e = build(&text).unwrap_err();
                assert_eq!(e.place, "proxy.conf:3", "{key} = {}", other.display());
                assert!(e.message.contains(says), "{e}");
            }
        }
        assert!(!snapshot.exists());
    }

    #[test]
    fn error_limit_reads_its_rate_and_statuses_and_statuses_alone_are_refused() {
        let c = build("targets = 127.0.0.1:1\nerror_limit = 60/m\n").unwrap();
        assert_eq!(
            c.error_limit.map(|r| r.to_string()).as_deref(),
            Some("60/m")
        );
        assert!(c.error_limit_statuses.is_empty());
        let c = build(
            "targets = 127.0.0.1:1\nerror_limit = 10/s\nerror_limit_statuses = 400-404, 500-599\n",
        )
        .unwrap();
        assert_eq!(*c.error_limit_statuses, [(400, 404), (500, 599)]);
        let e = build("targets = 127.0.0.1:1\nerror_limit_statuses = 404\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        assert!(e.message.contains("is set, but error_limit is not"), "{e}");
        let e = build("targets = 127.0.0.1:1\nerror_limit_except_from = 10.0.0.0/8\n").unwrap_err();
        assert!(e.message.contains("is set, but error_limit is not"), "{e}");
        let c = build(
            "targets = 127.0.0.1:1\nerror_limit = 1/s\nerror_limit_except_from = 10.0.0.0/8\n",
        )
        .unwrap();
        assert!(c.error_limit_except_from.holds("10.1.2.3".parse().unwrap()));
        let e = build("targets = 127.0.0.1:1\nerror_limit = 10\n").unwrap_err();
        assert!(
            e.message.starts_with("error_limit: `10` is not a rate"),
            "{e}"
        );
        let e = build("targets = 127.0.0.1:1\nerror_limit = 1/s\nerror_limit_statuses = 4xx\n")
            .unwrap_err();
        assert!(e.message.contains("is not a status"), "{e}");
    }

    #[test]
    fn cache_vary_may_not_name_what_the_backend_never_gets_as_the_client_sent_it() {
        let refused = |text: &str, place: &str, says: &str| {
            let e = build(&format!("targets = 127.0.0.1:1\n{text}")).unwrap_err();
            assert_eq!(e.place, place, "{e}");
            assert!(e.message.contains(says), "{e}");
        };
        refused(
            "request_header.X-Device = $http_user_agent\ncache_vary = header:X-Device\n",
            "proxy.conf:3",
            "cache_vary: names x-device, which the proxy writes or removes itself",
        );
        refused(
            "request_id_header = X-Request-Id\ncache_vary = header:X-Request-ID\n",
            "proxy.conf:3",
            "names x-request-id",
        );
        refused(
            "cache_vary = cookie:lang\nrequest_header.Cookie =\n",
            "proxy.conf:2",
            "request_header.Cookie takes the cookies",
        );
        refused(
            "sticky_cookie = SERVERID\ncache_vary = cookie:SERVERID\n",
            "proxy.conf:3",
            "SERVERID, the sticky_cookie",
        );
        // A pool's, at the pool's line.
        refused(
            "pool.api = 127.0.0.1:2\npool.api.sticky_cookie = SRV\n\
             pool.api.cache_vary = cookie:SRV, header:X-Device\n",
            "proxy.conf:4",
            "pool.api.cache_vary: names SRV",
        );
        for fine in [
            "cache_vary = cookie:lang, header:X-Device\nsticky_cookie = SERVERID\n",
            "cache_vary = header:X-Device\nrequest_header.Cookie =\n",
            "cache_vary = cookie:lang\nrequest_header.X-Device = phone\n",
        ] {
            let c = build(&format!("targets = 127.0.0.1:1\n{fine}")).unwrap();
            assert!(!c.cache_vary.is_empty(), "{fine}");
        }
        refused(
            "cache_vary = query:lang\n",
            "proxy.conf:2",
            "in the key already",
        );
    }

    #[test]
    fn cache_bypass_cookies_may_not_list_the_sticky_cookie_which_never_reaches_the_cache() {
        let conf = |bypass: &str| {
            build(&format!(
                "targets = 127.0.0.1:1\nsticky_cookie = SERVERID\ncache_bypass_cookies = {bypass}\n"
            ))
        };
        let e = conf("sid, SERVERID").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.contains("SERVERID, the sticky_cookie"), "{e}");
        // Under a prefix it is one of many names, and does no harm.
        assert!(conf("SERVER*").is_ok());
        assert!(conf("*").is_ok());
        assert!(
            conf("serverid").is_ok(),
            "cookie names are compared as sent"
        );
        // Without a cache, nothing to bypass; but a reload that sets
        // `cache_size = 0` keeps the running cache until a restart, with
        // these settings: refused then, at their line, a pool's too.
        for (text, line) in [
            "sticky_cookie = SERVERID\ncache_bypass_cookies = SERVERID\n",
            "pool.api = 127.0.0.1:2\npool.api.sticky_cookie = SERVERID\n\
             pool.api.cache_bypass_cookies = SERVERID\n",
        ]
        .into_iter()
        .zip(["proxy.conf:4", "proxy.conf:5"])
        {
            let mut loader = Loader::new();
            let text = format!("targets = 127.0.0.1:1\ncache_size = 0\n{text}");
            loader.file("proxy.conf", &text).unwrap();
            let c = loader.build().unwrap();
            assert!(loader.check_cache_kept(&c, 0).is_ok());
            let e = loader.check_cache_kept(&c, 1 << 20).unwrap_err();
            assert!(e.message.contains("SERVERID, the sticky_cookie"), "{e}");
            assert_eq!(e.place, line, "{e}");
        }
    }

    #[test]
    fn redirect_to_https_is_off_and_its_exceptions_are_paths_named_by_line() {
        let c = build("targets = 127.0.0.1:1\n").unwrap();
        assert!(!c.redirect_to_https && c.redirect_to_https_except.is_empty());
        let text = "targets = 127.0.0.1:1\nreal_ip_from = 10.0.0.0/8\nredirect_to_https = on\n\
                    redirect_to_https_except = /healthz, /.well-known/acme-challenge/\n";
        let c = build(text).unwrap();
        assert!(c.redirect_to_https);
        assert!(c.redirect_to_https_except.matches("/healthz"));
        assert!(c
            .redirect_to_https_except
            .matches("/.well-known/acme-challenge/x"));
        for (line, message) in [
            (
                "redirect_to_https_except = healthz",
                "does not start with `/`",
            ),
            ("redirect_to_https_except = /a?b", "not the start of a path"),
            ("redirect_to_https_except = /a,", "empty entry"),
        ] {
            let text = format!("targets = 127.0.0.1:1\nredirect_to_https = true\n\n{line}\n");
            let e = build(&text).unwrap_err();
            assert_eq!(e.place, "proxy.conf:4", "{line}");
            assert!(e.message.contains(message), "{line}: {e}");
        }
        let e = build("targets = 127.0.0.1:1\n\nredirect_to_https = maybe\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.starts_with("redirect_to_https: "), "{e}");
        // Exceptions without the redirect say nothing: refused, by their line.
        let e = build("targets = 127.0.0.1:1\nredirect_to_https_except = /healthz\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        assert!(e.message.contains("redirect_to_https is not"), "{e}");
        // Without a trusted proxy or PROXY header every request would be
        // redirected: a warning, not an error (a listener that only
        // redirects is a use).
        let c = build("targets = 127.0.0.1:1\nredirect_to_https = true\n").unwrap();
        assert!(c.redirect_to_https);
    }

    #[test]
    fn a_pool_redirects_to_https_or_not_whatever_the_top_level_does() {
        let pools = "targets = 127.0.0.1:1\nreal_ip_from = 10.0.0.0/8\n\
                     pool.shop = 127.0.0.1:2\npool.legacy = 127.0.0.1:3\n";
        let c = build(&format!(
            "{pools}redirect_to_https = true\npool.legacy.redirect_to_https = false\n"
        ))
        .unwrap();
        let each = |c: &Config| -> Vec<bool> {
            (c.pools.iter())
                .map(|p| p.config.redirect_to_https)
                .collect()
        };
        assert!(c.redirect_to_https);
        assert_eq!(each(&c), Vec::from([true, false]));
        // The other way: one pool redirects, and the exceptions are for it.
        let c = build(&format!(
            "{pools}pool.shop.redirect_to_https = on\nredirect_to_https_except = /healthz\n"
        ))
        .unwrap();
        assert!(!c.redirect_to_https);
        assert_eq!(each(&c), Vec::from([true, false]));
        let e = build(&format!(
            "{pools}pool.shop.redirect_to_https = false\nredirect_to_https_except = /healthz\n"
        ))
        .unwrap_err();
        assert_eq!(e.place, "proxy.conf:6");
        assert!(
            e.message.contains("redirect_to_https is not, nor a pool's"),
            "{e}"
        );
        let e = build(&format!("{pools}pool.shop.redirect_to_https = maybe\n")).unwrap_err();
        assert_eq!(e.place, "proxy.conf:5");
        assert!(
            e.message.starts_with("pool.shop.redirect_to_https: "),
            "{e}"
        );
        // Its redirects' Location is the proxy's, a top-level one too.
        let e = build(&format!(
            "{pools}response_header.Location = /x\npool.shop.redirect_to_https = true\n"
        ))
        .unwrap_err();
        assert_eq!(e.place, "proxy.conf:6");
        assert!(e.message.contains("writes Location"), "{e}");
        let e = build(&format!(
            "{pools}redirect_to_https = true\npool.legacy.redirect_to_https = false\n\
             pool.shop.response_header.Location = /x\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("writes Location"), "{e}");
        let c = build(&format!(
            "{pools}redirect_to_https = true\npool.legacy.redirect_to_https = false\n\
             pool.legacy.response_header.Location = /x\n"
        ));
        assert!(c.is_ok(), "a pool that does not redirect: {c:?}");
        // Nothing can be https: warned of where the pool's redirect is set.
        let (c, lines) = warnings(
            "targets = 127.0.0.1:1\npool.shop = 127.0.0.1:2\npool.shop.redirect_to_https = true\n",
        );
        c.unwrap();
        let warning = "proxy.conf:3: pool.shop.redirect_to_https: neither real_ip_from";
        assert_eq!(saying(&lines, warning), 1, "{lines:?}");
    }

    /// Building `text` as `build` does, with the warnings it logs.
    fn warnings(text: &str) -> (Result<Config, ConfigError>, Vec<String>) {
        let (built, lines) = crate::test_log::logged(|| build(text));
        (
            built,
            lines
                .into_iter()
                .filter(|l| l.starts_with("WARN "))
                .collect(),
        )
    }

    /// How many of `lines` say `words`.
    fn saying(lines: &[String], words: &str) -> usize {
        lines.iter().filter(|l| l.contains(words)).count()
    }

    /// A PEM file `file` in `dir`: a self-signed certificate for `names`
    /// and its key (served, or taken as its own authority).
    #[test]
    fn what_a_probe_sends_set_where_no_probe_sends_it_is_warned_of() {
        let words = "no probe of these targets connects alone or sends a datagram";
        for (text, warned) in [
            ("health_check_path = /up\nhealth_check_send = PING\n", 1),
            ("health_check_expect = +PONG\n", 1),
            ("health_check_tcp = true\nhealth_check_send = PING\n", 0),
            (
                "health_check_udp = true\nhealth_check_send = q\nhealth_check_expect = a\n",
                0,
            ),
            // Set for the pools that connect: the one that takes it, but
            // probes by GET, is not warned of what it did not set.
            (
                "health_check_path = /up\npool.api = 127.0.0.1:2\n\
                 pool.api.health_check_tcp = true\npool.api.health_check_send = PING\n",
                0,
            ),
        ] {
            let (c, lines) = warnings(&format!("targets = 127.0.0.1:1\n{text}"));
            c.unwrap();
            assert_eq!(saying(&lines, words), warned, "{text}: {lines:?}");
        }
    }

    #[test]
    fn a_cache_warning_is_given_once_unless_a_pool_earns_one_of_its_own() {
        let capped = "targets = 127.0.0.1:1\nttl = 10s\ncache_valid = 200 1m\n";
        let unread = "targets = 127.0.0.1:1\ncache_ignore_headers = Cache-Control\n";
        for (top, words, own) in [
            (capped, "ttl caps every lifetime", "pool.api.ttl = 5s\n"),
            (
                unread,
                "Cache-Control is not read",
                "pool.api.cache_ignore_headers = Cache-Control, Expires\n",
            ),
        ] {
            let (c, lines) = warnings(top);
            c.unwrap();
            assert_eq!(saying(&lines, words), 1, "{lines:?}");
            // A pool that takes the top level's settings is not warned of
            // what the top level was.
            let (c, lines) = warnings(&format!("{top}pool.api = 127.0.0.1:2\n"));
            c.unwrap();
            assert_eq!(saying(&lines, words), 1, "{lines:?}");
            // One with settings of its own that earn another warning is.
            let (c, lines) = warnings(&format!("{top}pool.api = 127.0.0.1:2\n{own}"));
            c.unwrap();
            assert_eq!(saying(&lines, words), 2, "{own}: {lines:?}");
            // A reload that keeps a cache of its own size was checked, and
            // warned of, when it was read: not again.
            let mut loader = Loader::new();
            loader.file("proxy.conf", top).unwrap();
            let c = loader.build().unwrap();
            let (kept, lines) = crate::test_log::logged(|| loader.check_cache_kept(&c, 1 << 20));
            assert!(kept.is_ok());
            assert_eq!(saying(&lines, words), 0, "{lines:?}");
        }
    }

    #[test]
    fn backend_tls_files_named_are_read_and_the_settings_made_once_for_all_pools() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        // Read even while no target has tls, so that `check` finds what is
        // wrong before a target needs it; the error names the key.
        for key in ["backend_tls_ca", "backend_tls_certificate"] {
            let text = format!("targets = 127.0.0.1:1\n{key} = {}\n", missing.display());
            let e = build(&text).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{e}");
            assert!(e.message.starts_with(&format!("{key}: ")), "{e}");
        }
        // Pools with the top level's keys share its settings (and so its
        // sessions).
        let c = build("targets = 127.0.0.1:1 tls\npool.api = 127.0.0.1:2 tls\n").unwrap();
        let top = c.backend_tls.as_ref().unwrap();
        let pool = c.pools[0].config.backend_tls.as_ref().unwrap();
        assert!(Arc::ptr_eq(top, pool));
        // Pools with keys of their own get settings of their own, made
        // once for every pool with those keys.
        let c = build(
            "targets = 127.0.0.1:1 tls\n\
             pool.a = 127.0.0.1:2 tls\npool.a.backend_tls_verify = false\n\
             pool.b = 127.0.0.1:3 tls\npool.b.backend_tls_verify = false\n",
        )
        .unwrap();
        let top = c.backend_tls.as_ref().unwrap();
        let [a, b] = [0, 1].map(|i| c.pools[i].config.backend_tls.clone().unwrap());
        assert!(!Arc::ptr_eq(top, &a));
        assert!(Arc::ptr_eq(&a, &b));
        // Not verifying is warned of; verifying, the default, is not.
        let (c, lines) = warnings("targets = 127.0.0.1:1 tls\nbackend_tls_verify = false\n");
        c.unwrap();
        assert_eq!(
            saying(&lines, "backend_tls_verify: is false"),
            1,
            "{lines:?}"
        );
        let (c, lines) = warnings("targets = 127.0.0.1:1 tls\n");
        c.unwrap();
        assert_eq!(saying(&lines, "backend_tls_verify"), 0, "{lines:?}");
    }

    #[test]
    fn dns_01_needs_its_three_keys_and_every_name_in_the_zone() {
        let base = "targets = 127.0.0.1:1\ntls_port = 8443\nacme_challenge = dns-01\n";
        let dns = "acme_dns_server = 127.0.0.1:5353\nacme_dns_zone = Shop.Test.\n\
                   acme_dns_key = hmac-sha256:acme:c2VjcmV0\n";
        let c = build(&format!(
            "{base}{dns}acme_domains = *.shop.test, shop.test; api.eu.shop.test\n"
        ))
        .unwrap();
        let acme = c.acme().unwrap();
        let update = acme.dns_update().unwrap();
        assert_eq!(update.zones, ["shop.test"]);
        assert_eq!(update.server, "127.0.0.1:5353");
        assert_eq!(update.key.name, "acme");
        assert_eq!(acme.dns_wait, std::time::Duration::from_secs(30));
        for (domains, says) in [
            (
                "shop.other",
                "`shop.other` is in none of acme_dns_zone (shop.test)",
            ),
            (
                "*.notshop.test",
                "`notshop.test` is in none of acme_dns_zone",
            ),
            ("xshop.test", "`xshop.test` is in none of acme_dns_zone"),
        ] {
            let e = build(&format!("{base}{dns}acme_domains = {domains}\n")).unwrap_err();
            assert!(e.message.contains(says), "{domains}: {e}");
        }
        let two = dns.replace("Shop.Test.", "shop.test, blog.test");
        let c = build(&format!("{base}{two}acme_domains = shop.test; blog.test\n")).unwrap();
        assert_eq!(c.acme().unwrap().dns_zones, ["shop.test", "blog.test"]);
        for missing in ["acme_dns_server", "acme_dns_zone", "acme_dns_key"] {
            let text: String = (dns.lines())
                .filter(|l| !l.starts_with(missing))
                .map(|l| format!("{l}\n"))
                .collect();
            let e = build(&format!("{base}{text}acme_domains = shop.test\n")).unwrap_err();
            assert!(
                e.message.contains(&format!("but {missing} is empty")),
                "{e}"
            );
        }
    }

    #[test]
    fn acme_serves_tls_port_alone_and_its_keys_need_acme_domains() {
        let base = "targets = 127.0.0.1:1\n";
        let c = build(&format!(
            "{base}tls_port = 8443\nacme_domains = Shop.Test\n"
        ))
        .unwrap();
        assert!(c.tls.is_some(), "no certificate of its own is needed");
        let acme = c.acme().unwrap();
        assert_eq!(acme.certificates, [["shop.test"]]);
        assert_eq!(acme.directory, crate::acme::LETS_ENCRYPT);
        assert_eq!(acme.state_dir, Path::new("acme"));
        assert!(build(base).unwrap().acme().is_none());
        let e = build(&format!("{base}acme_domains = shop.test\n")).unwrap_err();
        assert!(
            e.message
                .starts_with("acme_domains: is set, but tls_port is not"),
            "{e}"
        );
        for (line, key) in [
            ("acme_email = ops@shop.test", "acme_email"),
            ("acme_directory = https://ca.test/dir", "acme_directory"),
            ("acme_state_dir = /var/lib/inverso/acme", "acme_state_dir"),
            (
                "acme_directory_ca = /etc/inverso/ca.pem",
                "acme_directory_ca",
            ),
            ("acme_eab_kid = kid-1", "acme_eab_kid"),
            ("acme_eab_hmac_key = c2VjcmV0", "acme_eab_hmac_key"),
            ("acme_challenge = tls-alpn-01", "acme_challenge"),
            ("acme_dns_server = 127.0.0.1", "acme_dns_server"),
            ("acme_dns_wait = 1m", "acme_dns_wait"),
        ] {
            let e = build(&format!("{base}tls_port = 8443\n{line}\n")).unwrap_err();
            let says = format!("{key}: is set, but acme_domains is empty");
            assert!(e.message.starts_with(&says), "{e}");
        }
        // The default written out is no setting.
        let written = format!(
            "{base}acme_directory = {}\nacme_state_dir = acme\n",
            crate::acme::LETS_ENCRYPT
        );
        assert!(build(&written).is_ok());
        for (line, says) in [
            (
                "acme_domains = shop.test, *.shop.test",
                "`*.shop.test`: a wildcard is proven by dns-01 alone",
            ),
            ("acme_directory = http://ca.test/d", "http:// only to this"),
            ("acme_email = ops", "not an email address"),
            ("acme_state_dir =", "cannot be empty"),
            ("acme_eab_kid = kid-1", "acme_eab_hmac_key is empty"),
            ("acme_eab_hmac_key = c2VjcmV0", "acme_eab_kid is empty"),
            (
                "acme_eab_kid = k\nacme_eab_hmac_key = !!",
                "not a base64url key",
            ),
            (
                "acme_challenge = dns-01",
                "dns-01 writes its records with a DNS update, but acme_dns_server is empty",
            ),
            (
                "acme_dns_zone = shop.test",
                "acme_dns_zone: is set, but acme_challenge is not dns-01",
            ),
        ] {
            let domains = match line.starts_with("acme_domains") {
                true => "",
                false => "acme_domains = shop.test\n",
            };
            let text = format!("{base}tls_port = 8443\n{domains}{line}\n");
            let e = build(&text).unwrap_err();
            assert!(e.message.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn tls_port_takes_certificates_on_a_port_of_its_own_and_asks_clients_with_an_authority() {
        let dir = tempfile::tempdir().unwrap();
        let named = certificate(dir.path(), "named.pem", &["a.test"]);
        let nameless = certificate(dir.path(), "nameless.pem", &["127.0.0.1"]);
        let missing = dir.path().join("missing.pem");
        let tls = |more: &str| {
            build(&format!(
                "targets = 127.0.0.1:1\ntls_port = 8443\ntls_certificates = {}\n{more}",
                named.display()
            ))
        };
        let c = tls("").unwrap();
        assert!(c.tls.is_some());
        assert!(c.tls_client_auth.is_none());
        let e = build("targets = 127.0.0.1:1\ntls_port = 8443\n").unwrap_err();
        assert!(
            e.message
                .starts_with("tls_port: is set, but tls_certificates is empty"),
            "{e}"
        );
        for (more, says) in [
            ("port = 8443\n", "tls_port: 8443 is also `port`"),
            ("admin_port = 8443\n", "tls_port: 8443 is also `admin_port`"),
        ] {
            let e = tls(more).unwrap_err();
            assert!(e.message.starts_with(says), "{more}: {e}");
        }
        // Clients' certificates, checked against the authority named.
        let c = tls(&format!(
            "tls_verify_client = on\ntls_client_ca = {}\n",
            named.display()
        ))
        .unwrap();
        assert!(c.tls_client_auth.is_some());
        // A file that cannot be read is named by its own key.
        for (ca, crl, key) in [
            (&named, &missing, "tls_client_crl"),
            (&missing, &named, "tls_client_ca"),
        ] {
            let e = tls(&format!(
                "tls_verify_client = on\ntls_client_ca = {}\ntls_client_crl = {}\n",
                ca.display(),
                crl.display()
            ))
            .unwrap_err();
            assert!(e.message.starts_with(&format!("{key}: ")), "{e}");
        }
        // Strict SNI: refused when no certificate names a host, as every
        // client would be; warned of when some do not.
        let strict = |files: &str| {
            warnings(&format!(
                "targets = 127.0.0.1:1\ntls_port = 8443\ntls_certificates = {files}\n\
                 tls_strict_sni = on\n"
            ))
        };
        let (e, _) = strict(&nameless.display().to_string());
        let e = e.unwrap_err();
        assert!(e.message.contains("every client would be refused"), "{e}");
        let (c, lines) = strict(&format!("{}, {}", named.display(), nameless.display()));
        assert!(c.unwrap().tls.is_some());
        assert_eq!(saying(&lines, "names no host"), 1, "{lines:?}");
    }

    #[test]
    fn a_stream_that_ends_tls_takes_tls_port_s_settings_without_tls_port() {
        let dir = tempfile::tempdir().unwrap();
        let named = certificate(dir.path(), "named.pem", &["a.test"]);
        let conf = |more: &str| {
            format!(
                "targets = 127.0.0.1:1\ntls_certificates = {}\ntls_protocols = TLSv1.3\n\
                 tls_strict_sni = on\n{more}",
                named.display()
            )
        };
        let c = build(&conf(
            "stream.mqtt = default listen=8883 tls alpn=mqtt,x-other\n\
             stream.plain = default listen=1883\n",
        ))
        .unwrap();
        let https = c
            .tls
            .as_ref()
            .expect("the settings are made for the stream");
        assert_eq!(
            https.alpn_protocols,
            [b"http/1.1".to_vec(), b"http/1.0".to_vec()]
        );
        let mqtt = c.stream_tls(c.stream_named("mqtt").unwrap()).unwrap();
        assert_eq!(mqtt.alpn_protocols, [b"mqtt".to_vec(), b"x-other".to_vec()]);
        assert!(Arc::ptr_eq(&mqtt.session_storage, &https.session_storage));
        assert!(c.stream_tls(c.stream_named("plain").unwrap()).is_none());
        // Without `alpn=`, none is offered: HTTP's would say to speak HTTP.
        let c = build(&conf("stream.s = default listen=8883 tls\n")).unwrap();
        let offered = c.stream_tls(c.stream_named("s").unwrap()).unwrap();
        assert!(offered.alpn_protocols.is_empty());
        // With no stream ending TLS and no tls_port, the keys are refused.
        let e = build(&conf("stream.s = default listen=8883\n")).unwrap_err();
        assert!(
            e.message
                .starts_with("tls_protocols: is set, but tls_port is not, nor a stream's `tls`"),
            "{e}"
        );
    }

    #[test]
    fn auth_basic_goes_with_its_user_file_and_what_it_spares_is_warned_of_once() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        let hash = bcrypt::hash("secret", 4).unwrap();
        std::fs::write(&users, format!("ann:{hash}\n")).unwrap();
        let conf = |more: &str| format!("targets = 127.0.0.1:1\n{more}");
        let file = format!("auth_basic_user_file = {}\n", users.display());
        let signed = conf(&format!("auth_basic = shop\n{file}"));
        let c = build(&signed).unwrap();
        assert!(c.auth_basic.is_some() && c.auth_users.is_some());
        for (text, says) in [
            (
                conf("auth_basic = shop\n"),
                "auth_basic: is on, but auth_basic_user_file is empty",
            ),
            (
                conf(&file),
                "auth_basic_user_file: is set, but auth_basic is off",
            ),
            (
                conf("auth_basic_except_from = 10.0.0.0/8\n"),
                "auth_basic_except_from: is set, but auth_basic is off",
            ),
        ] {
            let e = build(&text).unwrap_err();
            assert!(e.message.starts_with(says), "{text:?}: {e}");
        }
        // A pool that turns the sign-in off may keep the top level's file.
        build(&format!(
            "{signed}pool.api = 127.0.0.1:2\npool.api.auth_basic = off\n"
        ))
        .unwrap();
        // Spared blocks that likely spare more than meant: warned of where
        // they are set, not again for a pool that takes them.
        let every = "spares every client of an address family";
        let (c, lines) = warnings(&format!(
            "{signed}auth_basic_except_from = 0.0.0.0/0\npool.api = 127.0.0.1:2\n"
        ));
        c.unwrap();
        assert_eq!(saying(&lines, every), 1, "{lines:?}");
        let (c, lines) = warnings(&format!(
            "{signed}auth_basic_except_from = 10.0.0.0/8\nreal_ip_from = 10.1.0.0/16\n"
        ));
        c.unwrap();
        assert_eq!(
            saying(&lines, "shares addresses with real_ip_from (10.1.0.0/16)"),
            1,
            "{lines:?}"
        );
        let (c, lines) = warnings(&format!("{signed}auth_basic_except_from = 10.0.0.0/8\n"));
        c.unwrap();
        assert_eq!(saying(&lines, "auth_basic_except_from"), 0, "{lines:?}");
    }

    #[test]
    fn a_redirect_to_https_no_request_can_escape_is_warned_of() {
        let loop_warning = "redirect_to_https: neither real_ip_from";
        let (c, lines) = warnings("targets = 127.0.0.1:1\nredirect_to_https = true\n");
        c.unwrap();
        assert_eq!(saying(&lines, loop_warning), 1, "{lines:?}");
        // A trusted proxy or a PROXY header can say a request came by https.
        for more in ["real_ip_from = 10.0.0.0/8", "proxy_protocol = true"] {
            let (c, lines) = warnings(&format!(
                "targets = 127.0.0.1:1\nredirect_to_https = true\n{more}\n"
            ));
            c.unwrap();
            assert_eq!(saying(&lines, loop_warning), 0, "{more}: {lines:?}");
        }
    }

    #[test]
    fn a_health_check_path_as_long_as_max_uri_length_is_taken() {
        let conf = |path: &str| {
            build(&format!(
                "targets = 127.0.0.1:1\nmax_uri_length = 8\nhealth_check_path = {path}\n"
            ))
        };
        assert_eq!(
            conf("/1234567").unwrap().health_check_path.as_deref(),
            Some("/1234567")
        );
        let e = conf("/12345678").unwrap_err();
        assert!(e.message.contains("longer than max_uri_length (8)"), "{e}");
    }

    #[test]
    fn without_a_cache_there_is_no_snapshot_to_share_a_file_with_or_leave_out_of() {
        // The snapshot's default name, free for the log without a cache.
        let c = build("targets = 127.0.0.1:1\ncache_size = 0\npath_to_log = ./cache.bin\n");
        assert!(c.is_ok(), "{c:?}");
        let c = build("targets = 127.0.0.1:1\ncache_size = 0\nmax_object_size = 5GiB\n").unwrap();
        assert_eq!(c.snapshot_leaves_out(), None);
        // The largest body a record holds is still in the snapshot.
        let sized = |max: u64| {
            build(&format!(
                "targets = 127.0.0.1:1\ncache_size = 8GiB\nmax_object_size = {max}\n"
            ))
            .unwrap()
            .snapshot_leaves_out()
        };
        assert_eq!(sized(MAX_SNAPSHOT_BODY), None);
        assert!(sized(MAX_SNAPSHOT_BODY + 1).is_some());
    }

    #[test]
    fn a_rate_limit_key_the_proxy_edits_before_counting_is_refused() {
        let limited = "targets = 127.0.0.1:1\nrate_limit = 5/s\n";
        let e = build(&format!(
            "{limited}rate_limit_key = cookie:sid\nrequest_header.Cookie =\n"
        ))
        .unwrap_err();
        assert!(
            e.message.contains("request_header.Cookie sets or removes"),
            "{e}"
        );
        // A name with underscores is the field spelled with dashes.
        let e = build(&format!(
            "{limited}underscores_in_headers = on\nrate_limit_key = header:X_Api_Key\n\
             request_header.X-Api-Key = k\n"
        ))
        .unwrap_err();
        assert!(
            e.message.contains("is set or removed by request_header"),
            "{e}"
        );
    }

    #[test]
    fn files_of_one_name_in_two_directories_are_two_files() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("one"), dir.path().join("two"));
        std::fs::create_dir(&one).unwrap();
        std::fs::create_dir(&two).unwrap();
        let text = format!(
            "targets = 127.0.0.1:1\npath_to_persistence = {}\nstate_file = {}\n",
            one.join("f").display(),
            two.join("f").display()
        );
        assert_eq!(build(&text).unwrap().state_file, Some(two.join("f")));
    }
}
