//! `auth_basic`: HTTP Basic authentication (RFC 7617) of the clients of
//! the proxy or of a pool, against an htpasswd file, as nginx's
//! `auth_basic` with `auth_basic_user_file` and HAProxy's `userlist` with
//! `http_auth`.

pub mod htpasswd;
mod md5_crypt;

pub use htpasswd::{Users, UsersError};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};

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

/// The user name a request's `Authorization` field gives, whether or not
/// its password is right (nginx's `$remote_user`): for the access log.
/// Not valid UTF-8: each bad sequence shown as U+FFFD.
pub fn claimed_user(headers: &crate::http::Headers) -> Option<String> {
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

    #[test]
    fn the_claimed_user_is_read_from_one_field_alone() {
        let mut headers = crate::http::Headers::default();
        assert_eq!(claimed_user(&headers), None);
        headers.push("Authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(claimed_user(&headers).as_deref(), Some("Aladdin"));
        headers.push("Authorization", "Basic YTpiOmM=");
        assert_eq!(claimed_user(&headers), None);
    }
}
