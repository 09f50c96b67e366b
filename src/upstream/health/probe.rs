//! One probe on a fresh connection: a connect alone, or a `GET` whose
//! status and body are judged, all within the probe's timeout; and, on
//! such a connection, the body of a `GET` fetched whole (the keys
//! `auth_jwt_key_request` asks for).

use super::checker::{Active, Probe, ProbeKind};
use crate::config::ProbeStep;
use crate::http::body::decode_complete_chunked;
use crate::http::conn::{is_local_shortage, is_timeout, Socket as _};
use crate::http::head::{find_head_end, parse_response, HeadError};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest probe response head read; a health endpoint needs no more.
const MAX_PROBE_HEAD: usize = 8 * 1024;

/// Interim (1xx) heads skipped before the final one.
const MAX_PROBE_INTERIM: usize = 4;

/// Most of a probe's body searched for `health_check_expect_body`: a
/// health endpoint answers in a few bytes, and a page that is not one
/// is not read whole.
pub const MAX_PROBE_BODY: usize = 64 * 1024;

impl Active {
    fn passes(&self, status: u16) -> bool {
        match self.expect_status.is_empty() {
            true => (200..=399).contains(&status),
            false => (self.expect_status.iter()).any(|&(low, high)| (low..=high).contains(&status)),
        }
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    #[error("this proxy cannot open a connection: {0}")]
    Local(io::Error),
    #[error("no reply within {0:?}")]
    Late(Duration),
    #[error("cannot send: {0}")]
    Send(io::Error),
    #[error("no reply: {0}")]
    Receive(io::Error),
    #[error("bad reply: {0}")]
    BadReply(HeadError),
    #[error("reply head too large")]
    HeadTooLarge,
    #[error("closed without a reply")]
    Closed,
    #[error("status {0}")]
    Status(u16),
    #[error("body without `{0}`")]
    Body(Arc<str>),
    #[error("datagrams refused")]
    Refused,
    #[error("reply without `{0}`")]
    Answer(Arc<str>),
    #[error("body larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("body cut short")]
    BodyCut,
    /// A step of `health_check_conversation`, by its number from 1.
    #[error("step {0}: {1}")]
    Step(usize, Box<ProbeError>),
}

/// One probe on a fresh connection, all within `settings.timeout`.
///
/// [`ProbeKind::Connect`]: the connect is the probe, bounded by
/// `connect_timeout` (and the probe's timeout), and the connection is
/// closed as soon as it is made: nothing is sent (but the PROXY header of
/// a `send_proxy` target, whose fate is not waited for) or read, so a backend
/// that accepts and never answers, or resets the connection at once, is
/// up (HAProxy's layer-4 check); unless [`Active::send`] or
/// [`Active::expect`], or [`Active::conversation`], make a conversation
/// of it (see [`converse`]).
///
/// [`ProbeKind::Datagram`]: see [`by_datagram`].
///
/// To a target with `tls`, connecting takes the TLS handshake too, in the
/// same time: a certificate that would fail a request fails the probe
/// (HAProxy's layer-6 check). To a `send_proxy` target, every probe
/// starts with a PROXY header that names no client (`UNKNOWN`, `LOCAL`),
/// as HAProxy's do: its backend refuses a connection without one.
///
/// [`ProbeKind::Http`]: a 2xx or 3xx final status is healthy, or one
/// `expect_status` lists, with a body that holds `expect_body` when that
/// is set (interim 1xx heads are skipped); with `disable_on_404`, a 404
/// is [`Probed::NotFound`], whatever those say (as HAProxy's
/// `disable-on-404` goes before its `http-check expect`).
pub(super) fn probe_once(probe: &Probe, settings: &Active) -> Result<Probed, ProbeError> {
    let within = Within::from_now(settings.timeout);
    if let ProbeKind::Datagram = settings.kind {
        return by_datagram(probe, settings, &within);
    }
    let soft_404 = settings.disable_on_404;
    let Some(answer) = get(probe, settings, &within, "inverso-health-check", soft_404)? else {
        return Ok(Probed::Passed);
    };
    if soft_404 && answer.head.status == 404 {
        return Ok(Probed::NotFound);
    }
    let Some(expected) = &settings.expect_body else {
        return Ok(Probed::Passed);
    };
    // A body cut short (or longer than what is read of it) may still hold
    // the text.
    let (body, _) = read_body(answer, &within, MAX_PROBE_BODY)?;
    let found =
        expected.is_empty() || (body.windows(expected.len())).any(|w| w == expected.as_bytes());
    found
        .then_some(Probed::Passed)
        .ok_or_else(|| ProbeError::Body(expected.clone()))
}

/// [`ProbeKind::Datagram`]: [`Active::send`] sent as a datagram from a
/// socket of the probe's own to the target's address (or its check
/// port), and the first datagram back, within the time, judged: any
/// passes, or one that holds [`Active::expect`] when that is set. A
/// target whose host refuses datagrams (an ICMP port unreachable) fails
/// at once. Nothing of `tls` or `send_proxy`, which are its connections'.
fn by_datagram(probe: &Probe, settings: &Active, within: &Within) -> Result<Probed, ProbeError> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
    // The loader refuses `health_check_udp` beside a Unix socket.
    let addr = (probe.addr.tcp()).ok_or_else(|| {
        ProbeError::Connect(io::Error::new(io::ErrorKind::Unsupported, "a Unix socket"))
    })?;
    let socket = match addr {
        SocketAddr::V4(_) => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)),
    }
    .map_err(ProbeError::Local)?;
    socket.connect(addr).map_err(ProbeError::Connect)?;
    // An earlier probe's refusal may come back at the send.
    let refused = |otherwise: fn(io::Error) -> ProbeError| {
        move |e: io::Error| match e.kind() {
            io::ErrorKind::ConnectionRefused => ProbeError::Refused,
            _ => within.failed(e, otherwise),
        }
    };
    let datagram = settings.send.as_deref().unwrap_or_default();
    socket.send(datagram).map_err(refused(ProbeError::Send))?;
    let mut answer = vec![0u8; 64 * 1024];
    socket
        .set_read_timeout(Some(within.left()?))
        .map_err(ProbeError::Receive)?;
    let length = socket
        .recv(&mut answer)
        .map_err(refused(ProbeError::Receive))?;
    match &settings.expect {
        Some(expected) if memchr::memmem::find(&answer[..length], expected).is_none() => {
            Err(ProbeError::Answer(shown(expected)))
        }
        _ => Ok(Probed::Passed),
    }
}

