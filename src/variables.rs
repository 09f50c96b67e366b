//! nginx's `$variables`, as `log_format` templates and the values of
//! `request_header.*` write them: the syntax (`$name`, `${name}`, `$$`),
//! the names and what each stands for, and the parts of a request line
//! both read. Each user renders the variables from what it has at hand:
//! a finished exchange for the log, a request about to be sent for a
//! backend's fields.

use crate::config::nearest;
use crate::http::proxy_tlv::TlvName;
use std::borrow::Cow;

/// Every variable but `$http_<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    RemoteAddr,
    RemotePort,
    ServerAddr,
    ServerPort,
    RemoteUser,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    RequestMethod,
    RequestUri,
    Uri,
    Args,
    IsArgs,
    ServerProtocol,
    Status,
    BodyBytesSent,
    BytesSent,
    RequestLength,
    Connection,
    ConnectionRequests,
    RequestTime,
    UpstreamAddr,
    UpstreamStatus,
    UpstreamHeaderTime,
    UpstreamConnectTime,
    UpstreamQueueTime,
    UpstreamResponseTime,
    UpstreamBytesReceived,
    UpstreamBytesSent,
    UpstreamResponseLength,
    UpstreamCacheStatus,
    Referer,
    UserAgent,
    RequestId,
    OtelTraceId,
    OtelSpanId,
    OtelParentId,
    OtelParentSampled,
    Host,
    DurationMs,
    UpstreamMs,
    Pool,
    Scheme,
    Https,
    SslProtocol,
    SslCipher,
    SslSessionReused,
    SslAlpnProtocol,
    SslCurve,
    ServerName,
    SslEarlyData,
    Http2,
    Http3,
    SslServerName,
    SslPrereadAlpnProtocols,
    SslClientVerify,
    SslClientFingerprint,
    SslClientSDn,
    SslClientIDn,
    SslClientSerial,
    SslClientVStart,
    SslClientVEnd,
    SslClientVRemain,
    SslClientEscapedCert,
    Termination,
    LimitReqStatus,
    RealipRemoteAddr,
    RealipRemotePort,
    ProxyProtocolAddr,
    ProxyProtocolPort,
    ProxyProtocolServerAddr,
    ProxyProtocolServerPort,
    Hostname,
    Pid,
    RequestCompletion,
    GzipRatio,
    RequestBody,
    TcpinfoRtt,
    TcpinfoRttvar,
    TcpinfoSndCwnd,
    TcpinfoRcvSpace,
    ConnectionTime,
    Pipe,
    GeoipCountryCode,
}

impl Var {
    /// Whether only the access log has it: no header field may name it.
    pub fn log_only(self) -> bool {
        matches!(
            self,
            Var::Termination
                | Var::LimitReqStatus
                | Var::RequestBody
                | Var::TcpinfoRtt
                | Var::TcpinfoRttvar
                | Var::TcpinfoSndCwnd
                | Var::TcpinfoRcvSpace
                | Var::ConnectionTime
                | Var::Pipe
                | Var::SslPrereadAlpnProtocols
        )
    }

    /// Whether its value is known only once the exchange is over, its
    /// bodies sent and read: such a variable can go in neither a
    /// request's nor a response's field.
    pub fn after_the_body(self) -> bool {
        matches!(
            self,
            Var::BodyBytesSent
                | Var::BytesSent
                | Var::RequestLength
                | Var::UpstreamResponseTime
                | Var::UpstreamBytesReceived
                | Var::UpstreamBytesSent
                | Var::UpstreamResponseLength
                | Var::Termination
                | Var::RequestCompletion
                | Var::GzipRatio
        )
    }

