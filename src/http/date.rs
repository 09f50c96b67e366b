//! Dates as HTTP and the access log write them, from `SystemTime`, without a
//! calendar crate: the civil-date arithmetic is a dozen lines (Howard
//! Hinnant's days-from-civil algorithm).

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Broken-down UTC time.
#[derive(Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32, // 1..=12
    day: u32,   // 1..=31
    secs_of_day: u32,
    weekday: usize, // index into DAYS (0 = Thursday, 1970-01-01)
}

impl Civil {
    fn month_name(&self) -> &'static str {
        MONTHS[self.month as usize - 1]
    }

    fn clock(&self) -> Clock {
        Clock(self.secs_of_day)
    }

    /// `1994-11-06T08:49:37`: how [`Iso8601`] and [`format_rfc3339`]
    /// start, before their fraction and zone.
    fn write_date_time(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let (year, month, day) = (self.year, self.month, self.day);
        write!(out, "{year}-{month:02}-{day:02}T{}", self.clock())
    }
}

/// A time of day written as `hh:mm:ss`.
struct Clock(u32);

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(f, "{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

fn to_civil(t: SystemTime) -> Civil {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        secs_of_day,
        weekday: days.rem_euclid(7) as usize,
    }
}

pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn format_http_date(t: SystemTime) -> String {
    let c = to_civil(t);
    format!(
        "{}, {:02} {} {} {} GMT",
        DAYS[c.weekday],
        c.day,
        c.month_name(),
        c.year,
        c.clock()
    )
}

/// A directory listing's date, in UTC, as nginx's `autoindex` writes
/// it: `06-Nov-1994 08:49`.
pub fn format_listing_date(t: SystemTime) -> String {
    let c = to_civil(t);
    let minutes = c.secs_of_day / 60;
    format!(
        "{:02}-{}-{} {:02}:{:02}",
        c.day,
        c.month_name(),
        c.year,
        minutes / 60,
        minutes % 60
    )
}

/// A certificate's date as OpenSSL prints one (`ASN1_TIME_print`), so
/// nginx's `$ssl_client_v_start` and `$ssl_client_v_end`: `Nov  6
/// 08:49:37 1994 GMT`, the day padded with a space.
pub fn format_certificate_date(t: SystemTime) -> String {
    let c = to_civil(t);
    format!(
        "{} {:>2} {} {} GMT",
        c.month_name(),
        c.day,
        c.clock(),
        c.year
    )
}

/// The Common Log Format timestamp, in UTC: `06/Nov/1994:08:49:37 +0000`.
/// Written straight into the line that holds it: the access log formats
/// one per request.
pub struct Clf(pub SystemTime);

impl fmt::Display for Clf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = to_civil(self.0);
        write!(
            f,
            "{:02}/{}/{}:{} +0000",
            c.day,
            c.month_name(),
            c.year,
            c.clock()
        )
    }
}

/// nginx's `$time_iso8601`, in UTC: `1994-11-06T08:49:37+00:00`.
pub struct Iso8601(pub SystemTime);

impl fmt::Display for Iso8601 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        to_civil(self.0).write_date_time(f)?;
        f.write_str("+00:00")
    }
}

/// The access log's timestamps ([`Clf`], [`Iso8601`]) of the last second
/// written, kept: a log writes one per line, and under load hundreds of
/// lines share their second.
#[derive(Default)]
pub struct LogClock {
    clf: PerSecond,
    iso8601: PerSecond,
}

impl LogClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// `Clf(t)` as text.
    pub fn clf(&mut self, t: SystemTime) -> &str {
        self.clf.text(t, |out| write!(out, "{}", Clf(t)))
    }

    /// `Iso8601(t)` as text.
    pub fn iso8601(&mut self, t: SystemTime) -> &str {
        self.iso8601.text(t, |out| write!(out, "{}", Iso8601(t)))
    }
}

/// One timestamp's text, and the second it is for.
struct PerSecond {
    secs: u64,
    text: String,
}

impl Default for PerSecond {
    fn default() -> Self {
        PerSecond {
            secs: u64::MAX,
            text: String::new(),
        }
    }
}

impl PerSecond {
    /// The text for `t`'s second, written by `write` when the second changed.
    fn text(&mut self, t: SystemTime, write: impl FnOnce(&mut String) -> fmt::Result) -> &str {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs != self.secs {
            self.text.clear();
            let _ = write(&mut self.text);
            self.secs = secs;
        }
        &self.text
    }
}

