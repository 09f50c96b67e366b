//! Plain values: numbers, durations, sizes, rates, booleans, paths,
//! ports, address blocks, and a health probe's statuses and body.

use std::path::PathBuf;
use std::time::Duration;

/// An empty value is "not set"; anything else must parse.
pub(in crate::config) fn optional<T>(
    v: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if v.is_empty() {
        Ok(None)
    } else {
        parse(v).map(Some)
    }
}

/// A whole number within `range` (the message names the range either way:
/// a number too large for `T` fails to parse rather than to fit).
pub(in crate::config) fn parse_number<T>(
    v: &str,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let (start, end) = (range.start(), range.end());
    // Digits only (and a minus sign): `parse` would also take `+80`.
    let digits = v.strip_prefix('-').unwrap_or(v);
    let n: T = Some(v)
        .filter(|_| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("`{v}` is not a whole number ({start}..={end})"))?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is out of range ({start}..={end})"))
    }
}

/// `500ms`, `30s`, `5m`, `1h`; a bare number is seconds.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{v}` is not a duration (e.g. 500ms, 30s, 5m, 1h, 1d)"))?;
    let millis_per = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{v}` (use ms, s, m, h or d)"
            ))
        }
    };
    n.checked_mul(millis_per)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{v}` is too long"))
}

pub(in crate::config) fn parse_positive_duration(v: &str) -> Result<Duration, String> {
    match parse_duration(v)? {
        d if d.is_zero() => Err("must be greater than zero".to_string()),
        d => Ok(d),
    }
}

/// `max_fails`, the global key or a target's own: 0 (never taken out)
/// to 1,000,000.
pub(in crate::config) fn parse_max_fails(v: &str) -> Result<u32, String> {
    parse_number(v, 0..=1_000_000)
}

/// `fail_timeout`, the global key or a target's own: a duration, not 0
/// (a window of nothing would count no failure together, and a target
/// taken out would be back at once).
pub(in crate::config) fn parse_fail_timeout(v: &str) -> Result<Duration, String> {
    parse_positive_duration(v)
}

/// `512B`, `64KiB`, `64MiB`, `1GiB` (`K`, `M`, `G` are the same binary
/// units); a bare number is bytes.
pub fn parse_size(v: &str) -> Result<u64, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{v}` is not a size (e.g. 4096, 512KiB, 64MiB, 1GiB)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" | "mb" | "gb" => {
            return Err(format!(
                "`{v}`: use KiB, MiB or GiB (sizes are binary, 1 KiB = 1024 bytes)"
            ))
        }
        other => return Err(format!("unknown size unit `{other}` in `{v}`")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{v}` is too large"))
}

/// A rate in bytes a second: a size, `/s` after it or not (`512KiB/s`).
pub fn parse_rate(v: &str) -> Result<u64, String> {
    match v.strip_suffix("/s").unwrap_or(v) {
        "" => Err(format!("`{v}` is not a rate (e.g. 512KiB/s, 2MiB)")),
        size => parse_size(size),
    }
}

pub(in crate::config) fn parse_size_in(
    v: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, String> {
    let n = parse_size(v)?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{n} bytes is out of range ({}..={} bytes)",
            range.start(),
            range.end()
        ))
    }
}

pub(in crate::config) fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!(
            "`{v}` is not a boolean (true or false; also yes/no, on/off, 1/0)"
        )),
    }
}

pub(in crate::config) fn optional_path(v: &str) -> Option<PathBuf> {
    (!v.is_empty()).then(|| PathBuf::from(v))
}

/// `200, 204, 300-399`: the statuses a health probe passes with, each one
/// or an inclusive range, from 100 to 599; empty: none listed.
pub(in crate::config) fn parse_status_ranges(v: &str) -> Result<Vec<(u16, u16)>, String> {
    let status = |s: &str| {
        parse_number::<u16>(s.trim(), 100..=599)
            .map_err(|_| format!("`{s}` is not a status (100 to 599) in `{v}`"))
    };
    let mut ranges = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let range = match item.split_once('-') {
            Some((low, high)) => (status(low)?, status(high)?),
            None => (status(item)?, status(item)?),
        };
        if range.0 > range.1 {
            return Err(format!("`{item}` is a range from high to low"));
        }
        ranges.push(range);
    }
    if ranges.len() > 32 {
        return Err(format!(
            "{} statuses or ranges listed; at most 32",
            ranges.len()
        ));
    }
    Ok(ranges)
}

/// The text a health probe's body must hold: printable (a `#` cannot be
/// written, it starts a comment), at most 256 bytes; empty: none.
pub(in crate::config) fn parse_expected_body(
    v: &str,
) -> Result<Option<std::sync::Arc<str>>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > 256 || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!(
            "`{}` is not printable text of at most 256 bytes",
            v.escape_default()
        ));
    }
    Ok(Some(v.into()))
}

/// A port, or none when empty (a listener that is off).
pub(in crate::config) fn optional_port(v: &str) -> Result<Option<u16>, String> {
    optional(v, |v| parse_number(v, 0..=u16::MAX))
}
