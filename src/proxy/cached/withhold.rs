//! A miss's own conditions and range withheld from the origin, and
//! the client answered from what is stored.

use super::answer::serve_entry;
use super::ranges::asks_a_range;
use super::{Answering, Status};
use crate::cache::policy::{self, CacheControl};
use crate::cache::{Cache, Entry};
use crate::http::RequestHead;
use crate::proxy::origin::Fetched;
use crate::proxy::relay::{self, Absorbed, Tee};
use crate::proxy::{Client, Outcome, Refusal};
use std::cell::OnceCell;
use std::sync::Arc;

/// A miss about to go to the origin, and whether the client's own
/// `If-None-Match` and `If-Modified-Since`, or its `Range` and
/// `If-Range`, are withheld from it: when the
/// cache may store the answer, whatever the origin says, as nginx's
/// `proxy_cache` empties them (RFC 9111 §4.3.1 lets a cache send its own
/// request). Not when it is known it will not: a `HEAD` (whose answer is
/// never stored), a request saying `no-store`, a URL not yet asked for
/// `cache_min_uses` times, one whose last answer could not be stored
/// (hit-for-miss), or one whose conditions, withheld lately, brought an
/// answer that could not be ([`Cache::keep_conditions`]): a dynamic page
/// that says `private` keeps its 304s.
/// `If-Match` and `If-Unmodified-Since` never come this way (see
/// [`eligible`]); a `Range` only when nothing is stored (see
/// [`fills_on_a_miss`]).
///
/// [`eligible`]: super::eligible
/// [`fills_on_a_miss`]: super::ranges
pub(super) struct Withholding<'a> {
    pub(super) request: &'a RequestHead,
    pub(super) req_cc: &'a CacheControl,
    pub(super) primary: &'a str,
    /// Something is stored for the request (being revalidated, with the
    /// cache's own conditions when it has validators).
    pub(super) stored: bool,
    pub(super) min_uses: u32,
}

impl Withholding<'_> {
    /// Whether the conditions are withheld, but for `cache_min_uses`
    /// (see [`Withholding::short_of_uses`]): the request has some, and
    /// its answer may be stored.
    pub(super) fn applies(&self, cache: &Cache) -> bool {
        let request = self.request;
        let conditional = CLIENT_CONDITIONS
            .iter()
            .any(|name| request.headers.contains(name));
        (conditional || asks_a_range(request))
            && !request.is_head()
            && !self.req_cc.no_store
            && !cache.passes_over(&cache.variant_key(self.primary, &request.headers))
            && !cache.keeps_conditions(self.primary)
    }

    /// Whether its URL is not asked for often enough yet for its answer
    /// to be stored, as `serve` counts it once the answer came; one with
    /// an entry is past it by being stored.
    pub(super) fn short_of_uses(&self, cache: &Cache) -> bool {
        let now = std::time::Instant::now();
        !self.stored
            && self.min_uses > 1
            && cache.uses.would_count(self.primary, now) < self.min_uses
    }
}

/// The conditions a cache may evaluate itself on what it stores (see
/// [`Withholding`]).
pub(super) const CLIENT_CONDITIONS: [&str; 2] = ["if-none-match", "if-modified-since"];

/// `request` without [`CLIENT_CONDITIONS`], nor its range: what the
/// origin is sent when they are withheld.
pub(super) fn without_conditions(request: &RequestHead) -> RequestHead {
    let mut sent = request.clone();
    for name in CLIENT_CONDITIONS.iter().chain(&["range", "if-range"]) {
        sent.headers.remove(name);
    }
    sent
}

/// A miss whose client's conditions were withheld from the origin, and
/// which the answer being stored satisfies (by its head), or whose range
/// is cut from it.
pub(super) struct Withheld<'a> {
    pub(super) answering: &'a Answering<'a>,
    /// Where the tee puts the entry once the body is whole.
    pub(super) kept: &'a OnceCell<Arc<Entry>>,
    /// The answer without its body, for a body too large to store.
    pub(super) bodiless: Entry,
    /// Why the request went on (`Cache-Status`).
    pub(super) fwd: &'static str,
}

impl Withheld<'_> {
    /// Reads the body into the cache, then answers the client from the
    /// entry as a hit would be answered: a 304 (with `X-Cache: MISS`), or
    /// the whole response should the stored head no longer satisfy the
    /// conditions. A body found too large to store as it streams is
    /// gone by then; the client's copy is the answer the origin sent
    /// (its validators say so), and it gets the 304 all the same; a range
    /// then is not in it (`None`: asked of the origin as it is). A
    /// body cut short is the origin failing.
    pub(super) fn answer(
        self,
        client: &mut Client,
        fetched: Fetched<'_>,
        tee: &mut Tee<'_>,
    ) -> Option<Result<Outcome, Refusal>> {
        let upstream = fetched.target.name.clone();
        // Never stored, but this client's own.
        let mut cookies = Vec::new();
        (fetched.response.headers).write_named(&["set-cookie"], &mut cookies);
        let request = self.answering.request;
        // No more time in all than a miss relayed whole gets: a large
        // body (a video a range was asked of) may take longer than
        // `connection_timeout`, each read within the backend's timeout.
        let entry = match relay::absorb(client, fetched, tee, None) {
            Absorbed::Whole => self.kept.get().cloned(),
            Absorbed::TooLarge => {
                let matches = policy::not_modified(&request.headers, &self.bodiless.head);
                if !matches && asks_a_range(request) {
                    // The part is not in what was read, nor worth reading
                    // the rest for: asked as it is, as for a stale entry.
                    return None;
                }
                matches.then(|| Arc::new(self.bodiless))
            }
            Absorbed::Failed => None,
        };
        let Some(entry) = entry else {
            return Some(Err(Refusal {
                upstream: Some(upstream),
                ..Refusal::new(502, self.answering.keep_alive)
            }));
        };
        let status = Status::Filled { fwd: self.fwd };
        Some(serve_entry(
            client,
            self.answering,
            &entry,
            status,
            Some(upstream),
            &cookies,
        ))
    }
}
