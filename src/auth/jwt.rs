//! `auth_jwt`: requests let through only with a JSON Web Token (RFC 7519)
//! signed by a key of a JWKS file (RFC 7517), sent as `Authorization:
//! Bearer <token>` (RFC 6750), as nginx Plus's `auth_jwt` with
//! `auth_jwt_key_file` and HAProxy's `jwt_verify`.
//!
//! What is checked: the token is three base64url parts; its header names
//! an algorithm of [`Alg`] (never `none`) and no critical extension; a key
//! of the file of that algorithm's kind (and of the token's `kid`, when it
//! names one; of the key's own `alg`, when the key names one) verifies its
//! signature; its claims are a JSON object whose `exp` has not passed and
//! whose `nbf` has come. A key's kind is tied to the algorithms it may
//! verify, so a public RSA key is never taken for an HMAC secret (the
//! classic forgery of a token signed with the public key as secret).

use crate::json_value::{self, Value};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use ring::{hmac, signature};
use std::fmt;
use std::path::Path;

/// Base64url as JOSE writes it, without padding; taken with it too
/// (secure links' hashes are read with it as well).
pub(crate) const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The longest token read: identity providers' are a few kilobytes.
pub const MAX_TOKEN: usize = 16 * 1024;

/// The fewest bytes an HMAC secret may have: RFC 7518 §3.2 asks for at
/// least the hash's size, and a shorter one can be guessed offline from
/// any token it signed.
const MIN_HMAC_KEY: usize = 32;

/// The fewest bytes of an RSA modulus (2048 bits), as ring verifies.
const MIN_RSA_MODULUS: usize = 256;

/// The signature algorithms taken (RFC 7518 §3.1, and RFC 8037's EdDSA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    const NAMES: [(&'static str, Alg); 12] = [
        ("HS256", Alg::Hs256),
        ("HS384", Alg::Hs384),
        ("HS512", Alg::Hs512),
        ("RS256", Alg::Rs256),
        ("RS384", Alg::Rs384),
        ("RS512", Alg::Rs512),
        ("PS256", Alg::Ps256),
        ("PS384", Alg::Ps384),
        ("PS512", Alg::Ps512),
        ("ES256", Alg::Es256),
        ("ES384", Alg::Es384),
        ("EdDSA", Alg::EdDsa),
    ];

    fn named(name: &str) -> Option<Alg> {
        Alg::NAMES.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }
}

/// A key of the file, public (or, for HMAC, the shared secret).
#[derive(Clone, PartialEq, Eq)]
enum Key {
    Hmac(Vec<u8>),
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// Never a secret in a message.
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Key::Hmac(_) => "oct",
            Key::Rsa { .. } => "RSA",
            Key::P256(_) => "EC P-256",
            Key::P384(_) => "EC P-384",
            Key::Ed25519(_) => "OKP Ed25519",
        })
    }
}

impl Key {
    /// Whether `alg` is one this kind of key signs with.
    fn fits(&self, alg: Alg) -> bool {
        use Alg::*;
        match self {
            Key::Hmac(_) => matches!(alg, Hs256 | Hs384 | Hs512),
            Key::Rsa { .. } => matches!(alg, Rs256 | Rs384 | Rs512 | Ps256 | Ps384 | Ps512),
            Key::P256(_) => alg == Es256,
            Key::P384(_) => alg == Es384,
            Key::Ed25519(_) => alg == EdDsa,
        }
    }

