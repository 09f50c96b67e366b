//! An exchange that ended without relaying a response ([`Refusal`]), and
//! the proxy's own answer to it.

use super::{keep_alive_field, Client, Outcome, Shared};
use crate::http::conn::is_timeout;
use crate::http::{BodyError, Version};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Answers an exchange that ended in `refusal` with the proxy's own
/// status, if it has one (none: the client is gone).
pub(super) fn answer_refusal(
    client: &mut Client,
    refusal: Refusal,
    version: Version,
    head_request: bool,
    shared: &Shared,
) -> Outcome {
    if let Some(status) = refusal.for_backend() {
        client.upstream_status = Some(status);
    }
    let bytes = match refusal.status {
        Some(status) => {
            let close = !refusal.keep_alive || shared.shutting_down.load(Ordering::Relaxed);
            let fields = keep_alive_field(version, close);
            client.send_own(status, close, head_request, fields, None, shared)
        }
        None => 0,
    };
    Outcome {
        status: refusal.status.unwrap_or(499),
        bytes,
        upstream: refusal.upstream,
        keep_alive: refusal.keep_alive && refusal.status.is_some(),
        cache: None,
        linger: true,
    }
}

/// An exchange that ended without relaying a response: the status the
/// proxy answers with itself (`None`: the client is gone, say nothing).
pub(super) struct Refusal {
    pub(super) status: Option<u16>,
    pub(super) upstream: Option<Arc<str>>,
    pub(super) keep_alive: bool,
}

impl Refusal {
    /// The status answered for a backend that failed (502, 504), for the
    /// log's `$upstream_status`.
    pub(super) fn for_backend(&self) -> Option<u16> {
        self.status
            .filter(|s| self.upstream.is_some() && matches!(s, 502 | 504))
    }

    pub(super) fn new(status: u16, keep_alive: bool) -> Self {
        Refusal {
            status: Some(status),
            upstream: None,
            keep_alive,
        }
    }

    /// The client is gone: nothing to answer.
    pub(super) fn silent() -> Self {
        Refusal {
            status: None,
            upstream: None,
            keep_alive: false,
        }
    }
}

/// What to tell a client whose request body could not be read.
pub(super) fn client_body_status(e: &BodyError) -> Option<u16> {
    match e {
        BodyError::BadChunk(_) => Some(400),
        BodyError::TooLarge(_) => Some(413),
        BodyError::Io(e) if is_timeout(e) => Some(408),
        _ => None,
    }
}
