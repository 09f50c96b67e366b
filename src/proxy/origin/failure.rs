//! Why an exchange with a backend failed: the status the client is
//! answered, what stderr says, and the `$termination` the log gets.

use crate::access_log::{By, Stage, Termination};
use crate::gunzip::GunzipError;
use crate::http::conn::is_timeout;
use crate::http::{BodyError, HeadError};
use std::fmt;
use std::io;

/// Why an exchange with a backend failed.
#[derive(Debug, thiserror::Error)]
pub(in crate::proxy) enum Failure {
    /// No connection: the request never left.
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    /// No connection for want of this proxy's own resources (descriptors,
    /// memory): not the backend's doing, and no other does better.
    #[error("this proxy cannot open a connection: {0}")]
    Local(io::Error),
    /// The backend did not answer in time, at that phase.
    #[error("timed out {0}")]
    Timeout(Phase),
    /// The connection ended before a single response byte.
    #[error("closed the connection without a response")]
    Closed,
    #[error("I/O error {0}: {1}")]
    Io(Phase, io::Error),
    #[error("malformed response: {0}")]
    Malformed(Malformed),
    /// The client's side failed; answer with this, if anything.
    #[error("the client failed")]
    Client(Option<u16>),
    /// A pooled connection turned out dead before any response byte, for
    /// a request that must not be sent twice: not held against the target.
    #[error("a pooled connection it had closed: {0}")]
    Stale(Box<Failure>),
}

/// Where in an exchange with a backend, once connected, a timeout or an
/// I/O error struck: said on stderr, and the stage of `$termination`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::proxy) enum Phase {
    /// The request (its head, its body) was going to the backend.
    Sending,
    /// The request had gone; its response head had not come.
    Head,
    /// The response body was on its way.
    Body,
}

impl Phase {
    /// HAProxy's stage: the request going out counts as the wait for
    /// the response head (`sH` for a timeout either way).
    fn stage(self) -> Stage {
        match self {
            Phase::Sending | Phase::Head => Stage::Head,
            Phase::Body => Stage::Data,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Sending => "sending the request",
            Phase::Head => "waiting for the response head",
            Phase::Body => "reading the response body",
        })
    }
}

/// How a backend's reply broke HTTP.
#[derive(Debug, thiserror::Error)]
pub(in crate::proxy) enum Malformed {
    #[error(transparent)]
    Head(HeadError),
    #[error(transparent)]
    Body(BodyError),
    #[error("101 without an upgrade request")]
    UnaskedSwitch,
    #[error("too many interim responses")]
    TooManyInterim,
    #[error("response head too large")]
    HeadTooLarge,
    #[error("reply is not HTTP")]
    NotHttp,
    #[error("connection closed inside the response head")]
    ClosedInHead,
    #[error("connection closed after an interim response")]
    ClosedAfterInterim,
    #[error("connection closed inside the body")]
    ClosedInBody,
    /// A body `gunzip` was decoding for the client.
    #[error(transparent)]
    Gzip(GunzipError),
}

impl Failure {
    pub(in crate::proxy) fn status(&self) -> u16 {
        match self {
            Failure::Timeout(_) => 504,
            Failure::Connect(e) if is_timeout(e) => 504,
            Failure::Local(_) => 503,
            _ => 502,
        }
    }

    /// Failures that leave no doubt the backend never sent a response.
    pub(super) fn before_response(&self) -> bool {
        matches!(self, Failure::Closed | Failure::Io(..))
    }

    pub(in crate::proxy) fn io(phase: Phase, e: io::Error) -> Self {
        if is_timeout(&e) {
            Failure::Timeout(phase)
        } else {
            Failure::Io(phase, e)
        }
    }

    /// The stage of the exchange this failure ended (see
    /// [`Failure::termination`]).
    pub(in crate::proxy) fn stage(&self) -> Stage {
        match self {
            Failure::Connect(_) | Failure::Local(_) => Stage::Connect,
            Failure::Timeout(phase) | Failure::Io(phase, _) => phase.stage(),
            Failure::Closed => Stage::Head,
            Failure::Malformed(m) => match m {
                Malformed::Body(_) | Malformed::ClosedInBody | Malformed::Gzip(_) => Stage::Data,
                _ => Stage::Head,
            },
            // A client that left while the answer was awaited told so
            // itself (`Client::departure`); others failed in a body.
            Failure::Client(_) => Stage::Data,
            Failure::Stale(f) => f.stage(),
        }
    }

