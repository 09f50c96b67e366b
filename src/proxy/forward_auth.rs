//! `auth_request`: each request is first asked of a pool (an SSO
//! gateway: oauth2-proxy, Authelia, Authentik), as nginx's
//! `auth_request` and Traefik's `forwardAuth` ask: a `GET` of the
//! configured path with the client's fields and where the request was
//! going. A 2xx lets the request through, with the fields of the answer
//! `auth_request_headers` names (the user it signed in as); any other
//! answer (a 401, the 302 to a sign-in page) goes to the client as it
//! came, or a 401 becomes a redirect to `auth_request_redirect`, and the
//! request goes no further.

use super::auth_answers;
use super::origin::{self, Destination, Outgoing, RequestBody};
use super::relay::{self, push_connection_header};
use super::{answer_unread, location_field, Client, Outcome, Refusal, Shared};
use crate::access_log::{By, Stage, Termination};
use crate::config::PoolRequest;
use crate::field_value::FieldValue;
use crate::http::conn::write_all_vectored;
use crate::http::edits::Applied;
use crate::http::forward::strip_hop_by_hop;
use crate::http::head::push_canonical_authority;
use crate::http::headers::read_alike;
use crate::http::{BodyKind, Headers, RequestHead, Version};
use std::io::IoSlice;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The largest answer body relayed to a client that is refused: a
/// sign-in page or a short message. A larger one is a 502.
const MAX_REFUSAL_BODY: u64 = 64 * 1024;

/// The fields that tell the gateway what the client asked for (nginx's
/// usual `X-Original-*` and Traefik's `X-Forwarded-Method` and `-Uri`):
/// written by the proxy alone.
const ORIGINAL_FIELDS: [&str; 5] = [
    "x-original-uri",
    "x-original-method",
    "x-original-url",
    "x-forwarded-method",
    "x-forwarded-uri",
];

/// Takes the client's own fields of the `names` the gateway's answer
/// gives out of `head`: a backend that trusts `Remote-User` gets it from
/// the gateway or not at all (nor a `Remote_User`, which backends that
/// read `_` as `-` take for it; nor can the client have the gateway's
/// dropped by naming it in `Connection`). Whether or not this request is
/// asked: a pool that asks nothing may take the names all the same.
pub(super) fn take_out(head: &mut RequestHead, names: &[Box<str>]) {
    let named = |field: &[u8]| names.iter().any(|n| read_alike(n.as_bytes(), field));
    head.headers.retain(|field, _| !named(field));
    if head
        .headers
        .tokens("connection")
        .any(|t| named(t.as_bytes()))
    {
        head.headers.edit_values("connection", |value| {
            let kept: Vec<&[u8]> = (value.split(|&b| b == b','))
                .filter(|t| !named(t.trim_ascii()))
                .collect();
            Some(kept.join(&b","[..]))
        });
    }
}

