//! One route ([`Route`]) made and read: to a pool (with `rewrite=`,
//! `cookie_paths`, `rate_limit=`), to files, and its `if` condition;
//! shown as its key writes it.

use super::paths::{is_ambiguous, routing_path};
use super::spec::{parse_spec, HostPattern};
use super::{Condition, FilesRoute, OwnSettings, Route};
use crate::files::Files;
use crate::ratelimit::{Limit, Rate};
use std::fmt;
use std::sync::Arc;

impl Route {
    /// Reads the part of a `route.` key after the dot (`example.com/api/`,
    /// `*.example.com`, `/static/`) and the rewrite, if any, of the route
    /// to `pool`.
    pub fn parse(spec: &str, pool: usize, rewrite: Option<&str>) -> Result<Route, String> {
        if let Some(rewrite) = rewrite {
            // `//x` reads as another host to some backends; dot-segments
            // as other paths.
            if !rewrite.starts_with('/')
                || rewrite.starts_with("//")
                || is_ambiguous(rewrite)
                || rewrite.contains(['?', '#', '%'])
                || rewrite.bytes().any(|b| !b.is_ascii_graphic())
            {
                return Err(format!(
                    "rewrite={rewrite}: a path that starts with one `/`, with no `.` or `..` \
                     segment, `?`, `#`, `%`, `\\`, space or non-ASCII character"
                ));
            }
        }
        let (host, path) = parse_spec(spec)?;
        Ok(Route {
            server_name: host.server_name(),
            host,
            path,
            pool,
            rewrite: rewrite.map(Into::into),
            cookie_paths: false,
            answer: None,
            condition: None,
            files: None,
            rate_limit: None,
            own: OwnSettings::default(),
        })
    }

    /// The route for `spec` that serves the files of `files` under its
    /// prefix; with `fallback`, a request for one that is not there (or
    /// with another method than GET or HEAD) goes to the pool of that
    /// index (nginx's `try_files $uri $uri/ @app`).
    pub fn serving_files(
        spec: &str,
        files: Arc<Files>,
        fallback: Option<usize>,
    ) -> Result<Route, String> {
        let (host, path) = parse_spec(spec)?;
        Ok(Route {
            server_name: host.server_name(),
            host,
            path,
            pool: fallback.unwrap_or(0),
            rewrite: None,
            cookie_paths: false,
            answer: None,
            condition: None,
            files: Some(FilesRoute {
                files,
                fallback: fallback.is_some(),
                internal: false,
            }),
            rate_limit: None,
            own: OwnSettings::default(),
        })
    }

    /// This `files` route, reached only by a backend's `X-Accel-Redirect`
    /// (nginx's `internal` location): a client asking for its paths gets
    /// 404.
    pub fn internal(self) -> Result<Route, String> {
        match self.files {
            Some(files) if !files.fallback => Ok(Route {
                files: Some(FilesRoute {
                    internal: true,
                    ..files
                }),
                ..self
            }),
            _ => Err("internal: a route a client never reaches has no pool to fall back to".into()),
        }
    }

    /// Whether this is an `internal` `files` route.
    pub fn is_internal(&self) -> bool {
        self.files.as_ref().is_some_and(|f| f.internal)
    }

    /// For a `files` route: its directory, and whether what is not there
    /// goes to its pool.
    pub fn files(&self) -> Option<(&Files, bool)> {
        (self.files.as_ref()).map(|f| (&*f.files, f.fallback))
    }

    /// For a `files` route: the part of `path` (a request's, without its
    /// query, as sent) below the route's prefix, as
    /// [`Files::find`] reads it: starting with `/`, or empty when the
    /// path is the prefix of a route without a trailing `/` (`/static`
    /// under `route./static`: a directory asked for without its `/`).
    pub fn path_under(&self, path: &str) -> String {
        let path = routing_path(path);
        // The route matched, so the path starts with its prefix.
        let rest = path.strip_prefix(&*self.path).unwrap_or_default();
        match self.path.ends_with('/') {
            true => format!("/{rest}"),
            false => rest.to_string(),
        }
    }

    /// This route (with `rewrite=`), its backends' cookie paths put back
    /// under its prefix too (see [`Route::set_cookie_back`]).
    pub fn with_cookie_paths(self) -> Result<Route, String> {
        if self.rewrite.is_none() {
            return Err(
                "cookie_paths puts cookie paths back from under rewrite=: it needs rewrite=".into(),
            );
        }
        Ok(Route {
            cookie_paths: true,
            ..self
        })
    }

    /// Whether the backends' cookie paths are put back under the route's
    /// prefix (`cookie_paths`).
    pub fn rewrites_cookie_paths(&self) -> bool {
        self.cookie_paths
    }

    /// This route, its requests also limited to `rate` (with `burst`
    /// past it; none given: a second's worth, as `rate_limit_burst`; and
    /// of those, `delay` passing at once, as `rate_limit_delay`) in
    /// buckets of its own: nginx's `limit_req` in a `location`, in front
    /// of the same backends as the rest of the site. Not on a route that
    /// answers before any limit is counted (a redirect, a `return`: as
    /// nginx's `return`, which comes before `limit_req`), nor on an
    /// `internal` one, which clients never reach.
    pub fn with_rate_limit(
        self,
        rate: Rate,
        burst: Option<u32>,
        delay: Option<u32>,
    ) -> Result<Route, String> {
        if self.answer.is_some() {
            return Err(
                "rate_limit=: a redirect or a `return` is answered before any rate limit is \
                 counted; a route to a pool or to files takes one"
                    .into(),
            );
        }
        if self.is_internal() {
            return Err(
                "rate_limit=: an internal route is reached by a backend's X-Accel-Redirect \
                 alone, counted by the route the client asked for"
                    .into(),
            );
        }
        let burst = burst.unwrap_or(rate.one_second());
        let limit = Limit { rate, burst, delay };
        Ok(Route {
            rate_limit: Some(limit),
            ..self
        })
    }

