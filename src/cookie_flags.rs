//! `cookie_flags` (nginx's `proxy_cookie_flags`): the `Secure`,
//! `HttpOnly` and `SameSite` attributes a backend's cookies are given, or
//! lose, on their way to clients, for an application that cannot be made
//! to set them itself (`cookie_flags = * secure httponly samesite=lax`).
//! Rules are tried in the order written; the first whose names take the
//! cookie applies, as nginx applies the first matching directive.

use crate::http::headers::spell_cookie_name;
use crate::patterns::{Listing, NamePatterns};

/// Most rules one setting lists: each `Set-Cookie` a backend sends is
/// compared with them in turn.
const MAX_RULES: usize = 32;

/// The rules, in the order written; empty when the setting is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CookieFlags {
    rules: Box<[Rule]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    cookies: NamePatterns,
    /// The attributes the rule names (lower case), taken out of the
    /// field whether the rule adds them back or not: a backend's
    /// `SameSite=None` is not left beside the rule's `SameSite=Lax`.
    named: Box<[&'static str]>,
    /// What is appended: `; Secure; SameSite=Lax`.
    added: Box<str>,
}

const COOKIES: Listing = Listing {
    what: "cookie names",
    example: "session, csrf_*",
    prefix_example: "csrf_*",
    every: "every cookie",
    most: 1,
};

/// Each flag as written: the attribute it names, and what it adds (if
/// anything; the `no` flags take the attribute out).
const FLAGS: &[(&str, &str, Option<&str>)] = &[
    ("secure", "secure", Some("Secure")),
    ("nosecure", "secure", None),
    ("httponly", "httponly", Some("HttpOnly")),
    ("nohttponly", "httponly", None),
    ("samesite=strict", "samesite", Some("SameSite=Strict")),
    ("samesite=lax", "samesite", Some("SameSite=Lax")),
    ("samesite=none", "samesite", Some("SameSite=None")),
    ("nosamesite", "samesite", None),
];

