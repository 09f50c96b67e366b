//! Copies of requests for the pool's `mirror`: a client's request as its
//! backend is sent it, and one the cache takes, before the cache is looked in.

use super::request::{prepare_request, upstream_request};
use super::{Destination, Outgoing, RequestBody};
use crate::http::RequestHead;
use crate::proxy::mirror::Duplicate;
use crate::proxy::{Client, Shared};

/// With `mirror`, a copy of the request the pool's backend is sent (its
/// head and body), queued for the mirror pool (see [`crate::proxy::mirror`]).
pub(super) fn mirror(
    request: &[u8],
    send: &Outgoing<'_>,
    client: &Client,
    uri: &str,
    pool: usize,
    shared: &Shared,
) {
    let Some(name) = &shared.config_of_pool(pool).mirror else {
        return;
    };
    let body = match send.body {
        RequestBody::Buffered(body) => body.clone(),
        // Read from the client as it goes: there is no second copy of it.
        // Nor is one read to disk copied to memory for the mirror.
        RequestBody::Streamed { .. } | RequestBody::Spooled(_) => return shared.mirrors.dropped(),
    };
    shared.mirrors.send(Duplicate {
        pool: name.clone(),
        head: request.to_vec(),
        body,
        client: client.real_ip,
        uri: uri.to_string(),
        key: client.hash_key().map(<[u8]>::to_vec),
        ends: client.for_backend().ends,
    });
}

/// With `mirror`, a copy of a request the cache takes, made before the
/// cache is looked in, as nginx mirrors one: a hit is copied as a miss
/// is. The copy is the request as the pool's backend would be sent it
/// for a miss, the client's own conditions and range in it (not the
/// validators the cache sends in their place).
pub(in crate::proxy) fn mirror_cache_request(
    client: &Client,
    request: &RequestHead,
    shared: &Shared,
) {
    let to = Destination::of(client, shared);
    if shared.config_of_pool(to.pool).mirror.is_none() {
        return;
    }
    // Only for a request without `Host`, which is sent its target's.
    let Some(target) = shared.pools.get(to.pool).targets().first() else {
        return shared.mirrors.dropped();
    };
    let send = Outgoing {
        body: &RequestBody::Buffered(Vec::new()),
        expect_continue: false,
        keep_alive: true,
        extra: &[],
        upgrade: false,
        interim_to_client: false,
        abandon_if_client_leaves: false,
        mirrored: true,
    };
    let mut head = request.clone();
    let forwarded = prepare_request(&mut head, &send, client, to, shared);
    let edits = &shared.config_of_pool(to.pool).request_headers;
    let copy = upstream_request(&mut head, &forwarded, edits, &send, target, false);
    mirror(&copy, &send, client, &forwarded.path, to.pool, shared);
}
