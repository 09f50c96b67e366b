//! `rewrite.<name> = <pattern> <replacement> [<flag>] [host=<hosts>]`: a request's path
//! changed by a regular expression before it is routed, or the request
//! answered with a redirect made of it: nginx's `rewrite` (as with its
//! `last` flag) and HAProxy's `http-request set-path` and `http-request
//! redirect location` with `regsub`.
//!
//! Rules are tried in the order written; the first whose pattern matches
//! applies, and no other is tried after it. The pattern is matched with
//! the path as routes read it ([`routing_path`](crate::routes::routing_path): percent-encoded letters,
//! digits and `-_~.` decoded, runs of `/` merged), never with the query;
//! the replacement writes the new path from the pattern's groups (`$1` to
//! `$9`), the request's `$host` and `$scheme` and the client's
//! `$request_uri`, `$args` and `$is_args`, and the query follows nginx's
//! rules (see [`Query`](replacement::Query)).
//!
//! The `regex` crate matches in time linear in the path whatever the
//! pattern (no backtracking), so no path a client writes makes a rule
//! slow; a pattern's size is bounded as a `Purge-Regex`'s is.
//!
//! # Layout
//! - `rule`: one rule read from its key ([`Rule::parse`]): its name,
//!   pattern, flag and `host=`, and what `check` says of it.
//! - `replacement`: a replacement read into text, groups and variables,
//!   and what becomes of the client's query.
//! - `made`: what a rule makes of a request ([`Rewritten`]), or why that
//!   cannot go on ([`Unusable`]).
//! - `rules`: a configuration's rules ([`Rewrites`]), and those a
//!   request's host is tried on ([`HostRules`]), the first that matches
//!   applying.
//! - here: [`Rule`]'s fields and what a request asks (`Asked`), which
//!   each of those reads.

mod made;
mod replacement;
mod rule;
mod rules;

pub use made::{Rewritten, Unusable};
pub use rule::{check_name, compile as compile_pattern, named_groups, Flag, Pattern, EXAMPLE};
pub use rules::{HostRules, Rewrites};

use crate::routes::HostPattern;
use regex::Regex;
use replacement::Replacement;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Most rules one configuration may hold: a request that matches none
/// is compared with every one.
pub const MAX_REWRITES: usize = 100;

/// Longest target a rule may make, in bytes: the default `max_uri_length`,
/// so that what a backend is sent is no longer than what it would take
/// from a client.
pub const MAX_TARGET_LEN: usize = 8 * 1024;

/// One `rewrite.<name>` key.
#[derive(Clone, Debug)]
pub struct Rule {
    name: Arc<str>,
    regex: Regex,
    replacement: Replacement,
    /// The replacement as written, for `check`.
    written: Box<str>,
    flag: Option<Flag>,
    /// `host=`: the hosts whose requests the rule is tried on, as a
    /// route's host is written (`example.com`, `*.example.com`); empty:
    /// every host's.
    hosts: Box<[HostPattern]>,
    /// For a replacement that is a URL: how many of its first pieces
    /// write its scheme and host (`https://docs.example.com`,
    /// `$scheme://$host`), which what it makes must go on from with
    /// nothing, a `/` or a `?`: a group written right after them
    /// (`https://docs.example.com$1`) must not lengthen the host
    /// (`/docs.evil.example`) or make it a user name (`/docs@evil.example`).
    site: Option<usize>,
    /// Requests the rule applied to, for `/metrics`; kept by a reload for
    /// a rule that keeps its name (see [`Rewrites::keep_counts_of`]).
    applied: Arc<AtomicU64>,
}

/// What a replacement's `$host` and `$scheme` stand for in one request.
struct Asked<'a> {
    /// As nginx's `$host` (see [`push_host_name`](crate::http::head::push_host_name)); none for a request
    /// that names no host, or when no rule writes it.
    host: Option<String>,
    scheme: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn rules(specs: &[(&str, &str)]) -> Rewrites {
        Rewrites::new(
            (specs.iter())
                .map(|(name, value)| Rule::parse(name, value).unwrap())
                .collect(),
        )
    }

    /// What one rule, `value`, makes of `target`.
    pub(super) fn made(value: &str, target: &str) -> Option<Rewritten> {
        rules(&[("r", value)])
            .for_request(None, "http")
            .apply(target)
            .unwrap()
    }

    pub(super) fn internal(target: &str) -> Option<Rewritten> {
        Some(Rewritten::Internal(target.to_string()))
    }

    pub(super) fn redirect(status: u16, location: &str) -> Option<Rewritten> {
        Some(Rewritten::Redirect {
            status,
            location: location.to_string(),
        })
    }
}
