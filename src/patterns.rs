//! Lists of names as several settings write them: comma separated, each
//! name exact or, with a trailing `*`, a prefix (`utm_*`,
//! `wordpress_logged_in_*`, `text/*`); a lone `*` is the empty prefix,
//! every name. `cache_bypass_cookies` lists cookies,
//! `cache_key_ignore_params` query parameters, `gzip_types` media types:
//! what a name may hold, and how it is spelled to be compared, is theirs;
//! the list, its checks and its matching are here. A list of prefixes
//! alone (the paths of `redirect_to_https_except` and `log_skip_paths`,
//! [`PathPrefixes`]) has no `*` to write: each entry is one.

use crate::http::head::check_target_bytes;

/// A parsed list; empty when the setting is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamePatterns {
    patterns: Box<[Pattern]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pattern {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
}

impl Pattern {
    fn matches(&self, name: &[u8]) -> bool {
        match self {
            Pattern::Exact(exact) => name == &**exact,
            Pattern::Prefix(prefix) => name.starts_with(prefix),
        }
    }
}

/// How a setting speaks of what it lists, for its error messages.
pub(crate) struct Listing {
    /// `cookie names`.
    pub what: &'static str,
    /// A list as it might be written: `wordpress_logged_in_*, wp-postpass_*`.
    pub example: &'static str,
    /// A prefix as it might be written: `wp-postpass_*`.
    pub prefix_example: &'static str,
    /// What a lone `*` stands for: `any cookie`.
    pub every: &'static str,
    /// The most names the list may hold: each is compared with every
    /// name of every request the setting looks at.
    pub most: usize,
}

impl NamePatterns {
    /// `v` as `listing` describes it; `spell` checks one name (its `*`
    /// taken off) and gives it as names are compared, or says what is
    /// wrong with it. Empty (or blank) is the empty list.
    pub(crate) fn parse(
        v: &str,
        listing: &Listing,
        spell: impl Fn(&str) -> Result<Vec<u8>, String>,
    ) -> Result<NamePatterns, String> {
        Self::parse_each(v, listing, |written| {
            let (stem, prefix) = match written.strip_suffix('*') {
                Some(stem) => (stem, true),
                None => (written, false),
            };
            if stem.contains('*') {
                return Err(format!(
                    "`{written}`: `*` may only end a name (`{}`), or stand alone for {}",
                    listing.prefix_example, listing.every
                ));
            }
            let spelled = spell(stem)?.into_boxed_slice();
            Ok(match prefix {
                true => Pattern::Prefix(spelled),
                false => Pattern::Exact(spelled),
            })
        })
    }

    /// `v` as `listing` describes it, every entry a prefix as written (a
    /// `*` in it is one more character, for `spell` to allow or refuse).
    pub(crate) fn parse_prefixes(
        v: &str,
        listing: &Listing,
        spell: impl Fn(&str) -> Result<Vec<u8>, String>,
    ) -> Result<NamePatterns, String> {
        Self::parse_each(v, listing, |written| {
            spell(written).map(|spelled| Pattern::Prefix(spelled.into_boxed_slice()))
        })
    }

