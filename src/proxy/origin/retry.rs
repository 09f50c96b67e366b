//! Which requests may be sent again, and after which failures: to the
//! same target, or to another.

use super::{Failure, RequestBody};

/// RFC 9110 §9.2.2: repeating these has the same effect as sending once.
pub(super) fn is_idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE")
}

/// Whether a request that failed this way may go to another target:
/// - when it never left (cannot connect), always: even a streamed body
///   has not been read from the client yet;
/// - otherwise only when its body can be sent again (buffered), and only
///   for idempotent methods: the backend may have acted on it before the
///   connection failed. A reused connection closing before any response
///   byte is retried on a fresh connection to the same target already,
///   in [`attempt`](super::attempt::attempt).
pub(super) fn retry_elsewhere(f: &Failure, idempotent: bool, body: &RequestBody) -> bool {
    match f {
        Failure::Connect(_) => true,
        Failure::Client(_) => false,
        _ => may_send_again(idempotent, body),
    }
}

/// Whether a request that reached a backend may be sent again, to it or
/// another: after a failure (see [`retry_elsewhere`]), or an answer
/// whose status `retry_on_status` lists. Only an idempotent one (the
/// backend may have acted on it) whose body can be sent again (buffered).
pub(super) fn may_send_again(idempotent: bool, body: &RequestBody) -> bool {
    idempotent && body.is_read_whole()
}
