//! Agent checks: a small program beside a backend (its "agent") says how
//! loaded the server is and whether it should take requests, on a TCP
//! port of its own, as HAProxy's `agent-check`. Each interval a thread
//! per target connects to that port and reads one line of words:
//!
//! - `75%`: the target's weight, as a share of its configured one (for
//!   the balancers that read weights as they pick); `0%` drains it;
//! - `ready`, `drain`, `maint`: its administrative state, as the admin
//!   listener sets it;
//! - `up`, or `down`, `fail`, `failed`, `stopped` with a reason after
//!   `#`: whether it is up, as far as its agent knows;
//! - `maxconn:30`: the most requests it takes at once, as `max_conns=N`.
//!
//! Words are separated by blanks or commas, in any case. A weight or a
//! state is applied when the agent's answer about it changes, so that
//! an operator's change on the admin listener holds until the agent says
//! something new (HAProxy applies each answer, and so undoes an
//! operator's `maint` at the next one). `down` holds the target out until
//! the agent says `up`. An agent that cannot be reached, or answers
//! nothing, changes nothing: reachability is the health checks' job.

use super::Health;
use crate::config::MAX_WEIGHT;
use crate::metrics::TargetStats;
use crate::upstream::admin_state::{AdminCell, AdminState};
use crate::upstream::idle::IdleConns;
use crate::upstream::states::set_admin_state;
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most of an answer read: a line of a few words. What is longer
/// is no agent's answer.
const MAX_ANSWER: usize = 1024;

/// The highest share of its configured weight an agent may give a target.
const MAX_PERCENT: u32 = 10_000;

/// The most requests at once an agent may give a target, as `max_conns=N`.
const MAX_CONNS: usize = 1_000_000;

/// A target whose agent is asked.
pub struct Agent {
    /// The target as written in `targets`.
    pub name: Arc<str>,
    /// The target's address (or `agent_addr`) at the agent's port.
    pub addr: SocketAddr,
    /// `agent_inter`: how often it is asked, in place of the pool's
    /// `health_check_interval`.
    pub interval: Option<Duration>,
    /// `agent_send`: what it is sent once connected.
    pub send: Option<Box<[u8]>>,
    pub health: Arc<Health>,
    /// What a percentage is a share of.
    pub configured_weight: u32,
    /// Whether the pool's balancer reads weights as it picks: a share
    /// given for another is said to do nothing, once.
    pub weighs: bool,
    /// Its idle connections, closed when the agent says `maint`.
    pub idle: Arc<IdleConns>,
    /// The counters of every target of its pool, whose requests waiting
    /// for a slot are woken by a change, as by one on the admin listener.
    pub pool: Arc<[Arc<TargetStats>]>,
    /// Its own among them.
    pub index: usize,
}

/// How often and how long agents are asked.
#[derive(Clone, Copy, Debug)]
pub struct AgentTiming {
    pub interval: Duration,
    /// The longest one question may take, connecting included.
    pub timeout: Duration,
}

/// Whether the agent says the target is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Said {
    Up,
    /// The word, and the reason after `#` if any.
    Down(String),
}

/// One answer, read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub percent: Option<u32>,
    pub state: Option<AdminState>,
    pub health: Option<Said>,
    /// `maxconn:N`: the most requests at once (0: no limit).
    pub max_conns: Option<usize>,
    /// Words not understood.
    pub ignored: Vec<String>,
}

/// Reads an agent's answer: its first line, its words separated by
/// blanks or commas; a later word of a kind wins over an earlier one.
pub fn parse(answer: &[u8]) -> Answer {
    let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let (words, reason) = match line.split_once('#') {
        Some((words, reason)) => (words, reason.trim()),
        None => (&*line, ""),
    };
    let mut read = Answer::default();
    for word in words
        .split([' ', '\t', ',', '\r'])
        .filter(|w| !w.is_empty())
    {
        let lower = word.to_ascii_lowercase();
        match lower.as_str() {
            "ready" => read.state = Some(AdminState::Ready),
            "drain" => read.state = Some(AdminState::Drain),
            "maint" => read.state = Some(AdminState::Maint),
            "up" => read.health = Some(Said::Up),
            "down" | "fail" | "failed" | "stopped" => {
                let said = match reason {
                    "" => lower,
                    reason => format!("{lower}: {reason}"),
                };
                read.health = Some(Said::Down(said));
            }
            _ => match (percent(&lower), max_conns(&lower)) {
                (Some(p), _) => read.percent = Some(p),
                (_, Some(n)) => read.max_conns = Some(n),
                _ => read.ignored.push(word.to_string()),
            },
        }
    }
    read
}

