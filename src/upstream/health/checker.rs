//! Active health: a checker thread per target probing it each interval,
//! `fall` failed probes in a row taking it out and `rise` good ones
//! bringing it back (HAProxy's model), one checker's results at a time.

use super::probe::{probe_once, ProbeError, Probed};
use super::{Health, LastCheck, State, Streak};
use crate::config::Endpoint;
use crate::upstream::admin_state::AdminState;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a checker looks again whether the probe another one sent
/// (the one before a reload) has ended.
const IN_FLIGHT_POLL: Duration = Duration::from_millis(50);

impl Health {
    /// A checker starts (at start-up, or a reload's): from now on only its
    /// results count. Returns its number.
    fn new_checker(&self) -> u64 {
        let mut state = self.state.lock();
        state.checker += 1;
        state.checker
    }

    /// Active checks were turned off (by a reload): what they held down
    /// is let go, and their run starts anew should they come back.
    pub fn checks_off(&self) {
        let mut state = self.state.lock();
        state.checker += 1;
        state.streak = Streak::default();
        state.last_probe = None;
        state.last_check = None;
        if state.active_down {
            state.active_down = false;
            if state.down_until.is_none() && !state.agent_down {
                state.announce_up(&self.name(), ": health checks are off");
            }
        }
        let why = || "health checks are off".to_string();
        self.set_stopping(false, &mut state, Instant::now(), why);
    }

    /// What its last probe found (see [`LastCheck`]).
    pub fn last_check(&self) -> Option<LastCheck> {
        self.state.lock().last_check.clone()
    }

    /// Whether the checks keep the target out of rotation while up: its
    /// last probe was answered 404 under `health_check_disable_on_404`.
    /// Says so in the log when that changes, and a target back in
    /// rotation ramps up under `slow_start` as one back from `drain`.
    fn set_stopping(
        &self,
        stopping: bool,
        state: &mut State,
        now: Instant,
        why: impl FnOnce() -> String,
    ) {
        if self.stopping.swap(stopping, Ordering::Relaxed) == stopping {
            return;
        }
        match stopping {
            true => log::warn!("target {} takes no new request: {}", self.name(), why()),
            false => {
                state.back_since = Some(state.down_until.map_or(now, |until| until.max(now)));
                log::info!("target {} takes new requests again: {}", self.name(), why());
            }
        }
    }

    /// Counts one probe result, and flips the target's state at a
    /// threshold: `fall` failed probes in a row take it out, `rise` good
    /// ones bring it back (also from a passive mark).
    pub(super) fn probed(
        &self,
        checker: u64,
        now: Instant,
        settings: &Active,
        result: Result<Probed, ProbeError>,
    ) {
        let mut state = self.state.lock();
        if state.checker != checker {
            return;
        }
        let state = &mut *state;
        let (passed, said) = match &result {
            Ok(Probed::Passed) => (true, "passed".into()),
            Ok(Probed::NotFound) => (true, "404 (disable-on-404)".into()),
            Err(reason) => (false, reason.to_string().into()),
        };
        state.last_check = Some(LastCheck {
            at: now,
            passed,
            said,
        });
        match result {
            Ok(Probed::NotFound) => {
                let why = || {
                    format!(
                        "health check {} answered 404 (disable-on-404)",
                        settings.kind
                    )
                };
                self.set_stopping(true, state, now, why);
            }
            Ok(Probed::Passed) => {
                let why = || format!("health check {} passed", settings.kind);
                self.set_stopping(false, state, now, why);
            }
            Err(_) => {}
        }
        let streak = &mut state.streak;
        match result {
            Ok(_) => {
                streak.bad = 0;
                streak.good = streak.good.saturating_add(1);
                let passive_out = state.down_until.is_some_and(|u| now < u);
                if streak.good >= settings.rise && (state.active_down || streak.rise_pending) {
                    streak.rise_pending = false;
                    // A `GET` answered as asked outweighs older passive
                    // failures; a connection accepted says nothing of the
                    // requests that failed (a backend that resets each
                    // one accepts): it ends the checks' own mark alone,
                    // and a passive one runs to fail_timeout.
                    let clears_passive = matches!(settings.kind, ProbeKind::Http { .. });
                    let still_out = passive_out && !clears_passive;
                    // Back now only if out until now: a passive mark that
                    // already ended brought it back when it did.
                    if (state.active_down || passive_out) && !still_out {
                        state.back_since = Some(now);
                    }
                    state.active_down = false;
                    if clears_passive {
                        state.down_until = None;
                        state.fails = 0;
                        state.window_start = None;
                    }
                    if !still_out && !state.agent_down {
                        state.announce_up(&self.name(), "");
                    }
                }
            }
            Err(reason) => {
                streak.good = 0;
                streak.bad = streak.bad.saturating_add(1);
                if streak.bad >= settings.fall && !state.active_down {
                    state.active_down = true;
                    state.last_failure = Some(now);
                    if !state.announced_down {
                        state.announced_down = true;
                        log::warn!(
                            "target {} down: health check {} failed {} time(s): {reason}",
                            self.name(),
                            settings.kind,
                            streak.bad
                        );
                    }
                }
            }
        }
    }

