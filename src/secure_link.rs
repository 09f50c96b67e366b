//! Secure links (nginx's `secure_link` and `secure_link_md5`): a pool's
//! URLs are served only to a request that carries a hash of what the
//! application signed (the path, an expiry time, the client's address,
//! a secret), so that a download link handed to one user cannot be made
//! up for another file, passed to another address, or used after it
//! expires.
//!
//! `secure_link` renders to `<hash>[,<expires>]` (`$arg_md5,$arg_expires`):
//! the hash is the MD5 of `secure_link_md5` rendered, in base64url
//! without padding, and `expires` a time in seconds since 1970, which
//! `secure_link_md5` names as `$secure_link_expires`. A link without a
//! matching hash is refused 403; one whose hash matches but whose time
//! has passed, 410, as nginx's configurations answer.

use crate::config::FieldFamily;
use crate::field_value::{Facts, FieldValue};
use base64::Engine as _;
use md5::{Digest as _, Md5};
use std::time::{SystemTime, UNIX_EPOCH};

/// The name the hash's text gives the expiry time.
const EXPIRES: &str = "secure_link_expires";

/// The longest hash read: 16 bytes in base64url, padded.
const MAX_HASH_TEXT: usize = 24;

/// `secure_link_md5`, cut at each `$secure_link_expires`: what is hashed
/// is these pieces with the expiry time between them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedText(Vec<FieldValue>);

/// Whether a request may have what it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// No hash, or not the one its URL should have: 403.
    Forged,
    /// The hash is right, its time has passed: 410.
    Expired,
}

impl SignedText {
    pub fn parse(text: &str) -> Result<SignedText, String> {
        (cut_at_expires(text).iter())
            .map(|piece| FieldValue::parse(piece, FieldFamily::Request))
            .collect::<Result<Vec<_>, _>>()
            .map(SignedText)
    }

    /// As written.
    pub fn source(&self) -> String {
        let pieces: Vec<&str> = self.0.iter().map(FieldValue::source).collect();
        pieces.join(&format!("${EXPIRES}"))
    }
}

/// Checks the request `facts` tells of at `now`: `given` is
/// `secure_link`'s value, `signed` `secure_link_md5`'s.
pub fn check(
    given: &FieldValue,
    signed: &SignedText,
    facts: &Facts<'_>,
    now: SystemTime,
) -> Verdict {
    let mut given_text = Vec::new();
    given.render(facts, &mut given_text);
    let (hash, expires_text) = match given_text.iter().position(|&b| b == b',') {
        Some(comma) => (&given_text[..comma], Some(&given_text[comma + 1..])),
        None => (&given_text[..], None),
    };
    let expires = match expires_text.map(seconds) {
        None => None,
        Some(Some(seconds)) => Some(seconds),
        // nginx's too: an expiry time that is no time is no link.
        Some(None) => return Verdict::Forged,
    };
    let Some(hash) = decode_hash(hash) else {
        return Verdict::Forged;
    };
    let mut text = Vec::new();
    for (i, piece) in signed.0.iter().enumerate() {
        if i > 0 {
            text.extend_from_slice(expires_text.unwrap_or_default());
        }
        piece.render_raw(facts, &mut text);
    }
    let expected: [u8; 16] = Md5::digest(&text).into();
    if !same(&hash, &expected) {
        return Verdict::Forged;
    }
    // Told only to whoever holds the right hash, as nginx's `0`.
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match expires {
        Some(at) if at < now => Verdict::Expired,
        _ => Verdict::Valid,
    }
}

/// `text` cut at each `$secure_link_expires` (or `${secure_link_expires}`).
fn cut_at_expires(text: &str) -> Vec<String> {
    let braced = format!("{{{EXPIRES}}}");
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        piece.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let bare = (after.strip_prefix(EXPIRES))
            .filter(|tail| !tail.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
        match after.strip_prefix(&braced).or(bare) {
            Some(tail) => {
                pieces.push(std::mem::take(&mut piece));
                rest = tail;
            }
            // Another variable, or `$$`: the pieces parse it.
            None => {
                let kept = if after.starts_with('$') { 2 } else { 1 };
                piece.push_str(&rest[at..at + kept]);
                rest = &rest[at + kept..];
            }
        }
    }
    piece.push_str(rest);
    pieces.push(piece);
    pieces
}

/// An expiry time: seconds since 1970, a positive number.
fn seconds(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text)
        .ok()?
        .parse()
        .ok()
        .filter(|&s| s > 0)
}

/// The 16 bytes of an MD5 in base64url, with or without padding.
fn decode_hash(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() > MAX_HASH_TEXT {
        return None;
    }
    let bytes = crate::auth::jwt::B64URL.decode(text).ok()?;
    bytes.try_into().ok()
}

