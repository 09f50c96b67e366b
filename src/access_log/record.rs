//! What is logged about one request, and its combined and JSON lines:
//! fields a client wrote escaped so that it cannot forge a line.

use super::{By, RequestFields, Stage, Termination};
use crate::config::LogFormat;
use crate::digits::{push_ip, Decimal, Thousandths};
use crate::http::date::{format_rfc3339, LogClock};
use crate::http::Headers;
use crate::json;
use crate::tls::client_cert::ClientCertificate;
use crate::trace_context::TraceContext;
use crate::upstream_tries::UpstreamTry;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What is logged about one request.
#[derive(Clone, Debug)]
pub struct Record {
    /// When the request head arrived.
    pub time: SystemTime,
    pub client: IpAddr,
    /// The connection's other end (or the client its PROXY header names),
    /// before `real_ip_from` read who is behind it: `$realip_remote_addr`.
    pub peer: Option<SocketAddr>,
    /// The address a PROXY header said the client connected to: with
    /// one, `peer` is the client it named (`$proxy_protocol_addr`).
    pub proxied_to: Option<SocketAddr>,
    /// The TLVs of the connection's version 2 PROXY header, when it had
    /// any (`$proxy_protocol_tlv_<name>`).
    pub proxy_tlvs: Option<Arc<[u8]>>,
    /// The address and port the client connected to (`port` or
    /// `tls_port`), when known.
    pub server: Option<SocketAddr>,
    /// The user name the request's `Authorization: Basic` field claims,
    /// whether or not its password is right (nginx's `$remote_user`);
    /// none without one, or for a request refused before its head parsed.
    pub remote_user: Option<String>,
    /// The claims of the token `auth_jwt` verified, when a `log_format`
    /// template names one (`$jwt_claim_<name>`).
    pub jwt_claims: Option<Arc<crate::json_value::Value>>,
    /// `GET /path HTTP/1.1`, or what could be read of a malformed one.
    pub request_line: String,
    /// The path and query a `rewrite.<name>` rule made of the request's,
    /// which `$uri` and `$args` write (`request_line` stays the client's).
    pub made_target: Option<String>,
    pub status: u16,
    /// Body bytes sent to the client.
    pub bytes: u64,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    /// HIT, MISS, ... when the cache had a say.
    pub cache: Option<&'static str>,
    pub duration: Duration,
    /// The connection's serial number (from 1, in the order connections
    /// were taken), and how many requests it has carried, this one
    /// included (`$connection`, `$connection_requests`); none for one
    /// refused as it came.
    pub connection: Option<(u64, u64)>,
    /// The length of the response head sent: `$bytes_sent` is it and
    /// `bytes`.
    pub head_bytes: u64,
    /// The bytes read of the request, its line, fields and body with
    /// their framing (`$request_length`); none for one never read.
    pub request_length: Option<u64>,
    /// How long the request waited for a slot at a target (`max_conns`)
    /// before its exchanges, summed over the targets tried (zero when it
    /// did not wait; `$upstream_queue_time`, HAProxy's `Tw`).
    pub upstream_queue: Option<Duration>,
    /// The last target tried: the one that answered, or the last that
    /// failed. Its values end the per-target variables' lists, and its
    /// address and wait are the combined and JSON lines' `upstream` and
    /// `upstream_ms`.
    pub last_try: UpstreamTry,
    /// The targets tried before the last, in order, as the per-target
    /// variables of a template list them ahead of the last's; empty for
    /// a request that went to one.
    pub earlier_tries: Vec<UpstreamTry>,
    /// The host of the route the request took, as the route is written
    /// (`example.com`, `*.example.com`): nginx's `$server_name`, the name
    /// of the server block that took it; none for a route of any host.
    pub route_host: Option<Arc<str>>,
    /// The body bytes of the answer before and after it was compressed,
    /// when it went compressed (`$gzip_ratio`).
    pub gzip_sizes: Option<(u64, u64)>,
    /// The request's body, when a template writes it and it was read
    /// whole before it went (`$request_body`).
    pub request_body: Option<Box<[u8]>>,
    /// What the kernel measured of the client's connection as the
    /// response ended, when a template writes it (`$tcpinfo_rtt`).
    pub tcp_info: Option<crate::http::conn::TcpInfo>,
    /// How long the client connection had been open as the response
    /// ended (`$connection_time`), and whether the request had come
    /// before the answer to the one ahead of it went (`$pipe`).
    pub connection_time: Option<Duration>,
    pub pipelined: bool,
    /// Why and where the exchange ended, as HAProxy's termination state
    /// (`$termination`: `--`, `SC`, `sH`, `CD`, ...).
    pub termination: Termination,
    /// What the rate limits did with the request, as nginx's
    /// `$limit_req_status` says it (`PASSED`, `DELAYED`, `REJECTED`, or
    /// one of the last two with `_DRY_RUN`); none when no limit applied.
    pub limit_req: Option<&'static str>,
    /// The pool the request was routed to (`default` for `targets`): none
    /// for one that went to no pool (a redirect route's, one refused
    /// before it was routed). A cache hit has its route's pool.
    pub pool: Option<Arc<str>>,
    /// Whether the combined and JSON lines carry `pool`: the configuration
    /// defines pools (`pool.<name>`), so that the lines of those that do
    /// not stay as they were. A template writes `$pool` either way.
    pub show_pool: bool,
    /// The request's ID, when `request_id_header` is set.
    pub request_id: Option<String>,
    /// The request's place in a trace, with `trace_context`.
    pub trace: Option<TraceContext>,
    /// The request head received and the response head sent, when
    /// `log_headers` is on.
    pub heads: Option<Box<Heads>>,
    /// The request fields a `log_format` template names.
    pub fields: Option<RequestFields>,
    /// The response head sent as it went on the wire, when a template
    /// names one of its fields (`$sent_http_<name>`), read by the logger.
    pub response_head: Option<Vec<u8>>,
    /// The fields of the backend's answer as they came (the last tried
    /// backend's), when a template names one (`$upstream_http_<name>`).
    pub upstream_fields: Option<Headers>,
    /// The request's scheme, as `X-Forwarded-Proto` tells the backend.
    pub scheme: &'static str,
    /// Over TLS to `tls_port`: the protocol version and cipher suite
    /// agreed (`TLSv1.3`, `TLS13_AES_128_GCM_SHA256`).
    pub tls: Option<crate::http::tls::Agreed>,
    /// There, the host name the client's hello asked for (SNI).
    pub server_name: Option<Arc<str>>,
    /// The protocols a hello a stream read (passing TLS through) offered
    /// in ALPN, comma separated as nginx's `$ssl_preread_alpn_protocols`.
    pub offered_protocols: Option<Box<str>>,
    /// The certificate the client showed there (`tls_verify_client`).
    pub client_certificate: Option<Arc<ClientCertificate>>,
    /// The client's country, when a template writes it
    /// (`$geoip_country_code`) and `geoip_database` knows it.
    pub country: Option<crate::geoip::Country>,
}

