//! One request's exchange ([`exchange`]): its head parsed, its client
//! named, then rewritten, routed and checked in turn before it is
//! forwarded.

use super::forward::forward;
use super::log_line::LogLine;
use super::own_answer::{answer_unread_with, deny, refused_head, REFUSED};
use super::refusal::answer_refusal;
use super::rewriting::{rewrite, RuleAnswer};
use super::{answer_unread, client_cert, files, first_line, forward_auth, location_field};
use super::{origin, relay, Client, Outcome, OwnText, Shared, PLAIN};
use crate::access;
use crate::access_log::{By, Stage, Termination};
use crate::auth::jwt_keys::{self, JwtKeys};
use crate::auth::{self, jwt};
use crate::config::Config;
use crate::digits::push_field;
use crate::error_limit::ErrorLimit;
use crate::gzip;
use crate::http::forward::FORWARDING_FIELDS;
use crate::http::head::parse_request;
use crate::http::headers::read_alike;
use crate::http::{BodyKind, RequestHead};
use crate::https_redirect;
use crate::ratelimit::{self, Keys};
use crate::realip;
use crate::request_id;
use crate::routes::{Ambiguous, Lookup, CLOSE_UNANSWERED};
use crate::secure_link::{self, Verdict};
use crate::throttle::OnceAMinute;
use crate::trace_context::TraceMode;
use crate::upstream::hash_on::HashOn;
use crate::upstream::sticky::{self, Sticky};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Whether `name`, read with `_` as `-`, is a field the proxy writes or
/// frames the message with itself.
fn stands_in_for_proxy_field(name: &[u8]) -> bool {
    let framing = ["host", "content-length", "transfer-encoding", "connection"];
    (framing.iter().chain(&FORWARDING_FIELDS)).any(|ours| read_alike(ours.as_bytes(), name))
}

/// The status a request the pool's secure links refuse is answered
/// (nginx's `secure_link`: 403, or 410 for a time gone; its
/// `secure_link_secret`: 403); `None` when it may go on, a link signed
/// in its path then without its hash: the backend, the cache's key and
/// the log's `$uri` have it so, `$request_uri` the client's.
fn secure_link_refusal(
    client: &mut Client,
    head: &mut RequestHead,
    settings: &Config,
    shared: &Shared,
) -> Option<u16> {
    if let (Some(given), Some(signed)) = (&settings.secure_link, &settings.secure_link_md5) {
        let facts = origin::facts(head, client, shared);
        match secure_link::check(given, signed, &facts, SystemTime::now()) {
            Verdict::Valid => {}
            Verdict::Forged => return Some(403),
            Verdict::Expired => return Some(410),
        }
    }
    if let Some(secret) = &settings.secure_link_secret {
        let Some(to) = secure_link::unsigned_target(&head.origin_target(), secret) else {
            return Some(403);
        };
        let sent = head.set_path_and_query(&to);
        client.sent_target.get_or_insert(sent);
        client.made_target = Some(to);
    }
    None
}

/// The `error_limit` that counts and refuses the client of the request
/// being served, if any: none for one `error_limit_except_from` names,
/// nor for a proxy `real_ip_from` trusts (a request it sends is a
/// client's it names, or, when it names none, refusing it would refuse
/// every client behind it).
pub(super) fn error_limit_of<'s>(client: &Client, shared: &'s Shared) -> Option<&'s ErrorLimit> {
    let config = &shared.config;
    let errors = shared.limiters.errors.as_deref()?;
    let spared = config.error_limit_except_from.holds(client.real_ip)
        || config.real_ip_from.holds(client.real_ip);
    (!spared).then_some(errors)
}

/// A `Retry-After` field line for a wait: whole seconds, rounded up, at
/// least one.
fn retry_after(wait: Duration) -> Vec<u8> {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut field = Vec::new();
    push_field(&mut field, "Retry-After", seconds.max(1));
    field
}