    /// Whether its value is known only once a response has come: such a
    /// variable cannot go in a request.
    pub fn after_response(self) -> bool {
        matches!(
            self,
            Var::Status
                | Var::BodyBytesSent
                | Var::BytesSent
                | Var::RequestLength
                | Var::RequestTime
                | Var::UpstreamAddr
                | Var::UpstreamStatus
                | Var::UpstreamHeaderTime
                | Var::UpstreamConnectTime
                | Var::UpstreamQueueTime
                | Var::UpstreamResponseTime
                | Var::UpstreamBytesReceived
                | Var::UpstreamBytesSent
                | Var::UpstreamResponseLength
                | Var::UpstreamCacheStatus
                | Var::DurationMs
                | Var::UpstreamMs
                | Var::Termination
                | Var::RequestCompletion
                | Var::GzipRatio
        )
    }
}

/// Every variable by name: nginx's where nginx has one; `duration_ms`,
/// `upstream_ms` and `pool` are the combined line's own fields, and
/// `termination` HAProxy's termination state.
pub const VARIABLES: &[(&str, Var)] = &[
    ("remote_addr", Var::RemoteAddr),
    ("remote_port", Var::RemotePort),
    ("server_addr", Var::ServerAddr),
    ("server_port", Var::ServerPort),
    ("remote_user", Var::RemoteUser),
    ("time_local", Var::TimeLocal),
    ("time_iso8601", Var::TimeIso8601),
    ("msec", Var::Msec),
    ("request", Var::Request),
    ("request_method", Var::RequestMethod),
    ("request_uri", Var::RequestUri),
    ("uri", Var::Uri),
    ("args", Var::Args),
    ("query_string", Var::Args),
    ("is_args", Var::IsArgs),
    ("server_protocol", Var::ServerProtocol),
    ("status", Var::Status),
    ("body_bytes_sent", Var::BodyBytesSent),
    ("bytes_sent", Var::BytesSent),
    ("request_length", Var::RequestLength),
    ("connection", Var::Connection),
    ("connection_requests", Var::ConnectionRequests),
    ("request_time", Var::RequestTime),
    ("upstream_addr", Var::UpstreamAddr),
    ("upstream_status", Var::UpstreamStatus),
    ("upstream_header_time", Var::UpstreamHeaderTime),
    ("upstream_connect_time", Var::UpstreamConnectTime),
    ("upstream_queue_time", Var::UpstreamQueueTime),
    ("upstream_response_time", Var::UpstreamResponseTime),
    ("upstream_bytes_received", Var::UpstreamBytesReceived),
    ("upstream_bytes_sent", Var::UpstreamBytesSent),
    ("upstream_response_length", Var::UpstreamResponseLength),
    ("upstream_cache_status", Var::UpstreamCacheStatus),
    ("http_referer", Var::Referer),
    ("http_user_agent", Var::UserAgent),
    ("request_id", Var::RequestId),
    // nginx's otel module's, with `trace_context`.
    ("otel_trace_id", Var::OtelTraceId),
    ("otel_span_id", Var::OtelSpanId),
    ("otel_parent_id", Var::OtelParentId),
    ("otel_parent_sampled", Var::OtelParentSampled),
    ("host", Var::Host),
    ("duration_ms", Var::DurationMs),
    ("upstream_ms", Var::UpstreamMs),
    ("pool", Var::Pool),
    ("scheme", Var::Scheme),
    ("https", Var::Https),
    ("ssl_protocol", Var::SslProtocol),
    ("ssl_cipher", Var::SslCipher),
    ("ssl_session_reused", Var::SslSessionReused),
    ("ssl_alpn_protocol", Var::SslAlpnProtocol),
    ("ssl_curve", Var::SslCurve),
    ("server_name", Var::ServerName),
    ("ssl_early_data", Var::SslEarlyData),
    ("http2", Var::Http2),
    ("http3", Var::Http3),
    ("ssl_server_name", Var::SslServerName),
    // A stream that passes TLS through reads the host from the hello.
    ("ssl_preread_server_name", Var::SslServerName),
    ("ssl_preread_alpn_protocols", Var::SslPrereadAlpnProtocols),
    ("ssl_client_verify", Var::SslClientVerify),
    ("ssl_client_fingerprint", Var::SslClientFingerprint),
    ("ssl_client_s_dn", Var::SslClientSDn),
    ("ssl_client_i_dn", Var::SslClientIDn),
    ("ssl_client_serial", Var::SslClientSerial),
    ("ssl_client_v_start", Var::SslClientVStart),
    ("ssl_client_v_end", Var::SslClientVEnd),
    ("ssl_client_v_remain", Var::SslClientVRemain),
    ("ssl_client_escaped_cert", Var::SslClientEscapedCert),
    ("termination", Var::Termination),
    ("limit_req_status", Var::LimitReqStatus),
    ("realip_remote_addr", Var::RealipRemoteAddr),
    ("realip_remote_port", Var::RealipRemotePort),
    ("proxy_protocol_addr", Var::ProxyProtocolAddr),
    ("proxy_protocol_port", Var::ProxyProtocolPort),
    ("proxy_protocol_server_addr", Var::ProxyProtocolServerAddr),
    ("proxy_protocol_server_port", Var::ProxyProtocolServerPort),
    ("hostname", Var::Hostname),
    ("pid", Var::Pid),
    ("document_uri", Var::Uri),
    ("request_completion", Var::RequestCompletion),
    ("gzip_ratio", Var::GzipRatio),
    ("request_body", Var::RequestBody),
    ("tcpinfo_rtt", Var::TcpinfoRtt),
    ("tcpinfo_rttvar", Var::TcpinfoRttvar),
    ("tcpinfo_snd_cwnd", Var::TcpinfoSndCwnd),
    ("tcpinfo_rcv_space", Var::TcpinfoRcvSpace),
    ("connection_time", Var::ConnectionTime),
    ("pipe", Var::Pipe),
    // nginx's geoip module's: the client's country (`geoip_database`).
    ("geoip_country_code", Var::GeoipCountryCode),
];

