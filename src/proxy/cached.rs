//! GET and HEAD through the cache: answer from a stored response when the
//! rules allow, coalesce concurrent misses, revalidate stale entries, fall
//! back to a stale entry when the origin fails, and store what may be
//! stored while relaying it.

use super::cache_status::{self, Member};
use super::origin::{self, Fetched, Outgoing, RequestBody};
use super::relay::{self, push_connection_header, Absorbed, Relay, Tee};
use super::{Client, Outcome, Refusal, Shared};
use crate::access_log::{By, Stage, Termination};
use crate::cache::policy::{self, CacheControl, Lifetime, OwnFields, Settings, Use};
use crate::cache::store::{Fill, Flight, FlightGuard};
use crate::cache::{Cache, Entry};
use crate::digits::push_field;
use crate::gzip::{self, Gzip};
use crate::http::body::forbids_content_length;
use crate::http::conn::write_all_vectored_counting;
use crate::http::date::format_http_date;
use crate::http::edits::FieldEdits;
use crate::http::headers::read_alike;
use crate::http::range::{self, Multipart, Ranged};
use crate::http::{BodyKind, RequestHead, Version};
use crate::metrics::GzipCounters;
use crate::pace::{Paced, Pacing};
use std::borrow::Cow;
use std::cell::OnceCell;
use std::io::{IoSlice, Write as _};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long a request waits for another request already fetching the same
/// key (nginx's `proxy_cache_lock_timeout` is also 5 s); then it goes to
/// the origin itself.
const COALESCE_WAIT: Duration = Duration::from_secs(5);

/// The status line of a 206, of one part or several.
const PARTIAL_CONTENT: &[u8] = b"HTTP/1.1 206 Partial Content\r\n";

/// Fields a 304 made from a stored response carries (RFC 9110 §15.4.5).
const NOT_MODIFIED_FIELDS: &[&str] = &[
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "last-modified",
    "vary",
];

/// Whether the cache has a say in this request: a HEAD, or a GET without
/// Range (see [`serve_range`]), with no body, If-Match or
/// If-Unmodified-Since. A HEAD's Range means nothing (RFC 9110 §14.2).
pub(super) fn eligible(head: &RequestHead, body: &RequestBody) -> bool {
    match head.method.as_str() {
        "HEAD" => asks_for_stored(head, body),
        "GET" => !head.headers.contains("range") && asks_for_stored(head, body),
        _ => false,
    }
}

/// Whether the cache would answer this request, whole or in part: a
/// request [`eligible`] or one [`serve_range`] takes.
pub(super) fn consulted(head: &RequestHead, body: &RequestBody) -> bool {
    matches!(head.method.as_str(), "GET" | "HEAD") && asks_for_stored(head, body)
}

/// Neither a body nor If-Match or If-Unmodified-Since: the answer to
/// those, a 412 perhaps, is about this client's copy, so the cache
/// neither answers nor keeps it. Nor a method override
/// ([`METHOD_OVERRIDES`]).
fn asks_for_stored(head: &RequestHead, body: &RequestBody) -> bool {
    !["if-match", "if-unmodified-since"]
        .iter()
        .any(|name| head.headers.contains(name))
        && !overrides_method(head)
        && matches!(body, RequestBody::Buffered(b) if b.is_empty())
}

/// Fields some frameworks (Play 1, and any that reads them whatever the
/// method) take a request for the method they name by: a `GET` with
/// `X-HTTP-Method-Override: DELETE` is a `DELETE` to them, answered with
/// a 404 or 405 perhaps, which stored under the `GET`'s key would be what
/// everyone gets ("cache-poisoned denial of service"). Such a request is
/// not the `GET` the key stands for.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The values of the [`METHOD_OVERRIDES`] fields `head` carries, in
/// either spelling (with `underscores_in_headers`, `X_HTTP_Method` reaches
/// a CGI backend as `X-HTTP-Method`).
fn method_overrides(head: &RequestHead) -> impl Iterator<Item = &[u8]> {
    (head.headers.iter())
        .filter(|(name, _)| {
            (METHOD_OVERRIDES.iter()).any(|m| read_alike(m.as_bytes(), name.as_bytes()))
        })
        .map(|(_, value)| value)
}

/// Whether `head` carries a method override.
pub(super) fn overrides_method(head: &RequestHead) -> bool {
    method_overrides(head).next().is_some()
}

/// Whether `head` carries a method override that names a method other
/// than a safe one (any case, as frameworks read it): a `GET` that says
/// `X-HTTP-Method-Override: GET` is a `GET` to every backend, and
/// invalidates nothing (RFC 9111 §4.4), or any client could empty the
/// cache of any page.
pub(super) fn overrides_to_unsafe(head: &RequestHead) -> bool {
    method_overrides(head).any(|value| {
        let method = String::from_utf8_lossy(value.trim_ascii()).to_ascii_uppercase();
        policy::is_unsafe(&method)
    })
}

