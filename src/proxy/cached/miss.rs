//! A GET or HEAD through the cache: the look-up, coalesced misses,
//! the fetch, and what is stored, answered or served stale of what comes
//! back.

use super::answer::serve_entry;
use super::fetch::fetch_validated;
use super::fill::{fits, Storing};
use super::freshen::{HeadAnswer, Revalidated};
use super::ranges::{asks_a_range, range_asked_instead};
use super::refresh::{refused_for_its_own, Refresh};
use super::stale::{stale_fallback, stale_or};
use super::streamed::StreamedPart;
use super::withhold::{without_conditions, Withheld, Withholding};
use super::{look_up, Answering, Status};
use crate::cache::policy::{self, CacheControl, Use};
use crate::cache::store::Flight;
use crate::cache::{Cache, Entry};
use crate::http::RequestHead;
use crate::proxy::relay;
use crate::proxy::{Client, Outcome, Refusal, Shared};
use std::borrow::Cow;
use std::cell::OnceCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long a request waits for another request already fetching the same
/// key (nginx's `proxy_cache_lock_timeout` is also 5 s); then it goes to
/// the origin itself.
const COALESCE_WAIT: Duration = Duration::from_secs(5);

/// A GET or HEAD the cache answers: from what is stored, or from the
/// origin, storing the answer if it may. `None`: a range miss whose
/// answer, fetched whole, was found too large to store as it streamed:
/// the range goes to the origin as it is.
pub(super) fn through_cache(
    client: &mut Client,
    mut request: RequestHead,
    cache: &Arc<Cache>,
    shared: &Shared,
) -> Option<Result<Outcome, Refusal>> {
    if request.is_head() {
        // RFC 9110 §14.2: a HEAD's Range means nothing, here or upstream.
        request.headers.remove("range");
        request.headers.remove("if-range");
    }
    let keep_alive = client.keeps_alive(&request);
    let req_cc = CacheControl::parse(&request.headers);
    let no_cache = req_cc.request_no_cache(&request.headers);
    let settings = &shared.caching(client.route).settings;
    let ignored = &shared.config.cache_key_ignore_params;
    let primary = policy::primary_key(&request, client.scheme, ignored);
    let answering = Answering::new(&request, keep_alive, cache, client, shared);

    // Held while this request fetches for others waiting on the key.
    let mut flight = None;
    let mut stored: Option<Arc<Entry>> = None;
    let mut waited = false;
    loop {
        if let Some((entry, usable)) =
            look_up(cache, &primary, &request, &req_cc, no_cache, settings)
        {
            let served = match usable {
                Use::Fresh => Some(Status::Hit),
                Use::AllowedStale => Some(Status::Stale),
                // A request with credentials revalidates in the foreground:
                // what it would bring back is its own, not the cache's. So
                // does one with `no-store`, whose answer nothing may keep
                // (RFC 9111 §5.2.1.5), a refresh in the background neither.
                Use::StaleRevalidating
                    if !(shared.caching(client.route).settings)
                        .has_credentials(&request.headers)
                        && !req_cc.no_store =>
                {
                    // Revalidated after the response (see `refresh`).
                    client.after_response = Some(Refresh::of(&request, &entry, primary.clone()));
                    Some(Status::Stale)
                }
                Use::StaleRevalidating | Use::Validate => None,
            };
            match served {
                Some(status) => {
                    return Some(serve_entry(client, &answering, &entry, status, None, b""))
                }
                None => stored = Some(entry),
            }
        }
        if req_cc.only_if_cached {
            // RFC 9111 §5.2.1.7: nothing usable is stored. Not counted as
            // a miss: the answer has no X-Cache, and the metric counts by it.
            return Some(Err(Refusal::new(504, keep_alive)));
        }
        if flight.is_some() || waited || no_cache || stored.is_some() {
            break;
        }
        match cache.join_flight(&cache.variant_key(&primary, &request.headers)) {
            Flight::Leader(guard) => {
                // Look once more, leading: the flight before ours may have
                // stored the entry and ended since the look above.
                flight = Some(guard);
            }
            Flight::Follower(waiter) => {
                waiter.wait(COALESCE_WAIT);
                waited = true;
            }
            Flight::Alone => break,
        }
    }

    // The client's own conditions, when the cache may store the answer,
    // are not the origin's to evaluate but the cache's: the request goes
    // without them (as nginx's `proxy_cache` sends it), so that a URL
    // whose clients all hold a copy is stored all the same, and the
    // client is answered from what was stored (see [`Withheld`]).
    let min_uses = shared.pool_config(client.route).cache_min_uses;
    let withholding = Withholding {
        request: &request,
        req_cc: &req_cc,
        primary: &primary,
        stored: stored.is_some(),
        min_uses,
    };
    let applies = withholding.applies(cache);
    // Held back only by `cache_min_uses`: its 304 counts as a use below.
    let short_of_uses = applies && withholding.short_of_uses(cache);
    let withheld = applies && !short_of_uses;
    // A range let through to fill the cache (`fills_on_a_miss`) whose URL
    // another request has since let go (`keep_conditions`): asked as it
    // is, outside the cache, as any range not withheld; its 206 must not
    // reach the miss path, where it could mark the URL hit-for-miss.
    if asks_a_range(&request) && !withheld {
        return None;
    }
    let sent = if withheld {
        Cow::Owned(without_conditions(&request))
    } else {
        Cow::Borrowed(&request)
    };
    // Whatever this fetch brings is not stored if the key is invalidated
    // (PURGE, POST) while it is on its way: it may predate that.
    let fill = cache.begin_fill();
    // What may answer if the origin fails, even after a refetch (below)
    // stopped revalidating it.
    let fallback = stored.clone();
    let (fetched, revalidating) =
        match fetch_validated(client, &sent, stored.as_deref(), Some(keep_alive), shared) {
            Ok(fetched) => fetched,
            Err(refusal) => {
                return Some(stale_or(refusal, client, &answering, &fallback, &primary))
            }
        };
    let response_time = SystemTime::now();
    let upstream = Some(fetched.target.name.clone());
    if fetched.response.status >= 500 {
        if let Some(entry) = stale_fallback(&fallback, true, &answering, &primary) {
            drop(fetched); // closes the connection; its body is not wanted
            return Some(serve_entry(
                client,
                &answering,
                &entry,
                Status::Stale,
                upstream,
                b"",
            ));
        }
    }
    // A 304 to the cache's conditions, or (RFC 9111 §4.3.5) a 200 to a
    // HEAD that describes the stored body: the entry is refreshed with its
    // fields. A HEAD that describes another body shows the entry outdated.
    let confirmed = match (&stored, fetched.response.status) {
        (Some(_), 304) => revalidating,
        (Some(entry), 200) if request.is_head() => {
            let verdict = HeadAnswer {
                request: &request,
                entry,
                response_time,
            }
            .describes_entry(&fetched, &shared.caching(client.route).settings);
            if verdict == Some(false) {
                cache.replace_filled(entry, Arc::new(entry.outdated(response_time)), &fill);
            }
            verdict == Some(true)
        }
        _ => false,
    };
    if let Some(entry) = stored.as_ref().filter(|_| confirmed) {
        // Not stored (see refresh_from_304), but this client's own.
        let mut cookies = Vec::new();
        fetched
            .response
            .headers
            .write_named(&["set-cookie"], &mut cookies);
        let revalidated = Revalidated {
            request: &request,
            primary: &primary,
            entry,
            response_time,
        };
        let refreshed = revalidated.store(fetched, client, &fill, cache, shared);
        return Some(serve_entry(
            client,
            &answering,
            &refreshed,
            Status::Revalidated,
            upstream,
            &cookies,
        ));
    }

    // A full response: relay it, and store it on the way if allowed.
    let settings = shared.caching(client.route).settings.clone();
    let lifetime = if request.is_head() {
        None
    } else {
        // Judged, and keyed, by the request the origin answered.
        policy::storable(&sent, &fetched.response, response_time, &settings)
    };
    // The fill goes with the tee; with nothing to store it ends here, as
    // does the flight: those waiting on the key go now, not once this
    // client has read the whole body (a slow one would hold them all, and
    // the invalidations remembered for fills in flight would pile up).
    let lifetime = lifetime.filter(|_| fits(&fetched, cache));
    if withheld && lifetime.is_none() {
        cache.keep_conditions(&primary);
    }
    // A new answer for the URL that may not be stored whoever asks
    // (`no-store`, `private`, too large, another validator refused for
    // this client's cookie): the old entry must not stand in for it when
    // the origin then fails, as `refresh` has it. Not when the request is
    // why (a HEAD, credentials, its own `no-store`). Once it came through:
    // a body that cannot be framed is the origin failing.
    let mut drop_stored = false;
    if let Some(entry) = stored.as_ref().filter(|_| lifetime.is_none()) {
        let status = fetched.response.status;
        let a_new_answer = !request.is_head() && policy::answers_the_url(status) && status < 500;
        let the_clients_own = settings.has_credentials(&request.headers)
            || req_cc.no_store
            || (fits(&fetched, cache)
                && refused_for_its_own(&request, &fetched, entry, response_time, &settings));
        drop_stored = a_new_answer && !the_clients_own;
    }
    // `cache_min_uses`: stored once its URL was asked for that often. One
    // with an entry (revalidated, and changed) is past it by being stored.
    // A revalidation still counts, keeping the URL's count from being
    // forgotten; so does a conditional request whose conditions went to
    // the origin only because its URL was not asked for often enough
    // (nginx counts every request), or a URL whose clients all hold a
    // copy would never be stored.
    let counted = (lifetime.is_some() || short_of_uses) && min_uses > 1;
    let below = counted && cache.uses.count(&primary, std::time::Instant::now()) < min_uses;
    let unpopular = below && stored.is_none() && lifetime.is_some();
    // Whether this answer, if not stored, says the next plain GET's would
    // not be either, so that the key's misses stop waiting on each other
    // (see `FlightGuard::not_stored`). Not when the request is why: a
    // HEAD, a conditional or credentialed request, one that says
    // no-store, or one spelling a field the response varies on otherwise
    // (see `policy::storable`); nor when it is only not asked for often
    // enough yet: the next misses, which may store it, still wait on
    // each other. Conditions withheld from the origin are not why.
    // Only asked with a flight: none waits on the key otherwise.
    let for_the_url = flight.is_some() && {
        let vary = settings.key_names(&fetched.response);
        let plain_get = request.method == "GET"
            && !settings.has_credentials(&request.headers)
            && !["cookie", "if-none-match", "if-modified-since"]
                .iter()
                .any(|f| sent.headers.contains(f))
            && !req_cc.no_store
            && !policy::spells_a_varying_field_otherwise(&request.headers, &vary);
        plain_get && !unpopular && policy::answers_the_url(fetched.response.status)
    };
    // The entry stored, for a client whose withheld conditions the
    // answer satisfies (see [`Withheld`]).
    let kept = withheld.then(|| Rc::new(OnceCell::new()));
    let storing = lifetime.filter(|_| !unpopular);
    let mut tee = storing.zip(Some(fill)).map(|(lifetime, fill)| {
        let stored_as = Storing {
            request: &sent,
            primary: &primary,
            lifetime,
            response_time,
            flight: flight.take(),
            for_the_url,
            settings: settings.clone(),
            kept: kept.clone(),
        };
        stored_as.tee(&fetched, fill, cache)
    });
    // Still ours: nothing of it will be stored.
    if let Some(flight) = flight.filter(|_| for_the_url) {
        flight.not_stored();
    }
    // Nothing to store: a client that left meanwhile is not worth the
    // body, as on the uncached path.
    if tee.is_none() && client.gave_up_on(&fetched) {
        return Some(Err(Refusal {
            upstream,
            ..Refusal::silent()
        }));
    }
    // Conditions withheld from the origin are the cache's to evaluate,
    // on what it stores (nginx's `not_modified` filter does it on what
    // nginx stored). Only for an answer being stored: one relayed whole
    // is a 200 the client asked for no less (RFC 9110 §13.2.1 lets a
    // server ignore conditions). Looked at in the answer's head first: a
    // client whose copy is not this answer gets it streamed as any miss.
    // A range withheld is cut from what is stored, whatever the answer,
    // but one range of a 200 whose length is known, which goes out as
    // the body comes (see [`StreamedPart`]).
    // A whole body that will not be stored is not waited for (see
    // [`range_asked_instead`]); nor are the URL's next ranges fetched
    // whole for a while (`keep_conditions`, above).
    if withheld && tee.is_none() && range_asked_instead(&request, &fetched) {
        return None;
    }
    let answered_by_us = withheld
        && (asks_a_range(&request) || policy::not_modified(&request.headers, &fetched.response));
    let answering_from =
        (tee.as_mut().zip(storing).zip(kept.as_deref())).filter(|_| answered_by_us);
    if let Some(((tee, lifetime), kept)) = answering_from {
        let birth = policy::birth_time(&fetched.response, fetched.request_time, response_time);
        // Should the body turn out too large to store, the answer it
        // would have been, without it: the 304 needs no more.
        let bodiless = Entry::new(
            primary.clone(),
            fetched.response.clone(),
            Arc::from(&b""[..]),
            birth,
            lifetime,
            &settings,
        );
        let fwd = if stored.is_some() {
            "stale"
        } else {
            "uri-miss"
        };
        // One range of a body of known length goes out as it comes.
        if let Some(part) = StreamedPart::of(&answering, &bodiless, &fetched, fwd) {
            let streamed = part.stream(client, fetched, tee, shared);
            return Some(
                streamed.or_else(|r| stale_or(r, client, &answering, &fallback, &primary)),
            );
        }
        let withheld = Withheld {
            answering: &answering,
            kept,
            bodiless,
            fwd,
        };
        let Some(answered) = withheld.answer(client, fetched, tee) else {
            // Too large to store: the URL's ranges go as they are for a
            // while, rather than each fetching the whole body again.
            cache.keep_conditions(&primary);
            return None;
        };
        return match answered {
            Err(refusal) => Some(stale_or(refusal, client, &answering, &fallback, &primary)),
            Ok(outcome) => Some(Ok(outcome)),
        };
    }
    let how = answering.as_miss();
    let relayed = relay::relay(client, fetched, &how, tee.as_mut(), shared);
    drop(tee);
    Some(match relayed {
        // A head that parsed but a body that cannot be framed (two
        // lengths, an unknown coding, a small body cut short) fails before
        // anything reached the client: as much the origin failing as a 5xx.
        Err(refusal) => stale_or(refusal, client, &answering, &fallback, &primary),
        Ok(outcome) => {
            // Only the entry this answer replaced: another request may
            // have stored a new one while this body was relayed.
            let replaced = |now: Arc<Entry>| stored.as_ref().is_some_and(|e| Arc::ptr_eq(e, &now));
            if drop_stored
                && cache
                    .lookup(&primary, &request.headers)
                    .is_some_and(replaced)
            {
                cache.invalidate(&primary);
            }
            cache.stats.misses.fetch_add(1, Ordering::Relaxed);
            Ok(outcome)
        }
    })
}