/// Longest variable name compared with the known ones for a hint (the
/// edit distance is quadratic).
const HINTED_NAME: usize = 64;

/// What a `$name` stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Named {
    Var(Var),
    /// `$http_<name>`: the request field of that name, as `$http_` names
    /// it (lower case, `_` for `-`).
    Field(Box<str>),
    /// `$sent_http_<name>`: the field of that name of the response sent,
    /// named alike; the access log's alone.
    SentField(Box<str>),
    /// `$upstream_http_<name>`: the field of that name of the answer the
    /// (last) backend gave, as it came, named alike; the access log's
    /// alone.
    UpstreamField(Box<str>),
    /// `$upstream_cookie_<name>`: the value of the cookie of that name
    /// the (last) backend's answer set (see [`set_cookie_value`]); the
    /// access log's alone.
    UpstreamCookie(Box<str>),
    /// `$cookie_<name>`: the request's cookie of that name (see
    /// [`cookie_in`]).
    Cookie(Box<str>),
    /// `$arg_<name>`: the query parameter of that name (see [`arg_in`]).
    Arg(Box<str>),
    /// `$proxy_protocol_tlv_<name>`: a TLV of the connection's PROXY
    /// header (see [`crate::http::proxy_tlv`]).
    ProxyTlv(TlvName),
    /// `$jwt_claim_<name>`: a claim of the request's token (`auth_jwt`),
    /// named as the token writes it (claims' names are case-sensitive).
    JwtClaim(Box<str>),
}

/// A piece of a text holding variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Copied as written (`$$` already made `$`).
    Text(String),
    Named(Named),
}

