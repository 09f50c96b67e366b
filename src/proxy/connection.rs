//! One client connection's loop ([`serve`]): a request after another,
//! each on the settings in force when it begins, logged once answered.

use super::client::{linger, Client, HeadRead};
use super::exchange::{error_limit_of, exchange};
use super::log_line::LogLine;
use super::own_answer::refused_head;
use super::{cached, first_line, starts_a_head_request, ConnWatch, Current, Inherited};
use super::{Outcome, Shared};
use crate::access_log::{By, Heads, Record, Stage, Termination};
use crate::gzip::Accepts;
use crate::http::conn::{tcp_info, Socket as _};
use crate::http::edits::Chosen;
use crate::http::proxy_protocol;
use crate::pace::Pacing;
use crate::request_id;
use crate::routes::CLOSE_UNANSWERED;
use crate::sched;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Serves one client connection until it closes, times out, or the server
/// shuts down. `watch` says when the connection waits for a request, so
/// shutdown can close exactly the connections that are not mid-request,
/// and which backend socket a request uses, so a forced close ends it.
///
/// The socket arrives with TCP_NODELAY and the timeouts of `inherited`
/// (Linux copies them from the listener), so nothing is set here unless the
/// configuration says otherwise.
///
/// `claim` counts the connection against the client a PROXY header names,
/// or says that client holds the most it may already. The peer comes with
/// the connection's serial number, for the log (`$connection`), and the
/// time it was accepted, from which its first head is due.
pub fn serve(
    watch: Arc<ConnWatch>,
    (peer, connection, accepted): (SocketAddr, u64, Instant),
    proxied: Option<proxy_protocol::Header>,
    current: &Current,
    inherited: Inherited,
    claim: &mut dyn FnMut(IpAddr, usize) -> bool,
) {
    let mut seen = current.generation();
    let mut shared = current.get();
    let mut timeout = inherited.timeout;
    let mut client = Client::new(watch, peer, inherited);
    if shared.config.proxy_protocol {
        match proxied {
            // Over TLS the header came before the handshake, read and
            // counted with it.
            Some(header) => client.take_header(header),
            // None over TLS: `proxy_protocol` was turned on since.
            None if client.tls_in_front => {}
            None if !client.take_proxy_header(accepted, &shared.config) => return,
            // Over max_connections_per_client for the client the header
            // named: refused at once, as at accept, so that its slot and
            // its thread are free again.
            None if !claim(client.peer, shared.config.max_connections_per_client) => {
                refuse(&mut client, &shared);
                return;
            }
            None => {}
        }
    }
    let mut first = true;
    let mut served: u64 = 0;
    loop {
        // Reload: each request runs on the settings in force when it
        // begins; those in flight finish on theirs. Taken here for the wait
        // for the next head (its timeouts and limits), and again once it
        // has come.
        current.refresh(&mut shared, &mut seen);
        take_settings(&mut client, &shared, seen, &mut timeout);
        served += 1;
        client.connection = (connection, served);
        client.forget_forwarded();
        client.user = None;
        client.jwt_claims = None;
        client.limit_req = None;
        client.error_limited = false;
        client.accepts = Accepts::default();
        client.lacks_gzip = false;
        client.sent_target = None;
        client.made_target = None;
        // Not the last request's: one refused before it is routed took
        // none, and is answered under the top level's settings.
        client.route = None;
        client.response_fields.clear();
        client.response_edits = Chosen::UNCONDITIONAL;
        client.pending_fields.clear();
        client.forget_backend();
        client.begin_anew();
        client.take_gzip_sizes();
        client.request_body = None;
        client.trace = None;
        client.head_bytes = 0;
        client.pacing = Pacing::OFF;
        client.watch.set_idle();
        if shared.shutting_down.load(Ordering::SeqCst) && client.conn.buffered().is_empty() {
            break;
        }
        // A new connection's first head is due client_header_timeout after
        // the connection opened: connecting and saying nothing ties up a
        // thread as surely as trickling bytes. Between requests the idle
        // timeout applies until the next head starts.
        let taken_before = client.conn.taken();
        // nginx's `$pipe`: the request came before the answer to the one
        // ahead of it had gone.
        let pipelined = !first && !client.conn.buffered().is_empty();
        let head = client.read_head(first.then_some(accepted));
        first = false;
        // Closed by shutdown as idle while the head came: not served, as
        // the client was already told by the close.
        if matches!(head, HeadRead::Ready(_) | HeadRead::Refused(..))
            && !client.watch.begin_request()
        {
            break;
        }
        let waited = Waited {
            head,
            taken_before,
            pipelined,
            accepted,
            connection: (connection, served),
        };
        if !answer(
            &mut client,
            waited,
            current,
            (&mut shared, &mut seen, &mut timeout),
        ) {
            break;
        }
        client.conn.release_if_empty();
    }
}

/// A request's head as its wait for it ended, with what the wait saw.
struct Waited {
    head: HeadRead,
    /// What the connection had taken before this request's bytes.
    taken_before: u64,
    /// nginx's `$pipe`.
    pipelined: bool,
    accepted: Instant,
    /// The connection's number, and this request's on it.
    connection: (u64, u64),
}