/// Whether [`serve_range`] looks in the cache for `request`: a `GET` of
/// a range that a stored response may answer.
pub(super) fn takes_range(request: &RequestHead, body: &RequestBody) -> bool {
    request.method == "GET" && request.headers.contains("range") && asks_for_stored(request, body)
}

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
pub(super) fn serve_range(
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
    let ttl = shared.caching(client.route).settings.ttl;
    let keep_alive = client.keeps_alive(request);
    // What the cache may do on its own for this client: what `serve`
    // does only for requests without credentials or no-store.
    let on_its_own = !policy::has_credentials(&request.headers) && !req_cc.no_store;
    let answering = Answering::new(request, keep_alive, cache, client, shared);
    // The cookies of an answer this request brought, which are its own.
    let mut cookies = Vec::new();
    let (entry, status, upstream) = match look_up(cache, &primary, request, &req_cc, no_cache, ttl)
    {
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

/// The entry stored under `primary` for this request, and how it may be
/// used. `ttl` as it is now caps what was stored under an older one (or
/// read from a crafted snapshot).
fn look_up(
    cache: &Cache,
    primary: &str,
    request: &RequestHead,
    req_cc: &CacheControl,
    no_cache: bool,
    ttl: Duration,
) -> Option<(Arc<Entry>, Use)> {
    let entry = cache.lookup(primary, &request.headers)?;
    let mut as_stored = entry.as_stored(SystemTime::now());
    as_stored.fresh = as_stored.fresh.min(ttl);
    let usable = policy::usable(req_cc, no_cache, &as_stored);
    Some((entry, usable))
}

/// The request as the cache makes it for itself, for whoever asks next:
/// a GET, without what belongs to this client (its conditions, its cache
/// directives).
fn for_the_cache(request: &RequestHead) -> RequestHead {
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
struct Withholding<'a> {
    request: &'a RequestHead,
    req_cc: &'a CacheControl,
    primary: &'a str,
    /// Something is stored for the request (being revalidated, with the
    /// cache's own conditions when it has validators).
    stored: bool,
    min_uses: u32,
}

impl Withholding<'_> {
    /// Whether the conditions are withheld, but for `cache_min_uses`
    /// (see [`Withholding::short_of_uses`]): the request has some, and
    /// its answer may be stored.
    fn applies(&self, cache: &Cache) -> bool {
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
    fn short_of_uses(&self, cache: &Cache) -> bool {
        let now = std::time::Instant::now();
        !self.stored
            && self.min_uses > 1
            && cache.uses.would_count(self.primary, now) < self.min_uses
    }
}

/// The conditions a cache may evaluate itself on what it stores (see
/// [`Withholding`]).
const CLIENT_CONDITIONS: [&str; 2] = ["if-none-match", "if-modified-since"];

/// Whether `request` is a GET of a range, which the cache may cut from
/// what it stores (see [`serve_range`]). A HEAD's was taken out.
fn asks_a_range(request: &RequestHead) -> bool {
    request.method == "GET" && request.headers.contains("range")
}

/// `request` without [`CLIENT_CONDITIONS`], nor its range: what the
/// origin is sent when they are withheld.
fn without_conditions(request: &RequestHead) -> RequestHead {
    let mut sent = request.clone();
    for name in CLIENT_CONDITIONS.iter().chain(&["range", "if-range"]) {
        sent.headers.remove(name);
    }
    sent
}

/// Whether `fetched`, the whole response the cache asked for a range of
/// `request` (a miss's, or a stale entry's refetch), which will not be
/// stored (`private`, `no-store`, larger than `max_object_size`), is left
/// unread and the range asked of the origin as it is: a client asking
/// for a part, a player seeking near the end of a large file, should not
/// wait for the whole body. Not another status (a `404` without a
/// lifetime): that is the answer to the part too, sent as it came.
fn range_asked_instead(request: &RequestHead, fetched: &Fetched<'_>) -> bool {
    asks_a_range(request) && fetched.response.status == 200
}

/// A miss whose client's conditions were withheld from the origin, and
/// which the answer being stored satisfies (by its head), or whose range
/// is cut from it.
struct Withheld<'a> {
    answering: &'a Answering<'a>,
    /// Where the tee puts the entry once the body is whole.
    kept: &'a OnceCell<Arc<Entry>>,
    /// The answer without its body, for a body too large to store.
    bodiless: Entry,
    /// Why the request went on (`Cache-Status`).
    fwd: &'static str,
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
    fn answer(
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

pub(super) fn serve(
    client: &mut Client,
    request: RequestHead,
    cache: &Arc<Cache>,
    shared: &Shared,
) -> Result<Outcome, Refusal> {
    let keep_alive = client.keeps_alive(&request);
    // Only a range is ever left to go to the origin as it is, and ranges
    // come through `serve_range`.
    through_cache(client, request, cache, shared).unwrap_or(Err(Refusal::new(502, keep_alive)))
}

/// A GET or HEAD the cache answers: from what is stored, or from the
/// origin, storing the answer if it may. `None`: a range miss whose
/// answer, fetched whole, was found too large to store as it streamed:
/// the range goes to the origin as it is.
fn through_cache(
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
    let ttl = shared.caching(client.route).settings.ttl;
    let ignored = &shared.config.cache_key_ignore_params;
    let primary = policy::primary_key(&request, client.scheme, ignored);
    let answering = Answering::new(&request, keep_alive, cache, client, shared);

    // Held while this request fetches for others waiting on the key.
    let mut flight = None;
    let mut stored: Option<Arc<Entry>> = None;
    let mut waited = false;
    loop {
        if let Some((entry, usable)) = look_up(cache, &primary, &request, &req_cc, no_cache, ttl) {
            let served = match usable {
                Use::Fresh => Some(Status::Hit),
                Use::AllowedStale => Some(Status::Stale),
                // A request with credentials revalidates in the foreground:
                // what it would bring back is its own, not the cache's. So
                // does one with `no-store`, whose answer nothing may keep
                // (RFC 9111 §5.2.1.5), a refresh in the background neither.
                Use::StaleRevalidating
                    if !policy::has_credentials(&request.headers) && !req_cc.no_store =>
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
        let the_clients_own = policy::has_credentials(&request.headers)
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
            && !policy::has_credentials(&request.headers)
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

/// A full response that may be stored, and how.
struct Storing<'a> {
    request: &'a RequestHead,
    primary: &'a str,
    lifetime: Lifetime,
    response_time: SystemTime,
    /// The key's flight, released once the entry is stored.
    flight: Option<FlightGuard>,
    /// Whether the answer, found too large, is one for the URL (see
    /// `serve`).
    for_the_url: bool,
    settings: Arc<Settings>,
    /// Where the entry goes too, stored or not (an invalidation meanwhile
    /// keeps it out of the cache), for a client answered from it.
    kept: Option<Rc<OnceCell<Arc<Entry>>>>,
}

impl Storing<'_> {
    /// A tee that stores the response `fetched` brings once its body is
    /// whole.
    fn tee<'c>(self, fetched: &Fetched<'_>, fill: Fill, cache: &'c Cache) -> Tee<'c> {
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

/// A stored entry the origin confirmed with a 304.
struct Revalidated<'a> {
    request: &'a RequestHead,
    primary: &'a str,
    entry: &'a Arc<Entry>,
    response_time: SystemTime,
}

impl Revalidated<'_> {
    /// Stores the entry refreshed with the 304's fields and returns it; or,
    /// when those fields forbid storing it, drops what is stored for the
    /// URI and returns the refreshed entry unstored, for this one answer
    /// (which must say what the 304 said: `private`, say, not the old
    /// `public`). A 304 that may be stored, but not as the answer to this
    /// client's own request, refreshes only this answer: the entry stays
    /// as it was.
    fn store(
        self,
        fetched: Fetched<'_>,
        client: &Client,
        fill: &Fill,
        cache: &Cache,
        shared: &Shared,
    ) -> Arc<Entry> {
        let mut head = self.entry.head.clone();
        policy::refresh_from_304(&mut head, &fetched.response);
        // Taken out of `head` above (it goes to this client alone), so
        // looked for here: its other fields may be that user's too.
        let sets_cookie = fetched.response.headers.contains("set-cookie");
        let settings = &shared.caching(client.route).settings;
        // Asked with credentials, the 304 must say itself that it may be
        // kept (RFC 9111 §3.5), as its 200 would have: merged, it would
        // take the stored `public`, and that user's fields with it.
        let shared_answer = policy::answer_shared_despite_credentials(
            &self.request.headers,
            &fetched.response,
            settings,
        );
        let birth = policy::birth_time(&fetched.response, fetched.request_time, self.response_time);
        relay::finish_bodiless(fetched, client);
        let own = for_the_cache(self.request);
        let judged =
            |request: &RequestHead| policy::storable(request, &head, self.response_time, settings);
        // Whether the response may be stored, whoever asked (see
        // `neutral`): this client's own directives, credentials, cookies
        // or spellings are no reason to drop the entry for everyone.
        let everyones = judged(&neutral(&own));
        // Whether it may be stored as the answer to this client's own
        // request, as its fields would be if the entry took them: not
        // when, asked with a cookie, it set one (the fields of a signed-in
        // user's answer, as a 200 with one would not be stored), unless
        // `public` or the operator has the cache not read `Set-Cookie`.
        // Without a cookie asked with, a session cookie handed out is no
        // sign of a user's answer (session middleware sets one on each).
        let users = sets_cookie
            && own.headers.contains("cookie")
            && !settings.ignored.ignores("set-cookie")
            && !CacheControl::parse(&head.headers).public;
        let its_own = judged(&own).filter(|_| !users && shared_answer);
        let refreshed = |lifetime| {
            Arc::new(
                Entry::new(
                    self.entry.key().to_string(),
                    head,
                    self.entry.record.body.clone(),
                    birth,
                    lifetime,
                    settings,
                )
                .with_copy_of(self.entry),
            )
        };
        let unstored = Lifetime {
            fresh: Duration::ZERO,
            stale_if_error: Duration::ZERO,
        };
        match (everyones, its_own) {
            // A request saying no-store has no part of its answer stored
            // (RFC 9111 §5.2.1.5): whatever the 304 says, the entry stays
            // as it was for the others, and this refresh is served once.
            _ if CacheControl::parse(&self.request.headers).no_store => {
                refreshed(everyones.unwrap_or(unstored))
            }
            (_, Some(lifetime)) => {
                let e = refreshed(lifetime);
                cache.replace_filled(self.entry, e.clone(), fill);
                e
            }
            // Storable, but not from this request: a 304 answering
            // credentials may carry fields of that client's (§3.5), and
            // one answering cookies too, unless it says enough for a page
            // asked with them to be stored (see `policy::storable`); one
            // to a request spelling a varying field otherwise, fields of
            // the variant the backend read in it. The entry keeps its own
            // fields; this refresh is served once.
            (Some(lifetime), None) => refreshed(lifetime),
            // Many applications answer `private` to any signed-in request:
            // that says nothing of the entry, which is everyone's.
            (None, None) if policy::has_credentials(&own.headers) => refreshed(unstored),
            (None, None) => {
                cache.invalidate(self.primary);
                refreshed(unstored)
            }
        }
    }
}

/// The cache's own request (see [`for_the_cache`]) without what makes it
/// this client's: its credentials, its cookies, and the fields it spells
/// with `_` (`underscores_in_headers`), which may stand for a field a
/// variant key holds in another spelling (see `policy::storable`). A
/// response is judged against it for what the response itself says: the
/// entry a 304 refreshes was judged, body and all, against the request
/// that brought it, and a 304 brings no body of this client's to judge.
/// So `storable`'s rule for pages asked with cookies, which is about a
/// body rendered for them, does not drop the entry for everyone on one
/// visitor's analytics cookie, while a 304 that says `no-store` or
/// `private` still does.
fn neutral(own: &RequestHead) -> RequestHead {
    let mut neutral = own.clone();
    for name in [
        "authorization",
        "client-cert",
        "client-cert-chain",
        "cookie",
    ] {
        neutral.headers.remove(name);
    }
    neutral.headers.retain(|name, _| !name.contains(&b'_'));
    neutral
}

/// A 200 to a HEAD sent for a stored GET response (RFC 9111 §4.3.5).
struct HeadAnswer<'a> {
    request: &'a RequestHead,
    entry: &'a Entry,
    response_time: SystemTime,
}

impl HeadAnswer<'_> {
    /// Whether the answer describes the stored body (`Some(true)`: the
    /// entry takes its fields) or another one (`Some(false)`: the entry is
    /// outdated); `None` when it is no answer for everyone, which says
    /// nothing of the entry: one that varies on other fields than the
    /// entry (it was chosen by them), or that could not be stored as a
    /// GET's with the stored fields it leaves in place (for a request
    /// with credentials, setting a cookie, `private`, or to a request
    /// saying `no-store`). Nor one naming another body to a request with
    /// credentials, unless it says itself a shared cache may keep it (see
    /// `policy::answer_shared_despite_credentials`): RFC 9111 §4.3.5 has
    /// a cache update or mark stale what it could have chosen for the
    /// request, and §3.5 has a shared cache not use an answer to
    /// credentials for anyone else. That user's body may well differ
    /// from everyone's (a page for the signed-in), which says nothing of
    /// everyone's: the entry stays fresh, rather than revalidated by the
    /// next request of anyone.
    fn describes_entry(&self, fetched: &Fetched<'_>, settings: &policy::Settings) -> Option<bool> {
        let answer = &fetched.response;
        if settings.vary_names(answer) != settings.vary_names(&self.entry.head) {
            return None;
        }
        let mut merged = self.entry.head.clone();
        policy::refresh_from_304(&mut merged, answer);
        for cookie in answer.headers.get_all("set-cookie") {
            merged.headers.push("set-cookie", cookie);
        }
        let as_get = request_as_get(self.request);
        policy::storable(&as_get, &merged, self.response_time, settings)?;
        let body_len = self.entry.record.body.len();
        let describes = policy::head_describes(&self.entry.head, body_len, answer);
        let shared =
            policy::answer_shared_despite_credentials(&self.request.headers, answer, settings);
        (describes || shared).then_some(describes)
    }
}

/// An entry served stale under its stale-while-revalidate window, to be
/// revalidated once its response is out, with the cache's own request.
pub(super) struct Refresh {
    request: RequestHead,
    entry: Arc<Entry>,
    primary: String,
}

impl Refresh {
    /// The cache's own request for `entry`, from the client's `request`.
    fn of(request: &RequestHead, entry: &Arc<Entry>, primary: String) -> Refresh {
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
pub(super) fn refresh<'s>(client: &mut Client, job: Refresh, shared: &'s Shared) -> Refreshed<'s> {
    revalidate(client, job, None, shared)
}

/// [`refresh`], for a client `waiting` for the answer when there is one:
/// a range of a stale entry (see [`serve_range`]), whose one part of a
/// new `200` that says its length goes out as the body comes, as on a
/// miss (see [`StreamedPart`]), rather than once it is whole.
fn revalidate<'s>(
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
fn refused_for_its_own(
    request: &RequestHead,
    fetched: &Fetched<'_>,
    entry: &Entry,
    response_time: SystemTime,
    settings: &Settings,
) -> bool {
    let neutral = neutral(request);
    let response = &fetched.response;
    // With nothing taken out, the refusal was the response's own.
    neutral.headers.len() < request.headers.len()
        && policy::has_validator(response)
        && policy::same_validator(&entry.head, response)
        && policy::storable(&neutral, response, response_time, settings).is_some()
}

/// How [`refresh`] went.
pub(super) enum Refreshed<'s> {
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

/// Whether the body `fetched` announces fits `max_object_size` (one of
/// unknown length is found out as it streams).
fn fits(fetched: &Fetched<'_>, cache: &Cache) -> bool {
    crate::http::body::content_length(&fetched.response.headers)
        .ok()
        .flatten()
        .is_none_or(|n| n <= cache.max_object_size())
}

/// Fetches `request` for the cache, conditionally when `stored` has
/// validators; returns the response head and whether the request that
/// got it was conditional (a 304 then refreshes `stored`). RFC 9111
/// §4.3.4: a 304 about another representation than the stored one
/// refreshes nothing; the request is then sent again, unconditionally.
/// `waiting`: when the client waits for this answer, whether its
/// connection may stay open if the fetch fails; `None` when it has its
/// answer already (see [`fetch`]).
fn fetch_validated<'s>(
    client: &mut Client,
    request: &RequestHead,
    stored: Option<&Entry>,
    waiting: Option<bool>,
    shared: &'s Shared,
) -> Result<(Fetched<'s>, bool), Refusal> {
    let mut validators = stored
        .map(|e| policy::validators(&e.head))
        .unwrap_or_default();
    loop {
        let fetched = fetch(client, request, &validators, waiting, shared)?;
        let revalidating = !validators.is_empty();
        // A 304 naming another validator is about another representation;
        // one varying on other fields than the stored response, about
        // other variants (its fields would be stored under the old key).
        let settings = &shared.caching(client.route).settings;
        let another_version = revalidating
            && fetched.response.status == 304
            && stored.is_some_and(|e| {
                let varies_otherwise = fetched.response.headers.contains("vary")
                    && settings.vary_names(&fetched.response) != settings.vary_names(&e.head);
                !policy::same_validator(&e.head, &fetched.response) || varies_otherwise
            });
        if !another_version {
            return Ok((fetched, revalidating));
        }
        relay::finish_bodiless(fetched, client);
        validators.clear();
    }
}

/// Sends `request` (bodiless: the cache's GET or HEAD) to the origin, with
/// `validators` in place of the client's own conditions when there are
/// any, and reads the response head. Interim responses go on to a client
/// `waiting` for this answer; one that has its answer (a revalidation in
/// the background) would read them as the start of its next response.
fn fetch<'s>(
    client: &mut Client,
    request: &RequestHead,
    validators: &[(&'static str, Vec<u8>)],
    waiting: Option<bool>,
    shared: &'s Shared,
) -> Result<Fetched<'s>, Refusal> {
    let mut upstream_head = request.clone();
    if !validators.is_empty() {
        upstream_head.headers.remove("if-none-match");
        upstream_head.headers.remove("if-modified-since");
    }
    let send = Outgoing {
        body: &RequestBody::Buffered(Vec::new()),
        expect_continue: false,
        keep_alive: waiting.unwrap_or(false),
        extra: validators,
        upgrade: false,
        interim_to_client: waiting.is_some() && request.version == Version::Http11,
        abandon_if_client_leaves: false,
        mirrored: false,
    };
    origin::fetch(client, &mut upstream_head, &send, shared)
}

/// A HEAD request's view as the GET it is answered from.
fn request_as_get(request: &RequestHead) -> RequestHead {
    let mut get = request.clone();
    get.method = "GET".into();
    get
}

/// The entry to serve when the origin failed (`origin_failed` is false
/// when it was the client that failed), if its stale window allows: for a
/// request that found one `stored`, what the cache holds for it now. Not
/// an entry purged while the origin was asked (a `PURGE`, a `POST`),
/// which the purge said was gone; the outdated copy a soft purge left, or
/// what another request stored since, stands in instead.
fn stale_fallback(
    stored: &Option<Arc<Entry>>,
    origin_failed: bool,
    answering: &Answering<'_>,
    primary: &str,
) -> Option<Arc<Entry>> {
    stored.as_ref().filter(|_| origin_failed)?;
    let held = answering
        .cache
        .lookup(primary, &answering.request.headers)?;
    let now = SystemTime::now();
    held.within_stale_window(now, answering.ttl).then_some(held)
}

/// The stale entry, when the origin failed (a refusal with a status: the
/// client is still there) and its window allows; else the refusal.
fn stale_or(
    refusal: Refusal,
    client: &mut Client,
    answering: &Answering<'_>,
    fallback: &Option<Arc<Entry>>,
    primary: &str,
) -> Result<Outcome, Refusal> {
    if let Some(status) = refusal.for_backend() {
        client.upstream_status = Some(status);
    }
    match stale_fallback(fallback, refusal.status.is_some(), answering, primary) {
        Some(entry) => serve_entry(
            client,
            answering,
            &entry,
            Status::Stale,
            refusal.upstream,
            b"",
        ),
        None => Err(refusal),
    }
}

/// The request being answered, for `serve_entry`.
#[derive(Clone, Copy)]
struct Answering<'a> {
    request: &'a RequestHead,
    keep_alive: bool,
    cache: &'a Cache,
    /// A shutdown that began since the request did closes the connection
    /// after this response too, which then says so.
    shutting_down: &'a AtomicBool,
    /// The fields for the cache alone, never served (see
    /// [`Entry::served_head`]).
    own_fields: &'a OwnFields,
    /// How the pool's answers are paced, before an entry's own rate
    /// (`X-Accel-Limit-Rate`), and whatever a failed backend said.
    pacing: Pacing,
    /// The fields `response_header.*` sets and removes: applied to what is
    /// served, never to what is stored.
    edits: &'a FieldEdits,
    /// With `gzip` on: what is compressed.
    gzip: Option<&'a Gzip>,
    /// The cache's name in `Cache-Status` (`cache_status`).
    cache_name: Option<&'a str>,
    gzip_counters: &'a GzipCounters,
    /// The client takes gzip (see [`relay::takes_gzip`]).
    takes_gzip: bool,
    /// `ttl` as it is now, which caps what was stored under an older one.
    ttl: Duration,
}

impl<'a> Answering<'a> {
    fn new(
        request: &'a RequestHead,
        keep_alive: bool,
        cache: &'a Cache,
        client: &Client,
        shared: &'a Shared,
    ) -> Answering<'a> {
        Answering {
            request,
            keep_alive,
            cache,
            shutting_down: &shared.shutting_down,
            own_fields: &shared.caching(client.route).own_fields,
            pacing: shared.pool_config(client.route).pacing,
            edits: &shared.pool_config(client.route).response_headers,
            gzip: shared.gzip(client.route),
            cache_name: shared.config.cache_status.as_deref(),
            gzip_counters: &shared.metrics.gzip,
            takes_gzip: relay::takes_gzip(request, shared.gzip(client.route)),
            ttl: shared.caching(client.route).settings.ttl,
        }
    }

    /// Whether a client that takes gzip asks for a part with a date in
    /// `If-Range`, of an answer `coding` compresses: it may hold the
    /// compressed copy, whose date is the plain one's, and a part of the
    /// plain body would be spliced onto gzip bytes (a strong tag is the
    /// plain copy's, the compressed one's being weak). It gets the whole
    /// answer, as nginx sends a gzipped one.
    fn dated_if_range(&self, coding: Option<&Gzip>) -> bool {
        coding.is_some()
            && self.takes_gzip
            && (self.request.headers.get_str("if-range")).is_some_and(|c| !c.starts_with('"'))
    }

    /// How a response from the origin goes out to this client as a `MISS`.
    fn as_miss(&self) -> Relay {
        Relay {
            request_is_head: self.request.is_head(),
            version: self.request.version,
            keep_alive: self.keep_alive,
            x_cache: Some(Status::Miss.name()),
            takes_gzip: self.takes_gzip,
        }
    }
}