/// Header fields of one exchange, as `(name, value)` in wire order.
#[derive(Clone, Debug, Default)]
pub struct Heads {
    pub request: Vec<(String, String)>,
    pub response: Vec<(String, String)>,
}

impl Heads {
    /// The fields of a head as written on the wire (status or request
    /// line first, which is skipped; CRLF line ends).
    pub fn fields_of(head: &[u8]) -> Vec<(String, String)> {
        String::from_utf8_lossy(head)
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_string(), value.trim().to_string()))
            .collect()
    }
}

impl Record {
    /// The client's port: none when `client` is not the connection's
    /// other end but the address a proxy in front named.
    pub fn client_port(&self) -> Option<u16> {
        (self.peer)
            .filter(|peer| peer.ip() == self.client)
            .map(|peer| peer.port())
    }

    /// A connection answered 503 before any request was read from it
    /// (over a connection limit), from `client` to `server`: what had
    /// arrived of its request line, and the body bytes sent.
    pub fn refused(
        time: SystemTime,
        client: SocketAddr,
        server: SocketAddr,
        request_line: String,
        bytes: u64,
        duration: Duration,
    ) -> Record {
        Record {
            time,
            client: client.ip(),
            peer: Some(client),
            proxied_to: None,
            proxy_tlvs: None,
            server: Some(server),
            remote_user: None,
            jwt_claims: None,
            request_line,
            made_target: None,
            status: 503,
            bytes,
            referer: None,
            user_agent: None,
            cache: None,
            duration,
            connection: None,
            head_bytes: 0,
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
            // Over a connection limit: the proxy's refusal, before a
            // request was read, as HAProxy's `PR`.
            termination: Termination::new(By::Proxy, Stage::Request),
            limit_req: None,
            pool: None,
            show_pool: false,
            request_id: None,
            trace: None,
            heads: None,
            fields: None,
            response_head: None,
            upstream_fields: None,
            scheme: "http",
            tls: None,
            server_name: None,
            offered_protocols: None,
            country: None,
            client_certificate: None,
        }
    }

