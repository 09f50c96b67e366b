//! A request's `rewrite.<name>` rules: a new target, or an answer left to
//! give ([`RuleAnswer`]).

use super::Client;
use crate::http::RequestHead;
use crate::rewrite::{Rewrites, Rewritten};
use crate::routes::Ambiguous;
use crate::throttle::OnceAMinute;

/// What a `rewrite.<name>` rule leaves to answer once the request is
/// routed and past the access lists and the HTTPS redirect.
pub(super) enum RuleAnswer {
    /// A redirect, with that status, to that `Location`.
    Redirect(u16, String),
    /// The rule made no target the request can go on with (see
    /// [`crate::rewrite::Unusable`]): 500, the configuration's fault
    /// rather than the client's.
    Failed,
}

/// Applies the first `rewrite.<name>` rule that matches `head`'s path:
/// a new target goes in the head (the client's is kept in
/// [`Client::sent_target`]); a redirect, or a failure, is left to answer
/// (see [`RuleAnswer`]). A path routes refuse is refused here too, with
/// routes or without: rules match paths as routes read them, and some
/// backend reads such a path otherwise.
pub(super) fn rewrite(
    client: &mut Client,
    head: &mut RequestHead,
    rewrites: &Rewrites,
) -> Result<Option<RuleAnswer>, Ambiguous> {
    // Not an `OPTIONS *` (or an absolute-form one with no path): it asks
    // about the server, and no rule takes it.
    let target = head.origin_target();
    let rules = rewrites.for_request(head.authority(), client.scheme);
    if rules.ambiguous(&target) {
        return Err(Ambiguous);
    }
    match rules.apply(&target) {
        Ok(None) => Ok(None),
        Ok(Some(Rewritten::Internal(to))) => {
            client.sent_target = Some(head.set_path_and_query(&to));
            client.made_target = Some(to);
            Ok(None)
        }
        Ok(Some(Rewritten::Redirect { status, location })) => {
            Ok(Some(RuleAnswer::Redirect(status, location)))
        }
        Err(unusable) => {
            // A rule that goes wrong for one path goes wrong for many.
            static UNUSABLE: OnceAMinute = OnceAMinute::new();
            if UNUSABLE.due() {
                log::error!("{unusable}; answered 500");
            }
            Ok(Some(RuleAnswer::Failed))
        }
    }
}
