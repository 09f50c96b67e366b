//! A configuration's rules, and those a request's host is tried on: the
//! first whose pattern matches the request's path applies, counted.

use super::{Asked, Rewritten, Rule, Unusable};
use crate::http::head::push_host_name;
use crate::routes::{host_of, other_reading, unambiguous_reading, HostPattern};
use std::sync::atomic::Ordering;

/// The rules of one configuration, in the order written.
#[derive(Clone, Debug, Default)]
pub struct Rewrites {
    rules: Vec<Rule>,
    /// Some rule is for some hosts alone: the request's host is read.
    by_host: bool,
    /// Some rule's replacement names `$host`: its value is made.
    names_host: bool,
}

impl Rewrites {
    /// The rules, in the order they are tried (as written). More than
    /// [`MAX_REWRITES`](super::MAX_REWRITES) are refused by the configuration, where it can say
    /// where.
    pub fn new(rules: Vec<Rule>) -> Rewrites {
        let by_host = rules.iter().any(|r| !r.hosts.is_empty());
        let names_host = rules.iter().any(|r| r.replacement.names_host());
        Rewrites {
            rules,
            by_host,
            names_host,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    /// The rules a request for `authority` (its Host, or its absolute-form
    /// target's; a valid one) that came as `scheme` is tried on: those
    /// without `host=`, and those of the most specific host written that
    /// is the request's (a name before `*.` ones, the longest of those
    /// first), as nginx picks one `server` block, and routes a host.
    pub fn for_request<'r>(&'r self, authority: Option<&str>, scheme: &'r str) -> HostRules<'r> {
        let host = authority.filter(|_| self.by_host).map(host_of);
        let best = (self.rules.iter())
            .flat_map(|r| r.hosts.iter())
            .filter(|h| h.matches(host.as_deref()))
            .map(HostPattern::rank)
            .max();
        let named_host = authority.filter(|_| self.names_host).map(|authority| {
            let mut name = String::with_capacity(authority.len());
            push_host_name(&mut name, authority);
            name
        });
        let named_host = named_host.filter(|name| !name.is_empty());
        HostRules {
            rules: &self.rules,
            host,
            best,
            asked: Asked {
                host: named_host,
                scheme,
            },
        }
    }

    /// Takes the counts of `running`'s rules of the same names, for a
    /// reload: a rule's `/metrics` count goes on, as a pool's does. Only
    /// for rules not in use yet (counted by no request).
    pub fn keep_counts_of(&mut self, running: &Rewrites) {
        for rule in &mut self.rules {
            if let Some(old) = running.rules.iter().find(|r| r.name == rule.name) {
                rule.applied = old.applied.clone();
            }
        }
    }
}

/// The rules of one request's host (see [`Rewrites::for_request`]).
pub struct HostRules<'r> {
    rules: &'r [Rule],
    /// As routes compare it; `None` when no rule names a host.
    host: Option<String>,
    /// How specific the most specific host written that is this one is.
    best: Option<(u8, usize)>,
    asked: Asked<'r>,
}

impl HostRules<'_> {
    /// What the first rule whose pattern matches the path of `target` (a
    /// request's path and query, origin-form) makes of it, counted;
    /// `Ok(None)` when none matches, or for a target that is no path
    /// (`*`) or one that routes refuse as ambiguous (see
    /// [`is_ambiguous`](crate::routes::is_ambiguous)): such a request goes on as it came.
    pub fn apply(&self, target: &str) -> Result<Option<Rewritten>, Unusable> {
        if self.rules.is_empty() || !target.starts_with('/') {
            return Ok(None);
        }
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        let Some(path) = unambiguous_reading(path) else {
            return Ok(None);
        };
        let Some(rule) = self.first(&path).map(|i| &self.rules[i]) else {
            return Ok(None);
        };
        let rewritten = rule.rewrite(&path, target, &self.asked)?;
        rule.applied.fetch_add(1, Ordering::Relaxed);
        Ok(Some(rewritten))
    }

    /// Whether backends could read the path of `target` (origin-form) in
    /// ways that differ on what this host's rules do with it, as routes
    /// refuse (see [`is_ambiguous`](crate::routes::is_ambiguous)): it holds a dot segment or an escape
    /// some backend decodes into one, as sent or as rules read it
    /// (`%25%32%65` reads `%252e`); or a `%2F` or `;` parameter that,
    /// read as some servers read them, would have another rule apply, or
    /// none (a rule for `^/admin/` and `/admin%2Fusers`,
    /// `/admin;x/users`). A host no rule is for has nothing to tell.
    pub fn ambiguous(&self, target: &str) -> bool {
        if !target.starts_with('/') || !self.rules.iter().any(|r| self.tried(r)) {
            return false;
        }
        let path = &target[..target.find('?').unwrap_or(target.len())];
        let Some(read) = unambiguous_reading(path) else {
            return true;
        };
        other_reading(path).is_some_and(|other| self.first(&other) != self.first(&read))
    }

