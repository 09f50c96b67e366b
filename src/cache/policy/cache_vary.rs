//! What every stored response is keyed on besides its URL and its own
//! `Vary` (the `cache_vary` setting): nginx's `proxy_cache_key` with a
//! `$cookie_lang` or `$http_x_device` added, Varnish's `hash_data` of a
//! cookie. A site that picks a page's language or currency by a cookie
//! cannot say so in `Vary` (`Vary: Cookie` keys on every cookie, a
//! visitor's session and analytics ones too, which makes each visitor's
//! pages their own); named here, each value of that one cookie has its
//! own copy of the page.
//!
//! The names are added to the response's `Vary` names, so the variants
//! they make are stored, looked up, purged and snapshotted as `Vary`'s
//! are: a cookie as `cookie:<name>` (no field name holds a `:`), a
//! field as its name.

use super::key::COOKIE_VARIANT;
use crate::http::forward::FORWARDING_FIELDS;
use crate::upstream::hash_on::HashOn;
use std::sync::Arc;

/// The most names: each one is looked up in every cacheable request.
const MOST: usize = 8;

/// The request fields and cookies every stored response varies on, as
/// variant keys spell them: `cookie:<name>` (case kept, as cookie names
/// are compared) and lower-cased field names, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheVary {
    names: Arc<[String]>,
}

impl CacheVary {
    /// Comma separated `cookie:<name>` and `header:<Name>`; empty = none.
    pub fn parse(v: &str) -> Result<CacheVary, String> {
        let mut names = Vec::new();
        for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let name = match HashOn::parse(item)? {
                HashOn::Cookie(name) => format!("{COOKIE_VARIANT}{name}"),
                HashOn::Header(name) => header_name(&name)?,
                HashOn::Query(_) => {
                    return Err(format!(
                        "`{item}`: the query is in the key already (`cache_key_ignore_params` \
                         leaves parameters out of it); `cookie:<name>` or `header:<Name>`"
                    ))
                }
            };
            if names.contains(&name) {
                return Err(format!("`{item}` is listed twice"));
            }
            names.push(name);
        }
        if names.len() > MOST {
            return Err(format!("{} names: at most {MOST}", names.len()));
        }
        names.sort();
        Ok(CacheVary {
            names: names.into(),
        })
    }

    /// The names, as variant keys spell them.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The cookies named (`cookie:<name>`), without their prefix.
    pub fn cookies(&self) -> impl Iterator<Item = &str> {
        (self.names.iter()).filter_map(|n| n.strip_prefix(COOKIE_VARIANT))
    }

    /// The fields named (`header:<Name>`), lower-cased.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        (self.names.iter())
            .filter(|n| !n.starts_with(COOKIE_VARIANT))
            .map(String::as_str)
    }

    /// Whether a stored response was keyed on every name (read from its
    /// key: see `Entry::vary_names`). One stored before the setting named
    /// a cookie holds one copy for every value of it, and is not served
    /// (a miss replaces it), as a changed `proxy_cache_key` leaves nginx's
    /// old entries behind.
    pub fn keyed(&self, stored: impl Iterator<Item = impl AsRef<str>> + Clone) -> bool {
        (self.names.iter()).all(|name| stored.clone().any(|s| s.as_ref() == name))
    }
}

/// A `header:<Name>` as a variant key spells it, unless the field is
/// one no key can tell apart: `Host` (in the key already), one that
/// describes a connection (dropped before the backend sees it), or one
/// the proxy writes itself (`X-Forwarded-For`: a response keyed on the
/// client's is never stored, see `varies_past_any_key`).
fn header_name(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    if lower == "host" {
        return Err("`header:Host`: the host is in the key already".into());
    }
    if crate::http::forward::HOP_BY_HOP.contains(&lower.as_str()) {
        return Err(format!(
            "`header:{name}` describes the client's connection, never sent on: no key holds it"
        ));
    }
    if FORWARDING_FIELDS.contains(&lower.as_str()) {
        return Err(format!(
            "`header:{name}` is a field the proxy writes itself, whatever the client sent: \
             no key holds what the backend was sent"
        ));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_keep_their_case_and_fields_are_lower_cased_and_sorted() {
        let vary = CacheVary::parse("header:X-Device, cookie:Lang ,cookie:currency").unwrap();
        assert_eq!(vary.names(), ["cookie:Lang", "cookie:currency", "x-device"]);
        assert_eq!(vary.cookies().collect::<Vec<_>>(), ["Lang", "currency"]);
        assert_eq!(vary.fields().collect::<Vec<_>>(), ["x-device"]);
        assert!(CacheVary::parse("").unwrap().is_empty());
        assert!(CacheVary::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn what_no_key_can_tell_apart_is_refused_with_the_reason() {
        let refused = |v: &str| CacheVary::parse(v).unwrap_err();
        assert!(refused("query:lang").contains("in the key already"));
        assert!(refused("header:Host").contains("in the key already"));
        assert!(refused("header:Connection").contains("connection"));
        assert!(refused("header:X-Forwarded-For").contains("writes itself"));
        assert!(refused("cookie:lang, cookie:lang").contains("twice"));
        assert!(refused("header:x-a, header:X-A").contains("twice"));
        assert!(refused("lang").contains("`header:<Name>`"));
        assert!(refused("cookie:a b").contains("not a cookie name"));
        let nine: Vec<String> = (0..9).map(|i| format!("cookie:c{i}")).collect();
        assert!(refused(&nine.join(",")).contains("at most 8"));
        assert!(CacheVary::parse(&nine[..8].join(",")).is_ok());
    }

    #[test]
    fn an_entry_is_keyed_when_its_names_hold_every_one_listed() {
        let vary = CacheVary::parse("cookie:lang, header:X-Device").unwrap();
        let keyed = |names: &[&str]| vary.keyed(names.iter());
        assert!(keyed(&["accept-encoding", "cookie:lang", "x-device"]));
        assert!(keyed(&["cookie:lang", "x-device"]));
        assert!(!keyed(&["cookie:lang"]));
        assert!(!keyed(&["accept-encoding"]));
        assert!(!keyed(&[]));
        let none = CacheVary::default();
        assert!(none.keyed(["accept-encoding"].iter()));
        assert!(none.keyed(std::iter::empty::<&str>()));
    }
}
