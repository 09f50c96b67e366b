//! The header fields of a head, request's or response's: copied out of
//! httparse and checked, the room httparse parses them into, and the
//! token characters their names are made of.

use super::HeadError;
use crate::http::headers::Headers;

/// Copies httparse's borrowed fields into an owned list, checking them.
///
/// RFC 9112 §5.1: "No whitespace is allowed between the field name and
/// colon. ... A server MUST reject, with a response status code of 400
/// (Bad Request), any received request message that contains whitespace
/// between a header field name and colon. A proxy MUST remove any such
/// whitespace from a response message before forwarding it downstream."
/// httparse refuses it in both (we answer a backend that sends it 502).
///
/// RFC 9112 §5.2: "A server that receives an obs-fold in a request message
/// that is not within a "message/http" container MUST either reject the
/// message by sending a 400 (Bad Request) ... or replace each received
/// obs-fold with one or more SP octets". We reject (httparse does, for
/// requests and, by default, for responses).
///
/// RFC 9110 §5.5: "Field values containing CR, LF, or NUL characters are
/// invalid and dangerous ... a recipient of CR, LF, or NUL within a field
/// value MUST either reject the message or replace each of those
/// characters with SP". We reject them, and every other control character
/// but HTAB, which field-value does not allow either.
pub(super) fn collect_headers(raw: &[httparse::Header<'_>]) -> Result<Headers, HeadError> {
    let bytes = raw
        .iter()
        .map(|h| h.name.len() + h.value.len())
        .sum::<usize>();
    // Room for the fields a proxy adds (X-Forwarded-*, Via, framing).
    let mut headers = Headers::with_capacity(raw.len() + 6, bytes + 160);
    for h in raw {
        if h.name.is_empty() || !h.name.bytes().all(is_tchar) {
            return Err(HeadError::Malformed("invalid header name"));
        }
        // Every byte looked at, no early exit: the loop vectorizes, and
        // a valid value (nearly all) is read whole anyway.
        if h.value.iter().fold(false, |bad, &b| {
            bad | ((b < 0x20 && b != b'\t') || b == 0x7f)
        }) {
            return Err(HeadError::Malformed("control character in header value"));
        }
        headers.push(h.name, h.value);
    }
    Ok(headers)
}

/// RFC 9110 §5.6.2: tchar, the characters of a token (field names, methods).
pub fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// [`is_tchar`] as a table: every field name of every head is checked byte
/// by byte.
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

/// How many fields a head is first parsed into, on the stack (see
/// `parse_request`): more than most heads have, and small beside a
/// worker's stack.
pub(super) const FEW_HEADERS: usize = 24;

/// Room for httparse to put the fields of `head`: one slot per line (an
/// upper bound on the fields), at most `max`, on the heap. A fixed array of
/// `MAX_HEADERS` on the stack would be 8 KiB that every worker thread
/// touches once and then keeps resident while it idles.
pub(super) fn header_storage(head: &[u8], max: usize) -> Vec<httparse::Header<'static>> {
    let lines = head.iter().filter(|&&b| b == b'\n').count();
    vec![httparse::EMPTY_HEADER; lines.min(max)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tchar_is_exactly_rfc_9110s_token_characters() {
        let specials = b"!#$%&'*+-.^_`|~";
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || specials.contains(&b);
            assert_eq!(is_tchar(b), expected, "byte {b:#04x}");
        }
    }

    // httparse refuses these too; the checks here do not depend on it.
    #[test]
    fn collect_headers_refuses_control_characters_and_non_token_names() {
        fn header<'a>(name: &'a str, value: &'a [u8]) -> [httparse::Header<'a>; 1] {
            [httparse::Header { name, value }]
        }
        for b in 0..=255u8 {
            let value = [b'a', b, b'b'];
            let refused = (b < 0x20 && b != b'\t') || b == 0x7f;
            assert_eq!(
                collect_headers(&header("X", &value)).is_err(),
                refused,
                "byte {b:#04x}"
            );
        }
        assert!(collect_headers(&header("X", b"\x01\x02")).is_err());
        for name in ["", "X Y", "X:", "X\u{e9}"] {
            assert_eq!(
                collect_headers(&header(name, b"1")),
                Err(HeadError::Malformed("invalid header name")),
                "{name:?}"
            );
        }
        assert_eq!(
            collect_headers(&header("X-A", b"a b")).unwrap().get("x-a"),
            Some(&b"a b"[..])
        );
    }
}
