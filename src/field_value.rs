//! The value of a `request_header.<Name>` or `response_header.<Name>`
//! key: fixed text, or text with nginx's `$variables`
//! (`request_header.X-Client-DN = $ssl_client_s_dn`, as nginx's
//! `proxy_set_header` and HAProxy's `set-header ... %[...]`), rendered
//! once per request from what is known of it before it is sent; a
//! response's field may also name what is known once the response has
//! come (`$status`, `$upstream_addr`), filled in as each head is written.

use crate::auth::jwt;
use crate::config::FieldFamily;
use crate::digits::{hex_pair, is_unreserved, Decimal, Thousandths};
use crate::http::date::{format_certificate_date, Clf, Iso8601};
use crate::http::proxy_tlv;
use crate::http::RequestHead;
use crate::tls::client_cert::ClientCertificate;
use crate::upstream_tries::{push_earlier, TryValue, UpstreamTry};
use crate::variables::{self, host_of, Named, Piece, RequestLine, Var};
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A value as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldValue {
    /// As written (`$$` still two dollars), for `check` and the messages.
    source: Box<str>,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// Sent as it is.
    Text(Box<str>),
    Variables {
        pieces: Box<[Piece]>,
        /// Some piece is known only once the response has come.
        of_response: bool,
    },
}

/// What is known of a request before it is sent: what variables stand
/// for.
pub struct Facts<'a> {
    /// The request as the client sent it, less what the proxy took out
    /// of it before anything else read it (see `$http_<name>`).
    pub head: &'a RequestHead,
    /// The request-target as the client sent it, when a `rewrite.<name>`
    /// rule put another in `head`: `$request` and `$request_uri` are the
    /// client's, as nginx's stay after its `rewrite`; `$uri` and `$args`
    /// are the rewritten ones.
    pub sent_target: Option<&'a str>,
    /// The client, behind `real_ip_from` or a PROXY header the one they
    /// name.
    pub client: IpAddr,
    /// The connection's other end (or the client its PROXY header
    /// names), before `real_ip_from`: `$realip_remote_addr`.
    pub peer: SocketAddr,
    /// The address a PROXY header said the client connected to: with
    /// one, `peer` is the client it named (`$proxy_protocol_addr`).
    pub proxied_to: Option<SocketAddr>,
    /// The TLVs of the connection's version 2 PROXY header, when it had
    /// any (`$proxy_protocol_tlv_<name>`).
    pub proxy_tlvs: Option<&'a [u8]>,
    /// The address and port it connected to.
    pub server: SocketAddr,
    /// The user `auth_basic` accepted for this request, or the subject
    /// of its token (`auth_jwt`).
    pub user: Option<&'a str>,
    /// The claims of the token `auth_jwt` verified (`$jwt_claim_<name>`).
    pub jwt_claims: Option<&'a crate::json_value::Value>,
    pub scheme: &'a str,
    /// The TLS version and cipher suite of a connection to `tls_port`.
    pub tls: Option<crate::http::tls::Agreed>,
    /// The host name its hello asked for (SNI).
    pub server_name: Option<&'a str>,
    pub certificate: Option<&'a ClientCertificate>,
    pub request_id: Option<&'a str>,
    /// The request's place in a trace, with `trace_context`.
    pub trace: Option<crate::trace_context::TraceContext>,
    pub pool: Option<&'a str>,
    /// The client connection's serial number and the requests it has
    /// carried, this one included (`$connection`, `$connection_requests`).
    pub connection: Option<(u64, u64)>,
    /// The host of the route the request took, as written
    /// (`$server_name`).
    pub route_host: Option<&'a str>,
    /// `geoip_database`, for `$geoip_country_code`: looked up only by a
    /// value that names it.
    pub geoip: crate::geoip::Geo<'a>,
    pub now: SystemTime,
}

impl<'a> Facts<'a> {
    /// The client's port, when it is the connection's other end (not a
    /// client a proxy in front named).
    pub fn client_port(&self) -> Option<u16> {
        (self.peer.ip() == self.client).then_some(self.peer.port())
    }

    /// A plain HTTP request from 192.0.2.10:51000, and nothing else
    /// known of it, now: for tests and fuzzing, which have no client.
    pub fn plain(head: &'a RequestHead) -> Facts<'a> {
        Facts {
            head,
            sent_target: None,
            client: [192, 0, 2, 10].into(),
            peer: ([192, 0, 2, 10], 51_000).into(),
            proxied_to: None,
            proxy_tlvs: None,
            server: ([192, 0, 2, 1], 8080).into(),
            user: None,
            jwt_claims: None,
            scheme: "http",
            tls: None,
            server_name: None,
            certificate: None,
            request_id: None,
            trace: None,
            pool: None,
            connection: None,
            route_host: None,
            geoip: crate::geoip::Geo::default(),
            now: SystemTime::now(),
        }
    }
}

/// What is known of a response as its head is written: what the
/// variables a response's field may name besides the request's stand
/// for.
pub struct Answer<'a> {
    pub status: u16,
    /// What the cache did (the `X-Cache` value), when it is on.
    pub cache: Option<&'a str>,
    /// The backend that sent it, or was last tried for it: its address,
    /// its answer's status (or the one the proxy gave for its failure),
    /// how long it took to send its head, how long its connection took to
    /// open; what comes after the head is not known yet.
    pub last: UpstreamTry,
    /// The backends tried before it, in order.
    pub earlier: &'a [UpstreamTry],
    /// How long the request waited for a slot at a target (`max_conns`)
    /// before its exchanges, all told (zero when it did not).
    pub upstream_queue: Option<Duration>,
    /// Since the request's head came.
    pub elapsed: Duration,
}

/// A response field whose value names variables of the response,
/// rendered as far as the request goes when it is routed: what each
/// response head to the request then finishes ([`Pending::finish`]).
#[derive(Clone, Debug, Default)]
pub struct Pending {
    /// `Name: ` and the value so far.
    text: Vec<u8>,
    value_at: usize,
    /// Where each variable of the response goes in `text`, in order.
    holes: Vec<(usize, Var)>,
}