/// One request/response exchange, from a complete head in the client's
/// buffer to the last byte of the response.
pub(super) fn exchange(
    client: &mut Client,
    head_len: usize,
    shared: &Shared,
) -> (Outcome, LogLine) {
    let parsed = parse_request(&client.conn.buffered()[..head_len], &client.limits)
        .and_then(|head| BodyKind::for_request(&head).map(|kind| (head, kind)));
    let (mut head, body_kind) = match parsed {
        Ok(ok) => ok,
        Err(e) => {
            client.ended(refused_head(e.status()));
            let line = LogLine::raw(first_line(client.conn.buffered()));
            let bytes = client.refuse_unparsed(e.status(), &shared.config);
            return (Outcome::closing(e.status(), bytes), line);
        }
    };
    client.conn.consume(head_len);
    // Read once for every answer to it, and only where some pool
    // compresses: `Accept-Encoding` is looked for in each head otherwise.
    client.accepts = match shared.gzip.iter().any(Option::is_some) {
        true => relay::client_accepts(&head),
        false => Default::default(),
    };
    client.lacks_gzip = shared.gunzips && !gzip::accepted(&head.headers);
    let trusted = &shared.config.real_ip_from;
    client.set_real_ip(realip::client_address(client.peer, &head.headers, trusted));
    client.scheme = realip::client_scheme(client.peer, client.tls_in_front, &head.headers, trusted);
    let from_proxy = realip::is_trusted(client.peer, trusted);
    // Before the cache reads the request: one with a certificate is an
    // authenticated one (see `policy::has_credentials`).
    client_cert::put_fields(&mut head.headers, client.certificate.as_deref());
    if let Some((name, id)) = &mut client.request_id {
        // The last field of that name: a proxy in front that adds its own
        // (HAProxy's `unique-id-header` does) leaves its client's before
        // it, as with X-Forwarded-For, and the client's is never kept.
        let given = head
            .headers
            .get_all(name)
            .next_back()
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim);
        if let Some(given) = given.filter(|g| from_proxy && request_id::is_well_formed(g)) {
            *id = given.to_string();
        }
    }
    // One field, or the trace is none: two would be two traces.
    if shared.config.trace_context != TraceMode::Off {
        let mut traceparents = head.headers.get_all("traceparent");
        let traceparent = traceparents
            .next()
            .filter(|_| traceparents.next().is_none());
        client.trace = shared.config.trace_context.begin(traceparent);
    }
    let mut line = LogLine::of(&head, shared);
    // An ACME server proving a name of `acme_domains`: before the access
    // lists, routes and the redirect to HTTPS, which would keep it from
    // the answer (it asks from its own addresses, over plain HTTP).
    if let Some(acme) = &shared.acme {
        let asks = matches!(head.method.as_str(), "GET" | "HEAD");
        if let Some(answer) = acme.answer(&head.path_and_query()).filter(|_| asks) {
            let answer = (200, Some(OwnText::plain(&answer)));
            let outcome = answer_unread_with(client, &head, body_kind, answer, b"", shared);
            return (outcome, line);
        }
    }
    // Before anything else is done for a client refused for its errors
    // (a redirect, a route's answer); after the ACME server's, which may
    // ask from an address shared with a scanner.
    if let Some(errors) = error_limit_of(client, shared) {
        if let Err(wait) = errors.admit(client.real_ip, Instant::now()) {
            client.error_limited = true;
            shared.metrics.error_limited.fetch_add(1, Ordering::Relaxed);
            client.ended(REFUSED);
            let outcome = answer_unread(client, &head, body_kind, 429, &retry_after(wait), shared);
            return (outcome, line);
        }
    }
    // After the log line, which shows the request as it came (a forged
    // claim is worth seeing there); before anything else reads them.
    if !from_proxy {
        realip::drop_claims(&mut head.headers);
    }
    // `deny.<name>`: before a rule rewrites the path or a route is
    // chosen, so that no route escapes them.
    if !shared.config.deny.is_empty() {
        if let Some(outcome) = deny_by_rule(client, &head, body_kind, shared) {
            return (outcome, line);
        }
    }
    // `rewrite.<name>`: after the log line is taken (it shows the request
    // as it came, as nginx's `$request`), before routing, which goes by
    // the new path. A rule that redirects is answered below, where a
    // redirect route is: it is routed by the path as it came.
    let rule_answer = match shared.config.rewrites.is_empty() {
        true => None,
        false => match rewrite(client, &mut head, &shared.config.rewrites) {
            Ok(answer) => answer,
            Err(Ambiguous) => {
                client.route = None;
                client.ended(REFUSED);
                let outcome = answer_unread(client, &head, body_kind, 400, b"", shared);
                return (outcome, line);
            }
        },
    };
    let target = head.path_and_query();
    let asked = client.asked(&head, &target, shared);
    let routes = &shared.config.routes;
    client.route = match routes.route_asked(head.authority(), &target, Lookup::Request(&asked)) {
        Ok(route) => route,
        // A path with dot-segments or a `\`: which route it is for
        // depends on how each backend reads it.
        Err(Ambiguous) => {
            client.route = None;
            client.ended(REFUSED);
            let outcome = answer_unread(client, &head, body_kind, 400, b"", shared);
            return (outcome, line);
        }
    };
    // Routed: from here on, what the request is answered (a cache hit,
    // the pool's own refusals and errors too) is logged with its pool,
    // and counted under it.
    client.pool = shared.routed_pool(client.route);
    // The pool's lists and limit: its own, or the top-level ones.
    let settings = shared.pool_config(client.route);
    render_response_fields(client, &head, settings, shared);
    client.pacing = settings.pacing;
    client.pass_trailers = settings.pass_trailers;
    // A route's own limit: nginx's `client_max_body_size` in a `location`.
    let route = shared.taken(client.route);
    let max_body = route.and_then(|r| r.own_settings().max_body_size);
    client.max_body = match max_body.unwrap_or(settings.max_body_size) {
        0 => u64::MAX,
        n => n,
    };
    if !access::admits(client.real_ip, &settings.allow_from, &settings.deny_from) {
        return (deny(client, &head, shared), line);
    }
    if let Some(status) = secure_link_refusal(client, &mut head, settings, shared) {
        client.ended(REFUSED);
        let outcome = answer_unread(client, &head, body_kind, status, b"", shared);
        return (outcome, line);
    }
    // `return 444` says nothing, over either scheme (a scanner gets no
    // redirect to HTTPS either): the connection is closed, what the
    // client still sends unread. Not a request a rule redirects (a
    // `host=` rule's redirect for a host a catch-all route drops); one a
    // rule failed on is dropped as the rest, not told of it in a 500.
    let dropped = route.and_then(|r| r.returned()).map(|r| r.status) == Some(CLOSE_UNANSWERED);
    if dropped && !matches!(rule_answer, Some(RuleAnswer::Redirect(..))) {
        client.ended(REFUSED);
        let outcome = Outcome {
            linger: false,
            ..Outcome::closing(CLOSE_UNANSWERED, 0)
        };
        return (outcome, line);
    }
    // After the access lists, so that a refused client is refused on
    // either scheme; before the rate limit, so that a page is counted
    // once, when the browser asks again over HTTPS, as nginx's `return`
    // (its rewrite phase) comes before `limit_req`. The pool's word, as
    // nginx's `return` in one `server` of several; the paths excepted
    // are the top level's for every pool.
    if settings.redirect_to_https && client.scheme == "http" {
        let except = &shared.config.redirect_to_https_except;
        let sent = client.sent_target.as_deref().unwrap_or(&head.target);
        if let Some(redirect) = https_redirect::redirect(&head, sent, except) {
            shared
                .metrics
                .https_redirects
                .fetch_add(1, Ordering::Relaxed);
            let location = location_field(&redirect.location);
            let status = redirect.status;
            let outcome = answer_unread(client, &head, body_kind, status, &location, shared);
            return (outcome, line);
        }
    }
    // A rule that redirects (`rewrite.old = ^/old/(.*)$ /new/$1
    // permanent`), or that made no target to go on with: answered here,
    // as a redirect route is.
    match rule_answer {
        Some(RuleAnswer::Redirect(status, to)) => {
            let field = location_field(&to);
            let outcome = answer_unread(client, &head, body_kind, status, &field, shared);
            return (outcome, line);
        }
        Some(RuleAnswer::Failed) => {
            let outcome = answer_unread(client, &head, body_kind, 500, b"", shared);
            return (outcome, line);
        }
        None => {}
    }
    // A route that redirects (`route.www.example.com = redirect 301
    // https://example.com`): answered here, as the HTTPS redirect is.
    if let Some((status, to)) = route.and_then(|r| r.redirect_for(&head.path_and_query())) {
        let field = location_field(&to);
        let outcome = answer_unread(client, &head, body_kind, status, &field, shared);
        return (outcome, line);
    }
    // `route./healthz = return 200 ok`, `route./.git/ = return 404`.
    if let Some(returned) = route.and_then(|r| r.returned()) {
        let mut rendered = Vec::new();
        let body = returned.body(|| origin::facts(&head, client, shared), &mut rendered);
        let text = body.map(|body| OwnText {
            body,
            content_type: returned.content_type.as_deref().unwrap_or(PLAIN),
        });
        let answer = (returned.status, text);
        let outcome = answer_unread_with(client, &head, body_kind, answer, b"", shared);
        return (outcome, line);
    }
    // `hash`'s key, from the request as the client sent it: before the
    // sticky cookie is taken out (`hash_on` may name it) and any field is
    // dropped or edited on its way to a backend or the cache.
    client.hash_value.clear();
    if let Some(value) = (settings.hash_on.as_ref()).and_then(|on| on.value_in(&head)) {
        client.hash_value.extend_from_slice(value);
    }
    client.sticky = settings.sticky_cookie.clone().map(|name| {
        let lifetimes = settings.sticky_cookie_lifetimes;
        // Only a dated cookie needs the clock.
        let now = lifetimes.any().then(sticky::unix_now).unwrap_or(0);
        let sent = sticky::take(&mut head.headers, &name);
        Sticky {
            sent: sent.map_or_else(Default::default, |v| lifetimes.read(&v, now)),
            name,
            lifetimes,
            now,
            nocache: settings.sticky_cookie_nocache,
            attributes: settings.sticky_cookie_attributes.clone(),
        }
    });
    // The route's own `rate_limit=` and its pool's, both: by the pool's key.
    let own = client.route.and_then(|i| shared.limiters.of_route(i));
    let limits = [own, shared.limiter(client.route)].map(|l| l.map(|l| &**l));
    if limits.iter().any(Option::is_some) {
        // A request that does not carry what `rate_limit_key` names is
        // counted by its address: leaving the key out gets around nothing.
        let underscores = shared.config.underscores_in_headers;
        let keys = (settings.rate_limit_key.as_ref()).map_or(Keys::Address, |on| {
            ratelimit::key_in(on, &head, underscores)
        });
        let now = Instant::now();
        let admitted = ratelimit::admit_under_all(limits, &keys, client.real_ip, now);
        match admitted {
            Ok(delay) if delay.is_zero() => client.limit_req = Some("PASSED"),
            // nginx's `limit_req_dry_run`: a limit tried on real traffic.
            _ if settings.rate_limit_dry_run => {
                let (counter, would, status) = match admitted {
                    Ok(_) => (
                        &shared.metrics.rate_limit_delayed_dry_run,
                        "held back",
                        "DELAYED_DRY_RUN",
                    ),
                    Err(_) => (
                        &shared.metrics.rate_limited_dry_run,
                        "refused",
                        "REJECTED_DRY_RUN",
                    ),
                };
                client.limit_req = Some(status);
                counter.fetch_add(1, Ordering::Relaxed);
                static SAID: OnceAMinute = OnceAMinute::new();
                if SAID.due() {
                    log::warn!(
                        "rate_limit_dry_run: a request from {} would have been {would} (said at \
                         most once a minute; /metrics counts them all)",
                        client.real_ip
                    );
                }
            }
            // `rate_limit_delay`: its turn at the rate, as nginx's
            // `limit_req` without `nodelay` holds a request back; the
            // thread waiting is the connection's own.
            Ok(delay) => {
                client.limit_req = Some("DELAYED");
                shared
                    .metrics
                    .rate_limit_delayed
                    .fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(delay);
            }
            Err(wait) => {
                client.limit_req = Some("REJECTED");
                shared.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                client.ended(REFUSED);
                let outcome =
                    answer_unread(client, &head, body_kind, 429, &retry_after(wait), shared);
                return (outcome, line);
            }
        }
    }
    // RFC 9110 §15.5.14: a server may refuse a request whose content is
    // larger than it is willing to process with 413, and close the
    // connection (the body is not read). A declared length is checked
    // before anything is read or forwarded, or asked of `auth_basic` and
    // `auth_request`'s gateway (nginx checks `client_max_body_size` before
    // its access phase); a chunked body is counted as it streams
    // (BodyReader::with_limit).
    if matches!(body_kind, BodyKind::Length(n) if n > client.max_body) {
        client.ended(REFUSED);
        let bytes = client.send_error_to(413, true, head.is_head(), shared);
        return (Outcome::closing(413, bytes), line);
    }
    // After the rate limit, so that guessing passwords takes a client's
    // tokens (nginx's `limit_req` comes before `auth_basic` too); before
    // the cache, so that nothing stored reaches a client not signed in.
    if let Some((realm, users)) = (settings.auth_basic.as_ref()).zip(settings.auth_users.as_ref()) {
        match auth::check(users, &head.headers, &mut client.granted) {
            // `$remote_user`, for the values that may name it (those of
            // the `auth_request` service's pool too): only a user signed in.
            Ok(()) if names_variables(settings, shared) => {
                client.user = auth::claimed_user(&head.headers);
                render_response_fields(client, &head, settings, shared);
            }
            Ok(()) => {}
            // A client `auth_basic_except_from` spares goes on, but not
            // with credentials that are not a user's: a backend that
            // trusts the name would take it for a user signed in.
            Err(_) if settings.spares_auth(client.real_ip) => {
                if head.headers.remove("authorization") > 0 {
                    line.remote_user = None;
                }
            }
            Err(refused) => {
                shared.metrics.count_auth_refusal(refused);
                client.ended(REFUSED);
                let challenge = auth::challenge(realm);
                let challenge = challenge.as_bytes();
                let outcome = answer_unread(client, &head, body_kind, 401, challenge, shared);
                return (outcome, line);
            }
        }
    }
    // `auth_jwt`: where `auth_basic` is, which it cannot be on beside.
    if let Some((realm, source)) = (settings.auth_jwt.as_ref()).zip(settings.auth_jwt_keys.as_ref())
    {
        let Some(keys) = source.current() else {
            // Fetched keys that have never come: no token can be checked,
            // which is not the client's doing, nor a reason to ask it for
            // another token (a 401 would).
            client.ended(Termination::new(By::Server, Stage::Request));
            let mut retry_after = Vec::new();
            push_field(&mut retry_after, "Retry-After", jwt_keys::RETRY.as_secs());
            let outcome = answer_unread(client, &head, body_kind, 503, &retry_after, shared);
            return (outcome, line);
        };
        match token_verdict(&head, &keys, settings) {
            Some(Ok(verified)) => {
                // `$remote_user`: the token's subject, allowed here or not.
                line.remote_user.clone_from(&verified.subject);
                let allowed =
                    (settings.auth_jwt_require.as_ref()).is_none_or(|r| r.holds(&verified.claims));
                // The claims are kept only for what names them.
                let (logged, used) = (
                    shared.log_captures.jwt_claims(),
                    allowed && names_variables(settings, shared),
                );
                let claims = (logged || used).then(|| Arc::new(verified.claims));
                if logged {
                    line.jwt_claims.clone_from(&claims);
                }
                if !allowed {
                    shared.metrics.count_auth_refusal(auth::Refused::Forbidden);
                    client.ended(REFUSED);
                    let challenge = jwt::challenge_forbidden(realm);
                    let challenge = challenge.as_bytes();
                    let outcome = answer_unread(client, &head, body_kind, 403, challenge, shared);
                    return (outcome, line);
                }
                if used {
                    client.user = verified.subject;
                    client.jwt_claims = claims;
                    render_response_fields(client, &head, settings, shared);
                }
            }
            refused => {
                if let (Some(Err(jwt::Invalid::Signature)), JwtKeys::Fetched(fetched)) =
                    (&refused, source)
                {
                    // The provider may have begun to sign with a new key.
                    if jwt_token(&head, settings)
                        .is_some_and(|token| jwt::names_unknown_key(token, &keys))
                    {
                        fetched.ask_again();
                    }
                }
                let sent_one = refused.is_some();
                shared.metrics.count_auth_refusal(match sent_one {
                    true => auth::Refused::Wrong,
                    false => auth::Refused::Missing,
                });
                client.ended(REFUSED);
                let challenge = jwt::challenge(realm, sent_one);
                let challenge = challenge.as_bytes();
                let outcome = answer_unread(client, &head, body_kind, 401, challenge, shared);
                return (outcome, line);
            }
        }
    }
    // As nginx does by default: a backend that maps `-` and `_` to one
    // name (CGI, WSGI, Rack) would read `X_Forwarded_For` as our
    // X-Forwarded-For, or `Content_Length` as framing we did not check.
    // Allowed, they still never stand in for a field the proxy writes.
    // Before `auth_request`, whose service may read names so too.
    let underscores = shared.config.underscores_in_headers;
    head.headers.retain(|name, _| {
        !name.contains(&b'_') || (underscores && !stands_in_for_proxy_field(name))
    });
    // `auth_request`: after `auth_basic` (both may be on), before the
    // files and the cache, as the sign-in above.
    let names = &settings.auth_request_headers;
    if let Some(asked) = &settings.auth_request {
        match forward_auth::ask(client, &mut head, body_kind, asked, names, shared) {
            Ok(None) => {}
            Ok(Some(answered)) => return (answered, line),
            Err(refusal) => {
                let (version, head_request) = (head.version, head.is_head());
                let outcome = answer_refusal(client, refusal, version, head_request, shared);
                return (outcome, line);
            }
        }
    } else if !names.is_empty() {
        forward_auth::take_out(&mut head, names);
    }
    // `hash_on` a field the service gives (`header:Remote-User`, one
    // target per user): its value, not the one the client sent.
    if let Some(on @ HashOn::Header(field)) = &settings.hash_on {
        if names
            .iter()
            .any(|n| read_alike(n.as_bytes(), field.as_bytes()))
        {
            client.hash_value.clear();
            if let Some(value) = on.value_in(&head) {
                client.hash_value.extend_from_slice(value);
            }
        }
    }
    // `route./static/ = files /srv/www`: after the sign-in, so that files
    // behind a password stay behind it; before the cache, which never
    // holds them (the page cache does).
    if let Some((route, files)) = route.and_then(|r| Some((r, r.files()?))) {
        // Not there for clients: for a backend's `X-Accel-Redirect`.
        if route.is_internal() {
            return (
                answer_unread(client, &head, body_kind, 404, b"", shared),
                line,
            );
        }
        let target = head.path_and_query();
        let under = route.path_under(target.split('?').next().unwrap_or_default());
        let answered = files::serve(client, &head, body_kind, files, &under, None, shared);
        if let Some(outcome) = answered {
            return (outcome, line);
        }
    }
    // A pool whose backends never get the client's credentials (its
    // `request_header.Authorization` removes them, or sets its own; the
    // same of `auth_jwt_header`'s field) gets answers that cannot depend
    // on them: the cache reads the request without them too, as anyone's
    // (RFC 9111 §3.5 keeps a shared cache from answering with what an
    // origin sent for credentials it saw). Not when a value holds
    // variables: one may tell the backend who the client is
    // (`$remote_user`), and its answer is then for them alone.
    let edits = &settings.request_headers;
    if !edits.per_request() {
        for name in std::iter::once("authorization").chain(settings.jwt_token_field()) {
            if edits.edits(name.as_bytes()) {
                head.headers.remove(name);
            }
        }
    }
    // While the body arrives, a pause longer than client_body_timeout ends
    // the exchange with 408 (the response side keeps connection_timeout).
    let has_body = body_kind != BodyKind::Empty;
    if has_body {
        client.time_reads_out_after(client.body_timeout);
    }
    let wants_keep_alive = head.wants_keep_alive();
    let head_request = head.is_head();
    let version = head.version;
    client.body_read_whole = false;
    client.accel =
        (shared.config.routes.take_accel_redirects()).then(|| files::accel_request(&head));
    let forwarded = forward(client, head, body_kind, shared);
    // A client that asked to close and whose request was read to its end
    // has nothing more to send: no lingering. A streamed body may have been
    // cut short by an early response, and its rest still be coming.
    let client_closes = !wants_keep_alive && client.body_read_whole;
    let outcome = match forwarded {
        Ok(outcome) => Outcome {
            linger: !client_closes,
            ..outcome
        },
        Err(refusal) => Outcome {
            // As after a relayed response: a client that asked to close
            // and sent all it had leaves nothing to drain.
            linger: !client_closes,
            ..answer_refusal(client, refusal, version, head_request, shared)
        },
    };
    (outcome, line)
}

