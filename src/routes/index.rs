//! The routes by host and path, so that a request looks at the few that
//! could take it rather than at every one: nginx finds a `location` in
//! a tree of prefixes and a `server_name` in a hash, and a map file of
//! thousands of routes is common with HAProxy.
//!
//! The index only narrows: each route it yields is still asked
//! [`Route::matches`], and of those that match the first in the sorted
//! order wins, exactly as a scan of them all in that order would find.
//! That holds as long as no route that matches is left out, which is
//! what [`prefixes`] and the host's `.` positions make sure of.

use super::{HostPattern, Lookup, Route};
use std::collections::HashMap;

/// Positions in the sorted routes, ascending, by path as written.
type ByPath = HashMap<Box<str>, Vec<usize>>;

#[derive(Clone, Debug, Default)]
pub(super) struct Index {
    /// By the name of `example.com/...` routes.
    exact: HashMap<Box<str>, ByPath>,
    /// By the suffix (`.example.com`) of `*.example.com/...` routes.
    suffix: HashMap<Box<str>, ByPath>,
    /// Routes for any host.
    any: ByPath,
}

impl Index {
    /// `routes` as [`super::Routes`] keeps them, sorted.
    pub(super) fn new(routes: &[Route]) -> Index {
        let mut index = Index::default();
        for (position, route) in routes.iter().enumerate() {
            let by_path = match &route.host {
                HostPattern::Any => &mut index.any,
                HostPattern::Exact(name) => index.exact.entry(name.clone()).or_default(),
                HostPattern::Suffix(suffix) => index.suffix.entry(suffix.clone()).or_default(),
            };
            by_path
                .entry(route.path.clone())
                .or_default()
                .push(position);
        }
        index
    }

    /// The position of the first of `routes` (the ones it was made of)
    /// that takes a request for `host` and `path`, as [`Route::matches`]
    /// says.
    pub(super) fn find(
        &self,
        routes: &[Route],
        host: Option<&str>,
        path: &str,
        lookup: Lookup<'_>,
    ) -> Option<usize> {
        let mut first: Option<usize> = None;
        let mut look_in = |by_path: &ByPath| {
            for prefix in prefixes(path) {
                let Some(positions) = by_path.get(prefix) else {
                    continue;
                };
                let taken = (positions.iter().copied())
                    .take_while(|&p| first.is_none_or(|f| p < f))
                    .find(|&p| routes.get(p).is_some_and(|r| r.matches(host, path, lookup)));
                if taken.is_some() {
                    first = taken;
                }
            }
        };
        if let Some(host) = host {
            if let Some(by_path) = self.exact.get(host) {
                look_in(by_path);
            }
            // A suffix is stored with its leading `.`, and matches only
            // a longer name: `.example.com` is `a.example.com`'s tail
            // from a `.` past its first byte.
            if !self.suffix.is_empty() {
                for (at, _) in host.match_indices('.').filter(|&(at, _)| at > 0) {
                    if let Some(by_path) = self.suffix.get(&host[at..]) {
                        look_in(by_path);
                    }
                }
            }
        }
        look_in(&self.any);
        first
    }
}

/// Every prefix a route's path can have and match `path` by whole
/// segments (see `path_is_under`): `path` itself, and at each `/` the
/// part before it and the part up to it. `/a/b` gives `/a/b`, ``, `/`,
/// `/a`, `/a/`.
fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    let slashes = path.match_indices('/').map(|(at, _)| at);
    std::iter::once(path).chain(slashes.flat_map(move |at| [&path[..at], &path[..=at]]))
}

#[cfg(test)]
mod tests {
    use super::super::table::SCAN_AT_MOST;
    use super::super::{Condition, Routes};
    use super::*;