    /// How long until the next probe is due, an interval after the last
    /// one began (whichever checker sent it) and once that one has ended;
    /// records that one begins now when it is due, until
    /// [`Health::probe_ended`]. The interval is the target's state's: on
    /// its way down or up (probes counted towards `fall` or `rise`), the
    /// fast one; down, the down one.
    fn probe_due(&self, now: Instant, settings: &Active) -> Duration {
        let mut state = self.state.lock();
        let out = state.active_down || state.streak.rise_pending;
        let interval = match (out, state.streak.good, state.streak.bad) {
            (true, 0, _) => settings.down_interval,
            (true, _, _) | (false, _, 1..) => settings.fast_interval,
            (false, _, 0) => settings.interval,
        };
        if state.probe_in_flight {
            // Another checker's: looked at again shortly.
            return interval.min(IN_FLIGHT_POLL);
        }
        let wait = state.last_probe.map_or(Duration::ZERO, |last| {
            (last + interval).saturating_duration_since(now)
        });
        if wait.is_zero() {
            state.last_probe = Some(now);
            state.probe_in_flight = true;
        }
        wait
    }

    /// The probe [`Health::probe_due`] said was due has ended (or was not
    /// sent after all).
    fn probe_ended(&self) {
        self.state.lock().probe_in_flight = false;
    }
}

/// What a probe does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// A request for the path, the answer judged (`health_check_path`
    /// and `health_check_method`, HAProxy's `option httpchk HEAD /up`).
    Http {
        /// `GET`, `HEAD` or `OPTIONS`.
        method: &'static str,
        path: String,
    },
    /// A connection opened and closed at once, nothing sent or read
    /// (`health_check_tcp`, HAProxy's plain `check`): a backend that
    /// accepts is up, whatever it does next.
    Connect,
    /// [`Active::send`] sent as a datagram, and one awaited back
    /// (`health_check_udp`, nginx Plus's `health_check udp`): a service
    /// of datagrams (DNS) that answers is up.
    Datagram,
}

/// As the "down" line names the check: its path, `by connect` or `by
/// datagram`.
impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeKind::Http {
                method: "GET",
                path,
            } => f.write_str(path),
            ProbeKind::Http { method, path } => write!(f, "{method} {path}"),
            ProbeKind::Connect => f.write_str("by connect"),
            ProbeKind::Datagram => f.write_str("by datagram"),
        }
    }
}