/// Splits `text` into text and variables: `$name` or `${name}` (which
/// may be followed by letters) is a variable, `$$` a dollar sign. An
/// unknown name, or a `$` that starts none, is refused, saying where.
pub fn pieces(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(after) = after.strip_prefix('$') {
            literal.push('$');
            rest = after;
            continue;
        }
        let place = text[..text.len() - rest.len() + at].chars().count() + 1;
        let (name, after) = match after.strip_prefix('{') {
            Some(inner) => {
                let close = inner
                    .find('}')
                    .ok_or_else(|| format!("the `${{` at character {place} has no `}}`"))?;
                (&inner[..close], &inner[close + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !is_name_char(c))
                    .unwrap_or(after.len());
                after.split_at(end)
            }
        };
        if name.is_empty() {
            return Err(format!(
                "the `$` at character {place} starts no variable name (`$status`, \
                 `${{status}}`); `$$` writes a dollar sign"
            ));
        }
        // A claim's name in braces is the token's own: Auth0's
        // `https://example.com/roles`, or a path (`realm_access.roles`).
        let claim = || {
            let prefix = name.get(.."jwt_claim_".len())?;
            let claim = &name[prefix.len()..];
            Some(claim).filter(|c| {
                prefix.eq_ignore_ascii_case("jwt_claim_") && c.bytes().all(|b| b.is_ascii_graphic())
            })
        };
        if !name.chars().all(is_name_char) && claim().is_none() {
            return Err(format!(
                "`${{{name}}}`: a variable name has only letters, digits and `_`"
            ));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Named(lookup(name)?));
        rest = after;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

/// What nginx takes for a variable name's characters.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// What `name` (after its `$`) stands for.
pub fn lookup(name: &str) -> Result<Named, String> {
    // nginx's variable names are not case-sensitive.
    let lower = name.to_ascii_lowercase();
    if let Some((_, var)) = VARIABLES.iter().find(|(known, _)| *known == lower) {
        return Ok(Named::Var(*var));
    }
    // nginx's names for two request fields.
    if matches!(lower.as_str(), "content_type" | "content_length") {
        return Ok(Named::Field(lower.into()));
    }
    if let Some(tlv) = lower.strip_prefix("proxy_protocol_tlv_") {
        return TlvName::parse(tlv).map(Named::ProxyTlv);
    }
    if lower.starts_with("jwt_claim_") {
        return match &name["jwt_claim_".len()..] {
            "" => Err("`$jwt_claim_` needs a claim's name, e.g. `$jwt_claim_email`".into()),
            claim => Ok(Named::JwtClaim(claim.into())),
        };
    }
    // The families of names: a prefix, then what it names.
    type Make = fn(Box<str>) -> Named;
    let families: [(&str, Make, &str); 6] = [
        (
            "http_",
            Named::Field,
            "field name, e.g. `$http_x_request_id`",
        ),
        (
            "sent_http_",
            Named::SentField,
            "field name, e.g. `$sent_http_content_type`",
        ),
        (
            "upstream_http_",
            Named::UpstreamField,
            "field name, e.g. `$upstream_http_server`",
        ),
        (
            "cookie_",
            Named::Cookie,
            "cookie name, e.g. `$cookie_session`",
        ),
        (
            "upstream_cookie_",
            Named::UpstreamCookie,
            "cookie name, e.g. `$upstream_cookie_session`",
        ),
        (
            "arg_",
            Named::Arg,
            "query parameter's name, e.g. `$arg_page`",
        ),
    ];
    for (prefix, named, example) in families {
        match lower.strip_prefix(prefix) {
            Some("") => return Err(format!("`${prefix}` needs a {example}")),
            Some(name) => return Ok(named(name.into())),
            None => {}
        }
    }
    // A misspelt `$http_<name>` is most likely misspelt before its `_`.
    let as_field = lower.split_once('_').map(|(_, f)| format!("http_{f}"));
    let known = VARIABLES.iter().map(|(known, _)| *known);
    let hint = (lower.len() <= HINTED_NAME)
        .then(|| nearest(&lower, known.chain(as_field.as_deref())))
        .flatten();
    Err(match hint {
        Some(near) => format!("unknown variable `${name}` (did you mean `${near}`?)"),
        None => format!("unknown variable `${name}`"),
    })
}

/// The machine's host name (`$hostname`), read once: `-` when the
/// system gives none that is text.
pub fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<Box<str>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for writes of its whole length,
        // which is what is passed; the name is NUL-terminated within it
        // when it fits, and a longer one is cut without (read up to the
        // first NUL or the end, below).
        let done = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        match (done, std::str::from_utf8(&buf[..len])) {
            (0, Ok(name)) if !name.is_empty() => name.into(),
            _ => "-".into(),
        }
    })
}