    /// Appends the line in the given format to `line`, without newline,
    /// as the logger writes it; `clock` keeps the timestamps of the last
    /// second it wrote.
    pub fn write_as(&self, format: &LogFormat, line: &mut String, clock: &mut LogClock) {
        match format {
            LogFormat::Combined => self.write_combined(line, clock),
            LogFormat::Json => self.write_json(line),
            LogFormat::Template(template) => template.write(self, line, clock),
        }
    }

    /// One JSON object with the fields of the combined line:
    /// `time` (RFC 3339, UTC), `client`, `remote_user`, `request`,
    /// `status`, `bytes`, `referer`, `user_agent`, `upstream`, `cache`
    /// (null when absent), `duration_ms`, `upstream_ms` (null when
    /// absent), `termination` (`$termination`), with pools defined
    /// `pool` (null for a request that went to no pool), with
    /// `request_id_header` `request_id`, with `trace_context` `trace_id`
    /// and `span_id` (the proxy's), and with
    /// `log_headers` `request_headers` and `response_headers` as arrays of
    /// `[name, value]` pairs.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256);
        self.write_json(&mut out);
        out
    }

    /// [`to_json`](Self::to_json) into `out`.
    fn write_json(&self, out: &mut String) {
        out.push('{');
        json::push_key(out, "time");
        json::push_str(out, &format_rfc3339(self.time));
        out.push(',');
        json::push_key(out, "client");
        out.push('"');
        push_ip(out, self.client);
        out.push('"');
        out.push(',');
        json::push_key(out, "remote_user");
        json::push_opt_str(out, self.remote_user.as_deref());
        out.push(',');
        json::push_key(out, "request");
        json::push_str(out, &self.request_line);
        out.push_str(",\"status\":");
        out.push_str(Decimal::new(u64::from(self.status)).as_str());
        out.push_str(",\"bytes\":");
        out.push_str(Decimal::new(self.bytes).as_str());
        out.push(',');
        json::push_key(out, "referer");
        json::push_opt_str(out, self.referer.as_deref());
        out.push(',');
        json::push_key(out, "user_agent");
        json::push_opt_str(out, self.user_agent.as_deref());
        out.push(',');
        json::push_key(out, "upstream");
        json::push_opt_str(out, self.last_try.upstream.as_deref());
        out.push(',');
        json::push_key(out, "cache");
        json::push_opt_str(out, self.cache);
        out.push_str(",\"duration_ms\":");
        out.push_str(Thousandths::millis(self.duration).as_str());
        out.push_str(",\"upstream_ms\":");
        match self.last_try.wait {
            Some(wait) => out.push_str(Thousandths::millis(wait).as_str()),
            None => out.push_str("null"),
        }
        out.push_str(",\"termination\":\"");
        out.push_str(self.termination.as_str());
        out.push('"');
        if self.show_pool {
            out.push(',');
            json::push_key(out, "pool");
            json::push_opt_str(out, self.pool.as_deref());
        }
        if let Some(id) = &self.request_id {
            out.push(',');
            json::push_key(out, "request_id");
            json::push_str(out, id);
        }
        if let Some(trace) = &self.trace {
            for (key, id) in [("trace_id", trace.trace_id()), ("span_id", trace.span_id())] {
                out.push(',');
                json::push_key(out, key);
                json::push_str(out, &id);
            }
        }
        if let Some(heads) = &self.heads {
            for (key, fields) in [
                ("request_headers", &heads.request),
                ("response_headers", &heads.response),
            ] {
                out.push(',');
                json::push_key(out, key);
                out.push('[');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('[');
                    json::push_str(out, name);
                    out.push(',');
                    json::push_str(out, value);
                    out.push(']');
                }
                out.push(']');
            }
        }
        out.push('}');
    }

    /// The line as written (without newline): the combined log format (its
    /// user the one `Authorization: Basic` claims), then
    /// `upstream=`, `cache=`, `duration_ms=`, `upstream_ms=`, with pools
    /// defined `pool=`, with `request_id_header` `request_id=` and with
    /// `trace_context` `trace_id=`. Quoted fields escape `"`,
    /// `\` and non-printable bytes as `\xHH`, so a client cannot forge lines.
    pub fn format(&self) -> String {
        let mut line = String::with_capacity(160);
        self.write_combined(&mut line, &mut LogClock::new());
        line
    }

    /// [`format`](Self::format) into `line`. Written piece by piece rather
    /// than with `write!`: the writer formats a line per request, and the
    /// formatting machinery made a third of a cache hit's instructions.
    fn write_combined(&self, line: &mut String, clock: &mut LogClock) {
        push_ip(line, self.client);
        line.push_str(" - ");
        push_user(line, self.remote_user.as_deref());
        line.push_str(" [");
        line.push_str(clock.clf(self.time));
        line.push_str("] \"");
        escape_into(line, &self.request_line);
        line.push_str("\" ");
        line.push_str(Decimal::new(u64::from(self.status)).as_str());
        line.push(' ');
        line.push_str(Decimal::new(self.bytes).as_str());
        line.push_str(" \"");
        escape_into(line, self.referer.as_deref().unwrap_or("-"));
        line.push_str("\" \"");
        escape_into(line, self.user_agent.as_deref().unwrap_or("-"));
        line.push_str("\" upstream=");
        line.push_str(self.last_try.upstream.as_deref().unwrap_or("-"));
        line.push_str(" cache=");
        line.push_str(self.cache.unwrap_or("-"));
        line.push_str(" duration_ms=");
        line.push_str(Thousandths::millis(self.duration).as_str());
        line.push_str(" upstream_ms=");
        match self.last_try.wait {
            Some(wait) => line.push_str(Thousandths::millis(wait).as_str()),
            None => line.push('-'),
        }
        if self.show_pool {
            // Unquoted: a pool's name is letters, digits, `-` and `_`
            // (see `config::pools`); escaped all the same.
            line.push_str(" pool=");
            escape_into(line, self.pool.as_deref().unwrap_or("-"));
        }
        if let Some(id) = &self.request_id {
            // Unquoted: an ID is printable ASCII without spaces or quotes
            // (see `request_id::is_well_formed`); escaped all the same.
            line.push_str(" request_id=");
            escape_into(line, id);
        }
        if let Some(trace) = &self.trace {
            line.push_str(" trace_id=");
            line.push_str(&trace.trace_id());
        }
        if let Some(heads) = &self.heads {
            // Each head as one quoted field, its lines joined by CRLF
            // (escaped as \x0D\x0A like any control byte).
            for (key, fields) in [
                (" request_headers=\"", &heads.request),
                (" response_headers=\"", &heads.response),
            ] {
                line.push_str(key);
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        escape_into(line, "\r\n");
                    }
                    escape_into(line, name);
                    line.push_str(": ");
                    escape_into(line, value);
                }
                line.push('"');
            }
        }
    }
}