    /// Why and where the exchange ended, as HAProxy's termination state:
    /// the backend refused or cut it (`SC`, `SH`, `SD`), timed out
    /// (`sC`, `sH`, `sD`), or sent what the proxy refuses (`PH`, `PD`);
    /// the client left (`CD`), was slow (`cD`) or sent a body the proxy
    /// refuses (`PD`); the proxy had no descriptor to connect with (`RC`).
    pub(in crate::proxy) fn termination(&self) -> Termination {
        let by = match self {
            Failure::Connect(e) if is_timeout(e) => By::ServerTimeout,
            Failure::Connect(_) | Failure::Closed | Failure::Io(..) => By::Server,
            Failure::Local(_) => By::Resource,
            Failure::Timeout(_) => By::ServerTimeout,
            Failure::Malformed(m) => match m {
                // Cut short: the backend's doing.
                Malformed::ClosedInHead
                | Malformed::ClosedAfterInterim
                | Malformed::ClosedInBody
                | Malformed::Body(BodyError::Truncated) => By::Server,
                Malformed::Body(BodyError::Io(e)) if is_timeout(e) => By::ServerTimeout,
                Malformed::Body(BodyError::Io(_)) => By::Server,
                // What the proxy would not pass on (HAProxy's `PH`, `PD`).
                _ => By::Proxy,
            },
            Failure::Client(None) => By::Client,
            Failure::Client(Some(408)) => By::ClientTimeout,
            Failure::Client(Some(_)) => By::Proxy,
            Failure::Stale(f) => return f.termination(),
        };
        Termination::new(by, self.stage())
    }
}

impl From<HeadError> for Failure {
    fn from(e: HeadError) -> Self {
        Failure::Malformed(Malformed::Head(e))
    }
}

impl From<BodyError> for Failure {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Io(e) => Failure::io(Phase::Body, e),
            e => Failure::Malformed(Malformed::Body(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_says_its_stage_on_stderr_and_in_the_log() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let slow = io::Error::from(io::ErrorKind::TimedOut);
        let reset = || io::Error::from(io::ErrorKind::ConnectionReset);
        let cases = [
            (Failure::Connect(refused), "SC"),
            (Failure::Connect(slow), "sC"),
            (
                Failure::Local(io::Error::from(io::ErrorKind::OutOfMemory)),
                "RC",
            ),
            (Failure::Timeout(Phase::Sending), "sH"),
            (Failure::Timeout(Phase::Head), "sH"),
            (Failure::Timeout(Phase::Body), "sD"),
            (Failure::Io(Phase::Head, reset()), "SH"),
            (Failure::Io(Phase::Body, reset()), "SD"),
            (Failure::Closed, "SH"),
            (Failure::Malformed(Malformed::NotHttp), "PH"),
            (Failure::Malformed(Malformed::ClosedInHead), "SH"),
            (Failure::Malformed(Malformed::ClosedInBody), "SD"),
            (Failure::from(BodyError::Truncated), "SD"),
            (Failure::from(BodyError::BadChunk("size")), "PD"),
            (
                Failure::Malformed(Malformed::Gzip(GunzipError::Truncated)),
                "PD",
            ),
            (Failure::Client(None), "CD"),
            (Failure::Client(Some(408)), "cD"),
            (Failure::Client(Some(413)), "PD"),
            (Failure::Stale(Box::new(Failure::Closed)), "SH"),
        ];
        for (failure, state) in cases {
            assert_eq!(failure.termination().as_str(), state, "{failure}");
        }
        let said = |f: Failure| f.to_string();
        assert_eq!(
            said(Failure::Timeout(Phase::Head)),
            "timed out waiting for the response head"
        );
        assert_eq!(
            said(Failure::Timeout(Phase::Body)),
            "timed out reading the response body"
        );
        assert_eq!(
            said(Failure::io(Phase::Sending, reset())),
            format!("I/O error sending the request: {}", reset())
        );
    }
}
