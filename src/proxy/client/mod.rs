//! The client side of a connection: reading request heads (within their
//! limits and timeouts, after the PROXY header when there is one), the
//! proxy's own short answers, and closing without losing a response.
//!
//! # Layout
//! - `read`: a request read: its head, within its limits and timeouts
//!   ([`HeadRead`]), the PROXY header before it, and its body.
//! - `answer`: the proxy's own answers to the client, with the fields of
//!   the request's own they carry.
//! - `leaving`: whether the client is still there, how its exchange
//!   ended (for the log), and the lingering close ([`linger`]).
//! - here: [`Client`], what the connection knows of its client and of the
//!   request being served, and the settings it takes.

mod answer;
mod leaving;
mod read;

pub(super) use leaving::{linger, CLIENT_CHECK_AFTER};
pub(crate) use read::first_line;
pub(super) use read::HeadRead;

use super::cached;
use super::origin::ExchangeTally;
use super::{ConnWatch, Inherited, Shared};
// `answer` names these as `super::...`, which from there is this module.
use super::{starts_a_head_request, ErrorResponse};
use crate::access_log::Termination;
use crate::config::Config;
use crate::field_value::Pending;
use crate::geoip::{Geo, KeptCountry};
use crate::gzip::{Accepts, Coding};
use crate::http::conn::{ClientStream, SharedStream, Socket as _};
use crate::http::edits::Chosen;
use crate::http::head::RequestLimits;
use crate::http::send_proxy::{ClientEnds, ClientTls};
use crate::http::tls::TlsStream;
use crate::http::{BufConn, RequestHead};
use crate::metrics::Metrics;
use crate::pace::Pacing;
use crate::routes::Asked;
use crate::tls::client_cert::ClientCertificate;
use crate::upstream::sticky::Sticky;
use crate::upstream::{ForClient, KeptConns};
use crate::upstream_tries::UpstreamTry;
use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Initial size of a client connection's read buffer (it grows up to the
/// head limit for a large head, and is freed while the connection idles).
const CLIENT_BUFFER: usize = 16 * 1024;

