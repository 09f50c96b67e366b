//! OCSP stapling: a response of the certificate's authority saying it is
//! not revoked (RFC 6960), sent to clients in the handshake (RFC 6066 §8)
//! so that they need not ask the authority themselves, as nginx's
//! `ssl_stapling_file` and HAProxy's `.ocsp` files give it.
//!
//! The response is read here by walking its DER, for what decides whether
//! to staple it: that it is a successful basic response, about this
//! certificate (its serial, and its issuer's name and key hashed as the
//! response says), `good`, and within its `thisUpdate`..`nextUpdate`. Its
//! signature is the client's to check, as it checks the certificate's: a
//! forged response gains nobody anything a client would take.

use super::x509::{self, next, parse_time};
use crate::http::date::format_certificate_date;
use ring::digest;
use std::fmt;
use std::time::{Duration, SystemTime};

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const ENUMERATED: u8 = 0x0a;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT`: `responseBytes`, a version, `nextUpdate`.
const EXPLICIT_0: u8 = 0xa0;
/// `certStatus`: `good [0] IMPLICIT NULL`, `revoked [1] IMPLICIT
/// RevokedInfo`, `unknown [2] IMPLICIT NULL`.
const GOOD: u8 = 0x80;
const REVOKED: u8 = 0xa1;
const UNKNOWN: u8 = 0x82;

/// `id-pkix-ocsp-basic`, 1.3.6.1.5.5.7.48.1.1.
const BASIC: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];

/// How far ahead of this machine's clock a response may say it was
/// made: the responder's clock and ours differ a little.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// The most of a response file read: one is a few kilobytes (more with
/// the responder's certificates in it), and TLS 1.3 carries it in an
/// extension of at most 64 KiB with the certificate's other extensions.
pub const MAX_RESPONSE: u64 = 16 * 1024;

/// Why a response is not stapled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcspError {
    #[error("not an OCSP response (DER, as `openssl ocsp -respout` writes it): {0}")]
    Malformed(&'static str),
    #[error("the responder refused the request (responseStatus {0}: {name})", name = unsuccessful(*.0))]
    Unsuccessful(u8),
    #[error("not a basic OCSP response (id-pkix-ocsp-basic)")]
    NotBasic,
    #[error("it is about another certificate (no response for this one's serial and issuer)")]
    OtherCertificate,
    #[error("it says the certificate is revoked")]
    Revoked,
    #[error("the responder does not know the certificate (status unknown)")]
    Unknown,
    #[error("it was made in the future ({}): this machine's clock is behind", format_certificate_date(*.0))]
    NotYetValid(SystemTime),
    #[error("it is out of date since {} (its nextUpdate): fetch a new one", format_certificate_date(*.0))]
    Expired(SystemTime),
}

impl OcspError {
    /// Whether the file is not what was meant (not a response, or about
    /// another certificate), rather than a response that is not good now.
    pub fn is_a_mistake(&self) -> bool {
        matches!(
            self,
            OcspError::Malformed(_) | OcspError::NotBasic | OcspError::OtherCertificate
        )
    }
}

fn unsuccessful(status: u8) -> &'static str {
    match status {
        1 => "malformedRequest",
        2 => "internalError",
        3 => "tryLater",
        5 => "sigRequired",
        6 => "unauthorized",
        _ => "unknown",
    }
}

/// What a response that may be stapled says of its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Good {
    pub this_update: SystemTime,
    /// When a newer response is due, and this one stops being stapled;
    /// `None`: the responder did not say (RFC 6960 §2.4: newer
    /// information is always available), stapled until replaced.
    pub next_update: Option<SystemTime>,
}

impl fmt::Display for Good {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.next_update {
            Some(next) => write!(f, "good until {}", format_certificate_date(next)),
            None => write!(f, "good, with no nextUpdate"),
        }
    }
}