/// Asks `asked`'s pool whether `head` may go on. `Ok(None)`: it may, its
/// fields now those the answer gave (`names`); `Ok(Some(outcome))`: the
/// gateway's answer went to the client instead; `Err`: the gateway could
/// not be asked (502, 503, 504), and the request goes no further either.
pub(super) fn ask(
    client: &mut Client,
    head: &mut RequestHead,
    body_kind: BodyKind,
    asked: &PoolRequest,
    names: &[Box<str>],
    shared: &Shared,
) -> Result<Option<Outcome>, Refusal> {
    // With the client's fields as it sent them: its `Authorization` is
    // the gateway's to judge, even when the gateway's answer replaces it.
    let mut question = question(head, &asked.path, client.scheme, names);
    take_out(head, names);
    let metrics = &shared.metrics;
    let settings = shared.pool_config(client.route);
    // `auth_request_cache`: the same question asked a moment ago.
    let remember = settings.auth_request_cache;
    let pool = shared.pool_index(client.route);
    let key = (!remember.is_zero())
        .then(|| auth_answers::key(pool, client.real_ip, client.scheme, &question));
    if let Some(given) = (key.as_ref()).and_then(|k| shared.auth_answers.get(k, Instant::now())) {
        metrics.auth_requests_cached.fetch_add(1, Ordering::Relaxed);
        for (name, value) in given.iter() {
            head.headers.push(name, value);
        }
        return Ok(None);
    }
    // The client's body stays unread: a refusal closes the connection, or
    // what is left of it would be read as the next request.
    let keep_alive = client.keeps_alive(head) && body_kind == BodyKind::Empty;
    let empty = RequestBody::Buffered(Vec::new());
    let send = Outgoing {
        body: &empty,
        expect_continue: false,
        keep_alive,
        extra: &[],
        upgrade: false,
        interim_to_client: false,
        abandon_if_client_leaves: true,
        mirrored: false,
    };
    let to = Destination {
        pool: asked.pool,
        route: None,
    };
    // What the client's answers get: its pool's (the fields a status
    // decides, for the answer that is given).
    let edits = settings.response_headers.applied(client.response_edits);
    // The gateway's targets are chosen by its pool's `hash_on`, not by the
    // request's pool's (a gateway that keeps sessions in memory is asked
    // by the same target each time); the request's sticky cookie names
    // none of them.
    let own_hash = std::mem::take(&mut client.hash_value);
    let own_sticky = client.sticky.take();
    let hash_on = shared.config_of_pool(asked.pool).hash_on.as_ref();
    if let Some(value) = hash_on.and_then(|on| on.value_in(head)) {
        client.hash_value.extend_from_slice(value);
    }
    let fetched = origin::fetch_from(client, &mut question, &send, to, shared);
    client.hash_value = own_hash;
    client.sticky = own_sticky;
    let fetched = fetched.inspect_err(|_| {
        metrics.auth_requests_failed.fetch_add(1, Ordering::Relaxed);
    })?;
    if (200..300).contains(&fetched.response.status) {
        metrics
            .auth_requests_allowed
            .fetch_add(1, Ordering::Relaxed);
        let keep = key
            .map(|key| {
                (
                    key,
                    auth_answers::keep_for(&fetched.response.headers, remember),
                )
            })
            .filter(|(_, keep)| !keep.is_zero());
        // The fields given, when the yes is kept (no allocation otherwise).
        let mut kept = keep.is_some().then(Headers::new);
        for name in names {
            for value in fetched.response.headers.get_all(name) {
                head.headers.push(name, value);
                if let Some(kept) = &mut kept {
                    kept.push(name, value);
                }
            }
        }
        if let (Some((key, keep)), Some(kept)) = (keep, kept) {
            (shared.auth_answers).put(key, Instant::now() + keep, kept);
        }
        // Its cookies (a session it refreshed) go to the client with the
        // response, whoever gives it.
        push_cookies(
            &fetched.response.headers,
            edits,
            &mut client.response_fields,
        );
        relay::discard(fetched, false, client);
        // The log's `upstream_ms` is the backend's that answers, or none
        // for a cache hit: not the gateway's (nor is `$upstream_addr`, nor
        // its wait for a slot).
        client.forget_backend();
        return Ok(None);
    }
    let upstream = Some(fetched.target.name.clone());
    if let Some(to) = settings.auth_request_redirect.as_ref() {
        if fetched.response.status == 401 {
            metrics.auth_requests_denied.fetch_add(1, Ordering::Relaxed);
            client.ended(DENIED);
            let mut fields = location_field(render_url(to, head, client, shared));
            let edits = client.response_edits(settings, 302);
            push_cookies(&fetched.response.headers, edits, &mut fields);
            // Its body is not sent: read if it came whole, or let go.
            relay::discard(fetched, false, client);
            let outcome = answer_unread(client, head, body_kind, 302, &fields, shared);
            return Ok(Some(Outcome {
                upstream,
                ..outcome
            }));
        }
    }
    let within = shared.pools.get(asked.pool).backend_timeout();
    let read = relay::read_whole(client, fetched, MAX_REFUSAL_BODY, within);
    let (mut answer, body) = read.map_err(|f| {
        metrics.auth_requests_failed.fetch_add(1, Ordering::Relaxed);
        Refusal {
            status: Some(f.status()),
            upstream: upstream.clone(),
            keep_alive,
        }
    })?;
    metrics.auth_requests_denied.fetch_add(1, Ordering::Relaxed);
    client.ended(DENIED);
    strip_hop_by_hop(&mut answer.headers, false);
    // As on every response relayed (see `relay::relay`): the fields for
    // this cache alone reach no client.
    (shared.caching(client.route).own_fields).remove_from(&mut answer.headers);
    // The gateway's word to a proxy, not to clients.
    answer.headers.retain(|name, _| {
        let accel = name
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"x-accel-"));
        !accel && !name.eq_ignore_ascii_case(b"content-length")
    });
    let closing = !keep_alive || shared.shutting_down.load(Ordering::Relaxed);
    let edits = client.response_edits(settings, answer.status);
    edits.remove_from(&mut answer.headers);
    answer.version = Version::Http11;
    let mut bytes = Vec::with_capacity(512);
    answer.write_start(&mut bytes);
    if !crate::http::body::forbids_content_length(answer.status) {
        crate::digits::push_field(&mut bytes, "Content-Length", body.len() as u64);
    }
    client.push_own_fields(&mut bytes, answer.status, None);
    edits.push_set_lines(&mut bytes);
    push_connection_header(&mut bytes, !closing, head.version);
    bytes.extend_from_slice(b"\r\n");
    client.note_sent_head(&[&bytes]);
    let body = match head.is_head() {
        true => &[][..],
        false => &body[..],
    };
    let mut parts = [IoSlice::new(&bytes), IoSlice::new(body)];
    let sent = write_all_vectored(client.conn.get_mut(), &mut parts).is_ok();
    Ok(Some(Outcome {
        status: answer.status,
        bytes: if sent { body.len() as u64 } else { 0 },
        upstream,
        keep_alive: sent && !closing,
        cache: None,
        linger: true,
    }))
}

