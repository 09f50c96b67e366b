//! Which answer an admin request gets: its method and path, to the page
//! or action that answers it.

use super::dashboard::dashboard;
use super::listing::cache_entries;
use super::purge::{give_back_freed_memory, purge, soft_purge};
use super::refused::{forgive, refused_clients};
use super::status::{push_cache_totals, stub_status};
use super::targets::target_state;
use super::{host_is_an_address, metrics_text, status_json, Reply};
use crate::cache::Purge;
use crate::http::RequestHead;
use crate::proxy::Shared;
use std::sync::atomic::Ordering;

/// What the admin listener answers to a request.
///
/// `PURGE` takes the key of the public request it names: the host from
/// the admin request's `Host` field (or from an absolute-form target),
/// lower-cased, then the path and query exactly as sent. So
/// `curl -X PURGE -H 'Host: www.example.com' http://127.0.0.1:9901/a?b=1`
/// drops what `GET http://www.example.com/a?b=1` stored, every Vary variant.
/// A target ending in `*` names a prefix of keys instead (see [`purge`]),
/// a `Surrogate-Key` field tags instead of a URL (see `purge_tags`), and a
/// `Purge-Regex` field a pattern of the host's paths (see `purge_pattern`).
///
/// `body` is the request's body, read for a `PUT` only.
pub fn route(head: &RequestHead, body: &[u8], shared: &Shared) -> Reply {
    let method = head.method.as_str();
    if method == "PURGE" {
        return purge(head, shared);
    }
    let target = head.path_and_query();
    let path = target.split('?').next().unwrap_or("");
    if let Some(id) = path.strip_prefix("/targets/") {
        return target_state(head, id, body, shared);
    }
    if let Some(address) = path.strip_prefix("/error_limit/") {
        return forgive(head, address, shared);
    }
    let read = matches!(method, "GET" | "HEAD");
    match path {
        "/" if read => dashboard(target.split_once('?').map(|q| q.1), shared),
        "/" => Reply::not_allowed("GET, HEAD, PURGE"),
        "/metrics" if read => Reply {
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            ..Reply::text(200, metrics_text(shared))
        },
        "/status" if read => Reply::json(200, status_json(shared)),
        "/stub_status" if read => Reply::text(200, stub_status(shared)),
        "/healthz" if read => {
            if shared.shutting_down.load(Ordering::SeqCst) {
                Reply::text(503, "shutting down\n")
            } else if shared.log.is_stalled() {
                // Lines are never dropped: with the queue full, request
                // threads wait for a log reader (stdout) that is not reading.
                Reply::text(503, "access log stalled: its queue is full\n")
            } else {
                Reply::text(200, "ok\n")
            }
        }
        "/metrics" | "/status" | "/stub_status" | "/healthz" => {
            Reply::not_allowed("GET, HEAD, PURGE")
        }
        // A web page whose name an attacker points at 127.0.0.1 (DNS
        // rebinding) is same-origin with the admin listener, and may send
        // it anything: the one request that destroys is only taken under a
        // Host that names an address, which no such page has.
        "/cache" if method == "DELETE" && !host_is_an_address(head) => Reply::text(
            403,
            "DELETE /cache takes a Host that is an IP address or localhost\n",
        ),
        // Asked for soft, it would throw away what the client meant to
        // keep: refused rather than done hard.
        "/cache" if method == "DELETE" && !matches!(soft_purge(head), Ok(Purge::Hard)) => {
            Reply::text(
                400,
                "DELETE /cache is never soft: PURGE /* with Soft-Purge: 1 marks a host's entries stale\n",
            )
        }
        "/cache" if method == "DELETE" => {
            let removed = shared.cache.as_ref().map_or(0, |c| c.clear());
            if removed > 0 {
                give_back_freed_memory();
            }
            log::info!("admin: cache cleared, {removed} entries removed");
            let status = if removed > 0 { 200 } else { 404 };
            Reply::json(status, format!("{{\"removed\":{removed}}}\n"))
        }
        // What `/status` says of the cache: a script watching the cache
        // asks for it alone, rather than for every target's state too.
        "/cache" if read => {
            let mut out = String::new();
            push_cache_totals(&mut out, shared);
            out.push('\n');
            Reply::json(200, out)
        }
        "/cache" => Reply::not_allowed("GET, HEAD, DELETE, PURGE"),
        "/cache/entries" if read => cache_entries(head, target.split_once('?').map(|q| q.1), shared),
        "/cache/entries" => Reply::not_allowed("GET, HEAD, PURGE"),
        "/error_limit" if read => refused_clients(shared),
        "/error_limit" => Reply::not_allowed("GET, HEAD, PURGE"),
        _ => Reply::text(404, "404 Not Found\n"),
    }
}