/// Whether `response` may be stapled with `leaf` at `now`: a successful
/// basic response with a `good` status for it, in its time. `issuer`,
/// the certificate that signed `leaf` when the chain has it, has its key
/// checked against the response's too.
pub fn check(
    response: &[u8],
    leaf: &[u8],
    issuer: Option<&[u8]>,
    now: SystemTime,
) -> Result<Good, OcspError> {
    use OcspError::Malformed;
    let leaf = x509::tbs_fields(leaf).ok_or(Malformed("the certificate cannot be read"))?;
    let issuer_key = issuer
        .and_then(x509::tbs_fields)
        .filter(|issuer| issuer.subject_whole == leaf.issuer_whole)
        .map(|issuer| issuer.public_key);
    let mut unreadable = false;
    let single = basic_responses(response)?
        .filter_map(|single| {
            unreadable |= single.is_none();
            single
        })
        .find(|single| single.about(&leaf, issuer_key));
    let single = match single {
        Some(single) => single,
        None if unreadable => return Err(Malformed("a SingleResponse that cannot be read")),
        None => return Err(OcspError::OtherCertificate),
    };
    match single.status {
        GOOD => {}
        REVOKED => return Err(OcspError::Revoked),
        UNKNOWN => return Err(OcspError::Unknown),
        _ => return Err(Malformed("a status neither good, revoked nor unknown")),
    }
    if single.this_update > now + CLOCK_SKEW {
        return Err(OcspError::NotYetValid(single.this_update));
    }
    if let Some(next) = single.next_update.filter(|&next| next <= now) {
        return Err(OcspError::Expired(next));
    }
    Ok(Good {
        this_update: single.this_update,
        next_update: single.next_update,
    })
}

/// One `SingleResponse`, as far as it is read.
struct Single<'a> {
    hash: Option<&'static digest::Algorithm>,
    issuer_name_hash: &'a [u8],
    issuer_key_hash: &'a [u8],
    serial: &'a [u8],
    /// `certStatus`'s tag.
    status: u8,
    this_update: SystemTime,
    next_update: Option<SystemTime>,
}

impl Single<'_> {
    /// Whether it speaks of `leaf`: its serial, and the hashes of its
    /// issuer's name and (when known) key. A hash this build does not
    /// know speaks of nothing.
    fn about(&self, leaf: &x509::TbsFields<'_>, issuer_key: Option<&[u8]>) -> bool {
        let Some(hash) = self.hash else {
            return false;
        };
        let hashed = |bytes: &[u8]| digest::digest(hash, bytes);
        self.serial == leaf.serial
            && hashed(leaf.issuer_whole).as_ref() == self.issuer_name_hash
            && issuer_key.is_none_or(|key| hashed(key).as_ref() == self.issuer_key_hash)
    }
}

/// The `SingleResponse`s of a DER `OCSPResponse`, each `None` when it
/// cannot be read; an error when the response is not a successful basic
/// one.
fn basic_responses(response: &[u8]) -> Result<impl Iterator<Item = Option<Single<'_>>>, OcspError> {
    use OcspError::Malformed;
    let (SEQUENCE, outer, _) = next(response).ok_or(Malformed("not DER"))? else {
        return Err(Malformed("not a SEQUENCE"));
    };
    let (ENUMERATED, status, rest) = next(outer).ok_or(Malformed("no responseStatus"))? else {
        return Err(Malformed("no responseStatus"));
    };
    match status {
        [0] => {}
        [n] => return Err(OcspError::Unsuccessful(*n)),
        _ => return Err(Malformed("a responseStatus of more than a byte")),
    }
    let bytes = match next(rest) {
        Some((EXPLICIT_0, bytes, _)) => bytes,
        _ => return Err(Malformed("a successful response without responseBytes")),
    };
    let (SEQUENCE, bytes, _) = next(bytes).ok_or(Malformed("bad responseBytes"))? else {
        return Err(Malformed("bad responseBytes"));
    };
    let (OID, kind, rest) = next(bytes).ok_or(Malformed("no responseType"))? else {
        return Err(Malformed("no responseType"));
    };
    if kind != BASIC {
        return Err(OcspError::NotBasic);
    }
    let (OCTET_STRING, basic, _) = next(rest).ok_or(Malformed("no response"))? else {
        return Err(Malformed("no response"));
    };
    let responses = responses(basic).ok_or(Malformed("a BasicOCSPResponse that cannot be read"))?;
    Ok(Sequence(responses).map(single))
}

/// The contents of `responses` in a `BasicOCSPResponse`.
fn responses(basic: &[u8]) -> Option<&[u8]> {
    let (SEQUENCE, basic, _) = next(basic)? else {
        return None;
    };
    let (SEQUENCE, mut data, _) = next(basic)? else {
        return None;
    };
    // `version [0] EXPLICIT DEFAULT v1`, then `responderID` (`[1]` by
    // name, `[2]` by key hash), then `producedAt`.
    let (tag, _, rest) = next(data)?;
    if tag == EXPLICIT_0 {
        data = rest;
    }
    let (_, _, rest) = next(data)?;
    let (GENERALIZED_TIME, _, rest) = next(rest)? else {
        return None;
    };
    match next(rest)? {
        (SEQUENCE, responses, _) => Some(responses),
        _ => None,
    }
}

