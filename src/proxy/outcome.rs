//! What happened to one request ([`Outcome`]).

use std::sync::Arc;

/// What happened to one request, for the log and the connection loop.
pub(super) struct Outcome {
    pub(super) status: u16,
    pub(super) bytes: u64,
    pub(super) upstream: Option<Arc<str>>,
    pub(super) keep_alive: bool,
    /// The X-Cache status, when the cache is on.
    pub(super) cache: Option<&'static str>,
    /// Whether closing after this exchange must linger (see [`linger`]):
    /// true unless the client asked to close and its whole request was
    /// read, so that it has nothing more to send. nginx's `lingering_close
    /// on` makes the same guess; lingering on every close costs a thread
    /// wake-up per connection for nothing.
    ///
    /// [`linger`]: super::client::linger
    pub(super) linger: bool,
}

impl Outcome {
    pub(super) fn closing(status: u16, bytes: u64) -> Self {
        Outcome {
            status,
            bytes,
            upstream: None,
            keep_alive: false,
            cache: None,
            linger: true,
        }
    }
}
