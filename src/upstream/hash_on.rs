//! `hash_on`: the part of a request `balance = hash` hashes, so that the
//! requests of one tenant or one user go to one target: a header field
//! (nginx's `hash $http_x_tenant consistent`, HAProxy's `balance
//! hdr(X-Tenant)`), a cookie (`$cookie_sid`) or a query parameter
//! (`$arg_user`, HAProxy's `balance url_param user`).

use crate::http::head::is_tchar;
use crate::http::RequestHead;
use std::fmt;

/// What `balance = hash` hashes. Each name is checked when the setting is
/// read, so that a request can be looked at without a second thought.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashOn {
    /// The first field of this name (any case): its whole value, commas
    /// and all, trimmed.
    Header(Box<str>),
    /// The cookie of this name (case matters) in the `Cookie` fields.
    Cookie(Box<str>),
    /// The first parameter of this name (as sent: case matters, nothing
    /// decoded) in the request-target's query.
    Query(Box<str>),
}

impl HashOn {
    /// `header:<Name>`, `cookie:<name>` or `query:<name>`.
    pub fn parse(v: &str) -> Result<HashOn, String> {
        let shape = "`header:<Name>`, `cookie:<name>` or `query:<name>` (e.g. `header:X-Tenant`)";
        let Some((kind, name)) = v.split_once(':') else {
            return Err(format!("`{}` is not {shape}", v.escape_debug()));
        };
        let name = name.trim();
        let is_token = !name.is_empty() && name.bytes().all(is_tchar);
        match kind.trim() {
            "header" if is_token => Ok(HashOn::Header(name.into())),
            "header" => Err(format!(
                "`{}` is not a header field name (letters, digits and !#$%&'*+-.^_`|~)",
                name.escape_debug()
            )),
            "cookie" if is_token => Ok(HashOn::Cookie(name.into())),
            "cookie" => Err(format!(
                "`{}` is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
                name.escape_debug()
            )),
            // What a request-target may hold, but what would end the name.
            "query"
                if !name.is_empty()
                    && (name.bytes()).all(|b| b.is_ascii_graphic() && !b"=&#".contains(&b)) =>
            {
                Ok(HashOn::Query(name.into()))
            }
            "query" => Err(format!(
                "`{}` is not a query parameter name (printable ASCII; no space, `=`, `&` or `#`)",
                name.escape_debug()
            )),
            _ => Err(format!("`{}` is not {shape}", v.escape_debug())),
        }
    }

    /// The value to hash in `head`, borrowed from it; `None` when it has
    /// none, or an empty one: such requests are not all one tenant's.
    pub fn value_in<'a>(&self, head: &'a RequestHead) -> Option<&'a [u8]> {
        let value = match self {
            HashOn::Header(name) => head.headers.get(name).map(<[u8]>::trim_ascii),
            HashOn::Cookie(name) => head.headers.cookie(name),
            HashOn::Query(name) => query_param(&head.target, name),
        };
        value.filter(|v| !v.is_empty())
    }
}

/// As written in proxy.conf.
impl fmt::Display for HashOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashOn::Header(name) => write!(f, "header:{name}"),
            HashOn::Cookie(name) => write!(f, "cookie:{name}"),
            HashOn::Query(name) => write!(f, "query:{name}"),
        }
    }
}

