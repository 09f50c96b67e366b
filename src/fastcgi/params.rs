//! The CGI variables (RFC 3875 §4.1) a request is sent as: what nginx's
//! `fastcgi_params` and `fastcgi.conf` and HAProxy's `fcgi-app` send.

use super::record::push_pair;
use super::{App, Exchange};
use crate::cache::policy::remove_dot_segments;
use crate::digits::percent_decoded;
use std::borrow::Cow;

/// The request as the proxy wrote it for the backend, read back.
pub struct Request<'a> {
    pub method: &'a str,
    pub target: &'a str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: &'a [httparse::Header<'a>],
}

/// A variable's name and value.
type Var<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// Why a request cannot be sent as CGI variables.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("its path holds a NUL byte once decoded")]
    NulInPath,
    #[error("its path has a bad %-escape")]
    BadEscape,
}

/// Where the script is: its name (`SCRIPT_NAME`), the rest of the path
/// (`PATH_INFO`), and the file (`SCRIPT_FILENAME`).
#[derive(Debug, PartialEq, Eq)]
pub struct Script {
    /// The path, decoded and without dot segments: nginx's `$uri`.
    pub uri: String,
    pub name: String,
    pub path_info: String,
}

/// `target`'s path decoded, its dot segments resolved (what nginx does
/// to `$uri` before `$fastcgi_script_name` is taken from it: `/a/../x.php`
/// is `/x.php`, never a file outside the root), split by
/// `fastcgi_split_path_info` and given `fastcgi_index` when it names a
/// directory; or `fastcgi_script` whatever the path.
pub fn script(app: &App, target: &str) -> Result<Script, ParamsError> {
    let path = target.split('?').next().unwrap_or_default();
    let decoded = percent_decoded(path).ok_or(ParamsError::BadEscape)?;
    if decoded.contains(&0) {
        return Err(ParamsError::NulInPath);
    }
    let decoded = String::from_utf8_lossy(&decoded);
    let uri = match decoded.starts_with('/') {
        true => remove_dot_segments(&decoded).into_owned(),
        false => format!("/{decoded}"),
    };
    if let Some(script) = &app.script {
        return Ok(Script {
            uri,
            name: script.clone(),
            path_info: String::new(),
        });
    }
    let split = (app.split_path_info.as_ref())
        .and_then(|re| re.captures(&uri))
        .and_then(|c| Some((c.get(1)?.as_str().to_owned(), c.get(2)?.as_str().to_owned())));
    let (mut name, path_info) = split.unwrap_or_else(|| (uri.clone(), String::new()));
    if name.ends_with('/') {
        name.push_str(app.index.as_deref().unwrap_or_default());
    }
    Ok(Script {
        uri,
        name,
        path_info,
    })
}

