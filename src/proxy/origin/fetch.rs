//! A request's way to a backend: the balancer's pick, the wait in the
//! queue at `max_conns`, other targets tried after a failure, and answers
//! whose status `retry_on_status` lists held while another is asked.

use super::attempt::{attempt, Terms};
use super::mirrored::mirror;
use super::report::{hold_against, report_answer};
use super::request::{prepare_request, upstream_request};
use super::retry::{is_idempotent, may_send_again, retry_elsewhere};
use super::{Busy, Destination, Failure, Fetched, Outgoing};
use crate::access_log::{By, Stage, Termination};
use crate::config::Config;
use crate::http::{Headers, RequestHead, ResponseHead};
use crate::proxy::{relay, Client, Refusal, Shared};
use crate::sub_filter;
use crate::throttle::OnceAMinute;
use crate::upstream::sticky::Sticky;
use crate::upstream::{InLine, Pick, Upstream};
use crate::variables::host_of;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Sends `head` (rewritten for the backend in place) to a backend chosen
/// by the balancer and reads its final response head, trying other
/// targets when that is safe (see [`retry_elsewhere`]), and when the
/// answer's status is listed in `retry_on_status` and the request may be
/// sent again (see [`may_send_again`]).
///
/// Such an answer is held while the next target is picked, and is the
/// one returned when none is left (the client gets the backend's own
/// answer, as with HAProxy and nginx, not a 502 of ours), or when every
/// one left is at its `max_conns`: an answer in hand is not given up to
/// wait in the queue. Only once another target is chosen is it
/// discarded; nothing of it reaches the client or the cache.
pub(in crate::proxy) fn fetch<'s>(
    client: &mut Client,
    head: &mut RequestHead,
    send: &Outgoing<'_>,
    shared: &'s Shared,
) -> Result<Fetched<'s>, Refusal> {
    fetch_from(client, head, send, Destination::of(client, shared), shared)
}

