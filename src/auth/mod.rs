//! `auth_basic`: HTTP Basic authentication (RFC 7617) of the clients of
//! the proxy or of a pool, against an htpasswd file, as nginx's
//! `auth_basic` with `auth_basic_user_file` and HAProxy's `userlist` with
//! `http_auth`; and, in [`jwt`], `auth_jwt`: JSON Web Tokens checked
//! against an identity provider's keys, read or fetched ([`jwt_keys`],
//! found from its discovery document: [`discovery`]), and what their
//! claims must say ([`jwt_require`]).

pub mod discovery;
pub mod htpasswd;
pub mod jwt;
pub mod jwt_keys;
pub mod jwt_require;
mod md5_crypt;

pub use htpasswd::{Users, UsersError};

use crate::http::headers::read_alike;
use crate::http::Headers;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use std::sync::{Arc, Weak};

/// Base64 as RFC 7617 sends it (RFC 4648's alphabet), its padding taken
/// whether or not it is there: some clients leave it out.
const CREDENTIALS_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A user name and password sent in `Authorization: Basic <base64>`.
pub struct Credentials {
    /// `user:password`, decoded.
    decoded: Vec<u8>,
    /// Where the first `:` is: the user name cannot hold one, the
    /// password can.
    colon: usize,
}

impl Credentials {
    /// The credentials in an `Authorization` field's value, if it holds
    /// Basic ones: the scheme in any case, then one or more spaces and the
    /// base64 of `user:password`. Any other scheme, bad base64 or no `:`:
    /// none.
    pub fn from_field(value: &[u8]) -> Option<Credentials> {
        let value = value.trim_ascii();
        let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
        if !scheme.eq_ignore_ascii_case(b"basic") {
            return None;
        }
        let decoded = CREDENTIALS_BASE64.decode(rest.trim_ascii_start()).ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        Some(Credentials { decoded, colon })
    }

    pub fn user(&self) -> &[u8] {
        &self.decoded[..self.colon]
    }

    pub fn password(&self) -> &[u8] {
        &self.decoded[self.colon + 1..]
    }
}

/// Why a request was refused its sign-in, as counted: it carried no
/// Basic credentials (a browser's first request, before it asks its user),
/// or credentials that are not a user's and password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    Missing,
    Wrong,
    /// A valid token whose claims do not say what `auth_jwt_require`
    /// asks (403).
    Forbidden,
}

/// The credentials a connection last had accepted, with the users they
/// were checked against: the same field on the same connection, with the
/// same users file, is not checked again. A check is slow on purpose
/// (bcrypt, SHA-crypt: milliseconds) and a browser sends the field with
/// every request. Only the connection that sent them keeps them: nothing
/// one client sends changes what another is asked.
#[derive(Default)]
pub struct Granted {
    /// Weak: an idle connection does not keep a replaced file's users in
    /// memory (the allocation stays, so its address is not reused).
    last: Option<(Weak<Users>, Vec<u8>)>,
}

/// Whether the request with `headers` signs in as one of `users`. One
/// `Authorization` field with Basic credentials is read; two are refused,
/// as a client that sent both could not say which one it meant.
pub fn check(users: &Arc<Users>, headers: &Headers, granted: &mut Granted) -> Result<(), Refused> {
    let mut fields = headers.get_all("authorization");
    let field = fields.next().ok_or(Refused::Missing)?;
    if fields.next().is_some() {
        return Err(Refused::Wrong);
    }
    if let Some((checked, accepted)) = &granted.last {
        if std::ptr::eq(checked.as_ptr(), Arc::as_ptr(users)) && accepted == field {
            return Ok(());
        }
    }
    let credentials = Credentials::from_field(field).ok_or(Refused::Missing)?;
    if !users.verify(credentials.user(), credentials.password()) {
        return Err(Refused::Wrong);
    }
    granted.last = Some((Arc::downgrade(users), field.to_vec()));
    Ok(())
}

/// The `WWW-Authenticate` line of a 401, whole.
pub fn challenge(realm: &str) -> String {
    format!("WWW-Authenticate: Basic realm=\"{realm}\", charset=\"UTF-8\"\r\n")
}

