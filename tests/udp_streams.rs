//! UDP streams (`stream.<name> = <pool> listen=[ADDR:]PORT udp
//! [responses=N] [timeout=DUR]`, nginx's `listen ... udp` in a `stream`
//! block), over real sockets: a session per client address and port, each
//! with a target of the pool's balancer; datagrams relayed whole both
//! ways; a session's end by its answers, by its timeout or by a target
//! that refuses datagrams, each counted where it is a failure; the access
//! lists; the log's line per session; shutdown.
//!
//! The targets are tiny UDP servers of this file's ([`Answerer`]).

mod support;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// A UDP target: answers each datagram `times` times with its name, `:`
/// and the datagram, and keeps where each came from. One that begins with
/// `mute` gets no answer; one that begins with `hold` is answered only
/// along with the next datagram that does not, before it.
#[derive(Clone)]
struct Answerer {
    addr: SocketAddr,
    /// The source of each datagram received, in order.
    sources: Arc<Mutex<Vec<SocketAddr>>>,
    received: Arc<AtomicUsize>,
    /// The first datagram received.
    first: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Answerer {
    fn start(name: &str, times: usize) -> Answerer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let answerer = Answerer {
            addr: socket.local_addr().unwrap(),
            sources: Arc::default(),
            received: Arc::default(),
            first: Arc::default(),
        };
        let (a, name) = (answerer.clone(), name.to_string());
        std::thread::spawn(move || {
            let mut datagram = [0u8; 65_536];
            let mut held = Vec::new();
            // Bounded: the tests send a few datagrams each.
            for _ in 0..100_000 {
                let Ok((n, from)) = socket.recv_from(&mut datagram) else {
                    return;
                };
                a.sources.lock().unwrap().push(from);
                a.received.fetch_add(1, Ordering::SeqCst);
                (a.first.lock().unwrap()).get_or_insert_with(|| datagram[..n].to_vec());
                let mut answer = format!("{name}:").into_bytes();
                answer.extend_from_slice(&datagram[..n]);
                if datagram[..n].starts_with(b"mute") {
                    continue;
                }
                held.push(answer);
                if datagram[..n].starts_with(b"hold") {
                    continue;
                }
                for answer in held.drain(..) {
                    for _ in 0..times {
                        let _ = socket.send_to(&answer, from);
                    }
                }
            }
        });
        answerer
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    fn first_datagram(&self) -> Option<Vec<u8>> {
        self.first.lock().unwrap().clone()
    }

    /// The distinct source ports its datagrams came from: a session each.
    fn sessions(&self) -> BTreeSet<u16> {
        (self.sources.lock().unwrap().iter())
            .map(SocketAddr::port)
            .collect()
    }
}

/// A client socket of its own (its own session), waiting at most
/// [`IO_TIMEOUT`] for an answer.
fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket
}

/// Sends `datagram` to `addr` from `socket` and gives the answer.
#[track_caller]
fn ask(socket: &UdpSocket, addr: SocketAddr, datagram: &str) -> String {
    socket.send_to(datagram.as_bytes(), addr).unwrap();
    answer(socket)
}

