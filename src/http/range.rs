//! Byte ranges (RFC 9110 §14) of a complete response held in memory, as a
//! cache answers them.
//!
//! One range gets a 206; anything else the header may say (several
//! ranges, another unit, a syntax error) gets the whole response, which a
//! server may always send instead (RFC 9110 §14.2). nginx answers several
//! ranges with a multipart body; the clients that ask for parts (media
//! players, download resumers) ask for one at a time.

use super::date::parse_http_date;
use super::headers::Headers;
use std::time::Duration;

/// What to answer a request for a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// The whole response, as if no range had been asked for.
    Whole,
    /// 206 with bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// 416: the one range asked for starts past the end.
    Unsatisfiable,
}

/// The answer to `request`'s `Range` (and `If-Range`) for a stored 200
/// whose fields are `stored` and whose body is `len` bytes long.
pub fn requested(request: &Headers, stored: &Headers, len: u64) -> Ranged {
    let mut ranges = request.get_all("range");
    let (Some(range), None) = (ranges.next(), ranges.next()) else {
        return Ranged::Whole;
    };
    // An empty body has no part to send (nor can a Content-Range name
    // one): it goes whole, as nginx sends it.
    if len == 0 || stored.has_token("accept-ranges", "none") || !if_range_holds(request, stored) {
        return Ranged::Whole;
    }
    std::str::from_utf8(range).map_or(Ranged::Whole, |range| parse(range, len))
}

/// Whether a whole stored 200 of `len` bytes should tell the client it
/// may ask for parts (`Accept-Ranges: bytes`, as nginx says of what it
/// serves from its cache; media players look for it before seeking): it
/// can be cut (see [`requested`]) and the origin said nothing either way.
pub fn worth_announcing(stored: &Headers, len: u64) -> bool {
    len > 0 && !stored.contains("accept-ranges")
}

/// RFC 9110 §13.1.5: the range applies only if the client's copy is the
/// stored one, by strong comparison: an entity-tag equal and not weak, or
/// a date equal to the stored `Last-Modified`, which must itself be strong
/// (§8.8.2.2: at least a second before the response's `Date`; a file
/// changed twice within a second has one date for two contents).
fn if_range_holds(request: &Headers, stored: &Headers) -> bool {
    let Some(condition) = request.get_str("if-range") else {
        return true;
    };
    if condition.starts_with('"') {
        return stored
            .get_str("etag")
            .is_some_and(|etag| etag.starts_with('"') && etag == condition);
    }
    let date_of = |name| stored.get_str(name).and_then(parse_http_date);
    let (Some(modified), Some(date)) = (date_of("last-modified"), date_of("date")) else {
        return false;
    };
    let strong = date
        .duration_since(modified)
        .is_ok_and(|gap| gap >= Duration::from_secs(1));
    strong && parse_http_date(condition) == Some(modified)
}