    fn verifies(&self, alg: Alg, signed: &[u8], signature_bytes: &[u8]) -> bool {
        use signature::*;
        let rsa = |params: &'static RsaParameters| match self {
            Key::Rsa { n, e } => (RsaPublicKeyComponents { n, e })
                .verify(params, signed, signature_bytes)
                .is_ok(),
            _ => false,
        };
        let public = |algorithm: &'static dyn VerificationAlgorithm, key: &[u8]| {
            UnparsedPublicKey::new(algorithm, key)
                .verify(signed, signature_bytes)
                .is_ok()
        };
        let mac = |algorithm: hmac::Algorithm| match self {
            Key::Hmac(secret) => {
                hmac::verify(&hmac::Key::new(algorithm, secret), signed, signature_bytes).is_ok()
            }
            _ => false,
        };
        match (alg, self) {
            (Alg::Hs256, _) => mac(hmac::HMAC_SHA256),
            (Alg::Hs384, _) => mac(hmac::HMAC_SHA384),
            (Alg::Hs512, _) => mac(hmac::HMAC_SHA512),
            (Alg::Rs256, _) => rsa(&RSA_PKCS1_2048_8192_SHA256),
            (Alg::Rs384, _) => rsa(&RSA_PKCS1_2048_8192_SHA384),
            (Alg::Rs512, _) => rsa(&RSA_PKCS1_2048_8192_SHA512),
            (Alg::Ps256, _) => rsa(&RSA_PSS_2048_8192_SHA256),
            (Alg::Ps384, _) => rsa(&RSA_PSS_2048_8192_SHA384),
            (Alg::Ps512, _) => rsa(&RSA_PSS_2048_8192_SHA512),
            (Alg::Es256, Key::P256(point)) => public(&ECDSA_P256_SHA256_FIXED, point),
            (Alg::Es384, Key::P384(point)) => public(&ECDSA_P384_SHA384_FIXED, point),
            (Alg::EdDsa, Key::Ed25519(x)) => public(&ED25519, x),
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Jwk {
    kid: Option<String>,
    /// The one algorithm it may be used with, if the file says.
    alg: Option<Alg>,
    key: Key,
}

/// The keys of a JWKS file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

/// The most signing keys a set may hold: a token that names none (no
/// `kid`) is tried against every key of its algorithm's kind, so that a
/// set of thousands (a provider's mistake, or a fetched set an attacker
/// shaped) would make each forged token cost as many verifications.
/// Providers publish a few (two to a dozen).
const MAX_KEYS: usize = 32;

/// The most of a key file read.
const MAX_KEY_FILE: u64 = json_value::MAX_JSON as u64;

impl Jwks {
    /// Reads the file at `path` (see [`Jwks::parse`]).
    pub fn read(path: &Path) -> Result<Jwks, String> {
        use std::io::Read as _;
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut text = Vec::new();
        (file.take(MAX_KEY_FILE + 1))
            .read_to_end(&mut text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if text.len() as u64 > MAX_KEY_FILE {
            return Err(format!("{}: larger than 1 MiB", path.display()));
        }
        Jwks::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A JWKS (`{"keys":[...]}`), or a single JWK. Keys for encryption
    /// (`"use":"enc"`) and of a kind not taken are left out; a key of a
    /// kind taken that is malformed, or too weak, is an error, as is a
    /// file with no key left.
    pub fn parse(text: &[u8]) -> Result<Jwks, String> {
        let value = json_value::parse(text).map_err(|e| format!("not JSON: {e}"))?;
        let listed = match value.get("keys") {
            Some(keys) => keys.as_array().ok_or("`keys` is not an array")?.to_vec(),
            None => vec![value],
        };
        let mut keys = Vec::new();
        for (i, jwk) in listed.iter().enumerate() {
            let at = |e: String| match jwk.get("kid").and_then(Value::as_str) {
                Some(kid) => format!("key `{}`: {e}", crate::config::printable(kid)),
                None => format!("key {}: {e}", i + 1),
            };
            if let Some(key) = read_jwk(jwk).map_err(at)? {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(
                "no signing key of a kind taken (oct, RSA, EC P-256 or P-384, \
                        OKP Ed25519)"
                    .into(),
            );
        }
        if keys.len() > MAX_KEYS {
            return Err(format!(
                "{} signing keys, more than {MAX_KEYS}: a token naming no key is tried \
                 against each",
                keys.len()
            ));
        }
        Ok(Jwks { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// For `check`: how many keys were read, and of what kind, each with
    /// its `kid` and `alg` when it has them.
    pub fn summary(&self) -> String {
        let keys: Vec<String> = (self.keys.iter())
            .map(|k| {
                let mut key = format!("{:?}", k.key);
                if let Some(kid) = &k.kid {
                    key.push_str(&format!(" `{}`", crate::config::printable(kid)));
                }
                if let Some(alg) = k.alg {
                    let name = Alg::NAMES
                        .iter()
                        .find(|(_, a)| *a == alg)
                        .map_or("?", |(n, _)| n);
                    key.push_str(&format!(" for {name}"));
                }
                key
            })
            .collect();
        let noun = if keys.len() == 1 { "key" } else { "keys" };
        format!("{} {noun}: {}", keys.len(), keys.join(", "))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// One JWK, or `None` for one not for signing or of another kind.
fn read_jwk(jwk: &Value) -> Result<Option<Jwk>, String> {
    if !matches!(jwk, Value::Object(_)) {
        return Err("not an object".into());
    }
    let text = |name: &str| -> Result<Option<&str>, String> {
        match jwk.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("`{name}` is not a string")),
        }
    };
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let value = text(name)?.ok_or_else(|| format!("no `{name}`"))?;
        B64URL
            .decode(value)
            .map_err(|_| format!("`{name}` is not base64url"))
    };
    if text("use")?.is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let key = match (text("kty")?, text("crv")?) {
        (Some("oct"), _) => {
            let secret = bytes("k")?;
            if secret.len() < MIN_HMAC_KEY {
                return Err(format!(
                    "an HMAC secret of {} bytes; at least {MIN_HMAC_KEY} (RFC 7518 §3.2)",
                    secret.len()
                ));
            }
            Key::Hmac(secret)
        }
        (Some("RSA"), _) => {
            let n = bytes("n")?;
            let significant = n.iter().skip_while(|&&b| b == 0).count();
            if significant < MIN_RSA_MODULUS {
                return Err(format!(
                    "an RSA key of {} bits; at least 2048",
                    significant * 8
                ));
            }
            Key::Rsa { n, e: bytes("e")? }
        }
        (Some("EC"), Some(curve @ ("P-256" | "P-384"))) => {
            let size = if curve == "P-256" { 32 } else { 48 };
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != size || y.len() != size {
                return Err(format!("`x` and `y` of {curve} are {size} bytes each"));
            }
            // Uncompressed, as ring reads a point.
            let point = [&[4u8][..], &x, &y].concat();
            match curve {
                "P-256" => Key::P256(point),
                _ => Key::P384(point),
            }
        }
        (Some("OKP"), Some("Ed25519")) => {
            let x = bytes("x")?;
            if x.len() != 32 {
                return Err("`x` of Ed25519 is 32 bytes".into());
            }
            Key::Ed25519(x)
        }
        (None, _) => return Err("no `kty`".into()),
        _ => return Ok(None),
    };
    let alg = match text("alg")? {
        None => None,
        Some(name) => {
            let alg = Alg::named(name).ok_or_else(|| format!("`alg` {name} is not taken"))?;
            if !key.fits(alg) {
                return Err(format!("`alg` {name} is not one of a {key:?} key"));
            }
            Some(alg)
        }
    };
    Ok(Some(Jwk {
        kid: text("kid")?.map(str::to_string),
        alg,
        key,
    }))
}

/// Why a token is not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not three base64url parts, a header or claims that are not JSON
    /// objects, a critical extension, a claim of the wrong type.
    Malformed,
    /// `none`, or an algorithm not taken.
    Algorithm,
    /// No key of the file verifies it.
    Signature,
    /// Its `exp` has passed.
    Expired,
    /// Its `nbf` has not come.
    NotYet,
    /// Issued by another issuer, or for another audience, than
    /// `auth_jwt_issuer` and `auth_jwt_audience` ask for.
    NotOurs,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invalid::Malformed => "malformed",
            Invalid::Algorithm => "an algorithm not taken",
            Invalid::Signature => "a signature no key verifies",
            Invalid::Expired => "expired",
            Invalid::NotYet => "not valid yet",
            Invalid::NotOurs => "issued by another, or for another audience",
        })
    }
}

/// What a valid token says of its bearer.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// Its `sub` claim, for the log's `$remote_user`.
    pub subject: Option<String>,
    /// Its `iss` claim: who issued it.
    pub issuer: Option<String>,
    /// Its `aud` claim, one or several: whom it is for.
    pub audiences: Vec<String>,
    /// Every claim, for `$jwt_claim_<name>`.
    pub claims: Value,
}

impl Verified {
    /// Whether it was issued by `issuer` and for `audience`, each when
    /// asked (`auth_jwt_issuer`, `auth_jwt_audience`): a token the same
    /// provider issued for another application is no token for this one.
    pub fn is_for(&self, issuer: Option<&str>, audience: Option<&str>) -> bool {
        issuer.is_none_or(|i| self.issuer.as_deref() == Some(i))
            && audience.is_none_or(|a| self.audiences.iter().any(|mine| mine == a))
    }
}

/// Checks `token` against `keys` at `now` (seconds since 1970).
pub fn verify(token: &[u8], keys: &Jwks, now: u64) -> Result<Verified, Invalid> {
    verify_within(token, keys, now, 0)
}

/// [`verify`], taking a token `leeway` seconds past its `exp` or before
/// its `nbf` (`auth_jwt_leeway`): the provider's clock and this one's may
/// disagree by that much.
pub fn verify_within(
    token: &[u8],
    keys: &Jwks,
    now: u64,
    leeway: u64,
) -> Result<Verified, Invalid> {
    if token.len() > MAX_TOKEN {
        return Err(Invalid::Malformed);
    }
    let mut parts = token.split(|&b| b == b'.');
    let (Some(header), Some(claims), Some(signature_text), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid::Malformed);
    };
    let header = decode_object(header)?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => Alg::named(name).ok_or(Invalid::Algorithm)?,
        _ => return Err(Invalid::Malformed),
    };
    // RFC 7515 §4.1.11: an extension not understood must not be ignored.
    if header.get("crit").is_some() {
        return Err(Invalid::Malformed);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(Invalid::Malformed),
    };
    let signature_bytes = B64URL
        .decode(signature_text)
        .map_err(|_| Invalid::Malformed)?;
    let signed = &token[..token.len() - signature_text.len() - 1];
    let verified = (keys.keys.iter())
        .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
        .filter(|k| k.key.fits(alg) && k.alg.is_none_or(|a| a == alg))
        .any(|k| k.key.verifies(alg, signed, &signature_bytes));
    if !verified {
        return Err(Invalid::Signature);
    }
    // Read only once signed: nothing an unsigned token says is looked at.
    let claims = decode_object(claims)?;
    let time = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(Some(*n)),
        Some(_) => Err(Invalid::Malformed),
    };
    let (now, leeway) = (now as f64, leeway as f64);
    if time("exp")?.is_some_and(|exp| now >= exp + leeway) {
        return Err(Invalid::Expired);
    }
    if time("nbf")?.is_some_and(|nbf| now + leeway < nbf) {
        return Err(Invalid::NotYet);
    }
    let text = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Invalid::Malformed),
    };
    // RFC 7519 §4.1.3: one string, or an array of them.
    let audiences = match claims.get("aud") {
        None => Vec::new(),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => (many.iter())
            .map(|a| a.as_str().map(str::to_string).ok_or(Invalid::Malformed))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Invalid::Malformed),
    };
    Ok(Verified {
        subject: text("sub")?,
        issuer: text("iss")?,
        audiences,
        claims,
    })
}

