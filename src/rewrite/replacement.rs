//! A rule's replacement read: its text, the groups (`$1` to `$9`) and
//! variables (`$host`, `$args`, ...) it writes, where a URL's site ends,
//! and what becomes of the client's query.

use std::iter::Peekable;
use std::str::Chars;

/// The highest group a replacement may name: `$1` to `$9`, one digit, as
/// nginx reads them (`$10` is `$1` and a `0`).
const MAX_GROUP: usize = 9;

/// A replacement, read: text and the groups to put between it, and what
/// becomes of the client's query.
#[derive(Clone, Debug)]
pub(super) struct Replacement {
    pub(super) pieces: Vec<Piece>,
    pub(super) query: Query,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Piece {
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
pub(super) enum Query {
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

/// The variables a replacement may name, besides groups.
const VARIABLES: [&str; 6] = [
    "host",
    "scheme",
    "request_uri",
    "args",
    "query_string",
    "is_args",
];

/// A pattern's groups, as a replacement may name them: `$1` to `$9` by
/// number, each named one (`(?<name>...)`, `(?P<name>...)`) by its name
/// too, as nginx's named captures.
pub(super) struct Groups<'a> {
    /// How many, the whole match apart.
    count: usize,
    /// The named ones, with their number.
    named: Vec<(&'a str, usize)>,
}

impl<'a> Groups<'a> {
    /// The groups of `regex` (see [`super::named_groups`]).
    pub(super) fn of(regex: &'a regex::Regex) -> Result<Groups<'a>, String> {
        Ok(Groups {
            count: regex.captures_len() - 1,
            named: super::named_groups(regex, &VARIABLES)?,
        })
    }

    /// The number of the group named `name`.
    fn named(&self, name: &str) -> Option<usize> {
        (self.named.iter()).find_map(|&(named, n)| (named == name).then_some(n))
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
    pub(super) fn names_host(&self) -> bool {
        self.pieces.contains(&Piece::Host)
    }

    /// For a replacement that is a URL (`http://`, `https://` or
    /// `$scheme://` first): how many of its first pieces write the scheme
    /// and the host, the text piece in which the host ends split there.
    /// The host ends at the first `/` or `?` after `://`, or at a group;
    /// `None` for a URL whose host is empty, or ends with `@` (a group
    /// after it would be the host).
    pub(super) fn split_site(&mut self) -> Option<usize> {
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

    /// `written`, for a pattern with `groups`.
    pub(super) fn parse(written: &str, groups: &Groups<'_>) -> Result<Replacement, String> {
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
                Some(d @ '1'..='9') => group(written, d as u8, groups.count)?,
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
                        &[d @ b'1'..=b'9'] => group(written, d, groups.count)?,
                        _ => match groups.named(&name) {
                            Some(n) => Piece::Group(n),
                            None => {
                                return Err(format!(
                                    "the replacement `{written}` names `${name}`: it may name \
                                     `$1` to `${MAX_GROUP}`, the pattern's named groups, \
                                     `$host`, `$scheme`, `$request_uri`, `$args` \
                                     (`$query_string`) and `$is_args` (`${{host}}` before a \
                                     letter, digit or `_`; `$$` writes a dollar)"
                                ))
                            }
                        },
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

#[cfg(test)]
mod tests {
    use crate::rewrite::tests::{internal, made, redirect, rules};
    use crate::rewrite::Rule;

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
    fn named_groups_are_named_by_their_names_and_numbers() {
        // nginx's named captures: `(?<name>...)`, and Perl's `(?P<name>...)`.
        let rule = "^/users/(?<id>\\d+)/(?P<tab>[a-z]+)$ /profile?user=$id&tab=${tab}x&again=$1";
        assert_eq!(
            made(rule, "/users/42/posts"),
            internal("/profile?user=42&tab=postsx&again=42")
        );
        // Past nine groups, a name is the way to the tenth.
        let many = "^/(a)(b)(c)(d)(e)(f)(g)(h)(i)(?<tenth>j)$ /$tenth/$1";
        assert_eq!(made(many, "/abcdefghij"), internal("/j/a"));
        let refused = |value: &str| Rule::parse("r", value).unwrap_err();
        let unknown = refused("^/(?<id>\\d+)$ /u/$user");
        assert!(
            unknown.contains("`$user`") && unknown.contains("named groups"),
            "{unknown}"
        );
        let clash = refused("^/(?<host>[a-z]+)$ /u/$host");
        assert!(clash.contains("named as the variable `$host`"), "{clash}");
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
}
