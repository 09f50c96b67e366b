//! GET and HEAD through the cache: answer from a stored response when the
//! rules allow, coalesce concurrent misses, revalidate stale entries, fall
//! back to a stale entry when the origin fails, and store what may be
//! stored while relaying it.
//!
//! # Layout
//! - `miss`: a GET or HEAD through the cache: look-up, coalesced misses,
//!   the fetch and what comes of its answer.
//! - `ranges`: GETs of a range ([`serve_range`]).
//! - `withhold`: a miss's own conditions and range withheld from the
//!   origin, and answered from what is stored.
//! - `streamed`: one range of a 200 sent as it streams into the cache.
//! - `fill`: storing a response as it is relayed.
//! - `refresh`: revalidating a stale entry ([`refresh()`]).
//! - `freshen`: an entry updated from a 304, or a HEAD's 200.
//! - `fetch`: asking the origin for the cache.
//! - `stale`: a stale entry standing in when the origin fails.
//! - `answer`: answering from a stored response.
//! - `overrides`: method override fields.
//! - here: which requests the cache has a say in, [`serve`], the look-up,
//!   and the request being answered ([`Answering`], [`Status`]).

mod answer;
mod decoded;
mod fetch;
mod fill;
mod freshen;
mod miss;
mod overrides;
mod ranges;
mod refresh;
mod stale;
mod streamed;
mod withhold;

pub(super) use overrides::overrides_to_unsafe;
pub(super) use ranges::serve_range;
pub(super) use refresh::{refresh, Refresh};

use super::origin::RequestBody;
use super::relay::Relay;
use super::{Client, Outcome, Refusal, Shared};
use crate::cache::policy::{self, CacheControl, OwnFields, Use};
use crate::cache::{Cache, Entry};
use crate::gzip::{Coding, Gzip};
use crate::http::edits::Applied;
use crate::http::RequestHead;
use crate::metrics::Metrics;
use crate::pace::Pacing;
use miss::through_cache;
use overrides::overrides_method;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
///
/// [`METHOD_OVERRIDES`]: overrides
fn asks_for_stored(head: &RequestHead, body: &RequestBody) -> bool {
    !["if-match", "if-unmodified-since"]
        .iter()
        .any(|name| head.headers.contains(name))
        && !overrides_method(head)
        && matches!(body, RequestBody::Buffered(b) if b.is_empty())
}

/// Whether [`serve_range`] looks in the cache for `request`: a `GET` of
/// a range that a stored response may answer.
pub(super) fn takes_range(request: &RequestHead, body: &RequestBody) -> bool {
    request.method == "GET" && request.headers.contains("range") && asks_for_stored(request, body)
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

/// The entry stored under `primary` for this request, and how it may be
/// used. The rules as they are now (`settings`) judge what was stored
/// under older ones (or read from a crafted snapshot): `ttl` caps its
/// freshness, and one not keyed on what `cache_vary` names is none.
fn look_up(
    cache: &Cache,
    primary: &str,
    request: &RequestHead,
    req_cc: &CacheControl,
    no_cache: bool,
    settings: &policy::Settings,
) -> Option<(Arc<Entry>, Use)> {
    let entry = cache.lookup_or_promote(primary, &request.headers, settings)?;
    if !settings.vary.keyed(entry.vary_names()) {
        return None;
    }
    let mut as_stored = entry.as_stored(SystemTime::now());
    as_stored.fresh = as_stored.fresh.min(settings.ttl);
    let usable = policy::usable(req_cc, no_cache, &as_stored);
    Some((entry, usable))
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
    /// served, never to what is stored; settled for the status served by
    /// [`Answering::at`].
    edits: Applied<'a>,
    /// With `gzip` on: what is compressed.
    gzip: Option<&'a Gzip>,
    /// The cache's name in `Cache-Status` (`cache_status`).
    cache_name: Option<&'a str>,
    /// Where what goes compressed is counted.
    metrics: &'a Metrics,
    /// The coding this client gets of those `gzip` makes, if any (see
    /// [`super::relay::client_accepts`]).
    takes: Option<Coding>,
    /// `gunzip` is on: a gzip-coded entry goes decoded to a client that
    /// takes no gzip, and says `Vary` to the others (see [`decoded`]).
    gunzip: bool,
    /// The client takes no gzip.
    lacks_gzip: bool,
    /// `ttl` as it is now, which caps what was stored under an older one.
    ttl: Duration,
}

impl<'a> Answering<'a> {
    /// As it answers with `status`: the fields the status decides.
    fn at(&self, status: u16) -> Answering<'a> {
        Answering {
            edits: self.edits.at(status),
            ..*self
        }
    }

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
            edits: (shared.pool_config(client.route).response_headers)
                .applied(client.response_edits),
            gzip: shared.gzip(client.route),
            cache_name: shared.config.cache_status.as_deref(),
            metrics: &shared.metrics,
            takes: shared
                .gzip(client.route)
                .and_then(|g| g.coding_for(client.accepts)),
            gunzip: shared.pool_config(client.route).gunzip,
            lacks_gzip: client.lacks_gzip,
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
            && self.takes.is_some()
            && (self.request.headers.get_str("if-range")).is_some_and(|c| !c.starts_with('"'))
    }

    /// How a response from the origin goes out to this client as a `MISS`.
    fn as_miss(&self) -> Relay {
        Relay {
            request_is_head: self.request.is_head(),
            version: self.request.version,
            keep_alive: self.keep_alive,
            x_cache: Some(Status::Miss.name()),
            takes: self.takes,
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
    ///
    /// [`Withheld`]: withhold::Withheld
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