/// nginx's `secure_link_secret`: for a target `/<prefix>/<hash>/<link>`
/// whose `<hash>` is the MD5, in 32 hex digits (either case), of
/// `<link>` as sent (its query included) followed by `secret`, the
/// target the request goes on with: `/<prefix>/<link>`, the hash's
/// segment taken out. `None` for any other target, the hash wrong,
/// missing or not 32 digits, or the link empty, as nginx's module says
/// no (its `$secure_link` empty).
pub fn unsigned_target(target: &str, secret: &str) -> Option<String> {
    let rest = target.strip_prefix('/')?;
    let (prefix, rest) = rest.split_once('/')?;
    let (hash, link) = rest.split_once('/')?;
    if prefix.contains('?') || hash.len() != 32 || link.is_empty() {
        return None;
    }
    let mut given = [0u8; 16];
    for (byte, pair) in given.iter_mut().zip(hash.as_bytes().chunks(2)) {
        let digit = |b: u8| char::from(b).to_digit(16);
        *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    let expected: [u8; 16] = Md5::new()
        .chain_update(link)
        .chain_update(secret)
        .finalize()
        .into();
    same(&given, &expected).then(|| format!("/{prefix}/{link}"))
}

/// Compared in time that does not depend on where they differ.
fn same(a: &[u8; 16], b: &[u8; 16]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_link_is_its_target_less_the_hash_of_its_link_and_the_secret() {
        // nginx's own example: `echo -n 'link/to/fileSECRET' | md5sum`.
        let md5_hex = |text: &str| {
            let mut hex = String::new();
            crate::digits::push_hex(&mut hex, &Md5::digest(text), false);
            hex
        };
        let hash = md5_hex("link/to/fileSECRET");
        let target = format!("/p/{hash}/link/to/file");
        assert_eq!(
            unsigned_target(&target, "SECRET").as_deref(),
            Some("/p/link/to/file")
        );
        let upper = format!("/p/{}/link/to/file", hash.to_uppercase());
        assert_eq!(
            unsigned_target(&upper, "SECRET").as_deref(),
            Some("/p/link/to/file")
        );
        // The query is part of what is signed, as nginx reads the link.
        let signed = md5_hex("f?v=2SECRET");
        let with_query = format!("/dl/{signed}/f?v=2");
        assert_eq!(
            unsigned_target(&with_query, "SECRET").as_deref(),
            Some("/dl/f?v=2")
        );
        assert_eq!(
            unsigned_target(&format!("/dl/{signed}/f?v=3"), "SECRET"),
            None
        );
        for forged in [
            format!("/p/{hash}/link/to/other"),
            format!("/q/{hash}/link/to/file").replace("/q/", "/p/x/"),
            format!("/p/{}/link/to/file", &hash[..31]),
            format!("/p/{hash}z/link/to/file"),
            format!("/p/{}g/link/to/file", &hash[..31]),
            format!("/p/{hash}/"),
            format!("/{hash}/link/to/file"),
            "/p/link/to/file".to_string(),
            "*".to_string(),
        ] {
            assert_eq!(unsigned_target(&forged, "SECRET"), None, "{forged}");
        }
        assert_eq!(unsigned_target(&target, "OTHER"), None);
    }
    use crate::http::{Headers, RequestHead, Version};
    use std::time::Duration;

    /// What `check` says of a GET of `target` from 192.0.2.10, at `now`
    /// seconds since 1970.
    fn verdict(secure_link: &str, md5: &str, target: &str, now: u64) -> Verdict {
        let head = RequestHead {
            method: "GET".into(),
            target: target.into(),
            version: Version::Http11,
            headers: Headers::new(),
        };
        let given = FieldValue::parse(secure_link, FieldFamily::Request).unwrap();
        let signed = SignedText::parse(md5).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(now);
        check(&given, &signed, &Facts::plain(&head), now)
    }

    /// The hash an application hands out for `text`.
    fn hash(text: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Md5::digest(text.as_bytes()))
    }

    #[test]
    fn a_link_is_valid_with_its_hash_up_to_its_expiry_time() {
        let link = "$arg_md5,$arg_expires";
        let md5 = "$secure_link_expires$uri$remote_addr s3cret";
        let h = hash("2000/dl/a.pdf192.0.2.10 s3cret");
        let target = format!("/dl/a.pdf?md5={h}&expires=2000");
        assert_eq!(verdict(link, md5, &target, 1999), Verdict::Valid);
        assert_eq!(
            verdict(link, md5, &target, 2000),
            Verdict::Valid,
            "its last second"
        );
        assert_eq!(verdict(link, md5, &target, 2001), Verdict::Expired);
        // Another file, another time, another secret: forged, not expired.
        let other = format!("/dl/b.pdf?md5={h}&expires=2000");
        assert_eq!(verdict(link, md5, &other, 2001), Verdict::Forged);
        let later = format!("/dl/a.pdf?md5={h}&expires=2001");
        assert_eq!(verdict(link, md5, &later, 0), Verdict::Forged);
        let secret = "$secure_link_expires$uri$remote_addr other";
        assert_eq!(verdict(link, secret, &target, 0), Verdict::Forged);
        // The expiry time where each `$secure_link_expires` is.
        let twice = "a${secure_link_expires}b$secure_link_expires";
        let h = hash("a2000b2000");
        let target = format!("/dl/a.pdf?md5={h}&expires=2000");
        assert_eq!(verdict(link, twice, &target, 0), Verdict::Valid);
    }

    #[test]
    fn a_link_without_an_expiry_time_never_expires() {
        let h = hash("/dl/a.pdf s3cret");
        let target = format!("/dl/a.pdf?md5={h}");
        assert_eq!(
            verdict("$arg_md5", "$uri s3cret", &target, u64::MAX >> 8),
            Verdict::Valid
        );
        // The hash alone is read before the comma, the time after it.
        let h = hash("7/dl/a.pdf");
        let target = format!("/dl/a.pdf?md5={h}&expires=7");
        let link = "$arg_md5,$arg_expires";
        assert_eq!(
            verdict(link, "$secure_link_expires$uri", &target, 7),
            Verdict::Valid
        );
        let no_hash = "/dl/a.pdf?expires=7".to_string();
        assert_eq!(
            verdict(link, "$secure_link_expires$uri", &no_hash, 0),
            Verdict::Forged
        );
    }

    #[test]
    fn the_signed_text_is_cut_where_the_expiry_time_goes() {
        assert_eq!(
            cut_at_expires("$secure_link_expires$uri$remote_addr s3cret"),
            ["", "$uri$remote_addr s3cret"]
        );
        assert_eq!(
            cut_at_expires("a${secure_link_expires}b$secure_link_expires"),
            ["a", "b", ""]
        );
        // Another name, and a written dollar, stay.
        assert_eq!(
            cut_at_expires("$secure_link_expires_at $$secure_link_expires $uri"),
            ["$secure_link_expires_at $$secure_link_expires $uri"]
        );
        assert_eq!(cut_at_expires("no variable"), ["no variable"]);
    }

    #[test]
    fn a_hash_is_sixteen_bytes_in_base64url() {
        let md5: [u8; 16] = Md5::digest(b"x").into();
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(md5);
        assert_eq!(decode_hash(text.as_bytes()), Some(md5));
        assert_eq!(decode_hash(format!("{text}==").as_bytes()), Some(md5));
        let standard = base64::engine::general_purpose::STANDARD.encode(md5);
        if standard.contains(['+', '/']) {
            assert_eq!(decode_hash(standard.as_bytes()), None);
        }
        assert_eq!(decode_hash(b""), None);
        assert_eq!(decode_hash(b"AAAA"), None, "three bytes");
        assert_eq!(decode_hash(&[b'A'; 40]), None);
    }

    #[test]
    fn hashes_are_the_same_only_byte_for_byte() {
        let right: [u8; 16] = Md5::digest(b"x").into();
        assert!(same(&right, &right));
        let mut guessed = right;
        guessed[0] ^= 1;
        assert!(!same(&right, &guessed));
        // Two bytes wrong the same way: their differences do not cancel.
        guessed[15] ^= 1;
        assert!(!same(&right, &guessed));
    }

    #[test]
    fn an_expiry_time_is_a_positive_number_of_seconds() {
        assert_eq!(seconds(b"1767225600"), Some(1_767_225_600));
        // Up to 19 digits: any such number fits in 64 bits.
        let nineteen = b"1000000000000000000";
        assert_eq!(seconds(nineteen), Some(10u64.pow(18)));
        assert_eq!(seconds(b"10000000000000000000"), None, "20 digits");
        for bad in [
            &b""[..],
            b"0",
            b"-1",
            b"1e9",
            b" 1",
            b"99999999999999999999",
        ] {
            assert_eq!(seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_signed_text_is_read_as_written() {
        let signed = SignedText::parse("$secure_link_expires$uri k").unwrap();
        assert_eq!(signed.source(), "$secure_link_expires$uri k");
        assert_eq!(signed.0.len(), 2);
        let e = SignedText::parse("$secure_link_expires$status").unwrap_err();
        assert!(e.contains("$status"), "{e}");
    }
}