impl Pending {
    /// Appends the field's line for `answer` (CRLF-ended): nothing when
    /// its value renders empty.
    pub fn finish(&self, answer: &Answer<'_>, out: &mut Vec<u8>) {
        let line = out.len();
        out.extend_from_slice(&self.text[..self.value_at]);
        let value = out.len();
        let mut from = self.value_at;
        for &(at, var) in &self.holes {
            out.extend_from_slice(&self.text[from..at]);
            write_answer_var(var, answer, out);
            from = at;
        }
        out.extend_from_slice(&self.text[from..]);
        tidy(out, value);
        match out.len() == value {
            true => out.truncate(line),
            false => out.extend_from_slice(b"\r\n"),
        }
    }
}

impl FieldValue {
    /// Text sent as it is, `$` and all (`response_header.*`'s values).
    pub fn fixed(text: &str) -> FieldValue {
        FieldValue {
            source: text.into(),
            kind: Kind::Text(text.into()),
        }
    }

    /// `text` with its variables; refused for an unknown one, or one not
    /// known yet as a message of the `family` is sent.
    pub fn parse(text: &str, family: FieldFamily) -> Result<FieldValue, String> {
        if !text.contains('$') {
            return Ok(FieldValue::fixed(text));
        }
        // A value written before variables may hold a `$` of its own.
        let pieces = variables::pieces(text).map_err(|e| match e.contains("$$") {
            true => e,
            false => format!("{e}; `$$` writes a dollar sign"),
        })?;
        let mut of_response = false;
        for piece in &pieces {
            let log_only = match piece {
                Piece::Named(Named::SentField(name)) => Some(format!("sent_http_{name}")),
                Piece::Named(Named::UpstreamField(name)) => Some(format!("upstream_http_{name}")),
                Piece::Named(Named::UpstreamCookie(name)) => {
                    Some(format!("upstream_cookie_{name}"))
                }
                _ => None,
            };
            if let Some(variable) = log_only {
                return Err(format!(
                    "`${variable}` is the access log's alone (log_format)"
                ));
            }
            let Piece::Named(Named::Var(var)) = piece else {
                continue;
            };
            let name = || {
                (variables::VARIABLES.iter())
                    .find(|(_, v)| v == var)
                    .map_or("", |(name, _)| name)
            };
            match (family, var) {
                (_, var) if var.log_only() => {
                    return Err(format!(
                        "`${}` is the access log's alone (log_format)",
                        name()
                    ))
                }
                (_, var) if var.after_the_body() => {
                    return Err(format!(
                        "`${}` is known only once the body has been sent, after the head of the response",
                        name()
                    ))
                }
                (FieldFamily::Request, var) if var.after_response() => {
                    return Err(format!(
                        "`${}` is known only once the response has come: a request's values \
                         are made as it is sent (`response_header.*` may name it)",
                        name()
                    ))
                }
                (_, var) => of_response |= var.after_response(),
            }
        }
        let kind = match &pieces[..] {
            // Dollar signs alone (`5$$`): text after all.
            [Piece::Text(text)] => Kind::Text(text.as_str().into()),
            _ => Kind::Variables {
                pieces: pieces.into(),
                of_response,
            },
        };
        Ok(FieldValue {
            source: text.into(),
            kind,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The text sent when it holds no variable (`$$` made one dollar).
    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Text(text) => Some(text),
            Kind::Variables { .. } => None,
        }
    }

    /// Whether it names a variable known only once the response has come
    /// (then it is rendered with [`FieldValue::pending`]).
    pub fn of_response(&self) -> bool {
        matches!(self.kind, Kind::Variables { of_response, .. } if of_response)
    }

    /// Appends the value for the request `facts` tells of, trimmed, with
    /// every byte a field value cannot hold written `\xNN`. The
    /// response's variables are nothing here.
    pub fn render(&self, facts: &Facts<'_>, out: &mut Vec<u8>) {
        let start = out.len();
        self.write_pieces(facts, out, |_, _| {});
        tidy(out, start);
    }

    /// Appends the value for the request `facts` tells of as its
    /// variables are, byte for byte, neither trimmed nor escaped: what
    /// an application hashes (`secure_link_md5`), not a field to send.
    pub fn render_raw(&self, facts: &Facts<'_>, out: &mut Vec<u8>) {
        self.write_pieces(facts, out, |_, _| {});
    }

    /// Appends the value as a URL to send a client to
    /// (`auth_request_redirect`): the text as written, each variable's
    /// value percent-encoded so that it stays the part of the URL it is
    /// written in. After the first `?` written, a value is one query
    /// value, all but letters, digits and `-._~` encoded
    /// (`rd=$scheme://$host$request_uri` carries the whole URL, its own
    /// `?` and `&` included); before, only what a URL cannot hold is
    /// (`\` among them, which browsers read as `/`, and a `%` that starts
    /// no escape).
    pub fn render_url(&self, facts: &Facts<'_>, out: &mut Vec<u8>) {
        let pieces = match &self.kind {
            Kind::Text(text) => return out.extend_from_slice(text.as_bytes()),
            Kind::Variables { pieces, .. } => pieces,
        };
        let mut in_query = false;
        let mut value = Vec::new();
        for piece in pieces.iter() {
            value.clear();
            match piece {
                Piece::Text(text) => {
                    in_query |= text.contains('?');
                    out.extend_from_slice(text.as_bytes());
                    continue;
                }
                Piece::Named(named) => push_request_named(facts, named, &mut value),
            }
            for (i, &b) in value.iter().enumerate() {
                let escape = || {
                    (value.get(i + 1..i + 3)).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                };
                let kept = is_unreserved(b)
                    || (!in_query && b"!$&'()*+,;=:@/?".contains(&b))
                    || (!in_query && b == b'%' && escape());
                match kept {
                    true => out.push(b),
                    false => {
                        out.push(b'%');
                        out.extend_from_slice(&hex_pair(b, true));
                    }
                }
            }
        }
    }

    /// The field `name` with this value rendered for the request `facts`
    /// tells of, the places of the response's variables kept.
    pub fn pending(&self, name: &str, facts: &Facts<'_>) -> Pending {
        let mut text = Vec::with_capacity(64);
        for part in [name.as_bytes(), b": "] {
            text.extend_from_slice(part);
        }
        let value_at = text.len();
        let mut holes = Vec::new();
        self.write_pieces(facts, &mut text, |var, at| holes.push((at, var)));
        Pending {
            text,
            value_at,
            holes,
        }
    }

    /// Appends the pieces: text as it is, the request's variables for
    /// `facts`; for each of the response's, `hole` is told where it goes.
    fn write_pieces(&self, facts: &Facts<'_>, out: &mut Vec<u8>, mut hole: impl FnMut(Var, usize)) {
        let pieces = match &self.kind {
            Kind::Text(text) => return out.extend_from_slice(text.as_bytes()),
            Kind::Variables { pieces, .. } => pieces,
        };
        for piece in pieces.iter() {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Named(Named::Var(var)) if var.after_response() => hole(*var, out.len()),
                Piece::Named(named) => push_request_named(facts, named, out),
            }
        }
    }

