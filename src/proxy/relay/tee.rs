//! The copy of a body the cache takes as it is relayed, handed over whole
//! once the body ends, or let go once it grows too large.

/// A copy of the body taken while it is relayed, for the cache.
pub(in crate::proxy) struct Tee<'a> {
    pub(super) limit: u64,
    body: Vec<u8>,
    pub(super) overflowed: bool,
    /// Receives the whole body once it has been read, before its last bytes
    /// go to the client (a client that asks again as soon as it has the
    /// response finds the entry stored); or `None` as soon as it grows
    /// over the limit.
    on_end: Option<OnEnd<'a>>,
}

/// What a [`Tee`] hands the body to: `Some` whole, `None` too large.
type OnEnd<'a> = Box<dyn FnOnce(Option<Vec<u8>>) + 'a>;

impl<'a> Tee<'a> {
    pub(in crate::proxy) fn new(limit: u64, on_end: impl FnOnce(Option<Vec<u8>>) + 'a) -> Self {
        Tee {
            limit,
            body: Vec::new(),
            overflowed: false,
            on_end: Some(Box::new(on_end)),
        }
    }

    pub(super) fn push(&mut self, piece: &[u8]) {
        if self.overflowed {
            return;
        }
        if (self.body.len() + piece.len()) as u64 > self.limit {
            self.overflow();
        } else {
            self.body.extend_from_slice(piece);
        }
    }

    /// The body grew past the limit.
    pub(super) fn overflow(&mut self) {
        self.overflowed = true;
        self.body = Vec::new();
        // Nothing will be stored: what waits on it (the key's flight,
        // the fill) is let go now, not once the body is all relayed.
        if let Some(on_end) = self.on_end.take() {
            on_end(None);
        }
    }

    /// The body ended: hand it over (once), unless it grew too large.
    pub(super) fn finish(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(Some(std::mem::take(&mut self.body)));
        }
    }
}
