//! `cookie_domain` and `cookie_path` (nginx's `proxy_cookie_domain` and
//! `proxy_cookie_path`): the `Domain` and `Path` of a backend's cookies
//! replaced on their way to clients, for a backend that names its own
//! host or its own base path in them (`cookie_domain = app.internal
//! $host`, `cookie_path = /app/ /`): a browser drops a cookie whose
//! domain is not the site's, and sends one back only under its path.
//! Rules are tried in the order written; the first that takes the value
//! applies, as nginx applies the first matching directive.

use crate::http::headers::set_cookie_attributes;
use crate::rewrite::Pattern;
use crate::rule_pairs::{self, Part, MAX_MADE};

/// The rules of `cookie_domain`, in the order written; empty when the
/// setting is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CookieDomains {
    rules: Box<[DomainRule]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum DomainRule {
    Domain {
        /// The domain replaced, lower case, without a leading dot.
        from: Box<str>,
        to: To,
    },
    /// nginx's `~pattern`: a `Domain` value it matches (its dot
    /// included) replaced whole.
    Pattern {
        pattern: Pattern,
        to: Box<[Part<To>]>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum To {
    /// A domain, or in a pattern's replacement a part of one.
    Domain(Box<str>),
    /// `$host`: the host the client asked for, without its port.
    Host,
}

impl CookieDomains {
    /// Comma separated rules, each `<from> <to>`: a domain the backend
    /// writes, or nginx's `~pattern` (`~*` in any case) matching the
    /// values to replace whole, and the one clients get in its place, or
    /// `$host`; a pattern's may name its groups (`$1` to `$9`) and hold
    /// `$host` among them. Empty = off.
    pub fn parse(v: &str) -> Result<CookieDomains, String> {
        let mut rules = Vec::new();
        for (from, to) in rule_pairs::parse(v, "app.internal $host")? {
            let rule = match rule_pairs::pattern_rule(from, to, domain_parts) {
                Some(rule) => {
                    let (pattern, to) = rule?;
                    DomainRule::Pattern { pattern, to }
                }
                None => DomainRule::Domain {
                    from: domain(from)?.to_ascii_lowercase().into(),
                    to: match to {
                        "$host" => To::Host,
                        to => To::Domain(domain(to)?.into()),
                    },
                },
            };
            rules.push(rule);
        }
        Ok(CookieDomains {
            rules: rules.into(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// A `Set-Cookie` field's value with each `Domain` attribute a rule
    /// takes replaced (a domain rule keeps its leading dot), the rest
    /// byte for byte; `host` is what `$host` stands for (none: a rule
    /// that writes it does not apply). `None` when no rule applies.
    pub fn apply(&self, field: &[u8], host: Option<&str>) -> Option<Vec<u8>> {
        replace_values(field, "domain", |value| {
            (self.rules.iter()).find_map(|rule| rule.apply(value, host))
        })
    }
}

impl DomainRule {
    fn apply(&self, value: &[u8], host: Option<&str>) -> Option<Vec<u8>> {
        match self {
            DomainRule::Domain { from, to } => {
                let dot = usize::from(value.starts_with(b"."));
                if !value[dot..].eq_ignore_ascii_case(from.as_bytes()) {
                    return None;
                }
                let to = match to {
                    To::Domain(to) => to,
                    To::Host => host?,
                };
                Some([&value[..dot], to.as_bytes()].concat())
            }
            DomainRule::Pattern { pattern, to } => {
                if host.is_none() && to.contains(&Part::Text(To::Host)) {
                    return None;
                }
                let captures = pattern.regex().captures(std::str::from_utf8(value).ok()?)?;
                let mut made = String::new();
                rule_pairs::fill(to, &captures, &mut made, |to, out| match to {
                    To::Domain(text) => out.push_str(text),
                    To::Host => out.push_str(host.unwrap_or_default()),
                });
                Some(made.into_bytes())
            }
        }
    }
}

/// The rules of `cookie_path`, in the order written; empty when the
/// setting is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CookiePaths {
    rules: Box<[PathRule]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PathRule {
    /// A path that begins with `from` has that start replaced by `to`.
    Prefix { from: Box<str>, to: Box<str> },
    /// nginx's `~pattern`: a path it matches replaced whole.
    Pattern {
        pattern: Pattern,
        to: Box<[Part<Box<str>>]>,
    },
}

impl CookiePaths {
    /// Comma separated rules, each `<from> <to>`: the start of the paths
    /// the backend writes, or nginx's `~pattern` (`~*` in any case)
    /// matching those to replace whole, and what clients get in its
    /// place, beginning with `/` (a pattern's may begin with a group,
    /// and name its groups, `$1` to `$9`). Empty = off.
    pub fn parse(v: &str) -> Result<CookiePaths, String> {
        let mut rules = Vec::new();
        for (from, to) in rule_pairs::parse(v, "/app/ /")? {
            let read =
                |text: &str| path_text(text, to).map(|t| vec![Part::Text(Box::<str>::from(t))]);
            let rule = match rule_pairs::pattern_rule(from, to, read) {
                Some(rule) => {
                    let (pattern, parts) = rule?;
                    // What replaces a path is one, unless a group begins it.
                    if matches!(parts.first(), Some(Part::Text(t)) if !t.starts_with('/')) {
                        return Err(not_a_path(to));
                    }
                    PathRule::Pattern { pattern, to: parts }
                }
                None => PathRule::Prefix {
                    from: path(from, from)?.into(),
                    to: path(to, to)?.into(),
                },
            };
            rules.push(rule);
        }
        Ok(CookiePaths {
            rules: rules.into(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// A `Set-Cookie` field's value with each `Path` attribute a rule
    /// takes replaced (a prefix rule's start, compared as written, or
    /// what a pattern matched), the rest byte for byte. `None` when no
    /// rule applies.
    pub fn apply(&self, field: &[u8]) -> Option<Vec<u8>> {
        replace_values(field, "path", |value| {
            (self.rules.iter()).find_map(|rule| match rule {
                PathRule::Prefix { from, to } => {
                    let rest = value.strip_prefix(from.as_bytes())?;
                    Some([to.as_bytes(), rest].concat())
                }
                PathRule::Pattern { pattern, to } => {
                    let captures = pattern.regex().captures(std::str::from_utf8(value).ok()?)?;
                    let mut made = String::new();
                    rule_pairs::fill(to, &captures, &mut made, |t, out| out.push_str(t));
                    Some(made.into_bytes())
                }
            })
        })
    }
}

/// `text`, of the rule word `written`, if it is a cookie's path: it
/// begins with `/`.
fn path<'a>(text: &'a str, written: &str) -> Result<&'a str, String> {
    match text.starts_with('/') {
        true => path_text(text, written),
        false => Err(not_a_path(written)),
    }
}

/// `text`, a part of the rule word `written`, if a cookie's path may
/// hold it: no `;`, `?` or variable.
fn path_text<'a>(text: &'a str, written: &str) -> Result<&'a str, String> {
    match text.contains([';', '?', '$']) {
        true => Err(not_a_path(written)),
        false => Ok(text),
    }
}

fn not_a_path(written: &str) -> String {
    format!(
        "`{written}`: not a cookie's path (it begins with `/`, or a pattern's group, and has \
         no `;`, `?` or variable)"
    )
}

/// `field` (a `Set-Cookie` value) with the value of each attribute of
/// the name `attribute` that `replace` gives another in its place (one
/// past [`MAX_MADE`] left as it came), the rest byte for byte; `None`
/// when it gives none.
fn replace_values(
    field: &[u8],
    attribute: &'static str,
    mut replace: impl FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let mut made: Option<Vec<u8>> = None;
    // Where the field's bytes not yet copied to `made` begin.
    let mut copied = 0;
    for span in set_cookie_attributes(field, attribute) {
        let replaced = replace(&field[span.clone()]);
        let Some(value) = replaced.filter(|v| v.len() <= MAX_MADE) else {
            continue;
        };
        let out = made.get_or_insert_with(|| Vec::with_capacity(field.len() + value.len()));
        out.extend_from_slice(&field[copied..span.start]);
        out.extend_from_slice(&value);
        copied = span.end;
    }
    let mut made = made?;
    made.extend_from_slice(&field[copied..]);
    Some(made)
}

/// `text` if it is a domain name (letters, digits, `-` and dots; a
/// leading dot, which cookies' domains may have, taken off).
fn domain(text: &str) -> Result<&str, String> {
    let name = text.strip_prefix('.').unwrap_or(text);
    let fits = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    match name.split('.').all(fits) {
        true => Ok(name),
        false => Err(format!(
            "`{text}`: not a domain name (letters, digits, `-`, dots); the replacement may \
             also be `$host`"
        )),
    }
}

/// A pattern's replacement text `text` (between its groups) as parts of
/// a domain: `$host` where it is written, the rest letters, digits, `-`
/// and dots.
fn domain_parts(text: &str) -> Result<Vec<Part<To>>, String> {
    let mut parts = Vec::new();
    for (i, piece) in text.split("$host").enumerate() {
        if i > 0 {
            parts.push(Part::Text(To::Host));
        }
        if piece.is_empty() {
            continue;
        }
        // `$hostname` would be a variable of its own.
        let name_goes_on = i > 0 && piece.starts_with(|c: char| c.is_ascii_alphanumeric());
        if name_goes_on || !(piece.bytes()).all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        {
            return Err(format!(
                "`{text}`: a pattern's replacement is a domain's letters, digits, `-` and \
                 dots, its groups (`$1`) and `$host`"
            ));
        }
        parts.push(Part::Text(To::Domain(piece.into())));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(rules: &str, field: &str, host: Option<&str>) -> Option<String> {
        let rules = CookieDomains::parse(rules).unwrap();
        let made = rules.apply(field.as_bytes(), host)?;
        Some(String::from_utf8(made).unwrap())
    }

    #[test]
    fn the_first_rule_naming_a_domain_replaces_it_its_dot_kept() {
        let rules = "app.internal example.com, api.internal $host, app.internal other.com";
        let host = Some("www.example.org");
        assert_eq!(
            apply(rules, "sid=1; Domain=app.internal; Path=/", host).as_deref(),
            Some("sid=1; Domain=example.com; Path=/")
        );
        assert_eq!(
            apply(rules, "sid=1; domain = .APP.internal ;Secure", host).as_deref(),
            Some("sid=1; domain = .example.com ;Secure")
        );
        assert_eq!(
            apply(rules, "a=1; Domain=api.internal", host).as_deref(),
            Some("a=1; Domain=www.example.org")
        );
        // Each Domain attribute, as with paths.
        assert_eq!(
            apply(rules, "a=1; Domain=app.internal; Domain=api.internal", host).as_deref(),
            Some("a=1; Domain=example.com; Domain=www.example.org")
        );
    }

    #[test]
    fn a_cookie_no_rule_names_goes_as_it_came() {
        let rules = "app.internal example.com, api.internal $host";
        assert_eq!(apply(rules, "sid=1; Domain=other.internal", None), None);
        assert_eq!(apply(rules, "sid=1; Domain=sub.app.internal", None), None);
        assert_eq!(
            apply(rules, "Domain=app.internal", None),
            None,
            "the pair, no attribute"
        );
        assert_eq!(apply(rules, "sid=1; Path=/app.internal", None), None);
        // `$host` with no host known: left as it is.
        assert_eq!(apply(rules, "sid=1; Domain=api.internal", None), None);
    }

    #[test]
    fn the_first_path_rule_that_begins_a_cookie_s_path_replaces_that_start() {
        let rules = CookiePaths::parse("/app/admin/ /admin/, /app/ /, /APP /x").unwrap();
        let apply = |field: &str| {
            let made = rules.apply(field.as_bytes())?;
            Some(String::from_utf8(made).unwrap())
        };
        assert_eq!(
            apply("sid=1; Path=/app/account; HttpOnly").as_deref(),
            Some("sid=1; Path=/account; HttpOnly")
        );
        assert_eq!(
            apply("a=1; path = /app/admin/x").as_deref(),
            Some("a=1; path = /admin/x")
        );
        assert_eq!(apply("a=1; Path=/app/").as_deref(), Some("a=1; Path=/"));
        // Compared as written; elsewhere, none, or the pair: as it came.
        assert_eq!(apply("a=1; Path=/App/x"), None);
        assert_eq!(apply("a=1; Path=/other"), None);
        assert_eq!(apply("a=1"), None);
        assert_eq!(apply("Path=/app/x"), None);
        let err = |v: &str| CookiePaths::parse(v).unwrap_err();
        assert!(err("app/ /").contains("not a cookie's path"));
        assert!(err("/app/ /$host/").contains("not a cookie's path"));
        assert!(err("/a;b /").contains("not a cookie's path"));
        assert!(CookiePaths::parse("").unwrap().is_empty());
    }

    #[test]
    fn a_domain_pattern_replaces_the_whole_value_it_matches() {
        let rules = "~*^\\.?([a-z]+)\\.internal$ $1.example.com, ~^static\\. cdn.$host";
        let host = Some("www.example.org");
        assert_eq!(
            apply(rules, "sid=1; Domain=.App.Internal; Path=/", host).as_deref(),
            Some("sid=1; Domain=App.example.com; Path=/"),
            "any case, the dot matched and replaced with the rest"
        );
        assert_eq!(
            apply(rules, "a=1; Domain=static.internal.net", host).as_deref(),
            Some("a=1; Domain=cdn.www.example.org")
        );
        // A rule writing `$host` with no host known does not apply.
        assert_eq!(apply(rules, "a=1; Domain=static.internal.net", None), None);
        assert_eq!(apply(rules, "a=1; Domain=a.b.internal", host), None);
        let err = |v: &str| CookieDomains::parse(v).unwrap_err();
        assert!(err("~^(a) $2.com").contains("names `$2`"));
        assert!(err("~^(a) $1;x").contains("a domain's letters"));
        assert!(err("~^(a) $hostname").contains("a domain's letters"));
        assert!(err("~^(a $host").contains("does not compile"));
    }

    #[test]
    fn a_path_pattern_replaces_the_whole_path_it_matches() {
        let rules = CookiePaths::parse("~^/app(/.*)?$ /new$1, ~*^/API/(v[0-9]+)/ /api/$1").unwrap();
        let apply = |field: &str| {
            let made = rules.apply(field.as_bytes())?;
            Some(String::from_utf8(made).unwrap())
        };
        assert_eq!(
            apply("sid=1; Path=/app/account; HttpOnly").as_deref(),
            Some("sid=1; Path=/new/account; HttpOnly")
        );
        assert_eq!(
            apply("sid=1; Path=/app").as_deref(),
            Some("sid=1; Path=/new")
        );
        assert_eq!(
            apply("a=1; Path=/Api/V2/users").as_deref(),
            Some("a=1; Path=/api/V2")
        );
        assert_eq!(apply("a=1; Path=/application"), None);
        let paths = CookiePaths::parse("~^/[^/]+(/.*)$ $1").unwrap();
        let made = paths.apply(b"a=1; Path=/app/x").unwrap();
        assert_eq!(made, b"a=1; Path=/x", "a group first");
        // A path a rule would make past the bound is left as it came.
        let doubled = CookiePaths::parse("~(.*) $1$1").unwrap();
        let long = format!("a=1; Path=/{}", "p".repeat(MAX_MADE / 2));
        assert_eq!(doubled.apply(long.as_bytes()), None);
        assert!(doubled.apply(b"a=1; Path=/p").is_some());
        let err = |v: &str| CookiePaths::parse(v).unwrap_err();
        assert!(err("~^/a(.*) x$1").contains("not a cookie's path"));
        assert!(err("~^/a(.*) /$1;x").contains("not a cookie's path"));
        assert!(err("~^/a(.*) /$host$1").contains("not a cookie's path"));
        assert!(err("~^/a /$1").contains("names `$1`, but the pattern has 0"));
    }

    #[test]
    fn bad_rules_are_refused_with_what_is_wrong() {
        let err = |v: &str| CookieDomains::parse(v).unwrap_err();
        assert!(err("app.internal").contains("a rule is `<from> <to>`"));
        assert!(err("app..internal example.com").contains("not a domain name"));
        assert!(err("app.internal $remote_addr").contains("not a domain name"));
        assert!(err("app.internal exa_mple.com").contains("`exa_mple.com`"));
        assert!(CookieDomains::parse("").unwrap().is_empty());
        assert!(CookieDomains::parse(".app.internal .example.com").is_ok());
    }
}
