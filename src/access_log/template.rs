//! `log_format` templates: the operator's own line, written as nginx's
//! `log_format` writes it (`$remote_addr - [$time_local] "$request" ...`),
//! so that log pipelines written for nginx read inverso's lines too.
//!
//! A template is parsed once, when the configuration loads, into a list of
//! parts; a line is a walk over them, each writing straight into the line
//! buffer as the combined writer does. The request fields a template names
//! (`$http_<name>`) are all a record carries of the request's head
//! beyond what every format logs: they are taken, by name, while the head
//! is at hand.

use super::record::{escape_into, push_user};
use super::{Heads, Record};
use crate::digits::{push_ip, Decimal, Thousandths};
use crate::http::date::{format_certificate_date, LogClock};
use crate::http::headers::Headers;
use crate::http::proxy_tlv;
use crate::upstream_tries::{TryValue, UpstreamTry};
use crate::variables::{self, host_of, Named, Piece, RequestLine, Var};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// A `log_format` holding `$variables`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// As written.
    source: Box<str>,
    /// How the values that are text are written into the line.
    escape: Escape,
    /// Text copied as written, and variables; a `$http_<name>` reads the
    /// request field of that name in `fields`.
    parts: Box<[Piece]>,
    /// The request fields the parts read, as `$http_` names them (lower
    /// case, `_` for `-`); `$host` reads `host`.
    fields: Arc<[Box<str>]>,
    /// What a record carries only for a template that writes it, told
    /// once here rather than looked for in the parts per request.
    names: Names,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Names {
    pool: bool,
    sent_fields: bool,
    upstream_fields: bool,
    request_body: bool,
    tcp_info: bool,
    jwt_claims: bool,
    country: bool,
}

impl Template {
    /// Parses `text`: `$name` or `${name}` (which may be followed by
    /// letters) is a variable, `$$` a dollar sign, anything else is copied;
    /// it may begin with `escape=default` or `escape=json` and a space, as
    /// nginx's `log_format` may.
    pub fn parse(text: &str) -> Result<Template, String> {
        let (escape, body) = Escape::split_off(text)?;
        let parts = variables::pieces(body)?;
        let mut fields: Vec<Box<str>> = Vec::new();
        for piece in &parts {
            let field = match piece {
                Piece::Named(Named::Field(field)) => field.clone(),
                Piece::Named(Named::Var(Var::Host)) => "host".into(),
                Piece::Named(Named::Cookie(_)) => "cookie".into(),
                _ => continue,
            };
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
        if parts.iter().all(|p| matches!(p, Piece::Text(_))) {
            return Err(
                "the template names no variable: every line would be the same (`$$` is a \
                 dollar sign, not a variable)"
                    .into(),
            );
        }
        let mut names = Names::default();
        for piece in &parts {
            let Piece::Named(named) = piece else {
                continue;
            };
            let flag = match named {
                Named::Var(Var::Pool) => &mut names.pool,
                Named::Var(Var::RequestBody) => &mut names.request_body,
                Named::Var(
                    Var::TcpinfoRtt
                    | Var::TcpinfoRttvar
                    | Var::TcpinfoSndCwnd
                    | Var::TcpinfoRcvSpace,
                ) => &mut names.tcp_info,
                Named::SentField(_) => &mut names.sent_fields,
                Named::UpstreamField(_) | Named::UpstreamCookie(_) => &mut names.upstream_fields,
                Named::JwtClaim(_) => &mut names.jwt_claims,
                Named::Var(Var::GeoipCountryCode) => &mut names.country,
                _ => continue,
            };
            *flag = true;
        }
        Ok(Template {
            source: text.into(),
            escape,
            parts: parts.into(),
            fields: fields.into(),
            names,
        })
    }

    /// Whether it writes `$pool`: only then does a record carry the name.
    pub fn names_pool(&self) -> bool {
        self.names.pool
    }

    /// Whether it writes a `$sent_http_<name>`: only then does a record
    /// carry the response head sent.
    pub fn names_sent_fields(&self) -> bool {
        self.names.sent_fields
    }

    /// Whether it writes an `$upstream_http_<name>` or an
    /// `$upstream_cookie_<name>`: only then does a record carry the
    /// backend's fields.
    pub fn names_upstream_fields(&self) -> bool {
        self.names.upstream_fields
    }

    /// Whether it writes `$geoip_country_code`: only then is the client's
    /// country looked up for the record.
    pub fn names_country(&self) -> bool {
        self.names.country
    }

    /// Whether it writes `$request_body`: only then is a body kept.
    pub fn names_request_body(&self) -> bool {
        self.names.request_body
    }

    /// Whether it writes a `$tcpinfo_*`: only then is the kernel asked.
    pub fn names_tcp_info(&self) -> bool {
        self.names.tcp_info
    }

    /// Whether it writes a `$jwt_claim_<name>`: only then does a record
    /// carry the token's claims.
    pub fn names_jwt_claims(&self) -> bool {
        self.names.jwt_claims
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The request fields a record must carry for this template, as
    /// [`RequestFields::take`] takes them.
    pub fn request_fields(&self) -> &Arc<[Box<str>]> {
        &self.fields
    }

    /// A line as this template writes it, for a made-up request (a
    /// cache miss answered by a backend), for `inverso check`.
    pub fn example_line(&self) -> String {
        let mut headers = Headers::new();
        headers.push("Host", "www.example.com");
        headers.push("Referer", "https://www.example.com/");
        headers.push("User-Agent", "curl/8.5.0");
        let record = Record {
            time: UNIX_EPOCH + Duration::from_millis(1_764_444_352_412),
            client: [203, 0, 113, 7].into(),
            peer: Some(([203, 0, 113, 7], 51_234).into()),
            proxied_to: None,
            proxy_tlvs: None,
            server: Some(([10, 0, 0, 1], 443).into()),
            remote_user: None,
            jwt_claims: None,
            request_line: "GET /search?q=caf%C3%A9 HTTP/1.1".into(),
            made_target: None,
            status: 200,
            bytes: 5120,
            referer: Some("https://www.example.com/".into()),
            user_agent: Some("curl/8.5.0".into()),
            cache: Some("MISS"),
            duration: Duration::from_micros(12_345),
            connection: Some((7, 3)),
            head_bytes: 200,
            request_length: Some(120),
            upstream_queue: Some(Duration::ZERO),
            last_try: UpstreamTry {
                upstream: Some("10.0.0.5:8080".into()),
                status: Some(200),
                connect: Some(Duration::ZERO),
                wait: Some(Duration::from_micros(10_512)),
                response: Some(Duration::from_micros(11_204)),
                bytes_received: Some(5_320),
                response_length: Some(5_120),
                bytes_sent: Some(410),
            },
            earlier_tries: Vec::new(),
            route_host: None,
            gzip_sizes: None,
            request_body: None,
            tcp_info: None,
            connection_time: None,
            pipelined: false,
            termination: Default::default(),
            limit_req: None,
            pool: Some(crate::config::DEFAULT_POOL.into()),
            show_pool: false,
            request_id: Some("2f1b9c4e8d7a6b50".into()),
            trace: None,
            heads: None,
            fields: Some(RequestFields::take(&self.fields, &headers)),
            response_head: None,
            upstream_fields: None,
            scheme: "https",
            tls: Some(crate::http::tls::Agreed {
                protocol: "TLSv1.3",
                cipher: "TLS13_AES_128_GCM_SHA256",
                resumed: false,
                alpn: Some("http/1.1"),
                group: Some("X25519"),
            }),
            server_name: Some("www.example.com".into()),
            offered_protocols: None,
            country: None,
            client_certificate: None,
        };
        let mut line = String::new();
        self.write(&record, &mut line, &mut LogClock::new());
        line
    }

    /// Appends `record`'s line to `line`, without newline.
    pub(super) fn write(&self, record: &Record, line: &mut String, clock: &mut LogClock) {
        let request = RequestLine::split(&record.request_line);
        let mut out = Out {
            line,
            escape: self.escape,
        };
        // The response head's fields, read once for all `$sent_http_`.
        let mut sent: Option<Cow<'_, [(String, String)]>> = None;
        for part in &self.parts {
            match part {
                Piece::Text(text) => out.line.push_str(text),
                Piece::Named(Named::Var(var)) => write_var(*var, record, request, &mut out, clock),
                Piece::Named(Named::Field(name)) => {
                    out.text(record.fields.as_ref().and_then(|f| f.get(name)));
                }
                Piece::Named(Named::Cookie(name)) => {
                    let cookies = record.fields.as_ref().and_then(|f| f.get("cookie"));
                    let value = cookies.and_then(|c| variables::cookie_in(c.as_bytes(), name));
                    out.text(value.map(|v| std::str::from_utf8(v).unwrap_or_default()));
                }
                Piece::Named(Named::Arg(name)) => {
                    let query = match record.made_target.as_deref() {
                        Some(made) => made.split_once('?').map(|(_, query)| query),
                        None => request.and_then(|l| l.query()),
                    };
                    out.text(query.and_then(|query| variables::arg_in(query, name)));
                }
                Piece::Named(Named::ProxyTlv(name)) => {
                    let tlvs = record.proxy_tlvs.as_deref();
                    let value = tlvs.and_then(|tlvs| proxy_tlv::value(tlvs, *name));
                    out.text(value.as_deref().map(String::from_utf8_lossy).as_deref());
                }
                Piece::Named(Named::SentField(name)) => {
                    let fields = sent.get_or_insert_with(|| sent_fields(record));
                    let values = (fields.iter())
                        .filter(|(field, _)| variables::names_field(name, field))
                        .map(|(_, value)| Cow::from(value.as_str()));
                    out.text(joined(values).as_deref());
                }
                Piece::Named(Named::UpstreamCookie(name)) => {
                    let fields = record.upstream_fields.iter().flat_map(Headers::iter);
                    let value = (fields
                        .filter(|(field, _)| field.eq_ignore_ascii_case("set-cookie")))
                    .find_map(|(_, value)| variables::set_cookie_value(value, name));
                    out.text(value.map(String::from_utf8_lossy).as_deref());
                }
                Piece::Named(Named::UpstreamField(name)) => {
                    let fields = record.upstream_fields.iter().flat_map(Headers::iter);
                    let values = fields
                        .filter(|(field, _)| variables::names_field(name, field))
                        .map(|(_, value)| String::from_utf8_lossy(value));
                    out.text(joined(values).as_deref());
                }
                Piece::Named(Named::JwtClaim(name)) => {
                    let mut value = Vec::new();
                    let claims = record.jwt_claims.as_deref();
                    if let Some(claim) = claims.and_then(|c| crate::auth::jwt::claim(c, name)) {
                        crate::field_value::push_claim(claim, &mut value);
                    }
                    let value = String::from_utf8_lossy(&value);
                    out.text(Some(&*value).filter(|v| !v.is_empty()));
                }
            }
        }
    }
}

/// The fields of the response head sent: read from it as it went, or,
/// with `log_headers` (which a main combined or JSON line writes beside a
/// pool's own template), as those heads have them.
fn sent_fields(record: &Record) -> Cow<'_, [(String, String)]> {
    match (&record.response_head, &record.heads) {
        (None, Some(heads)) => Cow::Borrowed(&heads.response),
        (head, _) => Cow::Owned(Heads::fields_of(head.as_deref().unwrap_or_default())),
    }
}

/// A response's fields of one name, joined with `, ` as nginx (since
/// 1.23) joins them for `$sent_http_` and `$upstream_http_`; `None`
/// without one.
fn joined<'a>(mut values: impl Iterator<Item = Cow<'a, str>>) -> Option<Cow<'a, str>> {
    let first = values.next()?;
    Some(values.fold(first, |all, value| Cow::Owned(format!("{all}, {value}"))))
}

