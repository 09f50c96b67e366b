//! Whether a backend may be sent requests.
//!
//! Passive: the proxy reports each exchange's outcome; `max_fails`
//! failures within `fail_timeout` take a target out for `fail_timeout`,
//! after which it is tried again (nginx's model). Active: a checker thread
//! per target probes it each interval (a target that hangs delays no
//! other's checks), with `GET health_check_path` or, under
//! `health_check_tcp`, by connecting alone; a
//! target goes down after `fall` failed probes in a row and comes back
//! after `rise` good ones (HAProxy's model). Either way, each transition is
//! logged once. Time is a parameter (`now`), so the rules are tested
//! without sleeping.

use super::admin_state::{AdminCell, AdminState};
use super::balancer::FULL_SHARE;
use crate::config::Endpoint;
use crate::http::body::decode_complete_chunked;
use crate::http::conn::{is_local_shortage, is_timeout, Socket as _};
use crate::http::head::{find_head_end, parse_response, HeadError};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use parking_lot::Mutex;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest probe response head read; a health endpoint needs no more.
const MAX_PROBE_HEAD: usize = 8 * 1024;
/// Interim (1xx) heads skipped before the final one.
const MAX_PROBE_INTERIM: usize = 4;
/// How often a checker looks again whether the probe another one sent
/// (the one before a reload) has ended.
const IN_FLIGHT_POLL: Duration = Duration::from_millis(50);
/// Most of a probe's body searched for `health_check_expect_body`: a
/// health endpoint answers in a few bytes, and a page that is not one
/// is not read whole.
pub const MAX_PROBE_BODY: usize = 64 * 1024;

/// Passive health settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Passive {
    /// Failures within `fail_timeout` that take a target out; 0 = never.
    pub max_fails: u32,
    pub fail_timeout: Duration,
}

/// One target's health, shared by request threads and the checker, and
/// kept by a reload that keeps the target (with the new settings).
pub struct Health {
    /// The target's name, for the lines that say it went down or up: a
    /// target's name may change while its health goes on (a name that
    /// came to give several addresses, see [`Health::rename`]).
    name: Mutex<Arc<str>>,
    state: Mutex<State>,
    /// What the operator set through the admin listener: read by every
    /// pick, so an atomic beside the lock rather than under it. Shared
    /// with the health that replaces this one when the target's name
    /// comes to resolve to another address (see [`Health::sharing_admin_of`]).
    admin: Arc<AdminCell>,
}

#[derive(Default)]
struct State {
    settings: Passive,
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
    /// When it last came back into rotation (or will, at the end of a
    /// passive mark): `slow_start` ramps its share up from then.
    back_since: Option<Instant>,
    /// A "down" line was logged and no "up" since.
    announced_down: bool,
    /// The active checker's run of results: a reload's new checker goes
    /// on counting where the old one stopped.
    streak: Streak,
    /// When the last probe began, so that a new checker keeps the rhythm
    /// rather than probing at once.
    last_probe: Option<Instant>,
    /// That probe has not ended: a reload's checker waits for the probe
    /// its old checker sent (one slower than the interval, with a long
    /// `health_check_timeout`), rather than sending one beside it.
    probe_in_flight: bool,
    /// Which checker's results count: each new one (a reload's) and
    /// turning checks off move it on, so that a result an old checker got
    /// just as it was stopped is not applied after.
    checker: u64,
}

impl State {
    /// Says the target is back, once, if it was said to be down.
    fn announce_up(&mut self, name: &str, why: &str) {
        if std::mem::take(&mut self.announced_down) {
            log::info!("target {name} up{why}");
        }
    }
}

impl Health {
    pub fn new(name: Arc<str>, settings: Passive) -> Health {
        Health {
            name: Mutex::new(name),
            state: Mutex::new(State {
                settings,
                ..State::default()
            }),
            admin: Arc::default(),
        }
    }

