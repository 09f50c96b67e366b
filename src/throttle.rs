//! Saying a lasting failure (a full disk under the access log or the
//! snapshot) when it starts, again at most once a minute while it lasts,
//! and when it ends, rather than at every retry.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// How often a failure that goes on is said again: nginx repeats its
/// alerts at most once a minute too.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Throttle {
    /// When the failure was last said; `None` while all is well.
    warned: Option<Instant>,
    /// What [`Throttle::failed_because`] was last told failed.
    cause: Option<String>,
}

impl Throttle {
    /// Nothing said yet (for a `static`).
    pub const fn new() -> Self {
        Throttle {
            warned: None,
            cause: None,
        }
    }

    /// A failure at `now`: whether to say so.
    pub fn failed(&mut self, now: Instant) -> bool {
        let say = self
            .warned
            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY);
        if say {
            self.warned = Some(now);
        }
        say
    }

    /// A failure at `now` of `cause` (its message): as [`Throttle::failed`],
    /// but a cause other than the last is said at once. A full disk made
    /// room on, then a directory made read-only, is news to the operator
    /// who just fixed the first: not for up to a minute later.
    pub fn failed_because(&mut self, now: Instant, cause: &str) -> bool {
        let other = self.cause.as_deref() != Some(cause);
        if other {
            self.cause = Some(cause.to_owned());
            self.warned = None;
        }
        self.failed(now)
    }

    /// A success: whether it ends failures that were said.
    pub fn recovered(&mut self) -> bool {
        self.cause = None;
        self.warned.take().is_some()
    }
}

/// A [`Throttle`] in a `static`, for a failure any thread may meet
/// (threads that cannot be started, descriptors run out).
#[derive(Default)]
pub struct OnceAMinute(Mutex<Throttle>);

impl OnceAMinute {
    pub const fn new() -> Self {
        OnceAMinute(Mutex::new(Throttle::new()))
    }

    /// A failure now: whether to say so.
    pub fn due(&self) -> bool {
        self.0.lock().failed(Instant::now())
    }

    /// A success: whether it ends failures that were said.
    pub fn recovered(&self) -> bool {
        self.0.lock().recovered()
    }
}

/// A [`Throttle`] that counts what it kept quiet, for a failure every
/// request may meet (a dead backend under load): said once a minute with
/// how many went unsaid since, rather than once a request.
#[derive(Debug, Default)]
pub struct Counted(Mutex<(Throttle, u64)>);

impl Counted {
    /// A failure of `cause` at `now` (as [`Throttle::failed_because`]):
    /// `Some(n)` to say it, `n` the failures not said since the last one
    /// that was; `None` to keep quiet.
    pub fn failed_because(&self, now: Instant, cause: &str) -> Option<u64> {
        let mut guard = self.0.lock();
        let (throttle, quiet) = &mut *guard;
        if throttle.failed_because(now, cause) {
            Some(std::mem::take(quiet))
        } else {
            *quiet += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_the_start_then_once_per_interval_then_the_end() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert!(!t.recovered(), "nothing failed yet");
        assert!(t.failed(t0));
        assert!(!t.failed(t0 + Duration::from_secs(1)));
        assert!(!t.failed(t0 + WARN_EVERY - Duration::from_millis(1)));
        assert!(t.failed(t0 + WARN_EVERY));
        assert!(t.recovered());
        assert!(!t.recovered());
        assert!(t.failed(t0 + WARN_EVERY + Duration::from_secs(1)));
    }

    #[test]
    fn another_cause_is_said_at_once_the_same_once_a_minute() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        let second = |s| t0 + Duration::from_secs(s);
        assert!(t.failed_because(t0, "no space left"));
        assert!(!t.failed_because(second(1), "no space left"));
        assert!(t.failed_because(second(2), "read-only file system"));
        assert!(!t.failed_because(second(3), "read-only file system"));
        assert!(t.failed_because(second(4), "no space left"));
        assert!(!t.failed_because(second(5), "no space left"));
        assert!(t.failed_because(second(4) + WARN_EVERY, "no space left"));
        assert!(t.recovered());
        assert!(
            t.failed_because(second(70), "no space left"),
            "a new failure"
        );
    }

    #[test]
    fn counted_says_how_many_it_kept_quiet() {
        let c = Counted::default();
        let t0 = Instant::now();
        let second = |s| t0 + Duration::from_secs(s);
        assert_eq!(c.failed_because(t0, "refused"), Some(0));
        assert_eq!(c.failed_because(second(1), "refused"), None);
        assert_eq!(c.failed_because(second(2), "refused"), None);
        assert_eq!(c.failed_because(second(3), "timed out"), Some(2));
        assert_eq!(c.failed_because(second(4), "timed out"), None);
        assert_eq!(
            c.failed_because(second(3) + WARN_EVERY, "timed out"),
            Some(1)
        );
    }
}
