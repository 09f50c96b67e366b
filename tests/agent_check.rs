//! Agent checks (`agent_port=N`, HAProxy's `agent-check`): a program
//! beside a backend says its weight, its state and whether it is up.

mod support;

use inverso::config::{AgentCheck, Balance};
use inverso::Config;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// An agent on a port of 127.0.0.1: each connection gets the answer set
/// last, then a close.
struct Agent {
    port: u16,
    answer: Arc<Mutex<String>>,
    asked: Arc<AtomicUsize>,
}

impl Agent {
    fn start(answer: &str) -> Agent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = Arc::new(Mutex::new(answer.to_string()));
        let asked = Arc::new(AtomicUsize::new(0));
        let (said, counted) = (answer.clone(), asked.clone());
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::SeqCst);
                let line = said.lock().unwrap().clone();
                let _ = conn.write_all(line.as_bytes());
            }
        });
        Agent {
            port,
            answer,
            asked,
        }
    }

    /// Says `answer` from now on, and returns once the proxy has applied
    /// it: the question after the next one is asked only once the next
    /// one's answer (the new one) was applied.
    #[track_caller]
    fn says(&self, answer: &str) {
        *self.answer.lock().unwrap() = answer.to_string();
        let asked = self.asked.load(Ordering::SeqCst);
        assert!(
            wait_until(WAIT_LIMIT, || self.asked.load(Ordering::SeqCst)
                >= asked + 2),
            "the agent was not asked again"
        );
    }
}

/// Targets `a` and `b`, balanced by weight, `a` with its agent.
fn proxy_with_agent(a: SocketAddr, b: SocketAddr, agent: &Agent) -> Proxy {
    start_proxy(&[a, b], with_agent(agent.port, Balance::WeightedRoundRobin))
}

fn with_agent(port: u16, balance: Balance) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.admin_port = Some(0);
        c.balance = balance;
        c.health_check_interval = Duration::from_millis(20);
        c.targets[0].agent = Some(AgentCheck {
            port,
            addr: None,
            interval: None,
            send: None,
        });
    }
}

/// How many of `n` requests, each on a new connection, `a` served.
fn served_by_a(proxy: &Proxy, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            let response = proxy.connect().get("/");
            assert_eq!(response.status, 200, "{}", response.body_str());
            response.header("x-backend") == Some("a")
        })
        .count()
}

fn state_of(proxy: &Proxy, target: SocketAddr) -> String {
    let body = proxy
        .admin("GET", &format!("/targets/{target}"), "")
        .body_str();
    let (_, rest) = body.split_once("\"admin_state\":\"").expect(&body);
    rest.split('"').next().unwrap().to_string()
}

#[test]
fn the_agent_gives_its_target_a_share_of_its_weight() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let agent = Agent::start("100%\n");
    let proxy = proxy_with_agent(a.addr, b.addr, &agent);
    agent.says("100%\n");
    assert_eq!(served_by_a(&proxy, 8), 4);

    agent.says("300%\n");
    assert_eq!(served_by_a(&proxy, 8), 6);
    let status = proxy.admin("GET", "/status", "").body_str();
    assert!(status.contains("\"weight\":3,"), "{status}");

    // 0% drains it, as HAProxy's weight 0; a share again brings it back.
    agent.says("0%\n");
    assert_eq!(state_of(&proxy, a.addr), "drain");
    assert_eq!(served_by_a(&proxy, 4), 0);
    agent.says("200%\n");
    assert_eq!(state_of(&proxy, a.addr), "ready");
    assert_eq!(served_by_a(&proxy, 6), 4);

    // A reload as written keeps its weight; one that edits `weight=`
    // puts it in force, and the agent's share, unchanged, is given again,
    // of the new weight: 200% of 2.
    proxy.reload(
        &[a.addr, b.addr],
        with_agent(agent.port, Balance::WeightedRoundRobin),
    );
    assert_eq!(served_by_a(&proxy, 6), 4);
    proxy.reload(&[a.addr, b.addr], |c| {
        with_agent(agent.port, Balance::WeightedRoundRobin)(c);
        c.targets[0].weight = 2;
    });
    agent.says("200%\n");
    assert_eq!(served_by_a(&proxy, 5), 4);
    // A reload that takes the agent away takes its weight too.
    proxy.reload(&[a.addr, b.addr], |c| {
        with_agent(agent.port, Balance::WeightedRoundRobin)(c);
        c.targets[0].weight = 2;
        c.targets[0].agent = None;
    });
    assert_eq!(served_by_a(&proxy, 6), 4);
}

