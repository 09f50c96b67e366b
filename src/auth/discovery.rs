//! `auth_jwt_key_request` naming a provider's OpenID discovery document
//! (`/.well-known/openid-configuration`, OpenID Connect Discovery 1.0
//! §4) rather than its key set: the document's `jwks_uri` says where the
//! keys are, and is asked of the same pool at each fetch, so that a
//! provider that moves its keys during a rotation is followed.
//!
//! The document is the provider's, fetched over the network: untrusted
//! bytes. Read with the project's JSON reader (size and depth bounded),
//! and its `jwks_uri` never followed anywhere but to the pool asked (see
//! [`Discovery::jwks_path`]).

use super::jwt::Jwks;
use crate::json_value::{self, Value};
use crate::variables::host_of;

/// What a fetch of `auth_jwt_key_request`'s path gave.
#[derive(Debug, PartialEq)]
pub enum KeyDocument {
    /// A key set (RFC 7517), as before.
    Keys(Jwks),
    /// Provider metadata (OpenID Connect Discovery 1.0 §3).
    Discovery(Discovery),
}

/// What the proxy reads of a provider's metadata.
#[derive(Debug, PartialEq, Eq)]
pub struct Discovery {
    /// `issuer`, when the document names one.
    pub issuer: Option<String>,
    /// `jwks_uri`, as written.
    pub jwks_uri: String,
}

/// Why a discovery document is not followed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("`{0}` of the discovery document is not a string")]
    NotAString(&'static str),
    #[error("the discovery document names issuer {found}, auth_jwt_issuer asks for {wanted}")]
    OtherIssuer { found: String, wanted: String },
    #[error("the discovery document names no issuer, auth_jwt_issuer asks for {0}")]
    NoIssuer(String),
    #[error("jwks_uri {0} is not an http(s) URL of a path")]
    NotAUrl(String),
    #[error(
        "jwks_uri {uri} is on host {found}, not {asked} that the document was asked of: \
         the pool serves that host alone (set the pool's request_header.Host to the \
         provider's name, or give the jwks path itself)"
    )]
    OtherHost {
        uri: String,
        found: String,
        asked: String,
    },
}

impl KeyDocument {
    /// Reads a fetched body: a JSON object with `jwks_uri` is provider
    /// metadata, anything else is read as a key set (an error if it is
    /// none).
    pub fn read(body: &[u8]) -> Result<KeyDocument, String> {
        let value = json_value::parse(body).map_err(|e| format!("not JSON: {e}"))?;
        // A key set has `keys` (or is one key, with `kty`); a provider's
        // metadata never has either, and always `jwks_uri`.
        let Some(uri) = value.get("jwks_uri") else {
            // Read again by the key set's own reader, as a key file is:
            // once per fetch, of at most 1 MiB.
            return Jwks::parse(body).map(KeyDocument::Keys);
        };
        let text = |value: &Value, name| {
            (value.as_str().map(str::to_string)).ok_or(DiscoveryError::NotAString(name))
        };
        let jwks_uri = text(uri, "jwks_uri").map_err(|e| e.to_string())?;
        let issuer = (value.get("issuer").map(|issuer| text(issuer, "issuer")))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(KeyDocument::Discovery(Discovery { issuer, jwks_uri }))
    }
}

impl Discovery {
    /// The document must be the issuer's whose tokens are taken, when
    /// `auth_jwt_issuer` names one (OpenID Connect Discovery 1.0 §4.3:
    /// the same string, whole): another provider's keys would verify
    /// tokens the scope refuses anyway, and a document without an issuer
    /// cannot vouch for one.
    pub fn check_issuer(&self, wanted: Option<&str>) -> Result<(), DiscoveryError> {
        let Some(wanted) = wanted else {
            return Ok(());
        };
        match &self.issuer {
            Some(found) if found == wanted => Ok(()),
            Some(found) => Err(DiscoveryError::OtherIssuer {
                found: shown(found),
                wanted: shown(wanted),
            }),
            None => Err(DiscoveryError::NoIssuer(shown(wanted))),
        }
    }

