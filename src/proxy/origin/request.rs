//! The head a backend is sent: the client's request rewritten once for
//! any backend, then written for the target chosen.

use super::{Destination, Outgoing, RequestBody};
use crate::digits::push_field;
use crate::field_value::Facts;
use crate::http::edits::FieldEdits;
use crate::http::forward::{add_forwarded, strip_hop_by_hop, Forwarded};
use crate::http::head::push_canonical_authority;
use crate::http::{BodyKind, RequestHead};
use crate::location_rewrite::Rendered;
use crate::proxy::{via_entry, Client, Shared};
use crate::upstream::Upstream;
use std::time::SystemTime;

/// The parts of the forwarded head that do not depend on the target.
pub(super) struct Forwarding {
    pub(super) path: String,
    /// The authority the client asked for, if any: the backend's Host
    /// unless `request_header.Host` sets another, and its
    /// `X-Forwarded-Host` whatever that sets.
    pub(super) host: Option<String>,
    /// `request_header.Host` is set: the backend gets that Host.
    host_set: bool,
    had_body: bool,
    /// With `request_header.*` values that hold variables: the lines of
    /// those fields, rendered for this request (every attempt sends the
    /// same); empty without.
    rendered: Vec<u8>,
    /// `location_rewrite`'s rules for this request; empty without.
    pub(super) location_rewrite: Rendered,
    /// `sub_filter`'s replacements for this request; empty without.
    pub(super) sub_filter: crate::sub_filter::Rendered,
}

/// Rewrites `head` for any backend once: end-to-end fields only, less
/// those `request_header.*` names, plus the forwarding fields and cache
/// validators.
pub(super) fn prepare_request(
    head: &mut RequestHead,
    send: &Outgoing<'_>,
    client: &Client,
    to: Destination<'_>,
    shared: &Shared,
) -> Forwarding {
    let pool = shared.config_of_pool(to.pool);
    // Chosen, and rendered, from the request as the client sent it
    // (less what the proxy took out before anything read it: an
    // underscored name, its own cookie).
    let edits = &pool.request_headers;
    let mut rendered = Vec::new();
    let edits = match edits.per_request() {
        true => {
            let target = head.path_and_query();
            let edits = edits.applied(edits.choose(&client.asked(head, &target, shared), &target));
            edits.render_variable_lines(&facts(head, client, shared), &mut rendered);
            edits
        }
        false => edits.unconditional(),
    };
    let location_rewrite = match pool.location_rewrite.is_empty() {
        true => Rendered::default(),
        false => pool
            .location_rewrite
            .for_request(&facts(head, client, shared)),
    };
    let sub_filter = match pool.sub_filter.is_empty() {
        true => Default::default(),
        false => pool.sub_filter.for_request(&facts(head, client, shared)),
    };
    // With a route's `rewrite=`, the path it replaces a prefix of.
    let target = head.origin_target();
    let path = match to.route.and_then(|r| r.rewritten(&target)) {
        Some(rewritten) => rewritten,
        None => target.into_owned(),
    };
    // RFC 9112 §3.2.2: for an absolute-form target, the authority in it
    // replaces any Host field. Spelled as the cache keys it (see
    // `push_canonical_authority`).
    let host = head.authority().map(|authority| {
        let mut host = String::with_capacity(authority.len());
        push_canonical_authority(&mut host, authority);
        host
    });
    // A body the client framed, even an empty one, is announced with a
    // Content-Length: some backends answer a POST without one 411.
    let had_body =
        head.headers.contains("content-length") || head.headers.contains("transfer-encoding");
    // A client that takes trailer fields says so to this hop alone; with
    // them passed on, the backend is told (some send them only then).
    let passes_trailers = pool.pass_trailers;
    let takes_trailers =
        passes_trailers && (head.headers.tokens("te")).any(|t| t.eq_ignore_ascii_case("trailers"));
    // The trailer fields a body that goes on in chunks says will follow
    // it (RFC 9110 §6.6.2), a field of one hop otherwise: a body read
    // whole goes with a length, and without them (see `Client::read_body`).
    let chunked = matches!(
        send.body,
        RequestBody::Streamed {
            kind: BodyKind::Chunked,
            ..
        }
    );
    let announced: Vec<Vec<u8>> = match passes_trailers && chunked {
        true => head
            .headers
            .get_all("trailer")
            .map(<[u8]>::to_vec)
            .collect(),
        false => Vec::new(),
    };
    strip_hop_by_hop(&mut head.headers, send.upgrade);
    head.headers.remove("expect");
    // A compressed body holds none of `sub_filter`'s strings as written:
    // the backend is asked for bodies as they are (as nginx's users are
    // told to do by hand). A `request_header.Accept-Encoding` still goes.
    if !pool.sub_filter.is_empty() {
        head.headers.remove("accept-encoding");
    }
    // Every field the client sent of a name `request_header.*` sets or
    // removes, or that a backend reading `_` as `-` would take for one
    // (with `underscores_in_headers`): the set ones go after the fields
    // on each attempt (see `upstream_request`). Never one the proxy
    // writes below (the configuration refuses those names), and after
    // what the cache and the log read: they see the request as the
    // client sent it (but for an edited `Authorization`, which
    // `exchange` takes out before the cache reads the request).
    let host_set = !edits.is_empty() && {
        edits.remove_read_alike_from(&mut head.headers);
        edits.edits(b"host")
    };
    if send.upgrade {
        head.headers.push("Connection", "Upgrade");
    }
    if takes_trailers {
        head.headers.push("TE", "trailers");
        head.headers.push("Connection", "TE");
    }
    for names in announced {
        head.headers.push("Trailer", names);
    }
    add_forwarded(
        &mut head.headers,
        &Forwarded {
            client_ip: client.peer,
            real_ip: client.real_ip,
            proto: client.scheme,
            host: host.as_deref(),
            via: shared.config.via.then(|| via_entry(head.version)),
            surrogate_capability: (shared.cache_rules.of_route(to.pool, to.route))
                .surrogate_capability
                .as_deref(),
        },
    );
    for (name, value) in send.extra {
        head.headers.set(name, value);
    }
    // After the hop-by-hop fields went: a client naming the field in
    // `Connection` cannot make it disappear.
    if let Some((name, id)) = &client.request_id {
        head.headers.set(name, id);
    }
    if let Some(trace) = client
        .trace
        .filter(|_| shared.config.trace_context.injects())
    {
        head.headers.set("traceparent", trace.traceparent());
        // Another trace's state goes with the trace it came with.
        if !trace.continued {
            head.headers.remove("tracestate");
        }
    }
    Forwarding {
        path,
        host,
        host_set,
        had_body,
        rendered,
        location_rewrite,
        sub_filter,
    }
}