impl CookieFlags {
    /// Comma separated rules, each a cookie name (a trailing `*` for a
    /// prefix, a lone `*` for every cookie) and its flags: `secure`,
    /// `httponly`, `samesite=strict|lax|none`, and `nosecure`,
    /// `nohttponly`, `nosamesite`, in any case. Empty = off.
    pub fn parse(v: &str) -> Result<CookieFlags, String> {
        let mut rules = Vec::new();
        for entry in v.split(',') {
            let mut words = entry.split_whitespace();
            let Some(name) = words.next() else {
                if v.trim().is_empty() {
                    break;
                }
                return Err("an empty rule (`<cookie> <flag>...`) in the list".into());
            };
            if name.starts_with('~') {
                return Err(format!(
                    "`{name}`: nginx's regular expressions are not read here; write a name, a \
                     prefix (`csrf_*`) or `*` for every cookie"
                ));
            }
            let cookies = NamePatterns::parse(name, &COOKIES, spell_cookie_name)?;
            let mut named: Vec<&'static str> = Vec::new();
            let mut added = String::new();
            for word in words {
                let lower = word.to_ascii_lowercase();
                let Some(&(_, attribute, adds)) = FLAGS.iter().find(|(f, ..)| *f == lower) else {
                    return Err(format!(
                        "{name}: unknown flag `{word}` (expected secure, httponly, \
                         samesite=strict, samesite=lax, samesite=none, nosecure, nohttponly \
                         or nosamesite)"
                    ));
                };
                if named.contains(&attribute) {
                    return Err(format!(
                        "{name}: `{word}`: the rule already says what to do with {attribute}"
                    ));
                }
                named.push(attribute);
                if let Some(adds) = adds {
                    added.push_str("; ");
                    added.push_str(adds);
                }
            }
            if named.is_empty() {
                return Err(format!(
                    "{name}: no flag (e.g. `{name} secure httponly samesite=lax`)"
                ));
            }
            rules.push(Rule {
                cookies,
                named: named.into(),
                added: added.into(),
            });
        }
        if rules.len() > MAX_RULES {
            return Err(format!("{} rules; at most {MAX_RULES}", rules.len()));
        }
        Ok(CookieFlags {
            rules: rules.into(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// A `Set-Cookie` field's value as the first rule taking its cookie
    /// makes it: its name and value as sent, the attributes the rule
    /// does not name as sent, then those it adds. `None` when no rule
    /// takes it.
    pub fn apply(&self, field: &[u8]) -> Option<Vec<u8>> {
        let mut parts = field.split(|&b| b == b';');
        let pair = parts.next().unwrap_or_default();
        // A pair without `=` is a cookie without a name (RFC 6265 §5.2).
        let name = pair
            .iter()
            .position(|&b| b == b'=')
            .map_or(&b""[..], |eq| pair[..eq].trim_ascii());
        let rule = self.rules.iter().find(|r| r.cookies.matches(name))?;
        let mut made = Vec::with_capacity(field.len() + rule.added.len());
        made.extend_from_slice(pair);
        for attribute in parts {
            let attribute_name = attribute
                .split(|&b| b == b'=')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            if !(rule.named.iter()).any(|n| attribute_name.eq_ignore_ascii_case(n.as_bytes())) {
                made.push(b';');
                made.extend_from_slice(attribute);
            }
        }
        made.extend_from_slice(rule.added.as_bytes());
        Some(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(rules: &str, field: &str) -> Option<String> {
        let flags = CookieFlags::parse(rules).unwrap();
        flags
            .apply(field.as_bytes())
            .map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn flags_are_added_once_and_the_rest_of_the_field_is_kept_as_sent() {
        assert_eq!(
            applied(
                "* secure httponly samesite=lax",
                "sid=a b; Path=/; secure; Max-Age=60"
            ),
            Some("sid=a b; Path=/; Max-Age=60; Secure; HttpOnly; SameSite=Lax".into())
        );
        // The backend's SameSite gives way to the rule's.
        assert_eq!(
            applied("sid samesite=strict", "sid=1; SameSite=None; Secure"),
            Some("sid=1; Secure; SameSite=Strict".into())
        );
    }

    #[test]
    fn the_no_flags_take_an_attribute_out_in_any_case() {
        assert_eq!(
            applied(
                "sid nosecure NOHTTPONLY nosamesite",
                "sid=1;SECURE;HttpOnly ; samesite = lax;Path=/"
            ),
            Some("sid=1;Path=/".into())
        );
    }

    #[test]
    fn the_first_rule_naming_the_cookie_applies_and_others_are_left_alone() {
        let rules = "csrf_* secure, sid secure httponly, * samesite=lax";
        assert_eq!(applied(rules, "csrf_t=1"), Some("csrf_t=1; Secure".into()));
        assert_eq!(
            applied(rules, " sid =2"),
            Some(" sid =2; Secure; HttpOnly".into())
        );
        assert_eq!(
            applied(rules, "lang=en"),
            Some("lang=en; SameSite=Lax".into())
        );
        assert_eq!(
            applied("sid secure", "SID=1"),
            None,
            "names are compared as sent"
        );
        assert_eq!(applied("sid secure", "sidx=1"), None);
        assert_eq!(applied("", "sid=1"), None);
        // A cookie without a name is taken by `*` alone.
        assert_eq!(applied("* secure", "v"), Some("v; Secure".into()));
        assert_eq!(applied("v secure", "v"), None);
    }

    #[test]
    fn a_wrong_rule_is_refused_saying_why() {
        for (rules, says) in [
            ("~ secure", "regular expressions are not read here"),
            ("sid", "sid: no flag"),
            ("sid secure nosecure", "already says what to do with secure"),
            (
                "sid samesite=lax samesite=none",
                "already says what to do with samesite",
            ),
            ("sid samesite", "unknown flag `samesite`"),
            ("sid secure,", "an empty rule"),
            ("s;d secure", "is not a cookie name"),
            ("s*d secure", "`*` may only end a name"),
        ] {
            let e = CookieFlags::parse(rules).unwrap_err();
            assert!(e.contains(says), "{rules}: {e}");
        }
        let many = vec!["a secure"; MAX_RULES + 1].join(",");
        assert!(CookieFlags::parse(&many)
            .unwrap_err()
            .contains("at most 32"));
        assert!(CookieFlags::parse(&vec!["a secure"; MAX_RULES].join(",")).is_ok());
        assert!(CookieFlags::parse("  ").unwrap().is_empty());
    }

    #[test]
    fn a_setting_with_a_rule_is_not_empty() {
        // The proxy skips the `Set-Cookie` pass on an empty setting.
        assert!(!CookieFlags::parse("sid secure").unwrap().is_empty());
    }

    proptest::proptest! {
        /// Whatever a backend's field holds, a rule for every cookie keeps
        /// its pair and every attribute it does not name as sent, and says
        /// each flag it adds once, last.
        #[test]
        fn a_rule_adds_its_flags_once_and_keeps_the_rest(
            field in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(b";= SecureHttpOnlysamesite".to_vec()),
                    proptest::num::u8::ANY,
                ],
                0..40,
            ),
        ) {
            let rules = CookieFlags::parse("* secure samesite=lax").unwrap();
            let made = rules.apply(&field).unwrap();
            let named = |part: &[u8], name: &str| {
                let key = part.split(|&b| b == b'=').next().unwrap_or_default();
                key.trim_ascii().eq_ignore_ascii_case(name.as_bytes())
            };
            let mut parts = made.split(|&b| b == b';');
            let mut sent = field.split(|&b| b == b';');
            proptest::prop_assert_eq!(parts.next(), sent.next());
            let kept: Vec<&[u8]> = sent
                .filter(|p| !named(p, "secure") && !named(p, "samesite"))
                .collect();
            let parts: Vec<&[u8]> = parts.collect();
            let (made_kept, added) = parts.split_at(parts.len() - 2);
            proptest::prop_assert_eq!(made_kept, &kept[..]);
            proptest::prop_assert_eq!(added, &[&b" Secure"[..], &b" SameSite=Lax"[..]][..]);
        }
    }
}
