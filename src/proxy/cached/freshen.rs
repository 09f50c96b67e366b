//! What an origin's answer about a stored entry makes of it: a 304
//! (RFC 9111 §4.3.4), a 200 to a HEAD (§4.3.5).

use super::refresh::for_the_cache;
use crate::cache::policy::{self, CacheControl, Lifetime};
use crate::cache::store::Fill;
use crate::cache::{Cache, Entry};
use crate::http::RequestHead;
use crate::proxy::origin::Fetched;
use crate::proxy::relay;
use crate::proxy::{Client, Shared};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A stored entry the origin confirmed with a 304.
pub(super) struct Revalidated<'a> {
    pub(super) request: &'a RequestHead,
    pub(super) primary: &'a str,
    pub(super) entry: &'a Arc<Entry>,
    pub(super) response_time: SystemTime,
}

impl Revalidated<'_> {
    /// Stores the entry refreshed with the 304's fields and returns it; or,
    /// when those fields forbid storing it, drops what is stored for the
    /// URI and returns the refreshed entry unstored, for this one answer
    /// (which must say what the 304 said: `private`, say, not the old
    /// `public`). A 304 that may be stored, but not as the answer to this
    /// client's own request, refreshes only this answer: the entry stays
    /// as it was.
    pub(super) fn store(
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
        let everyones = judged(&neutral(&own, settings));
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
            (None, None) if settings.has_credentials(&own.headers) => refreshed(unstored),
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
pub(super) fn neutral(own: &RequestHead, settings: &policy::Settings) -> RequestHead {
    let mut neutral = own.clone();
    let credentials = [
        "authorization",
        "client-cert",
        "client-cert-chain",
        "cookie",
    ];
    let tokens = settings.credential_fields.iter().map(|f| &**f);
    for name in credentials.into_iter().chain(tokens) {
        neutral.headers.remove(name);
    }
    neutral.headers.retain(|name, _| !name.contains(&b'_'));
    neutral
}

/// A 200 to a HEAD sent for a stored GET response (RFC 9111 §4.3.5).
pub(super) struct HeadAnswer<'a> {
    pub(super) request: &'a RequestHead,
    pub(super) entry: &'a Entry,
    pub(super) response_time: SystemTime,
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
    pub(super) fn describes_entry(
        &self,
        fetched: &Fetched<'_>,
        settings: &policy::Settings,
    ) -> Option<bool> {
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

/// A HEAD request's view as the GET it is answered from.
pub(super) fn request_as_get(request: &RequestHead) -> RequestHead {
    let mut get = request.clone();
    get.method = "GET".into();
    get
}
