//! [`Current`]: the generation of the settings in force, swapped whole by
//! a reload.

use super::Shared;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The generation of [`Shared`] in force, swapped whole by a reload. A
/// connection keeps its copy and checks the generation counter (one
/// atomic load) per request.
pub struct Current {
    shared: RwLock<Arc<Shared>>,
    /// Bumped by every reload, so connections notice one with a plain
    /// load instead of taking the lock and touching the `Arc`'s counter on
    /// every request (both are writes to memory every core shares).
    generation: AtomicU64,
    /// See [`Current::installing`].
    installing: parking_lot::Mutex<()>,
}

impl Current {
    pub fn new(shared: Shared) -> Current {
        Current {
            shared: RwLock::new(Arc::new(shared)),
            generation: AtomicU64::new(0),
            installing: parking_lot::Mutex::new(()),
        }
    }

    /// Held while a new generation is built from the one in force and put
    /// in its place (a reload, new addresses for targets' names), and
    /// while the admin listener changes targets' states: none then works
    /// from a generation another is replacing (a state set on the old
    /// targets only, a new target built from states about to change).
    pub fn installing(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.installing.lock()
    }

    pub fn get(&self) -> Arc<Shared> {
        self.shared.read().clone()
    }

    /// Counts the reloads.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Brings a connection's copy up to date if a reload happened since it
    /// was taken (generation `seen`).
    pub fn refresh(&self, held: &mut Arc<Shared>, seen: &mut u64) {
        let now = self.generation.load(Ordering::Acquire);
        if now != *seen {
            *held = self.get();
            *seen = now;
        }
    }

    /// Puts `next` in force; returns the generation it replaces.
    pub fn replace(&self, next: Shared) -> Arc<Shared> {
        let old = std::mem::replace(&mut *self.shared.write(), Arc::new(next));
        self.generation.fetch_add(1, Ordering::Release);
        old
    }
}