/// Whether `token` names (`kid`) a key `keys` lacks: fetched keys are
/// asked for again, as the provider may have begun to sign with a new
/// one. A token that names none, or is not one, does not.
pub fn names_unknown_key(token: &[u8], keys: &Jwks) -> bool {
    let Some(header) = token.split(|&b| b == b'.').next() else {
        return false;
    };
    let Ok(header) = decode_object(header) else {
        return false;
    };
    match header.get("kid") {
        Some(Value::String(kid)) => !(keys.keys.iter()).any(|k| k.kid.as_deref() == Some(kid)),
        _ => false,
    }
}

/// The claim named `name` of a token's `claims`: a claim of that whole
/// name (`email`, `https://example.com/roles`), else, for a name with
/// dots, the path it writes through objects (`realm_access.roles`), as
/// nginx Plus's `auth_jwt_claim_set` names a nested one.
pub fn claim<'a>(claims: &'a Value, name: &str) -> Option<&'a Value> {
    claims.get(name).or_else(|| {
        let mut path = name.split('.');
        let first = claims.get(path.next()?)?;
        path.try_fold(first, |value, step| value.get(step))
    })
}

/// A base64url part holding a JSON object.
fn decode_object(part: &[u8]) -> Result<Value, Invalid> {
    let bytes = B64URL.decode(part).map_err(|_| Invalid::Malformed)?;
    match json_value::parse(&bytes) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(Invalid::Malformed),
    }
}

