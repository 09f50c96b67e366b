//! `auth_jwt_require`: what a valid token's claims must say for its
//! request to go on (a scope, a role, a group), as nginx Plus's
//! `auth_jwt_require` with a `map` of `$jwt_claim_*` and HAProxy's
//! `http-request deny unless { jwt_payload_query(...) }` ask. A token that
//! does not say it is refused 403 with `error="insufficient_scope"`
//! (RFC 6750 §3.1): it is a valid token, for a bearer not allowed here.

use super::jwt::claim;
use crate::json_value::Value;

/// The most requirements one scope lists.
const MAX_REQUIRED: usize = 32;

/// Each requirement, all of which a token's claims must meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Required(Vec<Requirement>);

/// `<claim>=<value>[|<value>...]`: the claim says one of the values.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    /// As the token writes it (`scope`, `https://example.com/roles`), or
    /// a path into objects (`realm_access.roles`, Keycloak's).
    claim: Box<str>,
    any_of: Vec<Box<str>>,
}

impl Required {
    /// `scope=orders:read, realm_access.roles=admin|auditor`: comma
    /// separated requirements, each a claim's name, `=`, and the values
    /// it may say, separated by `|`.
    pub fn parse(v: &str) -> Result<Required, String> {
        let mut required = Vec::new();
        for item in v.split(',').map(str::trim) {
            let Some((claim, values)) = item.split_once('=') else {
                return Err(format!(
                    "`{}`: give a claim and the value it must have (`scope=orders:read`, \
                     `roles=admin|auditor`)",
                    item.escape_debug()
                ));
            };
            let (claim, values) = (claim.trim(), values.trim());
            let visible = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
            if !visible(claim) {
                return Err(format!(
                    "`{}`: a claim's name is visible ASCII, without spaces",
                    item.escape_debug()
                ));
            }
            let any_of: Vec<Box<str>> = values.split('|').map(|v| v.trim().into()).collect();
            if !any_of.iter().all(|v| visible(v) && !v.contains('=')) {
                return Err(format!(
                    "`{}`: each value is visible ASCII, without spaces or `=`",
                    item.escape_debug()
                ));
            }
            required.push(Requirement {
                claim: claim.into(),
                any_of,
            });
        }
        if required.len() > MAX_REQUIRED {
            return Err(format!("more than {MAX_REQUIRED} requirements"));
        }
        Ok(Required(required))
    }

    /// Whether `claims` (a verified token's) meet every requirement.
    pub fn holds(&self, claims: &Value) -> bool {
        self.0.iter().all(|r| r.holds(claims))
    }
}

impl Requirement {
    fn holds(&self, claims: &Value) -> bool {
        let Some(value) = claim(claims, &self.claim) else {
            return false;
        };
        // OAuth's `scope` (RFC 8693 §4.2) and Azure's `scp` are one string
        // of space-separated scopes.
        let last = self.claim.rsplit('.').next().unwrap_or_default();
        let words = matches!(last, "scope" | "scp");
        (self.any_of.iter()).any(|wanted| says(value, wanted, words))
    }
}

/// Whether `value` says `wanted`: a string that is it (or, with `words`,
/// holds it as a space-separated word), a number or `true`/`false` that
/// reads as it, an array with such an item.
fn says(value: &Value, wanted: &str, words: bool) -> bool {
    match value {
        Value::String(s) => s == wanted || words && s.split(' ').any(|w| w == wanted),
        Value::Number(n) => wanted.parse::<f64>().is_ok_and(|w| w == *n),
        Value::Bool(b) => wanted == if *b { "true" } else { "false" },
        Value::Array(items) => (items.iter())
            .filter(|item| !matches!(item, Value::Array(_)))
            .any(|item| says(item, wanted, false)),
        Value::Null | Value::Object(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Value {
        crate::json_value::parse(json.as_bytes()).unwrap()
    }

    fn holds(required: &str, json: &str) -> bool {
        Required::parse(required).unwrap().holds(&claims(json))
    }

    #[test]
    fn every_requirement_must_hold_each_by_one_of_its_values() {
        let token = r#"{"sub":"ann","scope":"orders:read profile","roles":["staff","auditor"],
            "realm_access":{"roles":["admin"]},"https://example.com/tier":"gold",
            "email_verified":true,"level":3,"org.id":"acme"}"#;
        for good in [
            "scope=orders:read",
            "scope=profile",
            "roles=auditor",
            "roles=admin|staff",
            "realm_access.roles=admin",
            "https://example.com/tier=gold",
            "email_verified=true",
            "level=3",
            "level=3.0",
            "org.id=acme",
            "sub=ann, scope=orders:read, roles=staff",
        ] {
            assert!(holds(good, token), "{good}");
        }
        for bad in [
            "scope=orders",
            "scope=orders:write",
            "roles=admin",
            "sub=an",
            "email_verified=false",
            "level=4",
            "realm_access=admin",
            "realm_access.roles.x=admin",
            "missing=x",
            "sub=ann, roles=admin",
        ] {
            assert!(!holds(bad, token), "{bad}");
        }
        // Only `scope` and `scp` are lists of words.
        assert!(holds("scp=read", r#"{"scp":"read write"}"#));
        assert!(!holds("name=Ann", r#"{"name":"Ann Lee"}"#));
        assert!(holds("a.scope=x", r#"{"a":{"scope":"x y"}}"#));
        assert!(!holds("groups=x", r#"{"groups":[["x"]]}"#));
        assert!(!holds("n=x", r#"{"n":null}"#));
    }

    #[test]
    fn a_requirement_is_a_claim_an_equals_sign_and_values() {
        for (bad, says) in [
            ("scope", "give a claim and the value"),
            ("=x", "a claim's name is visible ASCII"),
            ("my scope=x", "a claim's name is visible ASCII"),
            ("scope=", "each value is visible ASCII"),
            ("scope=a||b", "each value is visible ASCII"),
            ("scope=a b", "each value is visible ASCII"),
            ("scope=a=b", "without spaces or `=`"),
            ("scope=a,", "give a claim and the value"),
        ] {
            let e = Required::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let many = vec!["a=b"; 33].join(",");
        assert!(Required::parse(&many).unwrap_err().contains("more than 32"));
        assert!(Required::parse(&vec!["a=b"; 32].join(",")).is_ok());
    }
}
