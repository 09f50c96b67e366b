//! Finding a request's entry, through the Vary index.

use super::{Cache, Entry};
use crate::cache::policy;
use crate::http::Headers;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Cache {
    /// The key a request's response is (or would be) stored under.
    pub fn variant_key(&self, primary: &str, request: &Headers) -> String {
        let state = self.state.lock();
        match state.vary.get(primary) {
            Some(v) => policy::variant_key(primary, &v.names, request),
            None => primary.to_string(),
        }
    }

    /// The stored response for a request, promoted to most recently used.
    pub fn lookup(&self, primary: &str, request: &Headers) -> Option<Arc<Entry>> {
        let mut state = self.state.lock();
        let found = match state.vary.get(primary) {
            Some(v) => {
                let key = policy::variant_key(primary, &v.names, request);
                state.lru.get(&key).cloned()
            }
            None => state.lru.get(primary).cloned(),
        };
        drop(state);
        // Load first: a store on every hit would bounce the cache line
        // between cores.
        if found.is_some() && !self.touched.load(Ordering::Relaxed) {
            self.touched.store(true, Ordering::Relaxed);
        }
        found
    }

    /// Whether entries were read since the last call (recency changed).
    pub fn take_touched(&self) -> bool {
        self.touched.swap(false, Ordering::Relaxed)
    }
}