/// `75%`: 75.
fn percent(word: &str) -> Option<u32> {
    let digits = word.strip_suffix('%')?;
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&p| p <= MAX_PERCENT)
}

/// `maxconn:30`: 30.
fn max_conns(word: &str) -> Option<usize> {
    let digits = word.strip_prefix("maxconn:")?;
    if digits.is_empty() || digits.len() > 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n <= MAX_CONNS)
}

/// `percent` of `configured`, rounded, at least 1 (0% drains instead)
/// and at most the highest weight.
fn share(configured: u32, percent: u32) -> u32 {
    let weight = (u64::from(configured) * u64::from(percent) + 50) / 100;
    weight.clamp(1, u64::from(MAX_WEIGHT)) as u32
}

impl Agent {
    /// Applies an answer: the weight and the state where the agent's
    /// word changed since its last answer, whether it is up every time.
    fn apply(&self, answer: &Answer, warned_weighs: &mut bool) {
        let admin: &AdminCell = self.health.admin();
        let before = admin.agent_heard(answer.percent, answer.state);
        let mut state = answer.state.filter(|&s| Some(s) != before.state);
        if let Some(p) = answer.percent.filter(|&p| Some(p) != before.percent) {
            if p == 0 {
                // HAProxy's weight 0: no new requests, as `drain`.
                state = state.or(Some(AdminState::Drain));
            } else {
                // Back from the 0% that drained it, unless the agent's own
                // `drain` still stands.
                let drained_by_zero = before.percent == Some(0)
                    && before.state != Some(AdminState::Drain)
                    && admin.get() == AdminState::Drain;
                if drained_by_zero {
                    state = state.or(Some(AdminState::Ready));
                }
                if self.weighs {
                    let weight = share(self.configured_weight, p);
                    admin.set_weight(Some(weight));
                    log::info!(
                        "target {}: its agent gives it weight {weight} ({p}%)",
                        self.name
                    );
                } else if !std::mem::replace(warned_weighs, true) {
                    log::warn!(
                        "target {}: its agent gives it {p}% of its weight, which this pool's \
                         balance, round_robin, does not read (every other one does)",
                        self.name
                    );
                }
            }
        }
        if let Some(state) = state {
            let was = admin.get();
            if was != state {
                let pool = self.pool.iter().map(|stats| &**stats);
                set_admin_state(&self.health, &self.idle, pool, state);
                log::info!(
                    "target {}: its agent sets it {state} (was {was})",
                    self.name
                );
            }
        }
        // Every answer: nothing else sets it while the proxy runs.
        let own = &self.pool[self.index];
        if let Some(limit) = answer.max_conns.filter(|&n| n != own.waiting.limit()) {
            own.waiting.set_limit(limit);
            // Requests waiting for another target may take this one now.
            for stats in self.pool.iter() {
                stats.waiting.wake_all();
            }
            let said = match limit {
                0 => "no limit".to_string(),
                n => n.to_string(),
            };
            log::info!("target {}: its agent gives it max_conns {said}", self.name);
        }
        match &answer.health {
            Some(Said::Up) => self.health.agent_says(None),
            Some(Said::Down(why)) => self.health.agent_says(Some(why)),
            None => {}
        }
    }
}

impl Health {
    /// What its agent says of it: up (`None`), or down and why. Down, it
    /// is out of rotation (as failing its health checks) until the agent
    /// says `up`.
    fn agent_says(&self, down: Option<&str>) {
        let mut state = self.state.lock();
        match down {
            Some(why) if !state.agent_down => {
                state.agent_down = true;
                if !std::mem::replace(&mut state.announced_down, true) {
                    let why = crate::config::printable(why);
                    log::warn!("target {} down: its agent says {why}", self.name());
                }
            }
            None if state.agent_down => {
                state.agent_down = false;
                let now = Instant::now();
                let passive_out = state.down_until.is_some_and(|until| now < until);
                if !state.active_down && !passive_out {
                    state.back_since = Some(now);
                    state.announce_up(&self.name(), ": its agent says up");
                }
            }
            _ => {}
        }
    }