/// Active check settings.
#[derive(Clone, Debug)]
pub struct Active {
    pub kind: ProbeKind,
    /// The Host every `GET` probe sends (`health_check_host`, else
    /// `request_header.Host`); `None`: each target's name as written
    /// (`10.0.0.2:8000`), which a backend that checks Host may refuse.
    pub host: Option<String>,
    pub interval: Duration,
    /// Instead, for a target on its way down or up (HAProxy's
    /// `fastinter`), and for one that is down (`downinter`).
    pub fast_interval: Duration,
    pub down_interval: Duration,
    /// The longest one probe may take, connecting and reading included
    /// (HAProxy's `timeout check`): a reply trickling in byte by byte
    /// fails at this deadline rather than holding the checker.
    pub timeout: Duration,
    /// The longest connecting may take, within `timeout`.
    pub connect_timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// The final statuses a `GET` probe passes with
    /// (`health_check_expect_status`); empty: any 2xx or 3xx.
    pub expect_status: Arc<[(u16, u16)]>,
    /// Text the body must hold (`health_check_expect_body`).
    pub expect_body: Option<Arc<str>>,
    /// What a probe by connecting sends once connected, and a probe by
    /// datagram sends (`health_check_send`); the reply must hold `expect`
    /// (`health_check_expect`).
    pub send: Option<Arc<[u8]>>,
    pub expect: Option<Arc<[u8]>>,
    /// Instead of `send` and `expect`, a probe by connecting's exchange
    /// in steps (`health_check_conversation`), whose failures name their
    /// step.
    pub conversation: Option<Arc<[crate::config::ProbeStep]>>,
    /// A `404` keeps the target up but out of rotation
    /// (`health_check_disable_on_404`).
    pub disable_on_404: bool,
}

/// A target as the checker sees it.
pub struct Probe {
    /// The target as written in `targets` (`app:8000`, for each address
    /// of a name giving several too).
    pub name: Arc<str>,
    /// The Host a probe sends when `health_check_host` is empty (see
    /// `Upstream::host`).
    pub host: Arc<str>,
    pub addr: Endpoint,
    /// Probes of a target with `tls` go over TLS, as its requests do.
    pub tls: Option<super::BackendTls>,
    /// Probes of a `fastcgi` target are FastCGI requests, as its
    /// requests are.
    pub fastcgi: Option<Arc<crate::fastcgi::App>>,
    /// Probes of a `send_proxy` target start with the header too (as
    /// HAProxy's do), one that names no client: the backend expects one.
    pub send_proxy: Option<crate::http::send_proxy::ProxyVersion>,
    pub health: Arc<Health>,
}

impl Probe {
    /// The probe sent to `port` of the target's address instead
    /// (`health_check_port`): another listener, a management port, so in
    /// the clear and without a PROXY header, as HAProxy's `check port`
    /// probes unless told otherwise; its Host names that port. A Unix
    /// socket has no port (the loader refuses the key beside one): its
    /// probe stays as it was.
    pub fn at_port(self, port: u16) -> Probe {
        let Endpoint::Tcp(mut addr) = self.addr else {
            return self;
        };
        addr.set_port(port);
        let host = match self.host.rsplit_once(':') {
            Some((host, was)) if was.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => &self.host,
        };
        Probe {
            host: format!("{host}:{port}").into(),
            addr: Endpoint::Tcp(addr),
            tls: None,
            fastcgi: None,
            send_proxy: None,
            ..self
        }
    }
}

/// The checker threads, one per target (or the agents' threads, see
/// [`Checker::ask_agents`]); stopped by [`Checker::stop`] (or
/// on drop) without waiting for them: one in the middle of a probe ends
/// when the probe does (at most its timeout later) and applies nothing
/// more. Waiting would hold a reload, and with it the signal thread, or a
/// shutdown, on a backend that accepts and never answers.
pub struct Checker {
    /// Dropping it wakes every thread's wait between probes.
    pub(super) _stop: Sender<()>,
}

impl Checker {
    pub fn start(probes: Vec<Probe>, settings: Active) -> io::Result<Checker> {
        let (stop, stopped) = bounded(1);
        let settings = Arc::new(settings);
        for probe in probes {
            let (settings, stopped) = (settings.clone(), stopped.clone());
            let checker = probe.health.new_checker();
            std::thread::Builder::new()
                .name("health".into())
                .spawn(move || check_loop(&probe, checker, &settings, &stopped))?;
        }
        Ok(Checker { _stop: stop })
    }

