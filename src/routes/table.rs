//! The table of routes ([`Routes`]), most specific first, and the one
//! route of it a request goes to.

use super::index::Index;
use super::paths::{other_reading, path_is_under, path_of_target, unambiguous_reading};
use super::spec::{host_of, HostPattern};
use super::{Lookup, Route};
// For the links of the docs: routes refuse what it says is ambiguous.
#[cfg(doc)]
use super::is_ambiguous;

/// Most routes one configuration may hold. A request looks up only those
/// that could take it (see `index`), so this bounds the memory and the
/// time to load, as HAProxy's map files of thousands of lines.
pub const MAX_ROUTES: usize = 10_000;

/// Most routes a request is compared with one by one: up to about this
/// many, a scan costs less than the index's hash look-ups (one for each
/// length of route path that cuts the request's path at a segment, for
/// each host the request could match), and finds the same route.
pub(super) const SCAN_AT_MOST: usize = 100;

/// The routes of one configuration, most specific first.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    routes: Vec<Route>,
    /// With many routes, the routes by host and path: a request looks
    /// only at those that could take it (see [`SCAN_AT_MOST`]).
    index: Option<Index>,
    /// Some route names a host: the request's is read (else no request
    /// pays for spelling it).
    by_host: bool,
    /// Some route is an `internal` `files` route: a backend's
    /// `X-Accel-Redirect` may name a file of it (else no request pays for
    /// keeping what such a file would be served for).
    accel: bool,
}

/// A request path that routes refuse (see [`is_ambiguous`]): answered 400.
#[derive(Debug, PartialEq, Eq)]
pub struct Ambiguous;

impl Routes {
    /// Any order: they are sorted by specificity. Two routes for one host
    /// and path are refused by the configuration, where it can say where.
    pub fn new(mut routes: Vec<Route>) -> Routes {
        // Stable: routes with conditions for one host and path are tried
        // in the order written, and before the one without.
        routes.sort_by(|a, b| {
            (b.host.rank().cmp(&a.host.rank()))
                .then(b.path.len().cmp(&a.path.len()))
                .then(b.condition.is_some().cmp(&a.condition.is_some()))
        });
        let by_host = routes.iter().any(|r| r.host != HostPattern::Any);
        let accel = routes.iter().any(Route::is_internal);
        Routes {
            index: (routes.len() > SCAN_AT_MOST).then(|| Index::new(&routes)),
            routes,
            by_host,
            accel,
        }
    }

    /// Whether an `internal` `files` route is there for a backend's
    /// `X-Accel-Redirect` to name a file of.
    pub fn take_accel_redirects(&self) -> bool {
        self.accel
    }

