//! `deny.<name> = [<status>] if <condition>`: requests refused before
//! they are rewritten or routed, whatever route they would take: HAProxy's
//! `http-request deny if <acl>` in a frontend, nginx's `if
//! ($http_user_agent ~* (bot|scan)) { return 403; }` in a `server`. A
//! route's condition takes the requests of its own host and path alone
//! (a longer path's route takes its own), so a rule for the whole site
//! would otherwise be written once per route.

use crate::routes::CLOSE_UNANSWERED;
use crate::routes::{other_reading, path_of_target, unambiguous_reading};
use crate::routes::{Ambiguous, Asked, Condition, Lookup};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Most rules one configuration holds, as `rewrite.<name>`'s.
pub const MAX_DENY_RULES: usize = 100;

/// What a rule answers without a status: nginx's and HAProxy's.
const DEFAULT_STATUS: u16 = 403;

/// One `deny.<name>` rule.
#[derive(Clone, Debug)]
pub struct DenyRule {
    name: Box<str>,
    /// 400 to 599, or 444: the connection closed without an answer.
    pub status: u16,
    condition: Condition,
    /// Requests it refused; a reload keeps it while the rule keeps its
    /// name (see [`DenyRules::keep_counts_of`]).
    refused: Arc<AtomicU64>,
}