    /// A fresh health (nothing failed, nothing probed) for a target whose
    /// name now resolves to another address: another server, whose
    /// health the old one's failures say nothing of. What the operator
    /// set is about the target as named, so it is the same cell: a
    /// change through either is a change of both, even one made just as
    /// the new address comes in.
    pub fn sharing_admin_of(old: &Health, settings: Passive) -> Health {
        Health {
            admin: old.admin.clone(),
            ..Health::new(old.name(), settings)
        }
    }

    fn name(&self) -> Arc<str> {
        self.name.lock().clone()
    }

    /// The target goes on under another name: the one address of a name
    /// that came to give several (`app:8000` is now
    /// `app:8000@10.0.0.5:8000`), or the other way round.
    pub fn rename(&self, name: Arc<str>) {
        *self.name.lock() = name;
    }

    pub fn admin_state(&self) -> AdminState {
        self.admin.get()
    }

    /// Sets the operator's state; returns the one it replaced. Back to
    /// `ready` from `drain` or `maint` is coming back into rotation.
    pub fn set_admin_state(&self, state: AdminState) -> AdminState {
        let was = self.admin.set(state);
        if state == AdminState::Ready && was != AdminState::Ready {
            // A passive mark still running brings it back when it ends.
            let mut held = self.state.lock();
            let now = Instant::now();
            held.back_since = Some(held.down_until.map_or(now, |until| until.max(now)));
        }
        was
    }

    /// The part of its weight the target gets at `now`, in thousandths
    /// ([`FULL_SHARE`]): under `slow_start` (`period`), one that came back
    /// into rotation gets a share that grows in proportion to the time
    /// since, from 1 to the whole at the end of the period, so that a
    /// backend back from a crash or a deploy is not handed its full share
    /// of traffic while cold (HAProxy's `slowstart`). Not at start-up: a
    /// target nobody saw fail starts whole.
    pub fn share(&self, now: Instant, period: Duration) -> u32 {
        if period.is_zero() {
            return FULL_SHARE;
        }
        let Some(back) = self.state.lock().back_since else {
            return FULL_SHARE;
        };
        let ramped = now.saturating_duration_since(back);
        if ramped >= period {
            return FULL_SHARE;
        }
        let part = ramped.as_nanos() * u128::from(FULL_SHARE) / period.as_nanos();
        // Below FULL_SHARE, as ramped < period.
        (part as u32).max(1)
    }

    /// A reload's settings. When they change, failed requests counted
    /// under the old ones no longer count, and a target they held out
    /// comes back (as after an nginx reload): whether it would be out
    /// under the new ones cannot be told from a count kept under others.
    /// What the active checks hold is theirs to keep.
    pub fn set_passive(&self, settings: Passive) {
        let mut state = self.state.lock();
        if state.settings == settings {
            return;
        }
        state.settings = settings;
        state.fails = 0;
        state.window_start = None;
        if let Some(until) = state.down_until.take() {
            // Back now (for `slow_start`), not when the mark would have ended.
            state.back_since = Some(until.min(Instant::now()));
            if !state.active_down {
                state.announce_up(&self.name(), ": max_fails or fail_timeout changed");
            }
        }
    }

    pub fn passive(&self) -> Passive {
        self.state.lock().settings
    }

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
        if state.active_down {
            state.active_down = false;
            if state.down_until.is_none() {
                state.announce_up(&self.name(), ": health checks are off");
            }
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
        let settings = state.settings;
        if settings.max_fails == 0 {
            return;
        }
        let window_over = state
            .window_start
            .is_none_or(|start| now.duration_since(start) >= settings.fail_timeout);
        if window_over {
            state.fails = 0;
            state.window_start = Some(now);
        }
        state.fails += 1;
        if state.fails >= settings.max_fails {
            let until = now + settings.fail_timeout;
            state.down_until = Some(until);
            state.back_since = Some(until);
            state.fails = 0;
            state.window_start = None;
            // With active checks, `rise` good probes counted from now
            // bring it back before fail_timeout is over.
            state.streak.good = 0;
            state.streak.rise_pending = true;
            if !state.announced_down {
                state.announced_down = true;
                log::warn!(
                    "target {} down: {reason} ({} failure(s) within {:?}; out for {:?})",
                    self.name(),
                    settings.max_fails,
                    settings.fail_timeout,
                    settings.fail_timeout
                );
            }
        }
    }