    /// Whether a request looks its route up in the index.
    #[cfg(test)]
    pub(super) fn is_indexed(&self) -> bool {
        self.index.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Whether some route is for some host alone.
    pub fn by_host(&self) -> bool {
        self.by_host
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The route that serves a request for `authority` (its Host, or its
    /// absolute-form target's) and `target` (its path and query), as an
    /// index for [`Routes::get`]; `None`: `targets` does. A target that
    /// is no path (`*`, OPTIONS of the whole server) goes by its host.
    /// With routes set, a path backends may read otherwise than it is
    /// matched (see [`is_ambiguous`]) is refused. Routes with an `if`
    /// condition take no such request (see [`Routes::route_asked`]).
    pub fn route(&self, authority: Option<&str>, target: &str) -> Result<Option<usize>, Ambiguous> {
        self.route_asked(authority, target, Lookup::Bare)
    }

    /// [`Routes::route`] for a request: routes with an `if` condition
    /// take it as `lookup` meets theirs.
    pub fn route_asked(
        &self,
        authority: Option<&str>,
        target: &str,
        lookup: Lookup<'_>,
    ) -> Result<Option<usize>, Ambiguous> {
        if self.routes.is_empty() {
            return Ok(None);
        }
        let path = path_of_target(target);
        let Some(read) = unambiguous_reading(path) else {
            return Err(Ambiguous);
        };
        let host = authority.filter(|_| self.by_host).map(host_of);
        let host = host.as_deref();
        let find = |path: &str| match &self.index {
            Some(index) => index.find(&self.routes, host, path, lookup),
            None => (self.routes.iter()).position(|r| r.matches(host, path, lookup)),
        };
        let route = find(&read);
        // Java servers drop `;` parameters from segments (`/admin;x/`),
        // and many decode `%2F`: where that would be another route's
        // path, it is no path to route.
        match other_reading(path) {
            Some(other) if find(&other) != route => Err(Ambiguous),
            _ => Ok(route),
        }
    }

    pub fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }
}

impl Route {
    /// Whether a request for `host` (as [`host_of`] gives it) and `path`
    /// (as [`routing_path`](super::routing_path) gives it, without the query) comes here; to
    /// a route with a condition, only one that meets it (see [`Lookup`]).
    pub(super) fn matches(&self, host: Option<&str>, path: &str, lookup: Lookup<'_>) -> bool {
        let condition_met = || (self.condition.as_ref()).is_none_or(|c| c.met(lookup, path));
        self.host.matches(host) && path_is_under(path, &self.path) && condition_met()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{Asked, Condition};

    fn routes(specs: &[(&str, usize)]) -> Routes {
        Routes::new(
            (specs.iter())
                .map(|&(spec, pool)| Route::parse(spec, pool, None).unwrap())
                .collect(),
        )
    }

    fn pool(routes: &Routes, host: Option<&str>, target: &str) -> usize {
        let route = routes
            .route(host, target)
            .unwrap()
            .and_then(|i| routes.get(i));
        route.map_or(0, |r| r.pool)
    }

    #[test]
    fn the_table_says_what_its_routes_ask_of_a_request() {
        let none = Routes::default();
        assert!(none.is_empty() && !none.by_host() && !none.take_accel_redirects());
        let paths = routes(&[("/api/", 1), ("/", 2)]);
        assert!(!paths.is_empty() && !paths.by_host() && !paths.take_accel_redirects());
        assert!(routes(&[("/api/", 1), ("shop.example/", 2)]).by_host());
        // Only an `internal` route is one a backend's `X-Accel-Redirect`
        // may name: a plain `files` route is for clients.
        let dir =
            std::sync::Arc::new(crate::files::Files::open(env!("CARGO_MANIFEST_DIR")).unwrap());
        let served = Route::serving_files("/static/", dir.clone(), None).unwrap();
        let internal = Route::serving_files("/protected/", dir, None).unwrap();
        assert!(!Routes::new(vec![served.clone()]).take_accel_redirects());
        let both = Routes::new(vec![served, internal.internal().unwrap()]);
        assert!(both.take_accel_redirects());
        assert_eq!(both.iter().filter(|r| r.is_internal()).count(), 1);
    }

    #[test]
    fn paths_match_whole_segments() {
        let r = routes(&[("/api", 1), ("/static/", 2)]);
        for (target, want) in [
            ("/api", 1),
            ("/api/", 1),
            ("/api/v1?x=1", 1),
            ("/api?x", 1),
            ("/apiary", 0),
            ("/static/a.css", 2),
            ("/static/", 2),
            ("/static", 0),
            ("/", 0),
            ("*", 0),
        ] {
            assert_eq!(pool(&r, None, target), want, "{target}");
        }
    }

    #[test]
    fn the_longest_path_wins_whatever_the_order_written() {
        for specs in [[("/a/", 1), ("/a/b/", 2)], [("/a/b/", 2), ("/a/", 1)]] {
            let r = routes(&specs);
            assert_eq!(pool(&r, None, "/a/b/c"), 2);
            assert_eq!(pool(&r, None, "/a/c"), 1);
        }
    }

    #[test]
    fn a_path_condition_reads_the_path_backends_read_and_refuses_another_reading() {
        let on = |spec: &str, pool: usize, condition: &str| {
            let route = Route::parse(spec, pool, None).unwrap();
            route.on_condition(Condition::parse(condition).unwrap())
        };
        let r = Routes::new(vec![
            on("/", 1, "path_end .php"),
            on("/", 2, r"path_reg ^/[^/]+\.(png|jpg)$"),
            on("/static/", 3, "not path_end .map"),
        ]);
        for (target, want) in [
            ("/index.php", 1),
            ("/a/INDEX.PHP?x=.png", 1),
            // Escaped letters are decoded, as backends decode them.
            ("/x.ph%70", 1),
            ("/x.%50HP", 1),
            ("/a.png", 2),
            ("/a/b.png", 0),
            ("/a.png/x", 0),
            ("/static/app.js", 3),
            ("/static/app.js.map", 0),
            ("/static/x.php", 3),
        ] {
            for lookup in [Lookup::Bare, Lookup::StoredGet { https: false }] {
                let index = r.route_asked(None, target, lookup).unwrap();
                let pool = index.and_then(|i| r.get(i)).map_or(0, |route| route.pool);
                assert_eq!(pool, want, "{target}");
            }
        }
        // A path a Java server reads without its `;` parameter, or one
        // that decodes `%2F`, where that reading ends otherwise: no path
        // to route (400), rather than a way around `return 403`.
        for target in [
            "/x.php;a",
            "/x.php;.png",
            "/a%2Fb.png",
            "/static/app.js.map;x",
        ] {
            assert_eq!(r.route(None, target), Err(Ambiguous), "{target}");
        }
    }

    #[test]
    fn a_route_with_a_condition_goes_before_the_one_without_at_its_place() {
        let on = |spec: &str, pool: usize, condition: &str| {
            let route = Route::parse(spec, pool, None).unwrap();
            route.on_condition(Condition::parse(condition).unwrap())
        };
        let r = Routes::new(vec![
            Route::parse("/api/", 1, None).unwrap(),
            on("/api/", 2, "cookie canary 1"),
            on("/api/", 3, "header x-canary"),
            on("/", 4, "header upgrade websocket"),
            Route::parse("/api/v1/", 5, None).unwrap(),
        ]);
        let mut headers = crate::http::Headers::new();
        let pool = |headers: &crate::http::Headers, target: &str| {
            let asked = Asked {
                method: "GET",
                target: "/",
                headers,
                client: "127.0.0.1".parse().unwrap(),
                listener: ([0, 0, 0, 0], 8080).into(),
                https: false,
                geoip: crate::geoip::Geo::default(),
            };
            let index = r
                .route_asked(None, target, Lookup::Request(&asked))
                .unwrap();
            index.and_then(|i| r.get(i)).map_or(0, |route| route.pool)
        };
        assert_eq!(pool(&headers, "/api/x"), 1);
        headers.push("Upgrade", "websocket");
        // The longest path first: `/api/` is more specific than `/`.
        assert_eq!(pool(&headers, "/api/x"), 1);
        assert_eq!(pool(&headers, "/chat"), 4);
        headers.push("Cookie", "canary=1");
        headers.push("X-Canary", "yes");
        // Of two conditions met at one place, the first written.
        assert_eq!(pool(&headers, "/api/x"), 2);
        assert_eq!(pool(&headers, "/api/v1/x"), 5);
        // Without the request's fields, no condition is met.
        assert_eq!(r.route(None, "/chat"), Ok(None));
        assert_eq!(
            r.get(r.route(None, "/api/x").unwrap().unwrap())
                .unwrap()
                .pool,
            1
        );
        assert_eq!(
            on("/api/", 2, "cookie  canary 1").to_string(),
            "/api/ if cookie canary 1"
        );
    }

    #[test]
    fn a_negated_route_takes_what_its_condition_leaves_and_no_bare_lookup() {
        let on = |spec: &str, pool: usize, condition: &str| {
            let route = Route::parse(spec, pool, None).unwrap();
            route.on_condition(Condition::parse(condition).unwrap())
        };
        let r = Routes::new(vec![
            Route::parse("/", 1, None).unwrap(),
            on("/", 2, "not cookie session"),
            on("/admin/", 3, "not client 10.0.0.0/8"),
            on("/api/", 4, "header upgrade websocket and not cookie beta"),
            on("/w/", 5, "not method GET,HEAD"),
        ]);
        let pool = |lookup: Lookup<'_>, target: &str| {
            let index = r.route_asked(None, target, lookup).unwrap();
            index.and_then(|i| r.get(i)).map_or(0, |route| route.pool)
        };
        fn ask<'a>(method: &'a str, headers: &'a Headers, client: &str) -> Asked<'a> {
            Asked {
                method,
                target: "/",
                headers,
                client: client.parse().unwrap(),
                listener: ([0, 0, 0, 0], 8080).into(),
                https: false,
                geoip: crate::geoip::Geo::default(),
            }
        }
        use crate::http::Headers;
        let headers = Headers::new();
        let anonymous = ask("GET", &headers, "192.0.2.1");
        assert_eq!(pool(Lookup::Request(&anonymous), "/page"), 2);
        assert_eq!(pool(Lookup::Request(&anonymous), "/admin/x"), 3);
        let office = ask("GET", &headers, "10.1.1.1");
        // Past the routes not met, to the shorter path's.
        assert_eq!(pool(Lookup::Request(&office), "/admin/x"), 2);
        assert_eq!(pool(Lookup::Request(&anonymous), "/w/x"), 2);
        let post = ask("POST", &headers, "192.0.2.1");
        assert_eq!(pool(Lookup::Request(&post), "/w/x"), 5);
        let mut upgrade = Headers::new();
        upgrade.push("Upgrade", "websocket");
        let socket = ask("GET", &upgrade, "192.0.2.1");
        assert_eq!(pool(Lookup::Request(&socket), "/api/chat"), 4);
        upgrade.push("Cookie", "session=1; beta=1");
        let signed_in = ask("GET", &upgrade, "192.0.2.1");
        assert_eq!(pool(Lookup::Request(&signed_in), "/page"), 1);
        assert_eq!(pool(Lookup::Request(&signed_in), "/api/chat"), 1);
        // No request, so none lacks a cookie: the route without a
        // condition, or `targets`.
        assert_eq!(pool(Lookup::Bare, "/page"), 1);
        assert_eq!(pool(Lookup::Bare, "/admin/x"), 1);
        assert_eq!(pool(Lookup::Bare, "/w/x"), 1);
        // A stored GET came through no route that reads past the key.
        assert_eq!(pool(Lookup::StoredGet { https: false }, "/page"), 1);
        assert_eq!(pool(Lookup::StoredGet { https: false }, "/w/x"), 1);
        assert_eq!(
            on("/", 2, "not  cookie session").to_string(),
            "/ if not cookie session"
        );
    }

    #[test]
    fn the_most_specific_host_wins_before_the_longest_path() {
        let r = routes(&[
            ("/api/", 1),
            ("shop.example", 2),
            ("*.example", 3),
            ("*.eu.example", 4),
            ("shop.example/admin/", 5),
            ("[::1]", 6),
        ]);
        for (host, target, want) in [
            (Some("shop.example"), "/api/x", 2),
            (Some("Shop.Example.:8080"), "/api/x", 2),
            (Some("shop.example"), "/admin/x", 5),
            (Some("blog.example"), "/api/x", 3),
            (Some("a.eu.example"), "/", 4),
            (Some("a.b.eu.example"), "/", 4),
            (Some("example"), "/api/x", 1),
            (Some("eu.example"), "/", 3),
            (None, "/api/x", 1),
            (None, "/", 0),
            (Some("other"), "/", 0),
            (Some("shop.example"), "*", 2),
            (Some("[0:0::1]:8080"), "/", 6),
            (Some("[::2]"), "/", 0),
            (None, "*", 0),
        ] {
            assert_eq!(pool(&r, host, target), want, "{host:?} {target}");
        }
    }

    #[test]
    fn no_spelling_of_a_path_slips_past_its_route() {
        let r = routes(&[("/admin/", 1)]);
        for target in [
            "/%61dmin/x",
            "/%61%64min/x",
            "//admin/x",
            "/admin//x",
            "/admin/a.b",
        ] {
            assert_eq!(pool(&r, None, target), 1, "{target}");
        }
        for target in ["/Admin/", "/x/admin/", "/x;jsessionid=1/admin"] {
            assert_eq!(pool(&r, None, target), 0, "{target}");
        }
        // An encoded `/`, or `;` parameters, where no server would read
        // another route's path (GitLab's `group%2Fproject`, a session id).
        let api = routes(&[("/api/", 1), ("/admin/", 2)]);
        for target in ["/api/v4/projects/group%2Fproject", "/api/x;jsessionid=1"] {
            assert_eq!(pool(&api, None, target), 1, "{target}");
        }
        // An escaped `;` is no parameter: servers drop parameters before
        // they decode, so `/admin%3Bx/` is no `/admin/` to any of them.
        assert_eq!(api.route(None, "/admin%3Bx/secret"), Ok(None));
        // What backends resolve in different ways is refused outright.
        for target in [
            "/x/../admin/y",
            "/./admin/",
            "/admin//../secret",
            "/x/%2e%2e/admin/",
            "/x/%2E./admin/",
            "/x/..%2Fadmin/",
            "/static%2F../admin/",
            "/x/..;/admin/",
            "/x/.;a=b/admin/",
            "/x/..\\admin/",
            "/x\\admin/",
            "/x%5Cadmin/",
            "/x/..",
            "/x/.?q",
            // Where a server that decodes `%2F` or drops `;` parameters
            // reads the path of another route.
            "/admin%2Fx",
            "/%2fadmin/x",
            "/admin;x/secret",
            "/admin;/secret",
            "/admin;v=2/x",
            // Escapes that some server decodes into a dot or separator.
            "/.%00/admin/",
            "/%u002e%u002e/admin/",
            "/%252e%252e/admin/",
            // The same, its escapes of `2` and `e` spelled escaped or
            // split, which routes decode before matching.
            "/x/%25%32%65%25%32%65/admin/",
            "/x/%%32e%%32e/admin/",
            "/x/%25%32e%25%32e/admin/",
            "/x/%25%32%46admin/",
            "/%c0%ae%c0%ae/admin/",
            "/x/..%3B/admin/",
        ] {
            assert_eq!(r.route(None, target), Err(Ambiguous), "{target}");
        }
        // Dots within a name are no segments; and no routes, no refusal.
        for target in ["/a.b/c..d/.e/f./...", "/x/..a;/", "/%2e%2e%2e/"] {
            assert!(r.route(None, target).is_ok(), "{target}");
        }
        assert_eq!(Routes::default().route(None, "/x/../admin/"), Ok(None));
    }
}
