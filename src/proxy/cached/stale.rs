//! A stale entry standing in when the origin fails.

use super::answer::serve_entry;
use super::{Answering, Status};
use crate::cache::Entry;
use crate::proxy::{Client, Outcome, Refusal};
use std::sync::Arc;
use std::time::SystemTime;

/// The entry to serve when the origin failed (`origin_failed` is false
/// when it was the client that failed), if its stale window allows: for a
/// request that found one `stored`, what the cache holds for it now. Not
/// an entry purged while the origin was asked (a `PURGE`, a `POST`),
/// which the purge said was gone; the outdated copy a soft purge left, or
/// what another request stored since, stands in instead.
pub(super) fn stale_fallback(
    stored: &Option<Arc<Entry>>,
    origin_failed: bool,
    answering: &Answering<'_>,
    primary: &str,
) -> Option<Arc<Entry>> {
    stored.as_ref().filter(|_| origin_failed)?;
    let held = answering
        .cache
        .lookup(primary, &answering.request.headers)?;
    let now = SystemTime::now();
    held.within_stale_window(now, answering.ttl).then_some(held)
}

/// The stale entry, when the origin failed (a refusal with a status: the
/// client is still there) and its window allows; else the refusal.
pub(super) fn stale_or(
    refusal: Refusal,
    client: &mut Client,
    answering: &Answering<'_>,
    fallback: &Option<Arc<Entry>>,
    primary: &str,
) -> Result<Outcome, Refusal> {
    if let Some(status) = refusal.for_backend() {
        client.upstream_status = Some(status);
    }
    match stale_fallback(fallback, refusal.status.is_some(), answering, primary) {
        Some(entry) => serve_entry(
            client,
            answering,
            &entry,
            Status::Stale,
            refusal.upstream,
            b"",
        ),
        None => Err(refusal),
    }
}
