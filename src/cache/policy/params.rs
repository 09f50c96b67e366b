//! Query parameters left out of the cache key (the
//! `cache_key_ignore_params` setting): marketing links add `utm_source`,
//! `gclid`, `fbclid` and the like, which the application ignores but
//! which would otherwise make every campaign's visitors a key of their
//! own, and a miss. Varnish does it with `std.querysort` and a `regsub`,
//! nginx with a `map` building `proxy_cache_key`; the backend still gets
//! the query as sent (see `key::push_query` for how the key is built).

use super::key::push_path;
use crate::patterns::{Listing, NamePatterns};

/// Parameter names left out of the cache key: each exact, or a prefix
/// (written with a trailing `*`, as `utm_*`); a lone `*` is the empty
/// prefix, every parameter. Held as the key spells them (see
/// [`push_path`]): `utm%5Fsource` is `utm_source` there, so the one
/// setting covers every spelling of a name that already shares a key.
/// Empty: off, and keys are what they were without the setting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgnoredParams {
    names: NamePatterns,
}

const PARAMS: Listing = Listing {
    what: "parameter names",
    example: "utm_*, gclid, fbclid",
    prefix_example: "utm_*",
    every: "every parameter",
    // The trackers of the usual ad networks are a dozen or two, and every
    // parameter of every cached request is compared with each.
    most: 32,
};

impl IgnoredParams {
    /// Comma separated parameter names, each with an optional trailing
    /// `*`; empty = off. A name is printable ASCII (what a request-target
    /// may hold) but `=`, `&` and `#`, which would end it, and `,`, which
    /// ends it here; a `%` must start an escape (`%5F`).
    pub fn parse(v: &str) -> Result<IgnoredParams, String> {
        let names = NamePatterns::parse(v, &PARAMS, |name| {
            if !(name.bytes()).all(|b| b.is_ascii_graphic() && !b"=&#".contains(&b)) {
                return Err(format!(
                    "`{}` is not a query parameter name (printable ASCII; no space, `=`, `&` \
                     or `#`)",
                    name.escape_debug()
                ));
            }
            if !escapes_are_whole(name) {
                return Err(format!(
                    "`{name}`: a `%` must start an escape of two hex digits (`%5F`)"
                ));
            }
            let mut spelled = String::with_capacity(name.len());
            push_path(&mut spelled, name);
            Ok(spelled.into_bytes())
        })?;
        Ok(IgnoredParams { names })
    }

    /// Whether the setting is off.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether a parameter named `name`, as the key spells it (see
    /// [`push_path`]), is left out of the key.
    pub fn matches(&self, name: &str) -> bool {
        self.names.matches(name.as_bytes())
    }

    /// Whether a parameter whose name begins with `start` (as the key
    /// spells it) may be left out of the key.
    pub fn may_begin(&self, start: &str) -> bool {
        self.names.may_match_a_name_beginning(start.as_bytes())
    }
}

/// Whether every `%` in `name` starts `%XX`: a lone one, which the key
/// spells `%25`, would make a prefix that ends in it (`a%2*`) match
/// nothing it looks like.
fn escapes_are_whole(name: &str) -> bool {
    let b = name.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::patterns::Pattern;

    fn names(v: &str) -> Vec<Pattern> {
        IgnoredParams::parse(v).unwrap().names.patterns().to_vec()
    }

    fn exact(s: &str) -> Pattern {
        Pattern::Exact(s.as_bytes().into())
    }

    fn prefix(s: &str) -> Pattern {
        Pattern::Prefix(s.as_bytes().into())
    }

    #[test]
    fn names_with_an_optional_trailing_star() {
        assert!(IgnoredParams::parse("").unwrap().is_empty());
        assert!(IgnoredParams::parse(" \t").unwrap().is_empty());
        assert_eq!(
            names("utm_*, gclid ,fbclid"),
            [prefix("utm_"), exact("gclid"), exact("fbclid")]
        );
        assert_eq!(names("*"), [prefix("")]);
        // Any printable ASCII but what ends a name.
        assert_eq!(names("a.b[c]~!$'()+;:@/?"), [exact("a.b[c]~!$'()+;:@/?")]);
        // In the key's spelling: unreserved characters decoded, hex
        // digits upper-cased, reserved ones kept encoded.
        assert_eq!(
            names("utm%5fsource, a%2fb, %7E*"),
            [exact("utm_source"), exact("a%2Fb"), prefix("~")]
        );
        let most: Vec<String> = (0..PARAMS.most).map(|i| format!("p{i}")).collect();
        assert!(IgnoredParams::parse(&most.join(",")).is_ok());
        let too_many = format!("{}, one_more", most.join(","));
        for (bad, why) in [
            ("a b", "not a query parameter name"),
            ("a=b", "not a query parameter name"),
            ("a&b", "not a query parameter name"),
            ("a#b", "not a query parameter name"),
            ("a\tb", "not a query parameter name"),
            ("a\u{1b}", "not a query parameter name"),
            ("caf\u{e9}", "not a query parameter name"),
            ("a%", "must start an escape"),
            ("a%2", "must start an escape"),
            ("a%2*", "must start an escape"),
            ("a%zz", "must start an escape"),
            ("a,", "empty entry"),
            ("a,,b", "empty entry"),
            (",", "empty entry"),
            ("utm_*x", "may only end"),
            ("a**", "may only end"),
            ("*a", "may only end"),
            ("gclid, gclid", "listed twice"),
            ("utm_*, utm_*", "listed twice"),
            ("utm_source, utm%5Fsource", "listed twice"),
            (&too_many, "at most 32"),
        ] {
            let e = IgnoredParams::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        // Not twice: one is a prefix, the other a name.
        assert!(IgnoredParams::parse("utm_, utm_*").is_ok());
    }

    #[test]
    fn names_match_whole_or_by_prefix_as_sent() {
        let set = IgnoredParams::parse("utm_*, gclid").unwrap();
        for name in ["gclid", "utm_", "utm_source", "utm_campaign"] {
            assert!(set.matches(name), "{name}");
        }
        for name in ["", "GCLID", "gclid2", "xgclid", "utm", "UTM_source", "id"] {
            assert!(!set.matches(name), "{name}");
        }
        assert!(IgnoredParams::parse("*").unwrap().matches(""));
        assert!(!IgnoredParams::default().matches("gclid"));
    }
}