/// The next datagram `socket` receives.
#[track_caller]
fn answer(socket: &UdpSocket) -> String {
    let mut buf = [0u8; 65_536];
    let (n, _) = socket.recv_from(&mut buf).expect("an answer");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The template the tests read: each field between `|`.
const TEMPLATE: &str = "log_format = $request|$status|$request_length|$bytes_sent|\
                        $upstream_addr|$termination\n";

/// Waits until the log has `n` lines for the stream `name`, and gives
/// them.
#[track_caller]
fn wait_for_lines(proxy: &Proxy, name: &str, n: usize) -> Vec<String> {
    let start = format!("UDP {name}|");
    let lines = || -> Vec<String> {
        (proxy.log_lines().into_iter())
            .filter(|l| l.starts_with(&start))
            .collect()
    };
    let arrived = wait_until(WAIT_LIMIT, || lines().len() >= n);
    assert!(arrived, "{n} lines expected: {:?}", proxy.log_lines());
    lines()
}

/// Where the stream `name` takes datagrams.
#[track_caller]
fn stream_addr(proxy: &Proxy, name: &str) -> SocketAddr {
    (proxy.handle().stream_addr(name)).unwrap_or_else(|| panic!("no stream {name}"))
}

/// `responses=1`: each session is one question and its answer, the next
/// one from the same address a new session, with the next target of
/// round robin; every datagram whole both ways.
#[test]
fn each_question_is_a_session_of_its_own_under_responses_1_balanced_round_robin() {
    let (a, b) = (Answerer::start("a", 1), Answerer::start("b", 1));
    let text = format!(
        "targets = {}, {}\n{TEMPLATE}stream.dns = default listen=127.0.0.1:0 udp responses=1\n",
        a.addr, b.addr
    );
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    let addr = stream_addr(&proxy, "dns");
    let one = client();
    let large = "x".repeat(60_000);
    let mut answered_by = Vec::new();
    for question in ["q1", "q2", &large, "q4"] {
        let answer = ask(&one, addr, question);
        let (by, echoed) = answer.split_once(':').unwrap();
        assert_eq!(echoed, question, "whole");
        answered_by.push(by.to_string());
        // The session has ended (its line logged) before the next begins.
        wait_for_lines(&proxy, "dns", answered_by.len());
    }
    assert_eq!(answered_by, ["a", "b", "a", "b"]);
    // A session each: a socket of its own toward the target each time.
    assert_eq!((a.sessions().len(), b.sessions().len()), (2, 2));
    let lines = wait_for_lines(&proxy, "dns", 4);
    let line = |at: &Answerer, length: usize| {
        format!("UDP dns|200|{length}|{}|{}|--", length + 2, at.addr)
    };
    assert_eq!(
        lines,
        [line(&a, 2), line(&b, 2), line(&a, 60_000), line(&b, 2)]
    );
    let metrics = proxy.admin("GET", "/metrics", "").body_str();
    assert!(
        metrics.contains("inverso_stream_connections_total{stream=\"dns\",class=\"2xx\"} 4"),
        "{metrics}"
    );
}

/// Without `responses=`, a client's datagrams go to one target in one
/// session, its answers all relayed (two a question here), until the
/// session has been quiet for `timeout=`.
#[test]
fn a_session_carries_many_datagrams_both_ways_until_it_idles_out() {
    let (a, b) = (Answerer::start("a", 2), Answerer::start("b", 2));
    let text = format!(
        "targets = {}, {}\n{TEMPLATE}stream.s = default listen=127.0.0.1:0 udp timeout=300ms\n",
        a.addr, b.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let (one, two) = (client(), client());
    for question in ["1", "22", "333"] {
        assert_eq!(ask(&one, addr, question), format!("a:{question}"));
        assert_eq!(answer(&one), format!("a:{question}"));
    }
    assert_eq!(ask(&two, addr, "other"), "b:other");
    assert_eq!(a.sessions().len(), 1, "one socket toward a for the session");
    let lines = wait_for_lines(&proxy, "s", 2);
    let mut lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("UDP s|200|5|14|{}|cD", b.addr),
            format!("UDP s|200|6|24|{}|cD", a.addr),
        ]
    );
}

