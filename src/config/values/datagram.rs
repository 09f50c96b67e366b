//! `health_check_udp`: a datagram written as text, `\xHH` for any byte
//! (a DNS question is mostly binary) and `\\` for a backslash, as
//! nginx Plus's `match { send ...; }` writes one.

/// The most a probe's datagram may hold: one that fits a packet on any
/// network (IPv6's least MTU less its headers).
pub const MAX_DATAGRAM: usize = 1_232;

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
            [b'\\', after @ ..] => {
                bytes.push(b'\\');
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
                    "a backslash begins \\xHH (a byte in hexadecimal) or \\\\ (a backslash)".into(),
                )
            }
        }
    }
    if bytes.len() > MAX_DATAGRAM {
        return Err(format!(
            "{} bytes: a probe's datagram holds at most {MAX_DATAGRAM}",
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
        assert_eq!(parse("\\x00\\x2aA\\\\b\\xFf").unwrap(), b"\x00\x2aA\\b\xff");
        // A DNS question for the root's NS records.
        let dns =
            "\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x01";
        assert_eq!(parse(dns).unwrap().len(), 17);
        assert_eq!(
            parse(&"a".repeat(MAX_DATAGRAM)).unwrap().len(),
            MAX_DATAGRAM
        );
    }

    #[test]
    fn a_bad_escape_or_a_datagram_too_long_is_refused() {
        for (bad, says) in [
            ("\\x4", "\\x takes two hexadecimal digits"),
            ("\\xzz", "`\\xzz` is no byte"),
            ("\\n", "a backslash begins \\xHH"),
            ("end\\", "a backslash begins"),
            ("\\xé", "is no byte"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = parse(&"a".repeat(MAX_DATAGRAM + 1)).unwrap_err();
        assert!(e.contains("at most 1232"), "{e}");
    }
}
