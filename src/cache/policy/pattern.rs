//! `Purge-Regex`: a purge of every entry of one host whose path and query
//! match a regular expression, as Varnish's `ban req.url ~ "..."`, for what
//! a prefix cannot say (`\.jpg$`, `^/products/[0-9]+/images/`).
//!
//! The `regex` crate runs in time linear in the key whatever the pattern
//! (no backtracking), so a hostile pattern cannot hold the cache lock a
//! purge's walk takes for longer than an ordinary one; its size is bounded
//! at compile time.

use super::key::{key_authority, split_key};
use crate::http::RequestHead;
use regex::{Regex, RegexBuilder};

/// The request field of the admin listener's `PURGE /` that carries the
/// pattern.
pub const PURGE_REGEX: &str = "purge-regex";

/// Longest pattern, in bytes: a purge names a few URLs' shapes, not a list
/// of every URL.
pub const MAX_PATTERN_LEN: usize = 1024;

/// Most memory the compiled pattern may take (`RegexBuilder::size_limit`):
/// within [`MAX_PATTERN_LEN`], a counted repetition (`(\w{100}){100}`)
/// could otherwise compile to hundreds of MiB.
pub const MAX_PATTERN_SIZE: usize = 1 << 20;

/// What a purge by pattern names: the entries of one authority (both
/// schemes) whose path and query, as the key spells them, the regex
/// matches. The host is no part of what is matched, so `^/products/`
/// means what it says; it is not a pattern either, so that a purge stays
/// within the site its `Host` names, as a purge of a prefix does.
#[derive(Clone, Debug)]
pub struct KeyPattern {
    authority: Box<str>,
    regex: Regex,
}

/// Two purges of the same pattern on the same host are one group: a retry
/// moves the group's epoch on rather than taking another place.
impl PartialEq for KeyPattern {
    fn eq(&self, other: &Self) -> bool {
        self.authority == other.authority && self.regex.as_str() == other.regex.as_str()
    }
}

impl Eq for KeyPattern {}

/// Why a purge's `Purge-Regex` names no pattern.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("Purge-Regex is empty: PURGE /* purges a whole site")]
    Empty,
    #[error("Purge-Regex is given more than once")]
    Several,
    #[error("Purge-Regex is longer than {MAX_PATTERN_LEN} bytes")]
    TooLong,
    #[error("Purge-Regex is not UTF-8")]
    NotUtf8,
    /// The `regex` crate's own message: where in the pattern, and why (or
    /// that it compiles larger than [`MAX_PATTERN_SIZE`]).
    #[error("{0}")]
    Invalid(#[from] regex::Error),
}

impl KeyPattern {
    /// The pattern of a `PURGE` with `Purge-Regex`, on the authority of
    /// its `Host` (or absolute-form target), spelled as keys spell it:
    /// `None` without the field. One field only: two would be two purges,
    /// and joined with commas (as a proxy on the way may join a field's
    /// lines) they would be a pattern no one wrote.
    pub fn of_purge(request: &RequestHead) -> Option<Result<KeyPattern, PatternError>> {
        let mut values = request.headers.get_all(PURGE_REGEX);
        let value = values.next()?;
        if values.next().is_some() {
            return Some(Err(PatternError::Several));
        }
        Some(Self::new(&key_authority(request), value.trim_ascii()))
    }

