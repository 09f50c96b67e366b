//! The admin listener: `GET /metrics` (Prometheus text format),
//! `GET /status` (JSON), `GET /healthz`, `PURGE /path?query` (or `/prefix*`,
//! or `/` with `Surrogate-Key`: by tag, or with `Purge-Regex`: by pattern;
//! soft with `Soft-Purge: 1`), `DELETE /cache`,
//! `GET /cache` and `GET /cache/entries` (what the cache holds), and `GET`/`PUT /targets/<name>` (a target's state:
//! `ready`, `drain`, `maint`). Off unless `admin_port` is set; bound to
//! `admin_bind` (loopback by default) because it can empty the cache and
//! take targets out of rotation.
//!
//! Admin traffic is a scrape every few seconds and an occasional purge: a
//! thread per connection, one request per connection, `Connection: close`.

use crate::auth;
use crate::cache::store::unix_ms;
use crate::cache::{policy, Entry, Listed, Listing, Named, Purge};
use crate::config::{escape_controls, Config};
use crate::http::body::BodyKind;
use crate::http::conn::is_timeout;
use crate::http::date::format_http_date;
use crate::http::head::{
    find_head_end, parse_request, push_canonical_authority, reason_phrase, split_absolute,
    RequestLimits,
};
use crate::http::{BufConn, RequestHead, Version};
use crate::json;
use crate::metrics::{DURATION_BUCKETS, STATUS_CLASSES};
use crate::proxy::{starts_a_head_request, Current, Shared};
use crate::throttle::OnceAMinute;
use crate::upstream::admin_state::AdminState;
use crate::upstream::pools::Pools;
use crate::upstream::{state_file, Upstream};
use parking_lot::Mutex;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Admin connections served at once; more are closed unanswered.
const MAX_ADMIN_CONNECTIONS: usize = 32;
/// The longest an admin request head may take to arrive, however it
/// trickles in (else a few slow clients could hold every slot), and its
/// reply to leave.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The same for a request answered on the listener's own thread (when no
/// other can be started): short, so that a client that says nothing
/// does not hold up the health checks behind it.
const INLINE_ADMIN_TIMEOUT: Duration = Duration::from_millis(250);
/// Largest admin request head.
const MAX_ADMIN_HEAD: usize = 16 * 1024;
/// Entries `/cache/entries` lists without `limit=`, and the most it takes:
/// a listing is built whole in memory before it is sent.
const DEFAULT_LISTING_LIMIT: usize = 100;
const MAX_LISTING_LIMIT: usize = 10_000;
/// Largest admin request body read: a target's new state is one word.
const MAX_ADMIN_BODY: u64 = 1024;
/// The request fields that make a purge soft (`1`) or hard (`0`): ours,
/// and Fastly's, so that what a script sends to purge a URL on Fastly
/// (`Fastly-Soft-Purge: 1`) does the same here rather than a hard purge.
const SOFT_PURGE_FIELDS: [&str; 2] = ["soft-purge", "fastly-soft-purge"];

/// The running admin listener.
pub struct Admin {
    addr: SocketAddr,
    /// The listening socket itself (the thread accepts on a clone), to
    /// wake that thread from `accept` when stopping.
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    gate: Arc<Gate>,
}

impl Admin {
    pub fn start(listener: TcpListener, current: Arc<Current>) -> io::Result<Admin> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(Gate::default());
        let thread = {
            let (stop, gate) = (stop.clone(), gate.clone());
            let listener = listener.try_clone()?;
            std::thread::Builder::new()
                .name("admin".into())
                .spawn(move || accept_loop(listener, current, &stop, &gate))?
        };
        log::info!("admin listener on {addr}");
        Ok(Admin {
            addr,
            listener,
            stop,
            thread: Some(thread),
            gate,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting admin connections, and answering requests on those
    /// open (503): once this returns, no admin request changes the cache,
    /// so that a purge answered 200 is in the final snapshot taken then.
    pub fn finish(mut self) {
        self.stop_now();
        self.gate.close();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // A blocked `accept` returns (EINVAL) and sees the flag. Not by
        // connecting to the port: under `reuse_port` another process's
        // listener may take that connection.
        let _ = socket2::SockRef::from(&self.listener).shutdown(Shutdown::Read);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The admin requests being answered, and whether more may be.
#[derive(Default)]
struct Gate {
    closed: AtomicBool,
    answering: AtomicUsize,
}

impl Gate {
    /// Lets a request be answered while the guard lives, unless closed.
    /// As `close` stores before it loads, and this adds before it loads,
    /// one of the two sees the other (the orders are sequentially
    /// consistent): a request is refused, or waited for.
    fn enter(&self) -> Option<Answering<'_>> {
        self.answering.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.answering.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Answering(self))
    }

    /// Refuses requests from now on, and waits for those let in (whose
    /// bodies were read before: what is left is work in memory, or a
    /// state file written) for at most `ADMIN_TIMEOUT`.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + ADMIN_TIMEOUT;
        while self.answering.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

struct Answering<'a>(&'a Gate);

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.answering.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn accept_loop(listener: TcpListener, current: Arc<Current>, stop: &AtomicBool, gate: &Arc<Gate>) {
    let busy = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                static FAILING: OnceAMinute = OnceAMinute::new();
                if FAILING.due() {
                    log::warn!("admin: accept failed: {e} (said at most once a minute)");
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Some(counted) = Counted::take(&busy) else {
            continue;
        };
        // Kept here too, to be answered on this thread if no other can be
        // started: the health check and the metrics matter most when the
        // process is at its thread limit.
        let held = Arc::new(Mutex::new(Some(stream)));
        let spawned = std::thread::Builder::new()
            .name("admin-conn".into())
            .spawn({
                let (held, current) = (held.clone(), current.clone());
                let gate = gate.clone();
                move || {
                    let _counted = counted;
                    if let Some(stream) = held.lock().take() {
                        handle(stream, &current, &gate, ADMIN_TIMEOUT);
                    }
                }
            });
        if let Err(e) = spawned {
            static FAILING: OnceAMinute = OnceAMinute::new();
            if FAILING.due() {
                log::warn!(
                    "admin: cannot start a thread: {e}; answering on the listener's own \
                     (said at most once a minute)"
                );
            }
            // (Its count went with the thread's closure: this thread
            // accepts no other connection meanwhile.)
            if let Some(stream) = held.lock().take() {
                handle(stream, &current, gate, INLINE_ADMIN_TIMEOUT);
            }
        }
    }
}

/// One admin connection counted among [`MAX_ADMIN_CONNECTIONS`] until it
/// is dropped, however its handling ended: a panic in it would otherwise
/// keep its place taken for good.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn take(busy: &Arc<AtomicUsize>) -> Option<Counted> {
        let taken = busy.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < MAX_ADMIN_CONNECTIONS).then_some(n + 1)
        });
        taken.ok().map(|_| Counted(busy.clone()))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An admin response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// For 405: the methods the path allows.
    pub allow: Option<&'static str>,
    /// For 401: ask for a user and password (`admin_auth_basic_user_file`).
    pub challenge: bool,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            allow: None,
            challenge: false,
        }
    }

    fn json(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body,
            allow: None,
            challenge: false,
        }
    }

    fn not_allowed(allow: &'static str) -> Reply {
        Reply {
            allow: Some(allow),
            ..Reply::text(405, "405 Method Not Allowed\n")
        }
    }
}

/// Answers one admin request, which must arrive (and its answer leave)
/// within `timeout`, with the configuration in force once it has arrived:
/// one taken at the accept could be one a reload has since replaced (a
/// `PUT` would then set and save the states of targets no longer in force).
fn handle(stream: TcpStream, current: &Current, gate: &Gate, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    // For a `100 Continue`; the reply has its own deadline.
    let _ = stream.set_write_timeout(Some(timeout));
    let mut conn = BufConn::new(stream, 4096);
    let (reply, is_head) = match read_head(&mut conn, deadline) {
        Ok(Some(head)) => {
            // Before the body is read (or a `100 Continue` sent for it).
            let reply = match refuse_unsigned(&head, &current.get().config) {
                Some(refusal) => refusal,
                None => match read_body(&mut conn, &head, deadline) {
                    Ok(Some(body)) => match gate.enter() {
                        Some(_answering) => {
                            // A target's state is set on the generation in
                            // force, which a reload or a re-resolution must
                            // not be replacing meanwhile.
                            let _installing = (head.method == "PUT").then(|| current.installing());
                            route(&head, &body, &current.get())
                        }
                        None => Reply::text(503, "503 Service Unavailable: shutting down\n"),
                    },
                    Ok(None) => return,
                    Err(reply) => reply,
                },
            };
            (reply, head.is_head())
        }
        Ok(None) => return,
        // A HEAD refused unparsed gets the head alone too (RFC 9110 §9.3.2).
        Err(reply) => (reply, starts_a_head_request(conn.buffered())),
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        reply.status,
        reason_phrase(reply.status),
        format_http_date(SystemTime::now()),
        reply.content_type,
        reply.body.len()
    );
    if let Some(allow) = reply.allow {
        let _ = write!(out, "Allow: {allow}\r\n");
    }
    if reply.challenge {
        out.push_str(&auth::challenge(ADMIN_REALM));
    }
    out.push_str("\r\n");
    if !is_head {
        out.push_str(&reply.body);
    }
    write_within(conn.get_mut(), out.as_bytes(), timeout);
}

