//! The account's key and what it signs: every request to an ACME server
//! is a JSON Web Signature (RFC 7515, flattened serialization) made with
//! it, ES256 on P-256 as Let's Encrypt and every other CA accept, and
//! the key's thumbprint (RFC 7638) is half of each HTTP-01 answer.

use crate::json::push_str;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};

/// A P-256 key that signs requests: the account's.
pub struct AccountKey {
    pair: EcdsaKeyPair,
    random: SystemRandom,
    /// Its public half as a JWK, members in the order RFC 7638 hashes.
    jwk: String,
}

/// Who a request says it comes from: a new account names its key, every
/// other request the account's URL (RFC 8555 §6.2).
pub enum Signer<'a> {
    Key,
    Account(&'a str),
}

impl AccountKey {
    /// The key in `pkcs8` (DER), as [`AccountKey::generate`] makes it.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<AccountKey, String> {
        let random = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &random)
            .map_err(|e| format!("not a P-256 private key: {e}"))?;
        // An uncompressed point: 0x04, then x and y of 32 bytes each.
        let point = pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        let jwk = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(x),
            URL_SAFE_NO_PAD.encode(y)
        );
        Ok(AccountKey { pair, random, jwk })
    }

    /// A new key, as PKCS#8 DER.
    pub fn generate() -> Result<Vec<u8>, String> {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| "the system gave no random bytes for a key".to_string())?;
        Ok(document.as_ref().to_vec())
    }

    /// RFC 7638's thumbprint of the public key, base64url: what an
    /// HTTP-01 answer puts after the token.
    pub fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            self.jwk.as_bytes(),
        ))
    }

    /// `token.thumbprint`: the body an HTTP-01 challenge is answered
    /// with (RFC 8555 §8.1).
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.thumbprint())
    }

    /// The TXT record a DNS-01 challenge is answered with (RFC 8555
    /// §8.4): the key authorization's SHA-256, base64url.
    pub fn dns_record(key_authorization: &str) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
        URL_SAFE_NO_PAD.encode(digest)
    }

    /// External Account Binding (RFC 8555 §7.3.4): this key, signed with
    /// the MAC key a CA gave for an account made on its site (ZeroSSL,
    /// Google Trust Services), for the `newAccount` request to `url`.
    pub fn external_binding(&self, kid: &str, mac_key: &[u8], url: &str) -> String {
        let mut protected = String::from(r#"{"alg":"HS256","kid":"#);
        push_str(&mut protected, kid);
        protected.push_str(r#","url":"#);
        push_str(&mut protected, url);
        protected.push('}');
        let protected = URL_SAFE_NO_PAD.encode(protected);
        let payload = URL_SAFE_NO_PAD.encode(&self.jwk);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, mac_key);
        let tag = ring::hmac::sign(&key, format!("{protected}.{payload}").as_bytes());
        format!(
            r#"{{"protected":"{protected}","payload":"{payload}","signature":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The request body posting `payload` (JSON, or empty for a
    /// POST-as-GET) to `url`, with `nonce`.
    pub fn sign(
        &self,
        signer: Signer<'_>,
        nonce: &str,
        url: &str,
        payload: &str,
    ) -> Result<String, String> {
        let mut protected = String::from(r#"{"alg":"ES256","#);
        match signer {
            Signer::Key => {
                protected.push_str(r#""jwk":"#);
                protected.push_str(&self.jwk);
            }
            Signer::Account(url) => {
                protected.push_str(r#""kid":"#);
                push_str(&mut protected, url);
            }
        }
        protected.push_str(r#","nonce":"#);
        push_str(&mut protected, nonce);
        protected.push_str(r#","url":"#);
        push_str(&mut protected, url);
        protected.push('}');
        let protected = URL_SAFE_NO_PAD.encode(protected);
        let payload = URL_SAFE_NO_PAD.encode(payload);
        let signed = format!("{protected}.{payload}");
        let signature = (self.pair.sign(&self.random, signed.as_bytes()))
            .map_err(|_| "the system gave no random bytes for a signature".to_string())?;
        Ok(format!(
            r#"{{"protected":"{protected}","payload":"{payload}","signature":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_value::{parse, Value};
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    fn decoded(part: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(part).unwrap()
    }

    fn field<'a>(value: &'a Value, name: &str) -> &'a str {
        value.get(name).and_then(Value::as_str).unwrap()
    }

    #[test]
    fn a_signed_request_verifies_with_the_key_it_names() {
        let key = AccountKey::from_pkcs8(&AccountKey::generate().unwrap()).unwrap();
        let body = key
            .sign(Signer::Key, "n0nce", "https://ca/new-acct", r#"{"a":1}"#)
            .unwrap();
        let jws = parse(body.as_bytes()).unwrap();
        let protected = decoded(field(&jws, "protected"));
        let header = parse(&protected).unwrap();
        assert_eq!(field(&header, "alg"), "ES256");
        assert_eq!(field(&header, "nonce"), "n0nce");
        assert_eq!(field(&header, "url"), "https://ca/new-acct");
        assert!(header.get("kid").is_none());
        let jwk = header.get("jwk").unwrap();
        let point = [
            &[4u8][..],
            &decoded(field(jwk, "x")),
            &decoded(field(jwk, "y")),
        ]
        .concat();
        assert_eq!(decoded(field(&jws, "payload")), br#"{"a":1}"#);
        let signed = format!("{}.{}", field(&jws, "protected"), field(&jws, "payload"));
        let signature = decoded(field(&jws, "signature"));
        assert_eq!(signature.len(), 64, "r and s, not DER");
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point);
        public.verify(signed.as_bytes(), &signature).unwrap();
        let mut forged = signature.clone();
        forged[10] ^= 1;
        assert!(public.verify(signed.as_bytes(), &forged).is_err());
    }

    #[test]
    fn an_account_request_names_the_account_and_a_post_as_get_is_empty() {
        let key = AccountKey::from_pkcs8(&AccountKey::generate().unwrap()).unwrap();
        let body = key
            .sign(
                Signer::Account("https://ca/acct/7"),
                "n",
                "https://ca/o",
                "",
            )
            .unwrap();
        let jws = parse(body.as_bytes()).unwrap();
        let header = parse(&decoded(field(&jws, "protected"))).unwrap();
        assert_eq!(field(&header, "kid"), "https://ca/acct/7");
        assert!(header.get("jwk").is_none());
        assert_eq!(field(&jws, "payload"), "");
    }

    #[test]
    fn an_external_binding_signs_the_account_key_with_the_mac_key() {
        let key = AccountKey::from_pkcs8(&AccountKey::generate().unwrap()).unwrap();
        let binding = key.external_binding("kid-1", b"secret", "https://ca/new-acct");
        let jws = parse(binding.as_bytes()).unwrap();
        let header = parse(&decoded(field(&jws, "protected"))).unwrap();
        assert_eq!(field(&header, "alg"), "HS256");
        assert_eq!(field(&header, "kid"), "kid-1");
        assert_eq!(field(&header, "url"), "https://ca/new-acct");
        assert_eq!(decoded(field(&jws, "payload")), key.jwk.as_bytes());
        let signed = format!("{}.{}", field(&jws, "protected"), field(&jws, "payload"));
        let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        let tag = decoded(field(&jws, "signature"));
        ring::hmac::verify(&mac, signed.as_bytes(), &tag).unwrap();
        let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"other");
        assert!(ring::hmac::verify(&other, signed.as_bytes(), &tag).is_err());
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 §3.1's example is an RSA key; this is the same
        // recipe on the members of an EC key: SHA-256 of the members
        // crv, kty, x, y in that order with no white space.
        let key = AccountKey::from_pkcs8(&AccountKey::generate().unwrap()).unwrap();
        let jwk = parse(key.jwk.as_bytes()).unwrap();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            field(&jwk, "x"),
            field(&jwk, "y")
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        assert_eq!(key.thumbprint(), URL_SAFE_NO_PAD.encode(digest));
        assert_eq!(key.thumbprint().len(), 43);
        let answer = key.key_authorization("tok");
        assert_eq!(answer, format!("tok.{}", key.thumbprint()));
    }

    #[test]
    fn a_key_that_is_not_p256_is_refused() {
        let rsa_like = vec![0x30, 0x03, 0x02, 0x01, 0x00];
        assert!(AccountKey::from_pkcs8(&rsa_like).is_err());
    }
}
