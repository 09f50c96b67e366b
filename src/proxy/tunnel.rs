//! Protocol upgrades (WebSocket and friends): once a backend answers an
//! `Upgrade` request with `101 Switching Protocols`, the connection is no
//! longer HTTP. The proxy relays the 101 head, then copies bytes both ways
//! until both sides have finished (a side's end of stream is passed on as a
//! half-close, and the other direction goes on), either fails, or both stay
//! silent for the idle timeout. The backend connection is never returned
//! to the pool.
//!
//! Its `$termination` is HAProxy's for a tunnel: `--` when the sides
//! closed (a FIN each way, whoever began), `CD` or `SD` for the side that
//! aborted it (a reset, a failed read or write), `cD` for the tunnel idling
//! out, `cD` or `sD` for a side that took nothing for as long.

use super::origin::Fetched;
use super::{Client, Outcome, Refusal, Shared};
use crate::access_log::{By, Stage, Termination};
use crate::http::conn::{is_timeout, ClientStream, Socket, Stream};
use crate::http::forward::strip_hop_by_hop;
use crate::http::head::is_tchar;
use crate::http::{RequestHead, Version};
use crate::throttle::OnceAMinute;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Bytes copied per read in each direction.
const TUNNEL_BUFFER: usize = 16 * 1024;
/// The helper thread copies bytes and nothing else (its buffer is on the
/// heap): a small stack, like the workers'.
const TUNNEL_STACK: usize = 64 * 1024;
/// How long the client is given, once the backend's side failed after
/// all it sent had been passed on, to read that and close before its
/// socket is shut (as a lingering close gives it).
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// RFC 9110 §7.8: a request asks to switch protocols with an `Upgrade`
/// field named in `Connection` ("A sender of Upgrade MUST also send an
/// "Upgrade" connection option in the Connection header field"), and
/// "A server MUST ignore an Upgrade header field that is received in an
/// HTTP/1.0 request."
///
/// Never to cleartext HTTP/2 (`h2c`): behind the switch every request
/// goes to the backend unseen by the proxy (not logged, not limited,
/// past any rule in front of the path), which is what "h2c smuggling"
/// exploits. Such a request is forwarded as plain HTTP/1.1, its `Upgrade`
/// dropped with the other hop-by-hop fields (HAProxy does the same).
///
/// Every protocol named must be one (`name` or `name/version`, tokens,
/// RFC 9110 §7.8): a value another reader could split differently (a
/// quote, say) must not carry an `h2c` past this check.
pub(super) fn is_upgrade_request(head: &RequestHead) -> bool {
    head.version == Version::Http11
        && head.headers.has_token("connection", "upgrade")
        && head.headers.tokens("upgrade").next().is_some()
        && head
            .headers
            .get_all("upgrade")
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|p| !p.is_empty())
            .all(|p| is_protocol(p) && !is_h2c(p))
}

/// `protocol-name ["/" protocol-version]`, both tokens.
fn is_protocol(p: &[u8]) -> bool {
    let token = |t: &[u8]| !t.is_empty() && t.iter().all(|&b| is_tchar(b));
    match p.iter().position(|&b| b == b'/') {
        Some(slash) => token(&p[..slash]) && token(&p[slash + 1..]),
        None => token(p),
    }
}

fn is_h2c(p: &[u8]) -> bool {
    p.get(..3).is_some_and(|h| h.eq_ignore_ascii_case(b"h2c"))
}

/// Whether the protocol a 101 switched to is one of those `asked` for:
/// the same name (any case), and the same version if the client named one.
fn was_asked(switched: &str, asked: &[&str]) -> bool {
    let (name, version) = switched.split_once('/').unwrap_or((switched, ""));
    asked.iter().any(|a| {
        let (a_name, a_version) = a.split_once('/').unwrap_or((a, ""));
        a_name.eq_ignore_ascii_case(name) && (a_version.is_empty() || a_version == version)
    })
}