/// Whether a field value of `settings`, or of its `auth_request`
/// service's pool, or its `auth_request_redirect`, holds variables.
fn names_variables(settings: &Config, shared: &Shared) -> bool {
    let asked = (settings.auth_request.as_ref()).map(|a| shared.config_of_pool(a.pool));
    let redirect = settings.auth_request_redirect.as_ref();
    (std::iter::once(settings).chain(asked))
        .any(|c| c.request_headers.per_request() || c.response_headers.per_request())
        || redirect.is_some_and(|url| url.text().is_none())
}

/// The token of `head`, where `settings` say it comes.
fn jwt_token<'a>(head: &'a RequestHead, settings: &'a Config) -> Option<&'a [u8]> {
    let (field, cookie) = (
        settings.jwt_token_field(),
        settings.auth_jwt_cookie.as_deref(),
    );
    jwt::token(&head.headers, field, cookie)
}

/// What the token of `head` is worth under `settings`' `auth_jwt_*`:
/// `None` without one; refused when `keys` do not verify it, or it was
/// issued by another issuer or for another audience than those asked.
fn token_verdict(
    head: &RequestHead,
    keys: &jwt::Jwks,
    settings: &Config,
) -> Option<Result<jwt::Verified, jwt::Invalid>> {
    let token = jwt_token(head, settings)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (issuer, audience) = (
        settings.auth_jwt_issuer.as_deref(),
        settings.auth_jwt_audience.as_deref(),
    );
    let leeway = settings.auth_jwt_leeway.as_secs();
    let verified = jwt::verify_within(token, keys, now, leeway).and_then(|v| {
        match v.is_for(issuer, audience) {
            true => Ok(v),
            false => Err(jwt::Invalid::NotOurs),
        }
    });
    Some(verified)
}

