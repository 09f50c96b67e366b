//! The fields of a file's answer that others decide: the backend's, for
//! a file it named, and `gzip`'s, for a file it compresses.

use crate::config::Config;
use crate::files::Served;
use crate::gzip::{Coding, Gzip};
use crate::http::Headers;
use crate::sub_filter;

/// Largest file `gzip` compresses as it is sent (read whole, then
/// compressed): larger ones go as they are. Make a `.gz` copy for those,
/// with `precompressed`.
const MAX_GZIPPED: u64 = 1024 * 1024;

/// Largest file `sub_filter` rewrites (read whole, then rewritten), as
/// for `gzip`: larger ones go as they are.
const MAX_REWRITTEN: u64 = 1024 * 1024;

/// The backend's fields for the file it named (`X-Accel-Redirect`), in
/// place of the file's own of those names; merged before `gzip` is asked,
/// which reads its type and its `no-transform`. A 304 takes none that
/// describes the body (RFC 9110 §15.4.5; nginx clears its type too).
pub(super) fn take_kept(fields: &mut Headers, kept: &Headers, status: u16) {
    let taken = |name: &str| {
        status != 304
            || !["content-type", "content-disposition"]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
    };
    if kept.contains("content-type") && taken("content-type") {
        fields.remove("content-type");
    }
    // Either says how long it may be kept: the file's `max_age` would
    // otherwise outweigh a backend's `Expires` (RFC 9111 §5.3).
    if kept.contains("cache-control") || kept.contains("expires") {
        fields.remove("cache-control");
        fields.remove("expires");
    }
    for (name, value) in kept.iter().filter(|(name, _)| taken(name)) {
        fields.push(name, value);
    }
}

/// Whether `gzip` compresses the file `served` (with the backend's `kept`
/// fields, and the route's `cache_control`) for the clients that take
/// it: a type it lists, a length it takes and no more than
/// [`MAX_GZIPPED`], no coding of its own, no `no-transform`, as nginx's
/// `gzip on` does for what it serves from disk. Every answer for such a
/// file varies on `Accept-Encoding`.
pub(super) fn compressible(
    gzip: &Gzip,
    served: &Served,
    kept: Option<&Headers>,
    cache_control: Option<&str>,
) -> bool {
    let described = described(served, kept, cache_control);
    served.encoding.is_none()
        && served.len <= MAX_GZIPPED
        && gzip.suits(200, &described, Some(served.len))
}

/// Whether `sub_filter` (in `pool`, with rules) rewrites the file
/// `served`, as [`compressible`] asks it of `gzip`: a type it lists, no
/// coding of its own, no `no-transform`, no more than [`MAX_REWRITTEN`].
pub(super) fn rewritable(
    pool: &Config,
    served: &Served,
    kept: Option<&Headers>,
    cache_control: Option<&str>,
) -> bool {
    let described = described(served, kept, cache_control);
    !pool.sub_filter.is_empty()
        && served.encoding.is_none()
        && served.len <= MAX_REWRITTEN
        && sub_filter::rewrites(&pool.sub_filter_types, 200, &described)
}

/// The fields `gzip` and `sub_filter` read of a file's 200: its type and
/// caching fields, the backend's in place of the file's as `take_kept`
/// has them.
fn described(served: &Served, kept: Option<&Headers>, cache_control: Option<&str>) -> Headers {
    let mut described = Headers::new();
    let content_type = kept.and_then(|kept| kept.get("content-type"));
    let content_type = content_type.unwrap_or(served.content_type.as_bytes());
    described.push("Content-Type", content_type);
    match kept.filter(|kept| kept.contains("cache-control") || kept.contains("expires")) {
        Some(kept) => {
            for value in kept.get_all("cache-control") {
                described.push("Cache-Control", value);
            }
        }
        None => {
            if let Some(value) = cache_control {
                described.push("Cache-Control", value);
            }
        }
    }
    described
}

/// The fields of an answer compressed for its client: its tag weak (a
/// 304's too, naming what its 200 would); a 200's coding said, and no
/// ranges offered of what is not the file's bytes.
pub(super) fn mark_compressed(fields: &mut Headers, status: u16, coding: Coding) {
    weaken_tag(fields);
    if status == 200 {
        fields.remove("accept-ranges");
        fields.push("Content-Encoding", coding.name());
    }
}

/// The file's tag made weak: it names the file's bytes, and what is sent
/// is made of them (a client's `If-None-Match` is compared weakly, and
/// still matches it).
pub(super) fn weaken_tag(fields: &mut Headers) {
    let etag = fields.get("etag").map(|tag| [b"W/", tag].concat());
    fields.remove("etag");
    if let Some(etag) = etag {
        fields.push("ETag", etag);
    }
}
