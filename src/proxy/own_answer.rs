//! A request the proxy answers itself before reading its body: a
//! refusal, a redirect, a `return`.

use super::{Client, Outcome, OwnText, Shared};
use crate::access_log::{By, Stage, Termination};
use crate::http::{BodyKind, RequestHead, Version};
use std::borrow::Cow;
use std::sync::atomic::Ordering;

/// A request the proxy refused (an access rule, a limit, a malformed
/// or ambiguous head): HAProxy's `PR`.
pub(super) const REFUSED: Termination = Termination::new(By::Proxy, Stage::Request);

/// How a request head refused with `status` ended its exchange: a slow
/// client's (`cR`, HAProxy's for a 408), else the proxy's refusal of a
/// malformed or too large head (`PR`, HAProxy's for its 400).
pub(super) fn refused_head(status: u16) -> Termination {
    match status {
        408 => Termination::new(By::ClientTimeout, Stage::Request),
        _ => REFUSED,
    }
}

/// The `Connection` field an answer of the proxy's own needs besides
/// its `Connection: close` (written with it): an HTTP/1.0 connection
/// kept open says so, or the client takes it for closed (RFC 9112 §9.3)
/// and waits for an end that does not come.
pub(super) fn keep_alive_field(version: Version, close: bool) -> &'static [u8] {
    match !close && version == Version::Http10 {
        true => b"Connection: keep-alive\r\n",
        false => b"",
    }
}

/// `Location: <to>` and its line end, for a redirect of the proxy's own
/// (a route's, a rewrite's, the HTTPS one, a directory's slash, a sign-in
/// service's). A `\` goes as `%5C`, the same to a server: browsers read
/// it as `/`, and `/\evil.example`, which a client's path or query may
/// put after a `/`, would be `//evil.example`, another site.
pub(super) fn location_field(to: impl AsRef<[u8]>) -> Vec<u8> {
    let to = to.as_ref();
    let mut field = Vec::with_capacity(to.len() + 12);
    field.extend_from_slice(b"Location: ");
    for &b in to {
        match b {
            b'\\' => field.extend_from_slice(b"%5C"),
            b => field.push(b),
        }
    }
    field.extend_from_slice(b"\r\n");
    field
}

/// Answers 403 to a client `allow_from` or `deny_from` refuses, as nginx
/// does, before the cache or a backend is involved, and before the rate
/// limit, so that a refused client takes no bucket from the allowed ones.
/// The connection is closed, so the body is never read (it could not be
/// told from a next request otherwise) and a refused client gets no more
/// of a thread's time; what it still sends is only drained by the
/// lingering close, so that the answer is not lost to a reset. Behind a
/// `real_ip_from` balancer that carries several clients on a connection,
/// that connection closes too, and the balancer opens another.
pub(super) fn deny(client: &mut Client, head: &RequestHead, shared: &Shared) -> Outcome {
    shared.metrics.access_denied.fetch_add(1, Ordering::Relaxed);
    client.ended(REFUSED);
    let bytes = client.send_error_to(403, true, head.is_head(), shared);
    Outcome::closing(403, bytes)
}

/// Answers a request with the proxy's own `status` (`fields`, whole
/// lines, added to its head) before its body, if any, is read: the 429 of
/// `rate_limit`, the redirects of `redirect_to_https`. A body is not read:
/// the connection closes after the answer, or what is left of it would be
/// taken for the next request. Without one, the connection stays open as
/// the client wants.
pub(super) fn answer_unread(
    client: &mut Client,
    head: &RequestHead,
    body_kind: BodyKind,
    status: u16,
    fields: &[u8],
    shared: &Shared,
) -> Outcome {
    answer_unread_with(client, head, body_kind, (status, None), fields, shared)
}

/// [`answer_unread`] with `text` as the body, when given (see
/// [`own_response`]).
///
/// [`own_response`]: super::own_response()
pub(super) fn answer_unread_with(
    client: &mut Client,
    head: &RequestHead,
    body_kind: BodyKind,
    (status, text): (u16, Option<OwnText<'_>>),
    fields: &[u8],
    shared: &Shared,
) -> Outcome {
    let close = body_kind != BodyKind::Empty
        || !client.keeps_alive(head)
        || shared.shutting_down.load(Ordering::Relaxed);
    let kept = keep_alive_field(head.version, close);
    let fields: Cow<'_, [u8]> = match kept.is_empty() {
        true => Cow::Borrowed(fields),
        false => Cow::Owned([fields, kept].concat()),
    };
    // Answered here, as told (a redirect, a `return`): HAProxy's `LR`,
    // unless it is a refusal, told so before.
    client.ended(Termination::new(By::Local, Stage::Request));
    let bytes = client.send_own(status, close, head.is_head(), &fields, text, shared);
    Outcome {
        keep_alive: !close,
        ..Outcome::closing(status, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::location_field;

    #[test]
    fn a_location_never_carries_a_backslash_browsers_read_as_a_slash() {
        assert_eq!(
            location_field("/\\evil.example/x?a\\b"),
            b"Location: /%5Cevil.example/x?a%5Cb\r\n"
        );
        assert_eq!(
            location_field("https://a.example/"),
            b"Location: https://a.example/\r\n"
        );
    }
}
