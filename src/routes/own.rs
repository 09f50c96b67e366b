//! A route's own `max_body_size=`, `backend_timeout=` and `cache=`
//! ([`OwnSettings`]): its pool's keys of those names, for the requests
//! the route takes alone, as nginx's `client_max_body_size`,
//! `proxy_read_timeout` and `proxy_cache off` in a `location` that
//! `proxy_pass`es to the same `upstream` as the rest of the site. A
//! backend is in one pool only, so a path of one application has no
//! other way to its own.

use super::Route;
use std::fmt;
use std::time::Duration;

/// What a route sets in place of its pool's keys; `None` takes the
/// pool's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnSettings {
    /// `max_body_size=`: as the key, 0 is no limit.
    pub max_body_size: Option<u64>,
    /// `backend_timeout=`.
    pub backend_timeout: Option<Duration>,
    /// `cache=on` or `cache=off`.
    pub cache: Option<bool>,
}

impl OwnSettings {
    pub fn is_empty(&self) -> bool {
        *self == OwnSettings::default()
    }
}

impl fmt::Display for OwnSettings {
    /// As a route's line writes them (`max_body_size=10MiB
    /// backend_timeout=10m cache=off`), in a form the keys' parsers read
    /// back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut options = Vec::with_capacity(3);
        if let Some(size) = self.max_body_size {
            options.push(format!("max_body_size={}", size_written(size)));
        }
        if let Some(timeout) = self.backend_timeout {
            options.push(format!("backend_timeout={}", duration_written(timeout)));
        }
        if let Some(cache) = self.cache {
            options.push(format!("cache={}", if cache { "on" } else { "off" }));
        }
        f.write_str(&options.join(" "))
    }
}

/// `size` in the largest binary unit that writes it whole.
fn size_written(size: u64) -> String {
    let units = [(30, "GiB"), (20, "MiB"), (10, "KiB")];
    match units
        .iter()
        .find(|(shift, _)| size != 0 && size.is_multiple_of(1 << shift))
    {
        Some((shift, unit)) => format!("{}{unit}", size >> shift),
        None => size.to_string(),
    }
}

/// `d` in the largest unit that writes it whole (the keys take
/// milliseconds at the finest).
fn duration_written(d: Duration) -> String {
    let ms = d.as_millis();
    let units = [(3_600_000, "h"), (60_000, "m"), (1000, "s")];
    match units
        .iter()
        .find(|(per, _)| ms != 0 && ms.is_multiple_of(*per))
    {
        Some((per, unit)) => format!("{}{unit}", ms / per),
        None => format!("{ms}ms"),
    }
}

impl Route {
    /// This route, with `own` in place of its pool's settings. Not on a
    /// route with no exchange with a pool's backends of its own: a
    /// redirect, a `return`, files (whose `fallback=` requests are the
    /// pool's, with the pool's settings).
    pub fn with_own_settings(self, own: OwnSettings) -> Result<Route, String> {
        if own.is_empty() {
            return Ok(self);
        }
        if self.answer.is_some() || self.files.is_some() {
            return Err(format!(
                "{own}: a route that answers itself or serves files has no exchange with a \
                 pool's backends; a route to a pool takes it"
            ));
        }
        Ok(Route { own, ..self })
    }

    /// Its `max_body_size=`, `backend_timeout=` and `cache=`.
    pub fn own_settings(&self) -> &OwnSettings {
        &self.own
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::Files;
    use std::sync::Arc;

    #[test]
    fn own_settings_are_written_as_a_route_line_writes_them() {
        let own = |max_body_size, secs: Option<u64>, cache| OwnSettings {
            max_body_size,
            backend_timeout: secs.map(Duration::from_millis),
            cache,
        };
        for (settings, written) in [
            (own(None, None, None), ""),
            (own(Some(10 << 20), None, None), "max_body_size=10MiB"),
            (own(Some(0), None, None), "max_body_size=0"),
            (own(Some(3072), None, None), "max_body_size=3KiB"),
            (own(Some(1536), None, None), "max_body_size=1536"),
            (own(Some(1000), None, None), "max_body_size=1000"),
            (own(Some(2 << 30), None, None), "max_body_size=2GiB"),
            (own(None, Some(600_000), None), "backend_timeout=10m"),
            (own(None, Some(1500), None), "backend_timeout=1500ms"),
            (own(None, Some(7_200_000), None), "backend_timeout=2h"),
            (
                own(None, Some(90_000), Some(false)),
                "backend_timeout=90s cache=off",
            ),
            (
                own(Some(1 << 20), Some(1000), Some(true)),
                "max_body_size=1MiB backend_timeout=1s cache=on",
            ),
        ] {
            assert_eq!(settings.to_string(), written);
        }
    }

    #[test]
    fn only_a_route_to_a_pool_takes_settings_of_its_own() {
        let own = OwnSettings {
            cache: Some(false),
            ..OwnSettings::default()
        };
        let route = Route::parse("/account/", 1, None).unwrap();
        assert!(route.own_settings().is_empty());
        let route = route.with_own_settings(own).unwrap();
        assert_eq!(route.own_settings().cache, Some(false));
        let dir = Arc::new(Files::open(env!("CARGO_MANIFEST_DIR")).unwrap());
        let files = Route::serving_files("/s/", dir, Some(1)).unwrap();
        assert!(files.with_own_settings(own).is_err());
        let answered = Route::returning("/r", 200, None, None).unwrap();
        assert!(answered.clone().with_own_settings(own).is_err());
        // Nothing of its own is nothing to refuse.
        assert!(answered.with_own_settings(OwnSettings::default()).is_ok());
    }
}