/// Writes `bytes` whole unless `within` passes first: each write waiting
/// at most what is left of it, a client that reads a few bytes at a time
/// cannot hold a slot (or, answered inline, the listener) for longer.
fn write_within(stream: &mut TcpStream, mut bytes: &[u8], within: Duration) {
    let deadline = Instant::now() + within;
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_write_timeout(Some(left)).is_err() {
            return;
        }
        match stream.write(bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The realm the admin listener asks a user and password for.
const ADMIN_REALM: &str = "inverso admin";

/// With `admin_auth_basic_user_file`: the 401 for a request without a
/// user and password of the file. `GET /healthz` passes without: it says
/// nothing but whether the proxy serves, and the probes that ask for it
/// (a load balancer's, an orchestrator's) seldom can sign in.
fn refuse_unsigned(head: &RequestHead, config: &Config) -> Option<Reply> {
    let users = config.admin_auth_users.as_ref()?;
    let target = head.path_and_query();
    let path = target.split('?').next().unwrap_or("");
    if path == "/healthz" && matches!(head.method.as_str(), "GET" | "HEAD") {
        return None;
    }
    // Each admin request comes on a connection of its own: nothing to
    // remember between them.
    let refused = auth::check(users, &head.headers, &mut auth::Granted::default()).err()?;
    // Wrong credentials may be a guesser at work; said at most once a
    // minute, as a flood of them would drown the log.
    static WRONG: OnceAMinute = OnceAMinute::new();
    if refused == auth::Refused::Wrong && WRONG.due() {
        log::warn!(
            "admin: {} {path}: a user or password not in admin_auth_basic_user_file \
             (said at most once a minute)",
            head.method
        );
    }
    Some(Reply {
        challenge: true,
        ..Reply::text(
            401,
            "401 Unauthorized: sign in with a user of admin_auth_basic_user_file\n",
        )
    })
}

/// Reads a request's head; [`read_body`] then reads the body of a `PUT`
/// (the only admin request whose body means anything; others are
/// answered without reading theirs, the connection closed after).
/// `Ok(None)`: the client left or the connection failed; `Err`: what to
/// answer a request that cannot be read.
fn read_head(
    conn: &mut BufConn<TcpStream>,
    deadline: Instant,
) -> Result<Option<RequestHead>, Reply> {
    let bad = |status: u16| Reply::text(status, "bad request\n");
    let mut scanned = 0;
    let (head, head_len) = loop {
        match find_head_end(conn.buffered(), &mut scanned) {
            Ok(Some(len)) => {
                let head = parse_request(&conn.buffered()[..len], &RequestLimits::default())
                    .map_err(|e| bad(e.status()))?;
                break (head, len);
            }
            Ok(None) if conn.buffered().len() > MAX_ADMIN_HEAD => {
                return Err(Reply::text(431, "request head too large\n"))
            }
            Ok(None) => {}
            Err(e) => return Err(bad(e.status())),
        }
        if !fill_before(conn, deadline, "request head too slow\n")? {
            return Ok(None);
        }
    };
    conn.consume(head_len);
    Ok(Some(head))
}

/// The body of a `PUT` (see [`read_head`]); none for another method.
fn read_body(
    conn: &mut BufConn<TcpStream>,
    head: &RequestHead,
    deadline: Instant,
) -> Result<Option<Vec<u8>>, Reply> {
    if head.method != "PUT" {
        return Ok(Some(Vec::new()));
    }
    let bad = |status: u16| Reply::text(status, "bad request\n");
    let length = match BodyKind::for_request(head).map_err(|e| bad(e.status()))? {
        BodyKind::Empty => 0,
        BodyKind::Length(n) if n <= MAX_ADMIN_BODY => n as usize,
        BodyKind::Length(_) => return Err(Reply::text(413, "request body too large\n")),
        _ => return Err(Reply::text(411, "send the body with a Content-Length\n")),
    };
    // RFC 9110 §10.1.1: an HTTP/1.0 client's 100-continue is ignored (it
    // may know no 1xx response, which §15.2 forbids sending it).
    let expects =
        head.version == Version::Http11 && head.headers.has_token("expect", "100-continue");
    if length > conn.buffered().len() && expects {
        let _ = conn.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    while conn.buffered().len() < length {
        if !fill_before(conn, deadline, "request body too slow\n")? {
            return Ok(None);
        }
    }
    Ok(Some(conn.buffered()[..length].to_vec()))
}

/// Reads more of the request before `deadline`: `Ok(false)` when the
/// client closed or the read failed, `Err` a 408 saying `too_slow` when
/// the deadline passed.
fn fill_before(
    conn: &mut BufConn<TcpStream>,
    deadline: Instant,
    too_slow: &'static str,
) -> Result<bool, Reply> {
    let left = deadline.saturating_duration_since(Instant::now());
    // Past the deadline reads as a timeout (a zero timeout would be an
    // error of its own).
    let read = if left.is_zero() {
        Err(io::ErrorKind::TimedOut.into())
    } else {
        conn.get_ref()
            .set_read_timeout(Some(left))
            .and_then(|()| conn.fill())
    };
    match read {
        Ok(0) => Ok(false),
        Err(e) if is_timeout(&e) => Err(Reply::text(408, too_slow)),
        Err(_) => Ok(false),
        Ok(_) => Ok(true),
    }
}

/// What the admin listener answers to a request.
///
/// `PURGE` takes the key of the public request it names: the host from
/// the admin request's `Host` field (or from an absolute-form target),
/// lower-cased, then the path and query exactly as sent. So
/// `curl -X PURGE -H 'Host: www.example.com' http://127.0.0.1:9901/a?b=1`
/// drops what `GET http://www.example.com/a?b=1` stored, every Vary variant.
/// A target ending in `*` names a prefix of keys instead (see [`purge`]),
/// a `Surrogate-Key` field tags instead of a URL (see `purge_tags`), and a
/// `Purge-Regex` field a pattern of the host's paths (see `purge_pattern`).
///
/// `body` is the request's body, read for a `PUT` only.
pub fn route(head: &RequestHead, body: &[u8], shared: &Shared) -> Reply {
    let method = head.method.as_str();
    if method == "PURGE" {
        return purge(head, shared);
    }
    let target = head.path_and_query();
    let path = target.split('?').next().unwrap_or("");
    if let Some(id) = path.strip_prefix("/targets/") {
        return target_state(head, id, body, shared);
    }
    let read = matches!(method, "GET" | "HEAD");
    match path {
        "/metrics" if read => Reply {
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            ..Reply::text(200, metrics_text(shared))
        },
        "/status" if read => Reply::json(200, status_json(shared)),
        "/healthz" if read => {
            if shared.shutting_down.load(Ordering::SeqCst) {
                Reply::text(503, "shutting down\n")
            } else if shared.log.is_stalled() {
                // Lines are never dropped: with the queue full, request
                // threads wait for a log reader (stdout) that is not reading.
                Reply::text(503, "access log stalled: its queue is full\n")
            } else {
                Reply::text(200, "ok\n")
            }
        }
        "/metrics" | "/status" | "/healthz" => Reply::not_allowed("GET, HEAD, PURGE"),
        // A web page whose name an attacker points at 127.0.0.1 (DNS
        // rebinding) is same-origin with the admin listener, and may send
        // it anything: the one request that destroys is only taken under a
        // Host that names an address, which no such page has.
        "/cache" if method == "DELETE" && !host_is_an_address(head) => Reply::text(
            403,
            "DELETE /cache takes a Host that is an IP address or localhost\n",
        ),
        // Asked for soft, it would throw away what the client meant to
        // keep: refused rather than done hard.
        "/cache" if method == "DELETE" && !matches!(soft_purge(head), Ok(Purge::Hard)) => {
            Reply::text(
                400,
                "DELETE /cache is never soft: PURGE /* with Soft-Purge: 1 marks a host's entries stale\n",
            )
        }
        "/cache" if method == "DELETE" => {
            let removed = shared.cache.as_ref().map_or(0, |c| c.clear());
            if removed > 0 {
                give_back_freed_memory();
            }
            log::info!("admin: cache cleared, {removed} entries removed");
            let status = if removed > 0 { 200 } else { 404 };
            Reply::json(status, format!("{{\"removed\":{removed}}}\n"))
        }
        // What `/status` says of the cache: a script watching the cache
        // asks for it alone, rather than for every target's state too.
        "/cache" if read => {
            let mut out = String::new();
            push_cache_totals(&mut out, shared);
            out.push('\n');
            Reply::json(200, out)
        }
        "/cache" => Reply::not_allowed("GET, HEAD, DELETE, PURGE"),
        "/cache/entries" if read => cache_entries(head, target.split_once('?').map(|q| q.1), shared),
        "/cache/entries" => Reply::not_allowed("GET, HEAD, PURGE"),
        _ => Reply::text(404, "404 Not Found\n"),
    }
}

/// `/targets/<id>`: `GET` says the target's state, `PUT` with `ready`,
/// `drain` or `maint` as the body sets it. `id` is the target's `name`
/// or `address` as `/status` shows them, percent-encoded if need be
/// (`%5B::1%5D:80`), or a name as written in `targets` that gives several
/// addresses (`app:8000`), which stands for each of its targets: a `PUT`
/// sets them all, as the name is what the operator wrote (and an address
/// the name comes to give later starts in the state they share, see
/// `Upstreams::keep_state_of`).
///
/// With `state_file`, a `PUT` writes every target's state there before it
/// is answered, and says whether that worked (`"saved"`).
fn target_state(head: &RequestHead, id: &str, body: &[u8], shared: &Shared) -> Reply {
    let method = head.method.as_str();
    let set = match method {
        "GET" | "HEAD" => false,
        "PUT" => true,
        _ => return Reply::not_allowed("GET, HEAD, PUT"),
    };
    // It changes where requests go: under the same guard against DNS
    // rebinding as `DELETE /cache`.
    if set && !host_is_an_address(head) {
        return Reply::text(
            403,
            "PUT /targets/... takes a Host that is an IP address or localhost\n",
        );
    }
    let id = String::from_utf8_lossy(&policy::decode_percent(id.as_bytes())).into_owned();
    let (targets, several) = match shared.pools.find(&id) {
        Some(target) => (vec![target], false),
        None => (shared.pools.written_as(&id), true),
    };
    if targets.is_empty() {
        return Reply::text(404, format!("no target is named {id:?}\n"));
    }
    let state = match std::str::from_utf8(body).map(str::parse::<AdminState>) {
        _ if !set => None,
        Ok(Ok(state)) => Some(state),
        // A client's bytes, going to whoever reads the answer.
        Ok(Err(e)) => return Reply::text(400, format!("{}\n", escape_controls(&e.to_string()))),
        Err(_) => return Reply::text(400, "the body must be ready, drain or maint\n"),
    };
    let each: Vec<String> = (targets.iter())
        .map(|target| {
            let was = state.map(|state| {
                let was = shared.pools.set_admin_state(target, state);
                if was != state {
                    log::info!(
                        "admin: target {} {was} -> {state} ({} request(s) in flight)",
                        target.name,
                        target.in_flight()
                    );
                }
                was
            });
            target_json(target, was)
        })
        .collect();
    // Every PUT writes the file, a change or not: one that could not be
    // saved is saved by sending it again.
    let saved = match (state, &shared.config.state_file) {
        (Some(_), Some(path)) => Some(state_file::save_or_warn(path, &shared.pools, "admin")),
        _ => None,
    };
    let mut out = match several {
        false => each.concat(),
        true => {
            let mut out = String::from("{");
            json::push_key(&mut out, "name");
            json::push_str(&mut out, &id);
            out.push_str(",\"targets\":[");
            out.push_str(&each.join(","));
            out.push_str("]}");
            out
        }
    };
    if let Some(saved) = saved {
        out.pop(); // the closing brace
        push_saved(&mut out, &saved);
        out.push('}');
    }
    out.push('\n');
    Reply::json(200, out)
}

/// `"saved":true`, or `"saved":false,"save_error":"..."`: whether the
/// states were written to `state_file`. The state is in force either way
/// (200): it is the next start that would not find it.
fn push_saved(out: &mut String, saved: &Result<(), String>) {
    let _ = write!(out, ",\"saved\":{}", saved.is_ok());
    if let Err(e) = saved {
        out.push(',');
        json::push_key(out, "save_error");
        json::push_str(out, e);
    }
}

/// A target's `"name":...,"address":...`, the two ids `/targets/<id>` takes.
fn push_name_and_address(out: &mut String, target: &Upstream) {
    json::push_key(out, "name");
    json::push_str(out, &target.name);
    out.push(',');
    json::push_key(out, "address");
    json::push_str(out, &target.addr.to_string());
}

/// A target's state as `/targets/<id>` answers it: what an operator
/// draining it waits on is `in_flight` coming down to 0. A name that
/// stands for several targets is answered `{"name":...,"targets":[...]}`,
/// each of them so.
fn target_json(target: &Upstream, was: Option<AdminState>) -> String {
    let mut out = String::from("{");
    push_name_and_address(&mut out, target);
    let _ = write!(
        out,
        ",\"admin_state\":\"{}\",\"healthy\":{},\"in_flight\":{}",
        target.health.admin_state(),
        target.health.usable(Instant::now()),
        target.in_flight(),
    );
    if let Some(was) = was {
        let _ = write!(out, ",\"previous\":\"{was}\"");
    }
    out.push('}');
    out
}

/// Whether the request's authority (its Host) is an IP address or
/// `localhost`, with or without a port.
fn host_is_an_address(head: &RequestHead) -> bool {
    let Some(authority) = head.authority() else {
        return true; // HTTP/1.0 without Host: no name at all
    };
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok()
}

/// Returns to the system the heap pages freed by emptying the cache.
/// glibc keeps them in the arenas of the threads that allocated the
/// bodies, so an emptied cache would otherwise leave the process's memory
/// where it was (a chaos run saw ~100 MB stay after clearing 64 MiB).
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free heap memory to the system;
    // no memory in use is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `PURGE`: of one URL (every Vary variant, both schemes), or of every
/// URL under a prefix when the target ends in `*` (`/products/*`), as
/// nginx's cache purge reads a key ending in `*`. A URL whose own target
/// ends in `*` is purged alone written with `%2A` (see
/// [`with_literal_star`]).
///
/// Taken under any `Host`, unlike `DELETE /cache`: the Host names the
/// site whose entries go, and a page on a name rebound to 127.0.0.1 sends
/// its own name, whose entries (if the proxy holds any) are its own.
fn purge(head: &RequestHead, shared: &Shared) -> Reply {
    let purge = match soft_purge(head) {
        Ok(purge) => purge,
        Err(reply) => return reply,
    };
    let by_tag = head.headers.contains(policy::SURROGATE_KEY);
    if by_tag && head.headers.contains(policy::PURGE_REGEX) {
        return Reply::text(
            400,
            "a purge names tags (Surrogate-Key) or a pattern (Purge-Regex), not both\n",
        );
    }
    if by_tag {
        return purge_tags(head, purge, shared);
    }
    if let Some(pattern) = policy::KeyPattern::of_purge(head) {
        return purge_pattern(head, pattern, purge, shared);
    }
    let ignored = &shared.config.cache_key_ignore_params;
    if let Some(keys) = policy::prefix_keys_of_uri(head, ignored) {
        let named = purge_counted(shared, Named::Prefix, purge, |c| {
            let bare = (keys.bare.as_ref()).map_or(0, |bare| c.invalidate_all(bare, purge));
            bare + c.invalidate_prefixes(&keys.prefixes, purge)
        });
        return purged(Named::Prefix, &keys.prefixes[0], purge, named);
    }
    let keys = keys_of_url(head, ignored);
    let named = purge_counted(shared, Named::Url, purge, |c| {
        c.invalidate_all(&keys, purge)
    });
    purged(Named::Url, &keys[0], purge, named)
}

/// Runs a purge of `kind` on the cache, if there is one, and counts it;
/// returns how many entries it named. A hard one that removed any gives
/// the freed memory back to the system.
fn purge_counted(
    shared: &Shared,
    kind: Named,
    purge: Purge,
    run: impl FnOnce(&crate::cache::Cache) -> usize,
) -> usize {
    let Some(cache) = &shared.cache else {
        return 0;
    };
    let named = run(cache);
    cache.stats.count_purge(kind, purge, named);
    if named > 0 && purge == Purge::Hard {
        give_back_freed_memory();
    }
    named
}

/// The primary keys of the URL `head` names, as a `PURGE` of it names
/// them: under both schemes, and both spellings of a `*` it ends in (see
/// [`with_literal_star`]). The `http` key first.
fn keys_of_url(head: &RequestHead, ignored: &policy::IgnoredParams) -> Vec<String> {
    let mut keys = policy::primary_keys_of_uri(head, ignored).to_vec();
    if let Some(starred) = with_literal_star(head) {
        keys.extend(policy::primary_keys_of_uri(&starred, ignored));
    }
    keys
}

/// Whether a purge is soft: `Soft-Purge: 1` (or Fastly's
/// `Fastly-Soft-Purge: 1`) marks what it names stale instead of removing
/// it (see [`Purge::Soft`]); `0` or no such field, hard. Any other value,
/// or fields that disagree, get 400 rather than a guess: read as hard, a
/// typo would throw away the entries the purge was meant to keep.
fn soft_purge(head: &RequestHead) -> Result<Purge, Reply> {
    let mut soft = None;
    for value in SOFT_PURGE_FIELDS
        .iter()
        .flat_map(|name| head.headers.get_all(name))
    {
        let this = match value.trim_ascii() {
            b"1" => true,
            b"0" => false,
            _ => return Err(Reply::text(400, "Soft-Purge takes 1 (soft) or 0 (hard)\n")),
        };
        if soft.is_some_and(|s| s != this) {
            return Err(Reply::text(400, "Soft-Purge fields disagree\n"));
        }
        soft = Some(this);
    }
    Ok(match soft {
        Some(true) => Purge::Soft(SystemTime::now()),
        _ => Purge::Hard,
    })
}

/// `PURGE /` with `Surrogate-Key: product-42 category-7`: drops every
/// entry tagged with one of them, whatever its URL or host (Fastly's purge
/// by surrogate key, Varnish's `xkey.purge`); 200 with
/// `{"tags":[...],"removed":N}`, 404 when nothing matched. With
/// `surrogate_keys` off no response is purged by tag (as after a restart:
/// the field was the backend's to pass on), and nothing is.
///
/// It reaches every site, so it is taken only under a Host that is an
/// address, as `DELETE /cache`: a page on a name rebound to 127.0.0.1
/// could otherwise drop what the proxy stores for any site. Its target
/// is `/`: one naming a URL could be read as a purge of that URL too.
fn purge_tags(head: &RequestHead, purge: Purge, shared: &Shared) -> Reply {
    if !host_is_an_address(head) {
        return Reply::text(
            403,
            "a purge by tag takes a Host that is an IP address or localhost\n",
        );
    }
    if head.path_and_query() != "/" {
        return Reply::text(
            400,
            "a purge by tag (Surrogate-Key) names no URL: send it to /\n",
        );
    }
    let tags = match policy::Tags::of_purge(&head.headers) {
        Ok(tags) => tags,
        Err(e) => return Reply::text(400, format!("{e}\n")),
    };
    let on = shared.config.surrogate_keys;
    let named = match on {
        true => purge_counted(shared, Named::Tag, purge, |c| {
            c.invalidate_tags(&tags, purge)
        }),
        false => 0,
    };
    let names = tags.iter().collect::<Vec<_>>().join(" ");
    let off = if on { "" } else { " (surrogate_keys is off)" };
    let (how, done) = how_purged(purge);
    log::info!("admin: {how} by tag {names}: {named} entries {done}{off}");
    let mut body = String::from("{\"tags\":[");
    push_list(&mut body, tags.iter());
    body.push(']');
    push_count(&mut body, purge, named);
    Reply::json(if named > 0 { 200 } else { 404 }, body)
}

/// `PURGE /` with `Purge-Regex: \.jpg$`: drops every entry of the host
/// the request names (both schemes, every Vary variant) whose path and
/// query, as its key spells them, the pattern matches (Varnish's `ban
/// req.url ~`); 200 with `{"host":...,"pattern":...,"removed":N}`, 404
/// when nothing matched, 400 for a pattern the `regex` crate refuses (its
/// message, which quotes the pattern, escaped).
///
/// Taken under any `Host`, as a purge of a prefix, and for the same
/// reason: it reaches that host's entries alone (a Host that is an
/// address names the entries stored under that address, not every
/// site's, as a purge by tag would). Its target is `/`, as a purge by
/// tag's: one naming a URL could be read as a purge of that URL too.
fn purge_pattern(
    head: &RequestHead,
    pattern: Result<policy::KeyPattern, policy::PatternError>,
    purge: Purge,
    shared: &Shared,
) -> Reply {
    if head.path_and_query() != "/" {
        return Reply::text(
            400,
            "a purge by pattern (Purge-Regex) names no URL: send it to /\n",
        );
    }
    let pattern = match pattern {
        Ok(pattern) => pattern,
        // The regex crate's message spans lines (the pattern, a caret
        // under the fault, the error): kept so, each line escaped.
        Err(e) => {
            let lines: Vec<String> = e.to_string().lines().map(escape_controls).collect();
            return Reply::text(400, format!("{}\n", lines.join("\n")));
        }
    };
    let named = purge_counted(shared, Named::Pattern, purge, |c| {
        c.invalidate_pattern(&pattern, purge)
    });
    let (how, done) = how_purged(purge);
    log::info!(
        "admin: {how} {} by pattern {}: {named} entries {done}",
        escape_controls(pattern.authority()),
        escape_controls(pattern.as_str())
    );
    let mut body = String::from("{");
    json::push_key(&mut body, "host");
    json::push_str(&mut body, pattern.authority());
    body.push(',');
    json::push_key(&mut body, "pattern");
    json::push_str(&mut body, pattern.as_str());
    push_count(&mut body, purge, named);
    Reply::json(if named > 0 { 200 } else { 404 }, body)
}

/// The request of a `PURGE` whose target ends in `%2A` (any case), with
/// that written `*`: the URL of the literal star, which a `*` at the end
/// would make a prefix. The key keeps `%2A` and `*` apart (a reserved
/// character and its escape are different URIs to RFC 3986 §6.2.2.2), so
/// both are purged: the one spelling cannot be named otherwise, and most
/// backends read the two alike.
fn with_literal_star(head: &RequestHead) -> Option<RequestHead> {
    let cut = head.target.len().checked_sub(3)?;
    let escaped = head.target.get(cut..)?;
    escaped.eq_ignore_ascii_case("%2A").then(|| RequestHead {
        target: format!("{}*", &head.target[..cut]),
        ..head.clone()
    })
}

/// The answer to a `PURGE` of `key` (the `http` key, or prefix: `what`
/// says which), logged as `admin: purge example.com/products/*: ...`.
fn purged(what: Named, key: &str, purge: Purge, named: usize) -> Reply {
    let (label, star) = match what {
        Named::Prefix => ("prefix", "*"),
        _ => ("key", ""),
    };
    let (how, done) = how_purged(purge);
    log::info!("admin: {how} {key}{star}: {named} entries {done}");
    let mut body = String::from("{");
    json::push_key(&mut body, label);
    json::push_str(&mut body, key);
    push_count(&mut body, purge, named);
    Reply::json(if named > 0 { 200 } else { 404 }, body)
}

/// How the log says a purge was done, and what it did to the entries.
fn how_purged(purge: Purge) -> (&'static str, &'static str) {
    match purge {
        Purge::Hard => ("purge", "removed"),
        Purge::Soft(_) => ("soft purge", "marked stale"),
    }
}

/// The end of a purge's answer: `,"removed":N}`, or for a soft one
/// `,"soft":true,"marked_stale":N}` (nothing was removed: a client that
/// reads `removed` must not take the entries for gone).
fn push_count(body: &mut String, purge: Purge, named: usize) {
    let _ = match purge {
        Purge::Hard => writeln!(body, ",\"removed\":{named}}}"),
        Purge::Soft(_) => writeln!(body, ",\"soft\":true,\"marked_stale\":{named}}}"),
    };
}

/// What `/cache/entries` lists.
#[derive(Debug, PartialEq, Eq)]
enum Selection {
    /// `url=`: the entries of one URL, every Vary variant.
    Url(String),
    /// `prefix=`: those a `PURGE` of the prefix followed by `*` names.
    Prefix(String),
    /// Neither: every entry of every site.
    Everything,
}

/// A `/cache/entries` query, read.
#[derive(Debug, PartialEq, Eq)]
struct EntriesQuery {
    selection: Selection,
    limit: usize,
}

/// Reads the query of `/cache/entries`: `url=` or `prefix=` (a URL or a
/// prefix as a client would send it, percent-encoded as a query value
/// must be, so that its own `?` and `&` stay its own) and `limit=`. A
/// parameter unknown or given twice is an error rather than ignored: a
/// typo (`prefx=`) would list another selection than the one meant, and
/// a URL sent unencoded would lose what follows its first `&`.
fn entries_query(query: Option<&str>) -> Result<EntriesQuery, String> {
    let (mut url, mut prefix, mut limit) = (None, None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "url" => &mut url,
            "prefix" => &mut prefix,
            "limit" => &mut limit,
            _ => {
                // Quoted with what a terminal would obey escaped: a
                // client's bytes, going to whoever reads the answer.
                let name: String = name.chars().take(64).collect();
                return Err(format!(
                    "unknown parameter \"{}\": takes url=, prefix= and limit= (percent-encode the URL)",
                    escape_controls(&name)
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(format!("{name}= given twice"));
        }
    }
    let limit = match limit {
        None => DEFAULT_LISTING_LIMIT,
        Some(limit) => match limit.parse::<usize>() {
            Ok(n)
                if (1..=MAX_LISTING_LIMIT).contains(&n)
                    && limit.bytes().all(|b| b.is_ascii_digit()) =>
            {
                n
            }
            _ => {
                return Err(format!(
                    "limit= takes a number from 1 to {MAX_LISTING_LIMIT}"
                ))
            }
        },
    };
    let selection = match (url, prefix) {
        (Some(_), Some(_)) => return Err("url= or prefix=, not both".into()),
        (Some(url), None) => Selection::Url(request_target(url, "url")?),
        (None, Some(prefix)) => Selection::Prefix(request_target(prefix, "prefix")?),
        (None, None) => Selection::Everything,
    };
    Ok(EntriesQuery { selection, limit })
}

/// A query value decoded into a request-target: origin-form (`/a?b`) or
/// absolute-form (`http://host/a`), of visible ASCII or UTF-8, as a
/// client could send it: UTF-8 percent-encoded, as a browser sends
/// `/café` (`/caf%C3%A9`), the one spelling keys can hold (a target with
/// raw non-ASCII bytes is refused).
fn request_target(value: &str, name: &str) -> Result<String, String> {
    let bad = || {
        format!("{name}= takes a URL as a client sends it (/path?query or http://host/path), percent-encoded")
    };
    let decoded = String::from_utf8(policy::decode_percent(value.as_bytes())).map_err(|_| bad())?;
    let visible = !decoded.bytes().any(|b| b <= b' ' || b == 0x7f);
    let form = decoded.starts_with('/') || split_absolute(&decoded).is_some();
    if !(visible && form) {
        return Err(bad());
    }
    let mut target = String::with_capacity(decoded.len());
    for b in decoded.bytes() {
        match b.is_ascii() {
            true => target.push(char::from(b)),
            false => {
                let _ = write!(target, "%{b:02X}");
            }
        }
    }
    Ok(target)
}

/// Whether `value`, a listing's URL or prefix, is an absolute URL of
/// another site than the request's Host.
fn names_another_site(head: &RequestHead, value: &str) -> bool {
    let Some((authority, _)) = split_absolute(value) else {
        return false;
    };
    let canonical = |authority: &str| {
        let mut canonical = String::with_capacity(authority.len());
        push_canonical_authority(&mut canonical, authority);
        canonical
    };
    canonical(authority) != canonical(head.headers.get_str("host").unwrap_or_default())
}

/// `GET /cache/entries`: what the cache holds for a URL (`url=`), under
/// a prefix (`prefix=`) or in all, each entry as [`push_entry`] writes
/// it, at most `limit=` of them, with the totals of `/status`; 404 when
/// none is stored. Nothing listed is promoted: a listing is not a use.
///
/// A URL or a prefix is keyed as a `PURGE` of it is, on the site the
/// `Host` names, and is taken under any Host, as a purge is: a page on a
/// name rebound to 127.0.0.1 sends its own name, and can list only what
/// the proxy stores for it. Another site's (an absolute URL naming
/// another host, which a page may write in a query as it cannot in its
/// request-target) and every site's entries (neither parameter) are
/// taken only under a Host that is an address, as a purge by tag that
/// reaches every site is: they would show such a page the URLs (and, in
/// the keys of responses that vary, the request fields, a cookie
/// perhaps) of the sites the proxy serves.
fn cache_entries(head: &RequestHead, query: Option<&str>, shared: &Shared) -> Reply {
    let EntriesQuery { selection, limit } = match entries_query(query) {
        Ok(query) => query,
        Err(e) => return Reply::text(400, format!("{e}\n")),
    };
    let another_site = match &selection {
        Selection::Url(value) | Selection::Prefix(value) => names_another_site(head, value),
        Selection::Everything => true,
    };
    if another_site && !host_is_an_address(head) {
        return Reply::text(
            403,
            "a listing of another site's or every site's entries takes a Host that is an IP \
             address or localhost; \
             url= or prefix= list the Host's own\n",
        );
    }
    let Some(cache) = &shared.cache else {
        return Reply::json(404, "{\"entries\":[],\"enabled\":false}\n".into());
    };
    let ignored = &shared.config.cache_key_ignore_params;
    let public = |target: String| RequestHead {
        method: "GET".into(),
        target,
        ..head.clone()
    };
    // What was listed, as a purge's answer names it: the `http` key.
    let (named, listing) = match selection {
        Selection::Url(url) => {
            let mut keys = keys_of_url(&public(url), ignored);
            let listing = cache.list_all(&keys, limit);
            (Some(("key", keys.swap_remove(0))), listing)
        }
        Selection::Prefix(prefix) => {
            // `http://host` and a `*` would make the `*` the host's.
            let Some(keys) = policy::prefix_keys_of_uri(&public(format!("{prefix}*")), ignored)
            else {
                return Reply::text(
                    400,
                    "prefix= of an absolute URL takes a path: http://host/\n",
                );
            };
            // The bare keys first, then those under the prefix.
            let mut listing = (keys.bare.as_ref())
                .map_or_else(Listing::default, |bare| cache.list_all(bare, limit));
            let under = cache.list_prefixes(&keys.prefixes, limit - listing.entries.len());
            listing.entries.extend(under.entries);
            listing.truncated |= under.truncated;
            let [http, _] = keys.prefixes;
            (Some(("prefix", http)), listing)
        }
        Selection::Everything => (None, cache.list_prefixes(&[String::new()], limit)),
    };
    let status = if listing.entries.is_empty() { 404 } else { 200 };
    // The ttl in force caps what an entry was stored with, as when it is
    // served (see `Entry::expires_under`).
    let ttl_of = |entry: &Entry| {
        (shared
            .cache_rules
            .settings_of_key(entry.key(), &shared.config.routes))
        .map_or(Duration::MAX, |settings| settings.ttl)
    };
    let mut out = listing_json(&listing, SystemTime::now(), &ttl_of);
    out.pop(); // the closing brace, to add the selection and the totals
    if let Some((label, key)) = named {
        out.push(',');
        json::push_key(&mut out, label);
        json::push_str(&mut out, &key);
    }
    out.push_str(",\"cache\":");
    push_cache_totals(&mut out, shared);
    out.push_str("}\n");
    Reply::json(status, out)
}

/// `{"entries":[...],"truncated":...}`, each entry's times under the
/// `ttl_of` it.
fn listing_json(listing: &Listing, now: SystemTime, ttl_of: &dyn Fn(&Entry) -> Duration) -> String {
    let mut out = String::from("{\"entries\":[");
    for (i, listed) in listing.entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_entry(&mut out, listed, now, ttl_of(&listed.entry));
    }
    let _ = write!(out, "],\"truncated\":{}}}", listing.truncated);
    out
}

/// A stored key as `/cache/entries` lists it: the credentials and
/// cookies a response varying on them is keyed by written as the access
/// log writes credentials (`Basic [redacted]`), so that the listing holds
/// no password or session (two users' variants then read alike).
fn listed_key(key: &str) -> std::borrow::Cow<'_, str> {
    let secret = |name: &str| matches!(name, "authorization" | "proxy-authorization" | "cookie");
    let mut lines = key.split('\n');
    let primary = lines.next().unwrap_or_default();
    let variant: Vec<&str> = lines.collect();
    let holds_secret = |line: &&str| line.split_once('=').is_some_and(|(name, _)| secret(name));
    if !variant.iter().any(holds_secret) {
        return key.into();
    }
    let mut listed = primary.to_string();
    for line in variant {
        listed.push('\n');
        match line.split_once('=') {
            Some((name, value)) if secret(name) => {
                let shown = if name == "cookie" {
                    "[redacted]".to_string()
                } else {
                    auth::redacted(value)
                };
                let _ = write!(listed, "{name}={shown}");
            }
            _ => listed.push_str(line),
        }
    }
    listed.into()
}

/// One entry as `/cache/entries` lists it: its key (the Vary part after
/// a newline, escaped), status, body size, `weight` (what it counts for
/// against `cache_size`), `age`, `fresh_for` (seconds left, negative once
/// stale: rounded down, so the sign is exact), `stale_window_left`
/// (seconds it may still stand in once stale: the whole window while it
/// is fresh), both under `ttl` as it is now, whether it has a validator
/// to be revalidated with, the request fields it varies on, its
/// `Surrogate-Key` tags, and the size of its gzip copy (`null` until a
/// hit made one).
fn push_entry(out: &mut String, listed: &Listed, now: SystemTime, ttl: Duration) {
    let entry = &listed.entry;
    let record = &entry.record;
    let now_ms = unix_ms(now);
    let seconds_until = |at: u64| (i128::from(at) - i128::from(now_ms)).div_euclid(1000);
    let expires = entry.expires_under(ttl);
    let stale_left = entry
        .stale_until_under(ttl)
        .saturating_sub(now_ms.max(expires))
        / 1000;
    out.push('{');
    json::push_key(out, "key");
    json::push_str(out, &listed_key(entry.key()));
    let _ = write!(
        out,
        ",\"status\":{},\"body_bytes\":{},\"weight\":{},\"age\":{},\"fresh_for\":{},\"stale_window_left\":{stale_left},\"validator\":{},\"vary\":[",
        entry.head.status,
        record.body.len(),
        listed.weight,
        entry.age(now).as_secs(),
        seconds_until(expires),
        !policy::validators(&entry.head).is_empty(),
    );
    push_list(out, entry.vary_names());
    out.push_str("],\"tags\":[");
    push_list(out, entry.tags().iter());
    out.push_str("],\"gzip_bytes\":");
    match entry.compressed_len() {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push_str("null"),
    }
    out.push('}');
}

/// Strings, comma separated.
fn push_list<'a>(out: &mut String, items: impl Iterator<Item = &'a str>) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::push_str(out, item);
    }
}