    /// An exchange with the target picked at `picked` succeeded (a
    /// response head arrived). One picked before the target's last
    /// failure says nothing newer of it, as nginx, which resets the count
    /// only for a peer chosen after its last failure: a slow request that
    /// was already there when the target was taken out must not bring it
    /// back, nor one begun before a failure clear the count it is in.
    pub fn succeeded(&self, picked: Instant) {
        let mut state = self.state.lock();
        if state.last_failure.is_some_and(|failed| picked < failed) {
            return;
        }
        state.fails = 0;
        state.window_start = None;
        // Tried while still out (the last resort when every target is
        // down): back now, not when the mark would have ended.
        if let Some(until) = state.down_until.take() {
            state.back_since = Some(until.min(Instant::now()));
        }
        if !state.active_down {
            state.announce_up(&self.name(), "");
        }
    }

    /// Counts one probe result, and flips the target's state at a
    /// threshold: `fall` failed probes in a row take it out, `rise` good
    /// ones bring it back (also from a passive mark).
    fn probed(
        &self,
        checker: u64,
        now: Instant,
        settings: &Active,
        result: Result<(), ProbeError>,
    ) {
        let mut state = self.state.lock();
        if state.checker != checker {
            return;
        }
        let state = &mut *state;
        let streak = &mut state.streak;
        match result {
            Ok(()) => {
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
                    let clears_passive = matches!(settings.kind, ProbeKind::Get(_));
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
                    if !still_out {
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

    /// How long until the next probe is due, `interval` after the last
    /// one began (whichever checker sent it) and once that one has ended;
    /// records that one begins now when it is due, until
    /// [`Health::probe_ended`].
    fn probe_due(&self, now: Instant, interval: Duration) -> Duration {
        let mut state = self.state.lock();
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
    /// `GET path`, the answer judged (`health_check_path`, HAProxy's
    /// `option httpchk`).
    Get(String),
    /// A connection opened and closed at once, nothing sent or read
    /// (`health_check_tcp`, HAProxy's plain `check`): a backend that
    /// accepts is up, whatever it does next.
    Connect,
}

/// As the "down" line names the check: its path, or `by connect`.
impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeKind::Get(path) => f.write_str(path),
            ProbeKind::Connect => f.write_str("by connect"),
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
}

impl Active {
    fn passes(&self, status: u16) -> bool {
        match self.expect_status.is_empty() {
            true => (200..=399).contains(&status),
            false => (self.expect_status.iter()).any(|&(low, high)| (low..=high).contains(&status)),
        }
    }
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
    pub health: Arc<Health>,
}

/// Consecutive probe results, counted towards `rise` or `fall`.
#[derive(Default)]
struct Streak {
    good: u32,
    bad: u32,
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
            let checker = probe.health.new_checker();
            std::thread::Builder::new()
                .name("health".into())
                .spawn(move || check_loop(&probe, checker, &settings, &stopped))?;
        }
        Ok(Checker { _stop: stop })
    }

    pub fn stop(self) {}
}

fn check_loop(probe: &Probe, checker: u64, settings: &Active, stopped: &Receiver<()>) {
    loop {
        let wait = probe.health.probe_due(Instant::now(), settings.interval);
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
}

/// One probe on a fresh connection, all within `settings.timeout`.
///
/// [`ProbeKind::Connect`]: the connect is the probe, bounded by
/// `connect_timeout` (and the probe's timeout), and the connection is
/// closed as soon as it is made: nothing is sent or read, so a backend
/// that accepts and never answers, or resets the connection at once, is
/// up (HAProxy's layer-4 check).
///
/// To a target with `tls`, connecting takes the TLS handshake too, in the
/// same time: a certificate that would fail a request fails the probe
/// (HAProxy's layer-6 check).
///
/// [`ProbeKind::Get`]: a 2xx or 3xx final status is healthy, or one
/// `expect_status` lists, with a body that holds `expect_body` when that
/// is set (interim 1xx heads are skipped).
fn probe_once(probe: &Probe, settings: &Active) -> Result<(), ProbeError> {
    let deadline = Instant::now() + settings.timeout;
    let too_late = || ProbeError::Late(settings.timeout);
    let left = || {
        Some(deadline.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
            .ok_or_else(too_late)
    };
    let failed = |e: io::Error, otherwise: fn(io::Error) -> ProbeError| {
        if is_timeout(&e) {
            too_late()
        } else {
            otherwise(e)
        }
    };
    let connect_within = settings.timeout.min(settings.connect_timeout);
    let started = Instant::now();
    let mut stream = super::open(&probe.addr, probe.tls.as_ref())
        .and_then(|stream| {
            super::connect(&stream, &probe.addr, connect_within)?;
            let left =
                (deadline.min(started + connect_within)).saturating_duration_since(Instant::now());
            super::handshake(&stream, left)?;
            Ok(stream)
        })
        .map_err(|e| {
            if is_local_shortage(&e) {
                ProbeError::Local(e)
            } else {
                ProbeError::Connect(e)
            }
        })?;
    let path = match &settings.kind {
        // Dropped here: a plain close, nothing waited for (the proxy's
        // side keeps a TIME_WAIT a minute, one per probe: a dozen per
        // target at the default interval).
        ProbeKind::Connect => return Ok(()),
        ProbeKind::Get(path) => path,
    };
    stream
        .set_write_timeout(Some(left()?))
        .map_err(ProbeError::Send)?;
    let host = settings.host.as_deref().unwrap_or(&probe.host);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: inverso-health-check\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| failed(e, ProbeError::Send))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let mut scanned = 0;
    let mut interim = 0;
    loop {
        match find_head_end(&buf, &mut scanned) {
            Ok(Some(len)) => {
                let head = parse_response(&buf[..len]).map_err(ProbeError::BadReply)?;
                match head.status {
                    100..=199 if interim < MAX_PROBE_INTERIM => {
                        interim += 1;
                        buf.drain(..len);
                        scanned = 0;
                        continue;
                    }
                    status if !settings.passes(status) => return Err(ProbeError::Status(status)),
                    _ => {
                        let Some(expected) = &settings.expect_body else {
                            return Ok(());
                        };
                        buf.drain(..len);
                        let body = probe_body(&mut stream, &head, buf, &left, settings.timeout)?;
                        let found = expected.is_empty()
                            || (body.windows(expected.len())).any(|w| w == expected.as_bytes());
                        return found
                            .then_some(())
                            .ok_or_else(|| ProbeError::Body(expected.clone()));
                    }
                }
            }
            Ok(None) if buf.len() > MAX_PROBE_HEAD => return Err(ProbeError::HeadTooLarge),
            Ok(None) => {}
            Err(e) => return Err(ProbeError::BadReply(e)),
        }
        stream
            .set_read_timeout(Some(left()?))
            .map_err(ProbeError::Receive)?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ProbeError::Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(failed(e, ProbeError::Receive)),
        }
    }
}

/// As much of a probe's body as there is, up to [`MAX_PROBE_BODY`]: read
/// to its end (the probe said `Connection: close`, and a length or the
/// last chunk may end it sooner) within what `left` leaves of the probe's
/// time, and decoded from chunks. `buf` holds what came after the head.
fn probe_body(
    stream: &mut crate::http::conn::Stream,
    head: &crate::http::ResponseHead,
    mut buf: Vec<u8>,
    left: &impl Fn() -> Result<Duration, ProbeError>,
    timeout: Duration,
) -> Result<Vec<u8>, ProbeError> {
    use crate::http::{BodyKind, BodyReader, BufConn};
    let kind = BodyKind::for_response(false, head).map_err(ProbeError::BadReply)?;
    // A chunk's data may itself end in an empty line: whole only once the
    // chunks decode to their end.
    let whole = |buf: &[u8]| match kind {
        BodyKind::Length(n) => buf.len() as u64 >= n,
        BodyKind::Chunked => decode_complete_chunked(buf, MAX_PROBE_BODY as u64).is_some(),
        _ => false,
    };
    let mut chunk = [0u8; 4096];
    while buf.len() < MAX_PROBE_BODY && !whole(&buf) {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(ProbeError::Receive)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => return Err(ProbeError::Late(timeout)),
            Err(e) => return Err(ProbeError::Receive(e)),
        }
    }
    // What came, decoded as far as it goes: a body cut short (or longer
    // than what is read of it) may still hold the text. No limit on the
    // reader, which would refuse a larger body before its first byte.
    let mut conn = BufConn::holding(buf);
    let mut reader = BodyReader::new(kind);
    let mut body = Vec::new();
    while let Ok(Some(piece)) = reader.next(&mut conn) {
        body.extend_from_slice(piece);
    }
    body.truncate(MAX_PROBE_BODY);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn probing(rise: u32, fall: u32) -> Active {
        Active {
            kind: ProbeKind::Get("/health".into()),
            host: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            rise,
            fall,
            expect_status: Arc::from([]),
            expect_body: None,
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
        h.succeeded(t0);
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
    fn a_success_picked_before_the_last_failure_changes_nothing() {
        let h = health(2, 10);
        let t0 = Instant::now();
        let [before, after] = [1, 3].map(|s| t0 + Duration::from_secs(s));
        h.failed(t0 + Duration::from_secs(2), "x");
        h.succeeded(before);
        h.failed(t0 + Duration::from_secs(2), "x");
        assert!(!h.usable(after), "the count was not cleared");
        h.succeeded(before);
        assert!(!h.usable(after), "still out");
        // Tried as the last resort once out, and answered: back.
        h.succeeded(after);
        assert!(h.usable(after));
    }

    #[test]
    fn slow_start_ramps_a_target_up_from_when_it_came_back() {
        let h = health(1, 10);
        let t0 = Instant::now();
        let (s, period) = (Duration::from_secs, Duration::from_secs(100));
        assert_eq!(h.share(t0, period), FULL_SHARE, "never failed: whole");
        h.failed(t0, "x");
        let back = t0 + s(10);
        assert_eq!(h.share(back, period), 1, "a sliver at first");
        assert_eq!(h.share(back + s(25), period), 250);
        assert_eq!(h.share(back + s(50), period), 500);
        assert_eq!(h.share(back + period, period), FULL_SHARE);
        assert_eq!(h.share(back, Duration::ZERO), FULL_SHARE, "off");

        // Back by its health checks: from the probe that brought it back.
        let checked = health(0, 10);
        let settings = probing(1, 1);
        checked.probed(0, t0, &settings, Err(ProbeError::Status(503)));
        checked.probed(0, t0 + s(40), &settings, Ok(()));
        assert_eq!(checked.share(t0 + s(60), period), 200);

        // Back from maintenance: from the operator's word.
        let kept = health(1, 10);
        kept.set_admin_state(AdminState::Maint);
        assert_eq!(kept.share(Instant::now(), period), FULL_SHARE);
        kept.set_admin_state(AdminState::Ready);
        assert!(kept.share(Instant::now(), period) < 10);
    }

    #[test]
    fn a_mark_new_passive_settings_let_go_of_ramps_from_then_not_from_its_old_end() {
        let h = health(1, 3600);
        let period = Duration::from_secs(10);
        h.failed(Instant::now(), "x");
        // A reload (the key, or the target's own fail_timeout=) lets go of
        // the mark an hour long: back now, and whole a period from now.
        h.set_passive(Passive {
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
        });
        let now = Instant::now();
        assert!(h.usable(now));
        assert_eq!(h.share(now + period, period), FULL_SHARE);
    }

    #[test]
    fn slow_start_is_not_begun_again_by_probes_passing_after_a_passive_mark_ended() {
        let h = health(1, 10);
        let t0 = Instant::now();
        let (s, period) = (Duration::from_secs, Duration::from_secs(100));
        let settings = probing(2, 1);
        h.failed(t0, "x");
        h.probed(0, t0 + s(4), &settings, Ok(()));
        // The mark ended at t0 + 10: back (and ramping) since then.
        h.probed(0, t0 + s(30), &settings, Ok(()));
        assert_eq!(h.share(t0 + s(30), period), 200);
    }

    #[test]
    fn ready_during_a_passive_mark_ramps_up_from_the_marks_end() {
        let h = health(1, 1000);
        let period = Duration::from_secs(100);
        h.failed(Instant::now(), "x");
        h.set_admin_state(AdminState::Maint);
        h.set_admin_state(AdminState::Ready);
        let end = Instant::now() + Duration::from_secs(1000);
        assert!(!h.usable(end - Duration::from_secs(10)));
        assert!(h.share(end + Duration::from_secs(1), period) <= 20);
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
        h.probed(0, now, &settings, Ok(()));
        h.probed(0, now, &settings, bad());
        h.probed(0, now, &settings, bad());
        assert!(h.usable(now), "the good probe reset the streak");
        h.probed(0, now, &settings, bad());
        assert!(!h.usable(now));
        assert_eq!(h.fallback_rank().1, Some(now));
        h.probed(0, now, &settings, Ok(()));
        assert!(!h.usable(now));
        h.probed(0, now, &settings, Ok(()));
        assert!(h.usable(now));
    }

    #[test]
    fn rise_good_probes_after_a_passive_mark_bring_a_target_back() {
        let h = health(1, 3600);
        let settings = probing(2, 3);
        let now = Instant::now();
        h.probed(0, now, &settings, Ok(()));
        h.probed(0, now, &settings, Ok(()));
        h.failed(now, "refused");
        assert!(!h.usable(now));
        h.probed(0, now, &settings, Ok(()));
        assert!(!h.usable(now), "one good probe is not enough");
        h.probed(0, now, &settings, Ok(()));
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
            host: "t:1".into(),
            addr: addr.into(),
            tls: None,
            health: h.clone(),
        };
        let settings = Active {
            interval: Duration::from_secs(3600),
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
                host: addr.to_string().into(),
                addr: addr.into(),
                tls: None,
                health: Arc::new(health(1, 3600)),
            })
            .collect();
        let healths: Vec<_> = probes.iter().map(|p| p.health.clone()).collect();
        let settings = Active {
            interval: Duration::from_millis(50),
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

    /// One probe of a server that reads the request, writes `reply` and
    /// holds the connection open.
    fn probe_answered_with(reply: &'static [u8], timeout: Duration) -> Result<(), ProbeError> {
        let settings = Active {
            timeout,
            ..probing(1, 1)
        };
        probe_with(reply, &settings)
    }

    /// [`probe_answered_with`] under `settings`.
    fn probe_with(reply: &'static [u8], settings: &Active) -> Result<(), ProbeError> {
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
        let probe = Probe {
            name: addr.to_string().into(),
            host: addr.to_string().into(),
            addr: addr.into(),
            tls: None,
            health: Arc::new(health(1, 10)),
        };
        let result = probe_once(&probe, settings);
        drop(probe);
        server.join().unwrap();
        result
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

    /// A connect probe of `addr`, given long enough to pass on a loaded
    /// machine (see [`connect_probe_within`]).
    fn connect_probe(addr: Endpoint) -> Result<(), ProbeError> {
        connect_probe_within(addr, Duration::from_secs(10))
    }

    fn connect_probe_within(addr: Endpoint, within: Duration) -> Result<(), ProbeError> {
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

    #[test]
    fn a_failed_connect_probe_is_logged_as_one() {
        assert_eq!(ProbeKind::Connect.to_string(), "by connect");
        assert_eq!(ProbeKind::Get("/up".into()).to_string(), "/up");
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
        h.probed(0, now, &settings, Ok(()));
        h.probed(0, now, &settings, Ok(()));
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
        h.probed(0, now, &settings, Ok(()));
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
        h.probed(0, now, &settings, Ok(()));
        h.probed(0, now, &settings, Ok(()));
        assert!(!h.usable(now));
        assert!(h.usable(now + Duration::from_secs(3600)));
        // Out for its connects: back once one is accepted.
        let h = health(1, 3600);
        h.probed(0, now, &settings, Err(ProbeError::Status(500)));
        assert!(!h.usable(now));
        h.probed(0, now, &settings, Ok(()));
        assert!(h.usable(now));
    }

    #[test]
    fn a_reload_applies_its_passive_settings_to_the_health_it_keeps() {
        let h = health(1, 3600);
        let now = Instant::now();
        h.set_passive(Passive {
            max_fails: 3,
            fail_timeout: Duration::from_secs(10),
        });
        h.failed(now, "x");
        assert!(h.usable(now), "one failure of three");
        h.failed(now, "x");
        h.failed(now, "x");
        assert!(!h.usable(now));
        assert!(
            h.usable(now + Duration::from_secs(10)),
            "out for the new 10 s"
        );

        let passive = |max_fails, secs| Passive {
            max_fails,
            fail_timeout: Duration::from_secs(secs),
        };
        // The same settings again change nothing.
        h.failed(now, "x");
        h.failed(now, "x");
        h.failed(now, "x");
        h.set_passive(passive(3, 10));
        assert!(!h.usable(now));
        // Other settings: a fresh count, the target back.
        for changed in [passive(3, 5), passive(4, 5), passive(0, 5)] {
            h.set_passive(passive(1, 3600));
            h.failed(now, "x");
            assert!(!h.usable(now));
            h.set_passive(changed);
            assert!(h.usable(now), "{changed:?}");
        }
        // What the checks hold, they keep.
        h.probed(0, now, &probing(1, 1), Err(ProbeError::Status(500)));
        h.set_passive(passive(2, 5));
        assert!(!h.usable(now));
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
        let old = h.new_checker();
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

    #[test]
    fn a_new_checker_goes_on_with_the_old_ones_count_and_rhythm() {
        let h = health(1, 3600);
        let settings = probing(2, 3);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let probe = |at: Instant| {
            h.probe_ended();
            h.probed(0, at, &settings, Err(ProbeError::Status(503)));
        };
        assert_eq!(h.probe_due(t0, s(5)), Duration::ZERO);
        probe(t0);
        assert_eq!(h.probe_due(t0 + s(1), s(5)), s(4));
        assert_eq!(h.probe_due(t0 + s(5), s(5)), Duration::ZERO);
        // A reload's checker shares this health: while the old one's
        // probe (slower than the interval) has not ended, it looks again
        // shortly rather than probing beside it...
        assert_eq!(h.probe_due(t0 + s(11), s(5)), IN_FLIGHT_POLL);
        probe(t0 + s(11));
        // ... and its first probe is the third in a row, due an interval
        // after the last began.
        assert_eq!(h.probe_due(t0 + s(11), s(5)), Duration::ZERO);
        probe(t0 + s(12));
        assert!(!h.usable(t0 + s(12)));
        assert_eq!(h.probe_due(t0 + s(13), s(5)), s(3));
    }
}
