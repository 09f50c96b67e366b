//! The routes by host and path, so that a request looks at the few that
//! could take it rather than at every one: nginx finds a `location` in
//! a tree of prefixes and a `server_name` in a hash, and a map file of
//! thousands of routes is common with HAProxy.
//!
//! The index only narrows: each route it yields is still asked
//! [`Route::matches`], and of those that match the first in the sorted
//! order wins, exactly as a scan of them all in that order would find.
//! That holds as long as no route that matches is left out, which is
//! what [`cuts`] and the host's `.` positions make sure of.
//!
//! A request looks up only the lengths some route's path (or some
//! `*.` host's suffix) has: every whole-segment prefix of an 8 KiB path
//! of `/a/a/a...` would be 8,000 keys of up to 8 KiB each to hash, tens
//! of milliseconds a request for anyone to ask, where a scan of 10,000
//! routes costs microseconds.

use super::{HostPattern, Lookup, Route};
use std::collections::HashMap;

/// Positions in the sorted routes, ascending, by path as written; and
/// the lengths of those paths, ascending, each once.
#[derive(Clone, Debug, Default)]
struct ByPath {
    positions: HashMap<Box<str>, Vec<usize>>,
    lengths: Vec<usize>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Index {
    /// By the name of `example.com/...` routes.
    exact: HashMap<Box<str>, ByPath>,
    /// By the suffix (`.example.com`) of `*.example.com/...` routes.
    suffix: HashMap<Box<str>, ByPath>,
    /// The lengths of those suffixes, ascending, each once.
    suffix_lengths: Vec<usize>,
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
            (by_path.positions.entry(route.path.clone()).or_default()).push(position);
        }
        let by_paths = (index.exact.values_mut())
            .chain(index.suffix.values_mut())
            .chain([&mut index.any]);
        for by_path in by_paths {
            by_path.lengths = lengths(by_path.positions.keys());
        }
        index.suffix_lengths = lengths(index.suffix.keys());
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
            for prefix in cuts(path, &by_path.lengths) {
                let Some(positions) = get(&by_path.positions, prefix) else {
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
            if let Some(by_path) = get(&self.exact, host) {
                look_in(by_path);
            }
            // A suffix is stored with its leading `.`, and matches only
            // a longer name: `.example.com` is `a.example.com`'s tail
            // from a `.` past its first byte.
            let shorter = self
                .suffix_lengths
                .iter()
                .take_while(|&&len| len < host.len());
            for &len in shorter {
                let tail = host.len() - len;
                if host.as_bytes().get(tail) != Some(&b'.') {
                    continue;
                }
                if let Some(by_path) = host.get(tail..).and_then(|t| get(&self.suffix, t)) {
                    look_in(by_path);
                }
            }
        }
        look_in(&self.any);
        first
    }
}

/// The lengths of `keys`, ascending, each once.
fn lengths<'a>(keys: impl Iterator<Item = &'a Box<str>>) -> Vec<usize> {
    let mut lengths: Vec<usize> = keys.map(|k| k.len()).collect();
    lengths.sort_unstable();
    lengths.dedup();
    lengths
}

/// Every prefix of `path` of one of `lengths` (ascending) that a route's
/// path can be and match `path` by whole segments (see `path_is_under`):
/// `path` itself, or one that ends with a `/` or is followed by one.
/// `/a/b` of every length gives `/`, `/a`, `/a/`, `/a/b`.
fn cuts<'a>(path: &'a str, lengths: &'a [usize]) -> impl Iterator<Item = &'a str> {
    let bytes = path.as_bytes();
    let at_cut = move |len: usize| {
        len == bytes.len()
            || len.checked_sub(1).and_then(|last| bytes.get(last)) == Some(&b'/')
            || bytes.get(len) == Some(&b'/')
    };
    (lengths.iter().copied())
        .take_while(|&len| len <= bytes.len())
        .filter(move |&len| len > 0 && at_cut(len))
        .filter_map(|len| path.get(..len))
}

/// `map.get(key)`, counting in tests the bytes hashed to look it up.
fn get<'m, V>(map: &'m HashMap<Box<str>, V>, key: &str) -> Option<&'m V> {
    #[cfg(test)]
    tests::HASHED.with(|hashed| hashed.set(hashed.get() + key.len()));
    map.get(key)
}