/// A connect's conversation, as HAProxy's `tcp-check send` and `tcp-check
/// expect string` rules: [`Active::conversation`]'s steps in turn, or
/// else [`Active::send`] and [`Active::expect`] as up to two of them (a
/// banner, SMTP's `220`, with nothing sent; `+PONG` to Redis's `PING`;
/// `role:master` in its `INFO replication`). A send is made once the
/// steps before it are done, and an expect reads until what came since
/// the last send (or the connect) holds its text, within the probe's time
/// and [`MAX_PROBE_BODY`] bytes more: a banner's `250` does not answer
/// the `EHLO` sent after it. A step of `health_check_conversation` that
/// fails is named ([`ProbeError::Step`]); the one exchange's are not.
fn converse(
    stream: &mut crate::http::conn::Stream,
    settings: &Active,
    within: &Within,
) -> Result<(), ProbeError> {
    let one_exchange: Vec<ProbeStep>;
    let (steps, numbered) = match &settings.conversation {
        Some(steps) => (&steps[..], true),
        None => {
            let send = (settings.send.clone()).map(ProbeStep::Send);
            let expect = (settings.expect.clone()).map(ProbeStep::Expect);
            one_exchange = [send, expect].into_iter().flatten().collect();
            (&one_exchange[..], false)
        }
    };
    // What came since the last send.
    let mut reply = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        // Of a conversation, what arrived before a send is no answer to
        // it, read or not. (The one exchange's send comes first: what
        // came before it, a banner, is read after it, as it always was.)
        if numbered && matches!(step, ProbeStep::Send(_)) {
            discard_arrived(stream);
        }
        take_step(stream, step, &mut reply, within).map_err(|e| match numbered {
            true => ProbeError::Step(i + 1, Box::new(e)),
            false => e,
        })?;
    }
    Ok(())
}

/// Reads and drops what has arrived on `stream`, without waiting, up to
/// [`MAX_PROBE_BODY`] bytes; a close or an error is left for the next
/// step to meet.
fn discard_arrived(stream: &crate::http::conn::Stream) {
    let mut chunk = [0u8; 4096];
    let mut dropped = 0;
    while dropped < MAX_PROBE_BODY {
        match stream.read_now(&mut chunk) {
            Ok(n) if n > 0 => dropped += n,
            _ => return,
        }
    }
}

