//! The `<from> <to>` rules of `location_rewrite`, `cookie_domain` and
//! `cookie_path` (nginx's `proxy_redirect`, `proxy_cookie_domain` and
//! `proxy_cookie_path`), comma separated, each two words; what each word
//! may be is the setting's to say. A `<from>` may be nginx's regular
//! expression (`~pattern`, `~*pattern` in any case), which replaces the
//! whole value it matches with its `<to>`, and that may name the groups
//! of the match: `$1` to `$9`, and a named one by its name.

use crate::rewrite::{named_groups, Pattern};
use regex::Captures;

/// Most rules one setting lists: each value a backend sends is compared
/// with them in turn.
const MAX_RULES: usize = 32;

// The variables the settings' replacements may name, which no group may
// be named as (see `named_groups`).
use crate::location_rewrite::SAME_FOR_A_URL as VARIABLES;

/// The rules of `v` as `(from, to)`, in the order written; none when it
/// is empty. `example` is a rule as the setting's are written, for the
/// message that says what a rule is.
pub fn parse<'a>(v: &'a str, example: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    if v.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut rules = Vec::new();
    for entry in entries(v) {
        let words: Vec<&str> = entry.split_whitespace().collect();
        let [from, to] = words[..] else {
            return Err(format!(
                "`{}`: a rule is `<from> <to>` (`{example}`), rules separated by commas",
                entry.trim()
            ));
        };
        if entry.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(format!("`{}`: a control character", entry.trim()));
        }
        rules.push((from, to));
    }
    if rules.len() > MAX_RULES {
        return Err(format!("{} rules; at most {MAX_RULES}", rules.len()));
    }
    Ok(rules)
}

/// `v` split at the commas between its rules: not at one within braces
/// in a pattern (`~^/v\d{1,2}/`, a repetition count).
fn entries(v: &str) -> Vec<&str> {
    let mut entries = Vec::new();
    let (mut start, mut braces) = (0, 0usize);
    // Whether the entry's first word, read so far, is a pattern.
    let mut in_pattern = false;
    for (at, c) in v.char_indices() {
        let first_word = v[start..at].trim_start();
        match c {
            ',' if braces == 0 || !in_pattern => {
                entries.push(&v[start..at]);
                (start, braces, in_pattern) = (at + 1, 0, false);
            }
            '~' if first_word.is_empty() => in_pattern = true,
            c if c.is_whitespace() && !first_word.is_empty() => in_pattern = false,
            '{' if in_pattern => braces += 1,
            '}' if in_pattern => braces = braces.saturating_sub(1),
            _ => {}
        }
    }
    entries.push(&v[start..]);
    entries
}

/// The pattern a `<from>` written `~pattern` (or `~*pattern`, letters
/// in any case) compiles to; `None` for one that is not a pattern.
fn pattern(from: &str) -> Option<Result<Pattern, String>> {
    let (text, any_case) = match from.strip_prefix("~*") {
        Some(text) => (text, true),
        None => (from.strip_prefix('~')?, false),
    };
    Some(Pattern::compile_with(text, any_case).map_err(|e| format!("`{from}`: {e}")))
}

/// A rule whose `<from>` is a pattern (see [`pattern`]): the pattern, and
/// `to` split at the groups it names, each text between them read by
/// `text` into the setting's parts; `None` for a `<from>` that is not a
/// pattern.
#[allow(clippy::type_complexity)]
pub fn pattern_rule<T>(
    from: &str,
    to: &str,
    mut text: impl FnMut(&str) -> Result<Vec<Part<T>>, String>,
) -> Option<Result<(Pattern, Box<[Part<T>]>), String>> {
    let read = |pattern: Pattern| {
        // Group 0 is the whole match; `$1` is the first in parentheses.
        let groups = pattern.regex().captures_len() - 1;
        let named =
            named_groups(pattern.regex(), &VARIABLES).map_err(|e| format!("`{from}`: {e}"))?;
        let mut parts = Vec::new();
        for part in split_at_groups(to, groups, &named)? {
            match part {
                Part::Text(t) => parts.extend(text(t)?),
                Part::Group(n) => parts.push(Part::Group(n)),
            }
        }
        Ok((pattern, parts.into()))
    };
    Some(pattern(from)?.and_then(read))
}