/// [`fetch`] from the pool `to` names, with its settings: a request's
/// own pool, or the one `auth_request` asks.
pub(in crate::proxy) fn fetch_from<'s>(
    client: &mut Client,
    head: &mut RequestHead,
    send: &Outgoing<'_>,
    to: Destination<'s>,
    shared: &'s Shared,
) -> Result<Fetched<'s>, Refusal> {
    let upstreams = shared.pools.get(to.pool);
    let pool_config = shared.config_of_pool(to.pool);
    let terms = Terms {
        timeout: shared.backend_timeout_to(to.pool, to.route),
        own: &shared.cache_rules.of_route(to.pool, to.route).own_fields,
    };
    let edits = &pool_config.request_headers;
    let forwarded = prepare_request(head, send, client, to, shared);
    // With a route's `rewrite=`: the backend's redirects and its cookies'
    // paths within what it was sent go back under the route's prefix.
    let rewriting = to.route.filter(|r| r.rewrite().is_some());
    let sent_host = edits.value_of("host").or(forwarded.host.as_deref());
    // uri_hash's key: the path and query the backend is sent (as the
    // client sent them, an absolute-form target's without its scheme and
    // host, so that either form of one URL goes to one target; as a
    // route's `rewrite=` made them), taken before anything in the head is
    // edited. `hash`'s key
    // was taken earlier still, before the sticky cookie left the request
    // (see `Client::hash_value`).
    let uri = forwarded.path.as_str();
    let idempotent = is_idempotent(&head.method);
    let mut tried = vec![false; upstreams.targets().len()];
    let mut retries_left = upstreams.retries();
    // The clock is read for it only where the limit is set.
    let retry_until = upstreams
        .retry_timeout()
        .map(|limit| Instant::now() + limit);
    let out_of_time = || retry_until.is_some_and(|until| Instant::now() >= until);
    let retry_on = upstreams.retry_on_status();
    let is_head = head.is_head();
    // The failure the client hears of when no target is left to try.
    let mut last_failure = None;
    // An answer with a listed status, held until another target is chosen.
    let mut held: Option<Fetched<'s>> = None;
    // While the request waits for a slot (`max_conns`).
    let mut queued: Option<InLine<'s>> = None;
    let mut copied = false;
    let mut last_tried: Option<&Upstream> = None;
    loop {
        let stuck_to = client.sticky.as_ref().and_then(Sticky::stuck_to);
        let waiting = queued.as_ref().map(InLine::place);
        let key = client.hash_key();
        let picked = upstreams.pick(client.real_ip, uri, key, &tried, stuck_to, waiting);
        let (index, mut busy) = match (picked, held.take()) {
            (Pick::Chosen(index, busy), answered) => {
                // The clock is read only after a wait: a request that
                // found a slot at once, as most do, costs nothing here.
                let waited = queued.take().map_or(Duration::ZERO, |l| l.since.elapsed());
                client.waited_in_queue(waited);
                // Another target will answer: this answer goes unread.
                if let Some(answered) = answered {
                    relay::discard(answered, is_head, client);
                }
                // What the log says of the last backend is of this one:
                // the one before is listed ahead of it.
                if let Some(before) = last_tried {
                    client.tried_before(before.name.clone());
                }
                client.forget_upstream_answer();
                let target = &upstreams.targets()[index];
                (index, Busy::new(target, busy, &client.exchange_tally))
            }
            (Pick::Full | Pick::Nothing | Pick::Unavailable, Some(answered)) => {
                // An answer after all, whatever failed after it.
                client.begin_anew();
                return Ok(answered);
            }
            (Pick::Full, None) => {
                let joined = &shared.metrics.queued;
                let Some((woken, line)) =
                    upstreams.wait_in_line(&mut queued, &tried, stuck_to, joined)
                else {
                    // As many wait as may (`max_queue`): refused at once,
                    // as nginx Plus's full `queue`.
                    client.waited_in_queue(Duration::ZERO);
                    client.ended(Termination::new(By::Proxy, Stage::Queue));
                    let keep_alive = send.keep_alive && send.body.is_read_whole();
                    return Err(Refusal::new(503, keep_alive));
                };
                let (since, until) = (line.since, line.until);
                let now = Instant::now();
                // A wait that ends the request is logged too, as HAProxy
                // logs `Tw` with its `sQ` and `CQ`: how long the queue
                // held it is the point then.
                let waited = now.saturating_duration_since(since);
                if client.has_left() {
                    client.waited_in_queue(waited);
                    client.ended(Termination::new(By::Client, Stage::Queue));
                    return Err(Refusal::silent());
                }
                let over = now >= until || shared.shutting_down.load(Ordering::Relaxed);
                if !woken && over {
                    client.waited_in_queue(waited);
                    // As HAProxy answers a request its queue timed out,
                    // and logs it (`sQ`).
                    client.ended(Termination::new(By::ServerTimeout, Stage::Queue));
                    let keep_alive = send.keep_alive && send.body.is_read_whole();
                    return Err(Refusal::new(503, keep_alive));
                }
                continue;
            }
            (Pick::Nothing, None) => {
                // No target to try (none healthy): HAProxy's `SC`, unless
                // the last one tried told how it failed.
                client.ended(Termination::new(By::Server, Stage::Connect));
                return Err(last_failure.unwrap_or_else(|| {
                    Refusal::new(502, send.keep_alive && send.body.is_read_whole())
                }));
            }
            // Every target drained or in maintenance: as HAProxy's 503
            // (and its `SC`).
            (Pick::Unavailable, None) => {
                client.ended(Termination::new(By::Server, Stage::Connect));
                return Err(Refusal::new(
                    503,
                    send.keep_alive && send.body.is_read_whole(),
                ));
            }
        };
        tried[index] = true;
        let picked = Instant::now();
        let target = busy.target;
        last_tried = Some(target);
        if !client.pending_fields.is_empty() {
            client.upstream = Some(target.name.clone());
        }
        let close = target.keeps_no_connection();
        let request = upstream_request(head, &forwarded, edits, send, target, close);
        // Once, whatever the retries: the mirror sees the request a
        // client made. Whether its connection is kept is its own pool's
        // word (see `mirror::send_and_read`), not this one's.
        let mirrors = send.mirrored && pool_config.mirror.is_some();
        if mirrors && !std::mem::replace(&mut copied, true) {
            let copy = upstream_request(head, &forwarded, edits, send, target, false);
            mirror(&copy, send, client, uri, to.pool, shared);
        }
        let failed = |status: u16| Refusal {
            status: Some(status),
            upstream: Some(target.name.clone()),
            keep_alive: send.keep_alive && send.body.is_read_whole(),
        };
        // The log tells how the last target tried ended the exchange.
        client.begin_anew();
        let attempted = attempt(
            client, upstreams, &mut busy, &request, send, idempotent, &terms,
        );
        if let Err(f) = &attempted {
            client.failed(f);
        }
        match attempted {
            Ok((up, mut response, head_len, request_time)) => {
                busy.answered_on(&up, head_len);
                // As the backend wrote them, before `Location` is made
                // the client's.
                if shared.log_captures.upstream_fields() {
                    client.upstream_fields = Some(response.headers.clone());
                }
                // A `Location` a route's `rewrite=` put back under its
                // prefix is the client's: `location_rewrite` leaves it.
                let mut location_made = false;
                if let Some(route) = rewriting {
                    // `Content-Location` too: it names a URL of the
                    // client's, which a successful POST's invalidates.
                    for field in ["Location", "Content-Location"] {
                        let named = response.headers.get_str(field);
                        let back = named.and_then(|l| route.location_back(l.trim(), sent_host));
                        if let Some(back) = back {
                            location_made |= field == "Location";
                            response.headers.set(field, back);
                        }
                    }
                    // The backend's cookies: the proxy's own sticky cookie
                    // is added as the head is written (`relay`), after.
                    (response.headers).edit_values("set-cookie", |c| route.set_cookie_back(c));
                }
                let rules = &pool_config.location_rewrite;
                if !rules.is_empty() {
                    let rendered = &forwarded.location_rewrite;
                    if !location_made {
                        let location = response.headers.get_str("location");
                        let made = location.and_then(|l| rules.location(rendered, l));
                        if let Some(made) = made {
                            response.headers.set("Location", made);
                        }
                    }
                    let refresh = response
                        .headers
                        .get_str("refresh")
                        .and_then(|r| rules.refresh(rendered, r));
                    if let Some(refresh) = refresh {
                        response.headers.set("Refresh", refresh);
                    }
                }
                let cookie_domain = &pool_config.cookie_domain;
                if !cookie_domain.is_empty() {
                    let host = forwarded.host.as_deref().map(host_of);
                    (response.headers).edit_values("set-cookie", |c| cookie_domain.apply(c, host));
                }
                // After a route's `cookie_paths`, on the paths it made.
                let cookie_path = &pool_config.cookie_path;
                if !cookie_path.is_empty() {
                    (response.headers).edit_values("set-cookie", |c| cookie_path.apply(c));
                }
                // After the paths: a rule reads the cookie's name alone.
                let cookie_flags = &pool_config.cookie_flags;
                if !cookie_flags.is_empty() {
                    (response.headers).edit_values("set-cookie", |c| cookie_flags.apply(c));
                }
                let substitution =
                    rewrites_body(pool_config, &mut response, &head.headers).then(|| {
                        (pool_config.sub_filter)
                            .substitution(&forwarded.sub_filter, pool_config.sub_filter_once)
                    });
                let status = response.status;
                report_answer(target, picked, status, retry_on, client);
                let fetched = Fetched {
                    target,
                    up,
                    response,
                    head_len,
                    request_time,
                    busy: Some(busy),
                    slot: None,
                    substitution,
                };
                // After a forced shutdown cut the connections, the answer
                // in hand is the last there will be.
                if !retry_on.contains(status)
                    || retries_left == 0
                    || out_of_time()
                    || !tried.contains(&false)
                    || !may_send_again(idempotent, send.body)
                    || client.watch.cut()
                {
                    return Ok(fetched);
                }
                held = Some(fetched);
                retries_left -= 1;
            }
            Err(Failure::Client(status)) => {
                return Err(Refusal {
                    status,
                    upstream: Some(target.name.clone()),
                    keep_alive: false,
                })
            }
            Err(f) if client.watch.cut() => {
                client.upstream_status = Some(f.status());
                return Err(failed(f.status()));
            }
            Err(Failure::Local(e)) => {
                busy.untimed();
                static SHORT: OnceAMinute = OnceAMinute::new();
                if SHORT.due() {
                    log::error!(
                        "cannot open a connection to a backend: {e}; answering 503 (this \
                         process's limits: see `max_connections`; said at most once a minute)"
                    );
                }
                return Err(Refusal {
                    upstream: None,
                    ..failed(503)
                });
            }
            Err(f) => {
                hold_against(target, &f, client);
                client.upstream_status = Some(f.status());
                let untried = tried.iter().any(|&t| !t);
                if retries_left == 0
                    || !untried
                    || !retry_elsewhere(&f, idempotent, send.body)
                    || out_of_time()
                {
                    return Err(failed(f.status()));
                }
                last_failure = Some(failed(f.status()));
                retries_left -= 1;
            }
        }
    }
}

/// Whether `sub_filter` rewrites the body of `response`: then, and for
/// a `304` that validates such a body, its validators are made the
/// rewritten body's, before the cache reads them.
fn rewrites_body(pool: &Config, response: &mut ResponseHead, request: &Headers) -> bool {
    if pool.sub_filter.is_empty() {
        return false;
    }
    let (types, keeps) = (&pool.sub_filter_types, pool.sub_filter_last_modified);
    let headers = &mut response.headers;
    let rewrites = sub_filter::rewrites(types, response.status, headers);
    let validates =
        response.status == 304 && sub_filter::validates_rewritten(types, headers, request, keeps);
    if rewrites || validates {
        sub_filter::edit_validators(headers, keeps);
    }
    rewrites
}