    /// Appends the value for the request `facts` tells of as a body's
    /// text (a `return` route's): the text as written, each variable's
    /// value passed through `write`, which escapes it for the body's
    /// type. The response's variables are nothing here.
    pub fn render_each(
        &self,
        facts: &Facts<'_>,
        out: &mut Vec<u8>,
        mut write: impl FnMut(&[u8], &mut Vec<u8>),
    ) {
        let pieces = match &self.kind {
            Kind::Text(text) => return out.extend_from_slice(text.as_bytes()),
            Kind::Variables { pieces, .. } => pieces,
        };
        let mut value = Vec::new();
        for piece in pieces.iter() {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Named(Named::Var(var)) if var.after_response() => {}
                Piece::Named(named) => {
                    value.clear();
                    push_request_named(facts, named, &mut value);
                    write(&value, out);
                }
            }
        }
    }
}

/// Appends what `named`, known of the request, stands for.
fn push_request_named(facts: &Facts<'_>, named: &Named, out: &mut Vec<u8>) {
    match named {
        Named::Var(var) => write_var(*var, facts, out),
        Named::Field(name) => push_field(facts, name, out),
        named => push_named(facts, named, out),
    }
}

/// Trims what was rendered from `start` on, and writes every byte a field
/// value cannot hold `\xNN`.
fn tidy(out: &mut Vec<u8>, start: usize) {
    let rendered = &out[start..];
    let leading = rendered.len() - rendered.trim_ascii_start().len();
    let kept = rendered.trim_ascii_end().len();
    // All blank: `kept` is 0, and so is what is left to drain.
    out.truncate(start + kept);
    out.drain(start..start + leading.min(kept));
    // Only a certificate's name or a client's field may bring one.
    let fits = |b: &u8| matches!(b, b'\t' | b' '..=0x7e | 0x80..);
    if !out[start..].iter().all(fits) {
        for b in out.split_off(start) {
            if fits(&b) {
                out.push(b);
            } else {
                out.extend_from_slice(b"\\x");
                out.extend_from_slice(&hex_pair(b, true));
            }
        }
    }
}

/// Appends what the response's `var` stands for; nothing for what it
/// lacks.
fn write_answer_var(var: Var, answer: &Answer<'_>, out: &mut Vec<u8>) {
    let time = |out: &mut Vec<u8>, d: Option<Duration>, unit: fn(Duration) -> Thousandths| {
        if let Some(d) = d {
            out.extend_from_slice(unit(d).as_bytes());
        }
    };
    match var {
        Var::Status => out.extend_from_slice(Decimal::new(answer.status.into()).as_bytes()),
        // Of each backend tried, as nginx lists them (those a head can
        // tell): a `-` for the last only when others come before it.
        Var::UpstreamAddr
        | Var::UpstreamStatus
        | Var::UpstreamConnectTime
        | Var::UpstreamHeaderTime
        | Var::UpstreamMs => {
            let last = answer.last.value(var);
            if last.is_some() || !answer.earlier.is_empty() {
                push_earlier(var, answer.earlier, out);
                out.extend_from_slice(last.as_ref().map_or("-", TryValue::as_str).as_bytes());
            }
        }
        Var::UpstreamCacheStatus => {
            out.extend_from_slice(answer.cache.unwrap_or_default().as_bytes())
        }
        Var::RequestTime => time(out, Some(answer.elapsed), Thousandths::seconds),
        Var::DurationMs => time(out, Some(answer.elapsed), Thousandths::millis),
        Var::UpstreamQueueTime => time(out, answer.upstream_queue, Thousandths::seconds),
        // The request's are rendered before, and the body's size refused.
        _ => {}
    }
}

