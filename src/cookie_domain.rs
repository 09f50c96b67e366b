//! `cookie_domain` (nginx's `proxy_cookie_domain`): the `Domain` of a
//! backend's cookies replaced on their way to clients, for a backend that
//! names its own host in them (`cookie_domain = app.internal $host`):
//! a browser drops a cookie whose domain is not the site's. Rules are
//! tried in the order written; the first naming the domain applies.

use crate::http::headers::set_cookie_attributes;
use crate::rule_pairs;

/// The rules, in the order written; empty when the setting is off.
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
        let mut made: Option<Vec<u8>> = None;
        // Where the field's bytes not yet copied to `made` begin.
        let mut copied = 0;
        for span in set_cookie_attributes(field, "domain") {
            let value = &field[span.clone()];
            let dot = usize::from(value.starts_with(b"."));
            let named = &value[dot..];
            let rule = self
                .rules
                .iter()
                .find(|r| named.eq_ignore_ascii_case(r.from.as_bytes()));
            let to = match rule.map(|r| &r.to) {
                Some(To::Domain(to)) => &**to,
                Some(To::Host) => match host {
                    Some(host) => host,
                    None => continue,
                },
                None => continue,
            };
            let out = made.get_or_insert_with(|| Vec::with_capacity(field.len() + to.len()));
            out.extend_from_slice(&field[copied..span.start + dot]);
            out.extend_from_slice(to.as_bytes());
            copied = span.end;
        }
        let mut made = made?;
        made.extend_from_slice(&field[copied..]);
        Some(made)
    }
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