/// The value of the first `name=value` in `target`'s query, as sent. The
/// first `?` starts the query in either form of target: an absolute-form
/// one's authority holds none, and a `#` never reaches here (a target
/// with a fragment is refused as malformed). A parameter without `=`
/// has no value, and the search goes on past it, as nginx's `$arg_`.
fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a [u8]> {
    let (_, query) = target.split_once('?')?;
    (query.split('&'))
        .filter_map(|param| param.split_once('='))
        .find(|&(n, _)| n == name)
        .map(|(_, value)| value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_request;
    use crate::http::head::RequestLimits;

    fn head(text: &str) -> RequestHead {
        parse_request(text.as_bytes(), &RequestLimits::default()).unwrap()
    }

    fn value(setting: &str, request: &str) -> Option<String> {
        let on = HashOn::parse(setting).unwrap();
        let head = head(request);
        (on.value_in(&head)).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn a_header_s_first_field_is_hashed_whole_and_trimmed() {
        let request =
            "GET / HTTP/1.1\r\nHost: h\r\nx-tenant:  acme, beta \r\nX-Tenant: other\r\n\r\n";
        assert_eq!(
            value("header:X-Tenant", request).as_deref(),
            Some("acme, beta")
        );
        assert_eq!(
            value("header:x-tenant", request).as_deref(),
            Some("acme, beta")
        );
        assert_eq!(value("header:Host", request).as_deref(), Some("h"));
        assert_eq!(value("header:X-Tenant-Id", request), None);
        let empty = "GET / HTTP/1.1\r\nHost: h\r\nX-Tenant:   \r\nX-Tenant: b\r\n\r\n";
        assert_eq!(value("header:X-Tenant", empty), None, "the first, empty");
    }

    #[test]
    fn a_cookie_is_found_among_the_others_in_any_cookie_field() {
        let request =
            "GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1; SID=x\r\nCookie: sid=abc; b=2\r\n\r\n";
        assert_eq!(value("cookie:sid", request).as_deref(), Some("abc"));
        assert_eq!(value("cookie:SID", request).as_deref(), Some("x"));
        assert_eq!(value("cookie:si", request), None);
        let empty = "GET / HTTP/1.1\r\nHost: h\r\nCookie: sid=; a=1\r\n\r\n";
        assert_eq!(value("cookie:sid", empty), None);
        assert_eq!(
            value("cookie:sid", "GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
            None
        );
    }

    #[test]
    fn a_query_parameter_is_the_first_of_its_name_as_sent() {
        let get = |target: &str| {
            value(
                "query:user",
                &format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n"),
            )
        };
        assert_eq!(get("/a?user=bob&x=1").as_deref(), Some("bob"));
        assert_eq!(
            get("/a?x=1&user=b%20o+b&user=eve").as_deref(),
            Some("b%20o+b")
        );
        assert_eq!(
            get("/a?users=1&User=2&user&user=ann").as_deref(),
            Some("ann")
        );
        assert_eq!(get("/a?x=user=1&user==q").as_deref(), Some("=q"));
        assert_eq!(get("http://h:80/a?user=bob").as_deref(), Some("bob"));
        assert_eq!(get("http://h?user=bob").as_deref(), Some("bob"));
        assert_eq!(get("/a/user=bob"), None);
        assert_eq!(get("/a?user=&user=bob"), None, "the first, empty");
        assert_eq!(get("/a"), None);
    }

    #[test]
    fn the_setting_names_a_kind_and_a_valid_name() {
        assert_eq!(
            HashOn::parse("header:X-Tenant"),
            Ok(HashOn::Header("X-Tenant".into()))
        );
        assert_eq!(
            HashOn::parse("cookie: sid "),
            Ok(HashOn::Cookie("sid".into()))
        );
        assert_eq!(
            HashOn::parse("query:user.id"),
            Ok(HashOn::Query("user.id".into()))
        );
        for good in ["header:X-Tenant", "cookie:sid", "query:a[b]"] {
            assert_eq!(HashOn::parse(good).unwrap().to_string(), good);
        }
        for (bad, why) in [
            ("X-Tenant", "is not `header:<Name>`"),
            ("head:X-Tenant", "is not `header:<Name>`"),
            ("Header:X-Tenant", "is not `header:<Name>`"),
            ("header:", "not a header field name"),
            ("header:X Tenant", "not a header field name"),
            ("header:X:Tenant", "not a header field name"),
            ("cookie:", "not a cookie name"),
            ("cookie:a=b", "not a cookie name"),
            ("cookie:a;b", "not a cookie name"),
            ("query:", "not a query parameter name"),
            ("query:a=b", "not a query parameter name"),
            ("query:a&b", "not a query parameter name"),
            ("query:a#b", "not a query parameter name"),
            ("query:caf\u{e9}", "not a query parameter name"),
        ] {
            let e = HashOn::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
