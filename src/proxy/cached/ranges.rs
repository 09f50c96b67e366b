//! GETs of a range: cut from what is stored, and whether a miss or a
//! stale entry is fetched whole for them.

use super::answer::serve_entry;
use super::miss::through_cache;
use super::refresh::{revalidate, Refresh, Refreshed};
use super::stale::{stale_fallback, stale_or};
use super::withhold::Withholding;
use super::{look_up, takes_range, Answering, Status};
use crate::cache::policy::{self, CacheControl, Use};
use crate::cache::Cache;
use crate::http::RequestHead;
use crate::proxy::origin::{Fetched, RequestBody};
use crate::proxy::relay;
use crate::proxy::{Client, Outcome, Refusal, Shared};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

/// A GET with `Range`, answered from what is stored: the part or parts
/// asked for, cut from a stored 200 (see [`range::requested`]). A fresh entry, or a
/// stale one the request or `stale-while-revalidate` allows, answers at
/// once (the latter refreshed after). Any other stale entry that could
/// stand in if the origin failed is revalidated (or fetched whole) first,
/// by the cache's own request, and the part cut from what comes back, or
/// from the stale copy if the origin fails: a client that only ever asks
/// for parts (a media player) keeps an entry current, as with nginx.
/// With nothing stored, the miss is fetched whole too, as a conditional
/// miss is (see [`fills_on_a_miss`]). Either way one range of a new 200
/// goes out as it comes when the answer says its length (see
/// [`StreamedPart`]), and a 200 that will not be stored is left unread
/// (see [`range_asked_instead`]). `None` otherwise (credentials,
/// `no-store`, an entry another request is revalidating or that may not
/// stand in, a URL whose answer could not be stored lately, a whole 200
/// that will not be stored after all): the request goes to the origin as
/// it is, and its answer is not stored.
///
/// [`range::requested`]: crate::http::range::requested
/// [`StreamedPart`]: super::streamed::StreamedPart
pub(in crate::proxy) fn serve_range(
    client: &mut Client,
    request: &RequestHead,
    body: &RequestBody,
    cache: &Arc<Cache>,
    shared: &Shared,
) -> Option<Result<Outcome, Refusal>> {
    if !takes_range(request, body) {
        return None;
    }
    let ignored = &shared.config.cache_key_ignore_params;
    let primary = policy::primary_key(request, client.scheme, ignored);
    let req_cc = CacheControl::parse(&request.headers);
    let no_cache = req_cc.request_no_cache(&request.headers);
    let settings = &shared.caching(client.route).settings;
    let ttl = settings.ttl;
    let keep_alive = client.keeps_alive(request);
    // What the cache may do on its own for this client: what `serve`
    // does only for requests without credentials or no-store.
    let on_its_own = !settings.has_credentials(&request.headers) && !req_cc.no_store;
    let answering = Answering::new(request, keep_alive, cache, client, shared);
    // The cookies of an answer this request brought, which are its own.
    let mut cookies = Vec::new();
    let (entry, status, upstream) =
        match look_up(cache, &primary, request, &req_cc, no_cache, settings) {
            Some((entry, Use::Fresh)) => (entry, Status::Hit, None),
            Some((entry, Use::AllowedStale)) => (entry, Status::Stale, None),
            Some((entry, Use::StaleRevalidating)) if on_its_own => {
                client.after_response = Some(Refresh::of(request, &entry, primary));
                (entry, Status::Stale, None)
            }
            // RFC 9111 §5.2.1.7, as in `serve`.
            _ if req_cc.only_if_cached => return Some(Err(Refusal::new(504, keep_alive))),
            Some((entry, Use::Validate))
                if on_its_own && entry.within_stale_window(SystemTime::now(), ttl) =>
            {
                let job = Refresh::of(request, &entry, primary.clone());
                match revalidate(client, job, Some(&answering), shared) {
                    // Stored from the answer to this very request: used
                    // even if it says max-age=0.
                    Refreshed::Stored {
                        now,
                        upstream,
                        set_cookies,
                    } => {
                        cookies = set_cookies;
                        let same_body = Arc::ptr_eq(&now.record.body, &entry.record.body);
                        let status = if same_body {
                            Status::Revalidated
                        } else {
                            Status::Miss
                        };
                        (now, status, Some(upstream))
                    }
                    // Not if purged meanwhile (see `stale_fallback`): the
                    // range then goes to the origin as it is.
                    Refreshed::OriginFailed { upstream } => {
                        let stored = Some(entry);
                        let now = stale_fallback(&stored, true, &answering, &primary)?;
                        (now, Status::Stale, upstream)
                    }
                    // One range of a new 200 went out as it came.
                    Refreshed::Streamed(streamed) => {
                        let stored = Some(entry);
                        let or_stale = |r| stale_or(r, client, &answering, &stored, &primary);
                        return Some(streamed.or_else(or_stale));
                    }
                    // As on a miss (see `range_asked_instead`): left unread,
                    // and the URL's ranges go as they are for a while.
                    Refreshed::Unstorable(fetched) if range_asked_instead(request, &fetched) => {
                        cache.keep_conditions(&primary);
                        return None;
                    }
                    // Another status is the answer to the part too: sent as it
                    // came (a server may always ignore a range).
                    Refreshed::Unstorable(fetched) => {
                        let how = answering.as_miss();
                        let relayed = relay::relay(client, *fetched, &how, None, shared);
                        let counted = |_: &Outcome| {
                            cache.stats.misses.fetch_add(1, Ordering::Relaxed);
                        };
                        return Some(relayed.inspect(counted));
                    }
                    Refreshed::NotStored | Refreshed::Skipped => return None,
                }
            }
            // Nothing stored: fetched whole for the cache, and the part cut
            // from what is stored (one range streamed as it comes), as
            // nginx's `proxy_cache` does, so that a client that only ever
            // asks for parts fills it. Misses of the same key wait for one
            // another's fill, as whole ones do.
            None if on_its_own
                && fills_on_a_miss(request, &req_cc, &primary, cache, shared, client) =>
            {
                return through_cache(client, request.clone(), cache, shared);
            }
            _ => return None,
        };
    Some(serve_entry(
        client, &answering, &entry, status, upstream, &cookies,
    ))
}