/// With `responses=`, a target that leaves a question unanswered for the
/// timeout has failed: 502 `sD`, counted toward its `max_fails`, so the
/// next session goes to the other.
#[test]
fn answers_owed_past_the_timeout_are_the_target_s_failure() {
    let (silent, b) = (Answerer::start("silent", 0), Answerer::start("b", 1));
    let text = format!(
        "targets = {} max_fails=1, {}\nfail_timeout = 1h\n{TEMPLATE}\
         stream.s = default listen=127.0.0.1:0 udp responses=1 timeout=200ms\n",
        silent.addr, b.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let unanswered = client();
    unanswered.send_to(b"q", addr).unwrap();
    let lines = wait_for_lines(&proxy, "s", 1);
    assert_eq!(lines[0], format!("UDP s|502|1|0|{}|sD", silent.addr));
    assert_eq!(silent.received(), 1);
    // Round robin would give the silent target every other session.
    for _ in 0..3 {
        assert_eq!(ask(&client(), addr, "q"), "b:q");
    }
    assert_eq!(silent.received(), 1);
}

/// A target whose port takes no datagrams (an ICMP port unreachable ends
/// the session: 502 `SD`), and a client the access lists refuse (its
/// datagram dropped: 403 `PR`), are each logged, no answer sent.
#[test]
fn a_refusing_target_and_a_refused_client_are_logged() {
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
    let nobody = closed.local_addr().unwrap();
    drop(closed);
    let b = Answerer::start("b", 1);
    let text = format!(
        "targets = {}\npool.open = {}\npool.open.deny_from = 127.0.0.1\n{TEMPLATE}\
         stream.gone = default listen=127.0.0.1:0 udp responses=1\n\
         stream.denied = open listen=127.0.0.1:0 udp\n",
        nobody, b.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    client().send_to(b"q", stream_addr(&proxy, "gone")).unwrap();
    let lines = wait_for_lines(&proxy, "gone", 1);
    assert_eq!(lines, [format!("UDP gone|502|1|0|{nobody}|SD")]);
    client()
        .send_to(b"q", stream_addr(&proxy, "denied"))
        .unwrap();
    let lines = wait_for_lines(&proxy, "denied", 1);
    assert_eq!(lines, ["UDP denied|403|1|0|-|PR"]);
    assert_eq!(b.received(), 0);
}

/// Shutdown ends the sessions still open, each logged.
#[test]
fn shutdown_ends_open_sessions_and_logs_each() {
    let a = Answerer::start("a", 1);
    let text = format!(
        "targets = {}\n{TEMPLATE}stream.s = default listen=127.0.0.1:0 udp timeout=1h\n",
        a.addr
    );
    let mut proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    assert_eq!(ask(&client(), addr, "q"), "a:q");
    proxy.shutdown(Duration::from_secs(1));
    let lines: Vec<String> = (proxy.log_lines().into_iter())
        .filter(|l| l.starts_with("UDP s|"))
        .collect();
    assert_eq!(lines, [format!("UDP s|200|1|3|{}|KD", a.addr)]);
}

/// On `::` (IPv4 taken too), an IPv4 client is the IPv4 address it is,
/// as over TCP: for the access lists, and in the log.
#[test]
fn an_ipv4_client_of_a_stream_on_the_ipv6_wildcard_is_its_ipv4_address() {
    if UdpSocket::bind("[::]:0").is_err() {
        eprintln!("no IPv6 here: skipped");
        return;
    }
    let a = Answerer::start("a", 1);
    let text = format!(
        "targets = 127.0.0.1:1\npool.p = {}\npool.p.deny_from = 127.0.0.1\n\
         log_format = $request|$status|$remote_addr\n\
         stream.s = p listen=[::]:0 udp responses=1\n",
        a.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let port = stream_addr(&proxy, "s").port();
    client()
        .send_to(b"q", SocketAddr::from(([127, 0, 0, 1], port)))
        .unwrap();
    let lines = wait_for_lines(&proxy, "s", 1);
    assert_eq!(lines, ["UDP s|403|127.0.0.1"]);
    assert_eq!(a.received(), 0);
}

/// Under `responses=`, the answers owed are for every datagram of the
/// session: two questions (the first held by the target until the second
/// comes) are owed two answers, both relayed before the session ends.
#[test]
fn answers_are_owed_for_each_of_the_session_s_datagrams() {
    let a = Answerer::start("a", 1);
    let text = format!(
        "targets = {}\n{TEMPLATE}stream.s = default listen=127.0.0.1:0 udp responses=1\n",
        a.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let one = client();
    one.send_to(b"hold", addr).unwrap();
    assert_eq!(ask(&one, addr, "q2"), "a:hold");
    assert_eq!(answer(&one), "a:q2");
    let lines = wait_for_lines(&proxy, "s", 1);
    assert_eq!(lines, [format!("UDP s|200|6|10|{}|--", a.addr)]);
    assert_eq!(a.sessions().len(), 1);
}

/// A session that idled out is out of the table: the client's next
/// datagram begins another (with the next target), and is answered.
#[test]
fn after_a_session_idles_out_the_client_s_next_datagram_begins_another() {
    let (a, b) = (Answerer::start("a", 1), Answerer::start("b", 1));
    let text = format!(
        "targets = {}, {}\n{TEMPLATE}stream.s = default listen=127.0.0.1:0 udp timeout=200ms\n",
        a.addr, b.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let one = client();
    assert_eq!(ask(&one, addr, "q"), "a:q");
    assert_eq!(
        wait_for_lines(&proxy, "s", 1),
        [format!("UDP s|200|1|3|{}|cD", a.addr)]
    );
    assert_eq!(ask(&one, addr, "again"), "b:again");
    assert_eq!(
        wait_for_lines(&proxy, "s", 2)[1],
        format!("UDP s|200|5|7|{}|cD", b.addr)
    );
}

/// The timeout is for a quiet session: one whose datagrams keep coming
/// outlives it, in one session with one target.
#[test]
fn a_busy_session_outlives_its_timeout() {
    let (a, b) = (Answerer::start("a", 1), Answerer::start("b", 1));
    let text = format!(
        "targets = {}, {}\n{TEMPLATE}stream.s = default listen=127.0.0.1:0 udp timeout=1500ms\n",
        a.addr, b.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let one = client();
    // Seven questions 400 ms apart (longer than the relay's own waits, so
    // that the session's quiet is looked at between them): nearly three
    // seconds in all, never more than a second and a half quiet.
    for _ in 0..7 {
        assert_eq!(ask(&one, addr, "q"), "a:q");
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_eq!((a.sessions().len(), b.received()), (1, 0));
}

/// A target's answer clears its failures (as a response does for HTTP):
/// two sessions it left unanswered, with one answered between, do not
/// reach its `max_fails=2`, so it is not passed over for the backup.
#[test]
fn an_answered_session_clears_the_target_s_failures() {
    let (a, backup) = (Answerer::start("a", 1), Answerer::start("backup", 1));
    let text = format!(
        "targets = {} max_fails=2, {} backup\nfail_timeout = 1h\n{TEMPLATE}\
         stream.s = default listen=127.0.0.1:0 udp responses=1 timeout=200ms\n",
        a.addr, backup.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    client().send_to(b"mute", addr).unwrap();
    wait_for_lines(&proxy, "s", 1);
    assert_eq!(ask(&client(), addr, "q"), "a:q");
    wait_for_lines(&proxy, "s", 2);
    client().send_to(b"mute", addr).unwrap();
    let lines = wait_for_lines(&proxy, "s", 3);
    assert_eq!(lines[2], format!("UDP s|502|4|0|{}|sD", a.addr));
    assert_eq!(ask(&client(), addr, "q"), "a:q");
    assert_eq!(backup.received(), 0);
}

/// With every target out by the operator's hand (in maintenance), a
/// session cannot begin: 503 `SC`, as for TCP streams and HTTP.
#[test]
fn with_every_target_in_maintenance_a_datagram_is_refused_503() {
    let a = Answerer::start("a", 1);
    let text = format!(
        "targets = {}\n{TEMPLATE}stream.s = default listen=127.0.0.1:0 udp\n",
        a.addr
    );
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    let put = proxy.admin("PUT", &format!("/targets/{}", a.addr), "maint");
    assert_eq!(put.status, 200, "{}", put.body_str());
    client().send_to(b"q", stream_addr(&proxy, "s")).unwrap();
    let lines = wait_for_lines(&proxy, "s", 1);
    assert_eq!(lines, ["UDP s|503|1|0|-|SC"]);
    assert_eq!(a.received(), 0);
}

/// A target no datagram can be sent to (Linux refuses to connect a UDP
/// socket to the broadcast address without `SO_BROADCAST`: `EACCES`) is a
/// failed try, each logged; with `retries = 1`, two such tries end it:
/// 502 `SC`, the target after them never tried.
#[test]
fn targets_that_take_no_datagrams_are_tried_up_to_retries() {
    let b = Answerer::start("b", 1);
    let text = format!(
        "targets = 255.255.255.255:9, 255.255.255.255:10, {}\nretries = 1\n\
         log_format = $request|$status|$upstream_addr|$upstream_connect_time|$termination\n\
         stream.s = default listen=127.0.0.1:0 udp responses=1\n",
        b.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    client().send_to(b"q", stream_addr(&proxy, "s")).unwrap();
    let lines = wait_for_lines(&proxy, "s", 1);
    assert_eq!(
        lines,
        ["UDP s|502|255.255.255.255:9, 255.255.255.255:10|0.000, 0.000|SC"]
    );
    assert_eq!(b.received(), 0);
}

/// The threads of this process whose name begins `udp`: a stream's, and
/// (were there any) its sessions'.
fn udp_threads() -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    (tasks.flatten())
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|n| n.starts_with("udp"))
        })
        .count()
}

/// Sessions open at once take a socket each and no thread: the stream's
/// one thread waits for all of them, and each is answered in turn while
/// the others stay open.
#[test]
fn two_hundred_sessions_open_at_once_are_served_by_the_stream_s_one_thread() {
    let a = Answerer::start("a", 1);
    let text = format!(
        "targets = {}\n{TEMPLATE}stream.s = default listen=127.0.0.1:0 udp timeout=1h\n",
        a.addr
    );
    let mut proxy = start_proxy(&[], from_file_with_admin(&text));
    let addr = stream_addr(&proxy, "s");
    let clients: Vec<UdpSocket> = (0..200).map(|_| client()).collect();
    for (i, client) in clients.iter().enumerate() {
        assert_eq!(ask(client, addr, &format!("q{i}")), format!("a:q{i}"));
    }
    // Each again, the last first: every session still open.
    for (i, client) in clients.iter().enumerate().rev() {
        assert_eq!(ask(client, addr, &format!("r{i}")), format!("a:r{i}"));
    }
    assert_eq!(a.sessions().len(), 200, "a socket toward a for each");
    let status = proxy.admin("GET", "/status", "").body_str();
    assert!(status.contains("\"open\":200"), "{status}");
    // Other tests' streams run beside this one, a thread each.
    let threads = udp_threads();
    assert!(threads < 50, "{threads} threads named udp for 200 sessions");
    proxy.shutdown(Duration::from_secs(1));
    let lines: Vec<String> = (proxy.log_lines().into_iter())
        .filter(|l| l.starts_with("UDP s|"))
        .collect();
    assert_eq!(lines.len(), 200, "a line a session: {lines:?}");
    assert!(lines.iter().all(|l| l.ends_with("|KD")), "{lines:?}");
}

/// At `max_connections` sessions a stream, a new client's datagram is
/// dropped (nginx's stream drops it too, with no connection to take it);
/// once one ends, the next client's begins a session.
#[test]
fn past_max_connections_sessions_a_new_client_s_datagram_is_dropped() {
    let a = Answerer::start("a", 1);
    let text = format!(
        "targets = {}\nmax_connections = 2\n{TEMPLATE}\
         stream.s = default listen=127.0.0.1:0 udp timeout=1s\n",
        a.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let (one, two, three) = (client(), client(), client());
    assert_eq!(ask(&one, addr, "1"), "a:1");
    assert_eq!(ask(&two, addr, "2"), "a:2");
    three
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    three.send_to(b"3", addr).unwrap();
    let mut buf = [0u8; 64];
    assert!(
        three.recv_from(&mut buf).is_err(),
        "no answer past the limit"
    );
    assert_eq!(a.received(), 2, "the third datagram went nowhere");
    // The two sessions idle out; the third client is served then.
    wait_for_lines(&proxy, "s", 2);
    three.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(ask(&three, addr, "3"), "a:3");
}

/// `requests=N` (nginx's `proxy_requests`): a session takes N of the
/// client's datagrams; the next begins another session, while the first
/// still passes its answers on until it ends.
#[test]
fn under_requests_2_a_client_s_third_datagram_begins_another_session() {
    let a = Answerer::start("a", 1);
    let text = format!(
        "targets = {}\n{TEMPLATE}stream.s = default listen=127.0.0.1:0 udp requests=2 \
         timeout=300ms\n",
        a.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let one = client();
    for question in ["1", "22", "333"] {
        assert_eq!(ask(&one, addr, question), format!("a:{question}"));
    }
    assert_eq!(a.sessions().len(), 2, "a socket toward a for each session");
    let mut lines = wait_for_lines(&proxy, "s", 2);
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("UDP s|200|3|5|{}|cD", a.addr),
            format!("UDP s|200|3|7|{}|cD", a.addr),
        ]
    );
}

/// `requests=1 responses=1`, nginx's recipe for DNS: a question whose
/// answer never comes holds up none of the client's next ones, each a
/// session of its own.
#[test]
fn under_requests_1_responses_1_an_unanswered_question_holds_up_no_other() {
    let a = Answerer::start("a", 1);
    let text = format!(
        "targets = {}\n{TEMPLATE}stream.s = default listen=127.0.0.1:0 udp requests=1 \
         responses=1 timeout=300ms\n",
        a.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let one = client();
    one.send_to(b"mute", addr).unwrap();
    assert_eq!(ask(&one, addr, "q"), "a:q");
    let mut lines = wait_for_lines(&proxy, "s", 2);
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("UDP s|200|1|3|{}|--", a.addr),
            format!("UDP s|502|4|0|{}|sD", a.addr),
        ]
    );
}

/// Sessions that end leave the others as they were: the first of three
/// idles out while the other two go on, each still in its own session.
#[test]
fn the_sessions_left_when_one_ends_go_on_in_their_own() {
    let a = Answerer::start("a", 1);
    let text = format!(
        "targets = {}\n{TEMPLATE}stream.s = default listen=127.0.0.1:0 udp timeout=400ms\n",
        a.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let (first, second, third) = (client(), client(), client());
    assert_eq!(ask(&first, addr, "f"), "a:f");
    // Bounded: 10 rounds of 100 ms, the first's session idling out
    // among them.
    for round in 0..10 {
        assert_eq!(
            ask(&second, addr, &format!("s{round}")),
            format!("a:s{round}")
        );
        assert_eq!(
            ask(&third, addr, &format!("t{round}")),
            format!("a:t{round}")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = wait_for_lines(&proxy, "s", 1);
    assert_eq!(lines, [format!("UDP s|200|1|3|{}|cD", a.addr)]);
    assert_eq!(a.sessions().len(), 3, "no session begun again");
}

/// On a wildcard address each answer leaves from the address its
/// question was sent to, as a resolver that checks where its answer came
/// from needs (on Linux the whole of 127/8 is the host's): the log's
/// `$server_addr` is that address too. On `::`, an IPv4 question's.
#[test]
fn on_a_wildcard_an_answer_leaves_from_the_address_its_question_came_to() {
    let a = Answerer::start("a", 1);
    let v6 = UdpSocket::bind("[::]:0").is_ok();
    let text = format!(
        "targets = {}\nlog_format = $request|$status|$server_addr|$remote_addr\n\
         stream.v4 = default listen=0.0.0.0:0 udp responses=1\n{}",
        a.addr,
        if v6 {
            "stream.v6 = default listen=[::]:0 udp responses=1\n"
        } else {
            ""
        }
    );
    let proxy = start_proxy(&[], from_file(&text));
    let mut streams = vec![("v4", [127, 0, 0, 2])];
    if v6 {
        streams.push(("v6", [127, 0, 0, 3]));
    }
    for (name, ip) in streams {
        let to = SocketAddr::from((ip, stream_addr(&proxy, name).port()));
        let one = client();
        one.send_to(b"q", to).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = one.recv_from(&mut buf).expect("an answer");
        assert_eq!(&buf[..n], b"a:q");
        assert_eq!(from, to, "{name}: the answer's source");
        let lines = wait_for_lines(&proxy, name, 1);
        assert_eq!(lines, [format!("UDP {name}|200|{}|127.0.0.1", to.ip())]);
    }
}

/// `health_check_udp` (nginx Plus's `health_check udp`): each target is
/// sent `health_check_send`'s datagram, written with `\xHH` escapes, and
/// must answer it (with `health_check_expect` in the answer): one that refuses
/// datagrams, one that never answers and one whose answer lacks the text
/// are taken out, and sessions go to the one left.
#[test]
fn udp_health_checks_take_out_targets_that_refuse_stay_silent_or_answer_wrongly() {
    let (a, b) = (Answerer::start("a", 1), Answerer::start("b", 1));
    // No one takes datagrams at a port just let go.
    let refusing = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // Bound, never read.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let text = format!(
        "targets = {}, {}, {refusing}, {silent_addr}\n{TEMPLATE}\
         health_check_udp = true\nhealth_check_send = \\x01pi\\\\ng\nhealth_check_expect = a:\n\
         health_check_interval = 100ms\nhealth_check_timeout = 300ms\nhealth_check_fall = 1\n\
         stream.s = default listen=127.0.0.1:0 udp responses=1\n",
        a.addr, b.addr
    );
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    let said = |addr| {
        let status = proxy.target_status(addr);
        let said = status
            .split("\"said\":\"")
            .nth(1)
            .map(|s| s.split('"').next().unwrap());
        (
            status.contains("\"healthy\":true"),
            said.unwrap_or("").to_string(),
        )
    };
    let settled = wait_until(WAIT_LIMIT, || {
        [b.addr, refusing, silent_addr].iter().all(|&t| !said(t).0) && said(a.addr).0
    });
    assert!(
        settled,
        "{:?}",
        [a.addr, b.addr, refusing, silent_addr].map(said)
    );
    assert_eq!(said(a.addr), (true, "passed".into()));
    assert_eq!(said(b.addr), (false, "reply without `a:`".into()));
    assert_eq!(said(refusing), (false, "datagrams refused".into()));
    assert_eq!(said(silent_addr), (false, "no reply within 300ms".into()));
    // The probes' datagram, as its escapes write it.
    let probe = b"\x01pi\\ng";
    assert!(a.received() >= 1);
    assert_eq!(a.first_datagram().as_deref(), Some(&probe[..]));
    let addr = stream_addr(&proxy, "s");
    for i in 0..4 {
        assert_eq!(ask(&client(), addr, &format!("q{i}")), format!("a:q{i}"));
    }
}

/// `responses=0` (nginx's `proxy_responses 0`, for syslog): nothing is
/// awaited, so each datagram is a session that ends as it is sent on,
/// and no quiet session waits out its timeout.
#[test]
fn under_responses_0_each_datagram_is_sent_on_and_its_session_ends_at_once() {
    let a = Answerer::start("a", 1);
    let text = format!(
        "targets = {}\n{TEMPLATE}stream.syslog = default listen=127.0.0.1:0 udp responses=0 \
         timeout=1h\n",
        a.addr
    );
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    let addr = stream_addr(&proxy, "syslog");
    let sender = client();
    for line in ["mute 1", "mute 2", "mute 3"] {
        sender.send_to(line.as_bytes(), addr).unwrap();
    }
    let lines = wait_for_lines(&proxy, "syslog", 3);
    let line = format!("UDP syslog|200|6|0|{}|--", a.addr);
    assert_eq!(lines, [line.clone(), line.clone(), line]);
    assert!(wait_until(WAIT_LIMIT, || a.received() == 3));
    assert_eq!(a.sessions().len(), 3, "a session each");
    let status = proxy.admin("GET", "/status", "").body_str();
    assert!(status.contains("\"open\":0"), "{status}");
}

/// Under `responses=3`, answers still owed at the timeout are the
/// target's failure (`sD`) even after some came: three datagrams (the
/// first held by the target, the second never answered) are owed nine
/// answers and get six; the line says 200, for the answers relayed.
#[test]
fn answers_still_owed_after_some_came_end_the_session_as_the_target_s_timeout() {
    let a = Answerer::start("a", 3);
    let text = format!(
        "targets = {}\n{TEMPLATE}stream.s = default listen=127.0.0.1:0 udp responses=3 \
         timeout=300ms\n",
        a.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let one = client();
    one.send_to(b"hold1", addr).unwrap();
    one.send_to(b"mute", addr).unwrap();
    one.send_to(b"q3", addr).unwrap();
    let answers: Vec<String> = (0..6).map(|_| answer(&one)).collect();
    assert_eq!(
        answers,
        ["a:hold1", "a:hold1", "a:hold1", "a:q3", "a:q3", "a:q3"]
    );
    let lines = wait_for_lines(&proxy, "s", 1);
    assert_eq!(lines, [format!("UDP s|200|11|33|{}|sD", a.addr)]);
    assert_eq!(a.sessions().len(), 1);
}

/// A datagram its session cannot send on (65,527 bytes from an IPv6
/// client: more than an IPv4 target's UDP takes) owes no answer under
/// `responses=`: its session ends at once, nothing sent, and the stream
/// goes on to serve the client's next.
#[test]
fn a_datagram_that_cannot_be_sent_on_ends_its_session_at_once() {
    let Ok(one) = UdpSocket::bind("[::1]:0") else {
        eprintln!("no IPv6 here: skipped");
        return;
    };
    one.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let a = Answerer::start("a", 1);
    let text = format!(
        "targets = {}\n{TEMPLATE}stream.s = default listen=[::1]:0 udp responses=1\n",
        a.addr
    );
    let proxy = start_proxy(&[], from_file(&text));
    let addr = stream_addr(&proxy, "s");
    let largest_v6 = vec![b'x'; 65_527];
    one.send_to(&largest_v6, addr).unwrap();
    let lines = wait_for_lines(&proxy, "s", 1);
    assert_eq!(lines, [format!("UDP s|200|0|0|{}|--", a.addr)]);
    assert_eq!(ask(&one, addr, "q"), "a:q");
    assert_eq!(a.received(), 1, "the large one never reached the target");
}
