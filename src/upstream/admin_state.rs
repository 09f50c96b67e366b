//! What the operator says of a target through the admin listener, as
//! HAProxy's `set server be/srv state ready|drain|maint`:
//!
//! - `ready`: in rotation, as far as its health lets it be;
//! - `drain`: no new requests from the balancer, but clients that a
//!   `sticky_cookie` ties to it keep coming, and the health checks go on;
//! - `maint`: no request at all, not even the last-resort try when every
//!   other target is down; its health checks pause and its idle
//!   connections are closed.
//!
//! Requests in flight finish in either case. The state is one atomic per
//! target, read by every pick without a lock, and kept (with the target's
//! health) by a reload that keeps the target; a restart forgets it, unless
//! `state_file` keeps it (see [`super::state_file`]). So is the weight the
//! operator gives a target, while its `weight=` is as it was.

use parking_lot::Mutex;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// A target's administrative state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdminState {
    #[default]
    Ready,
    Drain,
    Maint,
}

impl AdminState {
    /// Every state, in the order metrics list them.
    pub const ALL: [AdminState; 3] = [AdminState::Ready, AdminState::Drain, AdminState::Maint];

    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }

    /// Whether the balancer may give the target a new request.
    pub fn takes_new_requests(self) -> bool {
        self == AdminState::Ready
    }

    /// Whether a client stuck to the target (`sticky_cookie`) still goes
    /// there: a drained target serves the sessions it holds.
    pub fn takes_sticky_requests(self) -> bool {
        self != AdminState::Maint
    }

    fn from_u8(n: u8) -> AdminState {
        match n {
            1 => AdminState::Drain,
            2 => AdminState::Maint,
            _ => AdminState::Ready,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            AdminState::Ready => 0,
            AdminState::Drain => 1,
            AdminState::Maint => 2,
        }
    }
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is none of `ready`, `drain`, `maint`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown target state `{0}` (expected ready, drain or maint)")]
pub struct UnknownState(pub String);

impl FromStr for AdminState {
    type Err = UnknownState;

    /// One of the names, in any case, with blanks around it (as `curl -d`
    /// or `echo` sends it) ignored.
    fn from_str(s: &str) -> Result<AdminState, UnknownState> {
        let name = s.trim();
        AdminState::ALL
            .into_iter()
            .find(|state| name.eq_ignore_ascii_case(state.as_str()))
            .ok_or_else(|| UnknownState(name.to_string()))
    }
}

/// The state of one target, shared by the request threads, the checker
/// and the admin listener, and the weight the operator gave it there
/// (HAProxy's `set server be/srv weight`) or its agent gave it.
#[derive(Debug, Default)]
pub struct AdminCell {
    state: AtomicU8,
    /// 0: none given, the configured weight stands.
    weight: AtomicU32,
    /// What the target's agent said last (see [`AgentHeard`]).
    agent: Mutex<AgentHeard>,
}

/// What a target's agent said last of the kinds applied when its answer
/// changes (see `health::agent`): kept with the state, through a reload
/// and a re-resolution, so that an answer already applied is not applied
/// again over an operator's change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentHeard {
    /// The share of its configured weight, in percent.
    pub percent: Option<u32>,
    pub state: Option<AdminState>,
}

impl AdminCell {
    pub fn get(&self) -> AdminState {
        // Relaxed: the state orders nothing else; a pick that still sees
        // the old state for a moment is one that began before the change.
        AdminState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Sets the state; returns the one it replaced.
    pub fn set(&self, state: AdminState) -> AdminState {
        AdminState::from_u8(self.state.swap(state.to_u8(), Ordering::Relaxed))
    }

    /// The weight the operator gave, if any.
    pub fn weight(&self) -> Option<u32> {
        Some(self.weight.load(Ordering::Relaxed)).filter(|&w| w > 0)
    }

    /// Gives the target `weight` (`None`: back to the configured one).
    pub fn set_weight(&self, weight: Option<u32>) {
        self.weight.store(weight.unwrap_or(0), Ordering::Relaxed);
    }

    /// Records what the agent said now, of each kind it named; returns
    /// what it had said before.
    pub fn agent_heard(&self, percent: Option<u32>, state: Option<AdminState>) -> AgentHeard {
        let mut heard = self.agent.lock();
        let before = *heard;
        heard.percent = percent.or(heard.percent);
        heard.state = state.or(heard.state);
        before
    }

    /// The configured weight is back (a reload changed it): the agent's
    /// share, even unchanged, is applied again at its next answer.
    pub fn reset_weight(&self) {
        self.set_weight(None);
        self.agent.lock().percent = None;
    }

    /// The target's agent is no longer asked: the weight it gave goes
    /// with it (its state stays, as any state set, until changed), and
    /// an agent asked again later has its word applied afresh.
    pub fn agent_gone(&self) {
        let heard = std::mem::take(&mut *self.agent.lock());
        if heard.percent.is_some_and(|p| p > 0) {
            self.set_weight(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_any_case_with_blanks_around() {
        assert_eq!("drain".parse(), Ok(AdminState::Drain));
        assert_eq!(" MAINT\r\n".parse(), Ok(AdminState::Maint));
        assert_eq!("Ready\n".parse(), Ok(AdminState::Ready));
        for bad in ["", "drained", "ready maint", "up"] {
            assert!(bad.parse::<AdminState>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_cell_starts_ready_and_says_what_it_replaced() {
        let cell = AdminCell::default();
        assert_eq!(cell.get(), AdminState::Ready);
        assert_eq!(cell.set(AdminState::Drain), AdminState::Ready);
        assert_eq!(cell.set(AdminState::Maint), AdminState::Drain);
        assert_eq!(cell.get(), AdminState::Maint);
        for state in AdminState::ALL {
            cell.set(state);
            assert_eq!(cell.get(), state);
        }
    }

    #[test]
    fn a_cell_holds_a_weight_given_until_it_is_taken_back() {
        let cell = AdminCell::default();
        assert_eq!(cell.weight(), None);
        cell.set_weight(Some(7));
        assert_eq!((cell.weight(), cell.get()), (Some(7), AdminState::Ready));
        cell.set(AdminState::Drain);
        assert_eq!(cell.weight(), Some(7), "the state leaves it alone");
        cell.set_weight(None);
        assert_eq!(cell.weight(), None);
    }

    #[test]
    fn the_weight_an_agent_gave_goes_with_it_and_the_operators_stays() {
        let cell = AdminCell::default();
        cell.agent_heard(Some(50), None);
        cell.set_weight(Some(3));
        cell.agent_gone();
        assert_eq!(cell.weight(), None);
        assert_eq!(cell.agent_heard(None, None), AgentHeard::default());
        // An agent that said 0% drained the target and gave no weight.
        cell.agent_heard(Some(0), Some(AdminState::Drain));
        cell.set_weight(Some(4));
        cell.agent_gone();
        assert_eq!(cell.weight(), Some(4));
    }

    #[test]
    fn only_ready_takes_new_requests_and_only_maint_refuses_sticky_ones() {
        use AdminState::*;
        assert!(Ready.takes_new_requests());
        assert!(!Drain.takes_new_requests() && !Maint.takes_new_requests());
        assert!(Ready.takes_sticky_requests() && Drain.takes_sticky_requests());
        assert!(!Maint.takes_sticky_requests());
    }
}
