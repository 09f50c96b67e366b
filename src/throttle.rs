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
}

impl Throttle {
    /// Nothing said yet (for a `static`).
    pub const fn new() -> Self {
        Throttle { warned: None }
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

    /// A success: whether it ends failures that were said.
    pub fn recovered(&mut self) -> bool {
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
}
