//! Asking the origin for the cache, conditionally on what is stored.

use crate::cache::policy;
use crate::cache::Entry;
use crate::http::{RequestHead, Version};
use crate::proxy::origin::{self, Fetched, Outgoing, RequestBody};
use crate::proxy::relay;
use crate::proxy::{Client, Refusal, Shared};

/// Fetches `request` for the cache, conditionally when `stored` has
/// validators; returns the response head and whether the request that
/// got it was conditional (a 304 then refreshes `stored`). RFC 9111
/// §4.3.4: a 304 about another representation than the stored one
/// refreshes nothing; the request is then sent again, unconditionally.
/// `waiting`: when the client waits for this answer, whether its
/// connection may stay open if the fetch fails; `None` when it has its
/// answer already (see [`fetch`]).
pub(super) fn fetch_validated<'s>(
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