#[test]
fn the_agent_sets_its_target_state_and_the_operator_has_the_last_word_until_it_says_another() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let agent = Agent::start("ready\n");
    let proxy = proxy_with_agent(a.addr, b.addr, &agent);
    agent.says("drain, 50%\n");
    assert_eq!(state_of(&proxy, a.addr), "drain");
    assert_eq!(served_by_a(&proxy, 4), 0);

    // The operator puts it back; the agent saying the same again does
    // not undo that.
    let r = proxy.admin("PUT", &format!("/targets/{}", a.addr), "ready");
    assert_eq!(r.status, 200, "{}", r.body_str());
    agent.says("drain, 50%\n");
    assert_eq!(state_of(&proxy, a.addr), "ready");
    assert_eq!(served_by_a(&proxy, 4), 2);

    agent.says("MAINT\n");
    assert_eq!(state_of(&proxy, a.addr), "maint");
    assert_eq!(served_by_a(&proxy, 4), 0);
    agent.says("ready\n");
    assert_eq!(state_of(&proxy, a.addr), "ready");
    assert_eq!(served_by_a(&proxy, 4), 2);

    // The operator drains it: a new share from the agent says nothing of
    // its state (only a 0% of its own is undone by one), and leaves it so.
    let r = proxy.admin("PUT", &format!("/targets/{}", a.addr), "drain");
    assert_eq!(r.status, 200, "{}", r.body_str());
    agent.says("75%\n");
    assert_eq!(state_of(&proxy, a.addr), "drain");
    assert_eq!(served_by_a(&proxy, 4), 0);
}

#[test]
fn an_agent_that_says_down_holds_its_target_out_until_it_says_up() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let agent = Agent::start("up\n");
    let proxy = start_proxy(
        &[a.addr, b.addr],
        with_agent(agent.port, Balance::RoundRobin),
    );
    agent.says("up\n");
    assert_eq!(served_by_a(&proxy, 4), 2);

    agent.says("stopped # disk full\n");
    assert_eq!(served_by_a(&proxy, 4), 0);
    let status = proxy.admin("GET", "/status", "").body_str();
    assert!(status.contains("\"healthy\":false"), "{status}");
    // Saying nothing of it, or nothing at all, leaves it down.
    agent.says("ready\n");
    agent.says("");
    assert_eq!(served_by_a(&proxy, 4), 0);
    agent.says("up\n");
    assert_eq!(served_by_a(&proxy, 4), 2);

    // Down again, then a reload takes the agent away: what it said goes.
    agent.says("down\n");
    assert_eq!(served_by_a(&proxy, 4), 0);
    proxy.reload(&[a.addr, b.addr], |c| c.admin_port = Some(0));
    assert_eq!(served_by_a(&proxy, 4), 2);
}

#[test]
fn an_agent_that_cannot_be_reached_changes_nothing() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let dead = dead_addr().port();
    let proxy = start_proxy(&[a.addr, b.addr], with_agent(dead, Balance::RoundRobin));
    assert_eq!(served_by_a(&proxy, 4), 2);
    assert_eq!(state_of(&proxy, a.addr), "ready");
}

#[test]
fn agent_port_is_checked_as_the_file_is_read() {
    let refused = [
        ("127.0.0.1:1 agent_port=0", "agent_port"),
        ("127.0.0.1:1 agent_port=65536", "agent_port"),
        ("127.0.0.1:1 agent_port=x", "agent_port"),
        (
            "127.0.0.1:1 agent_port=1 agent_port=2",
            "agent_port given twice",
        ),
        (
            "unix:/run/app.sock agent_port=9",
            "give it with agent_addr=IP",
        ),
        ("127.0.0.1:1 agent_send=x", "agent_send= is for its agent"),
        (
            "127.0.0.1:1 agent_inter=1s",
            "agent_inter= is for its agent",
        ),
        ("127.0.0.1:1 agent_addr=::1", "agent_addr= is for its agent"),
        (
            "127.0.0.1:1 agent_port=9 agent_addr=localhost",
            "not an IP address",
        ),
        (
            "127.0.0.1:1 agent_port=9 agent_inter=50ms",
            "less than 100ms",
        ),
        (
            "127.0.0.1:1 agent_port=9 agent_send=%0",
            "give the text sent",
        ),
        ("127.0.0.1:1 agent_port=9 agent_send=", "give the text sent"),
        (
            "127.0.0.1:1 agent_port=9 agent_inter=1s agent_inter=2s",
            "agent_inter given twice",
        ),
    ];
    for (targets, says) in refused {
        let error = config_error(&format!("targets = {targets}\n"));
        assert!(error.contains(says), "{targets}: {error}");
    }
    let (code, out, err) = inverso_check(
        "targets = 127.0.0.1:9001 agent_port=9777, unix:/run/app.sock agent_port=9778 \
         agent_addr=[::1] agent_inter=5s agent_send=pool%20web%0A\n",
        "",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("agent on port 9777)"), "{out}");
    assert!(
        out.contains("agent on port 9778 of ::1 every 5s sent `pool web\\n`"),
        "{out}"
    );
}

