//! `PURGE`: of a URL, a prefix, `Surrogate-Key` tags or a `Purge-Regex`
//! pattern, hard or soft, and the answer saying what it did.

use super::{host_is_an_address, push_list, Reply};
use crate::cache::{policy, Named, Purge};
use crate::config::escape_controls;
use crate::http::RequestHead;
use crate::json;
use crate::proxy::Shared;
use std::fmt::Write as _;
use std::time::SystemTime;

/// The request fields that make a purge soft (`1`) or hard (`0`): ours,
/// and Fastly's, so that what a script sends to purge a URL on Fastly
/// (`Fastly-Soft-Purge: 1`) does the same here rather than a hard purge.
const SOFT_PURGE_FIELDS: [&str; 2] = ["soft-purge", "fastly-soft-purge"];

/// Returns to the system the heap pages freed by emptying the cache.
/// glibc keeps them in the arenas of the threads that allocated the
/// bodies, so an emptied cache would otherwise leave the process's memory
/// where it was (a chaos run saw ~100 MB stay after clearing 64 MiB).
pub(super) fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free heap memory to the system;
    // no memory in use is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `PURGE`: of one URL (every Vary variant, both schemes), or of every
/// URL under a prefix when the target ends in `*` (`/products/*`), as
/// nginx's cache purge reads a key ending in `*`. A URL whose own target
/// ends in `*` is purged alone written with `%2A` (see
/// [`with_literal_star`]).
///
/// Taken under any `Host`, unlike `DELETE /cache`: the Host names the
/// site whose entries go, and a page on a name rebound to 127.0.0.1 sends
/// its own name, whose entries (if the proxy holds any) are its own.
pub(super) fn purge(head: &RequestHead, shared: &Shared) -> Reply {
    let purge = match soft_purge(head) {
        Ok(purge) => purge,
        Err(reply) => return reply,
    };
    let by_tag = head.headers.contains(policy::SURROGATE_KEY);
    if by_tag && head.headers.contains(policy::PURGE_REGEX) {
        return Reply::text(
            400,
            "a purge names tags (Surrogate-Key) or a pattern (Purge-Regex), not both\n",
        );
    }
    if by_tag {
        return purge_tags(head, purge, shared);
    }
    if let Some(pattern) = policy::KeyPattern::of_purge(head) {
        return purge_pattern(head, pattern, purge, shared);
    }
    let ignored = &shared.config.cache_key_ignore_params;
    if let Some(keys) = policy::prefix_keys_of_uri(head, ignored) {
        let named = purge_counted(shared, Named::Prefix, purge, |c| {
            let bare = (keys.bare.as_ref()).map_or(0, |bare| c.invalidate_all(bare, purge));
            bare + c.invalidate_prefixes(&keys.prefixes, purge)
        });
        return purged(Named::Prefix, &keys.prefixes[0], purge, named);
    }
    let keys = keys_of_url(head, ignored);
    let named = purge_counted(shared, Named::Url, purge, |c| {
        c.invalidate_all(&keys, purge)
    });
    purged(Named::Url, &keys[0], purge, named)
}

/// Runs a purge of `kind` on the cache, if there is one, and counts it;
/// returns how many entries it named. A hard one that removed any gives
/// the freed memory back to the system.
fn purge_counted(
    shared: &Shared,
    kind: Named,
    purge: Purge,
    run: impl FnOnce(&crate::cache::Cache) -> usize,
) -> usize {
    let Some(cache) = &shared.cache else {
        return 0;
    };
    let named = run(cache);
    cache.stats.count_purge(kind, purge, named);
    if named > 0 && purge == Purge::Hard {
        give_back_freed_memory();
    }
    named
}

