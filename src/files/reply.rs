//! The answer to a GET or HEAD for a file found: its validators, the
//! preconditions a request sets on them, and the ranges it asks for.

use super::find::Served;
use crate::cache::policy::not_modified;
use crate::http::date::{format_http_date, parse_http_date};
use crate::http::range::{self, Ranged, Span};
use crate::http::{Headers, ResponseHead};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What to answer a GET or HEAD for a file found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// 200 with the whole file, or 206 with bytes `start..start + len`;
    /// `fields`, without `Content-Length`, are the head's.
    Body {
        status: u16,
        start: u64,
        len: u64,
        fields: Headers,
    },
    /// 206 `multipart/byteranges` with these parts of the file, in the
    /// order asked; `fields` are the head's, the file's `Content-Type`
    /// among them (each part says it; the answer, its own).
    Parts { spans: Vec<Span>, fields: Headers },
    /// 304 with these fields.
    NotModified(Headers),
    /// 412: `If-Match` or `If-Unmodified-Since` failed.
    PreconditionFailed,
    /// 416, with the file's length for `Content-Range: bytes */<len>`.
    Unsatisfiable(u64),
}

/// The answer to a GET or HEAD with `request`'s fields for `served`,
/// after RFC 9110 §13.2.2's order: `If-Match`, else
/// `If-Unmodified-Since` (412); `If-None-Match`, else
/// `If-Modified-Since` (304); then, when `ranged` (a GET: RFC 9110
/// §14.2 defines ranges for GET alone, and a HEAD's `Range` is
/// ignored, as the cache does), `Range` (206, 416) under `If-Range`.
/// `fresh` is the route's `Cache-Control` and the `max_age=` it says.
pub fn reply(
    served: &Served,
    request: &Headers,
    ranged: bool,
    fresh: Option<(&str, Duration)>,
    now: SystemTime,
) -> Reply {
    let etag = entity_tag(served);
    // RFC 9110 §8.8.2.1: never later than the answer's own Date (a file
    // stamped in the future by a clock that was wrong).
    let modified = served.modified.min(now);
    if !preconditions_hold(request, &etag, modified) {
        return Reply::PreconditionFailed;
    }
    let mut fields = Headers::with_capacity(6, 160);
    fields.push("Date", format_http_date(now));
    fields.push("Last-Modified", format_http_date(modified));
    fields.push("ETag", &etag);
    // Both, as nginx's `expires` sends them: `Expires` for the HTTP/1.0
    // caches and CDNs that read only it (HTTP/1.1 ones read `max-age`
    // first, RFC 9111 §5.3), on a 304 too (RFC 9110 §15.4.5).
    if let Some((cache_control, max_age)) = fresh {
        fields.push("Expires", format_http_date(now + max_age));
        fields.push("Cache-Control", cache_control);
    }
    // A 304 names what its 200 would vary on (RFC 9110 §15.4.5).
    if served.varies {
        fields.push("Vary", "Accept-Encoding");
    }
    let validators = ResponseHead {
        headers: fields,
        ..ResponseHead::new(200)
    };
    if not_modified(request, &validators) {
        return Reply::NotModified(validators.headers);
    }
    let mut fields = validators.headers;
    fields.push("Content-Type", served.content_type);
    if let Some(coding) = served.encoding {
        fields.push("Content-Encoding", coding);
    }
    // An empty file has no part to ask for (see `range::requested`).
    if served.len > 0 {
        fields.push("Accept-Ranges", "bytes");
    }
    let whole = |fields| Reply::Body {
        status: 200,
        start: 0,
        len: served.len,
        fields,
    };
    let ranges = match ranged {
        true => range::requested(request, &fields, served.len),
        false => Ranged::Whole,
    };
    match ranges {
        Ranged::Whole => whole(fields),
        Ranged::Parts(spans) => Reply::Parts { spans, fields },
        Ranged::Part { start, end } => {
            fields.push(
                "Content-Range",
                format!("bytes {start}-{end}/{}", served.len),
            );
            Reply::Body {
                status: 206,
                start,
                len: end - start + 1,
                fields,
            }
        }
        Ranged::Unsatisfiable => Reply::Unsatisfiable(served.len),
    }
}

/// The file's strong entity-tag, as nginx makes it: its modification
/// time and its length, in hex.
fn entity_tag(served: &Served) -> String {
    let modified = (served.modified.duration_since(UNIX_EPOCH)).map_or(0, |d| d.as_secs());
    format!("\"{modified:x}-{:x}\"", served.len)
}

