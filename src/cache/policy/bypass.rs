//! Cookies that keep a request away from the cache (the
//! `cache_bypass_cookies` setting): nginx's `proxy_cache_bypass` with
//! `proxy_no_cache` on `$cookie_...`, Varnish's `return (pass)` for a
//! `Cookie` that names a session. A signed-in user's request is neither
//! answered from the cache nor stored, while everyone else's is.

use crate::http::headers::spell_cookie_name;
use crate::http::Headers;
use crate::patterns::{Listing, NamePatterns};

/// Cookie names whose presence in a request bypasses the cache: each is
/// exact, or a prefix (written with a trailing `*`, as WordPress's
/// `wordpress_logged_in_*`, whose name ends in a hash of the site's URL).
/// A lone `*` is the empty prefix: any cookie at all. Empty: off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BypassCookies {
    names: NamePatterns,
}

const COOKIES: Listing = Listing {
    what: "cookie names",
    example: "wordpress_logged_in_*, wp-postpass_*",
    prefix_example: "wp-postpass_*",
    every: "any cookie",
    // A site's session and preview cookies are a handful, and every
    // request with a `Cookie` is compared with each.
    most: 32,
};

impl BypassCookies {
    /// Comma separated cookie names (HTTP tokens, RFC 6265 §4.1.1), each
    /// with an optional trailing `*`; empty = off.
    pub fn parse(v: &str) -> Result<BypassCookies, String> {
        let names = NamePatterns::parse(v, &COOKIES, spell_cookie_name)?;
        Ok(BypassCookies { names })
    }

    /// Whether cookie `name` is listed as itself (not under a prefix).
    pub fn lists(&self, name: &str) -> bool {
        self.names.lists_exactly(name.as_bytes())
    }

    /// Whether the setting is off.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether a request with these fields bypasses the cache: one of its
    /// `Cookie` fields (a client may send several) carries a listed
    /// cookie. Off, it costs one branch; on, the fields are scanned in
    /// place, nothing copied.
    pub fn matches(&self, headers: &Headers) -> bool {
        !self.is_empty() && headers.get_all("cookie").any(|field| self.in_field(field))
    }

    /// Whether one `Cookie` field's value carries a listed cookie: its
    /// `;`-separated pairs, trimmed, each named by what comes before its
    /// `=` (case matters: cookie names are compared as sent). A pair
    /// without `=` is taken as a name, as PHP reads it (a browser sends a
    /// cookie with no name that way): bypassing too often is the safe
    /// side.
    pub fn in_field(&self, field: &[u8]) -> bool {
        field.split(|&b| b == b';').any(|pair| {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                return false;
            }
            let name = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => pair[..eq].trim_ascii(),
                None => pair,
            };
            self.names.matches(name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(setting: &str, fields: &[&str]) -> bool {
        let mut headers = Headers::new();
        headers.push("Host", "example.com");
        for field in fields {
            headers.push("Cookie", *field);
        }
        BypassCookies::parse(setting).unwrap().matches(&headers)
    }

    #[test]
    fn names_are_tokens_with_an_optional_trailing_star() {
        use crate::patterns::Pattern;
        let wp = BypassCookies::parse("wordpress_logged_in_*, wp-postpass_* ,sessionid").unwrap();
        assert_eq!(
            wp.names.patterns(),
            [
                Pattern::Prefix((*b"wordpress_logged_in_").into()),
                Pattern::Prefix((*b"wp-postpass_").into()),
                Pattern::Exact((*b"sessionid").into()),
            ]
        );
        let most: Vec<String> = (0..32).map(|i| format!("c{i}")).collect();
        assert!(BypassCookies::parse(&most.join(",")).is_ok());
        let too_many = format!("{}, one_more", most.join(","));
        for (bad, why) in [
            ("a b", "not a cookie name"),
            ("a=b", "not a cookie name"),
            ("a;b", "not a cookie name"),
            ("\"a\"", "not a cookie name"),
            ("caf\u{e9}", "not a cookie name"),
            ("a\u{1b}", "not a cookie name"),
            ("a,", "list cookie names"),
            ("a*b", "(`wp-postpass_*`), or stand alone for any cookie"),
            (&too_many, "at most 32"),
        ] {
            let e = BypassCookies::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_name_is_listed_as_itself_only_when_named_whole() {
        let setting = BypassCookies::parse("sessionid, wp-postpass_*").unwrap();
        assert!(setting.lists("sessionid"));
        // Under a prefix it bypasses, but is not named.
        assert!(!setting.lists("wp-postpass_"));
        assert!(!setting.lists("wp-postpass_x"));
        assert!(!setting.lists("SessionID"));
        assert!(!setting.is_empty());
        assert!(BypassCookies::parse("").unwrap().is_empty());
        assert!(BypassCookies::default().is_empty());
    }

    #[test]
    fn a_listed_cookie_anywhere_in_any_cookie_field_matches() {
        let sid = "sessionid";
        assert!(matches(sid, &["sessionid=abc"]));
        assert!(matches(sid, &["theme=dark; sessionid=abc; lang=en"]));
        assert!(matches(sid, &["theme=dark;sessionid=abc"]));
        assert!(matches(sid, &["  sessionid=abc  ;"]));
        assert!(matches(sid, &["theme=dark\t; sessionid =abc"]));
        // Empty value, or no `=` at all.
        assert!(matches(sid, &["sessionid="]));
        assert!(matches(sid, &["a=1; sessionid"]));
        // The second of two Cookie lines.
        assert!(matches(sid, &["theme=dark", "sessionid=abc"]));
        // Names are compared whole, as sent.
        assert!(!matches(sid, &[]));
        assert!(!matches(sid, &[""]));
        assert!(!matches(sid, &["SessionID=abc"]));
        assert!(!matches(sid, &["sessionid2=abc"]));
        assert!(!matches(sid, &["my_sessionid=abc"]));
        // A name in a value is no name.
        assert!(!matches(sid, &["a=sessionid", "b=x; c=sessionid=1"]));
        assert!(!matches(sid, &["theme=dark", "lang=en"]));
        // Off: nothing matches.
        assert!(!matches("", &["sessionid=abc"]));
    }

    #[test]
    fn a_star_matches_every_name_that_starts_with_what_precedes_it() {
        let wp = "wordpress_logged_in_*, wp-postpass_*, comment_author_*";
        assert!(matches(
            wp,
            &["wordpress_test_cookie=WP%20Cookie%20check; wordpress_logged_in_3f2a9c=admin%7C17"]
        ));
        assert!(matches(wp, &["wp-postpass_9d1e=%24P%24B"]));
        assert!(matches(wp, &["comment_author_"]));
        assert!(!matches(wp, &["wordpress_test_cookie=WP%20Cookie%20check"]));
        assert!(!matches(wp, &["wordpress_logged_in=1"]));
        assert!(!matches(wp, &["Wordpress_logged_in_x=1"]));
        // A lone star: any cookie, even one with an empty name.
        assert!(matches("*", &["a=1"]));
        assert!(matches("*", &["=1"]));
        assert!(matches("*", &["", "x"]));
        assert!(!matches("*", &[]));
        assert!(!matches("*", &["", " ; ;"]));
    }
}