/// The primary keys of the URL `head` names, as a `PURGE` of it names
/// them: under both schemes, and both spellings of a `*` it ends in (see
/// [`with_literal_star`]). The `http` key first.
pub(super) fn keys_of_url(head: &RequestHead, ignored: &policy::IgnoredParams) -> Vec<String> {
    let mut keys = policy::primary_keys_of_uri(head, ignored).to_vec();
    if let Some(starred) = with_literal_star(head) {
        keys.extend(policy::primary_keys_of_uri(&starred, ignored));
    }
    keys
}

/// Whether a purge is soft: `Soft-Purge: 1` (or Fastly's
/// `Fastly-Soft-Purge: 1`) marks what it names stale instead of removing
/// it (see [`Purge::Soft`]); `0` or no such field, hard. Any other value,
/// or fields that disagree, get 400 rather than a guess: read as hard, a
/// typo would throw away the entries the purge was meant to keep.
pub(super) fn soft_purge(head: &RequestHead) -> Result<Purge, Reply> {
    let mut soft = None;
    for value in SOFT_PURGE_FIELDS
        .iter()
        .flat_map(|name| head.headers.get_all(name))
    {
        let this = match value.trim_ascii() {
            b"1" => true,
            b"0" => false,
            _ => return Err(Reply::text(400, "Soft-Purge takes 1 (soft) or 0 (hard)\n")),
        };
        if soft.is_some_and(|s| s != this) {
            return Err(Reply::text(400, "Soft-Purge fields disagree\n"));
        }
        soft = Some(this);
    }
    Ok(match soft {
        Some(true) => Purge::Soft(SystemTime::now()),
        _ => Purge::Hard,
    })
}

/// `PURGE /` with `Surrogate-Key: product-42 category-7`: drops every
/// entry tagged with one of them, whatever its URL or host (Fastly's purge
/// by surrogate key, Varnish's `xkey.purge`); 200 with
/// `{"tags":[...],"removed":N}`, 404 when nothing matched. With
/// `surrogate_keys` off no response is purged by tag (as after a restart:
/// the field was the backend's to pass on), and nothing is.
///
/// It reaches every site, so it is taken only under a Host that is an
/// address, as `DELETE /cache`: a page on a name rebound to 127.0.0.1
/// could otherwise drop what the proxy stores for any site. Its target
/// is `/`: one naming a URL could be read as a purge of that URL too.
fn purge_tags(head: &RequestHead, purge: Purge, shared: &Shared) -> Reply {
    if !host_is_an_address(head) {
        return Reply::text(
            403,
            "a purge by tag takes a Host that is an IP address or localhost\n",
        );
    }
    if head.path_and_query() != "/" {
        return Reply::text(
            400,
            "a purge by tag (Surrogate-Key) names no URL: send it to /\n",
        );
    }
    let tags = match policy::Tags::of_purge(&head.headers) {
        Ok(tags) => tags,
        Err(e) => return Reply::text(400, format!("{e}\n")),
    };
    let on = shared.config.surrogate_keys;
    let named = match on {
        true => purge_counted(shared, Named::Tag, purge, |c| {
            c.invalidate_tags(&tags, purge)
        }),
        false => 0,
    };
    let names = tags.iter().collect::<Vec<_>>().join(" ");
    let off = if on { "" } else { " (surrogate_keys is off)" };
    let (how, done) = how_purged(purge);
    log::info!("admin: {how} by tag {names}: {named} entries {done}{off}");
    let mut body = String::from("{\"tags\":[");
    push_list(&mut body, tags.iter());
    body.push(']');
    push_count(&mut body, purge, named);
    Reply::json(if named > 0 { 200 } else { 404 }, body)
}

