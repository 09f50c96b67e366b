//! Whether a backend may be sent requests.
//!
//! Passive: the proxy reports each exchange's outcome; `max_fails`
//! failures within `fail_timeout` take a target out for `fail_timeout`,
//! after which it is tried again (nginx's model). Active: a checker thread
//! per target sends it `GET health_check_path` each interval (a target
//! that hangs delays no other's checks); a
//! target goes down after `fall` failed probes in a row and comes back
//! after `rise` good ones (HAProxy's model). Either way, each transition is
//! logged once. Time is a parameter (`now`), so the rules are tested
//! without sleeping.

use crate::http::head::{find_head_end, parse_response};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use parking_lot::Mutex;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest probe response head read; a health endpoint needs no more.
const MAX_PROBE_HEAD: usize = 8 * 1024;

/// Passive health settings.
#[derive(Clone, Copy, Debug)]
pub struct Passive {
    /// Failures within `fail_timeout` that take a target out; 0 = never.
    pub max_fails: u32,
    pub fail_timeout: Duration,
}

/// One target's health, shared by request threads and the checker.
pub struct Health {
    name: Arc<str>,
    settings: Passive,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Failures counted in the current window, and when it began.
    fails: u32,
    window_start: Option<Instant>,
    /// Out of rotation until then (passive).
    down_until: Option<Instant>,
    /// The last failure of either kind: when every target is down, the one
    /// that failed longest ago is tried first.
    last_failure: Option<Instant>,
    /// Failing its active checks.
    active_down: bool,
    /// A "down" line was logged and no "up" since.
    announced_down: bool,
    /// Passive marks so far, so the checker sees a new one.
    marks: u64,
}