/// A request's token: that of its `Authorization` field (see
/// [`bearer_token`]), or, with `field` (`auth_jwt_header`), the whole
/// value of its one field of that name instead; or, with neither field,
/// of the one `cookie` it carries of that name (two fields or cookies,
/// and a backend might read the other: none).
pub fn token<'a>(
    headers: &'a crate::http::Headers,
    field: Option<&'a str>,
    cookie: Option<&str>,
) -> Option<&'a [u8]> {
    match field {
        Some(name) if headers.contains(name) => {
            let mut values = headers.get_all(name);
            let value = values.next()?.trim_ascii();
            return (values.next().is_none() && !value.is_empty()).then_some(value);
        }
        Some(_) => {}
        None if headers.contains("authorization") => return bearer_token(headers),
        None => {}
    }
    let name = cookie?;
    let mut values = (headers.get_all("cookie"))
        .flat_map(crate::http::headers::cookie_pairs)
        .filter_map(|pair| crate::http::headers::cookie_named(pair, name));
    let value = values.next()?;
    (values.next().is_none() && !value.is_empty()).then_some(value)
}

/// The token of a request's one `Authorization: Bearer` field (the
/// scheme in any case, RFC 6750 §2.1): `None` without one, or with two
/// fields (which one would a backend read?).
pub fn bearer_token(headers: &crate::http::Headers) -> Option<&[u8]> {
    let mut fields = headers.get_all("authorization");
    let field = fields.next()?.trim_ascii();
    if fields.next().is_some() || field.len() < 7 || !field[..7].eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(field[7..].trim_ascii()).filter(|t| !t.is_empty())
}

/// The `WWW-Authenticate` line of a 401, whole: RFC 6750 §3's, saying
/// `invalid_token` when one was sent.
pub fn challenge(realm: &str, sent_one: bool) -> String {
    let error = match sent_one {
        true => ", error=\"invalid_token\"",
        false => "",
    };
    format!("WWW-Authenticate: Bearer realm=\"{realm}\"{error}\r\n")
}

