//! What the log and response fields say of each target tried for one
//! request: nginx lists every one, comma-separated and in the order
//! tried, in `$upstream_addr`, `$upstream_status` and the times and byte
//! counts (`10.0.0.1:80, 10.0.0.2:80`; `502, 200`), so that a retry
//! shows where it went and why.

use crate::digits::{Decimal, Thousandths};
use crate::variables::Var;
use std::sync::Arc;
use std::time::Duration;

/// One target tried for a request, as far as its exchange went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamTry {
    /// The target (`$upstream_addr`).
    pub upstream: Option<Arc<str>>,
    /// Its answer's status, or the one the proxy gave for its failure
    /// (502, 504; `$upstream_status`).
    pub status: Option<u16>,
    /// How long the last connection opened to it took (zero for a pooled
    /// one; `$upstream_connect_time`).
    pub connect: Option<Duration>,
    /// How long it took to send its response head once it had the
    /// request (none when it did not answer; `$upstream_header_time`,
    /// `$upstream_ms`).
    pub wait: Option<Duration>,
    /// From its pick to the end of its part of the exchange: the
    /// response's end for the one that answered
    /// (`$upstream_response_time`).
    pub response: Option<Duration>,
    /// The bytes read of its answer: its head, body and the body's
    /// framing (`$upstream_bytes_received`), those after its head
    /// (`$upstream_response_length`), and the bytes of the request sent
    /// to it (`$upstream_bytes_sent`); none when no answer came.
    pub bytes_received: Option<u64>,
    pub response_length: Option<u64>,
    pub bytes_sent: Option<u64>,
}

/// A per-target variable's value for one target tried.
pub enum TryValue<'a> {
    Text(&'a str),
    Number(Decimal),
    Time(Thousandths),
}

impl TryValue<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            TryValue::Text(text) => text,
            TryValue::Number(n) => n.as_str(),
            TryValue::Time(t) => t.as_str(),
        }
    }
}

impl UpstreamTry {
    /// What `var` says of this target: none when it has nothing to say,
    /// or when `var` says nothing of a target (`$status`).
    pub fn value(&self, var: Var) -> Option<TryValue<'_>> {
        let number = |n: Option<u64>| n.map(|n| TryValue::Number(Decimal::new(n)));
        let seconds = |d: Option<Duration>| d.map(|d| TryValue::Time(Thousandths::seconds(d)));
        match var {
            Var::UpstreamAddr => self.upstream.as_deref().map(TryValue::Text),
            Var::UpstreamStatus => number(self.status.map(u64::from)),
            Var::UpstreamConnectTime => seconds(self.connect),
            Var::UpstreamHeaderTime => seconds(self.wait),
            Var::UpstreamMs => self.wait.map(|d| TryValue::Time(Thousandths::millis(d))),
            Var::UpstreamResponseTime => seconds(self.response),
            Var::UpstreamBytesReceived => number(self.bytes_received),
            Var::UpstreamResponseLength => number(self.response_length),
            Var::UpstreamBytesSent => number(self.bytes_sent),
            _ => None,
        }
    }
}

/// Writes `var` of the targets tried before the last, `earlier`, each
/// followed by `, ` (`-` for one that has nothing to say, as nginx
/// writes it inside a list), for the last's value to follow.
pub fn push_earlier(var: Var, earlier: &[UpstreamTry], out: &mut Vec<u8>) {
    for tried in earlier {
        match tried.value(var) {
            Some(value) => out.extend_from_slice(value.as_str().as_bytes()),
            None => out.push(b'-'),
        }
        out.extend_from_slice(b", ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tried() -> UpstreamTry {
        UpstreamTry {
            upstream: Some("127.0.0.1:8081".into()),
            status: Some(502),
            connect: Some(Duration::from_micros(1500)),
            wait: None,
            response: Some(Duration::from_millis(3)),
            bytes_received: None,
            response_length: None,
            bytes_sent: Some(120),
        }
    }

    fn written(var: Var, earlier: &[UpstreamTry]) -> String {
        let mut out = Vec::new();
        push_earlier(var, earlier, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_per_target_variable_reads_its_own_part() {
        let tried = UpstreamTry {
            wait: Some(Duration::from_micros(2500)),
            bytes_received: Some(7),
            response_length: Some(5),
            ..tried()
        };
        let cases = [
            (Var::UpstreamAddr, "127.0.0.1:8081"),
            (Var::UpstreamStatus, "502"),
            (Var::UpstreamConnectTime, "0.002"),
            (Var::UpstreamHeaderTime, "0.003"),
            (Var::UpstreamMs, "2.500"),
            (Var::UpstreamResponseTime, "0.003"),
            (Var::UpstreamBytesReceived, "7"),
            (Var::UpstreamResponseLength, "5"),
            (Var::UpstreamBytesSent, "120"),
        ];
        for (var, expected) in cases {
            let value = tried.value(var);
            assert_eq!(
                value.as_ref().map(TryValue::as_str),
                Some(expected),
                "{var:?}"
            );
        }
    }

    #[test]
    fn a_variable_not_per_target_has_no_value_of_a_target() {
        for var in [
            Var::Status,
            Var::UpstreamQueueTime,
            Var::UpstreamCacheStatus,
        ] {
            assert!(tried().value(var).is_none(), "{var:?}");
        }
    }

    #[test]
    fn earlier_targets_are_listed_in_order_with_a_dash_for_what_one_lacks() {
        let second = UpstreamTry {
            upstream: Some("127.0.0.1:8082".into()),
            status: Some(504),
            ..UpstreamTry::default()
        };
        let both = [tried(), second];
        assert_eq!(
            written(Var::UpstreamAddr, &both),
            "127.0.0.1:8081, 127.0.0.1:8082, "
        );
        assert_eq!(written(Var::UpstreamStatus, &both), "502, 504, ");
        assert_eq!(written(Var::UpstreamHeaderTime, &both), "-, -, ");
        assert_eq!(written(Var::UpstreamBytesSent, &both), "120, -, ");
        assert_eq!(written(Var::UpstreamAddr, &[]), "");
    }
}
