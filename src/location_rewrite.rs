//! `location_rewrite` (nginx's `proxy_redirect`, HAProxy's `http-response
//! replace-header Location`): the URL in a backend's `Location` and
//! `Refresh` made one the client can follow, for a backend that writes
//! its own address or scheme into its redirects
//! (`location_rewrite = http://app.internal:8080/ $scheme://$host/`, or
//! `http:// https://` behind TLS the proxy ends). Rules are tried in the
//! order written; the first whose prefix begins the URL replaces it, as
//! nginx applies the first matching directive.

use crate::config::FieldFamily;
use crate::field_value::{Facts, FieldValue};
use crate::rewrite::Pattern;
use crate::rule_pairs::{self, Part, MAX_MADE};
use crate::variables::{self, Named, Piece, Var};

/// The rules, in the order written; empty when the setting is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocationRewrite {
    rules: Box<[Rule]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    /// A URL that begins with `from` has that start replaced by `to`.
    Prefix {
        from: Box<str>,
        /// Its scheme and authority (`http://app.internal:8080`), compared
        /// in any case as URLs' are (RFC 3986 §6.2.2.1); the rest as
        /// written.
        authority_len: usize,
        to: FieldValue,
    },
    /// nginx's `~pattern`: a URL it matches is replaced whole by `to`,
    /// which may name the match's groups.
    Pattern {
        pattern: Pattern,
        to: Box<[Part<FieldValue>]>,
    },
}

/// The replacements of the rules, their variables' values made for one
/// request: each rule's, in the order of the rules.
#[derive(Debug, Default)]
pub struct Rendered {
    replacements: Vec<Vec<Part<String>>>,
}

