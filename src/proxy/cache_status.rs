//! RFC 9211's `Cache-Status` field, when `cache_status` names this cache:
//! what the cache did with each response (`inverso; hit; ttl=42`,
//! `inverso; fwd=uri-miss; fwd-status=200`), in the standard form that
//! CDNs (Fastly, Cloudflare) and browser tools read, beside inverso's own
//! `X-Cache`. Its member goes in a field line of its own after any the
//! response carried: a list's last member is the cache nearest the client.

use crate::digits::Decimal;

/// What the cache did.
pub(super) enum Member {
    /// Served from storage; `ttl` is the freshness left, in seconds
    /// (negative: served stale).
    Hit { ttl: i64 },
    /// Sent on to the origin (`fwd`, as RFC 9211 §2.2 names the reasons),
    /// which answered `status`; `stored` when the answer was stored, with
    /// the freshness it was given (`ttl`).
    Forwarded {
        fwd: &'static str,
        status: u16,
        stored: Option<i64>,
    },
}

/// Appends `Cache-Status: <name>; ...` and its CRLF.
pub(super) fn push(out: &mut Vec<u8>, name: &str, member: Member) {
    out.extend_from_slice(b"Cache-Status: ");
    out.extend_from_slice(name.as_bytes());
    let push_ttl = |out: &mut Vec<u8>, ttl: i64| {
        out.extend_from_slice(b"; ttl=");
        if ttl < 0 {
            out.push(b'-');
        }
        // RFC 8941 §3.3.1: an Integer has at most 15 digits (a `ttl` of
        // millions of years would make the field no structured field).
        let seconds = ttl.unsigned_abs().min(999_999_999_999_999);
        out.extend_from_slice(Decimal::new(seconds).as_bytes());
    };
    match member {
        Member::Hit { ttl } => {
            out.extend_from_slice(b"; hit");
            push_ttl(out, ttl);
        }
        Member::Forwarded {
            fwd,
            status,
            stored,
        } => {
            out.extend_from_slice(b"; fwd=");
            out.extend_from_slice(fwd.as_bytes());
            out.extend_from_slice(b"; fwd-status=");
            out.extend_from_slice(Decimal::new(u64::from(status)).as_bytes());
            if let Some(ttl) = stored {
                out.extend_from_slice(b"; stored");
                push_ttl(out, ttl);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(member: Member) -> String {
        let mut out = Vec::new();
        push(&mut out, "inverso", member);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn members_say_hit_or_why_the_request_went_on() {
        assert_eq!(
            line(Member::Hit { ttl: 42 }),
            "Cache-Status: inverso; hit; ttl=42\r\n"
        );
        assert_eq!(
            line(Member::Hit { ttl: -7 }),
            "Cache-Status: inverso; hit; ttl=-7\r\n"
        );
        // At most 15 digits (RFC 8941), whatever ttl the loader took.
        assert_eq!(
            line(Member::Hit {
                ttl: 1_000_000_000_080_000
            }),
            "Cache-Status: inverso; hit; ttl=999999999999999\r\n"
        );
        let miss = Member::Forwarded {
            fwd: "uri-miss",
            status: 200,
            stored: None,
        };
        assert_eq!(
            line(miss),
            "Cache-Status: inverso; fwd=uri-miss; fwd-status=200\r\n"
        );
        let revalidated = Member::Forwarded {
            fwd: "stale",
            status: 304,
            stored: Some(60),
        };
        assert_eq!(
            line(revalidated),
            "Cache-Status: inverso; fwd=stale; fwd-status=304; stored; ttl=60\r\n"
        );
    }
}