    /// Its agent is no longer asked (a reload took `agent_port` away):
    /// the `down` it said and the weight it gave are let go.
    pub fn agent_gone(&self) {
        self.agent_says(None);
        self.admin().agent_gone();
    }
}

/// Why an agent gave no answer.
#[derive(Debug)]
enum AskError {
    Connect(io::Error),
    Send(io::Error),
    Receive(io::Error),
    TooLong,
}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::Connect(e) => write!(f, "cannot connect: {e}"),
            AskError::Send(e) => write!(f, "cannot send agent_send's text: {e}"),
            AskError::Receive(e) => write!(f, "no answer: {e}"),
            AskError::TooLong => write!(f, "an answer longer than {MAX_ANSWER} bytes"),
        }
    }
}

/// Connects to the agent, sends it `send` (`agent_send`) if given, and
/// reads its answer, up to its first line's end or the connection's,
/// within `timeout` in all.
fn ask(addr: SocketAddr, send: Option<&[u8]>, timeout: Duration) -> Result<Vec<u8>, AskError> {
    let deadline = Instant::now() + timeout;
    let mut conn = TcpStream::connect_timeout(&addr, timeout).map_err(AskError::Connect)?;
    if let Some(text) = send {
        let left = deadline.saturating_duration_since(Instant::now());
        (conn.set_write_timeout(Some(left.max(Duration::from_millis(1)))))
            .and_then(|()| conn.write_all(text))
            .map_err(AskError::Send)?;
    }
    let mut answer = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AskError::Receive(io::ErrorKind::TimedOut.into()));
        }
        conn.set_read_timeout(Some(left))
            .map_err(AskError::Receive)?;
        match conn.read(&mut buf) {
            Ok(0) => return Ok(answer),
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.contains(&b'\n') {
                    return Ok(answer);
                }
                if answer.len() > MAX_ANSWER {
                    return Err(AskError::TooLong);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(AskError::Receive(e)),
        }
    }
}

