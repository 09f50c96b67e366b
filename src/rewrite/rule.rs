//! One `rewrite.<name>` rule read from its key: its name, its pattern
//! compiled within bounds, its replacement, flag and `host=`; and what
//! `check` says it does.

use super::replacement::{Groups, Piece, Query, Replacement};
use super::Rule;
use crate::cache::policy::{MAX_PATTERN_LEN, MAX_PATTERN_SIZE};
use crate::routes::{parse_host, HostPattern};
use regex::{Regex, RegexBuilder};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Longest name a rule may have (as a pool's).
const MAX_NAME_LEN: usize = 64;

/// A `rewrite.<name>` key as written, for messages.
pub const EXAMPLE: &str = "rewrite.old-blog = ^/blog/(.*)$ /articles/$1 permanent";

/// Most hosts one rule's `host=` may name.
const MAX_HOSTS: usize = 32;

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

/// Whether `name` may name a rule of `family` (`rewrite`, `deny`): 1 to
/// 64 letters, digits, `-` or `_`, as a pool's; else what to write,
/// after `example`, a key of the family.
pub fn check_name(family: &str, example: &str, name: &str) -> Result<(), String> {
    let valid = (1..=MAX_NAME_LEN).contains(&name.len())
        && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match valid {
        true => Ok(()),
        false => Err(format!(
            "`{family}.{}`: a rule's name is 1 to {MAX_NAME_LEN} letters, digits, `-` or `_` \
             (e.g. `{example}`)",
            name.escape_debug()
        )),
    }
}

impl Rule {
    /// The rule `name` (checked by [`check_name`]) of a `rewrite.<name>`
    /// key whose value is `value`: `<pattern> <replacement> [<flag>]
    /// [host=<hosts>]`, split at whitespace (neither holds any).
    pub fn parse(name: &str, value: &str) -> Result<Rule, String> {
        check_name("rewrite", EXAMPLE, name)?;
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
        let mut replacement = Replacement::parse(written, &Groups::of(&regex)?)?;
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
pub(super) fn is_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

/// The groups `regex` names (`(?<name>...)`, `(?P<name>...)`), each
/// with its number. One named as one of `variables` is refused, as nginx
/// refuses a capture named as a variable of its own: a replacement could
/// not tell which it names.
pub fn named_groups<'a>(
    regex: &'a Regex,
    variables: &[&str],
) -> Result<Vec<(&'a str, usize)>, String> {
    let named: Vec<(&str, usize)> = (regex.capture_names().enumerate())
        .filter_map(|(n, name)| name.map(|name| (name, n)))
        .collect();
    match named.iter().find(|(name, _)| variables.contains(name)) {
        Some((name, _)) => Err(format!(
            "the pattern's group `{name}` is named as the variable `${name}`: rename it"
        )),
        None => Ok(named),
    }
}

/// `pattern`, compiled within the bounds a `Purge-Regex` has.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    build(pattern, false)
}

/// `pattern` compiled as [`compile`] does, letters matching in either
/// case with `any_case` (nginx's `~*`).
fn build(pattern: &str, any_case: bool) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "the pattern is longer than {MAX_PATTERN_LEN} bytes ({})",
            pattern.len()
        ));
    }
    RegexBuilder::new(pattern)
        .size_limit(MAX_PATTERN_SIZE)
        .case_insensitive(any_case)
        .build()
        .map_err(|e| format!("the pattern `{pattern}` does not compile: {}", one_line(&e)))
}

/// A pattern of a setting, compiled, and compared by its text as the
/// rest of a configuration is (a reload tells what changed).
#[derive(Clone, Debug)]
pub struct Pattern {
    text: Box<str>,
    any_case: bool,
    regex: Regex,
}

impl Pattern {
    pub fn compile(pattern: &str) -> Result<Pattern, String> {
        Pattern::compile_with(pattern, false)
    }

    /// With `any_case`, letters match in either case.
    pub fn compile_with(pattern: &str, any_case: bool) -> Result<Pattern, String> {
        Ok(Pattern {
            text: pattern.into(),
            any_case,
            regex: build(pattern, any_case)?,
        })
    }

    pub fn regex(&self) -> &Regex {
        &self.regex
    }

    /// As written, without nginx's `~` or `~*`.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        (&self.text, self.any_case) == (&other.text, other.any_case)
    }
}

impl Eq for Pattern {}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::tests::{internal, made, redirect, rules};

    #[track_caller]
    fn refused(name: &str, value: &str) -> String {
        Rule::parse(name, value).unwrap_err()
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
                "names `$x`: it may name `$1` to `$9`, the pattern's named groups, `$host`, \
                 `$scheme`, `$request_uri`, `$args` (`$query_string`) and `$is_args`",
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
    fn a_rule_takes_as_many_hosts_and_as_long_a_pattern_as_allowed() {
        let hosts = |n: usize| {
            let names: Vec<String> = (0..n).map(|i| format!("h{i}.example")).collect();
            format!("^/a /b host={}", names.join(","))
        };
        assert!(Rule::parse("r", &hosts(MAX_HOSTS)).is_ok());
        assert!(refused("r", &hosts(MAX_HOSTS + 1)).contains("more than 32 hosts"));
        let longest = format!("^/{} /b", "a".repeat(MAX_PATTERN_LEN - 2));
        assert!(Rule::parse("r", &longest).is_ok());
    }

    #[test]
    fn a_rule_shows_its_name_pattern_and_replacement_as_written() {
        let r = Rule::parse("old-blog", "^/blog/(.*)$ /articles/$1? permanent").unwrap();
        assert_eq!(
            (r.name(), r.pattern(), r.replacement()),
            ("old-blog", "^/blog/(.*)$", "/articles/$1?")
        );
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
}
