//! Numbers and addresses written as text without `core::fmt`: response
//! heads and the access log write several per request, and `write!` costs
//! many times the instructions (the formatting machinery: padding, flags,
//! dynamic dispatch). Counted with callgrind, the access log line alone
//! was a third of a cache hit's instructions.

use std::net::IpAddr;
use std::time::Duration;

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

/// A count of thousandths as a decimal number with three decimals
/// (`1500` is `1.500`): times as nginx writes them.
pub struct Thousandths {
    text: [u8; 24],
    len: usize,
}

impl Thousandths {
    pub fn new(n: u64) -> Self {
        let whole = Decimal::new(n / 1000);
        let whole = whole.as_bytes();
        let mut text = [0u8; 24];
        text[..whole.len()].copy_from_slice(whole);
        let frac = n % 1000;
        text[whole.len()] = b'.';
        for (i, digit) in [frac / 100, frac / 10 % 10, frac % 10]
            .into_iter()
            .enumerate()
        {
            text[whole.len() + 1 + i] = b'0' + digit as u8;
        }
        Thousandths {
            text,
            len: whole.len() + 4,
        }
    }

    /// `d` in seconds, to the nearest millisecond: `0.002`.
    pub fn seconds(d: Duration) -> Self {
        Thousandths::new(rounded(d, Duration::from_millis(1)))
    }

    /// `d` in milliseconds, to the nearest microsecond: `1.500`.
    pub fn millis(d: Duration) -> Self {
        Thousandths::new(rounded(d, Duration::from_micros(1)))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and a point are ever written.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// How many `unit`s `d` is, to the nearest.
fn rounded(d: Duration, unit: Duration) -> u64 {
    let unit = unit.as_nanos();
    u64::try_from((d.as_nanos() + unit / 2) / unit).unwrap_or(u64::MAX)
}

/// Appends `name: n\r\n`, a header field with a number for its value.
pub fn push_field(out: &mut Vec<u8>, name: &str, n: u64) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(Decimal::new(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Whether `b` is one of RFC 3986's unreserved characters, which
/// percent-encoding leaves as they are wherever they stand.
pub fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `b` as two hex digits, in upper or lower case.
pub fn hex_pair(b: u8, upper: bool) -> [u8; 2] {
    let digits = match upper {
        true => b"0123456789ABCDEF",
        false => b"0123456789abcdef",
    };
    [digits[usize::from(b >> 4)], digits[usize::from(b & 15)]]
}

/// `text` with every `%XX` decoded; `None` for a `%` without two hex
/// digits after it.
pub fn percent_decoded(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let digit = |at: usize| (*bytes.get(at)? as char).to_digit(16);
            out.push((digit(i + 1)? * 16 + digit(i + 2)?) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
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
    fn durations_are_written_in_milliseconds_to_the_microsecond() {
        for (nanos, text) in [
            (0, "0.000"),
            (499, "0.000"),
            (500, "0.001"),
            (1_500_000, "1.500"),
            (12_345_678, "12.346"),
            (3_600_000_000_000, "3600000.000"),
        ] {
            let out = Thousandths::millis(Duration::from_nanos(nanos));
            assert_eq!(out.as_str(), text, "{nanos} ns");
        }
    }

    #[test]
    fn times_in_seconds_are_written_to_the_millisecond() {
        for (nanos, text) in [
            (0, "0.000"),
            (499_999, "0.000"),
            (500_000, "0.001"),
            (1_500_000_000, "1.500"),
            (12_345_678_901, "12.346"),
        ] {
            let out = Thousandths::seconds(Duration::from_nanos(nanos));
            assert_eq!(out.as_str(), text, "{nanos} ns");
        }
    }

    #[test]
    fn the_largest_count_fits() {
        assert_eq!(Thousandths::new(u64::MAX).as_str(), "18446744073709551.615");
    }

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