    /// What is asked of the pool for the key set: `jwks_uri`'s path and
    /// query, when it names the host the document was asked of (`asked`,
    /// the Host field the fetch sent), ports aside; a path alone is of
    /// that host too.
    ///
    /// The pool's targets are that host's servers: a `jwks_uri` on another
    /// host (Google's discovery document, on `accounts.google.com`, puts
    /// its keys on `www.googleapis.com`) is a server the pool may not be,
    /// which would answer another site's page or a 404, and following it
    /// to wherever it says would let whoever writes the document send the
    /// proxy anywhere. Ports are set aside: the proxy often reaches the
    /// provider on a port of its own (`keycloak:8080`) behind the public
    /// `https://id.example.com` the document names.
    pub fn jwks_path(&self, asked: &str) -> Result<String, DiscoveryError> {
        let uri = &self.jwks_uri;
        let not_a_url = || DiscoveryError::NotAUrl(shown(uri));
        let (authority, rest) = split_url(uri).ok_or_else(not_a_url)?;
        // The fragment is the client's, never sent; `https://host?x` asks
        // for `/?x`.
        let rest = rest.split('#').next().unwrap_or_default();
        let path = match rest.starts_with('/') {
            true => rest.to_string(),
            false => format!("/{rest}"),
        };
        // A request line no server takes, and a log line of a megabyte.
        if !crate::config::is_origin_path(&path) || path.len() > crate::rewrite::MAX_TARGET_LEN {
            return Err(not_a_url());
        }
        if let Some(authority) = authority {
            let (found, asked) = (host_of(authority), host_of(asked));
            if !found.eq_ignore_ascii_case(asked) {
                return Err(DiscoveryError::OtherHost {
                    uri: shown(uri),
                    found: shown(found),
                    asked: shown(asked),
                });
            }
        }
        Ok(path)
    }
}

/// An `http`/`https` URL's authority and what follows it (RFC 3986 §3), or
/// a path alone (`None` for the authority); `None` for anything else.
fn split_url(uri: &str) -> Option<(Option<&str>, &str)> {
    if uri.starts_with('/') && !uri.starts_with("//") {
        return Some((None, uri));
    }
    let (scheme, rest) = uri.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    // A user name (`evil@`) reads as another host to some.
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some((Some(authority), path))
}

