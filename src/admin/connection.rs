//! One admin connection: reads its request (head, then a `PUT`'s body),
//! checks its credentials, and writes the reply within a deadline.

use super::listener::Gate;
use super::{host_is_an_address, route, Reply};
use crate::auth;
use crate::config::Config;
use crate::http::body::BodyKind;
use crate::http::conn::is_timeout;
use crate::http::date::format_http_date;
use crate::http::head::{find_head_end, parse_request, reason_phrase, RequestLimits};
use crate::http::{BufConn, RequestHead, Version};
use crate::proxy::{starts_a_head_request, Current};
use crate::throttle::OnceAMinute;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

/// Largest admin request head.
const MAX_ADMIN_HEAD: usize = 16 * 1024;
/// Largest admin request body read: a target's new state is one word.
const MAX_ADMIN_BODY: u64 = 1024;

/// Answers one admin request, which must arrive (and its answer leave)
/// within `timeout`, with the configuration in force once it has arrived:
/// one taken at the accept could be one a reload has since replaced (a
/// `PUT` would then set and save the states of targets no longer in force).
pub(super) fn handle(stream: TcpStream, current: &Current, gate: &Gate, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    // Where a browser on this machine would reach it (see `refuse_rebound`).
    let local = stream
        .local_addr()
        .is_ok_and(|a| a.ip().to_canonical().is_loopback());
    // For a `100 Continue`; the reply has its own deadline.
    let _ = stream.set_write_timeout(Some(timeout));
    let mut conn = BufConn::new(stream, 4096);
    let (reply, is_head) = match read_head(&mut conn, deadline) {
        Ok(Some(head)) => {
            // Before the body is read (or a `100 Continue` sent for it).
            let refused = refuse_rebound(&head, local)
                .or_else(|| refuse_unsigned(&head, &current.get().config));
            let reply = match refused {
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
    // Nothing here is to be read as another type than it says, and the
    // page (`GET /`) runs no script, loads nothing, and is framed by no
    // other page.
    out.push_str("X-Content-Type-Options: nosniff\r\n");
    if reply.content_type.starts_with("text/html") {
        out.push_str(
            "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; \
             frame-ancestors 'none'\r\nReferrer-Policy: no-referrer\r\n",
        );
    }
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

/// A `403` for a request over a loopback connection (`local`) whose Host
/// is a name: a web page from a name an attacker points at 127.0.0.1
/// (DNS rebinding) is of the same origin as a listener there, and could
/// read its pages (the targets' addresses, the counts) or send it
/// anything; no such page has an address or `localhost` for its Host. A
/// connection to another address (a scraper on another host, naming this
/// one) is not asked. Taken under any Host: `GET /healthz` (it tells
/// nothing), `PURGE` (its Host names the site whose entries go; those
/// that reach every site ask for an address themselves) and
/// `/cache/entries` (the Host's own site's; another's asks the same).
fn refuse_rebound(head: &RequestHead, local: bool) -> Option<Reply> {
    let target = head.path_and_query();
    let path = target.split('?').next().unwrap_or("");
    let open = head.method == "PURGE" || matches!(path, "/healthz" | "/cache/entries");
    (local && !open && !host_is_an_address(head)).then(|| {
        Reply::text(
            403,
            "over a loopback address, the admin listener takes a Host that is an IP address \
             or localhost (a page from a name pointed at 127.0.0.1 could read it)\n",
        )
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
