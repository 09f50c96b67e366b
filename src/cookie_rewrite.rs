//! `cookie_domain` and `cookie_path` (nginx's `proxy_cookie_domain` and
//! `proxy_cookie_path`): the `Domain` and `Path` of a backend's cookies
//! replaced on their way to clients, for a backend that names its own
//! host or its own base path in them (`cookie_domain = app.internal
//! $host`, `cookie_path = /app/ /`): a browser drops a cookie whose
//! domain is not the site's, and sends one back only under its path.
//! Rules are tried in the order written; the first that takes the value
//! applies, as nginx applies the first matching directive.

use crate::http::headers::set_cookie_attributes;
use crate::rule_pairs;

/// The rules of `cookie_domain`, in the order written; empty when the
/// setting is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CookieDomains {
    rules: Box<[Rule]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    /// The domain replaced, lower case, without a leading dot.
    from: Box<str>,
    to: To,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum To {
    Domain(Box<str>),
    /// `$host`: the host the client asked for, without its port.
    Host,
}

impl CookieDomains {
    /// Comma separated rules, each `<from> <to>`: a domain the backend
    /// writes, and the one clients get in its place, or `$host`. Empty =
    /// off.
    pub fn parse(v: &str) -> Result<CookieDomains, String> {
        let mut rules = Vec::new();
        for (from, to) in rule_pairs::parse(v, "app.internal $host")? {
            let to = match to {
                "$host" => To::Host,
                to => To::Domain(domain(to)?.into()),
            };
            rules.push(Rule {
                from: domain(from)?.to_ascii_lowercase().into(),
                to,
            });
        }
        Ok(CookieDomains {
            rules: rules.into(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// A `Set-Cookie` field's value with each `Domain` attribute a rule
    /// names replaced (its leading dot kept), the rest byte for byte;
    /// `host` is what `$host` stands for (none: such a rule does not
    /// apply). `None` when no rule applies.
    pub fn apply(&self, field: &[u8], host: Option<&str>) -> Option<Vec<u8>> {
        replace_values(field, "domain", |value| {
            let dot = usize::from(value.starts_with(b"."));
            let named = &value[dot..];
            let rule =
                (self.rules.iter()).find(|r| named.eq_ignore_ascii_case(r.from.as_bytes()))?;
            let to = match &rule.to {
                To::Domain(to) => to,
                To::Host => host?,
            };
            Some([&value[..dot], to.as_bytes()].concat())
        })
    }
}

/// The rules of `cookie_path`, in the order written; empty when the
/// setting is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CookiePaths {
    /// Each a path a cookie's `Path` may begin with, and what replaces
    /// that start.
    rules: Box<[(Box<str>, Box<str>)]>,
}

impl CookiePaths {
    /// Comma separated rules, each `<from> <to>`: the start of the paths
    /// the backend writes, and what clients get in its place, both
    /// beginning with `/`. Empty = off.
    pub fn parse(v: &str) -> Result<CookiePaths, String> {
        let mut rules = Vec::new();
        for (from, to) in rule_pairs::parse(v, "/app/ /")? {
            for path in [from, to] {
                if !path.starts_with('/') || path.contains([';', '?', '$']) {
                    return Err(format!(
                        "`{path}`: not a cookie's path (it begins with `/`, and has no `;`, \
                         `?` or variable)"
                    ));
                }
            }
            rules.push((from.into(), to.into()));
        }
        Ok(CookiePaths {
            rules: rules.into(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// A `Set-Cookie` field's value with each `Path` attribute that a
    /// rule's path begins given the rule's in place of that start (paths
    /// compared as written), the rest byte for byte. `None` when no rule
    /// applies.
    pub fn apply(&self, field: &[u8]) -> Option<Vec<u8>> {
        replace_values(field, "path", |value| {
            let (from, to) =
                (self.rules.iter()).find(|(from, _)| value.starts_with(from.as_bytes()))?;
            Some([to.as_bytes(), &value[from.len()..]].concat())
        })
    }
}

/// `field` (a `Set-Cookie` value) with the value of each attribute of
/// the name `attribute` that `replace` gives another in its place, the
/// rest byte for byte; `None` when it gives none.
fn replace_values(
    field: &[u8],
    attribute: &'static str,
    mut replace: impl FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let mut made: Option<Vec<u8>> = None;
    // Where the field's bytes not yet copied to `made` begin.
    let mut copied = 0;
    for span in set_cookie_attributes(field, attribute) {
        let Some(value) = replace(&field[span.clone()]) else {
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