/// A pattern rule's replacement: its text, and the groups of the match
/// written between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part<T> {
    Text(T),
    /// `$N`: what group N matched; nothing for one that took no part.
    Group(usize),
}

/// `to` split at the groups it names, `$1` to `$9` (one digit, as nginx
/// reads them), for a pattern with `groups` groups, and those of `named`
/// by their names (`$name`, `${name}`); a `$$`, and a `$name` that names
/// no group, are left in the text, for the setting to read as it reads
/// its text.
pub fn split_at_groups<'a>(
    to: &'a str,
    groups: usize,
    named: &[(&str, usize)],
) -> Result<Vec<Part<&'a str>>, String> {
    let mut parts = Vec::new();
    let (bytes, mut text_from, mut at) = (to.as_bytes(), 0, 0);
    while at < bytes.len() {
        let next = bytes.get(at + 1).copied();
        match (bytes[at], next) {
            (b'$', Some(b'$')) => at += 2,
            (b'$', Some(digit @ b'1'..=b'9')) => {
                let n = usize::from(digit - b'0');
                if n > groups {
                    return Err(format!(
                        "`{to}` names `${n}`, but the pattern has {groups} group(s) \
                         (parentheses)"
                    ));
                }
                if text_from < at {
                    parts.push(Part::Text(&to[text_from..at]));
                }
                parts.push(Part::Group(n));
                at += 2;
                text_from = at;
            }
            (b'$', Some(c)) if c == b'{' || c == b'_' || c.is_ascii_alphabetic() => {
                let (name, end) = match c {
                    b'{' => match to[at + 2..].find('}') {
                        Some(len) => (&to[at + 2..at + 2 + len], at + 3 + len),
                        None => ("", at + 1),
                    },
                    _ => {
                        let len = (bytes[at + 1..].iter())
                            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                            .count();
                        (&to[at + 1..at + 1 + len], at + 1 + len)
                    }
                };
                match named.iter().find(|(group, _)| *group == name) {
                    Some(&(_, n)) => {
                        if text_from < at {
                            parts.push(Part::Text(&to[text_from..at]));
                        }
                        parts.push(Part::Group(n));
                        at = end;
                        text_from = at;
                    }
                    None => at += 1,
                }
            }
            _ => at += 1,
        }
    }
    if text_from < to.len() {
        parts.push(Part::Text(&to[text_from..]));
    }
    Ok(parts)
}

/// Whether `to` names a group (`$1` to `$9`): a rule that is not a
/// pattern has none to name.
pub fn names_a_group(to: &str) -> bool {
    split_at_groups(to, 9, &[]).is_ok_and(|parts| parts.iter().any(|p| matches!(p, Part::Group(_))))
}

/// The longest value a rule makes; past it the backend's goes as it
/// came (a replacement that names a group many times would otherwise
/// make a field many times the size of the backend's).
pub const MAX_MADE: usize = 16 * 1024;