/// Whether a range `request` that found nothing stored is fetched whole
/// to be stored, by what withholds a conditional miss's conditions (see
/// [`Withholding`]): not for a URL whose answer could not be stored
/// lately (hit-for-miss, or one fetched whole for a range or a condition:
/// its ranges go as they are for a while, not the whole body each time),
/// nor one not yet asked for `cache_min_uses` times, whose range counts
/// as a use and goes as it is.
fn fills_on_a_miss(
    request: &RequestHead,
    req_cc: &CacheControl,
    primary: &str,
    cache: &Cache,
    shared: &Shared,
    client: &Client,
) -> bool {
    let withholding = Withholding {
        request,
        req_cc,
        primary,
        stored: false,
        min_uses: shared.pool_config(client.route).cache_min_uses,
    };
    if !withholding.applies(cache) {
        return false;
    }
    if withholding.short_of_uses(cache) {
        cache.uses.count(primary, std::time::Instant::now());
        return false;
    }
    true
}

/// Whether `request` is a GET of a range, which the cache may cut from
/// what it stores (see [`serve_range`]). A HEAD's was taken out.
pub(super) fn asks_a_range(request: &RequestHead) -> bool {
    request.method == "GET" && request.headers.contains("range")
}

/// Whether `fetched`, the whole response the cache asked for a range of
/// `request` (a miss's, or a stale entry's refetch), which will not be
/// stored (`private`, `no-store`, larger than `max_object_size`), is left
/// unread and the range asked of the origin as it is: a client asking
/// for a part, a player seeking near the end of a large file, should not
/// wait for the whole body. Not another status (a `404` without a
/// lifetime): that is the answer to the part too, sent as it came.
pub(super) fn range_asked_instead(request: &RequestHead, fetched: &Fetched<'_>) -> bool {
    asks_a_range(request) && fetched.response.status == 200
}