#[derive(Clone, Copy)]
enum Status {
    Hit,
    Stale,
    Revalidated,
    Miss,
    /// A `MISS` served from what it stored, `fwd` saying why it went on
    /// (see [`Withheld`]).
    Filled {
        fwd: &'static str,
    },
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Hit => "HIT",
            Status::Stale => "STALE",
            Status::Revalidated => "REVALIDATED",
            Status::Miss | Status::Filled { .. } => "MISS",
        }
    }
}

/// Answers from a stored response: its head, then Age, X-Cache, the
/// fields `response_header.*` sets, `own` (fields for this client alone,
/// each line ending in CRLF) and framing, then the shared body (or the
/// parts cut from it, between their multipart frames), in one `writev`. A
/// client's own conditional request that the entry satisfies gets a 304.
/// The fields those keys name are left out of the stored head as it goes.
/// With `gzip`, a whole body of a type it lists goes compressed to a
/// client that takes it, from the entry's compressed copy.
fn serve_entry(
    client: &mut Client,
    answering: &Answering<'_>,
    entry: &Arc<Entry>,
    status: Status,
    upstream: Option<Arc<str>>,
    own: &[u8],
) -> Result<Outcome, Refusal> {
    let Answering {
        request,
        keep_alive,
        cache,
        shutting_down,
        own_fields,
        pacing,
        edits,
        gzip,
        cache_name: _,
        gzip_counters,
        takes_gzip,
        ttl: _,
    } = *answering;
    let keep_alive = keep_alive && !shutting_down.load(Ordering::Relaxed);
    // The rate the backend set for the stored answer (`X-Accel-Limit-Rate`),
    // not one a backend's failed answer set before a stale one is served.
    client.pacing = pacing.as_backend_says(&entry.head.headers);
    let counter = match status {
        Status::Hit => &cache.stats.hits,
        Status::Stale => &cache.stats.stale,
        Status::Revalidated => &cache.stats.revalidated,
        Status::Miss | Status::Filled { .. } => &cache.stats.misses,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let whole = &entry.record.body;
    let len = whole.len() as u64;
    // Compressed for some clients: it says so in Vary to every client,
    // and goes compressed to this one if it takes gzip.
    let coding = gzip.filter(|g| g.suits(entry.head.status, &entry.head.headers, Some(len)));
    let replaced: &[&str] = match coding {
        Some(_) if takes_gzip => &gzip::REPLACED_FIELDS,
        Some(_) => &["vary"],
        None => &[],
    };
    // With fields set, removed or replaced, room for them and for the
    // stored head, which may be copied here (see `Ranged::Whole`): still
    // the one allocation a hit makes.
    let room = if edits.is_empty() && coding.is_none() {
        128
    } else {
        256 + entry.record.head.len() + edits.set_lines().len() + own.len()
    } + client.response_fields.len();
    let mut tail = Vec::with_capacity(room);
    // Several parts go out from the stored body (see `Multipart`).
    let mut multipart = None;
    // The body goes compressed: counted once it went.
    let mut compressed_from = None;
    let (head, body, code): (Cow<'_, [u8]>, &[u8], u16) =
        if policy::not_modified(&request.headers, &entry.head) {
            let mut head = b"HTTP/1.1 304 Not Modified\r\n".to_vec();
            let kept = |name: &[u8]| {
                !edits.edits(name)
                    && !replaced
                        .iter()
                        .any(|r| name.eq_ignore_ascii_case(r.as_bytes()))
            };
            (entry.head.headers).write_named_where(NOT_MODIFIED_FIELDS, kept, &mut head);
            // What the 200 would say of its validator and variants (RFC
            // 9110 §15.4.5).
            if coding.is_some() {
                gzip::push_vary(&mut head, &entry.head.headers);
                if takes_gzip {
                    gzip::push_weak_etag(&mut head, &entry.head.headers);
                }
            }
            (head.into(), b"", 304)
        } else {
            let dated_if_range = answering.dated_if_range(coding);
            let ranged = if entry.head.status == 200 && !request.is_head() && !dated_if_range {
                range::requested(&request.headers, &entry.head.headers, len)
            } else {
                Ranged::Whole
            };
            match ranged {
                Ranged::Whole => {
                    let compressed = coding.filter(|_| takes_gzip).and_then(|gzip| {
                        let (compressed, made) =
                            entry.compressed(|body| gzip.compress_to_keep(body))?;
                        if made {
                            cache.reweigh(entry);
                        }
                        Some(compressed)
                    });
                    // Uncompressed while another hit makes the copy: only
                    // Vary is replaced then.
                    let replaced: &[&str] = match (compressed, coding) {
                        (Some(_), _) => &gzip::REPLACED_FIELDS,
                        (None, Some(_)) => &["vary"],
                        (None, None) => &[],
                    };
                    let sent = compressed.unwrap_or(whole);
                    let body: &[u8] = if request.is_head() { b"" } else { sent };
                    if compressed.is_some() && !request.is_head() {
                        compressed_from = Some(len);
                    }
                    let served = entry.served_head(own_fields);
                    // With an edited or replaced field stored, the head goes
                    // less that field's lines, copied to the start of `tail`
                    // (room was made for it) rather than into an allocation
                    // of its own.
                    let stored = &entry.head.headers;
                    let replacing = replaced.iter().any(|name| stored.contains(name));
                    let head = if edits.touches(&served) || replacing {
                        edits.push_kept(&mut tail, &served, replaced);
                        Cow::Borrowed(&b""[..])
                    } else {
                        served
                    };
                    match compressed {
                        Some(_) => gzip::push_compressed_fields(&mut tail, &entry.head.headers),
                        None if coding.is_some() => gzip::push_vary(&mut tail, &entry.head.headers),
                        None => {}
                    }
                    if !forbids_content_length(entry.head.status) {
                        push_field(&mut tail, "Content-Length", sent.len() as u64);
                    }
                    if entry.head.status == 200
                        && compressed.is_none()
                        && range::worth_announcing(&entry.head.headers, len)
                    {
                        tail.extend_from_slice(b"Accept-Ranges: bytes\r\n");
                    }
                    (head, body, entry.head.status)
                }
                Ranged::Part { start, end } => {
                    let head = part_head(answering, entry, coding, (start, end, len), &mut tail);
                    (head.into(), &whole[start as usize..=end as usize], 206)
                }
                Ranged::Parts(spans) => {
                    let stored = &entry.head.headers;
                    // Unique, and unguessable (a keyed hash of a counter):
                    // no stored body holds it, by chance or by design.
                    let boundary = crate::request_id::generate();
                    let parts = Multipart::new(spans, len, stored.get("content-type"), boundary);
                    parts.push_fields(&mut tail);
                    let mut head = PARTIAL_CONTENT.to_vec();
                    // Each part says the stored type; the response, its own,
                    // and the Vary its 200 would.
                    let fields = entry.served_fields(own_fields);
                    let replaced: &[&str] = match coding {
                        Some(_) => &["content-type", "content-range", "vary"],
                        None => &["content-type", "content-range"],
                    };
                    edits.push_kept(&mut head, &fields, replaced);
                    if coding.is_some() {
                        gzip::push_vary(&mut tail, &entry.head.headers);
                    }
                    multipart = Some(parts);
                    (head.into(), b"", 206)
                }
                Ranged::Unsatisfiable => {
                    let mut head = b"HTTP/1.1 416 Range Not Satisfiable\r\n".to_vec();
                    let now = format_http_date(SystemTime::now());
                    let _ = write!(head, "Date: {now}\r\nContent-Range: bytes */{len}\r\n");
                    head.extend_from_slice(b"Content-Length: 0\r\n");
                    (head.into(), b"", 416)
                }
            }
        };
    let ending = Ending {
        status,
        own,
        code,
        keep_alive,
    };
    ending.push(&mut tail, client, answering, entry);
    client.note_sent_head(&[&head, &tail]);
    let pacing = client.pacing;
    let out = &mut Paced::new(client.conn.get_mut(), pacing);
    let (written, result) = match &multipart {
        None => write_all_vectored_counting(
            out,
            &mut [IoSlice::new(&head), IoSlice::new(&tail), IoSlice::new(body)],
        ),
        Some(parts) => write_all_vectored_counting(out, &mut parts.slices(&[&head, &tail], whole)),
    };
    // A client gone before a byte went out is logged 499; one gone in the
    // middle, as what it got (as a relayed response cut short is): the
    // status and the body bytes that went out. Either is its `CD`.
    if result.is_err() {
        client.ended(Termination::new(By::Client, Stage::Data));
    }
    if result.is_err() && written == 0 {
        return Err(Refusal::silent());
    }
    let sent = written.saturating_sub(head.len() + tail.len());
    if let (Some(len), Ok(())) = (compressed_from, &result) {
        gzip_counters.count(len, body.len() as u64);
    }
    Ok(Outcome {
        status: code,
        bytes: sent as u64,
        upstream,
        keep_alive: keep_alive && result.is_ok(),
        cache: Some(status.name()),
        linger: result.is_ok(),
    })
}

/// The head of a 206 of bytes `start..=end` of `entry`'s `len`, a hit's
/// or a streamed miss's (see [`StreamedPart`]): the stored status line
/// replaced, its fields but the ones this part says itself; its framing,
/// and the `Vary` its 200 would say with `coding` (RFC 9110 §15.3.7), go
/// in `tail`.
fn part_head(
    answering: &Answering<'_>,
    entry: &Entry,
    coding: Option<&Gzip>,
    (start, end, len): (u64, u64, u64),
    tail: &mut Vec<u8>,
) -> Vec<u8> {
    let _ = write!(
        tail,
        "Content-Range: bytes {start}-{end}/{len}\r\nContent-Length: {}\r\n",
        end - start + 1
    );
    let mut head = PARTIAL_CONTENT.to_vec();
    let fields = entry.served_fields(answering.own_fields);
    let replaced: &[&str] = match coding {
        Some(_) => &["content-range", "vary"],
        None => &["content-range"],
    };
    answering.edits.push_kept(&mut head, &fields, replaced);
    if coding.is_some() {
        gzip::push_vary(tail, &entry.head.headers);
    }
    head
}

/// What ends the head of an answer made from an entry, whatever its
/// status: Age, X-Cache, Cache-Status, the fields `response_header.*`
/// sets, `own` (fields for this client alone, each line ending in CRLF),
/// and `Connection`.
struct Ending<'a> {
    status: Status,
    own: &'a [u8],
    /// The status code sent.
    code: u16,
    keep_alive: bool,
}

impl Ending<'_> {
    fn push(self, tail: &mut Vec<u8>, client: &Client, answering: &Answering<'_>, entry: &Entry) {
        let Ending {
            status,
            own,
            code,
            keep_alive,
        } = self;
        let edits = answering.edits;
        let age = entry.age(SystemTime::now()).as_secs();
        push_field(tail, "Age", age);
        tail.extend_from_slice(b"X-Cache: ");
        tail.extend_from_slice(status.name().as_bytes());
        tail.extend_from_slice(b"\r\n");
        if let Some(name) = answering.cache_name {
            // Its freshness as it is used: capped by `ttl` as it is now.
            let ttl = entry.fresh_lifetime().min(answering.ttl).as_secs() as i64 - age as i64;
            // A revalidation or a refetch went on because what was stored
            // had gone stale (RFC 9211 §2.2's `fwd=stale`).
            let member = match status {
                Status::Hit | Status::Stale => Member::Hit { ttl },
                Status::Revalidated => Member::Forwarded {
                    fwd: "stale",
                    status: 304,
                    stored: Some(ttl),
                },
                Status::Miss => Member::Forwarded {
                    fwd: "stale",
                    status: entry.head.status,
                    stored: Some(ttl),
                },
                Status::Filled { fwd } => Member::Forwarded {
                    fwd,
                    status: entry.head.status,
                    stored: Some(ttl),
                },
            };
            cache_status::push(tail, name, member);
        }
        tail.extend_from_slice(edits.set_lines());
        // A 304's cookies for this client are the backend's too: gone when
        // `Set-Cookie` is removed.
        edits.push_kept(tail, own, &[]);
        client.push_own_fields(tail, code, Some(status.name()));
        push_connection_header(tail, keep_alive, answering.request.version);
        tail.extend_from_slice(b"\r\n");
    }
}