    /// Starts a thread per agent (see [`super::agent`]), stopped as the
    /// checker threads are.
    pub fn ask_agents(
        agents: Vec<super::Agent>,
        timing: super::AgentTiming,
    ) -> io::Result<Checker> {
        let (stop, stopped) = bounded(1);
        for agent in agents {
            let stopped = stopped.clone();
            std::thread::Builder::new()
                .name("agent".into())
                .spawn(move || super::agent::ask_loop(&agent, timing, &stopped))?;
        }
        Ok(Checker { _stop: stop })
    }

    pub fn stop(self) {}
}

fn check_loop(probe: &Probe, checker: u64, settings: &Active, stopped: &Receiver<()>) {
    loop {
        let wait = probe.health.probe_due(Instant::now(), settings);
        if !wait.is_zero() {
            match stopped.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => continue,
                _ => return,
            }
        }
        // A target in maintenance is not probed (HAProxy pauses its
        // checks): the backend may be down for the work on it, which is
        // no news, and no "down" line should say otherwise. Its turn is
        // passed, so probes resume an interval later at most.
        let result = (!in_maintenance(probe)).then(|| probe_once(probe, settings));
        probe.health.probe_ended();
        let Some(result) = result else {
            continue;
        };
        // Stopped while probing: the target's health may belong to a new
        // checker by now.
        if matches!(stopped.try_recv(), Err(TryRecvError::Disconnected)) {
            return;
        }
        // Nor does a probe that began before maintenance count.
        if in_maintenance(probe) {
            continue;
        }
        // This process out of descriptors or ports says nothing of the
        // target: the probe counts neither way.
        if let Err(ProbeError::Local(e)) = &result {
            log::debug!("health check of {} at {}: {e}", probe.name, probe.addr);
            continue;
        }
        probe
            .health
            .probed(checker, Instant::now(), settings, result);
    }
}