#[cfg(test)]
mod tests {
    use super::super::table::SCAN_AT_MOST;
    use super::super::{Condition, Routes};
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Bytes of the keys the index looked up (see `get`).
        pub(super) static HASHED: Cell<usize> = const { Cell::new(0) };
    }

    /// Many routes over few hosts and paths, so that they overlap every
    /// way: what the index finds must be what a scan in order finds.
    #[test]
    fn finds_what_a_scan_in_order_finds() {
        const HOSTS: [&str; 9] = [
            "",
            "example.com",
            "*.a.example.com",
            "a.example.com",
            "b.example.com",
            "*.example.com",
            "*.b.example.com",
            "*.com",
            "[::1]",
        ];
        const PATHS: [&str; 10] = [
            "/", "/a", "/a/", "/a/b", "/a/b/", "/ab", "/b/c", "/a/b/c/d", "/a/b/c/", "/a-b/",
        ];
        const CONDITIONS: [Option<&str>; 5] = [
            None,
            Some("method GET,HEAD"),
            Some("method POST"),
            Some("path_end /c,/"),
            Some("not path_reg b"),
        ];
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
                Some("a.a.example.com"),
                Some("x..example.com"),
                Some("..example.com"),
                Some(".example.com"),
                Some("example.com"),
                Some(""),
                Some("."),
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
                    "/a/b/c/d/",
                    "/ab",
                    "/é",
                    "/é/x",
                    "/éa/",
                    "/a-b/x",
                ] {
                    for lookup in [Lookup::Bare, Lookup::StoredGet { https: false }] {
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
    fn cuts_are_the_whole_segment_prefixes_of_the_lengths_asked() {
        let every: Vec<usize> = (0..=8).collect();
        let all: Vec<&str> = cuts("/a/bc/", &every).collect();
        assert_eq!(all, ["/", "/a", "/a/", "/a/bc", "/a/bc/"]);
        let all: Vec<&str> = cuts("/a/bc", &every).collect();
        assert_eq!(all, ["/", "/a", "/a/", "/a/bc"]);
        let all: Vec<&str> = cuts("/a/bc/", &[2, 4, 6]).collect();
        assert_eq!(all, ["/a", "/a/bc/"]);
        assert_eq!(cuts("/", &every).collect::<Vec<_>>(), ["/"]);
        // Not on a character's boundary, and so no cut either.
        assert_eq!(cuts("/é/", &[2, 3, 4]).collect::<Vec<_>>(), ["/é", "/é/"]);
    }

    /// A long path of short segments costs as many look-ups as the
    /// routes have lengths of path, of no more bytes than those: before,
    /// each of its 8,000 prefixes was hashed, 33 MB for one request.
    #[test]
    fn a_long_path_hashes_no_more_than_the_routes_lengths() {
        let written: Vec<Route> = (0..2 * SCAN_AT_MOST)
            .map(|i| Route::parse(&format!("/p{}/", i % 20), i, None).unwrap())
            .chain([
                Route::parse("/a/a/", 1000, None).unwrap(),
                Route::parse("a.example.com/a/", 1001, None).unwrap(),
                Route::parse("*.example.com/a/a/a", 1002, None).unwrap(),
            ])
            .map(|r| r.on_condition(Condition::parse("method POST").unwrap()))
            .chain([Route::parse("/a/a/a/a/a/", 1003, None).unwrap()])
            .collect();
        let routes = Routes::new(written);
        assert!(routes.is_indexed());
        let path = "/a".repeat(4096);
        for (host, want) in [
            (None, Some(1003)),
            (Some("a.example.com"), Some(1003)),
            (Some("b.a.example.com"), Some(1003)),
        ] {
            HASHED.with(|hashed| hashed.set(0));
            let found = routes.route(host, &path).unwrap();
            assert_eq!(found.and_then(|i| routes.get(i)).map(|r| r.pool), want);
            let hashed = HASHED.with(Cell::get);
            // Each length of path once in each of at most three places
            // (the host, its suffix, any host), and the host's names.
            assert!(
                hashed <= 3 * (3 + 4 + 5 + 5 + 11) + 64,
                "{host:?}: {hashed} bytes"
            );
        }
    }
}