/// Appends what `var` stands for; nothing for what the request lacks.
fn write_var(var: Var, facts: &Facts<'_>, out: &mut Vec<u8>) {
    let head = facts.head;
    let line = RequestLine {
        method: &head.method,
        target: &head.target,
        protocol: head.version.as_str(),
    };
    // The client's own, for what names its request as it came.
    let sent = RequestLine {
        target: facts.sent_target.unwrap_or(line.target),
        ..line
    };
    let certificate = facts.certificate;
    let text: &str = match var {
        Var::RemoteAddr => return drop(write!(out, "{}", facts.client)),
        Var::RemotePort => {
            if let Some(port) = facts.client_port() {
                out.extend_from_slice(Decimal::new(u64::from(port)).as_bytes());
            }
            return;
        }
        Var::ServerAddr => return drop(write!(out, "{}", facts.server.ip())),
        Var::RealipRemoteAddr => return drop(write!(out, "{}", facts.peer.ip())),
        Var::RealipRemotePort => {
            out.extend_from_slice(Decimal::new(u64::from(facts.peer.port())).as_bytes());
            return;
        }
        // Empty without a PROXY header, as nginx's.
        Var::ProxyProtocolAddr => match facts.proxied_to {
            Some(_) => return drop(write!(out, "{}", facts.peer.ip())),
            None => "",
        },
        Var::ProxyProtocolPort => match facts.proxied_to {
            Some(_) => return drop(write!(out, "{}", facts.peer.port())),
            None => "",
        },
        Var::ProxyProtocolServerAddr => match facts.proxied_to {
            Some(to) => return drop(write!(out, "{}", to.ip())),
            None => "",
        },
        Var::ProxyProtocolServerPort => match facts.proxied_to {
            Some(to) => return drop(write!(out, "{}", to.port())),
            None => "",
        },
        Var::Hostname => variables::hostname(),
        Var::GeoipCountryCode => {
            if let Some(country) = facts.geoip.country(facts.client) {
                out.extend_from_slice(country.as_str().as_bytes());
            }
            return;
        }
        Var::Pid => {
            out.extend_from_slice(Decimal::new(u64::from(std::process::id())).as_bytes());
            return;
        }
        Var::ServerPort => {
            out.extend_from_slice(Decimal::new(u64::from(facts.server.port())).as_bytes());
            return;
        }
        Var::RemoteUser => facts.user.unwrap_or_default(),
        Var::TimeLocal => return drop(write!(out, "{}", Clf(facts.now))),
        Var::TimeIso8601 => return drop(write!(out, "{}", Iso8601(facts.now))),
        Var::Msec => {
            let since = facts.now.duration_since(UNIX_EPOCH).unwrap_or_default();
            let millis = since.subsec_millis();
            return drop(write!(out, "{}.{millis:03}", since.as_secs()));
        }
        Var::Request => {
            return drop(write!(
                out,
                "{} {} {}",
                sent.method, sent.target, sent.protocol
            ))
        }
        Var::RequestMethod => line.method,
        Var::RequestUri => return out.extend_from_slice(sent.uri().as_bytes()),
        Var::Uri => line.path(),
        Var::Args => line.query().unwrap_or_default(),
        Var::IsArgs => line.is_args(),
        Var::ServerProtocol => line.protocol,
        Var::Referer => return push_field(facts, "referer", out),
        Var::UserAgent => return push_field(facts, "user_agent", out),
        Var::RequestId => facts.request_id.unwrap_or_default(),
        Var::OtelTraceId | Var::OtelSpanId | Var::OtelParentId | Var::OtelParentSampled => {
            let value = crate::trace_context::variable(facts.trace.as_ref(), var);
            return out.extend_from_slice(value.unwrap_or_default().as_bytes());
        }
        Var::Host => {
            let field = || {
                head.headers
                    .get("host")
                    .and_then(|v| std::str::from_utf8(v).ok())
            };
            let host = line.authority().or_else(field).map(host_of);
            out.extend(
                host.unwrap_or_default()
                    .bytes()
                    .map(|b| b.to_ascii_lowercase()),
            );
            return;
        }
        Var::Pool => facts.pool.unwrap_or_default(),
        Var::ServerName => facts.route_host.unwrap_or_default(),
        Var::Scheme => facts.scheme,
        Var::Https => match facts.tls {
            Some(_) => "on",
            None => "",
        },
        Var::SslProtocol => facts.tls.map_or("", |tls| tls.protocol),
        Var::SslCipher => facts.tls.map_or("", |tls| tls.cipher),
        Var::SslSessionReused => match facts.tls {
            Some(tls) if tls.resumed => "r",
            Some(_) => ".",
            None => "",
        },
        Var::SslAlpnProtocol => facts.tls.and_then(|tls| tls.alpn).unwrap_or_default(),
        Var::SslCurve => facts.tls.and_then(|tls| tls.group).unwrap_or_default(),
        Var::SslEarlyData | Var::Http2 | Var::Http3 => "",
        Var::SslServerName => facts.server_name.unwrap_or_default(),
        Var::SslClientVerify => match (facts.tls, certificate) {
            (None, _) => "",
            (Some(_), None) => "NONE",
            (Some(_), Some(_)) => "SUCCESS",
        },
        Var::SslClientFingerprint => certificate.map_or("", |c| &c.fingerprint),
        Var::SslClientSDn => certificate
            .and_then(|c| c.subject.as_deref())
            .unwrap_or_default(),
        Var::SslClientIDn => certificate
            .and_then(|c| c.issuer.as_deref())
            .unwrap_or_default(),
        Var::SslClientSerial => certificate
            .and_then(|c| c.serial.as_deref())
            .unwrap_or_default(),
        Var::SslClientVStart | Var::SslClientVEnd => {
            let validity = certificate.and_then(|c| c.validity);
            let date = validity.map(|(start, end)| match var {
                Var::SslClientVStart => start,
                _ => end,
            });
            if let Some(date) = date {
                out.extend_from_slice(format_certificate_date(date).as_bytes());
            }
            return;
        }
        Var::SslClientVRemain => {
            if let Some(days) = certificate.and_then(|c| c.days_left(facts.now)) {
                out.extend_from_slice(Decimal::new(days).as_bytes());
            }
            return;
        }
        Var::SslClientEscapedCert => {
            if let Some(c) = certificate {
                out.extend(c.escaped_pem());
            }
            return;
        }
        Var::Connection | Var::ConnectionRequests => {
            if let Some((serial, requests)) = facts.connection {
                let count = if var == Var::Connection {
                    serial
                } else {
                    requests
                };
                out.extend_from_slice(Decimal::new(count).as_bytes());
            }
            return;
        }
        // The log's alone: refused by `parse`.
        Var::Termination
        | Var::LimitReqStatus
        | Var::RequestBody
        | Var::TcpinfoRtt
        | Var::TcpinfoRttvar
        | Var::TcpinfoSndCwnd
        | Var::TcpinfoRcvSpace
        | Var::ConnectionTime
        | Var::Pipe
        | Var::SslPrereadAlpnProtocols => "",
        // The response's: `write_pieces` leaves their places to `Pending`.
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
        | Var::RequestCompletion
        | Var::GzipRatio => "",
    };
    out.extend_from_slice(text.as_bytes());
}

/// `$http_<name>`: every request field so called, as nginx joins them
/// (`; ` for Cookie, `, ` for the others), each trimmed.
/// `$cookie_<name>` and `$arg_<name>` (nothing when the request has
/// none); a `$sent_http_<name>` is refused by `parse`.
fn push_named(facts: &Facts<'_>, named: &Named, out: &mut Vec<u8>) {
    match named {
        Named::Cookie(name) => {
            let cookies = facts.head.headers.get_all("cookie");
            if let Some(value) = cookies.filter_map(|c| variables::cookie_in(c, name)).next() {
                out.extend_from_slice(value);
            }
        }
        Named::Arg(name) => {
            let query = facts.head.target.split_once('?').map(|(_, query)| query);
            if let Some(value) = query.and_then(|query| variables::arg_in(query, name)) {
                out.extend_from_slice(value.as_bytes());
            }
        }
        Named::ProxyTlv(name) => {
            if let Some(value) = facts
                .proxy_tlvs
                .and_then(|tlvs| proxy_tlv::value(tlvs, *name))
            {
                out.extend_from_slice(&value);
            }
        }
        Named::JwtClaim(name) => {
            if let Some(claim) = facts.jwt_claims.and_then(|claims| jwt::claim(claims, name)) {
                push_claim(claim, out);
            }
        }
        Named::Var(_)
        | Named::Field(_)
        | Named::SentField(_)
        | Named::UpstreamField(_)
        | Named::UpstreamCookie(_) => {}
    }
}