fn in_maintenance(probe: &Probe) -> bool {
    probe.health.admin_state() == AdminState::Maint
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{health, probing};
    use super::*;
    use std::io::{Read, Write};
    use std::net::SocketAddr;

    #[test]
    fn a_404_under_disable_on_404_keeps_the_target_up_but_out_of_rotation() {
        let h = health(0, 60);
        let now = Instant::now();
        let settings = Active {
            disable_on_404: true,
            ..probing(2, 2)
        };
        h.probed(0, now, &settings, Ok(Probed::NotFound));
        assert!(h.stopping() && !h.takes_new_requests());
        // Counted as a good probe: failures in between do not add up.
        h.probed(0, now, &settings, Err(ProbeError::Status(503)));
        h.probed(0, now, &settings, Ok(Probed::NotFound));
        h.probed(0, now, &settings, Err(ProbeError::Status(503)));
        assert!(h.usable(now), "no two failures in a row");
        assert!(h.stopping(), "a failure says nothing of stopping");
        h.probed(0, now, &settings, Ok(Probed::Passed));
        assert!(!h.stopping() && h.takes_new_requests());
        // A down target whose probes answer 404 comes up, stopping.
        h.probed(0, now, &settings, Err(ProbeError::Status(503)));
        h.probed(0, now, &settings, Err(ProbeError::Status(503)));
        assert!(!h.usable(now));
        h.probed(0, now, &settings, Ok(Probed::NotFound));
        let later = now + Duration::from_secs(1);
        h.probed(0, later, &settings, Ok(Probed::NotFound));
        assert!(h.usable(now) && h.stopping());
        let found = |passed, said: &str| LastCheck {
            at: later,
            passed,
            said: said.into(),
        };
        assert_eq!(h.last_check(), Some(found(true, "404 (disable-on-404)")));
        // Checks turned off let it go, and forget what they found.
        h.checks_off();
        assert!(!h.stopping() && h.takes_new_requests());
        assert_eq!(h.last_check(), None);
        // A result of an older checker is not applied.
        h.probed(0, now, &settings, Ok(Probed::NotFound));
        assert!(!h.stopping());
        assert_eq!(h.last_check(), None);
        h.probed(1, later, &settings, Err(ProbeError::Status(503)));
        assert_eq!(h.last_check(), Some(found(false, "status 503")));
        h.probed(1, later, &settings, Ok(Probed::Passed));
        assert_eq!(h.last_check(), Some(found(true, "passed")));
    }

    #[test]
    fn rise_and_fall_thresholds() {
        let h = health(1, 10);
        let settings = probing(2, 3);
        let now = Instant::now();
        let bad = || Err(ProbeError::Status(503));
        h.probed(0, now, &settings, bad());
        h.probed(0, now, &settings, bad());
        assert!(h.usable(now));
        h.probed(0, now, &settings, Ok(Probed::Passed));
        h.probed(0, now, &settings, bad());
        h.probed(0, now, &settings, bad());
        assert!(h.usable(now), "the good probe reset the streak");
        h.probed(0, now, &settings, bad());
        assert!(!h.usable(now));
        assert_eq!(h.fallback_rank().1, Some(now));
        h.probed(0, now, &settings, Ok(Probed::Passed));
        assert!(!h.usable(now));
        h.probed(0, now, &settings, Ok(Probed::Passed));
        assert!(h.usable(now));
    }

    #[test]
    fn rise_good_probes_after_a_passive_mark_bring_a_target_back() {
        let h = health(1, 3600);
        let settings = probing(2, 3);
        let now = Instant::now();
        h.probed(0, now, &settings, Ok(Probed::Passed));
        h.probed(0, now, &settings, Ok(Probed::Passed));
        h.failed(now, "refused");
        assert!(!h.usable(now));
        h.probed(0, now, &settings, Ok(Probed::Passed));
        assert!(!h.usable(now), "one good probe is not enough");
        h.probed(0, now, &settings, Ok(Probed::Passed));
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

    #[test]
    fn a_probe_at_another_port_goes_there_in_the_clear_naming_it() {
        let at = |name: &str, addr: Endpoint| {
            // A target with `tls` and `send_proxy`: its traffic port's.
            let tls = crate::upstream::BackendTls {
                settings: crate::tls::backends::default_client_config(),
                name: rustls_pki_types::ServerName::try_from("app").unwrap(),
            };
            let probe = Probe {
                name: name.into(),
                host: name.into(),
                addr,
                tls: Some(tls),
                fastcgi: None,
                send_proxy: Some(crate::http::send_proxy::ProxyVersion::V2),
                health: Arc::new(health(1, 10)),
            };
            probe.at_port(8081)
        };
        let moved = at(
            "app:8000",
            "10.0.0.5:8000".parse::<SocketAddr>().unwrap().into(),
        );
        assert_eq!(&*moved.host, "app:8081");
        assert_eq!(moved.addr, Endpoint::Tcp("10.0.0.5:8081".parse().unwrap()));
        assert!(moved.send_proxy.is_none() && moved.tls.is_none());
        let v6 = at(
            "[::1]:8000",
            "[::1]:8000".parse::<SocketAddr>().unwrap().into(),
        );
        assert_eq!(&*v6.host, "[::1]:8081");
        // A name written without its port keeps all of it.
        let bare = at("[::1]", "[::1]:80".parse::<SocketAddr>().unwrap().into());
        assert_eq!(&*bare.host, "[::1]:8081");
        let socket = at("localhost", Endpoint::Unix("/run/app.sock".into()));
        assert_eq!(socket.addr, Endpoint::Unix("/run/app.sock".into()));
        assert_eq!(&*socket.host, "localhost");
        assert!(socket.tls.is_some(), "left as it was");
    }

    /// A checker probing `addr` once an hour (rise and fall 1), and the
    /// target's health.
    fn check_hourly(addr: SocketAddr, timeout: Duration) -> (Arc<Health>, Checker) {
        let h = Arc::new(health(1, 10));
        let probe = Probe {
            name: "t:1".into(),
            host: "t:1".into(),
            addr: addr.into(),
            tls: None,
            fastcgi: None,
            send_proxy: None,
            health: h.clone(),
        };
        let settings = Active {
            interval: Duration::from_secs(3600),
            fast_interval: Duration::from_secs(3600),
            down_interval: Duration::from_secs(3600),
            timeout,
            connect_timeout: timeout,
            ..probing(1, 1)
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

    /// A plain probe of each address, its target out after one failure
    /// (for an hour, were it a request's).
    fn probes_at(addrs: [std::net::SocketAddr; 2]) -> Vec<Probe> {
        (addrs.into_iter())
            .map(|addr| Probe {
                name: addr.to_string().into(),
                host: addr.to_string().into(),
                addr: addr.into(),
                tls: None,
                fastcgi: None,
                send_proxy: None,
                health: Arc::new(health(1, 3600)),
            })
            .collect()
    }

    #[test]
    fn a_reply_trickling_in_fails_its_probe_and_delays_no_other_target() {
        let trickle = endpoint(b"HTTP/1.1 200 OK\r\nX-Pad: aaaa", Duration::from_millis(20));
        let failing = endpoint(
            b"HTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n",
            Duration::ZERO,
        );
        let probes = probes_at([trickle, failing]);
        let healths: Vec<_> = probes.iter().map(|p| p.health.clone()).collect();
        let settings = Active {
            interval: Duration::from_millis(50),
            fast_interval: Duration::from_millis(50),
            down_interval: Duration::from_millis(50),
            timeout: Duration::from_millis(200),
            connect_timeout: Duration::from_millis(200),
            ..probing(1, 1)
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
    fn a_checker_probes_again_each_interval_but_not_a_target_in_maintenance() {
        use std::net::TcpListener;
        // Out after two 503s in a row: the second probe comes an interval
        // after the first.
        let failing = endpoint(
            b"HTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n",
            Duration::ZERO,
        );
        // Never accepted: a probe's connect would be queued all the same.
        let paused = TcpListener::bind("127.0.0.1:0").unwrap();
        paused.set_nonblocking(true).unwrap();
        let probes = probes_at([failing, paused.local_addr().unwrap()]);
        let healths: Vec<_> = probes.iter().map(|p| p.health.clone()).collect();
        healths[1].set_admin_state(AdminState::Maint);
        let settings = Active {
            interval: Duration::from_millis(50),
            fast_interval: Duration::from_millis(50),
            down_interval: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            ..probing(1, 2)
        };
        let checker = Checker::start(probes, settings).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while healths[0].usable(Instant::now()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!healths[0].usable(Instant::now()), "no second probe");
        // An interval and more went by: the target in maintenance would
        // have had its first probe at once.
        let accepted = paused.accept().map(|_| ()).map_err(|e| e.kind());
        assert_eq!(accepted, Err(io::ErrorKind::WouldBlock));
        stop_within_limit(checker);
    }

    #[test]
    fn a_failed_connect_probe_is_logged_as_one() {
        assert_eq!(ProbeKind::Connect.to_string(), "by connect");
        assert_eq!(ProbeKind::Datagram.to_string(), "by datagram");
        let http = |method, path: &str| ProbeKind::Http {
            method,
            path: path.into(),
        };
        assert_eq!(http("GET", "/up").to_string(), "/up");
        assert_eq!(http("HEAD", "/").to_string(), "HEAD /");
        // Counted as a GET's failures are.
        let h = health(0, 10);
        let settings = Active {
            kind: ProbeKind::Connect,
            ..probing(2, 2)
        };
        let now = Instant::now();
        let refused = || Err(ProbeError::Connect(io::ErrorKind::ConnectionRefused.into()));
        h.probed(0, now, &settings, refused());
        assert!(h.usable(now));
        h.probed(0, now, &settings, refused());
        assert!(!h.usable(now));
        h.probed(0, now, &settings, Ok(Probed::Passed));
        h.probed(0, now, &settings, Ok(Probed::Passed));
        assert!(h.usable(now));
    }

    #[test]
    fn checks_passing_clear_a_passive_mark() {
        let h = health(1, 3600);
        let now = Instant::now();
        h.failed(now, "refused");
        assert!(!h.usable(now));
        let settings = probing(1, 1);
        h.probed(0, now, &settings, Err(ProbeError::Status(500)));
        h.probed(0, now, &settings, Ok(Probed::Passed));
        assert!(h.usable(now));
    }

    #[test]
    fn connects_accepted_end_the_checks_mark_but_not_a_passive_one() {
        let settings = Active {
            kind: ProbeKind::Connect,
            ..probing(1, 1)
        };
        // Out for its requests: connects go on being accepted (a backend
        // that resets every request does), and it stays out.
        let h = health(1, 3600);
        let now = Instant::now();
        h.failed(now, "reset");
        h.probed(0, now, &settings, Ok(Probed::Passed));
        h.probed(0, now, &settings, Ok(Probed::Passed));
        assert!(!h.usable(now));
        assert!(h.usable(now + Duration::from_secs(3600)));
        // Out for its connects: back once one is accepted.
        let h = health(1, 3600);
        h.probed(0, now, &settings, Err(ProbeError::Status(500)));
        assert!(!h.usable(now));
        h.probed(0, now, &settings, Ok(Probed::Passed));
        assert!(h.usable(now));
    }

    #[test]
    fn a_target_its_checks_bring_back_ramps_up_from_the_probe_that_did() {
        use crate::upstream::balancer::FULL_SHARE;
        let (s, period) = (Duration::from_secs, Duration::from_secs(100));
        let half = FULL_SHARE / 2;
        let t0 = Instant::now();
        let connect = Active {
            kind: ProbeKind::Connect,
            ..probing(1, 1)
        };
        // Out an hour for its requests, a GET answered as asked: back from
        // that probe, not from the hour's end.
        let h = health(1, 3600);
        h.failed(t0, "refused");
        h.probed(0, t0 + s(10), &probing(1, 1), Ok(Probed::Passed));
        assert_eq!(h.share(t0 + s(60), period), half);
        // Out for its connects: back from the one accepted.
        let h = health(1, 3600);
        h.probed(0, t0, &connect, Err(ProbeError::Status(500)));
        h.probed(0, t0 + s(10), &connect, Ok(Probed::Passed));
        assert_eq!(h.share(t0 + s(60), period), half);
        // Out for its requests, connects accepted: back (and ramping) only
        // from the passive mark's end.
        let h = health(1, 100);
        h.failed(t0, "reset");
        h.probed(0, t0 + s(10), &connect, Ok(Probed::Passed));
        assert_eq!(h.share(t0 + s(150), period), half);
    }

    #[test]
    fn a_target_is_said_down_once_and_up_once_back() {
        use crate::test_log::logged;
        let s = Duration::from_secs;
        let t0 = Instant::now();
        let h = health(1, 3600);
        let settings = probing(1, 1);
        let ((), lines) = logged(|| {
            for _ in 0..2 {
                h.probed(0, t0, &settings, Err(ProbeError::Status(503)));
            }
            h.probed(0, t0 + s(1), &settings, Ok(Probed::Passed));
        });
        let down = "WARN target t:1 down: health check /health failed 1 time(s): status 503";
        assert_eq!(lines, [down, "INFO target t:1 up"]);
        // A connect accepted the instant a passive mark ends: back, as
        // requests may go to it from that instant.
        let h = health(1, 10);
        let connect = Active {
            kind: ProbeKind::Connect,
            ..probing(1, 1)
        };
        h.failed(t0, "refused");
        let ((), lines) = logged(|| h.probed(0, t0 + s(10), &connect, Ok(Probed::Passed)));
        assert_eq!(lines, ["INFO target t:1 up"]);
    }

    #[test]
    fn a_result_from_a_checker_stopped_by_a_reload_counts_no_more() {
        // Its probe ended just as a reload turned checks off: applied
        // after, its failure would hold the target down with no checker
        // left to bring it back.
        let h = health(1, 3600);
        let fail = |checker| {
            let failed = Err(ProbeError::Status(500));
            h.probed(checker, Instant::now(), &probing(1, 1), failed);
        };
        // A reload that keeps the checks starts a checker in place of the
        // one before, whose results count no more from then on.
        let replaced = h.new_checker();
        let old = h.new_checker();
        fail(replaced);
        assert!(h.usable(Instant::now()));
        h.checks_off();
        fail(old);
        assert!(h.usable(Instant::now()));
        // Nor does an old checker's once a new one runs.
        let new = h.new_checker();
        fail(old);
        assert!(h.usable(Instant::now()));
        fail(new);
        assert!(!h.usable(Instant::now()));
    }

    #[test]
    fn checks_turned_off_let_go_of_what_they_held_down() {
        let h = health(1, 3600);
        let now = Instant::now();
        h.probed(0, now, &probing(1, 1), Err(ProbeError::Status(500)));
        assert!(!h.usable(now));
        h.checks_off();
        assert!(h.usable(now));
        // A passive mark is not theirs to lift.
        h.failed(now, "refused");
        h.checks_off();
        assert!(!h.usable(now));
    }

    /// `probing(2, 3)` at these intervals: up, on its way, down.
    fn probing_every(interval: Duration, fast: Duration, down: Duration) -> Active {
        Active {
            interval,
            fast_interval: fast,
            down_interval: down,
            ..probing(2, 3)
        }
    }

    #[test]
    fn a_new_checker_goes_on_with_the_old_ones_count_and_rhythm() {
        let h = health(1, 3600);
        let settings = probing(2, 3);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let every5 = probing_every(s(5), s(5), s(5));
        let probe = |at: Instant| {
            h.probe_ended();
            h.probed(0, at, &settings, Err(ProbeError::Status(503)));
        };
        assert_eq!(h.probe_due(t0, &every5), Duration::ZERO);
        probe(t0);
        assert_eq!(h.probe_due(t0 + s(1), &every5), s(4));
        assert_eq!(h.probe_due(t0 + s(5), &every5), Duration::ZERO);
        // A reload's checker shares this health: while the old one's
        // probe (slower than the interval) has not ended, it looks again
        // shortly rather than probing beside it...
        assert_eq!(h.probe_due(t0 + s(11), &every5), IN_FLIGHT_POLL);
        probe(t0 + s(11));
        // ... and its first probe is the third in a row, due an interval
        // after the last began.
        assert_eq!(h.probe_due(t0 + s(11), &every5), Duration::ZERO);
        probe(t0 + s(12));
        assert!(!h.usable(t0 + s(12)));
        assert_eq!(h.probe_due(t0 + s(13), &every5), s(3));
    }

    #[test]
    fn a_target_on_its_way_down_or_up_is_probed_at_the_fast_interval_and_one_down_at_the_down_one()
    {
        let h = health(1, 3600);
        let s = Duration::from_secs;
        let settings = probing_every(s(10), s(1), s(60));
        let t0 = Instant::now();
        let mut at = t0;
        // Probes `result`, and says when the next is due after it.
        let mut next_after = |result: Result<Probed, ProbeError>| {
            assert_eq!(h.probe_due(at, &settings), Duration::ZERO);
            h.probe_ended();
            h.probed(0, at, &settings, result);
            let wait = h.probe_due(at, &settings);
            at += wait;
            wait
        };
        let failed = || Err(ProbeError::Status(503));
        assert_eq!(next_after(Ok(Probed::Passed)), s(10), "up");
        assert_eq!(next_after(failed()), s(1), "one failure of three");
        assert_eq!(next_after(failed()), s(1), "two of three");
        assert_eq!(next_after(failed()), s(60), "down");
        assert_eq!(next_after(failed()), s(60), "still down");
        assert_eq!(next_after(Ok(Probed::Passed)), s(1), "one pass of two");
        assert_eq!(next_after(Ok(Probed::Passed)), s(10), "up again");
        assert_eq!(next_after(failed()), s(1));
        assert_eq!(
            next_after(Ok(Probed::Passed)),
            s(10),
            "a pass ends the way down"
        );
        assert!(h.usable(at));
    }
}
