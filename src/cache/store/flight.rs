//! Coalescing concurrent misses: the first request for a key leads, the
//! others wait for it.

use super::Cache;
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::time::Duration;

impl Cache {
    /// Coalescing: the first request for `key` leads (goes to the origin);
    /// the others follow (wait for it, then look again). A key whose last
    /// response could not be stored is not coalesced for a while
    /// ([`FlightGuard::not_stored`]).
    pub fn join_flight(self: &Arc<Self>, key: &str) -> Flight {
        if self.passes.holds(key) {
            return Flight::Alone;
        }
        self.join_refresh(key)
    }

    /// [`Cache::join_flight`] for the revalidation of a stored entry:
    /// never `Alone`. A key not coalesced for a while may hold an entry
    /// all the same (stored by a request that waited for no flight, a
    /// `no-cache` one, while the leader's answer, a 503, was on its way),
    /// and one revalidation at a time is what `stale-while-revalidate`
    /// promises the origin.
    pub fn join_refresh(self: &Arc<Self>, key: &str) -> Flight {
        let mut flights = self.flights.lock();
        if let Some(flight) = flights.get(key) {
            return Flight::Follower(flight.clone());
        }
        let flight = Arc::new(Waiter::default());
        flights.insert(key.to_string(), flight.clone());
        Flight::Leader(FlightGuard {
            cache: self.clone(),
            key: key.to_string(),
            flight,
        })
    }
}

/// A request's role for a missing key.
pub enum Flight {
    Leader(FlightGuard),
    Follower(Arc<Waiter>),
    /// Not coalesced: the key's last response could not be stored.
    Alone,
}

/// Held by the leader; dropping it (done or failed) releases the followers.
pub struct FlightGuard {
    cache: Arc<Cache>,
    key: String,
    flight: Arc<Waiter>,
}

impl FlightGuard {
    /// The leader's response may not be stored, whoever asks: the key's
    /// next misses go to the origin each on its own for a while.
    pub fn not_stored(self) {
        self.cache.passes.remember(&self.key);
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.cache.flights.lock().remove(&self.key);
        *self.flight.done.lock() = true;
        self.flight.cv.notify_all();
    }
}

#[derive(Default)]
pub struct Waiter {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Waiter {
    /// Waits until the leader is done, at most `timeout`.
    pub fn wait(&self, timeout: Duration) {
        let mut done = self.done.lock();
        let deadline = std::time::Instant::now() + timeout;
        while !*done {
            if self.cv.wait_until(&mut done, deadline).timed_out() {
                return;
            }
        }
    }
}