#[test]
fn an_agent_beside_a_unix_socket_backend_is_asked_at_its_address_with_its_text() {
    let a = UnixBackend::echo("a");
    let b = Backend::echo("b");
    // An agent that reads a line, then answers it with the share set.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heard = Arc::new(Mutex::new(Vec::<String>::new()));
    let said = heard.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while line.last() != Some(&b'\n') && matches!(conn.read(&mut byte), Ok(1)) {
                line.push(byte[0]);
            }
            said.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&line).into_owned());
            let _ = conn.write_all(b"300%\n");
        }
    });
    // The pool's checks are an hour apart: the agent's own interval is
    // what asks it again and again.
    let text = format!(
        "targets = unix:{} agent_port={port} agent_addr=127.0.0.1 agent_inter=100ms \
         agent_send=pool%20web%0A, {}\nbalance = weighted_round_robin\n\
         health_check_interval = 1h\n",
        a.path.display(),
        b.addr
    );
    let proxy = start_proxy(&[b.addr], from_file(&text));
    assert!(wait_until(WAIT_LIMIT, || heard.lock().unwrap().len() >= 3));
    assert!(heard.lock().unwrap().iter().all(|l| l == "pool web\n"));
    let from_a = (0..8)
        .filter(|_| proxy.connect().get("/").body_str().starts_with("a "))
        .count();
    assert_eq!(from_a, 6, "a's weight is 3 to b's 1");
}

#[test]
fn the_agent_sets_how_many_requests_its_target_takes_at_once() {
    let release = Gate::new();
    let held = release.clone();
    let a = Backend::start("a", move |seen, out| {
        if seen.path() == "/slow" {
            held.wait();
        }
        respond(out, 200, &[("X-Backend", "a")], seen.path().as_bytes());
        Action::KeepAlive
    });
    let agent = Agent::start("up\n");
    let proxy = start_proxy(&[a.addr], |c| {
        with_agent(agent.port, Balance::RoundRobin)(c);
        c.queue_timeout = Some(Duration::from_millis(200));
    });
    agent.says("maxconn:1\n");
    let status = proxy.admin("GET", "/status", "").body_str();
    assert!(status.contains("\"max_conns\":1,"), "{status}");

    let mut slow = proxy.connect();
    slow.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 1));
    // Its one slot taken: the next waits its queue_timeout, then 503.
    assert_eq!(proxy.connect().get("/next").status, 503);
    assert_eq!(a.requests(), 1);

    agent.says("maxconn:0\n");
    assert_eq!(proxy.connect().get("/next").status, 200);
    let status = proxy.admin("GET", "/status", "").body_str();
    assert!(status.contains("\"max_conns\":null,"), "{status}");
    release.open();
    assert_eq!(slow.response().body, b"/slow");
}

#[test]
fn the_agent_is_asked_at_once_at_start_then_each_interval() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let agent = Agent::start("drain\n");
    // An interval no test waits for: what the agent said at once counts.
    let proxy = start_proxy(&[a.addr, b.addr], |c: &mut Config| {
        with_agent(agent.port, Balance::WeightedRoundRobin)(c);
        c.health_check_interval = Duration::from_secs(3600);
    });
    assert!(
        wait_until(WAIT_LIMIT, || state_of(&proxy, a.addr) == "drain"),
        "the agent was not asked at start"
    );
    assert_eq!(served_by_a(&proxy, 4), 0);
    // Asked once, not again until the interval is over.
    assert_eq!(agent.asked.load(Ordering::SeqCst), 1);
}