/// nginx's `$cookie_<name>` in `cookies` (the request's Cookie fields'
/// values): the value of the first cookie so named, in any case (nginx
/// compares without case), as sent, its spaces aside.
pub fn cookie_in<'a>(cookies: &'a [u8], name: &str) -> Option<&'a [u8]> {
    crate::http::headers::cookie_pairs(cookies).find_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        let named = pair[..eq]
            .trim_ascii()
            .eq_ignore_ascii_case(name.as_bytes());
        named.then(|| pair[eq + 1..].trim_ascii())
    })
}

/// nginx's `$upstream_cookie_<name>` in `set_cookie` (the value of one
/// `Set-Cookie` field): the cookie's value if the field sets one of that
/// name, in any case (as nginx compares it), the value as sent.
pub fn set_cookie_value<'a>(set_cookie: &'a [u8], name: &str) -> Option<&'a [u8]> {
    // The cookie is its first pair: what follows are its attributes.
    let pair = set_cookie.split(|&b| b == b';').next()?;
    cookie_in(pair, name)
}

/// nginx's `$arg_<name>` in `query` (what follows a target's `?`): the
/// value of the first parameter so named, in any case, as sent (not
/// decoded); empty for one without `=`.
pub fn arg_in<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|param| {
        let (named, value) = param.split_once('=').unwrap_or((param, ""));
        named.eq_ignore_ascii_case(name).then_some(value)
    })
}

/// Whether `$http_<name>` names the field called `field`.
pub fn names_field(name: &str, field: impl AsRef<[u8]>) -> bool {
    let field = field.as_ref();
    name.len() == field.len()
        && (name.bytes().zip(field.iter().copied()))
            .all(|(n, f)| n == f.to_ascii_lowercase() || (n == b'_' && f == b'-'))
}

/// The host of an authority (`user@Host:port`, `[::1]:8080`), as nginx's
/// `$host`: without user or port, or a trailing dot.
pub fn host_of(authority: &str) -> &str {
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match authority.strip_prefix('[') {
        Some(_) => authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]),
        None => authority
            .split_once(':')
            .map_or(authority, |(host, _)| host),
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// The three parts of a request line.
#[derive(Clone, Copy)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub protocol: &'a str,
}

impl<'a> RequestLine<'a> {
    /// The parts of a request line as logged, when it has them: a
    /// malformed one (logged as it came) may not.
    pub fn split(line: &'a str) -> Option<Self> {
        let mut parts = line.split(' ');
        let (method, target, protocol) = (parts.next()?, parts.next()?, parts.next()?);
        let whole =
            parts.next().is_none() && [method, target, protocol].iter().all(|p| !p.is_empty());
        whole.then_some(RequestLine {
            method,
            target,
            protocol,
        })
    }

    /// An absolute-form target's scheme and authority, and the rest.
    fn absolute(&self) -> Option<(&'a str, &'a str)> {
        let (scheme, rest) = self.target.split_once("://")?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return None;
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        Some(rest.split_at(end))
    }

