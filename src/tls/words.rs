//! Why a TLS handshake failed, in words an operator reads in the log:
//! rustls's `Display` of a refused certificate falls back to its `Debug`
//! (`invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`),
//! where nginx says `upstream SSL certificate verify error:
//! (10:certificate has expired)`. The detail the error carries (the name
//! asked and the names the certificate holds, the end of its validity)
//! is kept.

use rustls::{CertificateError, Error};
use std::fmt::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

/// `error` in words: a refused certificate as [`Refused`] says it,
/// anything else as rustls does.
pub struct Said<'a>(pub &'a Error);

impl fmt::Display for Said<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Error::InvalidCertificate(why) => {
                write!(f, "certificate refused: {}", Refused(why))
            }
            Error::NoCertificatesPresented => f.write_str("no certificate presented"),
            other => write!(f, "{other}"),
        }
    }
}

/// Why a certificate was refused.
pub struct Refused<'a>(pub &'a CertificateError);

impl fmt::Display for Refused<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CertificateError as E;
        match self.0 {
            E::UnknownIssuer => f.write_str(
                "not issued by a trusted authority (unknown issuer, or an intermediate \
                 certificate missing from the chain sent)",
            ),
            E::NotValidForName => f.write_str("not valid for the name asked"),
            E::NotValidForNameContext {
                expected,
                presented,
            } => {
                write!(f, "not valid for {}: ", expected.to_str())?;
                match presented.as_slice() {
                    [] => f.write_str("it names no host or address (no subjectAltName)"),
                    names => {
                        let names: Vec<String> = names.iter().map(|n| name(n)).collect();
                        write!(f, "it is for {}", names.join(", "))
                    }
                }
            }
            E::Expired => f.write_str("expired"),
            E::ExpiredContext { time, not_after } => {
                let (end, now) = (at(not_after.as_secs()), time.as_secs());
                write!(f, "expired at {end}, ")?;
                ago(f, now.saturating_sub(not_after.as_secs()))
            }
            E::NotValidYet => f.write_str("not valid yet (is a clock wrong?)"),
            E::NotValidYetContext { time, not_before } => {
                let start = at(not_before.as_secs());
                let early = not_before.as_secs().saturating_sub(time.as_secs());
                write!(f, "not valid until {start}, ")?;
                in_time(f, early)?;
                f.write_str(" (is a clock wrong?)")
            }
            E::Revoked => f.write_str("revoked"),
            E::BadSignature => f.write_str(
                "its signature does not match the key of the authority it names as issuer \
                 (another authority of that name signed it?)",
            ),
            E::BadEncoding => f.write_str("malformed (not DER that X.509 can read)"),
            #[allow(deprecated)]
            E::UnsupportedSignatureAlgorithm
            | E::UnsupportedSignatureAlgorithmContext { .. }
            | E::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                f.write_str("signed with an algorithm not supported")
            }
            E::UnhandledCriticalExtension => f.write_str("it has a critical extension not known"),
            E::UnknownRevocationStatus => {
                f.write_str("its revocation status is unknown (no revocation list of its issuer)")
            }
            E::ExpiredRevocationList => f.write_str("the revocation list has expired"),
            E::ExpiredRevocationListContext { next_update, .. } => write!(
                f,
                "the revocation list has expired (its next update was due at {})",
                at(next_update.as_secs())
            ),
            E::InvalidPurpose => f.write_str("not for this use (its extended key usage)"),
            E::InvalidPurposeContext { required, .. } => {
                write!(f, "not for {required} (its extended key usage)")
            }
            E::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
                Some(webpki) => pki(f, webpki),
                None => write!(f, "{}", other.0),
            },
            // Newer ones, and those no verifier of ours returns.
            other => write!(f, "{other}"),
        }
    }
}

/// A name a certificate holds, as webpki writes it (`DnsName("a.test")`,
/// `IpAddress(10.0.0.5)`), as a host or an address is written; made safe
/// for the log (the certificate is the peer's).
fn name(presented: &str) -> String {
    let bare = (presented.strip_prefix("DnsName(\""))
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| (presented.strip_prefix("IpAddress(")).and_then(|n| n.strip_suffix(')')))
        .unwrap_or(presented);
    crate::config::printable(bare)
}

/// The errors of webpki that rustls passes on as they are.
fn pki(f: &mut fmt::Formatter<'_>, error: &webpki::Error) -> fmt::Result {
    use webpki::Error as E;
    let words = match error {
        E::CaUsedAsEndEntity => "it is an authority's (CA:TRUE), not one for a host or a client",
        E::EndEntityUsedAsCa => "the chain sent has a certificate that is no authority's as issuer",
        E::NameConstraintViolation => "its names are outside what its issuer may certify",
        E::PathLenConstraintViolated => "the chain is longer than an authority's pathlen allows",
        E::MaximumPathDepthExceeded => "the chain is too long",
        #[allow(deprecated)]
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => {
            "not for this use (its extended key usage)"
        }
        E::UnsupportedCertVersion => "not an X.509 v3 certificate",
        E::CertDistrusted => "distrusted",
        E::InvalidCertValidity => "its validity period is malformed",
        other => return write!(f, "{other:?}"),
    };
    f.write_str(words)
}