/// Relays the backend's 101 to the client and then the two byte streams.
pub(super) fn run(
    client: &mut Client,
    fetched: Fetched<'_>,
    request: &RequestHead,
    shared: &Shared,
) -> Result<Outcome, Refusal> {
    let Fetched {
        target,
        mut up,
        mut response,
        head_len,
        ..
    } = fetched;
    let upstream = Some(target.name.clone());
    // RFC 9110 §15.2.2: "The server MUST generate an Upgrade header field
    // in the response that indicates which protocol(s) are being switched
    // to". Without one, nobody knows what follows: 502.
    // And "A server MUST NOT switch to a protocol that was not indicated
    // by the client": a backend that does would hand the client's
    // connection to something nobody asked for (h2c, say).
    let asked: Vec<&str> = request.headers.tokens("upgrade").collect();
    let problem = {
        let mut switched = response.headers.tokens("upgrade").peekable();
        if switched.peek().is_none() {
            Some("101 without Upgrade")
        } else if !switched.all(|p| was_asked(p, &asked)) {
            Some("101 to a protocol the client did not ask for")
        } else {
            None
        }
    };
    if let Some(problem) = problem {
        // A failure of the target, a 502 in the access log: said as the
        // others are (a backend that does it does it to every upgrade).
        super::origin::warn_failure(target, problem, client);
        return Err(Refusal {
            status: Some(502),
            upstream,
            keep_alive: false,
        });
    }
    up.conn.consume(head_len);
    strip_hop_by_hop(&mut response.headers, true);
    // As on every other response (see `relay::relay`).
    (shared.caching(client.route).own_fields).remove_from(&mut response.headers);
    response.version = Version::Http11;
    let mut head = Vec::with_capacity(256);
    response.write_start(&mut head);
    client.push_request_id(&mut head);
    head.extend_from_slice(b"Connection: Upgrade\r\n\r\n");
    client.note_sent_head(&[&head]);
    // Whatever either side sent right behind its head belongs to the new
    // protocol and goes through first (none of it the request's length).
    let early_from_up = up.conn.take_past_messages();
    head.extend_from_slice(&early_from_up);
    let early_from_client = client.conn.take_past_messages();
    let early = early_from_up.len() as u64;

    let closing = |bytes: u64| Outcome {
        status: 101,
        bytes,
        upstream: upstream.clone(),
        keep_alive: false,
        cache: None,
        linger: true,
    };
    if client.conn.get_mut().write_all(&head).is_err() {
        client.departure(Stage::Data);
        return Ok(closing(0));
    }
    let idle = shared.pool_config(client.route).tunnel_timeout;
    let client_stream: &ClientStream = client.conn.get_ref();
    let mut up_stream: &Stream = up.conn.get_ref();
    if up_stream.write_all(&early_from_client).is_err() {
        let _ = client_stream.shutdown(Shutdown::Both);
        client.ended(Termination::new(By::Server, Stage::Data));
        return Ok(closing(0));
    }
    let Relayed {
        to_client, ended, ..
    } = relay_both_ways(client_stream, up_stream, idle);
    // A forced shutdown cuts tunnels as it does any exchange: whatever
    // each side then saw is its doing.
    if client.watch.cut() {
        client.ended(Termination::new(By::Killed, Stage::Data));
    } else if let Some(ended) = ended {
        client.ended(ended);
    }
    Ok(closing(early + to_client))
}

/// What [`relay_both_ways`] copied, and what ended it if it was not both
/// sides closing: the first direction to fail tells it, as the other's
/// failure is then of the proxy's closing (see [`Ended::termination`]).
pub(super) struct Relayed {
    pub to_client: u64,
    pub to_backend: u64,
    pub ended: Option<Termination>,
}

/// Copies client -> backend on a helper thread and backend -> client on
/// this one, until both directions have ended, either fails, or neither
/// sends anything for `idle`.
pub(super) fn relay_both_ways(client: &ClientStream, up: &Stream, idle: Duration) -> Relayed {
    let sockets: [&dyn Socket; 2] = [client, up];
    for s in sockets {
        let _ = s.set_read_timeout(Some(idle));
        let _ = s.set_write_timeout(Some(idle));
    }
    let activity = Activity::new();
    // Set before the sockets are closed, so the failure that closing
    // brings about on the other direction comes second.
    let first = OnceLock::new();
    let tell = |ended: &Ended, toward_client: bool| {
        if let Some(how) = ended.termination(toward_client) {
            let _ = first.set(how);
        }
    };
    let to_backend = AtomicU64::new(0);
    let to_client = std::thread::scope(|scope| {
        // `scope.spawn` would panic if the system refused a thread.
        let upward = std::thread::Builder::new()
            .name("tunnel".into())
            .stack_size(TUNNEL_STACK)
            .spawn_scoped(scope, || {
                // A client's failure (a reset) or the tunnel idling out
                // ends both sides at once.
                let (copied, ended) = pump(client, up, &activity, idle);
                to_backend.store(copied, Ordering::Relaxed);
                tell(&ended, false);
                if !matches!(ended, Ended::Done | Ended::Gone) {
                    close_both(client, up);
                }
            });
        let upward = match upward {
            Ok(upward) => upward,
            Err(e) => {
                // The system's failure, not the target's: any thread may
                // meet it, under load every tunnel.
                static UNSTARTED: OnceAMinute = OnceAMinute::new();
                if UNSTARTED.due() {
                    log::warn!("cannot start a tunnel thread: {e} (said at most once a minute)");
                }
                close_both(client, up);
                // Neither side's doing: none of HAProxy's letters fits a
                // thread refused better than a resource run out.
                let _ = first.set(Termination::new(By::Resource, Stage::Data));
                return 0;
            }
        };
        let (sent, ended) = pump(up, client, &activity, idle);
        tell(&ended, true);
        let close_after_grace = || {
            let deadline = Instant::now() + CLOSE_GRACE;
            while !upward.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !upward.is_finished() {
                close_both(up, client);
            }
        };
        match ended {
            Ended::Done => {}
            Ended::Idle | Ended::Stalled => close_both(up, client),
            // The client is gone: what it sent before may still be on its
            // way to the backend, but no longer than the grace (the backend
            // may read nothing, and nobody waits for its answer).
            Ended::Gone => close_after_grace(),
            // The backend's side failed (a reset after its last frame):
            // what it sent before is in the client's socket, still on
            // its way. Shutting the client's reading side now would
            // defeat the lingering close that keeps a reset from
            // destroying it: the client gets the end of the stream, and
            // a while to read and close, before it is forced.
            Ended::Cut => {
                let _ = up.shutdown(Shutdown::Both);
                let _ = client.shutdown(Shutdown::Write);
                close_after_grace();
            }
        }
        sent
    });
    Relayed {
        to_client,
        to_backend: to_backend.into_inner(),
        ended: first.get().copied(),
    }
}