pub(super) struct Client {
    pub(super) conn: BufConn<SharedStream<ClientStream>>,
    /// The connection's other end: the client, or a proxy in front.
    pub(super) peer: IpAddr,
    /// `peer`'s port, for the log (`$remote_port`).
    pub(super) peer_port: u16,
    /// The address a PROXY header said the client connected to (the
    /// balancer's front): with one, `peer` is the client it named
    /// (`$proxy_protocol_addr`, `$proxy_protocol_server_addr`).
    pub(super) proxied_to: Option<SocketAddr>,
    /// The TLVs of the connection's version 2 PROXY header, when it had
    /// any (`$proxy_protocol_tlv_<name>`).
    pub(super) proxy_tlvs: Option<Arc<[u8]>>,
    /// The address and port the client connected to (`port` or
    /// `tls_port`): `$server_addr`, `$server_port`.
    pub(super) server: SocketAddr,
    /// Whom the request being served is from: `peer`, or the client a
    /// trusted proxy in front names (see [`crate::realip`]). Logged, and
    /// what `ip_hash` hashes.
    pub(super) real_ip: IpAddr,
    /// `real_ip`'s country, once a condition, a value or the log of the
    /// request has asked it (see [`crate::geoip::Geo`]).
    country: KeptCountry,
    /// The client came over TLS: to `tls_port`, or to a proxy in front
    /// whose PROXY header says so.
    pub(super) tls_in_front: bool,
    /// The TLS version and cipher suite of a connection to `tls_port`,
    /// for the log.
    pub(super) tls: Option<crate::http::tls::Agreed>,
    /// The host name its hello asked for (SNI), for the log.
    pub(super) server_name: Option<Arc<str>>,
    /// The certificate the client showed on `tls_port`
    /// (`tls_verify_client`), for its backend and the log.
    pub(super) certificate: Option<Arc<ClientCertificate>>,
    /// The scheme of the request being served, for `X-Forwarded-Proto`.
    pub(super) scheme: &'static str,
    /// connection_timeout: the longest any socket read may wait, and the
    /// cap of the head timeout.
    pub(super) timeout: Duration,
    /// keepalive_timeout: the longest the wait for a next request may be.
    pub(super) idle_timeout: Duration,
    /// The codings the request being served takes, when it is HTTP/1.1
    /// (see `relay::client_accepts`): with `gzip` or `brotli` on, the
    /// proxy's own answers to it may go compressed.
    pub(super) accepts: Accepts,
    /// The request's `Accept-Encoding` takes no gzip, and some pool has
    /// `gunzip` on: a gzip-coded answer goes to it decoded there.
    pub(super) lacks_gzip: bool,
    /// The user `auth_basic` accepted for the request being served, or
    /// its token's subject (`$remote_user`).
    pub(super) user: Option<String>,
    /// The claims of the token `auth_jwt` verified for the request being
    /// served, while a field's value names one (`$jwt_claim_<name>`).
    pub(super) jwt_claims: Option<std::sync::Arc<crate::json_value::Value>>,
    /// For the log: what the rate limits did with the request being
    /// served (`$limit_req_status`); none when none applied.
    pub(super) limit_req: Option<&'static str>,
    /// The request being served was refused by `error_limit`: its answer
    /// counts against the client whatever its status.
    pub(super) error_limited: bool,
    /// Field lines every final response to the request being served
    /// carries: the `response_header.*` whose values hold variables, as
    /// rendered for it, and the cookies its `auth_request` service set.
    /// Empty for most: a buffer kept from request to request.
    pub(super) response_fields: Vec<u8>,
    /// Which of its pool's `response_header.*` apply to the request being
    /// served, as their conditions chose when it was routed.
    pub(super) response_edits: Chosen,
    /// The `response_header.*` whose values name the response's
    /// variables (`$status`, `$upstream_addr`), rendered as far as the
    /// request goes: each final response head finishes them.
    pub(super) pending_fields: Vec<Pending>,
    /// With [`Client::pending_fields`]: the backend last tried for the
    /// request being served (`$upstream_addr`).
    pub(super) upstream: Option<Arc<str>>,
    /// When the head of the request being served had come.
    pub(super) started: Instant,
    /// For the log: the length of the response head sent (`$bytes_sent`
    /// is it and the body's).
    pub(super) head_bytes: u64,
    /// The empty lines the last head read skipped before its request
    /// line, in bytes: not the request's (`$request_length`), as nginx
    /// counts it.
    pub(super) blank_before: u64,
    /// For the log: the status of the last backend's answer to this
    /// request, or the one the proxy gave for its failure (502, 504).
    pub(super) upstream_status: Option<u16>,
    /// For the log: how long the backend that answered this request took
    /// to send its response head once it had the request.
    pub(super) upstream_wait: Option<Duration>,
    /// For the log: how long the last connection to a backend for this
    /// request took to open (zero for a pooled one).
    pub(super) upstream_connect: Option<Duration>,
    /// For the log: how long this request waited for a slot at a target
    /// (`max_conns`), over every target tried; none until one is chosen
    /// or the wait ends it. Unlike the others above, kept from one target
    /// tried to the next: a retry that waits again adds to it.
    pub(super) upstream_queue: Option<Duration>,
    /// For the log: how long the backend's part of the last exchange
    /// took, and what it read.
    pub(super) exchange_tally: Arc<ExchangeTally>,
    /// For the log and response fields: the targets tried for the request
    /// being served before the one tried last (empty for most).
    pub(super) earlier_tries: Vec<UpstreamTry>,
    /// For the log: why and where this request's exchange ended
    /// (`$termination`). The first failure told of it stays (see
    /// [`Client::ended`]); a cell, as the relay sees the client shared.
    termination: Cell<Termination>,
    read_timeout: ReadTimeout,
    /// Connections are accepted once their first bytes have come: the
    /// first read of a new one looks before it yields or waits.
    bytes_on_accept: bool,
    /// The longest a whole request head may take.
    pub(super) header_timeout: Duration,
    /// The longest a pause between two reads of a request body may take.
    pub(super) body_timeout: Duration,
    pub(super) limits: RequestLimits,
    /// The request's pool's max_body_size (`u64::MAX` when unlimited),
    /// set once it is routed.
    pub(super) max_body: u64,
    /// Its pool's `pass_trailers`, set once the request is routed: a
    /// chunked body's trailer fields go on to the backend.
    pub(super) pass_trailers: bool,
    /// How fast the response goes to the client: its pool's `limit_rate`,
    /// set once the request is routed.
    pub(super) pacing: Pacing,
    /// request_buffer_size: bodies up to this are read whole first.
    pub(super) request_buffer: u64,
    /// response_buffer_size: response bodies of a known length up to this
    /// are read whole before the client gets any.
    pub(super) response_buffer: u64,
    /// With `log_headers`: the response head sent, for the log.
    pub(super) sent_head: Option<Vec<u8>>,
    /// With `$upstream_http_<name>` in the log's template: the fields of
    /// the last backend's answer, as it came.
    pub(super) upstream_fields: Option<crate::http::Headers>,
    /// For the log: the body bytes of this request's answer before and
    /// after it was compressed, when it was (`$gzip_ratio`). A cell, as
    /// the relay sees the client shared.
    gzip_sizes: Cell<Option<(u64, u64)>>,
    /// With `request_id_header`: the field's name and this request's ID.
    pub(super) request_id: Option<(Arc<str>, String)>,
    /// With `trace_context`: this request's place in a trace.
    pub(super) trace: Option<crate::trace_context::TraceContext>,
    /// This request's body (if any) was read to its end before it went to
    /// a backend: nothing of the request is left on the connection.
    pub(super) body_read_whole: bool,
    /// For the log, with `$request_body` in its template: this request's
    /// body, read whole before it went.
    pub(super) request_body: Option<Box<[u8]>>,
    /// With `sticky_cookie`: the cookie, and the target it named in this
    /// request, if it did.
    pub(super) sticky: Option<Sticky>,
    /// The connection's serial number, and the requests it has carried,
    /// the one being served included (`$connection`,
    /// `$connection_requests`).
    pub(super) connection: (u64, u64),
    /// The route this request took (its index in the generation's
    /// `routes`); `None`: it goes to `targets`.
    pub(super) route: Option<usize>,
    /// The request-target as the client sent it, when a `rewrite.<name>`
    /// rule put another in the head: what names the client's own URL
    /// (`$request_uri`, the HTTPS redirect's `Location`), as nginx's
    /// `$request_uri` stays the client's after its `rewrite`.
    pub(super) sent_target: Option<String>,
    /// The path and query that rule made: the log's `$uri` and `$args`,
    /// as nginx's are the new ones.
    pub(super) made_target: Option<String>,
    /// The pool this request was routed to (its index in the
    /// generation's pools); none until it is, and for a route that
    /// answers itself. Counted, and logged, under it.
    pub(super) pool: Option<usize>,
    /// With `balance = hash`: the value `hash_on` names in this request,
    /// as the client sent it (empty: none). Kept here, not read from the
    /// head each time, so that the cache's own requests for it (which
    /// lose fields such as `Cache-Control`, as the request the backend
    /// gets loses the sticky cookie) go where the request itself would.
    /// A buffer reused from request to request: no allocation per request.
    pub(super) hash_value: Vec<u8>,
    /// The credentials `auth_basic` last accepted on this connection.
    pub(super) granted: crate::auth::Granted,
    /// Enough client connections are open for workers to yield before
    /// blocking (see [`crate::sched::fill_yielding`]); taken once per request.
    pub(super) crowded: bool,
    /// This request is the last keepalive_requests allows on the
    /// connection: its response says Connection: close.
    pub(super) last_request: bool,
    pub(super) watch: Arc<ConnWatch>,
    /// A cache entry to revalidate once this request's response is out
    /// and logged (stale-while-revalidate).
    pub(super) after_response: Option<cached::Refresh>,
    /// When a route serves files: what of this request a file its
    /// backend names in `X-Accel-Redirect` is served for (see
    /// [`super::files::accel_request`]).
    pub(super) accel: Option<RequestHead>,
    /// The connections this client connection keeps to `send_proxy`
    /// targets between its requests: their PROXY headers named it.
    pub(super) kept_backend: KeptConns,
}

