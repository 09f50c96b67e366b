//! The TLVs (type, length, value) after a version 2 PROXY header's
//! addresses, as nginx's `$proxy_protocol_tlv_<name>` reads them: an AWS
//! PrivateLink endpoint's ID (`0xea`), the ALPN or the TLS details a
//! balancer in front tells of.

use std::borrow::Cow;

/// What a `$proxy_protocol_tlv_<name>` names, by nginx's names or by
/// number: a TLV, a sub-TLV of the SSL one (`ssl_<name>`), or the SSL
/// one's `verify` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlvName {
    Top(u8),
    Ssl(u8),
    SslVerify,
}

/// The SSL TLV's type (`PP2_TYPE_SSL`), whose value is the client's bits
/// (1 byte), `verify` (4), then sub-TLVs.
const SSL: u8 = 0x20;
const SSL_FIXED: usize = 5;

/// nginx's names of the TLVs, and of the SSL TLV's sub-TLVs.
const TOP_NAMES: [(&str, u8); 5] = [
    ("alpn", 0x01),
    ("authority", 0x02),
    ("unique_id", 0x05),
    ("ssl", SSL),
    ("netns", 0x30),
];
const SSL_NAMES: [(&str, u8); 5] = [
    ("version", 0x21),
    ("cn", 0x22),
    ("cipher", 0x23),
    ("sig_alg", 0x24),
    ("key_alg", 0x25),
];

impl TlvName {
    /// `name` as written after `$proxy_protocol_tlv_`, in lower case:
    /// `alpn`, `0xea`, `ssl_version`, `ssl_0x21`, `ssl_verify`.
    pub fn parse(name: &str) -> Result<TlvName, String> {
        let unknown = || {
            format!(
                "`$proxy_protocol_tlv_{name}`: not a TLV's name (alpn, authority, unique_id, \
                 ssl, netns, ssl_version, ssl_cn, ssl_cipher, ssl_sig_alg, ssl_key_alg, \
                 ssl_verify) nor a number written 0x00 to 0xff"
            )
        };
        let by = |names: &[(&str, u8)], name: &str| {
            (names
                .iter()
                .find(|(known, _)| *known == name)
                .map(|&(_, t)| t))
            .or_else(|| number(name))
        };
        if name == "ssl_verify" {
            return Ok(TlvName::SslVerify);
        }
        if let Some(t) = by(&TOP_NAMES, name) {
            return Ok(TlvName::Top(t));
        }
        (name.strip_prefix("ssl_"))
            .and_then(|sub| by(&SSL_NAMES, sub))
            .map(TlvName::Ssl)
            .ok_or_else(unknown)
    }
}

/// `0x` and one or two hex digits.
fn number(name: &str) -> Option<u8> {
    let digits = name.strip_prefix("0x")?;
    let hex = (1..=2).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| u8::from_str_radix(digits, 16).ok()).flatten()
}

/// Each TLV of `tlvs` in turn: its type and value. One that does not fit
/// ends the walk: the header's parse refuses such a TLV, but not such a
/// sub-TLV of the SSL one, which is read only here (as nginx reads it).
pub fn each(mut tlvs: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let [kind, high, low, ref rest @ ..] = *tlvs else {
            return None;
        };
        let value = rest.get(..usize::from(u16::from_be_bytes([high, low])))?;
        tlvs = &rest[value.len()..];
        Some((kind, value))
    })
}

/// The value `name` names among `tlvs` (the first of its type): its
/// bytes, or `verify` as a decimal number, as nginx gives it.
pub fn value(tlvs: &[u8], name: TlvName) -> Option<Cow<'_, [u8]>> {
    let of = |tlvs, wanted| each(tlvs).find(|&(kind, _)| kind == wanted).map(|(_, v)| v);
    match name {
        TlvName::Top(kind) => of(tlvs, kind).map(Cow::Borrowed),
        TlvName::Ssl(kind) => of(tlvs, SSL)
            .and_then(|ssl| ssl.get(SSL_FIXED..))
            .and_then(|subs| of(subs, kind))
            .map(Cow::Borrowed),
        TlvName::SslVerify => {
            let ssl = of(tlvs, SSL)?;
            let verify = u32::from_be_bytes(ssl.get(1..SSL_FIXED)?.try_into().ok()?);
            Some(Cow::Owned(verify.to_string().into_bytes()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_nginxs_or_numbers() {
        use TlvName::{Ssl, SslVerify, Top};
        for (name, named) in [
            ("alpn", Top(0x01)),
            ("authority", Top(0x02)),
            ("unique_id", Top(0x05)),
            ("ssl", Top(0x20)),
            ("netns", Top(0x30)),
            ("0xea", Top(0xea)),
            ("0x1", Top(0x01)),
            ("ssl_version", Ssl(0x21)),
            ("ssl_cn", Ssl(0x22)),
            ("ssl_cipher", Ssl(0x23)),
            ("ssl_sig_alg", Ssl(0x24)),
            ("ssl_key_alg", Ssl(0x25)),
            ("ssl_0x21", Ssl(0x21)),
            ("ssl_verify", SslVerify),
        ] {
            assert_eq!(TlvName::parse(name), Ok(named), "{name}");
        }
        for bad in [
            "", "0x", "0x100", "0xg1", "ea", "ssl_", "ssl_alpn", "ssl_ssl", "x0ea", "0x+1",
        ] {
            let e = TlvName::parse(bad).unwrap_err();
            assert!(e.contains("0x00 to 0xff"), "{bad}: {e}");
        }
    }

    /// A TLV of `kind` holding `value`.
    fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn values_are_found_by_type_and_within_the_ssl_one() {
        let mut ssl = vec![0x01, 0, 0, 0, 7];
        ssl.extend(tlv(0x21, b"TLSv1.3"));
        ssl.extend(tlv(0x22, b"client.example"));
        let tlvs = [
            tlv(0x01, b"h2"),
            tlv(0xea, b"\x01vpce-0123"),
            tlv(SSL, &ssl),
            tlv(0x01, b"second"),
        ]
        .concat();
        let named =
            |name: &str| value(&tlvs, TlvName::parse(name).unwrap()).map(|v| v.into_owned());
        assert_eq!(
            named("alpn").as_deref(),
            Some(&b"h2"[..]),
            "the first of its type"
        );
        assert_eq!(named("0xea").as_deref(), Some(&b"\x01vpce-0123"[..]));
        assert_eq!(named("ssl_version").as_deref(), Some(&b"TLSv1.3"[..]));
        assert_eq!(named("ssl_0x22").as_deref(), Some(&b"client.example"[..]));
        assert_eq!(named("ssl_verify").as_deref(), Some(&b"7"[..]));
        assert_eq!(named("ssl").as_deref(), Some(&ssl[..]));
        assert_eq!(named("authority"), None);
        assert_eq!(named("ssl_cipher"), None);
        assert_eq!(value(&[], TlvName::SslVerify), None);
        // An SSL TLV too short for its verify field names none.
        let short = tlv(SSL, &[0x01, 0, 0]);
        assert_eq!(value(&short, TlvName::SslVerify), None);
        // A sub-TLV longer than the SSL one's value ends the walk there.
        let cut = tlv(SSL, &[0x01, 0, 0, 0, 0, 0x22, 0, 1, b'x', 0x21, 0, 9, b'x']);
        assert_eq!(value(&cut, TlvName::Ssl(0x22)).as_deref(), Some(&b"x"[..]));
        assert_eq!(value(&cut, TlvName::Ssl(0x21)), None);
    }
}