/// How a direction of the tunnel ended.
#[derive(PartialEq)]
enum Ended {
    /// Its source ended (passed on as a half-close): the other direction
    /// goes on to its own end.
    Done,
    /// Its destination is gone (a failed write; shut both ways): the
    /// other direction goes on, but (towards the backend) only for
    /// `CLOSE_GRACE`, as nobody is left to read an answer.
    Gone,
    /// Reading its source failed (a reset, a TLS error): nothing more
    /// comes from there.
    Cut,
    /// The tunnel idled out: both sides are to be closed at once.
    Idle,
    /// The destination took nothing for as long as the tunnel may idle:
    /// both sides are to be closed at once.
    Stalled,
}

impl Ended {
    /// What the end of a direction (`toward_client`, or toward the
    /// backend) says of the tunnel's, in HAProxy's letters: a source that
    /// ended is a side closing, no failure; a side that failed (read
    /// from or written to) aborted it; the tunnel idling out is the
    /// client's timeout, as HAProxy's `timeout tunnel` is told first on
    /// the client's side; a side that took nothing, its own timeout.
    fn termination(&self, toward_client: bool) -> Option<Termination> {
        let (source, destination) = match toward_client {
            true => (By::Server, By::Client),
            false => (By::Client, By::Server),
        };
        let by = match self {
            Ended::Done => return None,
            Ended::Gone => destination,
            Ended::Cut => source,
            Ended::Idle => By::ClientTimeout,
            Ended::Stalled if toward_client => By::ClientTimeout,
            Ended::Stalled => By::ServerTimeout,
        };
        Some(Termination::new(by, Stage::Data))
    }
}

/// When either direction last moved a byte, shared by both: a quiet
/// direction is fine as long as the other one talks.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// How much longer the tunnel may stay silent before it has idled
    /// `limit`: zero once it has.
    fn left_of(&self, limit: Duration) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        limit.saturating_sub(self.start.elapsed().saturating_sub(last))
    }
}

/// Copies `from` to `to` until the end: the bytes copied, and how it
/// ended. The end of `from`'s stream is passed on as a half-close of `to`
/// (a client may send its last message and shut its side, still waiting
/// for the answer); a destination gone
/// (a failed write) shuts it and leaves the source to the other
/// direction. A failed read, the whole tunnel idling out, or a
/// destination taking nothing for as long is said to the caller, which
/// closes what it must. Generic, not `dyn`: each direction
/// goes from one kind of socket to another (a client's TCP, a backend's
/// TCP or Unix).
fn pump<F: Socket, T: Socket>(
    mut from: &F,
    mut to: &T,
    activity: &Activity,
    idle: Duration,
) -> (u64, Ended)
where
    for<'a> &'a F: Read,
    for<'a> &'a T: Write,
{
    let mut buf = vec![0u8; TUNNEL_BUFFER];
    let mut copied = 0u64;
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return (copied, Ended::Done);
            }
            Ok(n) => {
                match to.write_all(&buf[..n]) {
                    Ok(()) => {}
                    // `to`'s peer is gone (a backend that closed after
                    // its last message while the client still talks):
                    // what it sent before is still on its way the other
                    // way, which ends as its reads of `to` do. Shutting
                    // `to` ends them past what arrived; `from` is left to
                    // that direction, which writes to it.
                    Err(e) if !is_timeout(&e) => {
                        let _ = to.shutdown(Shutdown::Both);
                        return (copied, Ended::Gone);
                    }
                    Err(_) => return (copied, Ended::Stalled),
                }
                copied += n as u64;
                activity.touch();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                let left = activity.left_of(idle);
                if left.is_zero() {
                    return (copied, Ended::Idle);
                }
                // The other direction talked meanwhile: the next wait is
                // what is left of the window since, not a whole one more.
                let _ = from.set_read_timeout(Some(left));
            }
            Err(_) => return (copied, Ended::Cut),
        }
    }
}

fn close_both(a: &impl Socket, b: &impl Socket) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}
