//! Conditional requests: a client's own, answered from a stored response
//! (RFC 9110 §13), and this cache's to the origin, whose 304 refreshes
//! the stored head (RFC 9111 §4.3).

use crate::http::body::content_length;
use crate::http::date::parse_http_date;
use crate::http::forward::strip_hop_by_hop;
use crate::http::{Headers, ResponseHead};

/// Whether a client's own conditional GET/HEAD is satisfied by a stored
/// response, so it gets 304 (RFC 9110 §13.1.2-3, §13.2.2: If-None-Match
/// wins over If-Modified-Since).
pub fn not_modified(request: &Headers, stored: &ResponseHead) -> bool {
    // RFC 9110 §13.2.1: preconditions are ignored when the response would
    // not be 2xx (a stored 404 or 301 is sent as it is).
    if !(200..300).contains(&stored.status) {
        return false;
    }
    if request.contains("if-none-match") {
        // `*` holds of any current representation, with an entity-tag or
        // without (RFC 9110 §13.1.2).
        let etag = stored.headers.get_str("etag");
        return (request.quoted_list("if-none-match"))
            .any(|tag| tag == "*" || etag.is_some_and(|etag| weak_eq(tag, etag)));
    }
    // RFC 9110 §13.1.3: a field with more than one member is ignored.
    if request.get_all("if-modified-since").nth(1).is_some() {
        return false;
    }
    let Some(since) = request
        .get_str("if-modified-since")
        .and_then(parse_http_date)
    else {
        return false;
    };
    // RFC 9111 §4.3.2: without a Last-Modified, the stored Date (which
    // every stored response has: one is added to those that come without)
    // says when the copy was current.
    let modified = ["last-modified", "date"]
        .iter()
        .find_map(|name| stored.headers.get_str(name))
        .and_then(parse_http_date);
    modified.is_some_and(|modified| modified <= since)
}

/// Weak comparison of entity tags: equal once any `W/` is dropped.
fn weak_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

/// Request fields that make the origin answer 304 if our copy is current.
pub fn validators(stored: &ResponseHead) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    if let Some(etag) = stored.headers.get("etag") {
        out.push(("If-None-Match", etag.to_vec()));
    }
    if let Some(lm) = stored.headers.get("last-modified") {
        out.push(("If-Modified-Since", lm.to_vec()));
    }
    out
}