/// The TLVs one after the other in a SEQUENCE's contents.
struct Sequence<'a>(&'a [u8]);

impl<'a> Iterator for Sequence<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (tag, contents, rest) = next(self.0)?;
        self.0 = rest;
        Some((tag, contents))
    }
}

fn single((tag, contents): (u8, &[u8])) -> Option<Single<'_>> {
    if tag != SEQUENCE {
        return None;
    }
    let (SEQUENCE, id, rest) = next(contents)? else {
        return None;
    };
    let (status, _, rest) = next(rest)?;
    let (this_tag, this_update, rest) = next(rest)?;
    let next_update = match next(rest) {
        Some((EXPLICIT_0, next_update, _)) => {
            let (tag, time, _) = next(next_update)?;
            Some(parse_time(tag, time)?)
        }
        _ => None,
    };
    let (SEQUENCE, algorithm, rest) = next(id)? else {
        return None;
    };
    let (OCTET_STRING, issuer_name_hash, rest) = next(rest)? else {
        return None;
    };
    let (OCTET_STRING, issuer_key_hash, rest) = next(rest)? else {
        return None;
    };
    let (INTEGER, serial, _) = next(rest)? else {
        return None;
    };
    let (OID, algorithm, _) = next(algorithm)? else {
        return None;
    };
    Some(Single {
        hash: hash_named(algorithm),
        issuer_name_hash,
        issuer_key_hash,
        serial,
        status,
        this_update: parse_time(this_tag, this_update)?,
        next_update,
    })
}

/// SHA-1 (what responders use), and the SHA-2 family.
fn hash_named(oid: &[u8]) -> Option<&'static digest::Algorithm> {
    const SHA2: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
    match oid {
        [0x2b, 0x0e, 0x03, 0x02, 0x1a] => Some(&digest::SHA1_FOR_LEGACY_USE_ONLY),
        [prefix @ .., 1] if prefix == SHA2 => Some(&digest::SHA256),
        [prefix @ .., 2] if prefix == SHA2 => Some(&digest::SHA384),
        [prefix @ .., 3] if prefix == SHA2 => Some(&digest::SHA512),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_successful_basic_response_says_so() {
        let leaf = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let leaf = leaf.cert.der();
        let now = SystemTime::now();
        let said = |bytes: &[u8]| check(bytes, leaf, None, now).unwrap_err();
        assert!(matches!(said(b""), OcspError::Malformed(_)));
        assert!(matches!(said(b"\x04\x00"), OcspError::Malformed(_)));
        // `OCSPResponse { tryLater }`, as a busy responder answers.
        assert_eq!(said(b"\x30\x03\x0a\x01\x03"), OcspError::Unsuccessful(3));
        assert!(said(b"\x30\x03\x0a\x01\x03")
            .to_string()
            .contains("tryLater"));
        // Successful, but with nothing in it.
        assert!(matches!(
            said(b"\x30\x03\x0a\x01\x00"),
            OcspError::Malformed(_)
        ));
        // Another kind of response (id-pkix-ocsp-nonce's OID, say).
        let other = b"\x30\x13\x0a\x01\x00\xa0\x0e\x30\x0c\x06\x09\x2b\x06\x01\x05\x05\x07\x30\x01\x02\x04\x00";
        assert_eq!(said(other), OcspError::NotBasic);
    }

    #[test]
    fn the_hashes_a_responder_uses_are_known_and_others_are_not() {
        assert!(hash_named(&[0x2b, 0x0e, 0x03, 0x02, 0x1a]).is_some());
        let sha2 = |n: u8| hash_named(&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, n]);
        assert_eq!(sha2(1).map(|a| a.output_len()), Some(32));
        assert_eq!(sha2(2).map(|a| a.output_len()), Some(48));
        assert_eq!(sha2(3).map(|a| a.output_len()), Some(64));
        assert!(sha2(4).is_none() && hash_named(&[0x2b]).is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_without_panicking(bytes: Vec<u8>) {
            let leaf = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
            let _ = check(&bytes, leaf.cert.der(), Some(leaf.cert.der()), SystemTime::now());
        }
    }
}