    /// With `rate_limit=`: the route's rate, burst and delay.
    pub fn rate_limit(&self) -> Option<Limit> {
        self.rate_limit
    }

    /// The host it is written for, as written (`example.com`,
    /// `*.example.com`); none for a route of any host.
    pub fn server_name(&self) -> Option<&Arc<str>> {
        self.server_name.as_ref()
    }

    /// With `rewrite=`: what replaces the matched prefix.
    pub fn rewrite(&self) -> Option<&str> {
        self.rewrite.as_deref()
    }

    /// Whether the route answers itself (a redirect, a `return`, files
    /// without `fallback=`), sending to no pool.
    pub fn answers_itself(&self) -> bool {
        self.answer.is_some() || self.files.as_ref().is_some_and(|f| !f.fallback)
    }

    /// The route, taking only the requests that meet `condition`.
    pub fn on_condition(self, condition: Condition) -> Route {
        Route {
            condition: Some(condition),
            ..self
        }
    }

    /// Its `if` condition, if any.
    pub fn condition(&self) -> Option<&Condition> {
        self.condition.as_ref()
    }
}

impl fmt::Display for Route {
    /// As a `route.` key writes it, after the dot.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.host)?;
        // `shop.example` rather than `shop.example/`.
        if &*self.path != "/" || self.host == HostPattern::Any {
            f.write_str(&self.path)?;
        }
        match &self.condition {
            Some(condition) => write!(f, " if {condition}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_routes_are_refused_with_the_reason() {
        for (spec, rewrite, says) in [
            ("shop.example:8080/", None, "no host"),
            ("*/api", None, "no host"),
            ("a..b", None, "no host"),
            ("[zz]", None, "no host"),
            ("/api?x", None, "may hold no"),
            ("/api/*", None, "may hold no"),
            ("/a%2Fb", None, "may hold no"),
            ("/a;b/", None, "may hold no `;`"),
            ("/a/../b", None, "a `.` or `..` segment"),
            ("/a\\b", None, "or a `\\`"),
            ("//a", None, "write `/a`"),
            ("/api/", Some("v2"), "starts with one `/`"),
            ("/api/", Some("/v2?x"), "starts with one `/`"),
            ("/api/", Some("//evil/"), "starts with one `/`"),
            ("/api/", Some("/v2/../x"), "no `.` or `..` segment"),
        ] {
            let e = Route::parse(spec, 1, rewrite).unwrap_err();
            assert!(e.contains(says), "{spec}: {e}");
        }
    }

    #[test]
    fn a_route_is_shown_as_written() {
        for spec in [
            "/",
            "/api/",
            "shop.example",
            "shop.example/a",
            "*.example/b/",
        ] {
            assert_eq!(Route::parse(spec, 1, None).unwrap().to_string(), spec);
        }
    }

    #[test]
    fn a_route_gives_back_what_it_was_made_with() {
        let plain = Route::parse("/api/", 1, None).unwrap();
        assert_eq!(plain.rewrite(), None);
        assert_eq!(plain.server_name(), None);
        assert!(!plain.rewrites_cookie_paths() && plain.condition().is_none());
        assert!(plain.with_cookie_paths().is_err());
        let rewritten = Route::parse("*.example.com/api/", 1, Some("/v2/")).unwrap();
        assert_eq!(rewritten.rewrite(), Some("/v2/"));
        assert_eq!(rewritten.server_name().map(|s| &**s), Some("*.example.com"));
        assert!(!rewritten.rewrites_cookie_paths());
        let cookies = rewritten.with_cookie_paths().unwrap();
        assert!(cookies.rewrites_cookie_paths());
        let on = cookies.on_condition(Condition::parse("method POST").unwrap());
        assert_eq!(
            on.condition().map(|c| c.to_string()).as_deref(),
            Some("method POST")
        );
    }

    #[test]
    fn a_files_route_reads_the_path_below_its_prefix() {
        let dir = || Arc::new(Files::open(env!("CARGO_MANIFEST_DIR")).unwrap());
        let slash = Route::serving_files("/static/", dir(), None).unwrap();
        // As routes read it: escapes of letters decoded, `//` merged.
        assert_eq!(slash.path_under("/static//%61.css"), "/a.css");
        assert_eq!(slash.path_under("/static/"), "/");
        let bare = Route::serving_files("/static", dir(), None).unwrap();
        assert_eq!(bare.path_under("/static/a/b"), "/a/b");
        assert_eq!(bare.path_under("/static"), "");
        // What is not there goes to the pool: a client reaches it, so
        // it cannot be `internal`.
        let fallback = Route::serving_files("/static/", dir(), Some(1)).unwrap();
        assert!(fallback.internal().is_err());
        assert!(slash.internal().unwrap().is_internal());
    }
}