/// An RFC 3339 timestamp in UTC with milliseconds:
/// `1994-11-06T08:49:37.000Z` (the JSON access log's `time`).
pub fn format_rfc3339(t: SystemTime) -> String {
    let millis = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    let mut out = String::with_capacity(24);
    let _ = to_civil(t).write_date_time(&mut out);
    let _ = write!(out, ".{millis:03}Z");
    out
}

/// 9999-12-31T23:59:59Z, the last second RFC 3339 writes in UTC.
const LAST_RFC3339: i64 = 253_402_300_799;

/// An RFC 3339 timestamp (`2025-01-02T04:00:00Z`, with a fraction of a
/// second and an offset as `+01:00` taken too), as ACME servers write
/// them; `None` for anything else, or a time before 1970.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let number = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i).is_some_and(|&x| x.eq_ignore_ascii_case(&c));
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    if at(i, b'.') {
        i += 1;
        let digits = b[i..].iter().take_while(|d| d.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        i += digits;
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == i + 6 && at(i + 3, b':') => {
            let (hours, minutes) = (number(i + 1, 2)?, number(i + 4, 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let minutes = hours * 60 + minutes;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset;
    // Past 9999-12-31T23:59:59Z (9999 late in the day, a negative
    // offset) is a time RFC 3339 cannot write in UTC, nor
    // `format_rfc3339` in a form read back.
    if secs > LAST_RFC3339 {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// The days of `month` (1 to 12) of `year`, by the Gregorian calendar
/// (RFC 3339 §5.7: `2026-02-29` is no date).
fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses the three date formats RFC 9110 §5.6.7 says a recipient must
/// accept: IMF-fixdate, RFC 850 and asctime. `None` for anything else
/// (callers treat an invalid date as "in the past", as the RFC says for
/// Expires).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    // On the request path (freshness, conditional requests): no allocation.
    let mut parts = [""; 6];
    let mut count = 0;
    for part in s.split_ascii_whitespace() {
        *parts.get_mut(count)? = part;
        count += 1;
    }
    let (day, month, year, time) = match &parts[..count] {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [_, d, m, y, t, "GMT"] => (d.parse().ok()?, *m, y.parse::<i64>().ok()?, *t),
        // Sunday, 06-Nov-94 08:49:37 GMT
        [_, dmy, t, "GMT"] => {
            let mut it = dmy.split('-');
            let (d, m, y) = (it.next()?, it.next()?, it.next()?);
            let y: i64 = y.parse().ok()?;
            // RFC 9110 §5.6.7: a two-digit year that would be more than
            // 50 years in the future is the last one in the past with
            // those digits.
            let y = match y {
                0..100 => {
                    let now = to_civil(SystemTime::now()).year;
                    let year = now - now.rem_euclid(100) + y;
                    if year > now + 50 {
                        year - 100
                    } else {
                        year
                    }
                }
                _ => y,
            };
            (d.parse().ok()?, m, y, *t)
        }
        // Sun Nov  6 08:49:37 1994
        [_, m, d, t, y] => (d.parse().ok()?, *m, y.parse::<i64>().ok()?, *t),
        _ => return None,
    };
    let month = MONTHS.iter().position(|&x| x == month)? as u32 + 1;
    if !(1..=31).contains(&day) || !(1970..=9999).contains(&year) {
        return None;
    }
    let mut hms = time.split(':').map(|x| x.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days as u64 * 86_400 + h * 3600 + m * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3339_timestamps_are_read_with_fractions_and_offsets() {
        let at = |secs: u64| Some(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), at(0));
        assert_eq!(parse_rfc3339("2025-01-02T04:00:00Z"), at(1_735_790_400));
        assert_eq!(
            parse_rfc3339("2025-01-02T04:00:00.123456Z"),
            at(1_735_790_400)
        );
        assert_eq!(
            parse_rfc3339("2025-01-02T05:30:00+01:30"),
            at(1_735_790_400)
        );
        assert_eq!(
            parse_rfc3339("2025-01-01T23:00:00-05:00"),
            at(1_735_790_400)
        );
        assert_eq!(parse_rfc3339("2025-01-02t04:00:00z"), at(1_735_790_400));
        let t = SystemTime::now();
        let back = parse_rfc3339(&format_rfc3339(t)).unwrap();
        assert!(t.duration_since(back).unwrap() < Duration::from_secs(1));
        for bad in [
            "",
            "2025-01-02",
            "2025-01-02T04:00:00",
            "2025-13-02T04:00:00Z",
            "2025-01-02T24:00:00Z",
            "2025-01-02T04:00:00.Z",
            "2025-01-02T04:00:00+0100",
            "2025-01-02T04:00:00Zjunk",
            "1969-12-31T23:59:59Z",
            "２025-01-02T04:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    /// Found by the `acme` fuzz target: `9999-12-31T23:59:59-10:00` was
    /// read as a time in the year 10000, which `format_rfc3339` writes in
    /// a form not read back.
    #[test]
    fn rfc_3339_times_end_with_the_year_9999_in_utc_and_offsets_within_a_day() {
        let at = |secs: u64| Some(UNIX_EPOCH + Duration::from_secs(secs));
        let last = parse_rfc3339("9999-12-31T23:59:59Z");
        assert_eq!(last, at(253_402_300_799));
        assert_eq!(format_rfc3339(last.unwrap()), "9999-12-31T23:59:59.000Z");
        assert_eq!(
            parse_rfc3339("9999-12-31T23:59:59+10:00"),
            at(253_402_264_799)
        );
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59-10:00"), None);
        assert_eq!(parse_rfc3339("9999-12-31T23:59:60-00:01"), None);
        assert_eq!(
            parse_rfc3339("2025-01-02T04:00:00+23:59"),
            at(1_735_704_060)
        );
        for bad in ["2025-01-02T04:00:00+24:00", "2025-01-02T04:00:00-01:60"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc_3339_days_are_those_of_their_month() {
        for good in [
            "2024-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "2026-04-30T00:00:00Z",
            "2026-12-31T00:00:00Z",
        ] {
            assert!(parse_rfc3339(good).is_some(), "{good}");
        }
        for bad in [
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-31T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc_3339_fields_are_each_checked_and_each_counted() {
        let at = |secs: u64| Some(UNIX_EPOCH + Duration::from_secs(secs));
        // 2025-01-02T00:00:00Z is 1_735_776_000.
        assert_eq!(
            parse_rfc3339("2025-01-02T04:05:06Z"),
            at(1_735_776_000 + 4 * 3600 + 5 * 60 + 6)
        );
        assert_eq!(
            parse_rfc3339("2025-01-02T23:59:59Z"),
            at(1_735_776_000 + 86_399)
        );
        // A leap second is read as the second before it.
        assert_eq!(
            parse_rfc3339("2025-01-02T23:59:60Z"),
            at(1_735_776_000 + 86_399)
        );
        // Each separator in its place, each field in its range, an
        // offset of exactly `+hh:mm`.
        for bad in [
            "2025x01-02T04:00:00Z",
            "2025-01x02T04:00:00Z",
            "2025-01-02x04:00:00Z",
            "2025-01-02T04x00:00Z",
            "2025-01-02T04:00x00Z",
            "2025-01-32T04:00:00Z",
            "2025-01-02T04:60:00Z",
            "2025-01-02T04:00:61Z",
            "2025-01-02T04:00:00+01x00",
            "2025-01-02T04:00:00+01:00x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_two_digit_year_is_the_nearest_not_over_50_years_ahead() {
        let now = to_civil(SystemTime::now()).year;
        let year_of = |yy: i64| {
            let date = format!("Sunday, 06-Nov-{:02} 08:49:37 GMT", yy.rem_euclid(100));
            to_civil(parse_http_date(&date).unwrap()).year
        };
        assert_eq!(year_of(now + 10), now + 10);
        assert_eq!(year_of(now + 49), now + 49);
        assert_eq!(year_of(now + 51), now - 49);
        assert_eq!(year_of(now - 30), now - 30);
    }

    #[test]
    fn formats_the_rfc_example() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(Clf(t).to_string(), "06/Nov/1994:08:49:37 +0000");
        let mut clock = LogClock::new();
        assert_eq!(clock.clf(t), "06/Nov/1994:08:49:37 +0000");
        assert_eq!(clock.iso8601(t), "1994-11-06T08:49:37+00:00");
        assert_eq!(
            clock.clf(t + Duration::from_millis(999)),
            "06/Nov/1994:08:49:37 +0000"
        );
        assert_eq!(
            clock.clf(t + Duration::from_secs(1)),
            "06/Nov/1994:08:49:38 +0000"
        );
        assert_eq!(
            clock.iso8601(t + Duration::from_secs(1)),
            "1994-11-06T08:49:38+00:00"
        );
        assert_eq!(clock.clf(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clock.iso8601(UNIX_EPOCH), "1970-01-01T00:00:00+00:00");
    }

    #[test]
    fn parses_all_three_formats() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(parse_http_date("0"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT extra"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn round_trips_across_years() {
        for secs in (0..4_000_000_000u64).step_by(7_777_777) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_http_date(&format_http_date(t)), Some(t));
        }
    }
}
