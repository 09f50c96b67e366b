//! Revalidating a stale entry with the cache's own request: in the
//! background after a stale answer, or for a range waiting on it.

use super::fetch::fetch_validated;
use super::fill::{fits, Storing};
use super::freshen::{neutral, request_as_get, Revalidated};
use super::streamed::StreamedPart;
use super::Answering;
use crate::cache::policy::{self, Settings};
use crate::cache::store::Flight;
use crate::cache::Entry;
use crate::http::RequestHead;
use crate::proxy::origin::Fetched;
use crate::proxy::relay::{self, Absorbed};
use crate::proxy::{Client, Outcome, Refusal, Shared};
use std::sync::Arc;
use std::time::SystemTime;

/// The request as the cache makes it for itself, for whoever asks next:
/// a GET, without what belongs to this client (its conditions, its cache
/// directives).
pub(super) fn for_the_cache(request: &RequestHead) -> RequestHead {
    let mut own = request_as_get(request);
    for name in [
        "if-none-match",
        "if-modified-since",
        "range",
        "if-range",
        "cache-control",
        "pragma",
    ] {
        own.headers.remove(name);
    }
    own
}

/// An entry served stale under its stale-while-revalidate window, to be
/// revalidated once its response is out, with the cache's own request.
pub(in crate::proxy) struct Refresh {
    request: RequestHead,
    entry: Arc<Entry>,
    primary: String,
}

impl Refresh {
    /// The cache's own request for `entry`, from the client's `request`.
    pub(super) fn of(request: &RequestHead, entry: &Arc<Entry>, primary: String) -> Refresh {
        Refresh {
            request: for_the_cache(request),
            entry: entry.clone(),
            primary,
        }
    }
}

/// Revalidates `job`'s entry on the client's thread, after the client got
/// its answer and the request was logged (nginx's background update also
/// holds the client connection meanwhile). A 304 refreshes the entry (see
/// [`Revalidated::store`]); a full response replaces it if it may be
/// stored and fits, leaves it if only the client's own fields (its
/// cookies, say) kept out the stored response again (its validator the
/// entry's), and drops it otherwise; a failure
/// or a 5xx leaves it as it is, to be served stale until its window ends.
/// Also run in the foreground, for a range of a stale entry (see
/// [`revalidate`]).
pub(in crate::proxy) fn refresh<'s>(
    client: &mut Client,
    job: Refresh,
    shared: &'s Shared,
) -> Refreshed<'s> {
    revalidate(client, job, None, shared)
}

