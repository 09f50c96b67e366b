//! TCP stream proxying (`stream.<name> = <pool> listen=[ADDR:]PORT
//! [proxy_protocol]`, HAProxy's `mode tcp`, nginx's `stream { proxy_pass
//! }`), over real sockets: bytes copied both ways with half-closes passed
//! on, large transfers intact, the pool's balancing, failover past a
//! refusing target, PROXY headers sent and taken, TLS to a target, the
//! access lists, `max_conns` and the connection limits, the idle timeout,
//! the access log's line per connection, HTTP served beside, shutdown, and
//! what the loader refuses.
//!
//! The targets are tiny TCP servers of this file's ([`Upstream`]): an
//! echo, optionally greeting each connection with its name first, that
//! counts connections and keeps the first bytes each one brought.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::pki::Pki;
use support::tls_backend::{TlsBackend, TlsSetup, TlsStream};
use support::*;

/// The most of each connection's bytes an [`Upstream`] keeps.
const KEPT: usize = 64 * 1024;

/// A TCP target: echoes what it reads (after a `NAME\r\n` greeting when
/// it has a name) and, at the client's end of stream, ends its own
/// sending side, then closes.
#[derive(Clone)]
struct Upstream {
    addr: SocketAddr,
    /// Connections accepted.
    accepted: Arc<AtomicUsize>,
    /// Connections accepted and not closed yet.
    open: Arc<AtomicUsize>,
    /// The first [`KEPT`] bytes of each connection, by its number.
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Upstream {
    /// An echo that says nothing first.
    fn echo() -> Upstream {
        Upstream::start(None)
    }

    /// An echo that greets each connection with `name` and CRLF first.
    fn greeting(name: &str) -> Upstream {
        Upstream::start(Some(name.to_string()))
    }

    fn start(greeting: Option<String>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = Upstream {
            addr: listener.local_addr().unwrap(),
            accepted: Arc::default(),
            open: Arc::default(),
            received: Arc::default(),
        };
        let u = upstream.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let id = u.accepted.fetch_add(1, Ordering::SeqCst);
                u.open.fetch_add(1, Ordering::SeqCst);
                u.received.lock().unwrap().push(Vec::new());
                let (u, greeting) = (u.clone(), greeting.clone());
                std::thread::spawn(move || {
                    u.serve(id, stream, greeting.as_deref());
                    u.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        upstream
    }

    fn serve(&self, id: usize, mut stream: TcpStream, greeting: Option<&str>) {
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        if let Some(name) = greeting {
            if stream.write_all(format!("{name}\r\n").as_bytes()).is_err() {
                return;
            }
        }
        let mut chunk = vec![0u8; 64 * 1024];
        // Bounded: each read waits at most the I/O timeout, and no test
        // sends more than a few thousand reads' worth.
        for _ in 0..1_000_000 {
            match stream.read(&mut chunk) {
                Ok(0) => {
                    let _ = stream.shutdown(std::net::Shutdown::Write);
                    return;
                }
                Err(_) => return,
                Ok(n) => {
                    {
                        let mut received = self.received.lock().unwrap();
                        let kept = &mut received[id];
                        let room = KEPT.saturating_sub(kept.len()).min(n);
                        kept.extend_from_slice(&chunk[..room]);
                    }
                    if stream.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// The bytes connection `id` brought (its first [`KEPT`]).
    fn received(&self, id: usize) -> Vec<u8> {
        (self.received.lock().unwrap().get(id).cloned()).unwrap_or_default()
    }
}

/// Where the stream `name` listens.
#[track_caller]
fn stream_addr(proxy: &Proxy, name: &str) -> SocketAddr {
    (proxy.handle().stream_addr(name)).unwrap_or_else(|| panic!("no stream {name}"))
}

/// A loopback address other than 127.0.0.1: another client.
fn other(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The greeting a [`Upstream::greeting`] target sends on `client`'s
/// connection (its name).
#[track_caller]
fn greeted_by(client: &mut Client) -> String {
    client.reader.read_line().expect("a greeting")
}

/// Sends `bytes`, ends the sending side (a half-close) and reads until
/// the end of the stream: what a whole session gave the client.
fn session(client: &mut Client, bytes: &[u8]) -> Vec<u8> {
    client.send(bytes);
    client.finish_sending();
    client.read_until_closed()
}

/// Sends `bytes` (the proxy may have closed already: then they go
/// nowhere), keeps its sending side open, and reads until the proxy ends
/// the stream: what a client the proxy turns away gets.
fn turned_away(client: &mut Client, bytes: &[u8]) -> Vec<u8> {
    let _ = client.reader.stream.write_all(bytes);
    client.read_until_closed()
}

/// The access log's lines for the stream `name` (a combined line's
/// request is `TCP name`; a template starting `$request|` writes the same).
fn stream_lines(proxy: &Proxy, name: &str) -> Vec<String> {
    let request = format!("TCP {name}");
    (proxy.log_lines().into_iter())
        .filter(|l| l.contains(&format!("\"{request}\"")) || l.starts_with(&format!("{request}|")))
        .collect()
}

/// Waits until the log has `n` lines for the stream `name`, and gives
/// them.
#[track_caller]
fn wait_for_lines(proxy: &Proxy, name: &str, n: usize) -> Vec<String> {
    let arrived = wait_until(WAIT_LIMIT, || stream_lines(proxy, name).len() >= n);
    let lines = stream_lines(proxy, name);
    assert!(
        arrived,
        "{n} lines for {name} expected: {:?}",
        proxy.log_lines()
    );
    lines
}

/// The status and the termination state of each of `lines` ([`TEMPLATE`]'s).
fn statuses_and_ends(lines: &[String]) -> Vec<(&str, &str)> {
    (lines.iter())
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f[1], f[5])
        })
        .collect()
}

/// The template the log tests read: each field between `|`.
const TEMPLATE: &str =
    "log_format = $request|$status|$request_length|$bytes_sent|$upstream_addr|$termination\n";

/// `field` (a number or a boolean, as written) of the target named
/// `name` in the admin listener's `/status`.
#[track_caller]
fn status_field(proxy: &Proxy, name: &str, field: &str) -> String {
    let status = proxy.admin("GET", "/status", "").body_str();
    let at = (status.find(&format!("\"name\":\"{name}\"")))
        .unwrap_or_else(|| panic!("no {name} in {status}"));
    let object = status[at..].split('}').next().unwrap();
    let (_, value) = (object.split_once(&format!("\"{field}\":")))
        .unwrap_or_else(|| panic!("no {field} in {object}"));
    value.split(',').next().unwrap().to_string()
}

#[test]
fn a_half_closed_client_still_gets_the_whole_echo_and_http_is_served_beside() {
    let http = Backend::echo("http");
    let echo = Upstream::echo();
    let text = format!(
        "targets = {}\npool.tcp = {}\nstream.echo = tcp listen=127.0.0.1:0\n",
        http.addr, echo.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "echo");
    assert_ne!(addr.port(), 0);
    assert_ne!(addr, proxy.addr);
    assert_eq!(proxy.handle().stream_addr("nosuch"), None);

    let mut client = Client::connect(addr);
    client.send(b"ping\r\n");
    assert_eq!(client.reader.read_line().unwrap(), "ping");
    // While the session is open, HTTP on the proxy's port is served by
    // the same proxy, from the top-level targets.
    let response = proxy.connect().get("/beside");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-backend"), Some("http"));
    assert_eq!(http.requests(), 1);

    // The rest, then the end of the client's sending: the echo of all of
    // it still comes, then the end of the stream.
    let rest = pattern(100_000);
    client.send(&rest);
    client.finish_sending();
    let echoed = client.read_until_closed();
    assert_eq!(
        (echoed.len(), fnv(&echoed)),
        (rest.len(), fnv(&rest)),
        "the echo after a half-close"
    );
    assert_eq!(echo.accepted(), 1);
    assert!(wait_until(WAIT_LIMIT, || echo.open() == 0));
    // The backend got what the client sent, in order.
    let mut sent = b"ping\r\n".to_vec();
    sent.extend_from_slice(&rest);
    assert_eq!(echo.received(0), &sent[..KEPT.min(sent.len())]);
}

/// What an echo target sends back of `body`, written (then the end of
/// the client's stream) on a thread of its own while this one reads: the
/// echo answers as it reads, so neither side's buffers fill for good.
fn echo_of(client: &mut Client, body: &[u8]) -> Vec<u8> {
    let mut writer = client.reader.stream.try_clone().unwrap();
    let sent = body.to_vec();
    let writing = std::thread::spawn(move || {
        for piece in sent.chunks(64 * 1024) {
            writer.write_all(piece)?;
        }
        writer.shutdown(std::net::Shutdown::Write)
    });
    let echoed = client.reader.read_exact_body(body.len()).unwrap();
    writing.join().unwrap().unwrap();
    echoed
}

#[test]
fn four_mebibytes_go_both_ways_intact() {
    let echo = Upstream::echo();
    let text = format!(
        "targets = {}\nstream.big = default listen=127.0.0.1:0\n",
        echo.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = Client::connect(stream_addr(&proxy, "big"));
    let body = pattern(4 << 20);
    let echoed = echo_of(&mut client, &body);
    assert_eq!((echoed.len(), fnv(&echoed)), (body.len(), fnv(&body)));
    // Nothing more: the end of the stream follows.
    assert!(client.is_closed());
}

/// `upload_rate=` and `download_rate=` (nginx's `proxy_upload_rate` and
/// `proxy_download_rate`): each holds its own direction to its rate, the
/// bytes arriving whole. The one time asserted is a lower bound, which a
/// slow machine only makes easier to meet.
#[test]
fn each_way_s_rate_holds_that_way_back_and_the_bytes_arrive_whole() {
    let echo = Upstream::echo();
    let text = format!(
        "targets = {}\nstream.up = default listen=127.0.0.1:0 upload_rate=512KiB/s\n\
         stream.down = default listen=127.0.0.1:0 download_rate=512KiB\n",
        echo.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let body = pattern(512 << 10);
    for name in ["up", "down"] {
        let mut client = Client::connect(stream_addr(&proxy, name));
        let began = std::time::Instant::now();
        let echoed = echo_of(&mut client, &body);
        let took = began.elapsed();
        assert_eq!(
            (echoed.len(), fnv(&echoed)),
            (body.len(), fnv(&body)),
            "{name}"
        );
        assert!(client.is_closed(), "{name}: the end follows");
        // All but the tenth of a second's worth credited at the start, at
        // 512 KiB a second, less a tenth for the slices' rounding.
        let least = (512.0 - 51.2) / 512.0 * 0.9;
        assert!(took.as_secs_f64() >= least, "{name}: {took:?}");
    }
}

#[test]
fn successive_connections_alternate_between_two_targets_by_round_robin() {
    let (a, b) = (Upstream::greeting("a"), Upstream::greeting("b"));
    let text = format!(
        "targets = 127.0.0.1:1\npool.two = {}, {}\nstream.rr = two listen=127.0.0.1:0\n",
        a.addr, b.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "rr");
    let names: Vec<String> = (0..6)
        .map(|_| greeted_by(&mut Client::connect(addr)))
        .collect();
    for pair in names.windows(2) {
        assert_ne!(pair[0], pair[1], "not in turn: {names:?}");
    }
    assert_eq!((a.accepted(), b.accepted()), (3, 3), "{names:?}");
}

#[test]
fn ip_hash_keeps_each_client_address_on_one_target() {
    let targets = [
        Upstream::greeting("a"),
        Upstream::greeting("b"),
        Upstream::greeting("c"),
    ];
    let list: Vec<String> = targets.iter().map(|t| t.addr.to_string()).collect();
    let text = format!(
        "targets = 127.0.0.1:1\npool.sticky = {}\npool.sticky.balance = ip_hash\n\
         stream.db = sticky listen=127.0.0.1:0\n",
        list.join(", ")
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "db");
    for last in 1..=6 {
        let names: Vec<String> = (0..4)
            .map(|_| greeted_by(&mut Client::connect_from(other(last), addr)))
            .collect();
        assert!(
            names.iter().all(|n| *n == names[0]),
            "127.0.0.{last} went to {names:?}"
        );
    }
    let total: usize = targets.iter().map(Upstream::accepted).sum();
    assert_eq!(total, 24);
}

#[test]
fn a_refusing_target_is_passed_over_and_counts_a_passive_failure() {
    let dead = dead_addr();
    let live = Upstream::greeting("live");
    let text = format!(
        "targets = {dead}, {}\nstream.s = default listen=127.0.0.1:0\n",
        live.addr
    );
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    let addr = stream_addr(&proxy, "s");
    for i in 0..4 {
        let mut client = Client::connect(addr);
        assert_eq!(greeted_by(&mut client), "live", "connection {i}");
        client.send(b"x");
        assert_eq!(client.reader.read_exact_body(1).unwrap(), b"x");
    }
    assert_eq!(live.accepted(), 4);
    assert_eq!(status_field(&proxy, &dead.to_string(), "failures"), "1");

    // With `retries = 0`, the connection the balancer sends to the dead
    // target is not passed on: of two, in turn, one is closed unanswered.
    let text = format!(
        "targets = {dead}, {}\nretries = 0\nstream.s = default listen=127.0.0.1:0\n",
        live.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let before = live.accepted();
    let answered: Vec<Option<String>> = (0..2)
        .map(|_| {
            let mut client = Client::connect(addr);
            // Turned away, the client may find the connection closed.
            let _ = client.reader.stream.write_all(b"x");
            client.reader.read_line().ok()
        })
        .collect();
    let greeted = answered.iter().flatten().filter(|a| *a == "live").count();
    assert_eq!((answered.len(), greeted), (2, 1), "{answered:?}");
    assert!(answered.contains(&None), "{answered:?}");
    assert_eq!(live.accepted(), before + 1);
}

#[test]
fn with_no_target_to_connect_the_client_is_closed_with_nothing_and_logged_502() {
    let text = format!(
        "targets = {}, {}\n{TEMPLATE}stream.s = default listen=127.0.0.1:0\n",
        dead_addr(),
        dead_addr()
    );
    let mut proxy = start_proxy(&[], from_file(&text));
    let mut client = Client::connect(stream_addr(&proxy, "s"));
    assert_eq!(turned_away(&mut client, b"hello"), b"");
    let lines = wait_for_lines(&proxy, "s", 1);
    let fields: Vec<&str> = lines[0].split('|').collect();
    assert_eq!(fields[1], "502", "{}", lines[0]);
    assert_eq!(fields[3], "0", "{}", lines[0]);
    assert_eq!(fields[5], "SC", "{}", lines[0]);
    proxy.shutdown(Duration::from_secs(1));
    assert_eq!(
        stream_lines(&proxy, "s").len(),
        1,
        "{:?}",
        proxy.log_lines()
    );
}

#[test]
fn a_target_written_send_proxy_gets_the_client_and_the_listener_first() {
    for option in ["send_proxy", "send_proxy_v2"] {
        let echo = Upstream::echo();
        let text = format!(
            "targets = {} {option}\nstream.s = default listen=127.0.0.1:0\n",
            echo.addr
        );
        let proxy = start_proxy(&[], from_file(&text));
        let listener = stream_addr(&proxy, "s");
        let mut client = Client::connect(listener);
        let me = client.reader.stream.local_addr().unwrap();
        session(&mut client, b"hi");
        assert!(wait_until(WAIT_LIMIT, || echo.open() == 0), "{option}");
        let got = echo.received(0);
        let header_len = if option == "send_proxy" {
            let expected = format!(
                "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
                me.port(),
                listener.port()
            );
            let line = String::from_utf8_lossy(&got[..got.len().min(expected.len())]);
            assert_eq!(line, expected, "{option}");
            expected.len()
        } else {
            assert!(got.len() >= 28, "{option}: {got:?}");
            assert_eq!(&got[..12], b"\r\n\r\n\0\r\nQUIT\n", "{option}: signature");
            // Version 2, PROXY; TCP over IPv4.
            assert_eq!((got[12], got[13]), (0x21, 0x11), "{option}");
            let len = usize::from(u16::from_be_bytes([got[14], got[15]]));
            assert!(len >= 12, "{option}: {len}");
            assert_eq!(&got[16..20], &[127, 0, 0, 1], "{option}: source");
            assert_eq!(&got[20..24], &[127, 0, 0, 1], "{option}: destination");
            assert_eq!(
                &got[24..26],
                &me.port().to_be_bytes(),
                "{option}: source port"
            );
            assert_eq!(&got[26..28], &listener.port().to_be_bytes(), "{option}");
            16 + len
        };
        // Then the client's bytes, and only them.
        assert_eq!(&got[header_len..], b"hi", "{option}: {got:?}");
    }
}

#[test]
fn a_listener_with_proxy_protocol_takes_the_client_a_balancer_names() {
    // 198.51.100.9:12345 connecting to 203.0.113.7:5432, in both versions.
    let v1 = b"PROXY TCP4 198.51.100.9 203.0.113.7 12345 5432\r\n".to_vec();
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[198, 51, 100, 9, 203, 0, 113, 7, 0x30, 0x39, 0x15, 0x38]);
    for (version, header) in [("v1", v1), ("v2", v2)] {
        let echo = Upstream::echo();
        let text = format!(
            "targets = {} send_proxy\nstream.pg = default listen=127.0.0.1:0 proxy_protocol\n",
            echo.addr
        );
        let mut proxy = start_proxy(&[], from_file(&text));
        let mut client = Client::connect(stream_addr(&proxy, "pg"));
        client.send(&header);
        let echoed = session(&mut client, b"hello");
        // The balancer's header is not passed on as data: the target's
        // own header names the client it named, then the client's bytes.
        let got = echo.received(0);
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("PROXY TCP4 198.51.100.9 "),
            "{version}: {text:?}"
        );
        assert!(text.ends_with("\r\nhello"), "{version}: {text:?}");
        assert_eq!(text.matches("PROXY").count(), 1, "{version}: {text:?}");
        assert_eq!(echoed, got, "{version}");
        // And it is the client the log shows.
        let lines = wait_for_lines(&proxy, "pg", 1);
        assert!(
            lines[0].starts_with("198.51.100.9 - - ["),
            "{version}: {lines:?}"
        );
        proxy.shutdown(Duration::from_secs(1));
    }
}

/// A TLS target that sends `greeting` bytes of the alphabet first, then
/// echoes what it reads; at the client's end of its session, it says
/// `farewell` and ends its own (`close_notify`), or, without one, leaves.
fn tls_echo(setup: TlsSetup, greeting: usize, farewell: Option<&'static [u8]>) -> TlsBackend {
    TlsBackend::start_raw("secure", setup, move |_, mut session: TlsStream| {
        let greeting: Vec<u8> = (0..greeting).map(|i| b'a' + (i % 26) as u8).collect();
        let sent = |session: &mut TlsStream, bytes: &[u8]| {
            session
                .write_all(bytes)
                .and_then(|()| session.flush())
                .is_ok()
        };
        if !sent(&mut session, &greeting) {
            return;
        }
        let mut chunk = [0u8; 4096];
        // Bounded: each read waits at most the I/O timeout.
        for _ in 0..10_000 {
            match session.read(&mut chunk) {
                Ok(0) => {
                    if let Some(farewell) = farewell {
                        sent(&mut session, farewell);
                        let _ = session.shutdown(std::net::Shutdown::Write);
                    }
                    return;
                }
                Err(_) => return,
                Ok(n) if !sent(&mut session, &chunk[..n]) => return,
                Ok(_) => {}
            }
        }
    })
}

#[test]
fn a_target_written_tls_is_spoken_to_over_tls() {
    let pki = Pki::new();
    let ca_file = pki.ca.write(pki.dir.path(), "backend-ca.pem");
    let setup = TlsSetup::serving(&pki.ca.leaf(&["127.0.0.1"]), &pki.ca);
    let secure = tls_echo(setup, 0, None);
    let text = format!(
        "targets = 127.0.0.1:1\npool.secure = {} tls\nbackend_tls_ca = {}\n\
         stream.s = secure listen=127.0.0.1:0\n",
        secure.addr,
        ca_file.display()
    );
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = Client::connect(stream_addr(&proxy, "s"));
    client.send(b"in the clear here, sealed there");
    let echoed = client.reader.read_exact_body(31).unwrap();
    assert_eq!(echoed, b"in the clear here, sealed there");
    assert_eq!(secure.handshakes().len(), 1);
    assert_eq!(secure.failed_handshakes(), 0);
}

/// A session with a `tls` target is relayed by the stream's one thread
/// as a plain one is: more than the sockets hold each way, to a slow
/// reader, and each side's end passed on once what came before it went
/// (the target's as `close_notify`).
#[test]
fn a_tls_target_s_session_carries_more_than_the_sockets_hold_and_its_ends() {
    const GREETING: usize = 8 << 20;
    let pki = Pki::new();
    let ca_file = pki.ca.write(pki.dir.path(), "backend-ca.pem");
    let setup = TlsSetup::serving(&pki.ca.leaf(&["127.0.0.1"]), &pki.ca);
    let secure = tls_echo(setup, GREETING, Some(b"bye\n"));
    let text = format!(
        "targets = {} tls\nbackend_tls_ca = {}\nstream.s = default listen=127.0.0.1:0\n{TEMPLATE}",
        secure.addr,
        ca_file.display()
    );
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = TcpStream::connect(stream_addr(&proxy, "s")).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = vec![0u8; GREETING];
    let mut at = 0;
    while at < got.len() {
        // Slow throughout: the proxy's writes find no room, to the last.
        std::thread::sleep(Duration::from_millis(1));
        let n = client.read(&mut got[at..]).unwrap();
        assert!(n > 0, "ended after {at} bytes");
        at += n;
    }
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, &b)| b == b'a' + (i % 26) as u8),
        "the greeting intact"
    );
    let turn: Vec<u8> = (0..16 * 1024).map(|i| (i % 251) as u8).collect();
    for round in 0..128 {
        client.write_all(&turn).unwrap();
        let mut back = vec![0u8; turn.len()];
        client.read_exact(&mut back).unwrap();
        assert!(back == turn, "round {round}");
    }
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"bye\n", "the target's last word, then its end");
    let lines = wait_for_lines(&proxy, "s", 1);
    assert_eq!(statuses_and_ends(&lines), [("200", "--")], "{lines:?}");
    for _ in 0..100 {
        if secure.closed() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(secure.close_notifies(), 1, "our end said as close_notify");
    assert_eq!(secure.handshakes().len(), 1);
}

#[test]
fn a_client_the_access_lists_refuse_is_closed_at_once_and_logged_403() {
    let http = Backend::echo("http");
    let g = Upstream::greeting("g");
    // The top level's list, and a pool's own.
    for (lists, refused, allowed) in [
        ("deny_from = 127.0.0.1\n", other(1), other(2)),
        ("pool.p.allow_from = 127.0.0.3\n", other(1), other(3)),
    ] {
        let text = format!(
            "targets = {}\npool.p = {}\n{lists}stream.s = p listen=127.0.0.1:0\n",
            http.addr, g.addr
        );
        let mut proxy = start_proxy(&[], from_file(&text));
        let addr = stream_addr(&proxy, "s");
        let before = g.accepted();
        let mut client = Client::connect_from(refused, addr);
        assert_eq!(turned_away(&mut client, b"let me in"), b"", "{lists}");
        let mut client = Client::connect_from(allowed, addr);
        assert_eq!(greeted_by(&mut client), "g", "{lists}");
        drop(client);
        // Only the allowed client's connection reached the target.
        assert_eq!(g.accepted(), before + 1, "{lists}");
        let lines = wait_for_lines(&proxy, "s", 2);
        let line = (lines.iter())
            .find(|l| l.starts_with(&format!("{refused} ")))
            .unwrap_or_else(|| panic!("{lists}: {lines:?}"));
        assert!(line.contains("\"TCP s\" 403 0 "), "{lists}: {line}");
        proxy.shutdown(Duration::from_secs(1));
    }
}

#[test]
fn past_max_conns_a_connection_waits_for_a_slot_then_is_closed_at_queue_timeout() {
    let g = Upstream::greeting("g");
    let text = format!(
        "targets = 127.0.0.1:1\npool.p = {} max_conns=1\nqueue_timeout = 2s\n{TEMPLATE}\
         stream.s = p listen=127.0.0.1:0\n",
        g.addr
    );
    let mut proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let mut first = Client::connect(addr);
    assert_eq!(greeted_by(&mut first), "g");
    // The second waits while the first holds the slot, its bytes kept...
    let mut second = Client::connect(addr);
    second.send(b"queued");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(g.accepted(), 1, "connected past max_conns");
    // ... and goes on once the first is done.
    drop(first);
    assert_eq!(greeted_by(&mut second), "g");
    assert_eq!(second.reader.read_exact_body(6).unwrap(), b"queued");
    assert_eq!(g.accepted(), 2);
    // A third, while the second holds it, waits out queue_timeout and is
    // closed: no connection to the target, nothing to the client.
    let mut third = Client::connect(addr);
    assert_eq!(turned_away(&mut third, b"too many"), b"");
    assert_eq!(g.accepted(), 2);
    drop(second);
    let lines = wait_for_lines(&proxy, "s", 3);
    let statuses: Vec<&str> = lines.iter().map(|l| l.split('|').nth(1).unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "503").count(),
        1,
        "{lines:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "200").count(),
        2,
        "{lines:?}"
    );
    proxy.shutdown(Duration::from_secs(1));
}

/// A client that closes while it waits for a slot gives its place up at
/// once, long before `queue_timeout`: logged 499 `CQ`, its target never
/// connected.
#[test]
fn a_client_that_leaves_the_queue_gives_up_its_place_and_is_logged_cq() {
    let g = Upstream::greeting("g");
    let text = format!(
        "targets = 127.0.0.1:1\npool.p = {} max_conns=1\nqueue_timeout = 1h\n{TEMPLATE}\
         stream.s = p listen=127.0.0.1:0\n",
        g.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let mut first = Client::connect(addr);
    assert_eq!(greeted_by(&mut first), "g");
    let gone = Client::connect(addr);
    drop(gone);
    let lines = wait_for_lines(&proxy, "s", 1);
    let fields: Vec<&str> = lines[0].split('|').collect();
    assert_eq!(
        (fields[1], fields[4], fields[5]),
        ("499", "-", "CQ"),
        "{lines:?}"
    );
    assert_eq!(session(&mut first, b"still"), b"still");
    assert_eq!(g.accepted(), 1);
}

#[test]
fn max_connections_and_max_connections_per_client_count_stream_connections() {
    let http = Backend::echo("http");
    let g = Upstream::greeting("g");
    for (limit, another_client_served) in [
        ("max_connections_per_client = 1", true),
        ("max_connections = 1", false),
    ] {
        let text = format!(
            "targets = {}\n{limit}\npool.p = {}\nstream.s = p listen=127.0.0.1:0\n",
            http.addr, g.addr
        );
        let proxy = start_proxy(&[], from_file(&text));
        let addr = stream_addr(&proxy, "s");
        let before = g.accepted();
        let mut held = Client::connect(addr);
        assert_eq!(greeted_by(&mut held), "g", "{limit}");
        // The open stream session counts: an HTTP connection from the
        // same client is over the limit...
        let refused = one_request(proxy.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(refused.status, 503, "{limit}");
        // ... and so is a second stream connection, which reaches no
        // target.
        let mut over = Client::connect(addr);
        let got = turned_away(&mut over, b"x");
        assert!(!got.starts_with(b"g\r\n"), "{limit}: {got:?}");
        assert_eq!(g.accepted(), before + 1, "{limit}");
        // Another address is another client (not under the global limit).
        let mut elsewhere = Client::connect_from(other(2), addr);
        let served = elsewhere.reader.read_line().is_ok_and(|n| n == "g");
        assert_eq!(served, another_client_served, "{limit}");
        drop(elsewhere);
        // The session over, its slot is free again.
        drop(held);
        let mut rounds = 0;
        assert!(
            wait_until(WAIT_LIMIT, || {
                rounds += 1;
                one_request(proxy.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status == 200
            }),
            "{limit}: still refused after {rounds} tries"
        );
    }
}

#[test]
fn a_session_idle_for_tunnel_timeout_is_closed_both_ways_and_logged_cd() {
    let echo = Upstream::echo();
    let text = format!(
        "targets = 127.0.0.1:1\npool.p = {}\npool.p.tunnel_timeout = 600ms\n{TEMPLATE}\
         stream.s = p listen=127.0.0.1:0\n",
        echo.addr
    );
    let mut proxy = start_proxy(&[], from_file(&text));
    let mut client = Client::connect(stream_addr(&proxy, "s"));
    // Traffic keeps it open past the timeout...
    for i in 0..6u8 {
        client.send(&[b'a' + i]);
        assert_eq!(
            client.reader.read_exact_body(1).unwrap(),
            [b'a' + i],
            "round {i}"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    // ... and silence ends it: both sides are closed.
    assert!(client.is_closed(), "the client's side not closed");
    assert!(
        wait_until(WAIT_LIMIT, || echo.open() == 0),
        "the target's side"
    );
    let lines = wait_for_lines(&proxy, "s", 1);
    let fields: Vec<&str> = lines[0].split('|').collect();
    assert_eq!(
        (fields[1], fields[2], fields[3], fields[5]),
        ("200", "6", "6", "cD"),
        "{}",
        lines[0]
    );
    proxy.shutdown(Duration::from_secs(1));
}

/// A stream's own `timeout=` (nginx's `proxy_timeout`) is its sessions'
/// idle timeout, whatever its pool's `tunnel_timeout`.
#[test]
fn a_stream_s_own_timeout_comes_before_its_pool_s_tunnel_timeout() {
    let echo = Upstream::echo();
    let text = format!(
        "targets = 127.0.0.1:1\npool.p = {}\npool.p.tunnel_timeout = 1h\n{TEMPLATE}\
         stream.s = p listen=127.0.0.1:0 timeout=300ms\n",
        echo.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = Client::connect(stream_addr(&proxy, "s"));
    client.send(b"x");
    assert_eq!(client.reader.read_exact_body(1).unwrap(), b"x");
    assert!(client.is_closed(), "the client's side not closed");
    let lines = wait_for_lines(&proxy, "s", 1);
    assert!(lines[0].ends_with("|cD"), "{}", lines[0]);
}

#[test]
fn each_connection_has_one_combined_line_when_it_ends() {
    let echo = Upstream::echo();
    let text = format!(
        "targets = 127.0.0.1:1\npool.p = {}\nstream.echo = p listen=127.0.0.1:0\n",
        echo.addr
    );
    let mut proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "echo");
    let mut open = Client::connect(addr);
    open.send(b"x");
    assert_eq!(open.reader.read_exact_body(1).unwrap(), b"x");
    for message in ["hello world", "a longer message, 30 bytes ok."] {
        let mut client = Client::connect(addr);
        assert_eq!(session(&mut client, message.as_bytes()), message.as_bytes());
    }
    let lines = wait_for_lines(&proxy, "echo", 2);
    assert_eq!(
        lines.len(),
        2,
        "the open session is not logged yet: {lines:?}"
    );
    let upstream = format!(" upstream={} cache=- duration_ms=", echo.addr);
    for (line, bytes) in lines.iter().zip([11, 30]) {
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        let expected = format!("] \"TCP echo\" 200 {bytes} \"-\" \"-\"{upstream}");
        assert!(line.contains(&expected), "{line}\nlacks {expected}");
    }
    drop(open);
    let lines = wait_for_lines(&proxy, "echo", 3);
    assert!(lines[2].contains("\"TCP echo\" 200 1 "), "{}", lines[2]);
    proxy.shutdown(Duration::from_secs(1));
    assert_eq!(stream_lines(&proxy, "echo").len(), 3);
}

#[test]
fn a_template_tells_the_bytes_each_way_the_target_and_a_normal_close() {
    let g = Upstream::greeting("g");
    let text = format!(
        "targets = 127.0.0.1:1\npool.p = {}\n{TEMPLATE}stream.t = p listen=127.0.0.1:0\n",
        g.addr
    );
    let mut proxy = start_proxy(&[], from_file(&text));
    let mut client = Client::connect(stream_addr(&proxy, "t"));
    // `g\r\n`, then the echo of the five bytes: 8 to the client, 5 from it.
    assert_eq!(session(&mut client, b"hello"), b"g\r\nhello");
    drop(client);
    let lines = wait_for_lines(&proxy, "t", 1);
    assert_eq!(lines[0], format!("TCP t|200|5|8|{}|--", g.addr));
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn shutdown_closes_open_sessions_after_the_grace_period_and_returns() {
    let echo = Upstream::echo();
    let text = format!(
        "targets = {}\nstream.s = default listen=127.0.0.1:0\n",
        echo.addr
    );
    let mut proxy = start_proxy(&[], from_file(&text));
    let mut client = Client::connect(stream_addr(&proxy, "s"));
    client.send(b"still here");
    assert_eq!(client.reader.read_exact_body(10).unwrap(), b"still here");
    // Returns (the harness fails the test past grace + its wait limit)...
    proxy.shutdown(Duration::from_millis(300));
    // ... with both sides of the session closed.
    assert!(client.is_closed(), "the client's side is still open");
    assert!(
        wait_until(WAIT_LIMIT, || echo.open() == 0),
        "the target's side"
    );
    let lines = stream_lines(&proxy, "s");
    assert_eq!(lines.len(), 1, "{:?}", proxy.log_lines());
    assert!(lines[0].contains("\"TCP s\" 200 10 "), "{}", lines[0]);
}

#[test]
fn listen_takes_a_port_on_bind_an_address_and_port_or_an_ipv6_one() {
    let echo = Upstream::echo();
    let ipv6 = has_ipv6_loopback();
    let mut text = format!(
        "targets = 127.0.0.1:1\nbind = 127.0.0.1\npool.p = {}\npool.p.balance = ip_hash\n\
         stream.on-bind = p listen=0\nstream.one = p listen=127.0.0.1:0\n\
         stream.two_ = p listen=127.0.0.1:0\n",
        echo.addr
    );
    if ipv6 {
        text.push_str("stream.six = p listen=[::1]:0\n");
    }
    let proxy = start_proxy(&[], from_file(&text));
    let mut names = vec!["on-bind", "one", "two_"];
    if ipv6 {
        names.push("six");
    }
    let addrs: Vec<SocketAddr> = names.iter().map(|n| stream_addr(&proxy, n)).collect();
    for (name, addr) in names.iter().zip(&addrs) {
        assert_ne!(addr.port(), 0, "{name}");
        let expected: IpAddr = if *name == "six" {
            "::1".parse().unwrap()
        } else {
            "127.0.0.1".parse().unwrap()
        };
        assert_eq!(addr.ip(), expected, "{name}");
        let mut client = Client::connect(*addr);
        assert_eq!(session(&mut client, name.as_bytes()), name.as_bytes());
    }
    // Two on port 0 each got a port of their own.
    assert_ne!(addrs[1], addrs[2]);
    assert_eq!(echo.accepted(), names.len());
}

/// `text` is refused as `proxy.conf:LINE: KEY: ...`, saying at least one
/// of `any_of` (in any case; the value at fault, or what is wrong).
#[track_caller]
fn assert_refused_at(text: &str, line: usize, key: &str, any_of: &[&str]) {
    let message = config_error(text);
    assert!(
        message.starts_with(&format!("proxy.conf:{line}: {key}: ")),
        "not `proxy.conf:{line}: {key}: ...`: {message}\nfor:\n{text}"
    );
    let lower = message.to_lowercase();
    assert!(
        any_of.is_empty() || any_of.iter().any(|w| lower.contains(&w.to_lowercase())),
        "says none of {any_of:?}: {message}\nfor:\n{text}"
    );
}

#[test]
fn the_loader_refuses_bad_stream_lines_at_their_line_naming_the_key() {
    let base = "targets = 127.0.0.1:9001\npool.p = 127.0.0.1:9002\n";
    let at_3 = |line: &str, any_of: &[&str]| {
        assert_refused_at(&format!("{base}{line}\n"), 3, "stream.s", any_of);
    };
    at_3("stream.s = nosuch listen=127.0.0.1:9100", &["nosuch"]);
    at_3("stream.s = p", &["listen"]);
    at_3("stream.s = p proxy_protocol", &["listen"]);
    at_3("stream.s = p listen=127.0.0.1:99999", &["99999"]);
    at_3("stream.s = p listen=70000", &["70000"]);
    at_3("stream.s = p listen=127.0.0.1:http", &["http", "port"]);
    at_3("stream.s = p listen=", &["listen"]);
    at_3("stream.s = p listen=127.0.0.1:9100 bogus", &["bogus"]);

    // The proxy's own address and port, `bind`'s (0.0.0.0 by default).
    for (lines, line) in [
        ("port = 9200\nstream.s = p listen=9200\n", 4),
        (
            "bind = 127.0.0.1\nport = 9200\nstream.s = p listen=127.0.0.1:9200\n",
            5,
        ),
    ] {
        assert_refused_at(
            &format!("{base}{lines}"),
            line,
            "stream.s",
            &["9200", "port"],
        );
    }

    // Pools a connection cannot be balanced by, or spoken to over.
    for (lines, line, word) in [
        (
            "pool.php = 127.0.0.1:9003 fastcgi\npool.php.fastcgi_root = /srv\n\
             stream.s = php listen=127.0.0.1:9100\n",
            5,
            "fastcgi",
        ),
        (
            "pool.p.balance = uri_hash\nstream.s = p listen=127.0.0.1:9100\n",
            4,
            "uri_hash",
        ),
        (
            "pool.p.balance = hash\npool.p.hash_on = header:X-Tenant\n\
             stream.s = p listen=127.0.0.1:9100\n",
            5,
            "hash",
        ),
        (
            "balance = uri_hash\nstream.s = default listen=127.0.0.1:9100\n",
            4,
            "uri_hash",
        ),
    ] {
        assert_refused_at(&format!("{base}{lines}"), line, "stream.s", &[word]);
    }

    // Two streams on one address and port: refused at the second, which
    // says whose it is or where.
    let text = format!(
        "{base}stream.a = p listen=127.0.0.1:9100\nstream.b = default listen=127.0.0.1:9100\n"
    );
    assert_refused_at(&text, 4, "stream.b", &["stream.a", "127.0.0.1:9100"]);

    // A name of other characters than letters, digits, `-` and `_`, and
    // the same key twice (refused at the second), in whatever words the
    // loader has for them, at their line and naming the key.
    for name in ["a:b", "a/b", "a b", "\u{e9}"] {
        let text = format!("{base}stream.{name} = p listen=127.0.0.1:9100\n");
        let message = config_error(&text);
        assert!(
            message.starts_with("proxy.conf:3: ") && message.contains(&format!("stream.{name}")),
            "{message}\nfor:\n{text}"
        );
        let lower = message.to_lowercase();
        assert!(
            ["letter", "digit", "character"]
                .iter()
                .any(|w| lower.contains(w)),
            "{message}"
        );
    }
    let text =
        format!("{base}stream.s = p listen=127.0.0.1:9100\nstream.s = p listen=127.0.0.1:9101\n");
    let message = config_error(&text);
    assert!(
        message.starts_with("proxy.conf:4: ") && message.contains("stream.s"),
        "{message}"
    );
    assert!(
        ["duplicate", "twice", "again", "line 3"]
            .iter()
            .any(|w| message.contains(w)),
        "{message}"
    );

    // What is fine: ip_hash (the client's address), two streams on port
    // 0, a name of letters, digits, `-` and `_`.
    let fine = format!(
        "{base}pool.p.balance = ip_hash\nstream.Pg-1_x = p listen=127.0.0.1:0\n\
         stream.b = default listen=127.0.0.1:0 proxy_protocol\n"
    );
    let mut loader = inverso::config::Loader::new();
    let built = loader
        .file("proxy.conf", &fine)
        .map(|l| l.build().map(drop));
    assert!(matches!(built, Ok(Ok(()))), "refused:\n{fine}");
}

#[test]
fn a_reload_moves_a_stream_to_its_new_pool_and_keeps_its_listener_until_a_restart() {
    let (a, b) = (Upstream::greeting("a"), Upstream::greeting("b"));
    let text = |pool: &str, streams: &str| {
        format!(
            "targets = 127.0.0.1:1\npool.a = {}\npool.b = {}\n{streams}",
            a.addr, b.addr
        )
        .replace("POOL", pool)
    };
    let proxy = start_proxy(
        &[],
        from_file(&text("a", "stream.s = POOL listen=127.0.0.1:0\n")),
    );
    let addr = stream_addr(&proxy, "s");
    let mut held = Client::connect(addr);
    assert_eq!(greeted_by(&mut held), "a");

    // The new pool takes the connections that come from now on; the one
    // open stays where it is.
    let next = proxy.config_for(
        &[],
        from_file(&text("b", "stream.s = POOL listen=127.0.0.1:0\n")),
    );
    let reloaded = proxy.handle().control().reload(next).unwrap();
    assert!(
        reloaded.needs_restart.is_empty(),
        "{:?}",
        reloaded.needs_restart
    );
    assert_eq!(greeted_by(&mut Client::connect(addr)), "b");
    assert_eq!(session(&mut held, b"still a"), b"still a");

    // A stream taken out (or moved) listens on until a restart, said so,
    // with the pool of its name...
    let next = proxy.config_for(&[], from_file(&text("b", "")));
    let reloaded = proxy.handle().control().reload(next).unwrap();
    assert_eq!(reloaded.needs_restart, ["stream"]);
    assert_eq!(greeted_by(&mut Client::connect(addr)), "b");
    // ... which a reload may not take away.
    let gone = format!("targets = 127.0.0.1:1\npool.a = {}\n", a.addr);
    let next = proxy.config_for(&[], from_file(&gone));
    let refused = proxy.handle().control().reload(next).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("stream.s listens until a restart: no pool is named `b`"),
        "{refused}"
    );
    assert_eq!(greeted_by(&mut Client::connect(addr)), "b");
}

/// Three HTTPS backends holding their own certificates behind one
/// stream that reads each client's hello: `shop.example`, any name under
/// `example.org`, and the rest (an IP address dialled: no name).
#[test]
fn tls_passes_through_to_the_pool_of_the_name_the_hello_asks_for() {
    use support::tls_client::{client_settings, TlsClient};
    let pki = Pki::new();
    let serving = |names: &[&str]| TlsSetup::serving(&pki.ca.leaf(names), &pki.ca);
    let shop = TlsBackend::echo("shop", serving(&["shop.example"]));
    let org = TlsBackend::echo("org", serving(&["a.example.org", "b.example.org"]));
    let rest = TlsBackend::echo("rest", serving(&["127.0.0.1"]));
    let text = format!(
        "targets = {}\npool.shop = {}\npool.org = {}\n{}\
         stream.https = default listen=127.0.0.1:0\n\
         stream.https.Shop.Example = shop\nstream.https.*.example.org = org\n",
        rest.addr,
        shop.addr,
        org.addr,
        "log_format = $request|$status|$ssl_server_name|$pool|$upstream_addr|$termination\n",
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "https");
    let settings = Arc::new(client_settings(&pki.ca, rustls::ALL_VERSIONS, None));
    for (name, answered_by) in [
        ("shop.example", "shop"),
        ("a.example.org", "org"),
        ("b.example.org", "org"),
        ("127.0.0.1", "rest"),
    ] {
        // The handshake is the backend's own: its certificate verified
        // by the client for the name it asked for.
        let mut client = TlsClient::connect(addr, &settings, name);
        let response = client.get("/");
        assert_eq!(response.header("x-backend"), Some(answered_by), "{name}");
    }
    assert_eq!(shop.handshakes.lock().unwrap().len(), 1);
    assert_eq!(org.handshakes.lock().unwrap().len(), 2);
    let lines = wait_for_lines(&proxy, "https", 4);
    let mut lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    lines.sort();
    let line = |sni: &str, pool: &str, at: &TlsBackend| {
        format!("TCP https|200|{sni}|{pool}|{}|--", at.addr)
    };
    assert_eq!(
        lines,
        [
            line("-", "default", &rest),
            line("a.example.org", "org", &org),
            line("b.example.org", "org", &org),
            line("shop.example", "shop", &shop),
        ]
    );
}

/// `stream.<name>.alpn:<protocol> = <pool>` (HAProxy's `req.ssl_alpn`,
/// nginx's `map $ssl_preread_alpn_protocols`): a hello that offers the
/// protocol goes to that pool, whatever host it asks for (an ACME client
/// answering TLS-ALPN-01 challenges beside the sites); one that does not
/// offer it, by its host.
#[test]
fn a_protocol_offered_in_alpn_chooses_the_pool_before_the_host() {
    use support::tls_client::{client_settings, TlsClient};
    let pki = Pki::new();
    let serving = |names: &[&str]| TlsSetup::serving(&pki.ca.leaf(names), &pki.ca);
    let shop = TlsBackend::echo("shop", serving(&["shop.example"]));
    let acme = TlsBackend::echo("acme", serving(&["shop.example", "127.0.0.1"]));
    let rest = TlsBackend::echo("rest", serving(&["127.0.0.1"]));
    let text = format!(
        "targets = {}\npool.shop = {}\npool.acme = {}\n\
         log_format = $request|$ssl_preread_server_name|$ssl_preread_alpn_protocols|$pool\n\
         stream.https = default listen=127.0.0.1:0\n\
         stream.https.shop.example = shop\nstream.https.alpn:acme-tls/1 = acme\n",
        rest.addr, shop.addr, acme.addr,
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "https");
    for (name, offered, answered_by) in [
        ("shop.example", &[][..], "shop"),
        ("shop.example", &["http/1.1"][..], "shop"),
        ("shop.example", &["acme-tls/1"][..], "acme"),
        ("127.0.0.1", &["http/1.1", "acme-tls/1"][..], "acme"),
        ("127.0.0.1", &["ACME-TLS/1"][..], "rest"),
    ] {
        let mut settings = client_settings(&pki.ca, rustls::ALL_VERSIONS, None);
        settings.alpn_protocols = offered.iter().map(|p| p.as_bytes().to_vec()).collect();
        let mut client = TlsClient::connect(addr, &Arc::new(settings), name);
        let response = client.get("/");
        assert_eq!(
            response.header("x-backend"),
            Some(answered_by),
            "{name} {offered:?}"
        );
    }
    assert_eq!(acme.handshakes.lock().unwrap().len(), 2);
    let mut lines = wait_for_lines(&proxy, "https", 5);
    lines.sort();
    assert_eq!(
        lines,
        [
            "TCP https|-|ACME-TLS/1|default",
            "TCP https|-|http/1.1,acme-tls/1|acme",
            "TCP https|shop.example|-|shop",
            "TCP https|shop.example|acme-tls/1|acme",
            "TCP https|shop.example|http/1.1|shop",
        ]
    );
}

#[test]
fn a_stream_reading_hellos_closes_a_client_that_sends_none_in_time() {
    let (named, rest) = (Upstream::greeting("named"), Upstream::greeting("rest"));
    let text = format!(
        "targets = {}\npool.x = {}\nclient_header_timeout = 300ms\n{TEMPLATE}\
         stream.s = default listen=127.0.0.1:0\nstream.s.x.example = x\n",
        rest.addr, named.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    // Silent, then half a record: closed unanswered, no target asked.
    let mut silent = Client::connect(addr);
    assert_eq!(silent.read_until_closed(), b"");
    let mut partial = Client::connect(addr);
    assert_eq!(turned_away(&mut partial, &[22, 3, 1, 0, 200, 1]), b"");
    assert_eq!(rest.accepted() + named.accepted(), 0);
    // Bytes that are no TLS go on to the stream's own pool at once, as
    // they came.
    let mut plain = Client::connect(addr);
    assert_eq!(session(&mut plain, b"PING\r\n"), b"rest\r\nPING\r\n");
    assert_eq!((rest.accepted(), named.accepted()), (1, 0));
    let lines = wait_for_lines(&proxy, "s", 3);
    let ends = statuses_and_ends(&lines);
    assert_eq!(
        ends,
        [("400", "cR"), ("400", "cR"), ("200", "--")],
        "{lines:?}"
    );
}

#[test]
fn metrics_count_each_stream_s_connections_by_class_and_their_bytes() {
    let g = Upstream::greeting("g");
    let text = format!(
        "targets = 127.0.0.1:1\npool.p = {}\npool.dead = {}\n\
         stream.s = p listen=127.0.0.1:0\nstream.gone = dead listen=127.0.0.1:0\n",
        g.addr,
        dead_addr()
    );
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    let sample = |name: &str, labels: &str| proxy.metric(&format!("{name}{{{labels}}}"));
    let mut open = Client::connect(stream_addr(&proxy, "s"));
    assert_eq!(greeted_by(&mut open), "g");
    assert_eq!(
        sample("inverso_stream_connections_current", "stream=\"s\""),
        Some(1)
    );
    for _ in 0..2 {
        let mut client = Client::connect(stream_addr(&proxy, "s"));
        assert_eq!(session(&mut client, b"hello"), b"g\r\nhello");
    }
    let mut refused = Client::connect(stream_addr(&proxy, "gone"));
    assert_eq!(turned_away(&mut refused, b"x"), b"");
    let ended = |stream: &str, class: &str| {
        sample(
            "inverso_stream_connections_total",
            &format!("stream=\"{stream}\",class=\"{class}\""),
        )
    };
    assert!(wait_until(WAIT_LIMIT, || ended("gone", "5xx") == Some(1)));
    assert!(wait_until(WAIT_LIMIT, || ended("s", "2xx") == Some(2)));
    assert_eq!(ended("s", "5xx"), Some(0));
    // Of those ended: 5 bytes each from the clients, 8 each to them.
    assert_eq!(
        sample("inverso_stream_bytes_received_total", "stream=\"s\""),
        Some(10)
    );
    assert_eq!(
        sample("inverso_stream_bytes_sent_total", "stream=\"s\""),
        Some(16)
    );
    assert_eq!(
        sample("inverso_stream_connections_current", "stream=\"s\""),
        Some(1)
    );
    // `/status` says the same of each stream, with how it is served.
    let status = proxy.admin("GET", "/status", "").body_str();
    let (_, streams) = status.split_once("\"streams\":").expect("streams");
    assert!(
        streams.starts_with(
            "[{\"name\":\"s\",\"protocol\":\"tcp\",\"listen\":\"127.0.0.1:0\",\"pool\":\"p\",\
             \"open\":1,\"bytes_received\":10,\"bytes_sent\":16,\
             \"ended\":{\"1xx\":0,\"2xx\":2,\"3xx\":0,\"4xx\":0,\"5xx\":0}},\
             {\"name\":\"gone\",\"protocol\":\"tcp\""
        ),
        "{streams}"
    );
    drop(open);
    assert!(wait_until(WAIT_LIMIT, || {
        sample("inverso_stream_connections_current", "stream=\"s\"") == Some(0)
    }));
}

/// What a TLS client of a stream that ends TLS reads until the proxy ends
/// the session: the bytes, and whether it said `close_notify` first.
fn read_to_the_end(client: &mut support::tls_client::TlsClient) -> (Vec<u8>, bool) {
    let mut read = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match client.reader.stream.read(&mut chunk) {
            Ok(0) => return (read, true),
            Ok(n) => read.extend_from_slice(&chunk[..n]),
            Err(_) => return (read, false),
        }
    }
}

/// A TLS client of `addr` asking for `name`, offering `alpn`, trusting
/// `pki`'s authority and showing `shown` when asked for a certificate.
fn tls_client_of(
    addr: SocketAddr,
    pki: &Pki,
    name: &str,
    alpn: &[&str],
    shown: Option<support::tls_client::Shown>,
) -> std::io::Result<support::tls_client::TlsClient> {
    use support::tls_client::{client_settings, TlsClient};
    let mut settings = client_settings(&pki.ca, rustls::ALL_VERSIONS, shown);
    settings.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    TlsClient::try_connect(addr, &Arc::new(settings), name)
}

/// `stream.<name> = <pool> listen=... tls alpn=...`: the handshake is the
/// proxy's, with `tls_port`'s certificates (no `tls_port` needed), the
/// host it names chooses the pool, and the session's bytes reach the
/// target in the clear, half-closes passed on both ways.
#[test]
fn a_stream_with_tls_ends_it_and_relays_the_session_in_the_clear() {
    let (main, other) = (Upstream::greeting("main"), Upstream::greeting("other"));
    let grpc = Upstream::greeting("grpc");
    let pki = Pki::new();
    let served = pki.ca.leaf(&["localhost", "other.test"]);
    let entry = served.write_apart(&pki.ca, pki.dir.path(), "served");
    let text = format!(
        "targets = {}\npool.o = {}\npool.g = {}\ntls_certificates = {entry}\n\
         log_format = $request|$status|$ssl_protocol|$ssl_alpn_protocol|$ssl_server_name|\
         $pool|$termination|$request_length\n\
         stream.s = default listen=127.0.0.1:0 tls alpn=x-echo,h2\n\
         stream.s.other.test = o\nstream.s.alpn:h2 = g\n",
        main.addr, other.addr, grpc.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    for (name, alpn, agreed, greeting) in [
        // The stream's order of preference chooses among those offered;
        // the protocol agreed, the pool (`alpn:h2`).
        ("localhost", &["h2", "x-echo"][..], Some("x-echo"), "main"),
        ("localhost", &["h2"][..], Some("h2"), "grpc"),
        ("other.test", &[][..], None, "other"),
    ] {
        let mut client = tls_client_of(addr, &pki, name, alpn, None).unwrap();
        let said = client.conn().alpn_protocol().map(|p| p.to_vec());
        assert_eq!(
            said.as_deref(),
            agreed.map(str::as_bytes),
            "{name} {alpn:?}"
        );
        client.send(b"ping\r\n");
        // The client's end of the session (`close_notify`) is passed on as
        // the end of its bytes; the target's end comes back the same way.
        client.reader.stream.conn.send_close_notify();
        client.reader.stream.flush().unwrap();
        let (read, closed_cleanly) = read_to_the_end(&mut client);
        assert_eq!(read, format!("{greeting}\r\nping\r\n").as_bytes(), "{name}");
        assert!(closed_cleanly, "{name}: the proxy said close_notify");
    }
    assert_eq!(
        (main.accepted(), other.accepted(), grpc.accepted()),
        (1, 1, 1)
    );
    assert_eq!(main.received(0), b"ping\r\n", "in the clear");
    let lines = wait_for_lines(&proxy, "s", 3);
    assert_eq!(
        lines,
        [
            "TCP s|200|TLSv1.3|x-echo|localhost|default|--|6",
            "TCP s|200|TLSv1.3|h2|localhost|g|--|6",
            "TCP s|200|TLSv1.3|-|other.test|o|--|6",
        ]
    );
}

/// A client that speaks no TLS, or too slowly, to a stream that ends TLS
/// is closed with no target asked, logged 400 as a hello that never came;
/// one the client certificate checks refuse is closed the same way.
#[test]
fn a_stream_with_tls_closes_clients_whose_handshake_fails_and_checks_their_certificates() {
    let echo = Upstream::greeting("e");
    let pki = Pki::new();
    let ca = pki.ca.write(pki.dir.path(), "ca.pem");
    let text = format!(
        "targets = {}\ntls_certificates = {}\nclient_header_timeout = 300ms\nadmin_port = 0\n\
         tls_verify_client = on\ntls_client_ca = {}\n\
         log_format = $request|$status|$request_length|$bytes_sent|$ssl_client_s_dn|$termination\n\
         stream.s = default listen=127.0.0.1:0 tls\n",
        echo.addr,
        pki.entry,
        ca.display()
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let mut plain = Client::connect(addr);
    assert_eq!(turned_away(&mut plain, b"PING\r\n"), b"");
    let mut silent = Client::connect(addr);
    assert_eq!(silent.read_until_closed(), b"");
    // No certificate: the proxy refuses it once it has the client's
    // part (TLS 1.3), so the client learns of it at its first read.
    let mut nameless = tls_client_of(addr, &pki, "localhost", &[], None)
        .expect("the client's side of the handshake completes");
    let _ = nameless.reader.stream.write_all(b"hi");
    assert_eq!(read_to_the_end(&mut nameless).0, b"");
    assert_eq!(echo.accepted(), 0);
    let lines = wait_for_lines(&proxy, "s", 3);
    // In any order: a silent client's line may be written after the
    // next client's, whose connection began once the first was closed.
    let mut ends = statuses_and_ends(&lines);
    ends.sort();
    assert_eq!(
        ends,
        [("400", "CR"), ("400", "CR"), ("400", "cR")],
        "{lines:?}"
    );
    // With a certificate of the authority: served.
    let shown = pki.ca.client_leaf("alice").shown();
    let mut alice = tls_client_of(addr, &pki, "localhost", &[], Some(shown)).unwrap();
    alice.send(b"hi\r\n");
    alice.reader.stream.conn.send_close_notify();
    alice.reader.stream.flush().unwrap();
    assert_eq!(read_to_the_end(&mut alice).0, b"e\r\nhi\r\n");
    let line = wait_for_lines(&proxy, "s", 4).pop().unwrap();
    assert_eq!(line, "TCP s|200|4|7|CN=alice|--");
    let metrics = proxy.admin("GET", "/metrics", "").body_str();
    assert!(
        metrics.contains("inverso_tls_handshakes_total{result=\"failed\"} 3"),
        "{metrics}"
    );
}

/// A target written `send_proxy_v2` behind a stream that ends TLS is told
/// what the handshake agreed, as one behind `tls_port` is: the ALPN
/// protocol and the host asked for among the header's TLVs.
#[test]
fn a_stream_with_tls_tells_a_send_proxy_v2_target_the_protocol_and_the_host() {
    let echo = Upstream::echo();
    let pki = Pki::new();
    let text = format!(
        "targets = {} send_proxy_v2\ntls_certificates = {}\n\
         stream.s = default listen=127.0.0.1:0 tls alpn=x-echo\n",
        echo.addr, pki.entry
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let mut client = tls_client_of(addr, &pki, "localhost", &["x-echo"], None).unwrap();
    client.send(b"hi");
    client.reader.stream.conn.send_close_notify();
    client.reader.stream.flush().unwrap();
    read_to_the_end(&mut client);
    assert!(wait_until(WAIT_LIMIT, || echo.open() == 0));
    let got = echo.received(0);
    assert_eq!(&got[..12], b"\r\n\r\n\0\r\nQUIT\n", "signature: {got:?}");
    let len = usize::from(u16::from_be_bytes([got[14], got[15]]));
    let tlvs = &got[28..16 + len];
    let has = |kind: u8, value: &[u8]| {
        let mut tlv = vec![kind, 0, value.len() as u8];
        tlv.extend_from_slice(value);
        tlvs.windows(tlv.len()).any(|w| w == tlv)
    };
    assert!(has(0x01, b"x-echo"), "ALPN: {tlvs:?}");
    assert!(has(0x02, b"localhost"), "authority: {tlvs:?}");
    assert_eq!(&got[16 + len..], b"hi");
}

/// A reload puts a TLS stream's new certificate and protocols in force
/// for the next handshake, with no `tls_port` to reload for; and takes
/// `tls` on or off for the next connection.
#[test]
fn a_reload_gives_a_tls_stream_its_new_certificate_and_protocols() {
    let echo = Upstream::greeting("e");
    let pki = Pki::new();
    let renewed = pki.ca.leaf(&["localhost"]);
    let renewed_entry = renewed.write_apart(&pki.ca, pki.dir.path(), "renewed");
    let text = |entry: &str, options: &str| {
        format!(
            "targets = {}\ntls_certificates = {entry}\n\
             stream.s = default listen=127.0.0.1:0 {options}\n",
            echo.addr
        )
    };
    let proxy = start_proxy(&[], from_file(&text(&pki.entry, "tls alpn=one")));
    let addr = stream_addr(&proxy, "s");
    let client = tls_client_of(addr, &pki, "localhost", &["one", "two"], None).unwrap();
    assert_eq!(client.server_cert(), pki.localhost.der);
    assert_eq!(client.conn().alpn_protocol(), Some(&b"one"[..]));

    let next = proxy.config_for(&[], from_file(&text(&renewed_entry, "tls alpn=two")));
    let reloaded = proxy.handle().control().reload(next).unwrap();
    assert!(
        reloaded.needs_restart.is_empty(),
        "{:?}",
        reloaded.needs_restart
    );
    let client = tls_client_of(addr, &pki, "localhost", &["one", "two"], None).unwrap();
    assert_eq!(client.server_cert(), renewed.der);
    assert_eq!(client.conn().alpn_protocol(), Some(&b"two"[..]));

    let next = proxy.config_for(
        &[],
        from_file(&format!(
            "targets = {}\nstream.s = default listen=127.0.0.1:0\n",
            echo.addr
        )),
    );
    proxy.handle().control().reload(next).unwrap();
    let mut plain = Client::connect(addr);
    assert_eq!(session(&mut plain, b"in the clear"), b"e\r\nin the clear");
}

/// The kernel's timer on the TCP connection from `local` to `remote`, as
/// `/proc/net/tcp` says it (IPv4): which one runs (0 none, 1
/// retransmission, 2 keepalive) and when it fires, in seconds from now.
fn tcp_timer(local: SocketAddr, remote: SocketAddr) -> Option<(u8, f64)> {
    let hex = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => unreachable!("IPv4 only"),
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields[1] != local || fields[2] != remote {
            return None;
        }
        let (timer, when) = fields[5].split_once(':')?;
        let ticks = u64::from_str_radix(when, 16).ok()?;
        // In clock ticks of USER_HZ, 100 a second on Linux.
        Some((timer.parse().ok()?, ticks as f64 / 100.0))
    })
}

/// `so_keepalive=IDLE:INTERVAL:COUNT`: a quiet session's sockets, the
/// client's and the target's, run the kernel's keepalive timer at the
/// idle time written; without it, none runs.
#[test]
fn so_keepalive_has_the_kernel_probe_a_quiet_session_both_ways() {
    let echo = Upstream::greeting("e");
    let text = format!(
        "targets = {}\nstream.ka = default listen=127.0.0.1:0 so_keepalive=45s:5s:3\n\
         stream.plain = default listen=127.0.0.1:0\n",
        echo.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    for (name, keepalive) in [("ka", true), ("plain", false)] {
        let addr = stream_addr(&proxy, name);
        let mut client = Client::connect(addr);
        assert_eq!(greeted_by(&mut client), "e");
        let me = client.reader.stream.local_addr().unwrap();
        // The proxy's end of the client's connection, and of the target's
        // (the one the target's end of which is the newest connection).
        let toward_client = || tcp_timer(addr, me);
        let toward_target = || {
            let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
            let target = format!("0100007F:{:04X}", echo.addr.port());
            let ports: Vec<u16> = (table.lines().skip(1))
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f[2] == target && f[3] == "01")
                        .then(|| u16::from_str_radix(f[1].split_once(':').unwrap().1, 16).unwrap())
                })
                .collect();
            let [port] = ports[..] else {
                panic!("one connection to the target expected: {ports:?}");
            };
            tcp_timer(SocketAddr::from(([127, 0, 0, 1], port)), echo.addr)
        };
        for (side, timer) in [
            ("client", &toward_client as &dyn Fn() -> _),
            ("target", &toward_target),
        ] {
            if keepalive {
                let set = wait_until(
                    WAIT_LIMIT,
                    || matches!(timer(), Some((2, when)) if when > 30.0 && when <= 45.0),
                );
                assert!(set, "{name} {side}: {:?}", timer());
            } else {
                assert_eq!(timer().map(|(t, _)| t), Some(0), "{name} {side}");
            }
        }
        assert_eq!(session(&mut client, b"bye"), b"bye");
        assert!(wait_until(WAIT_LIMIT, || echo.open() == 0));
    }
}

/// A client the access lists refuse is closed before any handshake, as
/// nginx's `deny` comes before its `ssl` phase: no handshake is made for
/// it, nor counted.
#[test]
fn a_stream_with_tls_refuses_a_denied_client_before_its_handshake() {
    let echo = Upstream::greeting("e");
    let pki = Pki::new();
    let text = format!(
        "targets = {}\ndeny_from = 127.0.0.1\ntls_certificates = {}\nadmin_port = 0\n\
         {TEMPLATE}stream.s = default listen=127.0.0.1:0 tls\n",
        echo.addr, pki.entry
    );
    let proxy = start_proxy(&[], from_file(&text));
    let refused = tls_client_of(stream_addr(&proxy, "s"), &pki, "localhost", &[], None);
    assert!(refused.is_err(), "a handshake was made");
    let lines = wait_for_lines(&proxy, "s", 1);
    assert!(
        lines[0].starts_with("TCP s|403|") && lines[0].ends_with("|PR"),
        "{lines:?}"
    );
    let metrics = proxy.admin("GET", "/metrics", "").body_str();
    for result in ["ok", "failed"] {
        let none = format!("inverso_tls_handshakes_total{{result=\"{result}\"}} 0");
        assert!(metrics.contains(&none), "{metrics}");
    }
    assert_eq!(echo.accepted(), 0);
}

/// Through a stream that ends TLS, much more than the sockets hold goes
/// both ways intact: 8 MiB from the target to a client slow to read them
/// (the session's records wait for room, sent as it comes, the last ones
/// too, with nothing more to send after them), then 2 MiB echoed back in
/// 16 KiB turns, then each side's end.
#[test]
fn a_stream_with_tls_relays_more_than_the_sockets_hold_both_ways() {
    let large: String = (0..8 << 20)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let source = Upstream::greeting(&large);
    let pki = Pki::new();
    let text = format!(
        "targets = {}\ntls_certificates = {}\nstream.s = default listen=127.0.0.1:0 tls\n",
        source.addr, pki.entry
    );
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = tls_client_of(stream_addr(&proxy, "s"), &pki, "localhost", &[], None).unwrap();
    let mut got = vec![0u8; large.len() + 2];
    let mut at = 0;
    while at < got.len() {
        // Slow throughout: the proxy's writes find no room, to the last.
        std::thread::sleep(Duration::from_millis(1));
        let n = client.reader.stream.read(&mut got[at..]).unwrap();
        assert!(n > 0, "ended after {at} bytes");
        at += n;
    }
    assert!(
        got[..large.len()] == *large.as_bytes(),
        "the greeting intact"
    );
    assert_eq!(&got[large.len()..], b"\r\n");
    let turn: Vec<u8> = (0..16 * 1024).map(|i| (i % 251) as u8).collect();
    for round in 0..128 {
        client.send(&turn);
        let mut back = vec![0u8; turn.len()];
        client.reader.stream.read_exact(&mut back).unwrap();
        assert!(back == turn, "round {round}");
    }
    client.reader.stream.conn.send_close_notify();
    client.reader.stream.flush().unwrap();
    let (rest, clean) = read_to_the_end(&mut client);
    assert!(
        rest.is_empty() && clean,
        "{} bytes more, clean end: {clean}",
        rest.len()
    );
}

/// A Redis-like server of one role: every line it reads is answered
/// `role:<role>` (and a `PING`, `+PONG`), as `INFO replication` says.
fn redis_of_role(role: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                let mut line = [0u8; 1024];
                // Bounded: each read waits at most the I/O timeout.
                for _ in 0..1_000 {
                    match stream.read(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(n) if line[..n].starts_with(b"PING") => {
                            let _ = stream.write_all(b"+PONG\r\n");
                        }
                        Ok(_) => {
                            let info = format!("$24\r\n# Replication\r\nrole:{role}\r\n");
                            let _ = stream.write_all(info.as_bytes());
                        }
                    }
                }
            });
        }
    });
    addr
}

/// `health_check_send` and `health_check_expect` under `health_check_tcp`
/// (HAProxy's `tcp-check send` and `tcp-check expect string`): HAProxy's
/// recipe for Redis, `INFO replication` answered `role:master`, takes the
/// replica out, and the stream sends every connection to the master.
#[test]
fn tcp_checks_that_converse_send_sessions_to_the_redis_master_alone() {
    let (master, replica) = (redis_of_role("master"), redis_of_role("slave"));
    let text = format!(
        "targets = {master}, {replica}\nhealth_check_tcp = true\n\
         health_check_send = INFO replication\\r\\n\nhealth_check_expect = role:master\n\
         health_check_interval = 100ms\nhealth_check_fall = 1\n\
         stream.redis = default listen=127.0.0.1:0\n"
    );
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    let healthy = |addr: SocketAddr| status_field(&proxy, &addr.to_string(), "healthy");
    let settled = wait_until(WAIT_LIMIT, || {
        healthy(replica) == "false" && healthy(master) == "true"
    });
    assert!(
        settled,
        "master {}, replica {}",
        healthy(master),
        healthy(replica)
    );
    let status = proxy.admin("GET", "/status", "").body_str();
    assert!(
        status.contains("\"said\":\"reply without `role:master`\""),
        "{status}"
    );
    for _ in 0..4 {
        let mut client = Client::connect(stream_addr(&proxy, "redis"));
        client.send(b"INFO replication\r\n");
        let answer = client.reader.read_exact_body(33).unwrap();
        assert_eq!(answer, b"$24\r\n# Replication\r\nrole:master\r\n");
    }
}

/// A mail-server-like target: each connection greeted with `banner`, an
/// `EHLO` answered `to_ehlo`, a `QUIT` with `221` (and counted in the
/// count returned) before the close.
fn smtp_like(banner: &'static [u8], to_ehlo: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let quits = Arc::new(AtomicUsize::new(0));
    let counted = quits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let quits = counted.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                if stream.write_all(banner).is_err() {
                    return;
                }
                let mut read = Vec::new();
                let mut chunk = [0u8; 1024];
                // Bounded: each read waits at most the I/O timeout.
                for _ in 0..1_000 {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = read.windows(2).position(|w| w == b"\r\n") {
                        let line: Vec<u8> = read.drain(..end + 2).collect();
                        if line.starts_with(b"EHLO ") {
                            let _ = stream.write_all(to_ehlo);
                        } else if line.starts_with(b"QUIT") {
                            quits.fetch_add(1, Ordering::SeqCst);
                            let _ = stream.write_all(b"221 bye\r\n");
                            return;
                        } else {
                            let _ = stream.write_all(b"500 what?\r\n");
                        }
                    }
                }
            });
        }
    });
    (addr, quits)
}