/// A withheld range miss whose one part goes out as the body streams
/// into the cache, as nginx's range filter sends one range of a body of
/// known length, rather than once the body is whole (a player asking
/// `bytes=0-` of a large video would wait for all of it): its 206 is the
/// one a hit would get then. Bytes past the part are read on into the
/// cache, not sent; a body cut short cuts the response, and nothing is
/// stored.
struct StreamedPart<'a> {
    answering: &'a Answering<'a>,
    /// The answer as it will be stored, without its body.
    bodiless: &'a Entry,
    /// Bytes `start..=end` of `len`.
    span: (u64, u64, u64),
    /// With `gzip`, as for the entry: its Vary says it is compressed for
    /// some clients.
    coding: Option<&'a Gzip>,
    /// Why the request went on (`Cache-Status`).
    fwd: &'static str,
}

impl<'a> StreamedPart<'a> {
    /// The part, when the 200 being stored says its length, the request
    /// asks one satisfiable range its `If-Range` (if any) lets through,
    /// and no condition of its own that could make the answer a 304
    /// (those stay the entry's to evaluate). `None` for anything else,
    /// cut from the entry once stored (see [`Withheld`]).
    fn of(
        answering: &'a Answering<'a>,
        bodiless: &'a Entry,
        fetched: &Fetched<'_>,
        fwd: &'static str,
    ) -> Option<StreamedPart<'a>> {
        let request = answering.request;
        let head = &bodiless.head;
        let conditional = (CLIENT_CONDITIONS.iter()).any(|name| request.headers.contains(name));
        if !asks_a_range(request) || conditional || head.status != 200 {
            return None;
        }
        let Ok(BodyKind::Length(len)) = BodyKind::for_response(false, &fetched.response) else {
            return None;
        };
        // As `serve_entry` would answer once it is stored.
        let coding = (answering.gzip).filter(|g| g.suits(head.status, &head.headers, Some(len)));
        if answering.dated_if_range(coding) {
            return None;
        }
        match range::requested(&request.headers, &head.headers, len) {
            Ranged::Part { start, end } => Some(StreamedPart {
                answering,
                bodiless,
                span: (start, end, len),
                coding,
                fwd,
            }),
            _ => None,
        }
    }

    /// Sends the 206 a hit would send (with `X-Cache: MISS`), and the
    /// part's bytes as they come, while `tee` takes the whole body
    /// (see [`relay::relay_part`]).
    fn stream(
        self,
        client: &mut Client,
        fetched: Fetched<'_>,
        tee: &mut Tee<'_>,
        shared: &Shared,
    ) -> Result<Outcome, Refusal> {
        let StreamedPart {
            answering,
            bodiless: entry,
            span,
            coding,
            fwd,
        } = self;
        let keep_alive = answering.keep_alive && !answering.shutting_down.load(Ordering::Relaxed);
        client.pacing = (answering.pacing).as_backend_says(&entry.head.headers);
        // Never stored, but this client's own.
        let mut cookies = Vec::new();
        (fetched.response.headers).write_named(&["set-cookie"], &mut cookies);
        let mut tail = Vec::with_capacity(256);
        let mut head = part_head(answering, entry, coding, span, &mut tail);
        let ending = Ending {
            status: Status::Filled { fwd },
            own: &cookies,
            code: 206,
            keep_alive,
        };
        ending.push(&mut tail, client, answering, entry);
        head.extend_from_slice(&tail);
        let how = Relay {
            keep_alive,
            ..answering.as_miss()
        };
        let (start, end, _) = span;
        let part = (head, relay::Window::of(start, end));
        let streamed = relay::relay_part(client, fetched, &how, part, tee, shared);
        if streamed.is_ok() {
            answering.cache.stats.misses.fetch_add(1, Ordering::Relaxed);
        }
        streamed
    }
}
