//! When a certificate stops being valid: its `notAfter`, read from the
//! DER of an X.509 certificate (RFC 5280 §4.1) by walking its first few
//! fields, for the warnings and the metric that say a certificate is
//! about to expire (the most common way for HTTPS to stop working).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version`, absent from version 1 certificates.
const VERSION: u8 = 0xa0;

/// The end of `certificate`'s validity period; `None` when the bytes are
/// not a certificate as RFC 5280 lays one out.
pub fn not_after(certificate: &[u8]) -> Option<SystemTime> {
    let (tag, cert, _) = next(certificate)?;
    let (tbs_tag, mut tbs, _) = (tag == SEQUENCE).then(|| next(cert))??;
    if tbs_tag != SEQUENCE {
        return None;
    }
    // version (optional), serialNumber, signature, issuer: skipped.
    let (tag, _, rest) = next(tbs)?;
    if tag == VERSION {
        tbs = rest;
    }
    for _ in 0..3 {
        tbs = next(tbs)?.2;
    }
    let (tag, validity, _) = next(tbs)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, _, after_not_before) = next(validity)?;
    let (tag, time, _) = next(after_not_before)?;
    parse_time(tag, time)
}

/// The first TLV of `der`: its tag, its contents, and what follows it.
/// Lengths in the long form up to four bytes; anything else is `None`.
fn next(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
    };
    (len <= rest.len()).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `YYMMDDHHMMSSZ` (UTCTime: 50-99 are 19xx) or `YYYYMMDDHHMMSSZ`
/// (GeneralizedTime), as RFC 5280 §4.1.2.5 requires them written.
fn parse_time(tag: u8, text: &[u8]) -> Option<SystemTime> {
    let (year, rest) = match (tag, text.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(&text[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (GENERALIZED_TIME, 15) => (digits(&text[..4])?, &text[4..]),
        _ => return None,
    };
    if rest.last() != Some(&b'Z') {
        return None;
    }
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = crate::http::date::days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second.min(60));
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

fn digits(text: &[u8]) -> Option<u32> {
    text.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate valid until `not_after` (Unix seconds), as rcgen
    /// writes one.
    fn made_until(year: i32, month: u8, day: u8) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_end_of_validity_is_read_in_both_time_forms() {
        // 2049: UTCTime; 2050 on: GeneralizedTime (RFC 5280 §4.1.2.5).
        let secs = |der: &[u8]| {
            not_after(der)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        assert_eq!(secs(&made_until(2049, 12, 31)), 2_524_521_600);
        assert_eq!(secs(&made_until(2050, 1, 1)), 2_524_608_000);
        assert_eq!(secs(&made_until(2026, 12, 2)), 1_796_169_600);
    }

    #[test]
    fn what_is_not_a_certificate_has_no_end() {
        let der = made_until(2030, 6, 1);
        assert!(not_after(&der).is_some());
        for cut in [0, 1, 2, 10, 40, der.len() / 2] {
            assert_eq!(not_after(&der[..cut]), None, "cut at {cut}");
        }
        assert_eq!(not_after(b"-----BEGIN CERTIFICATE-----"), None);
        assert_eq!(parse_time(UTC_TIME, b"491231235959X"), None);
        assert_eq!(parse_time(UTC_TIME, b"491331235959Z"), None);
        assert_eq!(parse_time(GENERALIZED_TIME, b"491231235959Z"), None);
    }

    #[test]
    fn no_damage_to_a_certificate_makes_the_reading_fail_otherwise_than_by_none() {
        let der = made_until(2030, 6, 1);
        for i in 0..der.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut damaged = der.clone();
                damaged[i] ^= flip;
                let _ = not_after(&damaged);
            }
            let _ = not_after(&der[i..]);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_without_panicking(bytes: Vec<u8>) {
            let _ = not_after(&bytes);
            let mut framed = vec![SEQUENCE, 0x82, (bytes.len() >> 8) as u8, bytes.len() as u8];
            framed.extend_from_slice(&bytes);
            let _ = not_after(&framed);
        }
    }
}