/// `bytes=first-last`, `bytes=first-` or `bytes=-suffix`, with the
/// whitespace and empty list elements RFC 9110 §5.6.1 allows around it,
/// of a body of `len` bytes, `len > 0`.
fn parse(value: &str, len: u64) -> Ranged {
    let Some((unit, set)) = value.split_once('=') else {
        return Ranged::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranged::Whole;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return Ranged::Whole;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Ranged::Whole;
    };
    if first.is_empty() {
        return match digits(last) {
            Some(Number::Fits(0)) => Ranged::Unsatisfiable,
            Some(Number::Fits(suffix)) => Ranged::Part {
                start: len.saturating_sub(suffix),
                end: len - 1,
            },
            Some(Number::TooLarge) => Ranged::Part {
                start: 0,
                end: len - 1,
            },
            None => Ranged::Whole,
        };
    }
    let start = match digits(first) {
        Some(Number::Fits(start)) => start,
        Some(Number::TooLarge) => return Ranged::Unsatisfiable,
        None => return Ranged::Whole,
    };
    let end = match digits(last) {
        _ if last.is_empty() => u64::MAX,
        Some(Number::Fits(end)) if end >= start => end,
        Some(Number::TooLarge) => u64::MAX,
        // Invalid (last before first, not a number): RFC 9110 §14.1.1
        // makes the whole header invalid, and an invalid one is ignored.
        _ => return Ranged::Whole,
    };
    if start >= len {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part {
        start,
        end: end.min(len - 1),
    }
}

enum Number {
    Fits(u64),
    /// All digits, but past `u64`: a position beyond any body.
    TooLarge,
}

fn digits(s: &str) -> Option<Number> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().map_or(Number::TooLarge, Number::Fits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[(&str, &str)]) -> Headers {
        let mut h = Headers::default();
        for (name, value) in fields {
            h.push(name, value);
        }
        h
    }

    fn range(value: &str, len: u64) -> Ranged {
        requested(&headers(&[("Range", value)]), &Headers::default(), len)
    }

    fn part(start: u64, end: u64) -> Ranged {
        Ranged::Part { start, end }
    }

    #[test]
    fn one_range_in_each_of_its_forms() {
        assert_eq!(range("bytes=0-99", 1000), part(0, 99));
        assert_eq!(range("bytes=500-", 1000), part(500, 999));
        assert_eq!(range("bytes=-100", 1000), part(900, 999));
        assert_eq!(range("bytes=990-2000", 1000), part(990, 999), "clamped");
        assert_eq!(range("bytes=-5000", 1000), part(0, 999), "suffix longer");
        assert_eq!(range("bytes=7-7", 1000), part(7, 7));
        assert_eq!(range("Bytes = 1-2 ", 1000), part(1, 2), "case, spaces");
        assert_eq!(range("bytes=, 1-2 ,", 1000), part(1, 2), "empty elements");
        assert_eq!(
            range("bytes=0-99999999999999999999999", 10),
            part(0, 9),
            "a last position past u64 is the end"
        );
    }

    #[test]
    fn past_the_end_is_unsatisfiable() {
        assert_eq!(range("bytes=1000-", 1000), Ranged::Unsatisfiable);
        assert_eq!(range("bytes=5000-6000", 1000), Ranged::Unsatisfiable);
        assert_eq!(range("bytes=-0", 1000), Ranged::Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), Ranged::Whole, "empty: whole");
        assert_eq!(range("bytes=-5", 0), Ranged::Whole, "empty: whole");
        assert_eq!(
            range("bytes=99999999999999999999999-", 10),
            Ranged::Unsatisfiable
        );
    }

    #[test]
    fn anything_else_is_answered_whole() {
        for value in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes 0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=",
            "bytes=+1-2",
            "bytes=1--2",
            "bytes=0x1-2",
        ] {
            assert_eq!(range(value, 1000), Ranged::Whole, "{value}");
        }
        let two = headers(&[("Range", "bytes=0-1"), ("Range", "bytes=0-1")]);
        assert_eq!(
            requested(&two, &Headers::default(), 10),
            Ranged::Whole,
            "two Range fields"
        );
        let asked = headers(&[("Range", "bytes=0-1")]);
        let refused = headers(&[("Accept-Ranges", "none")]);
        assert_eq!(requested(&asked, &refused, 10), Ranged::Whole);
    }

    #[test]
    fn if_range_compares_strongly() {
        let stored = headers(&[
            ("ETag", "\"v1\""),
            ("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
            ("Date", "Tue, 01 Dec 2026 10:00:01 GMT"),
        ]);
        let ask = |if_range: &str| {
            let request = headers(&[("Range", "bytes=0-1"), ("If-Range", if_range)]);
            requested(&request, &stored, 10)
        };
        assert_eq!(ask("\"v1\""), part(0, 1));
        assert_eq!(ask("\"v2\""), Ranged::Whole);
        assert_eq!(ask("W/\"v1\""), Ranged::Whole, "weak never matches");
        assert_eq!(ask("Tue, 01 Dec 2026 10:00:00 GMT"), part(0, 1));
        assert_eq!(ask("Tue, 01 Dec 2026 10:00:01 GMT"), Ranged::Whole);
        assert_eq!(ask("yesterday"), Ranged::Whole);
        // A Last-Modified within the second of the Date is weak.
        let same_second = headers(&[
            ("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
            ("Date", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ]);
        let dated = headers(&[
            ("Range", "bytes=0-1"),
            ("If-Range", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ]);
        assert_eq!(requested(&dated, &same_second, 10), Ranged::Whole);
        let weak = headers(&[("ETag", "W/\"v1\"")]);
        let request = headers(&[("Range", "bytes=0-1"), ("If-Range", "W/\"v1\"")]);
        assert_eq!(requested(&request, &weak, 10), Ranged::Whole);
    }
}