/// What the variables of `request_header.*` values stand for in the
/// request `head` from `client`.
pub(in crate::proxy) fn facts<'a>(
    head: &'a RequestHead,
    client: &'a Client,
    shared: &'a Shared,
) -> Facts<'a> {
    Facts {
        head,
        sent_target: client.sent_target.as_deref(),
        client: client.real_ip,
        peer: std::net::SocketAddr::new(client.peer, client.peer_port),
        proxied_to: client.proxied_to,
        proxy_tlvs: client.proxy_tlvs.as_deref(),
        server: client.server,
        user: client.user.as_deref(),
        jwt_claims: client.jwt_claims.as_deref(),
        scheme: client.scheme,
        tls: client.tls,
        server_name: client.server_name.as_deref(),
        certificate: client.certificate.as_deref(),
        request_id: client.request_id.as_ref().map(|(_, id)| id.as_str()),
        trace: client.trace,
        // From the route: `client.pool` is taken for the log before a
        // revalidation in the background renders these.
        pool: (shared.routed_pool(client.route)).map(|i| &**shared.pools.get(i).shared_name()),
        connection: Some(client.connection),
        route_host: (client.route)
            .and_then(|i| shared.config.routes.get(i))
            .and_then(|route| route.server_name())
            .map(|name| &**name),
        geoip: client.geoip(shared),
        now: SystemTime::now(),
    }
}

/// Builds the head sent to `target`: origin-form request line, the
/// prepared fields, Host, the fields `request_header.*` sets (`edits`,
/// whose names [`prepare_request`] took out), `Connection: close` when
/// `close`, and our own framing.
pub(super) fn upstream_request(
    head: &mut RequestHead,
    forwarding: &Forwarding,
    edits: &FieldEdits,
    send: &Outgoing<'_>,
    target: &Upstream,
    close: bool,
) -> Vec<u8> {
    match &forwarding.host {
        _ if forwarding.host_set => {}
        Some(h) => head.headers.set("Host", h.as_str()),
        None => head.headers.set("Host", &*target.host),
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(forwarding.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    head.headers.write_to(&mut out);
    out.extend_from_slice(edits.set_lines());
    out.extend_from_slice(&forwarding.rendered);
    // A connection used once: RFC 9112 §9.6 has a client that does not
    // persist say so, and the backend then holds it open for no next
    // request.
    if close && !send.upgrade {
        out.extend_from_slice(CLOSE_LINE);
    }
    match send.body {
        RequestBody::Buffered(b) if !b.is_empty() || forwarding.had_body => {
            push_field(&mut out, "Content-Length", b.len() as u64);
        }
        RequestBody::Buffered(_) => {}
        RequestBody::Spooled(body) => push_field(&mut out, "Content-Length", body.len()),
        RequestBody::Streamed {
            kind: BodyKind::Length(n),
            ..
        } => {
            push_field(&mut out, "Content-Length", *n);
        }
        RequestBody::Streamed { .. } => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// What a request to a backend that keeps no connection says
/// (`upstream_keepalive = 0`).
pub(in crate::proxy) const CLOSE_LINE: &[u8] = b"Connection: close\r\n";
