//! Numbers and addresses written as text without `core::fmt`: response
//! heads and the access log write several per request, and `write!` costs
//! many times the instructions (the formatting machinery: padding, flags,
//! dynamic dispatch). Counted with callgrind, the access log line alone
//! was a third of a cache hit's instructions.

use std::net::IpAddr;

/// `n` in decimal, on the stack.
pub struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    pub fn new(mut n: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Decimal { digits, start }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever written.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// Appends `name: n\r\n`, a header field with a number for its value.
pub fn push_field(out: &mut Vec<u8>, name: &str, n: u64) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(Decimal::new(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `b` as two hex digits, in upper or lower case.
pub fn hex_pair(b: u8, upper: bool) -> [u8; 2] {
    let digits = match upper {
        true => b"0123456789ABCDEF",
        false => b"0123456789abcdef",
    };
    [digits[usize::from(b >> 4)], digits[usize::from(b & 15)]]
}

/// Appends `bytes` in hex, two digits each.
pub fn push_hex(out: &mut String, bytes: &[u8], upper: bool) {
    out.reserve(2 * bytes.len());
    for &b in bytes {
        out.extend(hex_pair(b, upper).map(char::from));
    }
}

/// Appends `ip` as its `Display` writes it; IPv4, nearly every address,
/// without the formatting machinery.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut text = [0u8; 15];
            let mut len = 0;
            let mut put = |b: u8| {
                text[len] = b;
                len += 1;
            };
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    put(b'.');
                }
                if octet >= 100 {
                    put(b'0' + octet / 100);
                }
                if octet >= 10 {
                    put(b'0' + octet / 10 % 10);
                }
                put(b'0' + octet % 10);
            }
            // Only ASCII digits and dots were written.
            out.push_str(std::str::from_utf8(&text[..len]).unwrap_or_default());
        }
        IpAddr::V6(_) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{ip}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_display_writes() {
        for n in [0, 7, 10, 404, 65_535, u64::MAX] {
            assert_eq!(Decimal::new(n).as_str(), n.to_string());
        }
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
        let mut out = Vec::new();
        push_field(&mut out, "Content-Length", 1024);
        assert_eq!(out, b"Content-Length: 1024\r\n");
    }
}