/// [`refresh`], for a client `waiting` for the answer when there is one:
/// a range of a stale entry (see [`serve_range`]), whose one part of a
/// new `200` that says its length goes out as the body comes, as on a
/// miss (see [`StreamedPart`]), rather than once it is whole.
///
/// [`serve_range`]: super::serve_range
pub(super) fn revalidate<'s>(
    client: &mut Client,
    job: Refresh,
    waiting: Option<&Answering<'_>>,
    shared: &'s Shared,
) -> Refreshed<'s> {
    let Some(cache) = &shared.cache else {
        return Refreshed::Skipped;
    };
    let Refresh {
        request,
        entry,
        primary,
    } = job;
    // The key's flight is claimed now, not as the stale answer went out:
    // a client reading that slowly would hold up other requests' misses,
    // which wait for a flight. Another request holding it is revalidating.
    let _flight = match cache.join_refresh(entry.key()) {
        Flight::Leader(flight) => Some(flight),
        Flight::Alone => None,
        Flight::Follower(_) => return Refreshed::Skipped,
    };
    // From before the look below: an invalidation (PURGE, a POST) from
    // here on keeps what comes back out of the cache.
    let fill = cache.begin_fill();
    // Gone since it was served (invalidated, evicted), or replaced (another
    // request revalidated it): nothing left to do.
    match cache.lookup(&primary, &request.headers) {
        Some(now) if Arc::ptr_eq(&now, &entry) => {}
        _ => return Refreshed::Skipped,
    }
    let (fetched, revalidating) =
        match fetch_validated(client, &request, Some(&entry), None, shared) {
            Ok(fetched) => fetched,
            // Already logged and held against the target: the entry stays.
            Err(refusal) => {
                return Refreshed::OriginFailed {
                    upstream: refusal.upstream,
                }
            }
        };
    let response_time = SystemTime::now();
    let status = fetched.response.status;
    let upstream = fetched.target.name.clone();
    // Never stored, but the client's own, should it be waiting.
    let mut set_cookies = Vec::new();
    (fetched.response.headers).write_named(&["set-cookie"], &mut set_cookies);
    if status == 304 {
        if !revalidating {
            return Refreshed::NotStored;
        }
        let revalidated = Revalidated {
            request: &request,
            primary: &primary,
            entry: &entry,
            response_time,
        };
        let now = revalidated.store(fetched, client, &fill, cache, shared);
        return Refreshed::Stored {
            now,
            upstream,
            set_cookies,
        };
    }
    if status >= 500 {
        return Refreshed::OriginFailed {
            upstream: Some(upstream),
        };
    }
    // The cache's own request still carries the client's cookies and its
    // other fields (the backend may need them to answer, or vary on them;
    // credentials never come this way: those revalidate in the
    // foreground), so a refusal may be theirs and not the response's (see
    // `refused_for_its_own`).
    let settings = shared.caching(client.route).settings.clone();
    let lifetime = policy::storable(&request, &fetched.response, response_time, &settings);
    if lifetime.is_none()
        && refused_for_its_own(&request, &fetched, &entry, response_time, &settings)
        && fits(&fetched, cache)
    {
        return Refreshed::Unstorable(Box::new(fetched));
    }
    match lifetime.filter(|_| fits(&fetched, cache)) {
        Some(lifetime) => {
            let bodiless = waiting.map(|_| {
                let birth =
                    policy::birth_time(&fetched.response, fetched.request_time, response_time);
                let head = fetched.response.clone();
                let body = Arc::from(&b""[..]);
                Entry::new(primary.clone(), head, body, birth, lifetime, &settings)
            });
            let stored_as = Storing {
                request: &request,
                primary: &primary,
                lifetime,
                response_time,
                flight: None,
                for_the_url: false,
                settings,
                kept: None,
            };
            let mut tee = stored_as.tee(&fetched, fill, cache);
            // Stored once whole, as the body read here would be; the
            // flight held meanwhile.
            let part = (waiting.zip(bodiless.as_ref())).and_then(|(waiting, bodiless)| {
                StreamedPart::of(waiting, bodiless, &fetched, "stale")
            });
            if let Some(part) = part {
                return Refreshed::Streamed(part.stream(client, fetched, &mut tee, shared));
            }
            // The client's next request waits meanwhile: a body that
            // trickles gets connection_timeout in all, not per read.
            let within = shared.config.connection_timeout;
            match relay::absorb(client, fetched, &mut tee, Some(within)) {
                Absorbed::TooLarge => {
                    // As a Content-Length past max_object_size (below) does.
                    cache.invalidate(&primary);
                }
                // Cut short or too slow: the origin failed; the entry stays.
                Absorbed::Failed => {
                    return Refreshed::OriginFailed {
                        upstream: Some(upstream),
                    }
                }
                Absorbed::Whole => {}
            }
        }
        // What the origin answers now may not be stored (no-store,
        // private, too large...): the old answer is not served for the rest
        // of its window either. Its body is the caller's to relay or drop.
        None => {
            cache.invalidate(&primary);
            return Refreshed::Unstorable(Box::new(fetched));
        }
    }
    match cache.lookup(&primary, &request.headers) {
        Some(now) if !Arc::ptr_eq(&now, &entry) => Refreshed::Stored {
            now,
            upstream,
            set_cookies,
        },
        _ => Refreshed::NotStored,
    }
}

/// Whether a full response [`refresh`] got for `entry` was refused only
/// for what made its request the client's (see [`neutral`]): its cookies,
/// or a field spelled with `_` that the response varies on. Rendered for
/// them, it is not stored (see `policy::storable`), but when it is the
/// stored response again (its validator the entry's: the same body), it
/// says nothing against the entry, which stays for everyone. One with
/// another validator, or none, may be a new version for all as well as
/// this client's own page: the cache cannot tell, and the entry goes, so
/// that nobody is served the old one once the origin has answered
/// otherwise; so does it after a response that may not be stored whoever
/// asks (`no-store`, `private`).
pub(super) fn refused_for_its_own(
    request: &RequestHead,
    fetched: &Fetched<'_>,
    entry: &Entry,
    response_time: SystemTime,
    settings: &Settings,
) -> bool {
    let neutral = neutral(request, settings);
    let response = &fetched.response;
    // With nothing taken out, the refusal was the response's own.
    neutral.headers.len() < request.headers.len()
        && policy::has_validator(response)
        && policy::same_validator(&entry.head, response)
        && policy::storable(&neutral, response, response_time, settings).is_some()
}

/// How [`refresh`] went.
pub(in crate::proxy) enum Refreshed<'s> {
    /// The origin answered, and this is the entry now stored; the
    /// answer's `Set-Cookie` lines, which it was stored without, are for
    /// a client that waits for it (a range of a stale entry).
    Stored {
        now: Arc<Entry>,
        upstream: Arc<str>,
        set_cookies: Vec<u8>,
    },
    /// The origin answered with what may not be stored (the old entry is
    /// dropped, unless only the client's own fields kept the answer out:
    /// see [`refused_for_its_own`]); its body is still unread.
    Unstorable(Box<Fetched<'s>>),
    /// For a client waiting (see [`revalidate`]): a new `200` stored as
    /// its one part went out, as it did; a refusal before its head went
    /// out is the origin failing (the old entry stays).
    Streamed(Result<Outcome, Refusal>),
    /// A 304 to an unconditional request, or a body that failed (the old
    /// entry stays).
    NotStored,
    /// No answer, or a 5xx: the entry is as it was.
    OriginFailed { upstream: Option<Arc<str>> },
    /// Nothing was asked: the entry changed meanwhile, or another request
    /// is revalidating it.
    Skipped,
}