/// Answers the request whose head `waited` says came, and logs it:
/// whether the connection is kept for another. Out of line, so that the
/// frames it needs (the exchange, the log's record) are not part of the
/// loop's, which waits for a connection's next request: only the pages
/// of that wait stay with an idle connection (see `read_head`).
#[inline(never)]
fn answer(
    client: &mut Client,
    waited: Waited,
    current: &Current,
    (shared, seen, timeout): (&mut Arc<Shared>, &mut u64, &mut Duration),
) -> bool {
    let Waited {
        head,
        taken_before,
        pipelined,
        accepted,
        connection: (connection, served),
    } = waited;
    let generation = *seen;
    current.refresh(shared, seen);
    if *seen != generation {
        take_settings(client, shared, *seen, timeout);
    }
    let limit = shared.config.keepalive_requests;
    client.last_request = limit != 0 && served >= limit;
    // Every request gets its own, given before its head is parsed: one
    // refused as malformed has one too, in its answer and its log line.
    client.request_id = shared
        .config
        .request_id_header
        .clone()
        .map(|name| (name, request_id::generate()));
    let time = SystemTime::now();
    client.started = Instant::now();
    // A head refused as it is (no Host) was read whole all the same,
    // if not taken.
    let head_len = match head {
        HeadRead::Ready(len) => Some(len as u64),
        _ => None,
    };
    let (mut outcome, line) = match head {
        HeadRead::Ready(len) => {
            let done = exchange(client, len, shared);
            client.watch.backend_done();
            done
        }
        HeadRead::Closed => return false,
        HeadRead::Abandoned(request_line) => {
            client.ended(Termination::new(By::Client, Stage::Request));
            let outcome = Outcome {
                linger: false,
                ..Outcome::closing(400, 0)
            };
            (outcome, LogLine::raw(request_line))
        }
        HeadRead::Refused(status, request_line) => {
            client.ended(refused_head(status));
            let bytes = client.refuse_unparsed(status, &shared.config);
            (Outcome::closing(status, bytes), LogLine::raw(request_line))
        }
    };
    let duration = client.started.elapsed();
    shared.metrics.observe(outcome.status, duration);
    // Logged 499: the client left before its answer began, whoever
    // saw it go.
    if outcome.status == 499 {
        client.ended(Termination::new(By::Client, Stage::Head));
    }
    let timing = Timing {
        time,
        duration,
        head_len,
        taken_before,
        pipelined,
        accepted,
        connection: (connection, served),
    };
    count_and_log(client, shared, &mut outcome, line, timing);
    // Idle as far as shutdown is concerned, before the flag is read: a
    // shutdown then either is seen here or ends the revalidation, never
    // waits for it. Not begun during a shutdown: no client waits for it.
    if let Some(job) = client.after_response.take() {
        client.watch.set_idle();
        if !shared.shutting_down.load(Ordering::SeqCst) {
            cached::refresh(client, job, shared);
            client.watch.backend_done();
        }
    }
    let shutting_down = shared.shutting_down.load(Ordering::SeqCst);
    if !outcome.keep_alive || client.last_request || shutting_down {
        // During a shutdown too when input is left unread: closing on it
        // would send a reset that can destroy the response still on its
        // way (a pipelined request, an upload cut short). Bounded. But
        // for a first request dropped (`return 444`): nothing was sent
        // that a reset could destroy, and the client gets no more time.
        let dropped = outcome.status == CLOSE_UNANSWERED && served == 1;
        if !dropped && (client.has_unread_input() || (outcome.linger && !shutting_down)) {
            linger(client.conn.get_ref());
        }
        return false;
    }
    true
}

/// When an answer began and how long it took, and where its request
/// stood on the connection: what the log says besides the exchange's own.
struct Timing {
    time: SystemTime,
    duration: Duration,
    /// The request head's length, when it was read whole.
    head_len: Option<u64>,
    taken_before: u64,
    pipelined: bool,
    accepted: Instant,
    connection: (u64, u64),
}