/// The `WWW-Authenticate` line of a 403 for a valid token whose claims
/// `auth_jwt_require` refuses: RFC 6750 §3.1's `insufficient_scope`.
pub fn challenge_forbidden(realm: &str) -> String {
    format!("WWW-Authenticate: Bearer realm=\"{realm}\", error=\"insufficient_scope\"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// `header.claims` as base64url parts, and its signature by `sign`.
    fn token(header: &str, claims: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let signed = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let signature = sign(signed.as_bytes());
        format!("{signed}.{}", b64(&signature))
    }

    const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    fn hs256(signed: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
        hmac::sign(&key, signed).as_ref().to_vec()
    }

    fn oct_keys() -> Jwks {
        Jwks::parse(format!(r#"{{"keys":[{{"kty":"oct","k":"{}"}}]}}"#, b64(SECRET)).as_bytes())
            .unwrap()
    }

    #[test]
    fn an_hmac_token_is_taken_until_it_expires() {
        let keys = oct_keys();
        let good = token(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"sub":"ann","exp":2000}"#,
            hs256,
        );
        let verified = verify(good.as_bytes(), &keys, 1999).unwrap();
        assert_eq!(verified.subject.as_deref(), Some("ann"));
        assert_eq!(verify(good.as_bytes(), &keys, 2000), Err(Invalid::Expired));
        let early = token(r#"{"alg":"HS256"}"#, r#"{"nbf":1000}"#, hs256);
        assert_eq!(verify(early.as_bytes(), &keys, 999), Err(Invalid::NotYet));
        assert!(verify(early.as_bytes(), &keys, 1000).is_ok());
        // With a minute's leeway, either way.
        assert!(verify_within(good.as_bytes(), &keys, 2059, 60).is_ok());
        let late = verify_within(good.as_bytes(), &keys, 2060, 60);
        assert_eq!(late, Err(Invalid::Expired));
        assert!(verify_within(early.as_bytes(), &keys, 940, 60).is_ok());
        let soon = verify_within(early.as_bytes(), &keys, 939, 60);
        assert_eq!(soon, Err(Invalid::NotYet));
    }

    #[test]
    fn the_issuer_and_audience_are_read_for_whoever_asks() {
        let keys = oct_keys();
        let claims = r#"{"iss":"https://id.example","aud":["api","web"],"sub":"ann"}"#;
        let t = token(r#"{"alg":"HS256"}"#, claims, hs256);
        let v = verify(t.as_bytes(), &keys, 0).unwrap();
        assert!(v.is_for(None, None));
        assert!(v.is_for(Some("https://id.example"), Some("web")));
        assert!(!v.is_for(Some("https://id.example/"), None));
        assert!(!v.is_for(None, Some("admin")));
        let one = token(r#"{"alg":"HS256"}"#, r#"{"aud":"api"}"#, hs256);
        let v = verify(one.as_bytes(), &keys, 0).unwrap();
        assert!(v.is_for(None, Some("api")) && !v.is_for(Some("x"), None));
        for claims in [
            r#"{"aud":7}"#,
            r#"{"aud":["api",7]}"#,
            r#"{"iss":{}}"#,
            r#"{"sub":1}"#,
        ] {
            let t = token(r#"{"alg":"HS256"}"#, claims, hs256);
            assert_eq!(
                verify(t.as_bytes(), &keys, 0),
                Err(Invalid::Malformed),
                "{claims}"
            );
        }
    }

    #[test]
    fn forged_and_malformed_tokens_are_refused() {
        let keys = oct_keys();
        let claims = r#"{"sub":"ann"}"#;
        // Signed with another secret, or not at all.
        let other = |signed: &[u8]| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]);
            hmac::sign(&key, signed).as_ref().to_vec()
        };
        let forged = token(r#"{"alg":"HS256"}"#, claims, other);
        assert_eq!(verify(forged.as_bytes(), &keys, 0), Err(Invalid::Signature));
        let unsigned = token(r#"{"alg":"none"}"#, claims, |_| Vec::new());
        assert_eq!(
            verify(unsigned.as_bytes(), &keys, 0),
            Err(Invalid::Algorithm)
        );
        // Claims changed after signing.
        let good = token(r#"{"alg":"HS256"}"#, claims, hs256);
        let mut parts: Vec<&str> = good.split('.').collect();
        let admin = b64(br#"{"sub":"admin"}"#);
        parts[1] = &admin;
        assert_eq!(
            verify(parts.join(".").as_bytes(), &keys, 0),
            Err(Invalid::Signature)
        );

        let malformed = [
            "".to_string(),
            "a.b".into(),
            format!("{good}.x"),
            token(r#"{"alg":"HS256","crit":["exp"]}"#, claims, hs256),
            token(r#"{"alg":"HS256","kid":7}"#, claims, hs256),
            token(r#"{"alg":"HS256"}"#, r#"["not","an","object"]"#, hs256),
            token(r#"{"alg":"HS256"}"#, r#"{"exp":"tomorrow"}"#, hs256),
            token(r#"{"alg":"HS256","alg":"none"}"#, claims, hs256),
            good.replace('.', ".!"),
        ];
        for t in malformed {
            assert_eq!(
                verify(t.as_bytes(), &keys, 0),
                Err(Invalid::Malformed),
                "{t}"
            );
        }
        assert_eq!(
            verify(token(r#"{"alg":7}"#, claims, hs256).as_bytes(), &keys, 0),
            Err(Invalid::Malformed)
        );
    }

    #[test]
    fn elliptic_curve_and_edwards_keys_verify_their_own_algorithm_alone() {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let ed_pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).unwrap();
        let jwks = format!(
            r#"{{"keys":[
                {{"kty":"EC","crv":"P-256","kid":"ec","x":"{}","y":"{}"}},
                {{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"{}"}},
                {{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}},
                {{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}}
            ]}}"#,
            b64(&point[1..33]),
            b64(&point[33..]),
            b64(ed.public_key().as_ref())
        );
        let keys = Jwks::parse(jwks.as_bytes()).unwrap();
        assert_eq!(keys.len(), 2, "the encryption key and P-521 left out");
        assert_eq!(keys.summary(), "2 keys: EC P-256 `ec`, OKP Ed25519 `ed`");
        let es = |signed: &[u8]| pair.sign(&rng, signed).unwrap().as_ref().to_vec();
        let t = token(r#"{"alg":"ES256","kid":"ec"}"#, "{}", es);
        assert!(verify(t.as_bytes(), &keys, 0).is_ok());
        // Without a kid, each key that fits is tried.
        let t = token(r#"{"alg":"ES256"}"#, "{}", es);
        assert!(verify(t.as_bytes(), &keys, 0).is_ok());
        // Another key's kid: that one alone is tried.
        let t = token(r#"{"alg":"ES256","kid":"ed"}"#, "{}", es);
        assert_eq!(verify(t.as_bytes(), &keys, 0), Err(Invalid::Signature));
        let eddsa = |signed: &[u8]| ed.sign(signed).as_ref().to_vec();
        let t = token(r#"{"alg":"EdDSA"}"#, "{}", eddsa);
        assert!(verify(t.as_bytes(), &keys, 0).is_ok());

        // A public key is never an HMAC secret: a token "signed" with the
        // public key's bytes as one is refused.
        let as_secret = |signed: &[u8]| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, point);
            hmac::sign(&key, signed).as_ref().to_vec()
        };
        let t = token(r#"{"alg":"HS256","kid":"ec"}"#, "{}", as_secret);
        assert_eq!(verify(t.as_bytes(), &keys, 0), Err(Invalid::Signature));
    }

    /// RFC 7515 Appendix A.2's RSA modulus, in base64url.
    const RFC_7515_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx\
        HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs\
        D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH\
        SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV\
        MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8\
        NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

    /// RFC 7515 Appendix A.2: the RS256 example, its key and its token.
    #[test]
    fn the_rsa_example_of_rfc_7515_verifies() {
        let n = RFC_7515_N;
        let token = "eyJhbGciOiJSUzI1NiJ9\
            .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt\
            cGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
            .cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7\
            AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4\
            BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K\
            0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv\
            hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB\
            p0igcN_IoypGlUPQGe77Rw";
        let keys =
            Jwks::parse(format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAB"}}"#).as_bytes()).unwrap();
        assert_eq!(
            verify(token.as_bytes(), &keys, 1_300_819_379)
                .unwrap()
                .subject,
            None
        );
        assert_eq!(
            verify(token.as_bytes(), &keys, 1_300_819_380),
            Err(Invalid::Expired)
        );
        // The key made to say it is for PS256 alone: not for this token.
        let ps = format!(r#"{{"kty":"RSA","alg":"PS256","n":"{n}","e":"AQAB"}}"#);
        let keys = Jwks::parse(ps.as_bytes()).unwrap();
        assert_eq!(keys.summary(), "1 key: RSA for PS256");
        assert_eq!(verify(token.as_bytes(), &keys, 0), Err(Invalid::Signature));
    }

    /// RFC 7515 Appendix A.2's RSA key, private parts too, to sign with.
    fn rfc_7515_rsa_pair() -> (String, signature::RsaKeyPair) {
        let part = |text: &str| B64URL.decode(text.replace([' ', '\n'], "")).unwrap();
        let n = RFC_7515_N;
        let components = ring::rsa::KeyPairComponents {
            public_key: ring::rsa::PublicKeyComponents {
                n: part(n),
                e: part("AQAB"),
            },
            d: part(
                "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97I\
                 jlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0\
                 BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn\
                 439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYT\
                 CBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLh\
                 BOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ",
            ),
            p: part(
                "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdi\
                 YrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPG\
                 BY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc",
            ),
            q: part(
                "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YA\
                 mZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB\
                 -TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc",
            ),
            dP: part(
                "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3Q\
                 CLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb\
                 34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0",
            ),
            dQ: part(
                "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa\
                 7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-ky\
                 NlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU",
            ),
            qInv: part(
                "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2o\
                 y26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLU\
                 W0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U",
            ),
        };
        let pair = signature::RsaKeyPair::from_components(&components).unwrap();
        let jwks = format!(r#"{{"kty":"RSA","n":"{}","e":"AQAB"}}"#, n.replace(' ', ""));
        (jwks, pair)
    }

    #[test]
    fn each_algorithm_taken_verifies_a_token_signed_with_it() {
        let rng = SystemRandom::new();
        // HMAC: each hash with the one secret.
        let keys = oct_keys();
        for (name, alg) in [
            ("HS256", hmac::HMAC_SHA256),
            ("HS384", hmac::HMAC_SHA384),
            ("HS512", hmac::HMAC_SHA512),
        ] {
            let mac = |signed: &[u8]| {
                let key = hmac::Key::new(alg, SECRET);
                hmac::sign(&key, signed).as_ref().to_vec()
            };
            let t = token(&format!(r#"{{"alg":"{name}"}}"#), r#"{"sub":"ann"}"#, mac);
            assert!(verify(t.as_bytes(), &keys, 0).is_ok(), "{name}");
        }

        // RSA: PKCS #1 v1.5 and PSS, each hash, with one key.
        let (jwks, pair) = rfc_7515_rsa_pair();
        let keys = Jwks::parse(jwks.as_bytes()).unwrap();
        let rsa: [(&str, &'static dyn signature::RsaEncoding); 6] = [
            ("RS256", &signature::RSA_PKCS1_SHA256),
            ("RS384", &signature::RSA_PKCS1_SHA384),
            ("RS512", &signature::RSA_PKCS1_SHA512),
            ("PS256", &signature::RSA_PSS_SHA256),
            ("PS384", &signature::RSA_PSS_SHA384),
            ("PS512", &signature::RSA_PSS_SHA512),
        ];
        for (name, encoding) in rsa {
            let sign = |signed: &[u8]| {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(encoding, &rng, signed, &mut out).unwrap();
                out
            };
            let t = token(&format!(r#"{{"alg":"{name}"}}"#), "{}", sign);
            assert!(verify(t.as_bytes(), &keys, 0).is_ok(), "{name}");
            // Another hash named than the one signed with: refused.
            let other = if name.ends_with("256") { "384" } else { "256" };
            let relabelled = token(&format!(r#"{{"alg":"{}{other}"}}"#, &name[..2]), "{}", sign);
            assert_eq!(
                verify(relabelled.as_bytes(), &keys, 0),
                Err(Invalid::Signature),
                "{name} named {}{other}",
                &name[..2]
            );
        }

        // P-384, whose key verifies ES384 and nothing else.
        let alg = &signature::ECDSA_P384_SHA384_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let p384 = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = p384.public_key().as_ref();
        let jwks = format!(
            r#"{{"kty":"EC","crv":"P-384","x":"{}","y":"{}"}}"#,
            b64(&point[1..49]),
            b64(&point[49..])
        );
        let keys = Jwks::parse(jwks.as_bytes()).unwrap();
        let es = |signed: &[u8]| p384.sign(&rng, signed).unwrap().as_ref().to_vec();
        let t = token(r#"{"alg":"ES384"}"#, "{}", es);
        assert!(verify(t.as_bytes(), &keys, 0).is_ok());
        let t = token(r#"{"alg":"ES256"}"#, "{}", es);
        assert_eq!(verify(t.as_bytes(), &keys, 0), Err(Invalid::Signature));
    }

    #[test]
    fn a_token_of_up_to_the_longest_read_is_taken() {
        let keys = oct_keys();
        // Identity providers' tokens run to a few kilobytes, with groups
        // and roles among their claims: one of 16 KiB is taken. Padded
        // claims grow a token one or two bytes a step; a padded header
        // makes up the odd byte.
        let padded = |claims: usize, header: usize| {
            let claims = format!(r#"{{"groups":"{}"}}"#, "g".repeat(claims));
            let header = format!(r#"{{"alg":"HS256","typ":"{}"}}"#, "J".repeat(header));
            token(&header, &claims, hs256)
        };
        let longest_taken = 16 * 1024;
        let from = longest_taken * 3 / 4 - 128;
        let (claims, header) = (from..from + 128)
            .flat_map(|c| (0..3).map(move |h| (c, h)))
            .find(|&(c, h)| padded(c, h).len() == longest_taken)
            .unwrap();
        let longest = padded(claims, header);
        assert!(verify(longest.as_bytes(), &keys, 0).is_ok());
        let over = padded(claims + 1, header);
        assert_eq!(verify(over.as_bytes(), &keys, 0), Err(Invalid::Malformed));
    }

    #[test]
    fn a_key_file_is_read_up_to_one_mebibyte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let one = format!(r#"{{"kty":"oct","k":"{}"}}"#, b64(SECRET));
        // Blanks after the key, to exactly the most read, and one more.
        let mut text = one.into_bytes();
        text.resize(json_value::MAX_JSON, b' ');
        std::fs::write(&path, &text).unwrap();
        let keys = Jwks::read(&path).unwrap();
        assert_eq!((keys.len(), keys.is_empty()), (1, false));
        text.push(b' ');
        std::fs::write(&path, &text).unwrap();
        let e = Jwks::read(&path).unwrap_err();
        assert!(e.contains("larger than 1 MiB"), "{e}");
    }

    #[test]
    fn a_key_set_holds_at_most_32_signing_keys_but_any_number_for_encryption() {
        let key = format!(r#"{{"kty":"oct","k":"{}"}}"#, b64(SECRET));
        let encrypting = r#"{"kty":"oct","use":"enc","k":"AAAA"}"#;
        let set = |signing: usize, others: usize| {
            let keys: Vec<&str> = (std::iter::repeat_n(key.as_str(), signing))
                .chain(std::iter::repeat_n(encrypting, others))
                .collect();
            Jwks::parse(format!(r#"{{"keys":[{}]}}"#, keys.join(",")).as_bytes())
        };
        assert_eq!(set(32, 100).unwrap().len(), 32);
        let e = set(33, 0).unwrap_err();
        assert!(e.contains("33 signing keys, more than 32"), "{e}");
    }

    #[test]
    fn a_key_file_is_refused_with_what_is_wrong_in_it() {
        let refused = [
            ("{", "not JSON"),
            (r#"{"keys":{}}"#, "not an array"),
            (r#"{"keys":[]}"#, "no signing key"),
            (
                r#"{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}"#,
                "an HMAC secret of 5 bytes",
            ),
            (
                r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#,
                "an RSA key of 24 bits",
            ),
            (
                r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#,
                "32 bytes each",
            ),
            // One coordinate of the right size is not enough.
            (
                &format!(
                    r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}"}}"#,
                    x = "A".repeat(43),
                    y = "A".repeat(42)
                ),
                "32 bytes each",
            ),
            (r#"{"keys":[{"kid":"k1","k":"AA"}]}"#, "key `k1`: no `kty`"),
            (r#"{"keys":[{"kty":"oct","k":"!!"}]}"#, "not base64url"),
            (r#"{"keys":[{"kty":"oct","k":7}]}"#, "`k` is not a string"),
        ];
        for (text, says) in refused {
            let e = Jwks::parse(text.as_bytes()).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        let secret = b64(SECRET);
        let e = Jwks::parse(format!(r#"{{"kty":"oct","alg":"RS256","k":"{secret}"}}"#).as_bytes())
            .unwrap_err();
        assert!(e.contains("`alg` RS256 is not one of a oct key"), "{e}");
    }

    #[test]
    fn the_token_is_the_one_bearer_field() {
        use crate::http::Headers;
        let headers = |fields: &[&str]| {
            let mut h = Headers::new();
            for f in fields {
                h.push("Authorization", f.as_bytes());
            }
            h
        };
        let one = headers(&["bearer  abc.def.ghi "]);
        assert_eq!(bearer_token(&one), Some(&b"abc.def.ghi"[..]));
        for fields in [
            &[][..],
            &["Basic YTpi"],
            &["Bearer"],
            &["Bearer "],
            &["Bearer a", "Bearer b"],
        ] {
            assert_eq!(bearer_token(&headers(fields)), None, "{fields:?}");
        }
        // From a cookie, for a request without the field.
        let with = |fields: &[(&str, &str)]| {
            let mut h = Headers::new();
            for (name, value) in fields {
                h.push(name, value.as_bytes());
            }
            h
        };
        let cookie = with(&[("Cookie", "a=1; jwt=abc.def.ghi")]);
        assert_eq!(
            super::token(&cookie, None, Some("jwt")),
            Some(&b"abc.def.ghi"[..])
        );
        assert_eq!(super::token(&cookie, None, None), None);
        assert_eq!(super::token(&cookie, None, Some("other")), None);
        let twice = with(&[("Cookie", "jwt=a.b.c"), ("Cookie", "jwt=d.e.f")]);
        assert_eq!(
            super::token(&twice, None, Some("jwt")),
            None,
            "which would a backend read?"
        );
        let empty = with(&[("Cookie", "jwt=")]);
        assert_eq!(super::token(&empty, None, Some("jwt")), None);
        let field_first = with(&[("Authorization", "Basic x"), ("Cookie", "jwt=a.b.c")]);
        assert_eq!(
            super::token(&field_first, None, Some("jwt")),
            None,
            "the field's, not a Bearer"
        );
        // `auth_jwt_header`: its one field's whole value, Authorization
        // left alone; without the field, the cookie.
        let assertion = with(&[
            ("Authorization", "Bearer x.y.z"),
            ("Cf-Access-Jwt-Assertion", " a.b.c "),
            ("Cookie", "jwt=d.e.f"),
        ]);
        let from = Some("cf-access-jwt-assertion");
        assert_eq!(super::token(&assertion, from, None), Some(&b"a.b.c"[..]));
        assert_eq!(
            super::token(&assertion, from, Some("jwt")),
            Some(&b"a.b.c"[..])
        );
        assert_eq!(
            super::token(&field_first, from, Some("jwt")),
            Some(&b"a.b.c"[..])
        );
        assert_eq!(super::token(&field_first, from, None), None);
        let two = with(&[("X-Token", "a.b.c"), ("X-Token", "d.e.f")]);
        assert_eq!(super::token(&two, Some("x-token"), None), None);
        let blank = with(&[("X-Token", " ")]);
        assert_eq!(super::token(&blank, Some("x-token"), None), None);
        assert_eq!(
            challenge("api", true),
            "WWW-Authenticate: Bearer realm=\"api\", error=\"invalid_token\"\r\n"
        );
        // A valid token, for a bearer not allowed here (RFC 6750 §3.1).
        assert_eq!(
            challenge_forbidden("api"),
            "WWW-Authenticate: Bearer realm=\"api\", error=\"insufficient_scope\"\r\n"
        );
    }

    #[test]
    fn only_a_token_naming_a_key_the_set_lacks_has_the_keys_asked_for_again() {
        let key = |kid: &str| format!(r#"{{"kty":"oct","kid":"{kid}","k":"{}"}}"#, b64(SECRET));
        let set = format!(r#"{{"keys":[{},{}]}}"#, key("a"), key("b"));
        let keys = Jwks::parse(set.as_bytes()).unwrap();
        let claims = r#"{"sub":"ann"}"#;
        let naming = |header: &str| token(header, claims, hs256);
        assert!(names_unknown_key(
            naming(r#"{"alg":"HS256","kid":"c"}"#).as_bytes(),
            &keys
        ));
        // A key without a `kid` is not the one a token names.
        let kid_a = naming(r#"{"alg":"HS256","kid":"a"}"#);
        assert!(names_unknown_key(kid_a.as_bytes(), &oct_keys()));
        // Known, or naming none, or not a token at all: nothing to fetch.
        for t in [
            kid_a,
            naming(r#"{"alg":"HS256","kid":"b"}"#),
            naming(r#"{"alg":"HS256"}"#),
            naming(r#"{"alg":"HS256","kid":7}"#),
            naming(r#"["kid","c"]"#),
            "!!.e30.x".to_string(),
            String::new(),
        ] {
            assert!(!names_unknown_key(t.as_bytes(), &keys), "{t}");
        }
    }
}
