//! MD5-crypt: the `$1$` hashes of crypt(3) and the `$apr1$` ones Apache's
//! `htpasswd` writes by default (the same algorithm under another prefix).
//! No crate does both; the algorithm is short and fixed (Poul-Henning
//! Kamp's, 1994), and known answers from OpenSSL check it below.

use md5::{Digest, Md5};

/// The alphabet of crypt(3)'s base64, least significant bits first.
const CRYPT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Longest salt the algorithm reads; a longer one is cut.
pub const MAX_SALT: usize = 8;

/// `<magic><salt>$<22 characters>` for `password`: `magic` is `$1$` or
/// `$apr1$`, `salt` at most [`MAX_SALT`] bytes, without `$`.
pub fn md5_crypt(password: &[u8], magic: &str, salt: &[u8]) -> String {
    let salt = &salt[..salt.len().min(MAX_SALT)];
    let alternate = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut digest = Md5::new()
        .chain_update(password)
        .chain_update(magic)
        .chain_update(salt);
    for chunk in (0..password.len()).step_by(16) {
        digest.update(&alternate[..(password.len() - chunk).min(16)]);
    }
    // One bit of the password's length at a time: a zero byte for a set
    // bit, the password's first byte for a clear one (the original's
    // quirk, kept by every implementation).
    let mut length = password.len();
    while length > 0 {
        match length & 1 {
            1 => digest.update([0u8]),
            _ => digest.update(&password[..1]),
        }
        length >>= 1;
    }
    let mut result = digest.finalize();
    // A thousand rounds, to slow a guesser down (by 1994's standards).
    for round in 0..1000 {
        let mut next = Md5::new();
        match round % 2 {
            1 => next.update(password),
            _ => next.update(result),
        }
        if round % 3 != 0 {
            next.update(salt);
        }
        if round % 7 != 0 {
            next.update(password);
        }
        match round % 2 {
            1 => next.update(result),
            _ => next.update(password),
        }
        result = next.finalize();
    }
    let mut out = String::with_capacity(magic.len() + salt.len() + 23);
    out.push_str(magic);
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    // The digest's bytes in the order the original writes them.
    let r = |i: usize| u32::from(result[i]);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        push_crypt64(&mut out, (r(a) << 16) | (r(b) << 8) | r(c), 4);
    }
    push_crypt64(&mut out, r(11), 2);
    out
}

/// The low `count` sextets of `value`, least significant first.
fn push_crypt64(out: &mut String, mut value: u32, count: usize) {
    for _ in 0..count {
        out.push(char::from(CRYPT_ALPHABET[(value & 0x3f) as usize]));
        value >>= 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_what_openssl_passwd_gives() {
        // `openssl passwd -apr1 -salt abcdefgh secret`, `openssl passwd
        // -1 -salt abc secret`.
        assert_eq!(
            md5_crypt(b"secret", "$apr1$", b"abcdefgh"),
            "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/"
        );
        assert_eq!(
            md5_crypt(b"secret", "$1$", b"abc"),
            "$1$abc$iCQ2D3nhptRYi27fDYv2s1"
        );
    }

    #[test]
    fn long_and_empty_passwords_and_a_long_salt() {
        // `openssl passwd -apr1 -salt 12345678 <40 bytes>`, `openssl
        // passwd -1 -salt xy ''`, `openssl passwd -1 -salt 123456789 a`
        // (which cuts the salt at 8).
        assert_eq!(
            md5_crypt(
                b"0123456789012345678901234567890123456789",
                "$apr1$",
                b"12345678"
            ),
            LONG
        );
        assert_eq!(md5_crypt(b"", "$1$", b"xy"), EMPTY);
        assert_eq!(md5_crypt(b"a", "$1$", b"123456789"), CUT_SALT);
    }

    const LONG: &str = "$apr1$12345678$g7mwQfxy1n1W6s22hSC070";
    const EMPTY: &str = "$1$xy$JSgu5Zv4igzK2ULm5nTM30";
    const CUT_SALT: &str = "$1$12345678$3Uz6TyHSiGZR0yDMOX3jO0";
}