/// How a template writes the values that are text (`escape=` before it,
/// as in nginx's `log_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    /// As a quoted field of the combined line: every byte outside
    /// printable ASCII, `"` and `\` as `\xHH`; `-` for a value that is
    /// absent.
    Default,
    /// As inside a JSON string (RFC 8259): `\"`, `\\`, `\n`, `\u00XX`;
    /// nothing for a value that is absent, as nginx's `escape=json`.
    Json,
}

impl Escape {
    /// The `escape=<word>` a template begins with, if any, and the rest;
    /// `escape=` followed by what is not a word and a space is the
    /// template's own text (`escape=$http_x_e` logs that field).
    fn split_off(text: &str) -> Result<(Escape, &str), String> {
        let Some(rest) = text.strip_prefix("escape=") else {
            return Ok((Escape::Default, text));
        };
        let (word, body) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
        if word.is_empty() || !word.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Ok((Escape::Default, text));
        }
        let escape = match word {
            "default" => Escape::Default,
            "json" => Escape::Json,
            // nginx's `none` would let a client write anything into the
            // log, line ends included.
            "none" => {
                return Err("escape=none is not offered: a client could write a line \
                                  of its own into the log; escape=default or escape=json"
                    .into())
            }
            _ => {
                return Err(format!(
                    "escape={word}: expected escape=default or escape=json"
                ))
            }
        };
        Ok((escape, body.trim_start()))
    }
}

/// Where a template writes its values, escaped as it says.
struct Out<'a> {
    line: &'a mut String,
    escape: Escape,
}

impl Out<'_> {
    /// A value that is text from outside (a client's, a backend's, a
    /// certificate's), escaped so that it can neither end the line nor
    /// break out of its quotes.
    fn text(&mut self, value: Option<&str>) {
        match (value, self.escape) {
            (Some(value), Escape::Default) => escape_into(self.line, value),
            (Some(value), Escape::Json) => crate::json::push_escaped(self.line, value),
            (None, _) => self.absent(),
        }
    }

    /// A value the proxy writes itself (a number, a time, a name of its
    /// own), which needs no escaping.
    fn own(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.line.push_str(value),
            None => self.absent(),
        }
    }

    fn number(&mut self, n: Option<u64>) {
        self.own(n.map(Decimal::new).as_ref().map(Decimal::as_str));
    }

    /// A duration in `unit` (seconds or milliseconds, to the thousandth).
    fn time(&mut self, d: Option<Duration>, unit: fn(Duration) -> Thousandths) {
        self.own(d.map(unit).as_ref().map(Thousandths::as_str));
    }

    fn try_value(&mut self, value: Option<TryValue<'_>>) {
        match value {
            Some(TryValue::Text(text)) => self.text(Some(text)),
            Some(value) => self.own(Some(value.as_str())),
            None => self.absent(),
        }
    }

    fn absent(&mut self) {
        if self.escape == Escape::Default {
            self.line.push('-');
        }
    }
}

