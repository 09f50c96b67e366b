//! `log_syslog` over real sockets: each access-log line reaches a UDP or
//! Unix datagram receiver as one RFC 3164 message, a reload moves them to
//! another, and a syslog nobody listens on costs stdout no line.

mod support;

use inverso::access_log::{Facility, SyslogTarget};
use inverso::config::LogFormat;
use std::io::BufRead;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// A backend that answers `/fail` 502, the rest 200.
fn backend() -> Backend {
    Backend::start("b", |seen, out| {
        let status = if seen.path() == "/fail" { 502 } else { 200 };
        respond(out, status, &[], b"ok");
        Action::KeepAlive
    })
}

fn udp_receiver() -> (UdpSocket, SyslogTarget) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let addr = socket.local_addr().unwrap();
    let target = SyslogTarget::parse(&format!("udp://{addr}")).unwrap();
    (socket, target)
}

/// `count` datagrams, as text; each read bounded by [`IO_TIMEOUT`].
fn received(
    mut recv: impl FnMut(&mut [u8]) -> std::io::Result<usize>,
    count: usize,
) -> Vec<String> {
    let mut buf = vec![0u8; 65536];
    (0..count)
        .map(|_| {
            let n = recv(&mut buf).expect("a datagram");
            String::from_utf8(buf[..n].to_vec()).unwrap()
        })
        .collect()
}

/// A message split as RFC 3164 writes it: PRI, then (after the
/// timestamp, `Mmm dd hh:mm:ss`) what follows it.
fn split(message: &str) -> (u16, &str) {
    let (pri, rest) = message
        .strip_prefix('<')
        .and_then(|m| m.split_once('>'))
        .unwrap_or_else(|| panic!("no PRI: {message}"));
    assert_eq!(rest.as_bytes()[15], b' ', "{message}");
    (pri.parse().unwrap(), &rest[16..])
}

#[test]
fn each_line_reaches_a_udp_receiver_as_one_message_with_its_priority_and_tag() {
    let backend = backend();
    let (receiver, target) = udp_receiver();
    let mut proxy = start_proxy(&[backend.addr], |c| {
        c.log_syslog = Some(target);
        c.log_syslog_facility = Facility::parse("local0").unwrap();
        c.log_syslog_tag = "edge_1".into();
    });
    let mut client = proxy.connect();
    for path in ["/a", "/fail", "/b"] {
        client.get(path);
    }
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 3);
    let got = received(|buf| receiver.recv(buf), 3);
    for (i, (message, line)) in got.iter().zip(&lines).enumerate() {
        let (pri, rest) = split(message);
        // local0 (16): info (6), and err (3) for the 502.
        assert_eq!(
            pri,
            if i == 1 { 16 * 8 + 3 } else { 16 * 8 + 6 },
            "{message}"
        );
        let (host, rest) = rest.split_once(' ').unwrap();
        assert!(!host.is_empty(), "{message}");
        assert_eq!(rest, format!("edge_1: {line}"), "the file's line, whole");
    }
}

#[test]
fn a_unix_datagram_socket_receives_them_too_without_a_hostname() {
    let backend = backend();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let receiver = UnixDatagram::bind(&path).unwrap();
    receiver.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut proxy = start_proxy(&[backend.addr], |c| {
        c.log_syslog = Some(SyslogTarget::parse(&format!("unix:{}", path.display())).unwrap());
        c.log_format = LogFormat::Json;
    });
    let mut client = proxy.connect();
    client.get("/a");
    client.get("/b");
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 2);
    let got = received(|buf| receiver.recv(buf), 2);
    for (message, line) in got.iter().zip(&lines) {
        // local7 (23), info (6); the tag right after the timestamp, as a
        // local daemon (journald, imuxsock) reads it.
        assert_eq!(split(message), (190, &*format!("inverso: {line}")));
        assert!(line.starts_with("{\"time\""), "{line}");
    }
}

#[test]
fn a_reload_moves_the_lines_to_another_receiver() {
    let backend = backend();
    let (first, to_first) = udp_receiver();
    let (second, to_second) = udp_receiver();
    let mut proxy = start_proxy(&[backend.addr], |c| c.log_syslog = Some(to_first));
    proxy.exchange(|client| client.get("/before"));
    proxy.reload(&[backend.addr], |c| c.log_syslog = Some(to_second));
    proxy.exchange(|client| client.get("/after"));
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let before = received(|buf| first.recv(buf), 1);
    assert!(before[0].contains("GET /before "), "{before:?}");
    let after = received(|buf| second.recv(buf), 1);
    assert!(after[0].contains("GET /after "), "{after:?}");
    // Nothing more came to the first.
    first.set_nonblocking(true).unwrap();
    assert!(first.recv(&mut [0u8; 64]).is_err());
}