/// The `FCGI_PARAMS` stream's content for `request`: the CGI variables,
/// a `HTTP_*` one for each field, and the configured `fastcgi_param.*`
/// in place of any of the same name.
pub fn params(
    app: &App,
    request: &Request<'_>,
    exchange: Option<&Exchange>,
) -> Result<Vec<u8>, ParamsError> {
    let script = script(app, request.target)?;
    // Fields the proxy sends once (it refuses a request with two).
    let field = |name: &str| {
        (request.headers.iter())
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value))
    };
    let host = field("host");
    let (host_name, host_port) = match host.as_deref() {
        Some(host) => split_port(host),
        None => ("", None),
    };
    let https = exchange.is_some_and(|e| e.https);
    let server_port = match (exchange, host_port) {
        (Some(e), _) => e.server.port().to_string(),
        (None, Some(port)) => port.to_owned(),
        (None, None) => if https { "443" } else { "80" }.to_owned(),
    };
    let server_name = match (host_name, exchange) {
        ("", Some(e)) => e.server.ip().to_string(),
        (name, _) => name.to_owned(),
    };
    let query = request.target.split_once('?').map_or("", |(_, q)| q);
    let root = app.root.as_str();
    let mut vars: Vec<Var<'_>> = Vec::with_capacity(32);
    let mut set = |name: &'static str, value: String| {
        vars.push((
            Cow::Borrowed(name.as_bytes()),
            Cow::Owned(value.into_bytes()),
        ));
    };
    set("GATEWAY_INTERFACE", "CGI/1.1".into());
    set(
        "SERVER_SOFTWARE",
        format!("inverso/{}", env!("CARGO_PKG_VERSION")),
    );
    set("SERVER_PROTOCOL", format!("HTTP/1.{}", request.version));
    set("REQUEST_METHOD", request.method.into());
    set("REQUEST_URI", request.target.into());
    set("QUERY_STRING", query.into());
    set("DOCUMENT_ROOT", root.into());
    set("DOCUMENT_URI", script.uri.clone());
    set("SCRIPT_NAME", script.name.clone());
    set("SCRIPT_FILENAME", format!("{root}{}", script.name));
    if !script.path_info.is_empty() {
        set("PATH_TRANSLATED", format!("{root}{}", script.path_info));
    }
    set("PATH_INFO", script.path_info);
    let content = |name| field(name).map(Cow::into_owned).unwrap_or_default();
    set("CONTENT_TYPE", content("content-type"));
    set("CONTENT_LENGTH", content("content-length"));
    set("SERVER_NAME", server_name);
    set("SERVER_PORT", server_port);
    set(
        "REQUEST_SCHEME",
        if https { "https" } else { "http" }.into(),
    );
    if https {
        set("HTTPS", "on".into());
    }
    if let Some(e) = exchange {
        set("REMOTE_ADDR", e.client.ip().to_string());
        // None known for a client a proxy in front names.
        if e.client.port() != 0 {
            set("REMOTE_PORT", e.client.port().to_string());
        }
        set("SERVER_ADDR", e.server.ip().to_string());
    }
    // PHP built as CGI (`php-cgi`) serves nothing without it
    // (`cgi.force_redirect`); nginx's `fastcgi.conf` sets it too.
    set("REDIRECT_STATUS", "200".into());
    push_fields(&mut vars, request.headers);
    // A configured one replaces the one of its name; empty, it takes it
    // out.
    vars.retain(|(name, _)| !app.params.iter().any(|(n, _)| n.as_bytes() == &**name));
    for (name, value) in app.params.iter().filter(|(_, v)| !v.is_empty()) {
        vars.push((
            Cow::Borrowed(name.as_bytes()),
            Cow::Borrowed(value.as_bytes()),
        ));
    }
    let mut out = Vec::with_capacity(1024);
    for (name, value) in &vars {
        push_pair(&mut out, name, value);
    }
    Ok(out)
}

