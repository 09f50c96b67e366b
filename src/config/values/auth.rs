//! Signing in: `auth_request` and its redirect and fields, and
//! `auth_basic`'s realm and users.

use super::header_fields::REQUEST_OWNED;
use crate::config::FieldFamily;
use crate::field_value::FieldValue;
use std::sync::Arc;

/// `<pool> <path>`: a GET of the path asked of the pool, by
/// `auth_request` (each request first) and `auth_jwt_key_request` (the
/// keys tokens are signed by).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRequest {
    /// As written.
    pub pool_name: Arc<str>,
    /// Its index in the pools, known once they are.
    pub pool: usize,
    /// Origin-form: `/` and visible ASCII.
    pub path: Box<str>,
}

impl PoolRequest {
    /// `<pool> <path>`; empty or `off`: none.
    pub(in crate::config) fn parse(v: &str) -> Result<Option<PoolRequest>, String> {
        if v.is_empty() || v.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let mut words = v.split_whitespace();
        let (Some(pool), Some(path), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "`{}`: give the pool that answers and the path it is asked (`sso /verify`)",
                v.escape_debug()
            ));
        };
        if !is_origin_path(path) {
            return Err(format!(
                "`{}` is not a path: it starts with one `/`, and holds visible ASCII only",
                path.escape_debug()
            ));
        }
        Ok(Some(PoolRequest {
            pool_name: pool.into(),
            pool: 0,
            path: path.into(),
        }))
    }
}

/// Whether `path` may be sent as a request's target: origin-form, one
/// `/` first (`//x` reads as another host to some servers), and visible
/// ASCII only (nothing that would end the request line).
pub fn is_origin_path(path: &str) -> bool {
    path.starts_with('/') && !path.starts_with("//") && path.bytes().all(|b| b.is_ascii_graphic())
}

/// `auth_request`: a [`PoolRequest`] of a pool of its own.
pub(in crate::config) fn parse_auth_request(v: &str) -> Result<Option<PoolRequest>, String> {
    let asked = PoolRequest::parse(v)?;
    if asked
        .as_ref()
        .is_some_and(|a| &*a.pool_name == super::DEFAULT_POOL)
    {
        return Err(
            "the service goes in a pool of its own (`pool.<name> = host:port`), which its \
             sign-in pages are routed to and which is never asked about its own requests"
                .into(),
        );
    }
    Ok(asked)
}

/// `auth_request_redirect`: a path (`/oauth2/start?rd=$request_uri`) or
/// an `http://` or `https://` URL (its scheme may be `$scheme`), with the
/// variables a request's field may hold; empty or `off`: none.
pub(in crate::config) fn parse_auth_redirect(v: &str) -> Result<Option<FieldValue>, String> {
    if v.is_empty() || v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    // The host is written, never a variable's: `$host` would let a client
    // name where it is sent (a `//` path too reads as a host to browsers).
    let after_scheme = ["http://", "https://", "$scheme://", "${scheme}://"]
        .iter()
        .find_map(|scheme| v.strip_prefix(scheme));
    let well_placed = match after_scheme {
        Some(rest) => rest
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'['),
        None => v.starts_with('/') && !v.starts_with("//"),
    };
    // The host ends before any variable: none can lengthen it, nor make
    // it a user name (`https://sso.example$x` with `@evil.example`); nor
    // can one start a path with another `/`, which browsers read as a host.
    let host_ends_written = after_scheme.map_or(!v.starts_with("/$"), |rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        !host.contains('$')
    });
    if !well_placed || !host_ends_written {
        return Err(format!(
            "`{}`: give a path (`/oauth2/start?rd=$request_uri`) or a URL with its host written \
             (`https://sso.example.com/login?rd=$scheme://$host$request_uri`)",
            v.escape_debug()
        ));
    }
    // Browsers read `/\` as `//`, another host; `#` would put what
    // follows in the fragment, which the service never sees.
    if !v
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'\\' && b != b'#')
    {
        return Err(format!(
            "`{}`: a URL holds visible ASCII only, without `\\` or `#` (write a space `%20`)",
            v.escape_debug()
        ));
    }
    FieldValue::parse(v, FieldFamily::Request).map(Some)
}

/// `auth_request_headers`: field names, each one a request may carry to
/// a backend from the auth answer: not one the proxy frames with or
/// writes for the backend to trust, nor `Host` or `Cookie`.
pub(in crate::config) fn parse_auth_fields(v: &str) -> Result<Arc<[Box<str>]>, String> {
    let mut names: Vec<Box<str>> = Vec::new();
    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let read_as = name.replace('_', "-");
        let refused = |why: &str| Err(format!("{name}: {why}"));
        if !name.bytes().all(crate::http::head::is_tchar) {
            return refused("not a header field name (letters, digits and !#$%&'*+-.^_`|~)");
        }
        if crate::http::forward::frames_or_hop_by_hop(&read_as) {
            return refused("frames the message or describes the connection");
        }
        if let Some((_, why)) =
            (REQUEST_OWNED.iter()).find(|(owned, _)| owned.eq_ignore_ascii_case(&read_as))
        {
            return refused(why);
        }
        if ["host", "cookie"].contains(&read_as.to_ascii_lowercase().as_str()) {
            return refused("the client's, which an answer on its access does not replace");
        }
        if (names.iter()).any(|n| crate::http::headers::read_alike(n.as_bytes(), name.as_bytes())) {
            return refused("named twice (`_` reads as `-`)");
        }
        names.push(name.into());
    }
    Ok(names.into())
}