impl LocationRewrite {
    /// Comma separated rules, each `<from> <to>`: a prefix of the URLs to
    /// replace, or nginx's `~pattern` (`~*` in any case) matching those
    /// to replace whole, and what replaces it, which may name the
    /// request's variables of [`SAME_FOR_A_URL`] and a pattern's groups
    /// (`$1` to `$9`). Empty = off.
    pub fn parse(v: &str) -> Result<LocationRewrite, String> {
        let mut rules = Vec::new();
        let example = "http://app.internal:8080/ https://www.example.com/";
        for (from, to) in rule_pairs::parse(v, example)? {
            let read = |text: &str| replacement(text).map(|v| vec![Part::Text(v)]);
            let rule = match rule_pairs::pattern_rule(from, to, read) {
                Some(rule) => {
                    let (pattern, to) = rule?;
                    Rule::Pattern { pattern, to }
                }
                None if from.contains('$') => {
                    return Err(format!(
                        "`{from}`: the URLs to replace are written as they come, without \
                         variables (the replacement may name them)"
                    ))
                }
                None if rule_pairs::names_a_group(to) => {
                    return Err(format!(
                        "`{to}` names a group, which only a pattern (`~...`) has; `$$` writes \
                         a dollar"
                    ))
                }
                None => Rule::Prefix {
                    from: from.into(),
                    authority_len: authority_len(from),
                    to: replacement(to)?,
                },
            };
            rules.push(rule);
        }
        Ok(LocationRewrite {
            rules: rules.into(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules' replacements as they apply to the request `facts`
    /// tells of: their variables' values made from the request as the
    /// client sent it (its `$host`, not the one the backend is sent).
    pub fn for_request(&self, facts: &Facts<'_>) -> Rendered {
        self.rendered_with(|to| {
            let mut out = Vec::new();
            to.render_url(facts, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
    }

    /// The replacements, each text as `render` makes it.
    fn rendered_with(&self, mut render: impl FnMut(&FieldValue) -> String) -> Rendered {
        let replacements = self.rules.iter().map(|rule| match rule {
            Rule::Prefix { to, .. } => vec![Part::Text(render(to))],
            Rule::Pattern { to, .. } => (to.iter())
                .map(|part| match part {
                    Part::Text(text) => Part::Text(render(text)),
                    Part::Group(n) => Part::Group(*n),
                })
                .collect(),
        });
        Rendered {
            replacements: replacements.collect(),
        }
    }

    /// A `Location` as the first rule that takes it makes it, with the
    /// replacements `rendered` for its request; `None` when none does.
    pub fn location(&self, rendered: &Rendered, url: &str) -> Option<String> {
        let mut rules = self.rules.iter().zip(&rendered.replacements);
        let made = rules.find_map(|(rule, to)| rule.apply(to, url))?;
        Some(made).filter(|made| made.len() <= MAX_MADE)
    }

    /// A `Refresh` (`5; url=http://app.internal/next`) with the URL after
    /// its `url=` made as a `Location` is; `None` when it has none, or no
    /// rule takes it.
    pub fn refresh(&self, rendered: &Rendered, value: &str) -> Option<String> {
        let at = value.to_ascii_lowercase().find("url=")? + "url=".len();
        let (before, url) = value.split_at(at);
        // Some servers quote it: `url='/next'`.
        let quote = url.get(..1).filter(|q| matches!(*q, "'" | "\""));
        let unquoted = quote.map_or(url, |q| &url[q.len()..]);
        let made = self.location(rendered, unquoted)?;
        Some(format!("{before}{}{made}", quote.unwrap_or("")))
    }
}

impl Rule {
    /// What the rule makes of `url`, with its replacement `to` as made
    /// for the request; `None` when it does not take it.
    fn apply(&self, to: &[Part<String>], url: &str) -> Option<String> {
        let mut made = String::new();
        match self {
            Rule::Prefix {
                from,
                authority_len,
                ..
            } => {
                if !begins(url, from, *authority_len) {
                    return None;
                }
                // One text: the prefix's replacement names no group.
                for part in to {
                    if let Part::Text(t) = part {
                        made.push_str(t);
                    }
                }
                made.push_str(&url[from.len()..]);
            }
            Rule::Pattern { pattern, .. } => {
                let captures = pattern.regex().captures(url)?;
                if !rule_pairs::fill(to, &captures, &mut made, |t, out| out.push_str(t)) {
                    return None;
                }
            }
        }
        Some(made)
    }
}

/// A replacement's text, read, if it names only variables of
/// [`SAME_FOR_A_URL`].
fn replacement(to: &str) -> Result<FieldValue, String> {
    // Browsers read a `\` in an http(s) URL as a `/`: `https://\evil.example`
    // would send clients to another site than the one written.
    if to.contains('\\') {
        return Err(format!(
            "{to}: a `\\`, which browsers read as `/` (write `%5C`)"
        ));
    }
    FieldValue::parse(to, FieldFamily::Request)
        .and_then(same_for_a_url)
        .map_err(|e| format!("{to}: {e}"))
}

/// `to`, if it names only variables of [`SAME_FOR_A_URL`]: what the
/// cache stores is made once for every request for the URL.
pub(crate) fn same_for_a_url(to: FieldValue) -> Result<FieldValue, String> {
    if !names_only_the_same_for_a_url(to.source()) {
        return Err(format!(
            "a variable that may differ between two requests for one URL (the cache \
             stores what is made for the first); the replacement may name {}",
            SAME_FOR_A_URL.map(|v| format!("${v}")).join(", ")
        ));
    }
    Ok(to)
}

/// The variables a replacement may name: each has one value for the
/// requests the cache answers from one entry (its key holds the scheme
/// and host; the port and server name are the listener's and the
/// route's).
pub(crate) const SAME_FOR_A_URL: [&str; 5] =
    ["scheme", "host", "http_host", "server_port", "server_name"];

/// Whether every variable `to` names is one of [`SAME_FOR_A_URL`].
fn names_only_the_same_for_a_url(to: &str) -> bool {
    let Ok(pieces) = variables::pieces(to) else {
        return false;
    };
    let allowed = |var: &Var| {
        (variables::VARIABLES.iter()).any(|(name, v)| v == var && SAME_FOR_A_URL.contains(name))
    };
    pieces.iter().all(|piece| match piece {
        Piece::Text(_) => true,
        Piece::Named(Named::Var(var)) => allowed(var),
        Piece::Named(Named::Field(field)) => &**field == "host",
        Piece::Named(_) => false,
    })
}

/// Where a URL's scheme and authority end in `from`: after `scheme://`
/// and up to the path; 0 for a path or anything else.
fn authority_len(from: &str) -> usize {
    let Some(start) = from.find("://").map(|i| i + 3) else {
        return 0;
    };
    let scheme = &from[..start - 3];
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return 0;
    }
    from[start..]
        .find(['/', '?', '#'])
        .map_or(from.len(), |i| start + i)
}

/// Whether `url` begins with `from`, its first `authority_len` bytes in
/// any case.
fn begins(url: &str, from: &str, authority_len: usize) -> bool {
    let (Some(head), Some(tail)) = (url.get(..authority_len), url.get(authority_len..from.len()))
    else {
        return false;
    };
    head.eq_ignore_ascii_case(&from[..authority_len]) && tail == &from[authority_len..]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rules whose replacements name no variable, made.
    struct Fixed {
        rules: LocationRewrite,
        rendered: Rendered,
    }

    impl Fixed {
        fn location(&self, url: &str) -> Option<String> {
            self.rules.location(&self.rendered, url)
        }

        fn refresh(&self, value: &str) -> Option<String> {
            self.rules.refresh(&self.rendered, value)
        }
    }

    fn rendered(v: &str) -> Fixed {
        let rules = LocationRewrite::parse(v).unwrap();
        let fixed = |to: &FieldValue| to.text().expect("fixed text in these tests").to_owned();
        let rendered = rules.rendered_with(fixed);
        Fixed { rules, rendered }
    }

    #[test]
    fn the_first_rule_that_begins_the_url_replaces_its_start() {
        let r = rendered(
            "http://app.internal:8080/admin/ https://admin.example/, \
             http://app.internal:8080/ https://www.example/",
        );
        let l = |url| r.location(url);
        assert_eq!(
            l("http://app.internal:8080/admin/users?id=3").as_deref(),
            Some("https://admin.example/users?id=3")
        );
        assert_eq!(
            l("http://app.internal:8080/login").as_deref(),
            Some("https://www.example/login")
        );
        // Scheme and host in any case; the path as written.
        assert_eq!(
            l("HTTP://App.Internal:8080/login").as_deref(),
            Some("https://www.example/login")
        );
        assert_eq!(
            l("http://app.internal:8080/Admin/x").as_deref(),
            Some("https://www.example/Admin/x")
        );
        // Another port, another host, a relative URL: as they came.
        assert_eq!(l("http://app.internal:8081/login"), None);
        assert_eq!(l("http://app.internal.evil/login"), None);
        assert_eq!(l("/login"), None);
        assert_eq!(l("http://app.internal:80"), None);
    }

    #[test]
    fn a_scheme_alone_is_a_prefix_too() {
        let r = rendered("http:// https://");
        assert_eq!(
            r.location("http://www.example/a").as_deref(),
            Some("https://www.example/a")
        );
        assert_eq!(r.location("https://www.example/a"), None);
        let paths = rendered("/app/ /");
        assert_eq!(paths.location("/app/x").as_deref(), Some("/x"));
        assert_eq!(paths.location("/APP/x"), None, "a path as written");
    }

    #[test]
    fn refresh_has_the_url_after_its_url_equals_made_the_same_way() {
        let r = rendered("http://app.internal/ https://www.example/");
        assert_eq!(
            r.refresh("5; url=http://app.internal/next").as_deref(),
            Some("5; url=https://www.example/next")
        );
        assert_eq!(
            r.refresh("0;URL='http://APP.internal/next'").as_deref(),
            Some("0;URL='https://www.example/next'")
        );
        assert_eq!(r.refresh("5"), None);
        assert_eq!(r.refresh("5; url=http://other/next"), None);
    }

    #[test]
    fn bad_rules_are_refused_with_what_is_wrong() {
        let err = |v: &str| LocationRewrite::parse(v).unwrap_err();
        assert!(err("http://a/").contains("a rule is `<from> <to>`"));
        assert!(err("http://$host/ http://b/").contains("without variables"));
        assert!(err("http://a/ http://$nope/").contains("nope"));
        assert!(err("http://a/ $status").contains("once the response has come"));
        for mixed in [
            "$remote_addr",
            "$cookie_c",
            "$http_x_user",
            "$arg_a",
            "$request_id",
        ] {
            let message = err(&format!("http://a/ http://x/{mixed}"));
            assert!(
                message.contains("may differ between two requests"),
                "{message}"
            );
            assert!(message.contains("$scheme, $host, $http_host"), "{message}");
        }
        let named = "http://a/ $scheme://$http_host:$server_port/$server_name/$host/$$";
        assert!(LocationRewrite::parse(named).is_ok());
        assert!(LocationRewrite::parse(" ").unwrap().is_empty());
        assert_eq!(
            LocationRewrite::parse("http:// https://")
                .unwrap()
                .rules
                .len(),
            1
        );
        assert!(err("http://a/ http://b/$1").contains("names a group, which only a pattern"));
        assert!(LocationRewrite::parse("http://a/ http://b/$$1").is_ok());
        assert!(err("~^http://a(/.*) http://b$2").contains("names `$2`, but the pattern has 1"));
        assert!(err("~^(a http://b").contains("does not compile"));
        assert!(err("~^http://a(/.*) http://$remote_addr$1").contains("may differ between"));
        // Found by the fuzzer: `https://\evil.example` is another site.
        assert!(err("http:// https://\\").contains("browsers read as `/`"));
        assert!(err("~^http://a(/.*) https://\\$1").contains("browsers read as `/`"));
    }

    #[test]
    fn a_pattern_replaces_the_whole_url_it_matches_with_its_groups() {
        let r = rendered(
            "~^http://[^/:]+:8080(/.*)?$ https://www.example$1, \
             ~*^HTTP://(api|static)\\.internal/ https://$1.example/",
        );
        assert_eq!(
            r.location("http://app.internal:8080/login?next=%2F")
                .as_deref(),
            Some("https://www.example/login?next=%2F")
        );
        // A group that took no part writes nothing.
        assert_eq!(
            r.location("http://app.internal:8080").as_deref(),
            Some("https://www.example")
        );
        // `~*`: in any case; the whole URL replaced, its path too.
        assert_eq!(
            r.location("http://Static.internal/img/a.png").as_deref(),
            Some("https://Static.example/")
        );
        assert_eq!(r.location("http://app.internal:8081/login"), None);
        assert_eq!(
            r.refresh("3; url=http://a:8080/next").as_deref(),
            Some("3; url=https://www.example/next")
        );
        // Not anchored unless written so, as nginx's: anywhere in the URL.
        let anywhere = rendered("~internal /x");
        assert_eq!(anywhere.location("/a/internal/b").as_deref(), Some("/x"));
        // A rule making a URL past the bound leaves the backend's.
        let many = rendered(&format!("~(.*) {}", "$1".repeat(8)));
        let long = format!("/{}", "a".repeat(MAX_MADE / 8));
        assert_eq!(many.location(&long), None);
        assert_eq!(many.location("/b").as_deref(), Some(&*"/b".repeat(8)));
    }

    #[test]
    fn the_authority_ends_where_the_path_begins() {
        assert_eq!(authority_len("http://a.b:8/x"), "http://a.b:8".len());
        assert_eq!(authority_len("http://a.b"), "http://a.b".len());
        assert_eq!(authority_len("http://"), "http://".len());
        assert_eq!(authority_len("/app/"), 0);
        assert_eq!(authority_len("://x/"), 0);
        assert_eq!(authority_len("a b://x/"), 0);
    }
}
