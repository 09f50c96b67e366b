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
//! rules (see [`Query`]).
//!
//! The `regex` crate matches in time linear in the path whatever the
//! pattern (no backtracking), so no path a client writes makes a rule
//! slow; a pattern's size is bounded as a `Purge-Regex`'s is.

use crate::cache::policy::{MAX_PATTERN_LEN, MAX_PATTERN_SIZE};
use crate::http::head::{check_target_bytes, push_host_name};
use crate::routes::HostPattern;
use crate::routes::{host_of, is_ambiguous, other_reading, parse_host, unambiguous_reading};
use regex::{Regex, RegexBuilder};
use std::fmt;
use std::iter::Peekable;
use std::str::Chars;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Most rules one configuration may hold: a request that matches none
/// is compared with every one.
pub const MAX_REWRITES: usize = 100;

/// Longest target a rule may make, in bytes: the default `max_uri_length`,
/// so that what a backend is sent is no longer than what it would take
/// from a client.
pub const MAX_TARGET_LEN: usize = 8 * 1024;

/// Longest name a rule may have (as a pool's).
const MAX_NAME_LEN: usize = 64;

/// The highest group a replacement may name: `$1` to `$9`, one digit, as
/// nginx reads them (`$10` is `$1` and a `0`).
const MAX_GROUP: usize = 9;

/// Most hosts one rule's `host=` may name.
const MAX_HOSTS: usize = 32;

/// The rules of one configuration, in the order written.
#[derive(Clone, Debug, Default)]
pub struct Rewrites {
    rules: Vec<Rule>,
    /// Some rule is for some hosts alone: the request's host is read.
    by_host: bool,
    /// Some rule's replacement names `$host`: its value is made.
    names_host: bool,
}

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

/// The flag after a replacement, nginx's words for what the rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// A 302 to the replacement.
    Redirect,
    /// A 301 to the replacement.
    Permanent,
    /// The request goes on with the new target (the default). nginx's
    /// `last` and `break` differ in whether its `location`s are searched
    /// again, which routes always are here: both are taken for nginx's
    /// configurations.
    Last,
    Break,
}

impl Flag {
    const ALL: [(&'static str, Flag); 4] = [
        ("redirect", Flag::Redirect),
        ("permanent", Flag::Permanent),
        ("last", Flag::Last),
        ("break", Flag::Break),
    ];

    fn parse(word: &str) -> Result<Flag, String> {
        (Flag::ALL.iter())
            .find(|(name, _)| *name == word)
            .map(|&(_, flag)| flag)
            .ok_or_else(|| {
                format!(
                    "unknown flag `{}`: a rule's flag is `redirect` (302), `permanent` (301), \
                     or `last` or `break` (sent on with the new path, as without a flag)",
                    word.escape_debug()
                )
            })
    }

    fn name(self) -> &'static str {
        (Flag::ALL.iter())
            .find(|(_, flag)| *flag == self)
            .map_or("", |(name, _)| name)
    }
}

/// A replacement, read: text and the groups to put between it, and what
/// becomes of the client's query.
#[derive(Clone, Debug)]
struct Replacement {
    pieces: Vec<Piece>,
    query: Query,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(Box<str>),
    /// `$N`: what group N matched, or nothing when it took no part.
    Group(usize),
    /// `$host`: the request's host, as nginx's (lower case, without its
    /// port); a request that names none takes no rule that writes it.
    Host,
    /// `$scheme`: `http` or `https`, as the request came.
    Scheme,
    /// `$request_uri`: the client's target from its path on, as sent
    /// (not decoded, its query included), which starts with `/`.
    RequestUri,
    /// `$args` (`$query_string`): the client's query as sent, without
    /// its `?`; empty for none.
    Args,
    /// `$is_args`: `?` when the client sent a query, else nothing.
    IsArgs,
}

impl Piece {
    /// Whether it writes the client's query (or a part of the target the
    /// client chose): then nothing of it is appended, and a URL's host
    /// must end before it, as before a group.
    fn is_client_target(&self) -> bool {
        matches!(self, Piece::RequestUri | Piece::Args | Piece::IsArgs)
    }
}