#[test]
fn bad_values_are_refused_at_their_line() {
    let base = "targets = 127.0.0.1:1\n";
    fn case(line: &str, key: &'static str, words: &[&str]) -> (String, &'static str, Vec<String>) {
        let words = words.iter().map(|w| w.to_string()).collect();
        (format!("\n{line}\n"), key, words)
    }
    assert_refused(
        base,
        &[
            case(
                "log_syslog = tcp://127.0.0.1:514",
                "log_syslog",
                &["`tcp://` is not supported"],
            ),
            case(
                "log_syslog = 127.0.0.1:99999",
                "log_syslog",
                &["is not host:port"],
            ),
            case(
                "log_syslog = unix:",
                "log_syslog",
                &["needs the socket's path"],
            ),
            case(
                "log_syslog = syslog.invalid:514",
                "log_syslog",
                &["does not resolve"],
            ),
            case(
                "log_syslog_facility = local8",
                "log_syslog_facility",
                &["unknown facility", "local7"],
            ),
            case(
                "log_syslog_tag = my-proxy",
                "log_syslog_tag",
                &["may not be in a tag"],
            ),
            case(
                &format!("log_syslog_tag = {}", "t".repeat(33)),
                "log_syslog_tag",
                &["1 to 32"],
            ),
        ],
    );
    let message = config_error(&format!("{base}\n\nlog_syslog = udp:/x\n"));
    assert!(
        message.starts_with("proxy.conf:4: log_syslog: "),
        "{message}"
    );
}

/// `inverso args...` in `dir`, without the test's own `INVERSO_*`.
fn inverso(dir: &Path, args: &[&str], log: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inverso"));
    command.args(args).current_dir(dir).env("RUST_LOG", log);
    for (name, _) in std::env::vars() {
        if name.starts_with("INVERSO_") {
            command.env_remove(name);
        }
    }
    command
}

/// `inverso` run in `dir` on its `proxy.conf`, until it has served
/// `requests` GETs and was stopped: its stdout, and its stderr's lines.
fn run_and_stop(dir: &Path, requests: usize) -> (String, Vec<String>) {
    let mut child = inverso(dir, &["--config", "proxy.conf"], "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(addr) = line.split("listening on ").nth(1) {
                let _ = tx.send(addr.trim().to_string());
            }
            lines.push(line);
        }
        lines
    });
    let Ok(addr) = rx.recv_timeout(WAIT_LIMIT) else {
        let _ = child.kill();
        panic!("it did not say where it listens");
    };
    let mut client = Client::connect(addr.parse().unwrap());
    for i in 0..requests {
        assert_eq!(client.get(&format!("/{i}")).status, 200);
    }
    drop(client);
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: a signal to the child this test started, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(child.wait().unwrap().success());
    (stdout, reader.join().unwrap())
}

#[test]
fn a_syslog_nobody_listens_on_costs_stdout_no_line_and_is_warned_of_once() {
    let backend = backend();
    let nobody = {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    for target in [format!("udp://{nobody}"), "unix:no-such.sock".to_string()] {
        std::fs::write(
            dir.path().join("proxy.conf"),
            format!(
                "port = 0\nbind = 127.0.0.1\ntargets = {}\npath_to_persistence =\n\
                 log_syslog = {target}\n",
                backend.addr
            ),
        )
        .unwrap();
        let requests = 20;
        let (stdout, stderr) = run_and_stop(dir.path(), requests);
        let logged = stdout.lines().filter(|l| l.contains("\"GET /")).count();
        assert_eq!(logged, requests, "{target}: {stdout}");
        let warned: Vec<_> = stderr
            .iter()
            .filter(|l| l.contains("cannot send"))
            .collect();
        assert_eq!(warned.len(), 1, "{target}: {stderr:#?}");
        assert!(warned[0].contains("access log (syslog "), "{}", warned[0]);
    }
}

#[test]
fn check_says_where_the_lines_go() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("proxy.conf"),
        "targets = 127.0.0.1:1\npath_to_persistence =\nlog_syslog = localhost:5514\n\
         log_syslog_facility = local3\nlog_syslog_tag = edge\n",
    )
    .unwrap();
    let out = inverso(dir.path(), &["check", "--config", "proxy.conf"], "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("log_syslog = localhost:5514 "), "{stdout}");
    let said = stdout
        .lines()
        .find(|l| l.starts_with("# access log to syslog: udp "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(said.contains(":5514, RFC 3164, facility local3"), "{said}");
    assert!(said.ends_with("tag edge"), "{said}");
}