/// `health_check_conversation` under `health_check_tcp` (HAProxy's list
/// of `tcp-check` rules): SMTP's banner awaited, `EHLO` sent and answered
/// `250`, then `QUIT`. A server whose banner holds a `250` but that
/// refuses the `EHLO` is taken out, its step named in `/status`; the one
/// that answers is kept, and every session goes to it.
#[test]
fn tcp_checks_in_steps_take_out_a_mail_server_that_refuses_the_ehlo() {
    let (good, quits) = smtp_like(
        b"220 mail.test ESMTP\r\n",
        b"250-mail.test\r\n250 SIZE 10240000\r\n",
    );
    let (refusing, _) = smtp_like(b"220 mail.test 250 ready\r\n", b"554 5.7.1 go away\r\n");
    let text = format!(
        "targets = {good}, {refusing}\nhealth_check_tcp = true\n\
         health_check_conversation = expect 220 | send EHLO inverso.check\\r\\n | expect 250 \
         | send QUIT\\r\\n\n\
         health_check_interval = 100ms\nhealth_check_fall = 1\n\
         stream.smtp = default listen=127.0.0.1:0\n"
    );
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    let healthy = |addr: SocketAddr| status_field(&proxy, &addr.to_string(), "healthy");
    // The good one's conversation ran whole, to its QUIT.
    let quit = || quits.load(Ordering::SeqCst) > 0;
    let settled = wait_until(WAIT_LIMIT, || {
        healthy(refusing) == "false" && healthy(good) == "true" && quit()
    });
    assert!(
        settled,
        "good {}, refusing {}, a QUIT: {}",
        healthy(good),
        healthy(refusing),
        quit()
    );
    let status = proxy.admin("GET", "/status", "").body_str();
    assert!(
        status.contains("\"said\":\"step 3: reply without `250`\""),
        "{status}"
    );
    for _ in 0..4 {
        let mut client = Client::connect(stream_addr(&proxy, "smtp"));
        let banner = client.reader.read_exact_body(21).unwrap();
        assert_eq!(banner, b"220 mail.test ESMTP\r\n");
    }
}