/// What becomes of the client's query, as nginx decides it from the
/// replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Query {
    /// No `?` in the replacement: the client's query follows the new
    /// path, as it came.
    Kept,
    /// `?args`: the replacement's arguments first, then `&` and the
    /// client's query.
    After,
    /// A replacement that ends with `?` (its `?` not written): the
    /// client's query is dropped.
    Dropped,
    /// The replacement writes the client's query where it wants it
    /// (`$args`, `$is_args`, `$request_uri`): it is not appended as
    /// well, where nginx would write it twice unless told `?` at the end.
    Written,
}

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

/// A rule's name: letters, digits, `-` and `_`, as a pool's.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = (1..=MAX_NAME_LEN).contains(&name.len())
        && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match valid {
        true => Ok(()),
        false => Err(format!(
            "`rewrite.{}`: a rule's name is 1 to {MAX_NAME_LEN} letters, digits, `-` or `_` \
             (e.g. `rewrite.old-blog = ^/blog/(.*)$ /articles/$1 permanent`)",
            name.escape_debug()
        )),
    }
}

impl Rule {
    /// The rule `name` (checked by [`check_name`]) of a `rewrite.<name>`
    /// key whose value is `value`: `<pattern> <replacement> [<flag>]
    /// [host=<hosts>]`, split at whitespace (neither holds any).
    pub fn parse(name: &str, value: &str) -> Result<Rule, String> {
        check_name(name)?;
        let mut words = value.split_whitespace();
        let (Some(pattern), Some(written)) = (words.next(), words.next()) else {
            return Err(
                "a rule is `<pattern> <replacement> [<flag>] [host=<hosts>]`, e.g. \
                 `^/blog/(.*)$ /articles/$1 permanent`"
                    .into(),
            );
        };
        let (mut flag, mut hosts) = (None, None);
        for word in words {
            let misplaced = |why: &str| {
                Err(format!(
                    "`{}`: {why}; a rule is `<pattern> <replacement> [<flag>] [host=<hosts>]`",
                    word.escape_debug()
                ))
            };
            match word.strip_prefix("host=") {
                Some(_) if hosts.is_some() => {
                    return misplaced("one `host=`, its hosts comma separated")
                }
                Some(list) => hosts = Some(parse_hosts(list)?),
                None if hosts.is_some() => return misplaced("the flag goes before `host=`"),
                None if flag.is_none() => flag = Some(Flag::parse(word)?),
                None => {
                    return misplaced(
                        "split at spaces, neither the pattern nor the replacement holds one \
                         (`\\s` or `\\x20` in a pattern, `%20` in a replacement)",
                    )
                }
            }
        }
        let regex = compile(pattern)?;
        // Group 0 is the whole match; `$1` is the first in parentheses.
        let groups = regex.captures_len() - 1;
        let mut replacement = Replacement::parse(written, groups)?;
        let url = is_url(written)
            || matches!(&replacement.pieces[..], [Piece::Scheme, Piece::Text(t), ..] if t.starts_with("://"));
        let site = match url {
            true => Some(replacement.split_site().ok_or_else(|| {
                format!(
                    "the URL `{written}` names no host (write it, or `$host`, before any \
                     `$N`): the host would come from the request's path"
                )
            })?),
            false => None,
        };
        // What the request goes on with, or a redirect's path, starts
        // with `/`: a replacement that cannot is refused here; one whose
        // first group may not is checked at each use.
        let starts_right = match replacement.pieces.first() {
            Some(Piece::Text(text)) => text.starts_with('/') || url,
            // An origin-form target (a rule takes no other) starts with `/`.
            Some(Piece::Group(_) | Piece::RequestUri) => true,
            Some(Piece::Scheme) => url,
            Some(Piece::Host | Piece::Args | Piece::IsArgs) | None => false,
        };
        if !starts_right {
            return Err(format!(
                "the replacement `{written}` must start with `/` (a path), `$N` (a group that \
                 holds one), or, to redirect, `http://`, `https://` or `$scheme://`"
            ));
        }
        Ok(Rule {
            name: name.into(),
            regex,
            replacement,
            written: written.into(),
            flag,
            hosts: hosts.unwrap_or_default(),
            site,
            applied: Arc::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pattern(&self) -> &str {
        self.regex.as_str()
    }

    pub fn replacement(&self) -> &str {
        &self.written
    }

    pub fn flag(&self) -> Option<&'static str> {
        self.flag.map(Flag::name)
    }

    /// The status of the redirect the rule answers with; `None`: the
    /// request goes on with the new target.
    pub fn redirect(&self) -> Option<u16> {
        match self.flag {
            Some(Flag::Permanent) => Some(301),
            Some(Flag::Redirect) => Some(302),
            // nginx: a replacement with a scheme (a `site`) redirects,
            // whatever else the flag says.
            _ if self.site.is_some() => Some(302),
            _ => None,
        }
    }

    /// How many requests the rule applied to.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// What the rule makes of `path` (as routes read it, matched by the
    /// pattern) of the client's `target` (origin-form, as sent), for a
    /// request `asked` as it says.
    fn rewrite(&self, path: &str, target: &str, asked: &Asked<'_>) -> Result<Rewritten, Unusable> {
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

impl fmt::Display for Rule {
    /// What the rule does, for `check`: `^/blog/(.*)$ -> /articles/$1
    /// permanent: redirect 301, ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.pattern(), self.written)?;
        if let Some(flag) = self.flag {
            write!(f, " {}", flag.name())?;
        }
        for (i, host) in self.hosts.iter().enumerate() {
            let before = if i == 0 { " host=" } else { "," };
            write!(f, "{before}{host}")?;
        }
        f.write_str(": ")?;
        match self.redirect() {
            Some(status) => write!(f, "redirect {status}")?,
            None => f.write_str("sent on with the new path")?,
        }
        f.write_str(match self.replacement.query {
            Query::Kept => ", the client's query kept",
            Query::After => ", the client's query after its own",
            Query::Dropped => ", the client's query dropped",
            Query::Written => ", the client's query where it writes it",
        })
    }
}

/// `host=`'s list: comma-separated hosts, each as a route's is written.
fn parse_hosts(list: &str) -> Result<Box<[HostPattern]>, String> {
    let hosts = (list.split(','))
        .map(|host| match host {
            "" => Err("`host=` names no host (`host=example.com,www.example.com`)".to_string()),
            host => parse_host(host).map_err(|_| {
                format!(
                    "`host={host}`: a host is a name (`example.com`) or `*.` and a name \
                     (`*.example.com`, its subdomains alone), without a port"
                )
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if hosts.len() > MAX_HOSTS {
        return Err(format!("`host=` names more than {MAX_HOSTS} hosts"));
    }
    Ok(hosts.into())
}

/// Whether `text` begins with a scheme a redirect may name.
fn is_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

/// `pattern`, compiled within the bounds a `Purge-Regex` has.
fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "the pattern is longer than {MAX_PATTERN_LEN} bytes ({})",
            pattern.len()
        ));
    }
    RegexBuilder::new(pattern)
        .size_limit(MAX_PATTERN_SIZE)
        .build()
        .map_err(|e| format!("the pattern `{pattern}` does not compile: {}", one_line(&e)))
}

/// The regex engine's message on one line: a syntax error is written on
/// several (the pattern, a line of `^` under the part at fault, then
/// `error: ...`), which a configuration error cannot be.
fn one_line(error: &regex::Error) -> String {
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().collect();
    // regex-syntax indents the pattern and its carets by four spaces.
    let spans = |pattern: &str, carets: &str| -> Option<String> {
        let (pattern, carets) = (pattern.strip_prefix("    ")?, carets.strip_prefix("    ")?);
        let start = carets.find('^')?;
        let len = carets[start..]
            .find(|c| c != '^')
            .unwrap_or(carets.len() - start);
        let at: String = pattern.chars().skip(start).take(len).collect();
        Some(format!("at `{at}`, character {}", start + 1))
    };
    match lines.as_slice() {
        [_, pattern, carets, why] => {
            let why = why.strip_prefix("error: ").unwrap_or(why);
            match spans(pattern, carets) {
                Some(at) => format!("{why} ({at})"),
                None => why.to_string(),
            }
        }
        _ => (lines.iter().map(|l| l.trim()))
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The group of ASCII `digit` (`1` to `9`) of a pattern with `groups`
/// groups, which the replacement `written` names.
fn group(written: &str, digit: u8, groups: usize) -> Result<Piece, String> {
    let n = usize::from(digit - b'0');
    if n > groups {
        return Err(format!(
            "the replacement `{written}` names `${n}`, but the pattern has {}",
            match groups {
                0 => "no group (parentheses)".to_string(),
                1 => "one group".to_string(),
                n => format!("{n} groups"),
            }
        ));
    }
    Ok(Piece::Group(n))
}

/// `pieces` first pieces that write a site whose host ends with `last`
/// (`None`: an empty host), when that makes one.
fn site_of(pieces: usize, last: Option<char>) -> Option<usize> {
    last.filter(|&c| c != '@').map(|_| pieces)
}

/// The name of a variable whose `$` came before `first`: `${name}`, or
/// as many letters, digits and `_` as follow (nginx's reading: `$hostx`
/// is `hostx`). `None` for a `${` without its `}`.
fn variable_name(first: char, chars: &mut Peekable<Chars<'_>>) -> Option<String> {
    if first == '{' {
        let mut name = String::new();
        for c in chars.by_ref() {
            if c == '}' {
                return Some(name);
            }
            name.push(c);
        }
        return None;
    }
    let mut name = String::from(first);
    while let Some(&c) = chars
        .peek()
        .filter(|c| c.is_ascii_alphanumeric() || **c == '_')
    {
        name.push(c);
        chars.next();
    }
    Some(name)
}

impl Replacement {
    /// Whether it writes the request's host.
    fn names_host(&self) -> bool {
        self.pieces.contains(&Piece::Host)
    }

    /// For a replacement that is a URL (`http://`, `https://` or
    /// `$scheme://` first): how many of its first pieces write the scheme
    /// and the host, the text piece in which the host ends split there.
    /// The host ends at the first `/` or `?` after `://`, or at a group;
    /// `None` for a URL whose host is empty, or ends with `@` (a group
    /// after it would be the host).
    fn split_site(&mut self) -> Option<usize> {
        let mut after_scheme = false;
        // The host written so far, as its last character tells: `None`
        // while it is empty.
        let mut last: Option<char> = None;
        for i in 0..self.pieces.len() {
            let Piece::Text(text) = &self.pieces[i] else {
                match self.pieces[i] {
                    // What the client wrote ends the host as a group does.
                    ref p if p.is_client_target() => return site_of(i, last),
                    Piece::Group(_) => return site_of(i, last),
                    // `$host` or `$scheme`: the host is not empty, and
                    // does not end with `@`.
                    _ if after_scheme => last = Some('h'),
                    _ => {}
                }
                continue;
            };
            let start = match after_scheme {
                true => 0,
                false => match text.find("://") {
                    Some(at) => at + 3,
                    None => continue,
                },
            };
            after_scheme = true;
            let host = &text[start..];
            let Some(end) = host.find(['/', '?']) else {
                last = host.chars().next_back().or(last);
                continue;
            };
            last = host[..end].chars().next_back().or(last);
            let (text, cut) = (text.clone(), start + end);
            if cut == 0 {
                return site_of(i, last);
            }
            self.pieces[i] = Piece::Text(text[..cut].into());
            self.pieces.insert(i + 1, Piece::Text(text[cut..].into()));
            return site_of(i + 1, last);
        }
        site_of(self.pieces.len(), last)
    }

    /// `written`, for a pattern with `groups` groups.
    fn parse(written: &str, groups: usize) -> Result<Replacement, String> {
        // A `\` is a `/` to browsers and some servers: refused in paths
        // (see `is_ambiguous`).
        let refused = |c: &char| !c.is_ascii_graphic() || matches!(c, '#' | '\\');
        if let Some(c) = written.chars().find(refused) {
            return Err(format!(
                "the replacement `{}` holds `{}`: it is visible ASCII, without space, `#` or \
                 `\\` (write `%23` for a `#`)",
                written.escape_debug(),
                c.escape_debug()
            ));
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = written.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                text.push(c);
                continue;
            }
            let piece = match chars.next() {
                Some('$') => {
                    text.push('$');
                    continue;
                }
                Some(d @ '1'..='9') => group(written, d as u8, groups)?,
                Some(c) if c == '{' || c.is_ascii_alphabetic() => {
                    let name = variable_name(c, &mut chars).ok_or_else(|| {
                        format!("the replacement `{written}` has a `${{` without `}}`")
                    })?;
                    match name.as_bytes() {
                        b"host" => Piece::Host,
                        b"scheme" => Piece::Scheme,
                        b"request_uri" => Piece::RequestUri,
                        b"args" | b"query_string" => Piece::Args,
                        b"is_args" => Piece::IsArgs,
                        // `${1}0`: group 1, then a `0`.
                        &[d @ b'1'..=b'9'] => group(written, d, groups)?,
                        _ => {
                            return Err(format!(
                                "the replacement `{written}` names `${name}`: it may name \
                                 `$1` to `${MAX_GROUP}`, `$host`, `$scheme`, `$request_uri`, \
                                 `$args` (`$query_string`) and `$is_args` (`${{host}}` before \
                                 a letter, digit or `_`; `$$` writes a dollar)"
                            ))
                        }
                    }
                }
                _ => {
                    return Err(format!(
                        "the replacement `{written}` has a `$` that is no `$1` to `${MAX_GROUP}` \
                         or variable (`$host`, `$scheme`, `$request_uri`, `$args`, `$is_args`): \
                         `$$` writes a dollar"
                    ))
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text).into()));
            }
            pieces.push(piece);
        }
        // nginx: a `?` at the very end drops the client's query, and is
        // not written; one before arguments puts them first.
        let writes_query = pieces.iter().any(Piece::is_client_target);
        let query = match text.strip_suffix('?') {
            Some(before) => {
                text.truncate(before.len());
                match writes_query {
                    true => Query::Written,
                    false => Query::Dropped,
                }
            }
            None if writes_query => Query::Written,
            None if written.contains('?') => Query::After,
            None => Query::Kept,
        };
        if !text.is_empty() {
            pieces.push(Piece::Text(text.into()));
        }
        Ok(Replacement { pieces, query })
    }
}

impl Rewrites {
    /// The rules, in the order they are tried (as written). More than
    /// [`MAX_REWRITES`] are refused by the configuration, where it can say
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

/// What a replacement's `$host` and `$scheme` stand for in one request.
struct Asked<'a> {
    /// As nginx's `$host` (see [`push_host_name`]); none for a request
    /// that names no host, or when no rule writes it.
    host: Option<String>,
    scheme: &'a str,
}

impl HostRules<'_> {
    /// What the first rule whose pattern matches the path of `target` (a
    /// request's path and query, origin-form) makes of it, counted;
    /// `Ok(None)` when none matches, or for a target that is no path
    /// (`*`) or one that routes refuse as ambiguous (see
    /// [`is_ambiguous`]): such a request goes on as it came.
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
    /// refuse (see [`is_ambiguous`]): it holds a dot segment or an escape
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

    fn rules(specs: &[(&str, &str)]) -> Rewrites {
        Rewrites::new(
            (specs.iter())
                .map(|(name, value)| Rule::parse(name, value).unwrap())
                .collect(),
        )
    }

    /// What one rule, `value`, makes of `target`.
    fn made(value: &str, target: &str) -> Option<Rewritten> {
        rules(&[("r", value)])
            .for_request(None, "http")
            .apply(target)
            .unwrap()
    }

    fn internal(target: &str) -> Option<Rewritten> {
        Some(Rewritten::Internal(target.to_string()))
    }

    fn redirect(status: u16, location: &str) -> Option<Rewritten> {
        Some(Rewritten::Redirect {
            status,
            location: location.to_string(),
        })
    }

    #[track_caller]
    fn refused(name: &str, value: &str) -> String {
        Rule::parse(name, value).unwrap_err()
    }

    #[test]
    fn groups_are_put_in_place_and_a_dollar_is_written_twice() {
        let rule = "^/blog/(\\d+)/([a-z-]+)$ /articles/$2/$1";
        assert_eq!(made(rule, "/blog/42/hello"), internal("/articles/hello/42"));
        assert_eq!(made(rule, "/blog/x/hello"), None);
        assert_eq!(
            made("^/price/(.*)$ /cost/$$/$1$$", "/price/9"),
            internal("/cost/$/9$")
        );
        // `$10` is `$1` and a `0`, as nginx reads it.
        assert_eq!(made("^/(a)$ /$10", "/a"), internal("/a0"));
    }

    #[test]
    fn a_group_that_took_no_part_is_empty() {
        let rule = "^/(en/)?docs/(.*)$ /docs/$2?lang=$1";
        assert_eq!(made(rule, "/docs/x"), internal("/docs/x?lang="));
        assert_eq!(made(rule, "/en/docs/x"), internal("/docs/x?lang=en/"));
    }

    #[test]
    fn the_query_is_kept_put_after_the_rule_s_own_or_dropped_as_nginx_does() {
        // No `?`: the client's query follows, when there is one.
        let kept = "^/old/(.*)$ /new/$1";
        assert_eq!(made(kept, "/old/a?x=1&y=2"), internal("/new/a?x=1&y=2"));
        assert_eq!(made(kept, "/old/a"), internal("/new/a"));
        assert_eq!(made(kept, "/old/a?"), internal("/new/a"));
        // `?args`: the rule's first, then the client's.
        let after = "^/item/(\\d+)$ /show?id=$1";
        assert_eq!(
            made(after, "/item/7?ref=mail"),
            internal("/show?id=7&ref=mail")
        );
        assert_eq!(made(after, "/item/7"), internal("/show?id=7"));
        // A `?` at the end drops the client's query, and is not written.
        let dropped = "^/tracked/(.*)$ /clean/$1?";
        assert_eq!(made(dropped, "/tracked/a?utm=x"), internal("/clean/a"));
        assert_eq!(made(dropped, "/tracked/a"), internal("/clean/a"));
        // The query is never matched.
        assert_eq!(made("^/a$ /b", "/a?c"), internal("/b?c"));
        assert_eq!(made("c$ /b", "/a?c"), None);
    }

    #[test]
    fn the_client_s_target_and_query_are_written_where_the_replacement_says() {
        // nginx's `return 301 https://new.example$request_uri`: the
        // target as sent, escapes and query as they came.
        let moved = "^/ https://new.example$request_uri permanent";
        assert_eq!(
            made(moved, "/a%2Fb//c?x=1&y=%20"),
            redirect(301, "https://new.example/a%2Fb//c?x=1&y=%20")
        );
        assert_eq!(made(moved, "/a"), redirect(301, "https://new.example/a"));
        // Written, it is not appended again (nginx would, but for a
        // replacement that ends with `?`): with `?` or without, once.
        let go = "^/go/(.*)$ https://$host/$1$is_args$args";
        let on = |rule: &str, target: &str| {
            (rules(&[("r", rule)]).for_request(Some("a.test"), "http"))
                .apply(target)
                .unwrap()
        };
        assert_eq!(
            on(go, "/go/p?x=1&y=2"),
            redirect(302, "https://a.test/p?x=1&y=2")
        );
        assert_eq!(on(go, "/go/p"), redirect(302, "https://a.test/p"));
        assert_eq!(on(go, "/go/p?"), redirect(302, "https://a.test/p"));
        assert_eq!(
            made("^/ https://new.example$request_uri?", "/a?b"),
            redirect(302, "https://new.example/a?b")
        );
        let legacy = "^/legacy(/.*)$ /app$1?from=legacy&${query_string}";
        assert_eq!(
            made(legacy, "/legacy/z?k=v"),
            internal("/app/z?from=legacy&k=v")
        );
        assert_eq!(made(legacy, "/legacy/z"), internal("/app/z?from=legacy&"));
        assert_eq!(made("^/x$ /y?$args", "/x?a=1"), internal("/y?a=1"));
        // A path sent on from the client's target: as routes would
        // refuse it, so is it refused here.
        let r = rules(&[("r", "^/old/ /new$request_uri")]);
        assert_eq!(
            r.for_request(None, "http").apply("/old/a").unwrap(),
            internal("/new/old/a")
        );
        // A redirect to the target as sent, which may start with `//`
        // (another site to a browser): refused, as a group's.
        let r = rules(&[("r", "^/ $request_uri redirect")]);
        assert!(r
            .for_request(None, "http")
            .apply("//evil.example/x")
            .is_err());
        assert_eq!(
            r.for_request(None, "http").apply("/a?b").unwrap(),
            redirect(302, "/a?b")
        );
        // After a URL's host, what the client wrote must not lengthen it
        // or make it a user name, as a group must not.
        let r = rules(&[("r", "^/ https://new.example$args")]);
        let e = r
            .for_request(None, "http")
            .apply("/?@evil.example")
            .unwrap_err();
        assert!(e.to_string().contains("a group lengthened"), "{e}");
        assert_eq!(
            r.for_request(None, "http").apply("/?/x").unwrap(),
            redirect(302, "https://new.example/x")
        );
        // `check` says where the query goes.
        let r = Rule::parse("go", go).unwrap();
        assert!(
            r.to_string()
                .ends_with(", the client's query where it writes it"),
            "{r}"
        );
    }

    #[test]
    fn a_url_redirects_302_and_flags_say_which_redirect() {
        assert_eq!(
            made("^/go/(.*)$ https://example.com/$1", "/go/x?q=1"),
            redirect(302, "https://example.com/x?q=1")
        );
        // With a flag that says to go on: nginx redirects all the same.
        assert_eq!(
            made("^/go/(.*)$ http://example.com/$1? last", "/go/x?q=1"),
            redirect(302, "http://example.com/x")
        );
        assert_eq!(
            made("^/old/(.*)$ /new/$1 permanent", "/old/a?b"),
            redirect(301, "/new/a?b")
        );
        assert_eq!(
            made("^/old/(.*)$ /new/$1 redirect", "/old/a"),
            redirect(302, "/new/a")
        );
        for flag in ["last", "break"] {
            assert_eq!(
                made(&format!("^/a/(.*)$ /b/$1 {flag}"), "/a/c"),
                internal("/b/c")
            );
        }
    }

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

    fn made_err(value: &str, target: &str) -> String {
        rules(&[("r", value)])
            .for_request(None, "http")
            .apply(target)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_rule_that_cannot_be_read_is_refused_saying_why() {
        for (name, value, says) in [
            ("", "^/a /b", "a rule's name is 1 to 64"),
            ("a.b", "^/a /b", "`rewrite.a.b`: a rule's name"),
            (&"n".repeat(65), "^/a /b", "a rule's name"),
            ("r", "", "a rule is `<pattern> <replacement> [<flag>] [host=<hosts>]`"),
            ("r", "^/a", "a rule is `<pattern> <replacement> [<flag>] [host=<hosts>]`"),
            ("r", "^/a /b permanently", "unknown flag `permanently`"),
            ("r", "^/a /b last", ""),
            ("r", "^/a /b last x", "`x`: split at spaces"),
            ("r", "^/a /b last host=a.example,*.b.example,[::1]", ""),
            ("r", "^/a /b host=a.example", ""),
            ("r", "^/a /b host=", "names no host"),
            ("r", "^/a /b host=a.example,", "names no host"),
            ("r", "^/a /b host=a..example", "`host=a..example`: a host is a name"),
            ("r", "^/a /b host=a.example:8080", "without a port"),
            ("r", "^/a /b host=a.example host=b.example", "one `host=`"),
            ("r", "^/a /b host=a.example last", "`last`: the flag goes before `host=`"),
            (
                "r",
                "(abc /b",
                "the pattern `(abc` does not compile: unclosed group (at `(`, character 1)",
            ),
            (
                "r",
                "[z-a] /b",
                "invalid character class range, the start must be <= the end (at `z-a`, character 2)",
            ),
            ("r", "(\\w{100}){100} /b", "exceeds size limit"),
            ("r", "^/(a)(b)$ /$3", "names `$3`, but the pattern has 2 groups"),
            ("r", "^/(a)$ /$7", "names `$7`, but the pattern has one group"),
            ("r", "^/a$ /$1", "names `$1`, but the pattern has no group"),
            (
                "r",
                "^/(a)$ /$x",
                "names `$x`: it may name `$1` to `$9`, `$host`, `$scheme`, `$request_uri`, \
                 `$args` (`$query_string`) and `$is_args`",
            ),
            ("r", "^/(a)$ /$hostname", "names `$hostname`"),
            ("r", "^/(a)$ /${uri}", "names `$uri`"),
            ("r", "^/a$ $args/a", "must start with `/`"),
            ("r", "^/a$ $is_args$args", "must start with `/`"),
            ("r", "^/a$ https://$args", "names no host"),
            ("r", "^/a$ https://$request_uri", "names no host"),
            ("r", "^/(a)$ /${host", "a `${` without `}`"),
            ("r", "^/(a)$ /$0", "a `$` that is no `$1` to `$9`"),
            ("r", "^/(a)$ /${2}", "names `$2`, but the pattern has one group"),
            ("r", "^/(a)$ /${0}", "names `$0`"),
            ("r", "^/a$ $host/a", "must start with `/`"),
            ("r", "^/a$ $scheme/a", "must start with `/`"),
            ("r", "^/(a)$ https://a@$1", "names no host"),
            ("r", "^/(a)$ $scheme://$1", "names no host"),
            ("r", "^/(a)$ /a$", "a `$` that is no `$1`"),
            ("r", "^/a$ /é", "it is visible ASCII"),
            ("r", "^/a$ /\\evil.example", "without space, `#` or `\\`"),
            ("r", "^/a$ new/path", "must start with `/`"),
            ("r", "^/a$ ?x=1", "must start with `/`"),
            ("r", "^/a$ https:///x", "names no host"),
            ("r", "^/(.*)$ https://$1", "names no host"),
        ] {
            match Rule::parse(name, value) {
                Ok(_) if says.is_empty() => {}
                Ok(_) => panic!("{name} = {value}: taken"),
                Err(e) => assert!(e.contains(says), "{name} = {value}: {e}"),
            }
        }
        let long = format!("^/{} /b", "a".repeat(MAX_PATTERN_LEN));
        assert!(refused("r", &long).contains("longer than 1024 bytes"));
        // A host from a group is refused: the group may hold
        // `evil.example/`.
        assert!(Rule::parse("r", "^/u/([a-z]+)$ https://$1.example.com/").is_err());
        assert!(Rule::parse("r", "^/u/([a-z]+)$ https://u.example.com/$1").is_ok());
    }

    #[test]
    fn check_says_what_each_rule_does() {
        let r = rules(&[
            ("a", "^/old/(.*)$ /new/$1 permanent"),
            ("b", "^/x$ /y?z=1"),
            ("c", "^/t/(.*)$ /$1? break"),
        ]);
        let shown: Vec<String> = r.iter().map(Rule::to_string).collect();
        assert_eq!(
            shown,
            [
                "^/old/(.*)$ -> /new/$1 permanent: redirect 301, the client's query kept",
                "^/x$ -> /y?z=1: sent on with the new path, the client's query after its own",
                "^/t/(.*)$ -> /$1? break: sent on with the new path, the client's query dropped",
            ]
        );
        assert_eq!(
            r.iter().map(Rule::flag).collect::<Vec<_>>(),
            [Some("permanent"), None, Some("break")]
        );
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