impl Health {
    pub fn new(name: Arc<str>, settings: Passive) -> Health {
        Health {
            name,
            settings,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether requests may go to this target at `now`.
    pub fn usable(&self, now: Instant) -> bool {
        let state = self.state.lock();
        !state.active_down && state.down_until.is_none_or(|until| now >= until)
    }

    /// For choosing among down targets, lowest first: whether the active
    /// checker holds it down, then when it last failed (`None`: never).
    pub fn fallback_rank(&self) -> (bool, Option<Instant>) {
        let state = self.state.lock();
        (state.active_down, state.last_failure)
    }

    /// An exchange failed: connect error, timeout, malformed reply.
    pub fn failed(&self, now: Instant, reason: &str) {
        let mut state = self.state.lock();
        state.last_failure = Some(now);
        if self.settings.max_fails == 0 {
            return;
        }
        let window_over = state
            .window_start
            .is_none_or(|start| now.duration_since(start) >= self.settings.fail_timeout);
        if window_over {
            state.fails = 0;
            state.window_start = Some(now);
        }
        state.fails += 1;
        if state.fails >= self.settings.max_fails {
            state.down_until = Some(now + self.settings.fail_timeout);
            state.marks += 1;
            state.fails = 0;
            state.window_start = None;
            if !state.announced_down {
                state.announced_down = true;
                log::warn!(
                    "target {} down: {reason} ({} failure(s) within {:?}; out for {:?})",
                    self.name,
                    self.settings.max_fails,
                    self.settings.fail_timeout,
                    self.settings.fail_timeout
                );
            }
        }
    }

    /// An exchange succeeded (a response head arrived).
    pub fn succeeded(&self) {
        let mut state = self.state.lock();
        state.fails = 0;
        state.window_start = None;
        state.down_until = None;
        if state.announced_down && !state.active_down {
            state.announced_down = false;
            log::info!("target {} up", self.name);
        }
    }

    /// The checker's verdict changed: `Err(reason)` down, `Ok(())` up.
    fn set_active(&self, now: Instant, verdict: Result<(), &str>) {
        let mut state = self.state.lock();
        match verdict {
            Err(reason) => {
                state.active_down = true;
                state.last_failure = Some(now);
                if !state.announced_down {
                    state.announced_down = true;
                    log::warn!("target {} down: {reason}", self.name);
                }
            }
            Ok(()) => {
                // Checks passing outweigh older passive failures.
                state.active_down = false;
                state.down_until = None;
                state.fails = 0;
                state.window_start = None;
                if state.announced_down {
                    state.announced_down = false;
                    log::info!("target {} up", self.name);
                }
            }
        }
    }

    /// Whether the checker has it down.
    pub fn active_down(&self) -> bool {
        self.state.lock().active_down
    }

    fn marks(&self) -> u64 {
        self.state.lock().marks
    }
}

/// Active check settings.
#[derive(Clone, Debug)]
pub struct Active {
    pub path: String,
    pub interval: Duration,
    /// The longest one probe may take, connecting and reading included
    /// (HAProxy's `timeout check`): a reply trickling in byte by byte
    /// fails at this deadline rather than holding the checker.
    pub timeout: Duration,
    /// The longest connecting may take, within `timeout`.
    pub connect_timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

/// A target as the checker sees it.
pub struct Probe {
    pub name: Arc<str>,
    pub addr: SocketAddr,
    pub health: Arc<Health>,
}

/// Consecutive probe results, counted towards `rise` or `fall`.
#[derive(Default)]
struct Streak {
    good: u32,
    bad: u32,
    /// The target's passive marks when last looked at.
    marks_seen: u64,
    /// Passively marked since: `rise` good probes bring it back early.
    rise_pending: bool,
}

/// The checker threads, one per target; stopped by [`Checker::stop`] (or
/// on drop) without waiting for them: one in the middle of a probe ends
/// when the probe does (at most its timeout later) and applies nothing
/// more. Waiting would hold a reload, and with it the signal thread, or a
/// shutdown, on a backend that accepts and never answers.
pub struct Checker {
    /// Dropping it wakes every thread's wait between probes.
    _stop: Sender<()>,
}

impl Checker {
    pub fn start(probes: Vec<Probe>, settings: Active) -> io::Result<Checker> {
        let (stop, stopped) = bounded(1);
        let settings = Arc::new(settings);
        for probe in probes {
            let (settings, stopped) = (settings.clone(), stopped.clone());
            std::thread::Builder::new()
                .name("health".into())
                .spawn(move || check_loop(&probe, &settings, &stopped))?;
        }
        Ok(Checker { _stop: stop })
    }

    pub fn stop(self) {}
}

fn check_loop(probe: &Probe, settings: &Active, stopped: &Receiver<()>) {
    let mut streak = Streak::default();
    loop {
        let result = probe_once(probe, settings);
        // Stopped while probing: the target's health may belong to a new
        // checker by now.
        if matches!(stopped.try_recv(), Err(TryRecvError::Disconnected)) {
            return;
        }
        apply(&probe.health, &mut streak, settings, Instant::now(), result);
        match stopped.recv_timeout(settings.interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// Counts one probe result and flips the target's state at a threshold.
fn apply(
    health: &Health,
    streak: &mut Streak,
    settings: &Active,
    now: Instant,
    result: Result<(), String>,
) {
    // A target the proxy took out for failing requests comes back after
    // `rise` good probes counted from then, rather than after fail_timeout.
    let marks = health.marks();
    if marks != streak.marks_seen {
        streak.marks_seen = marks;
        streak.good = 0;
        streak.rise_pending = true;
    }
    match result {
        Ok(()) => {
            streak.bad = 0;
            streak.good = streak.good.saturating_add(1);
            if streak.good >= settings.rise && (health.active_down() || streak.rise_pending) {
                streak.rise_pending = false;
                health.set_active(now, Ok(()));
            }
        }
        Err(reason) => {
            streak.good = 0;
            streak.bad = streak.bad.saturating_add(1);
            if streak.bad >= settings.fall && !health.active_down() {
                let reason = format!(
                    "health check {} failed {} time(s): {reason}",
                    settings.path, streak.bad
                );
                health.set_active(now, Err(&reason));
            }
        }
    }
}

/// One `GET path` on a fresh connection, all within `settings.timeout`: a
/// 2xx or 3xx status is healthy.
fn probe_once(probe: &Probe, settings: &Active) -> Result<(), String> {
    let deadline = Instant::now() + settings.timeout;
    let left = || {
        Some(deadline.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no reply within {:?}", settings.timeout))
    };
    let connect_within = settings.timeout.min(settings.connect_timeout);
    let mut stream = TcpStream::connect_timeout(&probe.addr, connect_within)
        .map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: inverso-health-check\r\nConnection: close\r\n\r\n",
        settings.path, probe.name
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let mut scanned = 0;
    loop {
        match find_head_end(&buf, &mut scanned) {
            Ok(Some(len)) => {
                let head = parse_response(&buf[..len]).map_err(|e| format!("bad reply: {e}"))?;
                return match head.status {
                    200..=399 => Ok(()),
                    status => Err(format!("status {status}")),
                };
            }
            Ok(None) if buf.len() > MAX_PROBE_HEAD => return Err("reply head too large".into()),
            Ok(None) => {}
            Err(e) => return Err(format!("bad reply: {e}")),
        }
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err("closed without a reply".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("no reply: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probing(rise: u32, fall: u32) -> Active {
        Active {
            path: "/health".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            rise,
            fall,
        }
    }

    fn health(max_fails: u32, secs: u64) -> Health {
        Health::new(
            "t:1".into(),
            Passive {
                max_fails,
                fail_timeout: Duration::from_secs(secs),
            },
        )
    }

    #[test]
    fn max_fails_within_fail_timeout_take_a_target_out_for_fail_timeout() {
        let h = health(3, 10);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        h.failed(t0, "x");
        h.failed(t0 + s(1), "x");
        assert!(h.usable(t0 + s(2)));
        h.failed(t0 + s(2), "x");
        assert!(!h.usable(t0 + s(2)));
        assert!(!h.usable(t0 + s(11)));
        assert!(h.usable(t0 + s(12)));
        assert_eq!(h.fallback_rank().1, Some(t0 + s(2)));
    }

    #[test]
    fn failures_spread_wider_than_fail_timeout_do_not_add_up() {
        let h = health(2, 10);
        let t0 = Instant::now();
        h.failed(t0, "x");
        h.failed(t0 + Duration::from_secs(11), "x");
        assert!(h.usable(t0 + Duration::from_secs(11)));
        h.failed(t0 + Duration::from_secs(12), "x");
        assert!(!h.usable(t0 + Duration::from_secs(12)));
    }

    #[test]
    fn a_success_clears_the_count_and_max_fails_zero_disables() {
        let h = health(2, 10);
        let t0 = Instant::now();
        h.failed(t0, "x");
        h.succeeded();
        h.failed(t0, "x");
        assert!(h.usable(t0));

        let never = health(0, 10);
        for _ in 0..100 {
            never.failed(t0, "x");
        }
        assert!(never.usable(t0));
        assert_eq!(never.fallback_rank().1, Some(t0));
    }

    #[test]
    fn rise_and_fall_thresholds() {
        let h = health(1, 10);
        let settings = probing(2, 3);
        let now = Instant::now();
        let mut streak = Streak::default();
        let bad = || Err("status 503".to_string());
        apply(&h, &mut streak, &settings, now, bad());
        apply(&h, &mut streak, &settings, now, bad());
        assert!(h.usable(now));
        apply(&h, &mut streak, &settings, now, Ok(()));
        apply(&h, &mut streak, &settings, now, bad());
        apply(&h, &mut streak, &settings, now, bad());
        assert!(h.usable(now), "the good probe reset the streak");
        apply(&h, &mut streak, &settings, now, bad());
        assert!(!h.usable(now));
        assert_eq!(h.fallback_rank().1, Some(now));
        apply(&h, &mut streak, &settings, now, Ok(()));
        assert!(!h.usable(now));
        apply(&h, &mut streak, &settings, now, Ok(()));
        assert!(h.usable(now));
    }

    #[test]
    fn rise_good_probes_after_a_passive_mark_bring_a_target_back() {
        let h = health(1, 3600);
        let settings = probing(2, 3);
        let now = Instant::now();
        let mut streak = Streak::default();
        apply(&h, &mut streak, &settings, now, Ok(()));
        apply(&h, &mut streak, &settings, now, Ok(()));
        h.failed(now, "refused");
        assert!(!h.usable(now));
        apply(&h, &mut streak, &settings, now, Ok(()));
        assert!(!h.usable(now), "one good probe is not enough");
        apply(&h, &mut streak, &settings, now, Ok(()));
        assert!(h.usable(now));
    }

    #[test]
    fn the_checker_probes_and_stops_within_its_interval() {
        use std::net::TcpListener;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let probes = Arc::new(AtomicUsize::new(0));
        let seen = probes.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(b"HTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n");
            }
        });
        // An hour between rounds: stopping must not wait for it.
        let (h, checker) = check_hourly(addr, Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.usable(Instant::now()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!h.usable(Instant::now()), "a 503 probe did not take it out");
        stop_within_limit(checker);
        assert_eq!(probes.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn stopping_does_not_wait_for_a_probe_that_hangs() {
        // A backend that accepts and never answers, probed with a minute's
        // timeout: a reload or a shutdown must not wait that minute.
        use std::net::TcpListener;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().take(4).flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
            std::thread::sleep(Duration::from_secs(60));
        });
        let (h, checker) = check_hourly(addr, Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_secs(10);
        while accepted.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "no probe arrived");
        stop_within_limit(checker);
        assert!(h.usable(Instant::now()));
    }

    /// A checker probing `addr` once an hour (rise and fall 1), and the
    /// target's health.
    fn check_hourly(addr: SocketAddr, timeout: Duration) -> (Arc<Health>, Checker) {
        let h = Arc::new(health(1, 10));
        let probe = Probe {
            name: "t:1".into(),
            addr,
            health: h.clone(),
        };
        let settings = Active {
            path: "/health".into(),
            interval: Duration::from_secs(3600),
            timeout,
            connect_timeout: timeout,
            rise: 1,
            fall: 1,
        };
        (h, Checker::start(vec![probe], settings).unwrap())
    }

    /// Stops `checker`, failing the test if that takes more than 10 s.
    fn stop_within_limit(checker: Checker) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            checker.stop();
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the checker did not stop");
    }

    /// A health endpoint that answers `reply` to each probe, byte by byte
    /// with `pause` in between (1000 bytes at most).
    fn endpoint(reply: &'static [u8], pause: Duration) -> SocketAddr {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    let _ = stream.read(&mut buf);
                    for byte in reply.iter().cycle().take(1000) {
                        if stream.write_all(&[*byte]).is_err() {
                            return;
                        }
                        std::thread::sleep(pause);
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn a_reply_trickling_in_fails_its_probe_and_delays_no_other_target() {
        let trickle = endpoint(b"HTTP/1.1 200 OK\r\nX-Pad: aaaa", Duration::from_millis(20));
        let failing = endpoint(
            b"HTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n",
            Duration::ZERO,
        );
        let probes: Vec<Probe> = [trickle, failing]
            .into_iter()
            .map(|addr| Probe {
                name: addr.to_string().into(),
                addr,
                health: Arc::new(health(1, 3600)),
            })
            .collect();
        let healths: Vec<_> = probes.iter().map(|p| p.health.clone()).collect();
        let settings = Active {
            path: "/health".into(),
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(200),
            connect_timeout: Duration::from_millis(200),
            rise: 1,
            fall: 1,
        };
        let checker = Checker::start(probes, settings).unwrap();
        // Each reply byte came within the timeout, the whole reply never.
        let deadline = Instant::now() + Duration::from_secs(10);
        while healths.iter().any(|h| h.usable(Instant::now())) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !healths[1].usable(Instant::now()),
            "the 503 target was not checked"
        );
        assert!(
            !healths[0].usable(Instant::now()),
            "the trickle never failed"
        );
        stop_within_limit(checker);
    }

    #[test]
    fn checks_passing_clear_a_passive_mark() {
        let h = health(1, 3600);
        let now = Instant::now();
        h.failed(now, "refused");
        assert!(!h.usable(now));
        h.set_active(now, Err("status 500"));
        h.set_active(now, Ok(()));
        assert!(h.usable(now));
    }
}
