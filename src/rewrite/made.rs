//! What a rule makes of a request: the target it goes on with or the
//! redirect it is answered with, checked to be one a request may take,
//! or why it cannot ([`Unusable`]).

use super::replacement::{Piece, Query};
use super::rule::is_url;
use super::{Asked, Rule, MAX_TARGET_LEN};
use crate::http::head::check_target_bytes;
use crate::routes::is_ambiguous;
use std::sync::Arc;

/// What a rule made of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rewritten {
    /// The request goes on with this target (path and query), which
    /// starts with `/`.
    Internal(String),
    /// The request is answered `status` with a `Location` of `location`.
    Redirect { status: u16, location: String },
}

/// A rule that matched but made nothing a request can go on with (a
/// target that does not start with `/`, too long, or with a character a
/// target cannot hold): the request is answered 500.
#[derive(Debug, thiserror::Error)]
#[error("rewrite.{rule}: made `{made}` of `{path}`: {why}")]
pub struct Unusable {
    pub rule: Arc<str>,
    /// What it made, cut to a length a log line takes.
    made: String,
    path: String,
    why: &'static str,
}

/// What of a made target or path an [`Unusable`] shows.
const SHOWN: usize = 256;

/// `text`, cut to [`SHOWN`] bytes at a character's boundary.
fn shown(text: &str) -> String {
    let cut = (0..=SHOWN.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    match cut < text.len() {
        true => format!("{}...", &text[..cut]),
        false => text.to_string(),
    }
}

impl Rule {
    /// What the rule makes of `path` (as routes read it, matched by the
    /// pattern) of the client's `target` (origin-form, as sent), for a
    /// request `asked` as it says.
    pub(super) fn rewrite(
        &self,
        path: &str,
        target: &str,
        asked: &Asked<'_>,
    ) -> Result<Rewritten, Unusable> {
        let replacement = &self.replacement;
        // `?` and nothing after it stands for no query, as a client's.
        let query = (target.split_once('?')).and_then(|(_, q)| Some(q).filter(|q| !q.is_empty()));
        // The groups are taken only when the replacement names one: a
        // match alone costs less.
        let names_groups = (replacement.pieces.iter()).any(|p| matches!(p, Piece::Group(_)));
        let captures = names_groups.then(|| self.regex.captures(path)).flatten();
        let mut made = String::with_capacity(path.len() + 32);
        // Where the site a URL names ends in what is made: past its last
        // piece, unless a piece comes after it.
        let mut site_end = None;
        for (i, piece) in replacement.pieces.iter().enumerate() {
            if Some(i) == self.site {
                site_end = Some(made.len());
            }
            match piece {
                Piece::Text(text) => made.push_str(text),
                Piece::Group(n) => {
                    let group = captures.as_ref().and_then(|c| c.get(*n));
                    made.push_str(group.map_or("", |m| m.as_str()));
                }
                // Taken only by a request that names a host.
                Piece::Host => made.push_str(asked.host.as_deref().unwrap_or_default()),
                Piece::Scheme => made.push_str(asked.scheme),
                Piece::RequestUri => made.push_str(target),
                Piece::Args => made.push_str(query.unwrap_or_default()),
                Piece::IsArgs => made.push_str(if query.is_some() { "?" } else { "" }),
            }
            // Many groups of a long path would make a target of many
            // times its length: none is built past what may be sent.
            if made.len() > MAX_TARGET_LEN {
                break;
            }
        }
        let site_end = site_end.unwrap_or(made.len());
        match (replacement.query, query) {
            (Query::Kept, Some(query)) => {
                made.push('?');
                made.push_str(query);
            }
            (Query::After, Some(query)) => {
                made.push('&');
                made.push_str(query);
            }
            _ => {}
        }
        let unusable = |why| Unusable {
            rule: self.name.clone(),
            made: shown(&made),
            path: shown(path),
            why,
        };
        if made.len() > MAX_TARGET_LEN {
            return Err(unusable("longer than 8 KiB"));
        }
        if check_target_bytes(made.as_bytes()).is_err() {
            return Err(unusable(
                "a character a target cannot hold (a space, a control, `#`, non-ASCII)",
            ));
        }
        let Some(status) = self.redirect() else {
            if !made.starts_with('/') {
                return Err(unusable("a path starts with `/`"));
            }
            // As a client's path with one would be refused (400): what
            // backends make of it is not what routes matched.
            let made_path = made.split('?').next().unwrap_or_default();
            if is_ambiguous(made_path) {
                return Err(unusable(
                    "a `.` or `..` segment, which backends read in different ways",
                ));
            }
            return Ok(Rewritten::Internal(made));
        };
        // `//evil.example` (or `/\`) is another site to a browser, where
        // the replacement said a path on this one; and a URL is one only
        // where the replacement wrote it: groups that spell `https:` and
        // a host between them (`$1//$2`) make another site too.
        let path_here = made.starts_with('/') && !made.starts_with("//");
        let url_written = self.site.is_some() && is_url(&made);
        if !url_written && !path_here {
            return Err(unusable(
                "a redirect goes to a path that starts with one `/`, or to a URL",
            ));
        }
        let site_ends_right = matches!(made.as_bytes().get(site_end), None | Some(b'/' | b'?'));
        if self.site.is_some() && !site_ends_right {
            return Err(unusable(
                "a URL whose host a group lengthened or made a user name: the host is the one \
                 written, or the request's",
            ));
        }
        // A `\` the client's query wrote goes as `%5C` (see
        // `proxy::own_answer::location_field`).
        Ok(Rewritten::Redirect {
            status,
            location: made,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::tests::{internal, made, redirect, rules};

    #[test]
    fn a_made_target_that_is_not_a_path_is_refused_at_its_use() {
        let r = rules(&[("from-group", "^/(.*)$ $1")]);
        let e = r.for_request(None, "http").apply("/x/y").unwrap_err();
        assert_eq!(
            e.to_string(),
            "rewrite.from-group: made `x/y` of `/x/y`: a path starts with `/`"
        );
        assert_eq!(r.for_request(None, "http").apply("/").unwrap_err().made, "");
        let counts: Vec<u64> = r.iter().map(Rule::applied).collect();
        assert_eq!(counts, [0]);
        // `//host` would be another site to a browser.
        let e = made_err("^(/.*)$ /$1 redirect", "/evil.example");
        assert!(e.contains("made `//evil.example`"), "{e}");
        let e = made_err("^/(.)x(.)$ /$1$2/y", "/.x.");
        assert!(
            e.contains("made `/../y`") && e.contains("`..` segment"),
            "{e}"
        );
        // Read as routes read it, a written `%25%32%65` is `%2e`: `.` to
        // a backend that decodes twice.
        let e = made_err("^/x$ /%25%32%65", "/x");
        assert!(e.contains("`..` segment"), "{e}");
        // Groups that spell a scheme and, after a written `//`, a host.
        let e = made_err("^/(.*)/(.*)$ $1//$2 redirect", "/https:/evil.example");
        assert!(e.contains("made `https://evil.example`"), "{e}");
        let long = format!("/{}", "a".repeat(5000));
        let e = made_err("^/(.*)$ /$1/$1", &long);
        assert!(e.contains("longer than 8 KiB"), "{e}");
        assert!(e.len() < 1000, "{e}");
    }

    #[test]
    fn a_group_after_the_host_written_neither_lengthens_it_nor_makes_it_a_user() {
        let rule = "^/docs(.*)$ https://docs.example.com$1 permanent";
        assert_eq!(
            made(rule, "/docs/a?x=1"),
            redirect(301, "https://docs.example.com/a?x=1")
        );
        assert_eq!(
            made(rule, "/docs"),
            redirect(301, "https://docs.example.com")
        );
        for target in [
            "/docs.evil.example/x",
            "/docs@evil.example/x",
            "/docs:443@evil.example",
        ] {
            let e = made_err(rule, target);
            assert!(
                e.contains("lengthened or made a user name"),
                "{target}: {e}"
            );
        }
        // A host written whole, then a group: as written.
        assert_eq!(
            made("^/(.*)$ https://a.example/$1", "/@evil.example"),
            redirect(302, "https://a.example/@evil.example")
        );
        let e = Rule::parse("r", "^/(.*)$ https://@$1").unwrap_err();
        assert!(e.contains("names no host"), "{e}");
    }

    #[test]
    fn a_host_written_with_host_is_still_the_whole_host() {
        // What follows `$host` in what a rule makes must not lengthen
        // the host or make it a user name.
        let r = rules(&[("r", "^/u(.*)$ https://$host$1")]);
        let apply = |target| r.for_request(Some("a.example"), "http").apply(target);
        assert_eq!(apply("/u/x").unwrap(), redirect(302, "https://a.example/x"));
        assert_eq!(apply("/u").unwrap(), redirect(302, "https://a.example"));
        assert!(apply("/u.evil.example/").is_err());
        assert!(apply("/u@evil.example/").is_err());
        // A port written after it is the site's.
        let r = rules(&[("r", "^/(.*)$ https://$host:8443/$1")]);
        assert_eq!(
            r.for_request(Some("a.example:80"), "http")
                .apply("/x")
                .unwrap(),
            redirect(302, "https://a.example:8443/x")
        );
    }

    #[test]
    fn a_made_target_may_be_8_kib_and_not_a_byte_more() {
        let target = format!("/{}", "a".repeat(MAX_TARGET_LEN - 1));
        assert_eq!(made("^/(.*)$ /$1", &target), internal(&target));
        // The piece after one that reaches the limit still counts.
        let e = made_err("^/(.*)$ /$1/", &target);
        assert!(e.contains("longer than 8 KiB"), "{e}");
    }

    fn made_err(value: &str, target: &str) -> String {
        rules(&[("r", value)])
            .for_request(None, "http")
            .apply(target)
            .unwrap_err()
            .to_string()
    }

    proptest::proptest! {
        /// Whatever path a client sends, a rule never panics and makes
        /// only what may go on: an internal target that is a plain path a
        /// target can hold, or a redirect to a path on this site or to the
        /// host the rule wrote, followed by nothing, `/` or `?`.
        #[test]
        fn any_path_makes_a_usable_target_or_none(
            path in "/[a-z@:.;/%?2-5A-F~_-]{0,40}",
        ) {
            let r = rules(&[
                ("docs", "^/d(.*)$ https://docs.example.com$1 permanent"),
                ("at", "^/a(.*)$ https://a.example:8443$1"),
                ("group", "^/g/(.*)$ $1 redirect"),
                ("into", "^/(.*)/(.*)$ /$2/$1?x=$1"),
                ("all", "^(.*)$ /$1"),
            ]);
            let _ = r.for_request(None, "http").ambiguous(&path);
            match r.for_request(None, "http").apply(&path) {
                Ok(Some(Rewritten::Internal(to))) => {
                    proptest::prop_assert!(to.starts_with('/'), "{to}");
                    proptest::prop_assert!(check_target_bytes(to.as_bytes()).is_ok(), "{to}");
                    let made_path = to.split('?').next().unwrap_or_default();
                    proptest::prop_assert!(!is_ambiguous(made_path), "{to}");
                    proptest::prop_assert!(to.len() <= MAX_TARGET_LEN);
                }
                Ok(Some(Rewritten::Redirect { location, .. })) => {
                    let on_site = ["https://docs.example.com", "https://a.example:8443"]
                        .iter()
                        .any(|site| {
                            location.strip_prefix(site).is_some_and(|rest| {
                                rest.is_empty() || rest.starts_with(['/', '?'])
                            })
                        });
                    let here = location.starts_with('/') && !location.starts_with("//");
                    proptest::prop_assert!(on_site || here, "{path} -> {location}");
                    proptest::prop_assert!(check_target_bytes(location.as_bytes()).is_ok());
                }
                Ok(None) | Err(_) => {}
            }
        }
    }
}
