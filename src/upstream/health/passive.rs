//! Passive health: the proxy's own exchanges with a target counted, and
//! `max_fails` failures within `fail_timeout` taking it out for
//! `fail_timeout` (nginx's model).

use super::{Health, Passive};
use std::time::Instant;

impl Health {
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
            if !state.checked_down() {
                state.announce_up(&self.name(), ": max_fails or fail_timeout changed");
            }
        }
    }

    pub fn passive(&self) -> Passive {
        self.state.lock().settings
    }

    /// Whether requests may go to this target at `now`.
    pub fn usable(&self, now: Instant) -> bool {
        let state = self.state.lock();
        !state.checked_down() && state.down_until.is_none_or(|until| now >= until)
    }

    /// For choosing among down targets, lowest first: whether its active
    /// checks or its agent hold it down, then when it last failed
    /// (`None`: never).
    pub fn fallback_rank(&self) -> (bool, Option<Instant>) {
        let state = self.state.lock();
        (state.checked_down(), state.last_failure)
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
        if !state.checked_down() {
            state.announce_up(&self.name(), "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{health, probing};
    use super::super::ProbeError;
    use super::*;
    use std::time::Duration;

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
    fn a_target_is_said_down_once_and_up_once_back_unless_its_checks_hold_it() {
        use crate::test_log::logged;
        let t0 = Instant::now();
        let [later, after] = [1, 2].map(|s| t0 + Duration::from_secs(s));
        let h = health(1, 10);
        let ((), lines) = logged(|| {
            h.failed(t0, "refused");
            h.failed(later, "refused");
            h.succeeded(after);
            h.failed(after, "refused");
            h.set_passive(Passive::default());
        });
        let down = "WARN target t:1 down: refused (1 failure(s) within 10s; out for 10s)";
        let changed = "INFO target t:1 up: max_fails or fail_timeout changed";
        assert_eq!(lines, [down, "INFO target t:1 up", down, changed]);
        // Held down by its checks: neither says it is up.
        let h = health(1, 10);
        h.probed(0, t0, &probing(1, 1), Err(ProbeError::Status(500)));
        let ((), lines) = logged(|| {
            h.failed(later, "refused");
            h.succeeded(after);
            h.failed(after, "refused");
            h.set_passive(Passive::default());
        });
        assert_eq!(lines, Vec::<String>::new());
    }

    #[test]
    fn a_reload_applies_its_passive_settings_to_the_health_it_keeps() {
        let h = health(1, 3600);
        let now = Instant::now();
        h.set_passive(Passive {
            max_fails: 3,
            fail_timeout: Duration::from_secs(10),
        });
        assert_eq!(h.passive().max_fails, 3);
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
}