/// A Prometheus label value: `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A histogram's `_bucket`, `_sum` and `_count` lines; `labels` go before
/// `le` (empty, or ending in a comma).
fn histogram_lines(out: &mut String, name: &str, labels: &str, cumulative: &[u64], sum: f64) {
    for (i, n) in cumulative.iter().enumerate() {
        let le = DURATION_BUCKETS
            .get(i)
            .map_or("+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {n}");
    }
    let count = cumulative.last().copied().unwrap_or(0);
    let bare = labels.trim_end_matches(',');
    let braced = if bare.is_empty() {
        String::new()
    } else {
        format!("{{{bare}}}")
    };
    let _ = writeln!(out, "{name}_sum{braced} {sum}");
    let _ = writeln!(out, "{name}_count{braced} {count}");
}

/// A counter family of one sample, without labels.
fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

/// A counter family with one label, a sample per value of it.
fn labeled_counter(
    out: &mut String,
    (name, label): (&str, &str),
    help: &str,
    samples: &[(&str, &AtomicU64)],
) {
    family(out, name, "counter", help);
    for (value, count) in samples {
        let count = count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

/// The Prometheus text exposition format (version 0.0.4).
pub fn metrics_text(shared: &Shared) -> String {
    let m = &shared.metrics;
    let mut out = String::with_capacity(4096);

    family(
        &mut out,
        "inverso_requests_total",
        "counter",
        "Client requests answered, by status class.",
    );
    for (class, n) in STATUS_CLASSES.iter().zip(m.requests()) {
        let _ = writeln!(out, "inverso_requests_total{{class=\"{class}\"}} {n}");
    }

    family(
        &mut out,
        "inverso_request_duration_seconds",
        "histogram",
        "Time from a request head's arrival to the last byte of its response.",
    );
    let (buckets, sum) = m.durations();
    histogram_lines(
        &mut out,
        "inverso_request_duration_seconds",
        "",
        &buckets,
        sum,
    );

    family(
        &mut out,
        "inverso_connections_in_flight",
        "gauge",
        "Client connections open.",
    );
    let _ = writeln!(
        out,
        "inverso_connections_in_flight {}",
        m.connections.load(Ordering::Relaxed)
    );

    // Each pool's totals, as HAProxy's per-backend families: what the
    // clients of its requests got, and how many of its targets may serve.
    family(
        &mut out,
        "inverso_pool_requests_total",
        "counter",
        "Client requests routed to each pool, by the status class of their answer (a backend's, the cache's or the proxy's own).",
    );
    for pool in shared.pools.iter() {
        let name = label(pool.name());
        for (class, n) in STATUS_CLASSES.iter().zip(pool.stats().answers.counts()) {
            let _ = writeln!(
                out,
                "inverso_pool_requests_total{{pool=\"{name}\",class=\"{class}\"}} {n}"
            );
        }
    }
    family(
        &mut out,
        "inverso_pool_targets_usable",
        "gauge",
        "Targets of each pool that may take a new request now: up, neither drained nor in maintenance.",
    );
    let now = Instant::now();
    for pool in shared.pools.iter() {
        let _ = writeln!(
            out,
            "inverso_pool_targets_usable{{pool=\"{}\"}} {}",
            label(pool.name()),
            pool.usable(now)
        );
    }

    // Each target with its labels: its name, then its pool's (`default`
    // for `targets`), as HAProxy's per-server metrics carry their
    // backend's as `proxy`.
    let targets: Vec<(&Upstream, String)> = (shared.pools.iter())
        .flat_map(|pool| pool.targets().iter().map(move |t| (t, pool.name())))
        .map(|(t, pool)| {
            let labels = format!("target=\"{}\",pool=\"{}\"", label(&t.name), label(pool));
            (t, labels)
        })
        .collect();
    for (name, kind, help) in [
        (
            "inverso_upstream_requests_total",
            "counter",
            "Requests sent to each backend.",
        ),
        (
            "inverso_upstream_failures_total",
            "counter",
            "Requests that failed at each backend (connect, timeout, bad reply).",
        ),
        (
            "inverso_upstream_in_flight",
            "gauge",
            "Requests at each backend right now.",
        ),
        (
            "inverso_upstream_up",
            "gauge",
            "1 while a backend is healthy, 0 while health checks or failures keep it out.",
        ),
    ] {
        family(&mut out, name, kind, help);
        let now = std::time::Instant::now();
        for (t, labels) in &targets {
            let value = match name {
                "inverso_upstream_up" => u64::from(t.health.usable(now)),
                "inverso_upstream_in_flight" => t.stats.in_flight.load(Ordering::Relaxed) as u64,
                "inverso_upstream_failures_total" => t.stats.failures.load(Ordering::Relaxed),
                _ => t.stats.requests.load(Ordering::Relaxed),
            };
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }

    family(
        &mut out,
        "inverso_upstream_responses_total",
        "counter",
        "Response heads received from each backend, by status class (retried ones too).",
    );
    for (t, labels) in &targets {
        for (class, n) in STATUS_CLASSES.iter().zip(t.stats.responses.counts()) {
            let _ = writeln!(
                out,
                "inverso_upstream_responses_total{{{labels},class=\"{class}\"}} {n}"
            );
        }
    }
    family(
        &mut out,
        "inverso_upstream_header_seconds",
        "histogram",
        "Time each backend took to send its response head once it had the request.",
    );
    for (t, labels) in &targets {
        let (buckets, sum) = t.stats.header_times.cumulative();
        histogram_lines(
            &mut out,
            "inverso_upstream_header_seconds",
            &format!("{labels},"),
            &buckets,
            sum,
        );
    }

    family(
        &mut out,
        "inverso_upstream_admin_state",
        "gauge",
        "1 for the state the operator set each backend in (ready, drain or maint), 0 for the others.",
    );
    for (t, labels) in &targets {
        let current = t.health.admin_state();
        for state in AdminState::ALL {
            let _ = writeln!(
                out,
                "inverso_upstream_admin_state{{{labels},state=\"{state}\"}} {}",
                u8::from(state == current)
            );
        }
    }

    labeled_counter(
        &mut out,
        ("inverso_config_reloads_total", "result"),
        "Configuration reloads (SIGHUP), applied or refused.",
        &[("applied", &m.reloads), ("refused", &m.reloads_refused)],
    );

    counter(
        &mut out,
        "inverso_target_address_changes_total",
        "Names whose set of addresses changed while the proxy ran (resolve_interval): one came, one went, or it moved.",
        m.address_changes.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_upstream_queued_total",
        "Requests that waited for a slot because the targets that could serve them were at max_conns.",
        m.queued.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_rate_limited_total",
        "Requests answered 429 because their client address was over rate_limit.",
        m.rate_limited.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_access_denied_total",
        "Requests answered 403 because their client address was refused by allow_from or deny_from.",
        m.access_denied.load(Ordering::Relaxed),
    );
    labeled_counter(
        &mut out,
        ("inverso_auth_refused_total", "reason"),
        "Requests answered 401 by auth_basic: without credentials (a browser's first request), or with a user or password that is not in auth_basic_user_file.",
        &[("missing", &m.auth_missing), ("wrong", &m.auth_wrong)],
    );
    labeled_counter(
        &mut out,
        ("inverso_auth_requests_total", "result"),
        "Requests asked of the auth_request pool: let through (a 2xx), refused (any other answer, sent to the client), or failed (the pool could not be asked: 502, 503 or 504); or let through unasked on a yes auth_request_cache kept (cached).",
        &[
            ("allowed", &m.auth_requests_allowed),
            ("denied", &m.auth_requests_denied),
            ("failed", &m.auth_requests_failed),
            ("cached", &m.auth_requests_cached),
        ],
    );
    labeled_counter(
        &mut out,
        ("inverso_mirror_requests_total", "result"),
        "Copies of requests sent to a mirror pool: answered (the answer dropped), failed (no answer), or dropped unsent (the queue full, a body streamed, no target to take it).",
        &[
            ("answered", &m.mirror_answered),
            ("failed", &m.mirror_failed),
            ("dropped", &m.mirror_dropped),
        ],
    );
    counter(
        &mut out,
        "inverso_https_redirects_total",
        "Requests that came over plain HTTP answered with a redirect to HTTPS (redirect_to_https).",
        m.https_redirects.load(Ordering::Relaxed),
    );
    // Counted by the rules themselves; a reload keeps a rule's count
    // while it keeps its name.
    family(
        &mut out,
        "inverso_rewrites_total",
        "counter",
        "Requests each rewrite.<name> rule applied to: its path rewritten, or the request redirected.",
    );
    for rule in shared.config.rewrites.iter() {
        let _ = writeln!(
            out,
            "inverso_rewrites_total{{rule=\"{}\"}} {}",
            label(rule.name()),
            rule.applied()
        );
    }
    if let Some(served) = &shared.config.tls_served {
        family(
            &mut out,
            "inverso_tls_certificate_expiry_seconds",
            "gauge",
            "When each certificate of tls_certificates stops being valid (its notAfter), in seconds since the Unix epoch.",
        );
        for (path, until) in served.valid_until() {
            let Some(secs) = until.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            else {
                continue;
            };
            let file = label(&path.display().to_string());
            let secs = secs.as_secs();
            let _ = writeln!(
                out,
                "inverso_tls_certificate_expiry_seconds{{file=\"{file}\"}} {secs}"
            );
        }
    }
    labeled_counter(
        &mut out,
        ("inverso_tls_handshakes_total", "result"),
        "TLS handshakes on tls_port: completed, or failed (the client gave up or timed out, spoke plain HTTP, or shared no protocol version or cipher suite).",
        &[("ok", &m.tls_handshakes), ("failed", &m.tls_handshake_failures)],
    );
    let gzip = &m.gzip;
    counter(
        &mut out,
        "inverso_gzip_responses_total",
        "Responses sent compressed with gzip, relayed or from the cache.",
        gzip.responses.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_gzip_bytes_in_total",
        "Body bytes of the responses sent compressed, before compression.",
        gzip.bytes_in.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_gzip_bytes_out_total",
        "Body bytes of the responses sent compressed, as sent.",
        gzip.bytes_out.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_access_log_lost_lines_total",
        "Access-log lines a sink (stdout, the file) could not take, e.g. on a full disk.",
        shared.log.lost(),
    );

    let Some(cache) = &shared.cache else {
        return out;
    };
    let s = &cache.stats;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    labeled_counter(
        &mut out,
        ("inverso_cache_requests_total", "result"),
        "Requests that went through the cache, by X-Cache result.",
        &[
            ("hit", &s.hits),
            ("miss", &s.misses),
            ("stale", &s.stale),
            ("revalidated", &s.revalidated),
            ("bypass", &s.bypass),
        ],
    );
    for (name, kind, help, value) in [
        (
            "inverso_cache_entries",
            "gauge",
            "Responses stored (each Vary variant counts).",
            cache.len() as f64,
        ),
        (
            "inverso_cache_bytes",
            "gauge",
            "Bytes the entries take, counted as cache_size is (body, head, key and bookkeeping).",
            cache.bytes() as f64,
        ),
        (
            "inverso_cache_capacity_bytes",
            "gauge",
            "The cache's capacity (cache_size).",
            cache.capacity() as f64,
        ),
        (
            "inverso_cache_read_ahead_bytes",
            "gauge",
            "Bytes of responses being stored that wait for slow clients to take them (at most cache_size in all, but 64 KiB each).",
            load(&s.read_ahead) as f64,
        ),
        (
            "inverso_cache_evictions_total",
            "counter",
            "Entries evicted to make room.",
            load(&s.evictions) as f64,
        ),
        (
            "inverso_cache_snapshot_failures_total",
            "counter",
            "Snapshot writes that failed.",
            load(&s.snapshot_failures) as f64,
        ),
    ] {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    for (name, help, counts) in [
        (
            "inverso_cache_purges_total",
            "Purges taken on the admin listener, by what they name and whether soft.",
            &s.purges,
        ),
        (
            "inverso_cache_purged_entries_total",
            "Entries the purges named: removed (hard) or marked stale (soft).",
            &s.purged_entries,
        ),
    ] {
        family(&mut out, name, "counter", help);
        for kind in Named::ALL {
            for (mode, counter) in ["hard", "soft"].iter().zip(&counts[kind as usize]) {
                let n = load(counter);
                let kind = kind.label();
                let _ = writeln!(out, "{name}{{kind=\"{kind}\",mode=\"{mode}\"}} {n}");
            }
        }
    }
    family(
        &mut out,
        "inverso_cache_snapshot_duration_seconds",
        "summary",
        "Snapshot files written, and the time spent writing them.",
    );
    let _ = writeln!(
        out,
        "inverso_cache_snapshot_duration_seconds_sum {}\ninverso_cache_snapshot_duration_seconds_count {}",
        load(&s.snapshot_micros) as f64 / 1e6,
        load(&s.snapshot_writes)
    );
    out
}

/// `/status`: the targets and the cache, as one JSON object.
pub fn status_json(shared: &Shared) -> String {
    let m = &shared.metrics;
    let mut out = String::with_capacity(1024);
    let requests: u64 = m.requests().iter().sum();
    let _ = write!(
        out,
        "{{\"shutting_down\":{},\"connections\":{},\"requests\":{requests},\"targets\":[",
        shared.shutting_down.load(Ordering::Relaxed),
        m.connections.load(Ordering::Relaxed),
    );
    let in_pools = (shared.pools.iter()).flat_map(|p| p.targets().iter().map(move |t| (p, t)));
    for (i, (pool, t)) in in_pools.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        push_name_and_address(&mut out, t);
        out.push(',');
        json::push_key(&mut out, "pool");
        json::push_str(&mut out, pool.name());
        // Its own `max_fails=`/`fail_timeout=`, or the keys'.
        let passive = t.health.passive();
        let _ = write!(
            out,
            ",\"weight\":{},\"backup\":{},\"max_conns\":{},\"max_fails\":{},\"fail_timeout_ms\":{},\"healthy\":{},\"admin_state\":\"{}\",\"in_flight\":{},\"requests\":{},\"failures\":{}}}",
            t.weight,
            t.backup,
            match t.max_conns {
                0 => "null".to_string(),
                n => n.to_string(),
            },
            passive.max_fails,
            passive.fail_timeout.as_millis(),
            t.health.usable(std::time::Instant::now()),
            t.health.admin_state(),
            t.stats.in_flight.load(Ordering::Relaxed),
            t.stats.requests.load(Ordering::Relaxed),
            t.stats.failures.load(Ordering::Relaxed),
        );
    }
    out.push_str("],\"pools\":");
    push_pools(&mut out, &shared.pools, Instant::now());
    out.push_str(",\"cache\":");
    push_cache_totals(&mut out, shared);
    out.push_str("}\n");
    out
}

/// `/status`'s `pools` array: each pool's name, how many targets it has
/// and how many of them may take a new request, and the answers its
/// requests got by status class (as `/metrics` has them).
fn push_pools(out: &mut String, pools: &Pools, now: Instant) {
    out.push('[');
    for (i, pool) in pools.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        json::push_key(out, "name");
        json::push_str(out, pool.name());
        let _ = write!(
            out,
            ",\"targets\":{},\"usable\":{},\"requests\":{{",
            pool.targets().len(),
            pool.usable(now)
        );
        let counts = pool.stats().answers.counts();
        for (j, (class, n)) in STATUS_CLASSES.iter().zip(counts).enumerate() {
            let comma = if j > 0 { "," } else { "" };
            let _ = write!(out, "{comma}\"{class}\":{n}");
        }
        out.push_str("}}");
    }
    out.push(']');
}

/// `/status`'s `cache` object: what the cache holds in all, and its counters.
fn push_cache_totals(out: &mut String, shared: &Shared) {
    match &shared.cache {
        None => out.push_str("{\"enabled\":false}"),
        Some(cache) => {
            let s = &cache.stats;
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            let _ = write!(
                out,
                "{{\"enabled\":true,\"entries\":{},\"bytes\":{},\"capacity\":{},\"hits\":{},\"misses\":{},\"stale\":{},\"revalidated\":{},\"bypass\":{},\"evictions\":{},\"snapshot_writes\":{},\"snapshot_failures\":{}}}",
                cache.len(),
                cache.bytes(),
                cache.capacity(),
                load(&s.hits),
                load(&s.misses),
                load(&s.stale),
                load(&s.revalidated),
                load(&s.bypass),
                load(&s.evictions),
                load(&s.snapshot_writes),
                load(&s.snapshot_failures),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::{Lifetime, Settings};
    use crate::cache::Entry;
    use crate::http::ResponseHead;

    #[test]
    fn a_reply_read_a_little_at_a_time_is_given_up_on_within_its_time() {
        // Small buffers both ways, as a slow client's on a real network:
        // each write goes on while the client reads 1 KiB a tenth of a
        // second, and only the deadline ends the reply.
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None);
        let client = client.unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        client
            .connect(&listener.local_addr().unwrap().into())
            .unwrap();
        let mut client: TcpStream = client.into();
        let (mut server, _) = listener.accept().unwrap();
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .unwrap();
        let reply = vec![b'x'; 4 << 20];
        let writer = std::thread::spawn(move || {
            write_within(&mut server, &reply, Duration::from_secs(1));
        });
        // Read on until the reply ends, for at most 10 s (40 KiB of 4 MiB):
        // it ends with what the buffers held after its second.
        let (mut got, mut ended) = (0, false);
        let mut chunk = [0u8; 1024];
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(100));
            match client.read(&mut chunk).unwrap() {
                0 => {
                    ended = true;
                    break;
                }
                n => got += n,
            }
        }
        assert!(ended, "still sending after {got} bytes");
        writer.join().unwrap();
    }

    fn query(q: &str) -> Result<EntriesQuery, String> {
        entries_query(Some(q))
    }

    #[test]
    fn a_listing_query_takes_a_url_or_a_prefix_and_a_bounded_limit() {
        let url = |u: &str, limit| EntriesQuery {
            selection: Selection::Url(u.into()),
            limit,
        };
        assert_eq!(query("url=/products/42"), Ok(url("/products/42", 100)));
        // Encoded, the URL keeps its own query.
        assert_eq!(
            query("limit=3&url=%2Fp%3Fx%3D1%26y%3D%252F"),
            Ok(url("/p?x=1&y=%2F", 3))
        );
        assert_eq!(
            query("url=http://Shop.Example/a"),
            Ok(url("http://Shop.Example/a", 100))
        );
        assert_eq!(
            query("prefix=/&limit=10000"),
            Ok(EntriesQuery {
                selection: Selection::Prefix("/".into()),
                limit: 10_000
            })
        );
        let everything = EntriesQuery {
            selection: Selection::Everything,
            limit: 100,
        };
        assert_eq!(entries_query(None), Ok(everything));
        assert_eq!(query("limit=1").map(|q| q.limit), Ok(1));
        for bad in [
            "limit=0",
            "limit=10001",
            "limit=",
            "limit=ten",
            "limit=+5",
            "limit=-1",
            "limit=99999999999999999999999",
            "url=/a&prefix=/",
            "url=/a&url=/b",
            "limit=1&limit=2",
            "url=/a&b=1",
            "prefx=/",
            "url=",
            "url=products",
            "url=/a%20b",
            "url=/a%0d%0aX:1",
            "url=/%ff",
            "prefix=*",
        ] {
            assert!(query(bad).is_err(), "{bad} taken");
        }
        // A hostile parameter name is quoted escaped.
        let e = query("\u{1b}[2J=1").unwrap_err();
        assert!(!e.contains('\u{1b}'), "{e}");
    }

    /// An entry born at `birth` (seconds after the epoch), fresh for 60 s
    /// with 30 s of stale-if-error.
    fn stored(key: &str, fields: &[(&str, &str)], birth: u64) -> Entry {
        let mut head = ResponseHead::new(200);
        for (name, value) in fields {
            head.headers.push(name, *value);
        }
        let lifetime = Lifetime {
            fresh: Duration::from_secs(60),
            stale_if_error: Duration::from_secs(30),
        };
        let birth = SystemTime::UNIX_EPOCH + Duration::from_secs(birth);
        let body = b"hello".as_slice().into();
        Entry::new(
            key.into(),
            head,
            body,
            birth,
            lifetime,
            &Settings::default(),
        )
    }

    fn entry_json(entry: Entry, now_secs: f64) -> String {
        let listed = Listed {
            weight: entry.weight(),
            entry: Arc::new(entry),
        };
        let mut out = String::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(now_secs);
        push_entry(&mut out, &listed, now, Duration::MAX);
        out
    }

    #[test]
    fn an_entry_lists_its_times_validator_variants_tags_and_gzip_copy() {
        let fields = [
            ("ETag", "\"v1\""),
            ("Vary", "Accept-Encoding"),
            ("Surrogate-Key", "product-42 home"),
        ];
        let entry = stored("h/p\naccept-encoding=gzip", &fields, 1_000_000);
        entry.compressed(|_| vec![0; 7]);
        let weight = entry.weight();
        let json = entry_json(entry, 1_000_010.0);
        assert_eq!(
            json,
            format!(
                "{{\"key\":\"h/p\\naccept-encoding=gzip\",\"status\":200,\"body_bytes\":5,\
                 \"weight\":{weight},\"age\":10,\"fresh_for\":50,\"stale_window_left\":30,\
                 \"validator\":true,\"vary\":[\"accept-encoding\"],\
                 \"tags\":[\"home\",\"product-42\"],\"gzip_bytes\":7}}"
            )
        );
        // Stale: a negative `fresh_for`, even half a second past, and
        // what is left of the window.
        let plain = || stored("h/q", &[], 1_000_000);
        let json = entry_json(plain(), 1_000_075.0);
        assert!(
            json.contains("\"fresh_for\":-15,\"stale_window_left\":15,"),
            "{json}"
        );
        assert!(
            json.contains("\"validator\":false,\"vary\":[],\"tags\":[],\"gzip_bytes\":null}"),
            "{json}"
        );
        let json = entry_json(plain(), 1_000_060.5);
        assert!(json.contains("\"fresh_for\":-1,"), "{json}");
        let json = entry_json(plain(), 1_000_200.0);
        assert!(json.contains("\"stale_window_left\":0,"), "{json}");
        let json = entry_json(
            stored(
                "h/r",
                &[("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")],
                0,
            ),
            0.0,
        );
        assert!(json.contains("\"validator\":true"), "{json}");
    }

    #[test]
    fn credentials_and_cookies_a_key_varies_on_are_listed_redacted() {
        let key = "h/a\naccept-encoding=gzip\nauthorization=Basic YW5uOnNlY3JldA==\n\
                   cookie=session=abc123\nproxy-authorization=s3cret";
        let json = entry_json(stored(key, &[], 0), 1.0);
        assert!(
            json.starts_with(
                "{\"key\":\"h/a\\naccept-encoding=gzip\\nauthorization=Basic [redacted]\\n\
                 cookie=[redacted]\\nproxy-authorization=[redacted]\","
            ),
            "{json}"
        );
        // A field the request did not carry keeps its name alone.
        let json = entry_json(stored("h/b\nauthorization", &[], 0), 1.0);
        assert!(
            json.starts_with("{\"key\":\"h/b\\nauthorization\","),
            "{json}"
        );
    }

    #[test]
    fn a_hostile_key_is_listed_escaped() {
        // Keys are the bytes clients sent: a terminal escape, a quote, a
        // backslash, Unicode line ends and a bidi override.
        let key = "h/a\u{1b}[31m\"\\\u{85}\u{2028}\u{202e}é\nx-evil=\u{7}";
        let json = entry_json(stored(key, &[], 0), 1.0);
        let raw = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{202e}');
        assert!(!json.chars().any(raw), "{json:?}");
        assert!(
            json.starts_with(
                "{\"key\":\"h/a\\u001b[31m\\\"\\\\\\u0085\\u2028\\u202eé\\nx-evil=\\u0007\","
            ),
            "{json}"
        );
        assert!(json.contains("\"vary\":[\"x-evil\"]"), "{json}");
    }

    #[test]
    fn status_lists_each_pool_with_its_targets_and_answers() {
        let mut loader = crate::config::Loader::new();
        let text = "targets = 127.0.0.1:9001\npool.api = 127.0.0.1:9002, 127.0.0.1:9003\n\
                    route./api/ = api\n";
        loader.file("proxy.conf", text).unwrap();
        let pools = Pools::new(&loader.build().unwrap());
        let api = pools.get(1);
        api.stats().answers.count(200);
        api.stats().answers.count(502);
        pools.set_admin_state(&api.targets()[1], AdminState::Maint);
        let mut out = String::new();
        push_pools(&mut out, &pools, Instant::now());
        assert_eq!(
            out,
            "[{\"name\":\"default\",\"targets\":1,\"usable\":1,\
             \"requests\":{\"1xx\":0,\"2xx\":0,\"3xx\":0,\"4xx\":0,\"5xx\":0}},\
             {\"name\":\"api\",\"targets\":2,\"usable\":1,\
             \"requests\":{\"1xx\":0,\"2xx\":1,\"3xx\":0,\"4xx\":0,\"5xx\":1}}]"
        );
    }

    #[test]
    fn a_listing_says_whether_it_was_cut_short() {
        let listed = || Listed {
            entry: Arc::new(stored("h/a", &[], 0)),
            weight: 1,
        };
        let mut listing = Listing {
            entries: vec![listed(), listed()],
            truncated: true,
        };
        let json = listing_json(&listing, SystemTime::UNIX_EPOCH, &|_| Duration::MAX);
        assert!(
            json.starts_with("{\"entries\":[{\"key\":\"h/a\","),
            "{json}"
        );
        assert_eq!(json.matches("{\"key\"").count(), 2);
        assert!(json.ends_with("}],\"truncated\":true}"), "{json}");
        listing.entries.clear();
        listing.truncated = false;
        let json = listing_json(&listing, SystemTime::UNIX_EPOCH, &|_| Duration::MAX);
        assert_eq!(json, "{\"entries\":[],\"truncated\":false}");
    }
}