/// `parts` written into `out`, each group as `captures` holds it, each
/// text as `text` writes it; `false`, and `out` not to be used, when that
/// would make it longer than [`MAX_MADE`].
pub fn fill<T>(
    parts: &[Part<T>],
    captures: &Captures<'_>,
    out: &mut String,
    mut text: impl FnMut(&T, &mut String),
) -> bool {
    for part in parts {
        match part {
            Part::Text(t) => text(t, out),
            Part::Group(n) => out.push_str(captures.get(*n).map_or("", |m| m.as_str())),
        }
        if out.len() > MAX_MADE {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_two_words_each_comma_separated() {
        assert_eq!(parse(" ", "a b").unwrap(), []);
        assert_eq!(parse("a b, c\td", "a b").unwrap(), [("a", "b"), ("c", "d")]);
        let err = |v: &str| parse(v, "x.internal x.com").unwrap_err();
        assert!(err("a").contains("a rule is `<from> <to>` (`x.internal x.com`)"));
        assert!(err("a b c").contains("`a b c`: a rule is"));
        assert!(err("a b,").contains("a rule is"));
        assert!(err("a b\u{1}").contains("control character"));
        let many = vec!["a b"; 33].join(",");
        assert!(err(&many).contains("33 rules; at most 32"));
        assert_eq!(parse(&vec!["a b"; 32].join(","), "").unwrap().len(), 32);
    }

    #[test]
    fn a_tilde_makes_a_pattern_and_a_star_after_it_one_in_any_case() {
        assert!(pattern("/app/").is_none());
        let exact = pattern("~^/App/").unwrap().unwrap();
        assert!(exact.regex().is_match("/App/x") && !exact.regex().is_match("/app/x"));
        let any = pattern("~*^/App/").unwrap().unwrap();
        assert!(any.regex().is_match("/app/x"));
        assert_ne!(exact, any, "compared with their case too");
        let err = pattern("~^(a").unwrap().unwrap_err();
        assert!(
            err.starts_with("`~^(a`: the pattern `^(a` does not compile"),
            "{err}"
        );
    }

    #[test]
    fn a_replacement_splits_at_its_groups_and_keeps_a_doubled_dollar() {
        use Part::{Group, Text};
        assert_eq!(
            split_at_groups("https://$host$1/x$2", 2, &[]).unwrap(),
            [Text("https://$host"), Group(1), Text("/x"), Group(2)]
        );
        assert_eq!(
            split_at_groups("$$1$10", 1, &[]).unwrap(),
            [Text("$$1"), Group(1), Text("0")]
        );
        assert_eq!(split_at_groups("", 0, &[]).unwrap(), []);
        let err = split_at_groups("/$2", 1, &[]).unwrap_err();
        assert!(
            err.contains("names `$2`, but the pattern has 1 group(s)"),
            "{err}"
        );
        assert!(names_a_group("/$1") && !names_a_group("/$$1") && !names_a_group("$host"));
    }

    #[test]
    fn a_comma_within_a_pattern_s_braces_does_not_split_it() {
        assert_eq!(
            parse("~^/v\\d{1,2}/(.*)$ /$1, ~*a{2,}b{,3} /c,/d /e", "a b").unwrap(),
            [
                ("~^/v\\d{1,2}/(.*)$", "/$1"),
                ("~*a{2,}b{,3}", "/c"),
                ("/d", "/e")
            ]
        );
        // Only a pattern's: elsewhere a comma splits, braces or not.
        assert!(parse("/x{1,2} /y", "a b").is_err());
        assert!(parse("~^/a(.*) /b{1,2}", "a b").is_err());
    }

    #[test]
    fn a_named_group_is_named_by_its_name_and_a_variable_is_left_to_the_setting() {
        use Part::{Group, Text};
        let named = [("app", 1), ("rest", 2)];
        assert_eq!(
            split_at_groups("$scheme://$host/${app}x$rest$hostname$", 2, &named).unwrap(),
            [
                Text("$scheme://$host/"),
                Group(1),
                Text("x"),
                Group(2),
                Text("$hostname$")
            ]
        );
        assert_eq!(
            split_at_groups("${app", 2, &named).unwrap(),
            [Text("${app")]
        );
        let rule = |from: &str, to: &str| pattern_rule(from, to, |t| Ok(vec![Text(t.to_string())]));
        let (_, parts) = rule("~^/(?<app>[a-z]+)/(?P<rest>.*)$", "/$rest/$app")
            .unwrap()
            .unwrap();
        assert_eq!(
            parts[..],
            [Text("/".into()), Group(2), Text("/".into()), Group(1)]
        );
        let clash = rule("~^(?<host>.*)$", "$host").unwrap().unwrap_err();
        assert!(
            clash.contains("group `host` is named as the variable `$host`"),
            "{clash}"
        );
    }

    #[test]
    fn groups_are_filled_from_the_match_and_one_that_took_no_part_is_empty() {
        let re = regex::Regex::new("^/(a)?(b)").unwrap();
        let captures = re.captures("/b").unwrap();
        let parts = split_at_groups("[$1][$2]", 2, &[]).unwrap();
        let mut out = String::new();
        assert!(fill(&parts, &captures, &mut out, |t, out| out.push_str(t)));
        assert_eq!(out, "[][b]");
        let long = "x".repeat(MAX_MADE / 4 + 1);
        let captures = regex::Regex::new("(.*)").unwrap().captures(&long).unwrap();
        let parts = split_at_groups("$1$1$1$1", 1, &[]).unwrap();
        assert!(!fill(&parts, &captures, &mut String::new(), |t, out| out
            .push_str(t)));
    }
}