    pub fn authority(&self) -> Option<&'a str> {
        self.absolute().map(|(authority, _)| authority)
    }

    /// The target from its path on, as nginx's `$request_uri` (an
    /// absolute-form target loses its scheme and host, and its empty
    /// path is `/`, RFC 9112 §3.2.2).
    pub fn uri(&self) -> Cow<'a, str> {
        match self.absolute() {
            Some((_, rest)) if rest.starts_with('/') => Cow::Borrowed(rest),
            Some((_, rest)) => Cow::Owned(format!("/{rest}")),
            None => Cow::Borrowed(self.target),
        }
    }

    /// The target as sent from its path on, the path maybe empty.
    fn after_authority(&self) -> &'a str {
        self.absolute().map_or(self.target, |(_, rest)| rest)
    }

    pub fn path(&self) -> &'a str {
        let uri = self.after_authority();
        match uri.split_once('?').map_or(uri, |(path, _)| path) {
            "" => "/",
            path => path,
        }
    }

    pub fn query(&self) -> Option<&'a str> {
        self.after_authority()
            .split_once('?')
            .map(|(_, query)| query)
    }

    /// nginx's `$is_args`: `?` for a target with a query, else nothing.
    pub fn is_args(&self) -> &'static str {
        is_args(self.query())
    }
}

/// nginx's `$is_args` for a target's `query` (after its `?`): `?` when
/// there is one; nothing for none, nor for an empty one (`/a?`), as
/// nginx's, whose `$args` is empty then too.
pub fn is_args(query: Option<&str>) -> &'static str {
    match query {
        Some(query) if !query.is_empty() => "?",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_name_is_hinted_up_to_the_longest_compared() {
        let field = "x".repeat(HINTED_NAME - "htpp_".len());
        let e = lookup(&format!("htpp_{field}")).unwrap_err();
        assert!(e.contains(&format!("did you mean `$http_{field}`")), "{e}");
        let e = lookup(&format!("htpp_{field}x")).unwrap_err();
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn a_proxy_protocol_tlv_is_named_as_nginx_names_it_in_any_case() {
        let named = |name: &str| lookup(name).unwrap();
        assert_eq!(
            named("proxy_protocol_tlv_0xEA"),
            Named::ProxyTlv(TlvName::Top(0xea))
        );
        assert_eq!(
            named("Proxy_Protocol_TLV_SSL_CN"),
            Named::ProxyTlv(TlvName::Ssl(0x22))
        );
        // The variables of the header's addresses stay themselves.
        assert_eq!(
            named("proxy_protocol_addr"),
            Named::Var(Var::ProxyProtocolAddr)
        );
        let e = lookup("proxy_protocol_tlv_vpce").unwrap_err();
        assert!(e.contains("not a TLV's name"), "{e}");
        assert!(lookup("proxy_protocol_tlv_").is_err());
    }

    #[test]
    fn a_field_is_named_by_its_whole_name_an_underscore_standing_for_a_dash() {
        assert!(names_field("x_request_id", "X-Request-Id"));
        assert!(names_field("x_forwarded_host", "X_Forwarded_Host"));
        assert!(!names_field("accept", "Accept-Encoding"));
        assert!(!names_field("accept_encoding", "Accept"));
        // A dash stands for no other byte, nor `_` for any other.
        assert!(!names_field("xxa", "X-A"));
        assert!(!names_field("x_a", "XbA"));
    }

    #[test]
    fn a_url_in_the_query_does_not_make_the_target_absolute() {
        let line = RequestLine::split("GET /go?to=http://x.example/p HTTP/1.1").unwrap();
        assert_eq!(line.authority(), None);
        assert_eq!(line.uri(), "/go?to=http://x.example/p");
        assert_eq!(line.path(), "/go");
        assert_eq!(line.query(), Some("to=http://x.example/p"));
        let line = RequestLine::split("GET ://x.example/p HTTP/1.1").unwrap();
        assert_eq!(line.authority(), None);
        assert_eq!(line.path(), "://x.example/p");
    }

    // The kernel's name is what gethostname(2) reads.
    #[cfg(target_os = "linux")]
    #[test]
    fn hostname_is_the_machine_s() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname(), kernel.trim_end());
    }
}