/// A Unix time in seconds as an RFC 3339 UTC date, to the second.
fn at(secs: u64) -> String {
    let mut date = crate::http::date::format_rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
    // Certificates say times to the second.
    if let Some(stem) = date.strip_suffix(".000Z") {
        date = format!("{stem}Z");
    }
    date
}

/// `secs` as "N days ago", or seconds when less than a day.
fn ago(f: &mut fmt::Formatter<'_>, secs: u64) -> fmt::Result {
    span(f, secs)?;
    f.write_str(" ago")
}

/// `secs` as "in N days", or seconds when less than a day.
fn in_time(f: &mut fmt::Formatter<'_>, secs: u64) -> fmt::Result {
    f.write_str("in ")?;
    span(f, secs)
}

fn span(f: &mut fmt::Formatter<'_>, secs: u64) -> fmt::Result {
    match secs / 86_400 {
        0 => write!(f, "{secs} s"),
        1 => f.write_str("1 day"),
        days => write!(f, "{days} days"),
    }
}

/// [`Said`] as a `String`, with "TLS handshake: " before it.
pub fn handshake_failure(error: &Error) -> String {
    let mut text = String::from("TLS handshake: ");
    let _ = write!(text, "{}", Said(error));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::OtherError;
    use rustls_pki_types::{ServerName, UnixTime};
    use std::sync::Arc;
    use std::time::SystemTime;

    fn now_secs() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn said(error: impl Into<Error>) -> String {
        Said(&error.into()).to_string()
    }

    #[test]
    fn a_name_refused_says_the_name_asked_and_the_names_held() {
        let error = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("app.internal").unwrap(),
            presented: vec![
                r#"DnsName("backend.test")"#.into(),
                r#"DnsName("*.example.com")"#.into(),
                "IpAddress(10.0.0.5)".into(),
                "DirectoryName".into(),
                "DnsName(\"evil\nline\")".into(),
            ],
        };
        assert_eq!(
            said(error),
            "certificate refused: not valid for app.internal: it is for backend.test, \
             *.example.com, 10.0.0.5, DirectoryName, evil\\nline"
        );
        let error = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("10.0.0.5").unwrap(),
            presented: vec![],
        };
        assert!(said(error)
            .ends_with("not valid for 10.0.0.5: it names no host or address (no subjectAltName)"));
    }

    #[test]
    fn an_expired_certificate_says_when_it_expired() {
        let now = now_secs();
        let error = CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(now)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(
                1_767_225_600, // 2026-01-01T00:00:00Z
            )),
        };
        let text = said(error);
        assert!(
            text.starts_with("certificate refused: expired at 2026-01-01T00:00:00Z, "),
            "{text}"
        );
        assert!(text.ends_with(" ago"), "{text}");
        let error = CertificateError::NotValidYetContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(100)),
            not_before: UnixTime::since_unix_epoch(Duration::from_secs(100 + 3 * 86_400)),
        };
        assert_eq!(
            said(error),
            "certificate refused: not valid until 1970-01-04T00:01:40Z, in 3 days (is a clock wrong?)"
        );
    }

    #[test]
    fn webpki_s_own_errors_are_said_in_words_not_debug_text() {
        let error = CertificateError::Other(OtherError(Arc::new(webpki::Error::CaUsedAsEndEntity)));
        let text = said(error);
        assert_eq!(
            text,
            "certificate refused: it is an authority's (CA:TRUE), not one for a host or a client"
        );
        assert!(!text.contains("OtherError"), "{text}");
    }

    #[test]
    fn no_refusal_is_said_as_debug_text() {
        #[allow(deprecated)]
        let errors = [
            CertificateError::UnknownIssuer,
            CertificateError::NotValidForName,
            CertificateError::Expired,
            CertificateError::NotValidYet,
            CertificateError::Revoked,
            CertificateError::BadSignature,
            CertificateError::BadEncoding,
            CertificateError::UnsupportedSignatureAlgorithm,
            CertificateError::UnknownRevocationStatus,
            CertificateError::InvalidPurpose,
        ];
        for error in errors {
            let debug = format!("{error:?}");
            let text = said(error);
            assert!(text.starts_with("certificate refused: "), "{text}");
            assert!(!text.contains(&debug), "{text}");
        }
        assert_eq!(
            said(Error::NoCertificatesPresented),
            "no certificate presented"
        );
        // Anything else as rustls says it.
        assert_eq!(said(Error::DecryptError), Error::DecryptError.to_string());
    }
}
