//! Slow start: the part of its weight a target that came back into
//! rotation gets, growing over `slow_start` (HAProxy's `slowstart`).

use super::Health;
use crate::upstream::balancer::FULL_SHARE;
use std::time::{Duration, Instant};

impl Health {
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
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{health, probing};
    use super::super::{AdminState, Passive, ProbeError, Probed};
    use super::*;

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
        checked.probed(0, t0 + s(40), &settings, Ok(Probed::Passed));
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
        h.probed(0, t0 + s(4), &settings, Ok(Probed::Passed));
        // The mark ended at t0 + 10: back (and ramping) since then.
        h.probed(0, t0 + s(30), &settings, Ok(Probed::Passed));
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
}
