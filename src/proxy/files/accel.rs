//! `X-Accel-Redirect`: a file a backend names, served from an `internal`
//! `files` route in its answer's place, for the request it answered.

use super::serve;
use crate::http::{BodyKind, Headers, RequestHead, ResponseHead};
use crate::proxy::client::Client;
use crate::proxy::{answer_unread, Outcome, Shared};
use crate::throttle::OnceAMinute;

/// The fields of a request a file named by `X-Accel-Redirect` is served
/// for: the host (for routing), how the connection goes on, the
/// conditions and ranges (a download resumed), the codings taken.
const ACCEL_FIELDS: [&str; 8] = [
    "connection",
    "range",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "accept-encoding",
];

/// The backend's fields that go with the file it names, as nginx passes
/// them on: its type and name for the download, and how long it may be
/// kept.
const ACCEL_KEPT: [&str; 5] = [
    "Content-Type",
    "Content-Disposition",
    "Cache-Control",
    "Expires",
    "Set-Cookie",
];

/// What of `head` a file its backend names in `X-Accel-Redirect` is
/// served for: a GET (a HEAD stays one, as nginx has it) with the
/// fields [`ACCEL_FIELDS`] names, its target set once the backend names
/// it.
pub(in crate::proxy) fn accel_request(head: &RequestHead) -> RequestHead {
    let mut headers = Headers::new();
    // The host the request was routed by: an absolute-form target's
    // (which a `Host` field may contradict), else its `Host`.
    if let Some(authority) = head.authority() {
        headers.push("host", authority);
    }
    for name in ACCEL_FIELDS {
        for value in head.headers.get_all(name) {
            headers.push(name, value);
        }
    }
    RequestHead {
        method: if head.is_head() { "HEAD" } else { "GET" }.to_string(),
        target: String::new(),
        version: head.version,
        headers,
    }
}

/// The path a backend's `X-Accel-Redirect` names (nginx's internal
/// redirect, which Django, Rails' `send_file` and PHP applications use
/// to have the proxy send a file they checked the client may have),
/// when the request may be answered so; as sent, which may not be text.
pub(in crate::proxy) fn accel_redirect_of<'r>(
    response: &'r ResponseHead,
    client: &Client,
) -> Option<&'r [u8]> {
    client.accel.as_ref()?;
    response
        .headers
        .get("x-accel-redirect")
        .map(<[u8]>::trim_ascii)
}

/// The backend's fields of [`ACCEL_KEPT`], for the file it names.
pub(in crate::proxy) fn accel_kept(response: &ResponseHead) -> Headers {
    let mut kept = Headers::new();
    for name in ACCEL_KEPT {
        for value in response.headers.get_all(name) {
            kept.push(name, value);
        }
    }
    kept
}

/// Answers with the file `to` (a backend's `X-Accel-Redirect`) names
/// under an `internal` `files` route, with the backend's fields `kept`
/// (see [`accel_kept`]), `keep_alive` false when the connection must
/// close whatever the client wants. A path no such route serves is the
/// backend's error: 502.
pub(in crate::proxy) fn serve_accel(
    client: &mut Client,
    to: &[u8],
    kept: &Headers,
    keep_alive: bool,
    shared: &Shared,
) -> Outcome {
    let Some(mut head) = client.accel.take() else {
        return Outcome::closing(502, 0);
    };
    if !keep_alive {
        head.headers.set("connection", "close");
    }
    // Not text: a path no route serves (below).
    let text = std::str::from_utf8(to).is_ok();
    let to = String::from_utf8_lossy(to);
    let path = to.split('?').next().unwrap_or_default();
    head.target = path.to_string();
    let routes = &shared.config.routes;
    let route = match routes.route(head.authority(), path) {
        Ok(Some(i)) if path.starts_with('/') && text => routes.get(i),
        _ => None,
    };
    let route = route.filter(|r| r.is_internal());
    let Some((route, files)) = route.and_then(|r| Some((r, r.files()?))) else {
        static UNSERVED: OnceAMinute = OnceAMinute::new();
        if UNSERVED.due() {
            log::warn!(
                "X-Accel-Redirect: {}: no internal files route serves it; answered 502",
                to.escape_debug()
            );
        }
        return answer_unread(client, &head, BodyKind::Empty, 502, b"", shared);
    };
    let under = route.path_under(path);
    // An internal route has no pool to fall back to (see `Route::internal`).
    let outcome = serve(
        client,
        &head,
        BodyKind::Empty,
        files,
        &under,
        Some(kept),
        shared,
    );
    outcome.unwrap_or_else(|| Outcome::closing(502, 0))
}
