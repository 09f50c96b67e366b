//! OCSP responses (RFC 6960) written in DER by hand, as the test CA's
//! responder would answer about a leaf: for `ocsp=` files and the
//! `.ocsp` beside a certificate. The signature is left empty: neither the
//! proxy nor rustls's clients check it.

use super::pki::{Ca, Leaf};
use std::time::SystemTime;

/// What a response says of the certificate.
#[derive(Clone, Copy)]
pub enum Status {
    Good,
    Revoked,
    Unknown,
}

/// A successful basic response of `ca`'s about `leaf`, with CertID hashes
/// made with SHA-1 (what responders use), `status`, made at
/// `this_update`, due again at `next_update`.
pub fn response(
    ca: &Ca,
    leaf: &Leaf,
    status: Status,
    this_update: SystemTime,
    next_update: Option<SystemTime>,
) -> Vec<u8> {
    let (serial, issuer_name) = serial_and_issuer(&leaf.der);
    let sha1 = |bytes: &[u8]| {
        ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes)
            .as_ref()
            .to_vec()
    };
    let cert_id = seq(&[
        seq(&[tlv(0x06, &[0x2b, 0x0e, 0x03, 0x02, 0x1a]), tlv(0x05, &[])]),
        tlv(0x04, &sha1(issuer_name)),
        tlv(0x04, &sha1(public_key(&ca.der))),
        tlv(0x02, serial),
    ]);
    let status = match status {
        Status::Good => tlv(0x80, &[]),
        Status::Revoked => tlv(0xa1, &time(this_update)),
        Status::Unknown => tlv(0x82, &[]),
    };
    let mut single = vec![cert_id, status, time(this_update)];
    if let Some(next) = next_update {
        single.push(tlv(0xa0, &time(next)));
    }
    let data = seq(&[
        tlv(0xa2, &tlv(0x04, &[0; 20])), // responderID byKey
        time(this_update),               // producedAt
        seq(&[seq(&single)]),
    ]);
    let ecdsa_with_sha256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    let basic = seq(&[data, seq(&[tlv(0x06, &ecdsa_with_sha256)]), tlv(0x03, &[0])]);
    let basic_oid = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];
    seq(&[
        tlv(0x0a, &[0]), // successful
        tlv(0xa0, &seq(&[tlv(0x06, &basic_oid), tlv(0x04, &basic)])),
    ])
}

fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// GeneralizedTime, `YYYYMMDDHHMMSSZ`.
fn time(t: SystemTime) -> Vec<u8> {
    // `2026-12-05T20:37:44.097Z`: to the second.
    let rfc3339 = inverso::http::date::format_rfc3339(t);
    let mut text: String = (rfc3339[..19].chars())
        .filter(char::is_ascii_digit)
        .collect();
    text.push('Z');
    tlv(0x18, text.as_bytes())
}

/// The first TLV of `der`: its tag, its contents, and the bytes after
/// it (short and long lengths; the test's own certificates).
fn read(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let (tag, first) = (der[0], der[1]);
    let (len, at) = match first {
        n if n < 0x80 => (usize::from(n), 2),
        n => {
            let count = usize::from(n & 0x7f);
            let len = (der[2..2 + count].iter()).fold(0, |len, &b| (len << 8) | usize::from(b));
            (len, 2 + count)
        }
    };
    (tag, &der[at..at + len], &der[at + len..])
}

/// The fields of a certificate's TBSCertificate, version first left out.
fn tbs(certificate: &[u8]) -> &[u8] {
    let (_, certificate, _) = read(certificate);
    let (_, tbs, _) = read(certificate);
    match read(tbs) {
        (0xa0, _, rest) => rest,
        _ => tbs,
    }
}

/// A certificate's serial number's contents, and its issuer's name whole.
fn serial_and_issuer(certificate: &[u8]) -> (&[u8], &[u8]) {
    let (_, serial, rest) = read(tbs(certificate));
    let (_, _, rest) = read(rest); // the signature's algorithm
    let (_, _, after) = read(rest);
    (serial, &rest[..rest.len() - after.len()])
}

/// A certificate's public key's bits.
fn public_key(certificate: &[u8]) -> &[u8] {
    let mut rest = tbs(certificate);
    for _ in 0..5 {
        // serial, signature, issuer, validity, subject
        rest = read(rest).2;
    }
    let (_, info, _) = read(rest);
    let (_, _, info) = read(info); // the algorithm
    let (_, bits, _) = read(info);
    &bits[1..]
}