    /// Many routes over few hosts and paths, so that they overlap every
    /// way: what the index finds must be what a scan in order finds.
    #[test]
    fn finds_what_a_scan_in_order_finds() {
        const HOSTS: [&str; 7] = [
            "",
            "a.example.com",
            "b.example.com",
            "*.example.com",
            "*.b.example.com",
            "*.com",
            "[::1]",
        ];
        const PATHS: [&str; 8] = ["/", "/a", "/a/", "/a/b", "/a/b/", "/ab", "/b/c", "/a/b/c/d"];
        const CONDITIONS: [Option<&str>; 3] = [None, Some("method GET,HEAD"), Some("method POST")];
        let mut seed = 0x9e37_79b9_u32;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as usize % n
        };
        for round in 0..200 {
            let count = 1 + next(40);
            let written: Vec<Route> = (0..count)
                .map(|pool| {
                    let spec = format!("{}{}", HOSTS[next(HOSTS.len())], PATHS[next(PATHS.len())]);
                    let route = Route::parse(&spec, pool, None).unwrap();
                    match CONDITIONS[next(CONDITIONS.len())] {
                        Some(c) => route.on_condition(Condition::parse(c).unwrap()),
                        None => route,
                    }
                })
                .collect();
            let routes = Routes::new(written);
            let sorted: Vec<Route> = routes.iter().cloned().collect();
            let index = Index::new(&sorted);
            for host in [
                None,
                Some("a.example.com"),
                Some("b.example.com"),
                Some("x.b.example.com"),
                Some("x.y.example.com"),
                Some("example.com"),
                Some("other.com"),
                Some("com"),
                Some("[::1]"),
            ] {
                for path in [
                    "/",
                    "/a",
                    "/a/",
                    "/a/b",
                    "/a/b/c",
                    "/a/b/c/d/e",
                    "/ab/",
                    "/b",
                    "/b/c/",
                ] {
                    for lookup in [Lookup::Bare, Lookup::StoredGet] {
                        let scanned = (sorted.iter()).position(|r| r.matches(host, path, lookup));
                        let found = index.find(&sorted, host, path, lookup);
                        assert_eq!(
                            found, scanned,
                            "round {round}: {host:?} {path} in {routes:?}"
                        );
                    }
                }
            }
        }
    }

    /// The cases of the routes' own tests, with enough routes for other
    /// hosts to be looked up by the index: each request goes where it
    /// goes with the few.
    #[test]
    fn a_long_table_routes_as_its_few_routes_do() {
        let few = [
            ("/api", 1),
            ("/static/", 2),
            ("/a/", 3),
            ("/a/b/", 4),
            ("example.com", 5),
            ("*.example.com/a/", 6),
            ("*.b.example.com", 7),
            ("b.example.com/a/b/c", 8),
            ("/admin/", 9),
        ];
        let table = |padding: usize| {
            let padded = (0..padding).map(|i| (format!("pad{i}.example.net/p{i}/"), 100 + i));
            let written = (few.iter().map(|&(spec, pool)| (spec.to_string(), pool))).chain(padded);
            Routes::new(
                written
                    .map(|(spec, pool)| Route::parse(&spec, pool, None).unwrap())
                    .collect(),
            )
        };
        let (short, long) = (table(0), table(2 * SCAN_AT_MOST));
        assert!(!short.is_indexed() && long.is_indexed());
        let pool = |routes: &Routes, host: Option<&str>, target: &str| {
            let route = routes
                .route(host, target)
                .map(|i| i.and_then(|i| routes.get(i)));
            route.map(|r| r.map_or(0, |r| r.pool))
        };
        let hosts = [
            None,
            Some("example.com"),
            Some("x.example.com:8080"),
            Some("a.b.example.com"),
        ];
        let hosts = hosts
            .into_iter()
            .chain([Some("B.Example.COM."), Some("other.example.net")]);
        for host in hosts {
            for target in [
                "/api",
                "/api/",
                "/api/v1?x=1",
                "/api?x",
                "/apiary",
                "/static/a.css",
                "/static/",
                "/static",
                "/",
                "*",
                "/a/b/c",
                "/a/b/c/d",
                "/a/c",
                "/a",
                "/p7/x",
                "/%61pi/x",
                "/admin;x/",
                "/admin%2Fx",
                "//static//a",
                "/a/./b",
                "/a/%2e%2e/b",
            ] {
                assert_eq!(
                    pool(&long, host, target),
                    pool(&short, host, target),
                    "{host:?} {target}"
                );
            }
        }
        assert_eq!(pool(&long, Some("pad7.example.net"), "/p7/x"), Ok(107));
    }

    #[test]
    fn prefixes_are_every_whole_segment_cut() {
        let all: Vec<&str> = prefixes("/a/bc/").collect();
        assert_eq!(all, ["/a/bc/", "", "/", "/a", "/a/", "/a/bc", "/a/bc/"]);
        let all: Vec<&str> = prefixes("/").collect();
        assert_eq!(all, ["/", "", "/"]);
    }
}
