//! W3C Trace Context (`traceparent`): the proxy's part in a distributed
//! trace, as nginx's `otel_trace_context`. A request carries the trace it
//! belongs to and the span that sent it; the proxy's own span continues
//! that trace (or begins one), and the backend is told the proxy's span is
//! its parent, so the backends' traces and the access log's lines name
//! the same trace.

use crate::variables::Var;
use std::fmt::Write as _;

/// What is done with the trace context of requests (`trace_context`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceMode {
    /// Nothing: the fields pass as any other, no IDs are made.
    #[default]
    Off,
    /// The client's trace is read (for the log), and passed on as it came.
    Extract,
    /// A new trace for each request, sent to the backend in place of the
    /// client's (whose `tracestate` goes with it).
    Inject,
    /// The client's trace continued, a new one begun for a request
    /// without one, and the proxy's span sent to the backend as the parent.
    Propagate,
}

impl TraceMode {
    pub fn parse(v: &str) -> Result<TraceMode, String> {
        match v {
            "" | "off" | "ignore" => Ok(TraceMode::Off),
            "extract" => Ok(TraceMode::Extract),
            "inject" => Ok(TraceMode::Inject),
            "propagate" => Ok(TraceMode::Propagate),
            _ => Err(format!("`{v}`: one of off, extract, inject, propagate")),
        }
    }

    /// The trace context of a request whose `traceparent` field says
    /// `given` (none when it has none, or more than one): `None` when
    /// off, or when extracting from a request without a valid one.
    pub fn begin(self, given: Option<&[u8]>) -> Option<TraceContext> {
        let given = given.and_then(parse_traceparent);
        let new = || TraceContext {
            trace_id: nonzero(crate::request_id::random_u128()),
            span_id: new_span_id(),
            parent_id: None,
            flags: SAMPLED,
            continued: false,
        };
        let continued = |(trace_id, parent_id, flags)| TraceContext {
            trace_id,
            span_id: new_span_id(),
            parent_id: Some(parent_id),
            flags,
            continued: true,
        };
        match self {
            TraceMode::Off => None,
            TraceMode::Extract => given.map(continued),
            TraceMode::Inject => Some(new()),
            TraceMode::Propagate => Some(given.map_or_else(new, continued)),
        }
    }

    /// Whether the backend is sent the proxy's own `traceparent`.
    pub fn injects(self) -> bool {
        matches!(self, TraceMode::Inject | TraceMode::Propagate)
    }
}

/// The `sampled` flag: a trace begun here asks the backends to record it.
const SAMPLED: u8 = 0x01;

/// One request's place in a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    /// The proxy's own span.
    pub span_id: u64,
    /// The client's span, when its trace was continued.
    pub parent_id: Option<u64>,
    pub flags: u8,
    /// Whether the trace is the client's (else begun here): a
    /// `tracestate` belongs to the trace it came with.
    pub continued: bool,
}

impl TraceContext {
    /// The `traceparent` the backend is sent: the proxy's span its parent.
    pub fn traceparent(&self) -> String {
        let mut out = String::with_capacity(55);
        let _ = write!(
            out,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        );
        out
    }

    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    pub fn parent_id(&self) -> Option<String> {
        self.parent_id.map(|id| format!("{id:016x}"))
    }

    /// nginx's `$otel_parent_sampled`: `1` when the client's span was
    /// recorded, `0` otherwise (and when there was none).
    pub fn parent_sampled(&self) -> &'static str {
        match self.continued && self.flags & SAMPLED != 0 {
            true => "1",
            false => "0",
        }
    }
}

/// What nginx's `$otel_trace_id`, `$otel_span_id`, `$otel_parent_id` and
/// `$otel_parent_sampled` say of `trace`: none without one (or, for the
/// parent, without a parent).
pub fn variable(trace: Option<&TraceContext>, var: Var) -> Option<String> {
    let trace = trace?;
    match var {
        Var::OtelTraceId => Some(trace.trace_id()),
        Var::OtelSpanId => Some(trace.span_id()),
        Var::OtelParentId => trace.parent_id(),
        Var::OtelParentSampled => Some(trace.parent_sampled().to_string()),
        _ => None,
    }
}

fn new_span_id() -> u64 {
    (crate::request_id::random_u128() as u64).max(1)
}

/// An ID of all zeros is invalid: one in 2^128 draws, made one.
fn nonzero(id: u128) -> u128 {
    id.max(1)
}

