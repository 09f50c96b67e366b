//! A routed request on its way to a backend: its expectations and hops,
//! its body read or streamed, the cache's say, the fetch and the relay.

use super::origin::{self, Outgoing, RequestBody};
use super::relay::{self, Relay};
use super::{cached, tunnel, Client, Outcome, Refusal, Shared};
use crate::cache::{policy, Purge};
use crate::http::forward::max_forwards;
use crate::http::{BodyKind, RequestHead, Version};
use std::sync::atomic::Ordering;

/// This hop's entry in `Via` for a request received in `version`: RFC
/// 9110 §7.6.3 names the protocol it came in, not the one it goes on in.
pub(super) fn via_entry(version: Version) -> &'static str {
    match version {
        Version::Http10 => "1.0 inverso",
        Version::Http11 => "1.1 inverso",
    }
}

pub(super) fn forward(
    client: &mut Client,
    mut head: RequestHead,
    body_kind: BodyKind,
    shared: &Shared,
) -> Result<Outcome, Refusal> {
    let keep_alive = client.keeps_alive(&head);
    let mut expect_continue = false;
    // RFC 9110 §10.1.1: 100-continue is the only expectation defined; a
    // server that receives another may answer 417. "A server that receives
    // a 100-continue expectation in an HTTP/1.0 request MUST ignore that
    // expectation": such a client may not know 1xx responses at all.
    // Every line counts: `Expect` is a list, whether in one line or several.
    // Empty list elements are no expectation (RFC 9110 §5.6.1.2: a
    // recipient MUST ignore them); an element that is not UTF-8 is one.
    if head.version == Version::Http11 && head.headers.contains("expect") {
        let mut expectations = (head.headers.get_all("expect"))
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|e| !e.is_empty())
            .peekable();
        let any = expectations.peek().is_some();
        if !expectations.all(|e| e.eq_ignore_ascii_case(b"100-continue")) {
            return Err(Refusal::new(417, false));
        }
        expect_continue = any && body_kind != BodyKind::Empty;
    }
    // RFC 9110 §7.6.2: an OPTIONS that may go no further is answered here,
    // as its final recipient; one that may goes one hop less far. (TRACE,
    // the other method it counts on, is refused before.)
    if head.method == "OPTIONS" {
        match max_forwards(&head.headers) {
            Some(0) => {
                let keep_alive = keep_alive && body_kind == BodyKind::Empty;
                return Err(Refusal::new(200, keep_alive));
            }
            Some(hops) => {
                head.headers.remove("max-forwards");
                head.headers.push("Max-Forwards", (hops - 1).to_string());
            }
            None => {}
        }
    }
    // RFC 9110 §7.8: "A server MUST ignore an Upgrade header field that is
    // received in an HTTP/1.0 request." A request with a body is not
    // upgraded either: the switch would have to wait for the whole body,
    // and nobody needs that.
    let upgrade = tunnel::is_upgrade_request(&head) && body_kind == BodyKind::Empty;
    // Bodies are read whole first when they fit request_buffer_size: a
    // Content-Length says so at once; a chunked body is read until it ends
    // or outgrows it, and goes on a Content-Length if it ended (nginx's
    // proxy_request_buffering does the same; many backends take no
    // chunked request at all).
    // Past it, with `request_buffer_dir`, they are read whole to disk.
    let spool_dir = shared.config.request_buffer_dir.as_deref();
    let past_buffer = client.request_buffer == 0
        || matches!(body_kind, BodyKind::Length(n) if n > client.request_buffer);
    let body = match body_kind {
        BodyKind::Empty => RequestBody::Buffered(Vec::new()),
        _ if past_buffer && spool_dir.is_none() => {
            RequestBody::streamed(body_kind, client.max_body)
        }
        _ => {
            if expect_continue {
                client.send_continue()?;
                expect_continue = false;
            }
            client.read_body(body_kind, spool_dir)?
        }
    };
    // A FastCGI server is told the body's length before it comes
    // (`CONTENT_LENGTH`): a chunked one past request_buffer_size, with
    // nowhere to be read whole, cannot go to one.
    let chunked_stream = matches!(
        body,
        RequestBody::Streamed {
            kind: BodyKind::Chunked,
            ..
        }
    );
    if chunked_stream && shared.pool_config(client.route).speaks_fastcgi() {
        return Err(Refusal::new(411, false));
    }
    client.body_read_whole = body.is_read_whole();
    if let RequestBody::Buffered(bytes) = &body {
        if !bytes.is_empty() && shared.log_captures.request_body() {
            client.request_body = Some(bytes.as_slice().into());
        }
    }
    let cache = shared.cache_for(client.route);
    // Whether `mirror` has its copy already (see below).
    let mut copied = false;
    if let Some(cache) = cache.filter(|_| !upgrade) {
        let pool = shared.pool_config(client.route);
        // A signed-in user's request (`cache_bypass_cookies`): as one the
        // cache has no say in, it goes to the origin on its own, as sent,
        // and its answer to the client alone (BYPASS, below).
        // Or a request a route took for a field, a cookie or its
        // address (`if cookie canary 1`): another for the same URL may go
        // to another pool, whose answers are not this one's.
        let route = client.route.and_then(|i| shared.config.routes.get(i));
        let by_condition =
            (route.and_then(|r| r.condition())).is_some_and(|c| c.reads_past_the_key());
        let bypass = by_condition || pool.cache_bypass_cookies.matches(&head.headers);
        if pool.ignore_client_cache_control && !bypass && matches!(&*head.method, "GET" | "HEAD") {
            // A browser's reload (`no-cache`, `max-age=0`) is answered from
            // the cache, as nginx and Varnish do: a page everyone reloads at
            // once would otherwise send every reload to the backend. Taken
            // out of the request itself, so the cache's own fetch does not
            // carry them either.
            head.headers.remove("cache-control");
            head.headers.remove("pragma");
        }
        if bypass {
            // Nothing stored may answer it, so its `only-if-cached` (RFC
            // 9111 §5.2.1.7) gets what a miss gets.
            if cached::consulted(&head, &body)
                && policy::CacheControl::parse(&head.headers).only_if_cached
            {
                return Err(Refusal::new(504, keep_alive));
            }
        } else {
            // Copied before the cache is looked in, as nginx's `mirror`
            // copies a request before its `proxy_cache` has a say.
            if cached::eligible(&head, &body) {
                origin::mirror_cache_request(client, &head, shared);
                return cached::serve(client, head, cache, shared);
            }
            if cached::takes_range(&head, &body) {
                origin::mirror_cache_request(client, &head, shared);
                copied = true;
                if let Some(done) = cached::serve_range(client, &head, &body, cache, shared) {
                    return done;
                }
            }
        }
    }
    // Unsafe methods that succeed invalidate what is stored for their URI,
    // and for the ones their answer's Location and Content-Location name
    // (RFC 9111 §4.4), keyed as a GET of them would be; so does a method
    // override, which some backends take for the method it names.
    let ignored = &shared.config.cache_key_ignore_params;
    let invalidates = shared
        .cache
        .as_ref()
        .filter(|_| policy::is_unsafe(&head.method) || cached::overrides_to_unsafe(&head))
        .map(|_| policy::primary_keys_of_uri(&head, ignored));
    // A COPY or MOVE also changes the resource its `Destination` names
    // (RFC 4918 §9.8, §9.9): what is stored for it goes as for a
    // `Location`, when it is on the request's own host. Taken as the
    // client sent it, before anything is set on the request for the
    // backend: the cache keys the client's URLs.
    let destination = (invalidates.as_ref())
        .filter(|_| matches!(&*head.method, "COPY" | "MOVE"))
        .and_then(|_| head.headers.get_str("destination"))
        .map(str::to_owned);
    let send = Outgoing {
        body: &body,
        expect_continue,
        keep_alive,
        extra: &[],
        upgrade,
        interim_to_client: head.version == Version::Http11,
        abandon_if_client_leaves: true,
        mirrored: !upgrade && !copied,
    };
    let is_head = head.is_head();
    let version = head.version;
    let gzip = shared.gzip(client.route);
    let takes = gzip.and_then(|g| g.coding_for(client.accepts));
    // A client that takes gzip may hold a compressed answer, whose date
    // is the plain body's too: a part of the plain body, sent for its
    // `If-Range` date, would be spliced onto gzip bytes. Such a part of a
    // body gzip compresses is not relayed: the whole is asked for, and
    // goes compressed, as the cache answers it (`cached::answer::serve_entry`).
    // A part of a type gzip leaves alone (a `.zip` resumed) is.
    let resumed_by_date = takes.is_some()
        && head.method == "GET"
        && head.headers.contains("range")
        && (head.headers.get_str("if-range")).is_some_and(|c| !c.starts_with('"'))
        && matches!(&body, RequestBody::Buffered(b) if b.is_empty());
    let whole = resumed_by_date.then(|| head.clone());
    let mut fetched = origin::fetch(client, &mut head, &send, shared)?;
    let part_of_compressed = fetched.response.status == 206
        && gzip.is_some_and(|g| g.suits_the_whole_of(&fetched.response.headers));
    if let Some(mut whole) = whole.filter(|_| part_of_compressed) {
        relay::discard(fetched, false, client);
        whole.headers.remove("range");
        whole.headers.remove("if-range");
        let again = Outgoing {
            mirrored: false,
            ..send
        };
        fetched = origin::fetch(client, &mut whole, &again, shared)?;
        head = whole;
    }
    // Sent: the body cannot go again, and is not kept while the response
    // is relayed.
    drop(body);
    if fetched.response.status == 101 {
        return tunnel::run(client, fetched, &head, shared);
    }
    // On the status, not after the relay: the backend has acted on the
    // request even if its body or the client then fails (RFC 9111 §4.4:
    // "when it receives a non-error status code").
    if let (Some(cache), Some(keys)) = (&shared.cache, &invalidates) {
        if (200..400).contains(&fetched.response.status) {
            cache.invalidate_all(keys, Purge::Hard);
            let named = ["location", "content-location"]
                .map(|field| fetched.response.headers.get_str(field));
            for uri in named.into_iter().chain([destination.as_deref()]).flatten() {
                if let Some(more) = policy::keys_of_reference(keys, uri, ignored) {
                    cache.invalidate_all(&more, Purge::Hard);
                }
            }
        }
    }
    if client.gave_up_on(&fetched) {
        return Err(Refusal {
            upstream: Some(fetched.target.name.clone()),
            ..Refusal::silent()
        });
    }
    let how = Relay {
        request_is_head: is_head,
        version,
        keep_alive,
        x_cache: cache.is_some().then_some("BYPASS"),
        takes,
    };
    let outcome = relay::relay(client, fetched, &how, None, shared)?;
    if let Some(cache) = cache {
        cache.stats.bypass.fetch_add(1, Ordering::Relaxed);
    }
    Ok(outcome)
}
