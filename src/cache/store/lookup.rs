//! Finding a request's entry, through the Vary index.

use super::{Cache, Entry};
use crate::cache::policy;
use crate::http::Headers;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

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

    /// [`Cache::lookup`], and on a miss the disk tier's entry for the
    /// request, if any, copied back to memory (rebuilt under `settings`,
    /// the request's, as a snapshot's record is; its file stays) and
    /// served as any hit. A purge while its file was read keeps it out of
    /// memory: served to this request, which began before it, but not
    /// kept.
    pub fn lookup_or_promote(
        &self,
        primary: &str,
        request: &Headers,
        settings: &policy::Settings,
    ) -> Option<Arc<Entry>> {
        if let Some(found) = self.lookup(primary, request) {
            return Some(found);
        }
        let disk = self.disk.as_ref()?;
        let names = (self.state.lock().vary.get(primary)).map(|v| v.names.clone());
        // A miss that is not on disk either (the most) costs no more.
        let key = disk.held_key(primary, names.as_deref(), request)?;
        let since = self.fill_begun();
        let promoted = disk.read(&key).and_then(|(record, soft, id)| {
            let entry = Entry::from_record(record, settings)?.read_from_disk(id);
            Some(Arc::new(match soft {
                Some(at) => entry.outdated(UNIX_EPOCH + Duration::from_millis(at)),
                None => entry,
            }))
        });
        if let Some(entry) = &promoted {
            self.insert_checked(entry.clone(), Some(since), None);
        }
        self.fill_ended(since);
        promoted
    }

    /// Whether entries were read since the last call (recency changed).
    pub fn take_touched(&self) -> bool {
        self.touched.swap(false, Ordering::Relaxed)
    }
}
