//! What the proxy tells of the certificate a client showed on `tls_port`
//! (`tls_verify_client`): to its backend (RFC 9440's `Client-Cert`, and
//! the `$ssl_client_*` variables of `request_header.*`) and in the log.
//! Made once per connection, at its handshake, and shared by each of its
//! requests and their log records.

use crate::digits::{hex_pair, is_unreserved, push_hex};
use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use std::time::SystemTime;

#[derive(Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// `Client-Cert`: the certificate as a structured byte sequence (its
    /// DER in base64, between colons).
    pub byte_sequence: Box<str>,
    /// The intermediates the client sent after it, each as a structured
    /// byte sequence, for `Client-Cert-Chain`; `None` for none.
    pub chain: Option<Box<str>>,
    /// Its SHA-1 fingerprint in lower-case hex (`$ssl_client_fingerprint`,
    /// as nginx's).
    pub fingerprint: Box<str>,
    /// Whom it names (`$ssl_client_s_dn`: `CN=alice,O=Example`).
    pub subject: Option<Box<str>>,
    /// Who issued it (`$ssl_client_i_dn`).
    pub issuer: Option<Box<str>>,
    /// Its serial number in upper-case hex (`$ssl_client_serial`).
    pub serial: Option<Box<str>>,
    /// When it becomes valid and stops being so (`$ssl_client_v_start`,
    /// `$ssl_client_v_end`).
    pub validity: Option<(SystemTime, SystemTime)>,
}

impl ClientCertificate {
    /// Of the certificates a client sent, its own first; `None` for none.
    pub fn of(sent: &[CertificateDer<'_>]) -> Option<ClientCertificate> {
        let (own, intermediates) = sent.split_first()?;
        let chain = (!intermediates.is_empty()).then(|| {
            let items: Vec<String> = intermediates.iter().map(|c| byte_sequence(c)).collect();
            items.join(", ").into()
        });
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, own);
        let mut fingerprint = String::new();
        push_hex(&mut fingerprint, digest.as_ref(), false);
        Some(ClientCertificate {
            byte_sequence: byte_sequence(own).into(),
            chain,
            fingerprint: fingerprint.into(),
            subject: super::x509::subject(own).map(Box::from),
            issuer: super::x509::issuer(own).map(Box::from),
            serial: super::x509::serial(own).map(Box::from),
            validity: super::x509::validity(own),
        })
    }

    /// The whole days left of its validity at `now`, as nginx's
    /// `$ssl_client_v_remain`: 0 when less than one is (or none).
    pub fn days_left(&self, now: SystemTime) -> Option<u64> {
        let (_, end) = self.validity?;
        let left = end.duration_since(now).unwrap_or_default().as_secs();
        Some(left / 86_400)
    }

    /// The certificate in PEM, URL-encoded as nginx's
    /// `$ssl_client_escaped_cert`: every byte but letters, digits and
    /// `-._~` as `%XX`, so that the PEM's line ends fit in a field value.
    /// Written where it goes, never made whole first.
    pub fn escaped_pem(&self) -> impl Iterator<Item = u8> + '_ {
        let base64 = self.byte_sequence.trim_matches(':').as_bytes();
        let lines = base64.chunks(64).flat_map(|line| [line, b"\n"]);
        let pem = std::iter::once(&b"-----BEGIN CERTIFICATE-----\n"[..])
            .chain(lines)
            .chain([&b"-----END CERTIFICATE-----\n"[..]]);
        pem.flatten().flat_map(|&b| {
            let [high, low] = hex_pair(b, true);
            let escaped = [b'%', high, low];
            match is_unreserved(b) {
                true => [b, 0, 0].into_iter().take(1),
                false => escaped.into_iter().take(3),
            }
        })
    }
}

/// RFC 8941's byte sequence: base64 between colons.
fn byte_sequence(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 6);
    out.push(':');
    base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut out);
    out.push(':');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_of_a_certificate_are_read_once_and_its_pem_is_escaped_as_nginx_s() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x0b, 0xad]));
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2026, 12, 2);
        let mut name = rcgen::DistinguishedName::new();
        name.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = name;
        let cert = params.self_signed(&key).unwrap();
        let shown = ClientCertificate::of(&[cert.der().clone()]).unwrap();
        assert_eq!(shown.subject.as_deref(), Some("CN=alice"));
        assert_eq!(shown.issuer.as_deref(), Some("CN=alice"));
        assert_eq!(shown.serial.as_deref(), Some("0BAD"));
        let at = |secs: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        assert_eq!(shown.validity, Some((at(1_767_225_600), at(1_796_169_600))));
        // Whole days left, as nginx counts them: none in the last one, nor
        // after the end.
        assert_eq!(
            shown.days_left(at(1_796_169_600 - 10 * 86_400 - 1)),
            Some(10)
        );
        assert_eq!(shown.days_left(at(1_796_169_600 - 10 * 86_400)), Some(10));
        assert_eq!(shown.days_left(at(1_796_169_600 - 86_399)), Some(0));
        assert_eq!(shown.days_left(at(1_796_169_600 + 5)), Some(0));
        let escaped: String = shown.escaped_pem().map(char::from).collect();
        assert!(escaped.starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
        assert!(!escaped.contains(['+', '/', '=', '\n', ' ']), "{escaped}");
        let unescaped = (escaped.split('%').enumerate())
            .map(|(i, part)| match i {
                0 => part.to_string(),
                _ => {
                    let byte = u8::from_str_radix(&part[..2], 16).unwrap();
                    format!("{}{}", char::from(byte), &part[2..])
                }
            })
            .collect::<String>();
        // rcgen's PEM has the same 64-column lines, with `\n` ends.
        assert_eq!(unescaped, cert.pem().replace("\r\n", "\n"));
    }
}