/// One step of [`converse`], with what came since the last send in
/// `reply`.
fn take_step(
    stream: &mut crate::http::conn::Stream,
    step: &ProbeStep,
    reply: &mut Vec<u8>,
    within: &Within,
) -> Result<(), ProbeError> {
    let expected = match step {
        ProbeStep::Send(send) => {
            // What came before is no answer to what is sent now.
            reply.clear();
            stream
                .set_write_timeout(Some(within.left()?))
                .map_err(ProbeError::Send)?;
            return stream
                .write_all(send)
                .map_err(|e| within.failed(e, ProbeError::Send));
        }
        ProbeStep::Expect(expected) => expected,
    };
    let mut chunk = [0u8; 4096];
    let mut read = 0;
    // A reply that came without the text, however it ended, is told as
    // such; none at all in time is late.
    let without = || ProbeError::Answer(shown(expected));
    while memchr::memmem::find(reply, expected).is_none() {
        if read >= MAX_PROBE_BODY {
            return Err(without());
        }
        let got = (within.left())
            .and_then(|left| {
                stream
                    .set_read_timeout(Some(left))
                    .map_err(ProbeError::Receive)
            })
            .and_then(|()| {
                (stream.read(&mut chunk)).map_err(|e| within.failed(e, ProbeError::Receive))
            });
        match got {
            Ok(0) if reply.is_empty() => return Err(ProbeError::Closed),
            Ok(0) => return Err(without()),
            Ok(n) => {
                reply.extend_from_slice(&chunk[..n]);
                read += n;
            }
            Err(ProbeError::Late(_)) if !reply.is_empty() => return Err(without()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `bytes` as a message shows them: text, other bytes escaped (`\r\n`).
fn shown(bytes: &[u8]) -> Arc<str> {
    bytes.escape_ascii().to_string().into()
}

/// A probe that did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probed {
    Passed,
    /// Answered 404 under `disable_on_404`: up, but to be given no new
    /// request (an application on its way out says so).
    NotFound,
}

/// The final head and body of a `GET` of `settings`' path from
/// `probe`'s target, whole and at most `limit` bytes (the keys
/// `auth_jwt_key_request` fetches, and how long they may be used), on a
/// fresh connection opened as a probe's, within `settings.timeout`; a
/// final status `expect_status` does not list is an error.
pub(super) fn fetch_body(
    probe: &Probe,
    settings: &Active,
    limit: usize,
) -> Result<(crate::http::ResponseHead, Vec<u8>), ProbeError> {
    let within = Within::from_now(settings.timeout);
    let answer = get(probe, settings, &within, "inverso", false)?.ok_or(ProbeError::Closed)?;
    let head = answer.head.clone();
    match read_body(answer, &within, limit)? {
        (body, BodyRead::Whole) => Ok((head, body)),
        (_, BodyRead::PastLimit) => Err(ProbeError::BodyTooLarge(limit)),
        (_, BodyRead::Cut) => Err(ProbeError::BodyCut),
    }
}

/// The deadline of one probe.
struct Within {
    deadline: Instant,
    timeout: Duration,
}

impl Within {
    fn from_now(timeout: Duration) -> Within {
        Within {
            deadline: Instant::now() + timeout,
            timeout,
        }
    }

    fn too_late(&self) -> ProbeError {
        ProbeError::Late(self.timeout)
    }

    /// What is left of the time, none being an error.
    fn left(&self) -> Result<Duration, ProbeError> {
        Some(self.deadline.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
            .ok_or_else(|| self.too_late())
    }

    /// A timeout as [`ProbeError::Late`], any other error as `otherwise`.
    fn failed(&self, e: io::Error, otherwise: fn(io::Error) -> ProbeError) -> ProbeError {
        if is_timeout(&e) {
            self.too_late()
        } else {
            otherwise(e)
        }
    }
}

/// A `GET`'s final head, and the connection with what came after it.
struct Answer {
    stream: crate::http::conn::Stream,
    head: crate::http::ResponseHead,
    rest: Vec<u8>,
}

/// Connects to `probe`'s target (see [`probe_once`]) and, for
/// [`ProbeKind::Http`], sends the `GET` and reads its final head, whose
/// status must pass, or be a 404 when `soft_404`; `None` for
/// [`ProbeKind::Connect`], once connected.
fn get(
    probe: &Probe,
    settings: &Active,
    within: &Within,
    user_agent: &str,
    soft_404: bool,
) -> Result<Option<Answer>, ProbeError> {
    let connect_within = settings.timeout.min(settings.connect_timeout);
    let started = Instant::now();
    // A connect alone: no conversation follows.
    let layer_4 = matches!(settings.kind, ProbeKind::Connect)
        && settings.send.is_none()
        && settings.expect.is_none()
        && settings.conversation.is_none();
    let mut stream = super::open(&probe.addr, probe.tls.as_ref(), probe.fastcgi.as_ref())
        .and_then(|stream| {
            match super::connect(&stream, &probe.addr, connect_within) {
                // Only a connection that was made can be reset (a SYN is
                // refused, not reset): the backend took it and let go at
                // once, which a layer-4 check counts as up, as HAProxy's
                // does, however soon the reset came.
                Err(e) if layer_4 && e.kind() == io::ErrorKind::ConnectionReset => {}
                connected => connected?,
            }
            let left = || {
                (within.deadline.min(started + connect_within))
                    .saturating_duration_since(Instant::now())
            };
            if let Some(version) = probe.send_proxy {
                let header = crate::http::send_proxy::header(version, None);
                let sent = super::no_delay(&stream)
                    .and_then(|()| super::send_in_clear(&stream, &header, left()));
                // A layer-4 check asks no more than the connect, made.
                if !layer_4 {
                    sent?;
                }
            }
            super::handshake(&stream, left())?;
            Ok(stream)
        })
        .map_err(|e| {
            if is_local_shortage(&e) {
                ProbeError::Local(e)
            } else {
                ProbeError::Connect(e)
            }
        })?;
    let (method, path) = match &settings.kind {
        // Dropped once it is over: a plain close, nothing waited for (the
        // proxy's side keeps a TIME_WAIT a minute, one per probe: a dozen
        // per target at the default interval).
        ProbeKind::Connect => {
            converse(&mut stream, settings, within)?;
            return Ok(None);
        }
        ProbeKind::Http { method, path } => (method, path),
        // Made without a connection (see `probe_once`).
        ProbeKind::Datagram => return Ok(None),
    };
    stream
        .set_write_timeout(Some(within.left()?))
        .map_err(ProbeError::Send)?;
    let host = settings.host.as_deref().unwrap_or(&probe.host);
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| within.failed(e, ProbeError::Send))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let mut scanned = 0;
    let mut interim = 0;
    loop {
        match find_head_end(&buf, &mut scanned) {
            // One read may bring a whole head past the limit.
            Ok(Some(len)) if len > MAX_PROBE_HEAD => return Err(ProbeError::HeadTooLarge),
            Ok(Some(len)) => {
                let head = parse_response(&buf[..len]).map_err(ProbeError::BadReply)?;
                match head.status {
                    100..=199 if interim < MAX_PROBE_INTERIM => {
                        interim += 1;
                        buf.drain(..len);
                        scanned = 0;
                        continue;
                    }
                    status if !(settings.passes(status) || soft_404 && status == 404) => {
                        return Err(ProbeError::Status(status))
                    }
                    _ => {
                        buf.drain(..len);
                        return Ok(Some(Answer {
                            stream,
                            head,
                            rest: buf,
                        }));
                    }
                }
            }
            Ok(None) if buf.len() > MAX_PROBE_HEAD => return Err(ProbeError::HeadTooLarge),
            Ok(None) => {}
            Err(e) => return Err(ProbeError::BadReply(e)),
        }
        stream
            .set_read_timeout(Some(within.left()?))
            .map_err(ProbeError::Receive)?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ProbeError::Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(within.failed(e, ProbeError::Receive)),
        }
    }
}

/// How much of a body [`read_body`] read.
#[derive(Debug, PartialEq, Eq)]
enum BodyRead {
    Whole,
    /// It ended (or the connection did) before its length or last chunk.
    Cut,
    /// It goes on past the limit.
    PastLimit,
}

/// As much of an answer's body as there is, up to `limit` bytes, and
/// how much of it that is: read to its end (the request said
/// `Connection: close`, and a length or the last chunk may end it sooner)
/// within what is left of the probe's time, and decoded from chunks.
fn read_body(
    answer: Answer,
    within: &Within,
    limit: usize,
) -> Result<(Vec<u8>, BodyRead), ProbeError> {
    use crate::http::{BodyKind, BodyReader, BufConn};
    let Answer {
        mut stream,
        head,
        rest: mut buf,
    } = answer;
    let kind = BodyKind::for_response(false, &head).map_err(ProbeError::BadReply)?;
    // A chunk's data may itself end in an empty line: whole only once the
    // chunks decode to their end.
    let whole = |buf: &[u8]| match kind {
        BodyKind::Empty => true,
        BodyKind::Length(n) => buf.len() as u64 >= n,
        BodyKind::Chunked => decode_complete_chunked(buf, limit as u64).is_some(),
        BodyKind::UntilClose => false,
    };
    let mut closed = false;
    let mut chunk = [0u8; 4096];
    while buf.len() < limit && !whole(&buf) {
        stream
            .set_read_timeout(Some(within.left()?))
            .map_err(ProbeError::Receive)?;
        match stream.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => return Err(within.too_late()),
            Err(e) => return Err(ProbeError::Receive(e)),
        }
    }
    let read = match whole(&buf) || closed && kind == BodyKind::UntilClose {
        true => BodyRead::Whole,
        false if buf.len() >= limit => BodyRead::PastLimit,
        false => BodyRead::Cut,
    };
    // What came, decoded as far as it goes. No limit on the reader, which
    // would refuse a larger body before its first byte.
    let mut conn = BufConn::holding(buf);
    let mut reader = BodyReader::new(kind);
    let mut body = Vec::new();
    while let Ok(Some(piece)) = reader.next(&mut conn) {
        body.extend_from_slice(piece);
    }
    let read = match body.len() > limit {
        true => BodyRead::PastLimit,
        false => read,
    };
    body.truncate(limit);
    Ok((body, read))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{health, probe_at, probing};
    use super::*;
    use crate::config::Endpoint;
    use std::net::SocketAddr;

    /// One probe of a server that reads the request, writes `reply` and
    /// holds the connection open.
    fn probe_answered_with(reply: &'static [u8], timeout: Duration) -> Result<Probed, ProbeError> {
        let settings = Active {
            timeout,
            ..probing(1, 1)
        };
        probe_with(reply, &settings)
    }

    /// [`probe_answered_with`] under `settings`.
    fn probe_with(reply: &'static [u8], settings: &Active) -> Result<Probed, ProbeError> {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(reply);
            // Held until the prober is done with it.
            let _ = stream.read(&mut buf);
        });
        let probe = probe_at(addr);
        let result = probe_once(&probe, settings);
        drop(probe);
        server.join().unwrap();
        result
    }

    /// One probe by connecting, under `send` and `expect`, of a server
    /// that writes `first` at once, then `reply` in two pieces once it
    /// has read something (or, with none, closes): the probe's result and
    /// what the server read.
    fn conversation(
        send: Option<&[u8]>,
        expect: Option<&[u8]>,
        first: &'static [u8],
        reply: &'static [u8],
    ) -> (Result<Probed, ProbeError>, Vec<u8>) {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let _ = stream.write_all(first);
            let mut read = vec![0u8; 1024];
            let n = stream.read(&mut read).unwrap_or(0);
            read.truncate(n);
            if n > 0 && reply.is_empty() {
                return read;
            }
            if n > 0 {
                let (a, b) = reply.split_at(reply.len() / 2);
                let _ = stream.write_all(a);
                std::thread::sleep(Duration::from_millis(20));
                let _ = stream.write_all(b);
            }
            // Held until the prober is done with it.
            let _ = stream.read(&mut [0u8; 64]);
            read
        });
        let settings = Active {
            kind: ProbeKind::Connect,
            timeout: Duration::from_millis(500),
            send: send.map(Arc::from),
            expect: expect.map(Arc::from),
            ..probing(1, 1)
        };
        let probe = probe_at(addr);
        let result = probe_once(&probe, &settings);
        drop(probe);
        (result, server.join().unwrap())
    }

    #[test]
    fn a_connect_with_send_and_expect_is_a_conversation_judged_by_its_reply() {
        let ping = Some(&b"PING\r\n"[..]);
        // Redis: PING answered +PONG, in two pieces; or not.
        let (passed, read) = conversation(ping, Some(b"+PONG"), b"", b"+PONG\r\n");
        assert_eq!(passed.unwrap(), Probed::Passed);
        assert_eq!(read, b"PING\r\n");
        let (failed, _) = conversation(ping, Some(b"+PONG"), b"", b"-LOADING\r\n");
        assert_eq!(failed.unwrap_err().to_string(), "reply without `+PONG`");
        // A banner, nothing sent (SMTP): the server speaks first.
        let (greeted, read) = conversation(None, Some(b"220 "), b"220 mail ready\r\n", b"");
        assert_eq!(greeted.unwrap(), Probed::Passed);
        assert_eq!(read, b"", "nothing sent");
        // Sent alone: passed once sent, as HAProxy's tcp-check send.
        let (sent, read) = conversation(Some(b"QUIT\r\n"), None, b"", b"");
        assert_eq!(sent.unwrap(), Probed::Passed);
        assert_eq!(read, b"QUIT\r\n");
        // Closed with no reply: said so.
        let (closed, _) = conversation(Some(b"QUIT\r\n"), Some(b"221"), b"", b"");
        assert!(matches!(closed, Err(ProbeError::Closed)), "{closed:?}");
        // Silent: late, as any probe.
        let (late, _) = conversation(None, Some(b"220 "), b"", b"");
        assert!(matches!(late, Err(ProbeError::Late(_))), "{late:?}");
        // Shown escaped when it is not text.
        let (odd, _) = conversation(ping, Some(b"+OK\r\n"), b"", b"-ERR\r\n");
        assert_eq!(odd.unwrap_err().to_string(), "reply without `+OK\\r\\n`");
    }

    /// What a scripted server does, in turn, on the one connection it
    /// takes.
    enum Act {
        Write(&'static [u8]),
        /// Reads until what it read in all ends with this (or the
        /// connection does, which ends the script).
        ReadTo(&'static [u8]),
        Close,
    }

    fn send(text: &[u8]) -> ProbeStep {
        ProbeStep::Send(text.into())
    }

    fn expect(text: &[u8]) -> ProbeStep {
        ProbeStep::Expect(text.into())
    }

    /// One probe by connecting, conversing in `steps` within `timeout`,
    /// of a server that plays `script`, then (unless it closed) holds the
    /// connection until the prober is done with it: the probe's result
    /// and all the server read.
    fn steps_with(
        steps: &[ProbeStep],
        script: Vec<Act>,
        timeout: Duration,
    ) -> (Result<Probed, ProbeError>, Vec<u8>) {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut read = Vec::new();
            let mut chunk = [0u8; 1024];
            let mut more = |stream: &mut std::net::TcpStream, read: &mut Vec<u8>| {
                let n = stream.read(&mut chunk).unwrap_or(0);
                read.extend_from_slice(&chunk[..n]);
                n > 0
            };
            for act in script {
                match act {
                    Act::Write(bytes) => stream.write_all(bytes).unwrap(),
                    Act::ReadTo(end) => {
                        while !read.ends_with(end) {
                            if !more(&mut stream, &mut read) {
                                return read;
                            }
                        }
                    }
                    Act::Close => return read,
                }
            }
            while more(&mut stream, &mut read) {}
            read
        });
        let settings = Active {
            kind: ProbeKind::Connect,
            timeout,
            conversation: Some(steps.into()),
            ..probing(1, 1)
        };
        let probe = probe_at(addr);
        let result = probe_once(&probe, &settings);
        drop(probe);
        (result, server.join().unwrap())
    }

    /// `expect 220 | send EHLO inverso.check\r\n | expect 250 | send
    /// QUIT\r\n`.
    fn smtp_steps() -> [ProbeStep; 4] {
        [
            expect(b"220"),
            send(b"EHLO inverso.check\r\n"),
            expect(b"250"),
            send(b"QUIT\r\n"),
        ]
    }

    #[test]
    fn a_conversation_in_steps_waits_for_each_reply_before_the_next_send() {
        use Act::*;
        // SMTP: the banner first, then EHLO answered 250, then QUIT.
        let (passed, read) = steps_with(
            &smtp_steps(),
            vec![
                Write(b"220 mail.example ESMTP\r\n"),
                ReadTo(b"\r\n"),
                Write(b"250-mail.example\r\n250 SIZE 10240000\r\n"),
                ReadTo(b"QUIT\r\n"),
            ],
            Duration::from_secs(10),
        );
        assert_eq!(passed.unwrap(), Probed::Passed);
        assert_eq!(read, b"EHLO inverso.check\r\nQUIT\r\n");
        // Redis with a password: AUTH, then INFO.
        let redis = [
            send(b"AUTH s3cret\r\n"),
            expect(b"+OK"),
            send(b"INFO replication\r\n"),
            expect(b"role:master"),
        ];
        let (passed, read) = steps_with(
            &redis,
            vec![
                ReadTo(b"\r\n"),
                Write(b"+OK\r\n"),
                ReadTo(b"INFO replication\r\n"),
                Write(b"$24\r\n# Replication\r\nrole:master\r\n"),
            ],
            Duration::from_secs(10),
        );
        assert_eq!(passed.unwrap(), Probed::Passed);
        assert_eq!(read, b"AUTH s3cret\r\nINFO replication\r\n");
        // No banner: nothing is sent before it (no pregreet), and the
        // first step is the one that fails.
        let (silent, read) = steps_with(&smtp_steps(), vec![], Duration::from_millis(300));
        assert_eq!(
            silent.unwrap_err().to_string(),
            "step 1: no reply within 300ms"
        );
        assert_eq!(read, b"", "sent before the banner");
    }

    #[test]
    fn an_expect_after_a_send_is_not_answered_by_what_came_before_it() {
        use Act::*;
        // A 250 in the banner, then a refusal of the EHLO.
        let (refused, read) = steps_with(
            &smtp_steps(),
            vec![
                Write(b"220 mail 250 ready\r\n"),
                ReadTo(b"\r\n"),
                Write(b"554 5.7.1 go away\r\n"),
            ],
            Duration::from_secs(10),
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            "step 3: reply without `250`"
        );
        assert_eq!(
            read, b"EHLO inverso.check\r\n",
            "went on past the failed step"
        );
        // The same banner, then nothing at all.
        let (silent, _) = steps_with(
            &smtp_steps(),
            vec![Write(b"220 mail 250 ready\r\n"), ReadTo(b"\r\n")],
            Duration::from_millis(300),
        );
        assert_eq!(
            silent.unwrap_err().to_string(),
            "step 3: no reply within 300ms"
        );
        // Two expects with no send between search the same reply.
        let twice = [expect(b"220"), expect(b"ESMTP"), send(b"QUIT\r\n")];
        let (passed, _) = steps_with(
            &twice,
            vec![Write(b"220 mail ESMTP\r\n")],
            Duration::from_secs(10),
        );
        assert_eq!(passed.unwrap(), Probed::Passed);
    }

    /// A connected pair of plain TCP streams on 127.0.0.1: the prober's,
    /// as a probe holds it (and a handle on its socket), and the server's.
    fn tcp_pair() -> (
        crate::http::conn::Stream,
        std::net::TcpStream,
        std::net::TcpStream,
    ) {
        use socket2::{Domain, Socket, Type};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // Room for more than a probe reads to arrive unread.
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4 * MAX_PROBE_BODY).unwrap();
        socket
            .connect(&listener.local_addr().unwrap().into())
            .unwrap();
        let tcp = std::net::TcpStream::from(socket);
        let (server, _) = listener.accept().unwrap();
        let handle = tcp.try_clone().unwrap();
        let stream = crate::http::conn::Stream::from(crate::http::conn::Kind::Tcp(tcp));
        (stream, handle, server)
    }

    /// Waits until `len` bytes have arrived on `tcp`, none of them read.
    fn arrived(tcp: &std::net::TcpStream, len: usize) {
        let mut peeked = vec![0u8; len];
        while tcp.peek(&mut peeked).unwrap() < len {}
    }

    #[test]
    fn the_one_exchange_still_reads_a_banner_that_came_before_its_send() {
        // `health_check_send` and `health_check_expect` alone: what came
        // before the send is read after it, as it always was.
        let (mut stream, tcp, mut server) = tcp_pair();
        let banner = b"220 mail ready\r\n";
        server.write_all(banner).unwrap();
        arrived(&tcp, banner.len());
        let settings = Active {
            kind: ProbeKind::Connect,
            send: Some(Arc::from(&b"NOOP\r\n"[..])),
            expect: Some(Arc::from(&b"220"[..])),
            ..patient()
        };
        let result = converse(&mut stream, &settings, &Within::from_now(settings.timeout));
        assert!(result.is_ok(), "{result:?}");
        drop((stream, tcp));
        let mut read = Vec::new();
        server.read_to_end(&mut read).unwrap();
        assert_eq!(read, b"NOOP\r\n");
    }

    #[test]
    fn what_arrived_is_dropped_up_to_the_limit_and_a_close_ends_it() {
        // More than the limit arrived: what is past it is left.
        let (stream, mut tcp, mut server) = tcp_pair();
        let flood = vec![b'x'; MAX_PROBE_BODY + 10_000];
        let len = flood.len();
        let writer = std::thread::spawn(move || server.write_all(&flood).unwrap());
        arrived(&tcp, len);
        discard_arrived(&stream);
        writer.join().unwrap();
        let mut left = Vec::new();
        tcp.read_to_end(&mut left).unwrap();
        assert!(!left.is_empty() && left.len() <= 10_000, "{}", left.len());
        // A connection closed (its end read already): returns at once.
        let (stream, mut tcp, server) = tcp_pair();
        drop(server);
        assert_eq!(tcp.read(&mut [0u8; 8]).unwrap(), 0);
        discard_arrived(&stream);
    }

    #[test]
    fn an_expect_reads_no_more_than_the_limit_looking_for_its_text() {
        // The text only past the limit and a chunk: not read that far.
        let (mut stream, _, mut server) = tcp_pair();
        let mut reply = vec![b'x'; MAX_PROBE_BODY + 4096];
        reply.extend_from_slice(b"220 ready\r\n");
        let writer = std::thread::spawn(move || {
            let _ = server.write_all(&reply);
            // Held until the prober is done with it.
            let _ = server.read(&mut [0u8; 64]);
        });
        let settings = Active {
            kind: ProbeKind::Connect,
            expect: Some(Arc::from(&b"220"[..])),
            ..patient()
        };
        let result = converse(&mut stream, &settings, &Within::from_now(settings.timeout));
        drop(stream);
        writer.join().unwrap();
        assert_eq!(result.unwrap_err().to_string(), "reply without `220`");
    }

    #[test]
    fn what_arrived_unread_before_a_send_is_dropped_at_it() {
        use std::net::{TcpListener, TcpStream};
        let banner = b"220 mail 250 ready\r\n";
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.write_all(banner).unwrap();
            let mut read = [0u8; 64];
            let n = stream.read(&mut read).unwrap_or(0);
            let _ = stream.write_all(b"554 go away\r\n");
            // Held until the prober is done with it.
            let _ = stream.read(&mut [0u8; 64]);
            read[..n].to_vec()
        });
        let tcp = TcpStream::connect(addr).unwrap();
        // The whole banner has come, and nothing of it is read.
        let mut peeked = [0u8; 64];
        loop {
            match tcp.peek(&mut peeked).unwrap() {
                0 => panic!("closed before its banner"),
                n if n >= banner.len() => break,
                _ => {}
            }
        }
        let mut stream = crate::http::conn::Stream::from(crate::http::conn::Kind::Tcp(tcp));
        let settings = Active {
            kind: ProbeKind::Connect,
            conversation: Some([send(b"EHLO x\r\n"), expect(b"250")].into()),
            ..patient()
        };
        let result = converse(&mut stream, &settings, &Within::from_now(settings.timeout));
        drop(stream);
        assert_eq!(server.join().unwrap(), b"EHLO x\r\n");
        assert_eq!(
            result.unwrap_err().to_string(),
            "step 2: reply without `250`"
        );
    }

    #[test]
    fn a_conversation_cut_short_names_the_step_it_was_at() {
        use Act::*;
        let (closed, read) = steps_with(
            &smtp_steps(),
            vec![Write(b"220 mail ready\r\n"), ReadTo(b"\r\n"), Close],
            Duration::from_secs(10),
        );
        let closed = closed.unwrap_err();
        assert_eq!(closed.to_string(), "step 3: closed without a reply");
        assert!(
            matches!(&closed, ProbeError::Step(3, e) if matches!(**e, ProbeError::Closed)),
            "{closed:?}"
        );
        assert_eq!(read, b"EHLO inverso.check\r\n");
        // Closed at once: the banner's step fails.
        let (closed, _) = steps_with(&smtp_steps(), vec![Close], Duration::from_secs(10));
        assert_eq!(
            closed.unwrap_err().to_string(),
            "step 1: closed without a reply"
        );
    }

    #[test]
    fn under_disable_on_404_a_404_is_a_probe_passed_by_a_target_on_its_way_out() {
        let not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\ngone";
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nUP";
        let soft = |expect_status: &[(u16, u16)], body: Option<&str>| Active {
            disable_on_404: true,
            expect_status: expect_status.into(),
            expect_body: body.map(Into::into),
            ..probing(1, 1)
        };
        assert_eq!(
            probe_with(not_found, &soft(&[], None)).unwrap(),
            Probed::NotFound
        );
        // Before what the checks expect, as HAProxy's: listed, or with a
        // body without the text, a 404 is still one.
        let listed = soft(&[(200, 200), (404, 404)], Some("UP"));
        assert_eq!(probe_with(not_found, &listed).unwrap(), Probed::NotFound);
        assert_eq!(probe_with(ok, &listed).unwrap(), Probed::Passed);
        let without = Active {
            disable_on_404: false,
            ..soft(&[], None)
        };
        assert!(matches!(
            probe_with(not_found, &without),
            Err(ProbeError::Status(404))
        ));
        let other = b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            probe_with(other, &soft(&[], None)),
            Err(ProbeError::Status(410))
        ));
    }

    #[test]
    fn a_probe_passes_with_the_expected_statuses_and_a_body_holding_the_text() {
        let expecting = |statuses: &[(u16, u16)], body: Option<&str>| Active {
            expect_status: statuses.into(),
            expect_body: body.map(Into::into),
            ..probing(1, 1)
        };
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"UP\"}";
        let redirect = b"HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n";
        let only_200 = expecting(&[(200, 200)], None);
        assert!(probe_with(ok, &only_200).is_ok());
        // A redirect to a login page passes by default, not when 200 is asked.
        assert!(probe_with(redirect, &probing(1, 1)).is_ok());
        let refused = probe_with(redirect, &only_200).unwrap_err();
        assert_eq!(refused.to_string(), "status 302");
        let degraded = b"HTTP/1.1 503 Down\r\nContent-Length: 0\r\n\r\n";
        assert!(probe_with(degraded, &expecting(&[(200, 299), (503, 503)], None)).is_ok());

        assert!(probe_with(ok, &expecting(&[], Some("\"UP\""))).is_ok());
        let down = b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"status\":\"DOWN\"}";
        let missing = probe_with(down, &expecting(&[], Some("\"UP\""))).unwrap_err();
        assert_eq!(missing.to_string(), "body without `\"UP\"`");
        // Decoded from its chunks: the text split between two is found.
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        3\r\nall\r\n7\r\n is wel\r\n1\r\nl\r\n0\r\n\r\n";
        assert!(probe_with(chunked, &expecting(&[], Some("is well"))).is_ok());
        // A body longer than what is read of it: its start is searched.
        let long: &'static [u8] = Box::leak(
            [
                &b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nstatus UP "[..],
                &[b'.'; 100_000 - 10],
            ]
            .concat()
            .into_boxed_slice(),
        );
        assert!(probe_with(long, &expecting(&[], Some("UP"))).is_ok());
        // A chunk whose data ends in an empty line is not the body's end.
        let blank = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                      4\r\n\r\n\r\n\r\n2\r\nUP\r\n0\r\n\r\n";
        assert!(probe_with(blank, &expecting(&[], Some("UP"))).is_ok());
        let empty = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert!(probe_with(empty, &expecting(&[], Some("ok"))).is_err());
        // A body that never ends fails at the probe's deadline.
        let endless = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nnot yet";
        let slow = Active {
            timeout: Duration::from_millis(100),
            ..expecting(&[], Some("ok"))
        };
        assert_eq!(
            probe_with(endless, &slow).unwrap_err().to_string(),
            "no reply within 100ms"
        );
    }

    /// What [`fetch_body`] makes, at `limit` bytes and for any 2xx, of
    /// `reply` from a server that closes the connection after it; and
    /// the request the server read.
    fn fetched(reply: &'static [u8], limit: usize) -> (Result<Vec<u8>, ProbeError>, String) {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).unwrap_or(0);
            let _ = stream.write_all(reply);
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let settings = Active {
            expect_status: Arc::new([(200, 299)]),
            ..patient()
        };
        let result = fetch_body(&probe_at(addr), &settings, limit).map(|(_, body)| body);
        (result, server.join().unwrap())
    }

    #[test]
    fn a_fetched_body_is_taken_whole_or_not_at_all() {
        let keys = b"{\"keys\":[]}".to_vec();
        let (whole, asked) = fetched(
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"keys\":[]}",
            11,
        );
        assert_eq!(whole.unwrap(), keys);
        assert!(asked.starts_with("GET /health HTTP/1.1\r\n"), "{asked}");
        assert!(asked.contains("\r\nUser-Agent: inverso\r\n"), "{asked}");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        5\r\n{\"key\r\n6\r\ns\":[]}\r\n0\r\n\r\n";
        assert_eq!(fetched(chunked, 100).0.unwrap(), keys);
        let until_close = b"HTTP/1.1 200 OK\r\n\r\n{\"keys\":[]}";
        assert_eq!(fetched(until_close, 100).0.unwrap(), keys);

        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{\"keys\":[]}";
        assert!(matches!(fetched(short, 100).0, Err(ProbeError::BodyCut)));
        let no_last_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"key\r\n";
        assert!(matches!(
            fetched(no_last_chunk, 100).0,
            Err(ProbeError::BodyCut)
        ));
        for past in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"keys\":[]}"[..],
            until_close,
        ] {
            let e = fetched(past, 10).0.unwrap_err();
            assert_eq!(e.to_string(), "body larger than 10 bytes");
        }
        let missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            fetched(missing, 100).0,
            Err(ProbeError::Status(404))
        ));
    }

    #[test]
    fn a_fetched_body_longer_than_the_limit_is_too_large_though_only_the_limit_came() {
        // Its length says more than the limit: what is missing is past
        // it, so the set is too large, not cut short (the error says
        // which setting to look at).
        let longer = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{\"keys\":[]";
        let e = fetched(longer, 10).0.unwrap_err();
        assert_eq!(e.to_string(), "body larger than 10 bytes");
    }

    #[test]
    fn a_probe_skips_interim_heads_and_names_a_timeout() {
        let s = Duration::from_secs;
        let continued = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert!(probe_answered_with(continued, s(5)).is_ok());
        let failing = b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 503 No\r\n\r\n";
        let failed = probe_answered_with(failing, s(5));
        assert!(matches!(failed, Err(ProbeError::Status(503))), "{failed:?}");
        let silent = probe_answered_with(b"", Duration::from_millis(100)).unwrap_err();
        assert_eq!(silent.to_string(), "no reply within 100ms");
    }

    fn leaked(parts: &[&[u8]]) -> &'static [u8] {
        Box::leak(parts.concat().into_boxed_slice())
    }

    /// Time enough for a probe that passes to pass on a loaded machine.
    fn patient() -> Active {
        Active {
            timeout: Duration::from_secs(10),
            ..probing(1, 1)
        }
    }

    #[test]
    fn a_probe_reads_a_head_of_a_few_kilobytes_and_refuses_one_past_the_limit() {
        let padded = |n: usize| {
            leaked(&[
                b"HTTP/1.1 200 OK\r\nX-Padding: ",
                &vec![b'p'; n],
                b"\r\nContent-Length: 0\r\n\r\n",
            ])
        };
        assert!(probe_with(padded(4000), &patient()).is_ok());
        // The head's own length without the padding's.
        let rest = padded(0).len();
        assert!(probe_with(padded(MAX_PROBE_HEAD - rest), &patient()).is_ok());
        for past in [MAX_PROBE_HEAD - rest + 1, 2 * MAX_PROBE_HEAD] {
            let large = probe_with(padded(past), &patient());
            assert!(
                matches!(large, Err(ProbeError::HeadTooLarge)),
                "{past}: {large:?}"
            );
        }
    }

    #[test]
    fn a_head_that_never_ends_is_refused_once_past_the_limit_not_waited_for() {
        // After an interim head, so that what is held of the final one
        // never stands at the limit exactly; held open afterwards, so
        // that only the limit ends the probe before its timeout.
        let endless = leaked(&[
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Padding: ",
            &vec![b'p'; 4 * MAX_PROBE_HEAD],
        ]);
        let refused = probe_with(endless, &patient());
        assert!(
            matches!(refused, Err(ProbeError::HeadTooLarge)),
            "{refused:?}"
        );
    }

    #[test]
    fn a_probe_skips_a_few_interim_heads_but_not_an_endless_run_of_them() {
        let after = |interim: usize| {
            leaked(&[
                &b"HTTP/1.1 100 Continue\r\n\r\n".repeat(interim),
                b"HTTP/1.1 204 No Content\r\n\r\n",
            ])
        };
        assert!(probe_with(after(MAX_PROBE_INTERIM), &patient()).is_ok());
        let flood = probe_with(after(MAX_PROBE_INTERIM + 1), &patient());
        assert!(matches!(flood, Err(ProbeError::Status(100))), "{flood:?}");
    }

    #[test]
    fn a_probe_searches_the_first_64_kib_of_a_body_for_the_text() {
        let up_at = |at: usize| {
            let mut body = vec![b'.'; 100_000];
            body[at..at + 2].copy_from_slice(b"UP");
            leaked(&[b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", &body])
        };
        let expecting_up = Active {
            expect_body: Some("UP".into()),
            ..patient()
        };
        // Written out rather than read from the constant under test.
        let limit = 64 * 1024;
        assert!(probe_with(up_at(limit - 2), &expecting_up).is_ok());
        let past = probe_with(up_at(limit), &expecting_up);
        assert!(matches!(past, Err(ProbeError::Body(_))), "{past:?}");
        // A body that ends at the close, the connection held open: the
        // limit read is enough, the probe waits for no more.
        let mut body = vec![b'.'; limit];
        body[..2].copy_from_slice(b"UP");
        let held = leaked(&[b"HTTP/1.1 200 OK\r\n\r\n", &body]);
        assert!(probe_with(held, &expecting_up).is_ok());
    }

    #[test]
    fn a_body_cut_by_a_reset_is_a_failure_to_receive_not_a_late_reply() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let _ = stream.read(&mut [0u8; 1024]);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nnot yet");
            // Dropped with a zero linger: a reset, not a close.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        });
        let probe = probe_at(addr);
        let settings = Active {
            expect_body: Some("ok".into()),
            ..patient()
        };
        let reset = probe_once(&probe, &settings);
        server.join().unwrap();
        assert!(matches!(reset, Err(ProbeError::Receive(_))), "{reset:?}");
    }

    /// A connect probe of `addr`, given long enough to pass on a loaded
    /// machine (see [`connect_probe_within`]).
    fn connect_probe(addr: Endpoint) -> Result<Probed, ProbeError> {
        connect_probe_within(addr, Duration::from_secs(10))
    }

    fn connect_probe_within(addr: Endpoint, within: Duration) -> Result<Probed, ProbeError> {
        let settings = Active {
            kind: ProbeKind::Connect,
            timeout: within,
            connect_timeout: within,
            ..probing(1, 1)
        };
        let probe = Probe {
            name: "t:1".into(),
            host: "t:1".into(),
            addr,
            tls: None,
            fastcgi: None,
            send_proxy: None,
            health: Arc::new(health(1, 10)),
        };
        probe_once(&probe, &settings)
    }

    #[test]
    fn a_connect_probe_passes_whatever_the_backend_does_once_connected() {
        use std::net::TcpListener;
        // Never accepted: the system completes the handshake all the same.
        let unaccepted = TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(connect_probe(unaccepted.local_addr().unwrap().into()).is_ok());
        // Accepted, then nothing: closed by the probe, nothing sent.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = silent.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream.read(&mut [0u8; 64]).map_err(|e| e.kind())
        });
        assert!(connect_probe(addr.into()).is_ok());
        assert_eq!(server.join().unwrap(), Ok(0), "not closed, or sent to");
        // Accepted and reset at once: still up (a layer-4 check).
        let resetting = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = resetting.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in resetting.incoming().flatten() {
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            }
        });
        assert!(connect_probe(addr.into()).is_ok());
    }

    #[test]
    fn a_connect_probe_fails_where_nothing_listens() {
        use socket2::{Domain, Socket, Type};
        // Bound, not listening: refused.
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let refused = connect_probe(addr.into()).unwrap_err();
        assert!(matches!(refused, ProbeError::Connect(_)), "{refused:?}");
        assert!(
            refused.to_string().starts_with("cannot connect: "),
            "{refused}"
        );
        // A listen queue that stays full: SYNs dropped, the connect
        // ends at its timeout.
        socket.listen(0).unwrap();
        let _filler = std::net::TcpStream::connect(addr).unwrap();
        assert!(connect_probe_within(addr.into(), Duration::from_millis(200)).is_err());
    }

    #[test]
    fn a_connect_probe_of_a_unix_target_connects_to_its_socket() {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let missing = connect_probe(Endpoint::Unix(path.clone())).unwrap_err();
        assert!(matches!(missing, ProbeError::Connect(_)), "{missing:?}");
        let listener = UnixListener::bind(&path).unwrap();
        assert!(connect_probe(Endpoint::Unix(path.clone())).is_ok());
        // Left behind by a backend that died: refused.
        drop(listener);
        assert!(connect_probe(Endpoint::Unix(path)).is_err());
    }
}