/// Counts the answer under the pool that gave it, and logs it unless
/// `log_skip_paths` or `log_skip_statuses` leave it out.
fn count_and_log(
    client: &mut Client,
    shared: &Shared,
    outcome: &mut Outcome,
    line: LogLine,
    timing: Timing,
) {
    if let Some(errors) = error_limit_of(client, shared) {
        let refused = client.error_limited;
        errors.note(client.real_ip, outcome.status, refused, Instant::now());
    }
    // Counted under the pool whoever answered (one relaxed add, as
    // `observe`); its name, a shared count to touch, only for a log
    // that writes it.
    let pool = client.pool.take().map(|i| shared.pools.get(i));
    if let Some(pool) = pool {
        pool.stats().answers.count(outcome.status);
    }
    let pool = pool
        .filter(|_| shared.log_captures.pool())
        .map(|pool| pool.shared_name().clone());
    let sent_head = client.sent_head.take();
    // `log_skip_paths`, `log_skip_statuses`: counted above all the same.
    if shared.config.log_skips(line.quiet_path, outcome.status) {
        return;
    }
    // `log_headers` (combined, JSON) writes every field, a
    // template its `$sent_http_<name>` (never both: refused).
    let (heads, response_head) = match shared.config.log_headers {
        true => (
            sent_head.map(|sent| {
                Box::new(Heads {
                    request: line.headers.unwrap_or_default(),
                    response: Heads::fields_of(&sent),
                })
            }),
            None,
        ),
        false => (None, sent_head),
    };
    let record = Record {
        time: timing.time,
        client: client.real_ip,
        peer: Some(SocketAddr::new(client.peer, client.peer_port)),
        proxied_to: client.proxied_to,
        proxy_tlvs: client.proxy_tlvs.clone(),
        server: Some(client.server),
        remote_user: line.remote_user,
        jwt_claims: line.jwt_claims,
        request_line: line.request_line,
        made_target: client.made_target.take(),
        status: outcome.status,
        bytes: outcome.bytes,
        referer: line.referer,
        user_agent: line.user_agent,
        cache: outcome.cache,
        duration: timing.duration,
        connection: Some(timing.connection),
        // A client gone before anything reached it got no head.
        head_bytes: if outcome.status == 499 {
            0
        } else {
            client.head_bytes
        },
        request_length: Some(
            (client.conn.taken() - timing.taken_before)
                .saturating_sub(client.blank_before)
                .max(timing.head_len.unwrap_or_default()),
        ),
        upstream_queue: client.upstream_queue,
        last_try: client.take_last_try(outcome.upstream.take()),
        earlier_tries: std::mem::take(&mut client.earlier_tries),
        route_host: (client.route)
            .and_then(|i| shared.config.routes.get(i))
            .and_then(|route| route.server_name().cloned()),
        gzip_sizes: client.take_gzip_sizes(),
        request_body: client.request_body.take(),
        tcp_info: (shared.log_captures.tcp_info())
            .then(|| tcp_info(client.conn.get_ref().0.tcp()))
            .flatten(),
        // From clocks read already: to the head, then the answer.
        connection_time: Some(
            client.started.saturating_duration_since(timing.accepted) + timing.duration,
        ),
        pipelined: timing.pipelined,
        termination: client.termination(),
        limit_req: client.limit_req,
        pool,
        show_pool: !shared.config.pools.is_empty(),
        request_id: client.request_id.as_ref().map(|(_, id)| id.clone()),
        trace: client.trace,
        heads,
        fields: line.fields,
        response_head,
        upstream_fields: client.upstream_fields.take(),
        scheme: client.scheme,
        tls: client.tls,
        server_name: client.server_name.clone(),
        offered_protocols: None,
        // Looked up here, under the settings the request ran with, and
        // only for a template that writes it.
        country: (shared.log_captures.country())
            .then(|| client.geoip(shared).country(client.real_ip))
            .flatten(),
        client_certificate: client.certificate.clone(),
    };
    if let Some(otel) = &shared.otel {
        otel.export(&record);
    }
    shared.log.log(record);
}

/// Applies the settings of `shared` (generation `seen`) to the connection.
fn take_settings(client: &mut Client, shared: &Shared, seen: u64, timeout: &mut Duration) {
    if shared.config.connection_timeout != *timeout {
        *timeout = shared.config.connection_timeout;
        client.timeout = *timeout;
        let _ = client.conn.get_ref().set_write_timeout(Some(*timeout));
    }
    // The generation too, whether or not the timeout changed: a close a
    // reload asked for is of the waits begun before it (see
    // `server::reload::close_idle_when_due`), and a wait begun after a later
    // reload gave back the old timeout is not one of them.
    let idle = shared.config.effective_keepalive_timeout();
    client.idle_timeout = idle;
    client.watch.set_idle_timeout(idle, seen);
    client.sent_head = shared.log_captures.response_head().then(Vec::new);
    client.crowded = sched::crowded(shared.metrics.connections.load(Ordering::Relaxed));
    client.apply_limits(&shared.config);
}

/// Answers 503 to a connection over a limit without waiting for its
/// request (what has arrived of it names it in the log), and closes it.
#[inline(never)]
fn refuse(client: &mut Client, shared: &Shared) {
    let (time, started) = (SystemTime::now(), Instant::now());
    // Read what the client already sent, so closing does not reset the
    // connection before it sees the answer.
    let _ = client.conn.fill_now();
    let request_line = first_line(client.conn.buffered());
    let head_request = starts_a_head_request(client.conn.buffered());
    let bytes = client.send_error_to(503, true, head_request, shared);
    let _ = client.conn.get_ref().shutdown(Shutdown::Write);
    let duration = started.elapsed();
    let mut record = Record::refused(
        time,
        SocketAddr::new(client.peer, client.peer_port),
        client.server,
        request_line,
        bytes,
        duration,
    );
    record.head_bytes = client.head_bytes;
    shared.log_refusal(record);
}