    /// `pattern` on `authority` (as keys spell it).
    pub fn new(authority: &str, pattern: &[u8]) -> Result<KeyPattern, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        let pattern = std::str::from_utf8(pattern).map_err(|_| PatternError::NotUtf8)?;
        let regex = RegexBuilder::new(pattern)
            .size_limit(MAX_PATTERN_SIZE)
            .build()?;
        Ok(KeyPattern {
            authority: authority.into(),
            regex,
        })
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    /// Whether the entries under `primary` (a primary key, either scheme)
    /// are the pattern's: of its authority, with a path and query the
    /// regex finds a match in (anywhere, unless anchored).
    pub fn matches(&self, primary: &str) -> bool {
        let (authority, path) = split_key(primary);
        authority == &*self.authority && self.regex.is_match(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_request, RequestLimits};

    fn request(raw: &str) -> RequestHead {
        parse_request(raw.as_bytes(), &RequestLimits::default()).unwrap()
    }

    fn pattern(raw: &str) -> Result<KeyPattern, PatternError> {
        KeyPattern::of_purge(&request(raw)).expect("a Purge-Regex field")
    }

    #[test]
    fn a_pattern_matches_the_path_and_query_of_its_host_under_both_schemes() {
        let jpg =
            pattern("PURGE / HTTP/1.1\r\nHost: Shop.Example:80\r\nPurge-Regex: \\.jpg$\r\n\r\n")
                .unwrap();
        assert_eq!(jpg.authority(), "shop.example");
        assert_eq!(jpg.as_str(), "\\.jpg$");
        for key in [
            "shop.example/a.jpg",
            "https://shop.example/a.jpg",
            "shop.example/products/1/images/b.jpg",
        ] {
            assert!(jpg.matches(key), "{key}");
        }
        for key in [
            "shop.example/a.jpg?size=2",
            "shop.example/a.png",
            // Another host, another port, a host that only starts alike.
            "other.example/a.jpg",
            "https://other.example/a.jpg",
            "shop.example:8080/a.jpg",
            "shop.example.evil/a.jpg",
        ] {
            assert!(!jpg.matches(key), "{key}");
        }

        // Anchored at the path, not at the host or the scheme.
        let images = KeyPattern::new("shop.example", b"^/products/[0-9]+/images/").unwrap();
        assert!(images.matches("shop.example/products/1/images/a.jpg"));
        assert!(images.matches("https://shop.example/products/42/images/"));
        assert!(!images.matches("shop.example/products/1"));
        assert!(!images.matches("shop.example/products/x/images/a.jpg"));
        assert!(!images.matches("shop.example/old/products/1/images/a.jpg"));
        let host = KeyPattern::new("shop.example", b"^shop").unwrap();
        assert!(!host.matches("shop.example/shop"));
        let scheme = KeyPattern::new("shop.example", b"^https").unwrap();
        assert!(!scheme.matches("https://shop.example/a"));
        // The query is matched too.
        let query = KeyPattern::new("shop.example", b"[?&]id=3(&|$)").unwrap();
        assert!(query.matches("shop.example/p?x=1&id=3"));
        assert!(!query.matches("shop.example/p?id=33"));

        // An absolute-form target names the host.
        let absolute =
            pattern("PURGE http://Shop.Example/ HTTP/1.1\r\nHost: x\r\nPurge-Regex: a\r\n\r\n");
        assert_eq!(absolute.unwrap().authority(), "shop.example");
    }

    #[test]
    fn a_pattern_sees_the_path_as_the_key_spells_it() {
        // Keys decode escaped unreserved characters and upper-case the
        // rest: `%70` is `p` there, `%2f` is `%2F`, never `/`.
        let sent = request("GET /%70roducts/a%2fb HTTP/1.1\r\nHost: h\r\n\r\n");
        let key = super::super::primary_key(&sent, "http", &Default::default());
        let spelled = KeyPattern::new("h", b"^/products/a%2Fb$").unwrap();
        assert!(spelled.matches(&key), "{key}");
        for other in [&b"^/%70roducts/"[..], b"%2f", b"^/products/a/b$"] {
            let p = KeyPattern::new("h", other).unwrap();
            assert!(!p.matches(&key), "{}", p.as_str());
        }
    }

    #[test]
    fn a_pattern_is_bounded_in_length_and_compiled_size() {
        let at_most = "a".repeat(MAX_PATTERN_LEN);
        assert!(KeyPattern::new("h", at_most.as_bytes()).is_ok());
        let longer = "a".repeat(MAX_PATTERN_LEN + 1);
        assert!(matches!(
            KeyPattern::new("h", longer.as_bytes()),
            Err(PatternError::TooLong)
        ));
        // Short, but huge once compiled.
        let huge = KeyPattern::new("h", br"(\w{100}){100}");
        assert!(
            matches!(
                huge,
                Err(PatternError::Invalid(regex::Error::CompiledTooBig(_)))
            ),
            "{huge:?}"
        );
        let unclosed = KeyPattern::new("h", b"(").unwrap_err();
        assert!(
            unclosed.to_string().contains("unclosed group"),
            "{unclosed}"
        );
        assert!(matches!(
            KeyPattern::new("h", b""),
            Err(PatternError::Empty)
        ));
        assert!(matches!(
            KeyPattern::new("h", b"\xff"),
            Err(PatternError::NotUtf8)
        ));
    }

    #[test]
    fn a_purge_takes_one_field_or_none() {
        let none = request("PURGE / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(KeyPattern::of_purge(&none).is_none());
        let two =
            pattern("PURGE / HTTP/1.1\r\nHost: h\r\nPurge-Regex: a\r\nPurge-Regex: b\r\n\r\n");
        assert!(matches!(two, Err(PatternError::Several)));
        let blank = pattern("PURGE / HTTP/1.1\r\nHost: h\r\nPurge-Regex:  \r\n\r\n");
        assert!(matches!(blank, Err(PatternError::Empty)));
    }

    #[test]
    fn the_same_pattern_on_the_same_host_is_one_group() {
        let a = KeyPattern::new("h", b"\\.jpg$").unwrap();
        assert_eq!(a, KeyPattern::new("h", b"\\.jpg$").unwrap());
        assert_ne!(a, KeyPattern::new("g", b"\\.jpg$").unwrap());
        assert_ne!(a, KeyPattern::new("h", b"\\.png$").unwrap());
    }
}
