//! The fields of an X.509 certificate (RFC 5280 §4.1) the proxy reads
//! itself, by walking its DER, as rustls says nothing of them: when it
//! stops being valid (`notAfter`), for the warnings and the metric that
//! say a certificate is about to expire (the most common way for HTTPS to
//! stop working); and whom it names, who issued it, its serial number
//! and its validity, for the log and the backends (`$ssl_client_s_dn`,
//! `$ssl_client_i_dn`, `$ssl_client_serial`, `$ssl_client_v_end`).

use crate::digits::push_hex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const TELETEX_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const BMP_STRING: u8 = 0x1e;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version`, absent from version 1 certificates.
const VERSION: u8 = 0xa0;

/// The end of `certificate`'s validity period; `None` when the bytes are
/// not a certificate as RFC 5280 lays one out.
pub fn not_after(certificate: &[u8]) -> Option<SystemTime> {
    validity(certificate).map(|(_, end)| end)
}

/// `certificate`'s validity period: its `notBefore` and `notAfter`.
pub fn validity(certificate: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let (start_tag, start, after_start) = next(tbs_fields(certificate)?.validity)?;
    let (end_tag, end, _) = next(after_start)?;
    Some((parse_time(start_tag, start)?, parse_time(end_tag, end)?))
}

/// Whom `certificate` names, as RFC 4514 writes a name and nginx's
/// `$ssl_client_s_dn` shows it: its parts last to first
/// (`CN=alice,O=Example,C=FR`), those of one part joined by `+`.
pub fn subject(certificate: &[u8]) -> Option<String> {
    distinguished_name(tbs_fields(certificate)?.subject)
}

/// Who issued `certificate`, written as [`subject`] writes whom it names.
pub fn issuer(certificate: &[u8]) -> Option<String> {
    distinguished_name(tbs_fields(certificate)?.issuer)
}

/// `certificate`'s serial number as OpenSSL (so nginx's
/// `$ssl_client_serial`) writes it: the hex of its magnitude's bytes, in
/// upper case (without the zero byte DER puts before a positive number
/// whose first bit is set), after a `-` for a negative one, which RFC
/// 5280 forbids but verifiers let through.
pub fn serial(certificate: &[u8]) -> Option<String> {
    let bytes = tbs_fields(certificate)?.serial;
    let negative = bytes.first()? & 0x80 != 0;
    // Two's complement: the magnitude of a negative number is its bits
    // inverted, plus one.
    let mut magnitude = bytes.to_vec();
    if negative {
        for b in &mut magnitude {
            *b = !*b;
        }
        for b in magnitude.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
    }
    let start = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len() - 1);
    let mut out = String::from(if negative { "-" } else { "" });
    push_hex(&mut out, &magnitude[start..], true);
    Some(out)
}

/// A name (RFC 5280's `Name`, the contents of its sequence) as RFC 4514
/// writes one.
fn distinguished_name(mut name: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !name.is_empty() {
        let (tag, set, rest) = next(name)?;
        name = rest;
        if tag != SET {
            return None;
        }
        let mut part = Vec::new();
        let mut set = set;
        while !set.is_empty() {
            let (tag, pair, rest) = next(set)?;
            set = rest;
            let (oid_tag, oid, value) = next(pair)?;
            let (value_tag, value, _) = next(value)?;
            if tag != SEQUENCE || oid_tag != OID {
                return None;
            }
            part.push(format!(
                "{}={}",
                attribute_name(oid),
                attribute_value(value_tag, value)
            ));
        }
        parts.push(part.join("+"));
    }
    parts.reverse();
    Some(parts.join(","))
}

/// The contents of the fields of a certificate's `TBSCertificate` read
/// here.
pub(super) struct TbsFields<'a> {
    pub serial: &'a [u8],
    pub issuer: &'a [u8],
    /// The issuer's name whole, tag and length too: what an OCSP
    /// response's `issuerNameHash` is a hash of.
    pub issuer_whole: &'a [u8],
    validity: &'a [u8],
    subject: &'a [u8],
    /// The subject's name whole.
    pub subject_whole: &'a [u8],
    /// The `subjectPublicKey` BIT STRING's bits (its unused-bits byte
    /// left out): what an OCSP response's `issuerKeyHash` is a hash of,
    /// for the issuer's certificate.
    pub public_key: &'a [u8],
}

pub(super) fn tbs_fields(certificate: &[u8]) -> Option<TbsFields<'_>> {
    let (tag, cert, _) = next(certificate)?;
    let (tbs_tag, mut tbs, _) = (tag == SEQUENCE).then(|| next(cert))??;
    if tbs_tag != SEQUENCE {
        return None;
    }
    let (tag, _, rest) = next(tbs)?;
    if tag == VERSION {
        tbs = rest;
    }
    let (serial_tag, serial, rest) = next(tbs)?;
    // The signature algorithm: skipped.
    let (_, _, rest) = next(rest)?;
    let (issuer_tag, issuer, after_issuer) = next(rest)?;
    let issuer_whole = &rest[..rest.len() - after_issuer.len()];
    let (validity_tag, validity, rest) = next(after_issuer)?;
    let (subject_tag, subject, after_subject) = next(rest)?;
    let subject_whole = &rest[..rest.len() - after_subject.len()];
    let sequences = [issuer_tag, validity_tag, subject_tag] == [SEQUENCE; 3];
    (serial_tag == INTEGER && sequences).then_some(TbsFields {
        serial,
        issuer,
        issuer_whole,
        validity,
        subject,
        subject_whole,
        public_key: public_key(after_subject).unwrap_or_default(),
    })
}

/// What ACME Renewal Information (RFC 9773 §4.1) names `certificate`
/// by: the `keyIdentifier` of its authority key identifier extension
/// (which of its issuer's keys signed it) and its serial number's bytes
/// as DER holds them, each base64url, joined by a dot.
pub fn renewal_id(certificate: &[u8]) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let serial = tbs_fields(certificate)?.serial;
    let key_id = authority_key_id(certificate)?;
    Some(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(key_id),
        URL_SAFE_NO_PAD.encode(serial)
    ))
}

/// The `keyIdentifier` of `certificate`'s authority key identifier
/// (RFC 5280 §4.2.1.1), when it has one.
fn authority_key_id(certificate: &[u8]) -> Option<&[u8]> {
    // id-ce-authorityKeyIdentifier, 2.5.29.35.
    let value = extension(certificate, &[0x55, 0x1d, 0x23])?;
    let (SEQUENCE, fields, _) = next(value)? else {
        return None;
    };
    // keyIdentifier [0] IMPLICIT OCTET STRING: the first field, if any.
    match next(fields)? {
        (0x80, key_id, _) if !key_id.is_empty() => Some(key_id),
        _ => None,
    }
}

/// The value (the OCTET STRING's content) of `certificate`'s extension
/// `oid`.
fn extension<'a>(certificate: &'a [u8], oid: &[u8]) -> Option<&'a [u8]> {
    let (_, cert, _) = next(certificate)?;
    let (SEQUENCE, tbs, _) = next(cert)? else {
        return None;
    };
    // Past version, serial, signature, issuer, validity, subject and the
    // key, to the optional fields: `[3] EXPLICIT Extensions` is the last.
    let mut rest = tbs;
    let mut extensions = None;
    while let Some((tag, content, after)) = next(rest) {
        if tag == 0xa3 {
            extensions = Some(content);
        }
        rest = after;
    }
    let (SEQUENCE, mut list, _) = next(extensions?)? else {
        return None;
    };
    while let Some((SEQUENCE, one, after)) = next(list) {
        list = after;
        let (OID, id, rest) = next(one)? else {
            continue;
        };
        if id != oid {
            continue;
        }
        // `critical BOOLEAN DEFAULT FALSE` may come before the value.
        let (tag, value, after) = next(rest)?;
        let (tag, value) = match tag {
            0x01 => next(after).map(|(t, v, _)| (t, v))?,
            _ => (tag, value),
        };
        return (tag == 0x04).then_some(value);
    }
    None
}

/// The key's bits of a `SubjectPublicKeyInfo` first in `der`.
fn public_key(der: &[u8]) -> Option<&[u8]> {
    let (SEQUENCE, info, _) = next(der)? else {
        return None;
    };
    let (_, _, rest) = next(info)?; // the algorithm
    match next(rest)? {
        (BIT_STRING, bits, _) => bits.split_first().map(|(_, bits)| bits),
        _ => None,
    }
}

/// RFC 4514's short names, and those OpenSSL (so nginx) writes.
fn attribute_name(oid: &[u8]) -> String {
    let known: &[(&[u8], &str)] = &[
        (&[0x55, 0x04, 0x03], "CN"),
        (&[0x55, 0x04, 0x05], "serialNumber"),
        (&[0x55, 0x04, 0x06], "C"),
        (&[0x55, 0x04, 0x07], "L"),
        (&[0x55, 0x04, 0x08], "ST"),
        (&[0x55, 0x04, 0x09], "street"),
        (&[0x55, 0x04, 0x0a], "O"),
        (&[0x55, 0x04, 0x0b], "OU"),
        (&[0x55, 0x04, 0x0c], "title"),
        (&[0x55, 0x04, 0x2a], "GN"),
        (&[0x55, 0x04, 0x04], "SN"),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
            "emailAddress",
        ),
        (
            &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
            "DC",
        ),
        (
            &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
            "UID",
        ),
    ];
    match known.iter().find(|(der, _)| *der == oid) {
        Some((_, name)) => name.to_string(),
        None => dotted(oid),
    }
}

/// An object identifier in dotted decimal (`1.3.6.1.4.1.311`).
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut arc = 0u64;
    for &b in oid {
        arc = arc.saturating_mul(128) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(arc);
            arc = 0;
        }
    }
    let mut out = match arcs.first() {
        Some(&first) => format!(
            "{}.{}",
            (first / 40).min(2),
            first - 40 * (first / 40).min(2)
        ),
        None => return "?".to_string(),
    };
    for arc in &arcs[1..] {
        out.push_str(&format!(".{arc}"));
    }
    out
}

/// A value as RFC 4514 writes it: a string type's text, its specials
/// escaped with `\`, its control characters as `\XX`; any other type as
/// `#` and the hex of its bytes.
fn attribute_value(tag: u8, value: &[u8]) -> String {
    let text = match tag {
        UTF8_STRING | PRINTABLE_STRING | IA5_STRING | TELETEX_STRING => {
            String::from_utf8(value.to_vec()).ok()
        }
        BMP_STRING if value.len().is_multiple_of(2) => {
            let units = value.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        _ => None,
    };
    let Some(text) = text else {
        let mut out = String::from("#");
        push_hex(&mut out, value, false);
        return out;
    };
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if c.is_control() {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                out.push('\\');
                push_hex(&mut out, &[b], true);
            }
        } else {
            if special {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// The first TLV of `der`: its tag, its contents, and what follows it.
/// Lengths in the long form up to four bytes; anything else is `None`.
pub(super) fn next(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
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
pub(super) fn parse_time(tag: u8, text: &[u8]) -> Option<SystemTime> {
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

    #[test]
    fn a_renewal_id_is_rfc_9773s() {
        // RFC 9773 §4.1's example: this key identifier and serial.
        let key_id = [
            0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
            0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4,
        ];
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(key_id.to_vec());
        let issuer = rcgen::Issuer::new(ca, rcgen::KeyPair::generate().unwrap());
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        leaf.use_authority_key_identifier_extension = true;
        leaf.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x87, 0x65, 0x43, 0x21]));
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        assert_eq!(
            renewal_id(cert.der()).as_deref(),
            Some("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
        );
        let alone = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        let alone = alone.self_signed(&key).unwrap();
        assert_eq!(renewal_id(alone.der()), None, "no authority key identifier");
        assert_eq!(renewal_id(b"\x30\x03\x02\x01\x00"), None);
    }

    /// A certificate reduced to what [`extension`] reads: a TBS of a
    /// serial and `[3]` extensions holding `one` (each an extension's
    /// fields: the OID, maybe `critical`, the value).
    fn with_extensions(one: &[Vec<u8>]) -> Vec<u8> {
        let list: Vec<u8> = one.iter().flat_map(|e| tlv(SEQUENCE, e)).collect();
        let tbs = [tlv(INTEGER, &[7]), tlv(0xa3, &tlv(SEQUENCE, &list))].concat();
        tlv(SEQUENCE, &tlv(SEQUENCE, &tbs))
    }

    const AKI: [u8; 3] = [0x55, 0x1d, 0x23];

    #[test]
    fn an_extension_is_found_past_others_and_a_critical_flag() {
        let aki = |key_id: &[u8]| tlv(0x04, &tlv(SEQUENCE, &tlv(0x80, key_id)));
        let other = [tlv(OID, &[0x55, 0x1d, 0x11]), tlv(0x04, &[0x30, 0x00])].concat();
        let plain = with_extensions(&[other.clone(), [tlv(OID, &AKI), aki(&[9, 8])].concat()]);
        assert_eq!(authority_key_id(&plain), Some(&[9u8, 8][..]));
        // `critical TRUE` written before the value.
        let critical = [tlv(OID, &AKI), tlv(0x01, &[0xff]), aki(&[5])].concat();
        let critical = with_extensions(&[other.clone(), critical]);
        assert_eq!(authority_key_id(&critical), Some(&[5u8][..]));
        assert_eq!(
            extension(&critical, &[0x55, 0x1d, 0x11]),
            Some(&[0x30u8, 0x00][..])
        );
        // An empty key identifier is none.
        let empty = with_extensions(&[[tlv(OID, &AKI), aki(&[])].concat()]);
        assert_eq!(authority_key_id(&empty), None);
        // A value that is not an OCTET STRING is no value.
        let odd = with_extensions(&[[tlv(OID, &AKI), tlv(0x05, &[])].concat()]);
        assert_eq!(extension(&odd, &AKI), None);
        assert_eq!(extension(&plain, &[0x55, 0x1d, 0x0f]), None);
    }

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
                let _ = subject(&damaged);
            }
            let _ = not_after(&der[i..]);
            let _ = subject(&der[i..]);
        }
    }

    #[test]
    fn the_subject_is_written_as_nginx_writes_it() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        let mut name = rcgen::DistinguishedName::new();
        name.push(rcgen::DnType::CountryName, "FR");
        name.push(rcgen::DnType::OrganizationName, "Example, Inc.");
        name.push(rcgen::DnType::CommonName, " alice+bob ");
        params.distinguished_name = name;
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(
            subject(&der).as_deref(),
            Some("CN=\\ alice\\+bob\\ ,O=Example\\, Inc.,C=FR")
        );
        assert_eq!(
            dotted(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37]),
            "1.3.6.1.4.1.311"
        );
        assert_eq!(issuer(&der), subject(&der), "self-signed");
        assert_eq!(attribute_value(0x04, &[0xab, 0x01]), "#ab01");
        assert_eq!(attribute_value(UTF8_STRING, b"a\nb"), "a\\0Ab");
    }

    #[test]
    fn the_serial_is_written_as_openssl_writes_it() {
        let key = rcgen::KeyPair::generate().unwrap();
        let serial_of = |bytes: &[u8]| {
            let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
            params.serial_number = Some(rcgen::SerialNumber::from_slice(bytes));
            serial(params.self_signed(&key).unwrap().der()).unwrap()
        };
        assert_eq!(serial_of(&[0x01, 0x2a]), "012A");
        // DER's sign byte before a first bit set is not part of the number.
        assert_eq!(serial_of(&[0x9c, 0x00, 0xff]), "9C00FF");
        assert_eq!(serial(b"\x30\x00"), None);
        assert_eq!(serial_of(&[0x00]), "00");
        // rcgen writes no negative number: a certificate of bare fields.
        let with_integer = |integer: &[u8]| {
            let mut tbs = vec![INTEGER, integer.len() as u8];
            tbs.extend_from_slice(integer);
            tbs.extend_from_slice(&[SEQUENCE, 0, SEQUENCE, 0, SEQUENCE, 0, SEQUENCE, 0]);
            let mut cert = vec![SEQUENCE, tbs.len() as u8 + 2, SEQUENCE, tbs.len() as u8];
            cert.extend_from_slice(&tbs);
            serial(&cert)
        };
        assert_eq!(
            with_integer(&[0xfb]).as_deref(),
            Some("-05"),
            "-5, as OpenSSL"
        );
        assert_eq!(with_integer(&[0xff, 0x00]).as_deref(), Some("-0100"));
        assert_eq!(with_integer(&[0x80]).as_deref(), Some("-80"));
        assert_eq!(with_integer(&[0x00, 0x80]).as_deref(), Some("80"));
        assert_eq!(with_integer(&[]), None);
    }

    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag, contents.len() as u8];
        out.extend_from_slice(contents);
        out
    }

    /// A certificate of bare fields (no version, an empty algorithm and
    /// validity): `serial` a whole TLV, `issuer` and `subject` the
    /// contents of their names.
    fn bare(serial: &[u8], issuer: &[u8], subject: &[u8]) -> Vec<u8> {
        let mut tbs = serial.to_vec();
        tbs.extend(tlv(SEQUENCE, &[]));
        tbs.extend(tlv(SEQUENCE, issuer));
        tbs.extend(tlv(SEQUENCE, &[]));
        tbs.extend(tlv(SEQUENCE, subject));
        tlv(SEQUENCE, &tlv(SEQUENCE, &tbs))
    }

    /// One part of a name: `pair_tag` around an attribute of `oid_tag`.
    fn part(pair_tag: u8, oid_tag: u8, value: &[u8]) -> Vec<u8> {
        let pair = [tlv(oid_tag, &[0x55, 0x04, 0x03]), tlv(UTF8_STRING, value)].concat();
        tlv(SET, &tlv(pair_tag, &pair))
    }

    #[test]
    fn a_name_of_anything_but_attribute_pairs_is_not_read() {
        let serial = tlv(INTEGER, &[0x01]);
        let good = part(SEQUENCE, OID, b"alice");
        let der = bare(&serial, &good, &good);
        assert_eq!(subject(&der).as_deref(), Some("CN=alice"));
        // The pair's sequence, or its type's OID, of another tag.
        for bad in [part(SET, OID, b"bob"), part(SEQUENCE, INTEGER, b"bob")] {
            let der = bare(&serial, &good, &bad);
            assert_eq!(subject(&der), None, "{bad:02x?}");
            assert_eq!(issuer(&der).as_deref(), Some("CN=alice"));
        }
    }

    #[test]
    fn a_certificate_whose_serial_is_no_integer_is_not_read() {
        let good = part(SEQUENCE, OID, b"alice");
        assert_eq!(
            serial(&bare(&tlv(INTEGER, &[0x01]), &good, &good)).as_deref(),
            Some("01")
        );
        let der = bare(&tlv(OID, &[0x01]), &good, &good);
        assert_eq!((serial(&der), subject(&der)), (None, None));
    }

    #[test]
    fn lengths_are_read_in_the_long_form_up_to_four_bytes_and_never_indefinite() {
        let empty: &[u8] = &[];
        assert_eq!(
            next(&[0x04, 0x84, 0, 0, 0, 1, 0xaa, 0xbb]),
            Some((0x04, &[0xaa][..], &[0xbb][..]))
        );
        assert_eq!(next(&[0x04, 0x82, 0, 0]), Some((0x04, empty, empty)));
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([0x5a; 128]);
        assert_eq!(next(&long), Some((0x04, &long[3..], empty)));
        // BER's indefinite length (`0x80`), which DER forbids, followed
        // by as many bytes as a short form of 128 would take.
        let mut indefinite = vec![0x04, 0x80];
        indefinite.extend([0x5a; 128]);
        assert_eq!(next(&indefinite), None);
        assert_eq!(next(&[0x04, 0x85, 0, 0, 0, 0, 1, 0xaa]), None);
        assert_eq!(next(&[0x04, 0x82, 0x01]), None);
        assert_eq!(next(&[0x04, 0x02, 0xaa]), None);
    }

    #[test]
    fn times_are_read_to_the_second_and_fields_out_of_range_refused() {
        let secs = |tag: u8, text: &[u8]| {
            let time = parse_time(tag, text)?;
            Some(time.duration_since(UNIX_EPOCH).ok()?.as_secs())
        };
        // UTCTime's 99 is 1999.
        assert_eq!(secs(UTC_TIME, b"991231235958Z"), Some(946_684_798));
        assert_eq!(
            secs(GENERALIZED_TIME, b"20500101123456Z"),
            Some(2_524_653_296)
        );
        for text in [
            &b"491232000000Z"[..],
            b"491231240000Z",
            b"491231236000Z",
            b"490001000000Z",
        ] {
            assert_eq!(secs(UTC_TIME, text), None, "{}", text.escape_ascii());
        }
    }

    #[test]
    fn an_arc_too_large_for_64_bits_is_written_as_the_largest() {
        let mut oid = vec![0x2b];
        oid.extend([0xff; 10]);
        oid.push(0x01);
        assert_eq!(dotted(&oid), format!("1.3.{}", u64::MAX));
        assert_eq!(dotted(&[]), "?");
    }

    #[test]
    fn a_bmp_string_is_read_as_utf16_and_one_that_is_not_as_its_bytes() {
        assert_eq!(attribute_value(BMP_STRING, &[0x00, 0x61, 0x00, 0xe9]), "aé");
        assert_eq!(attribute_value(BMP_STRING, &[0x00, 0x61, 0x00]), "#006100");
        assert_eq!(attribute_value(BMP_STRING, &[0xd8, 0x00]), "#d800");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_without_panicking(bytes: Vec<u8>) {
            let _ = not_after(&bytes);
            let mut framed = vec![SEQUENCE, 0x82, (bytes.len() >> 8) as u8, bytes.len() as u8];
            framed.extend_from_slice(&bytes);
            let _ = not_after(&framed);
            let _ = subject(&framed);
            let _ = issuer(&framed);
            let _ = serial(&framed);
        }
    }
}