impl DenyRule {
    /// The rule `name` of a `deny.<name>` key whose value is `value`:
    /// `[<status>] if <condition>`.
    pub fn parse(name: &str, value: &str) -> Result<DenyRule, String> {
        let (status, condition) = match value.trim().split_once(char::is_whitespace) {
            Some(("if", condition)) => (DEFAULT_STATUS, condition),
            Some((status, rest)) => match rest.trim_start().strip_prefix("if ") {
                Some(condition) => (parse_status(status)?, condition),
                None => return Err(shape(value)),
            },
            None => return Err(shape(value)),
        };
        Ok(DenyRule {
            name: name.into(),
            status,
            condition: Condition::parse(condition)?,
            refused: Arc::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn condition(&self) -> &Condition {
        &self.condition
    }

    /// How many requests the rule refused.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// `value` is not `[<status>] if <condition>`.
fn shape(value: &str) -> String {
    format!(
        "`{}`: a rule is `[<status>] if <condition>`, the condition as a route's \
         (`if header_reg User-Agent (?i)(bot|scan)`, `444 if path_sub /.env,/.git`)",
        value.escape_debug()
    )
}

/// A refusal's status: a 4xx or 5xx without a field it must carry (a
/// rule gives none), or 444.
fn parse_status(status: &str) -> Result<u16, String> {
    let refusal = |s: &u16| (400..=599).contains(s);
    let usable = |s: &u16| crate::http::head::required_field(*s).is_none();
    match status.parse::<u16>() {
        Ok(CLOSE_UNANSWERED) => Ok(CLOSE_UNANSWERED),
        Ok(s) if refusal(&s) && usable(&s) => Ok(s),
        _ => Err(format!(
            "`{}`: a rule refuses with 400 to 599 (but 401, 405, 407 and 426, which must \
             carry a field a rule cannot give), or 444 to close the connection unanswered",
            status.escape_debug()
        )),
    }
}

impl fmt::Display for DenyRule {
    /// As its key's value would write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} if {}", self.status, self.condition)
    }
}

/// The rules of one configuration, tried in the order written.
#[derive(Clone, Debug, Default)]
pub struct DenyRules {
    rules: Vec<DenyRule>,
}

impl DenyRules {
    pub fn new(rules: Vec<DenyRule>) -> DenyRules {
        DenyRules { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &DenyRule> {
        self.rules.iter()
    }

    /// The first rule `asked` meets, counted; `target` is its
    /// request-target as sent. Its path is read as routes read it, and
    /// also as a server that drops `;` parameters or decodes `%2F`
    /// would: a rule met by either refuses it, so that `/.git;x/config`
    /// is no way past `444 if path_sub /.git`. A path servers read in
    /// ways a rule cannot tell apart (dot-segments, a `\`) is
    /// [`Ambiguous`], refused by the caller.
    pub fn refusing(
        &self,
        asked: &Asked<'_>,
        target: &str,
    ) -> Result<Option<&DenyRule>, Ambiguous> {
        let path = path_of_target(target);
        let read = unambiguous_reading(path).ok_or(Ambiguous)?;
        let other = other_reading(path);
        let meets = |rule: &&DenyRule| {
            let met = |path: &str| rule.condition.met(Lookup::Request(asked), path);
            met(&read) || other.as_deref().is_some_and(met)
        };
        let rule = self.rules.iter().find(meets);
        if let Some(rule) = rule {
            rule.refused.fetch_add(1, Ordering::Relaxed);
        }
        Ok(rule)
    }

    /// Takes the counts of `running`'s rules of the same names, for a
    /// reload (a rule's `/metrics` count goes on, as a rewrite rule's).
    pub fn keep_counts_of(&mut self, running: &DenyRules) {
        for rule in &mut self.rules {
            if let Some(old) = running.rules.iter().find(|r| r.name == rule.name) {
                rule.refused = old.refused.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Headers;

    fn rules(lines: &[(&str, &str)]) -> DenyRules {
        let rules = lines
            .iter()
            .map(|(name, value)| DenyRule::parse(name, value).unwrap());
        DenyRules::new(rules.collect())
    }

    fn asked<'a>(headers: &'a Headers, target: &'a str) -> Asked<'a> {
        Asked {
            method: "GET",
            target,
            headers,
            client: "192.0.2.7".parse().unwrap(),
            listener: ([0, 0, 0, 0], 8080).into(),
            https: false,
            geoip: crate::geoip::Geo::default(),
        }
    }

    #[test]
    fn the_first_rule_a_request_meets_refuses_it_with_its_status() {
        let rules = rules(&[
            ("bots", "if header_reg User-Agent (?i)(bot|crawler)"),
            ("probes", "444 if path_sub /.env,/.git"),
            ("writes", "429 if method POST"),
        ]);
        let refusing = |agent: &str, target: &str| {
            let mut headers = Headers::new();
            headers.push("User-Agent", agent);
            let asked = asked(&headers, target);
            (rules.refusing(&asked, target)).map(|r| r.map(|r| (r.name().to_string(), r.status)))
        };
        assert_eq!(refusing("curl/8", "/shop/cart"), Ok(None));
        assert_eq!(
            refusing("GoodBot/1", "/api/x"),
            Ok(Some(("bots".into(), 403)))
        );
        assert_eq!(
            refusing("curl/8", "/app/.env?x=1"),
            Ok(Some(("probes".into(), 444)))
        );
        // As a server that drops `;x` or decodes `%2F` would read it too.
        assert_eq!(
            refusing("curl/8", "/.git;x/config"),
            Ok(Some(("probes".into(), 444)))
        );
        assert_eq!(
            refusing("curl/8", "/a%2F.git/config"),
            Ok(Some(("probes".into(), 444)))
        );
        // Escapes of letters are decoded, runs of `/` merged.
        assert_eq!(
            refusing("curl/8", "//%2e%65nv"),
            Ok(Some(("probes".into(), 444)))
        );
        assert_eq!(refusing("curl/8", "/x/../.env"), Err(Ambiguous));
        let counts: Vec<u64> = rules.iter().map(DenyRule::refused).collect();
        assert_eq!(counts, [1, 4, 0]);
    }

    #[test]
    fn a_rule_is_a_status_and_a_condition_and_a_bad_one_says_how_to_write_it() {
        let rule = DenyRule::parse("r", "  if  client 10.0.0.0/8 and not cookie staff ").unwrap();
        assert_eq!(
            rule.to_string(),
            "403 if client 10.0.0.0/8 and not cookie staff"
        );
        assert_eq!(
            DenyRule::parse("r", "429 if listen 8081").unwrap().status,
            429
        );
        for (value, says) in [
            ("", "a rule is `[<status>] if <condition>`"),
            ("403", "a rule is"),
            ("header x", "a rule is"),
            ("403 header x", "a rule is"),
            ("200 if header x", "400 to 599"),
            ("401 if header x", "but 401"),
            ("forbidden if header x", "400 to 599"),
            ("if", "a rule is"),
            ("if cookie", "a condition is"),
        ] {
            let e = DenyRule::parse("r", value).unwrap_err();
            assert!(e.contains(says), "{value:?}: {e}");
        }
    }

    #[test]
    fn a_reload_keeps_the_counts_of_the_rules_that_keep_their_names() {
        let old = rules(&[("a", "if method POST"), ("b", "if method PUT")]);
        let headers = Headers::new();
        let post = Asked {
            method: "POST",
            ..asked(&headers, "/")
        };
        assert!(old.refusing(&post, "/").unwrap().is_some());
        let mut new = rules(&[("a", "429 if method POST"), ("c", "if method PUT")]);
        new.keep_counts_of(&old);
        let counts: Vec<u64> = new.iter().map(DenyRule::refused).collect();
        assert_eq!(counts, [1, 0]);
    }
}