/// `version-traceid-parentid-flags` (W3C Trace Context §3.2): the trace
/// ID, the parent's span ID and the flags of a valid `traceparent`, lower
/// case hex. A version after `00` is read for the fields `00` has (its
/// own may follow, after a `-`); `ff` is none, nor are IDs of all zeros.
pub fn parse_traceparent(value: &[u8]) -> Option<(u128, u64, u8)> {
    let value = value.trim_ascii();
    if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let version = hex(&value[..2])? as u8;
    let longer_than_00 = value.len() > 55;
    if version == 0xff || (version == 0 && longer_than_00) {
        return None;
    }
    if longer_than_00 && value[55] != b'-' {
        return None;
    }
    let trace_id = hex(&value[3..35])?;
    let parent_id = hex(&value[36..52])? as u64;
    let flags = hex(&value[53..55])? as u8;
    (trace_id != 0 && parent_id != 0).then_some((trace_id, parent_id, flags))
}

/// Lower-case hex digits (upper case is invalid in a `traceparent`).
fn hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |n, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u128::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIVEN: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_read_and_a_bad_one_is_none() {
        assert_eq!(
            parse_traceparent(GIVEN),
            Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 1))
        );
        // A later version is read for the fields 00 has.
        let later = b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert!(parse_traceparent(later).is_some());
        for bad in [
            &b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            b"",
        ] {
            assert_eq!(
                parse_traceparent(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn propagate_continues_a_trace_and_begins_one_for_a_request_without() {
        let continued = TraceMode::Propagate.begin(Some(GIVEN)).unwrap();
        assert_eq!(continued.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(continued.parent_id().as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(continued.span_id, 0x00f067aa0ba902b7);
        let sent = continued.traceparent();
        assert_eq!(sent.len(), 55);
        assert_eq!(
            parse_traceparent(sent.as_bytes()),
            Some((continued.trace_id, continued.span_id, 1))
        );
        assert_eq!(continued.parent_sampled(), "1");
        let unsampled = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let not_recorded = TraceMode::Propagate.begin(Some(unsampled)).unwrap();
        assert!(not_recorded.traceparent().ends_with("-00"));
        assert_eq!(not_recorded.parent_sampled(), "0");

        let begun = TraceMode::Propagate.begin(Some(b"garbage")).unwrap();
        assert_ne!(begun.trace_id, continued.trace_id);
        assert_eq!(
            (begun.parent_id, begun.continued, begun.flags),
            (None, false, 1)
        );
        assert_eq!(begun.parent_sampled(), "0");
        let other = TraceMode::Propagate.begin(None).unwrap();
        assert_ne!(other.trace_id, begun.trace_id);
        assert_ne!(other.span_id, begun.span_id);
    }

    #[test]
    fn inject_always_begins_extract_only_reads_and_off_does_nothing() {
        let injected = TraceMode::Inject.begin(Some(GIVEN)).unwrap();
        assert_ne!(injected.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(!injected.continued && injected.parent_id.is_none());
        let extracted = TraceMode::Extract.begin(Some(GIVEN)).unwrap();
        assert_eq!(extracted.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(TraceMode::Extract.begin(None), None);
        assert_eq!(TraceMode::Off.begin(Some(GIVEN)), None);
        assert!(TraceMode::Propagate.injects() && TraceMode::Inject.injects());
        assert!(!TraceMode::Extract.injects() && !TraceMode::Off.injects());
    }

    #[test]
    fn modes_are_read_by_name() {
        assert_eq!(TraceMode::parse("propagate"), Ok(TraceMode::Propagate));
        assert_eq!(TraceMode::parse("inject"), Ok(TraceMode::Inject));
        assert_eq!(TraceMode::parse("extract"), Ok(TraceMode::Extract));
        assert_eq!(TraceMode::parse("off"), Ok(TraceMode::Off));
        assert_eq!(TraceMode::parse("ignore"), Ok(TraceMode::Off));
        assert_eq!(TraceMode::parse(""), Ok(TraceMode::Off));
        assert!(TraceMode::parse("on")
            .unwrap_err()
            .contains("one of off, extract"));
    }

    #[test]
    fn the_otel_variables_name_the_trace_the_span_and_the_parent() {
        let continued = TraceMode::Propagate.begin(Some(GIVEN)).unwrap();
        let var = |v| variable(Some(&continued), v);
        assert_eq!(
            var(Var::OtelTraceId).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            var(Var::OtelSpanId),
            Some(format!("{:016x}", continued.span_id))
        );
        assert_eq!(continued.span_id().len(), 16);
        assert_eq!(var(Var::OtelParentId).as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(var(Var::OtelParentSampled).as_deref(), Some("1"));
        // Another variable is not the trace's; no trace, no value.
        assert_eq!(var(Var::RemoteAddr), None);
        assert_eq!(variable(None, Var::OtelTraceId), None);
        let begun = TraceMode::Inject.begin(None).unwrap();
        assert_eq!(variable(Some(&begun), Var::OtelParentId), None);
        assert_eq!(
            variable(Some(&begun), Var::OtelParentSampled).as_deref(),
            Some("0")
        );
    }
}