/// `HTTP_<NAME>` for each field but those CGI names otherwise, the
/// values of a name sent more than once joined (cookies with `; `, as
/// RFC 9113 §8.2.3 joins them; others with `, `). Left out: a name with
/// `_`, which would read as one with `-` (`X_Forwarded_For` as the
/// proxy's `X-Forwarded-For`), as nginx drops it by default; and
/// `Proxy`, which CGI programs take for their own outgoing proxy
/// (`HTTP_PROXY`, "httpoxy", CVE-2016-5385).
fn push_fields<'a>(vars: &mut Vec<Var<'a>>, headers: &'a [httparse::Header<'a>]) {
    for (i, h) in headers.iter().enumerate() {
        let name = h.name;
        if name.contains('_')
            || ["content-length", "content-type", "proxy"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            || headers[..i]
                .iter()
                .any(|e| e.name.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let mut var = Vec::with_capacity(5 + name.len());
        var.extend_from_slice(b"HTTP_");
        var.extend(name.bytes().map(|b| match b {
            b'-' => b'_',
            b => b.to_ascii_uppercase(),
        }));
        let joiner: &[u8] = match name.eq_ignore_ascii_case("cookie") {
            true => b"; ",
            false => b", ",
        };
        let values: Vec<&[u8]> = (headers[i..].iter())
            .filter(|e| e.name.eq_ignore_ascii_case(name))
            .map(|e| e.value)
            .collect();
        let value = match values[..] {
            [one] => Cow::Borrowed(one),
            _ => Cow::Owned(values.join(joiner)),
        };
        vars.push((Cow::Owned(var), value));
    }
}

/// `host[:port]` and `[v6][:port]` apart.
fn split_port(host: &str) -> (&str, Option<&str>) {
    let colon = match host.starts_with('[') {
        true => host
            .find(']')
            .and_then(|end| host[end..].find(':').map(|c| end + c)),
        false => host.rfind(':'),
    };
    match colon {
        Some(at) => (&host[..at], Some(&host[at + 1..])),
        None => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::record::parse_pairs;
    use std::collections::HashMap;

    fn app() -> App {
        App {
            root: "/srv/www".into(),
            index: Some("index.php".into()),
            script: None,
            split_path_info: Some(regex::Regex::new(r"^(.+\.php)(/.*)$").unwrap()),
            params: Vec::new(),
            keep_conn: false,
        }
    }

    fn sent(app: &App, target: &str, headers: &[(&str, &str)]) -> HashMap<String, String> {
        let headers: Vec<httparse::Header<'_>> = (headers.iter())
            .map(|&(name, value)| httparse::Header {
                name,
                value: value.as_bytes(),
            })
            .collect();
        let request = Request {
            method: "POST",
            target,
            version: 1,
            headers: &headers,
        };
        let exchange = Exchange {
            client: "192.0.2.7:50123".parse().unwrap(),
            server: "10.0.0.1:8443".parse().unwrap(),
            https: true,
        };
        let bytes = params(app, &request, Some(&exchange)).unwrap();
        let pairs = parse_pairs(&bytes).unwrap();
        let names: Vec<_> = pairs.iter().map(|(n, _)| n.clone()).collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "a name sent twice");
        (pairs.into_iter())
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn a_request_is_sent_as_the_cgi_variables_nginx_sends() {
        let vars = sent(
            &app(),
            "/shop/cart.php/items/7?sort=price&x=%41",
            &[
                ("Host", "shop.example:8443"),
                ("Content-Type", "application/json"),
                ("Content-Length", "12"),
                ("Accept", "text/html"),
                ("X-Forwarded-For", "192.0.2.7"),
            ],
        );
        let want = [
            ("REQUEST_METHOD", "POST"),
            ("REQUEST_URI", "/shop/cart.php/items/7?sort=price&x=%41"),
            ("QUERY_STRING", "sort=price&x=%41"),
            ("SCRIPT_NAME", "/shop/cart.php"),
            ("SCRIPT_FILENAME", "/srv/www/shop/cart.php"),
            ("PATH_INFO", "/items/7"),
            ("PATH_TRANSLATED", "/srv/www/items/7"),
            ("DOCUMENT_ROOT", "/srv/www"),
            ("DOCUMENT_URI", "/shop/cart.php/items/7"),
            ("CONTENT_TYPE", "application/json"),
            ("CONTENT_LENGTH", "12"),
            ("SERVER_NAME", "shop.example"),
            ("SERVER_PORT", "8443"),
            ("SERVER_ADDR", "10.0.0.1"),
            ("REMOTE_ADDR", "192.0.2.7"),
            ("REMOTE_PORT", "50123"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_SCHEME", "https"),
            ("HTTPS", "on"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REDIRECT_STATUS", "200"),
            ("HTTP_HOST", "shop.example:8443"),
            ("HTTP_ACCEPT", "text/html"),
            ("HTTP_X_FORWARDED_FOR", "192.0.2.7"),
        ];
        for (name, value) in want {
            assert_eq!(vars.get(name).map(String::as_str), Some(value), "{name}");
        }
        assert!(!vars.contains_key("HTTP_CONTENT_TYPE"));
        assert!(!vars.contains_key("HTTP_CONTENT_LENGTH"));
    }

    #[test]
    fn a_directory_gets_the_index_and_dot_segments_never_leave_the_root() {
        let vars = sent(&app(), "/blog/", &[]);
        assert_eq!(vars["SCRIPT_FILENAME"], "/srv/www/blog/index.php");
        assert_eq!(vars["PATH_INFO"], "");
        assert!(!vars.contains_key("PATH_TRANSLATED"));
        let vars = sent(&app(), "/a/%2e%2e/../../etc/passwd%2ephp", &[]);
        assert_eq!(vars["SCRIPT_FILENAME"], "/srv/www/etc/passwd.php");
        let nul = Request {
            method: "GET",
            target: "/x.php%00.jpg",
            version: 1,
            headers: &[],
        };
        assert_eq!(params(&app(), &nul, None), Err(ParamsError::NulInPath));
        let bad = Request {
            target: "/x%zz",
            ..nul
        };
        assert_eq!(params(&app(), &bad, None), Err(ParamsError::BadEscape));
    }

    #[test]
    fn a_front_controller_runs_whatever_the_path() {
        let app = App {
            script: Some("/index.php".into()),
            ..app()
        };
        let vars = sent(&app, "/blog/2024/hello-world?page=2", &[]);
        assert_eq!(vars["SCRIPT_NAME"], "/index.php");
        assert_eq!(vars["SCRIPT_FILENAME"], "/srv/www/index.php");
        assert_eq!(vars["REQUEST_URI"], "/blog/2024/hello-world?page=2");
        assert_eq!(vars["DOCUMENT_URI"], "/blog/2024/hello-world");
        assert_eq!(vars["QUERY_STRING"], "page=2");
        assert_eq!(vars["PATH_INFO"], "");
    }

    #[test]
    fn fields_that_would_pass_for_others_are_not_sent_and_repeats_are_joined() {
        let vars = sent(
            &app(),
            "/",
            &[
                ("X_Forwarded_For", "6.6.6.6"),
                ("Proxy", "http://evil.example:3128"),
                ("Cookie", "a=1"),
                ("Cookie", "b=2"),
                ("Accept", "text/html"),
                ("accept", "*/*"),
            ],
        );
        assert!(!vars.contains_key("HTTP_X_FORWARDED_FOR"));
        assert!(!vars.contains_key("HTTP_PROXY"));
        assert_eq!(vars["HTTP_COOKIE"], "a=1; b=2");
        assert_eq!(vars["HTTP_ACCEPT"], "text/html, */*");
    }

    #[test]
    fn configured_params_replace_or_take_out_those_of_their_name() {
        let mut app = app();
        app.params = vec![
            ("APP_ENV".into(), "production".into()),
            ("SERVER_NAME".into(), "www.example".into()),
            ("HTTP_ACCEPT".into(), String::new()),
        ];
        let vars = sent(&app, "/", &[("Host", "a.example"), ("Accept", "*/*")]);
        assert_eq!(vars["APP_ENV"], "production");
        assert_eq!(vars["SERVER_NAME"], "www.example");
        assert!(!vars.contains_key("HTTP_ACCEPT"));
        assert_eq!(vars["HTTP_HOST"], "a.example", "the others stay");
        assert_eq!(vars["SCRIPT_FILENAME"], "/srv/www/index.php");
    }

    #[test]
    fn without_an_exchange_the_host_field_names_the_server() {
        let app = App {
            split_path_info: None,
            ..app()
        };
        let headers = [httparse::Header {
            name: "Host",
            value: b"[::1]:8080",
        }];
        let request = Request {
            method: "GET",
            target: "/status.php/x",
            version: 0,
            headers: &headers,
        };
        let pairs = parse_pairs(&params(&app, &request, None).unwrap()).unwrap();
        let get = |name: &str| {
            (pairs.iter())
                .find(|(n, _)| n == name.as_bytes())
                .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        };
        assert_eq!(get("SERVER_NAME").as_deref(), Some("[::1]"));
        assert_eq!(get("SERVER_PORT").as_deref(), Some("8080"));
        assert_eq!(get("SERVER_PROTOCOL").as_deref(), Some("HTTP/1.0"));
        assert_eq!(get("SCRIPT_NAME").as_deref(), Some("/status.php/x"));
        assert_eq!(get("REMOTE_ADDR"), None);
    }
}