/// Asks `agent` each interval until `stopped` is dropped.
pub(super) fn ask_loop(agent: &Agent, timing: AgentTiming, stopped: &Receiver<()>) {
    let mut warned_weighs = false;
    let mut warned_words = false;
    let mut first = true;
    loop {
        // Asked at once at first: what it says counts from the start.
        if !std::mem::take(&mut first) {
            match stopped.recv_timeout(agent.interval.unwrap_or(timing.interval)) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
        let answer = ask(agent.addr, agent.send.as_deref(), timing.timeout);
        // Stopped while asking: a new agent thread (a reload's) may have
        // its own answer applied by now.
        if matches!(stopped.try_recv(), Err(TryRecvError::Disconnected)) {
            return;
        }
        match answer {
            Ok(bytes) => {
                let answer = parse(&bytes);
                if !answer.ignored.is_empty() && !std::mem::replace(&mut warned_words, true) {
                    log::warn!(
                        "target {}: its agent at {} said what is not acted on: {}",
                        agent.name,
                        agent.addr,
                        crate::config::printable(&answer.ignored.join(" "))
                    );
                }
                agent.apply(&answer, &mut warned_weighs);
            }
            Err(e) => log::debug!("agent of target {} at {}: {e}", agent.name, agent.addr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::health::Probed;

    #[test]
    fn an_answer_is_read_word_by_word() {
        let read = parse(b"75% drain\n");
        assert_eq!(read.percent, Some(75));
        assert_eq!(read.state, Some(AdminState::Drain));
        assert_eq!(read.health, None);

        let read = parse(b"UP,Ready , 100%\r\nmaint\n");
        assert_eq!(
            (read.percent, read.state, read.health),
            (Some(100), Some(AdminState::Ready), Some(Said::Up)),
            "the first line alone, in any case"
        );

        let read = parse(b"stopped # disk full, back at 10:00");
        assert_eq!(
            read.health,
            Some(Said::Down("stopped: disk full, back at 10:00".into()))
        );
        assert_eq!(parse(b"fail").health, Some(Said::Down("fail".into())));
        assert_eq!(parse(b"down up").health, Some(Said::Up), "the later wins");

        let read = parse(b"maxconn:30 50 %5 12.5% 10001% maxconn:x maxconn:1000001 0%");
        assert_eq!((read.percent, read.max_conns), (Some(0), Some(30)));
        assert_eq!(
            read.ignored,
            [
                "50",
                "%5",
                "12.5%",
                "10001%",
                "maxconn:x",
                "maxconn:1000001"
            ]
        );
        assert_eq!(parse(b"MAXCONN:0").max_conns, Some(0));
        assert_eq!(parse(b"Maint").state, Some(AdminState::Maint));
        // The highest of each, in full; a sign is no digit.
        let read = parse(b"10000% maxconn:1000000 +5% maxconn:+5");
        assert_eq!(
            (read.percent, read.max_conns),
            (Some(10_000), Some(1_000_000))
        );
        assert_eq!(read.ignored, ["+5%", "maxconn:+5"]);
        assert_eq!(parse(b""), Answer::default());
    }

    #[test]
    fn the_agent_and_the_active_checks_each_hold_a_target_out_until_they_let_it_go() {
        use super::super::test_support::{health, probing};
        use super::super::ProbeError;
        let h = health(1, 10);
        let checks = probing(1, 1);
        let now = Instant::now();
        h.agent_says(Some("down"));
        h.probed(0, now, &checks, Ok(Probed::Passed));
        assert!(!h.usable(now), "good probes do not overrule the agent");
        assert!(h.fallback_rank().0, "last among the targets to try");
        h.probed(0, now, &checks, Err(ProbeError::Status(503)));
        h.agent_says(None);
        assert!(!h.usable(now), "the checks still hold it");
        h.probed(0, now, &checks, Ok(Probed::Passed));
        assert!(h.usable(now));

        h.agent_says(Some("stopped"));
        h.agent_gone();
        assert!(h.usable(now), "no agent, nothing said");
    }

    #[test]
    fn the_agent_saying_up_brings_back_only_a_target_it_held_out() {
        use super::super::test_support::health;
        use crate::upstream::balancer::FULL_SHARE;
        let period = Duration::from_secs(100);
        // Up, said of a target it never said down: no slow start anew.
        let h = health(1, 10);
        h.agent_says(None);
        assert_eq!(h.share(Instant::now(), period), FULL_SHARE);

        // Down from its agent alone, then up: back, slowly.
        h.agent_says(Some("down"));
        h.agent_says(None);
        assert!(h.usable(Instant::now()));
        assert!(h.share(Instant::now(), period) < FULL_SHARE);

        // Down, then out for failing too: up from the agent does not end
        // the passive hold, whose end starts its slow start.
        let h = health(1, 10);
        let now = Instant::now();
        h.agent_says(Some("down"));
        h.failed(now, "refused");
        h.agent_says(None);
        let until = now + Duration::from_secs(10);
        assert!(!h.usable(now));
        assert_eq!(h.share(until + period / 2, period), FULL_SHARE / 2);
    }

    #[test]
    fn an_answer_ends_at_its_line_or_its_connection_within_a_kilobyte() {
        use std::io::Write as _;
        // An agent that writes `answer`, then closes.
        let answered = |answer: Vec<u8>| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let agent = std::thread::spawn(move || {
                let (mut conn, _) = listener.accept().unwrap();
                let _ = conn.write_all(&answer);
            });
            let read = ask(addr, None, Duration::from_secs(10));
            agent.join().unwrap();
            read
        };
        assert_eq!(answered(b"75%".to_vec()).unwrap(), b"75%");
        let most = vec![b' '; MAX_ANSWER];
        assert_eq!(answered(most.clone()).unwrap(), most);
        let over = vec![b' '; MAX_ANSWER + 1];
        assert!(matches!(answered(over), Err(AskError::TooLong)));
    }

    #[test]
    fn a_share_of_the_configured_weight_is_rounded_and_at_least_one() {
        assert_eq!(share(4, 50), 2);
        assert_eq!(share(3, 50), 2, "1.5 rounds up");
        assert_eq!(share(1, 10), 1, "never 0: 0% drains");
        assert_eq!(share(2, 250), 5);
        assert_eq!(share(10_000, 10_000), MAX_WEIGHT);
    }
}