/// RFC 9110 §13.1.1-1.4: `If-Match` by strong comparison (`*` matches
/// any file), else `If-Unmodified-Since`, ignored when it is no date.
fn preconditions_hold(request: &Headers, etag: &str, modified: SystemTime) -> bool {
    if request.contains("if-match") {
        return (request.quoted_list("if-match")).any(|tag| tag == "*" || tag == etag);
    }
    // Two fields are a list of dates, no date: ignored (RFC 9110
    // §13.1.4), as two If-Modified-Since are.
    let mut dates = request.get_all("if-unmodified-since");
    let since = match (dates.next(), dates.next()) {
        (Some(date), None) => std::str::from_utf8(date).ok().and_then(parse_http_date),
        _ => None,
    };
    since.is_none_or(|since| modified <= since)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::tests::request;
    use std::fs::File;
    use std::path::PathBuf;

    #[test]
    fn if_unmodified_since_sent_as_a_list_of_dates_is_ignored() {
        // RFC 9110 §13.1.4: ignored when "the field value appears to be a
        // list of dates": two field lines make one list (§5.3).
        let before = http_date(MODIFIED - 10);
        let after = http_date(MODIFIED + 10);
        let reply = answer(&[
            ("If-Unmodified-Since", &before),
            ("If-Unmodified-Since", &after),
        ]);
        assert!(
            matches!(reply, Reply::Body { status: 200, .. }),
            "{reply:?}"
        );
        let reply = answer(&[("If-Unmodified-Since", &before)]);
        assert!(matches!(reply, Reply::PreconditionFailed), "{reply:?}");
    }

    fn served(len: u64, modified_secs: u64) -> Served {
        Served {
            file: File::open("/dev/null").unwrap(),
            path: PathBuf::from("/dev/null"),
            len,
            modified: UNIX_EPOCH + Duration::from_secs(modified_secs),
            content_type: "text/plain; charset=utf-8",
            encoding: None,
            varies: false,
        }
    }

    const NOW: u64 = 1_700_000_000;

    const MODIFIED: u64 = NOW - 3600;

    fn answer(fields: &[(&str, &str)]) -> Reply {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        reply(
            &served(1000, MODIFIED),
            &request(fields),
            true,
            Some(("max-age=60", Duration::from_secs(60))),
            now,
        )
    }

    #[test]
    fn max_age_sends_expires_beside_cache_control_on_a_304_too() {
        let expected = [
            ("expires", http_date(NOW + 60)),
            ("cache-control", "max-age=60".to_owned()),
        ];
        let Reply::Body { fields, .. } = answer(&[]) else {
            panic!("no body");
        };
        let tag = format!("\"{MODIFIED:x}-{:x}\"", 1000);
        let Reply::NotModified(not_modified) = answer(&[("If-None-Match", &tag)]) else {
            panic!("no 304");
        };
        for fields in [fields, not_modified] {
            for (name, value) in &expected {
                assert_eq!(fields.get_str(name), Some(value.as_str()), "{name}");
            }
        }
    }

    #[test]
    fn a_head_s_range_is_ignored() {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        let range = request(&[("Range", "bytes=0-9")]);
        let reply = reply(&served(1000, MODIFIED), &range, false, None, now);
        assert!(matches!(
            reply,
            Reply::Body {
                status: 200,
                len: 1000,
                ..
            }
        ));
    }

    fn http_date(secs: u64) -> String {
        format_http_date(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn a_plain_get_gets_the_file_with_its_validators() {
        let Reply::Body {
            status: 200,
            start: 0,
            len: 1000,
            fields,
        } = answer(&[])
        else {
            panic!("{:?}", answer(&[]))
        };
        assert_eq!(fields.get_str("etag"), Some("\"6553e2f0-3e8\""));
        assert_eq!(
            fields.get_str("last-modified").map(String::from),
            Some(http_date(MODIFIED))
        );
        assert_eq!(fields.get_str("cache-control"), Some("max-age=60"));
        assert_eq!(fields.get_str("accept-ranges"), Some("bytes"));
        assert!(!fields.contains("content-length"));
    }

    #[test]
    fn conditionals_in_rfc_order() {
        let etag = "\"6553e2f0-3e8\"";
        let after = http_date(MODIFIED + 10);
        let before = http_date(MODIFIED - 10);
        assert!(matches!(
            answer(&[("If-None-Match", etag)]),
            Reply::NotModified(_)
        ));
        assert!(matches!(
            answer(&[("If-None-Match", &format!("W/{etag}"))]),
            Reply::NotModified(_)
        ));
        assert!(matches!(
            answer(&[("If-Modified-Since", &after)]),
            Reply::NotModified(_)
        ));
        // If-None-Match wins over If-Modified-Since.
        assert!(matches!(
            answer(&[
                ("If-None-Match", "\"other\""),
                ("If-Modified-Since", &after)
            ]),
            Reply::Body { status: 200, .. }
        ));
        assert!(matches!(
            answer(&[("If-Modified-Since", &before)]),
            Reply::Body { status: 200, .. }
        ));
        assert_eq!(
            answer(&[("If-Match", "\"other\"")]),
            Reply::PreconditionFailed
        );
        assert!(matches!(answer(&[("If-Match", etag)]), Reply::Body { .. }));
        // If-Match compares strongly.
        assert_eq!(
            answer(&[("If-Match", &format!("W/{etag}"))]),
            Reply::PreconditionFailed
        );
        assert_eq!(
            answer(&[("If-Unmodified-Since", &before)]),
            Reply::PreconditionFailed
        );
        assert!(matches!(
            answer(&[("If-Unmodified-Since", "not a date")]),
            Reply::Body { .. }
        ));
    }

    #[test]
    fn one_range_is_a_part_and_several_are_parts() {
        let Reply::Body {
            status: 206,
            start: 100,
            len: 100,
            fields,
        } = answer(&[("Range", "bytes=100-199")])
        else {
            panic!()
        };
        assert_eq!(fields.get_str("content-range"), Some("bytes 100-199/1000"));
        let Reply::Parts { spans, fields } = answer(&[("Range", "bytes=0-9,20-29")]) else {
            panic!()
        };
        let span = |start, end| Span { start, end };
        assert_eq!(spans, [span(0, 9), span(20, 29)]);
        assert!(!fields.contains("content-range"));
        assert_eq!(
            answer(&[("Range", "bytes=5000-")]),
            Reply::Unsatisfiable(1000)
        );
        // If-Range with another tag: the whole file.
        assert!(matches!(
            answer(&[("Range", "bytes=0-9"), ("If-Range", "\"old\"")]),
            Reply::Body { status: 200, .. }
        ));
        assert!(matches!(
            answer(&[("Range", "bytes=0-9"), ("If-Range", "\"6553e2f0-3e8\"")]),
            Reply::Body { status: 206, .. }
        ));
    }
}