fn write_var(
    var: Var,
    r: &Record,
    request: Option<RequestLine>,
    out: &mut Out<'_>,
    clock: &mut LogClock,
) {
    let certificate = r.client_certificate.as_deref();
    let (seconds, millis) = (Thousandths::seconds, Thousandths::millis);
    match var {
        Var::RemoteAddr => push_ip(out.line, r.client),
        Var::RemotePort => out.number(r.client_port().map(u64::from)),
        Var::ServerAddr => match r.server {
            Some(server) => push_ip(out.line, server.ip()),
            None => out.absent(),
        },
        Var::ServerPort => out.number(r.server.map(|server| u64::from(server.port()))),
        Var::RealipRemoteAddr => match r.peer {
            Some(peer) => push_ip(out.line, peer.ip()),
            None => out.absent(),
        },
        Var::RealipRemotePort => out.number(r.peer.map(|peer| u64::from(peer.port()))),
        Var::ProxyProtocolAddr => match (r.proxied_to, r.peer) {
            (Some(_), Some(peer)) => push_ip(out.line, peer.ip()),
            _ => out.absent(),
        },
        Var::ProxyProtocolPort => out.number(
            r.peer
                .filter(|_| r.proxied_to.is_some())
                .map(|p| u64::from(p.port())),
        ),
        Var::ProxyProtocolServerAddr => match r.proxied_to {
            Some(to) => push_ip(out.line, to.ip()),
            None => out.absent(),
        },
        Var::ProxyProtocolServerPort => out.number(r.proxied_to.map(|to| u64::from(to.port()))),
        Var::Hostname => out.text(Some(variables::hostname())),
        Var::Pid => out.number(Some(u64::from(std::process::id()))),
        Var::GeoipCountryCode => out.own(r.country.as_ref().map(|c| c.as_str())),
        // As the combined line writes it: its spaces escaped too, since
        // nginx's `combined` has it unquoted.
        Var::RemoteUser => match out.escape {
            Escape::Default => push_user(out.line, r.remote_user.as_deref()),
            Escape::Json => out.text(r.remote_user.as_deref().filter(|u| !u.is_empty())),
        },
        Var::TimeLocal => out.own(Some(clock.clf(r.time))),
        Var::TimeIso8601 => out.own(Some(clock.iso8601(r.time))),
        Var::Msec => {
            let since = r.time.duration_since(UNIX_EPOCH).unwrap_or_default();
            let millis = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
            out.own(Some(Thousandths::new(millis).as_str()));
        }
        Var::Request => out.text(Some(&r.request_line)),
        Var::RequestMethod => out.text(request.map(|l| l.method)),
        Var::RequestUri => out.text(request.map(|l| l.uri()).as_deref()),
        // As nginx's: what a rewrite made, when one did.
        Var::Uri => match r.made_target.as_deref() {
            Some(made) => out.text(Some(made.split_once('?').map_or(made, |(path, _)| path))),
            None => out.text(request.map(|l| l.path())),
        },
        Var::Args => match r.made_target.as_deref() {
            Some(made) => out.text(made.split_once('?').map(|(_, query)| query)),
            None => out.text(request.and_then(|l| l.query())),
        },
        // Empty rather than `-` without a query, as nginx writes it: its
        // value is then an empty string, not a missing one.
        Var::IsArgs => out.own(Some(match r.made_target.as_deref() {
            Some(made) => variables::is_args(made.split_once('?').map(|(_, query)| query)),
            None => request.map_or("", |l| l.is_args()),
        })),
        Var::ServerProtocol => out.text(request.map(|l| l.protocol)),
        Var::Status => out.number(Some(u64::from(r.status))),
        Var::BodyBytesSent => out.number(Some(r.bytes)),
        Var::BytesSent => out.number(Some(r.head_bytes + r.bytes)),
        Var::RequestLength => out.number(r.request_length),
        Var::Connection => out.number(r.connection.map(|(serial, _)| serial)),
        Var::ConnectionRequests => out.number(r.connection.map(|(_, requests)| requests)),
        Var::ConnectionTime => out.time(r.connection_time, seconds),
        // nginx's: `p` or `.`.
        Var::Pipe => out.own(Some(if r.pipelined { "p" } else { "." })),
        Var::RequestTime => out.time(Some(r.duration), seconds),
        Var::UpstreamAddr
        | Var::UpstreamStatus
        | Var::UpstreamConnectTime
        | Var::UpstreamHeaderTime
        | Var::UpstreamMs
        | Var::UpstreamResponseTime
        | Var::UpstreamBytesReceived
        | Var::UpstreamResponseLength
        | Var::UpstreamBytesSent => write_tries(var, r, out),
        Var::UpstreamQueueTime => out.time(r.upstream_queue, seconds),
        Var::GzipRatio => out.own(r.gzip_sizes.and_then(gzip_ratio).as_deref()),
        Var::TcpinfoRtt => out.number(r.tcp_info.map(|t| u64::from(t.rtt))),
        Var::TcpinfoRttvar => out.number(r.tcp_info.map(|t| u64::from(t.rttvar))),
        Var::TcpinfoSndCwnd => out.number(r.tcp_info.map(|t| u64::from(t.snd_cwnd))),
        Var::TcpinfoRcvSpace => out.number(r.tcp_info.map(|t| u64::from(t.rcv_space))),
        Var::RequestBody => out.text(
            r.request_body
                .as_deref()
                .map(String::from_utf8_lossy)
                .as_deref(),
        ),
        Var::UpstreamCacheStatus => out.own(r.cache),
        Var::Termination => out.own(Some(r.termination.as_str())),
        // Empty otherwise, as nginx's: a value, not a missing one.
        Var::RequestCompletion => out.own(Some(match r.termination.answered_whole() {
            true => "OK",
            false => "",
        })),
        Var::LimitReqStatus => out.own(r.limit_req),
        Var::Referer => out.text(r.referer.as_deref()),
        Var::UserAgent => out.text(r.user_agent.as_deref()),
        Var::RequestId => out.text(r.request_id.as_deref()),
        Var::OtelTraceId | Var::OtelSpanId | Var::OtelParentId | Var::OtelParentSampled => {
            out.own(crate::trace_context::variable(r.trace.as_ref(), var).as_deref())
        }
        Var::Host => {
            let field = || r.fields.as_ref().and_then(|f| f.get("host"));
            let host = (request.and_then(|l| l.authority()).or_else(field))
                .map(host_of)
                .filter(|host| !host.is_empty());
            // Checked rather than always copied: hosts are mostly written
            // in lower case already.
            match host {
                Some(host) if host.bytes().any(|b| b.is_ascii_uppercase()) => {
                    out.text(Some(&host.to_ascii_lowercase()))
                }
                host => out.text(host),
            }
        }
        Var::DurationMs => out.time(Some(r.duration), millis),
        Var::Pool => out.text(r.pool.as_deref()),
        Var::ServerName => out.text(r.route_host.as_deref()),
        Var::Scheme => out.own(Some(r.scheme)),
        // nginx's: `on` over TLS to this proxy, else empty.
        Var::Https => out.own(Some(if r.tls.is_some() { "on" } else { "" })),
        Var::SslProtocol => out.own(r.tls.map(|tls| tls.protocol)),
        Var::SslCipher => out.own(r.tls.map(|tls| tls.cipher)),
        Var::SslSessionReused => out.own(r.tls.map(|tls| if tls.resumed { "r" } else { "." })),
        Var::SslAlpnProtocol => out.own(r.tls.and_then(|tls| tls.alpn)),
        Var::SslCurve => out.own(r.tls.and_then(|tls| tls.group)),
        // Never: early data (0-RTT) is not taken, and HTTP/2 and 3 are
        // not spoken. Empty, as nginx's for a request without them.
        Var::SslEarlyData | Var::Http2 | Var::Http3 => out.own(Some("")),
        Var::SslServerName => out.text(r.server_name.as_deref()),
        Var::SslPrereadAlpnProtocols => out.text(r.offered_protocols.as_deref()),
        // nginx's: whether the client showed a certificate that passed (a
        // failed one fails the handshake, and never makes a request).
        Var::SslClientVerify => out.own(match (r.tls, &r.client_certificate) {
            (None, _) => None,
            (Some(_), None) => Some("NONE"),
            (Some(_), Some(_)) => Some("SUCCESS"),
        }),
        Var::SslClientFingerprint => out.text(certificate.map(|c| &*c.fingerprint)),
        Var::SslClientSDn => out.text(certificate.and_then(|c| c.subject.as_deref())),
        Var::SslClientIDn => out.text(certificate.and_then(|c| c.issuer.as_deref())),
        Var::SslClientSerial => out.text(certificate.and_then(|c| c.serial.as_deref())),
        Var::SslClientVStart => {
            let start = certificate.and_then(|c| c.validity).map(|(start, _)| start);
            out.own(start.map(format_certificate_date).as_deref())
        }
        Var::SslClientVEnd => {
            let end = certificate.and_then(|c| c.validity).map(|(_, end)| end);
            out.own(end.map(format_certificate_date).as_deref())
        }
        Var::SslClientVRemain => out.number(certificate.and_then(|c| c.days_left(r.time))),
        // URL-encoded: nothing left to escape.
        Var::SslClientEscapedCert => match certificate {
            Some(c) => out.line.extend(c.escaped_pem().map(char::from)),
            None => out.absent(),
        },
    }
}

