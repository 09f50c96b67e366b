//! A file that could not be opened, or read whole: its answer when its
//! head has not gone yet, and the warning that names it and says why.

use super::pieces::Unread;
use super::send::Opened;
use crate::access_log::{By, Stage, Termination};
use crate::files::Unopened;
use crate::http::{BodyKind, RequestHead};
use crate::proxy::client::Client;
use crate::proxy::{answer_unread, Outcome, Shared};
use crate::throttle::OnceAMinute;
use std::fs::File;
use std::io;

/// A file that could not be read is said at most once a minute, before
/// its head went (answered 500) or after (the connection closed short):
/// a failing disk fails every request for what is on it.
pub(super) static UNREADABLE: OnceAMinute = OnceAMinute::new();

/// The warning for the file `opened` that could not be read while it was
/// sent (`error`, after `sent` of the answer's `length` body bytes), as
/// nginx's error log tells its failed `sendfile()` or `pread()`: the
/// client is cut short, and the log's `PD` alone says not which file,
/// nor why.
pub(super) fn unreadable_while_sent(
    opened: Opened<'_>,
    sent: u64,
    length: Option<u64>,
    error: &io::Error,
) -> String {
    let of = length.map_or(String::new(), |length| format!(" of {length}"));
    format!(
        "{}: reading the file failed while it was served ({sent}{of} body bytes sent): \
         {error}; the connection is closed",
        opened.printable()
    )
}

/// Says that the file `opened` ended before the answer's `length` bytes
/// of body were sent (nginx's "was truncated"): changed in place while
/// served (a deploy that rewrites files rather than renaming new ones
/// over them). The client is sent `sent` bytes, then the connection
/// closes; a client gone is no news and is not said.
pub(super) fn say_truncated(opened: Opened<'_>, sent: u64, length: u64) {
    let now = size_now(opened.0);
    let path = opened.printable();
    log::warn!(
        "{path}: the file was truncated while it was served ({sent} of {length} body bytes sent{now}); \
         the connection is closed: rename new files into place rather than rewrite them"
    );
}

/// Answers 500 for a file whose pieces could not be read whole before
/// its answer's head went (`opened`, why in `unread`), and says so: a
/// file cut shorter since it was opened, as [`say_truncated`] does for
/// one found so while it was sent, or one that cannot be read. Logged
/// `PH`: the proxy would not send what it had of it, as it would not a
/// backend's broken answer.
pub(super) fn unread_answer(
    client: &mut Client,
    head: &RequestHead,
    body_kind: BodyKind,
    opened: Opened<'_>,
    unread: Unread,
    shared: &Shared,
) -> Outcome {
    let printable = opened.printable();
    match unread {
        Unread::Short { read, wanted } => log::warn!(
            "{printable}: the file was truncated before it was served ({read} of {wanted} bytes \
             read{}); answered 500: rename new files into place rather than rewrite them",
            size_now(opened.0)
        ),
        Unread::Failed(e) => {
            if UNREADABLE.due() {
                log::warn!("{printable}: reading the file failed: {e}; answered 500");
            }
        }
    }
    client.ended(Termination::new(By::Proxy, Stage::Head));
    answer_unread(client, head, body_kind, 500, b"", shared)
}

/// Answers `status` for a file that could not be opened, and says so
/// with its path, as nginx's error log does: at most once a minute for
/// each cause (refused, the proxy's resources out, another failure),
/// since a scanner may ask for it at every request, and one cause must
/// not hide another. Logged as the proxy's failure before any head
/// (`PH`), as a file found short is; for descriptors or memory run out,
/// as its resource's (`RH`).
pub(super) fn unopened_answer(
    client: &mut Client,
    head: &RequestHead,
    body_kind: BodyKind,
    (status, unopened): (u16, Unopened),
    shared: &Shared,
) -> Outcome {
    static REFUSED: OnceAMinute = OnceAMinute::new();
    static EXHAUSTED: OnceAMinute = OnceAMinute::new();
    static FAILING: OnceAMinute = OnceAMinute::new();
    let (said, by) = match (status, unopened.exhausted()) {
        (403, _) => (&REFUSED, By::Proxy),
        (_, true) => (&EXHAUSTED, By::Resource),
        (_, false) => (&FAILING, By::Proxy),
    };
    if said.due() {
        let path = crate::config::printable(&unopened.path.to_string_lossy());
        log::warn!(
            "{path}: opening the file failed: {}; answered {status}",
            unopened.error
        );
    }
    client.ended(Termination::new(by, Stage::Head));
    answer_unread(client, head, body_kind, status, b"", shared)
}

/// `, N bytes now`: the size of `file` as it is now, for a warning that
/// it was cut (nothing when it cannot be told).
fn size_now(file: &File) -> String {
    match file.metadata() {
        Ok(meta) => format!(", {} bytes now", meta.len()),
        Err(_) => String::new(),
    }
}