/// `PURGE /` with `Purge-Regex: \.jpg$`: drops every entry of the host
/// the request names (both schemes, every Vary variant) whose path and
/// query, as its key spells them, the pattern matches (Varnish's `ban
/// req.url ~`); 200 with `{"host":...,"pattern":...,"removed":N}`, 404
/// when nothing matched, 400 for a pattern the `regex` crate refuses (its
/// message, which quotes the pattern, escaped).
///
/// Taken under any `Host`, as a purge of a prefix, and for the same
/// reason: it reaches that host's entries alone (a Host that is an
/// address names the entries stored under that address, not every
/// site's, as a purge by tag would). Its target is `/`, as a purge by
/// tag's: one naming a URL could be read as a purge of that URL too.
fn purge_pattern(
    head: &RequestHead,
    pattern: Result<policy::KeyPattern, policy::PatternError>,
    purge: Purge,
    shared: &Shared,
) -> Reply {
    if head.path_and_query() != "/" {
        return Reply::text(
            400,
            "a purge by pattern (Purge-Regex) names no URL: send it to /\n",
        );
    }
    let pattern = match pattern {
        Ok(pattern) => pattern,
        // The regex crate's message spans lines (the pattern, a caret
        // under the fault, the error): kept so, each line escaped.
        Err(e) => {
            let lines: Vec<String> = e.to_string().lines().map(escape_controls).collect();
            return Reply::text(400, format!("{}\n", lines.join("\n")));
        }
    };
    let named = purge_counted(shared, Named::Pattern, purge, |c| {
        c.invalidate_pattern(&pattern, purge)
    });
    let (how, done) = how_purged(purge);
    log::info!(
        "admin: {how} {} by pattern {}: {named} entries {done}",
        escape_controls(pattern.authority()),
        escape_controls(pattern.as_str())
    );
    let mut body = String::from("{");
    json::push_key(&mut body, "host");
    json::push_str(&mut body, pattern.authority());
    body.push(',');
    json::push_key(&mut body, "pattern");
    json::push_str(&mut body, pattern.as_str());
    push_count(&mut body, purge, named);
    Reply::json(if named > 0 { 200 } else { 404 }, body)
}

/// The request of a `PURGE` whose target ends in `%2A` (any case), with
/// that written `*`: the URL of the literal star, which a `*` at the end
/// would make a prefix. The key keeps `%2A` and `*` apart (a reserved
/// character and its escape are different URIs to RFC 3986 §6.2.2.2), so
/// both are purged: the one spelling cannot be named otherwise, and most
/// backends read the two alike.
fn with_literal_star(head: &RequestHead) -> Option<RequestHead> {
    let cut = head.target.len().checked_sub(3)?;
    let escaped = head.target.get(cut..)?;
    escaped.eq_ignore_ascii_case("%2A").then(|| RequestHead {
        target: format!("{}*", &head.target[..cut]),
        ..head.clone()
    })
}

/// The answer to a `PURGE` of `key` (the `http` key, or prefix: `what`
/// says which), logged as `admin: purge example.com/products/*: ...`.
fn purged(what: Named, key: &str, purge: Purge, named: usize) -> Reply {
    let (label, star) = match what {
        Named::Prefix => ("prefix", "*"),
        _ => ("key", ""),
    };
    let (how, done) = how_purged(purge);
    log::info!("admin: {how} {key}{star}: {named} entries {done}");
    let mut body = String::from("{");
    json::push_key(&mut body, label);
    json::push_str(&mut body, key);
    push_count(&mut body, purge, named);
    Reply::json(if named > 0 { 200 } else { 404 }, body)
}

/// How the log says a purge was done, and what it did to the entries.
fn how_purged(purge: Purge) -> (&'static str, &'static str) {
    match purge {
        Purge::Hard => ("purge", "removed"),
        Purge::Soft(_) => ("soft purge", "marked stale"),
    }
}

/// The end of a purge's answer: `,"removed":N}`, or for a soft one
/// `,"soft":true,"marked_stale":N}` (nothing was removed: a client that
/// reads `removed` must not take the entries for gone).
fn push_count(body: &mut String, purge: Purge, named: usize) {
    let _ = match purge {
        Purge::Hard => writeln!(body, ",\"removed\":{named}}}"),
        Purge::Soft(_) => writeln!(body, ",\"soft\":true,\"marked_stale\":{named}}}"),
    };
}
