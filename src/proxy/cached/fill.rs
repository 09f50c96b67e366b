//! Storing a response from the origin as it is relayed.

use crate::cache::policy::{self, Lifetime, Settings};
use crate::cache::store::{Fill, FlightGuard};
use crate::cache::{Cache, Entry};
use crate::http::RequestHead;
use crate::proxy::origin::Fetched;
use crate::proxy::relay::Tee;
use std::cell::OnceCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

/// A full response that may be stored, and how.
pub(super) struct Storing<'a> {
    pub(super) request: &'a RequestHead,
    pub(super) primary: &'a str,
    pub(super) lifetime: Lifetime,
    pub(super) response_time: SystemTime,
    /// The key's flight, released once the entry is stored.
    pub(super) flight: Option<FlightGuard>,
    /// Whether the answer, found too large, is one for the URL (see
    /// `serve`).
    pub(super) for_the_url: bool,
    pub(super) settings: Arc<Settings>,
    /// Where the entry goes too, stored or not (an invalidation meanwhile
    /// keeps it out of the cache), for a client answered from it.
    pub(super) kept: Option<Rc<OnceCell<Arc<Entry>>>>,
}

impl Storing<'_> {
    /// A tee that stores the response `fetched` brings once its body is
    /// whole.
    pub(super) fn tee<'c>(self, fetched: &Fetched<'_>, fill: Fill, cache: &'c Cache) -> Tee<'c> {
        let vary = self.settings.key_names(&fetched.response);
        let key = if vary.is_empty() {
            self.primary.to_string()
        } else {
            policy::variant_key(self.primary, &vary, &self.request.headers)
        };
        let birth = policy::birth_time(&fetched.response, fetched.request_time, self.response_time);
        let head = fetched.response.clone();
        let lifetime = self.lifetime;
        let flight = self.flight;
        let for_the_url = self.for_the_url;
        let settings = self.settings;
        let kept = self.kept;
        Tee::new(cache.max_object_size(), move |body: Option<Vec<u8>>| {
            let Some(body) = body else {
                // Too large, found out as it came (chunked, or until the
                // close): as one announced too large, the next misses of
                // the URL do not wait on each other (see `not_stored`).
                if let Some(flight) = flight.filter(|_| for_the_url) {
                    flight.not_stored();
                }
                return;
            };
            let entry = Arc::new(Entry::new(
                key,
                head,
                body.into(),
                birth,
                lifetime,
                &settings,
            ));
            cache.insert_filled(entry.clone(), &fill);
            if let Some(kept) = kept {
                let _ = kept.set(entry);
            }
            drop(flight);
        })
    }
}

/// Whether the body `fetched` announces fits `max_object_size` (one of
/// unknown length is found out as it streams).
pub(super) fn fits(fetched: &Fetched<'_>, cache: &Cache) -> bool {
    crate::http::body::content_length(&fetched.response.headers)
        .ok()
        .flatten()
        .is_none_or(|n| n <= cache.max_object_size())
}