/// The receive timeout a client socket has. Each read that may wait sets
/// what it needs, and nothing is put back after it: the system call is
/// made only when a read wants another than the last one.
struct ReadTimeout(Duration);

impl ReadTimeout {
    fn set(&mut self, stream: &ClientStream, wanted: Duration) {
        if self.0 != wanted && stream.set_read_timeout(Some(wanted)).is_ok() {
            self.0 = wanted;
        }
    }
}

impl Client {
    /// What a condition (a route's, a deny rule's, a header edit's) reads
    /// of the request `head` from this client, whose request-target is
    /// `target`, under the settings of `shared` (`geoip_database`, if a
    /// condition asks the country).
    pub(in crate::proxy) fn asked<'a>(
        &'a self,
        head: &'a RequestHead,
        target: &'a str,
        shared: &'a Shared,
    ) -> Asked<'a> {
        Asked {
            method: &head.method,
            target,
            headers: &head.headers,
            client: self.real_ip,
            listener: self.server,
            https: self.scheme == "https",
            geoip: self.geoip(shared),
        }
    }

    /// Where the request's conditions, values and log line read its
    /// client's country from.
    pub(in crate::proxy) fn geoip<'a>(&'a self, shared: &'a Shared) -> Geo<'a> {
        Geo::kept_in(shared.config.geoip.as_deref(), &self.country)
    }

    /// Takes `real_ip` as the request's client (see [`crate::realip`]).
    pub(super) fn set_real_ip(&mut self, real_ip: IpAddr) {
        self.real_ip = real_ip;
        self.country.forget();
    }

    /// A connection just accepted from `peer`, its socket watched by
    /// `watch`, with what it `inherited` from the listener (its timeouts
    /// become its idle and read timeout).
    ///
    /// On the heap, as its connection's loop holds it while waiting for
    /// the next request: a page less of stack stays with an idle
    /// connection (see [`crate::thread_stack`]).
    #[inline(never)]
    pub(super) fn new(
        watch: Arc<ConnWatch>,
        peer: SocketAddr,
        inherited: Inherited,
    ) -> Box<Client> {
        let timeout = inherited.timeout;
        Box::new(Client {
            conn: BufConn::new(SharedStream(watch.client().clone()), CLIENT_BUFFER),
            // A dual-stack listener (bind = ::) sees IPv4 clients as
            // ::ffff:a.b.c.d; they are logged, hashed and forwarded as a.b.c.d.
            peer: peer.ip().to_canonical(),
            peer_port: peer.port(),
            proxied_to: None,
            proxy_tlvs: None,
            server: inherited.addr,
            real_ip: peer.ip().to_canonical(),
            country: KeptCountry::default(),
            tls_in_front: watch.client().tls().is_some(),
            tls: watch.client().tls().map(TlsStream::agreed),
            server_name: watch.client().tls().and_then(TlsStream::server_name),
            certificate: (watch.client().tls())
                .and_then(|tls| ClientCertificate::of(&tls.client_certificates()))
                .map(Arc::new),
            scheme: scheme_of(watch.client().tls().is_some()),
            accepts: Accepts::default(),
            lacks_gzip: false,
            user: None,
            jwt_claims: None,
            limit_req: None,
            error_limited: false,
            response_fields: Vec::new(),
            response_edits: Chosen::UNCONDITIONAL,
            pending_fields: Vec::new(),
            upstream: None,
            started: Instant::now(),
            timeout,
            idle_timeout: timeout,
            head_bytes: 0,
            blank_before: 0,
            upstream_status: None,
            upstream_wait: None,
            upstream_connect: None,
            upstream_queue: None,
            exchange_tally: Arc::default(),
            earlier_tries: Vec::new(),
            termination: Cell::new(Termination::NORMAL),
            read_timeout: ReadTimeout(inherited.read_timeout),
            bytes_on_accept: inherited.deferred,
            header_timeout: timeout,
            body_timeout: timeout,
            limits: RequestLimits::default(),
            max_body: u64::MAX,
            pass_trailers: false,
            pacing: Pacing::OFF,
            request_buffer: 0,
            response_buffer: 0,
            sent_head: None,
            upstream_fields: None,
            gzip_sizes: Cell::new(None),
            request_id: None,
            trace: None,
            body_read_whole: false,
            request_body: None,
            sticky: None,
            connection: (0, 0),
            route: None,
            sent_target: None,
            made_target: None,
            pool: None,
            hash_value: Vec::new(),
            granted: Default::default(),
            crowded: false,
            last_request: false,
            watch,
            after_response: None,
            accel: None,
            kept_backend: KeptConns::default(),
        })
    }

    /// What a FastCGI server is told of this client's request:
    /// `REMOTE_ADDR` is the client the log names (a trusted proxy's word
    /// taken, as nginx's `$remote_addr` after `real_ip`; its port then
    /// unknown, and not sent).
    pub(super) fn fastcgi_exchange(&self) -> crate::fastcgi::Exchange {
        let port = match self.real_ip == self.peer {
            true => self.peer_port,
            false => 0,
        };
        crate::fastcgi::Exchange {
            client: SocketAddr::new(self.real_ip, port),
            server: self.server,
            https: self.scheme == "https",
        }
    }

    /// Whom a connection to a backend is made for: the two ends of this
    /// connection as a PROXY header names them (the client a PROXY header
    /// in front named, not the one `real_ip_from` takes from a field: a
    /// kept connection serves the next request too), and where those to
    /// `send_proxy` targets are kept.
    pub(super) fn for_backend(&self) -> ForClient<'_> {
        ForClient {
            ends: ClientEnds {
                source: SocketAddr::new(self.peer, self.peer_port),
                destination: self.proxied_to.unwrap_or(self.server),
                tls: (self.tls_in_front).then(|| ClientTls {
                    agreed: self.tls,
                    server_name: self.server_name.clone(),
                }),
            },
            kept: Some(&self.kept_backend),
        }
    }

    /// Forgets what the last request's fields said of the client (its
    /// address and scheme behind a trusted proxy): a request refused
    /// before its fields are read is the connection's own.
    pub(super) fn forget_forwarded(&mut self) {
        self.set_real_ip(self.peer);
        self.scheme = scheme_of(self.tls_in_front);
    }

    /// Gives the socket's reads `timeout` (see [`ReadTimeout`]).
    pub(super) fn time_reads_out_after(&mut self, timeout: Duration) {
        self.read_timeout.set(self.conn.get_ref(), timeout);
    }

    /// Takes the request limits of the settings in force.
    pub(super) fn apply_limits(&mut self, config: &Config) {
        // The head must arrive within client_header_timeout, and no read
        // may stall longer than connection_timeout: the smaller one bounds
        // the whole head.
        self.header_timeout = config.client_header_timeout.min(self.timeout);
        self.body_timeout = config.client_body_timeout;
        self.limits = RequestLimits {
            max_head_size: config.max_header_size,
            max_headers: config.max_headers,
            max_uri_length: config.max_uri_length,
        };
        self.request_buffer = config.request_buffer_size;
        self.response_buffer = config.response_buffer_size;
    }

    /// Lets go of what the log would say of a backend's answer: before
    /// each target tried (and, with the rest, in [`Client::forget_backend`]).
    pub(super) fn forget_upstream_answer(&mut self) {
        self.upstream_status = None;
        self.upstream_wait = None;
        self.upstream_connect = None;
        self.upstream_fields = None;
        self.exchange_tally.take();
    }

    /// Keeps what the log says of the target last tried, `upstream`, as
    /// an earlier one's: another is about to be tried.
    pub(super) fn tried_before(&mut self, upstream: Arc<str>) {
        let tried = self.take_last_try(Some(upstream));
        self.earlier_tries.push(tried);
    }

    /// What the log says of the target last tried, `upstream`: for an
    /// earlier one's entry or for the log line. Takes the exchange's
    /// tally, so that the next target or request starts without one.
    pub(super) fn take_last_try(&self, upstream: Option<Arc<str>>) -> UpstreamTry {
        let tally = self.exchange_tally.take();
        UpstreamTry {
            upstream,
            status: self.upstream_status,
            connect: self.upstream_connect,
            wait: self.upstream_wait,
            response: tally.time,
            bytes_received: tally.received,
            response_length: tally.body,
            bytes_sent: tally.sent,
        }
    }

    /// Counts an answer that went compressed with `coding`, `bytes_in` of
    /// body made `bytes_out`: in the metrics, and for this request's log
    /// line.
    pub(super) fn count_compressed(
        &self,
        (metrics, coding): (&Metrics, Coding),
        bytes_in: u64,
        bytes_out: u64,
    ) {
        metrics.compressed(coding).count(bytes_in, bytes_out);
        self.gzip_sizes.set(Some((bytes_in, bytes_out)));
    }

    /// What [`Client::count_compressed`] said of this request, taken.
    pub(super) fn take_gzip_sizes(&self) -> Option<(u64, u64)> {
        self.gzip_sizes.take()
    }

    /// Lets go of every trace of a backend in what the log would say: its
    /// answer, its address and the wait for its slot. Before each request,
    /// and after an exchange that is not the request's (`auth_request`'s);
    /// a target tried after another keeps the address and the wait.
    pub(super) fn forget_backend(&mut self) {
        self.forget_upstream_answer();
        self.upstream = None;
        self.upstream_queue = None;
        self.earlier_tries.clear();
    }

    /// Adds `waited` to the time the request being served spent waiting
    /// for a slot (`$upstream_queue_time`): zero makes it known that it
    /// went to a target, and did not wait for it.
    pub(super) fn waited_in_queue(&mut self, waited: Duration) {
        self.upstream_queue = Some(self.upstream_queue.unwrap_or_default() + waited);
    }

    /// The value `hash_on` names in the request being served, if it had
    /// one (see [`Client::hash_value`]).
    pub(super) fn hash_key(&self) -> Option<&[u8]> {
        (!self.hash_value.is_empty()).then_some(&self.hash_value[..])
    }

    /// Whether the connection may stay open after this request's
    /// response: the client wants it and keepalive_requests allows it. A
    /// shutdown is checked where each response is written (relay, cache,
    /// the proxy's own errors), as it may begin while the request runs.
    pub(super) fn keeps_alive(&self, head: &RequestHead) -> bool {
        head.wants_keep_alive() && !self.last_request
    }
}

/// The scheme of a connection's requests, before a trusted proxy says
/// otherwise.
fn scheme_of(over_tls: bool) -> &'static str {
    if over_tls {
        "https"
    } else {
        "http"
    }
}