/// How a request the gateway said no to ended, for the log: refused by
/// the proxy's access rule, as one `auth_basic` refuses (`PR`), whatever
/// the answer the gateway gave it.
const DENIED: Termination = Termination::new(By::Proxy, Stage::Request);

/// Appends a `Set-Cookie` line for each cookie of the gateway's answer
/// `given`, but where `response_header.Set-Cookie` (`edits`) removes the
/// application's: then the gateway's go too.
fn push_cookies(given: &Headers, edits: Applied<'_>, out: &mut Vec<u8>) {
    if !edits.edits(b"set-cookie") {
        for cookie in given.get_all("set-cookie") {
            for part in [&b"Set-Cookie: "[..], cookie, b"\r\n"] {
                out.extend_from_slice(part);
            }
        }
    }
}

/// Where `auth_request_redirect` (`to`) sends the client of `head`.
fn render_url(to: &FieldValue, head: &RequestHead, client: &Client, shared: &Shared) -> Vec<u8> {
    let mut url = Vec::new();
    to.render_url(&origin::facts(head, client, shared), &mut url);
    url
}

/// The `GET` of `path` the gateway is asked: with the client's fields
/// (its cookies and credentials are what it judges) but those that frame
/// a body or ask for part of one or for an answer on a condition, and
/// where the request is going: after a `rewrite.<name>` rule, the target
/// it made, which is what the backend will serve and so what a service's
/// rules on paths must judge (the client's own might pass where it does
/// not); a sign-in page then sends the client back to that URL.
fn question(head: &RequestHead, path: &str, scheme: &str, names: &[Box<str>]) -> RequestHead {
    const NOT_ASKED: [&str; 9] = [
        "content-length",
        "transfer-encoding",
        "expect",
        "range",
        "if-range",
        "if-none-match",
        "if-modified-since",
        "if-match",
        "if-unmodified-since",
    ];
    let mut headers = Headers::new();
    for (name, value) in head.headers.iter() {
        // Also as a service that reads `_` as `-` would read them.
        let dropped = (NOT_ASKED.iter().chain(&ORIGINAL_FIELDS))
            .any(|f| read_alike(f.as_bytes(), name.as_bytes()))
            // What the service gives is not the client's to say to it
            // either: but for credentials, the service's to judge.
            || (!name.eq_ignore_ascii_case("authorization")
                && names.iter().any(|n| read_alike(n.as_bytes(), name.as_bytes())));
        if !dropped {
            headers.push(name, value);
        }
    }
    // Here, not with the backend's head: the fields below are ours, and
    // a client naming them in `Connection` must not make them go.
    strip_hop_by_hop(&mut headers, false);
    let uri = head.origin_target();
    headers.push("X-Original-Method", &head.method);
    headers.push("X-Forwarded-Method", &head.method);
    headers.push("X-Original-URI", &*uri);
    headers.push("X-Forwarded-Uri", &*uri);
    // RFC 9112 §3.2.2: an absolute-form target's authority replaces the
    // Host field. The backend gets it so (see `origin::request::prepare_request`),
    // and a service that judges by the host (`X-Forwarded-Host`, as
    // Authelia does) must be asked about that one, not the field.
    let authority = head.authority().map(|authority| {
        let mut host = String::with_capacity(authority.len());
        push_canonical_authority(&mut host, authority);
        headers.remove("host");
        headers.push("Host", &host);
        host
    });
    let host = (authority.as_deref().map(str::as_bytes)).or_else(|| head.headers.get("host"));
    if let Some(host) = host {
        let mut url = Vec::with_capacity(scheme.len() + 3 + host.len() + uri.len());
        for part in [scheme.as_bytes(), b"://", host, uri.as_bytes()] {
            url.extend_from_slice(part);
        }
        headers.push("X-Original-URL", &url);
    }
    RequestHead {
        method: "GET".into(),
        target: path.into(),
        version: Version::Http11,
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_carries_the_clients_fields_and_where_it_was_going() {
        let mut headers = Headers::new();
        for (name, value) in [
            ("Host", "app.example"),
            ("Cookie", "session=1"),
            ("Content-Length", "5"),
            ("X-Original-URI", "/forged"),
            ("x-forwarded-method", "GET"),
            ("X_Original_Method", "GET"),
            ("Connection", "X-Original-URI, X-Forwarded-Uri, Upgrade"),
            ("Range", "bytes=0-1"),
            ("remote_user", "admin"),
            ("If-Unmodified-Since", "Wed, 02 Dec 2026 00:00:00 GMT"),
        ] {
            headers.push(name, value);
        }
        let head = RequestHead {
            method: "POST".into(),
            target: "/cart?item=7".into(),
            version: Version::Http11,
            headers,
        };
        let q = question(&head, "/verify", "https", &["Remote-User".into()]);
        assert_eq!((&*q.method, &*q.target), ("GET", "/verify"));
        let field = |name| q.headers.get_str(name).map(str::to_string);
        assert_eq!(field("cookie").as_deref(), Some("session=1"));
        assert_eq!(field("content-length"), None);
        assert_eq!(field("x-original-uri").as_deref(), Some("/cart?item=7"));
        assert_eq!(field("x-forwarded-method").as_deref(), Some("POST"));
        assert_eq!(
            field("x-original-url").as_deref(),
            Some("https://app.example/cart?item=7")
        );
        assert_eq!(q.headers.get_all("x-original-uri").count(), 1);
        assert_eq!(q.headers.get("x_original_method"), None);
        assert_eq!(q.headers.get("range"), None);
        assert_eq!(q.headers.get("if-unmodified-since"), None);
        assert_eq!(q.headers.get("remote_user"), None);
        assert_eq!(q.headers.get("connection"), None);
    }

    #[test]
    fn the_clients_fields_of_the_names_the_gateway_gives_go_and_connection_names_them_no_more() {
        let mut headers = Headers::new();
        for (name, value) in [
            ("Remote-User", "admin"),
            ("remote_user", "admin"),
            ("Connection", "keep-alive, Remote-User, X-Other"),
            ("X-Other", "1"),
        ] {
            headers.push(name, value);
        }
        let mut head = RequestHead {
            method: "GET".into(),
            target: "/".into(),
            version: Version::Http11,
            headers,
        };
        take_out(&mut head, &["Remote-User".into()]);
        assert_eq!(head.headers.get("remote-user"), None);
        assert_eq!(head.headers.get("remote_user"), None);
        assert_eq!(
            head.headers.get_str("connection"),
            Some("keep-alive, X-Other")
        );
    }
}