/// `auth_basic`'s realm: what a browser shows when it asks for a user
/// and password, sent in `WWW-Authenticate` as a quoted string. Printable
/// ASCII without `"` and `\`, which would need escaping many browsers do
/// not undo. Empty or `off` (nginx's word): no sign-in.
pub(in crate::config) fn parse_realm(v: &str) -> Result<Option<Arc<str>>, String> {
    if v.is_empty() || v == "off" {
        return Ok(None);
    }
    if v.len() > 128 {
        return Err("a realm of more than 128 characters".into());
    }
    if let Some(c) = v
        .chars()
        .find(|&c| !(' '..='~').contains(&c) || c == '"' || c == '\\')
    {
        return Err(format!(
            "{c:?} in a realm: printable ASCII only, without `\"` and `\\` (it is sent in a header field)"
        ));
    }
    Ok(Some(v.into()))
}

/// The users of an htpasswd file (see [`crate::auth::Users`]); empty:
/// none.
pub(in crate::config) fn optional_users(
    v: &str,
) -> Result<Option<Arc<crate::auth::Users>>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let users = crate::auth::Users::load(v).map_err(|e| e.to_string())?;
    if users.costs_differ() {
        log::warn!(
            "{v}: the users' hashes differ in kind or cost: a wrong password comes back sooner \
             for those with cheaper ones than for a name not in the file, which tells that they \
             have an account; hash every password alike (htpasswd -B -C 10)"
        );
    }
    Ok(Some(Arc::new(users)))
}

/// The keys of a JWKS file (see [`crate::auth::jwt::Jwks`]); empty: none.
pub(in crate::config) fn optional_jwks(
    v: &str,
) -> Result<Option<Arc<crate::auth::jwt::Jwks>>, String> {
    match v {
        "" => Ok(None),
        path => crate::auth::jwt::Jwks::read(std::path::Path::new(path)).map(|k| Some(Arc::new(k))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auth_redirect_is_a_path_or_a_url_whose_host_no_variable_touches() {
        for good in [
            "/oauth2/start?rd=$request_uri",
            "/login",
            "https://sso.example.com/login?rd=$scheme://$host$request_uri",
            "$scheme://sso.example.com?rd=$request_uri",
            "http://[::1]:8080/x",
        ] {
            let parsed = parse_auth_redirect(good).unwrap().unwrap();
            assert_eq!(parsed.source(), good);
        }
        assert_eq!(parse_auth_redirect("").unwrap(), None);
        assert_eq!(parse_auth_redirect("off").unwrap(), None);
        for bad in [
            "login",
            "//evil.example/",
            "/$request_uri",
            "https://sso.example$http_x_to/login",
            "https://$host/login",
            "https:///login",
            "ftp://sso.example/",
            "/log in",
            "/\\$host",
            "/\\x",
            "/login#x?rd=$request_uri",
            "/login\u{e9}",
            "/login?rd=$status",
            "/login?rd=$nonsense",
        ] {
            assert!(parse_auth_redirect(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_auth_request_is_a_pool_of_its_own_and_one_path_of_visible_ascii() {
        assert_eq!(
            parse_auth_request("sso /verify?x=1").unwrap(),
            Some(PoolRequest {
                pool_name: "sso".into(),
                pool: 0,
                path: "/verify?x=1".into(),
            })
        );
        assert_eq!(parse_auth_request("").unwrap(), None);
        assert_eq!(parse_auth_request("OFF").unwrap(), None);
        // Keys may come from the default pool: only a sign-in service is
        // refused it.
        assert!(PoolRequest::parse("default /jwks").unwrap().is_some());
        for (bad, says) in [
            ("sso", "give the pool that answers and the path"),
            (
                "sso /verify extra",
                "give the pool that answers and the path",
            ),
            ("default /verify", "a pool of its own"),
            // Each rule alone: no leading `/`, a second `/`, a byte past
            // ASCII.
            ("sso verify", "is not a path"),
            ("sso //evil.example/verify", "is not a path"),
            ("sso /verify\u{e9}", "is not a path"),
        ] {
            let e = parse_auth_request(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_realm_is_printable_ascii_without_quotes_and_off_is_none() {
        assert_eq!(
            parse_realm("Staff only").unwrap().as_deref(),
            Some("Staff only")
        );
        assert_eq!(parse_realm("").unwrap(), None);
        assert_eq!(parse_realm("off").unwrap(), None);
        // 128 is the most, not one past it.
        let longest = "x".repeat(128);
        assert_eq!(parse_realm(&longest).unwrap().as_deref(), Some(&*longest));
        for bad in ["a\"b", "a\\b", "caf\u{e9}", "a\tb", &"x".repeat(129)] {
            assert!(parse_realm(bad).is_err(), "{bad:?}");
        }
    }
}