/// Whether `b` goes into a quoted field as it is.
fn is_plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// Whether `b` goes into an unquoted field as it is: as into a quoted
/// one, but for the space that would end the field.
fn is_plain_unquoted(b: u8) -> bool {
    b != b' ' && is_plain(b)
}

/// `s` as a quoted field holds it: every byte that is not [`is_plain`]
/// as `\xHH`.
pub(super) fn escape_into(out: &mut String, s: &str) {
    escape_with(out, s, is_plain);
}

/// `s` with every byte that is not `plain` written as `\xHH` (each byte
/// of a character outside ASCII).
fn escape_with(out: &mut String, s: &str, plain: impl Fn(u8) -> bool) {
    // Without stopping at the first byte that is not plain: a loop with
    // no exit is checked many bytes at a time, and nearly every value is
    // plain throughout.
    if s.bytes().fold(true, |all, b| all & plain(b)) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if c.is_ascii() && plain(c as u8) {
            out.push(c);
            continue;
        }
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
}

/// The user of the combined line, an unquoted field the client writes:
/// escaped as a quoted field is and its spaces too, so that it stays one
/// field; `-` for none and for an empty name (nginx writes an empty one
/// as it is, which leaves a combined parser an empty field to trip on).
pub(super) fn push_user(out: &mut String, user: Option<&str>) {
    match user {
        Some(user) if !user.is_empty() => escape_with(out, user, is_plain_unquoted),
        _ => out.push('-'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::tests::record;
    use crate::access_log::Template;

    #[test]
    fn formats_json_and_heads() {
        let mut r = record();
        r.heads = Some(Box::new(Heads {
            request: vec![("Host".into(), "a\"b".into())],
            response: Heads::fields_of(b"HTTP/1.1 200 OK\r\nX-Cache: MISS\r\n\r\n"),
        }));
        assert_eq!(
            r.to_json(),
            r#"{"time":"1994-11-06T08:49:37.000Z","client":"127.0.0.1","remote_user":null,"request":"GET /a\"b HTTP/1.1","status":200,"bytes":512,"referer":null,"user_agent":"curl/8\n","upstream":"127.0.0.1:9001","cache":"MISS","duration_ms":1.500,"upstream_ms":1.250,"termination":"--","request_headers":[["Host","a\"b"]],"response_headers":[["X-Cache","MISS"]]}"#
        );
        assert!(r
            .format()
            .ends_with(r#" request_headers="Host: a\x22b" response_headers="X-Cache: MISS""#));
    }

    #[test]
    fn the_fields_of_a_head_are_kept_apart_in_both_formats() {
        let mut r = record();
        r.heads = Some(Box::new(Heads {
            request: Heads::fields_of(b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"),
            response: Vec::new(),
        }));
        assert!(
            r.to_json().ends_with(
                r#""request_headers":[["Host","a"],["Accept","*/*"]],"response_headers":[]}"#
            ),
            "{}",
            r.to_json()
        );
        // Joined by an escaped CRLF, so that the line stays one line.
        assert!(
            r.format()
                .ends_with(r#" request_headers="Host: a\x0D\x0AAccept: */*" response_headers="""#),
            "{}",
            r.format()
        );
    }

    #[test]
    fn a_trace_follows_the_request_id_in_both_formats() {
        let mut r = record();
        r.request_id = Some("4f1c-x".into());
        r.trace = crate::trace_context::TraceMode::Propagate.begin(Some(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        let span = r.trace.map(|t| t.span_id()).unwrap_or_default();
        assert!(
            r.format()
                .ends_with(" request_id=4f1c-x trace_id=4bf92f3577b34da6a3ce929d0e0e4736"),
            "{}",
            r.format()
        );
        let json = r.to_json();
        let expected = format!(
            r#""request_id":"4f1c-x","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"{span}"}}"#
        );
        assert!(json.ends_with(&expected), "{json}");
    }

    #[test]
    fn a_request_id_follows_the_durations_in_both_formats() {
        let mut r = record();
        assert!(!r.to_json().contains("request_id"));
        assert!(!r.format().contains("request_id"));
        r.request_id = Some("4f1c-x".into());
        assert!(r.to_json().ends_with(
            r#""duration_ms":1.500,"upstream_ms":1.250,"termination":"--","request_id":"4f1c-x"}"#
        ));
        assert!(r
            .format()
            .ends_with(" duration_ms=1.500 upstream_ms=1.250 request_id=4f1c-x"));
    }

    #[test]
    fn the_pool_follows_the_durations_only_with_pools_defined() {
        // Without pools the lines are as they were, pool or not.
        let mut r = record();
        assert!(!r.format().contains("pool"), "{}", r.format());
        assert!(!r.to_json().contains("pool"), "{}", r.to_json());
        // With pools: after upstream_ms, before request_id.
        r.show_pool = true;
        assert!(r
            .format()
            .ends_with(" cache=MISS duration_ms=1.500 upstream_ms=1.250 pool=api"));
        assert!(r.to_json().ends_with(
            r#""duration_ms":1.500,"upstream_ms":1.250,"termination":"--","pool":"api"}"#
        ));
        r.request_id = Some("4f1c-x".into());
        assert!(r
            .format()
            .ends_with(" upstream_ms=1.250 pool=api request_id=4f1c-x"));
        assert!(r.to_json().ends_with(
            r#""upstream_ms":1.250,"termination":"--","pool":"api","request_id":"4f1c-x"}"#
        ));
        // A request that went to no pool (a redirect route's, one refused
        // before it was routed).
        r.pool = None;
        assert!(r.format().ends_with(" pool=- request_id=4f1c-x"));
        assert!(r
            .to_json()
            .ends_with(r#""pool":null,"request_id":"4f1c-x"}"#));
        let template = Template::parse("$status $pool").unwrap();
        for (pool, show_pool, written) in [
            (Some("api"), false, "200 api"),
            (Some("default"), true, "200 default"),
            (None, true, "200 -"),
        ] {
            r.pool = pool.map(Arc::from);
            r.show_pool = show_pool;
            let mut line = String::new();
            r.write_as(
                &LogFormat::Template(Arc::new(template.clone())),
                &mut line,
                &mut LogClock::new(),
            );
            assert_eq!(line, written);
        }
    }

    /// `r`'s line as `template` writes it.
    fn templated(r: &Record, template: &str) -> String {
        let template = Template::parse(template).unwrap();
        let mut line = String::new();
        r.write_as(
            &LogFormat::Template(Arc::new(template)),
            &mut line,
            &mut LogClock::new(),
        );
        line
    }

    #[test]
    fn the_claimed_user_is_the_third_field_of_the_combined_line() {
        let mut r = record();
        // None: the `-` the line always had, `null` in JSON.
        assert!(r.format().starts_with("127.0.0.1 - - [06/Nov/1994:"));
        assert!(r
            .to_json()
            .contains(r#""client":"127.0.0.1","remote_user":null,"request":"#));
        assert_eq!(templated(&r, "[$remote_user]"), "[-]");
        r.remote_user = Some("ann".into());
        assert!(r
            .format()
            .starts_with("127.0.0.1 - ann [06/Nov/1994:08:49:37 +0000] \"GET "));
        assert!(r
            .to_json()
            .contains(r#""client":"127.0.0.1","remote_user":"ann","request":"#));
        assert_eq!(templated(&r, "[$remote_user]"), "[ann]");
        // Empty: `-` rather than an empty field; JSON has it as it is.
        r.remote_user = Some(String::new());
        assert!(r.format().starts_with("127.0.0.1 - - [06/Nov/1994:"));
        assert!(r.to_json().contains(r#""remote_user":"","#));
        assert_eq!(templated(&r, "[$remote_user]"), "[-]");
    }

    #[test]
    fn a_hostile_user_stays_one_field_and_forges_nothing() {
        let mut r = record();
        r.remote_user = Some("a b\"c\\d\r\n".into());
        let line = r.format();
        assert!(
            line.starts_with(
                r#"127.0.0.1 - a\x20b\x22c\x5Cd\x0D\x0A [06/Nov/1994:08:49:37 +0000] "GET "#
            ),
            "{line}"
        );
        // As a combined parser splits it: the user is the third field.
        assert_eq!(line.split(' ').nth(3), Some("[06/Nov/1994:08:49:37"));
        assert!(!line.contains(['\r', '\n']));
        assert!(
            r.to_json()
                .contains(r#""remote_user":"a b\"c\\d\r\n","request":"#),
            "{}",
            r.to_json()
        );
        assert_eq!(
            templated(&r, "$remote_addr - $remote_user [x]"),
            r"127.0.0.1 - a\x20b\x22c\x5Cd\x0D\x0A [x]"
        );
        // Outside ASCII, and what was not UTF-8 (U+FFFD), byte by byte.
        r.remote_user = Some("é\u{fffd}\t-".into());
        assert!(r
            .format()
            .starts_with(r"127.0.0.1 - \xC3\xA9\xEF\xBF\xBD\x09- ["));
        assert!(r.to_json().contains("\"remote_user\":\"é\u{fffd}\\t-\""));
    }

    #[test]
    fn no_backend_answer_is_a_dash_or_null() {
        let mut r = record();
        r.last_try.wait = None;
        assert!(r.format().ends_with(" duration_ms=1.500 upstream_ms=-"));
        assert!(r
            .to_json()
            .ends_with(r#""duration_ms":1.500,"upstream_ms":null,"termination":"--"}"#));
    }

    #[test]
    fn quoted_fields_escape_only_what_they_must() {
        let mut out = String::new();
        escape_into(&mut out, "Mozilla/5.0 (X11; Linux) ~!");
        assert_eq!(out, "Mozilla/5.0 (X11; Linux) ~!");
        out.clear();
        escape_into(&mut out, "a\"b\\c\x7f\té");
        assert_eq!(out, "a\\x22b\\x5Cc\\x7F\\x09\\xC3\\xA9");
    }

    #[test]
    fn formats_a_combined_line_with_extras() {
        assert_eq!(
            record().format(),
            "127.0.0.1 - - [06/Nov/1994:08:49:37 +0000] \"GET /a\\x22b HTTP/1.1\" 200 512 \"-\" \"curl/8\\x0A\" upstream=127.0.0.1:9001 cache=MISS duration_ms=1.500 upstream_ms=1.250"
        );
    }
}
