//! Why and where an exchange ended (`$termination`), in the two letters
//! of HAProxy's termination state ("Session state at disconnection"):
//! who or what ended it, then the stage it was at. `--` is an exchange
//! that ended as it should.
//!
//! Two bytes, copied by value: setting one costs nothing on the hot
//! path, and writing one allocates nothing.

/// Who or what ended an exchange before its time: the first letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// `C`: the client aborted (closed, reset).
    Client,
    /// `S`: the backend aborted, refused the connection, or none was
    /// there to take it.
    Server,
    /// `P`: the proxy refused (a limit, an access rule, a malformed or
    /// too large message, a response it would not pass on), or failed (a
    /// file it serves found short of its size, or unreadable).
    Proxy,
    /// `R`: a resource of the proxy's ran out (descriptors, memory).
    Resource,
    /// `L`: the proxy answered itself, as it was told to (a redirect, a
    /// `return`), and no backend was asked.
    Local,
    /// `K`: a forced shutdown cut it.
    Killed,
    /// `c`: the client's timeout expired.
    ClientTimeout,
    /// `s`: the backend's timeout expired.
    ServerTimeout,
}

/// The stage an exchange was at when it ended: the second letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// `R`: waiting for the client's request head (or checking it).
    Request,
    /// `Q`: waiting in a queue for a target's free slot (`max_conns`).
    Queue,
    /// `C`: connecting to a backend.
    Connect,
    /// `H`: waiting for the backend's response head (the request being
    /// sent is part of it, as in HAProxy).
    Head,
    /// `D`: a body on its way, the request's or the response's.
    Data,
}

impl By {
    const fn letter(self) -> u8 {
        match self {
            By::Client => b'C',
            By::Server => b'S',
            By::Proxy => b'P',
            By::Resource => b'R',
            By::Local => b'L',
            By::Killed => b'K',
            By::ClientTimeout => b'c',
            By::ServerTimeout => b's',
        }
    }
}

impl Stage {
    const fn letter(self) -> u8 {
        match self {
            Stage::Request => b'R',
            Stage::Queue => b'Q',
            Stage::Connect => b'C',
            Stage::Head => b'H',
            Stage::Data => b'D',
        }
    }
}

/// The two letters: `--`, or [`By`] and [`Stage`] (`SC`, `sH`, `CD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termination([u8; 2]);

impl Termination {
    /// An exchange that ended as it should.
    pub const NORMAL: Termination = Termination(*b"--");

    pub const fn new(by: By, at: Stage) -> Termination {
        Termination([by.letter(), at.letter()])
    }

    pub fn is_normal(self) -> bool {
        self == Termination::NORMAL
    }

    /// Whether the client had an answer whole, as nginx's
    /// `$request_completion` says `OK`: the exchange ended as it should,
    /// or with an answer of the proxy's own (a 502, a 504, a refusal).
    /// Not when the client left or timed out, a forced shutdown cut the
    /// connection, or a body was cut short (the request's or the
    /// response's: which one, the two letters do not say).
    pub fn answered_whole(self) -> bool {
        let [by, stage] = self.0;
        !matches!(by, b'C' | b'c' | b'K') && stage != b'D'
    }

    pub fn as_str(&self) -> &str {
        // Always two ASCII letters (or dashes): see the constructors.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl Default for Termination {
    fn default() -> Self {
        Termination::NORMAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_whole_unless_the_client_left_or_a_body_was_cut() {
        let whole = [
            Termination::NORMAL,
            Termination::new(By::Server, Stage::Connect),
            Termination::new(By::ServerTimeout, Stage::Head),
            Termination::new(By::Proxy, Stage::Request),
            Termination::new(By::Local, Stage::Request),
            Termination::new(By::Resource, Stage::Connect),
            Termination::new(By::ServerTimeout, Stage::Queue),
        ];
        let cut = [
            Termination::new(By::Client, Stage::Head),
            Termination::new(By::Client, Stage::Queue),
            Termination::new(By::ClientTimeout, Stage::Request),
            Termination::new(By::Killed, Stage::Head),
            Termination::new(By::Server, Stage::Data),
            Termination::new(By::Proxy, Stage::Data),
        ];
        for t in whole {
            assert!(t.answered_whole(), "{}", t.as_str());
        }
        for t in cut {
            assert!(!t.answered_whole(), "{}", t.as_str());
        }
    }

    #[test]
    fn letters_are_haproxy_s() {
        assert_eq!(Termination::NORMAL.as_str(), "--");
        assert_eq!(Termination::new(By::Server, Stage::Connect).as_str(), "SC");
        assert_eq!(
            Termination::new(By::ServerTimeout, Stage::Head).as_str(),
            "sH"
        );
        assert_eq!(Termination::new(By::Client, Stage::Data).as_str(), "CD");
        assert_eq!(
            Termination::new(By::ClientTimeout, Stage::Request).as_str(),
            "cR"
        );
        assert_eq!(Termination::new(By::Proxy, Stage::Request).as_str(), "PR");
        assert_eq!(
            Termination::new(By::Resource, Stage::Connect).as_str(),
            "RC"
        );
        assert_eq!(Termination::new(By::Local, Stage::Request).as_str(), "LR");
        assert_eq!(
            Termination::new(By::ServerTimeout, Stage::Queue).as_str(),
            "sQ"
        );
        assert_eq!(Termination::new(By::Killed, Stage::Data).as_str(), "KD");
        assert!(Termination::default().is_normal());
        assert!(!Termination::new(By::Local, Stage::Request).is_normal());
    }
}