    /// The list's checks, with `pattern` making each entry (trimmed, not
    /// empty) into its pattern.
    fn parse_each(
        v: &str,
        listing: &Listing,
        pattern: impl Fn(&str) -> Result<Pattern, String>,
    ) -> Result<NamePatterns, String> {
        if v.trim().is_empty() {
            return Ok(NamePatterns::default());
        }
        let mut patterns: Vec<Pattern> = Vec::new();
        for written in v.split(',').map(str::trim) {
            if written.is_empty() {
                return Err(format!(
                    "`{v}` has an empty entry (a stray comma?); list {}, e.g. `{}`",
                    listing.what, listing.example
                ));
            }
            let pattern = pattern(written)?;
            if patterns.contains(&pattern) {
                return Err(format!("`{written}` is listed twice"));
            }
            patterns.push(pattern);
        }
        if patterns.len() > listing.most {
            return Err(format!(
                "{} {} listed; at most {}",
                patterns.len(),
                listing.what,
                listing.most
            ));
        }
        Ok(NamePatterns {
            patterns: patterns.into(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `name`, spelled as the list's names are, is listed: whole,
    /// or under a listed prefix.
    pub fn matches(&self, name: &[u8]) -> bool {
        self.patterns.iter().any(|p| p.matches(name))
    }

    /// Whether a name that begins with `start` may match: one listed
    /// begins with it, or it begins with a prefix listed.
    pub fn may_match_a_name_beginning(&self, start: &[u8]) -> bool {
        self.patterns.iter().any(|p| match p {
            Pattern::Exact(exact) => exact.starts_with(start),
            Pattern::Prefix(prefix) => prefix.starts_with(start) || start.starts_with(prefix),
        })
    }

    /// Whether `name` is listed as a name of its own, not under a prefix.
    pub fn lists_exactly(&self, name: &[u8]) -> bool {
        (self.patterns.iter()).any(|p| matches!(p, Pattern::Exact(n) if **n == *name))
    }

    #[cfg(test)]
    pub(crate) fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }
}

/// Path prefixes, as `redirect_to_https_except` (a balancer's health
/// check, an ACME http-01 challenge served over plain HTTP) and
/// `log_skip_paths` list them; empty when none is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathPrefixes {
    prefixes: NamePatterns,
}

const PATHS: Listing = Listing {
    what: "path prefixes",
    example: "/healthz, /.well-known/acme-challenge/",
    // Never shown: a list of prefixes alone has no `*` to write.
    prefix_example: "/healthz",
    every: "every path",
    // A health check and a challenge or two; each is compared with the
    // path of every plain-HTTP request.
    most: 32,
};

impl PathPrefixes {
    /// Comma separated path prefixes, each starting with `/`, of the
    /// characters a request-target may hold but `?` (a query is not part
    /// of the path they are compared with); empty = none.
    pub fn parse(v: &str) -> Result<PathPrefixes, String> {
        let prefixes = NamePatterns::parse_prefixes(v, &PATHS, |path| {
            if !path.starts_with('/') {
                return Err(format!(
                    "`{}` does not start with `/`: list the beginnings of paths as requests \
                     send them, e.g. `{}`",
                    path.escape_debug(),
                    PATHS.example
                ));
            }
            if check_target_bytes(path.as_bytes()).is_err() || path.contains('?') {
                return Err(format!(
                    "`{}` is not the start of a path (printable ASCII; no space, `?` or `#`)",
                    path.escape_debug()
                ));
            }
            Ok(path.as_bytes().to_vec())
        })?;
        Ok(PathPrefixes { prefixes })
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// Whether `path` (the request-target's, as sent, without its query)
    /// begins with a listed prefix.
    ///
    /// A path a backend may read as another (a `.` or `..` segment
    /// however spelled, a `\`: see [`crate::routes::is_ambiguous`])
    /// begins with none: `/healthz/../admin` is `/admin` to the backend,
    /// and must be logged, or redirected, as `/admin` is.
    pub fn matches(&self, path: &str) -> bool {
        self.prefixes.matches(path.as_bytes()) && !crate::routes::is_ambiguous(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_a_backend_reads_otherwise_is_under_no_prefix() {
        let skip = PathPrefixes::parse("/healthz").unwrap();
        assert!(skip.matches("/healthz/live"));
        for path in [
            "/healthz/../admin",
            "/healthz/%252e%252e/admin",
            "/healthz/%25%32%65%25%32%65/admin",
            "/healthz/%%32e%%32e/admin",
        ] {
            assert!(!skip.matches(path), "{path}");
        }
    }

    const LETTERS: Listing = Listing {
        what: "names",
        example: "ab, c*",
        prefix_example: "c*",
        every: "every name",
        most: 3,
    };

    fn parse(v: &str) -> Result<NamePatterns, String> {
        NamePatterns::parse(v, &LETTERS, |name| {
            match name.bytes().all(|b| b.is_ascii_lowercase()) {
                true => Ok(name.as_bytes().to_vec()),
                false => Err(format!("`{name}` is not lower-case letters")),
            }
        })
    }

    #[test]
    fn a_list_of_exact_names_and_prefixes() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse(" \t").unwrap().is_empty());
        let list = parse("ab , c*,*").unwrap();
        assert_eq!(
            list.patterns(),
            [
                Pattern::Exact((*b"ab").into()),
                Pattern::Prefix((*b"c").into()),
                Pattern::Prefix([].into()),
            ]
        );
        let list = parse("ab, c*").unwrap();
        for (name, listed) in [
            ("ab", true),
            ("abc", false),
            ("a", false),
            ("c", true),
            ("cd", true),
            ("", false),
        ] {
            assert_eq!(list.matches(name.as_bytes()), listed, "{name:?}");
        }
        assert!(parse("*").unwrap().matches(b""));
        assert!(list.lists_exactly(b"ab"));
        assert!(!list.lists_exactly(b"c") && !list.lists_exactly(b"cd"));
        assert!(!NamePatterns::default().matches(b"ab"));
        // One is a prefix, the other a name: not the same twice.
        assert!(parse("c, c*").is_ok());
    }

    #[test]
    fn a_list_of_prefixes_has_no_star_to_write() {
        let spell = |name: &str| Ok(name.as_bytes().to_vec());
        let list = NamePatterns::parse_prefixes("ab, c*", &LETTERS, spell).unwrap();
        assert_eq!(
            list.patterns(),
            [
                Pattern::Prefix((*b"ab").into()),
                Pattern::Prefix((*b"c*").into()),
            ]
        );
        assert!(list.matches(b"abc") && list.matches(b"ab") && list.matches(b"c*d"));
        assert!(!list.matches(b"a") && !list.matches(b"cd"));
        for (bad, why) in [
            ("a,,b", "empty entry"),
            ("a, a", "`a` is listed twice"),
            ("a, b, c, d", "4 names listed; at most 3"),
        ] {
            let e = NamePatterns::parse_prefixes(bad, &LETTERS, spell).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(NamePatterns::parse_prefixes(" ", &LETTERS, spell)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_bad_list_says_what_is_wrong() {
        for (bad, why) in [
            (
                "a,",
                "has an empty entry (a stray comma?); list names, e.g. `ab, c*`",
            ),
            ("a,,b", "empty entry"),
            (",", "empty entry"),
            (
                "a*b",
                "`*` may only end a name (`c*`), or stand alone for every name",
            ),
            ("a**", "may only end"),
            ("*a", "may only end"),
            ("aB", "`aB` is not lower-case letters"),
            ("a, a", "`a` is listed twice"),
            ("a*, a*", "listed twice"),
            ("a, b, c, d", "4 names listed; at most 3"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