/// Whether the field `name` carries credentials (`Authorization`,
/// `Proxy-Authorization`, or `_` for `-` as a backend may read them):
/// the access log writes them redacted.
pub fn is_credentials_field(name: &str) -> bool {
    ["authorization", "proxy-authorization"]
        .iter()
        .any(|f| read_alike(f.as_bytes(), name.as_bytes()))
}

/// The authentication schemes a credentials field is logged with: those
/// IANA registers, and those in wide use beside them. Any other first
/// word may be the start of the secret (`hunter two`).
const SCHEMES: [&str; 17] = [
    "AWS4-HMAC-SHA256",
    "Basic",
    "Bearer",
    "Concealed",
    "Digest",
    "DPoP",
    "GNAP",
    "HOBA",
    "Mutual",
    "Negotiate",
    "NTLM",
    "OAuth",
    "PrivateToken",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "Token",
    "vapid",
];

/// A credentials field's value as the access log writes it: its scheme
/// alone (`Basic [redacted]`), so that the log holds no password, right
/// or guessed. A value that does not start with a known scheme and a
/// space is all secret.
pub fn redacted(value: &str) -> String {
    let value = value.trim();
    let scheme = value
        .split_once([' ', '\t'])
        .map(|(scheme, _)| scheme)
        .filter(|s| SCHEMES.iter().any(|known| known.eq_ignore_ascii_case(s)));
    match scheme {
        Some(scheme) => format!("{scheme} [redacted]"),
        None => "[redacted]".to_string(),
    }
}