/// A variable of a target (see [`crate::upstream_tries::UpstreamTry::value`]): of each target
/// tried before the last, then of the last, as nginx lists them
/// (`502, 200`). Inside a list, a target with nothing to say is `-`
/// whatever the escaping.
fn write_tries(var: Var, r: &Record, out: &mut Out<'_>) {
    for tried in &r.earlier_tries {
        match tried.value(var) {
            Some(value) => out.try_value(Some(value)),
            None => out.line.push('-'),
        }
        out.line.push_str(", ");
    }
    out.try_value(r.last_try.value(var));
}

/// nginx's `$gzip_ratio` of a body `bytes_in` long compressed to
/// `bytes_out`: their ratio to two decimals, the third rounding half up
/// (`3.75`); none for nothing compressed.
fn gzip_ratio((bytes_in, bytes_out): (u64, u64)) -> Option<String> {
    let thousandths = u128::from(bytes_in) * 1000 / u128::from(bytes_out).max(1);
    let hundredths = (thousandths + 5) / 10;
    (bytes_out > 0).then(|| format!("{}.{:02}", hundredths / 100, hundredths % 100))
}

/// The request fields a template names, taken from a request's head for
/// its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFields {
    /// As the template names them ([`Template::request_fields`]), shared
    /// by every record: the format in force when a record is written may
    /// be another one than when it was made (a reload in between), and
    /// finds its fields by name.
    names: Arc<[Box<str>]>,
    values: Vec<Option<String>>,
}