/// A claim as nginx Plus's `$jwt_claim_<name>` writes it: a string as it
/// is, a number or `true`/`false` as JSON writes them, an array's items
/// so written and joined by `,`; nothing for `null` or an object.
pub(crate) fn push_claim(claim: &crate::json_value::Value, out: &mut Vec<u8>) {
    use crate::json_value::Value;
    match claim {
        Value::String(s) => out.extend_from_slice(s.as_bytes()),
        // Integers (times, ids) without a `.0`; others as Rust writes
        // the shortest text that reads back the same.
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
            let _ = write!(out, "{}", *n as i64);
        }
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if !matches!(item, Value::Array(_)) {
                    push_claim(item, out);
                }
            }
        }
        Value::Null | Value::Object(_) => {}
    }
}

fn push_field(facts: &Facts<'_>, name: &str, out: &mut Vec<u8>) {
    let separator: &[u8] = if name == "cookie" { b"; " } else { b", " };
    let mut first = true;
    for (field, value) in facts.head.headers.iter() {
        if variables::names_field(name, field) {
            if !first {
                out.extend_from_slice(separator);
            }
            first = false;
            out.extend_from_slice(value.trim_ascii());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Headers, Version};
    use std::time::Duration;

    fn head(target: &str, fields: &[(&str, &str)]) -> RequestHead {
        let mut headers = Headers::new();
        for (name, value) in fields {
            headers.push(name, value);
        }
        RequestHead {
            method: "GET".into(),
            target: target.into(),
            version: Version::Http11,
            headers,
        }
    }

    fn facts(head: &RequestHead) -> Facts<'_> {
        Facts {
            now: UNIX_EPOCH + Duration::from_millis(784_111_777_042),
            ..Facts::plain(head)
        }
    }

    #[test]
    fn geoip_country_code_is_the_client_s_country_or_nothing() {
        use crate::geoip::writer::{country_record, Writer};
        let mut w = Writer::new(4, 24);
        let at = w.data(&country_record(Some("DE"), None));
        w.insert("192.0.2.0/24", at);
        let db = crate::geoip::GeoIp::parse(w.finish("GeoLite2-Country")).unwrap();
        let head = head("/a", &[]);
        let known = Facts {
            geoip: crate::geoip::Geo::each_time(Some(&db)),
            ..facts(&head)
        };
        assert_eq!(rendered("[$geoip_country_code]", &known), "[DE]");
        let elsewhere = Facts {
            client: [10, 0, 0, 1].into(),
            ..known
        };
        assert_eq!(rendered("[$geoip_country_code]", &elsewhere), "[]");
    }

    fn rendered_url(value: &str, facts: &Facts<'_>) -> String {
        rendered_by(value, |v, out| v.render_url(facts, out))
    }

    /// What `render` appends of `value`, after what was there.
    fn rendered_by(value: &str, render: impl FnOnce(&FieldValue, &mut Vec<u8>)) -> String {
        let mut out = b"before".to_vec();
        render(
            &FieldValue::parse(value, FieldFamily::Request).unwrap(),
            &mut out,
        );
        String::from_utf8(out).unwrap()["before".len()..].to_string()
    }

    #[test]
    fn a_url_s_variables_stay_the_part_they_are_written_in() {
        let head = head(
            "/a b/c?x=1&y=%2F",
            &[("Host", "shop.example"), ("X-Odd", "\\evil.example#é")],
        );
        let facts = facts(&head);
        assert_eq!(
            rendered_url("/start?rd=$scheme://$host$request_uri&k=v", &facts),
            "/start?rd=http://shop.example%2Fa%20b%2Fc%3Fx%3D1%26y%3D%252F&k=v"
        );
        // Before the query only what a URL cannot hold is encoded: the
        // request's own query comes with it.
        assert_eq!(
            rendered_url("/back$request_uri", &facts),
            "/back/a%20b/c?x=1&y=%2F"
        );
        assert_eq!(
            rendered_url("/x/$http_x_odd", &facts),
            "/x/%5Cevil.example%23%C3%A9"
        );
        assert_eq!(rendered_url("/fixed?a=$$", &facts), "/fixed?a=$");
        // A `?` written again in the query leaves it the query.
        assert_eq!(
            rendered_url("/start?rd=$uri?$args", &facts),
            "/start?rd=%2Fa%20b%2Fc?x%3D1%26y%3D%252F"
        );
        // `$is_args$args` carries the query as it came, `?` and all, as
        // `$request_uri` does; nothing without one.
        assert_eq!(
            rendered_url("/login$is_args$args", &facts),
            "/login?x=1&y=%2F"
        );
        let bare = self::head("/a", &[]);
        assert_eq!(
            rendered_url("/login$is_args$args", &self::facts(&bare)),
            "/login"
        );
        // A `%` that starts no escape is one.
        let odd = self::head("/100%/a%2fb%zz%4", &[]);
        assert_eq!(
            rendered_url("/back$request_uri", &self::facts(&odd)),
            "/back/100%25/a%2fb%25zz%254"
        );
    }

    fn rendered(value: &str, facts: &Facts<'_>) -> String {
        rendered_by(value, |v, out| v.render(facts, out))
    }

    #[test]
    fn each_variable_stands_for_what_is_known_of_the_request() {
        let head = head(
            "/a/b?x=1",
            &[
                ("Host", "Shop.Example:8080"),
                ("X-Token", " t1 "),
                ("x-token", "t2"),
                ("Cookie", "a=1"),
                ("Cookie", "b=2"),
                ("Referer", "https://r.example/"),
                ("User-Agent", "curl/8"),
            ],
        );
        let cert = ClientCertificate {
            byte_sequence: ":AQID:".into(),
            chain: None,
            fingerprint: "70".into(),
            subject: Some("CN=alice".into()),
            issuer: Some("CN=CA".into()),
            serial: Some("0BAD".into()),
            // From before the request to ten days and an hour after it.
            validity: Some((
                UNIX_EPOCH + Duration::from_secs(784_000_000),
                UNIX_EPOCH + Duration::from_secs(784_111_777 + 10 * 86_400 + 3_600),
            )),
        };
        let over_tls = Facts {
            tls: Some(crate::http::tls::Agreed {
                protocol: "TLSv1.3",
                cipher: "TLS13_AES_128_GCM_SHA256",
                resumed: false,
                alpn: Some("http/1.1"),
                group: Some("X25519"),
            }),
            server_name: Some("shop.example"),
            certificate: Some(&cert),
            scheme: "https",
            user: Some("ann"),
            request_id: Some("r-1"),
            trace: crate::trace_context::TraceMode::Inject.begin(None),
            pool: Some("api"),
            connection: Some((7, 3)),
            route_host: Some("*.shop.example"),
            proxied_to: Some(([198, 51, 100, 1], 443).into()),
            proxy_tlvs: None,
            ..facts(&head)
        };
        let pid = std::process::id().to_string();
        // A trace begun here: no parent, none sampled.
        let trace = over_tls.trace.unwrap();
        let traced = format!("{} {} [] 0", trace.trace_id(), trace.span_id());
        let cases = [
            ("$remote_addr:$remote_port", "192.0.2.10:51000"),
            (
                "$realip_remote_addr:$realip_remote_port",
                "192.0.2.10:51000",
            ),
            (
                "$proxy_protocol_addr:$proxy_protocol_port",
                "192.0.2.10:51000",
            ),
            (
                "$proxy_protocol_server_addr:$proxy_protocol_server_port",
                "198.51.100.1:443",
            ),
            ("$hostname", variables::hostname()),
            ("$pid", &pid),
            ("$document_uri", "/a/b"),
            ("$server_addr:$server_port", "192.0.2.1:8080"),
            ("$remote_user", "ann"),
            ("$time_local", "06/Nov/1994:08:49:37 +0000"),
            ("$time_iso8601", "1994-11-06T08:49:37+00:00"),
            ("t=${msec}", "t=784111777.042"),
            ("$request", "GET /a/b?x=1 HTTP/1.1"),
            (
                "$request_method $request_uri $uri $args",
                "GET /a/b?x=1 /a/b x=1",
            ),
            ("$query_string $server_protocol", "x=1 HTTP/1.1"),
            ("$uri$is_args$args", "/a/b?x=1"),
            ("$host", "shop.example"),
            ("$http_x_token", "t1, t2"),
            ("$http_cookie", "a=1; b=2"),
            (
                "$http_referer $http_user_agent",
                "https://r.example/ curl/8",
            ),
            ("$request_id $pool $scheme $https", "r-1 api https on"),
            (
                "$otel_trace_id $otel_span_id [$otel_parent_id] $otel_parent_sampled",
                &traced,
            ),
            ("$server_name", "*.shop.example"),
            ("$connection/$connection_requests", "7/3"),
            (
                "$ssl_protocol $ssl_cipher $ssl_server_name",
                "TLSv1.3 TLS13_AES_128_GCM_SHA256 shop.example",
            ),
            ("$ssl_preread_server_name", "shop.example"),
            ("[$ssl_session_reused]", "[.]"),
            ("$ssl_alpn_protocol", "http/1.1"),
            ("$ssl_curve", "X25519"),
            ("[$ssl_early_data|$http2|$http3]", "[||]"),
            ("$ssl_client_verify $ssl_client_fingerprint", "SUCCESS 70"),
            (
                "$ssl_client_s_dn|$ssl_client_i_dn|$ssl_client_serial",
                "CN=alice|CN=CA|0BAD",
            ),
            (
                "$ssl_client_v_start|$ssl_client_v_end|$ssl_client_v_remain",
                "Nov  5 01:46:40 1994 GMT|Nov 16 09:49:37 1994 GMT|10",
            ),
            (
                "$ssl_client_escaped_cert",
                "-----BEGIN%20CERTIFICATE-----%0AAQID%0A-----END%20CERTIFICATE-----%0A",
            ),
            ("5$$ ${uri}x", "5$ /a/bx"),
            // Without geoip_database: nothing (see below).
            ("[$geoip_country_code]", "[]"),
        ];
        for (value, expected) in cases {
            assert_eq!(rendered(value, &over_tls), expected, "{value}");
        }
        let resumed = Facts {
            tls: Some(crate::http::tls::Agreed {
                resumed: true,
                ..over_tls.tls.unwrap()
            }),
            ..facts(&head)
        };
        assert_eq!(rendered("[$ssl_session_reused]", &resumed), "[r]");
        // Behind a balancer the client's port is not known; the
        // connection's other end is the balancer.
        let behind = Facts {
            peer: ([10, 0, 0, 9], 40_001).into(),
            ..facts(&head)
        };
        assert_eq!(
            rendered(
                "$remote_addr:[$remote_port] $realip_remote_addr:$realip_remote_port",
                &behind
            ),
            "192.0.2.10:[] 10.0.0.9:40001"
        );
        // Without a PROXY header: empty, as nginx's.
        assert_eq!(
            rendered(
                "[$proxy_protocol_addr|$proxy_protocol_port|$proxy_protocol_server_addr|\
                 $proxy_protocol_server_port]",
                &behind
            ),
            "[|||]"
        );
        // After a `rewrite.<name>` rule: the request as it came, but for
        // its path and query.
        let rewritten = Facts {
            sent_target: Some("/old/b?y=2"),
            ..facts(&head)
        };
        assert_eq!(
            rendered("$request|$request_uri|$uri|$args", &rewritten),
            "GET /old/b?y=2 HTTP/1.1|/old/b?y=2|/a/b|x=1"
        );
        // `$is_args` follows the query the rule made, as `$args` does.
        let dropped = self::head("/a/b", &[]);
        let dropped = Facts {
            sent_target: Some("/old/b?y=2"),
            ..facts(&dropped)
        };
        assert_eq!(rendered("[$is_args$args]", &dropped), "[]");
        // Every variable a request may name is above.
        for (name, var) in variables::VARIABLES {
            let named =
                |v: &&str| v.contains(&format!("${name}")) || v.contains(&format!("{{{name}}}"));
            assert!(
                var.after_response() || var.log_only() || cases.iter().map(|(v, _)| v).any(named),
                "${name} is not tested"
            );
        }
        for family in [FieldFamily::Request, FieldFamily::Response] {
            for value in [
                "t=$limit_req_status",
                "$request_body",
                "$tcpinfo_rtt",
                "$sent_http_content_type",
                "$upstream_http_server",
                "$upstream_cookie_sid",
            ] {
                let e = FieldValue::parse(value, family).unwrap_err();
                assert!(e.contains("the access log's alone"), "{value}: {e}");
            }
        }
    }

    #[test]
    fn cookies_and_arguments_are_found_by_name_in_any_case() {
        use variables::{arg_in, cookie_in};
        assert_eq!(cookie_in(b"a=1; SID = x ; b=", "sid"), Some(&b"x"[..]));
        assert_eq!(cookie_in(b"a=1; b=", "b"), Some(&b""[..]));
        assert_eq!(cookie_in(b"a=1; b", "b"), None);
        assert_eq!(cookie_in(b"ab=1", "a"), None);
        assert_eq!(arg_in("a=1&B=2&b=3", "b"), Some("2"));
        assert_eq!(arg_in("a=1&flag", "flag"), Some(""));
        assert_eq!(arg_in("ab=1", "a"), None);
        assert_eq!(arg_in("", "a"), None);
    }

    #[test]
    fn jwt_claims_are_written_as_nginx_plus_writes_them() {
        let head = head("/", &[]);
        let claims = crate::json_value::parse(
            br#"{"sub":"ann","Email":"ann@example.com","exp":1767225600,"ratio":0.5,
                "admin":false,"groups":["ops","dev",7],"nested":{"a":1},"none":null}"#,
        )
        .unwrap();
        let f = Facts {
            jwt_claims: Some(&claims),
            ..facts(&head)
        };
        assert_eq!(
            rendered(
                "$jwt_claim_sub|${jwt_claim_Email}|$jwt_claim_exp|$jwt_claim_ratio",
                &f
            ),
            "ann|ann@example.com|1767225600|0.5"
        );
        assert_eq!(
            rendered("$jwt_claim_admin|$jwt_claim_groups|$jwt_claim_nested|$jwt_claim_none|$jwt_claim_email", &f),
            "false|ops,dev,7|||",
            "names as the token writes them: `email` is not `Email`"
        );
        assert_eq!(
            rendered("[$jwt_claim_sub]", &facts(&head)),
            "[]",
            "no token"
        );
        let e = FieldValue::parse("$jwt_claim_", FieldFamily::Request).unwrap_err();
        assert!(e.contains("needs a claim's name"), "{e}");
        // In braces, a claim's name is the token's own: a path through
        // objects, a URL (Auth0's namespaced claims).
        let claims = crate::json_value::parse(
            br#"{"realm_access":{"roles":["admin","auditor"]},"https://example.com/tier":"gold",
                "a.b":"whole"}"#,
        )
        .unwrap();
        let f = Facts {
            jwt_claims: Some(&claims),
            ..facts(&head)
        };
        assert_eq!(
            rendered(
                "${jwt_claim_realm_access.roles}|${JWT_CLAIM_https://example.com/tier}|${jwt_claim_a.b}|$jwt_claim_realm_access.roles",
                &f
            ),
            "admin,auditor|gold|whole|.roles",
            "a whole name first; without braces the name ends at the dot"
        );
        for bad in ["${jwt_claim_a b}", "${host.x}", "${jwt_claim_}"] {
            assert!(
                FieldValue::parse(bad, FieldFamily::Request).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn cookie_and_arg_read_the_request_s_cookie_and_query_parameter_as_sent() {
        let head = head(
            "/p?Tenant=a%20b&flag&q=1&tenant=second",
            &[
                ("Cookie", "a=1; Session = s%3D7 ;b"),
                ("Cookie", "session=late; c=3"),
            ],
        );
        let f = facts(&head);
        assert_eq!(
            rendered("$cookie_session|$cookie_c|$cookie_b", &f),
            "s%3D7|3|"
        );
        assert_eq!(
            rendered("$arg_tenant|$arg_flag|$arg_Q|$arg_none", &f),
            "a%20b||1|"
        );
        assert_eq!(rendered("t=${arg_tenant}x", &f), "t=a%20bx");
        let bare = self::head("/p", &[]);
        assert_eq!(rendered("[$cookie_session$arg_q]", &facts(&bare)), "[]");
    }

    #[test]
    fn what_the_request_lacks_is_nothing() {
        let head = head("/", &[]);
        let plain = facts(&head);
        let value = "$remote_user$args$is_args$http_x_absent$request_id$pool$https$ssl_protocol\
                     $ssl_client_verify$ssl_client_s_dn$ssl_client_escaped_cert$host";
        assert_eq!(rendered(value, &plain), "");
        // An empty query is none to `$is_args`, as nginx's.
        let empty = self::head("/a?", &[]);
        assert_eq!(rendered("[$uri$is_args$args]", &facts(&empty)), "[/a]");
        let over_tls = Facts {
            tls: Some(crate::http::tls::Agreed {
                protocol: "TLSv1.3",
                cipher: "TLS13_AES_128_GCM_SHA256",
                resumed: false,
                alpn: Some("http/1.1"),
                group: Some("X25519"),
            }),
            ..facts(&head)
        };
        assert_eq!(
            rendered("$ssl_client_verify[$ssl_client_s_dn]", &over_tls),
            "NONE[]"
        );
    }

    #[test]
    fn a_value_is_trimmed_and_holds_no_control_character() {
        let head = head("/", &[("X-A", "a\u{7f}b")]);
        assert_eq!(rendered("  $http_x_a  ", &facts(&head)), "a\\x7Fb");
        let blank = self::head("/", &[("X-B", " ")]);
        assert_eq!(rendered(" $http_x_b  $http_x_absent ", &facts(&blank)), "");
        let cert = ClientCertificate {
            byte_sequence: ":AQID:".into(),
            chain: None,
            fingerprint: "70".into(),
            subject: Some("CN=a\rb".into()),
            issuer: None,
            serial: None,
            validity: None,
        };
        let f = Facts {
            certificate: Some(&cert),
            ..facts(&head)
        };
        assert_eq!(rendered("$ssl_client_s_dn", &f), "CN=a\\x0Db");
    }

    #[test]
    fn a_variable_known_only_after_the_response_or_unknown_is_refused() {
        for name in [
            "status",
            "upstream_addr",
            "request_time",
            "upstream_cache_status",
        ] {
            let e = FieldValue::parse(&format!("${name}"), FieldFamily::Request).unwrap_err();
            assert!(e.contains("only once the response"), "{name}: {e}");
            assert!(e.starts_with(&format!("`${name}` ")), "{name}: {e}");
            assert!(FieldValue::parse(&format!("${name}"), FieldFamily::Response).is_ok());
        }
        for known_after_the_body in [
            "$body_bytes_sent",
            "$bytes_sent",
            "$request_length",
            "$upstream_response_time",
            "$upstream_bytes_received",
            "$upstream_bytes_sent",
            "$upstream_response_length",
            "$request_completion",
            "$gzip_ratio",
        ] {
            let e = FieldValue::parse(known_after_the_body, FieldFamily::Response).unwrap_err();
            assert!(e.contains("after the head"), "{e}");
        }
        let e = FieldValue::parse("$remote_adr", FieldFamily::Request).unwrap_err();
        assert!(e.contains("did you mean `$remote_addr`"), "{e}");
        assert!(FieldValue::parse("${uri", FieldFamily::Request)
            .unwrap_err()
            .contains("no `}`"));
        assert!(FieldValue::parse("a $ b", FieldFamily::Request)
            .unwrap_err()
            .contains("starts no variable"));
    }

    fn answer() -> Answer<'static> {
        Answer {
            status: 502,
            cache: Some("MISS"),
            last: UpstreamTry {
                upstream: Some("10.0.0.5:8080".into()),
                status: Some(503),
                wait: Some(Duration::from_micros(12_345_678)),
                connect: Some(Duration::from_micros(2_400)),
                ..UpstreamTry::default()
            },
            earlier: &[],
            upstream_queue: Some(Duration::from_micros(301_200)),
            elapsed: Duration::from_micros(1_500_250),
        }
    }

    #[test]
    fn a_response_field_lists_each_backend_tried_before_the_last() {
        let head = head("/a", &[]);
        let facts = facts(&head);
        let earlier = [UpstreamTry {
            upstream: Some("10.0.0.4:8080".into()),
            status: Some(502),
            connect: Some(Duration::from_micros(900)),
            response: Some(Duration::from_millis(3)),
            ..UpstreamTry::default()
        }];
        let retried = Answer {
            earlier: &earlier,
            ..answer()
        };
        let cases = [
            ("$upstream_addr", "10.0.0.4:8080, 10.0.0.5:8080"),
            ("$upstream_status", "502, 503"),
            ("$upstream_connect_time", "0.001, 0.002"),
            (
                "$upstream_header_time $upstream_ms",
                "-, 12.346 -, 12345.678",
            ),
            ("$upstream_queue_time", "0.301"),
        ];
        for (value, expected) in cases {
            assert_eq!(
                finished(value, &facts, &retried),
                format!("X-A: {expected}\r\n"),
                "{value}"
            );
        }
        // The last lacking a value it has after others: `-` in its place.
        let last_unanswered = Answer {
            last: UpstreamTry {
                wait: None,
                ..answer().last
            },
            ..retried
        };
        assert_eq!(
            finished("$upstream_header_time", &facts, &last_unanswered),
            "X-A: -, -\r\n"
        );
    }

    fn finished(value: &str, facts: &Facts<'_>, answer: &Answer<'_>) -> String {
        let value = FieldValue::parse(value, FieldFamily::Response).unwrap();
        assert!(value.of_response());
        let mut out = b"before".to_vec();
        value.pending("X-A", facts).finish(answer, &mut out);
        String::from_utf8(out).unwrap()["before".len()..].to_string()
    }

    #[test]
    fn a_response_field_is_finished_with_what_the_response_tells() {
        let head = head("/a?b", &[("X-T", "t\u{1}")]);
        let facts = facts(&head);
        let cases = [
            (
                "$status $upstream_addr $upstream_cache_status",
                "502 10.0.0.5:8080 MISS",
            ),
            ("${request_time}s ${duration_ms}ms", "1.500s 1500.250ms"),
            ("$upstream_header_time/$upstream_ms", "12.346/12345.678"),
            ("$upstream_connect_time", "0.002"),
            ("$upstream_queue_time", "0.301"),
            ("$status/$upstream_status", "502/503"),
            ("  $uri:$status $http_x_t  ", "/a:502 t\\x01"),
            ("$$status=$status", "$status=502"),
        ];
        for (value, expected) in cases {
            assert_eq!(
                finished(value, &facts, &answer()),
                format!("X-A: {expected}\r\n"),
                "{value}"
            );
        }
        // Every variable of the response is above, but those known only
        // after the body.
        for (name, var) in variables::VARIABLES {
            let named =
                |v: &&str| v.contains(&format!("${name}")) || v.contains(&format!("{{{name}}}"));
            assert!(
                !var.after_response()
                    || var.after_the_body()
                    || cases.iter().map(|(v, _)| v).any(named),
                "${name} is not tested"
            );
        }
        // What the response lacks is nothing, and a value that is then
        // empty sends no field.
        let from_cache = Answer {
            cache: None,
            last: UpstreamTry::default(),
            upstream_queue: None,
            ..answer()
        };
        assert_eq!(
            finished("[$upstream_addr]", &facts, &from_cache),
            "X-A: []\r\n"
        );
        assert_eq!(
            finished(" $upstream_addr $upstream_ms ", &facts, &from_cache),
            ""
        );
        // A value without the response's variables is rendered whole at
        // once.
        assert!(!FieldValue::parse("$uri", FieldFamily::Response)
            .unwrap()
            .of_response());
    }

    #[test]
    fn text_without_variables_is_sent_as_written() {
        let plain = FieldValue::parse("a; b=\"c\"", FieldFamily::Request).unwrap();
        assert_eq!(plain.text(), Some("a; b=\"c\""));
        let dollar = FieldValue::parse("5$$", FieldFamily::Request).unwrap();
        assert_eq!(dollar.text(), Some("5$"));
        assert_eq!(dollar.source(), "5$$");
        assert_eq!(
            FieldValue::parse("$uri", FieldFamily::Request)
                .unwrap()
                .text(),
            None
        );
        assert_eq!(FieldValue::fixed("5$$").text(), Some("5$$"));
    }

    proptest::proptest! {
        #[test]
        fn any_field_renders_trimmed_and_fit_for_a_head(value: Vec<u8>, before: Vec<u8>) {
            let mut headers = Headers::new();
            headers.push("X-A", &value[..]);
            let head = RequestHead { headers, ..head("/", &[]) };
            for template in ["$http_x_a", " $http_x_a ", " <$http_x_a> $http_x_a "] {
                let mut out = before.clone();
                FieldValue::parse(template, FieldFamily::Request).unwrap().render(&facts(&head), &mut out);
                proptest::prop_assert_eq!(&out[..before.len()], &before[..]);
                let rendered = &out[before.len()..];
                proptest::prop_assert_eq!(rendered.trim_ascii(), rendered);
                let fits = |&b: &u8| b == b'\t' || (b >= b' ' && b != 0x7f);
                proptest::prop_assert!(rendered.iter().all(fits));
            }
        }
    }
}