/// The user name a request's `Authorization` field gives, whether or not
/// its password is right (nginx's `$remote_user`): for the access log.
/// Not valid UTF-8: each bad sequence shown as U+FFFD.
pub fn claimed_user(headers: &Headers) -> Option<String> {
    let mut fields = headers.get_all("authorization");
    let credentials = Credentials::from_field(fields.next()?)?;
    // Two: neither is taken (see `check`).
    if fields.next().is_some() {
        return None;
    }
    Some(String::from_utf8_lossy(credentials.user()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(value: &str) -> Option<(String, String)> {
        Credentials::from_field(value.as_bytes()).map(|c| {
            (
                String::from_utf8(c.user().to_vec()).unwrap(),
                String::from_utf8(c.password().to_vec()).unwrap(),
            )
        })
    }

    #[test]
    fn basic_credentials_are_decoded_in_any_case_of_the_scheme() {
        // RFC 7617 §2's example.
        let expected = Some(("Aladdin".into(), "open sesame".into()));
        assert_eq!(parsed("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), expected);
        assert_eq!(parsed("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), expected);
        assert_eq!(parsed("BASIC   QWxhZGRpbjpvcGVuIHNlc2FtZQ== "), expected);
        // Without its padding.
        assert_eq!(parsed("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ"), expected);
    }

    #[test]
    fn the_password_may_hold_a_colon_and_either_part_be_empty() {
        // "a:b:c"
        assert_eq!(parsed("Basic YTpiOmM="), Some(("a".into(), "b:c".into())));
        // ":"
        assert_eq!(parsed("Basic Og=="), Some((String::new(), String::new())));
    }

    #[test]
    fn other_schemes_bad_base64_and_no_colon_give_no_credentials() {
        assert_eq!(parsed("Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), None);
        assert_eq!(parsed("Basic"), None);
        assert_eq!(parsed("Basic "), None);
        assert_eq!(parsed("Basic QWxh*GRpbg=="), None);
        // "Aladdin": no colon.
        assert_eq!(parsed("Basic QWxhZGRpbg=="), None);
        assert_eq!(parsed("BasicQWxhZGRpbjpvcGVuIHNlc2FtZQ=="), None);
    }

    /// ann's password is `secret` (`openssl passwd -apr1`).
    fn ann() -> Arc<Users> {
        let text = "ann:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\n";
        Arc::new(Users::parse(std::path::Path::new("users"), text).unwrap())
    }

    fn asking(fields: &[&str]) -> Headers {
        let mut headers = Headers::default();
        for field in fields {
            headers.push("Authorization", field);
        }
        headers
    }

    /// `ann:secret`, `ann:wrong`, `bob:secret`.
    const ANN: &str = "Basic YW5uOnNlY3JldA==";
    const ANN_WRONG: &str = "Basic YW5uOndyb25n";
    const BOB: &str = "Basic Ym9iOnNlY3JldA==";

    #[test]
    fn a_user_and_password_of_the_file_sign_in_and_nothing_else_does() {
        let users = ann();
        let check = |fields: &[&str]| check(&users, &asking(fields), &mut Granted::default());
        assert_eq!(check(&[ANN]), Ok(()));
        assert_eq!(check(&["basic  YW5uOnNlY3JldA"]), Ok(()));
        assert_eq!(check(&[]), Err(Refused::Missing));
        assert_eq!(check(&["Bearer YW5uOnNlY3JldA=="]), Err(Refused::Missing));
        assert_eq!(check(&[ANN_WRONG]), Err(Refused::Wrong));
        assert_eq!(check(&[BOB]), Err(Refused::Wrong));
        // Right and wrong together: neither counts.
        assert_eq!(check(&[ANN, ANN_WRONG]), Err(Refused::Wrong));
        assert_eq!(check(&[ANN, ANN]), Err(Refused::Wrong));
    }

    #[test]
    fn what_a_connection_had_accepted_counts_for_its_users_file_alone() {
        let users = ann();
        let mut granted = Granted::default();
        assert_eq!(check(&users, &asking(&[ANN]), &mut granted), Ok(()));
        assert!(granted.last.is_some());
        // Accepted again without a check; another field is checked.
        assert_eq!(check(&users, &asking(&[ANN]), &mut granted), Ok(()));
        assert_eq!(
            check(&users, &asking(&[ANN_WRONG]), &mut granted),
            Err(Refused::Wrong)
        );
        // The same file read again (a reload): checked again. A file
        // without ann refuses what the connection had accepted.
        let other = Arc::new(
            Users::parse(
                std::path::Path::new("users"),
                "bob:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\n",
            )
            .unwrap(),
        );
        assert_eq!(
            check(&other, &asking(&[ANN]), &mut granted),
            Err(Refused::Wrong)
        );
        assert_eq!(check(&other, &asking(&[BOB]), &mut granted), Ok(()));
    }

    #[test]
    fn the_challenge_names_the_realm_and_utf_8() {
        assert_eq!(
            challenge("Staff only"),
            "WWW-Authenticate: Basic realm=\"Staff only\", charset=\"UTF-8\"\r\n"
        );
    }

    #[test]
    fn credentials_are_logged_by_their_scheme_alone() {
        assert_eq!(redacted("Basic YW5uOnNlY3JldA=="), "Basic [redacted]");
        assert_eq!(redacted(" Bearer\tabc.def "), "Bearer [redacted]");
        assert_eq!(redacted("negotiate YII="), "negotiate [redacted]");
        let all_secret = [
            "sk_live_SECRET",
            "Basic,YW5u",
            "a1b2 c3",
            "",
            "Basic",
            "hunter two",
            "Basics two",
        ];
        for all_secret in all_secret {
            assert_eq!(redacted(all_secret), "[redacted]", "{all_secret:?}");
        }
        assert!(is_credentials_field("Proxy-Authorization"));
        assert!(is_credentials_field("AUTHORIZATION"));
        assert!(is_credentials_field("Proxy_Authorization"));
        assert!(!is_credentials_field("X-Authorization"));
    }

    #[test]
    fn the_claimed_user_is_read_from_one_field_alone() {
        let mut headers = Headers::default();
        assert_eq!(claimed_user(&headers), None);
        headers.push("Authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(claimed_user(&headers).as_deref(), Some("Aladdin"));
        headers.push("Authorization", "Basic YTpiOmM=");
        assert_eq!(claimed_user(&headers), None);
    }
}
