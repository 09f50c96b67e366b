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
//!
//! # Layout
//! - `passive`: the proxy's own exchanges counted against `max_fails`
//!   and `fail_timeout`, and the mark they set.
//! - `slow_start`: the part of its weight a target that came back gets.
//! - `checker`: the active checks' settings ([`Active`]), the checker
//!   threads ([`Checker`]) and the `rise`/`fall` counts of their results.
//! - `probe`: one probe, a connect or a `GET` and its answer judged
//!   ([`ProbeError`]).
//! - `agent`: the agents of targets with `agent_port` asked, and what
//!   they say applied ([`Agent`]).
//! - `key_fetch`: the keys `auth_jwt_key_request` asks a pool for,
//!   fetched as a probe fetches ([`KeyFetch`]).
//! - here: a target's [`Health`], shared by all of them, and the
//!   operator's state it carries.

mod agent;
mod checker;
mod key_fetch;
mod passive;
mod probe;
mod slow_start;

pub use agent::{Agent, AgentTiming};
pub use checker::{Active, Checker, Probe, ProbeKind};
pub use key_fetch::KeyFetch;
pub use probe::{ProbeError, Probed, MAX_PROBE_BODY};

// The probe's connection is opened as a request's is (`super::open` and
// the rest, named so from `probe`).
use super::{connect, handshake, no_delay, open, send_in_clear, BackendTls};
use crate::upstream::admin_state::{AdminCell, AdminState};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Up, but given no new request: its last probe was answered 404
    /// under `health_check_disable_on_404` (HAProxy's NOLB). An atomic
    /// beside the lock, as `admin`, for every pick reads it.
    stopping: AtomicBool,
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
    /// Said to be down by its agent, until it says `up`.
    agent_down: bool,
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
    /// What its last probe found, for the admin listener (HAProxy's
    /// `LastChk`); `None` before the first, and once checks are off.
    last_check: Option<LastCheck>,
}

/// What a target's last probe found, and when it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastCheck {
    pub at: Instant,
    /// The target stays in (or comes back) by it.
    pub passed: bool,
    /// What it found: `passed`, or why it failed, as the "down" line says it.
    pub said: Arc<str>,
}

impl State {
    /// Held out by what its checks said: the active ones' `fall`, or its
    /// agent's `down`.
    fn checked_down(&self) -> bool {
        self.active_down || self.agent_down
    }

    /// Says the target is back, once, if it was said to be down.
    fn announce_up(&mut self, name: &str, why: &str) {
        if std::mem::take(&mut self.announced_down) {
            log::info!("target {name} up{why}");
        }
    }
}

/// Consecutive probe results, counted towards `rise` or `fall`.
#[derive(Default)]
struct Streak {
    good: u32,
    bad: u32,
    /// Passively marked since: `rise` good probes bring it back early.
    rise_pending: bool,
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
            stopping: AtomicBool::new(false),
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

    /// Whether the balancer may give the target a new request: `ready`,
    /// and not stopping by its checks' word (a `404` under
    /// `health_check_disable_on_404`). Clients a `sticky_cookie` ties to
    /// it come either way.
    pub fn takes_new_requests(&self) -> bool {
        self.admin.get().takes_new_requests() && !self.stopping()
    }

    /// Stopping by its checks' word (see [`Health::takes_new_requests`]).
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// What the operator set through the admin listener, the weight (see
    /// [`AdminCell::set_weight`]).
    pub fn admin(&self) -> &AdminCell {
        &self.admin
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
}

#[cfg(test)]
mod test_support {
    use super::*;

    /// A plain HTTP target at `addr`, as a probe (or a key fetch) reaches
    /// it, out for a minute once it fails.
    pub(super) fn probe_at(addr: std::net::SocketAddr) -> Probe {
        Probe {
            name: addr.to_string().into(),
            host: addr.to_string().into(),
            addr: addr.into(),
            tls: None,
            fastcgi: None,
            send_proxy: None,
            health: Arc::new(health(1, 60)),
        }
    }

    pub(super) fn probing(rise: u32, fall: u32) -> Active {
        Active {
            kind: ProbeKind::Http {
                method: "GET",
                path: "/health".into(),
            },
            host: None,
            interval: Duration::from_secs(1),
            fast_interval: Duration::from_secs(1),
            down_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            rise,
            fall,
            expect_status: Arc::from([]),
            expect_body: None,
            send: None,
            expect: None,
            conversation: None,
            disable_on_404: false,
        }
    }

    pub(super) fn health(max_fails: u32, secs: u64) -> Health {
        Health::new(
            "t:1".into(),
            Passive {
                max_fails,
                fail_timeout: Duration::from_secs(secs),
            },
        )
    }
}