    /// Whether `rule` is for this request's host.
    fn takes(&self, rule: &Rule) -> bool {
        rule.hosts.is_empty()
            || (rule.hosts.iter())
                .any(|h| Some(h.rank()) == self.best && h.matches(self.host.as_deref()))
    }

    /// Whether `rule` is tried on this request: one of its host's, and
    /// for a rule that writes `$host`, one that names a host (as a rule
    /// with `host=` is not tried on one that names none).
    fn tried(&self, rule: &Rule) -> bool {
        self.takes(rule) && (self.asked.host.is_some() || !rule.replacement.names_host())
    }

    /// The first of the rules tried on this request whose pattern matches
    /// `path` (as routes read it).
    fn first(&self, path: &str) -> Option<usize> {
        (self.rules.iter()).position(|r| self.tried(r) && r.regex.is_match(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::tests::{internal, made, redirect, rules};

    #[test]
    fn the_first_rule_that_matches_applies_and_no_other_after_it() {
        let r = rules(&[
            ("specific", "^/a/b$ /one"),
            ("general", "^/a/ /two"),
            ("chained", "^/one$ /three"),
        ]);
        assert_eq!(
            r.for_request(None, "http").apply("/a/b").unwrap(),
            internal("/one")
        );
        assert_eq!(
            r.for_request(None, "http").apply("/a/c").unwrap(),
            internal("/two")
        );
        assert_eq!(
            r.for_request(None, "http").apply("/one").unwrap(),
            internal("/three")
        );
        assert_eq!(r.for_request(None, "http").apply("/z").unwrap(), None);
        let counts: Vec<u64> = r.iter().map(Rule::applied).collect();
        assert_eq!(counts, [1, 1, 1]);
    }

    #[test]
    fn the_path_is_matched_as_routes_read_it() {
        assert_eq!(made("^/api/x$ /v2/x", "/%61pi//x"), internal("/v2/x"));
        assert_eq!(made("^/api/(.*)$ /$1", "//api/%7Euser"), internal("/~user"));
        // An escaped `/` stays one: part of a segment.
        assert_eq!(made("^/a/b$ /c", "/a%2Fb"), None);
        // What routes refuse is not rewritten: it is answered 400.
        assert_eq!(made("^/api/ /x", "/x/../api/"), None);
        assert_eq!(made("^/api/ /x", "/api/%2e%2e/y"), None);
        // Nor is a target that is no path.
        assert_eq!(made(". /x", "*"), None);
    }

    #[test]
    fn a_path_read_otherwise_where_that_changes_the_rule_is_ambiguous() {
        let r = rules(&[("admin", "^/admin/ https://admin.example.com/")]);
        for (target, ambiguous) in [
            ("/admin/users", false),
            ("/admin%2Fusers", true),
            ("/admin;x/users", true),
            ("/other;x/y", false),
            ("/docs%2Fa", false),
            ("/old/%25%32%65", true),
            ("/x/../admin/", true),
            ("*", false),
        ] {
            assert_eq!(
                r.for_request(None, "http").ambiguous(target),
                ambiguous,
                "{target}"
            );
        }
        assert!(!Rewrites::default()
            .for_request(None, "http")
            .ambiguous("/admin%2Fusers"));
        // A rule for another host changes nothing of this host's path.
        let r = rules(&[("admin", "^/admin/ /x host=admin.example")]);
        assert!(r
            .for_request(Some("Admin.Example:8080"), "http")
            .ambiguous("/admin%2Fusers"));
        assert!(!r
            .for_request(Some("www.example"), "http")
            .ambiguous("/admin%2Fusers"));
    }

    #[test]
    fn host_and_scheme_are_the_request_s_own() {
        let r = rules(&[
            (
                "secure",
                "^/account/(.*)$ https://$host/account/$1 permanent",
            ),
            ("moved", "^/old/(.*)$ $scheme://new.example/$1"),
            ("sites", "^/(.*)$ /sites/${host}_/$1"),
        ]);
        let apply =
            |authority, scheme, target| (r.for_request(authority, scheme).apply(target)).unwrap();
        // nginx's `$host`: lower case, without the port or a final dot.
        assert_eq!(
            apply(Some("Shop.Example.:8080"), "http", "/account/a?x=1"),
            redirect(301, "https://shop.example/account/a?x=1")
        );
        assert_eq!(
            apply(Some("[::1]:8080"), "http", "/account/a"),
            redirect(301, "https://[::1]/account/a")
        );
        assert_eq!(
            apply(Some("a.example"), "https", "/old/x"),
            redirect(302, "https://new.example/x")
        );
        assert_eq!(
            apply(None, "http", "/old/x"),
            redirect(302, "http://new.example/x")
        );
        assert_eq!(
            apply(Some("a.example"), "http", "/b/c"),
            internal("/sites/a.example_/b/c")
        );
        // A request that names no host takes no rule that writes it (as
        // none with `host=`): the next that matches applies, or none.
        assert_eq!(apply(None, "http", "/account/a"), None);
        let r = rules(&[
            ("sites", "^/(.*)$ /sites/$host/$1"),
            ("rest", "^/(.*)$ /default/$1"),
        ]);
        assert_eq!(
            r.for_request(None, "http").apply("/a").unwrap(),
            internal("/default/a")
        );
        // `${N}` is a group, so that a digit can follow it.
        assert_eq!(made("^/(a)$ /${1}0", "/a"), internal("/a0"));
    }

    #[test]
    fn a_rule_with_hosts_is_tried_on_their_requests_alone() {
        let r = rules(&[
            (
                "shop",
                "^/old/(.*)$ /shop/$1 host=shop.example,*.shop.example",
            ),
            ("blog", "^/old/(.*)$ /blog/$1 host=[::1]"),
            ("any", "^/old/(.*)$ /any/$1"),
        ]);
        for (authority, made) in [
            (Some("shop.example"), "/shop/a"),
            (Some("SHOP.example.:8443"), "/shop/a"),
            (Some("eu.shop.example"), "/shop/a"),
            (Some("[0:0::1]:8080"), "/blog/a"),
            (Some("evilshop.example"), "/any/a"),
            (Some("other.example"), "/any/a"),
            (None, "/any/a"),
        ] {
            assert_eq!(
                r.for_request(authority, "http").apply("/old/a").unwrap(),
                internal(made),
                "{authority:?}"
            );
        }
        // The most specific host written wins, whatever the order, as
        // nginx's `server_name` and routes pick: a name's rules, not the
        // `*.` ones; rules without `host=` are every host's.
        let r = rules(&[
            ("wild", "^/(.*)$ /wild/$1 host=*.example.com"),
            ("www", "^/x$ /exact host=www.example.com"),
            ("all", "^/c$ /common"),
        ]);
        for (authority, target, made) in [
            ("www.example.com", "/x", internal("/exact")),
            ("www.example.com", "/c", internal("/common")),
            ("www.example.com", "/y", None),
            ("a.example.com", "/x", internal("/wild/x")),
            ("example.com", "/x", None),
        ] {
            let got = r
                .for_request(Some(authority), "http")
                .apply(target)
                .unwrap();
            assert_eq!(got, made, "{authority}{target}");
        }
        // A host no rule is for is not refused what its rules would not
        // read otherwise.
        let r = rules(&[("shop", "^/a/ /b/ host=shop.example")]);
        assert!(r
            .for_request(Some("shop.example"), "http")
            .ambiguous("/a/../b"));
        assert!(!r
            .for_request(Some("blog.example"), "http")
            .ambiguous("/a/../b"));
        assert!(!r.for_request(None, "http").ambiguous("/a/../b"));
        let r = rules(&[(
            "shop",
            "^/old/(.*)$ /shop/$1 host=shop.example,*.shop.example",
        )]);
        let shown = r.iter().next().unwrap().to_string();
        assert!(
            shown.contains("/shop/$1 host=shop.example,*.shop.example:"),
            "{shown}"
        );
    }

    #[test]
    fn a_configuration_without_rules_is_empty() {
        assert!(Rewrites::default().is_empty());
        assert!(!rules(&[("a", "^/a /x")]).is_empty());
    }

    #[test]
    fn a_reload_keeps_the_counts_of_rules_that_keep_their_names() {
        let old = rules(&[("a", "^/a /x"), ("b", "^/b /x")]);
        old.for_request(None, "http").apply("/a").unwrap();
        old.for_request(None, "http").apply("/b").unwrap();
        old.for_request(None, "http").apply("/b").unwrap();
        let mut new = rules(&[("b", "^/bb /y"), ("c", "^/c /y")]);
        new.keep_counts_of(&old);
        let counts: Vec<u64> = new.iter().map(Rule::applied).collect();
        assert_eq!(counts, [2, 0]);
        new.for_request(None, "http").apply("/bb").unwrap();
        assert_eq!(old.iter().nth(1).unwrap().applied(), 3);
    }
}
