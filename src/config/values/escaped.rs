//! `health_check_send` and `health_check_expect`: bytes written as text,
//! `\r`, `\n` and `\t` for a line's ends and a tab, `\xHH` for any byte
//! (a DNS question is mostly binary) and `\\` for a backslash, as nginx
//! Plus's `match { send ...; expect ...; }` and HAProxy's `tcp-check send`
//! write them.

/// The most a probe sends or looks for: a datagram that fits a packet on
/// any network (IPv6's least MTU less its headers).
pub const MAX_BYTES: usize = 1_232;

/// The bytes `value` writes.
pub fn parse(value: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        rest = after;
        if byte != b'\\' {
            bytes.push(byte);
            continue;
        }
        match rest {
            [escaped @ (b'\\' | b'r' | b'n' | b't'), after @ ..] => {
                bytes.push(match escaped {
                    b'r' => b'\r',
                    b'n' => b'\n',
                    b't' => b'\t',
                    _ => b'\\',
                });
                rest = after;
            }
            [b'x', high, low, after @ ..] => {
                let hex = [*high, *low];
                let byte = std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| {
                        format!(
                            "`\\x{}` is no byte: \\x takes two hexadecimal digits (\\x0a)",
                            String::from_utf8_lossy(&hex)
                        )
                    })?;
                bytes.push(byte);
                rest = after;
            }
            [b'x', ..] => return Err("\\x takes two hexadecimal digits (\\x0a)".into()),
            _ => {
                return Err(
                    "a backslash begins \\r, \\n, \\t, \\xHH (a byte in hexadecimal) \
                            or \\\\ (a backslash)"
                        .into(),
                )
            }
        }
    }
    if bytes.is_empty() || bytes.len() > MAX_BYTES {
        return Err(format!(
            "{} bytes: a probe sends or looks for 1 to {MAX_BYTES}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_escapes_are_the_bytes_they_write() {
        assert_eq!(parse("ping").unwrap(), b"ping");
        assert_eq!(parse("PING\\r\\n\\tx").unwrap(), b"PING\r\n\tx");
        assert_eq!(parse("\\x00\\x2aA\\\\b\\xFf").unwrap(), b"\x00\x2aA\\b\xff");
        // A DNS question for the root's NS records.
        let dns =
            "\\x12\\x34\\x00\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x01";
        assert_eq!(parse(dns).unwrap().len(), 17);
        assert_eq!(parse(&"a".repeat(MAX_BYTES)).unwrap().len(), MAX_BYTES);
    }

    #[test]
    fn a_bad_escape_or_a_length_out_of_range_is_refused() {
        for (bad, says) in [
            ("\\x4", "\\x takes two hexadecimal digits"),
            ("\\xzz", "`\\xzz` is no byte"),
            ("\\q", "a backslash begins \\r, \\n"),
            ("end\\", "a backslash begins"),
            ("\\xé", "is no byte"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = parse(&"a".repeat(MAX_BYTES + 1)).unwrap_err();
        assert!(e.contains("1 to 1232"), "{e}");
        assert!(parse("").unwrap_err().contains("0 bytes"));
    }
}