/// Renders the `response_header.*` of `settings` whose values hold
/// variables for the request `head`, into the fields each response to it
/// carries (see [`Client::response_fields`]).
fn render_response_fields(
    client: &mut Client,
    head: &RequestHead,
    settings: &Config,
    shared: &Shared,
) {
    let edits = &settings.response_headers;
    if edits.per_request() {
        let target = head.path_and_query();
        client.response_edits = edits.choose(&client.asked(head, &target, shared), &target);
        let edits = edits.applied(client.response_edits);
        // The fixed ones are in each head already (`set_lines`).
        let mut fields = std::mem::take(&mut client.response_fields);
        let mut pending = std::mem::take(&mut client.pending_fields);
        fields.clear();
        pending.clear();
        let facts = origin::facts(head, client, shared);
        edits.render_variable_lines(&facts, &mut fields);
        edits.pending(&facts, &mut pending);
        client.response_fields = fields;
        client.pending_fields = pending;
    }
}

/// The answer of the first `deny.<name>` rule the request meets: its
/// status (the proxy's page for it), or, for 444, the connection closed
/// unanswered; 400 for a path servers read in ways a rule cannot tell
/// apart. `None`: no rule refuses it.
fn deny_by_rule(
    client: &mut Client,
    head: &RequestHead,
    body_kind: BodyKind,
    shared: &Shared,
) -> Option<Outcome> {
    let target = head.path_and_query();
    let status = match shared
        .config
        .deny
        .refusing(&client.asked(head, &target, shared), &target)
    {
        Ok(None) => return None,
        Ok(Some(rule)) => rule.status,
        Err(Ambiguous) => 400,
    };
    client.route = None;
    client.ended(REFUSED);
    Some(match status {
        CLOSE_UNANSWERED => Outcome {
            linger: false,
            ..Outcome::closing(CLOSE_UNANSWERED, 0)
        },
        status => answer_unread(client, head, body_kind, status, b"", shared),
    })
}