impl RequestFields {
    /// The fields called `names` in `headers`: a name's `_` stands for
    /// `-`, case aside, as nginx reads `$http_<name>`. Several fields of
    /// one name are joined as nginx joins them: with `; ` for Cookie, `, `
    /// for the others. Values are trimmed, and bytes that are not UTF-8
    /// become U+FFFD, as the Referer and User-Agent every format logs.
    /// Credentials are redacted (`$http_authorization` is `Basic
    /// [redacted]`): the log holds no password.
    pub fn take(names: &Arc<[Box<str>]>, headers: &Headers) -> RequestFields {
        let mut values: Vec<Option<String>> = vec![None; names.len()];
        for (field, value) in headers.iter() {
            let Some(i) = names
                .iter()
                .position(|name| variables::names_field(name, field))
            else {
                continue;
            };
            let value = String::from_utf8_lossy(value.trim_ascii());
            let value = match crate::auth::is_credentials_field(field) {
                true => std::borrow::Cow::Owned(crate::auth::redacted(&value)),
                false => value,
            };
            match &mut values[i] {
                Some(joined) => {
                    joined.push_str(if &*names[i] == "cookie" { "; " } else { ", " });
                    joined.push_str(&value);
                }
                empty => *empty = Some(value.into_owned()),
            }
        }
        RequestFields {
            names: names.clone(),
            values,
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        let i = self.names.iter().position(|n| **n == *name)?;
        self.values.get(i)?.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::{By, Stage, Termination};
    use crate::tls::client_cert::ClientCertificate;

    /// A cache miss a backend answered, every field set.
    fn record() -> Record {
        let mut headers = Headers::new();
        headers.push("Host", "App.Example.com:8080");
        headers.push("X-Request-Id", "abc-123");
        headers.push("Cookie", "a=1");
        headers.push("cookie", "b=2");
        headers.push("Accept", "text/html");
        headers.push("ACCEPT", "*/*");
        headers.push("X_Forwarded_Host", "under.example");
        let names: Arc<[Box<str>]> = [
            "host",
            "x_request_id",
            "cookie",
            "accept",
            "x_forwarded_host",
            "x_absent",
        ]
        .map(Box::from)
        .into();
        Record {
            time: UNIX_EPOCH + Duration::from_millis(784_111_777_042),
            client: "192.0.2.10".parse().unwrap(),
            peer: Some(([192, 0, 2, 10], 51_000).into()),
            proxied_to: Some(([198, 51, 100, 1], 443).into()),
            proxy_tlvs: None,
            server: Some(([192, 0, 2, 1], 8443).into()),
            remote_user: Some("ann".into()),
            jwt_claims: None,
            request_line: "GET /a/b.html?x=1&y=%22 HTTP/1.1".into(),
            made_target: None,
            status: 200,
            bytes: 512,
            referer: Some("https://ref.example/".into()),
            user_agent: Some("curl/8".into()),
            cache: Some("MISS"),
            duration: Duration::from_micros(1_500),
            connection: Some((7, 3)),
            head_bytes: 200,
            request_length: Some(120),
            upstream_queue: Some(Duration::from_micros(1_250_400)),
            last_try: UpstreamTry {
                upstream: Some("127.0.0.1:9001".into()),
                status: Some(200),
                connect: Some(Duration::from_micros(500)),
                wait: Some(Duration::from_micros(1_250)),
                response: Some(Duration::from_micros(2_750)),
                bytes_received: Some(1_290),
                response_length: Some(1_024),
                bytes_sent: Some(410),
            },
            earlier_tries: Vec::new(),
            gzip_sizes: Some((5_120, 1_536)),
            request_body: Some(b"q=caf\xc3\xa9&n=\"1\"\n\xff"[..].into()),
            tcp_info: Some(crate::http::conn::TcpInfo {
                rtt: 1_500,
                rttvar: 750,
                snd_cwnd: 10,
                rcv_space: 65_483,
            }),
            connection_time: Some(Duration::from_millis(61_250)),
            pipelined: true,
            termination: Termination::new(By::Server, Stage::Data),
            limit_req: Some("DELAYED"),
            pool: Some("api".into()),
            route_host: Some("*.shop.example".into()),
            show_pool: false,
            request_id: Some("4f1c-x".into()),
            trace: Some(crate::trace_context::TraceContext {
                trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
                span_id: 0x53995c3f42cd8ad8,
                parent_id: Some(0x00f067aa0ba902b7),
                flags: 1,
                continued: true,
            }),
            heads: None,
            fields: Some(RequestFields::take(&names, &headers)),
            response_head: None,
            upstream_fields: None,
            scheme: "https",
            tls: Some(crate::http::tls::Agreed {
                protocol: "TLSv1.2",
                cipher: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                resumed: true,
                alpn: Some("http/1.1"),
                group: Some("X25519"),
            }),
            server_name: Some("shop.example".into()),
            offered_protocols: Some("h2,http/1.1".into()),
            country: crate::geoip::Country::parse("DE"),
            client_certificate: Some(Arc::new(ClientCertificate {
                byte_sequence: ":AQID:".into(),
                chain: None,
                fingerprint: "7037807198c22a7d2b0807371d763779a84fdfcf".into(),
                subject: Some("CN=alice,O=Example\\, Inc.".into()),
                issuer: Some("CN=Example CA".into()),
                serial: Some("0BAD".into()),
                validity: Some((
                    UNIX_EPOCH + Duration::from_secs(784_000_000),
                    UNIX_EPOCH + Duration::from_secs(784_111_777 + 10 * 86_400 + 3_600),
                )),
            })),
        }
    }

    /// A cache hit on a proxy without request IDs, behind a proxy in front
    /// that named the client, from a request without Referer or Host.
    fn bare_record() -> Record {
        Record {
            peer: None,
            proxied_to: None,
            proxy_tlvs: None,
            remote_user: None,
            jwt_claims: None,
            referer: None,
            user_agent: None,
            cache: None,
            connection: None,
            request_length: None,
            upstream_queue: None,
            last_try: UpstreamTry::default(),
            earlier_tries: Vec::new(),
            route_host: None,
            gzip_sizes: None,
            request_body: None,
            tcp_info: None,
            connection_time: None,
            pipelined: false,
            termination: Default::default(),
            limit_req: None,
            pool: None,
            request_id: None,
            trace: None,
            fields: None,
            response_head: None,
            upstream_fields: None,
            scheme: "http",
            tls: None,
            server_name: None,
            offered_protocols: None,
            country: None,
            client_certificate: None,
            request_line: "GET / HTTP/1.0".into(),
            ..record()
        }
    }

    #[test]
    fn a_token_s_claims_are_written_as_in_field_values_and_nothing_without_one() {
        let claims = crate::json_value::parse(
            br#"{"sub":"ann","email":"ann@example.com","realm_access":{"roles":["a","b"]},
                "n":3,"note":"say \"hi\""}"#,
        )
        .unwrap();
        let r = Record {
            jwt_claims: Some(Arc::new(claims)),
            ..record()
        };
        let template =
            "$jwt_claim_email ${jwt_claim_realm_access.roles} $jwt_claim_n $jwt_claim_none";
        assert!(Template::parse(template).unwrap().names_jwt_claims());
        assert!(!Template::parse("$remote_user").unwrap().names_jwt_claims());
        assert_eq!(line(template, &r), "ann@example.com a,b 3 -");
        assert_eq!(line(template, &record()), "- - - -");
        // Escaped as any text a client sent.
        assert_eq!(line("$jwt_claim_note", &r), "say \\x22hi\\x22");
        assert_eq!(
            line("escape=json {\"n\":\"$jwt_claim_note\"}", &r),
            r#"{"n":"say \"hi\""}"#
        );
    }

    #[test]
    fn per_target_variables_list_the_targets_tried_before_the_last_first() {
        let mut r = record();
        r.earlier_tries = vec![
            UpstreamTry {
                upstream: Some("127.0.0.1:9003".into()),
                status: Some(502),
                response: Some(Duration::from_micros(300)),
                ..UpstreamTry::default()
            },
            UpstreamTry {
                upstream: Some("127.0.0.1:9002".into()),
                status: Some(503),
                connect: Some(Duration::ZERO),
                wait: Some(Duration::from_micros(2_000)),
                response: Some(Duration::from_micros(2_100)),
                bytes_received: Some(90),
                response_length: Some(4),
                bytes_sent: Some(410),
            },
        ];
        let cases = [
            (
                "$upstream_addr",
                "127.0.0.1:9003, 127.0.0.1:9002, 127.0.0.1:9001",
            ),
            ("$upstream_status", "502, 503, 200"),
            ("$upstream_connect_time", "-, 0.000, 0.001"),
            ("$upstream_header_time", "-, 0.002, 0.001"),
            ("$upstream_ms", "-, 2.000, 1.250"),
            ("$upstream_response_time", "0.000, 0.002, 0.003"),
            ("$upstream_bytes_received", "-, 90, 1290"),
            ("$upstream_response_length", "-, 4, 1024"),
            ("$upstream_bytes_sent", "-, 410, 410"),
            // One for the request, summed over the targets.
            ("$upstream_queue_time", "1.250"),
        ];
        for (template, expected) in cases {
            assert_eq!(line(template, &r), expected, "{template}");
        }
        // Inside a list a lacking value is `-` even in JSON, as nginx
        // writes it; the last's, lacking, is empty there as alone.
        r.last_try.wait = None;
        assert_eq!(
            line("escape=json $upstream_header_time|$upstream_status", &r),
            "-, 0.002, |502, 503, 200"
        );
        assert_eq!(line("$upstream_header_time", &r), "-, 0.002, -");
    }

    fn line(template: &str, record: &Record) -> String {
        let template = Template::parse(template).unwrap();
        let mut line = String::new();
        template.write(record, &mut line, &mut LogClock::new());
        line
    }

    fn error(template: &str) -> String {
        Template::parse(template).unwrap_err()
    }

    #[test]
    fn geoip_country_code_writes_the_country_the_record_carries() {
        let template = Template::parse("[$geoip_country_code]").unwrap();
        assert!(template.names_country());
        assert!(!Template::parse("$remote_addr").unwrap().names_country());
        let mut r = record();
        r.country = None;
        assert_eq!(line("[$geoip_country_code]", &r), "[-]");
        assert_eq!(
            line("escape=json {\"c\":\"$geoip_country_code\"}", &r),
            "{\"c\":\"\"}"
        );
        r.country = crate::geoip::Country::parse("DE");
        assert_eq!(line("[$geoip_country_code]", &r), "[DE]");
    }

    #[test]
    fn every_variable_is_written_for_a_full_record() {
        let pid = std::process::id().to_string();
        let cases = [
            ("$remote_addr", "192.0.2.10"),
            ("$geoip_country_code", "DE"),
            ("$remote_port", "51000"),
            ("$realip_remote_addr", "192.0.2.10"),
            ("$realip_remote_port", "51000"),
            ("$proxy_protocol_addr", "192.0.2.10"),
            ("$proxy_protocol_port", "51000"),
            ("$proxy_protocol_server_addr", "198.51.100.1"),
            ("$proxy_protocol_server_port", "443"),
            ("$hostname", variables::hostname()),
            ("$pid", &pid),
            ("$server_addr", "192.0.2.1"),
            ("$server_port", "8443"),
            ("$remote_user", "ann"),
            ("$time_local", "06/Nov/1994:08:49:37 +0000"),
            ("$time_iso8601", "1994-11-06T08:49:37+00:00"),
            ("$msec", "784111777.042"),
            ("$request", "GET /a/b.html?x=1&y=%22 HTTP/1.1"),
            ("$request_method", "GET"),
            ("$request_uri", "/a/b.html?x=1&y=%22"),
            ("$uri", "/a/b.html"),
            ("$document_uri", "/a/b.html"),
            ("$args", "x=1&y=%22"),
            ("$query_string", "x=1&y=%22"),
            ("$arg_y", "%22"),
            ("$arg_Z", "-"),
            ("$cookie_b", "2"),
            ("$cookie_c", "-"),
            ("$is_args", "?"),
            ("$server_protocol", "HTTP/1.1"),
            ("$status", "200"),
            ("$body_bytes_sent", "512"),
            ("$bytes_sent", "712"),
            ("$request_length", "120"),
            ("$connection", "7"),
            ("$connection_requests", "3"),
            ("$connection_time", "61.250"),
            ("$pipe", "p"),
            ("$request_time", "0.002"),
            ("$upstream_addr", "127.0.0.1:9001"),
            ("$upstream_header_time", "0.001"),
            ("$upstream_status", "200"),
            ("$upstream_connect_time", "0.001"),
            ("$upstream_queue_time", "1.250"),
            ("$upstream_response_time", "0.003"),
            ("$upstream_bytes_received", "1290"),
            ("$upstream_bytes_sent", "410"),
            ("$upstream_response_length", "1024"),
            ("$upstream_cache_status", "MISS"),
            ("$termination", "SD"),
            // Cut short (`SD`): empty, as nginx's.
            ("$request_completion", ""),
            ("$gzip_ratio", "3.33"),
            ("$tcpinfo_rtt", "1500"),
            ("$tcpinfo_rttvar", "750"),
            ("$tcpinfo_snd_cwnd", "10"),
            ("$tcpinfo_rcv_space", "65483"),
            // Escaped as any text; a byte that is not UTF-8 replaced.
            (
                "$request_body",
                "q=caf\\xC3\\xA9&n=\\x221\\x22\\x0A\\xEF\\xBF\\xBD",
            ),
            ("$limit_req_status", "DELAYED"),
            ("$http_referer", "https://ref.example/"),
            ("$http_user_agent", "curl/8"),
            ("$request_id", "4f1c-x"),
            ("$otel_trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("$otel_span_id", "53995c3f42cd8ad8"),
            ("$otel_parent_id", "00f067aa0ba902b7"),
            ("$otel_parent_sampled", "1"),
            ("$host", "app.example.com"),
            ("$http_host", "App.Example.com:8080"),
            ("$http_x_request_id", "abc-123"),
            ("$duration_ms", "1.500"),
            ("$upstream_ms", "1.250"),
            ("$pool", "api"),
            ("$server_name", "*.shop.example"),
            ("$scheme", "https"),
            ("$https", "on"),
            ("$ssl_protocol", "TLSv1.2"),
            ("$ssl_cipher", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
            ("$ssl_session_reused", "r"),
            ("$ssl_alpn_protocol", "http/1.1"),
            ("$ssl_curve", "X25519"),
            // Empty, not a dash: nginx's value without them.
            ("$ssl_early_data", ""),
            ("$http2", ""),
            ("$http3", ""),
            ("$ssl_server_name", "shop.example"),
            ("$ssl_preread_alpn_protocols", "h2,http/1.1"),
            ("$ssl_client_verify", "SUCCESS"),
            (
                "$ssl_client_fingerprint",
                "7037807198c22a7d2b0807371d763779a84fdfcf",
            ),
            // Escaped as every value in a line is (nginx's escape=default).
            ("$ssl_client_s_dn", "CN=alice,O=Example\\x5C, Inc."),
            ("$ssl_client_i_dn", "CN=Example CA"),
            ("$ssl_client_serial", "0BAD"),
            ("$ssl_client_v_start", "Nov  5 01:46:40 1994 GMT"),
            ("$ssl_client_v_end", "Nov 16 09:49:37 1994 GMT"),
            ("$ssl_client_v_remain", "10"),
            (
                "$ssl_client_escaped_cert",
                "-----BEGIN%20CERTIFICATE-----%0AAQID%0A-----END%20CERTIFICATE-----%0A",
            ),
        ];
        for (template, written) in cases {
            assert_eq!(line(template, &record()), written, "{template}");
        }
        // Behind a balancer the client's port is not known; the
        // connection's other end is the balancer.
        let behind = Record {
            peer: Some(([10, 0, 0, 9], 40_001).into()),
            ..record()
        };
        let both = "$remote_addr:$remote_port $realip_remote_addr:$realip_remote_port";
        assert_eq!(line(both, &behind), "192.0.2.10:- 10.0.0.9:40001");
        // Every variable is in the list above, under one of its names.
        for (name, var) in variables::VARIABLES {
            assert!(
                cases
                    .iter()
                    .any(|(t, _)| variables::lookup(&t[1..]) == Ok(Named::Var(*var))),
                "${name} is not tested"
            );
        }
    }

    #[test]
    fn content_type_and_content_length_are_the_request_s_fields_as_nginx_names_them() {
        let template = Template::parse("$content_type|$Content_Length|$http_content_type").unwrap();
        assert_eq!(
            &*template.fields,
            [Box::from("content_type"), Box::from("content_length")]
        );
        let mut headers = Headers::new();
        headers.push("Content-Type", "text/plain");
        headers.push("Content-Length", "5");
        let record = Record {
            fields: Some(RequestFields::take(&template.fields, &headers)),
            ..record()
        };
        assert_eq!(line(&template.source, &record), "text/plain|5|text/plain");
    }

    #[test]
    fn upstream_cookie_is_the_value_a_backend_s_set_cookie_gives_the_name() {
        let mut fields = Headers::new();
        fields.push("Set-Cookie", " sid = a b ; Path=/");
        fields.push("set-cookie", "sid=second");
        fields.push("Set-Cookie", "lang");
        fields.push("X-Sid", "sid=not-a-cookie");
        fields.push("Set-Cookie", "empty=; Max-Age=0");
        let r = Record {
            upstream_fields: Some(fields),
            ..record()
        };
        // The first that names it, in any case; its value trimmed.
        let template = "$upstream_cookie_SID|$upstream_cookie_lang|$upstream_cookie_empty|\
                        $upstream_cookie_path";
        assert_eq!(line(template, &r), "a b|-||-");
        assert_eq!(line("$upstream_cookie_sid", &bare_record()), "-");
        assert!(Template::parse("$upstream_cookie_sid")
            .unwrap()
            .names_upstream_fields());
        assert!(!Template::parse("$cookie_sid")
            .unwrap()
            .names_upstream_fields());
        assert!(error("$upstream_cookie_").contains("needs a cookie name"));
    }

    #[test]
    fn response_fields_of_one_name_are_joined_as_nginx_joins_them() {
        let mut upstream = Headers::new();
        upstream.push("Vary", "Accept");
        upstream.push("Server", "app/1");
        upstream.push("vary", "Cookie");
        let r = Record {
            response_head: Some(
                b"HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\nX-A: 1\r\nvary: Origin\r\n\r\n"
                    .to_vec(),
            ),
            upstream_fields: Some(upstream),
            ..record()
        };
        assert_eq!(
            line("$sent_http_vary|$sent_http_x_a|$sent_http_x_none", &r),
            "Accept-Encoding, Origin|1|-"
        );
        assert_eq!(
            line(
                "$upstream_http_vary|$upstream_http_server|$upstream_http_x_none",
                &r
            ),
            "Accept, Cookie|app/1|-"
        );
        // With `log_headers` (a main combined line beside a pool's
        // template), the head sent is in the heads the record carries.
        let r = Record {
            response_head: None,
            heads: Some(Box::new(Heads {
                request: Vec::new(),
                response: Heads::fields_of(r.response_head.as_deref().unwrap_or_default()),
            })),
            ..r
        };
        assert_eq!(
            line("$sent_http_vary|$sent_http_x_a", &r),
            "Accept-Encoding, Origin|1"
        );
    }

    #[test]
    fn a_template_tells_what_its_records_must_carry() {
        let source = "$pool $sent_http_x_a $upstream_http_server $request_body";
        let all = Template::parse(source).unwrap();
        assert_eq!(all.source(), source);
        assert!(all.names_pool());
        assert!(all.names_sent_fields());
        assert!(all.names_upstream_fields());
        assert!(all.names_request_body());
        let none = Template::parse("$status $http_x_a $cookie_sid $upstream_addr").unwrap();
        assert!(!none.names_pool());
        assert!(!none.names_sent_fields());
        assert!(!none.names_upstream_fields());
        assert!(!none.names_request_body());
        // `$cookie_<name>` reads the Cookie field, which records then carry.
        assert_eq!(
            &*none
                .request_fields()
                .iter()
                .map(|f| &**f)
                .collect::<Vec<_>>(),
            ["x_a", "cookie"]
        );
    }

    #[test]
    fn gzip_ratio_is_nginx_s_two_decimals_rounded_half_up() {
        for (sizes, ratio) in [
            ((5_120, 1_536), "3.33"),
            // 2.125 and 2.124: the third decimal rounds.
            ((2_125, 1_000), "2.13"),
            ((2_124, 1_000), "2.12"),
            ((1_999, 1_000), "2.00"),
            ((1_000, 1_000), "1.00"),
            // A body too small to gain: the gzip wrapper outweighs it.
            ((10, 30), "0.33"),
            ((u64::MAX, 1), "18446744073709551615.00"),
        ] {
            assert_eq!(gzip_ratio(sizes).as_deref(), Some(ratio), "{sizes:?}");
        }
        assert_eq!(gzip_ratio((0, 0)), None);
    }

    #[test]
    fn what_a_record_lacks_is_a_dash() {
        let template = "$remote_port $remote_user $args $upstream_addr \
                        $upstream_header_time $upstream_connect_time $upstream_response_time \
                        $upstream_queue_time $upstream_status \
                        $upstream_cache_status $http_referer \
                        $http_user_agent $request_id $host $http_x_request_id $upstream_ms \
                        $pool $ssl_protocol $ssl_cipher $ssl_client_verify \
                        $ssl_client_fingerprint $ssl_client_s_dn $ssl_client_i_dn \
                        $ssl_client_serial $ssl_client_escaped_cert $ssl_server_name \
                        $upstream_bytes_received $upstream_response_length $gzip_ratio \
                        $upstream_bytes_sent $proxy_protocol_addr $proxy_protocol_port \
                        $proxy_protocol_server_addr $proxy_protocol_server_port $tcpinfo_rtt";
        assert_eq!(
            line(template, &bare_record()),
            "- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -"
        );
        // A hit, answered whole.
        assert_eq!(line("[$request_completion]", &bare_record()), "[OK]");
        assert_eq!(line("[$pipe] $connection_time", &bare_record()), "[.] -");
        // Over TLS without a certificate shown.
        let r = Record {
            client_certificate: None,
            ..record()
        };
        assert_eq!(
            line("$ssl_client_verify $ssl_client_fingerprint", &r),
            "NONE -"
        );
        // nginx's `$https` is empty, not a dash, over plain HTTP.
        assert_eq!(line("[$https] $scheme", &bare_record()), "[] http");
        // Named by the template, but not sent.
        assert_eq!(line("$http_x_absent", &record()), "-");
        // An empty query is a query, empty (as nginx).
        let r = Record {
            request_line: "GET /a? HTTP/1.1".into(),
            ..record()
        };
        assert_eq!(line("[$args] $uri", &r), "[] /a");
        // `$is_args` is empty, not a dash, as nginx writes it: without a
        // query, and with an empty one.
        assert_eq!(line("[$is_args]", &r), "[]");
        assert_eq!(line("[$is_args]", &bare_record()), "[]");
    }

    #[test]
    fn uri_and_args_are_what_a_rewrite_made_and_the_request_the_client_s() {
        let template = "$uri|$args|$request_uri|$request";
        let r = Record {
            made_target: Some("/search?q=shoes&page=2".into()),
            request_line: "GET http://shop.example/find/shoes?page=2 HTTP/1.1".into(),
            ..record()
        };
        assert_eq!(
            line(template, &r),
            "/search|q=shoes&page=2|/find/shoes?page=2|\
             GET http://shop.example/find/shoes?page=2 HTTP/1.1"
        );
        // A rule that made a query for a client that sent none.
        let r = Record {
            made_target: Some("/search?q=shoes".into()),
            request_line: "GET /find/shoes HTTP/1.1".into(),
            ..record()
        };
        assert_eq!(line("$uri$is_args$args", &r), "/search?q=shoes");
        // A rule that dropped the query: none, though the client sent one.
        let r = Record {
            made_target: Some("/a\"b".into()),
            ..record()
        };
        assert_eq!(line("$uri|$args", &r), "/a\\x22b|-");
        assert_eq!(line("[$is_args]", &r), "[]");
    }

    #[test]
    fn a_template_can_write_the_combined_line() {
        let combined = "$remote_addr - $remote_user [$time_local] \"$request\" $status \
                        $body_bytes_sent \"$http_referer\" \"$http_user_agent\" \
                        upstream=$upstream_addr cache=$upstream_cache_status \
                        duration_ms=$duration_ms upstream_ms=$upstream_ms";
        // A user named or not, one that would break the line, an empty one.
        let hostile = Record {
            remote_user: Some("a b\"c\\d\r\n".into()),
            ..record()
        };
        let empty = Record {
            remote_user: Some(String::new()),
            ..record()
        };
        for r in [record(), bare_record(), hostile, empty] {
            let r = Record {
                request_id: None,
                trace: None,
                ..r
            };
            assert_eq!(line(combined, &r), r.format());
            // With pools defined, the line's `pool=` is `$pool`.
            let r = Record {
                show_pool: true,
                ..r
            };
            assert_eq!(line(&format!("{combined} pool=$pool"), &r), r.format());
        }
    }

    #[test]
    fn text_is_copied_and_braces_end_a_name() {
        let r = record();
        assert_eq!(line("[$status]", &r), "[200]");
        assert_eq!(line("${status}ok", &r), "200ok");
        assert_eq!(line("$status$body_bytes_sent", &r), "200512");
        assert_eq!(line("$status.$status-$status/", &r), "200.200-200/");
        assert_eq!(line("cost: $$$status, $$", &r), "cost: $200, $");
        assert_eq!(line("${http_x_request_id}s", &r), "abc-123s");
        assert_eq!(line("\t$status\t", &r), "\t200\t");
        assert_eq!(line("é $status ü", &r), "é 200 ü");
        // Names are not case-sensitive, as nginx's.
        assert_eq!(line("$STATUS $Http_X_Request_ID", &r), "200 abc-123");
    }

    #[test]
    fn malformed_templates_are_refused_with_where_and_why() {
        assert_eq!(
            error("$remote_addr $stauts"),
            "unknown variable `$stauts` (did you mean `$status`?)"
        );
        // Letters after a name are part of it.
        assert_eq!(
            error("$statusok"),
            "unknown variable `$statusok` (did you mean `$status`?)"
        );
        assert_eq!(
            error("$htpp_x_request_id"),
            "unknown variable `$htpp_x_request_id` (did you mean `$http_x_request_id`?)"
        );
        assert_eq!(error("$foo"), "unknown variable `$foo`");
        assert!(error(&format!("${}", "x".repeat(100_000))).starts_with("unknown variable"));
        assert_eq!(error("a ${status"), "the `${` at character 3 has no `}`");
        assert!(error("é $ x").starts_with("the `$` at character 3 starts no variable name"));
        assert!(
            error("$status $").contains("`$$` writes a dollar sign"),
            "the end"
        );
        assert!(error("${}").contains("starts no variable name"));
        assert_eq!(
            error("${sta tus}"),
            "`${sta tus}`: a variable name has only letters, digits and `_`"
        );
        assert!(error("$http_").contains("needs a field name"));
        assert!(error("plain text $$").contains("names no variable"));
        assert!(error("$sent_http_").contains("needs a field name"));
        assert!(error("$bytes_snet").contains("did you mean `$bytes_sent`"));
    }

    #[test]
    fn client_values_are_escaped_and_cannot_forge_a_line() {
        let mut headers = Headers::new();
        headers.push("X-Evil", "a\"b\\c\r\n1.2.3.4 - - [forged] \x01\x7f");
        headers.push("X-Utf8", "café");
        headers.push("X-Bytes", b"\xff\xfe".as_slice());
        let names: Arc<[Box<str>]> = ["x_evil", "x_utf8", "x_bytes"].map(Box::from).into();
        let r = Record {
            request_line: "GET /\"x\"\n HTTP/1.1".into(),
            user_agent: Some("\"} injected".into()),
            fields: Some(RequestFields::take(&names, &headers)),
            ..record()
        };
        let written = line(
            "\"$http_x_evil\" \"$http_x_utf8\" \"$http_x_bytes\" \"$request\" \
             \"$http_user_agent\"",
            &r,
        );
        assert_eq!(
            written,
            "\"a\\x22b\\x5Cc\\x0D\\x0A1.2.3.4 - - [forged] \\x01\\x7F\" \"caf\\xC3\\xA9\" \
             \"\\xEF\\xBF\\xBD\\xEF\\xBF\\xBD\" \"GET /\\x22x\\x22\\x0A HTTP/1.1\" \
             \"\\x22} injected\""
        );
        assert!(!written.contains('\n') && !written.contains('\r'));
    }

    #[test]
    fn escape_json_writes_values_as_json_strings_hold_them() {
        let mut headers = Headers::new();
        headers.push("X-Evil", "a\"b\\c\r\n\", \"forged\": \"1\x01");
        headers.push("X-Utf8", "café");
        let names: Arc<[Box<str>]> = ["x_evil", "x_utf8"].map(Box::from).into();
        let r = Record {
            request_line: "GET /\"x\" HTTP/1.1".into(),
            remote_user: Some("a b".into()),
            fields: Some(RequestFields::take(&names, &headers)),
            ..record()
        };
        let template = "escape=json {\"evil\":\"$http_x_evil\",\"utf8\":\"$http_x_utf8\",\
                        \"request\":\"$request\",\"user\":\"$remote_user\",\"status\":$status,\
                        \"rt\":$request_time,\"dn\":\"$ssl_client_s_dn\"}";
        assert_eq!(
            line(template, &r),
            r#"{"evil":"a\"b\\c\r\n\", \"forged\": \"1\u0001","utf8":"café","request":"GET /\"x\" HTTP/1.1","user":"a b","status":200,"rt":0.002,"dn":"CN=alice,O=Example\\, Inc."}"#
        );
        // What a record lacks is nothing, not a dash, as nginx's.
        let lacking = "escape=json $remote_port|$remote_user|$args|$upstream_addr|\
                       $upstream_header_time|$upstream_cache_status|$http_referer|$host|\
                       $upstream_ms|$pool|$ssl_protocol|$ssl_client_verify|\
                       $ssl_client_escaped_cert|$http_x_absent";
        assert_eq!(line(lacking, &bare_record()), "|||||||||||||");
        // escape=default is the default, written or not.
        assert_eq!(
            line("escape=default \"$request\" $remote_user", &r),
            line("\"$request\" $remote_user", &r)
        );
        assert_eq!(line("escape=default $remote_user", &r), "a\\x20b");
        assert!(error("escape=none $request").contains("escape=none is not offered"));
        assert!(error("escape=xml $request").contains("expected escape=default or escape=json"));
        assert!(error("escape=json nothing").contains("names no variable"));
        // Not a word: the template's own text, as before `escape=` was read.
        assert_eq!(line("escape=$status", &r), "escape=200");
        assert_eq!(line("escape= $status", &r), "escape= 200");
    }

    #[test]
    fn credentials_are_written_by_their_scheme_alone() {
        let mut headers = Headers::new();
        headers.push("Authorization", "Basic YW5uOnNlY3JldA==");
        headers.push("Proxy-Authorization", "token-without-scheme");
        let names: Arc<[Box<str>]> = ["authorization", "proxy_authorization"]
            .map(Box::from)
            .into();
        let r = Record {
            fields: Some(RequestFields::take(&names, &headers)),
            ..record()
        };
        let written = line("$http_authorization|$http_proxy_authorization", &r);
        assert_eq!(written, "Basic [redacted]|[redacted]");
    }

    #[test]
    fn request_fields_are_found_as_nginx_finds_them() {
        let r = record();
        // Several fields of a name joined; Cookie with `; `.
        assert_eq!(line("$http_accept", &r), "text/html, */*");
        assert_eq!(line("$http_cookie", &r), "a=1; b=2");
        // `_` in the name stands for `-` and `_` alike.
        assert_eq!(line("$http_x_forwarded_host", &r), "under.example");
        // A record made while another template was in force (a reload in
        // between) has its fields by name: those it lacks are `-`.
        assert_eq!(line("$http_x_request_id $http_x_other", &r), "abc-123 -");
        let t = Template::parse("$host $http_host ${http_x_a}$http_X_A $status").unwrap();
        assert_eq!(
            &*t.request_fields().iter().map(|f| &**f).collect::<Vec<_>>(),
            ["host", "x_a"],
            "each field once"
        );
        assert!(Template::parse("$status")
            .unwrap()
            .request_fields()
            .is_empty());
    }

    #[test]
    fn host_is_nginx_s() {
        let with = |request_line: &str, host: Option<&str>| {
            let mut headers = Headers::new();
            if let Some(host) = host {
                headers.push("Host", host);
            }
            let names: Arc<[Box<str>]> = ["host"].map(Box::from).into();
            let r = Record {
                request_line: request_line.into(),
                fields: Some(RequestFields::take(&names, &headers)),
                ..record()
            };
            line("$host", &r)
        };
        assert_eq!(with("GET / HTTP/1.1", Some("Example.COM")), "example.com");
        assert_eq!(
            with("GET / HTTP/1.1", Some("example.com.:80")),
            "example.com"
        );
        assert_eq!(with("GET / HTTP/1.1", Some("[::1]:8080")), "[::1]");
        assert_eq!(with("GET / HTTP/1.1", Some("")), "-");
        assert_eq!(with("GET / HTTP/1.0", None), "-");
        // The request line's host comes first.
        let absolute = "GET http://user@Abs.example:81/p?q=1 HTTP/1.1";
        assert_eq!(with(absolute, Some("other.example")), "abs.example");
        let r = Record {
            request_line: absolute.into(),
            ..record()
        };
        assert_eq!(line("$request_uri $uri $args", &r), "/p?q=1 /p q=1");
        let r = Record {
            request_line: "GET http://abs.example HTTP/1.1".into(),
            ..record()
        };
        assert_eq!(line("$request_uri $uri $args", &r), "/ / -");
        let r = Record {
            request_line: "GET http://abs.example?q=1 HTTP/1.1".into(),
            ..record()
        };
        assert_eq!(line("$request_uri $uri $args", &r), "/?q=1 / q=1");
    }

    #[test]
    fn a_malformed_request_line_has_no_parts() {
        for request_line in [
            "",
            "GARBAGE",
            "GET /a",
            "GET  /a HTTP/1.1",
            "GET /a HTTP/1.1 x",
        ] {
            let r = Record {
                request_line: request_line.into(),
                ..record()
            };
            assert_eq!(
                line(
                    "$request_method $request_uri $uri $args $server_protocol",
                    &r
                ),
                "- - - - -",
                "{request_line:?}"
            );
            assert_eq!(line("\"$request\"", &r), format!("\"{request_line}\""));
        }
    }

    #[test]
    fn the_example_line_is_written_by_the_template() {
        let t = Template::parse("$remote_addr \"$request\" $host $http_x_absent $status $msec")
            .unwrap();
        assert_eq!(
            t.example_line(),
            "203.0.113.7 \"GET /search?q=caf%C3%A9 HTTP/1.1\" www.example.com - 200 \
             1764444352.412"
        );
    }
}
