//! nginx's `proxy_cache_valid`: lifetimes by status (the `cache_valid`
//! setting) for responses that say nothing of their freshness.

use super::status_ever_stored;
use std::time::Duration;

/// Lifetimes by status for responses that say nothing of their freshness
/// (nginx's `proxy_cache_valid`): the `cache_valid` setting, e.g.
/// `200 301 302 10m, 404 1m, any 30s`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheValid {
    /// `None` stands for `any`: every status not named elsewhere.
    rules: Vec<(Option<u16>, Duration)>,
}

impl CacheValid {
    pub fn parse(v: &str) -> Result<CacheValid, String> {
        let mut rules: Vec<(Option<u16>, Duration)> = Vec::new();
        for group in v.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let words: Vec<&str> = group.split_whitespace().collect();
            let [statuses @ .., lifetime] = &words[..] else {
                continue;
            };
            if statuses.is_empty() {
                return Err(format!(
                    "`{group}` names no status (e.g. `200 301 10m, 404 1m, any 30s`)"
                ));
            }
            let lifetime = crate::config::parse_duration(lifetime)?;
            for status in statuses {
                let status = match *status {
                    "any" => None,
                    code => Some(
                        code.parse::<u16>()
                            .ok()
                            .filter(|&s| (100..600).contains(&s))
                            .ok_or_else(|| format!("`{code}` is not a status (or `any`)"))?,
                    ),
                };
                if let Some(code) = status.filter(|&s| !status_ever_stored(s)) {
                    return Err(format!("a {code} is never stored"));
                }
                if rules.iter().any(|(s, _)| *s == status) {
                    let named = status.map_or("any".to_string(), |s| s.to_string());
                    return Err(format!("{named} is given a lifetime twice"));
                }
                rules.push((status, lifetime));
            }
        }
        Ok(CacheValid { rules })
    }

    /// Whether no status is given a lifetime (the setting is off).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What `ttl` cuts short, said for a warning: a lifetime longer than
    /// it is not what the operator will get.
    pub fn capped_by(&self, ttl: Duration) -> Option<String> {
        // The first of the longest, as the setting names them.
        let (status, longest) = self.rules.iter().rev().max_by_key(|(_, d)| *d)?;
        let status = status.map_or("any".to_string(), |s| s.to_string());
        (*longest > ttl).then(|| {
            format!(
                "{status} is given {}, but ttl caps every lifetime at {}",
                said(*longest),
                said(ttl)
            )
        })
    }

    /// The lifetime for a response with `status` that says nothing of its
    /// freshness, if one is set.
    pub fn lifetime(&self, status: u16) -> Option<Duration> {
        let rule = |wanted: Option<u16>| self.rules.iter().find(|(s, _)| *s == wanted);
        rule(Some(status)).or_else(|| rule(None)).map(|(_, d)| *d)
    }
}

/// A configured duration as a warning says it: whole seconds, else
/// milliseconds (`1500ms`, which whole seconds would call `1s`, as a `1s`
/// ttl).
fn said(d: Duration) -> String {
    match d.subsec_millis() {
        0 => format!("{}s", d.as_secs()),
        _ => format!("{}ms", d.as_millis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::test_support::{fresh_with, with_cache_valid};
    use crate::http::date::format_http_date;
    use std::time::SystemTime;

    #[test]
    fn cache_valid_reads_as_nginx_proxy_cache_valid() {
        let rules = CacheValid::parse("200 301 302 10m, 404 1m, any 30s").unwrap();
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(rules.lifetime(200), secs(600));
        assert_eq!(rules.lifetime(302), secs(600));
        assert_eq!(rules.lifetime(404), secs(60));
        assert_eq!(rules.lifetime(500), secs(30));
        assert_eq!(rules.capped_by(Duration::from_secs(600)), None);
        assert_eq!(
            rules.capped_by(Duration::from_secs(60)).as_deref(),
            Some("200 is given 600s, but ttl caps every lifetime at 60s")
        );
        // Said as set: not `1s` for both of `1500ms` and a `1s` ttl.
        let fine = CacheValid::parse("200 1500ms").unwrap();
        assert_eq!(
            fine.capped_by(Duration::from_secs(1)).as_deref(),
            Some("200 is given 1500ms, but ttl caps every lifetime at 1s")
        );
        let no_any = CacheValid::parse(" 200 5m ,").unwrap();
        assert_eq!(no_any.lifetime(200), secs(300));
        assert_eq!(no_any.lifetime(404), None);
        assert_eq!(CacheValid::parse("").unwrap(), CacheValid::default());
        // Off only when no status is given a lifetime.
        assert!(CacheValid::parse(" , ").unwrap().is_empty());
        assert!(!no_any.is_empty() && !rules.is_empty());
        assert!(!CacheValid::parse("any 1s").unwrap().is_empty());
        for bad in [
            "10m",
            "200",
            "abc 10m",
            "600 1m",
            "99 1m",
            "206 1m",
            "304 1m",
            "200 x",
            "200 1m, 200 2m",
            "any 1m, any 2m",
        ] {
            assert!(CacheValid::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cache_valid_gives_a_lifetime_to_responses_that_say_nothing_of_it() {
        let configured = with_cache_valid("200 302 10m, 404 1m");
        let fresh = |req: &[(&str, &str)], status, resp: &[(&str, &str)]| {
            fresh_with(&configured, req, status, resp)
        };
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(fresh(&[], 200, &[]), secs(600));
        assert_eq!(fresh(&[], 404, &[]), secs(60));
        // A status not cacheable by default, because the operator says so.
        assert_eq!(fresh(&[], 302, &[]), secs(600));
        // Not named: as before (no word on freshness, no validator).
        assert_eq!(fresh(&[], 410, &[]), None);
        // The origin's own word wins, and before the heuristic.
        assert_eq!(fresh(&[], 200, &[("Cache-Control", "max-age=5")]), secs(5));
        let lm = format_http_date(SystemTime::now() - Duration::from_secs(100_000));
        assert_eq!(fresh(&[], 200, &[("Last-Modified", &lm)]), secs(600));
        // What forbids storing still does; a request's cookie does not.
        assert_eq!(fresh(&[], 200, &[("Cache-Control", "private")]), None);
        assert_eq!(fresh(&[], 200, &[("Cache-Control", "no-store")]), None);
        assert_eq!(fresh(&[], 200, &[("Set-Cookie", "a=1")]), None);
        assert_eq!(fresh(&[("Cookie", "a=1")], 200, &[]), secs(600));
        assert_eq!(fresh(&[("Authorization", "Basic eDp5")], 200, &[]), None);
        // Capped by ttl.
        let long = with_cache_valid("200 2h");
        assert_eq!(fresh_with(&long, &[], 200, &[]), secs(3600));
    }
}