/// A value of the document as a log line shows it: quoted, escaped, and
/// cut short.
fn shown(text: &str) -> String {
    const MOST: usize = 200;
    let cut: String = text.chars().take(MOST).collect();
    format!("{:?}", cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &str = r#"{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}"#;

    fn discovery(text: &str) -> Discovery {
        match KeyDocument::read(text.as_bytes()) {
            Ok(KeyDocument::Discovery(found)) => found,
            other => panic!("{other:?}"),
        }
    }

    fn at(jwks_uri: &str) -> Discovery {
        let issuer = Some("https://id.example.com/realms/shop".to_string());
        let jwks_uri = jwks_uri.to_string();
        Discovery { issuer, jwks_uri }
    }

    #[test]
    fn a_document_with_jwks_uri_is_discovery_and_anything_else_a_key_set() {
        // Keycloak's, shortened: the members the proxy does not read are
        // left alone, whatever they hold.
        let keycloak = r#"{"issuer":"https://id.example.com/realms/shop",
            "authorization_endpoint":"https://id.example.com/realms/shop/protocol/openid-connect/auth",
            "jwks_uri":"https://id.example.com/realms/shop/protocol/openid-connect/certs",
            "response_types_supported":["code","id_token"],"mtls_endpoint_aliases":{"x":1}}"#;
        assert_eq!(
            discovery(keycloak),
            Discovery {
                issuer: Some("https://id.example.com/realms/shop".into()),
                jwks_uri: "https://id.example.com/realms/shop/protocol/openid-connect/certs".into(),
            }
        );
        let no_issuer = discovery(r#"{"jwks_uri":"/certs"}"#);
        assert_eq!(no_issuer.issuer, None);
        assert_eq!(
            KeyDocument::read(KEYS.as_bytes()),
            Jwks::parse(KEYS.as_bytes()).map(KeyDocument::Keys)
        );
        for (text, says) in [
            (
                r#"{"jwks_uri":7}"#,
                "`jwks_uri` of the discovery document is not a string",
            ),
            (
                r#"{"jwks_uri":"/c","issuer":null}"#,
                "`issuer` of the discovery document is not a string",
            ),
            (r#"{"issuer":"https://id.example.com"}"#, "key 1:"),
            ("{\"jwks_uri\":\"/c\"", "not JSON"),
            ("[]", ""),
        ] {
            let e = KeyDocument::read(text.as_bytes()).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn no_bytes_make_the_reader_panic() {
        let samples: [&[u8]; 6] = [
            b"",
            b"\xff\xfe{",
            b"{\"jwks_uri\":\"\\u0000\"}",
            b"{\"jwks_uri\":\"https://\"}",
            b"{\"jwks_uri\":\"https://[::1\"}",
            b"{\"jwks_uri\":\"https://\xc3\xa9:1\"}",
        ];
        for bytes in samples {
            if let Ok(KeyDocument::Discovery(d)) = KeyDocument::read(bytes) {
                assert!(d.jwks_path("id.example.com").is_err(), "{bytes:?}");
            }
        }
        // Every prefix of a document, cut anywhere (inside a character
        // too), is read or refused.
        let text = "{\"issuer\":\"https://é.example\",\"jwks_uri\":\"https://[::1]:8/k?a#f\"}";
        for end in 0..=text.len() {
            let _ = KeyDocument::read(&text.as_bytes()[..end]);
        }
    }

    #[test]
    fn the_issuer_must_be_the_one_auth_jwt_issuer_names_when_it_names_one() {
        let shop = "https://id.example.com/realms/shop";
        let found = at("/certs");
        assert_eq!(found.check_issuer(None), Ok(()));
        assert_eq!(found.check_issuer(Some(shop)), Ok(()));
        // Compared whole, as a token's `iss` is.
        let e = found.check_issuer(Some("https://id.example.com/realms/shop/"));
        assert_eq!(
            e.unwrap_err().to_string(),
            "the discovery document names issuer \"https://id.example.com/realms/shop\", \
             auth_jwt_issuer asks for \"https://id.example.com/realms/shop/\""
        );
        let anonymous = Discovery {
            issuer: None,
            jwks_uri: "/certs".into(),
        };
        assert_eq!(anonymous.check_issuer(None), Ok(()));
        assert_eq!(
            anonymous.check_issuer(Some(shop)),
            Err(DiscoveryError::NoIssuer(format!("{shop:?}")))
        );
    }

    #[test]
    fn jwks_uri_gives_a_path_of_the_host_asked_and_of_no_other() {
        let asked = "id.example.com";
        for (uri, path) in [
            (
                "https://id.example.com/realms/shop/protocol/openid-connect/certs",
                "/realms/shop/protocol/openid-connect/certs",
            ),
            // Another port, scheme or case: the same host.
            ("http://ID.Example.com:8443/certs?v=2#top", "/certs?v=2"),
            ("https://id.example.com", "/"),
            ("https://id.example.com?v=2", "/?v=2"),
            // A path alone is of the host asked.
            ("/oauth2/v3/certs", "/oauth2/v3/certs"),
        ] {
            assert_eq!(at(uri).jwks_path(asked).as_deref(), Ok(path), "{uri}");
        }
        // The Host sent may carry the target's port.
        assert_eq!(
            at("https://id.example.com/c")
                .jwks_path("id.example.com:8080")
                .as_deref(),
            Ok("/c")
        );
        assert_eq!(
            at("http://[::1]:9/c").jwks_path("[::1]:8080").as_deref(),
            Ok("/c")
        );
        assert_eq!(
            at("http://127.0.0.1:9/c")
                .jwks_path("127.0.0.1:8080")
                .as_deref(),
            Ok("/c")
        );

        // Google's keys are on another host than its document.
        let google =
            at("https://www.googleapis.com/oauth2/v3/certs").jwks_path("accounts.google.com");
        assert_eq!(
            google,
            Err(DiscoveryError::OtherHost {
                uri: "\"https://www.googleapis.com/oauth2/v3/certs\"".into(),
                found: "\"www.googleapis.com\"".into(),
                asked: "\"accounts.google.com\"".into(),
            })
        );
        for elsewhere in [
            "https://id.example.com.evil.example/certs",
            "https://evil.example/id.example.com/certs",
            "https://127.0.0.1/certs",
        ] {
            let e = at(elsewhere).jwks_path(asked);
            assert!(
                matches!(e, Err(DiscoveryError::OtherHost { .. })),
                "{elsewhere}: {e:?}"
            );
        }
        for not_a_url in [
            "",
            "certs",
            "//evil.example/certs",
            "ftp://id.example.com/certs",
            "file:///etc/passwd",
            "https://user@id.example.com/certs",
            "https://id.example.com@evil.example/certs",
            "https:///certs",
            "https://id.example.com/certs\r\nX-Evil: 1",
            "https://id.example.com/a b",
            "https://id.example.com/é",
            "https://id.example.com//evil.example/certs",
            &format!("/{}", "a".repeat(crate::rewrite::MAX_TARGET_LEN)),
        ] {
            let e = at(not_a_url).jwks_path(asked);
            assert!(
                matches!(e, Err(DiscoveryError::NotAUrl(_))),
                "{not_a_url:?}: {e:?}"
            );
        }
    }
}