/// §4.3.4: whether a 304 is about the stored response. Its validator, if
/// it has one, must be the stored one: a strong entity-tag exactly, a weak
/// one by weak comparison, a `Last-Modified` the same date. A 304 naming
/// another representation must not refresh this one. One naming none
/// refreshes it, as nginx has it (RFC 9111 would have it refresh only a
/// stored response without a validator): it answered the cache's own
/// condition, and many servers send their 304s bare.
pub fn same_validator(stored: &ResponseHead, not_modified: &ResponseHead) -> bool {
    if let Some(tag) = not_modified.headers.get_str("etag") {
        let tag = tag.trim();
        let ours = stored.headers.get_str("etag").map(str::trim);
        return match ours {
            Some(ours) if tag.starts_with("W/") => weak_eq(tag, ours),
            Some(ours) => tag == ours,
            None => false,
        };
    }
    match (
        not_modified.headers.get_str("last-modified"),
        stored.headers.get_str("last-modified"),
    ) {
        (Some(theirs), Some(ours)) => parse_http_date(theirs) == parse_http_date(ours),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// RFC 9111 §4.3.5: whether a `200` to a `HEAD` describes the stored `GET`
/// response, which then takes its fields (otherwise the stored response
/// is outdated): the validators it carries (`ETag`, `Last-Modified`) are
/// the stored ones, and so is the body's length when it gives one. One
/// that carries neither validator matches on them, as the RFC has it ("matching
/// values for any received validator fields"). Compared exactly: a HEAD
/// answered as a GET without its body carries the very fields the GET
/// would.
pub fn head_describes(stored: &ResponseHead, body_len: usize, head: &ResponseHead) -> bool {
    let same_etag = head
        .headers
        .get_str("etag")
        .is_none_or(|tag| stored.headers.get_str("etag") == Some(tag));
    let same_date = head.headers.get_str("last-modified").is_none_or(|theirs| {
        let ours = stored
            .headers
            .get_str("last-modified")
            .and_then(parse_http_date);
        ours.is_some() && ours == parse_http_date(theirs)
    });
    let same_length = match content_length(&head.headers) {
        Ok(None) => true,
        Ok(Some(length)) => length == body_len as u64,
        Err(_) => false,
    };
    stored.status == 200 && same_etag && same_date && same_length
}

/// Fields that describe the stored body's bytes: a 304 leaves them as
/// they are (RFC 9111 §3.2 lets a cache keep what assures the integrity of
/// what it stored). A 304 that says `Content-Encoding: gzip` of a body
/// stored uncompressed would have every later client get bytes its coding
/// does not match; a weakly matching `ETag` names another rendering.
const DESCRIBE_THE_BODY: [&str; 7] = [
    "content-encoding",
    "content-range",
    "content-md5",
    "content-digest",
    "repr-digest",
    "digest",
    "etag",
];

/// §4.3.4: a 304 refreshes the stored head: its fields replace the stored
/// ones of the same name. Not merged: framing and hop-by-hop fields
/// (§3.1), the fields that describe the stored body, and `Set-Cookie`,
/// which a 304 carries for the client that caused it (a session refreshed
/// on revalidation), not for everyone the entry is served to afterwards.
pub fn refresh_from_304(stored: &mut ResponseHead, not_modified: &ResponseHead) {
    let mut fresh = not_modified.headers.clone();
    strip_hop_by_hop(&mut fresh, false);
    fresh.remove("set-cookie");
    // A file to send in place of the body (see `storable`): not this
    // entry's.
    fresh.remove("x-accel-redirect");
    for name in DESCRIBE_THE_BODY {
        fresh.remove(name);
    }
    for (name, _) in fresh.iter() {
        stored.headers.remove(name);
    }
    for (name, value) in fresh.iter() {
        stored.headers.push(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::test_support::response;

    #[test]
    fn conditionals() {
        let stored = response(
            200,
            &[
                ("ETag", "W/\"v1\""),
                ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
        );
        let h = |n: &str, v: &str| {
            let mut h = Headers::new();
            h.push(n, v);
            h
        };
        assert!(not_modified(&h("If-None-Match", "\"v0\", \"v1\""), &stored));
        assert!(!not_modified(&h("If-None-Match", "\"v2\""), &stored));
        assert!(not_modified(&h("If-None-Match", "*"), &stored));
        // Without Last-Modified, the stored Date stands for it.
        let dated = response(200, &[("Date", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        for stored in [&stored, &dated] {
            let since = |date: &str| not_modified(&h("If-Modified-Since", date), stored);
            assert!(since("Sun, 06 Nov 1994 08:49:37 GMT"));
            assert!(!since("Sat, 05 Nov 1994 08:49:37 GMT"));
        }
    }

    #[test]
    fn validators_ask_for_a_304_with_each_stored_validator_as_stored() {
        const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
        let both = response(200, &[("ETag", "W/\"v1\""), ("Last-Modified", LM)]);
        assert_eq!(
            validators(&both),
            [
                ("If-None-Match", b"W/\"v1\"".to_vec()),
                ("If-Modified-Since", LM.as_bytes().to_vec())
            ]
        );
        let dated = response(200, &[("Last-Modified", LM)]);
        assert_eq!(
            validators(&dated),
            [("If-Modified-Since", LM.as_bytes().to_vec())]
        );
        // A Date is no validator: the origin could not tell our copy by it.
        let bare = response(200, &[("Date", LM)]);
        assert!(validators(&bare).is_empty());
    }

    #[test]
    fn a_304_naming_another_representation_refreshes_nothing() {
        const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
        let strong = response(200, &[("ETag", "\"v1\""), ("Last-Modified", LM)]);
        let answer = |fields: &[(&str, &str)]| response(304, fields);
        assert!(same_validator(&strong, &answer(&[("ETag", "\"v1\"")])));
        assert!(same_validator(&strong, &answer(&[("ETag", " \"v1\" ")])));
        assert!(!same_validator(&strong, &answer(&[("ETag", "\"v2\"")])));
        // A weak tag matches by weak comparison; a strong one only a
        // strong tag, byte for byte (RFC 9110 §8.8.3.2).
        assert!(same_validator(&strong, &answer(&[("ETag", "W/\"v1\"")])));
        let weak = response(200, &[("ETag", "W/\"v1\"")]);
        assert!(!same_validator(&weak, &answer(&[("ETag", "\"v1\"")])));
        assert!(same_validator(&weak, &answer(&[("ETag", "W/\"v1\"")])));
        // An entity-tag beside a Last-Modified decides alone.
        let tagged_other_date = [("ETag", "\"v1\""), ("Last-Modified", "x")];
        assert!(same_validator(&strong, &answer(&tagged_other_date)));
        // A tag where none was stored names another representation.
        let untagged = response(200, &[("Last-Modified", LM)]);
        assert!(!same_validator(&untagged, &answer(&[("ETag", "\"v1\"")])));
        // Last-Modified: the same date, however it is written.
        let obsolete_form = "Sunday, 06-Nov-94 08:49:37 GMT";
        assert!(same_validator(&untagged, &answer(&[("Last-Modified", LM)])));
        let same_date = answer(&[("Last-Modified", obsolete_form)]);
        assert!(same_validator(&untagged, &same_date));
        let later = answer(&[("Last-Modified", "Mon, 07 Nov 1994 08:49:37 GMT")]);
        assert!(!same_validator(&untagged, &later));
        let bare = response(200, &[]);
        assert!(!same_validator(&bare, &answer(&[("Last-Modified", LM)])));
        // Bare: it answered the cache's own condition.
        assert!(same_validator(&strong, &answer(&[])));
        assert!(same_validator(&bare, &answer(&[])));
    }

    #[test]
    fn a_304_refreshes_fields() {
        let mut stored = response(
            200,
            &[
                ("ETag", "\"a\""),
                ("Cache-Control", "max-age=1"),
                ("X-Keep", "1"),
            ],
        );
        let nm = response(
            304,
            &[
                ("Cache-Control", "max-age=60"),
                ("Content-Length", "0"),
                ("Content-Type", "text/plain"),
                ("Content-Encoding", "gzip"),
                ("ETag", "W/\"a\""),
            ],
        );
        refresh_from_304(&mut stored, &nm);
        assert_eq!(stored.headers.get_str("cache-control"), Some("max-age=60"));
        assert_eq!(stored.headers.get_str("content-type"), Some("text/plain"));
        assert_eq!(stored.headers.get_str("x-keep"), Some("1"));
        assert!(!stored.headers.contains("content-length"));
        // What describes the stored bytes stays as it was stored.
        assert!(!stored.headers.contains("content-encoding"));
        assert_eq!(stored.headers.get_str("etag"), Some("\"a\""));
    }

    #[test]
    fn a_head_describes_the_stored_get_with_its_validators_and_length() {
        const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
        let stored = response(200, &[("ETag", "\"v1\""), ("Last-Modified", LM)]);
        let of = |fields: &[(&str, &str)]| head_describes(&stored, 5, &response(200, fields));
        assert!(of(&[("ETag", "\"v1\"")]));
        assert!(of(&[("Last-Modified", LM), ("Content-Length", "5")]));
        assert!(of(&[("ETag", " \"v1\" "), ("Last-Modified", LM)]));
        // No validator: nothing to tell another body by but its length.
        assert!(of(&[("X-Other", "1")]));
        assert!(of(&[("Content-Length", "5")]));
        assert!(!of(&[("Content-Length", "6")]));
        assert!(!of(&[("ETag", "\"v2\"")]));
        assert!(!of(&[("ETag", "W/\"v1\"")]));
        let other_date = "Mon, 07 Nov 1994 08:49:37 GMT";
        assert!(!of(&[("ETag", "\"v1\""), ("Last-Modified", other_date)]));
        assert!(!of(&[("ETag", "\"v1\""), ("Content-Length", "6")]));
        assert!(!of(&[("ETag", "\"v1\""), ("Content-Length", "+5")]));
        // A stored 404, or one without the validator the HEAD names.
        let etag = response(200, &[("ETag", "\"v1\"")]);
        let gone = response(404, &[("ETag", "\"v1\"")]);
        assert!(!head_describes(&gone, 5, &etag));
        let bare = response(200, &[]);
        assert!(!head_describes(&bare, 5, &etag));
        assert!(!head_describes(
            &bare,
            5,
            &response(200, &[("Last-Modified", LM)])
        ));
    }
}
